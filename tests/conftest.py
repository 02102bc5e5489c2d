"""Test-session isolation: offline hubs, a private cache and config folder, offscreen Qt, and under
pytest-xdist (`make test` runs two workers) a share of the cores for each worker's thread pools."""
import os
import tempfile

# xdist's workers inherit the controller's environment, so a folder the controller made here would be
# shared by every worker (one worker's config or cache seen by another's test). Each process makes its
# own, and drops the controller's; a folder set by whoever ran pytest is kept.
_root = tempfile.mkdtemp(prefix="kinograph-tests-")
_parent = os.environ.get("KINOGRAPH_TESTS_ROOT")
for _key, _sub in (("KINOGRAPH_CACHE_DIR", "cache"), ("KINOGRAPH_CONFIG_DIR", "config"),
                   ("KINOGRAPH_DATA_DIR", "data")):
    if _parent and os.environ.get(_key) == os.path.join(_parent, _sub):
        del os.environ[_key]
    os.environ.setdefault(_key, os.path.join(_root, _sub))
os.environ["KINOGRAPH_TESTS_ROOT"] = _root
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Each library sizes its pool to the machine, so N workers would each run that many threads: on CI's two
# cores, two workers of two threads fight over every core. Set before torch, OpenCV or numba is imported
# (they read these at import), and inherited by the subprocesses tests start.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _share = str(max(1, _cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    for _key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_key, _share)


# Many CLI tests call main() in this process (the xdist worker) rather than a subprocess: whatever a test
# leaves behind (a signal handler, a signal wakeup fd, the working folder, a KINOGRAPH_* switch) then acts on
# every later test of that worker, or kills it: a SIGTERM handler left as SIG_DFL, or a wakeup fd whose number a
# later file reuses (each signal then writes a byte into it), and the run loses the worker mid-suite. Each test
# gets back what it found, and fails naming what it changed, so the culprit is the test that did it.
import gc  # noqa: E402
import signal  # noqa: E402

import pytest  # noqa: E402

_GUARDED_SIGNALS = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE", "SIGCHLD")
                    if hasattr(signal, n)]


def _wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd)
    return fd


def _cwd():
    try:
        return os.getcwd()
    except FileNotFoundError:       # removed under the worker: what main() then does differs (app.cli._check_cwd)
        return None


@pytest.fixture(autouse=True)
def _worker_left_as_found():
    handlers = {s: signal.getsignal(s) for s in _GUARDED_SIGNALS}
    wakeup, cwd = _wakeup_fd(), _cwd()
    ours = {k: v for k, v in os.environ.items() if k.startswith("KINOGRAPH_")}
    yield
    changed = []
    for s, h in handlers.items():
        if signal.getsignal(s) is not h:
            changed.append(f"the {signal.Signals(s).name} handler")
            if h is not None:       # None: set outside Python, nothing this process can put back
                signal.signal(s, h)
    if _wakeup_fd() != wakeup:
        changed.append("the signal wakeup fd")
        signal.set_wakeup_fd(wakeup)
    if not gc.isenabled():     # app.editor.gui_gc turned it off for an editor main() that did not put it back
        changed.append("Python's automatic garbage collection (off)")
        gc.enable()
    if _cwd() != cwd:
        changed.append(f"the working folder (now {_cwd()!r})")
        if cwd is not None:
            os.chdir(cwd)
    now = {k: v for k, v in os.environ.items() if k.startswith("KINOGRAPH_")}
    if now != ours:
        changed.append("the environment: " + ", ".join(sorted(k for k in now.keys() | ours.keys()
                                                              if now.get(k) != ours.get(k))))
        for k in now.keys() - ours.keys():
            del os.environ[k]
        os.environ.update(ours)
    if changed:
        pytest.fail("this test left the test process changed (put back now; use monkeypatch or restore it): "
                    + "; ".join(changed), pytrace=False)


def pytest_collection_finish(session):
    """Move everything collection made (every test module and the libraries they import: ~590,000 objects with
    the whole suite) out of the garbage collector's sight. The model cache runs a full collection each time it
    evicts a model that is still alive (nodes/generate/model_manager.py), and Python runs its own: each one walked
    all of them again, ~0.35 s CPU apiece, half the CPU time of the template tests. The garbage collection leaves
    first goes now."""
    gc.collect()
    gc.freeze()
