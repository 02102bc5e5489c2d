"""Qwen-Image-Layered: a picture split into layers with alpha. The files its users hold (ComfyUI's split
transformer, whose time_text_embed.addition_t_embedding marks it, and qwen_image_layered_vae, a Wan 2.1 VAE reading
and writing RGBA) load; ComfyUI's image-to-layers templates import with every node mapped and sample what ComfyUI's
sampling of diffusers' own QwenImageLayeredPipeline parts gives (written out below); the layers decode as diffusers'
RGBA VAE decodes them, come out as pictures with alpha, and lay over each other with video.over."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    from comfy_layouts import built
    from tiny_qwen_layered import build_qwen_layered
    yield from built(build_qwen_layered, tmp_path_factory)


@pytest.fixture
def models(layered, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_MODELS", str(layered / "models"))
    return layered / "models"


def _picture():
    """An RGB picture with edges and gradients (test_qwen_image's control picture, of the same size)."""
    from test_qwen_image import H as h, W as w, _cn_picture
    assert (w, h) == (W, H)
    return _cn_picture()


def _rgba_pixels(picture):
    """The picture as diffusers' QwenImageLayeredPipeline gives it to the VAE: RGBA (opaque: alpha 255) in [-1, 1],
    [1, 4, 1, H, W]."""
    rgba = np.concatenate([picture, np.full(picture.shape[:2] + (1,), 255, np.uint8)], -1)
    return torch.from_numpy(rgba).permute(2, 0, 1)[None, :, None].float() / 127.5 - 1


def test_layered_files_load_and_the_rgba_vae_is_diffusers(models, tmp_path):
    """The transformer is Qwen-Image's with the layered positions and timestep condition; the VAE (also under a
    name without "qwen": its 4-channel convolution tells it) encodes an RGB picture as the pipeline's RGBA one
    (alpha 1, normalised by the latent statistics) and decodes RGBA as AutoencoderKLQwenImage does."""
    import os
    from comfy_layouts import close_to
    from diffusers import AutoencoderKLQwenImage
    from nodes.generate.adapters import get_adapter
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model, load_vae
    mm = ModelManager()
    model = load_diffusion_model(mm, "qwen_image_layered_tiny_bf16.safetensors", "default", "cpu")
    cfg = model.pipe.transformer.config
    assert (model.family, cfg.use_layer3d_rope, cfg.use_additional_t_cond) == ("qwenimage", True, True)
    os.symlink(models / "vae" / "qwen_image_layered_vae.safetensors", models / "vae" / "layers_vae.safetensors")
    assert describe_model(models / "vae" / "layers_vae.safetensors")["loads"] == "yes"
    vae = load_vae(mm, "layers_vae.safetensors", "cpu")
    assert vae.family == "qwenimage"
    ref = AutoencoderKLQwenImage.from_pretrained(str(models.parent / "Qwen-Image-Layered" / "vae"))
    mean = torch.tensor(ref.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(ref.config.latents_std).view(1, 16, 1, 1, 1)
    adapter = get_adapter("qwenimage")
    picture = _picture()
    with torch.no_grad():
        want = (ref.encode(_rgba_pixels(picture)).latent_dist.mode() - mean) / std
        rgb = torch.from_numpy(picture).permute(2, 0, 1)[None, :, None].float() / 127.5 - 1
        got = adapter.vae_encode(vae.pipe, rgb)
        z = torch.randn(1, 16, 1, H // 8, W // 8, generator=torch.Generator().manual_seed(2))
        decoded = ref.decode(z * std + mean, return_dict=False)[0]
        assert decoded.shape[1] == 4
        close_to(want, got)
        close_to(decoded, adapter.vae_decode(vae.pipe, z))


def _comfy_reference(folder, positive, negative, cfg, sigmas, seed, picture, layers):
    """ComfyUI's KSampler (euler) on Qwen-Image-Layered with diffusers' own parts: the prompts through
    QwenImageLayeredPipeline's encoder, the picture through its _encode_vae_image (RGBA, opaque) and packed after
    the layers, ComfyUI's seeded noise ([1, 16, layers + 1, h, w]), and at each level the plain CFG mix of the
    transformer's two predictions, its img_shapes the layers' then the picture's, its additional_t_cond 0."""
    from diffusers import QwenImageLayeredPipeline
    ref = QwenImageLayeredPipeline.from_pretrained(str(folder), local_files_only=True, processor=None)
    f, h, w = layers + 1, H // 8, W // 8
    with torch.no_grad():
        pe, pm = ref.encode_prompt(positive, device="cpu")
        ne, nm = ref.encode_prompt(negative, device="cpu")
        image = ref._encode_vae_image(_rgba_pixels(picture), generator=None)
        image = ref._pack_latents(image.permute(0, 2, 1, 3, 4), 1, 16, h, w, 1)
        noise = torch.randn((1, 16, f, h, w), generator=torch.Generator().manual_seed(seed))
        x = ref._pack_latents(noise.permute(0, 2, 1, 3, 4), 1, 16, h, w, f)
        shapes = [[(1, h // 2, w // 2)] * (f + 1)]
        flag = torch.zeros(1, dtype=torch.long)
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            t = torch.tensor([s], dtype=torch.float32)
            v = [ref.transformer(hidden_states=torch.cat([x, image], 1), timestep=t, encoder_hidden_states=e,
                                 encoder_hidden_states_mask=m, img_shapes=shapes, additional_t_cond=flag,
                                 return_dict=False)[0][:, :x.shape[1]] for e, m in ((pe, pm), (ne, nm))]
            x = x + (s_next - s) * (v[1] + cfg * (v[0] - v[1]))
        latent = ref._unpack_latents(x, H, W, layers, ref.vae_scale_factor)
        # the layers as the pipeline decodes them: the whole picture (frame 0) dropped, each layer alone, RGBA
        mean = torch.tensor(ref.vae.config.latents_mean).view(1, 16, 1, 1, 1)
        std = torch.tensor(ref.vae.config.latents_std).view(1, 16, 1, 1, 1)
        pictures = [ref.vae.decode(latent[:, :, k:k + 1] * std + mean, return_dict=False)[0][0, :, 0]
                    for k in range(1, f)]
    rgba = [((p.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy() for p in pictures]
    return latent, rgba


def test_comfyui_image_to_layers_template_imports_and_runs(models, tmp_path, monkeypatch):
    """ComfyUI's image_qwen_image_layered template (its text-to-layers subgraph is bypassed as published): every
    node maps (EmptyQwenImageLayeredLatentImage, LatentCutToBatch were not mapped), and at 64x48, 3 steps, the
    sampled latent (the whole picture and 2 layers) is ComfyUI's sampling of diffusers' parts at the template's
    seed, cfg 2.5, its simple schedule at ModelSamplingAuraFlow's shift 1; the 2 layers saved are RGBA pictures,
    the pipeline's decodes of its layers, and video.over lays one over the other as alpha compositing does."""
    from PIL import Image
    from comfy_layouts import close_to, link_as
    from test_qwen_image import comfy_simple_sigmas
    from app.comfyui import import_data
    from graph_engine import Clip
    from graph_engine.api import Session, load_workflow
    from nodes.video.matte import over
    link_as(models / "diffusion_models" / "qwen_image_layered_bf16.safetensors",
            models / "diffusion_models" / "qwen_image_layered_tiny_bf16.safetensors")
    link_as(models / "text_encoders" / "qwen_2.5_vl_7b_fp8_scaled.safetensors",
            models / "text_encoders" / "qwen_2.5_vl_tiny_fp8_scaled.safetensors")
    picture = _picture()
    Image.fromarray(picture).save(tmp_path / "coastal_smiling_woman.png")
    data = json.loads((TEMPLATES / "image_qwen_image_layered.json").read_text("utf-8"))
    res = import_data(data)
    statuses = {e.class_type: e.status for e in res.report.entries.values()}
    assert "unmapped" not in statuses.values(), statuses
    yaml = res.yaml.replace("size: 640", f"size: {W}").replace("steps: 20", "steps: 3")
    assert yaml.count(f"size: {W}") == 1 and "steps: 3" in yaml and "layers: 2" in yaml, yaml
    wf = tmp_path / "layers.kino.yaml"
    wf.write_text(yaml, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    got = next(v["latent"] for k, v in run.outputs.items() if k.startswith("k_sampler_83")).samples
    sub = next(d for d in data["definitions"]["subgraphs"] if d["name"].startswith("Image to Layers"))
    sampler = next(n for n in sub["nodes"] if n["type"] == "KSampler")
    seed, cfg = sampler["widgets_values"][0], sampler["widgets_values"][3]
    positive = next(n for n in data["nodes"] if n["type"] == "PrimitiveStringMultiline")["widgets_values"][0]
    want, layers = _comfy_reference(models.parent / "Qwen-Image-Layered", positive, "", cfg,
                                    comfy_simple_sigmas(3, 1.0), seed, picture, 2)
    assert got.shape == (1, 16, 3, H // 8, W // 8)
    close_to(want, got)
    saved = sorted((tmp_path / "out").rglob("*.png"))
    assert len(saved) == 2, saved
    for path, rgba in zip(saved, layers):
        img = Image.open(path)
        assert img.mode == "RGBA" and img.size == (W, H)
        a = np.asarray(img)
        assert int(np.abs(a[..., 3].astype(int) - rgba[..., 3]).max()) <= 1
        assert 0 < int(a[..., 3].min()) < 255 or int(a[..., 3].max()) < 255     # the layers are not opaque
    # the decoded layers as Kinograph's clip (colour over black, alpha as its matte): the top laid over the bottom
    clip = next(v["video"] for k, v in run.outputs.items() if k.startswith("vae_decode_83"))
    assert clip.length == 2 and clip.matte is not None
    top, bottom = (Clip.from_array(clip.frames(k, k + 1)).with_matte(lambda a, b, k=k: clip.matte.frames(k, k + 1))
                   for k in (1, 0))
    merged = over(top, bottom, "encoded").frames(0, 1)[0].astype(float)
    a = layers[1][..., 3:].astype(float) / 255
    bottom_a = layers[0][..., 3:].astype(float) / 255
    hand = layers[1][..., :3] * a + (1 - a) * layers[0][..., :3] * bottom_a
    assert float(np.abs(merged - hand).max()) <= 3


def test_default_schedule_samples_as_the_layered_pipeline(models):
    """sample's default schedule on the layered model: QwenImageLayeredPipeline's own (its shift from the picture's
    patch count, mu = sqrt(patches / 256)), so condition.reference on a prompt and latent.layers sample what the
    pipeline gives for the same picture, prompt, noise and 3 steps (the pipeline's 640x640 bucket, 1 layer; with 2
    steps every shift gives the same levels: its scheduler stretches the last to 0.02)."""
    from PIL import Image
    from diffusers import QwenImageLayeredPipeline
    from comfy_layouts import close_to
    from graph_engine import Clip
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.reference import add_reference
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import encode_clip, layered_latent
    size = 640
    picture = np.asarray(Image.fromarray(_picture()).resize((size, size), Image.BILINEAR))
    mm = ModelManager()
    model = load_diffusion_model(mm, "qwen_image_layered_tiny_bf16.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "qwen_2.5_vl_tiny_fp8_scaled.safetensors", "", "auto", "cpu")
    vae = load_vae(mm, "qwen_image_layered_vae.safetensors", "cpu")
    positive = add_reference(encode_prompt(te, "a cat"), encode_clip(vae, Clip.from_array(picture[None], 8.0)))
    got = run_sampling(model, positive, None, layered_latent(vae, 1, size, size), steps=3, cfg=1.0, sampler="euler",
                       seed=3).samples
    ref = QwenImageLayeredPipeline.from_pretrained(str(models.parent / "Qwen-Image-Layered"), local_files_only=True,
                                                   processor=None)
    noise = torch.randn((1, 16, 2, size // 8, size // 8), generator=torch.Generator().manual_seed(3))
    last = {}

    def keep(pipe, step, t, kw):      # its output_type "latent" fails in 0.42.1 (an unset name): the last step's
        last["latents"] = kw["latents"]
        return {}
    ref(Image.fromarray(picture).convert("RGBA"), "a cat", true_cfg_scale=1.0, layers=1, num_inference_steps=3,
        resolution=size, output_type="pt", callback_on_step_end=keep,
        latents=ref._pack_latents(noise.permute(0, 2, 1, 3, 4), 1, 16, size // 8, size // 8, 2))
    close_to(ref._unpack_latents(last["latents"], size, size, 1, ref.vae_scale_factor), got)


class _ComfyPositions(torch.nn.Module):
    """ComfyUI's rotary positions of the layered model reading no picture (its QwenImageTransformer2DModel's
    process_img for t > 1 frames, written out): each layer on plane t, rows and columns centred (index - n // 2),
    the text's tokens from max(rows // 2, columns // 2) on every axis; as diffusers' complex rotations, each axis
    position times theta^(-2k/d)."""
    def __init__(self, f, h, w, axes):
        super().__init__()
        t, y, x = torch.meshgrid(torch.arange(f), torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
        self.ids, self.start, self.axes = torch.stack([t, y, x], -1).reshape(-1, 3), max(h // 2, w // 2), axes

    def rotations(self, ids):
        parts = [torch.polar(torch.ones(len(ids), d // 2), torch.outer(ids[:, k].float(), 1.0 / torch.pow(
            10000, torch.arange(0, d, 2).float() / d))) for k, d in enumerate(self.axes)]
        return torch.cat(parts, 1)

    def forward(self, video_fhw, max_txt_seq_len, device=None):
        txt = (torch.arange(int(max_txt_seq_len)) + self.start)[:, None].repeat(1, 3)
        return self.rotations(self.ids), self.rotations(txt)


def test_text_to_layers_positions_are_comfyuis(models):
    """Layers from a prompt alone (the template's text-to-layers subgraph, bypassed as published): diffusers'
    layered rotary embedding always takes its last shape for a picture to split, so Kinograph computes the layers'
    positions with a stand-in there; the latent is ComfyUI's (its positions written out above, into diffusers'
    transformer) for two layers at 64x64, cfg 2, 2 euler steps on the simple schedule at shift 1."""
    from diffusers import QwenImageLayeredPipeline
    from comfy_layouts import close_to
    from test_qwen_image import comfy_simple_sigmas
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import layered_latent
    from tiny_qwen import AXES
    mm = ModelManager()
    model = load_diffusion_model(mm, "qwen_image_layered_tiny_bf16.safetensors", "default", "cpu").with_option(
        "flow_shift", 1.0)          # ModelSamplingAuraFlow's shift 1, as the template sets it
    te = load_text_encoder(mm, "qwen_2.5_vl_tiny_fp8_scaled.safetensors", "", "auto", "cpu")
    vae = load_vae(mm, "qwen_image_layered_vae.safetensors", "cpu")
    got = run_sampling(model, encode_prompt(te, "a cat on a chair"), encode_prompt(te, ""),
                       layered_latent(vae, 1, 64, 64), steps=2, cfg=2.0, sampler="euler", scheduler="simple",
                       seed=5).samples
    ref = QwenImageLayeredPipeline.from_pretrained(str(models.parent / "Qwen-Image-Layered"), local_files_only=True,
                                                   processor=None)
    sigmas = comfy_simple_sigmas(2, 1.0)
    with torch.no_grad():
        pe, pm = ref.encode_prompt("a cat on a chair", device="cpu")
        ne, nm = ref.encode_prompt("", device="cpu")
        noise = torch.randn((1, 16, 2, 8, 8), generator=torch.Generator().manual_seed(5))
        x = ref._pack_latents(noise.permute(0, 2, 1, 3, 4), 1, 16, 8, 8, 2)
        ref.transformer.pos_embed = _ComfyPositions(2, 4, 4, AXES)
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            t = torch.tensor([s], dtype=torch.float32)
            v = [ref.transformer(hidden_states=x, timestep=t, encoder_hidden_states=e, encoder_hidden_states_mask=m,
                                 img_shapes=None, additional_t_cond=torch.zeros(1, dtype=torch.long),
                                 return_dict=False)[0] for e, m in ((pe, pm), (ne, nm))]
            x = x + (s_next - s) * (v[1] + 2.0 * (v[0] - v[1]))
    close_to(ref._unpack_latents(x, 64, 64, 1, ref.vae_scale_factor), got)


def test_layered_nodes_say_what_they_take(models):
    """latent.layers is Qwen-Image's (another family's VAE is named); latent.cut_to_batch keeps a picture model's
    frames and marks runs of a video VAE's frames to decode each alone; the layered model given two pictures to
    split says it splits one, and a ControlNet on it is refused (Qwen-Image's steer one picture's tokens)."""
    from graph_engine import Clip
    from nodes.generate.latent import Latent, cut_to_batch
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.reference import add_reference
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import encode_clip, layered_latent
    mm = ModelManager()
    vae = load_vae(mm, "qwen_image_layered_vae.safetensors", "cpu")
    lat = layered_latent(vae, 3, 70, 50)
    assert tuple(lat.samples.shape) == (1, 16, 4, 48 // 8, 64 // 8) and (lat.width, lat.height) == (64, 48)
    assert cut_to_batch(lat, 1) is lat
    assert cut_to_batch(lat, 3).samples.shape[2] == 3          # the frame past the last whole run dropped
    wan = Latent(torch.zeros(1, 16, 3, 4, 4), "wan", 9, 16.0, 32, 32)
    runs = cut_to_batch(wan, 1)          # a video VAE's runs: each decoded alone (test_wan_dancer decodes them)
    assert (runs.runs, runs.frames) == (1, 3) and runs.samples is wan.samples

    class Other:
        family = "wan"
    with pytest.raises(NodeError, match="give it qwen_image_layered_vae"):
        layered_latent(Other(), 2, 64, 64)
    model = load_diffusion_model(mm, "qwen_image_layered_tiny_bf16.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "qwen_2.5_vl_tiny_fp8_scaled.safetensors", "", "auto", "cpu")
    picture = encode_clip(vae, Clip.from_array(_picture()[None], 8.0))
    two = add_reference(add_reference(encode_prompt(te, "a cat"), picture), picture)
    with pytest.raises(NodeError, match="splits one picture into layers, and this prompt holds 2: give "
                                        "condition.reference one picture"):
        run_sampling(model, two, None, layered_latent(vae, 1, W, H), steps=1, cfg=1.0, sampler="euler")
    from nodes.generate.adapters import get_adapter
    with pytest.raises(NodeError, match="takes no ControlNet"):
        get_adapter("qwenimage").forward(model, torch.zeros(1, 16, 2, 6, 8), torch.tensor([500.0]),
                                         {"control": ["a net"]})
