"""A batch's log files: one per case, and the batch's summary, for the morning after a night's renders.

The batch's stderr interleaves every job's lines, and a terminal's scrollback is gone by morning. Each case's
file says what that case was (its parameters, workflow, outputs), when each node started and how long it took,
its warnings, its error with the stack trace of a fault, where its outputs went, and the command that runs it
again. `batch.log` gets the batch's notes, the summary table and, for each failed case, its own `--only N`
command. Files are appended to, a section per run: a retried case keeps the log of the run that failed. A log
that cannot be written (a read-only folder, a full disk) is said once and the renders go on."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TextIO

from .progress import now_text


def default_log_dir(workflow: str, sweep: Optional[str]) -> Path:
    """logs/ beside the workflow, a folder per sweep (shot.seeds/) or for a batch of files (batch/)."""
    wf = Path(workflow)
    return wf.parent / "logs" / (f"{wf.stem}.{Path(sweep).stem}" if sweep else "batch")


def case_log_name(job, shared=frozenset()) -> str:
    """A sweep's case_N.log; a batch of files' job named by its workflow (shot_07.log), as the retry of a failed
    one numbers it 1: its case number in the name put the retry's log in another file than the failure's
    (case_07.shot_07.log, then case_1.shot_07.log). Stems `shared` by two of the batch's files (or named as the
    summary, batch) keep their number."""
    if not job.source:
        return f"case_{job.label}.log"
    stem = Path(job.source).stem
    return f"case_{job.label}.{stem}.log" if stem in shared else f"{stem}.log"


class BatchLogs:
    def __init__(self, folder: Path, retry: Callable[[List[int]], List[str]], note: Callable[[str], None],
                 change_first=()):
        self.folder = folder
        self.retry = retry              # case numbers -> the command that runs them again
        # Cases that would replace an earlier case's output (app.batch._refuse_shared_outputs): run again as
        # they are, they would, so their error says what to change and no command is given.
        self.change_first = set(change_first)
        self.note = note                # the batch's stderr, for a log that cannot be written
        self.ok = True
        self._open: Dict[int, TextIO] = {}
        self._tenth: Dict[tuple, int] = {}      # (case, node) -> last tenth of its work logged
        self._lazy: set = set()                 # (case, node) of lazy nodes, whose work comes after "ready"
        self._shared: set = {"batch"}           # workflow stems that name no single job's log (case_log_name)

    def plan(self, jobs) -> None:
        stems = [Path(j.source).stem for j in jobs if j.source]
        self._shared |= {s for s in stems if stems.count(s) > 1}

    def path(self, job) -> Path:
        return self.folder / case_log_name(job, self._shared)

    def _append(self, path: Path) -> Optional[TextIO]:
        if not self.ok:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A name not in UTF-8 (a Latin-1 file name from an old share reaches Python as surrogates) is written
            # escaped: it raised out of the batch
            return open(path, "a", encoding="utf-8", errors="backslashreplace")
        except OSError as e:
            self.ok = False
            self.note(f"cannot write the batch's logs in {self.folder} ({e.strerror or e}): the renders go on; "
                      "give --log-dir a folder that can be written to keep them")
            return None

    def _write(self, f: Optional[TextIO], text: str) -> None:
        if f is None or not self.ok:        # after a failed write (a full disk) nothing more is tried, or said
            return
        try:
            f.write(text + "\n")
            f.flush()
        except OSError as e:
            self.ok = False
            self.note(f"cannot write the batch's logs in {self.folder} ({e.strerror or e}): the renders go on")

    def batch_note(self, text: str) -> None:
        f = self._append(self.folder / "batch.log")
        self._write(f, f"{now_text()[11:19]} {text}")
        _shut(f)

    def began(self, job) -> None:
        self._case(job)

    def _case(self, job) -> Optional[TextIO]:
        """The case's file, its run's header written when first opened."""
        n = job.case.number
        if n not in self._open:
            f = self._append(self.path(job))
            if f is None:
                return None
            self._open[n] = f
            sets = "\n".join(f"  {k} = {v!r}" for k, v in job.case.overrides.items()) or "  (as in the workflow)"
            outs = "\n".join(f"  {o}" for o in job.outputs) or "  (none)"
            self._write(f, f"==== case {job.label}, run started {now_text()}\n"
                           f"workflow: {job.source or (job.workflow.path if job.workflow else '?')}\n"
                           f"parameters:\n{sets}\noutputs:\n{outs}")
        return self._open[n]

    def event(self, job, ev: Dict[str, Any]) -> None:
        """A node event of the case's run (app.progress.Relay has thinned its progress)."""
        kind, node = ev.get("event"), ev.get("node")
        at = now_text()[11:19]
        if kind == "node_started":
            line = f"{at} {node} started ({ev.get('type')})"
        elif kind == "node_finished":
            how = "from the cache" if ev.get("cached") else f"in {ev.get('seconds', 0):.2f}s"
            if ev.get("lazy"):
                self._lazy.add((job.case.number, node))
            line = f"{at} {node} {'ready (its frames are made as they are read)' if ev.get('lazy') else 'done'} {how}"
        elif kind == "node_time" and (job.case.number, node) in self._lazy:
            if not ev.get("frames", True):
                return          # no later node got its frames (a Save that failed first): it did no work
            line = f"{at} {node}: {ev['seconds']:.2f}s of its own work in all"
        elif kind == "node_progress" and ev.get("total"):
            tenth = int(10 * ev["done"] / ev["total"])
            if self._tenth.get((job.case.number, node)) == tenth:
                return
            self._tenth[(job.case.number, node)] = tenth
            line = f"{at} {node} {min(100, int(100 * ev['done'] / ev['total']))}% ({ev['done']:g}/{ev['total']:g})"
        elif kind == "node_skipped":
            line = f"{at} {node} not run: {ev.get('because')} failed"
        elif kind == "node_failed":
            line = f"{at} {node} FAILED: {ev.get('message')}" + _trace(ev.get("traceback"))
        elif kind == "log":
            line = f"{at} {node + ': ' if node else ''}{ev.get('message')}"
        else:
            return
        self._write(self._case(job), line)

    def finished(self, job, row: Dict[str, Any]) -> None:
        """The case's end: where its outputs went, or its error and the command that runs it again."""
        if row.get("skipped"):
            self.batch_note(f"case {job.label} skipped: its outputs are there from an earlier run "
                            f"(its log: {self.path(job).name})")
            return
        f = self._case(job)
        at = now_text()[11:19]
        on = f" on {row['host']} (pid {row['pid']})" if row.get("host") else ""
        if row["ok"]:
            # What the writers reported (with frames); where none reported a path, the outputs the job was to write.
            wrote = [f"{r['path']}" + (f" ({r['frames']} frames)" if r.get("frames") else "")
                     for r in row.get("results", {}).values() if isinstance(r, dict) and r.get("path")] or job.outputs
            text = f"{at} ok in {row['seconds']:.2f}s{on}; wrote:" + "".join(f"\n  {w}" for w in wrote)
        else:
            ran = "not run" if row["seconds"] is None else f"after {row['seconds']:.2f}s{on}"
            text = f"{at} FAILED, {ran}: {row['error']}" + _trace(row.get("traceback")) + self._again(job.case.number)
        self._write(f, text)
        self._close(job.case.number)

    def cancelled(self, job) -> None:
        """A case that was running when the batch was stopped: its log says so and how to go on."""
        if job.case.number in self._open:
            self._write(self._open[job.case.number], f"{now_text()[11:19]} CANCELLED: the batch was stopped during "
                        f"this case; an output it had not finished is not written (one it had, above, stands). "
                        f"Run it again with: "
                        f"{_command(self.retry([job.case.number]))}")
            self._close(job.case.number)

    def _again(self, case: int) -> str:
        return "" if case in self.change_first else f"\nrun it again with: {_command(self.retry([case]))}"

    def _close(self, case: int) -> None:
        _shut(self._open.pop(case, None))

    def summary(self, table: str, failed: List[int], not_run: List[int], labels: Dict[int, str],
                errors: Dict[int, str], tail: str) -> None:
        lines = [f"==== batch finished {now_text()}", table, tail]
        if failed:
            lines.append("failed cases, each with the command that runs it again:")
            for n in failed:
                lines.append(f"  case {labels[n]}: {errors.get(n)}" + self._again(n).replace("\nrun", "\n    run"))
        if not_run:
            lines.append(f"not run (the batch was stopped before they finished): cases "
                         f"{', '.join(labels[n] for n in not_run)}; run them with:\n    {_command(self.retry(not_run))}")
        self.batch_note("\n".join(lines))


def _shut(f: Optional[TextIO]) -> None:
    """Close a log; what a full disk did not take is lost with it (its write already said so)."""
    if f is None:
        return
    try:
        f.close()
    except OSError:
        pass


def _trace(trace: Optional[str]) -> str:
    return "" if not trace else "\n" + "\n".join(f"    | {line}" for line in trace.rstrip().splitlines())


def _command(argv: List[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
