"""A tokenizer's chat template rendered in a child process with caps on its lines, memory and time. The template is a
stranger's Jinja code, kept in the model's own files (a GGUF's tokenizer.chat_template, a folder's
tokenizer_config.json / chat_template.jinja), and transformers renders it in Jinja's sandbox, which stops code from
running but not from looping or growing: two nested loops over range(100000), or a macro calling itself twice per level
forty levels deep, rendered for ever; {{ "a" * 10**10 }} took 10 GB in one operation. The sandbox could refuse a large
`*` (its intercepted_binops), but not a text doubled forty times by `~` in forty lines, nor "a".ljust(10**10), nor a
filter's width: only a cap on the whole rendering's memory is complete, so it runs in the child that runs regular
expressions (nodes/math/regex_process), whose address space is capped (Linux; elsewhere the line and time caps stay).
Jinja compiles the template to Python run under the name <template>; each line it runs there is counted and the
rendering stopped past the budget. A template too long to compile in seconds is refused first."""
from __future__ import annotations

import sys
import threading

from graph_engine import NodeError
from nodes.math.regex_process import RegexChild

# Characters of a template: Jinja compiles one at about 20 us a character (2.2 MB took 41 s; a GGUF's metadata may hold
# hundreds of MB), and the published templates (tool calls and reasoning included) are under 50,000.
MOST_CHARS = 256_000
# Template lines one rendering may run: the published templates (Qwen3's with its thinking switch, Llama 3's, Gemma's)
# run a few hundred for a prompt and a system turn; a loop of a hundred thousand passes is no chat turn.
MOST_LINES = 100_000
# Seconds one rendering may take, compiling the longest template (MOST_CHARS, about 5 s) and starting the child (about
# 1 s, importing transformers) included: a single operation on a big number (2 ** 10 ** 9) runs no lines to count.
SECONDS = 60
# one child for the process, asked by one thread at a time: it starts in about a second, which each prompt of a batch
# would pay again
_child = None
_asking = threading.Lock()


def apply_chat_template(tokenizer, messages, what: str, fix: str = "", **kwargs) -> str:
    """tokenizer.apply_chat_template(messages, tokenize=False, **kwargs), a NodeError naming `what` (the model) and
    `fix` (another way than the template, where the node has one) where its template fails or passes a cap."""
    template = getattr(tokenizer, "chat_template", None)
    longest = max((len(t) for t in (template.values() if isinstance(template, dict) else [template])
                   if isinstance(t, str)), default=0)
    if longest > MOST_CHARS:
        raise NodeError(f"{what}: its tokenizer's chat template is {longest:,} characters long, where published ones "
                        f"are under 50,000 (Jinja would take minutes to compile it; the template is code kept in the "
                        f"model's files): get the model again from where it was published{fix}")
    if isinstance(template, dict) and "default" not in template:
        # transformers' ValueError, which came out as a traceback: it writes a prompt with the template named default
        raise NodeError(f"{what}: its tokenizer has chat templates named {', '.join(sorted(map(str, template)))} and "
                        f"none named default, the one a prompt is written with: get the model again from where it was "
                        f"published{fix}")
    global _child
    request = (tokenizer.get_chat_template(None, None), messages, {**tokenizer.special_tokens_map, **kwargs},
               MOST_LINES, [p for p in sys.path if isinstance(p, str)])     # (a tool may add a Path: no JSON)
    try:
        with _asking:
            _child = _child or RegexChild()
            out = _child.ask("chat_template", request, SECONDS)
    except TimeoutError:
        out = {"error": f"did not finish in {SECONDS} s for one prompt"}
    except ChildProcessError as e:
        out = {"error": f"stopped the process rendering it (exit code {e.args[0]})"}
    except OSError as e:
        out = {"error": f"could not be rendered: no Python process could be started ({e})"}
    if "error" in out:
        raise NodeError(f"{what}: its tokenizer's chat template {out['error']} (the template is code kept in the "
                        f"model's files): get the model again from where it was published{fix}")
    return out["value"]
