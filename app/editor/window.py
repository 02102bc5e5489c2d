"""The main window: canvas in the middle, library on the left, viewer and properties on the
right, log and run queue below; menus carry every command with its shortcut."""
from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCursor, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow, QMenu, QMessageBox, QTabWidget,
                               QWidget)

from graph_engine.errors import KinographError, WorkflowError
from graph_engine.registry import did_you_mean
from graph_engine.shipped import shipped
from graph_engine.versions import previous_versions
from graph_engine.workflow import NO_NODES_YET, Problem, read_text

from .autosave import Autosaver
from .camera_preview import camera_path_image, is_camera
from .clipboard import NODES_MIME, keep_as_text
from .comfyui_open import placeholder_advice
from .controller import GROUP_COLORS, NOTE_SIZE, Controller, Refused, counted
from .document import Document
from .help_overlay import HelpOverlay
from .model_notes import ModelWarnings
from .outside import allow_outside_for_run
from .panels import LibraryPanel, LogPanel, QueuePanel
from .picker import Picker, pick_params
from .properties import PropertiesPanel
from .runner import Job, NodeStatus, RunController
from .scene import GraphScene
from .settings import EditorSettings
from .thumbs import ThumbLoader
from .view import LOOK_NODES, SOUND_SUFFIXES, GraphView
from .viewer import ViewerPanel

WINDOWS: List["MainWindow"] = []
VIEW_TYPES = ("VIDEO", "IMAGE", "MASK", "CAMERA")
PREVIEW = "preview"          # the properties panel's camera-path picture, as opposed to viewer slots A and B
RAN = ("done", "streaming", "cached", "failed", "skipped")  # a run's badges that an edit since makes 'edited'
WAITING = ("queued",)       # a running job's badge that an edit since its job was queued makes 'edited' (old value)
# The first filter is the one the dialog opens on: everything File > Open reads. It was Kinograph's .yaml alone, and a
# folder of ComfyUI workflows (.json) looked empty to someone coming from ComfyUI.
COMFYUI_FILTER = "ComfyUI workflows (*.json *.png *.webp *.mp4 *.webm)"
FILE_FILTER = ("Workflows, renders and ComfyUI files (*.yaml *.yml *.json *.png *.webp *.mp4 *.mov *.mkv *.webm *.txt);;"
               "Kinograph workflows (*.yaml *.yml);;Rendered files with a workflow (*.mp4 *.mov *.mkv *.webm *.png);;"
               f"{COMFYUI_FILTER};;Deforum settings (*.txt *.json);;All files (*)")


class MainWindow(QMainWindow):
    def __init__(self, doc: Optional[Document] = None, registry=None, settings: Optional[EditorSettings] = None,
                 autosave_ms: Optional[int] = None):
        super().__init__()
        self.setObjectName("KinographMain")
        self.settings = settings or EditorSettings()
        self.autosave_ms = autosave_ms
        doc = doc or Document(registry=registry)
        self.runs = RunController(doc.registry, self)
        self.thumbs = ThumbLoader(self)
        self.doc: Optional[Document] = None
        self.autosaver: Optional[Autosaver] = None
        self._warmed: set = set()                # node types whose libraries a background import has begun
        self._viewing = {}                       # slot -> node id shown there (refreshed on edits)
        self._files = {}                         # slot -> rendered file shown there (reread when a run rewrites it)
        self._follows_runs = False               # viewer A shows what the last run wrote (not asked for)
        self._stale = set()                      # slots to recompute when the refresh timer fires
        self._refresh_view = QTimer(self)
        self._refresh_view.setSingleShot(True)
        self._refresh_view.setInterval(250)
        self._refresh_view.timeout.connect(self._revisit_views)
        # Each node as it was when a run last computed it (done or cached): a node edited since,
        # and what it feeds, is marked 'edited' instead of its old 'done' badge (after a run, an
        # edit left every badge saying done, as if the outputs on disk had the new values).
        self._ran = {}
        # A sampler's thumbnail as it was before its step previews replaced it: put back when its run does not finish
        self._before_previews: Dict[str, Optional[QImage]] = {}
        self._edits = QTimer(self)
        self._edits.setSingleShot(True)
        self._edits.setInterval(0)
        self._edits.timeout.connect(self._mark_edited)

        self.view = GraphView(self.settings, self)
        self.setCentralWidget(self.view)
        self.library = LibraryPanel(doc.registry)
        self.properties = PropertiesPanel()
        self.viewer = ViewerPanel()
        self.log = LogPanel()
        self._model_warnings = ModelWarnings(self.log.log)     # which file a name not found as written reads; config.yaml
        self.queue = QueuePanel(self.runs)
        self.docks = {}
        # The canvas gets most of the window: the library shares the right column with the
        # properties (Tab searches nodes anyway), the viewer sits above them.
        self._dock("Viewer", self.viewer, Qt.RightDockWidgetArea)
        self._dock("Properties", self.properties, Qt.RightDockWidgetArea)
        self._dock("Library", self.library, Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["Properties"], self.docks["Library"])
        self.docks["Properties"].raise_()
        bottom = QTabWidget()
        bottom.setAccessibleName("Log and queue")
        bottom.addTab(self.log, "Log")
        bottom.addTab(self.queue, "Queue && history")
        self.bottom_tabs = bottom
        # Small screens: the panels may be squeezed (their rows clip) rather than push the window,
        # and with it the status bar, off the screen.
        for panel in (bottom, self.viewer, self.properties, self.library):
            panel.setMinimumWidth(220)
        self._dock("Log", bottom, Qt.BottomDockWidgetArea)
        self.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)
        self.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
        self.zoom_label = QLabel()
        self.statusBar().addPermanentWidget(self.zoom_label)

        self.library.addRequested.connect(self._add_from_library)
        self.properties.viewRequested.connect(self.view_node)
        self.properties.runRequested.connect(lambda n: self.run([n]))
        self.properties.whyRequested.connect(self.explain)
        self.properties.previewRequested.connect(lambda n: self.view_node(n, PREVIEW))
        self.properties.backToCanvas.connect(self.view.setFocus)
        self.properties.clipboardRequested.connect(self._clipboard_from_panel)
        self.properties.pickRequested.connect(self.pick)
        self.viewer.pickingEnded.connect(self._picking_ended)
        self.view.viewRequested.connect(self.view_node)
        self.view.contextRequested.connect(self._context_menu)
        self.view.propertyFocusRequested.connect(self._focus_property)
        self.view.fileDropped.connect(self.drop_files)
        self.view.message.connect(self.message)
        self.view.zoomed.connect(self._update_zoom_label)     # it said 100% at any zoom until a node moved
        self.log.nodeClicked.connect(self.go_to_node)
        self.runs.statusChanged.connect(self._status)
        self.runs.logged.connect(self.log.log)
        self.runs.named = self.log.named = self._named
        self.runs.jobFinished.connect(self._job_finished)
        self.runs.warned.connect(lambda warning: self.message(warning.split(". ")[0] + " (details in the log)"))
        self.runs.previewed.connect(self._step_preview)
        self.viewer.frameShown.connect(self._viewed_frame)
        self.queue.openWorkflow.connect(self.open_job)
        self.queue.viewOutput.connect(self.view_file)
        self.viewer.fileDropped.connect(self.view_file)
        self.thumbs.ready.connect(self._thumb)
        self._build_actions()
        self.help = HelpOverlay(self, self.findChildren(QAction))
        self.set_document(doc)
        self.resize(self.sizeHint())
        WINDOWS.append(self)

    # -- layout ---------------------------------------------------------------------------------
    def _dock(self, title: str, widget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock-{title}")
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetClosable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(area, d)
        self.docks[title] = d
        return d

    def _act(self, menu: QMenu, text: str, fn: Callable, keys=None, tip: str = "", checkable=False,
             canvas: bool = False) -> QAction:
        """A menu command; `canvas` ones (single keys like B or Delete) fire only while the canvas has
        the focus, so typing in a panel never bypasses or deletes nodes."""
        a = QAction(text, self)
        if keys:
            a.setShortcuts([QKeySequence(k) for k in (keys if isinstance(keys, (list, tuple)) else [keys])])
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        a.setCheckable(checkable)
        a.triggered.connect(fn)
        menu.addAction(a)
        if canvas:
            a.setShortcutContext(Qt.WidgetWithChildrenShortcut)
            self.view.addAction(a)
        else:
            self.addAction(a)
        return a

    def _build_actions(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._act(f, "&New", self.new_document, "Ctrl+N")
        self._act(f, "&Open…", lambda: self.open_dialog(), "Ctrl+O")
        # Where someone from ComfyUI looks for it; the same as Open, on ComfyUI's files.
        self._act(f, "&Import ComfyUI Workflow…", lambda: self.open_dialog(COMFYUI_FILTER))
        self.recent_menu = f.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.examples_menu = f.addMenu("Open E&xample")
        self.examples_menu.aboutToShow.connect(self._fill_examples)
        self.examples_menu.setToolTipsVisible(True)
        self._act(f, "&Save", self.save, "Ctrl+S")
        self._act(f, "Save &As…", self.save_as, "Ctrl+Shift+S")
        self.versions_menu = f.addMenu("Restore Saved &Version")
        self.versions_menu.aboutToShow.connect(self._fill_versions)
        f.addSeparator()
        self._act(f, "Close Window", self.close, "Ctrl+W")
        self._act(f, "&Quit", self._quit, "Ctrl+Q")

        e = mb.addMenu("&Edit")
        self.undo_action = self._act(e, "&Undo", lambda: self._step_history(-1), "Ctrl+Z")
        self.redo_action = self._act(e, "&Redo", lambda: self._step_history(1), ["Ctrl+Shift+Z", "Ctrl+Y"])
        e.addSeparator()
        # The canvas's, like Delete: with the focus in a panel (a node's help text selected, a
        # choice, the log) Ctrl+X cut the selected node away and Ctrl+C copied it instead of the text.
        self._act(e, "Cu&t", self.cut, "Ctrl+X", canvas=True)
        self._act(e, "&Copy", self.copy, "Ctrl+C", canvas=True)
        self._act(e, "&Paste", self.paste, "Ctrl+V", canvas=True)
        self._act(e, "&Duplicate", self.duplicate, "Ctrl+D", canvas=True)
        self._act(e, "Delete (reconnecting)", lambda: self.delete(True), ["Delete", "Backspace", "X"],
                  "Delete the selection; what fed it is wired to what it fed", canvas=True)
        self._act(e, "Delete without reconnecting", lambda: self.delete(False), "Shift+Delete", canvas=True)
        self._act(e, "Select &All", self._select_all, "Ctrl+A", canvas=True)
        self._act(e, "Rename", self._rename_selected, "F2", canvas=True)

        n = mb.addMenu("&Node")
        self._act(n, "Add Node…", lambda: self.view.open_palette(self.view.mapFromGlobal(QCursor.pos())), "Shift+A", canvas=True)
        # ComfyUI's keys too (Ctrl+B, Alt+C, '.'): someone from there pressed them and nothing happened.
        self._act(n, "Bypass", lambda: self.controller.set_bypass(self._selected("Bypass")), ["B", "Ctrl+B"],
                  canvas=True)
        # ComfyUI's mute (Ctrl+M: the node never runs) has no twin here; bypass is Kinograph's one way to switch a node
        # off, and Ctrl+M did nothing. It bypasses, and says how the two differ.
        self._act(n, "Mute (ComfyUI's Ctrl+M): Bypass", self._mute, "Ctrl+M", canvas=True,
                  tip="Kinograph has no mute: a bypassed node does not run and passes its input on")
        self._act(n, "Collapse / Expand", lambda: self.controller.set_collapsed(self._selected("Collapse")),
                  ["H", "Alt+C"], canvas=True)
        # The keyboard's way to a node it did not just add (arrows alone pan the canvas).
        for label, keys, d in (("Left", "Alt+Left", (-1, 0)), ("Right", "Alt+Right", (1, 0)),
                               ("Above", "Alt+Up", (0, -1)), ("Below", "Alt+Down", (0, 1))):
            self._act(n, f"Select Node {'to the ' if d[1] == 0 else ''}{label}",
                      lambda _=False, d=d: self.view.select_toward(*d), keys, canvas=True)
        self._act(n, "Group Selection", self.group_selection, "Ctrl+G")
        self._act(n, "Add Sticky Note", self.add_note, "N", canvas=True)
        n.addSeparator()
        self._act(n, "View Output (A)", lambda: self._view_selected("A"), "V", canvas=True)
        self._act(n, "View Output (B)", lambda: self._view_selected("B"), "Shift+V", canvas=True)
        self._act(n, "Why Did This Re-run?", lambda: [self.explain(x) for x in self._selected("Why did this re-run")],
                  "W", canvas=True)

        ar = mb.addMenu("&Arrange")
        for mode, label, keys in (("left", "Align Left", "Ctrl+Alt+Left"), ("right", "Align Right", "Ctrl+Alt+Right"),
                                  ("top", "Align Top", "Ctrl+Alt+Up"), ("bottom", "Align Bottom", "Ctrl+Alt+Down"),
                                  ("hcenter", "Align Centres Vertically", None),
                                  ("vcenter", "Align Centres Horizontally", None)):
            self._act(ar, label, lambda _=False, m=mode, t=label: self.controller.align(self._selected(t, 2), m), keys)
        ar.addSeparator()
        self._act(ar, "Distribute Horizontally",
                  lambda: self.controller.distribute(self._selected("Distribute", 3), "horizontal"), "Ctrl+Alt+H")
        self._act(ar, "Distribute Vertically",
                  lambda: self.controller.distribute(self._selected("Distribute", 3), "vertical"), "Ctrl+Alt+V")
        self._act(ar, "Auto-layout", lambda: self.controller.auto_layout(self.scene.selected_nodes() or None), "L", canvas=True)
        self.snap_action = self._act(ar, "Snap to Grid", self._toggle_snap, checkable=True)
        self.snap_action.setChecked(bool(self.settings.get("snap", True)))

        v = mb.addMenu("&View")
        self._act(v, "Frame All", lambda: self.view.frame_all(), "Home", canvas=True)
        self._act(v, "Frame Selected", lambda: self.view.frame_selected(), ["F", "."], canvas=True)
        self._act(v, "Zoom In", lambda: self.view.zoom_by(1.25), ["Ctrl+=", "Ctrl++"])
        self._act(v, "Zoom Out", lambda: self.view.zoom_by(0.8), "Ctrl+-")
        # Zoom In and Out had keys but the way back to the size text is drawn for had none.
        self._act(v, "Zoom to 100%", lambda: self.view.zoom_by(1.0 / self.view.zoom()), "Ctrl+0")
        self._act(v, "Minimap", lambda on: self.view.minimap.setVisible(on), "M", checkable=True, canvas=True).setChecked(True)
        v.addSeparator()
        # Tab on the canvas is the node search, so the keyboard had no way from the canvas to the
        # viewer, the library or the log (Enter reached a node's properties only): F6 goes round
        # the panels, as in a browser or an office suite.
        self._act(v, "Next Panel", lambda: self.focus_panel(1), "F6")
        self._act(v, "Previous Panel", lambda: self.focus_panel(-1), "Shift+F6")
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())

        r = mb.addMenu("&Run")
        run = self._act(r, "Run Workflow", lambda: self.run(), ["Ctrl+Return", "Ctrl+Enter"],
                        "Render every output (Ctrl+Enter); while one runs, this queues another")
        # With nothing selected it rendered the whole workflow, unasked (it can be hours).
        self._act(r, "Run to Selected", lambda: self._selected("Run to Selected") and self.run(self.scene.selected_nodes()),
                  ["Ctrl+Shift+Return", "Ctrl+Shift+Enter"])
        again = self._act(r, "Queue with New Seeds", self.queue_new_seeds, "Ctrl+Alt+Return",
                          "Draw new random seeds and queue another run")
        stop = self._act(r, "Cancel Run", self._cancel_run, "Ctrl+.", "Stop the running job (Ctrl+.)")
        self._act(r, "Cancel All", lambda: self.runs.cancel(clear_queue=True), "Ctrl+Shift+.")
        r.addSeparator()
        self.takes_action = self._act(r, "Keep Earlier Takes", self._toggle_takes, checkable=True,
                                      tip="A render keeps the one it replaces as takes/NAME.001.mp4 beside it; "
                                          "off: it replaces it, as kinograph run --replace does")
        self.takes_action.setChecked(bool(self.settings.get("keep_takes", True)))
        self._toggle_takes(self.takes_action.isChecked(), save=False)

        bar = self.addToolBar("Run")
        bar.setObjectName("RunBar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonTextOnly)
        for a, text in ((run, "▶ Run"), (again, "Queue new seeds"), (stop, "■ Cancel")):
            bar.addAction(a)
            bar.widgetForAction(a).setText(text)
            bar.widgetForAction(a).setAccessibleName(text.lstrip("▶■ "))     # not "black right-pointing triangle"
        self.run_button = bar.widgetForAction(run)
        self.run_button.setObjectName("RunButton")
        self.queue_label = QLabel()
        self.queue_label.setObjectName("QueueState")
        # It names nodes and workflows as titled ('the last run failed at <b>Key</b>'): a QLabel takes a text with a
        # tag in it for HTML, and drew the artist's title bold, or an image, or nothing.
        self.queue_label.setTextFormat(Qt.PlainText)
        bar.addWidget(self.queue_label)
        self.runs.jobsChanged.connect(self._queue_state)
        self._queue_state()

        h = mb.addMenu("&Help")
        self._act(h, "Keyboard Shortcuts", lambda: self.help.toggle(), ["F1", "?"])

    # -- document -------------------------------------------------------------------------------
    @property
    def scene(self) -> GraphScene:
        return self.view.scene()

    def set_document(self, doc: Document) -> None:
        old, old_scene = self.doc, self.view.scene()
        if old_scene is not None:
            self._remember_view()
        if doc.path is not None and doc.saved_view is None:
            # A workflow reopened at the view it was left at (as ComfyUI reopens one), not back at its start
            doc.saved_view = self.settings.view_of(str(doc.path))
        if self.autosaver is not None:
            self.autosaver.stop()
        self.doc = doc
        self.controller = Controller(doc)
        scene = GraphScene(doc, self.controller)
        scene.snapping = bool(self.settings.get("snap", True))
        scene.selectionChanged.connect(self._selection_changed)
        scene.message.connect(self.message)
        scene.layoutChanged.connect(self._update_zoom_label)
        self.view.set_scene(scene)
        self.properties.set_controller(self.controller)
        self.library.expand_categories({s.category for s in map(doc.spec, doc.graph.nodes) if s is not None})
        self.autosaver = Autosaver(doc, self.autosave_ms or 30_000)
        self.autosaver.failed.connect(self._autosave_failed)
        self.autosaver.typed = self._typed_text
        self.autosaver.view = self._canvas_view
        self.autosaver.viewMoved.connect(self._remember_view)
        doc.modifiedChanged.connect(self._update_title)
        doc.pathChanged.connect(self._update_title)
        doc.changed.connect(self._model_changed)
        doc.undo.canUndoChanged.connect(self.undo_action.setEnabled)
        doc.undo.canRedoChanged.connect(self.redo_action.setEnabled)
        # The texts come with the signals: the stack may be half torn down when it sends the last ones.
        doc.undo.undoTextChanged.connect(self._name_undo)
        doc.undo.redoTextChanged.connect(self._name_redo)
        doc.undo.indexChanged.connect(self._viewed_node_back)
        self.undo_action.setEnabled(doc.undo.canUndo())
        self.redo_action.setEnabled(doc.undo.canRedo())
        self._name_undo(doc.undo.undoText())
        self._name_redo(doc.undo.redoText())
        self._viewing, self._stale, self._files = {}, set(), {}
        self._gone = {}                          # slot -> (node, undo index, picture) of a viewed node deleted
        # slot -> (what the picture there was computed from (_signatures), the note it had before an edit put it
        # out of date): an undo back to that graph takes the 'out of date' back
        self._made_from = {}
        self._first_on_seeds = None              # the run queued on the file's own seeds (Document.seeds_as_read)
        self._disk_told = None                   # digest of its file changed on disk that the log already told of
        self._follows_runs = False
        self.viewer.clear()
        if old_scene is not None:
            self._detach(old_scene)
            old_scene.deleteLater()
        if old is not None:
            old.close()
        self._update_title()
        for p in doc.problems:
            # Not 'no nodes yet: add some in the editor (`kinograph gui plan.yaml`)', a terminal's advice, in orange,
            # for a plan saved as notes: the canvas itself says how to add a node.
            if not p.message.startswith(NO_NODES_YET):
                self.log.log("warn", self._problem_said(p), p.node or "")
        self.runs.status.clear()      # badges belong to the graph that ran
        self._ran = {}
        self._before_previews = {}
        self._infos = {}                         # loader -> (its signature, what the run that read it found)
        self.runs.shown = doc
        QTimer.singleShot(0, self.view, self.view.frame_legible)

    def _canvas_view(self) -> Tuple[float, float, float]:
        """(x, y, zoom): the scene point at the canvas' top left, and its zoom."""
        top_left = self.view.mapToScene(0, 0)
        return top_left.x(), top_left.y(), self.view.zoom()

    def _remember_view(self, _view=None) -> None:
        """Where the canvas is, kept in the settings for the workflow's file (not in the file: panning is no edit),
        when the window closes or goes to another workflow and at each autosave tick it moved (a crash skips both)."""
        if self.doc is not None and self.doc.path is not None:
            self.settings.remember_view(str(self.doc.path), self._canvas_view())

    def _detach(self, scene: GraphScene) -> None:
        scene.selectionChanged.disconnect(self._selection_changed)
        scene.close()

    def changeEvent(self, event):
        super().changeEvent(event)
        # Back from the file manager with a model file copied in: the loaders marked missing look again (those
        # alone: every model file looked for at each return to the window would take seconds on a big template).
        if event.type() == QEvent.ActivationChange and self.isActiveWindow() and getattr(self, "scene", None):
            self._look_at_disk()
            marked = [n for n, item in self.scene.nodes.items() if item.missing]
            if marked:
                self.scene.check_models(marked)
                self.properties.files_looked_for()

    def _named(self, node_id: str) -> str:
        return self.controller.named(node_id) if node_id in self.doc.graph.nodes else node_id

    def _problem_said(self, p: Problem) -> str:
        """A problem as the Log says it: its file and line, and its node as the canvas titles it ('node resize: …'
        named an id the canvas shows nowhere; `kinograph validate` keeps the id, which the file holds). A node of a
        type this install lacks keeps its id: its type is its only title, which the problem says already."""
        known = p.node and self.doc.spec(p.node) is not None
        return str(dataclasses.replace(p, node=self._named(p.node))) if known else str(p)

    def _port_named(self, node_id: str, port: str) -> str:
        """'Plate.video': the viewer's name for what it shows, the node as the canvas titles it."""
        return f"{self._named(node_id)}.{port}"

    def _look_at_disk(self) -> None:
        """Back in the window after another program saved its file (a text editor, a git pull): the canvas showed
        what was read before, and Ctrl+Enter rendered settings the file no longer held. Untouched here, the file is
        read again as one undo step; with edits of its own here, those stay and the log says so, once per change."""
        doc = self.doc
        now = doc.digest_on_disk()
        if now is None or now == doc.on_disk or now == self._disk_told:
            return
        name = doc.path.name
        if doc.modified or self._typed_text():
            self._disk_told = now
            self.log.log("warn", f"{name} changed on disk (another program saved it) while you have unsaved edits "
                                 f"here: they stay as they are; Save asks before replacing the file, and Save As keeps "
                                 f"both")
            return
        before = len(doc.graph.nodes)
        try:
            problems = doc.read_again()
        except (WorkflowError, OSError) as e:
            self._disk_told = now
            self.log.log("warn", f"{name} changed on disk but cannot be read now ({e}); the workflow read before "
                                 f"stays open here")
            return
        for p in problems:
            self.log.log("warn", self._problem_said(p), p.node or "")
        said = f"{name} changed on disk (another program saved it): read again as it is there now; Ctrl+Z brings " \
               f"back what was open"
        self.log.log("info", said)
        # A file caught mid-write at a line break reads as valid YAML with fewer nodes: taken without a word, the
        # nodes were gone before anyone noticed.
        fewer = before - len(doc.graph.nodes)
        if fewer > 0:
            said = f"{name}: the file on disk now has {fewer} fewer node{'s' if fewer > 1 else ''}: Undo brings " \
                   f"{'them' if fewer > 1 else 'it'} back"
            self.log.log("warn", said)
        self.message(said)

    def showEvent(self, event):
        super().showEvent(event)
        if not getattr(self, "_laid_out", False):
            self._laid_out = True
            QTimer.singleShot(0, self, self._size_docks)

    def _size_docks(self) -> None:
        side = max(300, min(460, round(self.width() * 0.3)))
        self.resizeDocks([self.docks["Viewer"]], [side], Qt.Horizontal)
        # Tall enough for six finished runs under the tabs: at 110 px the queue & history showed two.
        bottom = self.bottom_tabs.tabBar().sizeHint().height() + self.queue.height_for(6) + 8
        self.resizeDocks([self.docks["Viewer"], self.docks["Log"]], [round(side * 0.75), bottom], Qt.Vertical)
        QTimer.singleShot(0, self, self._fit_queue)

    def _fit_queue(self) -> None:
        # The tabs' frame and the theme's padding are known only once laid out: the estimate above left the
        # themed panel four runs tall. Grow the dock by what the panel still lacks.
        # the page shown (the Log) has the height every page gets; a page not shown keeps a stale one
        lacking = self.queue.height_for(6) - self.bottom_tabs.currentWidget().height()
        if lacking > 0:
            viewer, log = self.docks["Viewer"], self.docks["Log"]
            self.resizeDocks([viewer, log], [viewer.height() - lacking, log.height() + lacking], Qt.Vertical)
        QTimer.singleShot(0, self.view, self.view.frame_legible)       # the canvas has its final size now

    def _update_title(self, *_):
        self.setWindowTitle(f"{self.doc.title}[*] — Kinograph")
        self.setWindowModified(self.doc.modified)

    # Edit > Undo / Redo say which step they take back: after a run that drew new seeds, Ctrl+Z
    # took those back, not the edit the user had in mind, and nothing said so.
    def _name_undo(self, text: str) -> None:
        self.undo_action.setText(f"&Undo {text}" if text else "&Undo")

    def _name_redo(self, text: str) -> None:
        self.redo_action.setText(f"&Redo {text}" if text else "&Redo")

    def _step_history(self, step: int) -> None:
        stack = self.doc.undo
        what = stack.undoText() if step < 0 else stack.redoText()
        if not (stack.canUndo() if step < 0 else stack.canRedo()):
            self.message("Nothing to undo" if step < 0 else "Nothing to redo")
            return
        had = set(self.doc.graph.nodes)
        stack.undo() if step < 0 else stack.redo()
        # Nodes that come back (a delete undone, an add redone) are selected: they came back with
        # nothing selected, and the keyboard, whose keys act on the selection, had lost its place.
        back = [n for n in self.doc.graph.nodes if n not in had]
        if back:
            self.scene.select_nodes(back)
        self.message(f"{'Undone' if step < 0 else 'Redone'}: {what}")

    def _update_zoom_label(self):
        self.zoom_label.setText(f"{counted(len(self.doc.graph.nodes), 'node')} · {round(self.view.zoom() * 100)}%")

    def _autosave_failed(self, text: str) -> None:
        self.log.log("warn", text)
        self.message(text)

    def message(self, text: str) -> None:
        self.statusBar().showMessage(text, 6000)

    def confirm_discard(self) -> bool:
        """True when the document may be replaced or closed (saved, or changes thrown away)."""
        # A prompt still being typed is unsaved work too: applied first, it makes the document
        # modified, so closing asks instead of dropping it with the window.
        self.commit_pending()
        if not self.doc.modified:
            return True
        ans = QMessageBox.question(self, "Unsaved changes", f"Save changes to {self.doc.title}?",
                                   QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        if ans == QMessageBox.Save:
            return self.save()
        return ans == QMessageBox.Discard

    def new_document(self) -> None:
        if self.confirm_discard():
            self.set_document(Document(registry=self.doc.registry))

    def open_dialog(self, selected: str = "") -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open workflow", str(self._dir()), FILE_FILTER, selected)
        if path:
            self.open_path(path)

    def _dir(self) -> Path:
        """Where the file dialogs start: beside the workflow (a render's: where its workflow was made); for
        an untitled one the folder of the last workflow opened or saved, else the home folder. It was the
        folder the editor was started from: a desktop launcher's, or wherever a terminal happened to be."""
        if self.doc.path is not None:
            return self.doc.path.parent
        if self.doc.origin is not None:
            return self.doc.render_dir or self.doc.origin.parent
        return self._known_dir()

    def _known_dir(self) -> Path:
        """The folder of the last workflow opened or saved that can be written to, else the home folder."""
        recent = next((Path(f).parent for f in self.settings.recent_files
                       if Path(f).parent.is_dir() and os.access(Path(f).parent, os.W_OK)), None)
        return recent or Path.home()

    def open_path(self, path, new_window: bool = False, bypass_unmapped: bool = False,
                  warn: bool = False) -> Optional["MainWindow"]:
        """Open a workflow or import a ComfyUI file here (or in a new window). `warn`: a file that cannot be read
        is also said in a message box, for `kinograph gui FILE` run from a file manager (no terminal, no glance at
        the status line)."""
        from .comfyui_open import CANCELLED, off_ui_thread, read_comfyui, show_report, to_document
        # Asked before the import, not after: Cancel there wasted the seconds a big template takes to read.
        if not new_window and not self.confirm_discard():
            return None
        try:
            read = off_ui_thread(self, f"Importing {Path(path).name}…", read_comfyui, path, self.doc.registry,
                                 bypass_unmapped)
            if read is CANCELLED:
                self.message(f"Did not open {Path(path).name}: the import was cancelled")
                return None
            imported = to_document(read) if read else None
            doc = imported[0] if imported else Document.load(Path(path), self.doc.registry)
        except (WorkflowError, KinographError, OSError) as e:
            self.log.log("error", f"cannot open {path}: {e}")
            self.message(f"Cannot open {Path(path).name}: {str(e).splitlines()[0]}")
            if warn:
                print(f"kinograph: cannot open {path}:\n{e}", file=sys.stderr)
                QMessageBox.warning(self, "Cannot open workflow", f"Cannot open {Path(path).name}:\n\n{e}")
            return None
        self.settings.add_recent_file(str(Path(path).resolve()))
        if new_window:
            w = MainWindow(doc, settings=self.settings, autosave_ms=self.autosave_ms)
            w.show()
            if imported:
                show_report(w, imported[1], path, lambda: w.open_path(path, bypass_unmapped=True))
            return w
        self.set_document(doc)
        if imported:
            show_report(self, imported[1], path, lambda: self.open_path(path, bypass_unmapped=True))
        return self

    def drop_files(self, paths: List[str], at: Optional[QPointF] = None) -> None:
        """Files dropped on the canvas: footage and stills become loader nodes where they were dropped
        (the empty canvas invites that drop); a workflow, a ComfyUI file or a render carrying its
        workflow opens, in a new window when this one holds nodes."""
        kinds = [(loader_for(p), p) for p in paths]
        if not all(t for t, _ in kinds):
            self.open_path(next(p for t, p in kinds if t is None), new_window=bool(self.doc.graph.nodes))
            return
        at = at if at is not None else self.view.mapToScene(self.view.viewport().rect().center())
        ids = self._guard(self.controller.add_loaders, kinds, (at.x(), at.y())) or []
        self.scene.select_nodes(ids)
        if ids:
            self.view.setFocus(Qt.OtherFocusReason)
        if ids and all(t in LOOK_NODES.values() for t, _ in kinds):
            self.message(f"Added {', '.join(map(self._named, ids))}: connect footage to {'its' if len(ids) == 1 else 'their'} video "
                         f"input to apply the look")
        elif ids and all(t == "io.load_audio" for t, _ in kinds):
            self.message(f"Added {', '.join(map(self._named, ids))}: connect {'its' if len(ids) == 1 else 'their'} audio to Set Audio "
                         f"(a clip's sound) or Encode Audio (speech)")
        elif ids:
            self.message(f"Added {', '.join(map(self._named, ids))}: connect {'its' if len(ids) == 1 else 'their'} output to use the "
                         f"footage (Ctrl+Shift+click shows it)")

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.recent_files:
            self.recent_menu.addAction(p, lambda p=p: self.open_path(p))
        if not self.settings.recent_files:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _fill_versions(self) -> None:
        self.versions_menu.clear()
        found = previous_versions(self.doc.path) if self.doc.path is not None else []
        for v in found:
            self.versions_menu.addAction(f"As it was before the save at {v.saved:%Y-%m-%d %H:%M:%S}",
                                         lambda v=v: self.restore_version(v))
        if self.doc.path is None:
            self.versions_menu.addAction("(save the workflow first: each later save keeps what it replaces)"
                                         ).setEnabled(False)
        elif not found:
            self.versions_menu.addAction("(none yet: each save that changes the file keeps what it replaces)"
                                         ).setEnabled(False)

    def restore_version(self, version) -> bool:
        """Open an earlier version of this workflow in place of the current graph, as one undo step."""
        when = f"{version.saved:%Y-%m-%d %H:%M:%S}"
        try:
            problems = self.doc.restore(read_text(version.file), f"Restore the version replaced at {when}")
        except (WorkflowError, OSError) as e:
            QMessageBox.warning(self, "Not restored", f"The version kept at {version.file} could not be read: {e}")
            return False
        for p in problems:
            self.log.log("warn", self._problem_said(p))
        self.message(f"Restored the workflow as it was before the save at {when}: Save keeps it, Undo goes back")
        return True

    def _fill_examples(self) -> None:
        # Someone new faced an empty canvas and a file dialog: the examples were in a folder of the
        # source tree they had to know about.
        self.examples_menu.clear()
        for path, name, models in example_workflows(registry=self.doc.registry):
            # Someone with no models opened a Wan example beside the kinograph-mini ones, and learnt at the loader.
            a = self.examples_menu.addAction(f"{name}  ({path.name}{', needs model files' if models else ''})",
                                             lambda p=path: self.open_path(str(p)))
            a.setToolTip(f"needs {', '.join(models)} in your model folders (`kinograph info` lists what they hold)"
                         if models else "runs on the bundled kinograph-mini or no model: nothing to download")
        if self.examples_menu.isEmpty():
            self.examples_menu.addAction("(no examples folder beside this Kinograph)").setEnabled(False)

    def save(self) -> bool:
        if self.doc.path is None:
            return self.save_as()
        return self._save_to(self.doc.path)

    def save_as(self, other: bool = False) -> bool:
        """`other`: the dialog starts on a new name beside the file (which is not to be replaced)."""
        # A workflow read from a render or a ComfyUI file is offered a name beside that file (a past
        # run's copy of a workflow file, another name than the file's own).
        origin = self.doc.origin
        offer = origin and (origin.with_name(f"{origin.stem}-run.yaml") if origin.suffix.lower() in (".yaml", ".yml")
                            else origin.with_suffix(".yaml"))
        if origin and self.doc.render_dir is not None:
            # A render's workflow goes where it was made (examples/, not examples/out/): saved beside the
            # render, its output 'out/x.mp4' would name out/out/x.mp4.
            offer = self.doc.render_dir / f"{origin.stem}.yaml"
            offer = offer.with_name(f"{origin.stem}-run.yaml") if offer.exists() else offer
        if offer and not os.access(offer.parent, os.W_OK):
            # ComfyUI's templates are installed read-only (a Python package): Save there failed.
            offer = self._known_dir() / offer.name
        start = str(self.doc.path or offer or self._dir() / "workflow.yaml")
        if other and self.doc.path is not None:
            start = str(self.doc.path.with_name(f"{self.doc.path.stem}-mine{self.doc.path.suffix}"))
        path, _ = QFileDialog.getSaveFileName(self, "Save workflow", start, "Workflows (*.yaml *.yml)")
        if not path:
            return False
        if Path(path).suffix.lower() not in (".yaml", ".yml"):
            path += ".yaml"
            # The dialog asked about the name typed ('shot'), not this one: an existing shot.yaml
            # was replaced without a word.
            if Path(path).exists() and Path(path).resolve() != self.doc.path:
                ans = QMessageBox.question(self, "Replace the file?",
                                           f"{path} already exists. Replace it with this workflow? No chooses "
                                           f"another name.", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
                if ans != QMessageBox.Yes:
                    return self.save_as()
        return self._save_to(Path(path))

    def _save_to(self, path: Path) -> bool:
        self.commit_pending()
        why = self._overwrite_warning(Path(path))
        if why:
            ans = QMessageBox.question(
                self, "Replace the file?", f"{why}\n\nReplace it with your version? No saves yours under "
                f"another name and leaves that file as it is; Cancel saves nothing.",
                QMessageBox.Yes | QMessageBox.No | QMessageBox.Cancel, QMessageBox.Cancel)
            if ans == QMessageBox.No:
                return self.save_as(other=True)
            if ans != QMessageBox.Yes:
                return False
        try:
            self.doc.save(path)
        except OSError as e:
            QMessageBox.warning(self, "Not saved", f"{e}.\n\nNothing was written and your changes are still "
                                                   f"open here: use File > Save As… to save them somewhere else.")
            return False
        self.settings.add_recent_file(str(self.doc.path))
        if self.doc.version_problem:
            self.log.log("warn", f"{self.doc.version_problem}; File > Restore Saved Version will not offer it")
        self.message(f"Saved {self.doc.path}")
        return True

    def _overwrite_warning(self, path: Path) -> str:
        """Why writing the document over its own file at `path` would lose something, or ''."""
        doc = self.doc
        if path.resolve() != doc.path:
            return ""
        if doc.changed_on_disk():
            return (f"{path} changed on disk since you opened or last saved it here (another program, "
                    f"another window or a git pull wrote it).")
        if doc.unread:
            lines = [f"line {p.line}: {p.message}" if p.line else p.message for p in doc.unread[:6]]
            more = f"\n… and {len(doc.unread) - 6} more (see the log)" if len(doc.unread) > 6 else ""
            return (f"{path} has parts this Kinograph could not read, and saving over it would remove them:\n"
                    + "\n".join(lines) + more)
        return ""

    def open_job(self, job: Job) -> None:
        """A finished run's workflow, exactly as it ran, in a new window (unsaved, so nothing is overwritten)."""
        doc = Document.from_text(job.yaml, None, self.doc.registry)
        doc.origin = job.workflow.path
        doc.seeds_as_read = True            # its seeds made that run's outputs: its first run keeps them
        w = MainWindow(doc, settings=self.settings, autosave_ms=self.autosave_ms)
        w.setWindowTitle(f"run #{job.id}[*] — Kinograph")
        w.show()

    def _quit(self) -> None:
        """Every window asks first, and only then do they close: closed one by one, a Discard answered in the
        first window lost its edits even when Cancel in the second then called the quit off."""
        windows = list(WINDOWS)
        for w in windows:
            if not w.confirm_cancel_runs() or not w.confirm_discard():
                return          # nothing closed: the answers so far only saved what they were told to
        for w in windows:
            w.shutdown()        # asked above: close() then asks nothing more
            w.close()

    def closeEvent(self, event):
        if self not in WINDOWS:
            event.accept()
            return
        if not self.confirm_cancel_runs() or not self.confirm_discard():
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def confirm_cancel_runs(self) -> bool:
        """True when no render of this window is under way, or the user agrees to cancel it: a
        render can be hours of work, and closing the window ends it."""
        runs = [j for j in self.runs.jobs if j.kind == "run" and j.state in ("running", "queued")
                and not j.cancel.cancelled]
        if not runs:
            return True
        what = runs[0].label + (f" and {len(runs) - 1} more queued" if len(runs) > 1 else "")
        ans = QMessageBox.question(self, "Render in progress",
                                   f"{what} is still rendering. Closing this window cancels it (sampled "
                                   f"latents already finished stay in the disk cache). Close and cancel the "
                                   f"render?",
                                   QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return ans == QMessageBox.Yes

    def shutdown(self) -> None:
        """Stop threads and timers and drop the recovery file (the changes were saved or discarded)."""
        if self not in WINDOWS:
            return
        if self.autosaver is not None:
            self.autosaver.stop()
            self.autosaver = None
        self._remember_view()
        self.runs.shutdown()
        self._model_warnings.close()
        self.viewer.shutdown()
        self._detach(self.scene)
        self.doc.close()
        if self in WINDOWS:
            WINDOWS.remove(self)
        if not WINDOWS:
            keep_as_text()

    # -- editing --------------------------------------------------------------------------------
    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except Refused as e:
            self.message(str(e))
            return None

    def _scene_cursor(self) -> Optional[QPointF]:
        p = self.view.mapFromGlobal(QCursor.pos())
        return self.view.mapToScene(p) if self.view.rect().contains(p) else None

    def copy(self) -> str:
        # A value still being typed (Ctrl+D while a canvas field is open) goes with the copy: what
        # was copied was the value from before, while the field showed the new one.
        self.commit_pending()
        nodes, notes, groups = self.scene.selection_with_groups()
        if not nodes and not notes and not groups:
            # An empty workflow on the clipboard replaced what the user had there (a path to paste
            # into a field), and Ctrl+V then said '`nodes:` must be a mapping'.
            self.message("Nothing selected to copy: click a node (or Ctrl+A) first; the clipboard is unchanged")
            return ""
        text = self.controller.copy_text(nodes, notes, groups)
        data = QMimeData()
        data.setText(text)
        data.setData(NODES_MIME, text.encode())
        QGuiApplication.clipboard().setMimeData(data)
        return text

    def _clipboard_from_panel(self, what: str) -> None:
        """Ctrl+C / Ctrl+V in a field of the panel that meant the nodes (param_widgets.route_clipboard)."""
        if what == "copy":
            if self.copy():
                self.message("Copied the selected nodes (no text was selected in the field)")
            return
        ids = self.paste()
        if ids:
            self.view.setFocus(Qt.OtherFocusReason)     # Delete, arrows and Ctrl+D act on what was pasted
            self.message(f"Pasted {counted(len(ids), 'node')} on the canvas: the clipboard held nodes, "
                         f"not text for the field")

    def cut(self) -> None:
        if self.copy():
            # What was copied goes: a group with what lies inside it.
            nodes, notes, groups = self.scene.selection_with_groups()
            self.controller.delete(nodes, notes, groups, self.scene.selected_reroutes(), reconnect=False)

    def paste(self) -> List[str]:
        at = self._scene_cursor()
        groups = set(self.scene.groups)
        ids = self._guard(self.controller.paste, QGuiApplication.clipboard().text(),
                          (at.x(), at.y()) if at is not None else None) or []
        self._show_pasted(ids, groups)
        return ids

    def duplicate(self) -> None:
        self.commit_pending()
        groups = set(self.scene.groups)
        ids = self._guard(self.controller.duplicate, *self.scene.selection_with_groups()) or []
        self._show_pasted(ids, groups)

    def _show_pasted(self, ids: List[str], groups_before: set) -> None:
        """Select what was pasted, its groups with its nodes (the nodes alone, dragged into place, left their frame
        behind), and bring it on screen. Edit > Paste (the cursor off the canvas) puts the nodes where they were
        copied from, which in another window, or this one scrolled away, was off screen: the paste looked as if it
        had done nothing."""
        sc = self.scene
        sc.select_items([sc.nodes[n] for n in ids if n in sc.nodes]
                        + [item for g, item in sc.groups.items() if g not in groups_before])
        if ids:
            self.view.bring_into_sight([self.scene.nodes[n] for n in ids if n in self.scene.nodes])

    def delete(self, reconnect: bool) -> None:
        sc = self.scene
        links = sc.selected_links()
        if links and not sc.selected_nodes():
            self.controller.disconnect(links)
            return
        self.controller.delete(sc.selected_nodes(), sc.selected_notes(), sc.selected_groups(),
                               sc.selected_reroutes(), reconnect=reconnect)

    def _select_all(self) -> None:
        # Sticky notes too: Ctrl+A, Ctrl+C left them out of the copy, Ctrl+A, Delete on the canvas.
        sc = self.scene       # added to what is selected (a group stays so), the window told once
        sc.select_items(sc.selectedItems() + list(sc.nodes.values()) + list(sc.notes.values()))

    def _mute(self) -> None:
        ids = self._selected("Mute")
        if ids:
            self.controller.set_bypass(ids)
            off = self.doc.graph.nodes[ids[0]].bypass
            self.message(("Bypassed" if off else "Enabled again") + ": Kinograph has no mute, Ctrl+M bypasses (B). A "
                         "bypassed node does not run and passes its input on to what reads it, where ComfyUI's muted "
                         "one leaves it nothing")

    def _selected(self, what: str, least: int = 1) -> List[str]:
        """The selected nodes for a command that needs `least` of them; fewer: [] and a message
        saying so (B, V, F2, Ctrl+G... did nothing and said nothing with nothing selected)."""
        ids = self.scene.selected_nodes()
        if len(ids) < least:
            need = "a node" if least == 1 else f"{least} nodes or more"
            self.message(f"{what}: select {need} first (click, Shift+click or drag a box; Ctrl+A for all)")
            return []
        return ids

    def _rename_selected(self) -> None:
        groups = self.scene.selected_groups()
        if len(groups) == 1:
            self.view.rename("group", groups[0])
            return
        ids = self._selected("Rename")
        if len(ids) > 1:
            self.message(f"Rename: select one node ({len(ids)} are selected)")
        elif ids:
            self.view.rename("node", ids[0])

    def group_selection(self) -> None:
        ids = self._selected("Group Selection")
        ui = self.doc.graph.ui
        was = {n: (ui.get(n) or {}).get("pos") for n in self.doc.graph.nodes if n not in ids}
        gid = self.controller.group_selection(ids)
        if gid:
            # Selected with its nodes, not its title opened for typing: the next key (H, B, Delete)
            # acts on the nodes as it did before Ctrl+G, instead of going into the title.
            self.scene.select_nodes(ids)
            self.scene.groups[gid].setSelected(True)
            moved = [self.controller.named(n) for n, p in was.items() if (ui.get(n) or {}).get("pos") != p]
            self.message(f"Grouped {len(ids)} node{'s' if len(ids) > 1 else ''}"
                         + (f"; moved {', '.join(moved)} out of its frame (not selected)" if moved else "")
                         + ": F2 or a double-click on its title names the group")

    def add_note(self) -> None:
        # A field still open on the canvas (a rename, from the menu) kept the keyboard: what was
        # typed for the new note went into that field instead.
        self.view.commit_editor()
        at = self._scene_cursor() or self.view.mapToScene(self.view.viewport().rect().center())
        # Not under the node at the cursor (notes are drawn beneath nodes): its text was hidden as it was typed.
        nid = self.controller.add_note(self.controller.clear_spot((at.x(), at.y(), *NOTE_SIZE)))
        self.view.bring_into_sight([self.scene.notes[nid]])
        self.scene.notes[nid].start_editing()

    def _toggle_takes(self, on: bool, save: bool = True) -> None:
        # Through the environment, as --replace does, so the writers of every run in this editor see it.
        if on:
            if os.environ.get("KINOGRAPH_KEEP_TAKES") == "0":
                del os.environ["KINOGRAPH_KEEP_TAKES"]
        else:
            os.environ["KINOGRAPH_KEEP_TAKES"] = "0"
        if save:
            self.settings.set("keep_takes", on)
            for w in WINDOWS:          # one setting for the process: every window's tick says it
                if w is not self and w.takes_action.isChecked() != on:
                    w.takes_action.blockSignals(True)
                    w.takes_action.setChecked(on)
                    w.takes_action.blockSignals(False)

    def _toggle_snap(self, on: bool) -> None:
        self.scene.snapping = on
        self.settings.set("snap", on)

    def _add_from_library(self, type_name: str) -> None:
        c = self.view.mapToScene(self.view.viewport().rect().center())
        nid = self._guard(self.controller.add_node, type_name, (c.x(), c.y()))
        if nid:
            self.settings.add_recent_node(type_name)
            self.scene.select_nodes([nid])
            # The canvas's keys (Delete, B, Ctrl+D, Enter) act on the node just added, as after
            # the node search: they did nothing while the focus stayed in the library.
            self.view.setFocus(Qt.OtherFocusReason)

    def _focus_property(self, node_id: str, name: str) -> None:
        if self.scene.selected_nodes() != [node_id]:        # (selecting anew rebuilds the panel)
            self.scene.select_nodes([node_id])
        self.docks["Properties"].raise_()
        self.properties.focus_param(name)

    def _panels(self) -> list:
        """The places F6 goes round, in screen order; a closed dock is skipped."""
        docked = {self.viewer: "Viewer", self.properties: "Properties", self.library: "Library",
                  self.bottom_tabs.currentWidget(): "Log"}
        return [p for p in (self.view, *docked) if p is self.view or self.docks[docked[p]].toggleViewAction().isChecked()]

    def focus_panel(self, step: int) -> None:
        panels = self._panels()
        here = QApplication.focusWidget()
        at = next((i for i, p in enumerate(panels) if here is not None and (here is p or p.isAncestorOf(here))), None)
        i = (at + step) % len(panels) if at is not None else (0 if step > 0 else len(panels) - 1)
        panel = panels[i]
        dock = next((d for d in self.docks.values() if d.isAncestorOf(panel)), None)
        if dock is not None:
            dock.raise_()                           # the properties and the library share a dock
        target = {self.view: self.view, self.viewer: self.viewer.canvas,      # the viewer's keys act there
                  self.properties: _first_field(self.properties.widget())}.get(panel)
        if target is None:
            target = panel if panel.focusPolicy() & Qt.TabFocus else _first_field(panel)
        (target or panel).setFocus(Qt.TabFocusReason)
        title = {self.view: "Canvas", self.viewer: "Viewer", self.properties: "Properties", self.library: "Library"}
        self.statusBar().showMessage(f"Keyboard in the {title.get(panel, 'Log')} (F6: next panel)", 3000)

    def _selection_changed(self) -> None:
        ids = self.scene.selected_nodes()
        self.properties.show_selection(ids)
        if len(ids) == 1 and ids[0] in self.runs.status:
            item = self.scene.nodes.get(ids[0])          # its badge: the run's, or 'edited' since
            self.properties.show_status(ids[0], item.status if item is not None else self.runs.status[ids[0]])

    def go_to_node(self, node_id: str) -> None:
        if node_id in self.scene.nodes:
            self.scene.select_nodes([node_id])
            self.view.frame_selected()

    def _context_menu(self, global_pos, node_id: Optional[str], group: Optional[str] = None) -> None:
        m = QMenu(self)
        if node_id is None and group is not None:
            m.addAction("Rename Group", lambda: self.view.rename("group", group))
            colours = m.addMenu("Colour")
            for name, c in zip(("Blue", "Purple", "Green", "Ochre", "Red", "Teal"), GROUP_COLORS):
                colours.addAction(name, lambda c=c: self.controller.update_group(group, color=c))
            m.addAction("Delete Group (keep nodes)", lambda: self.controller.delete(group_ids=[group]))
        elif node_id is not None:
            m.addAction("View Output (A)", lambda: self.view_node(node_id, "A"))
            m.addAction("View Output (B)", lambda: self.view_node(node_id, "B"))
            m.addAction("Run to Here", lambda: self.run([node_id]))
            m.addAction("Why Did This Re-run?", lambda: self.explain(node_id))
            m.addSeparator()
            m.addAction("Bypass", lambda: self.controller.set_bypass(self.scene.selected_nodes()))
            m.addAction("Collapse / Expand", lambda: self.controller.set_collapsed(self.scene.selected_nodes()))
            m.addAction("Duplicate", self.duplicate)
            m.addAction("Group Selection", self.group_selection)
            m.addAction("Delete", lambda: self.delete(True))
        else:
            at = self.view.mapToScene(self.view.mapFromGlobal(global_pos))
            m.addAction("Add Node…", lambda: self.view.open_palette(self.view.mapFromGlobal(global_pos)))
            m.addAction("Add Sticky Note",
                        lambda: self.scene.notes[self.controller.add_note((at.x(), at.y()))].start_editing())
            m.addAction("Paste", self.paste)
            m.addAction("Auto-layout", lambda: self.controller.auto_layout())
            m.addAction("Frame All", self.view.frame_all)
        m.popup(global_pos)

    def _model_changed(self, ev) -> None:
        """Recompute what the viewer shows when something it depends on changed, unless that would
        re-run an expensive node (a sampler): then the viewer says it is out of date instead."""
        if ev.kind == "node_changed" and "bypass" not in ev.data:
            # A rename changes no output: renaming the sampler shown said 'A is out of date: press V'.
            return
        if ev.kind in ("param_changed", "linked", "unlinked", "node_changed", "node_removed") and (
                self._ran or self.runs.current is not None):
            self._edits.start()
        if ev.node in self._infos and ev.kind in ("param_changed", "linked", "unlinked", "node_changed"):
            self._show_info(ev.node)
        self._sync_picker(ev)
        if ev.kind == "node_removed":
            self._viewed_node_gone(ev.node)
            return
        if ev.kind not in ("param_changed", "linked", "unlinked", "node_changed") or not self._viewing:
            return
        g, reg = self.doc.graph, self.doc.registry
        for slot, nid in self._viewing.items():
            needed = g.ancestors([nid])
            if ev.node not in needed:
                continue
            redo = set(needed) & {ev.node, *g.descendants(ev.node)}
            # What a run put on screen unasked waits for the next run (or V): recomputing it at every
            # edit would run jobs the user never started, and re-mark the run's badges.
            if (slot == "A" and self._follows_runs) or any(
                    reg.get(g.nodes[n].type) is not None and reg.get(g.nodes[n].type).expensive for n in redo):
                if slot != PREVIEW:
                    self._mark_out_of_date(slot, nid)
                continue
            self._stale.add(slot)
            self._refresh_view.start()

    def _mark_out_of_date(self, slot: str, nid: str) -> None:
        """'out of date: press V' over the picture in `slot`, unless the graph is again what it was computed from
        (an undo of the edit): then the note it had before. The mark stayed after Ctrl+Z, and V sampled again
        what was on screen."""
        made = self._made_from.get(slot)
        canvas, note = self.viewer.canvas, f"{slot} is out of date: press V to recompute {self._named(nid)}"
        current = self._made_current(slot)
        if made is None or current is None:
            canvas.set_note(note, alert=True)
        elif current:
            if canvas.note == note:
                canvas.set_note(*self._note_under(slot))
        elif canvas.note != note:
            self._made_from[slot] = (made[0], (canvas.note, canvas.alert))
            canvas.set_note(note, alert=True)

    def _made_current(self, slot: str) -> Optional[bool]:
        """Whether the graph again computes in `slot` what its picture was computed from (None: not known)."""
        made, nid = self._made_from.get(slot), self._viewing.get(slot)
        target = self._view_target(nid) if made is not None and nid in self.doc.graph.nodes else None
        if target is None:
            return None
        return made[0] == self._signatures(self.doc.graph, [target[0]])[target[0]]

    def _note_under(self, slot: str) -> tuple:
        """(note, alert) to put back when `slot`'s out-of-date mark goes: the viewer has one note, so what was
        under it may be another slot's mark, true still or gone too (then what was under that). An undo of an
        edit that put A and B out of date left 'A is out of date' up, B's mark having covered A's."""
        under, seen = self._made_from[slot][1], {slot}
        while True:
            other = next((s for s in self._made_from if s not in seen
                          and under[0].startswith(f"{s} is out of date: press V")), None)
            if other is None or self._made_current(other) is False:
                return under
            seen.add(other)
            under = self._made_from[other][1]

    def _shown_from(self, slot: str, graph, node: str) -> None:
        """The picture now in `slot` is `node`'s output as `graph` (a job's) computed it; out of date at once where
        the graph was edited since that job was queued (a prompt changed while the render ran: the render came up
        at the end with nothing over it, looking like the new prompt's), unless a new view of it is on its way."""
        self._made_from[slot] = (self._signatures(graph, [node])[node], (self.viewer.canvas.note, self.viewer.canvas.alert))
        nid = self._viewing.get(slot)
        pending = slot in self._stale or any(j.kind == "view" and j.view[2] == slot and j.state in ("queued", "running")
                                             for j in self.runs.jobs)
        if nid in self.doc.graph.nodes and not pending:
            self._mark_out_of_date(slot, nid)

    def _sync_picker(self, ev) -> None:
        """The picks on screen follow the node's parameters (an undo, a value typed in) and its removal."""
        picker = self.viewer.canvas.picker
        if picker is None or ev.node != picker.node_id:
            return
        if ev.kind == "node_removed":
            self.viewer.stop_picking()
        elif ev.kind == "param_changed":
            picker.set_value(ev.data.get("name"), ev.data.get("value"))
            self.viewer.show_picks()

    def _viewed_node_gone(self, node: str) -> None:
        """The node on screen deleted: its picture is marked as the output of a node that is no more.
        It looked current, and a new node given the same free id took the slot over at its first edit."""
        for slot, nid in list(self._viewing.items()):
            if nid == node and slot != PREVIEW:
                del self._viewing[slot]
                if self.viewer.sources.get(slot) is not None:
                    canvas, at = self.viewer.canvas, self.doc.undo.index()
                    # (A and B deleted together: the note from before the delete, not A's 'was deleted'.)
                    before = next(((n, a) for _, i, _, n, a in self._gone.values() if i == at),
                                  (canvas.note, canvas.alert))
                    self._gone[slot] = (nid, at, self.viewer.sources[slot], *before)
                    canvas.set_note(f"{slot}: {nid} was deleted; this is its last output (Ctrl+Z brings the "
                                    f"node back)", alert=True)

    def _viewed_node_back(self, index: int) -> None:
        """The node deleted from the viewer brought back by an undo (the history back where it was deleted,
        its picture still on screen): the viewer follows it again. It went on saying 'grade was deleted'
        over the node's old picture, and edits to the node were not shown."""
        g, reg = self.doc.graph, self.doc.registry
        for slot, (nid, at, src, note, alert) in list(self._gone.items()):
            if nid in g.nodes and index == at and self.viewer.sources.get(slot) is src:
                del self._gone[slot]
                self._viewing[slot] = nid
                # The graph is as it was when the node went: a sampler's picture is what it was then (with
                # what was said over it), not run again unasked; the rest is recomputed from the cache.
                self.viewer.canvas.set_note(note, alert)
                if not any(getattr(reg.get(g.nodes[n].type), "expensive", False) for n in g.ancestors([nid])):
                    self._stale.add(slot)
                    self._refresh_view.start()
            elif self.viewer.sources.get(slot) is not src:
                del self._gone[slot]            # something else is shown there now

    # -- running --------------------------------------------------------------------------------
    def commit_pending(self) -> None:
        """Edits typed into a field but not yet applied go into the model first: what runs or is
        saved is what the user sees on screen."""
        self.view.commit_editor()
        self.properties.commit_pending()
        for note in self.scene.notes.values():        # a sticky note still being typed
            if note.text_item.editing():
                note.commit_text()

    def _typed_text(self) -> List[tuple]:
        """(node, parameter, text) of each field of the properties typed into and not yet applied,
        ("_notes", note, text) of a sticky note being typed, and ("_meta", "name" or "description", text) of the
        workflow page's fields (a description typed for minutes was lost with a crash)."""
        nid = self.properties.node_id
        typed = [] if nid is None else [(nid, name, text) for name, ed in self.properties.editors.items()
                                         if (text := getattr(ed, "typed", lambda: None)()) is not None]
        typed += [("_meta", key, text) for key, text in self.properties.meta_typed()]
        notes = (self.doc.graph.ui.get("_notes") or {})
        return typed + [("_notes", k, n.text_item.toPlainText()) for k, n in self.scene.notes.items()
                        if n.text_item.editing() and n.text_item.toPlainText() != (notes.get(k) or {}).get("text")]

    def _autosave_before_running(self) -> None:
        """A run or view loads models and drives the GPU inside this process; when that kills it (a driver
        crash, the OOM killer), the edits since the last autosave (up to 30 s: often the prompt just typed
        before Ctrl+Enter) went with it. Written now, they are offered back at the next start."""
        if self.autosaver is not None:
            self.autosaver.tick()

    def run(self, targets: Optional[List[str]] = None) -> Optional[Job]:
        self.commit_pending()
        if not self.doc.graph.nodes:
            self.message("Nothing to run: add nodes first (Tab)")
            return None
        allow = allow_outside_for_run(self, self.doc)
        if allow is None:
            self.message("Run cancelled: it would write outside the workflow's folder")
            return None
        if self._refused_for_missing_files(targets, allow):
            return None
        # The file's seeds are given up when a run has made its picture with them (_job_finished), not when one is
        # queued: one taken off the queue before it started left the next run drawing new ones. A second run
        # queued meanwhile draws (the first one is that picture).
        first = self._first_on_seeds
        as_read = self.doc.seeds_as_read and (first is None or first.state not in ("queued", "running"))
        if not as_read:
            self.controller.next_seeds()
            self.doc.seeds_as_read = False
        self.bottom_tabs.setCurrentWidget(self.log)
        self._autosave_before_running()
        job = self.runs.submit(self.doc, targets=targets, allow_outside=allow)
        job.seeds_as_read = as_read
        if as_read:
            self._first_on_seeds = job
        return job

    def _refused_for_missing_files(self, targets: Optional[List[str]], allow: Optional[bool]) -> list:
        """Refuse a run that needs files that are not there, as `kinograph run` does, before any node runs: each
        file (node, file, where to put it) in the log with a link to its node, and the loaders marked on the
        canvas. The files missing when refused (empty: not refused)."""
        missing = self.doc.missing_files(targets, allow)
        if not missing:
            return []
        self.scene.check_models()
        self.bottom_tabs.setCurrentWidget(self.log)
        # 'or damaged': the same check refuses a model file cut short or saved from a web page (each line says which).
        self.log.log("error", f"Nothing ran: the workflow needs {counted(len(missing), 'file')} that "
                              f"{'is' if len(missing) == 1 else 'are'} not there or damaged:")
        for p in missing:
            self.log.log("error", f"{p.node}: {p.message}", p.node or "")
        # One file: its reason whole. Several: the nodes, as the canvas names them; each reason (600 characters of
        # where it looked and where to put it) is a line of the Log, and joined they ran past the status bar.
        self.message(f"Nothing ran: {counted(len(missing), 'file')} missing or damaged (see the Log): "
                     + (f"{missing[0].node}: {missing[0].message}" if len(missing) == 1 else
                        ", ".join(dict.fromkeys(self.scene.nodes[p.node].label if p.node in self.scene.nodes
                                                else str(p.node) for p in missing))))
        return missing

    def queue_new_seeds(self) -> Optional[Job]:
        """Another variation of the same graph: new random seeds everywhere, queued behind the current run."""
        self.commit_pending()
        allow = allow_outside_for_run(self, self.doc)
        if allow is None or self._refused_for_missing_files(None, allow):
            return None
        self.controller.next_seeds(reroll=True)
        self.doc.seeds_as_read = False
        self._autosave_before_running()
        return self.runs.submit(self.doc, label=f"{self.doc.title} (new seeds)", allow_outside=allow)

    def _cancel_run(self) -> None:
        if self.runs.current is None:
            self.message("Nothing is running")
            return
        self.runs.cancel()

    def _queue_state(self) -> None:
        cur, waiting = self.runs.current, len(self.runs.pending)
        if cur is not None and cur.kind == "view" and cur.state == "running":
            self.viewer.started(cur.view[2])
        text = f"running {cur.label}" if cur else "idle" + self._last_failed()
        if cur is not None and cur.cancel.cancelled:
            # A node stops at its next step; one that has none (a model being read, seconds) runs
            # to its end. The bar said 'running' all that while, and Cancel looked ignored.
            # Named as on the canvas: 'load' said nothing beside a node titled Load kinograph-mini.
            busy = [self.scene.nodes[n].label if n in self.scene.nodes else n
                    for n, st in self.runs.status.items() if st is not None and st.state == "running"]
            text = f"cancelling {cur.label}" + (f" (stops when {', '.join(busy)} ends its step)" if busy else "…")
        self.queue_label.setText(f"  {text}" + (f" · {waiting} queued" if waiting else ""))

    def _last_failed(self) -> str:
        """' · the last run failed at Matte grade …' where this workflow's last run failed: the bar beside ▶ Run read
        'idle' as after a good run, and the failure was in the Log alone (a closed dock) and on a badge off screen."""
        last = next((j for j in reversed(self.runs.history) if j.owner is self.doc), None)
        if last is None or last.state != "failed":
            return ""
        return f" · the last run failed{' at ' + self.runs.failed_nodes(last.failed, last) if last.failed else ''} (see the Log)"

    def _status(self, node_id: str, st) -> None:
        if st is not None and st.state in RAN + WAITING and self._edited_in_run([node_id]):
            st = self._edited(st)
        self._show_status(node_id, st)

    def _show_status(self, node_id: str, st) -> None:
        self.scene.set_status(node_id, st)
        self.properties.show_status(node_id, st)

    def _edited_in_run(self, nodes) -> set:
        """Those of `nodes` the run under way computes from settings changed since it was queued (an edit while it
        ran): a node's badge said 'done' from the moment it finished until the whole run had (minutes of a decode
        after)."""
        job = self.runs.current
        if job is None or job.owner is not self.doc:
            return set()
        ran, g = job.workflow.graph, self.doc.graph
        mine = [n for n in nodes if n in ran.nodes and n in g.nodes]
        then, now = self._signatures(ran, mine), self._signatures(g, mine)
        return {n for n in mine if then[n] != now[n]}

    @staticmethod
    def _edited(st) -> NodeStatus:
        """The badge of a node a run computed, failed on, skipped or still has queued, changed since: the next run
        does it again."""
        if st.state in WAITING:
            return NodeStatus("edited", message="changed since this run was queued: the run under way computes its "
                                                "old value, the next run computes it again")
        if st.state in ("failed", "skipped"):
            verb = "failed on" if st.state == "failed" else "skipped"
            return NodeStatus("edited", message=f"changed since the last run {verb} it: the next run tries it "
                                                f"again. That run said: {st.message}")
        return NodeStatus("edited", message="changed since the last run, which computed it: the next run computes "
                                            "it again")

    def _signature(self, graph, node_id: str):
        inst = graph.nodes[node_id]
        return inst.type, repr(sorted(inst.params.items())), sorted(graph.inputs.get(node_id, {}).items()), inst.bypass

    def _signatures(self, graph, nodes) -> dict:
        """node -> what it computes from: its own settings and links, and those of every node above it. Its own
        alone, a look at the resize (V) after an edit recorded the resize as computed anew, and the save it feeds,
        rendered from the old resize, lost its 'edited'."""
        own = {}

        def of(n):
            if n not in own:
                own[n] = self._signature(graph, n)
            return own[n]
        return {n: tuple((a, of(a)) for a in sorted(graph.ancestors([n]))) for n in nodes}

    def _spent_seeds(self, job: Job) -> bool:
        """Whether `job`, run on the file's own seeds, made its picture with them: it finished a graph that has a
        seed. A Run to Here on the plate counted as the first run, and the render after it drew new seeds."""
        reg, g = self.doc.registry, job.workflow.graph
        return job.state == "done" and any(
            (spec := reg.get(inst.type)) is not None and any(p.kind == "seed" for p in spec.params.values())
            for inst in g.nodes.values())

    def _remember_run(self, job: Job) -> None:
        g = job.workflow.graph
        mine = self.doc.graph.nodes
        ran = []
        for n in g.nodes:
            st = self.runs.status.get(n)
            # (A file shown in the viewer runs as a graph of its own, whose node ids are not this one's.)
            if st is not None and st.state in RAN and n in mine and mine[n].type == g.nodes[n].type:
                ran.append(n)
        self._ran.update(self._signatures(g, ran))
        self._mark_edited()

    def _mark_edited(self) -> None:
        """Badges of nodes a run computed, failed or skipped: 'edited' where the node or something it reads changed
        since (it runs again), the run's own badge where not, or no longer (an undo back). A failed node kept
        'failed' and its reason ('video file not found: nope.mp4') once its path was put right, as if the fix
        had not been taken, and what it feeds 'skipped'."""
        g = self.doc.graph
        now = self._signatures(g, [n for n in self._ran if n in g.nodes])
        dirty = {n for n, sig in now.items() if sig != self._ran[n]}
        shown = [(n, st) for n, st in self.runs.status.items()
                 if st is not None and st.state in RAN + WAITING and n in self.scene.nodes]
        # A queued node is judged against its own job alone: an older run's record of it says nothing of this one.
        dirty = {n for n in dirty if getattr(self.runs.status.get(n), "state", None) not in WAITING}
        dirty |= self._edited_in_run([n for n, _ in shown])
        for n, st in shown:
            self._show_status(n, self._edited(st) if n in dirty else st)

    def why(self, node_id: str) -> str:
        """The engine's reason, and when it is an upstream change, which parameter up there changed."""
        why = self.runs.why(node_id)
        if "changed upstream" not in why:
            return why
        causes = []
        for up in self.doc.graph.ancestors([node_id]):
            if up == node_id:
                continue
            causes += [f"{up}.{r[len('parameter '):]}" for r in self.runs.why(up).split("; ") if r.startswith("parameter ")]
        return why + (": " + "; ".join(causes) if causes else "")

    def explain(self, node_id: str) -> str:
        why = self.why(node_id)
        self.log.log("info", f"why {node_id}: {why}", node_id)
        self.properties.show_status(node_id, self.runs.status.get(node_id), why)
        self.bottom_tabs.setCurrentWidget(self.log)
        return why

    def _step_preview(self, node_id: str, image, status) -> None:
        """Live preview while a sampler runs: on its node, and in the viewer with step and ETA."""
        from .viewer import to_qimage
        if image is None:
            return
        img = to_qimage(image)
        item = self.scene.nodes.get(node_id)
        if item is not None:
            self._before_previews.setdefault(node_id, item.thumb)
            item.set_thumb(img)
        self.viewer.show_live(img, f"{self._named(node_id)} · step {status.badge() if status else ''}")

    def _viewed_frame(self, slot: str, index: int, img: QImage) -> None:
        """The node whose output the viewer shows gets it as its thumbnail (no extra computing): the frame
        stopped at, not each frame played (scaling a 4K frame down took 0.1 s of the GUI thread a frame)."""
        if self.viewer.playing:
            return
        item = self.scene.nodes.get(self._viewing.get(slot, ""))
        if item is not None:
            item.set_thumb(img.scaled(320, 180, Qt.KeepAspectRatio, Qt.SmoothTransformation))

    def _job_finished(self, job: Job) -> None:
        self.viewer.end_live()
        if job.owner is not self.doc:
            return              # a workflow this window no longer shows: its outputs are in the history
        self._put_back_previews()
        if job.seeds_as_read and self._spent_seeds(job):
            # Not given up by a run that made no picture with them (a model not in the folders yet, as ComfyUI
            # refuses such a queue; a cancel; a Run to Here above every seed): the next one still samples them.
            self.doc.seeds_as_read = False
        self._remember_run(job)
        self._clip_info(job)
        if job.kind == "view":
            self._show_view(job)
            return
        self._mark_stale_views(job)
        if job.state == "failed":
            node, why = next(iter(job.failed.items()), (None, job.error))
            self.message(f"Run failed{' at ' + self._named(node) if node else ''}: {first_line(why)}")
        if job.result is None:
            return
        self._reread_files(job)
        self._show_run_values(job)
        written = []
        for nid, res in job.result.results.items():
            spec = self.doc.spec(nid)
            if spec is not None and spec.output and isinstance(res, dict) and res.get("path"):
                self.thumbs.load(nid, str(res["path"]))
                written.append(nid)
        # A run that leaves the viewer empty showed nothing but thumbnails: someone new did not know
        # the picture was a Ctrl+Shift+click away. The viewer now shows what the first writer wrote,
        # from this run's own values (a view job would re-mark every node 'cached').
        empty = "A" not in self._viewing and self.viewer.sources["A"] is None
        if job.state == "done" and job.targets is None and not any(
                getattr(self.doc.spec(n), "output", False) for n in job.workflow.graph.nodes):
            # A first graph of a Test Pattern alone 'finished in 0.01 s' and showed nothing: a whole
            # run computes what saves and metrics read, and there were none.
            hint = ("nothing in this workflow saves or measures anything: add a Save Video (drag from an "
                    "output to empty canvas), or Ctrl+Shift+click a node to see its output")
            self.log.log("warn", hint, "")
            self.message(hint[0].upper() + hint[1:])
        if written and job.state == "done" and (empty or self._follows_runs):
            target = self._view_target(written[0])
            value = (job.result.outputs or {}).get(target[0], {}).get(target[1]) if target else None
            if value is not None:
                self._viewing["A"], self._follows_runs = written[0], True
                self.viewer.set_source("A", value, self._port_named(*target[:2]))
                self._shown_from("A", job.workflow.graph, target[0])

    def _put_back_previews(self) -> None:
        """A sampler cancelled at step 2 of 200, or failed at step 15, kept its last step preview as its thumbnail:
        noise, or a half-made picture, under a 'cancelled' badge, read as its output until the next run. Only a
        node that finished keeps its last step; the others show what they showed before the run."""
        for nid, before in self._before_previews.items():
            st, item = self.runs.status.get(nid), self.scene.nodes.get(nid)
            if item is not None and getattr(st, "state", None) not in ("done", "running"):
                item.set_thumb(before)
        self._before_previews = {}

    def _mark_stale_views(self, job: Job) -> None:
        """A run in which a node shown in the viewer failed, or was not run because something it
        needs failed (a clip moved away): its picture is from before, and says so."""
        for slot, nid in self._viewing.items():
            st = self.runs.status.get(nid)
            if slot == PREVIEW or nid not in job.workflow.graph.nodes or st is None:
                continue
            if st.state in ("failed", "skipped") and self.viewer.sources.get(slot) is not None:
                why = next((f"{self._named(n)}: {m}" for n, m in job.failed.items() if m), st.message)
                self.viewer.canvas.set_note(f"{slot} is out of date: {self._named(nid)} {st.state} in the last run ({why}). "
                                            f"The picture is from before.", alert=True)

    def _clip_info(self, job: Job) -> None:
        """Loaders say what they found (size, rate, length), read from the clip's header, not its frames."""
        if job.result is None:
            return
        for nid, outs in (job.result.outputs or {}).items():
            item = self.scene.nodes.get(nid)
            inst = self.doc.graph.nodes.get(nid)
            if item is None or inst is None or not inst.type.startswith("io.load") or nid not in job.workflow.graph.nodes:
                continue
            for v in outs.values():
                if hasattr(v, "fps") and hasattr(v, "length") and hasattr(v, "width"):
                    self._infos[nid] = (self._signature(job.workflow.graph, nid), clip_info(v))
                    self._show_info(nid)
                    break

    def _show_info(self, nid: str) -> None:
        """A loader's footer only while the loader reads what it was found from: its path changed to
        another clip, it went on saying the first one's '640x272 · 25 fps · 250 fr' (an undo back shows
        it again)."""
        item, (sig, text) = self.scene.nodes.get(nid), self._infos.get(nid, (None, ""))
        if item is not None and nid in self.doc.graph.nodes:
            item.set_info(text if sig == self._signature(self.doc.graph, nid) else "")

    def _thumb(self, node_id: str, img: QImage) -> None:
        item = self.scene.nodes.get(node_id)
        if item is not None:
            item.set_thumb(img)

    # -- viewer ---------------------------------------------------------------------------------
    def _view_selected(self, slot: str) -> None:
        ids = self._selected(f"View Output ({slot})")
        if ids:
            self.view_node(ids[0], slot)

    def _view_target(self, node_id: str):
        """(node, port) whose value shows a node: its first picture-like output; for a writer,
        what it writes (the source of its first input)."""
        g, spec = self.doc.graph, self.doc.spec(node_id)
        if spec is None:
            return None
        for name, p in spec.outputs.items():
            if p.type.name in VIEW_TYPES:
                return node_id, name
        if spec.outputs:
            return node_id, next(iter(spec.outputs))
        for port in spec.inputs:
            if port in g.inputs.get(node_id, {}):
                return g.inputs[node_id][port]
        return None

    def _picture_input(self, node_id: str):
        """(node, port) feeding the node's first picture input (VIDEO or IMAGE), or None."""
        spec, links = self.doc.spec(node_id), self.doc.graph.inputs.get(node_id, {})
        for port, p in (spec.inputs.items() if spec is not None else ()):
            if p.type.name in ("VIDEO", "IMAGE") and port in links:
                return tuple(links[port])
        return None

    def _backdrop(self, target, outputs):
        """The picture a node's mask was made of, among `outputs`, to show the mask over it; None when the
        target is no mask or its picture was not computed."""
        spec = self.doc.spec(target[0]) if target[0] in self.doc.graph.nodes else None
        if spec is None or target[1] not in spec.outputs or spec.outputs[target[1]].type.name != "MASK":
            return None
        src = self._picture_input(target[0])
        return (outputs or {}).get(src[0], {}).get(src[1]) if src else None

    def pick(self, node_id: str) -> None:
        """The node's points and box clicked on the first frame of its picture input, in the viewer: the node's
        mask is shown over that frame as it is edited."""
        spec = self.doc.spec(node_id)
        names = pick_params(spec)
        if not names or node_id not in self.doc.graph.nodes:
            return
        src = self._picture_input(node_id)
        if src is None:
            port = next((n for n, p in spec.inputs.items() if p.type.name in ("VIDEO", "IMAGE")), "video")
            self.message(f"{self._named(node_id)} has no picture to pick on: connect a clip or an image to its {port} input")
            return
        params = self.doc.graph.nodes[node_id].params
        values = {name: params.get(name, spec.params[name].default) for name in names.values()}
        self._warm(spec)
        picker = Picker(node_id, names, values, lambda edits: self._set_picks(node_id, edits))
        self.viewer.start_picking(picker)
        # A picture to click on, not a thumbnail: the viewer takes half the window while picking.
        viewer = self.docks["Viewer"]
        self._before_picking = (viewer.width(), viewer.height())
        wide, tall = max(viewer.width(), self.width() // 2), max(viewer.height(), self.height() * 3 // 5)
        if viewer.isFloating():
            # resizeDocks sizes docked widgets only: a floated viewer stayed the thumbnail it was.
            viewer.resize(wide, tall)
        else:
            self.resizeDocks([viewer], [wide], Qt.Horizontal)
            self.resizeDocks([viewer], [tall], Qt.Vertical)
        target = self._view_target(node_id)
        self.view_node(node_id if target and self._picture_input(target[0]) else src[0], "A")

    def _set_picks(self, node_id: str, edits) -> None:
        """One pick's edits of the node's parameters (a point, and a group for a new object): one undo step."""
        if node_id in self.doc.graph.nodes:
            gesture = self.controller.new_gesture()
            for name, text in edits.items():
                self.controller.set_param(node_id, name, text, gesture)

    def _warm(self, spec) -> None:
        """The node's libraries imported in the background while the user picks (transformers for SAM: seconds
        of CPU its first mask would otherwise wait for). Once a session; a failure is the run's to report."""
        if spec.warm is None or spec.type in self._warmed:
            return
        self._warmed.add(spec.type)

        def warm():
            try:
                spec.warm()
            except Exception:       # noqa: BLE001 - the run that needs them says what is wrong
                pass
        threading.Thread(target=warm, name=f"kinograph-warm-{spec.type}", daemon=True).start()

    def _picking_ended(self) -> None:
        """The viewer back to the size it had before picking."""
        size, self._before_picking = getattr(self, "_before_picking", None), None
        viewer = self.docks["Viewer"]
        if size is not None and viewer.isFloating():
            viewer.resize(*size)
        elif size is not None:
            self.resizeDocks([viewer], [size[0]], Qt.Horizontal)
            self.resizeDocks([viewer], [size[1]], Qt.Vertical)

    def view_node(self, node_id: str, slot: str = "A") -> Optional[Job]:
        self.commit_pending()
        if slot == "A":
            self._follows_runs = False           # the user chose what A shows
        target = self._view_target(node_id)
        if target is None:
            inst = self.doc.graph.nodes.get(node_id)
            if inst is not None and self.doc.spec(node_id) is None:
                # A typo in a hand-written file ('vae.decod') was told to install a node pack.
                close = did_you_mean(inst.type, self.doc.registry)
                advice = placeholder_advice(inst.type)
                self.message(advice.split(": ")[0] + ": replace it to see an output there" if advice else
                             f"{node_id} is of type {inst.type}, which this Kinograph does not have"
                             + (f"{close}: correct the type in the file" if close else
                                ": install the node pack that provides it") + " to see its output")
            else:
                self.message(f"{self._named(node_id)} has nothing to show yet: connect its input")
            return None
        # A mask's picture is computed beside it, to be shown under it (and alone when the mask cannot be).
        picture = self._picture_input(target[0]) if slot != PREVIEW else None
        targets = [target[0]] + ([picture[0]] if picture else [])
        # Checked as a run is: a view of a decoder rendered the sampler's part for minutes, then stopped at a
        # loader whose file was missing. The properties panel's preview asks on its own: it is refused quietly.
        if slot == PREVIEW:
            if self.doc.missing_files(targets):
                return None
        else:
            missing = self._refused_for_missing_files(targets, None)
            if missing:
                # Said in the slot asked for too: the picture there before stayed, read as this node's output.
                self._viewing[slot] = node_id
                self._files.pop(slot, None)
                self.docks["Viewer"].show()
                self.docks["Viewer"].raise_()
                self.viewer.fail(slot, f"{self._named(node_id)} could not be computed: nothing ran, "
                                       + "; ".join(f"{self._named(p.node)}: {p.message}" for p in missing))
                return None
        self._viewing[slot] = node_id
        self._files.pop(slot, None)
        if slot != PREVIEW:
            self.docks["Viewer"].show()
            self.docks["Viewer"].raise_()
        label = self._port_named(target[0], target[1])
        self._autosave_before_running()
        job = self.runs.submit(self.doc, targets=targets, kind="view", label=f"view {label}",
                               view=(target[0], target[1], slot, node_id, label))
        if slot != PREVIEW:
            self.viewer.computing(slot, label, self._waits_for(job))
        return job

    def _waits_for(self, job: Job) -> str:
        """What `job` waits for to start: '' when it runs now, else the job running and how many more before it."""
        cur, pending = self.runs.current, self.runs.pending
        if cur is None or job not in pending:
            return ""
        ahead = pending.index(job)
        return cur.label + (f" and {counted(ahead, 'job')} queued before it" if ahead else "")

    def _revisit_views(self) -> None:
        stale, self._stale = self._stale, set()
        for slot in stale:
            nid = self._viewing.get(slot)
            if slot == PREVIEW and nid != self.properties.node_id:
                del self._viewing[slot]
            elif nid in self.doc.graph.nodes:
                self.view_node(nid, slot)

    def _show_view(self, job: Job) -> None:
        node, port, slot, shown = job.view[:4]
        res = job.result
        value = res.outputs.get(node, {}).get(port) if res is not None else None
        if slot == PREVIEW:
            if is_camera(value):
                self.properties.show_preview(shown, camera_path_image(value))
            return
        if value is None and job.state == "cancelled":
            # Cancelled by the user: the picture before stays. It was wiped for a red 'could not be
            # computed: see the log', as if something had failed.
            self.viewer.cancelled(slot, job.view[4] if len(job.view) > 4 else self._port_named(node, port))
            return
        backdrop = self._backdrop((node, port), res.outputs if res is not None else None)
        if value is None:
            # This job's own failure (a badge left from an earlier run may name another file), and
            # which node it is when not the one shown: 'grade: ... width' sends the user to load.
            why = next((m if n in (node, shown) else f"{self._named(n)}: {m}" for n, m in job.failed.items() if m), "")
            why = why or (job.error.splitlines()[0] if job.error else "see the log")
            picker = self.viewer.canvas.picker
            picture = self._picture_input(shown) if picker is not None and picker.node_id == shown else None
            if picture is not None and backdrop is not None:
                # Points are picked on the picture before the mask can be made (none yet, no model file); what
                # stops the mask is said beside the picking hint, not over the picture being clicked on.
                self.viewer.set_source(slot, backdrop, f"{self._named(shown)}'s picture")
                self.viewer.pick_note(f"No mask yet: {first_line(why)}")
                return
            if picture is not None and picture[0] != node:
                # Refused before anything ran (a model not found): the picture alone, computed on its own.
                self.runs.submit(self.doc, targets=[picture[0]], kind="view", label=f"view {self._named(picture[0])}",
                                 view=(picture[0], picture[1], slot, shown, f"{self._named(shown)}'s picture",
                                       f"No mask yet: {first_line(why)}"))
                return
            self.viewer.fail(slot, f"{self._named(shown)} could not be computed: {why}")
            return
        self.viewer.set_source(slot, value, job.view[4] if len(job.view) > 4 else self._port_named(node, port), backdrop)
        if node in job.workflow.graph.nodes and slot in self._viewing:
            self._shown_from(slot, job.workflow.graph, node)
        if len(job.view) > 5 and job.view[5]:
            picker = self.viewer.canvas.picker
            if picker is not None and picker.node_id == shown:
                self.viewer.pick_note(job.view[5])
            else:
                self.viewer.canvas.set_note(job.view[5])

    def view_file(self, path: str, slot: str = "A", note: str = "") -> Optional[Job]:
        """A rendered file in the viewer (A, or B to compare two takes), decoded by the engine's own loader
        node. The slot shows the file from now on, not a node: a run that writes the file again rereads it."""
        from graph_engine.graph import Graph
        g = Graph()
        p = Path(path)
        three_d = not_drawn(p)
        if three_d:
            # Read as a video it was 'the file is damaged, cut short or not a video', in red.
            self._viewing.pop(slot, None)
            self._files.pop(slot, None)
            self.viewer.fail(slot, three_d, alert=False)
            return None
        still = p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") and not p.is_dir()
        # A Save Audio's render opened from the history was read as a video: 'holds no pictures' in red.
        sound = p.suffix.lower() in SOUND_SUFFIXES and not p.is_dir()
        nid = g.add_node("io.load_image" if still else "io.load_audio" if sound else
                         "io.load_frames" if p.is_dir() else "io.load_video", "file", {"path": str(path)})
        tmp = Document(g, None, self.doc.registry)
        # Named as the file (an earlier take with its folder): two takes side by side both read 'file.video'.
        name = f"{p.parent.name}/{p.name}" if p.parent.name == "takes" else p.name
        self._viewing.pop(slot, None)           # the node shown before no longer owns this slot (or its thumbnail)
        self._files[slot] = p.resolve()
        if slot == "A":
            self._follows_runs = False
        job = self.runs.submit(tmp, targets=[nid], kind="view", label=f"view {p.name}",
                               view=(nid, "image" if still else "audio" if sound else "video", slot, p.name, name,
                                     note), owner=self.doc)
        self.viewer.computing(slot, name, self._waits_for(job))     # a take opened while the next one renders
        tmp.close()
        return job

    def _show_run_values(self, job: Job) -> None:
        """A run computed a node the viewer shows (an expensive one, left 'out of date: press V' at the
        edit): the picture is its value from this run, when the graph it ran is the graph as it is now.
        The viewer kept the old output under that note after the run had made the new one."""
        g, ran = self.doc.graph, job.workflow.graph
        outputs = job.result.outputs or {}
        for slot, nid in list(self._viewing.items()):
            target = self._view_target(nid) if slot != PREVIEW and nid in g.nodes else None
            if target is None or target[0] not in outputs or target[1] not in outputs[target[0]]:
                continue
            if slot == "A" and self._follows_runs:
                continue                        # (what follows runs is set below, from the writer)
            value, shown = outputs[target[0]][target[1]], self.viewer.sources.get(slot)
            if shown is not None and shown.value is value:
                continue                        # on screen already (a view after the edit computed it)
            needed = g.ancestors([target[0]])
            if all(n in ran.nodes and self._signature(ran, n) == self._signature(g, n) for n in needed):
                self.viewer.set_source(slot, value, self._port_named(*target[:2]), self._backdrop(target, outputs))
                self._shown_from(slot, ran, target[0])

    def _reread_files(self, job: Job) -> None:
        """A run that wrote again a file the viewer shows: the viewer showed the render it replaced (its file
        still open, or moved to takes/) as if it were the new one. It rereads it, at the same frame."""
        for nid, res in (job.result.results.items() if job.result is not None else ()):
            if not isinstance(res, dict) or not res.get("path") or nid not in job.result.executed:
                continue
            written = Path(res["path"]).resolve()
            for slot, shown in list(self._files.items()):
                if shown == written:
                    kept = res.get("earlier_take")
                    self.view_file(str(written), slot, f"{slot}: {written.name} was rendered again; this is the new "
                                   f"one" + (f" (the one before is takes/{Path(kept).name})" if kept else ""))

    def sizeHint(self) -> QSize:
        """1600x1000, or less on a smaller screen: the status bar must stay on screen."""
        scr = self.screen().availableGeometry() if self.screen() is not None else None
        if scr is None:
            return QSize(1600, 1000)
        return QSize(min(1600, round(scr.width() * 0.92)), min(1000, round(scr.height() * 0.88)))


MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".fbx")      # io.save_glb's render, and its kin
SPLAT_SUFFIXES = (".spz", ".ply")                                       # io.save_splat's render


def not_drawn(p: Path) -> Optional[str]:
    """What the viewer says of a 3-D file it does not draw (a mesh, a Gaussian splat); None for any other."""
    if p.is_dir() or p.suffix.lower() not in MESH_SUFFIXES + SPLAT_SUFFIXES:
        return None
    splat = ("add splat.render after the node that made it to see pictures of it, or open it in SuperSplat or "
             "another splat viewer (V on that node says its Gaussians)")
    if p.suffix.lower() not in MESH_SUFFIXES:
        return f"{p.name} is a Gaussian splat, which this viewer does not draw: {splat}"
    mesh = ("open it in Blender or another 3-D viewer (V on the node that made it says its vertices and "
            "triangles)")
    if p.suffix.lower() in SPLAT_SUFFIXES:
        return (f"{p.name} is a 3-D mesh or a Gaussian splat, which this viewer does not draw: a mesh, {mesh}; a "
                f"splat, {splat}")
    return f"{p.name} is a 3-D mesh, which this viewer does not draw: {mesh}"
EXAMPLES = shipped("examples")


def example_workflows(folder: Path = EXAMPLES, registry=None) -> List[tuple]:
    """(path, name, models) of the example workflows, by file name; the name is the workflow's own `name:`,
    `models` the model files its nodes name (with a `registry`; none: it needs nothing downloaded)."""
    import yaml
    found = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and isinstance(data.get("nodes"), dict):
            found.append((path, str(data.get("name") or path.stem), _model_files(data["nodes"], registry)))
    return found


def _model_files(nodes: dict, registry) -> List[str]:
    """The values of the model-file parameters (those looked up in the model folders) that `nodes` set."""
    out = []
    for node in nodes.values():
        spec = registry.get(node.get("type")) if registry is not None and isinstance(node, dict) else None
        params = node.get("params") if spec is not None else None
        for name, value in (params.items() if isinstance(params, dict) else ()):
            p = spec.params.get(name)
            if p is not None and p.locate is not None and isinstance(value, str) and value and value not in out:
                out.append(value)
    return out


def loader_for(path) -> Optional[str]:
    """The node that reads a dropped file as footage (io.load_video, io.load_image for a still, io.load_frames
    for a folder of frames) or applies it (color.lut, color.cdl), or None when the file is a workflow to
    open: YAML, ComfyUI, or a render that carries one."""
    from app.comfyui import is_comfyui_file
    from graph_engine.atomic import special_file
    from graph_engine.embedded import read_embedded_workflow
    from graph_engine.workflow import MEDIA_SUFFIXES
    from .view import STILL_SUFFIXES, frames_folder
    p = Path(path)
    suffix = p.suffix.lower()
    if frames_folder(p):
        return "io.load_frames"
    if suffix in SOUND_SUFFIXES:
        return "io.load_audio"          # as ComfyUI makes a LoadAudio of it (the drop was refused)
    if suffix in LOOK_NODES:
        return LOOK_NODES[suffix]
    if suffix not in MEDIA_SUFFIXES | STILL_SUFFIXES or is_comfyui_file(p):
        return None
    if suffix in MEDIA_SUFFIXES and read_embedded_workflow(p) is not None:
        return None
    if suffix in (".gif", ".webp") and not special_file(p):     # animated or not; a pipe would hang the drop
        try:
            from PIL import Image
            with Image.open(p) as im:
                return "io.load_video" if getattr(im, "n_frames", 1) > 1 else "io.load_image"
        except (OSError, ValueError, Image.DecompressionBombError):
            return "io.load_video"          # the loader will say what is wrong with it
    return "io.load_image" if suffix in STILL_SUFFIXES else "io.load_video"


def first_line(text: str) -> str:
    """A message's first line, saying where the rest is when there is more (a model's search path)."""
    lines = text.strip().splitlines() or [""]
    return lines[0] + (" … (the log has the rest)" if len(lines) > 1 else "")


def clip_info(clip) -> str:
    from .viewer import timecode
    return f"{clip.width}×{clip.height} · {clip.fps:g} fps · {clip.length} fr · {timecode(clip.length, clip.fps)}"


def _saved_since(rec) -> str:
    """A note for the recovery question when the workflow's file was written after the autosave (another
    window, another editor): the autosave is then older than the file, and recovering it is a choice."""
    from .document import _digest
    if rec.path is None or rec.on_disk is None:
        return ""
    try:
        if _digest(Path(rec.path).read_bytes()) == rec.on_disk:
            return ""
    except OSError:
        return ""
    return (f"\n\n{rec.path.name} has changed on disk since that session opened or saved it (another window, "
            f"program or a git pull wrote it). Recovering opens the autosaved changes; the file keeps what it "
            f"holds now, and Save asks before replacing it.")


def _first_field(panel):
    """The first field in `panel` that Tab would stop at (one not shown yet, a panel just rebuilt,
    included), or None."""
    def takes(w) -> bool:
        return panel.isAncestorOf(w) and bool(w.focusPolicy() & Qt.TabFocus) and w.isVisibleTo(panel) \
            and w.isEnabled()
    w = panel.nextInFocusChain()
    while w is not None and w is not panel and w is not panel.window():
        if takes(w):
            return w
        w = w.nextInFocusChain()
    return next((w for w in panel.findChildren(QWidget) if takes(w)), None)


def offer_recovery(window: Optional[MainWindow] = None, registry=None,
                   ask: Optional[Callable] = None) -> List[MainWindow]:
    """Offer the crashed sessions' autosaves. A recovered workflow replaces `window`'s document
    when that is the same file or an untouched empty one (never a second window hidden under
    the first); it is marked modified, and its recovery file stays until it is saved or its
    changes are discarded. Declined autosaves are deleted."""
    from .autosave import find_recoveries, recover
    opened = []
    for rec in find_recoveries():
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.saved))
        what = str(rec.path) if rec.path else (f"the workflow from {rec.origin}" if rec.origin else
                                                "an untitled workflow")
        if ask is None:
            ans = QMessageBox.question(window, "Recover unsaved work?",
                                       f"Kinograph closed unexpectedly. Recover the changes to {what} "
                                       f"autosaved at {when}?{_saved_since(rec)}",
                                       QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
            yes = ans == QMessageBox.Yes
        else:
            yes = ask(rec)
        if not yes:
            rec.discard()
            continue
        try:
            doc = recover(rec, registry or (window.doc.registry if window else None))
        except (WorkflowError, OSError) as e:
            QMessageBox.warning(window, "Not recovered", f"The autosave of {what} is unreadable: {e}")
            rec.discard()
            continue
        here = window is not None and window not in opened and (
            (rec.path is not None and window.doc.path == Path(rec.path).resolve()) or
            (window.doc.path is None and not window.doc.modified and not window.doc.graph.nodes))
        if here:
            window.set_document(doc)
            w = window
        else:
            w = MainWindow(doc, settings=window.settings if window else None,
                           autosave_ms=window.autosave_ms if window else None)
            if window is not None:
                w.move(window.pos() + QPoint(40, 40) * (len(opened) + 1))
            w.show()
        w.autosaver.adopt(rec.file)
        w.log.log("warn", f"recovered the changes autosaved at {when}; save to keep them")
        opened.append(w)
    return opened
