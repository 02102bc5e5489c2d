"""LTX-2.3 from its all-in-one checkpoint (checkpoints/ltx-2.3-22b-dev.safetensors, as ComfyUI's LTX-2.3 templates
load it): detected by its own tensors, loaded, and a text-to-video run (video and sound) against diffusers'
LTX2Pipeline on the same tiny weights. Against LTX-2.0 it has gated attention, prompt-modulated cross-attention,
per-stream text projections in place of the transformer's caption projection, a four-level video decoder and a
vocoder with bandwidth extension to 48 kHz; the names below are those of diffusers' conversion script for 2.3."""
from __future__ import annotations

import pytest
import torch

from test_ltx2 import PLAIN_CFG, PROMPT, VAE, _assert_same_latents, _original_transformer, gemma_file

# diffusers' names -> Lightricks' for what LTX-2.3 adds (the inverse of the script's LTX_2_3_* tables)
VAE_23 = {"decoder.up_blocks.3.upsamplers.0": "decoder.up_blocks.7", "decoder.up_blocks.3": "decoder.up_blocks.8", **VAE}
VOCODER_23 = (("resnets", "resblocks"), ("conv_in", "conv_pre"), ("conv_out", "conv_post"), ("act_out", "act_post"),
              ("downsample.filter", "downsample.lowpass.filter"), (".upsamplers.", ".ups."))
STATS = {"latents_mean": "per_channel_statistics.mean-of-means", "latents_std": "per_channel_statistics.std-of-means"}


def _original(parts) -> dict:
    out = {}
    for k, v in parts["transformer"].state_dict().items():
        for new, old in (("audio_prompt_adaln.", "audio_prompt_adaln_single."), ("prompt_adaln.", "prompt_adaln_single.")):
            if k.startswith(new):
                k = old + k[len(new):]
        out[_original_transformer(k)] = v
    for k, v in parts["connectors"].state_dict().items():
        side = k.split("_", 1)[0]
        if k.startswith(side + "_text_proj_in."):
            out[f"text_embedding_projection.{side}_aggregate_embed." + k.rsplit(".", 1)[1]] = v
            continue
        k = k.replace("video_connector", "video_embeddings_connector").replace(
            "audio_connector", "audio_embeddings_connector").replace("transformer_blocks", "transformer_1d_blocks")
        out["model.diffusion_model." + k.replace("norm_q", "q_norm").replace("norm_k", "k_norm")] = v
    for k, v in parts["vae"].state_dict().items():
        for new, old in VAE_23.items():
            if k.startswith(new + "."):
                k = old + k[len(new):]
                break
        out["vae." + STATS.get(k, k.replace(".resnets.", ".res_blocks."))] = v
    out["vae.per_channel_statistics.mean-of-stds"] = torch.ones_like(parts["vae"].latents_std)
    out.update({"audio_vae." + STATS.get(k, k): v for k, v in parts["audio_vae"].state_dict().items()})
    for k, v in parts["vocoder"].state_dict().items():
        for new, old in VOCODER_23:
            k = k.replace(new, old)
        out["vocoder." + k] = v
    return {k: v.contiguous() for k, v in out.items()}


@pytest.fixture(scope="module")
def tiny23(tmp_path_factory):
    """Tiny random LTX-2.3 parts (the release's structure at a few channels; Gemma's width is the release's, which
    no tensor of the connectors shows) and the checkpoint made of them, beside a one-layer Gemma 3 of that width."""
    import diffusers
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE
    from safetensors.torch import save_file
    torch.manual_seed(0)
    parts = dict(
        transformer=diffusers.LTX2VideoTransformer3DModel(
            in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
            audio_in_channels=16, audio_out_channels=16, audio_num_attention_heads=2, audio_attention_head_dim=4,
            audio_cross_attention_dim=8, num_layers=1, gated_attn=True, cross_attn_mod=True, audio_gated_attn=True,
            audio_cross_attn_mod=True, use_prompt_embeddings=False, perturbed_attn=True),
        connectors=LTX2TextConnectors(
            caption_channels=3840, text_proj_in_factor=2, video_connector_num_attention_heads=2,
            video_connector_attention_head_dim=8, video_connector_num_layers=1,
            video_connector_num_learnable_registers=4, video_gated_attn=True, audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=4, audio_connector_num_layers=1,
            audio_connector_num_learnable_registers=4, audio_gated_attn=True, per_modality_projections=True,
            video_hidden_dim=16, audio_hidden_dim=8, proj_bias=True),
        vae=diffusers.AutoencoderKLLTX2Video(
            latent_channels=8, block_out_channels=(8, 16, 32, 32), decoder_block_out_channels=(8, 16, 16, 32),
            layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
            decoder_spatio_temporal_scaling=(True,) * 4, decoder_inject_noise=(False,) * 5,
            upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
            upsample_residual=(False,) * 4, upsample_factor=(2, 2, 1, 2), decoder_causal=False,
            decoder_spatial_padding_mode="zeros", spatial_compression_ratio=32, temporal_compression_ratio=8),
        audio_vae=diffusers.AutoencoderKLLTX2Audio(base_channels=16, ch_mult=(1, 2, 4), num_res_blocks=1,
                                                   latent_channels=1),
        vocoder=LTX2VocoderWithBWE(hidden_channels=64, resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]],
                                   bwe_hidden_channels=32, bwe_resnet_kernel_sizes=[3],
                                   bwe_resnet_dilations=[[1, 3, 5]]))
    with torch.no_grad():           # random statistics and activations, so a wrong mapping of them shows
        for m in (parts["vae"], parts["audio_vae"]):
            m.latents_mean.uniform_(-0.5, 0.5)
            m.latents_std.uniform_(0.5, 1.5)
        for name, t in parts["vocoder"].named_parameters():
            if name.endswith(("alpha", "beta")):
                t.uniform_(-0.3, 0.3)
    root = tmp_path_factory.mktemp("ltx23") / "models"
    path = root / "checkpoints" / "ltx-2.3-22b-distilled.safetensors"
    path.parent.mkdir(parents=True)
    save_file(_original(parts), str(path))
    gemma = gemma_file(root / "text_encoders" / "gemma_3_12B_it.safetensors", hidden_size=3840,
                       intermediate_size=16, num_hidden_layers=1)
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(root))
    yield parts, path, gemma[0], gemma[2]
    mp.undo()


def test_ltx23_checkpoint_samples_and_decodes_as_ltx2pipeline(tiny23):
    """load.model on the 2.3 checkpoint, Gemma 3 prompts through its per-stream connectors, latent.empty,
    generate.sample at cfg 3 with a negative prompt, vae.decode: the video and sound latents, frames and 48 kHz
    waveform of LTX2Pipeline's own loop (plain cfg) on the same weights, prompt and seed."""
    import wave
    import diffusers
    import numpy as np
    from graph_engine.context import Context
    from nodes.generate.detect import detect_file
    from nodes.generate.loaders import load_parts
    from nodes.generate.model_manager import ModelManager, will_load
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_text_encoder, scheduler
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import decode_latent, empty_latent
    parts, path, gemma, te_path = tiny23
    det = detect_file(path)
    assert (det.role, det.family, det.variant, det.extra["version"]) == ("checkpoint", "ltx2", "22B-distilled", "2.3")
    assert will_load(det)[0]
    loaded = load_parts(Context("load"), "auto", str(path))
    te = load_text_encoder(ModelManager(), te_path.name, path.name, "auto", "cpu")
    latent = empty_latent(loaded["vae"], 9, 64, 64, 24.0)
    out = run_sampling(loaded["model"], encode_prompt(te, PROMPT), encode_prompt(te, "blurry"), latent, steps=2,
                       cfg=3.0, sampler="euler", seed=3)
    ref = diffusers.LTX2Pipeline(scheduler=scheduler("ltx2"), text_encoder=gemma, tokenizer=te.pipe.tokenizer, **parts)
    run = dict(prompt=PROMPT, negative_prompt="blurry", height=64, width=64, num_frames=9, frame_rate=24.0,
               num_inference_steps=2, **PLAIN_CFG, return_dict=False)
    video, audio = ref(**run, generator=torch.Generator().manual_seed(3), output_type="latent")
    _assert_same_latents(ref, out, video, audio)
    clip = decode_latent(loaded["vae"], out)
    frames, sound = ref(**run, generator=torch.Generator().manual_seed(3), output_type="np")
    assert clip.to_array().shape == (9, 64, 64, 3)
    assert np.abs(clip.to_array() / 255.0 - frames[0]).max() <= 0.5 / 255 + 1e-4
    with wave.open(clip.audio.path) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48000, sound.shape[1], 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels()).T
    want = sound[0].float().clamp(-1, 1).numpy()
    assert pcm.shape == want.shape and np.abs(pcm / 32767.0 - want).max() <= 0.5 / 32767 + 1e-5


def test_ltx25_transformer_alone_is_named_not_loaded(tiny23):
    """LTX-2.5's transformer (ComfyUI's templates load it alone from diffusion_models/, 2.3's layers without the
    video feed-forward's biases) is told from 2.3 and refused by name, with the file that does run."""
    import diffusers
    from safetensors.torch import save_file
    from graph_engine import NodeError
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager, will_load
    from nodes.generate.split import load_diffusion_model
    parts, path = tiny23[:2]
    dit = diffusers.LTX2VideoTransformer3DModel(
        in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
        audio_in_channels=16, audio_out_channels=16, audio_num_attention_heads=2, audio_attention_head_dim=4,
        audio_cross_attention_dim=8, num_layers=1, gated_attn=True, cross_attn_mod=True, audio_gated_attn=True,
        audio_cross_attn_mod=True, use_prompt_embeddings=False, ff_bias=False)
    folder = path.parents[1] / "diffusion_models"
    folder.mkdir(exist_ok=True)
    out = folder / "ltx-2.5-22b-distilled-transformer.safetensors"
    state = {_original_transformer(k).replace("prompt_adaln.", "prompt_adaln_single."): v.contiguous()
             for k, v in dit.state_dict().items()}
    save_file(state, str(out))
    det = detect_file(out)
    ok, why = will_load(det)
    assert (det.role, det.extra["version"], ok) == ("diffusion_model", "2.5", False) and "Gemma 4" in why
    with pytest.raises(NodeError, match="LTX-2.5 does not run in Kinograph yet"):
        load_diffusion_model(ModelManager(), out.name, "default", "cpu")

