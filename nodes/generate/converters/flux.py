"""FLUX.1 single files as ComfyUI users hold them:
  diffusion_models/flux1-dev.safetensors, flux1-schnell.safetensors (also in unet/): Black Forest Labs' names
      (double_blocks, single_blocks, img_in, txt_in, time_in, vector_in, guidance_in for dev, final_layer)
  vae/ae.safetensors: the LDM autoencoder names with 16 latent channels and no quant convolutions
  text_encoders/ (or clip/) clip_l.safetensors + t5xxl_fp16.safetensors: transformers' own names (converters/text.py)
The transformer goes through diffusers' own converter. It splits each single block's fused linear1 at the released
model's width (3072) whatever the file's; so the split is made here at the file's width, and diffusers' converter is
handed an empty stand-in of the shape it expects for that one tensor (no memory), its pieces then replaced."""
from __future__ import annotations

from collections.abc import Mapping

from nodes.generate.converters import Built, count, model_config, register, split_single_block

FAMILY = "flux"
RELEASED_WIDTH = 3072               # diffusers' converter's fixed inner_dim (FLUX.1 dev and schnell)


def rope_axes(head_dim: int, family: str = FAMILY) -> list:
    """The rotary position split of a head (time, row, column): the released models' [16, 56, 56] for 128-wide heads
    (FLUX.1's and Qwen-Image's), the same proportions (an eighth for the first axis, even sizes) for others."""
    if head_dim == 128:
        return list(model_config(family, "transformer")["axes_dims_rope"])
    first = max(2, head_dim // 8 // 2 * 2)
    side = (head_dim - first) // 2
    return [head_dim - 2 * side, side, side]


def transformer_to_diffusers(state: Mapping, convert=None) -> dict:
    """BFL's names -> diffusers' through diffusers' converter (`convert`: FLUX.1's, or Chroma's for its pruned
    blocks), the single blocks split at the file's width."""
    import torch
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers
    if "x_embedder.weight" in state:               # already diffusers names
        return dict(state)
    width = int(state["img_in.weight"].shape[0])
    given, own = {}, {}
    for k, v in state.items():
        parts = split_single_block(k, v, width)
        if parts is None:
            given[k] = v
            continue
        own.update(parts)
        rows = 3 * RELEASED_WIDTH + 4 * RELEASED_WIDTH
        given[k] = torch.empty(rows, 0) if k.endswith("weight") else torch.zeros(1).expand(rows)
    out = (convert or convert_flux_transformer_checkpoint_to_diffusers)(given)
    out.update(own)
    return out


def unpooled_to_diffusers(state: Mapping, renamed: Mapping) -> dict:
    """BFL's names of FLUX.1's blocks told no pooled embedding (LongCat-Image's, Ovis-Image's: no vector_in) ->
    diffusers', through transformer_to_diffusers. diffusers' converter reads a vector_in whatever the file holds: it
    is handed an empty stand-in, whose converted pieces are dropped; `renamed` moves the time embedder (and any other
    name the model's diffusers class gives differently from FluxTransformer2DModel) by prefix."""
    import torch
    stand_in = {f"vector_in.{layer}.{p}": torch.empty(0) for layer in ("in_layer", "out_layer") for p in ("weight", "bias")}
    out = {}
    for k, v in transformer_to_diffusers({**state, **stand_in}).items():
        if k.startswith("time_text_embed.text_embedder."):
            continue
        old = next((o for o in renamed if k.startswith(o)), None)
        out[renamed[old] + k[len(old):] if old else k] = v
    return out


def transformer_config(state: Mapping) -> dict:
    cfg = model_config(FAMILY, "transformer")
    w = state["x_embedder.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    # Fill and Depth/Canny read more channels than they give back (the latent's 64 per patch)
    cfg.update(in_channels=int(w.shape[1]), out_channels=int(state["proj_out.weight"].shape[0]),
               num_attention_heads=int(w.shape[0]) // head, attention_head_dim=head,
               num_layers=count(state, "transformer_blocks.{}."),
               num_single_layers=count(state, "single_transformer_blocks.{}."),
               joint_attention_dim=int(state["context_embedder.weight"].shape[1]),
               pooled_projection_dim=int(state["time_text_embed.text_embedder.linear_1.weight"].shape[1]),
               guidance_embeds="time_text_embed.guidance_embedder.linear_1.weight" in state,
               axes_dims_rope=rope_axes(head))
    return cfg


@register("flux", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import FluxTransformer2DModel
    from graph_engine import NodeError
    if det.variant.startswith("in-"):
        raise NodeError(f"this FLUX.1 model reads {det.extra.get('in_channels')} input channels, which no released "
                        "FLUX.1 does (dev, schnell and Kontext read 64, Fill 384, Depth and Canny 128)")
    if any(k.startswith("model.diffusion_model.") for k in state):     # the transformer of an all-in-one file
        state = {k[len("model.diffusion_model."):]: v for k, v in state.items() if k.startswith("model.diffusion_model.")}
    conv = transformer_to_diffusers(state)
    cfg = transformer_config(conv)
    return Built(lambda: FluxTransformer2DModel.from_config(cfg), conv, cfg)


@register("flux", "vae")
def vae(state, det) -> Built:
    """ae.safetensors (LDM names, 16 channels), or the vae.* part of an all-in-one checkpoint."""
    from nodes.generate.converters.sd import ldm_vae
    return ldm_vae(state, FAMILY, "vae")


@register("flux", "style_model")
def redux(state, det) -> Built:
    """flux1-redux-dev.safetensors: diffusers' ReduxImageEncoder has the published file's names."""
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    cfg = dict(redux_dim=int(state["redux_up.weight"].shape[1]), txt_in_features=int(state["redux_down.weight"].shape[0]))
    return Built(lambda: ReduxImageEncoder(**cfg), state, cfg)


# Where each part sits in ComfyUI's all-in-one FLUX.1 checkpoints (flux1-dev-fp8.safetensors in checkpoints/).
CHECKPOINT_TEXT = {"clip_l": "text_encoders.clip_l.transformer.", "t5": "text_encoders.t5xxl.transformer."}


def flux_pipeline(path, det, dtype):
    """A FluxPipeline from one all-in-one checkpoint: the transformer (model.diffusion_model.), the VAE (vae.) and
    both text encoders (text_encoders.clip_l / t5xxl), each through its own converter. Tokenizers are looked for in
    <name>/tokenizer and <name>/tokenizer_2 beside the file (a diffusers folder's names) before the usual places."""
    from graph_engine import NodeError
    from nodes.generate import converters
    from nodes.generate.detect import Detection
    from nodes.generate.split import pipeline, tokenizer
    from nodes.generate.weights import load_weights, strip_prefix
    state = load_weights(path, dtype)
    where = str(path)
    parts = {"transformer": converters.build(Detection("diffusion_model", FAMILY, det.variant, prefix=det.prefix),
                                             state, dtype, where)}
    if any(k.startswith("vae.") for k in state):
        parts["vae"] = converters.build(Detection("vae", FAMILY), state, dtype, where)
    folder = path.parent / path.stem
    for i, (name, prefix) in enumerate(CHECKPOINT_TEXT.items()):
        own = strip_prefix(state, prefix)
        if not own:
            continue
        if name == "clip_l":
            own = {k: v for k, v in own.items() if not k.startswith("text_projection.")}
        suffix = "_2" if i else ""
        enc_det = Detection("text_encoder", name)
        parts[f"text_encoder{suffix}"] = converters.build(enc_det, own, dtype, where)
        parts[f"tokenizer{suffix}"] = tokenizer(path, enc_det, [folder / f"tokenizer{suffix}"] + ([] if i else [folder]))
    if len(parts) == 1:
        raise NodeError(f"{path.name} holds FLUX.1's transformer alone; load it with load.diffusion_model (or "
                        "load.flux) and give its text encoders and VAE through load.text_encoder and load.vae")
    return pipeline(FAMILY, det.variant, **parts)
