"""MiniMax H3's files (ComfyUI's video_minimax_h3_* templates) are named for what they are: the transformer (pruned
or not), the video VAE and the audio VAE load (tests/test_minimax_h3.py and test_minimax_h3_video.py sample and
decode with them).

Before, each was "unknown ... no known key pattern". The ComfyUI names below are the parameters of the published
modules (Comfy-Org/ComfyUI comfy/ldm/minimax: model.py MiniMaxH3Model, vae.py MiniMaxH3VideoVAE, audio_vae.py
MiniMaxH3AudioVAE), written out here; diffusers' names come from its own modules, built tiny."""
from __future__ import annotations

import torch
from safetensors.torch import save_file

from nodes.generate.model_manager import describe_model

# MiniMaxH3Model: patch projections, the text's token refiner, DiT blocks (fused qkv, per-head RMSNorm, SwiGLU MLP,
# a 6 x 3-modality adaLN projection), the final layer's video and audio heads; the pruned release swaps the time
# embedder for adaln_t_table
H3_BLOCK = ["norm1.weight", "norm2.weight", "attn.qkv_proj.weight", "attn.q_norm.weight", "attn.k_norm.weight",
            "attn.out_proj.weight", "mlp.fc1.weight", "mlp.fc2.weight"]
H3 = (["video_patch_proj.weight", "video_patch_proj.bias", "audio_patch_proj.weight", "audio_patch_proj.bias",
       "condition_proj.weight", "condition_proj.bias", "rope.inv_freq", "token_refiner.final_norm.weight",
       "final_layer.norm.weight", "final_layer.adaln_proj.linear.weight", "final_layer.adaln_proj.linear.bias",
       "final_layer.video_out.weight", "final_layer.video_out.bias", "final_layer.audio_out.weight",
       "final_layer.audio_out.bias", "blocks.0.adaln_proj.linear.weight", "blocks.0.adaln_proj.linear.bias"]
      + ["token_refiner.blocks.0." + k for k in H3_BLOCK] + ["blocks.0." + k for k in H3_BLOCK])
TIME_EMBEDDER = ["time_embedder.proj_in.weight", "time_embedder.proj_in.bias", "time_embedder.proj_out.weight",
                 "time_embedder.proj_out.bias"]
# MiniMaxH3VideoVAE: causal 3-D CNN encoder, quant convs, ViT3D decoder with register tokens, latent statistics
H3_VAE = ["encoder.conv_in.weight", "encoder.down.0.block.0.norm1.weight", "encoder.down.0.block.0.conv1.weight",
          "encoder.norm_out.weight", "encoder.conv_out.weight", "quant_conv.weight", "post_quant_conv.weight",
          "decoder.x_embedder.weight", "decoder.register_tokens", "decoder.mask_token",
          "decoder.transformer_blocks.0.attn.to_qkv.weight", "decoder.transformer_blocks.0.scale1",
          "decoder.norm_out.weight", "decoder.proj_out.weight", "latents_mean", "latents_std"]
# MiniMaxH3AudioVAE: DAC encoder, attention projection (pre_block), mean / logs heads, BigVGAN decoder
H3_AUDIO_VAE = ["encoder.block.0.weight", "pre_block.norm1.weight", "pre_block.attn.qkv.weight",
                "pre_block.attn.q_bias", "pre_block.attn.v_bias", "pre_block.attn.zero_k_bias", "pre_block.proj.weight",
                "mean_proj.weight", "logs_proj.weight", "dec_in_proj.weight", "decoder.conv_pre.weight",
                "decoder.ups.0.0.weight", "decoder.conv_post.weight", "latents_mean", "latents_std"]


def _file(tmp_path, name, keys, prefix=""):
    path = tmp_path / name
    save_file({prefix + k: torch.zeros(2, 2, dtype=torch.bfloat16) for k in keys}, str(path))
    return path


def _loads(d, role="diffusion_model"):
    assert (d["family"], d["role"], d["loads"]) == ("minimax_h3", role, "yes"), d


def test_comfyui_transformer_is_named(tmp_path):
    for name, keys, prefix in (("minimax_h3_fl2va_pruned_int8_convrot.safetensors", H3 + ["adaln_t_table"], ""),
                               ("minimax_h3_fl2va_bf16.safetensors", H3 + TIME_EMBEDDER, "model.diffusion_model.")):
        _loads(describe_model(_file(tmp_path, name, keys, prefix)))


def test_comfyui_vaes_are_named(tmp_path):
    _loads(describe_model(_file(tmp_path, "minimax_h3_video_vae_fp16.safetensors", H3_VAE)), "vae")
    audio = describe_model(_file(tmp_path, "minimax_h3_audio_vae_fp32.safetensors", H3_AUDIO_VAE))
    _loads(audio, "vae")
    assert audio["variant"] == "audio", audio


def test_diffusers_modules_are_named(tmp_path):
    from diffusers import AutoencoderKLMiniMaxH3, AutoencoderKLMiniMaxH3Audio, MiniMaxH3Transformer3DModel
    transformer = MiniMaxH3Transformer3DModel(num_attention_heads=2, attention_head_dim=8, hidden_size=16,
                                              num_layers=1, num_refiner_layers=1, ffn_dim=16, text_dim=8,
                                              time_embed_hidden_dim=16, time_embed_dim=8, rope_freq_dim=2)
    vae = AutoencoderKLMiniMaxH3(block_out_channels=(32,) * 6, layers_per_block=1, decoder_num_layers=1,
                                 decoder_num_attention_heads=2, decoder_attention_head_dim=16)
    audio = AutoencoderKLMiniMaxH3Audio(encoder_dim=2, encoder_rates=(2,), latent_dim=16, latent_channels=4,
                                        num_attention_heads=2, decoder_dim=8, decoder_rates=(2,),
                                        decoder_kernel_sizes=(4,), resblock_kernel_sizes=(3,),
                                        resblock_dilation_sizes=((1,),))
    paths = {}
    for module in (transformer, vae, audio):
        paths[module] = tmp_path / f"{type(module).__name__}.safetensors"
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(paths[module]))
    _loads(describe_model(paths[transformer]))
    _loads(describe_model(paths[vae]), "vae")
    _loads(describe_model(paths[audio]), "vae")
