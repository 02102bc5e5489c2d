"""NewBie-image as ComfyUI users hold it (Comfy-Org/NewBie-image-Exp0.1_repackaged): the transformer
(diffusion_models/NewBie-Image-Exp0.1-bf16.safetensors) in the released names under model.diffusion_model. or bare,
which nodes/generate/newbie_model.py keeps, so the tensors load as they are; Jina CLIP v2's text tower
(text_encoders/jina_clip_v2_bf16.safetensors, ComfyUI's names under model., its sentencepiece as spiece_model). Gemma 3
4B (gemma_3_4b_it_bf16) is LTX-2's Gemma 3 converter's (converters/ltx2.py): its sizes come from the file. Every size
comes from the tensors."""
from __future__ import annotations

from graph_engine import NodeError
from nodes.generate.converters import Built, count, register

PATCH = 2           # ComfyUI's for every Lumina 2 NextDiT (the file does not state it)


def transformer_config(state) -> dict:
    """NewBieTransformer's settings: widths and depths from the tensors, the heads from the per-head query norm, the
    rotary split the released model's 32/32/32 of its 96-wide heads, in thirds."""
    cap = state["cap_embedder.1.weight"]
    x = state["x_embedder.weight"]
    head = int(state["layers.0.attention.q_norm.weight"].shape[0])
    dim = int(cap.shape[0])
    qkv = int(state["layers.0.attention.qkv.weight"].shape[0]) // head
    if head % 6 or dim % head or int(x.shape[1]) % (PATCH * PATCH) or \
            int(state["final_layer.linear.weight"].shape[0]) != int(x.shape[1]):
        raise NodeError(f"this NewBie transformer's tensors do not fit together (heads {head} wide, width {dim}, "
                        f"{int(x.shape[1])} values per patch): the file is damaged or not NewBie's")
    heads = dim // head
    return dict(in_channels=int(x.shape[1]) // (PATCH * PATCH), patch_size=PATCH, dim=dim,
                n_layers=count(state, "layers.{}."), n_refiner_layers=count(state, "noise_refiner.{}."),
                n_heads=heads, n_kv_heads=(qkv - heads) // 2,
                ffn_hidden=int(state["layers.0.feed_forward.w1.weight"].shape[0]),
                cap_feat_dim=int(cap.shape[1]), clip_text_dim=int(state["clip_text_pooled_proj.1.weight"].shape[0]),
                axes_dims=[head // 3] * 3)


@register("newbie", "diffusion_model")
def transformer(state, det) -> Built:
    from nodes.generate.newbie_model import NewBieTransformer
    cfg = transformer_config(state)
    return Built(lambda: NewBieTransformer.from_config(cfg), dict(state), cfg)


@register("jina_clip2", "text_encoder")
def jina_clip2(state, det) -> Built:
    from nodes.generate.jina_clip2 import HEAD, JinaClip2Text
    tensors = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    emb = tensors["embeddings.word_embeddings.weight"]
    if int(emb.shape[1]) % HEAD:
        raise NodeError(f"this Jina CLIP v2 text tower is {int(emb.shape[1])} wide, not a whole number of its "
                        f"{HEAD}-wide heads: the file is damaged or not Jina CLIP v2's")
    cfg = dict(vocab_size=int(emb.shape[0]), hidden_size=int(emb.shape[1]),
               intermediate_size=int(tensors["encoder.layers.0.mlp.fc1.weight"].shape[0]),
               num_hidden_layers=count(tensors, "encoder.layers.{}."))
    return Built(lambda: JinaClip2Text.from_config(cfg), tensors, cfg)
