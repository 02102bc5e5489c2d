"""A writer's default path (io.save_video's out/video.mp4) named after the workflow file that leaves it: two
workflows in one folder both wrote out/video.mp4, and each run filed the other workflow's render away as its
earlier take (a batch of the two refused the second). A shot.yaml whose io.save_video has no path writes
out/shot.mp4, an io.save_frames out/shot_frames. A path written in the file, even the default's, is kept. An
untitled workflow, YAML text without a file, and one read from a render or a frames folder's workflow.yaml (its
paths are the render's, written into it when it was made) keep the node's own default."""
from __future__ import annotations

from pathlib import PurePosixPath

from .workflow import MEDIA_SUFFIXES, Workflow


def own_default(wf: Workflow, default: str) -> str:
    """`default` (a writer's default path) as the workflow `wf` writes it."""
    path = wf.path
    if not default or path is None or path.suffix.lower() in MEDIA_SUFFIXES or wf.render_base is not None:
        return default
    from .portable import portable_name
    # A dot first would make it a hidden file, which outputs refuse
    stem = portable_name(path.stem.lstrip("."), limit=60)
    if not stem:
        return default
    d = PurePosixPath(default)
    return str(d.with_name(stem + d.suffix if d.suffix else f"{stem}_{d.name}"))
