"""What to tell of a double-quoted YAML escape LibYAML refuses as no Unicode character.

LibYAML refuses \\uD800..\\uDFFF (half of a UTF-16 pair) and past \\U0010FFFF with 'found invalid Unicode character
escape code'. Such a text comes from JSON, which writes a character past \\uFFFF as its two halves (😀 is
"\\ud83d\\ude00"), pasted into a workflow's prompt; the advice given for a Windows path in double quotes fits none of
it."""
from __future__ import annotations

import re

# A backslash pair first, so "\\\\uD800" (a backslash, then uD800) is not taken for an escape
_ESCAPE = re.compile(r"\\(?:\\|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")


def _codes(line: str):
    """(the escape as written, its code) for each \\u / \\U escape of `line`, in order."""
    for m in _ESCAPE.finditer(line):
        digits = m.group(1) or m.group(2)
        if digits:
            yield m.group(0), int(digits, 16)


def unicode_escape_hint(line: str) -> str:
    """Why the first escape of `line` that is no character is refused, and what to write; '' when there is none."""
    codes = list(_codes(line))
    for i, (written, code) in enumerate(codes):
        if 0xD800 <= code <= 0xDBFF and i + 1 < len(codes) and 0xDC00 <= codes[i + 1][1] <= 0xDFFF:
            joined = 0x10000 + ((code - 0xD800) << 10) + (codes[i + 1][1] - 0xDC00)
            return (f"{written}{codes[i + 1][0]} is the two halves of one character, which YAML cannot join: write "
                    f"\\U{joined:08X} (or the character itself, {chr(joined)})")
        if 0xD800 <= code <= 0xDFFF:
            return (f"{written} is half of a UTF-16 pair (a surrogate), which no text holds: write the character "
                    "itself, or \\U and its 8 hexadecimal digits for one past \\uFFFF")
        if code > 0x10FFFF:
            return f"{written} is past the last Unicode character (\\U0010FFFF): write the character you mean"
    return ""
