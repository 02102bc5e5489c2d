"""The text of parameters of kind `points`, `negative_points` and `box` (node_api.PARAM_KINDS): positions in the pixels
of the first frame of the node's picture, read by the node that declares them and written by the editor when they are
clicked on that frame. Points are "x,y; x,y" or ComfyUI PointsEditor's JSON [{"x": 120, "y": 80}, ...]; a box is
"x0,y0,x1,y1" or a JSON list of the four (KJNodes' BBOX holds such lists). One grammar for both sides: the node reads
every object and frame (point_groups, box_groups: '|' between objects, '@frame'); the editor picks one object on the
first frame (points_of, box_of), and `beyond_first_frame` tells it which text to leave as written."""
from __future__ import annotations

import json
import math
from typing import List, Optional, Tuple

Point = Tuple[float, float]
Box = Tuple[float, float, float, float]


def _frame_of(part: str) -> Tuple[str, int]:
    """(text before '@', the frame after it; 0 where none): "120,80@12" is a point on frame 12."""
    text, at, frame = part.partition("@")
    if not at:
        return text, 0
    frame = float(frame)
    if not math.isfinite(frame) or frame != int(frame) or frame < 0:     # int() of @inf raised OverflowError
        raise ValueError(f"{part.strip()[:40]!r} is not on a frame")
    return text, int(frame)


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
        groups = []
        for group in text.split("|"):
            points = []
            for p in group.split(";"):
                if p.strip():
                    xy, frame = _frame_of(p)
                    d = dict(zip("xy", map(float, xy.split(","))))
                    points.append((float(d["x"]), float(d["y"]), frame))
            groups.append(points)
        return groups
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
            data = data if data and all(isinstance(b, (list, tuple)) for b in data) else [data]
            groups = [[tuple(float(v) for v in b) + (0,)] for b in data]
        else:
            groups = []
            for group in text.split("|"):
                boxes = []
                for b in group.split(";"):
                    if b.strip():
                        corners, frame = _frame_of(b)
                        boxes.append(tuple(float(v) for v in corners.split(",")) + (frame,))
                groups.append(boxes)
    except (ValueError, TypeError):
        raise ValueError(f"{text[:80]!r} is not a box") from None
    if any(len(b) != 5 for g in groups for b in g):
        raise ValueError(f"{text[:80]!r} is not a box")
    return groups


def beyond_first_frame(text, kind: str) -> bool:
    """True where the text of a parameter of this kind holds what picking on the first frame cannot show: several
    objects, prompts on other frames, or one object's boxes on several frames. Rewriting it from the picks would drop
    those. Text that is not positions at all is not: the picker flags it as unreadable."""
    try:
        groups = box_groups(text) if kind == "box" else point_groups(text)
    except ValueError:
        return False
    return len(groups) > 1 or any(p[-1] for g in groups for p in g) or (kind == "box" and any(len(g) > 1
                                                                                             for g in groups))


def points_of(text) -> List[Point]:
    """[(x, y), ...] of one object's points on the first frame (text `beyond_first_frame` does not flag); ValueError
    when it is not a list of points."""
    groups = point_groups(text)
    return [p[:2] for p in groups[0]] if groups else []


def box_of(text) -> Optional[Box]:
    """(x0, y0, x1, y1) of one box on the first frame, None for no box; ValueError when it is not four numbers."""
    groups = box_groups(text)
    return groups[0][0][:4] if groups and groups[0] else None


def points_text(points: List[Point], like: str = "") -> str:
    """The points written as `like` is: PointsEditor's JSON when it is JSON (a ComfyUI import stays JSON), else
    x,y; x,y."""
    if str(like or "").strip()[:1] in ("[", "{"):
        return json.dumps([{"x": _num(x), "y": _num(y)} for x, y in points])
    return "; ".join(f"{x:g},{y:g}" for x, y in points)


def box_text(box: Optional[Box], like: str = "") -> str:
    """The box written as `like` is (a JSON list, or x0,y0,x1,y1); "" for none."""
    if box is None:
        return ""
    if str(like or "").strip()[:1] == "[":
        return json.dumps([_num(v) for v in box])
    return ",".join(f"{v:g}" for v in box)


def _num(v: float):
    return int(v) if float(v).is_integer() else float(v)
