"""A tiny random-weight Stable Diffusion 3.5 (medium's MMDiT-X shape: queries and keys normalised, a second attention
in the first block) in the layouts users hold it: a diffusers StableDiffusion3Pipeline folder, and ComfyUI's files with
Stability's tensor names (written here by inverting diffusers' converter by hand, so the reference does not go through
Kinograph's loading code):

  root/diffusers/                                         StableDiffusion3Pipeline, shipped scheduler (shift 3)
  root/models/checkpoints/sd3.5_medium_tiny.safetensors    MMDiT + VAE (model.diffusion_model., first_stage_model.)
  root/models/checkpoints/sd3.5_medium_tiny_incl_clips_t5xxl.safetensors   + text_encoders.clip_l / clip_g / t5xxl
  root/models/clip/clip_l.safetensors, clip_g.safetensors, t5xxl_fp16.safetensors (tokenizers in folders after them)
  root/models/diffusion_models/sd3.5_medium_tiny_mmdit.safetensors   the MMDiT alone (no prefix)
  root/models/vae/sd3_vae.safetensors                     the VAE alone (LDM names)

The CLIPs have the released widths (768 and 1280, 64-wide heads, so files are told apart as in ComfyUI's folders) at two
layers, with projections (the folder's CLIP-L's the identity, its files' not); CLIP-G uses gelu and pads with "!" as
OpenCLIP-G does; T5 is 2048 wide, the joint width the two CLIPs are padded to (T5-XXL's 4096 in the released model)."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from tiny_models import _seed, clip_text_encoder, clip_tokenizer, sd_ldm_vae, t5_encoder, t5_tokenizer

LAYERS = 3


def parts():
    from diffusers import AutoencoderKL, SD3Transformer2DModel
    _seed(0)
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=2, in_channels=16, num_layers=LAYERS,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=2048, pooled_projection_dim=2048, out_channels=16,
                                        pos_embed_max_size=16, dual_attention_layers=(0,), qk_norm="rms_norm")
    vae = AutoencoderKL(block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3, latent_channels=16,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        layers_per_block=2, norm_num_groups=32, scaling_factor=1.5305, shift_factor=0.0609,
                        use_quant_conv=False, use_post_quant_conv=False)
    clips = []
    for width, act in ((768, "quick_gelu"), (1280, "gelu")):
        c = clip_text_encoder(width, projection=True)
        c.config.num_attention_heads, c.config.hidden_act = width // 64, act
        clips.append(type(c)(c.config))
    t5 = t5_encoder(2048)
    for m in (transformer, vae, *clips, t5):        # fp16 values in both layouts, like the fp16 files users have
        m.half().float()
    return transformer, vae, clips[0], clips[1], t5


def _swap(w):
    """Stability's final modulation is (shift, scale), diffusers' (scale, shift)."""
    a, b = w.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def stability_transformer(sd: dict) -> dict:
    """diffusers' SD3Transformer2DModel names -> Stability's (sd3.5_medium.safetensors, without the prefix)."""
    out = {"pos_embed": sd["pos_embed.pos_embed"]}
    top = {"pos_embed.proj": "x_embedder.proj", "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
           "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2", "context_embedder": "context_embedder",
           "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
           "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2", "proj_out": "final_layer.linear"}
    x_names = {"attn.to_out.0": "x_block.attn.proj", "attn2.to_out.0": "x_block.attn2.proj",
               "norm1.linear": "x_block.adaLN_modulation.1", "ff.net.0.proj": "x_block.mlp.fc1",
               "ff.net.2": "x_block.mlp.fc2", "attn.to_add_out": "context_block.attn.proj",
               "ff_context.net.0.proj": "context_block.mlp.fc1", "ff_context.net.2": "context_block.mlp.fc2"}
    norms = {"attn.norm_q": "x_block.attn.ln_q", "attn.norm_k": "x_block.attn.ln_k",
             "attn.norm_added_q": "context_block.attn.ln_q", "attn.norm_added_k": "context_block.attn.ln_k",
             "attn2.norm_q": "x_block.attn2.ln_q", "attn2.norm_k": "x_block.attn2.ln_k"}
    for kind in ("weight", "bias"):
        for d, s in top.items():
            out[f"{s}.{kind}"] = sd[f"{d}.{kind}"]
        out[f"final_layer.adaLN_modulation.1.{kind}"] = _swap(sd[f"norm_out.linear.{kind}"])
    for i in range(LAYERS):
        p, q = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        last = i == LAYERS - 1
        for kind in ("weight", "bias"):
            for d, s in x_names.items():
                if f"{p}{d}.{kind}" in sd:
                    out[f"{q}{s}.{kind}"] = sd[f"{p}{d}.{kind}"]
            ctx = sd[f"{p}norm1_context.linear.{kind}"]
            out[f"{q}context_block.adaLN_modulation.1.{kind}"] = _swap(ctx) if last else ctx
            out[f"{q}x_block.attn.qkv.{kind}"] = torch.cat([sd[f"{p}attn.to_{x}.{kind}"] for x in "qkv"])
            out[f"{q}context_block.attn.qkv.{kind}"] = torch.cat([sd[f"{p}attn.add_{x}_proj.{kind}"] for x in "qkv"])
            if f"{p}attn2.to_q.{kind}" in sd:
                out[f"{q}x_block.attn2.qkv.{kind}"] = torch.cat([sd[f"{p}attn2.to_{x}.{kind}"] for x in "qkv"])
        for d, s in norms.items():
            if f"{p}{d}.weight" in sd:
                out[f"{q}{s}.weight"] = sd[f"{p}{d}.weight"]
    assert sum(v.numel() for v in out.values()) == sum(v.numel() for v in sd.values()), "a tensor was left out"
    return out


def text_files(clip_l, clip_g, t5) -> tuple:
    """ComfyUI's clip_l / clip_g.safetensors (transformers' names: text_model.*, text_projection.weight) and t5xxl."""
    def clip(m):
        return {("text_model." + k if not k.startswith(("text_model.", "text_projection.")) else k): v
                for k, v in m.state_dict().items()}
    return clip(clip_l), clip(clip_g), {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}


def build_sd3(root: Path) -> Path:
    from diffusers import StableDiffusion3Pipeline
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    models = root / "models"
    for sub in ("checkpoints", "clip", "diffusion_models", "vae"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    tok = clip_tokenizer(models / "clip" / "clip_l")
    tok_2 = copy.deepcopy(tok)
    tok_2.pad_token = "!"
    tok_3 = t5_tokenizer(models / "clip" / "t5xxl_fp16")
    half = lambda sd: {k: v.half().contiguous() for k, v in sd.items()}  # noqa: E731
    transformer, vae, clip_l, clip_g, t5 = parts()
    cl, cg, te = text_files(clip_l, clip_g, t5)
    # The files keep CLIP-L's random projection, as the clip_l.safetensors users share with FLUX.1 holds OpenAI's;
    # the folder's is the identity, as diffusers' single-file loader gives SD3's CLIP-L (SD3 reads it unprojected).
    clip_l.text_projection.weight = torch.nn.Parameter(torch.eye(clip_l.config.hidden_size))
    StableDiffusion3Pipeline(scheduler=scheduler("sd3"), vae=vae, transformer=transformer, text_encoder=clip_l,
                             tokenizer=tok, text_encoder_2=clip_g, tokenizer_2=tok_2, text_encoder_3=t5,
                             tokenizer_3=tok_3).save_pretrained(str(root / "diffusers"), safe_serialization=True)
    for name, state in (("clip_l", cl), ("clip_g", cg), ("t5xxl_fp16", te)):
        save_file(half(state), str(models / "clip" / f"{name}.safetensors"))
    mmdit, ldm_vae = stability_transformer(transformer.state_dict()), sd_ldm_vae(vae.state_dict(), 4)
    save_file(half(mmdit), str(models / "diffusion_models" / "sd3.5_medium_tiny_mmdit.safetensors"))
    save_file(half(ldm_vae), str(models / "vae" / "sd3_vae.safetensors"))
    ckpt = {f"model.diffusion_model.{k}": v for k, v in mmdit.items()}
    ckpt.update({f"first_stage_model.{k}": v for k, v in ldm_vae.items()})
    save_file(half(ckpt), str(models / "checkpoints" / "sd3.5_medium_tiny.safetensors"))
    for name, state in (("clip_l", cl), ("clip_g", cg), ("t5xxl", te)):
        ckpt.update({f"text_encoders.{name}.transformer.{k}": v for k, v in state.items()})
    save_file(half(ckpt), str(models / "checkpoints" / "sd3.5_medium_tiny_incl_clips_t5xxl.safetensors"))
    folder = models / "checkpoints" / "sd3.5_medium_tiny_incl_clips_t5xxl"
    tok.save_pretrained(str(folder / "tokenizer"))
    tok_3.save_pretrained(str(folder / "tokenizer_3"))
    return root


def controlnet(seed: int, layers: int = 2):
    """An SD 3.5 Large ControlNet's shape (single-stream blocks, no patch embedding or text tokens of its own) as wide
    as parts()'s transformer, every weight random (the released zero-initialised outputs would steer nothing)."""
    from diffusers import SD3ControlNetModel
    _seed(seed)
    net = SD3ControlNetModel(patch_size=2, in_channels=16, num_layers=layers, attention_head_dim=8,
                             num_attention_heads=4, joint_attention_dim=None, caption_projection_dim=32,
                             pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=None, pos_embed_type=None,
                             use_pos_embed=False, force_zeros_for_pooled_projection=False)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    net.half().float()
    return net


def stability_controlnet(sd: dict, control_type: int) -> dict:
    """diffusers' SD3ControlNetModel names -> Stability's sd3.5_large_controlnet_*.safetensors (diffusers'
    convert_sd3_controlnet_to_diffusers, inverted), with the file's control_type (0 blur, 1 canny, 2 depth)."""
    names = {"attn.to_out.0": "attn.proj", "ff.net.0.proj": "mlp.fc1", "ff.net.2": "mlp.fc2",
             "norm1.linear": "adaLN_modulation.1"}
    out = {"control_type": torch.tensor([float(control_type)])}
    for k, v in sd.items():
        if not k.startswith("transformer_blocks."):
            out[k] = v
            continue
        i, rest = k.split(".", 2)[1:]
        layer, kind = rest.rsplit(".", 1)
        if layer in ("attn.to_q", "attn.to_k", "attn.to_v"):
            if layer == "attn.to_q":
                out[f"transformer_blocks.{i}.attn.qkv.{kind}"] = torch.cat(
                    [sd[f"transformer_blocks.{i}.attn.to_{x}.{kind}"] for x in "qkv"])
            continue
        out[f"transformer_blocks.{i}.{names[layer]}.{kind}"] = v
    return out
