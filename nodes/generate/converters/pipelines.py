"""Pipelines from one weights file that holds more than the denoiser (LTX-Video's and SVD's all-in-one
checkpoints), or from the folders ComfyUI's CogVideoX pack keeps (subfolders, no model_index.json).
The pipeline itself is split.pipeline's: parts no file gave stay None, the split loaders supply them."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from nodes.generate.converters import build
from nodes.generate.split import pipeline

DENOISER = {"svd": "unet"}
# Which component each role of a file fills, for files that hold more than the denoiser.
CHECKPOINT_PARTS = {"ltx": {"transformer": "diffusion_model", "vae": "vae"},
                    "ltx2": {"transformer": "diffusion_model", "connectors": "connectors", "vae": "vae",
                             "audio_vae": "audio_vae", "vocoder": "vocoder"},
                    "svd": {"unet": "diffusion_model", "vae": "vae", "image_encoder": "clip_vision"}}


def load_single_file(family: str, path: Path, dtype, det=None):
    """A pipeline from one weights file: its denoiser, plus the VAE and image encoder an all-in-one
    checkpoint (LTX-Video, SVD) carries."""
    from graph_engine import NodeError
    from nodes.generate.detect import detect_file
    from nodes.generate.weights import load_weights
    det = det or detect_file(path)
    if det.family != family or det.role not in ("diffusion_model", "checkpoint"):
        raise NodeError(f"{path} is {det.describe() or 'not a model Kinograph knows'} ({det.why}), not a "
                        f"{family} model; the loader needs the model file itself")
    state = load_weights(path)
    roles = CHECKPOINT_PARTS.get(family, {}) if det.role == "checkpoint" else \
        {DENOISER.get(family, "transformer"): "diffusion_model"}
    parts = {}
    for part, role in roles.items():
        if det.role == "checkpoint":                 # the converters read the checkpoint's own prefixes
            part_det = dataclasses.replace(det, role=role, prefix="")
        else:
            part_det = det
        parts[part] = build(part_det, state, dtype, str(path))
    if "image_encoder" in parts:        # SVD normalises its conditioning image with CLIP's statistics
        from transformers import CLIPImageProcessor
        from nodes.generate.converters import model_config
        parts["feature_extractor"] = CLIPImageProcessor(**model_config("clip_vision", "preprocessor"))
    return pipeline(family, det.variant, **parts)


def load_folder_parts(family: str, folder: Path, dtype, names=("transformer", "vae", "scheduler")) -> Optional[object]:
    """A pipeline from a folder of diffusers subfolders without model_index.json (ComfyUI's CogVideoX
    pack keeps models as CogVideo/<name>/{transformer,vae,scheduler}); None when there are none."""
    import diffusers
    import json
    from graph_engine.context import check_cancelled
    found = {}
    for name in names:
        # diffusers reads each part's weights itself, past the shared reader's check: a cancel is seen between parts
        check_cancelled()
        cfg_file = next((folder / name / f for f in ("config.json", "scheduler_config.json")
                         if (folder / name / f).is_file()), None)
        if cfg_file is None:
            continue
        cls = getattr(diffusers, json.loads(cfg_file.read_text(encoding="utf-8"))["_class_name"])
        kw = {} if name == "scheduler" else {"dtype": dtype}
        found[name] = cls.from_pretrained(str(folder / name), local_files_only=True, **kw)
    if not found:
        return None
    return pipeline(family, **found)
