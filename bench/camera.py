"""Camera moves at 832x480: frames per second of apply_camera (2-D, 2.5-D depth, compounding)
and of the Plücker embedding, against a bare cv2.warpPerspective loop measured in the same run.

    python bench/camera.py [--frames 24]
"""
import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from nodes.motion import camera as cm
from nodes.motion.embed import plucker
from nodes.motion.warp import apply_camera, pixel_homography

ROOT = Path(__file__).resolve().parent.parent


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    n = ap.parse_args().frames
    w, h = 832, 480
    img = cv2.resize(cv2.cvtColor(cv2.imread(str(ROOT / "resources/samples/rocket.jpg")), cv2.COLOR_BGR2RGB), (w, h))
    ys, xs = np.mgrid[0:h, 0:w]
    disparity = (255 * np.exp(-((xs - w / 2) ** 2 + (ys - h / 2) ** 2) / (2 * (h / 3) ** 2))).astype(np.uint8)
    cam = cm.combine(cm.preset("orbit_left", n, w, h, speed=2), cm.preset("zoom_in", n, w, h))

    def anchor():
        for i in range(n):
            cv2.warpPerspective(img, pixel_homography(cam, i), (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)

    apply_camera(cam.frames(0, 2), image=img[:32, :32], depth=disparity[:32, :32]).to_array()   # numba warm-up
    rows = [("cv2.warpPerspective loop (anchor)", timed(anchor)),
            ("apply_camera 2-D absolute", timed(lambda: apply_camera(cam, image=img).to_array())),
            ("apply_camera 2-D compounding", timed(lambda: apply_camera(cam, image=img, motion="compounding")
                                                   .to_array())),
            ("apply_camera 2.5-D depth", timed(lambda: apply_camera(cam, image=img, depth=disparity).to_array())),
            ("plucker embedding", timed(lambda: plucker(cam)))]
    base = rows[0][1]
    print(f"{n} frames at {w}x{h}")
    for name, sec in rows:
        print(f"  {name:36s} {n / sec:8.1f} frames/s   {sec / base:6.2f}x anchor time")


if __name__ == "__main__":
    main()
