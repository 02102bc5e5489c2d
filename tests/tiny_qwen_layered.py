"""A tiny random-weight Qwen-Image-Layered in the layouts its users hold it, beside build_qwen's Qwen-Image files
(the same Qwen2.5-VL text encoder and tokenizer):

  root/Qwen-Image-Layered/                          QwenImageLayeredPipeline folder (diffusers): the reference
  root/models/diffusion_models/qwen_image_layered_tiny_bf16.safetensors
      the transformer in ComfyUI's split file (Comfy-Org/Qwen-Image-Layered_ComfyUI: diffusers' own names, with the
      layered model's time_text_embed.addition_t_embedding, its RGB/RGBA flag), in bf16
  root/models/vae/qwen_image_layered_vae.safetensors
      the RGBA VAE: the Wan 2.1 VAE's original names, its first and last convolutions 4 channels wide

Widths are tiny; the structure is the released model's: 64 input channels (16 latent x 2x2), layered rotary
positions (use_layer3d_rope) and the additional timestep condition, a VAE reading and writing RGBA."""
from __future__ import annotations

from pathlib import Path

from tiny_models import _seed, wan_original_vae
from tiny_qwen import AXES, HEAD, build_qwen


def parts():
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    _seed(11)
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=64, out_channels=16, num_layers=2,
                                              attention_head_dim=HEAD, num_attention_heads=2, joint_attention_dim=128,
                                              axes_dims_rope=AXES, use_additional_t_cond=True, use_layer3d_rope=True)
    vae = AutoencoderKLQwenImage(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                 temperal_downsample=[False, True, True], input_channels=4)
    for m in (transformer, vae):        # bf16 values, as the bf16 files users have
        m.bfloat16().float()
    return transformer.eval(), vae.eval()


def build_qwen_layered(root: Path) -> Path:
    from diffusers import DiffusionPipeline, QwenImageLayeredPipeline
    from safetensors.torch import save_file
    build_qwen(root)
    transformer, vae = parts()
    base = DiffusionPipeline.from_pretrained(str(root / "Qwen-Image"), local_files_only=True)
    QwenImageLayeredPipeline(scheduler=base.scheduler, vae=vae, text_encoder=base.text_encoder,
                             tokenizer=base.tokenizer, processor=None, transformer=transformer).save_pretrained(
        str(root / "Qwen-Image-Layered"), safe_serialization=True)
    models = root / "models"
    bf16 = lambda sd: {k: v.bfloat16().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(bf16(transformer.state_dict()),
              str(models / "diffusion_models" / "qwen_image_layered_tiny_bf16.safetensors"))
    save_file(bf16(wan_original_vae(vae.state_dict())), str(models / "vae" / "qwen_image_layered_vae.safetensors"))
    return root
