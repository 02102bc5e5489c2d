"""PixelDiT as ComfyUI users hold it (Comfy-Org/PixelDiT): the transformer (diffusion_models/
pixeldit_1300m_1024px_bf16.safetensors) in the released names under model.diffusion_model. or bare, which
nodes/generate/pixeldit_model.py keeps, so the tensors load as they are; and its text encoder Gemma-2-2B
(text_encoders/gemma_2_2b_it_elm_*.safetensors: transformers' names under model., the sentencepiece model as
spiece_model) as transformers' Gemma2Model. Every size comes from the tensors."""
from __future__ import annotations

import math

from graph_engine import NodeError
from nodes.generate.converters import Built, count, register


def transformer_config(state) -> dict:
    pixel = state["pixel_embedder.proj.weight"]
    patch = state["s_embedder.proj.weight"]
    in_ch, hidden = int(pixel.shape[1]), int(patch.shape[0])
    side = math.isqrt(int(patch.shape[1]) // in_ch)
    if side * side * in_ch != int(patch.shape[1]):
        raise NodeError(f"this PixelDiT's patch embedder reads {int(patch.shape[1])} values per patch, no square of "
                        f"{in_ch} colours: the file is damaged or not PixelDiT's")
    head = int(state["patch_blocks.0.attn.q_norm_x.weight"].shape[0])
    attn = int(state["pixel_blocks.0.compress_to_attn.weight"].shape[0])
    pixel_head = int(state["pixel_blocks.0.attn.q_norm.weight"].shape[0])
    return dict(in_channels=in_ch, hidden_size=hidden, num_groups=hidden // head,
                pixel_hidden_size=int(pixel.shape[0]), pixel_attn_hidden_size=attn,
                pixel_num_groups=attn // pixel_head, patch_depth=count(state, "patch_blocks.{}."),
                pixel_depth=count(state, "pixel_blocks.{}."), patch_size=side,
                txt_embed_dim=int(state["y_embedder.proj.weight"].shape[1]),
                txt_max_length=int(state["y_pos_embedding"].shape[1]),
                mlp_hidden=int(state["patch_blocks.0.mlp_x.w1.weight"].shape[0]))


def pid_config(state) -> dict:
    """PiD's low-quality branch from its tensors: the latent's channels, the conv width, residual blocks, one gate per
    lq_interval patch blocks (ComfyUI reads the interval from the gates' count the same way)."""
    gates = count(state, "lq_proj.gate_modules.{}.")
    depth = count(state, "patch_blocks.{}.")
    conv = state["lq_proj.latent_proj.0.weight"]
    return dict(lq_latent_channels=int(conv.shape[1]), lq_hidden_dim=int(conv.shape[0]),
                lq_num_res_blocks=count(state, "lq_proj.latent_proj.{}.block."), lq_outputs=gates,
                lq_interval=(depth + gates - 1) // max(gates, 1))


@register("pixeldit", "diffusion_model")
def transformer(state, det) -> Built:
    from nodes.generate.pixeldit_model import PiDTransformer, PixelDiTTransformer
    cfg = transformer_config(state)
    if "lq_proj.latent_proj.0.weight" in state:
        cfg.update(pid_config(state))
        return Built(lambda: PiDTransformer.from_config(cfg), dict(state), cfg)
    return Built(lambda: PixelDiTTransformer.from_config(cfg), dict(state), cfg)


@register("gemma2", "text_encoder")
def gemma2(state, det) -> Built:
    """Gemma 2 as ComfyUI reads it (comfy/text_encoders/llama.py Gemma2_2B): every layer attending to all earlier
    tokens (every layer full attention; transformers wants a sliding window set all the same) and no soft cap on the attention scores, which transformers' Gemma 2 otherwise
    applies; the scores scaled by the head width, as ComfyUI's attention scales them."""
    from transformers import Gemma2Config, Gemma2Model
    tensors = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()
               if k not in ("spiece_model", "lm_head.weight")}
    emb = tensors["embed_tokens.weight"]
    q = tensors["layers.0.self_attn.q_proj.weight"]
    k = tensors["layers.0.self_attn.k_proj.weight"]
    # the heads are not in the tensors: Gemma-2-2B's 256 wide (8 of them, 4 shared keys) where the widths allow,
    # else one key head
    head_dim = 256 if int(q.shape[0]) % 256 == 0 and int(k.shape[0]) % 256 == 0 else int(k.shape[0])
    layers = count(tensors, "layers.{}.")
    config = Gemma2Config(vocab_size=int(emb.shape[0]), hidden_size=int(emb.shape[1]),
                          intermediate_size=int(tensors["layers.0.mlp.gate_proj.weight"].shape[0]),
                          num_hidden_layers=layers, num_attention_heads=int(q.shape[0]) // head_dim,
                          num_key_value_heads=int(k.shape[0]) // head_dim, head_dim=head_dim,
                          query_pre_attn_scalar=head_dim, attn_logit_softcapping=None, final_logit_softcapping=None,
                          sliding_window=8192, layer_types=["full_attention"] * layers, rms_norm_eps=1e-6,
                          rope_theta=10000.0, max_position_embeddings=8192,
                          hidden_activation="gelu_pytorch_tanh")
    return Built(lambda: Gemma2Model(config), tensors, config.to_dict())
