"""The one error the importer raises: a message for a person, never a traceback."""
from graph_engine.errors import KinographError


class ComfyImportError(KinographError):
    """The file cannot be read as a ComfyUI workflow; the message says why and what to do."""
