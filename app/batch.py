"""The commands that hand jobs to workers: `kinograph batch` and `kinograph run --ray`.

`kinograph batch WORKFLOW --sweep SWEEP.yaml` runs one job per case of a sweep. Without --ray
the jobs run one after another in this process, sharing one Session (so everything upstream
of the swept parameters is computed once). With --ray they go to long-lived Ray workers. A
failing job never stops the others; the summary (or --json) gives each job's result, time and
error, and `--only N,M` re-runs just those cases.

`kinograph run WORKFLOW --ray ADDRESS [--shards N]` runs one job on a worker, or renders the
video in frame ranges on several (app.shard)."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shlex
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from graph_engine.context import CancelToken
from graph_engine.errors import WorkflowError

from .batchlog import BatchLogs, default_log_dir
from .jobs import cancel_on_interrupt, done_before, payload_of, run_job, sigterm_interrupts
from .progress import Relay, now_text, print_out

EXIT_OK, EXIT_FAIL, EXIT_CANCELLED = 0, 1, 130
# Seconds between a long job's progress lines (Report.progress).
PROGRESS_LINE_S = 10.0
# Free bytes below which an output's disk is full: no render's file fits (io.save_frames keeps as much spare). No
# writer tells its file's size before the run (nodes/generate/estimate.py counts the samplers' work, not what is
# written, and frames x size uncompressed would refuse most renders that fit), so the bar is the same for every run.
FULL_BELOW = 1 << 20


class Report:
    """Per-job lines as jobs finish, then a summary table; or JSON lines with --json."""

    def __init__(self, json_lines: bool, retry: Callable[[List[int]], List[str]],
                 change_first: Dict[int, Dict[str, Any]] = None, log_dir: Optional[Path] = None):
        self.json = json_lines
        self.retry_cmd = retry          # failed case numbers -> the command that runs them again
        # case -> the output it shares with an earlier job (_refuse_shared_outputs): run again as it is, it
        # replaces that job's render, so it is told what to change instead of being put in the retry.
        self.change_first = change_first or {}
        self.rows: Dict[int, Dict[str, Any]] = {}
        self.t0 = time.perf_counter()
        # Held now: while Ray runs, sys.stdout is stderr (app.distributed.ray_session).
        self.out = sys.stdout
        self._reader = True          # False once stdout's reader has gone: the jobs go on (progress.print_out)
        self.err, self._notes = sys.stderr, True      # the same for stderr
        self._began: Dict[int, float] = {}            # case -> when its first node started (progress)
        self._said: Dict[int, float] = {}             # case -> when its last progress line was printed
        self.logs = BatchLogs(log_dir, retry, self.note, self.change_first) if log_dir else None

    def note(self, text: str) -> None:
        self._notes = self._notes and print_out(self.err, text)

    def batch_note(self, text: str) -> None:
        """A note of the whole batch, on stderr and in its batch.log."""
        self.note(text)
        if self.logs:
            self.logs.batch_note(text)

    def _emit(self, ev: Dict[str, Any]) -> None:
        self._print(json.dumps(ev, default=str))

    def _print(self, text: str) -> None:
        self._reader = self._reader and print_out(self.out, text)

    def progress(self, job, ev: Dict[str, Any]) -> None:
        """A node event of a job while it runs (app.progress.Relay has thinned its progress): with --json
        every one, tagged with the case; for people, a job's log lines, and where a job runs long, a line
        on how far its current node is at most every PROGRESS_LINE_S (not in its first PROGRESS_LINE_S,
        so a sweep of quick jobs stays one line per job). Every one goes to the case's log file."""
        if self.logs:
            self.logs.event(job, ev)
        if self.json:
            self._emit({**{k: v for k, v in ev.items() if k != "traceback" or v}, "case": job.case.number})
            return
        kind = ev["event"]
        if kind == "log":
            self.note(f"  case {job.label}: {ev['node'] + ': ' if ev.get('node') else ''}{ev['message']}")
        elif kind == "node_failed" and ev.get("traceback"):
            self._trace(job, f"{ev['node']} failed: {ev['message']}", ev["traceback"])
        elif kind == "node_started":
            self._began.setdefault(job.case.number, time.monotonic())
        elif kind == "node_progress" and ev.get("total"):
            now = time.monotonic()
            began = self._began.setdefault(job.case.number, now)
            if now - max(began, self._said.get(job.case.number, began)) >= PROGRESS_LINE_S:
                self._said[job.case.number] = now
                done, total = ev["done"], ev["total"]
                self.note(f"  case {job.label}: {ev['node']} {min(100, int(100 * done / total))}% "
                          f"({done:g}/{total:g})")

    def began(self, job) -> None:
        """A job starts here: its log's header is written now, so a case stopped before its first node says so."""
        if self.logs:
            self.logs.began(job)

    def _trace(self, job, what: str, trace: str) -> None:
        """An unexpected exception's stack trace in the log (what a bug report needs): it was only in --json's
        rows, so a night's stderr said 'TypeError: ...' and the failure had to be rendered again to report it."""
        self.note(f"  case {job.label}: {what}\n" + "\n".join(f"    | {line}" for line in trace.rstrip().splitlines()))

    def started(self, jobs) -> None:
        if self.json:
            self._emit({"event": "batch_started", "jobs": len(jobs), "started_at": now_text(),
                        "cases": [{"case": j.case.number, "overrides": j.case.overrides, "outputs": j.outputs,
                                   **({"workflow": j.source} if j.source else {})} for j in jobs]})
        else:
            self.note(f"{len(jobs)} jobs, started {now_text()}")
        if self.logs:
            self.logs.plan(jobs)
            self.logs.batch_note(f"==== batch of {len(jobs)} jobs started {now_text()}: "
                                 f"{' '.join(shlex.quote(a) for a in sys.argv[1:])}")
            if self.logs.ok:        # else the batch's note said it cannot write them
                self.note(f"a log per case, and the summary in batch.log: {self.logs.folder}")

    def finished(self, job, out: Dict[str, Any]) -> None:
        row = {"event": "job_finished", "case": job.case.number, "label": job.label, "ok": bool(out.get("ok")),
               "seconds": out.get("seconds"), "overrides": job.case.overrides, "outputs": job.outputs,
               "results": out.get("results", {}), "failed": out.get("failed", {}), "error": out.get("error"),
               "finished_at": now_text()}
        if job.source:
            row["workflow"] = job.source
        for k in ("host", "pid", "traceback", "skipped"):
            if out.get(k) is not None:
                row[k] = out[k]
        if self.logs:
            self.logs.finished(job, row)
            if self.logs.ok:        # a log that could not be written is not pointed to
                row["log"] = str(self.logs.path(job))
        self.rows[job.case.number] = row
        if self.json:
            self._emit(row)
        else:
            if row.get("traceback"):
                self._trace(job, row["error"], row["traceback"])
            status = "ok" if row["ok"] else "FAILED"
            if row.get("skipped"):
                status = "skipped, done earlier"
            elif row["seconds"] is None:
                status += ", not run"
            else:
                # Which render node ran it: a job that failed on one node of the farm is that node's problem.
                on = f" on {row['host']}, pid {row['pid']}" if row.get("host") else ""
                status += f" ({row['seconds']:.2f}s{on})"
            what = ", ".join(job.outputs) if row["ok"] else row["error"]
            # The time of day: a log read in the morning says when each job ended, not only how long it took.
            self.note(f"{row['finished_at'][11:19]} [{len(self.rows)}] case {job.label}"
                      f"{' (' + job.source + ')' if job.source else ''} {status}: {what}")

    def summary(self, jobs, cancelled: bool) -> int:
        failed = [j.case.number for j in jobs if not self.rows.get(j.case.number, {}).get("ok")]
        not_run = [j.case.number for j in jobs if j.case.number not in self.rows]
        clashing = [n for n in failed if n in self.change_first]
        again = [n for n in failed if n not in self.change_first]
        retry, after = (" ".join(shlex.quote(a) for a in self.retry_cmd(cases)) if cases else None
                        for cases in (again, clashing))
        seconds = round(time.perf_counter() - self.t0, 3)
        ok_count = len(jobs) - len(failed)
        if self.logs:
            self._log_summary(jobs, failed, not_run, cancelled, ok_count, seconds)
        if self.json:
            self._emit({"event": "batch_finished", "ok": not failed, "jobs": len(jobs), "succeeded": ok_count,
                        "failed_cases": failed, "not_run": not_run, "cancelled": cancelled, "seconds": seconds,
                        "retry": retry, "change_first": [{"case": n, **self.change_first[n]} for n in clashing],
                        "retry_after_change": after})
        else:
            tail = f"{ok_count} of {len(jobs)} jobs ok in {seconds:.1f}s"
            if self.logs and self.logs.ok:
                tail += f"; each case's log in {self.logs.folder}"
            if retry:
                tail += f"; retry the {'others' if not clashing else 'rest'} with:\n  {retry}"
            if clashing:
                tail += ("\nthese write an earlier job's output and would replace its render: give each its own "
                         "output path first")
                for n in clashing:
                    c = self.change_first[n]
                    tail += (f"\n  {c['workflow']}: {c['param']} writes {c['output']}, as case {c['same_as_case']} "
                             f"({c['same_as']}) does")
                tail += f"\nthen run them with:\n  {after}"
            self._print(f"{self.table(jobs)}\n{tail}")
        if cancelled:
            return EXIT_CANCELLED
        return EXIT_OK if not failed else EXIT_FAIL

    def _log_summary(self, jobs, failed, not_run, cancelled, ok_count, seconds) -> None:
        for j in jobs:
            if j.case.number in not_run:
                self.logs.cancelled(j)
        tail = f"{ok_count} of {len(jobs)} jobs ok in {seconds:.1f}s" + (", cancelled" if cancelled else "")
        self.logs.summary(self.table(jobs), [n for n in failed if n not in not_run], not_run,
                          {j.case.number: j.label for j in jobs},
                          {n: (r["error"] or "").partition("\n")[0] for n, r in self.rows.items() if not r["ok"]}, tail)

    def table(self, jobs) -> str:
        head = "workflow" if any(j.source for j in jobs) else "overrides"
        lines = [f"{'case':>5}  {'status':<7} {'seconds':>8}  {head:<36} output / error"]
        for j in jobs:
            row = self.rows.get(j.case.number)
            status = "not run" if row is None else "skipped" if row.get("skipped") else "ok" if row["ok"] \
                else "FAILED"
            secs = "" if row is None or row["seconds"] is None else f"{row['seconds']:.2f}"
            sets = " ".join(f"{k}={v}" for k, v in j.case.overrides.items()) or j.source or "(as in the workflow)"
            # An error's first line: the rest (the folders a model was looked for in) is in its job's line above.
            what = ", ".join(j.outputs) if row is None or row["ok"] else (row["error"] or "").partition("\n")[0]
            lines.append(f"{j.case.number:>5}  {status:<7} {secs:>8}  {_clip_text(sets, 36):<36} {what}")
        return "\n".join(lines)


def _clip_text(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def run_batch(args) -> int:
    from graph_engine.registry import default_registry
    registry = default_registry()
    if args.sweep and len(args.workflow) > 1:
        raise WorkflowError([f"kinograph batch: --sweep makes the cases of one workflow; {len(args.workflow)} were "
                             "given. Run each workflow's sweep as its own batch, or leave --sweep out to run the "
                             "workflows one job each"])
    pattern = args.workflow[0]
    args.workflow, unmatched = _expand_patterns(args.workflow)
    if args.sweep and len(args.workflow) > 1:
        raise WorkflowError([f"kinograph batch: --sweep makes the cases of one workflow; {pattern!r} matches "
                             f"{len(args.workflow)} files: name the one to sweep"])
    jobs, refused, notes, clashes = (_sweep_jobs if args.sweep else _file_jobs)(args, registry, unmatched)
    if len(refused) == len(jobs):       # nothing could run: the command is wrong, as before any job
        raise WorkflowError([p for n in sorted(refused) for p in refused[n]])
    def retry(failed: List[int]) -> List[str]:
        if args.sweep:
            return ["kinograph", "batch", *args.workflow, "--sweep", args.sweep, *_same_flags(args),
                    "--only", ",".join(map(str, failed))]
        files = [args.workflow[n - 1] for n in failed]
        # Its logs beside this batch's, which are beside its first file, not the retry's first
        here = [] if args.log_dir or default_log_dir(files[0], None).absolute() == log_dir else ["--log-dir", str(log_dir)]
        return ["kinograph", "batch", *files, *_same_flags(args), *here]
    # `--log-dir=~/night` reaches us with its ~ (a shell expands none after '='), as --output-dir's does
    log_dir = Path(os.path.expanduser(args.log_dir or default_log_dir(args.workflow[0], args.sweep))).absolute()
    report = Report(args.json, retry, clashes, log_dir)
    with contextlib.ExitStack() as stack:
        ray = None
        if args.ray:
            # A missing Ray, or a cluster address that leads nowhere, is said before any job is announced.
            from .distributed import require_ray, ray_session
            require_ray()
            ray = stack.enter_context(ray_session(args.ray, num_cpus=args.jobs or None))
        return _run_jobs(args, registry, jobs, refused, notes, report, ray)


def _run_jobs(args, registry, jobs, refused, notes, report: Report, ray) -> int:
    report.started(jobs)
    for n in notes:
        report.batch_note(n)
    # A job that cannot run (a workflow that does not load, a case whose value or footage is wrong) fails on
    # its own: it stopped every other job of the night before, exit 2 and nothing rendered.
    for job in jobs:
        if job.case.number in refused:
            report.finished(job, {"ok": False, "seconds": None,
                                  "error": "; ".join(str(p) for p in refused[job.case.number])})
    todo = [(j, payload_of(j.workflow, registry)) for j in jobs if j.case.number not in refused]
    if args.skip_done:
        for job, payload in todo:
            if done_before(job.outputs, payload["yaml"]):
                report.finished(job, {"ok": True, "seconds": None, "skipped": True})
        todo = [(j, p) for j, p in todo if j.case.number not in report.rows]
    if not args.ray:        # the cases that will run: a --skip-done rerun was told the whole night's time again
        _say_estimate(args.device, registry, [j for j, _ in todo], report)
    if not todo:
        cancelled = False
    elif args.ray:
        cancelled = _run_on_ray(args, registry, ray, [j for j, _ in todo], [p for _, p in todo], report)
    else:
        if args.jobs > 1:
            report.note("--jobs needs --ray (local or a cluster address); running the jobs one after another")
        cancelled = _run_here(args, [j for j, _ in todo], [p for _, p in todo], report)
    return report.summary(jobs, cancelled)


def _say_estimate(device: str, registry, jobs, report: Report) -> None:
    """The whole batch's time before its first case (each case's estimate, summed): a studio's night
    of cases was told nothing until each case's log gave its own pace. Not on Ray: the workers' devices are
    not this machine's."""
    from nodes.generate.estimate import LONG_S, duration, estimate
    ests = []
    for job in jobs:
        try:
            ests.append((job, estimate(job.workflow, registry, device)))
        except WorkflowError:       # the case's run names what is wrong with it
            continue
    timed = [(job, e) for job, e in ests if e.seconds is not None]
    if not timed:
        return
    seconds = [e.seconds for _, e in timed]
    total, low, high = sum(seconds), min(seconds), max(seconds)
    each = f"about {duration(low)} each" if duration(low) == duration(high) else \
        f"{duration(low)} to {duration(high)} each"
    # a case whose samplers cannot be counted before it runs (the others' sum leaves it out)
    untold = [(job, e) for job, e in ests if e.seconds is None and e.samplers]
    report.batch_note(f"estimate: about {duration(total)} in all on {timed[0][1].where} for "
                      f"{len(timed)} case{'s' if len(timed) != 1 else ''} ({each})" +
                      (f"; {len(untold)} more not estimated (case {untold[0][0].label}: {untold[0][1].lines[0]})"
                       if untold else ""))
    if total >= LONG_S:
        job, longest = max(timed, key=lambda t: t[1].seconds)
        report.batch_note(f"  the longest, case {job.label}: " + "; ".join(longest.lines[:len(longest.samplers)]))


def _expand_patterns(given: List[str]) -> Tuple[List[str], Dict[str, str]]:
    """The workflow arguments with each pattern replaced by the files it matches, in name order; and each
    pattern that matches none -> why. A shell expands shots/*.yaml before Kinograph sees it, but Windows'
    shells and a farm wrapper that quotes its arguments pass the pattern on, and it was looked for as a file
    ("shots/*.yaml: no such file"). Python's glob matches as a shell does (*, ?, [abc]; a name starting
    with a dot only when the pattern's does), plus ** for any depth of folders. An argument naming a file
    that exists is that file, brackets and all."""
    paths: List[str] = []
    unmatched: Dict[str, str] = {}
    for arg in given:
        pattern = os.path.expanduser(arg)
        if not glob.has_magic(pattern) or os.path.exists(pattern):
            paths.append(arg)
            continue
        found = sorted(glob.glob(pattern, recursive=True))
        paths += found or [arg]
        if not found:
            parts = Path(pattern).parts
            fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
            folder = Path(*parts[:fixed]).resolve() if fixed else Path.cwd()
            unmatched[arg] = f"no file matches this pattern (looked in {folder}" + \
                ("" if folder.is_dir() else ", which does not exist") + ")"
    return paths, unmatched


def _sweep_jobs(args, registry, unmatched):
    """The jobs of one workflow's sweep, and the problems of those that cannot run (case -> problems). A
    mistake in the workflow or the sweep file raises: it is every case's."""
    from graph_engine.workflow import Problem
    from .sweep import load_sweep, plan_jobs, select_cases
    path = args.workflow[0]
    if path in unmatched:
        raise WorkflowError([Problem(path, 0, None, unmatched[path])])
    _refuse_comfyui(path)
    wf = _load_with_sets(args, path, registry)
    sweep = load_sweep(args.sweep, wf, registry)
    jobs, notes = plan_jobs(wf, sweep, select_cases(sweep, args.only), registry)
    refused = {j.case.number: problems for j in jobs for problems in [_problems(args, j.workflow, registry)] if problems}
    return jobs, refused, notes, {}


def _load_with_sets(args, path: str, registry):
    """The workflow with the command's --set applied: the change every job of a night shares (final quality after
    the previews) had to be copied into each case of the sweep, or into a copy of each workflow. Checked after
    them, as `kinograph run` checks, since a --set may mend what the file has wrong."""
    from graph_engine.api import load_workflow
    from graph_engine.validate import apply_overrides
    wf = load_workflow(path, check=not args.set)
    problems = apply_overrides(wf, args.set, registry)
    if problems:
        raise WorkflowError(problems)
    return wf


def _problems(args, wf, registry, written=()) -> list:
    """What stops a job before it runs: its workflow's problems and, run here, the model and footage files it names
    that are missing (a night's batch met the fifth case's missing model when it reached it). On Ray each worker
    checks the files on its own machine (app.jobs.refused_here). `written`: what the jobs before it write."""
    from graph_engine.validate import validate_run
    from .precheck import problems_before_run
    return validate_run(wf, registry) if args.ray else problems_before_run(wf, registry, written)


def _file_jobs(args, registry, unmatched):
    """One job per workflow file, numbered from 1 in the order given (what --only takes); a file that does
    not load or would not run is a job that failed, with its problems."""
    from graph_engine.errors import KinographError
    from graph_engine.workflow import Problem
    from .sweep import Case, Job, Sweep, plan_jobs, select_cases
    given = Sweep(Path("the command line"), [Case(n, {}) for n in range(1, len(args.workflow) + 1)])
    jobs, refused, notes = [], {}, []
    # Jobs here run in the order given: a plate job 1 renders is there when job 2 comps it.
    written = set()
    for case in select_cases(given, args.only):
        path = args.workflow[case.number - 1]
        try:
            if path in unmatched:
                raise WorkflowError([Problem(path, 0, None, unmatched[path])])
            _refuse_comfyui(path)
            wf = _load_with_sets(args, path, registry)
            [job], said = plan_jobs(wf, Sweep(Path(path), [case]), [case], registry)
            job.label = given.label(case)
            problems = _problems(args, job.workflow, registry, written)
        except WorkflowError as e:
            job, said, problems = Job(case, given.label(case), None), [], e.problems
        except KinographError as e:
            job, said, problems = Job(case, given.label(case), None), [], [Problem(path, 0, None, str(e))]
        job.source = path
        jobs.append(job)
        notes += said
        if problems:
            refused[case.number] = problems
        else:
            written.update(job.outputs)
    return jobs, refused, notes, _refuse_shared_outputs(jobs, refused)


def _refuse_shared_outputs(jobs, refused) -> Dict[int, Dict[str, Any]]:
    """Workflow files copied from one template write the same name (out/video.mp4) unless each was given its
    own: each job replaced the one before, all of them reported that name, and the night's renders were in
    takes/ under numbers that said nothing of their shot. The first job to name a file writes it; a later
    one fails, not run, naming the job it would have replaced. Returns those jobs: case -> what they share
    (Report.change_first)."""
    from graph_engine.outputs import same_file_key
    from graph_engine.workflow import Problem
    first: Dict[str, Any] = {}
    clashes: Dict[int, Dict[str, Any]] = {}
    for job in jobs:
        if job.case.number in refused:
            continue
        for out in job.outputs:
            earlier = first.setdefault(same_file_key(out), job)     # letter case folded where the disk folds it
            if earlier is not job:
                param = job.written_by[out]
                refused.setdefault(job.case.number, []).append(Problem(
                    job.source, 0, None, f"{param} writes {out}, as case {earlier.case.number} ({earlier.source}) "
                                         "does, which it would replace: give each workflow its own output path"))
                clashes.setdefault(job.case.number, {"workflow": job.source, "param": param, "output": out,
                                                     "same_as_case": earlier.case.number,
                                                     "same_as": earlier.source})
    return clashes


def _refuse_comfyui(path: str) -> None:
    from .cli import _refuse_comfyui as refuse
    refuse(path)


def _same_flags(args) -> List[str]:
    """The options that shape where and how the jobs ran, so the printed retry runs like the batch
    (without --output-dir it would refuse the outputs the batch was allowed to write)."""
    out: List[str] = []
    for flag, value in (("--ray", args.ray), ("--jobs", args.jobs or None), ("--cache-dir", args.cache_dir),
                        ("--log-dir", args.log_dir),
                        ("--device", None if args.device == "auto" else args.device),
                        ("--output-dir", args.output_dir)):
        if value:
            out += [flag, str(value)]
    return out + (["--allow-outside"] if args.allow_outside else []) + (["--skip-done"] if args.skip_done else []) \
        + (["--replace"] if args.replace else []) + [a for value in args.set for a in ("--set", value)]


def _run_here(args, jobs, payloads, report: Report) -> bool:
    from graph_engine.api import Session
    session = Session(device=args.device)
    with cancel_on_interrupt(CancelToken(), report.note) as cancel:
        try:
            for job, payload in zip(jobs, payloads):
                if cancel.cancelled:
                    break
                full = full_disk(job.outputs)
                if full:
                    report.finished(job, {"ok": False, "seconds": None, "error": full})
                    continue
                report.began(job)
                out = run_job(session, payload, cancel, on_event=Relay(partial(report.progress, job)))
                if out["cancelled"]:
                    break
                report.finished(job, out)
        except KeyboardInterrupt:
            # The second Ctrl-C or SIGTERM stops the job at once; the summary, batch.log's record of the cases
            # not run and --json's batch_finished still follow (they were lost with the exception).
            cancel.cancel()
    return cancel.cancelled


def full_disk(outputs: List[str]) -> Optional[str]:
    """Why a job cannot write its outputs now that their disk is full, or None. The disk that filled during a
    night's fifth job failed every job after it at its writer, each after sampling for its hour; such a job is
    not run, and the retry line runs it once space is freed (`kinograph run` asks the same before it runs)."""
    from graph_engine.free_space import disk_room
    from graph_engine.takes import on_full_disk
    for out in outputs:
        folder = Path(out).parent
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent
        room = disk_room(folder)
        if room is not None and room.writable < FULL_BELOW:
            return (f"the disk holding {folder} is full ({room.writable // 1024} KB free). Free some space there, "
                    f"then run it again{on_full_disk(folder)}")
    return None


def _run_on_ray(args, registry, ray, jobs, payloads, report: Report) -> bool:
    from .distributed import WorkerPool, needs_gpu
    by_label = {j.label: j for j in jobs}
    gpu_nodes = sorted({n for j in jobs for n in needs_gpu(j.workflow, registry)})   # the jobs may differ
    with WorkerPool(ray, args.jobs or None, gpu_nodes=gpu_nodes, device=args.device,
                    note=report.note, limit=len(jobs),
                    watch=lambda label, ev: report.progress(by_label[label], ev)) as pool:
        if not report.json:
            report.note(f"on Ray: {pool.size} worker{'s' if pool.size != 1 else ''}")
        try:
            with sigterm_interrupts():
                for label, out in pool.imap((j.label, "run", (p, pool.sink, j.label))
                                            for j, p in zip(jobs, payloads)):
                    report.finished(by_label[label], out)
        except KeyboardInterrupt:
            report.note("cancelled: stopping the Ray workers")
            return True
    return False


# -- kinograph run --ray ADDRESS [--shards N] --------------------------------------------------
def run_distributed(args, wf) -> int:
    """`kinograph run WORKFLOW --ray ADDRESS [--shards N]`: one job on a worker, or a sharded render."""
    from graph_engine.registry import default_registry
    from graph_engine.validate import validate_run
    from .distributed import WorkerPool, needs_gpu, ray_session
    from .progress import ProgressPrinter
    from .shard import plan_shards
    if not args.ray:        # a usage mistake: exit 2, and with --json the finished event that says so
        raise WorkflowError(["kinograph: --shards needs Ray: add --ray local (this machine) or --ray ADDRESS "
                             "(a cluster)"])
    registry = default_registry()
    problems = validate_run(wf, registry)         # --set is applied (app.cli._apply_sets)
    if problems:
        raise WorkflowError(problems)
    printer = ProgressPrinter(json_lines=args.json, graph=wf.graph)
    plan = None
    if args.shards > 1:
        plan = plan_shards(wf, registry)       # refuse before paying for Ray
    t0 = time.perf_counter()
    said = set()        # nodes whose failure the worker's own events reported

    def watch(_, ev: Dict[str, Any]) -> None:
        if ev["event"] == "node_failed":
            said.add(ev["node"])
        printer(ev)

    with ray_session(args.ray) as ray:
        with WorkerPool(ray, None, limit=args.shards if plan else 1, gpu_nodes=needs_gpu(wf, registry),
                        device=args.device, note=printer.note,
                        watch=None if plan else watch) as pool:
            printer({"event": "run_started", "nodes": list(wf.graph.nodes)})
            with sigterm_interrupts():      # stops as Ctrl-C does: workers stopped, exit 130
                out = _run_on_pool(args, wf, registry, pool, printer, plan)
    if out.get("refused"):      # the worker lacks what the job reads: exit 2 as a local run refused for it
        raise WorkflowError([out["error"]])
    for what, msg in out.get("failed", {}).items():
        if what in said:
            continue
        if what in wf.graph.nodes:
            printer({"event": "node_failed", "node": what, "message": msg})
        elif not args.json:
            printer.note(f"x {what} failed: {msg}")
    printer({"event": "run_finished", "ok": out["ok"], "cancelled": False, "results": out.get("results", {}),
             "failed": out.get("failed", {}), "seconds": round(time.perf_counter() - t0, 4)})
    return 0 if out["ok"] else 1


def _run_on_pool(args, wf, registry, pool, printer, plan) -> Dict[str, Any]:
    """The job (or the shards) on the pool's workers; the run's summary."""
    from .shard import render_sharded
    if plan:
        out = render_sharded(wf, registry, pool, args.shards, emit=_shard_printer(printer, args.json),
                             use_cache=not args.no_cache, plan=plan)
    else:
        # The worker's node events reach the printer as they happen (the pool's watch), as in a local run.
        out = pool.call("run", payload_of(wf, registry, not args.no_cache), pool.sink)
        if out.get("error") and not out.get("failed"):
            out["failed"] = {"workflow": out["error"]}
    return out


def _shard_printer(printer, json_lines: bool) -> Callable[[Dict[str, Any]], None]:
    def emit(ev: Dict[str, Any]) -> None:
        if json_lines or ev["event"] not in ("shards_planned", "shard_finished"):
            printer(ev)
        elif ev["event"] == "shards_planned":
            fewer = len(ev["ranges"]) < ev["asked"]
            n = len(ev["ranges"])
            w = ev["workers"]
            # 'up to 0 frames of context' was said of a graph whose nodes each take one frame
            context = (f" (each pulls up to {ev['context']} frames of context either side)" if ev["context"] else "")
            printer.note(f"{ev['frames']} frames in {n} shard{'s' if n > 1 else ''} on {w} worker{'s' if w > 1 else ''}"
                         f"{context}" +
                         (f"; shards hold whole {ev['chunk']}-frame chunks, so not {ev['asked']}" if fewer else ""))
        elif ev["ok"]:
            # The range is [a, b): 'frames 0-27' then 'frames 27-48' read as frame 27 rendered twice.
            a, b = ev["frames"]
            printer.note(f"  shard {ev['shard']} frames {a}-{b - 1} done on {ev['host']} ({ev['seconds']:.2f}s)")
    return emit
