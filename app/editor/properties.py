"""The properties panel: the selected node's title, help, run status, and an editor for every
parameter generated from its declaration; with nothing selected, the workflow's name,
description and problems."""
from __future__ import annotations

import html
import os
import re
from typing import Dict, Optional

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QApplication, QCheckBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QScrollArea, QVBoxLayout, QWidget)

from graph_engine.graph import Event
from graph_engine.outputs import is_output_param

from .comfyui_open import placeholder_advice
from .controller import Controller, counted
from .help_text import help_html, help_tip, plain_tip
from .node_item import default_path_text
from .param_widgets import PlainTextField, TextEditor, make_editor, route_clipboard
from .titles import node_title

FRAME_PARAMS = ("frames", "count", "length", "num_frames")


def kept_text(key: str, value, indent: str = "") -> str:
    """A setting of a node kept as it is, as text to read: a ComfyUI node's widgets_values and links were shown as
    Python's reprs ("['Gemini 3.8 Flash', 'I am prompting …\\n\\nI need …']"), a prompt's paragraphs as backslash-n.
    A list or a mapping gives a line to each of its values (a list's numbered), a text its own lines."""
    head, inner = indent + (key if key.endswith(".") else key + ":"), indent + "    "
    if isinstance(value, dict) and value:
        return head + "\n" + "\n".join(kept_text(str(k), v, inner) for k, v in value.items())
    if isinstance(value, (list, tuple)) and value:
        return head + "\n" + "\n".join(kept_text(f"{i}.", v, inner) for i, v in enumerate(value, 1))
    if isinstance(value, str):
        text = value.replace("\n", "\n" + inner) if value else '""'
    else:
        text = "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return f"{head} {text}"


class KeyLink(QLabel):
    """A one-link label that Tab stops at and Enter or Space opens: from the keyboard the rest of a
    node's help ('More about this node') was out of reach."""

    def __init__(self):
        super().__init__()
        self.setFocusPolicy(Qt.StrongFocus)

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Return, Qt.Key_Enter, Qt.Key_Space):
            self.linkActivated.emit("#")
            return
        super().keyPressEvent(event)


LONG_WORD = re.compile(r"\S{24,}")
BREAK_AFTER = re.compile(r"([/\\_.\-])")


def breakable(text: str) -> str:
    """`text` with a zero-width space after each / \\ _ . - of its long words (a path, a model file's name): a
    word-wrapped label is at least as wide as its longest word, and one such word pushed the whole panel past its
    dock's edge, its buttons cut off."""
    return LONG_WORD.sub(lambda m: BREAK_AFTER.sub("\\1\u200b", m.group(0)), text)


class MessageLabel(QLabel):
    """A message that wraps inside its long words too; text() is the message as written, without the breaks."""

    def __init__(self, text: str = ""):
        super().__init__()
        self.setText(text)

    def setText(self, text: str) -> None:
        self._said = text
        super().setText(breakable(text))

    def text(self) -> str:
        return self._said


class PropertiesPanel(QScrollArea):
    viewRequested = Signal(str, str)         # node, slot
    runRequested = Signal(str)               # run up to this node
    whyRequested = Signal(str)
    previewRequested = Signal(str)           # a node whose output draws in the panel (camera paths)
    pickRequested = Signal(str)              # a node whose points or box are to be clicked on its picture
    backToCanvas = Signal()                  # Esc in a field
    clipboardRequested = Signal(str)         # "copy" or "paste" of nodes, asked for in a field

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        # Rows wrap and shrink to the panel's width; a sideways scroll would hide buttons and values.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setObjectName("PropertiesPanel")
        self.setAccessibleName("Properties of the selected node")
        self.controller: Optional[Controller] = None
        self.node_id: Optional[str] = None
        self.editors: Dict[str, QWidget] = {}
        self.status_label: Optional[QLabel] = None
        self.problem_labels: list = []      # (problem found when the workflow was read, its red label)
        self.help_open = False               # a node's whole help shown (More), for every node after
        # The workflow page (shown with nothing selected) validates the whole graph: rebuilt once
        # after an edit, not at each of its events (pasting 200 nodes rebuilt it 300 times: 10 s).
        self._workflow_stale = QTimer(self)
        self._workflow_stale.setSingleShot(True)
        self._workflow_stale.setInterval(0)
        self._workflow_stale.timeout.connect(self._refresh_workflow)
        self._show_empty()

    def set_controller(self, controller: Controller) -> None:
        self.controller = controller
        controller.doc.changed.connect(self._on_event)
        # Save As another name names the writers' default paths anew (out/other.mp4)
        controller.doc.pathChanged.connect(lambda _: self.show_node(self.node_id))
        self.show_node(None)

    @property
    def doc(self):
        return self.controller.doc

    # -- building -------------------------------------------------------------------------------
    def _fresh(self) -> QVBoxLayout:
        w = QWidget()
        w.setObjectName("PropertiesBody")
        lay = QVBoxLayout(w)
        lay.setContentsMargins(10, 10, 10, 10)
        lay.setSpacing(8)
        old = self.takeWidget()
        if old is not None:
            old.deleteLater()
        self.setWidget(w)
        self.editors, self.status_label, self.preview_label, self.problem_labels = {}, None, None, []
        self.missing_labels: Dict[str, QLabel] = {}
        self._meta_edits = None             # the workflow page's name and description fields
        # Whether the page is the workflow's (nothing selected), which an edit rebuilds: node_id is None with
        # several nodes selected too, and an edit (a paste, a link) put the workflow page over 'N nodes selected'.
        self._on_workflow = False
        QTimer.singleShot(0, self, self._fit_height)
        return lay

    def _fit_height(self) -> None:
        """A scroll area sizes its widget by its minimum size, which knows nothing of wrapped text:
        give the body the height its rows need at this width, so they scroll instead of squashing."""
        body = self.widget()
        lay = body.layout() if body is not None else None
        if lay is not None and lay.hasHeightForWidth():
            body.setMinimumHeight(lay.totalHeightForWidth(self.viewport().width()))

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._fit_height()

    def _show_empty(self) -> None:
        lay = self._fresh()
        lay.addWidget(QLabel("Nothing selected"))
        lay.addStretch(1)

    def show_selection(self, node_ids) -> None:
        ids = list(node_ids)
        if len(ids) == 1:
            self.show_node(ids[0])
        elif ids:
            self.node_id = None
            lay = self._fresh()
            lay.addWidget(QLabel(f"<b>{len(ids)} nodes selected</b>"))
            lay.addWidget(QLabel("Align and distribute them from the Arrange menu."))
            lay.addStretch(1)
        else:
            self.show_node(None)

    def show_node(self, node_id: Optional[str]) -> None:
        self.node_id = node_id
        if self.controller is None:
            return
        g = self.doc.graph
        if node_id is None or node_id not in g.nodes:
            self.node_id = None
            self._show_workflow()
            return
        inst, spec = g.nodes[node_id], self.doc.spec(node_id)
        lay = self._fresh()
        head = QHBoxLayout()
        self.title_edit = QLineEdit()
        self.title_edit.setObjectName("TitleEdit")
        self.title_edit.setAccessibleName("Node title")
        self._show_title(node_title(inst, spec))
        self.title_edit.editingFinished.connect(self._retitle)
        head.addWidget(self.title_edit, 1)
        self.bypass_box = QCheckBox("bypass")
        self.bypass_box.setChecked(inst.bypass)
        self.bypass_box.setToolTip("Pass the input through unchanged where the types allow (B)")
        self.bypass_box.toggled.connect(lambda on: self.controller.set_bypass([node_id], on))
        head.addWidget(self.bypass_box)
        lay.addLayout(head)
        sub = QLabel(f"<span style='color:#9a9ca3'>{node_id} · {html.escape(inst.type)}"
                     + (f" v{spec.version} · {html.escape(spec.category)}" if spec else "") + "</span>")
        lay.addWidget(sub)
        if spec is None:
            lay.addWidget(self._error(placeholder_advice(inst.type) or
                                      f"Unknown node type {inst.type!r}: install the node pack that provides it."))
            for p in self.doc.problems:          # e.g. the user's node file that failed to load
                if p.node == node_id and "failed to load" in p.message:
                    lay.addWidget(self._error(p.message))
            lay.addWidget(self._kept(node_id))
            lay.addStretch(1)
            return
        help_label = QLabel()
        # Escaped text with no tag left in it would be taken for plain text and show "&#x27;" for "'".
        help_label.setTextFormat(Qt.RichText)
        help_label.setWordWrap(True)
        help_label.setObjectName("HelpText")
        help_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        lay.addWidget(help_label)
        self._help(help_label, spec, lay)
        buttons = QGridLayout()
        for i, (text, tip, fn) in enumerate( (("View A", "Show this node's output in the viewer (Ctrl+Shift+click)",
                               lambda: self.viewRequested.emit(node_id, "A")),
                              ("View B", "Show it as B, to wipe against A", lambda: self.viewRequested.emit(node_id, "B")),
                              ("Run to here", "Run this node and what it needs (Ctrl+Shift+Enter)",
                               lambda: self.runRequested.emit(node_id)),
                              ("Why re-run?", "What changed since the last run", lambda: self.whyRequested.emit(node_id)))):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(fn)
            buttons.addWidget(b, i // 2, i % 2)
        lay.addLayout(buttons)
        self.preview_label = None
        if any(p.type.name == "CAMERA" for p in spec.outputs.values()):
            self.preview_label = QLabel("computing the camera path…")
            self.preview_label.setObjectName("CameraPreview")
            self.preview_label.setAlignment(Qt.AlignCenter)
            self.preview_label.setMinimumHeight(120)
            lay.addWidget(self.preview_label)
            self.previewRequested.emit(node_id)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setObjectName("StatusText")
        self.status_label.hide()
        lay.addWidget(self.status_label)
        found = self.doc.still_found(node_id)
        self.problem_labels = [(p, self._error(p.message)) for p in self.doc.problems if p.node == node_id]
        for p, label in self.problem_labels:
            lay.addWidget(label)
            label.setHidden(p not in found)      # hidden, not left out: Undo may bring it back
        if spec.inputs:
            ins = ", ".join(f"{n} ({p.type.name}{', optional' if p.optional else ''})" for n, p in spec.inputs.items())
            inputs = QLabel(f"<span style='color:#9a9ca3'>inputs: {html.escape(ins)}</span>")
            inputs.setWordWrap(True)
            lay.addWidget(inputs)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignRight | Qt.AlignVCenter)
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)
        seeds = (g.ui.get(node_id) or {}).get("seed") or {}
        links = g.inputs.get(node_id, {})
        for name, p in spec.params.items():
            if name in links:       # the link's value is used, so no field: typing one would change nothing
                shown = QLabel(f"← {'.'.join(links[name])}")
                shown.setToolTip(f"{links[name][0]} sets {name} through a link; drag the wire away to type it in")
                form.addRow(QLabel(name), shown)
                continue
            ed = make_editor(p, self._committer(node_id, name),
                             seed_mode=seeds.get(name, "fixed"),
                             set_seed_mode=lambda mode, name=name: self.controller.set_seed_mode(node_id, name, mode),
                             base_dir=lambda: self.doc.workflow.base_dir,
                             frames=lambda: self._frames(node_id),
                             pick=lambda: self.pickRequested.emit(node_id))
            route_clipboard(ed, self.clipboardRequested.emit)
            if is_output_param(p):
                # Left out, a writer's path is the workflow file's own: shown greyed in the empty field, not written
                ed.edit.setPlaceholderText(default_path_text(self.doc.workflow, p))
            ed.set_value(inst.params.get(name, None if is_output_param(p) else p.default))
            label = QLabel(name)
            label.setToolTip(help_tip(p.help or name))
            ed.setToolTip(help_tip(p.help))
            form.addRow(label, ed)
            self.editors[name] = ed
            if p.locate is not None or (p.kind == "path" and p.reads):  # its file not there: said under it (_show_missing)
                self.missing_labels[name] = self._error("")
                form.addRow("", self.missing_labels[name])
        lay.addLayout(form)
        self._show_missing()
        lay.addStretch(1)

    def _help(self, label: QLabel, spec, lay: QVBoxLayout) -> None:
        """The node's help: its first paragraph, and the rest behind 'More'. The whole of it came
        first, so a sampler's parameters began 700 px down, below the fold of the panel."""
        full = help_html(spec.help)
        short = help_html(spec.summary)
        if short == full.strip():
            label.setText(full)
            return
        toggle = KeyLink()
        toggle.setObjectName("HelpMore")

        def show(open_: bool) -> None:
            self.help_open = open_
            label.setText(full if open_ else short)
            toggle.setText(f"<a href='#'>{'Less' if open_ else 'More about this node'}</a>")
            QTimer.singleShot(0, self, self._fit_height)
        toggle.linkActivated.connect(lambda _: show(not self.help_open))
        lay.addWidget(toggle)
        show(self.help_open)

    def _show_workflow(self) -> None:
        g = self.doc.graph
        lay = self._fresh()
        self._on_workflow = True
        lay.addWidget(QLabel("<b>Workflow</b>"))
        name = QLineEdit(g.name)
        name.setPlaceholderText("Name")
        name.setAccessibleName("Workflow name")
        name.editingFinished.connect(lambda: self._set_meta(name=name.text()))
        # Applied when the focus leaves it (or Ctrl+Enter), as a prompt is, and before a save or a
        # close: a description typed was saved without it, the workflow marked saved, and lost.
        desc = PlainTextField(lambda: self._set_meta(description=desc.toPlainText()))
        desc.setPlainText(g.description)
        desc.setTabChangesFocus(True)
        desc.setPlaceholderText("Description (Ctrl+Enter to apply)")
        desc.setAccessibleName("Workflow description")
        desc.setFixedHeight(80)
        lay.addWidget(name)
        lay.addWidget(desc)
        self._meta_edits = (name, desc)
        lay.addWidget(QLabel(f"{counted(len(g.nodes), 'node')}, {counted(sum(1 for _ in g.links()), 'link')}"))
        for p in self.doc.validate():
            # The node as the canvas titles it ('resize: …' named an id the canvas shows nowhere); one of a type this
            # install lacks keeps its id, its type being its only title.
            named = self.controller.named(p.node) if p.node and self.doc.spec(p.node) is not None else p.node
            lay.addWidget(self._error(f"{named + ': ' if named else ''}{p.message}"))
        # The model files not there, one line each (the loader's panel says the whole of it): with the import
        # report closed and nothing selected, this page said nothing of them.
        for nid, params in self.doc.missing_models().items():
            for name, m in params.items():
                file = os.path.basename(str(g.nodes[nid].params.get(name, "")).replace("\\", "/"))
                lay.addWidget(self._error(f"{self.controller.named(nid)}: {file} is missing"
                                          + (f": put it in {m.into}" if m.into else "")))
        lay.addStretch(1)

    def _set_meta(self, name=None, description=None) -> None:
        from .ops import SetMeta
        g = self.doc.graph
        if (name is not None and name != g.name) or (description is not None and description != g.description):
            self.doc.push("Edit workflow info", [SetMeta(name, description)])

    def _kept(self, node_id: str) -> QLabel:
        """What a node of an unknown type holds, read-only: the file keeps it and Save writes it back."""
        g = self.doc.graph
        rows = [kept_text(k, v) for k, v in g.nodes[node_id].params.items()]
        rows += [f"{port} ← {src}.{sport}" for port, (src, sport) in g.inputs.get(node_id, {}).items()]
        l = QLabel("Its settings and links are kept as they are:\n" + ("\n".join(rows) or "(none)"))
        l.setTextFormat(Qt.PlainText)
        l.setWordWrap(True)
        l.setTextInteractionFlags(Qt.TextSelectableByMouse)
        return l

    def _error(self, text: str) -> QLabel:
        l = MessageLabel(text)
        l.setTextFormat(Qt.PlainText)       # a message quoting 'video' must read as written
        l.setObjectName("FieldError")
        l.setWordWrap(True)
        return l

    def _frames(self, node_id: str) -> Optional[int]:
        params = self.doc.graph.nodes[node_id].params
        for k in FRAME_PARAMS:
            v = params.get(k)
            if isinstance(v, int) and v > 1:
                return v
        return None

    def _committer(self, node_id: str, name: str):
        def commit(value, gesture=None):
            if node_id in self.doc.graph.nodes:
                self.controller.set_param(node_id, name, value, gesture)
        return commit

    def _retitle(self) -> None:
        if self.node_id is None:
            return
        spec = self.doc.spec(self.node_id)
        text = self.title_edit.text().strip()
        self.controller.set_title(self.node_id, "" if spec and text == spec.title else text)

    # -- model and run updates ------------------------------------------------------------------
    def _on_event(self, ev: Event) -> None:
        if self.node_id is None:
            if self._on_workflow and ev.kind in ("node_added", "node_removed", "linked", "unlinked", "meta_changed"):
                self._workflow_stale.start()
            return
        if ev.node != self.node_id:
            return
        if ev.kind == "node_removed":
            self.show_node(None)
        elif ev.kind in ("linked", "unlinked"):
            spec = self.doc.spec(self.node_id)
            if spec is not None and ev.data["link"].dst_port in spec.params:
                self.show_node(self.node_id)        # a param's field comes or goes with its link
        elif ev.kind == "param_changed" and ev.data.get("name") in self.editors:
            self.editors[ev.data["name"]].set_value(ev.data.get("value"))
        if ev.kind in ("param_changed", "node_changed"):
            self._show_missing()
        if ev.kind in ("param_changed", "linked", "unlinked", "node_changed") and self.problem_labels:
            found = self.doc.still_found(self.node_id)      # the value set right: its red message goes
            for p, label in self.problem_labels:
                label.setHidden(p not in found)
        elif ev.kind == "node_changed":
            inst = self.doc.graph.nodes[self.node_id]
            self.bypass_box.blockSignals(True)
            self.bypass_box.setChecked(inst.bypass)
            self.bypass_box.blockSignals(False)
            spec = self.doc.spec(self.node_id)
            self._show_title(node_title(inst, spec))

    def files_looked_for(self) -> None:
        """The files the canvas marks missing were looked for again (the window come back to): what this page says
        of them follows. The workflow page went on listing a plate as missing once it was copied in."""
        if self.node_id is not None:
            self._show_missing()
        elif self._on_workflow and not self.meta_typed():     # (built again, the page would lose the typing)
            self._workflow_stale.start()

    def meta_typed(self) -> list:
        """("name" or "description", text) of the workflow page's fields typed into and not yet applied."""
        if self.node_id is not None or self._meta_edits is None:
            return []
        name, desc, g = *self._meta_edits, self.doc.graph
        return [(key, text) for key, text, was in (("name", name.text(), g.name),
                                                   ("description", desc.toPlainText(), g.description)) if text != was]

    def _show_missing(self) -> None:
        """Under a model name's field, that its file is not there and where it goes (validate's check, the
        import report's): once the report was closed, nothing said it."""
        if not self.missing_labels:
            return
        missing = self.doc.missing_models([self.node_id]).get(self.node_id, {})
        for name, label in self.missing_labels.items():
            label.setText(missing[name].message if name in missing else "")
            label.setHidden(name not in missing)
        QTimer.singleShot(0, self, self._fit_height)

    def _show_title(self, title: str) -> None:
        """The node's title from its start: a title longer than the field showed its end ('itle that
        somebody typed for their grade'), the cursor being left after the last letter."""
        self.title_edit.setText(title)
        self.title_edit.setCursorPosition(0)
        self.title_edit.setToolTip(plain_tip(title))

    def _refresh_workflow(self) -> None:
        if self._on_workflow and self.node_id is None and self.controller is not None and self.widget() is not None \
                and not self.widget().hasFocus():
            self._show_workflow()

    def show_status(self, node_id: str, status, why: str = "") -> None:
        if node_id != self.node_id or self.status_label is None:
            return
        if status is None:
            self.status_label.hide()
            return
        head = f"running {status.badge()}" if status.state == "running" and status.progress is not None else status.state
        text = f"<b>{html.escape(head)}</b>" + (f" — {html.escape(status.message)}" if status.message else "")
        if why:
            text += f"<br><span style='color:#9a9ca3'>{html.escape(why)}</span>"
        self.status_label.setText(text)
        self.status_label.setProperty("failed", status.state == "failed")
        self.status_label.show()

    def show_preview(self, node_id: str, image) -> None:
        if node_id == self.node_id and self.preview_label is not None:
            w = max(200, self.viewport().width() - 30)
            self.preview_label.setPixmap(QPixmap.fromImage(image).scaledToWidth(w, Qt.SmoothTransformation))

    def commit_pending(self) -> None:
        """Apply what is typed but not yet committed (a prompt still being edited), so a run or a
        save sees exactly what the panel shows."""
        if self.node_id is None and self._meta_edits is not None:
            name, desc = self._meta_edits
            self._set_meta(name=name.text(), description=desc.toPlainText())
        if self.node_id is not None and self.title_edit.isModified():
            self.title_edit.setModified(False)
            self._retitle()
        for ed in list(self.editors.values()):
            ed.flush()

    def focus_param(self, name: str) -> None:
        """The keyboard into parameter `name`, or with "" into the first one (the title when the
        node has none)."""
        ed = self.editors.get(name) or (next(iter(self.editors.values()), None) if not name else None)
        if ed is not None:
            self.ensureWidgetVisible(ed)
            target = getattr(ed, "edit", None) or getattr(ed, "spin", None) or getattr(ed, "box", None) or ed
            target.setFocus(Qt.ShortcutFocusReason)
        elif not name and self.node_id is not None:
            self.title_edit.setFocus(Qt.ShortcutFocusReason)

    def keyPressEvent(self, event):
        if event.key() == Qt.Key_Escape:
            self._drop_typing()
            self.backToCanvas.emit()        # the way back for the keyboard (Enter on a node came here)
            return
        super().keyPressEvent(event)

    def _drop_typing(self) -> None:
        """Esc in a number or one-line field puts back the workflow's value, as Esc does in the same
        field on the canvas: here it applied what was typed (the focus leaving applies), so the run
        used a value given up on. A prompt keeps its typing (applied): a paragraph is not thrown
        away on one key."""
        here = QApplication.focusWidget()
        if self.node_id is None or here is None:
            return
        if here is self.title_edit and here.isModified():
            here.setModified(False)
            inst, spec = self.doc.graph.nodes[self.node_id], self.doc.spec(self.node_id)
            self._show_title(node_title(inst, spec))
            return
        for name, ed in self.editors.items():
            if ed.isAncestorOf(here) and ed.pending() and not isinstance(ed, TextEditor):
                spec = self.doc.spec(self.node_id)
                edit = getattr(ed, "edit", None)
                if isinstance(edit, QLineEdit):
                    edit.setModified(False)
                p = spec.params[name]
                ed.set_value(self.doc.graph.nodes[self.node_id].params.get(name, None if is_output_param(p) else p.default))
