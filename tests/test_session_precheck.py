"""The Python API checks the files a workflow reads before any node runs, as `kinograph run` does (app.precheck):
`Session().run(wf)` of a graph whose second loader's model was missing rendered its first part, then failed at that
loader, and a script that waited for it got a RunResult saying so minutes later."""
import pytest

from graph_engine.api import Session, WorkflowError, load_workflow

# A first part that works (a pattern and its save), then a loader whose file is not there.
GRAPH = """kinograph: 1
nodes:
  p: {type: generate.test_pattern, params: {frames: 2, width: 32, height: 32}}
  save: {type: io.save_video, inputs: {video: p.video}, params: {path: out/first.mp4, codec: ffv1}}
  vae2: {type: load.vae, params: {name: my_wan_vae.safetensors}}
  enc: {type: vae.encode, inputs: {vae: vae2.vae, video: p.video}}
  dec: {type: vae.decode, inputs: {vae: vae2.vae, latent: enc.latent}}
  save2: {type: io.save_video, inputs: {video: dec.video}, params: {path: out/second.mp4}}
"""


@pytest.fixture
def workflow(tmp_path, monkeypatch):
    (tmp_path / "models" / "vae").mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    (tmp_path / "wf.yaml").write_text(GRAPH)
    return tmp_path / "wf.yaml"


def test_a_missing_model_file_stops_the_run_before_any_node(workflow, tmp_path):
    events = []
    with pytest.raises(WorkflowError) as e:
        Session(device="cpu").run(load_workflow(workflow), on_event=events.append)
    assert events == [] and not (tmp_path / "out").exists()            # the pattern never ran
    (problem,) = e.value.problems
    assert problem.node == "vae2" and "'my_wan_vae.safetensors' is not in the model folders" in problem.message
    assert f"put my_wan_vae.safetensors into {tmp_path / 'models' / 'vae'}" in problem.message


def test_missing_footage_stops_the_run_before_any_node(tmp_path):
    (tmp_path / "f.yaml").write_text("""kinograph: 1
nodes:
  clip: {type: io.load_video, params: {path: plate.mp4}}
  save: {type: io.save_video, inputs: {video: clip.video}, params: {path: out/copy.mp4}}
""")
    with pytest.raises(WorkflowError) as e:
        Session(device="cpu").run(load_workflow(tmp_path / "f.yaml"))
    (problem,) = e.value.problems
    assert problem.node == "clip" and f"path: 'plate.mp4' is not there ({tmp_path / 'plate.mp4'})" in problem.message


def test_a_run_of_the_part_that_needs_no_missing_file_runs(workflow, tmp_path):
    res = Session(device="cpu").run(load_workflow(workflow), targets=["save"])
    assert res.ok and (tmp_path / "out" / "first.mp4").stat().st_size > 0


def test_precheck_false_runs_what_does_not_need_the_file(workflow, tmp_path):
    """As `kinograph run --no-precheck`: the first part is written, the loader fails naming its file."""
    res = Session(device="cpu").run(load_workflow(workflow), precheck=False)
    assert not res.ok and (tmp_path / "out" / "first.mp4").stat().st_size > 0
    assert "my_wan_vae.safetensors" in res.failed["vae2"]
