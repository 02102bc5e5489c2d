"""Z-Image keyframes: the files a Z-Image user holds (ComfyUI's split files: the transformer in ComfyUI's names,
qwen_3_4b loaded with CLIPLoader type lumina2, FLUX.1's ae.safetensors; a diffusers ZImagePipeline folder) are
recognised, load, and sample what diffusers' own ZImagePipeline gives for the same weights, prompts and seed: Turbo at
cfg 1, the base model with true CFG and a negative prompt. ComfyUI's Z-Image Turbo template imports and runs on them.
The tiny model's ComfyUI-layout file is written by inverting diffusers' converter by hand (tests/tiny_zimage.py)."""
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48


@pytest.fixture(scope="module")
def zimage(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_zimage import build_zimage
    yield from models_dir(tmp_path_factory, build_zimage, "zimage")


def _reference(root, prompt, negative, cfg, seed, steps=2, sigmas=None):
    """ZImagePipeline's own latent [1, 16, h, w] (its guidance_scale is cfg - 1: it adds g (pos - neg) to pos); on
    given levels (sigmas) its scheduler is told not to shift them."""
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline
    ref = ZImagePipeline.from_pretrained(str(root / "diffusers"), local_files_only=True)
    if sigmas is not None:
        ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return ref(prompt, negative_prompt=negative, width=W, height=H, num_inference_steps=steps, sigmas=sigmas,
               guidance_scale=cfg - 1, generator=torch.Generator().manual_seed(seed), output_type="latent").images


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_zimage_files_are_detected_and_others_are_named(zimage):
    from nodes.generate.detect import detect_keys
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model, load_text_encoder
    models = zimage / "models"
    got = describe_model(models / "diffusion_models" / "z_image_turbo_tiny.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("zimage", "diffusion_model", "yes"), got
    # the ZImagePipeline folder's transformer file, in diffusers' names (all_x_embedder.2-1), is Z-Image too
    got = describe_model(zimage / "diffusers" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("zimage", "diffusion_model", "yes"), got
    # Lumina-Image 2.0: the same NextDiT blocks reading Gemma 2's 2304-wide states, named and refused
    lumina = detect_keys({"cap_embedder.0.weight": (2304,), "layers.0.attention.qkv.weight": (6912, 2304),
                          "x_embedder.weight": (2304, 64)})
    assert (lumina.role, lumina.family) == (None, "lumina2") and "Lumina-Image 2.0" in lumina.why, lumina
    mm = ModelManager()
    # the text encoder given as the diffusion model, and FLUX.1's VAE as Z-Image's text encoder: each named
    with pytest.raises(NodeError, match=r"qwen_3_4b_tiny.safetensors is qwen3 .*text_encoder.*, not a diffusion model"):
        load_diffusion_model(mm, str(models / "text_encoders" / "qwen_3_4b_tiny.safetensors"), "default", "cpu")
    with pytest.raises(NodeError, match=r"ae.safetensors is .*vae.*, not a text encoder"):
        load_text_encoder(mm, str(models / "vae" / "ae.safetensors"), "", "lumina2", "cpu")


def test_zimage_split_files_and_folder_match_zimagepipeline(zimage):
    """The transformer from ComfyUI's names, qwen_3_4b (type lumina2) and FLUX.1's ae.safetensors; and the diffusers
    folder through load.model: both give ZImagePipeline's latent, Turbo's way (cfg 1, no negative pass) and the base
    model's (cfg 4 with a negative prompt of another length)."""
    from comfy_layouts import sample_cat
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    mm = ModelManager()
    model = load_diffusion_model(mm, "z_image_turbo_tiny.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "qwen_3_4b_tiny.safetensors", "", "lumina2", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    assert (model.family, te.family, vae.family) == ("zimage", "zimage", "flux")
    h = mm.load("zimage", str(zimage / "diffusers"))
    p = mm.components(h)
    for cfg, negative in ((1.0, None), (4.0, "blurry, low quality")):
        want = _reference(zimage, "a cat", negative, cfg, 7)
        assert _err(want, sample_cat(model, te, vae, cfg, negative, (W, H))) < 1e-3
        assert _err(want, sample_cat(h, p["text_encoder"], p["vae"], cfg, negative, (W, H))) < 1e-4
    # each prompt reads its own tokens: the chat template's around "a cat", no padding
    cond = encode_prompt(te, "a cat")
    ids = te.pipe.tokenizer.apply_chat_template([{"role": "user", "content": "a cat"}], tokenize=True,
                                                add_generation_prompt=True, enable_thinking=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert cond.embeds.shape[1] == len(ids) and bool(cond.mask.all())


def test_zimage_text_encoder_of_another_family_is_named(zimage):
    """qwen_3_4b loaded with type auto is FLUX.2 [klein]'s: sampling Z-Image with it names the mismatch."""
    from comfy_layouts import auto_encoder_mismatch
    message = auto_encoder_mismatch("z_image_turbo_tiny.safetensors", "qwen_3_4b_tiny.safetensors")
    assert "encoded for flux2, but the model is zimage" in message, message


def test_comfyui_zimage_turbo_template_imports_and_runs(zimage, tmp_path, monkeypatch):
    """ComfyUI's own "Z-Image Turbo text to image" template (a subgraph: UNETLoader, CLIPLoader qwen_3_4b type lumina2,
    VAELoader ae, ModelSamplingAuraFlow 3, CLIPTextEncode, ConditioningZeroOut as the negative, EmptySD3LatentImage,
    KSampler 8 steps cfg 1 res_multistep / simple). Every node maps and it runs on the tiny model under the template's
    file names (64x48, 2 steps); with euler the latent is ZImagePipeline's with its prompt and seed on ComfyUI's levels
    (simple at shift 3: 1, 0.75)."""
    from comfy_layouts import imported_template, sampled_latent
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(
        zimage / "models",
        (("diffusion_models/z_image_turbo_bf16.safetensors", "diffusion_models/z_image_turbo_tiny.safetensors"),
         ("text_encoders/qwen_3_4b.safetensors", "text_encoders/qwen_3_4b_tiny.safetensors"),
         ("text_encoders/qwen_3_4b", "text_encoders/qwen_3_4b_tiny")),
        TEMPLATES / "image_z_image_turbo.json", (W, H), (8, 2))
    assert yaml.count(f"width: {W}") == 1 and "steps: 2" in yaml and "sampler: res_multistep" in yaml, yaml

    def run(yaml):
        return sampled_latent(tmp_path / "zimage.kino.yaml", yaml)
    assert torch.isfinite(run(yaml)).all()
    got = run(yaml.replace("sampler: res_multistep", "sampler: euler"))
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    text = next(n for n in sub if n["type"] == "CLIPTextEncode")["widgets_values"][0]
    seed = next(n for n in sub if n["type"] == "KSampler")["widgets_values"][0]
    assert _err(_reference(zimage, text, None, 1.0, seed, sigmas=[1.0, 0.75]), got) < 1e-3


def test_zimage_loras_in_comfyuis_and_diffusers_names_apply(zimage):
    """Z-Image LoRAs name the transformer's layers as the model they were made on: diffusers' (attention.to_q, as
    ai-toolkit saves them) or ComfyUI's, whose attention.qkv and attention.out diffusers ignored with a warning (the
    LoRA half applied). Both now sample as the transformer with the LoRA merged into its weights."""
    from safetensors.torch import load_file, save_file
    from tiny_flux import comfy_lora
    from tiny_zimage import comfy_transformer
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    models = zimage / "models"
    (models / "loras").mkdir(exist_ok=True)
    sd = {k: v.float() for k, v in
          load_file(str(zimage / "diffusers" / "transformer" / "diffusion_pytorch_model.safetensors")).items()}
    comfy = comfy_transformer(sd)
    layouts = {"diffusers": comfy_lora(sd, ("layers.0.attention.to_q", "noise_refiner.0.attention.to_out.0",
                                            "layers.1.feed_forward.w1")),
               "comfyui": comfy_lora(comfy, ("layers.0.attention.qkv", "layers.1.attention.out", "x_embedder",
                                             "context_refiner.0.feed_forward.w2"))}
    mm = ModelManager()
    te = load_text_encoder(mm, "qwen_3_4b_tiny.safetensors", "", "lumina2", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")

    def sample(model):
        return run_sampling(model, encode_prompt(te, "a cat"), None, empty_latent(vae, 1, W, H, 8.0), steps=2,
                            cfg=1.0, sampler="euler", seed=7).samples
    model = load_diffusion_model(mm, "z_image_turbo_tiny.safetensors", "default", "cpu")
    for name, (lora, merged) in layouts.items():
        save_file(lora, str(models / "loras" / f"zimage_lora_{name}.safetensors"))
        if name == "diffusers":
            merged = comfy_transformer(merged)
        save_file({k: v.contiguous() for k, v in merged.items()},
                  str(models / "diffusion_models" / f"zimage_merged_{name}.safetensors"))
        want = sample(load_diffusion_model(mm, f"zimage_merged_{name}.safetensors", "default", "cpu"))
        assert _err(want, sample(add_lora(model, f"zimage_lora_{name}.safetensors", 1.0))) < 1e-4, name
        assert _err(want, sample(model)) > 1e-2, name
