"""A sampling run that stopped is taken up where it stopped: every model call's output is kept on disk
as it comes (the engine's work-in-progress folder for the node), and the next run of the same node with
the same inputs replays the kept outputs instead of calling the model again.

Replaying outputs rather than restoring a sampler's state keeps this out of the samplers: every sampler,
wrapper (context windows, FreeInit) and seeded noise draw runs exactly as in one uninterrupted run, only
the network calls that were already made are skipped, so the result is the same latent. The cost is one
latent on disk per step while the node runs; the folder goes once its result is cached."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch


def kept_calls(folder: Path) -> int:
    """How many calls in a row, from the first, have a kept output."""
    n = 0
    while (folder / f"{n:05d}.pt").is_file():
        n += 1
    return n


def replaying(model_fn: Callable, folder: Optional[Path], log: Callable[[str], None]) -> Callable:
    """`model_fn` that returns the kept output of each call already made in `folder` and keeps each new one."""
    if folder is None:
        return model_fn
    state = {"kept": kept_calls(folder), "calls": 0, "keeping": True}
    if state["kept"]:
        log(f"taking up a run that stopped: its first {state['kept']} model steps are replayed from {folder} "
            f"instead of computed again")

    def fn(x, sigma, frames=None):
        i = state["calls"]
        state["calls"] += 1
        path = folder / f"{i:05d}.pt"
        if i < state["kept"]:
            got = _load(path, x, sigma)
            if got is not None:
                return got
            # Not this run's calls after all (a damaged file, another version's schedule): compute from here.
            _drop_from(folder, i)
            state["kept"] = i
        out = model_fn(x, sigma) if frames is None else model_fn(x, sigma, frames=frames)
        # Only an unbroken run of calls from the first can be replayed: after one that could not be kept,
        # keeping more would only take space.
        if state["keeping"]:
            state["keeping"] = _save(path, out, sigma)
        return out

    return fn


def _load(path: Path, x: torch.Tensor, sigma) -> Optional[torch.Tensor]:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged file is computed again
        return None
    out = saved.get("out") if isinstance(saved, dict) else None
    if out is None or tuple(out.shape) != tuple(x.shape) or float(saved.get("sigma", -1)) != float(sigma):
        return None
    return out.to(x.device, x.dtype)


def _save(path: Path, out: torch.Tensor, sigma) -> bool:
    """Keep one call's output; False where it could not be kept (graph_engine.partial.keep_work)."""
    from graph_engine.partial import keep_work
    return keep_work(path, lambda f: torch.save({"out": out.detach().cpu(), "sigma": float(sigma)}, f),
                     out.numel() * out.element_size())


def _drop_from(folder: Path, first: int) -> None:
    i = first
    while (folder / f"{i:05d}.pt").is_file():
        (folder / f"{i:05d}.pt").unlink(missing_ok=True)
        i += 1
