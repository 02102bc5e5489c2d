"""DiffSynth's blockwise Qwen-Image ControlNets from model_patches/ (ComfyUI's ModelPatchLoader and
QwenImageDiffsynthControlnet): a tiny random-weight patch in the published file's names steers the tiny Qwen-Image as
ComfyUI's code does - written out here from comfy_extras/nodes_model_patch.py (BlockWiseControlBlock,
QwenImageBlockWiseControlNet, DiffSynthCnetPatch) and hooked onto diffusers' QwenImagePipeline (diffusers'
QwenImageControlNetModel is InstantX's, another design); ComfyUI's template imports and runs; a patch for another model,
or the inpainting file, is named."""
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
PATCH = "qwen_image_canny_diffsynth_tiny.safetensors"
FILES = ("qwen_image_tiny_bf16.safetensors", ("qwen_2.5_vl_tiny_fp8_scaled.safetensors", "qwen_image"),
         "qwen_image_vae.safetensors")


class ComfyBlock(torch.nn.Module):
    """ComfyUI's BlockWiseControlBlock."""
    def __init__(self, dim):
        super().__init__()
        self.x_rms = torch.nn.RMSNorm(dim, eps=1e-6)
        self.y_rms = torch.nn.RMSNorm(dim, eps=1e-6)
        self.input_proj = torch.nn.Linear(dim, dim)
        self.act = torch.nn.GELU()
        self.output_proj = torch.nn.Linear(dim, dim)

    def forward(self, x, y):
        x, y = self.x_rms(x), self.y_rms(y)
        return self.output_proj(self.act(self.input_proj(x + y)))


class ComfyNet(torch.nn.Module):
    """ComfyUI's QwenImageBlockWiseControlNet (additional_in_dim 0) at the tiny model's width and depth."""
    def __init__(self, num_layers=2, in_dim=64, dim=64):
        super().__init__()
        self.img_in = torch.nn.Linear(in_dim, dim)
        self.controlnet_blocks = torch.nn.ModuleList([ComfyBlock(dim) for _ in range(num_layers)])

    def process_input_latent_image(self, latent_image):     # the latent normalised already (Wan21().process_in)
        b, c, h, w = latent_image.shape
        x = latent_image.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h // 2 * w // 2, c * 4)
        return self.img_in(x)


def comfy_net():
    from comfy_layouts import randomised
    return randomised(ComfyNet(), 13)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from comfy_layouts import models_dir, with_patches
    from tiny_qwen import build_qwen

    def patches():
        state = comfy_net().state_dict()
        return {PATCH: state, "qwen_image_inpaint_diffsynth_tiny.safetensors":
                dict(state, **{"img_in.weight": torch.zeros(64, 68)})}
    yield from models_dir(tmp_path_factory, with_patches(build_qwen, patches), "qwen_diffsynth")


def picture():
    return np.random.default_rng(6).integers(0, 255, (H, W, 3), dtype=np.uint8)


def _reference(root, prompt, control, strength, seed, steps=2):
    """QwenImagePipeline's latent [1, 16, h, w] (true_cfg_scale 1) with ComfyUI's DiffSynthCnetPatch after each
    transformer block: img += control_block(img, encoded picture, block) * strength."""
    from diffusers import QwenImagePipeline
    ref = QwenImagePipeline.from_pretrained(str(root / "Qwen-Image"), local_files_only=True)
    net = comfy_net()
    vae = ref.vae
    px = torch.from_numpy(control).permute(2, 0, 1)[None].float() / 127.5 - 1
    z = vae.encode(px[:, :, None]).latent_dist.mode()[:, :, 0]
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1)
    with torch.no_grad():
        cond = net.process_input_latent_image((z - mean) / std)

    def patch(i):
        def hook(module, args, out):
            txt, img = out
            img = img.clone()
            img[:, :cond.shape[1]] += net.controlnet_blocks[i](img[:, :cond.shape[1]], cond) * strength
            return txt, img
        return hook
    for i, block in enumerate(ref.transformer.transformer_blocks):
        block.register_forward_hook(patch(i))
    packed = ref(prompt, width=W, height=H, num_inference_steps=steps, true_cfg_scale=1.0,
                 generator=torch.Generator().manual_seed(seed), output_type="latent").images
    return ref._unpack_latents(packed, H, W, ref.vae_scale_factor)[:, :, 0]


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_the_diffsynth_patch_steers_qwen_image_as_comfyuis_code(qwen):
    """load.model_patch on the file, control.model_patch on ComfyUI's split Qwen-Image files: the latent is the one
    ComfyUI's patch code gives on QwenImagePipeline at strength 0.8 (and moves with the strength); `kinograph info`
    names the file, and the inpainting one as not run."""
    from graph_engine import Clip
    from comfy_layouts import patch_steered
    from nodes.generate.model_manager import describe_model
    from nodes.generate.model_patch import apply, load
    control = picture()
    sample, model, vae, patch, mm = patch_steered(FILES, PATCH, control, (W, H))
    got = sample(0.8)
    assert _err(_reference(qwen, "a cat", control, 0.8, 7), got) < 1e-4
    assert (got - sample(0.0)).abs().max() > 1e-3
    patches = qwen / "models" / "model_patches"
    info = describe_model(patches / PATCH)
    assert (info["family"], info["role"], info["loads"]) == ("qwenimage", "model_patch", "yes"), info
    assert "control.model_patch" in info["note"] and "2 blocks" in info["note"], info
    info = describe_model(patches / "qwen_image_inpaint_diffsynth_tiny.safetensors")
    assert info["loads"] == "no" and "inpainting" in info["note"], info
    with pytest.raises(NodeError, match="DiffSynth's Qwen-Image inpainting ControlNet .68 input channels"):
        apply(model, load(mm, "qwen_image_inpaint_diffsynth_tiny.safetensors"), vae,
              Clip.from_array(control[None]), 1.0)
    with pytest.raises(NodeError, match=r"a Qwen-Image DiffSynth ControlNet, made for Qwen-Image; this model is Z-Im"):
        apply(replace(model, family="zimage"), patch, vae, Clip.from_array(control[None]), 1.0)


def test_comfyui_qwen_image_controlnet_patch_template_imports_and_runs(qwen, tmp_path, monkeypatch):
    """ComfyUI's "Qwen-Image DiffSynth ControlNets" template (ModelPatchLoader, Canny on the picture scaled to 1.68
    megapixels, QwenImageDiffsynthControlnet, KSampler 20 steps cfg 2.5 over the picture's latent; its Lightning LoRA
    bypassed): every node maps and it runs on the tiny files under the template's names (a 64x48 picture, 2 steps),
    the patch moving the latent."""
    from PIL import Image

    from comfy_layouts import imported_template, sampled_latent
    monkeypatch.chdir(tmp_path)
    _, yaml = imported_template(
        qwen / "models",
        (("diffusion_models/qwen_image_fp8_e4m3fn.safetensors", "diffusion_models/qwen_image_tiny_bf16.safetensors"),
         ("text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors", "text_encoders/qwen_2.5_vl_tiny_fp8_scaled.safetensors"),
         ("model_patches/qwen_image_canny_diffsynth_controlnet.safetensors", f"model_patches/{PATCH}")),
        TEMPLATES / "image_qwen_image_controlnet_patch.json", (W, H), (20, 2))
    assert "type: control.model_patch" in yaml and "megapixels: 1.68" in yaml and "steps: 2" in yaml, yaml
    # the picture as it is (1.68 megapixels would make a 1500-pixel latent of the tiny picture)
    yaml = yaml.replace("video: image_scale_to_total_pixels_75.video", "video: load_image_71.image")
    Image.fromarray(picture()).save(tmp_path / "image_qwen_image_controlnet_patch_input_image.png")
    got = sampled_latent(tmp_path / "diffsynth.kino.yaml", yaml)
    assert got.shape == (1, 16, H // 8, W // 8) and torch.isfinite(got).all()
    still = sampled_latent(tmp_path / "diffsynth0.kino.yaml", yaml.replace("strength: 1\n", "strength: 0\n"))
    assert (got - still).abs().max() > 1e-3
