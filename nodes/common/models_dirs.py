"""Where model files live: the folders Kinograph searches, shared by every node that loads weights.

Folders, in search order:
  1. `KINOGRAPH_MODELS`: a path list (os.pathsep-separated, like PATH);
  2. `model_dirs:` in config.yaml (a path or a list; `~` expands);
  3. the default `<data dir>/kinograph/models` (XDG_DATA_HOME, else ~/.local/share).
Each folder has one sub-folder per kind, named as in ComfyUI, so a ComfyUI `models/` folder
(or the ComfyUI folder holding it) can be listed as is: checkpoints/, vae/, loras/,
upscale_models/, ... A bare file name is looked up in the kind's sub-folders (and their
sub-folders); anything with a folder in it is a path and taken as it is."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional

from graph_engine import NodeError

KINDS = ("checkpoints", "vae", "loras", "upscale_models", "animatediff_models", "diffusion_models",
         "text_encoders", "clip_vision", "controlnet", "rife")
# Older ComfyUI names still found in many installs.
ALIASES = {"text_encoders": ("clip",), "diffusion_models": ("unet",)}
# Custom-node packs that keep their weights outside models/, relative to the ComfyUI folder
# (the one holding models/); installs through ComfyUI-Manager use the lower-case folder name.
PACK_DIRS = {"rife": ("custom_nodes/ComfyUI-Frame-Interpolation/ckpts/rife",
                      "custom_nodes/comfyui-frame-interpolation/ckpts/rife")}
WEIGHT_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".pkl", ".bin", ".gguf")


def _default_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "kinograph" / "models"


def _configured() -> List[str]:
    from graph_engine.config import settings
    value = settings().get("model_dirs") or []
    return [value] if isinstance(value, str) else [str(v) for v in value if v]


def model_dirs() -> List[Path]:
    """The model folders, in search order, without duplicates (existing or not)."""
    raw = [p for p in os.environ.get("KINOGRAPH_MODELS", "").split(os.pathsep) if p.strip()]
    out: List[Path] = []
    for p in raw + _configured() + [str(_default_dir())]:
        d = Path(os.path.expandvars(p.strip())).expanduser()
        # A ComfyUI folder itself, rather than its models/ folder, works too.
        if not any((d / k).is_dir() for k in KINDS) and (d / "models").is_dir():
            d = d / "models"
        if d not in out:
            out.append(d)
    return out


def _kind_dirs(kind: str) -> List[Path]:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; kinds are {', '.join(KINDS)}")
    dirs = [d / k for d in model_dirs() for k in (kind,) + ALIASES.get(kind, ())]
    roots = dict.fromkeys(d.parent if d.name == "models" else d for d in model_dirs())
    return dirs + [r / sub for r in roots if (r / "custom_nodes").is_dir() for sub in PACK_DIRS.get(kind, ())]


def _is_model(p: Path) -> bool:
    return (p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES) or (p / "model_index.json").is_file()


def find_model(name: str, kind: str, required: bool = True) -> Optional[Path]:
    """The file (or diffusers folder) for `name`: a path if it names a folder, else the first
    match by file name (or name without extension) in the `kind` folders. Not found:
    NodeError saying where it looked and where to put it (or None when not required)."""
    name = (name or "").strip()
    if not name:
        raise NodeError(f"no {kind} model given: name a file in a '{kind}' model folder, or give its path")
    given = Path(os.path.expandvars(name)).expanduser()
    if given.is_absolute() or len(given.parts) > 1:
        if given.exists():
            return given
        if not required:
            return None
        raise NodeError(f"model not found: {given} - check the path, or give just the file name and put the "
                        f"file into {_kind_dirs(kind)[0]}")
    searched = _kind_dirs(kind)
    for d in searched:
        if not d.is_dir():
            continue
        exact = d / name
        if exact.exists():
            return exact
        for p in sorted(d.rglob("*")):
            if (p.name == name or p.stem == name) and _is_model(p):
                return p
    if not required:
        return None
    looked = "\n  ".join(str(d) for d in searched)
    raise NodeError(f"{kind} model {name!r} not found. Looked in:\n  {looked}\nPut the file into "
                    f"{searched[0]}, or add the folder that holds it to KINOGRAPH_MODELS or to model_dirs "
                    f"in config.yaml. Kinograph never downloads models.")


def locator(kind: str):
    """For `Param(locate=...)`: the file a model name resolves to (None when absent), so the engine
    fingerprints the weights themselves and notices a replaced file under the same name."""
    def locate(name: str) -> Optional[Path]:
        return find_model(name, kind, required=False)
    return locate


def list_models() -> Dict[str, List[Path]]:
    """Every model file (or diffusers folder) in the model folders, by kind."""
    found: Dict[str, List[Path]] = {}
    for kind in KINDS:
        items: List[Path] = []
        for d in _kind_dirs(kind):
            if d.is_dir():
                for p in sorted(d.rglob("*")):
                    # A diffusers folder is one model; do not list the weights inside it.
                    if _is_model(p) and not any((q / "model_index.json").is_file() for q in p.parents
                                                if d in q.parents):
                        items.append(p)
        if items:
            found[kind] = items
    return found

