"""LTX-Video from the files a ComfyUI user holds (checkpoints/ltx-video-2b-v0.9.5.safetensors: transformer
and VAE in Lightricks' names; text_encoders/t5xxl_fp16.safetensors) gives exactly what the same model
gives from a diffusers folder, through the graph."""
import pytest
import torch

from tests.comfy_layouts import built, build_ltx, same_frames, text_to_video


@pytest.fixture(scope="module")
def ltx(tmp_path_factory):
    yield from built(build_ltx, tmp_path_factory)


def test_comfyui_files_run_like_the_diffusers_folder(ltx):
    ref = text_to_video(f"  load: {{type: load.ltx, params: {{path: '{ltx['diffusers']}'}}}}",
                        "load.model", "load.text_encoder", "load.vae", frames=9)
    got = text_to_video(f"  load: {{type: load.ltx, params: {{path: '{ltx['checkpoint']}'}}}}\n"
                        f"  text: {{type: load.text_encoder, params: {{name: '{ltx['text_encoder']}', type: ltxv}}}}",
                        "load.model", "text.text_encoder", "load.vae", frames=9)
    assert ref[0].shape == (1, 8, 2, 2, 2) and ref[1].shape == (9, 64, 64, 3)
    assert torch.equal(ref[0], got[0]) and ref[0].abs().sum() > 0
    same_frames(ref[1], got[1])


def test_split_loaders_take_the_checkpoint(ltx):
    """load.diffusion_model and load.vae each read their part of the all-in-one checkpoint."""
    ref = text_to_video(f"  load: {{type: load.ltx, params: {{path: '{ltx['diffusers']}'}}}}",
                        "load.model", "load.text_encoder", "load.vae", frames=9)
    got = text_to_video(f"  unet: {{type: load.diffusion_model, params: {{name: '{ltx['checkpoint']}'}}}}\n"
                        f"  vae: {{type: load.vae, params: {{name: '{ltx['checkpoint']}'}}}}\n"
                        f"  text: {{type: load.text_encoder, params: {{name: '{ltx['text_encoder']}', type: ltxv}}}}",
                        "unet.model", "text.text_encoder", "vae.vae", frames=9)
    assert torch.equal(ref[0], got[0])
    same_frames(ref[1], got[1])


def test_shipped_comfyui_example_runs_from_a_models_folder(ltx, tmp_path):
    from tests.comfy_layouts import run_example
    out = tmp_path / "ltx.mp4"
    got = run_example("ltx", ltx["models"], out, ["latent.frames=9", "latent.width=64", "latent.height=64",
                                                  "sample.steps=2"])
    assert got[0].shape == (1, 8, 2, 2, 2) and out.stat().st_size > 0


def test_files_are_recognised_and_reported_loadable(ltx):
    from nodes.generate.model_manager import describe_model
    ck = describe_model(ltx["checkpoint"])
    assert (ck["family"], ck["role"], ck["loads"]) == ("ltx", "checkpoint", "yes")
    te = describe_model(ltx["text_encoder"])
    assert (te["family"], te["role"], te["loads"]) == ("t5", "text_encoder", "yes")


@pytest.mark.parametrize("version", ["0.9.0", "0.9.1", "0.9.5"])
def test_vae_of_every_released_generation_converts_and_builds(version):
    """The VAE generation is read from the structure, and for 0.9.0/0.9.1 (where diffusers' own converter
    picks the right table at any width) the renames equal diffusers' exactly."""
    import dataclasses
    from diffusers.loaders.single_file_utils import convert_ltx_vae_checkpoint_to_diffusers
    from nodes.generate import converters
    from nodes.generate.converters import ltx as conv
    from nodes.generate.detect import detect_state_dict
    from tests.comfy_layouts import ltx_vae, ltx_vae_original
    torch.manual_seed(0)
    vae = ltx_vae(version)
    state = vae.state_dict()
    original = ltx_vae_original(state, version)
    assert conv.vae_version(original) == version
    got = conv.to_diffusers(dict(original))["vae"]
    assert set(got) == set(state) and all(torch.equal(got[k], state[k]) for k in state)
    if version != "0.9.5":
        theirs = convert_ltx_vae_checkpoint_to_diffusers(dict(original))
        assert set(theirs) == set(got) and all(torch.equal(theirs[k], got[k]) for k in got)
    det = dataclasses.replace(detect_state_dict(original), role="vae", prefix="")
    built = converters.build(det, original, torch.float32, "test")
    z = torch.randn(1, 8, 2, 2, 2)
    temb = torch.zeros(1) if vae.config.timestep_conditioning else None
    with torch.no_grad():
        assert torch.allclose(built.decode(z, temb).sample, vae.eval().decode(z, temb).sample, atol=1e-5)


def test_13b_transformer_keeps_its_32_heads():
    """ltxv-13b-0.9.7/0.9.8 have 32 heads of 128 (inner 4096), the 2B 32 of 64: the head count is fixed and the
    width per head follows from the file. A 64-wide head read into a 13B-shaped file split it into 64 heads,
    which loads without complaint and attends wrongly."""
    from diffusers import LTXVideoTransformer3DModel
    from nodes.generate import converters
    from nodes.generate.detect import detect_state_dict
    from tests.comfy_layouts import ltx_transformer_original
    torch.manual_seed(0)
    ref = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, num_attention_heads=32, attention_head_dim=4,
                                     cross_attention_dim=128, num_layers=2, caption_channels=16).eval()
    original = ltx_transformer_original(ref.state_dict())
    det = detect_state_dict(original)
    assert (det.family, det.role) == ("ltx", "diffusion_model")
    built = converters.build(det, original, torch.float32, "test")
    assert (built.config.num_attention_heads, built.config.attention_head_dim, built.config.num_layers) == (32, 4, 2)
    x, text = torch.randn(1, 8, 8), torch.randn(1, 5, 16)
    kw = dict(encoder_attention_mask=torch.ones(1, 5), timestep=torch.tensor([500]), num_frames=2, height=2, width=2,
              return_dict=False)
    with torch.no_grad():
        assert torch.allclose(built(x, text, **kw)[0], ref(x, text, **kw)[0], atol=1e-5)


def _tiny_upsampler(**kw):
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel
    torch.manual_seed(1)
    return LTXLatentUpsamplerModel(in_channels=8, mid_channels=32, num_blocks_per_stage=1, **kw).eval()


def _comfy_upscale_workflow(loader: dict) -> dict:
    """ComfyUI's API format: text-to-video with the checkpoint, then the latent upscaler from `loader`, decoded."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltx-video-2b-v0.9.5.safetensors"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "ltxv"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "5": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 32, "height": 32, "length": 9, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "seed": 3, "steps": 2, "cfg": 1.0,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "7": loader,
        "8": {"class_type": "LTXVLatentUpsampler", "inputs": {"samples": ["6", 0], "upscale_model": ["7", 0],
                                                              "vae": ["1", 2]}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["9", 0], "filename_prefix": "up", "fps": 24,
                                                            "lossless": False, "quality": 90, "method": "default"}}}


@pytest.fixture(scope="module")
def upscaled(ltx, tmp_path_factory):
    """ltxv-spatial-upscaler-0.9.8.safetensors (tiny, random) in latent_upscale_models/, and the ComfyUI workflow with
    core's loader run once: {"res", "net", "core", "pack" (the imports with core's and Lightricks' loader), "vae"
    (the diffusers VAE of the same checkpoint)}."""
    from diffusers import AutoencoderKLLTXVideo
    from safetensors.torch import save_file

    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    net = _tiny_upsampler()
    folder = ltx["models"] / "latent_upscale_models"
    folder.mkdir(exist_ok=True)
    save_file(net.state_dict(), str(folder / "ltxv-spatial-upscaler-0.9.8.safetensors"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KINOGRAPH_MODELS", str(ltx["models"]))
        core = import_data(_comfy_upscale_workflow({"class_type": "LatentUpscaleModelLoader", "inputs": {
            "model_name": "ltxv-spatial-upscaler-0.9.8.safetensors"}}))
        pack = import_data(_comfy_upscale_workflow({"class_type": "LTXVLatentUpsamplerModelLoader", "inputs": {
            "upscale_model": "ltxv-spatial-upscaler-0.9.8.safetensors", "spatial_upsample": True,
            "temporal_upsample": False}}))
        out = tmp_path_factory.mktemp("upscaled") / "up.webp"
        res = Session(device="cpu").run(load_workflow(text=core.yaml, check=True), use_cache=False,
                                        overrides=[f"save_animated_webp_10.path={out}"])
    assert res.ok, res.failed
    return {"res": res, "net": net, "core": core, "pack": pack,
            "vae": AutoencoderKLLTXVideo.from_pretrained(str(ltx["diffusers"] / "vae")).eval()}


def test_spatial_upscaler_file_doubles_the_latent_like_diffusers(ltx, upscaled):
    """The upscaler in a ComfyUI workflow with core's loader and LTXVLatentUpsampler: the upscaled latent equals
    LTXLatentUpsamplePipeline's on the same sampled latent and VAE and decodes at twice the size; Lightricks' own
    loader imports the same; any other file is refused by name. Temporal and spatio-temporal layouts are read from
    shapes, and `kinograph info` names the file and the node that runs it."""
    from diffusers import LTXLatentUpsamplePipeline

    from graph_engine import NodeError
    from nodes.generate.detect import detect_state_dict
    from nodes.generate.ltx_upsampler import load_upsampler, upsampler_config
    from nodes.generate.model_manager import describe_model
    res = upscaled["res"]
    assert upscaled["core"].report.summary() == "10 mapped exactly" and upscaled["pack"].yaml == upscaled["core"].yaml
    low, up = res.outputs["k_sampler_6"]["latent"], res.outputs["ltxv_latent_upsampler_8"]["latent"]
    with torch.no_grad():
        ref = LTXLatentUpsamplePipeline(vae=upscaled["vae"], latent_upsampler=upscaled["net"])(
            latents=low.samples, output_type="latent", return_dict=False)[0]
    assert up.samples.shape == (1, 8, 2, 2, 2) and torch.allclose(up.samples, ref, atol=1e-5)
    assert (up.width, up.height, up.frames) == (64, 64, 9)
    assert res.outputs["vae_decode_9"]["video"].to_array().shape == (9, 64, 64, 3)
    with pytest.raises(NodeError, match="t5xxl_fp16.safetensors is not an LTX-Video latent upscaler"):
        load_upsampler(ltx["text_encoder"], torch.float32, "cpu")
    for kw, axes in (({"spatial_upsample": False, "temporal_upsample": True}, (False, True)),
                     ({"temporal_upsample": True}, (True, True))):
        state = _tiny_upsampler(**kw).state_dict()
        cfg = upsampler_config(state, "x")
        assert (cfg["spatial_upsample"], cfg["temporal_upsample"], cfg["dims"], cfg["mid_channels"]) == (*axes, 3, 32)
        assert detect_state_dict(state).variant == ("temporal" if axes == (False, True) else "spatiotemporal")
    info = describe_model(ltx["models"] / "latent_upscale_models" / "ltxv-spatial-upscaler-0.9.8.safetensors")
    assert (info["family"], info["variant"], info["role"], info["loads"]) == ("ltx", "spatial", "latent_upscaler", "yes")
    assert info["note"].startswith("latent.ltx_upsample")



def test_an_upscaler_naming_blocks_by_empty_tensors_is_refused_before_it_is_built(tmp_path):
    """The upscaler's depth is the count of its res_blocks indices: a 2 MB file naming 3,000 of them by empty
    tensors built 5 GB of blocks (55 s) before load_state_dict found their weights missing."""
    from safetensors.torch import save_file

    from graph_engine import NodeError
    from nodes.generate.ltx_upsampler import load_upsampler
    state = _tiny_upsampler().state_dict()
    state.update({f"res_blocks.{i}.pad": torch.zeros(0) for i in range(1, 300)})
    save_file(state, str(tmp_path / "ltxv-spatial-upscaler-0.9.8.safetensors"))
    with pytest.raises(NodeError, match=r"ltxv-spatial-upscaler-0.9.8.safetensors: its tensor names and shapes make an "
                                        r"LTX-Video latent upscaler of [\d,]+ values or more, far more than the file's "
                                        r"[\d,]+: the file is damaged or made to fill memory"):
        load_upsampler(tmp_path / "ltxv-spatial-upscaler-0.9.8.safetensors", torch.float32, "cpu")

def test_timestep_conditioned_vae_decodes_as_comfyui(upscaled):
    """A 0.9.1+ VAE (timestep-conditioned) decodes as ComfyUI's LTXV VAE does: 2.5 % noise mixed into the normalised
    latent, decoder timestep 0.05 (Lightricks' decode_noise_scale / decode_timestep). Checked on the workflow's VAEDecode
    against the diffusers VAE given those inputs; the old decode (timestep 0, no noise) gives other frames."""
    import numpy as np
    from tests.comfy_layouts import same_frames
    vae = upscaled["vae"]
    z = upscaled["res"].outputs["ltxv_latent_upsampler_8"]["latent"].samples
    got = upscaled["res"].outputs["vae_decode_9"]["video"].to_array()

    def decode(latent, t):
        raw = latent * vae.latents_std.view(1, -1, 1, 1, 1) / vae.config.scaling_factor + vae.latents_mean.view(
            1, -1, 1, 1, 1)
        with torch.no_grad():
            px = vae.decode(raw, torch.tensor([t])).sample[0]
        return ((px.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    same_frames(decode(0.975 * z + 0.025 * noise, 0.05), got)
    assert np.abs(decode(z, 0.0).astype(int) - got).max() > 2


DISTILLED = "1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219, 0.0"     # Lightricks' 0.9.8 distilled


def _sample_yaml(ltx, sample_params: str) -> str:
    return f"""kinograph: 1
nodes:
  load: {{type: load.ltx, params: {{path: '{ltx['checkpoint']}'}}}}
  text: {{type: load.text_encoder, params: {{name: '{ltx['text_encoder']}', type: ltxv}}}}
  prompt: {{type: encode.text, inputs: {{text_encoder: text.text_encoder}}, params: {{text: "a fox"}}}}
  latent: {{type: latent.empty, inputs: {{vae: load.vae}}, params: {{frames: 9, width: 32, height: 32}}}}
  sample:
    type: generate.sample
    inputs: {{model: load.model, positive: prompt.positive, latent: latent.latent}}
    params: {{seed: 5, cfg: 1.0, {sample_params}}}
"""


def test_distilled_schedule_written_out_drives_the_sampler(ltx):
    """The distilled models' ComfyUI graph (CFGGuider cfg 1, KSamplerSelect, ManualSigmas with Lightricks' list,
    SamplerCustomAdvanced) imports as sample with those sigmas; sigmas written out run exactly the schedule they
    name (the default 2-step schedule written out gives the default run's latent bit for bit), and a list that does
    not fall is refused by name; one step runs (it was all NaN: diffusers' shift_terminal stretch divided by zero)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from nodes.generate.adapters import get_adapter
    wf = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltxv-13b-0.9.8-distilled.safetensors"}},
          "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "ltxv"}},
          "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["2", 0]}},
          "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
          "5": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 32, "height": 32, "length": 9,
                                                                 "batch_size": 1}},
          "6": {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                      "cfg": 1.0}},
          "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
          "8": {"class_type": "ManualSigmas", "inputs": {"sigmas": DISTILLED}},
          "9": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
          "10": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["9", 0], "guider": ["6", 0],
                                                                   "sampler": ["7", 0], "sigmas": ["8", 0],
                                                                   "latent_image": ["5", 0]}}}
    got = import_data(wf)
    sample = next(n for n in got.graph.nodes.values() if n.type == "generate.sample")
    assert got.report.summary().endswith("mapped exactly") and sample.params["sigmas"] == DISTILLED
    assert (sample.params["cfg"], sample.params["sampler"], sample.params["seed"]) == (1.0, "euler", 5)

    class Pipe:
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(str(ltx["diffusers"] / "scheduler"))
    levels = get_adapter("ltx").default_sigmas(Pipe(), 2, (1, 8, 2, 1, 1))
    written = ", ".join(repr(float(v)) for v in levels)
    session = Session(device="cpu")
    runs = [session.run(load_workflow(text=_sample_yaml(ltx, p), check=True), use_cache=False)
            for p in ("steps: 2", f"steps: 30, sigmas: '{written}'", f"sigmas: '{DISTILLED}'", "sigmas: '1.0, 0.5, 0.7'",
                      "steps: 1", "sigmas: '1.0, 0.0'")]
    assert all(r.ok for r in runs[:3] + runs[4:]), [r.failed for r in runs]
    latents = [r.outputs["sample"]["latent"].samples for r in runs[:3] + runs[4:]]
    assert torch.equal(latents[0], latents[1]) and not torch.allclose(latents[0], latents[2])
    assert "must fall from the first level to the last" in runs[3].failed["sample"]
    # one step (the shift_terminal stretch divided by zero: the NaN message) runs the schedule 1.0 -> 0
    assert torch.isfinite(latents[3]).all() and torch.equal(latents[3], latents[4])


def test_adain_matches_lightricks_statistics():
    """latent.adain (LTXVAdainLatent) equals diffusers' adain_filter_latent (Lightricks' per-channel AdaIN) at a
    partial factor, frame by frame with per_frame; a reference of another model is refused; the ComfyUI node
    imports with both of its settings."""
    from diffusers import LTXLatentUpsamplePipeline

    from app.comfyui import import_data
    from graph_engine import NodeError
    from nodes.generate.latent import Latent, adain_latent
    torch.manual_seed(0)
    x, ref = torch.randn(1, 8, 3, 4, 4) * 2 + 1, torch.randn(1, 8, 3, 4, 4) * 0.5 - 1
    lat = lambda t: Latent(t, "ltx", 17, 24.0, 128, 128)  # noqa: E731
    theirs = LTXLatentUpsamplePipeline.adain_filter_latent
    assert torch.allclose(adain_latent(lat(x), lat(ref), 0.25).samples, theirs(None, x, ref, 0.25), atol=1e-5)
    frames = torch.cat([theirs(None, x[:, :, f:f + 1], ref[:, :, f:f + 1], 0.7) for f in range(3)], dim=2)
    assert torch.allclose(adain_latent(lat(x), lat(ref), 0.7, per_frame=True).samples, frames, atol=1e-5)
    with pytest.raises(NodeError, match="reference latent has 16 channels"):
        adain_latent(lat(x), lat(torch.randn(1, 16, 3, 4, 4)), 1.0)
    wf = {"1": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 64, "height": 64, "length": 9,
                                                                 "batch_size": 1}},
          "2": {"class_type": "LTXVAdainLatent", "inputs": {"latents": ["1", 0], "reference": ["1", 0],
                                                            "factor": 0.25, "per_frame": True}},
          "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["4", 2]}},
          "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltxv-13b-0.9.8-distilled.safetensors"}},
          "5": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["3", 0], "filename_prefix": "a", "fps": 24,
                                                             "lossless": False, "quality": 90, "method": "default"}}}
    node = next(n for n in import_data(wf).graph.nodes.values() if n.type == "latent.adain")
    assert node.params == {"factor": 0.25, "per_frame": True}


def test_causal_time_positions_from_the_file_config(tmp_path):
    """Lightricks' files from 0.9.5 on say in their `config` metadata that frames sit causally in time (latent frame
    k at pixel frame max(0, 8k - 7)), which no shape shows. Read from the file, the model is run with those
    positions (the transformer given them by hand agrees) instead of k * 8, which it was not trained on."""
    import json
    import types

    from diffusers import LTXPipeline, LTXVideoTransformer3DModel
    from safetensors.torch import save_file

    from nodes.generate import converters
    from nodes.generate.adapters.ltx import LTXAdapter
    from nodes.generate.detect import detect_file
    from nodes.generate.weights import load_weights
    from tests.comfy_layouts import ltx_transformer_original
    torch.manual_seed(0)
    ref = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, num_attention_heads=32, attention_head_dim=2,
                                     cross_attention_dim=64, num_layers=1, caption_channels=16).eval()
    path = tmp_path / "ltxv-2b-0.9.8-distilled.safetensors"
    save_file(ltx_transformer_original(ref.state_dict()), str(path),
              metadata={"config": json.dumps({"transformer": {"causal_temporal_positioning": True}})})
    det = detect_file(path)
    built = converters.build(det, load_weights(path), torch.float32, "test").eval()
    assert built.config.causal_temporal_positioning is True
    pipe = types.SimpleNamespace(transformer=built, transformer_spatial_patch_size=1, transformer_temporal_patch_size=1,
                                 vae=None, vae_temporal_compression_ratio=8, vae_spatial_compression_ratio=32,
                                 _pack_latents=LTXPipeline._pack_latents, _unpack_latents=LTXPipeline._unpack_latents)
    x, text = torch.randn(1, 8, 3, 2, 2), torch.randn(1, 5, 16)
    inputs = {"encoder_hidden_states": text, "encoder_attention_mask": torch.ones(1, 5, dtype=torch.bool), "fps": 24.0}
    with torch.no_grad():
        got = LTXAdapter().forward(types.SimpleNamespace(pipe=pipe), x, torch.tensor(500.0), inputs)
        k, y, z = torch.meshgrid(torch.arange(3.0), torch.arange(2.0), torch.arange(2.0), indexing="ij")
        coords = torch.stack([(k * 8 - 7).clamp(min=0) / 24.0, y * 32, z * 32]).reshape(1, 3, -1)
        kw = dict(encoder_hidden_states=text, timestep=torch.tensor([500.0]), encoder_attention_mask=torch.ones(1, 5),
                  num_frames=3, height=2, width=2, return_dict=False)
        packed = LTXPipeline._pack_latents(x, 1, 1)
        want = LTXPipeline._unpack_latents(ref(packed, video_coords=coords, **kw)[0], 3, 2, 2, 1, 1)
        old = LTXPipeline._unpack_latents(ref(packed, rope_interpolation_scale=(8 / 24.0, 32, 32), **kw)[0],
                                          3, 2, 2, 1, 1)
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, old, atol=1e-3)
