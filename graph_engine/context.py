"""What a running node sees of the engine: progress, cancellation, device, models, reports."""
from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .errors import Cancelled


class CancelToken:
    """Shared by a run and everything it starts; `cancel()` may be called from any thread."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


# The cancel of the run whose node is executing (set by the executor around each node): code with no Context at hand
# (the weights reader every loader shares) checks it through check_cancelled(), so a cancel stops a load of a
# multi-GB file at the next tensor rather than after the whole file.
_RUN_CANCEL: contextvars.ContextVar = contextvars.ContextVar("kinograph_run_cancel", default=None)


@contextmanager
def cancelled_by(token: CancelToken):
    """Within the block, check_cancelled() raises Cancelled once `token` is cancelled."""
    reset = _RUN_CANCEL.set(token)
    try:
        yield
    finally:
        _RUN_CANCEL.reset(reset)


def check_cancelled() -> None:
    """Raise Cancelled where the running node's run was cancelled; nothing outside a run."""
    token = _RUN_CANCEL.get()
    if token is not None:
        token.check()


class Context:
    def __init__(self, node_id: str, *, device: str = "cpu", cancel: Optional[CancelToken] = None,
                 emit: Optional[Callable[[Dict[str, Any]], None]] = None, scratch_dir: Optional[Path] = None,
                 workflow_yaml: str = "", models: Any = None, workflow_dir: Optional[Path] = None,
                 previews: bool = False, partial: Optional[Callable[[], Optional[Path]]] = None):
        self.node_id = node_id
        self.wants_previews = previews      # the host shows pictures of work in progress
        self._device_pref = device
        self.cancel = cancel or CancelToken()
        self._emit = emit
        self.scratch_dir = scratch_dir
        self.workflow_yaml = workflow_yaml
        self.workflow_dir = workflow_dir
        self._models = models
        self.results: Dict[str, Any] = {}
        self.written: list = []
        self._partial = partial
        # Set by a node whose result ends its input's alpha on purpose (laid over a background, removed when
        # asked): the executor then does not log the alpha as lost there (Clip.matte).
        self.alpha_handled = False
        # The node's optional outputs (NodeSpec.optional_outputs) nothing in this run reads: it may return None for
        # them rather than make them.
        self.unread: frozenset = frozenset()

    @property
    def device(self) -> str:
        from .devices import resolve_device
        return resolve_device(self._device_pref)

    @property
    def models(self) -> Any:
        """The model manager the host application passed in, or None; the nodes that load
        weights fall back to their package's process-wide manager (the engine knows none)."""
        return self._models

    def check(self) -> None:
        self.cancel.check()

    def progress(self, done: float, total: float, message: str = "") -> None:
        self.cancel.check()
        if self._emit:
            self._emit({"event": "node_progress", "node": self.node_id, "done": done, "total": total,
                        "message": message})

    def preview(self, image, step: Optional[int] = None, total: Optional[int] = None) -> None:
        """A picture of the work so far (uint8 [H, W, 3]), as a `node_preview` event; nodes compute
        one only when `wants_previews`, so hosts that show none (the CLI) pay nothing."""
        if self._emit and self.wants_previews:
            self._emit({"event": "node_preview", "node": self.node_id, "image": image, "step": step,
                        "total": total})

    def log(self, message: str) -> None:
        if self._emit:
            self._emit({"event": "log", "node": self.node_id, "message": message})

    def partial_folder(self) -> Optional[Path]:
        """A folder for this node's work in progress (graph_engine.partial), which a run that stops keeps for
        the next run of the node with the same inputs; None where there is none (no disk cache, or a run told
        not to reuse cached work)."""
        return self._partial() if self._partial is not None else None

    def report(self, **values: Any) -> None:
        """Add JSON-serialisable results (paths written, numbers, per-frame series)."""
        self.results.update(values)

    def wrote(self, path: str) -> None:
        """Record a file this node produced, so a re-run knows to redo it if it disappears."""
        self.written.append(str(path))

    def torch_device(self):
        import torch
        return torch.device(self.device)
