"""FLUX.3 klein's layout prompt from boxes drawn in ComfyUI's box editor (CreateBoundingBoxes, Flux3LayoutPrompt),
against the table diffusers' Flux3 modular pipeline appends to its caption (boxes_to_canvas, reconcile_boxes: Black
Forest Labs' flux3/bbox.py), and several pictures to edit in one node (ReferenceMultiLatent) against
Flux2Pipeline's reference images on tiny random weights."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# the dress box of ComfyUI's image_flux3_klein_image_edit.json, a box crossing the canvas' right edge, a text box
CANVAS = (896, 1152)
EDITOR = [{"x": 128, "y": 192, "width": 736, "height": 896,
           "metadata": {"type": "obj", "text": "", "desc": "dress", "palette": []}},
          {"x": 700, "y": 3, "width": 301, "height": 77, "metadata": {"type": "obj", "desc": "a red balloon"}},
          {"x": 40, "y": 1000, "width": 500, "height": 100,
           "metadata": {"type": "text", "text": "SALE", "desc": "bold white sans-serif headline", "palette": ["#fff"]}}]
PROMPT = "In <ref_image_0>, change the dress color <obj_1> to red"


def test_layout_prompt_is_diffusers_flux3_caption():
    """The prompt, one space, then the boxes as Flux3's pipeline writes its final caption: obj_N rows of
    [y_min, x_min, y_max, x_max] on the 0-1000 grid (the user's 0-1 boxes rounded, clamped at the borders) and
    the description, in the editor's order."""
    from diffusers.modular_pipelines.flux3.prompt_upsampler import boxes_to_canvas, reconcile_boxes
    from nodes.common.boxes import flux3_layout_prompt, from_editor
    w, h = CANVAS
    user = [{"id": f"obj_{i + 1}", "desc": r["metadata"]["desc"],
             "bbox": [r["y"] / h, r["x"] / w, (r["y"] + r["height"]) / h, (r["x"] + r["width"]) / w]}
            for i, r in enumerate(EDITOR)]
    want = reconcile_boxes(PROMPT, boxes_to_canvas(user))
    got = flux3_layout_prompt(PROMPT, from_editor(w, h, EDITOR))
    assert got == want
    assert json.loads(got[len(PROMPT) + 1:])[1]["bbox"] == [3, 781, 69, 1000]    # 1001 of 896 wide: clamped
    assert flux3_layout_prompt(PROMPT, from_editor(w, h, [])) == PROMPT == flux3_layout_prompt(PROMPT, None)


def test_a_run_shows_the_layout_prompt_it_made(tmp_path):
    """A headless run of boxes.create -> text.flux3_layout showed nothing of the prompt (no node saves text, and
    Kinograph does not sample FLUX.3 klein): its log line is the caption diffusers' Flux3 pipeline writes."""
    from diffusers.modular_pipelines.flux3.prompt_upsampler import boxes_to_canvas, reconcile_boxes
    from graph_engine.api import Session, load_workflow
    w, h = CANVAS
    wf = load_workflow(text="kinograph: 1\nnodes:\n"
                       f"  boxes: {{type: boxes.create, params: {{width: {w}, height: {h}, boxes: '{json.dumps(EDITOR[:1])}'}}}}\n"
                       f"  layout: {{type: text.flux3_layout, inputs: {{boxes: boxes.boxes}}, params: {{prompt: '{PROMPT}'}}}}\n")
    logs = []
    assert Session(device="cpu").run(wf, use_cache=False, on_event=lambda e: logs.append(e)).ok
    r = EDITOR[0]
    user = [{"id": "obj_1", "desc": "dress", "bbox": [r["y"] / h, r["x"] / w, (r["y"] + r["height"]) / h,
                                                      (r["x"] + r["width"]) / w]}]
    said = [e["message"] for e in logs if e.get("event") == "log" and e.get("node") == "layout"]
    assert said == ["layout prompt: " + reconcile_boxes(PROMPT, boxes_to_canvas(user))]


def test_boxes_keep_through_the_disk_cache(tmp_path):
    """BOXES go to disk and back whole (a cached run hands the same boxes on)."""
    from graph_engine.cache import _decode, _encode, trust_package
    from nodes.common.boxes import from_editor
    trust_package("nodes")                  # as the registry does for the package it loads nodes from
    boxes = from_editor(*CANVAS, EDITOR)
    assert _decode(_encode(boxes, tmp_path, "b"), tmp_path) == boxes


def test_bad_boxes_are_named():
    from nodes.common.boxes import from_editor
    with pytest.raises(NodeError, match="box 2 must give x, y, width and height"):
        from_editor(*CANVAS, [EDITOR[0], {"x": 1, "y": 2}])
    with pytest.raises(NodeError, match="box 1 is 0 x 5 pixels"):
        from_editor(*CANVAS, [{"x": 1, "y": 2, "width": 0, "height": 5}])


def test_hostile_boxes_are_named():
    """Python's JSON reads NaN, Infinity and 400-digit numbers, which a box's sides took as they were: a NaN width
    passed the 'wider than 0' check and was drawn, a 400-digit x was an OverflowError traceback; metadata that is no
    object, or a palette that is no list, were AttributeError / TypeError tracebacks; true was a pixel."""
    from nodes.common.boxes import from_editor
    box = {"x": 1, "y": 2, "width": 3, "height": 4}
    for side, value in (("width", float("nan")), ("x", float("inf")), ("y", -float("inf")), ("x", 10 ** 400),
                        ("height", True), ("x", "3")):
        with pytest.raises(NodeError, match=f"box 1 must give x, y, width and height as numbers of pixels.*{side}"):
            from_editor(*CANVAS, [{**box, side: value}])
    for meta, what in (([1, 2], "metadata"), ({"palette": 7}, "palette"), ({"palette": "#fff"}, "palette")):
        with pytest.raises(NodeError, match=f"box 2's {what} must be"):
            from_editor(*CANVAS, [box, {**box, "metadata": meta}])
    # 400,000 boxes (a 28 MB list, under a workflow file's 64 MB) took 6 s to read, 2.6 s a frame to draw, and wrote
    # a 25 MB layout prompt into the run's log, of which FLUX.3 reads its first 8,192 tokens
    with pytest.raises(NodeError, match="1,001 boxes: at most 1,000"):
        from_editor(*CANVAS, [box] * 1001)


def test_comfyui_layout_and_references_import_onto_flux2_klein():
    """The FLUX.3 klein templates' three nodes were unmapped. In a FLUX.2 [klein] edit they now import and validate:
    the editor's boxes and canvas, the layout prompt feeding the text encoder, both prompts given the picture
    (resized to 1 megapixel) and the latent to sample taken from it."""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    nodes = [(1, "CLIPLoader", ["qwen_3_4b.safetensors", "flux2", "default"]),
             (2, "VAELoader", ["flux2-vae.safetensors"]), (3, "LoadImage", ["portrait.png", "image"]),
             (4, "CreateBoundingBoxes", [*CANVAS, EDITOR[:1], []]), (5, "Flux3LayoutPrompt", [PROMPT]),
             (6, "CLIPTextEncode", [""]), (7, "CLIPTextEncode", [""]), (8, "ReferenceMultiLatent", ["resize", 1]),
             (9, "UNETLoader", ["flux-2-klein-4b.safetensors", "default"]),
             (10, "KSampler", [3, "fixed", 4, 1, "euler", "simple", 1]), (11, "VAEDecode", None),
             (12, "SaveImage", ["klein_edit"])]
    links = [(1, 4, 2, 5, "element", "ARRAY"), (2, 5, 0, 6, "text", "STRING"), (3, 1, 0, 6, "clip", "CLIP"),
             (4, 1, 0, 7, "clip", "CLIP"), (5, 6, 0, 8, "positive", "CONDITIONING"),
             (6, 7, 0, 8, "negative", "CONDITIONING"), (7, 2, 0, 8, "vae", "VAE"),
             (8, 3, 0, 8, "images.image0", "IMAGE"), (9, 9, 0, 10, "model", "MODEL"),
             (10, 8, 0, 10, "positive", "CONDITIONING"), (11, 8, 1, 10, "negative", "CONDITIONING"),
             (12, 8, 2, 10, "latent_image", "LATENT"), (13, 10, 0, 11, "samples", "LATENT"),
             (14, 2, 0, 11, "vae", "VAE"), (15, 11, 0, 12, "images", "IMAGE")]
    wf = {"nodes": [{"id": i, "type": t, "widgets_values": v, "mode": 0,
                     "inputs": [{"name": n, "link": k} for k, _, _, to, n, _ in links if to == i],
                     "outputs": [{"name": "out", "links": [k for k, src, slot, *_ in links if src == i and slot == s]}
                                 for s in range(3)]} for i, t, v in nodes],
          "links": [[k, src, slot, to, _slot(links, to, name), typ] for k, src, slot, to, name, typ in links]}
    res = import_data(wf)
    statuses = {e.class_type: e.status for e in res.report.entries.values()}
    assert "unmapped" not in statuses.values(), statuses
    by_type = {n.type: n for n in res.graph.nodes.values()}
    assert json.loads(by_type["boxes.create"].params.pop("boxes")) == EDITOR[:1]
    assert by_type["boxes.create"].params == {"width": 896, "height": 1152}
    assert by_type["text.flux3_layout"].params == {"prompt": PROMPT}
    assert by_type["condition.references"].params == {"resolution": "resize", "megapixels": 1}
    load_workflow(text=res.yaml)            # validates: raises on any problem


def _slot(links, to, name):
    """The input slot a link enters: its place among the node's linked inputs, as the node lists them above."""
    return [n for _, _, _, t, n, _ in links if t == to].index(name)


@pytest.fixture(scope="module")
def flux2(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_flux2 import build_flux2
    yield from models_dir(tmp_path_factory, build_flux2, "flux2")


def _picture(w, h, seed):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
    return np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)


def test_several_references_match_flux2_pipeline(flux2):
    """Two pictures of two sizes through one condition.references (ComfyUI's ReferenceMultiLatent): sampling the
    latent it gives (the first picture's size, all zeros) with the prompt it gives is Flux2Pipeline's edit of the
    same two images; without a negative, the negative given back carries them too. Resized, the latent takes
    ComfyUI's size of about `megapixels` (sqrt(mp * 2^20 / (w * h)), rounded), cut to the model's grid (16 pixels
    for FLUX.2's VAE, 4 for the tiny one)."""
    from diffusers import Flux2Pipeline
    from PIL import Image
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.reference import add_references, references
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    pictures = (_picture(64, 80, 0), _picture(80, 64, 1))     # Flux2Pipeline takes sides of 64 or more
    ref = Flux2Pipeline.from_pretrained(str(flux2 / "FLUX.2-dev"), local_files_only=True)
    packed = ref(prompt="a cat", image=[Image.fromarray(p) for p in pictures], width=64, height=80,
                 num_inference_steps=2, guidance_scale=4.0, generator=torch.Generator().manual_seed(7),
                 output_type="latent").images
    side = 2 * ref.vae_scale_factor
    want = packed.permute(0, 2, 1).reshape(1, 128, 80 // side, 64 // side)
    mm = ModelManager()
    model = load_diffusion_model(mm, "flux2_dev_tiny_fp8mixed.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "mistral_3_small_flux2_tiny_bf16.safetensors", "", "flux2", "cpu")
    vae = load_vae(mm, "flux2-vae.safetensors", "cpu")
    clips = [Clip.from_array(p[None]) for p in pictures]
    pos, neg, latent = add_references(vae, encode_prompt(te, "a cat"), None, clips)
    assert (latent.width, latent.height) == (64, 80) and not latent.samples.any()
    assert len(references(neg)) == len(references(pos)) == 2
    got = run_sampling(model, pos, None, latent, steps=2, cfg=4.0, sampler="euler", seed=7).samples[:, :, 0]
    assert float((want - got).abs().max() / want.abs().max()) < 1e-4
    _, _, resized = add_references(vae, pos, neg, clips[1:], megapixels=0.01)
    scale = (0.01 * 1024 * 1024 / (80 * 64)) ** 0.5
    assert (resized.width, resized.height) == (round(80 * scale) // side * side, round(64 * scale) // side * side)
    with pytest.raises(NodeError, match="needs at least one picture"):
        add_references(vae, pos, None, [])


@pytest.mark.parametrize("resolution, want", [
    ({"resolution": "resize", "resolution.megapixels": 0.25}, ({"resolution": "resize", "megapixels": 0.25}, "approx")),
    ({"resolution": "keep resolution"}, ({"resolution": "keep"}, "exact"))])
def test_reference_multi_latent_from_an_api_prompt(resolution, want):
    """An API prompt names megapixels after the resolution option it belongs to (resolution.megapixels): it was
    dropped, the pictures resized to 1 megapixel; and keeping the resolution resamples nothing, so is exact."""
    from app.comfyui import import_data
    api = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "flux2-vae.safetensors"}},
           "2": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_3_4b.safetensors", "type": "flux2"}},
           "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": "a cat"}},
           "5": {"class_type": "ReferenceMultiLatent",
                 "inputs": {"positive": ["4", 0], "vae": ["1", 0], "images.image0": ["2", 0], **resolution}},
           "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 2]}}}
    res = import_data(api)
    node, = [n for n in res.graph.nodes.values() if n.type == "condition.references"]
    entry, = [e for e in res.report.entries.values() if e.class_type == "ReferenceMultiLatent"]
    assert (node.params, entry.status) == want
