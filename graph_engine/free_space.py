"""How much room the disk holding a folder has, asked the one way every writer asks it (the disk cache, work in
progress, spilled and kept frames, a job's outputs, a picture that failed to write, the editor's save).

Some network and FUSE mounts (sshfs, rclone, some SMB servers) answer statvfs with 0 blocks in all: no size and no
free space, though they take writes. Taken as a full disk, a batch refused every job and the caches kept nothing on
them. A filesystem that tells no size, or cannot be asked, is not judged: the write goes ahead (one that does not
fit fails on its own and says so), and the log says once for that disk why its room was not checked."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import NamedTuple, Optional

log = logging.getLogger("kinograph.disk")
_noted: set = set()


class Room(NamedTuple):
    total: int
    free: int


def disk_room(folder) -> Optional[Room]:
    """The size and free bytes of the disk holding `folder` (an existing folder); None where it tells no size."""
    try:
        usage = shutil.disk_usage(folder)
    except OSError as exc:
        _note(folder, f"its free space cannot be read ({exc.strerror or exc})")
        return None
    if not usage.total:
        _note(folder, "its filesystem reports a size of 0 (as sshfs, rclone and some SMB shares do)")
        return None
    return Room(usage.total, usage.free)


def short_of(folder, nbytes: int) -> bool:
    """Whether the disk holding `folder` tells that it has less than `nbytes` free (False where it tells no size)."""
    room = disk_room(folder)
    return room is not None and room.free < nbytes


def _note(folder, why: str) -> None:
    try:
        disk = os.stat(folder).st_dev
    except OSError:
        disk = str(folder)
    if disk not in _noted:
        _noted.add(disk)
        log.warning("%s: %s, so Kinograph does not check the room left there; writes go ahead, and one that does not "
                    "fit fails and says so", Path(folder), why)
