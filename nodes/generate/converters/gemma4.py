"""Gemma 4's language model as ComfyUI users hold it (text_encoders/gemma4_e4b_it_*.safetensors, gemma4_e2b_*,
gemma4_31b_*: LTX-2.5's encoder and ComfyUI's text generation): transformers' names under model. (or
model.language_model.), its tokenizer's JSON inside the file as the uint8 tensor `tokenizer_json`, ComfyUI's vision
tower (vision_model.*, multi_modal_projector.*) and E2B's / E4B's audio tower (audio_model.*, audio_projector.*)
beside. Loaded as transformers' Gemma4ForConditionalGeneration where the file holds a tower (the towers under
transformers' names), else Gemma4ForCausalLM; the head is tied to the embeddings; the sizes come from the tensors,
the rest from the released configs."""
from __future__ import annotations

from nodes.generate.converters import Built, count, register

# What no tensor states, as the released models (and ComfyUI's Gemma4Config) set it: logits capped at 30, sliding
# attention over 512 tokens (1024 for the 31B, 5376 wide), rope as Gemma4TextConfig's defaults
SOFTCAP = 30.0
SLIDING = {5376: 1024}


# ComfyUI's module names for the towers -> transformers' (Gemma4Model's)
TOWERS = {"vision_model.": "model.vision_tower.", "multi_modal_projector.": "model.embed_vision.",
          "audio_model.": "model.audio_tower.", "audio_projector.": "model.embed_audio."}


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
    whole, state = state, language_model(state)
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
    towers = _towers(whole)
    if not towers:
        return Built(lambda: Gemma4ForCausalLM(config), state, config.to_dict())
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration
    both = Gemma4Config(text_config=config.to_dict(), vision_config=_vision_config(towers),
                        audio_config=_audio_config(towers), tie_word_embeddings=True)
    state = {"model.language_model." + k[len("model."):]: v for k, v in state.items()}
    return Built(lambda: Gemma4ForConditionalGeneration(both), {**state, **towers}, both.to_dict())


def _towers(state) -> dict:
    """The vision and audio towers' tensors in transformers' names (ComfyUI's taken over)."""
    out = {}
    for k, v in state.items():
        for comfy, ours in TOWERS.items():
            if k.startswith((comfy, ours)):
                out[ours + k.split(comfy if k.startswith(comfy) else ours, 1)[1]] = v
    return out


def _vision_config(t) -> dict:
    """The vision tower's sizes from its tensors (SigLIP-like layers with 2-D rope; ComfyUI pools 3x3 patches)."""
    v = "model.vision_tower."
    proj = t[v + "patch_embedder.input_proj.weight"]
    layer = v + "encoder.layers.0."
    head = int(t[layer + "self_attn.q_norm.weight"].shape[0])
    heads = int(t[layer + "self_attn.q_proj.linear.weight"].shape[0]) // head
    return dict(hidden_size=int(proj.shape[0]), patch_size=int(round((int(proj.shape[1]) // 3) ** 0.5)),
                num_hidden_layers=count(t, v + "encoder.layers.{}."), num_attention_heads=heads,
                num_key_value_heads=heads, head_dim=head,
                intermediate_size=int(t[layer + "mlp.gate_proj.linear.weight"].shape[0]),
                position_embedding_size=int(t[v + "patch_embedder.position_embedding_table"].shape[1]),
                pooling_kernel_size=3, use_clipped_linears=layer + "self_attn.q_proj.input_max" in t)


def _audio_config(t):
    """The audio tower's sizes from its tensors (a conformer over 128-bin log mel frames), None without one."""
    a = "model.audio_tower."
    if a + "output_proj.weight" not in t:
        return None
    layer = a + "layers.0."
    hidden = int(t[a + "subsample_conv_projection.input_proj_linear.weight"].shape[0])
    return dict(hidden_size=hidden, num_hidden_layers=count(t, a + "layers.{}."),
                num_attention_heads=hidden // int(t[layer + "self_attn.per_dim_scale"].shape[0]),
                output_proj_dims=int(t[a + "output_proj.weight"].shape[0]),
                conv_kernel_size=int(t[layer + "lconv1d.depthwise_conv1d.weight"].shape[-1]),
                subsampling_conv_channels=[int(t[a + f"subsample_conv_projection.layer{i}.conv.weight"].shape[0])
                                           for i in (0, 1)],
                use_clipped_linears=layer + "feed_forward1.ffw_layer_1.input_max" in t)
