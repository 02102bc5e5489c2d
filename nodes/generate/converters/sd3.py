"""Stable Diffusion 3 / 3.5 single files as ComfyUI users hold them:
  checkpoints/sd3.5_medium.safetensors, sd3.5_large.safetensors, sd3_medium.safetensors: the MMDiT
      (model.diffusion_model.joint_blocks...) and the VAE (first_stage_model.); the *_incl_clips files and Comfy-Org's
      sd3.5_large_fp8_scaled add text_encoders.clip_l / clip_g (.transformer.text_model...) and, for the t5xxl ones,
      text_encoders.t5xxl.transformer
  diffusion_models/ (or unet/): the MMDiT alone
  text_encoders/ (or clip/) clip_l.safetensors, clip_g.safetensors, t5xxl_fp16.safetensors: transformers' own names
The MMDiT goes through diffusers' own converter; sizes come from the tensors, the rest from the shipped SD3.5 configs.
SD3's pooled embedding is CLIP-L's end token unprojected beside OpenCLIP-G's projected one (Stability's sd3_infer and
ComfyUI's SD3ClipModel read clip_l with return_projected_pooled=False; diffusers' single-file loader gives SD3's CLIP-L
the identity projection): the clip_l.safetensors users share with FLUX.1 may hold OpenAI's real projection, which SD3
leaves out. HiDream-I1 (ComfyUI's HiDreamTEModel) reads the same file projected."""
from __future__ import annotations

from collections.abc import Mapping

from nodes.generate.converters import Built, count, model_config, register
from nodes.generate.detect import Detection

FAMILY = "sd3"
DENOISER = "model.diffusion_model."
# Where each text encoder sits in an all-in-one checkpoint, and the pipeline part it fills.
CHECKPOINT_TEXT = {"text_encoder": ("clip_l", "text_encoders.clip_l.transformer."),
                   "text_encoder_2": ("clip_g", "text_encoders.clip_g.transformer."),
                   "text_encoder_3": ("t5", "text_encoders.t5xxl.transformer.")}


def transformer_config(state: Mapping) -> dict:
    """SD3Transformer2DModel's config for a diffusers-named state dict: widths, depth, patch and position grid from the
    tensors; heads 64 wide (the released models'; a qk-normed model's norm says its own)."""
    cfg = model_config(FAMILY, "transformer")
    proj = state["pos_embed.proj.weight"]
    width, patch = int(proj.shape[0]), int(proj.shape[2])
    norm = state.get("transformer_blocks.0.attn.norm_q.weight")
    head = int(norm.shape[0]) if norm is not None else cfg["attention_head_dim"]
    layers = count(state, "transformer_blocks.{}.")
    cfg.update(patch_size=patch, in_channels=int(proj.shape[1]), attention_head_dim=head,
               num_attention_heads=width // head, num_layers=layers,
               joint_attention_dim=int(state["context_embedder.weight"].shape[1]), caption_projection_dim=width,
               pooled_projection_dim=int(state["time_text_embed.text_embedder.linear_1.weight"].shape[1]),
               out_channels=int(state["proj_out.weight"].shape[0]) // (patch * patch),
               pos_embed_max_size=int(round(int(state["pos_embed.pos_embed"].shape[1]) ** 0.5)),
               dual_attention_layers=[i for i in range(layers) if f"transformer_blocks.{i}.attn2.to_q.weight" in state],
               qk_norm="rms_norm" if norm is not None else None)
    return cfg


@register(FAMILY, "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import SD3Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers
    if any(k.startswith(DENOISER) for k in state):     # the MMDiT of an all-in-one file
        state = {k[len(DENOISER):]: v for k, v in state.items() if k.startswith(DENOISER)}
    conv = dict(state) if "pos_embed.proj.weight" in state else \
        convert_sd3_transformer_checkpoint_to_diffusers(dict(state))     # it pops what it converts
    cfg = transformer_config(conv)
    return Built(lambda: SD3Transformer2DModel.from_config(cfg), conv, cfg)


@register(FAMILY, "vae")
def vae(state, det) -> Built:
    """The first_stage_model.* of a checkpoint, or a VAE file: LDM names, 16 channels, SD3's scale and shift."""
    from nodes.generate.converters.sd import ldm_vae
    return ldm_vae(state, FAMILY, "vae")


@register("sd3_clip", "text_encoder")
def clip_with_projection(state, det) -> Built:
    """CLIP-L or OpenCLIP-G (by its width) as CLIPTextModelWithProjection, as StableDiffusion3Pipeline reads them."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    from nodes.generate.converters.text import tower
    proj = state.get("text_projection.weight")
    state = tower(state, "text_model.")
    tok = state["embeddings.token_embedding.weight"]
    hidden = int(tok.shape[1])
    cfg = model_config("clip_g" if det.variant == "clip_g" else "clip_l", "text_encoder")
    cfg.update(vocab_size=int(tok.shape[0]), hidden_size=hidden, num_attention_heads=max(1, hidden // 64),
               max_position_embeddings=int(state["embeddings.position_embedding.weight"].shape[0]),
               intermediate_size=int(state["encoder.layers.0.mlp.fc1.weight"].shape[0]),
               num_hidden_layers=count(state, "encoder.layers.{}."),
               projection_dim=int(proj.shape[0]) if proj is not None else hidden)
    state = {"text_model." + k: v for k, v in state.items()}
    state["text_projection.weight"] = proj if proj is not None else torch.eye(hidden, dtype=tok.dtype)
    config = CLIPTextConfig(**cfg)
    return Built(lambda: CLIPTextModelWithProjection(config), state, cfg)


def text_encoder(name: str, state, dtype, where: str, projected_l: bool = False):
    """One of SD3's encoders from its (prefix-free) tensors: clip_l, clip_g or t5. CLIP-L's pooled output is left
    unprojected (its projection dropped: the converter gives the identity) unless projected_l (HiDream-I1)."""
    from nodes.generate import converters
    if name == "clip_l" and not projected_l:
        state = {k: v for k, v in state.items() if k != "text_projection.weight"}
    det = Detection("text_encoder", "t5") if name == "t5" else Detection("text_encoder", "sd3_clip", name)
    return converters.build(det, state, dtype, where)


def tokenizers(path, names, folder=None) -> dict:
    """tokenizer / tokenizer_2 / tokenizer_3 for the encoders named. Both CLIPs read CLIP's BPE vocabulary; OpenCLIP-G
    pads with "!" (SD3's tokenizer_2, ComfyUI's). `folder`: a diffusers folder's names looked in first (beside an
    all-in-one file)."""
    import copy
    from nodes.generate.split import tokenizer
    out = {}
    if {"clip_l", "clip_g"} & set(names):
        first = [folder / "tokenizer", folder] if folder is not None else None
        out["tokenizer"] = tokenizer(path["clip_l"] if isinstance(path, dict) else path,
                                     Detection("text_encoder", "clip_l"), first)
        out["tokenizer_2"] = copy.deepcopy(out["tokenizer"])
        out["tokenizer_2"].pad_token = "!"
    if "t5" in names:
        out["tokenizer_3"] = tokenizer(path["t5"] if isinstance(path, dict) else path, Detection("text_encoder", "t5"),
                                       [folder / "tokenizer_3"] if folder is not None else None)
    return out


def sd3_pipeline(path, dtype):
    """A StableDiffusion3Pipeline from one file: the MMDiT, and the VAE and text encoders where the file holds them
    (the parts it lacks stay None: load.text_encoder and load.vae supply them)."""
    from graph_engine import NodeError
    from nodes.generate import converters
    from nodes.generate.detect import detect_file
    from nodes.generate.split import pipeline
    from nodes.generate.weights import load_weights, strip_prefix
    det = detect_file(path)
    refuse_unsupported(path, det)
    if det.family != FAMILY or det.role not in ("diffusion_model", "checkpoint"):
        raise NodeError(f"{path.name} is {det.describe() or 'not a model Kinograph knows'} ({det.why}), not a "
                        "Stable Diffusion 3 / 3.5 model")
    state = load_weights(path, dtype)
    where = str(path)
    parts = {"transformer": converters.build(Detection("diffusion_model", FAMILY, det.variant, prefix=det.prefix),
                                             state, dtype, where)}
    if any(k.startswith(("first_stage_model.", "vae.")) for k in state):
        parts["vae"] = converters.build(Detection("vae", FAMILY), state, dtype, where)
    names = []
    for part, (name, prefix) in CHECKPOINT_TEXT.items():
        own = strip_prefix(state, prefix)
        if own:
            parts[part] = text_encoder(name, own, dtype, where)
            names.append(name)
    if names:
        parts.update(tokenizers(path, names, path.parent / path.stem))
    return pipeline(FAMILY, det.variant, **parts)


def refuse_unsupported(path, det) -> None:
    if det.role == "controlnet" and det.family == FAMILY:
        from graph_engine import NodeError
        raise NodeError(f"{path.name} is a Stable Diffusion 3.5 ControlNet, which Kinograph does not run yet; SD 1.5 "
                        "and SDXL ControlNets it does (control.apply)")
