"""The text of parameters of kind `points`, `negative_points` and `box` (node_api.PARAM_KINDS): positions in the pixels
of the node's picture, read by the node that declares them and written by the editor when they are clicked on its
frames. Points are "x,y; x,y" or ComfyUI PointsEditor's JSON [{"x": 120, "y": 80}, ...]; a box is
"x0,y0,x1,y1" or a JSON list of the four (KJNodes' BBOX holds such lists). One grammar for both sides: the node reads
every object and frame (point_groups, box_groups: '|' between objects, '@frame'); the editor picks on the frame it
shows for one object at a time (prompts_on, set_prompts, remove_object), rewriting only that object's
prompts on that frame: the rest of the text stays as it was written, byte for byte."""
from __future__ import annotations

import json
import math
from difflib import SequenceMatcher
from typing import List, Optional, Tuple



def _frame_of(part: str) -> Tuple[str, int]:
    """(text before '@', the frame after it; 0 where none): "120,80@12" is a point on frame 12."""
    text, at, frame = part.partition("@")
    if not at:
        return text, 0
    frame = float(frame)
    if not math.isfinite(frame) or frame != int(frame) or frame < 0:     # int() of @inf raised OverflowError
        raise ValueError(f"{part.strip()[:40]!r} is not on a frame")
    return text, int(frame)


def _groups(text: str, item) -> list:
    """The text grammar's objects ('|') of items on frames (';', each item@frame): item(text, frame) per item."""
    return [[item(*_frame_of(p)) for p in group.split(";") if p.strip()] for group in text.split("|")]


def point_groups(text) -> List[List[Tuple[float, float, int]]]:
    """Points per object: [[(x, y, frame), ...], ...] in pixels. KJNodes' PointsEditor JSON ([{"x": 10, "y": 20},
    ...], the form ComfyUI's SAM nodes take: one object, frame 0) or "x,y; x,y"; objects apart with '|' (or JSON's
    list of such lists), a point on another frame as x,y@frame. ValueError when it is not that."""
    text = str(text or "").strip()
    if not text:
        return []
    try:
        if text[:1] in "[{":
            data = json.loads(text.replace("'", '"'))
            data = [data] if isinstance(data, dict) else data
            groups = data if data and all(isinstance(g, list) for g in data) else [data]
            return [[(float(d["x"]), float(d["y"]), 0) for d in g] for g in groups]
        def point(xy: str, frame: int):
            d = dict(zip("xy", map(float, xy.split(","))))
            return float(d["x"]), float(d["y"]), frame
        return _groups(text, point)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError(f"{text[:80]!r} is not a list of points") from None


def box_groups(text) -> List[List[Tuple[float, float, float, float, int]]]:
    """Boxes per object: [[(x0, y0, x1, y1, frame), ...], ...] in pixels from "x0,y0,x1,y1" or a JSON list of the four
    (KJNodes' BBOX holds such lists: several are one box per object); objects apart with '|', a box on another frame
    as x0,y0,x1,y1@frame, boxes of one object on several frames apart with ';'. [] for no box; ValueError when it is
    not that."""
    text = str(text or "").strip()
    if not text:
        return []
    try:
        if text[:1] == "[":
            data = json.loads(text)
            if data == []:          # what remove_object writes for the last box taken away
                return []
            data = data if data and all(isinstance(b, (list, tuple)) for b in data) else [data]
            groups = [[tuple(float(v) for v in b) + (0,)] for b in data]
        else:
            groups = _groups(text, lambda corners, frame: tuple(float(v) for v in corners.split(",")) + (frame,))
    except (ValueError, TypeError):
        raise ValueError(f"{text[:80]!r} is not a box") from None
    if any(len(b) != 5 for g in groups for b in g):
        raise ValueError(f"{text[:80]!r} is not a box")
    return groups


def _num(v: float):
    return int(v) if float(v).is_integer() else float(v)


def groups_of(text, kind: str) -> list:
    """Per object, its prompts with their frames: box_groups for a `box` parameter, else point_groups."""
    return box_groups(text) if kind == "box" else point_groups(text)


def set_prompts(text, kind: str, obj: int, frame: int, values) -> str:
    """The text with object `obj`'s (0-based) positions on `frame` made `values` (points or boxes); groups are added
    up to that object where it is new. The positions kept, the other frames and the other objects stay as written;
    JSON stays JSON where JSON can say it (the first frame, a box for each object), else it is written as text."""
    values = [tuple(float(v) for v in value) for value in values]
    text = "" if text is None else str(text)
    if text.strip()[:1] in ("[", "{"):
        groups = groups_of(text, kind)
        groups += [[] for _ in range(obj + 1 - len(groups))]
        groups[obj] = [p for p in groups[obj] if p[-1] != frame] + [v + (frame,) for v in values]
        return _json(groups, kind) or " | ".join("; ".join(_item(p[:-1], p[-1]) for p in g) for g in groups)
    groups_of(text, kind)           # a ValueError names text that is not positions before it is edited
    raw = text.split("|") if text.strip() else [""]
    if len(raw) <= obj and raw[-1].strip() and not raw[-1][-1:].isspace():
        raw[-1] += " "
    raw += [""] * (obj + 1 - len(raw))
    raw[obj] = _set_group(raw[obj], frame, values, first=obj == 0, last=obj == len(raw) - 1)
    return "|".join(raw)


def remove_object(text, kind: str, obj: int) -> str:
    """The text without object `obj`'s group (the objects after it move up one); the rest as written."""
    text = "" if text is None else str(text)
    if text.strip()[:1] in ("[", "{"):
        groups = groups_of(text, kind)
        return _json(groups[:obj] + groups[obj + 1:], kind) if obj < len(groups) else text
    raw = text.split("|")
    if obj >= len(raw) or not text.strip():
        return text
    del raw[obj]
    if obj == len(raw) and raw:
        raw[-1] = raw[-1].rstrip()
    elif obj == 0 and raw:
        raw[0] = raw[0].lstrip()
    return "|".join(raw)


def _set_group(raw: str, frame: int, values: list, first: bool, last: bool) -> str:
    """One object's text with its positions on `frame` made `values`: positions that stay (the longest run in
    order, difflib's) keep their text; new ones go where the ones they replace were, else after the last on that
    frame, else at the end."""
    if raw.strip():
        lead, trail = raw[:len(raw) - len(raw.lstrip())], raw[len(raw.rstrip()):]
    else:
        lead, trail = ("" if first else " "), ("" if last else " ")
    pieces = raw.strip().split(";") if raw.strip() else []
    mine = []
    for i, piece in enumerate(pieces):
        if piece.strip():
            at, f = _frame_of(piece)
            if f == frame:
                mine.append((i, tuple(float(v) for v in at.split(","))))
    put: dict = {}                          # piece index -> the pieces that stand in its place
    end: List[str] = []
    match = SequenceMatcher(None, [v for _, v in mine], values, autojunk=False)
    for tag, i1, i2, j1, j2 in match.get_opcodes():
        new = [" " + _item(v, frame) for v in values[j1:j2]]
        if tag == "equal":
            continue
        if i2 > i1:
            for k in range(i1, i2):
                put[mine[k][0]] = []
            put[mine[i1][0]] = new
        elif i1 < len(mine):
            put[mine[i1][0]] = new + put.get(mine[i1][0], [pieces[mine[i1][0]]])
        elif mine:
            put[mine[-1][0]] = put.get(mine[-1][0], [pieces[mine[-1][0]]]) + new
        else:
            end += new
    out = [q for i, piece in enumerate(pieces) for q in put.get(i, [piece])] + end
    body = ";".join(out).strip()
    return lead + body + trail if body else ("" if first and last else lead + trail if raw.strip() else " ")


def _item(value, frame: int) -> str:
    # Python's shortest exact form: "{:g}" kept 6 digits, so a pick at 2640.016 on a 4K frame was written 2640.02
    return ",".join(str(_num(v)) for v in value) + (f"@{frame}" if frame else "")


def _json(groups, kind: str) -> Optional[str]:
    """Groups as the JSON the node reads (PointsEditor's points; KJNodes' BBOX a box an object); None where JSON
    cannot hold them (a prompt on a later frame, an object with no box or two)."""
    if any(p[-1] for g in groups for p in g):
        return None
    if kind == "box":
        if any(len(g) != 1 for g in groups):
            return None if groups else "[]"
        boxes = [[_num(v) for v in g[0][:4]] for g in groups]
        return json.dumps(boxes[0] if len(boxes) == 1 else boxes)
    lists = [[{"x": _num(p[0]), "y": _num(p[1])} for p in g] for g in groups]
    return json.dumps(lists[0] if len(lists) == 1 else lists)
