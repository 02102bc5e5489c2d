"""The workflow a rendered file carries: MP4/MKV/WebM metadata, a PNG text chunk or an EXR header attribute.
Writers put it there through a file (nodes/io/video_write.py), so any size fits."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from graph_engine.errors import NodeError

KEY = "kinograph_workflow"


def read_embedded_workflow(path: Path) -> Optional[str]:
    from .atomic import special_file
    path = Path(path)
    if special_file(path):       # a named pipe or a device: opening it waits, or reads, for ever
        return None
    if path.suffix.lower() == ".png":
        from PIL import Image, PngImagePlugin
        from .workflow import MAX_YAML_BYTES
        # Pillow stops at 1 MB of text by default; a big workflow is still a workflow.
        PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, MAX_YAML_BYTES)
        try:
            with Image.open(path) as im:
                text = im.info.get(KEY) or (im.text.get(KEY) if hasattr(im, "text") else None)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            # A header claiming 100000x100000 is refused by Pillow as it opens (a traceback from `run`,
            # `validate` and the check whether an output is Kinograph's); such a file is read as no render.
            return None
        # A workflow with a character beyond Latin-1 (a prompt's dash, a path's ☃) is an iTXt chunk, which
        # Pillow gives as a str subclass that the YAML parser refuses with a TypeError (a traceback).
        return str(text) if text else None
    if path.suffix.lower() == ".exr":
        try:
            import OpenEXR
            with OpenEXR.File(str(path), header_only=True) as f:
                text = f.header().get(KEY)
        except Exception:       # no bindings, not an EXR, or damaged: it carries nothing readable
            return None
        return text if isinstance(text, str) and "kinograph:" in text else None
    import av
    from graph_engine.mp4_samples import refuse_claimed_frames
    try:
        refuse_claimed_frames(path)
        with av.open(str(path)) as c:
            meta = dict(c.metadata)
            for s in c.streams:
                meta.update({k: v for k, v in s.metadata.items() if k not in meta})
    except (OSError, av.error.FFmpegError, NodeError):
        return None
    # Matroska stores tag names in capitals.
    meta = {k.lower(): v for k, v in meta.items()}
    text = meta.get(KEY) or meta.get("comment")
    return text if text and "kinograph:" in text else None
