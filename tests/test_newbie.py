"""NewBie-image pictures: the files a NewBie user holds (Comfy-Org/NewBie-image-Exp0.1_repackaged: the NextDiT in its
released names, bf16; Gemma 3 4B and Jina CLIP v2 loaded with DualCLIPLoader type newbie; FLUX.1's ae.safetensors) are
recognised, load, and give what ComfyUI's own code gives for the same weights, prompt and seed. The reference is
ComfyUI's NextDiT with NewBie's pooled input, its Jina CLIP v2 and its NewBie conditioning written out in
tests/tiny_newbie.py (Gemma 3 is transformers'); it shares no code with Kinograph's."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48


@pytest.fixture(scope="module")
def newbie(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_newbie import build_newbie
    yield from models_dir(tmp_path_factory, build_newbie, "newbie")


def _max_diff(want, got):
    return float((want - got).abs().max())


def test_newbie_transformer_file_matches_comfyuis(newbie):
    """The bf16 file is told NewBie's (not Z-Image's, whose blocks it shares), loads with load.diffusion_model and
    predicts ComfyUI's NextDiT output with a pooled prompt and without one (ComfyUI's zeros)."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_newbie import GEMMA, JINA, MODEL, reference
    assert detect_file(newbie / "models" / "diffusion_models" / MODEL).family == "newbie"
    model = load_diffusion_model(ModelManager(), MODEL, "default", "cpu").pipe.transformer
    ref = reference(newbie)
    torch.manual_seed(0)
    x, context, pooled = torch.randn(1, 16, 6, 10), torch.randn(1, 7, GEMMA["hidden"]), torch.randn(1, JINA["hidden"])
    with torch.no_grad():
        for p in (pooled, None):
            want = ref(x, torch.tensor([0.7]), context, p)
            got = model(x, torch.tensor([0.7]), context, p)
            assert float(want.abs().max()) > 0.1
            assert _max_diff(want, got) < 1e-4 * float(want.abs().max())
        # an odd-sized latent is padded to the 2x2 patches and cropped back, as ComfyUI's pad_to_patch_size
        odd = torch.randn(1, 16, 5, 9)
        padded = torch.nn.functional.pad(odd, (0, 1, 0, 1))
        want = ref(padded, torch.tensor([0.3]), context, pooled)[:, :, :5, :9]
        assert _max_diff(want, model(odd, torch.tensor([0.3]), context, pooled)) < 1e-4 * float(want.abs().max())


def test_newbie_text_encoders_read_the_prompt_as_comfyui(newbie):
    """DualCLIPLoader type newbie (or auto), the two files in either order: Gemma 3's next-to-last states (<bos> first) as the
    prompt, Jina CLIP v2's mean-pooled output (<s> prompt </s>) as its pooled output."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from tiny_newbie import GEMMA_FILE, JINA_FILE, reference_text
    assert detect_file(newbie / "models" / "text_encoders" / JINA_FILE).family == "jina_clip2"
    for a, b, kind in ((GEMMA_FILE, JINA_FILE, "newbie"), (JINA_FILE, GEMMA_FILE, "newbie"),
                       (GEMMA_FILE, JINA_FILE, "auto")):
        te = load_text_encoder(ModelManager(), a, b, kind, "cpu")
        assert te.family == "newbie"
        for prompt in ("a red fox in the snow", "<Prompt Start> girl, blue hair"):
            cond = encode_prompt(te, prompt)
            states, pooled = reference_text(newbie, prompt)
            assert cond.embeds.shape == states.shape
            assert _max_diff(states, cond.embeds.float()) < 1e-4 * float(states.abs().max())
            assert _max_diff(pooled, cond.pooled.float()) < 1e-4 * float(pooled.abs().max())
    # a weighted prompt: Gemma reads the brackets as text, Jina the parts ComfyUI's parser cuts (weights unused)
    prompt = "a fox, (blue hair:1.2), snow"
    cond = encode_prompt(te, prompt)
    states, pooled = reference_text(newbie, prompt, ["a fox, ", "blue hair", ", snow"])
    assert cond.embeds.shape == states.shape
    assert _max_diff(states, cond.embeds.float()) < 1e-4 * float(states.abs().max())
    assert _max_diff(pooled, cond.pooled.float()) < 1e-4 * float(pooled.abs().max())


def test_newbie_refuses_a_missing_encoder(newbie):
    """Gemma 3 alone (no Jina CLIP v2) is named with what to load, before any sampling."""
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from tiny_newbie import GEMMA_FILE
    te = load_text_encoder(ModelManager(), GEMMA_FILE, "", "newbie", "cpu")
    with pytest.raises(NodeError, match="lacks Jina CLIP v2.*type newbie"):
        encode_prompt(te, "a fox")


def _levels(shift, steps):
    """ComfyUI's simple schedule on ModelSamplingDiscreteFlow's 1000 levels at `shift`, then 0."""
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    sigmas = shift * t / (1 + (shift - 1) * t)
    return [float(sigmas[-(1 + int(i * 1000 / steps))]) for i in range(steps)] + [0.0]


def _sample(model, cond, uncond, cfg, seed, shape, steps):
    """ComfyUI's KSampler (euler) on a flow model (CONST: x0 = x - sigma * model(x, sigma)) with CFG, each prompt
    run alone (their lengths differ), at ModelSamplingAuraFlow 6."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    levels = _levels(6.0, steps)
    x = x * levels[0]
    with torch.no_grad():
        for s, nxt in zip(levels, levels[1:]):
            sig = torch.tensor([s])
            c = x - s * model(x, sig, *cond)
            u = x - s * model(x, sig, *uncond)
            den = u + cfg * (c - u)
            x = x + (x - den) / s * (nxt - s)
    return x


def test_comfyui_newbie_template_imports_and_runs(newbie, tmp_path, monkeypatch):
    """ComfyUI's image_newbieimage_exp0_1-t2i (a subgraph: UNETLoader, DualCLIPLoader type newbie, VAELoader ae,
    ModelSamplingAuraFlow 6, EmptySD3LatentImage, KSampler res_multistep cfg 5.5; the prompt put together outside by
    StringReplace nodes) imports with every node mapped and runs on the tiny files linked under the template's names
    (64x48, 2 steps), saving a picture; with euler the latent is ComfyUI's model's for the template's prompts and
    seed."""
    import json
    from comfy_layouts import imported_template, sampled_latent
    from tiny_newbie import GEMMA_FILE, JINA_FILE, MODEL, reference, reference_text
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(newbie / "models", (
        ("diffusion_models/NewBie-Image-Exp0.1-bf16.safetensors", f"diffusion_models/{MODEL}"),
        ("text_encoders/gemma_3_4b_it_bf16.safetensors", f"text_encoders/{GEMMA_FILE}"),
        ("text_encoders/jina_clip_v2_bf16.safetensors", f"text_encoders/{JINA_FILE}")),
        TEMPLATES / "image_newbieimage_exp0_1-t2i.json", (W, H), (20, 2))
    yaml = yaml.replace("height: 1536", f"height: {H}")
    assert "type: newbie" in yaml and "sampler: res_multistep" in yaml and f"height: {H}" in yaml, yaml
    assert torch.isfinite(sampled_latent(tmp_path / "newbie.kino.yaml", yaml)).all()
    got = sampled_latent(tmp_path / "newbie.kino.yaml", yaml.replace("sampler: res_multistep", "sampler: euler"))
    assert any(p.suffix == ".png" for p in (tmp_path / "out").rglob("*"))
    top = {n["id"]: n["widgets_values"] for n in data["nodes"]}
    positive = top[47][0].replace("{user_prompt}", top[48][0]).replace("{caption}", top[44][0])
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    seed, _, _, cfg = next(n for n in sub if n["type"] == "KSampler")["widgets_values"][:4]
    negative = next(n for n in sub if n["id"] == 49)["widgets_values"][0]
    want = _sample(reference(newbie), reference_text(newbie, positive), reference_text(newbie, negative), cfg, seed,
                   got.shape, 2)
    print("latent max abs diff", _max_diff(want, got), json.dumps(list(got.shape)))
    assert float(want.abs().max()) > 0.1 and _max_diff(want, got) < 1e-3
