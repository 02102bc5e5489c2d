"""Depth Anything 3 (ByteDance Seed) from the files ComfyUI's LoadDA3Model reads (Comfy-Org/Depth-Anything-3,
models/geometry_estimation/): a DINOv2 encoder with DA3's additions (QK-norm, 2D RoPE, attention that alternates
between each view and all views, a camera token) and a DPT head (Mono / Metric Large: depth and sky) or a DualDPT
head (Small / Base: depth and its confidence). The file's tensors keep ComfyUI's names (backbone.* is Hugging Face's
DINOv2 layout, head.* the authors'); what the names do not say (the encoder layers the head reads, where the
alternating attention starts) is the released variants' settings, found from the encoder's depth and whether it
has QK-norm; the authors' own layout (depth-anything/DA3-*'s model.safetensors) is read too. Frames are sized as
ComfyUI sizes them (Lanczos, sides rounded to the patch) and the maps sized back bilinearly. Mono: each frame alone, as ComfyUI's mono mode. Multi-view (Small / Base): the frames of each group of
`views` are one scene, seen together through the all-view attention; ComfyUI takes the whole batch as one scene."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from graph_engine import NodeError
from nodes.common.color import turbo

PATCH = 14
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RESIZES = ("upper_bound_resize", "lower_bound_resize")
MODES = ("mono", "multiview")
REF_VIEWS = ("saddle_balanced", "saddle_sim_range", "first", "middle")
PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "")
# The encoder layers the head reads, by (encoder depth, any-view): the released variants' configs (da3-small /
# da3-base, da3-large, da3mono-large / da3metric-large, da3-giant); the file does not hold them.
OUT_LAYERS = {(12, True): (5, 7, 9, 11), (24, True): (11, 15, 19, 23), (24, False): (4, 11, 17, 23),
              (40, True): (19, 27, 33, 39)}
ROPE_FREQ = 100.0
SKY_THRESHOLD = 0.3
WHAT = ("a Depth Anything 3 file as ComfyUI's LoadDA3Model reads it (Comfy-Org/Depth-Anything-3: "
        "depth_anything_3_small / _base / _mono_large / _metric_large.safetensors, in models/geometry_estimation/)")


@dataclass(frozen=True)
class Config:
    dim: int
    layers: int
    swiglu: bool
    alt_start: int            # first all-view / QK-norm / RoPE layer; -1: none (Mono / Metric)
    cat_token: bool           # the head reads each out layer's per-view tokens beside its all-view ones
    out_layers: Tuple[int, ...]
    dual: bool                # DualDPT (depth + confidence); else DPT (depth, sky)
    features: int
    out_channels: Tuple[int, ...]
    output_dim: int
    sky: bool
    head_norm: bool
    cam_dec: bool = False     # the camera decoder (Small / Base): each view's pose and field of view

    @property
    def heads(self) -> int:
        return self.dim // 64

    @property
    def variant(self) -> str:
        size = {384: "Small", 768: "Base", 1024: "Large", 1536: "Giant"}.get(self.dim, f"{self.dim}-wide")
        return f"DA3 {size}" if self.alt_start >= 0 else f"DA3 Mono/Metric {size}"


def detect(shapes: Dict[str, Tuple[int, ...]], name: str = "") -> Config:
    """The variant from the tensors' names and shapes, or a NodeError naming what the file is instead."""
    what, state = name or "the file", shapes
    if "backbone.embeddings.patch_embeddings.projection.weight" not in state or "head.projects.0.weight" not in state:
        if any("depth_head" in k or k.startswith("pretrained.") for k in state):
            raise NodeError(f"{what} is a Depth Anything V1/V2 file: depth.estimate reads those (as their Hugging "
                            f"Face folder); depth.da3 reads {WHAT}")
        raise NodeError(f"{what} is not a Depth Anything 3 file (no backbone.embeddings / head.projects tensors); "
                        f"use {WHAT}")
    from nodes.generate.weights import sizes_of
    # a damaged header (a 0-dimensional tensor, a layer numbered "x") is named, not an IndexError traceback that
    # stopped `kinograph info` on the whole models folder
    with sizes_of(what, "a Depth Anything 3 file"):
        dim = state["backbone.embeddings.patch_embeddings.projection.weight"][0]
        layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("backbone.encoder.layer."))
        qk = sorted(int(k.split(".")[3]) for k in state if k.startswith("backbone.encoder.layer.")
                    and k.endswith("attention.q_norm.weight"))
        alt = qk[0] if qk else -1
        dim_in = state["head.projects.0.weight"][1]
        key = (layers, alt >= 0)
        if key not in OUT_LAYERS or dim_in not in (dim, 2 * dim):
            raise NodeError(f"{what}: a Depth Anything 3 layout with {layers} encoder layers{' and QK-norm' if qk else ''} "
                            f"that no released variant has; use {WHAT}")
        return Config(dim=dim, layers=layers, swiglu="backbone.encoder.layer.0.mlp.weights_in.weight" in state,
                      alt_start=alt, cat_token=dim_in == 2 * dim, out_layers=OUT_LAYERS[key],
                      dual="head.scratch.refinenet1_aux.out_conv.weight" in state,
                      features=state["head.scratch.layer1_rn.weight"][0],
                      out_channels=tuple(state[f"head.projects.{i}.weight"][0] for i in range(4)),
                      output_dim=state["head.scratch.output_conv2.2.weight"][0],
                      sky="head.scratch.sky_output_conv2.0.weight" in state, head_norm="head.norm.weight" in state,
                      cam_dec="cam_dec.fc_t.weight" in state)


def _unprefixed(state: Dict[str, "object"]) -> Dict[str, "object"]:
    for p in PREFIXES:
        if p and any(k.startswith(p + "backbone.") for k in state):
            return {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
    return state


# The authors' encoder names (DINOv2's, under backbone.pretrained.) in ComfyUI's: whole names, then a block's parts.
AUTHORS_TOP = (("patch_embed.proj.", "embeddings.patch_embeddings.projection."), ("cls_token", "embeddings.cls_token"),
               ("pos_embed", "embeddings.position_embeddings"), ("camera_token", "embeddings.camera_token"),
               ("mask_token", "embeddings.mask_token"), ("norm.", "layernorm."))
AUTHORS_BLOCK = (("attn.proj.", "attention.output.dense."), ("attn.q_norm.", "attention.q_norm."),
                 ("attn.k_norm.", "attention.k_norm."), ("ls1.gamma", "layer_scale1.lambda1"),
                 ("ls2.gamma", "layer_scale2.lambda1"), ("mlp.w12.", "mlp.weights_in."), ("mlp.w3.", "mlp.weights_out."))


def comfy_names(state: Dict[str, "object"], thirds) -> Dict[str, "object"]:
    """`state` with the authors' layout (the Hugging Face depth-anything/DA3-* files: backbone.pretrained.*, one
    fused qkv a block) in ComfyUI's names, which the rest reads; ComfyUI's own files pass as they are. `thirds(v)`
    splits a fused qkv tensor (or its shape) into q, k and v."""
    out = {}
    for k, v in state.items():
        if not k.startswith("backbone.pretrained."):
            out[k] = v
            continue
        rest = k[len("backbone.pretrained."):]
        if not rest.startswith("blocks."):
            new = next((b + rest[len(a):] for a, b in AUTHORS_TOP if rest.startswith(a)), rest)
            out["backbone." + new] = v
            continue
        n, part = rest[len("blocks."):].split(".", 1)
        base = f"backbone.encoder.layer.{n}."
        if part.startswith("attn.qkv."):
            for name, third in zip(("query", "key", "value"), thirds(v)):
                out[f"{base}attention.attention.{name}.{part.rsplit('.', 1)[1]}"] = third
            continue
        out[base + next((b + part[len(a):] for a, b in AUTHORS_BLOCK if part.startswith(a)), part)] = v
    return out


# -- the network -----------------------------------------------------------------------------------------------
def _build(cfg: Config):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Node(nn.Module):
        """A named container, so the parameters carry the file's names."""

    class Attention(nn.Module):
        def __init__(self, qk_norm: bool):
            super().__init__()
            self.attention, self.output = Node(), Node()
            for n in ("query", "key", "value"):
                setattr(self.attention, n, nn.Linear(cfg.dim, cfg.dim))
            self.output.dense = nn.Linear(cfg.dim, cfg.dim)
            d = cfg.dim // cfg.heads
            self.q_norm = nn.LayerNorm(d) if qk_norm else None
            self.k_norm = nn.LayerNorm(d) if qk_norm else None

        def forward(self, x, pos):
            b, n, c = x.shape
            h = cfg.heads
            q, k, v = (getattr(self.attention, s)(x).view(b, n, h, c // h).transpose(1, 2)
                       for s in ("query", "key", "value"))
            if self.q_norm is not None:
                q, k = self.q_norm(q), self.k_norm(k)
            if pos is not None:
                q, k = rope(q, pos), rope(k, pos)
            out = F.scaled_dot_product_attention(q, k, v)
            return self.output.dense(out.transpose(1, 2).reshape(b, n, c))

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.lambda1 = nn.Parameter(torch.ones(cfg.dim))

        def forward(self, x):
            return x * self.lambda1

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            if cfg.swiglu:
                hidden = (int(cfg.dim * 4 * 2 / 3) + 7) // 8 * 8
                self.weights_in, self.weights_out = nn.Linear(cfg.dim, 2 * hidden), nn.Linear(hidden, cfg.dim)
            else:
                self.fc1, self.fc2 = nn.Linear(cfg.dim, 4 * cfg.dim), nn.Linear(4 * cfg.dim, cfg.dim)

        def forward(self, x):
            if cfg.swiglu:
                a, g = self.weights_in(x).chunk(2, dim=-1)
                return self.weights_out(F.silu(a) * g)
            return self.fc2(F.gelu(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self, i: int):
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(cfg.dim, eps=1e-6), nn.LayerNorm(cfg.dim, eps=1e-6)
            self.attention = Attention(cfg.alt_start >= 0 and i >= cfg.alt_start)
            self.layer_scale1, self.layer_scale2, self.mlp = Scale(), Scale(), Mlp()

        def forward(self, x, pos=None):
            x = x + self.layer_scale1(self.attention(self.norm1(x), pos))
            return x + self.layer_scale2(self.mlp(self.norm2(x)))

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            e = self.embeddings = Node()
            e.patch_embeddings = Node()
            e.patch_embeddings.projection = nn.Conv2d(3, cfg.dim, PATCH, PATCH)
            e.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
            e.position_embeddings = nn.Parameter(torch.zeros(1, 37 * 37 + 1, cfg.dim))
            if cfg.alt_start >= 0:
                e.camera_token = nn.Parameter(torch.zeros(1, 2, cfg.dim))
            self.encoder = Node()
            self.encoder.layer = nn.ModuleList(Block(i) for i in range(cfg.layers))
            self.layernorm = nn.LayerNorm(cfg.dim, eps=1e-6)

        def embed(self, px):
            e = self.embeddings
            x = e.patch_embeddings.projection(px).flatten(2).transpose(1, 2)
            x = torch.cat([e.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
            pe = e.position_embeddings.float()
            m = int((pe.shape[1] - 1) ** 0.5)
            h0, w0 = px.shape[-2] // PATCH, px.shape[-1] // PATCH
            grid = pe[:, 1:]
            if (h0, w0) != (m, m):
                # DINOv2's own resampling: +0.1 so the bicubic scale factor lands on the patch grid
                grid = F.interpolate(grid.reshape(1, m, m, -1).permute(0, 3, 1, 2), mode="bicubic",
                                     scale_factor=((h0 + 0.1) / m, (w0 + 0.1) / m), antialias=False)
                grid = grid.permute(0, 2, 3, 1).flatten(1, 2)
            return x + torch.cat([pe[:, :1], grid], dim=1).to(x.dtype)

        def forward(self, px, ref_view: str):
            b, s, _, hh, ww = px.shape
            x = self.embed(px.flatten(0, 1))
            x = x.view(b, s, *x.shape[1:])
            local_pos = global_pos = None
            if cfg.alt_start >= 0:
                ph, pw = hh // PATCH, ww // PATCH
                yx = torch.cartesian_prod(torch.arange(ph), torch.arange(pw)).to(px.device) + 1
                cls = torch.zeros(1, 2, dtype=yx.dtype, device=px.device)
                local_pos = torch.cat([cls, yx])[None]
                global_pos = torch.cat([cls, torch.ones_like(yx)])[None].repeat(1, s, 1)
            order, local, outs, token = None, x, [], None
            for i, blk in enumerate(self.encoder.layer):
                roped = cfg.alt_start >= 0 and i >= cfg.alt_start
                if cfg.alt_start >= 0 and i == cfg.alt_start - 1 and s >= 3:
                    order = reference_order(x, ref_view)
                    x, local = x[:, order], local[:, order]
                if i == cfg.alt_start:
                    cam = self.embeddings.camera_token.to(x.dtype)
                    x = x.clone()
                    x[:, :, 0] = torch.cat([cam[:, :1], cam[:, 1:].expand(1, s - 1, -1)], dim=1)
                if cfg.alt_start >= 0 and i >= cfg.alt_start and i % 2 == 1:
                    x = blk(x.reshape(b, -1, x.shape[-1]), global_pos if roped else None).view(x.shape)
                else:
                    x = blk(x.flatten(0, 1), local_pos if roped else None).view(x.shape)
                    local = x
                if i in cfg.out_layers:
                    back = np.argsort(order) if order is not None else slice(None)
                    o = torch.cat([local, self.layernorm(x)], -1) if cfg.cat_token else self.layernorm(x)
                    outs.append(o[:, back][:, :, 1:])
                    # the camera decoder reads the last out layer's camera token, not normed
                    token = (torch.cat([local, x], -1) if cfg.cat_token else x)[:, back][:, :, 0]
            return outs, token

    def rope(t, pos):
        half = t.shape[-1] // 2
        inv = 1.0 / ROPE_FREQ ** (torch.arange(0, half, 2, device=t.device).float() / half)
        out = []
        for part, p in zip(t.split(half, dim=-1), (pos[..., 0], pos[..., 1])):
            ang = p.float()[..., None] * inv
            ang = torch.cat([ang, ang], -1)[:, None].to(t.dtype)
            a, b2 = part.split(half // 2, dim=-1)
            out.append(part * ang.cos() + torch.cat([-b2, a], -1) * ang.sin())
        return torch.cat(out, -1)

    def reference_order(x, strategy: str) -> List[int]:
        """The views with the reference (DA3's choice, from each view's class token) first, the rest in order."""
        s = x.shape[1]
        if strategy == "first":
            ref = 0
        elif strategy == "middle":
            ref = s // 2
        else:
            tok = x[0, :, 0].float()
            unit = tok / tok.norm(dim=-1, keepdim=True)
            sim = unit @ unit.T - torch.eye(s, device=x.device)
            if strategy == "saddle_sim_range":
                ref = int((sim.max(-1).values - sim.min(-1).values).argmax())
            else:
                def spread(m):
                    return (m - m.min()) / (m.max() - m.min() + 1e-8)
                balance = ((spread(sim.sum(-1) / (s - 1)) - 0.5).abs() + (spread(tok.norm(dim=-1)) - 0.5).abs()
                           + (spread(unit.var(dim=-1)) - 0.5).abs())
                ref = int(balance.argmin())
        return [ref] + [v for v in range(s) if v != ref]

    def conv(i, o, k, bias=True, stride=1):
        return nn.Conv2d(i, o, k, stride, k // 2 if stride == 1 else 1, bias=bias)

    class Unit(nn.Module):
        def __init__(self, f):
            super().__init__()
            self.conv1, self.conv2 = conv(f, f, 3), conv(f, f, 3)

        def forward(self, x):
            return self.conv2(F.relu(self.conv1(F.relu(x)))) + x

    class Fusion(nn.Module):
        def __init__(self, f, residual=True):
            super().__init__()
            self.resConfUnit1 = Unit(f) if residual else None
            self.resConfUnit2, self.out_conv = Unit(f), conv(f, f, 1)

        def forward(self, x, skip=None, size=None):
            if skip is not None:
                x = x + self.resConfUnit1(skip)
            x = self.resConfUnit2(x)
            x = F.interpolate(x, size=size, scale_factor=None if size else 2.0, mode="bilinear", align_corners=True)
            return self.out_conv(x)

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            f, oc, dim_in = cfg.features, cfg.out_channels, (2 if cfg.cat_token else 1) * cfg.dim
            self.norm = nn.LayerNorm(dim_in) if cfg.head_norm else None
            self.projects = nn.ModuleList(nn.Conv2d(dim_in, c, 1) for c in oc)
            self.resize_layers = nn.ModuleList([nn.ConvTranspose2d(oc[0], oc[0], 4, 4), nn.ConvTranspose2d(oc[1], oc[1], 2, 2),
                                                nn.Identity(), conv(oc[3], oc[3], 3, stride=2)])
            s = self.scratch = Node()
            for i in range(4):
                setattr(s, f"layer{i + 1}_rn", conv(oc[i], f, 3, bias=False))
                setattr(s, f"refinenet{i + 1}", Fusion(f, residual=i < 3))
            s.output_conv1 = conv(f, f // 2, 3)
            s.output_conv2 = nn.Sequential(conv(f // 2, 32, 3), nn.ReLU(), conv(32, cfg.output_dim, 1))
            if cfg.sky and not cfg.dual:
                s.sky_output_conv2 = nn.Sequential(conv(f // 2, 32, 3), nn.ReLU(), conv(32, 1, 1))

        def forward(self, feats, hh, ww):
            ph, pw = hh // PATCH, ww // PATCH
            maps = []
            for i, t in enumerate(feats):
                if self.norm is not None:
                    t = self.norm(t)
                x = self.projects[i](t.transpose(1, 2).reshape(t.shape[0], -1, ph, pw))
                if cfg.dual:
                    x = uv_embed(x, ww / hh)
                maps.append(self.resize_layers[i](x))
            s = self.scratch
            rn = [getattr(s, f"layer{i + 1}_rn")(m) for i, m in enumerate(maps)]
            x = s.refinenet4(rn[3], size=rn[2].shape[2:])
            x = s.refinenet3(x, rn[2], size=rn[1].shape[2:])
            x = s.refinenet2(x, rn[1], size=rn[0].shape[2:])
            x = s.output_conv1(s.refinenet1(x, rn[0]))
            x = F.interpolate(x, size=(ph * PATCH, pw * PATCH), mode="bilinear", align_corners=True)
            if cfg.dual:
                x = uv_embed(x, ww / hh)
            logits = s.output_conv2(x)
            out = {"depth": torch.exp(logits[:, 0])}
            if cfg.output_dim > 1:
                out["confidence"] = torch.exp(logits[:, -1]) + 1
            if cfg.sky and not cfg.dual:
                out["sky"] = F.relu(s.sky_output_conv2(x)[:, 0])
            return out

    def uv_embed(x, aspect: float):
        """DualDPT's fixed position code: sines of a UV grid spanning the picture's diagonal, a tenth strong."""
        c, h, w = x.shape[1:]
        diag = (aspect ** 2 + 1) ** 0.5
        sx, sy = aspect / diag, 1 / diag
        u = torch.linspace(-sx * (w - 1) / w, sx * (w - 1) / w, w, device=x.device)
        v = torch.linspace(-sy * (h - 1) / h, sy * (h - 1) / h, h, device=x.device)
        uu, vv = torch.meshgrid(u, v, indexing="xy")

        def code(p, d):
            omega = 1.0 / 100.0 ** (torch.arange(d // 2, device=x.device).float() / (d / 2.0))
            a = p.reshape(-1)[:, None] * omega
            return torch.cat([a.sin(), a.cos()], 1)

        pe = torch.cat([code(uu, c // 2), code(vv, c // 2)], -1).view(h, w, c).permute(2, 0, 1)
        return x + 0.1 * pe[None].to(x.dtype)

    class CamDec(nn.Module):
        def __init__(self):
            super().__init__()
            d = (2 if cfg.cat_token else 1) * cfg.dim
            self.backbone = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU())
            self.fc_t, self.fc_qvec, self.fc_fov = nn.Linear(d, 3), nn.Linear(d, 4), nn.Sequential(nn.Linear(d, 2),
                                                                                                     nn.ReLU())

        def forward(self, token):
            """(views, d) -> (views, 9): translation, quaternion (x, y, z, w), vertical and horizontal fov."""
            f = self.backbone(token)
            return torch.cat([self.fc_t(f), self.fc_qvec(f), self.fc_fov(f)], -1).float()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.head = Backbone(), Head()
            if cfg.cam_dec:
                self.cam_dec = CamDec()

        def forward(self, px, ref_view: str = "saddle_balanced", pose: bool = False):
            """px: (scenes, views, 3, H, W) normalised -> maps (scenes * views, H, W); with pose, each view's
            pose code (scenes * views, 9) too."""
            feats, token = self.backbone(px, ref_view)
            out = self.head([f.flatten(0, 1) for f in feats], px.shape[-2], px.shape[-1])
            if pose:
                out["pose"] = self.cam_dec(token.flatten(0, 1))
            return out

    return Net()


class DA3:
    """A loaded Depth Anything 3 network on a device."""

    def __init__(self, cfg: Config, net, device: str, dtype):
        self.cfg, self.net, self.device, self.dtype = cfg, net, device, dtype

    def maps(self, frames: np.ndarray, resolution: int, method: str, views: int = 1,
             ref_view: str = "saddle_balanced") -> Dict[str, np.ndarray]:
        """float32 (n, H, W) depth and sky or confidence of uint8 RGB frames, `views` frames a scene."""
        import torch
        import torch.nn.functional as F
        n, h, w = frames.shape[:3]
        px = torch.from_numpy(model_input(frames, resolution, method)).to(self.device, self.dtype)
        out: Dict[str, list] = {}
        step = views if views > 1 else 4       # mono: frames side by side, each its own scene
        with torch.inference_mode():
            for a in range(0, n, step):
                got = self.net(px[a:a + step][None] if views > 1 else px[a:a + step][:, None], ref_view)
                for k, v in got.items():
                    v = F.interpolate(v.float()[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
                    out.setdefault(k, []).append(v.cpu().numpy())
        return {k: np.concatenate(v) for k, v in out.items()}


    def camera(self, frames: np.ndarray, resolution: int, method: str, ref_view: str = "saddle_balanced"):
        """The Camera of `frames` seen as one scene (2 or more), frame 0 at the origin, as DA3's camera decoder
        finds it: each view's rotation (a unit quaternion) and position, and its focal lengths from the fields
        of view, at the frames' size."""
        import torch
        from scipy.spatial.transform import Rotation
        from nodes.motion.camera import Camera, poses
        n, h, w = frames.shape[:3]
        px = torch.from_numpy(model_input(frames, resolution, method)).to(self.device, self.dtype)
        with torch.inference_mode():
            code = self.net(px[None], ref_view, pose=True)["pose"].double().cpu().numpy()
        quat = code[:, 3:7]
        if not np.isfinite(code).all() or (np.linalg.norm(quat, axis=1) < 1e-12).any():
            # scipy refuses such quaternions with a ValueError; only damaged weights give them
            raise NodeError("depth.da3_camera: the camera decoder gave no rotation (NaN or zero quaternions) for "
                            f"these frames: its weights (cam_dec) are damaged; use {WHAT}")
        th, tw = px.shape[-2:]
        c2w = poses(Rotation.from_quat(quat).as_matrix(), code[:, :3])     # scipy's quaternions: x y z w
        fy = th / 2 / np.maximum(np.tan(code[:, 7] / 2), 1e-6) * h / th
        fx = tw / 2 / np.maximum(np.tan(code[:, 8] / 2), 1e-6) * w / tw
        k = np.stack([fx, fy, np.full(n, w / 2), np.full(n, h / 2)], 1)
        return Camera(k, c2w, w, h).relative()


def target_size(h: int, w: int, resolution: int, method: str) -> Tuple[int, int]:
    """The model's picture size: the longest (upper_bound) or shortest (lower_bound) side to `resolution`, each
    side then to the nearest multiple of the patch (a tie rounds up), as ComfyUI's DA3 preprocessing does."""
    scale = resolution / float(max(h, w) if method == "upper_bound_resize" else min(h, w))

    def snap(x: int) -> int:
        down = x // PATCH * PATCH
        return max(PATCH, down + PATCH if abs(down + PATCH - x) <= abs(x - down) else down)
    return snap(int(round(h * scale))), snap(int(round(w * scale)))


def model_input(frames: np.ndarray, resolution: int, method: str) -> np.ndarray:
    """float32 (n, 3, h, w): the frames Lanczos-resized (ComfyUI resizes through PIL) and ImageNet-normalised."""
    from PIL import Image
    th, tw = target_size(frames.shape[1], frames.shape[2], resolution, method)
    sized = [f if f.shape[:2] == (th, tw) else np.asarray(Image.fromarray(f).resize((tw, th), Image.LANCZOS))
             for f in frames]
    x = np.stack(sized).astype(np.float32) / 255.0
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@functools.lru_cache(maxsize=2)
def _load(path: str, stamp: tuple, device: str, precision: str) -> DA3:
    import torch
    from nodes.generate.converters import check_claim
    from nodes.generate.weights import load_weights, sizes_of
    with sizes_of(Path(path).name, "a Depth Anything 3 file"):
        state = comfy_names(_unprefixed(load_weights(path)), lambda v: v.chunk(3, 0))
    cfg = detect({k: tuple(v.shape) for k, v in state.items()}, Path(path).name)
    check_claim(lambda: _build(cfg), state, Path(path).name)     # its widths are the file's shapes
    net = _build(cfg)
    wanted = net.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise NodeError(f"{Path(path).name}: {cfg.variant} file lacks {len(missing)} tensors (first: {missing[0]}); "
                        f"it is damaged or not {WHAT}")
    for k, v in wanted.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise NodeError(f"{Path(path).name}: {k} is {tuple(state[k].shape)}, the {cfg.variant} network needs "
                            f"{tuple(v.shape)}; the file is not {WHAT}")
    net.load_state_dict({k: state[k].float() for k in wanted})
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}.get(precision)
    if dtype is None:
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
    return DA3(cfg, net.to(device, dtype).eval(), device, dtype)


def describe(path: Path) -> Optional[dict]:
    """`kinograph info`'s variant and note for a Depth Anything 3 file (its header only), None for another file."""
    from nodes.generate.detect import read_header
    from nodes.generate.weights import sizes_of
    if path.suffix not in (".safetensors", ".sft"):
        return None
    try:
        with sizes_of(path.name, "a Depth Anything 3 file"):
            shapes = comfy_names(_unprefixed(read_header(path).shapes), lambda s: [(s[0] // 3,) + tuple(s[1:])] * 3)
        cfg = detect(shapes, path.name)
    except NodeError:
        return None
    return {"variant": cfg.variant, "loads": "yes", "note": "depth.da3 (ComfyUI's LoadDA3Model / DA3Inference)"}


def load(name: str, device: str = "cpu", precision: str = "default") -> DA3:
    from nodes.common.models_dirs import find_model
    path = find_model(name, "depth")
    if path.is_dir():
        raise NodeError(f"{path} is a folder; depth.da3 reads {WHAT} (a Hugging Face depth folder is "
                        f"depth.estimate's)")
    st = path.stat()
    return _load(str(path), (st.st_mtime_ns, st.st_size), device, precision)


class Geometry:
    """A clip's DA3 maps, made by the scene as they are read: maps(a, b) gives frames a..b's depth (and sky or
    confidence), float32 (b - a, H, W) at the clip's size."""

    def __init__(self, video, model: DA3, resolution: int, method: str, views: int, ref_view: str, ctx=None):
        from nodes.common.stream import ByBatch
        self.video, self.model, self.resolution, self.method, self.ref_view = video, model, resolution, method, ref_view
        self.length, self.width, self.height = video.length, video.width, video.height
        batch = max(views, 4)        # frames a pass; a scene never split
        cfg = model.cfg
        self.has = {"depth"} | ({"confidence"} if cfg.output_dim > 1 else set()) | (
            {"sky"} if cfg.sky and not cfg.dual else set())

        def make(frames):
            maps = model.maps(frames, resolution, method, views, ref_view)
            return [{k: v[j] for k, v in maps.items()} for j in range(len(frames))]
        self._made = ByBatch(video, batch - batch % views, make, ctx)

    def maps(self, a: int, b: int) -> Dict[str, np.ndarray]:
        frames = self._made.get(a, b)
        return {k: np.stack([f[k] for f in frames]) for k in frames[0]}


def one_of(node: str, name: str, value: str, choices) -> None:
    if value not in choices:
        raise NodeError(f"{node}: {name} {value!r}: use one of {', '.join(choices)}")


def infer(video, model: DA3, resolution: int, method: str, mode: str, views: int, ref_view: str,
          ctx=None) -> Geometry:
    for name, value, choices in (("resize_method", method, RESIZES), ("mode", mode, MODES),
                                 ("ref_view", ref_view, REF_VIEWS)):
        one_of("depth.da3", name, value, choices)
    if mode == "multiview" and model.cfg.alt_start < 0:
        raise NodeError(f"depth.da3: multiview needs DA3 Small or Base (their all-view attention); the loaded model "
                        f"is {model.cfg.variant}, which sees one view: set mode to mono")
    return Geometry(video, model, int(resolution), method, views if mode == "multiview" else 1, ref_view, ctx)


def drawn_here(geometry, node: str) -> None:
    """A NodeError where `geometry` is another model's (depth.moge's), not a traceback at its first read."""
    if not isinstance(geometry, Geometry):
        raise NodeError(f"{node} reads depth.da3's geometry; this one is another model's (MoGe's: draw it with "
                        f"depth.moge_render)")


def camera(geometry: Geometry):
    """The clip's camera path as DA3 Small / Base find it, every frame one view of one scene."""
    drawn_here(geometry, "depth.da3_camera")
    cfg = geometry.model.cfg
    if not cfg.cam_dec:
        raise NodeError(f"depth.da3_camera: {cfg.variant} has no camera decoder (DA3 Small and Base have one): load "
                        f"depth_anything_3_small or _base")
    if geometry.length < 2:
        raise NodeError("depth.da3_camera: a camera path needs 2 frames or more; the clip has "
                        f"{geometry.length}")
    return geometry.model.camera(geometry.video.frames(0, geometry.length), geometry.resolution, geometry.method,
                                 geometry.ref_view)


# -- pictures of the maps --------------------------------------------------------------------------------------
def sky_clipped(depth: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """The sky's depth set to the 99th percentile of the rest (ComfyUI's apply_sky_clip), so the sky does not
    stretch the range; unchanged where sky or ground is under 11 pixels."""
    ground = sky < SKY_THRESHOLD
    if ground.sum() <= 10 or (~ground).sum() <= 10:
        return depth
    return np.where(ground, depth, float(np.quantile(depth[ground], 0.99))).astype(np.float32)


def depth_range(depth: np.ndarray, sky: Optional[np.ndarray], how: str) -> Tuple[float, float]:
    """(near, far) ends of one frame's spread: v2_style the 1st and 99th percentile of the ground, min_max the
    whole range."""
    if how == "min_max":
        return float(depth.min()), float(depth.max())
    ground = depth[sky < SKY_THRESHOLD] if sky is not None and (sky < SKY_THRESHOLD).any() else depth.ravel()
    lo, hi = np.quantile(ground, (0.01, 0.99))       # linear, as torch.quantile
    return float(lo), float(hi)


def normalised(depth: np.ndarray, sky: Optional[np.ndarray], how: str,
               span: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """One frame's depth as 0..1, near 1, spread over `span` or its own depth_range (v2_style: the sky black);
    raw is the depth itself."""
    from nodes.depth.estimate import spread_unit
    if how == "raw":
        return depth
    out = 1.0 - spread_unit(depth, span or depth_range(depth, sky, how))
    if how == "v2_style" and sky is not None:
        out[sky >= SKY_THRESHOLD] = 0.0
    return out


OUTPUTS = ("depth", "depth_colored", "sky_mask", "confidence")
NORMALISATIONS = ("v2_style", "min_max", "raw")


def ground_depth(maps: Dict[str, np.ndarray], k: int, sky_clip: bool):
    """Frame k's depth (the sky clipped to the ground's far end if asked) and its sky map (None without one)."""
    depth, sky = maps["depth"][k], maps.get("sky")
    sky = None if sky is None else sky[k]
    return (sky_clipped(depth, sky) if sky_clip and sky is not None else depth), sky


def picture(maps: Dict[str, np.ndarray], k: int, output: str, normalization: str, sky_clip: bool,
            colored: bool, span: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """uint8 HxWx3 of frame k of `maps`, as ComfyUI's DA3Render draws it (the depth over `span` if given)."""
    if output in ("depth", "depth_colored"):
        grey = normalised(*ground_depth(maps, k, sky_clip), normalization, span)
        rgb = turbo(grey) if output == "depth_colored" else np.repeat(grey[..., None], 3, -1)
    else:
        m = maps["sky"][k] if output == "sky_mask" else maps["confidence"][k]
        if output == "confidence":
            lo, hi = float(m.min()), float(m.max())
            m = (m - lo) / (hi - lo) if hi > lo else np.ones_like(m)
        rgb = turbo(m) if colored else np.repeat(m[..., None], 3, -1)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


SPREADS = ("frame", "clip")


def render(geometry: Geometry, output: str, normalization: str, sky_clip: bool, colored: bool, ctx=None,
           spread: str = "frame"):
    """A lazy clip of `geometry`'s pictures. spread "clip": the depth over one range for the whole clip (the
    nearest and farthest of every frame's ends), found by reading the clip once first, so levels hold from frame to
    frame; "frame": each frame by its own, as ComfyUI does."""
    import threading
    from nodes.common.stream import Progress
    drawn_here(geometry, "depth.da3_render")
    for name, value, choices in (("output", output, OUTPUTS), ("normalization", normalization, NORMALISATIONS),
                                 ("spread", spread, SPREADS)):
        one_of("depth.da3_render", name, value, choices)
    variant = geometry.model.cfg.variant
    if (output == "sky_mask" or sky_clip and output != "confidence") and "sky" not in geometry.has:
        raise NodeError(f"depth.da3_render: {variant} has no sky map (Mono / Metric Large have one): "
                        f"{'choose another output' if output == 'sky_mask' else 'turn sky_clip off'}")
    if output == "confidence" and "confidence" not in geometry.has:
        raise NodeError(f"depth.da3_render: {variant} has no confidence map (Small / Base have one): choose "
                        f"another output")
    whole = spread == "clip" and output in ("depth", "depth_colored") and normalization != "raw"
    progress = Progress(ctx, geometry.length * (2 if whole else 1))
    found: list = []
    lock = threading.Lock()

    def clip_span() -> Optional[Tuple[float, float]]:
        with lock:
            if whole and not found:
                ends = []
                for a in range(0, geometry.length, 16):
                    b = min(a + 16, geometry.length)
                    maps = geometry.maps(a, b)
                    ends += [depth_range(*ground_depth(maps, k, sky_clip), normalization) for k in range(b - a)]
                    progress.add(b - a)
                found.append((min(e[0] for e in ends), max(e[1] for e in ends)))
            return found[0] if found else None

    def reader(a: int, b: int) -> np.ndarray:
        span = clip_span()
        maps = geometry.maps(a, b)
        out = np.stack([picture(maps, k, output, normalization, sky_clip, colored, span) for k in range(b - a)])
        progress.add(b - a)
        return out

    return geometry.video.with_(reader=reader, local=True)
