"""Review of editor39's paste message: text pasted from elsewhere is told from nodes without reading it a second
time, unscreened. Driven through the real window offscreen."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402

win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark
make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)


def _paste(win, text):
    from PySide6.QtGui import QGuiApplication
    said = []
    win.message = said.append
    QGuiApplication.clipboard().setText(text)
    assert win.paste() == []
    return said


@pytest.mark.parametrize("text", ["[" * 50000, "a: " + "[" * 5000, "".join("  " * i + "-\n" for i in range(3000))])
def test_deeply_nested_text_pasted_gets_a_message_not_a_traceback(win, text):
    """The workflow reader refuses nesting this deep ('exceeded maximum nesting depth'); the message's second read of
    the text, json's and PyYAML's, recursed into it and raised RecursionError out of Ctrl+V."""
    said = _paste(win, text)
    assert len(said) == 1 and said[0].startswith("nothing to paste: "), said
    assert not win.doc.graph.nodes


def test_a_pasted_log_is_read_once(win, monkeypatch):
    """A megabyte of a render log pasted on the canvas: the reader's own pass took 8 s on the review box, then the
    message's PyYAML pass (pure Python, past the reader's screen of aliases and size) 19 s more, the editor frozen.
    The message tells text by its lines now."""
    import yaml
    read = []
    monkeypatch.setattr(yaml, "safe_load", lambda *a, **k: read.append(a))
    said = _paste(win, "".join(f"frame {i}: ok\n" for i in range(200)))
    assert said == ["nothing to paste: the clipboard holds text, not Kinograph nodes (select nodes and Ctrl+C to "
                    "copy them)"]
    assert read == []
    # Nodes written by hand with a slip in them still get the reader's line and reason.
    said = _paste(win, "kinograph: 1\nnodes:\n  r: {type: video.resize\n")
    assert len(said) == 1 and "clipboard holds text" not in said[0], said
