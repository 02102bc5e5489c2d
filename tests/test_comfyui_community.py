"""Community ComfyUI workflows (custom node packs' example graphs, tests/data/comfyui/community) and the pack nodes
they use: each file imports and validates, or is blocked only by the nodes named here."""
import sys
from pathlib import Path

import pytest

from app.comfyui import import_data, import_workflow

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from comfyui_workflows import ui_format  # noqa: E402

# Community files that do not import, and the nodes that block each (named in the report with what to use instead)
COMMUNITY_BLOCKED = {
    "kjnodes_leapfusion_hunyuan_i2v.json": {"LeapfusionHunyuanI2VPatcher"},
}


def test_community_corpus_imports_and_validates():
    from comfyui_corpus import check, corpus_files
    files = corpus_files("community")
    results = {f.name: check(f) for f in files}
    for name, (good, how) in results.items():
        print(f"{'ok  ' if good else 'FAIL'} {name}: {how}")
    assert len(files) >= 2
    blocked = {name: set(how.split("not mapped: ")[1].split(", ")) if "not mapped: " in how else {how}
               for name, (good, how) in results.items() if not good}
    assert blocked == COMMUNITY_BLOCKED
    readme = (ROOT / "tests" / "data" / "comfyui" / "README.md").read_text()
    for f in files:
        assert f"`community/{f.name}`" in readme, f"{f.name} has no source and licence line"


def test_kijai_leapfusion_graph_runs_through_kjnodes_resize_and_latent_range():
    """kijai's Leapfusion example: ImageResizeKJ (feeding the empty latent its width and height), SamplerCustom's
    denoised_output and GetLatentRangeFromBatch were not mapped, so nothing after the sampler connected."""
    res = import_workflow(ROOT / "tests/data/comfyui/community/kjnodes_leapfusion_hunyuan_i2v.json",
                          bypass_unmapped=True)
    g, entries = res.graph, res.report.entries
    assert g.nodes["image_resize_kj_66"].params == {"method": "lanczos", "width": 960, "height": 640, "fit": "crop"}
    assert g.inputs["image_resize_kj_66"] == {"video": ("load_image_65", "image")}
    empty = g.nodes["empty_hunyuan_latent_video_53"]
    assert (empty.params["width"], empty.params["height"]) == (960, 640)      # the resize's width, height outputs
    assert entries["53"].status == "exact"
    trim = g.nodes["get_latent_range_from_batch_84"]
    assert trim.type == "latent.trim" and trim.params == {"amount": 1}
    assert g.inputs[trim.id] == {"latent": ("sampler_custom_42", "latent")}
    assert g.inputs["vae_decode_tiled_57"]["latent"] == (trim.id, "latent")
    assert "denoised_output is read as sample's latent" in "; ".join(entries["42"].notes)


def _resize_graph(widgets, consumer=True, width_link=False):
    nodes = [(1, "LoadImage", ["a.png", "image"], {}, ["IMAGE", "MASK"])]
    if width_link:
        nodes.append((2, "PrimitiveInt", [720, "fixed"], {}, ["INT"]))
    nodes.append((3, "ImageResizeKJ", widgets, {"image": (1, 0, "IMAGE"),
                                                **({"width_input": (2, 0, "INT")} if width_link else {})},
                  ["IMAGE", "INT", "INT"]))
    nodes.append((4, "SaveImage", ["out"], {"images": (3, 0, "IMAGE")}, []))
    if consumer:
        nodes.append((5, "EmptyHunyuanLatentVideo", [16, 16, 33, 1],
                      {"width": (3, 1, "INT"), "height": (3, 2, "INT")}, ["LATENT"]))
    return ui_format(nodes)


@pytest.mark.parametrize("widgets,crop", [
    ([1000, 650, "bilinear", False, 16, 0, 0, "center"], "crop"),      # width_input, height_input, then crop
    ([1000, 650, "bilinear", False, 16, 0, 0], "stretch"),             # before crop existed
    ([1000, 650, "bilinear", False, 16, "disabled"], "stretch"),       # width_input link-only: crop follows
    ([1000, 650, "bilinear", False, 16, 0], "crop"),                   # ... where 0 is the pack's centre crop
])
def test_image_resize_kj_widget_orders(widgets, crop):
    """ImageResizeKJ's widgets moved as the pack changed; read as one order, a newer file's crop was taken for
    width_input. divisible_by rounds each side down, and the width and height outputs are that size."""
    res = import_data(_resize_graph(widgets))
    resize, = [n for n in res.graph.nodes.values() if n.type == "video.resize"]
    assert resize.params == {"method": "bilinear", "width": 992, "height": 640, "fit": crop}
    empty, = [n for n in res.graph.nodes.values() if n.type == "latent.empty"]
    assert (empty.params["width"], empty.params["height"]) == (992, 640)
    assert res.report.entries["3"].status == "exact"


def test_image_resize_kj_sizes_only_the_run_knows():
    """keep_proportion with both sides, and a 0 side without it, give sizes that depend on the picture: the
    differences are named, and the width and height outputs are measured from the resized clip (video.size)."""
    res = import_data(_resize_graph([640, 480, "lanczos", True, 8, "disabled"]))
    resize, = [n for n in res.graph.nodes.values() if n.type == "video.resize"]
    assert resize.params["fit"] == "pad" and (resize.params["width"], resize.params["height"]) == (640, 480)
    notes = "; ".join(res.report.entries["3"].notes)
    assert "keep_proportion fits the picture inside 640x480 and makes it that smaller size" in notes
    assert "divisible_by 8 is applied to the size ComfyUI computes" in notes
    size, = [n for n in res.graph.nodes.values() if n.type == "video.size"]
    empty, = [n for n in res.graph.nodes.values() if n.type == "latent.empty"]
    assert res.graph.inputs[size.id] == {"video": (resize.id, "video")}
    assert res.graph.inputs[empty.id]["width"] == (size.id, "width")
    assert res.graph.inputs[empty.id]["height"] == (size.id, "height")

    res = import_data(_resize_graph([0, 480, "area", False, 0, "disabled"], consumer=False))
    assert "width 0 keeps the picture's own width in ComfyUI" in "; ".join(res.report.entries["3"].notes)

    res = import_data(_resize_graph([512, 512, "area", False, 2, 0, 0, "disabled"], width_link=True))
    resize, = [n for n in res.graph.nodes.values() if n.type == "video.resize"]
    assert (resize.params["width"], resize.params["height"]) == (720, 512)     # width_input replaces width


def test_latent_range_that_stops_early_is_named():
    nodes = [(1, "EmptyHunyuanLatentVideo", [64, 64, 33, 1], {}, ["LATENT"]),
             (2, "GetLatentRangeFromBatch", [0, 4], {"latents": (1, 0, "LATENT")}, ["LATENT"])]
    entry = import_data(ui_format(nodes)).report.entries["2"]
    assert entry.status == "unmapped"
    assert "start_index 0 with num_frames 4 keeps a range Kinograph has no node for" in "; ".join(entry.notes)
