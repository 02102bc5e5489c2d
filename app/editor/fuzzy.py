"""Fuzzy ranking for the node search: letters in order, rewarded for word starts and runs.

"resz" finds Resize, "sv vid" finds Save Video, and a word of the help text ("orbit")
finds the node that mentions it."""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

SEPARATORS = " ._-/:()"


def _boundary(text: str, i: int) -> bool:
    return i == 0 or text[i - 1] in SEPARATORS or (text[i].isupper() and text[i - 1].islower())


def score(query: str, text: str) -> Optional[float]:
    """Higher is better; None when the letters of `query` do not occur in order in `text`."""
    if not query:
        return 0.0
    q, low = query.lower(), text.lower()
    best = None
    start = low.find(q[0])
    while start != -1:
        s, prev, i = 0.0, -2, start
        for ch in q:
            i = low.find(ch, i)
            if i == -1:
                break
            s += 10
            if _boundary(text, i):
                s += 8
            if i == prev + 1:
                s += 6
            elif prev >= 0:
                s -= min(6, i - prev - 1)
            prev, i = i, i + 1
        else:
            best = s if best is None else max(best, s)
        start = low.find(q[0], start + 1)
    if best is None:
        return None
    if q in low:
        best += 20 + (15 if low.startswith(q) else 0)
    return best - len(text) * 0.05


# What artists type for a task, and the word the nodes use for it.
ALIASES = {
    "slow motion": "interpolation", "slow-mo": "interpolation", "slowmo": "interpolation",
    "frame rate": "interpolation", "in-between": "interpolation", "tween": "interpolation",
    "upres": "upscale", "super resolution": "upscale", "enlarge": "upscale",
    "txt2vid": "sample", "text to video": "sample", "ksampler": "sample",
    "img2vid": "image", "style": "stylize", "flicker": "deflicker",
    "color correct": "grade", "colour correct": "grade", "colorcorrect": "grade", "reformat": "resize",
    # "normal map", not "normal": the one word also starts Normalize (latent.normalize_start), which outranked
    # the normal-map nodes
    "surface normals": "normal map", "surface normal": "normal map", "bump map": "normal map",
    "normalmap": "normal map",
    # Nuke's and Blender's names for the nodes they have in common with Kinograph: 'read' found Repeat
    # Noise first, 'merge', 'kronos', 'keylight' and 'framerange' nothing.
    "read": "io.load", "write": "save", "merge": "over", "alpha over": "over", "appendclip": "concat",
    "append clip": "concat", "framerange": "trim", "frame range": "trim", "framehold": "frame of video",
    "frame hold": "frame of video", "kronos": "interpolation", "oflow": "interpolation",
    "timewarp": "interpolation", "keyer": "key", "keylight": "key", "primatte": "key", "keying": "key",
    "green screen": "key", "roto": "track points", "rotoscope": "track points", "tracker": "track", "movie clip": "load video",
    "file output": "save", "color balance": "cdl", "colour balance": "cdl",
    "sound": "audio", "music": "audio",
    # A camera move over a still, as editors, Deforum and Blender users name it: nothing matched them
    "ken burns": "camera", "push in": "camera", "pull out": "camera", "2.5d": "parallax",
    # 'chroma key' found the Chroma image model first; a camera solved from footage, and bars added to fit a frame,
    # nothing
    "chroma key": "matte", "matchmove": "da3 camera", "camera solve": "da3 camera", "solve camera": "da3 camera",
    "camera tracking": "da3 camera", "letterbox": "resize pad", "pillarbox": "resize pad",
}
_ALIAS = re.compile("|".join(rf"\b{re.escape(p)}\b" for p in sorted(ALIASES, key=len, reverse=True)))


def expand(query: str) -> str:
    """Task words read as the nodes' words, whole words only: 'flicker' inside 'deflicker' became
    'dedeflicker', and the node's own name found nothing."""
    return _ALIAS.sub(lambda m: ALIASES[m.group(0)], query.lower())


def rank(query: str, items: Iterable[object], fields) -> List[Tuple[float, object]]:
    """Items whose every query word matches one of `fields(item)` = [(text, weight, fuzzy?)];
    non-fuzzy fields (long help text) match whole substrings only. Task words ("slow motion")
    are read as the nodes' words ("interpolation") first, then as typed: 'metrics.flicker' read only
    as 'metrics.deflicker' and 'style model' as 'stylize model' found nothing, the nodes' own names."""
    asked = [q.split() for q in dict.fromkeys((expand(query), query.lower()))]
    out = []
    for item in items:
        got = next(((i, t) for i, t in enumerate(_total(words, item, fields) for words in asked) if t is not None),
                   None)
        if got is not None:
            out.append((got, item))
    out.sort(key=lambda p: (p[0][0], -p[0][1]))
    return [(t, item) for (_, t), item in out]


def _total(words: List[str], item, fields) -> Optional[float]:
    """The item's score for every word matched, None where one is not."""
    total = 0.0
    for w in words:
        got = None
        for text, weight, fuzzy in fields(item):
            s = score(w, text) if fuzzy else _substring(w, text)
            if s is not None:
                got = s * weight if got is None else max(got, s * weight)
        if got is None:
            return None
        total += got
    return total


def _substring(word: str, text: str) -> Optional[float]:
    """A whole-substring match, a whole word scoring above a part of one: 'CLIPTextEncode' is ComfyUI's
    CLIPTextEncode (encode.text) before it is part of CLIPTextEncodeSDXL (encode.sdxl)."""
    w, low = word.lower(), text.lower()
    if w not in low:
        return None
    return 10.0 * len(w) + (5.0 if w in low.split() else 0.0)


_COMFYUI: Optional[Dict[str, str]] = None


def comfyui_names(node_type: str) -> str:
    """The ComfyUI nodes that become `node_type` when a ComfyUI workflow is imported, as one line
    ('CheckpointLoaderSimple CheckpointLoader ...'), from the importer's own table."""
    return " ".join(comfyui_classes(node_type))


def comfyui_classes(node_type: str) -> List[str]:
    """Those ComfyUI nodes one by one: some names have spaces (WAS's 'Image Resize')."""
    global _COMFYUI
    if _COMFYUI is None:
        from app.comfyui.mapping import RULES
        names: Dict[str, List[str]] = {}
        for cls, rule in RULES.items():
            if rule.node and rule.kind == "run":
                names.setdefault(rule.node, []).append(cls)
        _COMFYUI = names
    return list(_COMFYUI.get(node_type, ()))


def comfyui_instead(query: str) -> str:
    """Where the job of the ComfyUI node `query` names (its class, as typed in ComfyUI's search) is done when it
    has no Kinograph node to add: folded into the node it feeds, a preview, a note, a reroute, a constant. '' when
    `query` names no such node. Someone coming from ComfyUI typed PreviewImage, FluxGuidance or Note and got
    'No node matches' or unrelated nodes."""
    from app.comfyui.flatten import NOTES, REROUTES
    from app.comfyui.mapping import RULES
    # Spaces aside: ComfyUI's search lists PreviewImage as 'Preview Image', and that is what was typed.
    typed = "".join(query.split()).lower()
    cls = next((c for c in (*RULES, *NOTES, *REROUTES, "PrimitiveNode") if "".join(c.split()).lower() == typed), None)
    rule = RULES.get(cls)
    if cls is None or (rule is not None and rule.node):
        return ""
    said = f"ComfyUI's {cls} is no node in Kinograph"
    if cls in NOTES:
        return f"{said}: add a sticky note with N on the canvas (Node > Add Sticky Note)"
    if cls in REROUTES:
        return f"{said}: File > Open joins the wires through it; double-click a link to add a reroute point"
    if cls == "PrimitiveNode" or rule.special == "constant":
        return f"{said}: type its value in the field it fed (File > Open puts it there)"
    if rule.kind == "ui":
        see = "; V on a node shows its output there" if "viewer" in rule.note else ""
        return f"{said}: {rule.note or 'it only shows something in ComfyUI'}{see}"
    becomes = "; ".join(f"{p.comfy} becomes its {p.param}" for p in rule.params)
    return f"{said}: File > Open folds it into the node it feeds" + (f" ({becomes})" if becomes else "")


def spec_fields(spec) -> Sequence[Tuple[str, float, bool]]:
    # The ComfyUI names too, whole words only: 'CLIPTextEncode', 'EmptyLatentImage' and
    # 'CheckpointLoaderSimple', typed by someone coming from ComfyUI, found nothing.
    return ((spec.title, 1.0, True), (spec.type, 0.9, True), (spec.category, 0.6, True),
            (comfyui_names(spec.type), 0.9, False), (spec.help, 0.3, False))
