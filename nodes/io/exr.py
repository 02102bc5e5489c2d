"""OpenEXR files, as Nuke and Blender render them: linear-light float pictures to and from the 8-bit sRGB
frames every node works on.

Read with the OpenEXR project's own bindings (the `openexr` package): Pillow has no EXR reader and
opencv-python's wheels are built without OpenEXR. A picture is shown as Nuke's and Blender's "Standard"
sRGB view shows it: linear light encoded with the sRGB curve, above 1.0 clipped. EXR colour is
premultiplied by alpha, which is what "laid over black" means for the other formats (images.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from graph_engine import NodeError
from graph_engine.embedded import KEY
from nodes.common.color import linear_to_srgb, srgb_to_linear, to_uint8

# Where a file has several layers (Blender's multilayer EXR: "ViewLayer.Combined.R", ...), the picture is
# the first layer named like this, else the first layer with colour in it.
MAIN_LAYERS = ("Combined", "rgba", "beauty", "Beauty")


def _openexr():
    try:
        import OpenEXR
    except ImportError:
        raise NodeError("reading and writing EXR files needs the openexr package: `pip install openexr` "
                        "(`make install` adds it)") from None
    return OpenEXR


def _layers(channels: dict) -> dict:
    """layer name ("" for the unnamed one) -> {"R": array, "G": ..., "A": ..., "Y": ...}."""
    out: dict = {}
    for name, ch in channels.items():
        layer, _, comp = name.rpartition(".")
        out.setdefault(layer, {})[comp.upper() if len(comp) == 1 else comp] = ch.pixels
    return out


def _picture(layers: dict) -> Optional[Tuple[np.ndarray, Optional[np.ndarray]]]:
    """(linear RGB, alpha or None) of the layer that is the picture, None when no layer has colour."""
    def colour(layer: dict) -> bool:
        return all(c in layer for c in "RGB") or "Y" in layer

    named = [n for n in layers if colour(layers[n]) and n.rpartition(".")[2] in MAIN_LAYERS]
    plain = [n for n in layers if colour(layers[n])]
    pick = "" if "" in plain else (named or plain or [None])[0]
    if pick is None:
        return None
    layer = layers[pick]
    if all(c in layer for c in "RGB"):
        rgb = np.stack([layer["R"], layer["G"], layer["B"]], axis=-1).astype(np.float32)
    else:
        rgb = np.repeat(layer["Y"].astype(np.float32)[..., None], 3, axis=2)
    alpha = layer.get("A")
    return rgb, None if alpha is None else alpha.astype(np.float32)


def _parts(path) -> list:
    """[(part name, layers (see _layers), data window, display window)] of every part of the EXR at `path`."""
    OpenEXR = _openexr()
    _check_windows(OpenEXR, path)
    out = []
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            for part in f.parts:
                # Copied first: the bindings' header dict loses its windows once the pixels are read.
                data, shown = (np.array(part.header[k]) if k in part.header else None
                               for k in ("dataWindow", "displayWindow"))
                name = part.header.get("name") or ""
                out.append((name if isinstance(name, str) else "", _layers(part.channels), data, shown))
    except Exception as e:         # the bindings raise plain RuntimeErrors for damaged files
        raise NodeError(f"cannot read {path} as an EXR image (damaged or cut short?): {e}") from None
    return out


def _listed(parts) -> str:
    return ", ".join(sorted(f"{n}.{c}" if n else c for _, layers, _, _ in parts
                            for n, layer in layers.items() for c in layer)) or "none"


def _first_picture(parts):
    """((linear RGB, alpha or None), data window, display window) of the picture, None when no part has
    colour: a multi-part file (Nuke's, a renderer's passes) shows its first part with colour in it."""
    return next(((_picture(layers), data, shown) for _, layers, data, shown in parts
                 if _picture(layers) is not None), None)


def read_exr(path) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(uint8 sRGB HxWx3, float32 alpha in [0, 1] or None) of the EXR at `path`, in its display window
    (a picture whose data window is smaller, as Nuke writes a bounding box, is black around it)."""
    parts = _parts(path)
    found = _first_picture(parts)
    if found is None:
        raise NodeError(f"{path} holds no colour channels (it has {_listed(parts)}): render or export a layer "
                        f"with R, G, B (or Y) channels, or name the pass to read as `layer` (Depth, Mist, Normal)")
    (rgb, alpha), data, shown = found
    img = _shown(rgb)
    if alpha is not None:
        alpha = np.clip(np.nan_to_num(alpha), 0.0, 1.0)
        # Laid over black in code values (nodes/common/alpha.py), as a PNG's transparency is: both kinds of
        # file then give one element the same frame, and writers of either put its edges back as they were.
        from nodes.common.alpha import from_linear_premultiplied
        img = from_linear_premultiplied(rgb, alpha)
    if data is not None and shown is not None and not np.array_equal(data, shown):
        img, alpha = _in_display_window(img, alpha, data, shown)
    return img, alpha


def read_exr_linear(path) -> np.ndarray:
    """float32 HxWx3 (or x4 with alpha) of the picture read_exr shows, as the file holds it: linear light,
    premultiplied, above 1.0, in the display window (Clip.linear)."""
    found = _first_picture(_parts(path))
    if found is None:
        return read_exr(path)[0]        # says what is wrong
    (rgb, alpha), data, shown = found
    px = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], -1)
    if data is not None and shown is not None and not np.array_equal(data, shown):
        px = _in_display_window(px, None, data, shown)[0]
    return px


def _shown(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB view of linear light, as Nuke's and Blender's Standard view shows it."""
    rgb = np.nan_to_num(rgb, nan=0.0, posinf=1.0, neginf=0.0)
    return to_uint8(linear_to_srgb(np.minimum(rgb, 1.0)))


# What a pass name says its pixels are: a word in the last part of the layer name (CamNormal, an AOV of
# camera-space normals, is normals), or the whole of it (Z).
PASS_WORDS = ("depth", "mist", "normal")
PASS_NAMES = {"z": "depth", "n": "normal"}


def _kind(name: str) -> Optional[str]:
    last = name.rpartition(".")[2].lower()
    return PASS_NAMES.get(last) or next((w for w in PASS_WORDS if w in last), None)


def read_exr_pass(path, layer: str) -> Tuple[str, np.ndarray]:
    """(kind, float32 HxWxC pixels in the display window) of the layer or pass `layer` names in the EXR at
    `path`: "Depth", "ViewLayer.Depth", "Mist", "Normal", a part's name, "Z" for a depth channel beside the
    colour. kind: "depth" (C=1, distance), "mist" (C=1), "normal" (C=3, x y z), "picture" (C=3, linear
    light) or "value" (C=1). A file of one pass (Blender's depth_0001.exr) is that pass whatever its
    channel is called, and its kind is the one `layer` names."""
    parts = _parts(path)
    want = layer.strip().lower()
    found, beside = [], []      # (full name, components, data window, display window)
    for part, layers, data, shown in parts:
        for name, comps in layers.items():
            full = ".".join(n for n in (part, name) if n)
            if want in (full.lower(), name.lower(), name.rpartition(".")[2].lower()):
                found.append((full, comps, data, shown))
            elif "Z" in comps and ("R" in comps or "Y" in comps):     # a Z beside the colour (Nuke, 'Z buffer')
                beside.append((full or "Z", {"Z": comps["Z"]}, data, shown))
    if not found and _kind(want) == "depth":
        found = beside
    if not found:
        # A file of one pass holds one layer (Blender's File Output node writes a vector as R, G, B, A, a
        # value as V); a beauty with a Z beside R, G, B is not one.
        only = [(p, layers, d, s) for p, layers, d, s in parts for _ in layers]
        if len(only) == 1 and _kind(want) and not {"R", "Z"} <= set(next(iter(only[0][1].values()))):
            part, layers, data, shown = only[0]
            name, comps = next(iter(layers.items()))
            found = [(".".join(n for n in (part, name) if n), comps, data, shown)]
        else:
            raise NodeError(f"{path} has no layer or pass {layer!r} (it has {_listed(parts)}): set `layer` to one "
                            f"of them (Depth, Mist, Normal, or a layer's name), or leave it empty for the picture")
    if len({f[0] for f in found}) > 1:
        raise NodeError(f"{path} has more than one layer called {layer!r} ({', '.join(f[0] for f in found)}): "
                        f"give the whole name, as ViewLayer.Depth")
    full, comps, data, shown = found[0]
    kind = _kind(want) or _kind(full)
    pixels = _components(path, full, comps, kind)
    if kind is None:
        kind = "picture" if pixels.shape[2] == 3 else "value"
    if data is not None and shown is not None and not np.array_equal(data, shown):
        pixels = _in_display_window(pixels, None, data, shown)[0]
    return kind, pixels


def _components(path, name: str, comps: dict, kind: Optional[str]) -> np.ndarray:
    """float32 HxWxC of a layer's channels in the order its kind reads them."""
    order = next((o for o in ("RGB", "XYZ") if all(c in comps for c in o)), None)
    if kind == "normal" and order is None:
        raise NodeError(f"{path}: the layer {name} has {', '.join(comps)}, not the three channels of a normal "
                        f"pass (X, Y, Z or R, G, B)")
    if kind in (None, "normal") and order is not None:
        return np.stack([comps[c] for c in order], axis=-1).astype(np.float32)
    one = next((comps[c] for c in ("Z", "V", "Y", "R", "A") if c in comps), next(iter(comps.values())))
    return one.astype(np.float32)[..., None]


def stated_timing(path, fps: float) -> tuple:
    """(frame rate or None, graph_engine.Timecode or None) the EXR at `path` states in the framesPerSecond
    and timeCode attributes write_exr writes, as Nuke does; the timecode is counted at the stated rate, or
    else `fps`."""
    from graph_engine import Timecode
    label = None
    try:
        # Read inside the with: the bindings' header dict empties once the file is closed.
        with _openexr().File(str(path), header_only=True) as f:
            tc, rate = f.header().get("timeCode"), f.header().get("framesPerSecond")
            if tc is not None:
                label = f"{tc.hours:02d}:{tc.minutes:02d}:{tc.seconds:02d}{';' if tc.dropFrame else ':'}{tc.frame:02d}"
    except Exception:           # a damaged header: reading the pixels says what is wrong
        return None, None
    rate = float(rate) if rate and float(rate) > 0 else None
    return rate, (Timecode.parse(label, rate or fps) if label and (rate or fps) > 0 else None)


def display_size(path) -> Optional[Tuple[int, int]]:
    """(width, height) of the first part's display window, from the header alone; None where it cannot be read."""
    try:
        with _openexr().File(str(path), header_only=True) as f:
            (x0, y0), (x1, y1) = np.array(f.parts[0].header["displayWindow"])
    except Exception:           # no bindings, or a damaged header: reading the file says what is wrong
        return None
    return max(int(x1) - int(x0) + 1, 0), max(int(y1) - int(y0) + 1, 0)


# What an EXR's parts may unpack to beyond 64 times the file's size: a render's passes compress a few times over,
# and reading holds every channel of every part at once.
UNPACKED_BYTES = 1 << 30


def _check_windows(OpenEXR, path) -> None:
    """Every part's data and display window within the pixels any image may have, and all of them within what
    the file can hold, from the header alone: reading allocates the data window of every channel of every part
    and _in_display_window the display window, whatever the file holds."""
    from .images import check_pixels
    try:
        with OpenEXR.File(str(path), header_only=True) as f:
            boxes = [np.array(part.header[k]) for part in f.parts for k in ("dataWindow", "displayWindow")
                     if k in part.header]
            # (data window's pixels, its channels' pixel share: subsampled chroma holds one in xSampling*ySampling)
            data = [(_pixels(np.array(part.header["dataWindow"])),
                     sum(1 / max(1, c.xSampling * c.ySampling) for c in part.header.get("channels") or ()))
                    for part in f.parts if "dataWindow" in part.header]
    except Exception:           # a damaged header: reading the file says what is wrong
        return
    for box in boxes:
        check_pixels(path, *_size(box))
    # half floats, the smallest a channel holds: what the file unpacks to is at least this
    unpacked, size = int(sum(2 * pixels * share for pixels, share in data)), Path(path).stat().st_size
    if unpacked > UNPACKED_BYTES + 64 * size:
        channels = int(sum(share for _, share in data))
        raise NodeError(f"{path} is refused: its {len(data)} part(s) state {channels:,} channels that unpack to at "
                        f"least {unpacked:,} bytes from a file of {size:,}, all held in memory as it is read. It is "
                        "damaged or made to fill memory: export the layers you need (Blender, Nuke: one file a pass)")


def _size(box) -> Tuple[int, int]:
    (x0, y0), (x1, y1) = box
    return max(int(x1) - int(x0) + 1, 0), max(int(y1) - int(y0) + 1, 0)


def _pixels(box) -> int:
    w, h = _size(box)
    return w * h


def _in_display_window(img, alpha, data, shown):
    """The pixels (any dtype and channels) of the data window [(x0, y0), (x1, y1)] placed in the display
    window, 0 outside."""
    (dx0, dy0), (sx0, sy0), (sx1, sy1) = data[0], shown[0], shown[1]
    w, h = int(sx1 - sx0 + 1), int(sy1 - sy0 + 1)
    out = np.zeros((h, w) + img.shape[2:], img.dtype)
    a_out = None if alpha is None else np.zeros((h, w), np.float32)
    # Overlap of the data window with the display window, in each one's own pixel coordinates.
    x0, y0 = max(dx0, sx0), max(dy0, sy0)
    x1, y1 = min(dx0 + img.shape[1], sx1 + 1), min(dy0 + img.shape[0], sy1 + 1)
    if x1 > x0 and y1 > y0:
        out[y0 - sy0:y1 - sy0, x0 - sx0:x1 - sx0] = img[y0 - dy0:y1 - dy0, x0 - dx0:x1 - dx0]
        if a_out is not None:
            a_out[y0 - sy0:y1 - sy0, x0 - sx0:x1 - sx0] = alpha[y0 - dy0:y1 - dy0, x0 - dx0:x1 - dx0]
    return out, a_out


def write_exr(img: np.ndarray, path, workflow_yaml: str = "", timecode=None, linear=None, alpha=None) -> None:
    """uint8 sRGB HxWx3 as a half-float linear-light EXR (ZIP compressed, as Nuke and Blender read it),
    carrying the workflow that made it and, for a frame of a plate, its timecode (graph_engine.Timecode),
    in the standard timeCode and framesPerSecond attributes Nuke shows and conforms by. linear: the
    picture's own float pixels (HxWx3, or x4 with alpha: Clip.linear), written instead of img's. alpha:
    float HxW in [0, 1], written as the A channel of img (img is laid over black in code values: the colour
    goes out premultiplied in linear light, as EXR keeps it; nodes/common/alpha.py)."""
    OpenEXR = _openexr()
    if linear is not None:
        lin = np.asarray(linear).astype(np.float16)
    else:
        lin = srgb_to_linear(img.astype(np.float32) / 255.0)
        if alpha is not None:
            # The frame is its colour over black in code values: premultiplied again in linear light.
            from nodes.common.alpha import unpremultiplied
            alpha = np.clip(np.nan_to_num(np.asarray(alpha, np.float32)), 0.0, 1.0)
            straight = unpremultiplied(img, to_uint8(alpha))
            lin = np.concatenate([srgb_to_linear(straight.astype(np.float32) / 255.0) * alpha[..., None],
                                  alpha[..., None]], -1)
        lin = lin.astype(np.float16)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    if workflow_yaml:
        header[KEY] = workflow_yaml
    if timecode is not None:
        from fractions import Fraction
        # hours, minutes, seconds, frame, drop frame, then the flags and user bits SMPTE 12M leaves at 0.
        header["timeCode"] = OpenEXR.TimeCode(*timecode.parts(), int(timecode.drop), *[0] * 13)
        header["framesPerSecond"] = Fraction(timecode.rate).limit_denominator(1001)
    channels = {c: np.ascontiguousarray(lin[..., i]) for i, c in enumerate("RGBA"[:lin.shape[-1]])}
    with OpenEXR.File(header, channels) as f:
        f.write(str(Path(path)))


def world_normals_note(layer: str) -> str:
    """What to know when `layer` is Blender's own Normal pass, "" for any other."""
    if layer.strip().rpartition(".")[2].lower() != "normal":
        return ""
    return ("Blender's Normal pass is in world space, and normal ControlNets take camera-space normals: the "
            "colours are read as if the camera had no rotation, and shift as it turns. Render the normal as an "
            "AOV through a Vector Transform node (World to Camera), named e.g. CamNormal, and read that layer")


class PassPictures:
    """The control pictures (nodes/common/passes.py) of one pass through a sequence of EXR files: a depth
    pass is spread over 0..255 by one range for the whole sequence, found on the first frame asked for."""

    def __init__(self, files, layer: str):
        import threading
        self.files, self.layer = list(dict.fromkeys(files)), layer
        self._range, self._lock = None, threading.Lock()

    def __call__(self, path) -> np.ndarray:
        from nodes.common import passes
        kind, px = read_exr_pass(path, self.layer)
        if kind == "depth":
            return passes.depth_picture(px[..., 0], self.depth_range())
        if kind == "mist":
            return passes.mist_picture(px[..., 0])
        if kind == "normal":
            return passes.normal_picture(px)
        return _shown(px) if kind == "picture" else passes.value_picture(px[..., 0])

    def depth_range(self):
        from nodes.common import passes
        with self._lock:
            if self._range is None:
                self._range = (passes.joined(passes.depth_range(read_exr_pass(f, self.layer)[1][..., 0])
                                             for f in self.files),)
            return self._range[0]
