"""mask.painter against ComfyUI's Painter (comfy_extras/nodes_painter.py) written out here: the drawing's alpha is
the mask and lays the drawing over the base picture (or a plain bg_color one), at the base's size."""
import numpy as np
import pytest
from PIL import Image

from graph_engine import NodeError
from nodes.mask.painter import painted


def comfy_painter(mask_path, width, height, bg_color, image=None):
    """ComfyUI's PainterNode.execute on float pictures [1, H, W, 3] in [0, 1] (its hex_to_rgb inlined)."""
    if image is not None:
        base = image[:1]
        h, w = base.shape[1], base.shape[2]
    else:
        h, w = height, width
        s = bg_color.lstrip("#")
        base = np.zeros((1, h, w, 3), np.float32)
        base[0] = [int(s[0:2], 16) / 255.0, int(s[2:4], 16) / 255.0, int(s[4:6], 16) / 255.0]
    if mask_path:
        im = Image.open(mask_path).convert("RGBA")
        if im.size != (w, h):
            im = im.resize((w, h), Image.LANCZOS)
        p = np.array(im).astype(np.float32) / 255.0
        return p[:, :, :3] * p[:, :, 3:4] + base[0] * (1.0 - p[:, :, 3:4]), p[:, :, 3]
    return base[0], np.zeros((h, w), np.float32)


@pytest.fixture
def drawing(tmp_path):
    """A 40 x 30 stroke: opaque red in the middle, soft at its edges, transparent elsewhere."""
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[8:22, 10:30] = (230, 20, 10, 255)
    rgba[6:8, 10:30] = (230, 20, 10, 90)
    path = tmp_path / "painter-1.png"
    Image.fromarray(rgba).save(path)
    return str(path)


def test_a_drawing_over_a_picture_of_another_size_is_comfyuis(drawing):
    base = np.random.default_rng(0).integers(0, 256, (45, 64, 3), dtype=np.uint8)     # not the drawing's size
    got, mask = painted(base, drawing, 512, 512, "#000000")
    want, want_mask = comfy_painter(drawing, 512, 512, "#000000", base[None].astype(np.float32) / 255.0)
    assert got.shape == (45, 64, 3) and mask.shape == (45, 64)
    np.testing.assert_allclose(mask, want_mask, atol=1e-6)
    assert np.abs(got.astype(np.float32) - want * 255.0).max() <= 0.5          # uint8 rounding only
    assert mask.max() > 0.9 and mask.min() == 0.0


def test_on_a_plain_background_and_with_nothing_drawn(drawing):
    got, mask = painted(None, drawing, 40, 30, "#2040ff")
    want, want_mask = comfy_painter(drawing, 40, 30, "#2040ff")
    np.testing.assert_allclose(mask, want_mask, atol=1e-6)
    assert np.abs(got.astype(np.float32) - want * 255.0).max() <= 0.5
    assert tuple(got[0, 0]) == (0x20, 0x40, 0xff)
    base = np.full((20, 24, 3), 77, np.uint8)
    got, mask = painted(base, "", 512, 512, "#000000")                  # the InfiniteTalk template's blank Painter
    assert np.array_equal(got, base) and mask.shape == (20, 24) and not mask.any()


def test_bad_colour_and_missing_drawing_say_what_to_give(tmp_path):
    with pytest.raises(NodeError, match="#rrggbb"):
        painted(None, "", 64, 64, "red")
    with pytest.raises(NodeError, match="is not there"):
        painted(None, str(tmp_path / "gone.png"), 64, 64, "#000000")


def test_a_file_that_is_no_picture_is_named(tmp_path):
    """Before: Pillow's UnidentifiedImageError came out as a traceback."""
    bad = tmp_path / "painter-2.png"
    bad.write_text("not a png")
    with pytest.raises(NodeError, match="cannot read the drawing .*painter-2.png as a picture"):
        painted(None, str(bad), 64, 64, "#000000")


def test_a_drawing_past_pillows_pixel_limit_is_named(drawing, monkeypatch):
    """A drawing whose header claims more pixels than Pillow reads (a small PNG unpacking to gigabytes) stopped the
    node with Pillow's DecompressionBombError traceback; it is named with its pixels and the fix, as io.load_image
    names it. The limit is lowered here so a 40 x 30 drawing stands for a 16000 x 12000 one."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with pytest.raises(NodeError, match="painter-1.png has 1,200 pixels, more than the 1,000 an image may have"):
        painted(None, drawing, 64, 64, "#000000")
