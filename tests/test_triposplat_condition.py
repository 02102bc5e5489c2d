"""TripoSplat's image conditioning (nodes/generate/triposplat_condition.py) against ComfyUI's TripoSplatConditioning
written out below (its DINOv3 ViT-H/16+'s gated MLP beside the DINOv3 of trellis2_reference.py), on tiny random
files in the layouts of VAST-AI/TripoSplat's clip_vision/dino_v3_vit_h.safetensors and vae/flux2-vae.safetensors;
the FLUX.2 latent against diffusers' AutoencoderKLFlux2 as Flux2Pipeline encodes a reference picture."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import trellis2_reference as ref  # noqa: E402

# the real file's ViT-H/16+ (1280 wide, 20 heads of 64, 32 layers, 4 registers, SwiGLU), narrower, one layer deep
CONFIG = {"hidden_size": 128, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 192,
          "num_register_tokens": 4, "num_channels": 3, "patch_size": 16, "rope_theta": 100.0, "layer_norm_eps": 1e-5}
DINO, VAE = "dino_v3_vit_h.safetensors", "flux2-vae.safetensors"
SIDE = 32


class DINOv3ViTGatedMLP(torch.nn.Module):
    """comfy/image_encoders/dino3.py's, act "silu" (DINOV3_VITH_CONFIG's gated_mlp_act)"""
    def __init__(self, hidden_size, intermediate_size):
        super().__init__()
        self.gate_proj = torch.nn.Linear(hidden_size, intermediate_size, bias=True)
        self.up_proj = torch.nn.Linear(hidden_size, intermediate_size, bias=True)
        self.down_proj = torch.nn.Linear(intermediate_size, hidden_size, bias=True)
        self.act_fn = torch.nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def comfy_triposplat_conditioning(dino, flux2_encode, image):
    """TripoSplatConditioning.execute (image [B, H, W, 3] in 0..1; flux2_encode: ComfyUI's vae.encode)"""
    img = image.movedim(-1, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    img = (img - mean) / std
    seq = dino(pixel_values=img)[0]
    feature1 = F.layer_norm(seq.float(), seq.shape[-1:])
    r = flux2_encode(image)
    b = r.shape[0]
    positive = [[feature1, {"reference_latents": [r]}]]
    negative = [[torch.zeros_like(feature1), {"reference_latents": [torch.zeros_like(r)]}]]
    return positive, negative, {"samples": (torch.zeros([b, 8192, 16]), torch.zeros([b, 1, 5]))}


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """ComfyUI's DINOv3 ViT-H layout and a two-level FLUX.2 VAE, random, saved as ComfyUI holds them"""
    from diffusers import AutoencoderKLFlux2
    from tiny_flux2 import save_vae
    torch.manual_seed(0)
    dino = ref.DINOv3ViTModel(CONFIG)
    for layer in dino.layer:
        layer.mlp = DINOv3ViTGatedMLP(CONFIG["hidden_size"], CONFIG["intermediate_size"])
    ref.randomised(dino)
    vae = AutoencoderKLFlux2(block_out_channels=(32, 32), layers_per_block=1, latent_channels=32, norm_num_groups=32,
                             down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    with torch.no_grad():
        vae.bn.running_mean.copy_(torch.randn(128) * 0.1)
        vae.bn.running_var.copy_(torch.rand(128) + 0.5)
    root = tmp_path_factory.mktemp("triposplat")
    for sub in ("clip_vision", "vae"):
        (root / sub).mkdir()
    save_file({k: v.contiguous() for k, v in dino.state_dict().items()}, str(root / "clip_vision" / DINO))
    save_vae(vae, root / "vae" / VAE)
    return root, dino, vae.eval()


@pytest.fixture(scope="module")
def loaded(parts):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision, load_vae
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(parts[0]))
    try:
        mm = ModelManager()
        yield load_clip_vision(mm, DINO, "auto", "cpu"), load_vae(mm, VAE, "cpu")
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def picture():
    y, x = np.mgrid[0:SIDE, 0:SIDE] / (SIDE - 1)
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], -1)
    rgb[8:20, 6:24] = (0.9, 0.2, 0.1)
    return (rgb * 255).round().astype(np.uint8)


def test_conditioning_is_comfyuis(parts, loaded, picture):
    from diffusers import Flux2Pipeline
    from nodes.generate.triposplat_condition import conditioning
    _, dino, vae = parts

    def flux2_encode(image):        # as Flux2Pipeline encodes a reference picture: its mode, 2x2 patches, bn
        z = vae.encode(image.movedim(-1, 1) * 2 - 1).latent_dist.mode()
        z = Flux2Pipeline._patchify_latents(z)
        return (z - vae.bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
            vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps)

    with torch.no_grad():
        ((want, want_x),), ((want_neg, want_neg_x),), want_latent = comfy_triposplat_conditioning(
            dino, flux2_encode, torch.from_numpy(picture.astype(np.float32) / 255.0)[None])
    positive, negative, latent = conditioning(*loaded, picture)
    assert positive.embeds.shape == want.shape == (1, 1 + 4 + 2 * 2, 128)
    assert torch.allclose(positive.embeds, want, atol=2e-4), float((positive.embeds - want).abs().max())
    got_ref, want_ref = positive.extra["reference_latents"], want_x["reference_latents"][0]
    assert got_ref.shape == want_ref.shape == (1, 128, SIDE // 4, SIDE // 4)
    assert torch.allclose(got_ref, want_ref, atol=2e-4), float((got_ref - want_ref).abs().max())
    assert torch.equal(negative.embeds, want_neg)
    assert torch.equal(negative.extra["reference_latents"], want_neg_x["reference_latents"][0])
    shape_tokens = want_latent["samples"][0]
    assert torch.equal(latent.samples.flatten(2).transpose(1, 2), shape_tokens)
    assert positive.family == negative.family == latent.family == "triposplat"


def test_template_chain_imports():
    """the template's framing into its conditioning, each node exact"""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "hotel.png"}},
           "2": {"class_type": "TripoSplatPreprocessImage", "inputs": {"image": ["1", 0], "mask": ["1", 1],
                                                                       "erode_radius": 1, "size": 1024}},
           "3": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": DINO}},
           "4": {"class_type": "VAELoader", "inputs": {"vae_name": VAE}},
           "5": {"class_type": "TripoSplatConditioning", "inputs": {"clip_vision": ["3", 0], "vae": ["4", 0],
                                                                    "image": ["2", 0]}}}
    res = import_data(api)
    assert res.report.entries["2"].status == res.report.entries["5"].status == "exact"
    (node,) = [n for n in res.graph.nodes.values() if n.type == "condition.triposplat"]
    assert set(res.graph.inputs[node.id]) == {"image_encoder", "vae", "image"}
    load_workflow(text=res.yaml)


def test_wrong_inputs_are_named(loaded, picture):
    from graph_engine import NodeError
    from nodes.generate.triposplat_condition import conditioning
    encoder, vae = loaded
    with pytest.raises(NodeError, match="needs DINOv3"):
        conditioning(None, vae, picture)
    with pytest.raises(NodeError, match="needs FLUX.2's VAE"):
        conditioning(encoder, encoder, picture)
    with pytest.raises(NodeError, match="one RGB picture"):
        conditioning(encoder, vae, picture[..., 0])
    with pytest.raises(NodeError, match="multiple of 16"):
        conditioning(encoder, vae, picture[:30])
