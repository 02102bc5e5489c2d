"""MoGe on an equirectangular panorama, as ComfyUI's MoGePanoramaInference runs it (comfy/ldm/moge/panorama.py, the
authors' infer_panorama): the picture seen by 12 cameras of 90 degrees looking at an icosahedron's vertices, MoGe
on each view (its fit's scale: per-view metric scales would not agree across seams), and the views' distances stitched
into one map of the sphere by least squares on their log-distance gradients and Laplacians (lsmr, solved at half
size first and refined, down to 256 pixels). Where no view saw anything the distance is set far (5 times the 95th
percentile), and the points are the sphere's directions (z up) times the distance."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .moge import Geometry, geometry

SOLVE_FROM = 256        # the coarsest merge level: the solve recurses at half size above it


def _cameras() -> Tuple[np.ndarray, np.ndarray]:
    """World-to-camera matrices (12, 4, 4), OpenCV's camera (x right, y down, z forward), looking from the centre at
    the icosahedron's vertices with z up, and their shared intrinsics (the picture as a unit square, 90 degrees)."""
    a = (1.0 + np.sqrt(5.0)) / 2.0
    forward = np.array([[0, 1, a], [0, -1, a], [0, 1, -a], [0, -1, -a], [1, a, 0], [-1, a, 0], [1, -a, 0],
                        [-1, -a, 0], [a, 0, 1], [a, 0, -1], [-a, 0, 1], [-a, 0, -1]], np.float32)
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True).clip(1e-12)
    right = np.cross(forward, np.array([0, 0, 1], np.float32))     # no vertex is straight up: never degenerate
    right = right / np.linalg.norm(right, axis=-1, keepdims=True).clip(1e-12)
    world_to_camera = np.zeros((12, 4, 4), np.float32)
    world_to_camera[:, :3, :3] = np.stack([right, np.cross(forward, right), forward], axis=-2)
    world_to_camera[:, 3, 3] = 1.0
    focal = 0.5 / np.tan(np.deg2rad(90.0) / 2)
    intrinsics = np.array([[focal, 0, 0.5], [0, focal, 0.5], [0, 0, 1]], np.float32)
    return world_to_camera, intrinsics


def sphere_directions(uv: np.ndarray) -> np.ndarray:
    """Unit directions (z up) of equirectangular places uv in 0..1 (u from the left edge, v from the top)."""
    theta, phi = (1 - uv[..., 0]) * (2 * np.pi), uv[..., 1] * np.pi
    return np.stack([np.sin(phi) * np.cos(theta), np.sin(phi) * np.sin(theta), np.cos(phi)], -1).astype(np.float32)


def _sphere_uv(directions: np.ndarray) -> np.ndarray:
    d = directions / np.linalg.norm(directions, axis=-1, keepdims=True).clip(1e-12)
    u = 1 - np.arctan2(d[..., 1], d[..., 0]) / (2 * np.pi) % 1.0
    v = np.arccos(d[..., 2].clip(-1, 1)) / np.pi
    return np.stack([u, v], -1).astype(np.float32)


def pixel_uv(h: int, w: int) -> np.ndarray:
    """The places of an h x w picture's pixel centres in 0..1, (h, w, 2) of u, v."""
    u = (np.arange(w, dtype=np.float32) + 0.5) / w
    v = (np.arange(h, dtype=np.float32) + 0.5) / h
    return np.stack(np.meshgrid(u, v, indexing="xy"), -1)


def split(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) equirectangular picture -> the 12 cameras' views (12, 3, size, size), sampled bilinearly."""
    world_to_camera, intrinsics = _cameras()
    uv = pixel_uv(size, size)
    rays = np.concatenate([uv, np.ones_like(uv[..., :1])], -1) @ np.linalg.inv(intrinsics).T
    rays = np.concatenate([rays, np.ones_like(rays[..., :1])], -1)
    where = np.stack([_sphere_uv((rays @ np.linalg.inv(e).T)[..., :3]) for e in world_to_camera])
    grid = torch.from_numpy(where).to(image.device, image.dtype) * 2.0 - 1.0
    # view by view from the one picture: ComfyUI's 12 contiguous copies of it took 4.2 GB for an 8K panorama
    return torch.cat([F.grid_sample(image[None], g[None], mode="bilinear", padding_mode="border", align_corners=False)
                      for g in grid])


def _sample(picture: np.ndarray, pixels: np.ndarray, order: int) -> np.ndarray:
    from scipy.ndimage import map_coordinates
    h, w = picture.shape[:2]
    rows, cols = np.clip(pixels[..., 1], 0, h - 1), np.clip(pixels[..., 0], 0, w - 1)
    return map_coordinates(picture, [rows, cols], order=order, mode="nearest").astype(picture.dtype)


def _laplacian_rows(w: int, h: int):
    """The 5-point Laplacian of an h x w map wrapping round in x (the sphere's seam), its edge rows repeated."""
    from scipy.sparse import csr_array
    index = np.pad(np.pad(np.arange(h * w).reshape(h, w), ((0, 0), (1, 1)), mode="wrap"), ((1, 1), (0, 0)),
                   mode="edge")
    data = np.tile(np.array([-4, 1, 1, 1, 1], np.float32), h * w)
    columns = np.stack([index[1:-1, 1:-1], index[:-2, 1:-1], index[2:, 1:-1], index[1:-1, :-2], index[1:-1, 2:]],
                       -1).reshape(-1)
    return csr_array((data, columns, np.arange(0, h * w * 5 + 1, 5)), shape=(h * w, h * w))


def _gradient_rows(w: int, h: int):
    """Forward differences of an h x w map: along x (wrapping round, h * w rows), then along y ((h - 1) * (w + 1)
    rows, the wrapped column included)."""
    from scipy.sparse import csr_array
    index = np.pad(np.arange(h * w).reshape(h, w), ((0, 0), (0, 1)), mode="wrap")
    pairs = [np.stack([index[:, :-1].reshape(-1), index[:, 1:].reshape(-1)], 1),
             np.stack([index[:-1, :].reshape(-1), index[1:, :].reshape(-1)], 1)]
    columns = np.concatenate([p.reshape(-1) for p in pairs])
    rows = len(columns) // 2
    data = np.tile(np.array([1, -1], np.float32), rows)
    return csr_array((data, columns, np.arange(0, rows * 2 + 1, 2)), shape=(rows, h * w))


def merge(w: int, h: int, distances: List[np.ndarray], masks: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """The views' distance maps stitched into one w x h equirectangular distance map, and where any view saw
    something (ComfyUI's merge_panorama_depth)."""
    from scipy.ndimage import convolve
    from scipy.sparse import vstack
    from scipy.sparse.linalg import lsmr
    start = None
    if max(w, h) > SOLVE_FROM:
        coarse, _ = merge(w // 2, h // 2, distances, masks)
        start = F.interpolate(torch.from_numpy(coarse)[None, None], size=(h, w), mode="bilinear",
                              align_corners=False).squeeze().numpy().astype(np.float32)
    world_to_camera, intrinsics = _cameras()
    directions = sphere_directions(pixel_uv(h, w))
    homogeneous = np.concatenate([directions, np.ones_like(directions[..., :1])], -1)
    grads, grad_masks, laps, lap_masks, seen = [], [], [], [], []
    for dist, mask, e in zip(distances, masks, world_to_camera):
        camera = (homogeneous @ e.T)[..., :3]
        projected = camera @ intrinsics.T
        uv = (projected[..., :2] / projected[..., 2:3].clip(1e-12)).astype(np.float32)
        inside = (camera[..., 2].astype(np.float32) > 0) & (uv > 0).all(-1) & (uv < 1).all(-1)
        pixels = np.clip(uv, 0, 1) * np.array([dist.shape[1] - 1, dist.shape[0] - 1], np.float32)
        log_dist = np.where(inside, _sample(np.log(np.clip(dist, 1e-6, None)), pixels, 1), 0.0).astype(np.float32)
        valid = inside & (_sample(mask.astype(np.uint8), pixels, 0) > 0)
        # the sphere wraps round in x, not in y
        wrapped, wrapped_valid = np.pad(log_dist, ((0, 0), (0, 1)), mode="wrap"), np.pad(valid, ((0, 0), (0, 1)),
                                                                                           mode="wrap")
        grads.append((wrapped[:, :-1] - wrapped[:, 1:], wrapped[:-1, :] - wrapped[1:, :]))
        grad_masks.append((wrapped_valid[:, :-1] & wrapped_valid[:, 1:], wrapped_valid[:-1, :] & wrapped_valid[1:, :]))
        around = np.pad(np.pad(log_dist, ((1, 1), (0, 0)), mode="edge"), ((0, 0), (1, 1)), mode="wrap")
        laps.append(convolve(around, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32))[1:-1, 1:-1])
        around = np.pad(np.pad(valid, ((1, 1), (0, 0)), mode="edge"), ((0, 0), (1, 1)), mode="wrap")
        lap_masks.append(convolve(around.astype(np.uint8), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8))
                         [1:-1, 1:-1] == 5)
        seen.append(valid)

    def mean(values, weights):
        values, weights = np.stack(values), np.stack(weights)
        return (values * weights).sum(0) / weights.sum(0).clip(1e-3), weights.any(0).reshape(-1)
    gx, keep_x = mean([g[0] for g in grads], [m[0] for m in grad_masks])
    gy, keep_y = mean([g[1] for g in grads], [m[1] for m in grad_masks])
    lap, keep_lap = mean(laps, lap_masks)
    system = vstack([_gradient_rows(w, h)[np.concatenate([keep_x, keep_y])], _laplacian_rows(w, h)[keep_lap]])
    target = np.concatenate([gx.reshape(-1)[keep_x], gy.reshape(-1)[keep_y], lap.reshape(-1)[keep_lap]])
    x0 = None if start is None else np.log(np.clip(start, 1e-6, None)).reshape(-1)
    x = lsmr(system, target, atol=1e-5, btol=1e-5, x0=x0, show=False)[0]
    return np.exp(x).reshape(h, w).astype(np.float32), np.any(seen, axis=0)


def fill_unseen(depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Nothing constrains the solve where no view saw anything (it stays near distance 1): put it far away, 5 times
    the seen distances' 95th percentile. That is ComfyUI's torch.quantile to the bit, but taken from the two order
    statistics it interpolates (np.partition): torch.quantile refuses more than 16.7M values, and the map is the
    picture's size (a 6K panorama with sky stopped with a RuntimeError)."""
    if not mask.any() or mask.all():
        return depth
    seen = depth[mask].numpy()
    rank = torch.tensor(0.95, dtype=depth.dtype) * (len(seen) - 1)      # torch.quantile's linear rank, in float32
    below, above = int(rank), int(torch.ceil(rank))
    ordered = np.partition(seen, (below, above))
    far = torch.lerp(torch.tensor(ordered[below]), torch.tensor(ordered[above]), rank - torch.floor(rank))
    return torch.where(mask, depth, far * 5.0)


def panorama_maps(net, picture: np.ndarray, resolution_level: int, split_resolution: int, merge_resolution: int,
                  batch: int) -> dict:
    """One equirectangular picture's maps (points, depth (the distance from the centre), mask) at its size."""
    h, w = picture.shape[:2]
    scale = min(merge_resolution / max(h, w), 1.0)
    merge_h, merge_w = max(int(h * scale), 32), max(int(w * scale), 32)
    p = next(net.parameters())
    image = torch.from_numpy(np.ascontiguousarray(picture[..., :3])).to(p.device).permute(2, 0, 1).to(p.dtype) / 255
    views = split(image, split_resolution)
    distances, masks = [], []
    for i in range(0, len(views), batch):
        got = geometry(net, views[i:i + batch], resolution_level, 90.0, True, apply_mask=False, metric_scale=False)
        distances += list(got["points"].float().norm(dim=-1).cpu().numpy())
        masks += list(got["mask"].cpu().numpy())
    depth, mask = merge(merge_w, merge_h, distances, masks)
    depth, mask = torch.from_numpy(depth), torch.from_numpy(mask)
    if (merge_h, merge_w) != (h, w):
        depth = F.interpolate(depth[None, None], size=(h, w), mode="bilinear", align_corners=False).squeeze()
        mask = F.interpolate(mask[None, None].float(), size=(h, w), mode="nearest").squeeze() > 0
    depth = fill_unseen(depth, mask).numpy()
    return {"points": sphere_directions(pixel_uv(h, w)) * depth[..., None], "depth": depth, "mask": mask.numpy()}


class PanoramaGeometry(Geometry):
    """A clip of equirectangular pictures' MoGe geometry (depth.moge_panorama), one picture a pass as it is read."""
    panorama = True         # points on the sphere, z up (mesh.from_points turns them to glTF's y up)

    def __init__(self, video, net, resolution_level: int, split_resolution: int, merge_resolution: int, batch: int,
                 ctx=None):
        from nodes.common.stream import ByBatch
        self.video, self.length = video, video.length

        def make(frames):
            return [panorama_maps(net, f, resolution_level, split_resolution, merge_resolution, batch)
                    for f in frames]
        self._made = ByBatch(video, 1, make, ctx)
