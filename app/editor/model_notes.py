"""The model lookup's warnings in the editor's Log: a name read from the one file of that name kept under another
sub-folder or in another container (nodes.common.models_dirs). `kinograph validate` and `run` print them on
stderr; an editor started from a menu has no stderr to read, so the artist did not learn which file was read.
config.yaml's too (graph_engine.config): it is read again when it changes, so a typo made while the editor is open
(model_dirs added as a 'not in the model folders' message advises) is said there, with its line. Those said while the
editor starts, before a window can show them (hold_early_warnings), are said in the first window's Log."""
import logging
from typing import List, Optional

from PySide6.QtCore import QObject, Signal

MODELS_LOG = "kinograph.models"
CONFIG_LOG = "kinograph.config"
LOGS = (MODELS_LOG, CONFIG_LOG)


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
        for text in _take_early():
            log("warn", text)
        for name in LOGS:
            logging.getLogger(name).addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._relay.said.emit("warn", self.format(record))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        for name in LOGS:
            logging.getLogger(name).removeHandler(self)
        super().close()


class _Early(logging.Handler):
    """Keeps the warnings said while the editor starts (its caches sized from config.yaml, the workflow's models
    looked up), before any window can show them: they went to a terminal that an editor started from a menu has not.
    The terminal still gets them."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.held: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.held.append(self.format(record))
        if not _others(record.name, self):
            logging.lastResort.handle(record)       # what logging does when no handler is there but this one


def _others(name: str, me: logging.Handler) -> bool:
    """Whether a record of logger `name` reaches a handler other than `me`."""
    logger: Optional[logging.Logger] = logging.getLogger(name)
    while logger is not None:
        if any(h is not me for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


_early: Optional[_Early] = None


def hold_early_warnings() -> None:
    """From now until the first window opens, keep the warnings for its Log (run_editor calls it first)."""
    global _early
    if _early is None:
        _early = _Early()
        for name in LOGS:
            logging.getLogger(name).addHandler(_early)


def _take_early() -> List[str]:
    """The warnings held so far, once: the first window says them, the next ones do not."""
    global _early
    if _early is None:
        return []
    for name in LOGS:
        logging.getLogger(name).removeHandler(_early)
    held, _early = _early.held, None
    return held
