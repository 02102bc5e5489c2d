"""The one way Kinograph writes a file: never in place, never over what it did not write.

Every writer goes through `atomic_output`: the data goes to a temporary file created with
O_EXCL under a random name in the target's folder (so two runs, or a link planted at a
predictable name, cannot share or redirect it), and is renamed onto the target only when
complete. A target that exists is replaced only if Kinograph wrote it (its embedded
workflow, or the record of files written here) or the node says `overwrite: true`; a
symbolic link is never written through. Folders are created, never deleted."""
from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

from .errors import NodeError

PathLike = Union[str, os.PathLike]
# A frames folder Kinograph filled carries its workflow under this name, first line FRAMES_MARK.
FRAMES_WORKFLOW = "workflow.yaml"
FRAMES_MARK = "# Kinograph frames:"
LEDGER_NAME = "written.jsonl"
LEDGER_COMPACT_BYTES = 1 << 20


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


_MODE = 0o666 & ~_umask()


# -- what Kinograph wrote ----------------------------------------------------------------------
def _ledger() -> Path:
    from .config import data_dir
    return data_dir() / LEDGER_NAME


def _stamp(path: Path):
    st = os.stat(path)
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def record_written(path: PathLike) -> None:
    """Remember that Kinograph wrote `path` as it is now (a later overwrite is then allowed,
    unless someone changes the file in between). Losing the record only costs an `overwrite`."""
    try:
        entry = json.dumps({"path": os.path.realpath(path), "stamp": _stamp(Path(path))})
        ledger = _ledger()
        ledger.parent.mkdir(parents=True, exist_ok=True)
        with _ledger_locked(ledger):
            start = _line_start(ledger)
            fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(start + entry + "\n")
        size = ledger.stat().st_size
        if size > LEDGER_COMPACT_BYTES and size > 2 * _compacted_size(ledger):
            _compact(ledger)
    except (OSError, NodeError) as e:
        _unrecorded(path, e)


def _line_start(ledger: Path) -> str:
    """'\n' where the record's last line was cut short (a power cut or a full disk as it was appended, zeros after it
    where the file system's recovery padded it), so that the next entry starts a line of its own: appended onto the
    broken one, it could not be read, and the next render's report was taken for someone else's file. Else ''."""
    try:
        with open(ledger, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return "" if f.read(1) == b"\n" else "\n"
    except OSError:         # no record yet, or an empty one
        return ""


@contextmanager
def _ledger_locked(ledger: Path) -> Iterator[None]:
    """Hold the record's lock (a file beside it: compaction replaces the record itself, so a lock on it would be on
    a file no longer named so) while appending to it or compacting it. Compaction reads the record and writes it
    again whole: an output another process (a farm's second worker, the editor beside `kinograph run`) recorded in
    between was lost. Where there are no such locks (Windows), the append alone is as before."""
    fd = os.open(ledger.with_name(ledger.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX)
        except (ImportError, OSError):      # no fcntl (Windows), or a filesystem without flock
            pass
        yield
    finally:
        os.close(fd)        # drops the lock


_told: set = set()


def _unrecorded(path: PathLike, e: Exception) -> None:
    """Say (once a process) that a file went unrecorded: a data folder that cannot be written (a read-only
    home, a locked-down account) was silent, and the next run refused the run's own report as someone else's."""
    ledger = _ledger()
    if ledger in _told:
        return
    _told.add(ledger)
    from .config import log
    log.warning("Kinograph could not keep its record of the files it writes in %s (%s): a later run will take %s, "
                "and other files it wrote that carry no workflow (reports, tables, camera files), for someone "
                "else's and refuse to replace them. Set KINOGRAPH_DATA_DIR to a folder you can write",
                ledger, getattr(e, "strerror", None) or e, Path(path).name)


def _ledger_unwritable() -> bool:
    """Whether the record of written files cannot be written (its nearest existing folder takes no files)."""
    try:
        where = _ledger()
    except (OSError, NodeError):
        return True
    if where.exists():
        return not os.access(where, os.W_OK)
    while not where.exists() and where.parent != where:
        where = where.parent
    return not (where.is_dir() and os.access(where, os.W_OK | os.X_OK))


def _entries(ledger: Path):
    try:
        with open(ledger, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    e = json.loads(line)
                    yield e["path"], e["stamp"]
                except (ValueError, KeyError, TypeError):
                    continue
    except OSError:
        return


def _compact(ledger: Path) -> None:
    """Keep only entries whose file is still the one Kinograph wrote. The first line says the size this left, so that
    the next compaction waits until the record has doubled: a render account's outputs are kept, and past
    LEDGER_COMPACT_BYTES of them every output re-read the record, checked each file it names and rewrote it."""
    with _ledger_locked(ledger):
        keep = {}
        for path, stamp in _entries(ledger):
            try:
                if _stamp(Path(path)) == stamp:
                    keep[path] = stamp
            except OSError:
                continue
        body = "".join(json.dumps({"path": p, "stamp": s}) + "\n" for p, s in keep.items())
        head = json.dumps({"compacted": len(body.encode())}) + "\n"
        write_bytes(ledger, (head + body).encode(), overwrite=True, record=False)


def _compacted_size(ledger: Path) -> int:
    """The size of the record at its last compaction (its first line), 0 if none is said."""
    try:
        with open(ledger, encoding="utf-8", errors="replace") as f:
            said = json.loads(f.readline()).get("compacted", 0)
    except (OSError, ValueError, AttributeError):
        return 0
    return said if isinstance(said, int) else 0


def _in_ledger(path: Path) -> bool:
    real = os.path.realpath(path)
    try:
        stamp = _stamp(path)
    except OSError:
        return False
    return any(p == real and s == stamp for p, s in _entries(_ledger()))


def special_file(path: PathLike) -> str:
    """What `path` is when it is there but is neither a file nor a folder, or ''. Opening a named pipe
    waits for a program to write into it, and a device such as /dev/zero never ends: a workflow naming one
    hung validation, planning and the run, past Ctrl-C."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return ""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return ""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a plain file"


def read_plain(path: PathLike, limit: int, follow: bool = True) -> bytes:
    """At most `limit` + 1 bytes of the plain file `path` (one more than `limit` tells the caller it is too big).
    It is opened without waiting and read only if it is a plain file: a named pipe called workflow.yaml waited for
    ever for a writer, and a link to /dev/zero (a size of 0 to stat) was read until memory ran out, 3.8 GB in 18 s
    under a 4 GB limit. OSError (strerror saying what it is) for anything else; with `follow` False a symbolic
    link is refused too (ELOOP)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else
                    "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a plain file")
            raise OSError(errno.EINVAL, f"it is {kind}, not a file: give a plain file", str(path))
        return f.read(limit + 1)


def written_by_kinograph(path: PathLike) -> bool:
    """True for a file Kinograph wrote: recorded here, or carrying its workflow (videos, PNGs);
    for a folder, a frames folder Kinograph filled."""
    p = Path(path)
    if p.is_dir():
        # Not through a link (Kinograph writes none there), and only the mark's bytes: a workflow.yaml planted in
        # the folder as a named pipe or a link to a device hung the render (frames_marked).
        return frames_marked(p / FRAMES_WORKFLOW, follow=False)
    if _in_ledger(p):
        return True
    from .workflow import MEDIA_SUFFIXES
    if p.suffix.lower() in MEDIA_SUFFIXES:
        from .embedded import read_embedded_workflow
        return read_embedded_workflow(p) is not None
    return False


def frames_marked(path: PathLike, follow: bool = True) -> bool:
    """Whether the file `path` opens with FRAMES_MARK: the workflow.yaml of a frames folder Kinograph filled."""
    try:
        return read_plain(path, len(FRAMES_MARK), follow).startswith(FRAMES_MARK.encode())
    except OSError:
        return False


def refusal(path: PathLike, overwrite: bool = False) -> Optional[str]:
    """Why writing the file `path` would destroy something the user did not ask to change, or None."""
    p = Path(path)
    if p.is_symlink():
        return f"{p} is a symbolic link; Kinograph does not write through links: give the real path"
    if not p.exists():
        return None
    if p.is_dir():
        return f"{p} is a folder; give a file name"
    kind = special_file(p)
    if kind:
        return f"{p} is {kind}, not a file; give a file name"
    if overwrite or written_by_kinograph(p):
        return None
    why = (f"{p} already exists and Kinograph did not write it: choose another name, move it away, "
           f"or set `overwrite: true` on the node")
    if _ledger_unwritable():
        why += (f" (if a run of Kinograph wrote it, its record of that could not be kept: {_ledger()} cannot be "
                f"written. Set KINOGRAPH_DATA_DIR to a folder you can write)")
    else:
        from .workflow import MEDIA_SUFFIXES
        if p.suffix.lower() not in MEDIA_SUFFIXES:
            # A report, table or camera file carries no workflow: only the record of written files, one per machine
            # and account, tells it is Kinograph's. A job run again on another render node refused the first node's.
            why += (f" (if a render on another machine or account wrote it, the record of that is that machine's: "
                    f"this one's is {_ledger()}. Give every render node one KINOGRAPH_DATA_DIR on a shared folder, "
                    f"or set `overwrite: true`)")
    return why


def folder_refusal(path: PathLike) -> Optional[str]:
    p = Path(path)
    if p.is_symlink():
        return f"{p} is a symbolic link; Kinograph does not write through links: give the real folder"
    if p.exists() and not p.is_dir():
        return f"{p} exists and is not a folder"
    return None


# -- what killed writers leave ----------------------------------------------------------------
# The temporary names atomic_output gives: "." + stem + "." + mkstemp's 8 random characters + ".partial" + ext.
_TEMP_NAME = re.compile(r"\..*\.[a-z0-9_]{8}\.partial(\.[^.]*)?")
_STARTED = time.time()
_swept: set = set()


def _try_lock(fd: int) -> Optional[bool]:
    """Take the lock that says 'a live writer owns this temporary': True when taken, False when another holds it,
    None where no such lock can be taken (Windows: no fcntl; NFS: EBADF unless open for writing). The kernel drops
    it when its owner dies, however it dies."""
    try:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except ImportError:
        return None
    except OSError as e:
        return False if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None


def _claim(fd: int) -> bool:
    """Whether this process took the lock: where there are no such locks nothing is ever claimed, so nothing is
    removed."""
    return _try_lock(fd) is True


def held(path: PathLike) -> bool:
    """Whether a live writer holds `path`'s lock (`hold`). False where no such lock can be taken, so none can say a
    writer is there: Windows (no fcntl), a folder on NFS (EBADF: fcntl locks there need it open for writing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        return _try_lock(fd) is False
    finally:
        os.close(fd)


def hold(path: PathLike) -> int:
    """An open descriptor holding the lock on `path` (a temporary file or folder being written) that
    marks it as a live writer's, for remove_abandoned; -1 where there are no such locks. Close it
    when the write is done."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return -1
    if _claim(fd):
        return fd
    os.close(fd)
    return -1


@contextmanager
def filling(folder: PathLike) -> Iterator[None]:
    """Hold the frames folder `folder` for one render while it fills it. Two renders into one folder at once (a
    farm job queued again while the first still runs, the editor beside `kinograph run`) wrote their frames over
    each other's: the folder ended as a mix of both, under the marker of one, and each said it was written. A
    second render is refused by name instead. The kernel drops the lock when its render dies, however it dies,
    so a killed render's folder is free for the next run (which goes on from it). Where the filesystem has no
    such locks, nothing is refused, as before."""
    fd = -1
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise NodeError(f"{folder} is being filled by another render that is still running (another `kinograph "
                        f"run`, a farm job or an editor window): nothing was written. Wait for it to end, or write "
                        f"these frames to another folder") from None
    except (ImportError, OSError):
        if fd >= 0:
            os.close(fd)
        fd = -1
    try:
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def remove_abandoned(folder: PathLike, names: "re.Pattern" = _TEMP_NAME) -> int:
    """Delete what writers killed outright left in `folder` (kill -9, the OOM killer, a lost machine):
    the temporaries matching `names` (atomic_output's by default; the disk cache and sharded renders
    name their temporary folders). SIGTERM and Ctrl-C clean up, those cannot, and a render's hidden
    half-written video stayed beside its output for ever. One goes only when no live writer holds its
    lock (`hold`) and it is older than this process (so one a writer has only just created is never
    taken). Once per folder per process: a frames folder gets thousands of writes. Returns the bytes freed."""
    key = (os.path.abspath(folder), names.pattern)
    if key in _swept:
        return 0
    _swept.add(key)
    try:
        found = [e for e in os.scandir(folder) if names.fullmatch(e.name) and not e.is_symlink()
                 and e.stat(follow_symlinks=False).st_mtime < _STARTED]
    except OSError:
        return 0
    return sum(remove_unheld(e) for e in found)


def tree_bytes(folder: PathLike) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


def remove_unheld(e: os.DirEntry) -> int:
    """Delete the temporary file or folder `e` (Kinograph's own, by its name) unless a live writer holds
    its lock (`hold`); the bytes freed, 0 when held or already gone."""
    import shutil
    folder = e.is_dir(follow_symlinks=False)
    try:
        # Writable for a file: NFS takes these locks as fcntl ones, which need it for an exclusive lock.
        fd = os.open(e.path, (os.O_RDONLY if folder else os.O_RDWR) | os.O_NOFOLLOW)
    except OSError:
        return 0
    try:
        if not _claim(fd):
            return 0
        if folder:
            size = tree_bytes(e.path)
            shutil.rmtree(e.path, ignore_errors=True)
        else:
            size = os.fstat(fd).st_size
            os.unlink(e.path)
        return size
    except OSError:
        return 0
    finally:
        os.close(fd)


# -- writing -----------------------------------------------------------------------------------
def _commit(tmp: Path, final: Path, overwrite: bool, takes: Optional[list]) -> None:
    try:
        # A hard link creates the name only if it is still free, so a file that appeared since
        # the check (another run, another program) is judged again instead of being replaced.
        os.link(tmp, final)
        os.unlink(tmp)
        return
    except FileExistsError:
        pass
    except OSError:     # no hard links on this filesystem: check, then rename
        pass
    why = refusal(final, overwrite)
    if why:
        raise NodeError(why)
    if takes is not None:
        from .takes import keep_file, set_aside
        try:
            take = keep_file(final, tmp)
        except NodeError as e:
            # The earlier render stays where it is, and this one is not thrown away either.
            raise NodeError(f"{e}. This render is {set_aside(final, tmp)}") from None
        if take is not None:
            takes.append(take)
    os.replace(tmp, final)


def held_temporary(final: Path, suffix: Optional[str] = None) -> Tuple[int, Path, bool]:
    """A new hidden temporary beside `final`, named as remove_abandoned knows them: (its open fd, its path,
    whether the fd holds the lock that marks it as a live writer's; False where there are no such locks)."""
    fd, name = tempfile.mkstemp(prefix=f".{final.stem[:40]}.",
                                suffix=f".partial{final.suffix if suffix is None else suffix}", dir=final.parent)
    return fd, Path(name), _claim(fd)


@contextmanager
def atomic_output(path: PathLike, *, overwrite: bool = False, record: bool = True,
                  suffix: Optional[str] = None, takes: Optional[list] = None,
                  mode: Optional[int] = None, folder_synced: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path` (with its extension, or `suffix`, so encoders
    pick the format); when the block ends without error it becomes `path`, else it is removed.
    With a list as `takes` (a render), the file it replaces is kept as an earlier take
    (graph_engine.takes) and the take's path appended to the list. `mode`: the new file's
    permissions (default: a new file's, by the umask). `folder_synced=False`: the caller syncs the
    folder (synced_folder) once after many files, as a frames folder does a block of frames."""
    final = Path(path)
    # Only the target itself may not be a link; a linked folder on the way is the user's own setup.
    why = refusal(final, overwrite)
    if why:
        raise NodeError(why)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(final.parent)
        fd, tmp, held = held_temporary(final, suffix)
    except OSError as e:
        # A file where a folder of the path should be (out/shot where out/shot/take.mp4 was asked for) read
        # 'File exists' or 'Not a directory', naming neither the file nor what to do.
        blocker = next((p for p in [final.parent, *final.parent.parents] if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise NodeError(f"cannot write {final}: {blocker} is a file, not a folder. Give another path, or move "
                            f"that file away") from None
        raise NodeError(f"cannot write into {final.parent}: {e.strerror}") from None
    # Held open and locked until the block ends: the lock marks the temporary as a live writer's
    # (remove_abandoned). Without such locks it is closed at once, as Windows will not rename an open file.
    if not held:
        os.close(fd)
        fd = -1
    try:
        yield tmp
        try:
            os.chmod(tmp, _MODE if mode is None else mode)
            _synced(tmp, fd)
            _commit(tmp, final, overwrite, takes)
            if folder_synced:
                synced_folder(final.parent)
        except FileNotFoundError:
            if not final.parent.is_dir():     # deleted under the writer: say so, not the temporary's name
                raise NodeError(folder_removed(final)) from None
            raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if fd >= 0:
            os.close(fd)
    if record:
        record_written(final)


def _synced(tmp: Path, fd: int) -> None:
    """The temporary's data on the disk before it is renamed: ext4 and XFS may commit the rename first, and after a
    power cut the render or the saved workflow was there under its name, empty. Through the held descriptor where
    there is one (an encoder writes by the path; any descriptor of the file syncs its data)."""
    try:
        if fd >= 0:
            os.fsync(fd)
            return
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except OSError:         # a filesystem without fsync (some FUSE and network ones say EINVAL): as before
        pass


def synced_folder(folder: Path) -> None:
    """The folder's new entries on the disk: without it a rename itself may be lost in a power cut. POSIX only
    (Windows opens no folder to sync it; NTFS journals the rename). One sync covers every rename made in the folder
    before it: a frames folder's 500 small frames took 6-8 s synced after each rename, 3 s once a block."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:         # a filesystem that syncs no folders (EINVAL)
        pass
    finally:
        os.close(fd)


def folder_removed(final: Path) -> str:
    """The message for an output folder deleted under a running writer (atomic_output's rename, or
    ffmpeg writing into it), naming the file and not its temporary."""
    return f"the folder {final.parent} was removed while {final.name} was being written; nothing was written"


def write_bytes(path: PathLike, data: bytes, *, overwrite: bool = False, record: bool = True,
                mode: Optional[int] = None) -> None:
    with atomic_output(path, overwrite=overwrite, record=record, mode=mode) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path: PathLike, text: str, *, overwrite: bool = False, record: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), overwrite=overwrite, record=record)


def save_text(path: PathLike, text: str) -> None:
    """A file the user chose to save (a workflow, settings): replaced whatever it holds; a
    link is followed to the file it names, so dotfile links stay links. It keeps its permissions,
    and a read-only one is refused (read_only), as the editor's Save does."""
    real = os.path.realpath(path)
    why = read_only(real)
    if why:
        raise NodeError(why)
    write_bytes(real, text.encode("utf-8"), overwrite=True, record=False, mode=kept_mode(real))


def kept_mode(path: PathLike) -> Optional[int]:
    """The permissions of the file at `path`, for the file that replaces it; None where there is none. Replaced
    under a new name, a workflow kept private (0600) came back readable by everyone (the umask's 0644), and
    one shared with a group (0664) was no longer writable by it."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return None


def read_only(path: PathLike) -> Optional[str]:
    """Why a save must not replace the file at `path`: it is marked read-only (no write permission for its
    owner, or none for this user), a template or a locked shot someone meant to keep as it is. A save writes
    a new file and renames it over the old one, which the folder allows whatever the file's own permissions:
    it was replaced, and made writable, without a word. None where it may be written."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    import stat
    if stat.S_ISREG(st.st_mode) and (not st.st_mode & stat.S_IWUSR or not os.access(path, os.W_OK)):
        return (f"{path} is read-only (its permissions): save under another name, or make it writable "
                f"(chmod u+w) if you mean to change it")
    return None


def output_folder(path: PathLike) -> Path:
    """Create the folder `path` (and its parents) or accept an existing one; never empties it."""
    p = Path(path)
    why = folder_refusal(p)
    if why:
        raise NodeError(why)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NodeError(f"cannot create the folder {p}: {e.strerror}") from None
    return p
