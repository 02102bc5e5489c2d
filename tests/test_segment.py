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


def reference_masks(segmenter, frames, prompt):
    """transformers' offline pass over the whole video, and Sam3VideoProcessor.postprocess_outputs's masks joined."""
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
        m = np.zeros((H, W), bool)
        if ids:
            low = torch.cat([out.obj_id_to_mask[i] for i in ids]).float()[:, None]
            m = (F.interpolate(low, size=(H, W), mode="bilinear", align_corners=False)[:, 0] > 0).any(0).numpy()
        out_masks.append(m)
    return np.stack(out_masks)


def test_text_prompt_tracks_as_transformers_does(models):
    from graph_engine import Clip
    from nodes.mask.segment import load_segmenter, text_masks
    frames = np.random.default_rng(0).integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8)
    clip = Clip(FRAMES, 8.0, W, H, lambda a, b: frames[a:b], chunk=2)
    want = reference_masks(load_segmenter("tiny-sam3"), frames, "cat")
    assert want.any() and not want.all()
    masks = text_masks(clip, "tiny-sam3", "cat", threshold=0.0)
    assert (masks.width, masks.height, masks.length, masks.chunk) == (W, H, FRAMES, 2)
    # A chunk after the first, then one behind it (the pass starts again), then the last.
    got = {2: masks.frames(2, 4), 0: masks.frames(0, 2)}
    got = np.concatenate([got[k] for k in sorted(got)])[..., 0]
    assert set(np.unique(got)) <= {0, 255}
    # Random weights give logits within 1e-2 of the 0 threshold: a pixel in thousands may round the other way.
    assert (got != want.astype(np.uint8) * 255).mean() < 1e-3


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
        "tiny-sam3": ("sam3_video", "yes", "mask.segment"), "tiny-sam2": ("sam2_video", "yes", "mask.track_points")}
    assert rows["not-sam"]["loads"] == "no" and "holds a clip model, not SAM 3's or SAM 2's" in rows["not-sam"]["note"]
    from nodes.mask.segment import point_masks
    with pytest.raises(NodeError, match="'x=3' is not a list of points"):
        point_masks(None, "tiny-sam2", "x=3")
    with pytest.raises(NodeError, match="at least one point"):
        point_masks(None, "tiny-sam2", "[]")
    from graph_engine import Clip
    clip = Clip(1, 8.0, W, H, lambda a, b: np.zeros((b - a, H, W, 3), np.uint8))
    with pytest.raises(NodeError, match=rf"the point 40,5 is outside the first frame \({W}x{H}\): points are x,y in "
                                        rf"the clip's own pixels \(x 0 to {W - 1}, y 0 to {H - 1}\)"):
        point_masks(clip, "tiny-sam2", "10,5", "40,5")


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
                  "  pts: {type: mask.track_points, inputs: {video: src.video}, params: {points: '', negative: zz}}\n")
    assert main(["validate", str(wf)]) == 2
    err = capsys.readouterr().err
    assert f"{wf}:4: node seg: prompt: give a text prompt naming what to mask" in err
    assert f"{wf}:5: node pts: points: give at least one point on the object in the first frame" in err
    assert f"{wf}:5: node pts: negative: negative 'zz' is not a list of points" in err
