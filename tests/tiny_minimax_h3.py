"""A tiny random-weight MiniMax H3 transformer in the layout ComfyUI users hold it (Comfy-Org/MiniMax-H3's
diffusion_models/minimax_h3_fl2va_bf16.safetensors): MiniMax's own module names, written here from diffusers'
MiniMaxH3Transformer3DModel by inverting diffusers' single-file converter by hand (fused qkv_proj in [q; k; v] rows,
mlp.fc1 as [gate; value] where diffusers' SwiGLU holds [value; gate], the rope.inv_freq buffer ComfyUI reads), so the
reference does not go through Kinograph's loading code:

  root/models/diffusion_models/minimax_h3_tiny.safetensors   MiniMax's names, bf16
  root/models/diffusion_models/minimax_h3_pruned_tiny.safetensors  the same weights as the pruned release holds them:
                                                             no time embedder, a curve table adaln_t_table (9 rows)
  root/models/diffusion_models/minimax_h3_fasth3_tiny.safetensors  the pruned file with FastH3's VSA gates
                                                             (blocks.N.attn.to_gate_compress)
  root/models/vae/minimax_h3_video_vae_tiny.safetensors      ComfyUI's names (x_embedder, to_qkv head by head, ff.w1,
                                                             latents_mean / latents_std buffers), fp16
  root/models/vae/minimax_h3_audio_vae_tiny.safetensors      ComfyUI's names (weight norms folded), fp32 as released
  root/models/text_encoders/qwen3vl_minimax_tiny.safetensors Qwen3-VL in ComfyUI's names (model.layers.*, visual.*;
                                                             tests/tiny_qwen21.py's), 51 layers (MiniMax H3 reads the
                                                             state after layer 50, and refuses an encoder without
                                                             more), its tokenizer in a folder after it

Widths are tiny, the structure is the released model's: 24 latent channels in 1x2x2 patches, 32 audio channels, a
token refiner, 16-wide heads of which 2 x 3 x 2 channels turn with the (time, height, width) rotary axes, a rotary
base of 500 (not diffusers' default 10000, so a loader that ignores the file's inv_freq is seen)."""
from __future__ import annotations

import re
from functools import reduce
from pathlib import Path

import torch

from tiny_models import _seed

TEXT = 40                   # Qwen3-VL's hidden width here (the released 32B's is 5120)
ROPE_THETA = 500.0


def bf16_weights(model):
    """The model with bf16 values in its weights (as the bf16 files users hold) and its computed buffers (the rotary
    frequencies) left float32, as a module.bfloat16() would not leave them."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.bfloat16().float())
    return model.eval()


def transformer():
    from diffusers import MiniMaxH3Transformer3DModel
    _seed(5)
    model = MiniMaxH3Transformer3DModel(num_attention_heads=2, attention_head_dim=16, hidden_size=24, num_layers=2,
                                        num_refiner_layers=1, ffn_dim=40, text_dim=TEXT, freq_dim=32,
                                        time_embed_hidden_dim=24, time_embed_dim=16, rope_freq_dim=2,
                                        rope_theta=ROPE_THETA)
    return bf16_weights(model)


RENAMES = [("token_refiner.refiner_blocks.", "token_refiner.blocks."), ("time_embedder.linear_1.", "time_embedder.proj_in."),
           ("time_embedder.linear_2.", "time_embedder.proj_out."), ("audio_proj_in.", "audio_patch_proj."),
           ("context_embedder.", "condition_proj."), ("norm_out.norm.", "final_layer.norm."),
           ("norm_out.linear.", "final_layer.adaln_proj.linear."), ("audio_proj_out.", "final_layer.audio_out."),
           (".attn.norm_q.", ".attn.q_norm."), (".attn.norm_k.", ".attn.k_norm."), (".attn.to_out.0.", ".attn.out_proj."),
           (".ff.net.0.proj.", ".mlp.fc1."), (".ff.net.2.", ".mlp.fc2.")]


def comfy_transformer(model) -> dict:
    sd = model.state_dict()
    out = {"rope.inv_freq": model.rope.inv_freq.clone()}
    for k, v in sd.items():
        if re.search(r"\.attn\.(to_k|to_v)\.weight$", k):
            continue
        m = re.match(r"^(.*)\.attn\.to_q\.weight$", k)
        if m:
            k, v = f"{m.group(1)}.attn.qkv_proj.weight", torch.cat([sd[f"{m.group(1)}.attn.{p}.weight"]
                                                                    for p in ("to_q", "to_k", "to_v")])
        if k.endswith(".ff.net.0.proj.weight"):
            value, gate = v.chunk(2)
            v = torch.cat([gate, value])
        k = re.sub(r"^transformer_blocks\.", "blocks.", k)
        k = re.sub(r"^proj_in\.", "video_patch_proj.", k)
        k = re.sub(r"^proj_out\.", "final_layer.video_out.", k)
        for a, b in RENAMES:
            k = k.replace(a, b)
        out[k] = v
    return out


def text_encoder():
    """Qwen3-VL (tests/tiny_qwen21.py's vision tower and vocabulary) as wide as the tiny transformer reads, 51 layers:
    the fewest with a state after layer 50 that the final norm has not touched."""
    from transformers import Qwen3VLForConditionalGeneration
    from tiny_qwen21 import text_encoder as qwen21
    cfg = qwen21().config
    cfg.text_config.update(dict(hidden_size=TEXT, num_hidden_layers=51))
    cfg.vision_config.update(dict(out_hidden_size=TEXT))
    _seed(6)
    return bf16_weights(Qwen3VLForConditionalGeneration(cfg))


def vae():
    """The video VAE: six encoder levels (the released strides), two 64-wide decoder heads (the released head width;
    two, so the head-by-head fused qkv is seen), latent statistics that are not 0 / 1, so a loader that drops the
    file's is seen."""
    from diffusers import AutoencoderKLMiniMaxH3
    _seed(7)
    g = torch.Generator().manual_seed(8)
    return bf16_weights(AutoencoderKLMiniMaxH3(
        block_out_channels=(32,) * 6, layers_per_block=1, decoder_num_layers=1, decoder_num_attention_heads=2,
        decoder_attention_head_dim=64, latents_mean=(torch.randn(24, generator=g) * 0.5).tolist(),
        latents_std=(torch.rand(24, generator=g) + 0.5).tolist()))


VAE_RENAMES = [("encoder.down_blocks.", "encoder.down."), (".resnets.", ".block."), (".conv_shortcut.", ".nin_shortcut."),
               (".downsamplers.0.conv.", ".downsample.conv."), ("decoder.proj_in.", "decoder.x_embedder."),
               (".attn.to_out.0.", ".attn.to_out."), (".ff.net.2.", ".ff.w2.")]


def comfy_vae(model) -> dict:
    """AutoencoderKLMiniMaxH3 -> ComfyUI's MiniMaxH3VideoVAE names (comfy/ldm/minimax/vae.py): the decoder's q, k, v
    fused into to_qkv head by head ([head 0: q k v, ...]), ff.net.0.proj's [value; gate] as w1's [gate; value],
    the latent statistics as buffers, the unused mask_token."""
    sd, out, head = model.state_dict(), {}, model.config.decoder_attention_head_dim
    for k, v in sd.items():
        if ".attn.to_k." in k or ".attn.to_v." in k:
            continue
        if ".attn.to_q." in k:
            parts = [sd[k.replace("to_q", p)] for p in ("to_q", "to_k", "to_v")]
            heads = v.shape[0] // head
            k, v = k.replace("to_q", "to_qkv"), torch.stack(
                [p.reshape(heads, head, *v.shape[1:]) for p in parts], 1).reshape(3 * v.shape[0], *v.shape[1:])
        if ".ff.net.0.proj." in k:
            k, v = k.replace(".ff.net.0.proj.", ".ff.w1."), torch.cat(v.chunk(2)[::-1])
        out[reduce(lambda name, rename: name.replace(*rename), VAE_RENAMES, k)] = v
    dim = sd["decoder.proj_in.weight"].shape[0]
    out.update({"decoder.mask_token": torch.zeros(1, 1, dim), "latents_mean": torch.tensor(model.config.latents_mean),
                "latents_std": torch.tensor(model.config.latents_std)})
    return out


def audio_vae():
    """The stereo audio VAE: the released encoder strides and BigVGAN decoder (ComfyUI fixes its rates, kernels and
    residual blocks), 64 wide at the latent, 128 at the decoder's start; latent statistics that are not 0 / 1."""
    from diffusers import AutoencoderKLMiniMaxH3Audio
    _seed(9)
    g = torch.Generator().manual_seed(10)
    model = AutoencoderKLMiniMaxH3Audio(encoder_dim=2, latent_dim=64, latent_channels=32, decoder_dim=128,
                                        latents_mean=(torch.randn(32, generator=g) * 0.5).tolist(),
                                        latents_std=(torch.rand(32, generator=g) + 0.5).tolist())
    with torch.no_grad():       # SnakeBeta's log-scale parameters start at 0 (exp 1): spread them as trained ones are
        for name, p in model.named_parameters():
            if name.endswith((".alpha", ".beta")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def comfy_audio_vae() -> dict:
    """audio_vae() as ComfyUI's MiniMaxH3AudioVAE file (comfy/ldm/minimax/audio_vae.py): the same names with each
    weight norm folded into its plain weight, the latent statistics as buffers."""
    model = folded = audio_vae()
    for module in folded.modules():
        if hasattr(module, "weight_g"):
            torch.nn.utils.remove_weight_norm(module)
    out = {k: v.detach().clone() for k, v in folded.state_dict().items()}
    out.update(latents_mean=torch.tensor(model.config.latents_mean), latents_std=torch.tensor(model.config.latents_std))
    return out


def curve_table() -> torch.Tensor:
    """The pruned release's adaln_t_table for the tiny transformer: 9 rows of its 16-wide time embedding, in
    [-0.2, 1), where SiLU is invertible (the tests' reference feeds diffusers' transformer SiLU's inverse of it)."""
    return torch.rand(9, 16, generator=torch.Generator().manual_seed(4)) * 1.2 - 0.2


def build_minimax_h3(root: Path) -> Path:
    from safetensors.torch import save_file
    from tiny_qwen21 import comfy_text_encoder, processor
    models = root / "models"
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    te = text_encoder()
    te_file = models / "text_encoders" / "qwen3vl_minimax_tiny.safetensors"
    save_file({k: v.bfloat16().contiguous() for k, v in comfy_text_encoder(te.state_dict()).items()}, str(te_file))
    processor(te_file.with_suffix(""))         # writes its tokenizer there
    save_file({k: v.contiguous() if k.startswith("latents_") else v.half().contiguous()
               for k, v in comfy_vae(vae()).items()}, str(models / "vae" / "minimax_h3_video_vae_tiny.safetensors"))
    save_file({k: v.float().contiguous() for k, v in comfy_audio_vae().items()},
              str(models / "vae" / "minimax_h3_audio_vae_tiny.safetensors"))
    comfy = {k: v.contiguous() if k == "rope.inv_freq" else v.bfloat16().contiguous()
             for k, v in comfy_transformer(transformer()).items()}
    save_file(comfy, str(models / "diffusion_models" / "minimax_h3_tiny.safetensors"))
    pruned = {**{k: v for k, v in comfy.items() if not k.startswith("time_embedder.")}, "adaln_t_table": curve_table()}
    save_file(pruned, str(models / "diffusion_models" / "minimax_h3_pruned_tiny.safetensors"))
    # FastVideo's FastH3 (fastvideo_fasth3_*_pruned_*): the pruned file with VSA's coarse-attention gate in each block
    g = torch.Generator().manual_seed(11)
    gates = {f"blocks.{i}.attn.to_gate_compress.{p}": torch.randn(shape, generator=g).bfloat16()
             for i in range(2) for p, shape in (("weight", (32, 24)), ("bias", (32,)))}
    save_file({**pruned, **gates}, str(models / "diffusion_models" / "minimax_h3_fasth3_tiny.safetensors"))
    return root
