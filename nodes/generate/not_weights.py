"""What a file under a model's name holds when it is no weights at all, told from its first bytes: a download that
failed saves the server's web page or error message under the model's name, and a repository cloned without Git
LFS holds a 130-byte pointer where each model should be. Each was called a truncated or corrupt file ("header
length out of range"), and copying it again gave the same page. Read only once a file has failed its format's
check, so a real model costs nothing."""
import json
import re
from pathlib import Path
from typing import Optional

# Enough of the start of a page or message to tell it and quote its title.
_HEAD = 4096


def not_weights(path: Path) -> Optional[str]:
    """A message for `path` when its bytes are a web page, a Git LFS pointer or a server's JSON error, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").decode("utf-8", "replace")
    low = text.lower()
    if low.startswith("version https://git-lfs.github.com/spec/"):
        size = re.search(r"^size (\d+)", text, re.M)
        real = f" (the model is {int(size.group(1)):,} bytes)" if size else ""
        return (f"{path} is a Git LFS pointer, not the model{real}: the repository was cloned without its large "
                "files. Run `git lfs pull` in it, or download the file itself")
    if low.startswith(("<!doctype html", "<html", "<head", "<body", "<?xml")):
        title = re.search(r"<title[^>]*>([^<]{1,120})", text, re.I | re.S)
        said = f' ("{_printable(title.group(1))}")' if title else ""
        return (f"{path} is a web page{said}, not the model: the download saved the site's page instead (a login, "
                "a licence to accept, a moved or missing file). Open the model's page in a browser and re-download "
                "the file itself")
    if low.startswith("{") and len(head) < _HEAD:
        try:
            reply = json.loads(text)
        except (ValueError, RecursionError):    # 2,000 nested brackets fit in the head: no server's message
            return None
        said = reply.get("error") or reply.get("message") or reply.get("detail") if isinstance(reply, dict) else None
        if isinstance(said, str):
            return (f"{path} is a server's error message (\"{_printable(said[:200])}\"), not the model: the download failed. "
                    "Re-download the file")
    return None


def _printable(text: str) -> str:
    """Quoted text of a stranger's page in one line, without the terminal's control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())
