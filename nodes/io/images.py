"""Still images and image sequences: reading, and writing PNGs that carry their workflow."""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import List

import numpy as np

from graph_engine import Clip, NodeError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".exr")


def read_image(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    if not os.path.isfile(path):
        raise NodeError(f"image not found: {path} - check the path (relative paths are taken from the "
                        f"workflow file's folder)")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise NodeError(f"cannot read {path} as an image (corrupt or unsupported format): {e}")


def _natural(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def list_frames(path: str) -> List[str]:
    if os.path.isdir(path):
        files = [os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTS)]
    else:
        files = [f for f in glob.glob(path) if f.lower().endswith(IMAGE_EXTS)]
    if not files:
        raise NodeError(f"no images found at {path} - give a folder of images or a glob such as frames/*.png")
    return sorted(files, key=_natural)


def load_frames(path: str, fps: float) -> Clip:
    files = list_frames(path)
    first = read_image(files[0])
    h, w = first.shape[:2]

    def reader(a: int, b: int) -> np.ndarray:
        out = np.empty((b - a, h, w, 3), np.uint8)
        for i in range(a, b):
            img = read_image(files[i])
            if img.shape[:2] != (h, w):
                raise NodeError(f"{files[i]} is {img.shape[1]}x{img.shape[0]} but the sequence is {w}x{h}; "
                                f"all frames must have one size")
            out[i - a] = img
        return out

    return Clip(len(files), fps, w, h, reader)


def write_png(img: np.ndarray, path: str, workflow_yaml: str = "") -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
    im = Image.fromarray(img)
    try:
        if final.suffix.lower() == ".png":
            info = PngInfo()
            if workflow_yaml:
                info.add_text("kinograph_workflow", workflow_yaml)
            im.save(tmp, format="PNG", pnginfo=info, compress_level=4)
        else:
            im.save(tmp, quality=95)
        os.replace(tmp, final)
    except (OSError, ValueError, KeyError) as e:
        tmp.unlink(missing_ok=True)
        raise NodeError(f"cannot write image {final}: {e}")


def write_frames(clip: Clip, folder: str, workflow_yaml: str = "", progress=None) -> dict:
    """A folder of numbered PNGs (plus workflow.yaml), built beside the target and renamed when complete."""
    import shutil
    import cv2
    final = Path(folder)
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for a, block in clip.chunks():
            for j, frame in enumerate(block):
                if not cv2.imwrite(str(tmp / f"frame_{a + j:06d}.png"), frame[..., ::-1]):
                    raise NodeError(f"cannot write frames into {final}")
            if progress:
                progress(a + len(block), clip.length)
        if workflow_yaml:
            (tmp / "workflow.yaml").write_text(workflow_yaml, encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"path": str(final), "frames": clip.length}
