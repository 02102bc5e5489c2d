"""HuMo's conditioning (ComfyUI's WanHuMoImageToVideo): the voice's whisper features as 8-frame windows per latent
frame, the reference image's latent, and the empty latent to sample. The model's side is nodes/generate/wan_humo.py."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.handles import need_wan_vae
from nodes.generate.latent import Conditioning

FPS = 25                   # HuMo's frame rate: its windows step four 25 fps feature frames a latent frame


def windows(layers: torch.Tensor, rate: float, frames: int) -> torch.Tensor:
    """encode.audio's whisper layers [L + 1, T, D] (`rate` a second) as HuMo reads them: [1, latent frames, 8, 5, D].
    As the published pipeline: the layers in four equal runs averaged, and the last one (after whisper's final
    norm), linearly resampled to 25 a second (ends aligned); latent frame i hears feature frames 4i - 5 .. 4i + 2
    (the published rule for frame 0, 3 silent frames and frames -2..2, is the same: zeros outside the sound)."""
    runs = layers.shape[0] - 1
    if runs < 4 or runs % 4:
        raise NodeError(f"these speech features have {runs} encoder layers; HuMo reads a whisper encoder's in four "
                        "equal runs (whisper large-v3: 32): encode the voice with whisper_large_v3_fp16.safetensors")
    q = runs // 4
    groups = torch.stack([layers[i * q:(i + 1) * q].mean(0) for i in range(4)] + [layers[runs]])   # [5, T, D]
    n = int(layers.shape[1] / float(rate) * FPS)
    feats = F.interpolate(groups.transpose(1, 2).float(), size=n, mode="linear", align_corners=True)  # [5, D, n]
    feats = F.pad(feats.permute(2, 0, 1), (0, 0, 0, 0, 0, 1))           # [n + 1, 5, D], the last row silence
    latent = (frames - 1) // 4 + 1
    at = np.stack([np.arange(4 * i - 5, 4 * i + 3) for i in range(latent)])
    at[(at < 0) | (at >= n)] = n
    return feats[torch.from_numpy(at)][None]


def condition(vae, positive: Conditioning, negative: Optional[Conditioning], frames: int, width: int, height: int,
              sound: Optional[dict] = None, reference: Optional[np.ndarray] = None) -> dict:
    """(positive, negative, latent) for a HuMo model. The positive conditioning carries the voice and the reference
    image's latent, the negative silence and the latent of no picture (the VAE's zeros), so guidance pushes towards
    both. Without a reference both get that blank latent; without a voice, both silence (the model's zeros)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.adapters.wan import zero_latent
    from nodes.generate.vae_ops import empty_latent
    from nodes.generate.wan_s2v_cond import _pixels
    need_wan_vae(vae, "condition.humo")
    latent = empty_latent(vae, frames, width, height, FPS)
    blank = zero_latent((1, 16, 1, *latent.samples.shape[3:]))       # ComfyUI's "no picture"
    pos, neg = {"humo_reference": blank}, {"humo_reference": blank}
    if reference is not None:
        with torch.inference_mode():
            pos["humo_reference"] = get_adapter("wan").vae_encode(
                vae.pipe, _pixels(vae.pipe, [reference], width, height))[:, :, :1]
    if sound is not None:
        from nodes.generate.audio_encoder import speech
        feats = windows(*speech(sound, "HuMo"), frames)
        pos["humo_audio"], neg["humo_audio"] = feats, torch.zeros_like(feats)
    return {"positive": positive.with_extra(**pos), "latent": latent,
            "negative": None if negative is None else negative.with_extra(**neg)}
