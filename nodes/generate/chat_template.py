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

import json
import sys
import threading

from graph_engine import NodeError
from graph_engine.context import check_cancelled
from graph_engine.errors import Cancelled
from nodes.generate.after_import import after_import
from nodes.math.regex_process import CANCEL_SECONDS, RegexChild

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


class TemplateRefused(NodeError):
    """A chat template that failed or passed a cap in the child; `why` says how (for a message naming the model)."""

    def __init__(self, why: str):
        super().__init__(f"a text encoder's tokenizer's chat template {why} (the template is code kept in the "
                         f"model's files): get the text encoder again from where it was published")
        self.why = why


def apply_chat_template(tokenizer, messages, what: str, fix: str = "", **kwargs) -> str:
    """tokenizer.apply_chat_template(messages, tokenize=False, **kwargs), a NodeError naming `what` (the model) and
    `fix` (another way than the template, where the node has one) where its template fails or passes a cap."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        # transformers' ValueError ('tokenizer.chat_template is not set'), a traceback out of Ideogram 4's encoder: the
        # tokenizer comes from a folder beside the model, whose tokenizer_config.json may lack the template
        raise NodeError(f"{what}: its tokenizer has no chat template, which the prompt is written with: give the "
                        f"tokenizer published with the model (its tokenizer_config.json or chat_template.jinja holds "
                        f"one){fix}")
    if isinstance(template, dict) and "default" not in template:
        # transformers' ValueError, which came out as a traceback: it writes a prompt with the template named default
        raise NodeError(f"{what}: its tokenizer has chat templates named {', '.join(sorted(map(str, template)))} and "
                        f"none named default, the one a prompt is written with: get the model again from where it was "
                        f"published{fix}")
    route_chat_templates()
    base = sys.modules.get(_IMPORTERS[0])
    if base is not None and getattr(base, "render_jinja_template", None) is not rendered_in_child:
        # a transformers before render_jinja_template (pyproject allows 4.46): its apply_chat_template renders the
        # template itself, uncapped in this process
        import transformers
        raise NodeError(f"{what}: transformers {transformers.__version__} renders a tokenizer's chat template where "
                        f"Kinograph cannot cap it (the template is code kept in the model's files): update "
                        f"transformers (pip install -U transformers){fix}")
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    except TemplateRefused as e:
        raise NodeError(f"{what}: its tokenizer's chat template {e.why} (the template is code kept in the "
                        f"model's files): get the model again from where it was published{fix}") from None


def rendered_in_child(conversations, tools=None, documents=None, chat_template=None,
                      return_assistant_tokens_mask=False, continue_final_message=False, add_generation_prompt=False,
                      **kwargs):
    """transformers' render_jinja_template (which a tokenizer's and a processor's apply_chat_template call), run in
    the capped child: the same (renderings, generation indices), or TemplateRefused. The messages go as JSON: what
    is no JSON (a processor's picture in a message) goes as its type's name, as transformers shows it a template,
    which tests for it and does not print it."""
    if isinstance(chat_template, str) and len(chat_template) > MOST_CHARS:
        raise TemplateRefused(f"is {len(chat_template):,} characters long, where published ones are under 50,000 "
                              f"(Jinja would take minutes to compile it)")
    from transformers.utils import chat_template_utils as library
    # what transformers shows a template of the caller's values (a dataclass or pydantic message as a dict, a numpy
    # scalar as a number), where this version of it says; what is still no JSON then goes as its type's name
    plain = getattr(library, "_plain_template_data", lambda value: value)
    call = {"conversations": [plain(getattr(c, "messages", c)) for c in conversations], "documents": plain(documents),
            "tools": None if tools is None else
            [plain(t if isinstance(t, dict) else library.get_json_schema(t)) for t in tools],
            "chat_template": chat_template, "return_assistant_tokens_mask": return_assistant_tokens_mask,
            "continue_final_message": continue_final_message, "add_generation_prompt": add_generation_prompt,
            **plain(kwargs)}
    global _child
    request = (json.loads(json.dumps(call, default=lambda o: f"<{type(o).__name__}>")), MOST_LINES,
               [p for p in sys.path if isinstance(p, str)])     # (a tool may add a Path: no JSON)
    try:
        _take_turn()
        try:
            _child = _child or RegexChild()
            out = _child.ask("chat_template", request, SECONDS)
        finally:
            _asking.release()
    except TimeoutError:
        out = {"error": f"did not finish in {SECONDS} s for one prompt"}
    except ChildProcessError as e:
        out = {"error": f"stopped the process rendering it (exit code {e.args[0]})"}
    except OSError as e:
        out = {"error": f"could not be rendered: no Python process could be started ({e})"}
    if "error" in out:
        raise TemplateRefused(out["error"])
    rendered, indices = out["value"]
    # A template may write half a UTF-16 pair ('\\ud800' in Jinja), which no tokenizer reads (transformers' fast
    # ones stopped in a TypeError traceback): each is a '?', as any text encoded so shows what it cannot hold (one
    # character for one: the generation indices stay).
    rendered = [text.encode("utf-8", "replace").decode("utf-8") for text in rendered]
    return rendered, [[tuple(span) for span in spans] for spans in indices]


def _take_turn() -> None:
    """The child, once the rendering before (another run's, up to SECONDS) is done; Cancelled where this run is
    cancelled meanwhile: it waited its turn out, then rendered."""
    while not _asking.acquire(timeout=CANCEL_SECONDS):
        check_cancelled()
    try:
        check_cancelled()
    except Cancelled:
        _asking.release()
        raise


# transformers' module that renders chat templates, and those that import its render_jinja_template by name
_RENDERER = "transformers.utils.chat_template_utils"
_IMPORTERS = ("transformers.tokenization_utils_base", "transformers.processing_utils")


def route_chat_templates() -> None:
    """Send every chat template transformers renders through rendered_in_child: Kinograph's own prompts, and those
    the pipelines it calls write themselves (ZImagePipeline._encode_prompt, Flux2KleinPipeline's, Flux3's encoder
    step, QwenImage21Pipeline's processor), where a stranger's Jinja looped uncapped in Kinograph's process."""
    after_import(_RENDERER, _route)


def _route(renderer) -> None:
    renderer.render_jinja_template = rendered_in_child
    for name in _IMPORTERS:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "render_jinja_template"):
            module.render_jinja_template = rendered_in_child
