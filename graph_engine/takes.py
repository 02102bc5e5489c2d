"""Earlier takes: a render never silently destroys the render it replaces.

The latest render stays at its stable name (`out/shot.mp4`: scripts, `batch --skip-done` and the
editor's viewer rely on it); the file it replaces is kept as `out/takes/shot.001.mp4`, `.002`, ...
(a frames folder as `out/takes/frames.001/`). The move is a hard link made before the new file is
renamed over the name, so the stable name is never missing and no byte is copied. A render identical
to the one it replaces (a re-run of an unchanged workflow) keeps no take: takes only grow the disk
when the picture changed.

`keep_takes` (KINOGRAPH_KEEP_TAKES, which Ray workers inherit, set to 0 by `--replace`; else
`keep_takes:` in config.yaml; else every take is kept) bounds how many earlier takes of each output
stay: the oldest beyond it are removed, and the log says so."""
from __future__ import annotations

import filecmp
import os
import re
import shutil
from pathlib import Path
from typing import List, Optional, Tuple

from .errors import NodeError

TAKES = "takes"


def keep_takes() -> Optional[int]:
    """How many earlier takes of each output to keep: None = all of them, 0 = none (replace)."""
    from .config import log, settings
    env = os.environ.get("KINOGRAPH_KEEP_TAKES")
    if env is not None and env.strip().lower() not in ("", "all"):
        try:
            n = int(env)
            if n >= 0:
                return n
        except ValueError:
            pass
        log.warning("KINOGRAPH_KEEP_TAKES=%r is not a number of takes (0 or more, or 'all'); keeping all", env)
        return None
    if env is not None:
        return None
    value = settings().get("keep_takes")
    return None if value is None or value == "all" else int(value)


def takes_folder(final: Path) -> Path:
    return final.parent / TAKES


def _pattern(final: Path) -> "re.Pattern":
    return re.compile(re.escape(final.stem) + r"\.(\d{3,})" + re.escape(final.suffix))


def takes_of(final: Path) -> List[Tuple[int, Path]]:
    """(number, path) of every earlier take of `final`, oldest first."""
    pat = _pattern(Path(final))
    try:
        found = [(int(m[1]), e) for e in os.scandir(takes_folder(Path(final))) if (m := pat.fullmatch(e.name))]
    except OSError:
        return []
    return [(n, Path(e.path)) for n, e in sorted(found, key=lambda t: t[0])]


def stable_name(path: Path) -> Path:
    """The output a take was kept from (`out/takes/shot.003.mp4` -> `out/shot.mp4`); any other path as it is."""
    path = Path(path)
    if path.parent.name != TAKES:
        return path
    # By the whole name: a frames take `frames.001` has no suffix of its own (its stem is 'frames').
    m = re.fullmatch(r"(.+)\.\d{3,}((?:\.[^.]+)?)", path.name)
    return path.parent.parent / (m[1] + m[2]) if m else path


def _same(a: Path, b: Path) -> bool:
    try:
        if a.is_dir() or b.is_dir():
            return a.is_dir() and b.is_dir() and _same_folders(a, b)
        return os.path.getsize(a) == os.path.getsize(b) and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _same_folders(a: Path, b: Path) -> bool:
    names = sorted(os.listdir(a))
    return names == sorted(os.listdir(b)) and all(_same(a / n, b / n) for n in names)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(e.stat().st_size for e in os.scandir(path) if e.is_file())
    return path.stat().st_size


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} KB"


def _link(src: Path, dst: Path) -> None:
    """`dst` (a new name) becomes `src`'s content without copying where the filesystem allows (a hard link;
    a takes folder linked to another disk gets a copy). Never through a link planted at `dst`."""
    try:
        os.link(src, dst)
        return
    except FileExistsError:
        raise
    except OSError:
        pass
    # Copied under a temporary name (atomic_output's kind, swept when abandoned) and linked to its own when
    # whole: a copy cut short (a kill, a full disk) never stands under a take's name.
    from .atomic import held_temporary
    fd, tmp, _ = held_temporary(dst)
    try:
        with open(src, "rb") as f, open(fd, "wb", closefd=False) as out:
            shutil.copyfileobj(f, out, 1 << 20)
        shutil.copystat(src, tmp)
        try:
            os.link(tmp, dst)
        except FileExistsError:
            raise
        except OSError:         # no hard links at all here: claim the name, then put the copy there
            os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
            os.replace(tmp, dst)
            return
    finally:
        os.close(fd)
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _reserve(final: Path, make) -> Path:
    """The next take's name, made by `make(name)` (a hard link, a copy, a folder), which fails with
    FileExistsError when the name is taken: two runs never take one number, and nothing but the whole
    take is ever made under it (an empty name claimed first was left behind by a run killed then)."""
    from .atomic import remove_abandoned
    takes = takes_folder(final)
    takes.mkdir(exist_ok=True)
    remove_abandoned(takes)
    n = (takes_of(final) or [(0, None)])[-1][0] + 1
    while True:
        name = takes / f"{final.stem}.{n:03d}{final.suffix}"
        try:
            make(name)
            return name
        except FileExistsError:
            n += 1


def keep_file(final: Path, new: Path) -> Optional[Path]:
    """Before `new` is renamed onto `final` (which exists): keep `final` as its next take, unless takes
    are off or `new` holds the same bytes. Returns the take's path. A take that cannot be kept (a full
    disk where hard links are not possible) stops the write: the earlier render is not given up silently."""
    if keep_takes() == 0 or not final.is_file() or _same(final, new):
        return None
    from .atomic import record_written
    try:
        take = _reserve(final, lambda name: _link(final, name))
        record_written(take)        # by its own name, so that settle knows it for Kinograph's
        return take
    except OSError as e:
        raise NodeError(f"cannot keep the earlier take of {final.name} in {takes_folder(final)} ({e.strerror}), so "
                        f"it was not replaced: free some space there, or run with --replace (keep_takes: 0) to "
                        f"replace it") from None


def set_aside(final: Path, new: Path) -> Path:
    """A finished render whose earlier take could not be kept: under the first free name `NAME.new.mp4`,
    `NAME.new2.mp4`, ... beside `final` (a name in a folder that already holds its temporary)."""
    n = 1
    while True:
        name = final.with_name(f"{final.stem}.new{n if n > 1 else ''}{final.suffix}")
        try:
            os.link(new, name)
            os.unlink(new)
            return name
        except FileExistsError:
            n += 1
        except OSError:
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
            except FileExistsError:
                n += 1
                continue
            os.replace(new, name)
            return name


# In a frames take while the render that replaces it fills the folder, locked by that render (atomic.hold):
# one found unlocked is a render killed outright (kill -9, the OOM killer), whose half is undone next time.
FILLING = ".filling"
_held: dict = {}


def keep_folder(final: Path, names: List[str]) -> Optional[Path]:
    """A frames folder about to be filled again: its files `names` (frames and workflow, not the user's
    own files) are linked into the next take folder. Returns the take folder, or None when takes are off.
    Call `done_folder` (or `restore_folder`) when the render ends."""
    if keep_takes() == 0 or not names:
        return None
    from .atomic import hold
    try:
        take = _reserve(final, Path.mkdir)
        os.close(os.open(take / FILLING, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        _held[take] = hold(take / FILLING)
        for n in names:
            _link(final / n, take / n)
    except OSError as e:
        raise NodeError(f"cannot keep the earlier take of {final.name} in {takes_folder(final)} ({e.strerror}), so "
                        f"nothing was written: free some space there, or run with --replace (keep_takes: 0) "
                        f"to replace it") from None
    return take


def done_folder(take: Path) -> None:
    fd = _held.pop(take, -1)
    (take / FILLING).unlink(missing_ok=True)
    if fd >= 0:
        os.close(fd)


def undo_killed(final: Path) -> int:
    """Put back the earlier frames of a render into `final` that was killed outright while filling it (its
    take is still marked FILLING and no live render holds it): the folder held a mix of both renders, and
    the next render kept that mix as a take of its own. Returns how many were undone."""
    from .atomic import _claim
    undone = 0
    for _, take in takes_of(final):
        marker = take / FILLING
        if not take.is_dir() or not marker.is_file():
            continue
        try:
            fd = os.open(marker, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            if not _claim(fd):
                continue            # its render is still running (another process)
            marker.unlink()
            frame = re.compile(r"frame_\d{6}\.(png|exr|tif)|workflow\.yaml")
            restore_folder(final, take, [n for n in os.listdir(final) if frame.fullmatch(n)])
            undone += 1
        finally:
            os.close(fd)
    return undone


def drop_if_same(final: Path, take: Path, names: List[str]) -> bool:
    """A frames take identical to what replaced it (the same files `names`, the same bytes) is no take:
    removed. True when it was."""
    done_folder(take)
    # The workflow first: another one (nearly always the case) settles it without reading back every frame.
    order = sorted(names, key=lambda n: not n.endswith(".yaml"))
    try:
        same = sorted(os.listdir(take)) == sorted(names) and all(_same(final / n, take / n) for n in order)
    except OSError:
        same = False
    if same:
        shutil.rmtree(take, ignore_errors=True)
    return same


def restore_folder(final: Path, take: Path, new: List[str]) -> None:
    """A frames render that failed or was cancelled: its files `new` leave the folder and the earlier
    take's files go back, so the folder holds the earlier render whole again (as a file output keeps it)."""
    done_folder(take)
    for n in new:
        try:
            os.unlink(final / n)
        except OSError:
            pass
    for e in os.scandir(take):
        try:
            os.replace(e.path, final / e.name)
        except OSError:
            return          # what could not go back stays in the take
    shutil.rmtree(take, ignore_errors=True)


def on_full_disk(folder: Path) -> str:
    """For a message about a full disk: what the earlier takes beside the output use, as those are the
    first thing to clear, or ''."""
    takes = Path(folder) / TAKES
    try:
        total = sum(_size(Path(e.path)) for e in os.scandir(takes))
    except OSError:
        return ""
    if not total:
        return ""
    return (f". Earlier takes in {takes} use {_mb(total)}: delete those you do not need, or keep fewer "
            f"(keep_takes in config.yaml, --replace)")


def settle(final: Path, take: Optional[Path]) -> str:
    """After a take was kept: remove the oldest beyond keep_takes and say what is kept, for the log."""
    if take is None:
        return ""
    from .atomic import written_by_kinograph
    limit = keep_takes()
    takes = takes_of(final)
    removed, foreign = [], []
    if limit is not None and len(takes) > limit:
        for _, old in takes[:len(takes) - limit]:
            # Only what Kinograph kept: the takes folder may be a link (to another disk, or, in a project
            # someone sent, to ~/Documents), where `frames.2019` is the user's own folder, not a take.
            if old.is_symlink() or not written_by_kinograph(old):
                foreign.append(old.name)
                continue
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
            removed.append(old.name)
        takes = takes[len(takes) - limit:]
    total = 0
    for _, p in takes:
        try:
            total += _size(p)
        except OSError:
            pass
    note = (f"the earlier take of {final.name} is kept as {os.path.relpath(take, final.parent)} "
            f"({len(takes)} earlier take{'s' if len(takes) != 1 else ''}, {_mb(total)}")
    note += f"; removed {', '.join(removed)}, keep_takes is {limit})" if removed else ")"
    if foreign:
        note += (f"; left {', '.join(foreign)} in {takes_folder(final)}: named like takes, but Kinograph did not "
                 f"write them")
    return note
