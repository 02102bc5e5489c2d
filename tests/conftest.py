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


def pytest_collection_finish(session):
    """Collection imports every test file and, through them, torch, transformers, diffusers, scipy...: millions of
    objects that live until the end. Each full garbage collection walks them all, about a second each in a worker
    (the model manager collects on every eviction, and Python itself every few thousand allocations). Frozen, they are
    left out of those walks; what the tests make afterwards is collected as before."""
    import gc
    gc.freeze()
