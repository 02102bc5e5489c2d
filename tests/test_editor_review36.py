"""A second look at stop 36's editor work, as a reviewer and an artist from ComfyUI (probe editor36b): the
minimap-avoiding framing, missing model files after the import report is closed, undo texts, ComfyUI's Ctrl+M, a
wire to a node below its source. Driven through the real window offscreen; any Qt warning fails a test."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402

from app.editor import view as view_mod  # noqa: E402
from app.editor.geometry import node_size  # noqa: E402

make_window, no_modal_dialogs, registry = test_editor.make_window, test_editor.no_modal_dialogs, test_editor.registry
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def win(make_window):
    return make_window()


def test_the_first_view_stays_legible_when_a_node_lies_under_the_minimap(win):
    """The first view shows the whole graph only where it reads (LEGIBLE_ZOOM), else its start; the minimap
    avoidance then zoomed that whole graph out to fit beside the minimap, titles and fields too small to read."""
    c, view = win.controller, win.view
    vw, vh = view.viewport().width(), view.viewport().height()
    z = view_mod.LEGIBLE_ZOOM * 1.05        # the graph, margins and all, fits at a zoom just over the legible one
    w, h = node_size(win.doc.registry.get("video.resize"))
    # the far node's bottom right where the legible view, 40 px margins, ends: under the minimap
    first = c.add_node("generate.test_pattern", (0, 0))
    c.add_node("video.resize", (vw / z - 80 - w, vh / z - 80 - h))
    view.frame_legible()
    assert view.zoom() >= view_mod.LEGIBLE_ZOOM - 1e-6, view.zoom()
    box = view.mapFromScene(win.scene.nodes[first].sceneBoundingRect()).boundingRect()
    assert view.viewport().rect().contains(box), box       # its start in sight, as for any graph too big to read
