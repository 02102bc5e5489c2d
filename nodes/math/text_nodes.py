"""Text computed as the workflow runs: words a running node gives (WanDancer's frame rate) joined to a prompt."""
from graph_engine import Param, node
from graph_engine.types import STRING


@node("text.join", title="Join Text", category="Math", outputs={"text": STRING})
def join(ctx, a: str = Param("", kind="text", help="the first text: type it, or link a node's text into it"),
         b: str = Param("", kind="text", help="the text after it"),
         delimiter: str = Param("", help="put between the two (a space, a comma)")) -> dict:
    """a, the delimiter, then b (ComfyUI's StringConcatenate where a text is known only as the workflow runs; one of
    constants is computed on import)."""
    return {"text": f"{a}{delimiter}{b}"}
