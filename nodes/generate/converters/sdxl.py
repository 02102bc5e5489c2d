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
REFINER_CLIP = "conditioner.embedders.0.model."        # the refiner's only text encoder
ALL_IN_ONE = ("Kinograph loads SDXL from its all-in-one checkpoint (checkpoints/sd_xl_base_1.0.safetensors or a "
              "fine-tune) or a diffusers folder; a UNet alone with separate clip_l / clip_g files is not supported yet")
# SDXL's size/crop conditioning: six numbers, each embedded this wide, beside the pooled text embedding; the
# refiner's five (original size, crop, aesthetic score).
TIME_IDS = 6
REFINER_TIME_IDS = 5


def unet_config(state, pooled_dim: int = 0, time_ids: int = TIME_IDS) -> dict:
    """SDXL's UNet config for an SGM state dict. The size embedding's width is not stored in any tensor: it is
    what the added-conditioning input leaves beside the pooled text embedding (SDXL: 2816 = 1280 + 6 x 256; the
    refiner: 2560 = 1280 + 5 x 256)."""
    cfg = _unet_config(state, "unet_sdxl", "sdxl")
    adm = int(state["label_emb.0.0.weight"].shape[1])
    cfg["projection_class_embeddings_input_dim"] = adm
    if pooled_dim and (adm - pooled_dim) % time_ids == 0 and adm > pooled_dim:
        cfg["addition_time_embed_dim"] = (adm - pooled_dim) // time_ids
    # SDXL's heads are 64 wide; diffusers names the head count attention_head_dim.
    cfg["attention_head_dim"] = [max(1, c // 64) for c in cfg["block_out_channels"]]
    return cfg


@register("sdxl", "diffusion_model")
def unet(state, det) -> Built:
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import LDM_UNET_KEY, convert_ldm_unet_checkpoint
    if det.layout != "original":
        raise NodeError("an SDXL UNet in diffusers layout loads from its diffusers folder (unet/ + config.json)")
    extra = det.extra or {}
    cfg = unet_config(state, int(extra.get("pooled_dim", 0)), int(extra.get("time_ids", TIME_IDS)))
    converted = convert_ldm_unet_checkpoint({LDM_UNET_KEY + k: v for k, v in state.items()}, cfg)
    return Built(lambda: UNet2DConditionModel.from_config(cfg), converted, cfg)


@register("sdxl", "vae")
def vae(state, det) -> Built:
    return ldm_vae(state, "sdxl", "vae_sdxl")


def open_clip_g(state, prefix: str = OPEN_CLIP) -> Built:
    """The OpenCLIP ViT-bigG text tower of an SGM checkpoint (conditioner.embedders.1.model.*, the refiner's .0.)
    as transformers' CLIPTextModelWithProjection: its projected final token is SDXL's pooled text embedding."""
    from types import SimpleNamespace
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    import re
    import torch
    tok = state[prefix + "token_embedding.weight"]
    hidden = int(tok.shape[1])
    # diffusers clones q, k and v out of each fused in_proj (and the projection, transposed): 315 MB of new memory
    # for SDXL's OpenCLIP-G, held as long as the model, where views of the file's tensors (its own pages) serve.
    # It gets shapes to convert.
    fused = {k: v for k, v in state.items() if k.startswith(prefix) and ".attn.in_proj_" in k}
    shell = {**state, **{k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in fused.items()}}
    converted = convert_open_clip_checkpoint(SimpleNamespace(config=SimpleNamespace(hidden_size=hidden)), shell,
                                             prefix=prefix)
    for name in converted:
        m = re.search(r"layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$", name)
        if m:
            layer, part, kind = m.groups()
            j = "qkv".index(part)
            converted[name] = fused[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"][j * hidden:(j + 1) * hidden]
    if prefix + "text_projection" in state:
        converted["text_projection.weight"] = state[prefix + "text_projection"].T
    cfg = model_config("clip_g", "text_encoder")
    heads = cfg["num_attention_heads"] if hidden == cfg["hidden_size"] else max(1, hidden // 64)
    cfg.update(vocab_size=int(tok.shape[0]), hidden_size=hidden, num_attention_heads=heads,
               max_position_embeddings=int(state[prefix + "positional_embedding"].shape[0]),
               intermediate_size=int(state[prefix + "transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
               num_hidden_layers=count(state, prefix + "transformer.resblocks.{}."),
               projection_dim=int(converted["text_projection.weight"].shape[0]))
    config = CLIPTextConfig(**cfg)
    return Built(lambda: CLIPTextModelWithProjection(config), converted, cfg)


def sdxl_pipeline(path, dtype):
    """A StableDiffusionXLPipeline from one SDXL checkpoint file (SGM layout), with the shipped configs."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    from nodes.generate import converters
    from nodes.generate.detect import detect_file
    from nodes.generate.weights import load_weights
    det = detect_file(path)
    keys = _keys(path)
    refuse_unsupported(path, det, keys)
    if det.role == "checkpoint" and det.variant == "sdxl-refiner" and any(k.startswith(REFINER_CLIP) for k in keys):
        return refiner_pipeline(path, det, keys, dtype)
    if det.role != "checkpoint" or det.family != "sd" or det.variant not in ("sdxl", "sdxl-inpainting") or \
            not any(k.startswith(OPEN_CLIP) for k in keys):
        raise NodeError(f"{path.name} is {det.describe()}, not an SDXL checkpoint (UNet, VAE and both text "
                        f"encoders in one file). {ALL_IN_ONE}")
    state = load_weights(path, dtype)
    text_2 = _build(open_clip_g(state), dtype)
    net, vae_net = _unet_vae(state, det, int(text_2.config.projection_dim), TIME_IDS, dtype, str(path))
    clip_det = Detection("text_encoder", "clip_l")
    text = converters.build(clip_det, convert_ldm_clip_checkpoint(state), dtype, str(path))
    tok, tok_2 = _tokenizers(path)
    return StableDiffusionXLPipeline(vae=vae_net, text_encoder=text, text_encoder_2=text_2, tokenizer=tok,
                                     tokenizer_2=tok_2, unet=net, scheduler=file_scheduler("sdxl", keys),
                                     force_zeros_for_empty_prompt=False)


def refiner_pipeline(path, det, keys, dtype):
    """The SDXL refiner (sd_xl_refiner_1.0.safetensors): OpenCLIP-G alone (conditioner.embedders.0), a UNet told
    the aesthetic score instead of the target size, SDXL's VAE. diffusers' StableDiffusionXLImg2ImgPipeline with
    requires_aesthetics_score, as diffusers builds the refiner; it samples the last steps of a base model's run
    (sample's start_step, ComfyUI's second KSamplerAdvanced)."""
    from diffusers import StableDiffusionXLImg2ImgPipeline
    from nodes.generate.weights import load_weights
    state = load_weights(path, dtype)
    text_2 = _build(open_clip_g(state, REFINER_CLIP), dtype)
    net, vae_net = _unet_vae(state, det, int(text_2.config.projection_dim), REFINER_TIME_IDS, dtype, str(path))
    # CLIP-L's tokenizer stays, without its encoder, for prompt weighting's token offsets (same vocabulary).
    tok, tok_2 = _tokenizers(path)
    return StableDiffusionXLImg2ImgPipeline(vae=vae_net, text_encoder=None, text_encoder_2=text_2, tokenizer=tok,
                                            tokenizer_2=tok_2, unet=net, scheduler=file_scheduler("sdxl", keys),
                                            requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)


def _unet_vae(state, det, pooled: int, time_ids: int, dtype, where: str):
    from nodes.generate import converters
    unet_det = Detection("diffusion_model", "sdxl", det.variant, layout="original", prefix=det.prefix,
                         extra={"pooled_dim": pooled, "time_ids": time_ids})
    return (converters.build(unet_det, state, dtype, where),
            converters.build(Detection("vae", "sdxl", layout="original"), state, dtype, where))


def _tokenizers(path):
    import copy
    from nodes.generate.split import tokenizer
    tok = tokenizer(path, Detection("text_encoder", "clip_l"))
    tok_2 = copy.deepcopy(tok)
    tok_2.pad_token = "!"                   # OpenCLIP pads with token 0 ("!"), CLIP-L with its end token
    return tok, tok_2


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
    if det.role == "diffusion_model" and det.variant.startswith("sdxl-refiner"):
        raise NodeError(f"{path.name} is an SDXL refiner UNet alone; Kinograph loads the refiner from its all-in-one "
                        "checkpoint (checkpoints/sd_xl_refiner_1.0.safetensors) with load.sdxl")
