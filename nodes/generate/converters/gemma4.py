"""Gemma 4's language model as ComfyUI users hold it (text_encoders/gemma4_e4b_it_*.safetensors, gemma4_e2b_*,
gemma4_31b_*: LTX-2.5's encoder and ComfyUI's text generation): transformers' names under model. (or
model.language_model.), its tokenizer's JSON inside the file as the uint8 tensor `tokenizer_json`, the vision and
audio towers beside (not read). Loaded as transformers' Gemma4ForCausalLM, its head tied to the embeddings; the sizes
come from the tensors, the rest from the released configs."""
from __future__ import annotations

from nodes.generate.converters import Built, count, register

# What no tensor states, as the released models (and ComfyUI's Gemma4Config) set it: logits capped at 30, sliding
# attention over 512 tokens (1024 for the 31B, 5376 wide), rope as Gemma4TextConfig's defaults
SOFTCAP = 30.0
SLIDING = {5376: 1024}


def language_model(state) -> dict:
    """The language model's tensors under model. (transformers 5's model.language_model. taken as model.)."""
    inner = any(k.startswith("model.language_model.") for k in state)
    prefix = "model.language_model." if inner else "model."
    return {"model." + k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)
            and not k.startswith(("model.vision", "model.audio", "model.embed_vision", "model.embed_audio"))}


@register("gemma4", "text_encoder")
def gemma4(state, det) -> Built:
    """Global (full-attention) layers have twice the sliding layers' head width (their q_norm); the trailing layers
    without k_proj read the keys and values of the last layer of their kind that has them (num_kv_shared_layers); the
    double-wide MLP (E2B) is on those shared layers; global layers with keys but no v_proj take the keys as values
    (attention_k_eq_v, the 31B's)."""
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig
    from graph_engine import NodeError
    state = language_model(state)
    if any(".experts." in k for k in state):
        raise NodeError("this Gemma 4 file is a mixture-of-experts model (26B-A4B), which Kinograph does not load; "
                        "use gemma4_e2b, gemma4_e4b or gemma4_31b")
    emb = state["model.embed_tokens.weight"]
    layers = count(state, "model.layers.{}.")
    attn = [f"model.layers.{i}.self_attn." for i in range(layers)]
    widths = [int(state[a + "q_norm.weight"].shape[0]) for a in attn]
    kinds = ["full_attention" if w == max(widths) else "sliding_attention" for w in widths]
    head_dim, global_dim = min(widths), max(widths)
    shared = layers - sum(1 for a in attn if a + "k_proj.weight" in state)
    sliding = attn[kinds.index("sliding_attention")] if "sliding_attention" in kinds else attn[0]
    full = attn[kinds.index("full_attention")]
    mlp = [int(state[f"model.layers.{i}.mlp.gate_proj.weight"].shape[0]) for i in (0, layers - 1)]
    per_layer = state.get("model.layers.0.per_layer_input_gate.weight")
    hidden = int(emb.shape[1])
    config = Gemma4TextConfig(
        vocab_size=int(emb.shape[0]), hidden_size=hidden, num_hidden_layers=layers, layer_types=kinds,
        intermediate_size=mlp[0], use_double_wide_mlp=mlp[1] == 2 * mlp[0],
        num_attention_heads=int(state[sliding + "q_proj.weight"].shape[0]) // widths[attn.index(sliding)],
        num_key_value_heads=int(state[sliding + "k_proj.weight"].shape[0]) // head_dim,
        num_global_key_value_heads=int(state[full + "k_proj.weight"].shape[0]) // global_dim,
        head_dim=head_dim, global_head_dim=global_dim, num_kv_shared_layers=shared,
        attention_k_eq_v=full + "v_proj.weight" not in state,
        hidden_size_per_layer_input=0 if per_layer is None else int(per_layer.shape[0]),
        vocab_size_per_layer_input=int(state.get("model.embed_tokens_per_layer.weight", emb).shape[0]),
        sliding_window=SLIDING.get(hidden, 512), final_logit_softcapping=SOFTCAP, rms_norm_eps=1e-6,
        tie_word_embeddings=True)
    return Built(lambda: Gemma4ForCausalLM(config), state, config.to_dict())
