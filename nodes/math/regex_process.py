"""Python's re run in a child process that is killed when its time is up: a pattern such as (a|aa)+$ backtracks for
hours on forty characters, and nothing stops re from outside in the same process (an alarm signal reaches the main
thread only; a length cap does not help). The importer folds a file's RegexExtract / RegexReplace through it, and
text.regex_extract / text.regex_replace run through it as a workflow runs."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from typing import Optional

from graph_engine.context import check_cancelled
from graph_engine.errors import Cancelled

from . import regex_child

_short = regex_child._short
# How often a wait for the child looks at the run's cancel
CANCEL_SECONDS = 0.1


class RegexChild:
    """One child process for many patterns (all of a file's, on import), asked one line at a time: a process each
    cost 45 ms (more on Windows), which thirty regex nodes spent before any matching, and which counted against the
    importer's time for them. A plain executable and a script, not fork, so it starts the same on Windows and macOS."""

    def __init__(self):
        self.proc: Optional[subprocess.Popen] = None

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", regex_child.__file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, encoding="ascii",
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))   # no console flashing up on Windows
        # a pipe has no read timeout on Windows, so a thread reads and the caller waits on the queue
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True).start()

    def ask(self, function: str, args, seconds: float) -> dict:
        """regex_child's `function` on `args`: its {"value"} or {"error"} answer. TimeoutError where `seconds` passed
        (the child is killed), Cancelled where the running node's run was cancelled meanwhile (killed too),
        ChildProcessError (its exit code) where the child stopped (its memory cap), OSError where no child could be
        started."""
        if self.proc is None:
            self._start()
        try:
            self.proc.stdin.write(json.dumps({"function": function, "args": list(args)}) + "\n")
            self.proc.stdin.flush()
        except OSError:             # the child died before reading (its memory cap)
            raise ChildProcessError(self.close()) from None
        line = self._answer(time.monotonic() + seconds)
        if not line:
            raise ChildProcessError(self.close())
        return json.loads(line)

    def _answer(self, deadline: float) -> str:
        """The child's next line, waited for in short slices that check the run's cancel: a chat template's minute
        was waited out whole after a cancel. The child is killed where the time is spent or the run cancelled."""
        while True:
            try:
                return self.lines.get(timeout=max(0.0, min(CANCEL_SECONDS, deadline - time.monotonic())))
            except queue.Empty:
                pass
            try:
                check_cancelled()
            except Cancelled:
                self.close()
                raise
            if time.monotonic() >= deadline:
                self.close()
                raise TimeoutError from None

    def call(self, function: str, args, seconds: float, given: str = "given to a pattern") -> str:
        """regex_child's `function` on `args`, given `seconds` (`given`: whose time they are, for the message); the
        child is killed when they are spent."""
        pattern = _short(str(args[1]))
        try:
            out = self.ask(function, args, seconds)
        except TimeoutError:
            raise ValueError(f"regex_pattern {pattern} did not finish in the {seconds:.3g} s {given} on its "
                             f"{len(args[0])} characters of text: it backtracks without end (as (a|aa)+$ does); "
                             f"simplify it") from None
        except ChildProcessError as e:
            raise ValueError(f"regex_pattern {pattern} stopped the process matching it (exit code {e.args[0]}); "
                             f"simplify it") from None
        except OSError as e:
            raise ValueError(f"regex_pattern {pattern}: no Python process could be started to match it ({e})") \
                from None
        if "error" in out:
            raise ValueError(out["error"])
        return out["value"]

    def close(self) -> Optional[int]:
        """Kill the child and reap it (no zombie is left); its exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        proc.kill()
        code = proc.wait()
        try:
            proc.stdin.close()
        except OSError:             # a broken pipe's unflushed request
            pass
        return code


def _pump(stream, lines) -> None:
    # the stream is closed here, at its end, not by close(): closed under this thread's read it raised in it
    with stream:
        for line in stream:
            lines.put(line)
    lines.put("")
