"""Alibaba PAI's Z-Image Fun ControlNet union from model_patches/ (ComfyUI's ModelPatchLoader and
QwenImageDiffsynthControlnet): a tiny random-weight net in the published file's names steers the tiny Z-Image Turbo to
what diffusers' own ZImageControlNetPipeline gives for the same weights, control picture, prompt and seed; ComfyUI's
Z-Image Turbo Fun union template imports and runs on them; a patch for another model, or of another kind, is named."""
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48
PATCH = "Z-Image-Turbo-Fun-Controlnet-Union_tiny.safetensors"
FILES = ("z_image_turbo_tiny.safetensors", ("qwen_3_4b_tiny.safetensors", "lumina2"), "ae.safetensors")


def controlnet():
    """ZImageControlNetModel as the union file lays it out (control layers steering the tiny transformer's layers 0
    and 1, a refiner block of the control picture's tokens), every weight random (its projections start at zero)."""
    from diffusers import ZImageControlNetModel

    from comfy_layouts import randomised
    return randomised(ZImageControlNetModel(control_layers_places=[0, 1], control_refiner_layers_places=[0],
                                            control_in_dim=16, dim=64, n_refiner_layers=1, n_heads=2, n_kv_heads=2), 11)


@pytest.fixture(scope="module")
def zimage(tmp_path_factory):
    from comfy_layouts import models_dir, with_patches
    from tiny_zimage import build_zimage
    patches = lambda: {PATCH: controlnet().state_dict(),  # noqa: E731
                       "qwen_image_canny_diffsynth_controlnet.safetensors": {
                           "controlnet_blocks.0.y_rms.weight": torch.ones(4), "img_in.weight": torch.ones(4, 64)}}
    yield from models_dir(tmp_path_factory, with_patches(build_zimage, patches), "zimage_control")


def picture():
    return np.random.default_rng(5).integers(0, 255, (H, W, 3), dtype=np.uint8)


def _reference(root, prompt, control, strength, seed, sigmas=None):
    """ZImageControlNetPipeline's latent [1, 16, h, w] at cfg 1 (guidance_scale 0) with the control picture."""
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImageControlNetPipeline, ZImagePipeline
    from PIL import Image
    base = ZImagePipeline.from_pretrained(str(root / "diffusers"), local_files_only=True)
    ref = ZImageControlNetPipeline(scheduler=base.scheduler, vae=base.vae, text_encoder=base.text_encoder,
                                   tokenizer=base.tokenizer, transformer=base.transformer, controlnet=controlnet())
    if sigmas is not None:
        ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return ref(prompt, control_image=Image.fromarray(control), controlnet_conditioning_scale=strength, width=W,
               height=H, num_inference_steps=2, sigmas=sigmas, guidance_scale=0.0,
               generator=torch.Generator().manual_seed(seed), output_type="latent").images


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_the_fun_union_patch_steers_zimage_as_zimagecontrolnetpipeline(zimage):
    """load.model_patch on the file, control.model_patch on ComfyUI's split Z-Image files: the sampled latent is
    ZImageControlNetPipeline's at strength 0.7 within 1e-5 (and moves with the strength); `kinograph info` names the
    file."""
    from comfy_layouts import patch_steered
    from nodes.generate.model_manager import describe_model
    control = picture()
    sample = patch_steered(FILES, PATCH, control, (W, H))[0]
    got = sample(0.7)
    assert _err(_reference(zimage, "a cat", control, 0.7, 7), got) < 1e-5
    assert (got - sample(0.0)).abs().max() > 1e-3
    info = describe_model(zimage / "models" / "model_patches" / PATCH)
    assert (info["family"], info["role"], info["loads"]) == ("zimage", "model_patch", "yes"), info
    assert "control.model_patch" in info["note"] and "2 control layers" in info["note"], info


def test_a_patch_for_another_model_or_of_another_kind_is_named(zimage):
    from graph_engine import Clip
    from comfy_layouts import patch_steered
    from nodes.generate.model_patch import apply, load
    _, model, vae, patch, mm = patch_steered(FILES, PATCH, picture(), (W, H))
    clip = Clip.from_array(picture()[None])
    with pytest.raises(NodeError, match=r"is a Z-Image Fun ControlNet, made for Z-Image Turbo; this model is Qwen"):
        apply(replace(model, family="qwenimage"), patch, vae, clip, 1.0)
    with pytest.raises(NodeError, match=r"is a Qwen-Image DiffSynth ControlNet, made for Qwen-Image; this model is Z"):
        apply(model, load(mm, "qwen_image_canny_diffsynth_controlnet.safetensors"), vae, clip, 1.0)
    with pytest.raises(NodeError, match="reads no mask"):
        apply(model, patch, vae, clip, 1.0, mask=np.ones((H, W), np.float32))
    with pytest.raises(NodeError, match="control.model_patch's vae is a zimage VAE|vae is a"):
        apply(model, patch, replace(vae, family="zimage"), clip, 1.0)


def test_comfyui_zimage_turbo_fun_union_template_imports_and_runs(zimage, tmp_path, monkeypatch):
    """ComfyUI's "Z-Image-Turbo Fun Union ControlNet" template (a subgraph: ModelPatchLoader, Canny on the loaded
    picture, QwenImageDiffsynthControlnet, the latent at the picture's size, KSampler 8 steps cfg 1 res_multistep):
    every node maps and it runs on the tiny files under the template's names (a 64x48 picture, 2 steps); with euler
    the latent is ZImageControlNetPipeline's given the same canny edges, prompt and seed on ComfyUI's levels."""
    from PIL import Image

    from comfy_layouts import imported_template, sampled_latent
    from nodes.generate.control import canny_comfy
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(
        zimage / "models",
        (("diffusion_models/z_image_turbo_bf16.safetensors", "diffusion_models/z_image_turbo_tiny.safetensors"),
         ("text_encoders/qwen_3_4b.safetensors", "text_encoders/qwen_3_4b_tiny.safetensors"),
         ("text_encoders/qwen_3_4b", "text_encoders/qwen_3_4b_tiny"),
         ("model_patches/Z-Image-Turbo-Fun-Controlnet-Union.safetensors", f"model_patches/{PATCH}")),
        TEMPLATES / "image_z_image_turbo_fun_union_controlnet.json", (W, H), (8, 2))
    assert "type: control.model_patch" in yaml and "steps: 2" in yaml, yaml
    Image.fromarray(picture()).save(tmp_path / "image_z_image_turbo_fun_union_controlnet_input_image.png")
    got = sampled_latent(tmp_path / "fun.kino.yaml", yaml.replace("sampler: res_multistep", "sampler: euler"))
    assert got.shape == (1, 16, H // 8, W // 8)
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    text = next(n for n in sub if n["type"] == "CLIPTextEncode")["widgets_values"][0]
    seed = next(n for n in sub if n["type"] == "KSampler")["widgets_values"][0]
    edges = canny_comfy(picture(), 0.1, 0.32)
    assert _err(_reference(zimage, text, edges, 1.0, seed, sigmas=[1.0, 0.75]), got) < 1e-3


def test_a_damaged_or_sft_patch_file_is_named_not_a_traceback(tmp_path):
    """A cut-off .safetensors in model_patches/ is named as load.model_patch reads it (it was safetensors' own
    SafetensorError, a traceback); a Z-Image Fun union saved as .sft (a safetensors name ComfyUI reads) is told as
    one, not refused as not InfiniteTalk's."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.model_patch import load
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(NodeError, match="cut.safetensors"):
        load(ModelManager(), str(cut))
    sft = tmp_path / "union.sft"
    save_file({"control_all_x_embedder.2-1.weight": torch.zeros(4, 8)}, str(sft))
    assert load(ModelManager(), str(sft)).family == "zimage"


def test_a_fun_patch_without_its_control_layers_is_named():
    """A Z-Image Fun file with its embedder and no control layer (cut or edited) is named as damaged; it was a bare
    KeyError out of control.model_patch."""
    from nodes.generate.zimage_control import PROBE, build
    with pytest.raises(NodeError, match="cut.safetensors.*control_layers"):
        build({PROBE: torch.zeros(32, 64)}, None, "cut.safetensors")
