"""The ComfyUI example workflows under tests/data/comfyui, imported and validated: shared by the tests
and bench/comfyui_corpus.py, which prints the count.

Validation waits for the split-file loaders of the model-files issue (load.diffusion_model,
load.text_encoder, load.vae, load.clip_vision): while this Kinograph has none of them, a workflow
whose only problems are those node types being unknown counts as validating, and says so."""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

CORPUS = Path(__file__).resolve().parent / "data" / "comfyui"
SPLIT_LOADERS = ("load.diffusion_model", "load.text_encoder", "load.vae", "load.clip_vision")


def corpus_files() -> List[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.suffix == ".json")


def check(path) -> Tuple[bool, str]:
    """(imports and validates, one line saying how)."""
    from app.comfyui import ComfyImportError, import_workflow
    from graph_engine.api import load_workflow
    from graph_engine.errors import WorkflowError
    from graph_engine.registry import default_registry
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
        reg = default_registry()
        used = {n.type for n in result.graph.nodes.values()}
        missing = {t for t in SPLIT_LOADERS if t not in reg and t in used}
        rest = [p.message for p in e.problems
                if not any(re.search(rf"unknown node type '{re.escape(t)}'", p.message) for t in missing)]
        if rest:
            return False, f"{report.summary()}; invalid: {rest[0]}"
        return True, f"{report.summary()}; valid once {', '.join(sorted(missing))} exist"
    return True, f"{report.summary()}; valid"
