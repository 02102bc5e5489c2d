"""ComfyUI's list, batch and crop utilities as Kinograph imports them: CreateList / GetItemFromList (folded: the item
picked is its own link), StringCompare (folded over constants), BatchImagesNode and RebatchImages (video.concat, a
clip being one batch), ImageCrop / ImageCropV2 (video.crop). Each expectation is ComfyUI's published code
(comfy_extras/nodes_toolkit.py, nodes_string.py, nodes_rebatch.py, nodes_images.py) written out here."""
import numpy as np
import pytest
import torch
import yaml

from app.comfyui import import_data
from graph_engine import Clip


def _nodes(res):
    return yaml.safe_load(res.yaml)["nodes"]


def _status(res, class_type):
    return [e.status for e in res.report.entries.values() if e.class_type == class_type]


def _notes(res, class_type):
    return " ".join(n for e in res.report.entries.values() if e.class_type == class_type for n in e.notes)


# -- ComfyUI's code, written out -----------------------------------------------------------------------------------
def _comfy_image_crop(image, width, height, x, y):                  # ImageCrop / ImageCropV2.execute
    x = min(x, image.shape[2] - 1)
    y = min(y, image.shape[1] - 1)
    to_x = width + x
    to_y = height + y
    return image[:, y:to_y, x:to_x, :]


def _comfy_string_compare(string_a, string_b, mode, case_sensitive):   # StringCompare.execute
    if case_sensitive:
        a, b = string_a, string_b
    else:
        a, b = string_a.lower(), string_b.lower()
    if mode == "Equal":
        return a == b
    elif mode == "Starts With":
        return a.startswith(b)
    elif mode == "Ends With":
        return a.endswith(b)


def _comfy_get_item(lists, index):          # CreateList then GetItemFromList (every input arrives as a list)
    output_list = []
    for inp in lists:
        output_list += inp
    return output_list[index]


# -- crops ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("box", [(5, 4, 3, 2), (50, 50, 0, 0), (4, 4, 12, 7), (6, 3, 40, 40), (1, 1, 13, 8)])
def test_crop_is_comfyuis_image_crop(box):
    from nodes.video.nodes import crop
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 13, 3), dtype=np.uint8)
    width, height, x, y = box
    want = _comfy_image_crop(torch.from_numpy(frames), width, height, x, y).numpy()
    alpha = Clip(3, 24.0, 13, 8, lambda a, b: frames[a:b, :, :, :1], channels=1)
    got = crop(None, Clip.from_array(frames).with_(matte=alpha), x, y, width, height)
    assert (got.width, got.height) == (want.shape[2], want.shape[1])
    assert np.array_equal(got.frames(0, 3), want)
    assert np.array_equal(got.frames(1, 2), want[1:2])                       # a chunk alone as in the whole
    assert np.array_equal(got.matte.frames(0, 3), want[..., :1])             # the alpha cut alike


def test_image_crop_v2_and_image_crop_import_as_video_crop():
    region = {"x": 3, "y": 1, "width": 5, "height": 4}
    for node in ({"class_type": "ImageCropV2", "inputs": {"crop_region": region}},
                 {"class_type": "ImageCrop", "inputs": {"width": 5, "height": 4, "x": 3, "y": 1}}):
        res = import_data({"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
                           "2": {**node, "inputs": {"image": ["1", 0], **node["inputs"]}},
                           "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}})
        assert _status(res, node["class_type"]) == ["exact"]
        crop, = [n for n in _nodes(res).values() if n["type"] == "video.crop"]
        assert crop["params"] == {"x": 3, "y": 1, "width": 5, "height": 4}


# -- lists ---------------------------------------------------------------------------------------------------------
def _list_api(index):
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
            "2": {"class_type": "LoadVideo", "inputs": {"file": "b.mp4"}},
            "3": {"class_type": "PrimitiveInt", "inputs": {"value": 7}},
            "4": {"class_type": "CreateList", "inputs": {"inputs.input0": ["1", 0], "inputs.input1": ["2", 0],
                                                         "inputs.input2": None}},
            "5": {"class_type": "GetItemFromList", "inputs": {"list": ["4", 0], "index": index}},
            "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}}}


@pytest.mark.parametrize("index", [0, 1, -1, -2])
def test_an_item_from_a_created_list_is_its_own_link(index):
    res = import_data(_list_api(index))
    assert not res.report.blocking
    want = _comfy_get_item([["load_image_1.image"], ["load_video_2.video"]], index)
    save, = [n for n in _nodes(res).values() if n["type"] == "io.save_frames"]
    assert save["inputs"]["video"] == want


def test_a_list_index_past_its_end_is_named():
    res = import_data(_list_api(2))
    entry, = res.report.blocking
    assert entry.class_type == "GetItemFromList"
    assert "index 2 is not an item of its list of 2 (0 to 1, or -1 for the last)" in " ".join(entry.notes)


def test_a_value_picked_from_a_list_is_the_value_and_a_single_link_is_a_list_of_one():
    api = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 12}},
           "2": {"class_type": "PrimitiveInt", "inputs": {"value": 30}},
           "3": {"class_type": "CreateList", "inputs": {"inputs.input0": ["1", 0], "inputs.input1": ["2", 0]}},
           "4": {"class_type": "GetItemFromList", "inputs": {"list": ["3", 0], "index": 1}},
           "5": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "6": {"class_type": "GetItemFromList", "inputs": {"list": ["5", 0], "index": 0}},
           "7": {"class_type": "RepeatImageBatch", "inputs": {"image": ["6", 0], "amount": ["4", 0]}},
           "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    assert not res.report.blocking
    nodes = _nodes(res)
    repeat, = [n for n in nodes.values() if n["type"] == "video.repeat"]
    assert repeat["params"]["times"] == _comfy_get_item([[12], [30]], 1)
    assert repeat["inputs"]["video"] == "load_image_5.image"


def test_a_loops_values_are_not_known_on_import():
    api = {"1": {"class_type": "StartLoop", "inputs": {"mode": "simple", "mode.num_iterations": 4}},
           "2": {"class_type": "GetItemFromList", "inputs": {"list": ["1", 4], "index": 0}},
           "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    notes = _notes(res, "GetItemFromList")
    assert "its list comes from the loop's StartLoop #1, which is not unrolled" in notes
    assert "the loop is not unrolled: it has no one End Loop that its nodes lead to" in _notes(res, "StartLoop")
    assert {e.class_type for e in res.report.blocking} == {"StartLoop", "GetItemFromList"}


# -- StringCompare -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, mode, case", [
    ("Hello World", "hello", "Starts With", False), ("Hello World", "hello", "Starts With", True),
    ("Hello World", "WORLD", "Ends With", False), ("Hello World", "World", "Ends With", True),
    ("yes", "YES", "Equal", False), ("yes", "YES", "Equal", True), ("", "", "Equal", True)])
def test_string_compare_picks_a_switch_as_comfyui_does(a, b, mode, case):
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "2": {"class_type": "LoadImage", "inputs": {"image": "b.png"}},
           "3": {"class_type": "StringCompare", "inputs": {"string_a": a, "string_b": b, "mode": mode,
                                                           "case_sensitive": case}},
           "4": {"class_type": "ComfySwitchNode", "inputs": {"switch": ["3", 0], "on_true": ["2", 0],
                                                             "on_false": ["1", 0]}},
           "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    assert not res.report.blocking
    save, = [n for n in _nodes(res).values() if n["type"] == "io.save_frames"]
    picked = "load_image_2.image" if _comfy_string_compare(a, b, mode, case) else "load_image_1.image"
    assert save["inputs"]["video"] == picked


def test_string_compare_with_an_unknown_mode_names_comfyuis():
    res = import_data({"1": {"class_type": "StringCompare", "inputs": {"string_a": "a", "string_b": "b",
                                                                       "mode": "Contains", "case_sensitive": True}}})
    assert "mode 'Contains' is not one of ComfyUI's: Starts With, Ends With, Equal" in _notes(res, "StringCompare")


# -- batches -------------------------------------------------------------------------------------------------------
def test_a_batch_of_one_picture_is_that_picture():
    """ComfyUI's batch_images of a one-item list is torch.cat of it: the picture; a slot left unlinked is none."""
    res = import_data({"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
                       "2": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0],
                                                                        "images.image1": None}},
                       "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}})
    assert _status(res, "BatchImagesNode") == ["exact"]
    nodes = _nodes(res)
    assert not [n for n in nodes.values() if n["type"] in ("video.concat", "video.match_size")]
    assert [n["inputs"]["video"] for n in nodes.values() if n["type"] == "io.save_frames"] == ["load_image_1.image"]


def _rebatch_api(batch_size, images):
    return {"1": {"class_type": "LoadVideo", "inputs": {"file": "a.mp4"}},
            "2": {"class_type": "LoadVideo", "inputs": {"file": "b.mp4"}},
            "3": {"class_type": "CreateList", "inputs": {"inputs.input0": ["1", 0], "inputs.input1": ["2", 0]}},
            "4": {"class_type": "RebatchImages", "inputs": {"images": images, "batch_size": batch_size}},
            "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}}}


def test_rebatching_a_clip_is_the_clip():
    # ComfyUI's rebatch of one batch of N frames into batches of 4096 (its most) is that batch, N <= 4096
    res = import_data(_rebatch_api(4096, ["1", 0]))
    assert _status(res, "RebatchImages") == ["exact"]
    assert [n["inputs"]["video"] for n in _nodes(res).values() if n["type"] == "io.save_frames"] == \
        ["load_video_1.video"]
    # smaller batches: the nodes after it run once per batch in ComfyUI; said
    res = import_data(_rebatch_api(16, ["1", 0]))
    assert _status(res, "RebatchImages") == ["approx"]
    assert "once per batch of 16 frames" in _notes(res, "RebatchImages")


def test_rebatching_a_list_of_clips_plays_them_one_after_another():
    # ComfyUI flattens every batch of the list into single frames in order, then cuts them into batches
    res = import_data(_rebatch_api(4096, ["3", 0]))
    assert _status(res, "RebatchImages") == ["exact"]
    nodes = _nodes(res)
    concat, = [n for n in nodes.values() if n["type"] == "video.concat"]
    assert concat["inputs"] == {"video": "load_video_1.video", "other": "load_video_2.video"}
    assert not [n for n in nodes.values() if n["type"] == "video.match_size"]     # torch.cat: no resize


# -- loops ---------------------------------------------------------------------------------------------------------
def _comfy_loop(mode, body, initial=None, accumulate=False):
    """StartLoop / EndLoop (comfy_extras/nodes_looping.py) written out: the passes' values as StartLoop.execute makes
    them, each pass handed (iteration_index, is_first, is_last, current_iteration_value), the carried value the
    pass's next_iteration_value; EndLoop returns the last output, or all with accumulate."""
    if mode["mode"] == "simple":
        values = range(mode["num_iterations"])
    else:
        values = range(mode["start_iteration_index"], mode["max_iteration"], mode["step"])
    carried, outs = initial, []
    for i, value in enumerate(values):
        out, carried = body(value, i == 0, i == len(values) - 1, carried)
        outs.append(out)
    return outs if accumulate else (outs[-1] if outs else None)


def _loop_api(mode, accumulate=False):
    """A picture inverted once per pass (the carried value), each pass's picture repeated iteration_index times,
    and the first pass's kept as it is (a switch on is_first)."""
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
            "2": {"class_type": "StartLoop", "inputs": {**{f"mode.{k}" if k != "mode" else k: v
                                                           for k, v in mode.items()},
                                                        "initial_iteration_value": ["1", 0]}},
            "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 4]}},
            "4": {"class_type": "ComfySwitchNode", "inputs": {"switch": ["2", 1], "on_true": ["2", 4],
                                                              "on_false": ["3", 0]}},
            "5": {"class_type": "RepeatImageBatch", "inputs": {"image": ["4", 0], "amount": ["2", 0]}},
            "6": {"class_type": "EndLoop", "inputs": {"output_value": ["5", 0], "next_iteration_value": ["4", 0],
                                                      "accumulate": accumulate}},
            "7": {"class_type": "RebatchImages", "inputs": {"images": ["6", 0], "batch_size": 4096}},
            "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x"}}}


def _pass(value, first, last, carried):
    """The loop body of _loop_api in Kinograph's terms: what each node reads."""
    picked = carried if first else f"invert({carried})"
    return f"repeat({picked}, {value})", picked


def _walk(nodes, port):
    """A Kinograph output as the same kind of expression, read back from the imported workflow."""
    name = port.split(".")[0]
    n = nodes[name]
    if n["type"] == "video.invert":
        return f"invert({_walk(nodes, n['inputs']['video'])})"
    if n["type"] == "video.repeat":
        return f"repeat({_walk(nodes, n['inputs']['video'])}, {n['params']['times']})"
    if n["type"] == "video.concat":
        return f"{_walk(nodes, n['inputs']['video'])} + {_walk(nodes, n['inputs']['other'])}"
    return "a.png"


@pytest.mark.parametrize("mode", [{"mode": "simple", "num_iterations": 3},
                                  {"mode": "For", "start_iteration_index": 2, "max_iteration": 11, "step": 3},
                                  {"mode": "simple", "num_iterations": 1}])
@pytest.mark.parametrize("accumulate", [False, True])
def test_a_loop_with_its_passes_in_the_file_is_unrolled_as_comfyui_runs_it(mode, accumulate):
    res = import_data(_loop_api(mode, accumulate))
    assert not res.report.blocking, [(e.class_type, e.notes) for e in res.report.blocking]
    nodes = _nodes(res)
    save, = [n for n in nodes.values() if n["type"] == "io.save_frames"]
    want = _comfy_loop(mode, _pass, "a.png", accumulate)
    assert _walk(nodes, save["inputs"]["video"]) == (" + ".join(want) if accumulate else want)


def test_a_loop_of_no_pass_gives_nothing():
    res = import_data(_loop_api({"mode": "simple", "num_iterations": 0}))
    assert _comfy_loop({"mode": "simple", "num_iterations": 0}, _pass) is None
    assert not [n for n in _nodes(res).values() if n["type"] in ("video.invert", "video.repeat")]


@pytest.mark.parametrize("mode, why", [
    ({"mode": "simple", "num_iterations": ["9", 0]}, "its number of passes is known only as the workflow runs"),
    ({"mode": "simple", "num_iterations": 65}, "it asks for 65 passes; Kinograph unrolls a loop of up to 64"),
    ({"mode": "For", "start_iteration_index": 0, "max_iteration": 4, "step": 0}, "its step is 0"),
    ({"mode": "List", "list": ["9", 0]}, "it loops over a list known only as the workflow runs")])
def test_a_loop_not_unrolled_says_why(mode, why):
    api = _loop_api(mode)
    api["9"] = {"class_type": "SomeNodePack_Count", "inputs": {}}
    res = import_data(api)
    assert {"StartLoop", "EndLoop"} <= {e.class_type for e in res.report.blocking}
    assert f"the loop is not unrolled: {why}" in _notes(res, "StartLoop")


def test_a_loop_over_a_created_list_hands_each_item_to_its_pass():
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "2": {"class_type": "LoadImage", "inputs": {"image": "b.png"}},
           "3": {"class_type": "CreateList", "inputs": {"inputs.input0": ["1", 0], "inputs.input1": ["2", 0]}},
           "4": {"class_type": "StartLoop", "inputs": {"mode": "List", "mode.list": ["3", 0]}},
           "5": {"class_type": "ImageInvert", "inputs": {"image": ["4", 3]}},
           "6": {"class_type": "EndLoop", "inputs": {"output_value": ["5", 0], "accumulate": True}},
           "7": {"class_type": "RebatchImages", "inputs": {"images": ["6", 0], "batch_size": 4096}},
           "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    assert not res.report.blocking
    nodes = _nodes(res)
    inverts = [n["inputs"]["video"] for n in nodes.values() if n["type"] == "video.invert"]
    assert inverts == ["load_image_1.image", "load_image_2.image"]


def test_a_loop_of_nodes_kinograph_lacks_is_not_copied():
    api = _loop_api({"mode": "simple", "num_iterations": 3})
    api["3"]["class_type"] = "SomeNodePack_Invert"
    res = import_data(api)
    assert "the loop is not unrolled: its nodes include SomeNodePack_Invert, which Kinograph has no equivalent " \
           "for" in _notes(res, "StartLoop")
    assert len([e for e in res.report.entries.values() if e.class_type == "SomeNodePack_Invert"]) == 1


def test_a_loop_too_big_to_copy_is_refused_by_name(monkeypatch):
    from app.comfyui import loops
    monkeypatch.setattr(loops, "MAX_COPIES", 8)
    res = import_data(_loop_api({"mode": "simple", "num_iterations": 3}))
    assert "3 passes of its 3 nodes would make 9; Kinograph unrolls up to 8" in _notes(res, "StartLoop")


def test_a_loop_count_past_what_a_machine_holds_is_not_unrolled_and_the_file_imports():
    """A count of 10 ** 20 (a hostile or damaged file) left range's len() raising OverflowError: the whole file was
    refused as damaged, rather than this loop alone left not unrolled."""
    for mode in ({"mode": "simple", "num_iterations": 10 ** 20},
                 {"mode": "For", "start_iteration_index": 0, "max_iteration": 10 ** 20, "step": 1}):
        res = import_data(_loop_api(mode))
        assert f"the loop is not unrolled: it asks for {10 ** 20} passes; Kinograph unrolls a loop of up to 64" \
            in _notes(res, "StartLoop")


def test_a_node_after_the_loop_reading_inside_it_stops_the_unrolling():
    """A node after EndLoop that also reads a node of the body: the body's nodes are replaced by their copies, and
    its link was dropped without a word (a blend left with one input, imported as exact)."""
    api = _loop_api({"mode": "simple", "num_iterations": 2})
    api["9"] = {"class_type": "ImageBlend", "inputs": {"image1": ["6", 0], "image2": ["3", 0], "blend_factor": 0.5,
                                                       "blend_mode": "normal"}}
    api["10"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "y"}}
    res = import_data(api)
    assert "the loop is not unrolled: ImageBlend #9 after it reads ImageInvert #3 inside it" in _notes(res, "StartLoop")


def test_a_copy_does_not_replace_a_node_of_the_file_with_its_id():
    api = _loop_api({"mode": "simple", "num_iterations": 2})
    api["3@0"] = {"class_type": "LoadImage", "inputs": {"image": "other.png"}}
    api["11"] = {"class_type": "SaveImage", "inputs": {"images": ["3@0", 0], "filename_prefix": "z"}}
    res = import_data(api)
    assert "other.png" in res.yaml


def test_lists_of_lists_that_double_are_refused_past_a_cap():
    """CreateList splices a list it is given, so a chain of CreateLists each taking the one before twice doubles at
    every node: 40 nodes of a hostile file asked for 2 ** 40 items and the import filled the memory."""
    from app.comfyui.packs.logic import MAX_LIST
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "L0": {"class_type": "CreateList", "inputs": {"inputs.input0": ["1", 0], "inputs.input1": ["1", 0]}}}
    for k in range(1, 40):
        api[f"L{k}"] = {"class_type": "CreateList", "inputs": {"inputs.input0": [f"L{k - 1}", 0],
                                                               "inputs.input1": [f"L{k - 1}", 0]}}
    api["g"] = {"class_type": "GetItemFromList", "inputs": {"list": ["L39", 0], "index": 3}}
    api["s"] = {"class_type": "SaveImage", "inputs": {"images": ["g", 0], "filename_prefix": "x"}}
    res = import_data(api)
    assert f"its list would hold {2 * MAX_LIST} items; Kinograph folds lists of up to {MAX_LIST} on import" in \
        _notes(res, "CreateList")
    assert "g" in {e.comfy_id for e in res.report.blocking}
