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
from typing import Optional

from . import regex_child

_short = regex_child._short


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
        (the child is killed), ChildProcessError (its exit code) where the child stopped (its memory cap), OSError
        where no child could be started."""
        if self.proc is None:
            self._start()
        try:
            self.proc.stdin.write(json.dumps({"function": function, "args": list(args)}) + "\n")
            self.proc.stdin.flush()
            line = self.lines.get(timeout=seconds)
        except queue.Empty:
            self.close()
            raise TimeoutError from None
        except OSError:             # the child died before reading (its memory cap)
            line = ""
        if not line:
            raise ChildProcessError(self.close())
        return json.loads(line)

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
