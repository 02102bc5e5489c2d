"""--device: a name Kinograph does not know is refused before anything runs (it ran on the CPU
without a word, so `--device gpu` on a GPU machine rendered on the CPU)."""
import pytest

from app.cli import main
from graph_engine.devices import resolve_device
from graph_engine.errors import KinographError


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "metal", "cpu0"])
def test_unknown_device_names_are_refused(name):
    with pytest.raises(KinographError) as e:
        resolve_device(name)
    assert f"unknown device {name!r}" in str(e.value) and "use auto, cpu, cuda, cuda:N or mps" in str(e.value)


def test_cli_refuses_a_device_typo_before_running(tmp_path, capsys):
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 2, width: 16, "
                  "height: 16}}\n  save: {type: io.save_video, inputs: {video: p.video}, params: {path: o.mkv, "
                  "codec: ffv1}}\n")
    assert main(["run", str(wf), "--device", "gpu"]) == 2
    assert "unknown device 'gpu' (did you mean 'cuda'?)" in capsys.readouterr().err
    assert not (tmp_path / "o.mkv").exists()
    assert resolve_device("CPU") == "cpu" and resolve_device("auto") in ("cpu", "cuda", "mps")
