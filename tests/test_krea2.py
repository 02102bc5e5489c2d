"""Krea 2 keyframes: the files a Krea 2 user holds (ComfyUI's split files: the transformer in Krea's / ComfyUI's names,
bf16 or int8_convrot; qwen3vl_4b loaded with CLIPLoader type krea2; qwen_image_vae; and a diffusers Krea2Pipeline
folder) are recognised, load, and sample what diffusers' own Krea2Pipeline gives for the same weights, prompts and
seed: Turbo at cfg 1, and with true CFG and a negative prompt. ComfyUI's two Krea 2 Turbo text-to-image templates import
and run on them, their prompt enhancer (TextGenerate on the same Qwen3-VL) included. The tiny model's ComfyUI-layout
file is written by inverting diffusers' converter by hand (tests/tiny_krea2.py)."""
import re
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48
BF16 = "krea2_turbo_tiny_bf16.safetensors"


@pytest.fixture(scope="module")
def krea2(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_krea2 import build_krea2
    yield from models_dir(tmp_path_factory, build_krea2, "krea2")


def _reference(root, prompt, negative, cfg, seed, steps=2, sigmas=None):
    """Krea2Pipeline's own latent [1, 16, h, w] (its guidance_scale is cfg - 1: it adds g (pos - neg) to pos); given
    levels (sigmas) go through its scheduler's time shift, as its own do."""
    from diffusers import Krea2Pipeline
    ref = Krea2Pipeline.from_pretrained(str(root / "diffusers"), local_files_only=True)
    packed = ref(prompt, negative_prompt=negative, width=W, height=H, num_inference_steps=steps, sigmas=sigmas,
                 guidance_scale=cfg - 1, generator=torch.Generator().manual_seed(seed), output_type="latent").images
    return ref._unpack_latents(packed, H, W)[:, :, 0]


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_krea2_files_are_detected_and_others_are_named(krea2):
    import numpy as np
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.qwen_edit import encode_edit
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    from tiny_krea2 import TE_NAME
    models = krea2 / "models"
    got = describe_model(models / "diffusion_models" / BF16)
    assert (got["family"], got["role"], got["loads"]) == ("krea2", "diffusion_model", "yes"), got
    # the Krea2Pipeline folder's transformer file, in diffusers' names (text_fusion), is Krea 2 too
    got = describe_model(krea2 / "diffusers" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("krea2", "diffusion_model", "yes"), got
    got = describe_model(models / "text_encoders" / f"{TE_NAME}.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("qwen3vl", "text_encoder", "yes"), got
    mm = ModelManager()
    with pytest.raises(NodeError, match=rf"{TE_NAME}.safetensors is qwen3vl .*text_encoder.*, not a diffusion model"):
        load_diffusion_model(mm, str(models / "text_encoders" / f"{TE_NAME}.safetensors"), "default", "cpu")
    # the same Qwen3-VL loaded with type auto reads prompts for Qwen-Image 2.1: sampling Krea 2 with it is named
    model = load_diffusion_model(mm, BF16, "default", "cpu")
    other = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "auto", "cpu")
    latent = empty_latent(load_vae(mm, "qwen_image_vae.safetensors", "cpu"), 1, W, H, 8.0)
    with pytest.raises(NodeError, match="encoded for qwenimage21, but the model is krea2"):
        run_sampling(model, encode_prompt(other, "a cat"), None, latent, steps=1, cfg=1.0, sampler="euler", seed=1)
    # Krea 2 reading a picture (ComfyUI's style-reference template: TextEncodeQwenImageEditPlus on its Qwen3-VL) is
    # refused by name: no diffusers pipeline reads one to check it against
    te = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "krea2", "cpu")
    with pytest.raises(NodeError, match="Krea 2 reading pictures .* is not something Kinograph runs"):
        encode_edit(te, None, "a cat", [np.zeros((32, 32, 3), np.uint8)])


def test_krea2_split_files_and_folder_match_krea2pipeline(krea2):
    """The transformer from ComfyUI's names, qwen3vl_4b (fp8_scaled, type krea2) and qwen_image_vae; and the diffusers
    folder through load.model: both give Krea2Pipeline's latent, Turbo's way (cfg 1, no negative pass) and with true
    CFG (cfg 3, a negative prompt of another length: each prompt reads its own tokens, the pipeline's padding masked)."""
    from comfy_layouts import sample_cat
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from tiny_krea2 import TE_NAME
    mm = ModelManager()
    model = load_diffusion_model(mm, BF16, "default", "cpu")
    te = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "krea2", "cpu")
    vae = load_vae(mm, "qwen_image_vae.safetensors", "cpu")
    assert (model.family, te.family, vae.family) == ("krea2", "krea2", "qwenimage")
    h = mm.load("krea2", str(krea2 / "diffusers"))
    p = mm.components(h)
    got = {}
    for cfg, negative in ((1.0, None), (3.0, "blurry, low quality")):
        want = _reference(krea2, "a cat", negative, cfg, 7)
        got[cfg] = sample_cat(model, te, vae, cfg, negative, (W, H))
        assert _err(want, got[cfg]) < 1e-4
        assert _err(want, sample_cat(h, p["text_encoder"], p["vae"], cfg, negative, (W, H))) < 1e-4
    assert _err(got[1.0], got[3.0]) > 1e-2
    # a prompt's conditioning holds its real tokens alone, each a row of the 12 tapped layers
    cond = encode_prompt(te, "a cat")
    assert bool(cond.mask.all()) and cond.embeds.shape[-1] == 12 * model.pipe.transformer.config.text_hidden_dim


def test_comfyui_krea2_turbo_templates_import_and_run(krea2, tmp_path, monkeypatch):
    """ComfyUI's "Krea 2 Turbo text to image" templates (a subgraph: UNETLoader krea2_turbo_fp8_scaled or
    _int8_convrot, CLIPLoader qwen3vl_4b_fp8_scaled type krea2, VAELoader qwen_image_vae, the prompt enhanced by
    TextGenerate on the same Qwen3-VL and passed through PreviewAny and switches to CLIPTextEncode, ConditioningZeroOut
    as the negative, EmptyLatentImage, KSampler 8 steps cfg 1 euler / simple). Every node maps and both run on the tiny
    model under the templates' file names (64x48, 2 steps, 8 enhancer tokens): the bf16 transformer gives
    Krea2Pipeline's latent for the enhanced prompt and the seed on ComfyUI's levels (simple at Krea 2's shift: 1 and
    0.5 shifted by mu 1.15); the int8_convrot file, ComfyUI's quantisation of it, the same within int8 error."""
    from safetensors.torch import load_file, save_file
    import comfy_convrot as cr
    from comfy_layouts import imported_template, link_as, written_and_sampled
    from tiny_krea2 import TE_NAME
    models = krea2 / "models"
    quantised = cr.quantise_file_state(load_file(str(models / "diffusion_models" / BF16)), 16,
                                       prefix="model.diffusion_model.")
    assert sum(k.endswith(".comfy_quant") and b'"convrot"' in bytes(v.tolist()) for k, v in quantised.items()) > 10
    save_file(quantised, str(models / "diffusion_models" / "krea2_turbo_tiny_int8_convrot.safetensors"))
    monkeypatch.chdir(tmp_path)
    encoder = (("text_encoders/qwen3vl_4b_fp8_scaled.safetensors", f"text_encoders/{TE_NAME}.safetensors"),
               ("text_encoders/qwen3vl_4b_fp8_scaled", f"text_encoders/{TE_NAME}"))
    latents = {}
    for template, published, tiny in (
            ("image_krea2_turbo_t2i.json", "krea2_turbo_fp8_scaled.safetensors", BF16),
            ("image_krea2_turbo_t2i_int8.json", "krea2_turbo_int8_convrot.safetensors",
             "krea2_turbo_tiny_int8_convrot.safetensors")):
        data, yaml = imported_template(models, ((f"diffusion_models/{published}", f"diffusion_models/{tiny}"),)
                                       + encoder, TEMPLATES / template, (W, H), (8, 2))
        assert "type: krea2" in yaml and "sampler: euler" in yaml and "scheduler: simple" in yaml, yaml
        assert re.search(r"text: text_generate_\S+\.text", yaml), yaml
        yaml = yaml.replace("max_length: 512", "max_length: 8")
        latents[template] = written_and_sampled(tmp_path / "krea2.kino.yaml", yaml)
        seed = int(re.search(r"k_sampler.*?seed: (\d+)", yaml, re.S).group(1))
        if tiny == BF16:
            text, got = latents[template]
            assert _err(_reference(krea2, text, None, 1.0, seed, sigmas=[1.0, 0.5]), got) < 1e-3
        else:           # the same template on the bf16 file
            link_as(models / "diffusion_models" / published, models / "diffusion_models" / BF16)
            text, want = written_and_sampled(tmp_path / "krea2.kino.yaml", yaml)
            assert text == latents[template][0]
            assert 0 < _err(want, latents[template][1]) < 2e-2


def test_krea2_loras_in_comfyuis_names_apply(krea2):
    """Krea 2 LoRAs as ComfyUI's and Krea's trainer save them (diffusion_model.blocks.N.attn.wq, .mlp.down,
    txtfusion's blocks, first: the style LoRAs ComfyUI's templates load with LoraLoaderModelOnly) sample as the
    transformer with the LoRA merged into its weights."""
    from safetensors.torch import load_file, save_file
    from tiny_flux import comfy_lora
    from tiny_krea2 import TE_NAME
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    models = krea2 / "models"
    (models / "loras").mkdir(exist_ok=True)
    prefix = "model.diffusion_model."
    sd = {k[len(prefix):]: v.float() for k, v in load_file(str(models / "diffusion_models" / BF16)).items()}
    lora, merged = comfy_lora(sd, ("blocks.0.attn.wq", "blocks.1.attn.gate", "blocks.0.mlp.down",
                                   "txtfusion.refiner_blocks.0.attn.wo", "txtfusion.layerwise_blocks.1.mlp.up", "first"))
    save_file(lora, str(models / "loras" / "krea2_lora.safetensors"))
    save_file({prefix + k: v.contiguous() for k, v in merged.items()},
              str(models / "diffusion_models" / "krea2_merged.safetensors"))
    mm = ModelManager()
    te = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "krea2", "cpu")
    vae = load_vae(mm, "qwen_image_vae.safetensors", "cpu")

    def sample(model):
        return run_sampling(model, encode_prompt(te, "a cat"), None, empty_latent(vae, 1, W, H, 8.0), steps=2,
                            cfg=1.0, sampler="euler", seed=7).samples
    model = load_diffusion_model(mm, BF16, "default", "cpu")
    want = sample(load_diffusion_model(mm, "krea2_merged.safetensors", "default", "cpu"))
    assert _err(want, sample(add_lora(model, "krea2_lora.safetensors", 1.0))) < 1e-4
    assert _err(want, sample(model)) > 1e-2
