"""Qwen3.5 as ComfyUI users hold it (text_encoders/qwen3.5_4b_bf16.safetensors, qwen3.5_9b_*: MOSS-Image's encoder
and ComfyUI's text generation): the hybrid language model in transformers' names under model. (gated delta-net
linear attention in three layers of four, gated full attention in the fourth), its head as model.lm_head where the
model keeps its own (9B, 27B), the vision tower as visual.*. Loaded as transformers' Qwen3_5ForConditionalGeneration
(Qwen3_5ForCausalLM where the file holds no vision tower); the sizes come from the tensors, the rest from the released
configs."""
from __future__ import annotations

from nodes.generate.converters import Built, count, register

# The released models' settings that no tensor states: rope on a quarter of each head at theta 1e7, in Qwen3-VL's
# interleaved three-axis split (all axes equal for text)
ROPE = {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
        "mrope_section": [11, 11, 10], "mrope_interleaved": True}



@register("qwen35", "text_encoder")
def qwen35(state, det) -> Built:
    from transformers import (Qwen3_5Config, Qwen3_5ForCausalLM, Qwen3_5ForConditionalGeneration,
                              Qwen3_5TextConfig)
    from nodes.generate.converters.qwenimage import language_model, qwen3_vision_heads, vision_tower
    head = state.get("model.lm_head.weight", state.get("lm_head.weight"))
    vision = vision_tower(state)
    state = language_model(state)
    layers = count(state, "layers.{}.")
    kinds = ["linear_attention" if f"layers.{i}.linear_attn.A_log" in state else "full_attention"
             for i in range(layers)]
    full = kinds.index("full_attention")
    attn, delta = f"layers.{full}.self_attn.", "layers.0.linear_attn."
    head_dim = int(state[attn + "q_norm.weight"].shape[0])
    value_dim = int(state[delta + "norm.weight"].shape[0])
    value_heads = int(state[delta + "A_log"].shape[0])
    keys = (int(state[delta + "in_proj_qkv.weight"].shape[0]) - value_heads * value_dim) // 2
    emb = state["embed_tokens.weight"]
    # the released models' key heads are as wide as their value heads (128)
    config = Qwen3_5TextConfig(
        vocab_size=int(emb.shape[0]), hidden_size=int(emb.shape[1]), num_hidden_layers=layers, layer_types=kinds,
        intermediate_size=int(state["layers.0.mlp.gate_proj.weight"].shape[0]),
        num_attention_heads=int(state[attn + "q_proj.weight"].shape[0]) // (2 * head_dim),
        num_key_value_heads=int(state[attn + "k_proj.weight"].shape[0]) // head_dim, head_dim=head_dim,
        linear_num_value_heads=value_heads, linear_value_head_dim=value_dim, linear_key_head_dim=value_dim,
        linear_num_key_heads=keys // value_dim, linear_conv_kernel_dim=int(state[delta + "conv1d.weight"].shape[-1]),
        rms_norm_eps=1e-6, max_position_embeddings=262144, rope_parameters=dict(ROPE),
        tie_word_embeddings=head is None)
    tensors = {"lm_head.weight": head} if head is not None else {}
    if not vision:
        tensors.update({"model." + k: v for k, v in state.items()})
        return Built(lambda: Qwen3_5ForCausalLM(config), tensors, config.to_dict())
    patch, width = vision["patch_embed.proj.weight"], int(vision["patch_embed.proj.weight"].shape[0])
    sight = dict(depth=count(vision, "blocks.{}."), hidden_size=width,
                 num_heads=qwen3_vision_heads(width), patch_size=int(patch.shape[-1]),
                 temporal_patch_size=int(patch.shape[2]), spatial_merge_size=2,
                 intermediate_size=int(vision["blocks.0.mlp.linear_fc1.weight"].shape[0]),
                 out_hidden_size=int(vision["merger.linear_fc2.weight"].shape[0]),
                 num_position_embeddings=int(vision["pos_embed.weight"].shape[0]))
    both = Qwen3_5Config(text_config=config.to_dict(), vision_config=sight, tie_word_embeddings=head is None)
    tensors.update({**{"model.language_model." + k: v for k, v in state.items()},
                    **{"model.visual." + k: v for k, v in vision.items()}})
    return Built(lambda: Qwen3_5ForConditionalGeneration(both), tensors, both.to_dict())
