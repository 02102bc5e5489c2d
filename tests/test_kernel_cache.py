"""Numba kernels compiled with cache=True are read back from the disk cache by the next process.

numba keys a kernel's cache entry on its code and on its closure's contents, pickled. A compiled function
pickles with an identity that is new in every process, so a kernel closing over another kernel missed the
cache in every process: compiled again (flow's adopt kernels cost 9 s of CPU in each process that
interpolated, a LUT's 3.6 s) and another entry added to __pycache__. Kernels call each other through
module globals instead."""
import importlib
import inspect
from pathlib import Path

from numba.core.dispatcher import Dispatcher

ROOT = Path(__file__).resolve().parents[1]


def _kernels():
    """{name: dispatcher} of every kernel in nodes/: module-level ones, and those the modules' zero-argument
    *_kernel(s) factories compile on first use."""
    found = {}
    for path in sorted((ROOT / "nodes").rglob("*.py")):
        if "njit" not in path.read_text():
            continue
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for name, value in list(vars(module).items()):
            if isinstance(value, Dispatcher):
                found[f"{module.__name__}.{name}"] = value
            elif (inspect.isfunction(value) and value.__module__ == module.__name__
                  and name.endswith(("_kernel", "_kernels")) and not inspect.signature(value).parameters):
                made = value()
                for k in made if isinstance(made, tuple) else (made,):
                    found[f"{module.__name__}.{k.py_func.__qualname__}"] = k
    return found


def test_no_kernel_closes_over_a_compiled_function():
    kernels = _kernels()
    # The factories were found: flow's adopt kernels and the LUT's (which closed over one) among them.
    assert {"nodes.common.flow._adopt_kernels.<locals>.own", "nodes.common.flow._adopt_kernels.<locals>.errors",
            "nodes.common.lut._kernels.<locals>.coded", "nodes.common.lut._kernels.<locals>.floats"} <= set(kernels)
    closing = {name: [c.cell_contents.py_func.__name__ for c in k.py_func.__closure__ or ()
                      if isinstance(c.cell_contents, Dispatcher)] for name, k in kernels.items()}
    assert {name: inner for name, inner in closing.items() if inner} == {}
