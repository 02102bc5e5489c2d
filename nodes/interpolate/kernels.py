"""Fused per-pixel loops of flow interpolation (numba): one pass instead of a dozen numpy
temporaries, which is most of the difference between 10 and 60 frames/s at 640x360.
fastmath: warp_blend ~20% faster at 640x360 with bit-identical output there (no NaN or
infinity ever reaches these loops); nogil: the pairs of a chunk run on threads side by side."""
from __future__ import annotations

import cv2
import numba
import numpy as np


@numba.njit(cache=True, inline="always", fastmath=True)
def _taps(x, y, h, w):
    """Bilinear taps at (x, y) with replicated borders: corner indices and fractions."""
    x = min(max(x, 0.0), w - 1.0)
    y = min(max(y, 0.0), h - 1.0)
    # Unsigned indices: numba checks a signed one for wrap-around on every read (candidate_costs
    # and _blend ~5-10% faster; the same output).
    x0, y0 = np.uint64(x), np.uint64(y)
    return x0, y0, min(x0 + np.uint64(1), np.uint64(w - 1)), min(y0 + np.uint64(1), np.uint64(h - 1)), x - x0, y - y0


@numba.njit(cache=True, inline="always", fastmath=True)
def _lerp(img, x0, y0, x1, y1, fx, fy, ch):
    top = img[y0, x0, ch] * (1.0 - fx) + img[y0, x1, ch] * fx
    bot = img[y1, x0, ch] * (1.0 - fx) + img[y1, x1, ch] * fx
    return top * (1.0 - fy) + bot * fy


def confidence(fa, fb, flow_ab, flow_ba, sharpness, alpha, beta):
    """Per pixel of frame a: exp(-sharpness * photometric error after following the flow),
    times 1 where the forward-backward check passes and the target is inside, 0.1 elsewhere."""
    h, w = flow_ab.shape[0], flow_ab.shape[1]
    exponent, factor = np.empty((h, w)), np.empty((h, w))
    _confidence_terms(fa, fb, flow_ab, flow_ba, sharpness, alpha, beta, exponent, factor)
    # One vectorised exponential over the field: called pixel by pixel in the loop it was a
    # third of the loop's time.
    return (np.exp(exponent, out=exponent) * factor).astype(np.float32)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _confidence_terms(fa, fb, flow_ab, flow_ba, sharpness, alpha, beta, exponent, factor):
    """confidence's exponent (-sharpness * error) and factor (1 or 0.1) per pixel."""
    h, w = flow_ab.shape[0], flow_ab.shape[1]
    for y in range(h):
        for x in range(w):
            u, v = flow_ab[y, x, 0], flow_ab[y, x, 1]
            tx, ty = x + u, y + v
            x0, y0, x1, y1, fx, fy = _taps(tx, ty, h, w)
            err = 0.0
            for ch in range(3):
                err += abs(_lerp(fb, x0, y0, x1, y1, fx, fy, ch) - fa[y, x, ch])
            err /= 3.0
            bu = _lerp(flow_ba, x0, y0, x1, y1, fx, fy, 0)
            bv = _lerp(flow_ba, x0, y0, x1, y1, fx, fy, 1)
            d = (u + bu) ** 2 + (v + bv) ** 2
            tol = alpha * (u * u + v * v + bu * bu + bv * bv) + beta
            ok = d <= tol and 0.0 <= tx <= w - 1 and 0.0 <= ty <= h - 1
            exponent[y, x] = -sharpness * err
            factor[y, x] = 1.0 if ok else 0.1


@numba.njit(cache=True, inline="always", fastmath=True)
def _lerp_grey(img, x0, y0, x1, y1, fx, fy):
    """_lerp of a 2-D (grey) image: the same sums, a third less time than through a channel axis
    of length one in candidate_costs."""
    top = img[y0, x0] * (1.0 - fx) + img[y0, x1] * fx
    bot = img[y1, x0] * (1.0 - fx) + img[y1, x1] * fx
    return top * (1.0 - fy) + bot * fy


@numba.njit(cache=True, inline="always", fastmath=True)
def _mismatch(f0, f1, x, y, mu, mv, t, h, w):
    """|frame 0 at p - t*m  -  frame 1 at p + (1-t)*m| (grey frames, 2-D)."""
    a0, c0, a1, c1, ax, ay = _taps(x - t * mu, y - t * mv, h, w)
    e0, g0, e1, g1, ex, ey = _taps(x + (1.0 - t) * mu, y + (1.0 - t) * mv, h, w)
    return abs(_lerp_grey(f0, a0, c0, a1, c1, ax, ay) - _lerp_grey(f1, e0, g0, e1, g1, ex, ey))


# The frames are sampled at full size by cubic convolution: bilinear sampling at a half-pixel
# offset is a [0.5, 0.5] low-pass, and an in-between samples both frames off the pixel grid
# nearly everywhere. On real footage cubic taps gained +0.5 dB on average over bilinear ones
# under the same motion, up to +2 dB (fine facades, foliage). Keys' parameter: OpenCV's, as
# its INTER_CUBIC samples most pixels (warp_blend); it also beat Catmull-Rom's -0.5 by 0.02 dB.
CUBIC_A = -0.75


@numba.njit(cache=True, inline="always", fastmath=True)
def _cubic_taps(x, n):
    """Cubic convolution taps at x along an axis of n samples (replicated borders): the four
    indices around x and their weights."""
    x = min(max(x, 0.0), n - 1.0)
    i = int(x)
    f = x - i
    g = 1.0 - f
    a = CUBIC_A
    # (Unsigned indices, as _taps'.)
    return (np.uint64(max(i - 1, 0)), np.uint64(i), np.uint64(min(i + 1, n - 1)), np.uint64(min(i + 2, n - 1)),
            a * f * g * g, ((a + 2.0) * f - (a + 3.0)) * f * f + 1.0,
            ((a + 2.0) * g - (a + 3.0)) * g * g + 1.0, a * g * f * f)


@numba.njit(cache=True, inline="always", fastmath=True)
def _level(v):
    """A cubic sample kept within 0..255: the kernel's negative lobes overshoot at sharp edges."""
    return min(max(float(v), 0.0), 255.0)


@numba.njit(cache=True, inline="always", fastmath=True)
def _cubic_row(img, y, xa, xb, xc, xd, wa, wb, wc, wd, ch):
    return wa * img[y, xa, ch] + wb * img[y, xb, ch] + wc * img[y, xc, ch] + wd * img[y, xd, ch]


@numba.njit(cache=True, inline="always", fastmath=True)
def _cubic_channel(img, ch, ya, yb, yc, yd, va, vb, vc, vd, xa, xb, xc, xd, wa, wb, wc, wd):
    """Channel ch of img (HxWxC) by cubic convolution, given the taps (_cubic_taps) of both axes."""
    v = (va * _cubic_row(img, ya, xa, xb, xc, xd, wa, wb, wc, wd, ch)
         + vb * _cubic_row(img, yb, xa, xb, xc, xd, wa, wb, wc, wd, ch)
         + vc * _cubic_row(img, yc, xa, xb, xc, xd, wa, wb, wc, wd, ch)
         + vd * _cubic_row(img, yd, xa, xb, xc, xd, wa, wb, wc, wd, ch))
    return _level(v)


@numba.njit(cache=True, inline="always", fastmath=True)
def _cubic(img, x, y, h, w):
    """The three channels of img (HxWx3) at (x, y), sampled by cubic convolution. The taps are
    found once for the three (per channel, the compiler did not share them: _blend 2-6% slower)."""
    xa, xb, xc, xd, wa, wb, wc, wd = _cubic_taps(x, w)
    ya, yb, yc, yd, va, vb, vc, vd = _cubic_taps(y, h)
    return (_cubic_channel(img, 0, ya, yb, yc, yd, va, vb, vc, vd, xa, xb, xc, xd, wa, wb, wc, wd),
            _cubic_channel(img, 1, ya, yb, yc, yd, va, vb, vc, vd, xa, xb, xc, xd, wa, wb, wc, wd),
            _cubic_channel(img, 2, ya, yb, yc, yd, va, vb, vc, vd, xa, xb, xc, xd, wa, wb, wc, wd))


@numba.njit(cache=True, inline="always", fastmath=True)
def _rgb_pair(f0, f1, x, y, mu, mv, t, h, w):
    """The colours of frame 0 at p - t*m and of frame 1 at p + (1-t)*m (RGB frames), bilinear."""
    a0, c0, a1, c1, ax, ay = _taps(x - t * mu, y - t * mv, h, w)
    e0, g0, e1, g1, ex, ey = _taps(x + (1.0 - t) * mu, y + (1.0 - t) * mv, h, w)
    return (_lerp(f0, a0, c0, a1, c1, ax, ay, 0), _lerp(f0, a0, c0, a1, c1, ax, ay, 1),
            _lerp(f0, a0, c0, a1, c1, ax, ay, 2), _lerp(f1, e0, g0, e1, g1, ex, ey, 0),
            _lerp(f1, e0, g0, e1, g1, ex, ey, 1), _lerp(f1, e0, g0, e1, g1, ex, ey, 2))


@numba.njit(cache=True, inline="always", fastmath=True)
def _cubic_pair(f0, f1, x, y, mu, mv, t, h, w):
    """_rgb_pair's colours sampled by cubic convolution."""
    x0, y0 = x - t * mu, y - t * mv
    x1, y1 = x + (1.0 - t) * mu, y + (1.0 - t) * mv
    r0, g0, b0 = _cubic(f0, x0, y0, h, w)
    r1, g1, b1 = _cubic(f1, x1, y1, h, w)
    return r0, g0, b0, r1, g1, b1


@numba.njit(cache=True, inline="always", fastmath=True)
def _rgb_mismatch(c):
    return abs(c[0] - c[3]) + abs(c[1] - c[4]) + abs(c[2] - c[5])


# Summed over the three channels (0..255 each): where the interpolated motion fetches colours
# this close from both frames it is kept even at a motion boundary. On real footage: the same
# PSNR as trying the taps at every boundary pixel, at a fraction of the time. Cubic samples
# keep the texture that bilinear ones blurred, so they differ more: 40 rather than bilinear's
# 24 tries the taps at fewer pixels (warp_blend 20-30% faster on bikes-d) for -0.001 dB on
# average on real footage (bikes, bikes-d -0.01). 64 rather than 40 (with SAME_MOTION 0.5): _blend
# -16% on bikes-d (-1.1 ms per in-between; 11% of its pixels tried the taps), -5% on city-b, and
# +0.003 dB mean on the 12 bench clips (bikes-d -0.005 the lowest) and on bench/heldout.py's 21
# segments (bigbuckbunny@0 -0.005 the lowest). 56 / 72 alone: lowest clip -0.004 / -0.008.
EDGE_MISMATCH = 64.0
# Flow pixels (|du| + |dv|) within which a motion hypothesis of candidate_costs counts as the joint
# motion and shares its cost: in smooth motion most of them coincide. Half a pixel rather than a
# quarter: candidate_costs -7% on bikes-d, -13% on city-b, and +0.003 dB on the 12 bench clips and
# +0.003 on bench/heldout.py's segments (no clip below -0.003; 0.75 / a whole pixel: lowest -0.024 / -0.019).
SAME_MOTION = 0.5


@numba.njit(cache=True, inline="always")
def _column_taps(w, mh, mw):
    """The horizontal bilinear taps of each of w full-size columns on a smaller mh x mw field.
    Where a full-size pixel falls on the smaller fields is separable: its column fixes the
    horizontal taps and its row the vertical ones, so they are found once per column and row."""
    sx = mw / w
    col0, col1, colf = np.empty(w, np.uint64), np.empty(w, np.uint64), np.empty(w, np.float64)
    for x in range(w):
        col0[x], _, col1[x], _, colf[x], _ = _taps((x + 0.5) * sx - 0.5, 0.0, mh, mw)
    return col0, col1, colf


@numba.njit(cache=True, inline="always", fastmath=True)
def _motion_px(motion, q0, r0, q1, r1, qx, ry, sx, sy):
    """The smaller motion field at those bilinear taps, in full-size pixels."""
    return _lerp(motion, q0, r0, q1, r1, qx, ry, 0) / sx, _lerp(motion, q0, r0, q1, r1, qx, ry, 1) / sy


@numba.njit(cache=True, inline="always", fastmath=True)
def _rows(field, r0, r1, ry, rows, k):
    """A 2-channel field interpolated between its rows r0 and r1 (weight ry of r1), into columns
    2k, 2k+1 of rows (mw x 2K): a full-size row's pixels share their vertical taps on the smaller
    fields, so each of them then needs one horizontal lerp per field instead of three lerps."""
    for xx in range(field.shape[1]):
        for ch in range(2):
            rows[xx, 2 * k + ch] = field[r0, xx, ch] * (1.0 - ry) + field[r1, xx, ch] * ry


@numba.njit(cache=True, inline="always", fastmath=True)
def _across(rows, q0, q1, qx, k):
    """Field k of _rows at a full-size pixel between columns q0 and q1 (weight qx of q1)."""
    return (rows[q0, 2 * k] * (1.0 - qx) + rows[q1, 2 * k] * qx,
            rows[q0, 2 * k + 1] * (1.0 - qx) + rows[q1, 2 * k + 1] * qx)


@numba.njit(cache=True, nogil=True, fastmath=True)
def sample_maps(motion, bend, t, h, w):
    """Where the in-between at t samples frame 0 (p - t*m - b) and frame 1 (p + (1-t)*m - b) at
    each full-size pixel p (2xHxWx2, x then y), m and b being the smaller motion and bend fields
    sampled bilinearly at p, as _blend samples them: cv2.remap's maps, made in one pass instead
    of six numpy ones."""
    mh, mw = motion.shape[0], motion.shape[1]
    sx, sy = mw / w, mh / h
    out = np.empty((2, h, w, 2), np.float32)
    col0, col1, colf = _column_taps(w, mh, mw)
    rows = np.empty((mw, 4), np.float64)
    for y in range(h):
        _, r0, _, r1, _, ry = _taps(0.0, (y + 0.5) * sy - 0.5, mh, mw)
        _rows(motion, r0, r1, ry, rows, 0)
        _rows(bend, r0, r1, ry, rows, 1)
        for x in range(w):
            q0, q1, qx = col0[x], col1[x], colf[x]
            mu, mv = _across(rows, q0, q1, qx, 0)
            bu, bv = _across(rows, q0, q1, qx, 1)
            mu, mv, bu, bv = mu / sx, mv / sy, bu / sx, bv / sy
            out[0, y, x, 0], out[0, y, x, 1] = x - bu - t * mu, y - bv - t * mv
            out[1, y, x, 0], out[1, y, x, 1] = x - bu + (1.0 - t) * mu, y - bv + (1.0 - t) * mv
    return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def _blend(f0, f1, w0, w1, motion, bend, alt, vis, t, floor, edge, alt_spread):
    """warp_blend's per-pixel part, given w0 and w1: frames 0 and 1 already sampled under
    the interpolated motion.
    motion (HxWx2, in its own pixels) and vis (HxWx2) may be smaller than the frames:
    they are sampled bilinearly here, which spares two full-size temporaries.

    edge > 0: at a motion boundary (the four motion taps around p spread by `edge` full-size
    pixels or more) interpolating the motion would smear the boundary over several full-size
    pixels with a motion that belongs to neither side; there, where the interpolated motion
    fetches different colours from the two frames, p takes whichever of it and the four taps'
    own motions under which the two frames agree best at p.

    alt: a second motion field like `motion` (or motion itself): where the two differ by more
    than `alt_spread` full-size pixels at p, p gets the mean of the frames' colours under both
    (alt interpolated plainly: choosing its boundaries per pixel changed no figure on real
    footage and cost 10% of the time)."""
    h, w = f0.shape[0], f0.shape[1]
    mh, mw = motion.shape[0], motion.shape[1]
    sx, sy = mw / w, mh / h
    out = np.empty((h, w, 3), np.uint8)
    col0, col1, colf = _column_taps(w, mh, mw)
    # Each tap's own motion in full-size pixels, divided once rather than at every pixel near it.
    taps = np.empty((mh, mw, 2), np.float64)
    for yy in range(mh):
        for xx in range(mw):
            taps[yy, xx, 0], taps[yy, xx, 1] = motion[yy, xx, 0] / sx, motion[yy, xx, 1] / sy
    rows = np.empty((mw, 8), np.float64)
    for y in range(h):
        _, r0, _, r1, _, ry = _taps(0.0, (y + 0.5) * sy - 0.5, mh, mw)
        _rows(motion, r0, r1, ry, rows, 0)
        _rows(bend, r0, r1, ry, rows, 1)
        _rows(alt, r0, r1, ry, rows, 2)
        _rows(vis, r0, r1, ry, rows, 3)
        for x in range(w):
            q0, q1, qx = col0[x], col1[x], colf[x]
            mu, mv = _across(rows, q0, q1, qx, 0)
            mu, mv = mu / sx, mv / sy
            # The motions tried below are straight paths through the bent in-between point.
            bu, bv = _across(rows, q0, q1, qx, 1)
            px, py = x - bu / sx, y - bv / sy
            c = (_level(w0[y, x, 0]), _level(w0[y, x, 1]), _level(w0[y, x, 2]),
                 _level(w1[y, x, 0]), _level(w1[y, x, 1]), _level(w1[y, x, 2]))
            if edge > 0.0:
                spread = 0.0
                for k in range(4):
                    yy, xx = (r0 if k < 2 else r1), (q0 if k % 2 == 0 else q1)
                    spread = max(spread, abs(taps[yy, xx, 0] - mu) + abs(taps[yy, xx, 1] - mv))
                # The taps' motions are tried on bilinear samples, 4 taps each instead of 16
                # (this is the costly part of the kernel where the motion is uneven; comparing
                # them with bilinear samples under the interpolated motion too changed no figure
                # on real footage); the winner's colours are then sampled like every pixel's.
                if spread >= edge:
                    best = _rgb_mismatch(c)
                    win = -1
                    if best >= EDGE_MISMATCH:
                        for k in range(4):
                            yy, xx = (r0 if k < 2 else r1), (q0 if k % 2 == 0 else q1)
                            err = _rgb_mismatch(_rgb_pair(f0, f1, px, py, taps[yy, xx, 0], taps[yy, xx, 1], t, h, w))
                            if err < best:
                                best, win = err, k
                    if win >= 0:
                        yy, xx = (r0 if win < 2 else r1), (q0 if win % 2 == 0 else q1)
                        c = _cubic_pair(f0, f1, px, py, taps[yy, xx, 0], taps[yy, xx, 1], t, h, w)
            au, av = _across(rows, q0, q1, qx, 2)
            au, av = au / sx, av / sy
            if abs(au - mu) + abs(av - mv) > alt_spread:
                # Bilinear: this hedge is for where the motion is unsure, and there the blurrier
                # colours are the closer ones (cubic here: -0.004 dB on average on the held-out
                # footage, at a third more of this kernel's time).
                ca = _rgb_pair(f0, f1, px, py, au, av, t, h, w)
                c = (0.5 * (c[0] + ca[0]), 0.5 * (c[1] + ca[1]), 0.5 * (c[2] + ca[2]),
                     0.5 * (c[3] + ca[3]), 0.5 * (c[4] + ca[4]), 0.5 * (c[5] + ca[5]))
            v0, v1 = _across(rows, q0, q1, qx, 3)
            b0 = (1.0 - t) * (v0 + floor)
            b1 = t * (v1 + floor)
            s = b0 + b1
            b0 /= s
            b1 /= s
            for ch in range(3):
                out[y, x, ch] = min(max(int(b0 * c[ch] + b1 * c[3 + ch] + 0.5), 0), 255)
    return out


def warp_blend(f0, f1, motion, alt, vis, t, floor, edge, alt_spread, bend=None):
    """The in-between at t at full size: frame 0 sampled at p - t*m(p) and frame 1 at
    p + (1-t)*m(p), blended by closeness in time and by each frame's visibility at p.
    motion (hxwx2, in its own pixels) and vis (hxwx2) may be smaller than the frames
    (sampled bilinearly); see _blend for edge, alt and alt_spread.
    bend (like motion, None for none): where the in-between's point sits off the straight path
    from frame 0 to frame 1 (a curved or accelerating path); both frames are sampled that much
    further back, at p - b - t*m and p - b + (1-t)*m.
    Both frames are first sampled everywhere under the interpolated motion by OpenCV's remap
    (SIMD: twice as fast as the same cubic taps here); the kernel samples the pixels that
    try other motions itself."""
    if bend is None:
        bend = np.zeros_like(motion)
    w0, w1 = sampled_frames(f0, f1, motion, bend, t)
    return _blend(f0, f1, w0, w1, motion, bend, alt, vis, t, floor, edge, alt_spread)


def sampled_frames(f0, f1, motion, bend, t):
    """Frames 0 and 1 sampled (cubic, float32 HxWx3) where the in-between at t fetches them under
    the interpolated motion and bend (sample_maps): warp_blend's two warped frames before its blend.
    float32 frames: the warped colours are not rounded before the blend (and OpenCV remaps them
    faster than uint8 ones)."""
    maps = sample_maps(motion, bend, t, f0.shape[0], f0.shape[1])
    return tuple(cv2.remap(f.astype(np.float32), m, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
                 for f, m in zip((f0, f1), maps))


@numba.njit(cache=True, nogil=True)
def coverage(cover0, cover1):
    """Each frame's coverage at t (forward_splat's, hxw) held to 1, as one hxwx2 field: motion_at's
    visibility before its blur. One pass for two np.minimum and an np.dstack (no fastmath: the
    same values)."""
    h, w = cover0.shape
    out = np.empty((h, w, 2), np.float32)
    one = np.float32(1.0)
    for y in range(h):
        for x in range(w):
            out[y, x, 0], out[y, x, 1] = min(cover0[y, x], one), min(cover1[y, x], one)
    return out


@numba.njit(cache=True, nogil=True)
def trusted(vis, miss, eps, floor):
    """motion_at's blend weights (vis, hxwx2) as the frames beyond the pair judge them: each frame's
    trust is 1 / (eps + miss), its window-mean mismatch with the frame beyond it, and its weight,
    floor included, goes with its trust over the larger one: (vis + floor) * trust / most - floor.
    One pass for seven numpy ones: every operand float32, in numpy's order, no fastmath, so the
    bits the numpy expressions gave (eps and floor float32, as numpy took the Python floats)."""
    h, w = vis.shape[0], vis.shape[1]
    out = np.empty((h, w, 2), np.float32)
    one = np.float32(1.0)
    for y in range(h):
        for x in range(w):
            t0, t1 = one / (eps + miss[y, x, 0]), one / (eps + miss[y, x, 1])
            most = max(t0, t1)
            out[y, x, 0] = (vis[y, x, 0] + floor) * (t0 / most) - floor
            out[y, x, 1] = (vis[y, x, 1] + floor) * (t1 / most) - floor
    return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def outer_mismatch(fa, fb, fc, fd, motion, t):
    """Per pixel at time t with motion m (in frame-0-to-1 units), how far each frame of the
    pair is from the frame beyond it on the same straight path: |A(p - t*m) - C(p - (1+t)*m)|
    and |B(p + (1-t)*m) - D(p + (2-t)*m)|, C before A and D after B (grey, hxw). Where A's
    sample is covered in B, B fetches the occluder, which D does not repeat, while A and C
    still agree."""
    h, w = motion.shape[0], motion.shape[1]
    out = np.empty((h, w, 2), np.float32)
    for y in range(h):
        for x in range(w):
            mu, mv = motion[y, x, 0], motion[y, x, 1]
            a0, c0, a1, c1, ax, ay = _taps(x - t * mu, y - t * mv, h, w)
            p0, q0, p1, q1, px, py = _taps(x - (1.0 + t) * mu, y - (1.0 + t) * mv, h, w)
            out[y, x, 0] = abs(_lerp_grey(fa, a0, c0, a1, c1, ax, ay) - _lerp_grey(fc, p0, q0, p1, q1, px, py))
            a0, c0, a1, c1, ax, ay = _taps(x + (1.0 - t) * mu, y + (1.0 - t) * mv, h, w)
            p0, q0, p1, q1, px, py = _taps(x + (2.0 - t) * mu, y + (2.0 - t) * mv, h, w)
            out[y, x, 1] = abs(_lerp_grey(fb, a0, c0, a1, c1, ax, ay) - _lerp_grey(fd, p0, q0, p1, q1, px, py))
    return out


@numba.njit(cache=True, inline="always", fastmath=True)
def _hypothesis(fields, k, y, x, shift):
    """Motion hypothesis k at (y, x): field k there for k < F, else the first field at one
    of the eight neighbours `shift` pixels away."""
    nf, h, w = fields.shape[0], fields.shape[1], fields.shape[2]
    if k < nf:
        return fields[k, y, x, 0], fields[k, y, x, 1]
    j = k - nf
    j += j >= 4                     # skip the centre of the 3x3 neighbourhood
    yy = min(max(y + (j // 3 - 1) * shift, 0), h - 1)
    xx = min(max(x + (j % 3 - 1) * shift, 0), w - 1)
    return fields[0, yy, xx, 0], fields[0, yy, xx, 1]


@numba.njit(cache=True, nogil=True)
def hypothesis_fields(joint, acc0, ws0, acc1, ws1, more=0):
    """The motion fields candidate_costs weighs (3xHxWx2): the joint motion, then each frame's
    own splatted motion (acc / ws) where enough of it landed, the joint motion elsewhere.
    more: room for that many fields after them ((3 + more)xHxWx2, for the caller to fill): other
    hypotheses join them without a stack and a concatenation of the whole set (~1.5 MB copied per
    640-wide pair).
    No fastmath: the division stays exact, as numpy's was."""
    h, w = joint.shape[0], joint.shape[1]
    out = np.empty((3 + more, h, w, 2), np.float32)
    least = np.float32(1e-3)
    for y in range(h):
        for x in range(w):
            for ch in range(2):
                out[0, y, x, ch] = joint[y, x, ch]
                out[1, y, x, ch] = acc0[y, x, ch] / ws0[y, x] if ws0[y, x] > least else joint[y, x, ch]
                out[2, y, x, ch] = acc1[y, x, ch] / ws1[y, x] if ws1[y, x] > least else joint[y, x, ch]
    return out


# Flow pixels by which a hypothesis's sample must lie outside one frame of the pair before
# candidate_costs weighs the other frame against the frame beyond it instead.
# Closer, the replicated border still holds what the sample would show. On real footage: 4 rather
# than 0.5 / 1 / 2 kept Big Buck Bunny's slow pans (bunny-b -0.011 dB instead of -0.03 at 0.5, -0.025
# at 2) while a van leaving bikes.mp4's frame kept most of its gain (bikes@0 +0.26 instead of +0.47 / +0.28).
BORDER_OUT = 4.0


@numba.njit(cache=True, inline="always", fastmath=True)
def _outside(x, y, h, w):
    return x < -BORDER_OUT or x > w - 1.0 + BORDER_OUT or y < -BORDER_OUT or y > h - 1.0 + BORDER_OUT


def candidate_costs(fa, fb, fields, t, shift, fc=None, fd=None):
    """Per pixel at time t, the mismatch |A(p - t*m) - B(p + (1-t)*m)| of each motion
    hypothesis m (HxWxK, K = F + 8): every field's motion at p (fields FxHxWx2, the first
    being the joint estimate) and the first field's motion at the eight neighbours `shift`
    pixels away, which reaches across a motion boundary that the flow smeared. The right
    motion makes both frames agree.
    fc, fd: the frames before A and after B (grey, like fa, fb), or None. Given, where a motion
    fetches one frame's sample from outside it (by BORDER_OUT) and the other's from inside, the
    other frame is weighed against the frame beyond it on the same path instead,
    |B(p + (1-t)*m) - D(p + (2-t)*m)| or |A(p - t*m) - C(p - (1+t)*m)|: a car entering the frame
    has no frame-0 sample to match, and the replicated border it reads makes every motion fit as
    badly, while the car's own motion carries its frame-1 sample on into frame 2."""
    beyond = fc is not None and fd is not None
    return _candidate_costs(fa, fb, fc if beyond else fa, fd if beyond else fb, fields, t, shift, beyond)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _candidate_costs(fa, fb, fc, fd, fields, t, shift, beyond):
    """candidate_costs; fc, fd are weighed only if `beyond`."""
    nf, h, w = fields.shape[0], fields.shape[1], fields.shape[2]
    cost = np.empty((h, w, nf + 8), np.float32)
    # A motion reaches outside a frame by BORDER_OUT from p only if it is longer (|du| + |dv|, times
    # the larger of t and 1 - t) than p's distance to the border plus BORDER_OUT.
    reach = max(t, 1.0 - t)
    for y in range(h):
        for x in range(w):
            room = BORDER_OUT + min(x, w - 1 - x, y, h - 1 - y) if beyond else np.inf
            u0, v0 = fields[0, y, x, 0], fields[0, y, x, 1]
            for k in range(nf + 8):
                mu, mv = _hypothesis(fields, k, y, x, shift)
                # Inside smooth motion most hypotheses coincide: same motion, same cost.
                if k > 0 and abs(mu - u0) + abs(mv - v0) < SAME_MOTION:
                    cost[y, x, k] = cost[y, x, 0]
                    continue
                # (Three inlined mismatches: one function choosing among them, inlined, made the
                # whole loop ~3x slower; called, ~25% slower on bikes-d.)
                outa = (abs(mu) + abs(mv)) * reach > room and _outside(x - t * mu, y - t * mv, h, w)
                outb = (abs(mu) + abs(mv)) * reach > room and _outside(x + (1.0 - t) * mu, y + (1.0 - t) * mv, h, w)
                if outa and not outb:
                    cost[y, x, k] = _mismatch(fb, fd, x + (1.0 - t) * mu, y + (1.0 - t) * mv, mu, mv, 0.0, h, w)
                elif outb and not outa:
                    cost[y, x, k] = _mismatch(fc, fa, x - t * mu, y - t * mv, mu, mv, 1.0, h, w)
                else:
                    cost[y, x, k] = _mismatch(fa, fb, x, y, mu, mv, t, h, w)
    return cost


@numba.njit(cache=True, inline="always", fastmath=True)
def _off_region(mu, mv, regions, ty, tx, prior, cap):
    """pick's prior for motion (mu, mv): `prior` per flow pixel it lies off the nearer of tile
    (ty, tx)'s two region motions, at most `cap` pixels."""
    return prior * min(abs(mu - regions[ty, tx, 0, 0]) + abs(mv - regions[ty, tx, 0, 1]),
                       abs(mu - regions[ty, tx, 1, 0]) + abs(mv - regions[ty, tx, 1, 1]), cap)


@numba.njit(cache=True, nogil=True, fastmath=True)
def pick(cost, fields, shift, margin, regions, tile, prior, cap):
    """Per pixel, the hypothesis of candidate_costs with the least (window-mean) cost, kept only
    where it beats the first (joint) hypothesis by more than `margin` (the joint motion otherwise),
    and (its cost, the first hypothesis's cost): how well the chosen motion explains the pixel and
    how much better than the plain joint motion it does. Each cost is first raised by `prior` per
    flow pixel (|du| + |dv|, at most `cap`) that its motion lies off the nearer of the two motions
    of `regions` (tile_motions, `tile` pixels a side) at the tile of the pixel it was read at (a
    neighbour's motion is judged at the neighbour)."""
    h, w = cost.shape[0], cost.shape[1]
    nf = fields.shape[0]
    th, tw = regions.shape[0], regions.shape[1]
    off = np.empty((h, w), np.float32)      # the joint motion's prior, which its neighbours read
    for y in range(h):
        ty = min(y // tile, th - 1)
        for x in range(w):
            tx = min(x // tile, tw - 1)
            off[y, x] = _off_region(fields[0, y, x, 0], fields[0, y, x, 1], regions, ty, tx, prior, cap)
    out = np.empty((h, w, 2), np.float32)
    costs = np.empty((h, w, 2), np.float32)
    for y in range(h):
        ty = min(y // tile, th - 1)
        for x in range(w):
            tx = min(x // tile, tw - 1)
            best, least = 0, cost[y, x, 0] + off[y, x] - margin
            for k in range(1, nf):
                c = cost[y, x, k] + _off_region(fields[k, y, x, 0], fields[k, y, x, 1], regions, ty, tx, prior, cap)
                if c < least:
                    best, least = k, c
            for j in range(8):
                i = j + (j >= 4)        # skip the centre of the 3x3 neighbourhood
                c = cost[y, x, nf + j] + off[min(max(y + (i // 3 - 1) * shift, 0), h - 1),
                                             min(max(x + (i % 3 - 1) * shift, 0), w - 1)]
                if c < least:
                    best, least = nf + j, c
            out[y, x, 0], out[y, x, 1] = _hypothesis(fields, best, y, x, shift)
            costs[y, x, 0], costs[y, x, 1] = cost[y, x, best], cost[y, x, 0]
    return out, costs


# The glue of flow_interp's _bend, _carried and _pushed, one pass each instead of a dozen numpy
# temporaries at flow resolution (bikes-d: ~1.5 ms of a pair's ~45 ms, ~2/3 of it that glue). No
# fastmath, and every operand float32: the same float32 operations in the same order as the numpy
# they replace (Python floats there act as float32 scalars), so the same bits.
@numba.njit(cache=True, inline="always")
def _second_difference(w0, w1, motion, y, x, ch, has0, has1, c0, c1, one_sided):
    """bent's c0*a0 + c1*a1 in channel ch at (y, x)."""
    zero = np.float32(0.0)
    a0 = w0[y, x, ch] + motion[y, x, ch] if has0 else zero
    a1 = w1[y, x, ch] - motion[y, x, ch] if has1 else zero
    if not has1:
        a0, a1 = one_sided * a0, zero
    elif not has0:
        a0, a1 = zero, one_sided * a1
    return c0 * a0 + c1 * a1


@numba.njit(cache=True, nogil=True)
def bent(w0, w1, motion, has0, has1, c0, c1, one_sided, px, floor2, floor, cap, least):
    """flow_interp._bend's bend (hxwx2, flow pixels) from the warped outer flows w0 (back at p - t*m,
    if has0) and w1 (ahead at p + (1-t)*m, if has1): second differences a0 = w0 + m, a1 = w1 - m
    (one_sided of the one known, 0 for the other, where only one is), b = c0*a0 + c1*a1, and b's
    length in full-size pixels (px a flow pixel) shrunk by the garrote size - floor2 / max(size,
    floor), kept within 0..cap (b scaled by that over max(size, least))."""
    h, w = motion.shape[0], motion.shape[1]
    out = np.empty((h, w, 2), np.float32)
    zero = np.float32(0.0)
    for y in range(h):
        for x in range(w):
            bu = _second_difference(w0, w1, motion, y, x, 0, has0, has1, c0, c1, one_sided)
            bv = _second_difference(w0, w1, motion, y, x, 1, has0, has1, c0, c1, one_sided)
            size = np.sqrt(bu * bu + bv * bv) * px
            kept = min(max(size - floor2 / max(size, floor), zero), cap)
            k = kept / max(size, least)
            out[y, x, 0], out[y, x, 1] = bu * k, bv * k
    return out


@numba.njit(cache=True, inline="always")
def _moves(u, v, least):
    """Whether a motion (u, v) moves `least` flow pixels (|dx| + |dy|) or more: where_fast's and
    fast_weights' one test of a fast motion."""
    return abs(u) + abs(v) >= least


@numba.njit(cache=True, nogil=True)
def where_fast(field, motion, sign, least):
    """(sign * field where it moves `least` flow pixels (|dx| + |dy|) or more, motion elsewhere;
    whether any pixel does): flow_interp._where_fast."""
    h, w = motion.shape[0], motion.shape[1]
    out = np.empty((h, w, 2), np.float32)
    fast = False
    for y in range(h):
        for x in range(w):
            u, v = sign * field[y, x, 0], sign * field[y, x, 1]
            if _moves(u, v, least):
                out[y, x, 0], out[y, x, 1] = u, v
                fast = True
            else:
                out[y, x, 0], out[y, x, 1] = motion[y, x, 0], motion[y, x, 1]
    return out, fast


@numba.njit(cache=True, nogil=True)
def fast_weights(field, least):
    """(1 where field moves `least` flow pixels (|dx| + |dy|) or more, else 0, float32 hxw; whether
    any pixel does): flow_interp._pushed's splatting weights."""
    h, w = field.shape[0], field.shape[1]
    out = np.empty((h, w), np.float32)
    fast = False
    for y in range(h):
        for x in range(w):
            moves = _moves(field[y, x, 0], field[y, x, 1], least)
            out[y, x] = np.float32(1.0) if moves else np.float32(0.0)
            fast |= moves
    return out, fast


@numba.njit(cache=True, nogil=True)
def landed(acc, ws, motion, least):
    """(acc / ws where more than `least` weight landed, motion elsewhere; whether any pixel did):
    flow_interp._pushed's motion from its splat (acc hxwx2, ws hxw)."""
    h, w = motion.shape[0], motion.shape[1]
    out = np.empty((h, w, 2), np.float32)
    any_ = False
    for y in range(h):
        for x in range(w):
            if ws[y, x] > least:      # numpy's max(ws, least) divisor is ws itself here
                out[y, x, 0], out[y, x, 1] = acc[y, x, 0] / ws[y, x], acc[y, x, 1] / ws[y, x]
                any_ = True
            else:
                out[y, x, 0], out[y, x, 1] = motion[y, x, 0], motion[y, x, 1]
    return out, any_


@numba.njit(cache=True, nogil=True)
def tile_motions(fields, tile, reach, step):
    """The two motions (frame-0-to-1, flow pixels) most of the flow agrees on around each tile of
    `tile` flow pixels: every field of `fields` (F x h x w x 2: the pair's fwd and -bwd, and the
    neighbouring pairs' motions where they are known) sampled every `step` pixels over the tile
    grown by `reach` on each side, voted into 1-pixel bins; a motion's votes are its 3x3 bins' (the
    samples within about 1.5 pixels of it), and it is their mean. The second is the best outside the
    first's reach, or the first again where it has under a tenth of the votes. Out: th x tw x 2 x 2."""
    nf, h, w = fields.shape[0], fields.shape[1], fields.shape[2]
    th, tw = (h + tile - 1) // tile, (w + tile - 1) // tile
    out = np.empty((th, tw, 2, 2), np.float32)
    span = 64                       # motions beyond this many flow pixels do not vote
    side = 2 * span + 1
    count = np.zeros((side, side), np.int32)
    sums = np.zeros((side, side, 2), np.float32)
    # The occupied bins (a tile's flow takes few distinct ones): the votes are weighed, and the
    # bins emptied, over these alone.
    bins = np.empty((side * side, 2), np.int64)
    for ty in range(th):
        for tx in range(tw):
            y0, y1 = max(0, ty * tile - reach), min(h, (ty + 1) * tile + reach)
            x0, x1 = max(0, tx * tile - reach), min(w, (tx + 1) * tile + reach)
            n, nb = 0, 0
            for s in range(nf):
                for y in range(y0, y1, step):
                    for x in range(x0, x1, step):
                        u, v = fields[s, y, x, 0], fields[s, y, x, 1]
                        a, b = int(np.floor(u + 0.5)) + span, int(np.floor(v + 0.5)) + span
                        if 1 <= a < side - 1 and 1 <= b < side - 1:
                            if count[b, a] == 0:
                                bins[nb, 0], bins[nb, 1] = a, b
                                nb += 1
                            count[b, a] += 1
                            sums[b, a, 0] += u
                            sums[b, a, 1] += v
                            n += 1
            first = -1
            for k in range(2):
                votes, ba, bb, best = 0, 0, 0, -1
                for i in range(nb):
                    a, b = bins[i, 0], bins[i, 1]
                    if first >= 0 and abs(a - bins[first, 0]) <= 3 and abs(b - bins[first, 1]) <= 3:
                        continue        # within the first motion's reach
                    c = 0
                    for bv in range(b - 1, b + 2):
                        for bu in range(a - 1, a + 2):
                            c += count[bv, bu]
                    if c > votes:
                        votes, ba, bb, best = c, a, b, i
                if votes == 0 or (k == 1 and 10 * votes < n):
                    out[ty, tx, k, 0], out[ty, tx, k, 1] = out[ty, tx, 0, 0], out[ty, tx, 0, 1]
                    continue
                mu, mv = 0.0, 0.0
                for bv in range(bb - 1, bb + 2):
                    for bu in range(ba - 1, ba + 2):
                        mu += sums[bv, bu, 0]
                        mv += sums[bv, bu, 1]
                out[ty, tx, k, 0], out[ty, tx, k, 1] = mu / votes, mv / votes
                first = best
            for i in range(nb):
                a, b = bins[i, 0], bins[i, 1]
                count[b, a] = 0
                sums[b, a, 0] = sums[b, a, 1] = 0.0
    return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def warp_pair(f0, f1, motion, t):
    """Frame 0 sampled at p - t*m(p) and frame 1 at p + (1-t)*m(p), as float32 0..1 images
    (motion at the frames' size): the two candidates the refinement network weighs."""
    h, w, c = f0.shape
    out = np.empty((2, h, w, c), np.float32)
    for y in range(h):
        for x in range(w):
            mu, mv = motion[y, x, 0], motion[y, x, 1]
            a0, c0, a1, c1, ax, ay = _taps(x - t * mu, y - t * mv, h, w)
            e0, g0, e1, g1, ex, ey = _taps(x + (1.0 - t) * mu, y + (1.0 - t) * mv, h, w)
            for ch in range(c):
                out[0, y, x, ch] = _lerp(f0, a0, c0, a1, c1, ax, ay, ch) * (1.0 / 255.0)
                out[1, y, x, ch] = _lerp(f1, e0, g0, e1, g1, ex, ey, ch) * (1.0 / 255.0)
    return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def warp_mix(f0, f1, motion, mix, t):
    """The in-between at full size from low-resolution fields sampled bilinearly and frames
    sampled by cubic convolution (as in warp_blend): s0 * frame 0 at p - t*m + s1 * frame 1 at p + (1-t)*m + s2 * the frames'
    plain blend at p + base, with mix = (s0, s1, s2, base r, g, b) per pixel (base in 0..1 units)."""
    h, w = f0.shape[0], f0.shape[1]
    sx, sy = motion.shape[1] / w, motion.shape[0] / h
    out = np.empty((h, w, 3), np.uint8)
    for y in range(h):
        for x in range(w):
            q0, r0, q1, r1, qx, ry = _taps((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5, motion.shape[0], motion.shape[1])
            mu, mv = _motion_px(motion, q0, r0, q1, r1, qx, ry, sx, sy)
            c = _cubic_pair(f0, f1, x, y, mu, mv, t, h, w)
            s0 = _lerp(mix, q0, r0, q1, r1, qx, ry, 0)
            s1 = _lerp(mix, q0, r0, q1, r1, qx, ry, 1)
            s2 = _lerp(mix, q0, r0, q1, r1, qx, ry, 2)
            for ch in range(3):
                v = s0 * c[ch] + s1 * c[3 + ch] + s2 * ((1.0 - t) * f0[y, x, ch] + t * f1[y, x, ch]) + \
                    255.0 * _lerp(mix, q0, r0, q1, r1, qx, ry, 3 + ch)
                out[y, x, ch] = min(max(int(v + 0.5), 0), 255)
    return out
