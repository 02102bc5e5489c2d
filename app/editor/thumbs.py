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
    """uint8 RGB of a render's first picture, as the viewer shows it. Pictures are read by Kinograph's own reader: an
    EXR decoded by FFmpeg showed its linear light as if it were sRGB (a plate's thumbnail far too dark), and a
    folder of EXR, 16-bit TIFF or DPX frames (io.save_frames) had no thumbnail at all."""
    from nodes.io.images import IMAGE_EXTS, read_image
    p = Path(path)
    if p.suffix.lower() in IMAGE_EXTS:
        return read_image(str(p))
    if p.is_dir():
        frames = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        if not frames:
            raise FileNotFoundError(f"no frames in {p}")
        return first_frame(str(frames[0]))
    import av
    from graph_engine.mp4_samples import refuse_claimed_frames
    refuse_claimed_frames(p)
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
