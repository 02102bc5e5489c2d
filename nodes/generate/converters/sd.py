"""Stable Diffusion 1.5 from one file: an all-in-one checkpoint (checkpoints/), a UNet alone
(diffusion_models/) or a VAE (vae/), in the original LDM layout or diffusers'.

Keys are converted with diffusers' own LDM converters; sizes come from the tensors, the rest from
the shipped SD 1.5 configs, and the CLIP tokenizer is found locally (see split.tokenizer)."""
from __future__ import annotations

from graph_engine import NodeError
from nodes.generate.converters import Built, count, model_config, register
from nodes.generate.detect import Detection


# What to do with an SD 2.x single file: its diffusers folder loads, and its scheduler config carries the 768-v
# models' v_prediction (which one file does not say).
SD2_FOLDER = ("Load its diffusers folder instead (stabilityai/stable-diffusion-2-1 and kin: model_index.json, unet/, "
              "text_encoder/, ...) with load.sd; the 768-v models' folders say v_prediction in scheduler/, and "
              "model.sampling sets it for a folder that does not")


SD2_CONTEXT = 1024              # OpenCLIP-H's width, the prompt SD 2.x reads
SD2_HEAD_WIDTH = 64


def _unet_config(state, base: str = "unet_sd15", family: str = "sd") -> dict:
    """A shipped UNet config (SD 1.5's, SDXL's) with the widths, depths and attention levels an LDM state dict
    shows. Transformer depths per level are counted (SDXL's are 1/2/10, SD 1.5's 1)."""
    cfg = model_config(family, base)
    levels = max(int(k.split(".")[1]) for k in state if k.startswith("input_blocks.")) // 3 + 1
    chans = [int(state[f"input_blocks.{3 * i + 1}.0.out_layers.3.weight"].shape[0]) for i in range(levels)]
    attn = [f"input_blocks.{3 * i + 1}.1.proj_in.weight" in state for i in range(levels)]
    first = next(i for i in range(levels) if attn[i])
    proj = state[f"input_blocks.{3 * first + 1}.1.proj_in.weight"]
    cfg.update(block_out_channels=chans, in_channels=int(state["input_blocks.0.0.weight"].shape[1]),
               out_channels=int(state["out.2.weight"].shape[0]),
               cross_attention_dim=int(state[f"input_blocks.{3 * first + 1}.1.transformer_blocks.0.attn2.to_k.weight"]
                                       .shape[1]),
               use_linear_projection=proj.ndim == 2,
               down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
               up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)])
    if cfg["cross_attention_dim"] == SD2_CONTEXT:
        # SD 2.x (512 base and 768-v alike) reads OpenCLIP-H's 1024-wide prompt with heads of 64 channels where SD 1.5
        # has 8 heads a level, in float32 (ComfyUI's SD20: num_head_channels 64, attn_precision float32); diffusers
        # counts heads per level ([5, 10, 20, 20] at 320 channels)
        cfg.update(attention_head_dim=[c // SD2_HEAD_WIDTH for c in chans], upcast_attention=True)
    if "transformer_layers_per_block" in cfg:
        # Levels without attention keep diffusers' 1 (unused there); the middle block takes the last level's, so a
        # last level without attention (the SDXL refiner's: depths 0/4/4/0, middle 4) carries the middle's depth.
        depths = [max(1, count(state, f"input_blocks.{3 * i + 1}.1.transformer_blocks.{{}}.")) for i in range(levels)]
        if not attn[-1]:
            depths[-1] = max(1, count(state, "middle_block.1.transformer_blocks.{}."))
        cfg["transformer_layers_per_block"] = depths
    return cfg


@register("sd", "diffusion_model")
def unet(state, det) -> Built:
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import LDM_UNET_KEY, convert_ldm_unet_checkpoint
    if det.layout != "original" and det.variant.startswith("lotus"):
        # Lotus' own release is a diffusers folder whose pipeline diffusers lacks: its UNet file loads as it is
        from nodes.generate.lotus import diffusers_config, unet_config
        cfg = unet_config(diffusers_config(model_config("sd", "unet_sd15"), state), det.variant)
        return Built(lambda: UNet2DConditionModel.from_config(cfg), dict(state), cfg)
    if det.layout != "original":
        raise NodeError("an SD UNet in diffusers layout loads from its diffusers folder (unet/ + config.json)")
    cfg = _unet_config(state)
    if det.variant.startswith("lotus"):
        from nodes.generate.lotus import unet_config
        cfg = unet_config(cfg, det.variant)
    converted = convert_ldm_unet_checkpoint({LDM_UNET_KEY + k: v for k, v in state.items()}, cfg)
    return Built(lambda: UNet2DConditionModel.from_config(cfg), converted, cfg)


@register("sd", "vae")
def vae(state, det) -> Built:
    """An LDM-layout VAE: a vae/ file, or the first_stage_model.* part of a checkpoint."""
    return ldm_vae(state, "sd", "vae_sd15")


def ldm_vae(state, family: str, base: str) -> Built:
    """An LDM-layout AutoencoderKL with a shipped config's settings (scaling factor, upcast) and the file's widths."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import LDM_VAE_KEYS, convert_ldm_vae_checkpoint
    prefix = next((p for p in LDM_VAE_KEYS if any(k.startswith(p) for k in state)), "")
    own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    cfg = model_config(family, base)
    if "encoder.down.0.block.0.conv1.weight" in own:
        levels = len({k.split(".")[2] for k in own if k.startswith("encoder.down.")})
        cfg.update(block_out_channels=[int(own[f"encoder.down.{i}.block.0.conv1.weight"].shape[0])
                                       for i in range(levels)],
                   latent_channels=int(own["decoder.conv_in.weight"].shape[1]),
                   # FLUX.1's autoencoder has no quant convolutions around its latent
                   use_quant_conv="quant_conv.weight" in own, use_post_quant_conv="post_quant_conv.weight" in own)
        cfg["down_block_types"] = cfg["down_block_types"][:1] * levels
        cfg["up_block_types"] = cfg["up_block_types"][:1] * levels
        converted = convert_ldm_vae_checkpoint(own, cfg)
    else:
        raise NodeError("an SD VAE in diffusers layout loads from its diffusers folder (vae/ + config.json)")
    return Built(lambda: AutoencoderKL.from_config(cfg), converted, cfg)


def sd15_pipeline(path, dtype):
    """A StableDiffusionPipeline from one SD 1.5 checkpoint file, with the shipped configs."""
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    from nodes.generate import converters
    from nodes.generate.detect import detect_file
    from nodes.generate.split import tokenizer
    from nodes.generate.weights import load_weights
    det = detect_file(path)
    # An inpainting checkpoint (9 input channels: latent, mask, masked picture) builds the same way; sampling adds
    # the mask channels (nodes/generate/inpaint.py).
    if det.family == "sd" and det.variant.startswith("sd2"):
        raise NodeError(f"{path.name} is a Stable Diffusion 2.x checkpoint (OpenCLIP-H text encoder), which Kinograph "
                        f"does not load from one file. {SD2_FOLDER}")
    if det.role == "checkpoint" and det.variant == "lotus-d":
        return _lotus_pipeline(path, det, dtype)
    if det.role != "checkpoint" or det.family != "sd" or det.variant not in ("sd15", "sd15-inpainting"):
        raise NodeError(f"{path.name} is {det.describe()}, not a Stable Diffusion 1.5 checkpoint (UNet, VAE and text "
                        "encoder in one file)")
    state = load_weights(path, dtype)
    where = str(path)
    unet_det = Detection("diffusion_model", "sd", det.variant, layout="original", prefix=det.prefix)
    net = converters.build(unet_det, state, dtype, where)
    vae_net = converters.build(Detection("vae", "sd", layout="original"), state, dtype, where)
    clip = convert_ldm_clip_checkpoint(state)
    clip_det = Detection("text_encoder", "clip_l")
    text = converters.build(clip_det, clip, dtype, where)
    from nodes.generate.detect import read_header
    return StableDiffusionPipeline(vae=vae_net, text_encoder=text, tokenizer=tokenizer(path, clip_det), unet=net,
                                   scheduler=file_scheduler("sd", read_header(path).shapes), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def _lotus_pipeline(path, det, dtype):
    """A Lotus-D UNet and SD's VAE in one file, without a text encoder (Lotus' prompt is shipped): SDPose's
    checkpoint (sdpose_wholebody_fp16, whose heatmap head pose.sdpose_keypoints reads from the file itself)."""
    from diffusers import StableDiffusionPipeline
    from nodes.generate import converters
    from nodes.generate.detect import read_header
    from nodes.generate.weights import load_weights
    state = load_weights(path, dtype)
    if not any(k.startswith("first_stage_model.") for k in state):
        raise NodeError(f"{path.name} is a Lotus UNet without a VAE: load it with load.diffusion_model and an SD VAE "
                        "with load.vae")
    unet = converters.build(Detection("diffusion_model", "sd", det.variant, layout="original", prefix=det.prefix),
                            state, dtype, str(path))
    vae = converters.build(Detection("vae", "sd", layout="original"), state, dtype, str(path))
    return StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet,
                                   scheduler=file_scheduler("sd", read_header(path).shapes), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def file_scheduler(family: str, keys):
    """The family's scheduler as a checkpoint's marker tensors ask: `v_pred` (a v-prediction fine-tune: NoobAI-XL
    V-Pred, SD 1.5 v-pred models) and `ztsnr` (trained to zero terminal SNR), as ComfyUI reads them. Without
    them an epsilon model; model.sampling overrides either way."""
    from nodes.generate.split import resampled, scheduler
    base = scheduler(family)
    if "v_pred" not in keys:
        return base
    return resampled(base, "v_prediction", "ztsnr" in keys)

