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


def run(tmp_path, rest: str) -> dict:
    """Run plate -> `rest`; the log lines by node."""
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  plate: {type: io.load_frames, params: {path: plate/shot.####.exr}}\n" + rest)
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
    """color.cdl and stylize.posterize have no float path: the plate's highlights were clipped at them with
    nothing said. They now say so; a metric (no picture out) and a grade (float kept) say nothing."""
    write_plate(tmp_path / "plate")
    logs = run(tmp_path, "  cdl: {type: color.cdl, inputs: {video: plate.video}, params: {slope: '0.5'}}\n"
                         "  grade: {type: color.grade, inputs: {video: plate.video}, params: {exposure: 1.0}}\n"
                         "  sharp: {type: metrics.sharpness, inputs: {video: plate.video}}\n"
                         "  save: {type: io.save_frames, inputs: {video: cdl.video}, params: {path: out, format: exr}}\n")
    assert any(m.startswith("color.cdl works on 8-bit sRGB frames") and "clipped at 1.0" in m
               for m in logs["cdl"]), logs
    assert "grade" not in logs and "sharp" not in logs, logs
    assert read_exr(tmp_path / "out" / "frame_001001.exr").max() <= 1.0      # as said
