"""Wan 2.1 Fun Control (Wan2.1-Fun-*-Control): the i2v transformer reading a control video's latents and a start
frame's beside the noise. ComfyUI's own Fun Control templates stopped at WanFunControlToVideo (unmapped) and the
files were taken for plain image-to-video models. Tiny random-weight model from ComfyUI's single-file layout."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
NAME = "wan_tiny_fun_control_fp16.safetensors"


def wan_fun_control(root: Path) -> Path:
    from tiny_models import build_wan_comfy
    return build_wan_comfy(root, control=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from comfy_layouts import built
    with pytest.MonkeyPatch.context() as mp:
        for root in built(wan_fun_control, tmp_path_factory):
            mp.setenv("KINOGRAPH_MODELS", str(root / "models"))
            yield root


@pytest.fixture(scope="module")
def mm():
    from nodes.generate.model_manager import ModelManager
    return ModelManager(max_loaded=6)


def _video(n, seed, w=48, h=32):
    rng = np.random.default_rng(seed)
    return np.repeat(np.repeat(rng.integers(0, 256, (n, h // 8, w // 8, 3), dtype=np.uint8), 8, 1), 8, 2)


def _encode(pipe, frames: np.ndarray) -> torch.Tensor:
    """The Wan VAE's normalised latents of uint8 frames already at the latent's size, straight from diffusers."""
    vae = pipe.vae
    x = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    return (z - mean) / std


def test_fun_control_conditioning_is_laid_out_as_comfyui_lays_it(models, mm):
    """Detected as Fun Control (not image-to-video); the conditioning holds the control video's latents in the first
    16 extra channels (a shorter video: zeros after its latent frames) and the start frame's in the first latent
    frame of the next 16, each against the VAE's own encoding; a wider control video is centre-cropped."""
    from nodes.generate.image_cond import condition_fun_control
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import describe_model
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import empty_latent
    info = describe_model(models / "models" / "diffusion_models" / NAME)
    assert (info["variant"], info["loads"]) == ("control-dim128", "yes")
    vae = load_vae(mm, "wan_tiny_vae.safetensors", "cpu")
    pos = Conditioning("wan", torch.zeros(1, 4, 32))
    lat = empty_latent(vae, 9, 48, 32, 16.0)                          # 3 latent frames
    control, first = _video(5, 1), _video(1, 2)[0]
    cond = condition_fun_control(vae, pos, None, lat, Clip.from_array(control, 16.0), first,
                                 Conditioning("wan", torch.zeros(1, 5, 32)))["positive"]
    concat = cond.extra["concat"]
    assert concat.shape == (1, 32, 3, 4, 6)
    ref = _encode(vae.pipe, control)                                  # 5 frames: 2 latent frames
    assert torch.allclose(concat[:, :16, :2], ref, atol=1e-4) and concat[:, :16, 2:].abs().max() == 0
    assert torch.allclose(concat[:, 16:, :1], _encode(vae.pipe, first[None]), atol=1e-4)
    assert concat[:, 16:, 1:].abs().max() == 0
    wide = np.concatenate([_video(5, 3, w=16), control, _video(5, 4, w=16)], axis=2)   # 80 wide, 48 in the middle
    cropped = condition_fun_control(vae, pos, None, lat, Clip.from_array(wide, 16.0), None, None)["positive"]
    assert torch.allclose(cropped.extra["concat"][:, :16], concat[:, :16], atol=1e-4)
    with pytest.raises(NodeError, match="needs a control video"):
        condition_fun_control(vae, pos, None, lat, None, None, None)


def test_the_control_video_steers_and_the_wrong_conditioning_is_named(models, mm):
    """Sampling the Fun Control model from ComfyUI's file under two control videos gives two videos; image-to-video
    conditioning on it is named (it failed as "reads 48 channels but its conditioning gives 36")."""
    from nodes.generate.image_cond import condition_frames, condition_fun_control
    from nodes.generate.latent import Conditioning
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_vae
    from nodes.generate.vae_ops import empty_latent
    vae = load_vae(mm, "wan_tiny_vae.safetensors", "cpu")
    model = load_diffusion_model(mm, NAME, "default", "cpu")
    pos = Conditioning("wan", torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(0)))
    tokens = Conditioning("wan", torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1)))
    lat = empty_latent(vae, 5, 48, 32, 16.0)
    first = _video(1, 2)[0]

    def sample(control):
        cond = condition_fun_control(vae, pos, None, lat, Clip.from_array(control, 16.0), first, tokens)["positive"]
        return run_sampling(model, cond, None, lat, steps=2, cfg=1.0, sampler="euler", seed=3).samples
    a, b = sample(_video(5, 1)), sample(_video(5, 5))
    assert a.shape == (1, 16, 2, 4, 6) and (a - b).abs().max() > 1e-3
    framed = condition_frames(vae, pos, None, lat, first, None, tokens)["positive"]
    with pytest.raises(NodeError, match="through condition.fun_control, not condition.frames"):
        run_sampling(model, framed, None, lat, steps=1, cfg=1.0, sampler="euler")


def test_comfyui_fun_control_template_maps_wan_fun_control_to_video():
    """ComfyUI's wan2.1_fun_control template: WanFunControlToVideo becomes condition.fun_control with the control
    video (its Canny now control.canny), start frame and CLIP vision output connected, and the latent at the
    template's size and length. A control video from a node that does not convert is said, not dropped silently."""
    from app.comfyui import import_data
    data = json.loads((ROOT / "tests" / "data" / "comfyui" / "templates" / "wan2.1_fun_control.json").read_text())
    res = import_data(data)
    node = next(n for n in data["nodes"] if n["type"] == "WanFunControlToVideo")
    entry = res.report.entries[str(node["id"])]
    assert entry.status == "exact" and entry.notes == []
    g = res.graph
    (cond,) = [n for n in g.nodes.values() if n.type == "condition.fun_control"]
    assert {"vae", "positive", "negative", "control", "first", "image_embeds", "latent"} <= set(g.inputs[cond.id])
    assert g.nodes[g.inputs[cond.id]["control"][0]].type == "control.canny"
    (lat,) = [n for n in g.nodes.values() if n.type == "latent.empty" and g.inputs[cond.id]["latent"][0] == n.id]
    width, height, length = node["widgets_values"][:3]
    assert (lat.params["width"], lat.params["height"], lat.params["frames"]) == (width, height, length)
    # comfyui_controlnet_aux's CannyEdgePreprocessor in Canny's place is its control.canny_edges; a preprocessor
    # Kinograph does not have (MediaPipe's face mesh) is a red placeholder, and the control video stays linked to
    # it, as in ComfyUI, for whatever replaces it
    canny = next(n for n in data["nodes"] if n["type"] == "Canny")
    canny["type"], canny["widgets_values"] = "CannyEdgePreprocessor", [100, 200, 512]
    swapped = import_data(data)
    assert swapped.report.entries[str(node["id"])].notes == []
    control = swapped.graph.inputs[cond.id]["control"][0]
    assert swapped.graph.nodes[control].type == "control.canny_edges"
    canny["type"], canny["widgets_values"] = "MediaPipe-FaceMeshPreprocessor", [10, 0.5, 512]
    faced = import_data(data)
    control, port = faced.graph.inputs[cond.id]["control"]
    assert (faced.graph.nodes[control].type, port) == ("comfyui.MediaPipe-FaceMeshPreprocessor", "image")
    assert faced.report.entries[str(canny["id"])].status == "unmapped"


def _guided(mm, g):
    """The Fun Control model from ComfyUI's file, two random prompts on one control video, a 5-frame latent."""
    from nodes.generate.image_cond import condition_fun_control
    from nodes.generate.latent import Conditioning
    from nodes.generate.split import load_diffusion_model, load_vae
    from nodes.generate.vae_ops import empty_latent
    vae = load_vae(mm, "wan_tiny_vae.safetensors", "cpu")
    lat = empty_latent(vae, 5, 48, 32, 16.0)
    tokens = Conditioning("wan", torch.randn(1, 5, 32, generator=g))
    pos, neg = (condition_fun_control(vae, Conditioning("wan", torch.randn(1, 4, 32, generator=g)), None, lat,
                                      Clip.from_array(_video(5, 1), 16.0), None, tokens)["positive"]
                for _ in range(2))
    return load_diffusion_model(mm, NAME, "default", "cpu"), pos, neg, lat


def test_cfg_zero_star_as_comfyui_computes_it(models, mm):
    """guide.cfg_zero_star (ComfyUI's CFGZeroStar, on in the Fun Control templates): the post-CFG step against
    ComfyUI's optimized_scale written here in float64; it changes a guided run, and nothing at cfg 1."""
    from nodes.generate.nodes import cfg_zero_star_guide
    from nodes.generate.sampling import cfg_zero_star, run_sampling
    g = torch.Generator().manual_seed(0)
    x, cond, uncond = (torch.randn(2, 4, 3, 5, 6, generator=g) for _ in range(3))
    scale = 5.0
    guided = uncond + scale * (cond - uncond)
    a, b = (x - cond).double().reshape(2, -1), (x - uncond).double().reshape(2, -1)
    alpha = ((a * b).sum(1) / ((b * b).sum(1) + 1e-8)).view(2, 1, 1, 1, 1)
    want = guided.double() + uncond.double() * (alpha - 1) + scale * uncond.double() * (1 - alpha)
    assert torch.allclose(cfg_zero_star(x, cond, uncond, guided, scale).double(), want, atol=1e-5)
    assert torch.allclose(want, alpha * uncond.double() + scale * (cond.double() - alpha * uncond.double()),
                          atol=1e-5)
    model, pos, neg, lat = _guided(mm, g)

    def sample(m, cfg):
        return run_sampling(m, pos, neg, lat, steps=2, cfg=cfg, sampler="euler", seed=3).samples
    starred = cfg_zero_star_guide(None, model)
    assert (sample(starred, 5.0) - sample(model, 5.0)).abs().max() > 1e-4
    assert torch.allclose(sample(starred, 1.0), sample(model, 1.0), atol=1e-6)


def test_skip_layer_guidance_pushes_away_from_the_prediction_without_those_blocks(models, mm):
    """guide.skip_layer_guidance (ComfyUI's SkipLayerGuidanceDiT, in both Wan Fun templates): one Euler step to noise
    level 0 lands on the step's x0 prediction, so the result is checked against guided + scale (cond - cond with
    block 1 skipped), each made here by a plain run (the skipped one with the test's own stand-in for the block).
    Outside its share of the steps it changes nothing; a block the model lacks is named."""
    from nodes.generate.nodes import skip_layer_guidance
    from nodes.generate.sampling import run_sampling
    g = torch.Generator().manual_seed(4)
    model, pos, neg, lat = _guided(mm, g)

    def step(m, negative, cfg):
        return run_sampling(m, pos, negative, lat, steps=1, cfg=cfg, sampler="euler", seed=3).samples
    guided, cond = step(model, neg, 5.0), step(model, None, 1.0)
    block = model.pipe.transformer.blocks[1]
    block.forward = lambda hidden_states, *a, **k: hidden_states
    try:
        skipped = step(model, None, 1.0)
    finally:
        del block.forward
    assert (cond - skipped).abs().max() > 1e-3
    got = step(skip_layer_guidance(None, model, "1", 2.0, 0.0, 1.0, 0.0), neg, 5.0)
    assert torch.allclose(got, guided + (cond - skipped) * 2.0, atol=1e-4)
    assert torch.allclose(step(model, neg, 5.0), guided)         # the blocks are back as they were
    late = skip_layer_guidance(None, model, "1", 2.0, 0.5, 1.0, 0.0)      # the one step is at the top noise level
    assert torch.allclose(step(late, neg, 5.0), guided)
    with pytest.raises(NodeError, match="names block 5, but this model has 2 blocks"):
        step(skip_layer_guidance(None, model, "5", 2.0, 0.0, 1.0, 0.0), neg, 5.0)


def test_skip_layers_in_the_negative_pass_as_comfyuis_simple_kind(models, mm):
    """guide.skip_layers_negative (ComfyUI's SkipLayerGuidanceDiTSimple, calc_cond_batch_function): the negative
    prompt's prediction is made with block 1 skipped, the prompt's in full, and CFG mixes them. One Euler step to
    noise level 0 lands on the x0 prediction, so it is checked against uncond_skipped + cfg (cond - uncond_skipped),
    each made here by a plain run (the skipped one with the test's own stand-in for the block). Outside its share of
    the steps, or without CFG, it changes nothing."""
    from nodes.generate.nodes import skip_layers_negative
    from nodes.generate.sampling import run_sampling
    g = torch.Generator().manual_seed(5)
    model, pos, neg, lat = _guided(mm, g)

    def step(m, positive, negative, cfg):
        return run_sampling(m, positive, negative, lat, steps=1, cfg=cfg, sampler="euler", seed=3).samples
    guided, cond = step(model, pos, neg, 5.0), step(model, pos, None, 1.0)
    block = model.pipe.transformer.blocks[1]
    block.forward = lambda hidden_states, *a, **k: hidden_states
    try:
        uncond_skipped = step(model, neg, None, 1.0)
    finally:
        del block.forward
    assert (step(model, neg, None, 1.0) - uncond_skipped).abs().max() > 1e-3
    got = step(skip_layers_negative(None, model, "1", 0.0, 1.0), pos, neg, 5.0)
    assert torch.allclose(got, uncond_skipped + (cond - uncond_skipped) * 5.0, atol=1e-4)
    assert torch.allclose(step(model, pos, neg, 5.0), guided)         # the blocks are back as they were
    late = skip_layers_negative(None, model, "1", 0.5, 1.0)           # the one step is at the top noise level
    assert torch.allclose(step(late, pos, neg, 5.0), guided)
    assert torch.allclose(step(skip_layers_negative(None, model, "1", 0.0, 1.0), pos, None, 1.0), cond)


def test_skip_layers_on_a_model_without_the_blocks_name_the_node_used():
    """Both kinds refuse a model whose blocks they cannot skip; the negative-pass kind told the user to remove
    guide.skip_layer_guidance, a node the graph did not hold."""
    from types import SimpleNamespace

    from graph_engine import NodeError
    from nodes.generate.skip_layers import SkipLayers
    for negative, node in ((False, "guide.skip_layer_guidance"), (True, "guide.skip_layers_negative")):
        with pytest.raises(NodeError, match=rf"remove {node} for this model"):
            with SkipLayers.parse("1", 3.0, 0.0, 1.0, 0.0, negative=negative).skipped(SimpleNamespace(unet=None)):
                pass


def test_unet_attention_multiply_changes_nothing_on_wan(models, mm):
    """ComfyUI's UNetTemporalAttentionMultiply scales UNet attention weights by name, which Wan has none of: on
    the Fun templates' Wan model it is a no-op there and in Kinograph."""
    from nodes.generate.nodes import attention_multiply
    from nodes.generate.sampling import run_sampling
    model, pos, neg, lat = _guided(mm, torch.Generator().manual_seed(5))

    def sample(m):
        return run_sampling(m, pos, neg, lat, steps=1, cfg=5.0, sampler="euler", seed=3).samples
    assert torch.equal(sample(attention_multiply(None, model, 1.0, 1.0, 1.2, 1.3)), sample(model))


def test_comfyuis_fun_control_template_runs_end_to_end_on_tiny_models(models, tmp_path):
    """ComfyUI's wan2.1_fun_control template, every node mapped (Canny, WanFunControlToVideo, SkipLayerGuidanceDiT,
    CFGZeroStar, UNetTemporalAttentionMultiply were not): the model names set to the tiny files, the sizes shrunk to
    5 frames of 48x32, two steps, skip-layer guidance on the tiny model's block 1 (it has 2), run to a video."""
    import imageio.v3 as iio
    from PIL import Image
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    result = import_workflow(ROOT / "tests" / "data" / "comfyui" / "templates" / "wan2.1_fun_control.json")
    assert not result.report.blocking
    iio.imwrite(tmp_path / "control.mp4", _video(8, 6), fps=16, codec="libx264")
    Image.fromarray(_video(1, 2)[0]).save(tmp_path / "start.png")
    from comfy_layouts import on_tiny_wan
    on_tiny_wan(result.graph, NAME, {
        "latent.empty": dict(frames=5, width=48, height=32), "generate.sample": {"steps": 2},
        "guide.skip_layer_guidance": {"layers": "1"}, "io.load_image": {"path": str(tmp_path / "start.png")},
        "io.load_video": {"path": str(tmp_path / "control.mp4")}, "io.save_video": {"path": str(tmp_path / "out.mp4")}})
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    assert iio.imread(tmp_path / "out.mp4").shape[:3] == (5, 32, 48)
