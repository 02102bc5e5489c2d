"""Open Deforum settings files (what the A1111 Deforum extension saves: a JSON .txt, or .json) as workflows.

    from app.deforum import import_settings
    result = import_settings("deforum_settings.txt")
    print(result.report.text())     # every setting that matters: mapped exactly / approximately / not mapped
    result.yaml                     # the Kinograph workflow

`kinograph import`, the editor's File > Open and drag and drop reach this through app.comfyui, which
hands a file here when it holds Deforum settings; convert.py is the mapping."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from ..comfyui.errors import ComfyImportError

# Keys every Deforum settings file has (since its first Colab); two of them tell it from other JSON.
SIGNATURE = ("animation_mode", "max_frames", "diffusion_cadence", "strength_schedule", "translation_z",
             "rotation_3d_x", "color_coherence", "seed_behavior")
SUFFIXES = (".txt", ".json")
MAX_BYTES = 16 * 1024 * 1024


class DeforumImportError(ComfyImportError):
    """The file cannot be read as Deforum settings; the message names the file and the setting."""


def looks_like_deforum(data: Any) -> bool:
    return isinstance(data, dict) and sum(1 for k in SIGNATURE if k in data) >= 2


def _read_text(p: Path) -> Optional[str]:
    if p.suffix.lower() not in SUFFIXES or not p.is_file() or p.stat().st_size > MAX_BYTES:
        return None
    try:
        raw = p.read_bytes()
    except OSError:
        return None
    from ..comfyui.sources import _decode
    try:
        return _decode(raw, str(p))
    except ComfyImportError:
        return None


def is_deforum_file(path) -> bool:
    """The file is Deforum settings, readable or damaged (a damaged one is imported to say what is wrong)."""
    p = Path(path)
    text = _read_text(p)
    if text is None:
        return False
    try:
        return looks_like_deforum(json.loads(text))
    except (ValueError, RecursionError):
        # A file cut short or hand-edited into broken JSON: still Deforum's if its keys are there.
        return sum(1 for k in SIGNATURE if f'"{k}"' in text) >= 2


def read_settings(path) -> Dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise DeforumImportError(f"{p}: no such file")
    text = _read_text(p)
    if text is None:
        raise DeforumImportError(f"{p}: not a Deforum settings file (a .txt or .json of UTF-8 JSON text)")
    from ..comfyui.sources import _parse_json
    try:
        data = _parse_json(text, "file", str(p))
    except DeforumImportError:
        raise
    except ComfyImportError as e:
        raise DeforumImportError(f"{e} (Deforum settings are JSON: fix the file or save the settings from Deforum "
                                 "again)") from None
    if not looks_like_deforum(data):
        raise DeforumImportError(f"{p}: not Deforum settings (expected keys such as animation_mode and max_frames)")
    return data


def import_data(settings: Dict[str, Any], *, name: str = "", origin: str = "", registry=None, label: str = ""):
    """Convert a parsed settings dictionary; `label` names it in error messages."""
    from ..comfyui import ImportResult
    from .convert import Builder, DeforumSettingError
    if registry is None:
        from graph_engine.registry import default_registry
        registry = default_registry()
    try:
        graph, report = Builder(settings, registry).run()
    except DeforumSettingError as e:
        raise DeforumImportError(f"{label or origin or 'the settings'}: {e}") from None
    graph.name = name
    graph.description = f"Imported from Deforum settings ({origin})" if origin else "Imported from Deforum settings"
    return ImportResult(graph, report, "deforum", origin)


def import_settings(path, *, registry=None):
    p = Path(path)
    return import_data(read_settings(p), name=p.stem, origin=p.name, registry=registry, label=str(p))
