"""Paths as Windows and macOS users write them, read on this computer.

Workflows travel between systems: a Windows user writes `footage\\shot01.mp4` and `C:\\Users\\me\\clip.mp4`,
macOS stores `café.png` with the accent as a separate character (NFD) where text typed anywhere else
holds the composed one (NFC), and Windows finds `Shot01.MP4` when the file is `shot01.mp4`. On Linux
each of those was 'not found' although the file was there (or, for a drive path, a folder named `C:`
was made beside the workflow)."""
from __future__ import annotations

import difflib
import functools
import os
import re
import unicodedata
from pathlib import Path

# C:\... or C:/... (a drive), \\server\share\... (a network share).
_WINDOWS_ROOT = re.compile(r"^(?:([A-Za-z]:)[\\/]|(\\\\[^\\/]+[\\/][^\\/]+))")


def windows_root(value: str) -> str:
    """The drive (`C:`) or share (`\\\\server\\share`) a Windows absolute path starts with, when this computer
    is not Windows (where such a path is simply absolute); '' otherwise."""
    if os.name == "nt" or not isinstance(value, str):
        return ""
    m = _WINDOWS_ROOT.match(value.strip())
    return (m.group(1) or m.group(2)) if m else ""


def native(value: str, base: Path) -> str:
    """`value` with Windows' backslashes as this system's separators (`footage\\shot01.mp4` is footage/shot01.mp4),
    unless a file is named so literally (Linux allows a backslash in a name)."""
    if os.sep == "\\" or "\\" not in value or os.path.lexists(os.path.join(str(base), value)):
        return value
    return value.replace("\\", "/")


def name_key(name: str, fold_case: bool = True) -> str:
    """A name as Windows (letter case) and macOS (Unicode form) compare it, with `fold_case`."""
    name = unicodedata.normalize("NFC", name)
    return name.casefold() if fold_case else name


def on_disk(path: str, fold_case: bool = False) -> str:
    """`path` with each part that is not there as written but is under another Unicode form (NFC/NFD),
    or with `fold_case` in other letter case, replaced by the name on disk: a part matching several names
    (Take.mp4 and take.mp4) is left as written. Parts after the first that is nowhere stay as written."""
    if os.path.lexists(path) or (path.isascii() and not fold_case):
        return path
    parts = Path(path).parts
    cur = Path(parts[0])
    for i, part in enumerate(parts[1:], 1):
        nxt = cur / part
        if not os.path.lexists(nxt):
            if part.isascii() and not fold_case:
                return str(cur.joinpath(*parts[i:]))
            want = name_key(part, fold_case)
            try:
                names = [n for n in os.listdir(cur) if name_key(n, fold_case) == want]
            except OSError:
                return str(cur.joinpath(*parts[i:]))
            if len(names) != 1:
                return str(cur.joinpath(*parts[i:]))
            nxt = cur / names[0]
        cur = nxt
    return str(cur)


def foreign_path(value: str, reads: bool) -> str:
    """Why a path param cannot be used on this computer (a Windows drive or share path on Linux/macOS), or ''."""
    root = windows_root(value)
    if not root:
        return ""
    name = re.split(r"[\\/]", value.strip())[-1] or "NAME"
    what = f"drive {root}" if root.endswith(":") else f"the network share {root}"
    if reads:
        return (f"{value!r} is a Windows path ({what}), which this computer cannot open: copy the file here and give "
                f"its path, or one relative to the workflow's folder (footage/{name})")
    return (f"{value!r} is a Windows path ({what}), which this computer cannot write to: give a folder here, or a "
            f"path relative to the workflow's folder (out/{name})")


# Names Windows gives to devices, whatever follows a dot (NUL.mp4 is the device too): the consoles' own CONIN$ and
# CONOUT$, and the ports numbered by a superscript 1, 2 or 3 (COM², as Windows reads it), as Python's
# ntpath.isreserved lists them.
_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
             *(f"{port}{i}" for port in ("COM", "LPT") for i in "123456789\u00b9\u00b2\u00b3")}
_NOT_ON_WINDOWS = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


def portable_name(name: str, limit: int = 120) -> str:
    """One file or folder name that Windows, macOS and Linux all hold, for names Kinograph makes from what it
    is given (a ComfyUI filename_prefix, a prompt): Windows' forbidden characters (: ? * < > | " \\ /) as _,
    no trailing dot or space (Windows drops them: two names became one), a device name (CON, NUL.mp4) given
    a leading _, and at most `limit` characters. '' stays ''."""
    name = _NOT_ON_WINDOWS.sub("_", name)[:limit].rstrip(". ")
    if name.split(".")[0].strip().upper() in _RESERVED:
        name = "_" + name
    return name


# What YAML makes of a Windows path in double quotes: "out\new\take.mp4" is out, a new line, ew, a tab, ake.mp4.
QUOTED_BACKSLASH = ("in double quotes YAML reads a backslash as the start of an escape (\\n, \\t, \\U): write the "
                    "path in single quotes ('footage\\shot01.mp4') or with / (footage/shot01.mp4)")


def control_characters(value: str) -> str:
    """Why a path holding a tab, new line or other control character is refused (a Windows path in double
    quotes, read as escapes), or ''."""
    if not isinstance(value, str) or not any(ord(c) < 32 for c in value):
        return ""
    return f"{value!r} holds control characters no file name should: {QUOTED_BACKSLASH}"


# Where macOS keeps users' files and other drives; on Linux such a path is from a Mac.
_MAC_ROOTS = ("/Users/", "/Volumes/")
# Workflow files: never what a node reads as footage or a picture, so never its near-name hint.
_WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")


def missing_hint(path: str) -> str:
    """What to add where a file the workflow reads is not there: that the path is one on a Mac (/Users/..,
    /Volumes/..) when this is Linux, else the name in its folder closest to it; '' when neither."""
    import sys
    path = str(path)
    mac_root = next((r for r in _MAC_ROOTS if path.startswith(r)), None)
    if mac_root and sys.platform.startswith("linux") and not os.path.isdir(mac_root):
        return (" (a path on a Mac: give the file's place on this computer, or a path relative to the workflow's "
                "folder)")
    folder, name = os.path.split(os.path.abspath(path))
    try:
        changed = os.stat(folder).st_mtime_ns
    except OSError:
        return ""
    return _closest_name(folder, name, changed)


@functools.lru_cache(maxsize=256)
def _closest_name(folder: str, name: str, changed: int) -> str:
    """missing_hint's 'did you mean' for `name` in `folder` as it was when last `changed` (its mtime): the editor
    looks for a loader's file at every edit of it, and comparing the name with each of a folder's 20,000 frames
    took 0.75 s a look. A file added or removed changes the folder's mtime, and the folder is read again."""
    try:
        names = os.listdir(folder)
    except OSError:
        return ""
    # An imported template's picture (image_chrono_edit_input_image.png) was 'meant' to be the workflow beside it
    # (image_chrono_edit_14B.yaml): a workflow file is never the footage or picture a node reads.
    if os.path.splitext(name)[1].lower() not in _WORKFLOW_SUFFIXES:
        names = [n for n in names if os.path.splitext(n)[1].lower() not in _WORKFLOW_SUFFIXES]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def text_of(raw: bytes) -> str:
    """A text file's bytes as Windows editors save them: UTF-16 or UTF-32 with a byte-order mark ("Unicode" in
    Notepad, what Windows PowerShell's `>` writes), else UTF-8 with or without one. Raises UnicodeDecodeError."""
    import codecs
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(enc)
            except UnicodeDecodeError:
                break
    return raw.decode("utf-8-sig")
