"""Before a run: how much work its samplers are (from the graph and the weight files' headers) and, on the CPU,
about how long; a warning past half an hour that never stops the run; a log's measured pace after the first
step. ComfyUI's Wan 2.1 text-to-video template, pointed at a tiny random-weight Wan's files."""
import json
import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.comfy_layouts import models_dir, on_tiny_wan  # noqa: E402

DATA = Path(__file__).parent / "data" / "comfyui"
SLOW = 1e9      # FLOP/s put in place of the measured matmul speed, so the hours told do not depend on this CPU


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    from tests.tiny_models import build_wan_comfy
    yield from models_dir(tmp_path_factory, build_wan_comfy, "estimate_wan")


def _template(folder: Path, settings=None) -> Path:
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    res = import_data(json.loads((DATA / "wan_t2v.json").read_text(encoding="utf-8")), name="wan_t2v")
    path = folder / "wan_t2v.yaml"
    path.write_text(res.yaml)
    wf = load_workflow(path, check=False)
    on_tiny_wan(wf.graph, "wan_tiny_t2v_fp16.safetensors", settings or {})
    wf.save(path)
    return path


def _on_cpu(monkeypatch, speed=SLOW, probed=None):
    """The estimate's device the CPU, its matrix speed `speed`; each probe's (device, thread) in `probed`."""
    import threading
    import graph_engine.devices
    import nodes.generate.estimate as est
    monkeypatch.setattr(graph_engine.devices, "resolve_device", lambda device: "cpu")

    def probe(device):
        if probed is not None:
            probed.append((device, threading.current_thread()))
        return speed
    monkeypatch.setattr(est, "matmul_speed", probe)


def _flops_counted(root: Path, frames: int, h: int, w: int) -> float:
    """One pass of the tiny Wan as torch's FLOP counter counts it, the model built on the meta device."""
    import torch
    from diffusers import WanTransformer3DModel
    from torch.utils.flop_counter import FlopCounterMode
    config = json.loads((root / "diffusers" / "transformer" / "config.json").read_text())
    with torch.device("meta"):
        model = WanTransformer3DModel.from_config(config)
        x, t, e = torch.empty(1, 16, frames, h, w), torch.empty(1), torch.empty(1, 512, config["text_dim"])
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x, t, e, return_dict=False)
    return fc.get_total_flops()


def _decode_flops_counted(root: Path, frames: int, h: int, w: int) -> float:
    """Decoding a latent with the tiny Wan VAE as torch's FLOP counter counts it, on the meta device."""
    import torch
    from diffusers import AutoencoderKLWan
    from torch.utils.flop_counter import FlopCounterMode
    config = json.loads((root / "diffusers" / "vae" / "config.json").read_text())
    with torch.device("meta"):
        vae = AutoencoderKLWan.from_config(config)
        z = torch.empty(1, 16, frames, h, w)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        vae.decode(z)
    return fc.get_total_flops()


def _encode_flops_counted(tokens: int) -> float:
    """One prompt through the tiny UMT5 encoder (tiny_models.t5_encoder, the file's) as torch's FLOP counter counts
    it, under fake tensors (with real ones on the CPU it misses the attention's products)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode
    from tests.tiny_models import t5_encoder
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = t5_encoder(32, umt5=True)
        ids = torch.ones(1, tokens, dtype=torch.long)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return fc.get_total_flops()


def test_wan_template_work_is_counted_from_its_graph_and_headers_and_validate_warns(wan, tmp_path, monkeypatch,
                                                                                      capsys):
    from safetensors import safe_open
    from app.cli import main
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    from nodes.generate.encoder_work import t5_encoder_flops
    from nodes.generate.estimate import CPU_EFFICIENCY, GPU_EFFICIENCY, decode_work, duration, encode_work, \
        pass_flops, sampler_work
    from nodes.generate.vae_work import diffusers_wan_vae_shapes, wan_vae_decode_flops
    path = _template(tmp_path)
    wf = load_workflow(path, check=False)
    [work] = sampler_work(wf, default_registry())
    # The template: KSampler 30 steps at cfg 6 with a negative prompt, 33 frames of 832x480.
    assert (work.node, work.family, work.unknown) == ("k_sampler_3", "wan", "")
    assert (work.steps, work.guidance, work.windows, work.passes) == (30, 2, 1, 60)
    assert (work.frames, work.width, work.height) == (33, 832, 480)
    assert work.tokens == 9 * (480 // 16) * (832 // 16)        # 4n+1 frames -> 9 latent frames, 2x2 patches of /8
    with safe_open(str(wan / "models" / "diffusion_models" / "wan_tiny_t2v_fp16.safetensors"), "pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert work.weights == sum(map(math.prod, shapes.values()))
    assert work.flops == 60 * pass_flops(shapes, "wan", 9, 60, 104, 2)[0]
    # A pass as torch counts it, at a size the tiny model's rotary table reaches.
    counted = _flops_counted(wan, 5, 32, 48)
    assert abs(pass_flops(shapes, "wan", 5, 32, 48, 2)[0] - counted) / counted < 0.05, counted
    # The VAE's decode of the sampler's 9 latent frames (the ComfyUI-layout file), against the counter's count of the
    # same VAE in diffusers' layout: it was not counted at all.
    [decode] = decode_work(wf, default_registry(), [work])
    with safe_open(str(wan / "models" / "vae" / "wan_tiny_vae.safetensors"), "pt") as f:
        vae = diffusers_wan_vae_shapes({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
    assert (decode.node, decode.frames) == ("vae_decode_8", 33) and decode.flops == wan_vae_decode_flops(vae, 9, 60, 104)
    counted = _decode_flops_counted(wan, 2, 4, 6)       # two latent frames: the later ones' time convolutions too
    assert abs(wan_vae_decode_flops(vae, 2, 4, 6) - counted) / counted < 0.01, counted
    # Its two encode.text nodes (CLIPTextEncode: `positive` read only), each its text alone through the UMT5 encoder
    # at 512 tokens (not counted): each also encoded an empty negative nothing read.
    with safe_open(str(wan / "models" / "text_encoders" / "umt5_tiny_fp16.safetensors"), "pt") as f:
        umt5 = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys() if k.startswith("encoder.")}
    encodes = encode_work(wf, default_registry())
    assert [(e.node, e.weights, e.flops) for e in encodes] == [
        (n, sum(map(math.prod, umt5.values())), t5_encoder_flops(umt5, 512))
        for n in ("clip_text_encode_6", "clip_text_encode_7")]
    assert t5_encoder_flops(umt5, 512) == _encode_flops_counted(512)

    _on_cpu(monkeypatch)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    text = sum(e.flops for e in encodes)
    hours = duration((work.flops + text) / (SLOW * CPU_EFFICIENCY[0]) + decode.flops / (SLOW * CPU_EFFICIENCY[1]))
    assert "k_sampler_3: 60 passes (30 steps x 2 (guidance: a negative pass each)) of a" in out
    assert "Wan 2.1/2.2 denoiser over 33 frames at 832x480 (14,040 latent tokens a pass)" in out
    assert "vae_decode_8: decoding 33 frames at 832x480 with the Wan 2.1 VAE: " in out
    assert "clip_text_encode_7: 1 prompt (its text) of 512 tokens through a 15,520-parameter UMT5 " \
           "text encoder" in out, out
    assert f"about {hours} of sampling, text encoding and VAE decoding on this CPU" in out, out
    assert f"warning: this run will take about {hours} on this CPU. To make it shorter: fewer steps (k_sampler_3 " \
           "runs 30: half as many take half the time); fewer frames or a smaller size (33 frames at 832x480); a " \
           "distilled model at cfg 1" in out and "a GPU (--device cuda)" in out
    assert main(["validate", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["estimate"]
    assert data["samplers"][0]["passes"] == 60 and data["warning"].startswith("this run will take about")
    assert data["decodes"] == [{"node": "vae_decode_8", "frames": 33, "width": 832, "height": 480,
                                "flops": decode.flops}]
    # On a GPU: its own matrix speed is measured, and its time says the GPU's share of that is assumed (it was told
    # no time at all, and would have been the CPU's probe); no "a GPU" among the cuts.
    probed = []
    _on_cpu(monkeypatch, speed=SLOW * 10, probed=probed)
    monkeypatch.setattr("graph_engine.devices.resolve_device", lambda device: "cuda:0")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    gpu = duration((work.flops + decode.flops + text) / (SLOW * 10 * GPU_EFFICIENCY))
    assert [d for d, _ in probed] == ["cuda:0"] and "60 passes" in out and "on this CPU" not in out
    assert f"about {gpu} of sampling, text encoding and VAE decoding on this GPU (cuda:0) (its matrix speed measured: 0.01 TFLOP/s in fp16; the " \
           "share of it a denoiser reaches on a GPU is assumed, not measured)" in out, out
    assert f"warning: this run will take about {gpu} on this GPU (cuda:0)" in out and "--device cuda" not in out


def test_a_run_warned_as_long_still_runs_and_writes(wan, tmp_path, monkeypatch, capsys):
    import nodes.generate.estimate as est
    from app.cli import main
    path = _template(tmp_path, {"latent.empty": {"frames": 5, "width": 32, "height": 32},
                                "generate.sample": {"steps": 2}})
    _on_cpu(monkeypatch)
    monkeypatch.setattr(est, "LONG_S", 0)
    assert main(["run", str(path), "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert "estimate: k_sampler_3: 4 passes (2 steps x 2" in err and "warning: this run will take about" in err
    assert err.index("warning:") < err.index("> k_sampler_3")
    assert (tmp_path / "out" / "ComfyUI.webp").stat().st_size > 0


def test_what_cannot_be_counted_is_named_not_guessed():
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    from nodes.generate.estimate import estimate
    root = Path(__file__).resolve().parents[1]
    est = estimate(load_workflow(root / "examples" / "mini_text_to_video.yaml", check=False), default_registry())
    assert est.lines == ["sample: not estimated: kinograph-mini's denoiser is not counted: a few million weights, "
                         "it samples in seconds on any CPU"] and est.seconds is None and est.warning is None



def test_values_the_run_refuses_are_named_not_counted():
    """`run` and the editor tell the estimate before the run validates the workflow: steps of 10**400 (at denoise
    0.5) or a latent 10**400 wide overflowed a float in a traceback, and a latent of -5 frames was counted as
    -1,560 tokens before the run refused it."""
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    from nodes.generate.estimate import estimate
    root = Path(__file__).resolve().parents[1]
    for node, param, value, why in (("sample", "steps", 10 ** 400, "is out of range (1..1000)"),
                                    ("latent", "width", 10 ** 400, "is out of range (8..8192)"),
                                    ("latent", "frames", -5, "-5 is out of range (1..100000)"),
                                    ("sample", "cfg", math.nan, "must be a finite number, got nan")):
        wf = load_workflow(root / "examples" / "mini_text_to_video.yaml", check=False)
        wf.graph.nodes[node].params[param] = value
        wf.graph.nodes["sample"].params["denoise"] = 0.5
        est = estimate(wf, default_registry())
        assert est.lines[0].startswith(f"sample: not estimated: {node}'s {param}: ") and why in est.lines[0] and \
            est.lines[0].endswith(", which the run refuses") and est.seconds is None, est.lines

def test_flux3_distilled_counts_one_pass_a_step_at_auto_cfg(tmp_path, monkeypatch):
    """FLUX.3 [klein]'s step-distilled file samples unguided when sample's cfg is left at auto (one pass a step, as
    Flux3DistilledAutoBlocks, which has no guider); the base file's auto is the pipeline's true CFG 3.5 (two)."""
    import torch
    from safetensors.torch import save_file
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    from nodes.generate.estimate import sampler_work
    models = tmp_path / "models" / "diffusion_models"
    models.mkdir(parents=True)
    p = "model.diffusion_model."
    base = {p + "early_stream_modulations.image.lin.weight": torch.zeros(48, 8),
            p + "single_blocks.0.linear1.weight": torch.zeros(8, 8)}
    save_file(base, str(models / "flux3-image-klein-base-tiny.safetensors"))
    save_file({**base, p + "ref_time_in.in_layer.weight": torch.zeros(8, 4)},
              str(models / "flux3-image-klein-tiny.safetensors"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    for name, passes in (("flux3-image-klein-tiny.safetensors", 1), ("flux3-image-klein-base-tiny.safetensors", 2)):
        wf = load_workflow(text=f"""kinograph: 1
nodes:
  load: {{type: load.diffusion_model, params: {{name: {name}}}}}
  te: {{type: load.text_encoder, params: {{name: qwen3vl_4b.safetensors, type: flux3}}}}
  vae: {{type: load.vae, params: {{name: flux2-vae.safetensors}}}}
  prompt: {{type: encode.text, inputs: {{text_encoder: te.text_encoder}}, params: {{text: a cat, negative: blur}}}}
  empty: {{type: latent.empty, inputs: {{vae: vae.vae}}, params: {{frames: 1, width: 64, height: 64}}}}
  sample:
    type: generate.sample
    inputs: {{model: load.model, positive: prompt.positive, negative: prompt.negative, latent: empty.latent}}
    params: {{steps: 4, seed: 1}}
""", check=False)
        [work] = sampler_work(wf, default_registry())
        assert (work.family, work.unknown, work.steps, work.guidance) == ("flux3", "", 4, passes), work


def test_a_log_tells_the_measured_pace_after_the_first_step(monkeypatch, capsys):
    import app.progress as progress
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    p = progress.ProgressPrinter()

    def at(t, **ev):
        clock[0] = t
        p(ev)
    at(0, event="node_started", node="k_sampler_3")
    at(120, event="node_progress", node="k_sampler_3", done=1, total=30)
    at(360, event="node_progress", node="k_sampler_3", done=3, total=30)
    at(400, event="node_started", node="decode")
    at(400.5, event="node_progress", node="decode", done=1, total=10)      # 4.5 s left: no pace line
    lines = capsys.readouterr().err.splitlines()
    assert "  k_sampler_3: 1/30 done in 2 min; about 58 min left at this pace" in lines
    assert "  k_sampler_3: 10% (3/30), about 54 min left" in lines
    assert "  decode: 10% (1/10)" in lines and not any("decode: 1/10 done" in line for line in lines)


def test_the_editor_logs_the_estimate_and_warning_as_the_run_starts(wan, qtbot, tmp_path, monkeypatch):
    """...measured off the GUI thread: the matrix speed probe froze the editor for 1.2 s when Run was pressed."""
    import threading
    import nodes.generate.estimate as est
    from app.editor.document import Document
    from app.editor.settings import EditorSettings
    from app.editor.window import MainWindow
    from graph_engine.registry import default_registry
    path = _template(tmp_path, {"latent.empty": {"frames": 5, "width": 32, "height": 32},
                                "generate.sample": {"steps": 2}})
    probed = []
    _on_cpu(monkeypatch, probed=probed)
    monkeypatch.setattr(est, "LONG_S", 0)
    w = MainWindow(Document.load(path, default_registry()), settings=EditorSettings(tmp_path / "editor.json"))
    badges = []
    w.runs.statusChanged.connect(lambda n, st: n == "k_sampler_3" and st is not None and badges.append(st.badge()))
    try:
        job = w.run()
        assert w.runs.wait_idle(120) and job.state == "done", job.error
        text = w.log.toPlainText()
        # the Log names the sampler as the canvas titles it (editor41b), the CLI by id
        assert f"estimate: {w.controller.named('k_sampler_3')}: 4 passes (2 steps x 2" in text and "warning: this run will take about" in text
        assert probed and all(t is not threading.main_thread() for _, t in probed), probed
        assert w.statusBar().currentMessage().startswith("this run will take about"), w.statusBar().currentMessage()
        # a tiny run's time reads as such ('about under a second' before), and the sampler's badge shows the
        # time told until the first step measures a pace
        seconds = est.estimate(job.workflow, w.doc.registry, "cpu").each["k_sampler_3"]
        assert seconds < 1 and "estimate: under a second of sampling, text encoding and VAE decoding on this CPU" in text, text
        assert badges[:2] == ["queued", f"0% · est. {round(seconds * 1000)} ms"], badges
    finally:
        w.runs.cancel(clear_queue=True)
        w.doc.undo.setClean()
        w.close()


def test_a_probe_out_of_gpu_memory_tells_no_time_and_the_editor_still_runs(wan, qtbot, tmp_path, monkeypatch):
    """CUDA present but full (the editor keeps the last run's models there): the probe's OutOfMemoryError came out
    of estimate(), a traceback before `kinograph run` started, and in the editor out of the runner's slot, leaving
    the job 'running' and the queue stuck for good. Now no time is told, saying why, and the run goes on."""
    import torch
    import nodes.generate.estimate as est
    from app.editor.document import Document
    from app.editor.runner import RunController
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry

    def full(device):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 32.00 MiB (GPU 0; 79.1 GiB in use)")
    monkeypatch.setattr("graph_engine.devices.resolve_device", lambda device: "cuda:0")
    monkeypatch.setattr(est, "matmul_speed", full)
    told = est.estimate(load_workflow(_template(tmp_path), check=False), default_registry(), "cuda")
    assert told.seconds is None and told.warning is None and told.samplers[0].flops > 0
    assert told.lines[-1] == "no time told: this device's matrix speed could not be measured (CUDA out of memory. " \
                             "Tried to allocate 32.00 MiB (GPU 0; 79.1 GiB in use))"

    def broken(*args):
        raise ValueError("a header the counter misreads")
    monkeypatch.setattr(est, "estimate", broken)
    registry = default_registry()
    runs = RunController(registry)
    logged = []
    runs.logged.connect(lambda level, text, node: logged.append(text))
    try:
        job = runs.submit(Document.from_text("version: 1\nnodes:\n  s:\n    type: generate.solid\n", registry=registry))
        assert runs.wait_idle(30) and job.state == "done", (job.state, job.error)
        assert "no estimate: ValueError: a header the counter misreads" in logged, logged

        def cancelled_meanwhile(*args):         # Esc pressed while the probe ran: no warning about a run not made
            runs.jobs[-1].cancel.cancel()
            return est.Estimate([], ["k: 2 passes"], 3600.0, "this run will take about 1.0 h")
        monkeypatch.setattr(est, "estimate", cancelled_meanwhile)
        job = runs.submit(Document.from_text("version: 1\nnodes:\n  s:\n    type: generate.solid\n", registry=registry))
        assert runs.wait_idle(30) and job.state == "cancelled", job.state
        assert not [t for t in logged if t.startswith(("estimate:", "warning:"))], logged
    finally:
        runs.shutdown()


def test_a_batch_tells_its_whole_estimate_before_its_first_case(wan, tmp_path, monkeypatch, capsys):
    """A sweep of the Wan template over steps: the sum of its cases' estimates, before any case runs (a batch
    told nothing until each case's log gave its pace)."""
    import app.batch
    from app.cli import main
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    from nodes.generate.estimate import duration, estimate
    path = _template(tmp_path)
    (tmp_path / "steps.yaml").write_text("grid:\n  k_sampler_3.steps: [10, 20, 40]\n")
    _on_cpu(monkeypatch)
    ran = []
    monkeypatch.setattr(app.batch, "_run_here", lambda args, jobs, payloads, report: ran.append(len(jobs)))
    assert main(["batch", str(path), "--sweep", str(tmp_path / "steps.yaml")]) in (0, 1)
    err = capsys.readouterr().err
    each = []
    for steps in (10, 20, 40):
        wf = load_workflow(path, check=False)
        wf.graph.nodes["k_sampler_3"].params["steps"] = steps
        each.append(estimate(wf, default_registry()).seconds)
    assert f"estimate: about {duration(sum(each))} in all on this CPU for 3 cases ({duration(each[0])} " \
           f"to {duration(each[2])} each)" in err, err
    assert "  the longest, case 3: k_sampler_3: 80 passes (40 steps x 2" in err, err
    assert ran == [3] and err.index("estimate: about") < err.index("the longest")
    # --skip-done after case 3 was rendered: the two cases left (it told the whole batch's time again)
    monkeypatch.setattr(app.batch, "done_before", lambda outputs, yaml: "steps: 40" in yaml)
    assert main(["batch", str(path), "--sweep", str(tmp_path / "steps.yaml"), "--skip-done"]) in (0, 1)
    err = capsys.readouterr().err
    assert f"estimate: about {duration(each[0] + each[1])} in all on this CPU for 2 cases" in err, err
    assert ran == [3, 2]
