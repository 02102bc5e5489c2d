"""Backdrops (groups) and sticky notes: layout only, stored under `ui:`, never run."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QKeySequence, QPainterPath, QPen, QTextCursor, QTextDocument
from PySide6.QtWidgets import QGraphicsItem, QGraphicsTextItem

from . import theme
from .help_text import plain_tip

TITLE_H = 28.0
GRIP = 14.0
GROUP_FONT = QFont()
GROUP_FONT.setPointSizeF(11)
GROUP_FONT.setBold(True)


class GroupItem(QGraphicsItem):
    """Picked up by its title bar; dragging it carries the nodes inside; the corner resizes."""

    def __init__(self, gid: str, data: dict):
        super().__init__()
        self.gid = gid
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable |
                      QGraphicsItem.ItemSendsGeometryChanges)
        self.setZValue(-10)
        self._resizing = None
        self._moved_title = False               # the title drawn past a node standing over the bar's start
        self.sync(data)

    def sync(self, data: dict) -> None:
        self.prepareGeometryChange()
        x, y, w, h = data.get("rect", [0, 0, 300, 200])
        # The stored size; w, h are what is drawn: as large, or larger where a node inside grew (fit).
        self.base = max(80.0, float(w)), max(TITLE_H + 20, float(h))
        self.w, self.h = self.base
        self.title = str(data.get("title", "Group"))
        self._tip()
        self.color = QColor(data.get("color", "#3d5a80"))
        if QPointF(x, y) != self.pos():
            self.setPos(QPointF(x, y))
        self.update()

    def rect(self) -> QRectF:
        return QRectF(0, 0, self.w, self.h)

    def fit(self, w: float, h: float) -> None:
        """Drawn `w` x `h` (never below the stored size): a node inside that shows a thumbnail grows past the
        frame's edge, and would neither look inside it nor go along when the frame is dragged. View only:
        the stored rect stays, as the thumbnail is not saved either."""
        w, h = max(self.base[0], w), max(self.base[1], h)
        if (w, h) != (self.w, self.h) and not self._resizing:
            self.prepareGeometryChange()
            self.w, self.h = w, h
            self._tip()
            self.update()

    def _title_room(self) -> QRectF:
        """Where the title is drawn: the bar's first stretch that no node or note stands over and that holds the
        whole title, else its widest. Nodes are drawn over frames, and a node left out of the group, standing over
        the bar's start (Encode Prompt above Sample in default.yaml), hid the name but its first letters."""
        whole = QRectF(10, 0, self.w - 20, TITLE_H)
        sc = self.scene()
        if sc is None:
            return whole
        bar = self.mapRectToScene(whole)
        over = sorted((r.left() - self.x() - 6, r.right() - self.x() + 6)
                      for i in (*getattr(sc, "nodes", {}).values(), *getattr(sc, "notes", {}).values())
                      if (r := i.sceneBoundingRect()).intersects(bar))
        free, x = [], whole.left()
        for a, b in over:
            if a > x:
                free.append((x, min(a, whole.right())))
            x = max(x, b)
        if x < whole.right():
            free.append((x, whole.right()))
        free = [(a, b) for a, b in free if b - a >= 24]
        if not over or not free:
            self._moved_title = False
            return whole
        need = QFontMetricsF(GROUP_FONT).horizontalAdvance(self.title)
        a, b = next(((a, b) for a, b in free if b - a >= need), max(free, key=lambda f: f[1] - f[0]))
        self._moved_title = True
        return QRectF(a, 0, b - a, TITLE_H)

    def title_may_move(self, rect: QRectF) -> None:
        """A node moved to `rect`: the title is drawn again where the bar shows, if the node stands over it now or
        stood over it before."""
        if self._moved_title or self.mapRectToScene(QRectF(0, 0, self.w, TITLE_H)).intersects(rect):
            self.update()

    def _tip(self, room: Optional[QRectF] = None) -> None:
        """A title longer than the frame is cut with '…' (it was cut through a letter, saying nothing of the rest)
        and said whole in the tip. `room`: where it is drawn, narrower where a node stands over the bar."""
        whole = QFontMetricsF(GROUP_FONT).horizontalAdvance(self.title) <= (room or self._title_room()).width()
        tip = "" if whole else plain_tip(self.title)
        if self.toolTip() != tip:
            self.setToolTip(tip)

    def boundingRect(self) -> QRectF:
        return self.rect().adjusted(-2, -2, 2, 2)

    def shape(self) -> QPainterPath:
        p = QPainterPath()
        p.addRect(QRectF(0, 0, self.w, TITLE_H))
        p.addRect(QRectF(self.w - GRIP, self.h - GRIP, GRIP, GRIP))
        return p

    def paint(self, painter, option, widget=None):
        fill = QColor(self.color)
        fill.setAlpha(60)
        painter.setPen(QPen(theme.NODE_SELECTED if self.isSelected() else self.color.lighter(130), 1.5))
        painter.setBrush(fill)
        painter.drawRoundedRect(self.rect(), 8, 8)
        head = QColor(self.color)
        head.setAlpha(170)
        painter.setPen(Qt.NoPen)
        painter.setBrush(head)
        painter.drawRoundedRect(QRectF(0, 0, self.w, TITLE_H), 8, 8)
        painter.drawRect(QRectF(0, TITLE_H / 2, self.w, TITLE_H / 2))
        painter.setPen(theme.TEXT)
        painter.setFont(GROUP_FONT)
        room = self._title_room()
        self._tip(room)             # the nodes standing over the bar may have moved since the frame last changed
        painter.drawText(room, Qt.AlignVCenter | Qt.AlignLeft,
                         QFontMetricsF(GROUP_FONT).elidedText(self.title, Qt.ElideRight, room.width()))
        painter.setPen(QPen(self.color.lighter(150), 1.2))
        for i in (4, 8, 12):
            painter.drawLine(QPointF(self.w - i, self.h - 2), QPointF(self.w - 2, self.h - i))

    def scene_rect(self) -> QRectF:
        return self.mapRectToScene(self.rect())

    def itemChange(self, change, value):
        if change == QGraphicsItem.ItemPositionHasChanged and self.scene() is not None:
            self.scene().group_dragged(self)
        return super().itemChange(change, value)

    def mousePressEvent(self, event):
        if event.button() == Qt.LeftButton and event.pos().x() > self.w - GRIP and event.pos().y() > self.h - GRIP:
            self._resizing = (event.scenePos(), self.w, self.h)
            event.accept()
            return
        super().mousePressEvent(event)
        if event.button() == Qt.LeftButton:
            self.scene().begin_move()

    def mouseMoveEvent(self, event):
        if self._resizing:
            start, w, h = self._resizing
            d = event.scenePos() - start
            self.prepareGeometryChange()
            self.w, self.h = max(80.0, w + d.x()), max(TITLE_H + 20, h + d.y())
            self.update()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):
        if self._resizing:
            self._resizing = None
            self.scene().controller.update_group(self.gid, rect=[self.x(), self.y(), self.w, self.h])
            return
        super().mouseReleaseEvent(event)
        if event.button() == Qt.LeftButton:
            self.scene().end_move()

    def mouseDoubleClickEvent(self, event):
        self.scene().rename_group(self)


# Ctrl/Alt keys a text box keeps while typing; the others (Ctrl+S, Ctrl+W, Ctrl+Enter…) stay the window's.
TEXT_KEYS = (QKeySequence.Undo, QKeySequence.Redo, QKeySequence.Copy, QKeySequence.Cut, QKeySequence.Paste,
             QKeySequence.SelectAll, QKeySequence.MoveToNextWord, QKeySequence.MoveToPreviousWord,
             QKeySequence.SelectNextWord, QKeySequence.SelectPreviousWord, QKeySequence.DeleteEndOfWord,
             QKeySequence.DeleteStartOfWord, QKeySequence.MoveToStartOfDocument, QKeySequence.MoveToEndOfDocument,
             QKeySequence.SelectStartOfDocument, QKeySequence.SelectEndOfDocument)


class _NoteText(QGraphicsTextItem):
    def sceneEvent(self, event):
        # While typing, plain keys are text: the canvas's one-key commands (H, X, N…) must not
        # fire. Ctrl+S and the like still save, close and run (with the text typed so far).
        if event.type() == QEvent.ShortcutOverride and self.editing():
            plain = not event.modifiers() & (Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier)
            if plain or any(event.matches(k) for k in TEXT_KEYS):
                event.accept()
                return True
        return super().sceneEvent(event)

    def editing(self) -> bool:
        return bool(self.textInteractionFlags() & Qt.TextEditorInteraction)

    def keyPressEvent(self, event):
        if event.key() == Qt.Key_Escape:
            self.clearFocus()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event):
        super().focusOutEvent(event)
        self.setTextInteractionFlags(Qt.NoTextInteraction)
        self.parentItem().commit_text()


def _hard_breaks(text: str) -> str:
    """Markdown with each line break kept (outside code blocks, which keep theirs): Markdown joins lines into
    paragraphs, and a plain note (ComfyUI's Note, a Kinograph note) would lose its lines."""
    out, code = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            code = not code
        out.append(line if code or not line.strip() or line.lstrip().startswith(("```", "~~~")) else line + "  ")
    return "\n".join(out)


class NoteItem(QGraphicsItem):
    """A sticky note; double-click to edit its text in place."""

    def __init__(self, nid: str, data: dict):
        super().__init__()
        self.nid = nid
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable |
                      QGraphicsItem.ItemSendsGeometryChanges)
        self.setZValue(0.5)
        self.text_item = _NoteText(self)
        self.text_item.setDefaultTextColor(QColor("#2b2410"))
        self.text_item.setPos(8, 6)
        self.text_item.document().contentsChanged.connect(self._fit)
        self.sync(data)

    def sync(self, data: dict) -> None:
        self.prepareGeometryChange()
        self.w, self.h = (float(v) for v in data.get("size", [220, 120]))
        self.text = str(data.get("text", ""))
        self.text_item.setTextWidth(self.w - 16)
        if not self.text_item.editing():
            self.show_text()
        elif self.text_item.toPlainText() != self.text:
            self.text_item.setPlainText(self.text)
        x, y = data.get("pos", [0, 0])
        if QPointF(x, y) != self.pos():
            self.setPos(QPointF(x, y))
        self._fit()         # the text wraps to its width only now: it ran past the note's foot, dark on the canvas
        self.update()

    def show_text(self) -> None:
        """The note's text drawn as Markdown (raw while typed): ComfyUI's templates open on notes of headings,
        links and lists, which showed as ## and ** marks."""
        doc = self.text_item.document()
        doc.setMarkdown(_hard_breaks(self.text), QTextDocument.MarkdownDialectGitHub)
        # A code block's lines do not wrap: a template's tree of model folders ran far past the note's
        # right edge, its file names dark on the canvas or under the nodes beside it.
        block = doc.begin()
        while block.isValid():
            if block.blockFormat().nonBreakableLines():
                fmt = block.blockFormat()
                fmt.setNonBreakableLines(False)
                QTextCursor(block).setBlockFormat(fmt)
            block = block.next()
        doc.clearUndoRedoStacks()       # Ctrl+Z in the note undoes typing, not this

    def _fit(self):
        need = self.text_item.boundingRect().height() + 14
        if need > self.h:
            self.prepareGeometryChange()
            self.h = need

    def boundingRect(self) -> QRectF:
        return QRectF(-1, -1, self.w + 2, self.h + 2)

    def paint(self, painter, option, widget=None):
        painter.setPen(QPen(theme.NODE_SELECTED if self.isSelected() else QColor("#b89a3e"), 1.5))
        painter.setBrush(QColor("#e8d487"))
        painter.drawRoundedRect(QRectF(0, 0, self.w, self.h), 4, 4)

    def itemChange(self, change, value):
        if change == QGraphicsItem.ItemPositionHasChanged and self.scene() is not None:
            self.scene().titles_may_move(self.sceneBoundingRect())
        return super().itemChange(change, value)

    def mousePressEvent(self, event):
        super().mousePressEvent(event)
        if event.button() == Qt.LeftButton:
            self.scene().begin_move()

    def mouseReleaseEvent(self, event):
        super().mouseReleaseEvent(event)
        if event.button() == Qt.LeftButton:
            self.scene().end_move()

    def mouseDoubleClickEvent(self, event):
        self.start_editing(select_all=False)

    def start_editing(self, select_all: bool = True) -> None:
        """Type into the note (a new one starts this way, its placeholder text selected)."""
        if self.text_item.toPlainText() != self.text:     # drawn as Markdown: typed raw, from its end
            self.text_item.setPlainText(self.text)
            cur = self.text_item.textCursor()
            cur.movePosition(QTextCursor.End)
            self.text_item.setTextCursor(cur)
        self.text_item.setTextInteractionFlags(Qt.TextEditorInteraction)
        self.text_item.setFocus(Qt.MouseFocusReason)
        if select_all:
            cur = self.text_item.textCursor()
            cur.select(QTextCursor.Document)
            self.text_item.setTextCursor(cur)

    def commit_text(self):
        if self.scene() is not None:
            self.scene().controller.update_note(self.nid, text=self.text_item.toPlainText(),
                                                size=[round(self.w), round(self.h)])
        if not self.text_item.editing():      # typing done, and the same text (no sync follows): drawn again
            self.show_text()
