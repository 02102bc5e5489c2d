"""mask.crop_to_mask against ComfyUI's ImageCropToMask (comfy_extras/nodes_images.py: execute and
_crop_image_with_mask; comfy/utils.py's lanczos and bilinear common_upscale), written out below."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def comfy_lanczos(samples, width, height):
    """comfy.utils.lanczos over [B, C, H, W] (a one-channel mask drops its channel, as the node's comment says)"""
    from PIL import Image
    out = []
    for image in samples:
        a = np.clip(255. * image.movedim(0, -1).cpu().numpy(), 0, 255).astype(np.uint8)
        a = a[..., 0] if a.shape[-1] == 1 else a
        r = np.array(Image.fromarray(a).resize((width, height), resample=Image.Resampling.LANCZOS))
        t = torch.from_numpy(r.astype(np.float32) / 255.0)
        out.append(t if t.ndim == 2 else t.movedim(-1, 0))
    return torch.stack(out)


def _crop_image_with_mask(item_image, item_mask, max_image_size=1024, pad_factor=1.1, mask_offset=0,
                          mask_threshold=0.05, bg_rgb=(0.0, 0.0, 0.0), aspect_ratio=1.0):
    img = item_image.permute(2, 0, 1).unsqueeze(0).cpu().float().clamp(0, 1)
    mask = item_mask.unsqueeze(0).unsqueeze(0).cpu().float().clamp(0, 1)
    m2d = mask[0, 0]
    h, w = m2d.shape
    border = torch.cat([m2d[0, :], m2d[-1, :], m2d[:, 0], m2d[:, -1]])
    center = m2d[h // 4:h - h // 4, w // 4:w - w // 4]
    if float(border.mean()) > 0.5 and float(center.mean()) < 0.5:
        mask = 1.0 - mask
    if mask_offset > 0:
        r = mask_offset
        mask = torch.nn.functional.max_pool2d(mask, kernel_size=2 * r + 1, stride=1, padding=r)
    elif mask_offset < 0:
        r = -mask_offset
        mask = 1.0 - torch.nn.functional.max_pool2d(1.0 - mask, kernel_size=2 * r + 1, stride=1, padding=r)
    if mask_threshold > 0.0:
        mask = torch.where(mask < mask_threshold, torch.zeros_like(mask), mask)
    H, W = img.shape[-2:]
    if max(H, W) > max_image_size:
        scale = max_image_size / max(H, W)
        new_w, new_h = int(W * scale), int(H * scale)
        img = comfy_lanczos(img, new_w, new_h)
        mask = comfy_lanczos(mask, new_w, new_h)
        if mask.ndim == 3:
            mask = mask.unsqueeze(1)
        H, W = new_h, new_w
    alpha_u8 = (mask[0, 0].clamp(0, 1) * 255.0).to(torch.uint8)
    fg_pixels = (alpha_u8 > 204).nonzero()
    if fg_pixels.numel() == 0:
        inv_fg = ((255 - alpha_u8) > 204).nonzero()
        if inv_fg.numel() > 0:
            mask = 1.0 - mask
            fg_pixels = inv_fg
    if fg_pixels.numel() > 0:
        y_min, x_min = fg_pixels.min(dim=0).values.tolist()
        y_max, x_max = fg_pixels.max(dim=0).values.tolist()
        center_y, center_x = (y_min + y_max) / 2.0, (x_min + x_max) / 2.0
        bw = x_max - x_min + 1
        bh = y_max - y_min + 1
        if bw / max(bh, 1) >= aspect_ratio:
            crop_w = int(bw * pad_factor)
            crop_h = int(bw / aspect_ratio * pad_factor)
        else:
            crop_h = int(bh * pad_factor)
            crop_w = int(bh * aspect_ratio * pad_factor)
        half_w, half_h = math.ceil(crop_w / 2), math.ceil(crop_h / 2)
        crop_x1 = int(center_x - half_w)
        crop_y1 = int(center_y - half_h)
        crop_x2 = crop_x1 + 2 * half_w
        crop_y2 = crop_y1 + 2 * half_h
    else:
        crop_x1, crop_y1, crop_x2, crop_y2 = 0, 0, W, H
    pad_l, pad_t = max(0, -crop_x1), max(0, -crop_y1)
    pad_r, pad_b = max(0, crop_x2 - W), max(0, crop_y2 - H)
    if pad_l or pad_t or pad_r or pad_b:
        img = torch.nn.functional.pad(img, (pad_l, pad_r, pad_t, pad_b), value=0.0)
        mask = torch.nn.functional.pad(mask, (pad_l, pad_r, pad_t, pad_b), value=0.0)
        crop_x1 += pad_l
        crop_x2 += pad_l
        crop_y1 += pad_t
        crop_y2 += pad_t
    cropped_img = img[..., crop_y1:crop_y2, crop_x1:crop_x2]
    cropped_mask = mask[..., crop_y1:crop_y2, crop_x1:crop_x2]
    bg = torch.tensor(bg_rgb, dtype=cropped_img.dtype).view(1, 3, 1, 1)
    return (cropped_img * cropped_mask + bg * (1.0 - cropped_mask)).clamp(0, 1)


def comfy_image_crop_to_mask(images, masks, width, height, pad_factor, grow_mask, background):
    """ImageCropToMask.execute"""
    h = background.lstrip("#")
    bg_rgb = (int(h[0:2], 16) / 255.0, int(h[2:4], 16) / 255.0, int(h[4:6], 16) / 255.0) if len(h) == 6 \
        else (0.0, 0.0, 0.0)
    images = images[..., :3]
    batch_size = images.shape[0]
    if masks.shape[0] == 1 and batch_size > 1:
        masks = masks.expand(batch_size, -1, -1)
    if masks.shape[-2:] != images.shape[1:3]:
        masks = torch.nn.functional.interpolate(masks.unsqueeze(1).float(), size=images.shape[1:3],
                                                mode="bilinear").squeeze(1)
    out = []
    for b in range(batch_size):
        composite = _crop_image_with_mask(images[b], masks[b], max_image_size=max(width, height),
                                          pad_factor=pad_factor, mask_offset=grow_mask, bg_rgb=bg_rgb,
                                          aspect_ratio=width / height)
        out.append(comfy_lanczos(composite, width, height).movedim(-3, -1))
    return torch.cat(out, dim=0)


def _scene(h, w, seed, box, inverted=False):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.float32)
    y0, x0, y1, x1 = box
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2 + ((xx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2
    mask = np.clip(1.5 - inside, 0, 1).astype(np.float32)       # a soft ellipse
    return frame, (1.0 - mask if inverted else mask)


@pytest.mark.parametrize("h, w, box, size, pad, grow, bg, inverted", [
    (120, 160, (20, 30, 90, 80), (64, 64), 1.1, 0, "#ffffff", False),       # brought down first, square
    (48, 40, (2, 1, 40, 30), (96, 64), 1.5, 2, "#102030", False),           # past the edge: zeros, grown mask
    (60, 60, (10, 20, 50, 45), (64, 128), 1.0, -3, "#000000", True),        # an inverted (background) mask
    (50, 70, (0, 0, 0, 0), (64, 64), 1.2, 0, "nope", False)])               # no subject: the whole picture
def test_crop_is_comfyuis(h, w, box, size, pad, grow, bg, inverted):
    from nodes.mask.crop_to_mask import colour, crop_to_mask
    frame, mask = _scene(h, w, 3, box, inverted) if box != (0, 0, 0, 0) else (
        np.random.default_rng(4).integers(0, 256, (h, w, 3), dtype=np.uint8), np.zeros((h, w), np.float32))
    width, height = size
    want = comfy_image_crop_to_mask(torch.from_numpy(frame)[None].float() / 255.0, torch.from_numpy(mask)[None],
                                    width, height, pad, grow, bg)[0].numpy()
    got = crop_to_mask(frame, mask, width, height, pad, grow, colour(bg))
    assert got.shape == (height, width, 3)
    assert np.abs(got.astype(np.float32) - want * 255.0).max() < 1e-3


def test_a_mask_of_another_size_is_stretched_to_the_picture():
    from nodes.mask.crop_to_mask import colour, crop_to_mask
    frame, _ = _scene(64, 96, 5, (10, 20, 50, 70))
    _, small = _scene(32, 48, 5, (5, 10, 25, 35))
    want = comfy_image_crop_to_mask(torch.from_numpy(frame)[None].float() / 255.0, torch.from_numpy(small)[None],
                                    64, 64, 1.1, 0, "#00ff00")[0].numpy()
    got = crop_to_mask(frame, small, 64, 64, 1.1, 0, colour("#00ff00"))
    assert np.abs(got.astype(np.float32) - want * 255.0).max() < 1e-3


def test_a_bad_colour_is_named():
    from graph_engine import NodeError
    from nodes.mask.crop_to_mask import colour
    with pytest.raises(NodeError, match="background='#zzzzzz'.*#rrggbb"):
        colour("#zzzzzz")


def test_node_frames_each_frame_of_a_clip():
    """mask.crop_to_mask on a two-frame clip with one still mask: each frame framed alike"""
    from graph_engine import Clip
    from graph_engine.context import Context
    from graph_engine.executor import call_node
    from graph_engine.registry import default_registry
    from nodes.mask.crop_to_mask import colour, crop_to_mask
    a, mask = _scene(40, 56, 6, (8, 10, 30, 40))
    b, _ = _scene(40, 56, 7, (8, 10, 30, 40))
    out = call_node(default_registry().get("mask.crop_to_mask"), Context("c"), {"video": Clip.from_array(np.stack([a, b])),
                    "mask": mask}, {"width": 64, "height": 72, "pad_factor": 1.2, "background": "#ffffff"})
    got = out["video"].frames(0, 2)
    for frame, g in zip((a, b), got):
        assert np.array_equal(g, crop_to_mask(frame, mask, 64, 72, 1.2, 0, colour("#ffffff")))
