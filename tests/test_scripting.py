"""Kinograph driven from scripts: the Python API (build, save, load, override, run) and what a render
farm's wrapper reads from the command (exit codes, JSON on stdout)."""
import json

import pytest

from app.cli import main
from graph_engine.api import KinographError, Session, WorkflowError, load_workflow, new_workflow


def _frames(path) -> int:
    import av
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _events(out: str):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _built(tmp_path):
    wf = new_workflow("scripted")
    wf.add("pat", "generate.test_pattern", params={"frames": 3, "width": 32, "height": 32})
    wf.add("save", "io.save_video", inputs={"video": "pat.video"}, params={"path": "out/shot.mp4"})
    return wf


def test_a_workflow_built_in_python_saves_and_runs_from_python_and_the_command(tmp_path, capsys):
    path = _built(tmp_path).save(tmp_path / "shot ☃.yaml")
    assert path == tmp_path / "shot ☃.yaml"
    # A sweep in one session, overrides as a mapping (as a script holds them).
    session = Session()
    for n in (4, 5):
        result = session.run(load_workflow(path), overrides={"pat.frames": n, "save.path": f"out/f{n}.mp4"})
        assert result.ok and result.failed == {}
        assert result.results["save"]["path"] == str(tmp_path / "out" / f"f{n}.mp4")
        assert _frames(tmp_path / "out" / f"f{n}.mp4") == n
    # The saved file is the same graph for the command; a farm reads the results from the last JSON line.
    assert main(["run", str(path), "--json", "--set", "pat.frames=2"]) == 0
    end = _events(capsys.readouterr().out)[-1]
    assert end["event"] == "run_finished" and end["ok"] and end["results"]["save"]["frames"] == 2
    assert _frames(end["results"]["save"]["path"]) == 2


def test_add_refuses_each_mistake_at_once_and_adds_nothing(tmp_path):
    wf = _built(tmp_path)
    cases = [(("pat2", "generate.test_patern"), {}, "unknown node type 'generate.test_patern' (did you mean "
                                                    "'generate.test_pattern'?)"),
             (("pat", "generate.test_pattern"), {}, "already has a node 'pat'"),
             (("p2", "generate.test_pattern"), {"params": {"frame": 3}}, "has no parameter 'frame' (did you mean "
                                                                          "'frames'?)"),
             (("p2", "generate.test_pattern"), {"params": {"frames": "3x"}}, "parameter 'frames' expects a whole "
                                                                             "number, got '3x'"),
             (("s2", "io.save_video"), {"inputs": {"video": "pat.vidoe"}}, "has no output 'vidoe' (did you mean "
                                                                           "'video'?)"),
             (("s2", "io.save_video"), {"inputs": {"vdeo": "pat.video"}}, "io.save_video has no input 'vdeo'"),
             (("s2", "io.save_video"), {"inputs": {"video": "pta.video"}}, "links to missing node 'pta'"),
             (("s2", "vae.decode"), {"inputs": {"latent": "pat.video"}}, "VIDEO (pat.video) cannot connect to LATENT")]
    for args, kw, said in cases:
        with pytest.raises(WorkflowError) as e:
            wf.add(*args, **kw)
        assert said in str(e.value), (args, kw, str(e.value))
        assert set(wf.graph.nodes) == {"pat", "save"} and set(wf.graph.inputs.get(args[0], {})) <= {"video"}


def test_set_checks_the_value_when_it_is_set_and_names_the_override(tmp_path, capsys):
    path = _built(tmp_path).save(tmp_path / "shot.yaml")
    wf = load_workflow(path)
    with pytest.raises(WorkflowError) as e:
        wf.set("pat.frames", "abc")
    assert str(e.value) == "set: node pat: parameter 'frames' expects a whole number, got 'abc'"
    with pytest.raises(WorkflowError, match="'pat' is not NODE.PARAM"):
        wf.set("pat", 3)
    # The command line: the message names the --set, not the file's line (which holds frames: 3).
    assert main(["run", str(path), "--set", "pat.frames=abc"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "--set: node pat: parameter 'frames' expects a whole number, got 'abc'"
    assert not (tmp_path / "out").exists()


def test_a_refused_command_line_still_ends_with_its_json_event(tmp_path, capsys):
    """A farm wrapper parses stdout: argparse's own refusals printed usage on stderr and nothing on stdout."""
    path = _built(tmp_path).save(tmp_path / "shot.yaml")
    for argv, said in ((["run", str(path), "--json", "--frobnicate"], "unrecognized arguments: --frobnicate"),
                       (["run", str(path), "--json", "--device", "gpu"], "unknown device 'gpu'"),
                       (["batch", "--json"], "the following arguments are required: workflow")):
        assert main(argv) == 2
        out = capsys.readouterr()
        (end,) = _events(out.out)
        assert end["event"] == ("run_finished" if argv[0] == "run" else "batch_finished")
        assert not end["ok"] and said in end["error"] and said in end["problems"][0]["message"]
        assert said in out.err
    assert main(["run", str(path), "--frobnicate"]) == 2          # without --json stdout stays empty
    assert capsys.readouterr().out == ""


def test_validate_json_lists_each_problem_with_its_line(tmp_path, capsys):
    path = _built(tmp_path).save(tmp_path / "shot.yaml")
    assert main(["validate", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "workflow": str(path), "nodes": 2, "left_out": []}
    text = path.read_text().replace("frames: 3", "frames: lots")
    path.write_text(text)
    line = text.splitlines().index("      frames: lots") + 1
    assert main(["validate", str(path), "--json"]) == 2
    answer = json.loads(capsys.readouterr().out)
    assert answer["ok"] is False and answer["problems"] == [
        {"file": str(path), "line": line, "node": "pat", "message": "parameter 'frames' expects a whole number, got "
                                                                    "'lots'"}]


def test_session_refuses_an_unknown_device_before_running():
    with pytest.raises(KinographError, match="unknown device 'gpu' \\(did you mean 'cuda'\\?\\)"):
        Session(device="gpu")


def test_help_names_every_environment_variable_kinograph_reads(capsys):
    """A farm runs in a clean environment: the variables that move the cache, outputs, config and models were
    named nowhere but in the code."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    read = set()
    for folder in ("app", "graph_engine", "nodes"):
        for f in (root / folder).rglob("*.py"):
            read |= set(re.findall(r"environ(?:\.get\(|\[)\"(KINOGRAPH_[A-Z_]+)\"", f.read_text(encoding="utf-8")))
    read |= {"KINOGRAPH_DISK_CACHE_GB", "KINOGRAPH_MEMORY_CACHE_MB"}          # config._amount builds these names
    assert {"KINOGRAPH_CACHE_DIR", "KINOGRAPH_MODELS", "KINOGRAPH_DATA_DIR"} <= read
    try:
        main(["--help"])
    except SystemExit:
        pass
    said = capsys.readouterr().out
    assert [v for v in sorted(read) if v not in said] == []
    assert "130 cancelled" in said


def test_the_default_model_folder_follows_kinograph_data_dir(tmp_path, monkeypatch):
    from nodes.common.models_dirs import model_dirs
    monkeypatch.delenv("KINOGRAPH_MODELS", raising=False)
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    assert model_dirs()[-1] == tmp_path / "data" / "models"


def test_a_job_started_in_a_removed_folder_runs_absolute_paths_and_refuses_relative_ones(tmp_path, monkeypatch,
                                                                                        capsys):
    """A farm job whose working folder was cleaned away: os.getcwd() raised FileNotFoundError, a traceback."""
    path = _built(tmp_path).save(tmp_path / "shot.yaml")
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert main(["run", "shot.yaml", "--json"]) == 2
    end = _events(capsys.readouterr().out)[-1]
    assert end["error"].startswith("the current folder no longer exists (it was removed), so 'shot.yaml' cannot")
    assert main(["run", str(path)]) == 0           # still in the removed folder: absolute paths run
    assert _frames(tmp_path / "out" / "shot.mp4") == 3


def test_a_workflow_piped_on_standard_input_runs_from_the_current_folder(tmp_path, monkeypatch, capsys):
    """`make_shot.py | kinograph run -` looked for a file named '-' ("/tmp/-: no such file")."""
    import io
    text = ("kinograph: 1\nnodes:\n  pat: {type: generate.test_pattern, params: {frames: 3, width: 32, height: 32}}\n"
            "  save: {type: io.save_video, inputs: {video: pat.video}, params: {path: out/piped.mp4}}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["run", "-", "--set", "pat.frames=4", "--json"]) == 0
    end = _events(capsys.readouterr().out)[-1]
    assert end["ok"] and end["results"]["save"]["path"] == str(tmp_path / "out" / "piped.mp4")
    assert _frames(tmp_path / "out" / "piped.mp4") == 4
    monkeypatch.setattr("sys.stdin", io.StringIO(text.replace("frames: 3", "frames: x")))
    assert main(["validate", "-", "--json"]) == 2
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["line"] == 3 and problem["message"] == "parameter 'frames' expects a whole number, got 'x'"


def test_a_piped_workflow_is_named_as_standard_input_when_it_is_ok(tmp_path, monkeypatch, capsys):
    """`kinograph validate -` named its problems "<stdin>:LINE" but said "-: ok" when there were none; and the
    --json help listed three keys of the five it prints."""
    import io
    text = ("kinograph: 1\nnodes:\n  pat: {type: generate.test_pattern, params: {frames: 3, width: 32, height: 32}}\n"
            "  save: {type: io.save_video, inputs: {video: pat.video}, params: {path: out/piped.mp4}}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["validate", "-"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "<stdin>: ok (2 nodes)"
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["validate", "-", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert all(f'"{key}"' in helped for key in printed), (sorted(printed), helped)
