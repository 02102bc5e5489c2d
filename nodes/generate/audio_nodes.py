"""Speech encoder nodes: the voice features Wan 2.2 S2V moves a face by."""
from __future__ import annotations

from graph_engine import Param, node
from graph_engine.types import AUDIO, AUDIO_EMBEDS, AUDIO_ENCODER
from nodes.common.models_dirs import locator


@node("load.audio_encoder", title="Load Audio Encoder", category="Models", device="gpu",
      outputs={"audio_encoder": AUDIO_ENCODER})
def load_audio_encoder(ctx, name: str = Param("", kind="path", locate=locator("audio_encoders"), required=True,
                                              help="file in audio_encoders/ (wav2vec2_large_english_fp16.safetensors)")):
    """A wav2vec2 speech encoder from its own file (ComfyUI's AudioEncoderLoader), for encode.audio. Its size
    (base or large, its layers) is read from the file."""
    from nodes.generate.audio_encoder import load
    from nodes.generate.model_manager import manager_for
    return {"audio_encoder": load(manager_for(ctx), name, ctx.device)}


@node("encode.audio", title="Encode Audio (speech)", category="Conditioning", device="gpu")
def encode_audio(ctx, audio_encoder: AUDIO_ENCODER, audio: AUDIO) -> AUDIO_EMBEDS:
    """The speech encoder's features of a sound (ComfyUI's AudioEncoderEncode): every layer's, 50 a second,
    for Wan 2.2 S2V. The sound is mixed to mono and resampled to 16 kHz with ffmpeg's resampler (ComfyUI uses
    torchaudio's: the features differ by their filters' difference only; the level does not matter, the sound
    is normalised)."""
    from nodes.generate.audio_encoder import encode, samples
    feats = encode(audio_encoder.pipe, samples(audio))
    ctx.log(f"{feats['last'].shape[0]} feature frames ({feats['last'].shape[0] / feats['fps']:.2f} s of sound), "
            f"{feats['layers'].shape[0]} layers")
    return feats
