"""A writer's default path (io.save_video's out/video.mp4) named after the workflow file that leaves it: two
workflows in one folder both wrote out/video.mp4, and each run filed the other workflow's render away as its
earlier take (a batch of the two refused the second). A shot.yaml whose io.save_video has no path writes
out/shot.mp4, an io.save_frames out/shot_frames. A path written in the file, even the default's, is kept. An
untitled workflow, YAML text without a file, and one read from a render or a frames folder's workflow.yaml (its
paths are the render's, written into it when it was made) keep the node's own default."""
from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

from .workflow import MEDIA_SUFFIXES, Workflow

# Kept short for Windows' 260-character paths, with takes/NAME.001.mp4 and a frames folder's files under it.
STEM_LIMIT = 60


def own_default(wf: Workflow, p) -> str:
    """The path writer param `p` (a node_api Param) writes for the workflow `wf` when the node leaves it out."""
    default, path = p.default, wf.path
    if not default or path is None or path.suffix.lower() in MEDIA_SUFFIXES or wf.render_base is not None:
        return default
    stem = _stem(path.stem)
    if not stem:
        return default
    d = PurePosixPath(default)
    # A writer with files beside it keeps its own name after the stem: metrics.report's chart as out/shot.png
    # was io.save_image's picture of the same workflow (out/shot_metrics.json, .csv, .png instead).
    return str(d.with_name(stem + d.suffix if d.suffix and not p.beside else f"{stem}_{d.name}"))


def from_file_name(wf: Workflow, p) -> bool:
    """Whether `p` left out writes under the workflow file's name (the editor says so beside the path)."""
    return own_default(wf, p) != p.default


def _stem(stem: str) -> str:
    """The file's name as the start of an output's: no leading dot (a hidden file, which outputs refuse), no {}
    (shot_{v}.yaml's path read as a {NODE.PARAM} placeholder), and a long one cut with a digest of the whole, so
    two names alike in their first 60 characters (..._take1.yaml, ..._take2.yaml) do not write one file."""
    from .portable import portable_name
    stem = re.sub(r"[{}]", "_", stem.lstrip("."))
    if len(stem) > STEM_LIMIT:
        stem = stem[:STEM_LIMIT - 9].rstrip(". ") + "_" + hashlib.sha1(stem.encode()).hexdigest()[:8]
    return portable_name(stem, limit=STEM_LIMIT)
