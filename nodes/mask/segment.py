"""Masks found by Segment Anything 3 from a text prompt ("cat", "the man's red jacket"), tracked through a clip with
the model's memory (SAM 3's video model: a detector finds each object, a tracker carries it from frame to frame, and
the two are matched every frame), as a rotoscoper's roughed-in matte.

The model is transformers' own Sam3VideoModel read from the user's Hugging Face folder (facebook/sam3); the frames are
prepared as its processor does (resized to the model's square, scaled to -1..1: Sam3ImageProcessor, which needs
torchvision, an install Kinograph does not otherwise ask for) and the masks post-processed as
Sam3VideoProcessor.postprocess_outputs makes them (the low-resolution logits sized to the frame, above 0, objects the
model suppressed or removed left out). The masks are made a frame at a time in frame order, only as far as the frames
read; a read behind what has been tracked starts the pass again from the first frame, so every read gives what one
pass gives."""
from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from graph_engine import NodeError
from graph_engine.picks import box_groups, point_groups

HF_FOLDER = ("SAM 3's Hugging Face folder (facebook/sam3: config.json, model.safetensors, processor_config.json and "
             "the tokenizer's files)")
SAM2_FOLDER = ("SAM 2's Hugging Face video folder (facebook/sam2.1-hiera-tiny, -small, -base-plus, -large: config.json, "
               "model.safetensors, preprocessor_config.json)")
# model_type -> (transformers class, what the folder should be, default mean and std of its pictures)
MODELS = {"sam3_video": ("Sam3VideoModel", HF_FOLDER, [0.5] * 3, [0.5] * 3),
          "sam2_video": ("Sam2VideoModel", SAM2_FOLDER, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])}
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


def _rgb(value) -> list:
    """A mean or std as the files give it (one number, or one per channel) for the three channels."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return values * 3 if len(values) == 1 else values


def _preprocessing(folder: Path, config: dict, mean, std):
    """(size, mean, std) from processor_config.json (facebook/sam3) or preprocessor_config.json; the model's own
    size and the family's mean and std where neither says."""
    from nodes.generate.processor_bound import check, checked_side
    for name in ("processor_config.json", "preprocessor_config.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        check(data, folder / name)
        data = data.get("image_processor", data) if isinstance(data.get("image_processor"), dict) else data
        size = data.get("size") or {}
        side = (size.get("height") or size.get("shortest_edge") if isinstance(size, dict)
                else size[0] if isinstance(size, (list, tuple)) else size)
        if side:
            return int(side), _rgb(data.get("image_mean", mean)), _rgb(data.get("image_std", std))
    vision = config.get("detector_config", config).get("vision_config", {}).get("backbone_config", {})
    return checked_side(vision.get("image_size", config.get("image_size", 1024)), folder / "config.json"), mean, std


def warm_imports() -> None:
    """Imports what loading SAM 2 imports first (transformers and its SAM 2 video model: seconds of CPU), for a front
    end to run on another thread while points are being picked, ahead of the first mask (mask.track_points' warm)."""
    from transformers import Sam2VideoModel  # noqa: F401


@functools.lru_cache(maxsize=2)
def _load(path: str, stamp: tuple, device: str, wanted: tuple) -> Segmenter:
    import transformers
    from transformers import AutoTokenizer
    from nodes.generate.offline import quiet_libraries
    quiet_libraries(("transformers",))
    folder = Path(path)
    if folder.is_file():
        return _load_file(folder, device)
    what = " or ".join(MODELS[t][1] for t in wanted)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise NodeError(f"{folder / 'config.json'} cannot be read ({e}); {folder} should be {what}") from None
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind not in wanted:
        raise NodeError(f"{folder} holds a {kind or 'model of no stated type'} model, not "
                        f"{' or '.join(wanted)}; it should be {what}")
    cls_name, what, mean, std = MODELS[kind]
    # A point tracker (mask.track_points) asks for SAM 2 or SAM 3: SAM 3's folder then gives its tracker (the SAM 2
    # design with SAM 3's vision encoder), which transformers loads from facebook/sam3 as it is.
    tracker = kind == "sam3_video" and "sam2_video" in wanted
    cls_name = "Sam3TrackerVideoModel" if tracker else cls_name
    size, mean, std = _preprocessing(folder, config, mean, std)
    tokenizer = None
    if kind == "sam3_video" and not tracker:
        tokenizer_files = ("copy SAM 3's tokenizer files (tokenizer.json, vocab.json, merges.txt, tokenizer_config.json) "
                           "from its Hugging Face page into the folder")
        # transformers makes an empty CLIP tokenizer (2 tokens) for a folder without these files: every prompt
        # would be read as nothing, and no object found, with no word said.
        if not any((folder / n).is_file() for n in ("tokenizer.json", "vocab.json")):
            raise NodeError(f"{folder} has no tokenizer (no tokenizer.json or vocab.json): {tokenizer_files}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, TypeError) as e:
            raise NodeError(f"{folder} has no readable tokenizer ({type(e).__name__}: {str(e)[:160]}): "
                            f"{tokenizer_files}") from None
    try:
        model = getattr(transformers, cls_name).from_pretrained(str(folder), local_files_only=True)
    except NodeError:       # config_bound's: config.json claims more than the weights hold, said as such
        raise
    except Exception as e:  # noqa: BLE001 - safetensors' own error for a damaged file is no OSError
        raise NodeError(f"{folder}'s weights cannot be read ({type(e).__name__}: {str(e)[:200]}): the copy is "
                        f"damaged or incomplete; copy model.safetensors again. It should be {what}") from None
    return Segmenter(model.to(device).eval(), tokenizer, size, mean, std, device)


def _keys(path: Path) -> set:
    """The tensor names of a .safetensors file; a file that cannot be opened is named as damaged."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), "pt") as f:
            return set(f.keys())
    except Exception as e:  # noqa: BLE001 - safetensors' own error for a damaged file is no OSError
        raise NodeError(f"{path} cannot be read ({type(e).__name__}: {str(e)[:160]}): the copy is damaged or "
                        "incomplete (an interrupted download?); copy it again") from None


def _original_keys(path: Path):
    """The tensor names of a .safetensors file, None where it is not one Meta's SAM 2 layout fills."""
    from nodes.mask import sam2_file
    if path.suffix != ".safetensors":
        return None
    try:
        keys = _keys(path)
    except NodeError:
        return None
    return keys if sam2_file.is_original(keys) else None


def _load_file(path: Path, device: str) -> Segmenter:
    """A Segmenter of a single SAM 2 file in Meta's layout (kijai's sam2*_hiera_*.safetensors)."""
    from safetensors.torch import load_file
    from nodes.mask import sam2_file
    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors' own error for a damaged file is no OSError
        raise NodeError(f"{path} cannot be read ({type(e).__name__}: {str(e)[:200]}): the copy is damaged or "
                        "incomplete; copy it again") from None
    model, config = sam2_file.load(path, tensors)
    _, _, mean, std = MODELS["sam2_video"]
    size, mean, std = _preprocessing(path, config, mean, std)
    return Segmenter(model.to(device).eval(), None, size, mean, std, device)


def find_segmenter(name: str, what: str = HF_FOLDER) -> Path:
    """The SAM folder `name` names: in a 'sam2'/'sam3' model folder, else in checkpoints/ (where ComfyUI keeps
    its SAM 3 file), else the path as given."""
    from nodes.common.models_dirs import find_model, not_found
    path = find_model(name, KIND, required=False) or find_model(name, "checkpoints", required=False)
    if path is None:
        raise not_found(name, KIND, what="SAM model")
    return path


def file_refusal(path: Path, what: str) -> NodeError:
    """The message for a single SAM file, where Kinograph reads a transformers folder."""
    if "sam3.1" in path.name.lower() or "multiplex" in path.name.lower():
        return NodeError(f"{path} {COMFY_SAM31}")
    return NodeError(f"{path} is a single weight file; Kinograph reads {what}. Put that folder in a 'sam2' "
                     "(or 'sam3') model folder and give its name (of single files, mask.track_points reads SAM 2 "
                     "in Meta's layout: kijai's sam2*_hiera_*.safetensors)")


def damaged(path: Path) -> Optional[NodeError]:
    """Why a single .safetensors file cannot be opened (a copy cut short), where it is not ComfyUI's SAM 3.1 file
    (named as such whatever its state); None where it opens."""
    if path.suffix != ".safetensors" or "sam3.1" in path.name.lower() or "multiplex" in path.name.lower():
        return None
    try:
        _keys(path)
    except NodeError as e:
        return e
    return None


def describe(path: Path) -> dict:
    """`kinograph info`'s row for a model in a SAM folder: SAM 3 or SAM 2 by its config.json, the node that reads
    it, or why it does not load (a single file, another model's folder)."""
    row = {"family": "sam", "variant": "", "role": "segmenter", "precision": "", "loads": "no", "note": ""}
    if path.is_file():
        if _original_keys(path):
            return dict(row, variant="sam2_video (Meta's layout)", loads="yes", note="mask.track_points")
        problem = damaged(path)
        if problem:
            return dict(row, note=str(problem))
        return dict(row, note=str(file_refusal(path, " or ".join(m[1] for m in MODELS.values()))))
    try:
        kind = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as e:
        return dict(row, note=f"{path / 'config.json'} cannot be read ({e})")
    if kind not in MODELS:
        return dict(row, note=f"holds a {kind or 'model of no stated type'} model, not SAM 3's or SAM 2's video model")
    return dict(row, variant=kind, loads="yes",
                note="mask.segment, mask.track_points" if kind == "sam3_video" else "mask.track_points")


def load_segmenter(name: str, device: str = "cpu", kinds: tuple = ("sam3_video",)) -> Segmenter:
    what = " or ".join(MODELS[k][1] for k in kinds)
    path = find_segmenter(name, what)
    if path.is_file():
        # kijai's ComfyUI-segment-anything-2 files: Meta's SAM 2 tensors, renamed into transformers' model.
        if "sam2_video" not in kinds:
            raise file_refusal(path, what)
        problem = damaged(path)
        if problem:
            raise problem
        if not _original_keys(path):
            raise file_refusal(path, what)
        stat = path.stat()
        return _load(str(path), (stat.st_mtime_ns, stat.st_size), device, tuple(kinds))
    weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    if not weights:
        raise NodeError(f"{path} holds no weights (model.safetensors); it should be {what}")
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in weights)
    return _load(str(path), stamp, device, tuple(kinds))


def frame_objects(session, out, height: int, width: int):
    """(ids, bool [N, H, W]) of the objects the model kept for this frame (Sam3VideoProcessor.postprocess_outputs's
    masks): each object's low-resolution logits sized to the frame, above 0; those suppressed on this frame and
    those the hot start removed left out. Ids are the tracker's: the same object keeps its id from frame to frame,
    and ids grow in the order objects are first found."""
    import torch
    import torch.nn.functional as F
    hidden = set(out.suppressed_obj_ids or ()) | set(session.hotstart_removed_obj_ids)
    ids = [i for i in sorted(out.obj_id_to_mask) if i not in hidden]
    if not ids:
        return [], torch.zeros((0, height, width), dtype=torch.bool)
    low = torch.cat([out.obj_id_to_mask[i] for i in ids], dim=0).float()
    return ids, F.interpolate(low[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0] > 0


def frame_mask(session, out, height: int, width: int, keep: int = 0) -> np.ndarray:
    """float32 H x W, 1 where any object of frame_objects is (empty ones left out). `keep` > 0: only that many, the
    highest detection scores on this frame first (ComfyUI's SAM3_Detect keeps a prompt's best object on each
    frame)."""
    ids, masks = frame_objects(session, out, height, width)
    if not ids:
        return np.zeros((height, width), np.float32)
    if keep:
        shown = [k for k in range(len(ids)) if masks[k].any()]
        masks = masks[sorted(shown, key=lambda k: -float(out.obj_id_to_score[ids[k]]))[:keep]]
    return masks.any(dim=0).cpu().numpy().astype(np.float32)


KEPT_BYTES = 256 << 20     # a pass's masks kept for reads behind it: 240 frames at 1080p, a bool a pixel


class Pass:
    """One pass of a SAM video model over a clip in frame order, read a chunk at a time: `_start` opens the
    session, `_step` gives it a frame and files the masks it has settled in `done`; a read behind the pass starts it
    again."""

    def __init__(self, segmenter: Segmenter, video, ctx=None):
        self.seg, self.video, self.ctx = segmenter, video, ctx
        self.lock = threading.Lock()
        self.session = None
        self.done: Dict[int, np.ndarray] = {}
        self.pending: list = []
        self.pos = 0

    def _configure(self) -> None:
        """Settings of this pass on the shared model, under its lock."""

    def masks(self, a: int, b: int) -> np.ndarray:
        with self.lock, self.seg.lock:
            self._configure()
            if self.session is None or any(i not in self.done and i < self.pos - len(self.pending)
                                           for i in range(a, b)):
                self._start()
            # Only as far as the frames asked for: the editor's picker shows frame 0 after each click, and a
            # chunk of the source at a time made that 32 frames of the model on a small clip.
            while any(i not in self.done for i in range(a, b)):
                if self.ctx is not None:
                    self.ctx.check()
                self._step(self.pos, self.video.frame(self.pos))
                self.pos += 1
                if self.ctx is not None:
                    self.ctx.progress(self.pos, self.video.length)
            out = np.stack([self.done[i] for i in range(a, b)]).astype(np.float32)
            # The masks made on the way are kept (one byte a pixel), the clip of masks keeping two frames: a
            # viewer scrubbed back to a frame the pass went by ran the model again from frame 0 (5 after 119 on
            # carphone: 7 frames of SAM 2). Past KEPT_BYTES those furthest behind go, a chunk behind kept.
            behind = sorted(i for i in self.done if i < a - self.video.chunk)
            over = len(self.done) - KEPT_BYTES // max(1, self.video.width * self.video.height)
            for i in behind[:max(0, over)]:
                del self.done[i]
            return out

    def clip(self):
        """The clip of masks, read a frame at a time (what it holds of the video is read a chunk at a time)."""
        from nodes.common import masks
        return masks.clip_of(self.masks, self.video, chunk=1)


class TextTracker(Pass):
    """SAM 3 over a clip for a text prompt: each frame's mask once the model has settled it (its hot start holds a
    frame back until `hotstart_delay` later frames have confirmed or removed what was found on it, as
    Sam3VideoModel.propagate_in_video_iterator does)."""

    def __init__(self, segmenter: Segmenter, video, prompt: str, threshold: float, ctx=None, objects: int = 0):
        super().__init__(segmenter, video, ctx)
        self.prompt, self.threshold, self.objects = prompt, threshold, objects

    def _configure(self) -> None:
        self.seg.model.new_det_thresh = self.threshold
        self.seg.model.max_num_objects = self.seg.model.config.max_num_objects

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
            self.done[done.frame_idx] = self._settled(done)
        self.pending = self.pending[ready:]

    def _settled(self, out):
        """What is filed for a frame the model has settled: its mask."""
        return frame_mask(self.session, out, self.video.height, self.video.width, self.objects) > 0


class ObjectTracker(TextTracker):
    """SAM 3 over the whole clip for a text prompt, each object kept apart (ComfyUI's SAM3_VideoTrack): at most
    `objects` tracked at once (SAM 3's max_num_objects: past it, the new detections of highest score are kept),
    0 for ComfyUI's cap of TRACKED_CAP."""

    def _configure(self) -> None:
        super()._configure()
        self.seg.model.max_num_objects = self.objects or TRACKED_CAP

    def _settled(self, out):
        ids, masks = frame_objects(self.session, out, self.video.height, self.video.width)
        return dict(zip(ids, masks.cpu().numpy()))

    def masks_apart(self) -> np.ndarray:
        """bool [T, N, H, W]: each object the pass kept (those the hot start removed left out), in id order."""
        t, h, w = self.video.length, self.video.height, self.video.width
        with self.lock, self.seg.lock:
            self._configure()
            self._start()
            for i in range(t):
                if self.ctx is not None:
                    self.ctx.check()
                self._step(i, self.video.frame(i))
                if self.ctx is not None:
                    self.ctx.progress(i + 1, t)
            gone = set(self.session.hotstart_removed_obj_ids)
            ids = sorted({k for frame in self.done.values() for k in frame} - gone)
            out = np.zeros((t, len(ids), h, w), bool)
            for i, frame in self.done.items():
                for n, k in enumerate(ids):
                    if k in frame:
                        out[i, n] = frame[k]
            self.session, self.done = None, {}
            return out


TRACKED_CAP = 64        # objects SAM3_VideoTrack tracks at most (its max_objects 0)
MAX_OBJECTS, MAX_POINTS = 100, 1000     # objects tracked at once; prompt positions (points, boxes) of one object
NO_PROMPT = "give a text prompt naming what to mask (e.g. 'cat', 'the red car')"
NO_POINTS = ("give at least one point on the object in the first frame, e.g. [{\"x\": 120, \"y\": 80}] (ComfyUI's "
             "PointsEditor) or 120,80, or a box around it (x0,y0,x1,y1)")


def prompt_problem(text) -> Optional[str]:
    """`kinograph validate`'s check of mask.segment's prompt (the run would stop at the same words)."""
    return None if str(text or "").strip() else NO_PROMPT


def points_problem(what: str, required: bool):
    """`kinograph validate`'s check of mask.track_points' points or negative points."""
    def check(text) -> Optional[str]:
        try:
            found = parse_points(text, what)
        except NodeError as e:
            return str(e)
        return NO_POINTS if required and not any(found) else None
    return check


def box_problem(text) -> Optional[str]:
    """`kinograph validate`'s check of mask.track_points' box."""
    try:
        parse_box(text)
    except NodeError as e:
        return str(e)
    return None


def text_masks(video, model: str, prompt: str, threshold: float = 0.7, device: str = "cpu", ctx=None,
               objects: int = 0):
    """A clip of masks (one a frame of `video`) of what `prompt` names, tracked with SAM 3's video model: every
    object, or the `objects` most confident on each frame."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise NodeError(f"mask.segment: {NO_PROMPT}")
    return TextTracker(load_segmenter(model, device), video, prompt, threshold, ctx, objects).clip()


def text_objects(video, model: str, prompt: str, threshold: float = 0.5, device: str = "cpu", ctx=None,
                 objects: int = 4):
    """The objects `prompt` names, each its own mask through `video` (nodes.mask.objects.Objects), tracked with
    SAM 3's video model: the pass runs when they are first read."""
    from nodes.mask.objects import Objects
    prompt = (prompt or "").strip()
    if not prompt:
        raise NodeError(f"mask.segment_objects: {NO_PROMPT}")
    tracker = ObjectTracker(load_segmenter(model, device), video, prompt, threshold, ctx, objects)
    return Objects(video.length, video.fps, video.width, video.height, tracker.masks_apart,
                   objects or TRACKED_CAP)


def _within_limits(groups: list, what: str, text) -> list:
    """SAM tracks every object in memory of its own (a 64 x 64 picture of 256 features each, a frame) and reads every
    point as a token of its mask decoder: a received workflow's 800 KB of '1,1|' named 200,000 objects."""
    points = max((len(g) for g in groups), default=0)
    if len(groups) > MAX_OBJECTS or points > MAX_POINTS:
        many = (f"{len(groups):,} objects ('|' between objects); SAM tracks at most {MAX_OBJECTS}"
                if len(groups) > MAX_OBJECTS else f"{points:,} positions for one object; SAM takes at most {MAX_POINTS}")
        raise NodeError(f"{what} {str(text or '').strip()[:40]!r}... names {many}: a few clicks on each object mask "
                        "it. The workflow is damaged or made to fill memory")
    return groups


def parse_points(text: str, what: str) -> list:
    """Points per object, [[(x, y, frame), ...], ...] (graph_engine.picks.point_groups), or a message naming the
    parameter and the forms it takes."""
    try:
        groups = point_groups(text)
    except ValueError:
        raise NodeError(f"{what} {str(text or '').strip()[:80]!r} is not a list of points: give [{{\"x\": 120, \"y\": "
                        "80}, ...] (as ComfyUI's PointsEditor writes them) or 120,80; 200,90 in the frame's pixels "
                        "(120,80@12: on frame 12; '|' between objects)") from None
    return _within_limits(groups, what, text)


def parse_box(text) -> list:
    """Boxes per object, [[(x0, y0, x1, y1, frame), ...], ...] (graph_engine.picks.box_groups), each with an area, or
    a message saying what is wrong."""
    text = str(text or "").strip()
    try:
        groups = box_groups(text)
    except ValueError:
        raise NodeError(f"box {text[:80]!r} is not a box: give its corners as x0,y0,x1,y1 (left, top, right, "
                        "bottom) in the frame's pixels, e.g. 40,30,200,180 (40,30,200,180@12: on frame 12; '|' "
                        "between objects)") from None
    _within_limits(groups, "box", text)
    for b in (b for g in groups for b in g):
        if b[2] <= b[0] or b[3] <= b[1]:
            raise NodeError(f"box {text[:80]!r} has no area: x0,y0 is its top left corner and x1,y1 its bottom "
                            "right, so x1 > x0 and y1 > y0")
    return groups


def prompts(points: str, negative: str = "", box: str = "") -> Dict[int, Dict[int, tuple]]:
    """{frame: {object number (1, 2, ...): (coords, labels)}} of mask.track_points' text: object k is the k-th
    '|' group of points and of boxes; negative points go with the object of their group, or with every object where
    they form one group. A box is SAM 2's two corner points labelled 2 and 3, ahead of the clicks on its frame (as
    Sam2VideoProcessor adds it)."""
    positive, boxes, negative = parse_points(points, "points"), parse_box(box), parse_points(negative, "negative")
    count = max(len(positive), len(boxes))
    if not any(positive) and not any(boxes):
        raise NodeError(f"mask.track_points: {NO_POINTS}")
    if len(negative) > 1 and len(negative) != count:
        raise NodeError(f"mask.track_points: negative has {len(negative)} groups of points ('|' between objects) "
                        f"where points and box name {count} object{'s' * (count > 1)}: give one group for each "
                        "object, or one group for all of them")
    out: Dict[int, Dict[int, tuple]] = {}
    for k in range(count):
        mine = lambda groups, i=k: groups[i] if i < len(groups) else []        # noqa: E731
        own = mine(boxes), mine(positive), negative[0] if len(negative) == 1 else mine(negative)
        if not own[0] and not own[1]:
            raise NodeError(f"mask.track_points: object {k + 1} has no point on it and no box ('|' parts of points "
                            "and box are objects in turn): give it a point or a box, or remove its group")
        frames = {p[-1] for g in own for p in g}
        for f in sorted(frames):
            on = [[b for b in own[0] if b[-1] == f]] + [[p for p in g if p[-1] == f] for g in own[1:]]
            if len(on[0]) > 1:
                raise NodeError(f"mask.track_points: object {k + 1} has {len(on[0])} boxes on frame {f}; give it "
                                "one box a frame")
            coords = [c for b in on[0] for c in (b[:2], b[2:4])] + [p[:2] for p in on[1] + on[2]]
            labels = [2, 3] * len(on[0]) + [1] * len(on[1]) + [0] * len(on[2])
            out.setdefault(f, {})[k + 1] = (coords, labels)
    return out


def check_prompts(found: dict, width: int, height: int, length: int) -> None:
    """A prompt outside the clip is still a prompt to SAM 2 (it masks whatever lies nearest, or the frame is never
    reached): points clicked on a picture of another size, or given in the wrong order, would give a wrong matte with
    no word said."""
    for f, objects in sorted(found.items()):
        where = "the first frame" if f == 0 else f"frame {f}"
        if f >= length:
            raise NodeError(f"mask.track_points: a prompt is on frame {f}, past the clip's last frame ({length - 1}; "
                            "frames count from 0): @frame after a point or box is the frame it is on")
        for coords, labels in objects.values():
            boxes = [coords[i] + coords[i + 1] for i in range(0, len(coords), 2) if labels[i] == 2]
            for b in boxes:
                if not (0 <= b[0] and 0 <= b[1] and b[2] <= width and b[3] <= height):
                    raise NodeError(f"mask.track_points: the box {','.join(f'{v:g}' for v in b)} reaches outside "
                                    f"{where} ({width}x{height}): its corners are x0,y0,x1,y1 in the clip's own pixels")
            for (x, y), label in zip(coords, labels):
                if label < 2 and not (0 <= x < width and 0 <= y < height):
                    raise NodeError(f"mask.track_points: the point {x:g},{y:g} is outside {where} ({width}x{height}): "
                                    f"points are x,y in the clip's own pixels (x 0 to {width - 1}, y 0 to "
                                    f"{height - 1}); were they clicked on a picture of another size?")


class PointTracker(Pass):
    """SAM 2 (or SAM 3's tracker) over a clip from points and boxes on some of its frames, each object its own, carried through the clip
    by the model's memory as transformers' own flow does: each prompted frame run first, from its prompts alone (in
    frame order, the objects prompted there given new inputs), then every frame from the first, tracked with the
    prompted frames in memory (before and after it) as Sam2VideoModel.propagate_in_video_iterator(start_frame_idx=0)
    does; masks as Sam2VideoProcessor.post_process_masks makes them (the logits sized to the frame, above 0). `obj`:
    the object whose mask is given, 0 for all of them joined."""

    def __init__(self, segmenter: Segmenter, video, found: dict, obj: int = 0, ctx=None):
        super().__init__(segmenter, video, ctx)
        self.found, self.obj = found, obj

    def _start(self) -> None:
        import torch
        from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession
        from transformers.models.sam3_tracker_video.modeling_sam3_tracker_video import \
            Sam3TrackerVideoInferenceSession
        session = Sam3TrackerVideoInferenceSession if type(self.seg.model).__name__.startswith("Sam3") else \
            Sam2VideoInferenceSession
        s = session(video_height=self.video.height, video_width=self.video.width, inference_device=self.seg.device,
                    dtype=self.seg.model.dtype)
        # The points in the model's square picture, as Sam2VideoProcessor scales them.
        sx, sy = self.seg.size / self.video.width, self.seg.size / self.video.height
        for f, objects in sorted(self.found.items()):
            for k, (coords, labels) in objects.items():
                s.add_point_inputs(s.obj_id_to_idx(k), f, {
                    "point_coords": torch.tensor([[[[x * sx, y * sy] for x, y in coords]]], dtype=torch.float32),
                    "point_labels": torch.tensor([[labels]], dtype=torch.int32)})
            s.obj_with_new_inputs = list(objects)
            s.add_new_frame(self.seg.pixels(self.video.frames(f, f + 1)), f)
            with torch.inference_mode():
                self.seg.model(inference_session=s, frame_idx=f)
            s.processed_frames.pop(f, None)
        self.session, self.pos, self.pending, self.done = s, 0, [], {}

    def _step(self, idx: int, frame: np.ndarray) -> None:
        import torch
        import torch.nn.functional as F
        s = self.session
        s.add_new_frame(self.seg.pixels(frame[None]), idx)
        with torch.inference_mode():
            out = self.seg.model(inference_session=s, frame_idx=idx)
        s.processed_frames.pop(idx - 1, None)
        logits = out.pred_masks if not self.obj else out.pred_masks[out.object_ids.index(self.obj)][None]
        masks = F.interpolate(logits.float(), size=(self.video.height, self.video.width), mode="bilinear",
                              align_corners=False) > 0
        self.done[idx] = masks.any(dim=0)[0].cpu().numpy()


def point_masks(video, model: str, points: str, negative: str = "", box: str = "", device: str = "cpu", ctx=None,
                obj: int = 0):
    """A clip of masks of the objects under `points` (or in `box`), tracked with SAM 2's video model (or SAM 3's
    tracker, given SAM 3's folder): all of them joined, or object `obj` (1, 2, ...) alone."""
    found = prompts(points, negative, box)
    count = len({k for objects in found.values() for k in objects})
    if obj > count:
        raise NodeError(f"mask.track_points: object {obj} does not exist: points and box name {count} "
                        f"object{'s' * (count > 1)} ('|' between objects); object 0 gives them all in one mask")
    check_prompts(found, video.width, video.height, video.length)
    return PointTracker(load_segmenter(model, device, ("sam2_video", "sam3_video")), video, found, obj, ctx).clip()
