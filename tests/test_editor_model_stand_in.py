"""A workflow naming `sub/x.safetensors` where only `other/x.safetensors` is kept loads that file: `kinograph
validate` and `run` warn which file is read (nodes.common.models_dirs), but the editor showed it nowhere, so an
artist did not learn that another folder's file, perhaps another model, was read."""
import threading

import pytest

from nodes.common.models_dirs import find_model
from tests import test_comfyui_editor

win = test_comfyui_editor.win            # the editor window, with modal dialogs refused

WF = """kinograph: 1
nodes:
  vae: {type: load.vae, params: {name: sub/x.safetensors}}
"""


@pytest.fixture
def models(tmp_path, monkeypatch):
    root = tmp_path / "ComfyUI" / "models"
    (root / "vae" / "other").mkdir(parents=True)
    (root / "vae" / "other" / "x.safetensors").write_bytes(b"x")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(root))
    return root


def stand_in_lines(win) -> list:
    return [line for line in win.log.toPlainText().splitlines() if "as written: reading" in line]


def test_opening_a_workflow_says_which_file_stands_in_for_the_name_once(models, win, qtbot, tmp_path):
    (tmp_path / "wf.yaml").write_text(WF)
    assert win.open_path(tmp_path / "wf.yaml") is win
    qtbot.waitUntil(lambda: bool(stand_in_lines(win)), timeout=2000)
    [line] = stand_in_lines(win)
    assert "sub/x.safetensors" in line and str(models / "vae" / "other" / "x.safetensors") in line
    # The loaders are checked again at every edit: the same name and file is not said again.
    win.scene.check_models()
    qtbot.wait(50)
    assert len(stand_in_lines(win)) == 1
    # Another name read from that file is said, as `kinograph validate` says it.
    win.controller.set_param("vae", "name", "mine/x.safetensors")
    qtbot.waitUntil(lambda: len(stand_in_lines(win)) == 2, timeout=2000)
    assert "mine/x.safetensors" in stand_in_lines(win)[1]


def test_a_run_looking_the_model_up_on_its_thread_says_it_in_the_log(models, win, qtbot):
    """A run's loaders look their models up on the run's worker thread, not the window's."""
    look = threading.Thread(target=find_model, args=("run/x.safetensors", "vae"))
    look.start()
    look.join()
    qtbot.waitUntil(lambda: any("run/x.safetensors" in line for line in stand_in_lines(win)), timeout=2000)
