"""Every malformed workflow in the corpus: exit 2, a located message, no traceback."""
import re
from pathlib import Path

import pytest

from tests.cli_run import cli

CORPUS = Path(__file__).parent / "data" / "bad_workflows"

# file -> (line the first message must point at, words it must contain)
EXPECTED = {
    "bad_yaml.yaml": (4, "not valid YAML"),
    "not_mapping.yaml": (1, "must be a mapping"),
    "newer_format.yaml": (1, "newer than this Kinograph reads"),
    "unknown_type.yaml": (4, "did you mean 'generate.test_pattern'"),
    "missing_link_target.yaml": (8, "missing node 'patern' (did you mean 'pattern'?)"),
    "missing_required_input.yaml": (3, "required input 'video' (VIDEO) is not connected"),
    "cycle.yaml": (3, "cycle"),
    # A clip where one picture is wanted also says how to take one (it said only that it could not connect).
    "wrong_type.yaml": (12, "VIDEO (vid.video) cannot connect to IMAGE: take one frame of the clip with video.frame"),
    "out_of_range.yaml": (6, "'frames' 0 is out of range"),
    "unknown_param.yaml": (6, "no parameter 'frame' (did you mean 'frames'?)"),
    "bad_port.yaml": (8, "no input 'vidoe' (did you mean 'video'?)"),
    "bad_choice.yaml": (10, "'h246' is not one of"),
    "unsafe_tag.yaml": (4, "not valid YAML"),
}


def test_corpus_is_complete():
    assert sorted(p.name for p in CORPUS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_reports_located_problem(name):
    from graph_engine.api import load_workflow
    from graph_engine.errors import WorkflowError
    line, words = EXPECTED[name]
    with pytest.raises(WorkflowError) as err:
        load_workflow(CORPUS / name)
    first = err.value.problems
    text = "\n".join(map(str, first))
    assert words in text
    assert any(p.line == line for p in first), text
    assert all(str(CORPUS / name) in str(p) for p in first)


def test_cli_validate_exit_codes_and_no_traceback(tmp_path):
    for name in ("unknown_type.yaml", "cycle.yaml", "bad_yaml.yaml"):
        r = cli("validate", str(CORPUS / name), cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
        assert f"{CORPUS / name}:" in r.stderr
    r = cli("run", str(CORPUS / "unsafe_tag.yaml"), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert not (tmp_path / "pwned.txt").exists()
    ok = cli("validate", str(Path(__file__).parents[1] / "examples" / "default.yaml"))
    assert ok.returncode == 0, ok.stderr


def test_all_problems_reported_at_once(tmp_path):
    from graph_engine.api import load_workflow
    from graph_engine.errors import WorkflowError
    wf = tmp_path / "many.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  a: {type: generate.test_pattern, params: {frames: -1, fps: 0}}\n"
                  "  b: {type: io.save_vdeo}\n")
    with pytest.raises(WorkflowError) as err:
        load_workflow(wf)
    assert len(err.value.problems) == 3


def test_missing_file_and_bad_override(tmp_path):
    r = cli("run", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    example = str(Path(__file__).parents[1] / "examples" / "test_pattern.yaml")
    r = cli("run", example, "--set", "pattern.frame=3")
    assert r.returncode == 2 and "did you mean 'frames'" in r.stderr
    r = cli("run", example, "--set", "patern.frames=3")
    assert r.returncode == 2 and "did you mean 'pattern'" in r.stderr


@pytest.mark.parametrize("param, text, says", [
    ("frames", "1e1", "expects a whole number, got '1e1': YAML reads 1e1 as text; write 10"),
    ("fps", "2.5e1", "expects a number, got '2.5e1': YAML reads 2.5e1 as text; write 25.0"),
    ("fps", "1e-3", "expects a number, got '1e-3': YAML reads 1e-3 as text; write 0.001")])
def test_a_number_yaml_reads_as_text_says_how_to_write_it(param, text, says):
    """YAML 1.1 reads 1e9 as a string, so `frames: 1e9` said only "expects a whole number, got '1e9'",
    which reads as nonsense to whoever wrote a number. The message says how to write it."""
    from graph_engine.api import load_workflow
    from graph_engine.errors import WorkflowError
    wf = f"kinograph: 1\nnodes:\n  pattern: {{type: generate.test_pattern, params: {{{param}: {text}}}}}\n"
    with pytest.raises(WorkflowError, match=re.escape(f"parameter '{param}' {says}")):
        load_workflow(text=wf)
    from graph_engine.registry import default_registry
    from graph_engine.validate import apply_overrides
    ok = load_workflow(text="kinograph: 1\nnodes:\n  pattern: {type: generate.test_pattern}\n")
    # --set reads YAML too, and says so of the override itself
    assert [str(p) for p in apply_overrides(ok, [f"pattern.{param}={text}"], default_registry())] == \
        [f"--set: node pattern: parameter '{param}' {says}"]


def test_a_number_where_text_is_wanted_is_taken_as_text():
    """YAML reads `boundaries: 16` or a prompt of 2024 as numbers: 'expects text, got 16' made the user quote
    what is plainly text (`--set seam.boundaries=16` too)."""
    from graph_engine.api import Session, load_workflow
    from graph_engine.registry import default_registry
    from graph_engine.validate import apply_overrides, validate_run
    text = """kinograph: 1
nodes:
  p: {type: generate.test_pattern, params: {frames: 24, width: 32, height: 32}}
  seam: {type: metrics.seam, inputs: {video: p.video}, params: {every: 0, boundaries: 12}}
"""
    wf = load_workflow(text=text)
    res = Session(use_disk=False).run(wf)
    assert res.ok and res.results["seam"]["seam"] > 0
    assert not apply_overrides(wf, ["seam.boundaries=8"], default_registry())
    assert validate_run(wf, default_registry()) == []
    # a choice written as a number is judged as the text it is
    with pytest.raises(Exception, match="parameter 'mode' '7' is not one of: resample, retime"):
        load_workflow(text=text + "  f: {type: video.fps, inputs: {video: p.video}, params: {mode: 7}}\n")


def test_a_choice_yaml_reads_as_a_boolean_is_taken_as_the_word(tmp_path):
    """`deinterlace: off` (a value the README names) is False to YAML 1.1, and the file and `--set
    load.deinterlace=off` were refused with 'expects text, got False'. A word for a text parameter given with
    --set is the word typed (`--set prompt.text=yes` was True); in a file, the message says to quote it."""
    import av
    from graph_engine.api import Session, WorkflowError, load_workflow
    from graph_engine.registry import default_registry
    from graph_engine.validate import apply_overrides
    made = load_workflow(text="kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 3, width: "
                              "32, height: 32}}\n  s: {type: io.save_video, inputs: {video: p.video}, params: {path: "
                              f"'{tmp_path / 'in.mp4'}'}}}}\n")
    assert Session(use_disk=False).run(made).ok
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  load: {type: io.load_video, params: {path: in.mp4, deinterlace: off}}\n"
                  "  save: {type: io.save_video, inputs: {video: load.video}, params: {path: out.mp4}}\n")
    res = Session(use_disk=False).run(load_workflow(wf))
    assert res.ok, res.failed
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3
    w = load_workflow(wf)
    assert apply_overrides(w, ["load.deinterlace=auto", "load.deinterlace=off"], default_registry()) == []
    assert w.graph.nodes["load"].params["deinterlace"] == "off"
    text = "kinograph: 1\nnodes:\n  seam: {type: metrics.seam, inputs: {video: p.video}, params: {boundaries: %s}}\n" \
           "  p: {type: generate.test_pattern, params: {frames: 24, width: 32, height: 32}}\n"
    with pytest.raises(WorkflowError, match="parameter 'boundaries' expects text, got True: YAML reads yes, no, on, "
                                            "off, true and false as true or false; put the word in quotes"):
        load_workflow(text=text % "yes")
    w = load_workflow(text=text % "'12'")
    assert apply_overrides(w, ["seam.boundaries=yes"], default_registry()) == []
    assert w.graph.nodes["seam"].params["boundaries"] == "yes"


@pytest.mark.parametrize("body", ["nodes: {}\n", "nodes:\n", ""])
def test_a_workflow_without_nodes_says_so(tmp_path, body):
    """A blank canvas saved by the editor (`nodes: {}`) said "`nodes:` must be a mapping of node ids to
    nodes", about what is a mapping, only an empty one."""
    wf = tmp_path / "blank.yaml"
    wf.write_text("kinograph: 1\ndescription: ideas\n" + body)
    r = cli("run", str(wf))
    assert r.returncode == 2 and "the workflow has no nodes yet: add some in the editor (`kinograph gui blank.yaml`)" \
        in r.stderr and "Traceback" not in r.stderr, r.stderr
