"""Synthetic footage made of real photographs, for benchmarks that need ground truth.

A photograph from resources/samples is filmed by a moving camera (a smooth back-and-forth
pan with sub-pixel speeds, a slow zoom and a little hand-held wobble), and cut-outs from
the other photographs move over it at their own speeds and depths, so the footage has
real textures, parallax and occlusion. Every frame is a pure function of (seed, index):
`footage_frame` gives random access and `footage` any number of frames of any size, the
same pixels whichever way they are asked for.

    from bench.footage import footage
    frames = footage(60, 640, 360, seed=1)          # uint8 [60, 360, 640, 3]
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np

SAMPLES = Path(__file__).resolve().parent.parent / "resources" / "samples"


@functools.lru_cache(maxsize=None)
def photos() -> Tuple[np.ndarray, ...]:
    files = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise FileNotFoundError(f"no sample photographs in {SAMPLES}")
    return tuple(cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for f in files)


@dataclass(frozen=True)
class Sprite:
    rgba: np.ndarray          # float32 [h, w, 4], colour premultiplied by alpha
    start: Tuple[float, float]  # centre at frame 0, in output pixels
    velocity: Tuple[float, float]  # own motion, pixels per frame
    spin: float               # degrees per frame
    depth: float              # camera-motion multiplier: >1 is nearer than the background


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    background: np.ndarray    # the photograph, pre-scaled so the view just covers it
    pan: Tuple[float, float]  # peak camera speed, pixels per frame
    period: float             # frames for one back-and-forth of the pan
    zoom: float               # relative zoom change per frame
    sprites: Tuple[Sprite, ...]
    noise: float
    seed: int
    shutter: float            # exposure as a fraction of the frame interval (motion blur)
    subframes: int            # renders averaged over the exposure


def _cutout(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A soft-edged elliptical cut-out of a random part of a photograph, premultiplied RGBA."""
    ph, pw = photo.shape[:2]
    aspect = rng.uniform(0.6, 1.6)
    w, h = int(size * math.sqrt(aspect)), int(size / math.sqrt(aspect))
    crop = min(ph, pw) * rng.uniform(0.35, 0.6)
    cw, ch = int(min(pw, crop * math.sqrt(aspect))), int(min(ph, crop / math.sqrt(aspect)))
    x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    rgb = cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2)
    # ~1.5 px of feathering: an anti-aliased matte edge like a real object boundary.
    alpha = np.clip((1.0 - r) * min(w, h) / 3.0, 0.0, 1.0)
    return np.dstack([rgb * alpha[..., None], alpha])


def make_scene(width: int = 640, height: int = 360, seed: int = 0, *, pan: float = 10.0, zoom: float = 0.001,
               objects: int = 3, object_speed: float = 8.0, noise: float = 1.0, background: int = -1,
               shutter: float = 0.5, subframes: int = 3) -> Scene:
    """Speeds are peak pixels per frame at 640 pixels wide and scale with the width, so the
    same seed moves alike at any size; the defaults are typical hand-held footage."""
    rng = np.random.default_rng(seed)
    pan, object_speed = pan * width / 640, object_speed * width / 640
    pics = photos()
    bg_index = seed % len(pics) if background < 0 else background % len(pics)
    bg = pics[bg_index]
    # A little larger than the view so zoom-out and wobble rarely reach the mirrored border.
    scale = 1.08 * max(width / bg.shape[1], height / bg.shape[0])
    bg = cv2.resize(bg, (round(bg.shape[1] * scale), round(bg.shape[0] * scale)),
                    interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    angle = rng.uniform(0, 2 * math.pi)
    others = [p for i, p in enumerate(pics) if i != bg_index] or list(pics)
    sprites: List[Sprite] = []
    for k in range(objects):
        size = int(min(width, height) * rng.uniform(0.22, 0.4))
        speed = object_speed * rng.uniform(0.6, 1.4)
        heading = rng.uniform(0, 2 * math.pi)
        sprites.append(Sprite(
            rgba=_cutout(others[k % len(others)], size, rng),
            start=(rng.uniform(0, width), rng.uniform(0, height)),
            velocity=(speed * math.cos(heading), speed * math.sin(heading)),
            spin=rng.uniform(-0.4, 0.4), depth=rng.uniform(1.15, 1.6)))
    return Scene(width, height, bg, (pan * math.cos(angle), pan * math.sin(angle) * 0.5), 120.0, zoom,
                 tuple(sprites), noise, seed, shutter, max(1, subframes) if shutter > 0 else 1)


def _camera(scene: Scene, i: float) -> Tuple[float, float, float]:
    """Camera offset (x, y) in background pixels and zoom at frame i."""
    w = 2 * math.pi / scene.period
    # Peak speed of A*sin(w t) is A*w; the wobble adds ~0.3 px of hand-held jitter.
    x = scene.pan[0] / w * math.sin(w * i) + 0.3 * math.sin(0.37 * i + scene.seed)
    y = scene.pan[1] / w * math.sin(w * i * 0.8 + 1.0) + 0.3 * math.sin(0.53 * i + 2 * scene.seed)
    z = (1.0 + scene.zoom) ** (40.0 * math.sin(i / 40.0))
    return x, y, z


def footage_frame(scene: Scene, i: int) -> np.ndarray:
    """Frame i: the average of renders across the exposure, plus sensor noise."""
    if scene.subframes > 1:
        times = i + scene.shutter * (np.arange(scene.subframes) / (scene.subframes - 1) - 0.5)
    else:
        times = [float(i)]
    out = sum(_render(scene, float(t)) for t in times) / len(times)
    if scene.noise > 0:
        out += np.random.default_rng([scene.seed, i]).normal(0.0, scene.noise, out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _render(scene: Scene, i: float) -> np.ndarray:
    W, H = scene.width, scene.height
    cx, cy, z = _camera(scene, i)
    bh, bw = scene.background.shape[:2]
    # Output pixel p shows background point centre_bg + (p - centre_out) / z + camera offset.
    m = np.array([[1 / z, 0, bw / 2 + cx - W / 2 / z], [0, 1 / z, bh / 2 + cy - H / 2 / z]], np.float64)
    out = cv2.warpAffine(scene.background, m, (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT_101).astype(np.float32)
    for s in scene.sprites:
        sh, sw = s.rgba.shape[:2]
        # Sprites ride the camera at their own depth (parallax) plus their own motion; positions
        # wrap around a margin larger than the sprite, so the jump happens off screen.
        px = s.start[0] + s.velocity[0] * i - s.depth * (cx * z)
        py = s.start[1] + s.velocity[1] * i - s.depth * (cy * z)
        mw, mh = W + 2 * sw, H + 2 * sh
        px, py = (px + sw) % mw - sw, (py + sh) % mh - sh
        a = cv2.getRotationMatrix2D((sw / 2, sh / 2), s.spin * i, z)
        a[:, 2] += (px - sw / 2, py - sh / 2)
        layer = cv2.warpAffine(s.rgba, a, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
        alpha = np.clip(layer[..., 3:], 0.0, 1.0)
        out = out * (1.0 - alpha) + layer[..., :3]
    return out


def footage(n: int, width: int = 640, height: int = 360, seed: int = 0, start: int = 0, **scene_args) -> np.ndarray:
    """Frames [start, start + n) of the scene made from (width, height, seed, scene_args)."""
    scene = make_scene(width, height, seed, **scene_args)
    return np.stack([footage_frame(scene, start + i) for i in range(n)]) if n else \
        np.empty((0, height, width, 3), np.uint8)


def footage_clip(n: int, width: int = 640, height: int = 360, seed: int = 0, fps: float = 24.0, **scene_args):
    """The same footage as a lazy graph_engine.Clip that renders frames on demand (memory benchmarks)."""
    from graph_engine import Clip
    scene = make_scene(width, height, seed, **scene_args)
    return Clip(n, fps, width, height, lambda a, b: np.stack([footage_frame(scene, i) for i in range(a, b)]))


if __name__ == "__main__":
    import sys
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "footage_preview.png")
    frames = footage(3, 640, 360, seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0, start=0)
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(list(frames), axis=0), cv2.COLOR_RGB2BGR))
    print(f"wrote {out}")
