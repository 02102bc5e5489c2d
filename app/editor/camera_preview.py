"""A CAMERA value drawn as a picture: top view (x-z) and side view (z-y) of the camera path,
with the viewing direction every few frames. Used by the viewer and the properties panel."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen

from . import theme


def is_camera(value) -> bool:
    return hasattr(value, "c2w") and hasattr(value, "intrinsics")


def camera_path_image(cam, width: int = 480, height: int = 240) -> QImage:
    c2w = np.asarray(cam.c2w, dtype=np.float64).reshape(-1, 4, 4)
    pos, fwd = c2w[:, :3, 3], c2w[:, :3, 2]
    img = QImage(width, height, QImage.Format_RGB32)
    img.fill(theme.CANVAS)
    p = QPainter(img)
    p.setRenderHint(QPainter.Antialiasing)
    font = QFont()
    font.setPointSizeF(8)
    p.setFont(font)
    half = width / 2
    for k, (name, a, b, sign_b) in enumerate((("top (x, z)", 0, 2, -1), ("side (z, y)", 2, 1, -1))):
        box = QRectF(k * half + 10, 22, half - 20, height - 32)
        p.setPen(QPen(QColor("#3a3c42"), 1))
        p.setBrush(Qt.NoBrush)
        p.drawRect(box)
        p.setPen(theme.TEXT_DIM)
        p.drawText(QRectF(k * half + 10, 2, half - 20, 18), Qt.AlignLeft | Qt.AlignVCenter, name)
        xs, ys = pos[:, a], sign_b * pos[:, b]
        span = max(np.ptp(xs), np.ptp(ys), 1e-3) * 1.3
        cx, cy = (xs.max() + xs.min()) / 2, (ys.max() + ys.min()) / 2
        s = min(box.width(), box.height()) / span

        def m(x, y):
            return QPointF(box.center().x() + (x - cx) * s, box.center().y() + (y - cy) * s)

        n = len(pos)
        every = max(1, n // 12)
        for i in range(0, n, every):
            d = fwd[i]
            tip = m(xs[i] + d[a] * span * 0.08, ys[i] + sign_b * d[b] * span * 0.08)
            p.setPen(QPen(QColor("#5a6b86"), 1))
            p.drawLine(m(xs[i], ys[i]), tip)
        for i in range(n - 1):
            t = i / max(1, n - 2)
            p.setPen(QPen(QColor.fromHsvF(0.33 - 0.33 * t, 0.7, 0.95), 2))
            p.drawLine(m(xs[i], ys[i]), m(xs[i + 1], ys[i + 1]))
        p.setPen(Qt.NoPen)
        p.setBrush(QColor("#70e070"))
        p.drawEllipse(m(xs[0], ys[0]), 4, 4)
        p.setBrush(QColor("#e5533d"))
        p.drawEllipse(m(xs[-1], ys[-1]), 4, 4)
    p.end()
    return img
