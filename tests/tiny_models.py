"""Build tiny random-weight models of every supported family in their real on-disk layout.

    python tests/tiny_models.py DIR

writes DIR/<family>/ folders (diffusers layout, safetensors) that load through exactly the
code a user's real checkpoint goes through, plus a motion LoRA, an image LoRA and a
ControlNet for AnimateDiff. Tokenizers are built offline: a byte-level CLIP BPE with no
merges, and character-level Unigram (T5) / byte-level BPE (Llama) tokenizer.json files.
Weights are random and seeded, so outputs are noise, but every shape, config and file is real."""
from __future__ import annotations

import json
import string
import sys
from pathlib import Path

FAMILIES = ("animatediff", "svd", "wan", "wan_i2v", "ltx", "cogvideox", "hunyuan", "mini")


def _seed(n: int = 0) -> None:
    import torch
    torch.manual_seed(n)


def _bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_tokenizer(folder: Path):
    """A byte-level CLIP tokenizer: every byte is a token (with and without </w>), no merges."""
    from transformers import CLIPTokenizer
    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)
    tok.save_pretrained(str(folder))
    return tok


def t5_tokenizer(folder: Path):
    """A character-level Unigram tokenizer in T5's format (metaspace, </s> appended)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import AutoTokenizer
    folder.mkdir(parents=True, exist_ok=True)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in string.printable if not c.isspace()]
    pieces += [("▁" + c, -2.5) for c in string.ascii_letters + string.digits]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
         "model_max_length": 512, "extra_ids": 0}))
    return AutoTokenizer.from_pretrained(str(folder))


def llama_tokenizer(folder: Path):
    """A byte-level BPE tokenizer in Llama's format (<s> prepended)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import AutoTokenizer
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for c in _bytes_to_unicode():
        vocab[c] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
         "unk_token": "<unk>", "pad_token": "</s>", "model_max_length": 4096}))
    return AutoTokenizer.from_pretrained(str(folder))


def clip_text_encoder(hidden: int = 8, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    cfg = CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=hidden,
                         intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2,
                         vocab_size=1000, projection_dim=hidden)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def t5_encoder(d_model: int = 32, umt5: bool = False):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel
    kw = dict(vocab_size=200, d_model=d_model, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
              relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return UMT5EncoderModel(UMT5Config(**kw)) if umt5 else T5EncoderModel(T5Config(**kw))


def clip_vision(hidden: int = 32, projection: bool = True, image_size: int = 32):
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection
    cfg = CLIPVisionConfig(hidden_size=hidden, projection_dim=hidden, num_hidden_layers=2, num_attention_heads=4,
                           image_size=image_size, intermediate_size=37, patch_size=image_size // 8)
    return (CLIPVisionModelWithProjection if projection else CLIPVisionModel)(cfg)


def clip_image_processor():
    from transformers import CLIPImageProcessor
    return CLIPImageProcessor(crop_size=32, size=32)


def sd_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL(block_out_channels=(8, 8, 8, 8), in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                         latent_channels=4, norm_num_groups=2, layers_per_block=1)


def sd_unet_config():
    return dict(block_out_channels=(8, 8), layers_per_block=2, sample_size=8, in_channels=4, out_channels=4,
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8, norm_num_groups=2,
                attention_head_dim=2)


def build_animatediff(root: Path) -> None:
    """SD 1.5 layout (+ motion_adapter/, a motion LoRA, an image LoRA and a ControlNet beside it)."""
    from diffusers import (ControlNetModel, DDIMScheduler, MotionAdapter, StableDiffusionPipeline,
                           UNet2DConditionModel)
    _seed(0)
    unet = UNet2DConditionModel(**sd_unet_config())
    pipe = StableDiffusionPipeline(
        vae=sd_vae(), text_encoder=clip_text_encoder(), tokenizer=clip_tokenizer(root / "_tok"), unet=unet,
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
                                set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(root), safe_serialization=True)
    _rm(root / "_tok")
    _seed(1)
    adapter = MotionAdapter(block_out_channels=(8, 8), motion_layers_per_block=2, motion_norm_num_groups=2,
                            motion_num_attention_heads=4)
    adapter.save_pretrained(str(root / "motion_adapter"), safe_serialization=True)
    _seed(2)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 8, 8))
    # A fresh ControlNet's output convolutions are zero (no effect until trained): make them random.
    import torch
    for m in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
              controlnet.controlnet_cond_embedding.conv_out]:
        torch.nn.init.normal_(m.weight, std=0.3)
    controlnet.save_pretrained(str(root.parent / "controlnet"), safe_serialization=True)
    _save_lora(unet, root.parent / "loras" / "tiny_image_lora.safetensors", ["to_q", "to_k", "to_v", "to_out.0"],
               seed=3)
    from diffusers import UNetMotionModel
    motion_unet = UNetMotionModel.from_unet2d(unet, adapter)
    _save_lora(motion_unet, root.parent / "loras" / "tiny_motion_lora.safetensors",
               [n for n, _ in motion_unet.named_modules() if "motion_modules" in n and n.endswith(("to_q", "to_v"))],
               seed=4)


def _save_lora(unet, path: Path, targets, seed: int) -> None:
    """A LoRA in the diffusers/PEFT file format (`unet.<module>.lora_A.weight`), random non-zero weights."""
    import torch
    from safetensors.torch import save_file
    _seed(seed)
    rank = 2
    state = {}
    modules = dict(unet.named_modules())
    names = [n for n, m in modules.items() if isinstance(m, torch.nn.Linear)
             and any(n == t or n.endswith("." + t) for t in targets)]
    for n in names:
        m = modules[n]
        state[f"unet.{n}.lora_A.weight"] = torch.randn(rank, m.in_features) * 0.5
        state[f"unet.{n}.lora_B.weight"] = torch.randn(m.out_features, rank) * 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))


def build_svd(root: Path) -> None:
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline,
                           UNetSpatioTemporalConditionModel)
    _seed(0)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=8, projection_class_embeddings_input_dim=96, addition_time_embed_dim=32)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3,
                                       down_block_types=["DownEncoderBlock2D"] * 4, latent_channels=4,
                                       layers_per_block=1)
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   interpolation_type="linear", prediction_type="v_prediction",
                                   sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
                                   timestep_type="continuous", use_karras_sigmas=True)
    # SVD resizes the conditioning image to 224x224 itself, whatever the encoder's config says.
    StableVideoDiffusionPipeline(vae=vae, image_encoder=clip_vision(32, image_size=224), unet=unet, scheduler=sched,
                                 feature_extractor=clip_image_processor()).save_pretrained(
        str(root), safe_serialization=True)


def wan_vae():
    from diffusers import AutoencoderKLWan
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def wan_scheduler():
    from diffusers import UniPCMultistepScheduler
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0,
                                   num_train_timesteps=1000)


def build_wan(root: Path) -> None:
    from diffusers import WanPipeline, WanTransformer3DModel
    _seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    WanPipeline(tokenizer=t5_tokenizer(root / "_tok"), text_encoder=t5_encoder(32, umt5=True), vae=wan_vae(),
                scheduler=wan_scheduler(), transformer=transformer).save_pretrained(str(root), safe_serialization=True)
    _rm(root / "_tok")


def build_wan_i2v(root: Path) -> None:
    """Wan 2.1 image-to-video (also first/last frame): 16 noise + 4 mask + 16 image channels, CLIP image tokens."""
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel
    _seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=32)
    WanImageToVideoPipeline(tokenizer=t5_tokenizer(root / "_tok"), text_encoder=t5_encoder(32, umt5=True),
                            vae=wan_vae(), scheduler=wan_scheduler(), transformer=transformer,
                            image_encoder=clip_vision(32, projection=False),
                            image_processor=clip_image_processor()).save_pretrained(str(root),
                                                                                     safe_serialization=True)
    _rm(root / "_tok")


def build_ltx(root: Path) -> None:
    from diffusers import (AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline,
                           LTXVideoTransformer3DModel)
    _seed(0)
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=1, caption_channels=32)
    vae = AutoencoderKLLTXVideo(in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
                                decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
                                decoder_layers_per_block=(1, 1, 1, 1, 1),
                                spatio_temporal_scaling=(True, True, True, False),
                                decoder_spatio_temporal_scaling=(True, True, True, False),
                                decoder_inject_noise=(False, False, False, False, False),
                                upsample_residual=(False, False, False, False), upsample_factor=(1, 1, 1, 1),
                                timestep_conditioning=False, patch_size=4, patch_size_t=1,
                                encoder_causal=True, decoder_causal=False)
    sched = FlowMatchEulerDiscreteScheduler(base_image_seq_len=1024, base_shift=0.95, max_image_seq_len=4096,
                                            max_shift=2.05, shift=1.0, shift_terminal=0.1,
                                            use_dynamic_shifting=True)
    LTXPipeline(scheduler=sched, vae=vae, text_encoder=t5_encoder(32), tokenizer=t5_tokenizer(root / "_tok"),
                transformer=transformer).save_pretrained(str(root), safe_serialization=True)
    _rm(root / "_tok")


def build_cogvideox(root: Path) -> None:
    from diffusers import (AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline,
                           CogVideoXTransformer3DModel)
    _seed(0)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=2,
        text_embed_dim=32, num_layers=1, sample_width=8, sample_height=8, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=226)
    vae = AutoencoderKLCogVideoX(in_channels=3, out_channels=3,
                                 down_block_types=("CogVideoXDownBlock3D",) * 4,
                                 up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
                                 latent_channels=4, layers_per_block=1, norm_num_groups=2,
                                 temporal_compression_ratio=4)
    sched = CogVideoXDDIMScheduler(beta_end=0.012, beta_schedule="scaled_linear", beta_start=0.00085,
                                   clip_sample=False, num_train_timesteps=1000, prediction_type="v_prediction",
                                   rescale_betas_zero_snr=True, set_alpha_to_one=True, snr_shift_scale=3.0,
                                   steps_offset=0, timestep_spacing="trailing")
    CogVideoXPipeline(tokenizer=t5_tokenizer(root / "_tok"), text_encoder=t5_encoder(32), vae=vae,
                      transformer=transformer, scheduler=sched).save_pretrained(str(root), safe_serialization=True)
    _rm(root / "_tok")


def build_hunyuan(root: Path) -> None:
    from diffusers import (AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoPipeline,
                           HunyuanVideoTransformer3DModel)
    from transformers import LlamaConfig, LlamaModel
    _seed(0)
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, patch_size=1, patch_size_t=1, guidance_embeds=True,
        text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 4, 4))
    vae = AutoencoderKLHunyuanVideo(in_channels=3, out_channels=3, latent_channels=4,
                                    down_block_types=("HunyuanVideoDownBlock3D",) * 4,
                                    up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
                                    layers_per_block=1, act_fn="silu", norm_num_groups=4, scaling_factor=0.476986,
                                    spatial_compression_ratio=8, temporal_compression_ratio=4,
                                    mid_block_add_attention=True)
    llama = LlamaModel(LlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=37, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                                   bos_token_id=1, eos_token_id=2, pad_token_id=2))
    HunyuanVideoPipeline(text_encoder=llama, tokenizer=llama_tokenizer(root / "_tok"), transformer=transformer,
                         vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                         text_encoder_2=clip_text_encoder(8), tokenizer_2=clip_tokenizer(root / "_tok2")
                         ).save_pretrained(str(root), safe_serialization=True)
    _rm(root / "_tok")
    _rm(root / "_tok2")


def build_mini(root: Path) -> None:
    """kinograph-mini's layout (transformer/ + text_encoder/, no VAE) with a narrow random network."""
    from nodes.mini.model import KinographMini
    from nodes.mini.text import MiniTextEncoder
    _seed(0)
    KinographMini(channels=(8, 16, 16), text_dim=16, cond_dim=16, heads=2).save_pretrained(
        str(root / "transformer"), safe_serialization=True)
    MiniTextEncoder(dim=16, layers=1, heads=2).save_pretrained(str(root / "text_encoder"), safe_serialization=True)


def _rm(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


BUILDERS = {"animatediff": build_animatediff, "svd": build_svd, "wan": build_wan, "wan_i2v": build_wan_i2v,
            "ltx": build_ltx, "cogvideox": build_cogvideox, "hunyuan": build_hunyuan, "mini": build_mini}


def build_all(root, families=FAMILIES) -> Path:
    root = Path(root)
    for fam in families:
        target = root / fam
        if not any(target.glob("*/config.json")):
            target.mkdir(parents=True, exist_ok=True)
            BUILDERS[fam](target)
    return root


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python tests/tiny_models.py DIR [family ...]")
    out = build_all(sys.argv[1], tuple(sys.argv[2:]) or FAMILIES)
    print(f"tiny models written to {out}")
