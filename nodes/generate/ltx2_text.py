"""LTX-2's prompt reader as ComfyUI's LTXAVTextEncoderLoader builds it: Gemma 3 (text_encoders/gemma_3_12B_it) and the
text connectors held in the LTX-2 checkpoint, which turn Gemma's stacked layer features into the video and audio
streams' prompt tokens. Only the connectors' tensors are read from the (19B) checkpoint."""
from __future__ import annotations

from pathlib import Path

from graph_engine import NodeError
from nodes.generate.detect import Detection, detect_file

def checkpoint_of(path: Path) -> Detection:
    """The LTX-2 checkpoint `path`'s detection (its header only); another file is refused by what it is."""
    det = detect_file(path)
    if det.family != "ltx2" or det.role != "checkpoint":
        raise NodeError(f"{path.name} is {det.describe() or 'not a model Kinograph knows'}: LTX-2 reads prompts "
                        "through Gemma 3 and the text connectors in its all-in-one checkpoint; give the text encoder "
                        "loader ltx-2-19b-dev.safetensors (or -distilled) as its checkpoint")
    return det


def connectors(path: Path, dtype, device: str):
    """The LTX-2 checkpoint's text connectors (LTX2TextConnectors), its other tensors left unread."""
    from nodes.generate import converters
    from nodes.generate.converters.ltx2 import CONNECTOR_KEYS
    from nodes.generate.weights import dequantise, read_selected
    det = checkpoint_of(path)
    state = read_selected(path, lambda k: k.startswith(CONNECTOR_KEYS))
    part = Detection("connectors", "ltx2", det.variant, det.precision, det.layout, "", det.why, det.extra)
    return converters.build(part, dequantise(state, dtype), dtype, str(path)).to(device)


def gemma_tokenizer(data: bytes):
    """Gemma's tokenizer from the sentencepiece model ComfyUI keeps in the file (`spiece_model`), as transformers
    converts Google's tokenizer.model: byte-level BPE pieces, <bos> first."""
    import json
    import tempfile
    from transformers import AutoTokenizer
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "tokenizer.model").write_bytes(data)
        (Path(folder) / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "GemmaTokenizer", "add_bos_token": True}), encoding="utf-8")
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def load_ltx2_text(mm, path: Path, det: Detection, checkpoint: str, type_: str, device: str):
    """Gemma 3 with the LTX-2 checkpoint's text connectors, as one text encoder handle (family ltx2)."""
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.model_manager import dtype_of
    from nodes.generate.split import _module, _resolve, pipeline, tokenizer
    if det.family != "gemma3":
        raise NodeError(f"{path.name} is {det.describe()}; LTX-2 reads prompts with Gemma 3 "
                        "(text_encoders/gemma_3_12B_it.safetensors)")
    if type_ not in ("", "auto", "ltx2", "ltxv"):
        raise NodeError(f"{path.name} is Gemma 3, LTX-2's text encoder: set type to ltx2 or auto, not {type_!r}")
    if not checkpoint:
        raise NodeError(f"{path.name} is Gemma 3: LTX-2 reads its features through the text connectors in the LTX-2 "
                        "checkpoint, so give the loader that file too (name2 / ckpt_name: ltx-2-19b-dev.safetensors), "
                        "as ComfyUI's LTXAVTextEncoderLoader takes it")
    ckpt = _resolve(checkpoint, "checkpoints", "LTX-2 checkpoint")
    checkpoint_of(ckpt)     # before Gemma's 12B load, which build() makes first
    _, dtype = dtype_of("auto", "ltx2", device)

    def build():
        return pipeline("ltx2", text_encoder=_module(path, det, dtype, device), tokenizer=tokenizer(path, det),
                        connectors=connectors(ckpt, dtype, device))
    where = f"{path}+{ckpt}"
    pipe = mm.cached(("text_encoder", where, "ltx2", str(dtype), device), build, files=[path, ckpt])
    return ComponentHandle("ltx2", where, pipe, "text_encoder", device)
