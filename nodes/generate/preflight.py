"""Frame and size rules checked while a workflow is validated, before any model loads.

A frame count the model cannot take used to surface only when latent.empty ran, after the
loader had spent minutes reading a real checkpoint (and `kinograph validate` said ok). The
VAE's family is known earlier, from the loader's type or a glance at its files (model_index.json,
a safetensors header), so validation applies the same rules the node applies when it runs.
A VAE or model that arrives through nodes passing it on (a LoRA, context windows, a family loader given
the part: their `passes=`) is judged by the loader behind them; whatever cannot be told without loading
is left to the run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

from graph_engine import NodeError


def _vae_config_spatial(folder: Path) -> Optional[int]:
    """A diffusers folder's VAE: Wan 2.2's (48 latent channels) packs 16 pixels per latent pixel."""
    cfg = folder / "vae" / "config.json"
    if not cfg.is_file():
        return None
    z = json.loads(cfg.read_text(encoding="utf-8")).get("z_dim")
    return 16 if z == 48 else None


def _header_only(file: Path) -> bool:
    """Files whose tensor names can be read without unpickling them: validation runs on every edit in the
    editor, and a pickled checkpoint takes seconds to open."""
    from nodes.generate.detect import GGUF_EXT, SAFE_EXT
    return file.suffix.lower() in SAFE_EXT + GGUF_EXT


def _holds(fam: str, path: str) -> bool:
    """False where a family's loader points at another family's model: the loader refuses it when it runs,
    and that, not this family's frame rule, is the problem to report."""
    from nodes.generate.loaders import _resolve_any
    from nodes.generate.model_manager import detect_family
    try:
        found = _resolve_any(path)
    except NodeError:       # not there yet: nothing says it is another family's
        return True
    if found.is_file() and not _header_only(found):
        return True
    got = detect_family(found)[0]
    return got in (None, "motion", fam) or (fam == "animatediff" and got == "sd")


def diffusion_model_preflight(params: dict, sources: dict) -> List[Tuple[str, str]]:
    """load.diffusion_model given a file of a model Kinograph does not run (Anima's DiT, Mochi, a sound model, a
    model patch): validate said ok and the run failed at the loader; the file's header tells at once, with the
    loader's own message."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import resolve_model_path
    from nodes.generate.split import _detect
    name = params.get("name") or ""
    try:
        file = resolve_model_path(name, "diffusion_models", "diffusion model") if name else None
    except NodeError:           # not there: validate names the missing file on its own
        return []
    if file is None or not file.is_file() or not _header_only(file):
        return []
    try:
        detect_file(file)
    except (NodeError, OSError, ValueError):   # a damaged file: the loader names it when it runs
        return []
    try:
        _detect(file, ("diffusion_model", "checkpoint"), "a diffusion model")
    except NodeError as exc:
        return [("name", str(exc))]
    return []


def vae_source(kind: str, params: dict) -> Optional[Tuple[str, Optional[int]]]:
    """(family, pixels per latent pixel or None for the family's usual) of the VAE a loader node hands
    out, from its type and params without loading it; None where that cannot be told."""
    from nodes.generate.families import FAMILIES
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import detect_family, resolve_model_path
    if kind == "load.vae":
        from nodes.generate.pixel_space_name import NAME, is_pixel_space
        name = params.get("name") or ""
        if is_pixel_space(name):
            return NAME, None
        file = resolve_model_path(name, "vae", "VAE") if name else None
        if file is None or not _header_only(file):
            return None
        det = detect_file(file)
        if det.role != "vae" or det.family not in FAMILIES:
            return None
        return det.family, 16 if det.family == "wan" and det.variant == "2.2" else None
    fam = kind[len("load."):] if kind.startswith("load.") else ""
    path = params.get("path") or ""
    if kind == "load.model":
        fam = params.get("family", "auto")
        if fam == "auto":
            if not path:
                return None
            from nodes.generate.loaders import _resolve_any
            found = _resolve_any(path)
            if found.is_file() and not _header_only(found):
                return None
            fam = detect_family(found)[0]
    if fam not in FAMILIES or (path and kind != "load.model" and not _holds(fam, path)):
        return None
    folder = Path(path) if path else None
    return fam, _vae_config_spatial(folder) if folder is not None and folder.is_dir() else None


def frame_rules(frames: int, width: int, height: int, source, size_fit: str = "exact") -> List[Tuple[str, str]]:
    """[(param, problem)] for a clip of this length and size made with the VAE `source` (type, params)
    links in; the messages are the ones the node gives when it runs."""
    if source is None:
        return []
    try:
        found = vae_source(*source)
    except (NodeError, OSError, ValueError):     # a missing or unreadable file: the loader says so when it runs
        return []
    if found is None:
        return []
    from nodes.generate.families import family
    spec, space = family(found[0]), found[1]
    problems = []
    if size_fit == "floor":
        width, height = spec.floor_size(width, height, space)
        frames = spec.floor_frames(frames)
    try:
        spec.check_frames(frames)
    except NodeError as e:
        problems.append(("frames", str(e)))
    try:
        spec.check_size(width, height, space)
    except NodeError as e:
        problems.append(("width" if _fails(spec, width, space) else "height", str(e)))
    return problems


def _fails(spec, side: int, space: Optional[int]) -> bool:
    try:
        spec.check_size(side, side, space)
    except NodeError:
        return True
    return False


def latent_preflight(params: dict, sources: dict) -> List[Tuple[str, str]]:
    """latent.empty and condition.vace: their frames, width and height against their VAE's rules."""
    return frame_rules(params["frames"], params["width"], params["height"], sources.get("vae"),
                       params.get("size_fit", "exact"))


def model_family(kind: str, params: dict) -> Tuple[Optional[str], str]:
    """(family, detected variant or "") of the model a loader node hands out, without loading it; the family None
    where that cannot be told."""
    if kind == "load.diffusion_model":
        from nodes.generate.detect import detect_file
        from nodes.generate.model_manager import resolve_model_path
        name = params.get("name") or ""
        file = resolve_model_path(name, "diffusion_models", "diffusion model") if name else None
        det = detect_file(file) if file is not None and _header_only(file) else None
        return (det.family, det.variant) if det is not None else (None, "")
    found = vae_source(kind, params) if kind != "load.vae" else None
    return (found[0] if found else None), ""


def guidance_preflight(params: dict, sources: dict) -> List[Tuple[str, str]]:
    """generate.sample without a negative: guidance (cfg other than 1) needs one, except for models that bring
    their own (SVD's empty image, HunyuanVideo's and FLUX.1's distilled guidance). The run says so after the loader."""
    if "negative" in sources or "model" not in sources:
        return []
    try:
        fam, variant = model_family(*sources["model"])
    except (NodeError, OSError, ValueError):
        return []
    if fam is None or fam in ("svd", "hunyuan", "flux"):
        return []
    from nodes.generate.families import family
    cfg = params["cfg"] or family(fam).usual_cfg(variant)
    if cfg == 1.0:
        return []
    return [("cfg", f"cfg {cfg} needs a negative conditioning: connect encode.text's negative output to "
                    "sample's negative input (or set cfg to 1)")]

