"""`kinograph ARGS` as main() runs it, in the test's own process. A fresh interpreter for each command cost a second
or two of imports and proves nothing the callers check (exit code, what was printed, files written); the tests of
what only a process shows (what --help imports, a pipe closed under the command) start one themselves."""
import contextlib
import io
import os
import subprocess
from unittest import mock


def cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Its exit code and what it printed, run with `env` as the whole environment and `cwd` as the folder."""
    from app.cli import main
    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    with mock.patch.dict(os.environ, env if env is not None else dict(os.environ), clear=True), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        os.chdir(cwd or here)           # contextlib.chdir is 3.11's, and 3.10 is supported
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:          # argparse's own refusals
            code = e.code
        finally:
            os.chdir(here)
    return subprocess.CompletedProcess(["kinograph", *args], code, out.getvalue(), err.getvalue())
