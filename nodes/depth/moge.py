"""MoGe-2 (Wang et al., microsoft/MoGe): a point map, a depth map, a validity mask (sky, voids) and, in the
"-normal" models, normals of one picture, read from the file ComfyUI keeps in models/geometry_estimation/
(moge_2_vitl_normal_fp16.safetensors: the authors' state dict, their DINOv2 names kept).

The network is built from the file's shapes: a DINOv2 ViT (Meta's layout: blocks.N.attn.qkv, ls1.gamma), some of
its layers (four in the shipped models) projected and summed into a feature map at `num_tokens` patches, and a
convolutional neck whose five levels (each twice the last) the points, mask and normal heads read. The point map is
affine (x/z, y/z and log z up to a shift); the camera's focal length and the z shift are solved from it (the authors'
least squares), which gives depth, then metric scale from the class token. The pictures (depth, depth_colored,
normal_*, mask) are ComfyUI's MoGeRender's."""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.converters import MAX_BLOCKS

OUTPUTS = ("depth", "depth_colored", "normal_opengl", "normal_directx", "mask")
TOKENS = (1200, 3600)       # MoGe-2's num_tokens_range: resolution_level 0 .. 9 spans it
PATCH = 14
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# quantiles of the disparity spread over 0..1 (ComfyUI's _normalize_disparity): a speck at the lens is left out
TAIL = 0.001
WANT = ("a MoGe-2 file from ComfyUI's models/geometry_estimation/ (moge_2_vitl_normal_fp16.safetensors, from "
        "huggingface.co/Comfy-Org/MoGe) or the authors' model.pt (Ruicheng/moge-2-vitl-normal)")


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class _SwiGLU(nn.Module):
    """ViT-g's feed-forward (Meta's SwiGLUFFNFused)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w12, self.w3 = nn.Linear(dim, 2 * hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class _Scale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, swiglu: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.mlp = (_SwiGLU if swiglu else _Mlp)(dim, hidden)
        self.ls1, self.ls2 = _Scale(dim), _Scale(dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _ViT(nn.Module):
    """DINOv2 as MoGe ships it (no register tokens), under Meta's names."""

    def __init__(self, dim: int, depth: int, hidden: int, swiglu: bool, positions: int):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, PATCH, PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, positions + 1, dim))
        self.blocks = nn.ModuleList(_Block(dim, dim // 64, hidden, swiglu) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def positions(self, rows: int, cols: int):
        pos = self.pos_embed.float()
        m = int(round((pos.shape[1] - 1) ** 0.5))
        if rows == cols == m:
            return pos
        # DINOv2's hub models: bicubic by scale factor with its 0.1 offset, not by size (the grid lands elsewhere)
        grid = F.interpolate(pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2), mode="bicubic",
                             scale_factor=((rows + 0.1) / m, (cols + 0.1) / m), antialias=False)
        return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)

    def layers(self, x, take: List[int]):
        """The normed tokens after each of the blocks `take`: (patch tokens, class token) of each."""
        rows, cols = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.positions(rows, cols).to(x.dtype)
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in take:
                y = self.norm(x)
                out.append((y[:, 1:], y[:, 0]))
        return out


class _ResBlock(nn.Module):
    def __init__(self, dim: int, hidden: int, norms: bool):
        super().__init__()
        self.layers = nn.Sequential(nn.GroupNorm(1, dim) if norms else nn.Identity(), nn.ReLU(),
                                    nn.Conv2d(dim, hidden, 3, padding=1, padding_mode="replicate"),
                                    nn.GroupNorm(hidden // 32, hidden) if norms else nn.Identity(), nn.ReLU(),
                                    nn.Conv2d(hidden, dim, 3, padding=1, padding_mode="replicate"))

    def forward(self, x):
        return x + self.layers(x)


def _conv1(state, key):
    w = state.get(key + ".weight")
    return nn.Identity() if w is None else nn.Conv2d(w.shape[1], w.shape[0], 1)


def _resampler(state, key):
    """Twice the size: a 2x2 transposed conv (its weight in, out, 2, 2) or bilinear, each then a 3x3 conv."""
    w = state.get(key + ".0.weight")
    if w is not None and w.ndim == 4 and w.shape[-1] == 2:
        return nn.Sequential(nn.ConvTranspose2d(w.shape[0], w.shape[1], 2, stride=2),
                             nn.Conv2d(w.shape[1], w.shape[1], 3, padding=1, padding_mode="replicate"))
    w = state[key + ".1.weight"]
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1, padding_mode="replicate"))


def _dims(resampler: nn.Sequential):
    conv = resampler[0] if isinstance(resampler[0], nn.ConvTranspose2d) else resampler[1]
    return conv.in_channels, conv.out_channels


class _ConvStack(nn.Module):
    """The neck and each head: per level, the input added to the running map, residual blocks (none at some
    levels: the shipped ViT-L has none at the first and last), an output; twice the size to the next level. Its
    shape is read from the state dict under `prefix`: the resamplers give the levels and their widths."""

    def __init__(self, state: Dict, prefix: str):
        super().__init__()
        steps = 1 + max(int(k[len(prefix):].split(".")[1]) for k in state if k.startswith(prefix + "resamplers."))
        self.resamplers = nn.ModuleList(_resampler(state, f"{prefix}resamplers.{i}") for i in range(steps))
        dims = [_dims(r)[0] for r in self.resamplers] + [_dims(self.resamplers[-1])[1]]
        blocks = []
        for i, dim in enumerate(dims):
            key = f"{prefix}res_blocks.{i}."
            count = len({k[len(key):].split(".")[0] for k in state if k.startswith(key)})
            hidden = state[f"{key}0.layers.2.weight"].shape[0] if count else dim
            norms = f"{key}0.layers.0.weight" in state
            blocks.append(nn.Sequential(*(_ResBlock(dim, hidden, norms) for _ in range(count))))
        self.input_blocks = nn.ModuleList(_conv1(state, f"{prefix}input_blocks.{i}") for i in range(len(dims)))
        self.res_blocks = nn.ModuleList(blocks)
        self.output_blocks = nn.ModuleList(_conv1(state, f"{prefix}output_blocks.{i}") for i in range(len(dims)))

    def forward(self, features):
        out, x = [], None
        for i, blocks in enumerate(self.res_blocks):
            f = self.input_blocks[i](features[i])
            x = f if x is None else x + f
            x = blocks(x)
            out.append(self.output_blocks[i](x))
            if i < len(self.resamplers):
                x = self.resamplers[i](x)
        return out


def view_plane_uv(width: int, height: int, aspect: float, dtype=None, device=None):
    """(H, W, 2) pixel centres on the view plane, the half diagonal 1 (MoGe's normalized_view_plane_uv)."""
    span_x, span_y = aspect / (1 + aspect ** 2) ** 0.5, 1 / (1 + aspect ** 2) ** 0.5
    u = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, dtype=dtype, device=device)
    v = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, dtype=dtype,
                       device=device)
    return torch.stack(torch.meshgrid(u, v, indexing="xy"), dim=-1)


class MoGe2(nn.Module):
    def __init__(self, state: Dict):
        super().__init__()
        vit = "encoder.backbone."
        dim = state[vit + "cls_token"].shape[-1]
        depth = 1 + max(int(k[len(vit) + 7:].split(".")[0]) for k in state if k.startswith(vit + "blocks."))
        if depth > MAX_BLOCKS:      # each is built before its weights are matched: a name is not a block
            raise NodeError(f"its tensor names number {depth:,} blocks of {vit}blocks; MoGe-2 has 24 (Kinograph "
                            f"reads at most {MAX_BLOCKS}): the file is damaged or made to fill memory")
        swiglu = vit + "blocks.0.mlp.w12.weight" in state
        hidden = state[vit + ("blocks.0.mlp.w3.weight" if swiglu else "blocks.0.mlp.fc1.weight")].shape[
            1 if swiglu else 0]
        self.encoder = nn.Module()
        self.encoder.backbone = _ViT(dim, depth, hidden, swiglu, state[vit + "pos_embed"].shape[1] - 1)
        taken = len({k.split(".")[2] for k in state if k.startswith("encoder.output_projections.")})
        self.encoder.output_projections = nn.ModuleList(_conv1(state, f"encoder.output_projections.{i}")
                                                        for i in range(taken))
        # one projection per layer read, the layers evenly spread and the last one last (the shipped ViT-L's config:
        # 5, 11, 17, 23)
        self.take = [(depth // taken) * (i + 1) - 1 for i in range(taken)]
        for head in ("neck", "points_head", "mask_head", "normal_head"):
            if any(k.startswith(head + ".") for k in state):
                setattr(self, head, _ConvStack(state, head + "."))
        for head, channels in (("points_head", 3), ("mask_head", 1), ("normal_head", 3)):
            last = getattr(self, head).output_blocks[-1] if hasattr(self, head) else None
            if last is not None and getattr(last, "out_channels", None) != channels:
                raise ValueError(f"{head}'s last level gives no {channels}-channel map")
        linears = sorted({int(k.split(".")[1]) for k in state if k.startswith("scale_head.")})
        layers: List[nn.Module] = []
        for i in linears:
            w = state[f"scale_head.{i}.weight"]
            layers += [nn.ReLU()] * (i - len(layers)) + [nn.Linear(w.shape[1], w.shape[0])]
        self.scale_head = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image, num_tokens: int) -> Dict[str, torch.Tensor]:
        """image (B, 3, H, W) in 0..1 -> affine points (B, H, W, 3), mask probability, normals, metric scale."""
        b, _, h, w = image.shape
        aspect = w / h
        rows, cols = round((num_tokens / aspect) ** 0.5), round((num_tokens * aspect) ** 0.5)
        x = F.interpolate(image, (rows * PATCH, cols * PATCH), mode="bilinear", align_corners=False, antialias=True)
        layers = self.encoder.backbone.layers((x - self.mean) / self.std, self.take)
        feature = sum(proj(tokens.transpose(1, 2).unflatten(2, (rows, cols)))
                      for proj, (tokens, _) in zip(self.encoder.output_projections, layers))
        levels = [view_plane_uv(cols * 2 ** i, rows * 2 ** i, aspect, x.dtype, x.device).permute(2, 0, 1)
                  .expand(b, -1, -1, -1) for i in range(5)]
        levels[0] = torch.cat([feature, levels[0]], dim=1)
        neck = self.neck(levels)

        def head(name):
            return F.interpolate(getattr(self, name)(neck)[-1].float(), (h, w), mode="bilinear", align_corners=False)
        xy, log_z = head("points_head").permute(0, 2, 3, 1).split([2, 1], dim=-1)
        out = {"points": torch.cat([xy * log_z.exp(), log_z.exp()], dim=-1),
               "mask": head("mask_head").squeeze(1).sigmoid(),
               "metric_scale": self.scale_head(layers[-1][1]).float().squeeze(1).exp()}
        if hasattr(self, "normal_head"):
            out["normal"] = F.normalize(head("normal_head").permute(0, 2, 3, 1), dim=-1)
        return out


def _shift_for(uv: np.ndarray, xyz: np.ndarray, focal: Optional[float]):
    """The z shift (and focal, where not given) that best projects the points onto their pixels: the authors'
    Levenberg-Marquardt fit with their tolerance (another tolerance finds another shift)."""
    from scipy.optimize import least_squares
    xy, z = xyz[:, :2], xyz[:, 2]

    def best_focal(shift):
        p = xy / (z + shift)[:, None]
        return (p * uv).sum() / np.square(p).sum()

    def residual(shift):
        f = best_focal(shift) if focal is None else focal
        return (f * xy / (z + shift)[:, None] - uv).ravel()
    shift = float(least_squares(residual, x0=0, ftol=1e-3, method="lm")["x"].squeeze().astype(np.float32))
    return (best_focal(shift) if focal is None else focal), shift


def focal_shift(points, mask, focal=None, size=(64, 64)):
    """Each picture's focal length (relative to the half diagonal) and z shift, from its points where `mask`
    holds, sampled on a 64 x 64 grid (MoGe's recover_focal_shift)."""
    h, w = points.shape[1:3]
    uv = view_plane_uv(w, h, w / h, points.dtype, points.device)
    pts = F.interpolate(points.permute(0, 3, 1, 2), size, mode="nearest").permute(0, 2, 3, 1).cpu().numpy()
    uv = F.interpolate(uv.permute(2, 0, 1)[None], size, mode="nearest")[0].permute(1, 2, 0).cpu().numpy()
    keep = (F.interpolate(mask.float()[:, None], size, mode="nearest")[:, 0] > 0).cpu().numpy()
    focals, shifts = [], []
    for i in range(points.shape[0]):
        if keep[i].sum() < 2:       # nothing to fit: no shift, and the focal given stays
            f, s = 1.0 if focal is None else float(focal[i]), 0.0
        else:
            f, s = _shift_for(uv[keep[i]], pts[i][keep[i]], None if focal is None else float(focal[i]))
        focals.append(float(f))
        shifts.append(s)
    return (torch.tensor(focals, dtype=points.dtype, device=points.device),
            torch.tensor(shifts, dtype=points.dtype, device=points.device))


@torch.inference_mode()
def geometry(model: MoGe2, image, resolution_level: int = 9, fov_x: float = 0.0, force_projection: bool = True,
             apply_mask: bool = True, num_tokens: Optional[int] = None,
             metric_scale: bool = True) -> Dict[str, torch.Tensor]:
    """MoGe's infer (ComfyUI's MoGeInference) for a batch (B, 3, H, W) in 0..1: points (B, H, W, 3) in metres,
    camera space x right, y down, z forward; depth (B, H, W); mask (bool); intrinsics (B, 3, 3: focal lengths in
    parts of the width and height, centre 0.5, 0.5); normal where the model has a head for it. Masked-out pixels are inf in points and depth (0 in normals) when apply_mask. num_tokens, where given,
    is the patch count resolution_level would pick. Without metric_scale the points keep the affine fit's scale
    (a panorama's views, whose scales would not agree across their seams)."""
    h, w = image.shape[-2:]
    aspect = w / h
    if num_tokens is None:
        num_tokens = int(TOKENS[0] + resolution_level / 9 * (TOKENS[1] - TOKENS[0]))
    out = model(image, num_tokens)
    points, mask = out["points"].float(), out["mask"] > 0.5
    if not torch.isfinite(points[mask]).all():      # the fit below stopped on them with scipy's ValueError
        raise NodeError(f"depth.moge: the model gave points that are not numbers (NaN or infinite) where its mask "
                        f"keeps them: the model file's weights are damaged; use {WANT}")
    diag = (1 + aspect ** 2) ** 0.5
    if fov_x > 0:
        given = aspect / diag / np.tan(np.deg2rad(fov_x) / 2)
        focal, shift = focal_shift(points, mask, torch.full((points.shape[0],), given))
    else:
        focal, shift = focal_shift(points, mask)
    points[..., 2] += shift[:, None, None]
    mask = mask & (points[..., 2] > 0)
    depth = points[..., 2].clone()
    fx, fy = focal / 2 * diag / aspect, focal / 2 * diag       # in parts of the width and of the height
    if force_projection:
        v, u = torch.meshgrid((torch.arange(h, device=depth.device) + 0.5) / h,
                              (torch.arange(w, device=depth.device) + 0.5) / w, indexing="ij")
        points = torch.stack([(u - 0.5) / fx[:, None, None] * depth, (v - 0.5) / fy[:, None, None] * depth, depth],
                             dim=-1)
    if metric_scale:
        scale = out["metric_scale"]
        points, depth = points * scale[:, None, None, None], depth * scale[:, None, None]
    intrinsics = torch.zeros(points.shape[0], 3, 3, device=depth.device)
    intrinsics[:, 0, 0], intrinsics[:, 1, 1], intrinsics[:, 0, 2], intrinsics[:, 1, 2] = fx, fy, 0.5, 0.5
    intrinsics[:, 2, 2] = 1
    result = {"points": points, "depth": depth, "mask": mask, "intrinsics": intrinsics}
    if "normal" in out:
        result["normal"] = out["normal"]
    if apply_mask:
        inf = torch.tensor(float("inf"), device=depth.device)
        result["points"] = torch.where(mask[..., None], points, inf)
        result["depth"] = torch.where(mask, depth, inf)
        if "normal" in out:
            result["normal"] = torch.where(mask[..., None], out["normal"], 0.0)
    return result


def _normals_from_points(points: np.ndarray) -> np.ndarray:
    """Normals (H, W, 3) of a point map by central differences, for a model without a normal head (moge-2-vitl):
    dy x dx faces the camera in MoGe's y-down space, as the predicted ones do."""
    finite = np.isfinite(points).all(-1)
    p = np.where(finite[..., None], points, 0.0)
    dx = np.pad(p[:, 2:] - p[:, :-2], ((0, 0), (1, 1), (0, 0)))
    dy = np.pad(p[2:] - p[:-2], ((1, 1), (0, 0), (0, 0)))
    n = np.cross(dy, dx)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    return np.where(finite[..., None], n, 0.0)


def picture(geo: Dict[str, np.ndarray], output: str) -> np.ndarray:
    """uint8 HxWx3 of one frame's geometry (numpy arrays), as ComfyUI's MoGeRender draws it. depth: disparity
    spread over the frame's own range (0.1 / 99.9 percentiles), near white, masked pixels black; depth_colored: the
    same through the turbo colour map; normal_*: camera-facing normals as (n + 1) / 2, green up (OpenGL: Blender,
    Substance, glTF) or down (DirectX: Unreal), masked pixels mid-grey; mask: white where MoGe found geometry."""
    from nodes.common.color import to_uint8, turbo
    if output in ("depth", "depth_colored"):
        d = geo["depth"]
        valid = np.isfinite(d) & (d > 0)
        disparity = np.where(valid, 1.0 / np.maximum(np.where(valid, d, 1.0), 1e-6), 0.0)
        near = np.zeros(d.shape, np.float32)
        if valid.any():
            lo, hi = (float(q) for q in np.quantile(disparity[valid], (TAIL, 1 - TAIL)))
            # ComfyUI's floor on the span: a frame of one depth is drawn at 0, not mid-grey
            near = np.where(valid, np.clip((disparity - lo) / max(hi - lo, 1e-6), 0.0, 1.0), 0.0)
        if output == "depth_colored":
            return to_uint8(turbo(near))
        return np.repeat(to_uint8(near)[..., None], 3, axis=2)
    if output == "mask":
        return np.repeat((geo["mask"].astype(np.uint8) * 255)[..., None], 3, axis=2)
    n = geo["normal"] if "normal" in geo else _normals_from_points(geo["points"])
    # MoGe is OpenCV's camera (y down, z into the scene); a normal map's z leaves the surface
    n = n * np.array([1.0, -1.0 if output == "normal_opengl" else 1.0, -1.0])
    return to_uint8(np.clip(n * 0.5 + 0.5, 0.0, 1.0))


def moge_state(path: Path) -> Dict:
    """The MoGe-2 state dict in `path`, or a NodeError saying what the file is instead."""
    from nodes.generate.weights import load_weights
    state = load_weights(path)      # the authors' model.pt unwrapped: its "model" tensors, its config dropped
    if any(k.startswith("refiner.") for k in state):
        raise NodeError(f"{path.name} is MoGe-3 (its sparse 3D refiner), which Kinograph does not run yet; use "
                        f"{WANT}")
    if any(k.startswith("backbone.") for k in state):
        raise NodeError(f"{path.name} is MoGe-1 (moge_1_vitl), which Kinograph does not run; use {WANT}")
    needed = ("encoder.backbone.cls_token", "encoder.output_projections.", "neck.resamplers.",
              "points_head.resamplers.", "mask_head.resamplers.", "scale_head.0.weight")
    missing = [k for k in needed if not any(name.startswith(k) for name in state)]
    if missing:
        raise NodeError(f"{path.name} is not a MoGe-2 model (it has no {missing[0]}); it should be {WANT}")
    # the normalisation constants and DINOv2's mask token (used in its training only) are not read
    return {k: v for k, v in state.items()
            if k not in ("encoder.image_mean", "encoder.image_std", "encoder.backbone.mask_token")}


@functools.lru_cache(maxsize=2)
def _load(path: str, stamp: tuple, device: str) -> MoGe2:
    from nodes.generate.converters import check_claim
    state = moge_state(Path(path))
    try:
        check_claim(lambda: MoGe2(state), state, Path(path).name)     # its depth and widths are the file's
        model = MoGe2(state)
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    except (KeyError, IndexError, ValueError, RuntimeError) as e:     # a part missing or of another shape
        missing, unexpected = [f"{type(e).__name__}: {str(e)[:200]}"], []
    except NodeError as e:
        if Path(path).name in str(e):
            raise
        raise NodeError(f"{Path(path).name}: {e}. It should be {WANT}") from None
    if missing or unexpected:
        raise NodeError(f"{Path(path).name} does not fit MoGe-2's layout (missing {missing[:3]}, unexpected "
                        f"{unexpected[:3]}); it should be {WANT}")
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    return model.to(device, dtype).eval()


def load_moge(name: str, device: str = "cpu") -> MoGe2:
    from nodes.common.models_dirs import find_model
    path = find_model(name, "depth")
    if path.is_dir():       # a named pipe or device is named by load_weights
        raise NodeError(f"{path} is a folder; depth.moge reads one file: {WANT}")
    st = path.stat()
    return _load(str(path), (st.st_mtime_ns, st.st_size), device)


class Geometry:
    """A clip's MoGe geometry (depth.moge's GEOMETRY), made `batch` frames a pass as it is read: frames(a, b) gives
    frames a..b's maps (depth, mask, points, normal: numpy at the clip's size). Only the last pass is held (a whole
    plate's maps would not fit): renders reading the same frames together share it, a render read after another
    makes the passes again (ComfyUI holds the whole MOGE_GEOMETRY)."""
    panorama = False        # a photo's: points in the camera's space (mesh.from_points turns them to glTF's axes)

    def __init__(self, video, net: MoGe2, resolution_level: int, fov_x: float, force_projection: bool,
                 apply_mask: bool, batch: int, ctx=None):
        from nodes.common.stream import ByBatch
        self.video, self.length = video, video.length
        p = next(net.parameters())

        def make(frames):
            x = torch.from_numpy(np.ascontiguousarray(frames)).to(p.device).permute(0, 3, 1, 2).to(p.dtype) / 255.0
            geo = geometry(net, x, resolution_level, fov_x, force_projection, apply_mask)
            geo = {k: (v.float() if v.is_floating_point() else v).cpu().numpy() for k, v in geo.items()}
            return [{k: v[j] for k, v in geo.items()} for j in range(len(frames))]
        self._made = ByBatch(video, batch, make, ctx)

    def frames(self, a: int, b: int) -> list:
        return self._made.get(a, b)

    def __repr__(self) -> str:      # what the editor's viewer shows of it
        kind = "panorama geometry" if self.panorama else "geometry"
        return (f"MoGe {kind}: {self.length} frame{'s' * (self.length != 1)} of {self.video.width}×"
                f"{self.video.height} (depth.moge_render draws it, mesh.from_points meshes it)")


def infer(video, model: str, resolution_level: int = 9, fov_x: float = 0.0, force_projection: bool = True,
          apply_mask: bool = True, batch: int = 4, device: str = "cpu", ctx=None) -> Geometry:
    """MoGe's geometry of every frame of `video` (ComfyUI's LoadMoGeModel and MoGeInference), made as it is read."""
    return Geometry(video, load_moge(model, device), resolution_level, fov_x, force_projection, apply_mask, batch, ctx)


def fov(geo, axis: str = "vertical", unit: str = "degrees"):
    """(field of view, focal length in pixels) of the camera MoGe recovered for the first frame (ComfyUI's
    MoGeGeometryToFOV): 2 atan(0.5 / f) along the axis, f the focal length in parts of the width (horizontal) or the
    height (vertical), the hypotenuse of both halves for diagonal; pixels are square, so the focal length in pixels
    is the vertical one times the height."""
    if getattr(geo, "panorama", False) or not isinstance(geo, Geometry):
        what = "a panorama's (depth.moge_panorama)" if getattr(geo, "panorama", False) else \
            f"this {type(geo).__module__.split('.')[-1]} geometry"
        raise NodeError(f"depth.moge_fov reads the camera of depth.moge's geometry; {what} has none")
    if axis not in ("vertical", "horizontal", "diagonal") or unit not in ("degrees", "radians"):
        raise NodeError(f"axis {axis!r} / unit {unit!r}: choose vertical, horizontal or diagonal, and degrees or "
                        "radians")
    k = geo.frames(0, 1)[0]["intrinsics"]
    hx, hy = 0.5 / float(k[0, 0]), 0.5 / float(k[1, 1])
    angle = 2.0 * math.atan({"horizontal": hx, "vertical": hy, "diagonal": math.hypot(hx, hy)}[axis])
    return (angle if unit == "radians" else math.degrees(angle)), float(k[1, 1]) * geo.video.height


def render(geo, output: str = "depth", ctx=None):
    """A lazy clip of `geo`'s `output` picture of every frame (ComfyUI's MoGeRender)."""
    from nodes.common.stream import Progress
    if output not in OUTPUTS:
        raise NodeError(f"depth.moge_render: output {output!r}: use one of {', '.join(OUTPUTS)}")
    if not isinstance(geo, Geometry):
        raise NodeError("depth.moge_render draws depth.moge's geometry; this one is another model's (Depth Anything "
                        "3's: draw it with depth.da3_render)")
    progress = Progress(ctx, geo.length)

    def reader(a: int, b: int) -> np.ndarray:
        out = np.stack([picture(f, output) for f in geo.frames(a, b)])
        progress.add(b - a)
        return out

    return geo.video.with_(reader=reader, local=True)
