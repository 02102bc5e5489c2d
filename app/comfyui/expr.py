"""ComfyMathExpression's formulas, evaluated at import time when every value is a constant in the file.

Written here rather than taken from a library: the grammar is a dozen arithmetic forms over the
letters a..z, and walking Python's own parse tree keeps anything else (attributes, subscripts,
arbitrary calls) out by construction."""
from __future__ import annotations

import ast
import math
import operator
from typing import Any, Dict

# A formula is a line or two in ComfyUI's widget; a longer one is refused before parsing, which also
# bounds the parse tree's depth and how large a product of bounded powers can grow.
MAX_LENGTH = 1000


class ExprError(ValueError):
    pass


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


# the functions ComfyUI's node offers (its documentation lists them)
FUNCTIONS = {"sum": sum, "min": min, "max": max, "abs": abs, "round": _round, "pow": _power, "sqrt": math.sqrt,
             "ceil": math.ceil, "floor": math.floor, "log": math.log, "log2": math.log2, "log10": math.log10,
             "sin": math.sin, "cos": math.cos, "tan": math.tan, "int": int, "float": float}
BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _power}
UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}


def evaluate(expression: str, values: Dict[str, Any]):
    """The number `expression` gives with these letter values (`values` also names them all as a list)."""
    if len(str(expression)) > MAX_LENGTH:
        raise ExprError(f"a formula of {len(str(expression))} characters; ComfyUI's math node takes short ones "
                        f"(at most {MAX_LENGTH} here)")
    try:
        tree = ast.parse(str(expression).strip(), mode="eval")
    except SyntaxError as e:
        raise ExprError(f"{expression!r} is not a formula ComfyUI can evaluate ({e.msg})") from None
    names = dict(values, values=[values[k] for k in sorted(values)])
    try:
        out = _eval(tree.body, names)
    except (ArithmeticError, ValueError, TypeError) as e:
        raise ExprError(f"{expression!r} fails with these values: {e}") from None
    if isinstance(out, int) and not isinstance(out, bool) and out.bit_length() > 1024:
        # a product of bounded powers, 39000 digits: math.isfinite (and repr) of it raised a traceback
        raise ExprError(f"{expression!r} gives a number of {out.bit_length()} bits, beyond any value a node takes")
    if not isinstance(out, (int, float)) or not math.isfinite(out):
        raise ExprError(f"{expression!r} gives {out!r}, not a finite number")
    return int(out) if isinstance(out, bool) else out


def _eval(node, names):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ExprError(f"no value named {node.id!r}")
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        return BINARY[type(node.op)](_eval(node.left, names), _eval(node.right, names))
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
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, names) else node.orelse, names)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS \
            and not node.keywords:
        return FUNCTIONS[node.func.id](*(_eval(a, names) for a in node.args))
    raise ExprError(f"{ast.unparse(node)!r} is not arithmetic ComfyUI's math node evaluates")
