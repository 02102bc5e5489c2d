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
