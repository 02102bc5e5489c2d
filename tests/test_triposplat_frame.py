"""mask.triposplat_frame against ComfyUI's TripoSplatPreprocessImage (comfy_extras/nodes_triposplat.py: execute
and _preprocess; comfy.utils.lanczos as common_upscale's "lanczos"), written out below."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def comfy_lanczos(samples, width, height):
    """comfy.utils.lanczos over [B, C, H, W]"""
    from PIL import Image
    out = []
    for image in samples:
        a = np.clip(255. * image.movedim(0, -1).cpu().numpy(), 0, 255).astype(np.uint8)
        r = np.array(Image.fromarray(a).resize((width, height), resample=Image.Resampling.LANCZOS))
        out.append(torch.from_numpy(r.astype(np.float32) / 255.0).movedim(-1, 0))
    return torch.stack(out)


def _preprocess(image, mask, erode_radius, size):
    rgb = image[..., :3].clamp(0, 1).movedim(-1, 0)
    alpha = mask.clamp(0, 1)[None]
    rgba = torch.cat([rgb, alpha], 0)[None]
    h, w = rgba.shape[-2:]
    s = size / min(w, h)
    rgba = comfy_lanczos(rgba, max(1, round(w * s)), max(1, round(h * s))).clamp(0, 1)
    a = rgba[:, 3:4]
    if erode_radius > 0:
        a = -F.max_pool2d(-a, 2 * erode_radius + 1, stride=1, padding=erode_radius)
        rgba = torch.cat([rgba[:, :3], a], 1)
    ys, xs = torch.nonzero(a[0, 0] > 0, as_tuple=True)
    if xs.numel() == 0:
        raise ValueError("TripoSplatPreprocessImage: mask is empty (no foreground pixels).")
    x0, x1 = int(xs.min()), int(xs.max())
    y0, y1 = int(ys.min()), int(ys.max())
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0) / 2 * 1.2
    left, upper, right, lower = int(cx - half), int(cy - half), int(cx + half), int(cy + half)
    H, W = rgba.shape[-2:]
    crop = rgba.new_zeros((1, 4, lower - upper, right - left))
    sx0, sy0, sx1, sy1 = max(left, 0), max(upper, 0), min(right, W), min(lower, H)
    if sx1 > sx0 and sy1 > sy0:
        crop[:, :, sy0 - upper:sy1 - upper, sx0 - left:sx1 - left] = rgba[:, :, sy0:sy1, sx0:sx1]
    crop = comfy_lanczos(crop, size, size).clamp(0, 1)
    out = (crop[:, :3] * crop[:, 3:4])[0].movedim(0, -1)
    return out.unsqueeze(0)


def comfy_triposplat_preprocess(image, mask, erode_radius, size):
    """TripoSplatPreprocessImage.execute"""
    size = max(16, (int(size) // 16) * 16)
    if mask.shape[0] != image.shape[0]:
        mask = mask.repeat(image.shape[0], 1, 1)[:image.shape[0]]
    if tuple(mask.shape[1:]) != tuple(image.shape[1:3]):
        mask = F.interpolate(mask[:, None].float(), size=tuple(image.shape[1:3]), mode="bilinear",
                             align_corners=False)[:, 0]
    return torch.cat([_preprocess(image[i], mask[i], erode_radius, size) for i in range(image.shape[0])], dim=0)


def _scene(h, w, seed, box):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    y0, x0, y1, x1 = box
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2 + ((xx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2
    return frame, np.clip(1.5 - inside, 0, 1).astype(np.float32)       # a soft ellipse


@pytest.mark.parametrize("h, w, box, mask_hw, erode, size", [
    (40, 56, (8, 10, 30, 40), None, 1, 64),          # brought up to the size first
    (90, 70, (-10, 5, 60, 69), None, 0, 48),         # the square past the picture's edge: zeros
    (50, 50, (10, 12, 40, 44), (25, 25), 3, 40),     # a smaller mask stretched; size to a multiple of 16
])
def test_frame_is_comfyuis(h, w, box, mask_hw, erode, size):
    from nodes.mask.triposplat_frame import side, triposplat_frame
    frame, mask = _scene(h, w, 3, box)
    if mask_hw:
        mask = _scene(*mask_hw, 3, tuple(v // 2 for v in box))[1]
    want = comfy_triposplat_preprocess(torch.from_numpy(frame)[None].float() / 255.0, torch.from_numpy(mask)[None],
                                       erode, size)[0].numpy()
    got = triposplat_frame(frame, mask, erode, side(size))
    assert got.shape == want.shape
    assert np.abs(got.astype(np.float32) - want * 255.0).max() <= 0.5 + 1e-3


def test_an_empty_mask_is_named():
    from graph_engine import NodeError
    from nodes.mask.triposplat_frame import triposplat_frame
    frame, _ = _scene(32, 32, 1, (4, 4, 20, 20))
    with pytest.raises(NodeError, match="mask is empty"):
        triposplat_frame(frame, np.zeros((32, 32), np.float32), 1, 64)


def test_node_frames_each_frame_of_a_clip():
    from graph_engine import Clip
    from graph_engine.context import Context
    from graph_engine.executor import call_node
    from graph_engine.registry import default_registry
    from nodes.mask.triposplat_frame import triposplat_frame
    a, mask = _scene(40, 56, 6, (8, 10, 30, 40))
    b, _ = _scene(40, 56, 7, (8, 10, 30, 40))
    out = call_node(default_registry().get("mask.triposplat_frame"), Context("c"),
                    {"video": Clip.from_array(np.stack([a, b])), "mask": mask}, {"erode_radius": 2, "size": 70})
    got = out["video"].frames(0, 2)
    assert got.shape == (2, 64, 64, 3)
    for frame, g in zip((a, b), got):
        assert np.array_equal(g, triposplat_frame(frame, mask, 2, 64))
