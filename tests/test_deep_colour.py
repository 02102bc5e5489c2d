"""Plates deeper than 8 bits (EXR, 16-bit TIFF/PNG, 10-bit DPX) through the nodes that can keep their depth, and
a plain word from the ones that cannot. Files are read back with the OpenEXR bindings, OpenCV and FFmpeg, not
Kinograph's readers."""
import numpy as np
import pytest

OpenEXR = pytest.importorskip("OpenEXR")

from graph_engine.api import Session, load_workflow  # noqa: E402

H, W = 16, 48
# Linear levels a plate holds: deep shadows 8-bit sRGB cannot tell apart, grey, white, a glow at 8.
LEVELS = np.array([0.0004, 0.0006, 0.0008, 0.18, 1.0, 8.0], np.float32)


def plate_pixels(i: int = 0) -> np.ndarray:
    """HxWx3 float32: the levels in bands of 8 columns, red, green and blue apart."""
    band = np.repeat(LEVELS, W // len(LEVELS)) * (1 + 0.25 * i)
    rgb = np.stack([band, band * 0.5, band * 0.25], -1)
    return np.ascontiguousarray(np.broadcast_to(rgb, (H, W, 3))).astype(np.float32)


def write_plate(folder, n: int = 2):
    folder.mkdir(exist_ok=True)
    for i in range(n):
        rgb = plate_pixels(i).astype(np.float16)
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with OpenEXR.File(header, {c: np.ascontiguousarray(rgb[..., k]) for k, c in enumerate("RGB")}) as f:
            f.write(str(folder / f"shot.{1001 + i}.exr"))


def read_exr(path) -> np.ndarray:
    with OpenEXR.File(str(path), separate_channels=True) as f:
        ch = f.channels()
        return np.stack([ch[c].pixels.astype(np.float32) for c in "RGB"], -1)


PLATE = "  plate: {type: io.load_frames, params: {path: plate/shot.####.exr}}\n"


def run(tmp_path, rest: str, source: str = PLATE) -> dict:
    """Run `source` (the EXR plate) -> `rest`; the log lines by node."""
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n" + source + rest)
    logs: dict = {}

    def on_event(e):
        if e.get("event") == "log":
            logs.setdefault(e["node"], []).append(e["message"])
    res = Session().run(load_workflow(str(wf)), on_event=on_event)
    assert res.ok, res.failed
    return logs


def test_a_graded_resized_flipped_exr_plate_keeps_its_highlights_and_shadows(tmp_path):
    """EXR plate -> exposure -1 -> resize -> flip -> EXR came back clipped at 1.0 (the glow of 8.0 read 0.5)
    with the three shadow levels merged into one 8-bit code. The float pixels now go through all three."""
    write_plate(tmp_path / "plate")
    logs = run(tmp_path, "  grade: {type: color.grade, inputs: {video: plate.video}, params: {exposure: -1.0}}\n"
                         "  size: {type: video.resize, inputs: {video: grade.video}, params: {width: 24}}\n"
                         "  flip: {type: video.flip, inputs: {video: size.video}}\n"
                         "  big: {type: upscale.resize, inputs: {video: flip.video}, params: {scale: 2, method: nearest}}\n"
                         "  save: {type: io.save_frames, inputs: {video: big.video}, params: {path: out, format: exr}}\n")
    got = read_exr(tmp_path / "out" / "frame_001002.exr")
    assert got.shape == (H, W, 3)
    want = plate_pixels(1)[:, ::-1] * 0.5          # half the light, mirrored; area-halved then doubled: the same
    assert np.allclose(got, want, rtol=2e-3, atol=0), (got[0, ::4, 0], want[0, ::4, 0])
    assert got.max() == pytest.approx(8.0 * 1.25 * 0.5, rel=1e-3)
    assert len(np.unique(got[0, :, 0])) == 6        # every level its own, the three shadows included
    assert not any("8-bit" in m for ms in logs.values() for m in ms), logs


def test_grade_on_float_agrees_with_the_8_bit_grade_within_range():
    """The float grade is the 8-bit one before rounding wherever the picture is within 0..1."""
    from nodes.color.grade import grade_frame, grade_linear
    from nodes.common.color import linear_to_srgb, srgb_to_linear, to_uint8
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    lin = srgb_to_linear(frame.astype(np.float32) / 255.0)
    for settings in ((0.3, 1.2, 0.8, 5000.0, 0.1, 1.3), (-1.0, 0.7, 1.4, 8000.0, -0.2, 0.8)):
        a = grade_frame(frame, *settings).astype(int)
        b = to_uint8(linear_to_srgb(grade_linear(lin, *settings))).astype(int)
        inside = (a > 0) & (a < 255)            # the 8-bit grade clips; the float one keeps what is outside
        assert np.abs(a - b)[inside].max() <= 1


def test_a_node_that_works_in_8_bits_says_so_on_a_float_plate(tmp_path):
    """stylize.cartoon has no float path: the plate's highlights were clipped at it with nothing said. It
    now says so; a metric (no picture out) and a grade (float kept) say nothing."""
    write_plate(tmp_path / "plate")
    logs = run(tmp_path, "  poster: {type: stylize.cartoon, inputs: {video: plate.video}}\n"
                         "  grade: {type: color.grade, inputs: {video: plate.video}, params: {exposure: 1.0}}\n"
                         "  sharp: {type: metrics.sharpness, inputs: {video: plate.video}}\n"
                         "  save: {type: io.save_frames, inputs: {video: poster.video}, params: {path: out, format: exr}}\n")
    assert any(m.startswith("stylize.cartoon works on 8-bit sRGB frames") and "clipped at 1.0" in m
               for m in logs["poster"]), logs
    assert "grade" not in logs and "sharp" not in logs, logs
    assert read_exr(tmp_path / "out" / "frame_001001.exr").max() <= 1.0      # as said


def srgb(x):
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def cineon(lin):
    """Nuke's Cineon encoding (10-bit codes) of linear light, written out again here."""
    black = 10 ** ((95 - 685) * 0.002 / 0.6)
    return np.clip(685 + np.log10(np.maximum(lin * (1 - black) + black, 1e-10)) * 0.6 / 0.002, 0, 1023)


def read_dpx(path) -> np.ndarray:
    """The 10-bit codes FFmpeg decodes from a DPX file."""
    import av
    with av.open(str(path)) as c:
        frame = next(c.decode(c.streams.video[0]))
    return frame.to_ndarray(format="rgb48le").astype(np.float64) / 65535 * 1023


def test_an_exr_plate_goes_out_as_10_bit_log_dpx_with_its_frame_numbers(tmp_path):
    """io.save_frames had no DPX. It writes 10-bit Cineon log (as film scans are exchanged) from the float
    pixels, highlights over 1.0 included, with each frame's number in the film header."""
    import struct
    write_plate(tmp_path / "plate")
    run(tmp_path, "  grade: {type: color.grade, inputs: {video: plate.video}, params: {exposure: 0.5}}\n"
                  "  save: {type: io.save_frames, inputs: {video: grade.video}, params: {path: out, format: dpx}}\n")
    path = tmp_path / "out" / "frame_001002.dpx"
    head = path.read_bytes()[:2048]
    assert head[:4] == b"SDPX" and head[800:804] == bytes([50, 1, 1, 10])     # RGB, printing density, 10 bits
    assert struct.unpack(">I", head[1712:1716])[0] == 1002
    want = cineon(plate_pixels(1).astype(np.float16).astype(np.float64) * 2 ** 0.5)
    got = read_dpx(path)
    assert np.abs(got - want).max() <= 0.51
    assert got[0, -1, 0] > 900                  # the glow of 8 x 1.25 x 1.41: code 958, not white's 685


def test_a_16_bit_tiff_plate_keeps_its_depth_through_a_grade_to_tiff_and_exr(tmp_path):
    """A 16-bit TIFF plate was read as 8 bits: its shadows came out of a grade in 8-bit steps (the three
    deep levels one code). It now keeps 16 bits through the grade into a 16-bit TIFF and an EXR; a PNG
    render says it is 8-bit."""
    import cv2
    (tmp_path / "tif").mkdir()
    code = np.round(srgb(np.minimum(plate_pixels(0), 1.0)) * 65535).astype(np.uint16)
    for i in range(2):
        assert cv2.imwrite(str(tmp_path / "tif" / f"scan.{1001 + i}.tif"), code[..., ::-1])
    logs = run(tmp_path, "  grade: {type: color.grade, inputs: {video: plate.video}, params: {exposure: 2.0}}\n"
                         "  tif: {type: io.save_frames, inputs: {video: grade.video}, params: {path: t, format: tif}}\n"
                         "  exr: {type: io.save_frames, inputs: {video: grade.video}, params: {path: e, format: exr}}\n"
                         "  png: {type: io.save_frames, inputs: {video: grade.video}, params: {path: p}}\n",
               source="  plate: {type: io.load_frames, params: {path: tif/scan.####.tif}}\n")
    lin = np.where(code / 65535 <= 0.04045, code / 65535 / 12.92, ((code / 65535 + 0.055) / 1.055) ** 2.4) * 4
    got = cv2.imread(str(tmp_path / "t" / "frame_001001.tif"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert got.dtype == np.uint16
    assert np.abs(got.astype(np.float64) - np.round(srgb(lin) * 65535)).max() <= 2
    assert len(np.unique(got[0, :24, 0])) == 3                      # the three deep shadows apart
    exr = read_exr(tmp_path / "e" / "frame_001001.exr")
    assert np.allclose(exr, lin, rtol=2e-3, atol=1e-6) and exr.max() == pytest.approx(4.0, rel=1e-3)
    assert any(m.startswith("png frames are 8-bit") for m in logs["png"]), logs
    assert "tif" not in logs and "exr" not in logs and "grade" not in logs, logs


def luma_codes(path) -> np.ndarray:
    """The coded 10-bit luma plane of a video's first frame."""
    import av
    with av.open(str(path)) as c:
        f = next(c.decode(c.streams.video[0]))
        assert f.format.name == "yuv422p10le", f.format.name
        return np.frombuffer(f.planes[0], np.uint16).reshape(f.height, -1)[:, :f.width].astype(int)


def write_prores_ramp(path, low: float) -> None:
    """3 frames of 10-bit ProRes 422 HQ (Rec. 709), 256x32: a grey ramp from `low` to `low` + 0.06 across."""
    import subprocess
    import imageio_ffmpeg
    ramp = np.round((low + 0.06 * np.linspace(0, 1, 256)) * 65535).astype(np.uint16)
    rgb = np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (32, 256, 3)))
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb48le",
           "-s", "256x32", "-r", "24", "-i", "-", "-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le",
           "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", str(path)]
    subprocess.run(cmd, input=np.concatenate([rgb] * 3).tobytes(), check=True)


def test_a_10_bit_prores_plate_goes_out_as_10_bit_prores(tmp_path):
    """ProRes in, trimmed, ProRes out: the frames went through 8 bits, so a slow 10-bit ramp (64 codes over
    256 pixels) came back in steps of 4 codes. Now each code of the source is its own in the render;
    an h264 render of the same says it is 8-bit."""
    write_prores_ramp(tmp_path / "in.mov", 0.3)
    logs = run(tmp_path, "  cut: {type: video.trim, inputs: {video: plate.video}, params: {start: 1}}\n"
                         "  save: {type: io.save_video, inputs: {video: cut.video}, params: {path: out.mov, codec: prores}}\n"
                         "  web: {type: io.save_video, inputs: {video: cut.video}, params: {path: out.mp4}}\n",
               source="  plate: {type: io.load_video, params: {path: in.mov}}\n")
    src, out = luma_codes(tmp_path / "in.mov")[16], luma_codes(tmp_path / "out.mov")[16]
    assert len(np.unique(src)) >= 50
    assert len(np.unique(out)) >= len(np.unique(src)) - 2       # 8 bits gave about a quarter of them
    assert np.abs(out[8:-8] - src[8:-8]).max() <= 2
    assert any(m.startswith("h264 is written from the 8-bit frames") for m in logs["web"]), logs
    assert "save" not in logs, logs


def test_the_16_bit_tables_agree_with_the_curves():
    """The tables that decode and encode 16-bit sRGB (the curve on every pixel took longer than decoding a
    1080p frame) give the curves' values: decoding exactly, encoding within one 16-bit code, NaN black."""
    from nodes.common.color import code16_to_linear, linear_to_srgb, linear_to_srgb16, srgb_to_linear
    codes = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(code16_to_linear(codes), srgb_to_linear(codes.astype(np.float32) / 65535))
    lin = np.concatenate([np.linspace(0, 1.2, 200001, dtype=np.float32), [np.nan, -0.0, -1.0, np.inf]])
    want = np.round(np.clip(linear_to_srgb(np.nan_to_num(lin, nan=0.0, posinf=1.0)), 0, 1) * 65535)
    got = linear_to_srgb16(lin).astype(int)
    assert np.abs(got - want).max() <= 1 and list(got[-4:]) == [0, 0, 0, 65535]


def write_exr(path, rgba):
    px = rgba.astype(np.float16)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {c: np.ascontiguousarray(px[..., k]) for k, c in enumerate("RGBA"[:px.shape[-1]])}) as f:
        f.write(str(path))


def read_exr_rgba(path) -> np.ndarray:
    with OpenEXR.File(str(path), separate_channels=True) as f:
        ch = f.channels()
        return np.stack([ch[c].pixels.astype(np.float32) for c in "RGBA" if c in ch], -1)


def cg_element(i: int = 0) -> np.ndarray:
    """HxWx4 premultiplied linear RGBA: opaque with a highlight of 8 (columns 0-11), alpha 0.5 over colour 3
    (12-23), transparent (24-35), a glow that adds light with no alpha (36-47), as a CG render holds them."""
    px = np.zeros((H, W, 4), np.float32)
    px[:, :12] = [8.0 + i, 4.0, 2.0, 1.0]
    px[:, 12:24] = [1.5, 0.75, 0.25, 0.5]
    px[:, 36:] = [0.5, 0.25, 0.0, 0.0]
    return px


def over_overs(tmp_path, element: str, blend: str = "linear", plate: str = PLATE) -> dict:
    return run(tmp_path, element + f"  over: {{type: video.over, inputs: {{video: cg.video, background: plate.video}}, "
                                   f"params: {{blend: {blend}}}}}\n"
                                   "  save: {type: io.save_frames, inputs: {video: over.video}, params: {path: out, "
                                   "format: exr}}\n", source=plate)


def test_a_cg_element_laid_over_an_exr_plate_keeps_its_light_in_the_exr(tmp_path):
    """video.over worked in 8 bits: an EXR element's highlight of 8 over an EXR plate came out 1.0 and the
    plate's glow under its transparent part clipped too. It now merges the float pixels as Nuke's Merge over
    does, A + B (1 - a), a glow without alpha adding its light."""
    write_plate(tmp_path / "plate")
    (tmp_path / "cg").mkdir()
    for i in range(2):
        write_exr(tmp_path / "cg" / f"cg.{1001 + i}.exr", cg_element(i))
    logs = over_overs(tmp_path, "  cg: {type: io.load_frames, params: {path: cg/cg.####.exr}}\n")
    for i in range(2):
        got = read_exr_rgba(tmp_path / "out" / f"frame_{1001 + i:06d}.exr")
        a = cg_element(i).astype(np.float16).astype(np.float32)
        b = plate_pixels(i).astype(np.float16).astype(np.float32)
        want = a[..., :3] + b * (1 - a[..., 3:])
        assert got.shape == (H, W, 3)                   # over an opaque plate: opaque
        assert np.allclose(got, want, rtol=1e-3, atol=1e-6), (got[0, ::4, 0], want[0, ::4, 0])
    assert got[0, 0, 0] == 9.0 and got[0, -1, 0] == pytest.approx(0.5 + 8.0 * 1.25, rel=1e-3)
    assert "over" not in logs, logs


def test_an_8_bit_element_over_an_exr_plate_and_over_a_transparent_background(tmp_path):
    """An 8-bit element (RGBA PNG) joins the float merge as its light, so the plate's highlights around it
    survive; over a background with alpha the EXR carries the merged alpha, a + b (1 - a)."""
    import cv2
    (tmp_path / "cg").mkdir()
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[:, :24] = [255, 128, 0, 255]
    rgba[:, 12:24, 3] = 128                               # straight colour, half covering
    for i in range(2):
        assert cv2.imwrite(str(tmp_path / "cg" / f"cg.{1001 + i}.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    (tmp_path / "plate").mkdir()
    back = np.concatenate([plate_pixels(0), np.full((H, W, 1), 0.25, np.float32)], -1)
    back[..., :3] *= 0.25                                # premultiplied by its alpha
    for i in range(2):
        write_exr(tmp_path / "plate" / f"shot.{1001 + i}.exr", back)
    over_overs(tmp_path, "  cg: {type: io.load_frames, params: {path: cg/cg.####.png}}\n")
    got = read_exr_rgba(tmp_path / "out" / "frame_001001.exr")
    fa = rgba[..., 3:] / 255.0
    fg = srgb_inverse(rgba[..., :3] / 255.0) * fa
    b = back.astype(np.float16).astype(np.float32)
    want = np.concatenate([fg, fa], -1) + b * (1 - fa)
    assert got.shape == (H, W, 4)
    assert np.allclose(got, want, rtol=2e-3, atol=1e-5), (got[0, ::4], want[0, ::4])
    assert got[0, -1, 0] == pytest.approx(2.0, rel=1e-3)   # the plate's glow of 8, a quarter covering


def srgb_inverse(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def test_an_encoded_over_of_an_exr_says_it_is_8_bit(tmp_path):
    """blend encoded mixes sRGB code values, which light above 1.0 has none of: it stays 8-bit, and says so."""
    write_plate(tmp_path / "plate")
    (tmp_path / "cg").mkdir()
    write_exr(tmp_path / "cg" / "cg.1001.exr", cg_element())
    logs = over_overs(tmp_path, "  cg: {type: io.load_frames, params: {path: cg/cg.####.exr}}\n", blend="encoded")
    assert any("video.over works on 8-bit sRGB frames" in m and "video.over (blend linear)" in m
               for m in logs["over"]), logs
    assert read_exr_rgba(tmp_path / "out" / "frame_001001.exr").max() <= 1.0


def no_clamp_cdl(lin, slope, offset, power, sat):
    """OpenColorIO's CDL_NO_CLAMP on the sRGB-coded values (the curve continued past 1), written out again."""
    code = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.maximum(lin, 0.0031308) ** (1 / 2.4) - 0.055)
    x = code * slope + offset
    x = np.where(x > 0, np.maximum(x, 0) ** power, x)
    y = (x @ np.array([0.2126, 0.7152, 0.0722]))[..., None]
    return srgb_inverse(y + sat * (x - y))


def test_a_cdl_on_an_exr_plate_keeps_the_light_above_1(tmp_path):
    """color.cdl worked in 8 bits: an EXR plate's glow of 8 came out of a slope of 0.8 at 1.0 in the EXR, and
    its three shadow levels as one. The float pixels now go through the CDL unclamped, as OCIO 2's (Nuke's
    OCIOCDLTransform), on the sRGB-coded values as the 8-bit path."""
    write_plate(tmp_path / "plate")
    logs = run(tmp_path, "  cdl: {type: color.cdl, inputs: {video: plate.video}, params: "
                         "{slope: '0.8 0.9 1.0', offset: '0.01 0 0', power: '1.1 1 0.9', saturation: 1.2}}\n"
                         "  save: {type: io.save_frames, inputs: {video: cdl.video}, params: {path: out, format: exr}}\n")
    got = read_exr(tmp_path / "out" / "frame_001002.exr")
    want = no_clamp_cdl(plate_pixels(1).astype(np.float16).astype(np.float64), np.array([0.8, 0.9, 1.0]),
                        np.array([0.01, 0, 0]), np.array([1.1, 1, 0.9]), 1.2)
    assert np.allclose(got, want, rtol=2e-3, atol=1e-5), (got[0, ::8], want[0, ::8])
    assert got[0, -1, 0] > 5                    # the glow of 10, a little less bright: not clipped at 1.0
    assert len(np.unique(got[0, :, 2])) == 6
    assert "cdl" not in logs, logs


def test_an_exr_frame_of_another_size_is_named(tmp_path):
    """An EXR sequence with one frame of another size failed an EXR render with "ValueError: all input arrays
    must have the same shape" (the float reader stacked them); it names the frame, as the 8-bit reader does."""
    write_plate(tmp_path / "plate", 3)
    write_exr(tmp_path / "plate" / "shot.1003.exr", np.ones((H // 2, W, 3), np.float32))
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n" + PLATE + "  save: {type: io.save_frames, inputs: {video: plate.video}, "
                                                      "params: {path: out, format: exr}}\n")
    res = Session().run(load_workflow(str(wf)))
    assert not res.ok
    said = str(res.failed)
    assert "shot.1003.exr is 48x8 but the sequence is 48x16" in said and "ValueError" not in said, said


def lut3d_numpy(x, table, lo, hi, tetrahedral):
    """A 3D LUT ([b, g, r, 3], .cube order) at coded values x [..., 3], written out again with numpy: inputs held
    to the domain; tetrahedral by walking from the cell's first corner to its last along the axes in the order
    of their fractions, largest first; trilinear as the weighted sum of the eight corners."""
    n = table.shape[0]
    p = np.clip((x - lo) / (hi - lo), 0, 1) * (n - 1)
    i = np.minimum(np.floor(p).astype(int), n - 2)
    f = p - i

    def corner(d):
        return table[i[..., 2] + d[..., 2], i[..., 1] + d[..., 1], i[..., 0] + d[..., 0]]
    if not tetrahedral:
        out = 0
        for d in np.ndindex(2, 2, 2):
            w = np.prod(np.where(np.array(d) == 1, f, 1 - f), -1)[..., None]
            out = out + w * corner(np.broadcast_to(np.array(d), i.shape))
        return out
    order = np.argsort(-f, -1)
    fs = np.take_along_axis(f, order, -1)
    d = np.zeros_like(i)
    out = (1 - fs[..., :1]) * corner(d)
    for k in range(3):
        np.put_along_axis(d, order[..., k:k + 1], 1, -1)
        out = out + (fs[..., k:k + 1] - (fs[..., k + 1:k + 2] if k < 2 else 0)) * corner(d)
    return out


def ramp_plate(folder):
    """A deep plate for LUTs: shadows 0.0005..0.05 (the 8-bit frames hold 13 codes of it) over 248 columns,
    red green and blue apart, then a glow of 3 (inside a domain to 2.0 coded) and 8 (past it)."""
    folder.mkdir()
    ramp = np.linspace(0.0005, 0.05, 248)
    band = np.concatenate([ramp, [3.0] * 4, [8.0] * 4])
    rgb = np.broadcast_to(np.stack([band, band * 0.8, band * 0.6], -1), (4, 256, 3)).astype(np.float32)
    write_exr(folder / "shot.1001.exr", rgb)
    return rgb.astype(np.float16).astype(np.float64)


def cube_rows(table) -> str:
    return "".join(" ".join(f"{v:.7f}" for v in row) + "\n" for row in table.reshape(-1, 3))


@pytest.mark.parametrize("interpolation", ["tetrahedral", "trilinear"])
def test_a_3d_lut_on_an_exr_plate_keeps_its_shadow_steps_and_its_light_above_1(tmp_path, interpolation):
    """color.lut worked in 8 bits: an EXR plate's shadow ramp came out of a .cube in 57 steps of 496 and its glow
    at 1.0. The float pixels now go through the LUT unrounded, on their sRGB-coded values as the 8-bit frames
    (the curve continued past 1): past DOMAIN_MAX held at its edge, the table's values above 1.0 kept."""
    src = ramp_plate(tmp_path / "plate")
    n = 17
    g = np.linspace(0.0, 2.0, n)
    b, gg, r = np.meshgrid(g, g, g, indexing="ij")
    table = np.stack([1.1 * r + 0.05 * gg, 0.9 * gg + 0.1 * r * b, 0.8 * b + 0.1 * r], -1) ** 1.2
    (tmp_path / "look.cube").write_text(f"DOMAIN_MIN 0 0 0\nDOMAIN_MAX 2 2 2\nLUT_3D_SIZE {n}\n" + cube_rows(table))
    logs = run(tmp_path, f"  lut: {{type: color.lut, inputs: {{video: plate.video}}, params: {{path: look.cube, "
                         f"interpolation: {interpolation}}}}}\n"
                         "  save: {type: io.save_frames, inputs: {video: lut.video}, params: {path: out, format: exr}}\n",
               source="  plate: {type: io.load_frames, params: {path: plate/shot.####.exr}}\n")
    got = read_exr(tmp_path / "out" / "frame_001001.exr").astype(np.float64)
    coded = np.where(src <= 0.0031308, src * 12.92, 1.055 * np.maximum(src, 0.0031308) ** (1 / 2.4) - 0.055)
    want = srgb_inverse(lut3d_numpy(coded, table.astype(np.float32), 0.0, 2.0, interpolation == "tetrahedral"))
    assert np.abs(got / want - 1).max() < 1e-3, np.abs(got / want - 1).max()     # half-float rounding
    assert len(np.unique(got[0, :248, 0])) == 248                  # each shadow level its own
    assert got[0, -1, 0] == pytest.approx(srgb_inverse(2.3 ** 1.2), rel=1e-3)      # the top corner: 10.2
    assert "lut" not in logs, logs


@pytest.mark.parametrize("kind", ["shaper", "1d"])
def test_a_shaper_or_1d_lut_on_an_exr_plate_reads_its_light_above_1(tmp_path, kind):
    """A LUT made for scene light (a 1D shaper over 0..4 coded, Resolve's layout, then a 3D table; or a 1D table
    alone over 0..4) gave an EXR plate's glow no room: the 8-bit frames stop at 1.0, so 3 and 8 came out as
    white's look. The float pixels reach the shaper's range; within 0..1 the float LUT is the 8-bit one unrounded."""
    src = ramp_plate(tmp_path / "plate")
    coded = np.where(src <= 0.0031308, src * 12.92, 1.055 * np.maximum(src, 0.0031308) ** (1 / 2.4) - 0.055)
    m = 33
    grid = np.linspace(0, 1, m)
    curve = np.stack([grid ** 0.5, grid ** 0.6, grid ** 0.7], -1)        # 0..4 squeezed into 0..1
    u = np.clip(coded / 4.0, 0, 1)
    shaped = np.stack([np.interp(u[..., c], grid, curve[:, c]) for c in range(3)], -1)
    if kind == "shaper":
        g = np.linspace(0, 1, 9)
        b, gg, r = np.meshgrid(g, g, g, indexing="ij")
        table = np.stack([2.5 * r * r + 0.1 * b, 1.5 * gg, 1.2 * b + 0.2 * gg * r], -1)
        text = f"LUT_1D_SIZE {m}\nLUT_1D_INPUT_RANGE 0 4\nLUT_3D_SIZE 9\n" + cube_rows(curve) + cube_rows(table)
        want = lut3d_numpy(shaped, table.astype(np.float32), 0.0, 1.0, True)
    else:
        text = f"LUT_1D_SIZE {m}\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 4 4 4\n" + cube_rows(curve)
        want = shaped
    (tmp_path / "look.cube").write_text(text)
    logs = run(tmp_path, "  lut: {type: color.lut, inputs: {video: plate.video}, params: {path: look.cube}}\n"
                         "  save: {type: io.save_frames, inputs: {video: lut.video}, params: {path: out, format: exr}}\n",
               source="  plate: {type: io.load_frames, params: {path: plate/shot.####.exr}}\n")
    got = read_exr(tmp_path / "out" / "frame_001001.exr").astype(np.float64)
    want = srgb_inverse(want)
    assert np.abs(got / want - 1).max() < 1e-3, np.abs(got / want - 1).max()
    assert len(np.unique(got[0, :248, 1])) == 248
    assert got[0, 250, 0] < got[0, 254, 0] * 0.9            # the glow of 3 and of 8 still apart
    assert "lut" not in logs, logs
    from nodes.common.color import to_float, to_uint8
    from nodes.common.lut import apply_lut, apply_lut_float, parse_cube
    frame = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    lut = parse_cube(str(tmp_path / "look.cube"))
    for strength in (1.0, 0.4):
        floats = apply_lut_float(to_float(frame), lut, strength)
        assert np.abs(to_uint8(floats).astype(int) - apply_lut(frame, lut, strength)).max() <= 1


def deep_clip(lin: np.ndarray):
    """A clip of float linear frames [n,H,W,3] as a deep plate reads: the 8-bit frames its sRGB view, clipped at
    1.0 (Clip.linear the floats)."""
    from graph_engine import Clip
    from nodes.common.color import linear_to_srgb, to_uint8
    view = to_uint8(linear_to_srgb(np.minimum(lin, 1.0)))
    return Clip(len(lin), 24.0, lin.shape[2], lin.shape[1], lambda a, b: view[a:b], chunk=4,
                linear=lambda a, b: lin[a:b])


def flickering_plate(n: int = 16, w: int = 96, h: int = 64, flicker: float = 0.15):
    """Real-photo footage as linear light with an exposure flicker (a gain of 0.85..1.15 a frame), a lamp of 4.0 in
    its top right corner and a shadow ramp (0.0005..0.02, 96 levels; 36 codes in 8 bits) along its foot."""
    from bench.footage import footage
    lin = srgb_inverse(footage(n, w, h, seed=1, noise=0.0) / 255.0)
    lin[:, :8, -12:] = 4.0
    lin[:, -6:] = np.linspace(0.0005, 0.02, w)[:, None]
    gain = np.random.default_rng(0).uniform(1 - flicker, 1 + flicker, n)
    return (lin * gain[:, None, None, None]).astype(np.float32), gain


def test_deflicker_on_a_deep_plate_evens_out_its_float_pixels(monkeypatch):
    """restore.deflicker worked in 8 bits: a flickering EXR plate's lamp of 4.0 came out at 1.0 and its shadow ramp
    in 8-bit steps. The tone it measures on the 8-bit frames now corrects the float pixels too, unrounded and
    unclipped: the lamp evens out above 1.0 as the picture does, every shadow level stays its own, and within
    0..1 the float result is the 8-bit one."""
    from nodes.common.color import linear_to_srgb, to_uint8
    from nodes.restore import nodes as restore_nodes
    from node_call import Nodes
    from graph_engine import clip
    from nodes.common.stream import Measures
    from nodes.restore import deflicker
    # Chunks of 4 frames, and one chunk's tones kept: the third chunk's are let go while out still holds its 8-bit
    # frames, and are measured again when its floats are read again.
    monkeypatch.setattr(clip, "CHUNK_BYTES", 4 * 96 * 64 * 3)
    monkeypatch.setattr(deflicker, "Measures", lambda size: Measures(4))
    lin, gain = flickering_plate()
    out = Nodes(restore_nodes).deflicker(None, deep_clip(lin))
    assert out.linear is not None
    got, frames = np.asarray(out.linear(0, len(lin))), out.to_array()
    assert np.array_equal(out.linear(8, 12), got[8:12])
    picture = lambda x: linear_to_srgb(np.minimum(x[:, 8:-6], 1.0)).mean(axis=(1, 2, 3))    # noqa: E731
    before, after = np.std(np.log(picture(lin))), np.std(np.log(picture(got)))
    in_8_bits = np.std(np.log(frames[:, 8:-6].mean(axis=(1, 2, 3))))
    assert after < 0.4 * before and after == pytest.approx(in_8_bits, rel=0.05), (before, after, in_8_bits)
    lamp = got[:, 2, -4, 0]
    assert lamp.min() > 3.0 and np.std(np.log(lamp)) < 0.25 * np.std(np.log(lin[:, 2, -4, 0])), lamp
    assert len(np.unique(got[5, -3, :, 1])) == 96, len(np.unique(got[5, -3, :, 1]))
    inside = (frames > 0) & (frames < 255) & (lin < 1.0)        # the 8-bit lamp is white's correction
    assert np.abs(to_uint8(linear_to_srgb(got)).astype(int) - frames)[inside].max() <= 1


def test_denoise_on_a_deep_plate_averages_its_float_pixels():
    """restore.denoise worked in 8 bits: a grainy EXR plate's lamp of 4.0 came out at 1.0 and its clean shadow ramp
    in 8-bit steps. The float pixels are now averaged with the weights the 8-bit frames give (the same flow, the
    same noise), unrounded: as much grain goes as in 8 bits, the lamp stays 4.0, every shadow level its own."""
    from nodes.common.color import linear_to_srgb, to_uint8
    from nodes.restore import nodes as restore_nodes
    from node_call import Nodes
    clean, _ = flickering_plate(8, flicker=0.0)
    coded = srgb(clean)
    grain = np.random.default_rng(2).normal(0, 4 / 255, coded.shape)
    grain[:, :8, -12:] = grain[:, -6:] = 0                                  # the lamp and the ramp are clean
    noisy = np.where(coded + grain <= 0.04045, (coded + grain) / 12.92, srgb_inverse(coded + grain))
    noisy = np.where(clean > 1, clean, noisy).astype(np.float32)
    out = Nodes(restore_nodes).denoise(None, deep_clip(noisy), sigma=4.0)
    assert out.linear is not None
    got, frames = np.asarray(out.linear(0, len(noisy))), out.to_array()
    psnr = lambda x: -10 * np.log10(np.mean((srgb(x[:, 8:-6]) - coded[:, 8:-6]) ** 2))       # noqa: E731
    in_8_bits = -10 * np.log10(np.mean((frames[:, 8:-6] / 255.0 - coded[:, 8:-6]) ** 2))
    assert psnr(got) > psnr(noisy) + 2 and psnr(got) == pytest.approx(in_8_bits, abs=0.5), (psnr(noisy), psnr(got),
                                                                                         in_8_bits)
    assert got[:, 2, -4].min() == pytest.approx(4.0, rel=1e-3)
    assert len(np.unique(got[3, -3, :, 1])) == 96 and len(np.unique(frames[3, -3, :, 1])) <= 36
    assert (np.diff(got[:, -3, :, 1]) > 0).all()                # a smooth ramp still, in every frame
    inside = (frames > 0) & (frames < 255)
    inside[:, :12, -16:] = False        # what the 8-bit lamp, clipped at white, lends its edge is less
    # The 8-bit average is rounded before its spatial pass, which OpenCV's 8-bit filter weighs by whole levels.
    apart = np.abs(to_uint8(linear_to_srgb(got)).astype(int) - frames)[inside]
    assert apart.max() <= 2 and apart.mean() < 0.3, (apart.max(), apart.mean())


@pytest.mark.parametrize("method", ["reinhard", "histogram"])
def test_colour_match_on_a_deep_plate_keeps_its_shadow_steps_and_its_light_above_1(method):
    """color.match worked in 8 bits: an EXR plate matched to a reference came out with its lamp of 4.0 at 1.0 and its
    shadow ramp in 36 codes of 96. The float pixels now get the correction the 8-bit frames get, unrounded: Reinhard's
    in Lab from linear light (L past 100 above white), the histogram's 256-level mapping interpolated and carried on
    past white. Within 0..1 the float result is the 8-bit one."""
    from skimage.color import lab2xyz, rgb2lab
    from skimage.color.colorconv import rgb_from_xyz
    from bench.footage import footage
    from nodes.color import nodes as color_nodes
    from nodes.color.match import lab_stats
    from nodes.common.color import linear_to_srgb, to_uint8
    from node_call import Nodes
    lin, _ = flickering_plate(3, flicker=0.0)
    reference = footage(1, 80, 60, seed=7, noise=0.0)[0]
    out = Nodes(color_nodes).match(None, deep_clip(lin), reference=reference, method=method, spread="frame")
    assert out.linear is not None
    got, frames = np.asarray(out.linear(0, len(lin)), np.float64), out.to_array()
    inside = (frames > 0) & (frames < 255) & (lin < 1.0)
    inside[:, -6:] = False          # the ramp falls between 8-bit levels, so between their mappings
    apart = np.abs(to_uint8(linear_to_srgb(got.astype(np.float32))).astype(int) - frames)[inside]
    assert apart.max() <= 1, apart.max()
    assert len(np.unique(got[1, -3, :, 1])) == 96 and len(np.unique(frames[1, -3, :, 1])) <= 36
    lamp = got[1, 2, -4]
    if method == "reinhard":        # written out with scikit-image: Lab of the coded light moved, back to linear
        (mean_r, std_r), (mean_f, std_f) = lab_stats(reference), lab_stats(deep_clip(lin).frame(1))
        lab = rgb2lab((1.055 * lin[1, 2, -4].astype(np.float64) ** (1 / 2.4) - 0.055)[None, None])
        want = lab2xyz((lab - mean_f) * std_r / std_f + mean_r)[0, 0] @ rgb_from_xyz.T
        assert lamp == pytest.approx(want, rel=2e-3), (lamp, want)
    assert lamp.min() > 1.2, lamp            # 8-bit: 1.0


def test_10_bit_log_footage_through_a_load_lut_keeps_its_depth_to_prores(tmp_path):
    """io.load_video's lut took 10-bit footage to the 8-bit frames only: a log ProRes through its LUT to Rec. 709
    came out of a 10-bit ProRes render in 8-bit steps (a slow ramp of 51 codes as 16). The LUT is now applied to the
    16-bit decode for the deep pixels too, so the render keeps a code for each of the source's."""
    write_prores_ramp(tmp_path / "in.mov", 0.4)
    grid = np.linspace(0, 1, 1024)
    (tmp_path / "log2709.cube").write_text("LUT_1D_SIZE 1024\n" + cube_rows(np.repeat(grid[:, None] ** 1.5, 3, 1)))
    logs = run(tmp_path, "  save: {type: io.save_video, inputs: {video: plate.video}, params: {path: out.mov, "
                         "codec: prores}}\n",
               source="  plate: {type: io.load_video, params: {path: in.mov, lut: log2709.cube}}\n")
    out, src = luma_codes(tmp_path / "out.mov")[16, 8:-8], luma_codes(tmp_path / "in.mov")[16, 8:-8]
    want = (((src - 64) / 876) ** 1.5) * 876 + 64           # the curve on video-range luma of a grey ramp
    assert np.abs(out - want).max() <= 2, np.abs(out - want).max()
    assert len(np.unique(out)) >= len(np.unique(src)) - 2, (len(np.unique(out)), len(np.unique(src)))
    assert "save" not in logs, logs


def test_dust_on_a_deep_plate_is_taken_off_its_float_pixels():
    """restore.dust worked in 8 bits: a scanned plate's specks were cleaned, but its lamp of 4.0 came out at 1.0 and
    its shadow ramp in 36 codes of 96. The float pixels are now cleaned where the 8-bit frames find specks, from the
    same aligned neighbours, and kept as they were elsewhere."""
    from nodes.restore import nodes as restore_nodes
    from node_call import Nodes
    clean, _ = flickering_plate(5, flicker=0.0)
    dirty = clean.copy()
    dirty[2, 20:26, 30:36] = srgb_inverse(np.maximum(srgb(clean[2, 20:26, 30:36]) - 0.4, 0.0))    # a dark blotch
    out = Nodes(restore_nodes).dust(None, deep_clip(dirty))
    assert out.linear is not None
    got, frames = np.asarray(out.linear(0, len(dirty))), out.to_array()
    speck = np.abs(srgb(got[2, 20:26, 30:36]) - srgb(clean[2, 20:26, 30:36])).mean() * 255
    assert speck < 20, speck                                            # was 102 levels darker
    assert np.abs(np.round(srgb(got[2, 20:26, 30:36]) * 255) - frames[2, 20:26, 30:36]).max() <= 1     # as in 8 bits
    away = np.ones(got.shape[:3], bool)
    away[2, 14:32, 24:42] = False
    assert np.allclose(got[away], dirty[away], rtol=1e-5, atol=1e-8)    # the rest as it was
    assert got[:, 2, -4].min() == pytest.approx(4.0, rel=1e-5) and len(np.unique(got[2, -3, :, 1])) == 96


def test_a_lut_takes_nan_and_infinite_pixels_of_a_cg_render_without_reading_off_its_table(tmp_path):
    """A CG render's NaN or infinite pixels had no place on the table: NaN went into the kernel's index (numba does
    not check it: memory outside the table was read), and infinity came out NaN (inf - inf in the blend). NaN is now
    looked up as black; infinity is held at the domain's edge as any light past it."""
    from nodes.common.lut import apply_lut_float, parse_cube
    g = np.linspace(0.0, 1.0, 5)
    b, gg, r = np.meshgrid(g, g, g, indexing="ij")
    table = np.stack([r * 2.0 + 0.1, gg * 1.5 + 0.05, b + 0.2], -1)
    (tmp_path / "l.cube").write_text("LUT_3D_SIZE 5\n" + cube_rows(table))
    (tmp_path / "one.cube").write_text("LUT_1D_SIZE 5\n" + cube_rows(np.stack([g * 2.0 + 0.1, g, g], -1)))
    px = np.array([[np.nan] * 3, [np.inf] * 3, [-np.inf] * 3, [0.5] * 3], np.float32)
    out = apply_lut_float(px, parse_cube(str(tmp_path / "l.cube")))
    assert np.allclose(out, [[0.1, 0.05, 0.2], [2.1, 1.55, 1.2], [0.1, 0.05, 0.2], [1.1, 0.8, 0.7]]), out
    one = apply_lut_float(px, parse_cube(str(tmp_path / "one.cube")))
    assert np.isfinite(one).all() and np.allclose(one[1:], [[2.1, 1, 1], [0.1, 0, 0], [1.1, 0.5, 0.5]]), one


@pytest.mark.parametrize("method", ["wiener", "richardson_lucy", "unsharp"])
def test_deblur_on_a_deep_plate_sharpens_its_float_pixels(method):
    """restore.deblur worked in 8 bits: a soft EXR plate's lamp of 4.0 came out at 1.0 and its shadow ramp in 36
    codes of 96. The float pixels now go through the same filter, on their sRGB-coded values as the 8-bit frames
    (the curve continued past 1.0), unrounded: within 0..1 the 8-bit result, the lamp's light kept."""
    import cv2
    from graph_engine.context import Context
    from nodes.common.color import linear_to_srgb, to_uint8
    from nodes.restore import nodes as restore_nodes
    from node_call import Nodes
    sharp, _ = flickering_plate(2, flicker=0.0)
    # Soft, as the lens made it, on 8-bit levels (so that the 8-bit frames hold the same picture); the lamp and the
    # shadow ramp as they were.
    coded = np.round(np.stack([cv2.GaussianBlur(f, (0, 0), 1.2) for f in srgb(sharp)]) * 255) / 255
    soft = srgb_inverse(coded).astype(np.float32)
    soft[:, :8, -12:], soft[:, -6:] = 4.0, sharp[:, -6:]
    out = Nodes(restore_nodes).deblur(Context("d"), deep_clip(soft), method=method, kernel="gaussian", sigma=1.2,
                                      balance=0.01, iterations=10)
    assert out.linear is not None
    got, frames = np.asarray(out.linear(0, 2)), out.to_array()
    inside = (frames > 0) & (frames < 255)
    inside[:, :24, -32:] = inside[:, -14:] = False      # the 8-bit lamp, clipped at white, rings less around it
    apart = np.abs(to_uint8(linear_to_srgb(got)).astype(int) - frames)[inside]
    assert apart.max() <= 1, apart.max()
    picture = np.s_[:, 12:-10, 6:-6]
    err = lambda x: np.abs(srgb(x[picture]) - srgb(sharp[picture])).mean() * 255      # noqa: E731
    assert err(got) < err(soft), (err(got), err(soft))      # sharper than it came
    assert got[:, 3, -5].min() > 3.0 and len(np.unique(got[1, -3, 6:-6, 1])) == 84
