"""ASC CDL (Color Decision List, v1.2), as DaVinci Resolve, Nuke (OCIOCDLTransform) and OpenColorIO
apply it: per channel out = clamp(in * slope + offset) ^ power, then saturation around Rec. 709 luma,
clamped to [0, 1]. Corrections come as numbers or from the XML files an on-set colourist or an editor
exports: .cc (one ColorCorrection), .ccc (a collection) and .cdl (a ColorDecisionList)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from xml.etree import ElementTree

import numpy as np

from graph_engine import NodeError
from nodes.common.color import LUMA_709


@dataclass
class Cdl:
    slope: np.ndarray = None
    offset: np.ndarray = None
    power: np.ndarray = None
    saturation: float = 1.0

    def __post_init__(self):
        self.slope = np.ones(3) if self.slope is None else np.asarray(self.slope, np.float64)
        self.offset = np.zeros(3) if self.offset is None else np.asarray(self.offset, np.float64)
        self.power = np.ones(3) if self.power is None else np.asarray(self.power, np.float64)

    @property
    def identity(self) -> bool:
        return bool((self.slope == 1).all() and (self.offset == 0).all() and (self.power == 1).all()
                    and self.saturation == 1)


def triple(text: str, name: str) -> np.ndarray:
    """'1.1' or '1.1 1.0 0.9' (commas allowed) as three numbers, or a NodeError naming `name`."""
    try:
        vals = [float(v) for v in str(text).replace(",", " ").split()]
    except ValueError:
        vals = []
    if len(vals) not in (1, 3) or not np.isfinite(vals).all():
        raise NodeError(f"{name}={text!r}: give one number for all channels or three (red green blue), "
                        f"e.g. '1.05 1.0 0.95'")
    return np.array(vals * 3 if len(vals) == 1 else vals, np.float64)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]       # files carry the ASC namespace (urn:ASC:CDL:v1.01) or none


def _child(node, name: str):
    return next((c for c in node.iter() if _local(c.tag).lower() == name.lower()), None)


def parse_cdl_file(path: str, correction_id: str = "") -> Cdl:
    """The correction in a .cc/.ccc/.cdl file: the one whose id is `correction_id`, else the first."""
    p = Path(path)
    if not p.is_file():
        raise NodeError(f"CDL file {path} not found: choose an existing .cc, .ccc or .cdl file")
    try:
        root = ElementTree.parse(p).getroot()
    except (ElementTree.ParseError, UnicodeDecodeError):
        raise NodeError(f"{path}: not an ASC CDL file (.cc, .ccc or .cdl XML could not be read)") from None
    found = [c for c in root.iter() if _local(c.tag) == "ColorCorrection"]
    if not found:
        raise NodeError(f"{path}: holds no ColorCorrection: not an ASC CDL file (.cc, .ccc or .cdl)")
    if correction_id:
        chosen = [c for c in found if c.get("id") == correction_id]
        if not chosen:
            ids = ", ".join(repr(c.get("id")) for c in found if c.get("id")) or "none"
            raise NodeError(f"{path}: no ColorCorrection with id {correction_id!r} (its ids: {ids})")
        found = chosen
    cc = found[0]
    values = {}
    for name in ("Slope", "Offset", "Power", "Saturation"):
        node = _child(cc, name)
        if node is None:
            continue
        try:
            values[name] = triple(node.text or "", name) if name != "Saturation" else float(node.text)
        except (NodeError, ValueError, TypeError):
            raise NodeError(f"{path}: the {name} of ColorCorrection {cc.get('id') or ''} is not "
                            f"{'three numbers' if name != 'Saturation' else 'a number'}") from None
    return Cdl(values.get("Slope"), values.get("Offset"), values.get("Power"), values.get("Saturation", 1.0))


def apply_cdl(frame: np.ndarray, cdl: Cdl, then: Optional[Cdl] = None) -> np.ndarray:
    """A uint8 RGB frame through the correction (and `then` after it), back to uint8."""
    level = np.arange(256, dtype=np.float64) / 255.0
    x = None
    for c in (cdl, then):
        if c is None or c.identity:
            continue
        # Slope, offset and power act on each channel alone: per level when the input is 8-bit.
        if x is None:
            tables = np.clip(level[:, None] * c.slope + c.offset, 0.0, 1.0) ** c.power
            x = np.stack([tables[:, k].astype(np.float32)[frame[..., k]] for k in range(3)], -1)
        else:
            x = np.clip(x * c.slope.astype(np.float32) + c.offset.astype(np.float32), 0.0, 1.0) \
                ** c.power.astype(np.float32)
        if c.saturation != 1.0:
            y = (x @ LUMA_709)[..., None]
            x = np.clip(y + np.float32(c.saturation) * (x - y), 0.0, 1.0)
    if x is None:
        return frame
    return (x * 255.0 + 0.5).astype(np.uint8)


def cdl_linear(lin: np.ndarray, cdl: Cdl, then: Optional[Cdl] = None) -> np.ndarray:
    """float linear light [..., 3] (a deep plate's pixels) through the corrections without clamping, as
    OpenColorIO's CDL_NO_CLAMP style (OCIO 2's default, what Nuke's OCIOCDLTransform applies): in * slope +
    offset, to the power where above 0 (passed as it is at or below), saturation around Rec. 709 luma, so light
    above 1.0 keeps its headroom. On the sRGB-coded values, as apply_cdl works (one .cc gives an EXR plate the
    look it gives the 8-bit picture: within 0..1 it is apply_cdl before clamping and rounding), the curve
    continued beyond 0..1."""
    from nodes.color.grade import BAND_ROWS
    from nodes.common.color import linear_to_srgb_unclamped, srgb_to_linear
    steps = [c for c in (cdl, then) if c is not None and not c.identity]
    lin = np.asarray(lin, np.float32)
    if not steps:
        return lin
    if lin.ndim < 3:
        return cdl_linear(lin[None], cdl, then)[0]
    out = np.empty(lin.shape, np.float32)
    for y in range(0, lin.shape[-3], BAND_ROWS):        # a band of rows at a time, as grade_linear
        x = linear_to_srgb_unclamped(lin[..., y:y + BAND_ROWS, :, :])
        for c in steps:
            x = x * c.slope.astype(np.float32) + c.offset.astype(np.float32)
            x = np.where(x > 0, np.maximum(x, 0) ** c.power.astype(np.float32), x)
            if c.saturation != 1.0:
                luma = (x @ LUMA_709)[..., None]
                x = luma + np.float32(c.saturation) * (x - luma)
        out[..., y:y + BAND_ROWS, :, :] = srgb_to_linear(x)
    return out


def node_corrections(path: str, correction: str, slope: str, offset: str, power: str, saturation: float):
    """color.cdl's (file's correction, the node's numbers), checked: powers above 0, saturation not below."""
    knobs = Cdl(triple(slope, "slope"), triple(offset, "offset"), triple(power, "power"), saturation)
    if (knobs.power <= 0).any():
        raise NodeError(f"color.cdl: power={power!r}: every power must be above 0")
    first = parse_cdl_file(path, correction) if path else Cdl()
    if (first.power <= 0).any() or first.saturation < 0:
        raise NodeError(f"{path}: its power must be above 0 and its saturation not below 0")
    return first, knobs
