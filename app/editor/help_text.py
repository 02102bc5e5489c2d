"""A node's help as the editor's labels show it (Qt rich text), and the artist's own text in a tooltip."""
import html
import re

from PySide6.QtGui import Qt

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
    return _pre(_CODE.sub(r"<code>\1</code>", html.escape(text)))


def plain_tip(text: str) -> str:
    """A tooltip of the artist's text (a node's or a group's title, a run's label naming them) as typed: Qt takes a
    tooltip with a tag in its first line for HTML, and '<b>Key</b> <A> plate' showed 'Key plate'. Other text stays
    plain, as Qt lays it out."""
    return _pre(html.escape(text)) if Qt.mightBeRichText(text) else text


def _pre(escaped: str) -> str:
    """Rich text that keeps its lines and spaces as a plain tooltip does."""
    return f"<p style='white-space:pre-wrap'>{escaped}</p>"
