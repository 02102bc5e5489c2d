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
    from tiny_boogu import EDIT, reference
    path = boogu / "models" / "diffusion_models" / EDIT
    assert detect_file(path).family == "boogu"
    model = load_diffusion_model(ModelManager(), EDIT, "default", "cpu").pipe.transformer
    ref = reference(boogu, EDIT)
    torch.manual_seed(0)
    x, context = torch.randn(1, 16, 6, 8), torch.randn(1, 7, 64)
    refs = [torch.randn(1, 16, 8, 6), torch.randn(1, 16, 4, 4)]
    with torch.no_grad():
        for r in (None, refs):
            want = ref(x, torch.tensor([0.6]), context, r)
            got = -model(x, torch.tensor([0.4]), context, r)
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
