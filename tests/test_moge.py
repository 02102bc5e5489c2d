"""depth.moge against MoGe-2 as its authors publish it (microsoft/MoGe: moge/model/v2.py, modules.py, the DINOv2
copy in moge/model/dinov2, utils/geometry_torch.py and utils3d's depth_map_to_point_map), written out below and
sharing no code with nodes/depth/moge.py, on the same tiny random weights in the authors' key layout (the one
ComfyUI's moge_2_*.safetensors keep)."""
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from graph_engine import NodeError

TEMPLATES = Path(__file__).resolve().parent / "data" / "comfyui" / "templates"

# -- the authors' DINOv2 (hub vit with interpolate_offset 0.1, no antialias, no register tokens) ----------------


class RefAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class RefLayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class RefMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class RefSwiGLU(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w12, self.w3 = nn.Linear(dim, 2 * hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class RefBlock(nn.Module):
    def __init__(self, dim, heads, hidden, swiglu):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, heads)
        self.ls1 = RefLayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = RefSwiGLU(dim, hidden) if swiglu else RefMlp(dim, hidden)
        self.ls2 = RefLayerScale(dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class RefPatchEmbed(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 14, 14)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class RefDino(nn.Module):
    def __init__(self, dim, depth, heads, hidden, swiglu, grid):
        super().__init__()
        self.patch_size, self.interpolate_offset, self.num_register_tokens = 14, 0.1, 0
        self.patch_embed = RefPatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList([RefBlock(dim, heads, hidden, swiglu) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def interpolate_pos_encoding(self, x, h, w):
        previous_dtype = x.dtype
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        class_pos_embed = pos_embed[:, 0, :]
        patch_pos_embed = pos_embed[:, 1:, :]
        dim = x.shape[-1]
        h0, w0 = h // self.patch_size, w // self.patch_size
        M = int(math.sqrt(N))
        sx = float(w0 + self.interpolate_offset) / M
        sy = float(h0 + self.interpolate_offset) / M
        patch_pos_embed = nn.functional.interpolate(patch_pos_embed.reshape(1, M, M, dim).permute(0, 3, 1, 2),
                                                    mode="bicubic", antialias=False, scale_factor=(sy, sx))
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).flatten(1, 2)
        return torch.cat((class_pos_embed[:, None, :].expand(patch_pos_embed.shape[0], -1, -1), patch_pos_embed),
                         dim=1).to(previous_dtype)

    def get_intermediate_layers(self, x, n, return_class_token=True):
        B, nc, h, w = x.shape
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x, h, w)
        output = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in n:
                output.append(x)
        outputs = [self.norm(out) for out in output]
        class_tokens = [out[:, 0] for out in outputs]
        outputs = [out[:, 1:] for out in outputs]
        return tuple(zip(outputs, class_tokens))


# -- the authors' modules.py ----------------------------------------------------------------------------------------


class RefResidualConvBlock(nn.Module):
    def __init__(self, in_channels, out_channels, hidden_channels, in_norm="layer_norm", hidden_norm="group_norm"):
        super().__init__()
        self.layers = nn.Sequential(
            nn.GroupNorm(1, in_channels) if in_norm == "layer_norm" else nn.Identity(),
            nn.ReLU(),
            nn.Conv2d(in_channels, hidden_channels, kernel_size=3, padding=1, padding_mode="replicate"),
            nn.GroupNorm(hidden_channels // 32, hidden_channels) if hidden_norm == "group_norm" else nn.Identity(),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, out_channels, kernel_size=3, padding=1, padding_mode="replicate"))
        self.skip_connection = nn.Identity()

    def forward(self, x):
        return self.layers(x) + self.skip_connection(x)


class RefResampler(nn.Sequential):
    def __init__(self, in_channels, out_channels, type_):
        if type_ == "bilinear":
            nn.Sequential.__init__(self, nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                   nn.Conv2d(in_channels, out_channels, 3, 1, 1, padding_mode="replicate"))
        else:
            nn.Sequential.__init__(self, nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2),
                                   nn.Conv2d(out_channels, out_channels, 3, 1, 1, padding_mode="replicate"))


class RefMLP(nn.Sequential):
    def __init__(self, dims):
        layers = []
        for a, b in zip(dims[:-2], dims[1:-1]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        nn.Sequential.__init__(self, *layers, nn.Linear(dims[-2], dims[-1]))


class RefConvStack(nn.Module):
    def __init__(self, dim_in, dim_res_blocks, dim_out, resamplers, num_res_blocks, norms=False):
        super().__init__()
        self.input_blocks = nn.ModuleList([nn.Conv2d(a, b, 1) if a is not None else nn.Identity()
                                           for a, b in zip(dim_in, dim_res_blocks)])
        self.resamplers = nn.ModuleList([RefResampler(a, b, r) for a, b, r in
                                         zip(dim_res_blocks[:-1], dim_res_blocks[1:], resamplers)])
        norm = ("layer_norm", "group_norm") if norms else ("none", "none")
        self.res_blocks = nn.ModuleList([nn.Sequential(*(RefResidualConvBlock(d, d, d, *norm) for _ in range(n)))
                                         for d, n in zip(dim_res_blocks, num_res_blocks)])
        self.output_blocks = nn.ModuleList([nn.Conv2d(d, o, 1) if o is not None else nn.Identity()
                                            for o, d in zip(dim_out, dim_res_blocks)])

    def forward(self, in_features):
        out_features = []
        for i in range(len(self.res_blocks)):
            feature = self.input_blocks[i](in_features[i])
            if i == 0:
                x = feature
            elif feature is not None:
                x = x + feature
            x = self.res_blocks[i](x)
            out_features.append(self.output_blocks[i](x))
            if i < len(self.res_blocks) - 1:
                x = self.resamplers[i](x)
        return out_features


class RefEncoder(nn.Module):
    def __init__(self, backbone, intermediate_layers, dim_out):
        super().__init__()
        self.backbone, self.intermediate_layers = backbone, intermediate_layers
        dim = backbone.blocks[0].attn.qkv.in_features
        self.output_projections = nn.ModuleList([nn.Conv2d(dim, dim_out, 1) for _ in intermediate_layers])
        self.register_buffer("image_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, image, token_rows, token_cols):
        image_14 = F.interpolate(image, (token_rows * 14, token_cols * 14), mode="bilinear", align_corners=False,
                                 antialias=True)
        image_14 = (image_14 - self.image_mean) / self.image_std
        features = self.backbone.get_intermediate_layers(image_14, n=self.intermediate_layers)
        x = torch.stack([proj(feat.permute(0, 2, 1).unflatten(2, (token_rows, token_cols)).contiguous())
                         for proj, (feat, clstoken) in zip(self.output_projections, features)], dim=1).sum(dim=1)
        return x, features[-1][1]


# -- the authors' geometry (utils/geometry_torch.py, geometry_numpy.py; utils3d) ----------------------------------


def normalized_view_plane_uv(width, height, aspect_ratio=None, dtype=None, device=None):
    if aspect_ratio is None:
        aspect_ratio = width / height
    span_x = aspect_ratio / (1 + aspect_ratio ** 2) ** 0.5
    span_y = 1 / (1 + aspect_ratio ** 2) ** 0.5
    u = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, dtype=dtype, device=device)
    v = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, dtype=dtype,
                       device=device)
    u, v = torch.meshgrid(u, v, indexing="xy")
    return torch.stack([u, v], dim=-1)


def solve_optimal_focal_shift(uv, xyz):
    from scipy.optimize import least_squares
    uv, xy, z = uv.reshape(-1, 2), xyz[..., :2].reshape(-1, 2), xyz[..., 2].reshape(-1)

    def fn(uv, xy, z, shift):
        xy_proj = xy / (z + shift)[:, None]
        f = (xy_proj * uv).sum() / np.square(xy_proj).sum()
        return (f * xy_proj - uv).ravel()
    solution = least_squares(partial(fn, uv, xy, z), x0=0, ftol=1e-3, method="lm")
    optim_shift = solution["x"].squeeze().astype(np.float32)
    xy_proj = xy / (z + optim_shift)[:, None]
    return optim_shift, (xy_proj * uv).sum() / np.square(xy_proj).sum()


def solve_optimal_shift(uv, xyz, focal):
    from scipy.optimize import least_squares
    uv, xy, z = uv.reshape(-1, 2), xyz[..., :2].reshape(-1, 2), xyz[..., 2].reshape(-1)

    def fn(uv, xy, z, shift):
        xy_proj = xy / (z + shift)[:, None]
        return (focal * xy_proj - uv).ravel()
    solution = least_squares(partial(fn, uv, xy, z), x0=0, ftol=1e-3, method="lm")
    return solution["x"].squeeze().astype(np.float32)


def recover_focal_shift(points, mask=None, focal=None, downsample_size=(64, 64)):
    shape = points.shape
    height, width = points.shape[-3], points.shape[-2]
    points = points.reshape(-1, *shape[-3:])
    mask = None if mask is None else mask.reshape(-1, *shape[-3:-1])
    focal = focal.reshape(-1) if focal is not None else None
    uv = normalized_view_plane_uv(width, height, dtype=points.dtype, device=points.device)
    points_lr = F.interpolate(points.permute(0, 3, 1, 2), downsample_size, mode="nearest").permute(0, 2, 3, 1)
    uv_lr = F.interpolate(uv.unsqueeze(0).permute(0, 3, 1, 2), downsample_size, mode="nearest").squeeze(0)
    uv_lr = uv_lr.permute(1, 2, 0)
    mask_lr = None if mask is None else F.interpolate(mask.to(torch.float32).unsqueeze(1), downsample_size,
                                                      mode="nearest").squeeze(1) > 0
    uv_lr_np, points_lr_np = uv_lr.cpu().numpy(), points_lr.detach().cpu().numpy()
    focal_np = focal.cpu().numpy() if focal is not None else None
    mask_lr_np = None if mask is None else mask_lr.cpu().numpy()
    optim_shift, optim_focal = [], []
    for i in range(points.shape[0]):
        points_lr_i_np = points_lr_np[i] if mask is None else points_lr_np[i][mask_lr_np[i]]
        uv_lr_i_np = uv_lr_np if mask is None else uv_lr_np[mask_lr_np[i]]
        if uv_lr_i_np.shape[0] < 2:
            optim_focal.append(1)
            optim_shift.append(0)
            continue
        if focal is None:
            optim_shift_i, optim_focal_i = solve_optimal_focal_shift(uv_lr_i_np, points_lr_i_np)
            optim_focal.append(float(optim_focal_i))
        else:
            optim_shift_i = solve_optimal_shift(uv_lr_i_np, points_lr_i_np, focal_np[i])
        optim_shift.append(float(optim_shift_i))
    optim_shift = torch.tensor(optim_shift, device=points.device, dtype=points.dtype).reshape(shape[:-3])
    if focal is None:
        optim_focal = torch.tensor(optim_focal, device=points.device, dtype=points.dtype).reshape(shape[:-3])
    else:
        optim_focal = focal.reshape(shape[:-3])
    return optim_focal, optim_shift


def depth_map_to_point_map(depth, intrinsics):
    """utils3d.pt.depth_map_to_point_map: pixel centres in 0..1 unprojected through the normalised intrinsics."""
    h, w = depth.shape[-2:]
    u = (torch.arange(w, dtype=depth.dtype) + 0.5) / w
    v = (torch.arange(h, dtype=depth.dtype) + 0.5) / h
    uv1 = torch.stack([*torch.meshgrid(u, v, indexing="xy"), torch.ones(h, w)], dim=-1)
    rays = uv1 @ torch.inverse(intrinsics).transpose(-1, -2)[:, None]
    return rays * depth[..., None]


# -- the authors' v2.py MoGeModel ------------------------------------------------------------------------------


class RefMoGe(nn.Module):
    def __init__(self, backbone, take, dim_proj, neck, heads, scale_dims):
        super().__init__()
        self.encoder = RefEncoder(backbone, take, dim_proj)
        self.neck = RefConvStack(**neck)
        for name, cfg in heads.items():
            setattr(self, name, RefConvStack(**cfg))
        self.scale_head = RefMLP(scale_dims)

    def forward(self, image, num_tokens):
        batch_size, _, img_h, img_w = image.shape
        aspect_ratio = img_w / img_h
        base_h, base_w = round((num_tokens / aspect_ratio) ** 0.5), round((num_tokens * aspect_ratio) ** 0.5)
        features, cls_token = self.encoder(image, base_h, base_w)
        features = [features, None, None, None, None]
        for level in range(5):
            uv = normalized_view_plane_uv(width=base_w * 2 ** level, height=base_h * 2 ** level,
                                          aspect_ratio=aspect_ratio, dtype=image.dtype)
            uv = uv.permute(2, 0, 1).unsqueeze(0).expand(batch_size, -1, -1, -1)
            features[level] = uv if features[level] is None else torch.concat([features[level], uv], dim=1)
        features = self.neck(features)
        points, normal, mask = (getattr(self, head)(features)[-1] if hasattr(self, head) else None
                                for head in ["points_head", "normal_head", "mask_head"])
        metric_scale = self.scale_head(cls_token)
        points, normal, mask = (F.interpolate(v, (img_h, img_w), mode="bilinear", align_corners=False,
                                              antialias=False) if v is not None else None
                                for v in [points, normal, mask])
        points = points.permute(0, 2, 3, 1)
        xy, z = points.split([2, 1], dim=-1)
        z = torch.exp(z)
        points = torch.cat([xy * z, z], dim=-1)
        out = {"points": points, "mask": mask.squeeze(1).sigmoid(), "metric_scale": metric_scale.squeeze(1).exp()}
        if normal is not None:
            out["normal"] = F.normalize(normal.permute(0, 2, 3, 1), dim=-1)
        return out

    @torch.inference_mode()
    def infer(self, image, num_tokens, force_projection=True, apply_mask=True, fov_x=None):
        original_height, original_width = image.shape[-2:]
        aspect_ratio = original_width / original_height
        output = self.forward(image, num_tokens=num_tokens)
        points, normal, mask, metric_scale = (output.get(k, None) for k in ["points", "normal", "mask",
                                                                           "metric_scale"])
        mask_binary = mask > 0.5
        if fov_x is None:
            focal, shift = recover_focal_shift(points, mask_binary)
        else:
            focal = aspect_ratio / (1 + aspect_ratio ** 2) ** 0.5 / torch.tan(
                torch.deg2rad(torch.as_tensor(fov_x, dtype=points.dtype) / 2))
            if focal.ndim == 0:
                focal = focal[None].expand(points.shape[0])
            _, shift = recover_focal_shift(points, mask_binary, focal=focal)
        fx, fy = focal / 2 * (1 + aspect_ratio ** 2) ** 0.5 / aspect_ratio, focal / 2 * (1 + aspect_ratio ** 2) ** 0.5
        intrinsics = torch.zeros(points.shape[0], 3, 3)
        intrinsics[:, 0, 0], intrinsics[:, 1, 1], intrinsics[:, 0, 2], intrinsics[:, 1, 2] = fx, fy, 0.5, 0.5
        intrinsics[:, 2, 2] = 1
        points[..., 2] += shift[..., None, None]
        mask_binary &= points[..., 2] > 0
        depth = points[..., 2].clone()
        if force_projection:
            points = depth_map_to_point_map(depth, intrinsics=intrinsics)
        points *= metric_scale[:, None, None, None]
        depth *= metric_scale[:, None, None]
        if apply_mask:
            points = torch.where(mask_binary[..., None], points, torch.inf)
            depth = torch.where(mask_binary, depth, torch.inf)
            normal = torch.where(mask_binary[..., None], normal, torch.zeros_like(normal)) if normal is not None \
                else None
        out = {"points": points, "depth": depth, "mask": mask_binary, "intrinsics": intrinsics}
        if normal is not None:
            out["normal"] = normal
        return out


# -- tiny random MoGe-2s -------------------------------------------------------------------------------------------


def tiny_moge(seed=0, swiglu=False, normal=True, resampler="conv_transpose"):
    """A random MoGe-2 in the authors' layout, shaped as the shipped ViT-L (its config: neck and heads of five
    levels narrowing, no residual blocks at the first and last, no norms, three transposed-conv resamplers then a
    bilinear one; heads with a 1x1 input at each level) at a tiny width: a ViT of 4 blocks of 128 (2 heads)."""
    torch.manual_seed(seed)
    dim, hidden = 128, 96
    vit = RefDino(dim, 4, 2, hidden, swiglu, grid=4)
    widths = [64, 32, 32, 32, 16]
    steps = [resampler] * 3 + ["bilinear"]
    neck = dict(dim_in=[32 + 2, 2, 2, 2, 2], dim_res_blocks=widths, dim_out=[None] * 5, resamplers=steps,
                num_res_blocks=[0, 2, 2, 2, 0])
    head = dict(dim_in=widths, dim_res_blocks=widths, resamplers=steps, num_res_blocks=[0, 1, 1, 1, 0])
    # the mask head with the norms other MoGe-2 configs use (group norms of 32 channels)
    heads = {"points_head": dict(head, dim_out=[None] * 4 + [3]),
             "mask_head": dict(head, dim_out=[None] * 4 + [1], norms=True)}
    if normal:
        heads["normal_head"] = dict(head, dim_out=[None] * 4 + [3])
    ref = RefMoGe(vit, [0, 1, 2, 3], 32, neck, heads, [dim, 16, 16, 1]).eval()
    with torch.no_grad():
        for p in ref.parameters():      # PyTorch's own init, with the ones and zeros (norms, tokens) stirred
            if p.ndim < 2 or p.shape[0] == 1:
                p.add_(torch.randn(p.shape) * 0.1)
        # points head's last z channel near log-depth 0.5..1.5, so depth is positive, as a trained model's
        ref.points_head.output_blocks[4].bias[2] += 1.0
    return ref


def save(ref, path):
    """ComfyUI's file (a safetensors state dict), or the authors' model.pt (the state dict under "model" beside
    its config)."""
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    if path.suffix == ".pt":
        torch.save({"model": state, "model_config": {"encoder": {"backbone": "dinov2_vitl14"}}}, str(path))
    else:
        from safetensors.torch import save_file
        save_file(state, str(path))
    return path


def frames(n=2, h=28, w=40, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def model_of(path):
    from nodes.depth import moge
    return moge.load_moge(str(path))


@pytest.mark.parametrize("swiglu,resampler,file", [(False, "conv_transpose", "moge_2_tiny.safetensors"),
                                                   (True, "bilinear", "model.pt")])
def test_forward_matches_the_authors(tmp_path, swiglu, resampler, file):
    """ViT-L's MLP and ViT-g's SwiGLU, transposed-conv and bilinear resamplers, ComfyUI's file and the authors'."""
    ref = tiny_moge(swiglu=swiglu, resampler=resampler)
    net = model_of(save(ref, tmp_path / file))
    image = torch.from_numpy(frames()).permute(0, 3, 1, 2).float() / 255
    for tokens in (16, 20):     # the stored 4 x 4 grid as it is, and 4 x 5 through DINOv2's interpolation
        with torch.no_grad():
            want, got = ref(image, tokens), net(image, tokens)
        for k in ("points", "mask", "normal", "metric_scale"):
            assert torch.allclose(got[k], want[k], atol=1e-4, rtol=1e-4), (k, tokens, (got[k] - want[k]).abs().max())


@pytest.mark.parametrize("fov_x,apply_mask", [(0.0, True), (55.0, False)])
def test_geometry_matches_the_authors_infer(tmp_path, fov_x, apply_mask):
    from nodes.depth.moge import geometry
    ref = tiny_moge(seed=3)
    net = model_of(save(ref, tmp_path / "moge_2_tiny.safetensors"))
    image = torch.from_numpy(frames(seed=4)).permute(0, 3, 1, 2).float() / 255
    want = ref.infer(image.clone(), 20, fov_x=fov_x or None, apply_mask=apply_mask)
    got = geometry(net, image, fov_x=fov_x, apply_mask=apply_mask, num_tokens=20)
    assert torch.equal(got["mask"], want["mask"]) and 0 < int(want["mask"].sum()) < want["mask"].numel()
    # the focal length is solved for (fov_x 0): the solve's float32 rounding differs by ~1e-6 with the thread count
    assert torch.allclose(got["intrinsics"], want["intrinsics"], atol=1e-5, rtol=1e-4), \
        (got["intrinsics"] - want["intrinsics"]).abs().max()
    for k in ("depth", "points", "normal"):
        finite = torch.isfinite(want[k])
        assert torch.equal(torch.isfinite(got[k]), finite), k
        assert torch.allclose(got[k][finite], want[k][finite], atol=1e-4, rtol=1e-3), \
            (k, (got[k][finite] - want[k][finite]).abs().max())


def comfy_pictures(geo, output):
    """ComfyUI's MoGeRender (comfy_extras/nodes_moge.py) for one frame, written out: disparity spread by its 0.1 /
    99.9 percentiles over the valid pixels; normals flipped to a normal map's convention."""
    if output in ("depth", "depth_colored"):
        d = geo["depth"]
        valid = torch.isfinite(d) & (d > 0)
        disp = torch.where(valid, 1.0 / d.clamp_min(1e-6), torch.zeros_like(d))
        lo, hi = torch.quantile(disp[valid], 0.001), torch.quantile(disp[valid], 0.999)
        norm = ((disp - lo) / (hi - lo).clamp_min(1e-6)).clamp(0.0, 1.0)
        x = torch.where(valid, norm, torch.zeros_like(norm))
        if output == "depth":
            return x[..., None].expand(*d.shape, 3)
        x2 = x * x
        x3 = x2 * x
        x4 = x2 * x2
        x5 = x4 * x
        r = 0.13572138 + 4.61539260*x - 42.66032258*x2 + 132.13108234*x3 - 152.94239396*x4 + 59.28637943*x5
        g = 0.09140261 + 2.19418839*x + 4.84296658*x2 - 14.18503333*x3 + 4.27729857*x4 + 2.82956604*x5
        b = 0.10667330 + 12.64194608*x - 60.58204836*x2 + 110.36276771*x3 - 89.90310912*x4 + 27.34824973*x5
        return torch.stack([r, g, b], dim=-1).clamp(0.0, 1.0)
    if output == "mask":
        return geo["mask"].float()[..., None].expand(*geo["mask"].shape, 3)
    y = -1.0 if output == "normal_opengl" else 1.0
    return (geo["normal"] * torch.tensor([1.0, y, -1.0]) * 0.5 + 0.5).clamp(0, 1)


def test_clip_pictures_match_the_authors_and_comfyui(tmp_path, monkeypatch):
    """depth.moge_render's pictures of a 3-frame clip (batch 2: a full and a part batch) are ComfyUI's renders of the
    authors' geometry, frame by frame, to one 8-bit level (geometry a few 1e-5 apart can round the other way); its
    field of view is ComfyUI's MoGeGeometryToFOV's."""
    from graph_engine.clip import Clip
    from nodes.depth import moge
    ref = tiny_moge(seed=5)
    path = save(ref, tmp_path / "moge_2_tiny.safetensors")
    monkeypatch.setattr(moge, "TOKENS", (16, 16))     # resolution_level's tokens, kept small for the test
    clip = Clip.from_array(frames(3, seed=6), fps=24)
    image = torch.from_numpy(clip.frames(0, 3)).permute(0, 3, 1, 2).float() / 255
    want = ref.infer(image, 16)
    geo = moge.infer(clip, str(path), batch=2)
    got = {o: moge.render(geo, o).frames(0, 3) for o in moge.OUTPUTS}
    for output in moge.OUTPUTS:
        for i in range(3):
            expected = comfy_pictures({k: v[i] for k, v in want.items()}, output).numpy() * 255
            assert np.abs(got[output][i].astype(float) - expected).max() <= 1.0, (output, i)
    # depth.moge_fov (MoGeGeometryToFOV): ComfyUI's angle and focal length in pixels from the first frame's camera
    for axis, unit in (("horizontal", "degrees"), ("vertical", "radians"), ("diagonal", "degrees")):
        assert moge.fov(geo, axis, unit) == pytest.approx(comfy_geometry_to_fov(want, axis, unit), rel=1e-5)
    # the pictures hold something: near white and far black in depth, sky (masked) and geometry in the mask
    assert (got["depth"] == 255).any() and ((got["depth"] == 0) & want["mask"].numpy()[..., None]).any()
    assert (got["mask"] == 0).any() and (got["mask"] == 255).any()


def test_normals_of_a_model_without_a_normal_head(tmp_path, monkeypatch):
    """moge-2-vitl has no normal head: its normal map is drawn from the point map (ComfyUI's fallback: central
    differences, dy x dx, zero at the border and where the points are masked out)."""
    from graph_engine.clip import Clip
    from nodes.depth import moge
    ref = tiny_moge(seed=9, normal=False)
    path = save(ref, tmp_path / "moge_2_vitl.safetensors")
    monkeypatch.setattr(moge, "TOKENS", (16, 16))
    clip = Clip.from_array(frames(1, seed=10), fps=24)
    points = ref.infer(torch.from_numpy(clip.frames(0, 1)).permute(0, 3, 1, 2).float() / 255, 16)["points"][0]
    finite = torch.isfinite(points).all(-1, keepdim=True)
    p = torch.where(finite, points, torch.zeros_like(points))
    dx = F.pad((p[:, 2:] - p[:, :-2]).permute(2, 0, 1), (1, 1, 0, 0)).permute(1, 2, 0)
    dy = F.pad((p[2:] - p[:-2]).permute(2, 0, 1), (0, 0, 1, 1)).permute(1, 2, 0)
    n = torch.where(finite, F.normalize(torch.cross(dy, dx, dim=-1), dim=-1), torch.zeros_like(p))
    got = moge.render(moge.infer(clip, str(path)), "normal_directx").frames(0, 1)[0]
    expected = comfy_pictures({"normal": n}, "normal_directx").numpy() * 255
    assert np.abs(got.astype(float) - expected).max() <= 1.0
    assert len(np.unique(got.reshape(-1, 3), axis=0)) > 10


def comfy_geometry_to_fov(moge_geometry, axis, unit):
    """ComfyUI's MoGeGeometryToFOV.execute (comfy_extras/nodes_moge.py), written out."""
    K = moge_geometry.get("intrinsics") if isinstance(moge_geometry, dict) else None
    if K.ndim == 3:
        K = K[0]
    hx = 0.5 / float(K[0, 0].item())
    hy = 0.5 / float(K[1, 1].item())
    half_tan = {"horizontal": hx, "vertical": hy, "diagonal": math.hypot(hx, hy)}[axis]
    fov_radians = 2.0 * math.atan(half_tan)
    fov = fov_radians if unit == "radians" else math.degrees(fov_radians)
    src = next((moge_geometry[k] for k in ("image", "points", "depth") if k in moge_geometry), None)
    H = int(src.shape[1])
    focal_pixels = float(K[1, 1].item()) * H
    return fov, focal_pixels


def test_files_that_are_not_moge_2_are_named(tmp_path):
    from safetensors.torch import save_file
    v3 = tmp_path / "moge_3_vitl_fp16.safetensors"
    save_file({"encoder.backbone.cls_token": torch.zeros(1, 1, 8), "refiner.x.weight": torch.zeros(2)}, str(v3))
    v1 = tmp_path / "moge_1_vitl_fp16.safetensors"
    save_file({"backbone.cls_token": torch.zeros(1, 1, 8), "head.projects.0.weight": torch.zeros(2)}, str(v1))
    other = tmp_path / "flux_vae.safetensors"
    save_file({"decoder.conv_in.weight": torch.zeros(2)}, str(other))
    cut = tmp_path / "moge_2_cut.safetensors"      # a half-copied file: the points head's last levels missing
    state = tiny_moge(seed=11).state_dict()
    save_file({k: v.contiguous() for k, v in state.items() if not k.startswith("points_head.output_blocks")},
              str(cut))
    for path, said in ((v3, "MoGe-3"), (v1, "MoGe-1"), (other, "is not a MoGe-2 model"),
                       (cut, "does not fit MoGe-2's layout")):
        with pytest.raises(NodeError) as e:
            model_of(path)
        assert said in str(e.value) and "moge_2_vitl_normal_fp16.safetensors" in str(e.value)


def test_each_render_reads_only_its_own_models_geometry():
    """depth.moge_render given Depth Anything 3's GEOMETRY, or depth.da3_render MoGe's, says which render to use;
    depth.moge_fov given a panorama's (which has no camera) or Depth Anything 3's says what it reads."""
    from nodes.depth import da3, moge
    from nodes.depth.moge_panorama import PanoramaGeometry
    for other in (object.__new__(PanoramaGeometry), object.__new__(da3.Geometry)):
        with pytest.raises(NodeError, match="depth.moge_fov reads the camera of depth.moge's geometry"):
            moge.fov(other, "horizontal", "degrees")
    with pytest.raises(NodeError, match="depth.da3_render"):
        moge.render(object.__new__(da3.Geometry), "depth")
    for call in (lambda g: da3.render(g, "depth", "v2_style", False, False), da3.camera):
        with pytest.raises(NodeError, match="depth.moge_render"):
            call(object.__new__(moge.Geometry))


def comfyui_setup(ref, tmp_path, monkeypatch, picture, size=(28, 40)):
    """`ref` kept where ComfyUI keeps it (models/geometry_estimation/moge_2_vitl_normal_fp16.safetensors, the
    templates' file) and read at 16 patches, and a random picture written as tmp_path/picture; returns the picture."""
    import cv2
    from nodes.depth import moge
    folder = tmp_path / "models" / "geometry_estimation"
    folder.mkdir(parents=True)
    save(ref, folder / "moge_2_vitl_normal_fp16.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(moge, "TOKENS", (16, 16))
    frame = frames(1, *size, seed=8)[0]
    cv2.imwrite(str(tmp_path / picture), frame[:, :, ::-1])
    return frame


def test_comfyui_template_runs_as_comfyui_renders(tmp_path, monkeypatch):
    """utility_moge_depth_estimation imported (LoadImage, its size switch, the MoGe subgraph: LoadMoGeModel,
    MoGeInference, three MoGeRenders) and run on a tiny MoGe-2 kept as ComfyUI keeps it
    (models/geometry_estimation/moge_2_vitl_normal_fp16.safetensors): each render is ComfyUI's of the authors'
    geometry."""
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    ref = tiny_moge(seed=7)
    frame = comfyui_setup(ref, tmp_path, monkeypatch, "plate.png")
    res = import_workflow(str(TEMPLATES / "utility_moge_depth_estimation.json"))
    wf = load_workflow(text=res.yaml, check=False)
    renders = {n.params["output"]: nid for nid, n in wf.graph.nodes.items() if n.type == "depth.moge_render"}
    assert [n.type for n in wf.graph.nodes.values()].count("depth.moge") == 1     # one model pass for all three
    assert sorted(renders) == ["depth", "depth_colored", "mask"]
    for n in wf.graph.nodes.values():
        if n.type == "io.load_image":
            n.params["path"] = str(tmp_path / "plate.png")
    run = Session(device="cpu").run(wf, targets=list(renders.values()), use_cache=False)
    assert run.ok, run.failed
    want = ref.infer(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255, 16)
    for output, nid in renders.items():
        got = run.outputs[nid]["video"].frames(0, 1)[0]
        expected = comfy_pictures({k: v[0] for k, v in want.items()}, output).numpy() * 255
        assert np.abs(got.astype(float) - expected).max() <= 1.0, output


def test_a_given_field_of_view_is_kept_where_nothing_is_left_to_fit():
    """With fov_x given and fewer than two unmasked samples (a frame of sky), the authors' recover_focal_shift keeps
    the given focal (only the shift falls back to 0): it came back as 1.0, so the points were projected with
    another camera than the one asked for."""
    from nodes.depth import moge
    torch.manual_seed(0)
    points = torch.randn(2, 8, 8, 3)
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    given = torch.tensor([0.7, 1.3])
    want_focal, want_shift = recover_focal_shift(points, mask, given)
    focal, shift = moge.focal_shift(points, mask, given)
    assert torch.allclose(focal, want_focal) and torch.allclose(shift, want_shift)
    assert torch.allclose(focal, given)


@pytest.mark.parametrize("output", ["depth", "depth_colored"])
def test_a_frame_of_one_depth_is_drawn_as_comfyui_draws_it(output):
    """A frame whose valid pixels all lie at one depth (one pixel left by the mask, a flat card): ComfyUI's
    _normalize_disparity divides by its 1e-6 floor, so they are drawn at 0 (black; Turbo's dark blue); they came
    out mid-grey (the shared spread's 'flat is 0.5')."""
    from nodes.depth import moge
    depth = np.full((6, 8), np.inf, np.float32)
    depth[2:4, 3:6] = 2.5
    geo = {"depth": depth, "mask": np.isfinite(depth)}
    got = moge.picture(geo, output)
    expected = comfy_pictures({"depth": torch.from_numpy(depth)}, output).numpy() * 255
    assert np.abs(got.astype(float) - expected).max() <= 1.0


@pytest.mark.timeout(30)
def test_a_file_claiming_a_far_larger_network_is_named_before_it_is_built(tmp_path):
    """MoGe-2's network is made from the file's shapes and names: block 100,000 named by one empty tensor made
    100,001 ViT blocks (built in memory before any word), and an MLP width said by a tensor of no values (50,000, 0)
    built 200 MB of layers the file does not hold (a larger claim fills the machine's memory). Both are refused from
    the names and a build on the meta device."""
    from safetensors.torch import save_file
    state = {k: v.contiguous() for k, v in tiny_moge(seed=12).state_dict().items()}
    deep = tmp_path / "moge_2_deep.safetensors"
    save_file({**state, "encoder.backbone.blocks.100000.norm1.weight": torch.zeros(0)}, str(deep))
    wide = tmp_path / "moge_2_wide.safetensors"
    save_file({**state, **{f"encoder.backbone.blocks.{i}.mlp.fc1.weight": torch.zeros(50_000, 0) for i in range(4)}},
              str(wide))
    for path, said in ((deep, "100,001 blocks of encoder.backbone.blocks"), (wide, "far more than the file's")):
        with pytest.raises(NodeError, match=f"{path.name}.*{said}"):
            model_of(path)


def test_a_model_giving_nan_points_is_named(tmp_path):
    """A MoGe-2 file whose weights hold NaN (damaged in a copy, or a broken quantisation) gave NaN points, which the
    focal and shift fit stopped on with scipy's 'Residuals are not finite in the initial point' ValueError."""
    ref = tiny_moge(seed=3)
    with torch.no_grad():
        ref.points_head.output_blocks[4].bias[0] = float("nan")
        ref.mask_head.output_blocks[4].bias.fill_(10.0)       # every pixel kept, so the fit reads the NaN points
    from graph_engine.clip import Clip
    from nodes.depth import moge
    geo = moge.infer(Clip.from_array(frames(n=1)), str(save(ref, tmp_path / "moge_2_nan.safetensors")))
    with pytest.raises(NodeError, match="depth.moge: the model gave points that are not numbers .*damaged.*"
                                        "moge_2_vitl_normal_fp16"):
        geo.frames(0, 1)


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="named pipes are POSIX's")
def test_a_named_pipe_in_place_of_the_model_is_named_as_one(tmp_path, monkeypatch):
    """A named pipe called moge_2_vitl_normal_fp16.safetensors was said to be 'a folder'."""
    import os
    pipe = tmp_path / "moge_2_vitl_normal_fp16.safetensors"
    os.mkfifo(pipe)
    with pytest.raises(NodeError, match="named pipe"):
        model_of(pipe)


def test_the_editor_viewer_shows_a_geometry_as_its_summary():
    """Viewing depth.moge's or depth.moge_panorama's output in the editor: a GEOMETRY is no clip (its frames(a, b)
    are maps, it has no frame rate), so the viewer says what it is instead of failing on it (it raised
    AttributeError 'fps' in the viewer's slot, and nothing showed)."""
    from app.editor.viewer import Source
    from graph_engine import Clip
    from nodes.depth.moge import Geometry
    from nodes.depth.moge_panorama import PanoramaGeometry
    video = Clip.from_array(np.zeros((2, 28, 40, 3), np.uint8))
    net = nn.Linear(1, 1)           # nothing is inferred: the maps are made only when read
    photo = Source(Geometry(video, net, 9, 0.0, True, True, 1), "moge.geometry")
    assert photo.length == 0 and "MoGe geometry: 2 frames of 40×28" in photo.text
    pano = Source(PanoramaGeometry(video, net, 9, 512, 1920, 4), "pano.geometry")
    assert pano.length == 0 and "MoGe panorama geometry: 2 frames of 40×28" in pano.text
