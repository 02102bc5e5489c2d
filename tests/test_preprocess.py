"""comfyui_controlnet_aux's model-free preprocessors (control.canny_edges, control.binary, control.color_grid,
control.tile), video.invert, and the pack's AIO_Preprocessor on import. The pictures are checked against the pack's
steps written out here with the OpenCV calls its detectors make (custom_controlnet_aux/canny, binary, color, tile
and util.resize_image_with_pad), and against what each picture must be whatever the code (flat cells, two levels)."""
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from comfyui_workflows import ui_format  # noqa: E402


def _picture(h, w, seed=0):
    """A smooth random picture with a bright square in it: edges to find, greys on both sides of a threshold."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 5, 3)).astype(np.uint8)
    f = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    f[h // 4:h // 2, w // 3:w // 2] = 250
    return f


def _pack_sized(f, resolution):
    """resize_image_with_pad: short side to resolution (cubic up, area down), edge-padded to whole 64s."""
    h, w = f.shape[:2]
    k = resolution / min(h, w)
    th, tw = int(np.round(h * k)), int(np.round(w * k))
    img = cv2.resize(f, (tw, th), interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
    return np.pad(img, [[0, -th % 64], [0, -tw % 64], [0, 0]], mode="edge"), th, tw


def test_pictures_are_the_packs_own():
    from nodes.preprocess import pictures as p
    for f, res in ((_picture(37, 53), 96), (_picture(150, 110, 1), 72)):      # scaled up (cubic), down (area)
        img, th, tw = _pack_sized(f, res)
        edges = p.canny_edges(f, 50, 120, res)
        assert edges.shape == (th, tw, 3) and (edges == edges[..., :1]).all()
        assert np.array_equal(edges[..., 0], cv2.Canny(img, 50, 120)[:th, :tw]) and edges.max() == 255
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        lines = p.binary_lines(f, 100, res)
        assert np.array_equal(lines[..., 0], np.where(grey[:th, :tw] > 100, 255, 0))
        otsu, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)    # over the padded picture
        assert np.array_equal(p.binary_lines(f, 0, res)[..., 0], np.where(grey[:th, :tw] > otsu, 255, 0))
        assert set(np.unique(lines)) <= {0, 255}
    # Color: short side to 128 (area), one cubic-shrunk pixel per 64x64 cell, blown up nearest
    f = _picture(48, 80, 2)
    grid = p.colour_grid(f, 128)
    assert grid.shape == (128, 213, 3)          # round(80 / 48 x 128) = 213: the pack's own rounding
    big = cv2.resize(f, (213, 128), interpolation=cv2.INTER_AREA)
    cells = cv2.resize(big, (3, 2), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(grid, cv2.resize(cells, (213, 128), interpolation=cv2.INTER_NEAREST))
    assert (grid[:64, :71] == grid[0, 0]).all()
    # Tile: sides rounded to whole 64s (100x150 -> 128x128), shrunk by 8 (area), three pyrUps
    f = _picture(100, 150, 3)
    tile = p.tile_blur(f, 3)
    small = cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA)
    assert np.array_equal(tile, cv2.pyrUp(cv2.pyrUp(cv2.pyrUp(small))))
    assert (p.tile_blur(np.full((64, 64, 3), 77, np.uint8), 2) == 77).all()
    assert np.array_equal(p.inverted(f), 255 - f)
    # Content Shuffle: two make_noise_disk fields (f 256) from one Generator seeded 7, as sampling positions
    f = _picture(40, 90, 5)
    img, th, tw = _pack_sized(f, 64)
    H, W = img.shape[:2]
    rng = np.random.default_rng(7)
    fields = []
    for scale in (W - 1, H - 1):
        n = cv2.resize(rng.uniform(0, 1, (H // 256 + 2, W // 256 + 2, 1)), (W + 512, H + 512),
                       interpolation=cv2.INTER_CUBIC)[256:256 + H, 256:256 + W]
        fields.append((n - n.min()) / (n - n.min()).max() * float(scale))
    want = cv2.remap(img, np.stack(fields, axis=2).astype(np.float32), None, cv2.INTER_LINEAR)[:th, :tw]
    shuffled = p.content_shuffle(f, 64, 7)
    assert shuffled.shape == (64, 144, 3) and np.array_equal(shuffled, want)
    assert not np.array_equal(shuffled, p.content_shuffle(f, 64, 8))


def test_the_nodes_run_at_the_packs_sizes_and_refuse_what_cannot_be(tmp_path):
    """Each node's clip has the size of its pictures (the detect resolution's, not the frame's); settings that
    cannot make a picture are named with the way out, not a cv2 error from inside a frame."""
    from graph_engine.api import Session, load_workflow
    from nodes.preprocess.pictures import canny_edges, content_shuffle
    wf = tmp_path / "aux.yaml"

    def run(extra, keep):
        wf.write_text("kinograph: 1\nnodes:\n  src: {type: generate.test_pattern, params: {frames: 2, width: 48, "
                      "height: 80}}\n" + extra)
        return Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False, keep=keep)
    res = run("  canny: {type: control.canny_edges, inputs: {video: src.video}, params: {resolution: 96}}\n"
              "  tile: {type: control.tile, inputs: {video: src.video}, params: {iterations: 4}}\n"
              "  grid: {type: control.color_grid, inputs: {video: src.video}, params: {resolution: 64}}\n"
              "  bin: {type: control.binary, inputs: {video: src.video}, params: {threshold: 0, resolution: 64}}\n"
              "  shuf: {type: control.shuffle, inputs: {video: src.video}, params: {resolution: 64, seed: 3}}\n"
              "  inv: {type: video.invert, inputs: {video: src.video}}\n", ["src", "canny", "tile", "grid", "bin",
                                                                              "shuf", "inv"])
    assert res.ok, res.failed
    out = {k: res.outputs[k]["video"].to_array() for k in ("src", "canny", "tile", "grid", "bin", "shuf", "inv")}
    frames = out["src"]
    assert out["canny"].shape == (2, 160, 96, 3)
    assert np.array_equal(out["canny"][1], canny_edges(frames[1], 100, 200, 96))
    assert out["tile"].shape == (2, 64, 64, 3) and out["grid"].shape == (2, 107, 64, 3)
    assert out["bin"].shape == (2, 107, 64, 3) and np.array_equal(out["inv"], 255 - frames)
    assert np.array_equal(out["shuf"][1], content_shuffle(frames[1], 64, 3))
    for extra, message in (
            ("  x: {type: control.canny_edges, inputs: {video: src.video}, params: {low: 201}}\n",
             "low (201) must not be above high (200)"),
            ("  x: {type: control.tile, inputs: {video: src.video}, params: {iterations: 7}}\n",
             "a 48x80 frame rounds to 64x64 pixels, too small to halve 7 times (pyrUp_iters): each side must round to "
             "128 or more"),
            ("  x: {type: control.binary, inputs: {video: src.video}, params: {resolution: 9840}}\n",
             "resolution 9840 makes the pictures of this 48x80 clip 9840x16400 pixels, over 16384 a side: resolution "
             "is the short side, so for frames this long use 9830 or less")):
        res = run(extra, ["x"])
        assert not res.ok and message in str(res.failed), res.failed


def _aio_workflow(names):
    """LoadImage feeding one AIO_Preprocessor per (preprocessor, resolution), each saved: ComfyUI's UI format, the
    AIO's widgets as the pack's node saves them (preprocessor, resolution)."""
    nodes = [(1, "LoadImage", ["pic.png", "image"], {}, ["IMAGE", "MASK"])]
    for k, (name, res) in enumerate(names):
        nodes += [(10 + k, "AIO_Preprocessor", [name, res], {"image": (1, 0, "IMAGE")}, ["IMAGE"]),
                  (20 + k, "SaveImage", [f"aio{k}"], {"images": (10 + k, 0, "IMAGE")}, [])]
    return ui_format(nodes)


def test_aio_preprocessor_imports_as_the_preprocessor_it_names(tmp_path):
    """AIO_Preprocessor was a red placeholder whatever it named, so the control picture was lost. It now becomes the
    named preprocessor's own mapping with the widgets the pack's AIO hands it (that preprocessor's defaults) and its
    resolution; the model-free ones run here on the CPU, and a name Kinograph does not have is said."""
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from nodes.preprocess.pictures import canny_edges, tile_blur
    pic = _picture(48, 72, 4)
    cv2.imwrite(str(tmp_path / "pic.png"), pic[..., ::-1])
    res = import_data(_aio_workflow([("CannyEdgePreprocessor", 128), ("TilePreprocessor", 512),
                                     ("DepthAnythingV2Preprocessor", 1024), ("ShufflePreprocessor", 256),
                                     ("MiDaS-DepthMapPreprocessor", 384)]))
    nodes = {n.id.rsplit("_", 1)[0] if n.type == "depth.estimate" else n.type: n for n in res.graph.nodes.values()}
    assert nodes["control.canny_edges"].params == {"low": 100, "high": 200, "resolution": 128}
    assert nodes["control.tile"].params == {"iterations": 3}
    assert nodes["depth_anything_v2_preprocessor"].params == {"model": "Depth-Anything-V2-Large-hf"}
    assert nodes["control.shuffle"].params == {"resolution": 256, "seed": 0}
    assert nodes["mi_da_s_depth_map_preprocessor"].params == {"model": "dpt-hybrid-midas"}
    lines = res.report.text().splitlines()
    assert [x for x in lines if "#13" in x] == [
        "mapped approximately   AIO_Preprocessor #13 -> shuffle_preprocessor_13: runs ShufflePreprocessor; seed 0 "
        "shuffles each frame anew on every run in ComfyUI (numpy's unseeded state); here it is one fixed shuffle for "
        "every frame: set another seed for another one"]
    # MiDaS's a and bg_threshold (AIO hands it their defaults) shape only the pack's normal map: nothing to say of them
    from app.comfyui.mapping import DEPTH_NOTE
    assert [x for x in lines if "#14" in x] == [
        "mapped approximately   AIO_Preprocessor #14 -> mi_da_s_depth_map_preprocessor_14: runs "
        f"MiDaS-DepthMapPreprocessor; {DEPTH_NOTE}"]
    assert "where the pack spreads each frame by its own: set spread to frame" in DEPTH_NOTE     # said, for video
    assert "mapped exactly         AIO_Preprocessor #10 -> canny_edge_preprocessor_10: runs CannyEdgePreprocessor" \
        in lines
    assert not [x for x in lines if x.startswith("NOT MAPPED")]
    # the two model-free ones, run as imported (the depth one needs its model: left out here)
    two = import_data(_aio_workflow([("CannyEdgePreprocessor", 128), ("TilePreprocessor", 512)]))
    wf = tmp_path / "aio.kino.yaml"
    wf.write_text(two.yaml)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False,
                                    keep=["canny_edge_preprocessor_10", "tile_preprocessor_11"])
    assert run.ok, run.failed
    got = run.outputs["canny_edge_preprocessor_10"]["video"].to_array()[0]
    assert np.array_equal(got, canny_edges(pic, 100, 200, 128))
    assert np.array_equal(run.outputs["tile_preprocessor_11"]["video"].to_array()[0], tile_blur(pic, 3))


def test_aio_says_what_it_cannot_run(monkeypatch):
    """A preprocessor Kinograph has no mapping for leaves a placeholder naming it (not just "AIO_Preprocessor");
    resolution below 64 is 512, as the pack's common_annotator_call makes it; none (here from the pack's
    ControlNetPreprocessorSelector) passes the picture on."""
    from app.comfyui import import_data
    res = import_data({
        "1": {"class_type": "LoadImage", "inputs": {"image": "pic.png"}},
        "2": {"class_type": "AIO_Preprocessor", "inputs": {"image": ["1", 0], "preprocessor":
                                                           "MediaPipe-FaceMeshPreprocessor", "resolution": 512}},
        "3": {"class_type": "AIO_Preprocessor", "inputs": {"image": ["1", 0], "preprocessor": "ColorPreprocessor",
                                                           "resolution": 32}},
        "4": {"class_type": "AIO_Preprocessor", "inputs": {"image": ["1", 0], "preprocessor": ["9", 0]}},
        "9": {"class_type": "ControlNetPreprocessorSelector", "inputs": {"preprocessor": "none"}},
        "10": {"class_type": "AIO_Preprocessor", "inputs": {"preprocessor": "BinaryPreprocessor", "resolution": 512}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "c"}},
        "7": {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "i"}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "b"}}})
    text = res.report.text()
    assert ("NOT MAPPED             AIO_Preprocessor #2 -> aio_preprocessor_2: its preprocessor "
            "MediaPipe-FaceMeshPreprocessor has no Kinograph equivalent; a placeholder marks its place") in text
    assert ("AIO_Preprocessor #3 -> color_preprocessor_3: runs ColorPreprocessor; resolution 32 is below 64 or not a "
            "whole number: 512 used") in text
    # one whose image is not connected (as saved in many shared workflows) is not blamed on another node
    assert "mapped exactly         AIO_Preprocessor #10 -> binary_preprocessor_10: runs BinaryPreprocessor\n" in text
    g = res.graph
    assert g.nodes["color_preprocessor_3"].params == {"resolution": 512}
    # a preprocessor mapped without its ComfyUI defaults in AIO_DEFAULTS: Kinograph's own are used, said
    from app.comfyui import mapping
    monkeypatch.setitem(mapping.RULES, "NewLinesPreprocessor", mapping.RULES["BinaryPreprocessor"])
    new = import_data({"1": {"class_type": "LoadImage", "inputs": {"image": "pic.png"}},
                       "2": {"class_type": "AIO_Preprocessor", "inputs": {"image": ["1", 0], "resolution": 640,
                                                                          "preprocessor": "NewLinesPreprocessor"}}})
    assert ("AIO_Preprocessor #2 -> new_lines_preprocessor_2: runs NewLinesPreprocessor; bin_threshold: Kinograph's "
            "defaults, which may not be NewLinesPreprocessor's own") in new.report.text()
    assert new.graph.nodes["new_lines_preprocessor_2"].params == {"resolution": 640}
    assert g.inputs["image_invert_7"]["video"] == ("load_image_1", "image")      # none: LoadImage's picture as is


def test_inpaint_preprocessor_masks_the_picture_inside_control_apply():
    """InpaintPreprocessor's picture (the masked pixels -1, which no video holds) was lost with the node. Its mask now
    rides with the picture to control.apply's mask, and an SD ControlNet is given -1 where the mask, stretched
    bilinear to the picture, is above 0.5, as the pack's preprocess sets them."""
    import torch
    from app.comfyui import import_data
    from nodes.generate.control import control_images, inpaint_keep
    res = import_data({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a room", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "room.png"}},
        "5": {"class_type": "InpaintPreprocessor", "inputs": {"image": ["4", 0], "mask": ["4", 1]}},
        "6": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "control_v11p_sd15_inpaint.pth"}},
        "7": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["2", 0], "negative": ["3", 0], "control_net": ["6", 0], "image": ["5", 0], "strength": 1.0,
            "start_percent": 0.0, "end_percent": 1.0}},
        "8": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "9": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["7", 0], "negative": ["7", 1], "latent_image": ["8", 0], "seed": 1,
            "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "x"}}})
    g = res.graph
    apply = [n for n in g.nodes.values() if n.type == "control.apply"]
    assert len(apply) == 1 and g.inputs[apply[0].id]["mask"] == ("load_image_4", "mask")
    assert g.inputs[apply[0].id]["video"] == ("load_image_4", "image")
    assert "InpaintPreprocessor #5" in res.report.text() and "NOT MAPPED" not in res.report.text()
    # the picture an SD net is given: a 4x4 mask stretched to 8x8, -1 where it is above 0.5
    frames = np.full((1, 8, 8, 3), 51, np.uint8)
    mask = np.zeros((4, 4), np.float32)
    mask[1:3, 1:3] = 1.0
    keep = inpaint_keep(frames, mask)
    stretched = torch.nn.functional.interpolate(torch.from_numpy(mask)[None, None], size=(8, 8), mode="bilinear")[0, 0]
    assert np.array_equal(keep[0] == 0, (stretched > 0.5).numpy())
    images = control_images(frames, [0, 0], keep)
    want = torch.where(stretched > 0.5, -1.0, 0.2)
    assert images.shape == (2, 3, 8, 8) and torch.allclose(images, want.expand(2, 3, 8, 8))


def test_aio_preprocessor_reaches_the_line_preprocessors():
    """The AIO's defaults for lines.* (written before nodes/lines existed) must match those nodes' own parameters:
    an AIO naming a line preprocessor imports as that node with the pack's defaults and validates."""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    res = import_data(_aio_workflow([("LineArtPreprocessor", 640), ("FakeScribblePreprocessor", 512),
                                     ("M-LSDPreprocessor", 512), ("Scribble_XDoG_Preprocessor", 256)]))
    got = sorted((n.type, tuple(sorted(n.params.items()))) for n in res.graph.nodes.values()
                 if n.type.startswith("lines."))
    assert got == [("lines.hed", (("resolution", 512), ("safe", True), ("scribble", True))),
                   ("lines.lineart", (("model", "sk_model.pth"), ("resolution", 640))),
                   ("lines.mlsd", (("distance", 0.1), ("resolution", 512), ("score", 0.1))),
                   ("lines.xdog", (("resolution", 256), ("threshold", 32)))]
    assert sum("mapped exactly         AIO_Preprocessor" in x for x in res.report.text().splitlines()) == 4
    load_workflow(text=res.yaml)     # check=True: a parameter the node lacks or out of its range raises
