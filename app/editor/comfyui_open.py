"""ComfyUI files (and Deforum settings) in the editor: File > Open and drag and drop go through the same
importer as `kinograph import`, and its report opens beside the canvas. Unmapped nodes arrive as placeholder
nodes (`comfyui.<class_type>`), which the canvas draws in red as missing types."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Tuple

from PySide6.QtCore import QObject, Qt, Signal

from graph_engine.graph import Graph
from graph_engine.registry import default_registry
from graph_engine.workflow import Problem

from .document import FARTHEST, Document, read_workflow


PLACEHOLDER = "comfyui."       # the type the import gives a ComfyUI node it has no equivalent for
COMFY_CANVAS = (1920.0, 980.0)  # the canvas a template's view was saved on: a full-HD browser less ComfyUI's bars


class Imported(NamedTuple):
    graph: Graph
    problems: List[Problem]
    checked: List[Problem]
    registry: object
    report: object
    origin: Path
    view: Optional[Tuple[float, float, float, float, float]] = None


def open_comfyui(path, registry, bypass_unmapped: bool = False) -> Optional[Tuple[Document, object]]:
    """(document, report) when `path` holds a ComfyUI workflow, None when it is a Kinograph file. `bypass_unmapped`
    bypasses the nodes with no equivalent that pass a value on, as `kinograph import --bypass-unmapped` does.

    Raises ComfyImportError (a KinographError) with a message when the file cannot be read."""
    read = read_comfyui(path, registry, bypass_unmapped)
    return None if read is None else to_document(read)


def read_comfyui(path, registry, bypass_unmapped: bool = False) -> Optional[Imported]:
    """The slow part of open_comfyui, with no Qt object, so that it may run off the UI thread: a big template
    took 1 to 3 s (each model file it names is looked for in every model folder) with the window frozen."""
    from app.comfyui import import_workflow, is_comfyui_file
    p = Path(path)
    if not is_comfyui_file(p):
        return None
    registry = registry or default_registry()
    result = import_workflow(p, registry=registry, bypass_unmapped=bypass_unmapped)
    from app.comfyui.cli import read_from_comfyui_input
    # As `kinograph import` writes them: a picture of ComfyUI's input/ folder is read where it is.
    result.report.remarks += read_from_comfyui_input(result.graph, p.resolve().parent)
    wf, problems, checked = read_workflow(result.yaml, None, registry)
    if not result.report.blocking:
        from graph_engine.api import load_workflow
        from graph_engine.errors import WorkflowError
        from app.comfyui.cli import missing_models
        try:
            missing = missing_models(load_workflow(text=result.yaml), p.resolve().parent, result.model_links)
        except WorkflowError:       # the canvas shows what does not validate yet
            missing = []
        result.report.remarks += missing
    # the loaders of model files, footage or pictures not there are a row a file taller on the canvas (they say so
    # there)
    from graph_engine.validate import missing_inputs, missing_models
    from app.precheck import comfyui_inputs
    from nodes.common.models_dirs import model_dirs
    rows = {n: set(params) for n, params in missing_models(wf, registry).items()}
    for n, params in missing_inputs(wf, registry, comfyui_inputs(model_dirs())).items():
        rows.setdefault(n, set()).update(params)
    _unstack(wf.graph, registry, {n: len(names) for n, names in rows.items()})
    return Imported(wf.graph, problems, checked, registry, result.report, p.resolve(), saved_view(p))


def saved_view(path) -> Optional[Tuple[float, float, float, float, float]]:
    """(x, y, zoom, width, height): the scene point at the top left of the view a ComfyUI file was saved with (its
    `extra.ds`: LiteGraph draws a point p at (p + offset) * scale), that view's zoom and the size of the canvas it
    showed (COMFY_CANVAS: the file does not keep it); None when it keeps none."""
    from app.comfyui import comfyui_source
    src = comfyui_source(path)
    data = src.data if src is not None and isinstance(src.data, dict) else {}
    ds = data.get("extra", {}).get("ds") if isinstance(data.get("extra"), dict) else None
    try:
        offset, scale = ds["offset"], float(ds["scale"])
        ox, oy = (offset["0"], offset["1"]) if isinstance(offset, dict) else offset[:2]
        x, y = -float(ox), -float(oy)
    except (TypeError, KeyError, ValueError, OverflowError):     # a number of 400 digits: OverflowError
        return None
    # the view of a stranger's file: infinity or NaN there made Qt's view unusable
    return (x, y, scale, *COMFY_CANVAS) if 0 < scale < float("inf") and max(abs(x), abs(y)) <= FARTHEST else None


def to_document(read: Imported) -> Tuple[Document, object]:
    """The document of what read_comfyui read (on the UI thread: a Document is a Qt object)."""
    doc = Document(read.graph, None, read.registry, read.problems, read.checked)
    doc.origin = read.origin                 # unsaved: Save asks where, the ComfyUI file is never overwritten
    doc.saved_view = read.view
    doc.seeds_as_read = True
    return doc, read.report


def _unstack(g: Graph, registry, missing=None) -> None:
    """ComfyUI's positions were laid out for its node sizes; a Kinograph node is often taller (the
    sampler carries more fields), and would cover the one below it. Move those down. `missing`: node -> how many
    of its model files are not there (a row each on the canvas: Load Text Encoder covered Load VAE)."""
    from .geometry import HEADER_H, PAD, ROW_H, node_size
    from .layout import separate
    pos = {n: tuple(g.ui[n]["pos"]) for n in g.nodes if isinstance((g.ui.get(n) or {}).get("pos"), list)}
    sizes = {n: node_size(registry.get(g.nodes[n].type), bool(g.ui[n].get("collapsed"))) for n in pos}
    fed: dict = {}
    for ins in g.inputs.values():
        for src, sport in ins.values():
            fed.setdefault(src, set()).add(sport)
    for n, (w, h) in sizes.items():
        if registry.get(g.nodes[n].type) is None and not g.ui[n].get("collapsed"):     # a row a socket, as drawn
            sizes[n] = (w, max(h, HEADER_H + 2 * PAD + ROW_H * max(len(g.inputs.get(n, {})), len(fed.get(n, ())))))
    for n, rows in (missing or {}).items():
        if n in sizes and not g.ui[n].get("collapsed"):
            sizes[n] = (sizes[n][0], sizes[n][1] + ROW_H * rows)
    placed = separate(pos, sizes)
    for n, (x, y) in placed.items():
        if (x, y) != pos[n]:
            g.ui[n] = dict(g.ui[n], pos=[round(x), round(y)])
    _hold_members(g, pos, placed, sizes)


def _hold_members(g: Graph, was, placed, sizes) -> None:
    """A group grows to hold the nodes it held in ComfyUI, now that they are taller and moved down: the sampler
    hung out of its group's frame, and dragging or copying the group (which takes what lies wholly inside it)
    left the sampler behind."""
    from .geometry import PORT_R
    edge = PORT_R + 2 + 10          # a node's ports and outline reach past its body; and a little room
    groups = g.ui.get("_groups")
    for key, grp in (groups.items() if isinstance(groups, dict) else ()):
        x0, y0, w, h = grp["rect"]
        held = [n for n, (x, y) in was.items() if x0 <= x <= x0 + w and y0 <= y <= y0 + h]
        right = max([x0 + w] + [placed[n][0] + sizes[n][0] + edge for n in held])
        bottom = max([y0 + h] + [placed[n][1] + sizes[n][1] + edge for n in held])
        groups[key] = dict(grp, rect=[x0, y0, round(right - x0), round(bottom - y0)])


def placeholder_advice(type_name: str) -> Optional[str]:
    """What to do with a placeholder the import left for a ComfyUI node with no Kinograph equivalent (None for
    another type): the editor said to install the node pack that provides it, which no pack does."""
    if not type_name.startswith(PLACEHOLDER):
        return None
    from app.comfyui.mapping import INSTEAD
    name = type_name[len(PLACEHOLDER):]
    return (f"ComfyUI's {name} is {INSTEAD[name]}" if name in INSTEAD else
            f"ComfyUI's {name} has no Kinograph equivalent: replace it with Kinograph nodes that do the same "
            f"(Tab adds one), then delete it")


CANCELLED = object()           # what off_ui_thread returns when the user gave up waiting
BUSY_AFTER_MS = 300            # a quicker import shows no dialog (it would only flash)


class _Finished(QObject):
    finished = Signal()


def off_ui_thread(parent, label: str, fn: Callable, *args):
    """fn(*args) on a worker thread, returned (or its exception raised) here, while the window goes on drawing:
    after a moment a busy dialog, modal to `parent`, says what it waits for, and its Cancel gives up on the
    result (CANCELLED; the work ends unseen). The window cannot be edited meanwhile, so nothing changes the
    graph under what is read."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QProgressDialog
    out: dict = {}
    finished = _Finished()
    loop = QEventLoop()
    finished.finished.connect(loop.quit)        # queued: emitted on the worker thread

    def work():
        try:
            out["value"] = fn(*args)
        except BaseException as e:              # raised again on the UI thread, where the caller handles it
            out["error"] = e
        finished.finished.emit()

    busy = QProgressDialog(label, "Cancel", 0, 0, parent)   # 0..0: a busy bar, the importer counts nothing
    busy.setObjectName("busyImport")
    busy.setWindowTitle("Kinograph")
    busy.setWindowModality(Qt.WindowModal)
    busy.canceled.connect(loop.quit)
    shown = QTimer(busy, singleShot=True, interval=BUSY_AFTER_MS, timeout=busy.show)
    shown.start()
    threading.Thread(target=work, name="kinograph-import", daemon=True).start()
    loop.exec()
    shown.stop()
    busy.canceled.disconnect(loop.quit)
    busy.close()
    busy.deleteLater()
    if "error" in out:
        raise out["error"]
    return out.get("value", CANCELLED)


def _hang_under_status(text) -> None:
    """Lines wrap to the window, continuing under the node's name: unwrapped, what an unmapped node needs
    (its reason and what to use instead) lay past the right edge of an 820 px window, a sideways scroll away."""
    from PySide6.QtGui import QFontMetricsF, QTextCursor
    from app.comfyui.report import STATUS_WIDTH
    indent = QFontMetricsF(text.font()).horizontalAdvance(" " * (STATUS_WIDTH + 1))
    cursor = QTextCursor(text.document())
    cursor.select(QTextCursor.SelectionType.Document)
    fmt = cursor.blockFormat()
    fmt.setLeftMargin(indent)
    fmt.setTextIndent(-indent)
    cursor.mergeBlockFormat(fmt)


def show_report(parent, report, path, reopen=None) -> None:
    """A non-modal window listing what became of every ComfyUI node (or Deforum setting). When every node that
    stops the workflow passes a value on, `reopen()` (opening the file again with them bypassed) gets a button."""
    from PySide6.QtGui import QFontDatabase
    from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextEdit, QVBoxLayout
    dlg = QDialog(parent)
    dlg.setObjectName("comfyuiReport")
    dlg.setWindowTitle(f"Imported from {report.source}: {Path(path).name}")
    lay = QVBoxLayout(dlg)
    head = QLabel(report.summary() + (". Red nodes have no Kinograph equivalent: replace them before running."
                                      if report.blocking else "."))
    head.setWordWrap(True)
    lay.addWidget(head)
    text = QTextEdit()
    text.setPlainText(report.text())
    text.setReadOnly(True)
    text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    _hang_under_status(text)
    lay.addWidget(text)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dlg.close)
    if reopen is not None and report.blocking and all(getattr(e, "bypassable", False) for e in report.blocking):
        # the red nodes only pass a model, conditioning or image on: ComfyUI's bypass runs the rest without them
        bypass = buttons.addButton("Bypass them and open again", QDialogButtonBox.ButtonRole.ActionRole)
        bypass.setObjectName("bypassUnmapped")
        bypass.setToolTip("open the file again with the red nodes bypassed, as ComfyUI bypasses a node: each "
                          "passes its input straight on, and what it did is missing")
        bypass.clicked.connect(lambda: (dlg.close(), reopen()))
    lay.addWidget(buttons)
    dlg.resize(820, 420)
    dlg.show()
    parent._comfyui_report = dlg             # kept alive while shown
