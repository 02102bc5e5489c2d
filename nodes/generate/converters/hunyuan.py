"""HunyuanVideo single files as ComfyUI users hold them:
  diffusion_models/hunyuan_video_t2v_720p_bf16.safetensors  (Tencent's names: double_blocks, txt_in, ...)
  diffusion_models/hunyuan_video_image_to_video_720p_bf16.safetensors  (the same names, 33 input channels:
      noise, the image latent and a mask, diffusers' image_condition_type "latent_concat")
  diffusion_models/hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors  (16 channels, the
      text-to-video layout: its "token_replace" conditioning is chosen per run, see adapters/hunyuan.py)
  clip_vision/llava_llama3_vision.safetensors  (CLIP ViT-L/336 + llava's projector, converters/text.py)
  vae/hunyuan_video_vae_bf16.safetensors                    (ComfyUI's names: encoder.down.N.block.M, ...)
The transformer goes through diffusers' own converter, after splitting the single blocks' fused
linear1 here: diffusers splits it at the released model's width (3072) whatever the file's width.
diffusers has no converter for the VAE; the one here maps ComfyUI's (LDM-style, 3-D convolution)
names onto AutoencoderKLHunyuanVideo. A VAE already in Tencent's own names (which are diffusers')
passes through unchanged."""
from __future__ import annotations

from collections.abc import Mapping

from nodes.generate.converters import Built, count, decoder_sizes, model_config, register, split_single_block

FAMILY = "hunyuan"
HEAD_DIM = 128                      # every released HunyuanVideo transformer


def variant(state: Mapping) -> str:
    """t2v (input channels = latent channels), "i2v": the image-to-video model that concatenates the image
    latent and a mask (2 x latent + 1), or "in<N>" for any other input width (e.g. SkyReels' 2 x latent)."""
    w = state.get("img_in.proj.weight", state.get("x_embedder.proj.weight"))
    out = state.get("final_layer.linear.weight", state.get("proj_out.weight"))
    if w is None or out is None or w.ndim != 5:
        return "t2v"
    latent = int(out.shape[0]) // (int(w.shape[2]) * int(w.shape[3]) * int(w.shape[4]))
    return {latent: "t2v", 2 * latent + 1: "i2v"}.get(int(w.shape[1]), f"in{int(w.shape[1])}")


def transformer_to_diffusers(state: Mapping) -> dict:
    from diffusers.loaders.single_file_utils import (
        convert_hunyuan_video_transformer_to_diffusers,
    )
    if "x_embedder.proj.weight" in state:          # already diffusers names
        return dict(state)
    hidden = int(state["img_in.proj.weight"].shape[0])
    out = {}
    for k, v in state.items():
        parts = split_single_block(k, v, hidden)
        out.update({k: v} if parts is None else parts)
    return convert_hunyuan_video_transformer_to_diffusers(out)


def vae_to_diffusers(state: Mapping) -> dict:
    """ComfyUI's Hunyuan VAE names -> AutoencoderKLHunyuanVideo's (identity for Tencent/diffusers names)."""
    from nodes.generate.converters.ldm import vae_to_diffusers as ldm_vae
    if not any(k.startswith(("encoder.down.", "decoder.up.")) for k in state):
        return dict(state)
    return ldm_vae(state)


def transformer_config(state: Mapping, kind: str = "t2v") -> dict:
    cfg = model_config(FAMILY, f"transformer_{kind}")
    w = state["x_embedder.proj.weight"]
    inner = int(w.shape[0])
    cfg.update(in_channels=int(w.shape[1]), out_channels=int(state["proj_out.weight"].shape[0]) //
               (cfg["patch_size"] ** 2 * cfg["patch_size_t"]),
               num_attention_heads=inner // HEAD_DIM, attention_head_dim=HEAD_DIM,
               num_layers=count(state, "transformer_blocks.{}."),
               num_single_layers=count(state, "single_transformer_blocks.{}."),
               num_refiner_layers=count(state, "context_embedder.token_refiner.refiner_blocks.{}."),
               mlp_ratio=state["transformer_blocks.0.ff.net.0.proj.weight"].shape[0] / inner,
               guidance_embeds="time_text_embed.guidance_embedder.linear_1.weight" in state,
               text_embed_dim=int(state["context_embedder.proj_in.weight"].shape[1]),
               pooled_projection_dim=int(state["time_text_embed.text_embedder.linear_1.weight"].shape[1]))
    return cfg


def vae_config(state: Mapping) -> dict:
    cfg = model_config(FAMILY, "vae")
    downs = count(state, "encoder.down_blocks.{}.")
    boc = [int(state[f"encoder.down_blocks.{i}.resnets.0.conv1.conv.weight"].shape[0]) for i in range(downs)]
    cfg.update(block_out_channels=boc, latent_channels=int(state["decoder.conv_in.conv.weight"].shape[1]),
               layers_per_block=count(state, "encoder.down_blocks.0.resnets.{}."))
    return cfg


@register("hunyuan", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import HunyuanVideoTransformer3DModel
    kind = variant(state)
    if kind not in ("t2v", "i2v"):
        from graph_engine import NodeError
        w = state.get("img_in.proj.weight", state.get("x_embedder.proj.weight"))
        raise NodeError(f"this HunyuanVideo transformer takes {int(w.shape[1])} input channels: Kinograph runs the "
                        "text-to-video model (16), the v2 \"replace\" image-to-video model (16) and the v1 "
                        "\"concat\" image-to-video model (33), not this variant (SkyReels' image-to-video has 32)")
    conv = transformer_to_diffusers(state)
    cfg = transformer_config(conv, kind)
    return Built(lambda: HunyuanVideoTransformer3DModel.from_config(cfg), conv, cfg)


@register("hunyuan", "vae")
def vae(state, det) -> Built:
    from diffusers import AutoencoderKLHunyuanVideo
    conv = vae_to_diffusers(state)
    cfg = vae_config(conv)
    return Built(lambda: AutoencoderKLHunyuanVideo.from_config(cfg), conv, cfg)


@register("llama", "text_encoder")
def llama(state, det) -> Built:
    """llava-llama-3's language model as ComfyUI keeps it (text_encoders/llava_llama3_fp8_scaled.safetensors:
    LlamaForCausalLM names under `model.`): HunyuanVideo reads its hidden states, so the head is dropped."""
    from transformers import LlamaConfig, LlamaModel
    state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()
             if not k.startswith("lm_head.")}
    cfg = model_config("llama", "text_encoder")
    cfg.update(decoder_sizes(state, cfg["head_dim"]))
    config = LlamaConfig(**cfg)
    return Built(lambda: LlamaModel(config), state, cfg)
