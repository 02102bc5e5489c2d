"""FLUX.2 single files as ComfyUI users hold them (Comfy-Org/flux2-dev's split_files):
  diffusion_models/flux2_dev_fp8mixed.safetensors: the transformer in Black Forest Labs' names (double_blocks,
      single_blocks, shared double_stream_modulation_img/_txt and single_stream_modulation, img_in, txt_in, time_in,
      guidance_in, final_layer), through diffusers' own converter
  text_encoders/mistral_3_small_flux2_bf16.safetensors (or _fp8): Mistral Small 3's language model in transformers'
      names (model.layers.*, or model.language_model.* as Mistral3's checkpoints write them; a vision tower is left
      out: FLUX.2 reads the prompt's hidden states only); FLUX.2 [klein]'s qwen_3_4b / qwen_3_8b_fp8mixed: Qwen3's
  vae/flux2-vae.safetensors: the LDM autoencoder names with 32 latent channels, and the batch norm (bn.running_mean,
      bn.running_var) whose statistics normalise its latent in 2x2 patches; FLUX.2-small-decoder's
      full_encoder_small_decoder.safetensors (which ComfyUI's FLUX.2 templates load) the same with a narrower decoder"""
from __future__ import annotations

from nodes.generate.converters import Built, converted, count, decoder_sizes, model_config, register

FAMILY = "flux2"


def transformer_config(state) -> dict:
    """Flux2Transformer2DModel's settings from its (diffusers-named) tensors; the rotary split is the released
    model's four equal axes (time, row, column, layer)."""
    w = state["x_embedder.weight"]
    inner = int(w.shape[0])
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    return dict(patch_size=1, in_channels=int(w.shape[1]), out_channels=int(state["proj_out.weight"].shape[0]),
                num_layers=count(state, "transformer_blocks.{}."),
                num_single_layers=count(state, "single_transformer_blocks.{}."),
                attention_head_dim=head, num_attention_heads=inner // head,
                joint_attention_dim=int(state["context_embedder.weight"].shape[1]),
                timestep_guidance_channels=int(state["time_guidance_embed.timestep_embedder.linear_1.weight"].shape[1]),
                mlp_ratio=int(state["transformer_blocks.0.ff.linear_in.weight"].shape[0]) / 2 / inner,
                axes_dims_rope=[head // 4] * 4,
                guidance_embeds="time_guidance_embed.guidance_embedder.linear_1.weight" in state)


@register("flux2", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import Flux2Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers
    return converted(state, "x_embedder.weight", convert_flux2_transformer_checkpoint_to_diffusers,
                     Flux2Transformer2DModel, transformer_config)


@register("flux2", "vae")
def vae(state, det) -> Built:
    import torch
    from diffusers import AutoencoderKLFlux2
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    from graph_engine import NodeError
    if "encoder.down.0.block.0.conv1.weight" not in state:
        raise NodeError("a FLUX.2 VAE in diffusers layout loads from its diffusers folder (vae/ + config.json)")
    levels = len({k.split(".")[2] for k in state if k.startswith("encoder.down.")})
    widths = [int(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0]) for i in range(levels)]
    # FLUX.2-small-decoder's full_encoder_small_decoder.safetensors: the same encoder, a narrower decoder
    decoder = [int(state[f"decoder.up.{i}.block.0.conv2.weight"].shape[0]) for i in range(levels)]
    cfg = dict(block_out_channels=widths, decoder_block_out_channels=None if decoder == widths else decoder,
               latent_channels=int(state["decoder.conv_in.weight"].shape[1]),
               layers_per_block=len({k.split(".")[4] for k in state if k.startswith("encoder.down.0.block.")}),
               norm_num_groups=32, down_block_types=["DownEncoderBlock2D"] * levels,
               up_block_types=["UpDecoderBlock2D"] * levels,
               use_quant_conv="quant_conv.weight" in state, use_post_quant_conv="post_quant_conv.weight" in state)
    converted = convert_ldm_vae_checkpoint(state, cfg)
    converted.update({k: v for k, v in state.items() if k.startswith("bn.")})
    # a counter of training batches, which files may leave out; it plays no part in the normalisation
    converted.setdefault("bn.num_batches_tracked", torch.zeros((), dtype=torch.long))
    return Built(lambda: AutoencoderKLFlux2.from_config(cfg), converted, cfg)


@register("mistral3", "text_encoder")
def mistral(state, det) -> Built:
    from transformers import MistralConfig, MistralModel
    from nodes.generate.converters.qwenimage import language_model
    state = language_model(state)
    cfg = model_config(FAMILY, "text_encoder")
    cfg.update(decoder_sizes(state, int(cfg["head_dim"])))
    config = MistralConfig(**cfg)
    return Built(lambda: MistralModel(config), state, cfg)


@register("qwen3", "text_encoder")
def qwen3(state, det) -> Built:
    """Qwen3-4B / 8B (FLUX.2 [klein]'s encoders, qwen_3_4b.safetensors / qwen_3_8b_fp8mixed.safetensors): the language
    model alone, its sizes from the file."""
    from transformers import Qwen3Config, Qwen3Model
    from nodes.generate.converters.qwenimage import language_model
    state = language_model(state)
    cfg = model_config(FAMILY, "text_encoder_qwen3")
    cfg.update(decoder_sizes(state, int(cfg["head_dim"])))
    config = Qwen3Config(**cfg)
    return Built(lambda: Qwen3Model(config), state, cfg)
