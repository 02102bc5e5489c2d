"""Review of editor41 (probe rev41b): a node title that reads as markup, a config.yaml broken while the editor is
open. Driven through the real window offscreen; any Qt warning fails a test."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import Qt  # noqa: E402  (QtGui's has mightBeRichText)

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_probe41  # noqa: E402
from test_editor_probe41 import _back_to  # noqa: E402

make_window, registry = test_editor_probe41.make_window, test_editor_probe41.registry
win, private_config, pytestmark = test_editor_probe41.win, test_editor_probe41.private_config, \
    test_editor_probe41.pytestmark


def _rendered_as_written(label) -> bool:
    """True where Qt draws the label's text as its characters (a QLabel in AutoText reads a text with a tag in its
    first line as HTML)."""
    return label.textFormat() == Qt.PlainText or (label.textFormat() == Qt.AutoText
                                                  and not Qt.mightBeRichText(label.text()))


def test_a_title_that_reads_as_markup_is_shown_as_typed_in_the_run_bar(win):
    """A node titled '<b>Key</b> <img src=matte.png>' failed: the bar beside ▶ Run (a QLabel, which takes a text
    with a tag in it for HTML) drew 'Key' bold and an image where the title was typed, and '<A> over <B>' vanished.
    Titles are the artist's text: shown as typed, as the Log shows them."""
    pat, bad = test_editor_probe41._failing_run(win)
    title = "<b>Key</b> <img src=matte.png>"
    win.controller.set_title(bad, title)
    win.run([bad])
    assert win.runs.wait_idle(30)
    label = win.queue_label
    assert title in label.text(), label.text()
    assert _rendered_as_written(label), label.text()
    for slot in "AB":
        assert win.viewer.labels[slot].textFormat() == Qt.PlainText      # a viewed file named 'shot <b>.mp4'


def test_a_config_yaml_broken_while_the_editor_is_open_is_said_in_the_log(win, tmp_path, monkeypatch):
    """config.yaml is read again when it changed (editor41); the artist adds model_dirs to it as the 'not in the
    model folders' message advises, with a typo (an unclosed bracket). Kinograph fell back to its defaults and said so
    on stderr alone, which an editor started from a menu has none of: the loader stayed missing with no word why.
    The Log says which line of config.yaml is wrong."""
    from graph_engine import config
    config.config_dir().mkdir(parents=True, exist_ok=True)
    (config.config_dir() / "config.yaml").write_text("disk_cache_gb: 20\n")
    config.settings.cache_clear()
    assert config.settings() == {"disk_cache_gb": 20}
    vae = win.controller.add_node("load.vae", (0, 0))
    win.controller.set_param(vae, "name", "my_wan_vae.safetensors")
    assert list(win.scene.nodes[vae].missing) == ["name"]
    (config.config_dir() / "config.yaml").write_text(f"disk_cache_gb: 20\nmodel_dirs: [{tmp_path / 'ComfyUI'}\n")
    _back_to(win, monkeypatch)
    said = win.log.toPlainText()
    assert "config.yaml:" in said and "not valid YAML" in said, said
    config.settings.cache_clear()


def test_a_file_read_again_shows_its_own_problems_under_its_nodes(make_window, registry, tmp_path, monkeypatch):
    """tp.yaml open, untouched; a text editor mistypes resize's 'width' as 'widht' and saves. Read again (editor41),
    the Log said so, but the panel under Resize showed nothing (the problems kept were the first read's); the text
    editor sets it right, and a problem under a node would stay until the file was reopened. The panel shows the
    problems of the file as read last."""
    import shutil
    from app.editor.document import Document
    from test_editor_probe41 import EXAMPLE
    path = tmp_path / "tp.yaml"
    shutil.copy(EXAMPLE, path)
    w = make_window(Document.load(path, registry))
    assert w.doc.still_found("resize") == []
    path.write_text(path.read_text().replace("width: 640", "widht: 640"))
    _back_to(w, monkeypatch)
    assert any("widht" in p.message for p in w.doc.still_found("resize"))
    w.scene.select_nodes(["resize"])
    shown = [label.text() for p, label in w.properties.problem_labels if not label.isHidden()]
    assert any("widht" in text for text in shown), shown
    path.write_text(path.read_text().replace("widht: 640", "width: 800"))
    _back_to(w, monkeypatch)
    assert w.doc.graph.nodes["resize"].params["width"] == 800 and w.doc.still_found("resize") == []


def _tip_reads(tip: str) -> str:
    """What Qt shows for a tooltip: a text with a tag in its first line is read as HTML."""
    from PySide6.QtGui import QTextDocument
    doc = QTextDocument()
    doc.setHtml(tip) if Qt.mightBeRichText(tip) else doc.setPlainText(tip)
    return doc.toPlainText()


def test_tooltips_of_titles_show_them_as_typed(win):
    """The history's tip (the run's label names its node as titled since editor41), a group's tip for a title cut
    with '…', and the properties' title field took a title with a tag for HTML: '<b>Key</b> <A> plate' read
    'Key  plate'. They show it as typed."""
    title = "<b>Key</b> <A> plate " + "long " * 20
    pat, bad = test_editor_probe41._failing_run(win)
    win.controller.set_title(bad, title)
    win.run([bad])
    assert win.runs.wait_idle(30)
    tip = win.queue.history.item(0).toolTip()
    assert title in _tip_reads(tip), tip
    win.scene.select_nodes([bad])
    assert _tip_reads(win.properties.title_edit.toolTip()) == title
    gid = win.controller.group_selection([bad], title)
    group = win.scene.groups[gid]
    assert _tip_reads(group.toolTip()) == title, group.toolTip()
