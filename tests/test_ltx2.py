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
    root = tmp_path_factory.mktemp("ltx2") / "models"
    path = root / "checkpoints" / "ltx-2-19b-distilled.safetensors"
    path.parent.mkdir(parents=True)
    save_file(_original(parts), str(path))
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(root))
    yield parts, path
    mp.undo()


PROMPT = "a puppet sings in the rain"


@pytest.fixture(scope="module")
def gemma(tiny):
    """Gemma 3 at a few channels (12B's config otherwise) with a sentencepiece model trained here, saved as ComfyUI's
    text_encoders/gemma_3_12B_it.safetensors holds it: transformers' language-model names under model., the
    tokenizer's model as the uint8 tensor spiece_model."""
    import io
    import sentencepiece as spm
    from safetensors.torch import save_file
    from transformers import Gemma3TextConfig, Gemma3TextModel
    text = "a puppet sings in the rain with a red umbrella. the camera holds steady. rain falls gently around her."
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([text] * 20), model_writer=model, vocab_size=64,
                                   model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>",
                                   eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>", add_dummy_prefix=False,
                                   user_defined_symbols=["<start_of_turn>", "<end_of_turn>"], minloglevel=2)
    torch.manual_seed(1)
    config = Gemma3TextConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=8, query_pre_attn_scalar=8,
                              sliding_window=1024, rope_parameters={
                                  "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                  "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}})
    gemma = Gemma3TextModel(config).eval()
    state = {"model." + k: v.contiguous() for k, v in gemma.state_dict().items()}
    state["spiece_model"] = torch.frombuffer(bytearray(model.getvalue()), dtype=torch.uint8)
    path = tiny[1].parents[1] / "text_encoders" / "gemma_3_12B_it.safetensors"
    path.parent.mkdir()
    save_file(state, str(path))
    return gemma, spm.SentencePieceProcessor(model_proto=model.getvalue()), path


def _run(pipe, embeds, mask):
    return pipe(prompt_embeds=embeds, prompt_attention_mask=mask, height=64, width=64, num_frames=9,
                num_inference_steps=2, guidance_scale=1.0, audio_guidance_scale=1.0, frame_rate=24.0,
                generator=torch.Generator().manual_seed(3), output_type="np", return_dict=False)



# LTX2Pipeline's guidance reduced to plain cfg 3 for video and sound, as Kinograph's sampler runs it; each audio scale
# given outright, since `audio_stg_scale or stg_scale` would run STG on the sound at stg_scale=0 alone
PLAIN_CFG = dict(guidance_scale=3.0, audio_guidance_scale=3.0, stg_scale=0.0, audio_stg_scale=0.0, modality_scale=1.0,
                 audio_modality_scale=1.0, guidance_rescale=0.0, audio_guidance_rescale=0.0)


def _assert_same_latents(ref, out, video, audio):
    """Kinograph's sampled latent `out` (video and sound) against the pipeline `ref`'s output_type='latent' result,
    brought to the pipeline's unnormalised form: relative difference under 1e-5 for each."""
    vae, avae = ref.vae, ref.audio_vae
    got_v = ref._denormalize_latents(out.samples, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    got_a = ref._unpack_audio_latents(ref._denormalize_audio_latents(
        ref._pack_audio_latents(out.audio), avae.latents_mean, avae.latents_std), out.audio.shape[2], 16)
    for got, want in ((got_v, video), (got_a, audio)):
        assert got.shape == want.shape
        assert ((got - want).norm() / want.norm()).item() < 1e-5


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
    from safetensors.torch import load_file
    parts, path = tiny
    ok, why = will_load(detect_file(path))
    assert ok and "gemma_3_12B_it" in why
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
        assert (det.role, det.family) == ("latent_upscaler", family) and will_load(det)[1].startswith(
            "latent.ltx_upsample on LTX-2" if family == "ltx2" else "latent.ltx_upsample")
    lora = tmp_path / "ltx-2-19b-distilled-lora-384.safetensors"
    save_file({f"diffusion_model.transformer_blocks.0.{m}.lora_{ab}.weight": torch.zeros(4, 16)
               for m in ("attn1.to_q", "audio_attn1.to_q", "audio_to_video_attn.to_k") for ab in "AB"}, str(lora))
    det = detect_file(lora)
    ok, why = will_load(det)
    assert (det.role, det.family, ok) == ("lora", "ltx2", True) and why.startswith("lora.image on an LTX-2")
    v23 = dict(state, **{"text_embedding_projection.video_aggregate_embed.weight": torch.zeros(16, 48)})
    save_file(v23, str(tmp_path / "ltx-2.3-22b-dev.safetensors"))
    det = detect_file(tmp_path / "ltx-2.3-22b-dev.safetensors")
    assert (det.family, det.variant) == ("ltx2", "22B-dev")
    with pytest.raises(NodeError, match="LTX-2.3"):
        load_single_file("ltx2", tmp_path / "ltx-2.3-22b-dev.safetensors", torch.float32)


def test_a_checkpoint_lacking_a_tensor_its_size_is_read_from_is_named(tiny, tmp_path):
    """The converters read LTX-2's sizes from named tensors: a checkpoint cut or edited to lack one (the audio input
    projection, the vocoder's first conv) failed with a bare KeyError as the node's message, a 1-D projection with
    'not enough values to unpack'."""
    from safetensors.torch import load_file, save_file
    from nodes.generate.converters.pipelines import load_single_file
    state = load_file(str(tiny[1]))
    path = tmp_path / "ltx-2-19b-distilled.safetensors"
    for damaged, message in (
            ({k: v for k, v in state.items() if "audio_patchify_proj" not in k}, "lacks the tensor audio_proj_in.weight"),
            ({k: v for k, v in state.items() if not k.startswith("vocoder.conv_pre")}, "lacks the tensor conv_in.weight"),
            ({k: v.flatten() if "audio_patchify_proj.weight" in k else v for k, v in state.items()},
             "holds tensors of shapes no such model has")):
        save_file(damaged, str(path))
        with pytest.raises(NodeError) as e:
            load_single_file("ltx2", path, torch.float32)
        assert str(e.value).startswith(str(path)) and message in str(e.value) and "may be damaged" in str(e.value)


def test_gemma3_prompt_through_the_checkpoints_connectors_matches_diffusers(tiny, gemma):
    """ComfyUI's gemma_3_12B_it file with the LTX-2 checkpoint (LTXAVTextEncoderLoader's pair) reads a prompt as
    LTX2Pipeline.encode_prompt and its connectors do, the tokenizer being the file's own sentencepiece model."""
    import diffusers
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager, will_load
    from nodes.generate.split import load_text_encoder, scheduler
    from nodes.generate.text import encode_prompt
    parts, path = tiny
    model, sp, te_path = gemma
    det = detect_file(te_path)
    assert (det.role, det.family, will_load(det)[0]) == ("text_encoder", "gemma3", True)
    mm = ModelManager()
    with pytest.raises(NodeError, match="text connectors in the LTX-2 checkpoint"):
        load_text_encoder(mm, te_path.name, "", "auto", "cpu")
    te = load_text_encoder(mm, te_path.name, path.name, "auto", "cpu")
    assert te.family == "ltx2"
    ids = te.pipe.tokenizer(PROMPT)["input_ids"]
    assert ids == [2] + sp.encode(PROMPT)               # <bos>, then sentencepiece's own pieces
    cond = encode_prompt(te, PROMPT)
    ref = diffusers.LTX2Pipeline(scheduler=scheduler("ltx2"), text_encoder=model, tokenizer=te.pipe.tokenizer,
                                 **{k: v for k, v in parts.items()})
    with torch.no_grad():
        embeds, mask, _, _ = ref.encode_prompt(PROMPT, do_classifier_free_guidance=False, device="cpu")
        video, audio, keep = ref.connectors(embeds, mask, padding_side="left")
    want = torch.cat([video, audio], -1)
    assert cond.embeds.shape == want.shape and want.shape[:2] == (1, 1024)
    assert ((cond.embeds - want).norm() / want.norm()).item() < 1e-5
    assert torch.equal(cond.mask, keep.bool())


def test_text_to_video_with_sound_samples_as_ltx2pipeline(tiny, gemma):
    """load.model on the checkpoint, Gemma 3 prompts, latent.empty (video and sound), generate.sample with a
    negative prompt at cfg 3: the video and sound latents of LTX2Pipeline's own loop on the same weights, prompt and
    seed (its CFG alone: no STG, modality guidance or rescale, which ComfyUI's template does not use either)."""
    import diffusers
    from graph_engine.context import Context
    from nodes.generate.loaders import load_parts
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_text_encoder, scheduler
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    parts, path = tiny
    model, _, te_path = gemma
    loaded = load_parts(Context("load"), "auto", str(path))
    te = load_text_encoder(ModelManager(), te_path.name, path.name, "auto", "cpu")
    latent = empty_latent(loaded["vae"], 9, 64, 64, 24.0)
    assert latent.samples.shape == (1, 8, 2, 2, 2) and latent.audio.shape == (1, 1, 9, 16)   # 9/24 s at 25 a second
    out = run_sampling(loaded["model"], encode_prompt(te, PROMPT), encode_prompt(te, "blurry"), latent, steps=2,
                       cfg=3.0, sampler="euler", seed=3)
    ref = diffusers.LTX2Pipeline(scheduler=scheduler("ltx2"), text_encoder=model, tokenizer=te.pipe.tokenizer, **parts)
    video, audio = ref(prompt=PROMPT, negative_prompt="blurry", height=64, width=64, num_frames=9, frame_rate=24.0,
                       num_inference_steps=2, **PLAIN_CFG, generator=torch.Generator().manual_seed(3),
                       output_type="latent", return_dict=False)
    _assert_same_latents(ref, out, video, audio)
    # vae.decode: the frames and, as the clip's sound, a 16-bit WAV of the waveform LTX2Pipeline decodes
    import wave
    import numpy as np
    from nodes.generate.vae_ops import decode_latent
    clip = decode_latent(loaded["vae"], out)
    frames, sound = ref(prompt=PROMPT, negative_prompt="blurry", height=64, width=64, num_frames=9, frame_rate=24.0,
                        num_inference_steps=2, **PLAIN_CFG, generator=torch.Generator().manual_seed(3),
                        output_type="np", return_dict=False)
    assert np.abs(clip.to_array() / 255.0 - frames[0]).max() <= 0.5 / 255 + 1e-4
    assert (clip.audio.start, clip.audio.duration) == (0.0, 9 / 24.0)
    with wave.open(clip.audio.path) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, sound.shape[1], 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels()).T
    want = sound[0].float().clamp(-1, 1).numpy()
    assert pcm.shape == want.shape and np.abs(pcm / 32767.0 - want).max() <= 0.5 / 32767 + 1e-5
    # a noise.* node's noise is the video's; the sound's is the seed's (it was refused as not fitting the latent)
    from nodes.generate.adapters.ltx2 import joined
    v = torch.randn(latent.samples.shape, generator=torch.Generator().manual_seed(7))
    a = torch.randn(latent.audio.shape, generator=torch.Generator().manual_seed(3))
    given = [run_sampling(loaded["model"], encode_prompt(te, PROMPT), None, latent, steps=1, cfg=1.0, sampler="euler",
                          seed=3, noise=noise) for noise in (v, joined(v, a))]
    assert torch.equal(given[0].samples, given[1].samples) and torch.equal(given[0].audio, given[1].audio)
    # frame-wise wrappers would filter or window the flat video+sound state as one frame: named instead
    from nodes.consistency.wrappers import FreeInitWrapper
    with pytest.raises(NodeError, match="noise.freeinit does not work on LTX-2"):
        run_sampling(loaded["model"].with_run_wrapper(FreeInitWrapper()), encode_prompt(te, PROMPT), None, latent,
                     steps=1, cfg=1.0, sampler="euler", seed=3)


def _upscaler(models):
    """A tiny x2 latent upscaler under the templates' name."""
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel
    from safetensors.torch import save_file
    up = LTXLatentUpsamplerModel(in_channels=8, mid_channels=32, num_blocks_per_stage=1).state_dict()
    (models / "latent_upscale_models").mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in up.items()},
              str(models / "latent_upscale_models" / "ltx-2-spatial-upscaler-x2-1.0.safetensors"))


def test_comfyui_ltx2_t2v_template_imports_and_runs(tiny, gemma, tmp_path, monkeypatch):
    """ComfyUI's video_ltx2_t2v template (its subgraph: Gemma 3 + the checkpoint's connectors, the empty audio latent
    joined to the video's, a first pass at half size, LTX-2's x2 latent upscaler, a second pass with the distilled
    LoRA on ManualSigmas, the sound decoded beside the frames into CreateVideo and SaveVideo) maps every node, and on
    the tiny model under the template's file names (128x72 halved by its ImageScaleBy, 9 frames, 2 steps) runs to
    an MP4 with video and sound. The halved size reaches EmptyLTXVLatentVideo by links, off LTX-2's step of 32 (the
    template's 1280x720 halved is 640x360): ComfyUI floors it (height // 32), so the import sets size_fit floor and
    the first pass is 64x32 (latent.empty refused it, so the template stopped after loading the models); size_fit
    exact still refuses it, naming the size to try."""
    import json
    from pathlib import Path
    from safetensors.torch import save_file
    from app.comfyui import import_data
    from comfy_layouts import link_as
    from graph_engine.api import Session, load_workflow
    models = tiny[1].parents[1]
    link_as(models / "checkpoints" / "ltx-2-19b-dev-fp8.safetensors", tiny[1])
    link_as(models / "text_encoders" / "gemma_3_12B_it_fp4_mixed.safetensors", gemma[2])
    for folder in ("loras", "latent_upscale_models"):
        (models / folder).mkdir(exist_ok=True)
    torch.manual_seed(5)
    lora = {}
    for module, width in (("attn1.to_q", 16), ("audio_attn1.to_q", 8)):
        lora[f"diffusion_model.transformer_blocks.0.{module}.lora_A.weight"] = torch.randn(4, width)
        lora[f"diffusion_model.transformer_blocks.0.{module}.lora_B.weight"] = torch.randn(width, 4)
    save_file(lora, str(models / "loras" / "ltx-2-19b-distilled-lora-384.safetensors"))
    _upscaler(models)
    data = json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" / "video_ltx2_t2v.json").read_text())
    res = import_data(data)
    statuses = {e.class_type: e.status for e in res.report.entries.values()}
    assert "unmapped" not in statuses.values(), statuses
    empty, = [n for n in res.graph.nodes.values() if n.type == "latent.empty"]
    assert empty.params["size_fit"] == "floor" and res.graph.inputs[empty.id]["height"][1] == "height"
    yaml = res.yaml.replace("width: 1280", "width: 128").replace("height: 720", "height: 72")
    yaml = yaml.replace("frames: 121", "frames: 9").replace("steps: 20", "steps: 2")
    assert "name2: ltx-2-19b-dev-fp8.safetensors" in yaml and "type: ltx2" in yaml
    monkeypatch.chdir(tmp_path)

    logs = []

    def run(yaml, targets=None):
        wf = tmp_path / "ltx2.kino.yaml"
        wf.write_text(yaml)
        out = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False, targets=targets,
                                        on_event=lambda e: logs.append(e["message"]) if e["event"] == "log" else None)
        if targets:
            return out
        assert out.ok, out.failed
        return {k.rsplit("_", 1)[-1]: v for k, v in out.outputs.items()}
    got = run(yaml)
    first, upscaled, second = got["41"]["latent"], got["84"]["latent"], got["70"]["latent"]
    assert (first.width, first.height, first.samples.shape, first.audio.shape) == (64, 32, (1, 8, 2, 1, 2),
                                                                                   (1, 1, 9, 16))
    assert (second.width, second.height, second.samples.shape) == (128, 64, (1, 8, 2, 2, 4))
    assert "LTX-2 sizes step by 32: 64x36 is made as 64x32 (size_fit floor, as ComfyUI's empty latent does)" in logs
    assert torch.equal(upscaled.audio, first.audio)         # the sound passes the video's upscaler unchanged
    clip = got["100"]["video"]
    assert (clip.length, clip.width, clip.height, clip.audio.duration) == (9, 128, 64, 9 / 24)
    refused = run(yaml.replace("size_fit: floor", "size_fit: exact"), targets=[empty.id])
    assert not refused.ok and "LTX-2 needs width and height divisible by 32; 64x36 is not. Try 64x32." in \
        str(refused.failed)
    import av
    saved = sorted((tmp_path / "out").rglob("*.mp4"))
    with av.open(str(saved[0])) as f:                     # SaveVideo's file holds the frames and the sound
        assert len(f.streams.video) == 1 and len(f.streams.audio) == 1
    # the distilled LoRA (ComfyUI's names) changes the second pass only
    plain = run(yaml.replace("strength: 1\n", "strength: 0\n"))
    assert torch.equal(plain["41"]["latent"].samples, first.samples)
    assert not torch.allclose(plain["70"]["latent"].samples, second.samples)


def test_image_to_video_samples_as_ltx2_image_to_video_pipeline(tiny, gemma):
    """latent.start_image (ComfyUI's LTXVImgToVideoInplace) on an empty LTX-2 latent, then generate.sample at cfg 3:
    the video and sound latents of LTX2ImageToVideoPipeline on the same weights, picture, prompt and seed (its first
    latent frame the picture's encoding, read at timestep 0 and kept). At strength 0.5 the frame is read at half the
    step's timestep and comes out changed."""
    import diffusers
    import numpy as np
    from PIL import Image
    from graph_engine.context import Context
    from nodes.generate.loaders import load_parts
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_text_encoder, scheduler
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent, with_start_image
    parts, path = tiny
    model, _, te_path = gemma
    loaded = load_parts(Context("load"), "auto", str(path))
    te = load_text_encoder(ModelManager(), te_path.name, path.name, "auto", "cpu")
    picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    latent = with_start_image(loaded["vae"], empty_latent(loaded["vae"], 9, 64, 64, 24.0), picture)
    assert latent.mask[0, 0, :, 0, 0].tolist() == [0.0, 1.0]
    pos, neg = encode_prompt(te, PROMPT), encode_prompt(te, "blurry")
    out = run_sampling(loaded["model"], pos, neg, latent, steps=2, cfg=3.0, sampler="euler", seed=3)
    ref = diffusers.LTX2ImageToVideoPipeline(scheduler=scheduler("ltx2"), text_encoder=model,
                                             tokenizer=te.pipe.tokenizer, **parts)
    video, audio = ref(image=Image.fromarray(picture), prompt=PROMPT, negative_prompt="blurry", height=64, width=64,
                       num_frames=9, frame_rate=24.0, num_inference_steps=2, **PLAIN_CFG, image_crf=0,
                       generator=torch.Generator().manual_seed(3), output_type="latent", return_dict=False)
    _assert_same_latents(ref, out, video, audio)
    assert torch.equal(out.samples[:, :, :1], latent.samples[:, :, :1])         # the start frame as it went in
    half = run_sampling(loaded["model"], pos, neg, with_start_image(loaded["vae"], latent, picture, 0.5), steps=2,
                        cfg=3.0, sampler="euler", seed=3)
    assert not torch.allclose(half.samples[:, :, :1], latent.samples[:, :, :1])


def test_comfyui_ltx2_i2v_distilled_template_imports_and_runs(tiny, gemma, tmp_path, monkeypatch):
    """ComfyUI's video_ltx2_i2v_distilled template (the picture resized by ResizeImageMaskNode, by dimensions then by
    its longer side, LTXVPreprocess, LTXVImgToVideoInplace before each of the two distilled passes) maps every node
    and runs on the tiny model (128x128, 9 frames): both passes start on the picture's encoding and keep it."""
    import json
    from pathlib import Path
    import numpy as np
    from PIL import Image
    from app.comfyui import import_data
    from comfy_layouts import link_as
    from graph_engine.api import Session, load_workflow
    models = tiny[1].parents[1]
    link_as(models / "text_encoders" / "gemma_3_12B_it_fp4_mixed.safetensors", gemma[2])
    _upscaler(models)
    data = json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" /
                       "video_ltx2_i2v_distilled.json").read_text())
    res = import_data(data)
    entries = {k: (e.class_type, e.status, e.notes) for k, e in res.report.entries.items()}
    assert "unmapped" not in {s for _, s, _ in entries.values()}, entries
    yaml = res.yaml
    assert "type: video.resize_side" in yaml and "side: longer" in yaml and "size: 1536" in yaml
    assert yaml.count("type: latent.start_image") == 2
    yaml = yaml.replace("width: 1280\n      height: 720\n      method", "width: 192\n      height: 128\n      method")
    yaml = yaml.replace("width: 1280", "width: 128").replace("height: 720", "height: 128")
    yaml = yaml.replace("frames: 121", "frames: 9").replace("size: 1536", "size: 128")
    picture = tmp_path / "snow_bike_jump_crew.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (96, 160, 3), dtype=np.uint8)).save(picture)
    yaml = yaml.replace("path: snow_bike_jump_crew.png", f"path: {picture}")
    monkeypatch.chdir(tmp_path)
    wf = tmp_path / "ltx2_i2v.kino.yaml"
    wf.write_text(yaml)
    out = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert out.ok, out.failed
    got = {k.rsplit("_", 1)[-1]: v for k, v in out.outputs.items()}
    assert (got["102"]["video"].width, got["115"]["video"].width, got["115"]["video"].height) == (192, 128, 85)
    for start, sampled in (("107", "41"), ("108", "70")):
        placed, result = got[start]["latent"], got[sampled]["latent"]
        assert placed.mask[0, 0, :, 0, 0].tolist() == [0.0, 1.0]
        assert torch.equal(result.samples[:, :, :1], placed.samples[:, :, :1])
    assert got["108"]["latent"].width == 128 and not torch.equal(got["108"]["latent"].samples[:, :, :1],
                                                                 got["84"]["latent"].samples[:, :, :1])
    assert got["95"]["video"].length == 9


def test_cut_and_joined_ltx2_latents_keep_their_sound_in_step():
    """latent.cut / latent.concat on an LTX-2 latent cut and join its sound stream with its frames: the sound was
    kept whole (a cut clip's sound restarted at the clip's start; a joined clip's second part was silent)."""
    from nodes.generate.latent import Latent, concat_latents, cut_latent
    steps = torch.arange(18.0).view(1, 1, 18, 1).expand(1, 1, 18, 16)       # 17 frames at 24 fps: 18 sound steps
    a = Latent(torch.zeros(1, 8, 3, 2, 2), "ltx2", 17, 24.0, 64, 64, audio=steps)
    b = Latent(torch.ones(1, 8, 3, 2, 2), "ltx2", 17, 24.0, 64, 64, audio=steps + 100)
    # latent frames 1-2 decode to 9 frames, those that end at the clip's frame 17: sound steps 8.5..18 of 18
    tail = cut_latent(a, "t", 1, 2)
    assert tail.frames == 9 and tail.audio[0, 0, :, 0].tolist() == list(range(8, 18))
    head = cut_latent(a, "t", 0, 2)
    assert head.frames == 9 and head.audio[0, 0, :, 0].tolist() == list(range(0, 10))
    from nodes.generate.vace import trim_latent
    assert torch.equal(trim_latent(a, 1).audio, tail.audio)                  # latent.trim: the same frames
    assert torch.equal(cut_latent(a, "y", 1, 1).audio, steps)               # a cut across the picture keeps it
    both = concat_latents(a, b, "t")
    assert both.audio[0, 0, :, 0].tolist() == list(range(18)) + list(range(100, 118))
    assert concat_latents(a, b, "-t").audio[0, 0, :, 0].tolist() == list(range(100, 118)) + list(range(18))
    with pytest.raises(NodeError, match="sound stream"):
        concat_latents(a, Latent(torch.ones(1, 8, 3, 2, 2), "ltx2", 17, 24.0, 64, 64), "t")


def test_decoded_sound_is_written_where_the_cache_folder_cannot_be(tmp_path, monkeypatch):
    """A cache folder that cannot be written (a render farm's read-only one; here a file in its place) failed
    vae.decode of every LTX-2 clip with 'NotADirectoryError'; the engine runs on without its disk cache there, and
    the sound now goes to the temporary folder."""
    import tempfile
    import wave
    import numpy as np
    from nodes.generate.sound import write_wav
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    path = write_wav(np.array([[0.0, 0.5, -0.5, 1.0]]), 24000)
    assert path.parent == tmp_path / "tmp" / "kinograph-sound"
    with wave.open(str(path)) as w:
        assert w.getframerate() == 24000
        assert np.frombuffer(w.readframes(4), "<i2").tolist() == [0, 16384, -16384, 32767]
