"""MiniMax H3 videos with their soundtrack: ComfyUI's transformer file samples a 17n+5-frame latent and its stereo
sound as diffusers' t2va denoising loop does on the same weights, prompt states and noise: diffusers' own
MiniMaxH3PrepareLayoutStep (prompt, sound rows, frame rows), MiniMaxH3SetTimestepsStep's per-row timesteps and its two
MiniMaxH3Schedulers (the video's shifted by 12, the sound's by 3) stepping each stream (tests/tiny_minimax_h3.py)."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
W, H, FRAMES = 96, 64, 22           # 7 latent frames of 3 x 2 patches, 37 sound latents a channel


@pytest.fixture(scope="module")
def minimax(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_minimax_h3 import build_minimax_h3
    yield from models_dir(tmp_path_factory, build_minimax_h3, "minimax_h3")


def _reference(states, video_noise, sound_rows, steps, shifts=(12.0, 3.0), model=None, sigmas=None):
    """diffusers' t2va loop (MiniMaxH3DenoiseStep's denoiser and update written out over its own layout and
    timestep blocks) on the tiny transformer unless given, its two schedulers at `shifts` over steps + 1 levels
    (or the video's and the sound's `sigmas` given whole): (video latent [1, C, T, h, w], sound rows [2 * L, 32])."""
    from diffusers import MiniMaxH3Scheduler
    from diffusers.modular_pipelines.minimax_h3.before_denoise import (MiniMaxH3PrepareLayoutStep,
                                                                       MiniMaxH3SetTimestepsStep,
                                                                       patchify_video_latents)
    from tiny_minimax_h3 import transformer
    model = model or transformer()
    c, t, h, w = video_noise.shape[1:]
    length = sound_rows.shape[0] // 2
    pos, tags, video, audio, text, _, _ = MiniMaxH3PrepareLayoutStep.build_packed_sequence(
        torch.ones(states.shape[1], dtype=torch.long), t, h, w, length, (1, 2, 2), 2, 2, 0)
    sch, sound_sch = MiniMaxH3Scheduler(shift=shifts[0]), MiniMaxH3Scheduler(shift=shifts[1])
    for scheduler, given in zip((sch, sound_sch), sigmas or (None, None)):
        scheduler.set_timesteps(steps + 1) if given is None else scheduler.set_timesteps(sigmas=given)
    rows, sound = patchify_video_latents(video_noise, (1, 2, 2)), sound_rows.clone()
    with torch.no_grad():
        for tv, ta in zip(sch.timesteps, sound_sch.timesteps):
            unique, which = MiniMaxH3SetTimestepsStep.build_row_timesteps(video, audio, 0, 0, text.numel(), float(tv),
                                                                           float(ta), 1.0, 1.0)
            vel, vel_sound = model(hidden_states=rows[None], audio_hidden_states=sound[None],
                                   encoder_hidden_states=states, timestep=unique, timestep_indices=which,
                                   token_tags=tags, position_ids=pos, video_indices=video, audio_indices=audio,
                                   text_indices=text, return_dict=False)
            rows = sch.step(vel[0].float(), tv, rows, return_dict=False)[0]
            sound = sound_sch.step(vel_sound[0].float(), ta, sound, return_dict=False)[0]
    latent = rows.reshape(t, h // 2, w // 2, c, 2, 2).permute(3, 0, 1, 4, 2, 5).reshape(1, c, t, h, w)
    return latent, sound


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def _sample(minimax, shifts=None):
    """Kinograph's run on the tiny ComfyUI-layout file, euler at its default schedule; (result, the reference)."""
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.vae_ops import empty_latent
    model = load_diffusion_model(ModelManager(), "minimax_h3_tiny.safetensors", "default", "cpu")
    if shifts is not None:
        model = model.with_option("flow_shift", shifts[0]).with_option("minimax_h3_sound_shift", shifts[1])
    latent = empty_latent(model, FRAMES, W, H, 24.0)
    assert tuple(latent.samples.shape) == (1, 24, 7, H // 16, W // 16)
    assert tuple(latent.audio.shape) == (1, 32, 2, 37)
    from graph_engine import NodeError
    for frames, fps, words in ((24, 24.0, r"17n\+5 frames"), (FRAMES, 30.0, "at 24 fps")):
        with pytest.raises(NodeError, match=words):
            empty_latent(model, frames, W, H, fps)
    states, video_noise, sound_rows, noise = draws(latent, 2)
    cond = Conditioning("minimax_h3", states, torch.ones(1, 5, dtype=torch.bool))
    out = run_sampling(model, cond, None, latent, steps=3, cfg=1.0, sampler="euler", noise=noise)
    want = _reference(states, video_noise, sound_rows, 3, *(() if shifts is None else (shifts,)))
    return out, want


def draws(latent, seed):
    """(prompt states [1, 5, TEXT], video noise, the sound's noise rows [2 * 37, 32], the noise Kinograph's sampler
    takes) drawn from `seed` for a 22-frame latent: the sound's rows [left channel's 37 latents; right's] as ComfyUI's
    [1, 32, 2, 37]."""
    from nodes.generate.adapters.base import joined
    from tiny_minimax_h3 import TEXT
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(1, 5, TEXT, generator=g)
    video_noise = torch.randn(latent.samples.shape, generator=g)
    sound_rows = torch.randn(2 * 37, 32, generator=g)
    return states, video_noise, sound_rows, joined(video_noise, sound_rows.reshape(2, 37, 32).permute(2, 0, 1)[None])


def test_comfyui_transformer_samples_a_video_and_its_sound_as_diffusers(minimax):
    out, (video, sound) = _sample(minimax)
    got_sound = out.audio[0].permute(1, 2, 0).reshape(-1, 32)
    assert _err(video, out.samples) < 1e-4, _err(video, out.samples)
    assert _err(sound, got_sound) < 1e-4, _err(sound, got_sound)


def test_sigma_shift_sets_both_schedules(minimax):
    """ComfyUI's fasth3 templates' MiniMaxH3SigmaShift 10 / 3: the video's levels shifted by 10, the sound's by 3."""
    out, (video, sound) = _sample(minimax, (10.0, 3.0))
    got_sound = out.audio[0].permute(1, 2, 0).reshape(-1, 32)
    assert _err(video, out.samples) < 1e-4, _err(video, out.samples)
    assert _err(sound, got_sound) < 1e-4, _err(sound, got_sound)


def test_comfyui_video_vae_decodes_a_video_as_diffusers(minimax):
    """vae.decode of a 22-frame latent made with its sound: the video VAE decodes its 7 latent frames together into
    22 frames (diffusers' MiniMaxH3VideoDecodeStep written out on the same weights)."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import _frames, empty_latent
    from tiny_minimax_h3 import vae as tiny_vae
    vae = load_vae(ModelManager(), "minimax_h3_video_vae_tiny.safetensors", "cpu")
    latent = empty_latent(vae, FRAMES, W, H, 24.0)
    latent = latent.with_samples(torch.randn(latent.samples.shape, generator=torch.Generator().manual_seed(3)))
    clip = _frames(vae, latent)
    assert (clip.length, clip.width, clip.height) == (FRAMES, W, H)
    got = torch.from_numpy(clip.frames(0, FRAMES)).float()
    ref = tiny_vae().float()
    mean, std = (torch.tensor(s).view(1, -1, 1, 1, 1) for s in (ref.config.latents_mean, ref.config.latents_std))
    with torch.no_grad():
        video = ref.decode(latent.samples * std + mean, return_dict=False)[0]
    pmean, pstd = (torch.tensor(s).view(1, -1, 1, 1, 1) for s in ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    want = ((video * pstd + pmean).clamp(0, 1) * 255).round()[0].permute(1, 2, 3, 0)
    assert want.shape == got.shape
    assert float((want - got).abs().max()) <= 2.0, float((want - got).abs().max())     # the file is fp16, uint8 out


def test_comfyui_audio_vae_decodes_the_sound_as_diffusers(minimax):
    """vae.decode_sound with ComfyUI's audio VAE file (weight norms folded): the stereo channels decoded apart after
    the latent statistics are undone, as diffusers' MiniMaxH3AudioDecodeStep does with its own (weight-normed)
    module; the video VAE is refused by name, and vae.decode with it gives the frames without sound."""
    import wave
    import numpy as np
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.nodes import vae_decode_sound
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import decode_latent, empty_latent
    from tiny_minimax_h3 import audio_vae
    path = minimax / "models" / "vae" / "minimax_h3_audio_vae_tiny.safetensors"
    got = describe_model(path)
    assert (got["family"], got["role"], got["loads"]) == ("minimax_h3", "vae", "yes"), got
    sound_vae = load_vae(ModelManager(), path.name, "cpu")
    video_vae = load_vae(ModelManager(), "minimax_h3_video_vae_tiny.safetensors", "cpu")
    latent = empty_latent(video_vae, 5, W, H, 24.0)       # 5 frames: 8 sound latents a channel
    sound = torch.randn(latent.audio.shape, generator=torch.Generator().manual_seed(4))
    latent = type(latent)(latent.samples, latent.family, latent.frames, latent.fps, latent.width, latent.height,
                          audio=sound)
    audio = vae_decode_sound(None, sound_vae, latent)
    with wave.open(audio.path) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 32000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2).T / 32767.0
    ref = audio_vae()
    mean, std = (torch.tensor(s).view(1, -1, 1) for s in (ref.config.latents_mean, ref.config.latents_std))
    with torch.no_grad():
        want = ref.decode(sound[0].permute(1, 0, 2) * std + mean, return_dict=False)[0][:, 0].numpy()
    n = min(pcm.shape[1], want.shape[1])
    assert n == 8 * 800, n                                 # 800 samples a sound latent
    assert float(np.abs(pcm[:, :n] - want[:, :n]).max()) < 2e-4 + 1 / 32767, float(np.abs(pcm[:, :n] - want[:, :n]).max())
    assert float(np.abs(want).max()) > 1e-3                 # not silence
    with pytest.raises(NodeError, match="decodes frames"):
        vae_decode_sound(None, video_vae, latent)
    assert decode_latent(video_vae, latent).audio is None
    for frames in (1, 22):      # the audio VAE wired where frames are made: named, not an AttributeError
        with pytest.raises(NodeError, match="minimax_h3_video_vae"):
            empty_latent(sound_vae, frames, W, H, 24.0)


TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
TEMPLATE_FILES = (("diffusion_models/minimax_h3_fl2va_pruned_int8_convrot.safetensors",
                   "diffusion_models/minimax_h3_pruned_tiny.safetensors"),
                  ("diffusion_models/fastvideo_fasth3_8step_v2_pruned_int8_convrot.safetensors",
                   "diffusion_models/minimax_h3_fasth3_tiny.safetensors"),
                  ("text_encoders/qwen3vl_32b_minimax_h3_nvfp4_awq.safetensors",
                   "text_encoders/qwen3vl_minimax_tiny.safetensors"),
                  ("text_encoders/qwen3vl_32b_minimax_h3_nvfp4_awq", "text_encoders/qwen3vl_minimax_tiny"),
                  ("vae/minimax_h3_video_vae_int8_convrot.safetensors", "vae/minimax_h3_video_vae_tiny.safetensors"),
                  ("vae/minimax_h3_audio_vae_fp32.safetensors", "vae/minimax_h3_audio_vae_tiny.safetensors"))


def _short(text: str) -> str:
    """A template's prompt cut to the first 200 characters of its first line: the tiny tokenizer reads a byte a
    token, and the 51-layer tiny Qwen3-VL reading FastH3's 3397 characters (here and in the reference) was most of
    its test's 8 CPU s."""
    return text.split("\n")[0][:200].rstrip()


def _outer(data: dict) -> dict:
    """The template's subgraph node, whose widgets hold the prompt (0) and the seed (4)."""
    return next(n for n in data["nodes"] if n["type"] == data["definitions"]["subgraphs"][0]["id"])


def _imported_prompts(yaml: str) -> list:
    """The text of each encode.text in an imported template's YAML, as Kinograph loads it."""
    from graph_engine.api import load_workflow
    return [n.params["text"] for n in load_workflow(text=yaml, check=False).graph.nodes.values()
            if n.type == "encode.text"]


def _template_run(minimax, tmp_path, name, published):
    """ComfyUI's template imported with every node mapped, at 96x64, 22 frames, 2 steps, euler, its prompt _short;
    run on the tiny files under its names to a saved video. Returns (its JSON, the sampler's latent, CreateVideo's
    video)."""
    import json
    import re
    from comfy_layouts import imported_template
    from graph_engine.api import Session, load_workflow
    (w, h, frames, steps) = published
    data, yaml = imported_template(minimax / "models", TEMPLATE_FILES, TEMPLATES / name, (W, H), (steps, 2))
    outer = _outer(data)
    # the run reads the prompt _short, so here the imported one is checked whole: the template's own, every line,
    # blank line, bracket and non-ASCII character as written (the reference below reads the same widget)
    assert _imported_prompts(yaml) == [outer["widgets_values"][0]]
    yaml, cut = re.subn(r"(\n      text: )\|-\n(?:        .*\n|\n)+",
                        lambda m: m.group(1) + json.dumps(_short(outer["widgets_values"][0])) + "\n", yaml, count=1)
    assert cut == 1
    for a, b in ((f"width: {w}", f"width: {W}"), (f"height: {h}", f"height: {H}"), (f"frames: {frames}",
                                                                                     f"frames: {FRAMES}"),
                 ("sampler: res_multistep", "sampler: euler")):
        assert a in yaml, a
        yaml = yaml.replace(a, b)
    workflow = tmp_path / "minimax_video.kino.yaml"
    workflow.write_text(yaml)
    out = Session(device="cpu").run(load_workflow(workflow, check=False), use_cache=False)
    assert out.ok, out.failed
    latent = next(v["latent"] for k, v in out.outputs.items() if k.startswith("sampler_custom_advanced"))
    assert list(tmp_path.glob("out/video/MiniMax_H3*"))
    return data, latent, next(v["video"] for k, v in out.outputs.items() if k.startswith("create_video"))


def _template_reference(data, tmp_path, sigmas, sound_sigmas):
    """The template's latent as diffusers' t2va loop makes it on the tiny pruned transformer (its curve form, as
    tests/test_minimax_h3.py writes it out): the prompt read by diffusers' get_qwen3vl_prompt_embeds, the noise of
    the template's seed drawn in diffusers' t2va order (video, then the sound's rows)."""
    from diffusers.modular_pipelines.minimax_h3.encoders import get_qwen3vl_prompt_embeds
    from test_minimax_h3 import _pruned_reference
    from tiny_minimax_h3 import text_encoder
    from tiny_qwen21 import processor
    outer = _outer(data)
    text, seed = _short(outer["widgets_values"][0]), outer["widgets_values"][4]
    proc = processor(tmp_path / "tokenizer")
    with torch.no_grad():
        states = get_qwen3vl_prompt_embeds(text_encoder(), proc, proc.tokenizer(text, add_special_tokens=False)
                                           ["input_ids"], {})
    g = torch.Generator().manual_seed(seed)
    video_noise = torch.randn(1, 24, 7, H // 16, W // 16, generator=g)
    sound = torch.randn(2 * 37, 32, generator=g)
    return _reference(states, video_noise, sound, len(sigmas) - 1, model=_pruned_reference(),
                      sigmas=(sigmas, sound_sigmas))


def _shifted(base, shift):
    return [shift * s / (1 + (shift - 1) * s) for s in base]


@pytest.mark.parametrize("name,published,shifts", [
    ("video_minimax_h3_t2v.json", (864, 480, 124, 20), (12.0, 3.0)),
    # FastVideo's FastH3: MiniMaxH3SigmaShift 10 / 3, BlockSparseAttention (dense here, its VSA gates not read)
    ("video_fastvideo_fasth3_t2v.json", (640, 640, 124, 8), (10.0, 3.0))])
def test_comfyui_minimax_h3_t2v_templates_run_with_their_sound(minimax, tmp_path, monkeypatch, name, published,
                                                                shifts):
    """ComfyUI's MiniMax H3 text-to-video templates (a subgraph: UNETLoader, CLIPLoader type minimax, the video and the
    audio VAELoader, MiniMaxH3ImageToVideo without keyframes, BasicScheduler simple, SamplerCustomAdvanced, VAEDecode
    and VAEDecodeAudio into CreateVideo) import with every node mapped and run on the tiny files under their names to
    a video with its stereo soundtrack; with euler the latent and its sound are diffusers' t2va loop's on ComfyUI's
    simple levels at the template's shifts (the sound's: the same base levels shifted by 3)."""
    import wave
    monkeypatch.chdir(tmp_path)
    data, latent, clip = _template_run(minimax, tmp_path, name, published)
    assert (clip.length, clip.width, clip.height) == (FRAMES, W, H)
    with wave.open(clip.audio.path) as sound:
        assert (sound.getnchannels(), sound.getframerate()) == (2, 32000)
    base = [1.0, 0.5, 0.0]
    video, sound = _template_reference(data, tmp_path, _shifted(base, shifts[0]), _shifted(base, shifts[1]))
    got_sound = latent.audio[0].permute(1, 2, 0).reshape(-1, 32)
    assert _err(video, latent.samples) < 1e-4, _err(video, latent.samples)
    assert _err(sound, got_sound) < 1e-4, _err(sound, got_sound)


def _keyframe_reference(states, seen, keys, anchors, seed, video_noise, sound_rows, steps):
    """diffusers' fl2va loop written out: the keyframes noised to t = 0.999 by the request's generator, one draw each
    before anything else (MiniMaxH3PrepareConditionLatentsStep; the video's and sound's noise given, as its
    PrepareLatentsStep takes them), laid out with their anchors, told max(t, 0.999), never stepped; the prompt's
    rows `seen` (a keyframe's vision block) tagged as video (0), the others as text (1)."""
    from diffusers import MiniMaxH3Scheduler
    from diffusers.modular_pipelines.minimax_h3.before_denoise import (MiniMaxH3PrepareLayoutStep,
                                                                       patchify_video_latents)
    from tiny_minimax_h3 import transformer
    model = transformer()
    c, t, h, w = video_noise.shape[1:]
    length = sound_rows.shape[0] // 2
    sch, sound_sch = MiniMaxH3Scheduler(shift=12.0), MiniMaxH3Scheduler(shift=3.0)
    gen = torch.Generator().manual_seed(seed)
    held = torch.cat([patchify_video_latents(sch.scale_noise(k[None, :, None], 0.999, torch.randn(
        (1, c, 1, h, w), generator=gen, dtype=torch.float32)), (1, 2, 2)) for k in keys])
    layout = MiniMaxH3PrepareLayoutStep.build_packed_sequence((~seen).long(), t, h, w, length, (1, 2, 2), 2, 2, 0,
                                                              anchors)
    return held_loop(model, (sch, sound_sch), states, layout, held, video_noise, sound_rows, steps)


def held_loop(model, schedulers, states, layout, held, video_noise, sound_rows, steps):
    """diffusers' fl2va / ref2va denoising loop written out over a layout of its own blocks: the conditioning rows
    `held` first, told max(t, 0.999) (build_row_timesteps) and never stepped; (video latent, sound rows)."""
    from diffusers.modular_pipelines.minimax_h3.before_denoise import (MiniMaxH3SetTimestepsStep,
                                                                       patchify_video_latents)
    c, t, h, w = video_noise.shape[1:]
    pos, tags, video, audio, text, n_held, _ = layout
    sch, sound_sch = schedulers
    for scheduler in schedulers:
        scheduler.set_timesteps(steps + 1)
    rows = torch.cat([held, patchify_video_latents(video_noise, (1, 2, 2))])
    sound = sound_rows.clone()
    with torch.no_grad():
        for tv, ta in zip(sch.timesteps, sound_sch.timesteps):
            unique, which = MiniMaxH3SetTimestepsStep.build_row_timesteps(
                video, audio, n_held, 0, text.numel(), float(tv), float(ta), max(float(tv), 0.999), 1.0)
            vel, vel_sound = model(hidden_states=rows[None], audio_hidden_states=sound[None],
                                   encoder_hidden_states=states, timestep=unique, timestep_indices=which,
                                   token_tags=tags, position_ids=pos, video_indices=video, audio_indices=audio,
                                   text_indices=text, return_dict=False)
            rows[n_held:] = sch.step(vel[0, n_held:].float(), tv, rows[n_held:], return_dict=False)[0]
            sound = sound_sch.step(vel_sound[0].float(), ta, sound, return_dict=False)[0]
    latent = rows[n_held:].reshape(t, h // 2, w // 2, c, 2, 2).permute(3, 0, 1, 4, 2, 5).reshape(1, c, t, h, w)
    return latent, sound


@pytest.mark.parametrize("anchors", [("first",), ("last",), ("first", "last")])
def test_keyframes_pin_the_video_as_diffusers_fl2va(minimax, anchors):
    """condition.frames' keyframes on MiniMax H3: each a latent frame of rows of its own at its anchor's time, noised
    from the run's seed and held at t = 0.999, the prompt's vision rows tagged as video, as diffusers' fl2va samples
    them."""
    from nodes.generate.adapters.base import joined
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.vae_ops import empty_latent
    from tiny_minimax_h3 import TEXT
    model = load_diffusion_model(ModelManager(), "minimax_h3_tiny.safetensors", "default", "cpu")
    latent = empty_latent(model, FRAMES, W, H, 24.0)
    g = torch.Generator().manual_seed(4)
    states = torch.randn(1, 5, TEXT, generator=g)
    keys = torch.randn(len(anchors), 24, H // 16, W // 16, generator=g)
    video_noise = torch.randn(latent.samples.shape, generator=g)
    sound_rows = torch.randn(2 * 37, 32, generator=g)
    noise = joined(video_noise, sound_rows.reshape(2, 37, 32).permute(2, 0, 1)[None])
    seen = torch.tensor([False, True, True, False, False])
    cond = Conditioning("minimax_h3", states, torch.ones(1, 5, dtype=torch.bool), extra={
        "minimax_h3_keyframes": keys, "minimax_h3_seen": seen[None]}, meta={"minimax_h3_anchors": list(anchors)})
    out = run_sampling(model, cond, None, latent, steps=3, cfg=1.0, sampler="euler", noise=noise, seed=11)
    video, sound = _keyframe_reference(states, seen, keys, anchors, 11, video_noise, sound_rows, 3)
    got_sound = out.audio[0].permute(1, 2, 0).reshape(-1, 32)
    assert _err(video, out.samples) < 1e-5, _err(video, out.samples)
    assert _err(sound, got_sound) < 1e-5, _err(sound, got_sound)
    plain = run_sampling(model, Conditioning("minimax_h3", states, torch.ones(1, 5, dtype=torch.bool)), None, latent,
                         steps=3, cfg=1.0, sampler="euler", noise=noise, seed=11)
    assert _err(video, plain.samples) > 1e-3       # the keyframes change the video: the test can fail


def test_condition_frames_encodes_keyframes_as_diffusers(minimax):
    """condition.frames on the MiniMax H3 video VAE: the first keyframe stretched onto the canvas, the last
    cover-cropped (both Lanczos; diffusers' MiniMaxH3ResizeStep written out), each encoded by diffusers' own
    encode_vae_condition on the same weights (posterior sampled under seed 42, float16-rounded, normalised)."""
    import numpy as np
    from diffusers.modular_pipelines.minimax_h3.encoders import encode_vae_condition
    from PIL import Image
    from graph_engine import NodeError
    from nodes.generate.image_cond import condition_frames
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import empty_latent
    from tiny_minimax_h3 import vae as tiny_vae
    vae = load_vae(ModelManager(), "minimax_h3_video_vae_tiny.safetensors", "cpu")
    latent = empty_latent(vae, FRAMES, W, H, 24.0)
    rng = np.random.default_rng(5)
    first, last = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((50, 90), (90, 40)))
    cond = Conditioning("minimax_h3", torch.zeros(1, 2, 8))
    out = condition_frames(vae, cond, None, latent, first, last, None)["positive"]
    assert out.meta["minimax_h3_anchors"] == ["first", "last"]
    got = out.extra["minimax_h3_keyframes"]
    pic = Image.fromarray(last)
    scale = max(W / 40, H / 90)
    size = (max(W, round(40 * scale)), max(H, round(90 * scale)))
    left, top = max(0, (size[0] - W) // 2), max(0, (size[1] - H) // 2)
    pictures = [Image.fromarray(first).resize((W, H), Image.LANCZOS),
                pic.resize(size, Image.LANCZOS).crop((left, top, left + W, top + H))]
    ref = tiny_vae().float()
    for i, p in enumerate(pictures):
        px = torch.from_numpy(np.array(p)).permute(2, 0, 1)[None, :, None]
        with torch.no_grad():
            want = encode_vae_condition(ref, px, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 42)[0, :, 0]
        assert _err(want, got[i]) < 1e-3, (i, _err(want, got[i]))     # a float16 rounding apart at most
    with pytest.raises(NodeError, match="video made with its sound"):
        condition_frames(vae, cond, None, empty_latent(vae, 1, W, H, 24.0), first, None, None)


@pytest.mark.parametrize("name,picture,published", [
    ("video_minimax_h3_i2v.json", "transparent_rgb_gaming_mouse.png", (("width: 640", "height: 640"), 20)),
    ("video_minimax_h3_i2v_continuation.json", "transparent_rgb_gaming_mouse.png",
     (("width: 640", "height: 640"), 20)),
    # FastH3: the canvas is the picture's, scaled to 0.4 megapixels (here to 0.01, the least it takes)
    ("video_fastvideo_fasth3_i2v.json", "red_line_barrier.png", (("megapixels: 0.4",), 8))])
def test_comfyui_minimax_h3_i2v_templates_run_from_their_keyframe(minimax, tmp_path, monkeypatch, name, picture,
                                                                  published):
    """ComfyUI's MiniMax H3 image-to-video templates (MiniMaxH3ImageToVideo with its first_frame from LoadImage)
    import with every node mapped (encode.text, latent.empty, condition.frames) and run on the tiny files under their
    names to a 22-frame video with its stereo soundtrack, the keyframe pinned."""
    import re
    import wave
    import numpy as np
    from PIL import Image
    from comfy_layouts import imported_template
    from graph_engine.api import Session, load_workflow
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.random.default_rng(6).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(tmp_path / picture)
    sizes, steps = published
    data, yaml = imported_template(minimax / "models", TEMPLATE_FILES, TEMPLATES / name, (W, H), (steps, 2))
    # the run reads the prompt's first line only, so the imported prompt is checked whole here (MiniMax's holds
    # U+2028 line separators, FastH3's brackets and dashes)
    outer = _outer(data)
    assert _imported_prompts(yaml) == [outer["widgets_values"][0]]
    for a, b in (*zip(sizes, (f"width: {W}", f"height: {H}") if len(sizes) == 2 else ("megapixels: 0.01",)),
                 ("frames: 124", f"frames: {FRAMES}"), ("sampler: res_multistep", "sampler: euler"),
                 (f"path: {picture}", f"path: {tmp_path / picture}")):
        assert a in yaml, a
        yaml = yaml.replace(a, b)
    # the prompt cut to its first line: the tiny tokenizer reads a byte a token and the 51-layer tiny Qwen3-VL reads
    # the prompt twice (alone, then after the keyframe); FastH3's 6300 characters were 10 of its run's 13.5 CPU s
    yaml = re.sub(r"(\n      text: \|-\n        .+\n)(?:\n|        .*\n)+", r"\1", yaml, count=1)
    assert "type: condition.frames" in yaml
    workflow = tmp_path / "minimax_i2v.kino.yaml"
    workflow.write_text(yaml)
    out = Session(device="cpu").run(load_workflow(workflow, check=False), use_cache=False)
    assert out.ok, out.failed
    clip = next(v["video"] for k, v in out.outputs.items() if k.startswith("create_video"))
    assert clip.length == FRAMES and (clip.width, clip.height) == ((W, H) if len(sizes) == 2 else (128, 96))
    with wave.open(clip.audio.path) as sound:
        assert (sound.getnchannels(), sound.getframerate()) == (2, 32000)
    assert list(tmp_path.glob("out/video/MiniMax_H3*"))


def test_condition_frames_reads_the_prompt_after_the_keyframes_as_diffusers(minimax, tmp_path):
    """condition.frames with MiniMax H3's Qwen3-VL connected: the prompt read again after a "<Picture i>: " label and
    the vision block of each keyframe (diffusers' MiniMaxH3FL2VATextEncoderStep written out over its own
    get_qwen3vl_prompt_embeds, Qwen3-VL's published image settings), the blocks' rows tagged as video; an empty
    prompt is read with the pictures alone."""
    import numpy as np
    from PIL import Image
    from nodes.generate.image_cond import condition_frames
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    te = load_text_encoder(ModelManager(), "qwen3vl_minimax_tiny.safetensors", "", "minimax", "cpu")
    vae = load_vae(ModelManager(), "minimax_h3_video_vae_tiny.safetensors", "cpu")
    latent = empty_latent(vae, FRAMES, W, H, 24.0)
    rng = np.random.default_rng(7)
    first, last = (rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2))
    for prompt in ("<Picture 1> opens, <Picture 2> closes", ""):
        got = condition_frames(vae, encode_prompt(te, prompt), None, latent, first, last, None,
                               text_encoder=te)["positive"]
        pictures = [Image.fromarray(k) for k in (first, last)]     # already the canvas' size
        want, seen = read_after_pictures(tmp_path, pictures, prompt)
        assert got.embeds.shape == want.shape, (got.embeds.shape, want.shape)
        assert _err(want, got.embeds) < 1e-4, _err(want, got.embeds)
        assert got.extra["minimax_h3_seen"][0].tolist() == seen


def read_after_pictures(tmp_path, pictures, prompt):
    """(states, which rows are a vision block) of `prompt` read after a "<Picture i>: " label and vision block of each
    picture, as diffusers' fl2va / ref2va presentation tokenizes it (Qwen3-VL's published image settings) and its
    get_qwen3vl_prompt_embeds reads it on the tiny Qwen3-VL."""
    from diffusers.modular_pipelines.minimax_h3.encoders import get_qwen3vl_prompt_embeds
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
    from tiny_minimax_h3 import text_encoder
    from tiny_qwen21 import qwen_tokenizer
    tok = qwen_tokenizer(tmp_path / "tokenizer")
    images = Qwen2VLImageProcessor(patch_size=16, merge_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    proc = Qwen3VLProcessor.__new__(Qwen3VLProcessor)
    proc.tokenizer, proc.image_processor = tok, images
    proc.image_token_id, proc.video_token_id = (tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>",
                                                                                      "<|video_pad|>"))
    vision = images(images=pictures, return_tensors="pt")
    ids, seen = [], []
    for i, grid in enumerate(vision["image_grid_thw"]):
        label = tok(f"<Picture {i + 1}>: ", add_special_tokens=False)["input_ids"]
        block = ([tok.convert_tokens_to_ids("<|vision_start|>")] + [tok.convert_tokens_to_ids("<|image_pad|>")]
                 * (int(grid.prod()) // 4) + [tok.convert_tokens_to_ids("<|vision_end|>")])
        ids, seen = ids + label + block, seen + [False] * len(label) + [True] * len(block)
    words = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return get_qwen3vl_prompt_embeds(text_encoder(), proc, ids + words, dict(vision)), seen + [False] * len(words)


def test_a_video_latent_is_not_cut_or_joined_in_time_into_garbage():
    """The video's latent frames come in VAE chunks (2, then 5 at a time) and its sound is [1, 32, stereo, L]:
    cutting or joining frames had cut the sound across its stereo axis (LTX-2's time axis) and named a frame count
    the VAE cannot make. Refused by name; a cut across the picture keeps the sound whole."""
    from graph_engine import NodeError
    from nodes.generate.latent import Latent, concat_latents, cut_latent
    video = Latent(torch.zeros(1, 24, 7, 4, 6), "minimax_h3", FRAMES, 24.0, W, H, audio=torch.zeros(1, 32, 2, 37))
    for cut in ((0, 2), (2, 5), (-3, 3)):
        with pytest.raises(NodeError, match="video.trim"):
            cut_latent(video, "t", *cut)
    for axis in ("t", "-t"):
        with pytest.raises(NodeError, match="video.concat"):
            concat_latents(video, video, axis)
    assert cut_latent(video, "y", 0, 2).audio.shape == (1, 32, 2, 37)
    picture = Latent(torch.zeros(1, 24, 1, 4, 6), "minimax_h3", 1, 24.0, W, H)
    assert concat_latents(picture, picture, "x").samples.shape == (1, 24, 1, 4, 12)


def test_size_fit_floor_takes_the_valid_frame_count_at_or_below():
    """latent.empty's size_fit floor on MiniMax H3: the largest frame count its VAE makes (1, or 17n+5) at or below
    the one asked for, found here by trying every count against check_frames; 2 to 4 frames had become 5."""
    from graph_engine import NodeError
    from nodes.generate.families import family
    spec = family("minimax_h3")

    def valid(n):
        try:
            spec.check_frames(n)
        except NodeError:
            return False
        return True
    for frames in range(1, 60):
        assert spec.floor_frames(frames) == max(n for n in range(1, frames + 1) if valid(n)), frames
    assert spec.frame_rule() == "1 frame or 17n+5 frames" and family("wan").frame_rule() == "4n+1 frames"


def test_a_later_flow_shift_sets_the_sound_shift_anew():
    """model.flow_shift's sound_shift 0 is 3, as its help says, also after an earlier flow_shift set another (as a
    second ComfyUI MiniMaxH3SigmaShift sets both shifts anew): k = video shift / sound shift."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.handles import ModelHandle
    from nodes.generate.nodes import flow_shift
    adapter = get_adapter("minimax_h3")
    first = flow_shift(None, ModelHandle("minimax_h3", "h3.safetensors", None), 12.0, "flow", 6.0)
    assert adapter.sound_ratio(first) == 2.0
    assert adapter.sound_ratio(flow_shift(None, first, 10.0, "flow", 0.0)) == 10.0 / 3.0
    assert adapter.sound_ratio(flow_shift(None, first, 10.0, "flow", 5.0)) == 2.0
    wan = ModelHandle("wan", "wan.safetensors", None)
    assert flow_shift(None, wan, 5.0, "flow", 0.0).options == (("flow_shift", 5.0),)   # other models' keys kept


def test_the_audio_vae_keeps_fp32_on_a_gpu():
    """diffusers pins every module of AutoencoderKLMiniMaxH3Audio to fp32 (_keep_in_fp32_modules: its BigVGAN stack
    decodes ~20 dB quieter in bf16); load.vae's automatic dtype on a GPU (fp16 for MiniMax H3) had cast it down. The
    video VAE keeps the family's."""
    import torch
    from diffusers import AutoencoderKLMiniMaxH3Audio
    from nodes.generate.detect import Detection
    from nodes.generate.split import vae_dtype
    sound = AutoencoderKLMiniMaxH3Audio(encoder_dim=4, encoder_rates=(2,), latent_dim=8, latent_channels=4,
                                        num_attention_heads=1, decoder_dim=8, decoder_rates=(2,),
                                        decoder_kernel_sizes=(4,))
    assert {n for n, _ in sound.named_children()} <= set(AutoencoderKLMiniMaxH3Audio._keep_in_fp32_modules)
    for device in ("cuda", "cuda:1", "cpu"):
        assert vae_dtype(Detection("vae", "minimax_h3", "audio"), device) == torch.float32
    assert vae_dtype(Detection("vae", "minimax_h3", "", layout="original"), "cuda") == torch.float16
