"""Files shaped as DV, DVD and broadcast video are: interlaced fields and non-square pixels. The loader
gives the pictures players show (before: combed frames, and a 16:9 picture squeezed into 720x480)."""
import subprocess

import numpy as np
import pytest

from graph_engine.api import Session, load_workflow
from nodes.io.video_read import load_video
from nodes.io.video_write import ffmpeg_exe

W, H = 160, 96


def progressive(n: int) -> np.ndarray:
    """n frames at 60 a second of a bright disc crossing a soft gradient, 3 pixels a frame."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    back = 60 + 40 * np.sin(x / 9.0) + 30 * np.cos(y / 7.0)
    out = []
    for i in range(n):
        disc = ((x - 20 - 3 * i) ** 2 + (y - H / 2) ** 2) < 18 ** 2
        img = np.where(disc, 235.0, back)
        out.append(np.repeat(img[..., None], 3, 2))
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def encode(frames: np.ndarray, path, fps: str, args) -> None:
    n, h, w, _ = frames.shape
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", fps, "-i", "-", *args, str(path)], input=frames.tobytes(), check=True)


@pytest.fixture(scope="module")
def interlaced(tmp_path_factory):
    """40 progressive frames at 60/s woven into 20 interlaced frames at 30/s, top field first (each
    frame's top field from the earlier picture), as a camcorder records them."""
    src = progressive(40)
    path = tmp_path_factory.mktemp("shapes") / "camcorder.mp4"
    encode(src, path, "60", ["-vf", "tinterlace=interleave_top,fieldorder=tff", "-flags", "+ilme+ildct",
                             "-c:v", "libx264", "-crf", "4", "-pix_fmt", "yuv420p"])
    return src, path


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def test_interlaced_video_is_deinterlaced_as_players_show_it(interlaced):
    src, path = interlaced
    notes = []
    clip = load_video(str(path), log=notes.append)
    assert (clip.length, round(clip.fps, 3)) == (20, 30.0)      # a picture per frame, at its time
    got = clip.to_array()
    raw = load_video(str(path), deinterlace="off").to_array()
    # Each frame shows the moment of its top field: the even pictures of the 60/s source.
    want = src[0::2]
    on = np.mean([psnr(g, w) for g, w in zip(got, want)])
    off = np.mean([psnr(r, w) for r, w in zip(raw, want)])
    assert on > off + 5, (on, off)
    assert any("interlaced (tff)" in n and "deinterlaced" in n for n in notes)


def test_a_deinterlaced_range_read_alone_equals_the_same_frames_of_a_whole_read(interlaced):
    """Shards and random access read ranges after a seek: the deinterlacer needs the frame before the
    range, and a range must come out as it does in a whole read."""
    _, path = interlaced
    whole = load_video(str(path)).to_array()
    for a, b in ((7, 12), (19, 20), (0, 3)):
        assert np.array_equal(load_video(str(path)).frames(a, b), whole[a:b]), (a, b)


def test_a_capture_that_does_not_say_it_is_interlaced_is_deinterlaced_when_asked(interlaced, tmp_path):
    src, path = interlaced
    unflagged = tmp_path / "capture.mkv"      # the same fields, stored as if progressive
    encode(src, unflagged, "60", ["-vf", "tinterlace=interleave_top,setfield=prog", "-c:v", "ffv1"])
    notes = []
    assert np.array_equal(load_video(str(unflagged), log=notes.append).to_array(),
                          load_video(str(unflagged), deinterlace="off").to_array())
    assert notes == []
    forced = load_video(str(unflagged), deinterlace="top field first").to_array()
    raw = load_video(str(unflagged), deinterlace="off").to_array()
    want = src[0::2]
    assert np.mean([psnr(f, w) for f, w in zip(forced, want)]) > np.mean([psnr(r, w) for r, w in zip(raw, want)]) + 5


def test_non_square_pixels_are_stretched_to_the_picture_players_show(tmp_path):
    """A 16:9 DVD picture is stored 720x480 with pixels 32:27 as wide as tall. A square drawn in the
    picture players show must come out square."""
    shown = np.full((2, 480, 853, 3), 30, np.uint8)
    shown[:, 180:300, 360:480] = 220                       # a 120x120 square as players show it
    import cv2
    stored = np.stack([cv2.resize(f, (720, 480), interpolation=cv2.INTER_AREA) for f in shown])
    path = tmp_path / "dvd.mkv"
    encode(stored, path, "30000/1001", ["-vf", "setsar=32/27", "-c:v", "ffv1"])
    notes = []
    clip = load_video(str(path), log=notes.append)
    assert (clip.width, clip.height) == (853, 480)
    lit = clip.to_array()[0, ..., 0] > 125
    rows, cols = np.flatnonzero(lit.any(1)), np.flatnonzero(lit.any(0))
    assert (rows[-1] - rows[0] + 1, abs(cols[-1] - cols[0] + 1 - 120) <= 1) == (120, True)
    assert any("not square (aspect 32:27)" in n and "720x480 to 853x480" in n for n in notes)
    assert load_video(str(path), width=426).height == 240     # a size asked for keeps the shown shape


def test_the_load_video_node_says_what_it_did_in_the_run_log(interlaced, tmp_path):
    _, path = interlaced
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"kinograph: 1\nnodes:\n  load: {{type: io.load_video, params: {{path: '{path}'}}}}\n"
                  f"  save: {{type: io.save_video, inputs: {{video: load.video}}, params: {{path: out.mkv, "
                  f"codec: ffv1}}}}\n")
    logs = []
    res = Session().run(load_workflow(str(wf)), on_event=lambda e: logs.append(e))
    assert res.ok
    said = [e["message"] for e in logs if e["event"] == "log" and e["node"] == "load"]
    assert any("deinterlaced" in m for m in said)
    assert load_video(str(tmp_path / "out.mkv"), deinterlace="off").length == 20
