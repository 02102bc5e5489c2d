"""Lens's transformer as ComfyUI users hold it (Comfy-Org/Lens's diffusion_models/lens_bf16.safetensors and
lens_turbo_bf16.safetensors): the released names under model.diffusion_model. or bare, which
nodes/generate/lens_model.py keeps, so the tensors load as they are. Every size comes from the tensors; the rotary
split is the released one's (8 channels of each head for the frame, the rest halved between rows and columns)."""
from __future__ import annotations

from graph_engine import NodeError
from nodes.generate.converters import Built, count, register

FRAME_AXIS = 8


def transformer_config(state) -> dict:
    img_in = state["img_in.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    dim = int(img_in.shape[0])
    if head <= FRAME_AXIS or (head - FRAME_AXIS) % 4 or dim % head:
        raise NodeError(f"this Lens transformer's heads are {head} wide in a width of {dim}; Lens turns 8 channels of "
                        "each head for the frame and halves the rest, in pairs, between rows and columns (the "
                        "release's 64 = 8 + 28 + 28): the file is damaged or not Lens's")
    layers = count(state, "txt_norm.{}.")
    side = (head - FRAME_AXIS) // 2
    return dict(in_channels=int(img_in.shape[1]), out_channels=int(state["proj_out.weight"].shape[0]) // 4,
                num_layers=count(state, "transformer_blocks.{}."), num_attention_heads=dim // head,
                attention_head_dim=head, enc_hidden_dim=int(state["txt_norm.0.weight"].shape[0]), text_layers=layers,
                axes_dims_rope=(FRAME_AXIS, side, side))


@register("lens", "diffusion_model")
def transformer(state, det) -> Built:
    from nodes.generate.lens_model import LensTransformer
    cfg = transformer_config(state)
    return Built(lambda: LensTransformer.from_config(cfg), dict(state), cfg)


# GPT-OSS-20B's settings that no tensor states (openai/gpt-oss-20b's config.json): 4 experts per token, every other
# layer attending to the last 128 tokens only (from the first), YaRN rope stretching 4096 positions 32 times
GPT_OSS = dict(num_experts_per_tok=4, sliding_window=128, rms_norm_eps=1e-5, max_position_embeddings=131072,
               rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "beta_fast": 32.0,
                                "beta_slow": 1.0, "original_max_position_embeddings": 4096, "truncate": False})
# ComfyUI's expert banks (comfy.ops MoEExperts: weight [experts, out, in], bias [experts, out]) -> transformers'
# GptOssExperts parameters ([experts, in, out])
EXPERTS = {"gate_up_proj.weight": "gate_up_proj", "gate_up_proj.bias": "gate_up_proj_bias",
           "down_proj.weight": "down_proj", "down_proj.bias": "down_proj_bias"}


@register("gpt_oss", "text_encoder")
def gpt_oss(state, det) -> Built:
    """GPT-OSS as ComfyUI holds Lens's text encoder (text_encoders/gpt_oss_20b_*.safetensors: the decoder's layers
    under model. or bare, the experts as banks, its tokenizer.json's bytes as tokenizer_json) as transformers'
    GptOssModel; the sizes come from the tensors (the heads from the sinks, one per head)."""
    from transformers import GptOssConfig, GptOssModel
    state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()
             if k != "tokenizer_json" and k != "lm_head.weight"}
    tensors = {}
    for k, v in state.items():
        head, _, tail = k.partition(".mlp.experts.")
        tensors[f"{head}.mlp.experts.{EXPERTS[tail]}" if tail in EXPERTS else k] = \
            v.transpose(1, 2) if tail.endswith("proj.weight") else v
    heads = int(state["layers.0.self_attn.sinks"].shape[0])
    q = state["layers.0.self_attn.q_proj.weight"]
    head_dim = int(q.shape[0]) // heads
    emb = state["embed_tokens.weight"]
    config = GptOssConfig(vocab_size=int(emb.shape[0]), hidden_size=int(emb.shape[1]),
                          num_hidden_layers=count(state, "layers.{}."), num_attention_heads=heads, head_dim=head_dim,
                          num_key_value_heads=int(state["layers.0.self_attn.k_proj.weight"].shape[0]) // head_dim,
                          num_local_experts=int(state["layers.0.mlp.router.weight"].shape[0]),
                          intermediate_size=int(tensors["layers.0.mlp.experts.down_proj"].shape[1]), **GPT_OSS)
    return Built(lambda: GptOssModel(config), tensors, config.to_dict())
