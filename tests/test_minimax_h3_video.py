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


def _reference(states, video_noise, sound_rows, steps, shifts=(12.0, 3.0)):
    """diffusers' t2va loop (MiniMaxH3DenoiseStep's denoiser and update written out over its own layout and
    timestep blocks): (video latent [1, C, T, h, w], sound rows [2 * L, 32])."""
    from diffusers import MiniMaxH3Scheduler
    from diffusers.modular_pipelines.minimax_h3.before_denoise import (MiniMaxH3PrepareLayoutStep,
                                                                       MiniMaxH3SetTimestepsStep,
                                                                       patchify_video_latents)
    from tiny_minimax_h3 import transformer
    model = transformer()
    c, t, h, w = video_noise.shape[1:]
    length = sound_rows.shape[0] // 2
    pos, tags, video, audio, text, _, _ = MiniMaxH3PrepareLayoutStep.build_packed_sequence(
        torch.ones(states.shape[1], dtype=torch.long), t, h, w, length, (1, 2, 2), 2, 2, 0)
    sch, sound_sch = MiniMaxH3Scheduler(shift=shifts[0]), MiniMaxH3Scheduler(shift=shifts[1])
    sch.set_timesteps(steps + 1)
    sound_sch.set_timesteps(steps + 1)
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
    from nodes.generate.adapters.base import joined
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.vae_ops import empty_latent
    from tiny_minimax_h3 import TEXT
    model = load_diffusion_model(ModelManager(), "minimax_h3_tiny.safetensors", "default", "cpu")
    if shifts is not None:
        model = model.with_option("flow_shift", shifts[0]).with_option("minimax_h3_sound_shift", shifts[1])
    latent = empty_latent(model, FRAMES, W, H, 24.0)
    assert tuple(latent.samples.shape) == (1, 24, 7, H // 16, W // 16)
    assert tuple(latent.audio.shape) == (1, 32, 2, 37)
    g = torch.Generator().manual_seed(2)
    states = torch.randn(1, 5, TEXT, generator=g)
    video_noise = torch.randn(latent.samples.shape, generator=g)
    sound_rows = torch.randn(2 * 37, 32, generator=g)
    # the sound's rows [left channel's 37 latents; right's] as ComfyUI's [1, 32, 2, 37]
    noise = joined(video_noise, sound_rows.reshape(2, 37, 32).permute(2, 0, 1)[None])
    cond = Conditioning("minimax_h3", states, torch.ones(1, 5, dtype=torch.bool))
    out = run_sampling(model, cond, None, latent, steps=3, cfg=1.0, sampler="euler", noise=noise)
    want = _reference(states, video_noise, sound_rows, 3, *(() if shifts is None else (shifts,)))
    return out, want


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
