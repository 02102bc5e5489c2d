"""Boogu-Image 0.1 pictures and edits: the files a Boogu user holds (ComfyUI's split files: the transformer in its
released names, fp8_scaled; qwen3vl_8b loaded with CLIPLoader type boogu; FLUX.1's ae) are recognised, load, and
sample what ComfyUI's own code gives for the same weights, prompt and seed. The reference is ComfyUI's Boogu written
out in tests/boogu_reference.py (comfy/ldm/boogu/model.py on comfy/ldm/omnigen/omnigen2.py), its prompt turn
comfy/text_encoders/boogu.py's, read by transformers' Qwen3-VL; it shares no code with Kinograph's."""
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48
SHIFT = 3.16                # ComfyUI's Boogu sampling shift (ModelSamplingAuraFlow 3.16 in its templates)
# comfy/text_encoders/boogu.py's system prompts
T2I_SYSTEM = ("You are a helpful assistant that generates high-quality images based on user instructions. The "
              "instructions are as follows.")
DROP_SYSTEM = ("Describe the key features of the input image (color, shape, size, texture, objects, background), then "
               "explain how the user's text instruction should alter or modify the image. Generate a new image that "
               "meets the user's requirements while maintaining consistency with the original input where "
               "appropriate.")


@pytest.fixture(scope="module")
def boogu(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_boogu import build_boogu
    yield from models_dir(tmp_path_factory, build_boogu, "boogu")


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def _states(root, prompt):
    """ComfyUI's Boogu prompt conditioning: Qwen3-VL's last layer, final norm applied, over its chat turn."""
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration
    from tiny_boogu import TE_NAME
    system = T2I_SYSTEM if prompt.strip() else DROP_SYSTEM
    text = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n"
    tok = AutoTokenizer.from_pretrained(str(root / "models" / "text_encoders" / TE_NAME))
    te = Qwen3VLForConditionalGeneration.from_pretrained(str(root / "reference" / "text_encoder")).eval()
    with torch.no_grad():
        return te.model(input_ids=tok(text, return_tensors="pt").input_ids).last_hidden_state


def _levels(steps):
    """ComfyUI's simple schedule on Boogu's flow levels (1000 of them, shifted): the step's level, 0 last."""
    t = torch.tensor([1 - int(i * 1000 / steps) / 1000 for i in range(steps)], dtype=torch.float64)
    return torch.cat([SHIFT * t / (1 + (SHIFT - 1) * t), torch.zeros(1, dtype=torch.float64)]).tolist()


def _euler(model, context, seed, size, steps=2, refs=None):
    """ComfyUI's euler at cfg 1 from its noise for the seed: x0 = x - sigma * model(x, sigma)."""
    w, h = size
    x = torch.randn((1, 16, h // 8, w // 8), generator=torch.Generator().manual_seed(seed))
    levels = _levels(steps)
    with torch.no_grad():
        for s, nxt in zip(levels, levels[1:]):
            out = model(x, torch.tensor([s], dtype=torch.float32), context, refs)
            x = x + out * (nxt - s)
    return x


def test_boogu_transformer_file_matches_comfyuis(boogu):
    """The fp8_scaled file is told Boogu's, loads with load.diffusion_model and predicts ComfyUI's model's output on
    the same weights, from a prompt alone and reading two reference latents of two sizes."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from boogu_reference import forward_pairs
    from tiny_boogu import EDIT, reference
    path = boogu / "models" / "diffusion_models" / EDIT
    assert detect_file(path).family == "boogu"
    model = load_diffusion_model(ModelManager(), EDIT, "default", "cpu").pipe.transformer
    for want, got in forward_pairs(model, reference(boogu, EDIT), 64):
        assert _err(want, got) < 1e-5


def test_comfyui_boogu_turbo_template_imports_and_runs(boogu, tmp_path, monkeypatch):
    """ComfyUI's Boogu-Image Turbo text-to-image template (a subgraph: UNETLoader boogu_image_turbo_fp8_scaled,
    CLIPLoader qwen3vl_8b_fp8_scaled type boogu, VAELoader ae, CLIPTextEncode, ConditioningZeroOut as the negative,
    KSampler 4 steps cfg 1 lcm / sgm_uniform). Every node maps and it runs on the tiny files under the template's
    names (64x48, 2 steps) and saves a picture; with euler on simple levels the latent is ComfyUI's model's for its
    prompt and seed (Boogu's default shift 3.16: levels 1, 0.76)."""
    from comfy_layouts import imported_template, sampled_latent
    from tiny_boogu import TURBO, reference
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(boogu / "models", (), TEMPLATES / "image_boogu_image_0_1_turbo_t2i.json", (W, H),
                                   (4, 2))
    assert "type: boogu" in yaml and "steps: 2" in yaml and "scheduler: sgm_uniform" in yaml, yaml
    assert torch.isfinite(sampled_latent(tmp_path / "boogu.kino.yaml", yaml)).all()
    assert (tmp_path / "out" / "Boogu" / "frame_000000.png").is_file()
    yaml = re.sub(r"sampler: \w+", "sampler: euler", yaml).replace("scheduler: sgm_uniform", "scheduler: simple")
    got = sampled_latent(tmp_path / "boogu.kino.yaml", yaml)
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    text = next(n for n in sub if n["type"] == "CLIPTextEncode")["widgets_values"][0]
    seed = next(n for n in sub if n["type"] == "KSampler")["widgets_values"][0]
    want = _euler(reference(boogu, TURBO), _states(boogu, text), seed, (W, H))
    assert _err(want, got) < 1e-4


def _area(x, w, h):          # comfy.utils.common_upscale(..., "area", "disabled")
    return torch.nn.functional.interpolate(x, size=(h, w), mode="area")


def _about(w, h, size, step=1):
    s = (size * size / (w * h)) ** 0.5
    return round(w * s / step) * step, round(h * s / step) * step


def _edit_states(root, prompt, picture, vision_size):
    """TextEncodeBooguEdit's positive: the picture area-resized to about vision_size squared, read as ComfyUI's
    qwen_vl.process_qwen2vl_images reads it (bilinear to multiples of 32, to -1..1, 16-pixel patches in its order)
    in the image turn, through transformers' Qwen3-VL."""
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration
    from tiny_boogu import TE_NAME
    x = torch.from_numpy(picture).permute(2, 0, 1)[None]
    x = _area(x, *_about(x.shape[3], x.shape[2], vision_size))
    hb, wb = round(x.shape[2] / 32) * 32, round(x.shape[3] / 32) * 32
    x = torch.nn.functional.interpolate(x, size=(hb, wb), mode="bilinear", align_corners=False)[0]
    x = (x - 0.5) / 0.5
    gh, gw = hb // 16, wb // 16
    patches = x[None].repeat(2, 1, 1, 1).reshape(1, 2, 3, gh // 2, 2, 16, gw // 2, 2, 16)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(gh * gw, -1)
    vision = "<|vision_start|>" + "<|image_pad|>" * (gh * gw // 4) + "<|vision_end|>"
    text = f"<|im_start|>system\n{DROP_SYSTEM}<|im_end|>\n<|im_start|>user\n{vision}{prompt}<|im_end|>\n"
    tok = AutoTokenizer.from_pretrained(str(root / "models" / "text_encoders" / TE_NAME))
    te = Qwen3VLForConditionalGeneration.from_pretrained(str(root / "reference" / "text_encoder")).eval()
    ids = tok(text, return_tensors="pt").input_ids
    kinds = (ids == tok.convert_tokens_to_ids("<|image_pad|>")).long()       # transformers' mark of image tokens
    with torch.no_grad():
        return te.model(input_ids=ids, mm_token_type_ids=kinds, pixel_values=patches,
                        image_grid_thw=torch.tensor([[1, gh, gw]])).last_hidden_state


def _edit_latent(root, picture, size):
    """The reference latent: the picture area-resized to about size squared (multiples of 16), FLUX.1's VAE's mean,
    in ComfyUI's Flux latent format ((z - 0.1159) * 0.3611)."""
    from diffusers import AutoencoderKL
    x = torch.from_numpy(picture).permute(2, 0, 1)[None]
    x = _area(x, *_about(x.shape[3], x.shape[2], size, 16))
    vae = AutoencoderKL.from_pretrained(str(root / "reference" / "vae")).eval()
    with torch.no_grad():
        return (vae.encode(x * 2 - 1).latent_dist.mode() - 0.1159) * 0.3611


def _guided(model, positive, negative, cfg):
    def run(x, sigma, _, refs):
        u, c = model(x, sigma, negative, refs), model(x, sigma, positive, refs)
        return u + cfg * (c - u)
    return run


def test_comfyui_boogu_edit_templates_import_and_run(boogu, tmp_path, monkeypatch):
    """ComfyUI's two Boogu-Image Edit templates (a subgraph: UNETLoader boogu_image_edit_fp8_scaled or
    _int8_convrot, CLIPLoader qwen3vl_8b_fp8_scaled type boogu, VAELoader ae, TextEncodeBooguEdit reading the loaded
    picture, its latent the size of the picture resized to a megapixel, SamplerCustom cfg 3.5 dpmpp_2m on
    BasicScheduler simple at ModelSamplingAuraFlow 3.16). Every node maps and each runs on the tiny files under the
    templates' names (the picture's latent and Qwen3-VL's view of it at 64 rather than 1024 and 384, the resize to
    160x224, 2 steps) and saves a picture; with euler the fp8_scaled file's latent is ComfyUI's: Qwen3-VL seeing the
    picture in the positive only, the picture's latent on both prompts, guided at 3.5. The int8_convrot file
    (ComfyUI's quantisation of the same weights) samples the same within int8 error."""
    from PIL import Image
    from safetensors.torch import load_file, save_file
    import comfy_convrot as cr
    from comfy_layouts import imported_template, sampled_latent
    from tiny_boogu import EDIT, reference
    from tiny_qwen import dequantised
    models = boogu / "models"
    state = {k: v.bfloat16() for k, v in dequantised(load_file(str(models / "diffusion_models" / EDIT))).items()}
    save_file(cr.quantise_file_state(state, 16, prefix="model.diffusion_model."),
              str(models / "diffusion_models" / "boogu_image_edit_int8_convrot.safetensors"))
    rng = torch.Generator().manual_seed(5)
    picture = (torch.rand(84, 60, 3, generator=rng) * 255).to(torch.uint8).numpy()
    Image.fromarray(picture).save(tmp_path / "picture.png")
    monkeypatch.chdir(tmp_path)
    latents, prompts = {}, {}
    for template in ("image_boogu_image_0_1_edit.json", "image_boogu_image_0_1_edit_int8.json"):
        data, yaml = imported_template(models, (), TEMPLATES / template, (W, H), (25, 2))
        assert "type: encode.boogu_edit" in yaml and "sampler: dpmpp_2m" in yaml and "cfg: 3.5" in yaml, yaml
        sub = data["definitions"]["subgraphs"][0]["nodes"]
        prompts[template] = next(n for n in sub if n["type"] == "TextEncodeBooguEdit")["widgets_values"][0]
        yaml = re.sub(r"path: \S+\.png", f"path: {tmp_path / 'picture.png'}", yaml)
        yaml = yaml.replace("megapixels: 1.0", f"megapixels: {160 * 224 / 2 ** 20}")
        yaml = yaml.replace("      negative: ''\n", "      negative: ''\n      size: 64\n      vision_size: 64\n")
        assert torch.isfinite(sampled_latent(tmp_path / "edit.kino.yaml", yaml, "sampler_custom")).all()
        assert list((tmp_path / "out").rglob("*.png"))
        latents[template] = sampled_latent(tmp_path / "edit.kino.yaml", yaml.replace("dpmpp_2m", "euler"),
                                           "sampler_custom")
    got = latents["image_boogu_image_0_1_edit.json"]
    assert got.shape[-2:] == (28, 20)
    prompt = prompts["image_boogu_image_0_1_edit.json"]
    floats = picture.astype("float32") / 255
    model = _guided(reference(boogu, EDIT), _edit_states(boogu, prompt, floats, 64), _states(boogu, ""), 3.5)
    want = _euler(model, None, 22, (160, 224), refs=[_edit_latent(boogu, floats, 64)])
    assert _err(want, got) < 1e-4
    # the int8 template asks for another edit: its latent against the fp8_scaled file's with its prompt
    int8 = latents["image_boogu_image_0_1_edit_int8.json"]
    model = _guided(reference(boogu, EDIT), _edit_states(boogu, prompts["image_boogu_image_0_1_edit_int8.json"],
                                                         floats, 64), _states(boogu, ""), 3.5)
    assert 0 < _err(_euler(model, None, 22, (160, 224), refs=[_edit_latent(boogu, floats, 64)]), int8) < 2e-2


def test_boogu_edit_names_the_text_encoder_it_needs(boogu):
    """Qwen3-VL loaded for another model (type krea2) is refused by encode.boogu_edit with the file and type to use,
    and a picture too narrow for 16-pixel squares is refused with what to change."""
    from graph_engine import NodeError
    from nodes.generate.boogu_edit import encode_boogu_edit
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder, load_vae
    from tiny_boogu import TE_NAME
    mm = ModelManager()
    picture = torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()
    krea2 = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "krea2", "cpu")
    with pytest.raises(NodeError, match="qwen3vl_8b_fp8_scaled.safetensors with type boogu"):
        encode_boogu_edit(krea2, None, "remove the hat", "", [picture])
    te = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "boogu", "cpu")
    narrow = torch.zeros(256, 2, 3, dtype=torch.uint8).numpy()
    with pytest.raises(NodeError, match="too narrow for Boogu-Image"):
        encode_boogu_edit(te, load_vae(mm, "ae.safetensors", "cpu"), "remove the hat", "", [narrow], 64, 64)
