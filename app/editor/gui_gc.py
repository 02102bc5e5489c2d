"""Python's cycle collector run on the GUI thread only. Left automatic, it runs in whichever thread's allocation
crosses its threshold: in the editor mostly the engine's run thread (it allocates the most), which then destroyed
whatever Qt objects were cyclic garbage there: a Document (always in a cycle) with its autosave timer, a closed
window and its timers. Qt objects must be destroyed on their own thread ('QObject::~QObject: Timers cannot be stopped
from another thread', and a widget destroyed off the GUI thread can crash)."""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

from PySide6.QtCore import QObject, QTimer

EVERY_MS = 500      # garbage waits at most this long; a collection of the young generation costs microseconds


class GuiThreadCollector(QObject):
    """Collects, from a GUI-thread timer, the generations whose counts crossed gc's own thresholds, as gc would
    have done automatically, with automatic collection turned off meanwhile."""

    def __init__(self, parent: QObject):
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setInterval(EVERY_MS)
        self.timer.timeout.connect(self.collect)

    def collect(self) -> None:
        thresholds, counts = gc.get_threshold(), gc.get_count()
        generation = max((g for g in range(3) if thresholds[g] and counts[g] > thresholds[g]), default=-1)
        if generation >= 0:
            gc.collect(generation)


@contextmanager
def collected_on_gui_thread(app: QObject) -> Iterator[GuiThreadCollector]:
    """Inside, garbage is collected on the GUI thread only; gc's automatic collection is as it was after (a test
    calling the editor's main in its own process gets it back)."""
    was = gc.isenabled()
    collector = GuiThreadCollector(app)
    gc.disable()
    collector.timer.start()
    try:
        yield collector
    finally:
        collector.timer.stop()
        collector.deleteLater()
        if was:
            gc.enable()
