"""Import spandrel (model-architecture detection for super-resolution weights) safely.

spandrel imports torchvision when it is imported, but only two of its architectures use it
(LaMa: `transforms.functional.InterpolationMode` and `rotate`; RestoreFormer: `normalize`),
and torchvision cannot be installed here: PyPI's build is the CUDA one and breaks beside
the CPU torch wheel. So when torchvision is missing or broken, a small stand-in module
provides those three names; the upscalers Kinograph loads (ESRGAN, SwinIR, ...) never
call them, and LaMa/RestoreFormer raise a clear error if they ever do."""
from __future__ import annotations

import enum
import importlib
import sys
import types

_MESSAGE = ("this model architecture needs torchvision, which is not installed; install the torchvision build "
            "that matches your torch to use it")


def _unavailable(*_args, **_kwargs):
    raise RuntimeError(_MESSAGE)


class InterpolationMode(enum.Enum):
    """Same member names and values as torchvision's, so enum lookups at import time work."""
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _stand_in() -> dict:
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = InterpolationMode
    functional.rotate = _unavailable
    functional.normalize = _unavailable
    transforms.functional = functional
    root.transforms = transforms
    return {"torchvision": root, "torchvision.transforms": transforms, "torchvision.transforms.functional": functional}


def _drop_torchvision() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def spandrel():
    """The spandrel module, importable with or without a working torchvision."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    try:
        importlib.import_module("torchvision.transforms.functional")
    except Exception:  # missing, or a build that fails against this torch
        _drop_torchvision()
        sys.modules.update(_stand_in())
        try:
            return importlib.import_module("spandrel")
        finally:
            # spandrel keeps the names it imported; nobody else may mistake the stand-in for
            # torchvision (libraries probe for it to decide which code paths to use).
            _drop_torchvision()
    return importlib.import_module("spandrel")
