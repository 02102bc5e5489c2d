"""An afternoon in the editor as an artist coming from ComfyUI (probe of stop 36): templates opened,
framed, edited, copied between windows. Driven through the real window offscreen; any Qt warning
fails a test."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QRectF  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402

make_window, no_modal_dialogs, registry = test_editor.make_window, test_editor.no_modal_dialogs, test_editor.registry

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def win(make_window):
    return make_window()


def _on_screen(view, item) -> QRectF:
    return QRectF(view.mapFromScene(item.sceneBoundingRect()).boundingRect())


@pytest.mark.parametrize("spread", [(1100, 100, 690, 1580, 1200, 1580, 820, 1120), (0, 0, 0, 900, 1400, 900, 1400, 0)])
def test_frame_all_leaves_no_node_under_the_minimap(win, spread):
    """Stable Audio 3's template framed with F (View > Frame All): its Generate Text node, at the
    bottom right of the graph, lay under the minimap, only its title's corner in sight."""
    c = win.controller
    ids = [c.add_node(t, (spread[2 * k], spread[2 * k + 1]))
           for k, t in enumerate(("generate.test_pattern", "video.resize", "io.save_video", "video.resize"))]
    win.view.frame_all()
    mini = win.view.minimap.geometry().translated(-win.view.viewport().pos())
    assert win.view.minimap.isVisible()
    port = win.view.viewport().rect()
    for nid in ids:
        box = _on_screen(win.view, win.scene.nodes[nid])
        assert port.contains(box.toRect()), (nid, box, port)
        assert not box.intersects(QRectF(mini)), (nid, box, mini)
