"""The split-file loaders, named as in ComfyUI (UNETLoader, CLIPLoader, VAELoader, CLIPVisionLoader)
so users recognise them: one file each from diffusion_models/, text_encoders/, vae/, clip_vision/."""
from __future__ import annotations

import os
import re

from graph_engine import Param, node
from graph_engine.types import IMAGE_ENCODER, MODEL, TEXT_ENCODER, VAE
from nodes.common.models_dirs import locator
from nodes.generate.preflight import diffusion_model_preflight

WEIGHT_DTYPES = ("default", "fp8_e4m3fn", "fp8_e5m2", "fp16", "bf16", "fp32")
TEXT_TYPES = ("auto", "wan", "ltxv", "hunyuan_video", "hunyuan_video_15", "sd", "cogvideox", "flux", "sd3", "qwen_image", "chroma",
              "flux2", "kandinsky5", "kandinsky5_image", "ltx2", "lumina2", "hidream",
              "longcat_image", "ovis", "krea2", "minimax", "flux3", "boogu", "ideogram4", "joyimage", "omnigen2", "lens", "fibo2", "pixeldit", "mage", "newbie")


@node("load.diffusion_model", title="Load Diffusion Model", category="Models", device="gpu",
      preflight=diffusion_model_preflight)
def load_diffusion_model(ctx, name: str = Param("", kind="path", locate=locator("diffusion_models"), required=True,
                                                help="file in diffusion_models/ (or checkpoints/), or a path"),
                         weight_dtype: str = Param("default", choices=WEIGHT_DTYPES,
                                                   help="compute precision; default = the device's usual "
                                                        "(fp8 files are dequantised to it)")) -> MODEL:
    """The denoiser alone from one file (ComfyUI's Load Diffusion Model / UNETLoader), in fp16, bf16, fp8, fp8_scaled,
    int8_convrot or GGUF: Wan, HunyuanVideo, LTX-Video, FLUX.1 and FLUX.2, Chroma, Z-Image, Krea 2, HiDream-I1 and E1,
    LongCat-Image, Ovis-Image, Qwen-Image and others (`kinograph info` lists each file's family and whether it loads).
    Feed it text from load.text_encoder and latents through load.vae."""
    from nodes.generate.model_manager import manager_for
    from nodes.generate.split import load_diffusion_model as run
    return run(manager_for(ctx), name, weight_dtype, ctx.device)


def _second_file_kind(name: str) -> str:
    """LTX-2's second file is its checkpoint (ComfyUI's LTXAVTextEncoderLoader takes it from checkpoints/), told by
    its name as detect.ltx2_release tells LTX-2's files; any other is a second text encoder."""
    return "checkpoints" if re.match(r"ltx-?2", os.path.basename(name.replace("\\", "/")).lower()) else "text_encoders"


def _read_with(path) -> list:
    """llama.cpp's vision projectors beside a Qwen2.5-VL GGUF, one of which the loader reads with it: keyed with the
    file, so a projector added or replaced there re-runs the node (the model cache alone reloaded, the key did not)."""
    from nodes.generate.gguf_mmproj import matching
    return matching(path) if path.suffix.lower() == ".gguf" else []


@node("load.text_encoder", title="Load Text Encoder", category="Models", device="gpu")
def load_text_encoder(ctx, name: str = Param("", kind="path", locate=locator("text_encoders", companions=_read_with),
                                             required=True,
                                             help="file in text_encoders/ or clip/ (umt5, t5, clip_l, llava-llama3, "
                                                  "qwen_2.5_vl, qwen3, qwen3vl, gemma ...): .safetensors, or a "
                                                  ".gguf (city96's T5 / umT5, llama.cpp's Llama, Mistral, Qwen2.5-VL, "
                                                  "Qwen3, Gemma 2 / 3), whose tokenizer is read from the file"),
                      name2: str = Param("", kind="path", locate=locator("text_encoders", "checkpoints",
                                                                          kind_of=_second_file_kind),
                                         help="second file for two-encoder models (HunyuanVideo: clip_l; FLUX.1: clip_l "
                                              "with t5xxl, either order); for LTX-2, the checkpoint in checkpoints/ "
                                              "whose text connectors read Gemma's features (ComfyUI's ckpt_name)"),
                      name3: str = Param("", kind="path", locate=locator("text_encoders"),
                                         help="third file, for Stable Diffusion 3 (clip_l, clip_g, t5xxl in any order)"),
                      name4: str = Param("", kind="path", locate=locator("text_encoders"),
                                         help="fourth file, for HiDream-I1 (clip_l, clip_g, t5xxl, llama_3.1_8b in any "
                                              "order)"),
                      type: str = Param("auto", choices=TEXT_TYPES,
                                        help="which model family reads it; auto = from the encoder (clip_l with t5xxl: "
                                             "flux; with clip_g: sd3; t5xxl alone: ltxv, set chroma for Chroma; "
                                             "lumina2: Z-Image's Qwen3-4B; krea2: Krea 2's "
                                             "Qwen3-VL-4B; minimax: MiniMax H3's Qwen3-VL 32B; flux3: FLUX.3 "
                                             "[klein]'s Qwen3-VL-4B; boogu: Boogu-Image's "
                                             "Qwen3-VL-8B; ideogram4: Ideogram 4's Qwen3-VL-8B; joyimage: "
                                             "JoyImage Edit's Qwen3-VL-8B; omnigen2: OmniGen2's "
                                             "Qwen2.5-VL-3B; lens: Lens's GPT-OSS-20B; fibo2: FIBO 2's "
                                             "Qwen3-VL-4B; pixeldit: PixelDiT's Gemma-2-2B; mage: Mage-Flow's "
                                             "Qwen3-VL-4B; newbie: NewBie-image's Gemma 3 4B + "
                                             "Jina CLIP v2)")) -> TEXT_ENCODER:
    """A text encoder from its own file (ComfyUI's Load CLIP / DualCLIPLoader / TripleCLIPLoader / QuadrupleCLIPLoader), with its
    tokenizer found inside the file, beside it, or in a local model folder; never downloaded."""
    from nodes.generate.model_manager import manager_for
    from nodes.generate.split import load_text_encoder as run
    return run(manager_for(ctx), name, name2, type, ctx.device, name3, name4)


def vae_locator():
    """load.vae's files in vae/, and pixel_space, which names no file (ComfyUI's VAELoader entry of that name): found
    as itself in the vae folder, so validate does not call it missing and the editor's file dialog opens there."""
    from nodes.generate.pixel_space_name import NAME, is_pixel_space
    find = locator("vae")

    def locate(name: str):
        return find.folder(name) / NAME if is_pixel_space(name) else find(name)
    locate.__dict__.update(find.__dict__)
    return locate


@node("load.vae", title="Load VAE", category="Models", device="gpu")
def load_vae(ctx, name: str = Param("", kind="path", locate=vae_locator(), required=True,
                                    help="file in vae/ (e.g. wan_2.1_vae.safetensors, FLUX.1's ae.safetensors), or "
                                         "pixel_space for a model that samples pictures themselves (Chroma "
                                         "Radiance: no VAE, as ComfyUI's)"),
             family: str = Param("auto", choices=("auto", "sd", "sdxl", "flux", "sd3", "qwenimage"),
                                 help="whose latents: SD 1.5's or SDXL's (the files look alike; auto = sdxl when its "
                                      "name says xl), FLUX.1's or SD3's (auto = sd3 when its name says sd3); qwenimage: "
                                      "a Wan 2.1 VAE file that is Qwen-Image's (auto when its name says qwen)")) -> VAE:
    """A VAE from its own file (ComfyUI's Load VAE); its family is read from the file. Marigold v2's VAE for its task
    (marigold_v2_*_vae.safetensors: depth, normals or albedo) loads here too."""
    from nodes.generate.model_manager import manager_for
    from nodes.generate.split import load_vae as run
    return run(manager_for(ctx), name, ctx.device, family)


@node("load.clip_vision", title="Load CLIP Vision", category="Models", device="gpu",
      outputs={"image_encoder": IMAGE_ENCODER})
def load_clip_vision(ctx, name: str = Param("", kind="path", locate=locator("clip_vision"), required=True,
                                            help="file in clip_vision/ (e.g. clip_vision_h.safetensors)"),
                     family: str = Param("auto", choices=("auto", "wan", "hunyuan", "flux", "hunyuan15"),
                                         help="the model family that reads its tokens; auto = HunyuanVideo for "
                                              "llava_llama3_vision, FLUX.1 for SigLIP, else Wan")):
    """CLIP vision from its own file (ComfyUI's Load CLIP Vision), for image-to-video via encode.image:
    clip_vision_h for Wan, llava_llama3_vision for HunyuanVideo (its tokens go to encode.text_image),
    sigclip_vision_patch14_384 (SigLIP, or a FLUX.1-Redux-dev folder) for FLUX.1 Redux (condition.style_model)."""
    from nodes.generate.model_manager import manager_for
    from nodes.generate.split import load_clip_vision as run
    return {"image_encoder": run(manager_for(ctx), name, family, ctx.device)}
