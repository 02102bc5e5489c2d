"""mask.segment: SAM 3 finds what a text prompt names and tracks it through a clip. A tiny random-weight
Sam3VideoModel (transformers' own) and a byte-level CLIP tokenizer are built here; the masks, read chunk by chunk in
any order, are checked (to a pixel in a thousand at the threshold) against transformers' offline pass over the whole video (propagate_in_video_iterator) with
the processor's post-processing, on the same weights and frames."""
from __future__ import annotations

import numpy as np
import pytest
from tiny_models import build_sam2_video, build_sam3_video

torch = pytest.importorskip("torch")

FRAMES = 4
H, W = 24, 40


@pytest.fixture(scope="module")
def sam3(tmp_path_factory):
    """Both tiny models, run with one torch thread as comfy_layouts.built runs its: SAM's trackers make thousands of
    tiny calls, which two threads on a shared 2-core machine made 30 times slower (32 s -> 1.1 s a pass here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    models = tmp_path_factory.mktemp("models")
    build_sam3_video(models / "sam2" / "tiny-sam3")
    build_sam2_video(models / "sam2" / "tiny-sam2")
    yield models
    torch.set_num_threads(threads)


@pytest.fixture
def models(sam3, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_MODELS", str(sam3))
    return sam3


def reference_masks(segmenter, frames, prompt, keep=0):
    """transformers' offline pass over the whole video, and Sam3VideoProcessor.postprocess_outputs's masks joined:
    all of them, and (`keep`) the object(s) of the highest scores it gives on each frame."""
    import torch.nn.functional as F
    from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession
    s = Sam3VideoInferenceSession(video=segmenter.pixels(frames), video_height=H, video_width=W, dtype=torch.float32)
    pid = s.add_prompt(prompt)
    tokens = segmenter.tokenizer(prompt, return_tensors="pt", padding="max_length", max_length=32)
    s.prompt_input_ids[pid], s.prompt_attention_masks[pid] = tokens.input_ids, tokens.attention_mask
    out_masks = []
    for out in segmenter.model.propagate_in_video_iterator(s):
        hidden = set(out.suppressed_obj_ids) | s.hotstart_removed_obj_ids
        ids = [i for i in sorted(out.obj_id_to_mask) if i not in hidden]
        m = best = np.zeros((H, W), bool)
        if ids:
            low = torch.cat([out.obj_id_to_mask[i] for i in ids]).float()[:, None]
            each = (F.interpolate(low, size=(H, W), mode="bilinear", align_corners=False)[:, 0] > 0).numpy()
            m = each.any(0)
            scores = {i: float(out.obj_id_to_score[i]) for i, e in zip(ids, each) if e.any()}   # empty: dropped
            top = sorted(scores, key=scores.get, reverse=True)[:keep]
            best = each[[ids.index(i) for i in top]].any(0) if top else best
        out_masks.append((m, best))
    return tuple(np.stack(x) for x in zip(*out_masks))


def test_text_prompt_tracks_as_transformers_does(models):
    from graph_engine import Clip
    from nodes.mask.segment import load_segmenter, text_masks
    frames = np.random.default_rng(0).integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8)
    clip = Clip(FRAMES, 8.0, W, H, lambda a, b: frames[a:b], chunk=2)
    want, best = reference_masks(load_segmenter("tiny-sam3"), frames, "cat", keep=1)
    assert want.any() and not want.all()
    masks = text_masks(clip, "tiny-sam3", "cat", threshold=0.0)
    assert (masks.width, masks.height, masks.length, masks.chunk) == (W, H, FRAMES, 1)
    # A chunk after the first, then one behind it (the pass starts again), then the last.
    got = {2: masks.frames(2, 4), 0: masks.frames(0, 2)}
    got = np.concatenate([got[k] for k in sorted(got)])[..., 0]
    assert set(np.unique(got)) <= {0, 255}
    # Random weights give logits within 1e-2 of the 0 threshold: a pixel in thousands may round the other way.
    assert (got != want.astype(np.uint8) * 255).mean() < 1e-3
    # objects=1: the frame's most confident object alone (ComfyUI's SAM3_Detect), where the tiny model finds several.
    assert (best != want).mean() > 0.05
    got = text_masks(clip, "tiny-sam3", "cat", threshold=0.0, objects=1).frames(0, FRAMES)[..., 0]
    assert (got != best.astype(np.uint8) * 255).mean() < 1e-3


def test_first_frame_runs_the_model_that_far(models, monkeypatch):
    """The editor's picker shows frame 0 of mask.track_points (or of mask.grow after it) after each click: that read
    runs the model on the prompted frame and frame 0, not on the whole chunk the source is read in (32 frames of a
    small clip: 33 runs, and the mask took 100 s to appear). Later frames go on from there, and a step back (to the
    first frame, or a scrub back past a chunk) does not start the pass again.
    SAM 3's text pass settles a frame only `hotstart_delay` frames later, so it runs as far as that."""
    from graph_engine import Clip
    from nodes.common import masks as mask_ops
    from nodes.mask.segment import load_segmenter, point_masks, text_masks
    length = 40
    frames = np.random.default_rng(5).integers(0, 256, (length, H, W, 3), dtype=np.uint8)
    clip = Clip(length, 8.0, W, H, lambda a, b: frames[a:b])
    assert clip.chunk == 32
    runs = []
    for name, kinds in (("tiny-sam2", ("sam2_video", "sam3_video")), ("tiny-sam3", ("sam3_video",))):
        model = load_segmenter(name, kinds=kinds).model
        monkeypatch.setattr(model, "forward", lambda frame_idx, run=model.forward, **kw: (
            runs.append(frame_idx), run(frame_idx=frame_idx, **kw))[1])
    masks = point_masks(clip, "tiny-sam2", "10,12")
    # mask.grow after it, shown in the viewer, made its own chunk (32 frames here) and the tracker's with it.
    grown = mask_ops.per_frame(masks, lambda m: mask_ops.grow(m, 2))
    assert grown.chunk == 32 and grown.frame(0).shape == (H, W, 1)
    assert runs == [0, 0]
    first = masks.frame(0)
    assert runs == [0, 0]
    np.testing.assert_array_equal(grown.frame(0)[..., 0], mask_ops.to_u8(mask_ops.grow(first[..., 0] / 255.0, 2)))
    masks.frames(1, 3)
    assert runs == [0, 0, 1, 2]
    np.testing.assert_array_equal(masks.frame(0), first)
    assert runs == [0, 0, 1, 2]
    # The viewer's playhead dragged to the end and back: the masks the pass went by are kept, where a read more
    # than a chunk behind it ran the model again from frame 0.
    grown.frame(length - 1)
    assert runs == [0, 0, 1, 2] + list(range(3, length))
    assert grown.frame(5).shape == (H, W, 1) and masks.frame(6).dtype == first.dtype
    assert runs == [0, 0, 1, 2] + list(range(3, length))
    runs.clear()
    delay = load_segmenter("tiny-sam3").model.hotstart_delay
    assert delay > 0
    text_masks(clip, "tiny-sam3", "cat", threshold=0.0).frame(0)
    assert runs == list(range(delay))


def test_a_sam_load_imports_transformers_alone(models, tmp_path, monkeypatch):
    """A first point-picker click imported diffusers (a third of a second of CPU, and requests, gguf and more with
    it) though SAM is transformers' alone: a SAM 2 load with every diffusers import refused loads, with
    transformers' bars off; a diffusers load after it (inside local_only, as every pipeline load is) still has
    diffusers' bars turned off. In-process, as a fresh interpreter costs seconds of transformers import."""
    import shutil
    import sys
    import transformers
    from diffusers.utils import logging as diffusers_log
    from transformers.utils import logging as transformers_log
    from nodes.generate.offline import local_only
    from nodes.mask.segment import load_segmenter
    shutil.copytree(models / "sam2" / "tiny-sam2", tmp_path / "sam2" / "tiny-sam2")     # a load, not the cache's
    with monkeypatch.context() as m:
        m.setenv("KINOGRAPH_MODELS", str(tmp_path))
        for name in ["diffusers", *(n for n in sys.modules if n.startswith("diffusers."))]:
            m.setitem(sys.modules, name, None)      # importing it raises ImportError
        transformers_log.enable_progress_bar()
        assert load_segmenter("tiny-sam2", kinds=("sam2_video",)).size == 64
        assert not transformers_log.is_progress_bar_enabled()
    assert getattr(transformers.PreTrainedModel.from_pretrained, "checks_config", False)
    diffusers_log.enable_progress_bar()
    with local_only("pipeline", str(tmp_path)):
        assert not diffusers_log.is_progress_bar_enabled()


def test_bad_models_are_named(models, tmp_path):
    from graph_engine import NodeError
    from nodes.mask.segment import load_segmenter, text_masks
    (models / "checkpoints").mkdir(exist_ok=True)
    comfy = models / "checkpoints" / "sam3.1_multiplex_fp16.safetensors"
    comfy.write_bytes(b"\0" * 16)
    with pytest.raises(NodeError, match="SAM 3.1 \\(multiplex\\).*facebook/sam3"):
        load_segmenter("sam3.1_multiplex_fp16.safetensors")
    with pytest.raises(NodeError, match="not found|no .*found") as e:
        load_segmenter("sam3-missing")
    assert "sam3-missing" in str(e.value)
    broken = models / "sam2" / "broken-sam3"
    broken.mkdir()
    (broken / "config.json").write_text((models / "sam2" / "tiny-sam3" / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"{not weights")
    with pytest.raises(NodeError, match=r"broken-sam3 has no tokenizer \(no tokenizer.json or vocab.json\): copy SAM 3's"):
        load_segmenter(str(broken))
    for f in (models / "sam2" / "tiny-sam3").glob("*.json"):
        if f.name != "config.json":
            (broken / f.name).write_text(f.read_text())
    for f in (models / "sam2" / "tiny-sam3").glob("*.txt"):
        (broken / f.name).write_text(f.read_text())
    with pytest.raises(NodeError, match=r"broken-sam3/model.safetensors is not a valid safetensors file.*Copy the file"):
        load_segmenter(str(broken))
    # A config.json claiming far more than the weights hold is named as such (config_bound), not as damaged weights.
    import json
    (broken / "model.safetensors").write_bytes((models / "sam2" / "tiny-sam3" / "model.safetensors").read_bytes())
    claim = json.loads((models / "sam2" / "tiny-sam3" / "config.json").read_text())
    claim["detector_config"]["vision_config"]["backbone_config"]["num_hidden_layers"] = 10000
    (broken / "config.json").write_text(json.dumps(claim))
    with pytest.raises(NodeError, match=r"broken-sam3/config.json describes a model far larger than") as e:
        load_segmenter(str(broken))
    assert "copy model.safetensors again" not in str(e.value)
    (broken / "config.json").write_text('{"model_type": "sam2_video"}')
    with pytest.raises(NodeError, match="sam2_video model, not sam3_video; it should be SAM 3's"):
        load_segmenter(str(broken))
    with pytest.raises(NodeError, match="give a text prompt"):
        text_masks(None, "tiny-sam3", "  ")
    with pytest.raises(NodeError, match="sam3_video model, not sam2_video; it should be SAM 2's"):
        load_segmenter("tiny-sam3", kinds=("sam2_video",))
    (models / "sam2" / "not-sam").mkdir()
    (models / "sam2" / "not-sam" / "config.json").write_text('{"model_type": "clip"}')
    # `kinograph info`: one row a folder (not its model.safetensors as 'unknown ... no known key pattern'), which
    # node reads it; ComfyUI's SAM 3.1 file named as such.
    from pathlib import Path
    from nodes.generate.model_manager import list_found_models
    rows = {Path(p).name: d for kind, p, d in list_found_models() if kind == "sam2"}
    assert {n: (d["variant"], d["loads"], d["note"]) for n, d in rows.items() if n.startswith("tiny")} == {
        "tiny-sam3": ("sam3_video", "yes", "mask.segment, mask.track_points"),
        "tiny-sam2": ("sam2_video", "yes", "mask.track_points")}
    assert rows["not-sam"]["loads"] == "no" and "holds a clip model, not SAM 3's or SAM 2's" in rows["not-sam"]["note"]
    from nodes.mask.segment import point_masks
    with pytest.raises(NodeError, match="'x=3' is not a list of points"):
        point_masks(None, "tiny-sam2", "x=3")
    with pytest.raises(NodeError, match="at least one point .* or a box around it"):
        point_masks(None, "tiny-sam2", "[]")
    with pytest.raises(NodeError, match=r"box '5,5,2,9' has no area: .* x1 > x0 and y1 > y0"):
        point_masks(None, "tiny-sam2", "", box="5,5,2,9")
    from graph_engine import Clip
    clip = Clip(1, 8.0, W, H, lambda a, b: np.zeros((b - a, H, W, 3), np.uint8))
    with pytest.raises(NodeError, match=rf"the point 40,5 is outside the first frame \({W}x{H}\): points are x,y in "
                                        rf"the clip's own pixels \(x 0 to {W - 1}, y 0 to {H - 1}\)"):
        point_masks(clip, "tiny-sam2", "10,5", "40,5")
    with pytest.raises(NodeError, match=rf"the box 0,0,41,10 reaches outside the first frame \({W}x{H}\)"):
        point_masks(clip, "tiny-sam2", "", box="[0, 0, 41, 10]")


def test_points_track_as_transformers_does(models):
    """Points on the first frame (PointsEditor's JSON; a negative one), tracked by SAM 2: the node's masks, read
    out of order, are transformers' own pass (the first frame run with its points, then propagate_in_video_iterator)
    with Sam2VideoProcessor's post-processing, points scaled to the model's square as its processor scales them."""
    import torch.nn.functional as F
    from graph_engine import Clip
    from nodes.mask.segment import load_segmenter, point_masks
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession
    frames = np.random.default_rng(2).integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8)
    seg = load_segmenter("tiny-sam2", kinds=("sam2_video",))
    assert seg.size == 64
    s = Sam2VideoInferenceSession(video=seg.pixels(frames), video_height=H, video_width=W, dtype=torch.float32)
    coords = torch.tensor([[[[10 * 64 / W, 12 * 64 / H], [30 * 64 / W, 5 * 64 / H]]]])
    s.add_point_inputs(s.obj_id_to_idx(1), 0, {"point_coords": coords,
                                               "point_labels": torch.tensor([[[1, 0]]], dtype=torch.int32)})
    s.obj_with_new_inputs = [1]
    seg.model(inference_session=s, frame_idx=0)
    want = np.stack([(F.interpolate(out.pred_masks.float(), size=(H, W), mode="bilinear") > 0)[0, 0].numpy()
                     for out in seg.model.propagate_in_video_iterator(s)])
    assert want.any() and not want.all()
    clip = Clip(FRAMES, 8.0, W, H, lambda a, b: frames[a:b], chunk=2)
    masks = point_masks(clip, "tiny-sam2", '[{"x": 10, "y": 12}]', "30,5")
    got = {2: masks.frames(2, 4), 0: masks.frames(0, 2)}
    got = np.concatenate([got[k] for k in sorted(got)])[..., 0]
    np.testing.assert_array_equal(got, want.astype(np.uint8) * 255)
    # A box (and a point inside it) as Sam2VideoProcessor itself scales and adds them (its image half needs
    # torchvision, which this venv lacks; adding prompts only needs the model's square size).
    from transformers.models.sam2_video.processing_sam2_video import Sam2VideoProcessor
    processor = Sam2VideoProcessor.__new__(Sam2VideoProcessor)
    processor.target_size, processor.point_pad_value = seg.size, -10     # its __init__ defaults
    s = Sam2VideoInferenceSession(video=seg.pixels(frames), video_height=H, video_width=W, dtype=torch.float32)
    processor.add_inputs_to_inference_session(s, 0, 1, input_points=[[[[20, 9]]]], input_labels=[[[1]]],
                                              input_boxes=[[[6, 3, 33, 21]]])
    seg.model(inference_session=s, frame_idx=0)
    boxed = np.stack([(F.interpolate(out.pred_masks.float(), size=(H, W), mode="bilinear") > 0)[0, 0].numpy()
                      for out in seg.model.propagate_in_video_iterator(s)])
    assert boxed.any() and (boxed != want).any()
    got = point_masks(clip, "tiny-sam2", "20,9", box="6,3,33,21").frames(0, FRAMES)[..., 0]
    np.testing.assert_array_equal(got, boxed.astype(np.uint8) * 255)


def test_objects_and_later_frames_track_as_transformers_does(models):
    """Two objects (kijai's individual_objects), one picked up on frame 2 with a box, the other corrected by a click
    on frame 3: each object's mask and both joined are transformers' own flow (Sam2VideoProcessor adds each frame's
    prompts, the model runs that frame, then propagate_in_video_iterator from frame 0). Impossible prompts are
    named; every string the fields took before reads as it did."""
    import torch.nn.functional as F
    from graph_engine import Clip, NodeError
    from nodes.mask.segment import load_segmenter, parse_box, parse_points, point_masks
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession
    from transformers.models.sam2_video.processing_sam2_video import Sam2VideoProcessor
    frames = np.random.default_rng(4).integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8)
    seg = load_segmenter("tiny-sam2", kinds=("sam2_video",))
    processor = Sam2VideoProcessor.__new__(Sam2VideoProcessor)
    processor.target_size, processor.point_pad_value = seg.size, -10     # its __init__ defaults
    s = Sam2VideoInferenceSession(video=seg.pixels(frames), video_height=H, video_width=W, dtype=torch.float32)
    for f, obj, pts, labels, boxes in ((0, 1, [[10, 12], [30, 5]], [1, 0], None),
                                       (2, 2, [[30, 15], [5, 5]], [1, 0], [[[22, 8, 38, 22]]]),
                                       (3, 1, [[20, 18]], [1], None)):
        processor.add_inputs_to_inference_session(s, f, obj, input_points=[[pts]], input_labels=[[labels]],
                                                  input_boxes=boxes)
        seg.model(inference_session=s, frame_idx=f)
    want = {1: [], 2: []}
    for out in seg.model.propagate_in_video_iterator(s, start_frame_idx=0):
        masks = F.interpolate(out.pred_masks.float(), size=(H, W), mode="bilinear") > 0
        for i, obj in enumerate(out.object_ids):
            want[obj].append(masks[i, 0].numpy())
    want = {k: np.stack(v) for k, v in want.items()}
    assert all(m.any() and not m.all() for m in want.values()) and (want[1] != want[2]).any()
    want[0] = want[1] | want[2]
    clip = Clip(FRAMES, 8.0, W, H, lambda a, b: frames[a:b], chunk=2)
    args = ("10,12; 20,18@3 | 30,15@2", "30,5 | 5,5@2", "| 22,8,38,22@2")
    masks = point_masks(clip, "tiny-sam2", *args)
    got = {2: masks.frames(2, 4), 0: masks.frames(0, 2)}      # out of order: the pass starts again, prompts and all
    np.testing.assert_array_equal(np.concatenate([got[0], got[2]])[..., 0], want[0].astype(np.uint8) * 255)
    for obj in (1, 2):
        got = point_masks(clip, "tiny-sam2", *args, obj=obj).frames(0, FRAMES)[..., 0]
        np.testing.assert_array_equal(got, want[obj].astype(np.uint8) * 255)
    for bad, said in (((*args[:2], "| 22,8,38,22@4"), r"a prompt is on frame 4, past the clip's last frame \(3; "),
                      (("10,12 | 30,15@2", "", "", 3), "object 3 does not exist: points and box name 2 objects"),
                      (("10,12 | 30,15", "1,1 | 2,2 | 3,3"), "negative has 3 groups of points"),
                      (("10,12 | ", "1,1"), "object 2 has no point on it and no box"),
                      (("10,12 | 41,15@2",), r"the point 41,15 is outside frame 2 \(40x24\)"),
                      (("10,12@1.5",), "'10,12@1.5' is not a list of points"),
                      (("", "", "1,1,5,5; 2,2,6,6"), "object 1 has 2 boxes on frame 0")):
        with pytest.raises(NodeError, match=said):
            point_masks(clip, "tiny-sam2", *bad[:3], obj=bad[3] if len(bad) > 3 else 0)
    # SAM 3's folder in mask.track_points: SAM 3's tracker (transformers' Sam3TrackerVideoModel, loaded from the same
    # folder) with a box on frame 0 and a second object clicked on frame 2, as its own processor adds them.
    from transformers import Sam3TrackerVideoModel
    from transformers.models.sam3_tracker_video.modeling_sam3_tracker_video import Sam3TrackerVideoInferenceSession
    from transformers.models.sam3_tracker_video.processing_sam3_tracker_video import Sam3TrackerVideoProcessor
    tracker = Sam3TrackerVideoModel.from_pretrained(str(models / "sam2" / "tiny-sam3")).eval()
    processor = Sam3TrackerVideoProcessor.__new__(Sam3TrackerVideoProcessor)
    processor.target_size, processor.point_pad_value = tracker.config.image_size, -10
    s = Sam3TrackerVideoInferenceSession(video=load_segmenter("tiny-sam3").pixels(frames), video_height=H,
                                         video_width=W, dtype=torch.float32)
    for f, obj, pts, labels, boxes in ((0, 1, [[20, 9]], [1], [[[6, 3, 33, 21]]]), (2, 2, [[30, 15]], [1], None)):
        processor.add_inputs_to_inference_session(s, f, obj, input_points=[[pts]], input_labels=[[labels]],
                                                  input_boxes=boxes)
        tracker(inference_session=s, frame_idx=f)
    want = np.stack([(F.interpolate(out.pred_masks.float(), size=(H, W), mode="bilinear") > 0).any(0)[0].numpy()
                     for out in tracker.propagate_in_video_iterator(s, start_frame_idx=0)])
    assert want.any() and not want.all()
    got = point_masks(clip, "tiny-sam3", "20,9 | 30,15@2", box="6,3,33,21").frames(0, FRAMES)[..., 0]
    np.testing.assert_array_equal(got, want.astype(np.uint8) * 255)
    # What the fields took before means what it meant: one object, on the first frame.
    assert parse_points('[{"x": 1, "y": 2}, {"x": 3, "y": 4}]', "p") == parse_points("1,2; 3,4,9", "p") == [
        [(1, 2, 0), (3, 4, 0)]]
    assert parse_points("{'x': 5, 'y': 6}", "p") == [[(5, 6, 0)]]
    assert parse_box("1,2,3,4") == parse_box("[1, 2, 3, 4]") == parse_box("[[1, 2, 3, 4]]") == [[(1, 2, 3, 4, 0)]]
    assert parse_box("[[1, 2, 3, 4], [5, 6, 7, 8]]") == [[(1, 2, 3, 4, 0)], [(5, 6, 7, 8, 0)]]


def test_blockify_and_fill_as_kjnodes():
    """KJNodes' BlockifyMask and DrawMaskOnImage (the Wan Animate template's character mask): the bounding box of
    two specks, 10 x 12 pixels, cut into 2 x 3 cells (5 and 4 pixels: 10 // 4 and 12 // 4 whole cells), the two cells
    holding a speck filled; then the picture painted in the colour there, blended by a soft mask elsewhere."""
    from graph_engine import Clip, NodeError
    from nodes.mask.nodes import blockify, fill
    m = np.zeros((16, 16), np.float32)
    m[2, 2] = m[11, 13] = 0.3
    want = np.zeros((16, 16), np.float32)
    want[2:7, 2:6] = want[7:12, 10:14] = 1
    np.testing.assert_array_equal(blockify(None, m, 4), want)
    assert not blockify(None, np.zeros((4, 4), np.float32), 4).any()
    soft = want.copy()
    soft[0, 0] = 0.5
    pic = Clip.from_array(np.full((2, 16, 16, 3), 100, np.uint8), fps=8.0)
    out = fill(None, pic, soft, "#c80000").frames(0, 2)
    assert (out[:, 2:7, 2:6] == [200, 0, 0]).all() and (out[:, 0, 0] == [150, 50, 50]).all()
    assert (out[:, 15, 15] == 100).all()
    with pytest.raises(NodeError, match="mask.fill: colour 'red'"):
        fill(None, pic, soft, "red")


def test_validate_names_a_missing_prompt_and_bad_points(tmp_path, capsys):
    """An empty prompt or unreadable points passed `kinograph validate` ('ok') and stopped the run later; validate
    names them now, with the line and what to write."""
    from app.cli import main
    wf = tmp_path / "seg.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  src: {type: generate.test_pattern, params: {frames: 2}}\n"
                  "  seg: {type: mask.segment, inputs: {video: src.video}, params: {prompt: ' '}}\n"
                  "  pts: {type: mask.track_points, inputs: {video: src.video}, params: {points: '', negative: zz, box: '1,2'}}\n")
    assert main(["validate", str(wf)]) == 2
    err = capsys.readouterr().err
    assert f"{wf}:4: node seg: prompt: give a text prompt naming what to mask" in err
    assert f"{wf}:5: node pts: box: box '1,2' is not a box: give its corners as x0,y0,x1,y1" in err
    assert f"{wf}:5: node pts: negative: negative 'zz' is not a list of points" in err


# Meta's name of each of transformers' SAM 2 tensors, worked backwards from convert_sam2_video_to_hf.py's table and
# regexes (independently of nodes/mask/sam2_file.py's forward renaming); applied in order.
TO_META = (
    (r"^vision_encoder\.backbone\.", "image_encoder.trunk."),
    (r"^vision_encoder\.neck\.convs\.(\d+)\.", r"image_encoder.neck.convs.\1.conv."),
    (r"patch_embed\.projection", "patch_embed.proj"),
    (r"(blocks\.\d+\.mlp)\.proj_in", r"\1.layers.0"), (r"(blocks\.\d+\.mlp)\.proj_out", r"\1.layers.1"),
    (r"(transformer\.layers\.\d+\.mlp)\.proj_in", r"\1.layers.0"),
    (r"(transformer\.layers\.\d+\.mlp)\.proj_out", r"\1.layers.1"),
    (r"(iou_prediction_head|hypernetworks_mlps\.\d+|pred_obj_score_head|object_pointer_proj)\.layers\.0",
     r"\1.layers.1"),
    (r"(iou_prediction_head|hypernetworks_mlps\.\d+|pred_obj_score_head|object_pointer_proj)\.proj_in",
     r"\1.layers.0"),
    (r"(iou_prediction_head|hypernetworks_mlps\.\d+|pred_obj_score_head|object_pointer_proj)\.proj_out",
     r"\1.layers.2"),
    (r"^mask_decoder\.", "sam_mask_decoder."), (r"^prompt_encoder\.", "sam_prompt_encoder."),
    (r"upscale_conv1", "output_upscaling.0"), (r"upscale_layer_norm", "output_upscaling.1"),
    (r"upscale_conv2", "output_upscaling.3"),
    (r"mask_embed\.conv1", "mask_downscaling.0"), (r"mask_embed\.layer_norm1", "mask_downscaling.1"),
    (r"mask_embed\.conv2", "mask_downscaling.3"), (r"mask_embed\.layer_norm2", "mask_downscaling.4"),
    (r"mask_embed\.conv3", "mask_downscaling.6"),
    (r"shared_embedding\.positional_embedding", "pe_layer.positional_encoding_gaussian_matrix"),
    (r"memory_encoder\.projection", "memory_encoder.out_proj"), (r"feature_projection", "pix_feat_proj"),
    (r"memory_fuser", "fuser"), (r"depthwise_conv", "dwconv"), (r"pointwise_conv", "pwconv"), (r"\.scale$", ".gamma"),
    (r"mask_downsampler\.final_conv", "mask_downsampler.encoder.12"),
    (r"mask_downsampler\.layers\.(\d+)\.conv", lambda m: f"mask_downsampler.encoder.{3 * int(m.group(1))}"),
    (r"mask_downsampler\.layers\.(\d+)\.layer_norm", lambda m: f"mask_downsampler.encoder.{3 * int(m.group(1)) + 1}"),
    (r"o_proj", "out_proj"), (r"\.layer_norm", ".norm"), (r"^memory_attention\.layer_norm", "memory_attention.norm"),
    (r"temporal_positional_encoding_projection_layer", "obj_ptr_tpos_proj"),
    (r"occlusion_spatial_embedding_parameter", "no_obj_embed_spatial"),
    (r"memory_temporal_positional_encoding", "maskmem_tpos_enc"), (r"no_memory_embedding", "no_mem_embed"),
    (r"no_memory_positional_encoding", "no_mem_pos_enc"), (r"object_pointer", "obj_ptr"),
)


def meta_layout(hf: dict) -> dict:
    import re
    out = {}
    for key, value in hf.items():
        if key == "shared_image_embedding.positional_embedding":
            continue            # Meta's model has the one matrix, in its prompt encoder
        if key == "prompt_encoder.point_embed.weight":
            out.update({f"sam_prompt_encoder.point_embeddings.{i}.weight": value[i:i + 1] for i in range(4)})
            continue
        for pattern, new in TO_META:
            key = re.sub(pattern, new, key)
        out[key] = value
    return out


def test_meta_single_file_tracks_as_the_folder(models, monkeypatch):
    """kijai's models/sam2/sam2.1_hiera_*.safetensors (Meta's tensor names, fp16 or bf16): the tiny SAM 2 folder's
    weights written back in Meta's names give exactly the folder's masks; bf16 loads; a size Kinograph does not know
    and a file short of tensors, or cut short, are named."""
    import json
    import re
    from pathlib import Path
    from graph_engine import Clip, NodeError
    from safetensors.torch import load_file, save_file
    from nodes.mask import sam2_file
    from nodes.mask.segment import load_segmenter, point_masks
    folder = models / "sam2" / "tiny-sam2"
    meta = meta_layout(load_file(str(folder / "model.safetensors")))
    # Names as Meta's SAM 2 code has them (sam2/modeling), where the table's renames are least obvious.
    assert {"image_encoder.trunk.blocks.0.mlp.layers.1.weight", "image_encoder.neck.convs.0.conv.weight",
            "sam_mask_decoder.transformer.layers.0.mlp.layers.0.weight", "sam_mask_decoder.output_upscaling.1.weight",
            "memory_encoder.mask_downsampler.encoder.12.weight", "memory_encoder.mask_downsampler.encoder.1.weight",
            "memory_encoder.fuser.layers.0.gamma", "memory_encoder.out_proj.weight", "obj_ptr_proj.layers.2.weight",
            "sam_prompt_encoder.point_embeddings.3.weight", "maskmem_tpos_enc", "no_obj_ptr",
            "sam_mask_decoder.transformer.norm_final_attn.weight", "memory_attention.norm.weight"} <= set(meta)
    files = models / "sam2"
    save_file(meta, str(files / "sam2.1_hiera_tiny.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in meta.items()}, str(files / "sam2.1_hiera_tiny_bf16.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    for flag in ("enable_temporal_pos_encoding_for_object_pointers", "enable_occlusion_spatial_embedding"):
        config.pop(flag)
    with pytest.raises(NodeError, match=r"sam2.1_hiera_tiny.safetensors is a SAM 2 file of a size Kinograph does "
                                        r"not know \(Hiera 16 wide, 5 blocks\)"):
        load_segmenter("sam2.1_hiera_tiny.safetensors", kinds=("sam2_video",))
    monkeypatch.setitem(sam2_file.SIZES, (16, 5), ("hiera_test", config))
    frames = np.random.default_rng(3).integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8)
    clip = Clip(FRAMES, 8.0, W, H, lambda a, b: frames[a:b], chunk=2)
    want = point_masks(clip, "tiny-sam2", "10,12", "30,5").frames(0, FRAMES)
    assert want.any() and not want.all()
    got = point_masks(clip, "sam2.1_hiera_tiny.safetensors", "10,12", "30,5").frames(0, FRAMES)
    np.testing.assert_array_equal(got, want)
    assert load_segmenter("sam2.1_hiera_tiny_bf16.safetensors", kinds=("sam2_video",)).size == 64
    short = {k: v for k, v in meta.items() if not k.startswith("memory_attention.layers.0.self_attn")}
    save_file(short, str(files / "sam2.1_hiera_tiny_short.safetensors"))
    with pytest.raises(NodeError, match=r"short.safetensors looks like sam2.1_hiera_test but its tensors do not fit: "
                                        r"8 missing \(e.g. memory_attention.layers.0.self_attn.k_proj.bias"):
        load_segmenter("sam2.1_hiera_tiny_short.safetensors", kinds=("sam2_video",))
    # A copy cut short was told it is 'a single weight file; Kinograph reads SAM 2's Hugging Face video folder'.
    cut = files / "sam2.1_hiera_tiny_cut.safetensors"
    cut.write_bytes((files / "sam2.1_hiera_tiny.safetensors").read_bytes()[:5000])
    damaged = r"sam2.1_hiera_tiny_cut.safetensors cannot be read \(.*\): the copy is damaged or incomplete"
    with pytest.raises(NodeError, match=damaged):
        load_segmenter(cut.name, kinds=("sam2_video",))
    # a damaged copy: a tensor of another shape, a prompt table missing (torch's RuntimeError, a KeyError before)
    for bad, said in [(dict(meta, **{"memory_attention.norm.weight": torch.zeros(3)}),
                       r"size mismatch for memory_attention\.\S+: copying a param with shape "
                       r"torch.Size\(\[3\]\)"),
                      ({k: v for k, v in meta.items() if k != "sam_prompt_encoder.point_embeddings.2.weight"},
                       r"1 missing \(e.g. prompt_encoder.point_embed.2.weight")]:
        save_file(bad, str(files / "sam2.1_hiera_tiny_bad.safetensors"))
        with pytest.raises(NodeError, match=r"bad.safetensors looks like sam2.1_hiera_test but its tensors do not "
                                            r"fit: " + said):
            load_segmenter("sam2.1_hiera_tiny_bad.safetensors", kinds=("sam2_video",))
    # Each published size, built without memory (meta tensors) and written in Meta's names, is told apart by its
    # tensors and fits the config chosen for it, name for name and shape for shape.
    from transformers import Sam2VideoConfig, Sam2VideoModel
    for size, v21 in [(s, True) for s in ("tiny", "small", "base_plus", "large")] + [("tiny", False)]:
        (width, blocks), (_, kwargs) = next((k, v) for k, v in sam2_file.SIZES.items() if v[0] == "hiera_" + size)
        with torch.device("meta"):
            model = Sam2VideoModel(Sam2VideoConfig(**kwargs, enable_occlusion_spatial_embedding=v21,
                                                   enable_temporal_pos_encoding_for_object_pointers=v21))
        hf = model.state_dict()
        name, config = sam2_file.size_of(Path(size), meta_layout(hf))
        assert name == ("sam2.1_hiera_" if v21 else "sam2_hiera_") + size
        assert config.vision_config.backbone_config.hidden_size == width
        assert sum(config.vision_config.backbone_config.blocks_per_stage) == blocks
        converted = sam2_file.convert(meta_layout(hf))
        assert {k: v.shape for k, v in converted.items()} == {k: v.shape for k, v in hf.items()}
    # `kinograph info` says the file loads, and which node reads it.
    from nodes.generate.model_manager import list_found_models
    rows = {Path(p).name: d for kind, p, d in list_found_models() if kind == "sam2"}
    assert (rows["sam2.1_hiera_tiny.safetensors"]["loads"], rows["sam2.1_hiera_tiny.safetensors"]["note"]) == (
        "yes", "mask.track_points")
    assert rows[cut.name]["loads"] == "no" and re.search(damaged, rows[cut.name]["note"])
    # mask.segment (SAM 3) still names the file as not its model.
    with pytest.raises(NodeError, match="is a single weight file; Kinograph reads SAM 3's"):
        load_segmenter("sam2.1_hiera_tiny.safetensors")


def test_kijai_sam2_workflow_imports_its_objects_and_boxes():
    """kijai's Sam2Segmentation fed by KJNodes' PointsEditor (widgets as the Wan Animate template saves them): its
    drawn boxes were dropped on import ('bbox outputs are not carried') and individual_objects=True (each positive
    point an object, the i-th negative point off the i-th object, the first repeated) was not carried. Both now
    become mask.track_points' objects."""
    from app.comfyui import import_data
    editor = {"points_store": "{}", "coordinates": '[{"x":256,"y":256},{"x":100,"y":120}]',
              "neg_coordinates": '[{"x":0,"y":0}]', "bbox_store": "[]",
              "bboxes": '[{"startX":200,"startY":220,"endX":10,"endY":20},{"startX":300,"startY":40,"endX":400,'
                        '"endY":90},{}]', "bbox_format": "xyxy", "width": 512, "height": 512, "normalize": False,
              "bg_image": ["1", 0]}

    def imported(individual, fmt="xyxy"):
        api = {"1": {"class_type": "LoadImage", "inputs": {"image": "frame.png"}},
               "2": {"class_type": "DownloadAndLoadSAM2Model", "inputs": {
                   "model": "sam2.1_hiera_tiny.safetensors", "segmentor": "video", "device": "cuda",
                   "precision": "fp16"}},
               "3": {"class_type": "PointsEditor", "inputs": dict(editor, bbox_format=fmt)},
               "4": {"class_type": "Sam2Segmentation", "inputs": {
                   "sam2_model": ["2", 0], "image": ["1", 0], "keep_model_loaded": True, "coordinates_positive": ["3", 0],
                   "coordinates_negative": ["3", 1], "bboxes": ["3", 2], "individual_objects": individual}},
               "5": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
               "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "m"}}}
        res = import_data(api)
        (track,) = [n for n in res.graph.nodes.values() if n.type == "mask.track_points"]
        return track.params, " ".join(n for e in res.report.entries.values() for n in e.notes)

    params, notes = imported(True)
    assert params == {"points": "256,256 | 100,120", "negative": "0,0 | 0,0", "box": "10,20,200,220 | 300,40,400,90",
                      "model": "sam2.1_hiera_tiny.safetensors"}
    assert "not carried" not in notes.replace("bbox_mask and cropped_image are not", "")
    from nodes.mask.segment import prompts
    assert sorted(prompts(params["points"], params["negative"], params["box"])[0]) == [1, 2]
    params, notes = imported(False, "xywh")
    assert params["points"] == editor["coordinates"] and params["negative"] == editor["neg_coordinates"]
    assert params["box"] == "10,20,200,220 | 300,40,400,90" and "bbox_format xywh" in notes


def test_kijai_add_points_chain_imports_as_one_tracker():
    """kijai's Sam2VideoSegmentationAddPoints chain (widgets frame_index, object_index; each hands its
    inference_state on) into Sam2VideoSegmentation was not mapped: the clicks of every link become one
    mask.track_points, each on its frame, each object_index a '|' group (the same object and frame again replaces its
    clicks, as add_new_points clears old points), on the first link's image."""
    from app.comfyui import import_data
    from nodes.mask.segment import prompts
    api = {"1": {"class_type": "VHS_LoadVideo", "inputs": {"video": "shot.mp4"}},
           "2": {"class_type": "DownloadAndLoadSAM2Model", "inputs": {
               "model": "sam2.1_hiera_small.safetensors", "segmentor": "video", "device": "cuda", "precision": "bf16"}},
           "3": {"class_type": "Sam2VideoSegmentationAddPoints", "inputs": {
               "sam2_model": ["2", 0], "image": ["1", 0], "frame_index": 0, "object_index": 0,
               "coordinates_positive": '[{"x":256,"y":200},{"x":260,"y":300}]', "coordinates_negative": '[{"x":5,"y":5}]'}},
           "4": {"class_type": "Sam2VideoSegmentationAddPoints", "inputs": {
               "sam2_model": ["3", 0], "prev_inference_state": ["3", 1], "frame_index": 12, "object_index": 1,
               "coordinates_positive": '[{"x":40,"y":41}]'}},
           "5": {"class_type": "Sam2VideoSegmentationAddPoints", "inputs": {
               "sam2_model": ["4", 0], "prev_inference_state": ["4", 1], "frame_index": 30, "object_index": 0,
               "coordinates_positive": '[{"x":300,"y":310}]'}},
           "6": {"class_type": "Sam2VideoSegmentationAddPoints", "inputs": {
               "sam2_model": ["5", 0], "prev_inference_state": ["5", 1], "frame_index": 12, "object_index": 1,
               "coordinates_positive": '[{"x":44,"y":45}]'}},
           "7": {"class_type": "Sam2VideoSegmentation", "inputs": {
               "sam2_model": ["6", 0], "inference_state": ["6", 1], "keep_model_loaded": True}},
           "8": {"class_type": "MaskToImage", "inputs": {"mask": ["7", 0]}},
           "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "m"}}}
    res = import_data(api)
    assert not [e.class_type for e in res.report.entries.values() if e.status == "unmapped"]
    (track,) = [n for n in res.graph.nodes.values() if n.type == "mask.track_points"]
    assert track.params == {"model": "sam2.1_hiera_small.safetensors", "points": "256,200; 260,300; 300,310@30 | 44,45@12",
                            "negative": "5,5 | "}
    (video,) = [n for n in res.graph.nodes.values() if n.type == "io.load_video"]
    assert res.graph.inputs[track.id]["video"] == (video.id, "video")
    assert {f: sorted(o) for f, o in prompts(track.params["points"], track.params["negative"]).items()} == {
        0: [1], 12: [2], 30: [1]}


def test_sam3_detect_with_points_imports_as_sam3_tracking():
    """ComfyUI's SAM3_Detect given PointsEditor's clicks and no text (its positive_coords / negative_coords, "KJNodes
    PointsEditor format") imported as mask.segment with no prompt ('set prompt by hand'), the clicks dropped; it is
    mask.track_points on SAM 3's folder now, the loader folded in."""
    from app.comfyui import import_data
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "frame.png"}},
           "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sam3.1_multiplex_fp16.safetensors"}},
           "3": {"class_type": "PointsEditor", "inputs": {
               "points_store": "{}", "coordinates": '[{"x":120,"y":80}]', "neg_coordinates": '[{"x":4,"y":5}]',
               "bbox_store": "[]", "bboxes": "[]", "bbox_format": "xyxy", "width": 512, "height": 512,
               "normalize": False}},
           "4": {"class_type": "SAM3_Detect", "inputs": {
               "model": ["2", 0], "image": ["1", 0], "positive_coords": ["3", 0], "negative_coords": ["3", 1],
               "threshold": 0.5, "refine_iterations": 2, "individual_masks": False}},
           "5": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
           "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "m"}}}
    res = import_data(api)
    types = sorted(n.type for n in res.graph.nodes.values())
    assert "mask.segment" not in types and "load.model" not in types
    (track,) = [n for n in res.graph.nodes.values() if n.type == "mask.track_points"]
    assert track.params == {"model": "sam3", "points": '[{"x":120,"y":80}]', "negative": '[{"x":4,"y":5}]'}
    notes = " ".join(res.report.entries["4"].notes)
    assert "SAM 3's tracker finds the object under them" in notes and "set prompt by hand" not in notes


def test_a_frame_number_past_any_number_is_named_as_unreadable_points():
    """x,y@inf (or @1e400, a box's @inf) raised OverflowError out of int(): validate said 'could not be checked
    (OverflowError: cannot convert float infinity to integer)' and a run stopped on it bare."""
    from graph_engine import NodeError
    from nodes.mask.segment import parse_box, parse_points
    for text in ("10,10@inf", "10,10@1e400"):
        with pytest.raises(NodeError, match=f"points '{text}' is not a list of points"):
            parse_points(text, "points")
    with pytest.raises(NodeError, match="box '1,2,30,40@inf' is not a box"):
        parse_box("1,2,30,40@inf")


def test_a_kijai_click_on_no_frame_or_object_is_named_on_import():
    """A received kijai workflow whose Sam2VideoSegmentationAddPoints says frame_index or object_index 1e999 (JSON's
    infinity) stopped the import with OverflowError; frame_index -5 was written as points '5,5@-5', which the node
    then refused. Both are now a line saying the clicks cannot be read, and the import goes on."""
    from app.comfyui import import_data

    def chain(frame, obj):
        return {"1": {"class_type": "VHS_LoadVideo", "inputs": {"video": "shot.mp4"}},
                "2": {"class_type": "DownloadAndLoadSAM2Model", "inputs": {
                    "model": "sam2.1_hiera_small.safetensors", "segmentor": "video", "device": "cuda",
                    "precision": "bf16"}},
                "3": {"class_type": "Sam2VideoSegmentationAddPoints", "inputs": {
                    "sam2_model": ["2", 0], "image": ["1", 0], "frame_index": frame, "object_index": obj,
                    "coordinates_positive": '[{"x":5,"y":5}]'}},
                "7": {"class_type": "Sam2VideoSegmentation", "inputs": {
                    "sam2_model": ["3", 0], "inference_state": ["3", 1], "keep_model_loaded": True}}}
    for frame, obj, said in ((0, float("inf"), "object_index inf"), (float("inf"), 0, "frame_index inf"),
                             (-5, 0, "frame_index -5")):
        res = import_data(chain(frame, obj))
        (track,) = [n for n in res.graph.nodes.values() if n.type == "mask.track_points"]
        assert "points" not in track.params
        (line,) = [e for e in res.report.entries.values() if e.class_type == "Sam2VideoSegmentationAddPoints"]
        assert any(f"its clicks cannot be read ({said}" in n for n in line.notes), line.notes
    # The same in a PointsEditor's drawn boxes: a corner of 1e999 stopped the import with OverflowError.
    from app.comfyui.mapping import Approx, points_editor_boxes
    with pytest.raises(Approx, match="cannot be read; no box carried"):
        points_editor_boxes('[{"startX": 1e999, "startY": 0, "endX": 5, "endY": 5}]')


def test_more_objects_or_clicks_than_sam_tracks_are_refused_when_read():
    """SAM tracks every object in memory of its own and reads every point as a token: 800 KB of '1,1|' in a received
    workflow named 200,000 objects, which validate passed and a run handed to the model."""
    from graph_engine import NodeError
    from nodes.mask.segment import MAX_OBJECTS, MAX_POINTS, parse_box, points_problem, prompts
    many = "|".join(["1,1"] * (MAX_OBJECTS + 1))
    with pytest.raises(NodeError, match=rf"points '1,1\|1,1.*names {MAX_OBJECTS + 1} objects \('\|' between "
                                        rf"objects\); SAM tracks at most {MAX_OBJECTS}"):
        prompts(many)
    assert "SAM tracks at most" in points_problem("points", False)(many)       # validate's check of the parameter
    with pytest.raises(NodeError, match=rf"names {MAX_POINTS + 1:,} positions for one object; SAM takes at most "
                                        rf"{MAX_POINTS}"):
        prompts("; ".join(["1,1"] * (MAX_POINTS + 1)))
    with pytest.raises(NodeError, match=rf"box .*names {MAX_OBJECTS + 1} objects"):
        parse_box("|".join(["1,1,5,5"] * (MAX_OBJECTS + 1)))
    assert len(prompts("|".join(["1,1"] * MAX_OBJECTS))[0]) == MAX_OBJECTS
