"""Procedural "shapes world": captioned clips of coloured shapes, the training data of kinograph-mini.

A scene is one or two objects (a named colour, a shape, a motion) over an optional background
(plain or gradient in a named colour; without one the background is plain and dark), seen by a
static, panning or zooming camera. `caption(scene)` writes it in the fixed grammar

    OBJECT [and OBJECT] [on a COLOUR [gradient] background] [with the camera panning DIR | zooming in|out]
    OBJECT = a COLOUR SHAPE MOTION
    MOTION = moving DIR | moving up|down left|right | growing | shrinking | bouncing | standing still

and `parse_caption` reads it back. `render(scene, seed)` draws uint8 frames [T,H,W,3]; the
continuous details (sizes, positions, speeds, shades) come from the seed, so a (scene, seed) pair
always gives the same pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FRAMES = 16
SIZE = 48

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 90, 230),
    "yellow": (235, 215, 40),
    "white": (235, 235, 235),
    "orange": (245, 140, 20),
    "purple": (150, 60, 210),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
DIAGONALS = ("up left", "up right", "down left", "down right")
MOTIONS = tuple(f"moving {d}" for d in (*DIRECTIONS, *DIAGONALS)) + (
    "growing", "shrinking", "bouncing", "standing still")
CAMERAS = ("static", "panning left", "panning right", "panning up", "panning down", "zooming in", "zooming out")
BACKGROUND_KINDS = ("plain", "gradient")
# Backgrounds are darker shades of the named colour so that full-brightness objects stand out on them.
BACKGROUND_SHADE = 0.55

HELDOUT_PATH = Path(__file__).with_name("heldout.txt")


@dataclass(frozen=True)
class ObjectSpec:
    colour: str
    shape: str
    motion: str


@dataclass(frozen=True)
class SceneSpec:
    objects: tuple[ObjectSpec, ...]
    background: tuple[str, str] | None = None   # (kind, colour); None = plain and dark
    camera: str = "static"


def caption(scene: SceneSpec) -> str:
    text = " and ".join(f"{_article(o.colour)} {o.colour} {o.shape} {o.motion}" for o in scene.objects)
    if scene.background is not None:
        kind, colour = scene.background
        text += f" on {_article(colour)} {colour} {'gradient ' if kind == 'gradient' else ''}background"
    if scene.camera != "static":
        text += f" with the camera {scene.camera}"
    return text


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation; "an" is read as "a"."""
    return ["a" if w == "an" else w for w in text.lower().replace(",", " ").replace(".", " ").split()]


def parse_caption(text: str) -> SceneSpec:
    """Inverse of `caption`; raises ValueError naming the part that does not fit the grammar."""
    words = normalise_words(text)
    camera = "static"
    if "with" in words:
        i = words.index("with")
        camera = " ".join(words[i + 3:])
        if words[i:i + 3] != ["with", "the", "camera"] or camera not in CAMERAS:
            raise ValueError(f"camera phrase {' '.join(words[i:])!r} is not 'with the camera "
                             f"<{' | '.join(CAMERAS[1:])}>'")
        words = words[:i]
    background = None
    if "on" in words:
        i = words.index("on")
        bg = words[i:]
        if len(bg) == 4 and bg[:2] == ["on", "a"] and bg[3] == "background" and bg[2] in COLOURS:
            background = ("plain", bg[2])
        elif len(bg) == 5 and bg[:2] == ["on", "a"] and bg[3:] == ["gradient", "background"] and bg[2] in COLOURS:
            background = ("gradient", bg[2])
        else:
            raise ValueError(f"background phrase {' '.join(bg)!r} is not 'on a COLOUR [gradient] background'")
        words = words[:i]
    objects = []
    for part in " ".join(words).split(" and "):
        w = part.split()
        if len(w) < 4 or w[0] != "a" or w[1] not in COLOURS or w[2] not in SHAPES or " ".join(w[3:]) not in MOTIONS:
            raise ValueError(f"object phrase {part!r} is not 'a COLOUR SHAPE MOTION'")
        objects.append(ObjectSpec(w[1], w[2], " ".join(w[3:])))
    if not 1 <= len(objects) <= 2:
        raise ValueError(f"a caption describes one or two objects, not {len(objects)}")
    return SceneSpec(tuple(objects), background, camera)


# Mean screen travel over a clip, in image widths, of the ranges `_object_track` and `_camera_path`
# draw from: an object "moving" goes 0.35-0.5 of the width, a pan shifts the world by 0.25-0.4.
MEAN_TRAVEL = 0.425
MEAN_PAN = 0.325
MOTION_FEATURES = 4   # screen_motion flattened: dx, dy of the first and the second object


def screen_motion(text: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """Mean (dx, dy) on screen over the clip, in image widths, of the first and second object a
    caption describes (the first repeated when there is one). Lenient: a phrase that does not fit
    the grammar moves nothing, so any prompt of known words still has a motion."""
    words = normalise_words(text)
    pan = words[words.index("panning") + 1:][:1] if "panning" in words else []
    cam = DIRECTIONS.get(pan[0], (0, 0)) if pan else (0, 0)
    cut = min([words.index(w) for w in ("on", "with") if w in words] + [len(words)])
    motions = []
    for part in " ".join(words[:cut]).split(" and "):
        w = part.split()
        moves = [DIRECTIONS[x] for x in w[w.index("moving") + 1:] if x in DIRECTIONS] if "moving" in w else []
        step = np.sum(moves, axis=0) if moves else (0, 0)
        # The world drifts against the camera.
        motions.append(tuple(float(step[k] * MEAN_TRAVEL - cam[k] * MEAN_PAN) for k in range(2)))
    return motions[0], motions[1] if len(motions) > 1 else motions[0]


def load_heldout() -> list[str]:
    """The 40 captions never used for training (one per line in heldout.txt)."""
    return [ln.strip() for ln in HELDOUT_PATH.read_text().splitlines() if ln.strip()]


def sample_scene(rng: np.random.Generator, exclude: frozenset[str] = frozenset()) -> SceneSpec:
    """A random scene whose caption is not in `exclude`.

    Single objects on a plain dark background with a static camera are frequent, because that is
    what prompts most often ask for and what the adherence test judges."""
    while True:
        n = 1 if rng.random() < 0.75 else 2
        colours = rng.choice(list(COLOURS), size=n, replace=False)
        objects = tuple(ObjectSpec(str(c), str(rng.choice(SHAPES)), _pick_motion(rng)) for c in colours)
        background = None
        if rng.random() < 0.4:
            free = [c for c in COLOURS if c not in colours]
            background = (str(rng.choice(BACKGROUND_KINDS)), str(rng.choice(free)))
        camera = "static" if rng.random() < 0.75 else str(rng.choice(CAMERAS[1:]))
        scene = SceneSpec(objects, background, camera)
        if caption(scene) not in exclude:
            return scene


def _pick_motion(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.55:
        return f"moving {rng.choice(list(DIRECTIONS))}"
    if r < 0.7:
        return f"moving {rng.choice(DIAGONALS)}"
    return str(rng.choice(("growing", "shrinking", "bouncing", "standing still")))


def training_example(seed: int, exclude: frozenset[str] = frozenset(),
                     frames: int = FRAMES, size: int = SIZE) -> tuple[np.ndarray, str]:
    """(frames uint8 [T,H,W,3], caption) for one seed; never a caption in `exclude`."""
    rng = np.random.default_rng([seed, 0x5AE])
    scene = sample_scene(rng, exclude)
    return render(scene, seed, frames, size), caption(scene)


def render(scene: SceneSpec, seed: int, frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng([seed, 0xC1])
    cam_shift, cam_zoom = _camera_path(scene.camera, rng, frames, size)
    background = _background(scene.background, rng, frames, size, cam_shift, cam_zoom)
    small = len(scene.objects) > 1
    tracks = [_object_track(o.motion, rng, frames, size, small) for o in scene.objects]
    out = background
    centre = size / 2
    for obj, (xy, radius) in zip(scene.objects, tracks):
        colour = np.asarray(COLOURS[obj.colour], np.float64) * rng.uniform(0.92, 1.0)
        for t in range(frames):
            p = (xy[t] - cam_shift[t] - centre) * cam_zoom[t] + centre
            _draw(out[t], obj.shape, p, radius[t] * cam_zoom[t], colour)
    return out


def _camera_path(camera: str, rng, frames, size):
    tt = np.linspace(0.0, 1.0, frames)
    shift = np.zeros((frames, 2))
    zoom = np.ones(frames)
    if camera.startswith("panning"):
        # The camera moving left makes the world, and so every object, drift right on screen.
        shift = np.outer(tt, DIRECTIONS[camera.split()[1]]) * rng.uniform(0.25, 0.4) * size
    elif camera == "zooming in":
        zoom = 1.0 + tt * rng.uniform(0.3, 0.5)
    elif camera == "zooming out":
        zoom = 1.0 + (1.0 - tt) * rng.uniform(0.3, 0.5)
    return shift, zoom


def _background(bg, rng, frames, size, cam_shift, cam_zoom):
    if bg is None:
        dark = rng.uniform(8, 32) + rng.uniform(-4, 4, size=3)
        return np.broadcast_to(dark.astype(np.uint8), (frames, size, size, 3)).copy()
    kind, colour = bg
    base = np.asarray(COLOURS[colour], np.float32) * BACKGROUND_SHADE * rng.uniform(0.85, 1.1)
    if kind == "plain":
        return np.broadcast_to(np.clip(base, 0, 255).astype(np.uint8), (frames, size, size, 3)).copy()
    # A gradient from the colour to near black, laid out in world coordinates so camera moves show on it.
    angle = rng.uniform(0, 2 * np.pi)
    d = np.array([np.cos(angle), np.sin(angle)], np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = size / 2
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        wx = (xs - centre) / cam_zoom[t] + centre + cam_shift[t, 0]
        wy = (ys - centre) / cam_zoom[t] + centre + cam_shift[t, 1]
        a = np.clip(0.5 + ((wx - centre) * d[0] + (wy - centre) * d[1]) / size, 0, 1)[..., None]
        out[t] = np.clip(base * (0.25 + 0.75 * a), 0, 255).astype(np.uint8)
    return out


def _object_track(motion: str, rng, frames, size, small):
    """Per-frame centre [T,2] (x, y) and radius [T] in world pixels."""
    r = rng.uniform(4.5, 6.5) if small else rng.uniform(6.0, 8.5)
    radius = np.full(frames, r)
    tt = np.linspace(0.0, 1.0, frames)
    lo, hi = r + 1, size - r - 1
    if motion.startswith("moving"):
        words = motion.split()[1:]
        step = np.sum([DIRECTIONS[w] for w in words], axis=0).astype(np.float64)
        travel = min(rng.uniform(0.35, 0.5) * size, hi - lo)
        start = np.empty(2)
        for k in range(2):
            if step[k] > 0:
                start[k] = rng.uniform(lo, hi - travel)
            elif step[k] < 0:
                start[k] = rng.uniform(lo + travel, hi)
            else:
                start[k] = rng.uniform(lo, hi)
        xy = start + np.outer(tt, step * travel)
    elif motion in ("growing", "shrinking"):
        r0, r1 = rng.uniform(3.0, 4.0), rng.uniform(9.0, 11.0)
        radius = r0 + (r1 - r0) * (tt if motion == "growing" else 1.0 - tt)
        xy = np.tile(rng.uniform(r1 + 1, size - r1 - 1, size=2), (frames, 1))
    elif motion == "bouncing":
        floor = size - r - 1
        height = rng.uniform(0.3, 0.45) * size
        bounces = rng.uniform(1.5, 2.5)
        x = rng.uniform(lo, hi)
        y = floor - height * np.abs(np.sin(np.pi * bounces * tt + rng.uniform(0, np.pi)))
        xy = np.stack([np.full(frames, x), y], axis=1)
    else:  # standing still
        xy = np.tile(rng.uniform(lo, hi, size=2), (frames, 1))
    return xy, radius


_SUB = 4   # cv2 fixed-point bits: shapes are placed with 1/16 pixel precision and anti-aliased


def _draw(img: np.ndarray, shape: str, p, r: float, colour) -> None:
    scale = 1 << _SUB
    colour = tuple(float(c) for c in colour)
    if shape == "circle":
        cv2.circle(img, (int(round(p[0] * scale)), int(round(p[1] * scale))), int(round(r * scale)),
                   colour, -1, cv2.LINE_AA, _SUB)
        return
    if shape == "square":
        pts = np.array([[-r, -r], [r, -r], [r, r], [-r, r]])
    else:  # triangle, apex up, as wide and tall as the square of the same radius
        pts = np.array([[0.0, -r], [r, r], [-r, r]])
    pts = np.round((pts + np.asarray(p)) * scale).astype(np.int32)
    cv2.fillPoly(img, [pts], colour, cv2.LINE_AA, _SUB)
