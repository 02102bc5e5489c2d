"""Mage-Flow: the files a Mage-Flow user holds (ComfyUI's split files: the transformer bf16 or int8_convrot, Qwen3-VL-4B
loaded with CLIPLoader type mage, the Mage VAE) are recognised, load, and ComfyUI's four image_mage_flow_* templates
(text to image and edit, base and Turbo) sample what ComfyUI's own code samples for the same weights, picture,
prompts and seed. The references share no code with Kinograph's: ComfyUI's transformer, VAE, prompt templates and
euler / simple sampling written out in tests/mage_flow_reference.py, transformers' Qwen3-VL read for its last
(normed) layer, and ComfyUI's Qwen-VL picture reading written out here."""
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48           # the tiny result of text to image (the templates' 1024 x 1024)
EDIT = (112, 96)        # the edits' picture (and so their result): the smallest the megapixel scale takes is 0.01


@pytest.fixture(scope="module")
def mage(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_mage_flow import build_mage_flow
    yield from models_dir(tmp_path_factory, build_mage_flow, "mage_flow")


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def _file(root, name, folder="diffusion_models", prefix="model.diffusion_model."):
    from safetensors.torch import load_file
    return {k[len(prefix):] if k.startswith(prefix) else k: v.float()
            for k, v in load_file(str(root / "models" / folder / name)).items()}


def test_mage_flow_files_are_told_and_match_comfyui(mage):
    """The bf16 and int8_convrot transformers and the VAE are told Mage-Flow's (not a Qwen-Image with 128 channels),
    load with load.diffusion_model / load.vae, and give what ComfyUI's modules give on the same tensors: the
    velocity with and without references of other sizes (odd sides too, where Mage's centring differs from
    Qwen-Image's), the VAE's latent mean and its decoded picture."""
    import mage_flow_reference as ref
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_vae
    from tiny_mage_flow import BF16, INT8, VAE
    for name, role in ((BF16, "diffusion_model"), (INT8, "diffusion_model")):
        det = detect_file(mage / "models" / "diffusion_models" / name)
        assert (det.family, det.role) == ("mage_flow", role)
    det = detect_file(mage / "models" / "vae" / VAE)
    assert (det.family, det.role) == ("mage_flow", "vae")
    mm = ModelManager()
    models = {n: load_diffusion_model(mm, n, "default", "cpu").pipe.transformer for n in (BF16, INT8)}
    sd = _file(mage, BF16)
    torch.manual_seed(0)
    x, sigma, text = torch.randn(1, 128, 3, 5), torch.tensor([0.737]), torch.randn(1, 7, 64)
    refs = [torch.randn(1, 128, 5, 3), torch.randn(1, 128, 3, 5)]
    with torch.no_grad():
        for r in ([], refs):
            want = ref.transformer(sd, x, sigma, text, r)
            assert _err(want, models[BF16](x, sigma, text, r)) < 1e-5
            assert 0 < _err(want, models[INT8](x, sigma, text, r)) < 3e-2
        vae = load_vae(mm, VAE, "cpu").pipe.vae
        vsd = _file(mage, VAE, "vae", "")
        pictures = torch.rand(1, 3, 48, 80) * 2 - 1
        want = ref.vae_encode(vsd, pictures)
        assert want.shape == (1, 128, 3, 5) and _err(want, vae.encode(pictures)) < 1e-5
        assert _err(ref.vae_decode(vsd, want), vae.decode(want)) < 1e-5


def _states(root, prompt, pictures=()):
    """TextEncodeMageFlowEdit's conditioning for one prompt: the prompt in Mage's template (the edit's with "Image N:
    " and each picture's vision tokens before it), each picture read as ComfyUI's process_qwen2vl_images reads it for
    Qwen3-VL (down to a long edge of 384 where longer, sides rounded to multiples of 32, up to 3136 pixels where
    fewer, bilinear, to -1..1, 16-pixel patches in its order), transformers' Qwen3-VL's last layer (normed), the tokens up to the user turn's text
    dropped: ComfyUI counts to the second <|im_start|> and its "user" and line end (ids 872 and 198 in Qwen's own
    tokenizer; the tiny byte tokenizer spells them in 5)."""
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration
    import mage_flow_reference as ref
    from tiny_mage_flow import TE_NAME
    tok = AutoTokenizer.from_pretrained(str(root / "models" / "text_encoders" / TE_NAME))
    te = Qwen3VLForConditionalGeneration.from_pretrained(str(root / "reference" / "text_encoder")).eval()
    pixel_values, grids, named = [], [], ""
    for j, picture in enumerate(pictures):
        x = picture.permute(2, 0, 1)[None]
        h, w = x.shape[2:]
        if max(h, w) > 384:
            s = 384 / max(h, w)
            x = torch.nn.functional.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bicubic")
            h, w = x.shape[2:]
        hb, wb = round(h / 32) * 32, round(w / 32) * 32
        if hb * wb < 3136:          # process_qwen2vl_images' min_pixels: a small picture is read larger
            beta = math.sqrt(3136 / (h * w))
            hb, wb = math.ceil(h * beta / 32) * 32, math.ceil(w * beta / 32) * 32
        x = torch.nn.functional.interpolate(x, size=(hb, wb), mode="bilinear", align_corners=False)[0]
        x = (x - 0.5) / 0.5
        gh, gw = hb // 16, wb // 16
        patches = x[None].repeat(2, 1, 1, 1).reshape(1, 2, 3, gh // 2, 2, 16, gw // 2, 2, 16)
        pixel_values.append(patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(gh * gw, -1))
        grids.append([1, gh, gw])
        named += f"Image {j + 1}: <|vision_start|>" + "<|image_pad|>" * (gh * gw // 4) + "<|vision_end|>"
    text = (ref.EDIT if pictures else ref.T2I).format(named + prompt)
    ids = tok(text, return_tensors="pt").input_ids
    extra = {}
    if pictures:
        extra = dict(pixel_values=torch.cat(pixel_values), image_grid_thw=torch.tensor(grids),
                     mm_token_type_ids=(ids == tok.convert_tokens_to_ids("<|image_pad|>")).long())
    with torch.no_grad():
        states = te.model(input_ids=ids, **extra).last_hidden_state
    row = ids[0].tolist()
    second = [i for i, t in enumerate(row) if t == tok.convert_tokens_to_ids("<|im_start|>")][1]
    header = tok("user\n").input_ids
    end = second + 1 + len(header) if row[second + 1:second + 1 + len(header)] == header else second
    return states[:, end:]


TEMPLATE_RUNS = [   # template, the transformer it asks for, its published steps, cfg, whether it reads a picture
    ("image_mage_flow_turbo_t2i_int8.json", "mage_flow_turbo_int8_convrot.safetensors", 4, 1.0, False),
    ("image_mage_flow_t2i_int8.json", "mage_flow_int8_convrot.safetensors", 30, 5.0, False),
    ("image_mage_flow_edit_turbo_int8.json", "mage_flow_edit_turbo_int8_convrot.safetensors", 4, 1.0, True),
    ("image_mage_flow_edit_int8.json", "mage_flow_edit_int8_convrot.safetensors", 30, 5.0, True),
]


@pytest.mark.parametrize("template,model,steps,cfg,edit", TEMPLATE_RUNS)
def test_comfyui_mage_flow_templates_import_and_run(mage, tmp_path, monkeypatch, template, model, steps, cfg, edit):
    """Each template (a subgraph: UNETLoader mage_flow_*_int8_convrot, CLIPLoader qwen3vl_4b_bf16 type mage, VAELoader
    mage_flow_vae_bf16, TextEncodeMageFlowEdit giving positive, negative and latent, KSampler euler / simple; the
    edits scale the picture to a megapixel at a 16 step and make a result of its size) maps every node and runs on
    the tiny files under its names, 2 steps, the result 64 x 48 (the edits': their 112 x 96 picture's size, which the
    megapixel scale keeps), and saves a picture; the bf16 file's latent is ComfyUI's on the same weights, the int8_convrot
    one's within int8 error."""
    from PIL import Image
    import mage_flow_reference as ref
    from comfy_layouts import imported_template, sampled_latent
    from tiny_mage_flow import BF16, INT8, VAE
    models = mage / "models"
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(models, ((f"diffusion_models/{model}", f"diffusion_models/{INT8}"),),
                                   TEMPLATES / template, (W, H), (steps, 2))
    assert "type: encode.mage_flow_edit" in yaml and "type: mage" in yaml and "scheduler: simple" in yaml, yaml
    picture, (w, h) = None, EDIT if edit else (W, H)
    if edit:
        rng = torch.Generator().manual_seed(5)
        picture = (torch.rand(h, w, 3, generator=rng) * 255).to(torch.uint8)
        Image.fromarray(picture.numpy()).save(tmp_path / "picture.png")
        yaml = re.sub(r"path: \S+\.png", f"path: {tmp_path / 'picture.png'}", yaml)
        yaml = yaml.replace("megapixels: 1\n", f"megapixels: {w * h / 2 ** 20}\n")
    got = sampled_latent(tmp_path / "mage.kino.yaml", yaml)
    assert list((tmp_path / "out").rglob("*.png")) and got.shape[-2:] == (h // 16, w // 16)
    # the prompt and seed: the subgraph's own widgets where the template exposes them, else its nodes'
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    outer = next(n for n in data["nodes"] if n["type"] == data["definitions"]["subgraphs"][0]["id"])
    prompt, seed = _params(yaml, "encode.mage_flow_edit")["text"], _params(yaml, "generate.sample")["seed"]
    shown = outer.get("widgets_values") or []
    assert prompt in shown or prompt == next(n for n in sub if n["type"] == "TextEncodeMageFlowEdit")["widgets_values"][0]
    assert seed in shown or seed == next(n for n in sub if n["type"] == "KSampler")["widgets_values"][0]
    pictures = [picture.float() / 255] if edit else []
    positive, negative = _states(mage, prompt, pictures), _states(mage, " ", pictures)
    sd, vsd = _file(mage, BF16), _file(mage, VAE, "vae", "")
    refs = [ref.vae_encode(vsd, pictures[0].permute(2, 0, 1)[None] * 2 - 1)] if edit else []

    def velocity(x, s, pos):
        return ref.transformer(sd, x, torch.tensor([s]), positive if pos else negative, refs)
    with torch.no_grad():
        want = ref.sample(velocity, (1, 128, h // 16, w // 16), seed, 2, cfg)
    bf16 = sampled_latent(tmp_path / "mage.kino.yaml", yaml.replace(model, BF16))
    assert _err(want, bf16) < 1e-4
    assert 0 < _err(want, got) < 5e-2


def _params(yaml: str, kind: str) -> dict:
    """The params of the imported workflow's node of this type."""
    import yaml as pyyaml
    return next(n["params"] for n in pyyaml.safe_load(yaml)["nodes"].values() if n["type"] == kind)


def test_encode_mage_flow_edit_sizes_the_result_as_comfyui(mage):
    """The result's size: width / height as given, each 0 from the first picture (1024 without one), floored to the
    16 grid (ComfyUI's node, written out: 0 on one axis keeps the other's value)."""
    from nodes.generate.mage_flow_edit import result_size
    pic = np.zeros((100, 70, 3), np.uint8)
    assert result_size(0, 0, []) == (1024, 1024)
    assert result_size(0, 0, [pic]) == (64, 96)
    assert result_size(200, 0, [pic]) == (192, 96)
    assert result_size(0, 37, []) == (1024, 32)
    assert result_size(5, 5, []) == (16, 16)


def test_encode_mage_flow_edit_names_what_it_needs(mage):
    """Qwen3-VL loaded for another model (type fibo2) or another family's VAE is refused by encode.mage_flow_edit with
    the file and type to use; `kinograph info`'s detection names the files Mage-Flow's."""
    from types import SimpleNamespace
    from graph_engine import NodeError
    from nodes.generate.mage_flow_edit import encode_mage_flow_edit
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from tiny_mage_flow import TE_NAME
    mm = ModelManager()
    picture = np.zeros((32, 32, 3), np.uint8)
    other = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "fibo2", "cpu")
    with pytest.raises(NodeError, match="with type mage"):
        encode_mage_flow_edit(other, None, "make it blue", "", [picture])
    te = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "mage", "cpu")
    with pytest.raises(NodeError, match="mage_flow_vae_bf16"):
        encode_mage_flow_edit(te, SimpleNamespace(family="flux"), "make it blue", "", [picture])


def test_kinograph_info_names_the_mage_flow_files(mage, capsys):
    """`kinograph info` lists the transformer (its int8_convrot precision) and the VAE as Mage-Flow's, loadable."""
    from app.cli import main
    from tiny_mage_flow import INT8, VAE
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    transformer = next(line.split() for line in lines if line.rstrip().endswith(INT8))
    vae = next(line.split() for line in lines if line.rstrip().endswith(VAE))
    assert transformer[:5] == ["mage_flow", "-", "diffusion_model", "int8_convrot", "yes"], transformer
    assert vae[:5] == ["mage_flow", "-", "vae", "bf16", "yes"], vae


def _edit_template_with(names) -> dict:
    """The edit template with TextEncodeMageFlowEdit's autogrow inputs `names` (images.image_N) each linked to the
    picture its image_1 reads, as a user adds pictures in ComfyUI."""
    import json
    data = json.loads((TEMPLATES / "image_mage_flow_edit_int8.json").read_text("utf-8"))
    sub = data["definitions"]["subgraphs"][0]
    node = next(n for n in sub["nodes"] if n["type"] == "TextEncodeMageFlowEdit")
    first = next(i for i in node["inputs"] if i["name"] == "images.image_1")["link"]
    origin = next(link for link in sub["links"] if link["id"] == first)
    for k, name in enumerate(names):
        slot = next((j for j, i in enumerate(node["inputs"]) if i["name"] == name), None)
        if slot is None:
            node["inputs"].append({"name": name, "localized_name": name, "type": "IMAGE", "shape": 7})
            slot = len(node["inputs"]) - 1
        node["inputs"][slot]["link"] = 900 + k
        sub["links"].append(dict(origin, id=900 + k, target_slot=slot))
    return data


def test_every_picture_comfyui_reads_reaches_encode_mage_flow_edit():
    """ComfyUI's TextEncodeMageFlowEdit grows to 16 pictures (image_1 .. image_16) and reads them all: each linked one
    reaches encode.mage_flow_edit, none left behind while the import says the node is exact."""
    from app.comfyui import import_data
    names = [f"images.image_{i}" for i in range(4, 17)]
    res = import_data(_edit_template_with(names))
    enc, = [n for n in res.graph.nodes.values() if n.type == "encode.mage_flow_edit"]
    linked = res.graph.inputs[enc.id]
    assert {f"image{i}" for i in range(4, 17)} <= set(linked), sorted(linked)
    entry, = [e for e in res.report.entries.values() if e.class_type == "TextEncodeMageFlowEdit"]
    assert entry.status != "unmapped"


def test_encode_mage_flow_edit_reads_sixteen_pictures_as_comfyui(mage):
    """Five pictures of other sizes (one over 384 px, which Qwen3-VL sees scaled down) are all seen by Qwen3-VL as
    "Image 1: " .. "Image 5: " and ride on the prompt at the result's size (ComfyUI's node takes 16); 17 are
    refused by name."""
    from graph_engine import NodeError
    from nodes.generate.mage_flow_edit import encode_mage_flow_edit
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.reference import references
    from nodes.generate.split import load_text_encoder, load_vae
    from tiny_mage_flow import TE_NAME, VAE
    import mage_flow_reference as ref
    mm = ModelManager()
    te = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "mage", "cpu")
    vae = load_vae(mm, VAE, "cpu")
    rng = np.random.default_rng(4)
    sizes = ((400, 180), (40, 56), (64, 32), (48, 48), (33, 70))
    pictures = [(rng.random((h, w, 3)) * 255).astype(np.uint8) for h, w in sizes]
    positive, _, latent = encode_mage_flow_edit(te, vae, "make it blue", "", pictures)
    assert latent.samples.shape[-2:] == (25, 11)
    want = _states(mage, "make it blue", [torch.from_numpy(p).float() / 255 for p in pictures])
    assert positive.embeds.shape == want.shape and _err(want, positive.embeds) < 1e-3
    vsd = _file(mage, VAE, "vae", "")
    refs = references(positive)
    assert len(refs) == 5
    for p, r in zip(pictures, refs):
        x = torch.from_numpy(p).float().permute(2, 0, 1)[None] / 255
        if x.shape[-2:] != (400, 176):
            x = torch.nn.functional.interpolate(x, size=(400, 176), mode="bicubic")
        assert _err(ref.vae_encode(vsd, x * 2 - 1), r[:, :, 0]) < 1e-4
    with pytest.raises(NodeError, match="at most 16 pictures"):
        encode_mage_flow_edit(te, None, "make it blue", "", [pictures[1]] * 17)
