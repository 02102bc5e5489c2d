"""TripoSplat's flow model (nodes/generate/triposplat_flow.py) and its sampling (adapters/triposplat.py) against
ComfyUI's LatentSeqMMFlowModel and KSampler written out in triposplat_reference.py, on a tiny random file in the
layout of VAST-AI/TripoSplat's diffusion_models/triposplat_fp16.safetensors. ComfyUI's latent is 8192 shape tokens;
the tests use its first 64 (the model reads the Sobol anchors of as many tokens as it is given) to stay fast."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import triposplat_reference as ref  # noqa: E402

TOKENS, CONTEXT, PATCHES = 64, 32, 4       # shape tokens; DINOv3's width; its patches (2 x 2, FLUX.2's latent too)
# the real model: 1024 wide, 16 heads of 64, 24 blocks, 2 refiners, DINOv3 ViT-H's 1280-wide tokens
FLOW = dict(q_token_length=TOKENS, model_channels=48, cond_channels=CONTEXT, num_blocks=1, num_refiner_blocks=1,
            num_head_channels=24, mlp_ratio=2)
MODEL = "triposplat_fp16.safetensors"


@pytest.fixture(scope="module")
def comfy_flow():
    """ComfyUI's model with random weights: norms and gains away from 1 / 0, the rotary frequencies as built."""
    torch.manual_seed(0)
    model = ref.LatentSeqMMFlowModel(**FLOW)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "freqs_" in name:
                continue
            one = "gamma" in name or name.endswith(("norm.weight", "norm1.weight", "norm2.weight"))
            p.copy_(torch.randn_like(p) * (0.3 if one else 0.1) + (1.0 if one else 0.0))
    return model.eval()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, comfy_flow):
    root = tmp_path_factory.mktemp("triposplat_flow")
    (root / "diffusion_models").mkdir()
    save_file({k: v.contiguous() for k, v in comfy_flow.state_dict().items()}, str(root / "diffusion_models" / MODEL))
    return root


def _picture(seed):
    """(DINOv3 tokens [1, 1 + 4 + patches, width], FLUX.2 latent [1, 128, 2, 2]) of a picture"""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 5 + PATCHES, CONTEXT, generator=g), torch.randn(1, 128, 2, 2, generator=g)


def test_flow_model_matches_comfyui(comfy_flow):
    """both streams' flows, two samples each at its own level with its own picture"""
    from nodes.generate.triposplat_flow import build_flow
    ours = build_flow(comfy_flow.state_dict())
    g = torch.Generator().manual_seed(1)
    z, cam = torch.randn(2, TOKENS, 16, generator=g), torch.randn(2, 1, 5, generator=g)
    (c1, r1), (c2, r2) = _picture(2), _picture(3)
    ctx, refs, t = torch.cat([c1, c2]), torch.cat([r1, r2]), torch.tensor([870.0, 300.0])
    with torch.no_grad():
        want = comfy_flow([z, cam], t, context=ctx, ref_latents=[refs])
        got = ours(z, cam, t, ctx, refs)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
    assert got[1].abs().mean() > 0.05


def test_sampling_is_comfyuis_ksampler(comfy_flow, models_dir, monkeypatch):
    """KSampler as the template runs it (dpmpp_2m, simple, cfg 3, the model's shift 3) on TripoSplatConditioning's
    nested latent: the same noise for the seed (shape tokens first, in ComfyUI's order, then the camera's), both
    streams sampled alike, the negative's zero tokens and zero FLUX.2 latent as ComfyUI's."""
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models_dir))
    model = load_diffusion_model(ModelManager(), MODEL, "default", "cpu")
    assert model.family == "triposplat"
    feat, refl = _picture(4)
    positive = Conditioning("triposplat", feat, extra={"reference_latents": refl})
    negative = Conditioning("triposplat", torch.zeros_like(feat), extra={"reference_latents": torch.zeros_like(refl)})
    latent = Latent(torch.zeros(1, 16, 1, 1, TOKENS), "triposplat", 1, 1.0, TOKENS, 1, camera=torch.zeros(1, 1, 5))
    seed, steps = 46, 3
    out = run_sampling(model, positive, negative, latent, steps=steps, cfg=3.0, sampler="dpmpp_2m",
                       scheduler="simple", seed=seed, frame="sigma")
    with torch.no_grad():
        want_z, want_cam = ref.ksampler(comfy_flow, (feat, refl), (torch.zeros_like(feat), torch.zeros_like(refl)),
                                        seed, steps, 3.0, tokens=TOKENS)
    got_z = out.samples.flatten(2).transpose(1, 2)
    assert got_z.shape == want_z.shape and out.camera.shape == want_cam.shape == (1, 1, 5)
    assert torch.allclose(got_z, want_z, atol=1e-3), float((got_z - want_z).abs().max())
    assert torch.allclose(out.camera, want_cam, atol=1e-3), float((out.camera - want_cam).abs().max())
    noise = torch.randn([1, TOKENS, 16], generator=torch.Generator().manual_seed(seed))
    assert (got_z - noise).abs().mean() > 0.1       # the model moved the tokens


def test_file_detected_and_wrong_inputs_named(comfy_flow, models_dir, monkeypatch):
    from types import SimpleNamespace
    from graph_engine import NodeError
    from nodes.generate.adapters.triposplat import TripoSplatAdapter
    from nodes.generate.detect import detect_file
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.model_manager import will_load
    from nodes.generate.triposplat_flow import TripoSplatParts, build_flow
    det = detect_file(models_dir / "diffusion_models" / MODEL)
    assert (det.role, det.family) == ("diffusion_model", "triposplat") and will_load(det)[0]
    cut = {k: v for k, v in comfy_flow.state_dict().items() if not k.startswith("blocks.0.mlp")}
    with pytest.raises(NodeError, match="incomplete or damaged"):
        build_flow(cut)
    adapter = TripoSplatAdapter()
    handle = SimpleNamespace(pipe=TripoSplatParts(build_flow(comfy_flow.state_dict())))
    with pytest.raises(NodeError, match="condition.triposplat makes"):
        adapter.check_latent(handle, Latent(torch.zeros(1, 32, 16, 16, 16), "trellis2", 16, 8.0, 16, 16))
    with pytest.raises(NodeError, match="make it with condition.triposplat"):
        adapter.conditioning_inputs(handle, [Conditioning("trellis2", torch.zeros(1, 7, 1024))], [0], 1, "cpu",
                                    torch.float32)
    with pytest.raises(NodeError, match="decode.triposplat"):
        adapter.vae_decode(None, None)


def test_template_sampling_imports():
    """the template's sampling: UNETLoader -> TripoSplatSamplingPreview (its live preview drawn by the editor only)
    -> KSampler, each mapped"""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    api = {"16": {"class_type": "UNETLoader", "inputs": {"unet_name": MODEL, "weight_dtype": "default"}},
           "11": {"class_type": "VAELoader", "inputs": {"vae_name": "triposplat_vae_decoder_fp16.safetensors"}},
           "97": {"class_type": "TripoSplatSamplingPreview",
                  "inputs": {"model": ["16", 0], "vae": ["11", 0], "octree_level": 5, "num_gaussians": 16384,
                             "yaw": 90, "pitch": 15, "point_size": 2}},
           "1": {"class_type": "LoadImage", "inputs": {"image": "hotel.png"}},
           "2": {"class_type": "TripoSplatPreprocessImage", "inputs": {"image": ["1", 0], "mask": ["1", 1],
                                                                       "erode_radius": 1, "size": 1024}},
           "3": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "dino_v3_vit_h.safetensors"}},
           "4": {"class_type": "VAELoader", "inputs": {"vae_name": "flux2-vae.safetensors"}},
           "5": {"class_type": "TripoSplatConditioning", "inputs": {"clip_vision": ["3", 0], "vae": ["4", 0],
                                                                    "image": ["2", 0]}},
           "6": {"class_type": "KSampler", "inputs": {"model": ["97", 0], "positive": ["5", 0], "negative": ["5", 1],
                                                      "latent_image": ["5", 2], "seed": 46, "steps": 20, "cfg": 3,
                                                      "sampler_name": "dpmpp_2m", "scheduler": "simple",
                                                      "denoise": 1}}}
    res = import_data(api)
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"], res.report
    (sampler,) = [n for n in res.graph.nodes.values() if n.type == "generate.sample"]
    assert sampler.params["sampler"] == "dpmpp_2m" and sampler.params["frame"] == "sigma"
    load_workflow(text=res.yaml)
