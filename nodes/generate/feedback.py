"""The feedback loop behind `generate.feedback` (Deforum's animation): each diffused frame is img2img of the previous
diffused frame moved by one step of the camera path, with that frame's prompt, denoise, guidance, steps and seed.

    D_0 = the init picture re-diffused (or the first prompt drawn from noise)
    D_k = diffuse(colour_match(step^c(D_{k-c})), k)        k = c, 2c, ... (c: the cadence)

Between diffused frames (cadence c > 1) frame j = a + m (a = the last diffused frame, m < c) is Deforum's in-between:
both D_{a-c} and D_a moved on to frame j, mixed (1 - w) : w with w = (m + 1) / c, so a new frame fades in over c
frames as Deforum's turbo frames show it (frames before the second diffused one are D_0 moved). Colour coherence
matches each moved picture's histograms to D_0's before it is diffused, as Deforum's 'Match Frame 0' does.

`FeedbackLoop` is the loop alone (pure: moving, diffusing and colour matching are functions handed to it), so it is
tested without a model. It produces frames in order as a clip's reader asks for them, holding two pictures; every
diffused frame is kept on disk as it is made (`KeyStore`: the node's work-in-progress folder, graph_engine.partial),
so a run that stops keeps what it made and the next run of the same node takes up from the last kept frame, and
reading an earlier frame again re-moves kept frames instead of diffusing them again."""
from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from graph_engine import NodeError

SEED_BEHAVIOURS = ("iter", "fixed", "schedule")
# Deforum's own cadence slider goes to 50, its forks' to 200; the loop holds two pictures whatever the cadence
MAX_CADENCE = 200
COHERENCE = ("none", "rgb", "hsv", "lab")
# Each schedule's values at every frame must lie within these: the node declares them (the editor's field, curve and
# the run's check before anything runs read them there) and the loop checks each frame's value, expressions included.
SCHEDULE_RANGES = {"denoise": (0.0, 1.0), "cfg": (0.0, 50.0), "steps": (1, 1000), "noise": (0.0, 1.0),
                   "contrast": (0.0, 10.0), "sharpen": (0.0, 10.0), "sharpen_kernel": (0, 99),
                   "sharpen_sigma": (0.0, 100.0), "sharpen_threshold": (0.0, 255.0), "noise_multiplier": (0.0, 2.0),
                   "seed_schedule": (0, 2 ** 63 - 1), "hybrid_alpha": (0.0, 1.0), "hybrid_mask_blend": (0.0, 1.0),
                   "hybrid_mask_contrast": (0.0, 10.0), "hybrid_mask_cutoff_low": (0.0, 100.0),
                   "hybrid_mask_cutoff_high": (0.0, 100.0), "hybrid_flow_factor": (-10.0, 10.0)}
NOISE_TYPES = ("white", "perlin")
Picture = np.ndarray


@dataclass
class FrameSchedules:
    """Per-frame values of the loop's schedules (arrays of the clip's length), and how the moved picture is
    prepared for img2img (prepared)."""
    denoise: np.ndarray
    cfg: np.ndarray
    steps: np.ndarray
    seeds: np.ndarray
    noise: np.ndarray = None
    contrast: np.ndarray = None
    sharpen: np.ndarray = None          # Deforum's anti-blur: the unsharp mask's amount,
    sharpen_kernel: np.ndarray = None   # its Gaussian's side (odd; 0: from the sigma),
    sharpen_sigma: np.ndarray = None    # its sigma,
    sharpen_threshold: np.ndarray = None    # and the grey levels of detail below which a pixel is left as it is
    perlin: Optional[Tuple[int, int, int, float]] = None    # noise shaped by Perlin noise: cells across, down,
                                                            # octaves, persistence (None: plain white noise)
    grayscale: bool = False             # each moved picture and each diffused frame in grey
    noise_multiplier: np.ndarray = None     # the img2img run's starting noise times this (A1111's multiplier)


def frame_schedules(frames: int, cadence: int, *, denoise, cfg, steps, seed: int, seed_behaviour: str = "iter",
                    seed_schedule="0", noise=0.0, contrast=1.0, sharpen=0.0, sharpen_kernel=5, sharpen_sigma=1.0,
                    sharpen_threshold=0.0, perlin=None, grayscale: bool = False,
                    noise_multiplier=1.0) -> FrameSchedules:
    """Each schedule evaluated at every frame and checked; seeds per Deforum's behaviours: iter adds 1 for every
    diffused frame (seed, seed + 1, ... at frames 0, c, 2c, ...), fixed keeps one, schedule reads seed_schedule."""
    from graph_engine.schedule import parse_schedule

    def values(name, text):
        lo, hi = SCHEDULE_RANGES[name]
        v = parse_schedule(text).values(frames)
        bad = np.flatnonzero(~((v >= lo) & (v <= hi)))
        if len(bad):
            raise NodeError(f"generate.feedback: {name} is {v[bad[0]]:g} at frame {int(bad[0])}; it must be within "
                            f"{lo:g}..{hi:g}: change the {name} schedule")
        return v
    if seed_behaviour not in SEED_BEHAVIOURS:
        raise NodeError(f"generate.feedback: seed_behaviour {seed_behaviour!r}: use one of {', '.join(SEED_BEHAVIOURS)}")
    index = np.arange(frames)
    if seed_behaviour == "schedule":
        seeds = np.round(values("seed_schedule", seed_schedule)).astype(np.int64)
    else:
        seeds = int(seed) + (index // cadence if seed_behaviour == "iter" else 0 * index)
    # OpenCV's blur takes odd sizes only, and a size that grows between keyframes (5 to 9) passes even ones
    # (Deforum's own run stops there with an OpenCV error): each frame's size is the nearest odd one, ties up.
    kernel = values("sharpen_kernel", sharpen_kernel)
    kernel = np.where(kernel < 0.5, 0, 2 * np.floor(kernel / 2) + 1).astype(int)
    sigma = values("sharpen_sigma", sharpen_sigma)
    amount = values("sharpen", sharpen)
    blind = np.flatnonzero((amount > 0) & (kernel == 0) & (sigma <= 0))
    if len(blind):
        raise NodeError(f"generate.feedback: at frame {int(blind[0])} sharpen_kernel and sharpen_sigma are both 0, so "
                        f"the sharpening has no blur to work from: give either a size")
    return FrameSchedules(values("denoise", denoise), values("cfg", cfg),
                          np.round(values("steps", steps)).astype(int), np.asarray(seeds, np.int64),
                          values("noise", noise), values("contrast", contrast), amount, kernel,
                          sigma, values("sharpen_threshold", sharpen_threshold), perlin, bool(grayscale),
                          values("noise_multiplier", noise_multiplier))


def prepared(picture: Picture, plan: FrameSchedules, k: int) -> Picture:
    """The moved picture as Deforum hands it to img2img at frame k, in Deforum's order: greyed (plan.grayscale),
    its values times `contrast`, sharpened (anti-blur: sharpened), then mixed (1 - noise) : noise with a picture of
    noise drawn from the frame's seed (white, mid-grey, 127.5 levels a unit; with plan.perlin, scaled pixel by pixel
    by Perlin noise from 0 to 1, so it comes in blobs, as Deforum's perlin noise type)."""
    if plan.grayscale:
        picture = greyed(picture)
    c = float(plan.contrast[k]) if plan.contrast is not None else 1.0
    if c != 1:
        picture = np.clip(np.rint(picture.astype(np.float32) * c), 0, 255).astype(np.uint8)
    if plan.sharpen is not None and plan.sharpen[k] > 0:
        picture = sharpened(picture, float(plan.sharpen[k]), int(plan.sharpen_kernel[k]), float(plan.sharpen_sigma[k]),
                            float(plan.sharpen_threshold[k]))
    amount = float(plan.noise[k]) if plan.noise is not None else 0.0
    if amount == 0:
        return picture
    rng = np.random.default_rng(int(plan.seeds[k]) & 0xFFFF_FFFF_FFFF_FFFF)
    grain = rng.standard_normal(picture.shape, dtype=np.float32)
    if plan.perlin is not None:
        grain *= (perlin_octaves(picture.shape[0], picture.shape[1], *plan.perlin, rng) + 1.0)[..., None] / 2.0
    grain = np.clip(grain * 127.5 + 127.5, 0, 255)
    return np.clip(np.rint(picture * (1 - amount) + grain * amount), 0, 255).astype(np.uint8)


def greyed(picture: Picture) -> Picture:
    """Deforum's color_force_grayscale: the picture's luma (ITU-R 601, as its OpenCV and PIL calls take it) in
    all three channels."""
    import cv2
    return cv2.cvtColor(cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def sharpened(picture: Picture, amount: float, kernel: int, sigma: float, threshold: float) -> Picture:
    """Deforum's anti-blur, an unsharp mask: (1 + amount) * picture - amount * its Gaussian blur (kernel x kernel,
    sigma), except where the picture differs from its blur by less than `threshold` grey levels. (Deforum takes
    that difference in uint8, where a pixel 2 levels darker than its blur differs by 254; this takes it as meant.)"""
    import cv2
    blurred = cv2.GaussianBlur(picture, (kernel, kernel), sigma)
    out = cv2.addWeighted(picture, 1.0 + amount, blurred, -amount, 0.0)     # saturated and rounded to uint8
    if threshold > 0:
        flat = cv2.absdiff(picture, blurred) < threshold
        out[flat] = picture[flat]
    return out


def perlin_octaves(height: int, width: int, across: int, down: int, octaves: int, persistence: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Perlin gradient noise (float32 height x width, about -1..1 for one octave): `across` x `down` cells, then
    each further octave twice as many cells at `persistence` times the amplitude, as Deforum's rand_perlin_2d_octaves
    makes it (the quintic fade, sqrt(2) scale). Cells need not divide the picture (Deforum refuses sizes they do not
    divide): each pixel's place in its cell is its fractional cell coordinate."""
    out = np.zeros((height, width), np.float32)
    amplitude = 1.0
    for o in range(int(octaves)):
        out += amplitude * _perlin(height, width, across << o, down << o, rng)
        amplitude *= persistence
    return out


def _perlin(height: int, width: int, across: int, down: int, rng: np.random.Generator) -> np.ndarray:
    angles = rng.uniform(0.0, 2 * np.pi, (down + 1, across + 1)).astype(np.float32)
    gy, gx = np.cos(angles), np.sin(angles)     # (cos, sin) along (rows, columns), as Deforum pairs them
    y = np.arange(height, dtype=np.float32) * np.float32(down / height)
    x = np.arange(width, dtype=np.float32) * np.float32(across / width)
    iy, ix = np.minimum(y.astype(int), down - 1), np.minimum(x.astype(int), across - 1)   # (rounding at the end)
    fy, fx = (y - iy)[:, None], (x - ix)[None, :]
    rows, cols = iy[:, None], ix[None, :]

    def corner(dy, dx):     # the corner gradient's dot product with the pixel's offset from that corner
        return gy[rows + dy, cols + dx] * (fy - dy) + gx[rows + dy, cols + dx] * (fx - dx)
    ty, tx = (fy * fy * fy * (fy * (fy * 6 - 15) + 10)), (fx * fx * fx * (fx * (fx * 6 - 15) + 10))
    top = corner(0, 0) + tx * (corner(0, 1) - corner(0, 0))
    bottom = corner(1, 0) + tx * (corner(1, 1) - corner(1, 0))
    return np.float32(np.sqrt(2.0)) * (top + ty * (bottom - top))


class KeyStore:
    """The diffused frames, one .npy each, in `folder`; without one, in a temporary folder of this store's own
    (removed with it). A frame that cannot be written is only not kept (it is made again if asked for again)."""

    def __init__(self, folder: Optional[Path]):
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="kinograph-feedback-"))
            weakref.finalize(self, shutil.rmtree, str(folder), True)
        self.folder = Path(folder)

    def _path(self, k: int) -> Path:
        return self.folder / f"key{k:06d}.npy"

    def get(self, k: int, shape) -> Optional[Picture]:
        try:
            got = np.load(self._path(k), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return got if got.shape == tuple(shape) and got.dtype == np.uint8 else None

    def put(self, k: int, picture: Picture) -> None:
        from graph_engine.partial import keep_work
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        keep_work(self._path(k), lambda f: np.save(f, picture, allow_pickle=False), picture.nbytes)

    def has(self, k: int) -> bool:
        return self._path(k).is_file()


class FeedbackLoop:
    """Frames of the loop in order. step(picture, k) moves frame k-1's picture to frame k; diffuse(picture, k) makes
    diffused frame k from the moved picture (None: frame 0 drawn from noise); matcher(reference) -> a function
    matching a picture's colours to the reference (None: no colour coherence)."""

    def __init__(self, length: int, cadence: int, step: Callable[[Picture, int], Picture],
                 diffuse: Callable[[Optional[Picture], int], Picture], store: KeyStore, shape,
                 first: Optional[Picture] = None, matcher: Optional[Callable] = None,
                 log: Callable[[str], None] = lambda message: None, match_diffused: bool = False,
                 reference: Optional[Picture] = None, from_video: bool = False,
                 composite: Optional[Callable[[Picture, int], Picture]] = None,
                 composite_after: Optional[Callable[[Picture, int], Picture]] = None):
        self.length, self.c = int(length), max(1, int(cadence))
        # Deforum's colour coherence since mid-2023 (legacy_colormatch off): the reference is diffused frame 0 as
        # it is, and each diffused frame is matched to it again after it is diffused
        self.match_diffused = bool(match_diffused)
        # Deforum's 'Image' colour coherence: a fixed reference, which diffused frame 0 is matched to as well; or,
        # its 'Video Input' coherence, a function giving diffused frame k's reference (a video's frame)
        self.reference = reference
        # step gives a video's frame, not the loop's own picture moved (Deforum's Video Input mode): nothing drifts
        # before it is diffused, so only the diffused frames are matched
        self.from_video = bool(from_video)
        # Deforum's hybrid composite: a video frame blended into each moved picture before it is colour matched
        # and diffused, or into each diffused frame (After Generation) before it is matched again
        self.composite, self.composite_after = composite, composite_after
        self.step, self.diffuse, self.store, self.shape = step, diffuse, store, tuple(shape)
        self.first, self.matcher, self.log = first, matcher, log
        self.match: Optional[Callable] = None
        self.j = -1
        self.prev: Optional[Picture] = None     # D_{a-c} moved on to frame j (None before the second diffused frame)
        self.next: Optional[Picture] = None     # D_a moved on to frame j
        self.made = False                       # this loop has diffused a frame (or said it is taking up a stopped one)

    def frame(self, j: int) -> Picture:
        if not 0 <= j < self.length:
            raise IndexError(f"frame {j} is outside the loop's {self.length} frames")
        if j < self.j or self.j < 0:
            self._restart(j)
        while self.j < j:
            self._advance()
        return self._output()

    def _key(self, k: int, moved: Optional[Picture]) -> Picture:
        got = self.store.get(k, self.shape)
        if got is None:
            if self.composite is not None and moved is not None and k:
                moved = self.composite(moved, k)
            if self.matcher is not None and moved is not None and k and not self.from_video and \
                    (k > self.c or self.reference is not None or self._frame_0_is_sample()):
                moved = self._reference(k)(moved)      # (legacy: at c the moved frame is the reference)
            got = self.diffuse(moved, k)
            if self.composite_after is not None and k:
                got = self.composite_after(got, k)
            if self.matcher is not None and ((self.match_diffused and k) or (self.reference is not None and not k)):
                got = self._reference(k)(got)
            got = np.ascontiguousarray(got, np.uint8)
            self.store.put(k, got)
            self.made = True
        elif k and not self.made:
            self.made = True        # said once, and only for frames a run before this one made
            self.log(f"taking up a loop that stopped: the diffused frames it kept in {self.store.folder} are read "
                     f"instead of made again")
        return got

    def _reference(self, k: int) -> Callable:
        """The colour match: to the fixed reference picture where there is one; else to frame 0 as the second
        diffused frame's camera sees it (the first picture Deforum's colour coherence meets, which it keeps as its
        sample), made from the kept frame 0 when first needed."""
        if callable(self.reference):
            picture, key = self.reference(k)
            if self.match is None or self.match[0] != key:
                self.match = (key, self.matcher(picture))
            return self.match[1]
        if self.match is None and self.reference is not None:
            self.match = self.matcher(self.reference)
        if self.match is None:
            ref = self._key(0, self.first)
            # (Deforum keeps diffused frame 0 as its sample only when it was drawn from noise: an init picture's
            # frame 0 is not, and the first moved picture becomes the sample, as in the legacy matching)
            for k in range(1, 0 if self._frame_0_is_sample() else self.c + 1):
                ref = self.step(ref, k)
            self.match = self.matcher(ref)
        return self.match

    def _frame_0_is_sample(self) -> bool:
        return self.match_diffused and (self.first is None or self.from_video)

    def _restart(self, j: int) -> None:
        """The state at the start of the window holding frame j, from the last diffused frames kept before it
        (moved on from there: no frame is diffused again), or from frame 0."""
        c = self.c
        self.prev, self.next, self.j = None, self._key(0, self.first), 0
        for a in range(j - j % c, c - 1, -c):
            if not (self.store.has(a) and self.store.has(a - c)):
                continue
            older, newer = self.store.get(a - c, self.shape), self.store.get(a, self.shape)
            if older is None or newer is None:
                continue
            for k in range(a - c + 1, a + 1):
                older = self.step(older, k)
            self.prev, self.next, self.j = older, newer, a
            return

    def _advance(self) -> None:
        k = self.j + 1
        if k % self.c == 0:
            moved = self.step(self.next, k)
            self.prev, self.next = moved, self._key(k, moved)
        else:
            self.prev = None if self.prev is None else self.step(self.prev, k)
            self.next = self.step(self.next, k)
        self.j = k

    def _output(self) -> Picture:
        w = (self.j % self.c + 1) / self.c
        if self.prev is None or w >= 1:
            return self.next
        mixed = (1 - w) * self.prev.astype(np.float32) + w * self.next.astype(np.float32)
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def frame_diffuser(model, vae, positive, negative, plan: FrameSchedules, *, sampler: str, scheduler: str,
                   width: int, height: int, fps: float, check: Callable[[], None] = lambda: None,
                   log: Callable[[str], None] = lambda message: None,
                   step_progress: Callable[[int, int, int], None] = lambda frame, step, steps: None):
    """diffuse(picture, k) for FeedbackLoop: one frame sampled with frame k's prompt, denoise, guidance, steps and
    seed, through the same sampling and VAE code as generate.sample (img2img of the picture; None: from noise).
    The picture is prepared first (grey, contrast, sharpening, noise: prepared); denoise 0 then keeps it (no model
    call). The model's ControlNet frames are frame k's (control_at)."""
    from graph_engine import Clip
    from nodes.generate.adapters import get_adapter
    from nodes.generate.control import control_at
    from nodes.generate.sampling import run_sampling
    from nodes.generate.vae_ops import decode_latent, empty_latent, encode_clip
    default_cfg = get_adapter(model.family).usual_cfg(model)

    def diffuse(picture: Optional[Picture], k: int) -> Picture:
        denoise = 1.0 if picture is None else float(plan.denoise[k])
        if picture is not None:
            picture = prepared(picture, plan, k)
        if denoise <= 0:
            return picture
        latent = (empty_latent(vae, 1, width, height, fps) if picture is None
                  else encode_clip(vae, Clip.from_array(picture[None], fps), check))
        out = run_sampling(control_at(model, k), positive.at_frame(k),
                           None if negative is None else negative.at_frame(k), latent,
                           steps=int(plan.steps[k]), cfg=float(plan.cfg[k]) or default_cfg, sampler=sampler,
                           scheduler=scheduler, denoise=denoise, seed=int(plan.seeds[k]),
                           callback=lambda i, n: step_progress(k, i, n), check=check, log=log,
                           noise_scale=1.0 if picture is None else float(plan.noise_multiplier[k]))
        made = decode_latent(vae, out).frame(0)
        return greyed(made) if plan.grayscale else made
    return diffuse


def camera_step(mover, depth_model: str, depth_range, device: str) -> Callable[[Picture, int], Picture]:
    """step(picture, k) for FeedbackLoop: the picture moved by camera step k, as a plane `distance` ahead, or with
    a depth model (Deforum's use_depth_warping) lifted to 3-D by its own estimated depth, the estimator's disparity
    spread between depth_range's near and far distances (in the camera path's units), so near things move more."""
    if not depth_model:
        return lambda img, k: mover.step(img, k)[0]
    from nodes.depth.estimate import load_estimator
    from nodes.motion.warp import depth_to_z
    near, far = depth_range
    if not 0 < near < far:
        raise NodeError(f"generate.feedback: depth_near {near:g} and depth_far {far:g}: the near distance must be "
                        f"above 0 and below the far one")
    estimator = load_estimator(depth_model, device)

    def step(img: Picture, k: int) -> Picture:
        h, w = img.shape[:2]
        return mover.step(img, k, depth_to_z(estimator.disparity(img), w, h, "disparity", near, far))[0]
    return step


def hybrid_parts(video, hybrid: dict, step, n: int, width: int, height: int, log):
    """Deforum's hybrid video on the loop: the camera step followed by the video's own motion (hybrid_motion), and
    the composite of the video's frame into the moved or the diffused pictures. `hybrid` holds generate.feedback's
    hybrid_* settings (schedules as text)."""
    from graph_engine.schedule import parse_schedule
    from nodes.generate.hybrid import COMPOSITES, composited, video_motion
    frame = video_step(video, width, height, log)

    def values(name):
        lo, hi = SCHEDULE_RANGES[f"hybrid_{name}"]
        v = parse_schedule(hybrid[name]).values(n)
        bad = np.flatnonzero(~((v >= lo) & (v <= hi)))
        if len(bad):
            raise NodeError(f"generate.feedback: hybrid_{name} is {v[bad[0]]:g} at frame {int(bad[0])}; it must be "
                            f"within {lo:g}..{hi:g}")
        return v
    if hybrid["motion"] != "none":
        motion = video_motion(lambda k: frame(None, k), hybrid["motion"], hybrid["flow"],
                              values("flow_factor"))
        camera = step
        step = lambda picture, k: motion(camera(picture, k), k)     # noqa: E731
    kind = hybrid["composite"]
    if kind not in COMPOSITES:
        raise NodeError(f"generate.feedback: hybrid_composite {kind!r}: use one of {', '.join(COMPOSITES)}")
    if kind == "none":
        return step, None, None
    alpha, blend, contrast = values("alpha"), values("mask_blend"), values("mask_contrast")
    low, high = values("mask_cutoff_low").astype(int), values("mask_cutoff_high").astype(int)

    def comp(picture, k):
        return composited(picture, frame(None, k), float(alpha[k]), hybrid["mask"], float(blend[k]),
                          float(contrast[k]), hybrid["mask_inverse"], hybrid["mask_equalize"],
                          (low[k], high[k]) if hybrid["mask_auto_contrast"] else None)
    return (step, comp, None) if kind == "normal" else (step, None, comp)


def hybrid_connected(video, hybrid_video, hybrid: dict, color_video_every: int) -> None:
    """Refuse hybrid settings that would do nothing: a hybrid video beside a video to diffuse (the loop's frames are
    then the video's, never moved or blended), or a composite, motion or video colour coherence asked for without
    a hybrid video to take it from."""
    if video is not None and hybrid_video is not None:
        raise NodeError("generate.feedback: a video and a hybrid video: diffusing a video frame by frame (Deforum's "
                        "Video Input mode) moves and blends nothing, as in Deforum; connect the video as hybrid_video "
                        "with a camera path instead, or disconnect hybrid_video")
    if hybrid_video is None:
        asked = [(f"hybrid_{k}", hybrid[k], "none") for k in ("composite", "motion") if hybrid.get(k, "none") != "none"]
        asked += [("color_video_every", color_video_every, 0)] if color_video_every > 0 else []
        if asked:
            raise NodeError("generate.feedback: " + " and ".join(f"{k} {v}" for k, v, _ in asked) + " without a "
                            "hybrid video: connect hybrid_video (an io.load_video), or set " +
                            " and ".join(f"{k} to {off}" for k, _, off in asked))


def camera_mover(camera, width: int, height: int, border: str):
    from nodes.motion.warp import CameraMover, picture_at
    try:
        return CameraMover(picture_at(camera, 1.0), width, height, "perspective", "compounding", border)
    except ValueError as e:
        raise NodeError(f"generate.feedback: {e}") from None


def video_step(video, width: int, height: int, log: Callable[[str], None]) -> Callable[[Picture, int], Picture]:
    """step(picture, k) for FeedbackLoop diffusing a video frame by frame (Deforum's Video Input mode): frame k of
    the video at the loop's size, whatever the picture before it was."""
    if (video.width, video.height) != (width, height):
        log(f"the video's frames ({video.width}x{video.height}) are resized to the loop's {width}x{height}")

    def step(picture: Optional[Picture], k: int) -> Picture:
        return fitted_picture(video.frame(k), width, height, lambda message: None)
    return step


def video_reference(frame: Callable[[Optional[Picture], int], Picture], every: int, cadence: int):
    """reference(k) for FeedbackLoop: Deforum's 'Video Input' colour coherence, which takes the video's frame as its
    sample at each diffused frame whose number is a multiple of `every`, and keeps it until the next such frame:
    the last multiple of both the cadence and `every` up to k. Returns the picture and its frame number (so the loop
    builds each matcher once)."""
    import math
    step = math.lcm(int(every), int(cadence))

    def reference(k: int):
        d = k - k % step
        return frame(None, d), d
    return reference


def resized_reference(picture: Picture, width: int, height: int) -> Picture:
    """The colour reference at the loop's size, Lanczos-resized as Deforum resizes its colour coherence image."""
    from PIL import Image
    picture = np.ascontiguousarray(picture[..., :3], np.uint8)
    if picture.shape[:2] == (height, width):
        return picture
    return np.asarray(Image.fromarray(picture).resize((width, height), Image.LANCZOS))


def fitted_picture(image: Picture, width: int, height: int, log: Callable[[str], None]) -> Picture:
    """The start picture at the loop's size (Deforum resizes its init image to W x H): an init photo of another
    size was refused for not being a multiple of 8, or set a size the camera path was not made for."""
    import cv2
    image = np.ascontiguousarray(image[..., :3], np.uint8)
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    log(f"the start picture ({w}x{h}) is resized to the loop's {width}x{height}")
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if w * h > width * height
                      else cv2.INTER_CUBIC)


def feedback_clip(ctx, model, vae, positive, negative, camera, image, *, width: int, height: int, denoise, cfg,
                  steps, sampler: str, scheduler: str, seed: int, seed_behaviour: str, seed_schedule, cadence: int,
                  color_coherence: str, border: str, fps: float, color_coherence_after: bool = False, noise=0.0, contrast=1.0, image_denoise=-1.0,
                  noise_type: str = "white", perlin=(8, 8, 4, 0.5),
                  sharpen=0.0, sharpen_kernel=5, sharpen_sigma=1.0, sharpen_threshold=0.0, grayscale=False,
                  noise_multiplier=1.0, depth_model: str = "", depth_range=(1.0, 2.6), video=None,
                  color_reference=None, hybrid_video=None, hybrid=None, color_video_every: int = 0):
    """generate.feedback's clip: camera.length frames of the loop (with a video, the video's), made as they are
    read."""
    from graph_engine import Clip
    from nodes.common.color import histogram_matcher
    from nodes.common.stream import Progress
    from nodes.generate.families import family
    hybrid_connected(video, hybrid_video, hybrid or {}, color_video_every)
    family(vae.family).check_size(width, height)
    if image is not None:
        image = fitted_picture(image, width, height, ctx.log)
    if video is not None:
        if image is not None:
            raise NodeError("generate.feedback: a start picture and a video: with a video every frame starts from "
                            "the video's frame (frame 0 too); connect one of them")
        if cadence != 1:
            raise NodeError(f"generate.feedback: cadence {cadence} with a video: every frame of the video is diffused "
                            f"(Deforum's Video Input mode has no cadence either); set cadence to 1")
        n = video.length
    elif camera is None:
        raise NodeError("generate.feedback: connect a camera path (motion.camera_path) to move each frame into the "
                        "next, or a video to diffuse frame by frame")
    else:
        n = camera.length
        if hybrid_video is not None and hybrid_video.length < n:
            ctx.log(f"the hybrid video has {hybrid_video.length} frames: the clip is cut to them (the camera path has "
                    f"{n})")
            n = hybrid_video.length
    if color_reference is not None:
        if color_coherence == "none":
            raise NodeError("generate.feedback: a colour reference picture with color_coherence none: choose rgb, hsv "
                            "or lab (Deforum's 'Image' colour coherence is lab)")
        color_reference = resized_reference(color_reference, width, height)
    if noise_type not in NOISE_TYPES:
        raise NodeError(f"generate.feedback: noise_type {noise_type!r}: use one of {', '.join(NOISE_TYPES)}")
    perlin = tuple(perlin) if noise_type == "perlin" else None
    plan = frame_schedules(n, cadence, denoise=denoise, cfg=cfg, steps=steps, seed=seed,
                           seed_behaviour=seed_behaviour, seed_schedule=seed_schedule, noise=noise, contrast=contrast,
                           sharpen=sharpen, sharpen_kernel=sharpen_kernel, sharpen_sigma=sharpen_sigma,
                           sharpen_threshold=sharpen_threshold, perlin=perlin, grayscale=grayscale,
                           noise_multiplier=noise_multiplier)
    if image is not None and image_denoise >= 0:
        plan.denoise[0] = image_denoise     # Deforum's init strength: frame 0 alone, not the schedule's first key
    composite = composite_after = None
    if video is not None:
        step = video_step(video, width, height, ctx.log)
        image = step(None, 0)
    else:
        step = camera_step(camera_mover(camera, width, height, border), depth_model, depth_range, ctx.device)
        if hybrid_video is not None:
            step, composite, composite_after = hybrid_parts(hybrid_video, hybrid, step, n, width, height, ctx.log)
            if color_video_every > 0:
                if color_reference is not None:
                    raise NodeError("generate.feedback: a colour reference picture and color_video_every: the colours "
                                    "are matched to one of them; set color_video_every to 0 or disconnect the picture")
                if color_coherence == "none":
                    raise NodeError("generate.feedback: color_video_every with color_coherence none: choose rgb, hsv "
                                    "or lab (Deforum's 'Video Input' colour coherence is lab)")
                color_reference = video_reference(video_step(hybrid_video, width, height, lambda m: None),
                                                  color_video_every, cadence)
    progress = Progress(ctx, n)
    diffuse = frame_diffuser(model, vae, positive, negative, plan, sampler=sampler, scheduler=scheduler, width=width,
                             height=height, fps=fps, check=ctx.check, log=ctx.log,
                             step_progress=lambda k, i, steps: progress.within(i / max(1, steps),
                                                                               f"frame {k}: step {i} of {steps}"))
    matcher = None if color_coherence == "none" else (lambda ref: histogram_matcher(ref, color_coherence))
    loop = FeedbackLoop(n, cadence, step, diffuse, KeyStore(ctx.partial_folder()), (height, width, 3), image, matcher,
                        ctx.log, match_diffused=color_coherence_after, reference=color_reference,
                        from_video=video is not None, composite=composite, composite_after=composite_after)

    def reader(a: int, b: int) -> np.ndarray:
        out = np.empty((b - a, height, width, 3), np.uint8)
        for i in range(a, b):
            ctx.check()
            out[i - a] = loop.frame(i)
            if i >= progress.done:
                progress.add(1)
            if ctx.wants_previews:
                ctx.preview(out[i - a], i + 1, n)
        return out
    return Clip(n, fps, width, height, reader)
