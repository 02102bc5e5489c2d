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
