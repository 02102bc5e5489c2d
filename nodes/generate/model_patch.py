"""ComfyUI's model_patches/ files, told apart by their tensors as ModelPatchLoader tells them: InfiniteTalk's audio layers
for Wan 2.1 (nodes/generate/infinitetalk.py), and ControlNets laid into a model's blocks - Alibaba PAI's Z-Image Fun
union (nodes/generate/zimage_control.py), DiffSynth's blockwise Qwen-Image ones (nodes/generate/qwen_diffsynth.py) -
which control.model_patch (ComfyUI's QwenImageDiffsynthControlnet) puts on the model they steer - and Anima's
ControlNet-LLLite nets (nodes/generate/anima_lllite.py), which control.anima_lllite (ComfyUI's AnimaLLLiteApply) lays
on Anima's DiT."""
from __future__ import annotations

from pathlib import Path

from graph_engine import Clip, NodeError
from nodes.generate.anima_lllite import PROBE as LLLITE
from nodes.generate.anima_lllite import SDXL_PREFIX as SDXL_LLLITE
from nodes.generate.minimax_fun_control import PROBE as MINIMAX_FUN
from nodes.generate.qwen_diffsynth import PROBE as DIFFSYNTH
from nodes.generate.zimage_control import PROBE as ZIMAGE

# the tensor that marks the kind: (family, what it is, the model it steers, the VAE family and file it reads through)
KINDS = {ZIMAGE: ("zimage", "a Z-Image Fun ControlNet", "Z-Image Turbo", "flux", "FLUX.1's ae.safetensors"),
         DIFFSYNTH: ("qwenimage", "a Qwen-Image DiffSynth ControlNet", "Qwen-Image", "qwenimage",
                     "qwen_image_vae.safetensors"),
         MINIMAX_FUN: ("minimax_h3", "a MiniMax H3 Fun ControlNet", "MiniMax H3", "minimax_h3",
                       "minimax_h3_video_vae_*.safetensors")}


def load(mm, name: str):
    """The patch in `name` (a file in model_patches/), cached by the model manager: a ControlNet's tensors (built
    around the model it is applied to), or InfiniteTalk's patch."""
    from nodes.generate import infinitetalk
    from nodes.generate.detect import SAFE_EXT, read_header
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.model_manager import resolve_model_path
    from nodes.generate.weights import load_weights
    path = resolve_model_path(name, "model_patches", "model patch")
    if path.suffix.lower() in SAFE_EXT:
        header = read_header(path)      # a cut-off file named, where safe_open raised its own error
        keys = header.shapes
        if LLLITE in keys:
            from nodes.generate.anima_lllite import build
            net = mm.cached(("model_patch", str(path.resolve())),
                            lambda: build(load_weights(path), header.metadata, path.name), files=(path,))
            return ComponentHandle("anima_lllite", str(path), net, "model_patch")
        if any(k.startswith(SDXL_LLLITE) for k in keys):
            raise NodeError(f"{path.name} is a ControlNet-LLLite for SDXL (kohya's lllite_unet_* modules), which "
                            "Kinograph does not apply; model_patches/ takes Anima's LLLite nets "
                            "(Comfy-Org/Anima-LLLite: anima-lllite-depth-1.safetensors ...): for SDXL use a ControlNet "
                            "from controlnet/ with control.apply")
        kind = next((KINDS[k] for k in KINDS if k in keys), None)
        if kind is not None:
            state = mm.cached(("model_patch", str(path.resolve())), lambda: load_weights(path), files=(path,))
            return ComponentHandle(kind[0], str(path), state, "model_patch")
    return infinitetalk.load(mm, name)


def apply(model, patch, vae, clip: Clip, strength: float, mask=None):
    """The model with the patch's ControlNet steering it by the control pictures (the first frame of `clip` for a
    picture; frame i of a video for frame i), encoded by `vae`; on a model that has ControlNets already, all steer."""
    from nodes.generate.control import Control, preprocess
    from nodes.generate.families import family
    name = Path(patch.path).name
    kind = next((k for k in KINDS.values() if k[0] == patch.family), None)
    if patch.family == "anima_lllite":
        raise NodeError(f"{name} is a ControlNet-LLLite for Anima: connect it to control.anima_lllite")
    if kind is None:
        raise NodeError(f"{name} is InfiniteTalk's audio patch for Wan 2.1, not a ControlNet: connect it to "
                        "condition.infinitetalk; control.model_patch takes a Z-Image Fun ControlNet "
                        "(Z-Image-Turbo-Fun-Controlnet-Union.safetensors) or a Qwen-Image DiffSynth one")
    if model.family != patch.family:
        raise NodeError(f"{name} is {kind[1]}, made for {kind[2]}; this model is {family(model.family).title}: load "
                        f"{kind[2]} to apply it, or pick a patch made for this model")
    if vae is not None and vae.family != kind[3]:
        raise NodeError(f"control.model_patch's vae is a {vae.family} VAE; {kind[1]} reads pictures through "
                        f"{kind[4]}")
    if vae is None and getattr(model.pipe, "vae", None) is None:
        raise NodeError(f"{kind[1]} reads the control picture through {kind[4]}, and this model was loaded without "
                        "it: connect load.vae to control.model_patch's vae")
    if mask is not None:
        raise NodeError(f"{name} steers by the control picture alone and reads no mask: disconnect the mask" if
                        patch.family != "minimax_h3" else f"{name}'s inpainting (a mask) is not run yet: disconnect "
                        "the mask and steer by the control video")
    if patch.family == "zimage":
        from nodes.generate.zimage_control import build
    elif patch.family == "minimax_h3":
        from nodes.generate.minimax_fun_control import build
    else:
        from nodes.generate.qwen_diffsynth import build
    if patch.family == "minimax_h3":      # where its blocks go may be in the file's metadata
        from nodes.generate.detect import read_header
        net = build(patch.pipe, model.pipe.transformer, name, read_header(Path(patch.path)).metadata)
    else:
        net = build(patch.pipe, model.pipe.transformer, name)
    control = Control(net, preprocess(clip, "none"), float(strength), vae=(vae or model).pipe, cache={})
    return model.with_option("controlnet", (model.option("controlnet") or ()) + (control,))


def apply_lllite(model, patch, clip: Clip, strength: float, start: float, end: float, mask=None):
    """The model with an Anima LLLite net steering its DiT by the control picture (the first frame of `clip`), between
    `start` and `end` (shares of the way down the noise levels); an inpainting net also reads `mask` (1 = repaint),
    which the others, as in ComfyUI, leave unread. On a model that has LLLite nets already, all steer."""
    import numpy as np

    from nodes.common import masks
    from nodes.generate.anima_lllite import check
    from nodes.generate.control import Control, preprocess
    from nodes.generate.families import family
    name = Path(patch.path).name
    if patch.family != "anima_lllite":
        raise NodeError(f"{name} is not an Anima LLLite net: control.anima_lllite takes Comfy-Org/Anima-LLLite's files "
                        "(anima-lllite-depth-1.safetensors ...); connect this patch to control.model_patch or "
                        "condition.infinitetalk")
    if not 0.0 <= start < end <= 1.0:
        raise NodeError(f"the LLLite net's start ({start}) must come before its end ({end}), both between 0 (the first "
                        "step) and 1 (the last)")
    if patch.pipe.cond_in_channels == 4 and mask is None:
        raise NodeError(f"{name} is an inpainting net: it reads the picture and the region to repaint; connect a mask "
                        "(white = repaint)")
    transformer = getattr(model.pipe, "transformer", None)
    if type(transformer).__name__ != "CosmosTransformer3DModel":
        raise NodeError(f"{name} steers Anima's DiT; this model is {family(model.family).title}: load Anima "
                        "(anima-base-v1.0.safetensors) to apply it")
    check(patch.pipe, transformer, name)
    frames = preprocess(clip, "none")[:1]
    keep = None
    if patch.pipe.cond_in_channels == 4:
        keep = np.float32(1.0) - masks.frames_of(mask, 0, 1)
    control = Control(patch.pipe, frames, float(strength), float(start), float(end), cache={}, keep=keep)
    return model.with_option("lllite", (model.option("lllite") or ()) + (control,))
