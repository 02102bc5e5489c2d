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

EVERY_MS = 500      # garbage waits at most this long; a collection of the young generations costs microseconds


class GuiThreadCollector(QObject):
    """Collects, from a GUI-thread timer, what gc would have collected automatically, with automatic collection
    turned off meanwhile: the oldest generation whose count crossed gc's threshold, and the oldest one (every
    tracked object: 250 ms and more once torch, diffusers and transformers are imported) only once the objects
    that outlived the middle one since the last full collection are a quarter of those that outlived it, CPython's
    own rule (gcmodule.c, long_lived_pending); without it every 121st busy tick froze the window."""

    def __init__(self, parent: QObject):
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setInterval(EVERY_MS)
        self.timer.timeout.connect(self.collect)
        self.long_lived = len(gc.get_objects(2))
        self.pending = 0

    def collect(self) -> None:
        thresholds, counts = gc.get_threshold(), gc.get_count()
        for generation in (2, 1, 0):
            if not thresholds[generation] or counts[generation] <= thresholds[generation]:
                continue
            if generation == 2 and self.pending < self.long_lived / 4:
                continue
            if generation == 1:     # what survives it joins the old generation
                young = len(gc.get_objects(0)) + len(gc.get_objects(1))
                self.pending += max(0, young - gc.collect(1))
            else:
                gc.collect(generation)
            if generation == 2:
                self.long_lived, self.pending = len(gc.get_objects(2)), 0
            return


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
