"""Open ComfyUI workflows: the UI and API JSON formats, and the PNG/WebP/MP4/WebM files that carry them.

    from app.comfyui import import_workflow
    result = import_workflow("wan_t2v.json")
    print(result.report.text())          # every ComfyUI node: mapped exactly / approximately / not mapped
    result.yaml                          # the Kinograph workflow

`kinograph import FILE` and the editor's File > Open use this; mapping.py is the table."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from graph_engine.atomic import read_plain

from .errors import ComfyImportError
from .report import Report
from .sources import MAX_JSON_BYTES

__all__ = ["ComfyImportError", "ImportResult", "import_workflow", "import_data", "comfyui_source", "is_comfyui_file"]


@dataclass
class ImportResult:
    graph: Any
    report: Report
    kind: str                  # "ui" or "api"; "deforum" for Deforum settings
    origin: str
    model_links: Dict[str, str] = field(default_factory=dict)    # model file -> its download address (model_links)

    @property
    def what(self) -> str:
        """What the file was, for the first line of the report."""
        return "Deforum settings" if self.kind == "deforum" else f"ComfyUI {self.kind} workflow"

    @property
    def yaml(self) -> str:
        from graph_engine.registry import default_registry
        from graph_engine.workflow import to_yaml
        return to_yaml(self.graph, default_registry())


def import_data(data: Any, *, name: str = "", origin: str = "", registry=None, label: str = "",
                bypass_unmapped: bool = False) -> ImportResult:
    """Convert a parsed ComfyUI workflow (UI or API format); `label` names it in error messages. `bypass_unmapped`
    bypasses the nodes Kinograph has no equivalent for that pass a value through, as ComfyUI would."""
    from .convert import convert
    from .flatten import from_api, from_ui
    from .mapping import widget_names
    from .sources import classify
    kind = classify(data)
    if kind == "api-wrapped":
        data, kind = data["prompt"], "api"
    if kind is None:
        raise ComfyImportError(f"{origin or 'this data'}: not a ComfyUI workflow")
    from .surrogates import without_lone_surrogates
    data, lone = without_lone_surrogates(data)
    if registry is None:
        from graph_engine.registry import default_registry
        registry = default_registry()
    where = label or origin or "the workflow"
    try:
        flat = from_ui(data, widget_names, bypass_unmapped) if kind == "ui" else \
            from_api(data, widget_names, bypass_unmapped)
        graph, report = convert(flat, registry)
    except ComfyImportError as e:
        raise ComfyImportError(f"{where}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise ComfyImportError(f"{where}: damaged ComfyUI workflow ({type(e).__name__}: {e})") from None
    except OverflowError as e:      # a widget of 1e999 (JSON's infinity) or an integer past a float, made int or float
        raise ComfyImportError(f"{where}: damaged ComfyUI workflow (a number too large for any widget: "
                               f"{type(e).__name__}: {e})") from None
    graph.name = name
    graph.description = f"Imported from ComfyUI ({origin})" if origin else "Imported from ComfyUI"
    if lone:
        report.remarks.append(f"{lone:,} character(s) of its texts were half of a UTF-16 pair (a JSON escape such as "
                              "\\ud800 that no text holds): each is \ufffd, the replacement character")
    from .model_links import model_links
    return ImportResult(graph, report, kind, origin, model_links(data))


def import_workflow(path, *, registry=None, bypass_unmapped: bool = False) -> ImportResult:
    """Read and convert a .json workflow or a media file carrying one, or Deforum's settings (app.deforum)."""
    from .sources import read_source
    from ..deforum import import_settings, is_deforum_file
    if is_deforum_file(path):
        return import_settings(path, registry=registry)
    src = read_source(path)
    p = Path(path)
    result = import_data(src.data, name=p.stem, origin=f"{p.name}, {src.origin}", registry=registry, label=str(p),
                         bypass_unmapped=bypass_unmapped)
    if src.remark:
        result.report.remarks.append(src.remark)
    return result


def comfyui_source(path):
    """The ComfyUI workflow a file holds (a sources.Source), or None: for YAML, for a render carrying
    Kinograph's own workflow, and for a file holding no readable ComfyUI workflow."""
    from .sources import read_source
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        return None
    if p.suffix.lower() != ".json":
        from graph_engine.embedded import read_embedded_workflow
        try:
            if read_embedded_workflow(p):
                return None
        except Exception:           # an unreadable media file: read_source says why, or finds nothing
            pass
    try:
        return read_source(p)
    except ComfyImportError:
        return None


def is_comfyui_file(path) -> bool:
    """True when the file holds a ComfyUI workflow (and no Kinograph one): what File > Open asks.
    Any other .json counts too, so that the importer says what is wrong with a damaged one, except a
    Kinograph workflow written as JSON (YAML's subset). Deforum's settings files (.txt or .json) count too:
    they open through the same importer."""
    from ..deforum import is_deforum_file
    if comfyui_source(path) is not None or is_deforum_file(path):
        return True
    p = Path(path)
    if p.suffix.lower() != ".json":
        return False
    try:
        # As far as the importer reads (sources.MAX_JSON_BYTES) and a plain file only: a .json linked to /dev/zero
        # was read here until memory ran out.
        raw = read_plain(p, MAX_JSON_BYTES)
        if len(raw) > MAX_JSON_BYTES:
            return True
        data = json.loads(raw.decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError):      # the importer says what is wrong with it
        return True
    return not (isinstance(data, dict) and "kinograph" in data)


def result_for(path, registry=None) -> Optional[ImportResult]:
    return import_workflow(path, registry=registry) if is_comfyui_file(path) else None
