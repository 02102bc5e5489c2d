"""A node's help as the editor's labels show it (Qt rich text)."""
import html
import re

_CODE = re.compile(r"`([^`\n]+)`")


def help_html(text: str) -> str:
    """Escaped, paragraphs kept, and `name` (a parameter or a command, as the docstrings mark them) in the fixed
    font: the backticks themselves were shown, as in 'short side is `resolution` rounded up'."""
    escaped = html.escape(text).replace("\n\n", "<br><br>").replace("\n", " ")
    return _CODE.sub(r"<code>\1</code>", escaped)
