"""Ideogram 4 keyframes (text in pictures): the files an Ideogram 4 user holds (ComfyUI's split files: the conditional
and the unconditional transformer in ComfyUI's names, fp8_scaled or int8_convrot; qwen3vl_8b loaded with CLIPLoader
type ideogram4; FLUX.2's VAE) are recognised, load, and sample what diffusers' own Ideogram4Pipeline gives for the
same weights, prompt and noise: its asymmetric CFG (the unconditional transformer reading the picture alone), its
guidance dropping for the last steps (ComfyUI's CFGOverride at 0.7 of the way) and its logit-normal schedule (ComfyUI's
Ideogram4Scheduler). ComfyUI's two Ideogram 4 templates import and run on them. The tiny model's ComfyUI-layout files
are written by hand from ComfyUI's module names (tests/tiny_ideogram4.py)."""
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48
PROMPT = '{"high_level_description": "A poster reading \'OPEN\' (red, bold)"}'


@pytest.fixture(scope="module")
def ideogram4(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_ideogram4 import build_ideogram4
    yield from models_dir(tmp_path_factory, build_ideogram4, "ideogram4")


def _tokens(latent):
    """FLUX.2's latent [1, 128, h, w] (channel c of patch pixel (i, j) at 4c + 2i + j, as ComfyUI's
    EmptyFlux2LatentImage holds it) -> Ideogram4Pipeline's tokens [1, h w, 128] (patch pixel first, 32 channels
    each), the order ComfyUI's Ideogram 4 model reads (its _img_to_tokens)."""
    _, c, h, w = latent.shape
    return latent.reshape(1, c // 4, 4, h * w).permute(0, 3, 2, 1).reshape(1, h * w, c)


def _latent(tokens, h, w):
    return tokens.reshape(1, h * w, 4, 32).permute(0, 3, 2, 1).reshape(1, 128, h, w)


def _size(shape):
    """The picture size (width, height) Ideogram4Pipeline is told for a latent of this shape: 16 pixels a token, the
    release's geometry (the tiny VAE halves the picture twice where the released one halves it three times)."""
    return shape[-1] * 16, shape[-2] * 16


def _reference(root, prompt, noise, steps, cfg, late, mu, std):
    """Ideogram4Pipeline's latent for `prompt` from `noise` (Kinograph's [1, 128, h, w]), its guidance `cfg` on the
    steps starting above 0.3 and `late` on the rest (CFGOverride from 0.7 of the way on ComfyUI's unshifted flow
    line), on its own schedule of (mu, std) for the picture size _size gives."""
    from diffusers import Ideogram4Pipeline
    from diffusers.pipelines.ideogram4.pipeline_ideogram4 import _logit_normal_sigmas, _resolution_aware_mu
    pipe = Ideogram4Pipeline.from_pretrained(str(root / "diffusers"), local_files_only=True)
    pipe.vae_scale_factor = 8               # _size's geometry
    w, h = _size(noise.shape)
    levels = _logit_normal_sigmas(steps, _resolution_aware_mu(h, w, mu), std)
    schedule = [late if float(s) <= 0.3 else cfg for s in levels]
    assert cfg in schedule and late in schedule, levels       # the override takes some steps, not all
    # its window keeps the first level at 0.99988: ComfyUI (and Kinograph) start from the noise scaled to it, the
    # pipeline from the noise as drawn
    chat = pipe.tokenizer.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": prompt}]}],
                                              add_generation_prompt=True, tokenize=False)
    length = len(pipe.tokenizer(chat, add_special_tokens=False)["input_ids"])     # its buffer: no padding to read
    out = pipe(prompt, height=h, width=w, num_inference_steps=steps, guidance_schedule=schedule, mu=mu, std=std,
               max_sequence_length=length, latents=_tokens(noise) * float(levels[0]), output_type="latent").images
    return _latent(out, h // 16, w // 16)


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def _files(mm, conditional="ideogram4_tiny_fp8_scaled.safetensors",
           unconditional="ideogram4_unconditional_tiny_fp8_scaled.safetensors"):
    from nodes.generate.nodes import cfg_override_guide, negative_model_guide
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from tiny_ideogram4 import TE_NAME
    model = load_diffusion_model(mm, conditional, "default", "cpu")
    model = negative_model_guide(None, cfg_override_guide(None, model, 3.0, 0.7, 1.0),
                                 load_diffusion_model(mm, unconditional, "default", "cpu"))
    return model, load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "ideogram4", "cpu"), \
        load_vae(mm, "flux2-vae.safetensors", "cpu")


def test_ideogram4_schedule_is_the_pipelines():
    """ComfyUI's Ideogram4Scheduler's levels (its templates' presets and sizes) are Ideogram4Pipeline's, ending at 0."""
    from diffusers.pipelines.ideogram4.pipeline_ideogram4 import _logit_normal_sigmas, _resolution_aware_mu
    from nodes.generate.samplers import ideogram4_sigmas
    for steps, w, h, mu, std in ((48, 1024, 1024, 0.0, 1.5), (20, 768, 1376, 0.0, 1.75), (12, 2048, 2048, 0.5, 1.75)):
        got = ideogram4_sigmas(steps, w, h, mu, std)
        want = _logit_normal_sigmas(steps, _resolution_aware_mu(h, w, mu), std)
        assert len(got) == steps + 1 and float(got[-1]) == 0.0
        assert float((got[:-1] - want).abs().max()) < 1e-6


def test_ideogram4_files_match_ideogram4pipeline(ideogram4):
    """The two transformers from ComfyUI's fp8_scaled files (the unconditional one making the negative pass on the
    zeroed prompt, guide.negative_model), qwen3vl_8b (type ideogram4) and FLUX.2's VAE give Ideogram4Pipeline's
    latent: on its default schedule (mu 0, spread 1.5) and on the templates' (mu 0.5, 1.75, written out), cfg 7 then
    3 from 0.7 of the way (guide.cfg_override)."""
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.regions import zeroed
    from nodes.generate.samplers import ideogram4_sigmas
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    from tiny_ideogram4 import MODELS
    for name in MODELS:
        got = describe_model(ideogram4 / "models" / "diffusion_models" / f"{name}.safetensors")
        assert (got["family"], got["role"], got["loads"]) == ("ideogram4", "diffusion_model", "yes"), got
    model, te, vae = _files(ModelManager())
    assert (model.family, te.family, vae.family) == ("ideogram4", "ideogram4", "flux2")
    pos = encode_prompt(te, PROMPT)
    assert pos.embeds.shape[-1] == 13 * 64 and bool(pos.mask.all())
    latent = empty_latent(vae, 1, W, H, 8.0)
    noise = torch.randn(latent.samples.shape, generator=torch.Generator().manual_seed(3))
    for steps, mu, std, sigmas in ((3, 0.0, 1.5, ""), (4, 0.5, 1.75, "written")):
        if sigmas:
            sigmas = ", ".join(repr(float(s)) for s in ideogram4_sigmas(steps, *_size(noise.shape), mu, std))
        got = run_sampling(model, pos, zeroed(pos), latent, steps=steps, cfg=7.0, sampler="euler", seed=0,
                           noise=noise, sigmas=sigmas).samples[:, :, 0]
        want = _reference(ideogram4, PROMPT, noise[:, :, 0], steps, 7.0, 3.0, mu, std)
        print("ideogram4 split files vs Ideogram4Pipeline", steps, _err(want, got))
        assert _err(want, got) < 1e-5, (steps, _err(want, got))
    # without the override every step takes cfg 7: another latent
    plain = model.with_option("cfg_override", None)
    other = run_sampling(plain, pos, zeroed(pos), latent, steps=3, cfg=7.0, sampler="euler", seed=0,
                         noise=noise).samples[:, :, 0]
    assert _err(want, other) > 1e-3


def test_ideogram4_wrong_parts_are_named(ideogram4):
    """A negative model of another family or with LoRAs (its pass would not apply them), the same Qwen3-VL loaded with
    type auto (it then reads prompts for Qwen-Image 2.1) and a Qwen3-VL without layer 35 are refused by name."""
    from dataclasses import replace
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.nodes import negative_model_guide
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    from tiny_ideogram4 import TE_NAME
    mm = ModelManager()
    model = load_diffusion_model(mm, "ideogram4_tiny_fp8_scaled.safetensors", "default", "cpu")
    with pytest.raises(NodeError, match="negative_model is flux2 and the model ideogram4"):
        negative_model_guide(None, model, replace(model, family="flux2"))
    with pytest.raises(NodeError, match="negative_model has LoRAs"):
        negative_model_guide(None, model, replace(model, loras=(("style.safetensors", 1.0),)))
    other = encode_prompt(load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "auto", "cpu"), "a cat")
    latent = empty_latent(load_vae(mm, "flux2-vae.safetensors", "cpu"), 1, W, H, 8.0)
    with pytest.raises(NodeError, match="encoded for qwenimage21, but the model is ideogram4"):
        run_sampling(model, other, None, latent, steps=1, cfg=1.0, sampler="euler", seed=1)
    # a Qwen3-VL too shallow for Ideogram 4's layer 35 (Qwen3-VL-4B's 36 layers pass; the tiny 2-layer one does not)
    from types import SimpleNamespace
    from nodes.generate.adapters.ideogram4 import Ideogram4Adapter
    from tiny_qwen21 import text_encoder as qwen3vl
    with pytest.raises(NodeError, match="this Qwen3-VL has 2 layers and Ideogram 4 reads layer 35"):
        Ideogram4Adapter().encode_text(SimpleNamespace(text_encoder=qwen3vl(2), tokenizer=None), ["a cat"], "cpu")


def test_comfyui_ideogram4_templates_import_and_run(ideogram4, tmp_path, monkeypatch):
    """ComfyUI's "Ideogram 4 text to image" templates (a subgraph: UNETLoader ideogram4_fp8_scaled / _int8_convrot
    through CFGOverride 3 from 0.7, the unconditional UNETLoader, DualModelGuider cfg 7, CLIPLoader qwen3vl_8b type
    ideogram4, ConditioningZeroOut, EmptyFlux2LatentImage sized by ResolutionSelector and math expressions,
    Ideogram4Scheduler fed its preset's steps, mu and spread through JsonExtractString, SamplerCustomAdvanced, VAEDecode)
    import with every node mapped (the preset's 20 steps) and run on the tiny model under the templates' names (64x48,
    the preset's schedule in 3 steps): the fp8 one gives Ideogram4Pipeline's latent for the template's prompt and
    seed; the int8_convrot one (ComfyUI's quantisation of the same weights) the same within int8 error."""
    import yaml as yaml_lib
    from safetensors.torch import load_file, save_file
    import comfy_convrot as cr
    from comfy_layouts import imported_template, sampled_latent
    from tiny_qwen import dequantised
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.samplers import ideogram4_sigmas
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import empty_latent
    from tiny_ideogram4 import MODELS, TE_NAME
    models = ideogram4 / "models"
    shape = empty_latent(load_vae(ModelManager(), "flux2-vae.safetensors", "cpu"), 1, W, H, 8.0).samples.shape
    for name in MODELS:
        # the linear layers quantised (the fp8 file's, dequantised), the embedding table kept as it is
        stored = dequantised(load_file(str(models / "diffusion_models" / f"{name}.safetensors")))
        table = {k: stored.pop(k) for k in [k for k in stored if ".embed_image_indicator." in k]}
        q = {**cr.quantise_file_state(stored, 64, prefix="model.diffusion_model."), **table}
        save_file(q, str(models / "diffusion_models" / f"{name.replace('fp8_scaled', 'int8_convrot')}.safetensors"))
    monkeypatch.chdir(tmp_path)
    errors = {}
    for template, kind in (("image_ideogram4_t2i.json", "fp8_scaled"), ("image_ideogram4_t2i_int8.json",
                                                                       "int8_convrot")):
        links = ((f"diffusion_models/ideogram4_{kind}.safetensors", f"diffusion_models/ideogram4_tiny_{kind}.safetensors"),
                 (f"diffusion_models/ideogram4_unconditional_{kind}.safetensors",
                  f"diffusion_models/ideogram4_unconditional_tiny_{kind}.safetensors"),
                 ("text_encoders/qwen3vl_8b_fp8_scaled.safetensors", f"text_encoders/{TE_NAME}.safetensors"),
                 ("text_encoders/qwen3vl_8b_fp8_scaled", f"text_encoders/{TE_NAME}"))
        data, yaml = imported_template(models, links, TEMPLATES / template, (W, H), (0, 0))
        assert "type: ideogram4" in yaml and "guide.negative_model" in yaml and "guide.cfg_override" in yaml, yaml
        # the template's picture size (ResolutionSelector) and its preset's schedule for it, made tiny
        wf = yaml_lib.safe_load(yaml)
        latent_node = next(n for n in wf["nodes"].values() if n["type"] == "latent.empty")
        sampler = next(n for n in wf["nodes"].values() if n["type"] == "generate.sample")
        latent_node["params"].update(width=W, height=H)
        published = len(sampler["params"]["sigmas"].split(",")) - 1
        sampler["params"]["sigmas"] = ", ".join(repr(float(s)) for s in ideogram4_sigmas(3, *_size(shape), 0.0, 1.75))
        seed, prompt = sampler["params"]["seed"], next(n for n in wf["nodes"].values()
                                                         if n["type"] == "encode.text")["params"]["text"]
        yaml = yaml_lib.safe_dump(wf, sort_keys=False)
        got = sampled_latent(tmp_path / "ideogram4.kino.yaml", yaml, "sampler_custom_advanced")
        assert published == 20 and "COMFY" in prompt       # the Default preset (20 steps, mu 0, spread 1.75)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        errors[kind] = _err(_reference(ideogram4, prompt, noise[:, :, 0], 3, 7.0, 3.0, 0.0, 1.75), got)
    print("ideogram4 templates vs Ideogram4Pipeline", errors)
    assert errors["fp8_scaled"] < 1e-5
    assert 0 < errors["int8_convrot"] < 5e-2
