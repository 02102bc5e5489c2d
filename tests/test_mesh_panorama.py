"""depth.moge_panorama against ComfyUI's MoGePanoramaInference (comfy/ldm/moge/panorama.py and the node's execute
in comfy_extras/nodes_moge.py, written out below as published; only the merge's coarsest size is an argument here,
so a test reaches its second level on a small map), and 3d_moge_panorama_to_mesh imported and run on a tiny
MoGe-2."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import convolve, map_coordinates
from scipy.sparse import csr_array, vstack
from scipy.sparse.linalg import lsmr

from nodes.depth import moge_panorama
from tests.test_mesh_moge import comfy_triangulate_grid_mesh, run_template, smooth_moge
from tests.test_moge import comfyui_setup

# -- ComfyUI's comfy/ldm/moge/panorama.py -------------------------------------------------------------------------
def _icosahedron_directions():
    A = (1.0 + np.sqrt(5.0)) / 2.0
    return np.array([
        [0, 1, A], [0, -1, A], [0, 1, -A], [0, -1, -A],
        [1, A, 0], [-1, A, 0], [1, -A, 0], [-1, -A, 0],
        [A, 0, 1], [A, 0, -1], [-A, 0, 1], [-A, 0, -1],
    ], dtype=np.float32)


def _intrinsics_from_fov(fov_x_rad, fov_y_rad):
    fx = 0.5 / np.tan(fov_x_rad / 2)
    fy = 0.5 / np.tan(fov_y_rad / 2)
    return np.array([[fx, 0, 0.5], [0, fy, 0.5], [0, 0, 1]], dtype=np.float32)


def _extrinsics_look_at(eye, target, up):
    eye = np.asarray(eye, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    up = np.asarray(up, dtype=np.float32)
    if target.ndim == 1:
        target = target[None]
    fwd = target - eye
    fwd = fwd / np.linalg.norm(fwd, axis=-1, keepdims=True).clip(1e-12)
    right = np.cross(fwd, up)
    right_norm = np.linalg.norm(right, axis=-1, keepdims=True)
    parallel = right_norm.squeeze(-1) < 1e-6
    if parallel.any():
        alt_up = np.array([1, 0, 0], dtype=np.float32)
        right = np.where(parallel[:, None], np.cross(fwd, alt_up), right)
        right_norm = np.linalg.norm(right, axis=-1, keepdims=True)
    right = right / right_norm.clip(1e-12)
    new_up = np.cross(fwd, right)
    R = np.stack([right, new_up, fwd], axis=-2)
    t = -np.einsum("nij,j->ni", R, eye)
    E = np.zeros((R.shape[0], 4, 4), dtype=np.float32)
    E[:, :3, :3] = R
    E[:, :3, 3] = t
    E[:, 3, 3] = 1.0
    return E


def get_panorama_cameras():
    targets = _icosahedron_directions()
    eye = np.zeros(3, dtype=np.float32)
    up = np.array([0, 0, 1], dtype=np.float32)
    extrinsics = _extrinsics_look_at(eye, targets, up)
    K = _intrinsics_from_fov(np.deg2rad(90.0), np.deg2rad(90.0))
    return extrinsics, [K] * len(targets)


def spherical_uv_to_directions(uv):
    theta = (1 - uv[..., 0]) * (2 * np.pi)
    phi = uv[..., 1] * np.pi
    return np.stack([np.sin(phi) * np.cos(theta), np.sin(phi) * np.sin(theta), np.cos(phi)],
                    axis=-1).astype(np.float32)


def directions_to_spherical_uv(directions):
    n = np.linalg.norm(directions, axis=-1, keepdims=True).clip(1e-12)
    d = directions / n
    u = 1 - np.arctan2(d[..., 1], d[..., 0]) / (2 * np.pi) % 1.0
    v = np.arccos(d[..., 2].clip(-1, 1)) / np.pi
    return np.stack([u, v], axis=-1).astype(np.float32)


def _uv_grid(H, W):
    u = (np.arange(W, dtype=np.float32) + 0.5) / W
    v = (np.arange(H, dtype=np.float32) + 0.5) / H
    return np.stack(np.meshgrid(u, v, indexing="xy"), axis=-1)


def _unproject_cv(uv, depth, extrinsics, intrinsics):
    pix = np.concatenate([uv, np.ones_like(uv[..., :1])], axis=-1)
    K_inv = np.linalg.inv(intrinsics)
    cam = pix @ K_inv.T * depth[..., None]
    cam_h = np.concatenate([cam, np.ones_like(cam[..., :1])], axis=-1)
    E_inv = np.linalg.inv(extrinsics)
    return (cam_h @ E_inv.T)[..., :3]


def _project_cv(points, extrinsics, intrinsics):
    pts_h = np.concatenate([points, np.ones_like(points[..., :1])], axis=-1)
    cam = pts_h @ extrinsics.T
    cam_xyz = cam[..., :3]
    depth = cam_xyz[..., 2]
    proj = cam_xyz @ intrinsics.T
    uv = proj[..., :2] / proj[..., 2:3].clip(1e-12)
    return uv.astype(np.float32), depth.astype(np.float32)


def _grid_sample_uv(img_bchw, uv, mode="bilinear"):
    grid = uv * 2.0 - 1.0
    return F.grid_sample(img_bchw, grid, mode=mode, padding_mode="border", align_corners=False)


def split_panorama_image(image, extrinsics, intrinsics, resolution):
    device = image.device
    N = len(extrinsics)
    uv = _uv_grid(resolution, resolution)
    sample_uvs = []
    for i in range(N):
        world = _unproject_cv(uv, np.ones(uv.shape[:-1], dtype=np.float32), extrinsics[i], intrinsics[i])
        sample_uvs.append(directions_to_spherical_uv(world))
    sample_uvs = np.stack(sample_uvs, axis=0)
    img_bchw = image.unsqueeze(0).expand(N, -1, -1, -1).contiguous()
    sample_uvs_t = torch.from_numpy(sample_uvs).to(device=device, dtype=image.dtype)
    return _grid_sample_uv(img_bchw, sample_uvs_t, mode="bilinear")


def _poisson_equation(W, H, wrap_x=False, wrap_y=False):
    grid_index = np.arange(H * W).reshape(H, W)
    grid_index = np.pad(grid_index, ((0, 0), (1, 1)), mode="wrap" if wrap_x else "edge")
    grid_index = np.pad(grid_index, ((1, 1), (0, 0)), mode="wrap" if wrap_y else "edge")
    data = np.array([[-4, 1, 1, 1, 1]], dtype=np.float32).repeat(H * W, axis=0).reshape(-1)
    indices = np.stack([
        grid_index[1:-1, 1:-1],
        grid_index[:-2, 1:-1], grid_index[2:, 1:-1],
        grid_index[1:-1, :-2], grid_index[1:-1, 2:],
    ], axis=-1).reshape(-1)
    indptr = np.arange(0, H * W * 5 + 1, 5)
    return csr_array((data, indices, indptr), shape=(H * W, H * W))


def _grad_equation(W, H, wrap_x=False, wrap_y=False):
    grid_index = np.arange(W * H).reshape(H, W)
    if wrap_x:
        grid_index = np.pad(grid_index, ((0, 0), (0, 1)), mode="wrap")
    if wrap_y:
        grid_index = np.pad(grid_index, ((0, 1), (0, 0)), mode="wrap")
    data = np.concatenate([
        np.concatenate([
            np.ones((grid_index.shape[0], grid_index.shape[1] - 1), dtype=np.float32).reshape(-1, 1),
            -np.ones((grid_index.shape[0], grid_index.shape[1] - 1), dtype=np.float32).reshape(-1, 1),
        ], axis=1).reshape(-1),
        np.concatenate([
            np.ones((grid_index.shape[0] - 1, grid_index.shape[1]), dtype=np.float32).reshape(-1, 1),
            -np.ones((grid_index.shape[0] - 1, grid_index.shape[1]), dtype=np.float32).reshape(-1, 1),
        ], axis=1).reshape(-1),
    ])
    indices = np.concatenate([
        np.concatenate([grid_index[:, :-1].reshape(-1, 1), grid_index[:, 1:].reshape(-1, 1)], axis=1).reshape(-1),
        np.concatenate([grid_index[:-1, :].reshape(-1, 1), grid_index[1:, :].reshape(-1, 1)], axis=1).reshape(-1),
    ])
    nx = grid_index.shape[0] * (grid_index.shape[1] - 1)
    ny = (grid_index.shape[0] - 1) * grid_index.shape[1]
    indptr = np.arange(0, nx * 2 + ny * 2 + 1, 2)
    return csr_array((data, indices, indptr), shape=(nx + ny, H * W))


def _scipy_remap_bilinear(img, sample_pixels, mode="bilinear"):
    H, W = img.shape[:2]
    yy = np.clip(sample_pixels[..., 1], 0, H - 1)
    xx = np.clip(sample_pixels[..., 0], 0, W - 1)
    order = 1 if mode == "bilinear" else 0
    if img.ndim == 2:
        return map_coordinates(img, [yy, xx], order=order, mode="nearest").astype(img.dtype)
    out = np.stack([map_coordinates(img[..., c], [yy, xx], order=order, mode="nearest")
                    for c in range(img.shape[-1])], axis=-1)
    return out.astype(img.dtype)


def merge_panorama_depth(width, height, distance_maps, pred_masks, extrinsics, intrinsics, coarsest=256):
    if max(width, height) > coarsest:
        coarse_depth, _ = merge_panorama_depth(width // 2, height // 2, distance_maps, pred_masks, extrinsics,
                                               intrinsics, coarsest)
        t = torch.from_numpy(coarse_depth).unsqueeze(0).unsqueeze(0)
        t = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
        depth_init = t.squeeze().numpy().astype(np.float32)
    else:
        depth_init = None
    spherical_directions = spherical_uv_to_directions(_uv_grid(height, width))
    pano_log_grad_maps, pano_grad_masks = [], []
    pano_log_lap_maps, pano_lap_masks = [], []
    pano_pred_masks = []
    for i in range(len(distance_maps)):
        proj_uv, proj_depth = _project_cv(spherical_directions, extrinsics[i], intrinsics[i])
        proj_valid = (proj_depth > 0) & (proj_uv > 0).all(axis=-1) & (proj_uv < 1).all(axis=-1)
        Hd, Wd = distance_maps[i].shape[:2]
        proj_pixels = np.clip(proj_uv, 0, 1) * np.array([Wd - 1, Hd - 1], dtype=np.float32)
        log_dist = np.log(np.clip(distance_maps[i], 1e-6, None))
        sampled = _scipy_remap_bilinear(log_dist, proj_pixels, mode="bilinear")
        pano_log = np.where(proj_valid, sampled, 0.0).astype(np.float32)
        sampled_mask = _scipy_remap_bilinear(pred_masks[i].astype(np.uint8), proj_pixels, mode="nearest")
        pano_pred = proj_valid & (sampled_mask > 0)
        padded = np.pad(pano_log, ((0, 0), (0, 1)), mode="wrap")
        gx, gy = padded[:, :-1] - padded[:, 1:], padded[:-1, :] - padded[1:, :]
        padded_m = np.pad(pano_pred, ((0, 0), (0, 1)), mode="wrap")
        mx, my = padded_m[:, :-1] & padded_m[:, 1:], padded_m[:-1, :] & padded_m[1:, :]
        pano_log_grad_maps.append((gx, gy))
        pano_grad_masks.append((mx, my))
        padded = np.pad(pano_log, ((1, 1), (0, 0)), mode="edge")
        padded = np.pad(padded, ((0, 0), (1, 1)), mode="wrap")
        lap_kernel = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)
        lap = convolve(padded, lap_kernel)[1:-1, 1:-1]
        padded_m = np.pad(pano_pred, ((1, 1), (0, 0)), mode="edge")
        padded_m = np.pad(padded_m, ((0, 0), (1, 1)), mode="wrap")
        m_kernel = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=np.uint8)
        lap_mask = convolve(padded_m.astype(np.uint8), m_kernel)[1:-1, 1:-1] == 5
        pano_log_lap_maps.append(lap)
        pano_lap_masks.append(lap_mask)
        pano_pred_masks.append(pano_pred)
    gx = np.stack([m[0] for m in pano_log_grad_maps], axis=0)
    gy = np.stack([m[1] for m in pano_log_grad_maps], axis=0)
    mx = np.stack([m[0] for m in pano_grad_masks], axis=0)
    my = np.stack([m[1] for m in pano_grad_masks], axis=0)
    gx_avg = (gx * mx).sum(axis=0) / mx.sum(axis=0).clip(1e-3)
    gy_avg = (gy * my).sum(axis=0) / my.sum(axis=0).clip(1e-3)
    laps = np.stack(pano_log_lap_maps, axis=0)
    lap_masks = np.stack(pano_lap_masks, axis=0)
    lap_avg = (laps * lap_masks).sum(axis=0) / lap_masks.sum(axis=0).clip(1e-3)
    grad_x_mask = mx.any(axis=0).reshape(-1)
    grad_y_mask = my.any(axis=0).reshape(-1)
    grad_mask = np.concatenate([grad_x_mask, grad_y_mask])
    lap_mask_flat = lap_masks.any(axis=0).reshape(-1)
    A = vstack([
        _grad_equation(width, height, wrap_x=True, wrap_y=False)[grad_mask],
        _poisson_equation(width, height, wrap_x=True, wrap_y=False)[lap_mask_flat],
    ])
    b = np.concatenate([
        gx_avg.reshape(-1)[grad_x_mask],
        gy_avg.reshape(-1)[grad_y_mask],
        lap_avg.reshape(-1)[lap_mask_flat],
    ])
    x0 = np.log(np.clip(depth_init, 1e-6, None)).reshape(-1) if depth_init is not None else None
    x, *_ = lsmr(A, b, atol=1e-5, btol=1e-5, x0=x0, show=False)
    pano_depth = np.exp(x).reshape(height, width).astype(np.float32)
    pano_mask = np.any(pano_pred_masks, axis=0)
    return pano_depth, pano_mask


# -- ComfyUI's MoGePanoramaInference.execute and MoGePointMapToMesh.execute (a panorama's) --------------------------
def comfy_panorama(ref, image, resolution_level_tokens, split_resolution, merge_resolution, batch_size):
    """image (1, H, W, 3) in 0..1; the authors' infer stands for ComfyUI's MoGeModel.infer (apply_metric_scale=False:
    the model's scale head must give 1)."""
    image = image[..., :3]
    H, W = int(image.shape[1]), int(image.shape[2])
    scale = min(merge_resolution / max(H, W), 1.0)
    merge_h, merge_w = max(int(H * scale), 32), max(int(W * scale), 32)
    extrinsics, intrinsics = get_panorama_cameras()
    img_chw = image[0].movedim(-1, -3)
    splits = split_panorama_image(img_chw, extrinsics, intrinsics, split_resolution)
    distance_maps, masks = [], []
    for i in range(0, splits.shape[0], batch_size):
        batch = splits[i:i + batch_size]
        result = ref.infer(batch.clone(), resolution_level_tokens, force_projection=True, apply_mask=False,
                           fov_x=90.0)
        distance_maps.extend(list(result["points"].float().norm(dim=-1).cpu().numpy()))
        masks.extend(list(result["mask"].cpu().numpy()))
    pano_depth, pano_mask = merge_panorama_depth(merge_w, merge_h, distance_maps, masks, list(extrinsics),
                                                 intrinsics)
    pano_depth = torch.from_numpy(pano_depth)
    pano_mask = torch.from_numpy(pano_mask)
    if (merge_h, merge_w) != (H, W):
        pano_depth = F.interpolate(pano_depth[None, None], size=(H, W), mode="bilinear",
                                   align_corners=False).squeeze()
        pano_mask = F.interpolate(pano_mask[None, None].float(), size=(H, W), mode="nearest").squeeze() > 0
    if pano_mask.any() and not pano_mask.all():
        far = torch.quantile(pano_depth[pano_mask], 0.95) * 5.0
        pano_depth = torch.where(pano_mask, pano_depth, far)
    directions = torch.from_numpy(spherical_uv_to_directions(_uv_grid(H, W)))
    points = (directions * pano_depth[..., None]).unsqueeze(0)
    return {"points": points, "depth": pano_depth.unsqueeze(0), "mask": pano_mask.unsqueeze(0)}


def comfy_panorama_mesh(geo, decimation=1, discontinuity_threshold=0.04):
    verts, faces, uvs = comfy_triangulate_grid_mesh(geo["points"][0], decimation=decimation,
                                                    discontinuity_threshold=discontinuity_threshold,
                                                    depth=geo["depth"][0])
    return verts[:, [1, 2, 0]].contiguous().numpy(), faces.numpy(), uvs.numpy()


# -- tests --------------------------------------------------------------------------------------------------------
def test_split_is_comfyuis():
    image = torch.rand(3, 20, 40, generator=torch.Generator().manual_seed(0))
    extrinsics, intrinsics = get_panorama_cameras()
    want = split_panorama_image(image, extrinsics, intrinsics, 24)
    assert torch.equal(moge_panorama.split(image, 24), want)


def _views(seed=0, size=16):
    """12 smooth distance maps (each view its own scale, as MoGe's unscaled views) with some pixels unseen."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    distances = [(rng.uniform(1, 3) * (2 + 0.3 * np.sin(3 * xx + i) + 0.2 * yy)).astype(np.float32)
                 for i in range(12)]
    masks = [rng.random((size, size)) > 0.05 for _ in range(12)]
    masks[3][:6, :6] = False
    return distances, masks


@pytest.mark.parametrize("w,h,coarsest", [(48, 24, 256), (80, 40, 32)])
def test_merge_is_comfyuis(monkeypatch, w, h, coarsest):
    """One solve, and three levels (80 x 40 from 40 x 20 from 20 x 10)."""
    monkeypatch.setattr(moge_panorama, "SOLVE_FROM", coarsest)
    distances, masks = _views()
    extrinsics, intrinsics = get_panorama_cameras()
    want_depth, want_mask = merge_panorama_depth(w, h, distances, masks, list(extrinsics), intrinsics, coarsest)
    depth, mask = moge_panorama.merge(w, h, distances, masks)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_allclose(depth, want_depth, rtol=1e-5)


def test_panorama_template_runs_as_comfyui_meshes(tmp_path, monkeypatch):
    """3d_moge_panorama_to_mesh imported (LoadImage, its resize switch, LoadMoGeModel, MoGePanoramaInference at
    split 512 / merge 1024 / batch 4, MoGePointMapToMesh, SaveGLB) and run on a tiny MoGe-2 (views of 256): the saved
    .glb is ComfyUI's sphere mesh of the authors' views, stitched as ComfyUI stitches them, the panorama its
    texture."""
    ref = smooth_moge()
    with torch.no_grad():
        # a metric scale of 1, so that the authors' infer, which always applies it, is ComfyUI's without it (the
        # stitching reads log-distance differences within a view, which no view's own scale changes)
        ref.scale_head[-1].weight.zero_()
        ref.scale_head[-1].bias.zero_()
    frame = comfyui_setup(ref, tmp_path, monkeypatch, "street.png", size=(32, 64))

    def views_of_256(wf):
        (pano,) = [n for n in wf.graph.nodes.values() if n.type == "depth.moge_panorama"]
        assert (pano.params["split_resolution"], pano.params["merge_resolution"], pano.params["batch"]) == \
            (512, 1024, 4)
        pano.params["split_resolution"] = 256       # ComfyUI's least: 12 views of 512 on the CPU take half a minute
    _, got = run_template("3d_moge_panorama_to_mesh.json", tmp_path, "street.png", "out/3d/Moge.glb", views_of_256)
    want = comfy_panorama(ref, torch.from_numpy(frame)[None].float() / 255, 16, 256, 1024, 4)
    v, f, uv = comfy_panorama_mesh(want)
    assert len(f) > 0
    np.testing.assert_array_equal(got.faces, f)
    np.testing.assert_allclose(got.vertices, v, atol=1e-3, rtol=1e-3)
    np.testing.assert_array_equal(np.asarray(got.visual.material.baseColorTexture.convert("RGB")), frame)


def test_unseen_places_are_put_far_also_on_a_large_panorama():
    """Where no view saw anything the distance is 5 times the seen ones' 95th percentile, ComfyUI's torch.quantile
    to the bit on a small map; torch.quantile refuses more than 16,777,216 values, so a 6K or 8K panorama with sky
    (the map is the picture's size) stopped with a RuntimeError: it is filled the same way, against numpy's
    percentile of the seen values."""
    rng = np.random.default_rng(4)
    for shape in ((30, 60), (3000, 6000)):
        depth = torch.from_numpy(rng.uniform(0.5, 20.0, shape).astype(np.float32))
        mask = torch.from_numpy(rng.random(shape) < 0.99)
        got = moge_panorama.fill_unseen(depth, mask)
        assert torch.equal(got[mask], depth[mask])
        far = got[~mask].unique()
        assert len(far) == 1
        if mask.sum() <= 16_777_216:
            assert far == torch.quantile(depth[mask], 0.95) * 5.0
        else:
            assert far.item() == pytest.approx(np.percentile(depth[mask].numpy(), 95) * 5, rel=1e-6)
    assert moge_panorama.fill_unseen(depth, torch.ones_like(mask)) is depth        # all seen: nothing to fill


def test_split_samples_the_picture_without_twelve_copies_of_it(monkeypatch):
    """ComfyUI's split expands the picture to 12 contiguous copies, one a view: 4.2 GB of float32 for an 8K
    panorama on the CPU (2.1 GB of half precision on a GPU). Each view samples the one picture instead, to the same
    views (test_split_is_comfyuis)."""
    image = torch.rand(3, 20, 40, generator=torch.Generator().manual_seed(1))
    sampled, real = [], F.grid_sample

    def spy(picture, grid, **kw):
        sampled.append(picture.data_ptr() == image.data_ptr() and picture.shape[0] == 1)
        return real(picture, grid, **kw)
    want = split_panorama_image(image, *get_panorama_cameras(), 24)
    monkeypatch.setattr(F, "grid_sample", spy)
    assert torch.equal(moge_panorama.split(image, 24), want)
    assert sampled and all(sampled)
