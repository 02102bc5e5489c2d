"""FLUX.3 [klein] keyframes and edits: the files a FLUX.3 user holds (ComfyUI's split files: the base or the
step-distilled transformer in Black Forest Labs' names, bf16 or int8_convrot; qwen3vl_4b loaded with CLIPLoader type
flux3; flux2-vae) are recognised, load, and sample what diffusers' own Flux3 modular pipelines give for the same
weights, prompts, pictures and seed: the base model with true CFG and a negative prompt, the distilled one at cfg 1,
from a prompt alone and editing one or two reference pictures (condition.references). ComfyUI's four FLUX.3 [klein]
templates import and run on them, their prompt upsampler (TextGenerate on Qwen3.5) included. The tiny model's
ComfyUI-layout file is written by inverting diffusers' converter by hand (tests/tiny_flux3.py)."""
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48


@pytest.fixture(scope="module")
def flux3(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_flux3 import build_flux3
    yield from models_dir(tmp_path_factory, build_flux3, "flux3")


def _reference(root, prompt, negative, cfg, seed, distilled, size=(W, H), pictures=(), **kw):
    """The Flux3 (or Flux3Distilled) modular pipeline's latent [1, 128, h, w] for the prompt as given (its prompt
    upsampler taken out), guided at cfg (its guidance_scale) against `negative` where given, editing `pictures`."""
    from diffusers import AutoencoderKLFlux2, Flux3Transformer2DModel
    from diffusers.guiders import ClassifierFreeGuidance
    from diffusers.modular_pipelines import Flux3AutoBlocks, Flux3DistilledAutoBlocks
    from PIL import Image
    from transformers import Qwen3VLForConditionalGeneration
    from tiny_flux3 import reference_processor
    blocks = (Flux3DistilledAutoBlocks if distilled else Flux3AutoBlocks)()
    blocks.sub_blocks.pop("prompt_upsampler")
    pipe = blocks.init_pipeline()
    ref = root / "reference"
    parts = dict(transformer=Flux3Transformer2DModel.from_pretrained(str(ref / ("distilled" if distilled else "base"))),
                 vae=AutoencoderKLFlux2.from_pretrained(str(ref / "vae")), tokenizer=reference_processor(root),
                 text_encoder=Qwen3VLForConditionalGeneration.from_pretrained(str(ref / "text_encoder")))
    if not distilled:
        parts["guider"] = ClassifierFreeGuidance(guidance_scale=cfg)
    pipe.update_components(**parts)
    if negative is not None:
        kw["negative_prompt"] = negative
    if pictures:
        kw["image"] = [Image.fromarray(p) for p in pictures]
    kw.setdefault("num_inference_steps", 2)
    return pipe(prompt=prompt, width=size[0], height=size[1], generator=torch.Generator().manual_seed(seed),
                output="latents", **kw)


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def _picture(w, h, seed):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
    return np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)


def _split(mm, name):
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from tiny_flux3 import TE_NAME
    return (load_diffusion_model(mm, name, "default", "cpu"),
            load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "flux3", "cpu"),
            load_vae(mm, "flux2-vae.safetensors", "cpu"))


def test_flux3_split_files_match_the_flux3_pipelines(flux3):
    """Both transformers from ComfyUI's names are recognised (base, step-distilled) and, with qwen3vl_4b (fp8_scaled,
    type flux3) and flux2-vae, give the pipeline's latent: the base model at cfg 3.5 against a negative prompt of
    another length (each prompt read at its own 80-token window), the distilled one at cfg 1 told each step's next
    level. A prompt another family's encoder read is named."""
    from comfy_layouts import sample_cat
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    from tiny_flux3 import BASE, DISTILLED, TE_NAME
    for name, variant in ((BASE, "base"), (DISTILLED, "distilled")):
        got = describe_model(flux3 / "models" / "diffusion_models" / name)
        assert (got["family"], got["variant"], got["role"], got["loads"]) == ("flux3", variant, "diffusion_model",
                                                                               "yes"), got
    mm = ModelManager()
    got = {}
    for name, distilled, cfg, negative in ((BASE, False, 3.5, "blurry, low quality, watermark " * 4),
                                           (DISTILLED, True, 1.0, None)):
        model, te, vae = _split(mm, name)
        assert (model.family, te.family, vae.family) == ("flux3", "flux3", "flux2")
        want = _reference(flux3, "a cat", negative, cfg, 7, distilled)
        got[name] = sample_cat(model, te, vae, cfg, negative, (W, H))
        assert _err(want, got[name]) < 1e-4
    assert _err(got[BASE], got[DISTILLED]) > 1e-2
    # ComfyUI's fp8_scaled form of the base file (its blocks' matrices as fp8 with their scales) samples the same
    # within fp8 rounding
    from safetensors.torch import load_file, save_file
    from comfy_layouts import fp8_scaled
    fp8 = flux3 / "models" / "diffusion_models" / "flux3-image-klein-base-tiny-fp8-scaled.safetensors"
    save_file(fp8_scaled(load_file(str(flux3 / "models" / "diffusion_models" / BASE))), str(fp8))
    assert describe_model(fp8)["precision"] == "fp8_scaled"
    model, te, vae = _split(mm, fp8.name)
    assert 0 < _err(got[BASE], sample_cat(model, te, vae, 3.5, "blurry, low quality, watermark " * 4, (W, H))) < 2e-2
    # the same Qwen3-VL read for Krea 2 (12 layers a token, not 8) is named, not fed to the transformer
    other = encode_prompt(load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "krea2", "cpu"), "a cat")
    with pytest.raises(NodeError, match="encoded for krea2, but the model is flux3"):
        run_sampling(model, other, None, empty_latent(vae, 1, W, H, 8.0), steps=1, cfg=1.0, sampler="euler", seed=1)
    # a Qwen3-VL without a 32nd layer (Qwen3-VL 2B's 28) cannot give FLUX.3's prompt
    from comfy_layouts import link_as
    from tiny_qwen21 import comfy_text_encoder, text_encoder
    te_dir = flux3 / "models" / "text_encoders"
    save_file({k: v.contiguous() for k, v in comfy_text_encoder(text_encoder(28).state_dict()).items()},
              str(te_dir / "qwen3vl_2b_tiny.safetensors"))
    link_as(te_dir / "qwen3vl_2b_tiny", te_dir / TE_NAME)
    small = load_text_encoder(mm, "qwen3vl_2b_tiny.safetensors", "", "flux3", "cpu")
    with pytest.raises(NodeError, match="hidden state 32; this text encoder has 28 layers"):
        encode_prompt(small, "a cat")


def test_flux3_edits_match_the_flux3_pipelines(flux3):
    """condition.references (ComfyUI's ReferenceMultiLatent) on FLUX.3: one picture on the distilled model, two of
    two sizes on the base one with a negative prompt (which carries them too); the latent made is the first picture's
    size, and sampling it gives the pipeline's edit of the same pictures (one kept whole on FLUX.3's 16-pixel grid,
    several each under a megapixel)."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.reference import add_references
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from tiny_flux3 import BASE, DISTILLED
    mm = ModelManager()
    for name, distilled, cfg, negative, pictures in (
            (DISTILLED, True, 1.0, None, [_picture(64, 80, 0)]),
            (BASE, False, 3.5, "blurry", [_picture(64, 48, 1), _picture(48, 64, 2)])):
        model, te, vae = _split(mm, name)
        neg = encode_prompt(te, negative) if negative else None
        pos, neg, latent = add_references(vae, encode_prompt(te, "make it red"), neg,
                                          [Clip.from_array(p[None]) for p in pictures])
        size = pictures[0].shape[1::-1]
        want = _reference(flux3, "make it red", negative, cfg, 7, distilled, size, pictures)
        got = run_sampling(model, pos, neg if negative else None, latent, steps=2, cfg=cfg, sampler="euler",
                           seed=7).samples[:, :, 0]
        assert _err(want, got) < 1e-4
        # the references are read: the same prompt alone samples another picture
        plain = _reference(flux3, "make it red", negative, cfg, 7, distilled, size)
        assert _err(plain, got) > 1e-2


def test_flux3_cfg_left_at_auto_is_each_files_own(flux3, tmp_path):
    """generate.sample with cfg left at 0 (auto) and no negative samples the step-distilled file as
    Flux3DistilledAutoBlocks does (no guider: cfg 1, one pass), and the preflight asks no negative of it; the base
    file's auto is still the Flux3 pipeline's guidance_scale 3.5, which needs one."""
    from comfy_layouts import sampled_latent
    from nodes.generate.preflight import guidance_preflight
    from tiny_flux3 import BASE, DISTILLED, TE_NAME
    yaml = f"""kinograph: 1
nodes:
  load: {{type: load.diffusion_model, params: {{name: {DISTILLED}}}}}
  te: {{type: load.text_encoder, params: {{name: {TE_NAME}.safetensors, type: flux3}}}}
  vae: {{type: load.vae, params: {{name: flux2-vae.safetensors}}}}
  prompt: {{type: encode.text, inputs: {{text_encoder: te.text_encoder}}, params: {{text: a cat}}}}
  empty: {{type: latent.empty, inputs: {{vae: vae.vae}}, params: {{frames: 1, width: {W}, height: {H}}}}}
  k_sampler:
    type: generate.sample
    inputs: {{model: load.model, positive: prompt.positive, latent: empty.latent}}
    params: {{steps: 2, sampler: euler, seed: 7}}
"""
    got = sampled_latent(tmp_path / "auto.kino.yaml", yaml)
    assert _err(_reference(flux3, "a cat", None, 1.0, 7, True), got) < 1e-4
    no_negative = {"model": ("load.diffusion_model", {"name": DISTILLED})}
    assert guidance_preflight({"cfg": 0.0}, no_negative) == []
    no_negative["model"][1]["name"] = BASE
    assert "cfg 3.5 needs a negative" in guidance_preflight({"cfg": 0.0}, no_negative)[0][1]


# template -> the transformer it loads; the distilled text-to-image one is also run on its int8_convrot file
TEMPLATE_FILES = {"image_flux3_klein_t2i.json": "flux3-image-klein-base-int8-convrot.safetensors",
                  "image_flux3_klein_distilled_t2i.json": "flux3-image-klein-int8-convrot.safetensors",
                  "image_flux3_klein_image_edit.json": "flux3-image-klein-base-int8-convrot.safetensors",
                  "image_flux3_klein_distilled_image_edit.json": "flux3-image-klein-int8-convrot.safetensors"}
QUANTISED = "image_flux3_klein_distilled_t2i.json"


def test_comfyui_flux3_klein_templates_import_and_run(flux3, tmp_path, monkeypatch):
    """ComfyUI's four FLUX.3 [klein] templates (text to image in a subgraph, and editing; base: cfg 3.5 against an
    empty negative (its edit at cfg 1), distilled: cfg 1 with ConditioningZeroOut; UNETLoader
    flux3-image-klein*-int8-convrot, CLIPLoader qwen3vl_4b_int8_convrot type flux3, VAELoader flux2-vae, the prompt written by TextGenerate on the Qwen3.5 prompt
    upsampler from Flux3LayoutPrompt's box table, ReferenceMultiLatent for the pictures to edit). Every node maps and
    each runs on the tiny models under the templates' file names (2 steps, 8 upsampler tokens, the edited picture
    kept at its size): the bf16 files give the pipeline's latent for the written prompt, on ComfyUI's levels (simple
    at FLUX.3's shift: 1 and 0.5 shifted by 6.93); the distilled int8_convrot file, ComfyUI's quantisation of it,
    the same within int8 error."""
    from PIL import Image
    from safetensors.torch import load_file, save_file
    import comfy_convrot as cr
    from comfy_layouts import imported_template, link_as, written_and_sampled
    from test_textgen import build_qwen35
    from tiny_flux3 import BASE, DISTILLED, TE_NAME
    models = flux3 / "models"
    build_qwen35(models / "text_encoders")
    quantised = cr.quantise_file_state(load_file(str(models / "diffusion_models" / DISTILLED)), 16,
                                       prefix="model.diffusion_model.")
    assert sum(k.endswith(".comfy_quant") and b'"convrot"' in bytes(v.tolist()) for k, v in quantised.items()) > 10
    save_file(quantised, str(models / "diffusion_models" / "flux3-image-klein-tiny-int8-convrot.safetensors"))
    picture = _picture(64, 80, 3)
    Image.fromarray(picture).save(tmp_path / "picture.png")
    monkeypatch.chdir(tmp_path)
    upsampler = "text_encoders/qwen3.5_9b_flux3_prompt_upsampler_w4a8"
    encoders = (("text_encoders/qwen3vl_4b_int8_convrot.safetensors", f"text_encoders/{TE_NAME}.safetensors"),
                ("text_encoders/qwen3vl_4b_int8_convrot", f"text_encoders/{TE_NAME}"),
                (f"{upsampler}.safetensors", "text_encoders/qwen35vl_tiny.safetensors"),
                (upsampler, "text_encoders/qwen35vl_tiny"))
    for template, published in TEMPLATE_FILES.items():
        distilled = "distilled" in template
        bf16 = DISTILLED if distilled else BASE
        _, yaml = imported_template(models, encoders, TEMPLATES / template, (W, H), (0, 0))
        yaml = re.sub(r"steps: \d+", "steps: 2", yaml)
        assert "type: flux3" in yaml and "sampler: euler" in yaml and "scheduler: simple" in yaml, yaml
        assert re.search(r"text: text_generate_\S+\.text", yaml), yaml
        yaml = yaml.replace("max_length: 3584", "max_length: 8")
        edit = "image_edit" in template
        if edit:            # the picture kept at its size, not resized to a megapixel
            yaml = re.sub(r"path: \S+\.png", f"path: {tmp_path / 'picture.png'}", yaml)
            assert "resolution: resize" in yaml, yaml
            yaml = yaml.replace("resolution: resize", "resolution: keep")
        seed = int(re.search(r"k_sampler.*?seed: (\d+)", yaml, re.S).group(1))
        cfg = float(re.search(r"k_sampler.*?cfg: ([\d.]+)", yaml, re.S).group(1))
        path = tmp_path / "flux3.kino.yaml"
        link_as(models / "diffusion_models" / published, models / "diffusion_models" / bf16)
        text, got = written_and_sampled(path, yaml)
        assert text
        if template == QUANTISED:
            link_as(models / "diffusion_models" / published,
                    models / "diffusion_models" / "flux3-image-klein-tiny-int8-convrot.safetensors")
            again, quantised = written_and_sampled(path, yaml)
            assert again == text and 0 < _err(got, quantised) < 2e-2
        want = _reference(flux3, text, None if cfg == 1 else "", cfg, seed, distilled,
                          (64, 80) if edit else (W, H), [picture] if edit else (), sigmas=[1.0, 0.5])
        assert _err(want, got) < 1e-4, template
