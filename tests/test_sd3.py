"""Stable Diffusion 3 / 3.5 keyframes: the files an SD3 user holds (a diffusers StableDiffusion3Pipeline folder;
ComfyUI's checkpoints in Stability's key layout, with and without their text encoders; clip_l / clip_g / t5xxl files
as TripleCLIPLoader takes them) load, sample and give what diffusers' own StableDiffusion3Pipeline gives for the same
weights, prompt, negative and seed. The tiny model's Stability-named files are written by inverting diffusers'
converter by hand (tests/tiny_sd3.py), so the reference does not go through Kinograph's loading code."""
import sys
from pathlib import Path

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
    """kinograph info: the checkpoints say what they hold and which loader takes them; 3 medium, 3.5 large and an SD3.5
    ControlNet are told apart by their tensors (headers only), the ControlNet refused by name."""
    from nodes.generate.detect import detect_keys
    from nodes.generate.model_manager import describe_model, will_load
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
    cn = detect_keys({"pos_embed_input.proj.weight": (2432, 16, 2, 2), "controlnet_blocks.0.weight": (2432, 2432),
                      "transformer_blocks.0.attn.to_q.weight": (2432, 2432)})
    ok, why = will_load(cn)
    assert (cn.role, cn.family, ok) == ("controlnet", "sd3", False) and "3.5 ControlNets are not supported" in why


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
    """Every node maps; the latent is StableDiffusion3Pipeline's on ComfyUI's sgm_uniform levels with the empty
    negative and cfg 4.01."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
    monkeypatch.chdir(tmp_path)
    _, run = _imported_run(SIMPLE_API, tmp_path)
    got = run.outputs[next(n for n in run.outputs if n.startswith("k_sampler"))]["latent"].samples[:, :, 0]
    ref = StableDiffusion3Pipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)      # the levels are given shifted
    want = ref("a cat", negative_prompt="", width=W, height=H, sigmas=comfy_sgm_uniform(STEPS), guidance_scale=4.01,
               generator=torch.Generator().manual_seed(SEED), output_type="latent").images
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
