"""The canvas view: pan (middle mouse or Space-drag), zoom under the cursor, frame all/selected,
rubber-band selection, Alt-drag (or Ctrl+right-drag) to cut links, Tab or double-click for the
node search, drops of node types and of workflow files, inline field editors, and the minimap."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QEvent, QLineF, QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsTextItem, QGraphicsView, QLabel, QLineEdit, QMenu

from graph_engine.workflow import MEDIA_SUFFIXES
from graph_engine.placeholders import param_value

from . import rules, theme
from .clipboard import holds_nodes
from .controller import Refused
from .decor_items import GroupItem
from .geometry import FAR_ZOOM, GRID, nearest_toward, node_size
from .titles import node_title
from .link_items import LinkItem
from .minimap import Minimap
from .node_item import NodeItem
from .param_widgets import clean_path
from .palette import SearchPalette

NODE_MIME = "application/x-kinograph-node"
MIN_ZOOM, MAX_ZOOM = 0.05, 3.0
LEGIBLE_ZOOM = 0.85         # node titles, socket names and fields read at 100% display size
SCENE_EXTENT = 1.0e5
EMPTY_HINT = ("Tab or double-click: add a node\nCtrl+O: open a workflow · File > Open Example: a ready-made one\n"
              "or drop a .yaml, a video or a still here\n"
              "Ctrl+Enter: run · F1: every shortcut")
STILL_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".exr", ".dpx"}
# What io.load_audio reads and io.save_audio writes: dropped on the canvas, a Load Audio; in the viewer, a sound
SOUND_SUFFIXES = {".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac"}
# A colourist's looks: a LUT or an ASC CDL dropped on the canvas becomes the node that applies it.
LOOK_NODES = {".cube": "color.lut", ".3dl": "color.lut", ".cc": "color.cdl", ".ccc": "color.cdl", ".cdl": "color.cdl"}


def frames_folder(path) -> bool:
    """A folder of image frames (a plate as Nuke and Blender write it), which io.load_frames reads. Dropped
    on the canvas or the viewer it was refused (only files were taken), the most common footage of a comp."""
    p = Path(path)
    try:
        return p.is_dir() and any(f.suffix.lower() in STILL_SUFFIXES and not f.name.startswith(".")
                                  for f in p.iterdir())
    except OSError:
        return False


INLINE_KINDS = ("", "path", "seed")        # edited in place; the others open in the properties panel


class GraphView(QGraphicsView):
    fileDropped = Signal(list, QPointF)         # paths, where they were dropped (scene)
    viewRequested = Signal(str, str)            # node, viewer slot "A"/"B"
    contextRequested = Signal(QPoint, object, object)   # global pos, node id or None, group id or None
    propertyFocusRequested = Signal(str, str)   # node, parameter that needs the big editor
    message = Signal(str)
    zoomed = Signal()                           # the wheel, Zoom In/Out, a frame: the status bar's % follows

    def __init__(self, settings, parent=None):
        super().__init__(parent)
        self.settings = settings
        self.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing | QPainter.SmoothPixmapTransform)
        self.setViewportUpdateMode(QGraphicsView.SmartViewportUpdate)
        self.setOptimizationFlags(QGraphicsView.DontSavePainterState)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.RubberBandDrag)
        # The view may wander anywhere; the scene's own rect (and so its item index) stays tight
        # around the items.
        self.setSceneRect(-SCENE_EXTENT, -SCENE_EXTENT, 2 * SCENE_EXTENT, 2 * SCENE_EXTENT)
        self.setCacheMode(QGraphicsView.CacheBackground)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setAccessibleName("Node graph")
        self.setAccessibleDescription("Tab adds a node, Alt and the arrows select one, Enter edits the selected one, "
                                      "F6 goes to the panels")
        self._painted_zoom = None
        self._pan: Optional[QPointF] = None
        self._space = False
        self._knife: Optional[QGraphicsPathItem] = None
        self._pending_link = None
        self._after: Optional[str] = None          # the node a node chosen in the search is wired after
        self._editor: Optional[QLineEdit] = None
        self.palette: Optional[SearchPalette] = None
        self.minimap = Minimap(self)
        self.toast = QLabel(self)
        self.toast.setObjectName("CanvasToast")
        self.toast.setWordWrap(True)
        self.toast.setMaximumWidth(420)
        self.toast.hide()
        self._toast_timer = QTimer(self)
        self._toast_timer.setSingleShot(True)
        self._toast_timer.setInterval(5000)
        self._toast_timer.timeout.connect(self.toast.hide)

    # -- scene --------------------------------------------------------------------------------
    def set_scene(self, scene) -> None:
        self.setScene(scene)
        self._painted_zoom = None
        if self.palette is not None:
            self.palette.deleteLater()
        self.palette = SearchPalette(scene.doc.registry, self.settings, self)
        self.palette.chosen.connect(self._palette_chosen)
        self.palette.closed.connect(lambda: setattr(self, "_pending_link", None))
        scene.layoutChanged.connect(self.minimap.schedule)
        scene.layoutChanged.connect(self._hint_changed)
        scene.linkDroppedOnEmpty.connect(self._link_dropped)
        scene.paramClicked.connect(self.edit_param)
        scene.renameRequested.connect(self.rename)
        scene.message.connect(self.message)
        scene.refused.connect(self.show_toast)
        scene.doc.changed.connect(self._follow_model)
        self.minimap.rebuild()
        # Whether the hint is drawn is this scene's: kept from the last one (File > New after a workflow), the
        # first node pasted or added left the hint's text on the canvas around it.
        self._was_empty = None
        self._hint_changed()

    def reach(self, rect: QRectF) -> None:
        """Let the view wander SCENE_EXTENT past `rect` (the graph): a node placed further out than
        the fixed extent (a generated or hand-written file) could not be brought on screen, by
        Frame All, the minimap or the log's go-to, and looked lost."""
        e = SCENE_EXTENT
        want = QRectF(-e, -e, 2 * e, 2 * e)
        if not rect.isEmpty():
            want = want.united(rect.adjusted(-e, -e, e, e))
        if want != self.sceneRect():
            self.setSceneRect(want)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self.minimap.fit(self.size())
        if self.palette is not None and self.palette.isVisible():
            self.palette.fit()
        self.minimap.move(self.width() - self.minimap.width() - 12, self.height() - self.minimap.height() - 12)

    # -- painting -------------------------------------------------------------------------------
    def paintEvent(self, event):
        zoom = self.zoom()                    # whatever changed it: wheel, fit, reset
        if zoom != self._painted_zoom:
            self._painted_zoom = zoom
            self.resetCachedContent()         # the cached grid was drawn for the old zoom
            if self.scene() is not None:
                self.scene().set_far(zoom < FAR_ZOOM)
        super().paintEvent(event)

    def _hint_changed(self) -> None:
        empty = not self.scene().nodes and not self.scene().notes
        if empty != self._was_empty:
            self._was_empty = empty
            self.viewport().update()        # the empty-canvas hint appears or goes

    def drawForeground(self, painter, rect):
        sc = self.scene()
        if sc.far:
            sc.paint_overview(painter)
        if not sc.nodes and not sc.notes:
            painter.save()
            painter.resetTransform()
            painter.setPen(theme.TEXT_DIM)
            painter.drawText(QRectF(self.viewport().rect()), Qt.AlignCenter, EMPTY_HINT)
            painter.restore()

    def drawBackground(self, painter, rect):
        painter.fillRect(rect, theme.CANVAS)
        scale = self.transform().m11()
        for step, color, min_scale in ((GRID, theme.GRID_MINOR, 0.5), (GRID * 5, theme.GRID_MAJOR, 0.12)):
            if scale < min_scale:
                continue
            left, top = math.floor(rect.left() / step) * step, math.floor(rect.top() / step) * step
            lines = [QLineF(x, rect.top(), x, rect.bottom()) for x in _frange(left, rect.right(), step)]
            lines += [QLineF(rect.left(), y, rect.right(), y) for y in _frange(top, rect.bottom(), step)]
            painter.setPen(QPen(color, 0))
            painter.drawLines(lines)

    # -- navigation -----------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def zoom_by(self, factor: float, anchor: Optional[QPoint] = None) -> None:
        target = max(MIN_ZOOM, min(MAX_ZOOM, self.zoom() * factor))
        factor = target / self.zoom()
        if anchor is None:
            self.setTransformationAnchor(QGraphicsView.AnchorViewCenter)
            self.scale(factor, factor)
            self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        else:
            before = self.mapToScene(anchor)
            self.scale(factor, factor)
            after = self.mapToScene(anchor)
            self._scroll_scene(after - before)
            self.minimap.update()
        self.zoomed.emit()

    def _scroll_scene(self, d: QPointF) -> None:
        self.centerOn(self.mapToScene(self.viewport().rect().center()) - d)

    def wheelEvent(self, event):
        self.zoom_by(math.pow(1.0015, event.angleDelta().y()), event.position().toPoint())

    def frame(self, rect: QRectF, max_zoom: float = 1.0) -> None:
        if rect.isEmpty():
            rect = QRectF(-200, -150, 400, 300)
        self.reach(self.scene().nodes_rect().united(rect))
        m = 60 / max(0.2, self.zoom())
        self.fitInView(rect.adjusted(-m, -m, m, m), Qt.KeepAspectRatio)
        if self.zoom() > max_zoom:
            self.zoom_by(max_zoom / self.zoom())
        self.zoom_by(1.0)
        self.centerOn(rect.center())
        self.clear_of_minimap(rect)
        self.minimap.update()

    def bring_into_sight(self, items, margin: int = 40) -> None:
        """Scroll the canvas items (nodes pasted, a node the keyboard selected, a note added) into sight, clear of
        the minimap: ensureVisible counts the canvas under the minimap as seen."""
        rect = QRectF()
        for it in items:
            rect = rect.united(it.sceneBoundingRect())
        self.ensureVisible(rect, margin, margin)
        self.clear_of_minimap(rect, items)

    def clear_of_minimap(self, rect: QRectF, items=None) -> None:
        """Show `rect` beside or above the minimap when one of its nodes (or of `items`) lies under it: Frame All
        on Stable Audio 3's template hid its Generate Text node (at the graph's bottom right) there, its title's
        corner alone in sight; a pasted node, a note added at the cursor or a node Alt+arrow selected was left
        there. Of the two sides, the one that keeps the larger zoom; never zoomed in past the zoom it is at."""
        if not self.minimap.isVisible():
            return
        mini = QRectF(self.minimap.geometry().translated(-self.viewport().pos()))
        if items is None:
            items = [n for n in self.scene().nodes.values() if n.sceneBoundingRect().intersects(rect)]
        if not any(self.mapFromScene(n.sceneBoundingRect()).boundingRect().intersects(mini.toRect()) for n in items):
            return
        pad, vw, vh = 24.0, self.viewport().width(), self.viewport().height()
        areas = [QRectF(0, 0, mini.left(), vh), QRectF(0, 0, vw, mini.top())]
        scale = [min((a.width() - 2 * pad) / max(rect.width(), 1.0), (a.height() - 2 * pad) / max(rect.height(), 1.0))
                 for a in areas]
        k = max(range(2), key=lambda i: scale[i])
        if scale[k] <= 0:
            return
        self.zoom_by(min(scale[k], self.zoom()) / self.zoom())
        z = self.zoom()
        # the view's centre is the viewport's; `rect` goes to the centre of the chosen area
        off = QRectF(0, 0, vw, vh).center() - areas[k].center()
        self.centerOn(rect.center() + off / z)

    def frame_all(self) -> None:
        self.frame(self.scene().nodes_rect())

    def frame_legible(self) -> None:
        """The first view of a workflow: all of it when that is legible, otherwise its start (the
        sources, top left) at the smallest zoom that still shows titles, sockets and fields; the
        minimap shows where the rest is. An imported ComfyUI workflow opens at the view it was saved with, as in
        ComfyUI; without one the view frames the nodes, not the notes (a template's top left is often a tall note
        of model links: the artist saw a wall of text)."""
        scene = self.scene()
        if scene.doc.saved_view is not None and self._at_saved(*scene.doc.saved_view):
            return
        rect = scene.nodes_rect(list(scene.nodes))
        if rect.isEmpty():
            self.frame(rect)
            return
        self.reach(scene.nodes_rect())
        vw, vh = self.viewport().width(), self.viewport().height()
        m = 40.0
        fit = min(vw / (rect.width() + 2 * m), vh / (rect.height() + 2 * m))
        if fit >= LEGIBLE_ZOOM:
            self.frame(rect)
            # Framed clear of the minimap, it may no longer read: then its start, as for a graph too big to read.
            if self.zoom() >= LEGIBLE_ZOOM - 1e-9:
                return
        self.zoom_by(LEGIBLE_ZOOM / self.zoom())
        cx = rect.left() - m + vw / (2 * LEGIBLE_ZOOM)
        cy = rect.center().y() if rect.height() * LEGIBLE_ZOOM + 2 * m <= vh else rect.top() - m + vh / (2 * LEGIBLE_ZOOM)
        self.centerOn(QPointF(cx, cy))
        self.minimap.update()

    def _at_saved(self, x: float, y: float, scale: float, width: float = 0.0, height: float = 0.0) -> bool:
        """Show scene point (x, y) at the top left at zoom `scale`, as the workflow was left here; False (nothing
        moved) when no node would be in sight there. A ComfyUI file's view comes with the size of the canvas it
        was made on (a browser window's): the view opens on the nodes and notes that canvas showed. Put at this
        smaller canvas' top left, they sat in a corner or past its edge, the canvas mostly empty."""
        z = max(MIN_ZOOM, min(MAX_ZOOM, scale))
        m, w, h = 40.0 / z, self.viewport().width() / z, self.viewport().height() / z
        shown = QRectF(x, y, (width / z) or w, (height / z) or h)
        nodes = QRectF()
        for item in self.scene().nodes.values():
            if item.sceneBoundingRect().intersects(shown):
                nodes = nodes.united(item.sceneBoundingRect())      # whole: a node at the edge is not cut
        if nodes.isEmpty():
            return False
        seen = nodes
        for item in self.scene().notes.values() if width else ():
            if item.sceneBoundingRect().intersects(shown):
                seen = seen.united(item.sceneBoundingRect())
        if seen.width() + 2 * m > w or seen.height() + 2 * m > h:
            # Read from the nodes' top left, not a note's: on a small window a tall note of model links beside
            # them (Depth Anything 3's templates) filled the canvas, not one node in sight.
            seen = nodes
        self.reach(self.scene().nodes_rect())
        self.zoom_by(z / self.zoom())
        if width:
            # What does not fit starts at its top left, as a page is read.
            cx = seen.center().x() if seen.width() + 2 * m <= w else seen.left() - m + w / 2
            cy = seen.center().y() if seen.height() + 2 * m <= h else seen.top() - m + h / 2
            self.centerOn(QPointF(cx, cy))
        else:
            self.centerOn(QRectF(x, y, w, h).center())
        self.minimap.update()
        return True

    def frame_selected(self) -> None:
        ids = self.scene().selected_nodes()
        self.frame(self.scene().nodes_rect(ids) if ids else self.scene().nodes_rect())

    # -- mouse ----------------------------------------------------------------------------------
    def mousePressEvent(self, event):
        mods = event.modifiers()
        if event.button() == Qt.MiddleButton or (event.button() == Qt.LeftButton and self._space):
            self._pan = event.position()
            self.viewport().setCursor(Qt.ClosedHandCursor)
            event.accept()
            return
        knife = (event.button() == Qt.LeftButton and mods & Qt.AltModifier) or \
                (event.button() == Qt.RightButton and mods & Qt.ControlModifier)
        if knife:
            p = self.mapToScene(event.position().toPoint())
            self._knife = QGraphicsPathItem()
            self._knife.setPen(QPen(theme.REFUSED, 0, Qt.DashLine))
            self._knife.setZValue(20)
            self._knife.setPath(QPainterPath(p))
            self.scene().addItem(self._knife)
            self.viewport().setCursor(Qt.CrossCursor)
            event.accept()
            return
        if event.button() == Qt.LeftButton and mods & Qt.ControlModifier and mods & Qt.ShiftModifier:
            item = self.scene().node_at(self.mapToScene(event.position().toPoint()))
            if item is not None:
                self.viewRequested.emit(item.node_id, "B" if mods & Qt.AltModifier else "A")
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):
        if self._pan is not None:
            d = event.position() - self._pan
            self._pan = event.position()
            self._scroll_scene(QPointF(d.x() / self.zoom(), d.y() / self.zoom()))
            self.minimap.update()
            return
        if self._knife is not None:
            path = self._knife.path()
            path.lineTo(self.mapToScene(event.position().toPoint()))
            self._knife.setPath(path)
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):
        if self._pan is not None:
            self._pan = None
            self.viewport().setCursor(Qt.OpenHandCursor if self._space else Qt.ArrowCursor)
            return
        if self._knife is not None:
            self.cut_links(self._knife.path())
            self.scene().removeItem(self._knife)
            self._knife = None
            self.viewport().setCursor(Qt.ArrowCursor)
            return
        super().mouseReleaseEvent(event)

    def cut_links(self, knife: QPainterPath) -> int:
        stroke = QPainterPathStroker()
        stroke.setWidth(2)
        area = stroke.createStroke(knife)
        hit = [i for i in self.scene().items(area) if isinstance(i, LinkItem) and i.shape().intersects(area)]
        self.scene().controller.disconnect([(i.dst_item.node_id, i.dst_port) for i in hit])
        if hit:
            self.message.emit(f"Cut {len(hit)} link{'s' if len(hit) > 1 else ''}")
        return len(hit)

    def mouseDoubleClickEvent(self, event):
        p = self.mapToScene(event.position().toPoint())
        if event.button() == Qt.LeftButton and not self.scene().items(p):
            self.open_palette(event.position().toPoint())
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event):
        if event.modifiers() & Qt.ControlModifier:
            event.accept()
            return
        p = self.mapToScene(event.pos())
        item = self.scene().node_at(p)
        if item is not None and not item.isSelected():
            self.scene().select_nodes([item.node_id])
        group = next((g.gid for g in self.scene().items(p) if isinstance(g, GroupItem)), None)
        self.contextRequested.emit(event.globalPos(), item.node_id if item else None, group)

    # -- keys -----------------------------------------------------------------------------------
    def _typing(self) -> bool:
        """A note on the canvas is being typed into: keys are its text."""
        item = self.scene().focusItem() if self.scene() is not None else None
        return isinstance(item, QGraphicsTextItem) and bool(item.textInteractionFlags() & Qt.TextEditorInteraction)

    def keyPressEvent(self, event):
        if self._typing():
            super().keyPressEvent(event)
            return
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.OpenHandCursor)
            return
        if event.key() == Qt.Key_Tab:
            self.open_palette(self.mapFromGlobal(self.cursor().pos()))
            return
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and not event.modifiers() & ~Qt.KeypadModifier:
            # Enter on a node: into its parameters (Esc comes back). Without it the keyboard could
            # add a node (Tab, type, Enter) but never reach its settings: Tab belongs to the search.
            ids = self.scene().selected_nodes()
            if len(ids) == 1:
                self.propertyFocusRequested.emit(ids[0], "")
                return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event):
        if event.key() == Qt.Key_Space and not event.isAutoRepeat() and self._space:
            self._space = False
            self.viewport().setCursor(Qt.ArrowCursor)
            return
        super().keyReleaseEvent(event)

    def focusNextPrevChild(self, next_):
        return False        # Tab belongs to the node search here

    # -- node search ----------------------------------------------------------------------------
    def open_palette(self, at: QPoint, link_from=None) -> None:
        """Open the search at `at` (view coordinates); `link_from=(node, port, is_input)` filters
        to compatible nodes and wires the one chosen."""
        if not self.rect().contains(at):
            at = self.rect().center()
        self._pending_link = (self.mapToScene(at), link_from)
        have = want = None
        if link_from is not None:
            t = rules.port_type(self.scene().doc.registry, self.scene().doc.graph, *link_from)
            have, want = (None, t) if link_from[2] else (t, None)
        # With one node selected the node chosen goes after it, wired (as in Nuke): the keyboard
        # could add nodes but never connect one.
        sel = self.scene().selected_nodes()
        src = self.scene().doc.spec(sel[0]) if len(sel) == 1 else None
        self._after = sel[0] if link_from is None and src is not None and src.outputs else None
        note = f"Enter adds it after {self.scene().nodes[self._after].label}, wired where it fits" if self._after else ""
        self.palette.open_at(at, have=have, want=want, note=note)

    def _on_screen(self, pos: QPointF, size) -> QPointF:
        """Where a node of `size` added at `pos` (its corner: the cursor or the end of a dragged link)
        is whole on screen and clear of the minimap. Tab with the cursor near the canvas' right or
        bottom edge put the new node mostly off it, under the minimap, as if nothing had been added."""
        m = 12 / max(self.zoom(), 1e-6)
        vis = self.mapToScene(self.viewport().rect()).boundingRect().adjusted(m, m, -m, -m)
        w, h = size
        x = max(vis.left(), min(pos.x(), vis.right() - w))
        y = max(vis.top(), min(pos.y(), vis.bottom() - h))
        if self.minimap.isVisible():
            mini = self.mapToScene(self.minimap.geometry().translated(-self.viewport().pos())).boundingRect()
            mini = mini.adjusted(-m, -m, m, m)
            if QRectF(x, y, w, h).intersects(mini):
                # Beside it if there is room to its left, else above it.
                if mini.left() - w >= vis.left():
                    x = mini.left() - w
                else:
                    y = max(vis.top(), mini.top() - h)
        return QPointF(x, y)

    def _link_dropped(self, scene_pos: QPointF, origin) -> None:
        self.open_palette(self.mapFromScene(scene_pos), link_from=origin)

    def _palette_chosen(self, type_name: str) -> None:
        pos, link_from = self._pending_link or (self.mapToScene(self.viewport().rect().center()), None)
        after, self._pending_link, self._after = self._after, None, None
        spec = self.scene().doc.registry.get(type_name)
        pos = self._on_screen(pos, node_size(spec))
        src = self.scene().doc.spec(after) if after in self.scene().nodes else None
        port = rules.output_feeding(src, spec) if src is not None and link_from is None else None
        if port is not None:
            link_from, pos = (after, port, False), self._beside(after, node_size(spec))
        else:
            # At the cursor it landed on the node under it, hiding both: it goes beside that node.
            pos = QPointF(*self.scene().controller.clear_spot((pos.x(), pos.y(), *node_size(spec))))
        try:
            nid = self.scene().controller.add_node(type_name, (pos.x(), pos.y()), link_from=link_from)
        except Refused as e:
            self.message.emit(str(e))
            return
        self.scene().select_nodes([nid])
        self.bring_into_sight([self.scene().nodes[nid]])
        if port is not None:
            self.message.emit(f"{spec.title} added after {self.scene().nodes[after].label}, wired from its {port}")
        self.setFocus()

    def _beside(self, node_id: str, size) -> QPointF:
        """A free place right of `node_id` for a node of `size`: lower down while another is there."""
        r = self.scene().nodes[node_id].sceneBoundingRect()
        spot = QRectF(r.right() + 3 * GRID, r.top(), *size)
        others = [i.sceneBoundingRect().adjusted(-GRID, -GRID, GRID, GRID) for i in self.scene().nodes.values()]
        while any(spot.intersects(o) for o in others):
            spot.translate(0, GRID)
        return spot.topLeft()

    def select_toward(self, dx: int, dy: int) -> None:
        """Select the node nearest the selected one in direction (dx, dy), or with none selected the
        node nearest the middle of the view, and bring it on screen: without it the keyboard could
        not reach a node it had not just added."""
        if not self.hasFocus():
            return          # Alt+arrow typed in the node search or a field on a node: not a move
        nodes = self.scene().nodes
        if not nodes:
            self.message.emit("The workflow has no nodes yet: Tab adds one")
            return
        sel = [n for n in self.scene().selected_nodes() if n in nodes]
        centres = {n: (i.sceneBoundingRect().center().x(), i.sceneBoundingRect().center().y()) for n, i in nodes.items()}
        if sel:
            here = centres[sel[-1]]
            pick = nearest_toward(here, {n: c for n, c in centres.items() if n != sel[-1]}, dx, dy)
        else:
            c = self.mapToScene(self.viewport().rect().center())
            pick = min(centres, key=lambda n: math.hypot(centres[n][0] - c.x(), centres[n][1] - c.y()))
        if pick is None:
            side = {(-1, 0): "left of", (1, 0): "right of", (0, -1): "above", (0, 1): "below"}[(dx, dy)]
            self.message.emit(f"No node {side} {nodes[sel[-1]].label}")
            return
        self.scene().select_nodes([pick])
        self.bring_into_sight([nodes[pick]])
        self.message.emit(f"{nodes[pick].label} selected")

    # -- drops ----------------------------------------------------------------------------------
    def _dropped_paths(self, mime):
        ok = MEDIA_SUFFIXES | STILL_SUFFIXES | SOUND_SUFFIXES | {".yaml", ".yml", ".json"} | set(LOOK_NODES)
        return [u.toLocalFile().rstrip("/") or "/" for u in mime.urls() if u.isLocalFile() and (
            Path(u.toLocalFile()).suffix.lower() in ok and not Path(u.toLocalFile()).is_dir()
            or frames_folder(u.toLocalFile()))]

    def dragEnterEvent(self, event):
        # Judged once per drag: a dropped folder is listed to find its frames, and dragMoveEvent comes at every
        # mouse move (a plate of 10,000 frames was listed at each one)
        self._drag_ok = bool(event.mimeData().hasFormat(NODE_MIME) or self._dropped_paths(event.mimeData()))
        if self._drag_ok:
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event):
        if getattr(self, "_drag_ok", False):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event):
        mime = event.mimeData()
        if mime.hasFormat(NODE_MIME):
            t = bytes(mime.data(NODE_MIME)).decode()
            p = self.mapToScene(event.position().toPoint())
            try:
                nid = self.scene().controller.add_node(t, (p.x(), p.y()))
                self.scene().select_nodes([nid])
                self.setFocus(Qt.OtherFocusReason)      # its keys (Delete, B, Enter) act on the node dropped
            except Refused as e:
                self.message.emit(str(e))
            event.acceptProposedAction()
            return
        paths = self._dropped_paths(mime)
        if paths:
            event.acceptProposedAction()
            self.fileDropped.emit(paths, self.mapToScene(event.position().toPoint()))
            return
        super().dropEvent(event)

    # -- inline editors -------------------------------------------------------------------------
    def _line_editor(self, rect: QRectF, text: str, commit, current=None, step=None) -> "InlineEditor":
        """A field editor over `rect`. `commit(text)` applies it and returns an error text, which
        keeps the editor open and says what is wrong; `current()` is the model's value now, which
        an unmodified editor follows (an undo, a panel edit); `step(1 or -1)`, once Tab or
        Shift+Tab has applied it, opens the next or previous field."""
        self.commit_editor()
        r = self.mapFromScene(rect).boundingRect()
        ed = InlineEditor(text, self.viewport(), commit, current, self._editor_closed, self.show_toast, step)
        ed.setGeometry(r.x(), r.y(), max(r.width(), 120), max(r.height(), 22))
        ed.selectAll()
        ed.show()
        ed.setFocus()
        self._editor = ed
        return ed

    def _editor_closed(self, ed) -> None:
        if self._editor is ed:
            self._editor = None
            self.setFocus()

    def commit_editor(self) -> None:
        """Apply and close an open field editor (before a run, a save, another editor)."""
        if self._editor is not None:
            self._editor.finish(True)

    def _follow_model(self, _ev=None) -> None:
        if self._editor is not None:
            self._editor.follow()

    def show_toast(self, text: str, at: Optional[QPointF] = None) -> None:
        """A message by the place it concerns that stays a few seconds (the status bar is far)."""
        self.message.emit(text)
        self.toast.setText(text)
        self.toast.adjustSize()
        p = self.mapFromScene(at) if at is not None else self.rect().center()
        x = max(4, min(p.x() + 12, self.width() - self.toast.width() - 4))
        y = max(4, min(p.y() + 16, self.height() - self.toast.height() - 4))
        self.toast.move(x, y)
        self.toast.show()
        self.toast.raise_()
        self._toast_timer.start()

    def edit_param(self, node_id: str, name: str) -> None:
        sc = self.scene()
        item: NodeItem = sc.nodes[node_id]
        p = item.spec.params[name]
        cur = param_value(sc.doc.workflow, sc.doc.registry, node_id, name)   # a writer's path left out: the file's
        rect = item.mapRectToScene(item.param_rect(name))
        if p.choices:
            menu = QMenu(self)
            for c in p.choices:
                a = menu.addAction(str(c))
                a.setCheckable(True)
                a.setChecked(c == cur)
                a.triggered.connect(lambda _=False, c=c: sc.controller.set_param(node_id, name, c))
            menu.popup(self.mapToGlobal(self.mapFromScene(rect.bottomLeft())))
            return
        if not _typed_inline(p):
            self.propertyFocusRequested.emit(node_id, name)
            return

        def commit(text: str) -> Optional[str]:
            try:
                value = parse_field(p, text)
            except ValueError as e:
                return f"{name}: {e}"
            sc.controller.set_param(node_id, name, value)
            return None

        def current() -> Optional[str]:
            inst = sc.doc.graph.nodes.get(node_id)
            if inst is None:
                return None
            v = param_value(sc.doc.workflow, sc.doc.registry, node_id, name)
            return "" if v is None else str(v)

        self._line_editor(rect, "" if cur is None else str(cur), commit, current,
                          lambda d: self._edit_next(node_id, name, d))

    def _edit_next(self, node_id: str, name: str, d: int) -> None:
        """Tab in a node's field goes on to its next field typed on the canvas (Shift+Tab: the one before),
        as in Blender and Nuke; past the last, the keyboard is the canvas'. It went to the canvas at once:
        the next value typed fired the canvas' one-key commands, and Enter opened the selected node's
        panel (another node's, often), its first field ready to be typed over."""
        item = self.scene().nodes.get(node_id)
        if item is None or item.collapsed:
            return
        # Not a field a link sets: it shows where its value comes from, and what was typed over it did nothing.
        linked = item.linked_params()
        names = [n for n, p in item.spec.params.items() if _typed_inline(p) and n not in linked]
        i = names.index(name) + d if name in names else -1
        if 0 <= i < len(names):
            # Zoomed in, the next field may lie past the canvas' edge: typed there, the value went in blind.
            self.ensureVisible(item.mapRectToScene(item.param_rect(names[i])), 20, 20)
            self.edit_param(node_id, names[i])

    def rename(self, what: str, key: str) -> None:
        sc = self.scene()
        if what == "node":
            item = sc.nodes[key]
            rect = item.mapRectToScene(QRectF(0, 0, item.w, 26))
            self._line_editor(rect, node_title(item.inst, item.spec),
                              lambda t: sc.controller.set_title(key, "" if item.spec and t == item.spec.title else t))
        else:
            g = sc.groups[key]
            self._line_editor(g.mapRectToScene(QRectF(0, 0, g.w, 28)), g.title,
                              lambda t: sc.controller.update_group(key, title=t))


class InlineEditor(QLineEdit):
    """A field typed on the canvas. Enter applies; a refused value keeps it open with the reason;
    Esc cancels; leaving it (a click elsewhere, a run) applies what was typed and closes it, so
    it never lingers showing an old value."""

    def __init__(self, text, parent, commit, current, closed, toast, step=None):
        super().__init__(text, parent)
        self.setObjectName("InlineEditor")
        self._commit, self._current, self._closed, self._toast, self._step = commit, current, closed, toast, step
        self._done = False
        self.returnPressed.connect(lambda: self.finish(True, keep_on_error=True))

    def event(self, event):
        if event.type() == QEvent.ShortcutOverride and event.matches(QKeySequence.Paste) and holds_nodes():
            # Copied nodes go on the canvas (its Paste takes the key), not into the field as their YAML, which a
            # click on a number (to pick where to paste) had opened
            self.finish(True)
            event.ignore()
            return True
        return super().event(event)

    def keyPressEvent(self, event):
        if event.key() == Qt.Key_Escape:
            self.finish(False)
            return
        if event.key() in (Qt.Key_Tab, Qt.Key_Backtab):
            # Applies, as Enter does. It went on to the canvas, which opened the node search over
            # the field and left the field open, its value not applied, behind it.
            self.finish(True, keep_on_error=True)
            if self._done and self._step is not None:
                self._step(-1 if event.key() == Qt.Key_Backtab else 1)
            return
        super().keyPressEvent(event)
        if event.key() in (Qt.Key_Return, Qt.Key_Enter):
            # A line edit passes Enter on (for a dialog's default button): the canvas took it as Enter on the
            # selected node, and put the keyboard in its panel, its first field (another node's path) selected.
            event.accept()

    def focusOutEvent(self, event):
        super().focusOutEvent(event)
        if event.reason() != Qt.PopupFocusReason:       # a context menu of the field itself
            self.finish(True)

    def follow(self) -> None:
        """The model changed under the editor: show its value unless the user typed something."""
        if self._current is None:
            # A rename (node, group) has no model value to follow: any other edit meanwhile (an
            # align, new seeds, a note added from the menu) emptied the field, and Enter then
            # applied the empty title, which wiped the name the node or group had.
            return
        now = self._current()
        if now is None:
            self.finish(False)
        elif not self.isModified() and now != self.text():
            self.setText(now)
            self.selectAll()

    def _anchor(self):
        view = self.parentWidget().parentWidget()
        return view.mapToScene(self.geometry().bottomLeft())

    def finish(self, accept: bool, keep_on_error: bool = False) -> None:
        if self._done:
            return
        if accept and (self.isModified() or self._current is None):
            error = self._commit(self.text())
            if error:
                self.setProperty("invalid", True)
                self.style().polish(self)
                self._toast(error + ("  (Esc keeps the old value)" if keep_on_error else "  (kept the old value)"), self._anchor())
                if keep_on_error:
                    return
        self._done = True
        self.hide()
        self.deleteLater()
        self._closed(self)


def _typed_inline(p) -> bool:
    """Whether parameter `p` is typed in a field on the canvas (a choice opens a menu, the others the panel)."""
    return not p.choices and p.type not in ("schedule", "bool") and p.kind in INLINE_KINDS


def parse_field(p, text: str):
    """A typed value from what was typed into a field; ValueError says what was expected."""
    from graph_engine.validate import check_param
    t = text.strip()
    if p.type == "int":
        try:
            value = int(t) if t.lstrip("+-").isdigit() else int(float(t))     # a float would round a big seed
        except ValueError:
            raise ValueError(f"expects a whole number, got {t!r}")
    elif p.type == "float":
        try:
            value = float(t.replace(",", ".") if t.count(",") == 1 and "." not in t else t)     # a decimal comma
        except ValueError:
            raise ValueError(f"expects a number, got {t!r}")
    elif p.type == "bool":
        value = t.lower() in ("1", "true", "yes", "on")
    elif p.type == "schedule":
        try:
            value = float(t)
        except ValueError:
            value = t
    elif p.kind == "path":
        value = clean_path(text)
    else:
        value = text
    why = check_param(p, value)
    if why:
        raise ValueError(why)
    return value


def _frange(a: float, b: float, step: float):
    x = a
    while x <= b:
        yield x
        x += step
