"""What the loader nodes do: load a family through the model manager and hand out its parts."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from graph_engine import NodeError
from graph_engine.shipped import resource

MINI_DEFAULT = resource("models", "kinograph-mini")


def load_parts(ctx, family: str, path: str, *, dtype: str = "auto", offload: str = "auto",
               motion_lora: str = "", motion_lora_strength: float = 1.0, given: Optional[dict] = None,
               **opts) -> dict:
    """{"model", "vae", "text_encoder", "image_encoder"} handles (None for parts the family lacks).

    `given`: parts loaded from their own files (split loaders); they replace the folder's, and with no
    path they are the whole model. A path to a single diffusion-model file loads just the denoiser."""
    from nodes.generate.model_manager import detect_family, manager_for, resolve_model_path
    given = {k: v for k, v in (given or {}).items() if v is not None}
    if family == "auto" and path:
        resolved = _resolve_any(path)
        found, why = detect_family(resolved)
        if found in (None, "motion"):
            raise NodeError(f"cannot tell which model family {path} is ({why}); use the family's own loader "
                            "(load.animatediff, load.wan, ...)")
        # the file found, whose family's folder may be another: a Wan denoiser in checkpoints/ was looked for by
        # its name in diffusion_models/ and called missing
        family, path = found, str(resolved)
    for part, handle in given.items():
        if handle.family != family:
            raise NodeError(f"the {part} input is a {handle.family} part; load.{family} needs {family} parts")
    if (given and not path) or (path and _is_denoiser_file(path, family)):
        out = {"model": None, "vae": None, "text_encoder": None, "image_encoder": None}
        if path:
            from nodes.generate.split import load_diffusion_model
            out["model"] = load_diffusion_model(manager_for(ctx), path, dtype if dtype in ("fp16", "bf16", "fp32")
                                                else "default", ctx.device)
            if out["model"].family != family:
                raise NodeError(f"{path} is a {out['model'].family} model, not {family}; use "
                                f"load.{out['model'].family} or load.diffusion_model")
        out.update(given)
        lacking = [part for part in ("text_encoder", "vae") if out[part] is None]
        if path and lacking:
            # The engine's "input is empty" comes later, at the node that needs the part; the loader knows why.
            ctx.log(f"{Path(path).name} holds the denoiser alone, so load.{family}'s {' and '.join(lacking)} "
                    f"{'are' if len(lacking) > 1 else 'is'} empty: connect "
                    + " and ".join(SPLIT_PARTS.get(family, {}).get(p, f"load.{p}") for p in lacking)
                    + f" to load.{family}'s inputs")
        if out["model"] is None:
            raise NodeError(f"load.{family} has no model: set `path` (a folder or a diffusion model file) or "
                            "connect load.diffusion_model to its model input")
        return out
    if family == "mini" and not path:
        path = str(MINI_DEFAULT)
    mm = manager_for(ctx)
    handle = mm.load(family, path, dtype=dtype, device=ctx.device, offload=offload,
                     **{k: v for k, v in opts.items() if v})
    if motion_lora:
        handle = handle.with_lora(str(resolve_model_path(motion_lora, "loras", "motion LoRA")), motion_lora_strength)
    parts = mm.components(handle)
    ctx.report(family=family, model=handle.path, dtype=handle.dtype)
    lacking = [p for p in SPLIT_PARTS.get(family, {}) if parts.get(p) is None and p not in given]
    if lacking:         # a checkpoint without its text encoders (sd3.5_large.safetensors)
        ctx.log(f"{Path(path).name} holds no {' and no '.join(lacking)}: connect "
                + " and ".join(SPLIT_PARTS[family][p] for p in lacking) + f" to load.{family}'s inputs")
    return {"model": handle, **parts, **given}


# What ComfyUI users load beside a family's denoiser file, named in the loader's note when they are missing.
SPLIT_PARTS = {"flux": {"text_encoder": "load.text_encoder (clip_l.safetensors + t5xxl_fp16.safetensors, type flux)",
                        "vae": "load.vae (ae.safetensors)"},
               "sd3": {"text_encoder": "load.text_encoder (clip_l, clip_g and t5xxl_fp16.safetensors, type sd3)",
                       "vae": "load.vae (an SD3 VAE, family sd3)"},
               "qwenimage": {"text_encoder": "load.text_encoder (qwen_2.5_vl_7b_fp8_scaled.safetensors, type qwen_image)",
                             "vae": "load.vae (qwen_image_vae.safetensors)"},
               "ideogram4": {"text_encoder": "load.text_encoder (qwen3vl_8b_fp8_scaled.safetensors, type ideogram4)",
                             "vae": "load.vae (flux2-vae.safetensors)"},
               "krea2": {"text_encoder": "load.text_encoder (qwen3vl_4b_fp8_scaled.safetensors, type krea2)",
                         "vae": "load.vae (qwen_image_vae.safetensors)"},
               "zimage": {"text_encoder": "load.text_encoder (qwen_3_4b.safetensors, type lumina2)",
                          "vae": "load.vae (FLUX.1's ae.safetensors)"},
               "hidream": {"text_encoder": "load.text_encoder (clip_l_hidream, clip_g_hidream, t5xxl_fp8_e4m3fn_scaled, "
                                           "llama_3.1_8b_instruct_fp8_scaled: name .. name4, type hidream)",
                           "vae": "load.vae (FLUX.1's ae.safetensors)"},
               "kandinsky5image": {"text_encoder": "load.text_encoder (qwen_2.5_vl_7b_fp8_scaled.safetensors + "
                                                   "clip_l.safetensors, type kandinsky5_image)",
                                   "vae": "load.vae (FLUX.1's ae.safetensors)"},
               "minimax_h3": {"text_encoder": "load.text_encoder (qwen3vl_32b_minimax_h3_int8_convrot.safetensors, "
                                              "type minimax)",
                              "vae": "load.vae (minimax_h3_video_vae_fp16.safetensors)"},
               "flux3": {"text_encoder": "load.text_encoder (qwen3vl_4b_int8_convrot.safetensors, type flux3)",
                         "vae": "load.vae (flux2-vae.safetensors)"},
               "newbie": {"text_encoder": "load.text_encoder (gemma_3_4b_it_bf16.safetensors + "
                                          "jina_clip_v2_bf16.safetensors, type newbie)",
                          "vae": "load.vae (ae.safetensors)"},
               "pixeldit": {"text_encoder": "load.text_encoder (gemma_2_2b_it_elm_*.safetensors, type pixeldit)",
                            "vae": "load.vae (pixel_space)"},
               "lens": {"text_encoder": "load.text_encoder (gpt_oss_20b_*.safetensors, type lens)",
                        "vae": "load.vae (flux2-vae.safetensors)"},
               "anima": {"text_encoder": "load.text_encoder (qwen_3_06b_base.safetensors, type stable_diffusion)",
                         "vae": "load.vae (qwen_image_vae.safetensors)"},
               "boogu": {"text_encoder": "load.text_encoder (qwen3vl_8b_fp8_scaled.safetensors, type boogu)",
                         "vae": "load.vae (FLUX.1's ae.safetensors)"},
               "omnigen2": {"text_encoder": "load.text_encoder (qwen_2.5_vl_fp16.safetensors, type omnigen2)",
                            "vae": "load.vae (FLUX.1's ae.safetensors)"},
               "joyimage": {"text_encoder": "load.text_encoder (qwen3vl_8b_joyimage_edit_int8_convrot.safetensors, "
                                            "type joyimage)",
                            "vae": "load.vae (wan_2.1_vae.safetensors)"},
               "mage_flow": {"text_encoder": "load.text_encoder (qwen3vl_4b_bf16.safetensors, type mage)",
                             "vae": "load.vae (mage_flow_vae_bf16.safetensors)"},
               "fibo2": {"text_encoder": "load.text_encoder (qwen3vl_4b_bf16.safetensors, type fibo2)",
                         "vae": "load.vae (flux2-vae.safetensors)"},
               "longcat": {"text_encoder": "load.text_encoder (qwen_2.5_vl_7b_fp8_scaled.safetensors, type longcat_image)",
                           "vae": "load.vae (FLUX.1's ae.safetensors)"},
               "ovis": {"text_encoder": "load.text_encoder (ovis_2.5.safetensors, type ovis)",
                        "vae": "load.vae (FLUX.1's ae.safetensors)"},
               "chroma": {"text_encoder": "load.text_encoder (t5xxl_fp16.safetensors, type chroma)",
                          "vae": "load.vae (FLUX.1's ae.safetensors)"}}


def _resolve_any(path: str) -> Path:
    """A name for load.model (family auto) in checkpoints/ (all-in-one files, diffusers folders) or, as the
    family loaders take it, diffusion_models/; not found: the checkpoints error, which names any other folder
    holding it."""
    from nodes.generate.model_manager import resolve_model_path
    try:
        return resolve_model_path(path, "checkpoints", "model")
    except NodeError as first:
        try:
            return resolve_model_path(path, "diffusion_models", "model")
        except NodeError:
            raise first from None


def _is_single_file(path: str) -> bool:
    from nodes.generate.detect import WEIGHT_EXT
    return Path(path.replace("\\", "/")).suffix.lower() in WEIGHT_EXT


def _is_denoiser_file(path: str, family: str) -> bool:
    """A file holding only the denoiser (diffusion_models/). All-in-one checkpoints (LTX-Video, SVD) load
    through the model manager instead, which builds every part they hold."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import resolve_family_path
    if family in ("sd", "sdxl", "animatediff") or not _is_single_file(path):
        return False
    return detect_file(resolve_family_path(path, family, "model")).role != "checkpoint"


def add_lora(model, path: str, strength: float):
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import resolve_model_path
    p = resolve_model_path(path, "loras", "LoRA")
    if not p.is_file():
        raise NodeError(f"{p} is a folder; a LoRA is one .safetensors file")
    det = detect_file(p)
    if det.role != "lora":
        raise NodeError(f"{p} holds no LoRA tensors (no lora_A/lora_B or lora_down/lora_up weights)")
    if not hasattr(model.pipe, "load_lora_weights"):
        raise NodeError(f"{model.family} models take no LoRAs in Kinograph")
    # A LoRA changes layers of the model it was trained on; on another family none of its names match, and
    # diffusers then loads nothing and only logs a warning.
    # An SD LoRA whose names do not show SDXL (a UNet-only one touching SD 1.5's levels too) may still be SDXL's:
    # diffusers tells by the shapes, with the layer named.
    # FLUX.2's and Chroma's blocks have FLUX.1's names (double_blocks.N.img_attn.qkv ...): their LoRAs read as
    # FLUX.1's, and which model one fits is told by diffusers' converter and the layers' shapes.
    # An SDXL LoRA fits AnimateDiff-SDXL (an SDXL checkpoint animated: its UNet's own layers), not SD 1.5's.
    fits = {"sd": ("sd", "animatediff", "sdxl"), "animatediff": ("animatediff",),
            "flux": ("flux", "flux2", "chroma")}.get(det.family or "", (det.family,))
    base = "sdxl" if model.family == "animatediff" and getattr(model.pipe, "text_encoder_2", None) is not None \
        else model.family
    if det.family and model.family not in fits and base not in fits:
        from nodes.generate.families import family as family_spec
        from nodes.generate.model_manager import _a
        what = "an AnimateDiff motion" if det.family == "animatediff" else _a(family_spec(det.family).title)
        mine = family_spec(model.family).title
        raise NodeError(f"{p.name} is {what} LoRA ({det.why}), and this model is {mine}: a LoRA only works on "
                        f"the model family it was trained for. Use {_a(mine)} LoRA here, or apply this one to "
                        f"{_a(family_spec(det.family).title)} model")
    return model.with_lora(str(p), strength)


def add_text_lora(text_encoder, path: str, strength: float):
    """The text encoder with the LoRA's text-encoder layers recorded (None when none is connected)."""
    # Only SD 1.5's CLIP has LoRA layers: Wan, LTX, HunyuanVideo LoRAs train the denoiser alone, and ComfyUI's
    # LoraLoader in their workflows passes the text encoder through unchanged, as it is here.
    if text_encoder is None or strength == 0 or text_encoder.family not in ("sd", "sdxl", "animatediff") \
            or not hasattr(text_encoder.pipe, "load_lora_weights"):
        return text_encoder
    from nodes.generate.model_manager import resolve_model_path
    return text_encoder.with_lora(str(resolve_model_path(path, "loras", "LoRA")), strength)
