"""JoyImage Edit: the files a JoyImage user holds (ComfyUI's split files: the transformer in its released names, bf16
or int8_convrot; Qwen3-VL-8B loaded with CLIPLoader type joyimage; the Wan 2.1 VAE) are recognised, load, and sample
what ComfyUI's own code gives for the same weights, pictures, prompts and seed. The references share no code with
Kinograph's: diffusers' JoyImageEditTransformer3DModel (the picture and its reference of one size) and
JoyImageEditPlusTransformer3DModel (ComfyUI's order and positions, references of any size), diffusers' AutoencoderKLWan,
transformers' Qwen3-VL read where diffusers' JoyImageEditPipeline reads it (the last decoder layer's own output), and
ComfyUI's TextEncodeJoyImageEdit, Qwen-VL picture reading, CFGNorm (pre_cfg), normal schedule and euler written out
here."""
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
SHIFT = 4.0             # JoyImage's flow shift (Kinograph's scheduler.json for the family)
SIZE = 256              # the trained shapes at a quarter of their sides, so the tiny run stays small
# comfy/text_encoders/joyimage.py's chat turn and the tokens it drops
SYSTEM = ("<|im_start|>system\n \\nDescribe the image by detailing the color, shape, size, texture, quantity, text, "
          "spatial relationships of the objects and background:<|im_end|>\n")
DROP = 34


@pytest.fixture(scope="module")
def joy(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_joyimage import build_joyimage
    yield from models_dir(tmp_path_factory, build_joyimage, "joyimage")


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def _patches(x):
    """[1, C, 1, h, w] -> JoyImageEditPlusTransformer3DModel's [n, C, 1, 2, 2] patches in (t, h, w) order."""
    c, _, h, w = x[0].shape
    return x[0].reshape(c, 1, h // 2, 2, w // 2, 2).permute(2, 4, 0, 1, 3, 5).reshape(-1, c, 1, 2, 2)


def _plus(model, x, timestep, text, refs):
    """diffusers' Edit Plus transformer on the picture and its references (any sizes): the picture's velocity."""
    parts = [x, *refs]
    hidden = torch.cat([_patches(p) for p in parts])[None]
    shapes = [[(1, p.shape[-2] // 2, p.shape[-1] // 2) for p in parts]]
    out = model(hidden, timestep, text, shape_list=shapes, return_dict=False)[0][0]
    h, w = x.shape[-2:]
    return out[: h * w // 4].reshape(h // 2, w // 2, -1, 1, 2, 2).permute(2, 3, 0, 4, 1, 5).reshape(1, -1, 1, h, w)


def test_joyimage_transformer_files_match_diffusers(joy):
    """The bf16 and int8_convrot files are told JoyImage Edit's, load with load.diffusion_model and predict what
    diffusers' transformers predict on the same weights: with a reference of the picture's size (the pipeline's
    two items), and with references of other sizes (the Edit Plus model's positions, as ComfyUI places them)."""
    from nodes.generate.adapters.joyimage import run_transformer
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_joyimage import BF16, INT8, reference
    for name in (BF16, INT8):
        assert detect_file(joy / "models" / "diffusion_models" / name).family == "joyimage"
    models = {n: load_diffusion_model(ModelManager(), n, "default", "cpu").pipe.transformer for n in (BF16, INT8)}
    torch.manual_seed(0)
    x, text, t = torch.randn(1, 16, 1, 6, 8), torch.randn(1, 7, 64), torch.tensor([600.0])
    same, other = torch.randn(1, 16, 1, 6, 8), [torch.randn(1, 16, 1, 8, 4), torch.randn(1, 16, 1, 4, 4)]
    with torch.no_grad():
        want = reference(joy)(torch.stack([same, x], 1), t, text, return_dict=False)[0][:, -1]
        assert _err(want, run_transformer(models[BF16], x, t, text, [same])) < 1e-5
        plus = reference(joy, plus=True)
        for refs in ([], other):
            want = _plus(plus, x, t, text, refs)
            assert _err(want, run_transformer(models[BF16], x, t, text, refs)) < 1e-5
            assert 0 < _err(want, run_transformer(models[INT8], x, t, text, refs)) < 3e-2


def _states(root, prompt, picture=None):
    """TextEncodeJoyImageEdit's conditioning: the prompt in JoyImage's turn (the picture first, read as ComfyUI's
    process_qwen2vl_images reads it for JoyImage: bicubic to multiples of 32, at least 65536 pixels, to -1..1, 16-pixel
    patches in its order) through transformers' Qwen3-VL, the last decoder layer's own output, 34 tokens dropped."""
    from diffusers import JoyImageEditPipeline
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration
    from tiny_joyimage import TE_NAME
    tok = AutoTokenizer.from_pretrained(str(root / "models" / "text_encoders" / TE_NAME))
    te = Qwen3VLForConditionalGeneration.from_pretrained(str(root / "reference" / "text_encoder")).eval()
    extra, vision = {}, ""
    if picture is not None:
        x = picture.permute(2, 0, 1)[None]
        h, w = x.shape[2:]
        hb, wb = round(h / 32) * 32, round(w / 32) * 32
        if hb * wb < 65536:
            beta = (65536 / (h * w)) ** 0.5
            hb, wb = -(-h * beta // 32) * 32, -(-w * beta // 32) * 32
        x = torch.nn.functional.interpolate(x, size=(int(hb), int(wb)), mode="bicubic", align_corners=False)[0]
        x = (x - 0.5) / 0.5
        gh, gw = int(hb) // 16, int(wb) // 16
        patches = x[None].repeat(2, 1, 1, 1).reshape(1, 2, 3, gh // 2, 2, 16, gw // 2, 2, 16)
        extra = dict(pixel_values=patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(gh * gw, -1),
                     image_grid_thw=torch.tensor([[1, gh, gw]]))
        vision = "<|vision_start|>" + "<|image_pad|>" * (gh * gw // 4) + "<|vision_end|>"
    text = f"{SYSTEM}<|im_start|>user\n{vision}{prompt}<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(text, return_tensors="pt").input_ids
    if extra:
        extra["mm_token_type_ids"] = (ids == tok.convert_tokens_to_ids("<|image_pad|>")).long()
    with torch.no_grad():
        states = JoyImageEditPipeline._get_last_decoder_hidden_states(SimpleNamespace(text_encoder=te), te,
                                                                       input_ids=ids, **extra)
    return states[:, DROP:]


def _reference_picture(picture):
    """TextEncodeJoyImageEdit's resize: the nearest trained shape (diffusers' find_best_bucket, at SIZE), the picture
    cut at the middle to it and resized bilinearly (comfy.utils.common_upscale "bilinear", "center")."""
    from diffusers.pipelines.joyimage.image_processor import find_best_bucket
    h, w = picture.shape[:2]
    bh, bw = (s * SIZE // 1024 for s in find_best_bucket(h, w, 1024))
    old, new = w / h, bw / bh
    x0 = round((w - w * (new / old)) / 2) if old > new else 0
    y0 = round((h - h * (old / new)) / 2) if old < new else 0
    x = picture.permute(2, 0, 1)[None, :, y0:h - y0, x0:w - x0]
    return torch.nn.functional.interpolate(x, size=(bh, bw), mode="bilinear")[0].permute(1, 2, 0)


def _latent(root, picture):
    """The picture's reference latent: diffusers' AutoencoderKLWan's mean in the Wan 2.1 latent statistics."""
    from diffusers import AutoencoderKLWan
    vae = AutoencoderKLWan.from_pretrained(str(root / "reference" / "vae")).eval()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        z = vae.encode(picture.permute(2, 0, 1)[None, :, None] * 2 - 1).latent_dist.mode()
    return (z - mean) / std


def _levels(steps):
    """ComfyUI's normal schedule on the shifted flow levels (ModelSamplingDiscreteFlow, multiplier 1000)."""
    shift = lambda t: SHIFT * t / (1 + (SHIFT - 1) * t)       # noqa: E731
    ts = torch.linspace(1000, shift(1 / 1000) * 1000, steps, dtype=torch.float64)
    return [float(shift(t / 1000)) for t in ts] + [0.0]


def _sample(model, positive, negative, refs, shape, seed, cfg=4.0, steps=2):
    """ComfyUI's KSampler (euler) with CFGNorm pre_cfg: the guided noise x - x0 rescaled to the positive's norm over
    the channels at each latent pixel."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))[:, :, None]
    levels = _levels(steps)
    with torch.no_grad():
        for s, nxt in zip(levels, levels[1:]):
            t = torch.tensor([s * 1000], dtype=torch.float32)
            cond = s * _plus(model, x, t, positive, refs)           # x - x0 = sigma * velocity
            uncond = s * _plus(model, x, t, negative, refs)
            comb = uncond + cfg * (cond - uncond)
            comb = comb * cond.norm(dim=1, keepdim=True) / comb.norm(dim=1, keepdim=True)
            x = x + comb / s * (nxt - s)
    return x[:, :, 0]


def test_comfyui_joyimage_edit_template_imports_and_runs(joy, tmp_path, monkeypatch):
    """ComfyUI's image_joyai_image_edit template (a subgraph: UNETLoader joyai_image_edit_int8_convrot, CLIPLoader
    qwen3vl_8b_joyimage_edit_int8_convrot type joyimage, VAELoader wan_2.1_vae, TextEncodeJoyImageEdit on the prompt
    and on an empty negative, each with the picture, CFGNorm pre_cfg, KSampler euler/normal cfg 4, the latent the
    size of the picture scaled to a megapixel). Every node maps and it runs on the tiny files under the template's
    names (the text encoder fp8_scaled, the trained shapes at a quarter size, the picture so small that the megapixel
    scale keeps it, 96x112, 2 steps) and saves a picture; the bf16 file's latent is ComfyUI's on the same weights, the
    int8_convrot one's within int8 error."""
    from PIL import Image
    from comfy_layouts import imported_template, sampled_latent
    from tiny_joyimage import BF16, TE_NAME, reference
    models = joy / "models"
    rng = torch.Generator().manual_seed(5)
    picture = (torch.rand(112, 96, 3, generator=rng) * 255).to(torch.uint8)
    Image.fromarray(picture.numpy()).save(tmp_path / "picture.png")
    monkeypatch.chdir(tmp_path)
    te = "qwen3vl_8b_joyimage_edit_int8_convrot"
    links = ((f"text_encoders/{te}.safetensors", f"text_encoders/{TE_NAME}.safetensors"),
             (f"text_encoders/{te}", f"text_encoders/{TE_NAME}"))
    data, yaml = imported_template(models, links, TEMPLATES / "image_joyai_image_edit.json", (64, 80), (40, 2))
    assert "type: encode.joyimage_edit" in yaml and "pre_cfg: true" in yaml and "sampler: euler" in yaml, yaml
    yaml = re.sub(r"path: \S+\.png", f"path: {tmp_path / 'picture.png'}", yaml)
    yaml = yaml.replace("megapixels: 1\n", f"megapixels: {96 * 112 / 2 ** 20}\n")
    yaml = yaml.replace("    params:\n      text:", f"    params:\n      size: {SIZE}\n      text:")
    got = sampled_latent(tmp_path / "joy.kino.yaml", yaml)
    assert list((tmp_path / "out").rglob("*.png")) and got.shape[-2:] == (14, 12)
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    prompt = next(n for n in sub if n["id"] == 174)["widgets_values"][0]
    seen = _reference_picture(picture.float() / 255)
    refs = [_latent(joy, seen)]
    want = _sample(reference(joy, plus=True), _states(joy, prompt, seen), _states(joy, "", seen), refs,
                   (1, 16, 14, 12), 42)
    bf16 = sampled_latent(tmp_path / "joy.kino.yaml", yaml.replace("joyai_image_edit_int8_convrot.safetensors", BF16))
    assert _err(want, bf16) < 1e-5
    assert 0 < _err(want, got) < 1e-2


def test_joyimage_edit_names_what_it_needs(joy):
    """Qwen3-VL loaded for another model (type boogu) or another family's VAE is refused by encode.joyimage_edit
    with the file and type to use; a size off the 256 grid is refused with what to give."""
    from graph_engine import NodeError
    from nodes.generate.joyimage_edit import encode_joyimage_edit
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from tiny_joyimage import TE_NAME
    mm = ModelManager()
    picture = torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()
    boogu = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "boogu", "cpu")
    with pytest.raises(NodeError, match="with type joyimage"):
        encode_joyimage_edit(boogu, None, "make it blue", [picture])
    te = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "joyimage", "cpu")
    with pytest.raises(NodeError, match="wan_2.1_vae"):
        encode_joyimage_edit(te, SimpleNamespace(family="flux"), "make it blue", [picture])
    with pytest.raises(NodeError, match="multiple of 256"):
        encode_joyimage_edit(te, None, "make it blue", [picture], 300)
