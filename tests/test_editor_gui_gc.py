"""Qt objects that become garbage while the engine's run thread allocates are destroyed on the GUI thread: left to
Python's automatic collector, a Document with its autosave timer was destroyed in the run thread ('QObject::~QObject:
Timers cannot be stopped from another thread', which failed test_editor_probe38 under load)."""
import gc
import threading
import weakref

import pytest

from app.editor.compat import check_qt_binding

check_qt_binding()

from app.editor.autosave import Autosaver  # noqa: E402
from app.editor.document import Document  # noqa: E402
from app.editor.gui_gc import collected_on_gui_thread  # noqa: E402


def test_qt_garbage_made_while_a_thread_allocates_is_destroyed_on_the_gui_thread(qapp, qtlog, tmp_path):
    assert gc.isenabled()
    with collected_on_gui_thread(qapp) as collector:
        doc = Document()
        Autosaver(doc, 60_000, tmp_path)        # a child of the document, its timer running
        gone = weakref.ref(doc)
        del doc                                 # garbage, in a cycle: only a collection frees it
        assert gone() is not None

        def engine():        # what a run allocates: enough containers to cross every automatic threshold
            kept = []
            for _ in range(200_000):
                kept.append([])
        worker = threading.Thread(target=engine)
        worker.start()
        worker.join()
        assert gone() is not None, "collected in the other thread"
        ballast = [[] for _ in range(2 * gc.get_threshold()[0])]      # what the GUI thread allocates meanwhile
        collector.collect()                     # the timer's tick, on this thread
        assert gone() is None
        del ballast
    assert gc.isenabled()
    bad = [r.message for r in qtlog.records if "thread" in r.message]
    assert not bad, bad


@pytest.fixture
def qapp():
    from app.editor.main import _app
    return _app()


def test_a_tick_makes_a_full_collection_only_when_cpythons_own_rule_would(qapp):
    """A full collection walks every tracked object (250 ms once torch, diffusers and transformers are imported);
    gc itself runs one only when what outlived the middle generation since the last one is a quarter of the
    old generation. Counting middle-generation collections alone froze the window every 121st busy tick."""
    with collected_on_gui_thread(qapp) as collector:
        for _ in range(gc.get_threshold()[2] + 1):
            gc.collect(1)       # the old generation's count crosses its threshold, with nothing new kept
        full = gc.get_stats()[2]["collections"]
        ballast = [[] for _ in range(2 * gc.get_threshold()[0])]
        collector.collect()
        assert gc.get_stats()[2]["collections"] == full
        kept = []
        while gc.get_stats()[2]["collections"] == full:     # keep young objects until they are a quarter
            kept.append([[] for _ in range(2 * gc.get_threshold()[0])])
            collector.collect()
            assert len(kept) < 10_000, "never collected the old generation"
        del ballast
