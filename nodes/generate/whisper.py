"""Whisper's speech encoder as ComfyUI keeps it (audio_encoders/whisper_large_v3_fp16.safetensors): the features HuMo
reads a voice by (ComfyUI's AudioEncoderLoader and AudioEncoderEncode with a whisper file).

The file holds transformers' WhisperModel encoder tensors under `model.encoder.` (a full checkpoint's decoder, if
any, is ignored), so the model is transformers' WhisperEncoder, its size read from the tensors' shapes, and the
log-mel features are transformers' WhisperFeatureExtractor's (ComfyUI computes the same with torchaudio)."""
from __future__ import annotations

import re

import numpy as np

from graph_engine import NodeError

PROBE = "embed_positions.weight"
HEAD_DIM = 64              # every released whisper (large-v3: 1280 / 20); the file does not say it
RATE = 16000
FPS = 50                   # feature frames a second (two mel hops of 10 ms)
CHUNK = 30 * RATE          # whisper hears 30 s at a time, padded with silence
HOP = RATE // 25           # ComfyUI keeps the features of whole 25 fps frames of the sound (samples // 640, x2)


def encoder_state(sd: dict) -> dict | None:
    """The encoder's tensors of a whisper file under WhisperEncoder's names; None when `sd` is not whisper's."""
    for prefix in ("model.encoder.", "encoder."):
        if prefix + PROBE in sd:
            return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    return None


def config_of(sd: dict):
    """transformers' WhisperConfig for the encoder tensors `sd`."""
    from transformers import WhisperConfig
    width, mels = sd["conv1.weight"].shape[:2]
    layers = len({int(m[1]) for k in sd if (m := re.match(r"layers\.(\d+)\.", k))})
    return WhisperConfig(d_model=width, num_mel_bins=mels, encoder_layers=layers,
                         encoder_attention_heads=max(1, width // HEAD_DIM),
                         encoder_ffn_dim=sd["layers.0.fc1.weight"].shape[0],
                         max_source_positions=sd[PROBE].shape[0])


def is_whisper(model) -> bool:
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    return isinstance(model, WhisperEncoder)


def encode(model, mono: np.ndarray) -> dict:
    """Every layer's features of `mono` (RATE Hz) as ComfyUI's whisper gives them: the input to each layer and the
    last one's output after the final norm, 50 a second, for the whole 25 fps frames of the sound (ComfyUI hears its
    first 30 s only; here each further 30 s is heard in turn). {"layers": [layers + 1, frames, width], "last",
    "fps"}."""
    import torch
    from transformers import WhisperFeatureExtractor
    if len(mono) < HOP:
        raise NodeError(f"the sound is {len(mono) / RATE * 1000:.0f} ms long: HuMo's speech encoder reads whole "
                        f"25 fps frames, at least 40 ms (give a longer span)")
    mels = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins, sampling_rate=RATE)
    p = next(model.parameters())
    out = []
    for start in range(0, len(mono), CHUNK):
        piece = np.asarray(mono[start:start + CHUNK], np.float32)
        x = mels(piece, sampling_rate=RATE, return_tensors="pt").input_features
        with torch.no_grad():
            states = model(x.to(p.device, p.dtype), output_hidden_states=True).hidden_states
        out.append(torch.stack(states)[:, 0, :len(piece) // HOP * 2].float().cpu())
    layers = torch.cat(out, 1)
    return {"layers": layers, "last": layers[-1], "fps": FPS}
