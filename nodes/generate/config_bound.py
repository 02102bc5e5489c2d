"""A model folder's config.json is held to the weight files beside it before the model is built.

diffusers and transformers build a model from its config.json before reading any weight, and some parts are real
memory at once (rotary tables, buffers), so a received folder whose config claims a million layers or a hidden size
of a billion hung the load or asked for tens of GB before any message. Every `from_pretrained` of a model class
first builds the config on the meta device (no memory), counting what it registers, and stops as soon as that passes
BOUND times the tensors and values the folder's weight files hold (their headers only): a real model registers about
what its files hold (tied embeddings and packed quantised weights at most a few times more)."""
from __future__ import annotations

import functools
import math
import threading
from pathlib import Path

from graph_engine import NodeError

BOUND = 4
# Room for the small tables a model builds that no file holds (rotary frequencies, position ids).
SPARE_TENSORS, SPARE_VALUES = 64, 1 << 24
_active = threading.local()
_installing = threading.Lock()
_hooked = False


class _Over(Exception):
    pass


class _Budget:
    """What the module being built registers, against what its weight files hold."""

    def __init__(self, tensors: int, values: int):
        self.max_tensors, self.max_values = BOUND * tensors + SPARE_TENSORS, BOUND * values + SPARE_VALUES
        self.seen, self.tensors, self.values, self.over, self.failed = {}, 0, 0, False, False

    def add(self, module, name: str, tensor) -> None:
        key = (id(module), name)
        self.values += tensor.numel() - self.seen.get(key, 0)
        self.tensors += key not in self.seen
        self.seen[key] = tensor.numel()
        if self.tensors > self.max_tensors or self.values > self.max_values:
            self.over = True
            raise _Over()


def _registered(module, name, tensor):
    budget = getattr(_active, "budget", None)
    if budget is not None and tensor is not None:
        budget.add(module, name, tensor)


def _attached(module, name, child):
    """A module attached whole: copies (nn.TransformerEncoder deep-copies its layer) register nothing as they are made."""
    if getattr(_active, "budget", None) is None or child is None:
        return
    for sub in child.modules():
        for key, tensor in list(sub._parameters.items()) + list(sub._buffers.items()):
            _registered(sub, key, tensor)


def refuse_special(folder: Path) -> None:
    """A named pipe or device among a folder's files (a received archive can hold one): the library opening it
    waited for ever, past Ctrl-C."""
    from graph_engine.atomic import special_file
    for entry in folder.iterdir():
        kind = special_file(entry)
        if kind:
            raise NodeError(f"{entry} is {kind}, not a file: reading it waits for ever or never ends; copy the "
                            "model folder again")


def held(folder: Path):
    """(tensors, values, files) the weight files directly in `folder` hold, from their headers; None where a sharded
    checkpoint's index names a file that is not there (the library names what is missing)."""
    import json
    from nodes.generate.detect import WEIGHT_EXT, loaded_weights, read_header
    files = loaded_weights(sorted(f for f in folder.iterdir() if f.suffix.lower() in WEIGHT_EXT and f.is_file()))
    for index in folder.glob("*.index.json"):
        try:
            named = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        except (OSError, ValueError, AttributeError):
            return None
        if any(not (folder / str(n)).is_file() for n in named):
            return None
    if not files:
        return None
    shapes = [s for f in files for s in read_header(f).shapes.values()]
    return len(shapes), sum(math.prod(s) for s in shapes), files


def check(folder: Path, build) -> None:
    """Refuse `folder` when `build()` (its config's model) registers more than BOUND times what its files hold."""
    found = held(folder)
    if found is None:
        return
    tensors, values, files = found
    budget = over_budget(build, tensors, values)
    if budget is not None:
        names = files[0].name if len(files) == 1 else f"its {len(files)} weight files"
        raise NodeError(
            f"{folder / 'config.json'} describes a model far larger than {names} ({tensors:,} tensors of "
            f"{values:,} values): building it passed {budget.tensors:,} tensors of {budget.values:,} values, and "
            f"Kinograph builds at most {BOUND} times what the weights hold. The config.json is damaged or belongs to "
            "another model: copy the model folder again")


def over_budget(build, tensors: int, values: int):
    """The count `build()` reached on the meta device where it passed BOUND times these tensors and values (None
    where it stayed within them, or failed on its own: the load itself reports that). Also for modules whose sizes
    a library reads from a file's tensor shapes, such as an IP-Adapter's projection."""
    budget = _measure(build, tensors, values, "meta")
    return budget if budget.over else None


def _measure(build, tensors: int, values: int, device: str) -> _Budget:
    """What `build()` registered on `device`, stopped as soon as it passed the budget; `failed`: it raised before."""
    import warnings
    import torch
    from nodes.generate.meta_init import skip_init_on_meta
    _hook()
    skip_init_on_meta()     # this build and the library's own after it initialise meta tensors only
    _active.budget = budget = _Budget(tensors, values)
    try:
        # what is built is thrown away: torch's "copying ... to a meta parameter ... is a no-op" (an IP-Adapter's
        # conversion loads the file into it) would reach the user's terminal
        with torch.device(device), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build()
    except Exception:       # noqa: BLE001 - a library that wraps the stop in its own error is still stopped
        budget.failed = not budget.over
    finally:
        _active.budget = None
    return budget


def held_values(state) -> int:
    """The values a state dict's tensors hold in memory: a pickled tensor can be a view whose stride 0 repeats one
    stored value across any shape, so its shape alone says nothing of what the file holds."""
    import torch
    return sum(min(t.numel(), t.untyped_storage().nbytes() // max(t.element_size(), 1)) for t in state.values()
               if isinstance(t, torch.Tensor))


def refuse_built_beyond(build, state, name, made: str, source: str) -> None:
    """Refuse a network whose sizes `build()` reads from a file's tensor names and shapes (an annotator's width from
    one weight, an upscaler's depth from its highest block number, an IP-Adapter's projection) when building it on
    the meta device passes BOUND times what the file holds: a few bytes naming block 200,000 made a 5 GB upscaler.
    `made` says what was measured ("its tensor names and shapes make HED")."""
    values = held_values(state)
    over = _measure(build, len(state), values, "meta")
    if over.failed:
        # a constructor that reads a number back from a tensor (SwinIR's, HAT's drop-path rates: .item()) cannot
        # build on meta; on the CPU the hooks stop it at the budget, so it holds no more than that at any time
        over = _measure(build, len(state), values, "cpu")
    if over.over:
        raise NodeError(f"{name}: {made} of {over.values:,} values or more, far more than the file's {values:,}: "
                        f"the file is damaged or made to fill memory. Get it again from {source}")


def _diffusers_build(cls, folder: Path):
    return lambda: cls.from_config(cls.load_config(str(folder)))


def _transformers_build(cls, folder: Path, config=None):
    def build():
        cfg = config if config is not None and not isinstance(config, (str, Path)) else \
            cls.config_class.from_pretrained(str(folder))
        return cls._from_config(cfg)
    return build


def _checked(func, builder):
    @functools.wraps(func)
    def from_pretrained(cls, path, *args, **kwargs):
        folder = Path(str(path)) / (kwargs.get("subfolder") or "") if path is not None else None
        if folder is not None and folder.is_dir():
            refuse_special(folder)
        if folder is not None and (folder / "config.json").is_file() and getattr(_active, "budget", None) is None:
            extra = {"config": kwargs["config"]} if "config" in kwargs else {}
            check(folder, builder(cls, folder, **extra))
        return func(cls, path, *args, **kwargs)
    from_pretrained.checks_config = True
    return from_pretrained


def _hook() -> None:
    """Count what modules register while a budget is active (once per process)."""
    global _hooked
    from torch.nn.modules.module import register_module_buffer_registration_hook, \
        register_module_module_registration_hook, register_module_parameter_registration_hook
    with _installing:
        if not _hooked:
            register_module_parameter_registration_hook(_registered)
            register_module_buffer_registration_hook(_registered)
            register_module_module_registration_hook(_attached)
            _hooked = True


def install(library: str) -> None:
    """Check every model folder `library` (diffusers or transformers) loads (once per process)."""
    if library == "diffusers":
        from diffusers import ModelMixin as base
        builder = _diffusers_build
    else:
        from transformers import PreTrainedModel as base
        builder = _transformers_build
    _hook()
    with _installing:
        if not getattr(base.from_pretrained, "checks_config", False):
            base.from_pretrained = classmethod(_checked(base.__dict__["from_pretrained"].__func__, builder))
