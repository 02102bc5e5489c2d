"""PixelDiT pictures: the files a PixelDiT user holds (Comfy-Org/PixelDiT: the transformer in its released names, bf16;
Gemma-2-2B loaded with CLIPLoader type pixeldit; VAELoader's pixel_space) are recognised, load, and give what
ComfyUI's own code gives for the same weights, prompt and seed. The reference is ComfyUI's PixelDiT, its Gemma 2 and
its PixelDiT tokenizer written out in tests/tiny_pixeldit.py (comfy/ldm/pixeldit/model.py and modules.py,
comfy/text_encoders/llama.py's Gemma2_2B, comfy/text_encoders/pixeldit.py); it shares no code with Kinograph's."""
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48


@pytest.fixture(scope="module")
def pixeldit(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_pixeldit import build_pixeldit
    yield from models_dir(tmp_path_factory, build_pixeldit, "pixeldit")


def _max_diff(want, got):
    return float((want - got).abs().max())


def test_pixeldit_transformer_file_matches_comfyuis(pixeldit):
    """The bf16 file is told PixelDiT's, loads with load.diffusion_model and predicts ComfyUI's model's output on the
    same weights, with a full 300-token prompt and a shorter one."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_pixeldit import MODEL, reference
    assert detect_file(pixeldit / "models" / "diffusion_models" / MODEL).family == "pixeldit"
    model = load_diffusion_model(ModelManager(), MODEL, "default", "cpu").pipe.transformer
    ref = reference(pixeldit)
    torch.manual_seed(0)
    x, context = torch.randn(2, 3, H, W), torch.randn(2, 300, 32)
    with torch.no_grad():
        for c in (context, context[:, :7]):
            want = ref(x, torch.tensor([700.0, 250.0]), c)
            assert float(want.abs().max()) > 0.1
            # float32 in another order of operations: within 2e-5 of the output's size
            assert _max_diff(want, model(x, torch.tensor([700.0, 250.0]), c)) < 2e-5 * float(want.abs().max())


def test_pixeldit_text_encoder_reads_the_prompt_as_comfyui(pixeldit):
    """CLIPLoader type pixeldit (or auto): Gemma 2 from ComfyUI's file (its sentencepiece inside), the prompt after
    PixelDiT's instruction, padded and masked, its first and last 299 states; an empty prompt is <bos> and padding."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from tiny_pixeldit import TE, reference_states
    for kind in ("pixeldit", "auto"):
        te = load_text_encoder(ModelManager(), TE, "", kind, "cpu")
        assert te.family == "pixeldit"
    for prompt in ("A red fox runs through snowy pines at dawn", ""):
        got, want = encode_prompt(te, prompt).embeds.float(), reference_states(pixeldit, prompt)
        assert got.shape == want.shape == (1, 300, 32)
        assert _max_diff(want, got) < 1e-5 * float(want.abs().max())


def test_pixeldit_refuses_another_encoder_and_a_bad_size(pixeldit, tmp_path):
    """A prompt of another width and a picture off the 16-pixel patch are named, with what to do."""
    from graph_engine import NodeError
    from nodes.generate.adapters import get_adapter
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_pixeldit import MODEL
    handle = load_diffusion_model(ModelManager(), MODEL, "default", "cpu")
    adapter = get_adapter("pixeldit")
    latent = type("L", (), {"samples": torch.zeros(1, 3, 1, 40, 64)})()
    with pytest.raises(NodeError, match="16x16 pixel squares"):
        adapter.check_latent(handle, latent)
    latent.samples = torch.zeros(1, 16, 1, 48, 64)
    with pytest.raises(NodeError, match="pixel_space"):
        adapter.check_latent(handle, latent)


def _levels(shift, steps):
    """ComfyUI's simple schedule on ModelSamplingDiscreteFlow's 1000 levels at `shift`, then 0."""
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    sigmas = shift * t / (1 + (shift - 1) * t)
    return [float(sigmas[-(1 + int(i * 1000 / steps))]) for i in range(steps)] + [0.0]


def _sample(model, cond, uncond, cfg, seed, shape, steps):
    """ComfyUI's KSampler (euler) on a flow model told sigma x 1000: x0 = x - sigma * model(x, 1000 sigma); CFG."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    levels = _levels(4.0, steps)
    x = x * levels[0]
    with torch.no_grad():
        for s, nxt in zip(levels, levels[1:]):
            t = torch.tensor([s * 1000], dtype=torch.float32)
            c = x - s * model(x, t, cond)
            u = x - s * model(x, t, uncond)
            den = u + cfg * (c - u)
            x = x + (x - den) / s * (nxt - s)
    return x


def test_comfyui_pixeldit_template_imports_and_runs(pixeldit, tmp_path, monkeypatch):
    """ComfyUI's image_pixeldit_t2i (a subgraph: UNETLoader, CLIPLoader type pixeldit, VAELoader pixel_space,
    EmptyChromaRadianceLatentImage, KSampler cfg 4 on simple) imports with every node mapped and runs on the tiny
    files linked under the template's names (64x48, 2 steps, euler for the template's er_sde, whose noise ComfyUI
    draws apart), saving a picture; the latent is ComfyUI's model's for the template's prompts and seed."""
    from comfy_layouts import imported_template, sampled_latent
    from tiny_pixeldit import MODEL, TE, reference, reference_states
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(pixeldit / "models", (
        ("diffusion_models/pixeldit_1300m_1024px_bf16.safetensors", f"diffusion_models/{MODEL}"),
        ("text_encoders/gemma_2_2b_it_elm_bf16.safetensors", f"text_encoders/{TE}")),
        TEMPLATES / "image_pixeldit_t2i.json", (W, H), (30, 2))
    assert "type: pixeldit" in yaml and "name: pixel_space" in yaml and "sampler: er_sde" in yaml, yaml
    got = sampled_latent(tmp_path / "pixeldit.kino.yaml", yaml.replace("sampler: er_sde", "sampler: euler"))
    assert (tmp_path / "out" / "PixelDiT" / "frame_000000.png").is_file()
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    seed, _, _, cfg = next(n for n in sub if n["type"] == "KSampler")["widgets_values"][:4]
    texts = {n["id"]: n["widgets_values"][0] for n in sub if n["type"] == "CLIPTextEncode"}
    want = _sample(reference(pixeldit), reference_states(pixeldit, texts[6]), reference_states(pixeldit, texts[30]),
                   cfg, seed, got.shape, 2)
    print("latent max abs diff", _max_diff(want, got))
    assert float(want.abs().max()) > 0.1 and _max_diff(want, got) < 1e-4
    assert re.search(r"steps: 2\b", yaml)
