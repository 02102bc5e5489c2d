"""A picture of a camera path: a top view (x right, z forward = up the panel) and a side view
(z forward = right, up = up), with the path coloured from blue (first frame) to red (last),
view frusta at a few frames and the 2-D picture plane 1 unit in front of frame 0 in grey."""
from __future__ import annotations

import cv2
import numpy as np

from .camera import Camera

FRUSTA = 6


def _colour(u: float):
    return (int(255 * u), 60, int(255 * (1 - u)))


def _frustum(cam: Camera, i: int, depth: float) -> np.ndarray:
    """Apex and the 4 image corners at `depth` in world space: [5, 3]."""
    fx, fy, cx, cy = cam.intrinsics[i]
    corners = np.array([[(x - cx) / fx, (y - cy) / fy, 1.0] for x, y in
                        ((0, 0), (cam.width, 0), (cam.width, cam.height), (0, cam.height))]) * depth
    pts = np.vstack([[0, 0, 0], corners])
    return pts @ cam.c2w[i, :3, :3].T + cam.c2w[i, :3, 3]


def camera_preview(cam: Camera, width: int = 512, height: int = 256) -> np.ndarray:
    """uint8 [height, width, 3]: the two views side by side."""
    cam = cam.relative()
    pos = cam.positions
    span = float(np.ptp(pos, axis=0).max()) if cam.length > 1 else 0.0
    depth = max(0.15, 0.25 * span)
    picks = sorted(set(np.rint(np.linspace(0, cam.length - 1, min(FRUSTA, cam.length))).astype(int).tolist()))
    frusta = {i: _frustum(cam, i, depth) for i in picks}
    half = cam.width / 2 / cam.intrinsics[0, 0]
    plane = np.array([[-half, -half * cam.height / cam.width, 1.0], [half, half * cam.height / cam.width, 1.0]])
    everything = np.vstack([pos, plane, *frusta.values()])
    pw = width // 2
    canvas = np.full((height, width, 3), 28, np.uint8)
    # top: (x, z) -> (right, up); side: (z, -y) -> (right, up)
    views = [("top", lambda p: np.stack([p[:, 0], p[:, 2]], 1)),
             ("side", lambda p: np.stack([p[:, 2], -p[:, 1]], 1))]
    for v, (name, proj) in enumerate(views):
        ox = v * pw
        q = proj(everything)
        lo, hi = q.min(0), q.max(0)
        size = max(float((hi - lo).max()), 1e-6)
        scale = (min(pw, height) - 40) / size
        mid = (lo + hi) / 2

        def px(p):
            a = proj(np.atleast_2d(p))
            x = ox + pw / 2 + (a[:, 0] - mid[0]) * scale
            y = height / 2 - (a[:, 1] - mid[1]) * scale
            return np.round(np.stack([x, y], 1) * 16).astype(np.int32)   # 4 bits of sub-pixel

        cv2.rectangle(canvas, (ox + 2, 2), (ox + pw - 3, height - 3), (70, 70, 70), 1)
        pl = px(plane)
        cv2.line(canvas, tuple(pl[0]), tuple(pl[1]), (150, 150, 150), 2, cv2.LINE_AA, shift=4)
        path = px(pos)
        for k in range(len(path) - 1):
            cv2.line(canvas, tuple(path[k]), tuple(path[k + 1]), _colour(k / max(1, len(path) - 2)), 2,
                     cv2.LINE_AA, shift=4)
        for i, f in frusta.items():
            c = _colour(i / max(1, cam.length - 1))
            q2 = px(f)
            for a in range(1, 5):
                cv2.line(canvas, tuple(q2[0]), tuple(q2[a]), c, 1, cv2.LINE_AA, shift=4)
                cv2.line(canvas, tuple(q2[a]), tuple(q2[a % 4 + 1]), c, 1, cv2.LINE_AA, shift=4)
        cv2.circle(canvas, tuple(path[0]), 4 * 16, _colour(0.0), -1, cv2.LINE_AA, shift=4)
        cv2.putText(canvas, name, (ox + 8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (220, 220, 220), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{cam.length} frames", (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (180, 180, 180),
                1, cv2.LINE_AA)
    return canvas
