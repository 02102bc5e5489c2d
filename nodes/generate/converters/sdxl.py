"""Stable Diffusion XL from one file: the all-in-one checkpoint ComfyUI keeps in checkpoints/ (Stability's
SGM layout: conditioner.embedders.0 = CLIP ViT-L, conditioner.embedders.1 = OpenCLIP ViT-bigG,
model.diffusion_model, first_stage_model), or its UNet alone (diffusion_models/).

Keys go through diffusers' own single_file_utils converters; sizes come from the tensors, the rest from the
shipped SDXL configs (resources/model_configs/sdxl, clip_l, clip_g). Tokenizers are found locally as for
SD 1.5 (split.tokenizer): both encoders read CLIP's BPE vocabulary; the second pads with "!" as SDXL's does."""
from __future__ import annotations

from graph_engine import NodeError
from nodes.generate.converters import Built, count, model_config, register
from nodes.generate.converters.sd import _unet_config, file_scheduler, ldm_vae
from nodes.generate.detect import Detection

OPEN_CLIP = "conditioner.embedders.1.model."
ALL_IN_ONE = ("Kinograph loads SDXL from its all-in-one checkpoint (checkpoints/sd_xl_base_1.0.safetensors or a "
              "fine-tune) or a diffusers folder; a UNet alone with separate clip_l / clip_g files is not supported yet")
# SDXL's size/crop conditioning: six numbers, each embedded this wide, beside the pooled text embedding.
TIME_IDS = 6


def unet_config(state, pooled_dim: int = 0) -> dict:
    """SDXL's UNet config for an SGM state dict. The size embedding's width is not stored in any tensor: it is
    what the added-conditioning input leaves beside the pooled text embedding (SDXL: 2816 = 1280 + 6 x 256)."""
    cfg = _unet_config(state, "unet_sdxl", "sdxl")
    adm = int(state["label_emb.0.0.weight"].shape[1])
    cfg["projection_class_embeddings_input_dim"] = adm
    if pooled_dim and (adm - pooled_dim) % TIME_IDS == 0 and adm > pooled_dim:
        cfg["addition_time_embed_dim"] = (adm - pooled_dim) // TIME_IDS
    # SDXL's heads are 64 wide; diffusers names the head count attention_head_dim.
    cfg["attention_head_dim"] = [max(1, c // 64) for c in cfg["block_out_channels"]]
    return cfg


@register("sdxl", "diffusion_model")
def unet(state, det) -> Built:
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import LDM_UNET_KEY, convert_ldm_unet_checkpoint
    if det.layout != "original":
        raise NodeError("an SDXL UNet in diffusers layout loads from its diffusers folder (unet/ + config.json)")
    cfg = unet_config(state, int((det.extra or {}).get("pooled_dim", 0)))
    converted = convert_ldm_unet_checkpoint({LDM_UNET_KEY + k: v for k, v in state.items()}, cfg)
    return Built(lambda: UNet2DConditionModel.from_config(cfg), converted, cfg)


@register("sdxl", "vae")
def vae(state, det) -> Built:
    return ldm_vae(state, "sdxl", "vae_sdxl")


def open_clip_g(state) -> Built:
    """The OpenCLIP ViT-bigG text tower of an SGM checkpoint (conditioner.embedders.1.model.*) as transformers'
    CLIPTextModelWithProjection: its projected final token is SDXL's pooled text embedding."""
    from types import SimpleNamespace
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    tok = state[OPEN_CLIP + "token_embedding.weight"]
    hidden = int(tok.shape[1])
    converted = convert_open_clip_checkpoint(SimpleNamespace(config=SimpleNamespace(hidden_size=hidden)), state,
                                             prefix=OPEN_CLIP)
    cfg = model_config("clip_g", "text_encoder")
    heads = cfg["num_attention_heads"] if hidden == cfg["hidden_size"] else max(1, hidden // 64)
    cfg.update(vocab_size=int(tok.shape[0]), hidden_size=hidden, num_attention_heads=heads,
               max_position_embeddings=int(state[OPEN_CLIP + "positional_embedding"].shape[0]),
               intermediate_size=int(state[OPEN_CLIP + "transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
               num_hidden_layers=count(state, OPEN_CLIP + "transformer.resblocks.{}."),
               projection_dim=int(converted["text_projection.weight"].shape[0]))
    config = CLIPTextConfig(**cfg)
    return Built(lambda: CLIPTextModelWithProjection(config), converted, cfg)


def sdxl_pipeline(path, dtype):
    """A StableDiffusionXLPipeline from one SDXL checkpoint file (SGM layout), with the shipped configs."""
    import copy
    from diffusers import StableDiffusionXLPipeline
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    from nodes.generate import converters
    from nodes.generate.detect import detect_file
    from nodes.generate.split import tokenizer
    from nodes.generate.weights import load_weights
    det = detect_file(path)
    keys = _keys(path)
    refuse_unsupported(path, det, keys)
    if det.role != "checkpoint" or det.family != "sd" or det.variant not in ("sdxl", "sdxl-inpainting") or \
            not any(k.startswith(OPEN_CLIP) for k in keys):
        raise NodeError(f"{path.name} is {det.describe()}, not an SDXL checkpoint (UNet, VAE and both text "
                        f"encoders in one file). {ALL_IN_ONE}")
    state = load_weights(path, dtype)
    where = str(path)
    text_2 = _build(open_clip_g(state), dtype)
    pooled = int(text_2.config.projection_dim)
    unet_det = Detection("diffusion_model", "sdxl", det.variant, layout="original", prefix=det.prefix,
                         extra={"pooled_dim": pooled})
    net = converters.build(unet_det, state, dtype, where)
    vae_net = converters.build(Detection("vae", "sdxl", layout="original"), state, dtype, where)
    clip_det = Detection("text_encoder", "clip_l")
    text = converters.build(clip_det, convert_ldm_clip_checkpoint(state), dtype, where)
    tok = tokenizer(path, clip_det)
    tok_2 = copy.deepcopy(tok)
    tok_2.pad_token = "!"                   # OpenCLIP pads with token 0 ("!"), CLIP-L with its end token
    return StableDiffusionXLPipeline(vae=vae_net, text_encoder=text, text_encoder_2=text_2, tokenizer=tok,
                                     tokenizer_2=tok_2, unet=net, scheduler=file_scheduler("sdxl", keys),
                                     force_zeros_for_empty_prompt=False)


def _keys(path):
    from nodes.generate.detect import read_header
    return read_header(path).shapes


def _build(built: Built, dtype):
    """A module from a converter's Built outside the registry (the OpenCLIP tower needs the whole checkpoint)."""
    from accelerate import init_empty_weights
    from nodes.generate.converters import _align_prefix, _cast
    with init_empty_weights():
        module = built.make()
    wanted = module.state_dict()
    state = _align_prefix(built.state_dict, wanted)
    missing = [k for k in wanted if k not in state]
    if missing:
        raise NodeError(f"the OpenCLIP text encoder in this checkpoint lacks {missing[:3]}: the file may be damaged")
    module.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=False, assign=True)
    if dtype is not None:
        _cast(module, dtype)
    return module.eval()


def refuse_unsupported(path, det, keys=()) -> None:
    """SDXL files Kinograph does not run, each named with what to use instead. `keys`: the file's tensor names,
    where marker tensors tell SDXL-shaped models trained otherwise (they would sample noise without a word)."""
    base = "Load an SDXL base checkpoint (sd_xl_base_1.0.safetensors or a fine-tune such as Juggernaut XL) instead"
    if "edm_mean" in keys or "edm_std" in keys:
        raise NodeError(f"{path.name} is Playground v2.5 (SDXL-shaped, trained with EDM noise levels and its own "
                        f"latent scale), which Kinograph does not run. {base}")
    if det.role == "diffusion_model" and det.family == "sdxl":
        raise NodeError(f"{path.name} is an SDXL UNet alone (diffusion_models/). {ALL_IN_ONE}")
    if det.family in ("sd", "sdxl") and det.variant.startswith("sdxl-refiner"):
        raise NodeError(f"{path.name} is an SDXL refiner checkpoint (one OpenCLIP text encoder, made to finish the "
                        "base model's last steps); Kinograph does not run the refiner. Load an SDXL base checkpoint "
                        "(sd_xl_base_1.0.safetensors or a fine-tune of it) instead; for the refiner's extra detail, "
                        "run a second sample pass with the base model at denoise 0.2-0.3")
    if det.role == "motion_module" and det.variant == "sdxl":
        raise NodeError(f"{path.name} is an AnimateDiff-SDXL motion module; Kinograph's AnimateDiff runs SD 1.5 "
                        "motion modules (mm_sd_v15_v2, v3_sd15_mm) only. Animate an SDXL keyframe with an "
                        "image-to-video model instead (Wan i2v, LTX-Video or Stable Video Diffusion), or use an "
                        "SD 1.5 checkpoint with an SD 1.5 motion module")
