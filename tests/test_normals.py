"""normals.* against comfyui_controlnet_aux's normal-map preprocessors, with tiny random-weight models saved as the
real ones are (MiDaS DPT-Hybrid as its Hugging Face folder, Intel/dpt-hybrid-midas). The expected pictures are
computed here from the pack's published steps (resize_image_with_pad, MidasDetector's depth_and_normal), not by
Kinograph's functions."""
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from graph_engine import NodeError
from graph_engine.clip import Clip

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def build_dpt_hybrid(folder: Path, image_size: int = 64) -> Path:
    """DPT-Hybrid (a BiT backbone of 3 stages, 4 ViT layers) a few channels wide, saved with its processor."""
    from transformers import BitConfig, DPTConfig, DPTForDepthEstimation, DPTImageProcessor
    torch.manual_seed(0)
    bit = BitConfig(global_padding="same", layer_type="bottleneck", depths=[1, 1, 1], hidden_sizes=[8, 16, 32],
                    embedding_size=8, num_groups=4, embedding_dynamic_padding=True,
                    out_features=["stage1", "stage2", "stage3"])
    config = DPTConfig(is_hybrid=True, backbone_config=bit, backbone_featmap_shape=[1, 32, 4, 4], hidden_size=16,
                       num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=image_size,
                       patch_size=16, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 16, 16],
                       fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5], readout_type="project",
                       initializer_range=0.3)
    model = DPTForDepthEstimation(config)
    model.head.head[-2].bias.data.fill_(1.0)        # random weights' last ReLU would flatten most of the map
    model.save_pretrained(str(folder))
    DPTImageProcessor(size={"height": 384, "width": 384}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(
        str(folder))
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_dpt_hybrid(root / "depth" / "dpt-hybrid-midas")
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(root))
    yield root
    mp.undo()


def frames(n, h, w):
    rng = np.random.default_rng(3)
    f = rng.integers(0, 256, (n, h, w, 3)).astype(np.uint8)
    f[:, h // 4: h // 2, w // 3: w // 2] = 250
    return cv2.GaussianBlur(f.reshape(n * h, w, 3), (0, 0), 1.5).reshape(n, h, w, 3)


def pack_sized(frame, resolution):
    """resize_image_with_pad: short side to `resolution` (cubic up, area down), edges repeated to whole 64s."""
    h, w = frame.shape[:2]
    k = resolution / min(h, w)
    th, tw = int(np.round(h * k)), int(np.round(w * k))
    img = cv2.resize(frame, (tw, th), interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
    hp, wp = int(np.ceil(th / 64) * 64), int(np.ceil(tw / 64) * 64)
    return np.pad(img, [[0, hp - th], [0, wp - tw], [0, 0]], mode="edge"), (th, tw)


def pack_normal(depth, a, bg_th):
    """MidasDetector's depth_and_normal, step by step."""
    depth_pt = torch.from_numpy(depth).clone()
    depth_pt -= torch.min(depth_pt)
    depth_pt /= torch.max(depth_pt)
    depth_pt = depth_pt.numpy()
    x = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
    y = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3)
    z = np.ones_like(x) * a
    x[depth_pt < bg_th] = 0
    y[depth_pt < bg_th] = 0
    normal = np.stack([x, y, z], axis=2)
    normal /= np.sum(normal ** 2.0, axis=2, keepdims=True) ** 0.5
    return (normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)[:, :, ::-1]


def test_midas_normals_are_the_slopes_of_the_depth_of_the_padded_picture(models, tmp_path):
    """A 3-frame clip in chunks of 2 through normals.midas: every pixel is the pack's normal of the DPT's depth of
    the picture sized and padded as the pack does (48x64 frames at resolution 64: 64x85, padded to 64x128: a picture
    transformers' DPT-Hybrid refused, "Input image size (64*128) doesn't match model (64*64)"). The depth of a
    square picture is transformers' own forward's."""
    from transformers import DPTForDepthEstimation
    from graph_engine.context import Context
    from node_call import Nodes
    from nodes.normals import nodes as normal_nodes
    from nodes.normals.midas import dpt_depth
    f = frames(3, 48, 64)
    clip = Clip(3, 24.0, 64, 48, lambda a, b: f[a:b], chunk=2)
    got = Nodes(normal_nodes).midas(Context("x"), clip, a=3.0, bg_threshold=0.3, resolution=64).frames(0, 3)
    assert got.shape == (3, 64, 85, 3)
    model = DPTForDepthEstimation.from_pretrained(str(models / "depth" / "dpt-hybrid-midas")).eval()
    backgrounds = 0
    for frame, mine in zip(f, got):
        img, (th, tw) = pack_sized(frame, 64)
        assert img.shape == (64, 128, 3)
        x = torch.from_numpy(img).float().permute(2, 0, 1)[None] / 127.5 - 1.0
        with torch.inference_mode():
            depth = dpt_depth(model, x)[0].numpy()
        want = pack_normal(depth, 3.0, 0.3)[:th, :tw]
        assert (mine == want).all()
        backgrounds += int((mine == [255, 127, 127]).all(axis=2).sum())     # faces the camera: z only, B G R
    assert backgrounds > 0 and got.std() > 5
    square = torch.from_numpy(pack_sized(f[0][:, :48], 64)[0]).float().permute(2, 0, 1)[None] / 127.5 - 1.0
    with torch.inference_mode():
        assert torch.equal(dpt_depth(model, square), model(pixel_values=square).predicted_depth)


def test_midas_normals_need_a_dpt_model(models, tmp_path, monkeypatch):
    from tiny_models import build_depth_anything
    from nodes.normals.midas import load_dpt
    build_depth_anything(tmp_path / "depth" / "Depth-Anything-tiny-hf")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    with pytest.raises(NodeError, match="depth_anything model; give the Hugging Face folder Intel/dpt-hybrid-midas"):
        load_dpt("Depth-Anything-tiny-hf", "cpu")


def ui_graph(pre):
    """An editor-format graph: LoadImage feeding each (class_type, widgets_values) preprocessor, each previewed."""
    nodes = [{"id": 1, "type": "LoadImage", "inputs": [], "widgets_values": ["statue.png", "image"],
              "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": list(range(1, len(pre) + 1))},
                          {"name": "MASK", "type": "MASK", "links": []}]}]
    links = []
    for i, (t, w) in enumerate(pre, 1):
        nodes.append({"id": 20 + i, "type": t, "widgets_values": w,
                      "inputs": [{"name": "image", "type": "IMAGE", "link": i}],
                      "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [20 + i]}]})
        nodes.append({"id": 40 + i, "type": "PreviewImage", "widgets_values": [],
                      "inputs": [{"name": "images", "type": "IMAGE", "link": 20 + i}], "outputs": []})
        links += [[i, 1, 0, 20 + i, 0, "IMAGE"], [20 + i, 20 + i, 0, 40 + i, 0, "IMAGE"]]
    return {"last_node_id": 60, "last_link_id": 40, "nodes": nodes, "links": links, "version": 0.4}


def test_normal_preprocessors_import_from_a_comfyui_graph():
    """MiDaS-NormalMapPreprocessor (widgets a, bg_threshold, resolution) and AIO_Preprocessor naming it become
    normals.midas with their settings (AIO: the node's defaults and the AIO's resolution); the pack's normal and line
    preprocessors Kinograph does not run keep a placeholder whose line says what to use instead."""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    refused = ("DSINE-NormalMapPreprocessor", "Metric3D-NormalMapPreprocessor", "TEEDPreprocessor",
               "AnyLineArtPreprocessor_aux", "Manga2Anime_LineArt_Preprocessor", "DiffusionEdge_Preprocessor")
    pre = [("MiDaS-NormalMapPreprocessor", [4.0, 0.2, 768]), ("AIO_Preprocessor", ["MiDaS-NormalMapPreprocessor", 640])]
    res = import_data(ui_graph(pre + [(name, [512]) for name in refused]))
    got = sorted(tuple(sorted(n.params.items())) for n in res.graph.nodes.values() if n.type == "normals.midas")
    assert got == sorted([(("a", 4.0), ("bg_threshold", 0.2), ("model", "dpt-hybrid-midas"), ("resolution", 768)),
                          (("a", 2.0 * math.pi), ("bg_threshold", 0.1), ("model", "dpt-hybrid-midas"),
                           ("resolution", 640))])
    lines = {e.class_type: " ".join(e.notes) for e in res.report.entries.values()}
    for name in refused:
        assert "is not in Kinograph; " in lines[name] and "placeholder" in lines[name], lines[name]
    assert "lines.anime" in lines["Manga2Anime_LineArt_Preprocessor"]
    assert "normals.midas" in lines["DSINE-NormalMapPreprocessor"]
    mapped = import_data(ui_graph(pre))
    assert not mapped.report.blocking
    load_workflow(text=mapped.yaml)
