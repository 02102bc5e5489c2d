"""Deforum's ControlNet units (cn_1 .. cn_5, sd-webui-controlnet's settings as Deforum saves them) as control.apply
nodes chained on the model the loop samples with: each unit's video (or picture) steers frame k by its frame k, as
Deforum extracts frames 0 .. max_frames-1 of it and hands frame k to the unit at frame k."""
from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import List

from ..comfyui.report import APPROX, EXACT, UNMAPPED

UNITS = 5
STILLS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")      # Deforum copies a picture as the unit's one frame
# sd-webui-controlnet's preprocessors control.apply makes itself
MODULES = {"none": "none", "": "none", "canny": "canny"}
# nodes that make the control video of the preprocessors it does not, for the report
MAKE_IT = {"openpose": "pose.dwpose", "dw_openpose": "pose.dwpose", "lineart": "a lineart node",
           "softedge": "a soft-edge node", "scribble": "a soft-edge node", "seg": "a segmentation node"}


def unit_enabled(builder, i: int) -> bool:
    from .convert import _is_on
    return _is_on(bool, builder.get(f"cn_{i}_enabled", False))


def add_controlnets(b) -> str:
    """control.apply for every enabled unit Kinograph can run, chained from the model; returns the node whose
    `model` output the loop takes. A unit left out is one report line saying why and what to use instead."""
    src = "model"
    for i in range(1, UNITS + 1):
        if unit_enabled(b, i):
            src = _unit(b, i, src)
    return src


def _unit(b, i: int, src: str) -> str:
    from .convert import DeforumSettingError, _is_on, local_path
    p = f"cn_{i}_"
    key = f"cn_{i}_enabled, cn_{i}_model, cn_{i}_module, cn_{i}_vid_path"
    # A1111 names a ControlNet by its file name and hash: "control_v11f1p_sd15_depth [cfd03158]"
    model = re.sub(r"\s*\[[0-9a-fA-F]+\]\s*$", "", str(b.get(p + "model", "") or "")).strip()
    module = str(b.get(p + "module", "none") or "none").strip().lower()
    video = str(b.get(p + "vid_path", "") or "").strip()
    if model in ("", "None"):
        b.entry(key, UNMAPPED, [], f"ControlNet unit {i} names no model ({p}model): choose its ControlNet file")
        return src
    if _is_on(bool, b.get(p + "loopback_mode", False)):
        b.entry(key, UNMAPPED, [], f"ControlNet unit {i} in loopback mode (the previous frame as its control picture) "
                "is not imported: give it a control video (cn_vid_path) and import again")
        return src
    if not video:
        b.entry(key, UNMAPPED, [], f"ControlNet unit {i} has no control video ({p}vid_path), so Deforum runs without "
                "it too")
        return src
    preprocessor = MODULES.get(module, "depth" if module.startswith("depth") else None)
    if preprocessor is None:
        maker = next((v for k, v in MAKE_IT.items() if module.startswith(k)), "the node that makes it")
        b.entry(key, UNMAPPED, [], f"ControlNet unit {i}: the {module!r} preprocessor is not imported: make the control "
                f"video with {maker}, feed it to control.apply with preprocessor none, and put that model before the "
                "loop")
        return src
    path, note = local_path(video)
    still = PurePosixPath(path).suffix.lower() in STILLS
    loader = f"controlnet{i}_video"
    if still:
        b.add("io.load_image", loader, {"path": path}, (840, -200 * i))
    else:
        b.add("io.load_video", loader, {"path": path, "count": b.frames}, (840, -200 * i))
    notes: List[str] = [note]
    params = {"path": model, "preprocessor": preprocessor}
    for name, param, default, lo, hi in (("weight", "strength", "0:(1)", 0, 2), ("guidance_start", "start", "0:(0.0)",
                                                                                 0, 1),
                                         ("guidance_end", "end", "0:(1.0)", 0, 1)):
        c = b.per_frame(p + name, default, lo, hi, f"ControlNet {name.replace('_', ' ')}")
        params[param] = round(c.values[0], 6)
        if c.constant is None:
            notes.append(f"{p}{name} changes over the clip: its frame-0 value {c.values[0]:g} for every frame")
    if (params["start"], params["end"]) != (0.0, 1.0):
        notes.append("start and end are shares of the noise levels here, of the steps in A1111")
    if preprocessor == "canny":
        for name, param, default in (("threshold_a", "low", 100), ("threshold_b", "high", 200)):
            v = b.number(p + name, default)
            if not 0 <= v <= 255:
                raise DeforumSettingError(f"{p}{name}: canny threshold {v:g} is outside 0..255")
            params[param] = int(round(v))
        notes.append("edges of the grey picture at its own size (A1111 finds them at processor_res)")
    elif preprocessor == "depth":
        notes.append(f"a luminance depth proxy (brighter = nearer), not {module}: for its depth, make the video with "
                     "depth.estimate and set preprocessor none")
    mode = str(b.get(p + "control_mode", "Balanced") or "Balanced")
    if mode != "Balanced":
        notes.append(f"control_mode {mode!r} is read as Balanced")
    resize = str(b.get(p + "resize_mode", "Inner Fit (Scale to Fit)") or "")
    if resize != "Just Resize" and not still:
        notes.append(f"a control video of another shape is stretched to the picture ({resize!r} fits it)")
    if str(b.get(p + "mask_vid_path", "") or "").strip():
        notes.append(f"{p}mask_vid_path is not imported")
    node = f"controlnet{i}"
    b.add("control.apply", node, params, (1120, -200 * i))
    b.link(src, "model", node, "model")
    b.link(loader, "image" if still else "video", node, "video")
    approx = any(n for n in notes)
    b.entry(key, APPROX if approx else EXACT, [f"{node}.path", f"{node}.strength", f"{loader}.path"],
            "the control picture steers every frame" if still else "frame k of the control video steers frame k", *notes)
    return node
