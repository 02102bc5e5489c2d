"""LTX-2 from the all-in-one checkpoint ComfyUI users keep (checkpoints/ltx-2-19b-dev.safetensors): detection of
it and of the parts ComfyUI splits from it, and a text-to-video run (video and sound) through the pipeline Kinograph
builds from Lightricks' names, against diffusers' LTX2Pipeline on the same tiny weights."""
from __future__ import annotations

import pytest
import torch

from graph_engine import NodeError

# Lightricks' names for diffusers' (the inverse of diffusers' convert_ltx2_* tables, written out here so the test
# states the published layout rather than deriving it from the code under test).
TRANSFORMER = (("av_cross_attn_video_scale_shift", "av_ca_video_scale_shift_adaln_single"),
               ("av_cross_attn_video_a2v_gate", "av_ca_a2v_gate_adaln_single"),
               ("av_cross_attn_audio_scale_shift", "av_ca_audio_scale_shift_adaln_single"),
               ("av_cross_attn_audio_v2a_gate", "av_ca_v2a_gate_adaln_single"),
               ("video_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_video"),
               ("audio_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_audio"),
               ("norm_q", "q_norm"), ("norm_k", "k_norm"))
VAE = {"encoder.down_blocks.0.downsamplers.0": "encoder.down_blocks.1",
       "encoder.down_blocks.1.downsamplers.0": "encoder.down_blocks.3",
       "encoder.down_blocks.2.downsamplers.0": "encoder.down_blocks.5",
       "encoder.down_blocks.3.downsamplers.0": "encoder.down_blocks.7",
       "encoder.down_blocks.1": "encoder.down_blocks.2", "encoder.down_blocks.2": "encoder.down_blocks.4",
       "encoder.down_blocks.3": "encoder.down_blocks.6", "encoder.mid_block": "encoder.down_blocks.8",
       "decoder.mid_block": "decoder.up_blocks.0", "decoder.up_blocks.0.upsamplers.0": "decoder.up_blocks.1",
       "decoder.up_blocks.1.upsamplers.0": "decoder.up_blocks.3", "decoder.up_blocks.2.upsamplers.0": "decoder.up_blocks.5",
       "decoder.up_blocks.0": "decoder.up_blocks.2", "decoder.up_blocks.1": "decoder.up_blocks.4",
       "decoder.up_blocks.2": "decoder.up_blocks.6"}


def _original_transformer(k: str) -> str:
    if k.startswith("audio_time_embed."):
        k = "audio_adaln_single." + k[len("audio_time_embed."):]
    elif k.startswith("time_embed."):
        k = "adaln_single." + k[len("time_embed."):]
    k = k.replace("audio_proj_in.", "audio_patchify_proj.") if k.startswith("audio_proj_in.") else \
        k.replace("proj_in.", "patchify_proj.") if k.startswith("proj_in.") else k
    for new, old in TRANSFORMER:
        k = k.replace(new, old)
    return "model.diffusion_model." + k


def _original_vae(k: str) -> str:
    for new, old in VAE.items():            # longest names first: each key takes its first match
        if k.startswith(new + "."):
            k = old + k[len(new):]
            break
    k = k.replace(".resnets.", ".res_blocks.")
    return "vae." + {"latents_mean": "per_channel_statistics.mean-of-means",
                     "latents_std": "per_channel_statistics.std-of-means"}.get(k, k)


def _original(parts) -> dict:
    out = {_original_transformer(k): v for k, v in parts["transformer"].state_dict().items()}
    for k, v in parts["connectors"].state_dict().items():
        if k == "text_proj_in.weight":
            out["text_embedding_projection.aggregate_embed.weight"] = v
            continue
        k = k.replace("video_connector", "video_embeddings_connector").replace(
            "audio_connector", "audio_embeddings_connector").replace("transformer_blocks", "transformer_1d_blocks")
        out["model.diffusion_model." + k.replace("norm_q", "q_norm").replace("norm_k", "k_norm")] = v
    out.update({_original_vae(k): v for k, v in parts["vae"].state_dict().items()})
    out["vae.per_channel_statistics.mean-of-stds"] = torch.ones_like(parts["vae"].latents_std)
    out.update({"audio_vae." + {"latents_mean": "per_channel_statistics.mean-of-means",
                                "latents_std": "per_channel_statistics.std-of-means"}.get(k, k): v
                for k, v in parts["audio_vae"].state_dict().items()})
    for k, v in parts["vocoder"].state_dict().items():
        for new, old in (("upsamplers", "ups"), ("resnets", "resblocks"), ("conv_in", "conv_pre"),
                         ("conv_out", "conv_post")):
            k = k.replace(new, old)
        out["vocoder." + k] = v
    return {k: v.contiguous() for k, v in out.items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny random LTX-2 parts (the release's structure at a few channels) and the checkpoint made of them."""
    import diffusers
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from safetensors.torch import save_file
    torch.manual_seed(0)
    parts = dict(
        transformer=diffusers.LTX2VideoTransformer3DModel(
            in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
            audio_in_channels=16, audio_out_channels=16, audio_num_attention_heads=2, audio_attention_head_dim=4,
            audio_cross_attention_dim=8, num_layers=1, caption_channels=16),
        connectors=LTX2TextConnectors(
            caption_channels=16, text_proj_in_factor=3, video_connector_num_attention_heads=2,
            video_connector_attention_head_dim=8, video_connector_num_layers=1,
            video_connector_num_learnable_registers=4, audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
            audio_connector_num_learnable_registers=4, video_hidden_dim=16, audio_hidden_dim=8),
        vae=diffusers.AutoencoderKLLTX2Video(
            latent_channels=8, block_out_channels=(8, 16, 32, 64), decoder_block_out_channels=(8, 16, 32),
            layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1), decoder_causal=False,
            spatial_compression_ratio=32, temporal_compression_ratio=8),
        audio_vae=diffusers.AutoencoderKLLTX2Audio(base_channels=16, ch_mult=(1, 2, 4), num_res_blocks=1,
                                                   latent_channels=1),
        vocoder=LTX2Vocoder(in_channels=128, hidden_channels=32, upsample_kernel_sizes=[16, 15, 8, 4, 4],
                            upsample_factors=[6, 5, 2, 2, 2], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]]))
    with torch.no_grad():           # random statistics, so a wrong mapping of them shows
        for m in (parts["vae"], parts["audio_vae"]):
            m.latents_mean.uniform_(-0.5, 0.5)
            m.latents_std.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("ltx2") / "ltx-2-19b-distilled.safetensors"
    save_file(_original(parts), str(path))
    return parts, path


def _run(pipe, embeds, mask):
    return pipe(prompt_embeds=embeds, prompt_attention_mask=mask, height=64, width=64, num_frames=9,
                num_inference_steps=2, guidance_scale=1.0, audio_guidance_scale=1.0, frame_rate=24.0,
                generator=torch.Generator().manual_seed(3), output_type="np", return_dict=False)


def test_checkpoint_detected_and_runs_as_diffusers_pipeline(tiny):
    import diffusers
    from nodes.generate.converters.pipelines import load_single_file
    from nodes.generate.detect import detect_file
    from nodes.generate.split import scheduler
    parts, path = tiny
    det = detect_file(path)
    assert (det.role, det.family, det.variant) == ("checkpoint", "ltx2", "dim16-distilled")
    ours = load_single_file("ltx2", path, torch.float32)
    assert type(ours).__name__ == "LTX2Pipeline"
    ref = diffusers.LTX2Pipeline(scheduler=scheduler("ltx2"), text_encoder=None, tokenizer=None, **parts)
    embeds = torch.randn(1, 8, 48, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(1, 8, dtype=torch.long)
    video, audio = _run(ours, embeds, mask)
    video_ref, audio_ref = _run(ref, embeds, mask)
    assert video.shape == video_ref.shape == (1, 9, 64, 64, 3)
    assert audio.shape == audio_ref.shape and audio.shape[-1] > 0
    for got, want in ((torch.as_tensor(video), torch.as_tensor(video_ref)), (audio, audio_ref)):
        assert ((got - want).norm() / want.norm()).item() < 1e-5


def test_parts_and_unfinished_releases_are_named(tiny, tmp_path):
    from safetensors.torch import save_file
    from nodes.generate.detect import detect_file
    from nodes.generate.converters.pipelines import load_single_file
    from nodes.generate.model_manager import will_load
    from graph_engine.context import Context
    from nodes.generate.loaders import load_parts
    from safetensors.torch import load_file
    parts, path = tiny
    ok, why = will_load(detect_file(path))
    assert not ok and "Gemma 3" in why
    with pytest.raises(NodeError, match="Gemma 3 12B"):          # a message, not a KeyError from the adapters
        load_parts(Context("load"), "auto", str(path))
    state = load_file(str(path))

    def file(name, keys):
        out = tmp_path / name
        save_file({k: state[k] for k in keys}, str(out))
        return detect_file(out)

    dit = [k for k in state if k.startswith("model.diffusion_model.")]
    det = file("ltx-2-19b-dev_transformer_only.safetensors", dit)
    assert (det.role, det.family, det.variant) == ("diffusion_model", "ltx2", "dim16-dev")
    with pytest.raises(NodeError, match="all-in-one checkpoint"):
        load_single_file("ltx2", tmp_path / "ltx-2-19b-dev_transformer_only.safetensors", torch.float32)
    for name, prefix, what in (("LTX2_audio_vae_bf16.safetensors", "audio_vae.", "audio-vae"),
                               ("ltx2_vocoder.safetensors", "vocoder.", "vocoder")):
        det = file(name, [k for k in state if k.startswith(prefix)])
        ok, why = will_load(det)
        assert (det.family, det.variant, ok) == ("ltx2", what, False) and "all-in-one checkpoint" in why
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel
    up = {k: v.contiguous() for k, v in LTXLatentUpsamplerModel(in_channels=8, mid_channels=32,
                                                                  num_blocks_per_stage=1).state_dict().items()}
    for name, family in (("ltx-2-spatial-upscaler-x2-1.0.safetensors", "ltx2"),
                         ("ltxv-spatial-upscaler-0.9.7.safetensors", "ltx")):
        save_file(up, str(tmp_path / name))
        det = detect_file(tmp_path / name)
        assert (det.role, det.family, will_load(det)[0]) == ("latent_upscaler", family, family == "ltx")
    lora = tmp_path / "ltx-2-19b-distilled-lora-384.safetensors"
    save_file({f"diffusion_model.transformer_blocks.0.{m}.lora_{ab}.weight": torch.zeros(4, 16)
               for m in ("attn1.to_q", "audio_attn1.to_q", "audio_to_video_attn.to_k") for ab in "AB"}, str(lora))
    det = detect_file(lora)
    ok, why = will_load(det)
    assert (det.role, det.family, ok) == ("lora", "ltx2", False) and why.startswith("a LoRA for LTX-2")
    v23 = dict(state, **{"text_embedding_projection.video_aggregate_embed.weight": torch.zeros(16, 48)})
    save_file(v23, str(tmp_path / "ltx-2.3-22b-dev.safetensors"))
    det = detect_file(tmp_path / "ltx-2.3-22b-dev.safetensors")
    assert (det.family, det.variant) == ("ltx2", "22B-dev")
    with pytest.raises(NodeError, match="LTX-2.3"):
        load_single_file("ltx2", tmp_path / "ltx-2.3-22b-dev.safetensors", torch.float32)
