"""Where a ComfyUI workflow comes from: its two JSON formats, and the media files that carry one.

ComfyUI itself writes the UI workflow and the API prompt into PNG text chunks ("workflow", "prompt"),
into WebP EXIF (Make = "workflow:{...}", Model = "prompt:{...}") and, with SaveVideo/SaveWEBM, into
container metadata keys of the same names; VideoHelperSuite writes one JSON object holding both into
the video's `comment` metadata. All of that is read here, never executed."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from graph_engine.atomic import read_plain, special_file
from graph_engine.errors import NodeError

from .errors import ComfyImportError

JSON_SUFFIXES = {".json"}
PNG_SUFFIXES = {".png", ".apng"}
WEBP_SUFFIXES = {".webp"}
VIDEO_SUFFIXES = {".mp4", ".webm", ".mkv", ".mov", ".m4v"}
MAX_JSON_BYTES = 64 * 1024 * 1024


@dataclass
class Source:
    """A workflow found in a file: kind "ui" (nodes/links arrays) or "api" (prompt by node id)."""
    kind: str
    data: Dict[str, Any]
    origin: str                      # where in the file it was found, for messages
    remark: str = ""                 # what the report should say about how it was read


def classify(data: Any) -> Optional[str]:
    """ "ui", "api" or None for anything else."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("nodes"), list) and "links" in data:
        return "ui"
    if "prompt" in data and isinstance(data["prompt"], dict) and classify(data["prompt"]) == "api":
        return "api-wrapped"        # a /prompt request body: {"prompt": {...}, "extra_data": ...}
    if data and all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        return "api"
    return None


def _parse_json(text: Any, where: str, path: str) -> Any:
    if isinstance(text, (dict, list)):
        return text
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        if not text.strip():
            raise ComfyImportError(f"{path}: the {where} is empty") from None
        if e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string"):
            # a download or copy that stopped part way: the JSON is fine up to where the bytes end
            raise ComfyImportError(f"{path}: the {where} ends before its JSON does: it was cut short (an "
                                   "interrupted download or copy?); get it again") from None
        raise ComfyImportError(f"{path}: the {where} is not valid JSON ({e})") from None
    except (TypeError, ValueError) as e:
        raise ComfyImportError(f"{path}: the {where} is not valid JSON ({e})") from None
    except RecursionError:
        # json's C scanner recurses per bracket; no real workflow nests more than a few levels.
        raise ComfyImportError(f"{path}: the {where} is nested too deeply to be a ComfyUI workflow") from None


def _decode(raw: bytes, label: str) -> str:
    """UTF-8 (with or without a BOM), or UTF-16/32 with a BOM as Windows editors save "Unicode" text."""
    from graph_engine.portable import text_of
    try:
        return text_of(raw)
    except UnicodeDecodeError as e:
        if b"\0" in raw[:8192]:
            raise ComfyImportError(f"{label}: not a text file; a ComfyUI workflow is JSON, or a PNG/WebP/MP4/WebM "
                                   "that carries one") from None
        line = raw.count(b"\n", 0, e.start) + 1
        raise ComfyImportError(f"{label}: not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}, in another "
                               "encoding such as Windows-1252): ComfyUI writes UTF-8; save the file as UTF-8 and "
                               "import it again") from None


def _pick(found: Dict[str, Any], path: str) -> Source:
    """Prefer the UI workflow (it has positions, groups and notes); fall back to the API prompt."""
    damaged = None
    for key in ("workflow", "prompt"):
        if key in found and found[key] not in (None, "", "null"):
            try:
                data = _parse_json(found[key], f"embedded {key}", path)
            except ComfyImportError as e:
                damaged = damaged or e
                continue
            kind = classify(data)
            if kind == "api-wrapped":
                data, kind = data["prompt"], "api"
            if kind:
                # the prompt has what runs but no layout: the report says why the layout is missing
                remark = ("the embedded workflow is not readable JSON, so this is the embedded prompt: what runs, "
                          "without positions, groups and notes") if damaged else ""
                return Source(kind, data, f"embedded {key}", remark)
    if damaged:
        raise damaged
    raise ComfyImportError(f"{path}: this file carries no ComfyUI workflow in its metadata")


def read_source(path) -> Source:
    """The workflow in a .json file or in a PNG/APNG/WebP/MP4/WebM that ComfyUI or VideoHelperSuite wrote."""
    p = Path(path)
    label = str(p)
    if not p.exists():
        raise ComfyImportError(f"{label}: no such file")
    if p.is_dir():
        raise ComfyImportError(f"{label}: is a folder, not a workflow file")
    kind = special_file(p)
    if kind:
        # Opened, a named pipe waits for a writer for ever and a link to /dev/zero (size 0) never ends.
        raise ComfyImportError(f"{label}: is {kind}, not a workflow file: give the .json, PNG or video itself")
    suffix = p.suffix.lower()
    if suffix in PNG_SUFFIXES | WEBP_SUFFIXES:
        return _pick(_image_metadata(p), label)
    if suffix in VIDEO_SUFFIXES:
        return _pick(_video_metadata(p), label)
    size = p.stat().st_size
    try:
        raw = b"" if size > MAX_JSON_BYTES else read_plain(p, MAX_JSON_BYTES)
        if size > MAX_JSON_BYTES or len(raw) > MAX_JSON_BYTES:      # len: it grew since, or stat did not say
            # The limit and the way on: "64 MB is too large" for a file of 64.4 MB named no limit at all
            raise ComfyImportError(f"{label}: {max(size, len(raw)) / 2**20:.1f} MB is more than a workflow file "
                                   f"may be (at most {MAX_JSON_BYTES >> 20} MB; ComfyUI's own are under 1 MB): give "
                                   f"the workflow's .json, or the PNG ComfyUI saved it in")
        text = _decode(raw, label)
    except OSError as e:
        raise ComfyImportError(f"{label}: cannot read ({e.strerror})") from None
    data = _parse_json(text, "file", label)
    kind = classify(data)
    if kind == "api-wrapped":
        return Source("api", data["prompt"], "API request")
    if kind is None:
        raise ComfyImportError(f"{label}: not a ComfyUI workflow (expected a UI workflow with `nodes` and "
                               "`links`, or an API prompt of nodes with `class_type`)")
    return Source(kind, data, "file")


def _image_metadata(p: Path) -> Dict[str, Any]:
    """PNG text chunks and WebP EXIF, read by what the file is, not by its name: image hosts and chat apps
    convert a PNG to WebP and keep the name."""
    from PIL import Image, PngImagePlugin, UnidentifiedImageError
    # Pillow stops at 1 MB of compressed text by default; a large workflow is still a workflow
    PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, MAX_JSON_BYTES)
    try:
        with Image.open(p) as im:
            found = dict(getattr(im, "text", {}) or {})
            found.update({k: v for k, v in im.info.items() if isinstance(v, (str, bytes)) and k not in found})
            exif = im.getexif()
            kind = im.format
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise ComfyImportError(f"{p}: not a readable {p.suffix.lstrip('.').upper() or 'image'} ({e})") from None
    except Image.DecompressionBombError as e:         # a header claiming 100000x100000: Pillow stops as it opens
        from nodes.io.images import too_big
        raise ComfyImportError(too_big(p, str(e))) from None
    for value in exif.values():              # ComfyUI's WebP: Make = "workflow:{...}", Model = "prompt:{...}"
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and ":" in value:
            key, _, body = value.partition(":")
            if key in ("workflow", "prompt") and key not in found:
                found[key] = body
    if kind not in ("PNG", "WEBP") and not any(k in found for k in ("workflow", "prompt")):
        raise ComfyImportError(f"{p}: is a {kind} image, not a PNG or WebP, which ComfyUI writes its workflow "
                               "into (an image host may have converted it): get the original PNG or the .json") from None
    return found


def _video_metadata(p: Path) -> Dict[str, Any]:
    import av
    from graph_engine.mp4_samples import refuse_claimed_frames
    try:
        refuse_claimed_frames(p)
        with av.open(str(p)) as c:
            meta = dict(c.metadata)
            for s in c.streams:
                meta.update({k: v for k, v in s.metadata.items() if k not in meta})
    except (OSError, av.error.FFmpegError, NodeError) as e:
        raise ComfyImportError(f"{p}: not a readable video ({e})") from None
    found = {k.lower(): v for k, v in meta.items() if k.lower() in ("workflow", "prompt")}
    comment = meta.get("comment") or meta.get("COMMENT")
    if comment and not found:
        try:
            wrapped = json.loads(comment)
        except (ValueError, RecursionError):
            wrapped = None
        if isinstance(wrapped, dict):
            found = {k: v for k, v in wrapped.items() if k in ("workflow", "prompt")}
    return found
