"""The model manager: finds, checks and loads models from local files only, and keeps them loaded.

Local folders in diffusers layout load with `from_pretrained(..., local_files_only=True)`; single-file
checkpoints with `from_single_file` and a local config folder. safetensors is the default format;
legacy .ckpt/.pt/.pth files are read only through `torch.load(weights_only=True)`. Loaded pipelines
are cached by (family, path, dtype, device, options) in a small LRU, so every node of a graph (and
every run of a session) shares one copy."""
from __future__ import annotations

import gc
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from graph_engine import NodeError
from nodes.generate.converters.lora import FUSED_LAYERS, acts_on_weight, anima_lora, fused_lora, kohya_modules, lora_state, turns
from nodes.generate.detect import Detection, detect_file, detect_header, detect_state_dict, read_header
from nodes.generate.families import family as family_spec, family_of_classes
from nodes.generate.handles import ComponentHandle, ModelHandle, pipeline_bytes
from nodes.generate.offline import go_offline, local_only
from nodes.generate.weights import load_weights

go_offline()

DTYPES = ("auto", "fp32", "fp16", "bf16")
# Where a family's models live in a ComfyUI-style models folder.
KINDS = {"sd": "checkpoints", "sdxl": "checkpoints", "flux": "diffusion_models", "sd3": "checkpoints", "animatediff": "checkpoints", "svd": "checkpoints", "wan": "diffusion_models",
         "ltx": "checkpoints", "cogvideox": "diffusion_models", "hunyuan": "diffusion_models",
         "qwenimage": "diffusion_models", "qwenimage21": "diffusion_models", "chroma": "diffusion_models", "zimage": "diffusion_models", "krea2": "diffusion_models", "ideogram4": "diffusion_models", "kandinsky5image": "diffusion_models", "hidream": "diffusion_models", "hidream_o1": "checkpoints", "longcat": "diffusion_models", "ovis": "diffusion_models", "minimax_h3": "diffusion_models", "flux3": "diffusion_models", "boogu": "diffusion_models", "omnigen2": "diffusion_models", "joyimage": "diffusion_models", "mage_flow": "diffusion_models", "fibo2": "diffusion_models", "anima": "diffusion_models", "lens": "diffusion_models", "pixeldit": "diffusion_models", "newbie": "diffusion_models", "hunyuan3d": "checkpoints", "trellis2": "diffusion_models", "triposplat": "diffusion_models", "mini": "diffusion_models", "motion": "animatediff_models", "lora": "loras", "controlnet": "controlnet"}


# Families whose models are found in a second folder too: FLUX.1's transformer files live in diffusion_models/ (or
# unet/), ComfyUI's all-in-one FLUX.1 checkpoints in checkpoints/; SD3's the other way round.
ALSO_IN = {"flux": "checkpoints", "sd3": "diffusion_models"}


def resolve_family_path(path: str, family: str, what: str) -> Path:
    """resolve_model_path in the family's folder, then in the one it also uses (ALSO_IN); not found: the first error."""
    try:
        return resolve_model_path(path, KINDS.get(family, "checkpoints"), what)
    except NodeError as first:
        if family not in ALSO_IN:
            raise
        try:
            return resolve_model_path(path, ALSO_IN[family], what)
        except NodeError:
            raise first from None


# -- files ---------------------------------------------------------------------------------
def read_index(folder: Path) -> dict:
    return _read_json(Path(folder) / "model_index.json")


def read_config(folder: Path) -> dict:
    """A single model's folder's config.json ({} where it has none)."""
    return _read_json(Path(folder) / "config.json")


def _read_json(p: Path) -> dict:
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:     # RecursionError: brackets nested past json's scanner
        raise NodeError(f"{p} is not valid JSON ({exc}); re-copy the model folder") from None
    # a list or a number there was read with .get, an AttributeError out of `kinograph info` for the whole folder
    if not isinstance(data, dict):
        raise NodeError(f"{p} holds a JSON {type(data).__name__}, not the settings (a JSON object) a model folder "
                        "keeps there; re-copy the model folder")
    return data


# -- detection -----------------------------------------------------------------------------
# Files no model loader takes, read by name by the node that uses them, by (family, variant) of their detection: what
# each is, whether it loads and the node that reads it (kinograph info; a model loader given one names that node).
READ_BY_NODE = {
    ("stable_audio", "open-1.0"): ("Stable Audio Open 1.0's checkpoint (sound, not pictures)", True,
                                   "generate.stable_audio reads it as its checkpoint, with T5-base from "
                                   "text_encoders/t5-base.safetensors and its tokenizer folder text_encoders/t5-base/"),
    ("stable_audio", "3"): ("Stable Audio 3's checkpoint (sound, not pictures)", True,
                            "generate.stable_audio3 reads it as its checkpoint, with T5Gemma from "
                            "text_encoders/t5gemma_b_b_ul2.safetensors"),
    ("t5gemma", ""): ("T5Gemma, Stable Audio 3's text encoder", True,
                      "generate.stable_audio3 reads it as its text_encoder (beside "
                      "checkpoints/stable_audio_3_medium.safetensors)"),
    ("ace_step", "v1"): ("ACE-Step v1's checkpoint (songs, not pictures)", True,
                         "generate.ace_step1 reads it as its checkpoint, with ComfyUI's lyric tokenizer "
                         "(ace_lyrics_tokenizer/vocab.json) beside it"),
    ("ace_step", "aio"): ("ACE-Step 1.5's all-in-one checkpoint (songs, not pictures)", True,
                          "generate.ace_step reads it as its checkpoint, in place of its four files (the Qwen "
                          "tokenizer in a folder named after it, or ComfyUI's bundled one)"),
    ("ace_step", "diffusion_model"): ("ACE-Step 1.5's diffusion model (songs, not pictures)", True,
                                      "generate.ace_step reads it as its diffusion_model, with "
                                      "text_encoders/qwen_0.6b_ace15, qwen_1.7b_ace15 (or qwen_4b_ace15) and "
                                      "vae/ace_1.5_vae"),
    ("ace_step", "vae"): ("an Oobleck audio VAE (ACE-Step 1.5's ace_1.5_vae)", True,
                          "generate.ace_step reads it as its vae"),
    ("minimax_music3", "diffusion_model"): ("MiniMax Music 3's DiT (songs, not pictures)", True,
                                            "generate.minimax_music3 reads it as its diffusion_model, with "
                                            "text_encoders/minimax_music3_text_encoder_* and "
                                            "vae/minimax_music3_dav"),
    ("minimax_music3", "text_encoder"): ("MiniMax Music 3's language model (it writes the song's frames)", True,
                                         "generate.minimax_music3 reads it as its text_encoder"),
    ("minimax_music3", "vae"): ("MiniMax Music 3's DAV (its audio decoder)", True,
                                "generate.minimax_music3 reads it as its vae"),
    ("anima", "lllite"): ("an Anima ControlNet-LLLite net", True,
                          "load.model_patch, then control.anima_lllite on Anima's DiT"),
    ("minimax_h3", "fun-controlnet"): ("MiniMax H3's Fun ControlNet-Union", True,
                                       "load.model_patch, then control.model_patch on MiniMax H3 with its video VAE "
                                       "(vae/minimax_h3_video_vae_*)"),
    ("sdxl", "lllite"): ("a ControlNet-LLLite for SDXL (kohya's lllite_unet_*)", False,
                         "Kinograph does not apply SDXL LLLite nets: for SDXL use a ControlNet from controlnet/ with "
                         "control.apply (model_patches/ takes Anima's LLLite nets)"),
}


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
                cls = _read_json(cfg).get("_class_name", "")
                if cls == "MotionAdapter":
                    return "motion", "config.json names MotionAdapter"
                return family_of_classes(denoiser=cls), f"{cfg.relative_to(path)} names {cls}"
        return None, "no model_index.json or config.json"
    det = detect_file(path)
    read_by = READ_BY_NODE.get((det.family, det.variant))
    if read_by is not None:
        title, loads, reader = read_by
        raise NodeError(f"{path.name} is {title}: {reader}" + (", not a model loader" if loads else ""))
    if det.role == "motion_module":
        return "motion", "its motion_modules tensors"
    if det.role in ("diffusion_model", "checkpoint"):
        return family_of_file(det), f"its tensors ({det.why})"
    what = f"a {det.describe()} file" if det.role else "no model Kinograph knows"
    return None, f"its tensors show {what}"


def family_of_file(det: Detection) -> Optional[str]:
    """The family that runs a detected model file: detection names SDXL an SD variant (its UNet is SD's, grown),
    Kinograph runs it as a family of its own."""
    if det.family == "sd" and det.variant.startswith("sdxl"):
        return "sdxl"
    return det.family


def check_family(path: Path, wanted: str) -> str:
    """The family at `path`, or a clear error when it is another family's model."""
    found, why = detect_family(path)
    ok = {wanted} | ({"sd", "animatediff"} if wanted in ("sd", "animatediff") else set()) | \
        ({"sdxl"} if wanted == "animatediff" else set())     # AnimateDiff-SDXL
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


# Parts Kinograph loads without (SD's safety checker and the feature extractor that feeds it).
OPTIONAL_PARTS = ("safety_checker", "feature_extractor")


def _check_parts(folder: Path) -> None:
    """Every part model_index.json lists is there: a partial copy or download is named by the part it lacks
    (diffusers says 'no file named config.json found in <the model folder>'). A part is a [library, class] pair; other
    lists are settings (Krea2Pipeline's text_encoder_select_layers)."""
    for part, value in read_index(folder).items():
        if part.startswith("_") or part in OPTIONAL_PARTS or not isinstance(value, list) or len(value) != 2 or \
                not all(isinstance(v, str) for v in value):
            continue
        if not (folder / part).is_dir():
            raise NodeError(f"{part}/ is missing from {folder} (its model_index.json lists it): the copy is "
                            "incomplete. Copy the whole model folder again; Kinograph never downloads models")


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
        # The name as the user wrote it, where else it is, names close to it (not the path the workflow's
        # folder made of it).
        raise md.not_found(Path(path).name, kind, tried=Path(path), what=what)
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
            # FLUX.1's, SD3.5's and Qwen-Image's activations overflow fp16 (black images), as these video transformers'
            # do; Qwen-Image 2.1 and Krea 2 run in bf16 as their pipelines' own examples run them; SeedVR2 as ComfyUI
            # runs it on a bf16 device (its fp16 files cast up); ACE-Step v1's DiT as ComfyUI runs it (bf16 or fp32)
            name = "bf16" if family in ("wan", "ltx", "cogvideox", "hunyuan", "flux", "sd3", "qwenimage",
                                        "qwenimage21", "chroma", "zimage", "kandinsky5image", "hidream", "longcat", "ovis", "krea2", "flux3", "boogu", "omnigen2",
                                        "seedvr2", "ideogram4", "joyimage", "fibo2", "mage_flow", "anima", "lens", "pixeldit", "newbie", "hunyuan3d", "trellis2", "triposplat", "hidream_o1",
                                        "ace_step") and \
                device.startswith("cuda") \
                else "fp16"
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
    state = load_weights(path)
    det = detect_state_dict(state)
    if det.role != "motion_module":
        raise NodeError(f"{path} is not an AnimateDiff motion module (no motion_modules.* tensors)")
    if det.layout == "hotshot":
        from nodes.generate.converters.hotshot import to_animatediff
        state = to_animatediff(state)
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


def activate_loras(pipe, loras, text: bool = False) -> None:
    """Make exactly these (path, strength) LoRAs active on a shared pipeline (loading each file once): their
    denoiser layers for sampling, or with `text` their text-encoder layers (encode.text) and nothing else."""
    import hashlib
    loaded = set(getattr(pipe, "_kinograph_loras", set()))
    # A text encoder loaded on its own (load.text_encoder): a pipeline without a denoiser.
    alone = getattr(pipe, "unet", None) is None and getattr(pipe, "transformer", None) is None
    strengths: Dict[str, float] = {}
    wanted = []
    # OFT / BOFT files: ComfyUI's change is not linear in the strength, so their LoRA is made for one strength, an
    # adapter per (file, strength); the same file's adapter at another strength this side asked for before is
    # dropped (each is a full-rank copy of the layers it turns).
    # A file whose change is made from the model's weight, after other LoRAs in the chain, is made from the weight
    # they left (as ComfyUI's calculate_weight runs a layer's patches in order): an adapter per file and chain before.
    turning = pipe.__dict__.setdefault("_kinograph_turning", {})     # file's adapter name -> (OFT / BOFT, on weight)
    turned = pipe.__dict__.setdefault("_kinograph_turned", {})       # adapter name -> (file's, side last asking)
    for path, strength in loras:
        # A file retrained and saved under the same name is another adapter.
        try:
            stat = Path(path).stat()
        except OSError as exc:
            raise NodeError(f"the LoRA {path} cannot be read any more ({exc.strerror}); put it back or pick "
                            "another in lora.image") from None
        base = "k" + hashlib.sha1(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
        if base not in turning:
            shapes = read_header(path).shapes
            turning[base] = (turns(shapes), acts_on_weight(shapes))
        key = f"{base}|{float(strength)!r}" if turning[base][0] else base
        if turning[base][1] and wanted:
            key += "|" + "|".join(f"{n}:{float(s)!r}" for _, n, s, _ in wanted)
        name = base
        if key != base:
            name = "k" + hashlib.sha1(key.encode()).hexdigest()[:12]
            turned[name] = (base, text)
        wanted.append((path, name, strength, turning[base][1]))
    asked = {name for _, name, _, _ in wanted}
    stale = [n for n, (base, side) in turned.items() if n not in asked and side == text and
             any(turned.get(a, (None,))[0] == base for a in asked)]
    if stale:
        pipe.delete_adapters([n for n in stale if n in loaded])
        loaded -= set(stale)
        pipe._kinograph_loras = loaded
        for n in stale:
            del turned[n]
    for path, name, strength, on_weight in wanted:
        if name in getattr(pipe, "_kinograph_no_loras", ()):
            continue
        if name not in loaded:
            modules = kohya_modules(pipe)
            unet_config = getattr(getattr(pipe, "unet", None), "config", None)
            layers = getattr(unet_config, "layers_per_block", None)
            before = dict(strengths) if on_weight else {}
            if before:
                pipe.set_adapters(*_adapter_weights(pipe, before, text))
            state = lora_state(Path(path), lambda layer: _chained_weight(modules.get(layer), before),
                               flux=type(pipe).__name__ in ("FluxPipeline", "ChromaPipeline"),
                               unet_layers=(layers, getattr(pipe, "text_encoder_2", None) is not None)
                               if isinstance(layers, int) else None, strength=float(strength))
            fused = FUSED_LAYERS.get(type(pipe).__name__)
            if type(pipe).__name__ == "AnimaParts" and not alone:
                state = anima_lora(state, pipe.transformer, Path(path).name)
            elif fused and not alone:
                state = fused_lora(state, (n for n, _ in pipe.transformer.named_modules()), fused)
            if alone:
                # Only the LoRA's text-encoder layers, if any; diffusers stopped at the missing unet with an
                # AttributeError.
                state = {k: v for k, v in state.items() if k.startswith(("lora_te", "text_encoder."))}
                if not state:
                    pipe._kinograph_no_loras = set(getattr(pipe, "_kinograph_no_loras", ())) | {name}
                    continue
            try:
                # A LoRA with bias changes on some layers (Wan's diff_b, as lightx2v's distillation LoRAs have) gets
                # a LoRA bias on every layer; diffusers' low-memory load left those of the other layers on the meta
                # device and the first step failed with "Tensor on device meta is not on the expected device cpu".
                # The plain load makes them zeros.
                biased = any(k.endswith((".diff_b", "lora_B.bias", "lora_up.bias")) for k in state)
                if alone:
                    converted, alphas = pipe.lora_state_dict(state)
                    pipe.load_lora_into_text_encoder(converted, network_alphas=alphas, text_encoder=pipe.text_encoder,
                                                     adapter_name=name, _pipeline=pipe)
                else:
                    pipe.load_lora_weights(state, adapter_name=name, low_cpu_mem_usage=not biased)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise NodeError(lora_misfit(path, state, exc, type(pipe).__name__)) from None
            # diffusers skips a LoRA none of whose names it maps to this model's layers with only a warning.
            present = {a for names_ in pipe.get_list_adapters().values() for a in names_}
            if name not in present:
                raise NodeError(f"{path} changes nothing in this {type(pipe).__name__}: none of its tensor names "
                                "match a layer of the model, so it is a LoRA for another model (family or "
                                "version). Use a LoRA trained for this model")
            loaded.add(name)
            pipe._kinograph_loras = loaded
        # The same LoRA twice in a chain adds up, as in ComfyUI (diffusers took one repeated adapter name at
        # neither strength).
        strengths[name] = strengths.get(name, 0.0) + float(strength)
    if strengths:
        pipe.enable_lora()
        pipe.set_adapters(*_adapter_weights(pipe, strengths, text))
    elif loaded:
        pipe.disable_lora()


def _adapter_weights(pipe, strengths: Dict[str, float], text: bool):
    """(adapter names, their weights per part) for set_adapters. One side only: text is encoded outside sampling
    (encode.text, with the LoRAs its text encoder carries); a LoRA's text-encoder layers left active by sampling
    changed every later prompt encoding, so a graph's second run gave another video than its first."""
    names = list(strengths)
    parts = pipe.get_list_adapters()
    return names, [{part: strengths[name] if part.startswith("text_encoder") == text else 0.0
                    for part, held in parts.items() if name in held} for name in names]


def _chained_weight(module, before: Dict[str, float]):
    """`module`'s weight with the changes of the adapters `before` it in the chain (set to their strengths), the
    weight an OFT / GLoRA / DoRA after them changes; None for no layer."""
    weight = getattr(module, "weight", None)
    held = [n for n in before if n in getattr(module, "lora_A", {})]
    if weight is None or not held:
        return weight
    return weight.detach().float() + sum(module.get_delta_weight(n).float() for n in held)


def lora_misfit(path, state, exc, pipe_name: str) -> str:
    """Why diffusers refused a LoRA, in the user's terms: which layer, which shapes, which model it is for."""
    import re
    text = str(exc)
    sdxl = any(k.startswith(("lora_te1_", "lora_te2_")) for k in state)
    whose = (" Its text-encoder names (lora_te1_/lora_te2_) are SDXL's: it is an SDXL LoRA." if sdxl else "")
    size = re.search(r"size mismatch for ([\w.]+): copying a param with shape (torch.Size\(\[[\d, ]*\]\)) from "
                     r"checkpoint, the shape in current model is (torch.Size\(\[[\d, ]*\]\))", text)
    if size:
        layer = re.sub(r"\.lora_[AB]\.k[0-9a-f]{12}\.weight$", "", size.group(1))
        why = (f"its layer {layer} has shape {size.group(2)[11:-1]} where this model's has "
               f"{size.group(3)[11:-1]}")
    elif "not found in the base model" in text:
        missing = re.search(r"Target modules (\{.*?\}) not found", text)
        why = f"its layers {missing.group(1)[:160] if missing else ''} are not in this model"
    else:
        why = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
    return (f"{path} does not fit this {pipe_name} as a LoRA: {why}. It was made for another model (family, version "
            f"or size; an SDXL LoRA does not fit SD 1.5).{whose} Use a LoRA trained for this model")



def _release(gone: list) -> None:
    """Drops the evicted values (emptying `gone`) and runs a full garbage collection only when one of them outlives its
    last reference, that is, a reference cycle holds it: in a process holding torch, transformers and diffusers each
    full collection walks millions of objects (0.2 s to a second), and a value freed by its reference count needs none."""
    import weakref
    try:
        refs = [weakref.ref(v) for v in gone]
    except TypeError:            # a value a weak reference cannot follow: collect, as for any cycle
        refs = None
    gone.clear()
    if refs is None or any(r() is not None for r in refs):
        gc.collect()

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
        source = resolve_family_path(path, family, f"{spec.title} model")
        config = opts.get("config")
        if source.is_file() and family not in ("sd", "sdxl", "animatediff") and not get_adapter(family).single_file:
            raise NodeError(f"{source} is a single file; {spec.title} loads from a folder in diffusers layout "
                            "(model_index.json + subfolders)")
        check_family(source, family)
        if source.is_dir():
            _check_parts(source)
            for f in sorted(source.rglob("*.safetensors")):
                read_header(f)
        if family == "animatediff" and not opts.get("motion_adapter") and (source / "motion_adapter").is_dir():
            opts["motion_adapter"] = str(source / "motion_adapter")
        dname, torch_dtype = dtype_of(dtype, family, device)
        key = (family, str(source.resolve()), dname, device, offload,
               tuple(sorted((k, str(v)) for k, v in opts.items() if v)), on_disk(source))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                pipe = self._cache[key]
            else:
                self._make_room(key)
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
        return ModelHandle(family=family, path=str(source), pipe=pipe, dtype=dname, device=device)

    def components(self, handle: ModelHandle) -> Dict[str, Optional[ComponentHandle]]:
        """VAE, text encoder and image encoder handles of a loaded model (None where it has none)."""
        from nodes.generate.adapters import get_adapter
        p = handle.pipe
        adapter = get_adapter(handle.family)
        mk = lambda part, pipe=p, fam=handle.family: ComponentHandle(fam, handle.path, pipe, part, handle.device)  # noqa: E731
        # The SDXL refiner's one encoder is text_encoder_2 (OpenCLIP-G).
        has_text = getattr(p, "text_encoder", None) is not None or getattr(p, "text_encoder_2", None) is not None
        image = adapter.image_encoder_pipe(p)
        # AnimateDiff-SDXL's VAE is SDXL's: its latents are SDXL latents, which an SD 1.5 VAE does not read.
        return {"vae": mk("vae", fam=adapter.latents(p)), "text_encoder": mk("text_encoder") if has_text else None,
                "image_encoder": mk("image_encoder", image) if image is not None else None}

    def controlnet(self, path: str, model: ModelHandle):
        """A ControlNet in the model's dtype and device (cached like pipelines)."""
        import torch
        from diffusers import ControlNetModel
        source = resolve_model_path(path, KINDS["controlnet"], "ControlNet")
        dtype = model.denoiser.dtype
        # A Control-LoRA is built on the UNet it steers, so the model it was made for is part of what it is.
        key = ("controlnet", str(source.resolve()), str(dtype), model.device, model.path,
               on_disk(source, model.path))
        with self._lock:
            if key not in self._cache:
                self._make_room(key)
                with local_only("ControlNet", str(source)):
                    if model.family == "flux":
                        from nodes.generate import flux_control
                        net = flux_control.load(source, model.denoiser, dtype)
                    elif model.family == "sd3":
                        from nodes.generate import sd3_control
                        net = sd3_control.load(source, model.denoiser, dtype)
                    elif model.family == "qwenimage":
                        from nodes.generate import qwen_control
                        net = qwen_control.load(source, model.denoiser, dtype)
                    elif source.is_file():
                        net = controlnet_from_file(source, model.denoiser, dtype, applied_to(model))
                    elif "num_control_type" in read_config(source):
                        from diffusers import ControlNetUnionModel
                        from nodes.generate.sdxl_control import UnionControlNet
                        net = UnionControlNet(ControlNetUnionModel.from_pretrained(str(source), dtype=dtype,
                                                                                   local_files_only=True))
                    else:
                        net = ControlNetModel.from_pretrained(str(source), dtype=dtype, local_files_only=True)
                    if not source.is_file() and model.family != "flux":
                        check_controlnet_base(source.name, net.config.get("addition_embed_type") == "text_time",
                                              model.denoiser, applied_to(model))
                self._cache[key] = net.to(torch.device(model.device)).eval()
            self._cache.move_to_end(key)
            return self._cache[key]

    def _make_room(self, key: tuple) -> None:
        """Under the lock, before loading what `key` names: the entries it replaces and the least recently used
        beyond max_loaded - 1 go now, so their memory is free for the new one (evicted after it had loaded, a
        switch of checkpoint held both at once: 8.6 GB for two SD 1.5 models in fp32 with one model allowed).
        A key's last part says what its files were (on_disk): an entry for the same files as they were before
        goes too, not when the LRU reaches it (a GPU holding two versions)."""
        gone = [self._cache.pop(k) for k in [k for k in self._cache if k[:-1] == key[:-1]]]
        while self._cache and len(self._cache) >= self.max_loaded:
            gone.append(self._cache.popitem(last=False)[1])
        if gone:
            _release(gone)

    def cached(self, key: tuple, build, files=(), libraries=None):
        """The value cached under `key` and what the `files` it reads are now (on_disk), built (once) by `build()`
        when absent; shares the LRU with pipelines. `libraries`: those the build imports (default diffusers and
        transformers; () for a model in plain torch, which then imports neither). The running node's run device is
        in the key: how a quantised file loads (pack_policy: packed on a GPU, expanded on the CPU) follows it, and an
        entry loaded for a CPU run was handed to a GPU run of the same process (model patches, IP-Adapters)."""
        from graph_engine.devices import run_device
        key = (*key, run_device(), on_disk(*files))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            self._make_room(key)
            from nodes.generate.offline import LIBRARIES, quiet_libraries
            # and every folder's config.json held to its weights (config_bound)
            quiet_libraries(LIBRARIES if libraries is None else libraries)
            value = build()
            self._cache[key] = value
            return value

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
        gc.collect()


def controlnet_from_file(path: Path, unet, dtype, model: str = ""):
    """An SD 1.5 or SDXL ControlNet from one file (original `control_model.*` or diffusers layout), its config taken
    from the model it steers (a ControlNet copies its UNet's encoder), so no config is fetched from a hub. xinsir's
    ControlNet++ union files and Stability's Control-LoRAs load too (nodes.generate.sdxl_control)."""
    from accelerate import init_empty_weights
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
    det = detect_file(path)
    if det.role == "controlnet" and det.family == "sd" and det.variant not in CONTROLNET_KINDS:
        raise NodeError(f"{path.name}: {unsupported_controlnet(det.variant)}")
    if det.role == "controlnet" and det.family == "flux":
        raise NodeError(f"{path.name} is a FLUX.1 ControlNet; apply it to a FLUX.1 dev model")
    if det.role == "controlnet" and det.family == "sd3":
        raise NodeError(f"{path.name} is an SD 3.5 ControlNet; apply it to an SD 3.5 Large model")
    if det.role == "controlnet" and det.family == "qwenimage":
        raise NodeError(f"{path.name} is a Qwen-Image ControlNet; apply it to a Qwen-Image model")
    if det.role == "controlnet" and det.family != "sd":
        raise NodeError(f"{path.name}: {will_load(det)[1]}")
    if det.role != "controlnet" or det.family != "sd":
        raise NodeError(f"{path.name} is {det.describe() or 'not a model Kinograph recognises'}, not a Stable "
                        "Diffusion (1.5 or XL) ControlNet")
    check_controlnet_base(path.name, det.variant.startswith("sdxl"), unet, model)
    state = load_weights(path)
    if det.variant == "sdxl-control-lora":
        from nodes.generate.sdxl_control import control_lora
        return control_lora(path.name, state, unet, dtype)
    cls = ControlNetModel
    if det.variant == "sdxl-union":
        from diffusers import ControlNetUnionModel
        cls = ControlNetUnionModel
    cfg = controlnet_config(cls, state, det.layout, unet)
    with init_empty_weights():
        net = cls.from_config(cfg)
    if det.layout != "diffusers":
        from nodes.generate.sdxl_control import size_embedding
        state = {**convert_controlnet_checkpoint(state, net.config),
                 **{k: state[n] for k, n in size_embedding(state).items()}}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False, assign=True)
        misfit = f"missing {missing[:3]}, unexpected {unexpected[:3]}" if missing or unexpected else ""
    except RuntimeError as e:       # tensors of another size (an SD 2.x ControlNet on SD 1.5): torch lists them all
        misfit = "another size of " + str(e).split("size mismatch for ")[-1].split(":")[0]
    if misfit:
        raise NodeError(f"{path.name} does not fit this model's ControlNet shape ({misfit}): it is a ControlNet for "
                        "another base model")
    if det.variant == "sdxl-union":
        from nodes.generate.sdxl_control import UnionControlNet
        return UnionControlNet(net.to(dtype))
    return net.to(dtype)


def controlnet_config(cls, state: dict, layout: str, unet) -> dict:
    """The config of a ControlNet (class `cls`) copied from `unet`'s encoder, with what its file's tensors say
    otherwise: the control picture's channels and embedding widths, its transformer depths, a union's task rows."""
    import inspect
    if layout == "diffusers":
        emb = [int(state["controlnet_cond_embedding.conv_in.weight"].shape[0])] + [
            int(state[f"controlnet_cond_embedding.blocks.{i}.weight"].shape[0]) for i in (1, 3, 5)
            if f"controlnet_cond_embedding.blocks.{i}.weight" in state]
        hint = state["controlnet_cond_embedding.conv_in.weight"]
    else:
        blocks = sorted((int(k.split(".")[-2]), v) for k, v in state.items()
                        if k.endswith(".weight") and "input_hint_block." in k)
        emb = [int(v.shape[0]) for i, v in blocks[:-1] if i % 4 == 0] or [16, 32, 96, 256]
        hint = blocks[0][1] if blocks else None
    params = inspect.signature(cls.__init__).parameters
    cfg = {k: v for k, v in dict(unet.config).items() if k in params and not k.startswith("_")}
    # AnimateDiff's motion UNet names its blocks *Motion; the ControlNet copies their 2-D form.
    cfg["down_block_types"] = [t.replace("Motion", "2D") for t in cfg["down_block_types"]]
    cfg.pop("mid_block_type", None)
    # A ControlNet reads the latent alone, also beside an inpainting UNet whose input adds mask and picture channels.
    cfg["in_channels"] = int(unet.config.out_channels)
    cfg["conditioning_embedding_out_channels"] = tuple(emb)
    if hint is not None:
        cfg["conditioning_channels"] = int(hint.shape[1])
    if layout == "diffusers":
        # SDXL ControlNets are often slimmer than the UNet they steer (diffusers' -small and -mid releases keep fewer
        # transformer layers a level); a level's depth is read from the file where it has attention at all.
        depth = [sum(1 for k in state if k.startswith(f"down_blocks.{i}.attentions.0.transformer_blocks.")
                     and k.endswith(".attn1.to_q.weight")) for i in range(len(cfg["down_block_types"]))]
        if any(depth):
            cfg["transformer_layers_per_block"] = [d or 1 for d in depth]
    if "task_embedding" in state:
        from nodes.generate.sdxl_control import union_config
        cfg.update(union_config(state))
    return cfg


def applied_to(model) -> str:
    """The model a ControlNet is applied to, for messages: its file and what it is ("sdxl.safetensors,
    AnimateDiff-SDXL")."""
    from nodes.generate.adapters import get_adapter
    return f"{Path(model.path).name}, {get_adapter(model.family).title(model.pipe)}"


def check_controlnet_base(name: str, sdxl: bool, unet, model: str = "") -> None:
    """A ControlNet is a copy of one base model's encoder: on another it fails inside torch with a shape error.
    `model`: the model it is applied to, named in the message (applied_to)."""
    if sdxl != (unet.config.get("addition_embed_type") == "text_time"):
        made, given, article = ("SDXL", "Stable Diffusion 1.5", "a") if sdxl else ("Stable Diffusion 1.5", "SDXL", "an")
        raise NodeError(f"{name} is a ControlNet for {made} models, but it is applied to {article} {given} model"
                        f"{f' ({model})' if model else ''}: use a ControlNet made for {given}")


# The SD ControlNet kinds control.apply loads: plain ones for SD 1.5 and SDXL, xinsir's ControlNet++ union and
# Stability's Control-LoRAs (both SDXL).
CONTROLNET_KINDS = ("sd15", "sdxl", "sdxl-union", "sdxl-control-lora")


def unsupported_controlnet(variant: str) -> str:
    if variant.endswith("-union"):
        return ("a ControlNet++ union model for Stable Diffusion 1.5 is none xinsir made; Kinograph loads the SDXL "
                "ones (controlnet-union-sdxl-1.0 and its promax file)")
    if variant.endswith("-control-lora"):
        return ("a Control-LoRA for Stable Diffusion 1.5 is none Stability made; Kinograph loads the SDXL ones "
                "(control-lora-canny/depth/recolor/sketch-rank128/256)")
    return f"{variant} ControlNets are not supported"


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
        mode = "model" if pipeline_bytes(pipe) > 0.7 * free else "none"
    if mode == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


_DEFAULT: Optional[ModelManager] = None


def on_disk(*paths) -> str:
    """What the files at `paths` are now (graph_engine.cache.fingerprint: a file's identity, a folder's files one
    level down), for the keys of loaded models. Weights replaced under the same name (a trainer's new checkpoint, a
    download written beside and renamed over) changed the run's cache keys, and the node ran again, but got the
    pipeline loaded from the old files: the render was the old model's."""
    from graph_engine.cache import fingerprint, hash_key
    return hash_key([fingerprint(str(p)) for p in paths])


def default_manager() -> ModelManager:
    global _DEFAULT
    if _DEFAULT is None:
        from graph_engine.config import models_loaded
        _DEFAULT = ModelManager(models_loaded())
    return _DEFAULT


def manager_for(ctx) -> ModelManager:
    """The manager a host passed to the run (ctx.models), else the process-wide one."""
    return ctx.models if ctx.models is not None else default_manager()


def will_load(det: Detection) -> Tuple[bool, str]:
    """Whether Kinograph loads a detected file, and with which node (or why not)."""
    from nodes.generate import converters
    read_by = READ_BY_NODE.get((det.family, det.variant))
    if read_by is not None:
        return read_by[1], read_by[2]
    if det.role is None:
        return False, det.why or "not a model Kinograph knows"
    if det.family == "ltx2" and det.role in ("checkpoint", "diffusion_model", "latent_upscaler", "lora"):
        from nodes.generate.converters.ltx2 import LOADS, LORA, LTX25, UPSCALES
        from nodes.generate.detect import LTX2_FILES
        if det.extra.get("version") == "2.5":
            return False, LTX25
        if det.role == "diffusion_model":
            return False, f"an LTX-2 transformer alone: {LTX2_FILES}"
        return True, {"checkpoint": LOADS, "latent_upscaler": UPSCALES, "lora": LORA}[det.role]
    if det.role == "lora":
        from nodes.generate.detect import SHARED_BLOCKS
        if det.family is None and det.why == SHARED_BLOCKS:
            return True, "lora.image on a FLUX.1 or HunyuanVideo model (its layer names are both's)"
        ok = det.family in ("sd", "sdxl", "flux", "qwenimage", "animatediff", "wan", "hunyuan", "ltx", "cogvideox",
                            "minimax_h3")
        return ok, "lora.image / motion_lora" if ok else "LoRA for an unknown base model"
    if det.role == "ipadapter":
        return ipadapter_support(det)
    if det.family == "gemma4" and det.role == "text_encoder":
        # a language model no family draws with: its note says what text.generate can give it beside the prompt
        return True, f"load.text_encoder (type auto): {det.why}"
    if det.role == "motion_module":
        return True, "load.animatediff motion_adapter" + (" with an SDXL checkpoint" if det.variant == "sdxl" else "")
    if det.family == "sd" and det.variant.startswith("sdxl-refiner"):
        if det.role == "checkpoint":
            return True, ("load.sdxl: the SDXL refiner, to sample a base run's last steps (sample's start_step) with "
                          "prompts encoded by its own text encoder")
        return False, "an SDXL refiner UNet alone is not supported; load the refiner's all-in-one checkpoint"
    if det.family == "flux":
        if det.role == "controlnet":
            from nodes.generate.flux_control import support
            return support(det)
        if det.variant.startswith("in-"):
            return False, (f"a FLUX.1 of {det.extra.get('in_channels')} input channels is none Kinograph knows "
                           "(dev, schnell, Kontext, Fill, Depth and Canny are)")
        if det.variant.startswith("fill"):
            return True, ("load.diffusion_model (or load.flux): FLUX.1 Fill, inpainting and outpainting with "
                          "condition.inpaint")
        if det.variant.startswith("control"):
            return True, ("load.diffusion_model (or load.flux): FLUX.1 Depth or Canny, steered by a depth map or "
                          "edges with condition.control_image")
        if det.role == "checkpoint":
            return True, "load.flux (or load.model): transformer, VAE and both text encoders from the one file"
    if det.family == "sd3":
        if det.role == "controlnet":
            from nodes.generate.sd3_control import support
            return support(det)
        if det.layout == "diffusers":
            return False, "an SD3 transformer in diffusers layout loads from its diffusers folder (with its config.json)"
        if det.role == "checkpoint":
            held = "VAE and all three text encoders" if det.extra.get("t5") else \
                "VAE and both CLIPs (no T5: give it with load.text_encoder, or run without)" if det.extra.get("clips") \
                else "VAE (text encoders: load.text_encoder with clip_l, clip_g, t5xxl, type sd3)"
            return True, f"load.sd3 (or load.model): the MMDiT and {held} from the one file"
    if det.role == "diffusion_model" and det.family == "sd" and det.variant.startswith("sdxl"):
        return False, "an SDXL UNet alone is not supported yet; load the all-in-one SDXL checkpoint"
    if det.role == "diffusion_model" and det.family == "sd" and det.variant == "sd2":
        return True, ("load.diffusion_model: an SD 2.x UNet, built with SD 2's heads of 64; a 768-v file samples as "
                      "v_prediction only when model.sampling says so (the file does not)")
    if det.family == "sd" and det.variant.startswith("sd2"):
        from nodes.generate.converters.sd import SD2_FOLDER
        return False, f"Stable Diffusion 2.x does not load from one file. {SD2_FOLDER}"
    if det.role == "checkpoint" and det.family == "sd" and det.variant.replace("-inpainting", "") in ("sd15", "sdxl"):
        node = "load.sdxl (or load.model)" if det.variant.startswith("sdxl") else "load.sd (or load.model)"
        if (det.extra or {}).get("prediction"):
            node += f"; sampled as {det.extra['prediction']} (its own markers)"
        return True, node + ("; inpaints with condition.inpaint or vae.encode_inpaint"
                             if det.variant.endswith("-inpainting") else "")
    if det.role == "controlnet" and det.family == "qwenimage":
        from nodes.generate.qwen_control import support
        return support(det)
    if det.role == "controlnet" and det.family != "sd":
        return False, (f"{det.family} ControlNets ({det.variant}) are not supported (SD 1.5, SDXL, SD 3.5 Large, "
                       "FLUX.1 and Qwen-Image ones are)")
    if det.role == "latent_upscaler" and det.family == "hunyuan15":
        return det.variant == "1080p", ("latent.hunyuan15_upsample: HunyuanVideo 1.5's 1080p latent upsampler, before "
                                        "the super-resolution pass (condition.hunyuan15_sr)" if det.variant == "1080p"
                                        else "HunyuanVideo 1.5's 720p latent upsampler, which Kinograph does not run "
                                             "yet: use hunyuanvideo15_latent_upsampler_1080p")
    if det.role == "latent_upscaler":
        return bool(det.variant), (f"latent.ltx_upsample: LTX-Video's {det.variant} latent upscaler, between two "
                                   "sampling passes" if det.variant else "an upscaler layout no released LTX-Video "
                                   "one has")
    if det.role == "model_patch" and det.family == "zimage":
        return True, (f"load.model_patch: a Z-Image Fun ControlNet ({det.extra['layers']} control layers) for Z-Image "
                      "Turbo (control.model_patch)")
    if det.role == "model_patch" and det.family == "qwenimage":
        return det.variant == "diffsynth", (
            f"load.model_patch: a Qwen-Image DiffSynth ControlNet ({det.extra['layers']} blocks) for Qwen-Image "
            "(control.model_patch)" if det.variant == "diffsynth" else "DiffSynth's Qwen-Image inpainting ControlNet, "
            "which Kinograph does not run yet; the canny and depth files load")
    if det.role == "model_patch":
        return True, "load.model_patch: InfiniteTalk's audio layers over Wan 2.1 I2V 14B (condition.infinitetalk)"
    if det.role == "style_model":
        return True, "load.style_model: FLUX.1 Redux, a picture's SigLIP tokens as prompt tokens (condition.style_model)"
    if det.variant == "siglip2-naflex":
        return False, ("SigLIP 2 NaFlex, which Kinograph does not read; FLUX.1 Redux reads SigLIP "
                       "(sigclip_vision_patch14_384.safetensors)")
    if det.role == "clip_vision" and det.extra.get("siglip"):
        return True, "load.clip_vision: SigLIP, FLUX.1 Redux's image encoder (encode.image, then condition.style_model)"
    if det.role == "controlnet":
        ok = det.family == "sd" and det.variant in CONTROLNET_KINDS
        if ok and det.variant == "sdxl-union":
            from nodes.generate.control import SDXL_UNION_MODES
            return True, (f"control.apply on an SDXL model: xinsir's ControlNet++ union of {det.extra['modes']} "
                          f"types, told which by mode ({', '.join(SDXL_UNION_MODES[:det.extra['modes']])})")
        if ok and det.variant == "sdxl-control-lora":
            return True, (f"control.apply on an SDXL model: Stability's Control-LoRA (rank {det.extra['rank']}), "
                          "its low-rank deltas added to that model's own weights")
        return ok, "control.apply" if ok else unsupported_controlnet(det.variant)
    if det.family == "wan" and det.variant.startswith("s2v"):
        return True, "load.diffusion_model: Wan 2.2 S2V, sound to video (condition.s2v with encode.audio's features)"
    if det.family == "wan" and det.variant.startswith("causal"):
        return True, ("load.diffusion_model: autoregressive Wan (Causal Forcing), made block by block: sample's "
                      "sampler ar_video (condition.ar_start for a start image)")
    if det.family == "wan" and det.variant.startswith("animate2"):
        return True, ("load.diffusion_model: Wan Animate 2, a character from a reference image moved as a driving "
                      "video moves (condition.wan_animate2)")
    if det.family == "wan" and det.variant.startswith("scail"):
        return True, ("load.diffusion_model: SCAIL" + ("-2" if det.variant.startswith("scail2") else "") +
                      ", a character from a reference image moved as a pose video moves, or put in its person's "
                      "place (condition.wan_scail)")
    if det.family == "wan" and det.variant.startswith("dancer"):
        return True, ("load.diffusion_model: WanDancer, a picture dancing to music (condition.wan_dancer; its global "
                      "file draws a song's key frames, its local file the frames between them)")
    if det.family == "wan" and det.variant.startswith("humo"):
        return True, ("load.diffusion_model: HuMo, a person from a reference image speaking or singing a voice "
                      "(condition.humo with encode.audio's whisper features)")
    if (det.family, det.role) == ("triposplat", "diffusion_model"):
        return True, ("load.diffusion_model: TripoSplat's flow model, sampled into a splat latent from "
                      "condition.triposplat's")
    if det.family == "triposplat":
        return True, "load.vae: TripoSplat's Gaussian decoder, for decode.triposplat (a SPLAT)"
    if (det.family, det.role) == ("trellis2", "diffusion_model"):
        return (True, "load.diffusion_model: TRELLIS.2's structure model, sampled into a structure latent (its shape "
                      "and texture models: not yet)") if det.variant == "trellis2" else \
            (False, "Pixal3D's model: its projected picture features are not computed yet")
    if (det.family, det.role) == ("trellis2", "clip_vision"):
        return True, "load.clip_vision: DINOv3, the image encoder of TRELLIS.2 (condition.trellis2) and TripoSplat "\
                     "(condition.triposplat)"
    if det.family == "trellis2":
        return (True, "load.vae: TRELLIS.2's structure decoder, for decode.trellis2_structure (its mesh decoder: not "
                      "yet)") if det.variant == "shape" else (False, f"TRELLIS.2's {det.variant} VAE: not read yet")
    if det.family == "hunyuan" and det.variant.startswith("in"):
        return False, (f"HunyuanVideo transformers with {det.variant[2:].split('-')[0]} input channels (SkyReels "
                       "image-to-video) are not supported")
    if det.family == "sd" and det.variant.startswith("lotus"):
        from nodes.generate.lotus import SUPPORT
        return det.variant == "lotus-d", SUPPORT if det.variant == "lotus-d" else \
            "Lotus-G (the picture's latent beside noise), which Kinograph does not run; Lotus-D loads"
    if det.family == "sd" and det.role in ("diffusion_model", "vae") and det.layout == "diffusers":
        part = {"diffusion_model": "UNet", "vae": "VAE"}[det.role]
        return False, f"an SD {part} in diffusers layout loads from its diffusers folder (with its config.json)"
    if det.family == "cogvideox" and det.layout == "original":
        return False, ("a CogVideoX transformer in THUDM's SAT layout (mixins.), which Kinograph does not read: use "
                       "the diffusers folder (THUDM/CogVideoX-*) or a file in diffusers' or ComfyUI's names")
    if converters.supported(det):
        node = {"diffusion_model": "load.diffusion_model", "checkpoint": "load.model", "vae": "load.vae",
                "text_encoder": "load.text_encoder", "clip_vision": "load.clip_vision"}[det.role]
        return True, node
    return False, f"no single-file loader for {det.describe()} yet (a diffusers folder of it loads)"


def ipadapter_support(det: Detection) -> Tuple[bool, str]:
    """Whether load.ipadapter runs a detected IP-Adapter file, with what, or why not (its own refusal)."""
    found = det.extra
    if found["refusal"]:
        return False, found["refusal"]
    if found["kind"] == "flux":
        return True, ("XLabs FLUX.1 IP-Adapter: load.ipadapter (its clip_vision: clip_vision_l.safetensors, CLIP "
                      "ViT-L/14), ipadapter.apply or ipadapter.flux_graded on FLUX.1 dev or schnell")
    if found["base"] is None:
        return False, f"{found['title']}: no model Kinograph runs has that many (SD 1.5 16, SDXL 70)"
    vision = {"ViT-H": "CLIP-ViT-H-14-laion2B-s32B-b79K", "ViT-bigG": "CLIP-ViT-bigG-14-laion2B-39B-b160k"}.get(
        found["encoder"])
    return True, (f"{found['title']}: load.ipadapter (or load.ipadapter_preset), ipadapter.apply on an "
                  f"{'SD 1.5 or AnimateDiff' if found['base'] == 'SD 1.5' else 'SDXL'} model"
                  + (f"; its clip_vision: {vision}.safetensors" if vision else ""))


def describe_model(path: Path) -> Dict[str, str]:
    """family, variant, role, precision and whether it loads, for one file or folder (headers only)."""
    path = Path(path)
    if path.is_dir():
        from nodes.generate.redux import redux_folder
        try:
            if redux_folder(path):
                return {"family": "flux", "variant": "redux", "role": "style_model", "precision": "", "loads": "yes",
                        "note": "FLUX.1 Redux: load.style_model (image_embedder) and load.clip_vision (its SigLIP) "
                                "both take the folder"}
            fam, why = detect_family(path)
            cfg = read_config(path)
        except NodeError as exc:
            return {"family": "unreadable", "variant": "", "role": "", "precision": "", "loads": "no",
                    "note": str(exc).splitlines()[0]}
        if fam is None and why == "config.json names FluxControlNetModel":
            from nodes.generate.flux_control import folder_variant, support
            variant = folder_variant(path)
            return {"family": "flux", "variant": variant, "role": "controlnet", "precision": "", "loads": "yes",
                    "note": support(Detection("controlnet", "flux", variant, layout="diffusers"))[1]}
        if fam is None and why == "config.json names SD3ControlNetModel":
            from nodes.generate.sd3_control import folder_support
            ok, note = folder_support(path)
            return {"family": "sd3", "variant": "3.5-large" if ok else "instantx", "role": "controlnet",
                    "precision": "", "loads": "yes" if ok else "no", "note": note}
        if fam is None and (cfg.get("_class_name") == "ControlNetModel" or "num_control_type" in cfg):
            # An SD 1.5 / SDXL ControlNet folder, plain or xinsir's union: control.apply loads it (listed as not).
            variant = ("sdxl" if cfg.get("addition_embed_type") == "text_time" else "sd15") + (
                "-union" if "num_control_type" in cfg else "")
            det = Detection("controlnet", "sd", variant, layout="diffusers",
                            extra={"modes": cfg.get("num_control_type", 0)})
            return {"family": family_of_file(det) or "sd", "variant": variant, "role": "controlnet", "precision": "",
                    "loads": "yes", "note": will_load(det)[1]}
        return {"family": fam or "unknown", "variant": "", "role": "folder", "precision": "",
                "loads": "yes" if fam else "no", "note": why}
    try:
        header = read_header(path)
        det = detect_header(header)
    except NodeError as exc:
        return {"family": "unreadable", "variant": "", "role": "", "precision": "", "loads": "no",
                "note": str(exc).splitlines()[0]}
    ok, note = will_load(det)
    if ok:
        from nodes.generate.weights import unreadable_format
        refused = unreadable_format(path, header.shapes, header.metadata)
        ok, note = (False, refused) if refused else (ok, note)
    return {"family": family_of_file(det) or "unknown", "variant": det.variant, "role": det.role or "",
            "precision": det.precision, "loads": "yes" if ok else "no", "note": note}


def list_found_models() -> List[Tuple[str, str, Dict[str, str]]]:
    """(kind, path, describe_model(path)) of every model in the configured model folders (`kinograph info`)."""
    md = _models_dirs()
    if md is None:
        return []
    return [(kind, str(p), _describe(kind, Path(p))) for kind, paths in md.list_models().items() for p in paths]


# Kinds whose models are no diffusion weights (TorchScript pose networks, SAM folders): the module that loads them
# says what each is and whether it loads; read as weights, a good DWPose file was 'unreadable ... corrupt'.
DESCRIBED_BY = {"pose": "nodes.pose.dwpose", "sam2": "nodes.mask.segment", "annotators": "nodes.lines.extract",
                "depth": "nodes.depth.estimate", "audio_encoders": "nodes.generate.audio_encoder",
                "embeddings": "nodes.generate.embeddings"}


def _describe(kind: str, path: Path) -> Dict[str, str]:
    if kind in DESCRIBED_BY:
        import importlib
        return importlib.import_module(DESCRIBED_BY[kind]).describe(path)
    return describe_model(path)
