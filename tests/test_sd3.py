"""Stable Diffusion 3 / 3.5 keyframes: the files an SD3 user holds (a diffusers StableDiffusion3Pipeline folder;
ComfyUI's checkpoints in Stability's key layout, with and without their text encoders; clip_l / clip_g / t5xxl files
as TripleCLIPLoader takes them) load, sample and give what diffusers' own StableDiffusion3Pipeline gives for the same
weights, prompt, negative and seed. The tiny model's Stability-named files are written by inverting diffusers'
converter by hand (tests/tiny_sd3.py), so the reference does not go through Kinograph's loading code."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
W, H, STEPS, CFG, SEED = 64, 48, 3, 4.5, 7


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    from comfy_layouts import built
    from tiny_sd3 import build_sd3
    yield from built(build_sd3, tmp_path_factory)


@pytest.fixture
def models(sd3, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_MODELS", str(sd3 / "models"))
    return sd3 / "models"


@pytest.fixture(scope="module")
def reference(sd3):
    """StableDiffusion3Pipeline's own latent ([1, 16, h, w]) for "a cat", negative "blurry"."""
    from diffusers import StableDiffusion3Pipeline
    ref = StableDiffusion3Pipeline.from_pretrained(str(sd3 / "diffusers"), local_files_only=True)
    return ref("a cat", negative_prompt="blurry", width=W, height=H, num_inference_steps=STEPS, guidance_scale=CFG,
               generator=torch.Generator().manual_seed(SEED), output_type="latent").images


def _sample(model, text_encoder, vae, **kw):
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    pos, neg = encode_prompt(text_encoder, "a cat"), encode_prompt(text_encoder, "blurry")
    return run_sampling(model, pos, neg, empty_latent(vae, 1, W, H, 8.0), steps=STEPS, cfg=CFG, sampler="euler",
                        seed=SEED, **kw).samples[:, :, 0]


def comfy_conditioning(pipe, text):
    """ComfyUI's SD3 conditioning (test_comfy_long_prompts.comfy_sd3: CLIP windows, then T5's tokens padded to 77, not
    diffusers' 256), as wide as the tiny T5, which imported workflows' CLIPTextEncode gives."""
    from test_comfy_long_prompts import comfy_sd3
    embeds, pooled = comfy_sd3(pipe, text)
    return embeds[..., :pipe.text_encoder_3.config.d_model], pooled


def _close(want, got):
    err = float((want - got).abs().max() / want.abs().max())
    assert err < 1e-4, err


def test_sd3_diffusers_folder_matches_pipeline(sd3, reference):
    from nodes.generate.model_manager import ModelManager, detect_family
    assert detect_family(sd3 / "diffusers")[0] == "sd3"
    mm = ModelManager()
    h = mm.load("sd3", str(sd3 / "diffusers"))
    p = mm.components(h)
    _close(reference, _sample(h, p["text_encoder"], p["vae"]))


def test_sd3_checkpoint_with_its_text_encoders_matches_pipeline(models, reference):
    """sd3.5_medium_incl_clips_t5xxl-style: MMDiT, VAE and the three encoders from one file, through load.model."""
    from nodes.generate.model_manager import ModelManager, detect_family
    assert detect_family(models / "checkpoints" / "sd3.5_medium_tiny_incl_clips_t5xxl.safetensors")[0] == "sd3"
    mm = ModelManager()
    h = mm.load("sd3", "sd3.5_medium_tiny_incl_clips_t5xxl.safetensors")
    p = mm.components(h)
    _close(reference, _sample(h, p["text_encoder"], p["vae"]))


def test_sd3_checkpoint_with_triple_clip_files_matches_pipeline(models, reference):
    """sd3.5_medium.safetensors (MMDiT and VAE) with clip_g, t5xxl and clip_l given in any order, as TripleCLIPLoader
    takes them."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    mm = ModelManager()
    h = mm.load("sd3", "sd3.5_medium_tiny.safetensors")
    p = mm.components(h)
    assert p["text_encoder"] is None
    te = load_text_encoder(mm, "clip_g.safetensors", "t5xxl_fp16.safetensors", "auto", "cpu",
                           "clip_l.safetensors")
    assert te.family == "sd3"
    _close(reference, _sample(h, te, p["vae"]))


def test_sd3_reads_clip_l_files_pooled_output_unprojected(sd3, models):
    """A clip_l.safetensors with a real (not identity) text_projection, as the file shared with FLUX.1 holds: SD3's
    pooled embedding takes CLIP-L's end token unprojected (ComfyUI's SD3ClipModel, return_projected_pooled=False),
    OpenCLIP-G's projected, from the checkpoint's own encoders and from TripleCLIPLoader's files alike."""
    from diffusers import StableDiffusion3Pipeline
    from safetensors.torch import load_file
    from test_comfy_long_prompts import comfy_sd3
    from transformers import CLIPTextModelWithProjection
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    state = {k: v.float() for k, v in load_file(str(models / "clip" / "clip_l.safetensors")).items()}
    proj = state["text_projection.weight"]
    assert not torch.allclose(proj, torch.eye(proj.shape[0]), atol=1e-2)
    folder = StableDiffusion3Pipeline.from_pretrained(str(sd3 / "diffusers"), local_files_only=True)
    clip_l = CLIPTextModelWithProjection(folder.text_encoder.config)
    clip_l.load_state_dict(state)
    ref = StableDiffusion3Pipeline(**{**folder.components, "text_encoder": clip_l})   # the file's projection in it
    _, want = comfy_sd3(ref, "a (cat:1.2)")
    mm = ModelManager()
    triple = load_text_encoder(mm, "clip_l.safetensors", "clip_g.safetensors", "auto", "cpu", "t5xxl_fp16.safetensors")
    own = mm.components(mm.load("sd3", "sd3.5_medium_tiny_incl_clips_t5xxl.safetensors"))["text_encoder"]
    for te in (triple, own):
        got = encode_prompt(te, "a (cat:1.2)", weighting="comfy").pooled
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_sd3_split_files_without_t5_match_pipeline_without_t5(sd3, models):
    """The MMDiT alone (diffusion_models/), the VAE alone (sd3_vae, told apart from FLUX.1's ae by its name) and only
    the two CLIPs (DualCLIPLoader, type sd3): T5's part of the prompt is zeros, as StableDiffusion3Pipeline makes it
    without text_encoder_3."""
    from diffusers import StableDiffusion3Pipeline
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    mm = ModelManager()
    model = load_diffusion_model(mm, "sd3.5_medium_tiny_mmdit.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "clip_l.safetensors", "clip_g.safetensors", "sd3", "cpu")
    vae = load_vae(mm, "sd3_vae.safetensors", "cpu")
    assert (model.family, te.family, vae.family) == ("sd3", "sd3", "sd3")
    ref = StableDiffusion3Pipeline.from_pretrained(str(sd3 / "diffusers"), text_encoder_3=None, tokenizer_3=None,
                                                   local_files_only=True)
    want = ref("a cat", negative_prompt="blurry", width=W, height=H, num_inference_steps=STEPS, guidance_scale=CFG,
               generator=torch.Generator().manual_seed(SEED), output_type="latent").images
    _close(want, _sample(model, te, vae))


def test_sd3_files_are_detected_and_listed(models):
    """kinograph info: the checkpoints say what they hold and which loader takes them; 3 medium and 3.5 large are told
    apart by their tensors (headers only)."""
    from nodes.generate.detect import detect_keys
    from nodes.generate.model_manager import describe_model
    got = [describe_model(models / "checkpoints" / f) for f in ("sd3.5_medium_tiny.safetensors",
                                                                "sd3.5_medium_tiny_incl_clips_t5xxl.safetensors")]
    assert [(g["family"], g["variant"], g["role"], g["loads"]) for g in got] == [("sd3", "3.5-medium", "checkpoint",
                                                                                 "yes")] * 2
    assert "load.text_encoder with clip_l, clip_g, t5xxl" in got[0]["note"] and "all three" in got[1]["note"]
    block = {"model.diffusion_model.x_embedder.proj.weight": (1536, 16, 2, 2),
             "model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight": (4608, 1536)}
    assert detect_keys(block).variant == "3-medium"
    large = dict(block, **{"model.diffusion_model.joint_blocks.0.x_block.attn.ln_q.weight": (64,)})
    assert detect_keys(large).variant == "3.5-large"


def test_sd3_checkpoint_without_text_encoders_says_what_to_connect(models):
    """load.sd3 on sd3.5_medium.safetensors (MMDiT and VAE only): the log names the TripleCLIPLoader files to give."""
    from graph_engine.context import Context
    from nodes.generate.loaders import load_parts
    from nodes.generate.model_manager import ModelManager
    events = []
    ctx = Context("load", device="cpu", emit=events.append, models=ModelManager())
    parts = load_parts(ctx, "auto", "sd3.5_medium_tiny.safetensors")
    assert parts["model"].family == "sd3" and parts["text_encoder"] is None and parts["vae"] is not None
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any("holds no text_encoder" in m and "clip_l, clip_g and t5xxl" in m for m in logs), logs


def test_encode_sd3_gives_each_encoder_its_prompt(sd3):
    """encode.sd3's text goes to T5-XXL, text_l to CLIP-L and text_g to OpenCLIP-G, as StableDiffusion3Pipeline's
    prompt_3, prompt and prompt_2."""
    from diffusers import StableDiffusion3Pipeline
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.text import encode_sd3
    mm = ModelManager()
    te = mm.components(mm.load("sd3", str(sd3 / "diffusers")))["text_encoder"]
    c = encode_sd3(te, "a cat", "a dog", "a bird")
    ref = StableDiffusion3Pipeline.from_pretrained(str(sd3 / "diffusers"), local_files_only=True)
    embeds, _, pooled, _ = ref.encode_prompt("a dog", "a bird", "a cat", device="cpu",
                                             do_classifier_free_guidance=False)
    assert torch.allclose(c.embeds, embeds, atol=1e-4) and torch.allclose(c.pooled, pooled, atol=1e-4)
    assert not torch.allclose(c.pooled, encode_sd3(te, "a cat", "", "").pooled, atol=1e-2)
    with pytest.raises(NodeError, match="encode.sd3 is for Stable Diffusion 3"):
        encode_sd3(None, "a cat", "", "")


def test_sd3_skip_layer_guidance_matches_pipeline(sd3):
    """guide.skip_layer_guidance on SD3 skips the joint blocks as diffusers' skip_guidance_layers does: the same latent
    on the steps both steer (diffusers from the step after the first; here from 0.1 of the way: the same two steps)."""
    from diffusers import StableDiffusion3Pipeline
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.skip_layers import SkipLayers
    mm = ModelManager()
    h = mm.load("sd3", str(sd3 / "diffusers"))
    p = mm.components(h)
    got = _sample(h.with_option("skip_layer_guidance", SkipLayers.parse("1", 3.0, 0.1, 1.0, 0.0)),
                  p["text_encoder"], p["vae"])
    ref = StableDiffusion3Pipeline.from_pretrained(str(sd3 / "diffusers"), local_files_only=True)
    want = ref("a cat", negative_prompt="blurry", width=W, height=H, num_inference_steps=STEPS, guidance_scale=CFG,
               generator=torch.Generator().manual_seed(SEED), output_type="latent", skip_guidance_layers=[1],
               skip_layer_guidance_scale=3.0, skip_layer_guidance_start=0.0, skip_layer_guidance_stop=1.0).images
    _close(want, got)


def test_sd3_skip_layers_in_the_negative_pass(sd3):
    """guide.skip_layers_negative (ComfyUI's SkipLayerGuidanceDiTSimple) on SD3's joint blocks: one Euler step to 0
    lands on the x0 prediction, checked against uncond_skipped + cfg (cond - uncond_skipped), the skipped run made
    with the test's own stand-in for joint block 1 (text and picture handed on unchanged)."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.nodes import skip_layers_negative
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    h = mm.load("sd3", str(sd3 / "diffusers"))
    p = mm.components(h)
    pos, neg = encode_prompt(p["text_encoder"], "a cat"), encode_prompt(p["text_encoder"], "blurry")
    lat = empty_latent(p["vae"], 1, W, H, 8.0)

    def step(m, positive, negative, cfg):
        return run_sampling(m, positive, negative, lat, steps=1, cfg=cfg, sampler="euler", seed=SEED).samples
    cond = step(h, pos, None, 1.0)
    block = h.pipe.transformer.transformer_blocks[1]
    block.forward = lambda hidden_states, encoder_hidden_states, *a, **k: (encoder_hidden_states, hidden_states)
    try:
        uncond_skipped = step(h, neg, None, 1.0)
    finally:
        del block.forward
    assert (step(h, neg, None, 1.0) - uncond_skipped).abs().max() > 1e-3
    _close(uncond_skipped + (cond - uncond_skipped) * CFG, step(skip_layers_negative(None, h, "1", 0.0, 1.0), pos,
                                                                neg, CFG))


# ComfyUI's SD 3.5 template (Comfy-Org/workflow_templates sd3.5_simple_example.json) in API form: the checkpoint with
# its text encoders, CLIPTextEncode for both prompts, KSampler euler / sgm_uniform at cfg 4.01. Its size, steps and
# seed are the tiny model's.
SIMPLE_API = {
    "4": {"class_type": "CheckpointLoaderSimple",
          "inputs": {"ckpt_name": "sd3.5_medium_tiny_incl_clips_t5xxl.safetensors"}},
    "16": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
    "40": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "53": {"class_type": "EmptySD3LatentImage", "inputs": {"width": W, "height": H, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"seed": SEED, "steps": STEPS, "cfg": 4.01, "sampler_name": "euler",
                                               "scheduler": "sgm_uniform", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["16", 0], "negative": ["40", 0],
                                               "latent_image": ["53", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "sd3", "images": ["8", 0]}},
}


def comfy_sgm_uniform(steps: int, shift: float = 3.0):
    """ComfyUI's sgm_uniform on an SD3 model (ModelSamplingDiscreteFlow, shift 3): timesteps evenly from 1000 to the
    smallest level's, the last dropped, each through the shifted line (written out from ComfyUI's formulas)."""
    def level(t):
        return shift * t / (1 + (shift - 1) * t)
    start, end = 1000.0, level(1 / 1000) * 1000
    return [level((start + (end - start) * i / steps) / 1000) for i in range(steps)]


def _imported_run(api, folder):
    from comfy_layouts import imported_run
    return imported_run(api, folder, "sd3")


def test_comfyui_sd35_template_imports_and_samples_as_comfyui(models, tmp_path, monkeypatch):
    """Every node maps; the latent is StableDiffusion3Pipeline's on ComfyUI's sgm_uniform levels, given ComfyUI's
    conditioning of the prompt and of the empty negative, and cfg 4.01."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
    monkeypatch.chdir(tmp_path)
    _, run = _imported_run(SIMPLE_API, tmp_path)
    got = run.outputs[next(n for n in run.outputs if n.startswith("k_sampler"))]["latent"].samples[:, :, 0]
    ref = StableDiffusion3Pipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)      # the levels are given shifted
    (pos, pooled), (neg, neg_pooled) = (comfy_conditioning(ref, t) for t in ("a cat", ""))
    want = ref(prompt_embeds=pos, pooled_prompt_embeds=pooled, negative_prompt_embeds=neg,
               negative_pooled_prompt_embeds=neg_pooled, width=W, height=H, sigmas=comfy_sgm_uniform(STEPS),
               guidance_scale=4.01, generator=torch.Generator().manual_seed(SEED), output_type="latent").images
    _close(want, got)


def test_comfyui_sd3_triple_clip_graph_imports_and_runs(models, tmp_path, monkeypatch):
    """The checkpoint without encoders, TripleCLIPLoader, CLIPTextEncodeSD3's three prompts, ModelSamplingSD3 and
    SkipLayerGuidanceSD3 (ComfyUI's SD3 examples' nodes) all map and run."""
    api = {k: dict(v, inputs=dict(v["inputs"])) for k, v in SIMPLE_API.items()}
    api["4"]["inputs"]["ckpt_name"] = "sd3.5_medium_tiny.safetensors"
    api["11"] = {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                              "clip_name2": "clip_g.safetensors",
                                                              "clip_name3": "t5xxl_fp16.safetensors"}}
    api["16"] = {"class_type": "CLIPTextEncodeSD3", "inputs": {"clip_l": "a cat", "clip_g": "a cat, sharp",
                                                               "t5xxl": "a cat on a table", "empty_padding": "none",
                                                               "clip": ["11", 0]}}
    api["40"]["inputs"]["clip"] = ["11", 0]
    api["13"] = {"class_type": "ModelSamplingSD3", "inputs": {"shift": 3.0, "model": ["4", 0]}}
    api["14"] = {"class_type": "SkipLayerGuidanceSD3", "inputs": {"layers": "1", "scale": 3.0, "start_percent": 0.01,
                                                                  "end_percent": 0.15, "model": ["13", 0]}}
    api["3"]["inputs"]["model"] = ["14", 0]
    monkeypatch.chdir(tmp_path)
    res, _ = _imported_run(api, tmp_path)
    for want in ("encode.sd3", "name3: t5xxl_fp16.safetensors", "type: sd3", "guide.skip_layer_guidance"):
        assert want in res.yaml, res.yaml


# -- SD 3.5 Large ControlNets ------------------------------------------------------------------------------------------
# Stability's sd3.5_large_controlnet_canny / _depth / _blur.safetensors in controlnet/ and diffusers' SD3ControlNetModel
# folders, as StableDiffusion3ControlNetPipeline runs them. The tiny nets' files are written in Stability's names by
# inverting diffusers' convert_sd3_controlnet_to_diffusers by hand (tests/tiny_sd3.py).
CANNY = "sd3.5_large_controlnet_canny.safetensors"


@pytest.fixture(scope="module")
def nets(sd3):
    """A canny net as Stability's file; a second net as a diffusers folder (no kind of its own) and as a file in
    diffusers' names."""
    from safetensors.torch import save_file
    from tiny_sd3 import controlnet, stability_controlnet
    cn = sd3 / "models" / "controlnet"
    cn.mkdir()
    save_file({k: v.half().contiguous() for k, v in stability_controlnet(controlnet(3).state_dict(), 1).items()},
              str(cn / CANNY))
    other = controlnet(4)
    other.save_pretrained(str(cn / "sd35_depth_diffusers"))
    save_file(other.state_dict(), str(cn / "sd35_depth_diffusers_names.safetensors"))
    return cn


def _cn_picture():
    """A control picture with edges and a gradient, so it encodes to a latent unlike the noise."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([xx * 4, yy * 5, ((xx // 8 + yy // 8) % 2) * 255], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _vae_input(picture, kind):
    """What the VAE reads for a picture (uint8) given to a net of this kind: diffusers' SD3CannyImageProcessor's
    x * 127.5 + 0.5 for canny (x in 0..1), ComfyUI's inverted depth, the picture in -1..1 for blur."""
    a = torch.from_numpy(picture).permute(2, 0, 1)[None].float() / 255
    return {"canny": a * 127.5 + 0.5, "depth": 1 - 2 * a, "blur": 2 * a - 1}[kind]


def _cn_kinograph(mm, model, controls):
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    clip = Clip.from_array(_cn_picture()[None], 8.0)
    for path, strength, mode in controls:
        model = apply_control(mm, model, clip, path, strength, "none", 100, 200, mode=mode)
    p = mm.components(model)
    return _sample(model, p["text_encoder"], p["vae"])


@pytest.fixture(scope="module")
def sd3_parts(sd3):
    """The diffusers folder's components, loaded once for the reference pipelines."""
    from diffusers import StableDiffusion3Pipeline
    return StableDiffusion3Pipeline.from_pretrained(str(sd3 / "diffusers"), local_files_only=True).components


def _cn_diffusers(parts, nets, images, scales, monkeypatch, prompt="a cat", scheduler=None, **kw):
    """StableDiffusion3ControlNetPipeline's latent, each control image given as the tensor its VAE reads, the VAE told
    to take the posterior's mean, as Kinograph's (and ComfyUI's) encodes do, where diffusers draws a sample."""
    from diffusers import SD3MultiControlNetModel, StableDiffusion3ControlNetPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mean)
    one = len(nets) == 1
    ref = StableDiffusion3ControlNetPipeline(**dict(parts, scheduler=scheduler or parts["scheduler"]),
                                             controlnet=nets[0] if one else SD3MultiControlNetModel(nets))
    kw = {"negative_prompt": "blurry", "num_inference_steps": STEPS, "guidance_scale": CFG, **kw}
    return ref(prompt=prompt, width=W, height=H, control_image=images[0] if one else images,
               controlnet_conditioning_scale=scales[0] if one else scales,
               generator=torch.Generator().manual_seed(SEED), output_type="latent", **kw).images


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_sd35_controlnets_steer_as_the_diffusers_pipeline(models, nets, sd3_parts, reference, monkeypatch):
    """Stability's canny file at strength 0.8 gives StableDiffusion3ControlNetPipeline's latent within 1e-4 while it
    moves the picture by orders more; with a second net stacked (the diffusers folder told depth: the picture
    inverted, as ComfyUI gives it), SD3MultiControlNetModel's. It was refused: "3.5 ControlNets are not supported"."""
    from diffusers import SD3ControlNetModel
    from nodes.generate.model_manager import ModelManager
    from tiny_sd3 import controlnet
    mm = ModelManager()
    model = mm.load("sd3", "sd3.5_medium_tiny_incl_clips_t5xxl.safetensors")
    one = _cn_kinograph(mm, model, [(CANNY, 0.8, "auto")])
    canny = _vae_input(_cn_picture(), "canny")
    want = _cn_diffusers(sd3_parts, [controlnet(3)], [canny], [0.8], monkeypatch)
    assert _err(want, one) < 1e-4 and _err(want, reference) > 1e-2, (_err(want, one), _err(want, reference))
    two = _cn_kinograph(mm, model, [(CANNY, 0.8, "auto"), ("sd35_depth_diffusers", 0.6, "depth")])
    want = _cn_diffusers(sd3_parts, [controlnet(3), SD3ControlNetModel.from_pretrained(
        str(nets / "sd35_depth_diffusers"))], [canny, _vae_input(_cn_picture(), "depth")], [0.8, 0.6], monkeypatch)
    assert _err(want, two) < 1e-4 and _err(want, one) > 1e-2, (_err(want, two), _err(want, one))


def test_sd35_controlnet_files_are_listed_and_misuse_is_named(models, nets):
    """kinograph info lists Stability's file and the diffusers folder (listed as an unknown folder) as loading; a
    file in diffusers' names says to load its folder, an InstantX SD3 (medium) net is refused by name; a kind the net
    does not read and the file in diffusers' names given to control.apply name the file and what to do."""
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.detect import detect_keys
    from nodes.generate.model_manager import ModelManager, describe_model, will_load
    got = [describe_model(nets / f) for f in (CANNY, "sd35_depth_diffusers", "sd35_depth_diffusers_names.safetensors")]
    assert [(g["family"], g["variant"], g["role"], g["loads"]) for g in got] == [
        ("sd3", "3.5-large", "controlnet", "yes"), ("sd3", "3.5-large", "controlnet", "yes"),
        ("sd3", "3.5-large", "controlnet", "no")], got
    assert "set control.apply's mode to canny or depth" in got[1]["note"] and "diffusers folder" in got[2]["note"]
    instantx = detect_keys({"pos_embed_input.proj.weight": (1536, 16, 2, 2), "context_embedder.weight": (1536, 4096),
                            "controlnet_blocks.0.weight": (1536, 1536),
                            "transformer_blocks.0.attn.to_q.weight": (1536, 1536)})
    assert will_load(instantx)[0] is False and "InstantX SD3 ControlNet" in will_load(instantx)[1]
    # the file's kind: a control_type that names none (empty, out of range) is the file's error, not a blur net's
    from nodes.generate.sd3_control import file_kind
    assert [file_kind(torch.tensor([v]), "x") for v in (0.0, 1.0, 2.0)] + [file_kind(None, "x")] == [
        "blur", "canny", "depth", ""]
    for bad in (torch.tensor([]), torch.tensor([7.0]), torch.tensor([float("nan")])):
        with pytest.raises(NodeError, match=r"cn.safetensors's control_type \(.*\) is none of 0 \(blur\)"):
            file_kind(bad, "cn.safetensors")
    mm = ModelManager()
    model = mm.load("sd3", "sd3.5_medium_tiny_incl_clips_t5xxl.safetensors")
    clip = Clip.from_array(_cn_picture()[None], 8.0)
    with pytest.raises(NodeError, match="reads a blur, canny, depth picture, not 'tile'"):
        apply_control(mm, model, clip, CANNY, 1.0, "none", 100, 200, mode="tile")
    with pytest.raises(NodeError, match="sd35_depth_diffusers_names.safetensors: an SD 3.5 ControlNet in diffusers' "
                                        "names loads from its diffusers folder"):
        apply_control(mm, model, clip, "sd35_depth_diffusers_names.safetensors", 1.0, "none", 100, 200)


def comfy_simple(steps: int, shift: float = 3.0):
    """ComfyUI's simple schedule on an SD3 model: every (1000 / steps)-th of its 1000 shifted levels, noisiest first
    (written out from ComfyUI's formulas)."""
    table = [shift * (i / 1000) / (1 + (shift - 1) * (i / 1000)) for i in range(1, 1001)]
    return [table[-(1 + int(i * 1000 / steps))] for i in range(steps)]


def test_comfyui_sd35_canny_template_samples_as_the_diffusers_pipeline(models, nets, sd3_parts, tmp_path,
                                                                      monkeypatch):
    """ComfyUI's own SD 3.5 Large canny template (tests/data/comfyui/templates: ImageScale, Canny, ControlNetLoader,
    ConditioningZeroOut's negative, ControlNetApplyAdvanced with the checkpoint's VAE, KSampler euler / simple), at
    the tiny model's size and steps: StableDiffusion3ControlNetPipeline's latent on ComfyUI's simple levels, given
    ComfyUI's Canny edges of the picture and a zero negative. Its run stopped at control.apply ("ControlNet works with
    AnimateDiff, Stable Diffusion (1.5 and XL) and FLUX.1 models, not sd3")."""
    import json
    from PIL import Image
    from comfy_layouts import imported_run
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
    from nodes.generate.control import canny_comfy
    from tiny_sd3 import controlnet
    data = json.loads((ROOT / "tests" / "data" / "comfyui" / "templates" /
                       "sd3.5_large_canny_controlnet_example.json").read_text("utf-8"))
    Image.fromarray(_cn_picture()).save(tmp_path / "input.png")
    widgets = {"CheckpointLoaderSimple": ["sd3.5_medium_tiny_incl_clips_t5xxl.safetensors"],
               "LoadImage": [str(tmp_path / "input.png"), "image"], "ImageScale": ["bilinear", W, H, "center"],
               "EmptySD3LatentImage": [W, H, 1], "KSampler": [SEED, "fixed", STEPS, 4.5, "euler", "simple", 1]}
    for n in data["nodes"]:
        n["widgets_values"] = widgets.get(n["type"], n["widgets_values"])
    monkeypatch.chdir(tmp_path)
    _, run = imported_run(data, tmp_path, "sd3.5_canny_controlnet")
    got = run.outputs["k_sampler_3"]["latent"].samples[:, :, 0]
    embeds, pooled = comfy_conditioning(StableDiffusion3Pipeline(**sd3_parts),
                                        "crystal pink dragon on a blue mystery sky, hyperdetailed")
    edges = canny_comfy(_cn_picture(), 0.3, 0.6)
    flat = FlowMatchEulerDiscreteScheduler(shift=1.0)      # the levels are given shifted
    want = _cn_diffusers(sd3_parts, [controlnet(3)], [_vae_input(edges, "canny")], [0.66], monkeypatch,
                         prompt=None, prompt_embeds=embeds, pooled_prompt_embeds=pooled, negative_prompt=None,
                         negative_prompt_embeds=torch.zeros_like(embeds),
                         negative_pooled_prompt_embeds=torch.zeros_like(pooled), sigmas=comfy_simple(STEPS),
                         num_inference_steps=None, guidance_scale=4.5, scheduler=flat)
    assert _err(want, got) < 1e-4, _err(want, got)
