"""OmniGen2 pictures and instruction edits: the files an OmniGen2 user holds (ComfyUI's split files: omnigen2_fp16,
qwen_2.5_vl_fp16 loaded with CLIPLoader type omnigen2, FLUX.1's ae) are recognised, load, and give what ComfyUI's own
code gives for the same weights, prompt, picture and seed. The references are ComfyUI's OmniGen2 transformer written
out (tests/boogu_reference.py's ComfyBoogu without dual-stream blocks, its single-stream ones named layers: comfy/ldm/
omnigen/omnigen2.py), its prompt turn comfy/text_encoders/omnigen2.py's read by transformers' Qwen2.5-VL, FLUX.1's VAE
through diffusers, and ComfyUI's euler and DualCFGGuider written out here; none shares code with Kinograph's."""
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48
SHIFT = 2.6                 # ComfyUI's OmniGen2 sampling shift (comfy/supported_models.py)
# comfy/text_encoders/omnigen2.py's llama_template
TEMPLATE = ("<|im_start|>system\nYou are a helpful assistant that generates high-quality images based on user "
            "instructions.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n")


@pytest.fixture(scope="module")
def omnigen2(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_omnigen2 import build_omnigen2
    yield from models_dir(tmp_path_factory, build_omnigen2, "omnigen2")


def _max_abs(want, got):
    """The largest difference from the reference, printed (pytest -s) for the figures in the notes."""
    diff = float((want - got).abs().max())
    print(f"max abs diff {diff:.2e} (reference's largest value {float(want.abs().max()):.2f})")
    return diff


def _states(root, prompt):
    """ComfyUI's OmniGen2 prompt conditioning: Qwen2.5-VL's last layer, final norm applied, over its chat turn."""
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration
    from tiny_omnigen2 import TE_NAME
    tok = AutoTokenizer.from_pretrained(str(root / "models" / "text_encoders" / TE_NAME))
    te = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(root / "reference" / "text_encoder")).eval()
    with torch.no_grad():
        return te.model(input_ids=tok(TEMPLATE.format(prompt), return_tensors="pt").input_ids).last_hidden_state


def _levels(steps):
    """ComfyUI's simple schedule on OmniGen2's flow levels (1000 of them, shifted by 2.6): each step's, 0 last."""
    t = torch.tensor([1 - int(i * 1000 / steps) / 1000 for i in range(steps)], dtype=torch.float64)
    return torch.cat([SHIFT * t / (1 + (SHIFT - 1) * t), torch.zeros(1, dtype=torch.float64)]).tolist()


def _dual_cfg(model, cond1, cond2, negative, cfg1, cfg2):
    """ComfyUI's DualCFGGuider, style regular: negative + cfg2 (cond2 - negative) + cfg1 (cond1 - cond2); each
    conditioning a (prompt states, reference latents or None)."""
    def run(x, sigma):
        n, m, p = (model(x, sigma, c, r) for c, r in (negative, cond2, cond1))
        return n + cfg2 * (m - n) + cfg1 * (p - m)
    return run


def _euler(run, seed, size, steps=2):
    """ComfyUI's euler from its noise for the seed: x += model(x, sigma) (sigma_next - sigma)."""
    w, h = size
    x = torch.randn((1, 16, h // 8, w // 8), generator=torch.Generator().manual_seed(seed))
    levels = _levels(steps)
    with torch.no_grad():
        for s, nxt in zip(levels, levels[1:]):
            x = x + run(x, torch.tensor([s], dtype=torch.float32)) * (nxt - s)
    return x


def test_omnigen2_transformer_file_matches_comfyuis(omnigen2):
    """omnigen2_fp16.safetensors is told OmniGen2's, loads with load.diffusion_model and predicts ComfyUI's model's
    output on the same weights, from a prompt alone and reading two reference latents of two sizes."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from boogu_reference import forward_pairs
    from tiny_omnigen2 import MODEL, transformer
    assert detect_file(omnigen2 / "models" / "diffusion_models" / MODEL).family == "omnigen2"
    model = load_diffusion_model(ModelManager(), MODEL, "default", "cpu").pipe.transformer
    assert not list(model.double_stream_layers) and len(model.layers) == 2
    for want, got in forward_pairs(model, transformer(), 128):
        assert _max_abs(want, got) < 5e-5     # fp32: 1 - 0.6 is not 0.4 exactly, and time is embedded x 1000


def test_omnigen2_prompt_is_read_as_comfyui_reads_it(omnigen2):
    """load.text_encoder type omnigen2 on qwen_2.5_vl_fp16.safetensors reads a prompt (and the empty one) as
    ComfyUI's Omnigen2 text encoder does: Qwen2.5-VL's last normed layer over every token of its chat turn."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from tiny_omnigen2 import TE_NAME
    handle = load_text_encoder(ModelManager(), f"{TE_NAME}.safetensors", "", "omnigen2", "cpu")
    prompts = ["a cat wearing a crown", ""]
    with torch.no_grad():
        states, mask, _ = get_adapter("omnigen2").encode_text(handle.pipe, prompts, "cpu")
    for i, prompt in enumerate(prompts):
        want = _states(omnigen2, prompt)[0]
        got = states[i][mask[i].bool()].float()
        assert got.shape == want.shape
        assert _max_abs(want, got) < 1e-4


def test_comfyui_omnigen2_t2i_template_imports_and_runs(omnigen2, tmp_path, monkeypatch):
    """ComfyUI's OmniGen2 text-to-image template (a subgraph: UNETLoader omnigen2_fp16, CLIPLoader qwen_2.5_vl_fp16
    type omnigen2, VAELoader ae, two CLIPTextEncode, DualCFGGuider 5 / 2 regular with the negative as its middle
    prompt, SamplerCustomAdvanced euler on BasicScheduler simple). Every node maps and it runs on the tiny files under
    the template's names (64x48, 2 steps), saves a picture, and its latent is ComfyUI's for its prompts and seed."""
    from comfy_layouts import imported_template, sampled_latent
    from tiny_omnigen2 import transformer
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(omnigen2 / "models", (), TEMPLATES / "image_omnigen2_t2i.json", (W, H), (20, 2))
    assert "type: omnigen2" in yaml and "type: guide.dual_cfg" in yaml and "middle_cfg: 2" in yaml, yaml
    got = sampled_latent(tmp_path / "t2i.kino.yaml", yaml, "sampler_custom_advanced")
    assert list((tmp_path / "out").rglob("*.png"))
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    text = {n["id"]: n["widgets_values"][0] for n in sub if n["type"] == "CLIPTextEncode"}
    seed = next(n for n in sub if n["type"] == "RandomNoise")["widgets_values"][0]
    positive, negative = (_states(omnigen2, text[6]), None), (_states(omnigen2, text[7]), None)
    run = _dual_cfg(transformer(), positive, negative, negative, 5.0, 2.0)
    assert _max_abs(_euler(run, seed, (W, H)), got) < 1e-4


def _picture_latent(root, picture):
    """VAEEncode of a picture through diffusers' FLUX.1 VAE, in the model's units (ComfyUI's Flux latent format)."""
    from diffusers import AutoencoderKL
    x = torch.from_numpy(picture).permute(2, 0, 1)[None].float() / 255
    vae = AutoencoderKL.from_pretrained(str(root / "reference" / "vae")).eval()
    with torch.no_grad():
        return (vae.encode(x * 2 - 1).latent_dist.mode() - 0.1159) * 0.3611


@pytest.mark.parametrize("second", [False, True], ids=["one picture", "second picture enabled"])
def test_comfyui_omnigen2_edit_template_imports_and_runs(omnigen2, tmp_path, monkeypatch, second):
    """ComfyUI's OmniGen2 edit template: the loaded picture resized to a megapixel (here to its own 128x96), its
    latent given by ReferenceLatent to the instruction and to the negative, the latent the picture's size,
    DualCFGGuider 5 / 2 regular (instruction with the picture, negative with the picture, negative alone); the second
    picture's nodes bypassed as published, or switched on as its note says (Ctrl + B): a second picture's latent
    after the first on both. Every node maps, it runs on the tiny files in 2 steps and saves a picture, and its
    latent is ComfyUI's for its prompts, pictures and seed; without the pictures it differs."""
    import json
    from PIL import Image
    from comfy_layouts import imported_template, sampled_latent
    from tiny_omnigen2 import transformer
    rng = torch.Generator().manual_seed(5)
    pictures = [(torch.rand(96, 128, 3, generator=rng) * 255).to(torch.uint8).numpy() for _ in range(2)]
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(tmp_path / f"picture{i}.png")
    data = json.loads((TEMPLATES / "image_omnigen2_image_edit.json").read_text("utf-8"))
    for n in data["nodes"]:
        n["mode"] = 0 if second else n["mode"]
        if n["id"] == 33:         # the second LoadImage (published with the first's file name)
            n["widgets_values"][0] = "picture1.png"
    (tmp_path / "template.json").write_text(json.dumps(data), "utf-8")
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(omnigen2 / "models", (), tmp_path / "template.json", (W, H), (20, 2))
    assert yaml.count("type: condition.reference") == (4 if second else 2) and "middle_cfg: 2" in yaml, yaml
    yaml = re.sub(r"path: image_omnigen2\S+\.png", f"path: {tmp_path / 'picture0.png'}", yaml)
    yaml = yaml.replace("megapixels: 1\n", f"megapixels: {128 * 96 / 2 ** 20}\n")
    got = sampled_latent(tmp_path / "edit.kino.yaml", yaml, "sampler_custom_advanced")
    assert got.shape[-2:] == (12, 16) and list((tmp_path / "out").rglob("*.png"))
    nodes = {n["id"]: n for n in data["nodes"]}
    seed = nodes[21]["widgets_values"][0]
    refs = [_picture_latent(omnigen2, p) for p in pictures[:1 + second]]
    instruction, negative = (_states(omnigen2, nodes[i]["widgets_values"][0]) for i in (6, 7))
    model = transformer()
    want = _euler(_dual_cfg(model, (instruction, refs), (negative, refs), (negative, None), 5.0, 2.0), seed, (128, 96))
    assert _max_abs(want, got) < 1e-4
    unseen = _euler(_dual_cfg(model, (instruction, None), (negative, None), (negative, None), 5.0, 2.0), seed, (128, 96))
    assert _max_abs(unseen, got) > 1e-2


def test_a_prompt_read_for_another_model_is_refused_by_name(omnigen2, tmp_path, monkeypatch):
    """The same Qwen2.5-VL file loaded with Qwen-Image's type (qwen_image, its 7B's turn and layers) reads prompts
    OmniGen2 was not trained on: the sample says which type to load it with instead of sampling noise."""
    from graph_engine.api import Session, load_workflow
    from comfy_layouts import imported_template
    monkeypatch.chdir(tmp_path)
    _, yaml = imported_template(omnigen2 / "models", (), TEMPLATES / "image_omnigen2_t2i.json", (W, H), (20, 1))
    (tmp_path / "t2i.kino.yaml").write_text(yaml.replace("type: omnigen2", "type: qwen_image"))
    out = Session(device="cpu").run(load_workflow(tmp_path / "t2i.kino.yaml", check=False), use_cache=False)
    assert not out.ok and "load.text_encoder with type omnigen2" in "".join(out.failed.values()), out.failed


@pytest.mark.parametrize("family", ["omnigen2", "boogu"])
def test_more_references_than_the_transformer_tells_apart_are_named(family):
    """OmniGen2's and Boogu's transformers tell a prompt's reference pictures apart by image_index_embedding's rows
    (5 in the released files, ComfyUI's omnigen2.py indexes them the same way): six ReferenceLatents chained on one
    prompt stopped inside the model in an IndexError traceback at the first step ('index 5 is out of bounds')."""
    from types import SimpleNamespace

    import torch
    from graph_engine import NodeError
    from nodes.generate.adapters import get_adapter
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.reference import add_reference
    cond = Conditioning(family, torch.zeros(1, 3, 16), torch.ones(1, 3, dtype=torch.bool))
    for _ in range(6):
        cond = add_reference(cond, Latent(torch.zeros(1, 16, 1, 4, 4), family, 1, 24, 32, 32))
    transformer = SimpleNamespace(config=SimpleNamespace(instruction_feat_dim=16),
                                  image_index_embedding=torch.zeros(5, 48))
    handle = SimpleNamespace(pipe=SimpleNamespace(transformer=transformer))
    adapter = get_adapter(family)
    with pytest.raises(NodeError, match=r"6 reference pictures.* at most 5"):
        adapter.conditioning_inputs(handle, [cond], [0], 1, "cpu", torch.float32)
    five = Conditioning(family, cond.embeds, cond.mask, extra={k: v for k, v in cond.extra.items()
                                                                 if not k.endswith("5")})
    assert len(adapter.conditioning_inputs(handle, [five], [0], 1, "cpu", torch.float32)["references"][0]) == 5
