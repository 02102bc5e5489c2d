"""CogVideoX transformer single files: diffusers' names (a CogVideoXPipeline folder's transformer file) or ComfyUI's
own (comfy/ldm/cogvideo/model.py: blocks.N.q, ff_proj, time_embedding_linear_1), which Comfy-Org's VOID files
(diffusion_models/void_pass1.safetensors, void_pass2.safetensors: CogVideoX-Fun V1.5 5B inpainting) are in. ComfyUI's
module is diffusers' CogVideoXTransformer3DModel with flattened names, the same tensors in the same order (its
LayerNormZero chunks shift, scale, gate, then the text's three, as diffusers' do), so reading it is renaming only.
The VAE (Comfy-Org's vae/cogvideox_vae.safetensors, comfy/ldm/cogvideo/vae.py) keeps diffusers' module names
(encoder.down_blocks.N.resnets.M.conv1.conv, decoder's norm1.conv_y.conv, ...): it loads as it is."""
from __future__ import annotations

import math

from nodes.generate.converters import Built, count, model_config, register

FAMILY = "cogvideox"
MARKER = "transformer_blocks.0.norm1.linear.weight"
# ComfyUI's names -> diffusers' (inside each block first, then the model's own)
BLOCK = {"q.": "attn1.to_q.", "k.": "attn1.to_k.", "v.": "attn1.to_v.", "norm_q.": "attn1.norm_q.",
         "norm_k.": "attn1.norm_k.", "attn_out.": "attn1.to_out.0.", "ff_proj.": "ff.net.0.proj.",
         "ff_out.": "ff.net.2."}
TOP = {"time_embedding_linear_1.": "time_embedding.linear_1.", "time_embedding_linear_2.": "time_embedding.linear_2.",
       "ofs_embedding_linear_1.": "ofs_embedding.linear_1.", "ofs_embedding_linear_2.": "ofs_embedding.linear_2."}


def comfy_to_diffusers(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        name = key
        if key.startswith("blocks."):
            index, rest = key[len("blocks."):].split(".", 1)
            rest = next((new + rest[len(old):] for old, new in BLOCK.items() if rest.startswith(old)), rest)
            name = f"transformer_blocks.{index}.{rest}"
        else:
            name = next((new + key[len(old):] for old, new in TOP.items() if key.startswith(old)), key)
        out[name] = value
    return out


def transformer_config(state) -> dict:
    """The shipped 5B config with what the tensors state. Patches: a Conv2d (4-D weight) is V1.0's frame-by-frame
    patch; a Linear is V1.5's two-frame 2x2 patch (the only one released). Positions: a stored pos_embedding is a
    learned table (5B I2V, made for the shipped 49 frames at 480x720); rotary on every model but CogVideoX-2B (1920
    wide, V1.0), whose sin-cos table is computed, as the released configs say."""
    cfg = model_config(FAMILY, "transformer")
    proj, out = state["patch_embed.proj.weight"], state["proj_out.weight"]
    head = int(state["transformer_blocks.0.attn1.norm_q.weight"].shape[0])
    dim = int(proj.shape[0])
    if proj.ndim == 4:
        patch, patch_t, cells = int(proj.shape[2]), None, int(proj.shape[2]) ** 2
    else:
        patch, patch_t, cells = 2, 2, 8
    learned = "patch_embed.pos_embedding" in state
    cfg.update(num_attention_heads=dim // head, attention_head_dim=head, in_channels=int(proj.shape[1]) // (
        1 if proj.ndim == 4 else cells), out_channels=int(out.shape[0]) // cells, patch_size=patch,
        patch_size_t=patch_t, time_embed_dim=int(state["time_embedding.linear_1.weight"].shape[0]),
        text_embed_dim=int(state["patch_embed.text_proj.weight"].shape[1]),
        num_layers=count(state, "transformer_blocks.{}."), patch_bias="patch_embed.proj.bias" in state,
        ofs_embed_dim=int(state["ofs_embedding.linear_1.weight"].shape[0]) if "ofs_embedding.linear_1.weight"
        in state else None, use_learned_positional_embeddings=learned,
        use_rotary_positional_embeddings=patch_t is not None or dim != 1920)
    return cfg


@register(FAMILY, "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import CogVideoXTransformer3DModel
    conv = dict(state) if MARKER in state else comfy_to_diffusers(state)
    cfg = transformer_config(conv)
    return Built(lambda: CogVideoXTransformer3DModel.from_config(cfg), conv, cfg)


def vae_config(state) -> dict:
    """The shipped VAE config with the widths, depth and channels the tensors state. The latent scale is the released
    VAE's (the tensors do not say it); so are its 32 norm groups, where they divide every width (a narrower VAE
    takes the widths' greatest common divisor)."""
    cfg = model_config(FAMILY, "vae")
    blocks = count(state, "encoder.down_blocks.{}.")
    widths = [int(state[f"encoder.down_blocks.{i}.resnets.0.conv1.conv.weight"].shape[0]) for i in range(blocks)]
    cfg.update(in_channels=int(state["encoder.conv_in.conv.weight"].shape[1]),
               out_channels=int(state["decoder.conv_out.conv.weight"].shape[0]), block_out_channels=widths,
               down_block_types=["CogVideoXDownBlock3D"] * blocks, up_block_types=["CogVideoXUpBlock3D"] * blocks,
               latent_channels=int(state["encoder.conv_out.conv.weight"].shape[0]) // 2,
               layers_per_block=count(state, "encoder.down_blocks.0.resnets.{}."),
               norm_num_groups=math.gcd(cfg["norm_num_groups"], *widths))
    return cfg


@register(FAMILY, "vae")
def vae(state, det) -> Built:
    from diffusers import AutoencoderKLCogVideoX
    cfg = vae_config(state)
    return Built(lambda: AutoencoderKLCogVideoX.from_config(cfg), dict(state), cfg)
