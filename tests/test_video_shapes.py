"""Files shaped as DV, DVD, broadcast, phone and compositing video are: interlaced fields, non-square pixels,
HDR and transparency. The loader gives the pictures players show (before: combed frames, a 16:9 picture
squeezed into 720x480, washed-out HDR, and the key colour a transparent pixel happens to store)."""
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


# BT.2408's reference levels, as PQ and HLG signals: HDR reference white (203 nits) and an 18% grey card
# (26 nits). An SDR screen shows reference white as white and the grey card as that fraction of white.
PQ_M1, PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
PQ_C1, PQ_C2, PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
REF_WHITE, GREY_CARD = 203.0, 26.0
BT709_TO_2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])


def pq(nits):
    p = (np.asarray(nits, np.float64) / 10000.0) ** PQ_M1
    return ((PQ_C1 + PQ_C2 * p) / (1 + PQ_C3 * p)) ** PQ_M2


def hlg_signal(nits):
    """The HLG signal an HLG display (1000 nits, system gamma 1.2: display light = 1000 Ys^0.2 E for scene
    light E of luminance Ys) shows as `nits` (a grey level, or R, G, B in BT.2020)."""
    nits = np.asarray(nits, np.float64)
    shown = nits @ np.array([0.2627, 0.6780, 0.0593]) if nits.ndim else nits
    e = nits / (1000.0 * (shown / 1000.0) ** (0.2 / 1.2))             # scene light
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    return np.where(e <= 1 / 12, np.sqrt(3 * e), a * np.log(np.maximum(12 * e - b, 1e-9)) + c)


def hdr_file(path, transfer, patches):
    """A 10-bit BT.2020 file (ffv1, lossless) of four vertical patches, each given as non-linear R'G'B'."""
    rgb = np.zeros((32, 64, 3))
    for i, p in enumerate(patches):
        rgb[:, 16 * i:16 * i + 16] = p
    y = rgb @ np.array([0.2627, 0.6780, 0.0593])
    cb, cr = (rgb[..., 2] - y) / 1.8814, (rgb[..., 0] - y) / 1.4746
    planes = np.stack([64 + 876 * y, 512 + 896 * cb, 512 + 896 * cr]).round().astype("<u2")
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv444p10le", "-s", "64x32",
                    "-r", "30", "-i", "-", "-frames:v", "1", "-vf", f"setparams=range=tv:color_primaries=bt2020:"
                    f"color_trc={transfer}:colorspace=bt2020nc", "-c:v", "ffv1", str(path)],
                   input=np.concatenate([planes] * 2).tobytes(), check=True)


@pytest.mark.parametrize("transfer", ["smpte2084", "arib-std-b67"])
def test_hdr_video_comes_out_as_an_sdr_screen_shows_it(tmp_path, transfer):
    """A phone's HDR video (HLG on iPhones, PQ in HDR10) read as SDR was grey and washed out: its
    reference white came out at about 58-75% grey."""
    signal = pq if transfer == "smpte2084" else hlg_signal
    red_709 = BT709_TO_2020 @ np.array([1.0, 0.0, 0.0]) * REF_WHITE     # SDR's red at reference white
    patches = [signal(REF_WHITE), signal(GREY_CARD), signal(red_709), signal(4 * REF_WHITE)]
    path = tmp_path / f"phone_{transfer}.mkv"
    hdr_file(path, transfer, patches)
    notes = []
    got = load_video(str(path), log=notes.append).to_array()[0, 16].astype(int)       # one row: the 4 patches
    white, grey, red, bright = got[8], got[24], got[40], got[56]
    assert white.min() >= 245                                       # reference white is white
    # ... rolled off by the knee above 0.9 as the kernel defines it: to the level, now that the 16-bit decode's
    # white (65283 for TV-range 10-bit, not 65535) is measured; it read a level low.
    from nodes.common.color import HDR_KNEE as k
    rolled = 255 * (1.055 * (k + (1 - k) * (1 - np.exp(-1))) ** (1 / 2.4) - 0.055)
    assert np.abs(white - rolled).max() <= 0.5, (white, rolled)
    grey_srgb = 255 * (1.055 * (GREY_CARD / REF_WHITE) ** (1 / 2.4) - 0.055)
    assert np.abs(grey - grey_srgb).max() <= 4, (grey, grey_srgb)   # the grey card is its share of white
    assert red[0] >= 240 and red[1:].max() <= 12, red               # BT.709's red is red again
    assert (bright >= white).all() and bright.min() >= 250          # brighter than white: rolled off, not wrapped
    assert any("HDR" in n for n in notes)


def keyed(n: int) -> np.ndarray:
    """n RGBA frames as a keyer or After Effects exports them: a moving colour gradient whose alpha ramps
    from 0 (left) to 1 (right), and the green of the screen kept in the colour where alpha is 0."""
    y, x = np.mgrid[0:48, 0:64]
    out = np.zeros((n, 48, 64, 4), np.uint8)
    for i in range(n):
        out[i, ..., 0] = (40 + 3 * x + 5 * i) % 256
        out[i, ..., 1] = np.where(x < 8, 255, 60 + 2 * y)
        out[i, ..., 2] = 200 - 2 * x
        out[i, ..., 3] = np.clip((x - 8) * 255 // 40, 0, 255)
    return out


@pytest.mark.parametrize("kind", ["prores4444.mov", "qtrle.mov", "png.mov", "vp9.webm", "animated.webp"])
def test_transparent_video_is_laid_over_black_as_transparent_stills_are(tmp_path, kind):
    """A keyed plate (ProRes 4444, QuickTime Animation or PNG in MOV, VP9 WebM with alpha, an animated
    WebP) showed the colour its transparent pixels store, the green screen, with hard edges; and FFmpeg's
    own VP9 decoder skips the alpha altogether. Frames are now laid over black, as io.load_image lays a
    transparent PNG, and the log says so."""
    src = keyed(12)
    path = tmp_path / kind
    if kind == "animated.webp":
        from PIL import Image
        Image.fromarray(src[0], "RGBA").save(path, save_all=True, lossless=True, duration=100,
                                             append_images=[Image.fromarray(f, "RGBA") for f in src[1:]])
    else:
        codec = {"prores4444.mov": ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le"],
                 "qtrle.mov": ["-c:v", "qtrle", "-pix_fmt", "argb"], "png.mov": ["-c:v", "png", "-pix_fmt", "rgba"],
                 "vp9.webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-crf", "4", "-b:v", "0"]}[kind]
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgba", "-s", "64x48",
                        "-r", "10", "-i", "-", *codec, str(path)], input=src.tobytes(), check=True)
    shown = src[..., :3] * (src[..., 3:] / 255.0)
    notes = []
    got = load_video(str(path), log=notes.append).to_array().astype(float)
    assert got.shape == (12, 48, 64, 3)
    assert got[:, :, :8].max() <= 6, "the screen's green shows through where the plate is transparent"
    assert np.abs(got - shown).mean() < 3, np.abs(got - shown).mean()
    assert any("transparency" in n and "over black" in n for n in notes)
    again = load_video(str(path), start=7).to_array().astype(float)     # a seek decodes the alpha as well
    assert np.array_equal(again, got[7:])


def test_a_capture_kept_combed_is_deinterlaced_to_a_picture_per_field(interlaced, tmp_path):
    """A capture stored as progressive, loaded as it is (io's auto leaves it alone): restore.deinterlace reads
    its field order from the motion and gives one picture per field, the 60/s source's pictures."""
    from graph_engine.context import Context
    from nodes.restore import nodes as restore_nodes
    src, _ = interlaced
    unflagged = tmp_path / "capture.mkv"
    encode(src, unflagged, "60", ["-vf", "tinterlace=interleave_top,setfield=prog", "-c:v", "ffv1"])
    clip = load_video(str(unflagged))
    ctx = Context("d")
    out = restore_nodes.deinterlace(ctx, clip, field_order="auto", rate="field")
    assert ctx.results["field_order"] == "tff"
    assert (out.length, round(out.fps, 3)) == (40, 60.0)
    got = out.to_array()
    assert np.mean([psnr(g, w) for g, w in zip(got, src)]) > \
        np.mean([psnr(r, w) for r, w in zip(np.repeat(clip.to_array(), 2, axis=0), src)]) + 5


def test_an_hdr_camera_lut_replaces_the_sdr_mapping(tmp_path):
    """Sony and Panasonic shoot HLG as a grading profile and ship HLG-to-709 LUTs made for its signal. Given
    io.load_video's lut, an HLG file was refused; now the LUT gets the stored HLG signal (10 bits, as
    decoded) in place of Kinograph's own SDR mapping: an identity LUT hands back the signal itself."""
    patches = [hlg_signal(REF_WHITE), hlg_signal(GREY_CARD), 0.1, 0.9]
    path = tmp_path / "hlg.mkv"
    hdr_file(path, "arib-std-b67", patches)
    cube = tmp_path / "identity.cube"
    cube.write_text("LUT_3D_SIZE 2\n" + "".join(f"{r} {g} {b}\n" for b in (0, 1) for g in (0, 1) for r in (0, 1)))
    notes = []
    got = load_video(str(path), log=notes.append, lut=str(cube)).to_array()[0, 16].astype(float)
    want = np.array(patches, np.float64) * 255
    assert np.abs(got[[8, 24, 40, 56]] - want[:, None]).max() <= 1.0, got[[8, 24, 40, 56]]
    assert any("the LUT given maps it" in n for n in notes) and not any("mapped to SDR" in n for n in notes)
