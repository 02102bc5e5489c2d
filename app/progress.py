"""How `kinograph run` shows engine events: progress lines for people, JSON lines for programs."""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Dict


class ProgressPrinter:
    def __init__(self, json_lines: bool = False, graph=None, stream=None):
        self.json = json_lines
        self.graph = graph
        self.out = stream or sys.stdout
        self.err = sys.stderr
        self._last_draw = 0.0
        self._tty = self.err.isatty()

    def note(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def _name(self, nid: str) -> str:
        if self.graph is not None and nid in self.graph.nodes:
            return f"{nid} ({self.graph.nodes[nid].type})"
        return nid

    def __call__(self, ev: Dict[str, Any]) -> None:
        if self.json:
            ev = {k: v for k, v in ev.items() if k != "traceback" or v}
            print(json.dumps(ev, default=str), file=self.out, flush=True)
            return
        kind = ev["event"]
        if kind == "node_progress":
            now = time.monotonic()
            if now - self._last_draw < 0.1 and ev["done"] < ev["total"]:
                return
            self._last_draw = now
            total = ev["total"] or 1
            frac = min(1.0, ev["done"] / total)
            bar = "#" * int(frac * 30)
            line = f"  {ev['node']:<16} [{bar:<30}] {ev['done']:g}/{ev['total']:g}"
            if self._tty:
                print("\r" + line, end="", file=self.err, flush=True)
        elif kind == "node_started":
            print(f"> {self._name(ev['node'])}", file=self.err, flush=True)
        elif kind == "node_finished":
            if self._tty:
                print("\r\033[K", end="", file=self.err)
            how = "bypassed" if ev.get("bypassed") else "cached" if ev["cached"] else f"{ev['seconds']:.2f}s"
            print(f"  {ev['node']:<16} done ({how})", file=self.err, flush=True)
        elif kind == "node_failed":
            if self._tty:
                print("\r\033[K", end="", file=self.err)
            print(f"x {self._name(ev['node'])} failed: {ev['message']}", file=self.err, flush=True)
        elif kind == "node_skipped":
            print(f"- {ev['node']} skipped ({ev['because']} failed)", file=self.err, flush=True)
        elif kind == "log":
            print(f"  {ev['node']}: {ev['message']}", file=self.err, flush=True)
        elif kind == "run_finished":
            if ev.get("cancelled"):
                print("cancelled: no partial outputs were left behind", file=self.err, flush=True)
                return
            for nid, res in ev["results"].items():
                if "path" in res:
                    print(f"wrote {res['path']}", file=self.out, flush=True)
                else:
                    nums = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in res.items() if isinstance(v, (int, float, str)))
                    if nums:
                        print(f"{nid}: {nums}", file=self.out, flush=True)
            status = "ok" if ev["ok"] else f"{len(ev['failed'])} node(s) failed"
            print(f"finished in {ev['seconds']:.2f}s: {status}", file=self.err, flush=True)
