"""Qwen-Image-Edit keyframes: the pictures to edit are read by Qwen2.5-VL's vision tower with the prompt
(encode.qwen_edit: the edit template, one picture; plus, Edit-2509's, several) and given to the transformer as
reference latents. With ComfyUI's files (qwen_image_edit_*.safetensors, Qwen2.5-VL as qwen_2.5_vl_7b_fp8_scaled with
its vision tower) and with diffusers' Qwen/Qwen-Image-Edit folder, the latent is what diffusers' own
QwenImageEditPipeline and QwenImageEditPlusPipeline make of the same weights, pictures and seed; ComfyUI's
Qwen-Image-Edit template imports with every node mapped and runs."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

W, H = 64, 48
PROMPT = "make the cat red"
AREA = 64 * 64          # the pictures' sizes are the pipelines' rule at this area (1024 x 1024 costs seconds)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from comfy_layouts import built
    from tiny_qwen import build_qwen_edit
    yield from built(build_qwen_edit, tmp_path_factory)


@pytest.fixture
def models(qwen, monkeypatch):
    """The models folder, and both sides' picture areas made small the same way: diffusers' module constants and
    Kinograph's."""
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit as edit, pipeline_qwenimage_edit_plus as plus
    from nodes.generate import qwen_edit
    monkeypatch.setenv("KINOGRAPH_MODELS", str(qwen / "models"))
    small = edit.calculate_dimensions
    monkeypatch.setattr(edit, "calculate_dimensions", lambda area, ratio: small(AREA, ratio))
    monkeypatch.setattr(plus, "VAE_IMAGE_SIZE", AREA)
    monkeypatch.setattr(plus, "CONDITION_IMAGE_SIZE", 32 * 32)
    monkeypatch.setattr(qwen_edit, "VAE_AREA", AREA)
    monkeypatch.setattr(qwen_edit, "PLUS_VL_AREA", 32 * 32)
    return qwen / "models"


def _picture(seed, w=40, h=30):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _reference(folder, pictures, plus: bool, steps=2, seed=7, zero_cond_t=False):
    """diffusers' own pipeline's latent [1, 16, h, w] for the pictures (PIL), true_cfg_scale 1; zero_cond_t: the
    transformer built as Qwen-Image-Edit-2511's (the same weights)."""
    import diffusers
    from PIL import Image
    from tiny_qwen import edit_processor
    cls = diffusers.QwenImageEditPlusPipeline if plus else diffusers.QwenImageEditPipeline
    base = diffusers.DiffusionPipeline.from_pretrained(str(folder / "Qwen-Image"), local_files_only=True)
    if zero_cond_t:
        t = base.transformer
        base.transformer = type(t).from_config({**t.config, "zero_cond_t": True})
        base.transformer.load_state_dict(t.state_dict())
    ref = cls(processor=edit_processor(base.tokenizer), **base.components)
    images = [Image.fromarray(p) for p in pictures]
    packed = ref(image=images if plus else images[0], prompt=PROMPT, width=W, height=H, num_inference_steps=steps,
                 true_cfg_scale=1.0, generator=torch.Generator().manual_seed(seed), output_type="latent").images
    return ref._unpack_latents(packed, H, W, ref.vae_scale_factor)[:, :, 0]


def _sample(model, te, vae, pictures, template, steps=2, seed=7, method=None):
    from nodes.generate.qwen_edit import encode_edit
    from nodes.generate.reference import with_method
    from nodes.generate.sampling import run_sampling
    from nodes.generate.vae_ops import empty_latent
    cond = encode_edit(te, vae, PROMPT, pictures, template)
    cond = cond if method is None else with_method(cond, method)
    return run_sampling(model, cond, None, empty_latent(vae, 1, W, H, 8.0), steps=steps, cfg=1.0,
                        sampler="euler", seed=seed).samples[:, :, 0]


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_qwen_image_edit_matches_diffusers_pipelines(models):
    """ComfyUI's split files (qwen_image_edit_fp8_e4m3fn, the fp8_scaled Qwen2.5-VL with its vision tower, the
    tokenizer ComfyUI bundles, qwen_image_vae) and the Qwen/Qwen-Image-Edit folder: the edit template's latent is
    QwenImageEditPipeline's, the plus template's with two pictures QwenImageEditPlusPipeline's on the 2509 file (relative error < 1e-4),
    while another picture moves it by far more. Edit files were refused by name before."""
    import diffusers
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    mm = ModelManager()
    name = "qwen_image_edit_fp8_e4m3fn.safetensors"
    assert describe_model(models / "diffusion_models" / name)["loads"] == "yes"
    model = load_diffusion_model(mm, name, "default", "cpu")
    te = load_text_encoder(mm, "qwen_2.5_vl_tiny_fp8_scaled.safetensors", "", "qwen_image", "cpu")
    vae = load_vae(mm, "qwen_image_vae.safetensors", "cpu")
    one, two = _picture(1), _picture(2, 32, 40)
    want = _reference(models.parent, [one], plus=False)
    got = _sample(model, te, vae, [one], "edit")
    assert _err(want, got) < 1e-4, _err(want, got)
    other = _sample(model, te, vae, [_picture(3)], "edit")
    assert _err(got, other) > 100 * max(_err(want, got), 1e-6), (_err(got, other), _err(want, got))

    assert describe_model(models.parent / "Qwen-Image-Edit")["family"] == "qwenimage"
    folder = mm.load("qwenimage", str(models.parent / "Qwen-Image-Edit"))
    p = mm.components(folder)
    assert _err(want, _sample(folder, p["text_encoder"], p["vae"], [one], "edit")) < 1e-4
    # encode.text on the Edit folder (a negative prompt, say) reads the prompt alone with Qwen-Image's template, as
    # ComfyUI's CLIPTextEncode does; it called the Edit pipeline's encoder, which wants a picture and its processor
    plain = diffusers.QwenImagePipeline.from_pretrained(str(models.parent / "Qwen-Image"), local_files_only=True)
    with torch.no_grad():
        alone = plain.encode_prompt("a cat", device="cpu")[0]
    assert _err(alone, encode_prompt(p["text_encoder"], "a cat").embeds) < 1e-5

    model = load_diffusion_model(mm, "qwen_image_edit_2509_fp8_e4m3fn.safetensors", "default", "cpu")
    want = _reference(models.parent, [one, two], plus=True)
    got = _sample(model, te, vae, [one, two], "plus")
    assert _err(want, got) < 1e-4, _err(want, got)
    swapped = _sample(model, te, vae, [one, _picture(4, 32, 40)], "plus")
    assert _err(got, swapped) > 100 * max(_err(want, got), 1e-6)

    # Edit-2511's file (the marker): its pictures read at timestep zero, as the pipeline with zero_cond_t; the
    # method on the conditioning switches that on the 2509 file too (ComfyUI's index_timestep_zero), and off
    want11 = _reference(models.parent, [one, two], plus=True, zero_cond_t=True)
    model11 = load_diffusion_model(mm, "qwen_image_edit_2511_bf16.safetensors", "default", "cpu")
    got11 = _sample(model11, te, vae, [one, two], "plus")
    assert _err(want11, got11) < 1e-4, _err(want11, got11)
    assert _err(got, got11) > 100 * max(_err(want11, got11), 1e-6)
    assert _err(want11, _sample(model, te, vae, [one, two], "plus", method="index_timestep_zero")) < 1e-4
    assert _err(want, _sample(model11, te, vae, [one, two], "plus", method="index")) < 1e-4


def test_qwen_image_edit_refusals_name_the_fix(models):
    """What Qwen-Image-Edit cannot read is named: a text encoder file without the vision tower, two pictures on the
    one-picture template, a VAE taken as Wan 2.1's (the same network, other weights and statistics: the references
    were encoded silently wrong), references placed by offset (FLUX.1 Kontext's) rather than by index."""
    from safetensors.torch import load_file, save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.qwen_edit import encode_edit
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    te_dir = models / "text_encoders"
    state = load_file(str(te_dir / "qwen_2.5_vl_tiny_fp8_scaled.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("visual.")}, str(te_dir / "qwen_lm_only.safetensors"))
    mm = ModelManager()
    blind = load_text_encoder(mm, "qwen_lm_only.safetensors", "", "qwen_image", "cpu")
    with pytest.raises(NodeError, match="no vision tower"):
        encode_edit(blind, None, PROMPT, [_picture(1)], "edit")
    te = load_text_encoder(mm, "qwen_2.5_vl_tiny_fp8_scaled.safetensors", "", "qwen_image", "cpu")
    with pytest.raises(NodeError, match="template plus"):
        encode_edit(te, None, PROMPT, [_picture(1), _picture(2)], "edit")
    model = load_diffusion_model(mm, "qwen_image_edit_fp8_e4m3fn.safetensors", "default", "cpu")
    vae = load_vae(mm, "qwen_image_vae.safetensors", "cpu")
    (models / "vae" / "wan_2.1_vae.safetensors").symlink_to(models / "vae" / "qwen_image_vae.safetensors")
    wan = load_vae(mm, "wan_2.1_vae.safetensors", "cpu")
    with pytest.raises(NodeError, match="qwen_image_vae"):
        encode_edit(te, wan, PROMPT, [_picture(1)], "edit")
    with pytest.raises(NodeError, match="by index"):
        _sample(model, te, vae, [_picture(1)], "edit", method="offset")


def test_comfyui_qwen_image_edit_template_imports_and_runs(models, tmp_path, monkeypatch):
    """ComfyUI's own Qwen-Image-Edit template (tests/data/qwen): LoadImage, ImageScaleToTotalPixels, VAEEncode (the
    latent to sample), two TextEncodeQwenImageEdit (the prompt and the empty negative, each with the VAE and the
    picture; it was unmapped), the Edit Lightning LoRA, ModelSamplingAuraFlow, CFGNorm (unmapped), KSampler (4
    steps, cfg 1). Every node maps and, under the template's own file names, it runs to one picture."""
    from PIL import Image
    from safetensors.torch import load_file, save_file
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    tiny = load_file(str(models / "diffusion_models" / "qwen_image_tiny_bf16.safetensors"))
    layer = "transformer_blocks.0.attn.to_q"
    w = tiny[f"{layer}.weight"]
    (models / "loras").mkdir(exist_ok=True)
    save_file({f"{layer}.lora_down.weight": torch.ones(2, w.shape[1]) * 0.01,
               f"{layer}.lora_up.weight": torch.ones(w.shape[0], 2) * 0.01, f"{layer}.alpha": torch.tensor(2.0)},
              str(models / "loras" / "Qwen-Image-Edit-Lightning-4steps-V1.0-bf16.safetensors"))
    from comfy_layouts import link_as
    te = models / "text_encoders" / "qwen_2.5_vl_7b_fp8_scaled.safetensors"
    link_as(te, models / "text_encoders" / "qwen_2.5_vl_tiny_fp8_scaled.safetensors")
    data = json.loads((ROOT / "tests" / "data" / "qwen" / "image_qwen_image_edit.json").read_text("utf-8"))
    res = import_data(data)
    statuses = {e.class_type: e.status for e in res.report.entries.values()}
    assert "unmapped" not in statuses.values(), statuses
    assert statuses["TextEncodeQwenImageEdit"] != "dropped" and statuses["CFGNorm"] != "dropped", statuses
    yaml = res.yaml.replace("megapixels: 1", "megapixels: 0.015625").replace("steps: 4", "steps: 2")
    assert "megapixels: 0.015625" in yaml and "template: edit" in yaml and "guide.cfg_norm" in yaml, yaml
    wf = tmp_path / "qwen_image_edit.kino.yaml"
    wf.write_text(yaml, encoding="utf-8")
    Image.fromarray(_picture(5, 60, 60)).save(tmp_path / "image_qwen_image_edit_input_image.png")
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    assert len(list((tmp_path / "out").rglob("*.png"))) == 1


def test_cfg_norm_caps_the_guided_prediction_at_the_conditional_norm():
    """CFGNorm (the template's; it was unmapped): at each latent pixel the guided x0 is scaled down to the
    conditional one's norm over the channels where it is larger, never up, then by strength."""
    from nodes.generate.sampling import cfg_norm
    cond = torch.tensor([[3.0, 1.0], [4.0, 0.0]]).view(1, 2, 1, 1, 2)      # pixels (3, 4) and (1, 0): norms 5, 1
    guided = torch.tensor([[6.0, 0.5], [8.0, 0.0]]).view(1, 2, 1, 1, 2)    # (6, 8) and (0.5, 0): norms 10, 0.5
    got = cfg_norm(cond, guided, 2.0)
    want = torch.tensor([[6.0, 1.0], [8.0, 0.0]]).view(1, 2, 1, 1, 2)      # (6, 8) x 0.5 x 2; (0.5, 0) x 1 x 2
    assert torch.allclose(got, want, atol=1e-6), got
