"""ComfyUI workflows imported and run end to end on the tiny random-weight models, with the model
file names remapped to the tiny model folders; and the new sampling capabilities on real pipelines."""
import json
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT / "tests" / "data" / "comfyui"
LOADERS = ("load.model", "load.animatediff", "load.diffusion_model", "load.text_encoder", "load.vae",
           "load.clip_vision")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    from tiny_models import build_all
    root = build_all(tmp_path_factory.mktemp("tiny_comfyui"), ("animatediff", "wan", "ltx"))
    yield root
    torch.set_num_threads(threads)


def use_model_folder(graph, folder, animatediff=False):
    """The model names remapped: every loader of the imported graph (checkpoint, split diffusion model,
    text encoder, VAE) replaced by one loader of a local diffusers folder holding all the parts."""
    loaders = [n for n in graph.nodes.values() if n.type in LOADERS]
    graph.add_node("load.animatediff" if animatediff else "load.model", "tiny", {"path": str(folder)})
    for link in list(graph.links()):
        if any(link.src == n.id for n in loaders):
            graph.connect("tiny", link.src_port, link.dst, link.dst_port)
    for n in loaders:
        graph.remove_node(n.id)


def _shrink(graph, out, frames, steps=2, size=64):
    for n in graph.nodes.values():
        if n.type == "latent.empty":
            n.params.update(frames=frames, width=size, height=size)
        elif n.type == "generate.sample":
            n.params["steps"] = steps
            if n.params.get("end_step", 10000) < 10000:
                n.params["end_step"] = steps // 2
            if n.params.get("start_step", 0) > 0:
                n.params["start_step"] = steps // 2
        elif n.type == "io.save_video":
            n.params["path"] = str(out / Path(n.params["path"]).name)
        elif n.type == "context.windows":
            n.params.update(length=8, overlap=2)


def _run(result, tmp_path):
    from graph_engine.api import Session, load_workflow
    wf = load_workflow(text=result.yaml)
    res = Session(device="cpu").run(wf, use_cache=False)
    assert res.ok, res.failed
    return res


def _frames(path):
    if path.suffix in (".webp", ".gif"):
        from PIL import Image
        with Image.open(path) as im:
            return im.n_frames
    import av
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.parametrize("name,family,frames", [("wan_t2v.json", "wan", 9), ("ltxv_t2v.json", "ltx", 9),
                                                ("wan22_t2v_14B.json", "wan", 5)])
def test_public_workflow_runs_on_tiny_models(tiny, tmp_path, name, family, frames):
    from app.comfyui import import_workflow
    result = import_workflow(DATA / name)
    use_model_folder(result.graph, tiny / family)
    _shrink(result.graph, tmp_path, frames, steps=4 if "wan22" in name else 2)
    _run(result, tmp_path)
    written = sorted(tmp_path.glob("*.*"))
    assert written and all(_frames(p) == frames for p in written if p.suffix in (".webp", ".webm", ".mp4"))


def test_animatediff_workflow_runs_on_tiny_models(tiny, tmp_path):
    from app.comfyui import import_data
    from comfyui_workflows import ANIMATEDIFF_API
    result = import_data(json.loads(json.dumps(ANIMATEDIFF_API)))
    use_model_folder(result.graph, tiny / "animatediff", animatediff=True)
    _shrink(result.graph, tmp_path, 8)
    _run(result, tmp_path)
    assert _frames(tmp_path / "AnimateDiff.mp4") == 8


# -- capabilities on real (tiny) pipelines ----------------------------------------------------------------
@pytest.fixture(scope="module")
def mm():
    from nodes.generate.model_manager import ModelManager
    return ModelManager(max_loaded=4)


def _wan_inputs(mm, tiny):
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    h = mm.load("wan", str(tiny / "wan"))
    parts = mm.components(h)
    pos = encode_prompt(parts["text_encoder"], "a cat")
    neg = encode_prompt(parts["text_encoder"], "")
    return h, pos, neg, empty_latent(parts["vae"], 5, 64, 64, 16.0)


def test_two_samplers_sharing_a_schedule_equal_one(mm, tiny):
    """Wan 2.2's two-expert split (steps 0-2 with leftover noise, then 2-4 without new noise) gives the
    same latent as one sampler running all four steps, here with the same expert twice."""
    from nodes.generate.sampling import run_sampling
    h, pos, neg, lat = _wan_inputs(mm, tiny)
    kw = dict(steps=4, cfg=3.5, sampler="euler", scheduler="simple", seed=11)
    full = run_sampling(h, pos, neg, lat, **kw)
    first = run_sampling(h, pos, neg, lat, end_step=2, leftover_noise=True, **kw)
    assert (first.samples - full.samples).abs().max() > 0.1           # still noisy after half the steps
    second = run_sampling(h, pos, neg, first, start_step=2, add_noise=False, **kw)
    assert torch.allclose(second.samples, full.samples, atol=1e-5)
    closed = run_sampling(h, pos, neg, lat, end_step=2, leftover_noise=False, **kw)
    assert not torch.allclose(closed.samples, first.samples)


def test_flow_shift_sets_the_schedule(mm, tiny):
    from nodes.generate.adapters import get_adapter
    from nodes.generate.samplers import flow_sigmas
    from nodes.generate.sampling import make_sigmas
    h, *_ = _wan_inputs(mm, tiny)
    ad = get_adapter("wan")
    for sched in ("default", "simple"):
        got = make_sigmas(ad, h.pipe, 10, sched, 1.0, (1, 16, 2, 8, 8), shift=8.0)
        assert torch.allclose(got, flow_sigmas(10, 8.0).double(), atol=1e-6)
    sd = get_adapter("animatediff")
    from graph_engine import NodeError
    with pytest.raises(NodeError, match="flow-matching"):
        make_sigmas(sd, None, 10, "default", 1.0, (1, 4, 2, 8, 8), shift=3.0)


def test_linear_cfg_rises_over_frames(mm, tiny):
    from nodes.generate.sampling import run_sampling
    h, pos, neg, lat = _wan_inputs(mm, tiny)
    # one step: every frame is denoised from the same input, so only the per-frame scale differs
    kw = dict(steps=1, sampler="euler", scheduler="simple", seed=3)
    ramp = run_sampling(h.with_option("min_cfg", 1.0), pos, neg, lat, cfg=5.0, **kw).samples
    flat5 = run_sampling(h, pos, neg, lat, cfg=5.0, **kw).samples
    flat1 = run_sampling(h, pos, neg, lat, cfg=1.0, **kw).samples
    assert torch.allclose(ramp[:, :, 0], flat1[:, :, 0], atol=1e-5)      # first latent frame: cfg 1
    assert torch.allclose(ramp[:, :, -1], flat5[:, :, -1], atol=1e-5)    # last latent frame: cfg 5


def test_clip_skip_takes_the_penultimate_layer(mm, tiny):
    from nodes.generate.text import encode_prompt
    h = mm.load("animatediff", str(tiny / "animatediff"))
    te = mm.components(h)["text_encoder"]
    pipe = te.pipe
    ids = pipe.tokenizer("a red fox", padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        out = pipe.text_encoder(ids, output_hidden_states=True)
        enc = pipe.text_encoder
        norm = getattr(enc, "final_layer_norm", None) or enc.text_model.final_layer_norm
        want = norm(out.hidden_states[-2])[0]
    got = encode_prompt(te, "a red fox", clip_skip=2).embeds[0]
    assert torch.allclose(got, want, atol=1e-5)
    last = encode_prompt(te, "a red fox").embeds[0]
    assert torch.allclose(last, out.last_hidden_state[0], atol=1e-5) and not torch.allclose(last, got, atol=1e-3)


def test_comfy_weighting_through_a_real_encoder(mm, tiny):
    from nodes.generate.prompts import clean_and_weights, token_weights
    from nodes.generate.adapters import get_adapter
    from nodes.generate.text import encode_prompt
    h = mm.load("animatediff", str(tiny / "animatediff"))
    te = mm.components(h)["text_encoder"]
    plain = encode_prompt(te, "a red fox").embeds[0]
    empty = encode_prompt(te, "").embeds[0]
    got = encode_prompt(te, "a (red:1.5) fox", weighting="comfy").embeds[0]
    clean, spans = clean_and_weights("a (red:1.5) fox")
    w = torch.tensor(token_weights(get_adapter("animatediff").token_offsets(te.pipe, clean), spans))
    assert (w == 1.5).sum() > 0
    want = empty + (plain - empty) * w[:, None]
    assert torch.allclose(got, want, atol=1e-5)
    kin = encode_prompt(te, "a (red:1.5) fox").embeds[0]
    assert not torch.allclose(kin, got, atol=1e-3)


def test_wan_video_wrapper_graph_runs_on_tiny_models(tiny, tmp_path):
    """kijai's WanVideoWrapper text-to-video graph, imported (its loaders, T5 encode, empty embeds, sampler with the
    wrapper's shift, decode, VHS combine), runs end to end."""
    from app.comfyui import import_data
    from comfyui_workflows import wan_wrapper_t2v
    result = import_data(wan_wrapper_t2v(lora=False))
    use_model_folder(result.graph, tiny / "wan")
    _shrink(result.graph, tmp_path, 9)
    _run(result, tmp_path)
    assert _frames(tmp_path / "WanVideoWrapper_T2V.mp4") == 9
