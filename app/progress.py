"""How `kinograph run` shows engine events: progress lines for people, JSON lines for programs.

Progress bars are tqdm's, one per running node, on a terminal only. A log file (a render farm's,
`nohup`'s) gets a plain line at every tenth of a node's work instead of a redrawn bar, so a
long node shows it is moving and a farm can read its percentage."""
from __future__ import annotations

import datetime
import errno
import json
import os
import re
import stat
import sys
import time
from typing import Any, Callable, Dict, List, TextIO

from tqdm import tqdm


# Control characters but newline and tab. A workflow, a file name or a ComfyUI graph from a stranger reaches
# the terminal inside messages ("output 'path' (VALUE) resolves to ..."): with ESC and CR in it, it cleared
# the screen, wrote "finished: ok" over its own refusal, or hid the paths a render's workflow would write.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with its control characters shown as escapes (\\x1b), so that it prints as what it is."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


class Printable:
    """stdout or stderr for the command's messages, with `printable` applied to everything written. Progress
    bars draw on `raw` (tqdm's carriage returns and cursor moves are Kinograph's own)."""

    def __init__(self, raw: TextIO):
        self.raw = raw

    def write(self, text: str) -> int:
        try:
            self.raw.write(printable(text))
        except UnicodeEncodeError:
            # A Windows render node's stdout in a file or pipe encodes in the ANSI code page, strictly: 'wrote PATH'
            # for a shot folder named in Japanese raised after the render was written, exit 1 for a finished render.
            # Escapes instead, as stderr writes them.
            encoding = getattr(self.raw, "encoding", None) or "ascii"
            self.raw.write(printable(text).encode(encoding, "backslashreplace").decode(encoding))
        except OSError as e:
            # EIO is also a failing disk's or a soft NFS mount's answer: a log or --json file there is the night's
            # record, lost without a word if it were taken for a terminal.
            if e.errno != errno.EIO or not _terminal(self.raw):
                raise
            # A terminal that hung up (`kinograph run shot.yaml > out.log &`, then the ssh session closed): the
            # first line raised out of the render, which died with nothing written. These lines are its report,
            # the render is the product: what cannot be shown goes nowhere, as for a reader that left a pipe.
            discard(self.raw)
        return len(text)

    def __getattr__(self, name):        # flush, fileno, isatty, encoding, buffer: the stream's own
        return getattr(self.raw, name)


def _terminal(stream) -> bool:
    """Whether `stream` writes to a terminal, one that hung up included (isatty answers False for that one: its
    ioctl fails with EIO, its fstat still tells a character device)."""
    try:
        return stat.S_ISCHR(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def print_out(stream: TextIO, text: str, through_tqdm: bool = False) -> bool:
    """Print a line to stdout or stderr; False once nobody reads it any more (`| head -1`, `2>&1 | head`,
    a log reader that died). The render is the product and these lines only its report, so the caller
    carries on without printing: the broken pipe had stopped the render and exited 0 with nothing written.
    `through_tqdm` clears a progress bar being drawn first and redraws it below the line."""
    try:
        if through_tqdm:
            tqdm.write(text, file=stream)
        else:
            print(text, file=stream)
        stream.flush()
        return True
    except BrokenPipeError:
        discard(stream)
        return False


def nowhere(fds: List[int]) -> Dict[int, TextIO]:
    """A stream to /dev/null for each standard descriptor in `fds` that the process was started without. Each such
    descriptor that is closed gets /dev/null too, so that a file opened later does not take its number and receive what
    a child (ffmpeg) prints there; all of them before any stream is opened, which would take the lowest free number
    (stdout's stream took 2 where both were closed, and gave it up again as it closed)."""
    for fd in fds:
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    return {fd: open(os.devnull, "w", encoding="utf-8") for fd in fds}


def discard(stream: TextIO) -> None:
    """What is still buffered for `stream`, what is written to it from now on and Python's flush at exit go nowhere
    (its file descriptor is made /dev/null's) instead of raising again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, stream.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    finally:
        os.close(null)


# A job running elsewhere (a Ray worker, a batch's job) passes its node events on to whoever watches
# it; a node's progress goes at each tenth of its work and at most every RELAY_EVERY_S between, so a
# bar moves smoothly without one message per frame crossing the cluster.
RELAY_EVERY_S = 0.5
# The driver makes its own run_started / run_finished; a preview is a picture nobody there shows.
NOT_RELAYED = ("run_started", "run_finished", "node_preview")


class Relay:
    """An on_event callback that sends a job's node events on through `send`, node_progress thinned."""

    def __init__(self, send: Callable[[Dict[str, Any]], None]):
        self.send = send
        self.last: Dict[str, tuple] = {}        # node -> (tenth, monotonic time) of its last progress sent

    def __call__(self, ev: Dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind in NOT_RELAYED:
            return
        if kind == "node_progress":
            total, done = ev.get("total") or 0, ev.get("done") or 0
            tenth = int(10 * done / total) if total > 0 else 0
            now = time.monotonic()
            prev = self.last.get(ev["node"])
            if prev is not None and prev[0] == tenth and now - prev[1] < RELAY_EVERY_S and done < total:
                return
            self.last[ev["node"]] = (tenth, now)
        self.send(ev)


# A log says how long a node's work has left once that is at least this long (seconds, at its measured pace).
PACE_AFTER_S = 60


def now_text() -> str:
    """The local date and time with its offset, as RFC 3339 writes them (2026-12-06T03:12:44+01:00): logs give it,
    and --json's started_at / finished_at, where +0100 was refused by Python 3.10's datetime.fromisoformat (a farm
    wrapper's) and by strict ISO 8601 parsers."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


class ProgressPrinter:
    def __init__(self, json_lines: bool = False, graph=None, stream=None):
        self.json = json_lines
        self.graph = graph
        self.out = stream or sys.stdout
        self.err = sys.stderr
        self._tty = self.err.isatty()
        self._bars: Dict[str, tqdm] = {}
        self._tenths: Dict[str, int] = {}      # without a terminal: the last tenth of each node's work noted
        self._reader = True                    # False once stdout's reader has gone
        self._wall: Dict[str, Any] = {}        # node -> seconds its node_finished said; None: lazy
        self._ready: Dict[str, bool] = {}      # lazy nodes said ready -> whether 100% of their frames was said
        self._notes = True                     # the same for stderr
        self._began: Dict[str, float] = {}     # node -> monotonic time it started, for the pace of its work

    def _print(self, text: str) -> None:
        self._reader = self._reader and print_out(self.out, text)

    def note(self, text: str) -> None:
        self._notes = self._notes and print_out(self.err, text, through_tqdm=True)

    def _bar(self, ev: Dict[str, Any]) -> None:
        node, done, total = ev["node"], ev["done"], ev["total"]
        if self._ready.get(node):       # a later reader pulling its frames again: 100% was said, not 10%
            return
        if node in self._ready and total and done >= total:
            # A lazy node's "ready" line comes before its work, and the done line that stands for 100% of a
            # node's work was that one: `make run` left each of them at "60% (32/46)", as if stopped there.
            self._ready[node] = True
            self._close(node)
            self.note(f"  {node}: 100% ({done:g}/{total:g})")
            return
        if not self._tty:
            self._log_progress(ev)
            return
        bar = self._bars.get(ev["node"])
        if bar is None:
            bar = self._bars[ev["node"]] = tqdm(total=ev["total"], desc=f"  {ev['node']}",
                                                file=getattr(self.err, "raw", self.err),
                                                leave=False, dynamic_ncols=True, disable=not self._tty)
        if bar.total != ev["total"]:
            bar.total = ev["total"]
        bar.update(ev["done"] - bar.n)

    def _log_progress(self, ev: Dict[str, Any]) -> None:
        from nodes.generate.estimate import duration
        total, done, node = ev["total"], ev["done"], ev["node"]
        if not total or total <= 0 or not isinstance(done, (int, float)):
            return
        tenth = min(10, int(10 * done / total))
        spent = time.monotonic() - self._began.get(node, time.monotonic())
        left = spent / done * (total - done) if done > 0 else None
        if node not in self._tenths and done >= 1 and done < total and left is not None and left >= PACE_AFTER_S:
            # A sampler's first step on a CPU can take minutes, and the first tenth of its work an hour: say at
            # once what its pace means, measured, where the up-front estimate was only a figure.
            self._tenths[node] = 0
            self.note(f"  {node}: {done:g}/{total:g} done in {duration(spent)}; about {duration(left)} left at "
                      "this pace")
        if tenth > self._tenths.get(node, 0) and done < total:      # the done line says 100%
            self._tenths[node] = tenth
            pace = f", about {duration(left)} left" if left is not None and left >= PACE_AFTER_S else ""
            self.note(f"  {node}: {tenth * 10}% ({done:g}/{total:g}){pace}")

    def _close(self, node: str) -> None:
        self._tenths.pop(node, None)
        bar = self._bars.pop(node, None)
        if bar is not None:
            bar.close()

    def _clock(self) -> str:
        """' at HH:MM:SS' in a log; nothing on a terminal, where the bars run live."""
        return "" if self._tty else f" at {time.strftime('%H:%M:%S')}"

    def _name(self, nid: str) -> str:
        if self.graph is not None and nid in self.graph.nodes:
            return f"{nid} ({self.graph.nodes[nid].type})"
        return nid

    def __call__(self, ev: Dict[str, Any]) -> None:
        if self.json:
            ev = {k: v for k, v in ev.items() if k != "traceback" or v}
            self._print(json.dumps(ev, default=str))
            return
        kind = ev["event"]
        if kind == "node_progress":
            self._bar(ev)
        elif kind == "run_started":
            if not self._tty:
                self.note(f"started {now_text()}")
        elif kind == "node_started":
            self._began[ev["node"]] = time.monotonic()
            # A log (`2> shot.log` on a farm) read the next morning says when each node began and failed.
            self.note(f"> {self._name(ev['node'])}{self._clock()}")
        elif kind == "node_finished":
            self._close(ev["node"])
            # A lazy node returns at once and computes its frames as later nodes read them: its
            # "done (0.00s)" and the writer's "done (55.86s)" read as if saving were the slow part.
            lazy = ev.get("lazy") and not ev["cached"]
            if not ev["cached"]:
                self._wall[ev["node"]] = None if lazy else ev["seconds"]
            if lazy:
                self._ready[ev["node"]] = False
            how = "bypassed" if ev.get("bypassed") else "cached" if ev["cached"] else \
                "frames computed as they are read" if lazy else f"{ev['seconds']:.2f}s"
            self.note(f"  {ev['node']:<16} {'ready' if lazy else 'done'} ({how})")
        elif kind == "node_time":
            node, own = ev["node"], ev["seconds"] or 0.0
            if node in self._wall and self._wall[node] is None:
                # no reader pulled its frames (a Save that failed first): none were computed, in 0.00s
                if ev.get("frames", True):
                    self.note(f"  {node:<16} computed its frames in {own:.2f}s")
            elif node in self._wall and self._wall[node] - own > max(0.05, 0.2 * self._wall[node]):
                self.note(f"  {node:<16} {own:.2f}s of its own work; the rest of its {self._wall[node]:.2f}s "
                          "was computing upstream frames")
        elif kind == "node_failed":
            self._close(ev["node"])
            self.note(f"x {self._name(ev['node'])} failed{self._clock()}: {ev['message']}")
        elif kind == "node_skipped":
            self.note(f"- {ev['node']} skipped ({ev['because']} failed)")
        elif kind == "log":
            self.note(f"  {ev['node']}: {ev['message']}" if ev.get("node") else f"  {ev['message']}")
        elif kind == "run_finished":
            for node in list(self._bars):
                self._close(node)
            if ev.get("cancelled"):
                self.note("cancelled: no partial outputs were left behind")
                return
            for nid, res in ev["results"].items():
                if "path" in res:
                    self._print(f"wrote {res['path']}")
                else:
                    nums = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in res.items() if isinstance(v, (int, float, str)))
                    if nums:
                        self._print(f"{nid}: {nums}")
            status = "ok" if ev["ok"] else f"{len(ev['failed'])} node(s) failed"
            self.note(f"finished in {ev['seconds']:.2f}s{self._clock()}: {status}")
