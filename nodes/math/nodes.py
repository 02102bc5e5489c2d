"""Numbers computed as the workflow runs: a formula over values other nodes give (a picture's size), and a switch
that picks one of two values by such a number."""
from graph_engine import Input, Param, node
from graph_engine.types import ANY, BOOL, FLOAT, INT, STRING

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
                                            "a > 2048 on a picture's width)"),
           refusal: str = Param("", help="what the run stops with where the side picked has nothing linked (a check: "
                                         "a value passes on only while a test holds); empty: a message naming the side")
           ) -> dict:
    """One of two values, picked as the workflow runs (ComfyUI's Switch). Only the input picked is made, as in
    ComfyUI: the nodes that feed only the other (a model loaded, a generation) do not run."""
    from graph_engine import NodeError
    name = "on_true" if switch else "on_false"
    value = on_true if switch else on_false
    if value is None:
        raise NodeError(refusal or f"switch is {'on' if switch else 'off'} and {name} has nothing linked: link what "
                                   f"should pass on then")
    return {"value": value}


@node("math.number_convert", title="Number Convert", category="Math", outputs={"float": FLOAT, "int": INT})
def number_convert(ctx, value: ANY = Input(optional=True, help="what to read as a number: a number, a switch or "
                                                               "a text (a language model's answer, a prompt's part)"),
                   text: str = Param("0", help="the value when nothing is linked: a number as text (7, 2.5, -1e2)")
                   ) -> dict:
    """A number as both a float and an int, as ComfyUI's Number Convert reads it: a switch is 1 or 0, a text is
    read as a number (spaces around it ignored), and the int is the text's own whole number, or the float
    truncated towards 0 (2.9 gives 2, -2.9 gives -2)."""
    from graph_engine import NodeError
    from .values import number
    try:
        as_float, as_int = number(text if value is None else value)
    except (ValueError, TypeError, OverflowError) as e:
        raise NodeError(f"{'value' if value is not None else 'text'}: {e}; give a number (7, 2.5) or its text")
    return {"float": as_float, "int": as_int}


@node("math.show", title="Show Value", category="Math", output=True, outputs={"text": STRING})
def show(ctx, value: ANY = Input(optional=True, help="the value to show: a number, a switch, a text"),
         text: str = Param("", help="what is shown when nothing is linked")) -> dict:
    """Show a value in the run's log as ComfyUI's Preview Any shows it (7, 0.5, True, a text as it is), and hand
    that text on: to check what a formula or a conversion gives before it feeds a setting."""
    from .values import shown
    written = text if value is None else shown(value)
    ctx.log(written)
    return {"text": written}
