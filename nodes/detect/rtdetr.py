"""RT-DETR v4 (the D-FINE family) as ComfyUI's RTDETR_detect runs it (comfy/ldm/rt_detr/rtdetr_v4.py,
comfy_extras/nodes_rtdetr.py), from the same file (rt_detr_v4-x-hgnet_fp16.safetensors, Comfy-Org/SDPose).

The network: an HGNetv2 backbone (convolutions with their batch norms), a hybrid encoder whose convolutions come
with their norms folded in (one attention layer on the coarsest map, then CSP-ELAN top-down and bottom-up paths),
and D-FINE's decoder (deformable attention over three levels, each box edge a distribution over bins).
Every width is read from the file; ComfyUI fixes the rest (8 heads, 300 queries, a 640x640 input).
Boxes come out as x0, y0, x1, y1 in the frame's pixels, with a COCO class and a score."""
from __future__ import annotations

import math
import threading
from typing import List, Tuple

import numpy as np

from graph_engine import NodeError

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")
# What ComfyUI's RTv4 fixes and the file's shapes do not say
HEADS, QUERIES, INPUT_SIZE, DEFAULT_POINTS = 8, 300, 640, (3, 6, 3)
PREFIXES = ("model.diffusion_model.", "diffusion_model.")
REQUIRED = ("backbone.stem.stem1.conv.weight", "encoder.pan_blocks.1.cv4.conv.weight", "decoder.dec_score_head.0.weight")
HINT = ("load ComfyUI's RT-DETR v4 detector, rt_detr_v4-x-hgnet_fp16.safetensors (or _fp32; Comfy-Org/SDPose, in "
        "diffusion_models/)")

Found = Tuple[float, float, float, float, int, float]     # x0, y0, x1, y1, class, score


class Tensors(dict):
    """A detector file's tensors by name: one the network reads and the file lacks (another RT-DETR version's file,
    one cut short) is named with the file, not a KeyError."""

    def __init__(self, path: str, tensors: dict):
        super().__init__(tensors)
        self.path = path

    def __missing__(self, key):
        raise NodeError(f"{self.path} is not ComfyUI's RT-DETR v4 detector (it has no {key}): {HINT}")


def read_state(path: str) -> Tensors:
    """The detector's tensors from a safetensors file, named as ComfyUI's RTv4 names them; a clear error for
    any other file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from graph_engine.atomic import special_file
    kind = special_file(path)
    if kind:        # safetensors opens a named pipe and waits for a writer for ever, past Ctrl-C
        raise NodeError(f"{path} is {kind}, not a model file: reading it waits for ever or never ends; {HINT}")
    try:
        sd = load_file(path)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise NodeError(f"{path} cannot be read as a safetensors file ({exc}): {HINT}") from None
    for prefix in PREFIXES:
        if any(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    missing = [k for k in REQUIRED if k not in sd]
    if missing:
        what = ("a Hugging Face D-FINE / RT-DETR layout, which ComfyUI does not read"
                if any(k.startswith("model.backbone.model.") for k in sd) else f"it has no {missing[0]}")
        raise NodeError(f"{path} is not ComfyUI's RT-DETR v4 detector ({what}): {HINT}")
    return Tensors(path, {k: v.float() for k, v in sd.items()})


class RTDETR:
    """The network over a state dict in ComfyUI's layout, run as plain functions of its tensors."""

    def __init__(self, sd: Tensors, device: str = "cpu"):
        import os

        import torch
        from nodes.generate.weights import sizes_of
        self.sd = Tensors(sd.path, {k: v.to(device) for k, v in sd.items()})
        self.device = device
        self._numbers = numbered(sd)
        with sizes_of(os.path.basename(sd.path), "an RT-DETR v4 detector"):
            self.stages = self.count("backbone.stages")
            self.decoder_layers = self.count("decoder.decoder.layers")
            self.classes = int(sd["decoder.dec_score_head.0.weight"].shape[0])
            self.reg_max = int(sd["decoder.dec_bbox_head.0.layers.2.weight"].shape[0]) // 4 - 1
            scale = sd.get("decoder.decoder.layers.0.cross_attn.num_points_scale")
            self.points = list(DEFAULT_POINTS) if scale is None else sampling_points(scale, sd.path)
            up, reg = float(sd["decoder.up"].reshape(-1)[0]), float(sd["decoder.reg_scale"].reshape(-1)[0])
            self.reg_scale = abs(reg)
            self.project = torch.tensor(weighting(self.reg_max, up, reg), dtype=torch.float32, device=device)

    def count(self, prefix: str) -> int:
        """How many numbered children prefix.0, prefix.1, ... the file has; a NodeError past the most a published
        model has."""
        from nodes.generate.converters import MAX_BLOCKS
        have, n = self._numbers.get(prefix, set()), 0
        while n in have:
            n += 1
        if n > MAX_BLOCKS:
            raise NodeError(f"{self.sd.path}: its tensor names number {n:,} parts of {prefix}; RT-DETR v4 has a few "
                            f"(Kinograph reads at most {MAX_BLOCKS}): the file is damaged or made to hang the loader. "
                            f"{HINT[0].upper()}{HINT[1:]}")
        return n

    # -- pieces ------------------------------------------------------------------------------------------------
    def _cbn(self, x, p, stride=1, depthwise=False, act=True):
        """Backbone convolution, batch norm, ReLU."""
        import torch.nn.functional as F
        w, sd = self.sd[p + ".conv.weight"], self.sd
        x = F.conv2d(x, w, None, stride, (w.shape[-1] - 1) // 2, 1, x.shape[1] if depthwise else 1)
        x = F.batch_norm(x, sd[p + ".bn.running_mean"], sd[p + ".bn.running_var"], sd[p + ".bn.weight"],
                         sd[p + ".bn.bias"], False, 0.0, 1e-5)
        return F.relu(x) if act else x

    def _conv(self, x, p, stride=1, depthwise=False, act=False):
        """Encoder convolution (its norm folded in), SiLU where ComfyUI has one."""
        import torch.nn.functional as F
        w = self.sd[p + ".conv.weight"]
        x = F.conv2d(x, w, self.sd[p + ".conv.bias"], stride, (w.shape[-1] - 1) // 2, 1,
                     x.shape[1] if depthwise else 1)
        return F.silu(x) if act else x

    def _linear(self, x, p):
        import torch.nn.functional as F
        return F.linear(x, self.sd[p + ".weight"], self.sd[p + ".bias"])

    def _norm(self, x, p):
        import torch.nn.functional as F
        return F.layer_norm(x, x.shape[-1:], self.sd[p + ".weight"], self.sd[p + ".bias"], 1e-5)

    def _mlp(self, x, p):
        """ComfyUI's MLP: SiLU between its linear layers."""
        import torch.nn.functional as F
        n = self.count(p + ".layers")
        for i in range(n):
            x = self._linear(x, f"{p}.layers.{i}")
            x = F.silu(x) if i < n - 1 else x
        return x

    def _attention(self, q, k, v, p):
        import torch.nn.functional as F
        b, n, d = q.shape
        heads = [self._linear(t, f"{p}.{name}_proj").reshape(b, -1, HEADS, d // HEADS).transpose(1, 2)
                 for t, name in ((q, "q"), (k, "k"), (v, "v"))]
        out = F.scaled_dot_product_attention(*heads).transpose(1, 2).reshape(b, n, d)
        return self._linear(out, p + ".out_proj")

    # -- backbone ----------------------------------------------------------------------------------------------
    def backbone(self, x) -> List:
        import torch
        import torch.nn.functional as F
        s = "backbone.stem."
        x = F.pad(self._cbn(x, s + "stem1", 2), (0, 1, 0, 1))
        branch = self._cbn(F.pad(self._cbn(x, s + "stem2a"), (0, 1, 0, 1)), s + "stem2b")
        x = torch.cat([F.max_pool2d(x, 2, 1, ceil_mode=True), branch], 1)
        x = self._cbn(self._cbn(x, s + "stem3", 2), s + "stem4")
        outs = []
        for i in range(self.stages):
            p = f"backbone.stages.{i}"
            if p + ".downsample.conv.weight" in self.sd:
                x = self._cbn(x, p + ".downsample", 2, depthwise=True, act=False)
            for b in range(self.count(p + ".blocks")):
                bp, y, parts = f"{p}.blocks.{b}", x, [x]
                for n in range(self.count(bp + ".layers")):
                    lp = f"{bp}.layers.{n}"
                    if lp + ".conv1.conv.weight" in self.sd:     # light block: pointwise, then depthwise
                        y = self._cbn(self._cbn(y, lp + ".conv1", act=False), lp + ".conv2", depthwise=True)
                    else:
                        y = self._cbn(y, lp)
                    parts.append(y)
                y = self._cbn(self._cbn(torch.cat(parts, 1), bp + ".aggregation.0"), bp + ".aggregation.1")
                x = y + x if b else y
            outs.append(x)
        return outs[1:]

    # -- encoder -----------------------------------------------------------------------------------------------
    def _csp(self, x, p):
        y = self._conv(x, p + ".conv1", act=True)
        for n in range(self.count(p + ".bottlenecks")):
            y = self._conv(y, f"{p}.bottlenecks.{n}", act=True)
        y = y + self._conv(x, p + ".conv2", act=True)
        return self._conv(y, p + ".conv3", act=True) if p + ".conv3.conv.weight" in self.sd else y

    def _elan(self, x, p):
        import torch
        y = self._conv(x, p + ".cv1", act=True)
        parts = list(y.split(y.shape[1] // 2, 1))
        for m in ("cv2", "cv3"):
            parts.append(self._conv(self._csp(parts[-1], f"{p}.{m}.0"), f"{p}.{m}.1", act=True))
        return self._conv(torch.cat(parts, 1), p + ".cv4", act=True)

    def encoder(self, feats) -> List:
        import torch
        import torch.nn.functional as F
        proj = [self._conv(f, f"encoder.input_proj.{i}") for i, f in enumerate(feats)]
        b, c, h, w = proj[-1].shape
        src, pe = proj[-1].flatten(2).transpose(1, 2), sincos(w, h, c).to(proj[-1])
        for n in range(self.count("encoder.encoder.0.layers")):
            p = f"encoder.encoder.0.layers.{n}"
            src = self._norm(src + self._attention(src + pe, src + pe, src, p + ".self_attn"), p + ".norm1")
            ff = self._linear(F.gelu(self._linear(src, p + ".linear1")), p + ".linear2")
            src = self._norm(src + ff, p + ".norm2")
        proj[-1] = src.transpose(1, 2).reshape(b, c, h, w)
        inner = [proj[-1]]
        for j in range(len(proj) - 1):
            inner[0] = self._conv(inner[0], f"encoder.lateral_convs.{j}")
            up = F.interpolate(inner[0], scale_factor=2.0, mode="nearest")
            inner.insert(0, self._elan(torch.cat([up, proj[-2 - j]], 1), f"encoder.fpn_blocks.{j}"))
        outs = [inner[0]]
        for k in range(len(proj) - 1):
            d = self._conv(self._conv(outs[-1], f"encoder.downsample_convs.{k}.0.cv1"),
                           f"encoder.downsample_convs.{k}.0.cv2", 2, depthwise=True)
            outs.append(self._elan(torch.cat([d, inner[k + 1]], 1), f"encoder.pan_blocks.{k}"))
        return outs

    # -- decoder -----------------------------------------------------------------------------------------------
    def _deformable(self, query, ref, value, shapes, p):
        import torch
        import torch.nn.functional as F
        b, lq, _ = query.shape
        total = sum(self.points)
        offsets = self._linear(query, p + ".sampling_offsets").reshape(b, lq, HEADS, total, 2)
        weights = F.softmax(self._linear(query, p + ".attention_weights").reshape(b, lq, HEADS, total), -1)
        scale = torch.tensor([1.0 / n for n in self.points for _ in range(n)], device=query.device)[:, None]
        locs = ref[:, :, None, :, :2] + offsets * scale * ref[:, :, None, :, 2:] * 0.5
        grids = (2 * locs - 1).permute(0, 2, 1, 3, 4).flatten(0, 1).split(self.points, dim=2)
        sampled = [F.grid_sample(value[lvl], grids[lvl], mode="bilinear", padding_mode="zeros", align_corners=False)
                   for lvl in range(len(shapes))]
        attn = weights.permute(0, 2, 1, 3).flatten(0, 1).unsqueeze(1)
        out = (torch.cat(sampled, -1) * attn).sum(-1)
        return out.reshape(b, -1, lq).permute(0, 2, 1)

    def _layer(self, target, ref, value, shapes, query_pos, p):
        import torch
        import torch.nn.functional as F
        q = target + query_pos
        target = self._norm(target + self._attention(q, q, target, p + ".self_attn"), p + ".norm1")
        cross = self._deformable(target + query_pos, ref, value, shapes, p + ".cross_attn")
        g1, g2 = torch.sigmoid(self._linear(torch.cat([target, cross], -1), p + ".gateway.gate")).chunk(2, -1)
        target = self._norm(g1 * target + g2 * cross, p + ".gateway.norm")
        ff = self._linear(F.relu(self._linear(target, p + ".linear1")), p + ".linear2")
        return self._norm((target + ff).clamp(-65504, 65504), p + ".norm3")

    def _edges(self, corners):
        """Each edge's distance: the bins' softmax weighted by the bins' non-uniform positions."""
        import torch.nn.functional as F
        prob = F.softmax(corners.reshape(-1, self.reg_max + 1), 1)
        return F.linear(prob, self.project[None]).reshape(*corners.shape[:-1], 4)

    def _box(self, ref, distance):
        """cx, cy, w, h of the edges `distance` away from the reference box's sides."""
        import torch
        rs = self.reg_scale
        x0 = ref[..., 0] - (0.5 * rs + distance[..., 0]) * (ref[..., 2] / rs)
        y0 = ref[..., 1] - (0.5 * rs + distance[..., 1]) * (ref[..., 3] / rs)
        x1 = ref[..., 0] + (0.5 * rs + distance[..., 2]) * (ref[..., 2] / rs)
        y1 = ref[..., 1] + (0.5 * rs + distance[..., 3]) * (ref[..., 3] / rs)
        return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1)

    def decoder(self, feats):
        """(logits [B, 300, classes], boxes [B, 300, 4] as normalised cx, cy, w, h)."""
        import torch
        proj = [self._conv(f, f"decoder.input_proj.{i}") if f"decoder.input_proj.{i}.conv.weight" in self.sd
                else f for i, f in enumerate(feats)]
        shapes = [tuple(f.shape[2:]) for f in proj]
        memory = torch.cat([f.flatten(2).transpose(1, 2) for f in proj], 1)
        anchors, valid = make_anchors(shapes, memory.device)
        out_mem = self._norm(self._linear(valid * memory, "decoder.enc_output.proj"), "decoder.enc_output.norm")
        logits = self._linear(out_mem, "decoder.enc_score_head")
        idx = torch.topk(logits.max(-1).values, QUERIES, dim=-1).indices[..., None]
        target = out_mem.gather(1, idx.expand(-1, -1, out_mem.shape[-1]))
        ref_unact = self._mlp(target, "decoder.enc_bbox_head") + anchors.expand(len(memory), -1, -1).gather(
            1, idx.expand(-1, -1, 4))
        b, _, d = memory.shape
        value = memory.reshape(b, -1, HEADS, d // HEADS).permute(0, 2, 3, 1).flatten(0, 1)
        value = [v.reshape(b * HEADS, d // HEADS, h, w)
                 for v, (h, w) in zip(value.split([h * w for h, w in shapes], -1), shapes)]
        ref = torch.sigmoid(ref_unact)
        earlier, corners_before = 0, 0
        for i in range(self.decoder_layers):
            p = f"decoder.decoder.layers.{i}"
            query_pos = self._mlp(ref, "decoder.query_pos_head").clamp(-10, 10)
            target = self._layer(target, ref[:, :, None], value, shapes, query_pos, p)
            if i == 0:
                r = ref.clamp(1e-5, 1 - 1e-5)
                initial = torch.sigmoid(self._mlp(target, "decoder.pre_bbox_head") + torch.log(r / (1 - r)))
            corners = self._mlp(target + earlier, f"decoder.dec_bbox_head.{i}") + corners_before
            boxes = self._box(initial, self._edges(corners))
            corners_before, ref, earlier = corners, boxes, target
        scores = self._linear(target, f"decoder.dec_score_head.{self.decoder_layers - 1}")
        return scores + self._quality(corners, f"decoder.decoder.lqe_layers.{self.decoder_layers - 1}"), boxes

    def _quality(self, corners, p):
        """D-FINE's location-quality term: an MLP over each edge's top bin probabilities and their mean."""
        import torch
        import torch.nn.functional as F
        b, lq, _ = corners.shape
        k = int(self.sd[p + ".reg_conf.layers.0.weight"].shape[1]) // 4 - 1
        top = F.softmax(corners.reshape(b, lq, 4, self.reg_max + 1), -1).topk(k, -1).values
        return self._mlp(torch.cat([top, top.mean(-1, keepdim=True)], -1).reshape(b, lq, -1), p + ".reg_conf")

    def __call__(self, pictures):
        """(logits, boxes) of pictures [B, 3, 640, 640] in [0, 1]."""
        import torch
        with torch.inference_mode():
            return self.decoder(self.encoder(self.backbone(pictures.to(self.device, torch.float32))))


def numbered(keys) -> dict:
    """For each prefix of a tensor name that a number follows (backbone.stages in backbone.stages.3.x), the numbers
    found there: one pass over the names, where asking each prefix.n in turn scanned every name once per n (20,000
    names of stages took ~35 s)."""
    found: dict = {}
    for k in keys:
        parts = k.split(".")
        for i in range(1, len(parts)):
            if parts[i].isascii() and parts[i].isdigit() and len(parts[i]) < 7:
                found.setdefault(".".join(parts[:i]), set()).add(int(parts[i]))
    return found


# The points a level samples: ComfyUI's file has 3, 6 and 3 (D-FINE's configs at most 8 a level, 3 levels)
MAX_POINTS, MAX_LEVELS = 64, 8
# How far a saved 1/n may be off: bf16 rounds it by up to 2^-8 of itself (1/3 is 0.33398 there), and 1/n and
# 1/(n + 1) stay over 1.5 % apart up to MAX_POINTS, so n is still read without doubt
SCALE_ROUNDING = 5e-3


def sampling_points(scale, path: str) -> List[int]:
    """The points each level of the deformable attention samples, from the file's num_points_scale: 1/n, n times for
    a level of n points. A value no level can have (0, NaN, negative, 1e-12) is named: read as it stood, it made
    10^12 points or walked back and forth along the tensor for ever."""
    values, points, i = [float(v) for v in scale.reshape(-1)], [], 0
    while i < len(values) and len(points) <= MAX_LEVELS:
        v = values[i]
        n = round(1 / v) if math.isfinite(v) and v > 1 / (MAX_POINTS + 0.5) else 0
        if not 1 <= n <= MAX_POINTS or i + n > len(values) or any(abs(x * n - 1) > SCALE_ROUNDING
                                                                  for x in values[i:i + n]):
            break
        points.append(n)
        i += n
    if i != len(values) or not 1 <= len(points) <= MAX_LEVELS:
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise NodeError(f"{path}: its decoder's num_points_scale ({shown}) is not 1/n written n times for each of up "
                        f"to {MAX_LEVELS} levels of at most {MAX_POINTS} points (ComfyUI's file: 1/3 three times, 1/6 "
                        f"six times, 1/3 three times); the file is damaged. {HINT[0].upper()}{HINT[1:]}")
    return points


def weighting(reg_max: int, up: float, reg_scale: float) -> List[float]:
    """D-FINE's bin positions: fine near 0, coarse towards +-2 up * reg_scale."""
    ub1 = abs(up) * abs(reg_scale)
    step = (ub1 + 1) ** (2 / (reg_max - 2))
    left = [-(step ** i) + 1 for i in range(reg_max // 2 - 1, 0, -1)]
    right = [(step ** i) - 1 for i in range(1, reg_max // 2)]
    return [-2 * ub1] + left + [0.0] + right + [2 * ub1]


def sincos(w: int, h: int, dim: int, temperature: float = 10000.0):
    """The encoder attention's 2-D sine-cosine position embedding [1, w*h, dim] (RT-DETR's w-major order)."""
    import torch
    gw, gh = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32),
                            indexing="ij")
    q = dim // 4
    omega = 1.0 / temperature ** (torch.arange(q, dtype=torch.float32) / q)
    ow, oh = gw.flatten()[:, None] @ omega[None], gh.flatten()[:, None] @ omega[None]
    return torch.cat([ow.sin(), ow.cos(), oh.sin(), oh.cos()], 1)[None]


def make_anchors(shapes, device, grid: float = 0.05, eps: float = 1e-2):
    """Each level's cell boxes in logit space ([1, N, 4]) and which lie well inside the picture ([1, N, 1])."""
    import torch
    out = []
    for lvl, (h, w) in enumerate(shapes):
        gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        xy = (torch.stack([gx, gy], -1).float() + 0.5) / torch.tensor([w, h], dtype=torch.float32)
        out.append(torch.cat([xy, torch.ones_like(xy) * grid * 2.0 ** lvl], -1).reshape(-1, 4))
    anchors = torch.cat(out)[None].to(device)
    valid = ((anchors > eps) & (anchors < 1 - eps)).all(-1, keepdim=True)
    anchors = torch.where(valid, torch.log(anchors / (1 - anchors)), torch.full_like(anchors, float("inf")))
    return anchors, valid.float()


def detect(net: RTDETR, frames: np.ndarray, threshold: float, class_name: str, limit: int) -> List[List[Found]]:
    """Per frame, the boxes scoring over `threshold` (of `class_name`, or any for 'all'), best first, at most
    `limit`: the frames stretched to 640x640 (bilinear), each query's best classes kept as ComfyUI keeps them."""
    import torch
    import torch.nn.functional as F
    h, w = frames.shape[1:3]
    pictures = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2) / 255.0
    pictures = F.interpolate(pictures, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear")
    logits, boxes = net(pictures)
    cx, cy, bw, bh = boxes.float().cpu().unbind(-1)
    corners = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], -1)
    scores, idx = torch.topk(torch.sigmoid(logits.float().cpu()).flatten(1), QUERIES, dim=-1)
    out = []
    for k in range(len(frames)):
        found = []
        for s, i in zip(scores[k].tolist(), idx[k].tolist()):
            label = i % net.classes
            if s > threshold and (class_name == "all" or label_name(label) == class_name):
                found.append((*corners[k, i // net.classes].tolist(), label, s))
        out.append(sorted(found, key=lambda d: -d[5])[:limit])
    return out


def label_name(label: int) -> str:
    return COCO_CLASSES[label] if label < len(COCO_CLASSES) else str(label)


def find(net: RTDETR, video, threshold: float, class_name: str, limit: int, batch: int = 8, ctx=None):
    """The clip's boxes as a BOXES value (each marked with its frame, its kind the COCO class), `batch` frames a
    pass."""
    from nodes.common.boxes import Box, Boxes
    from nodes.common.stream import Progress
    progress, found = Progress(ctx, video.length), []
    for lo in range(0, video.length, batch):
        if ctx is not None:
            ctx.check()
        frames = video.frames(lo, min(lo + batch, video.length))
        for i, boxes in enumerate(detect(net, frames, threshold, class_name, limit), lo):
            found += [Box(x0, y0, x1 - x0, y1 - y0, kind=label_name(label), score=score, frame=i)
                      for x0, y0, x1, y1, label, score in boxes]
        progress.add(len(frames))
    return Boxes(video.width, video.height, tuple(found))


# ComfyUI's DrawBBoxes colours, by COCO class
BOX_COLOURS = ((255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 165, 0), (128, 0, 128), (0, 255, 255), (255, 20, 147),
               (100, 149, 237))


def draw_boxes(frame: np.ndarray, boxes) -> np.ndarray:
    """`frame` with each box (nodes.common.boxes.Box) outlined 3 pixels wide and, where its kind is a COCO class,
    in that class's colour and labelled with it and the score; the best drawn last, as ComfyUI's DrawBBoxes draws
    them (PIL's default font: ComfyUI asks for Arial, which it finds only on Windows)."""
    from PIL import Image, ImageDraw, ImageFont
    img = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    draw, font = ImageDraw.Draw(img), ImageFont.load_default()
    h, w = frame.shape[:2]
    # Pillow outlines a box in time growing with its size (a box from -1e9 to 1e9 took 18 s a frame), and fails on a
    # label placed past 1e18: a side past the frame is drawn on a line just outside it (the 3-pixel outline lies
    # inside the box, so what shows is the same), a label that cannot show is left out.
    x_side, y_side = (lambda v: min(max(v, -8.0), w + 8.0)), (lambda v: min(max(v, -8.0), h + 8.0))
    for box in sorted(boxes, key=lambda b: b.score):
        corners = (box.x, box.y, box.x + box.width, box.y + box.height)
        if not all(math.isfinite(v) for v in corners):
            continue
        known = box.kind in COCO_CLASSES
        colour = BOX_COLOURS[COCO_CLASSES.index(box.kind) % len(BOX_COLOURS) if known else 0]
        draw.rectangle([x_side(corners[0]), y_side(corners[1]), x_side(corners[2]), y_side(corners[3])],
                       outline=colour, width=3)
        if known and -LABEL_ROOM < box.x < w and -LABEL_ROOM < box.y < h:
            draw.text((box.x + 2, box.y + 2), f"{box.kind} {box.score:.2f}", fill=colour, font=font)
    return np.asarray(img)


# Far wider and taller than a label of Pillow's default font ever is: one placed further off the frame cannot show
LABEL_ROOM = 10_000


def load(path: str, device: str = "cpu") -> RTDETR:
    """The detector of `path`, kept while the file is unchanged."""
    import os
    key = (os.path.abspath(path), os.path.getmtime(path), device)
    with _lock:
        if key not in _loaded:
            _loaded.clear()
            _loaded[key] = RTDETR(read_state(path), device)
        return _loaded[key]


_loaded: dict = {}
_lock = threading.Lock()
