"""HiDream-I1 keyframes: the files a ComfyUI user holds (the transformer in diffusion_models/, the four text encoders
as QuadrupleCLIPLoader takes them, FLUX.1's ae.safetensors) load, sample and give what diffusers' own
HiDreamImagePipeline gives for the same weights, prompt, negative and seed (tests/tiny_hidream.py: the reference is
built from the modules, not through Kinograph's loading). ComfyUI's three HiDream-I1 templates import and validate."""
import json
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W = H = 64
STEPS, SEED = 3, 7
ENCODERS = ("t5xxl_tiny.safetensors", "clip_g_hidream.safetensors", "llama_3.1_8b_tiny.safetensors",
            "clip_l_hidream.safetensors")       # any order, as QuadrupleCLIPLoader's slots are filled


@pytest.fixture(scope="module")
def hidream(tmp_path_factory):
    from comfy_layouts import built
    from tiny_hidream import build_hidream
    yield from built(build_hidream, tmp_path_factory)


@pytest.fixture
def models(hidream, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_MODELS", str(hidream / "models"))
    return hidream / "models"


def _parts():
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    mm = ModelManager()
    model = load_diffusion_model(mm, "hidream_i1_tiny.safetensors", "default", "cpu")
    te = load_text_encoder(mm, ENCODERS[0], ENCODERS[1], "auto", "cpu", ENCODERS[2], ENCODERS[3])
    vae = load_vae(mm, "ae.safetensors", "cpu")
    return model, te, vae


def _sample(model, te, vae, cfg, negative="blurry"):
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    pos, neg = encode_prompt(te, "a cat"), encode_prompt(te, negative)
    return run_sampling(model, pos, neg, empty_latent(vae, 1, W, H, 8.0), steps=STEPS, cfg=cfg, sampler="euler",
                        seed=SEED).samples[:, :, 0]


def _close(want, got):
    err = float((want - got).abs().max() / want.abs().max())
    assert err < 1e-4, err


def test_hidream_files_are_detected_and_a_missing_encoder_is_named(models):
    """The transformer file is told from the others by its names; three of the four encoders load, and encoding
    with them names the missing one and the loader that takes it (not a traceback from inside the pipeline)."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    det = detect_file(models / "diffusion_models" / "hidream_i1_tiny.safetensors")
    assert (det.role, det.family) == ("diffusion_model", "hidream")
    te = load_text_encoder(ModelManager(), "clip_l_hidream.safetensors", "clip_g_hidream.safetensors", "hidream",
                           "cpu", "t5xxl_tiny.safetensors")
    with pytest.raises(NodeError, match="has no Llama 3.1 8B.*name4, type hidream"):
        encode_prompt(te, "a cat")


@pytest.mark.parametrize("cfg", [5.0, 1.0])
def test_hidream_split_files_match_hidreamimagepipeline(hidream, models, cfg):
    """full (true CFG with a negative) and dev / fast (cfg 1, no negative pass): the transformer file, the four
    encoders in any order and FLUX.1's VAE sample what HiDreamImagePipeline samples at its scheduler's shift 3.
    (model.flow_shift is ComfyUI's ModelSamplingSD3: its line from 1 to 0, not diffusers' 1 to 1/1000; the
    template test runs dev's shift 6 that way.)"""
    from tiny_hidream import reference
    model, te, vae = _parts()
    assert (model.family, te.family, vae.family) == ("hidream", "hidream", "flux")
    ref = reference(hidream)
    ref.default_sample_size = W // 8     # the pipeline scales every size to this area (128 -> 1024x1024): keep 64x64
    want = ref("a cat", negative_prompt="blurry", width=W, height=H, num_inference_steps=STEPS, guidance_scale=cfg,
               generator=torch.Generator().manual_seed(SEED), output_type="latent").images
    _close(want, _sample(model, te, vae, cfg))


def test_comfyui_hidream_templates_import_and_dev_runs(hidream, models, tmp_path, monkeypatch):
    """ComfyUI's HiDream-I1 full, dev and fast templates (UNETLoader, QuadrupleCLIPLoader, VAELoader ae,
    ModelSamplingSD3, EmptySD3LatentImage, KSampler) import with every node mapped and validate. dev (shift 6, cfg 1)
    runs on the tiny model under the template's file names (64x64, 2 steps); with euler its latent is
    HiDreamImagePipeline's with the template's prompt, negative and seed on Kinograph's levels (ComfyUI's normal
    schedule at shift 6: its two timesteps are 1000 and 1000 x the least level, whose level is shifted once more)."""
    from app.comfyui import import_data
    from comfy_layouts import link_as, sampled_latent
    from comfyui_corpus import check
    from tiny_hidream import reference
    for name in ("full", "dev", "fast"):
        good, how = check(TEMPLATES / f"hidream_i1_{name}.json")
        assert good, how
    for link, target in (("diffusion_models/hidream_i1_dev_fp8.safetensors", "diffusion_models/hidream_i1_tiny.safetensors"),
                         ("text_encoders/t5xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders/t5xxl_tiny.safetensors"),
                         ("text_encoders/t5xxl_fp8_e4m3fn_scaled", "text_encoders/t5xxl_tiny"),
                         ("text_encoders/llama_3.1_8b_instruct_fp8_scaled.safetensors",
                          "text_encoders/llama_3.1_8b_tiny.safetensors"),
                         ("text_encoders/llama_3.1_8b_instruct_fp8_scaled", "text_encoders/llama_3.1_8b_tiny"),
                         ("text_encoders/clip_g_hidream", "text_encoders/clip_l_hidream")):
        link_as(models / link, models / target)
    data = json.loads((TEMPLATES / "hidream_i1_dev.json").read_text("utf-8"))
    monkeypatch.chdir(tmp_path)
    res = import_data(data)
    yaml = res.yaml.replace("width: 1024", f"width: {W}").replace("height: 1024", f"height: {H}")
    yaml = yaml.replace("steps: 28", "steps: 2")
    assert yaml.count(f"width: {W}") == 1 and "steps: 2" in yaml and "sampler: lcm" in yaml, yaml

    def run(yaml):
        return sampled_latent(tmp_path / "hidream.kino.yaml", yaml)
    assert torch.isfinite(run(yaml)).all()       # lcm, as imported
    got = run(yaml.replace("sampler: lcm", "sampler: euler"))
    text = [n["widgets_values"][0] for n in data["nodes"] if n["type"] == "CLIPTextEncode"]
    seed = next(n for n in data["nodes"] if n["type"] == "KSampler")["widgets_values"][0]
    ref = reference(hidream, shift=1.0)
    ref.default_sample_size = W // 8
    least = 6 * 0.001 / (1 + 5 * 0.001)
    want = ref(text[0], negative_prompt=text[1], width=W, height=H, sigmas=[1.0, 6 * least / (1 + 5 * least)],
               guidance_scale=1.0,
               generator=torch.Generator().manual_seed(seed), output_type="latent").images
    _close(want, got)


def test_dual_cfg_as_comfyuis_dualcfgguider(models):
    """guide.dual_cfg (ComfyUI's DualCFGGuider, in the HiDream-E1 and OmniGen2 templates) against Guider_DualCFG's
    maths written out here: one Euler step to noise level 0 lands on the step's x0 prediction, so each style is
    checked against the three prompts' predictions, each made by a plain run at cfg 1. regular is
    cfg_function(middle, negative, cfg2) + cfg1 (prompt - middle), with CFGNorm's post-CFG step on that cfg_function
    (as in the E1.1 template); nested is negative + cfg2 (middle + cfg1 (prompt - middle) - negative)."""
    from nodes.generate.nodes import cfg_norm_guide, dual_cfg_guide
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    model, te, vae = _parts()
    pos, mid, neg = (encode_prompt(te, t) for t in ("a cat", "blurry", "a dog on a sofa"))
    lat = empty_latent(vae, 1, W, H, 8.0)

    def step(m, p, n, cfg):
        return run_sampling(m, p, n, lat, steps=1, cfg=cfg, sampler="euler", seed=SEED).samples.double()
    cond, middle, uncond = (step(model, c, None, 1.0) for c in (pos, mid, neg))
    assert (cond - middle).abs().max() > 1e-3 and (middle - uncond).abs().max() > 1e-3
    cfg1, cfg2 = 3.0, 1.5
    _close(uncond + cfg2 * (middle - uncond) + cfg1 * (cond - middle),
           step(dual_cfg_guide(None, model, mid, cfg2, "regular"), pos, neg, cfg1))
    _close(uncond + cfg2 * (middle + cfg1 * (cond - middle) - uncond),
           step(dual_cfg_guide(None, model, mid, cfg2, "nested"), pos, neg, cfg1))
    pair = uncond + cfg2 * (middle - uncond)        # ComfyUI's CFGNorm: cond_denoised is the middle's here
    capped = pair * (middle.norm(dim=1, keepdim=True) / (pair.norm(dim=1, keepdim=True) + 1e-8)).clamp(0.0, 1.0)
    normed = dual_cfg_guide(None, cfg_norm_guide(None, model, 1.0, False), mid, cfg2, "regular")
    _close(capped + cfg1 * (cond - middle), step(normed, pos, neg, cfg1))
    with pytest.raises(NodeError, match="guide.dual_cfg guides between three prompts: connect sample's negative"):
        step(dual_cfg_guide(None, model, mid, cfg2, "regular"), pos, None, 1.0)


def test_hidream_e1_reads_the_picture_as_comfyuis_model_does(hidream, models):
    """HiDream-E1 (the I1 transformer's files) edits with the picture's latent on the prompt (condition.control_image,
    ComfyUI's InstructPixToPixConditioning), sampled with the E1 templates' DualCFGGuider: the prompt with the
    picture, the negative text with it, the negative text without. The reference is ComfyUI's HiDream model written
    out on diffusers' transformer and HiDreamImagePipeline's prompt encoding: the picture VAE-encoded (mean, FLUX.1's
    latent format (z - 0.1159) x 0.3611) and put right of the noise, the wide latent run through the transformer at
    timestep 1000, the left part of its output negated as the velocity. A 32x64 picture makes that latent square,
    which diffusers runs unpadded as ComfyUI runs every size. One Euler step from noise level 1 lands on
    noise - velocity."""
    from graph_engine.clip import Clip
    from nodes.generate.image_cond import condition_control_image
    from nodes.generate.nodes import dual_cfg_guide
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from tiny_hidream import reference
    model, te, vae = _parts()
    g = torch.Generator().manual_seed(3)
    pixels = torch.randint(0, 256, (1, 64, 32, 3), generator=g, dtype=torch.uint8)
    made = condition_control_image(vae, encode_prompt(te, "a cat"), encode_prompt(te, "blurry"),
                                   Clip.from_array(pixels.numpy()))
    lat = made["latent"]
    noise = torch.randn(lat.samples.shape, generator=g)
    got = run_sampling(dual_cfg_guide(None, model, made["negative"], 2.0, "regular"), made["positive"],
                       encode_prompt(te, "blurry"), lat, steps=1, cfg=5.0, sampler="euler", seed=0,
                       noise=noise).samples[:, :, 0]

    ref = reference(hidream)
    with torch.no_grad():
        z = ref.vae.encode(pixels.permute(0, 3, 1, 2).float() / 255 * 2 - 1).latent_dist.mean
        picture = (z - 0.1159) * 0.3611
        x = noise[:, :, 0]

        def velocity(prompt, with_picture):
            t5, _, llama, _, pooled, _ = ref.encode_prompt(prompt, prompt, prompt, prompt,
                                                           do_classifier_free_guidance=False, max_sequence_length=128)
            wide = torch.cat([x, picture], dim=-1) if with_picture else x
            out = ref.transformer(hidden_states=wide, timesteps=torch.tensor([1000.0]), encoder_hidden_states_t5=t5,
                                  encoder_hidden_states_llama3=llama, pooled_embeds=pooled, return_dict=False)[0]
            return -out[..., :x.shape[-1]]
        cond, middle, uncond = (x - velocity(p, w) for p, w in (("a cat", True), ("blurry", True), ("blurry", False)))
    assert (cond - x + velocity("a cat", False)).abs().max() > 1e-3        # the picture changes the prediction
    _close(uncond + 2.0 * (middle - uncond) + 5.0 * (cond - middle), got)


def test_comfyui_hidream_e1_templates_import_and_full_runs(hidream, models, tmp_path, monkeypatch):
    """ComfyUI's HiDream-E1 templates (InstructPixToPixConditioning, DualCFGGuider; E1.1's with CFGNorm and its cfgs
    from primitive nodes) import with every node mapped and validate; E1 full's runs on the tiny model under the
    template's file names (its 768x768 picture at 32x32, 2 steps) and saves the edited picture."""
    from PIL import Image
    from app.comfyui import import_data
    from comfy_layouts import imported_template
    from comfyui_corpus import check
    from graph_engine.api import Session, load_workflow
    for name in ("hidream_e1_1", "hidream_e1_full"):
        good, how = check(TEMPLATES / f"{name}.json")
        assert good, how
    links = [("diffusion_models/hidream_e1_full_bf16.safetensors", "diffusion_models/hidream_i1_tiny.safetensors"),
             ("text_encoders/t5xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders/t5xxl_tiny.safetensors"),
             ("text_encoders/t5xxl_fp8_e4m3fn_scaled", "text_encoders/t5xxl_tiny"),
             ("text_encoders/llama_3.1_8b_instruct_fp8_scaled.safetensors",
              "text_encoders/llama_3.1_8b_tiny.safetensors"),
             ("text_encoders/llama_3.1_8b_instruct_fp8_scaled", "text_encoders/llama_3.1_8b_tiny"),
             ("text_encoders/clip_g_hidream", "text_encoders/clip_l_hidream")]
    _, yaml = imported_template(models, links, TEMPLATES / "hidream_e1_full.json", (1024, 1024), (28, 2))
    yaml = yaml.replace("width: 768", "width: 32").replace("height: 768", "height: 32")
    assert "width: 32" in yaml and "steps: 2" in yaml and "cfg: 5" in yaml and "middle_cfg: 2" in yaml, yaml
    # cond2 (the negative text with the picture) is the middle prompt; sample's negative is the text alone
    assert "middle: instruct_pix_to_pix_conditioning_52.negative" in yaml, yaml
    assert "negative: clip_text_encode_7.positive" in yaml.split("sampler_custom_advanced_54:")[1], yaml
    e1_1 = import_data(json.loads((TEMPLATES / "hidream_e1_1.json").read_text("utf-8"))).yaml
    assert "guide.cfg_norm" in e1_1 and "cfg: 3" in e1_1 and "middle_cfg: 1.5" in e1_1, e1_1
    Image.fromarray(torch.randint(0, 256, (48, 40, 3), dtype=torch.uint8).numpy()).save(
        tmp_path / "hidream_e1_full_input_image.jpg")
    monkeypatch.chdir(tmp_path)
    wf = tmp_path / "hidream_e1.kino.yaml"
    wf.write_text(yaml)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    assert len(list((tmp_path / "out").rglob("*.png"))) == 1
