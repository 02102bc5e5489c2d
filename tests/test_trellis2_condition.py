"""TRELLIS.2's image conditioning (nodes/generate/trellis2_dino.py) against ComfyUI's published code written out in
trellis2_reference.py (its DINOv3, lanczos resize and Trellis2Conditioning), on a tiny random-weight DINOv3 file in
the layout of ComfyUI's clip_vision/dino_v3_L_naf_fp32.safetensors (DINOv3's tensors, the NAF upsampler under naf.)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import trellis2_reference as ref  # noqa: E402

# the real file's ViT-L/16 (1024 wide, 16 heads of 64, 24 layers, 4 registers), narrower and one layer deep
CONFIG = {"hidden_size": 128, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 256,
          "num_register_tokens": 4, "num_channels": 3, "patch_size": 16, "rope_theta": 100.0, "layer_norm_eps": 1e-5}
NAME = "dino_v3_L_naf_fp32.safetensors"


@pytest.fixture(scope="module")
def comfy():
    """ComfyUI's DINOv3 with random weights: layer scales and norms away from 1 / 0 so a swapped one would show."""
    torch.manual_seed(0)
    model = ref.DINOv3ViTModel(CONFIG)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lambda1" in name or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith(("weight", "lambda1")) else 0.0))
            else:
                p.copy_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def picture():
    """A squared picture as mask.crop_to_mask gives it: smooth shading and a sharp edge, 8-bit."""
    y, x = np.mgrid[0:96, 0:96] / 95.0
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], -1)
    rgb[30:60, 20:70] = (0.9, 0.2, 0.1)
    return (rgb * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, comfy):
    root = tmp_path_factory.mktemp("models")
    (root / "clip_vision").mkdir()
    state = {k: v.contiguous() for k, v in comfy.state_dict().items()}
    state["naf.upsampler.weight"] = torch.zeros(4, 4)          # Pixal3D's NAF rides in the same file
    save_file(state, str(root / "clip_vision" / NAME))
    return root


@pytest.fixture(scope="module")
def encoder(models_dir):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(models_dir))
    try:
        yield load_clip_vision(ModelManager(), NAME, "auto", "cpu")
    finally:
        mp.undo()


def test_conditioning_is_comfyuis(comfy, picture, encoder):
    """The positive is Trellis2Conditioning's: DINOv3's tokens of the picture resized (Lanczos) to 512 and to 1024,
    normed without the model's norm weights; the negative zeros of both."""
    from nodes.generate.trellis2_dino import conditioning
    with torch.no_grad():
        ((want_pos, want_pos_x),), ((want_neg, want_neg_x),) = ref.trellis2_conditioning(
            comfy, torch.from_numpy(picture.astype(np.float32) / 255.0)[None])
    want_1024 = want_pos_x["embeds"]
    positive, negative = conditioning(encoder, picture)
    assert positive.embeds.shape == want_pos.shape == (1, 1 + 4 + 32 * 32, 128)
    assert positive.extra["embeds_1024"].shape == want_1024.shape == (1, 1 + 4 + 64 * 64, 128)
    assert torch.allclose(positive.embeds, want_pos, atol=2e-4), float((positive.embeds - want_pos).abs().max())
    assert torch.allclose(positive.extra["embeds_1024"], want_1024, atol=2e-4)
    assert torch.equal(negative.embeds, want_neg) and torch.equal(negative.extra["embeds_1024"], want_neg_x["embeds"])
    assert positive.family == negative.family == "trellis2"


def test_file_detected_and_template_node_imported(models_dir):
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import will_load
    det = detect_file(models_dir / "clip_vision" / NAME)
    assert (det.role, det.family, det.variant) == ("clip_vision", "trellis2", "dinov3-naf")
    assert will_load(det) == (True, "load.clip_vision: DINOv3, TRELLIS.2's image encoder, for condition.trellis2")
    # the templates' chain: the picture cropped to its mask (ImageCropToMask), then Trellis2Conditioning
    api = {"15": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": NAME}},
           "122": {"class_type": "LoadImage", "inputs": {"image": "axe.png"}},
           "248": {"class_type": "ImageToMask", "inputs": {"image": ["122", 0], "channel": "red"}},
           "312": {"class_type": "ImageCropToMask", "inputs": {"images": ["122", 0], "masks": ["248", 0],
                                                               "width": 1024, "height": 1024, "pad_factor": 1.0,
                                                               "grow_mask": 0, "background": "#000000"}},
           "299": {"class_type": "Trellis2Conditioning", "inputs": {"clip_vision_model": ["15", 0],
                                                                      "image": ["312", 0]}}}
    res = import_data(api)
    assert res.report.entries["299"].status == "exact"
    (node,) = [n for n in res.graph.nodes.values() if n.type == "condition.trellis2"]
    assert set(res.graph.inputs[node.id]) == {"image_encoder", "image"}
    load_workflow(text=res.yaml)        # validates: the cropped clip's first frame is the IMAGE it reads


def test_wrong_inputs_are_named(models_dir, encoder, picture):
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision
    from nodes.generate.trellis2_dino import conditioning
    with pytest.raises(NodeError, match="needs DINOv3"):
        conditioning(None, picture)
    with pytest.raises(NodeError, match="one RGB picture"):
        conditioning(encoder, picture[..., 0])
    cut = models_dir / "clip_vision" / "dino_v3_cut.safetensors"       # a copy missing its layer's MLP
    state = {k: v.contiguous() for k, v in ref.DINOv3ViTModel(CONFIG).state_dict().items()
             if not k.startswith("layer.0.mlp.down_proj")}
    save_file(state, str(cut))
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(models_dir))
    try:
        with pytest.raises(NodeError, match="incomplete or damaged"):
            load_clip_vision(ModelManager(), cut.name, "auto", "cpu")
        with pytest.raises(NodeError, match="set family to auto"):
            load_clip_vision(ModelManager(), NAME, "wan", "cpu")
    finally:
        mp.undo()
