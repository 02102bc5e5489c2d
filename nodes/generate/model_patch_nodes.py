"""Model patch nodes: a file from ComfyUI's model_patches/ (InfiniteTalk's audio layers, Z-Image Fun and Qwen-Image
DiffSynth ControlNets) and the ControlNet kinds put on the model they steer (nodes/generate/model_patch.py)."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import MASK, MODEL, MODEL_PATCH, VAE, VIDEO
from nodes.common.models_dirs import locator


@node("load.model_patch", title="Load Model Patch", category="Models", device="gpu",
      outputs={"model_patch": MODEL_PATCH})
def load_model_patch(ctx, name: str = Param("", kind="path", locate=locator("model_patches"), required=True,
                                             help="file in model_patches/ (wan2.1_infiniteTalk_multi_fp16"
                                                  ".safetensors, Z-Image-Turbo-Fun-Controlnet-Union.safetensors, "
                                                  "minimax_h3_fun_controlnet_union_*.safetensors)")):
    """Weights laid over a model's (ComfyUI's ModelPatchLoader), told apart by their tensors: InfiniteTalk's audio
    projection and per-block audio attention for Wan 2.1 I2V 14B (condition.infinitetalk), Alibaba PAI's Z-Image
    Fun ControlNet union for Z-Image Turbo, MiniMax H3's Fun ControlNet-Union or DiffSynth's blockwise ControlNets for
    Qwen-Image (control.model_patch).
    Other kinds of patch are named and refused."""
    from nodes.generate.model_manager import manager_for
    from nodes.generate.model_patch import load
    return {"model_patch": load(manager_for(ctx), name)}


@node("control.model_patch", title="ControlNet (model patch)", category="Conditioning", device="gpu",
      passes={"model": "model"})
def control_model_patch(ctx, model: MODEL, model_patch: MODEL_PATCH, video: VIDEO,
                        vae: VAE = Input(optional=True, help="the VAE that encodes the control picture (FLUX.1's "
                                                             "ae.safetensors for Z-Image, qwen_image_vae for "
                                                             "Qwen-Image), where the model was loaded without one"),
                        mask: MASK = Input(optional=True, help="an inpainting patch's region, which the canny, depth "
                                                               "and union patches do not read"),
                        strength: float = Param(1.0, min=-10.0, max=10.0, help="how strongly the control picture "
                                                                               "steers; 0 = not at all")) -> MODEL:
    """Guide a model with a ControlNet from model_patches/ (ComfyUI's QwenImageDiffsynthControlnet and
    ZImageFunControlnet): Alibaba PAI's Z-Image-Turbo-Fun-Controlnet-Union steers Z-Image Turbo by a canny, HED,
    depth, pose or MLSD picture (made by lines.*, depth.estimate, pose.dwpose), told nothing of which; DiffSynth's
    canny and depth patches steer Qwen-Image after each of its blocks. The picture is
    taken as it is, stretched to the generation's size; a video steers frame by frame. Chained, the controls add up,
    as control.apply's do. MiniMax H3's Fun ControlNet-Union (ComfyUI's MiniMaxH3FunControlNetApply) steers its video
    by a control video (pose, depth, canny), fitted to the video's frames (its last frame held) and canvas (cut at
    the middle), through the video VAE."""
    from nodes.generate.model_patch import apply
    return apply(model, model_patch, vae, video, strength, mask)


@node("control.anima_lllite", title="ControlNet-LLLite (Anima)", category="Conditioning", device="gpu",
      passes={"model": "model"})
def control_anima_lllite(ctx, model: MODEL, model_patch: MODEL_PATCH, video: VIDEO,
                         mask: MASK = Input(optional=True, help="the region an inpainting net repaints (white); the "
                                                                "depth and line nets do not read it"),
                         strength: float = Param(1.0, min=-10.0, max=10.0, help="how strongly the picture steers; "
                                                                                 "0 = not at all"),
                         start: float = Param(0.0, min=0.0, max=1.0, help="share of the way down the noise levels "
                                                                          "where it begins to steer"),
                         end: float = Param(1.0, min=0.0, max=1.0, help="share of the way where it stops")) -> MODEL:
    """Guide Anima with a ControlNet-LLLite net from model_patches/ (ComfyUI's AnimaLLLiteApply; Comfy-Org/Anima-LLLite):
    a depth map (depth.estimate), line art or edges (lines.*) for the depth and any-control nets, or a picture and a
    mask for the inpainting net. The picture is centre-cropped to the generation's shape and resized; tiny networks
    beside each DiT block's attention and MLP inputs read it. Chained, the nets add up."""
    from nodes.generate.model_patch import apply_lllite
    return apply_lllite(model, model_patch, video, strength, start, end, mask)
