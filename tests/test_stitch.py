"""video.stitch (ComfyUI's ImageStitch): two clips laid out as ComfyUI lays them, checked against a layout built
here pixel by pixel with numpy from its code's rules (direction, match_image_size, spacing rounded up to even,
padding centred in white or black), the shorter clip holding its last frame, the alpha laid out alike."""
import numpy as np
import pytest

from graph_engine import Clip, NodeError
from nodes.video.stitch import stitch


def _clip(w, h, n, seed):
    rng = np.random.default_rng(seed)
    return Clip.from_array(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8), fps=12)


def test_beside_without_matching_pads_the_smaller_centred_and_holds_the_shorter():
    a, b = _clip(6, 4, 3, 0), _clip(5, 7, 2, 1)
    out = stitch(a, b, "right", match_size=False, spacing=3, colour="red")
    assert (out.width, out.height, out.length, out.fps) == (6 + 4 + 5, 7, 3, 12)
    got = out.frames(0, 3)
    want = np.zeros((3, 7, 15, 3), np.uint8)                  # red: ComfyUI pads with black
    want[:, :, 6:10] = (255, 0, 0)                            # spacing 3 -> 4
    want[:, 1:5, 0:6] = a.frames(0, 3)                         # (7 - 4) // 2 = 1 row above
    want[:, :, 10:15] = b.frames(0, 2)[[0, 1, 1]]              # the last frame held
    assert np.array_equal(got, want)


def test_left_and_up_put_the_second_first_and_white_pads_white():
    a, b = _clip(4, 4, 1, 0), _clip(2, 2, 1, 1)
    left = stitch(a, b, "left", match_size=False).frame(0)
    assert np.array_equal(left[1:3, 0:2], b.frame(0)) and np.array_equal(left[:, 2:], a.frame(0))
    assert (left[0, 0:2] == 255).all() and (left[3, 0:2] == 255).all()
    up = stitch(a, b, "up", match_size=False, colour="black").frame(0)
    assert up.shape == (6, 4, 3)
    assert np.array_equal(up[0:2, 1:3], b.frame(0)) and np.array_equal(up[2:], a.frame(0))
    assert (up[0:2, 0] == 0).all() and (up[0:2, 3] == 0).all()


def test_match_size_stretches_the_second_to_the_first_keeping_its_shape():
    a, b = _clip(8, 6, 1, 0), _clip(4, 4, 1, 1)
    beside = stitch(a, b, "right")
    assert (beside.width, beside.height) == (8 + 6, 6)          # int(6 * 4 / 4) = 6 wide
    below = stitch(a, _clip(4, 2, 1, 1), "down")
    assert (below.width, below.height) == (8, 6 + 4)            # int(8 / 2) = 4 high


def test_alpha_is_laid_out_with_the_pictures():
    a = _clip(4, 2, 1, 0)
    b = _clip(2, 2, 1, 1).with_matte(lambda s, e: np.zeros((e - s, 2, 2, 1), np.uint8))
    out = stitch(a, b, "right", match_size=False, spacing=2)
    m = out.matte.frame(0)[..., 0]
    assert (m[:, :6] == 255).all() and (m[:, 6:] == 0).all()
    assert stitch(a, a, "down").matte is None


def test_bad_direction_and_colour_are_named():
    a = _clip(2, 2, 1, 0)
    with pytest.raises(NodeError, match="direction='sideways'"):
        stitch(a, a, "sideways")
    with pytest.raises(NodeError, match="colour='pink'"):
        stitch(a, a, colour="pink")
