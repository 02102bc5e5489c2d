"""`kinograph ARGS` as main() runs it, in the test's own process. A fresh interpreter for each command cost a second
or two of imports and proves nothing the callers check (exit code, what was printed, files written); the tests of
what only a process shows (what --help imports, a pipe closed under the command) start one themselves.

What a process would show is kept: its stdout and stderr are file descriptors 1 and 2 (children such as ffmpeg write
there too), warnings.warn prints under the interpreter's default filters, a warning logged where the program set no handler is printed on stderr (logging's last resort, which
pytest's own log handlers would otherwise take), and config.yaml is read afresh for the command and not kept after
it (the command's environment may name another config folder)."""
import contextlib
import io
import locale
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from unittest import mock


class _LastResort(logging.StreamHandler):
    """logging.lastResort of a process with no handlers of its own: WARNING and up, the bare message, for a record
    that no handler other than pytest's would take."""

    def __init__(self, stream):
        super().__init__(stream)
        self.setLevel(logging.WARNING)

    def filter(self, record):
        logger = logging.getLogger(record.name)
        while logger:
            if any(h is not self and not type(h).__module__.startswith("_pytest") for h in logger.handlers):
                return False
            logger = logger.parent if logger.propagate else None
        return super().filter(record)


@contextlib.contextmanager
def _process_warnings():
    """The interpreter's default warning filters, each warning printed on sys.stderr; pytest's own (which record
    them, and ignore FutureWarning by its configuration) come back after."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning, DeprecationWarning):
            warnings.simplefilter("ignore", category)
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line))
        yield


@contextlib.contextmanager
def _process_streams():
    """fds 1 and 2 onto files, and sys.stdout / sys.stderr as a process opens them over those fds."""
    for s in (sys.stdout, sys.stderr):
        s.flush()
    saved = os.dup(1), os.dup(2)
    files = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    encoding = locale.getpreferredencoding(False)
    try:
        for fd, f in zip((1, 2), files):
            os.dup2(f.fileno(), fd)
        streams = (open(1, "w", encoding=encoding, closefd=False),
                   open(2, "w", encoding=encoding, errors="backslashreplace", closefd=False))
        try:
            with mock.patch.object(sys, "stdout", streams[0]), mock.patch.object(sys, "stderr", streams[1]):
                yield files
        finally:
            for s in streams:
                s.close()
    finally:
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
        for f in files:
            f.close()


def cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Its exit code and what it printed, run with `env` as the whole environment and `cwd` as the folder."""
    from app.cli import main
    from graph_engine import config
    here = os.getcwd()
    with mock.patch.dict(os.environ, env if env is not None else dict(os.environ), clear=True), \
            _process_streams() as (out, err), _process_warnings():
        last_resort = _LastResort(sys.stderr)
        logging.root.addHandler(last_resort)
        config.settings.cache_clear()
        os.chdir(cwd or here)           # contextlib.chdir is 3.11's, and 3.10 is supported
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:          # argparse's own refusals
            code = e.code
        finally:
            os.chdir(here)
            config.settings.cache_clear()
            logging.root.removeHandler(last_resort)
        if code is not None and not isinstance(code, int):     # as the interpreter ends on SystemExit("why")
            print(code, file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        out.seek(0)
        err.seek(0)
        text = [io.TextIOWrapper(f, encoding=locale.getpreferredencoding(False), errors="replace").read()
                for f in (out, err)]
    return subprocess.CompletedProcess(["kinograph", *args], code or 0, *text)
