"""An evening in the editor as an artist from ComfyUI, Nuke and Blender (probe editor40): clip nodes whose frames
are still being made, ... Driven through the real window offscreen; any Qt warning fails a test."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402

make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)
win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark


def _state(win, node):
    return getattr(win.runs.status.get(node), "state", None)


def test_a_clip_node_whose_frames_are_still_read_is_not_badged_done(win, qtbot):
    """A pattern into a slow node: the pattern returns its clip at once and its frames are made as the nodes after it
    read them. Its badge said a green 'done' from then on, while the run still computed its frames (minutes of a
    decode and an interpolation feeding a Save), and 'done' read as 'made'. It says 'streaming' until the run has
    its time, and 'done' once the run has finished."""
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    slow = c.add_node("test.slow", (300, 0))
    c.set_param(slow, "steps", 100000)
    c.connect(pat, "video", slow, "video")
    said = []
    win.runs.statusChanged.connect(lambda n, st: said.append((n, getattr(st, "state", None))))
    win.run([slow])
    qtbot.waitUntil(lambda: _state(win, slow) == "running", timeout=30000)
    st = win.scene.nodes[pat].status
    assert st.state == "streaming" and st.badge() == "streaming", st
    assert "later nodes read them" in st.message
    assert (pat, "done") not in said, said
    c.set_param(slow, "steps", 3)                       # the next run ends at once, the pattern made anew
    c.set_param(pat, "frames", 5)
    win._cancel_run()
    assert win.runs.wait_idle(30)
    assert _state(win, pat) == "cancelled"
    job = win.run([slow])
    assert win.runs.wait_idle(30) and job.state == "done"
    assert _state(win, pat) == "done" and win.scene.nodes[pat].status.state == "done"
