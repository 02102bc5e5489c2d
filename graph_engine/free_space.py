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
    free: int           # what any user may write (statvfs's f_bavail)
    root_only: int = 0  # more that this process may write as root: the blocks ext4 keeps back for root (5%)

    @property
    def writable(self) -> int:
        """What this process may write there."""
        return self.free + self.root_only


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
    return Room(usage.total, usage.free, _root_only(folder, usage.total))


def _root_only(folder, total: int) -> int:
    """The bytes kept back for root on the disk holding `folder` where this process is root, else 0: a render run as
    root on bare metal may write them, and was refused as on a full disk with gigabytes its own. The caches size
    themselves by `free` and leave the reserve alone; a write asks `writable`."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return 0
    try:
        st = os.statvfs(folder)
    except OSError:
        return 0
    # Only where statvfs tells of the disk disk_usage did (the same total): the reserve of another is not this one's.
    if st.f_blocks * st.f_frsize != total:
        return 0
    return max(0, st.f_bfree - st.f_bavail) * st.f_frsize


def short_of(folder, nbytes: int) -> bool:
    """Whether the disk holding `folder` tells that this process may write less than `nbytes` there (False where it
    tells no size)."""
    room = disk_room(folder)
    return room is not None and room.writable < nbytes


def _note(folder, why: str) -> None:
    try:
        disk = os.stat(folder).st_dev
    except OSError:
        disk = str(folder)
    if disk not in _noted:
        _noted.add(disk)
        log.warning("%s: %s, so Kinograph does not check the room left there; writes go ahead, and one that does not "
                    "fit fails and says so", Path(folder), why)
