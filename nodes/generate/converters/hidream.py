"""HiDream-I1 single files as ComfyUI users hold them (Comfy-Org/HiDream-I1_ComfyUI's split_files):
  diffusion_models/hidream_i1_{full,dev,fast}_*.safetensors: the sparse (mixture-of-experts) DiT in HiDream's own names,
      which are diffusers' (its single-file converter only strips ComfyUI's model.diffusion_model. prefix)
  text_encoders/clip_l_hidream, clip_g_hidream (long CLIPs), t5xxl, llama_3.1_8b_instruct: the converters SD3's and
      HunyuanVideo's encoders use (converters/sd3.py, converters/hunyuan.py)
  vae/ae.safetensors: FLUX.1's VAE (converters/flux.py)"""
from __future__ import annotations

from nodes.generate.converters import Built, converted, count, model_config, register


def transformer_config(state) -> dict:
    """HiDreamImageTransformer2DModel's settings from its tensors; the head width, active experts and which Llama layer
    each block reads are the released model's (every release shares them), the rotary split 64/32/32 of a 128 head."""
    cfg = model_config("hidream", "transformer")
    x = state["x_embedder.proj.weight"]
    inner, patch = int(x.shape[0]), int(cfg["patch_size"])
    head = int(cfg["attention_head_dim"])
    blocks = count(state, "double_stream_blocks.{}.") + count(state, "single_stream_blocks.{}.")
    last = cfg["llama_layers"][-1]
    cfg.update(in_channels=int(x.shape[1]) // patch ** 2, out_channels=int(state["final_layer.linear.weight"].shape[0])
               // patch ** 2, num_layers=count(state, "double_stream_blocks.{}."),
               num_single_layers=count(state, "single_stream_blocks.{}."), num_attention_heads=inner // head,
               caption_channels=[int(state[f"caption_projection.{i}.linear.weight"].shape[1]) for i in (blocks, 0)],
               text_emb_dim=int(state["p_embedder.pooled_embedder.linear_1.weight"].shape[1]),
               num_routed_experts=count(state, "double_stream_blocks.0.block.ff_i.experts.{}."),
               llama_layers=[min(i, last) for i in range(blocks)])
    return cfg


@register("hidream", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import HiDreamImageTransformer2DModel
    from diffusers.loaders.single_file_utils import convert_hidream_transformer_to_diffusers
    return converted(state, "x_embedder.proj.weight", convert_hidream_transformer_to_diffusers, HiDreamImageTransformer2DModel,
                     transformer_config)
