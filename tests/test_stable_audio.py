"""Stable Audio Open 1.0 from the files ComfyUI users have (its checkpoint in stable-audio-tools' key names, T5-base in
transformers'), on tiny random weights: the waveform against diffusers' StableAudioPipeline with the same weights,
prompt and seed, and the sound file a workflow writes (its rate, channels, length and samples, read back by ffmpeg)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from tests.comfy_layouts import _save, models_dir, t5_file
from tests.tiny_models import t5_encoder, t5_tokenizer

SECONDS = 1.0           # ComfyUI's EmptyLatentAudio: round(1 * 44100 / 2048 / 2) * 2 = 22 latent frames
FRAMES = 22
HOP = 8                 # the tiny VAE's strides 2 x 4
CKPT = "stable_audio_tiny.safetensors"


def tiny_parts():
    from diffusers import AutoencoderOobleck, StableAudioDiTModel, StableAudioProjectionModel
    torch.manual_seed(0)
    dit = StableAudioDiTModel(sample_size=FRAMES, in_channels=8, num_layers=2, attention_head_dim=64,
                              num_attention_heads=2, num_key_value_attention_heads=1, out_channels=8,
                              cross_attention_dim=32, time_proj_dim=32, global_states_input_dim=64,
                              cross_attention_input_dim=32)
    # diffusers' sampling_rate only sets where its pipeline cuts the decode: here at the latent's whole length
    vae = AutoencoderOobleck(encoder_hidden_size=4, downsampling_ratios=[2, 4], channel_multiples=[1, 2],
                             decoder_channels=4, decoder_input_channels=8, audio_channels=2,
                             sampling_rate=FRAMES * HOP)
    proj = StableAudioProjectionModel(32, 32, 0, 512)
    with torch.no_grad():       # snakes and norm scales away from their 0 / 1 starts, so a swapped one shows
        for k, p in [*dit.named_parameters(), *vae.named_parameters()]:
            if k.endswith(("alpha", "beta")) or re.search(r"norm\d\.weight$", k):
                p.add_(torch.randn_like(p) * 0.3)
    return dit.eval(), vae.eval(), proj.eval(), t5_encoder(32).eval()


# stable-audio-tools' names, as the checkpoint ComfyUI loads holds them (diffusers' scripts/convert_stable_audio.py
# goes the other way)
_DIT = [("time_proj.weight", "timestep_features.weight"), ("timestep_proj.", "to_timestep_embed."),
        ("global_proj.", "to_global_embed."), ("cross_attention_proj.", "to_cond_embed."),
        ("proj_in.", "transformer.project_in."), ("proj_out.", "transformer.project_out."),
        ("transformer_blocks.", "transformer.layers."), ("attn1.to_out.0.", "self_attn.to_out."),
        ("attn2.to_out.0.", "cross_attn.to_out."), ("attn2.to_q.", "cross_attn.to_q."), ("ff.net.", "ff.ff."),
        ("norm1.weight", "pre_norm.gamma"), ("norm1.bias", "pre_norm.beta"),
        ("norm2.weight", "cross_attend_norm.gamma"), ("norm2.bias", "cross_attend_norm.beta"),
        ("norm3.weight", "ff_norm.gamma"), ("norm3.bias", "ff_norm.beta")]
_ENC = {"res_unit1": 0, "res_unit2": 1, "res_unit3": 2, "snake1": 3, "conv1": 4}
_DEC = {"snake1": 0, "conv_t1": 1, "res_unit1": 2, "res_unit2": 3, "res_unit3": 4}
_UNIT = {"snake1": 0, "conv1": 1, "snake2": 2, "conv2": 3}


def comfy_checkpoint(dit, vae, proj) -> dict:
    out = {}
    sd = dit.state_dict()
    for k, v in sd.items():
        if re.search(r"attn1\.to_[qkv]\.|attn2\.to_[kv]\.", k):
            continue
        for a, b in _DIT:
            k = k.replace(a, b)
        out["model.model." + k] = v.reshape(-1, 1) if k == "timestep_features.weight" else v
    for i in range(len(dit.transformer_blocks)):
        b = f"transformer_blocks.{i}."
        out[f"model.model.transformer.layers.{i}.self_attn.to_qkv.weight"] = torch.cat(
            [sd[b + f"attn1.to_{n}.weight"] for n in "qkv"])
        out[f"model.model.transformer.layers.{i}.cross_attn.to_kv.weight"] = torch.cat(
            [sd[b + f"attn2.to_{n}.weight"] for n in "kv"])
    # stable-audio-tools' RotaryEmbedding(max(64 // 2, 32)) buffer
    out["model.model.transformer.rotary_pos_emb.inv_freq"] = 1.0 / 10000 ** (torch.arange(0, 32, 2).float() / 32)
    out.update({"pretransform.model." + k: v for k, v in oobleck_original(vae).items()})
    for k, v in proj.state_dict().items():
        k = k.replace("start_number_conditioner.time_positional_embedding", "seconds_start.embedder.embedding")
        k = k.replace("end_number_conditioner.time_positional_embedding", "seconds_total.embedder.embedding")
        out["conditioner.conditioners." + k] = v
    return out


def oobleck_original(vae) -> dict:
    """AutoencoderOobleck's tensors in stable-audio-tools' names (encoder.layers.N / decoder.layers.N), as ComfyUI's
    Oobleck VAE files hold them."""
    out = {}
    blocks = len(vae.config.downsampling_ratios)
    for k, v in vae.state_dict().items():
        side, rest = k.split(".", 1)
        m = re.match(r"block\.(\d+)\.(\w+)\.(.*)", rest)
        if rest.startswith("conv1."):
            rest = "layers.0." + rest[6:]
        elif rest.startswith("snake1."):
            rest = f"layers.{blocks + 1}." + rest[7:]
        elif rest.startswith("conv2."):
            rest = f"layers.{blocks + 2}." + rest[6:]
        else:
            layer = (_ENC if side == "encoder" else _DEC)[m.group(2)]
            tail = m.group(3)
            if m.group(2).startswith("res_unit"):
                unit, tail = tail.split(".", 1)
                tail = f"layers.{_UNIT[unit]}.{tail}"
            rest = f"layers.{int(m.group(1)) + 1}.layers.{layer}.{tail}"
        out[f"{side}.{rest}"] = v.reshape(-1) if k.endswith(("alpha", "beta")) else v
    return out


PARTS = {}


def build(root):
    dit, vae, proj, text = tiny_parts()
    models = root / "models"
    _save(comfy_checkpoint(dit, vae, proj), models / "checkpoints" / CKPT)
    _save(t5_file(text), models / "text_encoders" / "t5-base.safetensors")
    tok = t5_tokenizer(models / "text_encoders" / "t5-base")
    tok.model_max_length = 128          # Stable Audio Open's tokenizer config
    PARTS["diffusers"] = (dit, vae, proj, text, tok)
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    yield from models_dir(tmp_path_factory, build, "stable_audio")


def reference(parts, prompt: str, negative: str, steps: int, cfg: float, seed: int, start: float = 0.0) -> torch.Tensor:
    """diffusers' StableAudioPipeline, sampled by DPM-Solver++(2M) over ComfyUI's exponential schedule (500 to
    0.03) with the model's atan(sigma) * 2 / pi time input, then VAEDecodeAudio's loudness rule."""
    from diffusers import EDMDPMSolverMultistepScheduler, StableAudioPipeline

    class AtanTime(EDMDPMSolverMultistepScheduler):
        def precondition_noise(self, sigma):
            return torch.as_tensor(sigma).atan() / math.pi * 2

    dit, vae, proj, text, tok = parts
    sch = AtanTime(sigma_min=0.03, sigma_max=500.0, sigma_data=1.0, sigma_schedule="exponential",
                   prediction_type="v_prediction", algorithm_type="dpmsolver++", solver_order=2)
    pipe = StableAudioPipeline(vae=vae, text_encoder=text, projection_model=proj, tokenizer=tok, transformer=dit,
                               scheduler=sch)
    wave = pipe(prompt, negative_prompt=negative, audio_start_in_s=start, audio_end_in_s=SECONDS,
                num_inference_steps=steps,
                guidance_scale=cfg, generator=torch.Generator().manual_seed(seed), output_type="pt").audios[0]
    std = float(wave.std()) * 5.0
    return wave / max(std, 1.0)


def test_waveform_matches_diffusers(tiny):
    from nodes.generate import stable_audio as sa
    from nodes.generate.model_manager import ModelManager
    model = sa.load(ModelManager(), CKPT, "t5-base.safetensors", "cpu")
    got = sa.generate(model, "rain on a tin roof", "", SECONDS, 6, 4.0, "dpmpp_2m", "exponential", 7)
    want = reference(PARTS["diffusers"], "rain on a tin roof", "", 6, 4.0, 7)
    assert got.shape == want.shape == (2, FRAMES * HOP)
    assert float(want.abs().max()) > 0.05
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-3), float((got - want).abs().max())


def test_the_templates_sde_sampler_draws_comfyuis_brownian_noise(tiny, monkeypatch):
    """The template's dpmpp_3m_sde_gpu runs as itself (it ran as DPM-Solver++(2M)), its step noise one Brownian motion
    over the run's levels for the seed, drawn on the sampling device as ComfyUI's _gpu variant draws it."""
    from nodes.generate import samplers
    from nodes.generate import stable_audio as sa
    from nodes.generate.model_manager import ModelManager
    calls = []
    drawn = samplers.comfy_step_noise

    def spy(name, shape, seed, device, sigmas):
        calls.append((name, seed, str(device), len(sigmas)))
        return drawn(name, shape, seed, device, sigmas)
    monkeypatch.setattr(samplers, "comfy_step_noise", spy)
    model = sa.load(ModelManager(), CKPT, "t5-base.safetensors", "cpu")
    got = sa.generate(model, "rain on a tin roof", "", SECONDS, 4, 4.0, "dpmpp_3m_sde_gpu", "exponential", 7)
    assert calls == [("dpmpp_3m_sde_gpu", 7, "cpu", 5)]
    assert torch.isfinite(got).all()
    assert torch.equal(got, sa.generate(model, "rain on a tin roof", "", SECONDS, 4, 4.0, "dpmpp_3m_sde_gpu",
                                        "exponential", 7))
    assert not torch.allclose(got, sa.generate(model, "rain on a tin roof", "", SECONDS, 4, 4.0, "dpmpp_2m",
                                               "exponential", 7), atol=1e-4)



def test_told_a_later_part_of_a_piece(tiny):
    """ConditioningStableAudio's seconds_start and seconds_total are diffusers' audio_start_in_s and audio_end_in_s
    (whose pipeline then keeps the waveform from the start on; the loudness rule is taken over that part)."""
    from nodes.generate import stable_audio as sa
    from nodes.generate.model_manager import ModelManager
    model = sa.load(ModelManager(), CKPT, "t5-base.safetensors", "cpu")
    got = sa.generate(model, "rain on a tin roof", "", SECONDS, 4, 4.0, "dpmpp_2m", "exponential", 3,
                      seconds_start=0.25, seconds_total=SECONDS)
    want = reference(PARTS["diffusers"], "rain on a tin roof", "", 4, 4.0, 3, start=0.25)
    cut = FRAMES * HOP // 4
    assert want.shape == (2, FRAMES * HOP - cut)
    got = got[:, cut:] / got[:, cut:].std()                            # each side's loudness rule scales its own
    want = want / want.std()                                            # part: compared at one loudness
    assert float(want.abs().max()) > 0.5
    # (the start's embedding moves this tiny model's sound by 5e-5: told 0 instead, it fails)
    assert torch.allclose(got, want, atol=1e-5, rtol=0), float((got - want).abs().max())


def decoded(path):
    """(codec, rate, the samples [channels, n] as floats) of a sound file, decoded by ffmpeg (PyAV)."""
    import av
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        parts = []
        for f in c.decode(s):
            a = f.to_ndarray()
            parts.append(a if f.format.is_planar else a.reshape(-1, s.channels).T)
        scale = 32768.0 if parts[0].dtype == np.int16 else 1.0
        return s.codec_context.name, s.rate, np.concatenate(parts, 1) / scale


def test_workflow_writes_the_sound_file(tiny, tmp_path):
    from graph_engine.api import Session, load_workflow
    out = tmp_path / "rain.flac"
    text = f"""kinograph: 1
nodes:
  sound: {{type: generate.stable_audio, params: {{checkpoint: {CKPT}, prompt: rain on a tin roof, seconds: {SECONDS},
           steps: 3, cfg: 4.0, seed: 7}}}}
  save: {{type: io.save_audio, inputs: {{audio: sound.audio}}, params: {{path: '{out}'}}}}
  clip: {{type: generate.solid, params: {{width: 32, height: 32, frames: 3, fps: 24}}}}
  scored: {{type: io.set_audio, inputs: {{video: clip.video, audio: sound.audio}}}}
  film: {{type: io.save_video, inputs: {{video: scored.video}}, params: {{path: '{tmp_path / "scored.mp4"}'}}}}
"""
    run = Session(device="cpu").run(load_workflow(text=text, check=False), use_cache=False)
    assert run.ok, run.failed
    codec, rate, got = decoded(out)
    want = reference(PARTS["diffusers"], "rain on a tin roof", "", 3, 4.0, 7).numpy()
    assert (codec, rate, got.shape) == ("flac", 44100, (2, FRAMES * HOP))
    assert np.abs(got - np.clip(want, -1, 1)).max() < 2 / 32768        # 16-bit FLAC of the same waveform
    _, rate, muxed = decoded(tmp_path / "scored.mp4")                   # the clip's sound: it, then silence
    assert rate == 44100 and muxed.shape[0] == 2 and muxed.shape[1] >= 3 / 24 * 44100 - 1024
    assert np.abs(muxed).max() > 0.05


def test_not_a_stable_audio_checkpoint(tiny):
    from graph_engine import NodeError
    from nodes.generate import stable_audio as sa
    from nodes.generate.model_manager import ModelManager
    with pytest.raises(NodeError, match="not a Stable Audio Open checkpoint.*stable-audio-open-1.0.safetensors"):
        sa.load(ModelManager(), str(tiny / "models" / "text_encoders" / "t5-base.safetensors"),
                "t5-base.safetensors", "cpu")


def test_kinograph_info_names_the_checkpoint_and_the_node_that_reads_it(tiny, capsys):
    """A newcomer's `kinograph info` listed Stable Audio Open's checkpoint as 'unknown ... no known key pattern',
    loads 'no', and load.model (what checkpoints/ is read by) said it could not tell the family."""
    told_by_info(tiny / "models" / "checkpoints" / CKPT, "open-1.0", "Stable Audio Open 1.0",
                 "generate.stable_audio reads it as its checkpoint", capsys)


def told_by_info(ckpt, variant: str, title: str, reader: str, capsys):
    """`kinograph info`'s row and note for a Stable Audio checkpoint, and load.model's refusal naming its node."""
    from app.cli import main
    from graph_engine import NodeError
    from nodes.generate.model_manager import describe_model, detect_family
    d = describe_model(ckpt)
    assert (d["family"], d["role"], d["loads"]) == ("stable_audio", "checkpoint", "yes"), d
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.endswith(str(ckpt)))
    assert row.split()[:3] == ["stable_audio", variant, "checkpoint"], row
    assert reader in out
    with pytest.raises(NodeError, match=f"{ckpt.name} is {title}'s checkpoint.*{reader.split()[0]}"):
        detect_family(ckpt)


def test_a_t5_of_another_width_is_named(tiny):
    """T5-XXL beside T5-base in text_encoders/ (FLUX.1's, SD3's) is T5 too, but its states are wider than the DiT's
    cross-attention reads: named, where it stopped in a tensor size mismatch."""
    import shutil
    from graph_engine import NodeError
    from nodes.generate import stable_audio as sa
    from nodes.generate.model_manager import ModelManager
    te = tiny / "models" / "text_encoders"
    _save(t5_file(t5_encoder(48)), te / "t5xxl_wide_tiny.safetensors")
    shutil.copytree(te / "t5-base", te / "t5xxl_wide_tiny", dirs_exist_ok=True)
    with pytest.raises(NodeError, match=r"t5xxl_wide_tiny\.safetensors gives 48-wide states.*reads 32.*t5-base"):
        sa.load(ModelManager(), CKPT, "t5xxl_wide_tiny.safetensors", "cpu")


def test_comfyui_template_runs_and_saves_its_sound(tiny, tmp_path):
    """ComfyUI's Stable Audio Open template (tests/data/comfyui/templates): its loaders, prompts, EmptyLatentAudio,
    KSampler and VAEDecodeAudio become one generate.stable_audio, its SaveAudioAdvanced io.save_audio; run on the
    tiny files (1 s, 3 steps), the FLAC holds the reference's sound for its prompt, cfg and seed."""
    from pathlib import Path
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    template = Path(__file__).parent / "data" / "comfyui" / "templates" / "audio_stable_audio_example.json"
    result = import_workflow(str(template))
    wf = load_workflow(text=result.yaml, check=False)
    (sound,) = [n for n in wf.graph.nodes.values() if n.type == "generate.stable_audio"]
    (save,) = [n for n in wf.graph.nodes.values() if n.type == "io.save_audio"]
    assert {k: sound.params[k] for k in ("prompt", "negative", "seconds", "cfg", "sampler", "scheduler", "text_encoder")} \
        == {"prompt": "heaven church electronic dance music", "negative": "", "seconds": 47.6, "cfg": 4.98,
            "sampler": "dpmpp_3m_sde_gpu", "scheduler": "exponential", "text_encoder": "t5-base.safetensors"}
    assert save.params["path"] == "out/audio/ComfyUI.flac"
    # the reference is diffusers' pipeline, whose sampler is DPM-Solver++(2M) (the SDE samplers' own test is
    # test_comfy_sde_samplers)
    sound.params.update(checkpoint=CKPT, seconds=SECONDS, steps=3, sampler="dpmpp_2m")
    save.params["path"] = str(tmp_path / "ComfyUI.flac")
    run = Session(device="cpu").run(wf, use_cache=False)
    assert run.ok, run.failed
    codec, rate, got = decoded(tmp_path / "ComfyUI.flac")
    want = reference(PARTS["diffusers"], "heaven church electronic dance music", "", 3, 4.98, sound.params["seed"])
    assert (codec, rate, got.shape) == ("flac", 44100, (2, FRAMES * HOP))
    assert np.abs(got - np.clip(want.numpy(), -1, 1)).max() < 2 / 32768


def test_a_written_prompt_stays_linked():
    """A prompt a language model writes (TextGenerate into CLIPTextEncode) reaches generate.stable_audio's prompt
    through its link, ConditioningStableAudio's seconds its seconds_start and seconds_total; the graph validates."""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    api = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "stable-audio-open-1.0.safetensors"}},
           "10": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5-base.safetensors", "type": "stable_audio"}},
           "20": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_3_4b.safetensors", "type": "stable_diffusion"}},
           "21": {"class_type": "TextGenerate", "inputs": {"clip": ["20", 0], "prompt": "a rainy night",
                                                           "max_length": 64, "sampling_mode": "off"}},
           "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 0], "text": ["21", 0]}},
           "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 0], "text": "noise"}},
           "8": {"class_type": "ConditioningStableAudio", "inputs": {"positive": ["6", 0], "negative": ["7", 0],
                                                                     "seconds_start": 4.0, "seconds_total": 30.0}},
           "11": {"class_type": "EmptyLatentAudio", "inputs": {"seconds": 10.0, "batch_size": 1}},
           "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "positive": ["8", 0], "negative": ["8", 1],
                                                      "latent_image": ["11", 0], "seed": 1, "steps": 20, "cfg": 5.0,
                                                      "sampler_name": "euler", "scheduler": "karras", "denoise": 0.8}},
           "12": {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
           "13": {"class_type": "SaveAudio", "inputs": {"audio": ["12", 0], "filename_prefix": "audio/x"}}}
    result = import_data(api)
    g = load_workflow(text=result.yaml).graph
    assert sorted(n.type for n in g.nodes.values()) == ["generate.stable_audio", "io.save_audio", "load.text_encoder",
                                                        "text.generate"]
    assert g.inputs["k_sampler_3"]["prompt"] == ("text_generate_21", "text")
    (decode,) = [e for e in result.report.entries.values() if e.class_type == "VAEDecodeAudio"]
    assert decode.notes == ["denoise 0.8 is not carried: generate.stable_audio makes the sound from noise (1.0)"]
    assert {k: g.nodes["k_sampler_3"].params[k] for k in ("negative", "seconds", "seconds_start", "seconds_total",
                                                          "sampler", "scheduler")} == \
        {"negative": "noise", "seconds": 10.0, "seconds_start": 4.0, "seconds_total": 30.0, "sampler": "euler",
         "scheduler": "karras"}
