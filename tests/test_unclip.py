"""SDXL revision (ComfyUI's unCLIPConditioning on SDXL): pictures' projected CLIP vision embeddings replace the
prompt's pooled text, noise-augmented as ComfyUI's model_base.sdxl_pooled / unclip_adm and
CLIPEmbeddingNoiseAugmentation make them (written out here, with make_beta_schedule's squaredcos_cap_v2 and
AbstractLowScaleModel.q_sample); the CLIP vision tower itself is transformers'. None of it is Kinograph's code."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
WIDTH = 32              # the tiny SDXL's pooled OpenCLIP-G width (clip_vision_g's projection: 1280)


# -- ComfyUI's maths, written out ---------------------------------------------------------------------------------------
def _schedule():
    """AbstractLowScaleModel.register_schedule("squaredcos_cap_v2", 1000): sqrt(abar), sqrt(1 - abar) as float32."""
    alpha_bar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = []
    for i in range(1000):
        t1, t2 = i / 1000, (i + 1) / 1000
        betas.append(min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999))
    alphas_cumprod = np.cumprod(1.0 - np.array(betas), axis=0)
    return (torch.tensor(np.sqrt(alphas_cumprod), dtype=torch.float32),
            torch.tensor(np.sqrt(1.0 - alphas_cumprod), dtype=torch.float32))


def _timestep(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(0, half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


def _noise_augmentor(x, noise_level, seed=None, noise=None):
    """CLIPEmbeddingNoiseAugmentation.forward (no clip stats: mean 0, std 1)."""
    sa, s1a = _schedule()
    x = (x - torch.zeros(WIDTH)[None]) * 1.0 / torch.ones(WIDTH)[None]
    if noise is None:
        noise = torch.randn(x.size(), dtype=x.dtype, layout=x.layout, generator=torch.manual_seed(seed))
    z = sa[noise_level].reshape(-1, 1) * x + s1a[noise_level].reshape(-1, 1) * noise
    z = z * torch.ones(WIDTH)[None] + torch.zeros(WIDTH)[None]
    return z, _timestep(noise_level, WIDTH)


def comfy_sdxl_pooled(unclip_conditioning, seed, merge_noise=None):
    """sdxl_pooled: unclip_adm(..., seed=seed - 10)[:, :1280] (here the tiny width). ComfyUI draws the merge step's
    noise unseeded (randn_like); the test gives it."""
    adm_inputs, noise_aug = [], []
    for unclip_cond in unclip_conditioning:
        for adm_cond in unclip_cond["image_embeds"]:
            weight = unclip_cond["strength"]
            noise_augment = unclip_cond["noise_augmentation"]
            noise_level = round((1000 - 1) * noise_augment)
            c_adm, noise_level_emb = _noise_augmentor(adm_cond, torch.tensor([noise_level]), seed=seed - 10)
            adm_inputs.append(torch.cat((c_adm, noise_level_emb), 1) * weight)
            noise_aug.append(noise_augment)
    adm_out = adm_inputs[0]
    if len(noise_aug) > 1:
        adm_out = torch.stack(adm_inputs).sum(0)
        c_adm, noise_level_emb = _noise_augmentor(adm_out[:, :WIDTH], torch.tensor([0]), noise=merge_noise)
        adm_out = torch.cat((c_adm, noise_level_emb), 1)
    return adm_out[:, :WIDTH]


def _merge_noise(seed):
    """The merge step's noise as Kinograph draws it (ComfyUI's is unseeded): the second draw of seed - 10."""
    gen = torch.Generator().manual_seed(seed - 10)
    torch.randn((1, WIDTH), generator=gen)
    return torch.randn((1, WIDTH), generator=gen)


def _cond():
    from nodes.generate.latent import Conditioning
    return Conditioning("sdxl", torch.randn(1, 77, 64), pooled=torch.randn(1, WIDTH), prompts=("a car",))


def _image(embeds):
    from nodes.generate.latent import Conditioning
    return Conditioning("wan", torch.randn(1, 5, 8), extra={"clip_image_embeds": embeds})


def test_unclip_pooled_prompt_is_comfyuis():
    """One picture (strength, noise augmentation 0 and 0.3), two chained pictures, and a batch of two in one picture
    input: the pooled prompt the sampler gives SDXL is ComfyUI's, drawn from the run's seed; the negative keeps
    its pooled text; strength 0 leaves the prompt as it is."""
    from nodes.generate.unclip import for_run, with_picture
    torch.manual_seed(0)
    a, b, pair = torch.randn(1, WIDTH), torch.randn(1, WIDTH), torch.randn(2, WIDTH)
    seed = 900749379955168
    text = _cond()
    for aug in (0.0, 0.3):
        got = for_run(with_picture(text, _image(a), 0.75, aug), seed)
        want = comfy_sdxl_pooled([dict(image_embeds=a, strength=0.75, noise_augmentation=aug)], seed)
        assert torch.allclose(got.pooled, want, atol=1e-6) and not torch.allclose(want, a * 0.75, atol=1e-3)
        assert torch.equal(got.embeds, text.embeds)
    chained = for_run(with_picture(with_picture(text, _image(a), 0.75, 0.0), _image(b), 0.5, 0.1), seed)
    want = comfy_sdxl_pooled([dict(image_embeds=a, strength=0.75, noise_augmentation=0.0),
                              dict(image_embeds=b, strength=0.5, noise_augmentation=0.1)], seed, _merge_noise(seed))
    assert torch.allclose(chained.pooled, want, atol=1e-6)
    batch = for_run(with_picture(text, _image(pair), 1.0, 0.0), 7)
    want = comfy_sdxl_pooled([dict(image_embeds=pair, strength=1.0, noise_augmentation=0.0)], 7, _merge_noise(7))
    assert torch.allclose(batch.pooled, want, atol=1e-6)
    assert for_run(text, seed) is text
    assert with_picture(text, _image(a), 0.0, 0.0) is text


def test_unclip_refuses_what_it_cannot_read():
    """A prompt of another family, a picture without the projected embedding and one of another width are named."""
    from graph_engine import NodeError
    from nodes.generate.latent import Conditioning
    from nodes.generate.unclip import for_run, with_picture
    text = _cond()
    with pytest.raises(NodeError, match="read by SDXL"):
        with_picture(Conditioning("flux", torch.zeros(1, 4, 8)), _image(torch.zeros(1, WIDTH)), 1.0, 0.0)
    with pytest.raises(NodeError, match="visual_projection"):
        with_picture(text, Conditioning("wan", torch.zeros(1, 5, 8)), 1.0, 0.0)
    with pytest.raises(NodeError, match="clip_vision_g"):
        for_run(with_picture(text, _image(torch.zeros(1, 12)), 1.0, 0.0), 3)


@pytest.fixture(scope="module")
def revision(tmp_path_factory):
    """The tiny SDXL checkpoint and a tiny CLIP vision tower with its projection (transformers' keys, as ComfyUI keeps
    clip_vision_g.safetensors), projecting to the tiny SDXL's pooled width."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    from comfy_layouts import models_dir
    from tiny_models import build_sdxl_single_file

    def build(root):
        build_sdxl_single_file(root)
        torch.manual_seed(5)
        vision = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=32, projection_dim=WIDTH, num_hidden_layers=2, num_attention_heads=16, image_size=32,
            patch_size=4, intermediate_size=37, hidden_act="gelu", layer_norm_eps=1e-5))
        (root / "models" / "clip_vision").mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in vision.state_dict().items()},
                  str(root / "models" / "clip_vision" / "clip_vision_tiny.safetensors"))
        return root
    yield from models_dir(tmp_path_factory, build, "revision")


def test_comfyui_sdxl_revision_template_runs_with_comfyuis_pooled_prompt(revision, tmp_path, monkeypatch):
    """ComfyUI's sdxl_revision_text_prompts (two pictures through CLIPVisionEncode and two chained
    unCLIPConditioning at strength 0.75 on the prompt, KSampler dpmpp_3m_sde_gpu) imports with every node mapped and
    runs on the tiny files linked under its names (64x64, 2 steps): the UNet's pooled input for the prompt is
    ComfyUI's revision maths on the pictures' projected CLIP embeddings (transformers' tower on its processor's
    pixels) and the run's seed; the negative's is its pooled text."""
    import json
    from diffusers import UNet2DConditionModel
    from PIL import Image
    from safetensors.torch import load_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection
    from comfy_layouts import imported_template, sampled_latent
    monkeypatch.chdir(tmp_path)
    models = revision / "models"
    data, yaml = imported_template(models, (
        ("checkpoints/sd_xl_base_1.0.safetensors", "checkpoints/sdxl_tiny.safetensors"),
        ("checkpoints/sd_xl_base_1.0", "checkpoints/sdxl_tiny"),
        ("clip_vision/clip_vision_g.safetensors", "clip_vision/clip_vision_tiny.safetensors")),
        TEMPLATES / "sdxl_revision_text_prompts.json", (64, 64), (26, 2))
    assert yaml.count("type: condition.unclip") == 2 and "strength: 0.75" in yaml, yaml
    rng = np.random.default_rng(3)
    pics = []
    for i in (1, 2):
        pic = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
        Image.fromarray(pic).save(tmp_path / f"sdxl_revision_text_prompts_ref_image{i}.png")
        pics.append(pic)
    seen = []
    forward = UNet2DConditionModel.forward

    def spy(self, *args, added_cond_kwargs=None, **kw):
        seen.append(added_cond_kwargs["text_embeds"].detach().clone())
        return forward(self, *args, added_cond_kwargs=added_cond_kwargs, **kw)
    monkeypatch.setattr(UNet2DConditionModel, "forward", spy)
    assert torch.isfinite(sampled_latent(tmp_path / "revision.kino.yaml", yaml)).all()
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=WIDTH, num_hidden_layers=2, num_attention_heads=16, image_size=32,
        patch_size=4, intermediate_size=37, hidden_act="gelu", layer_norm_eps=1e-5)).eval()
    vision.load_state_dict(load_file(str(models / "clip_vision" / "clip_vision_tiny.safetensors")))
    proc = CLIPImageProcessor(crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32}, resample=3,
                              image_mean=[0.48145466, 0.4578275, 0.40821073],
                              image_std=[0.26862954, 0.26130258, 0.27577711])
    with torch.no_grad():
        embeds = [vision(pixel_values=proc(images=Image.fromarray(p), return_tensors="pt").pixel_values).image_embeds
                  for p in pics]
    seed = next(n for n in data["nodes"] if n["type"] == "KSampler")["widgets_values"][0]
    want = comfy_sdxl_pooled([dict(image_embeds=e, strength=0.75, noise_augmentation=0.0) for e in embeds], seed,
                             _merge_noise(seed))
    rows = torch.cat(seen).float()
    print("pooled max abs diff", float((rows - want).abs().min(0).values.max()), json.dumps(list(rows.shape)))
    hits = [(r - want[0]).abs().max() < 1e-4 for r in rows]
    assert any(hits) and not all(hits), rows      # the prompt reads the pictures, the negative its own text


def test_unclip_reaches_every_entry_of_a_combined_prompt():
    """unCLIP after a combine gives each entry the picture (ComfyUI adds it to every entry of the list); before a
    combine, only the entries it was given: each entry's pooled input is its own."""
    from dataclasses import replace
    from nodes.generate.unclip import for_run, with_picture
    torch.manual_seed(1)
    a = torch.randn(1, WIDTH)
    first, second = _cond(), _cond()
    want = comfy_sdxl_pooled([dict(image_embeds=a, strength=1.0, noise_augmentation=0.0)], 42)
    after = for_run(with_picture(replace(first, parts=(second,)), _image(a), 1.0, 0.0), 42)
    assert torch.allclose(after.pooled, want, atol=1e-6) and torch.allclose(after.parts[0].pooled, want, atol=1e-6)
    before = for_run(replace(with_picture(first, _image(a), 1.0, 0.0), parts=(second,)), 42)
    assert torch.allclose(before.pooled, want, atol=1e-6) and torch.equal(before.parts[0].pooled, second.pooled)
