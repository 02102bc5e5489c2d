"""A tiny random-weight HiDream-I1 as ComfyUI users hold it (Comfy-Org/HiDream-I1_ComfyUI's split_files), and the same
weights in diffusers' HiDreamImagePipeline (the reference, built in memory from the modules, not from the files):

  root/models/diffusion_models/hidream_i1_tiny.safetensors   HiDream's names (which are diffusers'), fp16 values
  root/models/text_encoders/clip_l_hidream.safetensors, clip_g_hidream.safetensors   long CLIPs with projections
  root/models/text_encoders/t5xxl_tiny.safetensors, llama_3.1_8b_tiny.safetensors   (tokenizers in folders after them)
  root/models/vae/ae.safetensors                              FLUX.1's VAE in the LDM names (tests/tiny_flux.py's)

The CLIPs have the released widths (768 and 1280, 64-wide heads, as ComfyUI's folders tell them apart) at two layers and
248 positions (HiDream's long CLIPs: the pipeline pads them to 128 tokens); T5 and Llama are 128 wide (both 4096 in the
released model), Llama with 4 layers for the transformer's 1 double + 2 single blocks (the released model's blocks read
layers 0..31, the last ones layer 31). The transformer's heads are the released 128 wide, rotary axes 64/32/32."""
from __future__ import annotations

import copy
from pathlib import Path

from tiny_flux import parts as flux_parts
from tiny_models import _seed, clip_text_encoder, clip_tokenizer, llama_tokenizer, sd_ldm_vae, t5_encoder, t5_tokenizer

TEXT = 128                  # T5's and Llama's width here (the converter reads Llama's heads as 128 wide)


def transformer():
    from diffusers import HiDreamImageTransformer2DModel
    _seed(5)
    model = HiDreamImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=16, num_layers=1, num_single_layers=2, attention_head_dim=128,
        num_attention_heads=2, caption_channels=[TEXT, TEXT], text_emb_dim=768 + 1280, num_routed_experts=4,
        num_activated_experts=2, axes_dims_rope=(64, 32, 32), max_resolution=(128, 128), llama_layers=[0, 1, 2])
    return model.half().float().eval()


def encoders():
    from transformers import LlamaConfig, LlamaModel
    _seed(6)
    clips = []
    for width, act in ((768, "quick_gelu"), (1280, "gelu")):
        c = clip_text_encoder(width, projection=True)
        c.config.num_attention_heads, c.config.hidden_act, c.config.max_position_embeddings = width // 64, act, 248
        clips.append(type(c)(c.config))
    t5 = t5_encoder(TEXT)
    llama = LlamaModel(LlamaConfig(vocab_size=300, hidden_size=TEXT, intermediate_size=37, num_hidden_layers=4,
                                   num_attention_heads=1, num_key_value_heads=1, head_dim=128,
                                   max_position_embeddings=1024, rope_theta=500000.0, rms_norm_eps=1e-5,
                                   bos_token_id=1, eos_token_id=2, pad_token_id=2))
    return [m.half().float().eval() for m in (*clips, t5, llama)]


def build_hidream(root: Path) -> Path:
    from safetensors.torch import save_file
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    te = models / "text_encoders"
    clip_tokenizer(te / "clip_l_hidream")
    t5_tokenizer(te / "t5xxl_tiny")
    llama_tokenizer(te / "llama_3.1_8b_tiny")
    _, vae, _, _ = flux_parts(True)
    half = lambda sd: {k: v.half().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(half(transformer().state_dict()), str(models / "diffusion_models" / "hidream_i1_tiny.safetensors"))
    save_file(half(sd_ldm_vae(vae.state_dict(), 4)), str(models / "vae" / "ae.safetensors"))
    clip_l, clip_g, t5, llama = encoders()

    def clip(m):
        return {("text_model." + k if not k.startswith(("text_model.", "text_projection.")) else k): v
                for k, v in m.state_dict().items()}
    for name, state in (("clip_l_hidream", clip(clip_l)), ("clip_g_hidream", clip(clip_g)),
                        ("t5xxl_tiny", {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}),
                        ("llama_3.1_8b_tiny", {"model." + k: v for k, v in llama.state_dict().items()})):
        save_file(half(state), str(te / f"{name}.safetensors"))
    return root


def reference(root: Path, shift: float = 3.0):
    """diffusers' HiDreamImagePipeline on the same weights, assembled from the modules and tokenizers (not the files);
    its scheduler shifts by `shift` (1: levels given as sigmas are taken as they are)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, HiDreamImagePipeline
    from transformers import AutoTokenizer, CLIPTokenizer
    te = root / "models" / "text_encoders"
    tok = CLIPTokenizer.from_pretrained(str(te / "clip_l_hidream"))
    tok_2 = copy.deepcopy(tok)
    tok_2.pad_token = "!"           # OpenCLIP-G pads with "!", as SD3's and ComfyUI's tokenizer_2
    clip_l, clip_g, t5, llama = encoders()
    _, vae, _, _ = flux_parts(True)
    return HiDreamImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=shift), vae=vae, text_encoder=clip_l, tokenizer=tok,
        text_encoder_2=clip_g, tokenizer_2=tok_2, text_encoder_3=t5,
        tokenizer_3=AutoTokenizer.from_pretrained(str(te / "t5xxl_tiny")), text_encoder_4=llama,
        tokenizer_4=AutoTokenizer.from_pretrained(str(te / "llama_3.1_8b_tiny")), transformer=transformer())
