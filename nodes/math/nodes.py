"""Numbers computed as the workflow runs: a formula over values other nodes give (a picture's size), and a switch
that picks one of two values by such a number."""
from graph_engine import Input, Param, node
from graph_engine.types import ANY, BOOL, FLOAT, INT

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


def _picked(params) -> set:
    return {"on_true" if params["switch"] else "on_false"}


@node("math.switch", title="Switch", category="Math", outputs={"value": ANY}, reads=_picked)
def switch(ctx, on_false: ANY = Input(optional=True, help="what passes on when switch is off"),
           on_true: ANY = Input(optional=True, help="what passes on when switch is on"),
           switch: bool = Param(False, help="which input passes on: link a test into it (math.expression's bool, "
                                            "a > 2048 on a picture's width)")) -> dict:
    """One of two values, picked as the workflow runs (ComfyUI's Switch). Only the input picked is made, as in
    ComfyUI: the nodes that feed only the other (a model loaded, a generation) do not run."""
    from graph_engine import NodeError
    name = "on_true" if switch else "on_false"
    value = on_true if switch else on_false
    if value is None:
        raise NodeError(f"switch is {'on' if switch else 'off'} and {name} has nothing linked: link what should pass "
                        f"on then")
    return {"value": value}
