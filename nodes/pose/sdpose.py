"""SDPose-OOD whole-body keypoints as ComfyUI's SDPoseKeypointExtractor reads them (comfy_extras/nodes_sdpose.py).

SDPose is Lotus-D's network (a Stable Diffusion 2 UNet with the 4-wide task embedding, run once on the picture's
latent at timestep 999 with Lotus' empty prompt) plus a heatmap head in the same checkpoint
(model.diffusion_model.heatmap_head.*, Comfy-Org/SDPose sdpose_wholebody_fp16.safetensors). The head reads the
UNet's decoder features where the last output block starts (its input and skip joined: 640 channels on SD 2's
widths), draws 133 COCO-WholeBody heatmaps at a quarter of the 768x1024 picture it reads, and each keypoint is the heatmap's
peak refined a sub-pixel (DARK/UDP: blurred, in log space, one Newton step), scaled by the head's fixed factor.
Keypoints come out in ComfyUI's 134-point OpenPose order (the neck inserted, body remapped): body 0-17, feet
18-23, face 24-91, right hand 92-112, left hand 113-133."""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from graph_engine import NodeError

KEYPOINTS = 133
# a deconvolution's kernel -> (padding, output padding) that double the picture, as mmpose's head builds them
DOUBLING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}
HEAD_PREFIXES = ("model.diffusion_model.heatmap_head.", "diffusion_model.heatmap_head.", "heatmap_head.")
# The head's training input (width, height) and its heatmap's scale: ComfyUI scales every keypoint by
# (input - 1) / (heatmap - 1) of these, whatever the picture's size
INPUT_SIZE, HEATMAP_SCALE = (768, 1024), 4
BLUR_BORDER, BLUR_SIGMA = 5, 2.0
NECK_MIN = 0.3
# MMPose's body joints (the neck put at 17) moved to OpenPose's places
MMPOSE_BODY = (17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3)
OPENPOSE_BODY = (1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17)


def head_state(path: str) -> dict:
    """The heatmap head's weights from an SDPose checkpoint, named as in the head."""
    from safetensors import safe_open
    try:
        with safe_open(path, "pt") as f:
            keys = list(f.keys())
            prefix = next((p for p in HEAD_PREFIXES if any(k.startswith(p) for k in keys)), None)
            if prefix is None:
                raise NodeError(f"{path} has no SDPose heatmap head (heatmap_head.*): load an SDPose checkpoint "
                                "(sdpose_wholebody_fp16.safetensors from Comfy-Org/SDPose, in checkpoints/) with "
                                "load.model")
            return {k[len(prefix):]: f.get_tensor(k).float() for k in keys if k.startswith(prefix)}
    except (OSError, ValueError) as exc:
        raise NodeError(f"SDPose's heatmap head is read from the model's own file, but {path} is not a "
                        f"safetensors checkpoint ({exc})") from None


def build_head(state: dict, name: str):
    """The head as the file's widths make it: deconvolutions (x2, instance norm, SiLU), 1x1 convolutions (the
    same), then the final convolution to one heatmap a keypoint. A head the file `name` holds damaged (a tensor
    lacking, flat or of another shape, a kernel no deconvolution here doubles with, another count of heatmaps) is
    named, where it was a KeyError, IndexError or RuntimeError out of the node."""
    from pathlib import Path
    import torch
    from nodes.generate.weights import misfit, sizes_of
    name = Path(name).name
    with sizes_of(name, "SDPose's heatmap head"):
        head = _head(state)
    why = misfit(head, state)
    if why:
        raise NodeError(f"{name}: its heatmap head's tensors do not fit the head its shapes describe ({why}): the "
                        "file is damaged; download sdpose_wholebody_fp16.safetensors again")
    if head[2].out_channels != KEYPOINTS:
        raise NodeError(f"{name}: its heatmap head draws {head[2].out_channels} heatmaps, where SDPose's wholebody "
                        f"head draws {KEYPOINTS} (one a COCO-WholeBody keypoint): load sdpose_wholebody_fp16."
                        "safetensors (Comfy-Org/SDPose)")
    first = state.get("deconv_layers.0.weight")
    head.in_channels = int(first.shape[0]) if first is not None else \
        int(state.get("conv_layers.0.weight", state["final_layer.weight"]).shape[1])
    return head.eval().to(torch.float32)


def _head(state: dict):
    """The head's layers under the file's own names (deconv_layers.0.weight ...)."""
    from collections import OrderedDict
    from torch import nn

    def stage(name, make):
        layers, i = [], 0
        while f"{name}.{i}.weight" in state:
            w = state[f"{name}.{i}.weight"]
            layers += [make(w), nn.InstanceNorm2d(w.shape[1] if name == "deconv_layers" else w.shape[0]), nn.SiLU()]
            i += 3
        return nn.Sequential(*layers)

    def deconv(w):
        k = w.shape[-1]
        if k not in DOUBLING:
            raise ValueError(f"a deconvolution of kernel {k}")
        pad, out_pad = DOUBLING[k]
        return nn.ConvTranspose2d(w.shape[0], w.shape[1], k, 2, pad, out_pad, bias=False)

    def conv(w):
        return nn.Conv2d(w.shape[1], w.shape[0], w.shape[-1], padding=(w.shape[-1] - 1) // 2)

    final = state["final_layer.weight"]
    return nn.Sequential(OrderedDict(
        deconv_layers=stage("deconv_layers", deconv), conv_layers=stage("conv_layers", conv),
        final_layer=nn.Conv2d(final.shape[1], final.shape[0], final.shape[-1], padding=final.shape[-1] // 2)))


def decode(heatmaps: np.ndarray):
    """(keypoints [K, 2], scores [K]) of one picture's heatmaps [K, H, W]: the peak, refined as UDP's DARK
    decoding does, scaled to the head's input pixels; a peak at or below 0 gives (-1, -1)."""
    from scipy.ndimage import gaussian_filter
    hm = heatmaps.astype(np.float32).copy()
    k, h, w = hm.shape
    flat = hm.reshape(k, -1)
    idx = flat.argmax(axis=1)
    scores = flat[np.arange(k), idx].copy()
    ys, xs = np.unravel_index(idx, (h, w))
    points = np.stack([xs, ys], axis=-1).astype(np.float32)
    invalid = scores <= 0
    points[invalid] = -1
    b = BLUR_BORDER
    for j in range(k):
        peak = hm[j].max()
        padded = np.zeros((h + 2 * b, w + 2 * b), np.float32)
        padded[b:-b, b:-b] = hm[j]
        hm[j] = gaussian_filter(padded, sigma=BLUR_SIGMA)[b:-b, b:-b]
        top = hm[j].max()
        if top > 0:
            hm[j] *= peak / top
    hm = np.log(np.clip(hm, 1e-3, 50.0))
    pad = np.pad(hm, ((0, 0), (1, 1), (1, 1)), mode="edge").reshape(-1)
    at = (points[:, 0] + 1 + (points[:, 1] + 1) * (w + 2) + (w + 2) * (h + 2) * np.arange(k)).astype(int)[:, None]
    c, right, down, left, up = pad[at], pad[at + 1], pad[at + w + 2], pad[at - 1], pad[at - w - 2]
    grad = np.concatenate([0.5 * (right - left), 0.5 * (down - up)], axis=1).reshape(k, 2, 1)
    dxy = 0.5 * (pad[at + w + 3] - right - down + 2 * c - left - up + pad[at - w - 3])
    hess = np.concatenate([right - 2 * c + left, dxy, dxy, down - 2 * c + up], axis=1).reshape(k, 2, 2)
    hess = np.linalg.inv(hess + np.finfo(np.float32).eps * np.eye(2))
    points -= np.einsum("imn,ink->imk", hess, grad).squeeze(-1)
    heat = np.array([INPUT_SIZE[0] // HEATMAP_SCALE, INPUT_SIZE[1] // HEATMAP_SCALE])
    points = points * ((np.array(INPUT_SIZE) - 1) / (heat - 1)).astype(np.float32)
    points[invalid] = -1
    return points, scores


def openpose_order(points: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[134, 3] (x, y, score) of one person's 133 COCO-WholeBody keypoints: the neck (the shoulders' middle,
    scored by the weaker shoulder where both pass 0.3, else 0) put in, the body in OpenPose's order."""
    kp = np.insert(points.astype(np.float32), 17, (points[5] + points[6]) / 2, axis=0)
    neck = min(scores[5], scores[6]) if scores[5] > NECK_MIN and scores[6] > NECK_MIN else 0
    sc = np.insert(scores.astype(np.float32), 17, neck)
    out = np.concatenate([kp, sc[:, None]], axis=1)
    out[list(OPENPOSE_BODY)] = out[list(MMPOSE_BODY)]
    return out


class SDPose:
    """A loaded SDPose: the Lotus UNet of a model handle and the head from its checkpoint."""

    def __init__(self, model, vae, device: str = "cpu"):
        from nodes.generate.lotus import is_lotus
        unet = getattr(model.pipe, "unet", None)
        if unet is None or not is_lotus(unet):
            raise NodeError("SDPose's keypoints come from its own checkpoint (a Lotus-style Stable Diffusion 2 UNet "
                            "with a heatmap head): load sdpose_wholebody_fp16.safetensors (Comfy-Org/SDPose, in "
                            f"checkpoints/) with load.model; this model is {model.family}")
        if vae.family not in ("sd", "sdxl"):
            raise NodeError(f"SDPose reads pictures through Stable Diffusion's VAE; this VAE is {vae.family}'s: "
                            "link the vae output of the same load.model")
        self.unet, self.vae, self.device = unet, vae, device
        self.head = build_head(head_state(model.path), model.path).to(device)

    def features(self, latent):
        """The decoder features the head reads: the input of the last output block whose width is the head's
        (ComfyUI's output_block_patch keeps the last 640-wide one), from one UNet pass at timestep 999."""
        import torch
        from nodes.generate.lotus import prompt_embeds, task_embedding
        seen: List = []
        hooks = [r.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
                 for block in self.unet.up_blocks for r in block.resnets]
        dtype, dev = self.unet.dtype, self.unet.device
        try:
            with torch.inference_mode():
                self.unet(latent.to(dev, dtype), torch.tensor([999], device=dev),
                          encoder_hidden_states=prompt_embeds().to(dev, dtype).repeat(len(latent), 1, 1),
                          class_labels=task_embedding(len(latent)).to(dev, dtype))
        finally:
            for h in hooks:
                h.remove()
        wide = [f for f in seen if f.shape[1] == self.head.in_channels]
        if not wide:
            raise NodeError(f"this SDPose head reads {self.head.in_channels}-channel features, which the UNet's "
                            "decoder never has: the checkpoint's head and UNet do not belong together")
        return wide[-1]

    def keypoints(self, frames: np.ndarray, origin=(0, 0)) -> List[np.ndarray]:
        """Per frame, one person's [134, 3] keypoints in the frame's pixels: each frame stretched to the head's
        input size, as ComfyUI's _resize_to_model does (area when it shrinks both ways, else bilinear; the network
        reads people at the size it was trained on, whatever the clip's size and shape), the points mapped back
        and moved by `origin` (a crop's corner in its frame)."""
        import torch
        from torch.nn.functional import interpolate
        from nodes.generate.adapters import get_adapter
        h, w = frames.shape[1:3]
        mw, mh = INPUT_SIZE
        # [1, 3, T, H, W] in [-1, 1] as ComfyUI makes it (x / 255, resized, * 2 - 1): the peak's sub-pixel step is
        # sensitive enough that a different rounding of the pixels moves points by hundredths of a pixel
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2) / 255.0
        pixels = interpolate(pixels, size=(mh, mw), mode="area" if (mh <= h and mw <= w) else "bilinear")
        # contiguous, so the VAE's convolutions round alike whatever the batch (a channels-last stride does not)
        pixels = (pixels * 2 - 1).contiguous().transpose(0, 1)[None]
        with torch.inference_mode():
            z = get_adapter(self.vae.family).vae_encode(self.vae.pipe, pixels)[0].transpose(0, 1)
            heat = self.head(self.features(z).float().to(self.device)).float().cpu().numpy()
        out = []
        for m in heat:
            points, scores = decode(m)
            # ComfyUI's _remap_keypoints: a point left of the picture (x < 0) is dropped to (-1, -1)
            invalid = points[:, 0] < 0
            points = points / np.array([mw / w, mh / h], np.float32) + np.array(origin, np.float32)
            points[invalid] = -1
            out.append(openpose_order(points, scores))
        return out


def track(video, model, vae, batch: int = 16, device: str = "cpu", ctx=None, boxes=None) -> "PoseTrack":
    """Keypoints of every frame of `video`, made as far as read, `batch` frames a UNet pass; with `boxes`
    (detect.rtdetr's), one person a box."""
    return PoseTrack(video, SDPose(model, vae, device), batch, ctx, boxes)


class PoseTrack:
    """A clip's keypoints, made by the chunk as they are read: people(a, b) gives, for frames a..b, a list of
    [134, 3] arrays (one per person), in the clip's pixels."""

    def __init__(self, video, model: Optional[SDPose], batch: int, ctx=None, boxes=None):
        from nodes.common.stream import ByBatch
        self.video, self.model = video, model
        self.length, self.width, self.height, self.fps = video.length, video.width, video.height, video.fps
        if boxes is None:
            self._made = ByBatch(video, batch, lambda frames: [[p] for p in model.keypoints(frames)], ctx)
        else:
            self._made = ByBatch(_Boxed(video, boxes), batch,
                                 lambda pairs: [self._in_boxes(f, b) for f, b in pairs], ctx)

    def people(self, a: int, b: int) -> List[List[np.ndarray]]:
        return self._made.get(a, b)

    def _in_boxes(self, frame: np.ndarray, boxes) -> List[np.ndarray]:
        """One person a box, each read from its crop (its corners cut to whole pixels inside the frame, as
        ComfyUI's SDPoseKeypointExtractor cuts them); a frame without boxes is one person."""
        if not boxes:
            return self.model.keypoints(frame[None])
        h, w = frame.shape[:2]
        people = []
        for box in boxes:
            left, top = max(0, int(box.x)), max(0, int(box.y))
            right, bottom = min(w, int(box.x + box.width)), min(h, int(box.y + box.height))
            if right > left and bottom > top:
                people += self.model.keypoints(frame[None, top:bottom, left:right], (left, top))
        return people

    def __repr__(self):
        return f"PoseKeypoints({self.length} frames of {self.width}x{self.height})"


class _Boxed:
    """A clip's frames, each with its boxes (those of a BOXES value marked with its frame), read as ByBatch reads
    a clip."""

    def __init__(self, video, boxes):
        self.video, self.length = video, video.length
        self.by_frame: List[list] = [[] for _ in range(video.length)]
        for box in boxes.boxes:
            if box.frame < video.length:
                self.by_frame[box.frame].append(box)

    def frames(self, a: int, b: int) -> list:
        return list(zip(self.video.frames(a, b), self.by_frame[a:b]))


def draw_track(track: PoseTrack, draw, ctx=None):
    """A lazy clip of `track`'s pictures, each person drawn by draw(canvas, keypoints) on black."""
    from nodes.common.stream import Progress
    progress = Progress(ctx, track.length)

    def reader(a: int, b: int) -> np.ndarray:
        out = np.zeros((b - a, track.height, track.width, 3), np.uint8)
        for k, people in enumerate(track.people(a, b)):
            for person in people:
                draw(out[k], person)
        progress.add(b - a)
        return out

    return track.video.with_(reader=reader, local=True)
