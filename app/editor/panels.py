"""The smaller docks: the node library (by category; drag onto the canvas or double-click),
the log (click a node name to go to it), and the run queue with the output history."""
from __future__ import annotations

import html
import time
from typing import Callable, Optional

from PySide6.QtCore import QEvent, QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QDrag, QFontMetricsF
from PySide6.QtWidgets import (QHBoxLayout, QLineEdit, QListWidget, QListWidgetItem, QPushButton,
                               QTextBrowser, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from . import fuzzy
from .help_text import help_tip, plain_tip
from .runner import Job, RunController
from .view import NODE_MIME

TYPE_ROLE = Qt.UserRole
LABEL_ROOM = 48                # characters of a run's label in the queue and the history


class _NodeTree(QTreeWidget):
    def startDrag(self, actions):
        item = self.currentItem()
        t = item.data(0, TYPE_ROLE) if item else None
        if not t:
            return
        mime = QMimeData()
        mime.setData(NODE_MIME, t.encode())
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.exec(Qt.CopyAction)


class LibraryPanel(QWidget):
    addRequested = Signal(str)

    def __init__(self, registry, parent=None):
        super().__init__(parent)
        self.registry = registry
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter…")
        self.filter.setAccessibleName("Filter the node library")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.refresh)
        # From the keyboard as the node search works: Enter adds the first match, Down goes to the
        # list (Enter in the filter did nothing, Down stayed in it).
        self.filter.returnPressed.connect(self._add_first)
        self.filter.installEventFilter(self)
        self.tree = _NodeTree()
        self.tree.setHeaderHidden(True)
        self.tree.setAccessibleName("Node library")
        self.tree.setAccessibleDescription("Enter adds the node")
        self.tree.setDragEnabled(True)
        self.tree.itemActivated.connect(self._activated)
        lay.addWidget(self.filter)
        lay.addWidget(self.tree)
        self.refresh()

    def refresh(self) -> None:
        q = self.filter.text().strip()
        specs = [self.registry.get(t) for t in self.registry]
        if q:
            specs = [s for _, s in fuzzy.rank(q, specs, fuzzy.spec_fields)]
        self._best = specs[0].type if q and specs else None     # what Enter adds
        self.tree.clear()
        cats = {}
        for s in sorted(specs, key=lambda s: (s.category, s.title)):
            if s.category not in cats:
                cats[s.category] = QTreeWidgetItem(self.tree, [s.category])
                cats[s.category].setFlags(Qt.ItemIsEnabled)
            it = QTreeWidgetItem(cats[s.category], [s.title])
            it.setData(0, TYPE_ROLE, s.type)
            it.setToolTip(0, help_tip(f"{s.type}\n\n{s.help}"))
        self.tree.expandAll() if q else self.tree.collapseAll()
        if not q and len(cats) <= 6:
            self.tree.expandAll()

    def expand_categories(self, names) -> None:
        for i in range(self.tree.topLevelItemCount()):
            it = self.tree.topLevelItem(i)
            it.setExpanded(it.text(0) in names)

    def _first_leaf(self):
        """The best match of the filter (the list is by category), else the first node listed."""
        first = None
        for i in range(self.tree.topLevelItemCount()):
            cat = self.tree.topLevelItem(i)
            for j in range(cat.childCount()):
                if cat.child(j).data(0, TYPE_ROLE) == self._best:
                    return cat.child(j)
                first = first or cat.child(j)
        return first

    def _add_first(self) -> None:
        if self._best:
            self.addRequested.emit(self._best)

    def eventFilter(self, obj, event):
        if obj is self.filter and event.type() == QEvent.KeyPress and event.key() == Qt.Key_Down:
            leaf = self._first_leaf()
            if leaf is not None:
                self.tree.setFocus(Qt.TabFocusReason)
                self.tree.setCurrentItem(leaf)
                return True
        return False

    def _activated(self, item, _col=0) -> None:
        t = item.data(0, TYPE_ROLE)
        if t:
            self.addRequested.emit(t)


class LogPanel(QTextBrowser):
    nodeClicked = Signal(str)
    COLORS = {"info": "#c8cad0", "warn": "#e0b050", "error": "#ff7a66"}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setObjectName("LogPanel")
        self.setAccessibleName("Log")
        self.anchorClicked.connect(lambda url: self.nodeClicked.emit(url.toString()[len("node:"):])
                                   if url.toString().startswith("node:") else None)
        self.document().setMaximumBlockCount(2000)
        self.named: Callable[[str], str] = str      # a node as the canvas titles it (the window's)

    def sizeHint(self):
        return QSize(600, 120)

    def _line_height(self) -> float:
        block = self.document().firstBlock()
        layout = block.layout()
        if layout is not None and layout.lineCount():
            return layout.lineAt(0).height()
        return QFontMetricsF(self.font()).lineSpacing()

    def fit_lines(self) -> None:
        """Make the visible height a whole number of lines (the rest is a strip below them): scrolled to
        the newest line, the panel showed the top line cut in half, whatever height the dock had."""
        lh = self._line_height()
        if lh <= 0:
            return
        full = self.viewport().height() + self.viewportMargins().bottom()
        spare = int(round((full - self.document().documentMargin()) % lh))
        if spare != self.viewportMargins().bottom():
            self.setViewportMargins(0, 0, 0, spare)
            self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())

    def resizeEvent(self, e):
        super().resizeEvent(e)
        self.fit_lines()

    def log(self, level: str, text: str, node: str = "") -> None:
        stamp = time.strftime("%H:%M:%S")
        body = html.escape(text).replace("\n", "<br>")
        if node:
            link = f"<a href='node:{html.escape(node)}' style='color:#5aa9ff'>go to {html.escape(self.named(node))}</a>"
            body += f" &nbsp;{link}"
        color = self.COLORS.get(level, self.COLORS["info"])
        self.append(f"<span style='color:#6b6e75'>{stamp}</span> <span style='color:{color}'>{body}</span>")


def middle(label: str, room: int = LABEL_ROOM) -> str:
    """A run's label cut in its middle to `room` characters: a file named for its shot, version and review
    ('sh010_comp_v012_final_FINAL_with_the_new_flare_…_tuesday.yaml') pushed what the run wrote, the end of its
    row in the history, out of sight behind a sideways scrollbar. Its start and end say which it is."""
    if len(label) <= room:
        return label
    head = (room - 1) // 2
    return label[:head] + "…" + label[-(room - 1 - head):]


class QueuePanel(QWidget):
    """Queued and running jobs on top, finished runs below; a finished run reopens with the
    exact workflow that made it, and its outputs open in the viewer."""
    openWorkflow = Signal(object)     # Job
    viewOutput = Signal(str, str)     # path, viewer slot (A, or B to compare with what A shows)

    def __init__(self, runs: RunController, parent=None):
        super().__init__(parent)
        self.runs = runs
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.queue = QListWidget()
        self.queue.setMinimumHeight(30)
        self.queue.setToolTip("Queued and running jobs")
        self.queue.setAccessibleName("Queued and running jobs")
        self.history = QListWidget()
        self.history.setMinimumHeight(30)
        self.history.setToolTip("Finished runs: double-click to open the workflow that made them")
        self.history.setAccessibleName("Finished runs")
        self.history.itemDoubleClicked.connect(lambda it: self._open(it))
        row = QHBoxLayout()
        self.cancel_button = QPushButton("Cancel run")
        self.cancel_button.clicked.connect(lambda: runs.cancel())
        self.clear_button = QPushButton("Cancel all")
        self.clear_button.clicked.connect(lambda: runs.cancel(clear_queue=True))
        self.open_button = QPushButton("Open workflow")
        self.open_button.setToolTip("Open the workflow exactly as this run used it")
        self.open_button.clicked.connect(lambda: self._open(self.history.currentItem()))
        self.view_button = QPushButton("View output")
        self.view_button.setToolTip("Show the run's render in the viewer (A)")
        self.view_button.clicked.connect(lambda: self._view("A"))
        # Two takes compared: one in A, this one in B (the viewer's wipe, side by side or difference).
        self.view_b_button = QPushButton("View in B")
        self.view_b_button.setToolTip("Show the run's render in the viewer's B, to compare it with A")
        self.view_b_button.clicked.connect(lambda: self._view("B"))
        for b in (self.cancel_button, self.clear_button, self.open_button, self.view_button, self.view_b_button):
            row.addWidget(b)
        lists = QHBoxLayout()
        lists.addWidget(self.queue, 1)
        lists.addWidget(self.history, 2)
        lay.addLayout(lists, 1)
        lay.addLayout(row)
        runs.jobsChanged.connect(self.refresh)
        self.refresh()

    def height_for(self, rows: int) -> int:
        """The panel's height with `rows` finished runs in view: the button row, margins and frames, the rows."""
        h = self.history
        if h.count():
            row = h.sizeHintForRow(0)
        else:
            # An empty list's row measured on a probe row, not from the font: the theme pads each row (20 px
            # against the font's 14), and the panel sized from the font showed four runs, not six.
            h.ensurePolished()
            h.addItem("✔ 00:00:00  #0")
            row = h.sizeHintForRow(0)
            h.takeItem(0)
        m = self.layout().contentsMargins()
        return (m.top() + m.bottom() + self.layout().spacing() + self.open_button.sizeHint().height()
                + 2 * h.frameWidth() + rows * row)

    def refresh(self) -> None:
        self.queue.clear()
        for j in self.runs.jobs:
            if j.state in ("queued", "running"):
                it = QListWidgetItem(f"{'▶' if j.state == 'running' else '…'} #{j.id} {middle(j.label)}")
                it.setToolTip(plain_tip(j.label))
                self.queue.addItem(it)
        self.history.clear()
        for j in reversed(self.runs.history):
            mark = {"done": "✔", "failed": "✘", "cancelled": "■"}.get(j.state, "?")
            when = time.strftime("%H:%M:%S", time.localtime(j.finished_at))
            outs = ", ".join(o.rsplit("/", 1)[-1] for o in j.outputs) or "no files"
            it = QListWidgetItem(f"{mark} {when}  #{j.id} {middle(j.label)} — {outs}")
            it.setData(TYPE_ROLE, j.id)
            it.setToolTip(plain_tip("\n".join([j.label, *j.outputs] if j.outputs else [j.label, j.error or j.state])))
            self.history.addItem(it)
        self.cancel_button.setEnabled(self.runs.current is not None)

    def _job(self, item) -> Optional[Job]:
        jid = item.data(TYPE_ROLE) if item else None
        return next((j for j in self.runs.jobs if j.id == jid), None)

    def _open(self, item) -> None:
        job = self._job(item)
        if job is not None:
            self.openWorkflow.emit(job)

    def _view(self, slot: str = "A") -> None:
        job = self._job(self.history.currentItem())
        if job is not None and job.outputs:
            self.viewOutput.emit(job.outputs[0], slot)
