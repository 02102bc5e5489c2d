"""Exceptions the engine and nodes raise; all carry a message written for a person."""


class KinographError(Exception):
    """Base for errors that are shown to the user as a message, never as a traceback."""


class NodeError(KinographError):
    """A node could not do its job because of its input (a missing file, a bad value...).

    The message must name the thing and say how to fix it."""


class Cancelled(KinographError):
    """The run was cancelled by the user."""

    def __init__(self, message: str = "cancelled"):
        super().__init__(message)


class WorkflowError(KinographError):
    """A workflow file could not be loaded or is invalid; `problems` lists each located message."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# Characters of a user's value a message shows: enough to recognise it, where a pasted megabyte or a 5,000-digit
# number printed whole buried the message.
SHOWN = 80


def shown(value) -> str:
    """`value` as a message names it: its repr, cut at SHOWN characters with its length said. (nodes/math/regex_child
    keeps its own: it runs as a script that imports nothing of Kinograph.)"""
    if isinstance(value, str) and len(value) > SHOWN:
        return f"{value[:SHOWN]!r}... ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}... ({len(text):,} characters)"
