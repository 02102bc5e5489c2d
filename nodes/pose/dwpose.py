"""DWPose whole-body pose estimation as comfyui_controlnet_aux's DWPreprocessor runs it: a YOLOX person
detector finds each person's box, RTMPose (dw-ll_ucoco_384) reads 133 keypoints (body, feet, face, hands) from
the box cropped upright to 288x384, decoded from its SimCC outputs, and the OpenPose-style picture is drawn at the
frame's size, then scaled to the detect resolution.

Model files are the ones ComfyUI users have (comfyui_controlnet_aux keeps each under its Hugging Face repository
in custom_nodes/comfyui_controlnet_aux/ckpts/): yolox_l.torchscript.pt (hr16/yolox-onnx) and
dw-ll_ucoco_384_bs5.torchscript.pt (hr16/DWPose-TorchScript-BatchSize5). Their ONNX exports (yolox_l.onnx and
dw-ll_ucoco_384.onnx from yzd-v/DWPose) are the same networks; Kinograph runs the TorchScript ones."""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from graph_engine import NodeError

from .draw import draw_people
from .geometry import box_centre_scale, crop_matrices, detect_size, to_frame

DETECT_SIZE = 640                       # YOLOX's square input
STRIDES = (8, 16, 32)
PERSON = 0                              # COCO's class 0
SCORE_MIN, NMS_IOU, BOX_MIN = 0.1, 0.45, 0.3       # YOLOX's NMS thresholds, then DWPose's box score
KEYPOINT_MIN = 0.3                      # a keypoint below this score is not drawn
SIMCC_SPLIT = 2.0                       # SimCC bins per input pixel
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)
# COCO-WholeBody's body joints (with the neck put at 17) into OpenPose's order.
OPENPOSE_FROM_COCO = (0, 17, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
# comfyui_controlnet_aux's ONNX files and the TorchScript exports of the same networks, with where each is published
TORCHSCRIPT_OF = {"yolox_l.onnx": "yolox_l.torchscript.pt", "dw-ll_ucoco_384.onnx": "dw-ll_ucoco_384_bs5.torchscript.pt"}
DEFAULT = {"detector": "yolox_l.torchscript.pt", "estimator": "dw-ll_ucoco_384_bs5.torchscript.pt"}
REPOSITORY = {"yolox_l.torchscript.pt": "hr16/yolox-onnx",
              "dw-ll_ucoco_384_bs5.torchscript.pt": "hr16/DWPose-TorchScript-BatchSize5"}
def input_size(name: str) -> Tuple[int, int]:
    """(width, height) of a pose model's input, read from its file name as controlnet_aux does."""
    return (288, 384) if "384" in name else (256, 256) if "256" in name else (192, 256)


def batch_of(name: str) -> int:
    """The batch a TorchScript pose model was traced with (_bs5), else 1."""
    m = re.search(r"_bs(\d+)", name)
    return int(m.group(1)) if m else 1


def load_torchscript(path: Path, device: str):
    """A TorchScript module from a file the user brings, its code checked first as every TorchScript file
    Kinograph loads is (nodes.generate.detect.check_torchscript)."""
    from nodes.generate.detect import load_torchscript as load_checked
    return load_checked(path, device, "pose model")


def find_pose_model(name: str, role: str) -> Path:
    """The file for a detector or estimator name; an ONNX file is refused, naming the TorchScript file to use."""
    from nodes.common.models_dirs import find_model
    path = find_model(name, "pose")
    if path.suffix.lower() == ".onnx":
        raise onnx_refusal(path, role)
    return path


def onnx_refusal(path: Path, role: str) -> NodeError:
    instead = TORCHSCRIPT_OF.get(path.name, DEFAULT[role])
    return NodeError(f"{path} is an ONNX file, which needs onnxruntime, not part of Kinograph. Kinograph runs the "
                     f"TorchScript {role}: put {instead} (Hugging Face {REPOSITORY[instead]}) beside it or in a "
                     f"'pose' model folder, and name that file")


def describe(path: Path) -> dict:
    """`kinograph info`'s row for a file in a pose folder: which of pose.dwpose's models it is and whether it loads
    (an ONNX export does not; nor does a TorchScript file whose code the check refuses or that is no archive)."""
    from nodes.generate.detect import check_torchscript
    role = "detector" if "yolo" in path.name.lower() else "estimator"
    row = {"family": "dwpose", "variant": "", "role": role, "precision": "", "loads": "yes",
           "note": f"pose.dwpose's {role}"}
    try:
        if path.suffix.lower() == ".onnx":
            raise onnx_refusal(path, role)
        check_torchscript(path, "pose model")
    except NodeError as e:
        row.update(loads="no", note=str(e).splitlines()[0])
    return row


class DWPose:
    def __init__(self, detector, estimator, size: Tuple[int, int], batch: int, device: str, paths=None):
        self.detector, self.estimator, self.size, self.batch, self.device = detector, estimator, size, batch, device
        self.paths = paths or {}

    def run(self, role: str, x, fits):
        """The detector's or estimator's output for x, or a message naming the file when it is some other network
        (the two files swapped, another model's export): `fits` says whether the output has the real one's shape."""
        import torch
        try:
            with torch.inference_mode():
                out = getattr(self, role)(x)
            ok = fits(out)
        except (RuntimeError, ValueError, TypeError, IndexError) as e:    # torch.jit.Error is a RuntimeError
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            out, ok = None, f"it fails on a {tuple(x.shape)} batch: {(lines or [type(e).__name__])[-1][:160]}"
        if ok is not True:
            why = ok or "its output has another shape"
            raise NodeError(f"{self.paths.get(role, 'the ' + role)} is not DWPose's {role} ({why}). The detector "
                            f"should be {DEFAULT['detector']} (Hugging Face "
                            f"{REPOSITORY[DEFAULT['detector']]}), the estimator {DEFAULT['estimator']} ("
                            f"{REPOSITORY[DEFAULT['estimator']]}): check that the two are not swapped")
        return out

    def boxes(self, frame: np.ndarray) -> np.ndarray:
        """[n,4] person boxes (x0, y0, x1, y1) in frame pixels; the whole frame without a detector."""
        h, w = frame.shape[:2]
        if self.detector is None:
            return np.array([[0.0, 0.0, w, h]])
        import torch
        letterboxed, ratio = letterbox(frame)
        x = torch.from_numpy(letterboxed).to(self.device).permute(2, 0, 1)[None]
        anchors = len(anchor_grid()[0])
        out = self.run("detector", x.to(weights_dtype(self.detector)),
                       lambda o: _tensor_of(o).dim() == 3 and _tensor_of(o).shape[1] == anchors
                       and _tensor_of(o).shape[2] > 5 + PERSON)
        return person_boxes(_tensor_of(out)[0].float().cpu().numpy(), ratio)

    def keypoints(self, frames: np.ndarray, boxes: List[np.ndarray]) -> List[np.ndarray]:
        """Per frame, [n,134,3] (x, y, score) per person in COCO-WholeBody's order with the neck inserted at 17."""
        import torch
        counts = [len(b) for b in boxes]
        if not sum(counts):
            return [np.zeros((0, 134, 3)) for _ in boxes]
        w, h = self.size
        centre, scale = box_centre_scale(np.concatenate(boxes), w / h)
        mats = crop_matrices(centre, scale, self.size)
        owner = np.repeat(np.arange(len(boxes)), counts)
        crops = np.stack([cv2.warpAffine(frames[i], m, (w, h), flags=cv2.INTER_LINEAR) for i, m in zip(owner, mats)])
        n = len(crops)
        mean, std = (torch.from_numpy(v).to(self.device) for v in (MEAN, STD))
        dtype = weights_dtype(self.estimator)
        sx, sy = [], []
        bins = (self.batch, 133, int(w * SIMCC_SPLIT)), (self.batch, 133, int(h * SIMCC_SPLIT))
        # a traced model takes its own batch only: the last one is made up with blank crops, dropped after
        for a in range(0, n, self.batch):
            x = torch.from_numpy(crops[a:a + self.batch]).to(self.device)
            x = ((x.float() - mean) / std).permute(0, 3, 1, 2)
            x = torch.cat([x, x.new_zeros((self.batch - len(x),) + x.shape[1:])])
            ox, oy = self.run("estimator", x.to(dtype), lambda o: isinstance(o, (tuple, list)) and len(o) >= 2
                              and all(tuple(t.shape) == s for t, s in zip(o, bins)))[:2]
            sx.append(ox[:n - a].float().cpu())
            sy.append(oy[:n - a].float().cpu())
        points, scores = simcc_decode(torch.cat(sx).numpy(), torch.cat(sy).numpy())
        points = to_frame(points, centre, scale, self.size)
        full = with_neck(np.concatenate([points, scores[..., None]], axis=-1))
        return np.split(full, np.cumsum(counts)[:-1])


def _tensor_of(out):
    """YOLOX's predictions: the output, or its first element where the export returns a tuple."""
    return out[0] if isinstance(out, (tuple, list)) else out


def weights_dtype(module):
    """The dtype a model's weights are in (an fp16 export takes fp16 pictures), float32 for one without any."""
    import torch
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def letterbox(frame: np.ndarray) -> Tuple[np.ndarray, float]:
    """The frame scaled to fit DETECT_SIZE square, laid at the top left of grey 114 (YOLOX's input), uint8."""
    h, w = frame.shape[:2]
    r = min(DETECT_SIZE / h, DETECT_SIZE / w)
    out = np.full((DETECT_SIZE, DETECT_SIZE, 3), 114, np.uint8)
    rh, rw = int(h * r), int(w * r)
    out[:rh, :rw] = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_LINEAR)
    return out, r


def anchor_grid(size: int = DETECT_SIZE) -> Tuple[np.ndarray, np.ndarray]:
    """YOLOX's anchor cells (x, y) [N,2] and their strides [N,1], finest level first."""
    cells, strides = [], []
    for s in STRIDES:
        ys, xs = np.mgrid[0:size // s, 0:size // s]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((cells[-1].shape[0], 1), s))
    return np.concatenate(cells).astype(np.float64), np.concatenate(strides).astype(np.float64)


def person_boxes(pred: np.ndarray, ratio: float) -> np.ndarray:
    """[n,4] person boxes from YOLOX's raw predictions [N, 5 + classes] (cx, cy, log w, log h offsets per
    anchor cell, objectness, class scores) in letterboxed pixels, divided back by `ratio`: NMS as YOLOX's demo
    does it, then the boxes DWPose keeps (score above BOX_MIN)."""
    cells, strides = anchor_grid()
    pred = pred.astype(np.float64)
    xy = (pred[:, :2] + cells) * strides
    wh = np.exp(pred[:, 2:4]) * strides
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1) / ratio
    score = pred[:, 4] * pred[:, 5 + PERSON]
    keep = score > SCORE_MIN
    boxes, score = boxes[keep], score[keep]
    kept = nms(boxes, score)
    boxes, score = boxes[kept], score[kept]
    return boxes[score > BOX_MIN]


def nms(boxes: np.ndarray, scores: np.ndarray) -> List[int]:
    """Greedy non-maximum suppression over IoU > NMS_IOU, with YOLOX's inclusive (+1) pixel areas: written here
    because cv2.dnn.NMSBoxes counts areas without the +1, which moves where overlapping people are cut."""
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    order = np.argsort(scores)[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        lo = np.maximum(boxes[i, :2], boxes[order[1:], :2])
        hi = np.minimum(boxes[i, 2:], boxes[order[1:], 2:])
        inter = np.prod(np.maximum(0.0, hi - lo + 1), axis=1)
        iou = inter / (area[i] + area[order[1:]] - inter)
        order = order[1:][iou <= NMS_IOU]
    return keep


def simcc_decode(simcc_x: np.ndarray, simcc_y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(points [n,K,2] in model-input pixels, scores [n,K]) from SimCC outputs [n,K,bins]: each axis's most
    likely bin over SIMCC_SPLIT; the score is the smaller of the two axes' peaks (a point with none is -1)."""
    points = np.stack([simcc_x.argmax(-1), simcc_y.argmax(-1)], axis=-1).astype(np.float64)
    scores = np.minimum(simcc_x.max(-1), simcc_y.max(-1)).astype(np.float64)
    points[scores <= 0] = -1
    return points / SIMCC_SPLIT, scores


def with_neck(kp: np.ndarray) -> np.ndarray:
    """[n,133,3] -> [n,134,3]: the neck (between the shoulders; score 1 where both are above KEYPOINT_MIN, else 0)
    inserted at 17, and the 18 body joints put in OpenPose's order."""
    neck = kp[:, [5, 6]].mean(axis=1)
    neck[:, 2] = ((kp[:, 5, 2] > KEYPOINT_MIN) & (kp[:, 6, 2] > KEYPOINT_MIN)).astype(np.float64)
    full = np.insert(kp, 17, neck, axis=1)
    full[:, :18] = full[:, list(OPENPOSE_FROM_COCO)]
    return full


def people(keypoints: np.ndarray) -> List[dict]:
    """Per person, the parts to draw (NaN for a keypoint below KEYPOINT_MIN; a hand or face with none is None):
    body [18,2], hands [21,2], face [70,2] (DWPose's 68 points, then the two eyes, as OpenPose's face has)."""
    out = []
    for person in keypoints:
        xy = np.where((person[:, 2] >= KEYPOINT_MIN)[:, None], person[:, :2], np.nan)

        def part(a, b):
            p = xy[a:b]
            return None if np.isnan(p).all() else p
        face = part(24, 92)
        out.append({"body": xy[:18], "left_hand": part(92, 113), "right_hand": part(113, 134),
                    "face": None if face is None else np.concatenate([face, xy[[14, 15]]])})
    return out


def render(keypoints: np.ndarray, height: int, width: int, resolution: int, body: bool, hands: bool, face: bool,
           xinsr: bool) -> np.ndarray:
    """The pose picture for one frame's people: drawn at the frame's size, then scaled to the detect
    resolution (cubic up, area down, as controlnet_aux does)."""
    canvas = draw_people(height, width, people(keypoints), body, hands, face, xinsr)
    th, tw = detect_size(height, width, resolution)
    if (th, tw) == (height, width):
        return canvas
    interp = cv2.INTER_CUBIC if resolution > min(height, width) else cv2.INTER_AREA
    return cv2.resize(canvas, (tw, th), interpolation=interp)


@functools.lru_cache(maxsize=2)
def _load(detector: Optional[str], estimator: str, stamp: tuple, device: str) -> DWPose:
    det = load_torchscript(Path(detector), device) if detector else None
    est = load_torchscript(Path(estimator), device)
    name = Path(estimator).name
    return DWPose(det, est, input_size(name), batch_of(name), device, {"detector": detector, "estimator": estimator})


def load_dwpose(detector: str, estimator: str, device: str = "cpu") -> DWPose:
    det = None if detector in ("", "None") else find_pose_model(detector, "detector")
    est = find_pose_model(estimator, "estimator")
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (det, est) if p is not None)
    return _load(str(det) if det else None, str(est), stamp, device)


def pose_clip(video, detector: str, estimator: str, resolution: int = 512, body: bool = True, hands: bool = True,
              face: bool = True, xinsr: bool = False, device: str = "cpu", ctx=None):
    """A lazy Clip of video's pose pictures at the detect resolution, made as far as read (the editor's viewer
    showing one frame made one): the frames read go through the pose model together, in its own fixed batches, so
    a person's keypoints do not depend on who shares the batch."""
    from nodes.common.stream import Progress
    model = load_dwpose(detector, estimator, device)
    th, tw = detect_size(video.height, video.width, resolution)
    progress = Progress(ctx, video.length)

    def reader(a: int, b: int) -> np.ndarray:
        out = np.empty((b - a, th, tw, 3), np.uint8)
        for lo, block in video.pieces(a, b):
            if ctx is not None:
                ctx.check()
            found = model.keypoints(block, [model.boxes(f) for f in block])
            for k, kp in enumerate(found, lo - a):
                out[k] = render(kp, video.height, video.width, resolution, body, hands, face, xinsr)
            progress.add(len(block))
        return out

    return video.with_(width=tw, height=th, reader=reader, local=True)
