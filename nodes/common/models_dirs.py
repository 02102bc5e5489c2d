"""Where model files live: the folders Kinograph searches, shared by every node that loads weights.

Folders, in search order:
  1. `KINOGRAPH_MODELS`: a path list (os.pathsep-separated, like PATH);
  2. `model_dirs:` in config.yaml (a path or a list; `~` expands);
  3. the default `models/` in Kinograph's data folder (KINOGRAPH_DATA_DIR, else $XDG_DATA_HOME/kinograph, else
     ~/.local/share/kinograph).
Each folder has one sub-folder per kind, named as in ComfyUI, so a ComfyUI `models/` folder
(or the ComfyUI folder holding it) can be listed as is: checkpoints/, vae/, loras/,
upscale_models/, ... (and the older or node-pack names ComfyUI also searches: clip/, unet/,
diffusers/, CogVideo/, animatediff_motion_lora/, custom_nodes/*/ckpts/<kind>). The folders an
`extra_model_paths.yaml` names (ComfyUI's own format, incl. its A1111 preset) count too: the one
in a listed ComfyUI folder, and any named by `extra_model_paths:` in config.yaml.
A name is looked up in the kind's folders (and their sub-folders), also with its own sub-folder
(`sub/x.safetensors`, or `sub\\x.safetensors` as ComfyUI on Windows writes it); an absolute path, or a relative
one not found in a model folder, is taken as it is."""
from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, Optional

from graph_engine import NodeError

log = logging.getLogger("kinograph.models")

KINDS = ("checkpoints", "vae", "loras", "upscale_models", "latent_upscale_models", "animatediff_models",
         "animatediff_motion_lora", "diffusion_models", "text_encoders", "clip_vision", "controlnet", "rife", "diffusers",
         "embeddings", "depth", "ipadapter", "style_models", "pose", "sam2", "annotators",
         "audio_encoders", "model_patches", "background_removal", "optical_flow")
# Other folder names searched for a kind: older ComfyUI names, diffusers-layout folders, the
# CogVideoX pack's CogVideo/, AnimateDiff-Evolved's motion LoRAs (a LoRA like any other), x-flux-comfyui's XLabs
# ControlNets, IP-Adapters and LoRAs.
ALIASES = {"text_encoders": ("clip",), "diffusion_models": ("unet", "diffusers", "CogVideo"), "rife": ("frame_interpolation",),
           "checkpoints": ("diffusers", "CogVideo"), "loras": ("animatediff_motion_lora", "xlabs/loras"),
           "depth": ("depthanything", "geometry_estimation"), "pose": ("detection",), "controlnet": ("xlabs/controlnets",),
           "ipadapter": ("xlabs/ipadapters",),
           "sam2": ("sam3", "sams")}
# Kinds comfyui_controlnet_aux keeps in its ckpts/ folder, each file under its Hugging Face repository.
AUX_KINDS = ("pose", "annotators")
# The sub-folder names searched, one level deep (a kind or an alias).
_KIND_FOLDERS = set(KINDS) | {a for aliases in ALIASES.values() for a in aliases if "/" not in a}
# extra_model_paths.yaml key -> kind (ComfyUI's names, and the A1111 preset's).
YAML_KINDS = {"clip": "text_encoders", "unet": "diffusion_models", "motion_lora": "animatediff_motion_lora"}
WEIGHT_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".pkl", ".bin", ".gguf")
# Found by name too, so the node that reads the kind can say what to do with it (an ONNX export of a pose model).
OTHER_FORMATS = (".onnx",)
# Kinds whose models are transformers' folders (SAM 2 / SAM 3: config.json, model.safetensors ...).
CONFIG_FOLDER_KINDS = ("sam2", "depth")


def _default_dir() -> Path:
    # Kinograph's data folder, as for outputs: KINOGRAPH_DATA_DIR moved the output folder but not this one.
    from graph_engine.config import data_dir
    return data_dir() / "models"


def _configured() -> List[str]:
    from graph_engine.config import settings
    value = settings().get("model_dirs") or []
    return [value] if isinstance(value, str) else [str(v) for v in value if v]


_LOOK = threading.local()


@contextmanager
def one_look():
    """Within it, the model folders (and each kind's) are worked out once, not at each file looked for: the
    editor's check of a graph's loaders asked for them some 15,000 times, each time testing every kind's folder
    in every model folder (20 s for 90 nodes, the window frozen). For one pass over a graph, not across passes:
    a folder made meanwhile counts at the next."""
    outer = getattr(_LOOK, "dirs", None)
    if outer is None:
        _LOOK.dirs = {}
    try:
        yield
    finally:
        if outer is None:
            _LOOK.dirs = None


def _looked_once(key, work) -> List[Path]:
    seen = getattr(_LOOK, "dirs", None)
    if seen is None:
        return work()
    if key not in seen:
        seen[key] = work()
    return list(seen[key])


def model_dirs() -> List[Path]:
    """The model folders, in search order, without duplicates (existing or not)."""
    return _looked_once(None, _model_dirs)


def _model_dirs() -> List[Path]:
    raw = [p for p in os.environ.get("KINOGRAPH_MODELS", "").split(os.pathsep) if p.strip()]
    out: List[Path] = []
    for p in raw + _configured() + [str(_default_dir())]:
        d = model_dir(p)
        if d not in out:
            out.append(d)
    return out


def model_dir(p: str) -> Path:
    """The model folder a named folder stands for."""
    d = Path(os.path.expandvars(p.strip())).expanduser()
    # A ComfyUI folder itself, rather than its models/ folder, works too.
    if not any((d / k).is_dir() for k in KINDS) and (d / "models").is_dir():
        return d / "models"
    # One kind's own folder (ComfyUI/models/checkpoints) named instead: its files were 'in the model folder
    # itself' and the advice was to move them, which would have broken the ComfyUI install holding them.
    if d.name in _KIND_FOLDERS and not any((d / k).is_dir() for k in KINDS):
        return d.parent
    return d


def _yaml_files() -> List[Path]:
    from graph_engine.config import settings
    value = settings().get("extra_model_paths") or []
    files = [Path(os.path.expandvars(str(v))).expanduser() for v in ([value] if isinstance(value, str) else value)]
    for d in model_dirs():
        for f in (d / "extra_model_paths.yaml", d.parent / "extra_model_paths.yaml"):
            if f.is_file() and f not in files and (d.name == "models" or f.parent == d):
                files.append(f)
    return files


def extra_model_folders() -> Dict[Path, List[Path]]:
    """Each extra_model_paths.yaml searched -> the folders it adds (every kind's, in its order), for `kinograph info`."""
    out: Dict[Path, List[Path]] = {}
    for f in _yaml_files():
        folders = [d for ds in extra_model_paths(f).values() for d in ds]
        out[f] = list(dict.fromkeys(folders))
    return out


def extra_windows_folders() -> Dict[Path, List[str]]:
    """Each extra_model_paths.yaml searched -> the Windows folders it names (D:\\AI\\models), which name nothing
    here and are left out: `kinograph info` printed the file's heading over nothing (a ComfyUI folder copied from
    Windows, or WSL beside a Windows ComfyUI)."""
    out = {f: list(dict.fromkeys(w for _, _, ws in _extra_sections(f) for w in ws)) for f in _yaml_files()}
    return {f: ws for f, ws in out.items() if ws}


def extra_model_paths(path: Path) -> Dict[str, List[Path]]:
    """Kind -> folders from one extra_model_paths.yaml (relative paths against its base_path, which is
    itself relative to the file's folder). A malformed file gives nothing rather than stopping lookups."""
    out: Dict[str, List[Path]] = {}
    for _, folders, _ in _extra_sections(path):
        for kind, ds in folders.items():
            out.setdefault(kind, []).extend(ds)
    return out


def _extra_sections(path: Path) -> List[tuple]:
    """(is_default, kind -> folders, the Windows folders left out) for each section of one extra_model_paths.yaml."""
    import yaml
    try:
        if path.stat().st_size > 1 << 20:
            return []
        sections = _sections(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
        return []
    out: List[tuple] = []
    seen = set()
    for section in sections:
        # A section named again by an alias (`more: *comfy`) is the same mapping and adds nothing new; read again,
        # tens of thousands of aliases to a section of tens of thousands of keys (under 1 MB) meant billions of
        # keys looked at and as many folders listed.
        if not isinstance(section, dict) or id(section) in seen:
            continue
        seen.add(id(section))
        given = section.get("base_path") or "."
        # Only a text names a folder; written out, a list (a 486-byte file of aliases nesting lists 9 deep) made
        # hundreds of millions of strings and never ended.
        base = _yaml_path(given) if isinstance(given, str) else None
        if base is None:        # C:\ComfyUI on the Windows machine the file came from: nothing here
            if isinstance(given, str):
                out.append((False, {}, [given.strip()]))
            continue
        base = base if base.is_absolute() else path.parent / base
        folders: Dict[str, List[Path]] = {}
        windows: List[str] = []
        for key, value in section.items():
            kind = YAML_KINDS.get(key, key)
            # A kind's other folder names count as ComfyUI's keys do (geometry_estimation, frame_interpolation,
            # detection: ComfyUI's own folders, which a shared models store lists): they were dropped
            if kind not in _KIND_FOLDERS or not isinstance(value, str):
                continue
            for line in value.splitlines():
                p = _yaml_path(line) if line.strip() else None
                if p is None and line.strip():
                    windows.append(line.strip())
                elif p is not None:
                    # Written as ComfyUI's abspath makes them: `base_path: ../models` was listed as ComfyUI/../models.
                    folders.setdefault(kind, []).append(Path(os.path.normpath(p if p.is_absolute() else base / p)))
        # Taken as ComfyUI's add_model_folder_path takes it (`if is_default:`): 1 or a quoted "true" count there
        out.append((bool(section.get("is_default")), folders, windows))
    return out


# Entries an extra_model_paths.yaml may have once its aliases and merge keys (`<<: *comfy`) are written out: ComfyUI's
# example has a few dozen. A 25 KB file of 1,000 sections each merging one of 1,000 keys took 14 s to read, and 1 MB
# holds a thousand times that.
MAX_YAML_ENTRIES = 100_000


def _sections(text: str) -> list:
    """The top-level values of an extra_model_paths.yaml, each built only if the entries built so far, aliases and
    merge keys written out, stay within MAX_YAML_ENTRIES: a section that would pass it is left out, the others count."""
    import yaml
    from graph_engine.workflow import screen_yaml
    # Nesting past a folder list's refused first: PyYAML composes a level a call, so 3,000 brackets (6 KB) took 0.9 s
    # to reach the recursion limit, on each of the model folders' 74 reads of the file for `kinograph info`
    screen_yaml(text, aliases=True)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if not isinstance(root, yaml.MappingNode):
            return []
        counted: dict = {}
        out, total = [], 0
        for _, node in root.value:
            size = _written_out(node, counted)
            if total + size <= MAX_YAML_ENTRIES:
                total += size
                out.append(loader.construct_object(node, deep=True))
        return out
    finally:
        loader.dispose()


def _written_out(node, seen: dict) -> int:
    """How many nodes the composed YAML `node` holds with every alias written out: a node used in k places counts
    k times, as building the data (merge keys copy their mapping) does the work k times."""
    if id(node) not in seen:
        seen[id(node)] = 1          # a node that holds itself counts once more there, then stops
        parts = [p for item in node.value for p in (item if isinstance(item, tuple) else (item,))] \
            if isinstance(node.value, list) else []
        seen[id(node)] = 1 + sum(_written_out(p, seen) for p in parts)
    return seen[id(node)]


def _yaml_path(text: str) -> Optional[Path]:
    """A folder as an extra_model_paths.yaml names it; one written on Windows (models\\loras) with this system's
    separators, and None for a Windows drive path, which names nothing on this computer."""
    from graph_engine.portable import windows_root
    text = os.path.expandvars(text.strip())
    if windows_root(text):
        return None
    return Path(text.replace("\\", "/") if os.sep == "/" else text).expanduser()


def _aux_dirs() -> List[Path]:
    """comfyui_controlnet_aux's ckpts/ folders in the listed ComfyUI installs, and the one AUX_ANNOTATOR_CKPTS_PATH
    names: every download of that pack, each under its Hugging Face repository."""
    out = []
    for d in model_dirs():
        nodes_dir = d.parent / "custom_nodes" if d.name == "models" else d / "custom_nodes"
        if nodes_dir.is_dir():
            out += sorted(p for p in nodes_dir.glob("*/ckpts") if p.is_dir() and
                          "controlnet_aux" in p.parent.name.lower().replace("-", "_"))
    aux = os.environ.get("AUX_ANNOTATOR_CKPTS_PATH", "").strip()
    return out + ([Path(aux).expanduser()] if aux else [])


def _aux_kind(p: Path) -> str:
    """Which kind a file in comfyui_controlnet_aux's ckpts/ is listed under: DWPose's TorchScript and ONNX exports
    are pose models; the rest (lllyasviel/Annotators' .pth files ...) annotators."""
    name = p.name.lower()
    return "pose" if name.endswith(".onnx") or "torchscript" in name else "annotators"


def _pack_dirs(kind: str) -> List[Path]:
    """Node packs' own weight folders in a ComfyUI install: custom_nodes/<pack>/ckpts/<kind>; for pose models and
    line annotators, comfyui_controlnet_aux's whole ckpts/ folder, where it keeps each download under its Hugging
    Face repository (ckpts/yzd-v/DWPose/yolox_l.onnx, ckpts/lllyasviel/Annotators/sk_model.pth ...), and the
    folder its AUX_ANNOTATOR_CKPTS_PATH names."""
    out = []
    for d in model_dirs():
        nodes_dir = d.parent / "custom_nodes" if d.name == "models" else d / "custom_nodes"
        if nodes_dir.is_dir():
            out += sorted(p for p in nodes_dir.glob(f"*/ckpts/{kind}") if p.is_dir())
    return out + (_aux_dirs() if kind in AUX_KINDS else [])


def _kind_dirs(kind: str) -> List[Path]:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; kinds are {', '.join(KINDS)}")
    return _looked_once(kind, lambda: _kind_dirs_now(kind))


def _kind_dirs_now(kind: str) -> List[Path]:
    names = (kind,) + ALIASES.get(kind, ())
    dirs = [d / k for d in model_dirs() for k in names]
    for f in _yaml_files():
        for default, extra, _ in _extra_sections(f):
            for p in (p for k in names for p in extra.get(k, ())):
                # `is_default: true` puts a folder before all the others, as ComfyUI's add_model_folder_path
                # inserts it at 0 (so the last one listed comes first): a name in both read another file than ComfyUI
                if default:
                    dirs.insert(0, p)
                else:
                    dirs.append(p)
    dirs += _pack_dirs(kind)
    out: List[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _put_into(kind: str) -> Path:
    """Where a missing file of `kind` goes: the first of its folders (aliases too) that a model folder holds, else
    its own name in the first model folder. A ComfyUI folder keeping Depth Anything 3 in geometry_estimation/ was
    told to put depth_anything_3_small there into depth/, a folder it does not have."""
    names = (kind,) + ALIASES.get(kind, ())
    return next((d / k for d in model_dirs() for k in names if (d / k).is_dir()), _kind_dirs(kind)[0])


def _walk(root: Path) -> List[Path]:
    """Every file and folder under `root`, sorted, following linked folders as ComfyUI does (a models
    folder often links to a bigger drive; Path.rglob does not enter links). A link back up is walked once."""
    out: List[Path] = []
    for top, dirs, files in _folders(root):
        out += [Path(top) / n for n in dirs + files]
    return sorted(out)


def _folders(root: Path):
    """os.walk's (folder, folders, files) under `root`, following linked folders, a link back up once."""
    seen = set()
    for top, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        yield top, dirs, files


def _is_model(p: Path, kind: str = "") -> bool:
    # ._x.safetensors is macOS's metadata for x.safetensors on a drive or share it wrote to, not weights.
    return (p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES + OTHER_FORMATS and not p.name.startswith("._")) or \
        _is_model_folder(p, kind)


def _is_model_folder(p: Path, kind: str = "") -> bool:
    # The CogVideoX pack keeps CogVideo/<name>/{transformer,vae,scheduler} without a model_index.json; a kind of
    # Hugging Face model folders (config.json beside the weights) is one model a folder, not its weight files.
    return (p / "model_index.json").is_file() or (p / "transformer" / "config.json").is_file() or (
        kind in CONFIG_FOLDER_KINDS and (p / "config.json").is_file())


def loose_models() -> List[Path]:
    """Model files and folders put in a model folder itself rather than in a kind's sub-folder, where nothing is
    looked for: a newcomer's first copy went there, and the run said only that the model was not found."""
    out: List[Path] = []
    for d in model_dirs():
        try:
            entries = sorted(d.iterdir()) if d.is_dir() else []
        except OSError:
            continue
        out += [p for p in entries if p.name not in _KIND_FOLDERS and _is_model(p)]
    return out


def unfoldered_pipelines() -> List[Path]:
    """Kind folders that hold one model folder's parts directly (diffusers/model_index.json, diffusers/vae/ ...),
    where a loader looks for model folders by name: none of it loads, and `kinograph info` listed the parts as
    checkpoints, saying to move the VAE into vae/."""
    out: List[Path] = []
    for kind in KINDS:
        out += [d for d in _kind_dirs(kind) if d not in out and _is_model_folder(d, kind)]
    return out


# Folders in a model folder that hold other kinds' folders (x-flux-comfyui's xlabs/loras ...), or node packs
_HOLDERS = {a.split("/")[0] for aliases in ALIASES.values() for a in aliases if "/" in a} | {"custom_nodes"}


# Files and folders looked at under one sub-folder no kind is looked in: a big general folder listed among the
# model folders (a drive's downloads) was walked whole, for minutes, to count its weight files.
UNSEARCHED_WALK = 20_000


def _weights_in(root: Path) -> tuple:
    """(weight files under `root`, whether counting stopped at UNSEARCHED_WALK files and folders), following linked
    folders as _walk does, a link back up once."""
    n = looked = 0
    for top, dirs, files in _folders(root):
        dirs.sort()
        for name in sorted(files) + dirs:
            looked += 1
            if looked > UNSEARCHED_WALK:
                return n, True
            p = Path(top) / name
            n += p.suffix.lower() in WEIGHT_SUFFIXES and p.is_file()
    return n, False


def unsearched_folders() -> List[tuple]:
    """(folder, how many weight files it holds, whether counting stopped) for the sub-folders of the model folders
    that no kind is looked for in: ComfyUI's t2i_adapter/, hypernetworks/, photomaker/ or a node pack's. `kinograph
    info` listed what it found and was silent on them, so an unread folder could not be told from a missed one."""
    out = []
    for d in model_dirs():
        try:
            subs = sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []
        except OSError:
            continue
        for sub in subs:
            if sub.name in _KIND_FOLDERS or sub.name in _HOLDERS or _is_model_folder(sub):
                continue        # a model folder put there itself is a loose model (loose_models)
            n, stopped = _weights_in(sub)
            if n or stopped:
                out.append((sub, n, stopped))
    return out


def find_model(name: str, kind: str, required: bool = True, elsewhere: bool = True) -> Optional[Path]:
    """The file (or diffusers folder) for `name`: a path if it names a folder, else the first
    match by file name (or name without extension) in the `kind` folders; with `elsewhere`, then the one file of
    that name in another sub-folder or container (_same_file_elsewhere). Not found:
    NodeError saying where it looked and where to put it (or None when not required)."""
    name = (name or "").strip()
    if not name:
        raise NodeError(f"no {kind} model given: name a file in a '{kind}' model folder, or give its path")
    given = Path(os.path.expandvars(name)).expanduser()
    from graph_engine.portable import windows_root
    if given.is_absolute():
        if given.exists():
            return given
        if not required:
            return None
        raise NodeError(f"model not found: {given} - check the path, or give just the file name and put the "
                        f"file into {_put_into(kind)}")
    if windows_root(name):
        # A Windows path (C:\ComfyUI\models\checkpoints\SDXL\x.safetensors) means nothing here: the file is
        # looked up by the part below the kind's folder (SDXL\x.safetensors), else by its name.
        return _found(find_model(_below_kind(name, kind), kind, required=False, elsewhere=elsewhere), name, kind,
                      required)
    # ComfyUI workflows saved on Windows name files in sub-folders as `sub\x.safetensors`.
    rel = Path(*[p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]) if "\\" in name else given
    searched = _kind_dirs(kind)
    broken: List[Path] = []
    # As written first; then as Windows and macOS compare names (Model.SafeTensors is model.safetensors there,
    # and an accent is one character or two), which a workflow made there relies on without knowing it.
    for loose in (False, True):
        found = _search(searched, name, rel, broken, loose)
        if found is not None:
            return found
    if len(given.parts) > 1 and given.exists():
        return given
    other = _same_file_elsewhere(searched, name, kind) if elsewhere else None
    return _found(other, name, kind, required, broken)


# One release's weights in the containers it is published in (a .ckpt and its .safetensors), unlike a GGUF, which
# is a quantised copy that ComfyUI loads with other nodes.
SAME_WEIGHTS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin")


# (name, kind, file) already said: the editor checks a graph's loaders at every edit.
_SAID_ELSEWHERE: set = set()


def _same_file_elsewhere(dirs: List[Path], name: str, kind: str) -> Optional[Path]:
    """The one file in the kind's folders that `name` means when it is not where `name` says: a workflow's author
    kept it in a sub-folder (`Wan/x.safetensors`) the user does not have, or downloaded its other container
    (x.ckpt for x.safetensors). Several candidates (sd15/vae.safetensors and sdxl/vae.safetensors): none, rather
    than a guess."""
    from graph_engine.portable import name_key
    base = Path(name.replace("\\", "/")).name
    stem, suffix = os.path.splitext(base)
    same = {name_key(stem + x) for x in SAME_WEIGHTS} if suffix.lower() in SAME_WEIGHTS else set()
    # Keyed by the file itself: a folder reached twice (a kind and its alias linked to one place) is one candidate.
    hits = list({p.resolve(): p for d in dirs if d.is_dir() for p in _walk(d)
                 if name_key(p.name) in same | {name_key(base)} and _is_model(p)}.values())
    # The name as written, in another sub-folder, before another container of it.
    exact = [p for p in hits if name_key(p.name) == name_key(base)]
    hits = exact or hits
    if len(hits) != 1:
        return None
    # Said once, as a warning: another folder's file of that name may be another model (sd15/vae for sdxl/vae), and
    # nothing else told the user which file was read.
    if (name, kind, hits[0]) not in _SAID_ELSEWHERE:
        _SAID_ELSEWHERE.add((name, kind, hits[0]))
        log.warning("%s is not in the %s folders as written: reading %s, the only file of that name there",
                    name, kind, hits[0])
    return hits[0]


def _found(path: Optional[Path], name: str, kind: str, required: bool, broken=()) -> Optional[Path]:
    if path is not None or not required:
        return path
    raise not_found(name, kind, broken=broken)


def _below_kind(name: str, kind: str) -> str:
    """The part of a Windows model path below the kind's folder (or one of its other names), else its file name."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    names = {k.lower() for k in (kind,) + ALIASES.get(kind, ())}
    cut = max((i for i, p in enumerate(parts[:-1]) if p.lower() in names), default=len(parts) - 2)
    return "/".join(parts[cut + 1:])


def _search(dirs: List[Path], name: str, rel: Path, broken: List[Path], loose: bool) -> Optional[Path]:
    from graph_engine.portable import name_key, on_disk
    key = name_key(name) if loose else name
    for d in dirs:
        if not d.is_dir():
            continue
        exact = Path(on_disk(str(d / rel), fold_case=True)) if loose else d / rel
        if exact.exists():
            return exact
        if len(rel.parts) > 1:
            continue
        for p in _walk(d):
            if key in ((name_key(p.name), name_key(p.stem)) if loose else (p.name, p.stem)):
                if _is_model(p):
                    return p
                if p.is_symlink() and not p.exists() and not loose:
                    broken.append(p)
    return None


# Which node loads the files of a kind's folder (said when a name is found in another kind's folder).
LOADED_BY = {"checkpoints": "load.model", "diffusion_models": "load.diffusion_model (or load.model)",
             "vae": "load.vae", "text_encoders": "load.text_encoder", "clip_vision": "load.clip_vision",
             "loras": "lora.image", "animatediff_motion_lora": "lora.image or load.animatediff's motion_lora",
             "animatediff_models": "load.animatediff's motion_adapter", "controlnet": "control.apply",
             "upscale_models": "upscale.model", "latent_upscale_models": "latent.ltx_upsample", "rife": "interpolate.rife", "diffusers": "load.model",
             "embeddings": "a prompt's embedding:NAME", "depth": "depth.estimate (Depth Anything 3: depth.da3; MoGe: depth.moge)",
             "ipadapter": "load.ipadapter", "style_models": "load.style_model", "pose": "pose.dwpose",
             "annotators": "lines.lineart, lines.anime, lines.manga, lines.hed, lines.pidinet, lines.mlsd and "
                           "normals.bae",
             "sam2": "mask.segment (SAM 3) or mask.track_points (SAM 2)", "audio_encoders": "load.audio_encoder",
             "model_patches": "load.model_patch", "optical_flow": "noise.void_warped (RAFT-large)"}


def close_names(name: str, kind: str) -> List[str]:
    """Model names in the kind's folders close to `name` (svd_xt.safetensors for a workflow's svd.safetensors)."""
    import difflib

    def stem(n: str) -> str:
        # Compared without '.safetensors', which alone made any two file names look alike.
        return next((n[:-len(x)] for x in WEIGHT_SUFFIXES + OTHER_FORMATS if n.lower().endswith(x)), n)
    have = {stem(p.name): p.name for d in _kind_dirs(kind) if d.is_dir() for p in _walk(d) if _is_model(p)}
    close = difflib.get_close_matches(stem(Path(name.replace("\\", "/")).name), sorted(have), n=3, cutoff=0.6)
    return [have[c] for c in close]


def not_found(name: str, kind: str, tried: Optional[Path] = None, broken=(), what: str = "") -> NodeError:
    """The error for a model name that is in none of the kind's folders: where it looked, names close to it,
    the other folder it is in (a VAE named where a diffusion model belongs), and how to fix it. The folders are
    worked out once for the whole message (one_look): held_elsewhere alone asked for them some 85 times, each
    testing every kind's folder in every model folder (0.1 s a missing file; 20 s for a corpus of imports)."""
    with one_look():
        return _not_found(name, kind, tried, broken, what)


def _not_found(name: str, kind: str, tried: Optional[Path], broken, what: str) -> NodeError:
    base = Path(name.replace("\\", "/")).name
    searched = _kind_dirs(kind)
    close = close_names(name, kind)
    head = f"{what} not found: {name!r}" if what else f"{kind} model {name!r} not found"
    from graph_engine.portable import windows_root
    # A name with its sub-folder (wan/wan_2.1_vae.safetensors) is looked for in that sub-folder of the kind's.
    sub = os.path.dirname(name.replace("\\", "/"))
    into = _put_into(kind)
    into = into / sub if sub and not os.path.isabs(name) and not windows_root(name) else into
    lines = [head + (f" (nor at {tried})" if tried and str(tried) != name else "") +
             f". Kinograph never downloads models: put {base} into {into}, or add the folder that holds "
             "it to KINOGRAPH_MODELS or to model_dirs in config.yaml. Looked in:"]
    lines += [f"  {d}" for d in searched]
    if windows_root(name):
        lines.append(f"{name} is a path on a Windows computer: here the model is looked up by its name, "
                     f"{_below_kind(name, kind)}, in the folders above")
    lines += [_dead_link(p) for p in broken]
    if close:
        lines.append(f"Close names there: {', '.join(close)}")
    lines += held_elsewhere(name, kind)
    return NodeError("\n".join(lines))


def _dead_link(p: Path) -> str:
    return f"{p} is a link to {os.readlink(p)}, which does not exist (a drive that is not mounted?)"


def dead_links(name: str, kind: str) -> List[str]:
    """What to say of the links named `name` in the kind's folders that lead nowhere: validate said the file was not
    in the model folders and to put it there, while the user saw it in the folder (the run's loader named the link)."""
    base = Path(name.replace("\\", "/")).name
    return [_dead_link(p) for d in _kind_dirs(kind) if d.is_dir() for p in _walk(d)
            if p.name == base and p.is_symlink() and not p.exists()]


def every_dead_link() -> List[str]:
    """What to say of every link in the kinds' folders that leads nowhere, for `kinograph info`, which lists the
    models found and so left such a file out, as if it had never been there."""
    dirs = list(dict.fromkeys(d for kind in KINDS for d in _kind_dirs(kind)))
    # A kind's whole folder linked to a drive (models/loras) as well as one file
    links = [d for d in dirs if d.is_symlink() and not d.exists()]
    links += [p for d in dirs if d.is_dir() for p in _walk(d) if p.is_symlink() and not p.exists()
              and p.suffix.lower() in WEIGHT_SUFFIXES]
    return [_dead_link(p) for p in dict.fromkeys(links)]


def held_elsewhere(name: str, kind: str) -> List[str]:
    """Where a file missing from its kind's folders is held in another kind's (a VAE put in diffusion_models/), and
    what loads files there (the name as written: a look further would say it reads a file it does not), or in a
    model folder itself: for the run's not_found and `kinograph validate` alike
    (validate said only 'not in the model folders' of a file in models/ itself, where the README says it names the
    sub-folder)."""
    base = Path(name.replace("\\", "/")).name
    return [f"{base} is in {f.parent} ({k}): files there are loaded by {LOADED_BY.get(k, k)}"
            for k in KINDS if k != kind for f in [find_model(base, k, required=False, elsewhere=False)] if f] + \
        [f"{p.name} is in {p.parent} itself, where no model is looked for: move it into {_put_into(kind)}"
         for p in loose_models() if base in (p.name, p.stem)]


def as_given(path: str, workflow_dir) -> str:
    """The engine makes a path param absolute from the workflow's folder, so a file beside the workflow is read
    (a relative path was looked up in the model folders only, and not found); a name that is not there is
    looked up in the model folders as written."""
    if not path or os.path.exists(path) or not workflow_dir:
        return path
    rel = os.path.relpath(path, workflow_dir)
    return path if rel.startswith("..") else rel


def tokenizer_beside(path: Path) -> List[Path]:
    """The folders beside a text encoder file that its tokenizer is looked for in first (t5-base/ beside
    t5-base.safetensors)."""
    return [path.parent / path.stem, path.parent / f"{path.stem}_tokenizer", path.parent / "tokenizer"]


def locator(*kinds: str, kind_of=None, companions=None):
    """For `Param(locate=...)`: the file a model name resolves to in the first of `kinds` holding it (None
    when absent), so the engine fingerprints the weights themselves and notices a replaced file under the
    same name. `kind_of(name)`: the kind a missing name belongs in, where one param takes files of two kinds.
    `companions(file)`: what the node reads with the file (a text encoder's tokenizer folder), keyed with it."""
    def locate(name: str) -> Optional[Path]:
        # The name as written in any of the kinds before another sub-folder's or container's file of it in the
        # first: diffusion_models/x.safetensors lost to an old checkpoints/x.ckpt, which was read.
        for elsewhere in (False, True):
            for kind in kinds:
                found = find_model(name, kind, required=False, elsewhere=elsewhere)
                if found is not None:
                    return found
        return None
    # Where a missing file goes, for `kinograph validate` to say (as the run's not_found does): the first kind's
    # folder, not the model folders' roots, where nothing is looked for.
    kind_of = kind_of or (lambda name: kinds[0])
    locate.folder = lambda name="": _put_into(kind_of(name))
    locate.close = lambda name: close_names(name, kind_of(name))
    # A name without a weight file's suffix in a kind of transformers folders (SAM 3's 'sam3') is a folder to put
    # there, not a file: validate said "put sam3 into .../sam2", which someone holding sam3.safetensors misreads.
    locate.names_folder = lambda name: (kind_of(name) in CONFIG_FOLDER_KINDS
                                        and not name.lower().endswith(WEIGHT_SUFFIXES + OTHER_FORMATS))
    # Every folder looked in, an extra_model_paths.yaml's included: validate named only the model folders' roots,
    # and someone whose VAEs are on a second drive could not tell whether that drive was searched.
    locate.searched = lambda name="": _kind_dirs(kind_of(name))
    locate.elsewhere = lambda name: held_elsewhere(name, kind_of(name))
    locate.dead_links = lambda name: dead_links(name, kind_of(name))
    # Every folder of every kind it reads (Load Model: checkpoints/ and diffusion_models/), for the editor to keep a
    # file picked in any of them by the name it is found by: `searched` names the first kind's alone.
    locate.every = lambda: [d for kind in kinds for d in _kind_dirs(kind)]
    locate.companions = companions
    locate.damaged = _damaged
    return locate


def _damaged(path) -> Optional[str]:
    """For validate's check of a file `locate` found: what is wrong with its weights (a cut-off download), or None."""
    from nodes.generate.damaged import damaged
    return damaged(path)


def list_models() -> Dict[str, List[Path]]:
    """Every model file (or diffusers folder) in the model folders, by kind: one look at the folders (one_look), which
    were worked out anew for each kind and its aliases, 75 times a listing."""
    with one_look():
        return _list_models()


def _list_models() -> Dict[str, List[Path]]:
    found: Dict[str, List[Path]] = {}
    seen = set()
    aux = set(_aux_dirs())
    for kind in KINDS:
        items: List[Path] = []
        for d in _kind_dirs(kind):
            if d.is_dir() and not _is_model_folder(d, kind):       # its parts: unfoldered_pipelines()
                for p in _walk(d):
                    # comfyui_controlnet_aux's ckpts/ is searched for two kinds: each file is listed under its own
                    if d in aux and _aux_kind(p) != kind:
                        continue
                    # A diffusers folder is one model; do not list the weights inside it.
                    if _is_model(p, kind) and p not in seen and not any(
                            _is_model_folder(q, kind) for q in p.parents if d in q.parents):
                        seen.add(p)
                        items.append(p)
        if items:
            found[kind] = items
    return found

