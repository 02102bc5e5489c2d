"""ComfyUI class_type -> Kinograph node, parameter by parameter: the one table the importer and
docs/comfyui-mapping.md are built from (`python -m app.comfyui.docs` rewrites that page).

A Rule names the Kinograph node a ComfyUI node becomes, the ComfyUI widget order (UI files store
widget values by position; the "control after generate" value after a seed is handled by the
reader), which ComfyUI inputs and widgets become which Kinograph inputs and parameters, and what
differs when the match is not exact. Nodes that Kinograph expresses as a parameter of another node
(a sampler choice, a schedule, clip skip, guidance) are `fold`: they hand their settings to the
node that consumes them. A few need more than a renaming (one ComfyUI node becoming two Kinograph
nodes, a motion module turning the checkpoint loader into an AnimateDiff loader): `special` names
the handler (special_<name>, in its pack's module under packs/), and its parameters are still listed here."""
from __future__ import annotations

import json
import re

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple


class Approx(Exception):
    """Raised by a value converter: the nearest Kinograph value, and what differs."""

    def __init__(self, value, note: str):
        super().__init__(note)
        self.value, self.note = value, note


@dataclass(frozen=True)
class P:
    """ComfyUI input/widget `comfy` becomes Kinograph parameter `param` (through `convert`)."""
    comfy: str
    param: str
    convert: Optional[Callable[[Any], Any]] = None
    doc: str = ""


@dataclass(frozen=True)
class Rule:
    node: Optional[str]                                  # Kinograph node type; None = folded or dropped
    widgets: Tuple[str, ...] = ()
    params: Tuple[P, ...] = ()
    inputs: Dict[str, str] = field(default_factory=dict)     # ComfyUI input -> Kinograph input port
    outputs: Tuple[Optional[str], ...] = ()              # Kinograph output port per ComfyUI output slot
    fixed: Dict[str, Any] = field(default_factory=dict)
    ignore: Dict[str, Any] = field(default_factory=dict)     # widgets not carried: value that changes nothing
    note: str = ""                                       # what differs, always ('' = exact)
    fold: bool = False
    special: str = ""
    takes: Tuple[str, ...] = ()                          # settings folded nodes may hand this node
    kind: str = "run"                                    # "run", or "ui" (editor-only: previews, notes)


# -- value converters ------------------------------------------------------------------------------------------
SAMPLERS_EXACT = {"euler": "euler", "euler_ancestral": "euler_ancestral", "ddim": "ddim", "dpmpp_2m": "dpmpp_2m",
                  "uni_pc": "uni_pc", "uni_pc_bh2": "uni_pc_bh2", "res_multistep": "res_multistep", "lcm": "lcm",
                  "er_sde": "er_sde", "gradient_estimation": "gradient_estimation", "dpm_2": "dpm_2",
                  **{k: k for k in ("dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
                                    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu",
                                    "heun", "lms", "ipndm", "ddpm", "dpm_2_ancestral", "euler_ancestral_cfg_pp",
                                    "euler_cfg_pp", "res_multistep_ancestral", "res_multistep_cfg_pp", "deis",
                                    "res_multistep_ancestral_cfg_pp", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
                                    "dpmpp_2m_cfg_pp", "seeds_2", "seeds_3", "exp_heun_2_x0", "exp_heun_2_x0_sde",
                                    "dpm_fast", "dpm_adaptive", "gradient_estimation_cfg_pp", "ipndm_v", "heunpp2",
                                    "sa_solver", "sa_solver_pece")}}
# ComfyUI's samplers that step in log sigma on every model (x read as x0 + sigma n on flow models too): sample's frame
# sigma (its uni_pc does as well, and Kinograph's uni_pc always)
SIGMA_FRAME = {"dpmpp_2m", "res_multistep"}
SCHEDULERS_EXACT = {"karras": "karras", "simple": "simple", "sgm_uniform": "sgm_uniform", "beta": "beta",
                    "normal": "normal", "linear_quadratic": "linear_quadratic", "exponential": "exponential",
                    "beta57": "beta57", "ddim_uniform": "ddim_uniform", "kl_optimal": "kl_optimal"}


# SetUnionControlNetType's types by the index ComfyUI hands the net (xinsir's ControlNet++ order,
# comfy/cldm/control_types.py): a FLUX.1 union net gets the index unchanged, so its "depth" is InstantX's row 1, tile.
COMFY_UNION_TYPES = ("openpose", "depth", "hed/pidi/scribble/ted", "canny/lineart/anime_lineart/mlsd", "normal",
                     "segment", "tile", "repaint")


DEPTH_NOTE = ("depth.estimate sizes frames as the model was trained (Depth Anything: 518 pixels on the short side), "
              "not to `resolution`, and reads the model as its Hugging Face folder in a depth/ model folder; it "
              "spreads the depth over one range for the whole clip (spread clip, so levels hold from frame to frame) "
              "where the pack spreads each frame by its own: set spread to frame for the pack's pictures")


# What AIO_Preprocessor hands the preprocessor it names besides the image and its resolution: the defaults of that
# one's INPUT_TYPES (comfyui_controlnet_aux's node_wrappers).
AIO_DEFAULTS = {
    "CannyEdgePreprocessor": {"low_threshold": 100, "high_threshold": 200},
    "BinaryPreprocessor": {"bin_threshold": 100},
    "TilePreprocessor": {"pyrUp_iters": 3},
    "ShufflePreprocessor": {"seed": 0},
    "DepthAnythingPreprocessor": {"ckpt_name": "depth_anything_vitl14.pth"},
    "DepthAnythingV2Preprocessor": {"ckpt_name": "depth_anything_v2_vitl.pth"},
    "MiDaS-DepthMapPreprocessor": {"a": 2.0 * 3.141592653589793, "bg_threshold": 0.1},
    "MiDaS-NormalMapPreprocessor": {"a": 2.0 * 3.141592653589793, "bg_threshold": 0.1},
    "DWPreprocessor": {"detect_hand": "enable", "detect_body": "enable", "detect_face": "enable",
                       "bbox_detector": "yolox_l.onnx", "pose_estimator": "dw-ll_ucoco_384_bs5.torchscript.pt",
                       "scale_stick_for_xinsr_cn": "disable"},
    "OpenposePreprocessor": {"detect_hand": "enable", "detect_body": "enable", "detect_face": "enable",
                             "scale_stick_for_xinsr_cn": "disable"},
    "LineArtPreprocessor": {"coarse": "disable"},
    "HEDPreprocessor": {"safe": "enable"},
    "FakeScribblePreprocessor": {"safe": "enable"},
    "PiDiNetPreprocessor": {"safe": "enable"},
    "M-LSDPreprocessor": {"score_threshold": 0.1, "dist_threshold": 0.1},
    "Scribble_XDoG_Preprocessor": {"threshold": 32},
    "Scribble_PiDiNet_Preprocessor": {"safe": "enable"},
    "LineartStandardPreprocessor": {"guassian_sigma": 6.0, "intensity_threshold": 8},
}


def shuffle_seed(v):
    """0 (the pack's default) draws a new shuffle every run and every frame there (numpy's unseeded state); 0 is kept
    here, one fixed shuffle for every frame"""
    if v == 0:
        raise Approx(0, "seed 0 shuffles each frame anew on every run in ComfyUI (numpy's unseeded state); here it is "
                        "one fixed shuffle for every frame: set another seed for another one")
    return v


def crop_region(key, default):
    """ImageCropV2's crop_region ({x, y, width, height}) -> one of its numbers, ComfyUI's default where it lacks it"""
    def convert(v):
        if not isinstance(v, dict):
            raise ValueError(v)
        return int(v.get(key, default))
    return convert


def depth_folder(v):
    """comfyui_controlnet_aux's depth checkpoint (its authors' file) as the same model's Hugging Face folder, which
    depth.estimate reads from a depth/ model folder"""
    from nodes.depth.estimate import AUTHOR_FILES
    repo = AUTHOR_FILES.get(str(v).replace("\\", "/").rsplit("/", 1)[-1])
    name = repo.split("/")[1] if repo else None
    if name is None:
        raise Approx("Depth-Anything-V2-Large-hf", f"{v} has no Hugging Face folder; Depth Anything V2 Large, the "
                                                   "nearest, is used")
    return name


def moge_file(v):
    """MoGe's file as it is; MoGe-1 and MoGe-3 files are named as ones depth.moge does not run"""
    from nodes.depth.estimate import moge_version
    version = moge_version(str(v))
    if version in ("MoGe-1", "MoGe-3"):
        raise Approx(v, f"{v} is {version}, which Kinograph does not run yet: depth.moge stops with that message; "
                        f"set model to moge_2_vitl_normal_fp16.safetensors (Comfy-Org/MoGe) to run it")
    return v


def sampler_name(v):
    if v in SAMPLERS_EXACT:
        return SAMPLERS_EXACT[v]
    raise Approx("euler", f"sampler {v!r} is not in Kinograph; euler used")


def colour_method(v):
    """ColorTransfer's method as color.match's (mkl_lab is refused by its special)"""
    return {"reinhard_lab": "reinhard"}.get(v, v)


def colour_spread(v):
    """ColorTransfer's source_stats: per_frame matches each frame, uniform pools the clip's statistics"""
    return {"per_frame": "frame", "uniform": "clip"}.get(v, v)


def unit_strength(v):
    if float(v) > 1.0:
        raise Approx(1.0, f"strength {v} (past the match) is held at 1: color.match blends between the frame and "
                          "the matched one")
    return float(v)


def ancestral_eta(v):
    """SamplerEulerAncestral's eta as the sampler it makes."""
    if float(v) == 0:
        return "euler"
    if float(v) != 1:
        raise Approx("euler_ancestral", f"eta {v} (the share of each step's noise drawn afresh) is not in Kinograph: "
                                        "its euler_ancestral draws all of it (eta 1)")
    return "euler_ancestral"


def er_sde_solver(v):
    """SamplerER_SDE's solver_type as the sampler it makes: its ER-SDE noise scaler is er_sde's"""
    if v != "ER-SDE":
        raise Approx("er_sde", f"solver_type {v!r} (another noise scaler) is not in Kinograph: er_sde uses ER-SDE's")
    return "er_sde"


def full_stage(v):
    """SamplerER_SDE's max_stage: 3 (the default) is er_sde's"""
    if int(v) != 3:
        raise Approx(3, f"max_stage {v} is not in Kinograph: er_sde runs up to stage 3")
    return 3


def lcm_noise_end(v):
    """SamplerLCM's s_noise_end as sample's (-1 there = s_noise; ComfyUI's 0 is held just above it)"""
    if float(v) == 0:
        raise Approx(1e-6, "s_noise_end 0 is held at 0.000001 (sample's 0 is not a value there)")
    return float(v)


def scheduler_name(v):
    if v in SCHEDULERS_EXACT:
        return SCHEDULERS_EXACT[v]
    raise Approx("simple", f"scheduler {v!r} is not in Kinograph; simple used")


def enable(v):
    return v in (True, "enable", "enabled", "true", 1)


def pose_torchscript(v):
    from nodes.pose.dwpose import TORCHSCRIPT_OF
    if v in TORCHSCRIPT_OF:
        raise Approx(TORCHSCRIPT_OF[v], f"{v} is an ONNX file (onnxruntime, not part of Kinograph); the same network "
                                        f"as TorchScript, {TORCHSCRIPT_OF[v]}, is used: put it where ComfyUI keeps "
                                        f"its pose files")
    return v


def coarse_lineart(v):
    return "sk_model2.pth" if enable(v) else "sk_model.pth"


def flux_mu(v):
    """with base_shift, width and height: e^mu, mu from base_shift at 256 2x2 patches to max_shift at 4096"""
    return v


def clip_type(v):
    return {"stable_diffusion": "sd"}.get(v, v)


def attention_backend(v):
    """PyTorch attention as Kinograph's models run it; Comfy Kitchen's INT8 attention only approximately."""
    # ComfyUI (comfy_extras/nodes_model_advanced.py) itself falls back to PyTorch's where Comfy Kitchen is unavailable
    if v == "comfy kitchen attention":
        raise Approx(v, "Kinograph attends at the model's own precision (PyTorch attention, ComfyUI's \"pytorch "
                        "attention\"), where Comfy Kitchen attention quantizes queries and keys to INT8: the "
                        "picture differs a little")
    return v


def qwen21_cache_dtype(v):
    """QwenImage21Cache's storage: default keeps the prompt's and pictures' keys and values as computed"""
    if v in ("int8", "int4"):
        raise Approx(v, f"ComfyUI keeps Qwen-Image 2.1's cached prompt and picture keys and values in {v} (its "
                        "tooltip: int8 at about bf16 accuracy, int4 roughly doubling the per-step error); Kinograph "
                        "computes them in full, as dtype default does: the picture differs a little")
    return v


def sd3_clip_prompt(v):
    if not v:
        raise Approx("", "an empty CLIP prompt reads the t5xxl prompt in encode.sd3; ComfyUI encodes it empty "
                         "(or, with empty_padding none, not at all)")
    return v


IPADAPTER_INPUTS = {"model": "model", "ipadapter": "ipadapter", "image": "image", "clip_vision": "image_encoder",
                    "attn_mask": "mask", "image_negative": "negative_image"}


IPADAPTER_WEIGHTS = ("weights", "timing", "frames", "start_frame", "end_frame", "add_starting_frames",
                     "add_ending_frames", "method")


def ipadapter_frame_weights(weights: str, timing: str = "custom", frames: int = 0, start_frame: int = 0,
                            end_frame: int = 9999) -> list:
    """The weights per frame ComfyUI_IPAdapter_plus's IPAdapterWeights gives without an image: its `weights` (numbers
    separated by commas or new lines) as written (timing custom), or a curve over `frames` frames from the first to
    the last of them (linear, ease_in_out, ease_in, ease_out, named and drawn as that node does), held at the first
    before start_frame and at the last from end_frame on."""
    import math
    given = [float(w) for w in weights.replace("\n", ",").split(",") if w.strip()]
    if timing == "custom":
        return given or [0.0]
    curves = {"linear": lambda x: x, "ease_in_out": lambda x: (1 - math.cos(x * math.pi)) / 2,
              "ease_in": lambda x: math.sin(x * math.pi / 2), "ease_out": lambda x: 1 - math.cos(x * math.pi / 2)}
    if timing not in curves:
        raise ValueError(timing)
    frames = max(frames, 2)
    start, end = (given[0], given[-1]) if given else (0.0, 1.0)
    end_frame = min(end_frame, frames)
    n = max(end_frame - start_frame - 1, 1)
    out = [start] * start_frame + [start + (end - start) * curves[timing](i / n)
                                   for i in range(end_frame - start_frame)]
    if not out:
        return [0.0]
    out[-1] = end
    return out + [end] * (frames - end_frame)


def style_composition_type(v):
    """IPAdapterStyleComposition's expand_style: the style over every transformer but the layout's."""
    return "strong style and composition" if v else "style and composition"


def noise_type(v):
    """fade, dissolve, gaussian as they are; shuffle -> gaussian"""
    if v == "shuffle":
        raise Approx("gaussian", "shuffle warps the picture with torchvision's elastic transform, which Kinograph does "
                                 "not run: gaussian noise is used")
    return v


def ipadapter_simple_type(v):
    """The simple IPAdapter node's three weight types, as it hands them to IPAdapterAdvanced's."""
    return "ease out" if v == "prompt is more important" else "style transfer" if str(v).startswith("style") else \
        "linear"


def weight_dtype(v):
    if v == "fp8_e4m3fn_fast":
        raise Approx("fp8_e4m3fn", "fp8_e4m3fn_fast's fast matmul is not used; weights stay fp8_e4m3fn")
    return v


def wrapper_quantization(v):
    """WanVideoWrapper's quantization: disabled -> default (the file's own), fp8_e4m3fn and fp8_e5m2 as they are"""
    if v in ("disabled", "fp8_e4m3fn", "fp8_e5m2"):
        return "default" if v == "disabled" else v
    kept = "fp8_e5m2" if str(v).startswith("fp8_e5m2") else "fp8_e4m3fn" if str(v).startswith("fp8") else "default"
    raise Approx(kept, f"quantization {v!r} (the wrapper's scaled, fast-matmul or torchao variants) is not in "
                       f"Kinograph; weight_dtype {kept}")


def wrapper_t5(v):
    """the file as it is; kijai's umt5-xxl-enc files (Wan's own T5 layout) are named"""
    if "umt5-xxl-enc" in str(v):
        raise Approx(v, f"{v} keeps the Wan repository's own T5 layout, which Kinograph's text encoder loader does not "
                        "read: put ComfyUI's umt5_xxl_fp16 (or _fp8_e4m3fn_scaled) in text_encoders/ and name it here")
    return v


def gguf_text_encoder(v):
    """the file as it is (llama.cpp's T5 / umT5 encoders and Llama / Mistral / Qwen2.5-VL / Qwen3 / Gemma 2-3 language
    models are read); a GGUF of another architecture is named"""
    name = str(v).lower().replace("_", "-")
    # llama.cpp architectures Kinograph reads in safetensors form only (gguf_names.LLM_ARCHS lists those it reads)
    unread = ("qwen3-vl", "qwen3vl", "qwen3.5", "qwen35", "gemma-4", "gemma4", "gpt-oss")
    if name.endswith(".gguf") and "mmproj" in name:
        raise Approx(v, f"{v} is llama.cpp's vision projector, which is read with the Qwen2.5-VL GGUF beside it (as "
                        "ComfyUI-GGUF pairs them: the projector's name holds the encoder's): name the language-model "
                        "GGUF here")
    if name.endswith(".gguf") and any(u in name for u in unread):
        raise Approx(v, f"{v} is a GGUF of a language model Kinograph reads in safetensors form only (as GGUF it reads "
                        "T5, umT5, Llama, Mistral, Qwen2.5-VL, Qwen3 and Gemma 2 / 3): put the encoder's safetensors "
                        "file in text_encoders/ and name it here")
    return v


# Comfyroll's CR Aspect Ratio presets (nodes/nodes_aspect_ratio.py): name -> width, height; any other name ("custom")
# keeps the width and height widgets
CR_ASPECT_RATIOS = {
    "SD1.5 - 1:1 square 512x512": (512, 512), "SD1.5 - 2:3 portrait 512x768": (512, 768),
    "SD1.5 - 16:9 cinema 910x512": (910, 512), "SD1.5 - 3:4 portrait 512x682": (512, 682),
    "SD1.5 - 3:2 landscape 768x512": (768, 512), "SD1.5 - 4:3 landscape 682x512": (682, 512),
    "SD1.5 - 1.85:1 cinema 952x512": (952, 512), "SD1.5 - 2:1 cinema 1024x512": (1024, 512),
    "SD1.5 - 2.39:1 anamorphic 1224x512": (1224, 512),
    "SDXL - 1:1 square 1024x1024": (1024, 1024), "SDXL - 3:4 portrait 896x1152": (896, 1152),
    "SDXL - 5:8 portrait 832x1216": (832, 1216), "SDXL - 9:16 portrait 768x1344": (768, 1344),
    "SDXL - 9:21 portrait 640x1536": (640, 1536), "SDXL - 4:3 landscape 1152x896": (1152, 896),
    "SDXL - 3:2 landscape 1216x832": (1216, 832), "SDXL - 16:9 landscape 1344x768": (1344, 768),
    "SDXL - 21:9 landscape 1536x640": (1536, 640)}


# rgthree's power_prompt_utils pattern: a name, then an optional strength
RGTHREE_LORA_TAG = r"<lora:([^:>]*?)(?::(-?\d*(?:\.\d*)?))?>"


def easy_float(v):
    """rounded to 3 decimals, as the node returns it"""
    return round(float(v), 3)


def rgthree_seed(v):
    """the seed as it is; -1 (a new one every run) is named"""
    if v in (-1, -2, -3):
        raise Approx(0, f"seed {v} makes rgthree draw a new seed each run (or step the last one); Kinograph keeps one: "
                        "0 is used, set the seed you want")
    return v


def was_resampling(v):
    """Pillow's nearest, bilinear, bicubic, lanczos: the same names"""
    if v == "lanczos":
        raise Approx("lanczos", LANCZOS_NOTE)
    return v if v in ("nearest", "bilinear", "bicubic") else "bicubic"


def wrapper_denoise(v):
    """below 1: sampling starts at step steps - int(steps x denoise) - 1 with fresh noise, as the wrapper starts it"""
    return v


# WanVideoWrapper's scheduler names -> Kinograph's sampler and schedule. The wrapper runs diffusers' (and Wan's own)
# flow-matching schedulers on their own sigma spacing, shifted by its `shift`; Kinograph runs the same method on its
# simple (or beta) schedule at that shift
WAN_WRAPPER_SCHEDULERS = {"unipc": ("unipc", "simple"), "unipc/beta": ("unipc", "beta"),
                          "dpm++": ("dpmpp_2m", "simple"), "dpm++/beta": ("dpmpp_2m", "beta"),
                          "euler": ("euler", "simple"), "euler/beta": ("euler", "beta"),
                          "res_multistep": ("res_multistep", "simple")}
WAN_WRAPPER_NEAR = {"dpm++_sde": "dpmpp_2m", "dpm++_sde/beta": "dpmpp_2m", "deis": "unipc", "lcm": "euler_ancestral",
                    "lcm/beta": "euler_ancestral", "flowmatch_causvid": "euler", "flowmatch_distill": "euler",
                    "flowmatch_pusa": "euler", "longcat_distill_euler": "euler", "sa_ode_stable": "euler",
                    "euler_ancestral": "euler_ancestral"}


def out_path(ext: str):
    """ComfyUI's filename_prefix (under its output folder) -> a path in the workflow's out/ folder, with names
    every system holds. ComfyUI fills %date:yyyy-MM-dd%, %width%, %Node.widget% in when it saves; kept, they
    made a folder named '%date:yyyy-MM-dd%', whose ':' Windows refuses. A drive (C:) or network share goes:
    ComfyUI itself writes only under its output folder (kept, it made a folder named 'C:')."""
    def conv(prefix):
        from graph_engine.portable import portable_name
        text = str(prefix or "ComfyUI")
        filled = re.findall(r"%[^%/\\]+%", text)
        left = re.sub(r"%[^%/\\]+%", "", text)
        drive = re.match(r"[A-Za-z]:|\\\\[^\\/]+[\\/][^\\/]+", left)
        left = left[drive.end():] if drive else left
        parts = [portable_name(p) for p in left.replace("\\", "/").split("/")]
        parts = [p.strip("_- ") if filled else p for p in parts]
        path = "out/" + "/".join([p for p in parts if p] or ["ComfyUI"]) + ext
        dropped = [f"{w} (ComfyUI fills it in as it saves)" for w in filled]
        dropped += [f"the drive {drive[0]} (ComfyUI writes only under its output folder)"] if drive else []
        if dropped:
            raise Approx(path, f"filename_prefix {text!r}: left out {' and '.join(dropped)}; Kinograph writes "
                               f"{path}, keeping each earlier render as a take")
        return path
    conv.__doc__ = f"out/<prefix>{ext}"
    return conv


def hunyuan_guidance(v):
    """v1 (concat) -> concat, v2 (replace) -> replace"""
    found = {"v1 (concat)": "concat", "v2 (replace)": "replace"}.get(v)
    if found is None:
        raise Approx("concat", f"guidance_type {v!r} (a reference latent, for HunyuanCustom models) is not in "
                               "Kinograph; v1 (concat) used")
    return found


def comfy_file(v):
    """`x.png [output]` (a file ComfyUI picked from its output, temp or input folder) -> `x.png`"""
    m = re.fullmatch(r"(.+?) \[(input|output|temp)\]", str(v))
    if m is None or m[2] == "input":
        return m[1] if m else v
    raise Approx(m[1], f"{m[1]} is in ComfyUI's {m[2]} folder: copy it beside the workflow (or give its full path)")


def prediction(v):
    """eps, v_prediction and x0 as they are; lcm and img_to_img sample as epsilon"""
    if v in ("eps", "v_prediction", "x0"):
        return {"eps": "epsilon"}.get(v, v)
    raise Approx("epsilon", f"ModelSamplingDiscrete's {v!r} sampling (LCM LoRAs' boundary conditions, img_to_img) "
                            "is not in Kinograph; sampled as epsilon")


def mask_bounds(v):
    """mask bounds -> on (the model runs on the mask's bounding box); default -> off"""
    return v == "mask bounds"


ALPHA_NOTE = ("Kinograph keeps a picture's colour laid over black by its alpha (premultiplied), where ComfyUI keeps "
              "it as it was: the same where the picture is opaque")


def positive_int(v):
    return max(int(v), 0)


VHS_FORMATS = {"video/h264-mp4": ("h264", ".mp4"), "video/h265-mp4": ("h265", ".mp4"), "video/webm": ("vp9", ".webm"),
               "video/av1-webm": ("av1", ".mp4"), "video/ProRes": ("prores", ".mov"), "video/ffv1-mkv": ("ffv1", ".mkv"),
               "image/gif": ("gif", ".gif"), "image/webp": ("webp", ".webp"), "video/nvenc_h264-mp4": ("h264", ".mp4"),
               "video/nvenc_hevc-mp4": ("h265", ".mp4")}

WAN_CAMERA_POSES = {"Static": "static", "Pan Up": "pan_up", "Pan Down": "pan_down", "Pan Left": "pan_left",
                    "Pan Right": "pan_right", "Zoom In": "zoom_in", "Zoom Out": "zoom_out",
                    "Anti Clockwise (ACW)": "anticlockwise", "ClockWise (CW)": "clockwise"}

LOADER_OUT = ("model", "text_encoder", "vae")
# ComfyUI stretches a mask to the latent grid bilinearly (a latent pixel takes the 2x2 pixels nearest its centre);
# Kinograph averages all the pixels it covers (a thin stroke is not missed): the same on a mask's flat parts
LATENT_MASK_NOTE = ("the mask reaches the latent grid averaged over each latent pixel's pixels (ComfyUI: bilinear), "
                    "so its edge can differ by a fraction of a latent pixel")
LATENT_SIZE = (P("width", "width"), P("height", "height"))


def minimax_ref_size(v):
    """MiniMaxH3ReferenceToVideo's ref_image_size -> condition.references' resolution: match (down to the video's
    size) or keep (max: at most a 2048-pixel short side)."""
    return "match" if v == "match" else "keep"


S2V_NOTE = ("the reference, motion and pose pictures are resized by the VAE's processor (ComfyUI: bilinear), and the "
            "video is encoded whole (ComfyUI: in tiles)")
VIDEO_SAVE_TAKES = ("fps",)

VHS_LOAD = Rule("io.load_video", ("video", "force_rate", "force_size", "custom_width", "custom_height", "frame_load_cap",
                                   "skip_first_frames", "select_every_nth"),
                (P("video", "path"), P("force_rate", "fps"), P("frame_load_cap", "count"),
                 P("skip_first_frames", "start"), P("select_every_nth", "every_nth")),
                outputs=("video", None, None, "video"), special="vhs_load",
                ignore={"choose video to upload": None, "format": None, "meta_batch": None})

def pysssss_file(v):
    """{"content": "x.safetensors", "image": ...} -> x.safetensors"""
    return v.get("content") if isinstance(v, dict) else v


def clip_prep_method(v):
    """Pillow's LANCZOS, BICUBIC, BILINEAR, NEAREST -> OpenCV's of the same name; BOX, HAMMING -> area"""
    found = {"LANCZOS": "lanczos", "BICUBIC": "bicubic", "BILINEAR": "bilinear", "NEAREST": "nearest", "BOX": "area",
             "HAMMING": "area"}.get(v, "lanczos")
    if v in ("BICUBIC", "BILINEAR", "NEAREST"):
        return found
    raise Approx(found, f"Pillow's {v} filter is resized with OpenCV's {found} (shrinking: Pillow's filters average "
                        "over the pixels they replace, OpenCV's area does, its lanczos does not)")


def clip_prep_fit(v):
    """center -> crop (the square cut at the middle), pad -> pad (black bars), others: cut at the middle"""
    if v in ("center", "pad"):
        return "crop" if v == "center" else "pad"
    raise Approx("crop", f"the square is cut at the middle, not at the {v}: crop the picture first (video.crop) to "
                         "keep that side")


def reference_method(v):
    """offset, index, index_timestep_zero (Qwen-Image-Edit-2511's) as they are; uxo/uno (for UNO, USO) -> uxo"""
    return "uxo" if "uxo" in v or "uno" in v or "uso" in v else v


def editor_boxes(v):
    """the box editor's list of boxes, as JSON"""
    return json.dumps(v)


def reference_resolution(v):
    """ReferenceMultiLatent's "keep resolution" / "resize" -> keep / resize (resize resamples by area, which
    ComfyUI's may not)"""
    if v == "resize":
        raise Approx("resize", "a picture resized to megapixels is resampled by area, which ComfyUI's may not be")
    return "keep"


LANCZOS_NOTE = "ComfyUI's lanczos is Pillow's (3 lobes), Kinograph's OpenCV's (4 lobes): a little sharper"
# LTX-2's start picture and guide clip: ComfyUI's common_upscale against the VAE processor diffusers' pipelines use
LATENT_FIT_NOTE = ("fitted to the latent's size by a centre crop and a bilinear resize in ComfyUI, by diffusers' "
                   "(Lanczos) in Kinograph; exact when it has the latent's size already")
QWEN_EDIT_NOTE = ("the pictures are resized to about a megapixel with sides multiples of 32 (diffusers' pipelines' "
                  "rule); ComfyUI rounds them otherwise, so the sizes may differ by a few pixels")


def resize_method(v):
    """nearest-exact -> nearest; bilinear, bicubic, area, lanczos as they are"""
    found = {"nearest-exact": "nearest", "bilinear": "bilinear", "bicubic": "bicubic", "area": "area",
             "lanczos": "lanczos"}.get(v)
    if found is None:
        raise Approx("bicubic", f"upscale_method {v!r} is not in Kinograph; bicubic used")
    if found == "lanczos":
        raise Approx(found, LANCZOS_NOTE)
    return found


def resize_method_no_bilinear(v):
    """as for ImageScale; bilinear -> bicubic (upscale.resize has no bilinear)"""
    if v == "bilinear":
        raise Approx("bicubic", "upscale.resize has no bilinear; bicubic used (a little sharper)")
    return resize_method(v)


def comfy_scale(v):
    """nearest-exact -> nearest (video.resize_pad's nearest is nearest-exact); area, bilinear, bicubic, lanczos as
    they are"""
    if v not in ("nearest-exact", "bilinear", "bicubic", "area", "lanczos"):
        raise Approx("area", f"interpolation {v!r} is not ComfyUI's; area used")
    return "nearest" if v == "nearest-exact" else v


def save_format(v):
    """png as it is; exr -> exr, written in half float (ComfyUI's is 32-bit float)"""
    if v == "exr":
        raise Approx("exr", "the EXR frames are half float (ComfyUI writes 32-bit float), linear from sRGB as "
                            "ComfyUI's input_color_space sRGB")
    if v != "png":
        raise Approx("png", f"format {v!r} is not ComfyUI's; png used")
    return v


def vfi_factor(v):
    """in-between frames per pair, as Kinograph's factor (2-16)"""
    v = int(v)
    if v > 16:
        raise Approx(16, f"multiplier {v} is above Kinograph's 16; 16 used (chain two interpolations for more)")
    if v < 2:
        raise Approx(2, f"multiplier {v} adds no frames in ComfyUI; Kinograph's smallest factor, 2, used")
    return v


# -- segmentation (SAM 3) ------------------------------------------------------------------------------------------
# ComfyUI's own SAM 3 files (checkpoints/, loaded by CheckpointLoaderSimple) -> the Hugging Face folder mask.segment
# reads from a sam2/ or sam3/ model folder.
SAM3_FOLDER = "sam3"
SAM3_NOTE = ("mask.segment tracks what the prompt names through the clip with SAM 3's video memory, keeping the "
             "most confident object on each frame as SAM3_Detect does (objects 1; 0 keeps every object); ComfyUI's "
             "node looks at each frame alone. refine_iterations is not carried (SAM 3's tracker refines each mask "
             "as it goes)")


SAM3_TRACK_NOTE = ("mask.segment_objects tracks each object the prompt names through the clip with SAM 3's video "
                   "memory (Hugging Face's SAM 3; ComfyUI runs SAM 3.1's multiplexed tracker), at most max_objects at "
                   "once, each its own mask in the order it was first found")


SAM3_POINTS_NOTE = ("with points and no text prompt it is mask.track_points on SAM 3's folder: SAM 3's tracker "
                    "finds the object under them on the first frame and tracks it with its memory; ComfyUI's node "
                    "segments at the same pixels in each frame alone")


def sam3_folder(v):
    """ComfyUI's SAM 3 / 3.1 file -> the sam3 folder (facebook/sam3's Hugging Face folder)"""
    name = str(v).replace("\\", "/").rsplit("/", 1)[-1]
    if name.lower().endswith((".safetensors", ".pt", ".pth")):
        raise Approx(SAM3_FOLDER, f"{name} is read as SAM 3's Hugging Face folder '{SAM3_FOLDER}' (facebook/sam3) in "
                                  "a sam2/ or sam3/ model folder: Kinograph reads SAM 3 with transformers, which has "
                                  "no SAM 3.1 (multiplex)")
    return name


def sam2_folder(v):
    """kijai's sam2[.1]_hiera_<size>.safetensors as it is (mask.track_points reads Meta's layout); Meta's .pt -> the
    same model's Hugging Face folder (facebook/sam2[.1]-hiera-<size>)"""
    name = str(v).replace("\\", "/").rsplit("/", 1)[-1]
    if not name.lower().endswith((".pt", ".pth")):
        return name
    folder = name.rsplit(".", 1)[0].replace("_hiera_", "-hiera-").replace("base_plus", "base-plus")
    raise Approx(folder, f"{name} is read as SAM 2's Hugging Face folder '{folder}' (facebook/{folder}) in a "
                         "sam2/ model folder: Kinograph reads Meta's SAM 2 as that folder or kijai's "
                         ".safetensors copy of the .pt")


def points_editor_boxes(v) -> str:
    """KJNodes' PointsEditor's bboxes widget (its drawn boxes, [{"startX", "startY", "endX", "endY"}, ...]) ->
    mask.track_points' box, one object a box ("x0,y0,x1,y1 | ..."), corners ordered and made whole pixels as PointsEditor makes them;
    "" for none"""
    keys = ("startX", "startY", "endX", "endY")
    try:
        drawn = [[int(b[k]) for k in keys] for b in json.loads(v or "[]") if all(b.get(k) is not None for k in keys)]
    except (ValueError, TypeError, AttributeError, OverflowError):     # OverflowError: a corner of 1e999
        raise Approx("", f"its bboxes {str(v)[:60]!r} cannot be read; no box carried") from None
    boxes = [(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)) for x0, y0, x1, y1 in drawn]
    return " | ".join(",".join(str(c) for c in b) for b in boxes)


def individual_objects(points: str, negative) -> tuple:
    """kijai's Sam2Segmentation with individual_objects: each positive point its own object, the i-th negative point
    kept off the i-th object (the first repeated for objects past the last) -> mask.track_points' '|' groups"""
    from nodes.mask.segment import parse_points
    from graph_engine import NodeError
    try:
        pos = [p for g in parse_points(points, "points") for p in g]
        neg = [p for g in parse_points(negative or "", "negative") for p in g]
    except NodeError as e:
        raise Approx((points, negative or ""), f"individual_objects not carried: {e}") from None
    text = lambda ps: " | ".join(f"{x:g},{y:g}" for x, y, _ in ps)          # noqa: E731
    if len(neg) > len(pos):
        raise Approx((text(pos), "; ".join(f"{x:g},{y:g}" for x, y, _ in neg)),
                     f"{len(neg)} negative points for {len(pos)} objects: kijai's node stops there (one negative "
                     "point an object); every negative point is kept off every object")
    return text(pos), text(neg + neg[:1] * (len(pos) - len(neg)) if neg else [])


def resize_type(v):
    """scale dimensions, scale width, scale height: video.scale (0 = follow the other side, as ComfyUI); scale longer
    dimension, scale shorter dimension: video.resize_side; scale total pixels: video.resize_pixels; scale by
    multiplier: upscale.resize; match size: video.match_size"""
    return v


# -- the table ---------------------------------------------------------------------------------------------------
RULES: Dict[str, Rule] = {
    # loaders
    "CheckpointLoaderSimple": Rule("load.model", ("ckpt_name",), (P("ckpt_name", "path"),), outputs=LOADER_OUT),
    "CheckpointLoader": Rule("load.model", ("config_name", "ckpt_name"), (P("ckpt_name", "path"),), outputs=LOADER_OUT,
                             note="the yaml config is not needed: Kinograph recognises the checkpoint's layout",
                             special="checkpoint_config"),
    "ImageOnlyCheckpointLoader": Rule("load.model", ("ckpt_name",), (P("ckpt_name", "path"),),
                                      outputs=("model", "image_encoder", "vae")),
    "UNETLoader": Rule("load.diffusion_model", ("unet_name", "weight_dtype"),
                       (P("unet_name", "name"), P("weight_dtype", "weight_dtype", weight_dtype)), outputs=("model",)),
    "CLIPLoader": Rule("load.text_encoder", ("clip_name", "type", "device"),
                       (P("clip_name", "name"), P("type", "type", clip_type)), outputs=("text_encoder",),
                       ignore={"device": "default"}),
    "DualCLIPLoader": Rule("load.text_encoder", ("clip_name1", "clip_name2", "type", "device"),
                           (P("clip_name1", "name"), P("clip_name2", "name2"), P("type", "type", clip_type)),
                           outputs=("text_encoder",), ignore={"device": "default"}),
    # SD3's three encoders (no type widget: they are SD3's)
    "TripleCLIPLoader": Rule("load.text_encoder", ("clip_name1", "clip_name2", "clip_name3"),
                             (P("clip_name1", "name"), P("clip_name2", "name2"), P("clip_name3", "name3")),
                             outputs=("text_encoder",), fixed={"type": "sd3"}),
    # HiDream-I1's four encoders (long CLIP-L, long CLIP-G, T5-XXL, Llama 3.1 8B; no type widget)
    "QuadrupleCLIPLoader": Rule("load.text_encoder", ("clip_name1", "clip_name2", "clip_name3", "clip_name4"),
                                (P("clip_name1", "name"), P("clip_name2", "name2"), P("clip_name3", "name3"),
                                 P("clip_name4", "name4")), outputs=("text_encoder",), fixed={"type": "hidream"}),
    "VAELoader": Rule("load.vae", ("vae_name",), (P("vae_name", "name"),), outputs=("vae",)),
    "CLIPVisionLoader": Rule("load.clip_vision", ("clip_name",), (P("clip_name", "name"),), outputs=("image_encoder",)),
    # cubiq's ComfyUI_IPAdapter_plus (v2): weight types, embeds scaling, attention masks, negative images and one
    # reference per frame (IPAdapterBatch) are ipadapter.apply's own
    "IPAdapterModelLoader": Rule("load.ipadapter", ("ipadapter_file",), (P("ipadapter_file", "name"),),
                                 outputs=("ipadapter",)),
    "IPAdapterUnifiedLoader": Rule("load.ipadapter_preset", ("preset",), (P("preset", "preset"),), {"model": "model"},
                                   ("model", "ipadapter")),
    "IPAdapter": Rule("ipadapter.apply", ("weight", "start_at", "end_at", "weight_type"),
                      (P("weight", "weight"), P("start_at", "start"), P("end_at", "end"),
                       P("weight_type", "weight_type", ipadapter_simple_type)),
                      {"model": "model", "ipadapter": "ipadapter", "image": "image", "attn_mask": "mask"},
                      ("model",), fixed={"weight_type": "linear"}),    # saved before it had weight_type: standard
    "IPAdapterAdvanced": Rule("ipadapter.apply", ("weight", "weight_type", "combine_embeds", "start_at", "end_at",
                                                  "embeds_scaling"),
                              (P("weight", "weight"), P("weight_type", "weight_type"), P("combine_embeds", "combine"),
                               P("start_at", "start"), P("end_at", "end"), P("embeds_scaling", "scaling")),
                              IPADAPTER_INPUTS, ("model",)),
    "IPAdapterBatch": Rule("ipadapter.apply", ("weight", "weight_type", "start_at", "end_at", "embeds_scaling",
                                               "encode_batch_size"),
                           (P("weight", "weight"), P("weight_type", "weight_type"), P("start_at", "start"),
                            P("end_at", "end"), P("embeds_scaling", "scaling")),
                           IPADAPTER_INPUTS, ("model",), fixed={"per_frame": True},
                           ignore={"encode_batch_size": 0}, special="ipadapter_batch"),
    # IPAdapterWeights: its list of weights per frame, drawn here from its settings as the node draws them, becomes
    # the frame_weights of the IPAdapterBatch it feeds
    "IPAdapterWeights": Rule(None, IPADAPTER_WEIGHTS, tuple(P(w, w) for w in IPADAPTER_WEIGHTS),
                             special="ipadapter_weights"),
    **{name: Rule("ipadapter.apply", ("weight_style", "weight_composition", "expand_style", "combine_embeds",
                                      "start_at", "end_at", "embeds_scaling"),
                  (P("weight_style", "weight"), P("weight_composition", "composition_weight"),
                   P("expand_style", "weight_type", style_composition_type), P("combine_embeds", "combine"),
                   P("start_at", "start"), P("end_at", "end"), P("embeds_scaling", "scaling")),
                  {**IPADAPTER_INPUTS, "image_style": "image", "image_composition": "composition_image"}, ("model",),
                  fixed=fixed)
       for name, fixed in (("IPAdapterStyleComposition", {}), ("IPAdapterStyleCompositionBatch", {"per_frame": True}))},
    # cubiq's picture preparation: a 224 x 224 square (what CLIP reads) cut or padded from the reference
    "PrepImageForClipVision": Rule("video.resize", ("interpolation", "crop_position", "sharpening"),
                                   (P("interpolation", "method", clip_prep_method),
                                    P("crop_position", "fit", clip_prep_fit)),
                                   {"image": "video"}, ("video",), fixed={"width": 224, "height": 224},
                                   ignore={"sharpening": (0, 0.0)}),
    "IPAdapterNoise": Rule("ipadapter.noise", ("type", "strength", "blur"),
                           (P("type", "kind", noise_type), P("strength", "strength"), P("blur", "blur")),
                           {"image_optional": "image"}, ("video",)),
    "IPAdapterEncoder": Rule("ipadapter.encode", ("weight",), (P("weight", "weight"),),
                             {"ipadapter": "ipadapter", "image": "image", "mask": "mask",
                              "clip_vision": "image_encoder"}, ("pos_embed", "neg_embed")),
    "IPAdapterCombineEmbeds": Rule("ipadapter.combine_embeds", ("method",), (P("method", "method"),),
                                   {f"embed{i}": f"embed{i}" for i in range(1, 6)}, ("embeds",)),
    **{name: Rule("ipadapter.apply_embeds", ("weight", "weight_type", "start_at", "end_at", "embeds_scaling"),
                  (P("weight", "weight"), P("weight_type", "weight_type"), P("start_at", "start"),
                   P("end_at", "end"), P("embeds_scaling", "scaling")),
                  {"model": "model", "ipadapter": "ipadapter", "pos_embed": "pos_embed", "neg_embed": "neg_embed",
                   "attn_mask": "mask", "clip_vision": "image_encoder"}, ("model",), fixed=fixed)
       for name, fixed in (("IPAdapterEmbeds", {}), ("IPAdapterEmbedsBatch", {"per_frame": True}))},
    # pysssss's Custom Scripts loaders: ComfyUI's own, with a preview picture; the file name is the widget's `content`
    "CheckpointLoader|pysssss": Rule("load.model", ("ckpt_name", "example"), (P("ckpt_name", "path", pysssss_file),),
                                     outputs=LOADER_OUT, ignore={"example": None}),
    "LoraLoader|pysssss": Rule("lora.image", ("lora_name", "strength_model", "strength_clip", "example"),
                               (P("lora_name", "path", pysssss_file), P("strength_model", "strength"),
                                P("strength_clip", "clip_strength")),
                               {"model": "model", "clip": "text_encoder"}, ("model", "text_encoder"),
                               ignore={"example": None}),
    # efficiency-nodes' loader: checkpoint, VAE, clip skip, a LoRA, both prompts and an empty latent in one node
    "Efficient Loader": Rule("load.model", ("ckpt_name", "vae_name", "clip_skip", "lora_name", "lora_model_strength",
                                            "lora_clip_strength", "positive", "negative", "token_normalization",
                                            "weight_interpretation", "empty_latent_width", "empty_latent_height",
                                            "batch_size"),
                             (P("ckpt_name", "path"),), special="efficient_loader",
                             ignore={"token_normalization": "none", "weight_interpretation": "comfy"}),
    "LoraLoaderModelOnly": Rule("lora.image", ("lora_name", "strength_model"),
                                (P("lora_name", "path"), P("strength_model", "strength")), {"model": "model"},
                                ("model",)),
    "LoraLoader": Rule("lora.image", ("lora_name", "strength_model", "strength_clip"),
                       (P("lora_name", "path"), P("strength_model", "strength"), P("strength_clip", "clip_strength")),
                       {"model": "model", "clip": "text_encoder"}, ("model", "text_encoder")),
    # LoRA stacks: rgthree's Power Lora Loader (a dict per LoRA: on, lora, strength, strengthTwo for the text
    # encoder) and efficiency-nodes' LoRA Stacker (its LORA_STACK goes to an Efficient Loader): a lora.image each
    "Power Lora Loader (rgthree)": Rule("lora.image", (), (), {"model": "model", "clip": "text_encoder"},
                                        ("model", "text_encoder"), special="power_lora"),
    "LoRA Stacker": Rule(None, ("input_mode", "lora_count") + tuple(
        f"{k}_{i}" for i in range(1, 50) for k in ("lora_name", "lora_wt", "model_str", "clip_str")),
        special="lora_stacker"),
    # Comfyroll's stack (three switched LoRAs) and the node that applies a LORA_STACK to a model and its CLIP
    "CR LoRA Stack": Rule(None, tuple(f"{k}_{i}" for i in range(1, 4)
                                      for k in ("switch", "lora_name", "model_weight", "clip_weight")),
                          special="cr_lora_stack"),
    "CR Apply LoRA Stack": Rule("lora.image", (), (), {"model": "model", "clip": "text_encoder"},
                                ("model", "text_encoder"), special="apply_lora_stack"),
    # Comfyroll's ControlNet stack (three switched ControlNets, each with its picture) and the node that puts it on
    # both prompts, as ControlNetApplyAdvanced does (packs/comfyroll.py)
    "CR Multi-ControlNet Stack": Rule(None, tuple(f"{k}_{i}" for i in range(1, 4)
                                                  for k in ("switch", "controlnet", "controlnet_strength",
                                                            "start_percent", "end_percent")),
                                      special="cr_controlnet_stack"),
    "CR Apply Multi-ControlNet": Rule(None, ("switch",), special="cr_apply_controlnet_stack"),
    # Comfyroll's values: a seed, a prompt, a text, a number as FLOAT and INT
    "CR Seed": Rule(None, ("seed",), (P("seed", "value"),), fold=True, special="constant"),
    "CR Prompt Text": Rule(None, ("prompt",), (P("prompt", "value"),), fold=True, special="constant"),
    "CR Text": Rule(None, ("text",), (P("text", "value"),), fold=True, special="constant"),
    "CR Value": Rule(None, ("value",), (P("value", "value"),), special="cr_value"),
    # Comfyroll's CR Aspect Ratio: a size from its presets (or width/height when custom), swapped when asked, scaled
    # by prescale_factor, handed on as numbers known at import, and its empty latent (latent.empty, sized from the VAE
    # as EmptyLatentImage's)
    "CR Aspect Ratio": Rule("latent.empty", ("width", "height", "aspect_ratio", "swap_dimensions", "upscale_factor",
                                             "prescale_factor", "batch_size"), (),
                            outputs=(None, None, None, None, None, "latent", None), special="cr_aspect_ratio"),
    # text and image conditioning
    "CLIPTextEncode": Rule("encode.text", ("text",), (P("text", "text"),), {"clip": "text_encoder"}, ("positive",),
                           fixed={"weighting": "comfy"}, takes=("clip_skip",)),
    # SDXL's encoder with its size conditioning (text_g through OpenCLIP-G, text_l through CLIP-L)
    "CLIPTextEncodeSDXL": Rule("encode.sdxl", ("width", "height", "crop_w", "crop_h", "target_width", "target_height",
                                               "text_g", "text_l"),
                               (P("text_g", "text"), P("text_l", "text_l"), P("width", "width"), P("height", "height"),
                                P("crop_w", "crop_w"), P("crop_h", "crop_h"), P("target_width", "target_width"),
                                P("target_height", "target_height")), {"clip": "text_encoder"}, ("positive",),
                               fixed={"weighting": "comfy"}, takes=("clip_skip",)),
    "CLIPTextEncodeSDXLRefiner": Rule("encode.sdxl", ("ascore", "width", "height", "text"),
                                      (P("text", "text"), P("ascore", "aesthetic"), P("width", "width"),
                                       P("height", "height")), {"clip": "text_encoder"}, ("positive",),
                                      fixed={"weighting": "comfy"}, takes=("clip_skip",)),
    # Inspire's encoder that scales each token's weight (strength) and adds to it (add_weight): ComfyUI's at 1 and 0
    "CLIPTextEncodeWithWeight //Inspire": Rule("encode.text", ("text", "strength", "add_weight"), (P("text", "text"),),
                                               {"clip": "text_encoder"}, ("positive",), fixed={"weighting": "comfy"},
                                               takes=("clip_skip",), ignore={"strength": (1, 1.0),
                                                                             "add_weight": (0, 0.0)}),
    # Inspire's Prompt Builder hands on its text (the category and preset only fill the text in the editor)
    "PromptBuilder //Inspire": Rule(None, ("category", "preset", "text"), (P("text", "value"),), fold=True,
                                    special="constant"),
    # ComfyUI_ADV_CLIP_emb: ComfyUI's encoder with a choice of weighting; "comfy" with no normalization is the same
    "BNK_CLIPTextEncodeAdvanced": Rule("encode.text", ("text", "token_normalization", "weight_interpretation"),
                                       (P("text", "text"),), {"clip": "text_encoder"}, ("positive",),
                                       fixed={"weighting": "comfy"}, takes=("clip_skip",),
                                       ignore={"token_normalization": "none", "weight_interpretation": "comfy"}),
    # FizzNodes' prompt schedule ("0": "a caterpillar", "24": "a butterfly") as Kinograph's "0: ..., 24: ..."
    "BatchPromptSchedule": Rule("encode.text", ("text", "max_frames", "print_output", "pre_text", "app_text",
                                                "start_frame", "end_frame", "pw_a", "pw_b", "pw_c", "pw_d"),
                                (), {"clip": "text_encoder"}, ("positive", "negative"), fixed={"weighting": "comfy"},
                                takes=("clip_skip",), special="prompt_schedule",
                                ignore={"max_frames": None, "print_output": None, "start_frame": 0, "end_frame": 0},
                                note="FizzNodes blends the keyframes' conditionings frame by frame, as Kinograph's "
                                     "prompt schedule does, but Kinograph averages them over each context window of a "
                                     "video transformer"),
    "CLIPSetLastLayer": Rule(None, ("stop_at_clip_layer",), (P("stop_at_clip_layer", "clip_skip", lambda v: -int(v)),),
                             fold=True, special="clip_skip"),
    # ControlNet: ComfyUI attaches a control image to the conditioning; Kinograph's control.apply steers the model
    # (both prompts), so each sampler given controlled conditioning gets control.apply on its model input. The
    # image is taken as it is (preprocessor none), as ComfyUI takes it
    "ControlNetLoader": Rule(None, ("control_net_name",), (P("control_net_name", "path"),), fold=True),
    "ControlNetLoaderAdvanced": Rule(None, ("control_net_name",), (P("control_net_name", "path"),), fold=True),
    "ControlNetApply": Rule(None, ("strength",), (P("strength", "strength"),), fold=True, special="controlnet",
                            note="ComfyUI applies it to the positive prompt only; Kinograph's ControlNet steers the "
                                 "model, under both prompts"),
    **{name: Rule(None, ("strength", "start_percent", "end_percent"),
                  (P("strength", "strength"), P("start_percent", "start"), P("end_percent", "end")), fold=True,
                  special="controlnet")
       for name in ("ControlNetApplyAdvanced", "ControlNetApplySD3", "ACN_AdvancedControlNetApply",
                    "ACN_AdvancedControlNetApply_v2")},
    # a union ControlNet's type rides with the loaded net to control.apply's mode
    "SetUnionControlNetType": Rule(None, ("type",), fold=True, special="union_type"),
    # alimama's FLUX.1 inpainting ControlNets: the mask rides with the control to control.apply's mask, which blacks
    # the masked pixels of the picture and hands the net the inverted mask, as this node does
    "ControlNetInpaintingAliMamaApply": Rule(None, ("strength", "start_percent", "end_percent"),
                                             (P("strength", "strength"), P("start_percent", "start"),
                                              P("end_percent", "end")), fold=True, special="controlnet"),
    # XLabs' own node pack (x-flux-comfyui): its loader reads models/xlabs/controlnets/ (a folder Kinograph searches),
    # its apply nodes chain the controls on a ControlNetCondition wire to XlabsSampler, which steers its model with
    # them: the controls ride that wire to the sampler's control.apply, as ComfyUI's ride the conditioning
    "LoadFluxControlNet": Rule(None, ("model_name", "controlnet_path"), (P("controlnet_path", "path"),), fold=True,
                               ignore={"model_name": ("flux-dev", "flux-dev-fp8")}),   # the file tells the layout
    "ApplyFluxControlNet": Rule(None, ("strength",), (P("strength", "strength"),), fold=True, special="controlnet",
                                note="a picture not at the generation size: XLabs resizes it bicubic, Kinograph "
                                     "bilinear"),
    "ApplyAdvancedFluxControlNet": Rule(None, ("strength", "start", "end"),
                                        (P("strength", "strength"), P("start", "start"), P("end", "end")), fold=True,
                                        special="controlnet",
                                        note="XLabs counts start / end in steps (int(start x (steps + 1)) to "
                                             "int(end x (steps + 1)), both ends in); Kinograph in noise level, as "
                                             "ComfyUI's start_percent / end_percent. 0 and 1 are the same in both; a "
                                             "picture not at the generation size: XLabs resizes it bicubic, "
                                             "Kinograph bilinear"),
    # x-flux-comfyui's FLUX.1 IP-Adapter (its files in models/xlabs/ipadapters/, a folder Kinograph searches): the
    # loader's CLIP vision model rides with the adapter, as load.ipadapter_preset's does; ip_scale is the weight
    "LoadFluxIPAdapter": Rule("load.ipadapter", ("ipadatper", "clip_vision", "provider"),
                              (P("ipadatper", "name"), P("clip_vision", "clip_vision")), outputs=("ipadapter",),
                              ignore={"provider": ("CPU", "GPU")}),     # where CLIP runs: Kinograph's device
    "ApplyFluxIPAdapter": Rule("ipadapter.apply", ("ip_scale",), (P("ip_scale", "weight"),),
                               {"model": "model", "ip_adapter_flux": "ipadapter", "image": "image"}, ("model",),
                               note="x-flux-comfyui runs the adapter and CLIP's embedding in bfloat16; Kinograph in "
                                    "the model's dtype (float32 on the CPU): the same steering, not bit for bit"),
    "ApplyAdvancedFluxIPAdapter": Rule("ipadapter.flux_graded", ("begin_strength", "end_strength", "smothing_type"),
                                       (P("begin_strength", "begin"), P("end_strength", "end"),
                                        P("smothing_type", "grading", str.lower)),
                                       {"model": "model", "ip_adapter_flux": "ipadapter", "image": "image"}, ("model",),
                                       note="x-flux-comfyui runs the adapter and CLIP's embedding in bfloat16; "
                                            "Kinograph in the model's dtype (float32 on the CPU)"),
    # x-flux-comfyui's LoRA loader reads models/xlabs/loras/ (searched too); XLabs' own LoRA layout loads through
    # diffusers' converter, a ComfyUI-format one as any LoRA
    "FluxLoraLoader": Rule("lora.image", ("lora_name", "strength_model"),
                           (P("lora_name", "path"), P("strength_model", "strength")), {"model": "model"}, ("model",)),
    # comfyui_controlnet_aux's depth preprocessors, as depth.estimate with the same model's Hugging Face folder
    "DepthAnythingPreprocessor": Rule("depth.estimate", ("ckpt_name", "resolution"),
                                      (P("ckpt_name", "model", depth_folder),), {"image": "video"}, ("video",),
                                      ignore={"resolution": None}, note=DEPTH_NOTE),
    "DepthAnythingV2Preprocessor": Rule("depth.estimate", ("ckpt_name", "resolution"),
                                        (P("ckpt_name", "model", depth_folder),), {"image": "video"}, ("video",),
                                        ignore={"resolution": None}, note=DEPTH_NOTE),
    # comfyui_controlnet_aux's DWPose, as pose.dwpose with the same model files, and its pixel-perfect resolution
    "DWPreprocessor": Rule("pose.dwpose", ("detect_hand", "detect_body", "detect_face", "resolution", "bbox_detector",
                                           "pose_estimator", "scale_stick_for_xinsr_cn"),
                           (P("detect_hand", "hands", enable), P("detect_body", "body", enable),
                            P("detect_face", "face", enable), P("resolution", "resolution"),
                            P("bbox_detector", "detector", pose_torchscript),
                            P("pose_estimator", "estimator", pose_torchscript),
                            P("scale_stick_for_xinsr_cn", "xinsr_sticks", enable)), {"image": "video"},
                           ("video", None)),
    # ComfyUI's SDPose-OOD nodes (comfy_extras/nodes_sdpose.py): the keypoints of one person a frame from the SDPose
    # checkpoint's model and VAE, and their OpenPose-style picture
    "SDPoseKeypointExtractor": Rule("pose.sdpose_keypoints", ("batch_size",), (P("batch_size", "batch_size"),),
                                    {"model": "model", "vae": "vae", "image": "video", "bboxes": "boxes"},
                                    ("keypoints",)),
    # ComfyUI's RT-DETR v4 (comfy_extras/nodes_rtdetr.py): its file, from a UNETLoader, folds into detect.rtdetr.
    # Its threshold and max_detections are unbounded there; scores lie in 0..1 and there are 300 queries, so the
    # values past those bounds keep what the bounds keep.
    "RTDETR_detect": Rule("detect.rtdetr", ("threshold", "class_name", "max_detections"),
                          (P("threshold", "threshold", lambda v: min(max(float(v), 0.0), 1.0)),
                           P("class_name", "class_name"),
                           P("max_detections", "max_detections", lambda v: min(max(int(v), 0), 300))),
                          {"image": "video"}, ("boxes",), special="rtdetr_detect"),
    "DrawBBoxes": Rule("detect.draw_boxes", (), (), {"image": "video", "bboxes": "boxes"}, ("video",),
                       note="labels in PIL's default font, as ComfyUI writes them where Arial is missing (it has "
                            "Arial on Windows); the boxes of one picture are not repeated over a longer clip"),
    "SDPoseDrawKeypoints": Rule("pose.sdpose_draw", ("draw_body", "draw_hands", "draw_face", "draw_feet",
                                                     "stick_width", "face_point_size", "score_threshold"),
                                (P("draw_body", "draw_body"), P("draw_hands", "draw_hands"),
                                 P("draw_face", "draw_face"), P("draw_feet", "draw_feet"),
                                 P("stick_width", "stick_width"), P("face_point_size", "face_point_size"),
                                 P("score_threshold", "score_threshold")), {"keypoints": "keypoints"}, ("video",)),
    # ComfyUI's Depth Anything 3 nodes (comfy_extras/nodes_depth_anything_3.py): the loader's file and weight type ride to
    # depth.da3 (DA3Inference), whose maps depth.da3_render draws
    "LoadDA3Model": Rule(None, ("model_name", "weight_dtype"),
                         (P("model_name", "model"), P("weight_dtype", "precision")), fold=True),
    # mode's multiview widgets follow it only in multiview: special_da3 reads ref_view_strategy there (pose_method
    # picks how camera poses are found, which nothing here reads)
    "DA3Inference": Rule("depth.da3", ("resolution", "resize_method", "mode", "mode.ref_view_strategy",
                                       "mode.pose_method"),
                         (P("resolution", "resolution"), P("resize_method", "resize_method"), P("mode", "mode")),
                         {"image": "video"}, ("geometry",), special="da3",
                         ignore={"mode.ref_view_strategy": None, "mode.pose_method": None}),
    "DA3Render": Rule("depth.da3_render", ("output", "output.normalization", "output.apply_sky_clip"),
                      (P("output", "output"), P("output.normalization", "normalization"),
                       P("output.apply_sky_clip", "sky_clip"), P("output.colored", "colored")),
                      {"da3_geometry": "geometry"}, ("video",), special="da3_render"),
    # OpenPose's own networks (CMU's body, hand and face models) are not in Kinograph: DWPose draws the same picture
    "OpenposePreprocessor": Rule("pose.dwpose", ("detect_hand", "detect_body", "detect_face", "resolution",
                                                 "scale_stick_for_xinsr_cn"),
                                 (P("detect_hand", "hands", enable), P("detect_body", "body", enable),
                                  P("detect_face", "face", enable), P("resolution", "resolution"),
                                  P("scale_stick_for_xinsr_cn", "xinsr_sticks", enable)), {"image": "video"},
                                 ("video", None),
                                 note="OpenPose's networks (body_pose_model.pth, hand_pose_model.pth, facenet.pth) "
                                      "are not in Kinograph: DWPose (yolox_l + dw-ll_ucoco_384) finds the people and "
                                      "draws the same OpenPose picture, usually with more of the hands and face"),
    "PixelPerfectResolution": Rule("pose.pixel_perfect", ("image_gen_width", "image_gen_height", "resize_mode"),
                                   (P("image_gen_width", "width"), P("image_gen_height", "height"),
                                    P("resize_mode", "resize_mode")), {"original_image": "video"}, ("resolution",)),
    # a and bg_threshold shape only the pack's MiDaS normal map (MidasDetector's depth_and_normal); its depth picture
    # is the prediction spread from its minimum to its maximum
    "MiDaS-DepthMapPreprocessor": Rule("depth.estimate", ("a", "bg_threshold", "resolution"), (), {"image": "video"},
                                       ("video",), fixed={"model": "dpt-hybrid-midas"},
                                       ignore={"a": None, "bg_threshold": None, "resolution": None},
                                       note=DEPTH_NOTE),
    # comfyui_controlnet_aux's normal maps, as normals.* (MiDaS's from the same DPT-Hybrid's Hugging Face folder)
    "MiDaS-NormalMapPreprocessor": Rule("normals.midas", ("a", "bg_threshold", "resolution"),
                                        (P("a", "a"), P("bg_threshold", "bg_threshold"),
                                         P("resolution", "resolution")), {"image": "video"}, ("video",),
                                        fixed={"model": "dpt-hybrid-midas"}),
    "BAE-NormalMapPreprocessor": Rule("normals.bae", ("resolution",), (P("resolution", "resolution"),),
                                      {"image": "video"}, ("video",)),
    # ZoeD_M12_N.pt, the file the pack loads, is ZoeDepth-N (NYU only): Intel/zoedepth-nyu, not the two-headed -nyu-kitti
    "Zoe-DepthMapPreprocessor": Rule("depth.estimate", ("resolution",), (), {"image": "video"}, ("video",),
                                     fixed={"model": "zoedepth-nyu"}, ignore={"resolution": None},
                                     note=DEPTH_NOTE + "; the pack spreads Zoe's depth from its 2nd to 85th "
                                                       "percentile, depth.estimate over the whole range"),
    # comfyui_controlnet_aux's line preprocessors, as lines.* with the same lllyasviel/Annotators files
    "LineArtPreprocessor": Rule("lines.lineart", ("coarse", "resolution"),
                                (P("coarse", "model", coarse_lineart, "disable -> sk_model.pth, enable -> "
                                                                      "sk_model2.pth"),
                                 P("resolution", "resolution")), {"image": "video"}, ("video",)),
    "AnimeLineArtPreprocessor": Rule("lines.anime", ("resolution",), (P("resolution", "resolution"),),
                                     {"image": "video"}, ("video",)),
    "Manga2Anime_LineArt_Preprocessor": Rule("lines.manga", ("resolution",), (P("resolution", "resolution"),),
                                             {"image": "video"}, ("video",)),
    "HEDPreprocessor": Rule("lines.hed", ("safe", "resolution"),
                            (P("safe", "safe", enable), P("resolution", "resolution")), {"image": "video"},
                            ("video",)),
    "FakeScribblePreprocessor": Rule("lines.hed", ("safe", "resolution"),
                                     (P("safe", "safe", enable), P("resolution", "resolution")), {"image": "video"},
                                     ("video",), fixed={"scribble": True}),
    "ScribblePreprocessor": Rule("lines.scribble", ("resolution",), (P("resolution", "resolution"),),
                                 {"image": "video"}, ("video",)),
    "Scribble_XDoG_Preprocessor": Rule("lines.xdog", ("threshold", "resolution"),
                                       (P("threshold", "threshold"), P("resolution", "resolution")),
                                       {"image": "video"}, ("video",)),
    "M-LSDPreprocessor": Rule("lines.mlsd", ("score_threshold", "dist_threshold", "resolution"),
                              (P("score_threshold", "score"), P("dist_threshold", "distance"),
                               P("resolution", "resolution")), {"image": "video"}, ("video",)),
    "PiDiNetPreprocessor": Rule("lines.pidinet", ("safe", "resolution"),
                                (P("safe", "safe", enable), P("resolution", "resolution")), {"image": "video"},
                                ("video",)),
    "Scribble_PiDiNet_Preprocessor": Rule("lines.pidinet", ("safe", "resolution"),
                                          (P("safe", "safe", enable), P("resolution", "resolution")),
                                          {"image": "video"}, ("video",), fixed={"scribble": True}),
    "LineartStandardPreprocessor": Rule("lines.standard", ("guassian_sigma", "intensity_threshold", "resolution"),
                                        (P("guassian_sigma", "sigma"), P("intensity_threshold", "threshold"),
                                         P("resolution", "resolution")), {"image": "video"}, ("video",)),
    # comfyui_controlnet_aux's model-free preprocessors (node_wrappers/canny.py, binary.py, color.py, tile.py: each
    # one's own widgets, then resolution), as the pack computes them
    "CannyEdgePreprocessor": Rule("control.canny_edges", ("low_threshold", "high_threshold", "resolution"),
                                  (P("low_threshold", "low"), P("high_threshold", "high"),
                                   P("resolution", "resolution")), {"image": "video"}, ("video",)),
    "BinaryPreprocessor": Rule("control.binary", ("bin_threshold", "resolution"),
                               (P("bin_threshold", "threshold"), P("resolution", "resolution")), {"image": "video"},
                               ("video",)),
    "ColorPreprocessor": Rule("control.color_grid", ("resolution",), (P("resolution", "resolution"),),
                              {"image": "video"}, ("video",)),
    # the pack hands Tile its resolution and its TileDetector drops it
    "TilePreprocessor": Rule("control.tile", ("pyrUp_iters", "resolution"), (P("pyrUp_iters", "iterations"),),
                             {"image": "video"}, ("video",), ignore={"resolution": None}),
    "ShufflePreprocessor": Rule("control.shuffle", ("resolution", "seed"), (P("resolution", "resolution"),
                                                                         P("seed", "seed", shuffle_seed)),
                                {"image": "video"}, ("video",)),
    "ImageInvert": Rule("video.invert", (), (), {"image": "video"}, ("video",)),
    # ControlNet inpaint's picture: the masked pixels -1; the mask rides with the picture to control.apply's mask,
    # which sets them so for an SD / SDXL net (node_wrappers/inpaint.py)
    "InpaintPreprocessor": Rule(None, ("black_pixel_for_xinsir_cn",), (), {"image": "video", "mask": "mask"},
                                fold=True, special="inpaint_preprocessor"),
    # one node for all of the pack's preprocessors: the one it names runs with its own widgets at their defaults
    # and the AIO's resolution (its __init__.py); mapped as that preprocessor's own rule
    "AIO_Preprocessor": Rule(None, ("preprocessor", "resolution"), (), {"image": "video"}, special="aio"),
    # the pack's dropdown as a node of its own, feeding AIO_Preprocessor's preprocessor: a constant
    "ControlNetPreprocessorSelector": Rule(None, ("preprocessor",), (P("preprocessor", "value"),), fold=True,
                                           special="constant"),
    "CLIPVisionEncode": Rule("encode.image", ("crop",), (P("crop", "crop"),),
                             {"clip_vision": "image_encoder", "image": "image"}, ("conditioning",)),
    # Hunyuan3D shapes (comfy_extras/nodes_hunyuan3d.py): ImageOnlyCheckpointLoader loads the checkpoint (DiT, ShapeVAE,
    # DINOv2), CLIPVisionEncode reads each picture, KSampler samples the shape latent (FluxGuidance's value on the
    # positive goes to condition.hunyuan3d's guidance: a 2.0 model reads it beside the sampler's true CFG)
    "EmptyLatentHunyuan3Dv2": Rule("latent.empty_hunyuan3d", ("resolution", "batch_size"),
                                   (P("resolution", "resolution"), P("batch_size", "batch")), outputs=("latent",)),
    "Hunyuan3Dv2Conditioning": Rule("condition.hunyuan3d", (), (), {"clip_vision_output": "image"},
                                    ("positive", "negative")),
    "Hunyuan3Dv2ConditioningMultiView": Rule("condition.hunyuan3d", (), (),
                                             {"front": "front", "left": "left", "back": "back", "right": "right"},
                                             ("positive", "negative")),
    "VAEDecodeHunyuan3D": Rule("decode.hunyuan3d", ("num_chunks", "octree_resolution"),
                               (P("num_chunks", "num_chunks"), P("octree_resolution", "resolution")),
                               {"samples": "latent", "vae": "vae"}, ("voxel",)),
    # TRELLIS.2 / Pixal3D's structure stage (comfy_extras/nodes_trellis2.py): the empty 16^3 latent, and the shape
    # VAE's structure decoder's occupancy as a VOXEL grid
    "EmptyTrellis2LatentStructure": Rule("latent.empty_trellis2_structure", ("batch_size",),
                                         (P("batch_size", "batch"),), outputs=("latent",)),
    # its image conditioning: DINOv3's tokens of the cropped picture at 512 and 1024 (the CLIP vision file is DINOv3)
    "Trellis2Conditioning": Rule("condition.trellis2", (), (), {"clip_vision_model": "image_encoder", "image": "image"},
                                 ("positive", "negative")),
    "TripoSplatConditioning": Rule("condition.triposplat", (), (),
                                   {"clip_vision": "image_encoder", "vae": "vae", "image": "image"},
                                   ("positive", "negative", "latent")),
    # a KSampler wrapper that decodes each step's x0 into a splat and draws it on the progress bar: the sampled latent
    # is the same; Kinograph's sampler shows no splat per step
    "TripoSplatSamplingPreview": Rule(None, ("octree_level", "num_gaussians", "yaw", "pitch", "point_size"), (),
                                      {"model": "model"}, ("model",), fold=True, special="through",
                                      note="the splat of each step is not drawn while sampling; the result is the "
                                           "same"),
    "VAEDecodeTripoSplat": Rule("decode.triposplat", ("num_gaussians", "seed"),
                                (P("num_gaussians", "num_gaussians"), P("seed", "seed")),
                                {"samples": "latent", "vae": "vae"}, ("splat",)),
    "VaeDecodeStructureTrellis2": Rule("decode.trellis2_structure", ("resolution",), (P("resolution", "resolution"),),
                                       {"samples": "latent", "vae": "vae"}, ("voxel",)),
    # FLUX.1 Redux: a picture's SigLIP tokens appended to the prompt's
    "StyleModelLoader": Rule("load.style_model", ("style_model_name",), (P("style_model_name", "name"),),
                             outputs=("style_model",)),
    "StyleModelApply": Rule("condition.style_model", ("strength", "strength_type"),
                            (P("strength", "strength"), P("strength_type", "strength_type")),
                            {"conditioning": "conditioning", "style_model": "style_model",
                             "clip_vision_output": "image"}, ("conditioning",)),
    # SDXL revision: the picture's projected CLIP vision embedding in place of the pooled prompt
    "unCLIPConditioning": Rule("condition.unclip", ("strength", "noise_augmentation"),
                               (P("strength", "strength"), P("noise_augmentation", "noise_augmentation")),
                               {"conditioning": "conditioning", "clip_vision_output": "image"}, ("conditioning",)),
    # Chroma: ComfyUI trims T5-XXL's padding to min_padding tokens; Kinograph reads the prompt as ChromaPipeline does
    "T5TokenizerOptions": Rule(None, ("min_padding", "min_length"), (), fold=True, special="t5_options",
                               note="Kinograph reads T5-XXL's prompt as diffusers' ChromaPipeline does: padded to 512 "
                                    "tokens with all but the first padding token masked (min_padding 1, min_length 0)"),
    "FluxGuidance": Rule(None, ("guidance",), (P("guidance", "cfg"),), fold=True, special="guidance"),
    # FLUX.1 Kontext: the picture to edit rides in the conditioning; its size is one Kontext was trained at
    "ReferenceLatent": Rule("condition.reference", (), (), {"conditioning": "conditioning", "latent": "latent"},
                            ("conditioning",)),
    # PiD (the latent upscaler on PixelDiT): the latent to draw 4x larger rides in the prompt
    "PiDConditioning": Rule("condition.pid", ("latent_format", "degrade_sigma"),
                            (P("latent_format", "latent_format"), P("degrade_sigma", "degrade_sigma")),
                            {"positive": "positive", "latent": "latent"}, ("conditioning",)),
    "FluxKontextMultiReferenceLatentMethod": Rule("condition.reference", ("reference_latents_method",),
                                                  (P("reference_latents_method", "method", reference_method),),
                                                  {"conditioning": "conditioning"}, ("conditioning",)),
    # its sizes go through links into the settings that read them (a latent's width and height); a size set by a
    # FLUX.2 / FLUX.3 klein editing: several pictures encoded and added to both prompts in one node; its latent the
    # first picture's, zeroed. Resizing to megapixels: ComfyUI's resampling is not documented; Kinograph's is area
    # megapixels is resolution's "resize" option's own widget: resolution.megapixels, as an API prompt names it
    "ReferenceMultiLatent": Rule("condition.references", ("resolution", "resolution.megapixels"),
                                 (P("resolution", "resolution", reference_resolution),
                                  P("resolution.megapixels", "megapixels")),
                                 {"positive": "positive", "negative": "negative", "vae": "vae",
                                  "images.image0": "image", "images.image1": "image2", "images.image2": "image3",
                                  "images.image3": "image4"}, ("positive", "negative", "latent"),
                                 special="more_pictures"),
    # boxes drawn in ComfyUI's box editor (its width, height and editor state); the background picture only shows
    # behind the editor, and the preview picture is not drawn
    "CreateBoundingBoxes": Rule("boxes.create", ("width", "height", "editor_state", "state_extra"),
                                (P("width", "width"), P("height", "height"), P("editor_state", "boxes", editor_boxes)),
                                {}, (None, "boxes", "boxes"), ignore={"state_extra": []}),
    # FLUX.3 klein's layout prompt: the prompt with the boxes as a JSON table after it
    "Flux3LayoutPrompt": Rule("text.flux3_layout", ("prompt",), (P("prompt", "prompt"),), {"element": "boxes"},
                              ("string",)),
    # resize before it is known at import (what GenerateTracks, drawn at import, needs)
    "GetImageSize": Rule("video.size", (), (), {"image": "video"}, ("width", "height", "frames"),
                         special="image_size"),
    # Qwen-Image-Edit: the prompt read with the pictures by Qwen2.5-VL, their latents as references (placed by
    # index); ComfyUI resizes them to a megapixel with other rounding than diffusers' multiples of 32, kept here
    "TextEncodeQwenImageEdit": Rule("encode.qwen_edit", ("prompt",), (P("prompt", "text"),),
                                    {"clip": "text_encoder", "vae": "vae", "image": "image"}, ("conditioning",),
                                    fixed={"template": "edit"}, note=QWEN_EDIT_NOTE),
    "TextEncodeQwenImageEditPlus": Rule("encode.qwen_edit", ("prompt",), (P("prompt", "text"),),
                                        {"clip": "text_encoder", "vae": "vae", "image1": "image", "image2": "image2",
                                         "image3": "image3"}, ("conditioning",), fixed={"template": "plus"},
                                        note=QWEN_EDIT_NOTE),
    # Qwen-Image 2.1's prompt and negative, each read by Qwen3-VL with the pictures and their latents (encode.qwen_edit,
    # as QwenImage21Pipeline's image=) or without pictures alone (encode.text); its latent an empty one of the first
    # picture's size (video.resize_pixels rounds as it does) or resolution square. A picture's alpha: ComfyUI shows
    # Qwen3-VL the picture over white and encodes all four channels; Kinograph's pictures reach it without alpha
    "TextEncodeQwenImage21": Rule("encode.qwen_edit", ("prompt", "negative_prompt", "resolution"),
                                  (P("prompt", "text"), P("negative_prompt", "negative"), P("resolution", "size")),
                                  {"clip": "text_encoder", "vae": "vae", "images.image_1": "image",
                                   "images.image_2": "image2", "images.image_3": "image3"},
                                  ("positive", "negative", "latent"), special="qwen21_text"),
    # Boogu-Image Edit's prompt (Qwen3-VL seeing the pictures) and negative (alone), the pictures' latents on both
    "TextEncodeBooguEdit": Rule("encode.boogu_edit", ("prompt", "negative_prompt"),
                                (P("prompt", "text"), P("negative_prompt", "negative")),
                                {"clip": "text_encoder", "vae": "vae", "images.image_1": "image",
                                 "images.image_2": "image2", "images.image_3": "image3", "images.image_4": "image4"},
                                ("positive", "negative"), special="more_pictures"),
    # JoyImage Edit's prompt with Qwen3-VL seeing the pictures, their latents riding on it (ComfyUI's autogrow inputs
    # count from image0)
    "TextEncodeJoyImageEdit": Rule("encode.joyimage_edit", ("prompt",), (P("prompt", "text"),),
                                   {"clip": "text_encoder", "vae": "vae", "images.image0": "image",
                                    "images.image1": "image2", "images.image2": "image3", "images.image3": "image4",
                                    "images.image4": "image5", "images.image5": "image6"}, ("conditioning",)),
    # FIBO 2's prompt (or the prompt enhancer's JSON) with Qwen3-VL seeing the pictures, their latents riding on both
    # prompts, and the result's empty latent (ComfyUI's autogrow inputs count from image_1)
    "TextEncodeFibo2": Rule("encode.fibo2", ("prompt", "negative_prompt", "width", "height", "batch_size"),
                            (P("prompt", "text"), P("negative_prompt", "negative"), P("width", "width"),
                             P("height", "height"), P("batch_size", "batch_size")),
                            {"clip": "text_encoder", "vae": "vae", "images.image_1": "image",
                             "images.image_2": "image2", "images.image_3": "image3", "images.image_4": "image4"},
                            ("positive", "negative", "latent"),
                            note="ComfyUI's node code was not at hand: encoded as diffusers' BriaFibo2Pipeline encodes "
                                 "(the template's notes describe the same sizing and cropping), without drawing the "
                                 "caption's text_render text for Qwen3-VL as the pipeline does"),
    # HiDream-O1's reference pictures on both prompts (ComfyUI's autogrow inputs count from image_1)
    "HiDreamO1ReferenceImages": Rule("condition.hidream_o1_references", (), (),
                                     {"positive": "positive", "negative": "negative",
                                      **{f"images.image_{i}": "image" if i == 1 else f"image{i}" for i in range(1, 11)}},
                                     ("positive", "negative")),
    # Mage-Flow's prompt and negative with Qwen3-VL seeing the pictures, their latents at the result's size riding on
    # both, and the result's empty latent (ComfyUI's autogrow inputs count from image_1)
    "TextEncodeMageFlowEdit": Rule("encode.mage_flow_edit", ("prompt", "negative_prompt", "width", "height",
                                                             "batch_size"),
                                   (P("prompt", "text"), P("negative_prompt", "negative"), P("width", "width"),
                                    P("height", "height"), P("batch_size", "batch_size")),
                                   {"clip": "text_encoder", "vae": "vae",
                                    **{f"images.image_{i}": "image" if i == 1 else f"image{i}" for i in range(1, 17)}},
                                   ("positive", "negative", "latent")),
    "FluxKontextImageScale": Rule("image.kontext_scale", (), (), {"image": "video"}, ("video",), note=LANCZOS_NOTE),
    # T5-XXL's and CLIP-L's prompts, and the distilled guidance (handed to the sampler's cfg, as FluxGuidance's)
    "CLIPTextEncodeFlux": Rule("encode.flux", ("clip_l", "t5xxl", "guidance"),
                               (P("t5xxl", "text"), P("clip_l", "text_l"), P("guidance", "cfg")),
                               {"clip": "text_encoder"}, ("positive",), fixed={"weighting": "comfy"},
                               special="flux_text"),
    # T5-XXL's, CLIP-L's and OpenCLIP-G's prompts
    "CLIPTextEncodeSD3": Rule("encode.sd3", ("clip_l", "clip_g", "t5xxl", "empty_padding"),
                              (P("t5xxl", "text"), P("clip_l", "text_l", sd3_clip_prompt),
                               P("clip_g", "text_g", sd3_clip_prompt)),
                              {"clip": "text_encoder"}, ("positive",), fixed={"weighting": "comfy"},
                              ignore={"empty_padding": None}),
    "LTXVConditioning": Rule(None, ("frame_rate",), (P("frame_rate", "fps"),), fold=True, special="ltxv_conditioning"),
    # latents
    "EmptyLatentImage": Rule("latent.empty", ("width", "height", "batch_size"),
                             LATENT_SIZE + (P("batch_size", "frames"),), outputs=("latent",), special="empty_latent",
                             note=""),
    # SD3's and FLUX.1's empty latent (16 channels; Kinograph sizes it from the VAE it is given)
    "EmptySD3LatentImage": Rule("latent.empty", ("width", "height", "batch_size"),
                                LATENT_SIZE + (P("batch_size", "frames"),), outputs=("latent",), special="empty_latent"),
    # a pixel-space model's empty "latent" (Chroma Radiance: the picture itself, 3 channels at full size; Kinograph
    # sizes it from the pixel_space VAE it is given)
    "EmptyChromaRadianceLatentImage": Rule("latent.empty", ("width", "height", "batch_size"),
                                           LATENT_SIZE + (P("batch_size", "frames"),), outputs=("latent",),
                                           special="empty_latent"),
    # FLUX.2's empty latent (128 channels at 1/16 of the picture; Kinograph sizes it from the FLUX.2 VAE it is given)
    "EmptyFlux2LatentImage": Rule("latent.empty", ("width", "height", "batch_size"),
                                  LATENT_SIZE + (P("batch_size", "frames"),), outputs=("latent",),
                                  special="empty_latent"),
    # HiDream-O1's: the picture itself (pixel space, no VAE), [B, 3, H, W] zeros
    "EmptyHiDreamO1LatentImage": Rule("latent.empty_hidream_o1", ("width", "height", "batch_size"),
                                      (P("width", "width"), P("height", "height"), P("batch_size", "batch_size")),
                                      outputs=("latent",)),
    # Qwen-Image-Layered's: the whole picture and its layers as frames (Kinograph sizes it from the VAE it is given)
    "EmptyQwenImageLayeredLatentImage": Rule("latent.layers", ("width", "height", "layers", "batch_size"),
                                             LATENT_SIZE + (P("layers", "layers"),), outputs=("latent",),
                                             special="empty_latent", ignore={"batch_size": 1}),
    "EmptyHunyuanLatentVideo": Rule("latent.empty", ("width", "height", "length", "batch_size"),
                                    LATENT_SIZE + (P("length", "frames"),), outputs=("latent",), special="empty_latent",
                                    ignore={"batch_size": 1}),
    # HunyuanVideo 1.5's empty latent (32 channels at 1/16 of the picture; Kinograph sizes it from the VAE it is given)
    "EmptyHunyuanVideo15Latent": Rule("latent.empty", ("width", "height", "length", "batch_size"),
                                      LATENT_SIZE + (P("length", "frames"),), outputs=("latent",),
                                      special="empty_latent", ignore={"batch_size": 1}),
    # HunyuanVideo 1.5 image-to-video: the start image's latent and SigLIP's tokens of it on both prompts
    "HunyuanVideo15ImageToVideo": Rule("condition.hunyuan15_i2v", ("width", "height", "length", "batch_size"),
                                       LATENT_SIZE + (P("length", "frames"),),
                                       {"positive": "positive", "negative": "negative", "vae": "vae",
                                        "start_image": "start_image", "clip_vision_output": "image_embeds"},
                                       ("positive", "negative", "latent"), ignore={"batch_size": 1},
                                       note="the start image is fitted to the size as diffusers' "
                                            "HunyuanVideo15ImageToVideoPipeline fits it (scaled to cover, the middle "
                                            "cut out), where ComfyUI scales it bilinearly"),
    # HunyuanVideo 1.5's 1080p super-resolution stage: the latent upsampler (its file from LatentUpscaleModelLoader),
    # then the SR model's conditioning of the upsampled latent
    "HunyuanVideo15LatentUpscaleWithModel": Rule("latent.hunyuan15_upsample", ("upscale_method", "width", "height",
                                                                               "crop"),
                                                 (P("upscale_method", "method"), P("width", "width"),
                                                  P("height", "height")),
                                                 {"samples": "latent"}, ("latent",), special="upscale_model",
                                                 ignore={"crop": "disabled"}),
    "HunyuanVideo15SuperResolution": Rule("condition.hunyuan15_sr", ("noise_augmentation",),
                                          (P("noise_augmentation", "noise_augmentation"),),
                                          {"positive": "positive", "negative": "negative", "latent": "latent",
                                           "vae": "vae", "start_image": "start_image",
                                           "clip_vision_output": "image_embeds"},
                                          ("positive", "negative", "latent"),
                                          note="a start image is resized to the latent's size as PIL resizes it "
                                               "(bilinear, whole picture), where ComfyUI cuts the middle out to the "
                                               "aspect"),
    # Kandinsky 5's latent (HunyuanVideo's VAE's); with a start image, its latent kept as the first frame
    "Kandinsky5ImageToVideo": Rule("condition.kandinsky5_i2v", ("width", "height", "length", "batch_size"),
                                   LATENT_SIZE + (P("length", "frames"),),
                                   {"positive": "positive", "negative": "negative", "vae": "vae",
                                    "start_image": "first"}, ("positive", "negative", "latent", "cond_latent"),
                                   special="i2v", ignore={"batch_size": 1}),
    # a source that does not fit leaves ComfyUI's destination unchanged (a warning in its console): the same here, said
    # in the run's log, so the imported graph gives the picture ComfyUI gave
    "ReplaceVideoLatentFrames": Rule("latent.replace_frames", ("index",), (P("index", "index"),),
                                     {"destination": "destination", "source": "source"}, ("latent",),
                                     fixed={"overflow": "keep"}),
    "NormalizeVideoLatentStart": Rule("latent.normalize_start", ("start_frame_count", "reference_frame_count"),
                                      (P("start_frame_count", "start_frames"),
                                       P("reference_frame_count", "reference_frames")), {"latent": "latent"},
                                      ("latent",)),
    "EmptyLTXVLatentVideo": Rule("latent.empty", ("width", "height", "length", "batch_size"),
                                 LATENT_SIZE + (P("length", "frames"),), outputs=("latent",), special="empty_latent",
                                 ignore={"batch_size": 1}),
    "EmptyMochiLatentVideo": Rule("latent.empty", ("width", "height", "length", "batch_size"),
                                  LATENT_SIZE + (P("length", "frames"),), outputs=("latent",), special="empty_latent",
                                  ignore={"batch_size": 1}),
    "Wan22ImageToVideoLatent": Rule("latent.empty", ("width", "height", "length", "batch_size"),
                                    LATENT_SIZE + (P("length", "frames"),),
                                    {"vae": "vae", "start_image": "start_image"}, ("latent",),
                                    ignore={"batch_size": 1}),
    "LatentUpscaleBy": Rule("latent.upscale", ("upscale_method", "scale_by"),
                            (P("upscale_method", "method", lambda v: v if v != "bislerp" else _bislerp()),
                             P("scale_by", "scale")), {"samples": "latent"}, ("latent",)),
    "VAEDecode": Rule("vae.decode", (), (), {"samples": "latent", "vae": "vae"}, ("video",)),
    "VAEDecodeTiled": Rule("vae.decode", ("tile_size", "overlap", "temporal_size", "temporal_overlap"), (),
                           {"samples": "latent", "vae": "vae"}, ("video",),
                           ignore={"tile_size": None, "overlap": None, "temporal_size": None, "temporal_overlap": None},
                           note="decoded as vae.decode decodes (whole frames, or its own tiles where memory asks); "
                                "ComfyUI decodes in tile_size tiles blended over overlap (most video VAEs also "
                                "temporal_size frames at a time), so frames larger than a tile differ a little along "
                                "its tiles' edges"),
    "VAEEncode": Rule("vae.encode", (), (), {"pixels": "video", "vae": "vae"}, ("latent",)),
    "VAEEncodeTiled": Rule("vae.encode", ("tile_size", "overlap", "temporal_size", "temporal_overlap"), (),
                           {"pixels": "video", "vae": "vae"}, ("latent",),
                           ignore={"tile_size": None, "overlap": None, "temporal_size": None, "temporal_overlap": None},
                           note="encoded as vae.encode encodes (whole frames, or its own tiles where memory asks); "
                                "ComfyUI encodes in tile_size tiles blended over overlap, so the latent differs a "
                                "little along its tiles' edges"),
    # image-to-video
    "WanImageToVideo": Rule("condition.frames", ("width", "height", "length", "batch_size"),
                            LATENT_SIZE + (P("length", "frames"),),
                            {"positive": "positive", "negative": "negative", "vae": "vae", "start_image": "first",
                             "clip_vision_output": "image_embeds"}, ("positive", "negative", "latent"),
                            special="i2v", ignore={"batch_size": 1}),
    # MiniMax H3 text-to-video: its prompt (the CLIP it is given reads it) and the empty video latent with its
    # soundtrack; keyframes (first_frame / last_frame, fl2va) through condition.frames
    "MiniMaxH3ImageToVideo": Rule("encode.text", ("prompt", "width", "height", "length"),
                                  (P("prompt", "text"),) + LATENT_SIZE + (P("length", "frames"),),
                                  {"clip": "text_encoder"}, ("positive", "latent"), special="minimax_h3_video"),
    # MiniMax H3's guide picture at any frame (chained to pin several); its guide clips and sound are not read yet
    "MiniMaxH3AddGuide": Rule("condition.frames", ("frame_idx",), (P("frame_idx", "guide_frame"),),
                              {"positive": "positive", "vae": "vae", "latent": "latent", "image": "guide"},
                              ("positive",), special="minimax_h3_guide"),
    # MiniMax H3 reference-to-video (ref2va): the same, and its reference pictures through condition.references
    "MiniMaxH3ReferenceToVideo": Rule("encode.text", ("prompt", "width", "height", "length", "ref_image_size"),
                                      (P("prompt", "text"),) + LATENT_SIZE + (
                                          P("length", "frames"), P("ref_image_size", "resolution",
                                                                   minimax_ref_size)),
                                      {"clip": "text_encoder"}, ("positive", "latent"),
                                      special="minimax_h3_reference"),
    # autoregressive Wan (Causal Forcing): the start image's latent fills the model's attention cache (a MODEL option
    # sample's ar_video sampler reads) and the empty latent is the video's
    "ARVideoI2V": Rule("condition.ar_start", ("width", "height", "length", "batch_size"),
                       LATENT_SIZE + (P("length", "frames"),),
                       {"model": "model", "vae": "vae", "start_image": "start_image"}, ("model", "latent"),
                       ignore={"batch_size": 1},
                       note="the picture is resized by the VAE's processor (ComfyUI: bilinear)"),
    "EmptyARVideoLatent": Rule("latent.empty", ("width", "height", "length", "batch_size"),
                               LATENT_SIZE + (P("length", "frames"),), outputs=("latent",), special="empty_latent",
                               ignore={"batch_size": 1}),
    "WanFirstLastFrameToVideo": Rule("condition.frames", ("width", "height", "length", "batch_size"),
                                     LATENT_SIZE + (P("length", "frames"),),
                                     {"positive": "positive", "negative": "negative", "vae": "vae",
                                      "start_image": "first", "end_image": "last",
                                      "clip_vision_start_image": "image_embeds"}, ("positive", "negative", "latent"),
                                     special="i2v", ignore={"batch_size": 1, "clip_vision_end_image": None}),
    # ATI: the tracks string becomes a motion.tracks node feeding condition.frames (special_ati)
    "WanTrackToVideo": Rule("condition.frames", ("tracks", "width", "height", "length", "batch_size", "temperature",
                                                 "topk"),
                            LATENT_SIZE + (P("length", "frames"), P("tracks", "tracks"),
                                           P("temperature", "temperature"), P("topk", "topk")),
                            {"positive": "positive", "negative": "negative", "vae": "vae", "start_image": "first",
                             "clip_vision_output": "image_embeds"}, ("positive", "negative", "latent"),
                            special="ati", ignore={"batch_size": 1}),
    "WanMoveTrackToVideo": Rule("condition.frames", ("strength", "width", "height", "length", "batch_size"),
                                LATENT_SIZE + (P("length", "frames"), P("strength", "strength")),
                                {"positive": "positive", "negative": "negative", "vae": "vae", "start_image": "first",
                                 "clip_vision_output": "image_embeds"}, ("positive", "negative", "latent"),
                                special="wan_move", ignore={"batch_size": 1}),
    "GenerateTracks": Rule(None, ("width", "height", "start_x", "start_y", "end_x", "end_y", "num_frames", "num_tracks",
                                  "track_spread", "bezier", "mid_x", "mid_y", "interpolation"),
                           tuple(P(k, k) for k in ("width", "height", "start_x", "start_y", "end_x", "end_y",
                                                   "num_frames", "num_tracks", "track_spread", "bezier", "mid_x",
                                                   "mid_y", "interpolation")),
                           fold=True, special="generate_tracks"),
    "WanMoveConcatTrack": Rule(None, (), (), fold=True, special="concat_tracks"),
    # ComfyUI computes Wan-Fun InP's conditioning with WanFirstLastFrameToVideo, its output as the start image's
    "WanFunInpaintToVideo": Rule("condition.frames", ("width", "height", "length", "batch_size"),
                                 LATENT_SIZE + (P("length", "frames"),),
                                 {"positive": "positive", "negative": "negative", "vae": "vae", "start_image": "first",
                                  "end_image": "last", "clip_vision_output": "image_embeds"},
                                 ("positive", "negative", "latent"), special="i2v", ignore={"batch_size": 1}),
    "Canny": Rule("control.canny", ("low_threshold", "high_threshold"),
                  (P("low_threshold", "low"), P("high_threshold", "high")), {"image": "video"}, ("video",)),
    "WanFunControlToVideo": Rule("condition.fun_control", ("width", "height", "length", "batch_size"),
                                 LATENT_SIZE + (P("length", "frames"),),
                                 {"positive": "positive", "negative": "negative", "vae": "vae", "start_image": "first",
                                  "clip_vision_output": "image_embeds", "control_video": "control"},
                                 ("positive", "negative", "latent"), special="i2v", ignore={"batch_size": 1}),
    "Wan22FunControlToVideo": Rule("condition.fun_control", ("width", "height", "length", "batch_size"),
                                   LATENT_SIZE + (P("length", "frames"),),
                                   {"positive": "positive", "negative": "negative", "vae": "vae", "ref_image": "reference",
                                    "control_video": "control"},
                                   ("positive", "negative", "latent"), special="i2v", ignore={"batch_size": 1}),
    # Wan 2.2 S2V: the voice's features, reference image, motion frames, pose video and the latent; Extend continues
    # the clip so far (its size and where the sound goes on come from it)
    "WanSoundImageToVideo": Rule("condition.s2v", ("width", "height", "length", "batch_size"),
                                 LATENT_SIZE + (P("length", "frames"),),
                                 {"positive": "positive", "negative": "negative", "vae": "vae",
                                  "audio_encoder_output": "audio_embeds", "ref_image": "reference",
                                  "control_video": "control", "ref_motion": "motion"},
                                 ("positive", "negative", "latent"), ignore={"batch_size": 1}, note=S2V_NOTE),
    "WanSoundImageToVideoExtend": Rule("condition.s2v", ("length",), (P("length", "frames"),),
                                       {"positive": "positive", "negative": "negative", "vae": "vae",
                                        "video_latent": "previous", "audio_encoder_output": "audio_embeds",
                                        "ref_image": "reference", "control_video": "control"},
                                       ("positive", "negative", "latent"), note=S2V_NOTE),
    # HuMo: the voice's whisper windows, the reference image's latent and the latent
    "WanHuMoImageToVideo": Rule("condition.humo", ("width", "height", "length", "batch_size"),
                                LATENT_SIZE + (P("length", "frames"),),
                                {"positive": "positive", "negative": "negative", "vae": "vae",
                                 "audio_encoder_output": "audio_embeds", "ref_image": "reference"},
                                ("positive", "negative", "latent"), ignore={"batch_size": 1},
                                note="the reference picture is resized by the VAE's processor (ComfyUI: bilinear)"),
    # WanDancer (comfy_extras/nodes_wandancer.py): the music's features and frame rate, the local passes' key frames
    # (a list of one segment, the template's 5 s, is the first segment; more are expanded by app.comfyui.lists) and
    # the conditioning
    "WanDancerEncodeAudio": Rule("encode.wan_dancer_audio", ("video_frames", "audio_inject_scale"),
                                 (P("video_frames", "frames"), P("audio_inject_scale", "scale")), {"audio": "audio"},
                                 ("music", "fps_string"),
                                 note="the music is read by ffmpeg at its own rate, as ComfyUI's LoadAudio reads it"),
    "WanDancerPadKeyframes": Rule("video.wan_dancer_keyframes", ("segment_length", "segment_index"),
                                  (P("segment_length", "length"), P("segment_index", "segment")),
                                  {"images": "images", "audio": "audio"}, ("keyframes", "mask", "audio")),
    "WanDancerPadKeyframesList": Rule("video.wan_dancer_keyframes", ("segment_length", "num_segments"),
                                      (P("segment_length", "length"),), {"images": "images", "audio": "audio"},
                                      ("keyframes", "mask", "audio"), special="wan_dancer_segments"),
    "WanDancerVideo": Rule("condition.wan_dancer", ("width", "height", "length"), LATENT_SIZE + (P("length", "frames"),),
                           {"positive": "positive", "negative": "negative", "vae": "vae",
                            "clip_vision_output": "image_embeds", "clip_vision_output_ref": "reference_embeds",
                            "start_image": "start", "mask": "mask", "audio_encoder_output": "music"},
                           ("positive", "negative", "latent"),
                           note="the start frames are fitted to the size as ComfyUI fits them (bilinear, centre-cropped)"),
    # Wan 2.1 InfiniteTalk: the patch file, and the model it patches with one or two voices (the mode follows from
    # what is connected: a second voice and both masks make two speakers)
    "ModelPatchLoader": Rule("load.model_patch", ("name",), (P("name", "name"),), outputs=("model_patch",)),
    # ControlNets from model_patches/ (Z-Image Fun's union, DiffSynth's Qwen-Image ones), laid into the model's
    # blocks: the picture as it is
    **{name: Rule("control.model_patch", ("strength",), (P("strength", "strength"),),
                  {"model": "model", "model_patch": "model_patch", "vae": "vae", "image": "video", "mask": "mask"},
                  ("model",), note="the control picture is stretched to the latent's size bilinearly (ComfyUI: area)")
       for name in ("QwenImageDiffsynthControlnet", "ZImageFunControlnet")},
    # Anima's ControlNet-LLLite nets from model_patches/: the picture centre-cropped and resized bicubically, as
    # ComfyUI's AnimaLLLitePatch does
    "AnimaLLLiteApply": Rule("control.anima_lllite", ("strength", "start_percent", "end_percent"),
                             (P("strength", "strength"), P("start_percent", "start"), P("end_percent", "end")),
                             {"model": "model", "model_patch": "model_patch", "image": "video", "mask": "mask"},
                             ("model",)),
    # MiniMax H3's Fun ControlNet-Union by its control video (its inpainting: mask / source_video not run yet)
    "MiniMaxH3FunControlNetApply": Rule("control.model_patch", ("strength", "start_percent", "end_percent"),
                                        (P("strength", "strength"),),
                                        {"model": "model", "model_patch": "model_patch", "vae": "vae",
                                         "control_video": "video", "mask": "mask"}, ("model",),
                                        ignore={"start_percent": 0.0, "end_percent": 1.0}),
    "WanInfiniteTalkToVideo": Rule("condition.infinitetalk", ("mode", "width", "height", "length",
                                                              "motion_frame_count", "audio_scale"),
                                   LATENT_SIZE + (P("length", "frames"), P("motion_frame_count", "motion_frames"),
                                                  P("audio_scale", "audio_scale")),
                                   {"model": "model", "model_patch": "model_patch", "positive": "positive",
                                    "negative": "negative", "vae": "vae", "audio_encoder_output_1": "audio_embeds",
                                    "start_image": "start", "clip_vision_output": "image_embeds",
                                    "previous_frames": "previous", "mode.audio_encoder_output_2": "audio_embeds_2",
                                    "mode.mask_1": "mask_1", "mode.mask_2": "mask_2"},
                                   ("model", "positive", "negative", "latent", "trim"), ignore={"mode": None},
                                   note="the start image and previous frames are resized by the VAE's processor "
                                        "(ComfyUI: bilinear)"),
    "WanCameraImageToVideo": Rule("condition.camera", ("width", "height", "length", "batch_size"),
                                  LATENT_SIZE + (P("length", "frames"),),
                                  {"positive": "positive", "negative": "negative", "vae": "vae", "start_image": "first",
                                   "clip_vision_output": "image_embeds", "camera_conditions": "camera"},
                                  ("positive", "negative", "latent"), special="i2v", ignore={"batch_size": 1}),
    "WanCameraEmbedding": Rule("motion.wan_camera", ("camera_pose", "width", "height", "length", "speed", "fx", "fy",
                                                     "cx", "cy"),
                               (P("camera_pose", "pose", lambda v: WAN_CAMERA_POSES[v], "Static -> static, Pan Up -> "
                                  "pan_up, ..., Anti Clockwise (ACW) -> anticlockwise, ClockWise (CW) -> clockwise"),
                                *LATENT_SIZE, P("length", "frames"), P("speed", "speed"), P("fx", "fx"), P("fy", "fy"),
                                P("cx", "cx"), P("cy", "cy")),
                               outputs=("camera",), special="echo_size"),
    "LTXVImgToVideo": Rule("condition.frames", ("width", "height", "length", "batch_size", "strength"),
                           LATENT_SIZE + (P("length", "frames"),),
                           {"positive": "positive", "negative": "negative", "vae": "vae", "image": "first"},
                           ("positive", "negative", "latent"), special="i2v", ignore={"batch_size": 1, "strength": 1.0}),
    "SVD_img2vid_Conditioning": Rule("condition.frames", ("width", "height", "video_frames", "motion_bucket_id", "fps",
                                                          "augmentation_level"),
                                     LATENT_SIZE + (P("video_frames", "frames"), P("motion_bucket_id", "motion"),
                                                    P("fps", "fps"), P("augmentation_level", "noise_aug")),
                                     {"clip_vision": "image_encoder", "init_image": "first", "vae": "vae"},
                                     ("positive", "negative", "latent"), special="svd"),
    "WanVaceToVideo": Rule("condition.vace", ("width", "height", "length", "batch_size", "strength"),
                           LATENT_SIZE + (P("length", "frames"), P("strength", "strength")),
                           {"positive": "positive", "negative": "negative", "vae": "vae",
                            "control_video": "control_video", "control_masks": "control_masks",
                            "reference_image": "reference"}, ("positive", "negative", "latent", None),
                           special="vace", ignore={"batch_size": 1}),
    # Wan 2.2 Animate: trim_latent is the reference frame in front, always one (packs/video_models.py's special_wan_animate)
    "WanAnimateToVideo": Rule("condition.wan_animate", ("width", "height", "length", "batch_size",
                                                        "continue_motion_max_frames", "video_frame_offset"),
                              LATENT_SIZE + (P("length", "frames"), P("continue_motion_max_frames", "continue_frames"),
                                             P("video_frame_offset", "offset")),
                              {"positive": "positive", "negative": "negative", "vae": "vae",
                               "clip_vision_output": "image_embeds", "reference_image": "reference",
                               "face_video": "face", "pose_video": "pose", "background_video": "background",
                               "character_mask": "character_mask", "continue_motion": "continue_motion"},
                              ("positive", "negative", "latent", None, "trim_image", "offset"), special="wan_animate",
                              ignore={"batch_size": 1},
                              note="pictures fitted by a centre crop and a bilinear resize (ComfyUI: area); the face "
                                   "video's centre square resized once, to the model's face size, when sampling; a "
                                   "short face video held on its last frame as the pose video is; the character mask "
                                   "laid over the latent frames as Wan's own code and diffusers' WanAnimatePipeline "
                                   "lay it (ComfyUI gives the first latent frame the mask's first four frames); "
                                   "trim_image counts the continued frames (ComfyUI: rounded up to 4n+1)"),
    # Wan Animate 2: trim_latent is the reference frame in front, always one (as Animate's, special_wan_animate)
    "WanAnimate2ToVideo": Rule("condition.wan_animate2", ("width", "height", "length", "batch_size",
                                                          "video_frame_offset", "pose_strength", "pose_start_percent",
                                                          "pose_end_percent", "reference_image_strength"),
                               LATENT_SIZE + (P("length", "frames"), P("video_frame_offset", "offset"),
                                              P("pose_strength", "pose_strength"),
                                              P("reference_image_strength", "reference_strength"),
                                              P("pose_start_percent", "pose_start"), P("pose_end_percent", "pose_end")),
                               {"positive": "positive", "negative": "negative", "vae": "vae",
                                "reference_image": "reference", "pose_video": "pose",
                                "clip_vision_output": "image_embeds", "positive_pose": "pose_text",
                                "clip_vision_output_pose": "pose_image_embeds", "continue_motion": "continue_motion"},
                               ("positive", "negative", "latent", None, "trim_image", "offset"), special="wan_animate",
                               ignore={"batch_size": 1},
                               note="pictures fitted by a centre crop and a bilinear resize (ComfyUI: area)"),
    # SCAIL / SCAIL-2 (comfy_extras/nodes_scail.py): optional inputs (replacement_mode) come after the required
    # widgets in a workflow's widgets_values
    "WanSCAILToVideo": Rule("condition.wan_scail", ("width", "height", "length", "batch_size", "pose_strength",
                                                    "pose_start", "pose_end", "video_frame_offset",
                                                    "previous_frame_count", "replacement_mode"),
                            LATENT_SIZE + (P("length", "frames"), P("pose_strength", "pose_strength"),
                                           P("pose_start", "pose_start"), P("pose_end", "pose_end"),
                                           P("video_frame_offset", "offset"),
                                           P("previous_frame_count", "previous_count"),
                                           P("replacement_mode", "replacement")),
                            {"positive": "positive", "negative": "negative", "vae": "vae",
                             "reference_image": "reference", "pose_video": "pose", "pose_video_mask": "pose_mask",
                             "reference_image_mask": "reference_mask", "clip_vision_output": "image_embeds",
                             "previous_frames": "previous"},
                            ("positive", "negative", "latent", "offset"), ignore={"batch_size": 1},
                            note="one reference picture (ComfyUI also takes a batch of extra views)"),
    "SCAIL2ColoredMask": Rule("mask.scail_colors", ("object_indices", "sort_by", "replacement_mode"),
                              (P("object_indices", "indices"), P("sort_by", "sort_by"),
                               P("replacement_mode", "replacement")),
                              {"driving_track_data": "driving", "ref_track_data": "reference"},
                              ("pose_mask", "reference_mask")),
    "WanAnimate2Cache": Rule(None, ("device", "dtype"), (), {"model": "model"}, special="animate2_cache",
                             note="the model passes on: ComfyUI's cache of the pose branch saves time (its int8 / "
                                  "int4 storage rounds what it keeps), Kinograph reruns the branch each step"),
    "ImageBatch": Rule("video.concat", (), (), {"image1": "video", "image2": "other"}, ("video",),
                       note="a second clip of another size: ComfyUI resizes it to the first's, Kinograph's video.concat "
                            "stops and says so"),
    "TrimVideoLatent": Rule("latent.trim", ("trim_amount",), (P("trim_amount", "amount"),), {"samples": "latent"},
                            ("latent",)),
    "HunyuanImageToVideo": Rule("condition.hunyuan_i2v", ("width", "height", "length", "batch_size", "guidance_type"),
                                LATENT_SIZE + (P("length", "frames"), P("guidance_type", "guidance", hunyuan_guidance)),
                                {"positive": "positive", "vae": "vae", "start_image": "start_image"},
                                ("positive", "latent"), ignore={"batch_size": 1}),
    "TextEncodeHunyuanVideo_ImageToVideo": Rule("encode.text_image", ("prompt", "image_interleave"),
                                                (P("prompt", "text"), P("image_interleave", "image_interleave")),
                                                {"clip": "text_encoder", "clip_vision_output": "image_embeds"},
                                                ("positive",),
                                                note="encoded as diffusers' HunyuanVideoImageToVideoPipeline does: the "
                                                     "prompt's tokens end with the template's \"\\n\\n\" where "
                                                     "ComfyUI's end with <|eot_id|>"),
    # LTX-2 (its VAE from an ltx-2* file): condition.guide_video at any frame_idx and strength (ltx2_guide); LTX-Video:
    # condition.frames, its picture at frame 0 or -1 at strength 1
    "LTXVAddGuide": Rule("condition.frames", ("frame_idx", "strength"), (),
                         {"positive": "positive", "negative": "negative", "vae": "vae", "image": "first"},
                         ("positive", "negative", "latent"), special="ltxv_guide", ignore={"strength": 1.0}),
    # an IC-LoRA's reference_downscale_factor (its file's metadata, 1 without) for LTXVAddGuide: read here where the
    # file is in the model folders, so the guide says whether Kinograph reads it as ComfyUI does
    "GetICLoRAParameters": Rule(None, (), (), {"iclora_model": "model"}, fold=True, special="iclora_parameters"),
    "LTXVCropGuides": Rule(None, (), (), fold=True, special="crop_guides",
                           note=""),
    # LTX-2 (video and sound in one latent): Gemma 3 with the checkpoint's text connectors is load.text_encoder's
    # pair; the sound's latent rides inside Kinograph's LTX-2 latent (latent.empty makes it, vae.decode gives the
    # clip its sound), so the audio VAE, the empty audio latent and the AV concat / separate fold away
    # LTX-2 image-to-video: the start image into the latent's first frame, kept by the sampler (1 - strength: its mask)
    "LTXVImgToVideoInplace": Rule("latent.start_image", ("strength", "bypass"),
                                  (P("strength", "strength"), P("bypass", "bypass")),
                                  {"vae": "vae", "image": "image", "latent": "latent"}, ("latent",),
                                  special="start_image_inplace",
                                  note="the image " + LATENT_FIT_NOTE),
    "LTXAVTextEncoderLoader": Rule("load.text_encoder", ("text_encoder", "ckpt_name", "device"),
                                   (P("text_encoder", "name"), P("ckpt_name", "name2")), outputs=("text_encoder",),
                                   fixed={"type": "ltx2"}, ignore={"device": "default"}),
    "LTXVAudioVAELoader": Rule(None, ("ckpt_name",), (), fold=True,
                               note="the audio VAE is the checkpoint's own, which load.model's VAE holds"),
    "LTXVEmptyLatentAudio": Rule(None, ("frames_number", "frame_rate", "batch_size"),
                                 (P("frames_number", "frames"), P("frame_rate", "fps")), fold=True,
                                 special="ltx2_audio_latent", ignore={"batch_size": 1}),
    "LTXVConcatAVLatent": Rule(None, (), (), fold=True, special="ltx2_av_concat"),
    "LTXVSeparateAVLatent": Rule(None, (), (), fold=True, special="ltx2_av_separate"),
    "LTXVAudioVAEDecode": Rule(None, (), (), fold=True, special="ltx2_audio_decode"),
    # ComfyUI's core audio decoder on an audio VAE: LTX-2's sound (the decoded clip's own), or Stable Audio Open's,
    # where the chain from EmptyLatentAudio through KSampler folds into generate.stable_audio
    "VAEDecodeAudio": Rule(None, (), (), fold=True, special="vae_decode_audio"),
    "EmptyLatentAudio": Rule(None, ("seconds", "batch_size"), (P("seconds", "seconds"),), fold=True,
                             special="empty_latent_audio", ignore={"batch_size": 1}),
    # ACE-Step 1.5: the chain from EmptyAceStep1.5LatentAudio through KSampler folds into generate.ace_step
    "EmptyAceStep1.5LatentAudio": Rule(None, ("seconds", "batch_size"), (P("seconds", "seconds"),), fold=True,
                                       special="empty_latent_audio", ignore={"batch_size": 1}),
    "TextEncodeAceStepAudio1.5": Rule(None, ("tags", "lyrics", "seed", "bpm", "duration", "timesignature", "language",
                                             "keyscale", "generate_audio_codes", "cfg_scale", "temperature", "top_p",
                                             "top_k", "min_p"),
                                      (P("tags", "tags"), P("lyrics", "lyrics"), P("seed", "lm_seed"),
                                       P("bpm", "bpm"), P("duration", "duration"),
                                       P("timesignature", "timesignature"), P("language", "language"),
                                       P("keyscale", "keyscale"), P("generate_audio_codes", "generate_audio_codes"),
                                       P("cfg_scale", "lm_cfg"), P("temperature", "temperature"),
                                       P("top_p", "top_p"), P("top_k", "top_k")),
                                      fold=True, special="ace_step_song", ignore={"min_p": 0.0}),
    # MiniMax Music 3: the chain from MiniMaxMusic3TextEncode through KSampler folds into generate.minimax_music3
    "MiniMaxMusic3TextEncode": Rule(None, ("caption", "lyrics", "seed", "max_duration", "cfg_scale", "top_k"),
                                    (P("caption", "caption"), P("lyrics", "lyrics"), P("seed", "lm_seed"),
                                     P("max_duration", "max_duration"), P("cfg_scale", "cfg_scale"),
                                     P("top_k", "top_k")), fold=True, special="music3_song"),
    "EmptyMiniMaxMusic3LatentAudio": Rule(None, ("seconds", "batch_size"), (P("seconds", "seconds"),), fold=True,
                                          special="empty_latent_audio", ignore={"batch_size": 1}),
    "VAEDecodeAudioTiled": Rule(None, ("tile_size", "overlap"), (P("tile_size", "tile_size"),
                                                                 P("overlap", "overlap")),
                                fold=True, special="vae_decode_audio"),
    # ACE-Step v1: the chain from EmptyAceStepLatentAudio (or VAEEncodeAudio's song) through KSampler, its model
    # through ModelSamplingSD3 and LatentApplyOperationCFG, folds into generate.ace_step1
    "EmptyAceStepLatentAudio": Rule(None, ("seconds", "batch_size"), (P("seconds", "seconds"),), fold=True,
                                    special="empty_latent_audio", ignore={"batch_size": 1}),
    "TextEncodeAceStepAudio": Rule(None, ("tags", "lyrics", "lyrics_strength"),
                                   (P("tags", "tags"), P("lyrics", "lyrics"), P("lyrics_strength", "lyrics_strength")),
                                   fold=True),
    "LatentOperationTonemapReinhard": Rule(None, ("multiplier",), (P("multiplier", "tonemap"),), fold=True),
    "LatentApplyOperationCFG": Rule(None, (), (), fold=True, special="latent_operation_cfg",
                                    note="the operation on the guidance is applied by generate.ace_step1 (ACE-Step "
                                         "v1's chain) only: elsewhere it is not carried"),
    "VAEEncodeAudio": Rule(None, (), (), fold=True,
                           note="the song is encoded by generate.ace_step1 (ACE-Step v1's VAE) only: another VAE's "
                                "latent is not made"),
    "ConditioningStableAudio": Rule(None, ("seconds_start", "seconds_total"),
                                    (P("seconds_start", "seconds_start"), P("seconds_total", "seconds_total")),
                                    fold=True, special="stable_audio_seconds"),
    # A given song (ComfyUI's ia2v: LTXVAudioVAEEncode, SetLatentNoiseMask 0, LTXVConcatAVLatent) becomes
    # latent.set_sound on the video latent, made where the two streams are joined
    "LTXVReferenceAudio": Rule("condition.reference_voice", ("identity_guidance_scale", "start_percent", "end_percent"),
                               (P("identity_guidance_scale", "identity_scale"), P("start_percent", "start"),
                                P("end_percent", "end")),
                               {"model": "model", "positive": "positive", "negative": "negative",
                                "reference_audio": "audio"}, ("model", "positive", "negative"),
                               special="ltx2_reference_voice"),
    "LTXVAudioVAEEncode": Rule("latent.set_sound", (), (), {"audio": "audio"}, ("latent",),
                               special="ltx2_audio_encode"),
    "EmptyImage": Rule("generate.solid", ("width", "height", "batch_size", "color"),
                       (P("width", "width"), P("height", "height"), P("batch_size", "frames"), P("color", "color")),
                       outputs=("video",)),
    "LTXVPreprocess": Rule("image.ltx_preprocess", ("img_compression",), (P("img_compression", "compression"),),
                           {"image": "image"}, ("image",)),
    # model tweaks
    # which attention kernel ComfyUI runs the model with: Kinograph's loaders choose their own, so the model passes on
    "ModelAttentionBackend": Rule(None, ("attention",), (P("attention", "attention", attention_backend),),
                                  {"model": "model"}, ("model",), fold=True, special="through"),
    # Qwen-Image 2.1's cache of what every step attends to alike (the prompt's and pictures' keys and values):
    # where ComfyUI keeps it changes speed, not the picture; a quantized one changes the picture a little
    "QwenImage21Cache": Rule(None, ("device", "dtype"), (P("dtype", "dtype", qwen21_cache_dtype),),
                             {"model": "model"}, ("model",), fold=True, special="through"),
    # HiDream-O1's noise scale (the first noise and the stochastic samplers' fresh noise at this many times unit)
    "ModelNoiseScale": Rule("model.noise_scale", ("noise_scale",), (P("noise_scale", "noise_scale"),),
                            {"model": "model"}, ("model",)),
    "HiDreamO1PatchSeamSmoothing": Rule("model.hidream_o1_seams",
                                        ("start_percent", "end_percent", "pattern", "passes", "blend", "strength"),
                                        (P("start_percent", "start_percent"), P("end_percent", "end_percent"),
                                         P("pattern", "pattern"), P("passes", "passes"), P("blend", "blend"),
                                         P("strength", "strength")), {"model": "model"}, ("model",)),
    "ModelSamplingSD3": Rule("model.flow_shift", ("shift",), (P("shift", "shift"),), {"model": "model"}, ("model",)),
    # MiniMax H3's two flow shifts: the video's levels (the sampler's) and its soundtrack's
    "MiniMaxH3SigmaShift": Rule("model.flow_shift", ("shift_video", "shift_audio"),
                                (P("shift_video", "shift"), P("shift_audio", "sound_shift")), {"model": "model"},
                                ("model",)),
    # a faster attention for long sequences; FastVideo's FastH3 (vsa) was distilled to attend through it, with a
    # coarse branch (to_gate_compress) its blocks add: Kinograph attends densely and without that branch, as
    # ComfyUI's MiniMax H3 model does without this node
    "BlockSparseAttention": Rule(None, (), (), {"model": "model"}, ("model",), fold=True, special="through",
                                 note="attention is dense here: the model attends to every token (ComfyUI: each block "
                                      "of queries to a chosen few blocks of keys), and FastH3's VSA coarse branch "
                                      "(to_gate_compress) is not run, so a VSA-distilled model's video differs"),
    # Qwen-Image's (and AuraFlow's): the same shifted line as ModelSamplingSD3, its time told to the model as sigma
    # rather than 1000 sigma, which the model's adapter already does
    # the tiling of Chroma Radiance's pixel head (memory alone); the sigmas it acts between change nothing else
    "ChromaRadianceOptions": Rule("model.radiance_options", ("preserve_wrapper", "start_sigma", "end_sigma",
                                                             "nerf_tile_size"),
                                  (P("nerf_tile_size", "nerf_tile_size"),), {"model": "model"}, ("model",),
                                  ignore={"preserve_wrapper": None, "start_sigma": None, "end_sigma": None}),
    "ModelSamplingAuraFlow": Rule("model.flow_shift", ("shift", "sampling"),
                                  (P("shift", "shift"), P("sampling", "sampling")), {"model": "model"}, ("model",)),
    # FLUX.1's size-dependent shift: mu linear in the image's 2x2-patch count (base_shift at 256, max_shift at
    # 4096), the shifted line sigma = e^mu t / (1 + (e^mu - 1) t), which is model.flow_shift's at e^mu
    "ModelSamplingFlux": Rule("model.flow_shift", ("max_shift", "base_shift", "width", "height"),
                              (P("max_shift", "shift", flux_mu), P("base_shift", "base_shift"), P("width", "width"),
                               P("height", "height")), {"model": "model"}, ("model",), special="flux_shift"),
    "ModelSamplingDiscrete": Rule("model.sampling", ("sampling", "zsnr"),
                                  (P("sampling", "prediction", prediction), P("zsnr", "zsnr", enable)),
                                  {"model": "model"}, ("model",)),
    "SkipLayerGuidanceDiT": Rule("guide.skip_layer_guidance",
                                 ("double_layers", "single_layers", "scale", "start_percent", "end_percent",
                                  "rescaling_scale"),
                                 (P("double_layers", "layers"), P("scale", "scale"), P("start_percent", "start"),
                                  P("end_percent", "end"), P("rescaling_scale", "rescale")), {"model": "model"},
                                 ("model",),
                                 note="single_layers is not carried: it names single-stream blocks (Flux's, "
                                      "HunyuanVideo's), and Kinograph runs skip-layer guidance on Wan, which has none"),
    # the negative prompt's own pass made with the blocks skipped (no extra pass, no scale)
    "SkipLayerGuidanceDiTSimple": Rule("guide.skip_layers_negative",
                                       ("double_layers", "single_layers", "start_percent", "end_percent"),
                                       (P("double_layers", "layers"), P("start_percent", "start"),
                                        P("end_percent", "end")), {"model": "model"}, ("model",),
                                       note="single_layers is not carried: it names single-stream blocks (Flux's, "
                                            "HunyuanVideo's), and Kinograph skips layers on Wan and SD3.5, which "
                                            "have none"),
    "SkipLayerGuidanceSD3": Rule("guide.skip_layer_guidance", ("layers", "scale", "start_percent", "end_percent"),
                                 (P("layers", "layers"), P("scale", "scale"), P("start_percent", "start"),
                                  P("end_percent", "end")), {"model": "model"}, ("model",)),
    "UNetTemporalAttentionMultiply": Rule("model.attention_multiply",
                                          ("self_structural", "self_temporal", "cross_structural", "cross_temporal"),
                                          (P("self_structural", "self_structural"),
                                           P("self_temporal", "self_temporal"),
                                           P("cross_structural", "cross_structural"),
                                           P("cross_temporal", "cross_temporal")), {"model": "model"}, ("model",)),
    # a drawing made in ComfyUI's page, saved as a PNG (input/painter/...): its path; the frontend may store one value
    # more after bg_color (its brush colour), which changes nothing that runs
    "Painter": Rule("mask.painter", ("mask", "width", "height", "bg_color"),
                    (P("mask", "path", comfy_file), P("width", "width"), P("height", "height"),
                     P("bg_color", "bg_color")), {"image": "image"}, ("image", "mask")),
    # its reference pictures are an autogrow list: the first slot's pictures (a batch: one stream each) are carried
    "BerniniConditioning": Rule("condition.bernini", ("width", "height", "length", "batch_size", "ref_max_size"),
                                (P("width", "width"), P("height", "height"), P("length", "length"),
                                 P("ref_max_size", "ref_max_size")),
                                {"positive": "positive", "negative": "negative", "vae": "vae",
                                 "source_video": "source_video", "reference_video": "reference_video",
                                 "reference_images.reference_image_0": "references"},
                                ("positive", "negative", "latent"), ignore={"batch_size": 1}),
    "FluxKVCache": Rule("model.reference_kv", (), (), {"model": "model"}, ("model",),
                        note="its pictures attend only to each other at every step, as diffusers' "
                             "Flux2KleinKVPipeline reads them; ComfyUI lets them read the prompt and image too on the "
                             "first step and keeps those keys and values for the rest"),
    "ScaleROPE": Rule("model.scale_rope", ("scale_x", "shift_x", "scale_y", "shift_y", "scale_t", "shift_t"),
                      tuple(P(k, k) for k in ("scale_x", "shift_x", "scale_y", "shift_y", "scale_t", "shift_t")),
                      {"model": "model"}, ("model",)),
    "CFGZeroStar": Rule("guide.cfg_zero_star", (), (), {"model": "model"}, ("model",)),
    "CFGNorm": Rule("guide.cfg_norm", ("strength", "pre_cfg"), (P("strength", "strength"), P("pre_cfg", "pre_cfg")),
                    {"model": "model"}, ("model",)),
    "RescaleCFG": Rule("guide.rescale_cfg", ("multiplier",), (P("multiplier", "multiplier"),), {"model": "model"},
                       ("model",)),
    "DifferentialDiffusion": Rule("model.differential_diffusion", ("strength",), (P("strength", "strength"),),
                                  {"model": "model"}, ("model",)),
    "VideoLinearCFGGuidance": Rule("guide.linear_cfg", ("min_cfg",), (P("min_cfg", "min_cfg"),), {"model": "model"},
                                   ("model",)),
    # sampling
    "KSampler": Rule("generate.sample", ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"),
                     (P("seed", "seed"), P("steps", "steps"), P("cfg", "cfg"), P("sampler_name", "sampler", sampler_name),
                      P("scheduler", "scheduler", scheduler_name), P("denoise", "denoise")),
                     {"model": "model", "positive": "positive", "negative": "negative", "latent_image": "latent"},
                     ("latent",), special="sampler", takes=("cfg", "fps")),
    # Inspire Pack's KSampler and KSamplerAdvanced: ComfyUI's, with A1111-style noise (GPU or CPU: Kinograph draws its
    # own noise either way, as for every seed; internal_seed, an ancestral sampler's later noise, named), per-picture
    # seeds of a batch (named where the batch holds more than one, packs/inspire.py), and a variation seed blended in
    # (not carried)
    "KSampler //Inspire": Rule("generate.sample", ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise",
                                                   "noise_mode", "batch_seed_mode", "variation_seed",
                                                   "variation_strength", "variation_method", "internal_seed"),
                               (P("seed", "seed"), P("steps", "steps"), P("cfg", "cfg"),
                                P("sampler_name", "sampler", sampler_name), P("scheduler", "scheduler", scheduler_name),
                                P("denoise", "denoise")),
                               {"model": "model", "positive": "positive", "negative": "negative",
                                "latent_image": "latent"}, ("latent",), special="inspire_sampler", takes=("cfg", "fps"),
                               ignore={"noise_mode": None, "variation_seed": None, "variation_strength": 0.0,
                                       "variation_method": None, "internal_seed": None}),
    "KSamplerAdvanced //Inspire": Rule("generate.sample", ("add_noise", "noise_seed", "steps", "cfg", "sampler_name",
                                                           "scheduler", "start_at_step", "end_at_step", "noise_mode",
                                                           "return_with_leftover_noise", "batch_seed_mode",
                                                           "variation_seed", "variation_strength", "variation_method",
                                                           "internal_seed"),
                                       (P("add_noise", "add_noise", enable), P("noise_seed", "seed"),
                                        P("steps", "steps"), P("cfg", "cfg"), P("sampler_name", "sampler", sampler_name),
                                        P("scheduler", "scheduler", scheduler_name),
                                        P("start_at_step", "start_step", positive_int),
                                        P("end_at_step", "end_step", lambda v: min(int(v), 10000)),
                                        P("return_with_leftover_noise", "leftover_noise", enable)),
                                       {"model": "model", "positive": "positive", "negative": "negative",
                                        "latent_image": "latent"}, ("latent",), special="inspire_sampler",
                                       takes=("cfg", "fps"),
                                       ignore={"noise_mode": None, "variation_seed": None, "variation_strength": 0.0,
                                               "variation_method": None, "internal_seed": None}),
    # Inspire's and Easy-Use's global seed and sampler set the widgets of every sampler in ComfyUI's editor before (or
    # after) a run: the values the file holds in each node are the ones read
    **{name: Rule(None, kind="ui", note=f"sets the {what} of every node in ComfyUI's editor: each node's own value in "
                                        "the file is used")
       for name, what in (("GlobalSeed //Inspire", "seed"), ("easy globalSeed", "seed"),
                          ("GlobalSampler //Inspire", "sampler and scheduler"))},
    # efficiency-nodes: KSampler's settings, then the model, conditionings and VAE passed on, and the latent decoded
    # when vae_decode is on (its IMAGE output)
    "KSampler (Efficient)": Rule("generate.sample", ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise",
                                                     "preview_method", "vae_decode"),
                                 (P("seed", "seed"), P("steps", "steps"), P("cfg", "cfg"),
                                  P("sampler_name", "sampler", sampler_name), P("scheduler", "scheduler", scheduler_name),
                                  P("denoise", "denoise")),
                                 {"model": "model", "positive": "positive", "negative": "negative",
                                  "latent_image": "latent"}, ("latent",), special="efficient_sampler",
                                 takes=("cfg", "fps"), ignore={"preview_method": None, "vae_decode": None}),
    "KSamplerAdvanced": Rule("generate.sample", ("add_noise", "noise_seed", "steps", "cfg", "sampler_name", "scheduler",
                                                 "start_at_step", "end_at_step", "return_with_leftover_noise"),
                             (P("add_noise", "add_noise", enable), P("noise_seed", "seed"), P("steps", "steps"),
                              P("cfg", "cfg"), P("sampler_name", "sampler", sampler_name),
                              P("scheduler", "scheduler", scheduler_name), P("start_at_step", "start_step", positive_int),
                              P("end_at_step", "end_step", lambda v: min(int(v), 10000)),
                              P("return_with_leftover_noise", "leftover_noise", enable)),
                             {"model": "model", "positive": "positive", "negative": "negative", "latent_image": "latent"},
                             ("latent",), special="sampler", takes=("cfg", "fps")),
    "SamplerCustom": Rule("generate.sample", ("add_noise", "noise_seed", "cfg"),
                          (P("add_noise", "add_noise", enable), P("noise_seed", "seed"), P("cfg", "cfg")),
                          {"model": "model", "positive": "positive", "negative": "negative", "latent_image": "latent"},
                          ("latent", None), special="sampler", takes=("sampler", "scheduler", "steps", "denoise", "cfg",
                                                                       "fps", "sigmas", "first_sigma", "s_noise",
                                                                       "s_noise_end", "noise_clip", "beta_alpha", "beta_beta")),
    "SamplerCustomAdvanced": Rule("generate.sample", (), (), {"latent_image": "latent"}, ("latent", None),
                                  special="sampler", takes=("model", "positive", "negative", "cfg", "seed", "add_noise",
                                                            "sampler", "scheduler", "steps", "denoise", "fps",
                                                            "sigmas", "first_sigma", "start_step", "end_step",
                                                            "leftover_noise", "s_noise", "s_noise_end", "noise_clip", "beta_alpha", "beta_beta")),
    # XlabsSampler is Euler on BFL's schedule (steps + 1 levels from 1 to 0, shifted by mu from the picture's 2x2
    # patch count: 0.5 at 256, 1.15 at 4096), which is FluxPipeline's, sample's default on FLUX.1. Its guidance is
    # FluxGuidance's or 1.0 without one; the negative prompt only feeds its true CFG (true_gs from step
    # timestep_to_start_cfg on), which becomes guide.true_cfg (special xlabs_sampler)
    "XlabsSampler": Rule("generate.sample", ("noise_seed", "steps", "timestep_to_start_cfg", "true_gs",
                                             "image_to_image_strength", "denoise_strength"),
                         (P("noise_seed", "seed"), P("steps", "steps")),
                         {"model": "model", "conditioning": "positive", "latent_image": "latent"}, ("latent",),
                         fixed={"sampler": "euler", "scheduler": "default"}, special="xlabs_sampler",
                         ignore={"image_to_image_strength": None, "denoise_strength": None},
                         note="XLabs draws the noise in the model's dtype on its device (bfloat16 on a GPU), "
                              "Kinograph in float32: the same seed gives a near, not equal, start. true_gs and "
                              "timestep_to_start_cfg become guide.true_cfg's scale and start where it acts. "
                              "image_to_image_strength and denoise_strength below 1 are not carried (the report "
                              "says so where they act)"),
    "KSamplerSelect": Rule(None, ("sampler_name",), (P("sampler_name", "sampler", sampler_name),), fold=True),
    # autoregressive Wan's block-by-block loop; blocks of more than one latent frame: a model.ar_block before sample
    # (special_sampler)
    "SamplerARVideo": Rule(None, ("num_frame_per_block",), (P("num_frame_per_block", "ar_block"),), fold=True,
                           fixed={"sampler": "ar_video"}),
    # its model is the one whose shift sets the levels (special_sampler: where the guider's adds a ModelSamplingSD3)
    "BasicScheduler": Rule(None, ("scheduler", "steps", "denoise"),
                           (P("scheduler", "scheduler", scheduler_name), P("steps", "steps"), P("denoise", "denoise")),
                           {"model": "schedule_model"}, fold=True),
    # the beta schedule with its own Beta(alpha, beta) (KSampler's beta is 0.6, 0.6), on its model's levels
    "BetaSamplingScheduler": Rule(None, ("steps", "alpha", "beta"),
                                  (P("steps", "steps"), P("alpha", "beta_alpha"), P("beta", "beta_beta")),
                                  {"model": "schedule_model"}, fold=True, fixed={"scheduler": "beta"}),
    # FLUX.2's schedule: Flux2Pipeline's (sample's default on a FLUX.2 model), its empirical mu from the latent's own
    # token count, which is the picture's width x height that ComfyUI hands this node
    "Flux2Scheduler": Rule(None, ("steps", "width", "height"), (P("steps", "steps"),), fold=True,
                           fixed={"scheduler": "default"}, ignore={"width": None, "height": None},
                           note="width and height are the latent's own: sample reads them from the latent"),
    "OptimalStepsScheduler": Rule(None, ("model_type", "steps", "denoise"), (P("steps", "steps"), P("denoise", "denoise")),
                                  fold=True, fixed={"scheduler": "simple"},
                                  note="Kinograph has no tabulated optimal steps; the simple schedule is used"),
    "LTXVScheduler": Rule(None, ("steps", "max_shift", "base_shift", "stretch", "terminal"), (P("steps", "steps"),),
                          fold=True, fixed={"scheduler": "default"},
                          note="LTX-Video's own scheduler (its diffusers config) replaces max_shift/base_shift/stretch/"
                               "terminal"),
    # SD-Turbo's and SDXL-Turbo's schedule: every 100th level of SD's table (the one ComfyUI gives these models),
    # written out for sample
    "SDTurboScheduler": Rule(None, ("steps", "denoise"), (P("steps", "steps"), P("denoise", "denoise")),
                             {"model": "schedule_model"}, fold=True, special="sd_turbo"),
    # Ideogram 4's logit-normal schedule for its picture size, written out for sample as ManualSigmas' is; the
    # templates' scheduler ends at 0 (a later ComfyUI adds a full_denoise widget, off: its last level 5.5e-4)
    "Ideogram4Scheduler": Rule(None, ("steps", "width", "height", "mu", "std"),
                               (P("steps", "steps"), P("width", "width"), P("height", "height"), P("mu", "mu"),
                                P("std", "std")), fold=True, special="ideogram4_scheduler"),
    # a schedule written out (LTX-Video's distilled models: Lightricks' workflows give the list): sample's sigmas
    "ManualSigmas": Rule(None, ("sigmas",), (P("sigmas", "sigmas"),), fold=True),
    # SplitSigmas' halves are one schedule's steps before and from `step`: sample's end_step (handing its leftover
    # noise on) and start_step
    "SplitSigmas": Rule(None, ("step",), (P("step", "step"),), fold=True, special="split_sigmas"),
    # the schedule with its first level replaced: sample's first_sigma (Lotus' one step from 999, timestep 999)
    "SetFirstSigma": Rule(None, ("sigma",), (P("sigma", "first_sigma"),), fold=True, special="first_sigma"),
    # Lotus' fixed prompt (the empty prompt as SD 2's text encoder reads it), shipped with Kinograph
    "LotusConditioning": Rule("condition.lotus", (), (), {}, ("conditioning",)),
    # a stored prompt from models/embeddings/; every ComfyUI template that loads one is Marigold v2's (Qwen-Image-Edit)
    "ConditioningLoader": Rule("condition.load", ("conditioning_name",), (P("conditioning_name", "name"),), {},
                               ("conditioning",), fixed={"family": "qwenimage"},
                               note="read as a Qwen-Image prompt (Marigold v2's task prompts): the file does not "
                                    "say which model it was made for"),
    # Marigold v2's depth, normals and albedo from its decoded picture
    "MarigoldV2PostProcess": Rule("depth.marigold_pass", ("prediction",), (P("prediction", "prediction"),),
                                  {"image": "video"}, ("video",), fixed={"spread": "frame"}),
    # MoGe (comfy_extras/nodes_moge.py): the loader's file goes to the inference, whose geometry each render draws
    "LoadMoGeModel": Rule(None, ("model_name",), (P("model_name", "model", moge_file),), fold=True),
    # BiRefNet (comfy_extras/nodes_background_removal.py): the loader's file goes to the node that runs it, whose
    # mask is RemoveBackground's (1 on the subject)
    "LoadBackgroundRemovalModel": Rule(None, ("bg_removal_name",), (P("bg_removal_name", "model"),), fold=True),
    "RemoveBackground": Rule("mask.remove_background", (), (), {"image": "video"}, ("mask",),
                             special="remove_background"),
    # the subject centred by its mask at the model's input size (comfy_extras/nodes_images.py), as the 3-D templates
    # frame BiRefNet's cut-out
    "ImageCropToMask": Rule("mask.crop_to_mask", ("width", "height", "pad_factor", "grow_mask", "background"),
                            (P("width", "width"), P("height", "height"), P("pad_factor", "pad_factor"),
                             P("grow_mask", "grow_mask"), P("background", "background")),
                            {"images": "video", "masks": "mask"}, ("video",)),
    "TripoSplatPreprocessImage": Rule("mask.triposplat_frame", ("erode_radius", "size"),
                                      (P("erode_radius", "erode_radius"), P("size", "size")),
                                      {"image": "video", "mask": "mask"}, ("video",)),
    "MoGeInference": Rule("depth.moge", ("resolution_level", "fov_x_degrees", "batch_size", "force_projection",
                                         "apply_mask", "refine_steps"),
                          (P("resolution_level", "resolution_level"), P("fov_x_degrees", "fov_x"),
                           P("batch_size", "batch"), P("force_projection", "force_projection"),
                           P("apply_mask", "apply_mask")),
                          {"image": "video"}, ("geometry",), ignore={"refine_steps": 0}, special="moge"),
    "MoGePanoramaInference": Rule("depth.moge_panorama", ("resolution_level", "split_resolution", "merge_resolution",
                                                         "batch_size"),
                                  (P("resolution_level", "resolution_level"), P("split_resolution", "split_resolution"),
                                   P("merge_resolution", "merge_resolution"), P("batch_size", "batch")),
                                  {"image": "video"}, ("geometry",), special="moge"),
    "MoGeGeometryToFOV": Rule("depth.moge_fov", ("axis", "unit"), (P("axis", "axis"), P("unit", "unit")),
                              {"moge_geometry": "geometry"}, ("fov", "focal_pixels")),
    "MoGeRender": Rule("depth.moge_render", ("output",), (P("output", "output"),), {"moge_geometry": "geometry"},
                       ("video",)),
    # 3-D (comfy_extras/nodes_moge.py, nodes_hunyuan3d.py, nodes_save_3d.py): one mesh a value where ComfyUI's MESH
    # holds a batch; the templates make one
    "MoGePointMapToMesh": Rule("mesh.from_points", ("batch_index", "decimation", "discontinuity_threshold", "texture"),
                               (P("batch_index", "frame"), P("decimation", "decimation"),
                                P("discontinuity_threshold", "discontinuity_threshold"), P("texture", "texture")),
                               {"moge_geometry": "geometry"}, ("mesh",)),
    "VoxelToMesh": Rule("mesh.from_voxels", ("algorithm", "threshold"),
                        (P("algorithm", "algorithm"), P("threshold", "threshold")), {"voxel": "voxel"}, ("mesh",)),
    "VoxelToMeshBasic": Rule("mesh.from_voxels", ("threshold",), (P("threshold", "threshold"),), {"voxel": "voxel"},
                             ("mesh",), fixed={"algorithm": "basic"}),
    "MeshSmoothNormals": Rule("mesh.smooth_normals", ("crease_angle",), (P("crease_angle", "crease_angle"),),
                              {"mesh": "mesh"}, ("mesh",)),
    # the second widget is the frontend's 3-D viewer state, which nothing saved reads
    "SaveGLB": Rule("io.save_glb", ("filename_prefix", "viewer"), (P("filename_prefix", "path", out_path(".glb")),),
                    {"mesh": "mesh"}, ignore={"viewer": None}, special="save_3d"),
    # pictures of a SPLAT from a camera (a turntable over `frames`); CreateCameraInfo's camera rides on its settings
    "RenderSplat": Rule("splat.render", ("width", "height", "frames", "splat_scale", "sharpen", "headlight_shading",
                                         "opacity_threshold", "render_style", "background"),
                        (P("width", "width"), P("height", "height"), P("frames", "frames"),
                         P("splat_scale", "splat_scale"), P("sharpen", "sharpen"),
                         P("headlight_shading", "headlight_shading"), P("opacity_threshold", "opacity_threshold"),
                         P("render_style", "style"), P("background", "background")),
                        {"splat": "splat", "camera_info": "camera_info", "bg_image": "bg_image"}, ("video", "mask"),
                        special="render_splat"),
    # the widgets after the mode are the orbit's yaw, pitch, distance or the look-at eye's x, y, z
    "CreateCameraInfo": Rule(None, ("mode", "yaw", "pitch", "distance", "target_x", "target_y", "target_z", "roll",
                                    "fov", "zoom", "camera_type"),
                             tuple(P(w, w) for w in ("mode", "yaw", "pitch", "distance", "target_x", "target_y",
                                                     "target_z", "roll", "fov", "zoom"))
                             + (P("camera_type", "projection"),), fold=True, special="camera_info"),
    # a SPLAT as a file value (spz, ply, ...) for SaveGLB, which saves it as it is: io.save_splat writes it
    "SplatToFile3D": Rule(None, ("format",), (P("format", "format"),), {"splat": "splat"}, ("splat",), fold=True,
                          special="splat_file"),
    # a MESH as a file value for ComfyUI's 3-D savers and viewers; Kinograph's writers and viewer read the mesh
    "MeshToFile3D": Rule(None, (), (), {"mesh": "mesh"}, ("mesh",), fold=True, special="through"),
    "GetMeshInfo": Rule(None, (), (), {"mesh": "mesh"}, ("mesh", None), fold=True, special="through",
                        note="the counts show in Kinograph's viewer (a mesh's summary); its info text is not a "
                             "value here"),
    # the second widget is the frontend's 3-D viewer state, width and height its viewport's: nothing saved reads them
    "Save3DAdvanced": Rule("io.save_glb", ("filename_prefix", "viewport_state", "width", "height"),
                           (P("filename_prefix", "path", out_path(".glb")),), {"model_3d": "mesh"},
                           ignore={"viewport_state": None, "width": None, "height": None}),
    "Preview3D": Rule(None, kind="ui", note="previews show in Kinograph's viewer (a mesh as its vertex and "
                                            "triangle counts)"),
    "Preview3DAdvanced": Rule(None, kind="ui", note="previews show in Kinograph's viewer (a mesh as its vertex and "
                                                    "triangle counts)"),
    "RandomNoise": Rule(None, ("noise_seed",), (P("noise_seed", "seed"),), fold=True),
    # VOID (comfy_extras/nodes_void.py): pass 2 starts from noise warped along RAFT's flow of pass 1's video, one
    # node here (its loader's file a param of it); the LATENT-to-NOISE node hands it to sample's noise input
    "OpticalFlowLoader": Rule(None, ("model_name",), (P("model_name", "model"),), fold=True),
    "VOIDWarpedNoise": Rule("noise.void_warped", ("width", "height", "length", "batch_size"),
                            (P("width", "width"), P("height", "height"), P("length", "length"),
                             P("batch_size", "batch")), {"video": "video"}, ("noise",), special="void_warped_noise",
                            note="ComfyUI draws the noise from its global random state, which no seed sets; here "
                                 "noise.void_warped's seed decides it. The video reaches it as 8-bit frames (ComfyUI's "
                                 "decoded floats, within half a level)"),
    "VOIDWarpedNoiseSource": Rule(None, (), (), {"warped_noise": "noise"}, fold=True),
    "VOIDInpaintConditioning": Rule("condition.void_inpaint", ("width", "height", "length", "batch_size"),
                                    (P("width", "width"), P("height", "height"), P("length", "length"),
                                     P("batch_size", "batch")),
                                    {"positive": "positive", "negative": "negative", "vae": "vae", "video": "video",
                                     "quadmask": "quadmask"}, ("positive", "negative", "latent")),
    "VOIDSampler": Rule(None, (), (), fold=True, fixed={"sampler": "void_ddim"}),
    "DisableNoise": Rule(None, (), (), fold=True, fixed={"add_noise": False}),
    "BasicGuider": Rule(None, (), (), {"model": "model", "conditioning": "positive"}, fold=True,
                        fixed={"cfg": 1.0}),
    "CFGGuider": Rule(None, ("cfg",), (P("cfg", "cfg"),),
                      {"model": "model", "positive": "positive", "negative": "negative"}, fold=True),
    # three prompts (HiDream-E1's and OmniGen2's edit templates): cond2 is guide.dual_cfg's middle prompt on the
    # model, and the guider is then CFGGuider's with cond1 as the prompt and cfg_conds as its cfg
    "DualCFGGuider": Rule("guide.dual_cfg", ("cfg_conds", "cfg_cond2_negative", "style"),
                          (P("cfg_conds", "cfg"), P("cfg_cond2_negative", "middle_cfg"), P("style", "style")),
                          {"model": "model", "cond2": "middle"}, ("model",), special="dual_cfg_guider"),
    # Ideogram 4's asymmetric CFG: the negative prompt's pass made by a second model (its unconditional transformer),
    # then a guider as CFGGuider's
    "DualModelGuider": Rule("guide.negative_model", ("cfg",), (P("cfg", "cfg"),),
                            {"model": "model", "model_negative": "negative_model"}, ("model",),
                            special="dual_model_guider"),
    # another cfg over a share of the way from noise (Ideogram 4's last steps at 3, Pixal3D's structure stage at 1)
    "CFGOverride": Rule("guide.cfg_override", ("cfg", "start_percent", "end_percent"),
                        (P("cfg", "cfg"), P("start_percent", "start"), P("end_percent", "end")), {"model": "model"},
                        ("model",)),
    # LTX-2.3 / 2.5 templates: ComfyUI's Euler ancestral at eta 0 steps to the next level and adds no noise, which
    # is Euler; at eta 1 it is euler_ancestral's full fresh noise
    "SamplerEulerAncestral": Rule(None, ("eta", "s_noise"), (P("eta", "sampler", ancestral_eta), P("s_noise", "s_noise")),
                                  fold=True),
    # ComfyUI's lcm with its per-step noise multiplier (fading from s_noise to s_noise_end) and noise clamp
    "SamplerLCM": Rule(None, ("s_noise", "s_noise_end", "noise_clip_std"),
                       (P("s_noise", "s_noise"), P("s_noise_end", "s_noise_end", lcm_noise_end),
                        P("noise_clip_std", "noise_clip")), fold=True, fixed={"sampler": "lcm"}),
    # ER-SDE-Solver-3 with ComfyUI's default (ER-SDE) noise scaler; eta only changes the other solver types
    "SamplerER_SDE": Rule(None, ("solver_type", "max_stage", "eta", "s_noise"),
                          (P("solver_type", "sampler", er_sde_solver), P("max_stage", "max_stage", full_stage),
                           P("s_noise", "s_noise")), fold=True, ignore={"eta": None}),
    # one cfg for the video and the sound where the two are equal (as the templates set them): CFGGuider's
    "LTXVDualCFGGuider": Rule(None, ("video_cfg", "audio_cfg"), (P("video_cfg", "cfg"), P("audio_cfg", "audio_cfg")),
                              {"model": "model", "positive": "positive", "negative": "negative"}, fold=True,
                              special="dual_cfg"),
    # ComfyUI's Generate Text: the text encoder's own language model (Qwen3, Gemma 3, Qwen3-VL with its picture,
    # Gemma 4 with its picture, video and sound) answers the prompt, after the system turn. Its sampling_mode "off" leaves out the sampling widgets, so the values
    # after it are read by the special. mtp (multi-token prediction) drafts tokens ahead to go faster: greedy, it
    # writes the same tokens as one at a time
    "TextGenerate": Rule("text.generate", ("prompt", "max_length", "sampling_mode", "temperature", "top_k", "top_p",
                                           "min_p", "repetition_penalty", "seed", "presence_penalty", "thinking",
                                           "use_default_template", "mtp"),
                         (P("prompt", "prompt"), P("system_prompt", "system_prompt"), P("max_length", "max_length"),
                          P("temperature", "temperature"), P("top_k", "top_k"), P("top_p", "top_p"),
                          P("min_p", "min_p"), P("repetition_penalty", "repetition_penalty"), P("seed", "seed"),
                          P("thinking", "thinking"), P("use_default_template", "use_default_template")),
                         {"clip": "text_encoder", "image": "image", "audio": "audio", "video": "video"},
                         ("text", "thinking"),
                         ignore={"presence_penalty": 0, "mtp": ("auto", "off")}, special="text_generate",
                         note="sampled by transformers' generate with the same settings but not ComfyUI's random "
                              "stream: a seed writes other words than in ComfyUI (the same words for that seed on "
                              "every run)"),
    # the prompt enhancer (Gemma rewriting the prompt): text.generate's words can feed encode.text, but what makes
    # this node LTX-2's is ComfyUI's own system prompts (one for text, one reading the picture, others for Gemma 4),
    # which text.generate does not carry; so the prompt goes as written
    "TextGenerateLTX2Prompt": Rule(None, ("prompt", "max_length", "sampling_mode", "temperature", "top_k", "top_p",
                                          "min_p", "repetition_penalty", "seed", "presence_penalty", "thinking",
                                          "use_default_template"), (P("prompt", "value"),), fold=True,
                                   special="prompt_as_written",
                                   note="the prompt is encoded as written, not rewritten by Gemma into LTX-2's long "
                                        "shot description as ComfyUI's enhancer does with its own LTX-2 system "
                                        "prompt, which Kinograph does not carry (write it in that style: subject, "
                                        "action, camera, light, sound)"),
    # AnimateDiff-Evolved
    "ADE_AnimateDiffLoaderGen1": Rule("load.animatediff", ("model_name", "beta_schedule"),
                                      (P("model_name", "motion_adapter"),), {"model": "model"}, ("model",),
                                      special="animatediff", ignore={"beta_schedule": ("autoselect",
                                                                                       "sqrt_linear (AnimateDiff)")}),
    "ADE_AnimateDiffLoaderWithContext": Rule("load.animatediff", ("model_name", "beta_schedule", "motion_scale",
                                                                  "apply_v2_models_properly"),
                                             (P("model_name", "motion_adapter"),), {"model": "model"}, ("model",),
                                             special="animatediff",
                                             ignore={"beta_schedule": ("autoselect", "sqrt_linear (AnimateDiff)"),
                                                     "motion_scale": 1.0, "apply_v2_models_properly": None}),
    "ADE_UseEvolvedSampling": Rule("load.animatediff", ("beta_schedule",), (), {"model": "model"}, ("model",),
                                   special="animatediff",
                                   ignore={"beta_schedule": ("autoselect", "sqrt_linear (AnimateDiff)")}),
    "ADE_LoadAnimateDiffModel": Rule(None, ("model_name",), (P("model_name", "motion_adapter"),), fold=True),
    "ADE_ApplyAnimateDiffModelSimple": Rule(None, (), (), fold=True, special="motion_apply"),
    "ADE_AnimateDiffLoRALoader": Rule(None, ("lora_name", "strength"),
                                      (P("lora_name", "motion_lora"), P("strength", "motion_lora_strength")), fold=True),
    "ADE_AnimateDiffUniformContextOptions": Rule(
        "context.windows", ("context_length", "context_stride", "context_overlap", "context_schedule", "closed_loop",
                            "fuse_method", "use_on_equal_length", "start_percent", "guarantee_steps"),
        (P("context_length", "length"), P("context_stride", "stride"), P("context_overlap", "overlap"),
         P("closed_loop", "closed_loop"), P("fuse_method", "fuse", lambda v: _fuse(v))),
        # AnimateDiff-Evolved's legacy node makes looped uniform windows (its one context_schedule, 'uniform', is
        # looped_uniform), so closed_loop keeps its meaning; as uniform_standard a looping GIF lost its loop.
        fold=True, fixed={"schedule": "uniform_looped"}, ignore={"context_schedule": None,
                                                                   "use_on_equal_length": False,
                                                                   "start_percent": 0.0, "guarantee_steps": 1}),
    "ADE_StandardStaticContextOptions": Rule(
        "context.windows", ("context_length", "context_overlap", "fuse_method", "use_on_equal_length", "start_percent",
                            "guarantee_steps"),
        (P("context_length", "length"), P("context_overlap", "overlap"), P("fuse_method", "fuse", lambda v: _fuse(v))),
        fold=True, fixed={"schedule": "static"}, ignore={"use_on_equal_length": False, "start_percent": 0.0,
                                                         "guarantee_steps": 1}),
    "ADE_StandardUniformContextOptions": Rule(
        "context.windows", ("context_length", "context_stride", "context_overlap", "fuse_method", "use_on_equal_length",
                            "start_percent", "guarantee_steps"),
        (P("context_length", "length"), P("context_stride", "stride"), P("context_overlap", "overlap"),
         P("fuse_method", "fuse", lambda v: _fuse(v))),
        fold=True, fixed={"schedule": "uniform_standard"}, ignore={"use_on_equal_length": False, "start_percent": 0.0,
                                                                   "guarantee_steps": 1}),
    "ADE_LoopedUniformContextOptions": Rule(
        "context.windows", ("context_length", "context_stride", "context_overlap", "closed_loop", "fuse_method",
                            "use_on_equal_length", "start_percent", "guarantee_steps"),
        (P("context_length", "length"), P("context_stride", "stride"), P("context_overlap", "overlap"),
         P("closed_loop", "closed_loop"), P("fuse_method", "fuse", lambda v: _fuse(v))),
        fold=True, fixed={"schedule": "uniform_looped"}, ignore={"use_on_equal_length": False, "start_percent": 0.0,
                                                                 "guarantee_steps": 1}),
    # images and video in and out
    # LoadImage's MASK is 1 where the picture is transparent (the part erased in the mask editor): io.load_image's
    # mask, where ComfyUI gives a 64x64 empty one for a picture without alpha, Kinograph one of the picture's size
    "LoadImage": Rule("io.load_image", ("image", "upload"), (P("image", "path", comfy_file),),
                      outputs=("image", "mask"), ignore={"upload": None}),
    # the same from ComfyUI's output folder (a picture it made, to edit further)
    "LoadImageOutput": Rule("io.load_image", ("image", "upload", "refresh", "folder"), (P("image", "path", comfy_file),),
                            outputs=("image", "mask"), ignore={"upload": None, "refresh": None, "folder": None}),
    "VHS_LoadVideo": VHS_LOAD,
    # masks and inpainting. A ComfyUI MASK is a batch of masks: a Kinograph MASK is one mask or a clip of them
    "ImageToMask": Rule("mask.from_video", ("channel",), (P("channel", "channel"),), {"image": "video"}, ("mask",)),
    "MaskToImage": Rule("mask.to_video", (), (), {"mask": "mask"}, ("video",)),
    "InvertMask": Rule("mask.invert", (), (), {"mask": "mask"}, ("mask",)),
    "GrowMask": Rule("mask.grow", ("expand", "tapered_corners"),
                     (P("expand", "pixels"), P("tapered_corners", "tapered")), {"mask": "mask"}, ("mask",)),
    "FeatherMask": Rule("mask.feather", ("left", "top", "right", "bottom"),
                        (P("left", "left"), P("top", "top"), P("right", "right"), P("bottom", "bottom")),
                        {"mask": "mask"}, ("mask",), fixed={"radius": 0.0}),
    "ImageCompositeMasked": Rule("mask.composite", ("x", "y", "resize_source"),
                                 (P("x", "x"), P("y", "y"), P("resize_source", "resize")),
                                 {"destination": "background", "source": "video", "mask": "mask"}, ("video",)),
    "MaskComposite": Rule("mask.combine", ("x", "y", "operation"),
                          (P("x", "x"), P("y", "y"), P("operation", "operation")),
                          {"destination": "mask", "source": "other"}, ("mask",)),
    "ThresholdMask": Rule("mask.threshold", ("value",), (P("value", "value"),), {"mask": "mask"}, ("mask",)),
    "SolidMask": Rule("mask.solid", ("value", "width", "height"),
                      (P("value", "value"), P("width", "width"), P("height", "height")), outputs=("mask",)),
    "CropMask": Rule("mask.crop", ("x", "y", "width", "height"),
                     (P("x", "x"), P("y", "y"), P("width", "width"), P("height", "height")), {"mask": "mask"},
                     ("mask",)),
    # LoadImageMask's alpha channel is 1 - alpha (the erased part), as LoadImage's MASK: io.load_image's mask; a
    # colour channel is read from the picture by mask.from_video
    "LoadImageMask": Rule("io.load_image", ("image", "channel", "upload"), (P("image", "path", comfy_file),),
                          outputs=("mask",), special="load_image_mask", ignore={"upload": None}),
    # ComfyUI's alpha MASK is 1 - alpha (1 where transparent) both ways: the alpha becomes the clip's transparency
    # (video.matte of the mask's picture, inverted), and is read back with mask.from_video, inverted
    "JoinImageWithAlpha": Rule("video.matte", (), (), {"image": "video", "alpha": "source"}, ("video",),
                               special="join_alpha", note=ALPHA_NOTE),
    "SplitImageWithAlpha": Rule("mask.from_video", (), (), {"image": "video"}, (None, "mask"), special="split_alpha",
                                note=ALPHA_NOTE),
    # latents: pasted at x, y pixels rounded down to whole latent pixels (ComfyUI's // 8 on SD's 8x VAE)
    "LatentCompositeMasked": Rule("latent.composite", ("x", "y", "resize_source"),
                                  (P("x", "x"), P("y", "y"), P("resize_source", "resize")),
                                  {"destination": "latent", "source": "source", "mask": "mask"}, ("latent",)),
    # LatentComposite: no mask; feather fades the pasted part in along its edges inside the destination
    "LatentComposite": Rule("latent.composite", ("x", "y", "feather"),
                            (P("x", "x"), P("y", "y"), P("feather", "feather")),
                            {"samples_to": "latent", "samples_from": "source"}, ("latent",)),
    # regional prompting: the sampler runs each combined conditioning over its area or weighted by its mask and
    # averages them as ComfyUI's does (nodes/generate/regions.py)
    "ConditioningSetArea": Rule("condition.area", ("width", "height", "x", "y", "strength"),
                                (P("width", "width"), P("height", "height"), P("x", "x"), P("y", "y"),
                                 P("strength", "strength")), {"conditioning": "conditioning"}, ("conditioning",)),
    "ConditioningSetAreaPercentage": Rule("condition.area_fraction", ("width", "height", "x", "y", "strength"),
                                          (P("width", "width"), P("height", "height"), P("x", "x"), P("y", "y"),
                                           P("strength", "strength")), {"conditioning": "conditioning"},
                                          ("conditioning",)),
    "ConditioningSetMask": Rule("condition.mask", ("strength", "set_cond_area"),
                                (P("strength", "strength"), P("set_cond_area", "bounds", mask_bounds)),
                                {"conditioning": "conditioning", "mask": "mask"}, ("conditioning",)),
    "ConditioningSetAreaStrength": Rule("condition.strength", ("strength",), (P("strength", "strength"),),
                                        {"conditioning": "conditioning"}, ("conditioning",)),
    # a prompt for part of the steps: start/end become noise levels through the model's sampling (percent_to_sigma)
    # and the sampler leaves the prompt out at steps outside them, as ComfyUI's get_area_and_mult does
    "ConditioningSetTimestepRange": Rule("condition.timestep_range", ("start", "end"),
                                         (P("start", "start"), P("end", "end")), {"conditioning": "conditioning"},
                                         ("conditioning",)),
    "ConditioningZeroOut": Rule("condition.zero", (), (), {"conditioning": "conditioning"}, ("conditioning",)),
    "ConditioningCombine": Rule("condition.combine", (), (),
                                {"conditioning_1": "conditioning", "conditioning_2": "other"}, ("conditioning",)),
    "ConditioningAverage": Rule("condition.average", ("conditioning_to_strength",),
                                (P("conditioning_to_strength", "weight"),),
                                {"conditioning_to": "conditioning", "conditioning_from": "other"}, ("conditioning",)),
    "ConditioningConcat": Rule("condition.concat", (), (), {"conditioning_to": "conditioning",
                                                            "conditioning_from": "other"}, ("conditioning",)),
    "ImagePadForOutpaint": Rule("mask.outpaint_pad", ("left", "top", "right", "bottom", "feathering"),
                                (P("left", "left"), P("top", "top"), P("right", "right"), P("bottom", "bottom"),
                                 P("feathering", "feathering")), {"image": "video"}, ("video", "mask")),
    "SetLatentNoiseMask": Rule("latent.set_mask", (), (), {"samples": "latent", "mask": "mask"}, ("latent",),
                               note=LATENT_MASK_NOTE, special="latent_noise_mask"),
    "VAEEncodeForInpaint": Rule("vae.encode_inpaint", ("grow_mask_by",), (P("grow_mask_by", "grow"),),
                                {"pixels": "video", "vae": "vae", "mask": "mask"}, ("latent",), note=LATENT_MASK_NOTE),
    # FLUX.1 Depth / Canny's control picture, HiDream-E1's picture to edit (SD's InstructPix2Pix models, which use the
    # node too, are refused there)
    "InstructPixToPixConditioning": Rule("condition.control_image", (), (),
                                         {"positive": "positive", "negative": "negative", "vae": "vae",
                                          "pixels": "video"}, ("positive", "negative", "latent")),
    "InpaintModelConditioning": Rule("condition.inpaint", ("noise_mask",), (P("noise_mask", "noise_mask"),),
                                     {"positive": "positive", "negative": "negative", "vae": "vae", "pixels": "video",
                                      "mask": "mask"}, ("positive", "negative", "latent"), note=LATENT_MASK_NOTE),
    # the same node with a typed path instead of a file picked from ComfyUI's input folder
    "VHS_LoadVideoPath": VHS_LOAD,
    "SaveAnimatedWEBP": Rule("io.save_video", ("filename_prefix", "fps", "lossless", "quality", "method"),
                             (P("filename_prefix", "path", out_path(".webp")), P("fps", "fps")), {"images": "video"},
                             fixed={"codec": "webp"}, ignore={"lossless": False, "quality": None, "method": None}),
    "SaveAnimatedPNG": Rule("io.save_video", ("filename_prefix", "fps", "compress_level"),
                            (P("filename_prefix", "path", out_path(".gif")), P("fps", "fps")), {"images": "video"},
                            fixed={"codec": "gif"}, note="written as a GIF: Kinograph writes no APNG",
                            ignore={"compress_level": None}),
    "SaveWEBM": Rule("io.save_video", ("filename_prefix", "codec", "fps", "crf"),
                     (P("filename_prefix", "path", out_path(".webm")), P("fps", "fps"),
                      P("crf", "crf", lambda v: _crf(v))), {"images": "video"}, fixed={"codec": "vp9"},
                     special="webm_codec"),
    "SaveVideo": Rule("io.save_video", ("filename_prefix", "format", "codec"),
                      (P("filename_prefix", "path", out_path(".mp4")),), {"video": "video"},
                      fixed={"codec": "h264"}, ignore={"format": ("auto", "mp4"), "codec": ("auto", "h264")},
                      takes=VIDEO_SAVE_TAKES, special="saved_passes_on"),
    "CreateVideo": Rule(None, ("fps",), (P("fps", "fps"),), fold=True, special="create_video"),
    "VHS_VideoCombine": Rule("io.save_video", ("frame_rate", "loop_count", "filename_prefix", "format", "pingpong",
                                               "save_output"),
                             (P("frame_rate", "fps"), P("crf", "crf", lambda v: _crf(v))), {"images": "video"},
                             special="vhs_combine",
                             ignore={"loop_count": 0, "pingpong": None, "save_output": None, "pix_fmt": None,
                                     "save_metadata": None, "trim_to_audio": None, "save_image": None,
                                     "audio_file": None}),
    # VHS keeps images[skip_first_images::select_every_nth], as video.every_nth keeps frames offset, offset + n, ...
    "VHS_SelectEveryNthImage": Rule("video.every_nth", ("select_every_nth", "skip_first_images"),
                                    (P("select_every_nth", "n"), P("skip_first_images", "offset")),
                                    {"images": "video"}, ("video", None)),
    # VHS's batch manager splits a long clip into runs of frames_per_batch to fit memory; Kinograph streams clips
    # in chunks itself, so the frames and the file come out the same without it
    "VHS_BatchManager": Rule(None, kind="ui", note="Kinograph streams long clips in chunks itself: no batch manager "
                                                   "is needed"),
    # what VHS read about a loaded clip: its frame rate is the clip's own (Kinograph's clips carry it)
    **{name: Rule(None, (), (), fold=True, special="video_info") for name in
       ("VHS_VideoInfo", "VHS_VideoInfoLoaded", "VHS_VideoInfoSource")},
    # LTX-Video's latent upscalers: core's loader (latent_upscale_models/) or Lightricks' (upscale_models/, with the
    # axes as switches, which Kinograph reads from the file's shapes) hands its file to latent.ltx_upsample
    "LatentUpscaleModelLoader": Rule(None, ("model_name",), (P("model_name", "model"),), fold=True),
    "LTXVLatentUpsamplerModelLoader": Rule(None, ("upscale_model", "spatial_upsample", "temporal_upsample"),
                                           (P("upscale_model", "model"),), fold=True),
    "LTXVAdainLatent": Rule("latent.adain", ("factor", "per_frame"), (P("factor", "factor"), P("per_frame", "per_frame")),
                            {"latents": "latent", "reference": "reference"}, ("latent",)),
    "LTXVLatentUpsampler": Rule("latent.ltx_upsample", (), (), {"samples": "latent", "vae": "vae"}, ("latent",),
                                special="upscale_model"),
    # upscaling: a model loader hands its file to the node that runs it, as ComfyUI's UPSCALE_MODEL does
    "UpscaleModelLoader": Rule(None, ("model_name",), (P("model_name", "model"),), fold=True),
    # SeedVR2's picture preparation and finishing (nodes/upscale/seedvr2.py), and its conditioning: the transformer's
    # own prompt embeddings and the clip's latent beside the noise (nodes/generate/seedvr2_dit.py)
    "SeedVR2Conditioning": Rule("condition.seedvr2", (), (), {"model": "model", "vae_conditioning": "latent"},
                                ("positive", "negative")),
    "SeedVR2Preprocess": Rule("upscale.seedvr2_pad", (), (), {"resized_images": "video"}, ("video",)),
    "SeedVR2PostProcessing": Rule("upscale.seedvr2_finish", ("color_correction_method",),
                                  (P("color_correction_method", "color_correction"),),
                                  {"images": "video", "original_resized_images": "reference"}, ("video",),
                                  note="lab's CIE conversion (Kinograph's colour maths) rounds otherwise than "
                                       "ComfyUI's: at most a level of 255 on a few pixels; a reference larger than the "
                                       "decoded frames is resized by OpenCV's bicubic, not torchvision's antialiased"),
    "ImageUpscaleWithModel": Rule("upscale.model", (), (), {"image": "video"}, ("video",), special="upscale_model"),
    "ImageScaleBy": Rule("upscale.resize", ("upscale_method", "scale_by"),
                         (P("upscale_method", "method", resize_method_no_bilinear), P("scale_by", "scale")),
                         {"image": "video"}, ("video",)),
    # ComfyUI's sharpen is a Gaussian unsharp mask too: Kinograph's (in upscale.resize, at scale 1) fixes sigma at 1
    "ImageSharpen": Rule("upscale.resize", ("sharpen_radius", "sigma", "alpha"), (P("alpha", "sharpen", lambda v: _at_most(v, 3.0, "alpha")),),
                         {"image": "video"}, ("video",), fixed={"scale": 1.0},
                         note="sharpened by Kinograph's unsharp mask (sigma 1, amount alpha): close to ComfyUI's "
                              "kernel of sharpen_radius and sigma, not the same"),
    "ImageScaleToTotalPixels": Rule("video.resize_pixels", ("upscale_method", "megapixels", "resolution_steps"),
                                    (P("upscale_method", "method", comfy_scale), P("megapixels", "megapixels"),
                                     P("resolution_steps", "step")), {"image": "video"}, ("video",)),
    "ImageStitch": Rule("video.stitch", ("direction", "match_image_size", "spacing_width", "spacing_color"),
                        (P("direction", "direction"), P("match_image_size", "match_size"), P("spacing_width", "spacing"),
                         P("spacing_color", "colour")), {"image1": "video", "image2": "other"}, ("video",),
                        note="match_image_size stretches image2 by lanczos: " + LANCZOS_NOTE),
    # segmentation: SAM 3 from a text prompt (ComfyUI core's SAM3_Detect; its model and prompt come from a
    # CheckpointLoaderSimple and CLIPTextEncode, which fold into mask.segment)
    "SAM3_Detect": Rule("mask.segment", ("threshold", "refine_iterations", "individual_masks"),
                        (P("threshold", "threshold"),), {"image": "video"}, ("mask", None), special="sam3_detect",
                        fixed={"objects": 1},
                        ignore={"refine_iterations": None, "individual_masks": False}, note=SAM3_NOTE),
    # its track data keeps each object apart: mask.segment_objects' OBJECTS
    "SAM3_VideoTrack": Rule("mask.segment_objects", ("detection_threshold", "max_objects", "detect_interval"),
                            (P("detection_threshold", "threshold"), P("max_objects", "objects")),
                            {"images": "video"}, ("objects",), special="sam3_detect", ignore={"detect_interval": 1},
                            note=SAM3_TRACK_NOTE),
    # SAM 2 from points (kijai's ComfyUI-segment-anything-2 and KJNodes' PointsEditor): the loader and the points
    # fold into mask.track_points
    "DownloadAndLoadSAM2Model": Rule(None, ("model", "segmentor", "device", "precision"),
                                     (P("model", "model", sam2_folder), P("segmentor", "segmentor")), fold=True,
                                     ignore={"device": None, "precision": None}),
    "PointsEditor": Rule(None, ("points_store", "coordinates", "neg_coordinates", "bbox_store", "bboxes",
                                "bbox_format", "width", "height", "normalize"), (), fold=True, special="points_editor",
                         note="its points are taken in the pixels of the picture Sam2Segmentation is given, as "
                              "ComfyUI takes them; its bbox output is carried as mask.track_points' box (one object "
                              "a box), bbox_mask and cropped_image are not"),
    "Sam2Segmentation": Rule("mask.track_points", ("keep_model_loaded", "individual_objects"), (),
                             {"image": "video"}, ("mask",), special="sam2_segmentation",
                             ignore={"keep_model_loaded": None},
                             note="the object under the points is tracked from the first frame by SAM 2's memory, as "
                                  "kijai's node does with its video segmentor; individual_objects tracks each "
                                  "positive point as an object of its own, all in one mask"),
    # kijai's interactive chain: each Sam2VideoSegmentationAddPoints adds one object's clicks on one frame (its
    # inference_state handed on), Sam2VideoSegmentation tracks them all: one mask.track_points, the clicks as x,y@frame
    # and each object_index a '|' group
    "Sam2VideoSegmentationAddPoints": Rule(None, ("frame_index", "object_index"), (), fold=True,
                                           special="sam2_add_points"),
    "Sam2VideoSegmentation": Rule("mask.track_points", ("keep_model_loaded",), (), {}, ("mask",),
                                  special="sam2_video_segmentation", ignore={"keep_model_loaded": None},
                                  note="the clicks of its Sam2VideoSegmentationAddPoints chain, each on its frame and "
                                       "object, tracked by SAM 2's memory, all objects in one mask; every frame of "
                                       "the clip gets a mask (kijai's starts at the first clicked frame)"),
    # KJNodes' mask nodes of the Wan Animate template
    "BlockifyMask": Rule("mask.blockify", ("block_size", "device"), (P("block_size", "block"),), {"masks": "mask"},
                         ("mask",), ignore={"device": None}),
    "DrawMaskOnImage": Rule("mask.fill", ("color", "device"), (P("color", "colour"),),
                            {"image": "video", "mask": "mask"}, ("video",), ignore={"device": None}),
    "ResizeImageMaskNode": Rule("video.scale", ("resize_type", "resize_type.width", "resize_type.height",
                                                "resize_type.crop", "scale_method"),
                                (P("resize_type.width", "width"), P("resize_type.height", "height"),
                                 P("resize_type.crop", "crop", lambda v: v == "center"),
                                 P("scale_method", "method", comfy_scale),
                                 P("resize_type", "resize_type", resize_type)),
                                {"input": "video"}, ("video",), special="resize_image_mask"),
    # ComfyUI's fit-inside resize with white or black bars: video.resize_pad resamples and rounds as it does
    "ResizeAndPadImage": Rule("video.resize_pad", ("target_width", "target_height", "padding_color", "interpolation"),
                              (P("target_width", "width"), P("target_height", "height"), P("padding_color", "colour"),
                               P("interpolation", "method", comfy_scale)), {"image": "video"}, ("video",)),
    # the longer side to largest_size, as Resize Image/Mask's scale longer dimension
    "ImageScaleToMaxDimension": Rule("video.resize_side", ("upscale_method", "largest_size"),
                                     (P("upscale_method", "method", comfy_scale), P("largest_size", "size")),
                                     {"image": "video"}, ("video",), fixed={"side": "longer"}),
    # every picture as a numbered PNG, as SaveImage; its png 8-bit sRGB is what io.save_frames writes
    "SaveImageAdvanced": Rule("io.save_frames", ("filename_prefix", "format", "format.bit_depth",
                                                 "format.input_color_space"),
                              (P("filename_prefix", "path", out_path("")), P("format", "format", save_format)),
                              {"images": "video"}, ignore={"format.bit_depth": ("8-bit", "32-bit float"),
                                                           "format.input_color_space": "sRGB"}),
    # ComfyUI's dataset node (comfy_extras/nodes_dataset.py): Pillow's Lanczos as video.resize_side's, but its shorter
    # side cut down to a whole pixel where video.resize_side rounds it (1000x563 to 1024: 576 high, not 577)
    "ResizeImagesByLongerEdge": Rule("video.resize_side", ("longer_edge",), (P("longer_edge", "size"),),
                                     {"images": "video"}, ("video",), fixed={"side": "longer", "method": "lanczos"},
                                     note="the shorter side is rounded to the nearest pixel; ComfyUI rounds it down, "
                                          "so it can come out one pixel longer here"),
    "ImageBlend": Rule("video.blend", ("blend_factor", "blend_mode"),
                       (P("blend_factor", "factor"), P("blend_mode", "mode")), {"image1": "video", "image2": "other"},
                       ("video",)),
    "ImageBlur": Rule("video.blur", ("blur_radius", "sigma"), (P("blur_radius", "radius"), P("sigma", "sigma")),
                      {"image": "video"}, ("video",)),
    # ComfyUI_essentials' alpha remover: Kinograph's frames are already the colour laid over black
    "ImageRemoveAlpha+": Rule("video.matte", (), (), {"image": "video"}, ("video",), fixed={"mode": "none"},
                              note="the colour goes on laid over black (Kinograph's frames with alpha are "
                                   "premultiplied); essentials keeps the colour as stored: the same where the "
                                   "picture is opaque"),
    "ImageScale": Rule("video.scale", ("upscale_method", "width", "height", "crop"),
                       (P("upscale_method", "method", comfy_scale), P("width", "width"), P("height", "height"),
                        P("crop", "crop", lambda v: v == "center")),
                       {"image": "video"}, ("video",), special="image_scale"),
    # ComfyUI-Frame-Interpolation (Fannovel16): RIFE runs as Kinograph's RIFE, from the same weight files. It has no
    # scene-cut detection, so Kinograph's is off; fast_mode only changes RIFE 4.0-4.4, whose refinement network
    # Kinograph does not run (fast_mode on)
    "RIFE VFI": Rule("interpolate.rife", ("ckpt_name", "clear_cache_after_n_frames", "multiplier", "fast_mode",
                                          "ensemble", "scale_factor"),
                     (P("ckpt_name", "model"), P("multiplier", "factor", vfi_factor), P("ensemble", "ensemble"),
                      P("scale_factor", "scale")), {"frames": "video"}, ("video",), fixed={"scene_threshold": 0.0},
                     ignore={"clear_cache_after_n_frames": None, "fast_mode": True,
                             "optional_interpolation_states": None}, special="vfi"),
    # ComfyUI's own interpolator (RIFE or FILM weights in models/frame_interpolation): the same frames as RIFE VFI
    "FrameInterpolationModelLoader": Rule(None, ("model_name",), (P("model_name", "model"),), fold=True),
    "FrameInterpolate": Rule("interpolate.rife", ("multiplier",), (P("multiplier", "factor", vfi_factor),),
                             {"images": "video"}, ("video",), fixed={"scene_threshold": 0.0},
                             special="frame_interpolate"),
    "FILM VFI": Rule("interpolate.flow", ("ckpt_name", "clear_cache_after_n_frames", "multiplier"),
                     (P("multiplier", "factor", vfi_factor),), {"frames": "video"}, ("video",),
                     fixed={"scene_threshold": 0.0, "quality": "medium"},
                     ignore={"ckpt_name": None, "clear_cache_after_n_frames": None,
                             "optional_interpolation_states": None}, special="vfi",
                     note="FILM is not in Kinograph: its optical-flow interpolation (no weights) makes the in-betweens; "
                          "interpolate.rife with RIFE weights is closer to FILM on large motion"),
    # ComfyUI's crops (comfy_extras/nodes_images.py); ImageCropV2 keeps its rectangle as one widget, a dict
    "ImageCrop": Rule("video.crop", ("width", "height", "x", "y"),
                      (P("width", "width"), P("height", "height"), P("x", "x"), P("y", "y")), {"image": "video"},
                      ("video",)),
    "ImageCropV2": Rule("video.crop", ("crop_region",), tuple(P("crop_region", k, crop_region(k, d)) for k, d in
                                                              (("x", 0), ("y", 0), ("width", 512), ("height", 512))),
                        {"image": "video"}, ("video",)),
    # each picture after the first brought to its size as ComfyUI does (video.match_size: bilinear, centre cut)
    "ColorTransfer": Rule("color.match", ("method", "source_stats", "strength"),
                          (P("method", "method", colour_method), P("source_stats", "spread", colour_spread),
                           P("strength", "strength", unit_strength)),
                          {"image_target": "video", "image_ref": "reference"}, ("video",), special="color_transfer",
                          note="Lab statistics of a copy 256 pixels wide, the frames rounded to 8 bits (ComfyUI: "
                               "kornia's Lab at full size, in float)"),
    "BatchImagesNode": Rule("video.concat", (), (), outputs=("video",), special="batch_clips"),
    "RebatchImages": Rule(None, ("batch_size", "overlap", "merge_overlap_mode"), fold=True, special="rebatch"),
    "Video Slice": Rule("video.slice", ("start_time", "duration", "strict_duration"),
                        (P("start_time", "start"), P("duration", "duration"), P("strict_duration", "strict")),
                        {"video": "video"}, ("video",)),
    "RepeatImageBatch": Rule("video.repeat", ("amount",), (P("amount", "times"),), {"image": "video"}, ("video",)),
    "ImageFromBatch": Rule("video.trim", ("batch_index", "length"), (P("batch_index", "start"), P("length", "count")),
                           {"image": "video"}, ("video",)),
    "SaveImage": Rule("io.save_frames", ("filename_prefix",), (P("filename_prefix", "path", out_path("")),),
                      {"images": "video"}, special="saved_passes_on"),
    # a sound as a file of its own: the file type from the node (or SaveAudioAdvanced's format), its quality as given
    "SaveAudio": Rule("io.save_audio", ("filename_prefix", "audioUI"), (P("filename_prefix", "path", out_path("")),),
                      {"audio": "audio"}, fixed={"format": "flac"}, ignore={"audioUI": None}, special="save_audio"),
    "SaveAudioMP3": Rule("io.save_audio", ("filename_prefix", "quality", "audioUI"),
                         (P("filename_prefix", "path", out_path("")),), {"audio": "audio"}, fixed={"format": "mp3"},
                         ignore={"audioUI": None}, special="save_audio"),
    "SaveAudioOpus": Rule("io.save_audio", ("filename_prefix", "quality", "audioUI"),
                          (P("filename_prefix", "path", out_path("")),), {"audio": "audio"}, fixed={"format": "opus"},
                          ignore={"audioUI": None}, special="save_audio"),
    "SaveAudioAdvanced": Rule("io.save_audio", ("filename_prefix", "format", "format.quality"),
                              (P("filename_prefix", "path", out_path("")),), {"audio": "audio"}, special="save_audio"),
    # newer ComfyUI's PreviewImage hands the pictures it shows on (MiniMax H3's Fun ControlNet template)
    "PreviewImage": Rule(None, kind="ui", note="previews show in Kinograph's viewer", special="preview_image"),
    # it hands its mask on too (the Anima LLLite inpainting template's mask comes through one)
    "MaskPreview": Rule(None, kind="ui", note="previews show in Kinograph's viewer", special="preview_image"),
    # its STRING output is the text it shows: a constant shown and passed on (a picked index into a formula)
    "PreviewAny": Rule(None, kind="ui", note="previews show in Kinograph's viewer", special="preview_any"),
    "ImageCompare": Rule(None, kind="ui", note="previews show in Kinograph's viewer (its compare mode shows two)"),
    # editor-only nodes of popular packs: nothing runs through them, so they must not stop an import as nodes
    # Kinograph lacks. rgthree's switchboards set other nodes' modes in ComfyUI's editor; the file holds those modes
    **{f"Fast {what} (rgthree)": Rule(None, kind="ui", note="rgthree's switchboard: the bypassed and muted nodes it set "
                                                            "are read as such")
       for what in ("Groups Bypasser", "Groups Muter", "Bypasser", "Muter")},
    "Bookmark (rgthree)": Rule(None, kind="ui", note="a canvas bookmark"),
    "Image Comparer (rgthree)": Rule(None, kind="ui", note="previews show in Kinograph's viewer"),
    "Display Any (rgthree)": Rule(None, kind="ui", note="previews show in Kinograph's viewer"),
    "ShowText|pysssss": Rule(None, kind="ui", note="previews show in Kinograph's viewer"),
    # ComfyUI's core constants: each consumer gets the value as its own setting, as ComfyUI passes it unchanged
    "PrimitiveInt": Rule(None, ("value", "control_after_generate"), (P("value", "value"),), fold=True,
                         special="constant", ignore={"control_after_generate": None}),
    "PrimitiveFloat": Rule(None, ("value",), (P("value", "value"),), fold=True, special="constant"),
    "PrimitiveBoolean": Rule(None, ("value",), (P("value", "value"),), fold=True, special="constant"),
    "PrimitiveString": Rule(None, ("value",), (P("value", "value"),), fold=True, special="constant"),
    "PrimitiveStringMultiline": Rule(None, ("value",), (P("value", "value"),), fold=True, special="constant"),
    # ComfyUI's core VIDEO type: a Kinograph clip is its frames, with its frame rate and audio
    "LoadVideo": Rule("io.load_video", ("file", "upload"), (P("file", "path", comfy_file),), outputs=("video",),
                      ignore={"upload": None}),
    # sound for Wan 2.2 S2V: the file, the wav2vec2 speech encoder and its features of the sound
    "LoadAudio": Rule("io.load_audio", ("audio", "audioUI", "upload"), (P("audio", "path", comfy_file),),
                      outputs=("audio",), ignore={"audioUI": None, "upload": None}),
    "AudioEncoderLoader": Rule("load.audio_encoder", ("audio_encoder_name",), (P("audio_encoder_name", "name"),),
                               outputs=("audio_encoder",)),
    "AudioEncoderEncode": Rule("encode.audio", (), (), {"audio_encoder": "audio_encoder", "audio": "audio"},
                               ("audio_embeds",),
                               note="a sound not at 16 kHz is resampled with ffmpeg's resampler where ComfyUI uses "
                                    "torchaudio's: the features differ by the two filters' difference only"),
    # InfiniteTalk's two speakers' voices, one after the other, for the frames' soundtrack
    "TrimAudioDuration": Rule("io.trim_audio", ("start_index", "duration"),
                              (P("start_index", "start"), P("duration", "duration")), {"audio": "audio"}, ("audio",),
                              special="trim_audio"),
    "AudioConcat": Rule("io.concat_audio", ("direction",), (P("direction", "order"),),
                        {"audio1": "first", "audio2": "second"}, ("audio",)),
    "LatentCut": Rule("latent.cut", ("dim", "index", "amount"),
                      (P("dim", "axis"), P("index", "index"), P("amount", "amount")), {"samples": "latent"}, ("latent",)),
    # Qwen-Image-Layered: each layer its own picture for VAEDecode (a picture model's frames already are); WanDancer:
    # each latent frame decoded alone (its global pass's key frames)
    "LatentCutToBatch": Rule("latent.cut_to_batch", ("dim", "slice_size"), (P("slice_size", "size"),),
                             {"samples": "latent"}, ("latent",), ignore={"dim": "t"}),
    "LatentConcat": Rule("latent.concat", ("dim",), (P("dim", "axis"),), {"samples1": "latent", "samples2": "other"},
                         ("latent",)),
    "GetVideoComponents": Rule(None, (), (), {"video": "video"}, fold=True, special="video_components"),
    # a switch and arithmetic on constants: their results are known from the file, as ComfyUI knows them before
    # it runs anything (a switch or value that depends on a running node stays not mapped)
    "ComfySwitchNode": Rule(None, ("switch",), (P("switch", "switch"),), fold=True, special="switch"),
    "ComfyMathExpression": Rule(None, ("expression",), (P("expression", "expression"),), fold=True, special="math"),
    # ComfyUI's value nodes over constants (their inputs in the file, or constants linked in): computed as its
    # code computes them, each result handed to the settings it feeds. Fed by a running node (an LLM's text, a
    # picture's size) they stay not mapped.
    "ResolutionSelector": Rule(None, ("aspect_ratio", "megapixels", "multiple", "minimum"), fold=True,
                               special="resolution"),
    "StringConcatenate": Rule(None, ("string_a", "string_b", "delimiter"), fold=True, special="concatenate"),
    "StringReplace": Rule(None, ("string", "find", "replace"), fold=True, special="replace"),
    "RegexExtract": Rule(None, ("string", "regex_pattern", "mode", "case_insensitive", "multiline", "dotall",
                                "group_index"), fold=True, special="regex_extract"),
    "RegexReplace": Rule(None, ("string", "regex_pattern", "replace", "case_insensitive", "multiline", "dotall",
                                "count"), fold=True, special="regex_replace"),
    "JsonExtractString": Rule(None, ("json_string", "key"), fold=True, special="json_extract"),
    "StringCompare": Rule(None, ("string_a", "string_b", "mode", "case_sensitive"), fold=True, special="compare"),
    "StringFormat": Rule(None, ("f_string",), fold=True, special="string_format"),
    # the Color Picker: its integer, hex text and transparency
    "ColorToRGBInt": Rule(None, ("color",), fold=True, special="color_int"),
    "ImageHistogram": Rule(None, kind="ui", note="its histograms are what ComfyUI's Curve Editor draws behind the "
                                                 "curve; Kinograph's viewer draws none"),
    # ComfyUI's lists (comfy_extras/nodes_toolkit.py): a CreateList's items are known on import, so an item picked
    # from it by a constant index is that item's own link (a clip, a model, a number); a loop's values are not
    "CreateList": Rule(None, (), fold=True, special="create_list"),
    "GetItemFromList": Rule(None, ("index",), fold=True, special="item_from_list"),
    # the file keeps the option picked, its index, then the editor's list of options
    "CustomCombo": Rule(None, ("choice", "index"), fold=True, special="custom_combo"),
    "ComfyNumberConvert": Rule(None, ("value",), fold=True, special="number_convert"),
    # the shot's words for a prompt (Qwen-Image-Edit's multi-angle LoRA); its camera_info is for 3D nodes
    "CameraAngle": Rule(None, ("horizontal_angle", "vertical_angle", "zoom", "view"), fold=True,
                        special="camera_angle", ignore={"view": None}),
    "SeedNode": Rule(None, ("seed", "control_after_generate"), (P("seed", "value"),), fold=True, special="constant",
                     ignore={"control_after_generate": None}),
    # kijai's ComfyUI-KJNodes, in most community video graphs (WanVideoWrapper's, HunyuanVideo's). ImageResizeKJ's
    # widgets changed with the pack: width_input and height_input were widgets (7 values, then 8 with crop), and
    # since they became link-only inputs crop follows divisible_by (6 values); special_image_resize_kj reads which
    "ImageResizeKJ": Rule("video.resize", ("width", "height", "upscale_method", "keep_proportion", "divisible_by",
                                           "width_input", "height_input", "crop"),
                          (P("upscale_method", "method", resize_method), P("width", "width"), P("height", "height")),
                          {"image": "video"}, ("video", None, None), special="image_resize_kj"),
    # kijai's ComfyUI-WanVideoWrapper: its own loaders, T5 encoder, sampler and decoder around the Wan 2.1 / 2.2 weights
    # that ComfyUI's native nodes load too. Widget orders from the pack's nodes_model_loading.py, nodes.py and
    # nodes_sampler.py (its later versions add widgets at the end)
    "WanVideoModelLoader": Rule("load.diffusion_model", ("model", "base_precision", "quantization", "load_device",
                                                         "attention_mode"),
                                (P("model", "name"), P("quantization", "weight_dtype", wrapper_quantization)),
                                outputs=("model",), special="wan_wrapper_loader",
                                ignore={"base_precision": None, "load_device": None, "attention_mode": None}),
    "WanVideoLoraSelect": Rule(None, ("lora", "strength", "low_mem_load", "merge_loras"),
                               (P("lora", "path"), P("strength", "strength")), fold=True, special="wan_wrapper_lora",
                               ignore={"low_mem_load": None, "merge_loras": None}),
    "WanVideoVAELoader": Rule("load.vae", ("model_name", "precision"), (P("model_name", "name"),), outputs=("vae",),
                              ignore={"precision": None}),
    "LoadWanVideoT5TextEncoder": Rule("load.text_encoder", ("model_name", "precision", "load_device", "quantization"),
                                      (P("model_name", "name", wrapper_t5),), outputs=("text_encoder",),
                                      fixed={"type": "wan"},
                                      ignore={"precision": None, "load_device": None, "quantization": None}),
    # both prompts in one node: encode.text's text and negative, handed to the sampler together
    "WanVideoTextEncode": Rule("encode.text", ("positive_prompt", "negative_prompt", "force_offload", "use_disk_cache",
                                               "device"),
                               (P("positive_prompt", "text"), P("negative_prompt", "negative")), {"t5": "text_encoder"},
                               fixed={"weighting": "comfy"}, special="wan_wrapper_text",
                               ignore={"force_offload": None, "use_disk_cache": None, "device": None}),
    "WanVideoEmptyEmbeds": Rule("latent.empty", ("width", "height", "num_frames"),
                                LATENT_SIZE + (P("num_frames", "frames"),), outputs=("latent",), special="empty_latent"),
    # the flow shift becomes model.flow_shift before sample; `scheduler` names both sampler and schedule
    "WanVideoSampler": Rule("generate.sample", ("steps", "cfg", "shift", "seed", "force_offload", "scheduler",
                                                "riflex_freq_index", "denoise_strength", "batched_cfg", "rope_function",
                                                "start_step", "end_step", "add_noise_to_samples"),
                            (P("steps", "steps"), P("cfg", "cfg"), P("seed", "seed"),
                             P("denoise_strength", "denoise", wrapper_denoise)),
                            special="wan_wrapper_sampler",
                            ignore={"force_offload": None, "riflex_freq_index": 0, "batched_cfg": None,
                                    "rope_function": None},
                            note="the wrapper's schedulers (diffusers' and Wan's own) place their sigmas by their own "
                                 "formulas; Kinograph's simple (or beta) schedule at the same shift is close to them, "
                                 "not identical"),
    "WanVideoDecode": Rule("vae.decode", ("enable_vae_tiling", "tile_x", "tile_y", "tile_stride_x", "tile_stride_y",
                                          "normalization"), (), {"samples": "latent", "vae": "vae"}, ("video",),
                           ignore={"enable_vae_tiling": None, "tile_x": None, "tile_y": None, "tile_stride_x": None,
                                   "tile_stride_y": None, "normalization": "default"}),
    # LoRAs (and block swap) set on an already loaded model
    "WanVideoSetLoRAs": Rule(None, (), (), {"model": "model"}, special="wan_wrapper_set_loras"),
    "WanVideoSetBlockSwap": Rule(None, (), (), {"model": "model"}, special="wan_wrapper_set_loras"),
    # the wrapper's memory and speed settings, which its loader and sampler take: Kinograph places and runs the model
    # by its own rules (a cache skips model calls, so ComfyUI's picture with one differs a little from a full run)
    **{name: Rule(None, kind="ui", note="WanVideoWrapper's memory / speed setting: Kinograph runs every step in full "
                                        "with its own memory placement")
       for name in ("WanVideoBlockSwap", "WanVideoTorchCompileSettings", "WanVideoVRAMManagement", "WanVideoTeaCache",
                    "WanVideoMagCache", "WanVideoEasyCache")},
    # KJNodes' constants (its graphs' shared step counts and sizes), known from the file as ComfyUI's primitives are
    "INTConstant": Rule(None, ("value",), (P("value", "value"),), fold=True, special="constant"),
    "FloatConstant": Rule(None, ("value",), (P("value", "value"),), fold=True, special="constant"),
    "StringConstant": Rule(None, ("string",), (P("string", "value"),), fold=True, special="constant"),
    # ComfyUI-Easy-Use's typed values
    **{name: Rule(None, ("value",), (P("value", "value"),), fold=True, special="constant")
       for name in ("easy int", "easy string", "easy boolean")},
    "easy float": Rule(None, ("value",), (P("value", "value", easy_float),), fold=True, special="constant"),
    "easy seed": Rule(None, ("seed",), (P("seed", "value"),), fold=True, special="constant"),
    # shows its input in ComfyUI's editor and hands it on (a prompt built, shown, then encoded)
    "easy showAnything": Rule(None, kind="ui", note="previews show in Kinograph's viewer", special="easy_show_anything"),
    # Easy-Use's LoRA stack (up to ten; its LORA_STACK goes to a loader's optional_lora_stack or CR Apply LoRA Stack)
    "easy loraStack": Rule(None, ("toggle", "mode", "num_loras") + tuple(
        f"lora_{i}_{k}" for i in range(1, 11) for k in ("name", "strength", "model_strength", "clip_strength")),
        special="easy_lora_stack"),
    # Easy-Use's ControlNet on a pipe's prompts: ControlNetApplyAdvanced (from 0 to 1, or ADV's start and end)
    **{name: Rule(None, ("control_net_name", "strength") + extra + ("scale_soft_weights",),
                  (P("strength", "strength"),) + tuple(P(k, k.split("_")[0]) for k in extra),
                  special="easy_controlnet", ignore={"scale_soft_weights": (1, 1.0)})
       for name, extra in (("easy controlnetLoader", ()),
                           ("easy controlnetLoaderADV", ("start_percent", "end_percent")))},
    # Easy-Use's pipe (PIPE_LINE): a bundle of model, prompts, VAE, CLIP, latent and sampler settings passed along;
    # its loader is Efficient Loader's bundle, its kSampler a sample and a decode (packs/easyuse.py)
    "easy pipeIn": Rule(None, (), (), special="easy_pipe_in"),
    "easy pipeOut": Rule(None, (), (), special="easy_pipe_out"),
    "easy fullLoader": Rule("load.model", ("ckpt_name", "config_name", "vae_name", "clip_skip", "lora_name",
                                           "lora_model_strength", "lora_clip_strength", "resolution",
                                           "empty_latent_width", "empty_latent_height", "positive",
                                           "positive_token_normalization", "positive_weight_interpretation",
                                           "negative", "negative_token_normalization",
                                           "negative_weight_interpretation", "batch_size", "a1111_prompt_style"),
                            (P("ckpt_name", "path"),), special="easy_full_loader",
                            ignore={"config_name": "Default", "a1111_prompt_style": False}),
    # the same loader with fewer widgets and outputs (pipe, model, vae): a1111Loader weighs prompts as A1111 with mean
    # normalization, comfyLoader as ComfyUI
    **{name: Rule("load.model", ("ckpt_name", "vae_name", "clip_skip", "lora_name", "lora_model_strength",
                                 "lora_clip_strength", "resolution", "empty_latent_width", "empty_latent_height",
                                 "positive", "negative", "batch_size") + extra,
                  (P("ckpt_name", "path"),), special="easy_full_loader", ignore={"a1111_prompt_style": False})
       for name, extra in (("easy a1111Loader", ("a1111_prompt_style",)), ("easy comfyLoader", ()))},
    "easy preSampling": Rule(None, ("steps", "cfg", "sampler_name", "scheduler", "denoise", "seed"),
                             (P("steps", "steps"), P("cfg", "cfg"), P("sampler_name", "sampler", sampler_name),
                              P("scheduler", "scheduler", scheduler_name), P("denoise", "denoise"), P("seed", "seed")),
                             special="easy_pre_sampling"),
    "easy kSampler": Rule("generate.sample", ("image_output", "link_id", "save_prefix"), (), special="easy_ksampler",
                          ignore={"link_id": None}),
    # city96's ComfyUI-GGUF: Kinograph's loaders read .gguf diffusion models themselves (dequantised as loaded)
    "UnetLoaderGGUF": Rule("load.diffusion_model", ("unet_name",), (P("unet_name", "name"),), outputs=("model",)),
    "UnetLoaderGGUFAdvanced": Rule("load.diffusion_model", ("unet_name", "dequant_dtype", "patch_dtype",
                                                            "patch_on_device"),
                                   (P("unet_name", "name"),), outputs=("model",),
                                   ignore={"dequant_dtype": "default", "patch_dtype": "default",
                                           "patch_on_device": None}),
    "CLIPLoaderGGUF": Rule("load.text_encoder", ("clip_name", "type"),
                           (P("clip_name", "name", gguf_text_encoder), P("type", "type", clip_type)),
                           outputs=("text_encoder",)),
    "DualCLIPLoaderGGUF": Rule("load.text_encoder", ("clip_name1", "clip_name2", "type"),
                               (P("clip_name1", "name", gguf_text_encoder), P("clip_name2", "name2", gguf_text_encoder),
                                P("type", "type", clip_type)), outputs=("text_encoder",)),
    # ComfyUI-GGUF's three- and four-file loaders have no type widget: ComfyUI reads three files as SD3's encoders
    # and four as HiDream-I1's, as TripleCLIPLoader and QuadrupleCLIPLoader fix them
    "TripleCLIPLoaderGGUF": Rule("load.text_encoder", ("clip_name1", "clip_name2", "clip_name3"),
                                 tuple(P(f"clip_name{i}", f"name{i if i > 1 else ''}", gguf_text_encoder)
                                       for i in (1, 2, 3)), outputs=("text_encoder",), fixed={"type": "sd3"}),
    "QuadrupleCLIPLoaderGGUF": Rule("load.text_encoder", ("clip_name1", "clip_name2", "clip_name3", "clip_name4"),
                                    tuple(P(f"clip_name{i}", f"name{i if i > 1 else ''}", gguf_text_encoder)
                                          for i in (1, 2, 3, 4)), outputs=("text_encoder",), fixed={"type": "hidream"}),
    "Seed (rgthree)": Rule(None, ("seed",), (P("seed", "value", rgthree_seed),), fold=True, special="constant"),
    # rgthree's Power Prompt: CLIPTextEncode of its prompt (when a CLIP is connected) and the text itself; the full one
    # first applies the <lora:name:strength> tags the prompt holds to its model and clip and takes them out of the text
    "Power Prompt - Simple (rgthree)": Rule("encode.text", ("prompt", "insert_embedding", "insert_saved"),
                                            (P("prompt", "text"),), {"opt_clip": "text_encoder"}, ("positive",),
                                            fixed={"weighting": "comfy"}, special="power_prompt",
                                            ignore={"insert_embedding": None, "insert_saved": None}),
    "Power Prompt (rgthree)": Rule("encode.text", ("prompt", "insert_lora", "insert_embedding", "insert_saved"),
                                   (P("prompt", "text"),), {"opt_clip": "text_encoder"}, ("positive",),
                                   fixed={"weighting": "comfy"}, special="power_prompt",
                                   ignore={"insert_lora": None, "insert_embedding": None, "insert_saved": None}),
    # WAS Node Suite (was-node-suite-comfyui): its sampler is ComfyUI's KSampler given a SEED (its Seed node's value),
    # its resize Pillow's, its save a file per frame. Widget orders from WAS_Node_Suite.py
    "KSampler (WAS)": Rule("generate.sample", ("steps", "cfg", "sampler_name", "scheduler", "denoise"),
                           (P("seed", "seed"), P("steps", "steps"), P("cfg", "cfg"),
                            P("sampler_name", "sampler", sampler_name), P("scheduler", "scheduler", scheduler_name),
                            P("denoise", "denoise")),
                           {"model": "model", "positive": "positive", "negative": "negative", "latent_image": "latent"},
                           ("latent",), special="sampler", takes=("cfg", "fps")),
    "Seed": Rule(None, ("seed",), (P("seed", "value"),), fold=True, special="was_seed"),
    "Text Multiline": Rule(None, ("text",), (P("text", "value"),), fold=True, special="constant"),
    "Image Resize": Rule("video.resize", ("mode", "supersample", "resampling", "rescale_factor", "resize_width",
                                          "resize_height"),
                         (P("resampling", "method", was_resampling),), {"image": "video"}, ("video",),
                         special="was_image_resize"),
    "Latent Upscale by Factor (WAS)": Rule("latent.upscale", ("mode", "factor", "align"),
                                           (P("factor", "scale"),), {"samples": "latent"}, ("latent",),
                                           special="was_latent_upscale"),
    "Image Save": Rule("io.save_frames", ("output_path", "filename_prefix"),
                       (P("filename_prefix", "path", out_path("")),), {"images": "video"},
                       note="its output_path, numbering and file format are not carried: the frames are written as "
                            "PNGs under the workflow's out/ folder, named by filename_prefix"),
    "ImageResizeKJv2": Rule("video.resize", ("width", "height", "upscale_method", "keep_proportion", "pad_color",
                                             "crop_position", "divisible_by", "device"),
                            (P("upscale_method", "method", resize_method), P("width", "width"), P("height", "height")),
                            {"image": "video"}, ("video", None, None, None), special="image_resize_kjv2",
                            ignore={"device": None}),
    "GetImageSizeAndCount": Rule("video.size", (), (), {"image": "video"}, (None, "width", "height", "frames"),
                                 special="image_size_count"),
    # its latents' frames from start_index on (num_frames -1: to the end); a video latent's frames are its 3rd axis
    "GetLatentRangeFromBatch": Rule("latent.trim", ("start_index", "num_frames"), (P("start_index", "amount"),),
                                    {"latents": "latent"}, ("latent",), special="latent_range"),
}


# ComfyUI nodes Kinograph does not map, with what to do instead (the import report says it on the node's line)
FACEID = ("not mapped: IP-Adapter FaceID reads a face identity from InsightFace (a separate face-recognition "
          "model, with a LoRA of its own), which Kinograph does not run. Use IPAdapterUnifiedLoader's PLUS FACE "
          "preset (ip-adapter-plus-face_sd15 / _sdxl_vit-h) on a crop of the face, with IPAdapter or "
          "IPAdapterAdvanced")
KJ_PATCH = ("not mapped: a KJNodes patch of how ComfyUI runs the model (its attention kernel, torch.compile), "
            "which Kinograph's own loaders choose for themselves: bypass it (`kinograph import --bypass-unmapped`, "
            "or link its model input on)")
INSTEAD = {
    **{name: KJ_PATCH for name in ("PathchSageAttentionKJ", "TorchCompileModelWanVideo", "TorchCompileModelHyVideo",
                                   "TorchCompileModelFluxAdvanced")},
    **{name: f"not mapped: WanVideoWrapper's {what}, which Kinograph's Wan sampling does not do; delete the node to "
             "sample without it" for name, what in (
        ("WanVideoSLG", "skip layer guidance of its own kind (its blocks skipped in the negative prompt's pass; "
                        "Kinograph's guide.skip_layer_guidance is SD3's kind, an extra pass)"),
        ("WanVideoEnhanceAVideo", "Enhance-A-Video (FETA) attention boost"),
        ("WanVideoContextOptions", "context windows"),
        ("WanVideoExperimentalArgs", "experimental sampling options"))},
    **{name: "not mapped: the wrapper's image-to-video encoding (its own embeds layout); open the same model in "
             "ComfyUI's native graph (WanImageToVideo with CLIPVisionEncode, the Wan 2.1 / 2.2 image-to-video "
             "templates), which Kinograph imports" for name in (
        "WanVideoImageToVideoEncode", "WanVideoImageClipEncode", "WanVideoClipVisionEncode", "LoadWanVideoClipTextEncoder")},
    # ltdrdata's Impact Pack: detectors (YOLO / mmdet / SAM 1) and the detailers that redraw each found crop
    **{name: "not mapped: Impact Pack's detailers find faces or objects with a YOLO / mmdet detector and redraw each "
             "crop larger, which Kinograph has no detector for. Mask the subject with mask.segment (SAM 3, a text "
             "prompt such as \"face\") or mask.track_points (SAM 2, clicked points), then redraw it with an "
             "inpainting sample (SetLatentNoiseMask / InpaintModelConditioning import as Kinograph's mask nodes)"
       for name in ("FaceDetailer", "FaceDetailerPipe", "DetailerForEach", "DetailerForEachDebug", "SAMLoader",
                    "MMDetLoader", "UltralyticsDetectorProvider", "BboxDetectorSEGS", "SegmDetectorSEGS",
                    "SAMDetectorCombined", "SAMDetectorSegmented", "ImpactSimpleDetectorSEGS", "ToBasicPipe",
                    "ToDetailerPipe", "BasicPipeToDetailerPipe")},
    # ComfyUI's loops: unrolled on import where the number of passes is in the file or counted by a node
    # (app.comfyui.loops, loops_running); the others are these
    **{name: "not mapped: ComfyUI's loop nodes (StartLoop, EndLoop) run part of the graph again and again as it runs; "
             "a Kinograph workflow has no loops, and a loop is unrolled on import (its part copied once per pass) "
             "where its number of passes is in the file, or a node of the file counts a simple loop's passes as the "
             "workflow runs (up to 16). Run the part once per pass (one workflow per segment) instead" for name in ("StartLoop", "EndLoop")},
    **{name: "not mapped yet: SeedVR2's temporal chunks (sampling a long clip's latent a few frames at a time, "
              "crossfaded back) are not run by Kinograph, which restores the whole clip in one pass; leave the video "
              "template's chunking switch off, and trim a clip too long for memory (its trim_video) into parts"
       for name in ("SeedVR2TemporalChunk", "SeedVR2TemporalMerge")},
    "LeapfusionHunyuanI2VPatcher": "not mapped: Leapfusion's image-to-video LoRA for HunyuanVideo 1.0 needs its "
                                   "first frame's latent patched into every step, which Kinograph does not do; use "
                                   "HunyuanVideo's own image-to-video model (HunyuanImageToVideo, condition."
                                   "hunyuan_i2v)",
    **{name: FACEID for name in ("IPAdapterFaceID", "IPAAdapterFaceIDBatch", "IPAdapterFaceIDKolors",
                                 "IPAdapterUnifiedLoaderFaceID", "IPAdapterInsightFaceLoader")},
    "IPAdapterApply": "not mapped: the IPAdapter_plus v1 node (its v2 removed it). Open the workflow in ComfyUI with a "
                      "current ComfyUI_IPAdapter_plus, put IPAdapterAdvanced (or IPAdapter) in its place, save and "
                      "import that",
    **{name: "not mapped: embeddings saved to or loaded from a file (ComfyUI's output/input folders) are not in "
             "Kinograph yet; connect the pictures to IPAdapterEncoder (or IPAdapterAdvanced) instead" for name in (
        "IPAdapterSaveEmbeds", "IPAdapterLoadEmbeds")},
    **{name: "not mapped: tiled references, per-layer weight strings, boosts and IPADAPTER_PARAMS are not in "
             "Kinograph yet; IPAdapterAdvanced (every weight type, the precise ones included), IPAdapterBatch and "
             "IPAdapterStyleComposition are" for name in (
        "IPAdapterTiled", "IPAdapterTiledBatch", "IPAdapterMS", "IPAdapterFromParams", "IPAdapterPreciseComposition",
        "IPAdapterPreciseStyleTransfer", "IPAdapterPreciseStyleTransferBatch", "IPAdapterPreciseCompositionBatch",
        "IPAdapterClipVisionEnhancer", "IPAdapterClipVisionEnhancerBatch")},
    # XmYx/deforum-comfy-nodes (its node_list.json): one frame per queued prompt, kept between runs in caches
    **{name: "not mapped: Deforum's ComfyUI nodes make one frame per queued run; Kinograph makes the whole animation "
             "in one node, generate.feedback (motion.camera_path with schedules per_frame for the motion, encode.text "
             "for the prompt schedule): build that, or save the settings from Deforum in A1111 / Forge and `kinograph "
             "import` the .txt" for name in (
        "DeforumBaseParamsNode", "DeforumAnimParamsNode", "DeforumTranslationParamsNode", "DeforumDepthParamsNode",
        "DeforumNoiseParamsNode", "DeforumColorParamsNode", "DeforumDiffusionParamsNode", "DeforumCadenceParamsNode",
        "DeforumHybridParamsNode", "DeforumHybridScheduleNode", "DeforumPromptNode", "DeforumAreaPromptNode",
        "DeforumSingleSampleNode", "DeforumCacheLatentNode", "DeforumGetCachedLatentNode", "DeforumSeedNode",
        "DeforumIteratorNode", "DeforumKSampler", "DeforumFrameWarpNode", "DeforumColorMatchNode",
        "DeforumAddNoiseNode", "DeforumHybridMotionNode", "DeforumSetVAEDownscaleRatioNode", "DeforumLoadVideo",
        "DeforumVideoSaveNode", "DeforumFILMInterpolationNode", "DeforumSimpleInterpolationNode",
        "DeforumCadenceNode", "DeforumConditioningBlendNode")},
    # comfyui_controlnet_aux's preprocessors whose networks Kinograph does not run, with the nearest that it does
    **{name: f"not mapped: {net} is not in Kinograph; normals.bae (BAE-NormalMapPreprocessor, from "
             "lllyasviel/Annotators' scannet.pt) draws the normal map control_v11p_sd15_normalbae was trained on, "
             "normals.midas MiDaS's" for name, net in (
        ("DSINE-NormalMapPreprocessor", "DSINE (dsine.pt)"),
        ("Metric3D-NormalMapPreprocessor", "Metric3D's ViT (metric_depth_vit_*.pth)"))},
    **{name: f"not mapped: {net} is not in Kinograph; {instead}" for name, net, instead in (
        ("TEEDPreprocessor", "TEED (7_model.pth)", "lines.pidinet or lines.hed (PiDiNetPreprocessor, HEDPreprocessor) "
                                                   "draw soft edges for the same softedge ControlNets"),
        ("AnyLineArtPreprocessor_aux", "AnyLine (TEED's MTEED.pth mixed with line art)",
         "lines.standard or lines.lineart (LineartStandardPreprocessor, LineArtPreprocessor) draw line art for the "
         "same lineart ControlNets"),
        ("DiffusionEdge_Preprocessor", "DiffusionEdge (a diffusion model that draws edges)",
         "lines.pidinet or lines.hed draw soft edges, lines.lineart line art"))},
}


def _bislerp():
    raise Approx("bilinear", "bislerp is not in Kinograph; bilinear used")


def _fuse(v):
    v = str(v).replace("-", "_")
    if v in ("flat", "pyramid", "overlap_linear"):
        return v
    raise Approx("pyramid", f"fuse method {v!r} is not in Kinograph; pyramid used")


def _at_most(v, top, name):
    if v > top:
        raise Approx(top, f"{name} {v:g} is above Kinograph's {top:g}; {top:g} used")
    return v


def _crf(v):
    v = int(v)
    if v > 51:
        raise Approx(51, f"crf {v} is above Kinograph's 51")
    return v


def widget_names(class_type: str) -> Optional[Tuple[str, ...]]:
    rule = RULES.get(class_type)
    return rule.widgets if rule is not None else None
