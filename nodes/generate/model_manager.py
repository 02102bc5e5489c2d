"""The model manager: finds, checks and loads models from local files only, and keeps them loaded.

Local folders in diffusers layout load with `from_pretrained(..., local_files_only=True)`; single-file
checkpoints with `from_single_file` and a local config folder. safetensors is the default format;
legacy .ckpt/.pt/.pth files are read only through `torch.load(weights_only=True)`. Loaded pipelines
are cached by (family, path, dtype, device, options) in a small LRU, so every node of a graph (and
every run of a session) shares one copy."""
from __future__ import annotations

import gc
import json
import os
import struct
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from graph_engine import NodeError
from nodes.generate.families import family as family_spec, family_of_classes, family_of_keys
from nodes.generate.handles import ComponentHandle, ModelHandle
from nodes.generate.offline import go_offline, local_only

go_offline()

SAFE_EXT = (".safetensors",)
LEGACY_EXT = (".ckpt", ".pt", ".pth", ".bin")
DTYPES = ("auto", "fp32", "fp16", "bf16")
# Where a family's models live in a ComfyUI-style models folder.
KINDS = {"sd": "checkpoints", "animatediff": "checkpoints", "svd": "checkpoints", "wan": "diffusion_models",
         "ltx": "diffusion_models", "cogvideox": "diffusion_models", "hunyuan": "diffusion_models",
         "mini": "diffusion_models", "motion": "animatediff_models", "lora": "loras", "controlnet": "controlnet"}


# -- files ---------------------------------------------------------------------------------
def read_index(folder: Path) -> dict:
    p = Path(folder) / "model_index.json"
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NodeError(f"{p} is not valid JSON ({exc}); re-copy the model folder") from None


def safetensors_keys(path: Path) -> List[str]:
    """Tensor names from a safetensors header, checking the file is complete (clear error if not)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n <= 0 or n > 100 << 20 or 8 + n > size:
                raise ValueError("header length out of range")
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end > size:
            raise ValueError(f"{size} bytes on disk, the header promises {8 + n + end}")
    except (OSError, ValueError, struct.error, KeyError, TypeError) as exc:
        raise NodeError(f"{path} is not a valid safetensors file ({exc}): it is truncated or corrupt, "
                        "e.g. an interrupted copy or download. Copy the file again.") from None
    return [k for k in header if k != "__metadata__"]


def load_state_dict(path: Path) -> Dict[str, "object"]:
    """A checkpoint's tensors: safetensors, or a legacy pickle read with weights_only=True (no code runs)."""
    path = Path(path)
    if path.suffix in SAFE_EXT:
        safetensors_keys(path)
        from safetensors.torch import load_file
        return load_file(str(path))
    if path.suffix in LEGACY_EXT:
        import pickle
        import torch
        try:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise NodeError(f"{path} holds more than plain tensors (it would run code when loaded), so it is "
                            f"refused ({str(exc).splitlines()[0][:200]}). Convert it to .safetensors.") from None
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise NodeError(f"{path} is not a readable checkpoint ({str(exc).splitlines()[0][:200]}): it is "
                            "truncated or corrupt. Copy the file again.") from None
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            raise NodeError(f"{path} does not hold a state dict of tensors")
        return sd
    raise NodeError(f"{path}: unknown checkpoint format {path.suffix!r}; use .safetensors "
                    f"(or legacy {', '.join(LEGACY_EXT)})")


def checkpoint_keys(path: Path) -> List[str]:
    if path.suffix in SAFE_EXT:
        return safetensors_keys(path)
    return list(load_state_dict(path))


# -- detection -----------------------------------------------------------------------------
def detect_family(path: Path) -> Tuple[Optional[str], str]:
    """(family or None, what it was recognised by). "motion" = an AnimateDiff motion module file."""
    path = Path(path)
    if path.is_dir():
        index = read_index(path)
        if index:
            cls = index.get("_class_name", "")
            fam = family_of_classes(pipeline=cls)
            if fam == "sd" and (path / "motion_adapter").is_dir():
                fam = "animatediff"
            return fam, f"model_index.json names {cls}"
        for sub in ("transformer", "unet", ""):
            cfg = path / sub / "config.json"
            if cfg.is_file():
                try:
                    cls = json.loads(cfg.read_text(encoding="utf-8")).get("_class_name", "")
                except ValueError:
                    raise NodeError(f"{cfg} is not valid JSON; re-copy the model folder") from None
                if cls == "MotionAdapter":
                    return "motion", "config.json names MotionAdapter"
                return family_of_classes(denoiser=cls), f"{cfg.relative_to(path)} names {cls}"
        return None, "no model_index.json or config.json"
    fam = family_of_keys(checkpoint_keys(path))
    return fam, "its tensor names"


def check_family(path: Path, wanted: str) -> str:
    """The family at `path`, or a clear error when it is another family's model."""
    found, why = detect_family(path)
    ok = {wanted} | ({"sd", "animatediff"} if wanted in ("sd", "animatediff") else set())
    if found is None:
        if wanted == "mini" and (Path(path) / "transformer").is_dir():
            return wanted
        raise NodeError(f"{path} is not a model Kinograph recognises ({why}). Point the loader at a "
                        f"{family_spec(wanted).title} folder in diffusers layout (model_index.json + subfolders)")
    if found not in ok:
        title = "an AnimateDiff motion module" if found == "motion" else _a(f"{family_spec(found).title} model")
        use = "load.animatediff's motion_adapter" if found == "motion" else f"load.{found}"
        raise NodeError(f"{path} is {title} ({why}), not {family_spec(wanted).title}. Use {use}, or point this "
                        f"loader at a {family_spec(wanted).title} model")
    return found


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


# -- paths ---------------------------------------------------------------------------------
def _models_dirs():
    try:
        from nodes.common import models_dirs
    except ImportError:
        return None
    return models_dirs


def resolve_model_path(path: str, kind: str, what: str) -> Path:
    """An existing file/folder: the path itself, or a model of that name in the configured model folders."""
    if path and Path(path).exists():
        return Path(path)
    md = _models_dirs()
    if path and md is not None:
        found = md.find_model(Path(path).name, kind, required=False)
        if found:
            return Path(found)
    dirs = [str(d) for d in md.model_dirs()] if md is not None else []
    where = f" or into a '{kind}' folder of one of the model folders ({', '.join(dirs)})" if dirs else ""
    raise NodeError(f"{what} not found: {path or '(no path given)'}. Kinograph never downloads models; copy the "
                    f"model there (a diffusers folder with model_index.json, or a .safetensors file){where}")


def dtype_of(name: str, family: str, device: str):
    import torch
    if name not in DTYPES:
        raise NodeError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    if name == "auto":
        if device == "cpu":
            name = "fp32"
        else:
            name = "bf16" if family in ("wan", "ltx", "cogvideox", "hunyuan") and device.startswith("cuda") else "fp16"
    return name, {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


# -- motion modules, LoRAs -----------------------------------------------------------------
def load_motion_adapter(path: Path, dtype):
    """A MotionAdapter from a diffusers folder or an original AnimateDiff motion-module file."""
    from diffusers import MotionAdapter
    path = resolve_model_path(str(path), KINDS["motion"], "motion adapter")
    if path.is_dir():
        fam, why = detect_family(path)
        if fam != "motion":
            raise NodeError(f"{path} is not a motion adapter ({why}); give load.animatediff a MotionAdapter folder "
                            "or an mm_sd_v15*.safetensors/.ckpt file")
        with local_only("motion adapter", str(path)):
            return MotionAdapter.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    state = load_state_dict(path)
    if family_of_keys(state) != "motion":
        raise NodeError(f"{path} is not an AnimateDiff motion module (no motion_modules.* tensors)")
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers
    converted = convert_animatediff_checkpoint_to_diffusers(state)
    adapter = MotionAdapter(**motion_config(state, path))
    missing, unexpected = adapter.load_state_dict(converted, strict=False)
    missing = [k for k in missing if "pos_embed" not in k]
    if missing or unexpected:
        raise NodeError(f"{path}: motion module tensors do not match an AnimateDiff adapter "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return adapter.to(dtype)


def motion_config(state, path: Path) -> dict:
    """MotionAdapter config from an original motion module's tensor shapes (and a .json beside it, if any)."""
    side = path.with_suffix(".json")
    if side.is_file():
        return json.loads(side.read_text(encoding="utf-8"))
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("down_blocks.")})
    chans = [state[f"down_blocks.{i}.motion_modules.0.temporal_transformer.proj_in.weight"].shape[0]
             for i in blocks]
    layers = len({k.split(".")[3] for k in state if k.startswith("down_blocks.0.motion_modules.")})
    pe = [v for k, v in state.items() if k.endswith("pos_encoder.pe")]
    return dict(block_out_channels=tuple(chans), motion_layers_per_block=layers,
                use_motion_mid_block=any(k.startswith("mid_block.motion_modules") for k in state),
                motion_max_seq_length=int(pe[0].shape[1]) if pe else 32)


def activate_loras(pipe, loras) -> None:
    """Make exactly these (path, strength) LoRAs active on a shared pipeline (loading each file once)."""
    import hashlib
    loaded = set(getattr(pipe, "_kinograph_loras", set()))
    names, weights = [], []
    for path, strength in loras:
        name = "k" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        if name not in loaded:
            state = load_state_dict(Path(path))
            try:
                pipe.load_lora_weights(state, adapter_name=name)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise NodeError(f"{path} does not fit this {type(pipe).__name__} as a LoRA "
                                f"({str(exc).splitlines()[0][:200]})") from None
            loaded.add(name)
            pipe._kinograph_loras = loaded
        names.append(name)
        weights.append(float(strength))
    if names:
        pipe.enable_lora()
        pipe.set_adapters(names, weights)
    elif loaded:
        pipe.disable_lora()


# -- the manager ---------------------------------------------------------------------------
class ModelManager:
    def __init__(self, max_loaded: int = 3):
        self.max_loaded = max_loaded
        self._cache: "OrderedDict[tuple, object]" = OrderedDict()
        self._lock = threading.RLock()

    def load(self, family: str, path: str, *, dtype: str = "auto", device: str = "cpu", offload: str = "auto",
             **opts) -> ModelHandle:
        """Load (or reuse) a family's pipeline and return its MODEL handle."""
        from nodes.generate.adapters import get_adapter
        spec = family_spec(family)
        source = resolve_model_path(path, KINDS[family], f"{spec.title} model")
        config = opts.get("config")
        if source.is_file() and family not in ("sd", "animatediff"):
            raise NodeError(f"{source} is a single file; {spec.title} loads from a folder in diffusers layout "
                            "(model_index.json + subfolders)")
        check_family(source, family)
        if source.is_dir():
            for f in sorted(source.rglob("*.safetensors")):
                safetensors_keys(f)
        if family == "animatediff" and not opts.get("motion_adapter") and (source / "motion_adapter").is_dir():
            opts["motion_adapter"] = str(source / "motion_adapter")
        dname, torch_dtype = dtype_of(dtype, family, device)
        key = (family, str(source.resolve()), dname, device, offload,
               tuple(sorted((k, str(v)) for k, v in opts.items() if v)))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                pipe = self._cache[key]
            else:
                adapter = get_adapter(family)
                with local_only(f"{spec.title} model", str(source), f"Config folder: {config}" if config else ""):
                    try:
                        pipe = adapter.load(source, torch_dtype, device, **opts)
                    except Exception as exc:
                        if isinstance(exc, NodeError) or not _is_corrupt(exc):
                            raise
                        raise NodeError(f"{spec.title} model at {source} could not be read "
                                        f"({str(exc).splitlines()[0][:300]}): a weight file is truncated or "
                                        "corrupt. Copy the model again.") from None
                place(pipe, device, offload)
                self._cache[key] = pipe
                while len(self._cache) > self.max_loaded:
                    self._cache.popitem(last=False)
                    gc.collect()
        return ModelHandle(family=family, path=str(source), pipe=pipe, dtype=dname, device=device)

    def components(self, handle: ModelHandle) -> Dict[str, Optional[ComponentHandle]]:
        """VAE, text encoder and image encoder handles of a loaded model (None where it has none)."""
        p = handle.pipe
        mk = lambda part: ComponentHandle(handle.family, handle.path, p, part, handle.device)  # noqa: E731
        has_text = getattr(p, "text_encoder", None) is not None
        has_image = getattr(p, "image_encoder", None) is not None
        return {"vae": mk("vae"), "text_encoder": mk("text_encoder") if has_text else None,
                "image_encoder": mk("image_encoder") if has_image else None}

    def controlnet(self, path: str, model: ModelHandle):
        """A ControlNet in the model's dtype and device (cached like pipelines)."""
        import torch
        from diffusers import ControlNetModel
        source = resolve_model_path(path, KINDS["controlnet"], "ControlNet")
        dtype = model.denoiser.dtype
        key = ("controlnet", str(source.resolve()), str(dtype), model.device)
        with self._lock:
            if key not in self._cache:
                with local_only("ControlNet", str(source)):
                    if source.is_file():
                        net = ControlNetModel.from_single_file(str(source), dtype=dtype, local_files_only=True)
                    else:
                        net = ControlNetModel.from_pretrained(str(source), dtype=dtype, local_files_only=True)
                self._cache[key] = net.to(torch.device(model.device)).eval()
            self._cache.move_to_end(key)
            return self._cache[key]

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
        gc.collect()


def _is_corrupt(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(s in text for s in ("safetensor", "header", "incomplete", "invalid load key", "eof",
                                   "deserializ", "unexpected end", "truncat", "error while loading"))


def place(pipe, device: str, offload: str) -> None:
    """Put a pipeline on its device; offload to CPU between components when the GPU is short of memory."""
    if offload not in ("auto", "none", "model", "sequential"):
        raise NodeError(f"unknown offload mode {offload!r}; choose auto, none, model or sequential")
    if device == "cpu" or not hasattr(pipe, "enable_model_cpu_offload"):
        if hasattr(pipe, "to") and device != "cpu":     # loading already put the weights on the CPU
            pipe.to(device)
        return
    mode = offload
    if mode == "auto":
        import torch
        free, _ = torch.cuda.mem_get_info() if device.startswith("cuda") else (1 << 62, 0)
        size = sum(p.numel() * p.element_size() for m in pipe.components.values()
                   if hasattr(m, "parameters") for p in m.parameters())
        mode = "model" if size > 0.7 * free else "none"
    if mode == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


_DEFAULT: Optional[ModelManager] = None


def default_manager() -> ModelManager:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ModelManager(int(os.environ.get("KINOGRAPH_MODELS_LOADED", "3")))
    return _DEFAULT


def manager_for(ctx) -> ModelManager:
    """The manager a host passed to the run (ctx.models), else the process-wide one."""
    return ctx.models if ctx.models is not None else default_manager()


def list_found_models() -> List[Tuple[str, str, str]]:
    """(family, kind, path) of every model found in the configured model folders (for `kinograph info`)."""
    md = _models_dirs()
    if md is None:
        return []
    out = []
    for kind, paths in md.list_models().items():
        for p in paths:
            try:
                fam, _ = detect_family(Path(p))
            except NodeError:
                fam = "unreadable"
            out.append((fam or "unknown", kind, str(p)))
    return out
