"""Diffusers pipelines put together from parts that came from separate files (ComfyUI's way of
holding a model: one file per part), with the family's shipped scheduler config. A part no file
gave stays None: the split loaders (load.text_encoder, load.vae, ...) supply it on their own handle."""
from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Dict, Optional

from nodes.generate.converters import CONFIG_DIR, build, model_config

# The pipeline a family's parts go into; the image-to-video class where the denoiser says so.
PIPELINES = {"ltx": "LTXPipeline", "hunyuan": "HunyuanVideoPipeline", "svd": "StableVideoDiffusionPipeline",
             "cogvideox": "CogVideoXPipeline", "wan": "WanPipeline"}
DENOISER = {"svd": "unet"}
# Which component each role of a file fills, for files that hold more than the denoiser.
CHECKPOINT_PARTS = {"ltx": {"transformer": "diffusion_model", "vae": "vae"},
                    "svd": {"unet": "diffusion_model", "vae": "vae", "image_encoder": "clip_vision"}}


def scheduler(family: str):
    import json
    import diffusers
    cfg = json.loads((CONFIG_DIR / family / "scheduler.json").read_text(encoding="utf-8"))
    return getattr(diffusers, cfg["_class_name"]).from_config(cfg)


def pipeline_class(family: str, parts: Dict[str, object]):
    import diffusers
    name = PIPELINES[family]
    denoiser = parts.get(DENOISER.get(family, "transformer"))
    if family == "cogvideox" and denoiser is not None and denoiser.config.in_channels == 32:
        name = "CogVideoXImageToVideoPipeline"
    return getattr(diffusers, name)


def assemble(family: str, parts: Dict[str, object]):
    """The family's pipeline with these components (None for the rest) and its shipped scheduler."""
    cls = pipeline_class(family, parts)
    params = inspect.signature(cls.__init__).parameters
    kw = {n: parts.get(n) for n, p in params.items()
          if n != "self" and (n in parts or p.default is inspect.Parameter.empty)}
    kw["scheduler"] = parts.get("scheduler") or scheduler(family)
    if "feature_extractor" in params and kw.get("feature_extractor") is None:
        from transformers import CLIPImageProcessor
        kw["feature_extractor"] = CLIPImageProcessor(**model_config("clip_vision", "preprocessor"))
    return cls(**kw)


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
    return assemble(family, parts)


def load_folder_parts(family: str, folder: Path, dtype, names=("transformer", "vae", "scheduler")) -> Optional[object]:
    """A pipeline from a folder of diffusers subfolders without model_index.json (ComfyUI's CogVideoX
    pack keeps models as CogVideo/<name>/{transformer,vae,scheduler}); None when there are none."""
    import diffusers
    import json
    found = {}
    for name in names:
        cfg_file = next((folder / name / f for f in ("config.json", "scheduler_config.json")
                         if (folder / name / f).is_file()), None)
        if cfg_file is None:
            continue
        cls = getattr(diffusers, json.loads(cfg_file.read_text(encoding="utf-8"))["_class_name"])
        kw = {} if name == "scheduler" else {"dtype": dtype}
        found[name] = cls.from_pretrained(str(folder / name), local_files_only=True, **kw)
    if not found:
        return None
    return assemble(family, found)
