"""The node search palette (Tab, double-click, or a wire dropped on empty canvas).

Keyboard only if you like: type to fuzzy-filter over names, ids, categories and help; Up/Down
(or Tab/Shift+Tab) to move; Enter to add; Esc to close; Ctrl+D to star or unstar a node. With an
empty query it lists favourites, then recent nodes, then everything. Opened from a dragged wire, it only
offers nodes with a port of a compatible type."""
from __future__ import annotations

import html
from typing import List, Optional

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout

from . import fuzzy, rules
from .settings import EditorSettings
from .help_text import help_html, help_tip

TYPE_ROLE = Qt.UserRole
MAX_RESULTS = 60
SIZE = (360, 380)
PALETTE_KEYS = (Qt.Key_Up, Qt.Key_Down, Qt.Key_PageUp, Qt.Key_PageDown, Qt.Key_Return, Qt.Key_Enter, Qt.Key_Escape,
                Qt.Key_Tab, Qt.Key_Backtab)


class SearchPalette(QFrame):
    chosen = Signal(str)          # node type
    closed = Signal()

    def __init__(self, registry, settings: EditorSettings, parent=None):
        super().__init__(parent)
        self.setObjectName("SearchPalette")
        self.registry, self.settings = registry, settings
        self.have = self.want = None
        self.setFrameShape(QFrame.StyledPanel)
        self.setFixedSize(*SIZE)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        self.filter_label = QLabel()
        self.filter_label.setObjectName("PaletteFilter")
        self.edit = QLineEdit()
        # Short enough for the field with a large desktop font (the longer one ended in "Ctrl+D …").
        self.edit.setPlaceholderText("Search nodes…  (Enter adds, Esc closes)")
        self.edit.setToolTip("Name, category, help or task words (\"slow motion\"). Enter adds the node, "
                             "Ctrl+D stars it (starred nodes are listed first), Esc closes")
        self.edit.setClearButtonEnabled(True)
        self.edit.setAccessibleName("Search nodes to add")
        self.list = QListWidget()
        self.list.setFocusPolicy(Qt.NoFocus)
        # A title longer than the list ('Encode Prompt with Image (HunyuanVideo)') cut off its
        # category and put a sideways scroll bar under every list: it ends in "…" instead, its
        # category and help in the tooltip.
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.ElideRight)
        # Where a ComfyUI node with no node here went (fuzzy.comfyui_instead), above what the search found.
        self.comfyui_label = QLabel()
        self.comfyui_label.setObjectName("PaletteComfyUI")
        self.comfyui_label.setWordWrap(True)
        self.comfyui_label.hide()
        self.help = QLabel()
        self.help.setObjectName("PaletteHelp")
        self.help.setWordWrap(True)
        self.help.setMinimumHeight(48)
        for w in (self.filter_label, self.edit, self.comfyui_label, self.list, self.help):
            lay.addWidget(w)
        self.edit.textChanged.connect(self.refresh)
        self.edit.installEventFilter(self)
        self.list.itemActivated.connect(lambda it: self._choose(it))
        self.list.itemClicked.connect(lambda it: self._choose(it))
        self.list.currentItemChanged.connect(self._show_help)
        self.hide()

    # -- opening ------------------------------------------------------------------------------
    def open_at(self, pos: QPoint, have=None, want=None, note: str = "") -> None:
        """Show at `pos` (parent coordinates); `have`: the type a dragged output carries,
        `want`: the type a dragged input takes; `note`: what Enter will do besides adding."""
        self.have, self.want = have, want
        if have is not None:
            self.filter_label.setText(f"Nodes that take {have.name}")
        elif want is not None:
            self.filter_label.setText(f"Nodes that make {want.name}")
        else:
            self.filter_label.setText(note)
        self.filter_label.setVisible(have is not None or want is not None or bool(note))
        self.fit()
        parent = self.parentWidget()
        x = max(0, min(pos.x(), parent.width() - self.width())) if parent else pos.x()
        y = max(0, min(pos.y(), parent.height() - self.height())) if parent else pos.y()
        self.move(x, y)
        self.edit.blockSignals(True)
        self.edit.clear()
        self.edit.blockSignals(False)
        self.refresh()
        self.show()
        self.raise_()
        self.edit.setFocus(Qt.PopupFocusReason)

    def fit(self) -> None:
        """No larger than the canvas it opens on: in a small window the search field, the list's
        right side and the help line of the node picked ran off it."""
        parent = self.parentWidget()
        if parent is None:
            return
        w, h = min(SIZE[0], max(160, parent.width() - 8)), min(SIZE[1], max(140, parent.height() - 8))
        if (w, h) != (self.width(), self.height()):
            self.setFixedSize(w, h)
            x, y = max(0, min(self.x(), parent.width() - w)), max(0, min(self.y(), parent.height() - h))
            self.move(x, y)

    def close_palette(self) -> None:
        if self.isVisible():
            self.hide()
            self.closed.emit()

    # -- contents -----------------------------------------------------------------------------
    def candidates(self) -> List:
        specs = [self.registry.get(t) for t in self.registry]
        return rules.specs_for(specs, self.have, self.want)

    def refresh(self) -> None:
        query = self.edit.text().strip()
        specs = self.candidates()
        favs = self.settings.favourites
        self.list.clear()
        instead = fuzzy.comfyui_instead(query)
        self.comfyui_label.setText(instead)
        self.comfyui_label.setVisible(bool(instead))
        if query:
            ranked = [s for _, s in fuzzy.rank(query, specs, fuzzy.spec_fields)][:MAX_RESULTS]
            for s in ranked:
                self._add(s, s.type in favs)
        else:
            by_type = {s.type: s for s in specs}
            shown = set()
            for heading, types in (("Favourites", favs), ("Recent", self.settings.recent_nodes)):
                picked = [by_type[t] for t in types if t in by_type and t not in shown]
                if picked:
                    self._heading(heading)
                    for s in picked:
                        self._add(s, s.type in favs)
                        shown.add(s.type)
            self._heading("All nodes")
            for s in sorted(specs, key=lambda s: (s.category, s.title)):
                self._add(s, s.type in favs)
        for i in range(self.list.count()):
            if self.list.item(i).data(TYPE_ROLE):
                self.list.setCurrentRow(i)
                break
        if query and not self.results() and instead:
            self.help.clear()       # 'No node matches' the half-typed name stayed under the hint once it was whole
        elif query and not self.results():
            # Enter then did nothing and the list stood empty without a word.
            what = f" that takes {self.have.name}" if self.have else f" that makes {self.want.name}" if self.want else ""
            self.help.setText(f"No node{what} matches “{html.escape(query)}”: try another word (Esc closes)")

    def _heading(self, text: str) -> None:
        it = QListWidgetItem(text.upper())
        it.setFlags(Qt.NoItemFlags)
        self.list.addItem(it)

    def _add(self, spec, fav: bool) -> None:
        it = QListWidgetItem(f"{'★ ' if fav else '   '}{spec.title}    ·  {spec.category}")
        it.setData(TYPE_ROLE, spec.type)
        it.setToolTip(help_tip(f"{spec.title}  ·  {spec.category}\n\n{spec.help}"))
        self.list.addItem(it)

    def results(self) -> List[str]:
        return [self.list.item(i).data(TYPE_ROLE) for i in range(self.list.count())
                if self.list.item(i).data(TYPE_ROLE)]

    def _show_help(self, item, _prev=None) -> None:
        t = item.data(TYPE_ROLE) if item else None
        spec = self.registry.get(t) if t else None
        if spec is None:
            self.help.clear()
            return
        ins = ", ".join(f"{n}: {p.type.name}" for n, p in spec.inputs.items()) or "none"
        outs = ", ".join(f"{n}: {p.type.name}" for n, p in spec.outputs.items()) or "none"
        comfy = fuzzy.comfyui_names(spec.type)
        comfy = f"<br>ComfyUI: {html.escape(', '.join(comfy.split()[:4]))}" if comfy else ""
        self.help.setText(f"<b>{spec.type}</b> — {help_html(spec.summary)}<br><span style='color:#9a9ca3'>in: {ins} · "
                          f"out: {outs}{comfy}</span>")

    # -- keys ---------------------------------------------------------------------------------
    def _step(self, delta: int) -> None:
        n = self.list.count()
        row = self.list.currentRow()
        for _ in range(n):
            row = (row + delta) % n if n else -1
            if row >= 0 and self.list.item(row).data(TYPE_ROLE):
                self.list.setCurrentRow(row)
                return

    def _choose(self, item: Optional[QListWidgetItem] = None) -> None:
        item = item or self.list.currentItem()
        t = item.data(TYPE_ROLE) if item else None
        if not t:
            return
        self.settings.add_recent_node(t)
        self.hide()
        self.chosen.emit(t)

    def eventFilter(self, obj, event):
        if obj is self.edit and event.type() == event.Type.ShortcutOverride:
            # Keys the palette uses must not trigger the window's shortcuts (Ctrl+D is Duplicate there).
            if event.key() in PALETTE_KEYS or (event.key() == Qt.Key_D and event.modifiers() & Qt.ControlModifier):
                event.accept()
                return True
        if obj is self.edit and event.type() == event.Type.KeyPress:
            key, mods = event.key(), event.modifiers()
            # Tab steps through the results as in a completer: it reached the canvas, which opened
            # the search anew and wiped what had been typed.
            if key == Qt.Key_Down or (key == Qt.Key_Tab and not mods & Qt.ShiftModifier):
                self._step(1)
            elif key in (Qt.Key_Up, Qt.Key_Backtab) or key == Qt.Key_Tab:
                self._step(-1)
            elif key == Qt.Key_PageDown:
                self._step(8)
            elif key == Qt.Key_PageUp:
                self._step(-8)
            elif key in (Qt.Key_Return, Qt.Key_Enter):
                self._choose()
            elif key == Qt.Key_Escape:
                self.close_palette()
            elif key == Qt.Key_D and mods & Qt.ControlModifier:
                item = self.list.currentItem()
                if item and item.data(TYPE_ROLE):
                    self.settings.toggle_favourite(item.data(TYPE_ROLE))
                    row = self.list.currentRow()
                    self.refresh()
                    self.list.setCurrentRow(min(row, self.list.count() - 1))
            else:
                return False
            return True
        if obj is self.edit and event.type() == event.Type.FocusOut and not self.list.underMouse():
            self.close_palette()
        return False
