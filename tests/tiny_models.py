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
from typing import Optional

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
    from diffusers import (DDIMScheduler, MotionAdapter, StableDiffusionPipeline,
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
    random_controlnet(unet, (8, 8, 8, 8)).save_pretrained(str(root.parent / "controlnet"), safe_serialization=True)
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
    """Remove a scratch tokenizer folder (`_tok*`) that a builder above made inside its own new model folder."""
    import shutil
    if not path.name.startswith("_tok"):
        raise ValueError(f"refusing to delete {path}: only the builders' own _tok scratch folders are removed")
    shutil.rmtree(path, ignore_errors=True)


BUILDERS = {"animatediff": build_animatediff, "svd": build_svd, "wan": build_wan, "wan_i2v": build_wan_i2v,
            "ltx": build_ltx, "cogvideox": build_cogvideox, "hunyuan": build_hunyuan, "mini": build_mini}


def build_depth_anything(folder: Path) -> Path:
    """A Depth Anything model as its Hugging Face folder holds it (config.json, model.safetensors,
    preprocessor_config.json), with a DINOv2 backbone of 4 layers at 32 wide: 0.6 MB."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor
    _seed(0)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            patch_size=14, image_size=56, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="relative",
                                 initializer_range=0.2)
    model = DepthAnythingForDepthEstimation(config)
    # Random weights end in a ReLU that clips most smooth pictures to 0; a bias keeps their variation in the map.
    model.head.conv3.bias.data.fill_(1.0)
    model.save_pretrained(str(folder))
    # Depth Anything's own preprocessing, at a tiny size: the short side to 56, a multiple of 14.
    DPTImageProcessor(do_resize=True, size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      resample=3, do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                      image_std=[0.229, 0.224, 0.225]).save_pretrained(str(folder))
    return folder


def build_sam3_video(folder: Path) -> Path:
    """A SAM 3 video model a few channels wide (the tracker's 128: its object pointers split into 64-wide
    memory tokens), 2 queries, thresholds at 0 so random weights find objects, and a 2-frame hot start (SAM 3's
    is 15) so that its holding back of frames is exercised within a short clip."""
    import torch
    from transformers import Sam3VideoConfig, Sam3VideoModel
    vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2, image_size=56, patch_size=14, window_size=2, global_attn_indexes=[1],
               pretrain_image_size=28)
    vision = dict(model_type="sam3_vision_model", backbone_config=vit, fpn_hidden_size=128,
                  backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]])
    small = dict(hidden_size=128, num_layers=1, num_attention_heads=2, intermediate_size=64)
    detector = dict(vision_config=vision, text_config=dict(vocab_size=600, hidden_size=128, intermediate_size=64,
                                                           projection_dim=32, num_hidden_layers=1,
                                                           num_attention_heads=2, max_position_embeddings=32),
                    geometry_encoder_config=small, detr_encoder_config=small,
                    detr_decoder_config=dict(small, num_queries=2),
                    mask_decoder_config=dict(hidden_size=128, num_attention_heads=2))
    tracker = dict(vision_config=vision, image_size=56, prompt_encoder_config=dict(hidden_size=128, image_size=56,
                                                                                   patch_size=14),
                   mask_decoder_config=dict(hidden_size=128, mlp_dim=64, num_attention_heads=2,
                                            iou_head_hidden_dim=32),
                   memory_attention_hidden_size=128, memory_attention_num_layers=1,
                   memory_attention_feed_forward_hidden_size=64, memory_encoder_hidden_size=128,
                   mask_downsampler_embed_dim=128, memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=64,
                   memory_attention_rope_feat_sizes=[4, 4])
    config = Sam3VideoConfig(detector_config=detector, tracker_config=tracker, low_res_mask_size=16,
                             score_threshold_detection=0.0, new_det_thresh=0.0, hotstart_delay=2,
                             hotstart_unmatch_thresh=2, hotstart_dup_thresh=2)
    torch.manual_seed(0)
    Sam3VideoModel(config).save_pretrained(folder)
    clip_tokenizer(folder)
    return folder


def build_sam2_video(folder: Path) -> Path:
    """A SAM 2 video model a few channels wide (Hiera of 5 blocks in 4 stages, the global one not where a stage
    pools; the tracker 128 wide as SAM 3's) for 64 px pictures, with the preprocessing file its folder carries."""
    import torch
    from transformers import Sam2VideoConfig, Sam2VideoModel
    hiera = dict(model_type="sam2_hiera_det_model", hidden_size=16, num_attention_heads=1, image_size=[64, 64],
                 patch_kernel_size=[7, 7], patch_stride=[4, 4], patch_padding=[3, 3], query_stride=[2, 2],
                 window_positional_embedding_background_size=[2, 2], blocks_per_stage=[1, 1, 2, 1],
                 embed_dim_per_stage=[16, 32, 64, 128], num_attention_heads_per_stage=[1, 1, 1, 1],
                 window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3])
    vision = dict(model_type="sam2_vision_model", backbone_config=hiera, backbone_channel_list=[128, 64, 32, 16],
                  backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]], fpn_hidden_size=128)
    config = Sam2VideoConfig(vision_config=vision, image_size=64,
                             prompt_encoder_config=dict(hidden_size=128, image_size=64, patch_size=16),
                             mask_decoder_config=dict(hidden_size=128, mlp_dim=64, num_attention_heads=2,
                                                      iou_head_hidden_dim=32),
                             memory_attention_hidden_size=128, memory_attention_num_layers=1,
                             memory_attention_feed_forward_hidden_size=64, memory_encoder_hidden_size=128,
                             mask_downsampler_embed_dim=128, memory_fuser_embed_dim=128,
                             memory_fuser_intermediate_dim=64, memory_attention_rope_feat_sizes=[4, 4])
    torch.manual_seed(0)
    Sam2VideoModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Sam2ImageProcessorFast", "size": {"height": 64, "width": 64},
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}))
    return folder


def build_all(root, families=FAMILIES) -> Path:
    root = Path(root)
    for fam in families:
        target = root / fam
        if not any(target.glob("*/config.json")):
            target.mkdir(parents=True, exist_ok=True)
            BUILDERS[fam](target)
    return root


# -- ComfyUI single-file layouts (issue 24: model files as users have them) --------------------
# The same tiny model saved twice: as a diffusers folder, and as the split files ComfyUI users
# download (original key names, built by inverting diffusers' own converters and checked by
# running those converters forward), so a test can load both and compare outputs.
def _inverse_check(original: dict, converted: dict, forward) -> dict:
    """`original` if diffusers' forward converter turns it back into `converted` exactly."""
    back = forward(dict(original))
    assert set(back) == set(converted), (sorted(set(back) ^ set(converted)))[:6]
    return original


def wan_original_transformer(diffusers_sd: dict) -> dict:
    """Wan's original (ComfyUI diffusion_models/) key names from a diffusers WanTransformer3DModel state dict."""
    import re
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    renames = [("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
               ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
               ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
               ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
               ("condition_embedder.time_proj", "time_projection.1"),
               ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
               ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
               ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
               ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
               ("attn2", "cross_attn"), ("attn1", "self_attn"), (".to_out.0.", ".o."), (".to_q.", ".q."),
               (".to_k.", ".k."), (".to_v.", ".v."), (".add_k_proj.", ".k_img."), (".add_v_proj.", ".v_img."),
               (".norm_added_k.", ".norm_k_img."), ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
               ("proj_out", "head.head")]
    out = {}
    for k, v in diffusers_sd.items():
        n = k
        if n.startswith("vace_blocks."):          # VACE: before_proj/after_proj, not the head's proj_out
            n = n.replace(".proj_in.", ".before_proj.").replace(".proj_out.", ".after_proj.")
        for a, b in renames:
            n = n.replace(a, b)
        n = re.sub(r"^scale_shift_table$", "head.modulation", n)
        n = re.sub(r"^((?:vace_)?blocks\.\d+)\.scale_shift_table$", r"\1.modulation", n)
        n = re.sub(r"\.norm([23])\.", lambda m: ".norm%d." % (5 - int(m.group(1))), n)
        out[n] = v
    return _inverse_check(out, diffusers_sd, convert_wan_transformer_to_diffusers)


def wan_original_vae(diffusers_sd: dict) -> dict:
    """The original Wan 2.1 VAE key names (ComfyUI's vae/wan_2.1_vae.safetensors) of a diffusers AutoencoderKLWan
    with num_res_blocks=2, as diffusers' converter expects."""
    import re
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
    res = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma",
           "conv2": "residual.6", "conv_shortcut": "shortcut"}

    def resnet(tail: str) -> str:
        for a, b in res.items():
            if tail.startswith(a + ".") or tail == a:
                return b + tail[len(a):]
        return tail
    out = {}
    for k, v in diffusers_sd.items():
        n = k
        m = re.match(r"^(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.*)$", k)
        if m:
            n = f"{m.group(1)}.middle.{2 * int(m.group(2))}.{resnet(m.group(3))}"
        elif re.match(r"^(encoder|decoder)\.mid_block\.attentions\.0\.", k):
            n = re.sub(r"mid_block\.attentions\.0\.", "middle.1.", k)
        elif re.match(r"^(encoder|decoder)\.norm_out\.gamma$", k):
            n = k.replace("norm_out", "head.0")
        elif re.match(r"^(encoder|decoder)\.conv_out\.", k):
            n = k.replace("conv_out", "head.2")
        elif re.match(r"^(encoder|decoder)\.conv_in\.", k):
            n = k.replace("conv_in", "conv1")
        elif k.startswith("quant_conv."):
            n = k.replace("quant_conv", "conv1")
        elif k.startswith("post_quant_conv."):
            n = k.replace("post_quant_conv", "conv2")
        elif k.startswith("encoder.down_blocks."):
            idx, tail = re.match(r"^encoder\.down_blocks\.(\d+)\.(.*)$", k).groups()
            n = f"encoder.downsamples.{idx}.{resnet(tail)}"
        elif k.startswith("decoder.up_blocks."):
            m = re.match(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$", k)
            if m:
                b, r, tail = int(m.group(1)), int(m.group(2)), m.group(3)
                if tail.startswith("conv_shortcut"):
                    n = f"decoder.upsamples.{4 * b + r}.shortcut{tail[len('conv_shortcut'):]}"
                else:
                    n = f"decoder.upsamples.{4 * b + r}.{resnet(tail)}"
            else:
                b, tail = re.match(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)$", k).groups()
                n = f"decoder.upsamples.{4 * int(b) + 3}.{tail}"
        out[n] = v
    return _inverse_check(out, diffusers_sd, convert_wan_vae_to_diffusers)


def to_fp8_scaled(state: dict) -> dict:
    """ComfyUI's fp8_scaled format: each matrix stored as fp8(weight / scale) beside its `scale_weight`."""
    import torch
    out = {"scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}
    for k, v in state.items():
        if k.endswith(".weight") and v.ndim == 2:
            scale = (v.abs().max().float() / 448.0).clamp(min=1e-12)
            out[k] = (v.float() / scale).to(torch.float8_e4m3fn)
            out[k[: -len(".weight")] + ".scale_weight"] = scale.reshape(1)
        else:
            out[k] = v
    return out


def to_gguf(state: dict, path: Path, arch: str = "wan", meta: Optional[dict] = None) -> None:
    """A GGUF file as ComfyUI-GGUF writes one: 2-D matrices quantised Q8_0 where their width allows,
    the rest F16/F32, shapes over 4-D flattened with the true shape in `comfy.gguf.orig_shape.<name>`. `meta`: more
    keys, name -> (the writer's kind: string, uint32, array ..., value)."""
    import gguf
    import numpy as np
    w = gguf.GGUFWriter(str(path), arch)
    for k, (kind, value) in (meta or {}).items():
        getattr(w, "add_" + kind)(k, value)
    for k, v in state.items():
        a = v.float().numpy()
        if a.ndim == 2 and a.shape[1] % 32 == 0:
            w.add_tensor(k, gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            continue
        if a.ndim > 4:
            w.add_array(f"comfy.gguf.orig_shape.{k}", list(a.shape))
            a = a.reshape(a.shape[0], -1)
        w.add_tensor(k, a.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def wan_camera_adapter(dim: int, zero: bool = False, seed: int = 1) -> dict:
    """The `control_adapter.*` tensors of a Wan 2.1 Fun camera file, in the released models' layout:
    a 2x2 stride-2 convolution over 24 Plücker channels pixel-unshuffled 8x8 (24 * 64 inputs), then one
    residual block of two 3x3 convolutions."""
    import torch
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv.weight": (dim, 24 * 64, 2, 2), "conv.bias": (dim,),
              "residual_blocks.0.conv1.weight": (dim, dim, 3, 3), "residual_blocks.0.conv1.bias": (dim,),
              "residual_blocks.0.conv2.weight": (dim, dim, 3, 3), "residual_blocks.0.conv2.bias": (dim,)}
    return {f"control_adapter.{k}": torch.zeros(v) if zero else torch.randn(v, generator=g) * 0.02
            for k, v in shapes.items()}


def build_wan_comfy(root: Path, i2v: bool = False, camera: bool = False, vace: bool = False,
                    control: bool = False) -> Path:
    """A tiny Wan (head width 128 like every real Wan) as a diffusers folder `root/diffusers/` and as
    ComfyUI's split files under `root/models/`: diffusion_models/ (fp16, fp8_scaled, GGUF),
    text_encoders/ (umt5, tokenizer folder beside it), vae/ (Wan 2.1 layout), clip_vision/ for i2v.

    camera: a Wan 2.1 Fun camera model instead (i2v with 16 noise + 16 start-frame channels), the folder
    holding its plain i2v transformer and diffusion_models/ the camera files: wan_tiny_camera_fp16 (a
    random camera encoder) and wan_tiny_camera_zero_fp16 (all-zero camera encoder).
    vace: a Wan VACE model (4 blocks, VACE hints after blocks 0 and 2), its fp16 and fp8_scaled files.
    control: a Wan 2.1 Fun Control model (i2v with 16 noise + 16 control + 16 start-frame channels), its fp16 file."""
    from safetensors.torch import save_file
    from diffusers import (AutoencoderKLWan, WanImageToVideoPipeline, WanPipeline, WanTransformer3DModel,
                           WanVACEPipeline, WanVACETransformer3DModel)
    from transformers import CLIPVisionConfig, CLIPVisionModel
    _seed(0)
    i2v = i2v or camera or control
    common = dict(patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, out_channels=16, text_dim=32,
                  freq_dim=256, ffn_dim=32, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    if vace:
        transformer = WanVACETransformer3DModel(in_channels=16, num_layers=4, vace_layers=[0, 2], vace_in_channels=96,
                                                **common)
    else:
        transformer = WanTransformer3DModel(in_channels=32 if camera else 48 if control else 36 if i2v else 16,
                                            num_layers=2,
                                            image_dim=32 if i2v else None, added_kv_proj_dim=128 if i2v else None,
                                            **common)
    vae = AutoencoderKLWan(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                           temperal_downsample=[False, True, True])
    text = t5_encoder(32, umt5=True)
    for m in (transformer, vae, text):           # fp16 values in both layouts, like the fp16 files users have
        m.half().float()
    tok_dir = root / "models" / "text_encoders" / "umt5_tiny_fp16"
    tok = t5_tokenizer(tok_dir)
    parts = dict(tokenizer=tok, text_encoder=text, vae=vae, scheduler=wan_scheduler(), transformer=transformer)
    if i2v:
        # Real CLIP ViT-H settings (16 heads, gelu) at a tiny width, as Kinograph's shipped config has them.
        vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                                  num_attention_heads=16, image_size=32, patch_size=4,
                                                  hidden_act="gelu", projection_dim=32))
        vision.half().float()
        parts.update(image_encoder=vision, image_processor=clip_image_processor())
        WanImageToVideoPipeline(**parts).save_pretrained(str(root / "diffusers"), safe_serialization=True)
    elif vace:
        WanVACEPipeline(**parts).save_pretrained(str(root / "diffusers"), safe_serialization=True)
    else:
        WanPipeline(**parts).save_pretrained(str(root / "diffusers"), safe_serialization=True)
    models = root / "models"
    for sub in ("diffusion_models", "vae", "clip_vision"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    orig = {k: v.contiguous() for k, v in wan_original_transformer(transformer.state_dict()).items()}
    if camera:
        for name, zero in (("wan_tiny_camera_fp16", False), ("wan_tiny_camera_zero_fp16", True)):
            save_file({k: v.half().contiguous() for k, v in {**orig, **wan_camera_adapter(128, zero)}.items()},
                      str(models / "diffusion_models" / f"{name}.safetensors"))
    else:
        name = "wan_tiny_vace" if vace else "wan_tiny_fun_control" if control else "wan_tiny_i2v" if i2v else \
            "wan_tiny_t2v"
        save_file({k: v.half() for k, v in orig.items()}, str(models / "diffusion_models" / f"{name}_fp16.safetensors"))
    if not (camera or control):
        save_file(to_fp8_scaled(orig), str(models / "diffusion_models" / f"{name}_fp8_scaled.safetensors"))
    if not (camera or vace or control):
        to_gguf(orig, models / "diffusion_models" / f"{name}-Q8_0.gguf")
    te = {k: v for k, v in text.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file({k: v.half().contiguous() for k, v in te.items()},
              str(models / "text_encoders" / "umt5_tiny_fp16.safetensors"))
    save_file({k: v.half().contiguous() for k, v in wan_original_vae(vae.state_dict()).items()},
              str(models / "vae" / "wan_tiny_vae.safetensors"))
    if i2v:
        save_file({("vision_model." + k if not k.startswith("vision_model.") else k): v.half().contiguous()
                   for k, v in vision.state_dict().items()}, str(models / "clip_vision" / "clip_vision_tiny.safetensors"))
    return root


def motion_lora_original(peft_state: dict) -> dict:
    """AnimateDiff's original motion LoRA layout (v2_lora_*.ckpt) of a diffusers/PEFT motion LoRA."""
    import re
    out = {}
    for k, v in peft_state.items():
        m = re.match(r"^unet\.(.*)\.(to_q|to_k|to_v|to_out\.0)\.lora_([AB])\.weight$", k)
        base = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", m.group(1))
        base = base.replace(".attn1", ".attention_blocks.0").replace(".attn2", ".attention_blocks.1")
        proj = "to_out" if m.group(2) == "to_out.0" else m.group(2)
        out[f"{base}.processor.{proj}_lora.{'down' if m.group(3) == 'A' else 'up'}.weight"] = v
    return out


def sd_ldm_unet(diffusers_sd: dict, levels: int, attn: list) -> dict:
    """The LDM (original SD) key names of a diffusers UNet2DConditionModel with layers_per_block=2."""
    import re
    from diffusers.loaders.single_file_utils import LDM_UNET_KEY, convert_ldm_unet_checkpoint
    res = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}

    def resnet(tail):
        for a, b in res:
            if tail.startswith(a + "."):
                return b + tail[len(a):]
        return tail
    out = {}
    for k, v in diffusers_sd.items():
        head, _, last = k.rpartition(".")
        if head in fixed:
            out[f"{fixed[head]}.{last}"] = v
            continue
        m = re.match(r"^(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)$", k)
        if m:
            # Down level i holds input_blocks 3i+1, 3i+2 (0 is conv_in); up level i output_blocks 3i..3i+2.
            ldm, first = ("input_blocks", 1) if m.group(1) == "down" else ("output_blocks", 0)
            i, kind, j, tail = int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
            out[f"{ldm}.{3 * i + j + first}.{0 if kind == 'resnets' else 1}."
                f"{resnet(tail) if kind == 'resnets' else tail}"] = v
            continue
        m = re.match(r"^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)$", k)
        if m:
            out[f"input_blocks.{3 * (int(m.group(1)) + 1)}.0.op.{m.group(2)}"] = v
            continue
        m = re.match(r"^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)$", k)
        if m:
            i = int(m.group(1))
            out[f"output_blocks.{3 * i + 2}.{2 if attn[levels - 1 - i] else 1}.conv.{m.group(2)}"] = v
            continue
        m = re.match(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.*)$", k)
        if m:
            kind, j, tail = m.group(1), int(m.group(2)), m.group(3)
            out[f"middle_block.{2 * j if kind == 'resnets' else 1}.{resnet(tail) if kind == 'resnets' else tail}"] = v
            continue
        raise KeyError(k)
    cfg = {"layers_per_block": 2, "down_block_types": ["x"] * levels}
    if "label_emb.0.0.weight" in out:            # SDXL's size and pooled-text embedding
        cfg["addition_embed_type"] = "text_time"
    back = convert_ldm_unet_checkpoint({LDM_UNET_KEY + k: v for k, v in out.items()}, cfg)
    assert set(back) == set(diffusers_sd), sorted(set(back) ^ set(diffusers_sd))[:6]
    return out


def sd_ldm_vae(diffusers_sd: dict, levels: int) -> dict:
    """The LDM key names of a diffusers AutoencoderKL (layers_per_block=2)."""
    import re
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    out = {}
    for k, v in diffusers_sd.items():
        n = k.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        n = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2.", n)
        n = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", n)
        n = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
                   lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}.block.{m.group(2)}.", n)
        n = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
                   lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}.upsample.", n)
        n = re.sub(r"^(encoder|decoder)\.mid_block\.resnets\.(\d)\.",
                   lambda m: f"{m.group(1)}.mid.block_{int(m.group(2)) + 1}.", n)
        m = re.match(r"^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.*)$", n)
        if m:
            part = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}[m.group(2)]
            n = f"{m.group(1)}.mid.attn_1.{part}.{m.group(3)}"
            if v.ndim == 2:                       # LDM keeps these as 1x1 convolutions
                v = v[:, :, None, None]
        out[n] = v
    cfg = {"block_out_channels": [0] * levels, "layers_per_block": 2, "down_block_types": ["x"] * levels,
           "up_block_types": ["x"] * levels}
    back = convert_ldm_vae_checkpoint(dict(out), cfg)
    assert set(back) == set(diffusers_sd), sorted(set(back) ^ set(diffusers_sd))[:6]
    return out


def build_sd15_single_file(root: Path, inpainting: bool = False) -> Path:
    """A tiny SD 1.5 (SD 1.5's own head counts, norm groups and blocks at tiny widths) as a diffusers folder
    `root/diffusers/` and as one LDM checkpoint `root/models/checkpoints/sd15_tiny.safetensors` (with its
    CLIP tokenizer in a folder named after it), both with the shipped SD 1.5 scheduler. inpainting: an inpainting
    model instead (a UNet of 9 input channels, StableDiffusionInpaintPipeline, sd15_inpainting_tiny.safetensors)."""
    from diffusers import AutoencoderKL, StableDiffusionInpaintPipeline, StableDiffusionPipeline, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel
    from nodes.generate.split import scheduler
    _seed(0)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=8,
                                in_channels=9 if inpainting else 4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=64,
                                attention_head_dim=8, norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(32, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        layers_per_block=2, norm_num_groups=32)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=64,
                                        intermediate_size=37, num_attention_heads=1, num_hidden_layers=2,
                                        vocab_size=1000, max_position_embeddings=77, hidden_act="quick_gelu"))
    for m in (unet, vae, text):
        m.half().float()
    ckpt = root / "models" / "checkpoints" / ("sd15_inpainting_tiny.safetensors" if inpainting else
                                              "sd15_tiny.safetensors")
    tok = clip_tokenizer(ckpt.parent / ckpt.stem)
    pipeline = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    pipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=scheduler("sd"), safety_checker=None,
             feature_extractor=None, requires_safety_checker=False
             ).save_pretrained(str(root / "diffusers"), safe_serialization=True)
    state = {f"model.diffusion_model.{k}": v for k, v in sd_ldm_unet(unet.state_dict(), 2, [True, False]).items()}
    state.update({f"first_stage_model.{k}": v for k, v in sd_ldm_vae(vae.state_dict(), 2).items()})
    state.update({f"cond_stage_model.transformer.text_model.{k}": v for k, v in text.state_dict().items()
                  if not k.startswith("text_model.")})
    state.update({f"cond_stage_model.transformer.{k}": v for k, v in text.state_dict().items()
                  if k.startswith("text_model.")})
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(ckpt))
    return root


def open_clip_text(diffusers_sd: dict) -> dict:
    """The OpenCLIP key names (SDXL's conditioner.embedders.1.model.*, without the prefix) of a transformers
    CLIPTextModelWithProjection: fused q/k/v in_proj, resblocks, ln_final, a [width, proj] text_projection."""
    import re
    import torch
    from types import SimpleNamespace
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    # diffusers' own table (DIFFUSERS_TO_LDM_MAPPING["openclip"]) read backwards, so the file is what it expects
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING
    fixed = {k: v for k, v in DIFFUSERS_TO_LDM_MAPPING["openclip"]["layers"].items() if k != "text_projection.weight"}
    parts = dict(zip(("self_attn.out_proj", "layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2"),
                     ("attn.out_proj", "ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj")))
    out = {}
    for k, v in diffusers_sd.items():
        if k in fixed:
            out[fixed[k]] = v
            continue
        if k == "text_projection.weight":
            out["text_projection"] = v.T.contiguous()
            continue
        m = re.match(r"^text_model\.encoder\.layers\.(\d+)\.(.*)\.(weight|bias)$", k)
        if m is None:
            raise KeyError(k)
        i, name, kind = m.groups()
        if name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
            if name == "self_attn.q_proj":
                qkv = [diffusers_sd[f"text_model.encoder.layers.{i}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
                out[f"transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat(qkv)
            continue
        out[f"transformer.resblocks.{i}.{parts[name]}.{kind}"] = v
    hidden = diffusers_sd["text_model.embeddings.token_embedding.weight"].shape[1]
    back = convert_open_clip_checkpoint(SimpleNamespace(config=SimpleNamespace(hidden_size=hidden)),
                                        {"p." + k: v for k, v in out.items()}, prefix="p.")
    assert set(back) == set(diffusers_sd), sorted(set(back) ^ set(diffusers_sd))[:6]
    assert all(v.is_meta or bool((back[k] == v).all()) for k, v in diffusers_sd.items())
    out["logit_scale"] = torch.tensor(4.6052)      # in the published files; SDXL does not read it
    return out


def sdxl_parts():
    """A tiny SDXL (SDXL's block kinds, linear projections, 64-wide heads, 1/2 transformer depths, text_time
    size embedding, CLIP-L + OpenCLIP-G text encoders with the pooled projection) at tiny widths."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    _seed(0)
    unet = UNet2DConditionModel(block_out_channels=(32, 128), layers_per_block=2, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=64,
                                attention_head_dim=(1, 2), transformer_layers_per_block=(1, 2),
                                use_linear_projection=True, addition_embed_type="text_time",
                                addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8,
                                norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(32, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        layers_per_block=2, norm_num_groups=32, scaling_factor=0.13025, force_upcast=True)
    kw = dict(hidden_size=32, intermediate_size=37, num_attention_heads=1, num_hidden_layers=3, vocab_size=1000,
              max_position_embeddings=77)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_act="quick_gelu",
                                        **kw))
    text_2 = CLIPTextModelWithProjection(CLIPTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1,
                                                        hidden_act="gelu", projection_dim=32, **kw))
    for m in (unet, vae, text, text_2):
        m.half().float()
    return unet, vae, text, text_2


def sdxl_sgm_state(unet, vae, text, text_2) -> dict:
    """One SDXL checkpoint's tensors in Stability's SGM layout (as sd_xl_base_1.0.safetensors holds them)."""
    state = {f"model.diffusion_model.{k}": v for k, v in sd_ldm_unet(unet.state_dict(), 2, [False, True]).items()}
    state.update({f"first_stage_model.{k}": v for k, v in sd_ldm_vae(vae.state_dict(), 2).items()})
    state.update({f"conditioner.embedders.0.transformer.text_model.{k}": v for k, v in text.state_dict().items()})
    state.update({f"conditioner.embedders.1.model.{k}": v for k, v in open_clip_text(text_2.state_dict()).items()})
    return state


def random_controlnet(unet, embedding_channels):
    """A ControlNet copied from `unet` (as ControlNets are made), its output convolutions random: a fresh one's are
    zero (no effect until trained). One embedding channel count per halving of the VAE."""
    import torch
    from diffusers import ControlNetModel
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=embedding_channels)
    for m in [*net.controlnet_down_blocks, net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out]:
        torch.nn.init.normal_(m.weight, std=0.3)
    return net


def build_sdxl_single_file(root: Path) -> Path:
    """A tiny SDXL as a diffusers folder `root/diffusers/` (StableDiffusionXLPipeline) and as one SGM checkpoint
    `root/models/checkpoints/sdxl_tiny.safetensors` (its CLIP tokenizer in a folder named after it), both with
    the shipped SDXL scheduler."""
    import copy
    from diffusers import StableDiffusionXLPipeline
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    unet, vae, text, text_2 = sdxl_parts()
    ckpt = root / "models" / "checkpoints" / "sdxl_tiny.safetensors"
    tok = clip_tokenizer(ckpt.parent / ckpt.stem)
    tok_2 = copy.deepcopy(tok)
    tok_2.pad_token = "!"
    StableDiffusionXLPipeline(vae=vae, text_encoder=text, text_encoder_2=text_2, tokenizer=tok, tokenizer_2=tok_2,
                              unet=unet, scheduler=scheduler("sdxl")).save_pretrained(str(root / "diffusers"),
                                                                                     safe_serialization=True)
    save_file({k: v.half().contiguous() for k, v in sdxl_sgm_state(unet, vae, text, text_2).items()}, str(ckpt))
    return root


def sdxl_refiner_unet():
    """A tiny SDXL refiner UNet: the refiner's shape at tiny widths (attention on the middle levels only, the last
    level without it, a middle block deeper than 1, OpenCLIP-G's 32-wide context alone, and five size/aesthetic
    numbers beside the pooled embedding: 32 + 5 x 8)."""
    import torch
    from diffusers import UNet2DConditionModel
    _seed(1)
    unet = UNet2DConditionModel(block_out_channels=(32, 64, 64), layers_per_block=2, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=(1, 1, 1), transformer_layers_per_block=(1, 2, 2),
                                use_linear_projection=True, addition_embed_type="text_time",
                                addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 5 * 8,
                                norm_num_groups=32)
    with torch.no_grad():       # random weights barely heed the five numbers; make a wrong aesthetic score show
        unet.add_embedding.linear_1.weight.mul_(30)
    return unet.half().float()


def build_sdxl_refiner(root: Path) -> Path:
    """The tiny SDXL's refiner beside it: `root/refiner_diffusers/` (StableDiffusionXLImg2ImgPipeline with
    requires_aesthetics_score, OpenCLIP-G alone) and `root/models/checkpoints/sdxl_refiner_tiny.safetensors` in the
    published refiner layout (conditioner.embedders.0 = OpenCLIP-G), sharing the base's VAE and OpenCLIP-G."""
    import copy
    from diffusers import StableDiffusionXLImg2ImgPipeline
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    _, vae, _, text_2 = sdxl_parts()
    unet = sdxl_refiner_unet()
    ckpt = root / "models" / "checkpoints" / "sdxl_refiner_tiny.safetensors"
    tok_2 = copy.deepcopy(clip_tokenizer(ckpt.parent / ckpt.stem))
    tok_2.pad_token = "!"
    StableDiffusionXLImg2ImgPipeline(vae=vae, text_encoder=None, text_encoder_2=text_2, tokenizer=None,
                                     tokenizer_2=tok_2, unet=unet, scheduler=scheduler("sdxl"),
                                     requires_aesthetics_score=True).save_pretrained(
        str(root / "refiner_diffusers"), safe_serialization=True)
    state = {f"model.diffusion_model.{k}": v for k, v in sd_ldm_unet(unet.state_dict(), 3, [False, True, False]).items()}
    state.update({f"first_stage_model.{k}": v for k, v in sd_ldm_vae(vae.state_dict(), 2).items()})
    state.update({f"conditioner.embedders.0.model.{k}": v for k, v in open_clip_text(text_2.state_dict()).items()})
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(ckpt))
    return ckpt


# Last: the builders above call helpers defined further down the file.
if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python tests/tiny_models.py DIR [family ...]")
    out = build_all(sys.argv[1], tuple(sys.argv[2:]) or FAMILIES)
    print(f"tiny models written to {out}")
