"""app.progress: tqdm bars on a terminal, plain lines in a log."""
import io

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
    assert run_events(monkeypatch, io.StringIO()) == "> up\n  up               done (1.50s)\n"
