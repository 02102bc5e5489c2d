"""A ComfyUI loop whose number of passes a node gives as the workflow runs (Wan Animate 2's template counts its
windows from the driving clip's length): unrolled on import to MAX_RUNNING_PASSES passes, the count picking which
run. Expectations are StartLoop / EndLoop (comfy_extras/nodes_looping.py) and ComfySwitchNode
(comfy_extras/nodes_logic.py) written out here, run on pictures, and compared with what the imported workflow makes."""
import imageio.v3 as iio
import numpy as np
import pytest

from app.comfyui import import_data
from app.comfyui.loops_running import MAX_RUNNING_PASSES


# -- ComfyUI's code, written out -----------------------------------------------------------------------------------
def _comfy_loop(count, initial, body, accumulate):
    """StartLoop (mode simple: range(num_iterations)) handing each pass (iteration_index, is_first, is_last,
    current_iteration_value), EndLoop taking (output_value, next_iteration_value): the last output, or (accumulate)
    every pass's, which RebatchImages joins with torch.cat."""
    values = range(count)
    carried, outs = initial, []
    for i, value in enumerate(values):
        out, carried = body(value, i == 0, i == len(values) - 1, carried)
        outs.append(out)
    return np.concatenate(outs) if accumulate else outs[-1]


def _comfy_body(value, first, last, carried):
    """The body of _api: ImageInvert of the carried pictures (1 - x), ComfySwitchNode on is_last picking the carried
    pictures (on_true) or the inverted ones (on_false); the inverted ones are carried on."""
    inverted = 255 - carried
    return (carried if last else inverted), inverted


def _api(accumulate):
    """A picture carried through a loop counted by the frames of a clip (GetImageSize's batch_size of a loaded
    video, as Wan Animate 2's count comes from its driving clip)."""
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
            "9": {"class_type": "LoadVideo", "inputs": {"file": "count.mp4"}},
            "10": {"class_type": "GetVideoComponents", "inputs": {"video": ["9", 0]}},
            "11": {"class_type": "GetImageSize", "inputs": {"image": ["10", 0]}},
            "2": {"class_type": "StartLoop", "inputs": {"mode": "simple", "mode.num_iterations": ["11", 2],
                                                        "initial_iteration_value": ["1", 0]}},
            "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 4]}},
            "4": {"class_type": "ComfySwitchNode", "inputs": {"switch": ["2", 2], "on_true": ["2", 4],
                                                              "on_false": ["3", 0]}},
            "6": {"class_type": "EndLoop", "inputs": {"output_value": ["4", 0], "next_iteration_value": ["3", 0],
                                                      "accumulate": accumulate}},
            "7": {"class_type": "RebatchImages", "inputs": {"images": ["6", 0], "batch_size": 4096}},
            "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x"}}}


def _run(tmp_path, accumulate, frames):
    from graph_engine.api import Session
    from graph_engine.workflow import Workflow
    picture = np.random.default_rng(3).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "a.png", picture)
    iio.imwrite(tmp_path / "count.mp4", np.zeros((frames, 16, 16, 3), np.uint8), fps=8, codec="libx264")
    res = import_data(_api(accumulate))
    assert not res.report.blocking, [(e.class_type, e.notes) for e in res.report.blocking]
    g = res.graph
    for n in g.nodes.values():
        if n.type in ("io.load_image", "io.load_video"):
            n.params["path"] = str(tmp_path / ("a.png" if n.type == "io.load_image" else "count.mp4"))
    save, = [n for n in g.nodes.values() if n.type == "io.save_frames"]
    out, port = g.inputs[save.id]["video"]
    ran = Session(use_disk=False).run(Workflow(g, folder=tmp_path), targets=[out], use_cache=False)
    return picture, g, ran, out, port


@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("frames", [1, 2, 3])
def test_the_passes_the_clip_counts_run_as_comfyuis_loop(tmp_path, accumulate, frames):
    picture, g, ran, out, port = _run(tmp_path, accumulate, frames)
    assert ran.ok, ran.failed
    clip = ran.outputs[out][port]
    got = clip[None] if isinstance(clip, np.ndarray) else np.asarray(clip.frames(0, clip.length))   # a picture
    want = _comfy_loop(frames, picture[None], _comfy_body, accumulate)
    assert got.shape == want.shape and np.array_equal(got, want)
    # the passes past the count never ran (ComfyUI's loop stops there); the last one's ImageInvert neither, as only
    # the switch's side it does not pick reads it
    inverted = sorted(int(n.rsplit("_", 1)[1]) for n in ran.executed if g.nodes[n].type == "video.invert")
    assert inverted == list(range(frames - 1))


def test_the_import_makes_the_fixed_number_of_passes_and_says_nothing_is_lost():
    res = import_data(_api(True))
    assert len([n for n in res.graph.nodes.values() if n.type == "video.invert"]) == MAX_RUNNING_PASSES
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"]


def test_a_count_past_the_passes_made_stops_the_run_saying_so(tmp_path):
    _, g, ran, out, _ = _run(tmp_path, True, MAX_RUNNING_PASSES + 1)
    assert not ran.ok
    assert any(f"unrolled on import into {MAX_RUNNING_PASSES} passes, and this run counts more" in m
               for m in ran.failed.values()), ran.failed
    assert not [n for n in ran.executed if g.nodes[n].type == "video.invert"]    # refused before any pass runs


def test_a_counted_list_read_by_a_node_that_runs_per_item_is_not_unrolled():
    """accumulate's list read by a node ComfyUI runs once per pass (not a join): its passes would be one clip here."""
    api = _api(True)
    api["7"] = {"class_type": "ImageInvert", "inputs": {"image": ["6", 0]}}
    res = import_data(api)
    notes = " ".join(n for e in res.report.entries.values() if e.class_type == "StartLoop" for n in e.notes)
    assert "gathered as a list for ImageInvert #7, which ComfyUI runs once per pass" in notes


def test_a_counted_loop_saving_each_pass_is_not_unrolled(tmp_path):
    """A SaveImage inside the body (each window written, as ComfyUI writes one file per pass run): in the unrolled
    workflow every pass's copy of it is a writer of its own, so all MAX_RUNNING_PASSES passes ran and wrote for a count
    of 2 (sixteen samplings where ComfyUI makes two). Such a loop is left not unrolled, the report naming the writer."""
    api = _api(True)
    api["5"] = {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "pass"}}
    res = import_data(api)
    assert len([n for n in res.graph.nodes.values() if n.type == "video.invert"]) == 1      # the body, not copied
    notes = " ".join(n for e in res.report.entries.values() if e.class_type == "StartLoop" for n in e.notes)
    assert "SaveImage #5" in notes and "every pass" in notes, notes


def test_a_counted_loop_previewing_each_pass_still_unrolls_and_runs_only_the_counted_passes(tmp_path):
    """A PreviewImage in the body is the viewer's (nothing runs for it): the loop unrolls, and two passes run."""
    api = _api(True)
    api["5"] = {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}
    res = import_data(api)
    assert len([n for n in res.graph.nodes.values() if n.type == "video.invert"]) == MAX_RUNNING_PASSES
