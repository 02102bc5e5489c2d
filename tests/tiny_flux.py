"""A tiny random-weight FLUX.1 in the layouts users hold it: a diffusers FluxPipeline folder, and ComfyUI's split
files with Black Forest Labs' tensor names (written here by inverting diffusers' converter by hand, so the reference
does not go through Kinograph's loading code):

  root/diffusers/                                  FluxPipeline (dev: guidance embedder), shipped dev scheduler
  root/diffusers_schnell/                          FluxPipeline (schnell: no guidance embedder), schnell scheduler
  root/models/diffusion_models/flux1-dev-tiny.safetensors     BFL names
  root/models/unet/flux1-schnell-tiny.safetensors             BFL names, in ComfyUI's older unet/ folder
  root/models/vae/ae.safetensors                   the LDM autoencoder names, 16 latent channels, no quant convs
  root/models/clip/clip_l.safetensors, t5xxl_fp16.safetensors (tokenizers in folders named after them)
  root/models/checkpoints/flux1-dev-tiny-aio.safetensors  all in one (model.diffusion_model., vae., text_encoders.)

Widths are tiny but the structure is the released model's: 64 input channels (16 latent x 2x2 patches), two
double and two single blocks, 32-wide heads whose rotary split keeps the released proportions."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import torch

from tiny_models import _seed, clip_text_encoder, clip_tokenizer, sd_ldm_vae, t5_encoder, t5_tokenizer

HEAD = 32
AXES = (4, 14, 14)          # the released [16, 56, 56] at a 32-wide head (nodes/generate/converters/flux.rope_axes)


def comfy_lora(weights: dict, layers, seed: int = 3):
    """A rank-4 LoRA of `layers` as ComfyUI saves LoRAs in Black Forest Labs' names (diffusion_model.<layer>.lora_A /
    lora_B: FLUX.1's, FLUX.2's Turbo LoRA, Chroma's), and `weights` with it merged in at strength 1: (lora, merged)."""
    g = torch.Generator().manual_seed(seed)
    out, merged = {}, dict(weights)
    for layer in layers:
        w = weights[layer + ".weight"]
        down, up = torch.randn(4, w.shape[1], generator=g) * 0.3, torch.randn(w.shape[0], 4, generator=g) * 0.3
        out[f"diffusion_model.{layer}.lora_A.weight"], out[f"diffusion_model.{layer}.lora_B.weight"] = down, up
        merged[layer + ".weight"] = w + up @ down
    return out, merged


def parts(guidance: bool = True):
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    _seed(0)
    transformer = FluxTransformer2DModel(in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=HEAD,
                                         num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=64,
                                         guidance_embeds=guidance, axes_dims_rope=AXES)
    vae = AutoencoderKL(block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3, latent_channels=16,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        layers_per_block=2, norm_num_groups=32, scaling_factor=0.3611, shift_factor=0.1159,
                        use_quant_conv=False, use_post_quant_conv=False)
    # CLIP-L's 64-wide heads (a file's head count is read as its width / 64), at one head
    clip = clip_text_encoder(64)
    clip.config.num_attention_heads = 1
    clip = type(clip)(clip.config)
    t5 = t5_encoder(32)
    for m in (transformer, vae, clip, t5):          # fp16 values in both layouts, like the fp16 files users have
        m.half().float()
    return transformer, vae, clip, t5


def _swap(w):
    """BFL's final modulation is (shift, scale), diffusers' (scale, shift)."""
    a, b = w.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def bfl_transformer(sd: dict) -> dict:
    """diffusers' FluxTransformer2DModel names -> Black Forest Labs' (flux1-dev.safetensors); Chroma's blocks too
    (tiny_chroma), which lack the modulations. Every tensor is named: the count is checked."""
    out = {}
    top = {"time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
           "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
           "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
           "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
           "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
           "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
           "context_embedder": "txt_in", "x_embedder": "img_in", "proj_out": "final_layer.linear"}
    double = {"norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin", "ff.net.0.proj": "img_mlp.0",
              "ff.net.2": "img_mlp.2", "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2",
              "attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj"}
    norms = {"attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
             "attn.norm_added_q": "txt_attn.norm.query_norm", "attn.norm_added_k": "txt_attn.norm.key_norm"}
    for kind in ("weight", "bias"):
        for d, b in top.items():
            if f"{d}.{kind}" in sd:
                out[f"{b}.{kind}"] = sd[f"{d}.{kind}"]
        if f"norm_out.linear.{kind}" in sd:
            out[f"final_layer.adaLN_modulation.1.{kind}"] = _swap(sd[f"norm_out.linear.{kind}"])
    blocks = {int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks.")}
    for i in blocks:
        p, q = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for kind in ("weight", "bias"):
            for d, b in double.items():
                if f"{p}{d}.{kind}" in sd:          # Chroma's blocks have no modulations of their own
                    out[f"{q}{b}.{kind}"] = sd[f"{p}{d}.{kind}"]
            out[f"{q}img_attn.qkv.{kind}"] = torch.cat([sd[f"{p}attn.to_{x}.{kind}"] for x in "qkv"])
            out[f"{q}txt_attn.qkv.{kind}"] = torch.cat([sd[f"{p}attn.add_{x}_proj.{kind}"] for x in "qkv"])
        for d, b in norms.items():
            out[f"{q}{b}.scale"] = sd[f"{p}{d}.weight"]
    singles = {int(k.split(".")[1]) for k in sd if k.startswith("single_transformer_blocks.")}
    for i in singles:
        p, q = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for kind in ("weight", "bias"):
            if f"{p}norm.linear.{kind}" in sd:
                out[f"{q}modulation.lin.{kind}"] = sd[f"{p}norm.linear.{kind}"]
            out[f"{q}linear1.{kind}"] = torch.cat([sd[f"{p}attn.to_{x}.{kind}"] for x in "qkv"] +
                                                  [sd[f"{p}proj_mlp.{kind}"]])
            out[f"{q}linear2.{kind}"] = sd[f"{p}proj_out.{kind}"]
        out[f"{q}norm.query_norm.scale"] = sd[f"{p}attn.norm_q.weight"]
        out[f"{q}norm.key_norm.scale"] = sd[f"{p}attn.norm_k.weight"]
    assert sum(v.numel() for v in out.values()) == sum(v.numel() for v in sd.values()), "a tensor was left out"
    return out


def _text_files(clip, t5) -> tuple:
    """ComfyUI's clip_l.safetensors (transformers' CLIPTextModel names under text_model.) and t5xxl (T5's encoder)."""
    cl = {("text_model." + k if not k.startswith("text_model.") else k): v for k, v in clip.state_dict().items()}
    te = {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}
    return cl, te


def build_flux(root: Path) -> Path:
    from diffusers import FluxPipeline
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    models = root / "models"
    for sub in ("diffusion_models", "unet", "vae", "clip", "checkpoints"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    tok = clip_tokenizer(models / "clip" / "clip_l")
    tok_2 = t5_tokenizer(models / "clip" / "t5xxl_fp16")
    half = lambda sd: {k: v.half().contiguous() for k, v in sd.items()}  # noqa: E731
    dev, vae, clip, t5 = parts(True)
    # One VAE and pair of text encoders for both, as FLUX.1 dev and schnell share theirs.
    for transformer, name in ((dev, "dev"), (parts(False)[0], "schnell")):
        guidance = name == "dev"
        FluxPipeline(scheduler=scheduler("flux", name), vae=vae, text_encoder=clip, tokenizer=copy.deepcopy(tok),
                     text_encoder_2=t5, tokenizer_2=copy.deepcopy(tok_2), transformer=transformer).save_pretrained(
            str(root / ("diffusers" if guidance else "diffusers_schnell")), safe_serialization=True)
        bfl = bfl_transformer(transformer.state_dict())
        folder = "diffusion_models" if guidance else "unet"
        save_file(half(bfl), str(models / folder / f"flux1-{name}-tiny.safetensors"))
    ldm_vae = sd_ldm_vae(vae.state_dict(), 4)
    save_file(half(ldm_vae), str(models / "vae" / "ae.safetensors"))
    cl, te = _text_files(clip, t5)
    save_file(half(cl), str(models / "clip" / "clip_l.safetensors"))
    save_file(half(te), str(models / "clip" / "t5xxl_fp16.safetensors"))
    aio = {f"model.diffusion_model.{k}": v for k, v in bfl_transformer(dev.state_dict()).items()}
    aio.update({f"vae.{k}": v for k, v in ldm_vae.items()})
    aio.update({f"text_encoders.clip_l.transformer.{k}": v for k, v in cl.items()})
    aio.update({f"text_encoders.t5xxl.transformer.{k}": v for k, v in te.items()})
    save_file(half(aio), str(models / "checkpoints" / "flux1-dev-tiny-aio.safetensors"))
    tok.save_pretrained(str(models / "checkpoints" / "flux1-dev-tiny-aio" / "tokenizer"))
    tok_2.save_pretrained(str(models / "checkpoints" / "flux1-dev-tiny-aio" / "tokenizer_2"))
    return root


def flux_controlnet(union: bool, seed: int):
    """A tiny InstantX-layout FLUX.1 ControlNet (diffusers' FluxControlNetModel) beside parts()' dev transformer: one
    double and one single block (so each output steers two of the transformer's), a union one with InstantX's 10 mode
    rows. Its zero-initialised outputs are drawn at random, or it would not steer at all."""
    from diffusers import FluxControlNetModel
    _seed(seed)
    net = FluxControlNetModel(in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=HEAD,
                              num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=64,
                              guidance_embeds=True, axes_dims_rope=AXES, num_mode=10 if union else None)
    with torch.no_grad():
        for m in (*net.controlnet_blocks, *net.controlnet_single_blocks, net.controlnet_x_embedder):
            m.weight.normal_(0, 0.2)
            m.bias.normal_(0, 0.2)
    return net.half().float()


def pixel_controlnet(mistoline: bool, seed: int):
    """A tiny XLabs (flux-canny-controlnet-v3) or MistoLine (mistoline_flux.dev) FLUX.1 ControlNet: (the diffusers
    module that computes it, its file's tensors). XLabs' is the FluxControlNetModel diffusers builds for XLabs' nets
    (input_hint_block: eight 16-wide convs, 2x2 patches of 16 channels into controlnet_x_embedder), two double blocks
    and no single ones, as x-flux's ControlNetFlux. MistoLine's has one double and one single block, and its parts are
    swapped here for ComfyUI's MistolineCondDownsamplBlock (ten convs, the second and ninth 1x1) and
    MistolineControlnetBlock (linear, then SiLU). The file is written in the authors' names: Black Forest Labs' for the
    blocks (bfl_transformer), pos_embed_input, input_hint_block.0..14 / input_cond_block.encoder.0..18,
    controlnet_blocks.N(.linear), MistoLine's single_controlnet_blocks.N.linear."""
    from diffusers import FluxControlNetModel
    from torch import nn
    _seed(seed)
    net = FluxControlNetModel(in_channels=64, num_layers=1 if mistoline else 2, num_single_layers=int(mistoline),
                              attention_head_dim=HEAD, num_attention_heads=2, joint_attention_dim=32,
                              pooled_projection_dim=64, guidance_embeds=True, axes_dims_rope=AXES,
                              conditioning_embedding_channels=16, patch_size=2)
    width = 2 * HEAD
    if mistoline:
        net.input_hint_block = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 16, 1), nn.SiLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.SiLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.SiLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.SiLU(),
            nn.Conv2d(16, 16, 1), nn.SiLU(), nn.Conv2d(16, 16, 3, padding=1))
        net.controlnet_blocks = nn.ModuleList([nn.Sequential(nn.Linear(width, width), nn.SiLU())])
        net.controlnet_single_blocks = nn.ModuleList([nn.Sequential(nn.Linear(width, width), nn.SiLU())])
    with torch.no_grad():       # zero-initialised in training: drawn, or the net would not steer
        for p in (*net.controlnet_blocks.parameters(), *net.controlnet_single_blocks.parameters(),
                  *net.controlnet_x_embedder.parameters(), *net.input_hint_block.parameters()):
            p.normal_(0, 0.2)
    net = net.half().float()
    sd = net.state_dict()
    own = ("x_embedder.", "context_embedder.", "time_text_embed.", "transformer_blocks.", "single_transformer_blocks.")
    out = bfl_transformer({k: v for k, v in sd.items() if k.startswith(own)})
    hint = ["conv_in"] + [f"blocks.{i}" for i in range(6)] + ["conv_out"]
    for k, v in sd.items():
        if k.startswith(own):
            continue
        if k.startswith("controlnet_x_embedder."):
            k = k.replace("controlnet_x_embedder.", "pos_embed_input.")
        elif k.startswith("input_hint_block.") and mistoline:
            k = k.replace("input_hint_block.", "input_cond_block.encoder.")
        elif k.startswith("input_hint_block."):
            part, kind = k[len("input_hint_block."):].rsplit(".", 1)
            k = f"input_hint_block.{2 * hint.index(part)}.{kind}"
        elif mistoline:      # controlnet_blocks.N.0 -> .linear; MistoLine names its single outputs the other way round
            k = re.sub(r"^controlnet_(single_)?blocks\.(\d+)\.0\.", r"\1controlnet_blocks.\2.linear.", k)
        out[k] = v
    assert sum(v.numel() for v in out.values()) == sum(v.numel() for v in sd.values()), "a tensor was left out"
    return net, out


def inpaint_controlnet(seed: int):
    """A tiny alimama FLUX.1-dev-Controlnet-Inpainting-Alpha / -Beta: InstantX's layout in diffusers' names whose
    controlnet_x_embedder reads 68 channels per patch (2x2 patches of the masked picture's 16 latent channels and the
    kept region's 1), as ComfyUI's concat_mask nets. Built as AliMamaReference, which FluxControlNetPipeline runs as
    ComfyUI's ControlNet does: its `keep` tokens (the inverted mask at the latent's size, packed [1, L, 4]) set before
    sampling are put beside each patch's latent channels."""
    from diffusers import FluxControlNetModel

    class AliMamaReference(FluxControlNetModel):
        keep = None

        def forward(self, *args, controlnet_cond=None, **kwargs):
            n, tokens, _ = controlnet_cond.shape
            both = torch.cat([controlnet_cond.view(n, tokens, 16, 4),
                              self.keep.expand(n, -1, -1).view(n, tokens, 1, 4).to(controlnet_cond)], dim=2)
            return super().forward(*args, controlnet_cond=both.view(n, tokens, 68), **kwargs)

    _seed(seed)
    net = AliMamaReference(in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=HEAD,
                           num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=64, guidance_embeds=True,
                           axes_dims_rope=AXES)
    net.controlnet_x_embedder = torch.nn.Linear(68, 2 * HEAD)
    with torch.no_grad():
        for m in (*net.controlnet_blocks, *net.controlnet_single_blocks, net.controlnet_x_embedder):
            m.weight.normal_(0, 0.2)
            m.bias.normal_(0, 0.2)
    return net.half().float()
