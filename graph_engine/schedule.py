"""SCHEDULE: a number that changes over frames, written as Deforum-style keyframes.

Text forms (`parse_schedule`):

    1.5                                   a constant
    1 + 0.1*sin(t/8)                      an expression of the frame index t
    0:(1.0), 24:(1.5)                     keyframes, linear in between
    0:(1.0) ease_in_out, 24:(1.5)         the segment starting at frame 0 is eased
    interp=cubic; 0:(0), 12:(4), 24:(1)   every segment without its own easing is cubic

A keyframe is `FRAME:(EXPRESSION)` (the parentheses may be left out), optionally followed by
the easing of the segment that starts there: linear, cubic (Catmull-Rom through the
neighbouring keyframes), ease_in, ease_out, ease_in_out (cubic ease curves) or hold (keep the
value until the next keyframe). Before the first keyframe the first value holds, after the
last the last one does. Expressions use numbers, t, pi, e, + - * / ** %, comparisons (< > <= >= == !=,
1 when true, 0 when false: `where(t < 24, 1, 2)`), parentheses and the functions in `FUNCTIONS`; each keyframe's expression is evaluated at the current frame, so
`0:(sin(t))` is a sine everywhere and two expression keyframes crossfade.

Expressions are read by a small recursive-descent parser and evaluated by closures over
`math`: nothing reaches Python's eval, names or attributes. Mistakes raise `ScheduleError`,
whose message shows the text with a caret under the offending character.

Prompt schedules (`0: a caterpillar, 24: a butterfly`) use the same keyframe syntax with text
values: `parse_text_keyframes`.

For editors, a `Schedule` is plain data: `keyframes` (a list of `Keyframe(frame, value,
easing)`) and `interp`; `Schedule(keyframes, interp).to_text()` writes the string back.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import NodeError

EASINGS = ("linear", "cubic", "ease_in", "ease_out", "ease_in_out", "hold")
CONSTANTS = {"pi": math.pi, "e": math.e}


def _clamp(x, lo, hi):
    return min(max(x, lo), hi)


def _log(x, base=None):
    return math.log(x) if base is None else math.log(x, base)


# name -> (function, fewest arguments, most arguments or None for any number)
FUNCTIONS = {
    "sin": (math.sin, 1, 1), "cos": (math.cos, 1, 1), "tan": (math.tan, 1, 1),
    "abs": (abs, 1, 1), "sqrt": (math.sqrt, 1, 1), "exp": (math.exp, 1, 1),
    "log": (_log, 1, 2), "floor": (lambda x: float(math.floor(x)), 1, 1),
    "ceil": (lambda x: float(math.ceil(x)), 1, 1),
    "min": (min, 2, None), "max": (max, 2, None), "clamp": (_clamp, 3, 3),
    # numexpr's (Deforum evaluates its schedules with numexpr, and its users write these)
    "asin": (math.asin, 1, 1), "acos": (math.acos, 1, 1), "atan": (math.atan, 1, 1), "atan2": (math.atan2, 2, 2),
    "sinh": (math.sinh, 1, 1), "cosh": (math.cosh, 1, 1), "tanh": (math.tanh, 1, 1), "log10": (math.log10, 1, 1),
    "where": (lambda c, a, b: a if c else b, 3, 3),
}
COMPARISONS = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
               ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}

MAX_TEXT = 20000
MAX_DEPTH = 60
_HINTS = {
    "^": "use ** for powers",
    "'": "text strings are not allowed; only numbers, t, pi, e and functions",
    '"': "text strings are not allowed; only numbers, t, pi, e and functions",
    ".": "attribute access is not allowed",
    "[": "indexing is not allowed",
    "]": "indexing is not allowed",
    "{": "braces are not allowed", "}": "braces are not allowed",
    "_": "names other than t, pi, e and the listed functions are not allowed",
}


class ScheduleError(NodeError, ValueError):
    """A schedule string that cannot be read or evaluated; `position` indexes `text`."""

    def __init__(self, message: str, position: int, text: str = ""):
        self.message, self.position, self.text = message, position, text
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.text:
            return f"{self.message} (at character {self.position + 1})"
        line, pos = self.text, self.position
        if len(line) > 76:   # show a window around the mistake
            a = max(0, min(pos - 38, len(line) - 76))
            line, pos = ("..." if a else "") + line[a:a + 76] + ("..." if a + 76 < len(line) else ""), \
                pos - a + (3 if a else 0)
        line = line.replace("\n", " ").replace("\t", " ")
        return f"{self.message} (at character {self.position + 1})\n  {line}\n  {' ' * pos}^"


# ---------------------------------------------------------------------------------------
# tokens

@dataclass(frozen=True)
class _Tok:
    kind: str     # "num", "name", "op", "end"
    text: str
    pos: int


_OPS2 = ("**", "<=", ">=", "==", "!=")
_OPS1 = "+-*/%(),:;=<>"


def _tokenize(text: str) -> List[_Tok]:
    toks, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c.isdecimal() or (c == "." and i + 1 < n and text[i + 1].isdecimal()):
            j = i
            while j < n and text[j].isdecimal():
                j += 1
            if j < n and text[j] == ".":
                j += 1
                while j < n and text[j].isdecimal():
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and text[k].isdecimal():
                    j = k
                    while j < n and text[j].isdecimal():
                        j += 1
            if j < n and (text[j].isalpha() or text[j] == "_"):
                k = j
                while k < n and (text[k].isalnum() or text[k] == "_"):
                    k += 1
                raise ScheduleError(f"a number cannot run into a name; write {text[i:j]}*{text[j:k]} "
                                    f"for a product", j, text)
            toks.append(_Tok("num", text[i:j], i))
            i = j
        elif c.isascii() and c.isalpha():
            j = i
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            toks.append(_Tok("name", text[i:j], i))
            i = j
        elif text[i:i + 2] in _OPS2:
            toks.append(_Tok("op", text[i:i + 2], i))
            i += 2
        elif c in _OPS1:
            toks.append(_Tok("op", c, i))
            i += 1
        else:
            hint = _HINTS.get(c, "")
            raise ScheduleError(f"unexpected character {c!r}" + (f": {hint}" if hint else ""), i, text)
    toks.append(_Tok("end", "", n))
    return toks


# ---------------------------------------------------------------------------------------
# expressions: parsed straight into closures f(t) -> float

Fn = Callable[[float], float]


def _guard(f: Callable[[float], float], what: str, pos: int, text: str) -> Fn:
    """Turn a maths failure into a ScheduleError that points at the operation and names the frame."""
    def g(t):
        try:
            return f(t)
        except ZeroDivisionError:
            raise ScheduleError(f"division by zero at frame {t:g}", pos, text) from None
        except OverflowError:
            raise ScheduleError(f"{what} overflows at frame {t:g}", pos, text) from None
        except ValueError as e:
            if isinstance(e, ScheduleError):
                raise
            raise ScheduleError(f"{what} is undefined at frame {t:g} (math domain error)", pos, text) from None
    return g


class _Parser:
    def __init__(self, text: str, toks: List[_Tok], start: int = 0):
        self.text, self.toks, self.i = text, toks, start
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def error(self, msg: str, tok: Optional[_Tok] = None):
        tok = tok or self.tok
        return ScheduleError(msg, tok.pos, self.text)

    def at(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def expect(self, text: str, what: str) -> _Tok:
        if not self.at(text):
            raise self.error(f"expected {text!r} {what}, found {self._describe(self.tok)}")
        tok = self.tok
        self.i += 1
        return tok

    @staticmethod
    def _describe(tok: _Tok) -> str:
        return "the end of the text" if tok.kind == "end" else repr(tok.text)

    # expr := sum [('<' | '>' | '<=' | '>=' | '==' | '!=') sum]      a comparison is 1 or 0, for where()
    def expr(self) -> Fn:
        f = self.sum()
        if self.tok.kind == "op" and self.tok.text in COMPARISONS:
            cmp = COMPARISONS[self.tok.text]
            self.i += 1
            g = self.sum()
            return lambda t: 1.0 if cmp(f(t), g(t)) else 0.0
        return f

    # sum := term (('+' | '-') term)*      terms are summed in a loop, so long sums stay shallow
    def sum(self) -> Fn:
        f = self.term()
        if not (self.at("+") or self.at("-")):
            return f
        parts = [(1, f)]
        while self.at("+") or self.at("-"):
            sign = 1 if self.tok.text == "+" else -1
            self.i += 1
            parts.append((sign, self.term()))

        def total(t):
            v = 0.0
            for s, g in parts:
                v = v + g(t) if s > 0 else v - g(t)
            return v
        return total

    # term := unary (('*' | '/' | '%') unary)*
    def term(self) -> Fn:
        f = self.unary()
        if not (self.at("*") or self.at("/") or self.at("%")):
            return f
        ops = []
        while self.at("*") or self.at("/") or self.at("%"):
            tok = self.tok
            self.i += 1
            ops.append((tok.text, self.unary(), tok.pos))
        text = self.text

        def product(t):
            v = f(t)
            for op, g, pos in ops:
                w = g(t)
                if op == "*":
                    v = v * w
                elif w == 0:
                    raise ScheduleError(f"{'division' if op == '/' else 'remainder'} by zero at frame {t:g}",
                                        pos, text)
                else:
                    v = v / w if op == "/" else v % w
            return v
        return product

    # unary := ('-' | '+') unary | power
    def unary(self) -> Fn:
        # Every nesting (parentheses, arguments, exponents, signs) passes through here.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)")
        if self.at("-") or self.at("+"):
            neg = self.tok.text == "-"
            self.i += 1
            f = self.unary()
            f = (lambda a: lambda t: -a(t))(f) if neg else f
        else:
            f = self.power()
        self.depth -= 1
        return f

    # power := primary ['**' unary]   (right-associative; binds tighter than unary minus on its left)
    def power(self) -> Fn:
        f = self.primary()
        if self.at("**"):
            tok = self.tok
            self.i += 1
            g = self.unary()
            return _guard((lambda a, b: lambda t: math.pow(a(t), b(t)))(f, g), "power", tok.pos, self.text)
        return f

    def primary(self) -> Fn:
        tok = self.tok
        if tok.kind == "num":
            self.i += 1
            v = float(tok.text)
            return lambda t: v
        if tok.kind == "name":
            self.i += 1
            if self.at("("):
                return self.call(tok)
            if tok.text == "t":
                return lambda t: float(t)
            if tok.text in CONSTANTS:
                v = CONSTANTS[tok.text]
                return lambda t: v
            if tok.text in FUNCTIONS:
                raise self.error(f"function {tok.text!r} needs arguments in parentheses, e.g. {tok.text}(t)", tok)
            raise self.error(f"unknown name {tok.text!r}: expressions may use t, pi, e and the functions "
                             f"{', '.join(FUNCTIONS)}", tok)
        if self.at("("):
            self.i += 1
            f = self.expr()
            self.expect(")", "to close the parenthesis")
            return f
        if tok.kind == "end":
            raise self.error("expected a value (a number, t, a function call or a parenthesis), "
                             "found the end of the text")
        raise self.error(f"expected a value (a number, t, a function call or a parenthesis), found {tok.text!r}")

    def call(self, name: _Tok) -> Fn:
        if name.text not in FUNCTIONS:
            raise self.error(f"unknown function {name.text!r}: available functions are {', '.join(FUNCTIONS)}",
                             name)
        fn, lo, hi = FUNCTIONS[name.text]
        self.expect("(", "after the function name")
        args: List[Fn] = []
        if not self.at(")"):
            args.append(self.expr())
            while self.at(","):
                self.i += 1
                args.append(self.expr())
        close = self.expect(")", f"to close {name.text}(")
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = f"{lo}" if lo == hi else (f"{lo} or more" if hi is None else f"{lo} to {hi}")
            raise ScheduleError(f"{name.text}() takes {want} argument{'s' if want != '1' else ''}, "
                                f"got {len(args)}", close.pos, self.text)
        if len(args) == 1:
            a = args[0]
            f = lambda t: float(fn(a(t)))
        else:
            f = lambda t: float(fn(*[g(t) for g in args]))
        return _guard(f, f"{name.text}()", name.pos, self.text)


def compile_expression(text: str) -> Callable[[float], float]:
    """An expression of t as a function of the frame; raises ScheduleError on mistakes."""
    _check_length(text)
    toks = _tokenize(text)
    p = _Parser(text, toks)
    f = p.expr()
    if p.tok.kind != "end":
        raise p.error(f"unexpected {p.tok.text!r} after a complete expression")
    return f


def _check_length(text: str) -> None:
    if len(text) > MAX_TEXT:
        raise ScheduleError(f"schedule text is too long ({len(text)} characters, at most {MAX_TEXT})", MAX_TEXT)


# ---------------------------------------------------------------------------------------
# keyframes and schedules

def _fmt(x: float) -> str:
    return repr(float(x))


@dataclass(frozen=True)
class Keyframe:
    """One point of a schedule. `value` is expression text (a number is the common case);
    `easing` shapes the segment from this keyframe to the next (None: the schedule's interp)."""
    frame: int
    value: str
    easing: Optional[str] = None

    def __post_init__(self):
        if isinstance(self.value, (int, float)) and not isinstance(self.value, bool):
            object.__setattr__(self, "value", _fmt(self.value))
        if not isinstance(self.frame, int) or isinstance(self.frame, bool) or self.frame < 0:
            raise ScheduleError(f"keyframe frame must be a whole number >= 0, got {self.frame!r}", 0)
        if self.easing is not None and self.easing not in EASINGS:
            raise ScheduleError(f"unknown easing {self.easing!r}; use one of {', '.join(EASINGS)}", 0)

    @property
    def number(self) -> Optional[float]:
        """The value as a float when it is a plain number (what a curve editor can drag), else None."""
        try:
            return float(self.value)
        except ValueError:
            return None


def ease(mode: str, u: float) -> float:
    """Easing curve value at u in [0, 1] for one of EASINGS other than cubic (which needs neighbours)."""
    if mode == "ease_in":
        return u * u * u
    if mode == "ease_out":
        return 1.0 - (1.0 - u) ** 3
    if mode == "ease_in_out":
        return 4.0 * u * u * u if u < 0.5 else 1.0 - (2.0 - 2.0 * u) ** 3 / 2.0
    if mode == "hold":
        return 0.0
    return u


class Schedule:
    """A per-frame number: `sched(frame) -> float`, `sched.values(n) -> np.ndarray`."""

    __slots__ = ("_keys", "_interp", "_fns", "_frames", "_text_cache")

    def __init__(self, keyframes: Iterable[Keyframe], interp: str = "linear",
                 _compiled: Optional[Sequence[Fn]] = None):
        keys = tuple(keyframes)
        if not keys:
            raise ScheduleError("a schedule needs at least one keyframe", 0)
        if interp not in EASINGS:
            raise ScheduleError(f"unknown interpolation {interp!r}; use one of {', '.join(EASINGS)}", 0)
        for a, b in zip(keys, keys[1:]):
            if b.frame <= a.frame:
                raise ScheduleError(f"keyframes must be in increasing frame order; frame {b.frame} comes "
                                    f"after frame {a.frame}", 0)
        fns = list(_compiled) if _compiled is not None else [_compile_value(k) for k in keys]
        self._keys, self._interp, self._fns = keys, interp, fns
        self._frames = [k.frame for k in keys]
        self._text_cache: Optional[str] = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def constant(cls, value: float) -> "Schedule":
        return cls([Keyframe(0, _fmt(value))])

    # -- data model ---------------------------------------------------------------------
    @property
    def interp(self) -> str:
        """How segments without their own easing are interpolated."""
        return self._interp

    @property
    def keyframes(self) -> List[Keyframe]:
        """A copy: edit it and build a new Schedule (schedules are immutable, hence cache-safe)."""
        return list(self._keys)

    @property
    def constant_value(self) -> Optional[float]:
        """The value when it is the same at every frame and written as plain numbers, else None."""
        nums = [k.number for k in self._keys]
        if any(v is None for v in nums) or len(set(nums)) != 1:
            return None
        return nums[0]

    def to_text(self) -> str:
        if self._text_cache is None:
            keys = self._keys
            if len(keys) == 1 and keys[0].frame == 0 and keys[0].easing is None:
                self._text_cache = keys[0].value
            else:
                body = ", ".join(f"{k.frame}:({k.value})" + (f" {k.easing}" if k.easing else "") for k in keys)
                self._text_cache = (f"interp={self.interp}; " if self.interp != "linear" else "") + body
        return self._text_cache

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"Schedule({self.to_text()!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Schedule) and self._keys == other._keys and \
            (self.interp == other.interp or len(self._keys) == 1)

    def __hash__(self) -> int:
        return hash(self._keys)

    # -- evaluation ---------------------------------------------------------------------
    def __call__(self, frame: float) -> float:
        fr = self._frames
        t = float(frame)
        if t <= fr[0]:
            return self._value(0, t)
        if t >= fr[-1]:
            return self._value(len(fr) - 1, t)
        i = _segment(fr, t)
        mode = self._keys[i].easing or self.interp
        a, b = self._value(i, t), self._value(i + 1, t)
        h = fr[i + 1] - fr[i]
        u = (t - fr[i]) / h
        if mode != "cubic":
            return a + (b - a) * ease(mode, u)
        # Catmull-Rom on non-uniform keys: finite-difference tangents (per frame), one-sided at the ends.
        m0 = (b - self._value(i - 1, t)) / (fr[i + 1] - fr[i - 1]) if i > 0 else (b - a) / h
        m1 = (self._value(i + 2, t) - a) / (fr[i + 2] - fr[i]) if i + 2 < len(fr) else (b - a) / h
        u2, u3 = u * u, u * u * u
        return (2 * u3 - 3 * u2 + 1) * a + (u3 - 2 * u2 + u) * h * m0 + (-2 * u3 + 3 * u2) * b + \
            (u3 - u2) * h * m1

    def _value(self, i: int, t: float) -> float:
        v = self._fns[i](t)
        if not math.isfinite(v):
            raise ScheduleError(f"keyframe at frame {self._frames[i]} gives {v} at frame {t:g}", 0,
                                self._keys[i].value)
        return v

    def values(self, n: int, start: int = 0):
        """Values at frames start .. start+n-1 as float64 numpy array."""
        import numpy as np
        return np.array([self(i) for i in range(start, start + n)], dtype=np.float64)


def _segment(frames: List[int], t: float) -> int:
    lo, hi = 0, len(frames) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if frames[mid] <= t:
            lo = mid
        else:
            hi = mid
    return lo


def _compile_value(k: Keyframe) -> Fn:
    try:
        return compile_expression(k.value)
    except ScheduleError as e:
        raise ScheduleError(f"keyframe at frame {k.frame}: {e.message}", e.position, e.text) from None


# ---------------------------------------------------------------------------------------
# the text form

def parse_schedule(value: Union[str, int, float, Schedule]) -> Schedule:
    """Read a schedule from its text (see the module docstring), a number, or pass a Schedule through."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ScheduleError(f"a schedule is a number or text like '0:(1.0), 24:(1.5)', got {value!r}", 0)
    if not isinstance(value, str):
        if not math.isfinite(value):
            raise ScheduleError(f"a schedule value must be finite, got {value}", 0)
        return Schedule.constant(value)
    text = value
    inner = text.strip()
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        # Deforum's settings files quote every schedule ("zoom": "0: (1.02)"); pasted with its quotes it is
        # still that schedule, and quotes can mean nothing else here (said 'text strings are not allowed').
        text = inner[1:-1]
    _check_length(text)
    toks = _tokenize(text)
    if toks[0].kind == "end":
        raise ScheduleError("the schedule is empty; write a number or keyframes like '0:(1.0), 24:(1.5)'",
                            0, text)
    p = _Parser(text, toks)
    interp = "linear"
    if toks[0].kind == "name" and toks[0].text == "interp" and toks[1].kind == "op" and toks[1].text == "=":
        p.i = 2
        name = p.tok
        if name.kind != "name" or name.text not in EASINGS:
            raise p.error(f"interp= takes one of {', '.join(EASINGS)}, found {p._describe(name)}")
        interp = name.text
        p.i += 1
        p.expect(";", "after the interpolation (write e.g. 'interp=cubic; 0:(1), 24:(2)')")
        if p.tok.kind == "end":
            raise p.error("expected keyframes after the interpolation, e.g. '0:(1), 24:(2)'")
    if not _keyframe_ahead(p):
        start = p.tok.pos
        fn = p.expr()
        if p.tok.kind != "end":
            if p.at(":"):
                raise p.error("a keyframe frame must be a whole number >= 0, as in '24:(1.5)'")
            raise p.error(f"unexpected {p.tok.text!r} after a complete expression; separate keyframes "
                          f"with commas, as in '0:(1.0), 24:(1.5)'")
        return Schedule([Keyframe(0, text[start:].strip())], interp, _compiled=[fn])
    keys: List[Keyframe] = []
    fns: List[Fn] = []
    while p.tok.kind != "end":
        frame_tok = p.tok
        if not _keyframe_ahead(p):
            raise p.error("expected a keyframe like '24:(1.5)' (a whole frame number, a colon and a value)")
        frame = int(frame_tok.text)
        if keys and frame <= keys[-1].frame:
            raise p.error(f"keyframes must be in increasing frame order; frame {frame} comes after "
                          f"frame {keys[-1].frame}", frame_tok)
        p.i += 2
        if p.at("("):
            open_tok = p.tok
            p.i += 1
            vstart = p.tok.pos
            fn = p.expr()
            vend = p.tok.pos
            if not p.at(")"):
                raise p.error(f"expected ')' to close the value of keyframe {frame} (opened at character "
                              f"{open_tok.pos + 1}), found {p._describe(p.tok)}")
            p.i += 1
        else:
            vstart = p.tok.pos
            fn = p.expr()
            vend = p.tok.pos
        easing = None
        if p.tok.kind == "name":
            if p.tok.text not in EASINGS:
                raise p.error(f"unknown easing {p.tok.text!r}; use one of {', '.join(EASINGS)}")
            easing = p.tok.text
            p.i += 1
        keys.append(Keyframe(frame, text[vstart:vend].strip(), easing))
        fns.append(fn)
        if p.at(","):
            p.i += 1
        elif p.tok.kind != "end":
            raise p.error(f"expected ',' between keyframes, found {p._describe(p.tok)}")
    return Schedule(keys, interp, _compiled=fns)


def _keyframe_ahead(p: _Parser) -> bool:
    a, b = p.toks[p.i], p.toks[min(p.i + 1, len(p.toks) - 1)]
    if a.kind == "num" and b.kind == "op" and b.text == ":":
        if not a.text.isdecimal():
            raise p.error(f"a keyframe frame must be a whole number >= 0, got {a.text}", a)
        return True
    return False



# ---------------------------------------------------------------------------------------
# keyframed text (prompt schedules): the same keyframe syntax with text values

_TEXT_KEY = re.compile(r"(?:^|,)\s*(\d+)\s*:\s*")


def is_keyframed_text(text: str) -> bool:
    """Whether `text` starts with a keyframe (`0: ...`), i.e. is a schedule rather than one prompt."""
    return bool(re.match(r"\s*\d+\s*:", text or ""))


def parse_text_keyframes(text: str) -> List[Tuple[int, str]]:
    """`0: a caterpillar, 24: a butterfly` -> [(0, 'a caterpillar'), (24, 'a butterfly')].

    The keyframes of a number schedule, with text for values: `FRAME: value` separated by commas,
    frames increasing. A value runs to the next `, FRAME:`, so other commas belong to it; it may
    be wrapped in parentheses (as number keyframes are) or quotes."""
    _check_length(text)
    marks = list(_TEXT_KEY.finditer(text))
    if not marks or text[:marks[0].start()].strip():
        raise ScheduleError("keyframed text looks like '0: a caterpillar, 24: a butterfly'", 0, text)
    keys: List[Tuple[int, str]] = []
    for m, nxt in zip(marks, marks[1:] + [None]):
        body = text[m.end(): nxt.start() if nxt else len(text)].strip().rstrip(",").strip()
        if len(body) >= 2 and (body[0], body[-1]) in (("(", ")"), ('"', '"'), ("'", "'")):
            body = body[1:-1].strip()
        frame = int(m.group(1))
        if keys and frame <= keys[-1][0]:
            raise ScheduleError(f"keyframes must be in increasing frame order; frame {frame} comes after "
                                f"frame {keys[-1][0]}", m.start(1), text)
        keys.append((frame, body))
    return keys
