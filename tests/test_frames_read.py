"""node_time's `frames` (review of editor40): whether a later node got frames of a lazy clip node. It was set as
soon as a reader was asked, so in pattern -> greedy -> resize -> Save with greedy's frames failing, greedy and the
resize were said to have 'computed their frames in 0.00s' (CLI) and the resize was badged a green 'done' (editor),
in a run where neither made a frame."""
import io
from pathlib import Path

from graph_engine.executor import Executor
from graph_engine.node_api import build_spec
from graph_engine.registry import Registry, default_registry
from graph_engine.types import VIDEO
from graph_engine.workflow import parse_workflow

from app.progress import ProgressPrinter


def _greedy(ctx, video: VIDEO) -> VIDEO:
    """Passes frames on; computing them runs out of memory when a later node reads them."""
    def read(a, b):
        raise MemoryError("Unable to allocate 24.9 MiB for an array with shape (1, 2160, 3840, 3)")
    return video.with_(reader=read)


def _registry():
    reg = Registry()
    reg.specs.update(default_registry().specs)
    reg.add(build_spec(_greedy, "test.greedy", title="", category="Test", version=1, outputs=None, output=False,
                       expensive=False, migrations={}, device="cpu", temporal_radius=None))
    return reg


def _run(tmp_path: Path, heavy: str):
    """pattern -> `heavy` -> resize -> save; the run's events."""
    text = f"""
kinograph: 1
nodes:
  pat: {{type: generate.test_pattern, params: {{frames: 4, width: 32, height: 32}}}}
  heavy: {{type: {heavy}, inputs: {{video: pat.video}}, params: {{width: 24, height: 24}}}}
  res: {{type: video.resize, inputs: {{video: heavy.video}}, params: {{width: 16, height: 16}}}}
  save: {{type: io.save_video, inputs: {{video: res.video}}, params: {{path: o.mkv, codec: ffv1}}}}
"""
    if heavy == "test.greedy":
        text = text.replace(", params: {width: 24, height: 24}", "", 1)
    reg = _registry()
    wf, _ = parse_workflow(text, path=tmp_path / "w.yaml", registry=reg)
    events = []
    Executor(reg).run(wf, on_event=events.append)
    return events


def test_clip_nodes_whose_frames_failed_are_not_said_to_have_computed_them(tmp_path, capsys):
    events = _run(tmp_path, "test.greedy")
    failed = [e for e in events if e["event"] == "node_failed"]
    assert [(e["node"], e.get("frames_of")) for e in failed] == [("save", "heavy")]
    frames = {e["node"]: e["frames"] for e in events if e["event"] == "node_time"}
    # the pattern was never read; greedy and the resize were asked and gave nothing
    assert frames.get("pat", False) is False and frames["heavy"] is False and frames["res"] is False, frames
    printer = ProgressPrinter(stream=io.StringIO())
    for e in events:
        printer(e)
    said = capsys.readouterr().err
    assert "heavy (test.greedy), computing the frames save pulled" in said and "computed its frames" not in said, said


def test_clip_nodes_whose_frames_were_read_say_so(tmp_path):
    """The reference: the same chain with a resize where greedy stood writes, and every clip node gave frames."""
    events = _run(tmp_path, "video.resize")
    assert events[-1]["ok"], events[-1]
    frames = {e["node"]: e["frames"] for e in events if e["event"] == "node_time"}
    assert frames["pat"] and frames["heavy"] and frames["res"], frames
