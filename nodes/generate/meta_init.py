"""torch's weight initialisers return a tensor on the meta device as it is, without running.

Every load builds its network twice: first on the meta device to check what a file's shapes claim
(converters.check_claim, config_bound), then for real with its parameters moved to the meta device as they are made
(accelerate's init_empty_weights, diffusers' own low-memory load). Each layer's reset_parameters runs in both, on
meta tensors, where it computes nothing (a meta tensor holds no values) yet still costs Python and the dispatcher:
a quarter of the CPU time of loading a small Wan transformer file. A tensor holding values is initialised as before,
in any thread, so what a model computes is unchanged."""
from __future__ import annotations

import functools
import threading

# torch.nn.init's public in-place initialisers (layers call them through the module: `init.kaiming_uniform_(...)`).
INITIALISERS = ("constant_", "dirac_", "eye_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
                "orthogonal_", "sparse_", "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_")
_lock = threading.Lock()


def skip_init_on_meta() -> None:
    """Wrap torch.nn.init's initialisers (once per process) so they pass meta tensors through untouched, and the
    copies transformers keeps of them (its models' _init_weights call those: CLIP's text encoder drew a normal
    sample for each of its meta tensors, two thirds of an SD 1.5 checkpoint's build)."""
    import sys
    from torch.nn import init
    hf = sys.modules.get("transformers.initialization")
    with _lock:
        for name in INITIALISERS:
            fn = getattr(init, name)
            if _torchs_own(fn, init):
                setattr(init, name, _skipping(fn))
        for name, fn in getattr(hf, "TORCH_INIT_FUNCTIONS", {}).items():
            if _torchs_own(fn, init):
                hf.TORCH_INIT_FUNCTIONS[name] = _skipping(fn)


def _torchs_own(fn, init) -> bool:
    """torch's own initialiser, not yet wrapped. Not a stand-in another library holds there for the length of a load
    (diffusers' and transformers' no_init_weights put a no-op there and their originals back after): wrapped, that
    no-op stayed for good where their restore came between this read and the write (another thread's load), and every
    real layer built after kept uninitialised memory. A stand-in is left to its owner; the next check wraps torch's."""
    return not getattr(fn, "skips_meta", False) and getattr(fn, "__module__", None) == init.__name__


def _skipping(initialise):
    @functools.wraps(initialise)
    def wrapped(tensor, *args, **kwargs):
        if getattr(tensor, "is_meta", False):
            return tensor
        return initialise(tensor, *args, **kwargs)
    wrapped.skips_meta = True
    return wrapped
