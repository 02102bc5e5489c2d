"""mask.segment_objects: SAM 3 tracks each object a text prompt names on its own (ComfyUI's SAM3_VideoTrack), for
mask.scail_colors to paint each person a colour. A tiny random-weight Sam3VideoModel (transformers' own) finds
several objects; each object's masks are checked against transformers' offline pass (propagate_in_video_iterator,
SAM 3's max_num_objects as the cap) with Sam3VideoProcessor.postprocess_outputs's per-object masks, the objects by
the tracker's ids."""
from __future__ import annotations

import numpy as np
import pytest
from tiny_models import build_sam3_video

torch = pytest.importorskip("torch")

FRAMES = 5
H, W = 24, 40


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny SAM 3, run with one torch thread (SAM's trackers make thousands of tiny calls; see test_segment)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    models = tmp_path_factory.mktemp("models")
    build_sam3_video(models / "sam2" / "tiny-sam3")
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(models))
    yield models
    mp.undo()
    torch.set_num_threads(threads)


def reference_objects(segmenter, frames, prompt, cap):
    """transformers' offline pass with max_num_objects `cap`: bool [T, N, H, W], object n the n-th id the tracker
    gave (those the hot start removed left out), empty on frames it is not kept on."""
    import torch.nn.functional as F
    from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession
    model = segmenter.model
    model.new_det_thresh, model.max_num_objects = 0.0, cap
    s = Sam3VideoInferenceSession(video=segmenter.pixels(frames), video_height=H, video_width=W, dtype=torch.float32)
    pid = s.add_prompt(prompt)
    tokens = segmenter.tokenizer(prompt, return_tensors="pt", padding="max_length", max_length=32)
    s.prompt_input_ids[pid], s.prompt_attention_masks[pid] = tokens.input_ids, tokens.attention_mask
    per_frame = {}
    for out in model.propagate_in_video_iterator(s):
        hidden = set(out.suppressed_obj_ids) | s.hotstart_removed_obj_ids
        per_frame[out.frame_idx] = {i: (F.interpolate(m.float()[:, None], size=(H, W), mode="bilinear",
                                                      align_corners=False)[0, 0] > 0).numpy()
                                    for i, m in out.obj_id_to_mask.items() if i not in hidden}
    ids = sorted({i for f in per_frame.values() for i in f} - s.hotstart_removed_obj_ids)
    want = np.zeros((len(frames), len(ids), H, W), bool)
    for t, f in per_frame.items():
        for n, i in enumerate(ids):
            if i in f:
                want[t, n] = f[i]
    model.max_num_objects = model.config.max_num_objects
    return want


def _clip():
    from graph_engine import Clip
    g = np.random.default_rng(0)
    frames = g.integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8)
    return frames, Clip(FRAMES, 8.0, W, H, lambda a, b: frames[a:b], chunk=2)


def test_each_object_tracks_apart_as_transformers_does(models):
    """Two objects (the cap, where the tiny model finds more) each their own mask through the clip, their places
    kept by the tracker's ids."""
    from nodes.mask.nodes import segment_objects
    from nodes.mask.segment import load_segmenter

    class Ctx:
        workflow_dir, device = None, "cpu"

        def check(self):
            pass

        def progress(self, done, total):
            pass
    frames, clip = _clip()
    seg = load_segmenter("tiny-sam3")
    every = reference_objects(seg, frames, "person", seg.model.config.max_num_objects)
    assert every.shape[1] > 2                            # the tiny model finds more than the cap below
    want = reference_objects(seg, frames, "person", 2)
    objects = segment_objects(Ctx(), clip, "person", "tiny-sam3", 0.0, 2)
    assert (objects.length, objects.fps, objects.width, objects.height) == (FRAMES, 8.0, W, H)
    got = objects.masks()
    assert got.shape == (FRAMES, 2, H, W) and got.dtype == bool
    assert all(got[:, n].any() for n in range(2)) and not np.array_equal(got[:, 0], got[:, 1])
    # Random weights give logits within 1e-2 of the 0 threshold: a pixel in thousands may round the other way.
    assert (got != want).mean() < 1e-3
    # 0, as ComfyUI's max_objects 0, is its cap of 64: every object the tiny model finds
    assert segment_objects(Ctx(), clip, "person", "tiny-sam3", 0.0, 0).masks().shape[1] == every.shape[1]


def test_scail_colours_paint_each_tracked_object_as_comfyui(models):
    """The two tracked objects through mask.scail_colors, in each order and mode, are SCAIL2ColoredMask's colours
    (test_wan_scail's written-out copy of comfy_extras/nodes_scail.py) on those objects: two colours, one each."""
    import torch
    from nodes.generate.wan_scail_nodes import scail_colors
    from nodes.mask.segment import text_objects
    from test_wan_scail import _comfy_colored
    frames, clip = _clip()
    objects = text_objects(clip, "tiny-sam3", "person", 0.0, "cpu", None, 2)
    ref = text_objects(clip, "tiny-sam3", "person", 0.0, "cpu", None, 2)
    masks = torch.from_numpy(objects.masks())
    for sort_by in ("none", "left_to_right", "area"):
        for replacement in (False, True):
            out = scail_colors(None, objects, ref, "", sort_by, replacement, 24.0)
            want = _comfy_colored(masks, sort_by, "", "white" if replacement else "black")
            want = np.clip(want.numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)
            assert np.array_equal(out["pose_mask"].frames(0, FRAMES), want), (sort_by, replacement)
            assert out["pose_mask"].fps == 8.0
            ref_want = _comfy_colored(masks, sort_by, "", "black" if replacement else "white")[0].numpy()
            assert np.array_equal(out["reference_mask"], np.clip(ref_want * 255 + 0.5, 0, 255).astype(np.uint8))
    # indices pick after sorting, as ComfyUI's; indices naming no object are refused (ComfyUI paints none, silently)
    second = scail_colors(None, objects, ref, "1", "left_to_right", True, 24.0)["pose_mask"].frames(0, FRAMES)
    want = _comfy_colored(masks, "left_to_right", "1", "white").numpy()
    assert np.array_equal(second, np.clip(want * 255.0 + 0.5, 0, 255).astype(np.uint8))
    from graph_engine import NodeError
    with pytest.raises(NodeError, match="indices '7' keep none of the driving video's 2 people"):
        scail_colors(None, objects, ref, "7", "none", True, 24.0)
    video = scail_colors(None, objects, None, "", "none", False, 24.0)["pose_mask"].frames(0, FRAMES)
    colours = {tuple(c) for c in video.reshape(-1, 3)}
    assert {(0, 0, 255), (255, 0, 0)} <= colours <= {(0, 0, 0), (0, 0, 255), (255, 0, 0)}


def test_a_mask_still_links_where_objects_are_asked_for():
    """mask.scail_colors' driving takes mask.segment's one mask (a workflow saved before the tracks were kept
    apart): linked and run, it is one object in the palette's first colour."""
    from graph_engine.types import MASK, get_type
    from nodes.mask.objects import OBJECTS, of_mask
    assert OBJECTS.can_take(MASK) and get_type("OBJECTS") is OBJECTS
    m = np.zeros((2, 4, 6), np.float32)
    m[:, 1:3, 2:4] = 1.0
    from graph_engine import Clip
    clip = Clip(2, 12.0, 6, 4, lambda a, b: (m[a:b, ..., None] * 255).astype(np.uint8), channels=1)
    converted = OBJECTS.converter(MASK)(clip)
    assert converted.masks().shape == (2, 1, 4, 6) and converted.fps == 12.0
    assert np.array_equal(converted.masks()[:, 0], m > 0.5)
    assert of_mask(m[0]).masks().shape == (1, 1, 4, 6)
