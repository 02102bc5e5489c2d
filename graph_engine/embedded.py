"""The workflow a rendered file carries: MP4/MKV/WebM metadata or a PNG text chunk."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

KEY = "kinograph_workflow"


def read_embedded_workflow(path: Path) -> Optional[str]:
    path = Path(path)
    if path.suffix.lower() == ".png":
        from PIL import Image
        try:
            with Image.open(path) as im:
                return im.info.get(KEY) or (im.text.get(KEY) if hasattr(im, "text") else None)
        except OSError:
            return None
    import av
    try:
        with av.open(str(path)) as c:
            meta = dict(c.metadata)
            for s in c.streams:
                meta.update({k: v for k, v in s.metadata.items() if k not in meta})
    except (OSError, av.error.FFmpegError):
        return None
    # Matroska stores tag names in capitals.
    meta = {k.lower(): v for k, v in meta.items()}
    text = meta.get(KEY) or meta.get("comment")
    return text if text and "kinograph:" in text else None
