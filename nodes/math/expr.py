"""ComfyUI's Math Expression formulas (ComfyMathExpression), evaluated safely: by the importer where every value
is a constant in the file, and by math.expression where a value is known only as the workflow runs.

ComfyUI evaluates them with simpleeval (its operators: arithmetic, comparisons, `and` / `or` / `not`,
`x if c else y`, and the bitwise & | ^ ~ << >> that templates use to floor to a multiple, `a & -8`) over the
letters a..z and `values`, with the functions its node lists. Written here rather than taken from a library:
walking Python's own parse tree keeps anything else (attributes, subscripts, strings, arbitrary calls) out
by construction, and no formula from a stranger's file runs code."""
from __future__ import annotations

import ast
import math
import operator
from typing import Any, Dict, Optional

# A formula is a line or two in ComfyUI's widget; a longer one is refused before parsing, which also
# bounds the parse tree's depth and how large a product of bounded powers can grow.
MAX_LENGTH = 1000
# how deep forms may nest: evaluating walks the tree recursively, and 900 nested minus signs fit in MAX_LENGTH
MAX_DEPTH = 200


class ExprError(ValueError):
    pass


class FormError(ExprError):
    """What is wrong with the formula itself, whatever its values (its grammar, a name it lacks)."""


def _power(base, exponent):
    """`**` and pow(): a file from a stranger must not make the import compute a number of millions of
    digits (pow(9, 9 ** 9), or ((9 ** 999) ** 999) ** 999), so exponents and the integer result's size are
    bounded; floats overflow to an error on their own."""
    if abs(exponent) > 1024:
        raise ExprError("an exponent above 1024")
    if isinstance(base, int) and isinstance(exponent, int) and base.bit_length() * abs(exponent) > 4096:
        raise ExprError("a power of more than 4096 bits")
    return operator.pow(base, exponent)


def _round(number, digits=None):
    """round(): an integer rounded to -n digits is computed with 10 ** n, so round(5, -10 ** 8) took all memory
    and never ended; a float has no more than 308 digits either side."""
    if digits is not None and abs(digits) > 1024:
        raise ExprError(f"rounding to {digits} digits")
    return round(number, digits)


def _shift(number, bits):
    """<< and >>: 1 << 10 ** 9 is a number of a billion bits"""
    if abs(bits) > 1024:
        raise ExprError(f"a shift by {bits} bits")
    return number << bits if bits >= 0 else number >> -bits


def _sum(*numbers):
    """sum(values) or sum(a, b, c), as ComfyUI's node takes both"""
    return sum(numbers[0]) if len(numbers) == 1 and isinstance(numbers[0], list) else sum(numbers)


# the functions ComfyUI's node offers (its documentation lists them)
FUNCTIONS = {"sum": _sum, "min": min, "max": max, "abs": abs, "round": _round, "pow": _power, "sqrt": math.sqrt,
             "ceil": math.ceil, "floor": math.floor, "log": math.log, "log2": math.log2, "log10": math.log10,
             "sin": math.sin, "cos": math.cos, "tan": math.tan, "int": int, "float": float}
BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _power, ast.BitAnd: operator.and_,
          ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.LShift: _shift,
          ast.RShift: lambda number, bits: _shift(number, -bits)}
UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert}
COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}


def evaluate(expression: str, values: Dict[str, Any]):
    """The number `expression` gives with these letter values (`values` also names them all as a list)."""
    if len(str(expression)) > MAX_LENGTH:
        raise FormError(f"a formula of {len(str(expression))} characters; ComfyUI's math node takes short ones "
                        f"(at most {MAX_LENGTH} here)")
    try:
        tree = ast.parse(str(expression).strip(), mode="eval")
    except SyntaxError as e:
        raise FormError(f"{expression!r} is not a formula ComfyUI can evaluate ({e.msg})") from None
    except (RecursionError, MemoryError):
        raise FormError(f"{expression!r} nests deeper than Python's parser goes") from None
    if _too_deep(tree.body):
        raise FormError(f"a formula nested more than {MAX_DEPTH} forms deep, beyond what is evaluated here")
    names = dict(values, values=[values[k] for k in sorted(values)])
    try:
        out = _eval(tree.body, names)
    except ExprError:
        raise
    except (ArithmeticError, ValueError, TypeError) as e:
        raise ExprError(f"{expression!r} fails with these values: {e}") from None
    if isinstance(out, int) and not isinstance(out, bool) and out.bit_length() > 1024:
        # a product of bounded powers, 39000 digits: math.isfinite (and repr) of it raised a traceback
        raise ExprError(f"{expression!r} gives a number of {out.bit_length()} bits, beyond any value a node takes")
    if not isinstance(out, (int, float)) or not math.isfinite(out):
        raise ExprError(f"{expression!r} gives {out!r}, not a finite number")
    return int(out) if isinstance(out, bool) else out


def check(expression: str, letters) -> Optional[str]:
    """Why `expression` cannot be evaluated whatever values `letters` have (None: it can be tried), for validation."""
    try:
        evaluate(expression, {k: 1 for k in letters})
    except FormError as e:
        return str(e)
    except ExprError:
        pass
    return None


def names(expression: str) -> set:
    """The names a formula reads (none where it does not parse: evaluate says why)."""
    if len(str(expression)) > MAX_LENGTH:
        return set()
    try:
        tree = ast.parse(str(expression).strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError):
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _too_deep(root) -> bool:
    """Whether the parse tree goes deeper than MAX_DEPTH, walked without recursion (a deep one cannot overflow the
    stack here)."""
    todo = [(root, 1)]
    while todo:
        node, d = todo.pop()
        if d > MAX_DEPTH:
            return True
        todo += [(c, d + 1) for c in ast.iter_child_nodes(node)]
    return False


def _eval(node, names):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise FormError(f"no value named {node.id!r}")
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _eval(node.left, names), _eval(node.right, names)
        if isinstance(left, list) or isinstance(right, list):
            # Python's list * n: values * 10 ** 9 asked for billions of items, a MemoryError traceback
            raise FormError(f"{ast.unparse(node)!r} computes with the list `values`: it goes in sum(), min() or "
                            f"max() only")
        return BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_eval(node.operand, names))
    if isinstance(node, ast.Compare) and all(type(o) in COMPARE for o in node.ops):
        left = _eval(node.left, names)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, names)
            if not COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        # simpleeval's and / or: the deciding operand itself, later ones not evaluated
        for operand in node.values:
            out = _eval(operand, names)
            if bool(out) != isinstance(node.op, ast.And):
                return out
        return out
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, names) else node.orelse, names)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS \
            and not node.keywords:
        return FUNCTIONS[node.func.id](*(_eval(a, names) for a in node.args))
    raise FormError(f"{ast.unparse(node)!r} is not arithmetic ComfyUI's math node evaluates")
