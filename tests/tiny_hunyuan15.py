"""A tiny random-weight HunyuanVideo 1.5 in the layouts ComfyUI users hold it (Comfy-Org/HunyuanVideo_1.5_repackaged):

  root/models/diffusion_models/hunyuanvideo1.5_tiny_t2v_fp16.safetensors
      the transformer in Tencent's original names (double_blocks.N.img_attn_q, txt_in.individual_token_refiner with a
      fused self_attn_qkv, byt5_in, vision_in, final_layer with (shift, scale)), as diffusers'
      scripts/convert_hunyuan_video1_5_to_diffusers.py reads them
  root/models/vae/hunyuanvideo15_vae_tiny.safetensors      the VAE in Tencent's names (encoder.down.N.block.M, mid.attn_1.q)
  root/models/text_encoders/qwen_2.5_vl_tiny.safetensors  Qwen2.5-VL in ComfyUI's names (tests/tiny_qwen.py)
  root/models/text_encoders/byt5_small_glyphxl_tiny.safetensors  a T5 encoder the glyph ByT5's width
  root/models/clip_vision/sigclip_vision_tiny.safetensors  SigLIP's vision tower (ComfyUI's sigclip_vision_patch14_384
      layout: transformers' names under vision_model.), as wide as the transformer's vision tokens, in one head (the
      loader reads SigLIP's heads as 72 wide)
  root/comfy/text_encoders/qwen25_tokenizer                ComfyUI's bundled tokenizer, with Qwen2's chat template

and the same weights as diffusers modules (`reference`), to build HunyuanVideo15Pipeline from. 128-wide heads (the
released rotary split 16/56/56) in one head, one double block, one refiner block; an 8-channel latent from a 16x VAE."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from tiny_models import _seed
from tiny_qwen import comfy_text_encoder, qwen_tokenizer, text_encoder

LATENT = 8
SIGLIP_SIDE = 32            # SigLIP's picture side (384 released)
CHAT = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def original_transformer(sd: dict) -> dict:
    """HunyuanVideo15Transformer3DModel's names -> Tencent's (the inverse of diffusers' conversion script)."""
    top = {"time_embed.timestep_embedder.linear_1": "time_in.mlp.0", "time_embed.timestep_embedder.linear_2": "time_in.mlp.2",
           "context_embedder.time_text_embed.timestep_embedder.linear_1": "txt_in.t_embedder.mlp.0",
           "context_embedder.time_text_embed.timestep_embedder.linear_2": "txt_in.t_embedder.mlp.2",
           "context_embedder.time_text_embed.text_embedder.linear_1": "txt_in.c_embedder.linear_1",
           "context_embedder.time_text_embed.text_embedder.linear_2": "txt_in.c_embedder.linear_2",
           "context_embedder.proj_in": "txt_in.input_embedder", "context_embedder_2.norm": "byt5_in.layernorm",
           "context_embedder_2.linear_1": "byt5_in.fc1", "context_embedder_2.linear_2": "byt5_in.fc2",
           "context_embedder_2.linear_3": "byt5_in.fc3", "image_embedder.norm_in": "vision_in.proj.0",
           "image_embedder.linear_1": "vision_in.proj.1", "image_embedder.linear_2": "vision_in.proj.3",
           "image_embedder.norm_out": "vision_in.proj.4", "x_embedder.proj": "img_in.proj",
           "cond_type_embed": "cond_type_embedding", "norm_out.linear": "final_layer.adaLN_modulation.1",
           "proj_out": "final_layer.linear", "time_embed.timestep_embedder_r.linear_1": "time_r_in.mlp.0",
           "time_embed.timestep_embedder_r.linear_2": "time_r_in.mlp.2"}
    block = {"norm1.linear": "img_mod.linear", "norm1_context.linear": "txt_mod.linear", "attn.to_q": "img_attn_q",
             "attn.to_k": "img_attn_k", "attn.to_v": "img_attn_v", "attn.norm_q": "img_attn_q_norm",
             "attn.norm_k": "img_attn_k_norm", "attn.to_out.0": "img_attn_proj", "attn.add_q_proj": "txt_attn_q",
             "attn.add_k_proj": "txt_attn_k", "attn.add_v_proj": "txt_attn_v", "attn.norm_added_q": "txt_attn_q_norm",
             "attn.norm_added_k": "txt_attn_k_norm", "attn.to_add_out": "txt_attn_proj", "ff.net.0.proj": "img_mlp.fc1",
             "ff.net.2": "img_mlp.fc2", "ff_context.net.0.proj": "txt_mlp.fc1", "ff_context.net.2": "txt_mlp.fc2"}
    refiner = {"norm1": "norm1", "norm2": "norm2", "attn.to_out.0": "self_attn_proj", "ff.net.0.proj": "mlp.fc1",
               "ff.net.2": "mlp.fc2", "norm_out.linear": "adaLN_modulation.1"}
    out = {}
    for key, v in sd.items():
        name, kind = key.rsplit(".", 1)
        if name.startswith("transformer_blocks."):
            _, n, rest = name.split(".", 2)
            out[f"double_blocks.{n}.{block[rest]}.{kind}"] = v
        elif name.startswith("context_embedder.token_refiner.refiner_blocks."):
            n, rest = name[len("context_embedder.token_refiner.refiner_blocks."):].split(".", 1)
            base = f"txt_in.individual_token_refiner.blocks.{n}"
            if rest == "attn.to_q":
                out[f"{base}.self_attn_qkv.{kind}"] = torch.cat(
                    [sd[f"{name[:-len('to_q')]}{p}.{kind}"] for p in ("to_q", "to_k", "to_v")])
            elif rest not in ("attn.to_k", "attn.to_v"):
                out[f"{base}.{refiner[rest]}.{kind}"] = v
        elif name == "norm_out.linear":
            scale, shift = v.chunk(2)
            out[f"final_layer.adaLN_modulation.1.{kind}"] = torch.cat([shift, scale])
        else:
            out[f"{top[name]}.{kind}"] = v
    return out


def original_vae(sd: dict) -> dict:
    """AutoencoderKLHunyuanVideo15's names -> Tencent's."""
    import re
    subs = [(r"\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r".down.\1.block.\2."),
            (r"\.down_blocks\.(\d+)\.downsamplers\.0\.", r".down.\1.downsample."),
            (r"\.up_blocks\.(\d+)\.resnets\.(\d+)\.", r".up.\1.block.\2."),
            (r"\.up_blocks\.(\d+)\.upsamplers\.0\.", r".up.\1.upsample."),
            (r"\.mid_block\.resnets\.0\.", ".mid.block_1."), (r"\.mid_block\.resnets\.1\.", ".mid.block_2."),
            (r"\.mid_block\.attentions\.0\.to_([qkv])\.", r".mid.attn_1.\1."), (r"\.mid_block\.attentions\.0\.", ".mid.attn_1.")]
    out = {}
    for k, v in sd.items():
        for rx, sub in subs:
            k, n = re.subn(rx, sub, k)
            if n:
                break
        out[k] = v
    return out


def reference_parts():
    from diffusers import AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel
    from transformers import T5Config, T5EncoderModel
    _seed(0)
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=2 * LATENT + 1, out_channels=LATENT, num_attention_heads=1, attention_head_dim=128, num_layers=1,
        num_refiner_layers=1, mlp_ratio=2.0, text_embed_dim=128, text_embed_2_dim=16, image_embed_dim=16,
        target_size=64, task_type="t2v")
    vae = AutoencoderKLHunyuanVideo15(latent_channels=LATENT, block_out_channels=(8, 8, 8, 8, 16), layers_per_block=1)
    te = text_encoder()
    byt5 = T5EncoderModel(T5Config(d_model=16, d_kv=8, d_ff=16, num_layers=1, num_heads=2, vocab_size=384))
    for m in (transformer, vae, te, byt5):        # fp16/bf16 values, as the files hold them
        m.to(torch.bfloat16).float()
        for p in m.parameters():
            p.data = p.data.to(torch.bfloat16).float()
    return transformer.eval(), vae.eval(), te.eval(), byt5.eval()


def siglip():
    from transformers import SiglipVisionConfig, SiglipVisionModel
    _seed(2)
    vision = SiglipVisionModel(SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                  num_attention_heads=1, image_size=SIGLIP_SIDE, patch_size=8))
    for p in vision.parameters():
        p.data = p.data.to(torch.bfloat16).float()
    return vision.eval()


def build_hunyuan15(root: Path) -> Path:
    from safetensors.torch import save_file
    models = root / "models"
    for sub in ("diffusion_models", "text_encoders", "vae", "clip_vision"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    transformer, vae, te, byt5 = reference_parts()
    bf16 = lambda sd: {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(bf16(original_transformer(transformer.state_dict())),
              str(models / "diffusion_models" / "hunyuanvideo1.5_tiny_t2v_fp16.safetensors"))
    save_file(bf16(original_vae(vae.state_dict())), str(models / "vae" / "hunyuanvideo15_vae_tiny.safetensors"))
    save_file(bf16(comfy_text_encoder(te)), str(models / "text_encoders" / "qwen_2.5_vl_tiny.safetensors"))
    save_file(bf16(byt5.state_dict()), str(models / "text_encoders" / "byt5_small_glyphxl_tiny.safetensors"))
    save_file(bf16({"vision_model." + k.removeprefix("vision_model."): v for k, v in siglip().state_dict().items()}),
              str(models / "clip_vision" / "sigclip_vision_tiny.safetensors"))
    folder = root / "comfy" / "text_encoders" / "qwen25_tokenizer"
    qwen_tokenizer(folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**cfg, "chat_template": CHAT}))
    return root


def _bf16(*modules):
    for m in modules:
        for p in m.parameters():
            p.data = p.data.to(torch.bfloat16).float()


def distilled_transformer(kind: str):
    """(the diffusers module, its file's tensors in Tencent's names) of a tiny HunyuanVideo 1.5 as Comfy-Org ships
    the distilled ones: "cfg" (cfg-distilled: plus guidance_in.mlp.0 / .2, whose effect the module leaves out),
    "step" (step-distilled: time_r_in, diffusers' use_meanflow) or "sr" (the 1080p super-resolution model: 3 x
    LATENT + 2 input channels, and time_r_in)."""
    from diffusers import HunyuanVideo15Transformer3DModel
    _seed({"cfg": 3, "step": 4, "sr": 5}[kind])
    model = HunyuanVideo15Transformer3DModel(
        in_channels=3 * LATENT + 2 if kind == "sr" else 2 * LATENT + 1, out_channels=LATENT, num_attention_heads=1,
        attention_head_dim=128, num_layers=1, num_refiner_layers=1, mlp_ratio=2.0, text_embed_dim=128,
        text_embed_2_dim=16, image_embed_dim=16, target_size=64, task_type="t2v", use_meanflow=kind != "cfg")
    guidance = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.SiLU(), torch.nn.Linear(128, 128))
    _bf16(model, guidance)
    sd = original_transformer(model.state_dict())
    if kind == "cfg":
        sd.update({f"guidance_in.mlp.{k}": v for k, v in guidance.state_dict().items()})
    return model.eval(), sd


def upsampler_1080p() -> dict:
    """A tiny hunyuanvideo15_latent_upsampler_1080p in its file's names (conv_in.conv, up.N.block.M.{norm1.gamma,
    conv1.conv, norm2.gamma, conv2.conv, nin_shortcut}, norm_out.gamma, conv_out.conv): LATENT channels in and out,
    two stages 16 then 8 wide, three resnet blocks each (the released num_res_blocks 2, plus one)."""
    _seed(6)
    g = lambda *shape: (torch.randn(*shape) * 0.1).to(torch.bfloat16).float()        # noqa: E731
    sd = {"conv_in.conv.weight": g(16, LATENT, 3, 3, 3), "conv_in.conv.bias": g(16)}
    ch = 16
    for i, width in enumerate((16, 8)):
        for j in range(3):
            cin = ch if j == 0 else width
            b = f"up.{i}.block.{j}."
            sd.update({b + "norm1.gamma": 1 + g(cin, 1, 1, 1), b + "conv1.conv.weight": g(width, cin, 3, 3, 3),
                       b + "conv1.conv.bias": g(width), b + "norm2.gamma": 1 + g(width, 1, 1, 1),
                       b + "conv2.conv.weight": g(width, width, 3, 3, 3), b + "conv2.conv.bias": g(width)})
            if cin != width:
                sd.update({b + "nin_shortcut.weight": g(width, cin, 1, 1, 1), b + "nin_shortcut.bias": g(width)})
        ch = width
    sd.update({"norm_out.gamma": 1 + g(ch, 1, 1, 1), "conv_out.conv.weight": g(LATENT, ch, 3, 3, 3),
               "conv_out.conv.bias": g(LATENT)})
    return sd


def build_hunyuan15_distilled(root: Path) -> Path:
    """build_hunyuan15's files and the distilled ones beside them: hunyuanvideo1.5_tiny_{cfg,step}_distilled,
    hunyuanvideo1.5_tiny_sr_distilled and latent_upscale_models/hunyuanvideo15_latent_upsampler_tiny."""
    from safetensors.torch import save_file
    build_hunyuan15(root)
    models = root / "models"
    for kind in ("cfg", "step", "sr"):
        sd = distilled_transformer(kind)[1]
        save_file({k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()},
                  str(models / "diffusion_models" / f"hunyuanvideo1.5_tiny_{kind}_distilled.safetensors"))
    (models / "latent_upscale_models").mkdir()
    save_file({k: v.to(torch.bfloat16) for k, v in upsampler_1080p().items()},
              str(models / "latent_upscale_models" / "hunyuanvideo15_latent_upsampler_tiny.safetensors"))
    return root
