"""The model lookup's warnings in the editor's Log: a name read from the one file of that name kept under another
sub-folder or in another container (nodes.common.models_dirs). `kinograph validate` and `run` print them on
stderr; an editor started from a menu has no stderr to read, so the artist did not learn which file was read.
config.yaml's too (graph_engine.config): it is read again when it changes, so a typo made while the editor is open
(model_dirs added as a 'not in the model folders' message advises) is said there, with its line."""
import logging

from PySide6.QtCore import QObject, Signal

MODELS_LOG = "kinograph.models"
CONFIG_LOG = "kinograph.config"


class _Relay(QObject):
    said = Signal(str, str)          # level, text


class ModelWarnings(logging.Handler):
    """Passes the lookup's warnings to `log` (level, text), a method of a widget: a run looks its models up on
    the run's worker thread, and the signal queues them to the widget's thread. The lookup says each name and
    file once, as the CLI does, so re-checking the loaders at every edit does not repeat them."""

    def __init__(self, log):
        super().__init__(logging.WARNING)
        self._relay = _Relay()
        self._relay.said.connect(log)
        for name in (MODELS_LOG, CONFIG_LOG):
            logging.getLogger(name).addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._relay.said.emit("warn", self.format(record))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        for name in (MODELS_LOG, CONFIG_LOG):
            logging.getLogger(name).removeHandler(self)
        super().close()
