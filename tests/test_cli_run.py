"""tests/cli_run.cli runs `kinograph` in the test's own process: what the tests read from it must be what a real
process shows (its stdout and stderr, exit code), and nothing it sets may stay for the tests after it."""
import os
import subprocess
import sys
from pathlib import Path

from graph_engine import config
from tests.cli_run import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "test_pattern.yaml"


def test_a_config_warning_reaches_stderr_and_its_settings_stay_with_that_run(tmp_path):
    """config.yaml's mistakes are logged; a real process prints them on stderr (logging's last resort). In-process
    they went to pytest's log capture, and the first run's settings (another config folder's) stayed cached for
    every later test in the worker."""
    (tmp_path / "config.yaml").write_text("bogus_key: 1\nkeep_takes: 0\n")
    before = config.settings()
    r = cli("validate", EXAMPLE, env=dict(os.environ, KINOGRAPH_CONFIG_DIR=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert f"{tmp_path / 'config.yaml'}:1: unknown key 'bogus_key', ignored" in r.stderr
    assert config.settings() == before


def test_what_a_child_process_prints_is_in_the_commands_output(monkeypatch):
    """A real process's stdout is file descriptor 1, which ffmpeg and other children inherit: a stray line there
    breaks `--json` for a farm. Only Python's own prints were read."""
    from app import cli as app_cli
    monkeypatch.setitem(app_cli.COMMANDS, "info", lambda args: subprocess.run(
        [sys.executable, "-c", "import sys; print('child out'); print('child err', file=sys.stderr)"]).returncode)
    r = cli("info")
    assert (r.returncode, r.stdout, r.stderr) == (0, "child out\n", "child err\n")


def test_exit_codes_are_a_processs(monkeypatch):
    """main() returning None exits 0, as `raise SystemExit(main())` does."""
    from app import cli as app_cli
    monkeypatch.setitem(app_cli.COMMANDS, "info", lambda args: None)
    assert cli("info").returncode == 0


def test_a_warning_is_printed_as_a_process_prints_it(monkeypatch):
    """A process shows warnings.warn on stderr under the interpreter's default filters; pytest records them
    instead (and ignores FutureWarning by its own configuration)."""
    import warnings
    from app import cli as app_cli

    def warns(args):
        warnings.warn("weights older than this torch", FutureWarning)
        warnings.warn("an API going away", DeprecationWarning)
        return 0
    monkeypatch.setitem(app_cli.COMMANDS, "info", warns)
    r = cli("info")
    assert "FutureWarning: weights older than this torch" in r.stderr and "going away" not in r.stderr
