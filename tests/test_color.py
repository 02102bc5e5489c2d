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
    # past float32's range: it was read as inf, a colour the table sends to infinity
    ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "1 1e40 1\n", ":9: a LUT entry needs finite numbers"),
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


def test_color_match_makes_one_correction_for_the_clip(tmp_path):
    """Each frame was matched on its own statistics: when a red object came into frame, the untouched wall
    behind it shifted 14 (reinhard) to 30 (histogram) levels. By default the clip's frames are pooled into
    one correction, as a colourist matches a shot; the reference is scikit-image's Lab and histogram
    matching of the pooled frames."""
    from skimage.color import lab2rgb, rgb2lab
    from skimage.exposure import match_histograms
    frames = np.zeros((10, 32, 64, 3), np.uint8)
    frames[:] = (90, 110, 140)
    frames[:, :, :10] = (200, 190, 170)
    frames[5:, :, 32:] = (220, 40, 30)                       # comes into frame half way
    ref = np.zeros((32, 64, 3), np.uint8)
    ref[:] = (150, 120, 90)
    ref[:, :15] = (240, 230, 200)
    clip = Clip.from_array(frames)
    for method in ("reinhard", "histogram"):
        out = nodes.match(Context("m"), clip, reference=ref, method=method).to_array().astype(float)
        assert np.ptp(out[:, 16, 20], axis=0).max() == 0, method      # the wall holds its colour
        each = nodes.match(Context("m"), clip, reference=ref, method=method, spread="frame").to_array()
        assert np.ptp(each[:, 16, 20].astype(int), axis=0).max() >= 10, method
        pooled = frames.reshape(-1, 64, 3)
        if method == "reinhard":
            lab, lab_ref = rgb2lab(pooled / 255.0), rgb2lab(ref / 255.0)
            mean, std = lab.reshape(-1, 3).mean(0), lab.reshape(-1, 3).std(0)
            rmean, rstd = lab_ref.reshape(-1, 3).mean(0), lab_ref.reshape(-1, 3).std(0)
            want = lab2rgb((rgb2lab(frames / 255.0) - mean) * rstd / std + rmean) * 255
        else:
            want = match_histograms(pooled, ref, channel_axis=-1).reshape(frames.shape)
        assert np.abs(out - want).max() <= 1.5, method


def test_histogram_match_maps_levels_as_scikit_image_does(frames):
    """Each frame's brightest level went to 255 (np.interp over the reference's flat cumulative
    histogram took its far end): a clip matched to its own frame gained white specks."""
    from skimage.exposure import match_histograms
    clip = Clip.from_array((frames * 0.7).astype(np.uint8))           # no level above 178
    own = nodes.match(Context("m"), clip, frame=0, method="histogram", spread="frame").to_array()
    np.testing.assert_array_equal(own[0], clip.frame(0))
    ref = (footage(1, 64, 48, seed=3)[0] // 2).astype(np.uint8)       # a darker palette, levels 0..127
    out = nodes.match(Context("m"), clip, reference=ref, method="histogram", spread="frame").to_array()
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


def ffmpeg_lut3d(rgb: np.ndarray, cube: str, interp: str) -> np.ndarray:
    """float RGB through FFmpeg's lut3d filter in 32-bit float (planar GBR): an independent reference."""
    import subprocess
    from nodes.io.video_write import ffmpeg_exe
    h, w, _ = rgb.shape
    planes = np.ascontiguousarray(np.stack([rgb[..., 1], rgb[..., 2], rgb[..., 0]]), np.float32)
    done = subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "gbrpf32le", "-s", f"{w}x{h}",
                           "-i", "-", "-vf", f"lut3d=file={cube}:interp={interp}", "-f", "rawvideo",
                           "-pix_fmt", "gbrpf32le", "-"], input=planes.tobytes(), capture_output=True, check=True)
    g, b, r = np.frombuffer(done.stdout, np.float32).reshape(3, h, w)
    return np.stack([r, g, b], -1)


def random_lut(size, seed=0):
    table = np.random.default_rng(seed).random((size ** 3, 3))
    return lambda x: table


@pytest.mark.parametrize("interpolation", ["tetrahedral", "trilinear"])
def test_lut_interpolation_matches_ffmpeg_lut3d(frames, tmp_path, interpolation):
    """color.lut applied 3D LUTs trilinearly only; DaVinci Resolve (and FFmpeg's default) interpolate
    tetrahedrally, which differed by up to 87 levels on a rough table. A random table is the hardest
    case: every cell's corners differ."""
    clip = Clip.from_array(frames)
    cube = write_cube(tmp_path / "rough.cube", 5, random_lut(5))
    out = nodes.lut(Context("l"), clip, path=cube, interpolation=interpolation).to_array().astype(np.float32)
    want = np.stack([ffmpeg_lut3d(color.to_float(f), cube, interpolation) for f in frames]) * 255
    assert np.abs(out - want).max() <= 0.51
    other = "trilinear" if interpolation == "tetrahedral" else "tetrahedral"
    assert np.abs(out - np.stack([ffmpeg_lut3d(color.to_float(f), cube, other) for f in frames]) * 255).max() > 5
    # Tetrahedral is what a saved workflow gets when it names none.
    default = nodes.lut(Context("l"), clip, path=cube).to_array()
    assert (np.array_equal(default, out.astype(np.uint8))) == (interpolation == "tetrahedral")


def test_lut_as_resolve_and_adobe_write_them(frames, tmp_path):
    """A 65-point LUT with a title, comments, CRLF line ends and an Adobe DOMAIN reads and matches FFmpeg.
    (FFmpeg's own DOMAIN handling drops DOMAIN_MIN, so the domain is applied to its input here, as
    Adobe's specification defines it: (x - min) / (max - min).)"""
    clip = Clip.from_array(frames)
    look = lambda x: np.clip(np.stack([x[:, 0] ** 0.7, x[:, 1] ** 1.4, 0.4 + 0.5 * np.sin(3 * x[:, 2] + x[:, 0])], -1), 0, 1)
    plain = str(tmp_path / "plain.cube")
    write_cube(tmp_path / "plain.cube", 65, look)
    header = '# Created by: DaVinci Resolve\r\nTITLE "Film look #3"\r\nDOMAIN_MIN 0.1 0 0\r\nDOMAIN_MAX 0.9 1 1.2\r\n'
    adobe = tmp_path / "adobe.cube"
    adobe.write_bytes((header + (tmp_path / "plain.cube").read_text().replace("\n", "\r\n")).encode())
    out = nodes.lut(Context("l"), clip, path=str(adobe)).to_array().astype(np.float32)
    lo, hi = np.array([0.1, 0, 0]), np.array([0.9, 1, 1.2])
    want = np.stack([ffmpeg_lut3d(np.clip((color.to_float(f) - lo) / (hi - lo), 0, 1), plain, "tetrahedral")
                     for f in frames])
    assert np.abs(out - want * 255).max() <= 0.51
    from nodes.common.lut import parse_cube
    assert parse_cube(str(adobe)).title == "Film look #3"


def test_lut_with_a_1d_shaper_and_3d_table_as_resolve_writes_it(frames, tmp_path):
    """Resolve's .cube may hold a 1D 'shaper' then a 3D table, each with its own input range (the
    example of its LUT documentation): it was refused ('needs 27 entries, found 33'), and one
    LUT_*_INPUT_RANGE overwrote the other. The shaper, applied here with numpy, feeds FFmpeg's lut3d."""
    clip = Clip.from_array(frames)
    g = np.linspace(0, 1, 9)
    shaper = np.stack([g ** 0.5, g, 1 - g], -1) * 2.0        # outputs 0..2, so the 3D range is 0..2
    lattice = tmp_path / "lattice.cube"
    write_cube(lattice, 9, random_lut(9, seed=3))
    rows3d = lattice.read_text().split("\n", 1)[1]
    text = ("# 1D shaper then 3D\nLUT_1D_SIZE 9\nLUT_1D_INPUT_RANGE 0.0 1.0\nLUT_3D_SIZE 9\nLUT_3D_INPUT_RANGE 0.0 2.0\n"
            + "\n".join(" ".join(f"{v:.6f}" for v in row) for row in shaper) + "\n" + rows3d)
    (tmp_path / "shaper.cube").write_text(text)
    out = nodes.lut(Context("l"), clip, path=str(tmp_path / "shaper.cube")).to_array().astype(np.float32)
    x = color.to_float(frames)
    shaped = np.stack([np.interp(x[..., c], g, shaper[:, c]) for c in range(3)], -1) / 2.0
    want = np.stack([ffmpeg_lut3d(s, str(lattice), "tetrahedral") for s in shaped]) * 255
    assert np.abs(out - want).max() <= 0.51


def test_lut_video_range_flags(frames, tmp_path):
    """LUT_IN_VIDEO_RANGE / LUT_OUT_VIDEO_RANGE (Resolve, camera LUTs) were refused as 'not a .cube LUT
    line'. Resolve looks full-range frames up at video levels (10-bit 64..940) and takes a
    video-range result back to full range: an identity table with both flags is still identity."""
    clip = Clip.from_array(frames)
    body = (tmp_path / "id.cube")
    write_cube(body, 17, lambda x: x)
    for flags, fn in (("LUT_IN_VIDEO_RANGE\nLUT_OUT_VIDEO_RANGE\n", lambda x: x),
                      ("LUT_IN_VIDEO_RANGE\n", lambda x: (64 + 876 * x) / 1023),
                      ("LUT_OUT_VIDEO_RANGE\n", lambda x: np.clip((x * 1023 - 64) / 876, 0, 1))):
        (tmp_path / "f.cube").write_text(flags + body.read_text())
        out = nodes.lut(Context("l"), clip, path=str(tmp_path / "f.cube")).to_array().astype(np.float32)
        assert np.abs(out - fn(frames / 255.0) * 255).max() <= 0.51, flags


def ffmpeg_cdl(frames: np.ndarray, slope, offset, power, sat) -> np.ndarray:
    """ASC CDL by FFmpeg's own filters at 16 bits: lutrgb for slope/offset/power (clamped, as the ASC
    defines it), colorchannelmixer for saturation around Rec. 709 luma. Float RGB back."""
    import subprocess
    from nodes.io.video_write import ffmpeg_exe
    n, h, w, _ = frames.shape
    sop = ":".join(f"{c}='maxval*pow(clip(val/maxval*{s}+{o},0,1),{p})'"
                   for c, s, o, p in zip("rgb", slope, offset, power))
    y = (0.2126, 0.7152, 0.0722)
    mix = ":".join(f"{o}{i}={(sat if o == i else 0) + (1 - sat) * y[k]}"
                   for o in "rgb" for k, i in enumerate("rgb"))
    wide = frames.astype(np.uint16) * 257
    done = subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb48le", "-s", f"{w}x{h}",
                           "-i", "-", "-vf", f"lutrgb={sop},colorchannelmixer={mix}", "-f", "rawvideo",
                           "-pix_fmt", "rgb48le", "-"], input=wide.tobytes(), capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.uint16).reshape(n, h, w, 3) / 65535.0


CC = """<?xml version="1.0" encoding="UTF-8"?>
<ColorCorrection id="A001C003">
  <SOPNode>
    <Description>from set</Description>
    <Slope>1.2 0.95 0.8</Slope>
    <Offset>-0.02 0.01 0.05</Offset>
    <Power>0.9 1.1 1.25</Power>
  </SOPNode>
  <SatNode>
    <Saturation>1.3</Saturation>
  </SatNode>
</ColorCorrection>
"""


def test_cdl_numbers_match_ffmpeg(frames):
    """color.cdl applies slope, offset, power then saturation as the ASC CDL defines them; FFmpeg's
    lutrgb and colorchannelmixer, at 16 bits, are the reference."""
    clip = Clip.from_array(frames)
    out = nodes.cdl(Context("c"), clip, slope="1.2 0.95 0.8", offset="-0.02, 0.01, 0.05", power="0.9 1.1 1.25",
                    saturation=0.6).to_array().astype(np.float32)
    want = ffmpeg_cdl(frames, (1.2, 0.95, 0.8), (-0.02, 0.01, 0.05), (0.9, 1.1, 1.25), 0.6) * 255
    assert np.abs(out - want).max() <= 0.6
    # A single number stands for all three channels; saturation 0 leaves Rec. 709 luma.
    grey = nodes.cdl(Context("c"), clip, slope="1.1", saturation=0.0).to_array()
    want = (np.clip(frames / 255.0 * 1.1, 0, 1) @ np.array([0.2126, 0.7152, 0.0722])) * 255
    assert np.abs(grey.astype(np.float32) - want[..., None]).max() <= 0.51


def test_cdl_reads_cc_ccc_and_cdl_files(frames, tmp_path):
    """The .cc a DIT hands over, the same correction in a namespaced .ccc collection and in a .cdl
    (Resolve's export) give one result, the file's numbers given as numbers; an id picks one of a collection;
    the numbers of the node go on top of the file's."""
    clip = Clip.from_array(frames)
    (tmp_path / "shot.cc").write_text(CC)
    body = CC.split("\n", 1)[1]
    other = body.replace('id="A001C003"', 'id="other"').replace("1.2 0.95 0.8", "0.5 0.5 0.5")
    (tmp_path / "day1.ccc").write_text('<ColorCorrectionCollection xmlns="urn:ASC:CDL:v1.01">\n'
                                       + other + body + "</ColorCorrectionCollection>\n")
    (tmp_path / "edit.cdl").write_text('<ColorDecisionList xmlns="urn:ASC:CDL:v1.01"><ColorDecision>\n'
                                       + body.replace("SatNode", "SATNode") + "</ColorDecision></ColorDecisionList>\n")
    want = nodes.cdl(Context("c"), clip, slope="1.2 0.95 0.8", offset="-0.02 0.01 0.05", power="0.9 1.1 1.25",
                     saturation=1.3).to_array()
    for name, kw in (("shot.cc", {}), ("day1.ccc", {"correction": "A001C003"}), ("edit.cdl", {})):
        got = nodes.cdl(Context("c"), clip, path=str(tmp_path / name), **kw).to_array()
        np.testing.assert_array_equal(got, want, err_msg=name)
    first = nodes.cdl(Context("c"), clip, path=str(tmp_path / "day1.ccc")).to_array()
    assert np.abs(first.astype(int) - want).max() > 20         # the collection's first is "other"
    trimmed = nodes.cdl(Context("c"), clip, path=str(tmp_path / "shot.cc"), offset="0.05").to_array()
    x = np.clip(want / 255.0 + 0.05, 0, 1) * 255
    assert np.abs(trimmed.astype(np.float32) - x).max() <= 1.01    # the file's result rounded once on the way
    with pytest.raises(NodeError, match="no ColorCorrection with id 'A002' \\(its ids: 'other', 'A001C003'\\)"):
        nodes.cdl(Context("c"), clip, path=str(tmp_path / "day1.ccc"), correction="A002")
    (tmp_path / "bad.cc").write_text("LUT_3D_SIZE 2\n")
    with pytest.raises(NodeError, match="not an ASC CDL file"):
        nodes.cdl(Context("c"), clip, path=str(tmp_path / "bad.cc"))
    with pytest.raises(NodeError, match="give one number for all channels or three"):
        nodes.cdl(Context("c"), clip, slope="1 2")
    with pytest.raises(NodeError, match="power must be above 0"):
        nodes.cdl(Context("c"), clip, power="1 0 1")


def write_3dl(path, size, fn, mesh=None, out_top=4095, header=""):
    """A .3dl as Nuke writes it: input levels (10-bit), then integer rows with blue changing fastest."""
    g = np.linspace(0, 1, size)
    r, gr, b = np.meshgrid(g, g, g, indexing="ij")
    rgb = np.round(fn(np.stack([r, gr, b], -1).reshape(-1, 3)) * out_top).astype(int)
    mesh = [min(1023, 64 * (1024 // 64 // (size - 1)) * i) for i in range(size)] if mesh is None else mesh
    path.write_text(header + " ".join(map(str, mesh)) + "\n" + "\n".join(f"{a} {b} {c}" for a, b, c in rgb) + "\n")
    return str(path)


def test_3dl_luts_read_as_nuke_and_flame_write_them(frames, tmp_path):
    """.3dl (Nuke, Flame, Lustre) was read as a broken .cube ('not a .cube LUT line'). FFmpeg's lut3d reads
    the same 17-point, 12-bit file: the reference."""
    clip = Clip.from_array(frames)
    lut = write_3dl(tmp_path / "look.3dl", 17, random_lut(17, seed=5), header="# Nuke\n")
    out = nodes.lut(Context("l"), clip, path=lut).to_array().astype(np.float32)
    want = np.stack([ffmpeg_lut3d(color.to_float(f), lut, "tetrahedral") for f in frames]) * 255
    assert np.abs(out - want).max() <= 0.6          # FFmpeg divides by 4096 where 4095 is white
    # Lustre's header and 10-bit outputs (told by their largest value, as OpenColorIO tells them).
    ten = write_3dl(tmp_path / "ten.3dl", 17, random_lut(17, seed=5), out_top=1023, header="3DMESH\nMesh 4 10\n")
    assert np.abs(nodes.lut(Context("l"), clip, path=ten).to_array().astype(np.float32) - want).max() <= 1.1
    # An uneven mesh puts the table's points where it says: a table holding its own input is identity.
    mesh = [0, 100, 300, 1023]
    pts = np.array(mesh) / 1023
    ident = write_3dl(tmp_path / "uneven.3dl", 4, lambda x: pts[np.round(x * 3).astype(int)], mesh=mesh)
    out = nodes.lut(Context("l"), clip, path=ident).to_array()
    assert np.abs(out.astype(int) - frames).max() <= 1
    (tmp_path / "grade.csp").write_text("CSPLUTV100\n3D\n")
    with pytest.raises(NodeError, match="reads .cube .* and .3dl .* not .csp: export this look as a .cube"):
        nodes.lut(Context("l"), clip, path=str(tmp_path / "grade.csp"))


def test_a_flat_reference_is_refused_by_name_instead_of_painting_every_frame_its_colour(frames):
    """A grey card or a blank frame as the reference has no spread: Reinhard scaled every frame's contrast to
    nothing and histogram matching sent every level to one, so the clip came out a flat rectangle of that colour
    with nothing said. Both nodes that match colours now refuse it, naming the picture."""
    from nodes.stylize.nodes import color_transfer
    clip = Clip.from_array(frames)
    grey = np.full((32, 48, 3), 128, np.uint8)
    for method in ("reinhard", "histogram"):
        with pytest.raises(NodeError, match=r"^color.match: the reference image is one flat colour .*color.grade"):
            nodes.match(Context("m"), clip, reference=grey, method=method)
        with pytest.raises(NodeError, match=r"^stylize.color_transfer: the style image is one flat colour"):
            color_transfer(Context("s"), clip, grey, method=method)
    blank = frames.copy()
    blank[0] = 0                                # a clip opening on black
    with pytest.raises(NodeError, match=r"^color.match: reference frame 0 of the clip is one flat colour"):
        nodes.match(Context("m"), Clip.from_array(blank), frame=0)
    # A dim, low-contrast picture is still a palette: matched, not refused.
    dim = (footage(1, 48, 32, seed=4)[0] // 16 + 20).astype(np.uint8)
    out = nodes.match(Context("m"), clip, reference=dim).to_array()
    assert out.std() > 1.0 and abs(float(out.mean()) - float(dim.mean())) < 6
