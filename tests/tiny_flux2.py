"""A tiny random-weight FLUX.2 dev in the files ComfyUI's users hold (Comfy-Org/flux2-dev's split_files):

  root/models/diffusion_models/flux2_dev_tiny_fp8mixed.safetensors
      the transformer in Black Forest Labs' names (what diffusers' convert_flux2_transformer_checkpoint_to_diffusers
      reads), stored as ComfyUI's fp8mixed: the double blocks' matrices in fp8 with a per-layer `weight_scale` and a
      `comfy_quant` description, the rest bf16
  root/models/text_encoders/mistral_3_small_flux2_tiny_bf16.safetensors
      Mistral Small 3's language model in transformers 4's names (model.layers.*, model.embed_tokens, model.norm),
      with Mistral's 131072-token vocabulary, 31 layers (FLUX.2 reads layers 10, 20 and 30) and 128-wide heads;
      its tokenizer (a byte-level one with a chat template) in a folder named after it
  root/models/vae/flux2-vae.safetensors   the LDM autoencoder names, 32 latent channels, and the batch norm's statistics
  root/models/vae/full_encoder_small_decoder.safetensors   the same encoder with a decoder of other widths (FLUX.2-small-
      decoder's, which ComfyUI's FLUX.2 templates load); root/small_decoder_vae the same in diffusers' layout

  root/models/loras/flux2_lora_tiny_comfyui.safetensors   a LoRA in ComfyUI's FLUX.2 layout, and the transformer with it
      merged in (diffusion_models/flux2_dev_tiny_lora_merged.safetensors)

FLUX.2 [klein] beside them (build_klein): its transformer and Qwen3, and root/FLUX.2-klein.

The reference Flux2Pipeline holds exactly the values the files give back (bf16-rounded, fp8 x scale)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from tiny_models import _bytes_to_unicode, _seed, sd_ldm_vae

# Qwen3's chat template as Flux2KleinPipeline uses it (one user turn, the assistant's turn opened, thinking off)
QWEN3_CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and "
              "enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}")
CHAT = ("{% for m in messages %}[{{ m['role'] }}]{% for c in m['content'] %}{{ c['text'] }}{% endfor %}"
        "[/{{ m['role'] }}]{% endfor %}")


def tokenizer(folder: Path, chat: str = CHAT, special=("<pad>",)):
    """A byte-level tokenizer (every byte a token) with a chat template that reads Flux2Pipeline's messages (or
    another, with its special tokens)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoTokenizer
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(_bytes_to_unicode())}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": special[0], "model_max_length": 512,
         "chat_template": chat}))
    return AutoTokenizer.from_pretrained(str(folder))


def parts():
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
    from transformers import MistralConfig, MistralModel
    _seed(0)
    te = MistralModel(MistralConfig(vocab_size=131072, hidden_size=32, intermediate_size=48, num_hidden_layers=31,
                                    num_attention_heads=1, num_key_value_heads=1, head_dim=128, rms_norm_eps=1e-5,
                                    rope_theta=1e9, max_position_embeddings=1024)).eval()
    transformer = Flux2Transformer2DModel(in_channels=128, num_layers=1, num_single_layers=1, attention_head_dim=16,
                                          num_attention_heads=2, joint_attention_dim=96, axes_dims_rope=(4, 4, 4, 4))
    vae = AutoencoderKLFlux2(block_out_channels=(32, 32), layers_per_block=2, latent_channels=32, norm_num_groups=32,
                             down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    vae.bn.running_mean.copy_(torch.randn(128) * 0.1)
    vae.bn.running_var.copy_(torch.rand(128) + 0.5)
    for m in (transformer, vae, te):        # bf16 values, as the bf16 files users have
        m.bfloat16().float()
    return transformer.eval(), vae.eval(), te


def small_decoder_vae(vae):
    """FLUX.2-small-decoder's autoencoder: `vae`'s encoder and statistics, a decoder of other widths (its own
    weights)."""
    from diffusers import AutoencoderKLFlux2
    _seed(1)
    small = AutoencoderKLFlux2(**{**vae.config, "decoder_block_out_channels": (64, 32)})
    small.encoder.load_state_dict(vae.encoder.state_dict())
    small.bn.load_state_dict(vae.bn.state_dict())
    return small.bfloat16().float().eval()


BFL_NAMES = [(r"^x_embedder\.", "img_in."), (r"^context_embedder\.", "txt_in."),
             (r"^time_guidance_embed\.timestep_embedder\.linear_1\.", "time_in.in_layer."),
             (r"^time_guidance_embed\.timestep_embedder\.linear_2\.", "time_in.out_layer."),
             (r"^time_guidance_embed\.guidance_embedder\.linear_1\.", "guidance_in.in_layer."),
             (r"^time_guidance_embed\.guidance_embedder\.linear_2\.", "guidance_in.out_layer."),
             (r"^(double_stream_modulation_img|double_stream_modulation_txt|single_stream_modulation)\.linear\.",
              r"\1.lin."),
             (r"^proj_out\.", "final_layer.linear."),
             (r"^transformer_blocks\.(\d+)\.attn\.norm_q\.weight", r"double_blocks.\1.img_attn.norm.query_norm.scale"),
             (r"^transformer_blocks\.(\d+)\.attn\.norm_k\.weight", r"double_blocks.\1.img_attn.norm.key_norm.scale"),
             (r"^transformer_blocks\.(\d+)\.attn\.norm_added_q\.weight",
              r"double_blocks.\1.txt_attn.norm.query_norm.scale"),
             (r"^transformer_blocks\.(\d+)\.attn\.norm_added_k\.weight", r"double_blocks.\1.txt_attn.norm.key_norm.scale"),
             (r"^transformer_blocks\.(\d+)\.attn\.to_out\.0\.", r"double_blocks.\1.img_attn.proj."),
             (r"^transformer_blocks\.(\d+)\.attn\.to_add_out\.", r"double_blocks.\1.txt_attn.proj."),
             (r"^transformer_blocks\.(\d+)\.ff\.linear_in\.", r"double_blocks.\1.img_mlp.0."),
             (r"^transformer_blocks\.(\d+)\.ff\.linear_out\.", r"double_blocks.\1.img_mlp.2."),
             (r"^transformer_blocks\.(\d+)\.ff_context\.linear_in\.", r"double_blocks.\1.txt_mlp.0."),
             (r"^transformer_blocks\.(\d+)\.ff_context\.linear_out\.", r"double_blocks.\1.txt_mlp.2."),
             (r"^single_transformer_blocks\.(\d+)\.attn\.to_qkv_mlp_proj\.", r"single_blocks.\1.linear1."),
             (r"^single_transformer_blocks\.(\d+)\.attn\.to_out\.", r"single_blocks.\1.linear2."),
             (r"^single_transformer_blocks\.(\d+)\.attn\.norm_q\.weight", r"single_blocks.\1.norm.query_norm.scale"),
             (r"^single_transformer_blocks\.(\d+)\.attn\.norm_k\.weight", r"single_blocks.\1.norm.key_norm.scale")]


def bfl_transformer(sd: dict) -> dict:
    """Black Forest Labs' names of a diffusers Flux2Transformer2DModel: fused q/k/v, (shift, scale) in the final
    modulation (diffusers keeps (scale, shift))."""
    out = {}
    for k, v in sd.items():
        m = re.match(r"^transformer_blocks\.(\d+)\.attn\.(to_q|add_q_proj)\.(weight|bias)$", k)
        if m:
            n, which, kind = m.groups()
            names = ("to_q", "to_k", "to_v") if which == "to_q" else ("add_q_proj", "add_k_proj", "add_v_proj")
            side = "img" if which == "to_q" else "txt"
            out[f"double_blocks.{n}.{side}_attn.qkv.{kind}"] = torch.cat(
                [sd[f"transformer_blocks.{n}.attn.{p}.{kind}"] for p in names])
            continue
        if re.match(r"^transformer_blocks\.\d+\.attn\.(to_k|to_v|add_k_proj|add_v_proj)\.", k):
            continue
        if k.startswith("norm_out.linear."):
            scale, shift = v.chunk(2)
            out["final_layer.adaLN_modulation.1." + k.split(".")[-1]] = torch.cat([shift, scale])
            continue
        for pattern, repl in BFL_NAMES:
            k2 = re.sub(pattern, repl, k)
            if k2 != k:
                k = k2
                break
        out[k] = v
    return out


def fp8_mixed(state: dict) -> dict:
    """ComfyUI's fp8mixed: the double blocks' matrices as fp8(weight / scale) with their `weight_scale` and a
    `comfy_quant` description (JSON bytes), the rest bf16."""
    out = {}
    for k, v in state.items():
        if k.startswith("double_blocks.") and k.endswith(".weight") and v.ndim == 2:
            base = k[: -len(".weight")]
            scale = (v.abs().max().float() / 448.0).clamp(min=1e-12)
            out[k] = (v.float() / scale).to(torch.float8_e4m3fn)
            out[base + ".weight_scale"] = scale
            out[base + ".comfy_quant"] = torch.tensor(list(b'{"format": "float8_e4m3fn"}'), dtype=torch.uint8)
        else:
            out[k] = v.bfloat16()
    return out


def dequantised(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        if k.endswith((".weight_scale", ".comfy_quant")):
            continue
        scale = state.get(k[: -len(".weight")] + ".weight_scale") if k.endswith(".weight") else None
        out[k] = v.float() * scale if scale is not None else v.float()
    return out


LORA_LAYERS = ("double_blocks.0.img_attn.qkv", "double_blocks.0.txt_mlp.0", "single_blocks.0.linear1")


def lora(stored: dict, models: Path) -> None:
    """A LoRA as ComfyUI-format FLUX.2 LoRAs are written (diffusion_model.<Black Forest Labs' layer>.lora_A / lora_B,
    the Turbo LoRA's layout), and the transformer with it merged in at strength 1, to compare against."""
    from safetensors.torch import save_file
    from tiny_flux import comfy_lora
    out, merged = comfy_lora(dequantised(stored), LORA_LAYERS)
    (models / "loras").mkdir(exist_ok=True)
    save_file(out, str(models / "loras" / "flux2_lora_tiny_comfyui.safetensors"))
    save_file({k: v.contiguous() for k, v in merged.items()},
              str(models / "diffusion_models" / "flux2_dev_tiny_lora_merged.safetensors"))


def save_vae(vae, path: Path, levels: int = 2) -> None:
    """FLUX.2's VAE (of `levels` blocks) as ComfyUI's flux2-vae.safetensors holds it: the LDM autoencoder names and
    the batch norm's statistics."""
    from safetensors.torch import save_file
    ae = {k: v for k, v in vae.state_dict().items() if not k.startswith("bn.")}
    save_file({k: v.contiguous() for k, v in {**sd_ldm_vae(ae, levels), "bn.running_mean": vae.bn.running_mean,
                                               "bn.running_var": vae.bn.running_var}.items()}, str(path))


def build_flux2(root: Path) -> Path:
    from diffusers import Flux2Pipeline
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    models = root / "models"
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    transformer, vae, te = parts()
    stored = fp8_mixed(bfl_transformer(transformer.state_dict()))
    save_file(stored, str(models / "diffusion_models" / "flux2_dev_tiny_fp8mixed.safetensors"))
    transformer.load_state_dict(convert_flux2_transformer_checkpoint_to_diffusers(dequantised(stored)))
    lora(stored, models)
    name = "mistral_3_small_flux2_tiny_bf16"
    save_file({"model." + k: v.bfloat16().contiguous() for k, v in te.state_dict().items()},
              str(models / "text_encoders" / f"{name}.safetensors"))
    tok = tokenizer(models / "text_encoders" / name)
    save_vae(vae, models / "vae" / "flux2-vae.safetensors")
    small = small_decoder_vae(vae)
    save_vae(small, models / "vae" / "full_encoder_small_decoder.safetensors")
    small.save_pretrained(str(root / "small_decoder_vae"))
    Flux2Pipeline(scheduler=scheduler("flux2"), vae=vae, text_encoder=te, tokenizer=tok,
                  transformer=transformer).save_pretrained(str(root / "FLUX.2-dev"), safe_serialization=True)
    return build_klein(root)


def build_klein(root: Path) -> Path:
    """FLUX.2 [klein] as ComfyUI's templates load it, beside build_flux2's VAE: the transformer without a guidance
    input (diffusion_models/flux-2-klein-base-4b-tiny.safetensors, Black Forest Labs' names, bf16) and Qwen3 with its
    per-head q/k norms (text_encoders/qwen_3_4b_tiny.safetensors, transformers' names; 28 layers, as Flux2KleinPipeline
    reads layers 9, 18 and 27; wider than the tiny Mistral, as the released encoders differ), its tokenizer (Qwen3's chat template) in a folder named after it; root/FLUX.2-klein
    is Flux2KleinPipeline's folder of the same weights (base: true CFG)."""
    from diffusers import AutoencoderKLFlux2, Flux2KleinPipeline, Flux2Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers
    from safetensors.torch import save_file
    from transformers import Qwen3Config, Qwen3Model
    from nodes.generate.split import scheduler
    models = root / "models"
    _seed(5)
    te = Qwen3Model(Qwen3Config(vocab_size=300, hidden_size=48, intermediate_size=48, num_hidden_layers=28,
                                num_attention_heads=1, num_key_value_heads=1, head_dim=128, rms_norm_eps=1e-6,
                                rope_theta=1000000.0, max_position_embeddings=1024)).eval()
    transformer = Flux2Transformer2DModel(in_channels=128, num_layers=1, num_single_layers=1, attention_head_dim=16,
                                          num_attention_heads=2, joint_attention_dim=144, axes_dims_rope=(4, 4, 4, 4),
                                          guidance_embeds=False).eval()
    for m in (transformer, te):
        m.bfloat16().float()
    stored = {k: v.bfloat16().contiguous() for k, v in bfl_transformer(transformer.state_dict()).items()}
    save_file(stored, str(models / "diffusion_models" / "flux-2-klein-base-4b-tiny.safetensors"))
    transformer.load_state_dict(convert_flux2_transformer_checkpoint_to_diffusers(dequantised(stored)))
    name = "qwen_3_4b_tiny"
    save_file({"model." + k: v.bfloat16().contiguous() for k, v in te.state_dict().items()},
              str(models / "text_encoders" / f"{name}.safetensors"))
    tok = tokenizer(models / "text_encoders" / name, QWEN3_CHAT,
                    ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"))
    vae = AutoencoderKLFlux2.from_pretrained(str(root / "FLUX.2-dev" / "vae"))
    Flux2KleinPipeline(scheduler=scheduler("flux2"), vae=vae, text_encoder=te, tokenizer=tok, transformer=transformer,
                       is_distilled=False).save_pretrained(str(root / "FLUX.2-klein"), safe_serialization=True)
    return root
