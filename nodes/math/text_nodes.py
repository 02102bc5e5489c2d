"""Text computed as the workflow runs: words a running node gives (WanDancer's frame rate) joined to a prompt, and
what a regular expression finds in or makes of such a text (an LLM's answer)."""
from graph_engine import Param, node
from graph_engine.types import STRING


@node("text.join", title="Join Text", category="Math", outputs={"text": STRING})
def join(ctx, a: str = Param("", kind="text", help="the first text: type it, or link a node's text into it"),
         b: str = Param("", kind="text", help="the text after it"),
         delimiter: str = Param("", help="put between the two (a space, a comma)")) -> dict:
    """a, the delimiter, then b (ComfyUI's StringConcatenate where a text is known only as the workflow runs; one of
    constants is computed on import). A join past MAX_TEXT characters is refused: joined to itself a text doubles,
    and forty such joins in a row (or a ComfyUI loop carrying a text joined to itself) asked for a terabyte."""
    from .regex_child import MAX_TEXT
    if len(a) + len(delimiter) + len(b) > MAX_TEXT:
        from graph_engine import NodeError
        raise NodeError(f"joining texts of {len(a):,} and {len(b):,} characters makes more than {MAX_TEXT:,}; no "
                        "prompt is that long: check what is linked into a and b (a text joined to itself doubles at "
                        "each join)")
    return {"text": f"{a}{delimiter}{b}"}


# A pattern's time as a workflow runs: a text an LLM wrote is a few thousand characters, which re matches in
# milliseconds; one that backtracks without end ((a|aa)+$) is stopped here and named.
REGEX_SECONDS = 10.0


def _regex(function: str, *args) -> str:
    from graph_engine import NodeError
    from .regex_process import RegexChild
    child = RegexChild()
    try:
        return child.call(function, args, REGEX_SECONDS, "a pattern is given")
    except ValueError as e:
        raise NodeError(str(e)) from None
    finally:
        child.close()


def _flag(name: str):
    """re's flags as ComfyUI's regex nodes offer them, a fresh Param for each node."""
    return {"case_insensitive": Param(True, help="match upper and lower case alike"),
            "multiline": Param(False, help="^ and $ match at each line's start and end"),
            "dotall": Param(False, help=". matches newlines too")}[name]


@node("text.regex_extract", title="Regex Extract", category="Math", outputs={"text": STRING})
def regex_extract(ctx, text: str = Param("", kind="text", help="the text to search: link a node's text (an LLM's "
                                                                 "answer) into it"),
                  pattern: str = Param("", help="a Python regular expression"),
                  mode: str = Param("First Match", choices=("First Match", "All Matches", "First Group",
                                                            "All Groups"),
                                    help="the first match, every match (one a line), the first match's group, or "
                                         "every match's group"),
                  case_insensitive: bool = _flag("case_insensitive"), multiline: bool = _flag("multiline"),
                  dotall: bool = _flag("dotall"),
                  group_index: int = Param(1, min=0, max=100, help="the group the group modes give (0: the whole "
                                                                   "match)")) -> dict:
    """What a regular expression finds in a text, as ComfyUI's Regex Extract finds it (Python's re): nothing found,
    an invalid pattern or a group it lacks give an empty text. A pattern that backtracks without end is stopped
    after REGEX_SECONDS and named."""
    return {"text": _regex("regex_extract", text, pattern, mode, case_insensitive, multiline, dotall, group_index)}


@node("text.regex_replace", title="Regex Replace", category="Math", outputs={"text": STRING})
def regex_replace(ctx, text: str = Param("", kind="text", help="the text to change: link a node's text into it"),
                  pattern: str = Param("", help="a Python regular expression"),
                  replace: str = Param("", help="what each match becomes (\\1 for its first group)"),
                  case_insensitive: bool = _flag("case_insensitive"), multiline: bool = _flag("multiline"),
                  dotall: bool = _flag("dotall"),
                  count: int = Param(0, min=0, max=100, help="how many matches to replace, from the first (0: all)")
                  ) -> dict:
    """Each match of a regular expression in a text replaced, as ComfyUI's Regex Replace replaces (Python's re.sub):
    an invalid pattern or replacement stops the run, saying so, as it stops ComfyUI's. A pattern that backtracks
    without end is stopped after REGEX_SECONDS, and a text past a million characters is refused, both named."""
    return {"text": _regex("regex_replace", text, pattern, replace, case_insensitive, multiline, dotall, count)}
