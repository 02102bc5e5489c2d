"""A node's help as the editor's labels show it (Qt rich text)."""
import html
import re

_CODE = re.compile(r"`([^`\n]+)`")


def help_html(text: str) -> str:
    """Escaped, paragraphs kept, and `name` (a parameter or a command, as the docstrings mark them) in the fixed
    font: the backticks themselves were shown, as in 'short side is `resolution` rounded up'."""
    escaped = html.escape(text).replace("\n\n", "<br><br>").replace("\n", " ")
    return _CODE.sub(r"<code>\1</code>", escaped)


def help_tip(text: str) -> str:
    """A tooltip with `name` in the fixed font, as help_html shows it in the panel: a plain tooltip showed the
    backticks. Lines and spaces are kept as a plain tooltip keeps them; text with no marked name stays plain."""
    if not _CODE.search(text):
        return text
    marked = _CODE.sub(r"<code>\1</code>", html.escape(text))
    return f"<p style='white-space:pre-wrap'>{marked}</p>"
