"""wav2vec2 speech encoders as ComfyUI keeps them (audio_encoders/wav2vec2_large_english_fp16.safetensors): the
features Wan 2.2 S2V reads a voice by (ComfyUI's AudioEncoderLoader and AudioEncoderEncode).

ComfyUI's file holds transformers' Wav2Vec2Model tensors under their own names (a `wav2vec2.` prefix dropped,
a CTC head, if any, ignored), so the model is transformers' own, its size read from the tensors' shapes. Whisper
files (HuMo's) load and encode through nodes/generate/whisper.py."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from graph_engine import NodeError

RATE = 16000                # what wav2vec2 hears: ComfyUI resamples every sound to it
FPS = 50                    # its feature frames a second (a 320-sample hop)
HEAD_DIM = 64               # wav2vec2 base (768 / 12) and large (1024 / 16) alike; the file does not say it
_PROBE = "feature_projection.projection.weight"
# weight-normed positional conv: older files keep weight_g / weight_v, torch's parametrization names them so
_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


def _renamed(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        k = k.removeprefix("wav2vec2.")
        stem, _, last = k.rpartition(".")
        out[f"{stem}.{_WEIGHT_NORM[last]}" if k.startswith("encoder.pos_conv_embed.conv.") and last in _WEIGHT_NORM
            else k] = v
    return out


def config_of(sd: dict):
    """transformers' Wav2Vec2Config for the tensors of `sd` (ComfyUI's names)."""
    from transformers import Wav2Vec2Config
    convs = sorted({int(m[1]) for k in sd if (m := re.match(r"feature_extractor\.conv_layers\.(\d+)\.", k))})
    layers = {int(m[1]) for k in sd if (m := re.match(r"encoder\.layers\.(\d+)\.", k))}
    if not convs:
        raise KeyError("feature_extractor.conv_layers.0.conv.weight")
    hidden = sd[_PROBE].shape[0]
    pos = sd["encoder.pos_conv_embed.conv.parametrizations.weight.original1"].shape
    kernels = [sd[f"feature_extractor.conv_layers.{i}.conv.weight"].shape[-1] for i in convs]
    # Two layouts, as ComfyUI's audio_encoders.py builds them: large (wav2vec2_large_english) normalises every conv
    # and its layers before attention; base (chinese-wav2vec2-base, InfiniteTalk's) a group norm on the first conv
    # only, and its layers after attention. The tensor names are the same either way.
    large = f"feature_extractor.conv_layers.{convs[-1]}.layer_norm.weight" in sd
    return Wav2Vec2Config(
        hidden_size=hidden, num_hidden_layers=len(layers), num_attention_heads=max(1, hidden // HEAD_DIM),
        intermediate_size=sd["encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0],
        conv_dim=[sd[f"feature_extractor.conv_layers.{i}.conv.weight"].shape[0] for i in convs],
        conv_kernel=kernels, conv_stride=[5 if k == 10 else 2 for k in kernels],
        conv_bias=f"feature_extractor.conv_layers.{convs[-1]}.conv.bias" in sd,
        feat_extract_norm="layer" if large else "group",
        num_conv_pos_embeddings=pos[2], num_conv_pos_embedding_groups=hidden // pos[1],
        do_stable_layer_norm=large, vocab_size=None, mask_time_prob=0.0)


def build(path: Path, dtype, device: str):
    """transformers' Wav2Vec2Model holding the file's weights (or, for a whisper file, its WhisperEncoder, as
    nodes/generate/whisper.py reads it); a file that is neither, or lacks some of its tensors, is named with what
    is wrong."""
    from transformers import Wav2Vec2Model
    from nodes.generate.weights import load_weights
    from nodes.generate import whisper
    raw = load_weights(path)
    heard = whisper.encoder_state(raw)
    if heard is not None:
        from transformers.models.whisper.modeling_whisper import WhisperEncoder
        model = holding(lambda: WhisperEncoder(whisper.config_of(heard)), heard, path.name, "whisper")
        return model.to(device=device, dtype=dtype).eval()
    sd = _renamed(raw)
    if _PROBE not in sd or "encoder.pos_conv_embed.conv.parametrizations.weight.original1" not in sd:
        raise NodeError(f"{path.name} is neither a wav2vec2 nor a whisper speech encoder (no {_PROBE}, no "
                        "model.encoder.embed_positions): Wan 2.2 S2V reads audio_encoders/"
                        "wav2vec2_large_english_fp16.safetensors, HuMo whisper_large_v3_fp16.safetensors")
    model = holding(lambda: Wav2Vec2Model(config_of(sd)), sd, path.name, "wav2vec2")
    return model.to(device=device, dtype=dtype).eval()


SPEECH_FILES = ("load.audio_encoder reads wav2vec2 (Wan 2.2 S2V: audio_encoders/wav2vec2_large_english_fp16.safetensors, "
                "InfiniteTalk: wav2vec2-chinese-base_fp16.safetensors) or whisper (HuMo: whisper_large_v3_fp16.safetensors)")


def encoder_family(kind: str, params: dict) -> str:
    """'whisper' or 'wav2vec2' for the encoder a load.audio_encoder node loads, from its file's header, before it
    loads (a preflight's source); '' where that cannot be told (another node, a missing or pickled file)."""
    from nodes.generate.model_manager import resolve_model_path
    name = params.get("name") or ""
    if kind != "load.audio_encoder" or not name:
        return ""
    path = resolve_model_path(name, "audio_encoders", "speech encoder (wav2vec2 or whisper)")
    if path.suffix.lower() not in (".safetensors", ".sft"):
        return ""
    # describe names other models' families too, and "unreadable": those are the load's to explain (a damaged
    # file was refused as "encoded by unreadable", with the file already loaded as the fix).
    family = describe(path).get("family", "") if path.is_file() else ""
    return family if family in ("whisper", "wav2vec2") else ""


def speech(sound: dict, reader: str) -> tuple:
    """(layers, rate) of encode.audio's speech features; WanDancer's music features (the same socket type) refused,
    naming the encoder `reader` (S2V, HuMo, InfiniteTalk) takes."""
    if "layers" not in sound:
        raise NodeError(f"these are WanDancer's music features (encode.wan_dancer_audio); {reader} reads a speech "
                        "encoder's: connect encode.audio")
    return sound["layers"], sound["fps"]


def voice_preflight(wants: str, reader: str, file: str, *ports: str):
    """A node's preflight refusing voices encoded by the other kind of speech encoder (InfiniteTalk and S2V read
    wav2vec2's features, HuMo whisper's): it was refused only when the conditioning ran, after the Wan model and the
    encoder had loaded; the encoder's file header tells at once."""
    def preflight(params: dict, sources: dict) -> list:
        found = []
        for port in ports:
            got = encoder_family(*sources[port]) if port in sources else ""
            if got and got != wants:
                found.append((port, f"the voice is encoded by {got} ({Path(sources[port][1]['name']).name}); "
                                    f"{reader} reads {wants} features: load audio_encoders/{file} in the "
                                    "load.audio_encoder that feeds it"))
        return found
    return preflight


def describe(path: Path) -> dict:
    """`kinograph info`'s row for a file in audio_encoders/, from its header: wav2vec2 (large or base, as config_of
    tells them) or whisper, or what other model it is. detect's rules know no speech encoder, so a good one was
    listed as 'unknown: no known key pattern' and not loading."""
    from nodes.generate import whisper
    from nodes.generate.detect import precision_of
    from nodes.generate.model_manager import describe_model
    from nodes.generate.weights import read_header
    try:
        header = read_header(path)
    except NodeError as exc:
        return {"family": "unreadable", "variant": "", "role": "", "precision": "", "loads": "no",
                "note": str(exc).splitlines()[0]}
    row = {"role": "audio_encoder", "precision": precision_of(header), "loads": "yes"}
    if whisper.encoder_state(header.shapes) is not None:
        return dict(row, family="whisper", variant="", note="load.audio_encoder: HuMo's speech encoder")
    sd = _renamed(header.shapes)
    if _PROBE in sd:
        convs = sorted(int(m[1]) for k in sd if (m := re.match(r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight$", k)))
        large = bool(convs) and f"feature_extractor.conv_layers.{convs[-1]}.layer_norm.weight" in sd
        return dict(row, family="wav2vec2", variant="large" if large else "base",
                    note="load.audio_encoder: " + ("Wan 2.2 S2V's" if large else "InfiniteTalk's") + " speech encoder")
    other = describe_model(path)
    what = " ".join(v for v in (other["family"], other["variant"], other["role"]) if v and v != "unknown")
    return dict(other, loads="no", note=f"not a speech encoder{f' (a {what} file)' if what else ''}: {SPEECH_FILES}")


def holding(make, sd: dict, name: str, kind: str):
    """The module `make` builds (on the meta device), holding the tensors of `sd` in float32; the file `name` lacking
    some of them is named with what is wrong."""
    import torch
    from nodes.generate.weights import sizes_of
    damaged = "the file is cut short or another model's; download it again"
    with sizes_of(name, f"a {kind} encoder"), torch.device("meta"):
        model = make()
    want = model.state_dict()
    missing = sorted(set(want) - set(sd))
    if missing:
        raise NodeError(f"{name} lacks {len(missing)} of a {kind} encoder's tensors ({', '.join(missing[:3])}...): "
                        f"{damaged}")
    wrong = [k for k in want if tuple(sd[k].shape) != tuple(want[k].shape)]
    if wrong:
        raise NodeError(f"{name}: its {wrong[0]} is {tuple(sd[wrong[0]].shape)}, where the encoder its other "
                        f"tensors describe has {tuple(want[wrong[0]].shape)}: {damaged}")
    model.load_state_dict({k: sd[k].to(torch.float32) for k in want}, assign=True)
    return model


def samples(audio, rate: int = RATE) -> np.ndarray:
    """`audio` (graph_engine.Audio: io.load_audio's span, or spans io.concat_audio joined, silence between) as
    mono float samples at `rate`."""
    from nodes.io.sound_memo import mono as decoded
    out = []
    for p in audio.pieces():
        if not p.path:
            out.append(np.zeros(int(round(p.duration * rate)), np.float32))
            continue
        mono = decoded(p.path, rate)
        start = int(round(p.start * rate))
        stop = len(mono) if p.duration is None else start + int(round(p.duration * rate))
        out.append(mono[start:stop] * np.float32(10 ** (p.gain / 20)))
    return np.concatenate(out)


def encode(model, mono: np.ndarray) -> dict:
    """Every layer's features of `mono` (RATE Hz), as ComfyUI's wav2vec2 gives them: the sound normalised to zero
    mean and unit variance (by the large layout only: ComfyUI's base config has do_normalize False), the input to
    each transformer layer and the last layer's output after the final norm.
    {"layers": [layers + 1, frames, width], "last": [frames, width], "fps": FPS}."""
    import torch
    from nodes.generate import whisper
    if whisper.is_whisper(model):
        return whisper.encode(model, mono)
    if len(mono) < 400:      # the conv stack's receptive field: shorter gives no frame at all
        raise NodeError(f"the sound is {len(mono) / RATE * 1000:.0f} ms long: the speech encoder needs at least "
                        f"25 ms (give a longer span)")
    x = torch.as_tensor(np.asarray(mono, np.float32))[None]
    if model.config.do_stable_layer_norm:
        x = (x - x.mean()) / torch.sqrt(x.var() + 1e-7)
    p = next(model.parameters())
    with torch.no_grad():
        out = model(x.to(p.device, p.dtype), output_hidden_states=True)
    layers = torch.cat(out.hidden_states).float().cpu()
    return {"layers": layers, "last": layers[-1], "fps": FPS}


def load(mm, name: str, device: str):
    """The encoder in `name` (a file in audio_encoders/), cached by the model manager."""
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.model_manager import dtype_of, resolve_model_path
    path = resolve_model_path(name, "audio_encoders", "speech encoder (wav2vec2 or whisper)")
    _, dtype = dtype_of("auto", "wan", device)
    model = mm.cached(("audio_encoder", str(path.resolve()), str(dtype), device), lambda: build(path, dtype, device),
                      files=(path,))
    return ComponentHandle("wan", str(path), model, "audio_encoder", device)
