"""FLUX.3 [klein]'s transformer as ComfyUI users hold it (black-forest-labs/flux-3-image-klein-comfy's
diffusion_models/flux3-image-klein[-base]-*.safetensors: bf16, fp8_scaled or int8_convrot): Black Forest Labs' names
(emb_in.image, txt_in, content_mode_blocks.image.N / txt_mode_blocks.N with q_proj and norm.query_norm, single_blocks,
early_ / single_stream_modulations.<mode>.lin, time_in, ref_time_in in the step-distilled file, final_layer.image)
under model.diffusion_model. or bare, through diffusers' own single-file converter; a file already in diffusers' names
loads as it is. Every size is read from the tensors. Its text encoder is Qwen3-VL-4B (converters/qwenimage21.py's
qwen3vl), its VAE FLUX.2's (converters/flux2.py)."""
from __future__ import annotations

from nodes.generate.converters import converted, count, register


def transformer_config(state) -> dict:
    """Flux3Transformer2DModel's settings from its (diffusers-named) tensors; the rotary split is the released model's
    four equal axes (time, row, column, layer). A flow map (the step-distilled file) embeds a second time."""
    w = state["x_embedders.image.weight"]
    inner = int(w.shape[0])
    head = int(state["txt_mode_blocks.0.attn.norm_q.weight"].shape[0])
    return dict(in_channels=int(w.shape[1]), cond_in_channels=int(state["x_embedders.image_cond.weight"].shape[1]),
                num_layers=count(state, "txt_mode_blocks.{}."),
                num_single_layers=count(state, "single_transformer_blocks.{}."),
                attention_head_dim=head, num_attention_heads=inner // head,
                joint_attention_dim=int(state["context_embedder.weight"].shape[1]),
                timestep_channels=int(state["timestep_embedder.linear_1.weight"].shape[1]),
                mlp_ratio=int(state["txt_mode_blocks.0.ff.linear_in.weight"].shape[0]) / 2 / inner,
                axes_dims_rope=[head // 4] * 4, flow_map="target_timestep_embedder.linear_1.weight" in state)


@register("flux3", "diffusion_model")
def transformer(state, det):
    from diffusers import Flux3Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux3_transformer_checkpoint_to_diffusers
    return converted(state, "x_embedders.image.weight", convert_flux3_transformer_checkpoint_to_diffusers,
                     Flux3Transformer2DModel, transformer_config)
