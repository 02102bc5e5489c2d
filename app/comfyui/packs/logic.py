"""ComfyUI's own value nodes (utils/string, Resolution Selector, Custom Combo, Seed, Number Convert, Color Picker): where every
input is a constant in the file, their results are computed here as ComfyUI's code computes them, and each consumer
gets the value as its own setting. Fed by a value known only when the workflow runs (an LLM's text, a picture's
size), StringConcatenate, RegexExtract and RegexReplace run as Kinograph nodes (text.join, text.regex_extract,
text.regex_replace); the others stay not mapped, saying so."""
from __future__ import annotations

import json
import math
import re
import string
import time
from typing import Any, Dict, Optional, Sequence

from graph_engine.errors import shown
from nodes.math import regex_child
from nodes.math.regex_process import RegexChild
from nodes.math.values import number

from ..flatten import Ref
from ..out import Out

# comfy_extras/nodes_resolution.py's aspect ratios
ASPECT_RATIOS = {"1:1 (Square)": (1, 1), "3:2 (Photo)": (3, 2), "4:3 (Standard)": (4, 3),
                 "16:9 (Widescreen)": (16, 9), "21:9 (Ultrawide)": (21, 9), "2:3 (Portrait Photo)": (2, 3),
                 "3:4 (Portrait Standard)": (3, 4), "9:16 (Portrait Widescreen)": (9, 16)}


def resolution(aspect_ratio: str, megapixels: float, multiple: int = 8, minimum: Optional[int] = None):
    """ResolutionSelector: the ratio's sides scaled to that many megapixels (of 1024 x 1024), each rounded to the
    multiple; the `minimum` its newest version adds (a side under it grows the whole size by the ratio's step)."""
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValueError(f"aspect_ratio {aspect_ratio!r} is not one of ComfyUI's: {', '.join(ASPECT_RATIOS)}")
    if not (isinstance(multiple, int) and multiple > 0):
        raise ValueError(f"multiple {multiple!r} is not a positive whole number")
    w, h = ASPECT_RATIOS[aspect_ratio]
    scale = math.sqrt(float(megapixels) * 1024 * 1024 / (w * h))
    width, height = round(w * scale / multiple) * multiple, round(h * scale / multiple) * multiple
    if minimum is not None and (width < minimum or height < minimum):
        step_w, step_h = multiple // math.gcd(w, multiple), multiple // math.gcd(h, multiple)
        k_step = step_w * step_h // math.gcd(step_w, step_h)
        k = math.ceil(math.ceil(max(minimum / w, minimum / h)) / k_step) * k_step
        width, height = w * k, h * k
    return width, height


# A stranger's file is folded at import, before anyone looks at it, so its string nodes are bounded: a prompt is a
# few thousand characters, and StringConcatenate fed twice by the one before it doubles a text per node (sixty of them
# asked for 2 ** 60 characters, a MemoryError traceback); StringReplace and RegexReplace multiply one text by another.
MAX_TEXT = regex_child.MAX_TEXT
# and every text the file's nodes compute, together (ten thousand nodes of a million characters each)
MAX_FOLDED = 16_000_000
# The time all of a file's regular expressions may take, together. ComfyUI runs them with Python's re too, but only
# when its user presses Queue on a workflow they chose to run; Kinograph matches them on import, and (a|aa)+$ on forty
# characters backtracks for hours in re. Nothing stops re from outside in the same process: an alarm signal reaches
# the main thread only, and a length cap does not help (forty characters suffice). The `regex` package's timeout
# would, but its compiler expands counted repeats (a{100000000} took all memory). So the patterns run in a child
# process (Python's own re, ComfyUI's semantics exactly) that is killed when the time is up, its memory capped.
REGEX_SECONDS = 5.0
# RegexExtract / RegexReplace inputs -> text.regex_extract / text.regex_replace params, for a text known as it runs
_FLAGS = {"case_insensitive": "case_insensitive", "multiline": "multiline", "dotall": "dotall"}
REGEX_EXTRACT = {"string": "text", "regex_pattern": "pattern", "mode": "mode", **_FLAGS, "group_index": "group_index"}
REGEX_REPLACE = {"string": "text", "regex_pattern": "pattern", "replace": "replace", **_FLAGS, "count": "count"}
FOLD = object()
REGEX_DEFAULTS = {"mode": "First Match", "case_insensitive": True, "multiline": False, "dotall": False,
                  "group_index": 1, "count": 0}


_short = regex_child._short


# JsonExtractString tries each '{' in turn, and one opening objects nested to the text's end is read to it: 450 of
# them in a megabyte read 225M characters (8 s, 40 s for four megabytes, minutes for a 64 MB file) on import.
MAX_JSON_READ = 10 * MAX_TEXT


def json_extract(json_string, key) -> str:
    """JsonExtractString: the key's value in the first JSON object the text holds (words or a Markdown fence
    around it are passed over), as str() writes it; '' where it is missing or null, or no object reads. An object
    value comes out as Python prints a dict ({'mu': 0.5}), not JSON: ComfyUI's Ideogram template turns its quotes
    with a StringReplace before a second JsonExtractString reads it, and so must a file that chains two."""
    decoder = json.JSONDecoder()
    read = 0
    for start in re.finditer(r"\{", json_string):
        try:
            data, _ = decoder.raw_decode(json_string, start.start())
        except json.JSONDecodeError as e:
            read += e.pos - start.start()
            if read > MAX_JSON_READ:
                raise ValueError(f"json_string's {len(json_string)} characters hold objects that open and never "
                                 f"close, each read to its end, more than {MAX_JSON_READ} characters in all; no "
                                 f"model's answer is built so") from None
            continue
        except RecursionError:
            raise ValueError("json_string nests deeper than Python's JSON reader goes") from None
        value = data.get(key)
        return "" if value is None else str(value)
    return ""


def compare(a: str, b: str, mode: str, case_sensitive: bool) -> bool:
    """StringCompare: a starts with, ends with or equals b, its case ignored unless case_sensitive."""
    if not case_sensitive:
        a, b = a.lower(), b.lower()
    tests = {"Starts With": a.startswith, "Ends With": a.endswith, "Equal": a.__eq__}
    if mode not in tests:
        raise ValueError(f"mode {mode!r} is not one of ComfyUI's: {', '.join(tests)}")
    return tests[mode](b)


# CreateList splices the lists it is given, so a chain of them may double at each node (2 ** 40 items in 40 nodes of
# a hostile file); ComfyUI's own templates list a few pictures or prompts
MAX_LIST = 4096
# the loop nodes, whose values GetItemFromList may read (not a list known on import)
LOOP_NODES = ("StartLoop", "EndLoop")


def _string(cn_values, name):
    v = cn_values[name]
    return v if isinstance(v, str) else str(v)


def concatenate(a: str, b: str, delimiter: str) -> str:
    """StringConcatenate: a, the delimiter, b (refused past MAX_TEXT characters)."""
    if len(a) + len(b) + len(delimiter) > MAX_TEXT:
        raise ValueError(f"joining texts of {len(a)} and {len(b)} characters makes more than {MAX_TEXT}; no prompt is "
                         f"that long (is this node fed by the one before it twice?)")
    return delimiter.join((a, b))


def replace_text(string: str, find: str, replace: str) -> str:
    """StringReplace: str.replace, refused where the result would pass MAX_TEXT characters."""
    size = len(string) + string.count(find) * (len(replace) - len(find))
    if size > MAX_TEXT:
        raise ValueError(f"replacing {_short(find)} by {_short(replace)} makes a text of {size} characters; no prompt "
                         f"is that long")
    return string.replace(find, replace)


class _CountedFormatter(string.Formatter):
    """str.format, each field's text counted as it is made: every field may stay under MAX_TEXT and their sum not
    ({a:>999999} twenty thousand times, a 240 KB f_string, was 20 GB before the text's length was judged; a value
    of a million characters read by {a} as often, more)."""
    made = 0

    def format_field(self, value, format_spec):
        piece = super().format_field(value, format_spec)
        self.made += len(piece)
        if self.made > MAX_TEXT:
            raise ValueError(f"its fields make more than {MAX_TEXT:,} characters; no prompt is that long")
        return piece


def format_text(f_string: str, values: Dict[str, Any]) -> str:
    """StringFormat: Python's str.format of f_string with its values by letter, as ComfyUI's node. Refused where
    ComfyUI's would fail (a letter no value is linked to, a format the value does not take), and a field wider than
    MAX_TEXT characters ({a:>999999999} asked for a gigabyte on import) or whose format is another value's ({a:{b}}),
    whose width is not known before it is read."""
    for _, field, spec, _ in string.Formatter().parse(f_string):
        # values go by letter (str.format(**values)): a field by position has none, Python's 'tuple index out of
        # range' as the note
        if field is not None and (re.split(r"[.\[]", field, maxsplit=1)[0] or "0").isdecimal():
            raise ValueError(f"f_string has a field by position ({{{field}}}), and StringFormat gives its values by "
                             "letter only: write {a}, {b} ... for the values linked (ComfyUI stops there too)")
        if field is None or not spec:
            continue
        if "{" in spec:
            raise ValueError(f"its field {{{field}:{spec}}} takes its format from another value, which Kinograph "
                             "does not fold on import: write the format out")
        # a width of many digits is past MAX_TEXT whatever they are, and int() refuses 4,300 of them with Python's
        # advice to a programmer (sys.set_int_max_str_digits), which was the import's note
        runs = [n.lstrip("0") for n in re.findall(r"\d+", spec)]
        if any(len(n) > 18 for n in runs):
            raise ValueError(f"its field {{{field}:{_short(spec)}}} asks for a field more than {MAX_TEXT:,} "
                             "characters wide; no prompt is that long")
        wide = max((int(n or 0) for n in runs), default=0)
        if wide > MAX_TEXT:
            raise ValueError(f"its field {{{field}:{spec}}} asks for a field {wide} characters wide; no prompt is "
                             "that long")
    try:
        text = _CountedFormatter().vformat(f_string, (), values)
    except KeyError as e:
        raise ValueError(f"f_string names {{{e.args[0]}}}, and no value is linked to {e.args[0]}: ComfyUI stops "
                         "there too") from None
    except (AttributeError, IndexError) as e:      # {a.x}, {a[9]} of a shorter value
        raise ValueError(f"f_string reads what its value lacks ({e}): ComfyUI stops there too") from None
    if len(text) > MAX_TEXT:
        raise ValueError(f"its text is {len(text)} characters long; no prompt is that long")
    return text


def color_int(color: str):
    """ColorToRGBInt: (r * 65536 + g * 256 + b, the #RRGGBB text, the transparency #RRGGBBAA's last two digits give,
    1.0 without), as ComfyUI's node and its color_util.hex_to_rgb compute them."""
    bad = ValueError(f"color {shown(color)} is not #RRGGBB or #RRGGBBAA (six or eight hexadecimal digits after #): "
                     "ComfyUI's Color Picker refuses it too")
    transparency = 1.0
    if len(color) > 7:
        try:
            transparency = int(color[7:9], 16) / 255.0
        except ValueError:
            raise bad from None
        color = color[:7]
    if len(color) != 7 or color[0] != "#":
        raise bad
    try:
        int(color[1:], 16)
        r, g, b = int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
    except ValueError:
        raise bad from None
    return r * 256 * 256 + g * 256 + b, color, transparency


# comfy_extras/nodes_camera_angle.py: the words its prompt is made of, by sector of the circle around the subject,
# by elevation (the first bound a value is under) and by zoom (0 wide to 10 close)
HORIZONTAL_TERMS = ("front view", "front-right quarter view", "right side view", "back-right quarter view", "back view",
                    "back-left quarter view", "left side view", "front-left quarter view")
VERTICAL_TERMS = ((-15, "low-angle shot"), (15, "eye-level shot"), (45, "elevated shot"), (None, "high-angle shot"))
DISTANCE_TERMS = ((2, "wide shot"), (6, "medium shot"), (None, "close-up"))
# its scene: a camera SUBJECT_DISTANCE from the subject at the origin, its zoom factor 1 (zoom 0) to 1.875 (zoom 10)
SUBJECT_DISTANCE, CAMERA_FOV, ZOOM_FACTORS = 6.0, 35.0, (1.0, 1.875)


def _term(value: float, terms) -> str:
    return next(term for upper, term in terms if upper is None or value < upper)


def camera_angle(horizontal_angle, vertical_angle, zoom):
    """CameraAngle: its camera_info (the camera on a sphere around the subject, for 3D nodes) and its prompt, the shot
    in words ("front-left quarter view elevated shot medium shot"), the angles clamped to its ranges first."""
    h = max(0, min(360, int(horizontal_angle)))
    v = max(-30, min(60, int(vertical_angle)))
    z = max(0.0, min(10.0, float(zoom)))
    yaw, pitch = math.radians(h), math.radians(v)
    info = {"position": {"x": SUBJECT_DISTANCE * math.cos(pitch) * math.sin(yaw),
                         "y": SUBJECT_DISTANCE * math.sin(pitch),
                         "z": SUBJECT_DISTANCE * math.cos(pitch) * math.cos(yaw)},
            "target": {"x": 0.0, "y": 0.0, "z": 0.0},
            "zoom": ZOOM_FACTORS[0] + (ZOOM_FACTORS[1] - ZOOM_FACTORS[0]) * z / 10.0,
            "cameraType": "perspective", "fov": CAMERA_FOV}
    sector = int(((h % 360) + 22.5) // 45) % len(HORIZONTAL_TERMS)
    return info, f"{HORIZONTAL_TERMS[sector]} {_term(v, VERTICAL_TERMS)} {_term(z, DISTANCE_TERMS)}"


class LogicNodes:
    def known(self, cn, names: Sequence[str], defaults: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The node's inputs, where every one is a constant in the file (None: the node is made a placeholder,
        saying which input is only known as the workflow runs, or lacking)."""
        values = {}
        for name in names:
            v = self.resolve(cn.inputs[name]) if name in cn.inputs else defaults.get(name)
            if name not in cn.inputs and v is None:
                self.placeholder(cn)
                self.report.entries[cn.id].notes.append(f"its {name} input is missing (nothing linked to it, no "
                                                        "value in the file), which ComfyUI refuses too")
                return None
            if v is None or isinstance(v, Out):
                self.not_constant(cn, f"{name} input")
                return None
            values[name] = v
        return values

    def computed(self, cn, compute) -> Optional[list]:
        """Run `compute`; the values it gives become the node's outputs (slot by slot), or a value ComfyUI's node
        would refuse too (an unknown aspect ratio, a number it cannot read) the report's note."""
        try:
            results = compute()
            self._folded = getattr(self, "_folded", 0) + sum(len(r) for r in results if isinstance(r, str))
            if self._folded > MAX_FOLDED:
                raise ValueError(f"the file's string nodes compute more than {MAX_FOLDED} characters in all; no "
                                 f"workflow's prompts are that long")
        except (ValueError, TypeError, IndexError, OverflowError) as e:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(str(e))
            return None
        for slot, value in enumerate(results):
            self.outs[(cn.id, slot)] = Out(None, {"value": value})
        return []

    def running_math(self, cn, params, values):
        """A formula of values known only as the workflow runs (a picture's size from video.size): math.expression,
        those values linked into its letters, the constants typed in; its float, int and bool outputs are
        ComfyMathExpression's FLOAT, INT and BOOL."""
        from nodes.math.expr import names
        from nodes.math.nodes import LETTERS
        others = [k for k in values if k not in LETTERS]
        if others or any(v is None or isinstance(v, Out) and not v.port or isinstance(v, str)
                         for v in values.values()):
            return self.not_constant(cn, "input values" if not others else
                                     f"formula uses {', '.join(others)}: math.expression takes a to d, and these")
        if "values" in names(params.get("expression", "")) and set(values) != set(LETTERS):
            # ComfyUI's `values` lists the letters the node has; math.expression's all four, unused ones 0
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(
                f"its formula reads `values`, the list of its letters ({', '.join(sorted(values))}), where "
                "math.expression's lists a, b, c and d, 0 where unused: write the letters out (min(values) of a "
                "and b as min(a, b))")
            return None
        nid = self.add("math.expression", cn, {"expression": params.get("expression", ""),
                                               **{k: v for k, v in values.items() if not isinstance(v, Out)}})
        for k, v in values.items():
            if isinstance(v, Out):
                self.graph.connect(*v.port, nid, k)
        for slot, port in enumerate(("float", "int", "bool")):
            self.outs[(cn.id, slot)] = Out((nid, port))
        return [nid]

    def running_join(self, cn, values):
        """A StringConcatenate of a text known only as the workflow runs (WanDancer's frame-rate words): text.join,
        the running texts linked into it, the constants typed in."""
        ports = {"string_a": "a", "string_b": "b", "delimiter": "delimiter"}
        if any(x is None or isinstance(x, Out) and not x.port for x in values.values()):
            return self.not_constant(cn, "input values")
        nid = self.add("text.join", cn, {ports[k]: x if isinstance(x, str) else str(x) for k, x in values.items()
                                         if not isinstance(x, Out)})
        for k, x in values.items():
            if isinstance(x, Out):
                self.graph.connect(*x.port, nid, ports[k])
        self.outs[(cn.id, 0)] = Out((nid, "text"))
        return [nid]

    def timed_regex(self, function, *args):
        """regex_child's regex_extract or regex_replace in what is left of the file's REGEX_SECONDS (ten thousand
        regex nodes must not take the whole time each)."""
        left = getattr(self, "_regex_left", REGEX_SECONDS)
        if left <= 0:
            raise ValueError(f"the file's regular expressions took more than {REGEX_SECONDS:g} s in all; this one "
                             f"({_short(str(args[1]))}) was not tried")
        if getattr(self, "_regex", None) is None:
            self._regex = RegexChild()
        start = time.monotonic()
        try:
            return self._regex.call(function, args, left, "left to the file's patterns")
        finally:
            self._regex_left = left - (time.monotonic() - start)

    def close_regex(self) -> None:
        """End the file's regex child, if it started one."""
        if getattr(self, "_regex", None) is not None:
            self._regex.close()

    def special_resolution(self, cn, rule, params, notes):
        v = self.known(cn, ("aspect_ratio", "megapixels", "multiple"), {"aspect_ratio": "1:1 (Square)",
                                                                          "megapixels": 1.0, "multiple": 8})
        if v is None:
            return None
        minimum = self.resolve(cn.inputs.get("minimum"))
        return self.computed(cn, lambda: resolution(v["aspect_ratio"], v["megapixels"], v["multiple"],
                                                    minimum if isinstance(minimum, int) else None))

    def special_concatenate(self, cn, rule, params, notes):
        names = ("string_a", "string_b", "delimiter")
        values = {k: self.resolve(cn.inputs[k]) for k in names if k in cn.inputs}
        if any(isinstance(x, Out) and x.port for x in values.values()):
            return self.running_join(cn, values)
        v = self.known(cn, names, {"delimiter": ""})
        return None if v is None else self.computed(
            cn, lambda: (concatenate(_string(v, "string_a"), _string(v, "string_b"), _string(v, "delimiter")),))

    def special_replace(self, cn, rule, params, notes):
        v = self.known(cn, ("string", "find", "replace"), {})
        return None if v is None else self.computed(
            cn, lambda: (replace_text(_string(v, "string"), _string(v, "find"), _string(v, "replace")),))

    def running_regex(self, cn, kind: str, names: Dict[str, str], defaults: Dict[str, Any]):
        """A RegexExtract / RegexReplace of a text known only as the workflow runs (an LLM's answer): `kind`
        (text.regex_extract / text.regex_replace), the running values linked in, the constants typed in; FOLD where
        no input runs (the node is folded on import)."""
        values = {k: self.resolve(cn.inputs[k]) if k in cn.inputs else defaults.get(k) for k in names}
        for k, x in values.items():
            src = cn.inputs.get(k)
            if isinstance(x, Out) and x.port and self.port_type(x.port) != "STRING" and isinstance(src, Ref) and \
                    (src.node, src.slot) in self.shown_ports:
                # a PreviewAny hands on what it shows: a number's text (math.show's), as ComfyUI's str() writes it
                values[k] = Out(self.shown_ports[(src.node, src.slot)])
        if not any(isinstance(x, Out) and x.port for x in values.values()):
            return FOLD
        if any(x is None or isinstance(x, Out) and not x.port for x in values.values()):
            return self.not_constant(cn, "input values")
        nid = self.add(kind, cn, {names[k]: x for k, x in values.items() if not isinstance(x, Out)})
        for k, x in values.items():
            if isinstance(x, Out):
                self.graph.connect(*x.port, nid, names[k])
        self.outs[(cn.id, 0)] = Out((nid, "text"))
        return [nid]

    def special_regex_extract(self, cn, rule, params, notes):
        made = self.running_regex(cn, "text.regex_extract", REGEX_EXTRACT, REGEX_DEFAULTS)
        if made is not FOLD:
            return made
        v = self.known(cn, ("string", "regex_pattern", "mode", "case_insensitive", "multiline", "dotall",
                            "group_index"), {"mode": "First Match", "case_insensitive": True, "multiline": False,
                                             "dotall": False, "group_index": 1})
        return None if v is None else self.computed(cn, lambda: (self.timed_regex(
            "regex_extract", _string(v, "string"), _string(v, "regex_pattern"), v["mode"], v["case_insensitive"],
            v["multiline"], v["dotall"], int(v["group_index"])),))

    def special_regex_replace(self, cn, rule, params, notes):
        made = self.running_regex(cn, "text.regex_replace", REGEX_REPLACE, REGEX_DEFAULTS)
        if made is not FOLD:
            return made
        v = self.known(cn, ("string", "regex_pattern", "replace", "case_insensitive", "multiline", "dotall", "count"),
                       {"case_insensitive": True, "multiline": False, "dotall": False, "count": 0})
        return None if v is None else self.computed(cn, lambda: (self.timed_regex(
            "regex_replace", _string(v, "string"), _string(v, "regex_pattern"), _string(v, "replace"),
            v["case_insensitive"], v["multiline"], v["dotall"], int(v["count"])),))

    def special_json_extract(self, cn, rule, params, notes):
        v = self.known(cn, ("json_string", "key"), {})
        return None if v is None else self.computed(
            cn, lambda: (json_extract(_string(v, "json_string"), _string(v, "key")),))

    def special_compare(self, cn, rule, params, notes):
        v = self.known(cn, ("string_a", "string_b", "mode", "case_sensitive"), {"case_sensitive": True})
        return None if v is None else self.computed(cn, lambda: (compare(
            _string(v, "string_a"), _string(v, "string_b"), v["mode"], bool(v["case_sensitive"])),))

    def special_create_list(self, cn, rule, params, notes):
        """CreateList: its linked inputs in order, a list inside spliced in (ComfyUI adds each input's list); what
        each item is (a clip, a number, a model) is kept for GetItemFromList to hand on. Nothing runs: a node
        reading the whole list (ComfyUI runs it once per item) gets nothing and says so."""
        keys = sorted((k for k in cn.inputs if k.startswith("inputs.") and cn.inputs[k] is not None),
                      key=lambda k: int(re.sub(r"\D", "", k) or 0))
        items = []
        for k in keys:
            v = self.resolve(cn.inputs[k])
            part = v.attrs["list"] if isinstance(v, Out) and "list" in v.attrs else [v]
            if len(items) + len(part) > MAX_LIST:
                self.placeholder(cn)
                self.report.entries[cn.id].notes.append(
                    f"its list would hold {len(items) + len(part)} items; Kinograph folds lists of up to {MAX_LIST} "
                    "on import")
                return None
            items += part
        self.outs[(cn.id, 0)] = Out(None, {"list": items})
        return []

    def special_item_from_list(self, cn, rule, params, notes):
        """GetItemFromList: the item at index (from the end where negative) of a CreateList's list; anything
        else linked is a list of one, as ComfyUI reads it. A loop's carried values are not known on import."""
        link = cn.inputs.get("list")
        src = self.flat.nodes.get(link.node) if isinstance(link, Ref) else None
        if src is not None and src.class_type in LOOP_NODES:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(
                f"its list comes from the loop's {src.class_type} #{src.id}, which is not unrolled (its line says "
                "why)")
            return None
        v = self.known(cn, ("index",), {"index": 0})
        if v is None:
            return None
        whole = self.resolve(link)
        items = whole.attrs["list"] if isinstance(whole, Out) and "list" in whole.attrs else [whole]
        index = v["index"]
        if link is None or not isinstance(index, int) or not -len(items) <= index < len(items):
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(
                f"index {index!r} is not an item of its list of {len(items)} (0 to {len(items) - 1}, or -1 for the "
                "last): ComfyUI stops there too")
            return None
        item = items[index]
        if item is None:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(f"item {index} of its list comes from a node that did not "
                                                    "convert")
            return None
        self.outs[(cn.id, 0)] = item if isinstance(item, Out) else Out(None, {"value": item})
        return []

    def special_string_format(self, cn, rule, params, notes):
        """StringFormat: its letters (values.a ...) as linked, those left unlinked absent, as ComfyUI's Autogrow
        hands them; a letter known only as the workflow runs leaves it not mapped."""
        values = {k.split(".", 1)[1]: self.resolve(v) for k, v in cn.inputs.items()
                  if k.startswith("values.") and v is not None}
        if any(not isinstance(v, (str, int, float, bool)) for v in values.values()):
            return self.not_constant(cn, "input values")
        v = self.known(cn, ("f_string",), {"f_string": "{a}"})
        return None if v is None else self.computed(cn, lambda: (format_text(_string(v, "f_string"), values),))

    def special_color_int(self, cn, rule, params, notes):
        v = self.known(cn, ("color",), {})
        return None if v is None else self.computed(cn, lambda: color_int(_string(v, "color")))

    def special_custom_combo(self, cn, rule, params, notes):
        """CustomCombo: the option picked and its index (the file keeps both; the options after them are the
        editor's list)."""
        v = self.known(cn, ("choice", "index"), {"index": 0})
        return None if v is None else self.computed(cn, lambda: (_string(v, "choice"), int(v["index"])))

    def special_preview_any(self, cn, rule, params, notes):
        """PreviewAny's output is the text it shows: a number or switch as str() writes it (7, 0.5, True), or the
        text a node writes as it runs (a prompt enhancer's, which Krea 2's templates preview on its way to the
        prompt). What it shows of a value (a number, a switch, a text) math.show shows in the run's log: linked to
        the node that computes it, or the constant typed in."""
        from nodes.math.values import shown
        source = cn.inputs.get("source")
        v = self.resolve(source)
        if isinstance(v, (str, int, float, bool)):
            self.outs[(cn.id, 0)] = Out(None, {"value": shown(v)})
        elif isinstance(v, Out) and v.port is not None:
            self.outs[(cn.id, 0)] = v
        port = self.shown_ports.get((source.node, source.slot)) if isinstance(source, Ref) else None
        if port is None and isinstance(v, Out) and v.port is not None and self.is_value_port(v.port):
            port = v.port
        if port is not None:
            nid = self.add("math.show", cn, {})
            self.graph.connect(*port, nid, "value")
        elif isinstance(v, (str, int, float, bool)):
            nid = self.add("math.show", cn, {"text": shown(v)})
        else:
            return None
        self.shown_ports[(cn.id, 0)] = (nid, "text")      # a preview of this preview shows its text
        return [nid]

    def port_type(self, port) -> str:
        """The type name of a Kinograph node's output ("" where the registry does not say)."""
        spec = self.registry.get(self.graph.nodes[port[0]].type) if self.registry is not None else None
        out = spec.outputs.get(port[1]) if spec is not None else None
        return "" if out is None else out.type.name

    def is_value_port(self, port) -> bool:
        """Whether a Kinograph output gives a number, a switch or a text (what math.show shows; pictures show in
        the viewer)."""
        return self.port_type(port) in ("INT", "FLOAT", "BOOL", "STRING", "ANY")

    def is_number_port(self, port) -> bool:
        return self.port_type(port) in ("INT", "FLOAT")

    def is_shown(self, cn) -> bool:
        """Whether a PreviewAny shows one of the node's outputs."""
        return any(self.flat.nodes[c].class_type == "PreviewAny" for c in self.consumers.get(cn.id, ())
                   if c in self.flat.nodes)

    def special_preview_image(self, cn, rule, params, notes):
        """PreviewImage's (and MaskPreview's) output, where a workflow reads it: the pictures (mask) it shows."""
        v = self.resolve(cn.inputs.get("images", cn.inputs.get("mask")))
        if isinstance(v, Out) and v.port is not None:
            self.outs[(cn.id, 0)] = v

    def special_camera_angle(self, cn, rule, params, notes):
        v = self.known(cn, ("horizontal_angle", "vertical_angle", "zoom"),
                       {"horizontal_angle": 0, "vertical_angle": 0, "zoom": 5.0})
        return None if v is None else self.computed(
            cn, lambda: camera_angle(v["horizontal_angle"], v["vertical_angle"], v["zoom"]))

    def special_number_convert(self, cn, rule, params, notes):
        """ComfyNumberConvert: computed where its value is a constant (math.number_convert beside it where a
        PreviewAny shows what it gives), math.number_convert where the value is known only as the workflow runs."""
        source = self.resolve(cn.inputs.get("value"))
        if isinstance(source, Out) and source.port is not None:
            nid = self.add("math.number_convert", cn, {})
            self.graph.connect(*source.port, nid, "value")
            for slot, port in enumerate(("float", "int")):
                self.outs[(cn.id, slot)] = Out((nid, port))
            return [nid]
        v = self.known(cn, ("value",), {})
        made = None if v is None else self.computed(cn, lambda: number(v["value"]))
        if made is None or not self.is_shown(cn):
            return made
        value = v["value"]
        text = str(int(value)) if isinstance(value, bool) else str(value)
        nid = self.add("math.number_convert", cn, {"text": text})
        for slot, port in enumerate(("float", "int")):
            self.shown_ports[(cn.id, slot)] = (nid, port)
        return [nid]
