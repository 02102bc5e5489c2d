"""Text encoders and CLIP vision as ComfyUI keeps them in text_encoders/ and clip_vision/.

These files hold transformers' own key names (T5/UMT5 encoders, CLIP text and vision towers), so
only the config is chosen here: sizes from the tensors, the rest from the shipped config."""
from __future__ import annotations

from nodes.generate.converters import Built, count, model_config, register


def tower(state, prefix: str) -> dict:
    """One CLIP tower's tensors without its prefix (files have it, transformers 5 modules do not; the
    registry's build puts it back where a module wants it). Projections and logit scale are not read."""
    out = {}
    for k, v in state.items():
        k = k[len(prefix):] if k.startswith(prefix) else k
        if k.startswith(("embeddings.", "encoder.", "final_layer_norm.", "pre_layrnorm.", "post_layernorm.")):
            out[k] = v
    return out


def _t5(state, det, umt5: bool) -> Built:
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel
    state = {k: v for k, v in state.items() if k != "spiece_model"}
    rel = state["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    heads = int(rel.shape[1])
    q = state["encoder.block.0.layer.0.SelfAttention.q.weight"]
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in state
    wi = state["encoder.block.0.layer.1.DenseReluDense.wi_0.weight" if gated else
               "encoder.block.0.layer.1.DenseReluDense.wi.weight"]
    cfg = model_config("umt5" if umt5 else "t5", "encoder")
    cfg.update(vocab_size=int(state["shared.weight"].shape[0]), d_model=int(q.shape[1]), d_kv=int(q.shape[0]) // heads,
               num_heads=heads, d_ff=int(wi.shape[0]), num_layers=count(state, "encoder.block.{}."),
               relative_attention_num_buckets=int(rel.shape[0]),
               feed_forward_proj=cfg["feed_forward_proj"] if gated else "relu",
               dense_act_fn=cfg["dense_act_fn"] if gated else "relu")
    config = (UMT5Config if umt5 else T5Config)(**cfg)
    cls = UMT5EncoderModel if umt5 else T5EncoderModel
    return Built(lambda: cls(config), state, cfg)


@register("umt5", "text_encoder")
def umt5(state, det) -> Built:
    return _t5(state, det, True)


@register("t5", "text_encoder")
def t5(state, det) -> Built:
    return _t5(state, det, False)


def _clip_text(state, det) -> Built:
    from transformers import CLIPTextConfig, CLIPTextModel
    state = tower(state, "text_model.")
    tok = state["embeddings.token_embedding.weight"]
    hidden = int(tok.shape[1])
    cfg = model_config("clip_l", "text_encoder")
    cfg.update(vocab_size=int(tok.shape[0]), hidden_size=hidden,
               max_position_embeddings=int(state["embeddings.position_embedding.weight"].shape[0]),
               intermediate_size=int(state["encoder.layers.0.mlp.fc1.weight"].shape[0]),
               num_hidden_layers=count(state, "encoder.layers.{}."),
               num_attention_heads=max(1, hidden // 64))
    config = CLIPTextConfig(**cfg)
    return Built(lambda: CLIPTextModel(config), state, cfg)


for _name in ("clip_l", "clip_g", "clip"):
    register(_name, "text_encoder")(_clip_text)


def _vision_config(state, variant: str) -> dict:
    """CLIPVisionConfig values: sizes from the (prefix-free) tower tensors, the rest from the shipped config."""
    pe = state["embeddings.patch_embedding.weight"]
    hidden, patch = int(pe.shape[0]), int(pe.shape[2])
    positions = int(state["embeddings.position_embedding.weight"].shape[0])
    cfg = model_config("clip_vision", variant)
    cfg.update(hidden_size=hidden, patch_size=patch, image_size=int(round((positions - 1) ** 0.5)) * patch,
               intermediate_size=int(state["encoder.layers.0.mlp.fc1.weight"].shape[0]),
               num_hidden_layers=count(state, "encoder.layers.{}."))
    if hidden % cfg["num_attention_heads"]:
        cfg["num_attention_heads"] = max(1, hidden // 64)
    return cfg


@register("clip_vision", "clip_vision")
def clip_vision(state, det) -> Built:
    """The vision tower (CLIPVisionModel): Wan and SVD read its hidden states. With the file's visual_projection
    (CLIP-ViT-H-14-laion2B-s32B-b79K, the ViT-bigG one) it is kept (CLIPVisionModelWithProjection), as the plain
    IP-Adapter reads the projected embedding. A file that also holds llava's projector (HunyuanVideo i2v's
    llava_llama3_vision) builds the llava image side."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection
    if "multi_modal_projector.linear_1.weight" in state:
        return _llava_vision(state)
    if det.extra.get("siglip"):
        return _siglip_vision(tower(state, "vision_model."))
    projection = state.get("visual_projection.weight")
    state = tower(state, "vision_model.")
    cfg = _vision_config(state, det.variant if det.variant in ("vit-h", "vit-l") else "vit-h")
    if projection is None:
        config = CLIPVisionConfig(**cfg)
        return Built(lambda: CLIPVisionModel(config), state, cfg)
    cfg["projection_dim"] = int(projection.shape[0])
    config = CLIPVisionConfig(**cfg)
    state = {**{"vision_model." + k: v for k, v in state.items()}, "visual_projection.weight": projection}
    return Built(lambda: CLIPVisionModelWithProjection(config), state, cfg)


def _siglip_vision(state) -> Built:
    """SigLIP's vision tower (SiglipVisionModel; FLUX.1 Redux reads its last hidden states). Its heads are 72 wide
    (so400m: 1152 = 16 x 72), which the tensors do not show."""
    from transformers import SiglipVisionConfig, SiglipVisionModel
    from nodes.generate.detect import siglip_side
    pe = state["embeddings.patch_embedding.weight"]
    hidden, patch = int(pe.shape[0]), int(pe.shape[2])
    positions = int(state["embeddings.position_embedding.weight"].shape[0])
    cfg = dict(hidden_size=hidden, patch_size=patch, image_size=siglip_side(positions, patch),
               intermediate_size=int(state["encoder.layers.0.mlp.fc1.weight"].shape[0]),
               num_hidden_layers=count(state, "encoder.layers.{}."), num_attention_heads=max(1, hidden // 72),
               vision_use_head="head.probe" in state)
    config = SiglipVisionConfig(**cfg)
    return Built(lambda: SiglipVisionModel(config), {"vision_model." + k: v for k, v in state.items()}, cfg)


def _llava_vision(state) -> Built:
    from transformers import CLIPVisionConfig, LlavaConfig
    from nodes.generate.llava import LlavaVision
    proj = {k: v for k, v in state.items() if k.startswith("multi_modal_projector.")}
    vision = tower(state, "vision_model.")
    cfg = _vision_config(vision, "llava-vit-l-336")
    cfg["num_attention_heads"] = max(1, cfg["hidden_size"] // 64)     # ViT-L/14's heads are 64 wide
    settings = model_config("clip_vision", "llava")
    text = {"model_type": "llama", "hidden_size": int(proj["multi_modal_projector.linear_2.weight"].shape[0])}
    config = LlavaConfig(vision_config=CLIPVisionConfig(**cfg), text_config=text, **settings)
    state = {**{"vision_model." + k: v for k, v in vision.items()}, **proj}
    return Built(lambda: LlavaVision(config), state, {"vision_config": cfg, **settings})
