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


def gemma_file(path, **sizes):
    """A random Gemma 3 of the given sizes (12B's config otherwise) with a sentencepiece model trained here, saved at
    `path` as ComfyUI's text_encoders/gemma_3_12B_it.safetensors holds it: transformers' language-model names under
    model., the tokenizer's model as the uint8 tensor spiece_model. (model, sentencepiece processor, path)."""
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
    config = Gemma3TextConfig(vocab_size=64, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                              query_pre_attn_scalar=8, sliding_window=1024, rope_parameters={
                                  "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                  "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}},
                              **sizes)
    gemma = Gemma3TextModel(config).eval()
    state = {"model." + k: v.contiguous() for k, v in gemma.state_dict().items()}
    state["spiece_model"] = torch.frombuffer(bytearray(model.getvalue()), dtype=torch.uint8)
    path.parent.mkdir(exist_ok=True)
    save_file(state, str(path))
    return gemma, spm.SentencePieceProcessor(model_proto=model.getvalue()), path


@pytest.fixture(scope="module")
def gemma(tiny):
    """Gemma 3 at a few channels beside the tiny checkpoint."""
    return gemma_file(tiny[1].parents[1] / "text_encoders" / "gemma_3_12B_it.safetensors", hidden_size=16,
                      intermediate_size=32, num_hidden_layers=2)


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
    assert (det.family, det.variant) == ("ltx2", "22B-dev")          # LTX-2.3 loads: tests/test_ltx23.py


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


def test_connectors_quantised_only_in_the_files_metadata_are_rotated_back(tiny, tmp_path):
    """A checkpoint whose text projection is int8_convrot, described only in the file's `_quantization_metadata` (no
    comfy_quant tensor): the connectors read their subset of the file through the shared loader's rules, so the
    weight is comfy-kitchen's dequantize_int8_convrot_weight of it, not the unrotated q * scale."""
    import json

    from safetensors.torch import load_file, save_file

    import comfy_convrot as cr
    from nodes.generate.ltx2_text import connectors
    name = "text_embedding_projection.aggregate_embed"
    state = load_file(str(tiny[1]))
    w = state[name + ".weight"].float()
    assert w.shape[1] % 16 == 0
    q, s = cr.quantize_int8_convrot_weight(w, 16)
    state[name + ".weight"], state[name + ".weight_scale"] = q, s
    path = tmp_path / "ltx-2-19b-distilled.safetensors"
    meta = {"layers": {name: {"format": "int8_tensorwise", "convrot": True, "convrot_groupsize": 16}}}
    save_file(state, str(path), metadata={"_quantization_metadata": json.dumps(meta)})
    got = connectors(path, torch.float32, "cpu").text_proj_in.weight.detach()
    want = cr.dequantize_int8_convrot_weight(q, s, 16)
    assert torch.equal(got, want)
    assert not torch.allclose(got, q.float() * s, atol=1e-3)      # the unrotated reading is far from it


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
    # the distilled LoRA (ComfyUI's names) changes the second pass only. Compared with a second run of the same
    # file: a process's first run (before the LoRA's layers are wrapped) differs from later ones by float rounding
    # (1.2e-6 here), which says nothing about the LoRA.
    again = run(yaml)
    plain = run(yaml.replace("strength: 1\n", "strength: 0\n"))
    assert torch.equal(plain["41"]["latent"].samples, again["41"]["latent"].samples)
    assert not torch.allclose(plain["70"]["latent"].samples, again["70"]["latent"].samples)


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


def _song(path, rate=16000, seconds=0.5, channels=2):
    """A WAV of two tones over noise (left and right differ: no spectrum's bin near float32's rounding, which the log
    would magnify) as 16-bit PCM."""
    import wave
    import numpy as np
    t = np.arange(int(rate * seconds)) / rate
    hiss = np.random.default_rng(channels).uniform(-0.2, 0.2, (2, len(t)))
    pcm = (np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1250 * t + 1)]) + hiss)[:channels]
    data = (pcm.T * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return data.T.astype("float64") / 32768.0


def _reference_audio_latent(avae, samples):
    """ComfyUI's LTXVAudioVAEEncode written out: torchaudio's MelSpectrogram as ComfyUI configures it (n_fft 1024,
    hop 160, 64 HTK mel bands from 0 to 8 kHz, magnitudes, periodic Hann window, reflect-padded centred frames) in
    numpy, log floored at 1e-5, diffusers' audio VAE encoder's mean, normalised by its statistics per (channel, bin)
    in patch space."""
    import numpy as np
    n_fft, hop, bins, rate = 1024, 160, 64, 16000
    x = np.pad(samples, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    frames = 1 + (x.shape[1] - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    spec = np.abs(np.fft.rfft(np.stack([x[:, i * hop:i * hop + n_fft] for i in range(frames)], 1) * window, axis=-1))
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    points = 700.0 * (10 ** (np.linspace(mel(0.0), mel(rate / 2), bins + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0, rate // 2, n_fft // 2 + 1)
    bank = np.zeros((n_fft // 2 + 1, bins))
    for m in range(bins):
        lo, mid, hi = points[m:m + 3]
        bank[:, m] = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    logmel = np.log(np.maximum(spec @ bank, 1e-5))               # [2, frames, bins]
    with torch.no_grad():
        z = avae.encode(torch.tensor(logmel[None], dtype=torch.float32)).latent_dist.mode()
    b, c, length, m = z.shape
    patched = z.permute(0, 2, 1, 3).reshape(b, length, c * m)
    patched = (patched - avae.latents_mean[:c * m]) / avae.latents_std[:c * m]
    return patched.reshape(b, length, c, m).permute(0, 2, 1, 3)


def test_a_given_song_is_encoded_as_comfyui_and_kept_while_the_video_is_made_to_it(tiny, gemma, tmp_path):
    """latent.set_sound (ComfyUI's LTXVAudioVAEEncode + SetLatentNoiseMask 0 + LTXVConcatAVLatent): the song's latent
    is ComfyUI's encoding written out (numpy mel, diffusers' audio VAE on the same weights); a mono file is that of
    both sides alike. generate.sample keeps the song exactly and makes the video to it: one Euler step from pure
    noise is the transformer's prediction with the video at timestep 1000 and the sound at 0 (ComfyUI's LTXAV
    timesteps for a noise mask of 0, the a2v gate at the sound's level), and differs from the video made to
    silence."""
    import numpy as np
    from graph_engine import Audio
    from graph_engine.context import Context
    from nodes.generate.loaders import load_parts
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.ltx2_sound import with_sound
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    parts, path = tiny
    loaded = load_parts(Context("load"), "auto", str(path))
    latent = empty_latent(loaded["vae"], 9, 64, 64, 24.0)
    samples = _song(tmp_path / "song.wav")
    logs = []
    given = with_sound(loaded["vae"], latent, Audio(str(tmp_path / "song.wav"), 0.0, 0.5), logs.append)
    want = _reference_audio_latent(parts["audio_vae"], samples)
    assert given.audio.shape == latent.audio.shape and given.audio_mask.flatten().tolist() == [0.0] * 9
    got = given.audio
    assert ((got - want[:, :, :9]).norm() / want[:, :, :9].norm()).item() < 1e-4
    mono = _song(tmp_path / "mono.wav", channels=1)
    short = with_sound(loaded["vae"], latent, Audio(str(tmp_path / "mono.wav"), 0.0, 0.2), logs.append)
    want = _reference_audio_latent(parts["audio_vae"], np.concatenate([mono, mono])[:, :3200])
    assert short.audio_mask.flatten().tolist() == [0.0] * want.shape[2] + [1.0] * (9 - want.shape[2])
    assert ((short.audio[:, :, :want.shape[2]] - want).norm() / want.norm()).item() < 1e-4
    assert "LTX-2 makes the sound after it" in logs[-1]
    # sampled: the song as it went in, the video made to it
    _, _, te_path = gemma
    te = load_text_encoder(ModelManager(), te_path.name, path.name, "auto", "cpu")
    pos = encode_prompt(te, PROMPT)
    out = run_sampling(loaded["model"], pos, None, given, steps=1, cfg=1.0, sampler="euler", seed=3, sigmas="1.0, 0.0")
    assert torch.equal(out.audio, given.audio)
    silent = run_sampling(loaded["model"], pos, None, latent, steps=1, cfg=1.0, sampler="euler", seed=3,
                          sigmas="1.0, 0.0")
    assert not torch.allclose(out.samples, silent.samples)
    # the seed's video noise (drawn before the sound's), then the transformer called as ComfyUI's LTXAV calls it
    noise = torch.randn(tuple(latent.samples.shape), generator=torch.Generator().manual_seed(3))
    tokens = noise.permute(0, 2, 3, 4, 1).reshape(1, -1, 8)
    model = parts["transformer"]
    e, m = pos.entries()[0].embeds, pos.entries()[0].mask
    cut = e.shape[-1] - model.audio_caption_projection.linear_1.in_features
    with torch.no_grad():
        v, _ = model(hidden_states=tokens, audio_hidden_states=given.audio.permute(0, 2, 1, 3).reshape(1, 9, 16),
                     encoder_hidden_states=e[..., :cut], audio_encoder_hidden_states=e[..., cut:],
                     encoder_attention_mask=m, audio_encoder_attention_mask=m, timestep=torch.full((1, 8), 1000.0),
                     audio_timestep=torch.zeros(1, 9), sigma=torch.tensor([1000.0]), audio_sigma=torch.tensor([0.0]),
                     num_frames=2, height=2, width=2, fps=24.0, audio_num_frames=9, use_cross_timestep=True,
                     return_dict=False)
    video = (tokens - v).reshape(1, 2, 2, 2, 8).permute(0, 4, 1, 2, 3)     # x0 = x - sigma * velocity at sigma 1
    assert ((out.samples - video).norm() / video.norm()).item() < 1e-5


def _song_prompt(song: str) -> dict:
    """ComfyUI's image+audio-to-video chain (video_ltx2_3_ia2v's, on an empty video latent) as an API prompt:
    LoadAudio, TrimAudioDuration to the clip, LTXVAudioVAEEncode, SetLatentNoiseMask with SolidMask 0,
    LTXVConcatAVLatent, one sampler step."""
    ckpt = "ltx-2-19b-distilled.safetensors"
    nodes = {"1": ("CheckpointLoaderSimple", {"ckpt_name": ckpt}),
             "2": ("LTXAVTextEncoderLoader", {"text_encoder": "gemma_3_12B_it.safetensors", "ckpt_name": ckpt,
                                              "device": "default"}),
             "3": ("CLIPTextEncode", {"text": PROMPT, "clip": ["2", 0]}),
             "4": ("EmptyLTXVLatentVideo", {"width": 64, "height": 64, "length": 9, "batch_size": 1}),
             "5": ("LTXVAudioVAELoader", {"ckpt_name": ckpt}),
             "6": ("LoadAudio", {"audio": song}),
             "7": ("TrimAudioDuration", {"audio": ["6", 0], "start_index": 0.0, "duration": 0.375}),
             "8": ("LTXVAudioVAEEncode", {"audio": ["7", 0], "audio_vae": ["5", 0]}),
             "9": ("SolidMask", {"value": 0.0, "width": 64, "height": 64}),
             "10": ("SetLatentNoiseMask", {"samples": ["8", 0], "mask": ["9", 0]}),
             "11": ("LTXVConcatAVLatent", {"video_latent": ["4", 0], "audio_latent": ["10", 0]}),
             "12": ("RandomNoise", {"noise_seed": 3}),
             "13": ("KSamplerSelect", {"sampler_name": "euler"}),
             "14": ("ManualSigmas", {"sigmas": "1.0, 0.0"}),
             "15": ("CFGGuider", {"model": ["1", 0], "positive": ["3", 0], "negative": ["3", 0], "cfg": 1.0}),
             "16": ("SamplerCustomAdvanced", {"noise": ["12", 0], "guider": ["15", 0], "sampler": ["13", 0],
                                              "sigmas": ["14", 0], "latent_image": ["11", 0]}),
             "17": ("LTXVSeparateAVLatent", {"av_latent": ["16", 0]}),
             "18": ("VAEDecodeAudio", {"samples": ["17", 1], "vae": ["5", 0]})}
    return {k: {"class_type": c, "inputs": i} for k, (c, i) in nodes.items()}


def test_comfyui_song_to_video_chain_imports_and_keeps_the_song(tiny, gemma, tmp_path, monkeypatch):
    """The ia2v chain maps every node exactly (TrimAudioDuration as io.trim_audio; the encoder, the noise mask 0 and
    the join as latent.set_sound on the video latent, with the checkpoint's VAE; VAEDecodeAudio of its sound as the
    clip's own) and runs: the sampled latent holds the song's first 0.375 s as latent.set_sound encodes it,
    untouched."""
    from app.comfyui import import_data
    from graph_engine import Audio
    from graph_engine.api import Session, load_workflow
    from graph_engine.context import Context
    from nodes.generate.loaders import load_parts
    from nodes.generate.ltx2_sound import with_sound
    from nodes.generate.vae_ops import empty_latent
    _song(tmp_path / "song.wav", seconds=1.0)
    res = import_data(_song_prompt(str(tmp_path / "song.wav")))
    assert {e.class_type: e.status for e in res.report.entries.values()} == dict.fromkeys(
        [n["class_type"] for n in _song_prompt("").values()], "exact") | {"LTXVAudioVAELoader": "approx"}
    # VAEDecodeAudio on a latent no model it knows sampled (EmptyLatentAudio's, no KSampler) is left unmapped, said why
    other = import_data({"1": {"class_type": "EmptyLatentAudio", "inputs": {"seconds": 47.6, "batch_size": 1}},
                         "2": {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["1", 0], "vae": ["3", 0]}},
                         "3": {"class_type": "VAELoader", "inputs": {"vae_name": "stable_audio_vae.safetensors"}}})
    decode, = [e for e in other.report.entries.values() if e.class_type == "VAEDecodeAudio"]
    assert decode.status == "unmapped" and "decodes LTX-2's and Stable Audio Open's sound" in decode.notes[-1]
    sound, = [n for n in res.graph.nodes.values() if n.type == "latent.set_sound"]
    assert {l.dst_port: l.src_port for l in res.graph.links_to(sound.id)} == {"vae": "vae", "latent": "latent",
                                                                                "audio": "audio"}
    monkeypatch.chdir(tmp_path)
    wf = tmp_path / "ia2v.kino.yaml"
    wf.write_text(res.yaml)
    out = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert out.ok, out.failed
    sampled, = [v["latent"] for k, v in out.outputs.items() if k.endswith("_16")]
    loaded = load_parts(Context("load"), "auto", str(tiny[1]))
    want = with_sound(loaded["vae"], empty_latent(loaded["vae"], 9, 64, 64, 24.0),
                      Audio(str(tmp_path / "song.wav"), 0.0, 0.375))
    assert torch.equal(sampled.audio, want.audio)
    assert sampled.audio_mask.sum() == 0        # still kept for a second pass (ComfyUI's separate keeps the mask)


def test_bad_songs_and_trims_are_named(tiny, tmp_path):
    """io.trim_audio cuts as ComfyUI's TrimAudioDuration (in the file's samples, a negative start from the end, the
    end held to the sound); latent.set_sound names a missing file, a file with no sound, a sound too short for the
    audio VAE, an empty one and a latent that is not LTX-2's; a 44.1 kHz song is read at the VAE's 16 kHz."""
    from graph_engine import Audio
    from graph_engine.context import Context
    from nodes.generate.latent import Latent
    from nodes.generate.loaders import load_parts
    from nodes.generate.ltx2_sound import stereo, with_sound
    from nodes.generate.vae_ops import empty_latent
    from nodes.io.sound import trim
    song = tmp_path / "song.wav"
    _song(song, rate=8000, seconds=1.0)
    whole = Audio(str(song), 0.0, 1.0)
    for start, duration, first, count in ((-0.25, 10.0, 6000, 2000), (0.1, 0.2, 800, 1600), (0.10004, 0.2, 800, 1600),
                                          (5.0, 1.0, 7999, 1)):
        part = trim(whole, start, duration)
        assert (part.start * 8000, part.duration * 8000) == pytest.approx((first, count), abs=1e-9)
    with pytest.raises(NodeError, match="nothing to take: the sound lasts 0:01.00"):
        trim(whole, 0.5, 0.0)
    loaded = load_parts(Context("load"), "auto", str(tiny[1]))
    latent = empty_latent(loaded["vae"], 9, 64, 64, 24.0)
    with pytest.raises(NodeError, match="gone.wav is not there"):
        with_sound(loaded["vae"], latent, Audio(str(tmp_path / "gone.wav"), 0.0, 1.0))
    (tmp_path / "notes.wav").write_text("not a sound")
    with pytest.raises(NodeError, match="notes.wav cannot be read as sound"):
        with_sound(loaded["vae"], latent, Audio(str(tmp_path / "notes.wav"), 0.0, 1.0))
    _song(tmp_path / "empty.wav", seconds=0.0)
    with pytest.raises(NodeError, match=r"empty.wav holds a sound track with no sound in it \(0 samples\)"):
        with_sound(loaded["vae"], latent, Audio(str(tmp_path / "empty.wav"), 0.0, None))
    with pytest.raises(NodeError, match="the sound is 20 ms long: LTX-2's audio VAE needs more than 32 ms"):
        with_sound(loaded["vae"], latent, Audio(str(song), 0.0, 0.02))
    with pytest.raises(NodeError, match="latent.set_sound gives an LTX-2 latent its sound"):
        with_sound(loaded["vae"], Latent(torch.zeros(1, 4, 1, 8, 8), "sd15", 1, 24.0, 64, 64), whole)
    hi = tmp_path / "hi.wav"
    _song(hi, rate=44100, seconds=0.5)
    assert stereo(Audio(str(hi), 0.0, 0.5), 16000).shape == (2, 8000)
    assert with_sound(loaded["vae"], latent, Audio(str(hi), 0.0, 0.5)).audio_mask.sum() == 0


def test_reference_voice_is_read_before_the_sound_with_identity_guidance(tiny, gemma, tmp_path):
    """condition.reference_voice (ComfyUI's LTXVReferenceAudio): one Euler step from noise is ComfyUI's LTXAV
    written out: the voice's tokens (its latent as latent.set_sound encodes it) before the clip's sound at timestep
    0, their RoPE times ending one latent step (40 ms) before the clip's start, the output trimmed of them; plus
    identity guidance, 2 x (prediction - prediction without the voice)."""
    from graph_engine import Audio
    from graph_engine.context import Context
    from nodes.generate.loaders import load_parts
    from nodes.generate.ltx2_sound import encode, stereo, with_reference
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    parts, path = tiny
    loaded = load_parts(Context("load"), "auto", str(path))
    te = load_text_encoder(ModelManager(), gemma[2].name, path.name, "auto", "cpu")
    pos = encode_prompt(te, PROMPT)
    _song(tmp_path / "voice.wav", seconds=0.3)
    voice = Audio(str(tmp_path / "voice.wav"), 0.0, 0.3)
    model, positive, _ = with_reference(loaded["model"], pos, pos, loaded["vae"], voice, 2.0, 0.0, 1.0)
    latent = empty_latent(loaded["vae"], 9, 64, 64, 24.0)
    out = run_sampling(model, positive, None, latent, steps=1, cfg=1.0, sampler="euler", seed=3, sigmas="1.0, 0.0")
    gen = torch.Generator().manual_seed(3)
    video = torch.randn(tuple(latent.samples.shape), generator=gen).permute(0, 2, 3, 4, 1).reshape(1, 8, 8)
    sound = torch.randn(tuple(latent.audio.shape), generator=gen).permute(0, 2, 1, 3).reshape(1, 9, 16)
    ref = encode(loaded["vae"].pipe, stereo(voice, 16000)).permute(0, 2, 1, 3).reshape(1, -1, 16)
    r = ref.shape[1]
    # audio RoPE times in seconds, [start, end) per latent step: mel frames 4i-3 (causal, from 0) to 4i+1, 10 ms each
    times = lambda k: torch.stack([(4 * torch.arange(k) - 3).clamp(min=0), 4 * torch.arange(k) + 1], -1) * 0.01  # noqa: E731,E501
    before = times(r)
    coords = torch.cat([before - (before[-1, 1] + 0.04), times(9)])[None, None]
    model_t, e, m = parts["transformer"], pos.embeds, pos.mask
    cut = e.shape[-1] - model_t.audio_caption_projection.linear_1.in_features

    def x0(audio, audio_timestep, **kw):
        with torch.no_grad():
            v, a = model_t(hidden_states=video, audio_hidden_states=audio, encoder_hidden_states=e[..., :cut],
                           audio_encoder_hidden_states=e[..., cut:], encoder_attention_mask=m,
                           audio_encoder_attention_mask=m, timestep=torch.full((1, 8), 1000.0),
                           audio_timestep=audio_timestep, sigma=torch.tensor([1000.0]),
                           audio_sigma=torch.tensor([1000.0]), num_frames=2, height=2, width=2, fps=24.0,
                           audio_num_frames=9, use_cross_timestep=True, return_dict=False, **kw)
        return video - v, sound - a[:, -9:]
    with_voice = x0(torch.cat([ref, sound], 1), torch.cat([torch.zeros(1, r), torch.full((1, 9), 1000.0)], 1),
                    audio_coords=coords)
    without = x0(sound, torch.full((1, 9), 1000.0))
    plain, _, _ = with_reference(loaded["model"], pos, pos, loaded["vae"], voice, 0.0, 0.0, 1.0)
    unguided = run_sampling(plain, positive, None, latent, steps=1, cfg=1.0, sampler="euler", seed=3,
                            sigmas="1.0, 0.0")
    # the guided result triples the float32 rounding of the two passes, hence its wider bound
    for got, want, bound in ((unguided, with_voice, 1e-5),
                             (out, [w + (w - wo) * 2.0 for w, wo in zip(with_voice, without)], 5e-5)):
        for mine, theirs in ((got.samples.permute(0, 2, 3, 4, 1).reshape(1, 8, 8), want[0]),
                             (got.audio.permute(0, 2, 1, 3).reshape(1, 9, 16), want[1])):
            assert ((mine - theirs).norm() / theirs.norm()).item() < bound
    assert not torch.allclose(with_voice[1], without[1])


def test_guide_reference_voice_and_noise_masks_in_one_pass(tiny, gemma):
    """condition.guide_video, condition.reference_voice and both noise masks (a start frame, a song's first steps)
    in one model pass, as ComfyUI's LTXAV takes them together: the guide's frame after the video's in the run's
    state (its noise mask 0: strength 1) at timestep 0 and frame 0's places, the voice's before the sound at timestep
    0 ending 40 ms before it, each kept token at timestep 0, the cross-attention gates at each stream's highest
    timestep; the clip's sound comes out without the voice's."""
    import dataclasses
    from graph_engine.context import Context
    from nodes.generate.adapters import get_adapter
    from nodes.generate.loaders import load_parts
    from nodes.generate.ltx2_guide import AT, GUIDE, WEIGHT
    from nodes.generate.ltx2_sound import REFERENCE
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    parts, path = tiny
    loaded = load_parts(Context("load"), "auto", str(path))
    te = load_text_encoder(ModelManager(), gemma[2].name, path.name, "auto", "cpu")
    rng = torch.Generator().manual_seed(5)
    guide, ref = torch.randn(1, 8, 1, 2, 2, generator=rng), torch.randn(1, 3, 16, generator=rng)
    model_t = parts["transformer"]
    place = model_t.rope.prepare_video_coords
    # the guide's tokens at frame 0 in pixel frames (the causal first frame), at strength 1
    at = place(1, 1, 2, 2, "cpu", fps=1.0)
    pos = encode_prompt(te, PROMPT).with_extra(**{GUIDE: guide, AT: at, WEIGHT: torch.ones(4), REFERENCE: ref})
    latent = empty_latent(loaded["vae"], 9, 64, 64, 24.0)
    mask, heard = torch.ones(1, 1, 3, 2, 2), torch.ones(1, 1, 9, 1)
    mask[:, :, 0], mask[:, :, 2], heard[:, :, :4] = 0.0, 0.0, 0.0
    video, sound = torch.randn(1, 8, 2, 2, 2, generator=rng), torch.randn(1, 1, 9, 16, generator=rng)
    video = torch.cat([video, guide], 2)        # the run's state: the guide's frame after the video's
    latent = dataclasses.replace(latent, samples=video, mask=mask, audio_mask=heard)
    adapter, handle = get_adapter("ltx2"), loaded["model"]
    handle = adapter.for_latent(handle, latent)
    x_in = torch.cat([video.reshape(1, -1), sound.reshape(1, -1)], 1).view(1, 1, 1, 1, -1)
    inputs = adapter.conditioning_inputs(handle, [pos], [0, 1], 1, torch.device("cpu"), torch.float32)
    inputs["noise_mask"] = adapter.pack_mask(latent)
    t = torch.tensor([700.0])
    with torch.no_grad():
        out = adapter.forward(handle, x_in, t, inputs).reshape(1, -1)

    e, m = pos.embeds, pos.mask
    cut = e.shape[-1] - model_t.audio_caption_projection.linear_1.in_features
    tokens = video.permute(0, 2, 3, 4, 1).reshape(1, 12, 8)
    video_t = torch.cat([torch.zeros(4), torch.full((4,), 700.0), torch.zeros(4)])[None]
    coords = torch.cat([place(1, 2, 2, 2, "cpu", fps=24.0), place(1, 1, 2, 2, "cpu", fps=24.0)], 2)
    # audio RoPE times in seconds, [start, end) per latent step: mel frames 4i-3 (causal, from 0) to 4i+1, 10 ms each
    times = lambda k: torch.stack([(4 * torch.arange(k) - 3).clamp(min=0), 4 * torch.arange(k) + 1], -1) * 0.01  # noqa: E731,E501
    before = times(3)
    audio_coords = torch.cat([before - (before[-1, 1] + 0.04), times(9)])[None, None]
    audio = torch.cat([ref, sound.permute(0, 2, 1, 3).reshape(1, 9, 16)], 1)
    audio_t = torch.cat([torch.zeros(3 + 4), torch.full((5,), 700.0)])[None]
    with torch.no_grad():
        v, a = model_t(hidden_states=tokens, audio_hidden_states=audio, encoder_hidden_states=e[..., :cut],
                       audio_encoder_hidden_states=e[..., cut:], encoder_attention_mask=m,
                       audio_encoder_attention_mask=m, timestep=video_t, audio_timestep=audio_t,
                       sigma=torch.tensor([700.0]), audio_sigma=torch.tensor([700.0]), num_frames=2, height=2,
                       width=2, fps=24.0, audio_num_frames=9, video_coords=coords, audio_coords=audio_coords,
                       use_cross_timestep=True, return_dict=False)
    want_v = v.reshape(1, 3, 2, 2, 8).permute(0, 4, 1, 2, 3).reshape(1, -1)
    want_a = a[:, 3:].reshape(1, 9, 1, 16).permute(0, 2, 1, 3).reshape(1, -1)
    want = torch.cat([want_v, want_a], 1)
    assert ((out - want).norm() / want.norm()).item() < 1e-5


def test_validate_finds_ltx2s_checkpoint_for_its_text_encoder_in_checkpoints(tmp_path, monkeypatch):
    """ComfyUI's LTXAVTextEncoderLoader takes its ckpt_name from checkpoints/; its import's name2 was looked up in
    text_encoders/ only, so `kinograph validate` called a checkpoint that was there missing and said to put it into
    text_encoders/. It is found in checkpoints/, and a missing one is sent there; another second encoder still goes
    to text_encoders/."""
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    from graph_engine.validate import missing_model_files
    (tmp_path / "checkpoints").mkdir()
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    body = ("kinograph: 1\nnodes:\n  te:\n    type: load.text_encoder\n    params: {name: %s, name2: %s, type: %s}\n"
            "  enc: {type: encode.text, inputs: {text_encoder: te.text_encoder}, params: {prompt: a}}\n")

    def problems(name, name2, kind):
        wf = load_workflow(text=body % (name, name2, kind), check=False)
        return [p.message for p in missing_model_files(wf, default_registry()) if "name2" in p.message]
    assert "checkpoints" in problems("gemma_3_12B_it.safetensors", "ltx-2-19b-dev-fp8.safetensors", "ltx2")[0]
    (tmp_path / "checkpoints" / "ltx-2-19b-dev-fp8.safetensors").write_bytes(b"")
    assert problems("gemma_3_12B_it.safetensors", "ltx-2-19b-dev-fp8.safetensors", "ltx2") == []
    assert "text_encoders" in problems("llava_llama3_fp8_scaled.safetensors", "clip_l.safetensors", "hunyuan_video")[0]


def test_a_wrong_ltx2_checkpoint_for_the_prompt_is_refused_before_gemma_loads(tmp_path, monkeypatch):
    """LTX-2's text encoder loader built Gemma 3 (12B) first and only then read the checkpoint's connectors, so a Wan
    file in the checkpoint's place was named after the 12B load; its header alone tells."""
    from safetensors.torch import save_file
    from nodes.generate import split
    from nodes.generate.detect import detect_file
    from nodes.generate.ltx2_text import load_ltx2_text
    gemma = tmp_path / "gemma_3_12B_it.safetensors"
    save_file({"model.layers.0.post_feedforward_layernorm.weight": torch.zeros(8),
               "model.layers.0.self_attn.q_norm.weight": torch.zeros(8),
               "model.embed_tokens.weight": torch.zeros(4, 8)}, str(gemma))
    wan = tmp_path / "ltx-2-19b-dev.safetensors"
    save_file({"head.modulation": torch.zeros(1, 2, 8), "patch_embedding.weight": torch.zeros(8, 16, 1, 2, 2),
               "blocks.0.self_attn.q.weight": torch.zeros(8, 8)}, str(wan))

    def heavy(*a, **k):
        raise AssertionError("Gemma was loaded before the checkpoint was checked")
    monkeypatch.setattr(split, "_module", heavy)
    with pytest.raises(NodeError, match=r"ltx-2-19b-dev.safetensors is .*wan.*give the text encoder loader"):
        load_ltx2_text(None, gemma, detect_file(gemma), str(wan), "ltx2", "cpu")
