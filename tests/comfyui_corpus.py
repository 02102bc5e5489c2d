"""The public ComfyUI workflows under tests/data/comfyui, imported and validated: shared by the tests
and bench/comfyui_corpus.py, which prints the count per source and in total."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

CORPUS = Path(__file__).resolve().parent / "data" / "comfyui"
# where each folder's workflows come from (the README there names each file's source and licence)
SOURCES: Dict[str, Path] = {"ComfyUI_examples": CORPUS, "ComfyUI templates": CORPUS / "templates",
                            "community": CORPUS / "community"}


def corpus_files(source: str = "") -> List[Path]:
    """Every corpus workflow, or those of one source (a key of SOURCES)."""
    folders = [SOURCES[source]] if source else list(SOURCES.values())
    return sorted(p for d in folders for p in d.iterdir() if p.suffix == ".json")


def check(path) -> Tuple[bool, str]:
    """(imports and validates, one line saying how)."""
    from app.comfyui import ComfyImportError, import_workflow
    from graph_engine.api import load_workflow
    from graph_engine.errors import WorkflowError
    try:
        result = import_workflow(path)
    except ComfyImportError as e:
        return False, f"not imported: {e}"
    report = result.report
    if report.blocking:
        return False, f"{report.summary()}; not mapped: " + ", ".join(e.class_type for e in report.blocking)
    try:
        load_workflow(text=result.yaml)
    except WorkflowError as e:
        return False, f"{report.summary()}; invalid: {e.problems[0].message}"
    return True, f"{report.summary()}; valid"
