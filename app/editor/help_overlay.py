"""The shortcut overlay (F1 or ?): every menu action with its keys, and the mouse gestures."""
from __future__ import annotations

import html

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QApplication, QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

GESTURES = (
    ("Tab / double-click", "search nodes (type, ↑↓, Enter; with a node selected, wired after it)"),
    ("drag from a socket", "connect (on a socket or a node); drop on empty canvas to add a node that fits"),
    ("drag a connected input", "move or remove that link"),
    ("Alt+drag / Ctrl+right-drag", "cut links"),
    ("double-click a link", "add a reroute point"),
    ("drop a node on a link", "insert it"),
    ("middle-drag / Space+drag / arrows", "pan"),
    ("wheel", "zoom under the cursor"),
    ("drag a field on a node", "scrub its value (Shift: fine, Ctrl: coarse)"),
    ("click a field on a node", "type its value (Tab / Shift+Tab: the node's next / previous field)"),
    ("Ctrl+Shift+click a node", "show its output in the viewer (Alt: as B)"),
    ("double-click a title", "rename"),
    ("Enter on a node", "into its parameters (Enter or Tab applies; Esc puts the value back, to the canvas)"),
    ("drop a .yaml / rendered .mp4 / .png", "open the workflow inside it"),
    ("drop footage or a still", "a Load Video / Load Image node for it"),
    ("viewer: Space", "play / pause"),
    ("viewer: J / K / L", "play backwards / stop / play forwards (again: faster)"),
    ("viewer: ← / →, Home / End", "one frame back / forward, first / last frame"),
    ("viewer: I / O (Alt: clear)", "in / out point: play loops between them"),
    ("viewer: F / 1 / + / −", "fit / 100% (one pixel a pixel) / zoom in / out"),
    ("viewer: W", "compare A and B on / off (wipe, side by side, difference)"),
    ("viewer: A", "show the alpha (transparency) / the colour again"),
    ("viewer: M", "a mask over the picture it was made of / its matte alone"),
    ("viewer, picking points: click / right-click", "a point on the object / off it (drag: a box; Esc: done)"),
)


class HelpOverlay(QWidget):
    def __init__(self, parent, actions):
        super().__init__(parent)
        self.setAccessibleName("Keyboard shortcuts")
        self.setAccessibleDescription("Esc closes")
        self.setAttribute(Qt.WA_StyledBackground, False)
        # The sheet is laid out when first shown: built with the window, its rich text took about 1 s of every
        # window's opening (and of every editor test), for a sheet most sessions never open.
        self._actions = actions
        self.scroll = self.label = None
        # While it is up it has the keyboard: Esc closes it (it did not), and the canvas's keys do
        # not act on nodes hidden under it (Delete deleted the selection unseen).
        self.setFocusPolicy(Qt.StrongFocus)
        self._was_focused = None
        self.hide()

    def _rows(self) -> list:
        rows = []
        for a in self._actions:
            # Every key that does it: the sheet showed only the first (Del, not Backspace or X;
            # Ctrl+Shift+Z, not Ctrl+Y; Ctrl+Return, not Ctrl+Enter).
            keys = " / ".join(k.toString() for k in a.shortcuts())
            if keys and a.text():
                rows.append((keys, a.text().replace("&", "")))
        return rows + list(GESTURES)

    @staticmethod
    def _sheet(rows: list, columns: int) -> str:
        per = (len(rows) + columns - 1) // columns
        cells = "".join(
            "<td valign='top' style='padding-right:36px'><table cellspacing='4'>" +
            "".join(f"<tr><td style='color:#f2b53a;padding-right:14px'><b>{html.escape(k)}</b></td>"
                    f"<td>{html.escape(d)}</td></tr>" for k, d in rows[i:i + per]) + "</table></td>"
            for i in range(0, len(rows), per))
        return (f"<h2>Keyboard and mouse</h2><table><tr>{cells}</tr></table>"
                "<p style='color:#9a9ca3'>Esc, F1 or a click closes this.</p>")

    def _build(self) -> None:
        label = QLabel()
        label.setTextFormat(Qt.RichText)
        label.setStyleSheet("color:#e2e3e6; background: transparent;")
        label.setAlignment(Qt.AlignCenter)
        self.label = label
        # Over the whole window, and scrolling when even that is too small: no row is ever cut off.
        self.scroll = QScrollArea()
        self.scroll.setAccessibleName("Every shortcut and mouse gesture")
        self.scroll.setWidget(label)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setStyleSheet("QScrollArea, QScrollArea > QWidget > QWidget { background: transparent; }")
        self.scroll.viewport().setAutoFillBackground(False)
        label.mousePressEvent = lambda e: self.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 16, 24, 16)
        lay.addWidget(self.scroll)
        self.parentWidget().installEventFilter(self)

    def _fit(self) -> None:
        """Over the whole window, in two columns where they fit its width, else one: side by side in a 1000 px
        window the right column's descriptions were cut at the edge, behind a sideways scrollbar no key moved."""
        self.setGeometry(self.parentWidget().rect())
        room = self.width() - 48 - self.scroll.verticalScrollBar().sizeHint().width()
        rows = self._rows()
        for columns in (2, 1):
            self.label.setText(self._sheet(rows, columns))
            if self.label.sizeHint().width() <= room:
                break

    def eventFilter(self, watched, event):
        # The window resized with the sheet up: the sheet stayed at the window's old size.
        if watched is self.parentWidget() and event.type() == QEvent.Resize and self.isVisible():
            self._fit()
        return False

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            if self.scroll is None:
                self._build()
            self._was_focused = QApplication.focusWidget()
            self._fit()
            self.show()
            self.raise_()
            self.setFocus(Qt.OtherFocusReason)

    def keyPressEvent(self, event):
        if event.key() == Qt.Key_Escape:
            self.hide()
        elif event.key() in (Qt.Key_Up, Qt.Key_Down, Qt.Key_PageUp, Qt.Key_PageDown, Qt.Key_Home, Qt.Key_End):
            QApplication.sendEvent(self.scroll.verticalScrollBar(), event)      # scroll the sheet
        event.accept()              # the keys of what lies under it wait until it is closed

    def hideEvent(self, event):
        super().hideEvent(event)
        back, self._was_focused = self._was_focused, None
        if back is not None and back.isVisible():
            back.setFocus(Qt.OtherFocusReason)

    def paintEvent(self, event):
        p = QPainter(self)
        # Near opaque: the canvas's own text (the empty-canvas hint, node titles) would read
        # through the rows at 225 and mix with them.
        p.fillRect(self.rect(), QColor(10, 11, 13, 250))

    def mousePressEvent(self, event):
        self.hide()
