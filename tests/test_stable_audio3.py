"""Stable Audio 3 from the files ComfyUI users have (its checkpoint in stable-audio-tools' key names, T5Gemma in
ComfyUI's), on tiny random weights: the waveform against diffusers' StableAudio3Pipeline with the same weights,
prompt and noise, sampled as ComfyUI samples it (its shift-2 simple schedule, lcm or euler, the all-zero inpainting
input its text to audio passes), and the sound file ComfyUI's templates write."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from tests.comfy_layouts import _save, models_dir
from tests.test_stable_audio import decoded

SECONDS = 1.0           # ceil(1 x 44100 / 4096) = 11 latent frames
FRAMES = 11
HOP = 64                # the tiny SAME: 4-sample patches, stride 16
CKPT, TE = "stable_audio_3_tiny.safetensors", "t5gemma_tiny.safetensors"


def tiny_parts():
    from diffusers import AutoencoderSAME, StableAudio3DiTModel
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder
    from transformers import T5GemmaConfig, T5GemmaEncoderModel, T5GemmaModuleConfig
    torch.manual_seed(0)
    dit = StableAudio3DiTModel(io_channels=8, embed_dim=128, depth=2, num_heads=2, cond_token_dim=32,
                               global_cond_dim=32, local_add_cond_dim=9, timestep_features_dim=32, ff_mult=2.0,
                               num_memory_tokens=4)
    vae = AutoencoderSAME(patch_size=4, encoder_channels=32, encoder_transformer_depths=(2,), latent_dim=8,
                          dim_heads=16, ff_mult=2, decoder_sinusoidal_blocks=(8,))
    seconds = StableAudio3DurationEmbedder(output_dim=32, fourier_dim=16)
    enc = T5GemmaModuleConfig(vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=64, query_pre_attn_scalar=64)
    te = T5GemmaEncoderModel(T5GemmaConfig(encoder=enc, decoder=enc, is_encoder_decoder=False))
    with torch.no_grad():       # zero-initialised outputs, norms and the padding embedding away from their starts
        for m in (dit, vae, seconds, te):
            for k, p in m.named_parameters():
                if re.search(r"gamma|alpha|norm|running_std|\.scale$", k):
                    p.copy_(1 + torch.randn_like(p) * 0.3)
                else:
                    p.copy_(torch.randn_like(p) * (0.3 if p.dim() < 2 else 1 / math.sqrt(p.shape[-1])))
        vae.bottleneck.running_std.fill_(1.7)
    return {k: m.eval() for k, m in dict(transformer=dit, vae=vae, seconds=seconds, text_encoder=te).items()}


# stable-audio-tools' names (the authors' stable_audio_3/models/dit.py, transformer.py; ComfyUI's vae_sa3.py), as the
# checkpoint ComfyUI loads holds them, written from diffusers' back
_DIT = ((r"^transformer_blocks\.", "transformer.layers."), (r"^proj_(in|out)\.", r"transformer.project_\1."),
        (r"^(memory_tokens|rotary_pos_emb|global_cond_embedder)", r"transformer.\1"),
        (r"\.ff\.proj_in\.", ".ff.ff.0.proj."), (r"\.ff\.proj_out\.", ".ff.ff.2."))
_VAE = ((r"^encoder\.blocks\.0\.", "encoder.layers.0."), (r"^encoder\.proj\.", "encoder.layers.2."),
        (r"^decoder\.proj\.", "decoder.layers.1."), (r"^decoder\.blocks\.0\.", "decoder.layers.3."),
        (r"\.norm_attn\.", ".pre_norm."), (r"\.attn\.", ".self_attn."), (r"\.norm_ff\.", ".ff_norm."),
        (r"\.ff\.proj_in\.", ".ff.ff.0.proj."), (r"\.ff\.proj_out\.", ".ff.ff.2."),
        (r"^bottleneck\.scale$", "bottleneck.scaling_factor"))


def _renamed(key: str, rules) -> str:
    for pat, rep in rules:
        key = re.sub(pat, rep, key)
    return key


def comfy_checkpoint(p: dict) -> dict:
    out = {}
    for k, v in p["transformer"].state_dict().items():
        if k == "prompt_padding_embedding":
            out["conditioner.conditioners.prompt.padding_embedding"] = v
        else:
            out["model.model." + _renamed(k, _DIT)] = v
    for k, v in p["vae"].state_dict().items():
        out["pretransform.model." + _renamed(k, _VAE)] = v
    for side in ("encoder.layers.0.", "decoder.layers.3."):       # the authors' RoPE tables, stored
        for i in range(2):
            out[f"pretransform.model.{side}transformers.{i}.rope.inv_freq"] = 1.0 / 10000 ** (
                torch.arange(0, 8, 2).float() / 8)
    out["pretransform.model.bottleneck.noise_scaling_factor"] = torch.zeros(1, 0, 1)
    out["conditioner.conditioners.seconds_total.embedder.embedding.1.weight"] = p["seconds"].linear.weight
    out["conditioner.conditioners.seconds_total.embedder.embedding.1.bias"] = p["seconds"].linear.bias
    return out


PARTS = {}


def build(root):
    from tests.tiny_flux2 import tokenizer
    p = tiny_parts()
    models = root / "models"
    _save(comfy_checkpoint(p), models / "checkpoints" / CKPT)
    _save({"model." + k: v for k, v in p["text_encoder"].state_dict().items()}, models / "text_encoders" / TE)
    p["tokenizer"] = tokenizer(models / "text_encoders" / "t5gemma_tiny")
    PARTS.update(p)
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    yield from models_dir(tmp_path_factory, build, "stable_audio3")


@pytest.fixture(scope="module")
def model(tiny):
    from nodes.generate import stable_audio3 as sa3
    from nodes.generate.model_manager import ModelManager
    return sa3.load(ModelManager(), CKPT, TE, "cpu")


def comfy_sigmas(steps: int) -> list:
    """ComfyUI's simple scheduler on ModelSamplingDiscreteFlow(shift 2, multiplier 1): every (1000 / steps)-th of
    sigma(t) = 2t / (1 + t) at t = i / 1000, from the noisiest (the final 0 is the scheduler's)."""
    table = [2 * (i / 1000) / (1 + i / 1000) for i in range(1, 1001)]
    return [table[-(1 + int(x * 1000 / steps))] for x in range(steps)]


def prompt_embeds(text: str):
    """ComfyUI's T5Gemma conditioning: the tokens without start or end, no padding (an empty prompt: one pad token,
    masked and zeroed), then its states padded to 256 (the DiT puts its padding embedding where the mask is 0)."""
    ids = PARTS["tokenizer"](text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        states = PARTS["text_encoder"](torch.tensor([ids])).last_hidden_state if ids else torch.zeros(1, 1, 32)
    mask = torch.zeros(1, 256, dtype=torch.long)
    mask[:, :states.shape[1]] = 1
    return torch.cat([states, torch.zeros(1, 256 - states.shape[1], 32)], 1), mask


def reference(prompt: str, negative: str, steps: int, cfg: float, seed: int, lcm: bool = True) -> torch.Tensor:
    """diffusers' StableAudio3Pipeline on the tiny modules, told ComfyUI's way: its sigmas, KSampler's noise (the
    seed's first CPU draw) as the latents and lcm's re-noising generator as the pipeline's: ComfyUI's
    default_noise_sampler (comfy/k_diffusion/sampling.py) seeds a CPU latent's with seed + 1, the
    latent's whole seconds as the duration, an all-zero inpainting input to the DiT (ComfyUI's concat_cond); then
    the decode cut to the seconds and VAEDecodeAudio's loudness rule."""
    import diffusers.pipelines.stable_audio_3.pipeline_stable_audio_3 as module
    from diffusers import FlowMatchEulerDiscreteScheduler, StableAudio3Pipeline
    dit = PARTS["transformer"]
    pipe = StableAudio3Pipeline(vae=PARTS["vae"], text_encoder=PARTS["text_encoder"], tokenizer=None,
                                duration_embedder=PARTS["seconds"], transformer=dit,
                                scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1,
                                                                          stochastic_sampling=lcm))
    forward, schedule = dit.forward, module.logsnr_sigma_schedule

    def with_zero_inpainting(x, t, **kw):
        return forward(x, t, local_add_cond=torch.zeros(x.shape[0], 9, x.shape[2]), **kw)
    dit.forward, module.logsnr_sigma_schedule = with_zero_inpainting, lambda n, lo, hi: comfy_sigmas(n)
    try:
        pos, pos_mask = prompt_embeds(prompt)
        neg, neg_mask = prompt_embeds(negative)
        latents = torch.randn((1, 8, FRAMES), generator=torch.Generator().manual_seed(seed))
        latent = pipe(prompt_embeds=pos, encoder_attention_mask=pos_mask, negative_prompt_embeds=neg,
                      negative_encoder_attention_mask=neg_mask, duration=int(FRAMES / (44100 / 4096)),
                      num_inference_steps=steps, guidance_scale=cfg, latents=latents,
                      generator=torch.Generator().manual_seed(seed + 1), output_type="latent").audios
    finally:
        dit.forward, module.logsnr_sigma_schedule = forward, schedule
    with torch.no_grad():
        wave = PARTS["vae"].decode(latent).sample[0, :, :int(SECONDS * 44100)]
    std = float(wave.std()) * 5.0
    return wave / max(std, 1.0)


def test_lcm_waveform_matches_diffusers(model):
    """The distilled medium model's way (lcm, cfg 1): the waveform diffusers' ping-pong sampler makes."""
    from nodes.generate import stable_audio3 as sa3
    got = sa3.generate(model, "warm rhodes, rain", "", SECONDS, 4, 1.0, "lcm", "simple", 31)
    want = reference("warm rhodes, rain", "", 4, 1.0, 31)
    assert got.shape == want.shape == (2, FRAMES * HOP)
    assert float(want.abs().max()) > 0.01
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), float((got - want).abs().max())
    other = sa3.generate(model, "warm rhodes, thunder", "", SECONDS, 4, 1.0, "lcm", "simple", 31)
    assert float((other - want).abs().max()) > 1e-4      # the prompt reaches the sound


def test_guided_euler_matches_diffusers(model):
    """The base model's way (cfg above 1 against the empty negative, deterministic euler)."""
    from nodes.generate import stable_audio3 as sa3
    got = sa3.generate(model, "lo-fi drums", "", SECONDS, 3, 4.0, "euler", "simple", 7)
    want = reference("lo-fi drums", "", 3, 4.0, 7, lcm=False)
    # Kinograph's euler steps as x0 + s'(x - x0) / s, diffusers' as x + (s' - s) v: one step, rounded apart in float32
    # (one step alone agrees exactly), and cfg 4 widens it
    assert torch.allclose(got, want, atol=5e-5, rtol=1e-4), float((got - want).abs().max())


def test_not_stable_audio_3(tiny):
    from graph_engine import NodeError
    from nodes.generate import stable_audio3 as sa3
    from nodes.generate.model_manager import ModelManager
    te = str(tiny / "models" / "text_encoders" / TE)
    with pytest.raises(NodeError, match="t5gemma_tiny.safetensors is not a Stable Audio 3 checkpoint.*"
                                        "stable_audio_3_medium.safetensors"):
        sa3.load(ModelManager(), te, TE, "cpu")
    with pytest.raises(NodeError, match="stable_audio_3_tiny.safetensors is not T5Gemma.*t5gemma_b_b_ul2"):
        sa3.load(ModelManager(), CKPT, str(tiny / "models" / "checkpoints" / CKPT), "cpu")


def test_kinograph_info_names_the_checkpoint_and_the_node_that_reads_it(tiny, capsys):
    """`kinograph info` tells Stable Audio 3's checkpoint from Stable Audio Open's (both hold stable-audio-tools'
    names): it said generate.stable_audio read it with T5-base."""
    from tests.test_stable_audio import told_by_info
    told_by_info(tiny / "models" / "checkpoints" / CKPT, "3", "Stable Audio 3",
                 "generate.stable_audio3 reads it as its checkpoint, with T5Gemma", capsys)


def test_each_stable_audio_node_names_the_other_for_its_checkpoint(tiny):
    """Stable Audio 3's checkpoint given to generate.stable_audio (and Open's to generate.stable_audio3) is named
    with the node that reads it: it was a tensor mismatch ("damaged or another model's")."""
    from graph_engine import NodeError
    from nodes.generate import stable_audio as sa
    from nodes.generate import stable_audio3 as sa3
    from safetensors.torch import load_file
    from tests.test_stable_audio import comfy_checkpoint as open_checkpoint
    from tests.test_stable_audio import tiny_parts as open_parts
    ckpt = str(tiny / "models" / "checkpoints" / CKPT)
    with pytest.raises(NodeError, match=f"{CKPT} is Stable Audio 3's checkpoint: generate.stable_audio3 reads it"):
        sa.dit_weights(load_file(ckpt), CKPT)
    dit, vae, proj, _ = open_parts()
    with pytest.raises(NodeError, match="open.safetensors is Stable Audio Open's checkpoint: generate.stable_audio "
                                        "reads it"):
        sa3.dit_weights(open_checkpoint(dit, vae, proj), "open.safetensors")


def imported(name: str, sampler: str = ""):
    """The template imported (its KSampler's sampler_name set to `sampler` where given)."""
    import json
    from pathlib import Path
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    data = json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" / name).read_text())
    for node in (n for sub in data["definitions"]["subgraphs"] for n in sub["nodes"] if n["type"] == "KSampler"):
        node["widgets_values"][4] = sampler or node["widgets_values"][4]
    result = import_data(data)
    wf = load_workflow(text=result.yaml)
    (sound,) = [n for n in wf.graph.nodes.values() if n.type == "generate.stable_audio3"]
    (save,) = [n for n in wf.graph.nodes.values() if n.type == "io.save_audio"]
    return result, wf, sound, save


@pytest.mark.parametrize("name, ckpt, steps, cfg", [("audio_stable_audio_3_medium.json", "", 8, 1),
                                                    ("audio_stable_audio_3_medium_base.json", "_base", 50, 7)])
def test_comfyui_templates_import(name, ckpt, steps, cfg):
    """ComfyUI's two Stable Audio 3 templates: the loaders, CLIPTextEncodes, EmptyLatentAudio, KSampler and
    VAEDecodeAudio in their subgraph become one generate.stable_audio3 with their settings (lcm kept, the length
    from the subgraph's seconds); the prompt Qwen3.5 rewrites (TextGenerate, switched on) stays linked; every node
    is mapped and the graph validates. They were left unmapped (a model Kinograph did not have)."""
    result, wf, sound, save = imported(name)
    assert not result.report.blocking
    p = sound.params
    assert {k: p[k] for k in ("checkpoint", "text_encoder", "negative", "seconds", "steps", "cfg", "sampler",
                              "scheduler")} == \
        {"checkpoint": f"stable_audio_3_medium{ckpt}.safetensors", "text_encoder": "t5gemma_b_b_ul2.safetensors",
         "negative": "", "seconds": 150.0, "steps": steps, "cfg": cfg, "sampler": "lcm", "scheduler": "simple"}
    (link,) = [lk for lk in wf.graph.links() if lk.dst == sound.id]
    assert (wf.graph.nodes[link.src].type, link.dst_port) == ("text.generate", "prompt")
    assert (save.params["path"], save.params["quality"]) == ("out/audio/stable_audio_3.mp3", "V0")
    (ks,) = [e for e in result.report.entries.values() if e.class_type == "KSampler"]
    assert ks.status == "exact"


@pytest.mark.parametrize("sampler, runs_as", [("sa_solver", "euler"), ("euler_cfg_pp", "euler")])
def test_a_template_sampler_kinograph_lacks_is_named_and_replaced(sampler, runs_as):
    """A KSampler sampler generate.stable_audio3 does not have was written into the node as it was and reported
    exact: the imported workflow then failed to load ("'heun' is not one of ...")."""
    result, wf, sound, _ = imported("audio_stable_audio_3_medium.json", sampler)
    assert sound.params["sampler"] == runs_as
    (ks,) = [e for e in result.report.entries.values() if e.class_type == "KSampler"]
    assert ks.status == "approx"
    assert any(f"sampler {sampler}" in n for e in result.report.entries.values() for n in e.notes)


def test_comfyui_template_runs_and_saves_its_sound(model, tmp_path):
    """The medium template run on the tiny files (1 s, 2 lcm steps, its seed; the prompt written in place of Qwen3.5's
    rewrite, saved as FLAC rather than MP3 V0 to compare samples): the reference's waveform, at 44.1 kHz stereo."""
    from graph_engine.api import Session
    _, wf, sound, save = imported("audio_stable_audio_3_medium.json")
    for n in [n for n in wf.graph.nodes.values() if n.type in ("text.generate", "load.text_encoder")]:
        wf.graph.remove_node(n.id)
    sound.params.update(checkpoint=CKPT, text_encoder=TE, prompt="tropical house, marimba", seconds=SECONDS, steps=2)
    save.params["path"] = str(tmp_path / "ComfyUI.flac")
    run = Session(device="cpu").run(wf, use_cache=False)
    assert run.ok, run.failed
    codec, rate, got = decoded(tmp_path / "ComfyUI.flac")
    want = reference("tropical house, marimba", "", 2, 1.0, sound.params["seed"])
    assert (codec, rate, got.shape) == ("flac", 44100, (2, FRAMES * HOP))
    assert np.abs(got - np.clip(want.numpy(), -1, 1)).max() < 2 / 32768
