"""math.switch: ComfyUI's Switch whose test is only known as the workflow runs (`a > 2048` on a picture's width, as
ComfyUI's LTX-2.3 IC-LoRA template resizes only a large picture). The side not picked is made as a clip, but none of
its frames is computed."""
import pytest

from app.comfyui import import_data
from graph_engine import Clip, node
from graph_engine.types import VIDEO

READ = []       # (node, first frame, stop) of each read of the test node's frames


@node("test.counted", category="Test")
def counted(ctx, video: VIDEO) -> VIDEO:
    """Passes its clip on, noting each read of its frames."""
    def read(a, b):
        READ.append((ctx.node_id, a, b))
        return video.frames(a, b)
    return video.with_(reader=read)


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
    assert entry.status == "approx" and "both of its inputs are made" in entry.notes[0]
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
    from graph_engine.executor import Executor
    from graph_engine.registry import Registry
    from graph_engine.workflow import parse_workflow
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))
    reg = Registry()
    reg.load_entry_points()
    reg.register(counted)
    wf, problems = parse_workflow(WF.format(width=width), None, reg)
    assert not problems
    READ.clear()
    res = Executor(reg, use_disk=False).run(wf)
    assert res.ok, res.failed
    clip = res.outputs["pick"]["value"]
    assert isinstance(clip, Clip) and clip.frames(0, 4).shape[0] == 4
    assert {n for n, _, _ in READ} == {picked}


def test_a_switch_with_nothing_on_the_side_picked_says_so():
    from graph_engine import NodeError
    from nodes.math.nodes import switch
    assert switch(None, on_false=None, on_true=5, switch=True) == {"value": 5}
    with pytest.raises(NodeError, match="switch is off and on_false has nothing linked"):
        switch(None, on_false=None, on_true=5, switch=False)
