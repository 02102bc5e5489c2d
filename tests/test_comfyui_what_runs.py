"""ComfyUI runs only its output nodes and what they need: nodes left on a shared workflow's canvas that no output
needs are left out of the import, and only unmapped nodes on the way to an output block it."""
import sys
from pathlib import Path

from app.comfyui import import_data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from comfyui_workflows import ui_format  # noqa: E402

NOT_RUN = "not run: no output node needs it"


def _graph(extra=(), save_from=5):
    """A text-to-image graph saving through SaveImage, and what a community file leaves beside it."""
    return ui_format([
        (1, "CheckpointLoaderSimple", ["sd15.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
        (2, "CLIPTextEncode", ["a lighthouse at dusk"], {"clip": (1, 1, "CLIP")}, ["CONDITIONING"]),
        (3, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
        (4, "KSampler", [7, "fixed", 2, 7, "euler", "simple", 1],
         {"model": (1, 0, "MODEL"), "positive": (2, 0, "CONDITIONING"), "negative": (2, 0, "CONDITIONING"),
          "latent_image": (3, 0, "LATENT")}, ["LATENT"]),
        (5, "VAEDecode", [], {"samples": (4, 0, "LATENT"), "vae": (1, 2, "VAE")}, ["IMAGE"]),
        (6, "SaveImage", ["lighthouse"], {"images": (save_from, 0, "IMAGE")}, []),
        *extra])


def test_nodes_no_output_needs_are_left_out():
    """A stray VAELoader, a KJNodes ColorMatch dropped on the canvas, and a ColorMatch -> ImageScaleBy branch that ends
    nowhere: the ColorMatches blocked the whole import as 'NOT MAPPED', and the stray loader was imported."""
    res = import_data(_graph([
        (7, "VAELoader", ["vae-ft-mse.safetensors"], {}, ["VAE"]),
        (8, "ColorMatch", ["mkl", 1.0], {"image_ref": (5, 0, "IMAGE"), "image_target": (5, 0, "IMAGE")}, ["IMAGE"]),
        (9, "ImageScaleBy", ["lanczos", 2.0], {"image": (8, 0, "IMAGE")}, ["IMAGE"]),
        (10, "ColorMatch", ["mkl", 1.0], {}, ["IMAGE"])]))
    report = res.report
    assert report.blocking == []
    for nid in ("7", "8", "9", "10"):
        assert report.entries[nid].status == "ui" and NOT_RUN in report.entries[nid].notes[0], report.text()
    assert {n.type for n in res.graph.nodes.values()} == {"load.model", "encode.text", "latent.empty", "generate.sample",
                                                          "vae.decode", "io.save_frames"}
    assert report.remarks[0].startswith("4 node(s) that no output needs are left out, as ComfyUI never runs them: "
                                        "outputs are the nodes that save or preview")
    from graph_engine.api import load_workflow
    load_workflow(text=res.yaml)
    # an API prompt the same: what its SaveImage does not need is left out
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "a"}},
           "3": {"class_type": "ColorMatch", "inputs": {"method": "mkl"}}}
    res = import_data(api)
    assert not res.report.blocking and NOT_RUN in res.report.entries["3"].notes[0]


def test_unmapped_nodes_on_the_way_to_an_output_block():
    """A ColorMatch the saved picture goes through still blocks; so does an unknown node that takes something and feeds
    nothing (pysssss's PlaySound: its pack marks it an output node, which the file does not say), and the report says
    why. A leftover ColorMatch with no links does not."""
    res = import_data(_graph([
        (8, "ColorMatch", ["mkl", 1.0], {"image_ref": (5, 0, "IMAGE"), "image_target": (5, 0, "IMAGE")}, ["IMAGE"]),
        (10, "ColorMatch", ["mkl", 1.0], {}, ["IMAGE"]),
        (11, "PlaySound|pysssss", ["always", 1.0, None], {"any": (5, 0, "*")}, ["*"])], save_from=8))
    report = res.report
    assert sorted(e.comfy_id for e in report.blocking) == ["11", "8"], report.text()
    assert "taken as an output node of its pack" in "; ".join(report.entries["11"].notes)
    assert "taken as an output node" not in "; ".join(report.entries["8"].notes)
    assert NOT_RUN in report.entries["10"].notes[0]
    # a preview is an output too: the ColorMatch feeding it blocks, where the save takes the decoder's picture
    res = import_data(_graph([
        (8, "ColorMatch", ["mkl", 1.0], {"image_ref": (5, 0, "IMAGE"), "image_target": (5, 0, "IMAGE")}, ["IMAGE"]),
        (12, "PreviewImage", [], {"images": (8, 0, "IMAGE")}, [])]))
    assert [e.comfy_id for e in res.report.blocking] == ["8"]
    # efficiency-nodes' sampler is an output node of its pack (it shows its picture): it runs though nothing reads it
    res = import_data(_graph([(14, "KSampler (Efficient)", [3, None, 2, 7, "euler", "simple", 1, "auto", "false"],
                               {"model": (1, 0, "MODEL"), "positive": (2, 0, "CONDITIONING"),
                                "negative": (2, 0, "CONDITIONING"), "latent_image": (3, 0, "LATENT")},
                               ["MODEL", "CONDITIONING", "CONDITIONING", "LATENT", "VAE", "IMAGE"])]))
    assert res.report.entries["14"].status != "ui" and not res.report.remarks, res.report.text()
    # a group node (or a subgraph without its definition) may hold a save however it is linked: it still blocks
    res = import_data(_graph([(13, "workflow>Upscale and save", ["4x.pth", "up"], {}, [])]))
    assert [e.comfy_id for e in res.report.blocking] == ["13"]
    assert "Convert to nodes" in res.report.entries["13"].notes[0]


def test_a_file_without_outputs_keeps_every_node():
    """ComfyUI refuses to queue a workflow with no output; the import keeps all of it rather than guess what it was."""
    nodes = [(1, "CheckpointLoaderSimple", ["sd15.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
             (2, "CLIPTextEncode", ["a lighthouse"], {"clip": (1, 1, "CLIP")}, ["CONDITIONING"]),
             (3, "VAELoader", ["vae.safetensors"], {}, ["VAE"])]
    res = import_data(ui_format(nodes))
    assert {n.type for n in res.graph.nodes.values()} == {"load.model", "encode.text", "load.vae"}
    assert not res.report.remarks or "left out" not in res.report.remarks[0]
