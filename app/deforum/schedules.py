"""Deforum's keyframe strings and prompt dictionaries, rewritten in Kinograph's schedule syntax.

Deforum writes `0:(1.0), 30:(1.02)`, as Kinograph does, but reads it differently in three ways that
change the animation, so the text is rewritten rather than copied:

- A keyframe's frame may be an expression of `max_f` (the last frame), quoted: `"max_f-1":(0)`.
- Values may name `max_f` and `s` (the seed), and numexpr's functions (`arcsin`, `where`, ...).
- A keyframe whose value is an expression holds that expression, evaluated at every frame, until the
  next keyframe; Kinograph crossfades two keyframes, so those segments are written with `hold`.
  Keyframes with plain numbers are linear in between in both.

Prompts: Deforum switches to a keyframe's prompt at its frame (no blend); Kinograph blends keyframed
prompts, so a keyframe on the frame before each switch repeats the previous prompt."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from graph_engine.schedule import MAX_TEXT, ScheduleError, compile_expression, parse_schedule

# numexpr's spellings (Deforum evaluates with numexpr) -> Kinograph's
_RENAMES = {"arcsin": "asin", "arccos": "acos", "arctan2": "atan2", "arctan": "atan"}


class DeforumValueError(ValueError):
    """A setting Deforum would read that cannot be read here; the message names what is wrong."""


@dataclass
class Converted:
    text: str                # Kinograph schedule text
    values: List[float]      # its value at every frame 0 .. frames-1
    exact: bool = True       # False: a part of it could not be kept (note says what)
    note: str = ""

    @property
    def constant(self) -> Optional[float]:
        return self.values[0] if all(v == self.values[0] for v in self.values) else None


def _split_keyframes(text: str) -> List[Tuple[str, str]]:
    """`0:(1), "max_f-1":(2)` -> [("0", "1"), ("max_f-1", "2")]. A value's parentheses may nest (function calls)
    and hold commas; an unparenthesised value runs to the next comma."""
    out: List[Tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        if text[i] in "\"'":
            end = text.find(text[i], i + 1)
            if end < 0:
                raise DeforumValueError(f"the frame {text[i:]!r} opens a quote that is never closed")
            frame, i = text[i + 1:end], end + 1
        else:
            m = re.match(r"[^:,()]*", text[i:])
            frame = m.group(0)
            i += len(frame)
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != ":":
            raise DeforumValueError(f"expected FRAME:(VALUE) keyframes such as '0:(1.0), 30:(1.5)', found "
                                    f"{text[max(0, i - len(frame)):][:40]!r}")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == "(":
            depth, j, quote = 0, i, None
            while j < n:
                c = text[j]
                if quote:
                    quote = None if c == quote else quote
                elif c in "\"'":
                    quote = c
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise DeforumValueError(f"the value of keyframe {frame.strip()} opens a parenthesis that is "
                                        "never closed")
            value, i = text[i + 1:j], j + 1
        else:
            m = re.match(r"[^,]*", text[i:])
            value = m.group(0)
            i += len(value)
        out.append((frame.strip(), value.strip()))
    if not out:
        raise DeforumValueError("the schedule is empty; Deforum writes keyframes such as '0:(1.0)'")
    return out


def _substitute(expr: str, max_f: int, seed: int) -> str:
    """Deforum's variables as numbers, numexpr's function names as Kinograph's."""
    expr = re.sub(r"\bmax_f\b", f"({max_f})", expr)
    expr = re.sub(r"\bs\b", f"({seed})", expr)
    return re.sub(r"\b(arcsin|arccos|arctan2|arctan)\b(?=\s*\()", lambda m: _RENAMES[m.group(1)], expr)


def frame_number(text: str, max_frames: int) -> int:
    """A keyframe's frame: a whole number, or an expression of max_f (`max_f/2`, `max_f-1`) as Deforum allows."""
    text = text.strip().strip("\"'")
    if text.isdecimal():
        return int(text)
    try:
        v = compile_expression(_substitute(text, max_frames - 1, 0))(0)
    except ScheduleError as e:
        raise DeforumValueError(f"the keyframe frame {text!r} is not a number or an expression of max_f "
                                f"({e.message})") from None
    if not math.isfinite(v) or v < 0:
        raise DeforumValueError(f"the keyframe frame {text!r} comes to {v:g}, not a frame")
    return int(v)


def finite(v) -> bool:
    """math.isfinite, and False for an integer past a float's range (a 400-digit seed in a settings file), which it
    raised OverflowError on out of the import."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def convert_schedule(text, max_frames: int, seed: int = 0) -> Converted:
    """A Deforum keyframe string (or a bare number, as old settings files hold) as a Kinograph schedule."""
    frames = max(int(max_frames), 1)
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise DeforumValueError(f"expected keyframes such as '0:(1.0)', got {text!r}")
    if not isinstance(text, str):
        if not finite(text):
            raise DeforumValueError(f"expected keyframes such as '0:(1.0)', got {str(text)[:40]}")
        keys = [("0", repr(float(text)))]
    else:
        keys = _split_keyframes(text) if ":" in text else [("0", text.strip())]
    by_frame: Dict[int, str] = {}
    for frame, value in keys:
        by_frame[frame_number(frame, frames)] = _substitute(value, frames - 1, seed)
    # Deforum reads keyframes up to its last frame only, and holds the last one it read: `0:(1), 200:(2)` in a
    # 120-frame clip is 1 throughout (interpolating toward frame 200 would reach 1.6)
    beyond = [f for f in by_frame if f >= frames]
    if len(beyond) == len(by_frame):
        raise DeforumValueError(f"every keyframe is after the clip's last frame ({frames - 1}), so Deforum reads none "
                                f"of them: add one at frame 0, such as '0:({by_frame[min(beyond)]})'")
    for f in beyond:
        del by_frame[f]
    def number(v: str) -> Optional[float]:
        try:
            return float(v)
        except ValueError:
            return None
    frames_in = sorted(by_frame)
    for a, b in zip(frames_in, frames_in[1:]):
        # Deforum runs a number keyframe linearly to the next keyframe's value at that frame, also when that
        # one is an expression; Kinograph would blend toward the expression as it moves. A number on the
        # frame before makes the two agree on every frame.
        if number(by_frame[a]) is not None and number(by_frame[b]) is None and b - a > 1:
            try:
                v = compile_expression(by_frame[b])(b)
            except ScheduleError as e:
                raise DeforumValueError(f"keyframe {b}: {e.message}") from None
            x = number(by_frame[a])
            by_frame[b - 1] = repr(x + (v - x) * (b - 1 - a) / (b - a))
    parts = []
    for f in sorted(by_frame):
        value = by_frame[f]
        # an expression holds until the next keyframe, as Deforum evaluates it
        parts.append(f"{f}:({value})" + ("" if number(value) is not None else " hold"))
    kin = ", ".join(parts)
    try:
        sched = parse_schedule(kin)
        values = [float(v) for v in sched.values(frames)]
    except ScheduleError as e:
        raise DeforumValueError(e.message) from None
    return Converted(kin, values)


def prompt_keyframes(prompts: Dict, max_frames: int) -> List[Tuple[int, str]]:
    """Deforum's {"0": "...", "max_f/2": "..."} as (frame, prompt) sorted by frame; later duplicates win,
    as they do in Deforum."""
    if not isinstance(prompts, dict) or not prompts:
        raise DeforumValueError("expected a dictionary of frame: prompt, such as {\"0\": \"a forest\"}")
    out: Dict[int, str] = {}
    for k, v in prompts.items():
        if not isinstance(v, str):
            raise DeforumValueError(f"the prompt at frame {k} is {type(v).__name__}, not text")
        out[frame_number(str(k), max_frames)] = v
    return sorted(out.items())


def split_negative(prompt: str) -> Tuple[str, str]:
    """Deforum's `positive --neg negative` within one prompt, split as its prepare_prompt splits it: every part after
    a `--neg` is negative (`a --neg b --neg c` -> "a", "b  c"), and the text keeps its commas."""
    pos, *neg = prompt.split("--neg")
    return pos.strip(), "".join(neg).strip()


def weight_expressions(text: str, t: float, max_frames: int, seed: int = 0) -> str:
    """Deforum's per-frame prompt weights, `(cherry:`where(cos(6.28*t/10)>0, 1.8, 0.001)`)`, evaluated at frame t."""
    def value(m):
        try:
            v = compile_expression(_substitute(m.group(1), max_frames - 1, seed))(t)
        except ScheduleError as e:
            raise DeforumValueError(f"the weight `{m.group(1)}` cannot be read: {e.message}") from None
        return f"{v:.4g}"
    return re.sub(r"`([^`]*)`", value, text)


def cut_schedule(keys: List[Tuple[int, str]], end: int = 0, at=None, step: int = 1) -> str:
    """Keyframed text that switches at each keyframe instead of blending: the prompt before a switch is
    repeated on the frame before it. One prompt is plain text. A prompt's own `, 30:` would read as a
    keyframe, so such a comma becomes a semicolon. A prompt with `...` weights is written out at every
    `step`-th frame of its stretch (up to `end`), `at(text, frame)` giving it there; Kinograph blends
    between them."""
    keys = [k for i, k in enumerate(keys) if i == 0 or k[1] != keys[i - 1][1]]     # no switch, no keyframe
    if len(keys) == 1 and "`" not in keys[0][1]:
        return _safe(keys[0][1])
    parts: List[Tuple[int, str]] = []
    for i, (frame, text) in enumerate(keys):
        last = keys[i + 1][0] - 1 if i + 1 < len(keys) else max(end - 1, frame)
        if "`" in text and at is not None:
            # only the frames the clip has: a next keyframe at 1e12 made a set of 10^12 frames (all memory)
            last = max(min(last, end - 1), frame)
            frames = sorted(set(range(frame, last + 1, step)) | {last})
            parts += [(f, at(text, f)) for f in frames]
            continue
        parts.append((frame, text))
        if i + 1 < len(keys) and last > frame:
            parts.append((last, text))
    return ", ".join(f"{f}: {_safe(t)}" for f, t in parts)


def _safe(text: str) -> str:
    return re.sub(r",(\s*\d+\s*:)", r";\1", text)


def weighted_schedule(keys: List[Tuple[int, str]], end: int, at) -> Tuple[str, int]:
    """cut_schedule with `...` weights written out at every frame, or every few frames where every frame
    would make the text longer than a schedule may be; (the text, the step)."""
    step = 1
    while True:
        text = cut_schedule(keys, end, at, step)
        if len(text) <= MAX_TEXT or step >= end:
            return text, step
        step = max(step + 1, int(step * len(text) / MAX_TEXT) + 1)


def seed_expression(behaviour: str, seed: int, cadence: int, iter_n: int = 1) -> str:
    """Deforum's seed pattern (seed.py's next_seed, run once per diffused frame) as a schedule of the frame t:
    the diffused frame k = floor(t / cadence) gets iter: seed + ceil(k / seed_iter_N); ladder: seed, +2, +1, +3,
    +2, ... (seed + k // 2 + 2 * (k % 2)); alternate: seed, +1, seed, +1, ..."""
    k = f"floor(t/{cadence})" if cadence > 1 else "t"
    if behaviour == "iter":
        return f"{seed} + floor(({k} + {iter_n - 1})/{iter_n})"
    if behaviour == "ladder":
        return f"{seed} + floor({k}/2) + 2*({k} % 2)"
    if behaviour == "alternate":
        return f"{seed} + {k} % 2"
    raise ValueError(behaviour)


def seed_schedule(values: List[float], random_base: int, cadence: int = 1) -> Tuple[str, List[int], int]:
    """Deforum's seed_schedule frame values as the seeds it uses: int() of the value (it truncates), a negative
    value (-1: A1111 draws a new random seed) replaced by random_base + the frame, so each such frame still has
    its own noise and a run repeats. Written as keyframes where the step between frames changes (linear in
    between, so exact), at the diffused frames only (the others are never sampled); where that is longer than a
    schedule may be, every few of them (the count of frames between is the last item; 1 when every one)."""
    seeds = [int(v) if v >= 0 else random_base + f for f, v in enumerate(values)]
    frames = list(range(0, len(seeds), cadence))
    if frames[-1] != len(seeds) - 1:
        frames.append(len(seeds) - 1)
    keys = [frames[0]] + [b for a, b, c in zip(frames, frames[1:], frames[2:])
                          if (seeds[c] - seeds[b]) * (b - a) != (seeds[b] - seeds[a]) * (c - b)] + frames[-1:]
    keys = sorted(set(keys))
    every = 1
    while True:
        picked = sorted(set(keys[::every]) | {keys[-1]})
        text = ", ".join(f"{f}:({seeds[f]})" for f in picked)
        if len(text) <= MAX_TEXT:
            return text, seeds, every
        every += 1
