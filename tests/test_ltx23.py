"""LTX-2.3 from its all-in-one checkpoint (checkpoints/ltx-2.3-22b-dev.safetensors, as ComfyUI's LTX-2.3 templates
load it): detected by its own tensors, loaded, and a text-to-video run (video and sound) against diffusers'
LTX2Pipeline on the same tiny weights. Against LTX-2.0 it has gated attention, prompt-modulated cross-attention,
per-stream text projections in place of the transformer's caption projection, a four-level video decoder and a
vocoder with bandwidth extension to 48 kHz; the names below are those of diffusers' conversion script for 2.3."""
from __future__ import annotations

import re

import numpy as np
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
    import json
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
            audio_cross_attn_mod=True, use_prompt_embeddings=False, perturbed_attn=True, rope_type="split"),
        connectors=LTX2TextConnectors(
            caption_channels=3840, text_proj_in_factor=2, video_connector_num_attention_heads=2,
            video_connector_attention_head_dim=8, video_connector_num_layers=1,
            video_connector_num_learnable_registers=4, video_gated_attn=True, audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=4, audio_connector_num_layers=1,
            audio_connector_num_learnable_registers=4, audio_gated_attn=True, per_modality_projections=True,
            video_hidden_dim=16, audio_hidden_dim=8, proj_bias=True, rope_type="split"),
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
    # the release's own config, as Lightricks' files carry it: rotary embeddings in split halves (the classes'
    # default, and what a file without it gets, is interleaved)
    config = {"transformer": {"rope_type": "split", "frequencies_precision": "float64"}}
    save_file(_original(parts), str(path), metadata={"config": json.dumps(config)})
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


def test_ltx23_template_nodes_map_as_comfyui_runs_them():
    """SamplerEulerAncestral at eta 0 (the LTX-2.3 templates') is Euler, at eta 1 euler_ancestral, else near;
    TextGenerateLTX2Prompt hands its prompt on as written and its language model (with its LoRA) does not run;
    LTXVImgToVideoInplace's bypass is read; LTXVDualCFGGuider is CFGGuider's cfg, the sound's own scale named where
    it differs."""
    import copy
    import json
    from pathlib import Path
    from app.comfyui import import_data
    data = Path(__file__).parent / "data" / "comfyui" / "templates"
    flf = json.loads((data / "video_ltx2_3_flf2v.json").read_text())
    res = import_data(flf)
    assert {e.status for e in res.report.entries.values() if e.class_type == "SamplerEulerAncestral"} == {"exact"}
    assert {n.params["sampler"] for n in res.graph.nodes.values() if n.type == "generate.sample"} == {"euler"}
    for eta, sampler, status in ((1, "euler_ancestral", "exact"), (0.5, "euler_ancestral", "approx")):
        changed = copy.deepcopy(flf)
        for sg in changed["definitions"]["subgraphs"]:
            for n in sg["nodes"]:
                if n["type"] == "SamplerEulerAncestral":
                    n["widgets_values"][0] = eta
        res = import_data(changed)
        assert {e.status for e in res.report.entries.values() if e.class_type == "SamplerEulerAncestral"} == {status}
        assert {n.params["sampler"] for n in res.graph.nodes.values() if n.type == "generate.sample"} == {sampler}
    t2v = json.loads((data / "video_ltx2_3_t2v.json").read_text())
    res = import_data(t2v)
    statuses = {e.class_type: (e.status, e.notes) for e in res.report.entries.values()}
    assert statuses["TextGenerateLTX2Prompt"][0] == "approx" and "as written" in statuses["TextGenerateLTX2Prompt"][1][0]
    assert statuses["LoraLoader"][0] == "ui"            # the abliterated Gemma LoRA only fed the enhancer
    assert [n.params["path"] for n in res.graph.nodes.values() if n.type == "lora.image"] == [
        "ltx_2.3_22b_distilled_1.1_lora_dynamic_fro09_avg_rank_111_bf16.safetensors"]
    # its LTXVImgToVideoInplace nodes are bypassed (a PrimitiveBoolean): text to video, no start picture (bypass was
    # not read, so the t2v template started from its black EmptyImage)
    assert not [n for n in res.graph.nodes.values() if n.type == "latent.start_image"]
    texts = [n.params["text"] for n in res.graph.nodes.values() if n.type == "encode.text"]
    assert any(t.startswith("Dynamic cinematic close-up of high-tech modular machinery") for t in texts)
    graph = {"1": {"class_type": "LTXVDualCFGGuider", "inputs": {"model": ["2", 0], "positive": ["3", 0],
                                                                 "negative": ["3", 0], "video_cfg": 3.0,
                                                                 "audio_cfg": 3.0}},
             "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltx-2.3-22b-dev.safetensors"}},
             "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "rain", "clip": ["2", 1]}},
             "4": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 64, "height": 64, "length": 9,
                                                                    "batch_size": 1}},
             "5": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
             "6": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}},
             "7": {"class_type": "BasicScheduler", "inputs": {"model": ["2", 0], "scheduler": "simple", "steps": 2,
                                                              "denoise": 1.0}},
             "8": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["6", 0], "guider": ["1", 0],
                                                                     "sampler": ["5", 0], "sigmas": ["7", 0],
                                                                     "latent_image": ["4", 0]}},
             "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["2", 2]}},
             "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "x"}}}
    for audio, status in ((3.0, "exact"), (7.0, "approx")):
        graph["1"]["inputs"]["audio_cfg"] = audio
        res = import_data(graph)
        entry, = [e for e in res.report.entries.values() if e.class_type == "LTXVDualCFGGuider"]
        sample, = [n for n in res.graph.nodes.values() if n.type == "generate.sample"]
        assert (entry.status, sample.params["cfg"]) == (status, 3.0)
    assert entry.notes == ["audio_cfg 7.0 is not carried: Kinograph guides the sound at the video's cfg 3.0"]


def _template_files(tiny23):
    """The files ComfyUI's LTX-2.3 templates name, as links to the tiny model or tiny files of their own: the fp8
    checkpoints, Gemma's NVFP4 file, the distilled LoRA and the x2 latent upscaler."""
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel
    from safetensors.torch import save_file
    from comfy_layouts import link_as
    _, path, _, te_path = tiny23
    models = path.parents[1]
    for name in ("ltx-2.3-22b-dev-fp8.safetensors", "ltx-2.3-22b-distilled-fp8.safetensors"):
        link_as(models / "checkpoints" / name, path)
    link_as(models / "text_encoders" / "gemma_3_12B_it_fp4_mixed.safetensors", te_path)
    for folder in ("loras", "latent_upscale_models"):
        (models / folder).mkdir(exist_ok=True)
    torch.manual_seed(5)
    save_file({f"diffusion_model.transformer_blocks.0.attn1.to_q.lora_{ab}.weight": torch.randn(*shape)
               for ab, shape in (("A", (4, 16)), ("B", (16, 4)))},
              str(models / "loras" / "ltx_2.3_22b_distilled_1.1_lora_dynamic_fro09_avg_rank_111_bf16.safetensors"))
    up = LTXLatentUpsamplerModel(in_channels=8, mid_channels=32, num_blocks_per_stage=1).state_dict()
    save_file({k: v.contiguous() for k, v in up.items()},
              str(models / "latent_upscale_models" / "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"))


def test_comfyui_ltx23_t2v_template_runs(tiny23, tmp_path, monkeypatch):
    """ComfyUI's video_ltx2_3_t2v template on the tiny 2.3 model under the template's file names (its 640x360 first
    pass made 64x32, then LTX-2.3's x2 latent upscaler and the distilled LoRA's second pass): it runs to an MP4 with
    video and sound, from the prompt as written (its enhancer and the enhancer's Gemma LoRA do not run), its
    frame count floored to 8n+1 as ComfyUI's empty latent floors it (126 to 121; here 20 to 17)."""
    import json
    from pathlib import Path
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    _template_files(tiny23)
    data = json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" / "video_ltx2_3_t2v.json").read_text())
    res = import_data(data)
    assert "unmapped" not in {e.status for e in res.report.entries.values()}
    assert res.yaml.count("frames: 126") == 1               # 5 s at 25 fps, which ComfyUI floors to 121
    yaml = res.yaml.replace("width: 640\n      height: 360", "width: 64\n      height: 32").replace(
        "frames: 126", "frames: 20")
    monkeypatch.chdir(tmp_path)
    wf = tmp_path / "ltx23.kino.yaml"
    wf.write_text(yaml)
    logs = []
    out = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False,
                                    on_event=lambda e: logs.append(e["message"]) if e["event"] == "log" else None)
    assert out.ok, out.failed
    # an off-rule count is floored as ComfyUI's latent floors it (the template's 126 was refused as not 8n+1)
    assert "LTX-2 takes 8n+1 frames: 20 is made as 17 (size_fit floor, as ComfyUI's empty latent does)" in logs
    import av
    saved = sorted((tmp_path / "out").rglob("*.mp4"))
    with av.open(str(saved[0])) as f:
        assert len(f.streams.video) == 1 and len(f.streams.audio) == 1
        video = f.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height, video.frames) == (128, 64, 17)


@pytest.mark.parametrize("name, sizes, made, guides", [
    # image and song to video: its song trimmed to 9 s (here 1 s of a 0.5 s song), the picture as the start frame
    ("video_ltx2_3_ia2v.json", (("width: 640\n      height: 360", "width: 64\n      height: 32"),
                                ("frames: 217", "frames: 17"), ("ltx_23_audio.mp3", "song.wav")), (128, 64), []),
    # first and last frame: two guides (condition.guide_video at frames 0 and -1, strength 0.7)
    ("video_ltx2_3_flf2v.json", (("width: 1280\n      height: 720\n      fps", "width: 64\n      height: 32\n"
                                                                          "      fps"), ("frames: 126", "frames: 17")),
     (64, 32), [(-1, 0.7), (0, 0.7)]),
])
def test_comfyui_ltx23_picture_templates_run(tiny23, tmp_path, monkeypatch, name, sizes, made, guides):
    """ComfyUI's video_ltx2_3_ia2v (a picture sung to a song: io.trim_audio, latent.set_sound, latent.start_image)
    and video_ltx2_3_flf2v (first and last pictures as LTXVAddGuide at strength 0.7: condition.guide_video, which
    the import now carries) on the tiny 2.3 model under the templates' file names, made 64x32 and 17 frames: each
    runs to an MP4 with video and sound (ia2v's second pass at twice the size); the guides' frames are cut after
    the run."""
    import json
    from pathlib import Path
    import av
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from test_ltx2 import _song
    _template_files(tiny23)
    res = import_data(json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" / name).read_text()))
    assert not {e.status for e in res.report.entries.values()} & {"unmapped", "missing"}
    assert sorted((n.params["frame_idx"], n.params["strength"]) for n in res.graph.nodes.values()
                  if n.type == "condition.guide_video") == guides
    assert {e.status for e in res.report.entries.values() if e.class_type == "LTXVAddGuide"} <= {"exact"}
    yaml = res.yaml
    for old, new in sizes:
        assert yaml.count(old) == 1, old
        yaml = yaml.replace(old, new)
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    for picture in {m for m in re.findall(r"path: (\S+\.png)", yaml)}:
        Image.fromarray(rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)).save(tmp_path / picture)
    _song(tmp_path / "song.wav")
    wf = tmp_path / "run.kino.yaml"
    wf.write_text(yaml)
    out = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert out.ok, out.failed
    saved = sorted((tmp_path / "out").rglob("*.mp4"))
    with av.open(str(saved[0])) as f:
        assert len(f.streams.video) == 1 and len(f.streams.audio) == 1
        video = f.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height, video.frames) == (*made, 17)
