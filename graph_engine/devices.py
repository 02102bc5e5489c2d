"""Device choice: CUDA, then MPS, then CPU, unless told otherwise. Torch is imported only
when a node actually asks for the device, so pure video graphs never pay for it."""
from __future__ import annotations

import contextvars
import os
import re
from contextlib import contextmanager
from functools import lru_cache

CHOICES = ("auto", "cuda", "mps", "cpu")


def check_device(pref: str) -> str:
    """`pref` lower-cased, or a KinographError naming the choices: an unknown name must not fall
    through to the CPU unnoticed (`--device gpu` on a GPU machine would render on the CPU)."""
    name = (pref or "auto").strip().lower()
    if name in CHOICES or re.fullmatch(r"cuda:\d+", name):
        return name
    import difflib
    from .errors import KinographError
    # "gpu" reads like "cpu" to difflib, but whoever typed it wants the GPU.
    close = (["cuda"] if name.startswith(("gpu", "nvidia", "cuda")) else ["mps"] if name in ("metal", "apple")
             else difflib.get_close_matches(name, CHOICES, n=1, cutoff=0.5))
    hint = close[0] if close else None
    raise KinographError(f"unknown device {pref!r}{f' (did you mean {hint!r}?)' if hint else ''}: "
                         f"use auto, cpu, cuda, cuda:N or mps")


@lru_cache(maxsize=None)
def resolve_device(pref: str = "auto") -> str:
    pref = check_device(pref)
    if pref.startswith("cuda") or pref in ("mps", "auto"):
        try:
            import torch
        except ImportError:
            return "cpu"
        if pref.startswith("cuda"):
            if not torch.cuda.is_available():
                from .errors import KinographError
                raise KinographError(_no_cuda(pref, torch))
            return pref
        if pref == "mps":
            if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
                from .errors import KinographError
                raise KinographError("device 'mps' asked for, but Metal is not available here - use --device cpu")
            return "mps"
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
    return "cpu"


def _no_cuda(pref: str, torch) -> str:
    """Why `pref` (cuda, cuda:N) cannot be had here. A CUDA build of torch that sees no GPU is the machine's doing, not
    the install's: a render node whose scheduler gave this job no GPU (CUDA_VISIBLE_DEVICES), or whose driver broke
    after an update, was told to install a CUDA build of torch, which it had."""
    if torch.version.cuda is None:
        return (f"device {pref!r} asked for, but this PyTorch build sees no CUDA GPU (install a CUDA build of torch, "
                "see README) - use --device cpu")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    told = "" if visible is None else \
        f"CUDA_VISIBLE_DEVICES is set to {visible!r} (a job scheduler's GPU assignment), which names no GPU here; "
    return (f"device {pref!r} asked for, but this CUDA build of torch (CUDA {torch.version.cuda}) sees no GPU on this "
            f"machine: {told}`nvidia-smi` shows whether the driver sees one (after a driver update, not until the "
            "machine restarts) - or use --device cpu")


# The device preference of the run whose node is executing (set by the executor around each node): code that
# decides by device without a Context at hand (how a weight file loads) reads it through run_device().
_RUN_PREF: contextvars.ContextVar = contextvars.ContextVar("kinograph_run_device", default="auto")


@contextmanager
def running_on(pref: str):
    """Within the block, run_device() is what `pref` resolves to (resolved only when asked: torch is not imported
    for a graph that never asks)."""
    token = _RUN_PREF.set(pref)
    try:
        yield
    finally:
        _RUN_PREF.reset(token)


def run_device() -> str:
    """The device the running node's run computes on ('auto's choice outside a run)."""
    return resolve_device(_RUN_PREF.get())


def available_devices() -> list:
    out = ["cpu"]
    try:
        import torch
    except ImportError:
        return out
    if torch.cuda.is_available():
        out += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        out.append("mps")
    return out
