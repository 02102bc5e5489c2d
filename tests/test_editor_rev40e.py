"""Review of editor40's queued-view wording: a look queued behind a render that never runs (Cancel All), and a
render opened from the history during another render. Driven through the real window offscreen."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402

make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)
win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark


def _slow_run(win, qtbot):
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    slow = c.add_node("test.slow", (300, 0))
    c.set_param(slow, "steps", 100000)
    c.connect(pat, "video", slow, "video")
    run = win.run([slow])
    qtbot.waitUntil(lambda: getattr(win.runs.status.get(slow), "state", None) == "running", timeout=30000)
    return pat, run


def test_a_look_cancelled_while_it_waited_does_not_say_it_still_waits(win, qtbot):
    """V during a render, then Cancel All (Ctrl+Shift+.): the render stopped and the look never ran, yet the viewer
    kept 'waiting for … to finish, then computing test_pattern2.video…' with nothing left to wait for."""
    _, run = _slow_run(win, qtbot)
    pat = win.controller.add_node("generate.test_pattern", (0, 300))     # not one the render computes
    look = win.view_node(pat)
    assert win.viewer.canvas.loading.startswith("waiting for")
    win.runs.cancel(clear_queue=True)
    assert win.runs.wait_idle(30) and look.state == "cancelled" and run.state == "cancelled"
    canvas = win.viewer.canvas
    assert canvas.loading == "", canvas.loading
    assert "cancelled" in canvas.note and f"{pat}.video" in canvas.note, canvas.note


def test_a_render_opened_during_another_render_says_it_waits_for_it(win, qtbot, tmp_path):
    """A take from the history opened in the viewer while the next render runs: the look is queued behind that
    render, as V's is, and said 'computing sh010.mp4…' all the while (V's wording was put right, this one not)."""
    from test_editor import chain
    _, _, s = chain(win, out=tmp_path / "sh010.mkv")
    first = win.run()
    assert win.runs.wait_idle(30) and first.state == "done"
    _, run = _slow_run(win, qtbot)
    look = win.view_file(str(tmp_path / "sh010.mkv"))
    assert look is not None and look.state == "queued"
    said = win.viewer.canvas.loading
    assert said.startswith("waiting for") and run.label in said and "sh010.mkv" in said, said
    win.runs.cancel(run)
    assert win.runs.wait_idle(30) and look.state == "done"
    assert not win.viewer.canvas.loading.startswith("waiting"), win.viewer.canvas.loading
