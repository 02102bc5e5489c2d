"""ComfyUI's RegexExtract and RegexReplace as its code runs them (Python's re), and a model's chat template (Jinja),
run in a child process that can be stopped (regex_process and generate.chat_template say why). Run as a script it reads one {"function", "args"} JSON line at a time on stdin and
writes a {"value"} or {"error"} line for each; it imports nothing of Kinograph, so that it starts in
milliseconds."""
import json
import re
import sys

# no folded text is longer (logic.MAX_TEXT says why); '' replaced by a long text in a long one is their product
MAX_TEXT = 1_000_000
# the child's address space: Python and re need some tens of MB, a runaway pattern no more than this
MAX_BYTES = 1 << 30
# the CPU time of one call, past the share of any (text_nodes' and a file's import's REGEX_SECONDS, chat_template's
# SECONDS): a child left behind by a Kinograph killed mid-match (the OOM killer, a force-quit) backtracked on for
# hours at full CPU. Given again from where each call starts: RLIMIT_CPU counts the process's whole life, and the
# chat-template child lives as long as Kinograph, whose later prompts were killed once it had spent the cap.
MAX_CPU_SECONDS = 120


def _flags(case_insensitive, multiline, dotall) -> int:
    return (re.IGNORECASE if case_insensitive else 0) | (re.MULTILINE if multiline else 0) | \
        (re.DOTALL if dotall else 0)


def _short(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:80]) + f"... ({len(text)} characters)"


def regex_extract(string, pattern, mode, case_insensitive=True, multiline=False, dotall=False, group_index=1):
    """RegexExtract: the first match, all matches, the first match's group or every match's group (joined by
    newlines); an invalid pattern or a missing group gives '', as in ComfyUI."""
    flags = _flags(case_insensitive, multiline, dotall)
    try:
        if mode == "First Match":
            m = re.search(pattern, string, flags)
            return m.group(0) if m else ""
        if mode == "All Matches":
            # re.findall's items: the match, or its first group ('' where that took no part)
            return _gathered(((m.group(1) or "") if m.re.groups else m.group(0)
                              for m in re.finditer(pattern, string, flags)), pattern, string)
        # a group that took no part in the match (the other side of an |) gives '' / is skipped, as in ComfyUI
        if mode == "First Group":
            m = re.search(pattern, string, flags)
            return (m.group(group_index) or "") if m and len(m.groups()) >= group_index else ""
        if mode == "All Groups":
            return _gathered((m.group(group_index) for m in re.finditer(pattern, string, flags)
                              if m.groups() and len(m.groups()) >= group_index and m.group(group_index) is not None),
                             pattern, string)
    except re.error:
        pass
    return ""


def _gathered(found, pattern: str, string: str) -> str:
    """The found texts, one a line, counted as they are gathered: matches overlap where a group inside a lookahead
    holds the rest of the text ((?=(.*)) at every character), and the text's square (200 MB of an LLM's answer of
    20,000 characters; without end where the child has no memory cap, Windows and macOS) is refused at MAX_TEXT."""
    pieces, size = [], -1
    for piece in found:
        size += len(piece) + 1
        if size > MAX_TEXT:
            raise ValueError(f"regex_pattern {_short(pattern)} finds more than {MAX_TEXT:,} characters in the text "
                             f"of {len(string):,}: its matches overlap (a group in a lookahead holds the rest of the "
                             "text at every character); simplify it")
        pieces.append(piece)
    return "\n".join(pieces)


def regex_replace(string, pattern, replace, case_insensitive=True, multiline=False, dotall=False, count=0):
    """RegexReplace: re.sub with the node's flags (an invalid pattern fails in ComfyUI too); each replacement is
    counted as it is made, so that the text stops at MAX_TEXT characters."""
    try:
        rx = re.compile(pattern, _flags(case_insensitive, multiline, dotall))
    except re.error as e:
        raise ValueError(f"regex_pattern {_short(pattern)} is not a valid regular expression ({e})") from None
    try:
        rx.sub(replace, "")                 # a bad group reference fails here, matched or not, as in re.sub
    except re.error as e:
        raise ValueError(f"replace {_short(replace)} is not a replacement for regex_pattern {_short(pattern)} ({e}: "
                         "a group it lacks, or a bad escape)") from None
    made = [len(string)]

    def expand(m):
        piece = m.expand(replace)
        made[0] += len(piece)
        if made[0] > MAX_TEXT:
            raise ValueError(f"replacing {_short(pattern)} by {_short(replace)} makes a text of more than "
                             f"{MAX_TEXT} characters; no prompt is that long")
        return piece
    return rx.sub(expand, string, count=count)


def chat_template(call, most_lines, path):
    """transformers' render_jinja_template on `call` (its keyword arguments: the conversations, the template, the
    tokenizer's special tokens and the caller's), stopped past `most_lines` lines of the compiled template: its
    [renderings, generation indices]; a ValueError says why it failed. `path`: Kinograph's sys.path, where its
    transformers is: this child runs isolated (python -I), without the PYTHONPATH or user site-packages
    (pip install --user) that it may come from."""
    sys.path[:] = path
    # imported here, not above: the regex functions start in milliseconds without transformers
    from transformers.utils.chat_template_utils import render_jinja_template
    ran = 0

    def in_template(frame, event, arg):
        nonlocal ran
        if event == "line":
            ran += 1
            if ran > most_lines:
                raise TimeoutError
        return in_template

    sys.settrace(lambda frame, event, arg: in_template if frame.f_code.co_filename == "<template>" else None)
    try:
        out = list(render_jinja_template(**call))
    except TimeoutError:
        raise ValueError(f"runs more than {most_lines:,} lines for one prompt, looping without end") from None
    except MemoryError:
        raise ValueError(f"needs more than {MAX_BYTES >> 20} MB for one prompt") from None
    except Exception as e:      # the template's own raise_exception, or any error of a stranger's code
        raise ValueError(f"fails ({type(e).__name__}: {_short(str(e))})") from None
    finally:
        sys.settrace(None)
    # A prompt holds what it was given and the template's own words; `{{ m.content * 10**8 }}` wrote 200 MB, sent back
    # to Kinograph whole (and on to a tokenizer).
    written, given = sum(len(text) for text in out[0]), len(json.dumps(call))
    if written > given + MAX_TEXT:
        raise ValueError(f"writes {written:,} characters for one prompt, given {given:,} (the messages, tools and "
                         "template): it loops or repeats them")
    return out


FUNCTIONS = {"regex_extract": regex_extract, "regex_replace": regex_replace, "chat_template": chat_template}


def main():
    try:
        import resource
    except ImportError:                             # Windows has no resource module
        resource = None
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MAX_BYTES, MAX_BYTES))
    except (AttributeError, ValueError, OSError):    # no such limit here; a lower one stays
        pass
    for line in sys.stdin:
        _cap_cpu(resource)
        print(json.dumps(answer(json.loads(line))), flush=True)


def _cap_cpu(resource) -> None:
    """MAX_CPU_SECONDS more of CPU time from now (the soft limit, whose SIGXCPU ends the child; the hard one, which
    could not be raised again, is left as it is)."""
    try:
        used = resource.getrusage(resource.RUSAGE_SELF)
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        most = int(used.ru_utime + used.ru_stime) + 1 + MAX_CPU_SECONDS
        resource.setrlimit(resource.RLIMIT_CPU, (most if hard == resource.RLIM_INFINITY else min(most, hard), hard))
    except (AttributeError, ValueError, OSError):    # no such limit here (Windows: no resource module)
        pass


def answer(call) -> dict:
    pattern = _short(str(call["args"][1]))
    try:
        return {"value": FUNCTIONS[call["function"]](*call["args"])}
    except ValueError as e:
        return {"error": str(e)}
    except (IndexError, OverflowError, re.error) as e:      # a group it lacks, a{99999999999}
        return {"error": f"regex_pattern {pattern}: {e}"}
    except RecursionError:
        return {"error": f"regex_pattern {pattern} nests too deep for Python's re; simplify it"}
    except MemoryError:
        return {"error": f"regex_pattern {pattern} needs more than {MAX_BYTES >> 20} MB to match; simplify it"}


if __name__ == "__main__":
    main()
