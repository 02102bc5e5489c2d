"""What the last stop noticed and left alone (leftalone41): the record of written files under concurrent writers,
atomic writes that survive a power cut, cached clips past the open-file bound, the chat-template child's cancel."""
import threading


def test_an_output_recorded_while_another_process_compacts_the_record_is_kept(tmp_path, monkeypatch):
    """The record of written files is compacted by reading it and writing it again whole: an output recorded by
    another process (a farm's second worker, the editor beside `kinograph run`) between the read and the write was
    lost, and Kinograph later refused to replace that file as someone else's. Compaction and appends take one lock."""
    from graph_engine import atomic
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "old.txt").write_text("kept")
    atomic.record_written(tmp_path / "old.txt")
    ledger = atomic._ledger()
    appended = threading.Event()
    entries = atomic._entries

    def slow_entries(path):
        yield from entries(path)
        appended.wait(0.3)          # the other writer's append lands here, or waits for the lock

    monkeypatch.setattr(atomic, "_entries", slow_entries)
    compacting = threading.Thread(target=atomic._compact, args=(ledger,))
    compacting.start()
    (tmp_path / "new.txt").write_text("also kept")
    other = threading.Thread(target=lambda: (atomic.record_written(tmp_path / "new.txt"), appended.set()))
    other.start()
    compacting.join()
    other.join()
    monkeypatch.setattr(atomic, "_entries", entries)
    assert atomic.written_by_kinograph(tmp_path / "old.txt") and atomic.written_by_kinograph(tmp_path / "new.txt")
