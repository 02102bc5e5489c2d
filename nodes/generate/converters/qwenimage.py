"""Qwen-Image single files as ComfyUI users hold them:
  diffusion_models/qwen_image_fp8_e4m3fn.safetensors, qwen_image_bf16.safetensors: the transformer in diffusers'
      own names (diffusers' single-file loader maps them one to one); Qwen-Image-Edit's (qwen_image_edit_*) the same
      tensors, Edit-2511's with an empty __index_timestep_zero__ marker (its pictures read at timestep zero)
  text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors (or _bf16): Qwen2.5-VL in transformers 4's names
      (model.layers.*, model.embed_tokens, model.norm, the vision tower as visual.*, lm_head)
  vae/qwen_image_vae.safetensors: the Wan 2.1 VAE's network and names, Qwen-Image's own weights
The text encoder is built as Qwen2.5-VL without its head: the language model, whose last hidden states are the
prompt's embeddings, and the vision tower where the file holds one, through which Qwen-Image-Edit's text encoder sees
the pictures to edit."""
from __future__ import annotations

from collections.abc import Mapping

from nodes.generate.converters import Built, count, decoder_sizes, model_config, register

FAMILY = "qwenimage"
TIMESTEP_ZERO_MARKER = "__index_timestep_zero__"      # ComfyUI's Edit-2511 files (its model's buffer)
LAYERED_MARKER = "time_text_embed.addition_t_embedding.weight"    # Qwen-Image-Layered's alone


@register("qwenimage", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import QwenImageTransformer2DModel
    from graph_engine import NodeError
    from nodes.generate.converters.flux import rope_axes
    if det.variant:
        raise NodeError(f"this Qwen-Image transformer takes {det.extra.get('in_channels')} input channels; Kinograph "
                        "runs Qwen-Image text-to-image (64: 16 latent channels in 2x2 patches)")
    cfg = model_config(FAMILY, "transformer")
    state = dict(state)
    if state.pop(TIMESTEP_ZERO_MARKER, None) is not None:
        cfg["zero_cond_t"] = True
    if LAYERED_MARKER in state:         # Qwen-Image-Layered: its RGB/RGBA flag's embedding, its layers' positions
        cfg.update(use_additional_t_cond=True, use_layer3d_rope=True)
    w = state["img_in.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    cfg.update(in_channels=int(w.shape[1]), num_attention_heads=int(w.shape[0]) // head, attention_head_dim=head,
               out_channels=int(state["proj_out.weight"].shape[0]) // cfg["patch_size"] ** 2,
               num_layers=count(state, "transformer_blocks.{}."), joint_attention_dim=int(state["txt_in.weight"].shape[1]),
               axes_dims_rope=rope_axes(head, FAMILY))
    return Built(lambda: QwenImageTransformer2DModel.from_config(cfg), state, cfg)


@register("qwenimage", "vae")
def vae(state, det) -> Built:
    """qwen_image_vae.safetensors: converted as the Wan 2.1 VAE it is, built as diffusers' AutoencoderKLQwenImage;
    Qwen-Image-Layered's qwen_image_layered_vae reads and writes RGBA (its first convolution 4 channels wide)."""
    import inspect
    from diffusers import AutoencoderKLQwenImage
    from nodes.generate.converters.wan import vae as wan_vae
    wan = wan_vae(state, det)
    takes = set(inspect.signature(AutoencoderKLQwenImage.__init__).parameters)
    cfg = {k: v for k, v in wan.config.items() if k in takes}
    cfg["input_channels"] = int(wan.state_dict["encoder.conv_in.weight"].shape[1])
    return Built(lambda: AutoencoderKLQwenImage.from_config(cfg), wan.state_dict, cfg)


def language_model(state: Mapping) -> dict:
    """The language model's tensors without their prefix, from transformers 4's names (model.layers.*) or 5's
    (model.language_model.layers.*); the vision tower and the head left out."""
    out = {}
    for k, v in state.items():
        for p in ("model.language_model.", "language_model.", "model."):
            if k.startswith(p):
                k = k[len(p):]
                break
        if k.startswith(("embed_tokens.", "layers.", "norm.")):
            out[k] = v
    return out


def vision_tower(state: Mapping) -> dict:
    """The vision tower's tensors without their prefix (visual.* in transformers 4's names, model.visual.* in 5's)."""
    out = {}
    for k, v in state.items():
        for p in ("model.visual.", "visual."):
            if k.startswith(p):
                out[k[len(p):]] = v
                break
    return out


# Qwen3-VL's and Qwen3.5's released vision towers' heads by width, which no tensor shows (the attention is one fused
# qkv without per-head norms): ComfyUI's QWEN3VL_VISION_COMMON gives every Qwen3-VL size 16 heads (2B/4B 1024 wide:
# 64 each; 8B/32B 1152: 72 each), its QWEN35_VISION_DEFAULTS 16 and 12 for the 768-wide tower.
QWEN3_VISION_HEADS = {768: 12, 1024: 16, 1152: 16}


def qwen3_vision_heads(width: int) -> int:
    """A Qwen3-VL / Qwen3.5 vision tower's heads: the released ones by width, 64 wide for any other width."""
    return QWEN3_VISION_HEADS.get(width, max(1, width // 64))


def vision_sizes(state: Mapping) -> dict:
    """The vision tower's sizes from its tensors; its heads are the released 7B's, 80 wide."""
    width = int(state["patch_embed.proj.weight"].shape[0])
    return dict(depth=count(state, "blocks.{}."), hidden_size=width, num_heads=max(1, width // 80),
                intermediate_size=int(state["blocks.0.mlp.gate_proj.weight"].shape[0]),
                out_hidden_size=int(state["merger.mlp.2.weight"].shape[0]))


@register("qwen25vl", "text_encoder")
def qwen25vl(state, det) -> Built:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel, Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel
    vision = vision_tower(state)
    state = language_model(state)
    cfg = model_config(FAMILY, "text_encoder")
    # the released 7B's 128-wide heads, which its rotary sections fit
    cfg.update(decoder_sizes(state, int(cfg["hidden_size"]) // int(cfg["num_attention_heads"])))
    if not vision:
        config = Qwen2_5_VLTextConfig(**cfg)
        return Built(lambda: Qwen2_5_VLTextModel(config), state, cfg)
    # the vision token ids are the tokenizer's (split.load_text_encoder sets them once it has found it)
    # a GGUF's projector file states the tower's heads and window layout (gguf_mmproj); elsewhere the 7B's
    full = Qwen2_5_VLConfig(text_config=cfg, vision_config={**vision_sizes(vision),
                                                            **det.extra.get("vision_config", {})})
    tensors = {**{"language_model." + k: v for k, v in state.items()}, **{"visual." + k: v for k, v in vision.items()}}
    return Built(lambda: Qwen2_5_VLModel(full), tensors, full.to_dict())


VISION_TOKENS = {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
                 "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}


def link_vision_tokens(text_encoder, tokenizer) -> None:
    """Tell a Qwen2.5-VL built from a file the ids its tokenizer gives the vision tokens (the file holds none):
    the model finds where a picture's tokens go, and their rotary positions, by them. (Qwen3-VL holds its vision
    tower under .model only.)"""
    if not (hasattr(text_encoder, "visual") or hasattr(getattr(text_encoder, "model", None), "visual")):
        return
    vocab = tokenizer.get_vocab()
    for attr, token in VISION_TOKENS.items():
        if token in vocab:
            setattr(text_encoder.config, attr, vocab[token])
