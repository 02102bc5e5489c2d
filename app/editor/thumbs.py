"""First-frame thumbnails of rendered files, read off the GUI thread (for output nodes' previews)."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage

from .viewer import to_qimage

THUMB_W = 188


def first_frame(path: str) -> np.ndarray:
    p = Path(path)
    if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"):
        from PIL import Image
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    if p.is_dir():
        pngs = sorted(p.glob("*.png"))
        if not pngs:
            raise FileNotFoundError(f"no PNG frames in {p}")
        return first_frame(str(pngs[0]))
    import av
    with av.open(str(p)) as c:
        for frame in c.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{p} has no video frames")


class ThumbLoader(QObject):
    ready = Signal(str, QImage)       # node id, thumbnail

    def load(self, node_id: str, path: str) -> None:
        def work():
            try:
                img = to_qimage(first_frame(path))
            except Exception:       # a thumbnail is decoration: an unreadable file just has none
                return
            try:
                self.ready.emit(node_id, img.scaledToWidth(THUMB_W, Qt.SmoothTransformation))
            except RuntimeError:    # its window was closed and deleted while the file was read: no one to show
                pass

        threading.Thread(target=work, name="kinograph-thumb", daemon=True).start()
