"""What happened to every ComfyUI node, for the person who imported it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

EXACT, APPROX, UNMAPPED, UI = "exact", "approx", "unmapped", "ui"
LABELS = {EXACT: "mapped exactly", APPROX: "mapped approximately", UNMAPPED: "NOT MAPPED", UI: "editor only"}
STATUS_WIDTH = 22          # the status column of a report's lines
EXIT_EXACT, EXIT_UNMAPPED, EXIT_APPROX = 0, 2, 3


@dataclass
class Entry:
    comfy_id: str
    class_type: str
    title: str
    status: str
    kinograph: List[str]
    notes: List[str] = field(default_factory=list)
    runs: bool = True
    bypassable: bool = False        # unmapped, but passes a value on: `--bypass-unmapped` can bypass it

    def name(self) -> str:
        name = f"{self.class_type} #{self.comfy_id}" + (f" \"{self.title}\"" if self.title else "")
        return name + (f" -> {', '.join(self.kinograph)}" if self.kinograph else "")

    def why(self) -> str:
        return "; ".join(n for n in self.notes if n)

    def line(self) -> str:
        return f"{LABELS[self.status]:<{STATUS_WIDTH}} {self.name()}" + (f": {self.why()}" if self.why() else "")


@dataclass
class Report:
    entries: Dict[str, Entry] = field(default_factory=dict)
    remarks: List[str] = field(default_factory=list)      # about the file as a whole, shown first
    source: str = "ComfyUI"                                # what the file came from: ComfyUI, Deforum

    def add(self, e: Entry) -> None:
        self.entries[e.comfy_id] = e

    def note_on(self, kinograph_id: str, note: str) -> None:
        for e in self.entries.values():
            if kinograph_id in e.kinograph:
                e.notes.append(note)
                if e.status == EXACT:
                    e.status = APPROX
                return

    def count(self, status: str) -> int:
        return sum(1 for e in self.entries.values() if e.status == status)

    @property
    def blocking(self) -> List[Entry]:
        """Unmapped nodes that would run in ComfyUI: the import cannot stand in for them."""
        return [e for e in self.entries.values() if e.status == UNMAPPED and e.runs]

    @property
    def exit_code(self) -> int:
        if self.blocking:
            return EXIT_UNMAPPED
        return EXIT_APPROX if self.count(APPROX) or self.count(UNMAPPED) else EXIT_EXACT

    def summary(self) -> str:
        parts = [f"{self.count(s)} {LABELS[s]}" for s in (EXACT, APPROX, UNMAPPED, UI) if self.count(s)]
        return ", ".join(parts) or "nothing to import"

    def text(self) -> str:
        order = {UNMAPPED: 0, APPROX: 1, EXACT: 2, UI: 3}

        def key(e):
            return order[e.status], int(e.comfy_id) if e.comfy_id.isdecimal() else 1 << 30, e.comfy_id
        # Nodes with the same status and explanation share one line, where the first of them stands: Impact
        # Pack's detector, SAM loader and detailer each repeated the same six lines of what to use instead.
        alike: Dict[tuple, List[Entry]] = {}
        for e in sorted(self.entries.values(), key=key):
            alike.setdefault(("alike", e.status, e.why()) if e.why() else ("one", e.comfy_id), []).append(e)
        lines = [g[0].line() if len(g) == 1 else
                 f"{LABELS[g[0].status]:<{STATUS_WIDTH}} {len(g)} nodes: {', '.join(e.name() for e in g)}: {g[0].why()}"
                 for g in alike.values()]
        return "\n".join([f"note: {r}" for r in self.remarks] + lines)
