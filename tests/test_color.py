"""Colour maths and colour nodes: LUT parsing and interpolation, matching, grading."""
import numpy as np
import pytest
from skimage.color import rgb2lab

from bench.footage import footage
from graph_engine import Clip, NodeError
from graph_engine.context import Context
from nodes.color import nodes as color_nodes
from nodes.common import color
from node_call import Nodes


nodes = Nodes(color_nodes)


@pytest.fixture(scope="module")
def frames():
    return footage(3, 64, 48, seed=1)


def test_colour_maths_round_trip_and_match_scikit_image(frames):
    x = color.to_float(frames[0])
    np.testing.assert_allclose(color.linear_to_srgb(color.srgb_to_linear(x)), x, atol=1e-5)
    lab = color.rgb_to_lab(x)
    np.testing.assert_allclose(lab, rgb2lab(x), atol=0.05)
    np.testing.assert_allclose(color.lab_to_rgb(lab), x, atol=1e-4)
    warm = color.kelvin_gains(3200)
    assert warm[0] > 1 > warm[2] and np.allclose(color.kelvin_gains(6500), 1, atol=1e-6)


def write_cube(path, size, fn, header=""):
    g = np.linspace(0, 1, size)
    # .cube order: red fastest, then green, then blue.
    b, gr, r = np.meshgrid(g, g, g, indexing="ij")
    rgb = fn(np.stack([r, gr, b], -1).reshape(-1, 3))
    path.write_text(header + f"LUT_3D_SIZE {size}\n" + "\n".join(" ".join(f"{v:.6f}" for v in row) for row in rgb))
    return str(path)


def test_lut_applies_3d_and_1d_tables(frames, tmp_path):
    clip = Clip.from_array(frames)
    ident = write_cube(tmp_path / "id.cube", 9, lambda x: x, '# comment\nTITLE "identity"\n')
    out = nodes.lut(Context("l"), clip, path=ident).to_array()
    assert np.abs(out.astype(int) - frames).max() <= 1
    # A linear map is reproduced exactly by trilinear interpolation: swap channels and invert red.
    swap = write_cube(tmp_path / "swap.cube", 5, lambda x: np.stack([1 - x[:, 0], x[:, 2], x[:, 1]], -1))
    out = nodes.lut(Context("l"), clip, path=swap).to_array()
    want = np.stack([255 - frames[..., 0], frames[..., 2], frames[..., 1]], -1)
    assert np.abs(out.astype(int) - want).max() <= 1
    half = nodes.lut(Context("l"), clip, path=swap, strength=0.5).to_array()
    assert np.abs(half.astype(int) - (want.astype(int) + frames) / 2).max() <= 1
    one_d = tmp_path / "gamma.cube"
    one_d.write_text("LUT_1D_SIZE 256\n" + "\n".join(f"{v} {v} {v}" for v in np.linspace(0, 1, 256) ** 2))
    out = nodes.lut(Context("l"), clip, path=str(one_d)).to_array()
    want = (frames / 255.0) ** 2 * 255
    assert np.abs(out - want).max() <= 1.01


@pytest.mark.parametrize("text, message", [
    ("0 0 0\n1 1 1\n", "no LUT_3D_SIZE"),
    ("LUT_3D_SIZE 2\n0 0 0\n1 1 1\n", "needs 8 entries, found 2"),
    ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 x 0\n", ":9: cannot read the numbers"),
    ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 0\n", ":9: a LUT entry needs 3 numbers"),
    ("LUT_3D_SIZE 1\n0 0 0\n", ":1: LUT_3D_SIZE is out of range"),
    ("LUT_3D_SIZE 2\nFOO 1\n", ":2: not a .cube LUT line"),
    # A nan domain was an IndexError while applying it; nan/inf entries turned colours black.
    ("DOMAIN_MIN nan 0 0\nLUT_3D_SIZE 2\n" + "0 0 0\n" * 8, "need 3 finite numbers each with max > min"),
    ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "nan nan nan\n", ":9: a LUT entry needs finite numbers"),
    ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "1 -inf 1\n", ":9: a LUT entry needs finite numbers"),
])
def test_lut_errors_name_the_line(frames, tmp_path, text, message):
    p = tmp_path / "bad.cube"
    p.write_text(text)
    with pytest.raises(NodeError, match=message):
        nodes.lut(Context("l"), Clip.from_array(frames), path=str(p))
    with pytest.raises(NodeError, match="not found"):
        nodes.lut(Context("l"), Clip.from_array(frames), path=str(tmp_path / "none.cube"))


def test_lut_with_a_byte_order_mark_or_tabs_reads(frames, tmp_path):
    """A .cube saved with a UTF-8 byte-order mark, or with tabs between its values, was refused as
    'not a .cube LUT line' at line 1."""
    clip = Clip.from_array(frames)
    ref = nodes.lut(Context("l"), clip, path=write_cube(tmp_path / "plain.cube", 5, lambda x: x[:, ::-1] ** 2))
    text = (tmp_path / "plain.cube").read_text()
    for name, variant in (("bom", "\ufeff" + text), ("tabs", text.replace(" ", "\t"))):
        (tmp_path / f"{name}.cube").write_text(variant, encoding="utf-8")
        out = nodes.lut(Context("l"), clip, path=str(tmp_path / f"{name}.cube")).to_array()
        np.testing.assert_array_equal(out, ref.to_array())


def test_color_match_to_reference_image_and_frame(frames):
    ref = footage(1, 64, 48, seed=3)[0]
    clip = Clip.from_array(frames)
    out = nodes.match(Context("m"), clip, reference=ref).to_array()
    lab_out, lab_ref = color.rgb_to_lab(color.to_float(out[0])), color.rgb_to_lab(color.to_float(ref))
    np.testing.assert_allclose(lab_out.reshape(-1, 3).mean(0), lab_ref.reshape(-1, 3).mean(0), atol=1.5)
    hist = nodes.match(Context("m"), clip, reference=ref, method="histogram").to_array()
    for c in range(3):
        assert abs(np.median(hist[0][..., c]) - np.median(ref[..., c])) <= 3
    same = nodes.match(Context("m"), clip, frame=1, strength=0.0).to_array()
    assert np.abs(same.astype(int) - frames).max() <= 1
    with pytest.raises(NodeError, match="outside the clip"):
        nodes.match(Context("m"), clip, frame=9)


def test_histogram_match_maps_levels_as_scikit_image_does(frames):
    """Each frame's brightest level went to 255 (np.interp over the reference's flat cumulative
    histogram took its far end): a clip matched to its own frame gained white specks."""
    from skimage.exposure import match_histograms
    clip = Clip.from_array((frames * 0.7).astype(np.uint8))           # no level above 178
    own = nodes.match(Context("m"), clip, frame=0, method="histogram").to_array()
    np.testing.assert_array_equal(own[0], clip.frame(0))
    ref = (footage(1, 64, 48, seed=3)[0] // 2).astype(np.uint8)       # a darker palette, levels 0..127
    out = nodes.match(Context("m"), clip, reference=ref, method="histogram").to_array()
    want = match_histograms(clip.to_array()[1], ref, channel_axis=-1)
    assert out[1].max() <= ref.max() and np.abs(out[1].astype(float) - want).max() <= 1


def test_grade_controls(frames):
    clip = Clip.from_array(frames)
    neutral = nodes.grade(Context("g"), clip).to_array()
    assert np.abs(neutral.astype(int) - frames).max() <= 1
    brighter = nodes.grade(Context("g"), clip, exposure=1.0).to_array()
    lin_in, lin_out = color.srgb_to_linear(color.to_float(frames)), color.srgb_to_linear(color.to_float(brighter))
    unclipped = (brighter < 250).all(-1) & (frames > 20).all(-1)
    np.testing.assert_allclose(lin_out[unclipped], 2 * lin_in[unclipped], rtol=0.05, atol=0.004)
    grey = nodes.grade(Context("g"), clip, saturation=0.0).to_array()
    assert np.abs(grey[..., 0].astype(int) - grey[..., 2]).max() <= 1
    warm = nodes.grade(Context("g"), clip, temperature=3000.0).to_array()
    assert warm[..., 0].mean() > frames[..., 0].mean() and warm[..., 2].mean() < frames[..., 2].mean()
    lifted = nodes.grade(Context("g"), clip, gamma=2.0).to_array()
    assert lifted.mean() > frames.mean() + 10
    flat = nodes.grade(Context("g"), clip, contrast=0.0).to_array()
    assert flat.std() < 1
