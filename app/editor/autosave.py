"""Autosave and crash recovery.

Every `interval` (30 s by default) a document changed since the last autosave is written
to a recovery file in `<config>/recovery/`, atomically (QSaveFile), so a crash loses at most
that interval of edits and never leaves half a file. The first line records which file it
belongs to; a QLockFile held while the editor lives tells a crashed session's leftovers
(lock owner dead: offer them) from another running editor's (lock alive: leave them)."""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from PySide6.QtCore import QLockFile, QObject, QTimer, Signal

from graph_engine import config
from graph_engine.atomic import special_file
from graph_engine.workflow import UNSAVED, Problem, read_text

from .document import Document, write_atomic

HEADER = "# kinograph-recovery "
INTERVAL_MS = 30_000


def recovery_dir() -> Path:
    return config.config_dir() / "recovery"


@dataclass
class Recovery:
    file: Path
    path: Optional[Path]           # the workflow it belongs to, None for an untitled one
    saved: float                   # time.time() of the autosave
    # What the document knew about its file (Document.on_disk, .unread), so Save after recovery
    # still asks before replacing a file changed since, or one with parts it could not read.
    on_disk: Optional[str] = None
    unread: List[Tuple[int, str]] = field(default_factory=list)
    origin: Optional[Path] = None  # the render or ComfyUI file an untitled workflow was read from
    seeds_as_read: bool = False    # a ComfyUI import not run yet: its first run keeps the file's seeds
    view: Optional[Tuple[float, float, float]] = None   # (x, y, zoom) of the canvas' top left when autosaved

    def text(self) -> str:
        return read_text(self.file)     # as File > Open reads: a size limit, and undecodable bytes said as such

    def discard(self) -> None:
        # Only ever Kinograph's own files: a recovery is found by globbing the recovery folder it writes to.
        for p in (self.file, Path(str(self.file) + ".lock")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def _lock(file: Path) -> QLockFile:
    lock = QLockFile(str(file) + ".lock")
    lock.setStaleLockTime(0)       # stale only when its owner process is gone
    return lock


class Autosaver(QObject):
    saved = Signal(str)
    failed = Signal(str)           # what went wrong and what to do, once per run of failures
    viewMoved = Signal(tuple)      # the canvas' (x, y, zoom), at a tick where it moved: a crash skips the close

    def __init__(self, doc: Document, interval_ms: int = INTERVAL_MS, folder: Optional[Path] = None):
        super().__init__(doc)
        self.doc = doc
        self.folder = Path(folder) if folder else recovery_dir()
        self._saved_revision = doc.revision
        self._file: Optional[Path] = None
        self._lock: Optional[QLockFile] = None
        self._failing = False
        # What is typed into a field but not yet applied ((node, parameter, text) each; ("_notes", note, text)
        # for a sticky note): a prompt is applied when the field is left, and one typed for minutes while a
        # render ran was not in the autosave.
        self.typed: Callable[[], List[Tuple[str, str, str]]] = list
        self._saved_typed: List[Tuple[str, str, str]] = []
        # Where the canvas is, (x, y, zoom) of its top left: recovered work opened at the default view, the artist
        # hunting for the node they were on.
        self.view: Callable[[], Optional[Tuple[float, float, float]]] = lambda: None
        self._saved_view: Optional[Tuple[float, float, float]] = None
        self._seen_view: Optional[Tuple[float, float, float]] = None
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.tick)
        self.timer.start()
        doc.pathChanged.connect(self._moved)
        doc.modifiedChanged.connect(self._clean_saved)

    def _name(self) -> str:
        # One file per open document, not per workflow path: a file open in two windows has two
        # sets of edits, and each must survive a crash (and the other's save).
        own = f"{os.getpid()}-{id(self.doc):x}"
        if self.doc.path is not None:
            digest = hashlib.sha1(str(self.doc.path).encode()).hexdigest()[:10]
            return f"{self.doc.path.stem}-{digest}-{own}.yaml"
        return f"untitled-{own}.yaml"

    def tick(self) -> None:
        view = self.view()
        if view is not None and view != self._seen_view:
            self._seen_view = view
            self.viewMoved.emit(view)
        typed = self.typed()
        if not self.doc.modified and not typed:
            if self._file is not None:
                self.discard()      # the typing autosaved was taken back: a crash has nothing to offer now
            return
        if self.doc.revision != self._saved_revision or typed != self._saved_typed or view != self._saved_view:
            try:
                self.save_now()
            except OSError as e:
                # A timer has no caller to raise to: say it (once, not every interval), since
                # the user counts on the autosave.
                if not self._failing:
                    self._failing = True
                    self.failed.emit(f"autosave cannot write to {self.folder} ({e.strerror or e}): your changes "
                                     f"are not protected against a crash until it can. Save the workflow "
                                     f"(Ctrl+S), and make that folder writable or free some disk space.")
                return
            self._failing = False

    def save_now(self) -> Path:
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file = self.folder / self._name()
            self._lock = _lock(self._file)
            self._lock.tryLock(0)
        meta = {"path": str(self.doc.path) if self.doc.path else None, "pid": os.getpid(), "saved": time.time(),
                "on_disk": self.doc.on_disk, "unread": [[p.line, p.message] for p in self.doc.unread],
                "origin": str(self.doc.origin) if self.doc.origin else None, "seeds_as_read": self.doc.seeds_as_read}
        view = self.view()
        if view is not None:
            meta["view"] = list(view)
        typed, graph = self.typed(), None
        if typed:
            graph = self.doc.graph.copy()
            for nid, name, text in typed:
                note = (graph.ui.get("_notes") or {}).get(name) if nid == "_notes" else None
                if isinstance(note, dict):
                    note["text"] = text
                elif nid == "_meta" and name in ("name", "description"):
                    setattr(graph, name, text)      # the workflow page's name or description
                elif nid in graph.nodes:
                    graph.nodes[nid].params[name] = text
        write_atomic(self._file, (HEADER + json.dumps(meta) + "\n" + self.doc.text(graph=graph)).encode("utf-8"))
        self._saved_revision, self._saved_typed, self._saved_view = self.doc.revision, typed, view
        self.saved.emit(str(self._file))
        return self._file

    def adopt(self, file: Path) -> None:
        """Take over a recovered session's file: it stays (locked, so no other editor offers it)
        until this document is saved or its changes are discarded, and is updated meanwhile."""
        self.discard()
        self._file = Path(file)
        self._lock = _lock(self._file)
        self._lock.tryLock(0)

    def discard(self) -> None:
        """The document is saved or its changes were thrown away: no recovery needed."""
        if self._file is not None:
            Recovery(self._file, None, 0).discard()
        if self._lock is not None:
            self._lock.unlock()
        self._file, self._lock = None, None
        self._saved_revision, self._saved_typed = self.doc.revision, []

    def _moved(self, _path) -> None:
        self.discard()

    def _clean_saved(self, modified: bool) -> None:
        if not modified:
            self.discard()

    def stop(self) -> None:
        self.timer.stop()
        self.discard()


def find_recoveries(folder: Optional[Path] = None) -> List[Recovery]:
    """Recovery files whose editor is no longer running, newest first."""
    folder = Path(folder) if folder else recovery_dir()
    found = []
    for f in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if special_file(f):
            continue                # a named pipe: opening it waited for ever, before the window showed
        lock = _lock(f)
        if not lock.tryLock(0):
            continue                # a live editor owns it
        lock.unlock()
        meta = _header(f)
        unread = [(u[0], str(u[1])) for u in meta.get("unread") or [] if isinstance(u, list) and len(u) == 2
                  and isinstance(u[0], int)]
        on_disk = meta.get("on_disk")
        found.append(Recovery(f, _path(meta.get("path")), _time(meta.get("saved"), f),
                              on_disk if isinstance(on_disk, str) else None, unread, _path(meta.get("origin")),
                              meta.get("seeds_as_read") is True, _view(meta.get("view"))))
    found.sort(key=lambda r: -r.saved)
    return found


def _header(f: Path) -> dict:
    """A recovery file's first line, {} where it is not one this editor wrote (a crash mid-write elsewhere, a file
    put there by hand): a list there, a time or line number that was no number, stopped the editor at every start,
    before its window showed."""
    try:
        with open(f, encoding="utf-8") as fh:
            first = fh.readline(1 << 16)
        meta = json.loads(first[len(HEADER):]) if first.startswith(HEADER) else {}
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _time(value, f: Path) -> float:
    """The autosave's time from its header, else the file's; one time.localtime cannot show is no time."""
    for t in (value, f.stat().st_mtime):
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            try:
                time.localtime(t)
                return float(t)
            except (OverflowError, OSError, ValueError):
                pass
    return 0.0


def _view(value) -> Optional[Tuple[float, float, float]]:
    """(x, y, zoom) as the header holds it; None for anything else (a file edited by hand)."""
    ok = (isinstance(value, list) and len(value) == 3
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    return (float(value[0]), float(value[1]), float(value[2])) if ok and value[2] > 0 else None


def _path(value) -> Optional[Path]:
    return Path(value) if isinstance(value, str) and value else None


def recover(rec: Recovery, registry=None) -> Document:
    """A document with the recovered content, marked modified, pointing at its original file.
    The recovery file is left for the window's autosaver to adopt (see `Autosaver.adopt`)."""
    doc = Document.from_text(rec.text(), rec.path, registry)
    for p in doc.problems:
        # Lines of the autosave (its header first, the graph as edited), not of the file at rec.path: the Log named
        # 'tp.yaml:11' for a line the artist's file holds something else at. Named by node, as an import's are.
        if p.file == str(rec.path):
            p.file, p.line = UNSAVED, 0
    doc.on_disk = rec.on_disk
    doc.origin = rec.origin         # its relative paths are taken from there, as before the crash
    # An imported ComfyUI file's seeds made its picture: its first run keeps them, recovered or not (the recovered
    # import's first run drew new ones)
    doc.seeds_as_read = rec.seeds_as_read
    doc.saved_view = rec.view       # opened where the canvas was, not at the default view
    doc.render_dir = doc.workflow.render_base if rec.path is None else None
    doc.unread = [Problem(str(rec.path), line, None, message, True) for line, message in rec.unread]
    doc.undo.resetClean()
    return doc
