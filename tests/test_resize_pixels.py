"""video.resize_pixels (ComfyUI's ImageScaleToTotalPixels): the size is ComfyUI's formula, written out here, and the
ComfyUI node maps onto it with its widgets."""
import math

import numpy as np
import pytest

from graph_engine import Clip, NodeError


def _comfy_size(w, h, megapixels, steps):
    scale = math.sqrt(megapixels * 1024 * 1024 / (w * h))
    return round(w * scale / steps) * steps, round(h * scale / steps) * steps


@pytest.mark.parametrize("w,h,mp,steps", [(1920, 1080, 1.0, 1), (640, 480, 1.0, 16), (300, 700, 0.25, 8),
                                          (4000, 3000, 2.0, 64)])
def test_size_is_comfyuis(w, h, mp, steps):
    from nodes.video.edit import pixel_count_size
    assert pixel_count_size(w, h, mp, steps) == _comfy_size(w, h, mp, steps)


def test_node_resizes_every_frame_and_refuses_nonsense():
    from nodes.video.nodes import resize_pixels
    clip = Clip.from_array(np.zeros((3, 90, 160, 3), np.uint8))
    out = resize_pixels(None, clip, 0.01, "area", 16)
    assert (out.width, out.height, out.length) == (*_comfy_size(160, 90, 0.01, 16), 3)
    assert out.frames(0, 3).shape == (3, out.height, out.width, 3)
    from nodes.video.edit import pixel_count_size
    with pytest.raises(NodeError, match="megapixels must be above 0"):
        pixel_count_size(160, 90, 0.0, 1)


def test_comfyui_node_maps_with_its_widgets():
    from app.comfyui import import_data
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
           "2": {"class_type": "ImageScaleToTotalPixels", "inputs": {"image": ["1", 0], "upscale_method": "area",
                                                                    "megapixels": 0.5, "resolution_steps": 16}},
           "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    entry = next(e for e in res.report.entries.values() if e.class_type == "ImageScaleToTotalPixels")
    assert entry.status == "exact", entry
    assert "type: video.resize_pixels" in res.yaml and "megapixels: 0.5" in res.yaml and "step: 16" in res.yaml
