"""app.progress: tqdm bars on a terminal, plain lines in a log."""
import io
import re

from app.progress import ProgressPrinter


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_events(monkeypatch, stream):
    monkeypatch.setattr("sys.stderr", stream)
    p = ProgressPrinter(stream=io.StringIO())
    p({"event": "node_started", "node": "up"})
    for done in range(11):
        p({"event": "node_progress", "node": "up", "done": done, "total": 10})
    p({"event": "node_finished", "node": "up", "cached": False, "seconds": 1.5})
    return stream.getvalue()


def test_a_terminal_gets_a_bar_then_the_done_line(monkeypatch):
    text = run_events(monkeypatch, Terminal())
    # tqdm draws the bar (and redraws at most every 0.1 s), then clears it for the done line.
    assert "up:   0%|" in text and "0/10 [" in text
    assert text.rstrip().endswith("up               done (1.50s)")


def test_a_log_gets_lines_only(monkeypatch):
    """A log gets no bar; it got nothing at all between '> up' and 'done', so a node running for hours
    on a farm looked stuck. It gets a line at each tenth of the work now (the done line stands for 100%)."""
    tenths = "".join(f"  up: {n}0% ({n}/10)\n" for n in range(1, 10))
    text = run_events(monkeypatch, io.StringIO())
    assert re.fullmatch(r"> up at \d\d:\d\d:\d\d\n" + re.escape(tenths + "  up               done (1.50s)\n"), text)


def test_a_log_says_when_the_run_and_each_node_started_failed_and_finished(monkeypatch):
    """`kinograph run shot.yaml 2> shot.log` on a farm: read in the morning, the log said how long things took
    but not when anything happened, so a failure could not be matched to the farm's own records. A log now
    carries the date the run started and the time each node started and failed and the run ended; a terminal,
    where the bars run live, does not."""
    for stream, timed in ((io.StringIO(), True), (Terminal(), False)):
        monkeypatch.setattr("sys.stderr", stream)
        p = ProgressPrinter(stream=io.StringIO())
        p({"event": "run_started", "nodes": ["save"]})
        p({"event": "node_started", "node": "save"})
        p({"event": "node_failed", "node": "save", "message": "the disk is full"})
        p({"event": "run_finished", "ok": False, "cancelled": False, "results": {}, "failed": {"save": "x"},
           "seconds": 2.5})
        clock = r" at \d\d:\d\d:\d\d" if timed else ""
        lines = [r"started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"] if timed else []
        lines += [f"> save{clock}", f"x save failed{clock}: the disk is full", f"finished in 2.50s{clock}: 1 node\\(s\\) failed"]
        assert re.fullmatch("\n".join(lines) + "\n", stream.getvalue()), stream.getvalue()


def test_a_log_gets_each_tenth_once_however_many_reports_come(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    p = ProgressPrinter(stream=io.StringIO())
    for done in range(0, 1001, 7):
        p({"event": "node_progress", "node": "save", "done": done, "total": 1000})
    p({"event": "node_progress", "node": "save", "done": 1000, "total": 1000})
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"  save: {n}0%" for n in range(1, 10)]
    assert lines[0] == "  save: 10% (105/1000)"


def test_lazy_nodes_say_when_their_frames_were_computed(monkeypatch):
    """`make run` printed 'paint done (0.00s)' for a node whose frames took 5 s, and 'save done
    (55.86s)', as if saving were the slow part: a lazy node's frames are computed as the writer reads
    them. Its line now says so, and the time each node's own work took follows the run."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    p = ProgressPrinter(stream=io.StringIO())
    p({"event": "node_finished", "node": "paint", "cached": False, "seconds": 0.001, "lazy": True})
    p({"event": "node_finished", "node": "save", "cached": False, "seconds": 55.86, "lazy": False})
    p({"event": "node_finished", "node": "sample", "cached": True, "seconds": 0.0})
    for node, secs in (("paint", 5.2), ("save", 0.32), ("sample", 0.0)):
        p({"event": "node_time", "node": node, "seconds": secs})
    assert err.getvalue().splitlines() == [
        "  paint            ready (frames computed as they are read)",
        "  save             done (55.86s)",
        "  sample           done (cached)",
        "  paint            computed its frames in 5.20s",
        "  save             0.32s of its own work; the rest of its 55.86s was computing upstream frames"]


def test_a_lazy_node_no_reader_pulled_is_not_said_computed(monkeypatch):
    """A Save that failed before reading a frame: `kinograph run` said 'paint computed its frames in 0.00s'."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    p = ProgressPrinter(stream=io.StringIO())
    p({"event": "node_finished", "node": "paint", "cached": False, "seconds": 0.001, "lazy": True})
    p({"event": "node_time", "node": "paint", "seconds": 0.0, "frames": False})
    assert "computed its frames" not in err.getvalue(), err.getvalue()


def test_a_lazy_node_says_when_all_its_frames_are_computed(monkeypatch):
    """`make run` showed 'paint: 60% (32/46)' and then the run's end: a lazy node's done line ('ready') comes
    before its work, and the 100% line was left out as if a done line followed. It now says 100% when its last
    frame is computed, once: a later reader pulling its frames again does not take it back to 10%."""
    for stream in (io.StringIO(), Terminal()):
        monkeypatch.setattr("sys.stderr", stream)
        p = ProgressPrinter(stream=io.StringIO())
        p({"event": "node_finished", "node": "paint", "cached": False, "seconds": 0.001, "lazy": True})
        for done in (32, 46, 16, 46):
            p({"event": "node_progress", "node": "paint", "done": done, "total": 46})
        lines = stream.getvalue().splitlines()
        assert lines[0] == "  paint            ready (frames computed as they are read)"
        assert lines[-1].endswith("  paint: 100% (46/46)") and stream.getvalue().count("100%") == 1
        if not isinstance(stream, Terminal):
            assert lines[1:] == ["  paint: 60% (32/46)", "  paint: 100% (46/46)"]
