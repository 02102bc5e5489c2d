"""A given sound in LTX-2's latent (ComfyUI's LTXVAudioVAEEncode, then SetLatentNoiseMask 0 and LTXVConcatAVLatent):
the song read as stereo at the audio VAE's rate, its log-mel spectrogram as Lightricks' audio VAE was trained on
(torchaudio's MelSpectrogram in ComfyUI: periodic Hann window, reflect-padded frames, HTK mel scale, magnitudes), the
encoder's mean, normalised by the VAE's per-channel statistics. The sampler then keeps it and makes the video to it."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from graph_engine import NodeError
from nodes.common.mel import mel_filters

N_FFT = 1024        # the release's STFT size (its config's n_fft; not among diffusers' config keys)


def stereo(audio, rate: int) -> np.ndarray:
    """`audio` (graph_engine.Audio: io.load_audio's span, io.trim_audio's, io.concat_audio's pieces, silence
    between) as float samples [2, n] at `rate`: a mono file on both sides (as ComfyUI duplicates it), more channels
    mixed down to two by ffmpeg."""
    from nodes.io.sound import sound_problem
    files, out = {}, []
    for p in audio.pieces():
        if not p.path:
            out.append(np.zeros((2, int(round(p.duration * rate))), np.float32))
            continue
        if p.path not in files:
            why = sound_problem(p.path)
            if why:
                raise NodeError(why)
            files[p.path] = _decode(p.path, rate)
        whole = files[p.path]
        start = int(round(p.start * rate))
        stop = whole.shape[1] if p.duration is None else start + int(round(p.duration * rate))
        out.append(whole[:, start:stop] * np.float32(10 ** (p.gain / 20)))
    return np.concatenate(out, 1) if out else np.zeros((2, 0), np.float32)


def _decode(path: str, rate: int) -> np.ndarray:
    import av
    from nodes.io.sound import decoded
    with av.open(str(path)) as c:
        mono = c.streams.audio[0].codec_context.channels == 1
    # A mono file is read as mono and copied to both sides: ffmpeg's upmix would put it on each at -3 dB.
    down = av.AudioResampler(format="fltp", layout="mono" if mono else "stereo", rate=rate)
    parts = [f.to_ndarray() for _, _, frames in decoded(path, down) for f in frames]
    out = np.concatenate(parts, 1).astype(np.float32)
    return np.repeat(out, 2, 0) if out.shape[0] == 1 else out


def log_mel(samples: np.ndarray, rate: int, hop: int, bins: int) -> torch.Tensor:
    """[1, 2, frames, bins]: log of the mel magnitudes (floored at 1e-5), one frame per `hop` samples."""
    x = torch.as_tensor(samples, dtype=torch.float32)
    spec = torch.stft(x, N_FFT, hop_length=hop, win_length=N_FFT, window=torch.hann_window(N_FFT), center=True,
                      pad_mode="reflect", return_complex=True).abs()
    mel = torch.einsum("cft,fm->ctm", spec, torch.from_numpy(mel_filters(rate, N_FFT, bins)).float())
    return torch.log(torch.clamp(mel, min=1e-5))[None]


def encode(pipe, samples: np.ndarray) -> torch.Tensor:
    """The audio VAE's latent [1, C, L, M] of stereo `samples` at its rate, normalised as the sampler sees it."""
    avae = pipe.audio_vae
    cfg = avae.config
    if samples.shape[1] <= N_FFT // 2:
        raise NodeError(f"the sound is {samples.shape[1] / cfg.sample_rate * 1000:.0f} ms long: LTX-2's audio VAE "
                        f"needs more than {N_FFT // 2 / cfg.sample_rate * 1000:.0f} ms (give a longer span)")
    mel = log_mel(samples, int(cfg.sample_rate), int(cfg.mel_hop_length), int(cfg.mel_bins))
    p = next(avae.parameters())
    with torch.no_grad():
        z = avae.encode(mel.to(p.device, p.dtype), return_dict=False)[0].mode().float().cpu()
    packed = pipe._normalize_audio_latents(pipe._pack_audio_latents(z), avae.latents_mean.float().cpu(),
                                           avae.latents_std.float().cpu())
    return pipe._unpack_audio_latents(packed, z.shape[2], z.shape[3])


def with_sound(vae, latent, audio, log: Callable[[str], None] = lambda m: None):
    """The LTX-2 latent with `audio` (played from its start) as its sound stream, which the sampler keeps (its mask
    0 there) while it makes the video to it. The sound covers the latent's length: a longer one is cut at the clip's
    end; after a shorter one the model makes the rest of the sound (mask 1 there)."""
    if vae.family != "ltx2" or latent.audio is None:
        raise NodeError("latent.set_sound gives an LTX-2 latent its sound: load an LTX-2 checkpoint with load.model "
                        "and make the latent with latent.empty on its VAE")
    if vae.family != latent.family:
        raise NodeError(f"this latent was made for {latent.family} and the VAE is {vae.family}'s: make the latent "
                        "with the same model's VAE")
    pipe = vae.pipe
    rate = int(pipe.audio_vae.config.sample_rate)
    z = encode(pipe, stereo(audio, rate))
    length = latent.audio.shape[2]
    heard = min(z.shape[2], length)
    sound = latent.audio.float().clone()
    sound[:, :, :heard] = z[:, :, :heard].expand(sound.shape[0], -1, -1, -1)
    mask = torch.ones(1, 1, length, 1)
    mask[:, :, :heard] = 0.0
    seconds = latent.frames / float(latent.fps)
    if z.shape[2] < length:
        log(f"the sound lasts {heard / length * seconds:.2f} s of the clip's {seconds:.2f} s: LTX-2 makes the sound "
            f"after it")
    return dataclasses.replace(latent, audio=sound, audio_mask=mask)


@dataclasses.dataclass(frozen=True)
class IdentityGuidance:
    """ComfyUI's LTXVReferenceAudio guidance: at the steps whose level lies between start's and end's (shares of the
    way from noise), the prediction moves away from the one without the reference voice by `scale`."""
    scale: float
    start: float = 0.0
    end: float = 1.0

    def steers(self, sigma: float, level_at) -> bool:
        return self.scale > 0 and level_at(self.end) <= sigma <= level_at(self.start)

    def apply(self, guided, cond, cond_without):
        return guided + (cond - cond_without) * self.scale


REFERENCE = "ref_audio"         # the conditioning's extra: the reference voice's tokens [1, R, C * M]


def with_reference(model, positive, negative, vae, audio, scale: float, start: float, end: float):
    """(model, positive, negative) with a reference voice for LTX-2's ID-LoRA (ComfyUI's LTXVReferenceAudio): its
    latent, as latent.set_sound encodes a song, rides on both prompts as tokens the transformer reads before the
    clip's sound, at timestep 0; the model gets identity guidance at `scale` (0: none) between start and end."""
    if vae.family != "ltx2" or model.family != "ltx2":
        raise NodeError("condition.reference_voice is for LTX-2: load an LTX-2 checkpoint with load.model and give "
                        "its model and VAE")
    if start > end:
        raise NodeError(f"identity guidance's start ({start}) must not come after its end ({end})")
    pipe = vae.pipe
    tokens = pipe._pack_audio_latents(encode(pipe, stereo(audio, int(pipe.audio_vae.config.sample_rate))))
    conds = tuple(c.with_extra(**{REFERENCE: tokens}) for c in (positive, negative))
    return (model.with_option("identity_guidance", IdentityGuidance(float(scale), float(start), float(end))),
            *conds)


def without_reference(cond):
    return dataclasses.replace(cond, extra={k: v for k, v in cond.extra.items() if k != REFERENCE})
