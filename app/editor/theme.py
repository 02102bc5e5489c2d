"""The dark theme: a Fusion palette, the stylesheet in resources/theme/dark.qss, and the
colours the canvas paints with."""
from __future__ import annotations

import zlib

from PySide6.QtGui import QColor, QPalette

from graph_engine.shipped import resource

THEME_DIR = resource("theme")

CANVAS = QColor("#1b1c1f")
GRID_MINOR = QColor("#232428")
GRID_MAJOR = QColor("#2c2e33")
NODE_BODY = QColor("#2a2c31")
NODE_BORDER = QColor("#0e0f11")
NODE_SELECTED = QColor("#f2b53a")
TEXT = QColor("#e2e3e6")
TEXT_DIM = QColor("#9a9ca3")
FIELD = QColor("#1f2024")
FIELD_FILL = QColor("#3b5b86")
REFUSED = QColor("#e5533d")
WARN = QColor("#e0b050")           # a caution that is not a failure (playback skipping frames)
BYPASS = QColor("#b0762e")

STATUS_COLORS = {
    "queued": QColor("#7d8087"),
    "running": QColor("#3da5ff"),
    "streaming": QColor("#3fa7a0"),     # its clip returned, its frames still made as later nodes read them
    "cached": QColor("#8c7cd6"),
    "done": QColor("#4fb86a"),
    "failed": QColor("#e5533d"),
    "skipped": QColor("#b08a50"),
    "cancelled": QColor("#9a9ca3"),
    "edited": QColor("#d08a3c"),        # computed by a run, changed since: runs again
}

CATEGORY_COLORS = {
    "Generate": "#2f6f6a", "Input/Output": "#3a5f86", "Video": "#7a5a2e", "Metrics": "#5d4a86",
    "Interpolation": "#2e6e8a", "Motion": "#3f7a3a", "Color": "#8a3f63", "Restore": "#5a6e2e",
    "Stylize": "#86447a", "Consistency": "#45608a", "Relight": "#8a6a2e", "Sampling": "#6a3f8a",
}
_FALLBACK = ("#4b5d7a", "#6a4b7a", "#4b7a62", "#7a684b", "#7a4b4b", "#4b6e7a")


def category_color(category: str) -> QColor:
    name = CATEGORY_COLORS.get(category) or _FALLBACK[zlib.crc32(category.encode()) % len(_FALLBACK)]
    return QColor(name)


def palette() -> QPalette:
    p = QPalette()
    roles = {
        QPalette.Window: "#232428", QPalette.WindowText: "#e2e3e6", QPalette.Base: "#1b1c1f",
        QPalette.AlternateBase: "#25272b", QPalette.ToolTipBase: "#2d2f34", QPalette.ToolTipText: "#e2e3e6",
        QPalette.PlaceholderText: "#7d8087", QPalette.Text: "#e2e3e6", QPalette.Button: "#2d2f34",
        QPalette.ButtonText: "#e2e3e6", QPalette.BrightText: "#ff6b5b", QPalette.Link: "#5aa9ff",
        QPalette.Highlight: "#3b6fb6", QPalette.HighlightedText: "#ffffff", QPalette.Mid: "#3a3c42",
        QPalette.Dark: "#151618", QPalette.Light: "#3f4147",
    }
    for role, color in roles.items():
        p.setColor(role, QColor(color))
    for role in (QPalette.Text, QPalette.ButtonText, QPalette.WindowText):
        p.setColor(QPalette.Disabled, role, QColor("#6b6e75"))
    return p


def apply(app) -> None:
    qss = THEME_DIR / "dark.qss"
    sheet = qss.read_text(encoding="utf-8").replace("@THEME@", THEME_DIR.as_posix()) if qss.is_file() else ""
    p = palette()
    # run_editor applies the theme on every call, and each setter re-polishes every widget the application
    # holds (seconds with a few windows open): an application that has it already is left as it is.
    if app.styleSheet() == sheet and app.palette() == p:
        return
    app.setStyle("Fusion")
    app.setPalette(p)
    if sheet:
        app.setStyleSheet(sheet)
