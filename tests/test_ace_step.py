"""ACE-Step 1.5 from the files ComfyUI users have (its diffusion model in ComfyUI's key names, Qwen3 encoder and
language model in transformers', the Oobleck VAE in stable-audio-tools'), on tiny random weights: the waveform against
diffusers' AceStepPipeline with the same weights, caption, lyrics, codes and noise, the audio codes against
transformers' generate, and the sound file a workflow writes."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tests.comfy_layouts import _save, models_dir
from tests.test_stable_audio import decoded, oobleck_original

SECONDS = 1.0           # 25 latent frames, 5 audio codes
FRAMES = 25
HOP = 8                 # the tiny VAE's strides 2 x 4
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|audio_code_0|>")
CODE0 = 256 + SPECIAL.index("<|audio_code_0|>")      # the byte tokenizer's first special id + its place
FILES = dict(diffusion_model="acestep_tiny.safetensors", text_encoder="qwen_0.6b_ace15.safetensors",
             lm="qwen_1.7b_ace15.safetensors", vae="ace_1.5_vae.safetensors")
# ComfyUI's all-in-one checkpoint (ace_step_1.5_turbo_aio's names): the four files under their prefixes
AIO = "ace_step_1.5_tiny_aio.safetensors"
SONG = dict(tags="lo-fi piano, rain", lyrics="[verse]\nla la la", bpm=90, duration=SECONDS, timesignature="4",
            language="en", keyscale="A minor")


def tiny_parts():
    from diffusers import AceStepTransformer1DModel, AutoencoderOobleck
    from diffusers.pipelines.ace_step.modeling_ace_step import (AceStepAudioTokenDetokenizer, AceStepAudioTokenizer,
                                                                 AceStepConditionEncoder)
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model
    torch.manual_seed(0)
    attn = dict(num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=48)
    dit = AceStepTransformer1DModel(hidden_size=32, num_hidden_layers=2, in_channels=192, **attn)
    # as ComfyUI's: its lyric and timbre encoders attend to every token (diffusers' default slides a 128-token
    # window in every other layer)
    enc = AceStepConditionEncoder(hidden_size=32, text_hidden_dim=32, num_lyric_encoder_hidden_layers=2,
                                  num_timbre_encoder_hidden_layers=1, layer_types=["full_attention"] * 2, **attn)
    # ComfyUI's pooler and detokenizer: 16 heads, 8 for keys and values, MLPs 3 x as wide
    pool = dict(hidden_size=32, num_attention_heads=16, num_key_value_heads=8, head_dim=8, intermediate_size=96,
                num_attention_pooler_hidden_layers=1)
    tok = AceStepAudioTokenizer(fsq_dim=32, **pool)
    detok = AceStepAudioTokenDetokenizer(**pool)
    # the pipeline makes round(seconds x 25) latent frames when its rate / strides is 25
    vae = AutoencoderOobleck(encoder_hidden_size=4, downsampling_ratios=[2, 4], channel_multiples=[1, 2],
                             decoder_channels=4, decoder_input_channels=64, audio_channels=2, sampling_rate=25 * HOP)
    qwen = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-6, rope_theta=1000000.0)
    te = Qwen3Model(Qwen3Config(vocab_size=CODE0 + 1, **qwen))
    lm = Qwen3ForCausalLM(Qwen3Config(vocab_size=CODE0 + 64000, tie_word_embeddings=True, **qwen))
    with torch.no_grad():       # norms, gates and the null embedding away from their starts, so a swapped one shows
        for m in (dit, enc, tok, detok, vae):
            for k, p in m.named_parameters():
                if re.search(r"norm|scale_shift|special_token|null_condition|alpha|beta", k):
                    p.add_(torch.randn_like(p) * 0.3)
        lm.lm_head.weight.mul_(8)       # sharper logits: top-p keeps some codes, not nearly all
    return {k: m.eval() for k, m in dict(transformer=dit, condition_encoder=enc, audio_tokenizer=tok,
                                         audio_token_detokenizer=detok, vae=vae, text_encoder=te, lm=lm).items()}


# ComfyUI's names (comfy/ldm/ace/ace_step15.py's modules), written from diffusers' back
_BACK = (("to_q.", "q_proj."), ("to_k.", "k_proj."), ("to_v.", "v_proj."), ("to_out.0.", "o_proj."),
         ("norm_q.", "q_norm."), ("norm_k.", "k_norm."), ("proj_in_conv.", "proj_in.1."),
         ("proj_out_conv.", "proj_out.1."))


def comfy_diffusion_model(p: dict) -> dict:
    out = {}
    for part, prefix in (("transformer", "decoder."), ("condition_encoder", "encoder."),
                         ("audio_tokenizer", "tokenizer."), ("audio_token_detokenizer", "detokenizer.")):
        for k, v in p[part].state_dict().items():
            if k == "silence_latent":
                continue
            if k == "null_condition_emb":
                out[k] = v
                continue
            for a, b in _BACK:
                k = k.replace(a, b)
            out[prefix + k] = v
    return out


PARTS = {}


def build(root):
    from tests.tiny_flux2 import QWEN3_CHAT, tokenizer
    p = tiny_parts()
    models = root / "models"
    _save(comfy_diffusion_model(p), models / "diffusion_models" / FILES["diffusion_model"])
    _save({"model." + k: v for k, v in p["text_encoder"].state_dict().items()},
          models / "text_encoders" / FILES["text_encoder"])
    _save({k: v for k, v in p["lm"].state_dict().items() if k != "lm_head.weight"},
          models / "text_encoders" / FILES["lm"])
    _save(oobleck_original(p["vae"]), models / "vae" / FILES["vae"])
    p["tokenizer"] = tokenizer(models / "text_encoders" / "qwen_0.6b_ace15", QWEN3_CHAT, SPECIAL)
    lm = {k: v for k, v in p["lm"].state_dict().items() if k != "lm_head.weight"}
    _save({**{"model.diffusion_model." + k: v for k, v in comfy_diffusion_model(p).items()},
           **{"vae." + k: v for k, v in oobleck_original(p["vae"]).items()},
           **{"text_encoders.qwen3_06b.transformer.model." + k: v for k, v in p["text_encoder"].state_dict().items()},
           **{"text_encoders.qwen3_2b.transformer." + k: v for k, v in lm.items()}}, models / "checkpoints" / AIO)
    tokenizer(models / "checkpoints" / AIO.removesuffix(".safetensors"), QWEN3_CHAT, SPECIAL)
    PARTS.update(p)
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    yield from models_dir(tmp_path_factory, build, "ace_step")


@pytest.fixture(scope="module")
def model(tiny):
    from nodes.generate import ace_step as ace
    from nodes.generate.model_manager import ModelManager
    return ace.load(ModelManager(), *FILES.values(), "cpu")


def comfy_texts(prompt, lyrics="", vocal_language="en", audio_duration=60.0, instruction=None, bpm=None,
                keyscale=None, timesignature=None):
    """ComfyUI's caption and lyrics templates (comfy/text_encoders/ace15.py, ACE15Tokenizer), written out; diffusers'
    own differ (its text2music instruction, one end-of-text)."""
    metas = f"- bpm: {bpm}\n- timesignature: {timesignature}\n- keyscale: {keyscale}\n- duration: " \
            f"{int(np.ceil(audio_duration))} seconds"
    return (f"# Instruction\nGenerate audio semantic tokens based on the given conditions:\n\n# Caption\n{prompt}\n\n"
            f"# Metas\n{metas}\n<|endoftext|>\n<|endoftext|>",
            f"# Languages\n{vocal_language}\n\n# Lyric\n{lyrics}<|endoftext|><|endoftext|>")


def reference(codes, steps: int, seed: int, cfg: float = 1.0, shift: float = 3.0, song=SONG) -> torch.Tensor:
    """diffusers' AceStepPipeline on the same modules: ComfyUI's texts (uncut, as ComfyUI's), the codes as its audio_codes string (its
    cover path: the codes' hints as the source), ComfyUI's silence as its silence latent, KSampler's noise (drawn
    [1, 64, T] on the CPU) as its latents, plain CFG against the null embedding in place of its APG (ComfyUI's
    KSampler), then VAEDecodeAudio's loudness rule on the decode."""
    import diffusers.pipelines.ace_step.pipeline_ace_step as module
    from diffusers import AceStepPipeline, FlowMatchEulerDiscreteScheduler
    from nodes.generate.ace_step import silence
    p = PARTS
    p["condition_encoder"].silence_latent = silence(FRAMES)
    pipe = AceStepPipeline(vae=p["vae"], text_encoder=p["text_encoder"], tokenizer=p["tokenizer"],
                           transformer=p["transformer"], condition_encoder=p["condition_encoder"],
                           scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0),
                           audio_tokenizer=p["audio_tokenizer"], audio_token_detokenizer=p["audio_token_detokenizer"])
    pipe._format_prompt = comfy_texts
    noise = torch.randn((1, 64, FRAMES), generator=torch.Generator().manual_seed(seed)).transpose(1, 2)
    plain = module.normalized_guidance
    module.normalized_guidance = lambda pred_cond, pred_uncond, guidance_scale, **_: \
        pred_uncond + (guidance_scale + 1) * (pred_cond - pred_uncond)
    try:
        latent = pipe(song["tags"].strip(), lyrics=song["lyrics"], audio_duration=SECONDS, num_inference_steps=steps,
                      guidance_scale=cfg, shift=shift, bpm=song["bpm"], keyscale=song["keyscale"],
                      timesignature=song["timesignature"], vocal_language=song["language"],
                      audio_codes="".join(f"<|audio_code_{c}|>" for c in codes), latents=noise,
                      max_text_length=100000, max_lyric_length=100000, output_type="latent").audios
    finally:
        module.normalized_guidance = plain
    with torch.no_grad():
        wave = p["vae"].decode(latent.transpose(1, 2)).sample[0]
    std = float(wave.std()) * 5.0
    return wave / max(std, 1.0)


def generated(model, codes, steps: int, seed: int, cfg: float = 1.0):
    from nodes.generate import ace_step as ace
    return ace.generate(model, ace.Song(**SONG), SECONDS, steps, cfg, "euler", "simple", 3.0, seed, codes)


def test_waveform_matches_diffusers(model):
    """Turbo's way (cfg 1, 8 euler steps, shift 3) with five codes: the same waveform as diffusers'."""
    codes = [17, 4000, 63999, 5, 31000]
    got = generated(model, codes, 8, 31)
    want = reference(codes, 8, 31)
    assert got.shape == want.shape == (2, FRAMES * HOP)
    assert float(want.abs().max()) > 0.05
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), float((got - want).abs().max())
    other = generated(model, [40000, 4000, 63999, 5, 31000], 8, 31)     # another first code moves the sound
    assert float((other - want).abs().max()) > 1e-3


def test_guided_base_model_is_plain_cfg(model):
    """base / sft's cfg > 1: ComfyUI's KSampler mixes uncond + cfg x (cond - uncond) against the null embedding
    (ConditioningZeroOut's negative); diffusers' APG gives another sound for the same settings."""
    import diffusers.pipelines.ace_step.pipeline_ace_step as module
    codes = [1, 2, 3, 4, 5]
    got = generated(model, codes, 4, 2, cfg=3.0)
    want = reference(codes, 4, 2, cfg=3.0)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), float((got - want).abs().max())
    assert module.normalized_guidance.__name__ == "normalized_guidance"      # the reference put APG back


def test_audio_codes_match_transformers_generate(model):
    """cfg 1: the language model's codes drawn as ComfyUI's loop draws them equal transformers' generate's on the
    chat prompt, with the processors in ComfyUI's order (only codes, then top-p, then temperature) under
    torch.manual_seed(seed)."""
    from transformers import LogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper
    from nodes.generate import ace_step as ace

    class OnlyCodes(LogitsProcessor):
        def __call__(self, ids, scores):
            keep = torch.full_like(scores, float("-inf"))
            keep[:, CODE0:CODE0 + 64000] = 0
            return scores + keep

    song = ace.Song(**{**SONG, "duration": 2.0})
    got = ace.audio_codes(model, song, ace.Drawing(seed=5, cfg=1.0, temperature=0.85, top_p=0.9))
    tok = PARTS["tokenizer"]
    text = ("<|im_start|>system\n# Instruction\nGenerate audio semantic tokens based on the given conditions:\n\n"
            "<|im_end|>\n<|im_start|>user\n# Caption\nlo-fi piano, rain\n\n# Lyric\n[verse]\nla la la\n<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nbpm: 90\nduration: 2\nkeyscale: A minor\ntimesignature: 4\n</think>"
            "\n\n<|im_end|>\n")
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    torch.manual_seed(5)
    out = PARTS["lm"].generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=10,
                               min_new_tokens=10, temperature=1.0, top_p=1.0, top_k=0, pad_token_id=256,
                               logits_processor=LogitsProcessorList([OnlyCodes(), TopPLogitsWarper(0.9),
                                                                     TemperatureLogitsWarper(0.85)]))
    want = (out[0, ids.shape[1]:] - CODE0).tolist()
    assert len(got) == 10 and got == want
    assert len(set(got)) > 3                                        # drawn, not one code over and over
    assert ace.audio_codes(model, song, ace.Drawing(seed=6, cfg=1.0)) != got


def test_guided_codes(model):
    """cfg 2 (the templates'): seeded, ceil(duration) x 5 codes, and the negative prompt (no metas) changes them."""
    from nodes.generate import ace_step as ace
    song = ace.Song(**{**SONG, "duration": 2.0})
    a = ace.audio_codes(model, song, ace.Drawing(seed=1, cfg=2.0))
    assert len(a) == 10 and all(0 <= c < 64000 for c in a)
    assert a == ace.audio_codes(model, song, ace.Drawing(seed=1, cfg=2.0))
    assert a != ace.audio_codes(model, song, ace.Drawing(seed=1, cfg=1.0))


def test_workflow_writes_the_song(model, tmp_path):
    """A YAML run (codes drawn by the language model, guided 2.0) writes FLAC at 48 kHz, read back by ffmpeg: the
    reference's waveform for those codes, as 16-bit samples; the same sound under a clip in an MP4."""
    from graph_engine.api import Session, load_workflow
    from nodes.generate import ace_step as ace
    out = tmp_path / "song.flac"
    params = ", ".join(f"{k}: {v}" for k, v in FILES.items())
    text = f"""kinograph: 1
nodes:
  song: {{type: generate.ace_step, params: {{{params}, tags: '{SONG["tags"]}', lyrics: "[verse]\\nla la la",
          seconds: {SECONDS}, bpm: 90, keyscale: A minor, steps: 8, cfg: 1.0, seed: 31, lm_seed: 4, lm_cfg: 2.0}}}}
  save: {{type: io.save_audio, inputs: {{audio: song.audio}}, params: {{path: '{out}'}}}}
  clip: {{type: generate.solid, params: {{width: 32, height: 32, frames: 3, fps: 24}}}}
  scored: {{type: io.set_audio, inputs: {{video: clip.video, audio: song.audio}}}}
  film: {{type: io.save_video, inputs: {{video: scored.video}}, params: {{path: '{tmp_path / "scored.mp4"}'}}}}
"""
    run = Session(device="cpu").run(load_workflow(text=text, check=False), use_cache=False)
    assert run.ok, run.failed
    codes = ace.audio_codes(model, ace.Song(**SONG), ace.Drawing(seed=4, cfg=2.0))
    want = reference(codes, 8, 31).numpy()
    codec, rate, got = decoded(out)
    assert (codec, rate, got.shape) == ("flac", 48000, (2, FRAMES * HOP))
    assert np.abs(got - np.clip(want, -1, 1)).max() < 2 / 32768
    _, rate, muxed = decoded(tmp_path / "scored.mp4")
    assert rate == 48000 and muxed.shape[0] == 2 and np.abs(muxed).max() > 0.05


def test_not_an_ace_step_model(tiny):
    from graph_engine import NodeError
    from nodes.generate import ace_step as ace
    from nodes.generate.model_manager import ModelManager
    with pytest.raises(NodeError, match="not an ACE-Step 1.5 diffusion model.*acestep_v1.5_turbo.safetensors"):
        ace.load(ModelManager(), str(tiny / "models" / "vae" / FILES["vae"]), FILES["text_encoder"], "",
                 FILES["vae"], "cpu")
    # the diffusion model (its decoder.layers.0 is the DiT's) in the VAE's place: named as ACE-Step's VAE, not as
    # a Stable Audio checkpoint
    with pytest.raises(NodeError, match="not an ACE-Step 1.5 VAE.*ace_1.5_vae.safetensors"):
        ace.load(ModelManager(), FILES["diffusion_model"], FILES["text_encoder"], "",
                 str(tiny / "models" / "diffusion_models" / FILES["diffusion_model"]), "cpu")



def test_dual_clip_files_told_apart_by_width(tiny):
    """ComfyUI's DualCLIPLoader (type ace) tells Qwen3-0.6B from the language model by its width, in either order: a
    graph with the 1.7B / 4B first loads with each file in its place; a text encoder of another width alone is named
    (it was a shape error inside the condition encoder)."""
    from graph_engine import NodeError
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from nodes.generate import ace_step as ace
    from nodes.generate.model_manager import ModelManager
    wide = Qwen3ForCausalLM(Qwen3Config(vocab_size=CODE0 + 64000, hidden_size=48, intermediate_size=48,
                                        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                        tie_word_embeddings=True))
    _save({k: v for k, v in wide.state_dict().items() if k != "lm_head.weight"},
          tiny / "models" / "text_encoders" / "qwen_wide_lm.safetensors")
    m = ace.load(ModelManager(), FILES["diffusion_model"], "qwen_wide_lm.safetensors", FILES["text_encoder"],
                 FILES["vae"], "cpu")
    assert (m.text_encoder.config.hidden_size, m.lm.config.hidden_size) == (32, 48)
    with pytest.raises(NodeError, match="qwen_wide_lm.safetensors.*48.*32.*qwen_0.6b_ace15"):
        ace.load(ModelManager(), FILES["diffusion_model"], "qwen_wide_lm.safetensors", "", FILES["vae"], "cpu")


def imported(name: str):
    from pathlib import Path
    from app.comfyui import import_workflow
    from graph_engine.api import load_workflow
    result = import_workflow(str(Path(__file__).parent / "data" / "comfyui" / "templates" / name))
    wf = load_workflow(text=result.yaml, check=False)
    (song,) = [n for n in wf.graph.nodes.values() if n.type == "generate.ace_step"]
    (save,) = [n for n in wf.graph.nodes.values() if n.type == "io.save_audio"]
    return wf, song, save


def test_comfyui_split_template_imports():
    """ComfyUI's ACE-Step 1.5 turbo template (split files): its loaders, TextEncodeAceStepAudio1.5,
    ConditioningZeroOut, EmptyAceStep1.5LatentAudio, ModelSamplingAuraFlow, KSampler and VAEDecodeAudio become one
    generate.ace_step with their settings; SaveAudioAdvanced (MP3 V0) io.save_audio."""
    _, song, save = imported("audio_ace_step_1_5_split.json")
    p = song.params
    assert {k: p[k] for k in ("diffusion_model", "text_encoder", "lm", "vae", "seconds", "bpm", "timesignature",
                              "language", "keyscale", "steps", "cfg", "sampler", "scheduler", "shift", "seed",
                              "generate_audio_codes", "lm_seed", "lm_cfg", "temperature", "top_p", "top_k")} == \
        {"diffusion_model": "acestep_v1.5_turbo.safetensors", "text_encoder": "qwen_0.6b_ace15.safetensors",
         "lm": "qwen_1.7b_ace15.safetensors", "vae": "ace_1.5_vae.safetensors", "seconds": 120.0, "bpm": 190,
         "timesignature": "4", "language": "en", "keyscale": "E minor", "steps": 8, "cfg": 1, "sampler": "euler",
         "scheduler": "simple", "shift": 3.0, "seed": 31, "generate_audio_codes": True, "lm_seed": 31, "lm_cfg": 2,
         "temperature": 0.85, "top_p": 0.9, "top_k": 0}
    assert p["tags"].startswith("K-Pop: A slick") and p["lyrics"].startswith("[Intro - Synth Rise & Vocal Chop]")
    assert (save.params["path"], save.params["quality"]) == ("out/audio/ComfyUI.mp3", "V0")


def test_comfyui_xl_sft_template_runs_and_saves_its_song(model, tmp_path):
    """ComfyUI's XL SFT template (cfg 7, 50 steps, the 4B language model's codes) run on the tiny files (1 s, 4
    steps): its FLAC holds the reference's waveform for its caption, lyrics, metas, codes and seed."""
    from graph_engine.api import Session
    from nodes.generate import ace_step as ace
    wf, song, save = imported("audio_ace_step1_5_xl_sft.json")
    p = song.params
    assert (p["cfg"], p["steps"], p["lm"], save.params["path"]) == (7, 50, "qwen_4b_ace15.safetensors",
                                                                     "out/audio/ComfyUI.flac")
    p.update(FILES, seconds=SECONDS, steps=4)
    save.params["path"] = str(tmp_path / "ComfyUI.flac")
    run = Session(device="cpu").run(wf, use_cache=False)
    assert run.ok, run.failed
    widgets = {k: p[k] for k in ("tags", "lyrics", "bpm", "timesignature", "language", "keyscale")}
    codes = ace.audio_codes(model, ace.Song(**widgets, duration=SECONDS),
                            ace.Drawing(p["lm_seed"], p["lm_cfg"], p["temperature"], p["top_p"], p["top_k"]))
    want = reference(codes, 4, p["seed"], cfg=7.0, song={**widgets, "duration": SECONDS})
    codec, rate, got = decoded(tmp_path / "ComfyUI.flac")
    assert (codec, rate, got.shape) == ("flac", 48000, (2, FRAMES * HOP))
    assert np.abs(got - np.clip(want.numpy(), -1, 1)).max() < 2 / 32768


def test_all_in_one_checkpoint_is_the_split_files(model):
    """ComfyUI's all-in-one checkpoint (the diffusion model, VAE, Qwen3-0.6B and the 1.7B language model in one file,
    under ComfyUI's prefixes) read alone: diffusers' waveform for the same codes, and the codes the split files'
    language model draws."""
    from nodes.generate import ace_step as ace
    from nodes.generate.model_manager import ModelManager
    aio = ace.load(ModelManager(), "", "", "", "", "cpu", checkpoint=AIO)
    codes = [17, 4000, 63999, 5, 31000]
    got, want = generated(aio, codes, 8, 31), reference(codes, 8, 31)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), float((got - want).abs().max())
    song = ace.Song(**{**SONG, "duration": 2.0})
    drawn = ace.audio_codes(aio, song, ace.Drawing(seed=5, cfg=2.0))
    assert len(drawn) == 10 and drawn == ace.audio_codes(model, song, ace.Drawing(seed=5, cfg=2.0))
    assert ace.load(ModelManager(), "", "", "", "", "cpu", checkpoint=AIO, codes=False).lm is None


def test_all_in_one_checkpoint_refusals(tiny):
    """No files, or a checkpoint without ACE-Step's text encoders: named, with what to give."""
    from graph_engine import NodeError
    from nodes.generate import ace_step as ace
    from nodes.generate.model_manager import ModelManager
    with pytest.raises(NodeError, match="diffusion_model, text_encoder and vae.*or checkpoint"):
        ace.load(ModelManager(), "", "", "", "", "cpu")
    split = str(tiny / "models" / "diffusion_models" / FILES["diffusion_model"])
    with pytest.raises(NodeError, match="acestep_tiny.safetensors is not an ACE-Step 1.5 all-in-one checkpoint "
                                        "\\(no text_encoders.qwen3_06b.transformer.*ace_step_1.5_turbo_aio"):
        ace.load(ModelManager(), "", "", "", "", "cpu", checkpoint=split)


def test_comfyui_checkpoint_template_runs_and_saves_its_song(model, tmp_path):
    """ComfyUI's ACE-Step 1.5 all-in-one template (CheckpointLoaderSimple for the model, both Qwen3s and the VAE)
    becomes one generate.ace_step reading the checkpoint; run on the tiny one (1 s, 4 steps), its FLAC holds the
    reference's waveform for its caption, lyrics, metas, codes and seed."""
    from graph_engine.api import Session
    from nodes.generate import ace_step as ace
    wf, song, save = imported("audio_ace_step_1_5_checkpoint.json")
    p = song.params
    assert {k: p[k] for k in ("checkpoint", "diffusion_model", "text_encoder", "lm", "vae", "seconds", "steps", "cfg",
                              "shift", "seed", "generate_audio_codes")} == \
        {"checkpoint": "ace_step_1.5_turbo_aio.safetensors", "diffusion_model": "", "text_encoder": "", "lm": "",
         "vae": "", "seconds": 120.0, "steps": 8, "cfg": 1, "shift": 3.0, "seed": 31, "generate_audio_codes": True}
    p.update(checkpoint=AIO, seconds=SECONDS, steps=4)
    save.params["path"] = str(tmp_path / "ComfyUI.flac")
    run = Session(device="cpu").run(wf, use_cache=False)
    assert run.ok, run.failed
    widgets = {k: p[k] for k in ("tags", "lyrics", "bpm", "timesignature", "language", "keyscale")}
    codes = ace.audio_codes(model, ace.Song(**widgets, duration=p.get("duration") or SECONDS),
                            ace.Drawing(p["lm_seed"], p["lm_cfg"], p["temperature"], p["top_p"], p["top_k"]))
    want = reference(codes, 4, p["seed"], song={**widgets, "duration": p.get("duration") or SECONDS})
    codec, rate, got = decoded(tmp_path / "ComfyUI.flac")
    assert (codec, rate, got.shape) == ("flac", 48000, (2, FRAMES * HOP))
    assert np.abs(got - np.clip(want.numpy(), -1, 1)).max() < 2 / 32768


def api_graph() -> dict:
    """ComfyUI's ACE-Step 1.5 chain in its API format (1 s latent, 2 s told, codes lm_seed 3, noise seed 8)."""
    return {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": FILES["diffusion_model"], "weight_dtype": "default"}},
            "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": FILES["text_encoder"], "clip_name2": FILES["lm"],
                                                             "type": "ace", "device": "default"}},
            "3": {"class_type": "VAELoader", "inputs": {"vae_name": FILES["vae"]}},
            "4": {"class_type": "TextEncodeAceStepAudio1.5", "inputs": {
                "clip": ["2", 0], "tags": "rain", "lyrics": "", "seed": 3, "bpm": 90, "duration": 2.0,
                "timesignature": "4", "language": "en", "keyscale": "A minor", "generate_audio_codes": True,
                "cfg_scale": 1.0, "temperature": 0.85, "top_p": 0.9, "top_k": 0, "min_p": 0.0}},
            "5": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["4", 0]}},
            "6": {"class_type": "EmptyAceStep1.5LatentAudio", "inputs": {"seconds": 1.0, "batch_size": 1}},
            "7": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["1", 0], "shift": 3.0}},
            "8": {"class_type": "KSampler", "inputs": {"model": ["7", 0], "positive": ["4", 0], "negative": ["5", 0],
                                                       "latent_image": ["6", 0], "seed": 8, "steps": 4, "cfg": 1.0,
                                                       "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
            "9": {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["8", 0], "vae": ["3", 0]}},
            "10": {"class_type": "SaveAudio", "inputs": {"audio": ["9", 0], "filename_prefix": "audio/x"}}}


def test_told_duration_apart_from_length(model):
    """TextEncodeAceStepAudio1.5's duration may differ from the latent's seconds: 2 s told (10 codes, "duration: 2
    seconds" in the metas) for 1 s of sound; the imported graph carries it."""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    from nodes.generate import ace_step as ace
    song = ace.Song(**{**SONG, "duration": 2.0})
    codes = ace.audio_codes(model, song, ace.Drawing(seed=3, cfg=1.0))
    assert len(codes) == 10
    got = ace.generate(model, song, SECONDS, 4, 1.0, "euler", "simple", 3.0, 8, codes)
    told_one = ace.generate(model, ace.Song(**SONG), SECONDS, 4, 1.0, "euler", "simple", 3.0, 8, codes)
    assert got.shape == (2, FRAMES * HOP) and float((got - told_one).abs().max()) > 1e-5     # the metas' text moved it
    api = api_graph()
    g = load_workflow(text=import_data(api).yaml).graph
    (node,) = [n for n in g.nodes.values() if n.type == "generate.ace_step"]
    assert (node.params["seconds"], node.params["duration"], node.params["lm_seed"], node.params["seed"]) == \
        (1.0, 2.0, 3, 8)


def test_negative_not_carried_leaves_a_valid_graph():
    """A negative generate.ace_step does not carry (two prompts combined, cfg 3) is folded away whole and said so
    on each of its nodes: before, its CLIPTextEncodes stayed on DualCLIPLoader type ace and the graph was invalid."""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    api = api_graph()
    api.update({"11": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "harsh"}},
                "12": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "off-key"}},
                "13": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["11", 0],
                                                                       "conditioning_2": ["12", 0]}}})
    api["8"]["inputs"].update(negative=["13", 0], cfg=3.0)
    result = import_data(api)
    g = load_workflow(text=result.yaml).graph
    assert sorted(n.type for n in g.nodes.values()) == ["generate.ace_step", "io.save_audio"]
    for cid in ("11", "12", "13"):
        entry = result.report.entries[cid]
        assert entry.status == "approx" and "not carried" in " ".join(entry.notes)
    # what feeds the positive is not the negative's, though ConditioningZeroOut reads the positive: an unmapped node
    # writing the tags stays unmapped (not folded away as 'exact')
    api = api_graph()
    api["11"] = {"class_type": "GeminiNodeV2", "inputs": {"prompt": "write a song"}}
    api["4"]["inputs"]["tags"] = ["11", 0]
    assert [e.class_type for e in import_data(api).report.blocking] == ["GeminiNodeV2"]


def test_ace_step_latent_through_another_sampler_is_named():
    """ACE-Step 1.5's latent decoded after a KSamplerAdvanced (not folded): the report names ACE-Step and what it
    takes; it said Kinograph decodes only LTX-2's and Stable Audio Open's sound."""
    from app.comfyui import import_data
    api = api_graph()
    ks = api["8"]["inputs"]
    api["8"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **{k: ks[k] for k in ("model", "positive", "negative", "latent_image", "steps", "cfg", "sampler_name",
                              "scheduler")}, "add_noise": "enable", "noise_seed": 8, "start_at_step": 0,
        "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    report = import_data(api).report
    assert [e.class_type for e in report.blocking] == ["VAEDecodeAudio"]
    assert "ACE-Step 1.5's latent, from KSamplerAdvanced" in " ".join(report.entries["9"].notes)


def test_lora_on_the_model_is_refused_by_name():
    """A LoRA between UNETLoader and ModelSamplingAuraFlow: generate.ace_step takes none, so the chain is left
    unmapped with the LoRA node named (it said 'the all-in-one checkpoint or other nodes')."""
    from app.comfyui import import_data
    api = api_graph()
    api["11"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": "voice.safetensors",
                                                                 "strength_model": 0.8}}
    api["7"]["inputs"]["model"] = ["11", 0]
    report = import_data(api).report
    assert [e.class_type for e in report.blocking] == ["VAEDecodeAudio"]
    assert "LoraLoaderModelOnly" in report.entries["9"].notes[-1]


def test_tiled_decoder_says_its_tiles_are_dropped(tmp_path):
    """VAEDecodeAudioTiled on ACE-Step 1.5's latent (the turbo template with its decoder swapped): generate.ace_step
    decodes the song whole, which is not what the tiles give at their seams, so the report says approx and why; it
    said exact, the tile size and overlap gone without a word."""
    import json
    from pathlib import Path
    from app.comfyui import import_workflow
    flow = json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" /
                       "audio_ace_step_1_5_split.json").read_text())
    swapped = [n for n in [*flow["nodes"], *(m for g in flow.get("definitions", {}).get("subgraphs", [])
                                             for m in g["nodes"])] if n["type"] == "VAEDecodeAudio"]
    for n in swapped:
        n["type"], n["widgets_values"] = "VAEDecodeAudioTiled", [256, 32]
    (tmp_path / "tiled.json").write_text(json.dumps(flow))
    result = import_workflow(str(tmp_path / "tiled.json"))
    (entry,) = [e for e in result.report.entries.values() if e.class_type == "VAEDecodeAudioTiled"]
    assert swapped and entry.status == "approx" and "tiles are not carried" in " ".join(entry.notes), entry
