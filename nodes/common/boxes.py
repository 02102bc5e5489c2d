"""Boxes on a canvas: the BOXES value (ComfyUI's BOUNDING_BOX and the `elements` ARRAY of CreateBoundingBoxes, in
one), and the layout texts models read them as.

A box is stored in the canvas' pixels (x, y of its top-left corner, width, height), with what a layout prompt or a
detector says of it: kind ("obj" or "text" as ComfyUI's box editor marks them, or a detector's class name), the
words to letter in it, a description, a palette and a score. Pixels are what a drawing or a crop needs; the
normalised forms the layout models read (0-1000, rows of y0, x0, y1, x1) are worked out of them here, so that one
value feeds FLUX.3's layout prompt and can feed MOSS-Image's, Ming's and a detector's drawing alike."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Sequence, Tuple

from graph_engine import NodeError


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float
    kind: str = "obj"
    text: str = ""
    desc: str = ""
    palette: Tuple[str, ...] = ()
    score: float = 1.0
    frame: int = 0          # the frame of a clip it belongs to (a detector's boxes); 0 for a still's


@dataclass(frozen=True)
class Boxes:
    """Boxes drawn on (or found in) a canvas of width x height pixels, in the order given (a layout's background
    first, as ComfyUI's editor asks)."""
    width: int
    height: int
    boxes: Tuple[Box, ...] = field(default_factory=tuple)

    def to_state(self):
        return {}, {"width": self.width, "height": self.height, "boxes": [asdict(b) for b in self.boxes]}

    @classmethod
    def from_state(cls, tensors, meta):
        return cls(int(meta["width"]), int(meta["height"]),
                   tuple(Box(**{**b, "palette": tuple(b["palette"])}) for b in meta["boxes"]))

    def yxyx_1000(self, box: Box) -> List[int]:
        """The box as [y0, x0, y1, x1] on a 0-1000 grid over the canvas (the grid FLUX.3's layout rows use)."""
        def grid(v: float, side: int) -> int:
            return round(max(0.0, min(1.0, v / side)) * 1000)
        return [grid(box.y, self.height), grid(box.x, self.width),
                grid(box.y + box.height, self.height), grid(box.x + box.width, self.width)]


# Boxes a drawn layout may hold: ComfyUI's box editor is drawn by hand, and FLUX.3's prompt window holds a few hundred.
# 400,000 (a 28 MB list in a workflow file) took 6 s to read, 2.6 s a frame to draw and a 25 MB line of the run's log.
MAX_BOXES = 1000


def from_editor(width: int, height: int, rows: Sequence[Any]) -> Boxes:
    """Boxes from ComfyUI's box editor state (CreateBoundingBoxes' widget): rows of x, y, width, height in the
    canvas' pixels and a metadata of type, text, desc and palette."""
    if width < 1 or height < 1:
        raise NodeError(f"the canvas must be at least 1 x 1 pixels, got {width} x {height}")
    if len(rows or ()) > MAX_BOXES:
        raise NodeError(f"the layout has {len(rows):,} boxes: at most {MAX_BOXES:,} are read (FLUX.3 reads the first "
                        f"8,192 tokens of its layout prompt, a few hundred boxes); keep the ones that matter")
    out = []
    for i, row in enumerate(rows or ()):
        if not isinstance(row, dict):
            raise NodeError(f"box {i + 1} must give x, y, width and height in pixels, got {str(row)[:200]}")
        x, y, w, h = (_pixels(row.get(k), i, k) for k in ("x", "y", "width", "height"))
        if w <= 0 or h <= 0:
            raise NodeError(f"box {i + 1} is {w:g} x {h:g} pixels: draw it wider and taller than 0")
        meta = row.get("metadata") or {}
        if not isinstance(meta, dict):
            raise NodeError(f"box {i + 1}'s metadata must be an object of type, text, desc and palette, got "
                            f"{str(meta)[:200]}")
        palette = meta.get("palette") or ()
        if not isinstance(palette, (list, tuple)):
            raise NodeError(f"box {i + 1}'s palette must be a list of colours, got {str(palette)[:200]}")
        out.append(Box(x, y, w, h, str(meta.get("type") or "obj"), str(meta.get("text") or ""),
                       str(meta.get("desc") or ""), tuple(str(c) for c in palette)))
    return Boxes(int(width), int(height), tuple(out))


def _pixels(v: Any, i: int, side: str) -> float:
    """A box's side as a finite float: Python's JSON reads NaN, Infinity and numbers past a float's range, and
    true is an int to Python, none of them a number of pixels (a NaN width passed the 'wider than 0' check)."""
    number = isinstance(v, (int, float)) and not isinstance(v, bool) and (isinstance(v, float) or abs(v) < 1e300)
    if not number or not math.isfinite(v):
        raise NodeError(f"box {i + 1} must give x, y, width and height as numbers of pixels; its {side} is "
                        f"{str(v)[:40]}")
    return float(v)


def flux3_layout_rows(boxes: Boxes) -> List[Dict[str, Any]]:
    """FLUX.3's layout table: box N (from 1) as obj_N, its [y0, x0, y1, x1] on the 0-1000 grid, and its
    description (ComfyUI's Flux3LayoutPrompt documents these three; a box's palette and words to letter are not
    read, so say them in its description)."""
    return [{"id": f"obj_{n}", "bbox": boxes.yxyx_1000(box), "desc": box.desc} for n, box in enumerate(boxes.boxes, 1)]


def flux3_layout_prompt(prompt: str, boxes: Boxes | None) -> str:
    """The prompt with FLUX.3's layout table after it, as one JSON list; unchanged without boxes."""
    if boxes is None or not boxes.boxes:
        return prompt
    return f"{prompt} {json.dumps(flux3_layout_rows(boxes), ensure_ascii=False)}"
