"""A cancel pressed while a model loads stops the load at the next tensor: the weights reader every loader shares
(nodes/generate/weights.py) had no Context, so a user cancelling a multi-GB load waited for the whole file."""
from __future__ import annotations

import json
import textwrap

import pytest
import torch

from graph_engine import Param, node
from graph_engine.context import CancelToken, cancelled_by
from graph_engine.errors import Cancelled
from graph_engine.executor import Executor
from graph_engine.registry import Registry
from graph_engine.types import FLOAT
from graph_engine.workflow import parse_workflow

LAYERS = 12


def _net():
    return torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(LAYERS)])


@node("test.load_net", category="Test", output=True)
def load_net(ctx, path: str = Param("")) -> FLOAT:
    """A tiny network read through the loaders' shared reader."""
    from nodes.generate.weights import load_weights
    net = _net()
    net.load_state_dict(load_weights(path))
    return float(net[0].weight.sum())


def test_a_cancel_stops_a_model_load_at_the_next_tensor(tmp_path, monkeypatch):
    import safetensors
    from safetensors.torch import save_file
    path = tmp_path / "net.safetensors"
    save_file(_net().state_dict(), str(path))
    token, read, real = CancelToken(), [], safetensors.safe_open

    class Counted:
        """safetensors' reader; the user presses Cancel as the third tensor is read."""
        def __init__(self, *args, **kw):
            self.f = real(*args, **kw)

        def __enter__(self):
            self.f.__enter__()
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def get_tensor(self, name):
            read.append(name)
            if len(read) == 3:
                token.cancel()
            return self.f.get_tensor(name)
    monkeypatch.setattr(safetensors, "safe_open", Counted)
    registry = Registry()
    registry.register(load_net)
    wf, problems = parse_workflow(textwrap.dedent(f"""
        kinograph: 1
        nodes:
          net: {{type: test.load_net, params: {{path: {str(path)!r}}}}}
    """), None, registry)
    assert not problems
    r = Executor(registry).run(wf, cancel=token)
    assert r.cancelled and not r.failed and "net" not in r.results
    assert len(read) == 3           # of the file's 24 tensors


def test_a_model_loads_whole_when_no_run_is_cancelled(tmp_path):
    """Outside a run (scripts, `kinograph info`) and in a run not cancelled, the reader reads every tensor."""
    from safetensors.torch import save_file
    from nodes.generate.weights import load_weights
    net = _net()
    save_file(net.state_dict(), str(tmp_path / "net.safetensors"))
    got = load_weights(tmp_path / "net.safetensors")
    assert list(got) == sorted(net.state_dict()) and all(torch.equal(got[k], v) for k, v in net.state_dict().items())


def test_a_cancel_stops_a_folder_of_diffusers_parts_before_its_next_part(tmp_path, monkeypatch):
    """ComfyUI's CogVideoX pack keeps a model as a folder of diffusers subfolders, each loaded with from_pretrained,
    which reads through diffusers, not the shared reader: a cancel during the first part waited for every part."""
    import diffusers
    from nodes.generate.converters.pipelines import load_folder_parts
    for name in ("scheduler", "vae"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDIMScheduler"}))
    token, loaded = CancelToken(), []
    real = diffusers.DDIMScheduler.from_pretrained

    def loading(folder, **kw):
        loaded.append(folder)
        token.cancel()          # pressed while the part loads
        return real(folder)
    monkeypatch.setattr(diffusers.DDIMScheduler, "from_pretrained", loading)
    with cancelled_by(token), pytest.raises(Cancelled):
        load_folder_parts("cogvideox", tmp_path, torch.float32, names=("scheduler", "vae"))
    assert loaded == [str(tmp_path / "scheduler")]
