"""Stable Video Diffusion from Stability's single file (ComfyUI: checkpoints/svd.safetensors, svd_xt...):
the UNet under `model.diffusion_model.` (LDM names with `time_stack` temporal layers), the VAE under
`first_stage_model.` (LDM encoder, temporal decoder) and the OpenCLIP ViT-H image encoder under
`conditioner.embedders.0.open_clip.model.visual.`. diffusers has no single-file loader for any of
the three; the renames here follow diffusers' SVD classes (UNetSpatioTemporalConditionModel,
AutoencoderKLTemporalDecoder, CLIPVisionModelWithProjection)."""
from __future__ import annotations

import re
from collections.abc import Mapping

from nodes.generate.converters import Built, count, model_config, register
from nodes.generate.converters import ldm

FAMILY = "svd"
UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP = "conditioner.embedders.0.open_clip.model.visual."
HEAD_DIM = 64                        # SVD's attention heads (5/10/20/20 heads over 320/640/1280 channels)


def _under(state: Mapping, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _video_resnet(rest: str) -> str:
    """VideoResBlock: the spatial ResBlock's names, `time_stack.` the temporal one, `time_mixer` the blend."""
    if rest.startswith("time_stack."):
        return "temporal_res_block." + ldm.resnet_names(rest[len("time_stack."):])
    if rest.startswith("time_mixer."):
        return rest
    return "spatial_res_block." + ldm.resnet_names(rest)


def _video_transformer(rest: str) -> str:
    """SpatialVideoTransformer: `time_stack.N` are the temporal blocks, `time_pos_embed.0/2` an MLP."""
    rest = re.sub(r"^time_stack\.", "temporal_transformer_blocks.", rest)
    return rest.replace("time_pos_embed.0.", "time_pos_embed.linear_1.").replace(
        "time_pos_embed.2.", "time_pos_embed.linear_2.")


def unet_to_diffusers(state: Mapping) -> dict:
    return ldm.unet_to_diffusers(state, _video_resnet, _video_transformer)


def vae_to_diffusers(state: Mapping) -> dict:
    """The LDM autoencoder renames, then the temporal decoder's own: VideoResBlocks and conv_out's time mix."""
    out = {}
    for k, v in ldm.vae_to_diffusers(state).items():
        m = re.match(r"^(decoder\.(?:mid_block|up_blocks\.\d+)\.resnets\.\d+)\.(.*)$", k)
        if m:
            k = f"{m.group(1)}.{_decoder_resnet(m.group(2))}"
        elif k.startswith("decoder.conv_out.time_mix_conv."):
            k = "decoder.time_conv_out." + k[len("decoder.conv_out.time_mix_conv."):]
        out[k] = v
    if "quant_conv.weight" not in out:
        # Stability's AutoencodingEngine has no quant_conv; diffusers' class always applies one: the identity.
        import torch
        z2 = int(out["encoder.conv_out.weight"].shape[0])
        out["quant_conv.weight"] = torch.eye(z2, dtype=out["encoder.conv_out.weight"].dtype).reshape(z2, z2, 1, 1)
        out["quant_conv.bias"] = torch.zeros(z2, dtype=out["encoder.conv_out.weight"].dtype)
    return out


def _decoder_resnet(rest: str) -> str:
    if rest.startswith("time_stack."):
        return "temporal_res_block." + ldm.resnet_names(rest[len("time_stack."):])
    if rest.startswith("time_mixer."):
        return rest
    return "spatial_res_block." + rest


def clip_to_transformers(state: Mapping) -> dict:
    """OpenCLIP's visual tower -> transformers' CLIPVisionModelWithProjection names (qkv split, proj transposed)."""
    top = {"conv1.weight": "vision_model.embeddings.patch_embedding.weight",
           "class_embedding": "vision_model.embeddings.class_embedding",
           "positional_embedding": "vision_model.embeddings.position_embedding.weight",
           "ln_pre.": "vision_model.pre_layrnorm.", "ln_post.": "vision_model.post_layernorm."}
    block = {"ln_1.": "layer_norm1.", "ln_2.": "layer_norm2.", "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2.",
             "attn.out_proj.": "self_attn.out_proj."}
    out = {}
    for k, v in state.items():
        if k == "proj":
            out["visual_projection.weight"] = v.t().contiguous()
            continue
        m = re.match(r"^transformer\.resblocks\.(\d+)\.(.*)$", k)
        if m is None:
            new = next((n + k[len(o):] for o, n in top.items() if k.startswith(o)), k)
            out[new] = v
            continue
        base, rest = f"vision_model.encoder.layers.{m.group(1)}.", m.group(2)
        if rest.startswith("attn.in_proj_"):
            kind = rest[len("attn.in_proj_"):]
            for name, part in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3, dim=0)):
                out[f"{base}self_attn.{name}.{kind}"] = part
            continue
        out[base + next((n + rest[len(o):] for o, n in block.items() if rest.startswith(o)), rest)] = v
    return out


def unet_config(state: Mapping) -> dict:
    """The shipped SVD UNet config with this file's widths, depths and attention levels."""
    cfg = model_config(FAMILY, "unet")
    levels = count(state, "down_blocks.{}.")
    boc = [int(state[f"down_blocks.{i}.resnets.0.spatial_res_block.conv1.weight"].shape[0]) for i in range(levels)]
    attn = [f"down_blocks.{i}.attentions.0.proj_in.weight" in state for i in range(levels)]
    ctx = state.get("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight")
    proj = int(state["add_embedding.linear_1.weight"].shape[1])
    cfg.update(block_out_channels=boc, layers_per_block=count(state, "down_blocks.0.resnets.{}."),
               in_channels=int(state["conv_in.weight"].shape[1]), out_channels=int(state["conv_out.weight"].shape[0]),
               down_block_types=["CrossAttnDownBlockSpatioTemporal" if a else "DownBlockSpatioTemporal" for a in attn],
               up_block_types=["CrossAttnUpBlockSpatioTemporal" if a else "UpBlockSpatioTemporal"
                               for a in reversed(attn)],
               num_attention_heads=[max(1, c // HEAD_DIM) for c in boc],
               cross_attention_dim=int(ctx.shape[1]) if ctx is not None else cfg["cross_attention_dim"],
               projection_class_embeddings_input_dim=proj, addition_time_embed_dim=proj // 3)
    return cfg


def vae_config(state: Mapping) -> dict:
    cfg = model_config(FAMILY, "vae")
    levels = count(state, "encoder.down_blocks.{}.")
    cfg.update(block_out_channels=[int(state[f"encoder.down_blocks.{i}.resnets.0.conv1.weight"].shape[0])
                                   for i in range(levels)],
               down_block_types=["DownEncoderBlock2D"] * levels,
               layers_per_block=count(state, "encoder.down_blocks.0.resnets.{}."),
               latent_channels=int(state["decoder.conv_in.weight"].shape[1]))
    return cfg


def clip_config(state: Mapping) -> dict:
    cfg = model_config(FAMILY, "image_encoder")
    pe = state["vision_model.embeddings.patch_embedding.weight"]
    hidden, patch = int(pe.shape[0]), int(pe.shape[2])
    positions = int(state["vision_model.embeddings.position_embedding.weight"].shape[0])
    cfg.update(hidden_size=hidden, patch_size=patch, image_size=int(round((positions - 1) ** 0.5)) * patch,
               intermediate_size=int(state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]),
               num_hidden_layers=count(state, "vision_model.encoder.layers.{}."),
               projection_dim=int(state["visual_projection.weight"].shape[0]),
               num_attention_heads=max(1, hidden // 80))       # ViT-H: 16 heads of 80
    return cfg


def _unet_state(state: Mapping, det) -> dict:
    if det.layout == "diffusers":
        return dict(state)
    if any(k.startswith(UNET) for k in state):
        state = _under(state, UNET)
    return unet_to_diffusers(state)


@register("svd", "checkpoint")          # the all-in-one file: its denoiser (load.diffusion_model)
@register("svd", "diffusion_model")
def unet(state, det) -> Built:
    from diffusers import UNetSpatioTemporalConditionModel
    conv = _unet_state(state, det)
    cfg = unet_config(conv)
    return Built(lambda: UNetSpatioTemporalConditionModel.from_config(cfg), conv, cfg)


@register("svd", "vae")
def vae(state, det) -> Built:
    from diffusers import AutoencoderKLTemporalDecoder
    if any(k.startswith(VAE) for k in state):
        state = _under(state, VAE)
    conv = vae_to_diffusers(state) if any(k.startswith("encoder.down.") for k in state) else dict(state)
    cfg = vae_config(conv)
    return Built(lambda: AutoencoderKLTemporalDecoder.from_config(cfg), conv, cfg)


@register("svd", "clip_vision")
def image_encoder(state, det) -> Built:
    """The image encoder inside an SVD checkpoint (SVD reads its projected image embedding)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    if any(k.startswith(CLIP) for k in state):
        state = _under(state, CLIP)
    conv = clip_to_transformers(state) if "conv1.weight" in state else dict(state)
    cfg = clip_config(conv)
    config = CLIPVisionConfig(**cfg)
    return Built(lambda: CLIPVisionModelWithProjection(config), conv, cfg)
