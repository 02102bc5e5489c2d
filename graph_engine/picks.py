"""The text of parameters of kind `points`, `negative_points` and `box` (node_api.PARAM_KINDS): positions in the pixels
of the first frame of the node's picture, read by the node that declares them and written by the editor when they are
clicked on that frame. Points are "x,y; x,y" or ComfyUI PointsEditor's JSON [{"x": 120, "y": 80}, ...]; a box is
"x0,y0,x1,y1" or a JSON list of the four (KJNodes' BBOX holds such lists). The node may read more than the editor picks
(mask.track_points: several objects, prompts on later frames); `beyond_first_frame` tells such text apart, so the
editor leaves it as written."""
from __future__ import annotations

import json
from typing import List, Optional, Tuple

Point = Tuple[float, float]
Box = Tuple[float, float, float, float]


def points_of(text) -> List[Point]:
    """[(x, y), ...] of the text; ValueError when it is not a list of points."""
    text = str(text or "").strip()
    if not text:
        return []
    try:
        data = json.loads(text.replace("'", '"')) if text[:1] in "[{" else [
            dict(zip("xy", map(float, p.split(",")))) for p in text.split(";") if p.strip()]
        data = [data] if isinstance(data, dict) else data
        return [(float(d["x"]), float(d["y"])) for d in data]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError(f"{text[:80]!r} is not a list of points") from None


def box_of(text) -> Optional[Box]:
    """(x0, y0, x1, y1) of the text, None for no box; ValueError when it is not four numbers."""
    text = str(text or "").strip()
    if not text:
        return None
    try:
        data = json.loads(text) if text[:1] == "[" else [float(v) for v in text.split(",")]
        data = data[0] if len(data) == 1 and isinstance(data[0], (list, tuple)) else data
        box = tuple(float(v) for v in data)
    except (ValueError, TypeError):
        raise ValueError(f"{text[:80]!r} is not a box") from None
    if len(box) != 4:
        raise ValueError(f"{text[:80]!r} is not a box")
    return box


def beyond_first_frame(text, kind: str) -> bool:
    """True where the text of a parameter of this kind holds what picking on the first frame cannot show: several
    objects ('|', or JSON's list of lists) or prompts on other frames ('@'; a box's ';' between frames). Rewriting it
    from the picks would drop those."""
    text = str(text or "").strip()
    if "|" in text or "@" in text or (kind == "box" and ";" in text):
        return True
    if text[:1] != "[":
        return False
    try:
        data = json.loads(text.replace("'", '"'))
    except ValueError:
        return False
    lists = isinstance(data, list) and bool(data) and all(isinstance(d, list) for d in data)
    return lists and (len(data) > 1 or kind != "box")


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
