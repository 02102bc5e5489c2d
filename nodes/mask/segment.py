"""Masks found by Segment Anything 3 from a text prompt ("cat", "the man's red jacket"), tracked through a clip with
the model's memory (SAM 3's video model: a detector finds each object, a tracker carries it from frame to frame, and
the two are matched every frame), as a rotoscoper's roughed-in matte.

The model is transformers' own Sam3VideoModel read from the user's Hugging Face folder (facebook/sam3); the frames are
prepared as its processor does (resized to the model's square, scaled to -1..1: Sam3ImageProcessor, which needs
torchvision, an install Kinograph does not otherwise ask for) and the masks post-processed as
Sam3VideoProcessor.postprocess_outputs makes them (the low-resolution logits sized to the frame, above 0, objects the
model suppressed or removed left out). The clip is read a chunk at a time in frame order; a read behind what has been
tracked starts the pass again from the first frame, so every read gives what one pass gives."""
from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from typing import Dict

import numpy as np

from graph_engine import NodeError

HF_FOLDER = ("SAM 3's Hugging Face folder (facebook/sam3: config.json, model.safetensors, processor_config.json and "
             "the tokenizer's files)")
KIND = "sam2"           # kijai's ComfyUI-segment-anything-2 keeps its models in models/sam2; SAM 3 goes beside them
# ComfyUI's own SAM 3 node loads a repackaged file from checkpoints/ (Comfy-Org/sam3.1: sam3.1_multiplex_fp16);
# SAM 3.1's multiplexed tracker is not a model transformers has.
COMFY_SAM31 = ("is ComfyUI's repackaged SAM 3.1 (multiplex) file, a model transformers does not implement; "
               "Kinograph reads " + HF_FOLDER + ". Put that folder in a 'sam2' (or 'sam3') model folder and give "
               "its name")


class Segmenter:
    """A SAM 3 video model, its tokenizer and its picture preparation (size, mean, std from the folder)."""

    def __init__(self, model, tokenizer, size: int, mean, std, device: str):
        import torch
        self.model, self.tokenizer, self.size, self.device = model, tokenizer, size, device
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        # One pass at a time: the thresholds are set on the shared model for the pass that runs.
        self.lock = threading.RLock()

    def pixels(self, frames: np.ndarray):
        """float32 [n, 3, S, S] of uint8 frames [n, H, W, 3]: resized as torchvision does (bilinear, antialiased,
        rounded to 8 bits), then scaled and normalised."""
        import torch
        import torch.nn.functional as F
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        x = x.round().clamp(0, 255) / 255.0
        return (x - self.mean) / self.std


def _preprocessing(folder: Path, config: dict):
    """(size, mean, std) from processor_config.json (facebook/sam3) or preprocessor_config.json; SAM 3's own
    1008 px and 0.5/0.5 where neither says."""
    for name in ("processor_config.json", "preprocessor_config.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        data = data.get("image_processor", data)
        size = data.get("size") or {}
        side = size.get("height") or size.get("shortest_edge")
        if side:
            return int(side), data.get("image_mean", [0.5] * 3), data.get("image_std", [0.5] * 3)
    vision = config.get("detector_config", {}).get("vision_config", {}).get("backbone_config", {})
    return int(vision.get("image_size", 1008)), [0.5] * 3, [0.5] * 3


@functools.lru_cache(maxsize=2)
def _load(path: str, stamp: tuple, device: str) -> Segmenter:
    from transformers import AutoTokenizer, Sam3VideoModel
    from nodes.generate.offline import quiet_libraries
    quiet_libraries()
    folder = Path(path)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise NodeError(f"{folder / 'config.json'} cannot be read ({e}); {folder} should be {HF_FOLDER}") from None
    if config.get("model_type") != "sam3_video":
        raise NodeError(f"{folder} holds a {config.get('model_type') or 'model of no stated type'} model, not SAM 3's "
                        f"video model (model_type sam3_video); it should be {HF_FOLDER}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise NodeError(f"{folder} has no readable tokenizer ({type(e).__name__}: {str(e)[:160]}): copy SAM 3's "
                        "tokenizer files (tokenizer.json, vocab.json, merges.txt, tokenizer_config.json) from its "
                        "Hugging Face page into the folder") from None
    try:
        model = Sam3VideoModel.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - safetensors' own error for a damaged file is no OSError
        raise NodeError(f"{folder}'s weights cannot be read ({type(e).__name__}: {str(e)[:200]}): the copy is "
                        f"damaged or incomplete; copy model.safetensors again. It should be {HF_FOLDER}") from None
    size, mean, std = _preprocessing(folder, config)
    return Segmenter(model.to(device).eval(), tokenizer, size, mean, std, device)


def find_segmenter(name: str) -> Path:
    """The SAM 3 folder `name` names: in a 'sam2'/'sam3' model folder, else in checkpoints/ (where ComfyUI keeps
    its SAM 3 file), else the path as given."""
    from nodes.common.models_dirs import find_model, not_found
    path = find_model(name, KIND, required=False) or find_model(name, "checkpoints", required=False)
    if path is None:
        raise not_found(name, KIND, what="SAM 3 model")
    if path.is_file():
        if "sam3.1" in path.name.lower() or "multiplex" in path.name.lower():
            raise NodeError(f"{path} {COMFY_SAM31}")
        raise NodeError(f"{path} is a single weight file; Kinograph reads {HF_FOLDER}. Put that folder in a 'sam2' "
                        "(or 'sam3') model folder and give its name")
    return path


def load_segmenter(name: str, device: str = "cpu") -> Segmenter:
    path = find_segmenter(name)
    weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    if not weights:
        raise NodeError(f"{path} holds no weights (model.safetensors); it should be {HF_FOLDER}")
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in weights)
    return _load(str(path), stamp, device)


def frame_mask(session, out, height: int, width: int) -> np.ndarray:
    """float32 H x W, 1 where any object the model kept for this frame is (Sam3VideoProcessor.postprocess_outputs's
    masks, joined): each object's low-resolution logits sized to the frame, above 0; empty ones, those suppressed
    on this frame and those the hot start removed left out."""
    import torch
    import torch.nn.functional as F
    hidden = set(out.suppressed_obj_ids or ()) | set(session.hotstart_removed_obj_ids)
    ids = [i for i in sorted(out.obj_id_to_mask) if i not in hidden]
    if not ids:
        return np.zeros((height, width), np.float32)
    low = torch.cat([out.obj_id_to_mask[i] for i in ids], dim=0).float()
    masks = F.interpolate(low[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0] > 0
    return masks.any(dim=0).cpu().numpy().astype(np.float32)


class TextTracker:
    """One pass of SAM 3 over a clip in frame order, for a text prompt: each frame's mask once the model has
    settled it (its hot start holds a frame back until `hotstart_delay` later frames have confirmed or removed what
    was found on it, as Sam3VideoModel.propagate_in_video_iterator does)."""

    def __init__(self, segmenter: Segmenter, video, prompt: str, threshold: float, ctx=None):
        self.seg, self.video, self.prompt, self.threshold, self.ctx = segmenter, video, prompt, threshold, ctx
        self.lock = threading.Lock()
        self.session = None
        self.done: Dict[int, np.ndarray] = {}
        self.pos = 0

    def _start(self) -> None:
        from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession
        s = Sam3VideoInferenceSession(video_height=self.video.height, video_width=self.video.width,
                                      inference_device=self.seg.device, dtype=self.seg.model.dtype)
        pid = s.add_prompt(self.prompt)
        tokens = self.seg.tokenizer(self.prompt, return_tensors="pt", padding="max_length", max_length=32)
        s.prompt_input_ids[pid] = tokens.input_ids.to(self.seg.device)
        s.prompt_attention_masks[pid] = tokens.attention_mask.to(self.seg.device)
        self.session, self.pos, self.pending, self.done = s, 0, [], {}

    def _step(self, idx: int, frame: np.ndarray) -> None:
        import torch
        model, s = self.seg.model, self.session
        s.add_new_frame(self.seg.pixels(frame[None]), idx)
        with torch.inference_mode():
            out = model(inference_session=s, frame_idx=idx)
        # The frame's picture is not looked at again (its features are cached with the tracker's memory).
        s.processed_frames.pop(idx - 1, None)
        last = idx == self.video.length - 1
        self.pending.append(out)
        delay = model.hotstart_delay
        if delay > 0:
            s.hotstart_removed_obj_ids.update(out.removed_obj_ids)
        ready = len(self.pending) if last or delay <= 0 else max(0, len(self.pending) - delay + 1)
        for done in self.pending[:ready]:
            self.done[done.frame_idx] = frame_mask(s, done, self.video.height, self.video.width)
        self.pending = self.pending[ready:]

    def masks(self, a: int, b: int) -> np.ndarray:
        with self.lock, self.seg.lock:
            model = self.seg.model
            model.new_det_thresh = self.threshold
            if self.session is None or any(i not in self.done and i < self.pos - len(self.pending)
                                           for i in range(a, b)):
                self._start()
            while any(i not in self.done for i in range(a, b)):
                for lo, block in self.video.pieces(self.pos, min(self.video.length, self.pos + self.video.chunk)):
                    for k, frame in enumerate(block):
                        if self.ctx is not None:
                            self.ctx.check()
                        self._step(lo + k, frame)
                        self.pos = lo + k + 1
                if self.ctx is not None:
                    self.ctx.progress(self.pos, self.video.length)
            out = np.stack([self.done[i] for i in range(a, b)])
            for i in [i for i in self.done if i < a]:
                del self.done[i]
            return out


def text_masks(video, model: str, prompt: str, threshold: float = 0.7, device: str = "cpu", ctx=None):
    """A clip of masks (one a frame of `video`) of what `prompt` names, tracked with SAM 3's video model."""
    from nodes.common import masks
    prompt = (prompt or "").strip()
    if not prompt:
        raise NodeError("mask.segment: give a text prompt naming what to mask (e.g. 'cat', 'the red car')")
    tracker = TextTracker(load_segmenter(model, device), video, prompt, threshold, ctx)
    return masks.clip_of(tracker.masks, video)
