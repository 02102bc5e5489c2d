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
    and a file short of tensors are named."""
    import json
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
    # mask.segment (SAM 3) still names the file as not its model.
    with pytest.raises(NodeError, match="is a single weight file; Kinograph reads SAM 3's"):
        load_segmenter("sam2.1_hiera_tiny.safetensors")
