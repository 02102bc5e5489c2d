"""MiniMax H3 pictures: ComfyUI's transformer file (MiniMax's names, as image_minimax_h3_t2i loads it with UNETLoader)
is recognised, loads, and samples what diffusers' MiniMaxH3 transformer and scheduler give for the same weights, prompt
states and noise, laid out by diffusers' own MiniMaxH3PrepareLayoutStep (one latent frame, no sound rows). The tiny
model's ComfyUI-layout file is written by inverting diffusers' converter by hand (tests/tiny_minimax_h3.py)."""
import sys
from pathlib import Path

import pytest
import torch


ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
sys.path.insert(0, str(ROOT / "tests"))
W, H = 96, 64               # a 6 x 4 latent: 3 x 2 patches, not square, so the area-normalised grid is seen


@pytest.fixture(scope="module")
def minimax(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_minimax_h3 import build_minimax_h3
    yield from models_dir(tmp_path_factory, build_minimax_h3, "minimax_h3")


def _reference(states, noise, sigmas, model=None):
    """diffusers' MiniMaxH3 denoising loop on one picture: its layout step's packed sequence (text, then the frame's
    patches; no audio), its transformer (the tiny one unless given) told t = 1 - sigma, MiniMaxH3Scheduler stepping the
    video rows."""
    from diffusers import MiniMaxH3Scheduler
    from diffusers.modular_pipelines.minimax_h3.before_denoise import (MiniMaxH3PrepareLayoutStep,
                                                                       patchify_video_latents)
    from tiny_minimax_h3 import transformer
    model = model or transformer()
    c, h, w = noise.shape[1], noise.shape[-2], noise.shape[-1]
    pos, tags, video, audio, text, _, _ = MiniMaxH3PrepareLayoutStep.build_packed_sequence(
        torch.ones(states.shape[1], dtype=torch.long), 1, h, w, 0, (1, 2, 2), 2, 2, 0)
    sch = MiniMaxH3Scheduler(shift=12.0)
    sch.set_timesteps(sigmas=sigmas)
    rows = patchify_video_latents(noise, (1, 2, 2))
    with torch.no_grad():
        for t in sch.timesteps:
            vel = model(hidden_states=rows[None], audio_hidden_states=torch.zeros(1, 0, 32), encoder_hidden_states=states,
                        timestep=t.reshape(1), timestep_indices=torch.zeros(pos.shape[0], dtype=torch.long),
                        token_tags=tags, position_ids=pos, video_indices=video, audio_indices=audio,
                        text_indices=text, return_dict=False)[0]
            rows = sch.step(vel[0].float(), t, rows, return_dict=False)[0]
    return rows.reshape(h // 2, w // 2, c, 2, 2).permute(2, 0, 3, 1, 4).reshape(1, c, 1, h, w)


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_comfyui_transformer_loads_and_samples_as_diffusers(minimax):
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.vae_ops import empty_latent
    from tiny_minimax_h3 import TEXT
    got = describe_model(minimax / "models" / "diffusion_models" / "minimax_h3_tiny.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("minimax_h3", "diffusion_model", "yes"), got
    model = load_diffusion_model(ModelManager(), "minimax_h3_tiny.safetensors", "default", "cpu")
    states = torch.randn(1, 5, TEXT, generator=torch.Generator().manual_seed(1))
    latent = empty_latent(model, 1, W, H, 24.0)
    assert tuple(latent.samples.shape) == (1, 24, 1, H // 16, W // 16)
    noise = torch.randn(latent.samples.shape, generator=torch.Generator().manual_seed(2))
    cond = Conditioning("minimax_h3", states, torch.ones(1, 5, dtype=torch.bool))
    out = run_sampling(model, cond, None, latent, steps=3, cfg=1.0, sampler="euler", noise=noise).samples
    from nodes.generate.adapters import get_adapter
    sigmas = get_adapter("minimax_h3").default_sigmas(model.pipe, 3, None)
    assert len(sigmas) == 4 and float(sigmas[0]) == 1.0 and float(sigmas[-1]) == 0.0
    want = _reference(states, noise, sigmas.float())
    assert _err(want, out) < 1e-4, _err(want, out)


def _silu_inverse(v: torch.Tensor) -> torch.Tensor:
    """The x > -1.278 (where SiLU rises) with silu(x) = v, by Newton's method in float64."""
    x = v.double().clone()
    for _ in range(60):
        s = torch.sigmoid(x)
        x = x - (x * s - v.double()) / (s * (1 + x * (1 - s)))
    return x.float()


def _pruned_reference():
    """The tiny transformer as the pruned release computes (comfy/ldm/minimax/model.py's curve form, written out:
    row t * (rows - 1) of adaln_t_table, linearly interpolated, projected without SiLU): diffusers' transformer fed, in
    place of its time embedding, the value whose SiLU is that interpolated row."""
    from tiny_minimax_h3 import curve_table, transformer
    table = curve_table()
    rows = table.shape[0]

    class Curve(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", table)

        def forward(self, t):
            pos = t.float().clamp(0, 1) * (rows - 1)
            i0 = pos.floor().long().clamp(max=rows - 2)
            return _silu_inverse(table[i0] + (table[i0 + 1] - table[i0]) * (pos - i0)[:, None])
    ref = transformer()
    ref.time_proj, ref.time_embedder = torch.nn.Identity(), Curve()
    return ref


def test_pruned_comfyui_transformer_samples_as_its_curve_form(minimax):
    """The pruned release ComfyUI's templates load (minimax_h3_fl2va_pruned_*: adaln_t_table in place of a time
    embedder, no SiLU before the modulation projections) samples as its curve form (_pruned_reference)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.vae_ops import empty_latent
    from tiny_minimax_h3 import TEXT
    got = describe_model(minimax / "models" / "diffusion_models" / "minimax_h3_pruned_tiny.safetensors")
    assert (got["family"], got["variant"], got["loads"]) == ("minimax_h3", "pruned", "yes"), got
    model = load_diffusion_model(ModelManager(), "minimax_h3_pruned_tiny.safetensors", "default", "cpu")
    states = torch.randn(1, 4, TEXT, generator=torch.Generator().manual_seed(1))
    latent = empty_latent(model, 1, W, H, 24.0)
    noise = torch.randn(latent.samples.shape, generator=torch.Generator().manual_seed(2))
    cond = Conditioning("minimax_h3", states, torch.ones(1, 4, dtype=torch.bool))
    out = run_sampling(model, cond, None, latent, steps=3, cfg=1.0, sampler="euler", noise=noise).samples
    sigmas = get_adapter("minimax_h3").default_sigmas(model.pipe, 3, None).float()
    assert _err(_reference(states, noise, sigmas, _pruned_reference()), out) < 1e-4


def test_qwen3vl_type_minimax_encodes_as_diffusers(minimax, tmp_path):
    """qwen3vl loaded with type minimax (ComfyUI's CLIPLoader in image_minimax_h3_t2i): the prompt's tokens alone, the
    state after layer 50, as diffusers' get_qwen3vl_prompt_embeds gives it."""
    from diffusers.modular_pipelines.minimax_h3.encoders import get_qwen3vl_prompt_embeds
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from tiny_minimax_h3 import text_encoder
    from tiny_qwen21 import processor
    te = load_text_encoder(ModelManager(), "qwen3vl_minimax_tiny.safetensors", "", "minimax", "cpu")
    assert te.family == "minimax_h3"
    got = encode_prompt(te, "a red panda on a rock")
    proc = processor(tmp_path / "tokenizer")
    ids = proc.tokenizer("a red panda on a rock", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        want = get_qwen3vl_prompt_embeds(text_encoder(), proc, ids, {})
    assert got.embeds.shape == want.shape and bool(got.mask.all())
    assert _err(want, got.embeds) < 1e-4, _err(want, got.embeds)


def test_minimax_prompts_are_read_as_comfyui_reads_them_with_weights_off(minimax, tmp_path):
    """ComfyUI tokenizes MiniMax H3's prompts with disable_weights: brackets stay as written, yet its
    escape_important / unescape_important still turn the escaped \\( and \\) into plain brackets (written out
    below); the prompt's states are diffusers' on that text. Lines, blank lines and non-ASCII are read as written
    (the template tests read their prompts cut to a line)."""
    from diffusers.modular_pipelines.minimax_h3.encoders import get_qwen3vl_prompt_embeds
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from tiny_minimax_h3 import text_encoder
    from tiny_qwen21 import processor

    def comfy_reads(text):      # comfy/sd1_clip.py: escape_important, then unescape_important on the one segment
        text = text.replace("\\)", "\0\1").replace("\\(", "\0\2")
        return text.replace("\0\1", ")").replace("\0\2", "(")
    te = load_text_encoder(ModelManager(), "qwen3vl_minimax_tiny.safetensors", "", "minimax", "cpu")
    proc = processor(tmp_path / "tokenizer")
    for prompt in ("a \\(red\\) panda on [a rock]", "a (red:1.3) panda, \\[wet\\]",
                   "a red panda:\n\n  on a rock \u2014 wet\u2028at dusk \U0001f917"):
        got = encode_prompt(te, prompt)
        ids = proc.tokenizer(comfy_reads(prompt), add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            want = get_qwen3vl_prompt_embeds(text_encoder(), proc, ids, {})
        assert got.embeds.shape == want.shape, (prompt, got.embeds.shape, want.shape)
        assert _err(want, got.embeds) < 1e-4, (prompt, _err(want, got.embeds))


def test_comfyui_video_vae_decodes_a_picture_as_diffusers(minimax):
    """ComfyUI's video VAE file decodes one latent frame into the picture the released VAE gives for it: diffusers'
    AutoencoderKLMiniMaxH3 decoder on the latent de-normalised by the file's statistics, the last of the 4 pixel frames
    it makes (ComfyUI's one-frame decode), ImageNet's pixel normalisation undone (diffusers' decode step)."""
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_vae
    from nodes.generate.adapters import get_adapter
    from tiny_minimax_h3 import vae as reference_vae
    got = describe_model(minimax / "models" / "vae" / "minimax_h3_video_vae_tiny.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("minimax_h3", "vae", "yes"), got
    vae = load_vae(ModelManager(), "minimax_h3_video_vae_tiny.safetensors", "cpu")
    z = torch.randn(1, 24, 1, H // 16, W // 16, generator=torch.Generator().manual_seed(3))
    ref = reference_vae()
    with torch.no_grad():
        mean = torch.tensor(ref.config.latents_mean).view(1, -1, 1, 1, 1)
        std = torch.tensor(ref.config.latents_std).view(1, -1, 1, 1, 1)
        pix = ref.decoder(ref.post_quant_conv(z * std + mean))[:, :, -1]
    want = (pix * torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
            + torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)).clamp(0, 1)
    with torch.no_grad():
        got = get_adapter("minimax_h3").vae_decode(vae.pipe, z)
    assert tuple(got.shape) == (1, 3, 1, H, W)
    assert _err(want, (got[:, :, 0] + 1) / 2) < 1e-3, _err(want, (got[:, :, 0] + 1) / 2)


def test_comfyui_minimax_h3_t2i_template_imports_and_runs(minimax, tmp_path, monkeypatch):
    """ComfyUI's own "MiniMax H3 text to image" template (a subgraph: UNETLoader, CLIPLoader qwen3vl_32b type minimax,
    VAELoader, ResolutionSelector 16:9 into EmptyLatentImage, the turbo LoRA switched off as published, BasicGuider,
    BasicScheduler simple 30 steps, res_multistep, LTXVSeparateAVLatent, VAEDecode). Every node maps and it runs on the
    tiny files under the template's names (the pruned transformer; 96x64, 2 steps) to a picture; with euler the latent
    is diffusers' MiniMax H3 transformer (in the pruned release's curve form) and scheduler's on ComfyUI's levels
    (simple at shift 12: 1, 12 * 0.5 / (1 + 11 * 0.5)) from ComfyUI's noise for the template's seed, the prompt read by
    diffusers' get_qwen3vl_prompt_embeds; load.minimax_h3 in place of UNETLoader's load.diffusion_model samples the
    same."""
    from diffusers.modular_pipelines.minimax_h3.encoders import get_qwen3vl_prompt_embeds
    from comfy_layouts import imported_template, sampled_latent
    from tiny_minimax_h3 import text_encoder
    from tiny_qwen21 import processor
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(
        minimax / "models",
        (("diffusion_models/minimax_h3_fl2va_pruned_int8_convrot.safetensors",
          "diffusion_models/minimax_h3_pruned_tiny.safetensors"),
         ("text_encoders/qwen3vl_32b_minimax_h3_nvfp4_awq.safetensors", "text_encoders/qwen3vl_minimax_tiny.safetensors"),
         ("text_encoders/qwen3vl_32b_minimax_h3_nvfp4_awq", "text_encoders/qwen3vl_minimax_tiny"),
         ("vae/minimax_h3_video_vae_fp16.safetensors", "vae/minimax_h3_video_vae_tiny.safetensors")),
        TEMPLATES / "image_minimax_h3_t2i.json", (W, H), (30, 2))
    yaml = yaml.replace("width: 1296", f"width: {W}").replace("height: 728", f"height: {H}")
    assert f"width: {W}" in yaml and "steps: 2" in yaml and "sampler: res_multistep" in yaml, yaml
    workflow = tmp_path / "minimax.kino.yaml"
    assert torch.isfinite(sampled_latent(workflow, yaml, "sampler_custom_advanced")).all()
    assert list(tmp_path.glob("out/image_minimax_h3_t2i*"))
    got = sampled_latent(workflow, yaml.replace("sampler: res_multistep", "sampler: euler"),
                         "sampler_custom_advanced")
    outer = next(n for n in data["nodes"] if n["type"] == data["definitions"]["subgraphs"][0]["id"])
    text, seed = outer["widgets_values"][0], outer["widgets_values"][5]
    proc = processor(tmp_path / "tokenizer")
    with torch.no_grad():
        states = get_qwen3vl_prompt_embeds(text_encoder(), proc, proc.tokenizer(text, add_special_tokens=False)["input_ids"], {})
    noise = torch.randn(1, 24, 1, H // 16, W // 16, generator=torch.Generator().manual_seed(seed))
    want = _reference(states, noise, torch.tensor([1.0, 6 / 6.5, 0.0]), _pruned_reference())
    assert _err(want[:, :, 0], got) < 1e-3, _err(want[:, :, 0], got)
    # load.minimax_h3 in place of load.diffusion_model: the same model
    family = yaml.replace("type: load.diffusion_model", "type: load.minimax_h3").replace(
        "name: minimax_h3_fl2va_pruned_int8_convrot.safetensors\n      weight_dtype: default",
        "path: minimax_h3_fl2va_pruned_int8_convrot.safetensors")
    assert "load.minimax_h3" in family and "weight_dtype" not in family.split("clip_loader")[0]
    assert torch.equal(sampled_latent(workflow, family.replace("sampler: res_multistep", "sampler: euler"),
                                      "sampler_custom_advanced"), got)


def test_comfyui_lora_samples_as_the_merged_transformer(minimax, tmp_path):
    """A LoRA in MiniMax's names (ai-toolkit's diffusion_model. prefix, as ComfyUI's turbo LoRAs name the layers: the
    fused qkv_proj, mlp.fc1, the modulation and output projections, the text refiner) is told as MiniMax H3's and
    samples as the transformer with it merged into its weights (written out here in MiniMax's names)."""
    from safetensors.torch import save_file
    from nodes.generate.latent import Conditioning
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.vae_ops import empty_latent
    from tiny_minimax_h3 import TEXT, comfy_transformer, transformer
    base = {k: v.float() for k, v in comfy_transformer(transformer()).items()}
    g = torch.Generator().manual_seed(9)
    lora, merged = {}, dict(base)
    for layer in ("blocks.0.attn.qkv_proj", "blocks.1.mlp.fc1", "token_refiner.blocks.0.attn.out_proj",
                  "blocks.0.adaln_proj.linear", "final_layer.video_out"):
        w = base[layer + ".weight"]
        down, up = torch.randn(4, w.shape[1], generator=g) * 0.1, torch.randn(w.shape[0], 4, generator=g) * 0.1
        lora.update({f"diffusion_model.{layer}.lora_A.weight": down, f"diffusion_model.{layer}.lora_B.weight": up})
        merged[layer + ".weight"] = w + 0.8 * up @ down
    lora_file, merged_file = tmp_path / "minimax_h3_lora_tiny.safetensors", tmp_path / "merged.safetensors"
    save_file({k: v.contiguous() for k, v in lora.items()}, str(lora_file))
    save_file({k: v.contiguous() for k, v in merged.items()}, str(merged_file))
    got = describe_model(lora_file)
    assert (got["family"], got["role"], got["loads"]) == ("minimax_h3", "lora", "yes"), got
    mm = ModelManager()
    model = load_diffusion_model(mm, "minimax_h3_tiny.safetensors", "default", "cpu")
    cond = Conditioning("minimax_h3", torch.randn(1, 5, TEXT, generator=torch.Generator().manual_seed(1)),
                        torch.ones(1, 5, dtype=torch.bool))
    latent = empty_latent(model, 1, W, H, 24.0)

    def sample(handle):
        return run_sampling(handle, cond, None, latent, steps=2, cfg=1.0, sampler="euler", seed=3).samples
    want = sample(load_diffusion_model(mm, str(merged_file), "default", "cpu"))
    assert _err(want, sample(add_lora(model, str(lora_file), 0.8))) < 1e-4
    assert _err(want, sample(model)) > 1e-2         # the LoRA changes the picture; unloaded, the model is as it was
