"""io.* and video.* nodes: frame counts, codecs, audio, embedded workflows, atomic writes."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graph_engine import Clip, NodeError
from graph_engine.errors import WorkflowError
from graph_engine.api import Session, load_workflow
from nodes.io.video_read import load_video
from nodes.io.video_write import ffmpeg_exe, write_video
from nodes.video import edit
from nodes.video.test_pattern import pattern_frames
from tests.cli_run import cli

ROOT = Path(__file__).resolve().parents[1]


def make_clip(n=12, w=48, h=32):
    return Clip(n, 12.0, w, h, lambda a, b: pattern_frames(a, b, w, h, n))


@pytest.fixture(scope="module")
def lossless(tmp_path_factory):
    """A lossless (ffv1) file with a known pattern and an audio track."""
    d = tmp_path_factory.mktemp("io")
    clip = make_clip(30)
    silent = d / "silent.mkv"
    write_video(clip, str(silent), codec="ffv1")
    with_audio = d / "audio.mkv"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(silent), "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=2.5", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                    "-shortest", str(with_audio)], check=True)
    return clip, silent, with_audio


def test_lossless_round_trip_and_random_access(lossless):
    clip, path, _ = lossless
    loaded = load_video(str(path))
    assert loaded.length == 30 and (loaded.width, loaded.height) == (48, 32) and loaded.fps == 12.0
    assert np.array_equal(loaded.to_array(), clip.to_array())
    again = load_video(str(path))
    assert np.array_equal(again.frames(21, 25), clip.frames(21, 25))      # seek, not decode from 0
    assert np.array_equal(again.frames(3, 5), clip.frames(3, 5))          # and back again


def test_load_params(lossless):
    clip, path, _ = lossless
    sel = load_video(str(path), start=2, count=5, every_nth=3)
    assert sel.length == 5 and sel.fps == 4.0
    assert np.array_equal(sel.to_array(), clip.to_array()[2::3][:5])
    small = load_video(str(path), width=24)
    assert (small.width, small.height) == (24, 16)
    resampled = load_video(str(path), fps=6.0)
    assert resampled.length == 15 and np.array_equal(resampled.frame(1), clip.frame(2))


def test_audio_is_kept(lossless, tmp_path):
    _, _, with_audio = lossless
    clip = load_video(str(with_audio))
    assert clip.audio is not None
    out = tmp_path / "a.mp4"
    write_video(edit.trim(clip, 6, 12), str(out))
    import av
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1
        assert abs(float(c.streams.audio[0].duration * c.streams.audio[0].time_base) - 1.0) < 0.15


def _decoded_frames(path) -> int:
    import av
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_a_sound_shorter_than_the_pictures_keeps_every_frame(tmp_path):
    # A camera file whose sound stops early: `-shortest` cut the video at the sound's end and the
    # render failed with "ffmpeg could not write ...:" and no reason.
    from graph_engine import Audio
    wav = tmp_path / "half_second.wav"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.5",
                    str(wav)], check=True)
    clip = make_clip(24).with_(audio=Audio(str(wav), 0.0, 2.0))
    out = tmp_path / "long_pictures.mkv"
    info = write_video(clip, str(out), codec="ffv1")
    assert info["frames"] == 24 and _decoded_frames(out) == 24


@pytest.mark.parametrize("fps", [30000 / 1001, 24000 / 1001])
def test_ntsc_rates_with_sound_keep_the_last_frame(lossless, fps, tmp_path):
    # At 29.97 and 23.976 fps `-shortest` dropped the last frame of a clip with sound; the report said 30.
    from graph_engine import Audio
    _, _, with_audio = lossless
    clip = make_clip(30).with_(fps=fps, audio=Audio(str(with_audio), 0.0, 30 / fps))
    out = tmp_path / "ntsc.mkv"
    info = write_video(clip, str(out), codec="ffv1")
    assert info["frames"] == 30 and _decoded_frames(out) == 30 and load_video(str(out)).length == 30


@pytest.mark.parametrize("fps,rate", [(30000 / 1001, (30000, 1001)), (24000 / 1001, (24000, 1001)),
                                      (60000 / 1001, (60000, 1001)), (12.5, (25, 2))])
def test_ntsc_rates_are_written_as_their_fractions(fps, rate, tmp_path):
    # "-r 29.970030" made a file of 979001/32666 fps with a 1/979001 time base.
    import av
    from fractions import Fraction
    out = tmp_path / "rate.mp4"
    write_video(make_clip(6).with_(fps=fps), str(out))
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == Fraction(*rate)


@pytest.mark.parametrize("codec,suffix", [("h264", ".mp4"), ("ffv1", ".mkv"), ("gif", ".gif"), ("webp", ".webp"),
                                          ("vp9", ".webm")])
def test_codecs_write_the_right_number_of_frames(codec, suffix, tmp_path):
    out = tmp_path / f"v{suffix}"
    info = write_video(make_clip(8, 32, 32), str(out), codec=codec)
    assert info["frames"] == 8 and out.stat().st_size > 100
    if codec == "webp":      # ffmpeg decodes no animated WebP; Pillow does
        from PIL import Image
        with Image.open(out) as im:
            assert im.n_frames == 8
    else:
        import av
        with av.open(str(out)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 8
    assert not list(tmp_path.glob(".*partial*"))


def test_odd_size_h264_is_padded(tmp_path):
    out = tmp_path / "odd.mp4"
    write_video(make_clip(4, 33, 21), str(out))
    assert load_video(str(out)).width == 34


def test_video_utilities():
    c = make_clip(10)
    a = c.to_array()
    assert np.array_equal(edit.trim(c, 2, 3).to_array(), a[2:5])
    assert edit.concat(c, c).length == 20 and np.array_equal(edit.concat(c, c).frame(13), a[3])
    r = Session(use_disk=False)
    wf = load_workflow(text="""
kinograph: 1
nodes:
  p: {type: generate.test_pattern, params: {frames: 5, width: 32, height: 32}}
  rev: {type: video.reverse, inputs: {video: p.video}}
  pp: {type: video.pingpong, inputs: {video: p.video}}
  nth: {type: video.every_nth, inputs: {video: p.video}, params: {n: 2}}
  fps: {type: video.fps, inputs: {video: p.video}, params: {fps: 48.0}}
""")
    out = r.run(wf).outputs
    src = out["p"]["video"].to_array()
    assert np.array_equal(out["rev"]["video"].to_array(), src[::-1])
    assert out["pp"]["video"].length == 8 and np.array_equal(out["pp"]["video"].frame(5), src[3])
    assert out["nth"]["video"].length == 3 and out["nth"]["video"].fps == 12.0
    # 5 frames of 1/24 s make 10 of 1/48 s, each source frame shown twice (the last too: same duration)
    assert np.array_equal(out["fps"]["video"].to_array(), src[np.arange(10) // 2])
    with pytest.raises(NodeError, match="resize one of them"):
        edit.concat(c, make_clip(3, 16, 16))


@pytest.mark.parametrize("src_fps, fps, length, want", [
    (30.0, 24.0, 10, [0, 1, 2, 3, 5, 6, 7, 8]),    # every fifth frame dropped, 1/3 s stays 1/3 s
    (24.0, 12.0, 5, [0, 2, 4]),                    # halving keeps frames 0, 2, 4, as every_nth does
    (24.0, 60.0, 2, [0, 0, 0, 1, 1]),              # 2/24 s = 5/60 s, each frame on screen while it lasts
    (24.0, 1.0, 3, [0]),                           # shorter than one new frame: still one frame
])
def test_fps_resample_keeps_the_duration(src_fps, fps, length, want):
    """Resampling counted frames as instants, so 2 s at 24 fps became 95 frames at 48 (1.98 s) and the
    sound ran past the pictures; each frame now lasts 1/fps, as in ffmpeg's fps filter."""
    c = make_clip(length)
    c = c.with_(fps=src_fps)
    out = edit.change_fps(c, fps, "resample")
    assert out.fps == fps
    assert np.array_equal(out.to_array(), c.to_array()[want])


def test_workflow_embedded_in_outputs_runs_again(tmp_path):
    wf = tmp_path / "w.yaml"
    wf.write_text(f"""
kinograph: 1
nodes:
  p: {{type: generate.test_pattern, params: {{frames: 4, width: 32, height: 32}}}}
  save: {{type: io.save_video, inputs: {{video: p.video}}, params: {{path: {tmp_path}/first.mp4}}}}
  still: {{type: io.save_image, inputs: {{image: p.video}}, params: {{path: {tmp_path}/first.png}}}}
""")
    r = cli("run", wf, "--json")
    assert r.returncode == 2 and "VIDEO (p.video) cannot connect to IMAGE" in r.stderr
    wf.write_text(wf.read_text().replace("  still:", "  img: {type: io.load_image, params: {path: "
                                         f"{ROOT}/resources/samples/coffee.png}}}}\n  still:").replace("p.video}, params: {path: " + str(tmp_path) + "/first.png", "img.image}, params: {path: " + str(tmp_path) + "/first.png"))
    r = cli("run", wf, "--json")
    assert r.returncode == 0, r.stderr
    events = [json.loads(l) for l in r.stdout.splitlines()]
    finished = [e for e in events if e["event"] == "node_finished"]
    assert {e["node"] for e in finished} == {"p", "save", "img", "still"}
    assert all(set(e) >= {"node", "cached", "seconds"} for e in finished)
    assert events[-1]["event"] == "run_finished" and events[-1]["results"]["save"]["frames"] == 4
    for media in ("first.mp4", "first.png"):
        r = cli("run", tmp_path / media, "--set", f"save.path={tmp_path}/again.mp4", "--set",
                f"still.path={tmp_path}/again.png")
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "again.mp4").exists() and (tmp_path / "again.png").exists()


def _cancel_a_long_render(tmp_path, sig):
    """Starts a render too long to finish, sends `sig` once frames flow; returns the exit code and the
    JSON lines printed after it."""
    wf = tmp_path / "long.yaml"
    wf.write_text(f"""
kinograph: 1
nodes:
  p: {{type: generate.test_pattern, params: {{frames: 100000, width: 256, height: 256}}}}
  save: {{type: io.save_video, inputs: {{video: p.video}}, params: {{path: {tmp_path}/long.mp4}}}}
""")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", str(wf), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:       # wait until frames are flowing
        if '"node_progress"' in line:
            break
    proc.send_signal(sig)
    rest = proc.stdout.read()
    proc.wait(timeout=60)
    return proc.returncode, rest


def test_ctrl_c_exits_130_and_leaves_no_partial_output(tmp_path):
    code, _ = _cancel_a_long_render(tmp_path, signal.SIGINT)
    assert code == 130
    assert not (tmp_path / "long.mp4").exists()
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_sigterm_cancels_like_ctrl_c(tmp_path):
    """SIGTERM is what a job scheduler (Slurm, Kubernetes) sends: it killed the process at once,
    leaving the hidden .partial file behind (and exit 143). It cancels as Ctrl-C does now."""
    code, rest = _cancel_a_long_render(tmp_path, signal.SIGTERM)
    assert code == 130
    assert '"cancelled": true' in rest.splitlines()[-1]
    assert not [p for p in os.listdir(tmp_path) if p != "long.yaml"]


def test_a_render_killed_outright_leaves_no_partial_file_after_the_next_write_there(tmp_path):
    """kill -9 (the OOM killer, a lost machine) cannot clean up: the hidden half-written .partial video
    stayed beside the output for ever, growing a render folder by a failed render each time. The next
    write into that folder removes it now, but never a temporary a live writer holds."""
    code, _ = _cancel_a_long_render(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    left = [p for p in os.listdir(tmp_path) if ".partial" in p]
    # its half-written video and its workflow's metadata for ffmpeg, both the next write's to remove
    assert sorted(p.rsplit(".", 1)[1] for p in left) == ["mp4", "txt"] and all(p.startswith(".long.") for p in left)
    (tmp_path / ".notes.partial").write_text("someone's own file")
    live = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                             "from graph_engine.atomic import atomic_output\n"
                             "with atomic_output(sys.argv[1]) as tmp:\n"
                             "    print(tmp.name, flush=True)\n"
                             "    time.sleep(120)\n", str(tmp_path / "busy.mkv")],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        busy = live.stdout.readline().strip()
        wf = tmp_path / "short.yaml"
        wf.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 2, width: 32, "
                      "height: 32}}\n  save: {type: io.save_video, inputs: {video: p.video}, params: {path: s.mkv, "
                      "codec: ffv1}}\n")
        r = subprocess.run([sys.executable, "-m", "app.cli", "run", str(wf)], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        assert sorted(p for p in os.listdir(tmp_path) if ".partial" in p) == sorted([".notes.partial", busy])
    finally:
        live.kill()
        live.wait()


def test_bad_inputs_give_clear_messages(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(NodeError, match=r"broken.mp4 as a video \(Invalid data found when processing input\): "
                                        r"the file is damaged") as e:
        load_video(str(tmp_path / "broken.mp4"))
    assert "Errno" not in str(e.value)
    with pytest.raises(NodeError, match="not found"):
        load_video(str(tmp_path / "missing.mp4"))
    with pytest.raises(NodeError, match="is a folder, not a video file"):
        load_video(str(tmp_path))
    from nodes.io.images import load_frames, read_image
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(NodeError, match="bad.png"):
        read_image(str(tmp_path / "bad.png"))
    with pytest.raises(NodeError, match="no images found"):
        load_frames(str(tmp_path / "empty*"), 24)


def test_load_frames_and_save_frames(tmp_path):
    from nodes.io.images import load_frames, write_frames
    info = write_frames(make_clip(5), str(tmp_path / "seq"), "kinograph: 1\n")
    assert info["frames"] == 5 and (tmp_path / "seq" / "workflow.yaml").exists()
    back = load_frames(str(tmp_path / "seq"), 12)
    assert np.array_equal(back.to_array(), make_clip(5).to_array())


def test_an_image_named_with_brackets_is_that_file_not_a_pattern(tmp_path):
    """"shot [1].png" (or ComfyUI's "ComfyUI_00001_.png [output]") was read as a glob standing for its whole folder,
    so every output beside the workflow was refused: 'would write over <folder>, which this workflow reads'."""
    from PIL import Image
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "shot [1].png")
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  img: {type: io.load_image, params: {path: 'shot [1].png'}}\n"
                  "  save: {type: io.save_frames, inputs: {video: img.image}, params: {path: out/frames}}\n")
    assert load_workflow(wf) is not None                      # refused with a WorkflowError before
    wf.write_text(wf.read_text().replace("out/frames", "'shot [1].png'"))     # the image itself: still refused
    with pytest.raises(WorkflowError, match=r"would write over .*shot \[1\]\.png, which this workflow reads \(img\.path\)"):
        load_workflow(wf)


@pytest.mark.parametrize("script, says", [
    ('echo "[out#0/mp4 @ 0x1] Error writing trailer: No space left on device" >&2; exit 1',
     "the disk holding {folder} is full: x.mp4 was not written. Free some space there or write it elsewhere"),
    ("kill -s XFSZ $$",     # what `ulimit -f` does to ffmpeg: it dies without a word
     "x.mp4 grew past the largest file this process may write (`ulimit -f`"),
])
def test_a_full_disk_or_a_file_size_limit_is_named(tmp_path, monkeypatch, script, says):
    """ffmpeg's own words were the message: five lines of muxer errors for a full disk, and
    'ffmpeg stopped while writing x.mp4 (h264): ' with nothing after it under a file size limit."""
    fake = tmp_path / "ffmpeg"
    fake.write_text(f"#!/bin/sh\ncat > /dev/null\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setattr("nodes.io.video_write.ffmpeg_exe", lambda: str(fake))
    (tmp_path / "out").mkdir()
    with pytest.raises(NodeError) as e:
        write_video(make_clip(4, 32, 32), str(tmp_path / "out" / "x.mp4"))
    assert says.format(folder=tmp_path / "out") in str(e.value)
    assert os.listdir(tmp_path / "out") == []


def test_output_folder_removed_while_writing_is_named(tmp_path):
    """A folder deleted (here: moved away) under a running writer ended in 'FileNotFoundError: [Errno 2] ...
    .x.partial.mkv'."""
    from graph_engine.atomic import atomic_output
    folder = tmp_path / "renders"
    with pytest.raises(NodeError) as e:
        with atomic_output(folder / "x.mkv") as tmp:
            tmp.write_bytes(b"frames")
            folder.rename(tmp_path / "moved")
    assert str(e.value) == f"the folder {folder} was removed while x.mkv was being written; nothing was written"


@pytest.mark.parametrize("degrees", [-90, 90, 180])
def test_rotation_metadata_is_applied(lossless, tmp_path, degrees):
    """A phone's portrait video is stored landscape with a display matrix saying how to turn it;
    players turn it, and so must the loader (it came out sideways, and stayed so in every render)."""
    clip, path, _ = lossless
    rotated = tmp_path / "phone.mkv"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", str(degrees), "-i", str(path),
                    "-c", "copy", str(rotated)], check=True)
    # -display_rotation is counter-clockwise degrees, as np.rot90 turns for k > 0.
    want = np.rot90(clip.to_array(), degrees // 90, axes=(1, 2))
    loaded = load_video(str(rotated))
    assert (loaded.height, loaded.width) == want.shape[1:3]
    assert np.array_equal(loaded.to_array(), want)
    assert np.array_equal(load_video(str(rotated)).frames(21, 25), want[21:25])     # after a seek too
    small = load_video(str(rotated), width=16)
    assert (small.width, small.height) == ((16, 24) if degrees != 180 else (16, 11))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied(tmp_path, suffix):
    """A phone photo is stored as the sensor saw it, with an EXIF orientation saying how to turn it;
    every viewer turns it, and so must io.load_image and io.load_frames (they loaded it sideways)."""
    from PIL import Image
    from nodes.io.images import load_frames, read_image
    upright = make_clip(1, 48, 32).frame(0)
    ex = Image.Exif()
    ex[0x0112] = 6                       # "turn 90 degrees clockwise to display"
    stored = np.ascontiguousarray(np.rot90(upright, 1))      # so it is stored turned the other way
    (tmp_path / "seq").mkdir()
    for p in (tmp_path / f"photo{suffix}", tmp_path / "seq" / f"f1{suffix}"):
        Image.fromarray(stored).save(p, exif=ex, **({"quality": 100} if suffix == ".jpg" else {}))
    img = read_image(str(tmp_path / f"photo{suffix}"))
    assert img.shape == upright.shape
    tol = 8 if suffix == ".jpg" else 0
    assert np.abs(img.astype(int) - upright).mean() <= tol
    seq = load_frames(str(tmp_path / "seq"), 24)
    assert (seq.width, seq.height) == (48, 32) and np.abs(seq.frame(0).astype(int) - upright).mean() <= tol


@pytest.mark.parametrize("name,codec,says", [
    ("clip.gif", "h264", "a .gif file takes codec gif; for h264 name the file .mp4"),
    ("clip.webm", "h264", "a .webm file takes codec vp9 or av1; for h264 name the file .mp4"),
    ("clip.mov", "vp9", "a .mov file takes codec h264, h265, prores, dnxhr or ffv1; for vp9 name the file .webm"),
    ("clip.mp4", "gif", "a .mp4 file takes codec h264, h265, vp9, av1 or ffv1; for gif name the file .gif"),
    ("clip.mkv", "webp", "for webp name the file .webp"),
    ("clip.png", "h264", "io.save_frames writes one PNG per frame, io.save_image a single image"),
    ("clip.jpg", "webp", "io.save_frames writes one PNG per frame"),
    ("clip.xyz", "h264", "ffmpeg knows no .xyz file: name it .mp4"),
])
def test_save_video_refuses_a_file_type_that_cannot_hold_the_codec(tmp_path, name, codec, says):
    """A name and a codec that do not go together failed after encoding began with ffmpeg's own
    lines ('ts only codec gif for type video'), or worse wrote something else: codec gif into
    .mp4 made an H.264 file, codec webp into .png a WebP under a PNG name."""
    pulled = []
    clip = make_clip(4)
    watched = clip.with_(reader=lambda a, b: pulled.append(a) or clip.frames(a, b))
    with pytest.raises(NodeError) as e:
        write_video(watched, str(tmp_path / name), codec=codec)
    assert str(tmp_path / name) in str(e.value) and says in str(e.value)
    assert "@ 0x" not in str(e.value)            # none of ffmpeg's internal lines
    assert not pulled and not os.listdir(tmp_path)


@pytest.mark.parametrize("name,codec", [("c.avi", "h264"), ("c.mkv", "vp9"), ("c.mov", "prores"), ("c", "h264"),
                                        ("c.MP4", "h265"), ("c.webm", "av1")])
def test_save_video_containers_that_hold_the_codec(tmp_path, name, codec):
    info = write_video(make_clip(4), str(tmp_path / name), codec=codec)
    assert info["frames"] == 4 and load_video(info["path"]).length == 4


@pytest.mark.parametrize("name,codec", [("ref.mp4", "h264"), ("ref.mkv", "ffv1"), ("ref.webm", "vp9"),
                                        ("ref.avi", "h264"), ("ref.png", "h264")])
def test_a_video_given_as_an_image_says_how_to_take_a_frame(tmp_path, name, codec):
    """A video wired as a style or reference image said 'cannot read ... as an image (corrupt or
    unsupported format): cannot identify image file', as for a broken file; whatever its name."""
    from nodes.io.images import read_image
    video = write_video(make_clip(2), str(tmp_path / "v" / name.replace(".png", ".mp4")), codec=codec)["path"]
    (tmp_path / name).write_bytes(Path(video).read_bytes())
    with pytest.raises(NodeError) as e:
        read_image(str(tmp_path / name))
    assert str(e.value) == (f"{tmp_path / name} is a video, not a still image: read it with io.load_video and take "
                            f"the frame you want with video.frame")


def test_an_image_too_big_to_read_is_named_with_its_size(tmp_path, monkeypatch):
    """Pillow refuses pictures over ~179 Mpx (a guard against decompression bombs); that came out
    as 'DecompressionBombError: ... could be decompression bomb DOS attack'."""
    from PIL import Image
    from nodes.io.images import read_image
    Image.new("RGB", (64, 40)).save(tmp_path / "pano.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)     # so 64x40 is over twice the limit
    with pytest.raises(NodeError) as e:
        read_image(str(tmp_path / "pano.png"))
    assert str(e.value) == (f"{tmp_path / 'pano.png'} has 2,560 pixels, more than the 2,000 an image may have to be "
                            f"read safely: scale it down or cut it into parts in an image editor first")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_variable_frame_rate_keeps_every_frame_in_time(tmp_path, suffix):
    """A phone or a browser records at a variable rate: here 10 frames at 30 fps, then 10 at 15 fps
    (low light). The loader dropped frames (MP4: 3 of 20, replaced by repeats) or lost the end
    (MKV/WebM: the last 4 frames and 0.3 s of a 0.97 s clip). It must show every frame, each at its
    time, on the file's nominal rate."""
    levels = (np.arange(20) * 12).astype(np.uint8)
    (tmp_path / "v.rgb").write_bytes(np.repeat(levels, 16 * 16 * 3).tobytes())
    out = tmp_path / f"vfr{suffix}"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "16x16",
                    "-r", "30", "-i", str(tmp_path / "v.rgb"), "-vf", "setpts='if(lt(N,10),N,10+(N-10)*2)/(30*TB)'",
                    "-fps_mode", "passthrough", "-c:v", "libvpx-vp9" if suffix == ".webm" else "ffv1", str(out)],
                   check=True)
    said = []
    clip = load_video(str(out), log=said.append)
    # The repeats are said, where nothing was: 20 frames came out as 29 and looked like a stutter of Kinograph's.
    assert said == [f"{out.name}: its frame rate varies (a phone's or a screen recording's may): its 20 frames are "
                    f"held in time at 30 fps, {clip.length} in all, as players show them (a frame repeats where the "
                    f"next comes late)"]
    shown = [int(round(f[0, 0, 0] / 12)) for f in clip.to_array()]
    slot = [i if i < 10 else 2 * i - 10 for i in range(20)]        # frame i is on screen from slot[i]
    want = [next(i for i in range(20) if slot[i] >= k) for k in range(29)]
    assert clip.fps == 30.0 and shown[:29] == want and set(shown[29:]) <= {19}
    assert np.array_equal(load_video(str(out)).frames(20, 24), clip.to_array()[20:24])     # seeking agrees
    tail = load_video(str(out))
    assert np.array_equal(tail.frames(clip.length - 1, clip.length), clip.to_array()[-1:])   # a shard at the end
    assert np.array_equal(tail.frames(0, 2), clip.to_array()[:2])


def test_avi_with_b_frames_reads_the_right_frames(tmp_path):
    """An AVI keeps no presentation times: what PyAV reports for an H.264 AVI with B-frames is the
    packets' order, so the loader showed frames 0,0,1,1,... (repeats, and frames lost)."""
    clip = make_clip(12)
    src = clip.to_array()
    write_video(clip, str(tmp_path / "old.avi"))

    def which(frames):
        return [int(np.argmin([np.abs(f.astype(int) - s).mean() for s in src])) for f in frames]
    loaded = load_video(str(tmp_path / "old.avi"))
    assert loaded.length == 12 and which(loaded.to_array()) == list(range(12))
    again = load_video(str(tmp_path / "old.avi"))
    assert which(again.frames(8, 11)) == [8, 9, 10] and which(again.frames(2, 4)) == [2, 3]    # jumps


def test_animated_webp_loads(tmp_path):
    """ffmpeg has no animated WebP decoder: a .webp that save_video (codec webp) or ComfyUI's
    SaveAnimatedWEBP wrote read 'no decodable frames (is the file complete?)'."""
    from PIL import Image
    src = make_clip(6).to_array()
    Image.fromarray(src[0]).save(tmp_path / "lossless.webp", save_all=True, lossless=True, duration=125,
                                 append_images=[Image.fromarray(f) for f in src[1:]])
    clip = load_video(str(tmp_path / "lossless.webp"))
    assert (clip.length, clip.fps, clip.width, clip.height) == (6, 8.0, 48, 32)
    assert np.array_equal(clip.to_array(), src) and np.array_equal(clip.frames(4, 6), src[4:6])
    assert np.array_equal(load_video(str(tmp_path / "lossless.webp"), start=1, every_nth=2).to_array(), src[1::2])
    write_video(make_clip(6), str(tmp_path / "ours.webp"), codec="webp")
    assert load_video(str(tmp_path / "ours.webp")).length == 6


def test_a_file_without_pictures_says_so(tmp_path):
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.5",
                    str(tmp_path / "voice.m4a")], check=True)
    with pytest.raises(NodeError) as e:
        load_video(str(tmp_path / "voice.m4a"))
    assert str(e.value) == (f"{tmp_path / 'voice.m4a'} holds no pictures (no video stream: a sound or data file?): "
                            f"give a video file, or io.load_image for a still picture")


def test_load_frames_given_a_video_file_points_at_load_video(tmp_path):
    from nodes.io.images import load_frames
    write_video(make_clip(3), str(tmp_path / "shot.gif"), codec="gif")
    with pytest.raises(NodeError) as e:
        load_frames(str(tmp_path / "shot.gif"), 24)      # read 'no images found at .../shot.gif'
    assert str(e.value) == (f"{tmp_path / 'shot.gif'} is one file, not a folder of images: io.load_video reads a "
                            f"video or an animated GIF/WebP, io.load_image a single picture")


def test_nodes_that_change_the_sound_s_speed_or_drop_it_say_so(lossless):
    """video.fps retime plays the sound at the new speed and says how; with sound drop it says the track is
    dropped. reverse and pingpong play it backwards with the pictures (nothing to say: it is what was asked)."""
    _, silent, with_audio = lossless
    wf = load_workflow(text=f"""
kinograph: 1
nodes:
  load: {{type: io.load_video, params: {{path: {with_audio}}}}}
  quiet: {{type: io.load_video, params: {{path: {silent}}}}}
  rev: {{type: video.reverse, inputs: {{video: load.video}}}}
  pp: {{type: video.pingpong, inputs: {{video: load.video}}}}
  join: {{type: video.concat, inputs: {{video: quiet.video, other: load.video}}}}
  slow: {{type: video.fps, inputs: {{video: load.video}}, params: {{fps: 6, mode: retime}}}}
  mute: {{type: video.fps, inputs: {{video: load.video}}, params: {{fps: 6, mode: retime, sound: drop}}}}
  same: {{type: video.fps, inputs: {{video: load.video}}, params: {{fps: 6}}}}
  qrev: {{type: video.reverse, inputs: {{video: quiet.video}}}}
""")
    events = []
    Session(use_disk=False).run(wf, on_event=events.append)
    logs = {e["node"]: e["message"] for e in events if e["event"] == "log"}
    assert set(logs) == {"slow", "mute"}
    assert logs["slow"].startswith("the sound plays at 0.5x speed with the pictures (its pitch following")
    assert logs["mute"].startswith("the audio track is dropped: sound is drop")


def test_frames_on_a_full_disk_say_so(tmp_path, monkeypatch):
    """cv2.imwrite only answers False: the message was 'cannot write frames into DIR', no reason, no frame."""
    import shutil
    import cv2
    from collections import namedtuple
    from nodes.io.images import write_frames
    real = cv2.imwrite
    calls = []

    def imwrite(path, img):
        calls.append(path)
        return len(calls) <= 2 and real(path, img)

    monkeypatch.setattr(cv2, "imwrite", imwrite)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(10, 10, 0))
    with pytest.raises(NodeError) as e:
        write_frames(make_clip(4, 32, 32), str(tmp_path / "shots"))
    assert str(e.value) == (f"the disk holding {tmp_path / 'shots'} is full: frame_000002.png was not written "
                            f"(2 frames were written before it). Free some space there or write the frames elsewhere")
    assert sorted(os.listdir(tmp_path / "shots")) == ["frame_000000.png", "frame_000001.png", "workflow.yaml"]


@pytest.mark.parametrize("ext", ["png", "tif", "exr"])
def test_an_image_on_a_full_disk_says_so(tmp_path, monkeypatch, ext):
    """io.save_image onto a full disk said '[Errno 28] No space left on device' (PNG), 'encoder error -2 when
    writing image file' (TIFF) or 'RuntimeError: Failed to write pixel data to image file ".img.675vj0dy.partial.exr"'
    (EXR: the exception went past the writer's, naming its temporary)."""
    import shutil
    from collections import namedtuple
    from PIL import Image
    from nodes.io import exr
    from nodes.io.images import write_png
    says = {"png": OSError(28, "No space left on device"), "tif": OSError("encoder error -2 when writing image file")}

    def fail(self_or_img, path, *a, **k):
        if ext == "exr":
            raise RuntimeError(f'Failed to write pixel data to image file "{path}". No space left on device.')
        raise says[ext]
    monkeypatch.setattr(Image.Image, "save", fail)
    monkeypatch.setattr(exr, "write_exr", fail)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(10, 10, 0))
    with pytest.raises(NodeError) as e:
        write_png(np.zeros((8, 8, 3), np.uint8), str(tmp_path / f"img.{ext}"))
    assert str(e.value) == (f"the disk holding {tmp_path} is full: img.{ext} was not written. Free some space there "
                            f"or write it elsewhere (another `path` on the node)")
    assert os.listdir(tmp_path) == []
    # Any other failure names the file asked for, never the temporary it was being written under.
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(10, 10, 10 << 30))
    with pytest.raises(NodeError) as e:
        write_png(np.zeros((8, 8, 3), np.uint8), str(tmp_path / f"img.{ext}"))
    assert str(e.value).startswith(f"cannot write image {tmp_path / f'img.{ext}'}: ") and ".partial" not in str(e.value)


def test_frames_and_images_past_the_file_size_limit_say_so(tmp_path, monkeypatch):
    """Under `ulimit -f` (a farm's per-job limit) a frame that would not fit said 'check that the folder is
    writable', and an image '[Errno 27] File too large'; io.save_video names the limit."""
    import resource
    import cv2
    from PIL import Image
    from nodes.io.images import write_frames, write_png
    monkeypatch.setattr(resource, "getrlimit", lambda what: (200 << 10, resource.RLIM_INFINITY)
                        if what == resource.RLIMIT_FSIZE else (resource.RLIM_INFINITY,) * 2)
    monkeypatch.setattr(cv2, "imwrite", lambda path, img: False)
    with pytest.raises(NodeError) as e:
        write_frames(make_clip(2, 640, 480), str(tmp_path / "shots"))
    assert str(e.value) == ("frame_000000.png would grow past the largest file this process may write (`ulimit -f`, "
                            "200 KB): raise the limit, or write it elsewhere (0 frames were written before it)")

    def too_large(self, path, *a, **k):
        raise OSError(27, "File too large")
    monkeypatch.setattr(Image.Image, "save", too_large)
    with pytest.raises(NodeError) as e:
        write_png(np.zeros((480, 640, 3), np.uint8), str(tmp_path / "still.png"))
    assert str(e.value) == ("still.png would grow past the largest file this process may write (`ulimit -f`, 200 KB): "
                            "raise the limit, or write it elsewhere")


def test_frames_a_full_disk_stopped_are_gone_on_from_and_it_says_so(tmp_path, monkeypatch):
    """A first render stopped by a full disk said '2 frames were written before it' and no more: nothing said
    whether they were kept or what running it again would do (it goes on from them)."""
    import shutil
    import cv2
    from collections import namedtuple
    from nodes.io.images import write_frames
    real, usage = cv2.imwrite, shutil.disk_usage
    calls = []
    monkeypatch.setattr(cv2, "imwrite", lambda path, img: calls.append(path) or (len(calls) <= 2 and real(path, img)))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(10, 10, 0))
    wf = "kinograph: 1\nnodes: {}\n"
    with pytest.raises(NodeError) as e:
        write_frames(make_clip(4, 32, 32), str(tmp_path / "shots"), wf)
    assert str(e.value) == (f"the disk holding {tmp_path / 'shots'} is full: frame_000002.png was not written "
                            f"(2 frames were written before it). Free some space there or write the frames elsewhere. "
                            f"The frames written stay: run the workflow again once there is room and it goes on from "
                            f"there")
    calls.extend("xx")     # the next render stops at its first frame: no frames to go on from, none said to stay
    with pytest.raises(NodeError) as e:
        write_frames(make_clip(4, 32, 32), str(tmp_path / "other"), wf)
    assert str(e.value).endswith("(0 frames were written before it). Free some space there or write the frames "
                                 "elsewhere")
    monkeypatch.setattr(cv2, "imwrite", real)
    monkeypatch.setattr(shutil, "disk_usage", usage)
    info = write_frames(make_clip(4, 32, 32), str(tmp_path / "shots"), wf)
    assert info["resumed_at"] == "frame_000002.png"
    assert len(os.listdir(tmp_path / "shots")) == 5 and not (tmp_path / "takes").exists()


@pytest.mark.parametrize("name, says", [
    ("still", "'still' has no file type: name the image .png (it carries the workflow), .exr (linear half float, "
              "for Nuke and Blender), .jpg or .webp"),
    ("still.mp4", "'still.mp4' is a video name (io.save_video writes videos)"),
    ("still.psd", "'still.psd' is not an image type Kinograph writes (.psd)")])
def test_save_image_names_a_file_type_it_cannot_write_before_running(tmp_path, name, says):
    """io.save_image with no or a non-image extension ran everything upstream, then failed with Pillow's
    'unknown file extension: .partial' (the name of its own temporary file). Validation now refuses it."""
    from graph_engine.errors import WorkflowError
    (tmp_path / "wf.yaml").write_text(
        "kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 1, width: 16, height: 16}}\n"
        "  f: {type: video.frame, inputs: {video: p.video}}\n"
        f"  s: {{type: io.save_image, inputs: {{image: f.image}}, params: {{path: {name}}}}}\n")
    with pytest.raises(WorkflowError) as e:
        load_workflow(tmp_path / "wf.yaml")
    assert "node s: path: " + says in str(e.value) and "wf.yaml:5" in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ["wf.yaml"]
    for fine in ("still.png", "still.JPG", "still.webp", "still.tif"):
        wf = load_workflow(tmp_path / "wf.yaml", check=False)
        assert Session(use_disk=False).run(wf, overrides=[f"s.path={fine}"]).ok
    assert {"still.png", "still.JPG", "still.webp", "still.tif"} <= set(os.listdir(tmp_path))


def test_every_nth_offset_past_the_end_is_refused_and_the_sound_starts_with_the_first_kept_frame(lossless, tmp_path):
    """video.every_nth with offset past the clip's end made an empty clip: io.save_frames then wrote an empty
    folder and said ok. And with an offset the sound still started at frame 0, `offset` frames ahead."""
    from nodes.io.images import write_frames
    _, _, with_audio = lossless
    text = f"""
kinograph: 1
nodes:
  v: {{type: io.load_video, params: {{path: {with_audio}}}}}
  nth: {{type: video.every_nth, inputs: {{video: v.video}}, params: {{n: 2, offset: 6}}}}
  out: {{type: io.save_frames, inputs: {{video: nth.video}}, params: {{path: {tmp_path / 'f'}}}}}
"""
    r = Session(use_disk=False).run(load_workflow(text=text))
    assert r.ok, r.failed
    src, kept = r.outputs["v"]["video"], r.outputs["nth"]["video"]
    assert kept.length == 12 and kept.fps == src.fps / 2 and np.array_equal(kept.frame(0), src.frame(6))
    assert kept.audio.start == pytest.approx(src.audio.start + 6 / src.fps)
    text = text.replace("offset: 6", "offset: 30").replace(str(tmp_path / "f"), str(tmp_path / "g"))
    r = Session(use_disk=False).run(load_workflow(text=text))
    assert set(r.failed) == {"nth"} and not (tmp_path / "g").exists()
    assert "offset=30 is past the end of the clip (30 frames): nothing would be left to keep; use an offset below 30" \
        in r.failed["nth"]
    with pytest.raises(NodeError, match="the clip has no frames to write"):
        write_frames(Clip(0, 12.0, 16, 16, lambda a, b: np.zeros((0, 16, 16, 3), np.uint8)), str(tmp_path / "e"))
    assert not (tmp_path / "e").exists()


def test_concat_of_clips_at_different_rates_says_the_second_changes_speed():
    """video.concat joined a 12 fps clip after a 24 fps one at 24 fps without a word: its motion ran twice as
    fast. The frames are still joined as they are (as ComfyUI batches them), and the log says so."""
    wf = load_workflow(text="""
kinograph: 1
nodes:
  a: {type: generate.test_pattern, params: {frames: 4, width: 32, height: 24, fps: 24}}
  b: {type: generate.test_pattern, params: {frames: 3, width: 32, height: 24, fps: 12}}
  same: {type: generate.test_pattern, params: {frames: 3, width: 32, height: 24, fps: 24}}
  join: {type: video.concat, inputs: {video: a.video, other: b.video}}
  fine: {type: video.concat, inputs: {video: a.video, other: same.video}}
""")
    events = []
    r = Session(use_disk=False).run(wf, on_event=events.append)
    assert r.ok and r.outputs["join"]["video"].length == 7 and r.outputs["join"]["video"].fps == 24
    logs = {e["node"]: e["message"] for e in events if e["event"] == "log"}
    assert set(logs) == {"join"}
    assert logs["join"] == ("the clips run at 24 and 12 fps: joined at 24 fps, `other` plays 2x as fast as it was "
                            "made; resample it first (video.fps, mode resample, fps 24) to keep its speed")


def test_a_file_cut_short_is_named_not_padded_with_its_last_frame(tmp_path):
    # An MP4 copied only in part keeps its header (moov first) and loses its tail: the missing frames were
    # filled with the last one that decoded, a render ending on a frozen picture without a word.
    whole = tmp_path / "whole.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=24:d=4",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "12", "-movflags", "+faststart", str(whole)],
                   check=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.7)])
    clip = load_video(str(cut))
    assert clip.length == 96                       # the header's count
    with pytest.raises(NodeError) as e:
        for _ in clip.chunks():
            pass
    msg = str(e.value)
    assert str(cut) in msg and "cut short" in msg and "96 frames" in msg and "io.load_video's count" in msg
    kept = int(msg.split("keep to its first ")[1].split()[0])
    assert 0 < kept < 96 and len(load_video(str(cut), count=kept).to_array()) == kept
    assert load_video(str(whole)).to_array().shape[0] == 96


def test_every_nth_holds_a_few_source_chunks_not_one_per_frame():
    # Each kept frame was a view into its source chunk, and the list of them kept every one of those chunks
    # alive until the output chunk was stacked: every_nth 50 on 640x360 footage held 32 chunks (700 MB).
    import weakref
    blocks, most = [], [0]

    def reader(a, b):
        most[0] = max(most[0], sum(r() is not None for r in blocks))
        block = np.zeros((b - a, 8, 8, 3), np.uint8) + (np.arange(a, b) % 200).astype(np.uint8)[:, None, None, None]
        blocks.append(weakref.ref(block))
        return block

    src = Clip(400, 24, 8, 8, reader, chunk=10)
    kept = edit.every_nth(src, 20, 0)
    frames = np.concatenate([b for _, b in kept.chunks(20)])
    assert [int(f[0, 0, 0]) for f in frames] == [i % 200 for i in range(0, 400, 20)]
    assert most[0] <= 4          # the source's 3 cached chunks (and the one being read)


def test_transparent_png_is_laid_over_black_and_gives_its_alpha(tmp_path):
    """The alpha channel was dropped: what transparent pixels store (here a leftover red, as GIMP can keep)
    showed through, and a painted mask's transparency was lost. Now the colour is laid over black and the
    alpha comes out as a mask."""
    from PIL import Image
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 255                      # red everywhere, hidden where alpha is 0
    rgba[:, :2, 3] = 0
    rgba[:, 2:4] = (40, 200, 100, 128)      # half-covered green
    rgba[:, 4:] = (10, 20, 30, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "logo.png")
    Image.fromarray(rgba[..., :3], "RGB").save(tmp_path / "flat.png")
    pal = Image.fromarray(rgba[..., :3], "RGB").quantize(4)
    pal.save(tmp_path / "pal.png", transparency=pal.getpixel((0, 0)))
    wf = load_workflow(text=f"""
kinograph: 1
nodes:
  logo: {{type: io.load_image, params: {{path: {tmp_path / 'logo.png'}}}}}
  flat: {{type: io.load_image, params: {{path: {tmp_path / 'flat.png'}}}}}
  pal: {{type: io.load_image, params: {{path: {tmp_path / 'pal.png'}}}}}
""")
    out = Session(use_disk=False).run(wf).outputs
    a = rgba[..., 3:].astype(np.float64) / 255
    assert np.array_equal(out["logo"]["image"], np.round(rgba[..., :3] * a).astype(np.uint8))
    assert np.allclose(out["logo"]["alpha"], a[..., 0])
    assert np.array_equal(out["flat"]["image"], rgba[..., :3]) and np.all(out["flat"]["alpha"] == 1.0)
    assert np.all(out["pal"]["alpha"][:, :2] == 0) and np.all(out["pal"]["alpha"][:, 2:] == 1)
    assert np.all(out["pal"]["image"][:, :2] == 0)


def test_the_test_pattern_makes_a_chunk_in_little_memory():
    """Its float temporaries for a whole chunk at once came to 340 MB at 1080p (4 frames): more than the
    temporal node it fed. A frame at a time, the chunk costs a few times its own bytes (16x before)."""
    import tracemalloc
    from nodes.video.test_pattern import pattern_frames
    pattern_frames(0, 1, 64, 64, 8)
    tracemalloc.start()
    out = pattern_frames(0, 8, 640, 360, 8)
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert top < 5 * out.nbytes
    # the same pixels as each frame made alone
    assert np.array_equal(out[5], pattern_frames(5, 6, 640, 360, 8)[0])


def _ramp_and_patches() -> np.ndarray:
    """A grey ramp over every level above saturated and mixed colour patches (4 frames of 64x256)."""
    ramp = np.repeat(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 32, 0), 3, 2)
    patches = np.zeros((32, 256, 3), np.uint8)
    for i, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
                           (200, 120, 60), (60, 120, 200)]):
        patches[:, i * 32:(i + 1) * 32] = c
    return np.stack([np.concatenate([ramp, patches])] * 4)


@pytest.mark.parametrize("codec,suffix,tv,white", [("prores", ".mov", (64, 940), 1023), ("h264", ".mp4", (16, 235), 255)])
def test_saved_video_is_tagged_bt709_tv_range_and_reads_back_exactly(tmp_path, codec, suffix, tv, white):
    """A colourist checks a render on scopes: its levels must be what was computed. The file is tagged
    BT.709 / TV range (on the stream and on its frames) and its luma holds the TV-range codes of the grey ramp (read off the coded
    plane, no conversion in between); read back, 10-bit ProRes came out 1.6 levels dark on average
    (red 255 as 253), libswscale's default 10-bit conversion; now it is exact, and 8-bit within a level."""
    import av
    frames = _ramp_and_patches()
    path = tmp_path / f"bars{suffix}"
    write_video(Clip.from_array(frames), str(path), codec=codec, crf=0)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        f = next(c.decode(s))
        for tags in (cc, f):    # bt709 primaries, transfer and matrix; TV range
            assert (tags.color_primaries, tags.color_trc, tags.colorspace, tags.color_range) == (1, 1, 1, 1)
        deep = white > 255
        y = np.frombuffer(bytes(f.planes[0]), np.uint16 if deep else np.uint8).reshape(f.height, -1)[8, :256]
    black, top = tv
    want_y = black + (top - black) * np.arange(256) / 255
    assert np.abs(y - want_y).max() <= 0.6     # libswscale rounds in fixed point
    back = load_video(str(path)).to_array()[0].astype(int)
    ramp_err = back[:24] - frames[0, :24]
    patch_err = [np.abs(back[40:56, i * 32 + 8:i * 32 + 24] - frames[0, 40:56, i * 32 + 8:i * 32 + 24]).max()
                 for i in range(8)]
    if deep:
        assert np.abs(ramp_err).max() == 0 and max(patch_err) == 0
    else:
        assert np.abs(ramp_err).max() <= 1 and max(patch_err) <= 2


def test_load_video_lut_reads_10_bit_log_footage_without_banding(tmp_path):
    """Camera log to Rec. 709 expands contrast: applied to 8-bit frames (color.lut after io.load_video) a
    smooth 10-bit log ramp came out in steps of 2-4 levels. io.load_video's lut looks each picture up from
    its 10 bits, so the ramp keeps every level the curve passes, matching the curve evaluated on the
    file's own code values."""
    from nodes.color import nodes as color_nodes
    from node_call import Nodes
    from graph_engine.context import Context
    codes = np.linspace(150, 500, 1024) / 1023          # S-Log3 code values from shadows to highlights
    curve = lambda x: np.clip((x - 150 / 1023) / (350 / 1023), 0, 1) ** 1.2      # a steep log-to-display curve
    ramp = np.round(np.repeat(np.repeat(codes[None, :, None], 16, 0), 3, 2) * 65535).astype(np.uint16)
    src = tmp_path / "slog3.mov"
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb48le", "-s", "1024x16",
                    "-r", "24", "-i", "-", "-vf", "scale=out_color_matrix=bt709:out_range=tv", "-c:v", "prores_ks",
                    "-profile:v", "3", "-pix_fmt", "yuv422p10le", "-color_range", "tv", "-colorspace", "bt709",
                    str(src)], input=np.concatenate([ramp] * 2).tobytes(), check=True)
    # Resolve's layout: a 1D shaper carrying the curve, then a 3D table (identity here).
    g = np.linspace(0, 1, 4096)
    cube = tmp_path / "to709.cube"
    cube.write_text("LUT_1D_SIZE 4096\nLUT_3D_SIZE 2\n" + "\n".join(f"{v:.7f} {v:.7f} {v:.7f}" for v in curve(g))
                    + "\n" + "\n".join(f"{r} {gg} {b}" for b in (0, 1) for gg in (0, 1) for r in (0, 1)) + "\n")
    import av
    with av.open(str(src)) as c:                 # the 10-bit TV-range luma codes the file holds (grey: Y = R'G'B')
        f = next(c.decode(video=0))
        y = np.frombuffer(bytes(f.planes[0]), np.uint16).reshape(f.height, -1)[8, :1024]
    want = curve((y - 64) / 876) * 255
    deep = load_video(str(src), lut=str(cube)).to_array()[0, 8, :, 0].astype(int)
    assert np.abs(deep - want).max() <= 0.75       # rounding; libswscale's 16-bit white (65283) is allowed for
    ideal = np.round(want)
    assert np.abs(np.diff(deep)).max() <= np.abs(np.diff(ideal)).max()
    assert len(np.unique(deep)) >= len(np.unique(ideal)) - 2
    late = Nodes(color_nodes).lut(Context("l"), load_video(str(src)), path=str(cube)).to_array()[0, 8, :, 0]
    assert len(np.unique(late)) < 0.8 * len(np.unique(ideal))     # what the lut param is for: 8 bits first bands
    # An 8-bit source gains nothing and loses nothing: the same as color.lut after it.
    h264 = tmp_path / "ramp.mp4"
    write_video(Clip.from_array(np.stack([(np.repeat(ramp[..., :512, :], 2, 0)[:16] >> 8).astype(np.uint8)] * 2)),
                str(h264), crf=0)
    np.testing.assert_array_equal(load_video(str(h264), lut=str(cube)).to_array(),
                                  Nodes(color_nodes).lut(Context("l"), load_video(str(h264)), path=str(cube)).to_array())


def test_save_video_without_a_codec_writes_what_the_file_name_asks_for(tmp_path):
    """The codec defaulted to h264 whatever the name: a workflow saving out.webm or out.gif, the codec never
    touched, failed with "a .webm file takes codec vp9 or av1". codec auto (the default) follows the name, as
    ffmpeg does; a codec the user sets is still held to the name."""
    import av
    from PIL import Image
    names = {"a.mp4": "h264", "a.mov": "h264", "a.mkv": "h264", "a.webm": "vp9", "a.gif": "gif"}
    saves = "".join(f"  s{i}: {{type: io.save_video, inputs: {{video: p.video}}, params: {{path: {tmp_path}/{n}}}}}\n"
                    for i, n in enumerate([*names, "a.webp"]))
    r = Session(use_disk=False).run(load_workflow(text=f"""
kinograph: 1
nodes:
  p: {{type: generate.test_pattern, params: {{frames: 4, width: 32, height: 32}}}}
{saves}"""))
    assert r.ok, r.failed
    for name, codec in names.items():
        with av.open(str(tmp_path / name)) as c:
            assert c.streams.video[0].codec_context.name == codec and sum(1 for _ in c.decode(video=0)) == 4
    with Image.open(tmp_path / "a.webp") as im:
        assert im.format == "WEBP" and im.n_frames == 4
    r = Session(use_disk=False).run(load_workflow(text=f"""
kinograph: 1
nodes:
  p: {{type: generate.test_pattern, params: {{frames: 4, width: 32, height: 32}}}}
  s: {{type: io.save_video, inputs: {{video: p.video}}, params: {{path: {tmp_path}/b.webm, codec: h264}}}}
"""))
    assert not r.ok and "a .webm file takes codec vp9 or av1; for h264 name the file .mp4" in r.failed["s"]
