"""Earlier versions of a workflow file: a save never silently destroys the workflow it replaces.

Autosave covers a crash, and undo covers the open session; neither helps the artist who saved a
bad edit over a good workflow and closed the editor (Blender keeps `.blend1` for this). Before a
save replaces a file's bytes with different ones, the old bytes are kept as
`<config>/versions/<stem>-<hash of the file's path>/<time>.yaml`, the newest KEEP of them.

They live in the config folder rather than beside the workflow: project folders are often git
repositories or shared drives, where a `.1` file per save is clutter that others see. A workflow is a
few kilobytes, so keeping them costs nothing worth bounding by size."""
from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from . import config
from .atomic import kept_mode, write_bytes
from .errors import NodeError

KEEP = 20
SOURCE = "source.txt"      # the workflow a folder belongs to, for someone browsing the folder
# Microseconds: two saves in one second are two versions.
NAME = "%Y%m%d-%H%M%S-%f"


@dataclass(frozen=True)
class Version:
    file: Path
    saved: datetime.datetime     # when the save that replaced it happened (local time)


def versions_dir() -> Path:
    return config.config_dir() / "versions"


def _folder(path: Path) -> Path:
    where = os.path.realpath(path)
    return versions_dir() / f"{Path(where).stem}-{hashlib.sha1(where.encode('utf-8')).hexdigest()[:10]}"


def keep_previous(path: Path, new: bytes) -> Optional[str]:
    """Keep what `path` holds now before a save writes `new` over it. Returns why it could not be
    kept (the save itself goes on: refusing to save would risk the open work instead), else None."""
    try:
        old = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"the version of {path} being replaced could not be read to keep a copy ({e.strerror})"
    if old == new:
        return None
    folder = _folder(Path(path))
    name = datetime.datetime.now().strftime(NAME) + ".yaml"
    try:
        # With the file's own permissions: a private workflow's earlier version is as private as the file.
        write_bytes(folder / name, old, record=False, mode=kept_mode(path))
        if not (folder / SOURCE).exists():
            write_bytes(folder / SOURCE, (os.path.realpath(path) + "\n").encode("utf-8"), record=False)
        for stale in _kept(folder)[KEEP:]:
            stale.file.unlink()
    except OSError as e:
        return f"no copy of the version of {Path(path).name} being replaced could be kept in {folder} ({e.strerror})"
    except NodeError as e:       # a file where the folder should be
        return f"no copy of the version of {Path(path).name} being replaced could be kept: {e}"
    return None


def _kept(folder: Path) -> List[Version]:
    """The versions in `folder`, newest first: only files named as keep_previous names them, so a file someone
    else put there is neither offered nor removed when the oldest versions go."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    out = []
    for f in entries:
        try:
            out.append(Version(f, datetime.datetime.strptime(f.name, NAME + ".yaml")))
        except ValueError:
            continue
    return sorted(out, key=lambda v: v.saved, reverse=True)


def previous_versions(path: Path) -> List[Version]:
    """The kept versions of the workflow at `path`, newest first."""
    return _kept(_folder(Path(path)))
