"""Running workflows from the editor: a queue of jobs executed one at a time on a worker thread.

Each job runs a snapshot of the graph taken when it was queued, so editing (or queueing the
same graph again with other seeds) while a render runs is safe. Engine events cross into the
GUI thread as queued signals; progress is throttled to a few updates per second per node.
One Executor serves every job, so its caches make re-runs cheap and `why` can explain them."""
from __future__ import annotations

import itertools
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from PySide6.QtCore import QObject, QThread, Signal, Slot

from graph_engine.context import CancelToken
from graph_engine.errors import KinographError, WorkflowError
from graph_engine.executor import Executor, RunResult
from graph_engine.workflow import Workflow, to_yaml

from .titles import named_in

PROGRESS_INTERVAL = 0.1     # seconds between progress signals of one node
MAX_HISTORY = 200


@dataclass
class NodeStatus:
    # queued, running, streaming (a clip returned, its frames made as later nodes read them), cached, done, failed,
    # skipped, cancelled (edited: the editor's)
    state: str
    progress: Optional[float] = None
    seconds: Optional[float] = None
    message: str = ""
    steps: Optional[tuple] = None           # (done, total) while running
    eta: Optional[float] = None             # seconds left, from the pace so far
    estimate: Optional[float] = None        # seconds the run's estimate told, until a pace is measured

    def badge(self) -> str:
        if self.state == "running":
            if self.progress is None:
                head = "running"
            else:
                head = f"{self.steps[0]:g}/{self.steps[1]:g}" if self.steps else f"{round(100 * self.progress)}%"
            if self.eta is not None:
                return f"{head} · {_duration(self.eta)}"
            if self.estimate is not None:       # what is left of it, as the measured pace's time is
                return f"{head} · est. {_duration(self.estimate * (1 - (self.progress or 0)))}"
            return head
        if self.state == "done" and self.seconds is not None:
            return _duration(self.seconds)
        return self.state


def _duration(s: float) -> str:
    # hours as hours: an estimated Wan run's badge read '162.0 min'
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s" if s < 100 else f"{s / 60:.1f} min" if s < 6000 else \
        f"{s / 3600:.1f} h"


@dataclass
class Job:
    id: int
    kind: str                       # "run" (writes outputs) or "view" (computes one node for the viewer)
    label: str
    workflow: Workflow
    targets: Optional[List[str]] = None
    view: Optional[tuple] = None    # (node, port, slot) for view jobs
    cancel: CancelToken = field(default_factory=CancelToken)
    state: str = "queued"
    result: Optional[RunResult] = None
    error: str = ""
    queued_at: float = field(default_factory=time.time)
    finished_at: Optional[float] = None
    yaml: str = ""
    owner: Any = None               # the document whose canvas shows this job's badges
    failed: Dict[str, str] = field(default_factory=dict)    # node -> message, of this job alone
    estimates: Dict[str, float] = field(default_factory=dict)   # node -> seconds told before the run
    seeds_as_read: bool = False     # run on an imported file's own seeds (Document.seeds_as_read)

    @property
    def outputs(self) -> List[str]:
        """Files the run wrote (what the history offers to reopen)."""
        if self.result is None:
            return []
        return [str(r["path"]) for r in self.result.results.values() if isinstance(r, dict) and r.get("path")]


class RunWorker(QObject):
    event = Signal(int, object)
    done = Signal(int, object, str)        # job id, RunResult or None, error text

    def __init__(self, executor: Executor):
        super().__init__()
        self.executor = executor

    @Slot(object)
    def run(self, job: Job) -> None:
        last: Dict[str, float] = {}

        def on_event(ev: Dict[str, Any]) -> None:
            if ev.get("event") == "node_progress":
                now = time.perf_counter()
                node = ev.get("node")
                if now - last.get(node, 0.0) < PROGRESS_INTERVAL and ev.get("done") != ev.get("total"):
                    return
                last[node] = now
            self.event.emit(job.id, ev)

        if job.kind == "run":
            self._estimate(job)
        try:
            wf = job.workflow
            if job.kind == "run":
                # An output's {NODE.PARAM} from this run's values, as `kinograph run` and Session.run fill it: the
                # editor wrote a file named 'shot_{pat.frames}.mp4', each run replacing the one before.
                from graph_engine.placeholders import filled
                wf = filled(wf, self.executor.registry)
            res = self.executor.run(wf, targets=job.targets, on_event=on_event, cancel=job.cancel)
            self.done.emit(job.id, res, "")
        except WorkflowError as e:
            for p in e.problems:
                if p.node:
                    self.event.emit(job.id, {"event": "node_failed", "node": p.node, "message": p.message})
            self.done.emit(job.id, None, str(e))
        except Exception as e:    # an engine bug must not take the editor down; the log shows it
            self.done.emit(job.id, None, f"{type(e).__name__}: {e}\n{traceback.format_exc()}")

    def _estimate(self, job: Job) -> None:
        """The samplers' work and time, told before the run starts, from this thread: the device's matrix speed,
        measured once a session (1.2 s on a loaded CPU), froze the editor when Run was pressed on the GUI thread,
        and measured beside the run it would have read the run's own load."""
        from nodes.generate.estimate import estimate
        try:
            est = estimate(job.workflow, self.executor.registry, self.executor.device)
        except KinographError:      # the run names what is wrong with the workflow
            return
        except Exception as e:      # advice only: escaping run(), it left the job 'running' and the queue stuck
            self.event.emit(job.id, {"event": "log", "message": f"no estimate: {type(e).__name__}: {e}"})
            return
        if not job.cancel.cancelled:        # cancelled while the probe ran: no warning about a run not made
            self.event.emit(job.id, {"event": "estimate", "estimate": est})


class RunController(QObject):
    statusChanged = Signal(str, object)      # node id, NodeStatus or None (cleared)
    previewed = Signal(str, object, object)  # node id, uint8 [H,W,3] of work in progress, NodeStatus
    logged = Signal(str, str, str)           # level (info/warn/error), text, node id or ""
    jobsChanged = Signal()
    jobFinished = Signal(object)             # Job
    warned = Signal(str)                     # a run's estimate says it is long: what to change
    _submit = Signal(object)

    def __init__(self, registry, parent=None, executor: Optional[Executor] = None):
        super().__init__(parent)
        # Frames of costly lazy nodes are kept between runs: changing a parameter after a temporal node
        # (denoise -> grade) re-ran the whole denoise on every tweak, though the editor said "cached".
        self.executor = executor or Executor(registry, keep_frames=True)
        self.executor.previews = True        # samplers send a picture of each step
        self.jobs: List[Job] = []            # queued, running and finished, oldest first
        self.status: Dict[str, NodeStatus] = {}
        # The document on the canvas: a job of another one (File > New while it renders) goes on,
        # but its badges would land on the new workflow's nodes of the same ids.
        self.shown: Any = None
        # A node of the shown document as its canvas titles it ('Matte grade'), for the log and the queue: they said
        # 'mismatch_3 failed', an id the canvas shows nowhere. The window sets it; an id says itself meanwhile.
        self.named: Callable[[str], str] = str
        self._wall: Dict[str, Optional[float]] = {}     # node -> seconds its call took (None: lazy)
        self._started: Dict[str, float] = {}
        self._ids = itertools.count(1)
        self._thread = QThread()
        self._thread.setObjectName("kinograph-runner")
        self._worker = RunWorker(self.executor)
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run)
        self._worker.event.connect(self._on_event)
        self._worker.done.connect(self._on_done)
        self._thread.start()

    # -- queue ----------------------------------------------------------------------------------
    @property
    def current(self) -> Optional[Job]:
        return next((j for j in self.jobs if j.state == "running"), None)

    @property
    def pending(self) -> List[Job]:
        return [j for j in self.jobs if j.state == "queued"]

    @property
    def history(self) -> List[Job]:
        return [j for j in self.jobs if j.kind == "run" and j.finished_at is not None]

    def submit(self, doc, targets: Optional[List[str]] = None, kind: str = "run", label: str = "",
               view: Optional[tuple] = None, allow_outside: Optional[bool] = None, owner: Any = None) -> Job:
        """Queue a snapshot of the document's graph (Document.run_graph); it starts when the jobs before it
        are done."""
        snap = doc.run_graph(targets)
        job = Job(next(self._ids), kind, label or (f"{doc.title}" + (f" → {', '.join(map(self.named, targets))}" if targets else "")),
                  doc.workflow_of(snap, allow_outside), list(targets) if targets else None, view)
        job.owner = doc if owner is None else owner
        if kind == "run":
            job.yaml = to_yaml(snap, doc.registry)
        self.jobs.append(job)
        self.jobsChanged.emit()
        self._start_next()
        return job

    def _start_next(self) -> None:
        if self.current is not None:
            return
        nxt = next((j for j in self.jobs if j.state == "queued"), None)
        if nxt is None:
            return
        nxt.state = "running"
        self.logged.emit("info", f"▶ {nxt.label}", "")
        self.jobsChanged.emit()
        self._submit.emit(nxt)

    def cancel(self, job: Optional[Job] = None, clear_queue: bool = False) -> None:
        targets = [job] if job is not None else ([self.current] if self.current else [])
        if clear_queue:
            targets += self.pending
        for j in targets:
            if j is None:
                continue
            j.cancel.cancel()
            if j.state == "queued":
                j.state, j.finished_at = "cancelled", time.time()
                if j.kind == "view":
                    # It never starts, so _on_done never tells the viewer, which said it waited for the job before
                    # it (Cancel All during a render) with nothing left to wait for.
                    self.jobFinished.emit(j)
                    self.jobs.remove(j)
        self.jobsChanged.emit()

    def why(self, node_id: str) -> str:
        return self.executor.why(node_id)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Process events until every job is finished (for scripts, screenshots and tests)."""
        from PySide6.QtCore import QCoreApplication
        end = time.monotonic() + timeout
        while any(j.state in ("queued", "running") for j in self.jobs):
            if time.monotonic() > end:
                return False
            QCoreApplication.processEvents()
            time.sleep(0.005)
        QCoreApplication.processEvents()
        return True

    def shutdown(self) -> None:
        self.cancel(clear_queue=True)
        self._thread.quit()
        self._thread.wait(10000)
        self.executor.close()

    # -- events from the worker -----------------------------------------------------------------
    def _job(self, job_id: int) -> Optional[Job]:
        return next((j for j in self.jobs if j.id == job_id), None)

    def _set(self, node: str, st: Optional[NodeStatus]) -> None:
        if st is None:
            self.status.pop(node, None)
        else:
            self.status[node] = st
        self.statusChanged.emit(node, st)

    @staticmethod
    def _estimate(job: Optional[Job], node: str) -> Optional[float]:
        return job.estimates.get(node) if job is not None else None

    def _shows(self, job: Optional[Job]) -> bool:
        return self.shown is None or job is None or job.owner is self.shown

    def _on_event(self, job_id: int, ev: Dict[str, Any]) -> None:
        kind, node = ev.get("event"), ev.get("node")
        job = self._job(job_id)
        if kind == "node_failed" and job is not None:
            job.failed.setdefault(node, ev.get("message", ""))
        if kind == "estimate":
            self._estimated(job, ev["estimate"])
            return
        if not self._shows(job):
            if kind in ("log", "node_failed"):
                self.logged.emit("error" if kind == "node_failed" else "info",
                                 f"{self._named_in(job, node)}: {ev.get('message', '')}" if node else ev.get("message", ""), "")
            return
        if kind == "run_started":
            for n in ev.get("nodes", []):
                self._set(n, NodeStatus("queued"))
        elif kind == "node_started":
            self._set(node, NodeStatus("running", 0.0, estimate=self._estimate(job, node)))
            self._wall.pop(node, None)
            self._started[node] = time.perf_counter()
        elif kind == "node_progress":
            if node in self.status and self.status[node].state != "running":
                return          # a late report from a node already finished: its badge stays final
            total, done = ev.get("total") or 0, ev.get("done") or 0
            frac = done / total if total else None
            spent = time.perf_counter() - self._started.get(node, time.perf_counter())
            eta = spent / frac * (1 - frac) if frac and spent > 0.5 else None
            self._set(node, NodeStatus("running", frac, message=ev.get("message") or "",
                                       steps=(done, total) if total and total <= 10000 else None, eta=eta,
                                       estimate=self._estimate(job, node)))
        elif kind == "node_finished":
            cached = ev.get("cached")
            lazy = ev.get("lazy") and not cached
            # A lazy clip's node returns at once; its frames are computed when a later node reads
            # them, and that time arrives with node_time: no "done in 1 ms" in the meantime, nor a green
            # 'done' while a decode feeding a Save still makes its frames (minutes): 'streaming' till then.
            st = NodeStatus("cached" if cached else "streaming" if lazy else "done",
                            seconds=None if lazy else ev.get("seconds"),
                            message="bypassed" if ev.get("bypassed") else
                            "frames are computed as later nodes read them" if lazy else "")
            self._set(node, st)
            self._wall[node] = None if lazy else ev.get("seconds")
            if not cached and not lazy:
                self.logged.emit("info", f"{self.named(node)} done in {st.badge()}", node)
        elif kind == "node_time":
            old = self.status.get(node)
            if old is not None and old.state == "cached" and ev.get("frames") and job is not None \
                    and job.kind == "run" and not job.cancel.cancelled:
                # A clip from the cache keeps how to make its frames, not the frames: 'cached' while the Save's
                # minutes were mostly computing them again.
                st = NodeStatus("done", seconds=ev.get("seconds") or 0.0, message="its clip came from the cache; "
                                "its frames were computed again as later nodes read them")
                self._set(node, st)
                self.logged.emit("info", f"{self.named(node)}: its clip came from the cache, its frames were computed again in "
                                 f"{st.badge()} (as later nodes read them)", node)
                return
            if old is None or old.state not in ("done", "streaming"):
                return
            own = NodeStatus("done", seconds=ev.get("seconds") or 0.0)
            wall = self._wall.get(node, 0.0)
            if wall is None and job is not None and job.kind == "view":
                return          # the viewer computes the frames it shows after this job: no time to tell yet
            if wall is None and not ev.get("frames", True):
                return          # no later node read its frames: the run's end says what became of them
            if wall is None and job is not None and job.cancel.cancelled:
                # Cancelled at frame 18 of 2,000, it said 'computed its frames in 3.0 s', and 'done' until the
                # run's end made it 'cancelled': its clip was not made.
                self.logged.emit("info", f"{self.named(node)} computed frames for {own.badge()} before the run was cancelled", node)
            elif wall is None:
                self._set(node, own)
                self.logged.emit("info", f"{self.named(node)} computed its frames in {own.badge()} (as later nodes read them)", node)
            elif wall - own.seconds > max(0.05, 0.2 * wall):
                self._set(node, own)
                self.logged.emit("info", f"{self.named(node)}: {own.badge()} of its own work; the rest of its "
                                 f"{NodeStatus('done', seconds=wall).badge()} was computing upstream frames", node)
        elif kind == "node_failed":
            self._set(node, NodeStatus("failed", message=ev.get("message", "")))
            if ev.get("frames_of") in self.status:
                # The lazy node whose frames failed as this one read them stayed a green 'done' beside the red
                # reader: the canvas pointed at the wrong node, as 'save failed: out of memory' once did.
                self._set(ev["frames_of"], NodeStatus("failed", message=ev.get("message", "")))
            self.logged.emit("error", f"{self.named(node)} failed: {ev.get('message', '')}", node)
        elif kind == "node_skipped":
            # the failed node as the canvas titles it, not by an id shown nowhere ('not run: load_video failed')
            self._set(node, NodeStatus("skipped", message=f"not run: {self.named(ev.get('because'))} failed"))
        elif kind == "node_preview":
            self.previewed.emit(node, ev.get("image"), self.status.get(node))
        elif kind == "log":
            if ev.get("unread"):        # a switch did not pick what it feeds: the badge says so, not 'queued'
                self._set(node, NodeStatus("skipped", message=ev.get("message", "")))
            self.logged.emit("info", f"{self.named(node)}: {ev.get('message', '')}" if node else ev.get("message", ""), node or "")

    def _estimated(self, job: Optional[Job], est) -> None:
        """The samplers' work and, where the device's speed is known, about how long they take, in the log as
        the run starts; a long run's warning there and as `warned` (the run goes on: Esc cancels it). The
        sampler's badge shows the time told until its first steps measure a pace."""
        if job is not None:
            job.estimates.update(est.each)
        counted = [*est.samplers, *est.decodes, *est.encodes]       # their lines first, in this order
        for work, line in zip(counted, est.lines):
            if line.startswith(f"{work.node}: "):       # named as the canvas titles it, as the Log names nodes
                line = f"{self._named_in(job, work.node)}{line[len(work.node):]}"
            self.logged.emit("info", f"estimate: {line}", work.node)
        for line in est.lines[len(counted):]:
            self.logged.emit("info", f"estimate: {line}", "")
        if est.warning:
            warning = est.warning
            for work in est.samplers:   # its advice names the longest sampler: 'fewer steps (k_sampler_3 runs 30: …)'
                warning = warning.replace(f"({work.node} runs ", f"({self._named_in(job, work.node)} runs ")
            self.logged.emit("warn", f"warning: {warning}", "")
            self.warned.emit(warning)

    def _follow_takes(self, job: Job) -> None:
        """A run that kept the render it replaced as an earlier take (graph_engine.takes): the run that made
        that render now finds it there in the history, not at the name that holds the new one."""
        res = job.result
        for nid, r in (res.results.items() if res is not None else ()):
            # A writer served from the cache wrote nothing this time: its report is the earlier run's.
            if not isinstance(r, dict) or not r.get("earlier_take") or nid not in res.executed:
                continue
            for old in reversed([j for j in self.history if j is not job and j.result is not None]):
                mine = next((n for n, o in old.result.results.items() if isinstance(o, dict)
                             and str(o.get("path")) == str(r["path"])), None)
                if mine is not None:
                    # A new dict: the old one may be the memory cache's own.
                    old.result.results[mine] = {**old.result.results[mine], "path": str(r["earlier_take"])}
                    break

    def _named_in(self, job: Optional[Job], node: str) -> str:
        """`node` as its job's workflow titles it: the shown one's canvas, else the job's own graph. A job left running
        by File > New named its nodes by id in the Log, or by the titles the new workflow gave nodes of the same ids."""
        if self._shows(job):
            return self.named(node)
        g = job.workflow.graph
        return named_in(g, self.executor.registry, node) if node in g.nodes else node

    def failed_nodes(self, failed, job: Optional[Job] = None) -> str:
        """The nodes of `job` that failed, as the canvas titles them ('1 node(s) failed' named none)."""
        names = [self._named_in(job, n) for n in failed]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return f"{', '.join(names[:3])}{more}"

    def _on_done(self, job_id: int, res: Optional[RunResult], error: str) -> None:
        job = self._job(job_id)
        if job is None:
            return
        job.result, job.error, job.finished_at = res, error, time.time()
        self._follow_takes(job)
        # No badge may say "running" or "queued" once its job is over.
        left = "cancelled" if res is not None and res.cancelled else "skipped"
        for n, st in list(self.status.items()) if self._shows(job) else ():
            # A lazy node of a cancelled run never finished its frames either: one still 'streaming' (any node
            # once lazy, the clip node badged failed for its frames was made 'cancelled' and the culprit lost).
            if st.state in ("queued", "running") or (left == "cancelled" and st.state == "streaming"):
                self._set(n, NodeStatus(left, message="" if left == "cancelled" else "the run ended before it"))
            elif st.state == "streaming" and (res is None or not res.ok) and job.kind == "run":
                # A Save failing before it read a frame: its clip nodes said 'computed its frames in 0 ms'.
                self._set(n, NodeStatus("skipped", message="no frame of it was computed: the run failed before "
                                                           "a later node read them"))
            elif st.state == "streaming":        # no later node read its frames in this run (a view reads them next)
                self._set(n, NodeStatus("done", message=st.message))
        if res is not None and res.cancelled:
            job.state = "cancelled"
            self.logged.emit("warn", f"■ {job.label}: cancelled", "")
        elif res is not None and res.ok:
            job.state = "done"
            # Where the result is, as `kinograph run` prints it: the first thing a newcomer looks for.
            for path in job.outputs:
                self.logged.emit("info", f"wrote {path}", "")
            self.logged.emit("info", f"✔ {job.label}: finished in {res.seconds:.2f} s", "")
        else:
            job.state = "failed"
            lines = error.splitlines()
            self.logged.emit("error", f"✘ {job.label}: " + (lines[0] if lines else f"{self.failed_nodes(res.failed, job)} failed"), "")
            if "Traceback" in error:
                self.logged.emit("error", "\n".join(lines[1:]), "")
            else:
                for line in lines[1:]:
                    self.logged.emit("error", line, "")
        self.jobFinished.emit(job)
        # Node outputs (clips, arrays) are large: the listeners took what they show; keep the rest light.
        if job.result is not None:
            job.result.outputs = {}
        if job.kind == "view":
            self.jobs.remove(job)
        finished = [j for j in self.jobs if j.finished_at is not None]
        for old in finished[:-MAX_HISTORY]:
            self.jobs.remove(old)
        self.jobsChanged.emit()
        self._start_next()
