"""A tokenizer's chat template rendered within a budget of template lines. The template is a stranger's Jinja code,
kept in the model's own files (a GGUF's tokenizer.chat_template, a folder's tokenizer_config.json / chat_template.jinja),
and transformers renders it in Jinja's sandbox, which stops code from running but not from looping: two nested
loops over range(100000), or a macro calling itself twice per level forty levels deep, rendered for ever, the run
stuck at its text encoder past any timeout. Jinja compiles the template to Python run under the name <template>;
each line it runs there is counted and the rendering stopped past the budget. A template too long to compile in
seconds is refused first."""
from __future__ import annotations

import sys
import time

from graph_engine import NodeError

# Characters of a template: Jinja compiles one at about 20 us a character (2.2 MB took 41 s; a GGUF's metadata may hold
# hundreds of MB), and the published templates (tool calls and reasoning included) are under 50,000.
MOST_CHARS = 256_000
# Template lines one rendering may run: the published templates (Qwen3's with its thinking switch, Llama 3's, Gemma's)
# run a few hundred for a prompt and a system turn; a loop of a hundred thousand passes is no chat turn.
MOST_LINES = 100_000
# Seconds one rendering may take from its first template line: published templates render in milliseconds. A line
# may hand a filter a hundred thousand items' work in C (range(100000)|join, 24 ms), which the line count does not
# see: 19,000 loop passes of it, within MOST_LINES, rendered for 8 minutes.
MOST_SECONDS = 10.0


def apply_chat_template(tokenizer, messages, what: str, fix: str = "", **kwargs) -> str:
    """tokenizer.apply_chat_template(messages, tokenize=False, **kwargs), a NodeError naming `what` (the model) and
    `fix` (another way than the template, where the node has one) where its template runs past MOST_LINES or
    MOST_SECONDS."""
    ran, deadline = 0, None

    class TooLong(Exception):
        pass

    def in_template(frame, event, arg):
        nonlocal ran, deadline
        if event == "line":
            ran += 1
            now = time.monotonic()
            deadline = deadline or now + MOST_SECONDS       # from the first line: Jinja's compiling comes before
            if ran > MOST_LINES or now > deadline:
                raise TooLong(f"more than {MOST_LINES:,} lines" if ran > MOST_LINES else
                              f"longer than {MOST_SECONDS:g} seconds")
        return in_template

    def calls(frame, event, arg):
        return in_template if frame.f_code.co_filename == "<template>" else None

    template = getattr(tokenizer, "chat_template", None)
    longest = max((len(t) for t in (template.values() if isinstance(template, dict) else [template])
                   if isinstance(t, str)), default=0)
    if longest > MOST_CHARS:
        raise NodeError(f"{what}: its tokenizer's chat template is {longest:,} characters long, where published ones "
                        f"are under 50,000 (Jinja would take minutes to compile it; the template is code kept in the "
                        f"model's files): get the model again from where it was published{fix}")
    before = sys.gettrace()
    sys.settrace(calls)
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    except TooLong as e:
        raise NodeError(f"{what}: its tokenizer's chat template runs {e} for one prompt, looping without end (the "
                        "template is code kept in the model's files): get the model again from where it was "
                        f"published{fix}") from None
    finally:
        sys.settrace(before)
