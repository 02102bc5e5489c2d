"""A cancel seen while diffusers' from_pretrained reads a part's weights. Kinograph's own weights reader checks the
run's cancel at each tensor (weights.read_selected), but a diffusers folder's parts are read by diffusers itself
(model_loading_utils.load_state_dict, for the single file of a part and for each shard): a cancel was seen only
between parts, after a 20 GB transformer. diffusers has no hook for it; its reading of a safetensors file is routed
here instead, to the same reading (safetensors' load_file is safe_open and get_tensor of each key) with the check
between tensors. Other formats (a .bin, a GGUF) and reads without a memory map are left to diffusers."""
from __future__ import annotations

import os

from graph_engine.context import check_cancelled
from graph_engine.errors import Cancelled
from nodes.generate.after_import import after_import

# diffusers' module that reads a part's file, and the one that imports its load_state_dict by name
_READER = "diffusers.models.model_loading_utils"
_IMPORTER = "diffusers.models.modeling_utils"


def cancellable_diffusers_loads() -> None:
    """Route diffusers' reading of a part's safetensors through load_state_dict below (now, or as diffusers is
    imported)."""
    after_import(_READER, _route)


def _route(reader) -> None:
    import inspect
    import sys
    original = reader.load_state_dict
    if getattr(original, "checks_cancel", False):
        return
    # its arguments differ between diffusers versions (0.33 to 0.35: dduf_entries and no map_location; older:
    # variant), so they are read by its own signature and passed on to it unchanged
    signature = inspect.signature(original)

    def load_state_dict(checkpoint_file, *args, **kwargs):
        try:
            given = signature.bind(checkpoint_file, *args, **kwargs).arguments
        except TypeError:
            given = None        # diffusers' own call says what is wrong
        if given is not None and isinstance(checkpoint_file, (str, os.PathLike)) \
                and str(checkpoint_file).endswith(".safetensors") and not given.get("disable_mmap") \
                and not given.get("dduf_entries"):      # a part inside a .dduf archive: diffusers reads it
            try:
                return _read(checkpoint_file, given.get("map_location", "cpu"))
            except Cancelled:
                raise
            except Exception:   # noqa: BLE001 - diffusers' own reading says what is wrong with the file (git-lfs
                pass            # pointers and all)
        return original(checkpoint_file, *args, **kwargs)
    load_state_dict.checks_cancel = True
    reader.load_state_dict = load_state_dict
    importer = sys.modules.get(_IMPORTER)
    if importer is not None and hasattr(importer, "load_state_dict"):
        importer.load_state_dict = load_state_dict


def _read(path, device) -> dict:
    """safetensors.torch.load_file(path, device), the run's cancel checked before each tensor."""
    from safetensors import safe_open
    out = {}
    with safe_open(str(path), framework="pt", device=str(device) if device is not None else "cpu") as f:
        for k in f.keys():
            check_cancelled()
            out[k] = f.get_tensor(k)
    return out
