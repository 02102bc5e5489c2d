"""video.resize_side (ComfyUI's ResizeImageMaskNode by the longer or shorter side, and ImageScaleToMaxDimension):
the other side is ComfyUI's round((other / chosen) * size), written out here. round(other * size / chosen), the
same sum in another order, rounds the other way where the ratio is not exact in binary (15 / 22 * 11 is
7.4999..., 15 * 11 / 22 is 7.5)."""
import numpy as np
import pytest

from graph_engine import Clip


def _comfy_size(w, h, size, side):
    """comfy_extras/nodes_post_processing.py's scale_longer_dimension / scale_shorter_dimension"""
    if (h > w) == (side == "longer") and h != w:
        return round((w / h) * size), size
    if h != w:
        return size, round((h / w) * size)
    return size, size


@pytest.mark.parametrize("w,h,size,side", [(22, 15, 11, "longer"), (15, 22, 11, "longer"), (15, 22, 11, "shorter"),
                                           (16, 9, 8, "shorter"), (12, 12, 5, "longer")])
def test_size_is_comfyuis(w, h, size, side):
    from nodes.video.nodes import resize_side
    out = resize_side(None, Clip.from_array(np.zeros((1, h, w, 3), np.uint8)), size, side, "area")
    assert (out.width, out.height) == _comfy_size(w, h, size, side)
