"""FLUX.1 Fill (inpainting and outpainting), Depth and Canny: the transformer reads, beside each 2x2 patch of the
latent, the masked picture's latent and the mask with every 8x8 block of pixels as 64 channels (Fill), or the control
picture's latent (Depth, Canny). From ComfyUI's split files (Black Forest Labs' names) with condition.inpaint
(InpaintModelConditioning) or condition.control_image (InstructPixToPixConditioning), the sample is what diffusers'
own FluxFillPipeline / FluxControlPipeline makes from the same weights, pictures and noise."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import test_flux  # noqa: E402

flux, models = test_flux.flux, test_flux.models       # its tiny FLUX.1 (VAE, text encoders, diffusers folder)
W, H = 64, 48


@pytest.fixture(scope="module")
def fill(flux):
    """A tiny Fill transformer (384 channels in, 64 out) in BFL's names, in fp16 as the released file."""
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file
    from tiny_flux import AXES, HEAD, bfl_transformer
    from tiny_models import _seed
    _seed(1)
    model = FluxTransformer2DModel(in_channels=384, out_channels=64, num_layers=2, num_single_layers=2,
                                   attention_head_dim=HEAD, num_attention_heads=2, joint_attention_dim=32,
                                   pooled_projection_dim=64, guidance_embeds=True, axes_dims_rope=AXES)
    model.half().float()
    path = flux / "models" / "diffusion_models" / "flux1-fill-dev-tiny.safetensors"
    save_file({k: v.half().contiguous() for k, v in bfl_transformer(model.state_dict()).items()}, str(path))
    return model, path


def _picture_and_mask():
    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), np.float32)
    mask[8:40, 16:48] = 1.0
    return picture, mask


def test_flux_fill_split_file_is_fluxfillpipeline(models, fill, monkeypatch):
    from diffusers import FluxFillPipeline, FluxPipeline
    from PIL import Image
    from nodes.generate.inpaint import inpaint_conditioning
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    transformer, path = fill
    got = describe_model(path)
    assert (got["family"], got["variant"], got["loads"]) == ("flux", "fill-dev", "yes"), got
    mm = ModelManager()
    model = load_diffusion_model(mm, path.name, "default", "cpu")
    te = load_text_encoder(mm, "clip_l.safetensors", "t5xxl_fp16.safetensors", "flux", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    picture, mask = _picture_and_mask()
    pos, _, latent = inpaint_conditioning(vae, encode_prompt(te, "a cat"), None, Clip.from_array(picture[None]), mask,
                                          noise_mask=False)
    ours = run_sampling(model, pos, None, latent, steps=3, cfg=3.5, sampler="euler", seed=7).samples[:, :, 0]
    base = FluxPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref = FluxFillPipeline(scheduler=base.scheduler, vae=base.vae, text_encoder=base.text_encoder,
                           tokenizer=base.tokenizer, text_encoder_2=base.text_encoder_2, tokenizer_2=base.tokenizer_2,
                           transformer=transformer)
    # ComfyUI (and Kinograph) encode the masked picture to its latent distribution's mode; diffusers' Fill samples
    # it, drawing from the generator before the noise: told to take the mode, and given the noise.
    import diffusers.pipelines.flux.pipeline_flux_fill as fill_module
    monkeypatch.setattr(fill_module, "retrieve_latents", lambda out, generator=None: out.latent_dist.mode())
    noise = torch.randn(1, 16, H // 8, W // 8, generator=torch.Generator().manual_seed(7))
    packed = ref("a cat", image=Image.fromarray(picture), mask_image=Image.fromarray((mask * 255).astype(np.uint8)),
                 width=W, height=H, num_inference_steps=3, guidance_scale=3.5,
                 latents=ref._pack_latents(noise, 1, 16, H // 8, W // 8), output_type="latent").images
    want = ref._unpack_latents(packed, H, W, ref.vae_scale_factor)
    # Kinograph's grey is 128 of 255 where ComfyUI's and diffusers' is exactly half (127.5): 5e-4 apart
    err = float((want - ours).abs().max() / want.abs().max())
    assert err < 2e-3, err
    bare = run_sampling(model, encode_prompt(te, "a cat"), None, latent, steps=3, cfg=3.5, sampler="euler",
                        seed=7).samples[:, :, 0]      # ComfyUI's default: no picture, all of it to redraw
    assert float((bare - want).abs().max()) > 0.1 * float(want.abs().max())     # 0.47 here


def test_flux_fill_mask_is_read_in_8x8_blocks():
    """pixel_blocks against a loop over the blocks: channel r * 8 + c of a latent pixel is pixel (r, c) of its
    block, as diffusers' FluxFillPipeline.prepare_mask_latents lays the mask out."""
    from nodes.generate.inpaint import pixel_blocks
    px = torch.rand(1, 1, 2, 16, 24)
    got = pixel_blocks(px, 8)
    assert got.shape == (1, 64, 2, 2, 3)
    for t in range(2):
        for i in range(2):
            for j in range(3):
                block = px[0, 0, t, i * 8:(i + 1) * 8, j * 8:(j + 1) * 8].reshape(64)
                assert torch.equal(got[0, :, t, i, j], block)


def test_flux_depth_canny_split_file_is_fluxcontrolpipeline(models, monkeypatch, tmp_path):
    """FLUX.1 Depth / Canny (128 channels in: the latent and the control picture's latent a patch) with
    condition.control_image (ComfyUI's InstructPixToPixConditioning): FluxControlPipeline's latent for the same
    weights, control picture and noise; a file of channels no released FLUX.1 reads is refused by name."""
    from diffusers import FluxControlPipeline, FluxPipeline, FluxTransformer2DModel
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from PIL import Image
    from safetensors.torch import save_file
    from tiny_flux import AXES, HEAD, bfl_transformer
    from tiny_models import _seed
    from nodes.generate.image_cond import condition_control_image
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    _seed(2)
    depth = FluxTransformer2DModel(in_channels=128, out_channels=64, num_layers=1, num_single_layers=1,
                                   attention_head_dim=HEAD, num_attention_heads=2, joint_attention_dim=32,
                                   pooled_projection_dim=64, guidance_embeds=True, axes_dims_rope=AXES)
    depth.half().float()
    path = models / "diffusion_models" / "flux1-depth-dev-tiny.safetensors"
    save_file({k: v.half().contiguous() for k, v in bfl_transformer(depth.state_dict()).items()}, str(path))
    assert (describe_model(path)["variant"], describe_model(path)["loads"]) == ("control-dev", "yes")
    mm = ModelManager()
    model = load_diffusion_model(mm, path.name, "default", "cpu")
    te = load_text_encoder(mm, "clip_l.safetensors", "t5xxl_fp16.safetensors", "flux", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    control, _ = _picture_and_mask()
    out = condition_control_image(vae, encode_prompt(te, "a cat"), None, Clip.from_array(control[None]))
    assert float(out["latent"].samples.abs().max()) == 0.0
    ours = run_sampling(model, out["positive"], None, out["latent"], steps=3, cfg=10.0, sampler="euler",
                        seed=7).samples[:, :, 0]
    base = FluxPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref = FluxControlPipeline(scheduler=base.scheduler, vae=base.vae, text_encoder=base.text_encoder,
                              tokenizer=base.tokenizer, text_encoder_2=base.text_encoder_2,
                              tokenizer_2=base.tokenizer_2, transformer=depth)
    # ComfyUI (and Kinograph) take the control latent's mode; diffusers' pipeline samples it: told to take the mode
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mode())
    noise = torch.randn(1, 16, H // 8, W // 8, generator=torch.Generator().manual_seed(7))
    packed = ref("a cat", control_image=Image.fromarray(control), width=W, height=H, num_inference_steps=3,
                 guidance_scale=10.0, latents=ref._pack_latents(noise, 1, 16, H // 8, W // 8),
                 output_type="latent").images
    want = ref._unpack_latents(packed, H, W, ref.vae_scale_factor)
    err = float((want - ours).abs().max() / want.abs().max())
    assert err < 1e-4, err
    odd = FluxTransformer2DModel(in_channels=96, out_channels=64, num_layers=1, num_single_layers=1,
                                 attention_head_dim=HEAD, num_attention_heads=2, joint_attention_dim=32,
                                 pooled_projection_dim=64, guidance_embeds=True, axes_dims_rope=AXES)
    bad = tmp_path / "flux1-odd.safetensors"
    save_file({k: v.contiguous() for k, v in bfl_transformer(odd.state_dict()).items()}, str(bad))
    assert describe_model(bad)["loads"] == "no"
    with pytest.raises(NodeError, match="96 input channels"):
        load_diffusion_model(ModelManager(), str(bad), "default", "cpu")


def test_comfyui_flux_fill_graph_imports_runs_and_keeps_the_unmasked_part(models, fill, tmp_path, monkeypatch):
    """ComfyUI's Flux Fill inpainting template as an API prompt (its subgraph's nodes: UNETLoader with
    flux1-fill-dev, DifferentialDiffusion, InpaintModelConditioning with noise_mask, FluxGuidance 30, ConditioningZeroOut
    as the negative, KSampler at cfg 1): every node maps, it runs on the tiny Fill model, and outside the mask the
    sampled latent is the picture's own (the noise mask keeps it). The schedule is simple, not the template's normal:
    ComfyUI's normal ends at the model's least noisy level, where DifferentialDiffusion's threshold is 0 and the last
    step redraws every pixel, as it does in ComfyUI."""
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from nodes.generate.vae_ops import encode_clip
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from comfy_layouts import link_as
    link_as(models / "diffusion_models" / "flux1-fill-dev.safetensors", fill[1])
    picture, mask = _picture_and_mask()
    rgba = np.dstack([picture, ((1 - mask) * 255).astype(np.uint8)])     # ComfyUI's mask: where alpha is 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "flux_fill_inpaint_example_input_image.png")
    api = {
        "31": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-fill-dev.safetensors",
                                                      "weight_dtype": "default"}},
        "34": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                          "clip_name2": "t5xxl_fp16.safetensors", "type": "flux",
                                                          "device": "default"}},
        "32": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "17": {"class_type": "LoadImage", "inputs": {"image": "flux_fill_inpaint_example_input_image.png"}},
        "39": {"class_type": "DifferentialDiffusion", "inputs": {"model": ["31", 0], "strength": 1}},
        "23": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["34", 0]}},
        "26": {"class_type": "FluxGuidance", "inputs": {"guidance": 30, "conditioning": ["23", 0]}},
        "46": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["23", 0]}},
        "38": {"class_type": "InpaintModelConditioning", "inputs": {"positive": ["26", 0], "negative": ["46", 0],
                                                                    "vae": ["32", 0], "pixels": ["17", 0],
                                                                    "mask": ["17", 1], "noise_mask": True}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 3, "cfg": 1, "sampler_name": "euler",
                                                   "scheduler": "simple", "denoise": 1, "model": ["39", 0],
                                                   "positive": ["38", 0], "negative": ["38", 1],
                                                   "latent_image": ["38", 2]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["32", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "fill", "images": ["8", 0]}},
    }
    res = import_data(api)
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"], res.report
    wf = tmp_path / "fill.kino.yaml"
    wf.write_text(res.yaml)
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    got = next(v["latent"] for k, v in run.outputs.items() if k.startswith("k_sampler")).samples[0, :, 0]
    shown = (picture * (1 - mask)[..., None]).astype(np.uint8)  # the PNG's colour over black by its alpha
    own = encode_clip(load_vae(ModelManager(), "ae.safetensors", "cpu"), Clip.from_array(shown[None])).samples[0, :, 0]
    outside = torch.ones(H // 8, W // 8, dtype=torch.bool)
    outside[1:5, 2:6] = False                                # the masked 32x32 pixels
    assert torch.allclose(got[:, outside], own[:, outside], atol=1e-5)
    assert float((got[:, ~outside] - own[:, ~outside]).abs().max()) > 0.1
