"""The executor, caches, graph model and workflow files, with counting test nodes."""
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from graph_engine import Clip, NodeError, Param, node
from graph_engine.api import load_workflow
from graph_engine.cache import DiskCache
from graph_engine.context import CancelToken
from graph_engine.errors import WorkflowError
from graph_engine.executor import Executor
from graph_engine.registry import Registry
from graph_engine.types import CONDITIONING, FLOAT, INT, TEXT_ENCODER, VIDEO
from graph_engine.validate import validate
from graph_engine.workflow import parse_workflow, to_yaml

CALLS = []


@node("test.number", category="Test")
def number(ctx, value: float = Param(1.0)) -> FLOAT:
    """A constant."""
    CALLS.append(ctx.node_id)
    return value


@node("test.add", category="Test")
def add(ctx, a: FLOAT, b: FLOAT = None, offset: float = Param(0.0)) -> FLOAT:
    """a + b + offset."""
    CALLS.append(ctx.node_id)
    return a + (b or 0.0) + offset


@node("test.slow_square", category="Test", expensive=True)
def slow_square(ctx, a: FLOAT) -> FLOAT:
    """An expensive node: its result goes to the disk tier."""
    CALLS.append(ctx.node_id)
    return a * a


@node("test.fail", category="Test")
def fail(ctx, a: FLOAT) -> FLOAT:
    """Always fails with a user-facing message."""
    raise NodeError("this node always fails")


@node("test.wait", category="Test")
def wait(ctx, a: FLOAT) -> FLOAT:
    """Loops until cancelled."""
    for _ in range(10_000):
        ctx.progress(0, 1)
        threading.Event().wait(0.001)
    return a


@node("test.report", category="Test", output=True)
def report(ctx, a: FLOAT) -> None:
    """Reports its input."""
    CALLS.append(ctx.node_id)
    ctx.report(value=a)


@pytest.fixture
def registry():
    reg = Registry()
    reg.load_entry_points()
    reg.register(number, add, slow_square, fail, wait, report)
    CALLS.clear()
    return reg


CHAIN = """
kinograph: 1
nodes:
  x: {type: test.number, params: {value: 2.0}}
  y: {type: test.number, params: {value: 3.0}}
  s: {type: test.add, inputs: {a: x.float, b: y.float}}
  t: {type: test.add, inputs: {a: s.float}, params: {offset: 1.0}}
  out: {type: test.report, inputs: {a: t.float}}
"""


def wf_of(text, registry, path=None):
    wf, problems = parse_workflow(textwrap.dedent(text), path, registry)
    assert not problems
    return wf


@node("test.count", category="Test")
def count(ctx, value: int = Param(1)) -> INT:
    """A whole number."""
    return value


@node("test.repeat", category="Test")
def repeat(ctx, a: FLOAT, times: int = Param(1, min=1, max=4), path: str = Param("", kind="path", reads=False)
           ) -> FLOAT:
    """a times `times` (1 to 4)."""
    CALLS.append(ctx.node_id)
    return a * times


def test_a_param_takes_a_number_another_node_makes_through_a_link(registry, tmp_path):
    """ComfyUI's widgets turned into inputs (a latent's width from GetImageSize's): Kinograph passed no numbers
    between nodes, so such a workflow could not be written or imported. A number, switch or word param now takes
    a link of its type: the value comes from the link, the node re-runs when its source changes (not when the
    value typed under the link does), the file keeps the link, and a value the param cannot take is named."""
    registry.register(count, repeat)
    text = CHAIN.replace("t: {type: test.add, inputs: {a: s.float}, params: {offset: 1.0}}",
                         "t: {type: test.add, inputs: {a: s.float, offset: y.float}, params: {offset: 1.0}}")
    ex = Executor(registry, disk=DiskCache(tmp_path, 1 << 30))
    wf = wf_of(text, registry)
    r = ex.run(wf)
    assert r.ok and r.results["out"]["value"] == 8.0          # 2 + 3, offset y's 3 (not the 1 typed under it)
    CALLS.clear()
    wf.graph.set_param("t", "offset", 5.0)
    assert ex.run(wf).results["out"]["value"] == 8.0 and CALLS == []
    wf.graph.set_param("y", "value", 4.0)
    assert ex.run(wf).results["out"]["value"] == 10.0 and "input offset changed upstream" in ex.why("t")
    assert wf_of(to_yaml(wf.graph, registry), registry).graph.inputs["t"] == {"a": ("s", "float"),
                                                                              "offset": ("y", "float")}
    from graph_engine.validate import apply_overrides
    assert [p.message for p in apply_overrides(wf, ["t.offset=2"], registry)] == [
        "t.offset is set by a link from y.float, so a value given here would change nothing; remove the link in "
        "the workflow to set offset here"]

    def problems(body):
        return [p.message for p in validate(wf_of("kinograph: 1\nnodes:\n" + textwrap.indent(body, "  "), registry),
                                            registry)]

    base = "x: {type: test.number}\nn: {type: test.count, params: {value: 9}}\n"
    assert problems(base + "r: {type: test.repeat, inputs: {a: x.float, times: x.float}}") == [
        "input 'times': FLOAT (x.float) cannot connect to INT"]
    assert problems(base + "r: {type: test.repeat, inputs: {a: x.float, path: x.float}}") == [
        "parameter 'path' (path) is typed in, not linked: only numbers, switches and plain words take a link. "
        "Remove the link and type its value"]
    wf = wf_of("kinograph: 1\nnodes:\n" + textwrap.indent(base + "r: {type: test.repeat, inputs: {a: x.float, "
                                                            "times: n.int}}\nout: {type: test.report, inputs: "
                                                            "{a: r.float}}", "  "), registry)
    r = ex.run(wf)
    assert not r.ok and r.failed["r"] == "parameter 'times' got 9 through its link: 9 is out of range (1..4)"
    wf.graph.set_param("n", "value", 3)
    assert ex.run(wf).results["out"]["value"] == 3.0


def test_engine_imports_no_torch_or_qt():
    code = ("import sys, graph_engine, graph_engine.executor, graph_engine.api, graph_engine.registry;"
            "graph_engine.registry.default_registry();"
            "bad=[m for m in ('torch','PySide6','diffusers') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_rerun_executes_only_changed_node_and_descendants(registry, tmp_path):
    ex = Executor(registry, disk=DiskCache(tmp_path, 1 << 30))
    wf = wf_of(CHAIN, registry)
    r = ex.run(wf)
    assert r.ok and r.results["out"]["value"] == 6.0
    assert sorted(CALLS) == ["out", "s", "t", "x", "y"]
    CALLS.clear()
    r = ex.run(wf)
    assert CALLS == [] and r.results["out"]["value"] == 6.0
    wf.graph.set_param("t", "offset", 10.0)
    r = ex.run(wf)
    assert sorted(CALLS) == ["out", "t"]
    assert r.results["out"]["value"] == 15.0
    assert "offset changed from 1.0 to 10.0" in ex.why("t")
    assert "input a changed upstream" in ex.why("out")
    assert "nothing changed" in ex.why("x")


def test_expensive_result_reused_from_disk_by_second_process(tmp_path):
    wf = tmp_path / "sq.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  x: {type: test.number, params: {value: 4.0}}\n"
                  "  sq: {type: test.slow_square, inputs: {a: x.float}}\n"
                  "  out: {type: test.report, inputs: {a: sq.float}}\n")
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
        import test_engine as t
        from graph_engine.cache import DiskCache
        from graph_engine.executor import Executor
        reg = t.Registry(); reg.load_entry_points(); reg.register(t.number, t.add, t.slow_square, t.fail, t.wait, t.report)
        from graph_engine.workflow import parse_workflow
        wf, _ = parse_workflow(open({str(wf)!r}).read(), None, reg)
        r = Executor(reg, disk=DiskCache({str(tmp_path / 'cache')!r}, 1 << 30)).run(wf)
        print(json.dumps({{"calls": t.CALLS, "value": r.results["out"]["value"]}}))
    """)
    outs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True) for _ in range(2)]
    import json
    first, second = (json.loads(o.stdout.strip().splitlines()[-1]) for o in outs)
    assert "sq" in first["calls"] and first["value"] == 16.0
    assert "sq" not in second["calls"] and second["value"] == 16.0


def test_failure_reported_while_independent_branch_finishes(registry, tmp_path):
    wf = wf_of("""
        kinograph: 1
        nodes:
          x: {type: test.number}
          bad: {type: test.fail, inputs: {a: x.float}}
          after: {type: test.report, inputs: {a: bad.float}}
          good: {type: test.report, inputs: {a: x.float}}
    """, registry)
    events = []
    r = Executor(registry, disk=DiskCache(tmp_path, 1 << 30)).run(wf, on_event=events.append)
    assert not r.ok
    assert r.failed == {"bad": "this node always fails"}
    assert r.skipped == ["after"]
    assert r.results["good"]["value"] == 1.0
    failed = [e for e in events if e["event"] == "node_failed"]
    assert failed[0]["node"] == "bad" and failed[0]["traceback"] is None
    assert events[-1]["event"] == "run_finished" and events[-1]["ok"] is False


def test_cancel_stops_run(registry, tmp_path):
    wf = wf_of("""
        kinograph: 1
        nodes:
          x: {type: test.number}
          w: {type: test.wait, inputs: {a: x.float}}
          out: {type: test.report, inputs: {a: w.float}}
    """, registry)
    cancel = CancelToken()
    threading.Timer(0.2, cancel.cancel).start()
    r = Executor(registry, disk=DiskCache(tmp_path, 1 << 30)).run(wf, cancel=cancel)
    assert r.cancelled and not r.ok and "out" not in r.results


def test_bypass_passes_input_through(registry, tmp_path):
    wf = wf_of(CHAIN, registry)
    wf.graph.set_bypass("t", True)
    r = Executor(registry, disk=DiskCache(tmp_path, 1 << 30)).run(wf)
    assert r.results["out"]["value"] == 5.0


@node("test.split", category="Test", outputs={"value": FLOAT, "count": INT})
def split(ctx, a: FLOAT, n: INT = None):
    """A node like lora.image: two outputs, the second from an optional input."""
    return {"value": a * 2, "count": n or 0}


def test_bypass_needs_a_pass_through_only_for_outputs_read(registry, tmp_path):
    # ComfyUI's LoraLoaderModelOnly bypassed: its text-encoder output is unused and has nothing to pass on.
    registry.register(split)
    wf = wf_of("""
        kinograph: 1
        nodes:
          x: {type: test.number, params: {value: 2.0}}
          l: {type: test.split, inputs: {a: x.float}, bypass: true}
          out: {type: test.report, inputs: {a: l.value}}
    """, registry)
    r = Executor(registry, disk=DiskCache(tmp_path, 1 << 30)).run(wf)
    assert r.ok and r.results["out"]["value"] == 2.0
    text = to_yaml(wf.graph, registry) + "  c: {type: test.report, inputs: {a: l.count}}\n"
    wf = wf_of(text, registry)
    problems = validate(wf, registry)
    assert [p.node for p in problems] == ["l"]
    assert "test.split cannot be bypassed: its output 'count' (INT) is read downstream" in problems[0].message
    with pytest.raises(WorkflowError, match=r"node l: test.split cannot be bypassed: its output 'count'"):
        Executor(registry, disk=DiskCache(tmp_path, 1 << 30)).run(wf)


def test_memory_tier_respects_budget(registry, tmp_path):
    ex = Executor(registry, memory_budget=10_000, disk=DiskCache(tmp_path, 1 << 30))
    ex.memory.put("a", np.zeros(8000, np.uint8))
    ex.memory.put("b", np.zeros(8000, np.uint8))
    assert ex.memory.bytes <= 10_000 and ex.memory.get("a") is None and ex.memory.get("b") is not None


def test_run_up_to_target_only_runs_ancestors(registry, tmp_path):
    wf = wf_of(CHAIN, registry)
    Executor(registry, disk=DiskCache(tmp_path, 1 << 30)).run(wf, targets=["s"])
    assert sorted(CALLS) == ["s", "x", "y"]


def test_clip_random_access_equals_sequential():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (50, 8, 8, 3), dtype=np.uint8)
    calls = []

    def reader(a, b):
        calls.append((a, b))
        return data[a:b]

    clip = Clip(50, 24, 8, 8, reader, chunk=16)
    seq = np.concatenate([blk for _, blk in clip.chunks(7)])
    assert np.array_equal(seq, data)
    assert all(a % 16 == 0 for a, _ in calls)
    fresh = Clip(50, 24, 8, 8, reader, chunk=16)
    assert np.array_equal(fresh.frames(13, 37), data[13:37])
    assert np.array_equal(fresh.frame(-1), data[-1])
    doubled = clip.map(lambda f: f // 2)
    assert np.array_equal(doubled.frames(40, 50), data[40:50] // 2)


def test_save_is_canonical_and_round_trips(registry):
    wf = wf_of(CHAIN, registry)
    wf.graph.set_ui("x", {"pos": [10, 20]})
    text = to_yaml(wf.graph, registry)
    again, problems = parse_workflow(text, None, registry)
    assert not problems
    assert to_yaml(again.graph, registry) == text
    assert text.index("type:") < text.index("version:") < text.index("params:")
    assert "pos: [10, 20]" in text


def test_migrations_run_on_older_node_versions():
    reg = Registry()

    @node("test.versioned", version=2, migrations={1: lambda p: {"amount": p.pop("amt", 0.0), **p}})
    def versioned(ctx, amount: float = Param(0.0)) -> FLOAT:
        """Version 2 renamed amt to amount."""
        return amount

    reg.register(versioned)
    wf, problems = parse_workflow("kinograph: 1\nnodes:\n  v: {type: test.versioned, version: 1, params: {amt: 3.5}}\n",
                                  None, reg)
    assert not problems
    assert wf.graph.nodes["v"].params == {"amount": 3.5} and wf.graph.nodes["v"].version == 2
    _, problems = parse_workflow("kinograph: 1\nnodes:\n  v: {type: test.versioned, version: 3}\n", None, reg)
    assert "newer than this Kinograph knows" in str(problems[0])


def test_user_nodes_folder_is_discovered(tmp_path):
    (tmp_path / "my_nodes.py").write_text(textwrap.dedent('''
        from graph_engine import node, Param
        from graph_engine.types import FLOAT

        @node("user.triple", category="User")
        def triple(ctx, value: float = Param(1.0)) -> FLOAT:
            """Three times the value."""
            return 3 * value
    '''))
    reg = Registry()
    reg.load_folder(tmp_path)
    assert "user.triple" in reg and reg.get("user.triple").summary == "Three times the value."


def test_graph_events_and_undo_data():
    from graph_engine.graph import Graph
    g = Graph()
    seen = []
    g.subscribe(lambda e: seen.append(e.kind))
    a = g.add_node("test.number")
    b = g.add_node("test.add")
    g.connect(a, "float", b, "a")
    g.set_param(a, "value", 2.0)
    inst, ui, links = g.remove_node(a)
    assert seen == ["node_added", "node_added", "linked", "param_changed", "unlinked", "node_removed"]
    g.restore_node(inst, ui, links)
    assert list(g.links())[0].src == a and g.nodes[a].params["value"] == 2.0


def test_video_pipeline_end_to_end(tmp_path):
    out = tmp_path / "o.mp4"
    wf = load_workflow(text=textwrap.dedent(f"""
        kinograph: 1
        nodes:
          p: {{type: generate.test_pattern, params: {{frames: 10, width: 64, height: 48}}}}
          r: {{type: video.resize, inputs: {{video: p.video}}, params: {{width: 32, height: 0}}}}
          save: {{type: io.save_video, inputs: {{video: r.video}}, params: {{path: {out}, codec: ffv1}}}}
    """))
    from graph_engine.api import Session
    res = Session(use_disk=False).run(wf)
    assert res.ok and res.results["save"]["frames"] == 10
    assert (tmp_path / "o.mp4").stat().st_size > 0


@node("test.allocate", category="Test")
def allocate(ctx, a: FLOAT) -> FLOAT:
    """Asks PyTorch for more memory than any machine has."""
    import torch
    return float(torch.empty(2 ** 62, dtype=torch.uint8).numel())


def test_an_allocation_no_machine_can_make_is_said_in_words(registry):
    """latent.empty at 1000 frames of 8192x8192 failed with PyTorch's allocator line: 'RuntimeError: [enforce
    fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate
    805306368000 bytes. Error code 12 (Cannot allocate memory)'."""
    registry.register(allocate)
    res = Executor(registry, use_disk=False).run(wf_of("""
        kinograph: 1
        nodes:
          x: {type: test.number}
          big: {type: test.allocate, inputs: {a: x.float}}
        """, registry))
    assert res.failed == {"big": "out of memory: this node asked for 4.61 EB at once, more than this machine has; "
                                 "lower the frames, width or height it works on"}


@node("test.gpu_oom", category="Test")
def gpu_oom(ctx, a: FLOAT) -> FLOAT:
    """Fails as PyTorch does when a GPU runs out of memory."""
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_names_the_device_it_ran_on_not_the_preference(registry):
    from graph_engine.devices import resolve_device
    registry.register(gpu_oom)
    res = Executor(registry, use_disk=False, device="auto").run(wf_of("""
        kinograph: 1
        nodes:
          x: {type: test.number}
          big: {type: test.gpu_oom, inputs: {a: x.float}}
        """, registry))
    assert res.failed == {"big": f"out of memory on {resolve_device('auto')}: CUDA out of memory. Tried to allocate 2.00 GiB"}


def test_a_whole_run_leaves_out_a_half_wired_node_no_output_needs(registry, tmp_path):
    """A node parked half-wired while editing stopped the whole run ('required input ... is not
    connected'). Unless a save or metric needs it, it is left out with what it feeds, and named."""
    extra = ("  parked: {type: test.add}\n  after: {type: test.add, inputs: {a: parked.float}}\n"
             "  idle: {type: test.add, inputs: {a: x.float}}\n")
    wf = wf_of(CHAIN + extra, registry)
    events = []
    r = Executor(registry, disk=DiskCache(tmp_path, 1 << 30)).run(wf, on_event=events.append)
    assert r.ok and r.results["out"]["value"] == 6.0 and r.outputs["idle"]["float"] == 2.0
    assert sorted(CALLS) == ["idle", "out", "s", "t", "x", "y"]
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert logs == ["not run: parked, after (a required input is not connected or a required file is not named, "
                    "and no save or metrics node needs them)"]
    load_workflow(text=textwrap.dedent(CHAIN + extra), registry=registry)


def test_a_half_wired_node_an_output_needs_still_stops_the_run(registry, tmp_path):
    from graph_engine.errors import WorkflowError
    wf = wf_of(CHAIN.replace("inputs: {a: s.float}, ", ""), registry)
    with pytest.raises(WorkflowError, match=r"node t: required input 'a' \(FLOAT\) is not connected"):
        Executor(registry, disk=DiskCache(tmp_path, 1 << 30)).run(wf)


@node("test.greedy", category="Test")
def greedy(ctx, video: VIDEO, error: str = Param("memory")) -> VIDEO:
    """A lazy node whose frames cannot be computed: memory runs out (numpy's MemoryError, or OpenCV's
    error text) when a later node pulls them."""
    def reader(a, b):
        if error == "memory":
            raise MemoryError("Unable to allocate 24.9 MiB for an array with shape (1, 2160, 3840, 3)")
        raise RuntimeError("OpenCV(5.1.0) /io/opencv/modules/core/src/alloc.cpp:73: error: (-4:Insufficient memory) "
                           "Failed to allocate 10616832 bytes in function 'OutOfMemoryError'")
    return video.with_(reader=reader)


@pytest.mark.parametrize("error", ["memory", "opencv"])
def test_a_failure_in_lazy_frames_names_the_node_that_computes_them(registry, error, tmp_path):
    """A lazy node's frames are computed when the writer pulls them, so running out of memory there read
    'save failed: out of memory' (or OpenCV's allocator line), sending the user to the writer."""
    registry.register(greedy)
    res = Executor(registry, use_disk=False).run(wf_of(f"""
        kinograph: 1
        nodes:
          pattern: {{type: generate.test_pattern, params: {{frames: 4, width: 32, height: 32}}}}
          heavy: {{type: test.greedy, inputs: {{video: pattern.video}}, params: {{error: {error}}}}}
          save: {{type: io.save_video, inputs: {{video: heavy.video}}, params: {{path: o.mp4}}}}
        """, registry, path=tmp_path / "wf.yaml"))
    msg = res.failed["save"]
    assert msg.startswith("heavy (test.greedy), computing the frames save pulled: out of memory")
    assert "OpenCV(5.1.0)" not in msg and not (tmp_path / "o.mp4").exists()


def test_a_clip_keeps_a_window_of_chunks_but_not_a_whole_read():
    """Overlapping windows wider than the chunk cache are served from it (the chain upstream runs once), but a
    consumer reading the whole clip at once (a VAE encoding it) does not leave the clip held twice."""
    data = np.arange(40, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    read = []
    clip = Clip(40, 24, 4, 4, lambda a, b: read.extend(range(a, b)) or data[a:b], chunk=2)
    for a in range(0, 40, 2):
        assert np.array_equal(clip.frames(max(0, a - 6), a + 8), data[max(0, a - 6):a + 8])
    assert sorted(read) == list(range(40))
    whole = Clip(40, 24, 4, 4, lambda a, b: data[a:b], chunk=2)
    assert np.array_equal(whole.to_array(), data)
    assert sum(len(c) for c in whole._chunks.cache.values()) <= 3 * 2


@node("test.text_encoder", category="Test")
def fake_text_encoder(ctx) -> TEXT_ENCODER:
    """A stand-in text encoder handle (encode_prompt is counted, not run)."""
    return "umt5"


@node("test.guide", category="Test", output=True)
def guide(ctx, positive: CONDITIONING, negative: CONDITIONING) -> None:
    """Reports the conditionings a sampler would get."""
    ctx.report(positive=positive, negative=negative)


# An imported ComfyUI graph: one CLIPTextEncode (encode.text, `positive` linked only) per prompt.
IMPORTED_PROMPTS = """
kinograph: 1
nodes:
  te: {type: test.text_encoder}
  pos: {type: encode.text, inputs: {text_encoder: te.text_encoder}, params: {text: a cat}}
  neg: {type: encode.text, inputs: {text_encoder: te.text_encoder}, params: {text: blurry}}
  s: {type: test.guide, inputs: {positive: pos.positive, negative: NEG}}
"""


def test_an_imported_prompt_pair_encodes_each_prompt_once_and_a_linked_negative_is_still_made(registry, tmp_path,
                                                                                             monkeypatch):
    # Each imported CLIPTextEncode also put its unused empty negative through the text encoder: four UMT5 encodes
    # for a Wan graph's two prompts, the slowest load-and-encode of a CPU run, doubled.
    import nodes.generate.text as text
    encoded = []
    monkeypatch.setattr(text, "encode_prompt", lambda te, prompt, log, **kw: encoded.append(prompt) or f"<{prompt}>")
    registry.register(fake_text_encoder, guide)
    ex = Executor(registry, disk=DiskCache(tmp_path, 1 << 30))
    r = ex.run(wf_of(IMPORTED_PROMPTS.replace("NEG", "neg.positive"), registry))
    assert r.ok and sorted(encoded) == ["a cat", "blurry"]
    assert r.results["s"] == {"positive": "<a cat>", "negative": "<blurry>"}
    # Kinograph's own graph reads encode.text's negative: it is made, and the cached run above (which did not
    # make it) does not stand in for it.
    encoded.clear()
    r = ex.run(wf_of(IMPORTED_PROMPTS.replace("NEG", "pos.negative"), registry))
    assert r.ok and encoded == ["a cat", ""] and r.results["s"] == {"positive": "<a cat>", "negative": "<>"}
    # A node asked for by name makes all its outputs (a script reading them back).
    r = ex.run(wf_of(IMPORTED_PROMPTS.replace("NEG", "neg.positive"), registry), targets=["neg"], use_cache=False)
    assert r.ok and r.outputs["neg"]["negative"] == "<>"


SAMPLED = []


@node("test.sampler", category="Test", expensive=True)
def sampler(ctx, positive: CONDITIONING) -> FLOAT:
    """An expensive reader of one conditioning (a sampler): counted."""
    SAMPLED.append(positive)
    return 1.0


GENERATION = """
kinograph: 1
nodes:
  te: {type: test.text_encoder}
  pos: {type: encode.text, inputs: {text_encoder: te.text_encoder}, params: {text: a cat}}
  s: {type: test.sampler, inputs: {positive: pos.positive}}
"""


def test_linking_or_unlinking_a_prompts_negative_does_not_re_run_what_reads_its_positive(registry, tmp_path,
                                                                                          monkeypatch):
    # An unread negative was keyed into the encode's key, and so into the key of every node downstream of its
    # positive: adding a viewer on the negative (or taking it off) re-ran the sampler on the same positive.
    import nodes.generate.text as text
    encoded = []
    monkeypatch.setattr(text, "encode_prompt", lambda te, prompt, log, **kw: encoded.append(prompt) or f"<{prompt}>")
    registry.register(fake_text_encoder, sampler, guide)
    SAMPLED.clear()
    ex = Executor(registry, disk=DiskCache(tmp_path, 1 << 30))
    assert ex.run(wf_of(GENERATION, registry)).ok and encoded == ["a cat"] and SAMPLED == ["<a cat>"]
    viewed = GENERATION + "  v: {type: test.guide, inputs: {positive: pos.negative, negative: pos.negative}}\n"
    encoded.clear()
    r = ex.run(wf_of(viewed, registry))
    assert r.ok and r.results["v"] == {"positive": "<>", "negative": "<>"}
    assert SAMPLED == ["<a cat>"]               # the sampler's positive is the same: served from the cache
    assert ex.why("pos") == "output negative is read now (the last run left it unmade)"
    # The viewer taken off again: the encode made with both outputs serves, nothing is encoded again.
    encoded.clear()
    assert ex.run(wf_of(GENERATION, registry)).ok and encoded == [] and SAMPLED == ["<a cat>"]
