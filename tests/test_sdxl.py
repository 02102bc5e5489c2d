"""Stable Diffusion XL: the checkpoints ComfyUI users keep (one .safetensors in checkpoints/, Stability's SGM key
layout) load from the file alone, sample to an image, and give what diffusers' own StableDiffusionXLPipeline
gives for the same weights and seed. The tiny model is written in the published layout by inverting diffusers'
converters (tests/tiny_models.py), so the reference is independent of Kinograph's loading code."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
CKPT = "sdxl_tiny.safetensors"


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    from comfy_layouts import built
    from tiny_models import build_sdxl_single_file
    yield from built(build_sdxl_single_file, tmp_path_factory)


@pytest.fixture
def models(sdxl, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_MODELS", str(sdxl / "models"))
    return sdxl / "models"


def _sample(handle, parts, width=64, height=48, steps=4, seed=7, **kw):
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    pos = encode_prompt(parts["text_encoder"], "a cat")
    neg = encode_prompt(parts["text_encoder"], "blurry")
    from nodes.generate.vae_ops import empty_latent
    return run_sampling(handle, pos, neg, empty_latent(parts["vae"], 1, width, height, 8.0), steps=steps, cfg=5.0,
                        sampler="euler", seed=seed, **kw)


def test_sdxl_checkpoint_is_detected_and_listed_as_loading(models):
    from nodes.generate.model_manager import describe_model, detect_family
    got = describe_model(models / "checkpoints" / CKPT)
    assert (got["family"], got["variant"], got["role"], got["loads"]) == ("sdxl", "sdxl", "checkpoint", "yes")
    assert detect_family(models / "checkpoints" / CKPT)[0] == "sdxl"


def test_sdxl_checkpoint_matches_diffusers_own_pipeline(models):
    """Both text encoders, the pooled embedding and the size conditioning (a 64x48 image: height and width in
    diffusers' order) as StableDiffusionXLPipeline computes them: its latent from the diffusers folder of the same
    weights, with the same seed, steps and guidance."""
    from diffusers import StableDiffusionXLPipeline
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager()
    h = mm.load("sdxl", CKPT)
    assert type(h.pipe).__name__ == "StableDiffusionXLPipeline" and h.pipe.text_encoder_2 is not None
    ours = _sample(h, mm.components(h)).samples[:, :, 0]
    ref = StableDiffusionXLPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    want = ref("a cat", negative_prompt="blurry", width=64, height=48, num_inference_steps=4, guidance_scale=5.0,
               generator=torch.Generator().manual_seed(7), output_type="latent").images
    err = float((want - ours).abs().max() / want.abs().max())
    assert err < 1e-4, err


def test_sdxl_diffusers_folder_loads_as_sdxl(models):
    from nodes.generate.model_manager import ModelManager, detect_family
    folder = models.parent / "diffusers"
    assert detect_family(folder)[0] == "sdxl"
    mm = ModelManager()
    h = mm.load("sdxl", str(folder))
    single = mm.load("sdxl", CKPT)
    a = _sample(h, mm.components(h), steps=2).samples
    b = _sample(single, mm.components(single), steps=2).samples
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-4), (a - b).abs().max()


def test_sdxl_checkpoint_through_a_workflow_to_an_image(models, tmp_path):
    """load.model (family auto) -> encode.text -> latent.empty -> generate.sample -> vae.decode -> io.save_frames."""
    from PIL import Image
    from graph_engine.api import Session, load_workflow
    wf = tmp_path / "sdxl.yaml"
    wf.write_text(f"""kinograph: 1
nodes:
  load: {{type: load.model, params: {{path: {CKPT}}}}}
  prompt: {{type: encode.text, params: {{text: a lighthouse at dusk, negative: blurry}},
            inputs: {{text_encoder: load.text_encoder}}}}
  latent: {{type: latent.empty, params: {{width: 64, height: 48, frames: 1}}, inputs: {{vae: load.vae}}}}
  sample: {{type: generate.sample, params: {{steps: 3, seed: 3}},
            inputs: {{model: load.model, positive: prompt.positive, negative: prompt.negative, latent: latent.latent}}}}
  decode: {{type: vae.decode, inputs: {{vae: load.vae, latent: sample.latent}}}}
  save: {{type: io.save_frames, params: {{path: {tmp_path / 'out'}}}, inputs: {{video: decode.video}}}}
""")
    res = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert res.ok, res.failed
    files = sorted((tmp_path / "out").glob("*.png"))
    assert len(files) == 1
    img = Image.open(files[0])
    assert img.size == (64, 48)
    px = np.asarray(img, dtype=np.float32)
    assert float(px.std()) > 1.0          # an image, not a blank frame


def test_sd15_loader_given_an_sdxl_checkpoint_names_load_sdxl(models):
    from nodes.generate.model_manager import ModelManager
    with pytest.raises(NodeError) as e:
        ModelManager().load("sd", CKPT)
    assert CKPT in str(e.value) and "Stable Diffusion XL" in str(e.value) and "load.sdxl" in str(e.value)


@pytest.fixture(scope="module")
def refiner(sdxl):
    from tiny_models import build_sdxl_refiner
    return build_sdxl_refiner(sdxl)


def _diffusers_base_refiner(models, **kw):
    """diffusers' own base + refiner ensemble (the refiner's model card): the base's first half of the steps
    (denoising_end 0.5) left noisy, the refiner's StableDiffusionXLImg2ImgPipeline finishing it (denoising_start
    0.5) with its own text encoder and aesthetic scores 6 / 2.5."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline
    base = StableDiffusionXLPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref = StableDiffusionXLImg2ImgPipeline.from_pretrained(str(models.parent / "refiner_diffusers"),
                                                           local_files_only=True)
    for pipe in (base, ref):
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, **kw)
    g = torch.Generator().manual_seed(7)
    mid = base("a cat", negative_prompt="blurry", width=64, height=48, num_inference_steps=4, guidance_scale=5.0,
               denoising_end=0.5, generator=g, output_type="latent").images
    return mid, ref


def test_sdxl_refiner_finishes_a_base_run_as_diffusers_does(models, refiner):
    """The SDXL refiner checkpoint (OpenCLIP-G alone as conditioner.embedders.0, a UNet told the aesthetic score)
    loads with load.sdxl and samples the last 2 of 4 steps of a base run left noisy; the latent is diffusers'
    base + refiner ensemble's. It used to be refused ("Kinograph does not run the refiner")."""
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    got = describe_model(refiner)
    assert (got["variant"], got["loads"]) == ("sdxl-refiner", "yes") and "load.sdxl" in got["note"], got
    mm = ModelManager()
    base, ref = mm.load("sdxl", CKPT), mm.load("sdxl", refiner.name)
    bp, rp = mm.components(base), mm.components(ref)
    kw = dict(steps=4, cfg=5.0, sampler="euler", seed=7)
    half = run_sampling(base, encode_prompt(bp["text_encoder"], "a cat"), encode_prompt(bp["text_encoder"], "blurry"),
                        empty_latent(bp["vae"], 1, 64, 48, 8.0), end_step=2, leftover_noise=True, **kw)
    ours = run_sampling(ref, encode_prompt(rp["text_encoder"], "a cat"), encode_prompt(rp["text_encoder"], "blurry"),
                        half, start_step=2, add_noise=False, **kw).samples[:, :, 0]
    mid, pipe = _diffusers_base_refiner(models)
    want = pipe("a cat", negative_prompt="blurry", image=mid, num_inference_steps=4, guidance_scale=5.0,
                denoising_start=0.5, output_type="latent").images
    assert float((want - ours).abs().max() / want.abs().max()) < 1e-4
    # The base's prompts on the refiner (and the refiner's on the base) are named, not a matmul error.
    for model, parts, says in ((ref, bp, "encode the prompts again with the refiner"),
                               (base, rp, "encoded with the SDXL refiner's text encoder")):
        with pytest.raises(NodeError) as e:
            run_sampling(model, encode_prompt(parts["text_encoder"], "a cat"), None, half, start_step=2,
                         add_noise=False, **{**kw, "cfg": 1.0})
        assert says in str(e.value), str(e.value)


def test_comfyui_base_and_refiner_workflow_runs_as_diffusers(models, refiner, tmp_path):
    """ComfyUI's SDXL base + refiner graph: two CheckpointLoaderSimple, CLIPTextEncode for the base,
    CLIPTextEncodeSDXLRefiner (ascore 6 / 2.5) for the refiner, KSamplerAdvanced base steps 0-2 returning leftover
    noise, KSamplerAdvanced refiner steps 2-4 adding none, VAEDecode, SaveImage. Every node maps exactly and the
    image is diffusers' ensemble's (its trailing timesteps are ComfyUI's simple schedule)."""
    n = _comfy_node
    api = {"4": n("CheckpointLoaderSimple", ckpt_name=CKPT),
           "12": n("CheckpointLoaderSimple", ckpt_name=refiner.name),
           "6": n("CLIPTextEncode", text="a cat", clip=["4", 1]),
           "15": n("CLIPTextEncodeSDXLRefiner", ascore=6.0, width=64, height=48, text="a cat", clip=["12", 1]),
           "16": n("CLIPTextEncodeSDXLRefiner", ascore=2.5, width=64, height=48, text="blurry", clip=["12", 1]),
           **_comfy_two_passes(["4", 0], ["12", 0], ["15", 0], ["16", 0], ["12", 2])}
    _, got = _run_comfy(api, tmp_path)
    mid, pipe = _diffusers_base_refiner(models, timestep_spacing="trailing")
    want = pipe("a cat", negative_prompt="blurry", image=mid, num_inference_steps=4, guidance_scale=5.0,
                denoising_start=0.5, output_type="np").images[0]
    assert got.shape == want.shape and float(np.abs(got - want).max()) < 3 / 255


def _inpainting(state):
    w = state["model.diffusion_model.input_blocks.0.0.weight"]
    g = torch.Generator().manual_seed(0)
    extra = torch.randn(w.shape[0], 5, *w.shape[2:], generator=g).to(w.dtype) * w.float().std().to(w.dtype)
    return {**state, "model.diffusion_model.input_blocks.0.0.weight": torch.cat([w, extra], 1)}


def test_an_sdxl_inpainting_checkpoint_loads_and_inpaints(models, tmp_path):
    """An SDXL inpainting checkpoint (9 input channels) was refused by name; it loads and, given the mask and the
    masked picture (condition.inpaint), redraws the region and keeps the rest of the latent; without a mask it
    draws a whole picture, as ComfyUI fills the extra channels in."""
    import numpy as np
    from safetensors.torch import save_file
    from graph_engine import Clip
    from nodes.generate.inpaint import inpaint_conditioning
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.text import encode_prompt
    from nodes.generate.weights import load_weights
    import shutil
    path = tmp_path / "xl_inpainting.safetensors"
    shutil.copytree(models / "checkpoints" / CKPT.replace(".safetensors", ""), tmp_path / "xl_inpainting")  # tokenizer
    save_file({k: v.contiguous() for k, v in _inpainting(load_weights(models / "checkpoints" / CKPT)).items()},
              str(path))
    assert describe_model(path)["loads"] == "yes"
    mm = ModelManager()
    h = mm.load("sdxl", str(path))
    parts = mm.components(h)
    assert h.pipe.unet.config.in_channels == 9
    img = np.random.default_rng(0).integers(0, 255, (1, 48, 64, 3)).astype(np.uint8)
    mask = np.zeros((48, 64), np.float32)
    mask[16:32, 16:48] = 1
    pos, neg, lat = inpaint_conditioning(parts["vae"], encode_prompt(parts["text_encoder"], "a cat"),
                                         encode_prompt(parts["text_encoder"], ""), Clip.from_array(img, 8.0), mask)
    assert torch.isfinite(_sample(h, parts, steps=2).samples).all()    # no mask: a whole picture over grey
    from nodes.generate.sampling import run_sampling
    got = run_sampling(h, pos, neg, lat, steps=3, cfg=5.0, sampler="euler", seed=2)
    keep = lat.mask[0, 0, 0] == 0
    assert torch.equal(got.samples[0, :, 0][:, keep], lat.samples[0, :, 0][:, keep])
    assert not torch.allclose(got.samples[0, :, 0][:, ~keep], lat.samples[0, :, 0][:, ~keep])


@pytest.mark.parametrize("kind,change,says", [
    ("playground", lambda s: {**s, "edm_mean": torch.zeros(1, 4, 1, 1), "edm_std": torch.ones(1, 4, 1, 1)},
     "is Playground v2.5")])
def test_sdxl_shaped_checkpoints_trained_otherwise_are_named(models, tmp_path, kind, change, says):
    """SDXL-shaped files that would sample noise through the SDXL path (Playground's EDM files would run and give
    noise): named, with what to load instead."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.weights import load_weights
    path = tmp_path / f"xl_{kind}.safetensors"
    save_file({k: v.contiguous() for k, v in change(load_weights(models / "checkpoints" / CKPT)).items()}, str(path))
    with pytest.raises(NodeError) as e:
        ModelManager().load("sdxl", str(path))
    assert f"xl_{kind}.safetensors {says}" in str(e.value) and "SDXL base checkpoint" in str(e.value), str(e.value)


def _comfy_node(cls, **inputs):
    return {"class_type": cls, "inputs": inputs}


def _comfy_split_sampler(model, pos, neg, latent, start, end, add, leftover):
    """KSamplerAdvanced over steps start..end of 4 (euler, ComfyUI's simple schedule, seed 7, cfg 5)."""
    return _comfy_node("KSamplerAdvanced", add_noise=add, noise_seed=7, steps=4, cfg=5.0, sampler_name="euler",
                       scheduler="simple", start_at_step=start, end_at_step=end, return_with_leftover_noise=leftover,
                       model=model, positive=pos, negative=neg, latent_image=latent)


def _comfy_two_passes(first, second, pos, neg, vae):
    """The tail of a two-model ComfyUI graph on checkpoint "4": its prompts "a cat" / "blurry" ("6", "7"), a 64x48
    empty latent, `first` sampling steps 0-2 and returning leftover noise, `second` (prompts pos / neg) steps 2-4
    adding none, decoded with `vae` and saved."""
    n, ksa = _comfy_node, _comfy_split_sampler
    return {"6": n("CLIPTextEncode", text="a cat", clip=["4", 1]),
            "7": n("CLIPTextEncode", text="blurry", clip=["4", 1]),
            "5": n("EmptyLatentImage", width=64, height=48, batch_size=1),
            "20": ksa(first, ["6", 0], ["7", 0], ["5", 0], 0, 2, "enable", "enable"),
            "21": ksa(second, pos, neg, ["20", 0], 2, 10000, "disable", "disable"),
            "22": n("VAEDecode", samples=["21", 0], vae=vae),
            "23": n("SaveImage", filename_prefix="two_passes", images=["22", 0])}


def _run_comfy(api, tmp_path):
    """Import a ComfyUI API prompt (every node mapped exactly), run it, and return (import result, its one saved
    image as floats in [0, 1])."""
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    res = import_data(api)
    assert all(e.status == "exact" for e in res.report.entries.values()), res.report.entries
    wf = tmp_path / "comfy.kino.yaml"
    wf.write_text(res.yaml)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    (png,) = list(tmp_path.rglob("*.png"))
    return res, np.asarray(Image.open(png).convert("RGB"), np.float32) / 255


def _vpred_file(models, tmp_path, *markers) -> Path:
    """The tiny checkpoint with ComfyUI's marker tensors (NoobAI-XL V-Pred ships `v_pred` and `ztsnr`), its
    tokenizer folder beside it as for the original."""
    import shutil
    from safetensors.torch import save_file
    from nodes.generate.weights import load_weights
    state = {k: v.contiguous() for k, v in load_weights(models / "checkpoints" / CKPT).items()}
    path = tmp_path / "noob_vpred_tiny.safetensors"
    save_file({**state, **{m: torch.tensor([]) for m in markers}}, str(path))
    shutil.copytree(models / "checkpoints" / CKPT.replace(".safetensors", ""), tmp_path / path.stem)
    return path


def _diffusers_vpred(models, rescale=0.0, **kw):
    """diffusers' own answer for the tiny weights as a v-prediction, zero-terminal-SNR model (its Euler scheduler's
    rescale_betas_zero_snr with trailing timesteps, as the NoobAI and zsnr papers' model cards say to run them)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    ref = StableDiffusionXLPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref.scheduler = EulerDiscreteScheduler.from_config(ref.scheduler.config, prediction_type="v_prediction",
                                                       rescale_betas_zero_snr=True, timestep_spacing="trailing")
    return ref("a cat", negative_prompt="blurry", width=64, height=48, num_inference_steps=4, guidance_scale=5.0,
               guidance_rescale=rescale, generator=torch.Generator().manual_seed(7), **kw).images


def test_a_vpred_ztsnr_checkpoint_samples_as_diffusers_does(models, tmp_path):
    """A checkpoint with `v_pred` and `ztsnr` (NoobAI-XL V-Pred) is read as a v-prediction model trained to zero
    terminal SNR, and with CFG rescale gives the latent diffusers' pipeline gives with prediction_type v_prediction,
    rescale_betas_zero_snr and guidance_rescale 0.7. It used to be refused ("does not run yet")."""
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.nodes import rescale_cfg_guide
    path = _vpred_file(models, tmp_path, "v_pred", "ztsnr")
    got = describe_model(path)
    assert got["loads"] == "yes" and "v-prediction, zero terminal SNR" in got["note"], got
    mm = ModelManager()
    h = mm.load("sdxl", str(path))
    ours = _sample(h, mm.components(h)).samples[:, :, 0]
    want = _diffusers_vpred(models, output_type="latent")
    assert float((want - ours).abs().max() / want.abs().max()) < 1e-4
    rescaled = _sample(rescale_cfg_guide(None, h, 0.7), mm.components(h)).samples[:, :, 0]
    want = _diffusers_vpred(models, 0.7, output_type="latent")
    assert float((want - rescaled).abs().max() / want.abs().max()) < 1e-4
    assert float((rescaled - ours).abs().max() / want.abs().max()) > 1e-2      # the rescale did something


def test_model_sampling_overrides_what_the_file_says(models, tmp_path):
    """model.sampling (ComfyUI's ModelSamplingDiscrete) sets the prediction type either way: the plain file sampled
    as v-prediction with zsnr is the marked file's run, and the marked file sampled as epsilon is the plain one's.
    On a flow model it is refused by name."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.nodes import model_sampling
    mm = ModelManager()
    plain = mm.load("sdxl", CKPT)
    marked = mm.load("sdxl", str(_vpred_file(models, tmp_path, "v_pred", "ztsnr")))
    parts = mm.components(plain)
    as_v = _sample(model_sampling(None, plain, "v_prediction", True), parts).samples
    assert torch.allclose(as_v, _sample(marked, parts).samples, atol=1e-5)
    as_eps = _sample(model_sampling(None, marked, "epsilon", False), parts).samples
    assert torch.allclose(as_eps, _sample(plain, parts).samples, atol=1e-5)
    assert not torch.allclose(as_v, as_eps, atol=1e-2)
    assert plain.pipe.scheduler.config.prediction_type == "epsilon"         # the shared pipeline is left as it was
    from dataclasses import replace
    with pytest.raises(NodeError) as e:
        model_sampling(None, replace(plain, family="wan"), "v_prediction", False)
    assert "SD and SDXL" in str(e.value) and "remove model.sampling" in str(e.value)


def test_comfyui_vpred_workflow_with_split_samplers_runs_as_diffusers(models, tmp_path):
    """A NoobAI-style ComfyUI graph: CheckpointLoaderSimple -> ModelSamplingDiscrete (v_prediction, zsnr) ->
    RescaleCFG 0.7, then two KSamplerAdvanced (steps 0-2 returning leftover noise, 2-4 adding none), VAEDecode,
    SaveImage. Every node maps exactly, and the saved image is diffusers' for the same settings (trailing
    timesteps are ComfyUI's simple schedule on the 1000-level table)."""
    n = _comfy_node
    api = {"4": n("CheckpointLoaderSimple", ckpt_name=CKPT),
           "10": n("ModelSamplingDiscrete", sampling="v_prediction", zsnr=True, model=["4", 0]),
           "11": n("RescaleCFG", multiplier=0.7, model=["10", 0]),
           **_comfy_two_passes(["11", 0], ["11", 0], ["6", 0], ["7", 0], ["4", 2])}
    res, got = _run_comfy(api, tmp_path)
    (ms,) = [n for n in res.graph.nodes.values() if n.type == "model.sampling"]
    assert (ms.params["prediction"], ms.params["zsnr"]) == ("v_prediction", True)
    want = _diffusers_vpred(models, 0.7, output_type="np")[0]
    assert got.shape == want.shape and float(np.abs(got - want).max()) < 3 / 255


def test_an_sdxl_unet_alone_says_to_load_the_checkpoint(models, tmp_path):
    """A UNet-only SDXL file (diffusion_models/) has no SDXL text encoders to go with it in Kinograph yet: named as
    such when listed and when loaded, not loaded as an SD 1.5 UNet."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.weights import load_weights
    unet = {k: v.contiguous() for k, v in load_weights(models / "checkpoints" / CKPT).items()
            if k.startswith("model.diffusion_model.")}
    path = tmp_path / "xl_unet.safetensors"
    save_file(unet, str(path))
    assert describe_model(path)["loads"] == "no"
    with pytest.raises(NodeError, match="xl_unet.safetensors is an SDXL UNet alone .*all-in-one checkpoint"):
        load_diffusion_model(ModelManager(), str(path), "default", "cpu")


def _sdxl_lora(path: Path) -> None:
    """A kohya SDXL LoRA as trainers write them: SGM UNet names (input_blocks/output_blocks), lora_te1_ on CLIP-L,
    lora_te2_ on OpenCLIP-G, alphas."""
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(5)
    layers = {"lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k": (128, 64),
              "lora_unet_output_blocks_0_1_proj_out": (128, 128),
              "lora_te1_text_model_encoder_layers_0_self_attn_q_proj": (32, 32),
              "lora_te1_text_model_encoder_layers_0_self_attn_out_proj": (32, 32),
              "lora_te2_text_model_encoder_layers_1_self_attn_out_proj": (32, 32),
              "lora_te2_text_model_encoder_layers_1_mlp_fc1": (37, 32)}
    state = {}
    for name, (out, inp) in layers.items():
        state[f"{name}.lora_down.weight"] = torch.randn(4, inp, generator=g) * 0.5
        state[f"{name}.lora_up.weight"] = torch.randn(out, 4, generator=g) * 0.5
        state[f"{name}.alpha"] = torch.tensor(2.0)
    save_file(state, str(path))


def test_sdxl_lora_on_both_text_encoders_and_the_unet_matches_diffusers(models, tmp_path):
    """lora.image with an SDXL kohya LoRA (strength and clip_strength 0.7) gives what diffusers' own
    load_lora_weights + set_adapters gives on StableDiffusionXLPipeline; each part of the LoRA counts."""
    from diffusers import StableDiffusionXLPipeline
    from nodes.generate.detect import detect_file
    from nodes.generate.loaders import add_lora, add_text_lora
    from nodes.generate.model_manager import ModelManager
    path = models / "loras" / "sdxl_style.safetensors"
    path.parent.mkdir(exist_ok=True)
    _sdxl_lora(path)
    det = detect_file(path)
    assert (det.role, det.family) == ("lora", "sdxl")
    mm = ModelManager()
    h = mm.load("sdxl", CKPT)
    parts = mm.components(h)
    plain = _sample(h, parts, steps=2).samples
    ours = _sample(add_lora(h, path.name, 0.7), {**parts, "text_encoder": add_text_lora(parts["text_encoder"],
                                                                                         path.name, 0.7)},
                   steps=2).samples[:, :, 0]
    ref = StableDiffusionXLPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref.load_lora_weights(str(path), adapter_name="style")
    ref.set_adapters(["style"], [0.7])
    want = ref("a cat", negative_prompt="blurry", width=64, height=48, num_inference_steps=2, guidance_scale=5.0,
               generator=torch.Generator().manual_seed(7), output_type="latent").images
    assert float((plain[:, :, 0] - want).abs().max()) > 1e-2        # the LoRA changes the image
    err = float((want - ours).abs().max() / want.abs().max())
    assert err < 1e-4, err
    # Every part moves the result: without its text layers the result is another one.
    te_only = _sample(add_lora(h, path.name, 0.7), parts, steps=2).samples[:, :, 0]
    assert float((te_only - want).abs().max()) > 1e-3


def test_an_sdxl_lora_on_sd15_is_named_as_sdxl(models, tmp_path):
    from nodes.generate.handles import ModelHandle
    from nodes.generate.loaders import add_lora
    path = tmp_path / "xl_style.safetensors"
    _sdxl_lora(path)

    class Pipe:
        def load_lora_weights(self):
            pass
    with pytest.raises(NodeError) as e:
        add_lora(ModelHandle(family="sd", path="sd15.safetensors", pipe=Pipe(), dtype="fp32", device="cpu"),
                 str(path), 1.0)
    assert "xl_style.safetensors is a Stable Diffusion XL (image) LoRA" in str(e.value), str(e.value)


def test_sdxl_size_conditioning_and_two_prompts_match_diffusers(models):
    """encode.sdxl (ComfyUI's CLIPTextEncodeSDXL): text_g through OpenCLIP-G, text_l through CLIP-L, a declared
    original size and crop: what diffusers gives with prompt_2 / prompt, original_size, crops_coords_top_left and
    target_size."""
    from diffusers import StableDiffusionXLPipeline
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_sdxl
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    h = mm.load("sdxl", CKPT)
    parts = mm.components(h)
    sizes = (1024, 768, 16, 32, 0, 0)           # original 768 wide, 1024 high, cropped at (16, 32); target: the image
    pos = encode_sdxl(parts["text_encoder"], "a red fox", "photo, sharp", sizes)
    neg = encode_sdxl(parts["text_encoder"], "blurry", "", sizes)
    ours = run_sampling(h, pos, neg, empty_latent(parts["vae"], 1, 64, 48, 8.0), steps=3, cfg=5.0, sampler="euler",
                        seed=9).samples[:, :, 0]
    ref = StableDiffusionXLPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    want = ref(prompt="photo, sharp", prompt_2="a red fox", negative_prompt="blurry", width=64, height=48,
               original_size=(1024, 768), crops_coords_top_left=(16, 32), target_size=(48, 64), num_inference_steps=3,
               guidance_scale=5.0, generator=torch.Generator().manual_seed(9), output_type="latent").images
    err = float((want - ours).abs().max() / want.abs().max())
    assert err < 1e-4, err


def test_comfyui_sdxl_txt2img_workflow_imports_and_runs(models, tmp_path):
    """A plain SDXL txt2img workflow: CheckpointLoaderSimple, CLIPTextEncodeSDXL (positive) and CLIPTextEncode
    (negative), EmptyLatentImage, KSampler, VAEDecode, SaveImage; every node mapped, and it runs to an image."""
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    def n(cls, **inputs):
        return {"class_type": cls, "inputs": inputs}
    api = {"4": n("CheckpointLoaderSimple", ckpt_name=CKPT),
           "6": n("CLIPTextEncodeSDXL", width=4096, height=4096, crop_w=0, crop_h=0, target_width=64, target_height=48,
                  text_g="a lighthouse at dusk", text_l="a lighthouse at dusk", clip=["4", 1]),
           "7": n("CLIPTextEncode", text="blurry", clip=["4", 1]),
           "5": n("EmptyLatentImage", width=64, height=48, batch_size=1),
           "3": n("KSampler", seed=5, steps=3, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                  model=["4", 0], positive=["6", 0], negative=["7", 0], latent_image=["5", 0]),
           "8": n("VAEDecode", samples=["3", 0], vae=["4", 2]),
           "9": n("SaveImage", filename_prefix="sdxl", images=["8", 0])}
    res = import_data(api)
    assert all(e.status in ("exact", "approx") for e in res.report.entries.values()), res.report.entries
    enc = next(n for n in res.graph.nodes.values() if n.type == "encode.sdxl")
    assert (enc.params["text"], enc.params["width"], enc.params["target_height"]) == ("a lighthouse at dusk", 4096, 48)
    wf = tmp_path / "sdxl.kino.yaml"
    wf.write_text(res.yaml)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    files = list(tmp_path.rglob("*.png"))
    assert len(files) == 1 and Image.open(files[0]).size == (64, 48), files


def test_an_sdxl_vae_file_decodes_sdxl_latents(models, tmp_path):
    """ComfyUI's SDXL workflows often load sdxl_vae.safetensors with VAELoader. SD 1.5's and SDXL's VAE files hold
    the same tensors; the name (or load.vae's family) says SDXL, so it decodes with SDXL's latent scale: the image
    the checkpoint's own VAE gives. Taken as SD 1.5's, the message says how to set it."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import decode_latent
    from nodes.generate.weights import load_weights
    state = load_weights(models / "checkpoints" / CKPT)
    vae_state = {k[len("first_stage_model."):]: v.contiguous() for k, v in state.items()
                 if k.startswith("first_stage_model.")}
    (models / "vae").mkdir(exist_ok=True)
    save_file(vae_state, str(models / "vae" / "sdxl_vae.safetensors"))
    save_file(vae_state, str(models / "vae" / "my_vae.safetensors"))
    mm = ModelManager()
    h = mm.load("sdxl", CKPT)
    parts = mm.components(h)
    lat = _sample(h, parts, steps=2)
    own = decode_latent(parts["vae"], lat).frames(0, 1)
    vae = load_vae(mm, "sdxl_vae.safetensors", "cpu")
    assert vae.family == "sdxl"
    assert abs(decode_latent(vae, lat).frames(0, 1).astype(int) - own.astype(int)).max() <= 1
    assert load_vae(mm, "my_vae.safetensors", "cpu", "sdxl").family == "sdxl"
    with pytest.raises(NodeError) as e:
        decode_latent(load_vae(mm, "my_vae.safetensors", "cpu"), lat)
    assert "set load.vae's family to sdxl" in str(e.value)


def test_sdxl_embedding_feeds_clip_l_and_clip_g_each_its_own_vectors(models):
    """An SDXL textual-inversion file holds clip_l and clip_g vectors: each encoder gets its own (only CLIP-L took
    them before, and OpenCLIP-G read the token's name letter by letter)."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.text import encode_prompt
    g = torch.Generator().manual_seed(3)
    vl, vg = torch.randn(2, 32, generator=g), torch.randn(2, 32, generator=g)
    (models / "embeddings").mkdir(exist_ok=True)
    save_file({"clip_l": vl, "clip_g": vg}, str(models / "embeddings" / "xlstyle.safetensors"))
    mm = ModelManager()
    te = mm.components(mm.load("sdxl", CKPT))["text_encoder"]
    plain = encode_prompt(te, "a cat").embeds
    with_emb = encode_prompt(te, "a cat embedding:xlstyle").embeds
    pipe = te.pipe
    tokens = next(iter(pipe._kinograph_embeddings.values()))
    for tok, enc, vec in ((pipe.tokenizer, pipe.text_encoder, vl), (pipe.tokenizer_2, pipe.text_encoder_2, vg)):
        ids = tok.convert_tokens_to_ids(tokens)
        assert len(set(ids)) == 2 and tok.unk_token_id not in ids
        assert torch.allclose(enc.get_input_embeddings().weight[ids], vec)
    # Both halves of SDXL's context (CLIP-L's 32, OpenCLIP-G's 32) see the embedding.
    assert float((with_emb[..., :32] - plain[..., :32]).abs().max()) > 1e-3
    assert float((with_emb[..., 32:] - plain[..., 32:]).abs().max()) > 1e-3


def test_shipped_sdxl_keyframe_to_svd_example_runs(models, tmp_path):
    """examples/comfyui/sdxl_keyframe_svd.yaml, the user's path from an SDXL keyframe to a video: the SDXL
    checkpoint and svd_xt.safetensors from the model folders, the keyframe as the first frame of the clip."""
    from tests.comfy_layouts import build_svd, run_example
    svd = build_svd(tmp_path / "svd")
    out = tmp_path / "clip.mp4"
    latent, frames = run_example("sdxl_keyframe_svd", f"{svd['models']}{os.pathsep}{models}", out, [
        f"keyframe_model.path={CKPT}", "keyframe_latent.width=64", "keyframe_latent.height=64",
        "keyframe_sample.steps=2", "latent.frames=6", "latent.width=64", "latent.height=64", "sample.steps=2"])
    assert latent.shape == (1, 4, 6, 8, 8) and frames.shape == (6, 64, 64, 3)
    assert out.stat().st_size > 0


def test_sdxl_base_shapes_give_sdxl_base_configs():
    """The tiny model cannot show what only full-size tensors state: SDXL base's own shapes (empty tensors, in the
    SGM layout) give exactly its published UNet config (transformer depths 1/2/10, 64-wide heads, the 256-wide size
    embedding beside the 1280-wide pooled text) and OpenCLIP-G config."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    from tiny_models import open_clip_text, sd_ldm_unet
    from nodes.generate.converters import model_config
    from nodes.generate.converters.sdxl import OPEN_CLIP, open_clip_g, unet_config
    want_unet, want_clip = model_config("sdxl", "unet_sdxl"), model_config("clip_g", "text_encoder")
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(want_unet)
        clip = CLIPTextModelWithProjection(CLIPTextConfig(**want_clip))
    pooled = int(clip.config.projection_dim)
    got = unet_config(sd_ldm_unet(unet.state_dict(), 3, [False, True, True]), pooled)
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in got.items()} == want_unet
    got = open_clip_g({OPEN_CLIP + k: v for k, v in open_clip_text(clip.state_dict()).items()}).config
    assert got == want_clip


@pytest.fixture(scope="module")
def sdxl_controlnet(sdxl):
    """A tiny SDXL ControlNet copied from the tiny SDXL's UNet: a diffusers folder in models/controlnet/ and the same
    weights as one file (the layout of diffusers_xl_canny_full.safetensors and xinsir's releases); beside it a slim one
    with fewer transformer layers than the UNet (as diffusers' controlnet-*-sdxl-1.0-small and -mid are), both forms."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from tiny_models import _seed, random_controlnet
    _seed(5)
    unet = UNet2DConditionModel.from_pretrained(str(sdxl / "diffusers" / "unet"))
    net = random_controlnet(unet, (8, 16))
    slim = random_controlnet(UNet2DConditionModel.from_config({**unet.config, "transformer_layers_per_block": [1, 1]}),
                             (8, 16))
    folder = sdxl / "models" / "controlnet" / "sdxl_canny_tiny"
    for model, where in ((net, folder), (slim, folder.with_name("sdxl_canny_tiny_small"))):
        model.save_pretrained(str(where), safe_serialization=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(where.with_suffix(".safetensors")))
    return folder


def _control_frame():
    rng = np.random.default_rng(3)
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[8:40, 16:48] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return frame


@pytest.fixture(scope="module")
def controlnet_latents():
    """Latents the three forms below share, each sampled by the first test that needs it: the plain SDXL one (same
    checkpoint, prompt and seed in all three) and diffusers' per ControlNet folder (the folder and file forms of
    sdxl_canny_tiny have the same reference)."""
    return {}


@pytest.mark.parametrize("name, form", [("sdxl_canny_tiny", "folder"), ("sdxl_canny_tiny", "file"),
                                        ("sdxl_canny_tiny_small", "file")])
def test_an_sdxl_controlnet_steers_as_in_diffusers_controlnet_pipeline(models, sdxl_controlnet, controlnet_latents,
                                                                      name, form):
    """control.apply on SDXL (refused until now): the ControlNet is given the pooled text and size conditioning its
    UNet is, as StableDiffusionXLControlNetPipeline gives them; its latent for the same weights, control image and
    seed is ours. The one-file form takes its config from the UNet it steers, and its depth from its own tensors."""
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline
    from PIL import Image
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager()
    h = mm.load("sdxl", CKPT)
    frame = _control_frame()
    folder = sdxl_controlnet.with_name(name)
    source = folder if form == "folder" else folder.with_suffix(".safetensors")
    ctl = apply_control(mm, h, Clip.from_array(frame[None], 8.0), str(source), 0.8, "none", 100, 200)
    ours = _sample(ctl, mm.components(h)).samples[:, :, 0]
    if "plain" not in controlnet_latents:
        controlnet_latents["plain"] = _sample(h, mm.components(h)).samples[:, :, 0]
    plain = controlnet_latents["plain"]
    if name not in controlnet_latents:
        base = StableDiffusionXLPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
        ref = StableDiffusionXLControlNetPipeline(**base.components, controlnet=ControlNetModel.from_pretrained(
            str(folder), local_files_only=True))
        controlnet_latents[name] = ref("a cat", negative_prompt="blurry", image=Image.fromarray(frame),
                                       controlnet_conditioning_scale=0.8, width=64, height=48, num_inference_steps=4,
                                       guidance_scale=5.0, generator=torch.Generator().manual_seed(7),
                                       output_type="latent").images
    want = controlnet_latents[name]
    err = float((want - ours).abs().max() / want.abs().max())
    assert err < 1e-4, err
    assert float((plain - ours).abs().max() / want.abs().max()) > 0.05


def test_stacked_controlnets_over_part_of_the_steps_match_diffusers_multi_controlnet(models, sdxl_controlnet):
    """Two control.apply in a chain (a pose and a depth ControlNet, say) both steer, their residuals added, the first
    over the first half of the way from noise and the second over the rest (ComfyUI's start_percent / end_percent):
    the chain kept only the last ControlNet, and no step range existed. diffusers' MultiControlNetModel with
    control_guidance_start / end gives the same latent (its step shares and ComfyUI's noise levels pick the same steps
    for this schedule)."""
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline
    from PIL import Image
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager()
    h = mm.load("sdxl", CKPT)
    a, b = _control_frame(), np.ascontiguousarray(_control_frame()[::-1, ::-1])
    folders = [sdxl_controlnet, sdxl_controlnet.with_name("sdxl_canny_tiny_small")]
    ctl = apply_control(mm, h, Clip.from_array(a[None], 8.0), str(folders[0]), 0.8, "none", 100, 200, 0.0, 0.5)
    ctl = apply_control(mm, ctl, Clip.from_array(b[None], 8.0), str(folders[1]), 0.6, "none", 100, 200, 0.5, 1.0)
    ours = _sample(ctl, mm.components(h)).samples[:, :, 0]
    base = StableDiffusionXLPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    nets = [ControlNetModel.from_pretrained(str(f), local_files_only=True) for f in folders]
    ref = StableDiffusionXLControlNetPipeline(**base.components, controlnet=nets)

    def diffusers(start, end):
        return ref("a cat", negative_prompt="blurry", image=[Image.fromarray(a), Image.fromarray(b)],
                   controlnet_conditioning_scale=[0.8, 0.6], control_guidance_start=start, control_guidance_end=end,
                   width=64, height=48, num_inference_steps=4, guidance_scale=5.0,
                   generator=torch.Generator().manual_seed(7), output_type="latent").images
    want = diffusers([0.0, 0.5], [0.5, 1.0])
    assert float((want - ours).abs().max() / want.abs().max()) < 1e-4
    everywhere = diffusers([0.0, 0.0], [1.0, 1.0])
    assert float((everywhere - ours).abs().max() / want.abs().max()) > 0.01
    with pytest.raises(NodeError, match=r"start \(0.7\) must come before its end \(0.2\)"):
        apply_control(mm, h, Clip.from_array(a[None], 8.0), str(folders[0]), 1.0, "none", 100, 200, 0.7, 0.2)


def test_an_sdxl_controlnet_through_a_workflow_to_an_image(models, sdxl_controlnet, tmp_path):
    """load.model -> control.apply (canny edges of a picture; the ControlNet named by its file in models/controlnet/)
    -> generate.sample -> vae.decode -> io.save_frames: an image, and another than without the ControlNet."""
    from PIL import Image
    from graph_engine.api import Session, load_workflow
    (tmp_path / "edges").mkdir()
    Image.fromarray(_control_frame()).save(tmp_path / "edges" / "0001.png")

    def run(model: str, out: str) -> np.ndarray:
        wf = tmp_path / f"{out}.yaml"
        wf.write_text(f"""kinograph: 1
nodes:
  load: {{type: load.model, params: {{path: {CKPT}}}}}
  pic: {{type: io.load_frames, params: {{path: {tmp_path / 'edges'}}}}}
  control: {{type: control.apply, params: {{path: sdxl_canny_tiny.safetensors, low: 50, high: 150}},
             inputs: {{model: load.model, video: pic.video}}}}
  prompt: {{type: encode.text, params: {{text: a lighthouse at dusk, negative: blurry}},
            inputs: {{text_encoder: load.text_encoder}}}}
  latent: {{type: latent.empty, params: {{width: 64, height: 48, frames: 1}}, inputs: {{vae: load.vae}}}}
  sample: {{type: generate.sample, params: {{steps: 3, seed: 3}},
            inputs: {{model: {model}, positive: prompt.positive, negative: prompt.negative, latent: latent.latent}}}}
  decode: {{type: vae.decode, inputs: {{vae: load.vae, latent: sample.latent}}}}
  save: {{type: io.save_frames, params: {{path: {tmp_path / out}}}, inputs: {{video: decode.video}}}}
""")
        res = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
        assert res.ok, res.failed
        files = sorted((tmp_path / out).glob("*.png"))
        assert len(files) == 1
        return np.asarray(Image.open(files[0]), dtype=np.float32)
    steered, plain = run("control.model", "steered"), run("load.model", "plain")
    assert steered.shape == (48, 64, 3) and float(np.abs(steered - plain).mean()) > 1.0


def test_comfyui_sdxl_controlnet_workflow_imports_and_runs(models, sdxl_controlnet, tmp_path):
    """ComfyUI's SDXL ControlNet graph (ControlNetLoader, LoadImage, ControlNetApplyAdvanced on both prompts), every
    node mapped exactly, runs to an image: it stopped at "SDXL ControlNets are not supported yet"."""
    from PIL import Image
    Image.fromarray(_control_frame()).save(tmp_path / "pose.png")
    n = _comfy_node
    api = {"4": n("CheckpointLoaderSimple", ckpt_name=CKPT),
           "6": n("CLIPTextEncode", text="a dancer", clip=["4", 1]),
           "7": n("CLIPTextEncode", text="blurry", clip=["4", 1]),
           "10": n("ControlNetLoader", control_net_name="sdxl_canny_tiny.safetensors"),
           "11": n("LoadImage", image=str(tmp_path / "pose.png")),
           "12": n("ControlNetApplyAdvanced", strength=0.7, start_percent=0.0, end_percent=1.0, positive=["6", 0],
                   negative=["7", 0], control_net=["10", 0], image=["11", 0]),
           "5": n("EmptyLatentImage", width=64, height=48, batch_size=1),
           "3": n("KSampler", seed=5, steps=2, cfg=7.0, sampler_name="euler", scheduler="simple", denoise=1.0,
                  model=["4", 0], positive=["12", 0], negative=["12", 1], latent_image=["5", 0]),
           "8": n("VAEDecode", samples=["3", 0], vae=["4", 2]),
           "9": n("SaveImage", filename_prefix="sdxl", images=["8", 0])}
    (tmp_path / "run").mkdir()
    res, img = _run_comfy(api, tmp_path / "run")
    assert any(node.type == "control.apply" for node in res.graph.nodes.values())
    assert img.shape == (48, 64, 3) and float(img.std()) > 0.004


def test_controlnets_for_another_base_or_of_another_kind_are_named(models, sdxl_controlnet, tmp_path):
    """An SDXL ControlNet on an SD 1.5 model (and the reverse) says what it is, not torch's shape error or "a
    ControlNet for another base model"; so does a mode given to a ControlNet of one kind."""
    from safetensors.torch import load_file, save_file
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.model_manager import describe_model
    got = describe_model(sdxl_controlnet)      # its diffusers folder: `kinograph info` listed it as loading "no"
    assert (got["family"], got["variant"], got["role"], got["loads"]) == ("sdxl", "sdxl", "controlnet", "yes")
    mm = ModelManager()
    h = mm.load("sdxl", CKPT)
    clip = Clip.from_array(_control_frame()[None], 8.0)
    with pytest.raises(NodeError, match=r"sdxl_canny_tiny.safetensors is a ControlNet of one kind, which takes none: "
                       "set mode to auto"):
        apply_control(mm, h, clip, str(sdxl_controlnet.with_suffix(".safetensors")), 1.0, "none", 100, 200,
                      mode="canny")
    from tiny_models import build_animatediff
    build_animatediff(tmp_path / "ad" / "animatediff")
    sd = mm.load("sd", str(tmp_path / "ad" / "animatediff"))
    for model, net, says in ((sd, sdxl_controlnet, "ControlNet for SDXL models, but it is applied to a Stable "
                              "Diffusion 1.5 model"),
                             (sd, sdxl_controlnet.with_suffix(".safetensors"), "for SDXL models"),
                             (h, tmp_path / "ad" / "controlnet", "for Stable Diffusion 1.5 models, but it is applied "
                              "to an SDXL model")):
        with pytest.raises(NodeError, match=says):
            apply_control(mm, model, clip, str(net), 1.0, "none", 100, 200)
    # An SD 2.x ControlNet (1024-wide text context) looks like an SD 1.5 one by its keys; its tensors do not fit.
    wide = load_file(str(tmp_path / "ad" / "controlnet" / "diffusion_pytorch_model.safetensors"))
    key = next(k for k in wide if k.endswith("attn2.to_k.weight"))
    wide[key] = torch.zeros(wide[key].shape[0], 1024)
    save_file(wide, str(tmp_path / "control_sd21_depth.safetensors"))
    with pytest.raises(NodeError, match=r"control_sd21_depth.safetensors does not fit .*another size of "
                       + key.replace(".", r"\.")):
        apply_control(mm, sd, clip, str(tmp_path / "control_sd21_depth.safetensors"), 1.0, "none", 100, 200)


# -- xinsir's ControlNet++ union (controlnet-union-sdxl-1.0, its promax file) and Stability's Control-LoRAs, both once
# detected and refused by name. Each is a tiny random-weight file in its published key names: the union's are
# diffusers' ControlNetUnionModel's (xinsir trained and saved with it), the Control-LoRA's ComfyUI's original
# ControlNet names with .up / .down pairs, as ComfyUI's ControlLoraSave writes them.
def _union(unet, rows: int):
    """A ControlNetUnionModel the shape of xinsir's (320-wide task rows = the UNet's first width, 8 heads, one
    condition transformer layer) copied from `unet`, its zero-initialised parts random."""
    from diffusers import ControlNetUnionModel
    from tiny_models import _seed
    _seed(rows)
    net = ControlNetUnionModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    net = ControlNetUnionModel.from_config(net.config, num_control_type=rows, num_trans_channel=32,
                                           num_proj_channel=32, num_trans_head=8)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net.half().float()


def _latent(handle, parts):
    return _sample(handle, parts, steps=2).samples[:, :, 0]


def _err(want, got) -> float:
    return float((want - got).abs().max() / want.abs().max())


def test_controlnet_union_files_steer_as_diffusers_union_pipeline(models, tmp_path):
    """The promax file (8 task rows) told canny samples as StableDiffusionXLControlNetUnionPipeline with control_mode
    3 (ComfyUI's canny/lineart row); told nothing (auto: ComfyUI without SetUnionControlNetType) it reads the picture
    as a plain ControlNet whose time embedding gets the all-zero task's, which a ControlNetModel with the same weights
    and that embedding as its class label computes; a ComfyUI graph's SetUnionControlNetType types reach it as their
    rows (depth as depth: the import took every type for a FLUX.1 union's row, depth as tile); the 6-row file has no tile row and
    says so, a FLUX.1 mode is named as one; both files are listed as loading with their rows."""
    import inspect
    from diffusers import (ControlNetModel, ControlNetUnionModel, StableDiffusionXLControlNetUnionPipeline,
                           StableDiffusionXLPipeline)
    from PIL import Image
    from safetensors.torch import save_file
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.model_manager import ModelManager, describe_model
    base = StableDiffusionXLPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    promax, plain = _union(base.unet, 8), _union(base.unet, 6)
    where = models / "controlnet"
    where.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in promax.state_dict().items()},
              str(where / "diffusion_pytorch_model_promax.safetensors"))
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()},
              str(where / "controlnet-union-sdxl-1.0.safetensors"))
    promax.save_pretrained(str(models.parent / "union_folder"))
    for path, rows in ((where / "diffusion_pytorch_model_promax.safetensors", 8),
                       (where / "controlnet-union-sdxl-1.0.safetensors", 6), (models.parent / "union_folder", 8)):
        info = describe_model(path)
        assert info["loads"] == "yes" and f"union of {rows} types" in info["note"], info

    mm = ModelManager()
    h = mm.load("sdxl", CKPT)
    clip = Clip.from_array(_control_frame()[None], 8.0)
    ctl = apply_control(mm, h, clip, "diffusion_pytorch_model_promax.safetensors", 0.8, "none", 100, 200,
                        mode="canny")
    ours = _latent(ctl, mm.components(h))
    ref = StableDiffusionXLControlNetUnionPipeline(**base.components, controlnet=ControlNetUnionModel.from_pretrained(
        str(models.parent / "union_folder")))
    want = ref("a cat", negative_prompt="blurry", control_image=[Image.fromarray(_control_frame())], control_mode=[3],
               controlnet_conditioning_scale=0.8, width=64, height=48, num_inference_steps=2, guidance_scale=5.0,
               generator=torch.Generator().manual_seed(7), output_type="latent").images
    assert _err(want, ours) < 1e-4
    assert _err(want, _latent(h, mm.components(h))) > 0.05

    # auto, one ControlNet call: the reference is a plain ControlNetModel given the union's shared weights. The
    # diffusers folder (xinsir's config.json) loads as the same net.
    net = mm.controlnet("diffusion_pytorch_model_promax.safetensors", h)
    folder = mm.controlnet(str(models.parent / "union_folder"), h)
    g = torch.Generator().manual_seed(1)
    x, hint = torch.randn(2, 4, 6, 8, generator=g), torch.rand(2, 3, 12, 16, generator=g)
    ehs, added = torch.randn(2, 5, 64, generator=g), {"text_embeds": torch.randn(2, 32, generator=g),
                                                      "time_ids": torch.tensor([[48., 64, 0, 0, 48, 64]] * 2)}
    with torch.no_grad():
        d, m = net(x, 500, encoder_hidden_states=ehs, controlnet_cond=hint, conditioning_scale=0.7,
                   added_cond_kwargs=added)
        assert torch.equal(folder(x, 500, encoder_hidden_states=ehs, controlnet_cond=hint, conditioning_scale=0.7,
                                  added_cond_kwargs=added, mode=3)[1],
                           net(x, 500, encoder_hidden_states=ehs, controlnet_cond=hint, conditioning_scale=0.7,
                               added_cond_kwargs=added, mode=3)[1])
        task = promax.control_add_embedding(promax.control_type_proj(torch.zeros(8)).reshape(1, -1))
        cfg = {k: v for k, v in promax.config.items() if k in inspect.signature(ControlNetModel).parameters}
        same = ControlNetModel.from_config({**cfg, "class_embed_type": "identity"})
        assert not same.load_state_dict(promax.state_dict(), strict=False).missing_keys
        wd, wm = same(x, 500, encoder_hidden_states=ehs, controlnet_cond=hint, conditioning_scale=0.7,
                      class_labels=task.expand(2, -1), added_cond_kwargs=added, return_dict=False)
    assert max(_err(a, b) for a, b in zip([*wd, wm], [*d, m])) < 1e-5

    # A ComfyUI user's graph (depth and canny through one promax file, ControlNetApplyAdvanced chained, the canny one
    # ending at 0.85): each SetUnionControlNetType type reaches the net as its own row (the run of an imported SDXL
    # ControlNet graph is test_comfyui_sdxl_controlnet_workflow_imports_and_runs').
    from PIL import Image
    Image.fromarray(_control_frame()).save(tmp_path / "room.png")
    n, promax_name = _comfy_node, "diffusion_pytorch_model_promax.safetensors"
    api = {"4": n("CheckpointLoaderSimple", ckpt_name=CKPT), "10": n("LoadImage", image=str(tmp_path / "room.png")),
           "12": n("ControlNetLoader", control_net_name=promax_name),
           "13": n("SetUnionControlNetType", control_net=["12", 0], type="depth"),
           "17": n("ControlNetLoader", control_net_name=promax_name),
           "18": n("SetUnionControlNetType", control_net=["17", 0], type="canny/lineart/anime_lineart/mlsd"),
           "6": n("CLIPTextEncode", text="an interior", clip=["4", 1]),
           "7": n("CLIPTextEncode", text="blurry", clip=["4", 1]),
           "14": n("ControlNetApplyAdvanced", strength=0.7, start_percent=0, end_percent=1, image=["10", 0],
                   control_net=["13", 0], positive=["6", 0], negative=["7", 0], vae=["4", 2]),
           "19": n("ControlNetApplyAdvanced", strength=0.45, start_percent=0, end_percent=0.85, image=["10", 0],
                   control_net=["18", 0], positive=["14", 0], negative=["14", 1], vae=["4", 2]),
           "5": n("EmptyLatentImage", width=64, height=48, batch_size=1),
           "3": n("KSampler", model=["4", 0], positive=["19", 0], negative=["19", 1], latent_image=["5", 0], seed=7,
                  steps=2, cfg=6.0, sampler_name="euler", scheduler="karras", denoise=1.0),
           "8": n("VAEDecode", samples=["3", 0], vae=["4", 2]),
           "9": n("SaveImage", images=["8", 0], filename_prefix="room")}
    from app.comfyui import import_data
    res = import_data(api)
    assert all(e.status == "exact" for e in res.report.entries.values()), res.report.entries
    assert "mode: depth" in res.yaml and "mode: canny" in res.yaml, res.yaml

    with pytest.raises(NodeError, match=r"has 6 task rows .*tile is row 6, which only the promax file has"):
        apply_control(mm, h, clip, "controlnet-union-sdxl-1.0.safetensors", 1.0, "none", 100, 200, mode="tile")
    with pytest.raises(NodeError, match=r"no mode 'blur' \(a FLUX.1 union's mode\)"):
        apply_control(mm, h, clip, "controlnet-union-sdxl-1.0.safetensors", 1.0, "none", 100, 200, mode="blur")


RANK = 3


def _control_lora(models: Path) -> dict:
    """A Control-LoRA for the tiny SDXL as ComfyUI's ControlLoraSave writes one: each of the UNet encoder's weights
    of 2+ dimensions as NAME.up [out, rank(, 1, 1)] / NAME.down [rank, in(, kh, kw)], its 1-D ones whole (changed),
    the hint block (ComfyUI's cldm: 16, 16, 32, 32, 96, 96, 256 channels), zero convolutions and middle_block_out
    whole, and the empty lora_controlnet marker."""
    from nodes.generate.weights import load_weights
    g = torch.Generator().manual_seed(4)
    unet = {k[len("model.diffusion_model."):]: v.float() for k, v in load_weights(models / "checkpoints" /
                                                                                   CKPT).items()
            if k.startswith("model.diffusion_model.")}
    out = {"lora_controlnet": torch.tensor([])}
    for k, v in unet.items():
        if not k.startswith(("time_embed.", "label_emb.", "input_blocks.", "middle_block.")):
            continue
        if v.ndim >= 2:
            up = torch.randn(v.shape[0], RANK, *(1,) * (v.ndim - 2), generator=g) * 0.2
            out[k[:-len(".weight")] + ".up"] = up.half()
            out[k[:-len(".weight")] + ".down"] = (torch.randn(RANK, *v.shape[1:], generator=g) * 0.2).half()
        else:
            out[k] = (v + torch.randn(v.shape, generator=g) * 0.1).half()
    hint = [3, 16, 16, 32, 32, 96, 96, 256, unet["input_blocks.0.0.weight"].shape[0]]
    for i in range(8):
        out[f"input_hint_block.{2 * i}.weight"] = torch.randn(hint[i + 1], hint[i], 3, 3, generator=g).half() * 0.2
        out[f"input_hint_block.{2 * i}.bias"] = torch.randn(hint[i + 1], generator=g).half() * 0.1
    blocks = sorted({int(k.split(".")[1]) for k in unet if k.startswith("input_blocks.")})
    for i in blocks:
        ch = unet.get(f"input_blocks.{i}.0.out_layers.3.weight", unet.get(f"input_blocks.{i}.0.op.weight",
                                                                          unet["input_blocks.0.0.weight"])).shape[0]
        out[f"zero_convs.{i}.0.weight"] = torch.randn(ch, ch, 1, 1, generator=g).half() * 0.3
        out[f"zero_convs.{i}.0.bias"] = torch.randn(ch, generator=g).half() * 0.1
    ch = unet["middle_block.0.out_layers.3.weight"].shape[0]
    out["middle_block_out.0.weight"] = torch.randn(ch, ch, 1, 1, generator=g).half() * 0.3
    out["middle_block_out.0.bias"] = torch.randn(ch, generator=g).half() * 0.1
    return out, unet


def test_control_lora_is_the_unet_plus_its_deltas_and_steers(models):
    """control-lora-canny-rank128 in the tiny's size: its ControlNet is the SDXL UNet's encoder with up @ down added
    to each weight and the file's whole tensors set, computed here in the file's own (LDM) names from the
    checkpoint's tensors and converted once by diffusers' converter. `kinograph info` lists it as loading, with its
    rank. Those merged weights saved as a whole SDXL ControlNet in the original layout load as the same net."""
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
    from safetensors.torch import save_file
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.model_manager import ModelManager, describe_model
    lora, unet = _control_lora(models)
    path = models / "controlnet" / "control-lora-canny-rank128.safetensors"
    path.parent.mkdir(exist_ok=True)
    save_file(lora, str(path))
    info = describe_model(path)
    assert info["loads"] == "yes" and f"Control-LoRA (rank {RANK})" in info["note"], info

    merged = {}
    for k, v in lora.items():
        if k.endswith(".up"):
            stem = k[:-len(".up")]
            w = unet[stem + ".weight"]
            merged[stem + ".weight"] = w + (v.float().flatten(1) @ lora[stem + ".down"].float().flatten(1)).reshape(
                w.shape)
        elif not k.endswith(".down") and k != "lora_controlnet":
            merged[k] = v.float()
    mm = ModelManager()
    h = mm.load("sdxl", CKPT)
    ours = mm.controlnet(path.name, h)
    ref = ControlNetModel.from_config(ours.config)
    want = convert_controlnet_checkpoint(merged, ref.config)
    want.update({f"add_embedding.linear_{j}.{p}": merged[f"label_emb.0.{2 * j - 2}.{p}"] for j in (1, 2)
                 for p in ("weight", "bias")})
    ref.load_state_dict(want)
    got = ours.state_dict()
    assert set(got) == set(want)
    assert max(float((got[k] - want[k]).abs().max()) for k in want) < 1e-5
    # The same ControlNet as a whole SDXL ControlNet in the original layout (control_model.*): it missed its size
    # embedding (diffusers' converter leaves label_emb out) and was refused as "for another base model".
    ldm = path.with_name("sdxl_canny_ldm.safetensors")
    save_file({f"control_model.{k}": v.contiguous() for k, v in merged.items()}, str(ldm))
    whole = mm.controlnet(ldm.name, h).state_dict()
    assert max(float((whole[k] - want[k]).abs().max()) for k in want) < 1e-5

    # A pair whose sizes do not meet (damaged, or made to fail) is named, not left to torch's matmul error.
    from graph_engine import NodeError
    from nodes.generate.sdxl_control import control_lora
    stem = next(k[:-len(".up")] for k, v in lora.items() if k.endswith(".up") and v.ndim == 2)
    bad = {**lora, stem + ".up": torch.zeros(lora[stem + ".up"].shape[0], RANK + 1)}
    with pytest.raises(NodeError, match=f"bad.safetensors: {stem}'s low-rank delta .* does not fit"):
        control_lora("bad.safetensors", bad, h.denoiser, torch.float32)

    # Sampled, it steers (the sampling path is plain SDXL ControlNets', compared with diffusers' pipeline there).
    ctl = apply_control(mm, h, Clip.from_array(_control_frame()[None], 8.0), path.name, 0.9, "none", 100, 200)
    plain = _latent(h, mm.components(h))
    assert _err(plain, _latent(ctl, mm.components(h))) > 0.05


def test_sdxl_vae_encodes_in_fp32_when_the_model_is_fp16(models):
    """SDXL's VAE overflows in fp16 (its config says force_upcast): image-to-image encodes ran it in fp16 and gave
    NaN latents on a GPU. It runs in fp32 for the encode, as for the decode, and returns to fp16."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager()
    pipe = mm.load("sdxl", CKPT, dtype="fp16").pipe
    seen = []
    hook = pipe.vae.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    try:
        z = get_adapter("sdxl").vae_encode(pipe, torch.zeros(1, 3, 1, 48, 64))
    finally:
        hook.remove()
    assert seen == [torch.float32] and pipe.vae.dtype == torch.float16 and torch.isfinite(z).all()


def test_comfyuis_own_sdxl_to_svd_workflow_runs(models, tmp_path, monkeypatch):
    """ComfyUI_examples' svd_txt2img2vid.json (an SDXL keyframe, then SVD-XT animating it), imported as it is and
    run with tiny models under its own file names: sd_xl_1.0.safetensors (with its tokenizer folder) and
    svd_xt.safetensors."""
    import json
    import shutil
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from tests.comfy_layouts import build_svd
    folder = tmp_path / "models"
    svd = build_svd(tmp_path / "svd")
    (folder / "checkpoints").mkdir(parents=True)
    shutil.copy(svd["checkpoint"], folder / "checkpoints" / "svd_xt.safetensors")
    shutil.copy(models / "checkpoints" / CKPT, folder / "checkpoints" / "sd_xl_1.0.safetensors")
    shutil.copytree(models / "checkpoints" / Path(CKPT).stem, folder / "checkpoints" / "sd_xl_1.0")
    res = import_data(json.loads((ROOT / "tests" / "data" / "comfyui" / "svd_txt2img2vid.json").read_text()))
    for n in res.graph.nodes.values():
        if n.type == "latent.empty":
            n.params.update(width=64, height=64, frames=min(n.params["frames"], 6))
        elif n.type == "generate.sample":
            n.params["steps"] = 2
        elif n.type == "io.save_video":
            n.params["path"] = str(tmp_path / "out.webp")
    wf = tmp_path / "svd_txt2img2vid.kino.yaml"
    wf.write_text(res.yaml)                 # the graph as changed above
    monkeypatch.setenv("KINOGRAPH_MODELS", str(folder))
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    assert run.outputs["k_sampler_17"]["latent"].family == "sdxl"
    assert (tmp_path / "out.webp").stat().st_size > 0
