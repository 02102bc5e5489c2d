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


def controlnet():
    """ZImageControlNetModel as the union file lays it out (control layers steering the tiny transformer's layers 0
    and 1, a refiner block of the control picture's tokens), every weight random (its projections start at zero)."""
    from diffusers import ZImageControlNetModel
    from tiny_models import _seed
    _seed(11)
    net = ZImageControlNetModel(control_layers_places=[0, 1], control_refiner_layers_places=[0], control_in_dim=16,
                                dim=64, n_refiner_layers=1, n_heads=2, n_kv_heads=2)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    return net.bfloat16().float().eval()


@pytest.fixture(scope="module")
def zimage(tmp_path_factory):
    from safetensors.torch import save_file

    from comfy_layouts import models_dir
    from tiny_zimage import build_zimage

    def build(root):
        build_zimage(root)
        (root / "models" / "model_patches").mkdir()
        save_file({k: v.bfloat16().contiguous() for k, v in controlnet().state_dict().items()},
                  str(root / "models" / "model_patches" / PATCH))
        save_file({"controlnet_blocks.0.y_rms.weight": torch.ones(4), "img_in.weight": torch.ones(4, 64)},
                  str(root / "models" / "model_patches" / "qwen_image_canny_diffsynth_controlnet.safetensors"))
        return root
    yield from models_dir(tmp_path_factory, build, "zimage_control")


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
    ZImageControlNetPipeline's at strength 0.7 (and moves with the strength); `kinograph info` names the file."""
    from graph_engine import Clip
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.model_patch import apply, load
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    model = load_diffusion_model(mm, "z_image_turbo_tiny.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "qwen_3_4b_tiny.safetensors", "", "lumina2", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    patch = load(mm, PATCH)
    control = picture()

    def sample(strength):
        steered = apply(model, patch, vae, Clip.from_array(control[None]), strength)
        return run_sampling(steered, encode_prompt(te, "a cat"), None, empty_latent(vae, 1, W, H, 8.0), steps=2,
                            cfg=1.0, sampler="euler", seed=7).samples[:, :, 0]
    got = sample(0.7)
    assert _err(_reference(zimage, "a cat", control, 0.7, 7), got) < 1e-3
    assert (got - sample(0.0)).abs().max() > 1e-3
    info = describe_model(zimage / "models" / "model_patches" / PATCH)
    assert (info["family"], info["role"], info["loads"]) == ("zimage", "model_patch", "yes"), info
    assert "control.model_patch" in info["note"] and "2 control layers" in info["note"], info


def test_a_patch_for_another_model_or_of_another_kind_is_named(zimage):
    from graph_engine import Clip
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.model_patch import apply, load
    from nodes.generate.split import load_diffusion_model, load_vae
    mm = ModelManager()
    model = load_diffusion_model(mm, "z_image_turbo_tiny.safetensors", "default", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    patch = load(mm, PATCH)
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
