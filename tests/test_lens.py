"""Lens and Lens-Turbo pictures: the files a Lens user holds (ComfyUI's split files: the transformer in its released
names, bf16; GPT-OSS loaded with CLIPLoader type lens; FLUX.2's VAE) are recognised, load, and sample what ComfyUI's
own code gives for the same weights, prompt and seed. The reference is ComfyUI's Lens written out in
tests/lens_reference.py (comfy/ldm/lens/model.py; comfy/text_encoders/gpt_oss.py's GPT-OSS with its Harmony turn,
layer capture and 97-token offset); it shares no code with Kinograph's."""
import math
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
def lens(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_lens import build_lens
    yield from models_dir(tmp_path_factory, build_lens, "lens")


def _max_diff(want, got):
    return float((want - got).abs().max())


def test_lens_transformer_file_matches_comfyuis(lens):
    """The bf16 file is told Lens's, loads with load.diffusion_model and predicts ComfyUI's model's output on the same
    weights: a prompt of its own length, one with padding masked, and no prompt at all (an empty one)."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_lens import BASE, reference
    assert detect_file(lens / "models" / "diffusion_models" / BASE).family == "lens"
    model = load_diffusion_model(ModelManager(), BASE, "default", "cpu").pipe.transformer
    ref = reference(lens, BASE)
    torch.manual_seed(0)
    x, context = torch.randn(1, 128, 5, 6), torch.randn(1, 7, 4 * 32)
    mask = torch.arange(7)[None] < 5
    with torch.no_grad():
        for c, m in ((context, None), (context, mask), (context[:, :0], None)):
            want = ref(x, torch.tensor([0.7]), c, m)
            assert _max_diff(want, model(x, torch.tensor([0.7]), c, m)) < 1e-5


def test_lens_text_encoder_reads_the_prompt_as_comfyui(lens):
    """CLIPLoader type lens: GPT-OSS from ComfyUI's file (expert banks, tokenizer inside), the prompt in Lens's
    Harmony turn, layers 5, 11, 17, 23 side by side after the turn's first 97 tokens; an empty prompt is no tokens.
    A GPT-OSS given type auto is Lens's too."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from tiny_lens import TE, reference_states
    prompt = "A cluster of wild cosmos flowers, warm golden light"
    for kind in ("lens", "auto"):
        te = load_text_encoder(ModelManager(), TE, "", kind, "cpu")
        assert te.family == "lens"
    got = encode_prompt(te, prompt)
    want = reference_states(lens, prompt)
    assert got.embeds.shape == want.shape
    # float32 through 24 layers in another order of operations: within 1e-5 of the states' size
    print("text max abs diff", _max_diff(want, got.embeds.float()), "of", float(want.abs().max()))
    assert _max_diff(want, got.embeds.float()) < 1e-5 * float(want.abs().max())
    assert encode_prompt(te, "  ").embeds.shape[1] == 0


def _levels(shift, steps):
    """ComfyUI's simple schedule on ModelSamplingFlux's 10000 levels shifted by e^mu = shift, then 0."""
    t = torch.tensor([1 - int(i * 10000 / steps) / 10000 for i in range(steps)], dtype=torch.float64)
    return torch.cat([shift * t / (1 + (shift - 1) * t), torch.zeros(1, dtype=torch.float64)]).tolist()


def _sample(model, cond, uncond, cfg, shift, seed, shape, steps=2):
    """ComfyUI's SamplerCustom (euler) on a FLUX-type model: x0 = x - sigma * model(x, sigma); CFG on the
    predictions, then CFGNorm (strength 1) capping the guided one's per-pixel norm at the conditional one's."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    levels = _levels(shift, steps)
    with torch.no_grad():
        for s, nxt in zip(levels, levels[1:]):
            sig = torch.tensor([s], dtype=torch.float32)
            c = x - s * model(x, sig, cond)
            den = c
            if cfg != 1:
                u = x - s * model(x, sig, uncond)
                den = u + cfg * (c - u)
            den = den * (c.norm(dim=1, keepdim=True) / (den.norm(dim=1, keepdim=True) + 1e-8)).clamp(0, 1)
            x = x + (x - den) / s * (nxt - s)
    return x


@pytest.mark.parametrize("template,model,steps", [("image_lens_turbo_t2i", "turbo", 4), ("image_lens_t2i", "base", 20)])
def test_comfyui_lens_templates_import_and_run(lens, tmp_path, monkeypatch, template, model, steps):
    """ComfyUI's Lens templates (a subgraph: UNETLoader lens_[turbo_]bf16, CLIPLoader gpt_oss_20b_nvfp4 type lens,
    VAELoader flux2-vae, ModelSamplingFlux at the picture's size, CFGNorm, SamplerCustom euler on BasicScheduler
    simple; base cfg 5 with an empty negative, Turbo cfg 1) import with every node mapped and run on the tiny files
    linked under the templates' names (64x48, 2 steps), saving a picture; the latent is ComfyUI's model's for the
    template's prompt, seed and shift (max abs diff < 1e-4)."""
    from comfy_layouts import imported_template, sampled_latent
    from tiny_lens import BASE, TE, TURBO, reference, reference_states
    monkeypatch.chdir(tmp_path)
    ours = TURBO if model == "turbo" else BASE
    name = "lens_turbo_bf16.safetensors" if model == "turbo" else "lens_bf16.safetensors"
    data, yaml = imported_template(lens / "models", ((f"diffusion_models/{name}", f"diffusion_models/{ours}"),
                                                     ("text_encoders/gpt_oss_20b_nvfp4.safetensors",
                                                      f"text_encoders/{TE}")),
                                   TEMPLATES / f"{template}.json", (W, H), (steps, 2))
    assert "type: lens" in yaml and "guide.cfg_norm" in yaml, yaml
    size = [int(re.search(side + r": (\d+)", yaml).group(1)) for side in ("width", "height")]
    yaml = re.sub(r"width: \d+", f"width: {W}", re.sub(r"height: \d+", f"height: {H}", yaml))
    got = sampled_latent(tmp_path / "lens.kino.yaml", yaml, "sampler_custom")
    assert (tmp_path / "out" / "Lens" / "frame_000000.png").is_file()
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    text = next(n for n in sub if n["type"] == "CLIPTextEncode")["widgets_values"][0]
    _, seed, _, cfg = next(n for n in sub if n["type"] == "SamplerCustom")["widgets_values"]
    # ModelSamplingFlux's shift from the template's picture size (ResolutionSelector's, 16-pixel tokens)
    tokens = size[0] * size[1] / 256
    m = (1.15 - 0.5) / (4096 - 256)
    shift = math.exp(tokens * m + 0.5 - m * 256)
    want = _sample(reference(lens, ours), reference_states(lens, text), reference_states(lens, ""), cfg, shift, seed,
                   got.shape)
    print("latent max abs diff", _max_diff(want, got))
    assert _max_diff(want, got) < 1e-4


def _nvfp4_text_encoder(lens) -> tuple:
    """The tiny GPT-OSS as Comfy-Org's gpt_oss_20b_nvfp4 holds it: the attention projections and the expert banks
    whose sides are whole 16-value blocks in NVFP4 under ComfyUI's keys (weight, weight_scale tiled, weight_scale_2,
    comfy_quant; a bank with num_experts), the rest (down_proj's 24 inputs, the router, norms, embeddings) bf16; and
    a twin holding the reference's dequantisation of the same bytes (float32) in their place. Returns both names."""
    from safetensors.torch import load_file, save_file
    import comfy_blockquant as ref
    from tiny_lens import TE
    folder = lens / "models" / "text_encoders"
    state = load_file(str(folder / TE))
    quantised, twin = dict(state), dict(state)
    for name, w in state.items():
        base = name[: -len(".weight")]
        if name.endswith(".weight") and (".self_attn." in name or ".experts." in name) and w.ndim >= 2 \
                and w.shape[-1] % 16 == 0 and w.shape[-2] % 16 == 0:
            del quantised[name]
            quantised.update(ref.quantise_layer(base, w, "nvfp4"))
            twin[name] = ref.dequantise_layer(quantised, base, "nvfp4")      # float32: the scales' product is no bf16
    assert sum(k.endswith(".comfy_quant") for k in quantised) == 24 * 5
    names = ("gpt_oss_tiny_nvfp4.safetensors", "gpt_oss_tiny_nvfp4_dequantised.safetensors")
    save_file(quantised, str(folder / names[0]))
    save_file(twin, str(folder / names[1]))
    return names


def test_lens_runs_on_comfyuis_nvfp4_text_encoder(lens, tmp_path, monkeypatch):
    """Comfy-Org publishes Lens's text encoder only as gpt_oss_20b_nvfp4, which Kinograph refused. ComfyUI's
    image_lens_turbo_t2i, naming that file, now imports and runs on a tiny GPT-OSS in its NVFP4 layout (attention and
    expert banks 4-bit, block scales in cuBLAS's tiles), and samples the latent the same template gives with a file
    of the reference's dequantised weights (comfy-kitchen's maths, tests/comfy_blockquant.py); `kinograph info`
    says the file loads."""
    from comfy_layouts import imported_template, sampled_latent
    from nodes.generate.model_manager import describe_model
    from tiny_lens import TURBO
    monkeypatch.chdir(tmp_path)
    nvfp4, twin = _nvfp4_text_encoder(lens)
    got = describe_model(lens / "models" / "text_encoders" / nvfp4)
    assert (got["loads"], got["precision"]) == ("yes", "nvfp4_mixed"), got
    _, yaml = imported_template(lens / "models", (("diffusion_models/lens_turbo_bf16.safetensors",
                                                   f"diffusion_models/{TURBO}"),
                                                  ("text_encoders/gpt_oss_20b_nvfp4.safetensors",
                                                   f"text_encoders/{nvfp4}")),
                                TEMPLATES / "image_lens_turbo_t2i.json", (W, H), (4, 2))
    assert "gpt_oss_20b_nvfp4.safetensors" in yaml
    yaml = re.sub(r"width: \d+", f"width: {W}", re.sub(r"height: \d+", f"height: {H}", yaml))
    got = sampled_latent(tmp_path / "lens.kino.yaml", yaml, "sampler_custom")
    want = sampled_latent(tmp_path / "lens_twin.kino.yaml", yaml.replace("gpt_oss_20b_nvfp4.safetensors", twin),
                          "sampler_custom")
    print("latent max abs diff", _max_diff(want, got))
    assert float(want.abs().max()) > 0.1 and _max_diff(want, got) < 1e-5
