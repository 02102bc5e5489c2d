"""Asking before a run writes outside the workflow's folder (the editor's `--allow-outside`).

A workflow opened from a file or a rendered video may name output paths anywhere; the engine
refuses those (graph_engine.outputs) unless the user agrees. A workflow read out of a video or
picture always lists every path it will write before its first run, like `kinograph run
video.mp4` does. A document built in the editor holds only paths the user typed, so it is not
asked about. Agreement is remembered per document for the paths listed, so a changed path is
asked about again."""
from __future__ import annotations

import weakref
from typing import Callable, List, Optional, Tuple

from graph_engine.outputs import outside_paths, planned_outputs
from graph_engine.workflow import Workflow

_confirmed: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _ask_dialog(parent, listed: List[Tuple[str, str, str, str]]) -> bool:
    from PySide6.QtWidgets import QMessageBox
    lines = "\n".join(f"• {path}  ({nid}{': ' + why if why else ''})" for nid, _, path, why in listed)
    answer = QMessageBox.question(
        parent, "Write these files?",
        f"This workflow came from a file and will write:\n\n{lines}\n\nWrite there? "
        f"(Existing files Kinograph did not write are still never replaced.)",
        QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    return answer == QMessageBox.Yes


ask: Callable[[object, List[Tuple[str, str, str, str]]], bool] = _ask_dialog


def allow_outside_for_run(parent, doc) -> Optional[bool]:
    """The `allow_outside` for a run of `doc`, after asking if needed; None if the user declined."""
    base = doc.path or doc.origin
    if base is None:
        return True
    wf = Workflow(doc.graph, base, render_dir=None if doc.path else doc.render_dir)
    listed = outside_paths(wf, doc.registry)
    if doc.path is None:        # read out of a rendered video or picture: show every output
        specs = {n: doc.registry.get(i.type) for n, i in doc.graph.nodes.items() if doc.registry.get(i.type)}
        outside = {p for _, _, p, _ in listed}
        listed += [(nid, name, p, "") for nid, name, _, p in planned_outputs(wf, specs) if p not in outside]
    if not listed:
        return False
    paths = {p for _, _, p, _ in listed}
    if paths <= _confirmed.get(doc, set()):
        return True
    if not ask(parent, listed):
        return None
    _confirmed[doc] = _confirmed.get(doc, set()) | paths
    return True
