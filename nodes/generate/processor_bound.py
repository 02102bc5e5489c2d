"""A model folder's picture preparation (preprocessor_config.json, processor_config.json) is held to sizes a model
takes before a picture is resized to them.

The file says what size every picture is resized to before the model sees it, and nothing ties it to the weights:
a Depth Anything folder received with `size: {height: 60000, width: 60000}` resized each 64 x 48 frame to 43 GB of
floats, and the load then reported "out of memory: give it smaller frames", the one thing not at fault. Every image
processor transformers reads from a folder (depth.estimate's, a pipeline's feature_extractor/) and the SAM files
mask.segment reads itself go through `check`."""
from __future__ import annotations

import functools
import math
import re
import threading
from pathlib import Path
from typing import Any

from graph_engine import NodeError

# No image model's input side is larger (Depth Pro 1536, SAM 1024, SigLIP 512); Kinograph's own sizes stop at 8192.
MAX_SIDE = 8192
_SIDES = ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width")
# Qwen2-VL's processors (the ones with a merge_size) give their sizes as pixel counts (min_pixels, max_pixels; size's
# edges likewise).
_PIXEL_KEYS = ("min_pixels", "max_pixels")
_SIZE_WORDS = re.compile(r"size|edge|height|width|divisor|multiple|pixels")
_installing = threading.Lock()


def _refuse(file, what: str) -> None:
    raise NodeError(f"{file} {what}. The file is damaged or made to fill memory: copy it again from the model's "
                    "Hugging Face page")


def check(data: Any, file) -> None:
    """Refuse a processor configuration (`data`, read from `file`) whose picture sizes no model takes, or whose
    sizes, mean or std are not numbers."""
    if not isinstance(data, dict):
        _refuse(file, f"holds {type(data).__name__}, not the settings of a picture preparation")
    data = data.get("image_processor", data) if isinstance(data.get("image_processor"), dict) else data
    pixels = any(k in data for k in _PIXEL_KEYS) or "merge_size" in data
    top, unit = (MAX_SIDE * MAX_SIDE, "pixels") if pixels else (MAX_SIDE, "pixels a side")
    sizes = {k: data[k] for k in _PIXEL_KEYS if k in data}
    for key in ("size", "crop_size"):
        value = data.get(key)
        if isinstance(value, dict):
            sizes.update({f"{key}.{k}": v for k, v in value.items() if k in _SIDES})
        elif value is not None:
            sizes[key] = value
    for key, value in sizes.items():
        if isinstance(value, (list, tuple)) and len(value) <= 2:
            values = value
        else:
            values = [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 1:
                _refuse(file, f"gives {key} as {str(value)[:40]!r}, not a size in pixels")
            if v > top:
                _refuse(file, f"asks for pictures of {int(v):,} {unit} ({key}); models take at most {top:,}")
    # the other sizes a processor resizes or pads to, under whatever name its class gives them (DPT pads to a
    # multiple of size_divisor: 60000 padded each frame to 43 GB; SAM's pad_size, Idefics' max_image_size ...)
    for key, value in data.items():
        if key in sizes or key.split(".")[0] in ("size", "crop_size") or not _SIZE_WORDS.search(key):
            continue
        inner = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        for v in inner:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not v <= top:
                _refuse(file, f"asks for pictures of {v:,} {unit} ({key}); models take at most {top:,}")
    for key in ("image_mean", "image_std"):
        value = data.get(key)
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if len(values) not in (1, 3) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    and math.isfinite(v) for v in values) \
                or (key == "image_std" and not all(values)):
            _refuse(file, f"gives {key} as {str(value)[:60]!r}, not {'non-zero ' if key == 'image_std' else ''}"
                          "one number or three (red, green, blue)")


def _checked(func):
    @functools.wraps(func)
    def get_image_processor_dict(cls, path, *args, **kwargs):
        found = func(cls, path, *args, **kwargs)
        folder = Path(str(path)) / (kwargs.get("subfolder") or "")
        name = kwargs.get("image_processor_filename") or "preprocessor_config.json"
        check(found[0], folder / name if folder.is_dir() else folder)
        return found
    get_image_processor_dict.checks_sizes = True
    return get_image_processor_dict


def install() -> None:
    """Check every image processor transformers reads from a folder (once per process)."""
    from transformers.image_processing_base import ImageProcessingMixin
    with _installing:
        if getattr(ImageProcessingMixin.get_image_processor_dict, "checks_sizes", False):
            return
        ImageProcessingMixin.get_image_processor_dict = classmethod(
            _checked(ImageProcessingMixin.__dict__["get_image_processor_dict"].__func__))


def checked_side(value: Any, file) -> int:
    """A picture side read from `file` (an int, or [height, width] of a square), within what models take."""
    side = value[0] if isinstance(value, (list, tuple)) and value else value
    check({"size": {"height": side}}, file)
    return int(side)


