"""How far a lazy clip is made (graph_engine/clip.py), through the executor as the editor runs it (its wrappers: the
work meter, the frames kept between runs, the spill of a clip two nodes read): a per-frame node reads its source
exactly as far as it is asked, and the clips that show the same frames share one computation."""
import numpy as np
import pytest

from graph_engine import Clip, node
from graph_engine.executor import Executor
from graph_engine.registry import Registry
from graph_engine.types import VIDEO
from graph_engine.workflow import parse_workflow

MADE = []       # (node, first frame, stop) of each call of the test nodes' readers


@node("test.tracker", category="Test")
def tracker(ctx, video: VIDEO) -> VIDEO:
    """Stands for SAM 2's tracker: costly frames, made one at a time."""
    def read(a, b):
        MADE.append(("tracker", a, b))
        return 255 - video.frames(a, b)
    return Clip(video.length, video.fps, video.width, video.height, read, chunk=1)


@node("test.measured", category="Test")
def measured(ctx, video: VIDEO) -> VIDEO:
    """Stands for restore.deflicker on a deep plate: its float pixels (Clip.linear) are made from what its 8-bit pass
    finds, so they read its 8-bit frames."""
    def read(a, b):
        MADE.append(("measured", a, b))
        return video.frames(a, b) // 2 + 10
    out = video.with_(reader=read)
    return out.with_(linear=lambda a, b: out.frames(a, b).astype(np.float32) / 255)


WF = """kinograph: 1
nodes:
  p: {type: generate.test_pattern, params: {frames: 40, width: 64, height: 48}}
  t: {type: test.tracker, inputs: {video: p.video}}
  g: {type: color.grade, inputs: {video: t.video}, params: {exposure: 0.5}}
  m: {type: mask.from_video, inputs: {video: g.video}}
  grow: {type: mask.grow, inputs: {mask: m.mask}, params: {pixels: 2}}
  d: {type: test.measured, inputs: {video: p.video}}
  flip: {type: video.flip, inputs: {video: d.video}}
  grade: {type: color.grade, inputs: {video: d.video}}
"""


@pytest.fixture
def run(monkeypatch, tmp_path):
    from graph_engine import clip
    monkeypatch.setattr(clip, "MAX_CHUNK", 8)       # five chunks of 8 frames, two kept in memory
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))
    reg = Registry()
    reg.load_entry_points()
    reg.register(tracker)
    reg.register(measured)
    wf, problems = parse_workflow(WF, None, reg)
    assert not problems

    def outputs():
        MADE.clear()
        res = Executor(reg, use_disk=False, keep_frames=True).run(wf)
        assert res.ok, res.failed
        MADE.clear()
        return res.outputs
    return outputs


def made(name):
    return [(a, b) for n, a, b in MADE if n == name]


def test_a_per_frame_chain_after_a_costly_node_makes_only_the_frames_asked_for(run):
    """The viewer showing frame 0 of mask.grow after SAM 2's tracker made the grow's whole chunk (32 small frames)
    and the tracker's 32 frames with it. grade, from_video and grow are per-frame: each reads as far as asked."""
    whole = run()["grow"]["mask"]
    assert whole.chunk == 8
    want = whole.frames(0, 40)
    assert sorted(made("tracker")) == [(i, i + 1) for i in range(40)]
    out = run()["grow"]["mask"]
    assert np.array_equal(out.frame(0), want[0]) and made("tracker") == [(0, 1)]
    assert np.array_equal(out.frames(5, 7), want[5:7]) and made("tracker") == [(0, 1), (5, 6), (6, 7)]
    assert np.array_equal(out.frames(0, 40), want)          # the rest, each frame once
    assert sorted(made("tracker")) == [(i, i + 1) for i in range(40)]
    mid = run()["grow"]["mask"]
    assert np.array_equal(mid.frames(13, 27), want[13:27]) and sorted(made("tracker")) == [(i, i + 1)
                                                                                          for i in range(13, 27)]


@pytest.mark.parametrize("floats_first", [False, True])
def test_a_nodes_frames_and_its_floats_are_made_once(run, floats_first):
    """restore.stabilize and deflicker on a deep plate: a reader taking the 8-bit frames and the float pixels ran the
    8-bit pass twice, the floats reading a clip of their own beside the one the executor handed on. Two nodes read it
    here too (the run's spill)."""
    outs = run()
    clip, flip = outs["d"]["video"], outs["flip"]["video"]
    for a in range(0, 40, 8):
        if floats_first:
            floats = clip.linear(a, a + 8)
            frames = flip.frames(a, a + 8)
        else:
            frames = flip.frames(a, a + 8)
            floats = clip.linear(a, a + 8)
        assert np.array_equal(frames, clip.frames(a, a + 8)[:, :, ::-1])
        assert np.array_equal(floats, clip.frames(a, a + 8).astype(np.float32) / 255)
    assert made("measured") == [(a, a + 8) for a in range(0, 40, 8)]


def test_the_engines_wrappers_hold_a_nodes_frames_once(tmp_path, monkeypatch):
    """The work meter, the kept frames and the spill show a node's frames in the node's own chunks: the viewer stepping
    through a 10-node per-frame chain in the editor held every node's frames twice (1020 MB of chunks at 1080p where
    main held 522)."""
    from graph_engine.clip import WorkMeter
    from graph_engine.keep import FrameStore
    from graph_engine.spill import Spill
    monkeypatch.setattr("graph_engine.keep.worth_keeping", lambda seconds, nbytes: True)
    frames = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), np.uint8)
    made = []

    def read(a, b):
        made.append((a, b))
        return frames[a:b] // 2
    node = Clip(6, 24, 8, 8, read, chunk=3, local=True,
                matte=Clip(6, 24, 8, 8, lambda a, b: frames[a:b, ..., :1], chunk=3, channels=1))
    meter, store = WorkMeter(), FrameStore(tmp_path / "frames", 1 << 20)
    spill = Spill(tmp_path / "spill")
    shown = spill.share("n", store.keep(meter.wrap("n", node), meter))
    for i in (4, 0, 5, 1):
        assert np.array_equal(shown.frame(i), frames[i] // 2)
        assert np.shares_memory(shown.frames(i, i + 1), node.frames(i, i + 1))
        assert np.shares_memory(shown.matte.frames(i, i + 1), node.matte.frames(i, i + 1))
    assert made == [(4, 5), (0, 1), (5, 6), (1, 2)]
    assert set(meter.take()) == {"n"}
    spill.close()
    store.close()


def test_a_wrapped_clip_lets_go_of_what_its_matte_reads_through():
    """A matte in other chunks is read through a clip of the colour's chunks; dropping the wrapper's frames drops
    those of the matte it reads, as dropping the node's own does."""
    from graph_engine.clip import WorkMeter
    alpha = Clip(4, 24, 8, 8, lambda a, b: np.full((b - a, 8, 8, 1), 7, np.uint8), chunk=4, channels=1)
    node = Clip(4, 24, 8, 8, lambda a, b: np.zeros((b - a, 8, 8, 3), np.uint8), chunk=2, matte=alpha)
    shown = WorkMeter().wrap("n", node)
    assert shown.matte.frame(3)[0, 0, 0] == 7 and alpha._chunks.cache
    shown.drop_cache()
    assert not alpha._chunks.cache and not node.matte._chunks.cache


def test_nodes_with_readers_of_their_own_make_only_the_frames_shown(monkeypatch):
    """The editor's viewer showing frame 12 of a 40-frame clip: lines, pose, inpaint's grey, the mattes, stitch, the
    motion pictures and the multi-frame upscale each built their reader by hand and made their whole chunk (32
    source frames) for it. Now a per-frame node makes the frame, a network the batch it runs in (lines, 4), a
    temporal one exactly its window (flow's pictures: the pair of frames a flow is found between); and frames read
    alone are those of a whole run."""
    from nodes.generate.inpaint import greyed
    from nodes.lines.extract import BATCH, line_clip, standard_picture
    from nodes.mask.nodes import outpaint_pad
    from nodes.motion.camera import preset
    from nodes.motion.flowfield import flow_from_video, flow_preview
    from nodes.motion.tracks import Tracks, draw_tracks
    from nodes.motion.warp import apply_camera
    from nodes.pose import dwpose
    from nodes.restore.denoise import denoise_clip
    from nodes.restore.dust import dust_clip
    from nodes.upscale.multiframe import multiframe_clip
    from nodes.video.matte import over, with_alpha
    from nodes.video.stitch import stitch
    n, w, h = 40, 24, 16
    plate = np.random.default_rng(1).integers(0, 256, (n, h, w, 3), np.uint8)
    asked = []

    def read(a, b):
        asked.extend(range(a, b))
        return plate[a:b]
    src = Clip(n, 24, w, h, read, chunk=8, local=True)

    class Pose:         # DWPose's two networks, of which only the frames they are given matter here
        def boxes(self, frame):
            return np.array([[0.0, 0.0, w, h]])

        def keypoints(self, frames, boxes):
            return [np.tile([[w / 2, h / 2, 1.0]], (1, 134, 1)) + f.mean() / 100 for f in frames]
    monkeypatch.setattr(dwpose, "load_dwpose", lambda *a, **k: Pose())
    grid = np.random.default_rng(2).uniform(0, [w, h], (3, n, 2)).astype(np.float32)
    hole = np.zeros((h, w), np.float32)
    hole[4:9, 5:12] = 1
    # each made afresh for each look (a run), with what it found before (a flow's fields, a batch) let go;
    # what frames of the source it makes for frame 12, for frame 0, and for 13-14 after 12
    nodes = {"lines": (lambda: line_clip(src, 32, lambda f: standard_picture(f, 32), True), ([12], [0], [13, 14])),
             "lines net": (lambda: line_clip(src, 32, lambda b: np.stack([standard_picture(f, 32) for f in b]), False),
                           (list(range(12, 12 + BATCH)), list(range(BATCH)), [])),
             "pose": (lambda: dwpose.pose_clip(src, "", "", resolution=32), ([12], [0], [13, 14])),
             "grey": (lambda: greyed(src, hole), ([12], [0], [13, 14])),
             "outpaint pad": (lambda: outpaint_pad(None, src, 4, 0, 4, 2, 2)["video"], ([12], [0], [13, 14])),
             "over": (lambda: over(src.map(lambda f: f // 2), src), ([12], [0], [13, 14])),
             "key": (lambda: with_alpha(src, "chroma"), ([12], [0], [13, 14])),
             "stitch": (lambda: stitch(src, src.map(lambda f: 255 - f)), ([12], [0], [13, 14])),
             "camera": (lambda: apply_camera(preset("zoom_in", n, w, h), video=src), ([12], [0], [13, 14])),
             "tracks": (lambda: draw_tracks(Tracks(grid, np.ones((3, n), bool), w, h), src), ([12], [0], [13, 14])),
             "flow": (lambda: flow_preview(flow_from_video(src, "fast")), ([12, 13], [0, 1], [14, 15])),
             "multiframe": (lambda: multiframe_clip(src, scale=2, radius=2), ([10, 11, 12, 13, 14], [0, 1, 2],
                                                                              [15, 16])),
             "denoise": (lambda: denoise_clip(None, src, radius=1), ([11, 12, 13], [0, 1], [14, 15])),
             "dust": (lambda: dust_clip(None, src), ([10, 11, 12, 13, 14], [0, 1, 2], [15, 16]))}

    def look(make):
        src.drop_cache()
        asked.clear()
        return make()
    got = {}
    for name, (make, _) in nodes.items():
        whole = look(make)
        want, matte = whole.frames(0, 16), None if whole.matte is None else whole.matte.frames(0, 16)
        made = []
        for k in (12, 0):
            clip = look(make)
            assert np.array_equal(clip.frame(k), want[k]), name
            assert matte is None or np.array_equal(clip.matte.frame(k), matte[k]), name
            made.append(sorted(asked))
        clip = look(make)
        clip.frame(12)
        asked.clear()
        assert np.array_equal(clip.frames(13, 15), want[13:15]), name       # the viewer stepping on
        got[name] = tuple(made) + (sorted(asked),)
    assert got == {name: made for name, (_, made) in nodes.items()}
