"""Depth maps from a depth-estimation model the user keeps locally: a Hugging Face folder (config.json, the
weights, preprocessor_config.json) of any model transformers' AutoModelForDepthEstimation reads: Depth Anything
V1/V2, DPT / MiDaS 3.x, ZoeDepth, Depth Pro, GLPN. transformers is used as it is, preprocessing included: each
model's own resize rule (Depth Anything: the short side to 518, a multiple of 14) and normalisation are what it
was trained with, and re-deriving them per family is where depth tools go subtly wrong."""
from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np

from graph_engine import NodeError

# Model types whose predicted_depth is a distance (far = larger); the others give relative inverse depth
# (disparity: near = larger), the picture ControlNet depth models were trained on.
METRIC_TYPES = ("zoedepth", "glpn", "depth_pro")
# The share of each frame's pixels (percent) left out at each end of the clip's range (clip_spread).
TAIL = 0.1
SPREADS = ("clip", "frame")
MIN_SIDE = 32       # pixels a side a frame is given to the model at least
MAX_ASPECT = 8      # longest side over shortest of the picture given to the model
HF_FOLDER = ("a Hugging Face depth-estimation folder (config.json, model.safetensors, preprocessor_config.json), "
             "e.g. depth-anything/Depth-Anything-V2-Small-hf")
# The files comfyui_controlnet_aux downloads into its ckpts/ folder (and ComfyUI's depth nodes keep), each its authors'
# own layout (Depth Anything's DINOv2 + DPT, MiDaS's and ZoeDepth's timm backbones), and the Hugging Face folder of
# the same model that transformers reads. None of them is converted here: transformers no longer ships the
# conversion scripts, and a conversion nothing here can check against would be a guess.
AUTHOR_FILES = {"depth_anything_vitl14.pth": "LiheYoung/depth-anything-large-hf",
                "depth_anything_vitb14.pth": "LiheYoung/depth-anything-base-hf",
                "depth_anything_vits14.pth": "LiheYoung/depth-anything-small-hf",
                "depth_anything_v2_vitl.pth": "depth-anything/Depth-Anything-V2-Large-hf",
                "depth_anything_v2_vitb.pth": "depth-anything/Depth-Anything-V2-Base-hf",
                "depth_anything_v2_vits.pth": "depth-anything/Depth-Anything-V2-Small-hf",
                "dpt_hybrid-midas-501f0c75.pt": "Intel/dpt-hybrid-midas",
                "ZoeD_M12_N.pt": "Intel/zoedepth-nyu"}


class Estimator:
    def __init__(self, model, processor, metric: bool, device: str):
        self.model, self.processor, self.metric, self.device = model, processor, metric, device

    def disparity(self, frame: np.ndarray) -> np.ndarray:
        """float32 HxW for one uint8 RGB frame, larger = nearer (a metric model's distances inverted)."""
        import torch
        import torch.nn.functional as F
        inputs = self.processor(images=model_sized(frame), return_tensors="pt", input_data_format="channels_last")
        pixels = inputs["pixel_values"].to(self.device, self.model.dtype)
        with torch.inference_mode():
            pred = self.model(pixel_values=pixels).predicted_depth
        pred = F.interpolate(pred.float()[:, None], size=frame.shape[:2], mode="bicubic", align_corners=False)[0, 0]
        d = pred.cpu().numpy()
        if self.metric:
            d = 1.0 / np.maximum(d, 1e-6)
        return d


def model_sized(frame: np.ndarray) -> np.ndarray:
    """The frame stretched, where it is tiny or a thin strip, to at least MIN_SIDE a side and at most MAX_ASPECT
    long (the map is sized back to the frame). The processors keep the aspect ratio and round each side to a
    multiple of the patch: a frame 1 px tall, or 4 x 1000, became 0 px wide inside transformers (ValueError:
    "Size must contain 'height' and 'width' keys"), and a 1x1 frame was taken for a picture of 1 channel."""
    h, w = frame.shape[:2]
    th, tw = max(h, MIN_SIDE, -(-w // MAX_ASPECT)), max(w, MIN_SIDE, -(-h // MAX_ASPECT))
    if (th, tw) == (h, w):
        return frame
    return cv2.resize(frame, (tw, th), interpolation=cv2.INTER_LINEAR)


def depth_picture(disparity: np.ndarray, spread: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """uint8 HxWx3 grey: disparity spread over 0..255 (near white) by `spread` (farthest, nearest), clipped; without
    one, by the frame's own range, as ControlNet's depth preprocessors make a picture's. A flat one is mid-grey."""
    grey = np.rint(spread_unit(disparity, spread) * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def spread_unit(values: np.ndarray, span: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """float32 `values` spread over 0..1 by `span` (lo, hi), clipped; without one, by their own range. A flat one
    is 0.5."""
    lo, hi = span if span is not None else (float(values.min()), float(values.max()))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo < 1e-12:
        return np.full(values.shape, 0.5, np.float32)
    return np.clip((values - lo) * (1.0 / (hi - lo)), 0, 1).astype(np.float32)


def clip_spread(disparities) -> Optional[Tuple[float, float]]:
    """One (farthest, nearest) range holding every frame's surfaces (TAIL of the pixels left out at each end of
    each frame: a stray speck at the lens had darkened everything else), None for no frames."""
    ranges = [np.percentile(d, [TAIL, 100.0 - TAIL]) for d in disparities]
    if not ranges:
        return None
    return float(min(r[0] for r in ranges)), float(max(r[1] for r in ranges))


@functools.lru_cache(maxsize=2)
def _load(path: str, stamp: tuple, device: str, full_precision: bool = False) -> Estimator:
    import torch
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation
    from nodes.generate.offline import quiet_libraries
    quiet_libraries(("transformers",))       # transformers' advice to install torchvision (its PIL processor is the one used)
    folder = Path(path)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise NodeError(f"{folder / 'config.json'} cannot be read ({e}); {folder} should be {HF_FOLDER}") from None
    if not (folder / "preprocessor_config.json").is_file():
        raise NodeError(f"{folder} has no preprocessor_config.json, which says how the model wants its pictures "
                        f"sized and normalised; copy it from the model's Hugging Face page into the folder")
    try:
        model = AutoModelForDepthEstimation.from_pretrained(str(folder), local_files_only=True)
        processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise NodeError(f"{folder} is not a depth-estimation model transformers can load "
                        f"({type(e).__name__}: {str(e)[:200]}); it should be {HF_FOLDER}") from None
    dtype = torch.float16 if device.startswith("cuda") and not full_precision else torch.float32
    model = model.to(device, dtype).eval()
    metric = config.get("model_type") in METRIC_TYPES or config.get("depth_estimation_type") == "metric"
    return Estimator(model, processor, metric, device)


def authors_file(path: Path) -> str:
    """What to do with a model's own weight file (AUTHOR_FILES), which depth.estimate cannot read: '' for another."""
    repo = AUTHOR_FILES.get(path.name)
    if repo is None:
        return ""
    return (f"{path} is the model's own file (its authors' layout, as comfyui_controlnet_aux keeps it), which "
            f"transformers does not read and Kinograph does not convert: put the same model's Hugging Face folder, "
            f"{repo} (config.json, model.safetensors, preprocessor_config.json), in a 'depth' model folder as "
            f"{repo.split('/')[1]}")


def moge_version(name: str) -> str:
    """"MoGe-1", "MoGe-2" or "MoGe-3" by a MoGe file's name as Comfy-Org/MoGe and the authors name them, "" for
    another file: read by name, as a listing or an import cannot open a 1.3 GB file."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if "moge" not in name:
        return ""
    if "moge_3" in name or "moge-3" in name:
        return "MoGe-3"
    return "MoGe-1" if "moge_1" in name or "moge-vit" in name else "MoGe-2"


def describe(path: Path) -> dict:
    """`kinograph info`'s row for a model in a depth folder: its type by config.json and the nodes that read it, or
    why it does not load (an authors' file, a folder short of the files transformers needs)."""
    row = {"family": "depth", "variant": "", "role": "", "precision": "", "loads": "no", "note": ""}
    version = moge_version(path.name)
    if path.is_file() and version:
        return dict(row, family="moge", variant=version, loads="yes" if version == "MoGe-2" else "no",
                    note="depth.moge" if version == "MoGe-2" else f"{version}: depth.moge runs MoGe-2 files")
    if path.is_file():
        from nodes.depth.da3 import describe as da3_row
        da3 = da3_row(path)
        if da3 is not None:
            return dict(row, **da3)
        return dict(row, note=authors_file(path) or f"a single weight file; depth.estimate reads {HF_FOLDER}")
    try:
        kind = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type") or ""
    except (OSError, ValueError, AttributeError) as e:
        return dict(row, note=f"{path / 'config.json'} cannot be read ({e})")
    if not (path / "preprocessor_config.json").is_file():
        return dict(row, variant=kind, note="no preprocessor_config.json: copy it from the model's Hugging Face page")
    readers = "depth.estimate, normals.midas" if kind == "dpt" else "depth.estimate"
    return dict(row, variant=kind, loads="yes", note=readers)


def find_depth_model(name: str) -> Path:
    """The depth model folder `name`; not found, and comfyui_controlnet_aux holds the same model as its authors' file
    (in its ckpts/ folder, where pose.dwpose finds its files), the error names that file and the folder it needs."""
    from nodes.common.models_dirs import find_model
    path = find_model(name, "depth", required=False)
    if path is not None:
        return path
    for file, repo in AUTHOR_FILES.items():
        if repo.split("/")[1] == name:
            held = find_model(file, "pose", required=False)
            if held is not None:
                raise NodeError(f"depth model {name!r} not found. {authors_file(held)}")
    return find_model(name, "depth")


def load_estimator(name: str, device: str = "cpu", full_precision: bool = False) -> Estimator:
    path = find_depth_model(name)
    if path.is_file():
        # ComfyUI's depth nodes keep Depth Anything as its authors' checkpoint (depth_anything_v2_vits.pth,
        # .safetensors in models/depthanything): a different layout, without the preprocessing settings.
        raise NodeError(authors_file(path) or f"{path} is a single weight file; depth.estimate reads {HF_FOLDER}. "
                                              f"Put that folder in a 'depth' model folder and give its name")
    weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    if not weights:
        raise NodeError(f"{path} holds no weights (model.safetensors); it should be {HF_FOLDER}")
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in weights)
    return _load(str(path), stamp, device, full_precision)


def depth_clip(video, model: str, device: str = "cpu", ctx=None, spread: str = "clip"):
    """A lazy Clip of video's depth pictures. spread "frame": each frame by its own range (ControlNet's
    preprocessors, made for single pictures: where a lamp comes into the shot the wall behind it darkens, and the
    depth pumps); "clip": by one range for the whole clip, found by running the model over the clip once first."""
    from nodes.common.stream import Progress, map_indexed
    if spread not in SPREADS:
        raise NodeError(f"depth.estimate: spread {spread!r}: use one of {', '.join(SPREADS)}")
    estimator = load_estimator(model, device)
    if spread == "frame":
        return map_indexed(ctx, video, lambda i, f: depth_picture(estimator.disparity(f)))
    progress = Progress(ctx, 2 * video.length)
    found: list = []
    lock = threading.Lock()     # chunks may be read side by side: the clip is run over once

    def clip_range():
        with lock:
            if found:
                return found[0]
            def each():
                for _, block in video.chunks():
                    for frame in block:
                        if ctx is not None:
                            ctx.check()
                        yield estimator.disparity(frame)
                        progress.add(1)
            found.append(clip_spread(each()))
            return found[0]
    return map_indexed(ctx, video, lambda i, f: depth_picture(estimator.disparity(f), clip_range()),
                       progress=progress)
