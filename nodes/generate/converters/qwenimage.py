"""Qwen-Image single files as ComfyUI users hold them:
  diffusion_models/qwen_image_fp8_e4m3fn.safetensors, qwen_image_bf16.safetensors: the transformer in diffusers'
      own names (diffusers' single-file loader maps them one to one)
  text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors (or _bf16): Qwen2.5-VL in transformers 4's names
      (model.layers.*, model.embed_tokens, model.norm, the vision tower as visual.*, lm_head)
  vae/qwen_image_vae.safetensors: the Wan 2.1 VAE's network and names, Qwen-Image's own weights
Text-to-image reads only the language model's last hidden states, so the text encoder is built as Qwen2.5-VL's
language model alone; the vision tower (Qwen-Image-Edit's) and the head are not loaded."""
from __future__ import annotations

from collections.abc import Mapping

from nodes.generate.converters import Built, count, decoder_sizes, model_config, register

FAMILY = "qwenimage"


def refuse_edit(path) -> None:
    """Qwen-Image-Edit's transformer has Qwen-Image's tensors (only the weights differ), so its file is told by its
    name (qwen_image_edit_fp8_e4m3fn, qwen_image_edit_2509_...): sampled as text-to-image it ignores what it was
    trained for, and its reference image needs Qwen2.5-VL's vision tower, which Kinograph does not run."""
    from pathlib import Path
    from graph_engine import NodeError
    if "edit" in Path(path).stem.lower():
        raise NodeError(f"{Path(path).name} is Qwen-Image-Edit (by its name), which edits a reference image read by "
                        "Qwen2.5-VL's vision tower; Kinograph runs Qwen-Image text-to-image "
                        "(qwen_image_fp8_e4m3fn.safetensors or qwen_image_bf16.safetensors), not the Edit models")


@register("qwenimage", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import QwenImageTransformer2DModel
    from graph_engine import NodeError
    from nodes.generate.converters.flux import rope_axes
    if det.variant:
        raise NodeError(f"this Qwen-Image transformer takes {det.extra.get('in_channels')} input channels; Kinograph "
                        "runs Qwen-Image text-to-image (64: 16 latent channels in 2x2 patches)")
    cfg = model_config(FAMILY, "transformer")
    w = state["img_in.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    cfg.update(in_channels=int(w.shape[1]), num_attention_heads=int(w.shape[0]) // head, attention_head_dim=head,
               out_channels=int(state["proj_out.weight"].shape[0]) // cfg["patch_size"] ** 2,
               num_layers=count(state, "transformer_blocks.{}."), joint_attention_dim=int(state["txt_in.weight"].shape[1]),
               axes_dims_rope=rope_axes(head, FAMILY))
    return Built(lambda: QwenImageTransformer2DModel.from_config(cfg), dict(state), cfg)


@register("qwenimage", "vae")
def vae(state, det) -> Built:
    """qwen_image_vae.safetensors: converted as the Wan 2.1 VAE it is, built as diffusers' AutoencoderKLQwenImage."""
    import inspect
    from diffusers import AutoencoderKLQwenImage
    from nodes.generate.converters.wan import vae as wan_vae
    wan = wan_vae(state, det)
    takes = set(inspect.signature(AutoencoderKLQwenImage.__init__).parameters)
    cfg = {k: v for k, v in wan.config.items() if k in takes}
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


@register("qwen25vl", "text_encoder")
def qwen25vl(state, det) -> Built:
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel
    state = language_model(state)
    cfg = model_config(FAMILY, "text_encoder")
    # the released 7B's 128-wide heads, which its rotary sections fit
    cfg.update(decoder_sizes(state, int(cfg["hidden_size"]) // int(cfg["num_attention_heads"])))
    config = Qwen2_5_VLTextConfig(**cfg)
    return Built(lambda: Qwen2_5_VLTextModel(config), state, cfg)
