"""FluxGuidance on import, for every family: ComfyUI hands its value to the models that have a guidance input (its
model_base's Flux with guidance_in: FLUX.1 dev, FLUX.2 dev; HunyuanVideo) and the others drop it, their KSampler's cfg
standing. Kinograph's sample cfg is the guidance for the first kind and the true CFG for the rest. API-format graphs
with no model files, or header-only checks of tiny files for the releases a family has both kinds of."""
from __future__ import annotations

import pytest
import torch

# ComfyUI's models told FluxGuidance's value, by Kinograph family (comfy/model_base.py: Flux and Flux2 with
# guidance_embed, HunyuanVideo). HunyuanVideo 1.5's cfg-distilled releases have a guidance input too, but Kinograph tells
# them ComfyUI's default 6 (hunyuan15_distilled.GUIDANCE) and its sample's cfg stays a true CFG, as the KSampler's.
READ_BY = {"flux", "flux2", "hunyuan"}


def _graph(clip_type: str, cfg: float, unet: str = "absent.safetensors") -> dict:
    """CLIPLoader of `clip_type`, FluxGuidance 4 on the prompt, KSampler at `cfg`."""
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "te.safetensors", "type": clip_type,
                                                     "device": "default"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a sign that says hi"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "blurry"}},
        "5": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["3", 0], "guidance": 4.0}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "7": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["5", 0], "negative": ["4", 0],
                                                   "latent_image": ["6", 0], "seed": 1, "steps": 20, "cfg": cfg,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "8": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["8", 0]}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "x"}}}


def _sample_cfg(graph: dict) -> list:
    from app.comfyui import import_data
    return [n.params["cfg"] for n in import_data(graph).graph.nodes.values() if n.type == "generate.sample"]


def _families():
    from nodes.generate.split import TYPE_OF
    return sorted(TYPE_OF.items())


@pytest.mark.parametrize("family, clip_type", _families())
@pytest.mark.parametrize("cfg", [5.0, 1.0])
def test_flux_guidance_is_sample_cfg_only_for_models_that_read_it(family, clip_type, cfg):
    """cfg 5: the true CFG of a model without a guidance input (before: 4); cfg 1: no negative pass ComfyUI never
    runs (before: 4 on Chroma, Z-Image, Qwen-Image... sampled a negative at true CFG 4)."""
    assert _sample_cfg(_graph(clip_type, cfg)) == [4.0 if family in READ_BY else cfg]


def _write(path, state: dict) -> str:
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path.name


@pytest.mark.parametrize("release, clip_type, reads", [
    ("flux-dev", "flux", True), ("flux-schnell", "flux", False), ("flux2-dev", "flux2", True),
    ("flux2-klein", "flux2", False)])
def test_the_model_file_tells_a_release_without_a_guidance_input(release, clip_type, reads, tmp_path, monkeypatch):
    """FLUX.1 schnell and FLUX.2 [klein] share their family's text encoder type with dev; their transformer has no
    guidance_in (tiny files in Black Forest Labs' names, as ComfyUI's loaders read them), so ComfyUI ignores
    FluxGuidance: the KSampler's cfg 1 stands instead of becoming 4."""
    from diffusers import Flux2Transformer2DModel, FluxTransformer2DModel
    import tiny_flux
    import tiny_flux2
    torch.manual_seed(0)
    if release.startswith("flux2"):
        t = Flux2Transformer2DModel(in_channels=128, num_layers=1, num_single_layers=1, attention_head_dim=16,
                                    num_attention_heads=2, joint_attention_dim=96, axes_dims_rope=(4, 4, 4, 4),
                                    guidance_embeds=release.endswith("dev"))
        state = tiny_flux2.bfl_transformer(t.state_dict())
    else:
        t = FluxTransformer2DModel(in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
                                   num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=64,
                                   guidance_embeds=release.endswith("dev"), axes_dims_rope=(4, 6, 6))
        state = tiny_flux.bfl_transformer(t.state_dict())
    name = _write(tmp_path / "diffusion_models" / f"{release}.safetensors", state)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    assert _sample_cfg(_graph(clip_type, 1.0, name)) == [4.0 if reads else 1.0]


def test_flux_guidance_rides_through_instruct_pix_to_pix_conditioning():
    """ComfyUI's FLUX.1 Depth / Canny / Fill templates set FluxGuidance (10 here, 30 in the others) before
    InstructPixToPixConditioning or InpaintModelConditioning, which keep it on the prompts they pass on; the KSampler
    is at cfg 1. The importer carried the guidance only through single-conditioning nodes, so these sampled at
    guidance 1."""
    from pathlib import Path
    from app.comfyui import import_workflow
    template = Path(__file__).parent / "data" / "comfyui" / "templates" / "flux_depth_lora_example.json"
    graph = import_workflow(template).graph
    assert graph.inputs["k_sampler_150_3"]["positive"][0] == "instruct_pix_to_pix_conditioning_150_35"
    assert graph.nodes["k_sampler_150_3"].params["cfg"] == 10
