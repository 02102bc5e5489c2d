"""Split-file models: a diffusion model, text encoder, VAE or CLIP-vision file on its own, as ComfyUI
keeps them (diffusion_models/, text_encoders/, vae/, clip_vision/, or a checkpoints/ all-in-one).

Each part is detected from its header, read with weights.load_weights (fp8_scaled, GGUF, ...),
converted through the converter registry and wrapped in the family's diffusers pipeline with the
other parts left empty, so the encode/sample/decode nodes use it exactly like a part of a
diffusers folder. Tokenizers are found, never downloaded: inside the file (ComfyUI's
`spiece_model`), in a folder beside it, in a diffusers folder of the family, in ComfyUI's own
bundled tokenizers, or in the Hugging Face cache."""
from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from typing import Iterator, List, Optional

from graph_engine import NodeError
from nodes.generate.detect import Detection, detect_file
from nodes.generate.families import FAMILIES
from nodes.generate.handles import ComponentHandle, ModelHandle

# ComfyUI's CLIPLoader `type` names -> Kinograph family.
TEXT_TYPES = {"wan": "wan", "ltxv": "ltx", "ltx": "ltx", "hunyuan_video": "hunyuan", "hunyuan": "hunyuan",
              "sd": "sd", "stable_diffusion": "sd", "animatediff": "animatediff", "cogvideox": "cogvideox",
              "mochi": "ltx", "flux": "flux", "sd3": "sd3", "qwen_image": "qwenimage", "qwenimage": "qwenimage",
              "chroma": "chroma", "flux2": "flux2", "hunyuan_video_15": "hunyuan15",
              "kandinsky5": "kandinsky5", "kandinsky5_image": "kandinsky5image", "kandinsky5image": "kandinsky5image",
              "ltx2": "ltx2", "lumina2": "zimage", "zimage": "zimage", "hidream": "hidream",
              "longcat_image": "longcat", "longcat": "longcat", "ovis": "ovis", "krea2": "krea2", "ideogram4": "ideogram4",
              "minimax": "minimax_h3", "flux3": "flux3", "boogu": "boogu", "joyimage": "joyimage", "fibo2": "fibo2",
              "mage": "mage_flow", "mage_flow": "mage_flow",
              "omnigen2": "omnigen2", "lens": "lens", "pixeldit": "pixeldit", "newbie": "newbie"}
# Encoder -> the family that uses it when the type is auto.
ENCODER_FAMILY = {"umt5": "wan", "t5": "ltx", "clip_l": "sd", "llama": "hunyuan", "clip_g": "sd3",
                  "qwen25vl": "qwenimage", "qwen3vl": "qwenimage21", "mistral3": "flux2",
                  "qwen3": "flux2", "gemma3": "ltx2", "gpt_oss": "lens", "gemma2": "pixeldit", "jina_clip2": "newbie"}
# Family -> the encoders it reads: another encoder's embeddings fail later or, same width, mean nothing to it.
FAMILY_ENCODERS = {"wan": ("umt5",), "ltx": ("t5",), "cogvideox": ("t5",), "hunyuan": ("llama", "clip_l", "clip"),
                   "sd": ("clip_l", "clip"), "animatediff": ("clip_l", "clip"), "flux": ("clip_l", "clip", "t5"),
                   "sd3": ("clip_l", "clip", "clip_g", "t5"), "qwenimage": ("qwen25vl",), "chroma": ("t5",),
                   "flux2": ("mistral3", "qwen3"), "qwenimage21": ("qwen3vl",), "hunyuan15": ("qwen25vl", "t5"),
                   "kandinsky5": ("qwen25vl", "clip_l", "clip"), "kandinsky5image": ("qwen25vl", "clip_l", "clip"),
                   "ltx2": ("gemma3",), "zimage": ("qwen3",), "krea2": ("qwen3vl",), "ideogram4": ("qwen3vl",),
                   "hidream": ("clip_l", "clip", "clip_g", "t5", "llama"), "longcat": ("qwen25vl",),
                   "ovis": ("qwen3",), "minimax_h3": ("qwen3vl",), "flux3": ("qwen3vl",), "boogu": ("qwen3vl",),
                   "joyimage": ("qwen3vl",), "fibo2": ("qwen3vl",), "mage_flow": ("qwen3vl",), "omnigen2": ("qwen25vl",), "anima": ("qwen3",),
                   "lens": ("gpt_oss",), "pixeldit": ("gemma2",), "newbie": ("gemma3", "jina_clip2")}
# Family -> the `type` naming it, as the node offers it.
TYPE_OF = {"wan": "wan", "ltx": "ltxv", "hunyuan": "hunyuan_video", "sd": "sd", "animatediff": "sd",
           "cogvideox": "cogvideox", "flux": "flux", "sd3": "sd3", "qwenimage": "qwen_image",
           "chroma": "chroma", "flux2": "flux2", "qwenimage21": "qwen_image", "hunyuan15": "hunyuan_video_15",
           "kandinsky5": "kandinsky5", "kandinsky5image": "kandinsky5_image", "ltx2": "ltx2", "zimage": "lumina2", "hidream": "hidream",
           "longcat": "longcat_image", "ovis": "ovis", "krea2": "krea2", "ideogram4": "ideogram4",
           "minimax_h3": "minimax", "flux3": "flux3", "boogu": "boogu", "joyimage": "joyimage", "fibo2": "fibo2", "mage_flow": "mage",
           "omnigen2": "omnigen2", "anima": "sd", "lens": "lens", "pixeldit": "pixeldit", "newbie": "newbie"}
# Language models loaded for text generation alone: no model family of Kinograph's reads their prompts
LANGUAGE_ONLY = {"qwen35": "Qwen3.5", "gemma4": "Gemma 4"}
# How ComfyUI reads a picture for Qwen3.5: 16-pixel patches merged 2x2, CLIP's mean and spread, 3136 to 12845056 pixels
QWEN35_PICTURES = dict(patch_size=16, merge_size=2, image_mean=[0.48145466, 0.4578275, 0.40821073],
                       image_std=[0.26862954, 0.26130258, 0.27577711],
                       size={"shortest_edge": 3136, "longest_edge": 12845056})
# Tokenizers in the Hugging Face cache (used only if already there) and in a ComfyUI install.
HF_TOKENIZERS = {"umt5": "google/umt5-xxl", "t5": "google/t5-v1_1-xxl", "clip_l": "openai/clip-vit-large-patch14",
                 "llama": "xtuner/llava-llama-3-8b-v1_1-transformers", "qwen25vl": "Qwen/Qwen2.5-VL-7B-Instruct",
                 "qwen3vl": "Qwen/Qwen3-VL-8B-Instruct", "gemma3": "google/gemma-3-12b-it"}
COMFY_TOKENIZERS = {"clip_l": "comfy/sd1_tokenizer", "t5": "comfy/text_encoders/t5_tokenizer",
                    "llama": "comfy/text_encoders/llama_tokenizer", "qwen25vl": "comfy/text_encoders/qwen25_tokenizer",
                    "qwen3vl": "comfy/text_encoders/qwen25_tokenizer", "qwen35": "comfy/text_encoders/qwen35_tokenizer"}
# Where a pipeline folder keeps T5-XXL's tokenizer, beside CLIP's tokenizer/.
T5_TOKENIZER = {"FluxPipeline": "tokenizer_2", "StableDiffusion3Pipeline": "tokenizer_3"}
# Where a pipeline folder keeps its tokenizer when not in tokenizer/ (Qwen-Image 2.1: Qwen3-VL's processor/).
TOKENIZER_FOLDER = {"QwenImage21Pipeline": "processor"}
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "vocab.json", "tokenizer.model")
# Pipeline settings a model variant needs, as its diffusers folder's model_index.json has them
# (Wan 2.2 TI2V-5B: per-token timesteps, so a start image's latent frames stay clean).
# Krea 2 from ComfyUI's files: the fixed time shift ComfyUI samples every Krea 2 file with (Krea2Pipeline's Turbo one).
PIPELINE_OPTIONS = {("wan", "ti2v"): {"expand_timesteps": True}, ("krea2", ""): {"is_distilled": True}}


def _resolve(name: str, kind: str, what: str) -> Path:
    from nodes.generate.model_manager import resolve_model_path
    return resolve_model_path(name, kind, what)


def _detect(path: Path, roles, what: str) -> Detection:
    if path.is_dir():
        raise NodeError(f"{path} is a folder; {what} takes one weights file (for a diffusers folder use load.model "
                        "or the family's loader)")
    det = detect_file(path)
    from nodes.generate.model_manager import READ_BY_NODE
    read_by = READ_BY_NODE.get((det.family, det.variant))
    if read_by is not None:                    # a sound model or a patch: the node that reads it, not a loader
        title, loads, reader = read_by
        raise NodeError(f"{path.name} is {title}: {reader}" + (f", not {what}" if loads else ""))
    if det.role is None and det.family:        # a model Kinograph knows and says why it does not load this way
        raise NodeError(f"{path.name}: {det.why}")
    if det.role not in roles:
        got = det.describe() if det.role else f"not a model Kinograph recognises ({det.why})"
        # 'a diffusion model' -> 'diffusion models': it said "ComfyUI keeps a diffusion models in ..."
        raise NodeError(f"{path.name} is {got}, not {what}. Check which folder it came from "
                        f"(ComfyUI keeps {what.split(' ', 1)[1]}s in {_FOLDERS[roles[0]]}/)")
    return det


_FOLDERS = {"diffusion_model": "diffusion_models", "checkpoint": "checkpoints", "text_encoder": "text_encoders",
            "vae": "vae", "clip_vision": "clip_vision", "controlnet": "controlnet", "ipadapter": "ipadapter",
            "latent_upscaler": "latent_upscale_models", "lora": "loras", "model_patch": "model_patches",
            "motion_module": "animatediff_models", "style_model": "style_models"}


def folder_of(det: Detection) -> Optional[str]:
    """The sub-folder of a model folder ComfyUI and Kinograph keep a file of this role in (None: not told)."""
    return _FOLDERS.get(det.role or "")


def _module(path: Path, det: Detection, dtype, device: str, role: Optional[str] = None):
    """The converted module for one file (callers cache the pipeline holding it)."""
    from nodes.generate import converters
    from nodes.generate.weights import load_weights
    # A part taken from an all-in-one checkpoint: the denoiser's prefix is stripped for the denoiser only;
    # the family's converter for the other parts picks its own keys (vae., first_stage_model., ...).
    prefix = det.prefix if det.role != "checkpoint" or role == "diffusion_model" else ""
    state, extra = load_weights(path, dtype), det.extra
    if det.family == "qwen25vl" and path.suffix.lower() == ".gguf":
        # llama.cpp keeps Qwen2.5-VL's vision tower in its own projector file beside the language model
        from nodes.generate.gguf_mmproj import vision_tower
        vision, settings = vision_tower(path, int(det.extra.get("hidden") or 0), dtype)
        state.update(vision)
        extra = {**det.extra, "vision_config": settings} if vision else extra
    det_role = Detection(role or det.role, det.family, det.variant, det.precision, det.layout, prefix, det.why, extra)
    return converters.build(det_role, state, dtype, str(path)).to(device)


def pipeline(family: str, variant: str = "", **parts):
    """The family's diffusers pipeline holding only these parts (the rest None)."""
    import diffusers
    names = FAMILIES[family].pipelines
    kind = variant.split("-")[0]
    image = kind in ("i2v", "flf2v") or parts.get("image_encoder") is not None
    name = next((n for n in names if image and "ImageToVideo" in n), names[0])
    if variant.startswith("vace-"):
        name = next(n for n in names if "VACE" in n)
    if family == "minimax_h3":
        from nodes.generate.adapters.minimax_h3 import MiniMaxH3Parts as cls
    elif family == "flux3":
        from nodes.generate.adapters.flux3 import Flux3Parts as cls
    elif family == "boogu":
        from nodes.generate.adapters.boogu import BooguParts as cls
    elif family == "omnigen2":
        from nodes.generate.adapters.omnigen2 import OmniGen2Parts as cls
    elif family == "joyimage":
        from nodes.generate.adapters.joyimage import JoyImageParts as cls
    elif family == "fibo2":
        from nodes.generate.adapters.fibo2 import Fibo2Parts as cls
    elif family == "mage_flow":
        from nodes.generate.adapters.mage_flow import MageFlowParts as cls
    elif family == "lens":
        from nodes.generate.adapters.lens import LensParts as cls
    elif family == "pixeldit":
        from nodes.generate.adapters.pixeldit import PixelDiTParts as cls
    elif family == "newbie":
        from nodes.generate.adapters.newbie import NewBieParts as cls
    elif family == "seedvr2":
        from nodes.generate.adapters.seedvr2 import SeedVR2Parts as cls
    elif family == "anima":
        from nodes.generate.adapters.anima import AnimaParts as cls
    else:
        cls = getattr(diffusers, name)
    if family == "qwenimage21" and parts.get("processor") is None:
        from nodes.generate.adapters.qwenimage21 import without_processor
        cls = without_processor(cls)
    if family == "hunyuan15" and parts.get("vae") is None:
        from nodes.generate.adapters.hunyuan15 import without_vae
        cls = without_vae(cls)
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    # Only a denoiser samples: text encoder, VAE and CLIP-vision pipelines need no scheduler.
    if "scheduler" in params and parts.get("scheduler") is None and (parts.get("transformer") is not None
                                                                     or parts.get("unet") is not None):
        parts["scheduler"] = scheduler(family, kind)
    opts = {k: v for k, v in PIPELINE_OPTIONS.get((family, kind), {}).items() if k in params}
    return cls(**{p: parts.get(p) for p in params if p in parts or _required(cls, p)}, **opts)


def _required(cls, name: str) -> bool:
    p = inspect.signature(cls.__init__).parameters[name]
    return p.default is inspect.Parameter.empty


def scheduler(family: str, kind: str = ""):
    """The family's default scheduler from its shipped config (resources/model_configs/<family>/scheduler.json,
    or scheduler_<kind>.json where a model variant samples differently)."""
    from nodes.generate.converters import CONFIG_DIR
    path = CONFIG_DIR / family / f"scheduler_{kind}.json"
    if not kind or not path.is_file():
        path = CONFIG_DIR / family / "scheduler.json"
    if not path.is_file():
        raise NodeError(f"no shipped scheduler config for {family} ({path}); reinstall Kinograph")
    cfg = json.loads(path.read_text(encoding="utf-8"))
    import diffusers
    return getattr(diffusers, cfg["_class_name"]).from_config({k: v for k, v in cfg.items() if not k.startswith("_")})


PREDICTIONS = ("epsilon", "v_prediction", "sample")


def resampled(base, prediction: str = "", zsnr: bool = False):
    """A scheduler like `base` whose network predicts `prediction` (epsilon, v_prediction, sample = x0), with
    zero-terminal-SNR noise levels when zsnr: the last training level is pure noise (Lin et al. 2024), as a
    v-prediction checkpoint's v_pred / ztsnr markers or ComfyUI's ModelSamplingDiscrete ask. Zero terminal SNR is
    diffusers' EulerDiscreteScheduler's rescale_betas_zero_snr (its last level held at 2**-24) with trailing
    timesteps, so the first step starts from that pure-noise level; the samplers read only the levels."""
    import diffusers
    over = {"prediction_type": prediction or base.config.get("prediction_type") or "epsilon"}
    if over["prediction_type"] not in PREDICTIONS:
        raise NodeError(f"unknown prediction type {over['prediction_type']!r}; choose one of {', '.join(PREDICTIONS)}")
    cls = type(base)
    if zsnr:
        over.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
        cls = diffusers.EulerDiscreteScheduler
    elif base.config.get("rescale_betas_zero_snr"):
        # Off on a model set up for it (a ztsnr file sampled as a plain one): SD's and SDXL's own leading timesteps.
        over.update(rescale_betas_zero_snr=False, timestep_spacing="leading")
    return cls.from_config(base.config, **over)


# -- the four loaders ----------------------------------------------------------------------
def load_diffusion_model(mm, name: str, weight_dtype: str, device: str) -> ModelHandle:
    from nodes.generate.model_manager import dtype_of
    path = _resolve(name, "diffusion_models", "diffusion model")
    det = _detect(path, ("diffusion_model", "checkpoint"), "a diffusion model")
    if det.family == "trellis2":
        return _trellis2_model(mm, path, det, weight_dtype, device)
    if det.family == "triposplat":
        return _triposplat_model(mm, path, det, weight_dtype, device)
    from nodes.generate.model_manager import family_of_file
    det = dataclasses.replace(det, family=family_of_file(det))
    if det.family == "sdxl":
        from nodes.generate.converters.sdxl import refuse_unsupported
        refuse_unsupported(path, det)
    if det.family not in FAMILIES:
        raise NodeError(f"{path.name} is {det.describe()}, a model family Kinograph does not run")
    dname, dtype = _weight_dtype(weight_dtype, det.family, device, dtype_of)
    slot = "unet" if det.family in ("sd", "sdxl", "animatediff", "svd") else "transformer"
    pipe = mm.cached(("model", str(path.resolve()), dname, device), lambda: pipeline(
        det.family, det.variant, **{slot: _module(path, det, dtype, device, "diffusion_model")}), files=(path,))
    return ModelHandle(family=det.family, path=str(path), pipe=pipe, dtype=dname, device=device)


def _trellis2_model(mm, path: Path, det: Detection, weight_dtype: str, device: str) -> ModelHandle:
    """TRELLIS.2's structure flow model, read alone from the file that holds its shape and texture models too."""
    from nodes.generate.model_manager import dtype_of
    from nodes.generate.trellis2_flow import load_structure_flow
    if det.variant == "pixal3d":
        raise NodeError(f"{path.name} is Pixal3D's model, which reads the picture's features projected onto the grid "
                        "(Pixal3DConditioning), not computed by Kinograph yet: use TRELLIS.2's "
                        "(trellis_2_int8_convrot.safetensors, Comfy-Org/TRELLIS.2) with condition.trellis2")
    dname, dtype = _weight_dtype(weight_dtype, "trellis2", device, dtype_of)
    pipe = mm.cached(("model", str(path.resolve()), dname, device), lambda: load_structure_flow(
        path, det.prefix, dtype, device), files=(path,), libraries=())       # plain torch
    return ModelHandle(family="trellis2", path=str(path), pipe=pipe, dtype=dname, device=device)


def _triposplat_model(mm, path: Path, det: Detection, weight_dtype: str, device: str) -> ModelHandle:
    """TripoSplat's flow model (plain torch, no diffusers class)."""
    from nodes.generate.model_manager import dtype_of
    from nodes.generate.triposplat_flow import load_flow
    dname, dtype = _weight_dtype(weight_dtype, "triposplat", device, dtype_of)
    pipe = mm.cached(("model", str(path.resolve()), dname, device), lambda: load_flow(
        path, det.prefix, dtype, device), files=(path,), libraries=())
    return ModelHandle(family="triposplat", path=str(path), pipe=pipe, dtype=dname, device=device)


def _weight_dtype(name: str, family: str, device: str, dtype_of):
    # fp8 storage is what the file holds; Kinograph computes in the device's float type.
    if name in ("default", "fp8_e4m3fn", "fp8_e5m2", "fp8_e4m3fn_fast"):
        name = "auto"
    return dtype_of(name, family, device)


def load_text_encoder(mm, name: str, name2: str, type_: str, device: str, name3: str = "",
                      name4: str = "") -> ComponentHandle:
    from nodes.generate.model_manager import dtype_of
    path = _resolve(name, "text_encoders", "text encoder")
    det = _detect(path, ("text_encoder",), "a text encoder")
    if name4 or type_ == "hidream":
        return _load_sd3_text(mm, [(path, det)] + [
            (p, _detect(p, ("text_encoder",), "a text encoder"))
            for p in (_resolve(n, "text_encoders", "text encoder") for n in (name2, name3, name4) if n)], type_,
            device, "hidream")
    if det.family in LANGUAGE_ONLY:
        return _load_language_model(mm, path, det, type_, device)
    if det.family == "gemma3" and type_ in ("", "auto") and name2 and _jina(name2):
        type_ = "newbie"                # Gemma 3 with Jina CLIP v2 is NewBie-image's pair, not LTX-2's Gemma
    if (det.family == "gemma3" and type_ != "newbie") or type_ == "ltx2":
        from nodes.generate.ltx2_text import load_ltx2_text
        return load_ltx2_text(mm, path, det, name2, type_, device)
    if name3 or type_ == "sd3" or (type_ in ("", "auto") and det.family == "clip_g"):
        return _load_sd3_text(mm, [(path, det)] + [
            (p, _detect(p, ("text_encoder",), "a text encoder"))
            for p in (_resolve(n, "text_encoders", "text encoder") for n in (name2, name3) if n)], type_, device)
    pair = None
    if name2 and type_ in ("", "auto") and det.family in ("clip_l", "clip", "t5"):
        path2 = _resolve(name2, "text_encoders", "second text encoder")
        other = _detect(path2, ("text_encoder",), "a text encoder")
        if other.family == "clip_g":        # CLIP-G is SD3's alone (DualCLIPLoader type sd3)
            return _load_sd3_text(mm, [(path, det), (path2, other)], type_, device)
        pair = {det.family, other.family}
    # CLIP-L with T5-XXL is FLUX.1's pair (alone, CLIP-L is SD's and T5 LTX-Video's)
    family = "flux" if pair in ({"clip_l", "t5"}, {"clip", "t5"}) else _text_family(det, type_)
    _check_encoder(path, det, family)
    _, dtype = dtype_of("auto", family, device)
    files = [(path, det)]
    if name2:
        path2 = _resolve(name2, "text_encoders", "second text encoder")
        det2 = _detect(path2, ("text_encoder",), "a text encoder")
        _check_encoder(path2, det2, family)
        # HunyuanVideo reads llava-llama3 first and clip_l second, whichever order they were given in.
        # and FLUX.1 CLIP-L first and T5-XXL second (text_encoder, text_encoder_2 of its pipeline).
        files = [(path2, det2), (path, det)] if (det.family, det2.family) in (("clip_l", "llama"), ("clip", "llama"),
                                                                             ("t5", "clip_l"), ("t5", "clip")) else \
            [(path, det), (path2, det2)]
    if family == "hunyuan15":
        files = hunyuan15_files(files)
    if family in ("kandinsky5", "kandinsky5image"):     # Qwen2.5-VL is its pipeline's text_encoder, CLIP-L its text_encoder_2
        files = sorted(files, key=lambda f: f[1].family != "qwen25vl")
    if family == "newbie":          # Gemma 3 4B is its text_encoder, Jina CLIP v2 its text_encoder_2
        files = sorted(files, key=lambda f: f[1].family != "gemma3")

    def build():
        parts = {}
        for i, (p, d) in enumerate(files):
            suffix = f"_{i + 1}" if i else ""
            parts[f"text_encoder{suffix}"] = _module(p, d, dtype, device)
            parts[f"tokenizer{suffix}"] = tokenizer(p, d)
        if family in ("qwenimage", "qwenimage21", "longcat", "minimax_h3", "boogu", "joyimage", "fibo2", "mage_flow"):
            from nodes.generate.converters.qwenimage import link_vision_tokens
            link_vision_tokens(parts["text_encoder"], parts["tokenizer"])
        if family in ("minimax_h3", "boogu", "joyimage", "fibo2", "mage_flow"):   # Qwen3-VL also reads MiniMax H3's keyframes, edited pictures
            from nodes.generate.adapters.qwenimage21 import file_processor
            parts["processor"] = file_processor(parts["tokenizer"])
        if family == "qwenimage21":
            from nodes.generate.adapters.qwenimage21 import file_processor
            parts["processor"] = file_processor(parts.pop("tokenizer"))
        if family == "anima":           # Anima's DiT reads the prompt's T5 token ids beside Qwen3's states
            parts["tokenizer_2"] = t5_tokenizer(path)
        return pipeline(family, **parts)
    where = "+".join(str(p) for p, _ in files)
    # a GGUF's vision projector beside it is read with it, and a changed one reloads it too
    from nodes.generate.gguf_mmproj import matching
    read = [p for p, _ in files] + [m for p, d in files if d.family == "qwen25vl" and p.suffix.lower() == ".gguf"
                                    for m in matching(p)]
    pipe = mm.cached(("text_encoder", where, family, str(dtype), device), build, files=read)
    return ComponentHandle(family, where, pipe, "text_encoder", device)


def _jina(name: str) -> bool:
    """Whether the text encoder `name` is Jina CLIP v2's (an LTX-2 checkpoint, Gemma 3's other partner, lives in
    checkpoints/: not found here, it is not)."""
    try:
        return detect_file(_resolve(name, "text_encoders", "second text encoder")).family == "jina_clip2"
    except NodeError:
        return False


def _load_language_model(mm, path: Path, det: Detection, type_: str, device: str) -> ComponentHandle:
    """A language model no Kinograph model family encodes prompts with (Qwen3.5: MOSS-Image's encoder), loaded for
    text.generate alone, with its tokenizer (and, with its vision tower, the processor that prepares pictures)."""
    from types import SimpleNamespace
    from nodes.generate.model_manager import dtype_of
    title = LANGUAGE_ONLY[det.family]
    if type_ not in ("", "auto"):
        raise NodeError(f"{path.name} is {title}, which Kinograph generates text with (text.generate) but pairs with "
                        f"no model family it draws with: set type auto, not {type_!r}")
    _, dtype = dtype_of("auto", "zimage", device)      # bf16 on CUDA, as Qwen3 runs for Z-Image (fp16 overflows)

    def build():
        parts = SimpleNamespace(text_encoder=_module(path, det, dtype, device), tokenizer=tokenizer(path, det))
        if hasattr(parts.text_encoder.model, "visual"):
            from nodes.generate.converters.qwenimage import link_vision_tokens
            from nodes.generate.adapters.qwenimage21 import file_processor
            link_vision_tokens(parts.text_encoder, parts.tokenizer)
            parts.processor = file_processor(parts.tokenizer, QWEN35_PICTURES)
        if hasattr(parts.text_encoder.model, "vision_tower"):      # Gemma 4 with its towers
            from nodes.generate.gemma4_media import link_media_tokens
            link_media_tokens(parts.text_encoder, parts.tokenizer)
        return parts
    pipe = mm.cached(("text_encoder", str(path), det.family, str(dtype), device), build, files=[path])
    return ComponentHandle(det.family, str(path), pipe, "text_encoder", device)


def hunyuan15_files(files):
    """HunyuanVideo 1.5's Qwen2.5-VL, out of ComfyUI's DualCLIPLoader pair (qwen_2.5_vl_7b + byt5_small_glyphxl): the
    glyph ByT5 only reads quoted text, which the adapter refuses by name, so it is not loaded."""
    qwen = [(p, d) for p, d in files if d.family == "qwen25vl"]
    if not qwen:
        raise NodeError(f"{files[0][0].name} is HunyuanVideo 1.5's glyph ByT5 encoder, which reads only quoted text; "
                        "its prompt is read by Qwen2.5-VL: give load.text_encoder qwen_2.5_vl_7b_fp8_scaled.safetensors "
                        "(byt5_small_glyphxl_fp16.safetensors may stay as name2)")
    return qwen[:1]


SD3_SLOTS = {"clip_l": "clip_l", "clip": "clip_l", "clip_g": "clip_g", "t5": "t5", "llama": "llama"}
SD3_PARTS = {"clip_l": "text_encoder", "clip_g": "text_encoder_2", "t5": "text_encoder_3", "llama": "text_encoder_4"}


def _load_sd3_text(mm, files, type_: str, device: str, family: str = "sd3") -> ComponentHandle:
    """SD3's text encoders from their files in any order (ComfyUI's TripleCLIPLoader, or DualCLIPLoader with CLIP-L
    and CLIP-G, type sd3): CLIP-L, OpenCLIP-G and T5-XXL, each into its place in the pipeline. HiDream-I1's
    (QuadrupleCLIPLoader) are the same three and Llama 3.1 8B, its pipeline's text_encoder_4."""
    from nodes.generate.converters.sd3 import text_encoder, tokenizers
    from nodes.generate.model_manager import dtype_of
    from nodes.generate.weights import load_weights
    if type_ not in ("", "auto", TYPE_OF[family]):
        raise NodeError(f"three text encoders (name3) are Stable Diffusion 3's, four (name4) HiDream-I1's; set type "
                        f"to {TYPE_OF[family]} or auto, not {type_!r}")
    slots = {}
    for p, d in files:
        _check_encoder(p, d, family)
        slot = SD3_SLOTS[d.family]
        if slot in slots:
            raise NodeError(f"{slots[slot].name} and {p.name} are both {slot} text encoders; "
                            f"{FAMILIES[family].title} reads one each of {', '.join(FAMILY_ENCODERS[family])}")
        slots[slot] = p
    _, dtype = dtype_of("auto", family, device)

    def build():
        parts = {SD3_PARTS[slot]: text_encoder(slot, load_weights(p, dtype), dtype, str(p),
                                                  projected_l=family == "hidream").to(device)
                 for slot, p in slots.items() if slot != "llama"}
        clip = slots.get("clip_l") or slots.get("clip_g")
        parts.update(tokenizers({"clip_l": clip, "t5": slots.get("t5")}, list(slots)))
        if "llama" in slots:
            det = next(d for p, d in files if p == slots["llama"])
            parts.update(text_encoder_4=_module(slots["llama"], det, dtype, device),
                         tokenizer_4=tokenizer(slots["llama"], det))
        return pipeline(family, **parts)
    where = "+".join(str(slots[s]) for s in ("clip_l", "clip_g", "t5", "llama") if s in slots)
    pipe = mm.cached(("text_encoder", where, family, str(dtype), device), build, files=list(slots.values()))
    return ComponentHandle(family, where, pipe, "text_encoder", device)


def _check_encoder(path: Path, det: Detection, family: str) -> None:
    if (det.family, det.variant) == ("qwen3", "0.6b") and family != "anima":
        # the families reading Qwen3 read its 4B / 8B (Z-Image, FLUX.2 [klein], Ovis); 0.6B is Anima's alone
        raise NodeError(f"{path.name} is Qwen3-0.6B, Anima's text encoder, which {FAMILIES[family].title} does not "
                        f"read: set type stable_diffusion (or auto) to use it with Anima, or give this loader "
                        f"{FAMILIES[family].title}'s text encoder")
    reads = FAMILY_ENCODERS.get(family)
    if reads is None or det.family in reads:
        return
    fits = ENCODER_FAMILY.get(det.family or "")
    hint = f"set type {TYPE_OF[fits]} (or auto) to use it with {FAMILIES[fits].title}" if fits else \
        "it is an encoder Kinograph does not pair with a model family"
    what = " ".join(b for b in (det.family, det.variant, det.precision) if b)
    raise NodeError(f"{path.name} is {'an' if what[:1] in 'aeiou' else 'a'} {what} text encoder, and {FAMILIES[family].title} reads "
                    f"{' / '.join(r for r in reads if r != 'clip')}: {hint}, or give this loader "
                    f"{FAMILIES[family].title}'s text encoder")


def _text_family(det: Detection, type_: str) -> str:
    if det.family == "qwen3" and det.variant == "0.6b" and (type_ in ("", "auto") or TEXT_TYPES.get(type_) == "sd"):
        return "anima"                  # ComfyUI's CLIPLoader reads Qwen3-0.6B as Anima's (its templates: stable_diffusion)
    if type_ and type_ != "auto":
        if type_ not in TEXT_TYPES:
            raise NodeError(f"unknown text encoder type {type_!r}; choose auto or one of {', '.join(TEXT_TYPES)}")
        if TEXT_TYPES[type_] == "qwenimage" and det.family == "qwen3vl":
            return "qwenimage21"        # ComfyUI's type qwen_image loads Qwen-Image 2.1's Qwen3-VL too
        return TEXT_TYPES[type_]
    fam = ENCODER_FAMILY.get(det.family or "")
    if fam is None:
        raise NodeError(f"cannot tell which model family the {det.describe()} text encoder is for; set `type`")
    return fam


def vae_dtype(det: Detection, device: str):
    """The dtype load.vae builds a VAE in: its family's automatic one, save MiniMax H3's audio VAE, which diffusers
    keeps whole in fp32 (_keep_in_fp32_modules: its BigVGAN decoder loses about 20 dB in bf16)."""
    import torch
    from nodes.generate.model_manager import dtype_of
    if (det.family, det.variant) == ("minimax_h3", "audio"):
        return torch.float32
    return dtype_of("auto", det.family, device)[1]


def load_vae(mm, name: str, device: str, family: str = "auto") -> ComponentHandle:
    from nodes.generate.model_manager import family_of_file
    from nodes.generate.adapters.pixel_space import PixelSpace
    from nodes.generate.pixel_space_name import is_pixel_space
    if is_pixel_space(name):        # ComfyUI's VAELoader entry for pixel-space models: no file
        return ComponentHandle("pixel_space", "pixel_space", PixelSpace(), "vae", device)
    path = _resolve(name, "vae", "VAE")
    det = _detect(path, ("vae", "checkpoint"), "a VAE")
    if det.family == "trellis2":
        return _trellis2_vae(mm, path, det, device)
    if det.family == "triposplat":
        from nodes.generate.triposplat_vae import load_vae
        vae = mm.cached(("vae", str(path.resolve()), "triposplat", "float32", device),
                        lambda: load_vae(path, device), files=(path,), libraries=())     # plain torch
        return ComponentHandle("triposplat", str(path), vae, "vae", device)
    found = family_of_file(det)
    if found == "sd" and det.role == "vae":
        found = sd_vae_family(path, family)
    elif found == "flux" and det.role == "vae":
        found = flat_vae_family(path, family)
    elif found == "wan" and det.variant == "2.1" and (family == "qwenimage" or family == "auto" and (any(
            k in path.stem.lower() for k in ("qwen", "marigold_v2")) or det.extra.get("channels") == 4)):
        # qwen_image_vae: the Wan 2.1 VAE's network and names, Qwen-Image's weights; Marigold v2's task VAEs
        # (marigold_v2_depth_log_stage2_vae, ...) are Qwen-Image's, fine-tuned; an RGBA one is Qwen-Image-Layered's
        found = "qwenimage"
    elif family not in ("auto", found):
        raise NodeError(f"{path.name} is {FAMILIES[found].title}'s VAE, not {FAMILIES[family].title}'s; set family "
                        f"to auto or {found}")
    det = dataclasses.replace(det, family=found)
    dtype = vae_dtype(det, device)
    pipe = mm.cached(("vae", str(path.resolve()), found, str(dtype), device),
                     lambda: pipeline(found, vae=_module(path, det, dtype, device, "vae")), files=(path,))
    return ComponentHandle(found, str(path), pipe, "vae", device)


def _trellis2_vae(mm, path: Path, det: Detection, device: str) -> ComponentHandle:
    """TRELLIS.2's shape VAE: its structure decoder, which decode.trellis2_structure runs (no diffusers pipeline
    holds it)."""
    from nodes.generate.trellis2 import load_shape_vae
    if det.variant != "shape":
        raise NodeError(f"{path.name} is TRELLIS.2's {det.variant} VAE, which Kinograph does not read yet: only the "
                        "shape VAE's structure decoder runs (trellis_2_shape_vae_bf16.safetensors)")
    vae = mm.cached(("vae", str(path.resolve()), "trellis2", "float32", device),
                    lambda: load_shape_vae(path, device), files=(path,), libraries=())    # plain torch
    return ComponentHandle("trellis2", str(path), vae, "vae", device)


def sd_vae_family(path: Path, family: str) -> str:
    """SD 1.5's and SDXL's VAE files have the same tensors (only the weights and the latent scale they were trained
    with differ), so the family is the one asked for, else the name's: sdxl_vae, sdxl-vae-fp16-fix, ... are SDXL's."""
    if family in ("sd", "sdxl"):
        return family
    if family not in ("auto", "animatediff"):
        raise NodeError(f"{path.name} is a Stable Diffusion VAE (SD 1.5 or SDXL), not {family}'s; set family to sd "
                        "or sdxl")
    return "sdxl" if "xl" in path.stem.lower() else "sd"


def flat_vae_family(path: Path, family: str) -> str:
    """FLUX.1's ae.safetensors and SD3's VAE have the same tensors (16 latent channels; only the latent scale and
    shift they were trained with differ), so the family is the one asked for, else the name's: sd3 in it is SD3's."""
    if family in ("flux", "sd3"):
        return family
    if family != "auto":
        raise NodeError(f"{path.name} is a 16-channel VAE (FLUX.1's or Stable Diffusion 3's), not {family}'s; set "
                        "family to flux or sd3")
    return "sd3" if "sd3" in path.stem.lower() else "flux"


def load_clip_vision(mm, name: str, family: str, device: str) -> ComponentHandle:
    """CLIP vision for image-to-video; its handle belongs to the family that reads its tokens (Wan i2v, or
    HunyuanVideo i2v for llava-llama-3's image side). family "auto" picks by the file."""
    from nodes.generate.converters import model_config
    from nodes.generate.model_manager import dtype_of
    from nodes.generate import redux
    path = redux.find(name, "clip_vision", "CLIP vision model")
    if redux.redux_folder(path) or path.is_file() and detect_file(path).extra.get("siglip"):
        return _siglip(mm, path, family, device)
    det = _detect(path, ("clip_vision",), "a CLIP vision model")
    if det.family == "trellis2":
        return _trellis2_dino(mm, path, family, device)
    llava = det.variant.startswith("llava")
    if family == "auto":
        family = "hunyuan" if llava else "wan"
    if llava != (family == "hunyuan"):
        raise NodeError(f"{path.name} is {det.describe()}: " + (
            "llava-llama-3's image encoder, which HunyuanVideo image-to-video reads; set family to hunyuan or auto"
            if llava else "a plain CLIP vision model; HunyuanVideo image-to-video reads llava-llama-3's "
            "(clip_vision/llava_llama3_vision.safetensors)"))
    _, dtype = dtype_of("auto", family, device)

    def build():
        from transformers import CLIPImageProcessor
        module = _module(path, det, dtype, device)
        size = int(module.config.vision_config.image_size if llava else module.config.image_size)
        proc = model_config("clip_vision", "preprocessor")
        proc.update(crop_size={"height": size, "width": size}, size={"shortest_edge": size})
        if llava:
            from nodes.generate.llava import VisionPipe
            return VisionPipe(module, CLIPImageProcessor(**proc))
        return pipeline(family, "i2v", image_encoder=module, image_processor=CLIPImageProcessor(**proc))
    pipe = mm.cached(("clip_vision", str(path.resolve()), family, str(dtype), device), build, files=(path,))
    return ComponentHandle(family, str(path), pipe, "image_encoder", device)


def _trellis2_dino(mm, path: Path, family: str, device: str) -> ComponentHandle:
    """DINOv3, TRELLIS.2 / Pixal3D's image encoder, which condition.trellis2 runs (plain torch and transformers'
    model; no diffusers pipeline holds it)."""
    from nodes.generate.trellis2_dino import load_dinov3
    if family != "auto":
        raise NodeError(f"{path.name} is DINOv3, TRELLIS.2's image encoder, which no {family} model reads; set "
                        "family to auto")
    encoder = mm.cached(("clip_vision", str(path.resolve()), "trellis2", "float32", device),
                        lambda: load_dinov3(path, device), files=(path,), libraries=("transformers",))
    return ComponentHandle("trellis2", str(path), encoder, "image_encoder", device)


def _siglip(mm, path: Path, family: str, device: str) -> ComponentHandle:
    """SigLIP (sigclip_vision_patch14_384, or a FLUX.1-Redux-dev folder's image_encoder): FLUX.1 Redux's, and
    HunyuanVideo 1.5 image-to-video's (family hunyuan15; auto means FLUX.1 Redux)."""
    from nodes.generate import redux
    from nodes.generate.model_manager import dtype_of
    family = "flux" if family == "auto" else family
    if family not in ("flux", "hunyuan15"):
        raise NodeError(f"{path.name} is SigLIP, the image encoder of FLUX.1 Redux and HunyuanVideo 1.5 "
                        f"image-to-video, which no {family} model reads; set family to flux, hunyuan15 or auto")
    _, dtype = dtype_of("auto", family, device)
    if path.is_dir():
        build, files = (lambda: redux.load_siglip_folder(path, dtype, device)), \
            tuple(sorted((path / "image_encoder").glob("*")))
    else:
        det = detect_file(path)
        build, files = (lambda: redux.siglip_pipe(_module(path, det, dtype, device))), (path,)
    pipe = mm.cached(("clip_vision", str(path.resolve()), family, str(dtype), device), build, files=files)
    return ComponentHandle(family, str(path), pipe, "image_encoder", device)


# -- tokenizers ----------------------------------------------------------------------------
def tokenizer(path: Path, det: Detection, beside: Optional[List[Path]] = None, of: str = ""):
    """The tokenizer for a text encoder file; a clear error listing where it looked when none is found.

    beside: the folders next to the file to look in first (default: named after it); a file holding two encoders
    (FLUX.1's all-in-one checkpoint) gives each its own. of: another model's tokenizer that this file's reader needs
    (what the error names; the file itself holds none of it)."""
    from transformers import AutoTokenizer
    looked: List[str] = []
    if not of and path.suffix.lower() == ".gguf":
        # llama.cpp's files keep their tokenizer in their metadata
        from nodes.generate.gguf_tokenizer import gguf_tokenizer
        embedded, held = stored_tokenizer(path.name, lambda: gguf_tokenizer(path, det.family or ""))
        if embedded is not None:
            return embedded
        looked.append(f"the metadata of {path.name}: it holds {held}")
    elif not of:
        embedded = stored_tokenizer(path.name, lambda: _embedded_spiece(path, det) or _embedded_json(path))
        if embedded is not None:
            return embedded
        looked.append(f"a spiece_model tensor inside {path.name}")
    for folder in _tokenizer_folders(path, det, beside):
        looked.append(str(folder))
        if any((folder / f).is_file() for f in TOKENIZER_FILES):
            try:
                return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError) as exc:
                raise NodeError(f"the tokenizer in {folder} could not be read ({str(exc).splitlines()[0][:200]})") \
                    from None
    repo = HF_TOKENIZERS.get(det.family or "")
    if repo:
        looked.append(f"the Hugging Face cache ({repo})")
        try:
            return AutoTokenizer.from_pretrained(repo, local_files_only=True)
        except (OSError, ValueError):
            pass
    where = "\n  ".join(looked)
    raise NodeError(f"no tokenizer found for {of or f'{path.name} ({det.describe()})'}. Looked in:\n  {where}\nPut the "
                    f"tokenizer files (tokenizer.json, or spiece.model / vocab.json + merges.txt) into "
                    f"{_rel(beside[0], path) if beside else path.stem + '/'} beside the file. Kinograph never downloads "
                    "them.")


def t5_tokenizer(path: Path):
    """T5-XXL's tokenizer for a text encoder that reads T5's token ids without T5 (Anima's Qwen3-0.6B): in
    t5_tokenizer/ or <name>_t5/ beside the file, a FLUX.1 or SD3 folder, ComfyUI's own, or the Hugging Face cache."""
    return tokenizer(path, Detection("text_encoder", "t5", ""),
                     [path.parent / "t5_tokenizer", path.parent / f"{path.stem}_t5"],
                     of=f"T5-XXL, whose token ids Anima reads beside {path.name}'s states (its tokenizer alone: "
                        "ComfyUI's comfy/text_encoders/t5_tokenizer, or google/t5-v1_1-xxl's tokenizer files)")


def _rel(folder: Path, path: Path) -> str:
    try:
        return f"{folder.relative_to(path.parent).as_posix()}/"
    except ValueError:
        return f"{folder}/"


def _tokenizer_folders(path: Path, det: Detection, beside: Optional[List[Path]] = None) -> Iterator[Path]:
    """The folders to look for the tokenizer in, in order. Lazily: the model folders are listed (every file of
    every kind in them, once) only when the folders beside the file do not hold it."""
    from nodes.common.models_dirs import list_models, model_dirs
    from nodes.common.models_dirs import tokenizer_beside
    yield from (list(beside) if beside is not None else tokenizer_beside(path))
    family = ENCODER_FAMILY.get(det.family or "")
    pipes = FAMILIES[family].pipelines if family else ()
    if det.family == "clip_l":          # an SDXL folder's tokenizer/ is CLIP-L's too, and a FLUX.1 folder's
        pipes += FAMILIES["sdxl"].pipelines + FAMILIES["flux"].pipelines
    if det.family == "clip_l":          # ... and an SD3 folder's
        pipes += FAMILIES["sd3"].pipelines
    if det.family == "t5":              # a FLUX.1 folder keeps T5-XXL's as tokenizer_2/, an SD3 folder as tokenizer_3/
        pipes += FAMILIES["flux"].pipelines + FAMILIES["sd3"].pipelines + FAMILIES["chroma"].pipelines
    if det.family == "qwen3vl":         # Qwen3-VL-4B is Krea 2's: a Krea2Pipeline folder's tokenizer/
        pipes += FAMILIES["krea2"].pipelines
    if det.family == "qwen3":           # Qwen3-4B is Z-Image's encoder too: a ZImagePipeline folder's tokenizer/
        pipes += FAMILIES["zimage"].pipelines + FAMILIES["ovis"].pipelines      # and Ovis 2.5's, an OvisImagePipeline's
    listed = list_models()
    for kind in ("diffusers", "checkpoints", "diffusion_models"):
        for folder in listed.get(kind, []):
            index = folder / "model_index.json"
            if index.is_file():
                try:
                    cls = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
                except ValueError:
                    continue
                if cls in pipes:
                    yield (folder / T5_TOKENIZER.get(cls, "tokenizer") if det.family == "t5" else
                           folder / TOKENIZER_FOLDER.get(cls, "tokenizer"))
    comfy = COMFY_TOKENIZERS.get(det.family or "")
    if (det.family, det.variant) == ("qwen3", "0.6b"):
        # ComfyUI reads Anima's Qwen3-0.6B with its Qwen2.5 tokenizer; Anima applies no chat template, which is where
        # that tokenizer and Qwen3's (Z-Image's, FLUX.2's) part
        comfy = COMFY_TOKENIZERS["qwen25vl"]
    if comfy:
        yield from (d.parent / comfy for d in model_dirs() if d.name == "models")


def _embedded_json(path: Path):
    """ComfyUI stores Gemma 4's and GPT-OSS's tokenizer in the file as its tokenizer.json's bytes (`tokenizer_json`,
    uint8)."""
    if path.suffix.lower() not in (".safetensors", ".sft"):
        return None
    from nodes.generate.detect import read_header
    if "tokenizer_json" not in read_header(path).shapes:
        return None
    from safetensors import safe_open
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    with safe_open(str(path), "pt") as f:
        data = f.get_tensor("tokenizer_json").numpy().tobytes()
    tok = Tokenizer.from_str(data.decode("utf-8"))
    if tok.token_to_id("<|endoftext|>") is not None:      # GPT-OSS's (Lens's encoder): its own end and padding token
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def _embedded_spiece(path: Path, det: Detection):
    """ComfyUI stores the sentencepiece model of T5-family encoders in the file (`spiece_model`, uint8).

    It is rebuilt as a `tokenizers` Unigram from the model's own pieces and scores (what transformers'
    converter does, without needing protobuf), so prompts tokenize as sentencepiece tokenizes them."""
    if det.family not in ("umt5", "t5", "gemma3", "gemma2", "jina_clip2") or \
            path.suffix.lower() not in (".safetensors", ".sft"):
        return None
    from nodes.generate.detect import read_header
    if "spiece_model" not in read_header(path).shapes:
        return None
    from safetensors import safe_open
    if det.family == "jina_clip2":
        from nodes.generate.jina_clip2 import JinaTokenizer
        with safe_open(str(path), "pt") as f:
            return JinaTokenizer(f.get_tensor("spiece_model").numpy().tobytes())
    if det.family in ("gemma3", "gemma2"):
        from nodes.generate.ltx2_text import gemma_tokenizer
        with safe_open(str(path), "pt") as f:
            return gemma_tokenizer(f.get_tensor("spiece_model").numpy().tobytes())
    with safe_open(str(path), "pt") as f:
        return spiece_tokenizer(f.get_tensor("spiece_model").numpy().tobytes())


def stored_tokenizer(name: str, read):
    """read()'s tokenizer, kept inside the model file `name` (spiece_model / tokenizer_json). A damaged one (Stable
    Audio 3's T5Gemma, LTX-2's Gemma, Lens's GPT-OSS, ACE-Step v1's UMT5, the T5 files) was sentencepiece's
    RuntimeError, tokenizers' bare Exception or a UnicodeDecodeError traceback."""
    try:
        return read()
    except NodeError:
        raise
    except Exception as exc:    # noqa: BLE001 - sentencepiece, tokenizers and transformers each raise their own
        raise NodeError(f"{name}: the tokenizer stored inside it cannot be read ({str(exc).splitlines()[0][:200]}): "
                        "the file is damaged; get it again from where it came") from None


def _proto_fields(data: bytes):
    """(field number, value) of a protobuf message's top-level fields: varints as ints, length-delimited ones as
    bytes (the two kinds a sentencepiece model's normalizer spec holds; fixed-width ones are skipped)."""
    def varint(i):
        n = shift = 0
        while True:
            b = data[i]
            n, shift, i = n | (b & 0x7F) << shift, shift + 7, i + 1
            if b < 0x80:
                return n, i
    i = 0
    while i < len(data):
        key, i = varint(i)
        kind = key & 7
        if kind == 0:
            value, i = varint(i)
        elif kind == 2:
            size, i = varint(i)
            value, i = data[i:i + size], i + size
        else:
            i += {1: 8, 5: 4}[kind]
            continue
        yield key >> 3, value


def _normalizer_spec(data: bytes) -> tuple:
    """(precompiled_charsmap, add_dummy_prefix, remove_extra_whitespaces) of a serialized sentencepiece model
    (ModelProto.normalizer_spec, field 3: fields 2, 3 and 4, the flags true unless set), read without protobuf."""
    spec = next((v for f, v in _proto_fields(data) if f == 3), b"")
    fields = dict(_proto_fields(spec))
    return fields.get(2, b""), bool(fields.get(3, 1)), bool(fields.get(4, 1))


def spiece_tokenizer(data: bytes):
    """A T5-family tokenizer from a serialized sentencepiece model (ComfyUI's spiece_model tensor's bytes)."""
    import sentencepiece as spm
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    sp = spm.SentencePieceProcessor(model_proto=data)
    tok = Tokenizer(models.Unigram([(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())],
                                   unk_id=sp.unk_id()))
    charsmap, dummy_prefix, squeeze = _normalizer_spec(data)
    # sentencepiece's own normalizer: the model's character map (nmt_nfkc's folds tabs and line ends to spaces), then
    # no space at either end and one between words (remove_extra_whitespaces: spaces only, a tab the map keeps is
    # a character), then the word-start mark
    # (prepended here, not by Metaspace, which adds none before a prompt that already starts with a space)
    steps = [normalizers.Precompiled(charsmap)] if charsmap else []
    if squeeze:
        steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Replace(Regex("^ | $"), "")]
    steps += [normalizers.Replace(" ", "\u2581")] + ([normalizers.Prepend("\u2581")] if dummy_prefix else [])
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always" if dummy_prefix else "never")
    eos = sp.id_to_piece(sp.eos_id())
    tok.post_processor = processors.TemplateProcessing(single=f"$A {eos}", pair=f"$A {eos} $B {eos}",
                                                       special_tokens=[(eos, sp.eos_id())])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, unk_token=sp.id_to_piece(sp.unk_id()),
                                   pad_token=sp.id_to_piece(max(sp.pad_id(), 0)), model_max_length=512)
