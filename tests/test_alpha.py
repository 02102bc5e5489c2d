"""Transparency (alpha) through Kinograph, as a compositor uses it: elements read from RGBA frames, ProRes 4444,
VP9 with alpha and QuickTime PNG/Animation keep their alpha through editing and colour nodes, out to PNG, TIFF,
EXR, ProRes 4444 and VP9, read back here with PyAV, Pillow and the OpenEXR bindings (not Kinograph's readers).
Before, clips were RGB: the alpha was laid over black at the reader and gone (only an untouched EXR plate kept
it), so every element came out opaque on black."""
import subprocess

import numpy as np
import pytest
from PIL import Image

from graph_engine import Clip
from graph_engine.api import Session, load_workflow
from nodes.common.color import srgb_to_linear
from nodes.io.images import load_frames
from nodes.io.video_read import load_video
from nodes.io.video_write import ffmpeg_exe

H, W = 24, 40


def element(n: int = 6, h: int = H, w: int = W) -> np.ndarray:
    """n straight-alpha RGBA frames as a keyer exports an element: a colour ramp that moves, an alpha ramping
    0 (left) to 255 (right), fully transparent top rows, and the screen's green kept where alpha is 0."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.zeros((n, h, w, 4), np.uint8)
    for i in range(n):
        out[i, ..., 0] = (60 + 4 * x + 9 * i) % 256
        out[i, ..., 1] = 90 + 3 * y
        out[i, ..., 2] = 220 - 3 * x
        out[i, ..., 3] = np.clip((x - 6) * 255 // 24, 0, 255)
    out[:, :3, :, 3] = 0
    out[..., 1] = np.where(out[..., 3] == 0, 255, out[..., 1])        # the screen, hidden by the alpha
    return out


def write_pngs(folder, frames) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f, "RGBA").save(folder / f"el.{1001 + i}.png")


def run(tmp_path, nodes: str) -> dict:
    """Run the workflow `nodes`; the log lines by node."""
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n" + nodes)
    events = []
    res = Session().run(load_workflow(str(wf)), on_event=events.append)
    assert res.ok, res.failed
    logs: dict = {}
    for e in events:
        if e["event"] == "log":
            logs.setdefault(e["node"], []).append(e["message"])
    return logs


def straight_close(got_rgba: np.ndarray, want_rgba: np.ndarray, tol: int, min_alpha: int = 128) -> None:
    """Alpha equal within tol everywhere; straight colour within tol where the alpha is at least min_alpha
    (frames are 8-bit colour over black: at alpha a, a level of the frame is 255 / a levels of the colour)."""
    a = want_rgba[..., 3].astype(int)
    assert np.abs(got_rgba[..., 3].astype(int) - a).max() <= tol
    seen = a >= min_alpha
    diff = np.abs(got_rgba[..., :3].astype(int) - want_rgba[..., :3].astype(int))[seen]
    assert diff.max() <= tol, diff.max()


def test_an_rgba_sequence_keeps_its_alpha_through_edits_and_a_grade_to_png_tif_and_exr(tmp_path):
    src = element(6)
    write_pngs(tmp_path / "el", src)
    logs = run(tmp_path, "  load: {type: io.load_frames, params: {path: el/el.####.png}}\n"
                         "  trim: {type: video.trim, inputs: {video: load.video}, params: {start: 1, count: 4}}\n"
                         "  nth: {type: video.every_nth, inputs: {video: trim.video}, params: {n: 2}}\n"
                         "  grade: {type: color.grade, inputs: {video: nth.video}}\n"
                         "  flip: {type: video.flip, inputs: {video: grade.video}, params: {direction: both}}\n"
                         "  fps: {type: video.fps, inputs: {video: flip.video}, params: {fps: 6, mode: retime}}\n"
                         + "".join(f"  {f}: {{type: io.save_frames, inputs: {{video: fps.video}}, params: "
                                   f"{{path: out_{f}, format: {f}}}}}\n" for f in ("png", "tif", "exr")))
    assert not any("alpha" in m for ms in logs.values() for m in ms), logs
    want = src[[1, 3], ::-1, ::-1]         # upside down and mirrored
    for k in range(2):      # every_nth leaves the plate's frame numbers: frame_000000 on
        png = np.asarray(Image.open(tmp_path / f"out_png/frame_00000{k}.png"))
        assert png.shape == (H, W, 4)
        straight_close(png, want[k], 1)
        with Image.open(tmp_path / f"out_tif/frame_00000{k}.tif") as im:
            assert im.mode == "RGBA" and im.tag_v2.get(338) == (2,)      # unassociated: straight colour
            straight_close(np.asarray(im), want[k], 1)
    # The EXR holds colour premultiplied in linear light, as Nuke and Blender keep it.
    OpenEXR = pytest.importorskip("OpenEXR")
    with OpenEXR.File(str(tmp_path / "out_exr/frame_000000.exr"), separate_channels=True) as f:
        ch = {k: v.pixels.astype(np.float32) for k, v in f.channels().items()}
    a = want[0, ..., 3] / 255.0
    assert sorted(ch) == ["A", "B", "G", "R"] and np.abs(ch["A"] - a).max() < 1e-3
    lin = srgb_to_linear(want[0, ..., :3] / 255.0) * a[..., None]
    got = np.stack([ch[c] for c in "RGB"], -1)
    assert np.abs(got - lin)[a >= 0.25].max() < 0.01
    assert np.abs(got)[a == 0].max() == 0          # nothing of the screen's green where it is transparent


def test_resize_pads_with_transparent_bars_and_concat_keeps_the_alpha_of_either_clip(tmp_path):
    src = element(2)
    write_pngs(tmp_path / "el", src)
    run(tmp_path, "  load: {type: io.load_frames, params: {path: el}}\n"
                  "  pad: {type: video.resize, inputs: {video: load.video}, params: {width: 80, height: 24, fit: pad}}\n"
                  "  plate: {type: generate.test_pattern, params: {frames: 2, width: 80, height: 24}}\n"
                  "  join: {type: video.concat, inputs: {video: pad.video, other: plate.video}}\n"
                  "  save: {type: io.save_frames, inputs: {video: join.video}, params: {path: out}}\n")
    first = np.asarray(Image.open(tmp_path / "out/frame_001001.png"))
    assert first.shape == (24, 80, 4)
    assert (first[:, :20, 3] == 0).all() and (first[:, 60:, 3] == 0).all()    # the bars
    straight_close(first[:, 20:60], src[0], 1)
    last = np.asarray(Image.open(tmp_path / "out/frame_001004.png"))
    assert (last[..., 3] == 255).all()             # the opaque plate stays opaque after the element


def test_the_same_element_as_exr_and_as_png_gives_the_same_frames(tmp_path):
    """An EXR keeps colour premultiplied in linear light, a PNG straight: both now come in as the same frame
    (colour over black in its code values) and the same alpha, so either writes back the other's edges."""
    OpenEXR = pytest.importorskip("OpenEXR")
    src = element(1)[0]
    a = (src[..., 3] / 255.0).astype(np.float32)
    lin = srgb_to_linear(src[..., :3] / 255.0) * a[..., None]
    (tmp_path / "exr").mkdir()
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {c: np.ascontiguousarray(lin[..., i]) for i, c in enumerate("RGB")} | {"A": a}) as f:
        f.write(str(tmp_path / "exr/el.1001.exr"))
    write_pngs(tmp_path / "png", src[None])
    from_exr, from_png = load_frames(str(tmp_path / "exr"), 24), load_frames(str(tmp_path / "png"), 24)
    assert np.array_equal(from_exr.matte.to_array(), from_png.matte.to_array())
    assert np.abs(from_exr.to_array().astype(int) - from_png.to_array().astype(int)).max() <= 1


def encode(frames: np.ndarray, path, args) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgba", "-s",
                    f"{frames.shape[2]}x{frames.shape[1]}", "-r", "12", "-i", "-", *args, str(path)],
                   input=frames.tobytes(), check=True)


SOURCES = {"prores4444.mov": ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le"],
           "qtrle.mov": ["-c:v", "qtrle", "-pix_fmt", "argb"], "png.mov": ["-c:v", "png", "-pix_fmt", "rgba"],
           "vp9.webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-crf", "4", "-b:v", "0"]}


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_transparent_videos_bring_their_alpha(tmp_path, kind):
    src = element(6)
    encode(src, tmp_path / kind, SOURCES[kind])
    clip = load_video(str(tmp_path / kind))
    assert clip.matte is not None
    tol = {"vp9.webm": 4, "prores4444.mov": 1}.get(kind, 0)
    assert np.abs(clip.matte.to_array()[..., 0].astype(int) - src[..., 3]).max() <= tol
    again = load_video(str(tmp_path / kind), start=3)      # a seek reads the alpha of the same frames
    assert np.array_equal(again.matte.to_array(), clip.matte.to_array()[3:])


def test_a_transparent_vp9_copied_by_ffmpeg_keeps_its_alpha_right_in_every_frame(tmp_path):
    """An element looped (or trimmed, or remuxed) with ffmpeg's -c copy keeps its alpha, but the file then says
    ALPHA_MODE, not alpha_mode: it read as opaque, the alpha dropped without a word. And a 24x40 VP9 element read
    with a few alpha pixels 10 levels off (their colour up to 239) in about 1 frame in 100, a different one each
    time: libswscale, converting 4:2:0 with alpha to RGBA on a thread per core, now and then turned the first 8
    pixels of a row where two threads' slices met into other values. The reader converts such frames on one thread
    now; 1200 frames read with the threads showed it in 8 runs of 8, 2 to 15 frames each."""
    src = element(6)
    encode(src, tmp_path / "el.webm", SOURCES["vp9.webm"])
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop", "149", "-i", str(tmp_path / "el.webm"),
                    "-c", "copy", str(tmp_path / "looped.webm")], check=True)
    clip = load_video(str(tmp_path / "looped.webm"))
    assert clip.length == 900 and clip.matte is not None
    off = np.abs(clip.matte.to_array()[..., 0].astype(int) - np.tile(src[..., 3], (150, 1, 1))).max((1, 2))
    assert np.flatnonzero(off > 4).tolist() == []


def read_rgba(path):
    """(pixel format of the file, its frames as straight RGBA) through PyAV."""
    import av
    with av.open(str(path)) as f:
        stream = f.streams.video[0]
        if stream.codec_context.name == "vp9":      # FFmpeg's own VP9 decoder skips the alpha; libvpx reads it
            dec = av.CodecContext.create("libvpx-vp9", "r")
            frames = [fr for p in f.demux(stream) for fr in dec.decode(p)]
            fmt = "yuva420p" if stream.metadata.get("alpha_mode") == "1" else "yuv420p"
        else:
            frames = list(f.decode(stream))
            fmt = stream.codec_context.pix_fmt
        # One thread, as the reader converts them (test_a_transparent_vp9_copied_by_ffmpeg_keeps_its_alpha_right_in_every_frame).
        return fmt, np.stack([fr.to_ndarray(format="rgba", threads=1) for fr in frames])


@pytest.mark.parametrize("codec,name,pix_fmt,tol", [("prores", "el.mov", "yuva444p12le", 3),
                                                    ("vp9", "el.webm", "yuva420p", 12),
                                                    ("ffv1", "el.mkv", "gbrap16le", 1)])   # 16 bits of ProRes's 12
def test_a_prores_4444_element_goes_out_with_its_alpha(tmp_path, codec, name, pix_fmt, tol):
    """ProRes 4444 in, trimmed and flipped in time, out as ProRes 4444 (16-bit alpha), VP9 with alpha or FFV1:
    the alpha and the straight colour come back; h264 (no alpha) says it leaves it out."""
    src = element(6)
    encode(src, tmp_path / "in.mov", SOURCES["prores4444.mov"])
    logs = run(tmp_path, "  load: {type: io.load_video, params: {path: in.mov}}\n"
                         "  rev: {type: video.reverse, inputs: {video: load.video}}\n"
                         f"  save: {{type: io.save_video, inputs: {{video: rev.video}}, params: {{path: {name}, "
                         f"codec: {codec}, crf: 4}}}}\n"
                         "  web: {type: io.save_video, inputs: {video: rev.video}, params: {path: el.mp4}}\n")
    fmt, got = read_rgba(tmp_path / name)
    assert fmt == pix_fmt and got.shape == (6, H, W, 4)
    # 4:2:0 chroma (VP9) blurs colour across the alpha's hard top edge: judged away from it.
    straight_close(got[:, 4:], src[::-1, 4:], tol)
    assert any("the alpha (transparency) is not written: h264 has none" in m for m in logs["web"])
    # VP9 says only that it is 8-bit (ProRes 4444 holds 12): tests/test_deep_colour.py.
    assert [m.split(":")[0] for m in logs.get("save", [])] == (["vp9 is written from the 8-bit frames"]
                                                               if codec == "vp9" else []), logs


def test_a_node_that_cannot_keep_the_alpha_says_so(tmp_path):
    write_pngs(tmp_path / "el", element(2))
    logs = run(tmp_path, "  load: {type: io.load_frames, params: {path: el}}\n"
                         "  poster: {type: stylize.posterize, inputs: {video: load.video}}\n"
                         "  save: {type: io.save_frames, inputs: {video: poster.video}, params: {path: out}}\n"
                         "  still: {type: video.frame, inputs: {video: load.video}}\n"
                         "  sharp: {type: metrics.sharpness, inputs: {video: load.video}}\n")
    assert any("stylize.posterize does not carry the alpha" in m for m in logs["poster"]), logs
    assert any("video.frame does not carry the alpha" in m for m in logs["still"]), logs
    assert not any("alpha" in m for m in logs.get("sharp", [])), logs      # a measure: no alpha belongs to it
    assert np.asarray(Image.open(tmp_path / "out/frame_001001.png")).shape == (H, W, 3)


def test_over_lays_an_element_on_a_plate_in_linear_light_or_in_code_values(tmp_path):
    half = np.zeros((1, H, W, 4), np.uint8)
    half[..., :3], half[..., 3] = 255, 128              # white at half coverage
    write_pngs(tmp_path / "el", half)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "black.png")
    logs = run(tmp_path, "  load: {type: io.load_frames, params: {path: el}}\n"
                         "  bg: {type: io.load_image, params: {path: black.png}}\n"
                  + "".join(f"  {b}: {{type: video.over, inputs: {{video: load.video, background: bg.image}}, "
                            f"params: {{blend: {b}}}}}\n"
                            f"  s{b}: {{type: io.save_frames, inputs: {{video: {b}.video}}, params: {{path: {b}}}}}\n"
                            for b in ("linear", "encoded")))
    assert not any("does not carry the alpha" in m for ms in logs.values() for m in ms), logs   # as asked
    lin = np.asarray(Image.open(tmp_path / "linear/frame_000000.png"))
    enc = np.asarray(Image.open(tmp_path / "encoded/frame_000000.png"))
    assert lin.shape == (H, W, 3)                    # over an opaque plate: opaque
    assert abs(int(lin[0, 0, 0]) - 188) <= 1         # half the light of white: sRGB 188
    assert abs(int(enc[0, 0, 0]) - 128) <= 1         # half the code value


def test_matte_keys_a_green_screen_and_takes_an_alpha_from_a_file(tmp_path):
    screen = np.zeros((1, H, W, 3), np.uint8)
    screen[...] = (0, 177, 64)
    screen[:, 8:16, 10:30] = (200, 60, 50)            # the subject
    screen[:, 8:16, 30:34] = (120, 200, 90)           # green light spilled on its edge
    Image.fromarray(screen[0]).save(tmp_path / "screen.png")
    matte = np.zeros((H, W), np.uint8)
    matte[:, W // 2:] = 255
    Image.fromarray(matte).save(tmp_path / "matte.png")
    run(tmp_path, "  plate: {type: io.load_frames, params: {path: screen.png}}\n"
                  "  key: {type: video.matte, inputs: {video: plate.video}, params: {mode: chroma}}\n"
                  "  skey: {type: io.save_frames, inputs: {video: key.video}, params: {path: key}}\n"
                  "  m: {type: io.load_frames, params: {path: matte.png}}\n"
                  "  luma: {type: video.matte, inputs: {video: plate.video, source: m.video}, params: {mode: luma}}\n"
                  "  sluma: {type: io.save_frames, inputs: {video: luma.video}, params: {path: luma}}\n"
                  "  copy: {type: video.matte, inputs: {video: plate.video, source: luma.video}}\n"
                  "  flat: {type: video.matte, inputs: {video: copy.video}, params: {mode: none}}\n"
                  "  sflat: {type: io.save_frames, inputs: {video: flat.video}, params: {path: flat}}\n")
    key = np.asarray(Image.open(tmp_path / "key/frame_000000.png"))
    assert (key[:8, :, 3] == 0).all() and (key[8:16, 10:30, 3] == 255).all()
    assert (key[8:16, 10:30, :3] == (200, 60, 50)).all()
    spill = key[8:16, 30:34]
    assert (spill[..., 1] <= spill[..., [0, 2]].max(-1)).all()       # despilled: no longer green
    luma = np.asarray(Image.open(tmp_path / "luma/frame_000000.png"))
    assert (luma[..., 3] == matte).all() and (luma[:, W // 2:, :3] == screen[0, :, W // 2:]).all()
    flat = np.asarray(Image.open(tmp_path / "flat/frame_000000.png"))
    assert flat.shape == (H, W, 3) and (flat[:, :W // 2] == 0).all()


def test_the_spill_and_the_disk_cache_keep_the_alpha(tmp_path):
    """A clip two writers read is computed once through the run's spill, and an expensive node's clip is
    kept in the disk cache: both held the colour only, so the second writer (or the next run) lost the alpha."""
    from graph_engine.cache import _decode, _encode
    from graph_engine.spill import Spill
    src = element(3)
    alpha = src[..., 3:].copy()
    clip = Clip.from_array(src[..., :3].copy(), 12).with_matte(lambda a, b: alpha[a:b])
    spill = Spill(tmp_path / "spill")
    shared = spill.share("k", clip)
    assert np.array_equal(shared.matte.to_array(), alpha)
    assert np.array_equal(spill.share("k", clip).matte.to_array(), alpha)     # the second reader, from disk
    spill.close()
    entry = _encode(clip, tmp_path, "out")
    back = _decode(entry, tmp_path)
    assert np.array_equal(back.matte.to_array(), alpha) and np.array_equal(back.to_array(), src[..., :3])


def test_a_sharded_render_keeps_the_alpha(tmp_path):
    """Shards are FFV1 files the driver joins: each shard was written from the colour alone, and the joined clip
    had no alpha, so a sharded render of an element came out opaque where one pass kept it."""
    from app.shard import READER, joined_clip, shard_part
    from graph_engine.context import Context
    from graph_engine.executor import call_node
    from graph_engine.registry import default_registry
    from nodes.common.alpha import premultiplied
    src = element(6)
    alpha = src[..., 3:].copy()
    frames = premultiplied(src[..., :3], alpha)         # a clip's frames are its colour over black
    clip = Clip.from_array(frames, 12).with_matte(lambda a, b: alpha[a:b])
    registry = default_registry()
    ranges, files = [(0, 4), (4, 6)], []
    for a, b in ranges:
        files.append(str(tmp_path / f"shard_{a}.mkv"))
        call_node(registry.get("io.save_video"), Context("shard"), {"video": shard_part(clip, a, b)},
                  {"path": files[-1], "codec": "ffv1", "keep_audio": False})
    info = {"length": 6, "fps": 12, "width": W, "height": H, "alpha": True}
    joined = joined_clip(registry, files, ranges, info)
    assert READER == "io.load_video" and np.array_equal(joined.matte.to_array(), alpha)
    assert np.array_equal(joined.to_array(), frames)


def test_vp9_edges_keep_their_colour(tmp_path):
    """VP9 keeps colour at half resolution (4:2:0): the straight colour of a transparent pixel (black, or the
    screen's green a keyer left) was shared with the visible pixel beside it, and an element's edge came back
    35-44 levels off, a fringe on every background. Transparent pixels now get their edge's colour."""
    from nodes.common.alpha import premultiplied
    from nodes.io.video_write import write_video
    src = np.zeros((3, H, W, 4), np.uint8)
    src[..., :3] = (200, 120, 40)
    src[:, 5:, :20, 3] = 255                # an odd row and a column pair where the alpha steps
    src[:, :5, :, 1] = 255                  # the screen, hidden
    alpha = src[..., 3:].copy()
    clip = Clip.from_array(premultiplied(src[..., :3], alpha), 12).with_matte(lambda a, b: alpha[a:b])
    write_video(clip, str(tmp_path / "el.webm"), codec="vp9", crf=4)
    fmt, got = read_rgba(tmp_path / "el.webm")
    seen = src[..., 3] == 255
    assert fmt == "yuva420p" and np.abs(got[..., 3].astype(int) - src[..., 3]).max() <= 2
    assert np.abs(got[..., :3].astype(int) - src[..., :3])[seen].max() <= 3


@pytest.mark.parametrize("name", ["still.png", "still.tif", "still.webp"])
def test_save_image_writes_a_transparent_still_with_straight_colour(tmp_path, name):
    """io.load_image -> io.save_image of a transparent PNG: the alpha went into EXR only ('the alpha is written
    into EXR files'), since the readers laid colour over black in different light. They now agree (EXR is read
    through the same convention), so PNG, TIFF and WebP get the alpha with straight colour."""
    src = element(1)[0]
    Image.fromarray(src, "RGBA").save(tmp_path / "el.png")
    run(tmp_path, "  load: {type: io.load_image, params: {path: el.png}}\n"
                  f"  save: {{type: io.save_image, inputs: {{image: load.image, alpha: load.alpha}}, "
                  f"params: {{path: {name}}}}}\n")
    with Image.open(tmp_path / name) as im:
        assert im.mode == "RGBA"
        got = np.asarray(im)
    straight_close(got, src, 1 if name != "still.webp" else 12)
