"""Multi-frame super-resolution: neighbouring frames aligned by optical flow and fused on the
high-resolution grid by iterative back-projection (Irani & Peleg), with robust weights, kept
only where the neighbours are shown to help.

When the camera or an object moves by a fraction of a pixel between frames, each frame
samples the scene at slightly different positions: together they hold detail no single
frame has. The estimate starts as the Lanczos upscale of the reference frame; each step
moves it into each neighbour's geometry (flow, estimated at low resolution where it is
accurate), reduces it the way a sensor does (each low-res pixel the average of its
footprint), compares with what that neighbour actually recorded, and carries the
difference back onto the reference grid. Neighbour pixels that do not match the reference
where they land (occlusions, flow failures) get little say. The fusion is also the
deconvolution: an estimate that reproduces every observation is sharper than any one of them.

Three safeguards keep it from ever doing worse than the frame alone (bikes, a fast pan with
motion blur past a moving cyclist, lost 1 dB to plain Lanczos without them):
- the reference frame is what the output must reduce to, exactly: a few last steps against
  it alone undo the neighbours' pull on what the reference itself recorded (neighbours only
  add the detail it cannot hold);
- cross-validation: the neighbours are split in two groups, each group's fusion (with the
  reference) predicts what the other group recorded, and where it predicts worse than the
  reference alone, the fusion has brought in misalignment rather than detail (motion
  boundaries, blur, flow failures) and the output falls back, per region, to the
  single-frame result;
- a neighbour blurrier than the reference where it lands gets no say there (the cross-validation
  cannot see a blur all neighbours share)."""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from nodes.common.flow import backward_warp, base_grid, estimate_flow, inside_mask
from nodes.common.stream import windowed

# Photometric tolerance (0-255) of the robust weights. Aliasing makes well-aligned
# neighbours differ by several levels, and that difference is the very detail to recover,
# so the tolerance is wide; occluded pixels differ by far more.
TOLERANCE = 16.0
ITERATIONS = 6
STEP = 1.25
# Steps against the reference alone after the joint ones (3 and 10 score the same).
REFERENCE_STEPS = 3
# Steps of each group's fusion in the cross-validation (6 gains 0.03 dB at a fifth more time).
CHECK_ITERATIONS = 3
# The cross-validation's regions: its gain map is smoothed over SPAN output pixels (sigma); the share
# of the fusion kept is 0.5 + gain / (SHARE * the reference's own prediction error), clipped to 0..1.
# Tuned on bench/heldout.py's segments of every file (9 frames), never on the bench's clips.
SPAN = 8.0
SHARE = 0.2
# A neighbour less sharp than the reference where it lands (motion blur in a shaky shot) would pull the
# result toward its blur, and the cross-validation cannot see it when the neighbours share the blur: its
# weight falls from 1 to 0 as its gradient energy (per direction, smoothed over SHARP_SPAN pixels) falls
# from SHARP_FULL to SHARP_NONE of the reference's. Synthetic blur of 9 px on the neighbours: 31.5 dB -> 31.9
# (the frame alone 31.9); no change on the tuning segments.
SHARP_NONE, SHARP_FULL, SHARP_SPAN = 0.6, 0.9, 3.0


class View(NamedTuple):
    """A neighbour as the fusion sees it: what it recorded (float32 low-res), the fixed-point maps from
    the reference grid into its geometry and back (high-res), and its weight on the reference grid."""
    obs: np.ndarray
    to_nb: Tuple[np.ndarray, np.ndarray]
    to_ref: Tuple[np.ndarray, np.ndarray]
    weight: np.ndarray


def flows_to(frames: np.ndarray, ref_index: int, cache: Optional[Dict] = None,
             ids: Optional[Sequence[int]] = None) -> List[Optional[Tuple[np.ndarray, np.ndarray]]]:
    """(flow neighbour -> reference, flow reference -> neighbour) per frame, None for the reference.

    With `cache` (keyed by the frames' `ids`), each directed flow is computed once however
    many reference frames need it: neighbouring outputs share most of their pairs."""
    ids = list(range(len(frames))) if ids is None else list(ids)

    def flow(a: int, b: int) -> np.ndarray:
        key = (ids[a], ids[b])
        if cache is None or key not in cache:
            f = estimate_flow(frames[a], frames[b], "best", 0)
            if cache is None:
                return f
            cache[key] = f
        return cache[key]
    return [None if j == ref_index else (flow(j, ref_index), flow(ref_index, j)) for j in range(len(frames))]


def robust_weight(ref: np.ndarray, nb: np.ndarray, flow_nr: np.ndarray, flow_rn: np.ndarray,
                  tolerance: float = TOLERANCE) -> np.ndarray:
    """Per neighbour pixel, 0..1: agreement with the reference where it lands (photometric
    error against `tolerance`), times the forward-backward flow check, times inside-frame."""
    err = np.abs(backward_warp(ref, flow_nr) - nb).mean(axis=-1)
    fb = np.sum((flow_nr + backward_warp(flow_rn, flow_nr)) ** 2, axis=-1)
    return (np.exp(-(err / tolerance) ** 2) * np.exp(-fb / 0.25) * inside_mask(flow_nr)).astype(np.float32)


def _gradient_energy(img: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Local energy of the horizontal and vertical grey gradients (smoothed over SHARP_SPAN pixels)."""
    grey = img.mean(axis=-1)
    return tuple(cv2.GaussianBlur(cv2.Sobel(grey, cv2.CV_32F, dx, 1 - dx) ** 2, (0, 0), SHARP_SPAN) for dx in (1, 0))


def sharpness_weight(ref: np.ndarray, nb: np.ndarray, flow_nr: np.ndarray) -> np.ndarray:
    """Per neighbour pixel, 0..1: 1 where it is as sharp as the reference where it lands, falling to 0
    where blurrier in either direction (SHARP_NONE..SHARP_FULL of the reference's gradient energy)."""
    floor = 4.0      # flat regions: no gradient to compare
    ratio = np.minimum(*[(a + floor) / (b + floor) for a, b in
                         zip(_gradient_energy(nb), _gradient_energy(backward_warp(ref, flow_nr)))])
    return np.clip((ratio - SHARP_NONE) / (SHARP_FULL - SHARP_NONE), 0, 1).astype(np.float32)


def _reduce(x: np.ndarray, w: int, h: int) -> np.ndarray:
    """What a sensor of w x h records of x: each pixel the average of its footprint."""
    return cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA)


def _enlarge(e: np.ndarray, W: int, H: int) -> np.ndarray:
    return cv2.resize(e, (W, H), interpolation=cv2.INTER_CUBIC)


def _views(frames: np.ndarray, ref_index: int, scale: int, flows: Sequence, tolerance: float) -> Dict[int, View]:
    """The View of every neighbour of frames[ref_index], by its index in frames."""
    h, w = frames.shape[1:3]
    H, W = h * scale, w * scale
    grid = base_grid(H, W)
    ref = frames[ref_index].astype(np.float32)
    views = {}
    for j, pair in enumerate(flows):
        if pair is None:
            continue
        obs = frames[j].astype(np.float32)
        f_nr, f_rn = pair
        weight = robust_weight(ref, obs, f_nr, f_rn, tolerance) * sharpness_weight(ref, obs, f_nr)
        weight = cv2.resize(weight, (W, H), interpolation=cv2.INTER_LINEAR)
        up_nr = cv2.resize(f_nr, (W, H), interpolation=cv2.INTER_LINEAR) * np.float32(scale)
        up_rn = cv2.resize(f_rn, (W, H), interpolation=cv2.INTER_LINEAR) * np.float32(scale)
        # Fixed-point maps: remapping is most of the iterations' cost and twice as fast this way.
        to_nb = cv2.convertMaps(grid + up_nr, None, cv2.CV_16SC2)    # neighbour px -> reference
        to_ref = cv2.convertMaps(grid + up_rn, None, cv2.CV_16SC2)   # reference px -> neighbour
        weight = cv2.remap(weight, *to_ref, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        views[j] = View(obs, to_nb, to_ref, weight)
    return views


def _residual(x: np.ndarray, view: View) -> np.ndarray:
    """What the neighbour recorded minus what the estimate x predicts it recorded (its low-res geometry)."""
    h, w = view.obs.shape[:2]
    return view.obs - _reduce(cv2.remap(x, *view.to_nb, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), w, h)


def _on_ref(lowres: np.ndarray, view: View) -> np.ndarray:
    """A low-res map in the neighbour's geometry, on the high-res reference grid."""
    H, W = view.weight.shape
    up = cv2.resize(lowres, (W, H), interpolation=cv2.INTER_LINEAR)
    return cv2.remap(up, *view.to_ref, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def back_project(ref: np.ndarray, views: Sequence[View], scale: int, iterations: int = ITERATIONS,
                 step: float = STEP) -> np.ndarray:
    """The high-res estimate (float32) that, seen through each view and reduced, reproduces what it
    recorded: from the Lanczos upscale of `ref`, `iterations` joint steps, then REFERENCE_STEPS
    against ref alone (none when there are no views: they would change nothing)."""
    h, w = ref.shape[:2]
    H, W = h * scale, w * scale
    x = cv2.resize(ref, (W, H), interpolation=cv2.INTER_LANCZOS4)
    total = np.maximum(1.0 + sum(v.weight for v in views), 1e-3)[..., None] if views else 1.0
    for _ in range(iterations):
        update = _enlarge(ref - _reduce(x, w, h), W, H)
        for v in views:
            update += cv2.remap(_enlarge(_residual(x, v), W, H), *v.to_ref, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE) * v.weight[..., None]
        x += step * update / total
    for _ in range(REFERENCE_STEPS if views else 0):
        x += _enlarge(ref - _reduce(x, w, h), W, H)
    return x


def fusion_share(ref: np.ndarray, views: Dict[int, View], alone: np.ndarray, scale: int) -> np.ndarray:
    """Per output pixel, 0..1: how much of the fused result to keep over `alone` (the reference's own
    estimate). Each half of the neighbours, fused with the reference, predicts what the other half
    recorded; where that beats alone's prediction, fusing brings real detail there."""
    order = sorted(views)
    groups = (order[0::2], order[1::2])      # each with near and far neighbours alike
    if not groups[1]:
        # A lone neighbour: nothing can check it, so it gets half a say.
        return np.full(alone.shape[:2], 0.5, np.float32)
    gain = np.zeros(alone.shape[:2], np.float32)
    base = np.zeros_like(gain)
    for train, test in (groups, groups[::-1]):
        guess = back_project(ref, [views[j] for j in train], scale, CHECK_ITERATIONS)
        for j in test:
            v = views[j]
            own = (_residual(alone, v) ** 2).mean(axis=-1)
            gain += v.weight * _on_ref(own - (_residual(guess, v) ** 2).mean(axis=-1), v)
            base += v.weight * _on_ref(own, v)
    gain, base = (cv2.GaussianBlur(m, (0, 0), SPAN) for m in (gain, base))
    share = np.clip(0.5 + gain / (SHARE * base + 1e-3), 0, 1)
    return cv2.GaussianBlur(share, (0, 0), 1.0)


def fuse(frames: np.ndarray, ref_index: int, scale: int, *, flows: Optional[Sequence] = None,
         tolerance: float = TOLERANCE) -> np.ndarray:
    """The high-res version of frames[ref_index] (float32) from all of `frames` (uint8 [n,h,w,3])."""
    flows = flows_to(frames, ref_index) if flows is None else flows
    ref = frames[ref_index].astype(np.float32)
    alone = back_project(ref, [], scale)
    views = _views(frames, ref_index, scale, flows, tolerance)
    if not views:
        return alone
    fused = back_project(ref, list(views.values()), scale)
    return alone + fusion_share(ref, views, alone, scale)[..., None] * (fused - alone)


def upscale_window(frames: np.ndarray, ref_index: int, scale: int, flows: Optional[Sequence] = None) -> np.ndarray:
    return np.clip(fuse(frames, ref_index, scale, flows=flows) + 0.5, 0, 255).astype(np.uint8)
def multiframe_clip(video, *, scale: int = 2, radius: int = 2, ctx=None):
    """Lazy clip: frame i fused from source frames [i - radius, i + radius] (clamped to the clip)."""
    n = video.length

    def fn(window: np.ndarray, lo: int, a: int, b: int) -> np.ndarray:
        out = np.empty((b - a, video.height * scale, video.width * scale, 3), np.uint8)
        cache: Dict = {}
        for i in range(a, b):
            if ctx is not None:
                ctx.check()
            s, e = max(0, i - radius), min(n, i + radius + 1)
            frames = window[s - lo:e - lo]
            out[i - a] = upscale_window(frames, i - s, scale, flows_to(frames, i - s, cache, range(s, e)))
            # Flows between frames this window has left behind are not needed again.
            for key in [k for k in cache if min(k) < i + 1 - radius]:
                del cache[key]
        return out

    return windowed(ctx, video, radius, fn, local=True).with_(width=video.width * scale, height=video.height * scale)
