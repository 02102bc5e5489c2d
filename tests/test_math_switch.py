"""math.switch: ComfyUI's Switch whose test is only known as the workflow runs (`a > 2048` on a picture's width, as
ComfyUI's LTX-2.3 IC-LoRA template resizes only a large picture). As ComfyUI's inputs are lazy (comfy_extras/
nodes_logic.py's check_lazy_status asks only for the side picked), the nodes that feed only the other side do not
run at all (graph_engine's NodeSpec.reads)."""
import numpy as np
import pytest

from app.comfyui import import_data
from graph_engine import Clip, node
from graph_engine.types import MASK, VIDEO

READ = []       # (node, first frame, stop) of each read of the test node's frames
MASKS = []      # (node, mask) each test.takes_mask got
CALLS = []      # the test nodes run, in order


@node("test.counted", category="Test")
def counted(ctx, video: VIDEO) -> VIDEO:
    """Passes its clip on, noting each read of its frames."""
    CALLS.append(ctx.node_id)

    def read(a, b):
        READ.append((ctx.node_id, a, b))
        return video.frames(a, b)
    return video.with_(reader=read)


@node("test.takes_mask", category="Test")
def takes_mask(ctx, mask: MASK) -> VIDEO:
    """Notes the mask it got."""
    MASKS.append((ctx.node_id, mask))
    return Clip.from_array(np.zeros((1, 2, 2, 3), np.uint8))


def _picture_switch(width):
    """ComfyUI's API format: a picture `width` x 20, resized to 16 x 8 only when wider than 40."""
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": width, "height": 20, "batch_size": 1, "color": 0}},
            "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "ComfyMathExpression", "inputs": {"expression": "a > 40", "values.a": ["2", 0]}},
            "4": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                                                         "width": 16, "height": 8, "crop": "disabled"}},
            "5": {"class_type": "ComfySwitchNode", "inputs": {"switch": ["3", 2], "on_true": ["4", 0],
                                                              "on_false": ["1", 0]}},
            "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}}}


@pytest.mark.parametrize("width, size", [(51, (16, 8)), (30, (30, 20))])
def test_a_switch_on_a_pictures_width_picks_as_the_workflow_runs(width, size):
    from graph_engine.api import Session, load_workflow
    res = import_data(_picture_switch(width))
    assert not res.report.blocking
    entry = res.report.entries["5"]
    assert entry.status == "exact", entry.notes
    g = res.graph
    switch, = [n for n in g.nodes.values() if n.type == "math.switch"]
    assert g.inputs[switch.id] == {"switch": ("comfy_math_expression_3", "bool"),
                                   "on_true": ("image_scale_4", "video"), "on_false": ("empty_image_1", "video")}
    run = Session(device="cpu", use_disk=False).run(load_workflow(text=res.yaml), targets=[switch.id],
                                                    use_cache=False)
    assert run.ok, run.failed
    clip = run.outputs[switch.id]["value"]
    assert (clip.width, clip.height) == size


WF = """kinograph: 1
nodes:
  p: {{type: generate.test_pattern, params: {{frames: 4, width: {width}, height: 16}}}}
  size: {{type: video.size, inputs: {{video: p.video}}}}
  wide: {{type: math.expression, inputs: {{a: size.width}}, params: {{expression: a > 40}}}}
  small: {{type: video.resize, inputs: {{video: p.video}}, params: {{width: 8, height: 8}}}}
  big: {{type: test.counted, inputs: {{video: small.video}}}}
  kept: {{type: test.counted, inputs: {{video: p.video}}}}
  pick: {{type: math.switch, inputs: {{on_true: big.video, on_false: kept.video, switch: wide.bool}}}}
"""


@pytest.mark.parametrize("width, picked", [(48, "big"), (32, "kept")])
def test_the_side_not_picked_computes_no_frame(tmp_path, monkeypatch, width, picked):
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))
    res = _run(WF.format(width=width))
    assert res.ok, res.failed
    clip = res.outputs["pick"]["value"]
    assert isinstance(clip, Clip) and clip.frames(0, 4).shape[0] == 4
    assert {n for n, _, _ in READ} == {picked}


def test_a_switch_with_nothing_on_the_side_picked_says_so():
    from graph_engine import NodeError
    from nodes.math.nodes import switch
    assert switch(None, on_false=None, on_true=5, switch=True, refusal="") == {"value": 5}
    with pytest.raises(NodeError, match="switch is off and on_false has nothing linked"):
        switch(None, on_false=None, on_true=5, switch=False, refusal="")
    # a check (an unrolled loop's count past its passes) stops with its own words
    with pytest.raises(NodeError, match="^the count is past 16$"):
        switch(None, on_false=None, on_true=5, switch=False, refusal="the count is past 16")


@node("test.fails", category="Test")
def fails(ctx, video: VIDEO) -> VIDEO:
    """Fails, as a generation on a side whose model is missing would."""
    from graph_engine import NodeError
    raise NodeError("no model here")


def _workflow(text):
    """The workflow and a registry with the test nodes."""
    from graph_engine.registry import Registry
    from graph_engine.workflow import parse_workflow
    reg = Registry()
    reg.load_entry_points()
    reg.register(counted)
    reg.register(fails)
    reg.register(takes_mask)
    wf, problems = parse_workflow(text, None, reg)
    assert not problems
    return wf, reg


def _run(text, **kw):
    from graph_engine.executor import Executor
    wf, reg = _workflow(text)
    READ.clear()
    CALLS.clear()
    MASKS.clear()
    return Executor(reg, use_disk=False).run(wf, **kw)


@pytest.mark.parametrize("width, picked, unpicked", [(48, ["small", "big"], ["kept"]),
                                                     (32, ["kept"], ["small", "big"])])
def test_the_nodes_feeding_only_the_side_not_picked_do_not_run(tmp_path, monkeypatch, width, picked, unpicked):
    """ComfyUI runs neither the side not picked nor what feeds only it; what feeds both sides (p) runs, once."""
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))
    res = _run(WF.format(width=width))
    assert res.ok, res.failed
    assert sorted(res.unread) == sorted(unpicked)
    assert not set(res.executed) & set(unpicked) and set(picked) <= set(res.executed)
    assert {"p", "size", "wide", "pick"} <= set(res.executed)
    assert CALLS == [n for n in picked if n != "small"]


def test_a_failure_on_the_side_not_picked_stops_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))
    text = WF.replace("big: {{type: test.counted", "big: {{type: test.fails")
    res = _run(text.format(width=32))
    assert res.ok, res.failed
    assert sorted(res.unread) == ["big", "small"]
    res = _run(text.format(width=48))
    assert not res.ok and "no model here" in res.failed["big"] and res.skipped == ["pick"]


def test_a_switch_whose_test_fails_runs_neither_side(tmp_path, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))
    res = _run(WF.replace("expression: a > 40", "expression: 1 / (a - a) > 0").format(width=32))
    assert "wide" in res.failed and res.skipped == ["pick"]
    assert sorted(res.unread) == ["big", "kept", "small"] and CALLS == []


def test_a_node_asked_for_runs_though_only_the_side_not_picked_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))
    res = _run(WF.format(width=32), targets=["pick", "big"])
    assert res.ok and "big" in res.executed and res.unread == []


def test_the_switch_decides_before_the_sides_are_reached():
    """The plan puts what the switch's test needs first, so the sides come after it is known."""
    from graph_engine.plan import plan_run
    order = plan_run(*_workflow(WF.format(width=32))).order
    assert max(order.index(n) for n in ("p", "size", "wide")) < min(order.index(n) for n in ("small", "big", "kept"))


def test_the_editor_badges_the_nodes_not_picked_as_not_run(tmp_path, monkeypatch):
    """The editor's badge of a node the switch did not pick says why it did not run; it stayed 'queued', then
    read 'skipped: the run ended before it' when the run finished."""
    from PySide6.QtWidgets import QApplication
    from app.editor.runner import RunController
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))
    QApplication.instance() or QApplication([])
    events = []
    res = _run(WF.format(width=32), on_event=events.append)
    assert sorted(res.unread) == ["big", "small"]
    runs = RunController(_workflow(WF.format(width=32))[1])
    try:
        for ev in events:
            runs._on_event(0, ev)
        for n in ("small", "big"):
            st = runs.status[n]
            assert st.state == "skipped" and "switch" in st.message, (n, st)
        # picked: its clip returned, not skipped ('streaming' while no node read its frames; the run's end, which
        # these events stop short of, makes it 'done')
        assert runs.status["kept"].state == "streaming"
    finally:
        runs.shutdown()


def test_a_switch_whose_output_decides_another_decides_before_its_own_sides(tmp_path, monkeypatch):
    """A switch (outer) whose test reads another switch's value (pick): pick's sides are among what decides outer,
    and the plan put them in their plain order there, before pick's own test; `small`, on pick's side not picked,
    ran."""
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))
    text = WF.format(width=32) + """  bw: {type: video.size, inputs: {video: pick.value}}
  narrow: {type: math.expression, inputs: {a: bw.width}, params: {expression: a > 20}}
  one: {type: test.counted, inputs: {video: p.video}}
  two: {type: test.counted, inputs: {video: p.video}}
  outer: {type: math.switch, inputs: {on_true: one.video, on_false: two.video, switch: narrow.bool}}
"""
    res = _run(text)
    assert res.ok, res.failed
    assert sorted(res.unread) == ["big", "small", "two"]
    assert res.outputs["outer"]["value"].width == 32


def test_a_picture_the_switch_passes_into_a_clip_input_arrives_as_a_one_frame_clip(tmp_path):
    """A loaded picture (IMAGE) through the switch into a node that takes a clip (utility_moge_depth_estimation's
    small-picture branch) arrives as a one-frame clip, as a direct link gives it; it arrived as the bare array
    ("'numpy.ndarray' object has no attribute 'length'")."""
    import cv2
    import numpy as np
    picture = np.zeros((8, 12, 3), np.uint8)
    picture[..., 1] = 200
    cv2.imwrite(str(tmp_path / "p.png"), picture)
    wf = (f"kinograph: 1\nnodes:\n  img: {{type: io.load_image, params: {{path: '{tmp_path / 'p.png'}'}}}}\n"
          "  pick: {type: math.switch, inputs: {on_false: img.image}, params: {switch: false}}\n"
          "  use: {type: test.counted, inputs: {video: pick.value}}\n")
    run = _run(wf, targets=["use"], keep=["use"])
    assert run.ok, run.failed
    clip = run.outputs["use"]["video"]
    assert clip.length == 1 and (clip.frames(0, 1)[0] == picture).all()


@pytest.mark.parametrize("side, named", [("mask", "float32 array (8, 12)"), ("alpha", "float32 array (8, 12)")])
def test_what_the_switch_passes_into_a_clip_input_that_is_no_picture_is_named_not_converted(tmp_path, side, named):
    """Only a picture becomes a one-frame clip: a mask through the switch into a clip input fails that node with a
    message naming what arrived (the run stopped with Clip.from_array's ValueError, a traceback)."""
    import cv2
    import numpy as np
    cv2.imwrite(str(tmp_path / "p.png"), np.zeros((8, 12, 3), np.uint8))
    wf = (f"kinograph: 1\nnodes:\n  img: {{type: io.load_image, params: {{path: '{tmp_path / 'p.png'}'}}}}\n"
          f"  pick: {{type: math.switch, inputs: {{on_false: img.{side}}}, params: {{switch: false}}}}\n"
          "  use: {type: test.counted, inputs: {video: pick.value}}\n")
    run = _run(wf, targets=["use"], keep=["use"])
    assert not run.ok and list(run.failed) == ["use"]
    assert named in run.failed["use"] and "pick.value" in run.failed["use"] and "clip" in run.failed["use"]
    assert CALLS == []


def test_a_picture_the_switch_passes_into_a_mask_input_arrives_as_its_mask(tmp_path):
    """Into a MASK input the switch's picture converts as a direct IMAGE link does (Rec. 709 luma / 255), not as the
    bare 3-channel array; a mask passed on stays the same mask."""
    import cv2
    import numpy as np
    picture = np.zeros((4, 6, 3), np.uint8)
    picture[:, :3] = 255
    cv2.imwrite(str(tmp_path / "p.png"), picture)
    wf = (f"kinograph: 1\nnodes:\n  img: {{type: io.load_image, params: {{path: '{tmp_path / 'p.png'}'}}}}\n"
          "  pick: {type: math.switch, inputs: {on_false: img.image}, params: {switch: false}}\n"
          "  keep: {type: math.switch, inputs: {on_false: img.alpha}, params: {switch: false}}\n"
          "  a: {type: test.takes_mask, inputs: {mask: pick.value}}\n"
          "  b: {type: test.takes_mask, inputs: {mask: keep.value}}\n")
    run = _run(wf, targets=["a", "b"])
    assert run.ok, run.failed
    got = dict(MASKS)
    want = np.zeros((4, 6), np.float32)
    want[:, :3] = 1.0
    assert got["a"].shape == (4, 6) and np.allclose(got["a"], want, atol=1e-6)
    assert got["b"].shape == (4, 6) and (got["b"] == 1.0).all()
