"""Generative nodes: loaders, encoders, VAE, latents, sampling. Heavy imports stay inside the functions."""
from __future__ import annotations

from graph_engine import Input, NodeError, Param, node
from graph_engine.types import (AUDIO, CAMERA, CONDITIONING, IMAGE, IMAGE_ENCODER, LATENT, MASK, MODEL, NOISE, STRING, TEXT_ENCODER, TRACKS, VAE,
                                VIDEO)
from nodes.common.models_dirs import as_given, locator
from nodes.generate.embeddings import embedding_files
from nodes.generate.control import SDXL_UNION_MODES, UNION_MODES as FLUX_UNION_MODES
from nodes.generate.feedback import MAX_CADENCE, SCHEDULE_RANGES
from nodes.generate.handles import need_wan_vae
from nodes.generate.model_manager import ALSO_IN, KINDS
from nodes.generate.preflight import guidance_preflight, latent_preflight
from nodes.mini.prompt_words import encode_text_preflight

PARTS = {"model": MODEL, "vae": VAE, "text_encoder": TEXT_ENCODER, "image_encoder": IMAGE_ENCODER}
DTYPE = Param("auto", choices=("auto", "fp32", "fp16", "bf16"),
              help="weights precision; auto = fp32 on CPU, fp16/bf16 on a GPU")
OFFLOAD = Param("auto", choices=("auto", "none", "model", "sequential"),
                help="move parts to the CPU between uses when GPU memory is short (auto decides)")
SAMPLERS = ("euler", "euler_ancestral", "ddim", "dpmpp_2m", "unipc", "uni_pc", "uni_pc_bh2", "flow_euler",
            "res_multistep", "lcm", "er_sde", "gradient_estimation", "dpm_2", "dpmpp_sde", "dpmpp_sde_gpu",
            "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde",
            "dpmpp_3m_sde_gpu", "heun", "lms", "ipndm", "ddpm", "dpm_2_ancestral", "euler_ancestral_cfg_pp",
            "euler_cfg_pp", "res_multistep_ancestral", "res_multistep_cfg_pp", "deis", "res_multistep_ancestral_cfg_pp",
            "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_2m_cfg_pp", "seeds_2", "seeds_3", "exp_heun_2_x0",
            "exp_heun_2_x0_sde", "dpm_fast", "dpm_adaptive", "gradient_estimation_cfg_pp", "ipndm_v", "heunpp2",
            "sa_solver", "sa_solver_pece", "ar_video", "void_ddim")
# the feedback loop diffuses one picture a frame: ar_video, which makes a clip block by block, has nothing to do there,
# nor void_ddim, VOID's video inpainting loop
PICTURE_SAMPLERS = tuple(s for s in SAMPLERS if s not in ("ar_video", "void_ddim"))


def _path(default: str = "", what: str = "a checkpoint file's name in checkpoints/ (svd_xt.safetensors, "
                                        "sd_xl_base_1.0.safetensors), a diffusers model folder's name, or a path",
          kinds=("checkpoints", "diffusion_models"), required: bool = False):
    # locate: a name found in the model folders is fingerprinted there (a replaced file re-runs what it feeds).
    # `kinds` are the folders the loader itself searches (model_manager.KINDS for a family's loader), so that
    # `kinograph validate` passes only what the run finds: load.wan's folder in checkpoints/ passed, and the run
    # said it was not found.
    return Param(default, kind="path", help=what, locate=locator(*kinds), required=required)


def _load(ctx, family, path, dtype, offload, **opts):
    from nodes.generate.loaders import load_parts
    return load_parts(ctx, family, path, dtype=dtype, offload=offload, **opts)


@node("load.model", title="Load Model", category="Models", outputs=PARTS, device="gpu")
def load_model(ctx, path: str = _path(required=True), family: str = Param("auto", choices=(
        "auto", "sd", "sdxl", "flux", "chroma", "zimage", "krea2", "hidream", "longcat", "ovis", "flux2", "sd3", "qwenimage", "qwenimage21", "animatediff", "svd", "wan", "ltx", "cogvideox", "hunyuan",
        "mini"),
        help="auto: recognised from the files; name it when a folder is not recognised"),
               dtype: str = DTYPE, offload: str = OFFLOAD):
    """Load a whole model (a checkpoint file or a diffusers folder); the family is recognised from its files.

    Outputs the denoiser (model), its VAE, text encoder and image encoder (empty when the family has
    none). A ComfyUI model kept as separate files (diffusion_models/, text_encoders/, vae/) loads with
    load.diffusion_model, load.text_encoder and load.vae instead (examples/wan_comfyui_files.yaml);
    `kinograph info` lists each file your model folders hold, its family and role. Nothing is ever
    downloaded: a missing model is an error naming where to put it."""
    return _load(ctx, family, path, dtype, offload)


@node("load.sd", title="Load Stable Diffusion", category="Models", outputs=PARTS, device="gpu")
def load_sd(ctx, path: str = _path(what="SD 1.5 folder (diffusers layout) or single .safetensors file",
                                   kinds=(KINDS["sd"],), required=True),
            config: str = Param("", kind="path", help="for a single file: a local SD 1.5 diffusers folder whose "
                                                      "configs describe it"),
            dtype: str = DTYPE, offload: str = OFFLOAD):
    """Stable Diffusion 1.5 for text-to-image: first frames and keyframes from the same checkpoint AnimateDiff uses."""
    return _load(ctx, "sd", path, dtype, offload, config=config)


@node("load.sdxl", title="Load Stable Diffusion XL", category="Models", outputs=PARTS, device="gpu")
def load_sdxl(ctx, path: str = _path(what="SDXL checkpoint (.safetensors in checkpoints/, e.g. sd_xl_base_1.0) or "
                                          "diffusers folder", kinds=(KINDS["sdxl"],), required=True),
              dtype: str = DTYPE, offload: str = OFFLOAD):
    """Stable Diffusion XL text-to-image (base model and its fine-tunes): keyframes to animate with an
    image-to-video model (Wan i2v, LTX-Video, SVD). Both text encoders come out as one text_encoder;
    sizes around 1024x1024 (divisible by 8)."""
    return _load(ctx, "sdxl", path, dtype, offload)


@node("load.animatediff", title="Load AnimateDiff", category="Models", outputs=PARTS, device="gpu")
def load_animatediff(ctx, path: str = _path(what="SD 1.5 folder (diffusers layout) or single .safetensors file",
                                            kinds=(KINDS["animatediff"],), required=True),
                     motion_adapter: str = Param("", kind="path", locate=locator("animatediff_models"),
                                                 help="motion module folder or file; empty = the model "
                                                      "folder's motion_adapter/"),
                     motion_lora: str = Param("", kind="path", locate=locator("loras"),
                                              help="optional motion LoRA (.safetensors)"),
                     motion_lora_strength: float = Param(1.0, min=-2.0, max=2.0,
                                                         help="how much of the motion LoRA's move to apply; "
                                                              "negative reverses it"),
                     config: str = Param("", kind="path", help="for a single-file checkpoint: a local SD 1.5 "
                                                               "diffusers folder"),
                     dtype: str = DTYPE, offload: str = OFFLOAD):
    """AnimateDiff: a Stable Diffusion 1.5 checkpoint plus a motion adapter (and an optional motion LoRA)."""
    return _load(ctx, "animatediff", path, dtype, offload, motion_adapter=motion_adapter, config=config,
                 motion_lora=motion_lora, motion_lora_strength=motion_lora_strength)


def _family_loader(fam: str, title: str, doc: str):
    split = "from load.diffusion_model / load.text_encoder / load.vae / load.clip_vision; replaces the folder's"

    def load(ctx, path: str = _path(what="model folder (diffusers layout), a diffusion model file, or empty when "
                                         "the parts come in through the inputs",
                                    kinds=(KINDS[fam],) + ((ALSO_IN[fam],) if fam in ALSO_IN else ())),
             dtype: str = DTYPE, offload: str = OFFLOAD, model: MODEL = Input(optional=True, help=split),
             text_encoder: TEXT_ENCODER = Input(optional=True, help=split), vae: VAE = Input(optional=True, help=split),
             image_encoder: IMAGE_ENCODER = Input(optional=True, help=split)):
        return _load(ctx, fam, path, dtype, offload, given=dict(model=model, text_encoder=text_encoder, vae=vae,
                                                                 image_encoder=image_encoder))
    load.__doc__ = doc
    load.__name__ = load.__qualname__ = f"load_{fam}"
    # A part linked in is the part handed out (it replaces the folder's).
    return node(f"load.{fam}", title=title, category="Models", outputs=PARTS, device="gpu",
                passes={part: part for part in PARTS})(load)


load_flux = _family_loader("flux", "Load FLUX.1", """FLUX.1 dev or schnell text-to-image: keyframes to animate with an
image-to-video model. A diffusers folder, or ComfyUI's files: the transformer (diffusion_models/ or unet/) here or
through load.diffusion_model, with load.text_encoder (clip_l + t5xxl, type flux) and load.vae (ae.safetensors).

dev's guidance is distilled in: sample's cfg sets it (3.5 is usual), no negative pass; schnell takes 4 steps and
ignores it. Sizes divisible by 16.""")
load_chroma = _family_loader("chroma", "Load Chroma", """Chroma text-to-image (lodestones' Chroma1-HD, chroma-unlocked-v*):
keyframes to animate with an image-to-video model. A diffusers ChromaPipeline folder, or ComfyUI's files: the
transformer (diffusion_models/Chroma1-HD.safetensors) here or through load.diffusion_model, with load.text_encoder
(t5xxl alone, type chroma) and load.vae (FLUX.1's ae.safetensors).

True CFG: connect a negative prompt (cfg 3.5-5 is usual); sizes divisible by 16.""")
load_zimage = _family_loader("zimage", "Load Z-Image", """Z-Image text-to-image (Tongyi's Z-Image Turbo and Z-Image):
keyframes to animate with an image-to-video model. A diffusers ZImagePipeline folder, or ComfyUI's files: the
transformer (diffusion_models/z_image_turbo_bf16.safetensors) here or through load.diffusion_model, with
load.text_encoder (qwen_3_4b.safetensors, type lumina2) and load.vae (FLUX.1's ae.safetensors).

Turbo: 8 steps at cfg 1 (no negative pass); the base model: cfg 3-5 with a negative prompt. Sizes divisible by 16.""")
load_krea2 = _family_loader("krea2", "Load Krea 2", """Krea 2 text-to-image (Krea 2 Turbo, Krea 2 Raw): keyframes to
animate with an image-to-video model. A diffusers Krea2Pipeline folder, or ComfyUI's files: the transformer
(diffusion_models/krea2_turbo_fp8_scaled.safetensors, _bf16 or _int8_convrot) here or through load.diffusion_model,
with load.text_encoder (qwen3vl_4b_fp8_scaled.safetensors, type krea2) and load.vae (qwen_image_vae.safetensors).

Turbo: 8 steps at cfg 1 (no negative pass); Raw: 28 steps, cfg 5.5 with a negative prompt (Krea2Pipeline's
guidance_scale 4.5 + 1). Sizes divisible by 16.""")
load_hidream = _family_loader("hidream", "Load HiDream-I1", """HiDream-I1 text-to-image (full, dev, fast): keyframes
to animate with an image-to-video model; HiDream-E1 / E1.1 picture edits (hidream_e1_full_bf16, hidream_e1_1_bf16: the
picture through condition.control_image, guide.dual_cfg). ComfyUI's files: the transformer
(diffusion_models/hidream_i1_full_fp16.safetensors) here or through load.diffusion_model, with load.text_encoder (clip_l_hidream, clip_g_hidream, t5xxl, llama_3.1_8b_instruct:
name .. name4, type hidream) and load.vae (FLUX.1's ae.safetensors).

Full: 50 steps, cfg 5 with a negative prompt, shift 3; dev: 28 steps at cfg 1, shift 6; fast: 16 steps at cfg 1, shift 3
(model.flow_shift). Sizes divisible by 16.""")
load_minimax_h3 = _family_loader("minimax_h3", "Load MiniMax H3", """MiniMax H3 text-to-image and text-to-video with its
stereo soundtrack (FastVideo's FastH3 too). ComfyUI's files: the transformer
(diffusion_models/minimax_h3_fl2va_pruned_*.safetensors, pruned or not) here or through load.diffusion_model, with
load.text_encoder (qwen3vl_32b_minimax_h3_int8_convrot.safetensors, type minimax; the nvfp4_awq file not tried) and
load.vae (minimax_h3_video_vae_fp16.safetensors). A video: latent.empty of 1 or 17n+5 frames at 24 fps holds its sound
too; vae.decode gives the frames, vae.decode_sound with load.vae's minimax_h3_audio_vae_* the sound, io.set_audio
joins them. Prompts are read as written (no (word:1.2) emphasis, as ComfyUI reads them).

30 steps (50 for the most detail) at cfg 1: its guidance is distilled, no negative pass. Sizes divisible by 32.""")
load_longcat = _family_loader("longcat", "Load LongCat-Image", """LongCat-Image text-to-image and LongCat-Image-Edit
(Meituan): keyframes to animate with an image-to-video model. ComfyUI's files: the transformer
(diffusion_models/longcat_image_bf16.safetensors, longcat_image_edit_bf16.safetensors) here or through
load.diffusion_model, with load.text_encoder (qwen_2.5_vl_7b_fp8_scaled.safetensors, type longcat_image) and load.vae
(FLUX.1's ae.safetensors).

True CFG: cfg 4-4.5 with a negative prompt, 50 steps (guide.cfg_norm as ComfyUI's template sets CFGNorm). Text in
quotes is read a character at a time. Edit: encode.qwen_edit with the picture and the VAE, which carries the picture's
latent as the reference (a condition.reference given a latent as well would add a second one). Sizes divisible by
16.""")
load_ovis = _family_loader("ovis", "Load Ovis-Image", """Ovis-Image text-to-image (AIDC-AI's Ovis-Image-7B, made for text
in pictures): keyframes to animate with an image-to-video model. ComfyUI's files: the transformer
(diffusion_models/ovis_image_bf16.safetensors) here or through load.diffusion_model, with load.text_encoder
(ovis_2.5.safetensors, type ovis; its Qwen3 tokenizer in a folder beside it) and load.vae (FLUX.1's ae.safetensors).

True CFG: cfg 5 with a negative prompt, 50 steps (ComfyUI's template: 20 steps at shift 3, model.flow_shift). Sizes
divisible by 16.""")
load_sd3 = _family_loader("sd3", "Load Stable Diffusion 3", """Stable Diffusion 3 medium and 3.5 medium, large and large
turbo text-to-image: keyframes to animate with an image-to-video model. A diffusers folder, or ComfyUI's checkpoint
(checkpoints/sd3.5_medium.safetensors ...): the MMDiT and VAE, and the text encoders where the file holds them; else
load.text_encoder (clip_l, clip_g, t5xxl; type sd3) into text_encoder.

Guidance is classifier-free (cfg 4.5 is usual, about 1 for large turbo) with a negative prompt; the schedule is the
flow line shifted by 3 (model.flow_shift changes it). Sizes divisible by 16.""")
load_qwen_image = _family_loader("qwenimage", "Load Qwen-Image", """Qwen-Image text-to-image: keyframes (legible text
in them too) to animate with an image-to-video model. A diffusers folder (Qwen/Qwen-Image), or ComfyUI's files: the
transformer (diffusion_models/qwen_image_fp8_e4m3fn or _bf16) here or through load.diffusion_model, with
load.text_encoder (qwen_2.5_vl_7b_fp8_scaled, type qwen_image) and load.vae (qwen_image_vae).

True CFG: connect a negative prompt (cfg 2.5-4 is usual); sizes divisible by 16 (1328x1328 is its native size).""")
load_svd = _family_loader("svd", "Load Stable Video Diffusion", """Stable Video Diffusion (image-to-video).

Feed the start image through encode.image (positive) and condition.frames (first frame).""")
load_wan = _family_loader("wan", "Load Wan", """Wan 2.1/2.2 text-to-video or image-to-video (also first/last frame).

Frame counts are 4n+1 (81 at 16 fps is the usual clip), sizes divisible by 16 (32 for Wan 2.2 TI2V-5B).""")
load_ltx = _family_loader("ltx", "Load LTX-Video", """LTX-Video: fast text-to-video; frame counts 8n+1, sizes divisible by 32.""")
load_cogvideox = _family_loader("cogvideox", "Load CogVideoX", """CogVideoX text-to-video; frame counts 4n+1 (49 is usual), sizes divisible by 16.""")
load_hunyuan = _family_loader("hunyuan", "Load HunyuanVideo", """HunyuanVideo text-to-video or image-to-video; frame
counts 4n+1, sizes divisible by 16.

Its guidance is distilled into the model: sample's cfg sets the embedded guidance, no negative pass.
Image-to-video: encode.image (llava_llama3_vision) -> encode.text_image -> condition.hunyuan_i2v.""")


@node("load.mini", title="Load kinograph-mini", category="Models", outputs=PARTS)
def load_mini_model(ctx, path: str = _path(what="empty = the bundled model in resources/models/kinograph-mini",
                                           kinds=(KINDS["mini"],)),
                    dtype: str = DTYPE):
    """The bundled tiny text-to-video model (shapes world, 48x48, 16 frames; sizes divisible by 16); runs on
    any CPU."""
    return _load(ctx, "mini", path, dtype, "none")


@node("lora.image", title="Apply LoRA", category="Models", outputs={"model": MODEL, "text_encoder": TEXT_ENCODER},
      passes={"model": "model", "text_encoder": "text_encoder"})
def lora_image(ctx, model: MODEL, path: str = Param("", kind="path", locate=locator("loras"),
                                                   help="LoRA .safetensors file"),
               strength: float = Param(1.0, zero="off", min=-4.0, max=4.0, help="how much of the LoRA to add; 0 = none, "
                                                                     "negative pushes away from it"),
               text_encoder: TEXT_ENCODER = Input(optional=True, help="the model's text encoder, for a LoRA with "
                                                  "text-encoder layers (SD 1.5 kohya LoRAs); pass it on to encode.text"),
               clip_strength: float = Param(1.0, min=-4.0, max=4.0, help="how much of the LoRA's text-encoder "
                                                                          "layers to add (ComfyUI's strength_clip)")):
    """Apply a LoRA (image or motion) to the model with a strength; chains of LoRAs add up. Marigold v2's task LoRA
    on Qwen-Image-Edit (marigold_v2_*.safetensors: depth, normals or albedo) applies here too.

    The loaded model stays shared: the LoRA is active only while this branch samples, and its text-encoder layers
    (with a text encoder connected) only while the encode.text after it encodes."""
    from nodes.generate.loaders import add_lora, add_text_lora
    return {"model": add_lora(model, path, strength),
            "text_encoder": add_text_lora(text_encoder, path, clip_strength)}


def _prompt_to_text(params):
    if "prompt" in params:
        params["text"] = params.pop("prompt")
    return params


# Version 2 renamed `prompt` to `text`, the name sweeps and other tools address (prompt.text). Version 3: weighting
# comfy reads the prompt by ComfyUI's rules ([x] is text, an inner (x:w) sets w), so the same params give another
# conditioning than before; the params are kept as they were. encode.sdxl, encode.flux and encode.sd3 likewise (2).
# Version 4 (encode.sdxl 3): CLIP prompts past 75 tokens are read in 77-token windows (clip_windows) instead of cut,
# under both weightings: what ComfyUI and A1111 users expect of a long prompt, where a cut dropped its end unseen.
# Version 5 (encode.flux and encode.sd3 3): T5 and UMT5 tokenizers read from the encoder's file drop the spaces, tabs
# and line ends at a prompt's ends as sentencepiece does (split.spiece_tokenizer), so such prompts encode otherwise.
# Version 6 (encode.sd3 4): SD3 under weighting comfy reads CLIP-L and OpenCLIP-G in windows and T5-XXL's whole prompt
# padded to 77 tokens (not 256), as ComfyUI's SD3ClipModel does, so imported SD3 workflows encode otherwise.
# Version 7 (encode.sd3 5): SD3 reads a clip_l file's pooled output without its text projection (converters.sd3), as
# ComfyUI and Stability's sd3_infer do, so SD3 prompts from clip_l files holding a real projection encode otherwise.
# Version 8 (encode.sd3 6): SD3 under weighting kinograph reads CLIP-L and OpenCLIP-G in windows and T5-XXL's whole
# prompt (padded to 256 as before), as weighting comfy does, instead of cutting them at 77 and 256 tokens; its
# emphasis scales each CLIP window and T5's tokens with their own mean kept (the whole row's before), so weighted or
# long SD3 prompts encode otherwise. Unweighted prompts that fit read as before (StableDiffusion3Pipeline's reading).
WEIGHTING_HELP = ("emphasis: kinograph scales words and keeps the prompt's mean ((x) x1.1, [x] /1.1, groups multiply); "
                  "comfy reads the prompt as ComfyUI does (only round brackets weigh, an inner (x:w) sets w, [x] is "
                  "text) and moves the weighted words away from the empty prompt, as ComfyUI does")


@node("encode.text", title="Encode Prompt", category="Conditioning", version=8,
      migrations={1: _prompt_to_text, 2: dict, 3: dict, 4: dict, 5: dict, 6: dict, 7: dict},
      outputs={"positive": CONDITIONING, "negative": CONDITIONING}, optional_outputs=("negative",),
      preflight=encode_text_preflight)
def encode_text(ctx, text_encoder: TEXT_ENCODER,
                text: str = Param("", kind="text", names_files=embedding_files,
                                  help="the prompt; (word:1.3) emphasis; a schedule '0: a caterpillar, 24: a "
                                       "butterfly' changes it over time"),
                negative: str = Param("", kind="text", names_files=embedding_files, help="what to steer away from"),
                clip_skip: int = Param(1, min=1, max=24, help="CLIP text encoders: 1 = last layer, 2 = the one "
                                                                "before (ComfyUI's CLIPSetLastLayer -2)"),
                weighting: str = Param("kinograph", choices=("kinograph", "comfy"), help=WEIGHTING_HELP)):
    """Encode a prompt and a negative prompt with the model's text encoder.

    Emphasis: (word) x1.1, [word] /1.1, (word:1.5) any weight. A prompt schedule
    `0: a caterpillar, 24: a butterfly` gives per-frame conditioning interpolated between keyframes
    (per frame for AnimateDiff/SD; averaged over each context window for video transformers).
    clip_skip 2 takes the penultimate CLIP layer (many SD 1.5 / AnimateDiff checkpoints want it)."""
    from nodes.generate.text import encode_prompt
    pos = encode_prompt(text_encoder, text, ctx.log, clip_skip=clip_skip, weighting=weighting)
    # An imported CLIPTextEncode links `positive` only: its (empty) negative would be encoded for nothing.
    neg = None if "negative" in ctx.unread else encode_prompt(text_encoder, negative, ctx.log, clip_skip=clip_skip,
                                                              weighting=weighting)
    return {"positive": pos, "negative": neg}


@node("text.generate", title="Generate Text", category="Conditioning", device="gpu",
      outputs={"text": STRING, "thinking": STRING})
def text_generate(ctx, text_encoder: TEXT_ENCODER,
                  image: IMAGE = Input(optional=True, help="a picture for the model to read (Qwen3-VL, Qwen3.5, "
                                                           "Gemma 4)"),
                  audio: AUDIO = Input(optional=True, help="a sound for the model to hear (Gemma 4 E2B, E4B)"),
                  video: VIDEO = Input(optional=True, help="a video for the model to watch, one frame a second as "
                                                           "ComfyUI takes it (every 24th frame; Gemma 4)"),
                  prompt: str = Param("", kind="text", help="what to ask the model (write or enhance a prompt)"),
                  system_prompt: str = Param("", kind="text", help="instructions in the chat's system turn (how to "
                                                                   "answer); empty: none"),
                  max_length: int = Param(512, min=1, max=32768, help="most tokens to generate"),
                  sampling: bool = Param(True, help="sample with the settings below; off: greedy (the likeliest "
                                                    "token each step)"),
                  temperature: float = Param(0.7, min=0.01, max=2.0, help="higher: more varied words; lower: safer"),
                  top_k: int = Param(64, min=0, max=1000, help="0 = off"),
                  top_p: float = Param(0.95, min=0.0, max=1.0, help="sample among the likeliest tokens that make up this share"),
                  min_p: float = Param(0.05, min=0.0, max=1.0, help="0 = off"),
                  repetition_penalty: float = Param(1.05, min=0.0, max=5.0, help="above 1: repeats less; 1 = off"),
                  seed: int = Param(0, min=0, max=0xffffffffffffffff, help="the same seed writes the same text"),
                  thinking: bool = Param(False, help="let the model reason first (Qwen3); its reasoning comes out "
                                                     "as `thinking`"),
                  use_default_template: bool = Param(True, help="wrap the prompt in the model's chat turn; off: "
                                                                "the text as written (no system turn)")):
    """Write text with the text encoder's own language model (ComfyUI's TextGenerate): Qwen3 (qwen_3_4b), Gemma 3
    (LTX-2's gemma_3_12B_it), Gemma 4 (gemma4_e4b_it), Qwen3-VL (qwen3vl_4b) or Qwen3.5 (qwen3.5_4b), the last three of
    which also read `image` (and Gemma 4 watches `video` and E2B / E4B hear `audio`, as ComfyUI prepares them), loaded
    by load.text_encoder answer `prompt`, following `system_prompt`, through transformers' generate. The same seed gives the same text, which
    the run's log shows. CLIP and T5 encoders have no language model and are refused."""
    from nodes.generate.textgen import generate_text
    if video is not None and image is not None:
        ctx.log("image is not read: Gemma 4 reads the video's frames in its place, as ComfyUI does")
        image = None
    text, reasoning = generate_text(text_encoder, prompt, max_length=max_length, sample=sampling,
                                    temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                    repetition_penalty=repetition_penalty, seed=seed, thinking=thinking,
                                    use_template=use_default_template, system=system_prompt, image=image,
                                    audio=audio, video=video)
    ctx.log(f"generated: {text}")       # what ComfyUI's PreviewAny shows, in the run's log
    return {"text": text, "thinking": reasoning}


_SIZE = dict(zero="auto", min=0, max=16384, help="0 = the image being made")


@node("encode.sdxl", title="Encode Prompt (SDXL)", category="Conditioning", version=3,
      migrations={1: dict, 2: dict},
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def encode_sdxl(ctx, text_encoder: TEXT_ENCODER,
                text: str = Param("", kind="text", names_files=embedding_files,
                                  help="the prompt for OpenCLIP-G (SDXL's main encoder, and its pooled embedding)"),
                text_l: str = Param("", kind="text", names_files=embedding_files,
                                    help="the prompt for CLIP-L; empty = the same as text"),
                negative: str = Param("", kind="text", names_files=embedding_files, help="what to steer away from"),
                width: int = Param(0, **_SIZE), height: int = Param(0, **_SIZE),
                crop_w: int = Param(0, min=0, max=16384, help="crop left edge SDXL is told of (0 = uncropped)"),
                crop_h: int = Param(0, min=0, max=16384, help="crop top edge SDXL is told of (0 = uncropped)"),
                target_width: int = Param(0, **_SIZE), target_height: int = Param(0, **_SIZE),
                clip_skip: int = Param(1, min=1, max=24, help="1 and 2: the penultimate layer SDXL was trained on"),
                weighting: str = Param("kinograph", choices=("kinograph", "comfy"),
                                       help="emphasis rule, as encode.text's"),
                aesthetic: float = Param(0.0, zero="auto", min=0.0, max=10.0, help="refiner only: the aesthetic score it is "
                                                                     "told; 0 = 6 positive, 2.5 negative")):
    """SDXL's prompt with its size conditioning (ComfyUI's CLIPTextEncodeSDXL and CLIPTextEncodeSDXLRefiner): SDXL
    was told each training image's original size and crop; a large original size and no crop steer it to sharp,
    whole compositions. Both prompts get the same sizes. encode.text gives SDXL the image's own size, uncropped.
    The refiner reads OpenCLIP-G alone and an aesthetic score in place of the target size."""
    from nodes.generate.text import encode_sdxl as run
    sizes = (height, width, crop_h, crop_w, target_height, target_width)
    kw = dict(clip_skip=clip_skip, weighting=weighting, aesthetic=aesthetic)
    return {"positive": run(text_encoder, text, text_l, sizes, ctx.log, **kw),
            "negative": run(text_encoder, negative, "", sizes, ctx.log, **{**kw, "aesthetic": 0.0})}


@node("encode.flux", title="Encode Prompt (FLUX.1)", category="Conditioning", version=3, migrations={1: dict, 2: dict},
      outputs={"positive": CONDITIONING})
def encode_flux(ctx, text_encoder: TEXT_ENCODER,
                text: str = Param("", kind="text", help="the prompt for T5-XXL, the text FLUX.1 attends to"),
                text_l: str = Param("", kind="text", help="the prompt for CLIP-L (its pooled embedding); empty = the "
                                                          "same as text"),
                weighting: str = Param("kinograph", choices=("kinograph", "comfy"),
                                       help="emphasis rule, as encode.text's")):
    """FLUX.1's two prompts (ComfyUI's CLIPTextEncodeFlux): T5-XXL reads `text`, CLIP-L `text_l`. FLUX.1 dev's
    guidance is sample's cfg; encode.text gives both encoders the same prompt."""
    from nodes.generate.text import encode_flux as run
    return {"positive": run(text_encoder, text, text_l, ctx.log, weighting=weighting)}


@node("encode.sd3", title="Encode Prompt (SD3)", category="Conditioning", version=6,
      migrations={1: dict, 2: dict, 3: dict, 4: dict, 5: dict},
      outputs={"positive": CONDITIONING})
def encode_sd3(ctx, text_encoder: TEXT_ENCODER,
               text: str = Param("", kind="text", help="the prompt for T5-XXL"),
               text_l: str = Param("", kind="text", help="the prompt for CLIP-L; empty = the same as text"),
               text_g: str = Param("", kind="text", help="the prompt for OpenCLIP-G; empty = the same as text"),
               weighting: str = Param("kinograph", choices=("kinograph", "comfy"),
                                      help="emphasis rule, as encode.text's")):
    """Stable Diffusion 3's three prompts (ComfyUI's CLIPTextEncodeSD3): T5-XXL reads `text`, CLIP-L `text_l` and
    OpenCLIP-G `text_g`; encode.text gives all three the same prompt."""
    from nodes.generate.text import encode_sd3 as run
    return {"positive": run(text_encoder, text, text_l, text_g, ctx.log, weighting=weighting)}


@node("encode.qwen_edit", title="Encode Prompt and Pictures (Qwen-Image-Edit)", category="Conditioning")
def encode_qwen_edit(ctx, text_encoder: TEXT_ENCODER, image: IMAGE,
                     vae: VAE = Input(optional=True, help="to give the transformer the pictures' latents too (the "
                                                          "edit keeps them); without it only the prompt sees them"),
                     image2: IMAGE = Input(optional=True, help="a second picture (template plus)"),
                     image3: IMAGE = Input(optional=True, help="a third picture (template plus)"),
                     text: str = Param("", kind="text", help="what to change"),
                     template: str = Param("plus", choices=("edit", "plus"),
                                           help="edit: Qwen-Image-Edit's, one picture; plus: Qwen-Image-Edit-2509's "
                                                "and later, up to three (\"Picture 1: ...\")"),
                     size: int = Param(1024, min=0, max=4096,
                                       help="Qwen-Image 2.1: each picture is read at about size x size pixels "
                                            "(QwenImage21Pipeline's output_resolution); 0 = at its own size, each "
                                            "side rounded to a multiple of 32 (ComfyUI's resolution 0)")) -> CONDITIONING:
    """Tell Qwen-Image-Edit (or Qwen-Image 2.1) what to change in a keyframe: Qwen2.5-VL (2.1: Qwen3-VL) reads the
    prompt and sees the pictures, and (with a VAE) each picture's latent rides in the conditioning for the
    transformer to read beside the noise (ComfyUI's TextEncodeQwenImageEdit / TextEncodeQwenImageEditPlus;
    diffusers' QwenImage21Pipeline with image=). The pictures are resized to about a megapixel, multiples of 32, as
    diffusers' pipelines resize them; sample a latent of the size to make (the picture's vae.encode, at denoise 1).
    Give the negative prompt its own encode.qwen_edit with the same pictures. Qwen-Image 2.1 needs the VAE (its
    latents fill the places Qwen3-VL saw the pictures) and ignores template. With LongCat-Image's text encoder (type
    longcat_image) it is LongCat-Image-Edit's encoding: one picture, FLUX.1's VAE, template ignored."""
    from nodes.generate.qwen_edit import encode_edit
    pictures = [p for p in (image, image2, image3) if p is not None]
    return encode_edit(text_encoder, vae, text, pictures, template, ctx.log, size)


@node("encode.boogu_edit", title="Encode Edit (Boogu-Image)", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def encode_boogu_edit(ctx, text_encoder: TEXT_ENCODER,
                      vae: VAE = Input(optional=True, help="FLUX.1's ae: to give the transformer the pictures' latents "
                                                          "(the edit keeps them); without it only the prompt sees them"),
                      image: IMAGE = Input(optional=True, help="the picture to edit"),
                      image2: IMAGE = Input(optional=True, help="a second picture"),
                      image3: IMAGE = Input(optional=True, help="a third picture"),
                      image4: IMAGE = Input(optional=True, help="a fourth picture"),
                      text: str = Param("", kind="text", help="what to change"),
                      negative: str = Param("", kind="text", help="the negative prompt, read without the pictures"),
                      size: int = Param(1024, min=16, max=4096,
                                        help="each picture's latent is about size x size pixels (ComfyUI's 1024)"),
                      vision_size: int = Param(384, min=16, max=4096,
                                               help="Qwen3-VL sees each picture at about this size squared (the "
                                                    "reference pipeline's 384)")):
    """Tell Boogu-Image Edit what to change (ComfyUI's TextEncodeBooguEdit): Qwen3-VL-8B reads the instruction having
    seen the pictures (positive only), and each picture's latent rides on both prompts for the transformer to read
    beside the noise. Sample a latent of the size to make at cfg 3.5 or so (Turbo: 1)."""
    from nodes.generate.boogu_edit import encode_boogu_edit as run
    pictures = [p for p in (image, image2, image3, image4) if p is not None]
    positive, neg = run(text_encoder, vae, text, negative, pictures, size, vision_size)
    return {"positive": positive, "negative": neg}


@node("encode.joyimage_edit", title="Encode Edit (JoyImage)", category="Conditioning")
def encode_joyimage_edit(ctx, text_encoder: TEXT_ENCODER,
                         vae: VAE = Input(optional=True, help="the Wan 2.1 VAE: to give the transformer the pictures' "
                                                             "latents (the edit keeps them); without it only the "
                                                             "prompt sees them"),
                         image: IMAGE = Input(optional=True, help="the picture to edit"),
                         image2: IMAGE = Input(optional=True, help="a second picture"),
                         image3: IMAGE = Input(optional=True, help="a third picture"),
                         image4: IMAGE = Input(optional=True, help="a fourth picture"),
                         image5: IMAGE = Input(optional=True, help="a fifth picture"),
                         image6: IMAGE = Input(optional=True, help="a sixth picture"),
                         text: str = Param("", kind="text", help="what to change (or the negative prompt)"),
                         size: int = Param(1024, min=256, max=4096, step=256,
                                           help="the pictures are resized to JoyImage's trained shapes about size x "
                                                "size pixels (ComfyUI's 1024)")) -> CONDITIONING:
    """Tell JoyImage Edit what to change (ComfyUI's TextEncodeJoyImageEdit): each picture is cut to the nearest of
    JoyImage's trained shapes, Qwen3-VL-8B reads the prompt having seen them, and their latents ride on the
    conditioning for the transformer to read beside the noise. Encode the negative with its own node and the same
    pictures; sample a latent of the size to make at cfg 4 (with guide.cfg_norm, as ComfyUI's template does)."""
    from nodes.generate.joyimage_edit import encode_joyimage_edit as run
    pictures = [p for p in (image, image2, image3, image4, image5, image6) if p is not None]
    return run(text_encoder, vae, text, pictures, size)


@node("encode.fibo2", title="Encode Edit (FIBO 2)", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def encode_fibo2(ctx, text_encoder: TEXT_ENCODER,
                 vae: VAE = Input(optional=True, help="FLUX.2's VAE: to give the transformer the pictures' latents "
                                                     "(the edit keeps them); without it only the prompt sees them"),
                 image: IMAGE = Input(optional=True, help="the picture to edit (none: make a picture from the prompt)"),
                 image2: IMAGE = Input(optional=True, help="a second picture"),
                 image3: IMAGE = Input(optional=True, help="a third picture"),
                 image4: IMAGE = Input(optional=True, help="a fourth picture"),
                 text: str = Param("", kind="text", help="what to change, or a JSON caption with an edit_instruction "
                                                         "(the prompt enhancer's); without pictures, the caption"),
                 negative: str = Param("", kind="text", help="the negative prompt, read without the pictures; empty: "
                                                             "the null caption FIBO 2 was trained with"),
                 width: int = Param(0, min=0, max=8192, help="the result's width (floored to a multiple of 16); 0: "
                                                             "FIBO 2's trained size for the first picture's shape"),
                 height: int = Param(0, min=0, max=8192, help="the result's height, as width"),
                 batch_size: int = Param(1, min=1, max=64, help="pictures made at once")):
    """Tell FIBO 2 what to change (ComfyUI's TextEncodeFibo2): Qwen3-VL-4B reads the prompt having seen the pictures,
    each picture's FLUX.2 latent rides on both prompts for the transformer to read beside the noise, and the latent
    to sample is the result's size. One picture is cut to that size; several each to their own trained size. Sample
    dev at cfg 5 over 50 steps, edit turbo at cfg 1 over 4."""
    from nodes.generate.fibo2_edit import encode_fibo2 as run
    pictures = [p for p in (image, image2, image3, image4) if p is not None]
    positive, neg, latent = run(text_encoder, vae, text, negative, pictures, width, height, batch_size)
    return {"positive": positive, "negative": neg, "latent": latent}


@node("encode.mage_flow_edit", title="Encode (Mage-Flow)", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def encode_mage_flow_edit(ctx, text_encoder: TEXT_ENCODER,
                          vae: VAE = Input(optional=True, help="the Mage VAE: to give the transformer the pictures' "
                                                              "latents (the edit keeps them); without it only the "
                                                              "prompt sees them"),
                          image: IMAGE = Input(optional=True, help="the picture to edit (none: make a picture from "
                                                                   "the prompt)"),
                          image2: IMAGE = Input(optional=True, help="a second picture"),
                          image3: IMAGE = Input(optional=True, help="a third picture"),
                          image4: IMAGE = Input(optional=True, help="a fourth picture"),
                          image5: IMAGE = Input(optional=True, help="a fifth picture"),
                          image6: IMAGE = Input(optional=True, help="a sixth picture"),
                          image7: IMAGE = Input(optional=True, help="a seventh picture"),
                          image8: IMAGE = Input(optional=True, help="an eighth picture"),
                          image9: IMAGE = Input(optional=True, help="a ninth picture"),
                          image10: IMAGE = Input(optional=True, help="a tenth picture"),
                          image11: IMAGE = Input(optional=True, help="an eleventh picture"),
                          image12: IMAGE = Input(optional=True, help="a twelfth picture"),
                          image13: IMAGE = Input(optional=True, help="a thirteenth picture"),
                          image14: IMAGE = Input(optional=True, help="a fourteenth picture"),
                          image15: IMAGE = Input(optional=True, help="a fifteenth picture"),
                          image16: IMAGE = Input(optional=True, help="a sixteenth picture"),
                          text: str = Param("", kind="text", help="the prompt, or what to change"),
                          negative: str = Param("", kind="text", help="the negative prompt, read with the same "
                                                                      "pictures"),
                          width: int = Param(0, min=0, max=8192, help="the result's width (floored to a multiple of "
                                                                      "16); 0: the first picture's (1024 without one)"),
                          height: int = Param(0, min=0, max=8192, help="the result's height, as width"),
                          batch_size: int = Param(1, min=1, max=64, help="pictures made at once")):
    """Tell Mage-Flow what to make or change (ComfyUI's TextEncodeMageFlowEdit): Qwen3-VL-4B reads the prompt (and
    the negative) having seen the pictures, each picture's Mage VAE latent at the result's size rides on both for the
    transformer to read beside the noise, and the latent to sample is the result's size. Sample base / edit at cfg 5
    over 30 steps, Turbo at cfg 1 over 4."""
    from nodes.generate.mage_flow_edit import encode_mage_flow_edit as run
    pictures = [p for p in (image, image2, image3, image4, image5, image6, image7, image8, image9, image10, image11,
                            image12, image13, image14, image15, image16) if p is not None]
    positive, neg, latent = run(text_encoder, vae, text, negative, pictures, width, height, batch_size)
    return {"positive": positive, "negative": neg, "latent": latent}


@node("encode.image", title="Encode Image (CLIP vision)", category="Conditioning")
def encode_image(ctx, image_encoder: IMAGE_ENCODER, image: IMAGE,
                 crop: str = Param("center", choices=("center", "none"),
                                   help="center: the encoder's square from the middle; none: the whole image "
                                        "squeezed into it")) -> CONDITIONING:
    """CLIP-vision embedding of an image for image-to-video (SVD's prompt; Wan i2v's image tokens;
    HunyuanVideo i2v's llava image tokens for encode.text_image)."""
    from nodes.generate.image_cond import encode_image as run
    return run(image_encoder, image, crop)


@node("condition.load", title="Load Conditioning", category="Conditioning")
def load_conditioning(ctx, name: str = Param("", kind="path", required=True, locate=locator("embeddings"),
                                             help="a stored prompt: its .safetensors file (a float tensor named "
                                                  "'conditioning') in an 'embeddings' model folder, or its path"),
                      family: str = Param("qwenimage", choices=("qwenimage",),
                                          help="the model the prompt was encoded for")) -> CONDITIONING:
    """A prompt stored as its embedding (ComfyUI's Load Conditioning), for a model run without its text encoder:
    Marigold v2's task prompts (marigold_v2_depth_conditioning and its normals and albedo twins, Qwen-Image-Edit's
    [1, tokens, 3584]). Read as tensors only: safetensors, or a torch file through weights_only (a file that would
    run code is refused); anything but the 'conditioning' tensor and its attention_mask is refused by name."""
    from nodes.generate.marigold import load_conditioning as load
    from nodes.generate.model_manager import resolve_model_path
    return load(resolve_model_path(as_given(name, ctx.workflow_dir), "embeddings", "conditioning file"), family)


@node("condition.bernini", title="Bernini-R Conditioning", category="Conditioning", device="gpu",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_bernini(ctx, vae: VAE, positive: CONDITIONING, negative: CONDITIONING = Input(optional=True),
                      source_video: VIDEO = Input(optional=True, help="the video (or picture) to edit: fitted to "
                                                                       "width x height"),
                      reference_video: VIDEO = Input(optional=True, help="moving content to put into the source"),
                      references: VIDEO = Input(optional=True, help="reference pictures (each frame one: image0, "
                                                                     "image1, ... in the prompt)"),
                      width: int = Param(832, min=16, max=8192, help="video width, a multiple of 16"),
                      height: int = Param(480, min=16, max=8192, help="video height, a multiple of 16"),
                      length: int = Param(81, min=1, max=8192, help="frames (4n+1; 1 for a picture)"),
                      ref_max_size: int = Param(848, min=16, max=8192,
                                                help="longest side of the reference video and pictures")):
    """Bernini-R's in-context conditioning (ComfyUI's BerniniConditioning): the source video, the reference video and
    each reference picture encoded by the Wan VAE as streams the model reads beside the video it draws, and the empty
    latent to draw it in. What is connected says the task: nothing text-to-video, the source video editing, the
    source and pictures reference-guided editing, pictures alone reference-to-video, the source and the reference
    video putting one into the other. The source is resized to the video's size (area, centre-cropped), the
    references keep their shape, the long side at most ref_max_size, sides snapped to 16. A size off Wan's 16-pixel
    grid is taken down to it (the log says so): ComfyUI takes it down to 8 and pads the model's input."""
    from nodes.generate.families import family
    from nodes.generate.vae_ops import empty_latent
    from nodes.generate.wan_bernini import streams, with_streams
    need_wan_vae(vae, "condition.bernini")
    if width % 16 or height % 16:
        ctx.log(f"condition.bernini: {width}x{height} taken down to {width // 16 * 16}x{height // 16 * 16}, Wan's "
                "16-pixel grid")
        width, height = max(16, width // 16 * 16), max(16, height // 16 * 16)
    latents = streams(vae, width, height, length, source_video, reference_video, references, ref_max_size)
    return {"positive": with_streams(positive, latents), "negative": with_streams(negative, latents),
            "latent": empty_latent(vae, length, width, height, family("wan").fps)}


@node("condition.frames", title="First/Last Frame", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def condition_frames(ctx, vae: VAE, positive: CONDITIONING, latent: LATENT,
                     negative: CONDITIONING = Input(optional=True),
                     first: IMAGE = Input(optional=True, help="the video's first frame"),
                     last: IMAGE = Input(optional=True, help="the video's last frame (Wan FLF2V, MiniMax H3)"),
                     image_embeds: CONDITIONING = Input(optional=True, help="encode.image of the frame (Wan i2v)"),
                     motion: int = Param(127, min=1, max=255, help="SVD motion bucket: more = more motion"),
                     noise_aug: float = Param(0.02, min=0.0, max=1.0, help="SVD: noise added to the image"),
                     tracks: TRACKS = Input(optional=True, help="motion.tracks over the clip's frames (Wan ATI, "
                                                                "Wan-Move)"),
                     method: str = Param("ati", choices=("ati", "wan_move"), help="how the tracks steer: the model's"),
                     temperature: float = Param(220.0, min=1.0, max=1000.0,
                                                help="ATI: sharpness of each track's spot (more = smaller)"),
                     topk: int = Param(2, min=1, max=10, help="ATI: tracks blended at each latent pixel"),
                     strength: float = Param(1.0, min=0.0, max=100.0, help="Wan-Move: how fully features move"),
                     text_encoder: TEXT_ENCODER = Input(optional=True, help="MiniMax H3: its Qwen3-VL, to read "
                                                                            "positive's prompt after the keyframes"),
                     guide: IMAGE = Input(optional=True, help="MiniMax H3: a picture to pin at guide_frame "
                                                              "(cover-cropped), after the frames positive holds"),
                     guide_frame: int = Param(0, min=-9999, max=9999, help="MiniMax H3: the frame guide pins; "
                                                                           "negative counts from the end")):
    """Image-to-video conditioning: pin the first (and for Wan and MiniMax H3, the last) frame of the generated video.

    Wan ATI (Wan 2.1 I2V ATI, ComfyUI's WanTrackToVideo) and Wan-Move (ComfyUI's WanMoveTrackToVideo) models
    also take point tracks: what is under each track's start in the first frame is carried along it. MiniMax H3
    reads its prompt after the keyframes' pictures ("<Picture 1>" is the first given): connect the text encoder.
    MiniMax H3 also takes a guide picture at any frame: chain condition.frames to pin several (ComfyUI's
    MiniMaxH3AddGuide); guides are not read with the prompt."""
    from nodes.generate.image_cond import condition_frames as run
    return run(vae, positive, negative, latent, first, last, image_embeds, motion=motion, noise_aug=noise_aug,
               tracks=tracks, method=method, temperature=temperature, topk=topk, strength=strength,
               text_encoder=text_encoder, guide=guide, guide_frame=guide_frame)


@node("condition.camera", title="Camera Control", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def condition_camera(ctx, vae: VAE, positive: CONDITIONING, latent: LATENT,
                     negative: CONDITIONING = Input(optional=True),
                     camera: CAMERA = Input(optional=True, help="the camera path (motion.camera_path, "
                                                                "motion.wan_camera, a pose file)"),
                     first: IMAGE = Input(optional=True, help="the video's first frame"),
                     image_embeds: CONDITIONING = Input(optional=True, help="encode.image of the first frame")):
    """Camera-controlled image-to-video for Wan Fun camera models (ComfyUI's WanCameraImageToVideo).

    The camera path becomes per-pixel Plücker rays at the latent's size and length (the path is fitted
    to the picture, a shorter one holds its last pose); the first frame pins the start."""
    from nodes.generate.image_cond import condition_camera as run
    return run(vae, positive, negative, latent, camera, first, image_embeds)


@node("condition.fun_control", title="Wan Fun Control", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def condition_fun_control(ctx, vae: VAE, positive: CONDITIONING, latent: LATENT,
                          negative: CONDITIONING = Input(optional=True),
                          control: VIDEO = Input(optional=True, help="the control video: canny edges (control.canny), a "
                                                                     "depth (depth.estimate) or pose video"),
                          first: IMAGE = Input(optional=True, help="the video's first frame"),
                          image_embeds: CONDITIONING = Input(optional=True, help="encode.image of the first frame "
                                                                                 "(Wan 2.1)"),
                          reference: IMAGE = Input(optional=True, help="Wan 2.2: an image of the subject and look "
                                                                       "to follow (not a frame of the video)")):
    """Steer a Wan 2.1 or 2.2 Fun Control model by a control video (ComfyUI's WanFunControlToVideo and
    Wan22FunControlToVideo).

    The control video's latents and the start frame's ride beside the noise, each picture resized to cover the
    latent's size and centre-cropped; a control video shorter than the latent leaves the rest of the frames free.
    Wan 2.2's models also read a reference image, as tokens of their own ahead of the video's."""
    from nodes.generate.image_cond import condition_fun_control as run
    return run(vae, positive, negative, latent, control, first, image_embeds, reference)


@node("condition.reference", title="Reference Latent (FLUX.1 Kontext)", category="Conditioning")
def condition_reference(ctx, conditioning: CONDITIONING,
                        latent: LATENT = Input(optional=True, help="vae.encode of the picture to edit (after "
                                                                   "image.kontext_scale), or of a clip: frame i is "
                                                                   "made from its frame i"),
                        method: str = Param("default", choices=("default", "offset", "index", "uxo", "index_timestep_zero"),
                                            help="where several references sit: offset beside one another, "
                                                 "index each on its own plane, uxo beside the picture made (UNO, "
                                                 "USO), index_timestep_zero as index, read as clean "
                                                 "(Qwen-Image-Edit-2511); default: as an earlier condition.reference "
                                                 "set it, else the model's own (offset for FLUX.1 Kontext, index "
                                                 "for Qwen-Image-Edit)")) -> CONDITIONING:
    """Give FLUX.1 Kontext the picture to edit: the prompt then says what to change ("make the car red, keep
    everything else"). Chain several to give several pictures (ComfyUI's ReferenceLatent; method is its
    FluxKontextMultiReferenceLatentMethod). Sample a latent of the picture's size (its vae.encode, at denoise 1)."""
    from nodes.generate.reference import add_reference, with_method
    out = conditioning if latent is None else add_reference(conditioning, latent)
    return out if method == "default" else with_method(out, method)


@node("image.kontext_scale", title="Kontext Image Size", category="Conditioning", temporal_radius=0)
def kontext_scale(ctx, video: VIDEO) -> VIDEO:
    """Resize to the size FLUX.1 Kontext was trained at whose shape is nearest the picture's (17 sizes of about a
    megapixel, 672x1568 to 1568x672), filling it and cutting the overflow, centred (ComfyUI's
    FluxKontextImageScale). Every frame of a clip alike."""
    from nodes.generate.reference import kontext_size
    from nodes.video.edit import resize
    return resize(video, *kontext_size(video.width, video.height), "lanczos", "crop")


@node("condition.control_image", title="Control Image (FLUX.1 Depth / Canny)", category="Conditioning",
      device="gpu", outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_control_image(ctx, vae: VAE, positive: CONDITIONING, video: VIDEO = Input(
        help="the depth map (depth.estimate) or edges (control.canny) to follow: one picture, or a clip"),
        negative: CONDITIONING = Input(optional=True)):
    """Steer a FLUX.1 Depth or Canny model by a depth map or edge picture (ComfyUI's InstructPixToPixConditioning):
    its latent rides beside the noise on the model's extra channels. For HiDream-E1 it is the picture to edit, read
    beside the noise (with guide.dual_cfg, as ComfyUI's E1 templates). Sample the latent this gives (empty, of the
    picture's size) at denoise 1."""
    from nodes.generate.image_cond import condition_control_image as run
    return run(vae, positive, negative, video, ctx.check, ctx.progress)


@node("vae.encode", title="VAE Encode", category="Latent", device="gpu")
def vae_encode(ctx, vae: VAE, video: VIDEO) -> LATENT:
    """Encode a clip into the model's latent space (for video-to-video with sample's denoise < 1). A size the
    model's grid does not divide (16 pixels for most families) is cropped, centred, to the largest one it does,
    as ComfyUI's VAEEncode crops; the log says what was cut. An RGBA VAE (Qwen-Image-Layered's, Qwen-Image 2.1's)
    reads the clip's alpha too."""
    from nodes.generate.vae_ops import encode_clip, fit_to_grid
    video, note = fit_to_grid(vae, video)
    if note:
        ctx.log(f"{ctx.node_id}: {note}")
    return encode_clip(vae, video, ctx.check, ctx.progress)


_INPAINT_MASK = Input(help="the region to redraw (1): a still for every frame, or a mask per frame (a mask "
                           "video through mask.from_video)")


@node("latent.set_mask", title="Set Latent Mask (Inpaint)", category="Latent")
def latent_set_mask(ctx, latent: LATENT, mask: MASK = _INPAINT_MASK) -> LATENT:
    """Redraw only the masked region (ComfyUI's SetLatentNoiseMask): at every step the sampler puts the rest of
    the latent back as it came in (noised to the step's level), so outside the mask the picture stays; inside it
    is drawn anew at sample's denoise (below 1 keeps its structure: masked img2img). Soft edges blend; a per-frame
    mask follows a moving region. With a plain model, feed vae.encode's latent; with an inpainting model,
    condition.inpaint."""
    from nodes.generate.inpaint import set_mask
    return set_mask(latent, mask)


@node("vae.encode_inpaint", title="VAE Encode (for Inpainting)", category="Latent", device="gpu")
def vae_encode_inpaint(ctx, vae: VAE, video: VIDEO, mask: MASK = _INPAINT_MASK,
                       grow: int = Param(6, min=0, max=64, help="pixels the mask grows by (a square) before it "
                                                                "becomes the latent's, so the seam is redrawn")) -> LATENT:
    """Encode a picture or clip with the masked pixels grey, the mask kept on the latent (ComfyUI's
    VAEEncodeForInpaint). For inpainting models at denoise 1: the grey is all they are told of the region. A plain
    model would redraw the grey; for it use vae.encode then latent.set_mask."""
    from nodes.generate.inpaint import encode_for_inpaint
    return encode_for_inpaint(vae, video, mask, grow, ctx.check, ctx.progress)


@node("condition.inpaint", title="Inpaint Conditioning", category="Conditioning", device="gpu",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_inpaint(ctx, vae: VAE, positive: CONDITIONING, video: VIDEO, mask: MASK = _INPAINT_MASK,
                      negative: CONDITIONING = Input(optional=True),
                      noise_mask: bool = Param(True, help="keep the picture outside the mask as it is (the latent's "
                                                          "mask); off lets the model touch it up too")):
    """Inpainting-model conditioning (ComfyUI's InpaintModelConditioning): the prompts carry the mask and the picture
    with the masked pixels grey, which an inpainting checkpoint (SD 1.5 / SDXL, 9 input channels) reads beside the
    latent; the latent is the picture's own encoding, so denoise below 1 works too."""
    from nodes.generate.inpaint import inpaint_conditioning
    pos, neg, latent = inpaint_conditioning(vae, positive, negative, video, mask, noise_mask, ctx.check, ctx.progress)
    return {"positive": pos, "negative": neg, "latent": latent}


@node("vae.decode", title="VAE Decode", category="Latent", device="gpu")
def vae_decode(ctx, vae: VAE, latent: LATENT) -> VIDEO:
    """Decode latents to a video, streaming chunk by chunk where the VAE allows; tiled retry on out-of-memory."""
    from nodes.generate.vae_ops import decode_latent
    return decode_latent(vae, latent)


@node("vae.decode_sound", title="VAE Decode Sound", category="Latent", device="gpu")
def vae_decode_sound(ctx, vae: VAE, latent: LATENT) -> AUDIO:
    """The soundtrack of a video latent made with its sound, decoded by the model's audio VAE (ComfyUI's
    VAEDecodeAudio on MiniMax H3's minimax_h3_audio_vae_*); give it to the frames with io.set_audio. LTX-2's sound
    comes out of vae.decode with the frames."""
    from nodes.generate.vae_ops import decode_sound
    return decode_sound(vae, latent)


@node("latent.empty", title="Empty Latent", category="Latent", preflight=latent_preflight)
def latent_empty(ctx, vae: VAE,
                 start_image: IMAGE = Input(optional=True, help="Wan 2.2 TI2V-5B: the video's first frame, kept "
                                                                 "as it is while sampling (image-to-video)"),
                 frames: int = Param(16, min=1, max=100000,
                                 help="length of the video in frames (Wan, CogVideoX, HunyuanVideo: 4n+1; LTX: 8n+1)"),
                 width: int = Param(512, min=8, max=8192,
                                help="video width in pixels, a multiple of the family's size step (16 for most)"),
                 height: int = Param(512, min=8, max=8192,
                                 help="video height in pixels, a multiple of the family's size step (16 for most)"),
                 fps: float = Param(0.0, zero="auto", min=0.0, max=240.0, help="0 = the family's usual rate"),
                 size_fit: str = Param("exact", choices=("exact", "floor"),
                                       help="a size or frame count off the family's steps: exact refuses it; floor "
                                            "makes the one below (ComfyUI's empty latents), saying so in the log")
                 ) -> LATENT:
    """An all-zero latent for text-to-video, sized for the model's VAE.

    Checks the family's frame rule (Wan/CogVideoX/HunyuanVideo 4n+1, LTX 8n+1) and size multiple
    (16 for Wan, CogVideoX, HunyuanVideo and kinograph-mini; 32 for LTX and Wan 2.2 TI2V-5B; 8 otherwise).
    With a start image (Wan 2.2 TI2V-5B and its VAE) the first latent frame is the image's encoding,
    which the sampler keeps clean (ComfyUI's Wan22ImageToVideoLatent); other image-to-video models pin
    their first frame with condition.frames."""
    from nodes.generate.families import family
    from nodes.generate.vae_ops import empty_latent
    return empty_latent(vae, frames, width, height, fps or family(vae.family).fps, start_image, size_fit, ctx.log)


@node("latent.start_image", title="Start Image in Latent", category="Latent", device="gpu")
def latent_start_image(ctx, vae: VAE, latent: LATENT, image: IMAGE,
                       strength: float = Param(1.0, min=0.0, max=1.0,
                                               help="1: the video starts on the image exactly; lower lets the "
                                                    "model change it that much")) -> LATENT:
    """Image-to-video for LTX-2 and Wan 2.2 TI2V-5B (ComfyUI's LTXVImgToVideoInplace): the image, fitted to the
    latent's size (centre crop), becomes its first latent frame, which the sampler keeps (at strength 1) while it
    makes the rest. Works on any of the model's latents: an empty one, or an upscaled first pass for a second."""
    from nodes.generate.vae_ops import with_start_image
    return with_start_image(vae, latent, image, strength)


@node("latent.set_sound", title="Set Sound in Latent", category="Latent", device="gpu")
def latent_set_sound(ctx, vae: VAE, latent: LATENT, audio: AUDIO) -> LATENT:
    """Sound-to-video for LTX-2 (ComfyUI's LTXVAudioVAEEncode, SetLatentNoiseMask 0 and LTXVConcatAVLatent): your
    song or voice (io.load_audio, io.trim_audio), encoded by LTX-2's audio VAE, becomes the latent's sound, which
    generate.sample keeps as it is while it makes the video to it (a singer's lips to the words), and vae.decode
    gives back with the frames. The sound plays from the clip's start: a longer one is cut at its end, after a
    shorter one the model makes the rest. Any rate and channel count (mono is heard on both sides); a file that is
    missing, damaged or too short is named."""
    from nodes.generate.ltx2_sound import with_sound
    return with_sound(vae, latent, audio, ctx.log)


@node("condition.reference_voice", title="LTX-2 Reference Voice (ID-LoRA)", category="Conditioning", device="gpu",
      outputs={"model": MODEL, "positive": CONDITIONING, "negative": CONDITIONING}, passes={"model": "model"})
def condition_reference_voice(ctx, model: MODEL, positive: CONDITIONING, negative: CONDITIONING, vae: VAE, audio: AUDIO,
                              identity_scale: float = Param(3.0, min=0.0, max=100.0,
                                                            help="how strongly the voice is pushed towards the "
                                                                 "reference's (an extra model pass per step; 0: none)"),
                              start: float = Param(0.0, min=0.0, max=1.0, help="share of the steps where it begins"),
                              end: float = Param(1.0, min=0.0, max=1.0, help="share of the steps where it ends")):
    """A speaker's voice for LTX-2's ID-LoRA to give the clip's sound (ComfyUI's LTXVReferenceAudio): a few
    seconds of them speaking (about 5 s, as it was trained), encoded by LTX-2's audio VAE, are read by the
    transformer before the clip's sound at timestep 0; identity guidance moves each step away from the prediction
    without the reference by identity_scale. Load the ID-LoRA with lora.image."""
    from nodes.generate.ltx2_sound import with_reference
    model, positive, negative = with_reference(model, positive, negative, vae, audio, identity_scale, start, end)
    return {"model": model, "positive": positive, "negative": negative}


@node("generate.sample", title="Sample", category="Sampling", expensive=True, device="gpu",
      preflight=guidance_preflight)
def sample(ctx, model: MODEL, positive: CONDITIONING, latent: LATENT,
           negative: CONDITIONING = Input(optional=True),
           noise: NOISE = Input(optional=True, help="initial noise (noise.* priors); default: seeded i.i.d."),
           steps: int = Param(20, min=1, max=1000, help="denoising steps: more is slower and usually cleaner"),
           cfg: float = Param(0.0, zero="auto", min=0.0, max=50.0,
                              help="guidance scale; 0 = the model's usual value (its family's; 1 for FLUX.3 "
                                   "[klein]'s step-distilled file)"),
           sampler: str = Param("euler", choices=SAMPLERS,
                                help="the update rule per step; flow_euler for flow-matching models (Wan, LTX, "
                                     "HunyuanVideo, kinograph-mini)"),
           scheduler: str = Param("default", choices=("default", "karras", "normal", "simple", "sgm_uniform", "beta",
                                                      "linear_quadratic", "exponential", "beta57", "ddim_uniform",
                                                      "kl_optimal"),
                                  help="default = the noise levels of the model's own scheduler; normal, simple, "
                                       "sgm_uniform, beta, linear_quadratic, exponential, ddim_uniform and "
                                       "kl_optimal are ComfyUI's, from its table; beta57 is RES4LYF's (beta at alpha "
                                       "0.5, beta 0.7)"),
           denoise: float = Param(1.0, min=0.01, max=1.0, help="below 1: keep the input latent's structure "
                                                                "(video-to-video), running the last denoise "
                                                                "share of the steps (ComfyUI's steps 20 at "
                                                                "0.5 are steps 40 here)"),
           seed: int = Param(0, kind="seed", help="the starting noise: the same seed gives the same video"),
           start_step: int = Param(0, min=0, max=10000, help="run the schedule from this step (a second sampler "
                                                              "finishing another's work)"),
           end_step: int = Param(10000, min=0, max=10000, help="stop before this step; `steps` or more = the end"),
           add_noise: bool = Param(True, help="off: the input latent already holds leftover noise to continue"),
           leftover_noise: bool = Param(False, help="stopping early: return the still-noisy latent for the next "
                                                    "sampler (on) or finish it at once (off)"),
           sigmas: str = Param("", help="the noise levels written out, replacing steps, scheduler and denoise "
                                        "(ComfyUI's ManualSigmas), e.g. LTX-Video 0.9.8 distilled's 1.0, 0.9937, "
                                        "0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219, 0.0; a first level below "
                                        "the top refines the input latent (its second pass: 0.9094, 0.725, "
                                        "0.4219, 0.0)"),
           first_sigma: float = Param(0.0, zero="the schedule's", min=0.0, max=100000.0,
                                      help="the first noise level this run starts from (after start_step) in place of "
                                           "the schedule's (ComfyUI's SetFirstSigma; Lotus depth: 999, its timestep "
                                           "999)"),
           s_noise: float = Param(1.0, min=0.0, max=64.0, help="euler_ancestral, lcm, er_sde: the share of the fresh "
                                                               "noise they add each step (ComfyUI's s_noise); the "
                                                               "other samplers add none"),
           s_noise_end: float = Param(-1.0, min=-1.0, max=64.0, help="lcm: s_noise at the last step, fading linearly "
                                                                     "from s_noise (ComfyUI's SamplerLCM); -1 = s_noise"),
           noise_clip: float = Param(0.0, min=0.0, max=10.0, help="lcm: clamp the fresh noise to this many standard "
                                                                  "deviations (ComfyUI's noise_clip_std); 0 = not"),
           frame: str = Param("model", choices=("model", "sigma"),
                              help="flow models: the frame dpmpp_2m, res_multistep and unipc take their steps in: the "
                                   "model's own (diffusers' flow schedulers) or log sigma (ComfyUI's samplers)"),
           ksampler_levels: bool = Param(True, help="uni_pc, uni_pc_bh2, dpm_2, dpm_2_ancestral: the levels ComfyUI's "
                                                    "KSampler gives them (steps + 1 scheduled, the next-to-last "
                                                    "dropped); off: the schedule's own, as its SamplerCustom with "
                                                    "BasicScheduler"),
           beta_alpha: float = Param(0.6, min=0.01, max=50.0, help="scheduler beta: the levels sit at the quantiles "
                                                                   "of a Beta(beta_alpha, beta_beta) distribution "
                                                                   "over the model's table (ComfyUI's "
                                                                   "BetaSamplingScheduler alpha; below 1: denser at "
                                                                   "the low-noise end)"),
           beta_beta: float = Param(0.6, min=0.01, max=50.0, help="scheduler beta: its distribution's beta "
                                                                  "(BetaSamplingScheduler's; below 1: denser at the "
                                                                  "high-noise start)")
           ) -> LATENT:
    """The denoising loop: turn noise (or a noised input latent) into a clean latent.

    Samplers: euler, euler_ancestral, ddim, dpmpp_2m (pick scheduler karras for DPM++ 2M Karras),
    unipc (in the model's own frame, as diffusers), uni_pc and uni_pc_bh2 (ComfyUI's: UniPC-bh1 / bh2 up to third
    order, in log sigma), res_multistep (second-order exponential), flow_euler (flow-matching models), lcm (distilled models' jump
    to the picture and re-noise), er_sde (ComfyUI's stochastic ER-SDE-Solver-3), gradient_estimation, dpm_2 and ar_video
    (autoregressive Wan, Causal Forcing: block by block, each block seeing the ones before it). The stochastic ones
    (euler_ancestral, lcm, er_sde, and ComfyUI's SDE samplers dpmpp_sde, dpmpp_2m_sde(_heun), dpmpp_3m_sde, each with
    its _gpu twin, whose noise is one Brownian motion over the run; ddpm and dpm_2_ancestral) draw their fresh noise
    from the seed as ComfyUI does, so a seed gives its picture. heun, lms, ipndm, deis, ddpm and dpm_2_ancestral are
    ComfyUI's, stepping in sigma on every model as its do, and so are res_multistep_ancestral and res_multistep_cfg_pp;
    euler_ancestral_cfg_pp, euler_cfg_pp and res_multistep_cfg_pp (CFG++) leave each step along the negative prompt's
    own prediction, one more model pass a step.
    Progress per step; cancelling stops within one step and nothing is decoded. The result is kept in the disk
    cache tier, and so are the finished steps of a run that stops (cancelled, killed): running it again with the
    same inputs takes up from there.

    Two samplers can share one schedule (Wan 2.2's high- and low-noise experts): the first with
    end_step N and leftover_noise on, the second with start_step N and add_noise off.

    Long clips: past the most frames a model takes at once (AnimateDiff's motion module: 32, 24 for v1)
    the clip is sampled in uniform context windows of 16 frames overlapping by 4, with FreeNoise when no
    noise is connected, and the log says so; a context.windows node before sample chooses them instead."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import run_sampling
    preview = None
    if ctx.wants_previews:
        from nodes.generate.preview import latent_preview

        def preview(x, i, n):
            ctx.preview(latent_preview(x), i, n)
    out = run_sampling(model, positive, negative, latent, steps=steps, cfg=cfg or get_adapter(model.family).usual_cfg(model),
                       sampler=sampler, scheduler=scheduler, denoise=denoise, seed=seed,
                       noise=_noise_tensor(noise), callback=lambda i, n: ctx.progress(i, n), check=ctx.check,
                       preview=preview, start_step=start_step,
                       end_step=end_step if end_step < steps else None, add_noise=add_noise,
                       leftover_noise=leftover_noise, log=ctx.log, resume_dir=ctx.partial_folder(), sigmas=sigmas,
                       first_sigma=first_sigma, s_noise=s_noise, s_noise_end=s_noise_end, noise_clip=noise_clip,
                       frame=frame, ksampler_levels=ksampler_levels, beta=(beta_alpha, beta_beta))
    return out


def _within(name: str) -> dict:
    """The min and max of a generate.feedback schedule: the values each frame must keep to."""
    lo, hi = SCHEDULE_RANGES[name]
    return {"min": lo, "max": hi}


# Version 2: the fresh noise of ancestral / SDE steps is drawn as ComfyUI draws it (stop 36); a bump keys results
# cached before apart, which would otherwise be served for the same params (the params did not change)
@node("generate.feedback", title="Feedback Loop (Deforum)", category="Sampling", expensive=True, device="gpu",
      version=2, migrations={1: dict})
def feedback(ctx, model: MODEL, vae: VAE, positive: CONDITIONING,
             camera: CAMERA = Input(optional=True, help="moves each frame into the next (motion.camera_path with "
                                                        "schedules: per_frame); the clip has its length"),
             negative: CONDITIONING = Input(optional=True),
             image: IMAGE = Input(optional=True, help="frame 0's picture (an init image, resized to width x "
                                                      "height), re-diffused at image_denoise (or denoise's frame-0 "
                                                      "value); without one frame 0 is drawn from noise"),
             video: VIDEO = Input(optional=True, help="instead of a camera: each frame is img2img of this video's "
                                                      "frame, with that frame's denoise, prompt, cfg, steps and seed "
                                                      "(Deforum's Video Input mode); the clip has the video's length"),
             color_reference: IMAGE = Input(optional=True, help="colour coherence matches to this picture instead "
                                                                "of frame 0, and frame 0 is matched to it too "
                                                                "(Deforum's 'Image' colour coherence, lab)"),
             hybrid_video: VIDEO = Input(optional=True, help="Deforum's hybrid video: its frames blended into the "
                                                             "moved pictures (hybrid_composite) and its motion "
                                                             "added to the camera's (hybrid_motion); the clip is "
                                                             "cut to its length"),
             width: int = Param(512, min=8, max=8192, help="picture width (a multiple of 8 for Stable Diffusion)"),
             height: int = Param(512, min=8, max=8192, help="picture height"),
             denoise: float = Param(0.35, kind="schedule", **_within("denoise"),
                                    help="per frame: how much of the moved previous frame "
                                         "is drawn again; 0 keeps it as moved (Deforum's "
                                         "strength is 1 - denoise)"),
             cfg: float = Param(7.0, kind="schedule", **_within("cfg"),
                                help="guidance per frame; 0 = the model's usual value"),
             steps: int = Param(20, kind="schedule", **_within("steps"),
                                help="denoising steps per frame (a diffused frame runs the "
                                     "last `denoise` share of them)"),
             sampler: str = Param("euler", choices=PICTURE_SAMPLERS, help="the update rule per step"),
             scheduler: str = Param("default", choices=("default", "karras", "normal", "simple", "sgm_uniform",
                                                        "beta"), help="the noise levels, as generate.sample's"),
             seed: int = Param(0, kind="seed", help="the first diffused frame's seed"),
             seed_behaviour: str = Param("iter", choices=("iter", "fixed", "schedule"),
                                         help="iter: one more for every diffused frame; fixed: the same noise "
                                              "every frame; schedule: seed_schedule's value at the frame"),
             seed_schedule: float = Param(0.0, kind="schedule", **_within("seed_schedule"),
                                          help="the seed per frame (seed_behaviour schedule)"),
             cadence: int = Param(1, min=1, max=MAX_CADENCE, help="diffuse one frame in this many; the ones between are "
                                                         "the diffused frames moved on and crossfaded"),
             color_coherence: str = Param("none", choices=("none", "rgb", "hsv", "lab"),
                                          help="match each moved frame's histograms to frame 0's before it is "
                                               "diffused (Deforum's Match Frame 0 RGB / HSV / LAB); with a video, "
                                               "only color_coherence_after matches"),
             color_coherence_after: bool = Param(False, help="colour coherence as Deforum has done it since 2023: "
                                                             "match to diffused frame 0 itself (drawn from noise), "
                                                             "and match each diffused frame again after it is "
                                                             "diffused (off: its legacy_colormatch, the moved frames "
                                                             "only)"),
             color_video_every: int = Param(0, zero="off", min=0, max=100000, help="with a hybrid video: colour coherence "
                                                                       "matches to the video's frame, taken anew "
                                                                       "every this many frames (Deforum's 'Video "
                                                                       "Input' colour coherence); 0: off"),
             noise: float = Param(0.0, kind="schedule", **_within("noise"),
                                  help="share of white noise mixed into each moved frame "
                                       "before it is diffused (0..1); Deforum's noise_schedule"),
             contrast: float = Param(1.0, kind="schedule", **_within("contrast"),
                                     help="each moved frame's values times this before it "
                                          "is diffused; Deforum's contrast_schedule"),
             noise_type: str = Param("white", choices=("white", "perlin"),
                                     help="perlin: the noise comes in blobs, scaled by Perlin noise (Deforum's "
                                          "noise_type)"),
             perlin_w: int = Param(8, min=1, max=256, help="Perlin cells across the picture (Deforum's perlin_w)"),
             perlin_h: int = Param(8, min=1, max=256, help="Perlin cells down the picture (Deforum's perlin_h)"),
             perlin_octaves: int = Param(4, min=1, max=7, help="Perlin layers, each with twice the cells"),
             perlin_persistence: float = Param(0.5, min=0.0, max=1.0, help="each Perlin layer's strength relative "
                                                                            "to the one before"),
             sharpen: float = Param(0.0, kind="schedule", **_within("sharpen"),
                                    help="per frame: unsharp-mask amount applied to each "
                                         "moved frame before it is diffused, against the blur "
                                         "the loop builds up (Deforum's anti-blur amount)"),
             sharpen_kernel: int = Param(5, kind="schedule", **_within("sharpen_kernel"),
                                         help="the unsharp mask's blur size in pixels (the "
                                              "nearest odd one; 0 follows the sigma; Deforum's "
                                              "kernel_schedule)"),
             sharpen_sigma: float = Param(1.0, kind="schedule", **_within("sharpen_sigma"),
                                          help="the unsharp mask's blur sigma in pixels"),
             sharpen_threshold: float = Param(0.0, kind="schedule", **_within("sharpen_threshold"),
                                              help="grey levels of detail below which a pixel "
                                                   "is not sharpened (keeps flat areas clean)"),
             noise_multiplier: float = Param(1.0, kind="schedule", **_within("noise_multiplier"),
                                             help="per frame: the noise each img2img run "
                                                  "starts from times this (A1111's noise "
                                                  "multiplier, 1.05 in Deforum's settings)"),
             depth_model: str = Param("", kind="path", locate=locator("depth"),
                                      help="a depth-estimation model (as depth.estimate's): each frame is lifted "
                                           "to 3-D by its estimated depth before the camera moves it, so near "
                                           "things move more (Deforum's use_depth_warping); empty: a flat plane"),
             depth_near: float = Param(1.0, min=1e-3, max=1e6, help="distance of the nearest thing the depth model "
                                                                    "sees, in the camera path's units (the plane "
                                                                    "without depth is 1 away)"),
             # Deforum makes MiDaS's disparity d a depth (50 - d) / 19 in units of the picture's distance (which is 1
             # without depth): 1 at d = 31, 2.6 at d = 0.
             depth_far: float = Param(2.6, min=1e-3, max=1e6, help="distance of the farthest thing it sees"),
             grayscale: bool = Param(False, help="grey each moved frame before it is diffused, and each diffused "
                                                 "frame (Deforum's color_force_grayscale)"),
             image_denoise: float = Param(-1.0, min=-1.0, max=1.0,
                                          help="frame 0's denoise when `image` is given (1 - Deforum's init "
                                               "strength); -1 takes denoise's frame-0 value"),
             hybrid_composite: str = Param("none", choices=("none", "normal", "after_generation"),
                                           help="blend hybrid_video's frame into each moved picture before it is "
                                                "diffused (normal), or into each diffused frame (after_generation)"),
             hybrid_alpha: float = Param(0.5, kind="schedule", **_within("hybrid_alpha"),
                                         help="per frame: the video's share of the blend "
                                              "(Deforum's hybrid_comp_alpha_schedule)"),
             hybrid_mask: str = Param("none", choices=("none", "blend", "difference"),
                                      help="lay the video over the picture through a mask first: the two pictures' "
                                           "greys mixed (blend) or their difference"),
             hybrid_mask_blend: float = Param(0.5, kind="schedule", **_within("hybrid_mask_blend"),
                                              help="per frame: the video's share of the "
                                                   "blend mask"),
             hybrid_mask_contrast: float = Param(1.0, kind="schedule", **_within("hybrid_mask_contrast"),
                                                 help="per frame: the mask's contrast"),
             hybrid_mask_inverse: bool = Param(False, help="invert the mask"),
             hybrid_mask_equalize: str = Param("none", choices=("none", "before", "after", "both"),
                                               help="equalize the mask's histogram before and/or after its contrast"),
             hybrid_mask_auto_contrast: bool = Param(False, help="stretch the mask so its cutoff percentiles span "
                                                                 "black to white"),
             hybrid_mask_cutoff_low: float = Param(0.0, kind="schedule", **_within("hybrid_mask_cutoff_low"),
                                                   help="per frame: the percentile made black"),
             hybrid_mask_cutoff_high: float = Param(100.0, kind="schedule", **_within("hybrid_mask_cutoff_high"),
                                                    help="per frame: the percentile made "
                                                         "white"),
             hybrid_motion: str = Param("none", choices=("none", "optical_flow", "perspective", "affine"),
                                        help="move each picture as hybrid_video moves from the frame before: by "
                                             "its optical flow, or the perspective / rigid move fitted to its "
                                             "features"),
             hybrid_flow: str = Param("dis_medium", choices=("dis_medium", "dis_fine", "farneback"),
                                      help="how hybrid_motion optical_flow measures the video's flow"),
             hybrid_flow_factor: float = Param(1.0, kind="schedule", **_within("hybrid_flow_factor"),
                                               help="per frame: the video's flow times this"),
             border: str = Param("replicate", choices=("replicate", "reflect", "black", "wrap"),
                                 help="what fills the edge a move uncovers"),
             fps: float = Param(24.0, min=0.01, max=1000, help="frame rate of the clip")) -> VIDEO:
    """Deforum's animation loop: each frame is img2img of the previous generated frame moved by one step of the
    camera path, with that frame's prompt (an encode.text schedule), denoise, cfg, steps and seed.

    The camera's steps are motion.camera_path's (schedules: per_frame for Deforum's zoom 1.02 = 2% a frame);
    the clip has the path's length. Given a video instead, each frame is img2img of the video's frame with
    that frame's schedules (Deforum's Video Input mode). Frames are made in order as they are read, one sampling
    run each (every `cadence`-th frame only); every diffused frame is kept in the node's work-in-progress folder,
    so a run that stops (cancelled, killed) goes on from its last diffused frame when run again with the same
    inputs."""
    from nodes.generate.feedback import feedback_clip
    return feedback_clip(ctx, model, vae, positive, negative, camera, image, width=width, height=height,
                         denoise=denoise, cfg=cfg, steps=steps, sampler=sampler, scheduler=scheduler, seed=seed,
                         seed_behaviour=seed_behaviour, seed_schedule=seed_schedule, cadence=cadence,
                         color_coherence=color_coherence, color_coherence_after=color_coherence_after,
                         border=border, fps=fps, noise=noise, contrast=contrast,
                         noise_type=noise_type, perlin=(perlin_w, perlin_h, perlin_octaves, perlin_persistence),
                         sharpen=sharpen, sharpen_kernel=sharpen_kernel, sharpen_sigma=sharpen_sigma,
                         sharpen_threshold=sharpen_threshold, grayscale=grayscale, image_denoise=image_denoise,
                         noise_multiplier=noise_multiplier, depth_model=as_given(depth_model, ctx.workflow_dir),
                         depth_range=(depth_near, depth_far), video=video, color_reference=color_reference,
                         hybrid_video=hybrid_video, color_video_every=color_video_every,
                         hybrid=dict(composite=hybrid_composite, alpha=hybrid_alpha, mask=hybrid_mask,
                                     mask_blend=hybrid_mask_blend, mask_contrast=hybrid_mask_contrast,
                                     mask_inverse=hybrid_mask_inverse, mask_equalize=hybrid_mask_equalize,
                                     mask_auto_contrast=hybrid_mask_auto_contrast,
                                     mask_cutoff_low=hybrid_mask_cutoff_low, mask_cutoff_high=hybrid_mask_cutoff_high,
                                     motion=hybrid_motion, flow=hybrid_flow,
                                     flow_factor=hybrid_flow_factor))


def _noise_tensor(noise):
    if noise is None:
        return None
    t = getattr(noise, "samples", noise)
    if not hasattr(t, "shape"):
        raise NodeError(f"the noise input is a {type(noise).__name__}, not a noise tensor")
    return t


@node("control.apply", title="ControlNet", category="Conditioning", device="gpu", passes={"model": "model"})
def control_apply(ctx, model: MODEL, video: VIDEO,
                  path: str = Param("", kind="path", locate=locator("controlnet"),
                                    help="ControlNet folder (diffusers layout) or file"),
                  strength: float = Param(1.0, min=0.0, max=2.0, help="how strongly the control video steers; "
                                                                      "0 = not at all"),
                  preprocessor: str = Param("canny", choices=("canny", "depth", "none"),
                                            help="canny edges, luminance depth proxy, or none for a ready "
                                                 "depth/normal/pose video (a Blender pass: io.load_frames' layer)"),
                  low: int = Param(100, min=0, max=255, help="canny: lower threshold"),
                  high: int = Param(200, min=0, max=255, help="canny: upper threshold"),
                  start: float = Param(0.0, min=0.0, max=1.0, help="share of the way from noise to picture where it "
                                                                   "starts steering (ComfyUI's start_percent)"),
                  end: float = Param(1.0, min=0.0, max=1.0, help="share of the way where it stops: below 1 the "
                                                                 "last steps draw detail freely (end_percent)"),
                  mode: str = Param("auto", choices=("auto",) + tuple(dict.fromkeys(FLUX_UNION_MODES
                                                                                     + SDXL_UNION_MODES)),
                                    help="a union ControlNet (FLUX.1's, or SDXL's ControlNet++): what kind of picture "
                                         "it is given (auto: not told, as ComfyUI without SetUnionControlNetType); an "
                                         "SD 3.5 one: canny, depth or blur (auto: the file's own kind)"),
                  vae: VAE = Input(optional=True, help="FLUX.1 / SD 3.5 / Qwen-Image: the VAE that encodes the "
                                                       "control pictures (ae.safetensors for FLUX.1), where the model "
                                                       "was loaded without one"),
                  mask: MASK = Input(optional=True, help="an inpainting ControlNet: the region to redraw (1), a "
                                                         "still or one per frame; alimama's FLUX.1 nets get it "
                                                         "blacked, SD / SDXL ones (control_v11p_sd15_inpaint) -1, as "
                                                         "comfyui_controlnet_aux's InpaintPreprocessor sets it")
                  ) -> MODEL:
    """Guide AnimateDiff / Stable Diffusion (1.5, XL or 3.5 Large) / FLUX.1 / Qwen-Image with a ControlNet driven by a
    video, frame by frame.

    Weight-free preprocessors make the control frames from any clip: canny edges, or a luminance
    depth proxy (brighter = nearer); `none` takes a depth or pose video made elsewhere as is.
    Control frame i steers generated frame i: a shorter video holds its last frame, and frames of
    another size are stretched to the generation's. Chained, ControlNets stack (a pose and a depth
    one both steer, their effects added). start / end are measured in noise levels, as ComfyUI
    measures them, not in step counts. FLUX.1 ControlNets are InstantX's and Shakker-Labs' (Canny, Depth,
    Union, Union-Pro 2.0), jasperai's, XLabs' (canny / depth / hed v1-v3) and MistoLine's; alimama's inpainting
    ones redraw the region `mask` gives (ComfyUI's ControlNetInpaintingAliMamaApply); on SDXL, xinsir's ControlNet++ union (and its promax file) and Stability's
    Control-LoRAs load as well. A union one is told its picture's kind by `mode`: FLUX.1's canny, tile, depth,
    blur, pose, gray, lq; SDXL's pose, depth, scribble (hed / pidi soft edges), canny (also lineart, mlsd),
    normal, segment, and with promax tile and repaint. SD 3.5 Large's are Stability's canny, depth and blur files:
    give white edges on black, a near-white depth map, or a blurred picture. Qwen-Image's are InstantX's
    (Qwen-Image-ControlNet-Union)."""
    from nodes.generate.control import apply_control
    from nodes.generate.model_manager import manager_for
    return apply_control(manager_for(ctx), model, video, path, strength, preprocessor, low, high, start, end, mode,
                         vae, mask)


@node("control.canny", title="Canny Edges", category="Conditioning", temporal_radius=0)
def control_canny(ctx, video: VIDEO,
                  low: float = Param(0.4, min=0.01, max=0.99, help="edges this strong join an edge that reaches "
                                                                   "`high` (the gradient of a picture in 0..1)"),
                  high: float = Param(0.8, min=0.01, max=0.99, help="edges this strong are kept")) -> VIDEO:
    """White edges on black, frame by frame, as ComfyUI's Canny node finds them (the same thresholds give the same
    edges): a control video for condition.fun_control or condition.vace, or control.apply with preprocessor none.
    control.apply's own canny preprocessor counts its thresholds in 0..255 steps instead."""
    from nodes.common.stream import map_frames
    from nodes.generate.control import canny_comfy
    if low > high:
        raise NodeError(f"low ({low}) must not be above high ({high})")
    return map_frames(ctx, video, lambda f: canny_comfy(f, low, high))


# -- model and latent tweaks (ComfyUI's ModelSamplingSD3, VideoLinearCFGGuidance, LatentUpscaleBy, LTXVPreprocess)
@node("model.radiance_options", title="Chroma Radiance Options", category="Sampling", passes={"model": "model"})
def radiance_options(ctx, model: MODEL,
                     nerf_tile_size: int = Param(-1, min=-1, max=1 << 20,
                                                 help="patches whose pixels go through the head at once: larger is "
                                                      "faster and takes more memory; -1 = the model's 512, 0 = all "
                                                      "at once")) -> MODEL:
    """How much of Chroma Radiance's pixel head runs at once (ComfyUI's ChromaRadianceOptions): each patch's pixels go
    through a network of their own, so the tiling changes the memory a step takes, never the picture."""
    if model.family != "chroma":
        raise NodeError(f"model.radiance_options sets Chroma Radiance's head; this model is {model.family}'s: "
                        "remove the node or give it a Chroma Radiance model")
    return model if nerf_tile_size < 0 else model.with_option("nerf_tile_size", int(nerf_tile_size))


@node("model.flow_shift", title="Flow Shift", category="Sampling", passes={"model": "model"})
def flow_shift(ctx, model: MODEL, shift: float = Param(5.0, min=0.01, max=100.0,
                                                        help="above 1 spends more steps at high noise"),
               sampling: str = Param("flow", choices=("flow", "img_to_img_velocity"),
                                     help="flow: the model's output is a velocity scaled by the noise level; "
                                          "img_to_img_velocity: it is the whole way from the picture's latent to "
                                          "the result's (Marigold v2), sampled with add_noise off"),
               sound_shift: float = Param(0.0, zero="auto", min=0.0, max=100.0,
                                          help="MiniMax H3: its soundtrack's own shift (0 = 3, as released)")) -> MODEL:
    """Set a flow-matching model's time shift (Wan, LTX, HunyuanVideo): noise levels
    shift * s / (1 + (shift - 1) * s) over the schedule, as ComfyUI's ModelSamplingSD3 sets them. Shift 0 would
    make every level 0 (nothing sampled: a black video), so it starts at 0.01. `sampling` img_to_img_velocity is
    ComfyUI's ModelSamplingAuraFlow sampling of that name: the model reads the picture's latent as it is and the
    result is that latent minus the model's output (Marigold v2's depth, normals and albedo from Qwen-Image-Edit).
    MiniMax H3 samples a video's soundtrack on a schedule of its own: sound_shift sets it (ComfyUI's
    MiniMaxH3SigmaShift shift_audio)."""
    model = model.with_option("flow_shift", float(shift))
    if sound_shift or model.option("minimax_h3_sound_shift"):     # 0 (as released) also over an earlier one
        model = model.with_option("minimax_h3_sound_shift", float(sound_shift))
    velocity = sampling == "img_to_img_velocity"
    # set only where it is or was on, so the models of every other workflow stay as they were (their cache keys)
    return model.with_option("img_to_img_velocity", velocity) if velocity or model.option("img_to_img_velocity") \
        else model


@node("model.scale_rope", title="RoPE Positions Scale", category="Sampling", passes={"model": "model"})
def scale_rope(ctx, model: MODEL,
               scale_x: float = Param(1.0, min=0.0, max=100.0, help="spacing of the columns' positions"),
               shift_x: float = Param(0.0, min=-256.0, max=256.0, help="position of the first column"),
               scale_y: float = Param(1.0, min=0.0, max=100.0, help="spacing of the rows' positions"),
               shift_y: float = Param(0.0, min=-256.0, max=256.0, help="position of the first row"),
               scale_t: float = Param(1.0, min=0.0, max=100.0, help="spacing of the latent frames' positions "
                                                                    "(ChronoEdit: 7)"),
               shift_t: float = Param(0.0, min=-256.0, max=256.0, help="position of the first latent frame")) -> MODEL:
    """Move the rotary positions a Wan model reads its latent by (ComfyUI's ScaleROPE): along each axis the i-th
    latent frame, row or column sits at shift + i * scale instead of i. ChronoEdit reads a picture and its edit as
    two latent frames 7 apart: scale_t 7 on a 5-frame (2 latent frames) condition.frames, as ComfyUI's ChronoEdit
    template and diffusers' ChronoEditPipeline have it."""
    from nodes.generate.rope_scale import IDENTITY
    if model.family != "wan":
        raise NodeError(f"model.scale_rope moves the rotary positions of Wan models; this is a {model.family} model: "
                        "remove it")
    scale = (scale_x, shift_x, scale_y, shift_y, scale_t, shift_t)
    # the identity leaves the model as it was (and its cache keys)
    return model if scale == IDENTITY else model.with_option("rope_scale", tuple(float(v) for v in scale))


@node("model.reference_kv", title="Reference KV (FLUX.2 [klein] KV)", category="Sampling", passes={"model": "model"})
def reference_kv(ctx, model: MODEL) -> MODEL:
    """Read the pictures to edit as FLUX.2 [klein] 9B KV was trained to (ComfyUI's FluxKVCache,
    diffusers' Flux2KleinKVPipeline): they are clean (timestep 0) and attend only to each other, and the image and
    prompt read them (the model of the `flux-2-klein-9b-kv` files). Without it, pictures are read at the step's
    noise level beside the image, as the other FLUX.2 models read them."""
    if model.family != "flux2":
        raise NodeError(f"model.reference_kv reads pictures as FLUX.2 [klein] 9B KV does; this is a {model.family} "
                        "model: remove it")
    return model.with_option("reference_kv", True)


@node("model.differential_diffusion", title="Differential Diffusion", category="Sampling", passes={"model": "model"})
def differential_diffusion(ctx, model: MODEL,
                           strength: float = Param(1.0, min=0.0, max=1.0, help="1: each step redraws where the "
                                                                                "mask reaches its share of the "
                                                                                "schedule; below 1 mixes the soft "
                                                                                "mask back in")) -> MODEL:
    """Soft masks as amounts of change (ComfyUI's DifferentialDiffusion): with a latent mask (latent.set_mask), a
    pixel whose mask is 0.3 is redrawn only over the last 30% of the steps, so it changes that much less and a
    feathered edge fades the new into the old instead of blending two pictures."""
    return model.with_option("differential", float(strength))


@node("guide.linear_cfg", title="Linear CFG over Frames", category="Sampling", passes={"model": "model"})
def linear_cfg_guide(ctx, model: MODEL, min_cfg: float = Param(1.0, min=0.0, max=50.0,
                                                                help="guidance at the first frame")) -> MODEL:
    """Guidance that rises linearly from min_cfg at the first frame to sample's cfg at the last
    (ComfyUI's VideoLinearCFGGuidance): the first frames stay close to the start image."""
    return model.with_option("min_cfg", float(min_cfg))


@node("model.sampling", title="Prediction Type", category="Sampling", passes={"model": "model"})
def model_sampling(ctx, model: MODEL,
                   prediction: str = Param("v_prediction", choices=("epsilon", "v_prediction", "x0"),
                                           help="what the network was trained to predict: noise (most SD/SDXL), "
                                                "velocity (NoobAI-XL V-Pred, SD 2.x 768-v) or the clean image"),
                   zsnr: bool = Param(False, help="zero terminal SNR: the first step starts from pure noise, for "
                                                  "models trained that way (ztsnr)")) -> MODEL:
    """Sample an SD or SDXL model as trained when the file does not say (ComfyUI's ModelSamplingDiscrete): a
    v-prediction model sampled as epsilon gives grey noise. Checkpoints with v_pred / ztsnr markers are set up
    from them; this overrides either way."""
    from nodes.generate.adapters import get_adapter
    if get_adapter(model.family).space != "vp" or get_adapter(model.family).prediction != "epsilon":
        raise NodeError(f"the prediction type is set for SD and SDXL models; {model.family} models are sampled as "
                        "they were trained: remove model.sampling")
    return model.with_option("sampling", ({"x0": "sample"}.get(prediction, prediction), bool(zsnr)))


@node("guide.rescale_cfg", title="Rescale CFG", category="Sampling", passes={"model": "model"})
def rescale_cfg_guide(ctx, model: MODEL, multiplier: float = Param(0.7, min=0.0, max=1.0,
                                                                    help="0: plain guidance; 1: fully rescaled")
                      ) -> MODEL:
    """Guidance rescaled to the conditional prediction's spread (ComfyUI's RescaleCFG, diffusers' guidance_rescale):
    keeps high cfg from burning colours out; v-prediction and zero-terminal-SNR models want about 0.7."""
    return model.with_option("rescale_cfg", float(multiplier))


@node("guide.true_cfg", title="True CFG on Distilled Guidance", category="Sampling", passes={"model": "model"})
def true_cfg_guide(ctx, model: MODEL, scale: float = Param(3.0, min=0.0, max=100.0,
                                                           help="true CFG scale against the negative prompt"),
                   start: int = Param(0, min=0, max=10000, help="the first step (from 0) that takes it")) -> MODEL:
    """True classifier-free guidance for a model told sample's cfg as its guidance (FLUX.1 dev), on top of it:
    negative + scale x (positive - negative) from step `start` on, the prompt alone before (XLabs' XlabsSampler's
    true_gs and timestep_to_start_cfg). Twice the work on those steps; connect sample's negative prompt."""
    return model.with_option("true_cfg", (float(scale), int(start)))


@node("guide.cfg_norm", title="CFG Norm", category="Sampling", passes={"model": "model"})
def cfg_norm_guide(ctx, model: MODEL, strength: float = Param(1.0, min=0.0, max=100.0,
                                                              help="the guided result's scale after the cap"),
                   pre_cfg: bool = Param(False, help="rescale the guided noise to the prompt's own noise's size, "
                                                     "larger or smaller (JoyImage Edit's template; its pipeline's "
                                                     "guidance), strength blending back to plain CFG")) -> MODEL:
    """Guidance capped at the prompt's own prediction's size (ComfyUI's CFGNorm, in its Qwen-Image-Edit template):
    at each latent pixel the guided result is scaled down to the conditional prediction's norm over the channels
    where it is larger, then by strength. At cfg 1 and strength 1 it changes nothing. pre_cfg: the guided noise
    (x minus the prediction) is scaled to the conditional noise's norm instead, up or down."""
    return model.with_option("cfg_norm", (float(strength), bool(pre_cfg)))


@node("guide.dual_cfg", title="Dual CFG (two prompts)", category="Sampling", passes={"model": "model"})
def dual_cfg_guide(ctx, model: MODEL, middle: CONDITIONING,
                   middle_cfg: float = Param(2.0, min=0.0, max=100.0, help="how far the middle prompt pushes away "
                                                                           "from sample's negative"),
                   style: str = Param("regular", choices=("regular", "nested"),
                                      help="regular: the two pushes added; nested: the middle-to-prompt guidance "
                                           "itself pushed away from the negative")) -> MODEL:
    """Guidance between three prompts (ComfyUI's DualCFGGuider; HiDream-E1 and OmniGen2 edit with it): sample's
    prompt, this middle one and sample's negative. regular: negative + middle_cfg (middle - negative) + cfg (prompt -
    middle); nested: negative + middle_cfg (middle + cfg (prompt - middle) - negative), sample's cfg being the
    prompt's scale over the middle. For editing, the middle is the negative text with the picture, so cfg weighs
    the instruction and middle_cfg the picture. Three network calls a step; connect sample's negative prompt."""
    from nodes.generate.sampling import DualCfg
    return model.with_option("dual_cfg", DualCfg(middle, float(middle_cfg), style == "nested"))


@node("guide.negative_model", title="Negative Pass on a Second Model", category="Sampling",
      passes={"model": "model"})
def negative_model_guide(ctx, model: MODEL, negative_model: MODEL) -> MODEL:
    """Classifier-free guidance whose negative pass a second model makes (ComfyUI's DualModelGuider): Ideogram 4's
    unconditional transformer (ideogram4_unconditional_*), trained without text, reads sample's negative prompt (the
    zeroed prompt, condition.zero) while this model reads the prompt. Both must be of one family; at cfg 1 the second
    model is not run. Not yet with regional prompts, guide.skip_layers_negative or a ControlNet (sample says so)."""
    from nodes.generate.sampling import check_negative_model
    check_negative_model(model, negative_model)
    return model.with_option("negative_model", negative_model)


@node("guide.cfg_override", title="CFG Override for Part of the Steps", category="Sampling",
      passes={"model": "model"})
def cfg_override_guide(ctx, model: MODEL, cfg: float = Param(3.0, min=0.0, max=100.0,
                                                             help="the guidance scale over that part"),
                       start: float = Param(0.7, min=0.0, max=1.0, help="share of the way from noise where it "
                                                                        "starts (ComfyUI's start_percent)"),
                       end: float = Param(1.0, min=0.0, max=1.0, help="share of the way where it stops")) -> MODEL:
    """Another guidance scale over part of the steps (ComfyUI's CFGOverride): at the noise levels from `start` to
    `end` of the way from noise (levels, not step counts, as ComfyUI's percents) sample uses this cfg in place of
    its own, also where its own cfg is 1 (the negative pass then runs over that part). Ideogram 4's templates polish
    with cfg 3 from 0.7 on (its pipeline's last steps at 3 after 7)."""
    if start > end:
        raise NodeError(f"guide.cfg_override: start {start:g} is after end {end:g}, a share of no steps: set start "
                        "to the earlier share of the way (0 is the noisy end)")
    return model.with_option("cfg_override", (float(cfg), float(start), float(end)))


@node("guide.cfg_zero_star", title="CFG-Zero*", category="Sampling", passes={"model": "model"})
def cfg_zero_star_guide(ctx, model: MODEL) -> MODEL:
    """Guidance that first scales the unconditional prediction to the part the prompt does not already agree with
    (CFG-Zero*, ComfyUI's CFGZeroStar): fewer washed-out or warped early steps on flow models such as Wan. Applied
    after guide.rescale_cfg where both are set; at cfg 1 it changes nothing."""
    return model.with_option("cfg_zero_star", True)


@node("guide.skip_layer_guidance", title="Skip Layer Guidance", category="Sampling", passes={"model": "model"})
def skip_layer_guidance(ctx, model: MODEL,
                        layers: str = Param("7, 8, 9", help="the transformer blocks skipped, counted from 0"),
                        scale: float = Param(3.0, min=0.0, max=10.0, help="how far the result is pushed from the "
                                                                          "prediction made without them"),
                        start: float = Param(0.01, min=0.0, max=1.0, help="share of the way from noise where it "
                                                                          "starts (ComfyUI's start_percent)"),
                        end: float = Param(0.15, min=0.0, max=1.0, help="share of the way where it stops"),
                        rescale: float = Param(0.0, min=0.0, max=10.0, help="pulls the result's spread back to the "
                                                                            "prompt's prediction's")) -> MODEL:
    """Sharper structure on Wan and SD3.5 (ComfyUI's SkipLayerGuidanceDiT and SkipLayerGuidanceSD3; 7, 8, 9 suits
    SD3.5 medium): over part of the steps the prompt's prediction is made again with these blocks skipped, and the
    result is pushed away from it. One more network call a step there."""
    from nodes.generate.skip_layers import SkipLayers
    return model.with_option("skip_layer_guidance", SkipLayers.parse(layers, scale, start, end, rescale))


@node("guide.skip_layers_negative", title="Skip Layer Guidance (negative pass)", category="Sampling",
      passes={"model": "model"})
def skip_layers_negative(ctx, model: MODEL,
                         layers: str = Param("7, 8, 9", help="the transformer blocks skipped, counted from 0"),
                         start: float = Param(0.0, min=0.0, max=1.0, help="share of the way from noise where it "
                                                                          "starts (ComfyUI's start_percent)"),
                         end: float = Param(1.0, min=0.0, max=1.0, help="share of the way where it stops")) -> MODEL:
    """Skip-layer guidance without an extra pass, on Wan and SD3.5 (ComfyUI's SkipLayerGuidanceDiTSimple): over part
    of the steps the negative prompt's prediction is made with these blocks skipped, so CFG pushes away from a
    weakened prediction. Needs a negative prompt and cfg above 1; otherwise it changes nothing."""
    from nodes.generate.skip_layers import SkipLayers
    return model.with_option("skip_layers_negative", SkipLayers.parse(layers, 0.0, start, end, 0.0, negative=True))


_ATTN = dict(min=0.0, max=10.0)


@node("model.attention_multiply", title="UNet Attention Multiply", category="Sampling", passes={"model": "model"})
def attention_multiply(ctx, model: MODEL,
                       self_structural: float = Param(1.0, help="scale of the picture's self-attention", **_ATTN),
                       self_temporal: float = Param(1.0, help="of the frames' self-attention (SVD)", **_ATTN),
                       cross_structural: float = Param(1.0, help="of the prompt's cross-attention", **_ATTN),
                       cross_temporal: float = Param(1.0, help="of the prompt's temporal cross-attention (SVD)",
                                                     **_ATTN)) -> MODEL:
    """Scale a UNet's attention outputs (ComfyUI's UNetTemporalAttentionMultiply) for SD, SDXL, AnimateDiff and SVD.
    On a transformer model (Wan, LTX, HunyuanVideo) it changes nothing, as in ComfyUI, which finds no UNet attention
    there to scale."""
    from nodes.generate.attention_multiply import AttentionScale
    return model.with_option("attention_multiply", AttentionScale(self_structural, self_temporal, cross_structural,
                                                                  cross_temporal))


@node("latent.upscale", title="Upscale Latent", category="Latent")
def latent_upscale(ctx, latent: LATENT,
                   scale: float = Param(1.5, min=0.01, max=8.0, help="factor on width and height (rounded to "
                                                                     "whole latent pixels)"),
                   method: str = Param("nearest-exact", choices=("nearest-exact", "bilinear", "area", "bicubic"),
                                       help="how latent pixels are resampled (as in ComfyUI's Upscale Latent)")
                   ) -> LATENT:
    """Resize a latent in space (every frame alike), e.g. for a second, higher-resolution sampling pass."""
    from nodes.generate.latent import upscale_latent
    return upscale_latent(latent, scale, method)


@node("latent.adain", title="Match Latent Statistics (AdaIN)", category="Latent")
def latent_adain(ctx, latent: LATENT, reference: LATENT,
                 factor: float = Param(1.0, min=-10.0, max=10.0, help="0 leaves the latent as it is, 1 gives each "
                                                                     "channel the reference's mean and spread"),
                 per_frame: bool = Param(False, help="match frame by frame instead of over the whole clip")) -> LATENT:
    """Give a latent's channels the mean and spread of a reference latent's (Lightricks' LTXVAdainLatent): after
    latent.ltx_upsample, with the first pass's latent as reference, it keeps the refining pass from drifting in
    colour and contrast."""
    from nodes.generate.latent import adain_latent
    return adain_latent(latent, reference, factor, per_frame)


@node("latent.cut", title="Cut Latent", category="Latent")
def latent_cut(ctx, latent: LATENT,
               axis: str = Param("t", choices=("t", "y", "x"), help="t: frames, y: rows, x: columns"),
               index: int = Param(0, min=-16384, max=16384, help="the first one kept (negative: counted from the end)"),
               amount: int = Param(1, min=1, max=16384, help="how many are kept (fewer where the latent ends)")
               ) -> LATENT:
    """Keep a run of a latent's frames (or rows, or columns), as ComfyUI's LatentCut: Wan 2.2 S2V's template
    keeps the first frame of a clip this way."""
    from nodes.generate.latent import cut_latent
    return cut_latent(latent, axis, index, amount)


@node("latent.cut_to_batch", title="Cut Latent into Pictures", category="Latent")
def latent_cut_to_batch(ctx, latent: LATENT,
                        size: int = Param(1, min=1, max=16384, help="latent frames in each run decoded on its own")
                        ) -> LATENT:
    """A latent's frames in runs, each decoded on its own, as ComfyUI's LatentCutToBatch along t: Qwen-Image-Layered's
    templates give each layer to the VAE this way, WanDancer's each key frame. A picture model's frames already
    decode one by one; a video model's runs are decoded each alone by vae.decode, one after another."""
    from nodes.generate.latent import cut_to_batch
    return cut_to_batch(latent, size)


@node("latent.layers", title="Empty Layered Latent", category="Latent")
def latent_layers(ctx, vae: VAE,
                  width: int = Param(640, min=16, max=8192, help="picture width in pixels (a multiple of 16)"),
                  height: int = Param(640, min=16, max=8192, help="picture height in pixels (a multiple of 16)"),
                  layers: int = Param(3, min=0, max=64, help="layers besides the whole picture")) -> LATENT:
    """An all-zero latent for Qwen-Image-Layered (ComfyUI's EmptyQwenImageLayeredLatentImage): the whole picture and
    its layers, one frame each. Sample it with the layered model (condition.reference on both prompts gives the
    picture to split), drop the first frame with latent.cut, and vae.decode with qwen_image_layered_vae: each
    layer a picture with its alpha. layers 0 makes a plain Qwen-Image latent."""
    from nodes.generate.vae_ops import layered_latent
    return layered_latent(vae, layers, width, height, ctx.log)


@node("latent.concat", title="Join Latents", category="Latent")
def latent_concat(ctx, latent: LATENT, other: LATENT,
                  axis: str = Param("t", choices=("t", "-t", "y", "-y", "x", "-x"),
                                    help="t: other's frames after latent's; y: below, x: right; -t, -y, -x: "
                                         "other first")) -> LATENT:
    """Join two latents of one family along frames, rows or columns, as ComfyUI's LatentConcat: Wan 2.2 S2V's
    template joins each continued clip after the ones before it."""
    from nodes.generate.latent import concat_latents
    return concat_latents(latent, other, axis)


# ComfyUI core keeps them in latent_upscale_models/, Lightricks' node pack in upscale_models/.
_LATENT_UPSCALERS = locator("latent_upscale_models", "upscale_models")


@node("latent.ltx_upsample", title="LTX Latent Upsampler", category="Latent", device="gpu")
def latent_ltx_upsample(ctx, latent: LATENT, vae: VAE,
                        model: str = Param("ltxv-spatial-upscaler-0.9.8.safetensors", kind="path",
                                           locate=_LATENT_UPSCALERS,
                                           help="an LTX-Video latent upscaler in latent_upscale_models/ or "
                                                "upscale_models/ (spatial 0.9.7 / 0.9.8, or the temporal one)")
                        ) -> LATENT:
    """Double an LTX-Video latent's width and height (or, with the temporal upscaler, its frames and frame rate)
    with Lightricks' learned upscaler, for a second sampling pass at low denoise (ComfyUI's LTXVLatentUpsampler).
    The VAE is the one the latent was made with: the upscaler works on its un-normalised latents."""
    from nodes.common.models_dirs import find_model
    from nodes.generate.ltx_upsampler import load_upsampler, upsample
    name = as_given(model, ctx.workflow_dir)
    path = _LATENT_UPSCALERS(name) or find_model(name, "latent_upscale_models")     # not found: where to put it
    net = load_upsampler(path, next(vae.pipe.vae.parameters()).dtype, ctx.device)
    return upsample(latent, vae, net)


@node("image.ltx_preprocess", title="LTX Image Preprocess", category="Conditioning")
def ltx_preprocess(ctx, image: IMAGE, compression: int = Param(35, min=0, max=100,
                                                               help="H.264 CRF; 0 leaves the image as it is")) -> IMAGE:
    """Give a start image the look of a video frame (one H.264 encode at this CRF), which LTX-Video's
    image-to-video expects (ComfyUI's LTXVPreprocess)."""
    from nodes.generate.preprocess import video_compress
    return video_compress(image, compression)
