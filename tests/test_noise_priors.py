import math

import numpy as np
import pytest
import torch
from scipy import stats

from nodes.consistency import noise_priors as npri

SHAPE = (1, 4, 8, 32, 32)  # 4096 values per frame: correlations to about +-0.02


def frame_corr(x, i, j):
    a, b = x[:, :, i].flatten().double(), x[:, :, j].flatten().double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def assert_standard_normal_frames(x, tol=0.06):
    for t in range(x.shape[2]):
        f = x[:, :, t].flatten().double()
        assert abs(float(f.mean())) < tol and abs(float(f.std()) - 1) < tol, t
        assert stats.kstest(f.numpy(), "norm").pvalue > 1e-3, t


PRIORS = {
    "independent": lambda s, g: npri.independent(s, g),
    "freenoise": lambda s, g: npri.freenoise(s, g, 4, 1),
    "repeat": lambda s, g: npri.repeat_context(s, g, 3),
    "constant": lambda s, g: npri.constant(s, g),
    "mixed": lambda s, g: npri.mixed(s, g, 1.0),
    "progressive": lambda s, g: npri.progressive(s, g, 2.0),
    "warp": lambda s, g: npri.warp_noise(s, g, np.full((s[2] - 1, 16, 16, 2), 0.3, np.float32)),
}


@pytest.mark.parametrize("name", PRIORS)
def test_every_prior_is_per_frame_standard_normal_and_seeded(name):
    make = PRIORS[name]
    x = make(SHAPE, npri.generator(7))
    assert x.shape == SHAPE and x.dtype == torch.float32
    assert_standard_normal_frames(x)
    assert torch.equal(x, make(SHAPE, npri.generator(7)))
    assert not torch.equal(x, make(SHAPE, npri.generator(8)))


def test_independent_frames_are_uncorrelated():
    x = npri.independent(SHAPE, npri.generator(0))
    assert all(abs(frame_corr(x, 0, t)) < 0.06 for t in range(1, 8))


def test_freenoise_frames_beyond_l_are_shuffled_copies_of_earlier_blocks():
    length, overlap = 6, 2
    x = npri.freenoise((1, 2, 17, 4, 4), npri.generator(3), length, overlap)
    first = [x[:, :, i] for i in range(length)]
    delta = length - overlap
    for place in range(length, 17, delta):
        block = range(place, min(place + delta, 17))
        src = list(range(place - length, place - length + len(block)))
        # The block is a permutation of the frames L before it (which are themselves from the first L).
        matches = [next(s for s in src if torch.equal(x[:, :, t], x[:, :, s])) for t in block]
        assert sorted(matches) == src
        assert all(any(torch.equal(x[:, :, t], f) for f in first) for t in block)
    assert any(not torch.equal(x[:, :, t], x[:, :, t - length]) for t in range(length, 17))


def test_repeat_and_constant_correlations():
    x = npri.repeat_context(SHAPE, npri.generator(0), 3)
    assert all(torch.equal(x[:, :, t], x[:, :, t % 3]) for t in range(8))
    assert abs(frame_corr(x, 0, 1)) < 0.06
    c = npri.constant(SHAPE, npri.generator(0))
    assert all(torch.equal(c[:, :, t], c[:, :, 0]) for t in range(8))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_mixed_noise_correlation_is_alpha2_over_1_plus_alpha2(alpha):
    x = npri.mixed(SHAPE, npri.generator(1), alpha)
    want = alpha ** 2 / (1 + alpha ** 2)
    got = np.mean([frame_corr(x, i, j) for i in range(8) for j in range(i + 1, 8)])
    assert abs(got - want) < 0.03
    assert abs(frame_corr(x, 0, 7) - want) < 0.06  # no decay with distance


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_progressive_noise_is_ar1(alpha):
    x = npri.progressive(SHAPE, npri.generator(2), alpha)
    rho = alpha / math.sqrt(1 + alpha ** 2)
    for k in (1, 2, 4):
        got = np.mean([frame_corr(x, i, i + k) for i in range(8 - k)])
        assert abs(got - rho ** k) < 0.05, (k, got, rho ** k)


def test_warp_integer_translation_moves_noise_exactly():
    g = npri.generator(4)
    frame = torch.randn(1, 2, 12, 12, generator=g)
    flow = np.zeros((12, 12, 2), np.float32)
    flow[..., 0] = 2  # everything moves 2 px right
    out = npri.warp_noise_frame(frame, flow, g, subdivisions=3)
    torch.testing.assert_close(out[..., :, 2:], frame[..., :, :-2], rtol=0, atol=1e-5)
    # The disoccluded columns get fresh noise, not copies.
    assert not torch.allclose(out[..., :, :2], frame[..., :, :2])
    zero = npri.warp_noise_frame(frame, np.zeros_like(flow), g)
    torch.testing.assert_close(zero, frame, rtol=0, atol=1e-5)


def test_warp_fractional_motion_keeps_gaussianity_unlike_bilinear():
    g = npri.generator(5)
    frame = torch.randn(1, 16, 32, 32, generator=g)
    flow = np.zeros((32, 32, 2), np.float32)
    flow[..., 0] = 0.5
    out = npri.warp_noise_frame(frame, flow, g)
    inner = out[..., :, 1:].flatten()
    assert abs(float(inner.std()) - 1) < 0.04 and stats.kstest(inner.numpy(), "norm").pvalue > 1e-3
    # Half of each pixel's sub-pixels come from each of the two source pixels it overlaps.
    src = frame[..., :, 1:].flatten()
    prev = frame[..., :, :-1].flatten()
    assert abs(float(torch.corrcoef(torch.stack([inner, src]))[0, 1]) - 0.5) < 0.05
    assert abs(float(torch.corrcoef(torch.stack([inner, prev]))[0, 1]) - 0.5) < 0.05
    # Neighbouring pixels stay independent (plain bilinear warping would correlate them by ~0.5).
    assert abs(float(torch.corrcoef(torch.stack([out[..., :, 1:-1].flatten(), out[..., :, 2:].flatten()]))[0, 1])) < 0.05
    bilinear_std = float((0.5 * frame[..., :, 1:] + 0.5 * frame[..., :, :-1]).std())
    assert bilinear_std < 0.75


def test_warp_noise_follows_a_zoom_and_scales_pixel_flows():
    h = w = 64
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    zoom = np.dstack([(xs - w / 2) * 0.05, (ys - h / 2) * 0.05])  # 5% zoom-in per frame, 64 px flow
    x = npri.warp_noise((1, 4, 5, 16, 16), npri.generator(6), np.stack([zoom] * 4))
    assert_standard_normal_frames(x, tol=0.1)
    # The centre barely moves, so the noise there persists across frames.
    c = x[:, :, :, 6:10, 6:10]
    assert frame_corr(c, 0, 1) > 0.6


def test_warp_composes_flows_per_latent_frame():
    flow = np.zeros((8, 8, 2), np.float32)
    flow[..., 1] = 1  # 1 px down per pixel frame
    x = npri.warp_noise((1, 1, 3, 8, 8), npri.generator(9), np.stack([flow] * 4))  # 2 flows per latent frame
    torch.testing.assert_close(x[0, 0, 1, 2:], x[0, 0, 0, :-2], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="needs 2 flow fields"):
        npri.warp_noise((1, 1, 3, 8, 8), npri.generator(9), np.stack([flow] * 3))


def test_warp_reads_a_flow_value_field_by_field():
    from nodes.motion.flowfield import Flow
    fields = np.random.default_rng(0).normal(0, 2, (3, 24, 24, 2)).astype(np.float32)
    lazy = Flow(3, 24, 24, lambda i: fields[i])
    a = npri.warp_noise((1, 2, 4, 12, 12), npri.generator(1), lazy)
    b = npri.warp_noise((1, 2, 4, 12, 12), npri.generator(1), fields)
    assert torch.equal(a, b)


def test_blend_is_variance_preserving_and_replaces_under_the_mask():
    a = npri.independent(SHAPE, npri.generator(10))
    b = npri.independent(SHAPE, npri.generator(11))
    half = npri.blend(a, b, 0.5)
    assert_standard_normal_frames(half)
    assert abs(frame_corr(half, 0, 0) - 1) < 1e-6
    mask = np.zeros((64, 64), np.float32)
    mask[:, 32:] = 1  # right half, at pixel resolution 2x the latent
    out = npri.blend(a, b, 1.0, mask)
    assert torch.equal(out[..., :16], a[..., :16])
    torch.testing.assert_close(out[..., 16:], b[..., 16:])
    assert_standard_normal_frames(out)
    with pytest.raises(ValueError, match="mask must be"):
        npri.blend(a, b, 1.0, np.zeros((3, 64, 64)))


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        npri.independent((4, 32, 32), npri.generator(0))
    with pytest.raises(ValueError, match="overlap < length"):
        npri.freenoise(SHAPE, npri.generator(0), 4, 4)


# -- the noise.* nodes -----------------------------------------------------------------------------

def wan_like_latent(frames=81, t=21, size=16):
    from nodes.generate.latent import Latent
    return Latent(torch.zeros(1, 4, t, size, size), "wan", frames, 16.0, size * 8, size * 8)


def test_noise_nodes_shape_seed_and_pixel_frame_lengths():
    from graph_engine.context import Context
    from node_call import Nodes
    from nodes.consistency import noise_nodes
    n = Nodes(noise_nodes)
    ctx = Context("noise")
    lat = wan_like_latent()
    for name in ("noise_independent", "noise_freenoise", "noise_repeat", "noise_constant", "noise_mixed",
                 "noise_progressive"):
        x = getattr(n, name)(ctx, lat, seed=1)
        assert x.shape == (1, 4, 21, 16, 16) and x.dtype == torch.float32, name
        assert torch.equal(x, getattr(n, name)(ctx, lat, seed=1)), name
    # 33 pixel frames with 16 overlapping = 9 latent frames with 4 overlapping (Wan compresses 4x).
    x = n.noise_freenoise(ctx, lat, seed=2, length=33, overlap=16)
    # Frames 9..13 are latent frames 0..4 (L - O = 5 of them) shuffled.
    assert sorted(next(s for s in range(9) if torch.equal(x[:, :, t], x[:, :, s])) for t in range(9, 14)) == \
        list(range(5))
    x = n.noise_repeat(ctx, lat, seed=2, length=17)  # 5 latent frames
    assert torch.equal(x[:, :, 5], x[:, :, 0]) and not torch.equal(x[:, :, 4], x[:, :, 0])


def test_noise_warp_node_follows_a_camera_pan():
    from graph_engine import NodeError
    from graph_engine.context import Context
    from node_call import Nodes
    from nodes.consistency import noise_nodes
    from nodes.motion import camera
    cam = camera.preset("pan_right", 5, 128, 128, speed=4.0)
    lat = wan_like_latent(frames=5, t=5)
    ctx = Context("warp")
    x = Nodes(noise_nodes).noise_warp(ctx, lat, camera=cam, seed=0)
    assert_standard_normal_frames(x, tol=0.1)
    # Panning right moves the picture ~0.55 latent px left per frame: frame 1 is frame 0's noise
    # split between shifts 0 and -1 (correlations summing to ~1), unrelated at other shifts.
    def shifted_corr(dy, dx):
        moved = torch.roll(x[:, :, 0], (dy, dx), dims=(2, 3))[..., 4:-4, 4:-4].flatten()
        return float(torch.corrcoef(torch.stack([moved, x[:, :, 1, 4:-4, 4:-4].flatten()]))[0, 1])

    assert shifted_corr(0, 0) + shifted_corr(0, -1) > 0.85
    others = [(dy, dx) for dy in range(-2, 3) for dx in range(-3, 4) if (dy, dx) not in ((0, 0), (0, -1))]
    assert max(abs(shifted_corr(dy, dx)) for dy, dx in others) < 0.25
    with pytest.raises(NodeError, match="exactly one"):
        Nodes(noise_nodes).noise_warp(ctx, lat, seed=0)


def test_noise_blend_node_with_a_mask_clip():
    from graph_engine import Clip
    from graph_engine.context import Context
    from node_call import Nodes
    from nodes.consistency import noise_nodes
    a = npri.independent((1, 4, 3, 8, 8), npri.generator(0))
    b = npri.independent((1, 4, 3, 8, 8), npri.generator(1))
    masks = np.zeros((9, 64, 64, 3), np.uint8)
    masks[4:] = 255  # from pixel frame 4 on (latent frames 1 and 2 with a 4x time factor)
    out = Nodes(noise_nodes).noise_blend(Context("blend"), a, b, mask=Clip.from_array(masks, fps=8))
    assert torch.equal(out[:, :, 0], a[:, :, 0])
    torch.testing.assert_close(out[:, :, 1:], b[:, :, 1:])


@pytest.mark.parametrize("n,length,overlap", [(17, 6, 2), (40, 16, 4), (43, 16, 4), (16, 16, 4), (9, 16, 4)])
def test_freenoise_equals_the_published_shuffle(n, length, overlap):
    """FreeNoise as AnimateDiff-Evolved publishes it, drawn from the same generator in the same order: i.i.d. noise,
    then for each window start 0, L-O, ... below N-L the next L-O frames after the window are its first L-O frames in
    a randperm order (the last block cut to what is left of the clip)."""
    gen = npri.generator(11)
    shape = (1, 2, n, 3, 3)
    want = torch.randn(shape, generator=gen)
    delta = length - overlap
    for start in range(0, n - length, delta):
        place = start + length
        size = min(delta, n - place)
        idx = torch.arange(start, start + size)[torch.randperm(size, generator=gen)]
        want[:, :, place:place + size] = want[:, :, idx]
    assert torch.equal(npri.freenoise(shape, npri.generator(11), length, overlap), want)
