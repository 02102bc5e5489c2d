"""Renders carry the plate's timecode: an editor (Resolve, Premiere, Avid) conforming a cut finds the render
where the source was. Before, every render started at 00:00:00:00, whatever the camera had stamped."""
import subprocess
import textwrap

import pytest

from graph_engine import Timecode
from graph_engine.api import Session, load_workflow
from nodes.io.video_write import ffmpeg_exe


@pytest.mark.parametrize("frame,label", [(0, "00:00:00;00"), (1799, "00:00:59;29"), (1800, "00:01:00;02"),
                                         (17981, "00:09:59;29"), (17982, "00:10:00;00"), (107892, "01:00:00;00")])
def test_drop_frame_labels_match_smpte(frame, label):
    """NTSC drop-frame skips labels ;00 and ;01 each minute but every tenth: an hour is 107892 frames."""
    assert Timecode(frame, 30000 / 1001, drop=True).label() == label
    assert Timecode.parse(label, 30000 / 1001).frame == frame


def test_frames_are_counted_at_the_clip_rate():
    """Frame 3 of a 48 fps clip from a 24 fps plate at 01:00:00:00 is 01:00:00:03 at 48, not 01:00:00:02
    at 24 (1.5 frames rounded) written as 01:00:00:04 at 48."""
    tc = Timecode.parse("01:00:00:00", 24.0)
    assert tc.shifted(3, 48.0).label() == "01:00:00:03" and tc.shifted(3, 48.0).at(48.0).label() == "01:00:00:03"
    assert tc.shifted(3, 24.0).label() == "01:00:00:03"


def test_labels_that_are_not_timecode_are_ignored():
    assert Timecode.parse("01:02:03:24", 24.0) is None           # frame 24 of 24 does not exist
    assert Timecode.parse("yesterday", 24.0) is None
    assert Timecode.parse("10:00:00:00", 25.0).frame == 10 * 3600 * 25


def stated(path) -> dict:
    """Every timecode tag FFmpeg finds in the file, read with PyAV alone (not Kinograph's reader)."""
    import av
    with av.open(str(path)) as c:
        tags = [c.metadata, *(s.metadata for s in c.streams)]
    return {t.get("timecode") or t.get("TIMECODE") for t in tags} - {None}


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """A 2-second 24 fps camera file whose first frame is stamped 01:02:03:04."""
    path = tmp_path_factory.mktemp("tc") / "A001C003.mov"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=s=64x48:d=2:r=24",
                    "-c:v", "libx264", "-timecode", "01:02:03:04", str(path)], check=True)
    return path


def run(tmp_path, plate, nodes: str):
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"kinograph: 1\nnodes:\n  load: {{type: io.load_video, params: {{path: '{plate}', start: 5}}}}\n"
                  + textwrap.indent(textwrap.dedent(nodes), "  "))
    res = Session().run(load_workflow(str(wf)))
    assert res.ok, res.failed


@pytest.mark.parametrize("ext,codec", [("mov", "prores"), ("mp4", "h264"), ("mkv", "ffv1"), ("webm", "vp9")])
def test_a_render_starts_at_the_timecode_of_its_first_source_frame(tmp_path, plate, ext, codec):
    """Loaded from frame 5 and trimmed by 3 more: the render's first frame is source frame 8, 01:02:03:12."""
    run(tmp_path, plate, f"""\
        trim: {{type: video.trim, inputs: {{video: load.video}}, params: {{start: 3}}}}
        save: {{type: io.save_video, inputs: {{video: trim.video}}, params: {{path: out.{ext}, codec: {codec}}}}}
        """)
    assert stated(tmp_path / f"out.{ext}") == {"01:02:03:12"}


def test_a_doubled_frame_rate_keeps_the_time_of_the_first_frame(tmp_path, plate):
    """At 48 fps half a second is frame 24: 01:02:03:09 at 24 fps is 01:02:03:18 at 48 (both outputs of one
    chain: the second reads the first's frames back from the run's spill folder)."""
    run(tmp_path, plate, """\
        tween: {type: interpolate.flow, inputs: {video: load.video}, params: {factor: 2}}
        save: {type: io.save_video, inputs: {video: tween.video}, params: {path: double.mov, codec: prores}}
        copy: {type: io.save_video, inputs: {video: tween.video}, params: {path: copy.mkv, codec: ffv1}}
        """)
    assert stated(tmp_path / "double.mov") == {"01:02:03:18"} and stated(tmp_path / "copy.mkv") == {"01:02:03:18"}


def test_a_reversed_clip_carries_no_timecode(tmp_path, plate):
    """Its first frame is the source's last, and its labels would count backwards: it gets none."""
    run(tmp_path, plate, """\
        back: {type: video.reverse, inputs: {video: load.video}}
        save: {type: io.save_video, inputs: {video: back.video}, params: {path: back.mov, codec: prores}}
        """)
    assert stated(tmp_path / "back.mov") == set()


def test_a_clip_from_the_disk_cache_keeps_its_timecode(tmp_path):
    """A cached sampling result read back in a later session renders with the timecode it had."""
    import numpy as np
    from graph_engine import Clip
    from graph_engine.cache import DiskCache
    tc = Timecode.parse("01:00:10:05", 25.0)
    clip = Clip.from_array(np.zeros((3, 8, 8, 3), np.uint8), fps=25.0).with_(timecode=tc)
    DiskCache(tmp_path, 1 << 30).put("k" * 64, {"video": clip}, {}, "test.node")
    outputs, _ = DiskCache(tmp_path, 1 << 30).get("k" * 64)
    assert outputs["video"].timecode == tc and outputs["video"].length == 3


def test_exr_frames_of_a_plate_carry_their_timecode(tmp_path, plate):
    """Nuke conforms an EXR sequence by each frame's timeCode attribute: written for every frame."""
    import OpenEXR
    run(tmp_path, plate, """\
        save: {type: io.save_frames, inputs: {video: load.video}, params: {path: plate, format: exr, first: 1001}}
        """)
    got = []
    for name in sorted(p.name for p in (tmp_path / "plate").glob("*.exr"))[:17]:
        with OpenEXR.File(str(tmp_path / "plate" / name)) as f:
            t, rate = f.header()["timeCode"], f.header()["framesPerSecond"]
        got.append((name, f"{t.hours:02d}:{t.minutes:02d}:{t.seconds:02d}:{t.frame:02d}", rate))
    assert got[0] == ("frame_001001.exr", "01:02:03:09", 24)
    assert got[16] == ("frame_001017.exr", "01:02:04:01", 24)      # frame 9 + 16 = 25: a second on
