"""Numbers computed as the workflow runs: a formula over values other nodes give (a picture's size)."""
from graph_engine import Param, node
from graph_engine.types import BOOL, FLOAT, INT

from .expr import ExprError, check, evaluate

LETTERS = ("a", "b", "c", "d")


def _letter(name):
    return Param(0.0, help=f"the formula's {name}: type it in, or link a number (a size from video.size) into it")


@node("math.expression", title="Math Expression", category="Math",
      outputs={"float": FLOAT, "int": INT, "bool": BOOL})
def expression(ctx, expression: str = Param("a + b", check=lambda v: check(v, LETTERS),
                                            help="a formula of a, b, c, d (ComfyUI's Math Expression): + - * / // % "
                                                 "**, comparisons, and / or / not, x if c else y, & | ^ ~ << >>, and "
                                                 "sum min max abs round pow sqrt ceil floor log log2 log10 sin cos "
                                                 "tan int float; `values` is the list of all four"),
               a: float = _letter("a"), b: float = _letter("b"), c: float = _letter("c"),
               d: float = _letter("d")) -> dict:
    """A number from a formula, as ComfyUI's Math Expression computes it: its result as a float, truncated to an int
    (int()), and whether it is non-zero. A whole number linked in is read as the whole number it is (a & ~1 floors
    a width to an even one). The formula is parsed, never run as Python: a file from a stranger cannot run code
    through it, and numbers past what any setting takes are refused."""
    from graph_engine import NodeError
    values = {k: int(v) if float(v).is_integer() else v for k, v in zip(LETTERS, (a, b, c, d))}
    try:
        result = evaluate(expression, values)
    except ExprError as e:
        raise NodeError(str(e)) from None
    return {"float": float(result), "int": int(result), "bool": bool(result)}
