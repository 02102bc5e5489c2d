"""One workflow run as a job: what travels to a worker, how it runs there, and Ctrl-C.

Nothing here needs Ray: `kinograph batch` runs these jobs one after another in this process,
and app.distributed hands the same payloads to Ray workers, which call the same functions."""
from __future__ import annotations

import os
import signal
import time
import traceback
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from graph_engine.context import CancelToken
from graph_engine.errors import KinographError, WorkflowError

from .signal_catch import catch


class NodesFailed(KinographError):
    """Nodes of a job failed (node -> message): the job fails, naming them."""

    def __init__(self, failed: Dict[str, str]):
        self.failed = dict(failed)
        super().__init__("; ".join(f"node {n}: {m}" for n, m in failed.items()) or "the run was cancelled")


def payload_of(wf, registry, use_cache: bool = True) -> Dict[str, Any]:
    """What travels to a worker: the workflow as YAML plus its path (relative paths resolve there)."""
    from graph_engine.workflow import to_yaml
    return {"yaml": to_yaml(wf.graph, registry), "path": str(wf.path) if wf.path else None,
            "render_dir": str(wf.render_base) if wf.render_base else None, "use_cache": use_cache}


def done_before(outputs: List[str], workflow_yaml: str) -> bool:
    """Every output is a file carrying exactly this workflow, so a finished run of it left them (writes are
    atomic: a file at its name is whole). An output that cannot say so (a frames folder, which fills frame
    by frame; a JPEG or CSV, which carry no workflow) means the job has to run."""
    from graph_engine.embedded import read_embedded_workflow
    from graph_engine.workflow import MEDIA_SUFFIXES
    return bool(outputs) and all(
        os.path.isfile(o) and Path(o).suffix.lower() in MEDIA_SUFFIXES and read_embedded_workflow(Path(o)) == workflow_yaml
        for o in outputs)


def workflow_of(payload: Dict[str, Any]):
    from graph_engine.api import load_workflow
    # Where the driver resolved a render's workflow from, not found again after --set changed its paths.
    return load_workflow(payload["path"], text=payload["yaml"], render_dir=payload.get("render_dir"))


def guard(fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Call `fn`; failures come back as data ({"ok": False, "error", ...}), never as an exception,
    so a batch reports them and a worker never dies of a user's mistake. Adds "seconds"."""
    t0 = time.perf_counter()
    out: Dict[str, Any] = {"ok": False, "cancelled": False, "results": {}, "failed": {}, "error": None}
    try:
        out.update({"ok": True, **fn()})
    except NodesFailed as e:
        out.update(error=str(e), failed=e.failed)
    except WorkflowError as e:
        out["error"] = "; ".join(str(p) for p in e.problems)
    except KinographError as e:
        out["error"] = str(e)
    except Exception as e:       # an engine bug must cost one job, not the batch
        out.update(error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    out["seconds"] = round(time.perf_counter() - t0, 4)
    return out


def refused_here(payload: Dict[str, Any], where: str) -> Optional[Dict[str, Any]]:
    """A Ray worker's check before it runs a job: the job's failure (not run) when what it reads is not on this
    machine, else None. The driver validated the job against its own files, so a render node that lacks a model
    folder, a plate or a node pack the wrangler's machine has failed minutes into the run, naming a path that
    machine does have and no node. The same checks as `kinograph validate`, here, name it at once."""
    from graph_engine.registry import default_registry
    from .precheck import problems_before_run

    def check():
        problems = problems_before_run(workflow_of(payload), default_registry())
        if problems:
            # Without their lines: those are of the YAML the driver sent, not of the wrangler's file.
            raise WorkflowError([replace(p, line=0) for p in problems])
        return {}
    out = guard(check)
    if out["ok"]:
        return None
    out.update(seconds=None, refused=True,      # nothing ran: `run --ray` exits 2, as a local run refused so
               error=f"on {where}: {out['error']}. Every Ray node needs the job's model and footage files at the same "
                     "paths (or on a filesystem they all mount there), its node packs, and its output folders writable")
    return out


def run_job(session, payload: Dict[str, Any], cancel: Optional[CancelToken] = None,
            on_event: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Run one workflow given as a payload; a summary {"ok", "cancelled", "results", "failed", "error",
    "seconds"} comes back whatever happens. `on_event` gets the run's engine events (app.progress.Relay)."""
    def go():
        # Checked before: by the batch against what its earlier jobs write, or by refused_here on a Ray worker.
        res = session.run(workflow_of(payload), cancel=cancel, use_cache=payload.get("use_cache", True), keep=(),
                          on_event=on_event, precheck=False)
        error = "cancelled" if res.cancelled else "; ".join(f"{n}: {m}" for n, m in res.failed.items()) or None
        return {"ok": res.ok, "cancelled": res.cancelled, "results": res.results, "failed": res.failed,
                "error": error}
    return guard(go)


# What ends a command from outside: Ctrl-C, a job scheduler's SIGTERM, and the hang-up of the terminal or ssh
# session it was started from (SIGHUP, where there is one), which ended it where it stood: no summary in batch.log,
# no --json finished event.
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
FROM_OUTSIDE = STOP_SIGNALS[1:]
# A hang-up is one event, delivered up to twice (the interactive shell passes its SIGHUP on to its jobs, then the
# kernel hangs up the old foreground group as the shell exits): the second is no one asking to stop at once.
HANG_UP = getattr(signal, "SIGHUP", None)


@contextmanager
def cancel_on_interrupt(cancel: CancelToken, note: Callable[[str], None]) -> Iterator[CancelToken]:
    """The first Ctrl-C (SIGINT), SIGTERM as a job scheduler sends it, or SIGHUP as a closed terminal sends it,
    cancels `cancel` (the run stops cleanly at the next node or progress report, removing its unfinished outputs);
    a second Ctrl-C or SIGTERM raises KeyboardInterrupt at once, a SIGHUP never does (HANG_UP). Their default would kill the process on the spot, leaving the
    hidden .partial files behind. One the process was started ignoring (nohup: SIGHUP) stays ignored (app.signal_catch).
    The old handlers come back after."""
    def on_signal(signum, frame):
        if cancel.cancelled:
            if signum == HANG_UP:
                return
            raise KeyboardInterrupt
        cancel.cancel()
        if signum == HANG_UP:
            note("hung up (SIGHUP): cancelling...")
        elif signum == signal.SIGTERM:
            note("terminated (SIGTERM): cancelling... (a second SIGTERM stops at once)")
        else:
            note("cancelling... (Ctrl-C again to stop at once)")

    old = catch(STOP_SIGNALS, on_signal)
    try:
        yield cancel
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM (and SIGHUP) raises KeyboardInterrupt, so what stops cleanly on Ctrl-C (stopping the Ray
    workers, printing the summary) does the same for a scheduler's SIGTERM or a closed terminal. Entered after
    ray.init, it stands in for Ray's own handler, which dumped a C++ stack and exited 1. The old handlers come
    back after. A hang-up raises it once (HANG_UP), not again out of the cleanup it began."""
    hung_up = []

    def on_term(signum, frame):
        if signum == HANG_UP:
            if hung_up:
                return
            hung_up.append(signum)
        raise KeyboardInterrupt

    old = catch(FROM_OUTSIDE, on_term)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
