"""FLUX.2 dev (and [klein]) keyframes and edits from the files ComfyUI's users hold (Comfy-Org/flux2-dev's split_files: the
transformer in Black Forest Labs' names as fp8mixed, Mistral Small 3 in text_encoders/, flux2-vae): detected, loaded,
and sampled to what diffusers' own Flux2Pipeline gives for the same weights, prompt, picture and seed (its prompt
layers, its empirical-mu schedule, its distilled guidance, its reference-image tokens)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Clip

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

W, H = 64, 48


@pytest.fixture(scope="module")
def flux2(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_flux2 import build_flux2
    yield from models_dir(tmp_path_factory, build_flux2, "flux2")


@pytest.fixture(scope="module")
def split(flux2):
    """The three ComfyUI files through load.diffusion_model, load.text_encoder and load.vae."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    mm = ModelManager()
    return (load_diffusion_model(mm, "flux2_dev_tiny_fp8mixed.safetensors", "default", "cpu"),
            load_text_encoder(mm, "mistral_3_small_flux2_tiny_bf16.safetensors", "", "flux2", "cpu"),
            load_vae(mm, "flux2-vae.safetensors", "cpu"))


def _picture(w=64, h=64, seed=0):
    """A picture to edit, of a size Flux2Pipeline takes as it is (sides of 64 or more, multiples of 16)."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
    return np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)


def _reference(root, pictures=(), steps=2, seed=7):
    """Flux2Pipeline's latent ([1, 128, h, w], normalised, before its VAE) for "a cat", guidance 4."""
    from diffusers import Flux2Pipeline
    from PIL import Image
    ref = Flux2Pipeline.from_pretrained(str(root / "FLUX.2-dev"), local_files_only=True)
    kw = {"image": [Image.fromarray(p) for p in pictures]} if pictures else {}
    packed = ref(prompt="a cat", width=W, height=H, num_inference_steps=steps, guidance_scale=4.0,
                 generator=torch.Generator().manual_seed(seed), output_type="latent", **kw).images
    side = 2 * ref.vae_scale_factor         # the tiny VAE halves a side once (the released one 8x), then 2x2 patches
    return packed.permute(0, 2, 1).reshape(1, 128, H // side, W // side)


def _sample(model, text_encoder, vae, pictures=(), steps=2, seed=7):
    from nodes.generate.reference import add_reference
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent, encode_clip
    pos = encode_prompt(text_encoder, "a cat")
    for p in pictures:
        pos = add_reference(pos, encode_clip(vae, Clip.from_array(p[None])))
    return run_sampling(model, pos, None, empty_latent(vae, 1, W, H, 8.0), steps=steps, cfg=4.0,
                        sampler="euler", seed=seed).samples[:, :, 0]


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_flux2_klein_split_files_match_pipeline(flux2, split):
    """FLUX.2 [klein] (no guidance input) was refused with dev; Qwen3 taken for llava-llama-3. Now its transformer
    and Qwen3 (layers 9, 18 and 27 of the prompt in Qwen3's chat template, thinking off) sample with true CFG against
    the empty prompt, as Flux2KleinPipeline (base) does at guidance 4; a dev prompt (Mistral's width) on it is named,
    not met with a shape error."""
    from diffusers import Flux2KleinPipeline
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    ref = Flux2KleinPipeline.from_pretrained(str(flux2 / "FLUX.2-klein"), local_files_only=True)
    # its latent output is the VAE's own (32 channels, the batch norm and the 2x2 patches undone)
    want = ref(prompt="a cat", width=W, height=H, num_inference_steps=2, guidance_scale=4.0,
               generator=torch.Generator().manual_seed(7), output_type="latent").images
    mean = ref.vae.bn.running_mean.view(1, -1, 1, 1)
    std = torch.sqrt(ref.vae.bn.running_var.view(1, -1, 1, 1) + ref.vae.config.batch_norm_eps)
    mm = ModelManager()
    klein = load_diffusion_model(mm, "flux-2-klein-base-4b-tiny.safetensors", "default", "cpu")
    qwen3 = load_text_encoder(mm, "qwen_3_4b_tiny.safetensors", "", "auto", "cpu")
    vae = split[2]
    latent = empty_latent(vae, 1, W, H, 8.0)
    got = run_sampling(klein, encode_prompt(qwen3, "a cat"), encode_prompt(qwen3, ""), latent, steps=2, cfg=4.0,
                       sampler="euler", seed=7).samples[:, :, 0]
    assert _err(want, ref._unpatchify_latents(got * std + mean)) < 1e-4
    with pytest.raises(NodeError, match="encoded 96 wide, and this FLUX.2 transformer reads 144"):
        run_sampling(klein, encode_prompt(split[1], "a cat"), None, latent, steps=1, cfg=1.0, sampler="euler", seed=7)


def test_flux2_files_are_detected_and_listed_as_loading(flux2):
    """FLUX.2's transformers were 'detected and named' and refused; Mistral Small 3 and Qwen3 were taken for
    HunyuanVideo's llava-llama-3, and flux2-vae for an SD VAE of 32 channels."""
    from nodes.generate.model_manager import describe_model
    models = flux2 / "models"
    got = [describe_model(models / f) for f in ("diffusion_models/flux2_dev_tiny_fp8mixed.safetensors",
                                                "text_encoders/mistral_3_small_flux2_tiny_bf16.safetensors",
                                                "vae/flux2-vae.safetensors",
                                                "diffusion_models/flux-2-klein-base-4b-tiny.safetensors",
                                                "text_encoders/qwen_3_4b_tiny.safetensors")]
    # a Flux2Pipeline folder's transformer file, in diffusers' names, moved into diffusion_models/ (was unrecognised)
    got += [describe_model(f) for f in sorted((flux2 / "FLUX.2-dev" / "transformer").glob("*.safetensors"))]
    assert [(g["family"], g["variant"], g["role"], g["precision"], g["loads"]) for g in got] == [
        ("flux2", "dev", "diffusion_model", "fp8_mixed", "yes"), ("mistral3", "h32", "text_encoder", "bf16", "yes"),
        ("flux2", "", "vae", "fp32", "yes"), ("flux2", "klein", "diffusion_model", "bf16", "yes"),
        ("qwen3", "h48", "text_encoder", "bf16", "yes"), ("flux2", "dev", "diffusion_model", "fp32", "yes")], got
    # load.model takes the family by name, as for every other family ("'flux2' is not one of: auto, sd, ...")
    from graph_engine.api import load_workflow
    load_workflow(text=f"kinograph: 1\nnodes:\n  m: {{type: load.model, params: {{path: {flux2 / 'FLUX.2-dev'}, "
                       "family: flux2}}\n")


def test_flux2_split_files_match_pipeline(flux2, split):
    """Text to image, and an edit of two pictures of two sizes (ComfyUI's ReferenceLatent, chained, through
    condition.reference; each on its own time plane, 10 and 20): the
    fp8mixed transformer (fp8 x weight_scale), Mistral's layers 10, 20 and 30 of the chat-templated prompt, the
    empirical-mu schedule and guidance 4 give Flux2Pipeline's latent; the pictures' tokens change it."""
    model, te, vae = split
    assert (model.family, te.family, vae.family) == ("flux2", "flux2", "flux2")
    want = _reference(flux2)
    assert _err(want, _sample(*split)) < 1e-4
    pictures = (_picture(), _picture(80, 64, seed=1))
    edited = _reference(flux2, pictures)
    assert _err(edited, _sample(*split, pictures=pictures)) < 1e-4
    assert _err(edited, want) > 1e-3


def test_flux2_lora_in_comfyuis_layout_applies(flux2, split):
    """A FLUX.2 LoRA (the template's Turbo LoRA layout: diffusion_model.double_blocks.N.img_attn.qkv.lora_A ...) was
    refused as "a FLUX.1 (image) LoRA": the two models' blocks have the same names. Applied now, it samples as the
    transformer with the LoRA merged into its weights."""
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    model, te, vae = split
    merged = load_diffusion_model(ModelManager(), "flux2_dev_tiny_lora_merged.safetensors", "default", "cpu")
    want = _sample(merged, te, vae)
    assert _err(want, _sample(add_lora(model, "flux2_lora_tiny_comfyui.safetensors", 1.0), te, vae)) < 1e-4
    assert _err(want, _sample(model, te, vae)) > 1e-3


def test_flux2_vaes_decode_as_the_pipeline(flux2, split):
    """latent -> picture: Flux2Pipeline's decode (x std + mean of the batch norm, 2x2 patches undone, the VAE),
    through flux2-vae and through FLUX.2-small-decoder's full_encoder_small_decoder (a narrower decoder, which
    the converter took at the encoder's widths)."""
    from diffusers import AutoencoderKLFlux2, Flux2Pipeline
    from nodes.generate.adapters import get_adapter
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    ref = Flux2Pipeline.from_pretrained(str(flux2 / "FLUX.2-dev"), local_files_only=True)
    small = AutoencoderKLFlux2.from_pretrained(str(flux2 / "small_decoder_vae"))
    side = 2 * ref.vae_scale_factor
    z = torch.randn(1, 128, H // side, W // side, generator=torch.Generator().manual_seed(1))
    for vae, handle in ((ref.vae, split[2]), (small, load_vae(ModelManager(), "full_encoder_small_decoder.safetensors",
                                                               "cpu"))):
        mean = vae.bn.running_mean.view(1, -1, 1, 1)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps)
        with torch.no_grad():
            want = vae.decode(ref._unpatchify_latents(z * std + mean), return_dict=False)[0]
            got = get_adapter("flux2").vae_decode(handle.pipe, z[:, :, None])[:, :, 0]
        assert _err(want, got) < 1e-4


def test_comfyui_flux2_template_imports_and_validates():
    """ComfyUI's FLUX.2 dev edit template (tests/data/comfyui/templates/image_flux2.json). Flux2Scheduler and
    EmptyFlux2LatentImage were unmapped, and FluxGuidance's 4 was lost on its way through ReferenceLatent (sample's
    cfg 1). Now every node maps: the schedule is sample's default (Flux2Pipeline's, from the latent's own size) at
    the template's 20 steps, the latent is latent.empty from the FLUX.2 VAE, the picture a reference, guidance 4
    sample's cfg."""
    from app.comfyui import import_workflow
    from graph_engine.api import load_workflow
    res = import_workflow(ROOT / "tests" / "data" / "comfyui" / "templates" / "image_flux2.json")
    statuses = {e.class_type: e.status for e in res.report.entries.values()}
    assert "unmapped" not in statuses.values(), statuses
    sample = next(n for n in res.graph.nodes.values() if n.type == "generate.sample")
    assert (sample.params["steps"], sample.params["scheduler"], sample.params["cfg"]) == (20, "default", 4), \
        sample.params
    types = {n.type: n.params for n in res.graph.nodes.values()}
    assert "condition.reference" in types and "latent.empty" in types
    assert types["load.text_encoder"] == {"name": "mistral_3_small_flux2_bf16.safetensors", "type": "flux2"}
    load_workflow(text=res.yaml)            # validates: raises on any problem


def test_flux2_klein_kv_reads_its_pictures_as_the_kv_pipeline(flux2, split):
    """FLUX.2 [klein] 9B KV (ComfyUI's FluxKVCache, model.reference_kv): the picture's tokens read at timestep 0,
    attending only to each other, give the latent diffusers' Flux2KleinKVPipeline gives for the same weights, picture,
    prompt and seed (its first step keeps their keys and values, its later steps reuse them; here every step
    computes them again); read the plain way, they give another one."""
    from types import SimpleNamespace
    from diffusers import Flux2KleinKVPipeline
    from PIL import Image
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.nodes import reference_kv
    from nodes.generate.reference import add_reference
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent, encode_clip
    picture = _picture()
    ref = Flux2KleinKVPipeline.from_pretrained(str(flux2 / "FLUX.2-klein"), local_files_only=True)
    want = ref(image=[Image.fromarray(picture)], prompt="a cat", width=W, height=H, num_inference_steps=2,
               generator=torch.Generator().manual_seed(7), output_type="latent").images
    mean = ref.vae.bn.running_mean.view(1, -1, 1, 1)
    std = torch.sqrt(ref.vae.bn.running_var.view(1, -1, 1, 1) + ref.vae.config.batch_norm_eps)
    mm = ModelManager()
    klein = load_diffusion_model(mm, "flux-2-klein-base-4b-tiny.safetensors", "default", "cpu")
    vae = split[2]
    pos = add_reference(encode_prompt(load_text_encoder(mm, "qwen_3_4b_tiny.safetensors", "", "auto", "cpu"), "a cat"),
                        encode_clip(vae, Clip.from_array(picture[None])))

    def sample(model):
        got = run_sampling(model, pos, None, empty_latent(vae, 1, W, H, 8.0), steps=2, cfg=1.0, sampler="euler",
                           seed=7).samples[:, :, 0]
        return ref._unpatchify_latents(got * std + mean)
    # measured: 1.3e-7 read as the KV pipeline reads it, 3.5e-4 read the plain way (one picture's pull on a
    # one-block model: small, but three orders above the match)
    assert _err(want, sample(reference_kv(None, klein))) < 1e-5
    assert _err(want, sample(klein)) > 1e-4
    with pytest.raises(NodeError, match="this is a wan model: remove it"):
        reference_kv(None, SimpleNamespace(family="wan"))
