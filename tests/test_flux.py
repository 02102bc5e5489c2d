"""FLUX.1 keyframes: the files a FLUX.1 user holds (a diffusers FluxPipeline folder; ComfyUI's split files in Black
Forest Labs' key layout: the transformer, clip_l + t5xxl, ae.safetensors; an all-in-one checkpoint) load, sample and
give what diffusers' own FluxPipeline gives for the same weights and seed: dev with its distilled guidance on the
size-shifted schedule, schnell without either. The tiny model's BFL files are written by inverting diffusers'
converter by hand (tests/tiny_flux.py), so the reference does not go through Kinograph's loading code."""
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    from comfy_layouts import built
    from tiny_flux import build_flux
    yield from built(build_flux, tmp_path_factory)


@pytest.fixture
def models(flux, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_MODELS", str(flux / "models"))
    return flux / "models"


def _diffusers(folder, cfg, width=64, height=48, steps=4, seed=7):
    """FluxPipeline's own latent ([1, 16, h, w]) for "a cat"."""
    from diffusers import FluxPipeline
    ref = FluxPipeline.from_pretrained(str(folder), local_files_only=True)
    packed = ref("a cat", width=width, height=height, num_inference_steps=steps, guidance_scale=cfg,
                 generator=torch.Generator().manual_seed(seed), output_type="latent").images
    return ref._unpack_latents(packed, height, width, ref.vae_scale_factor)


def _sample(model, text_encoder, vae, cfg, width=64, height=48, steps=4, seed=7):
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    pos = encode_prompt(text_encoder, "a cat")
    return run_sampling(model, pos, None, empty_latent(vae, 1, width, height, 8.0), steps=steps, cfg=cfg,
                        sampler="euler", seed=seed).samples[:, :, 0]


def _close(want, got):
    err = float((want - got).abs().max() / want.abs().max())
    assert err < 1e-4, err
    return err


def test_flux_files_are_detected_and_listed_as_loading(models):
    from nodes.generate.model_manager import describe_model
    got = {f: describe_model(models / f) for f in ("diffusion_models/flux1-dev-tiny.safetensors",
                                                   "unet/flux1-schnell-tiny.safetensors", "vae/ae.safetensors",
                                                   "checkpoints/flux1-dev-tiny-aio.safetensors")}
    assert [(g["family"], g["variant"], g["role"], g["loads"]) for g in got.values()] == [
        ("flux", "dev", "diffusion_model", "yes"), ("flux", "schnell", "diffusion_model", "yes"),
        ("flux", "", "vae", "yes"), ("flux", "dev", "checkpoint", "yes")], got


@pytest.mark.parametrize("variant,cfg", [("dev", 3.5), ("schnell", 1.0)])
def test_flux_diffusers_folder_matches_fluxpipeline(models, variant, cfg):
    """dev: guidance 3.5 told to the transformer, levels 1 .. 1/steps shifted by the image's token count (mu); schnell:
    the plain line, no guidance input."""
    from nodes.generate.model_manager import ModelManager, detect_family
    folder = models.parent / ("diffusers" if variant == "dev" else "diffusers_schnell")
    assert detect_family(folder)[0] == "flux"
    mm = ModelManager()
    h = mm.load("flux", str(folder))
    p = mm.components(h)
    _close(_diffusers(folder, cfg), _sample(h, p["text_encoder"], p["vae"], cfg))


@pytest.mark.parametrize("variant,cfg,names,type_", [
    ("dev", 3.5, ("t5xxl_fp16.safetensors", "clip_l.safetensors"), "flux"),
    ("schnell", 1.0, ("clip_l.safetensors", "t5xxl_fp16.safetensors"), "auto")])
def test_flux_comfyui_split_files_match_fluxpipeline(models, variant, cfg, names, type_):
    """The transformer in BFL's names (diffusion_models/ or unet/), the encoders in either order (CLIP-L with T5-XXL
    is recognised as FLUX.1's pair with type auto) and ae.safetensors: the same latent as diffusers' folder."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    mm = ModelManager()
    model = load_diffusion_model(mm, f"flux1-{variant}-tiny.safetensors", "default", "cpu")
    te = load_text_encoder(mm, *names, type_, "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    assert (model.family, te.family, vae.family) == ("flux", "flux", "flux")
    folder = models.parent / ("diffusers" if variant == "dev" else "diffusers_schnell")
    _close(_diffusers(folder, cfg), _sample(model, te, vae, cfg))


def test_flux_all_in_one_checkpoint_matches_fluxpipeline(models):
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager()
    h = mm.load("flux", "flux1-dev-tiny-aio.safetensors")
    p = mm.components(h)
    _close(_diffusers(models.parent / "diffusers", 3.5), _sample(h, p["text_encoder"], p["vae"], 3.5))


def test_flux_text_encoder_missing_t5_is_named(models):
    """clip_l alone as FLUX.1's text encoder (a CLIPLoader where DualCLIPLoader belongs): the message names what is
    missing and how to give both, not a NoneType error inside diffusers."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    te = load_text_encoder(ModelManager(), "clip_l.safetensors", "", "flux", "cpu")
    with pytest.raises(NodeError) as e:
        encode_prompt(te, "a cat")
    msg = str(e.value)
    assert "has no T5-XXL" in msg and "no CLIP-L" not in msg and "t5xxl" in msg and "DualCLIPLoader" in msg, msg


def test_flux_diffusion_model_alone_tells_what_is_missing(models, tmp_path):
    """load.flux given only the transformer file: its text_encoder and vae outputs are empty, and a graph that
    encodes with them is refused before it runs, naming the input to connect."""
    from graph_engine.api import Session, load_workflow
    wf = tmp_path / "flux.yaml"
    wf.write_text("""kinograph: 1
nodes:
  load: {type: load.flux, params: {path: flux1-dev-tiny.safetensors}}
  prompt: {type: encode.text, params: {text: a cat}, inputs: {text_encoder: load.text_encoder}}
""")
    logs = []
    res = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False,
                                    on_event=lambda e: logs.append(str(e.get("message", ""))))
    assert not res.ok and "input 'text_encoder' is empty" in res.failed["prompt"], res.failed
    note = next((m for m in logs if "holds the denoiser alone" in m), "")
    assert "clip_l.safetensors + t5xxl_fp16.safetensors, type flux" in note and "ae.safetensors" in note, logs


def test_flux_split_files_through_a_workflow_to_an_image(models, tmp_path):
    """load.diffusion_model + load.text_encoder (DualCLIPLoader's two files, type flux) + load.vae -> load.flux ->
    encode.text -> latent.empty -> generate.sample (cfg 0: the family's 3.5) -> vae.decode -> a PNG."""
    from PIL import Image
    from graph_engine.api import Session, load_workflow
    wf = tmp_path / "flux.yaml"
    wf.write_text(f"""kinograph: 1
nodes:
  unet: {{type: load.diffusion_model, params: {{name: flux1-dev-tiny.safetensors}}}}
  clip: {{type: load.text_encoder, params: {{name: clip_l.safetensors, name2: t5xxl_fp16.safetensors, type: flux}}}}
  ae: {{type: load.vae, params: {{name: ae.safetensors}}}}
  load: {{type: load.flux, inputs: {{model: unet.model, text_encoder: clip.text_encoder, vae: ae.vae}}}}
  prompt: {{type: encode.text, params: {{text: a lighthouse at dusk}}, inputs: {{text_encoder: load.text_encoder}}}}
  latent: {{type: latent.empty, params: {{width: 64, height: 48, frames: 1}}, inputs: {{vae: load.vae}}}}
  sample: {{type: generate.sample, params: {{steps: 3, seed: 3}},
            inputs: {{model: load.model, positive: prompt.positive, latent: latent.latent}}}}
  decode: {{type: vae.decode, inputs: {{vae: load.vae, latent: sample.latent}}}}
  save: {{type: io.save_frames, params: {{path: {tmp_path / 'out'}}}, inputs: {{video: decode.video}}}}
""")
    res = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert res.ok, res.failed
    files = sorted((tmp_path / "out").glob("*.png"))
    assert len(files) == 1
    img = Image.open(files[0])
    assert img.size == (64, 48)
    assert float(np.asarray(img, dtype=np.float32).std()) > 1.0


def test_flux_size_not_a_multiple_of_16_is_named(models):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    h = mm.load("flux", str(models.parent / "diffusers"))
    with pytest.raises(NodeError) as e:
        empty_latent(mm.components(h)["vae"], 1, 72, 48, 8.0)
    assert "divisible by 16" in str(e.value) and "72x48" in str(e.value)


# ComfyUI's FLUX.1 dev template (flux_dev_example): split loaders, FluxGuidance, the custom sampler's parts.
FLUX_DEV_API = {
    "10": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
    "11": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl_fp16.safetensors",
                                                      "clip_name2": "clip_l.safetensors", "type": "flux",
                                                      "device": "default"}},
    "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev-tiny.safetensors", "weight_dtype": "default"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["11", 0]}},
    "60": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
    "22": {"class_type": "BasicGuider", "inputs": {"model": ["12", 0], "conditioning": ["60", 0]}},
    "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "17": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 3, "denoise": 1,
                                                      "model": ["12", 0]}},
    "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 7}},
    "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
    "13": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["25", 0], "guider": ["22", 0],
                                                             "sampler": ["16", 0], "sigmas": ["17", 0],
                                                             "latent_image": ["27", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["10", 0]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "flux", "images": ["8", 0]}},
}


def comfy_flux_sigmas(steps: int, mu: float = 1.15):
    """ComfyUI's simple schedule on FLUX.1: every (10000 / steps)-th of ModelSamplingFlux's 10000 levels
    e^mu / (e^mu + 1/t - 1), noisiest first (written out here from ComfyUI's formulas, not Kinograph's code)."""
    import math
    table = [math.exp(mu) / (math.exp(mu) + 1 / (i / 10000) - 1) for i in range(1, 10001)]
    return [table[-(1 + int(i * 10000 / steps))] for i in range(steps)]


def _imported_latent(api, folder):
    from comfy_layouts import imported_run
    _, run = imported_run(api, folder, "flux")
    return run.outputs[next(n for n in run.outputs if n.startswith("sampler_custom") or n.startswith("k_sampler"))]


def _diffusers_on(folder, sigmas, cfg, mu=None):
    """FluxPipeline on these exact levels (its scheduler told not to shift them again)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    ref = FluxPipeline.from_pretrained(str(folder), local_files_only=True)
    ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    packed = ref("a cat", width=64, height=48, sigmas=sigmas, guidance_scale=cfg,
                 generator=torch.Generator().manual_seed(7), output_type="latent").images
    return ref._unpack_latents(packed, 48, 64, ref.vae_scale_factor)


def test_comfyui_flux_dev_graph_imports_and_runs_as_comfyui_samples(models, tmp_path, monkeypatch):
    """The whole template maps (EmptySD3LatentImage was a placeholder), FluxGuidance's 3.5 reaches the transformer
    and BasicScheduler's simple schedule is ModelSamplingFlux's (10000 levels, mu 1.15): the latent is diffusers'
    FluxPipeline on those levels."""
    monkeypatch.chdir(tmp_path)
    got = _imported_latent(FLUX_DEV_API, tmp_path)["latent"].samples[:, :, 0]
    _close(_diffusers_on(models.parent / "diffusers", comfy_flux_sigmas(3), 3.5), got)


def test_comfyui_clip_text_encode_flux_and_model_sampling_flux(models, tmp_path, monkeypatch):
    """CLIPTextEncodeFlux: T5-XXL reads t5xxl, CLIP-L clip_l, its guidance goes to the sampler; ModelSamplingFlux at
    64x48 shifts by mu = 0.5 + (12 - 256) x 0.65 / 3840 (below base_shift: a small image), as ComfyUI computes it."""
    from app.comfyui import import_data
    api = {k: dict(v, inputs=dict(v["inputs"])) for k, v in FLUX_DEV_API.items() if k != "60"}
    api["6"] = {"class_type": "CLIPTextEncodeFlux", "inputs": {"clip_l": "a cat", "t5xxl": "a cat", "guidance": 2.0,
                                                               "clip": ["11", 0]}}
    api["30"] = {"class_type": "ModelSamplingFlux", "inputs": {"max_shift": 1.15, "base_shift": 0.5, "width": 64,
                                                               "height": 48, "model": ["12", 0]}}
    api["22"]["inputs"].update(model=["30", 0], conditioning=["6", 0])
    api["17"]["inputs"]["model"] = ["30", 0]
    res = import_data(api)
    assert "encode.flux" in res.yaml and "model.flow_shift" in res.yaml, res.yaml
    monkeypatch.chdir(tmp_path)
    got = _imported_latent(api, tmp_path)["latent"].samples[:, :, 0]
    mu = 0.5 + (64 * 48 / 256 - 256) * 0.65 / 3840
    _close(_diffusers_on(models.parent / "diffusers", comfy_flux_sigmas(3, mu), 2.0), got)


def test_encode_flux_sends_text_l_to_clip_only(models):
    """encode.flux's text_l changes CLIP-L's pooled embedding and nothing of T5-XXL's, as FluxPipeline's prompt (CLIP)
    and prompt_2 (T5) do."""
    from diffusers import FluxPipeline
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.text import encode_flux
    mm = ModelManager()
    h = mm.load("flux", str(models.parent / "diffusers"))
    te = mm.components(h)["text_encoder"]
    c = encode_flux(te, "a cat", "a dog")
    ref = FluxPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    embeds, pooled, _ = ref.encode_prompt("a dog", "a cat", device="cpu")
    assert torch.allclose(c.embeds, embeds, atol=1e-3) and torch.allclose(c.pooled, pooled, atol=1e-3)
    assert not torch.allclose(c.pooled, encode_flux(te, "a cat", "").pooled, atol=1e-2)


def test_comfyui_flux_checkpoint_graph_without_flux_guidance_gets_comfyuis_default(models, tmp_path, monkeypatch):
    """The all-in-one checkpoint through CheckpointLoaderSimple and KSampler at cfg 1 with no FluxGuidance: ComfyUI
    tells FLUX.1 dev guidance 3.5 then, and so does the import (it sampled at guidance 1 before)."""
    from app.comfyui import import_data
    api = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev-tiny-aio.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 4, "cfg": 1.0, "sampler_name": "euler",
                                                   "scheduler": "simple", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "flux", "images": ["8", 0]}},
    }
    res = import_data(api)
    assert any("guidance 3.5" in n for e in res.report.entries.values() for n in e.notes), res.report
    monkeypatch.chdir(tmp_path)
    got = _imported_latent(api, tmp_path)["latent"].samples[:, :, 0]
    _close(_diffusers_on(models.parent / "diffusers", comfy_flux_sigmas(4), 3.5), got)


@pytest.mark.parametrize("layout", ["comfyui", "kohya"])
def test_flux_lora_changes_the_transformer_as_merging_it_does(models, tmp_path, layout):
    """A FLUX.1 LoRA in ComfyUI's names (diffusion_model.double_blocks.0.img_attn.qkv.lora_A/B, which diffusers does
    not read) or kohya's (lora_unet_double_blocks_0_img_attn_qkv, which the detection took for HunyuanVideo's and
    lora.image refused): applied with lora.image's path, the sample is the one of the model with B @ A added to the
    fused qkv weight by hand. (XLabs' layout: the x-flux graph test.)"""
    from safetensors.torch import save_file
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager
    torch.manual_seed(1)
    inner, rank = 64, 4
    down, up = torch.randn(rank, inner) * 0.3, torch.randn(3 * inner, rank) * 0.3
    if layout == "comfyui":
        state = {"diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight": down,
                 "diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight": up}
    else:
        state = {"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": down,
                 "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": up,
                 "lora_unet_double_blocks_0_img_attn_qkv.alpha": torch.tensor(float(rank))}
    path = tmp_path / f"flux_{layout}.safetensors"
    save_file(state, str(path))
    from nodes.generate.model_manager import describe_model
    assert describe_model(path)["loads"] == "yes", describe_model(path)
    folder = str(models.parent / "diffusers")
    h = ModelManager().load("flux", folder)
    p = ModelManager().components(h)
    got = _sample(add_lora(h, str(path), 1.0), p["text_encoder"], p["vae"], 3.5, steps=2)
    merged = ModelManager().load("flux", folder)
    attn = merged.pipe.transformer.transformer_blocks[0].attn
    with torch.no_grad():
        for i, layer in enumerate((attn.to_q, attn.to_k, attn.to_v)):
            layer.weight += (up @ down)[i * inner:(i + 1) * inner]
    want = _sample(merged, p["text_encoder"], p["vae"], 3.5, steps=2)
    plain = _sample(ModelManager().load("flux", folder), p["text_encoder"], p["vae"], 3.5, steps=2)
    assert float((want - plain).abs().max()) > 1e-3          # the LoRA changes the picture
    assert float((got - want).abs().max()) < 1e-5, float((got - want).abs().max())


def test_comfyui_flux_dev_template_imports_and_runs(models, tmp_path, monkeypatch):
    """ComfyUI's own "Flux Dev full text to image" template (UI format; tests/data/flux): UNETLoader, DualCLIPLoader
    (clip_l, t5xxl, type flux), CLIPTextEncodeFlux with two prompts and guidance 3.5, ConditioningZeroOut as the
    negative, EmptySD3LatentImage, KSampler at cfg 1. Every node maps, and on the tiny model under the template's
    file names (at 64x48, 3 steps) the latent is FluxPipeline's with CLIP-L reading clip_l's prompt and T5-XXL
    t5xxl's, guidance 3.5, on ComfyUI's simple levels, from the template's seed."""
    from app.comfyui import import_data
    from comfy_layouts import link_as
    link_as(models / "diffusion_models" / "flux1-dev.safetensors",
            models / "diffusion_models" / "flux1-dev-tiny.safetensors")
    data = json.loads((ROOT / "tests" / "data" / "flux" / "flux_dev_full_text_to_image.json").read_text("utf-8"))
    clip_l, t5, guidance = next(n for n in data["nodes"] if n["type"] == "CLIPTextEncodeFlux")["widgets_values"]
    res = import_data(data)
    statuses = {e.class_type: e.status for e in res.report.entries.values()}
    assert "unmapped" not in statuses.values(), statuses
    yaml = res.yaml.replace("width: 1024", "width: 64").replace("height: 1024", "height: 48")
    yaml = yaml.replace("steps: 20", "steps: 3")
    assert yaml.count("width: 64") == 1 and "steps: 3" in yaml, yaml
    wf = tmp_path / "flux_dev.kino.yaml"
    wf.write_text(yaml)
    monkeypatch.chdir(tmp_path)
    from graph_engine.api import Session, load_workflow
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    got = next(v["latent"] for k, v in run.outputs.items() if k.startswith("k_sampler")).samples[:, :, 0]
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    ref = FluxPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    seed = next(n for n in data["nodes"] if n["type"] == "KSampler")["widgets_values"][0]
    packed = ref(clip_l, prompt_2=t5, width=64, height=48, sigmas=comfy_flux_sigmas(3), guidance_scale=guidance,
                 generator=torch.Generator().manual_seed(seed), output_type="latent").images
    _close(ref._unpack_latents(packed, 48, 64, ref.vae_scale_factor), got)


# -- FLUX.1 ControlNets (InstantX / Shakker-Labs layout, XLabs', MistoLine's) --------------------------------------------
W, H = 64, 48


@pytest.fixture(scope="module")
def flux_nets(flux):
    """FLUX.1 ControlNets beside the tiny FLUX.1 dev: InstantX's canny and a Union-Pro (union) layout, each as the
    single file ComfyUI users keep in controlnet/ and as the diffusers folder; XLabs' canny v3 in x-flux-comfyui's
    xlabs/controlnets/ and MistoLine's in controlnet/, in their authors' names (tiny_flux.pixel_controlnet)."""
    from safetensors.torch import save_file
    from tiny_flux import flux_controlnet, inpaint_controlnet, pixel_controlnet
    cn = flux / "models" / "controlnet"
    cn.mkdir(exist_ok=True)
    for name, union, seed in (("instantx_flux_canny", False, 3), ("flux_union_pro", True, 4)):
        net = flux_controlnet(union, seed)
        save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(cn / f"{name}.safetensors"))
        net.save_pretrained(str(flux / name))
    alimama = inpaint_controlnet(6)
    save_file({k: v.half().contiguous() for k, v in alimama.state_dict().items()},
              str(cn / "FLUX.1-dev-Controlnet-Inpainting-Beta.safetensors"))
    xlabs = flux / "models" / "xlabs" / "controlnets"        # x-flux-comfyui's folder
    xlabs.mkdir(parents=True, exist_ok=True)
    for where, name, mistoline in ((cn, "mistoline_flux.dev.safetensors", True),
                                   (xlabs, "flux-canny-controlnet-v3.safetensors", False)):
        net, tensors = pixel_controlnet(mistoline, 5)
        save_file({k: v.half().contiguous() for k, v in tensors.items()}, str(where / name))
    net.save_pretrained(str(flux / "flux-controlnet-canny-diffusers"))      # XLabs' own diffusers folder
    return flux


def _cn_picture():
    """A control picture with edges and a gradient, so it encodes to a latent unlike the noise."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([xx * 4, yy * 5, ((xx // 8 + yy // 8) % 2) * 255], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _cn_kinograph(mm, model, controls, cfg=3.5, steps=2, mask=None):
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    p = mm.components(model)
    clip = Clip.from_array(_cn_picture()[None], 8.0)
    for path, strength, mode, end in controls:
        model = apply_control(mm, model, clip, path, strength, "none", 100, 200, end=end, mode=mode, mask=mask)
    pos = encode_prompt(p["text_encoder"], "a cat")
    return run_sampling(model, pos, None, empty_latent(p["vae"], 1, W, H, 8.0), steps=steps, cfg=cfg,
                        sampler="euler", seed=7).samples[:, :, 0]


def _cn_diffusers(folder, nets, scales, modes, monkeypatch, ends=(1.0,), steps=2):
    """FluxControlNetPipeline's latent for the same prompt, seed and picture; its VAE told to take the posterior's
    mean, as Kinograph's (and ComfyUI's) encodes do, where diffusers draws a sample."""
    from PIL import Image
    from diffusers import FluxControlNetPipeline, FluxMultiControlNetModel
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mean)
    net = nets[0] if len(nets) == 1 else FluxMultiControlNetModel(nets)
    ref = FluxControlNetPipeline.from_pretrained(str(folder), controlnet=net, local_files_only=True)
    image = Image.fromarray(_cn_picture())
    one = len(nets) == 1
    packed = ref("a cat", width=W, height=H, num_inference_steps=steps, guidance_scale=3.5,
                 control_image=image if one else [image] * len(nets),
                 controlnet_conditioning_scale=scales[0] if one else scales,
                 control_mode=modes[0] if one else modes, control_guidance_end=ends[0] if one else list(ends),
                 generator=torch.Generator().manual_seed(7),
                 output_type="latent").images
    return ref._unpack_latents(packed, H, W, ref.vae_scale_factor)


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_flux_controlnet_files_are_named_by_layout_and_base(models, flux_nets):
    flux = flux_nets
    """kinograph info's rows: InstantX / Shakker-Labs files and folders load (a union one says its modes); XLabs'
    (whose input_hint_block made it an "sd sd15 controlnet" that loads) and MistoLine's are FLUX.1 ControlNets of
    their layout that load (they were listed as not loading). The InstantX file was listed as a FLUX.1 dev diffusion
    model."""
    from nodes.generate.model_manager import describe_model
    cn = models / "controlnet"
    xlabs = models / "xlabs" / "controlnets" / "flux-canny-controlnet-v3.safetensors"
    got = {p: describe_model(p) for p in (cn / "instantx_flux_canny.safetensors", cn / "flux_union_pro.safetensors",
                                          flux / "flux_union_pro", xlabs, cn / "mistoline_flux.dev.safetensors",
                                          flux / "flux-controlnet-canny-diffusers",
                                          cn / "FLUX.1-dev-Controlnet-Inpainting-Beta.safetensors")}
    assert [(d["family"], d["variant"], d["role"], d["loads"]) for d in got.values()] == [
        ("flux", "instantx", "controlnet", "yes"), ("flux", "instantx-union", "controlnet", "yes"),
        ("flux", "instantx-union", "controlnet", "yes"), ("flux", "xlabs", "controlnet", "yes"),
        ("flux", "mistoline", "controlnet", "yes"), ("flux", "xlabs", "controlnet", "yes"),
        ("flux", "instantx-inpaint", "controlnet", "yes")], got
    assert "mode picks canny, tile, depth" in got[cn / "flux_union_pro.safetensors"]["note"]
    assert "XLabs layout" in got[xlabs]["note"] and "no VAE needed" in got[xlabs]["note"]


def test_flux_controlnets_steer_as_fluxcontrolnetpipeline(models, flux_nets, monkeypatch, tmp_path):
    flux = flux_nets
    """One union net told depth at strength 0.7, then it with the canny net (two at once, summed per block; canny
    only over the first of 2 steps): each latent is FluxControlNetPipeline's (FluxMultiControlNetModel for two) within
    1e-4, while the net moves the picture by orders more. The union as a diffusers folder steers as its file does.
    end is a noise level's share, as ComfyUI's end_percent (0.3: level 0.7, between the steps' 1.0 and 0.61), where
    diffusers' control_guidance_end counts steps (0.5 of 2). The refusals name the file and what to do: a mode for a
    net of one kind, a mode no union has, an SD 1.5 ControlNet (said only "... not a FLUX.1 ControlNet"), a truncated
    file."""
    from diffusers import FluxControlNetModel
    from nodes.generate.control import apply_control
    from nodes.generate.model_manager import ModelManager
    from graph_engine import Clip
    mm = ModelManager()
    model = mm.load("flux", str(flux / "diffusers"))
    union, canny = (FluxControlNetModel.from_pretrained(str(flux / n)) for n in ("flux_union_pro", "instantx_flux_canny"))
    plain = _cn_kinograph(mm, model, [])
    one = _cn_kinograph(mm, model, [("flux_union_pro.safetensors", 0.7, "depth", 1.0)])
    want = _cn_diffusers(flux / "diffusers", [union], [0.7], [2], monkeypatch)
    assert _err(want, one) < 1e-4 and _err(want, plain) > 1e-2, (_err(want, one), _err(want, plain))
    two = _cn_kinograph(mm, model, [("instantx_flux_canny.safetensors", 0.5, "auto", 0.3),
                                    (str(flux / "flux_union_pro"), 0.7, "depth", 1.0)])
    want = _cn_diffusers(flux / "diffusers", [canny, union], [0.5, 0.7], [None, 2], monkeypatch, ends=(0.5, 1.0))
    assert _err(want, two) < 1e-4 and _err(want, one) > 1e-2, (_err(want, two), _err(want, one))
    clip = Clip.from_array(_cn_picture()[None], 8.0)
    from diffusers import ControlNetModel
    from safetensors.torch import save_file
    sd15 = ControlNetModel(block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                           layers_per_block=1, cross_attention_dim=32, conditioning_embedding_out_channels=(16, 32),
                           norm_num_groups=8)
    sd15_file = tmp_path / "control_v11p_sd15_canny.safetensors"
    save_file({k: v.contiguous() for k, v in sd15.state_dict().items()}, str(sd15_file))
    whole = (models / "xlabs" / "controlnets" / "flux-canny-controlnet-v3.safetensors").read_bytes()
    (tmp_path / "flux-depth-controlnet-v3.safetensors").write_bytes(whole[:len(whole) // 2])
    for path, mode, says in (("instantx_flux_canny.safetensors", "depth", "not a union ControlNet .* set mode to auto"),
                             ("flux-canny-controlnet-v3.safetensors", "canny", "flux-canny-controlnet-v3.safetensors is "
                              "not a union ControlNet"),
                             ("flux_union_pro.safetensors", "scribble", "unknown union mode 'scribble' for "
                              "flux_union_pro.safetensors; choose auto or one of canny, tile"),
                             (str(sd15_file), "auto", "control_v11p_sd15_canny.safetensors is sd sd15 controlnet .*, a ControlNet for Stable Diffusion 1.5 .* models, not a FLUX.1 "
                              "ControlNet: apply it to such a model, or pick one made for a FLUX.1"),
                             (str(tmp_path / "flux-depth-controlnet-v3.safetensors"), "auto",
                              "flux-depth-controlnet-v3.safetensors is not a valid safetensors file .* truncated")):
        with pytest.raises(NodeError, match=says):
            apply_control(mm, model, clip, path, 1.0, "none", 100, 200, mode=mode)


def test_xlabs_and_mistoline_controlnets_steer_as_their_references(models, flux_nets, monkeypatch):
    """XLabs' flux-canny-controlnet-v3 (found by name in x-flux-comfyui's xlabs/controlnets/) at strength 0.8 gives
    FluxControlNetPipeline's latent for the diffusers FluxControlNetModel its tensors came from (the picture read in
    pixels, [-1, 1]), as does that model's folder (flux-controlnet-canny-diffusers, which was handed the picture's
    latent); MistoLine's at 0.6 gives the same pipeline's run of that model with MistoLine's own encoder and output
    blocks (tiny_flux.pixel_controlnet); both within 1e-4, each moving the picture by orders more. Neither needs a VAE:
    the split-file model without one takes them. Their outputs take the transformer's blocks in turn (ComfyUI's
    controlnet_double * repeat, as x-flux trained its two blocks for FLUX.1's 19): over five blocks, block i gets output
    i mod 2, where InstantX's spread gives blocks 0-2 the first. Both were refused: 'an XLabs FLUX.1 ControlNet ... is
    not supported yet', 'a MistoLine FLUX.1 ControlNet is not supported yet'."""
    from tiny_flux import pixel_controlnet
    from nodes.generate import flux_control
    from nodes.generate.control import Control
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager()
    model = mm.load("flux", str(flux_nets / "diffusers"))
    plain = _cn_kinograph(mm, model, [])
    for name, mistoline, strength in (("flux-canny-controlnet-v3.safetensors", False, 0.8),
                                      (str(flux_nets / "flux-controlnet-canny-diffusers"), False, 0.8),
                                      ("mistoline_flux.dev.safetensors", True, 0.6)):
        got = _cn_kinograph(mm, model, [(name, strength, "auto", 1.0)])
        want = _cn_diffusers(flux_nets / "diffusers", [pixel_controlnet(mistoline, 5)[0]], [strength], [None],
                             monkeypatch)
        assert _err(want, got) < 1e-4 and _err(want, plain) > 1e-2, (name, _err(want, got), _err(want, plain))
    bare = mm.load("flux", str(models / "diffusion_models" / "flux1-dev-tiny.safetensors"))
    assert getattr(bare.pipe, "vae", None) is None
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    steered = apply_control(mm, bare, Clip.from_array(_cn_picture()[None], 8.0), "flux-canny-controlnet-v3", 1.0,
                            "none", 100, 200)
    net = steered.option("controlnet")[0].net
    call = dict(hidden_states=torch.randn(1, 12, 64), timestep=torch.tensor([0.5]), pooled_projections=torch.randn(1, 64),
                encoder_hidden_states=torch.randn(1, 5, 32), txt_ids=torch.zeros(5, 3), img_ids=torch.zeros(12, 3))
    pixels = torch.rand(1, 3, 48, 64) * 2 - 1
    out = flux_control.residuals([Control(net, pixels, 1.0)], 5, 0, torch.tensor([3.5]), **call)
    own, _ = net(**call, guidance=torch.tensor([3.5]), controlnet_cond=pixels, return_dict=False)
    assert [int(torch.equal(r, own[1])) for r in out["controlnet_block_samples"]] == [0, 1, 0, 1, 0]
    assert not torch.equal(own[0], own[1])


def _comfy_cn_graph(nodes: dict, prefix: str) -> dict:
    """ComfyUI's FLUX.1 dev split-file graph with a ControlNet: `nodes` (the loader, the pictures, node 17 applying
    it to the prompts 60 and 7) between an empty negative prompt and a KSampler at cfg 1 on the simple levels (2
    steps, seed 7), saved under `prefix`."""
    api = {k: v for k, v in FLUX_DEV_API.items() if k in ("10", "11", "12", "6", "60", "27", "8")}
    api.update({"7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["11", 0]}}, **nodes,
                "13": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 2, "cfg": 1.0, "sampler_name": "euler",
                                                            "scheduler": "simple", "denoise": 1.0, "model": ["12", 0],
                                                            "positive": ["17", 0], "negative": ["17", 1],
                                                            "latent_image": ["27", 0]}},
                "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["8", 0]}}})
    return api


def _on_comfy_levels(ref, image, **call):
    """FluxControlNetPipeline `ref`'s latent for "a cat" with the control picture `image` on ComfyUI's simple levels
    (2 steps, shift 1), seed 7."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from PIL import Image
    ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    packed = ref("a cat", width=W, height=H, sigmas=comfy_flux_sigmas(2), guidance_scale=3.5,
                 control_image=Image.fromarray(image), generator=torch.Generator().manual_seed(7), output_type="latent",
                 **call).images
    return ref._unpack_latents(packed, H, W, ref.vae_scale_factor)


def test_comfyui_flux_controlnet_graph_imports_and_runs_as_comfyui_samples(models, flux_nets, tmp_path, monkeypatch):
    """ComfyUI's FLUX.1 ControlNet graph (ComfyUI_examples' flux_controlnet_example: split loaders, FluxGuidance,
    ControlNetLoader, SetUnionControlNetType, LoadImage, ControlNetApplySD3 with the VAE, KSampler at cfg 1) maps
    every node and samples as ComfyUI does: its type "depth" reaches the union net as row 1 (ComfyUI's index, which
    InstantX's union reads as tile, and the import says so), on ComfyUI's simple levels: FluxControlNetPipeline with
    control_mode 1 on those levels. It stopped at "ControlNet works with AnimateDiff and Stable Diffusion"."""
    from PIL import Image
    from comfy_layouts import imported_run
    from diffusers import FluxControlNetModel, FluxControlNetPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    Image.fromarray(_cn_picture()).save(tmp_path / "depth.png")
    api = _comfy_cn_graph({
        "14": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "flux_union_pro.safetensors"}},
        "15": {"class_type": "SetUnionControlNetType", "inputs": {"type": "depth", "control_net": ["14", 0]}},
        "16": {"class_type": "LoadImage", "inputs": {"image": str(tmp_path / "depth.png")}},
        "17": {"class_type": "ControlNetApplySD3", "inputs": {"strength": 0.7, "start_percent": 0.0,
                                                              "end_percent": 1.0, "positive": ["60", 0],
                                                              "negative": ["7", 0], "control_net": ["15", 0],
                                                              "vae": ["10", 0], "image": ["16", 0]}}}, "fluxcn")
    monkeypatch.chdir(tmp_path)
    res, run = imported_run(api, tmp_path, "fluxcn")
    assert "which an InstantX / Shakker-Labs FLUX.1 union reads as tile" in " ".join(res.report.entries["15"].notes)
    assert "mode: tile" in res.yaml and "vae: vae_loader_10.vae" in res.yaml
    got = run.outputs["k_sampler_13"]["latent"].samples[:, :, 0]
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mean)
    ref = FluxControlNetPipeline.from_pretrained(str(flux_nets / "diffusers"), local_files_only=True,
                                                 controlnet=FluxControlNetModel.from_pretrained(
                                                     str(flux_nets / "flux_union_pro")))
    assert _err(_on_comfy_levels(ref, _cn_picture(), control_mode=1, controlnet_conditioning_scale=0.7), got) < 1e-4


def _hole():
    """A mask (1: redraw) whose edges fall on the 8-pixel latent grid, so its latent-sized copy is plain slicing."""
    m = np.zeros((H, W), np.float32)
    m[8:32, 16:48] = 1.0
    return m


def test_alimama_blacks_the_pixels_of_a_soft_mask_rounded():
    """ControlNetInpaintingAliMamaApply multiplies the picture by the inverted mask rounded to 0 / 1 (its
    mask_apply .round()), while the net reads the inverted mask itself: a soft edge (0.4 kept, 0.6 blacked) as
    ComfyUI, not the picture faded by it. The sampling test's mask is all 0 / 1 and cannot tell."""
    from types import SimpleNamespace
    from nodes.generate.flux_control import INPAINT_CHANNELS, masked
    net = SimpleNamespace(controlnet_x_embedder=torch.nn.Linear(INPAINT_CHANNELS, 4), input_hint_block=None)
    frames = np.full((1, 2, 2, 3), 200, np.uint8)
    mask = np.array([[0.4, 0.6], [0.0, 1.0]], np.float32)
    pictures, keep = masked(net, frames, mask, "inpaint.safetensors")
    assert pictures[0, ..., 0].tolist() == [[200, 0], [200, 0]]
    assert np.allclose(keep[0], 1 - mask)


def test_alimama_inpainting_controlnet_redraws_the_masked_region_as_comfyui(models, flux_nets, tmp_path, monkeypatch):
    """alimama's FLUX.1-dev-Controlnet-Inpainting-Beta (68 channels per patch) with a mask at strength 0.9: the latent
    is FluxControlNetPipeline's for the same weights given what ComfyUI's ControlNetInpaintingAliMamaApply gives the
    net: the picture with the masked pixels black, VAE-encoded, and beside it 1 - mask at the latent's size (computed
    here by slicing the grid-aligned mask), within 1e-4; the net moves the picture by orders more. Without a mask it
    says to connect one; a mask on a net that reads none is named. It was refused: 'a FLUX.1 inpainting ControlNet
    (68 input channels ...) is not supported yet'. The same through ComfyUI's nodes (LoadImage, LoadImageMask,
    ControlNetInpaintingAliMamaApply with the VAE, KSampler at cfg 1 on the simple levels) maps every node and gives
    the pipeline's latent on those levels."""
    from PIL import Image
    from comfy_layouts import imported_run
    from diffusers import FluxControlNetPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.model_manager import ModelManager
    from tiny_flux import inpaint_controlnet
    mm = ModelManager()
    model = mm.load("flux", str(flux_nets / "diffusers"))
    name = "FLUX.1-dev-Controlnet-Inpainting-Beta.safetensors"
    got = _cn_kinograph(mm, model, [(name, 0.9, "auto", 1.0)], mask=_hole())
    keep = 1.0 - _hole()
    ref_net = inpaint_controlnet(6)
    lat = torch.from_numpy(keep[::8, ::8].copy())           # the latent grid's copy of the kept region
    ref_net.keep = lat.view(H // 16, 2, W // 16, 2).permute(0, 2, 1, 3).reshape(1, -1, 4)
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mean)
    ref = FluxControlNetPipeline.from_pretrained(str(flux_nets / "diffusers"), controlnet=ref_net,
                                                 local_files_only=True)
    black = (_cn_picture() * keep[..., None]).astype(np.uint8)
    packed = ref("a cat", width=W, height=H, num_inference_steps=2, guidance_scale=3.5,
                 control_image=Image.fromarray(black), controlnet_conditioning_scale=0.9,
                 generator=torch.Generator().manual_seed(7), output_type="latent").images
    want = ref._unpack_latents(packed, H, W, ref.vae_scale_factor)
    plain = _cn_kinograph(mm, model, [])
    assert _err(want, got) < 1e-4 and _err(want, plain) > 1e-2, (_err(want, got), _err(want, plain))
    Image.fromarray((_hole() * 255).astype(np.uint8)).save(tmp_path / "hole.png")
    Image.fromarray(_cn_picture()).save(tmp_path / "photo.png")
    api = _comfy_cn_graph({
        "14": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": name}},
        "15": {"class_type": "LoadImage", "inputs": {"image": str(tmp_path / "photo.png")}},
        "16": {"class_type": "LoadImageMask", "inputs": {"image": str(tmp_path / "hole.png"), "channel": "red"}},
        "17": {"class_type": "ControlNetInpaintingAliMamaApply", "inputs": {
            "strength": 0.9, "start_percent": 0.0, "end_percent": 1.0, "positive": ["60", 0], "negative": ["7", 0],
            "control_net": ["14", 0], "vae": ["10", 0], "image": ["15", 0], "mask": ["16", 0]}}}, "alimama")
    monkeypatch.chdir(tmp_path)
    _, run = imported_run(api, tmp_path, "alimama")
    assert _err(_on_comfy_levels(ref, black, controlnet_conditioning_scale=0.9),
                run.outputs["k_sampler_13"]["latent"].samples[:, :, 0]) < 1e-4
    clip = Clip.from_array(_cn_picture()[None], 8.0)
    with pytest.raises(NodeError, match=f"{name} is alimama's FLUX.1 inpainting ControlNet, which redraws a region: "
                                        "connect the mask"):
        apply_control(mm, model, clip, name, 1.0, "none", 100, 200)
    with pytest.raises(NodeError, match="instantx_flux_canny.safetensors is not an inpainting ControlNet and reads no "
                                        "mask: disconnect control.apply's mask"):
        apply_control(mm, model, clip, "instantx_flux_canny.safetensors", 1.0, "none", 100, 200, mask=_hole())


def test_comfyui_xlabs_controlnet_graph_imports_and_runs_without_a_vae(models, flux_nets, tmp_path, monkeypatch):
    """A ComfyUI graph as XLabs' users build it on ComfyUI's own nodes: ControlNetLoader naming
    flux-canny-controlnet-v3.safetensors (in x-flux-comfyui's xlabs/controlnets/), ControlNetApplyAdvanced with no VAE
    connected (the XLabs net reads pixels), KSampler at cfg 1 on the simple levels: every node maps and the latent is
    FluxControlNetPipeline's for the net's diffusers model on those levels. It stopped at 'an XLabs FLUX.1 ControlNet
    ... is not supported yet'. A SetUnionControlNetType left in front of it, which ComfyUI's forward of a net without
    mode rows ignores, imports as mode auto, said in the report (it was carried as a mode, which control.apply
    refuses for a net of one kind)."""
    from PIL import Image
    from comfy_layouts import imported_run
    from diffusers import FluxControlNetPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from tiny_flux import pixel_controlnet
    Image.fromarray(_cn_picture()).save(tmp_path / "edges.png")
    api = _comfy_cn_graph({
        "14": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "flux-canny-controlnet-v3.safetensors"}},
        "16": {"class_type": "LoadImage", "inputs": {"image": str(tmp_path / "edges.png")}},
        "15": {"class_type": "SetUnionControlNetType", "inputs": {"type": "canny/lineart/anime_lineart/mlsd",
                                                                  "control_net": ["14", 0]}},
        "17": {"class_type": "ControlNetApplyAdvanced", "inputs": {"strength": 0.8, "start_percent": 0.0,
                                                                   "end_percent": 1.0, "positive": ["60", 0],
                                                                   "negative": ["7", 0], "control_net": ["15", 0],
                                                                   "image": ["16", 0]}}}, "xlabs")
    monkeypatch.chdir(tmp_path)
    res, run = imported_run(api, tmp_path, "xlabs")
    import yaml
    applied = [n for n in yaml.safe_load(res.yaml)["nodes"].values() if n["type"] == "control.apply"]
    assert len(applied) == 1 and "vae" not in applied[0].get("inputs", {}), applied
    assert applied[0]["params"].get("mode", "auto") == "auto", applied
    assert "ComfyUI runs without the type: mode auto" in " ".join(res.report.entries["15"].notes)
    got = run.outputs["k_sampler_13"]["latent"].samples[:, :, 0]
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mean)
    ref = FluxControlNetPipeline.from_pretrained(str(flux_nets / "diffusers"), local_files_only=True,
                                                 controlnet=pixel_controlnet(False, 5)[0])
    assert _err(_on_comfy_levels(ref, _cn_picture(), controlnet_conditioning_scale=0.8), got) < 1e-4


def xlabs_sigmas(steps: int, width: int, height: int):
    """XlabsSampler's levels (x-flux-comfyui sampling.get_schedule, written out from its code): steps + 1 from 1 to
    0, shifted by mu linear in the 2x2-patch count (0.5 at 256, 1.15 at 4096); the last (0) left to the scheduler."""
    import math
    mu = 0.5 + (1.15 - 0.5) / (4096 - 256) * ((width // 16) * (height // 16) - 256)
    return [math.exp(mu) / (math.exp(mu) + (1 / t - 1)) for t in np.linspace(1, 0, steps + 1)[:-1]]


# The start of x-flux-comfyui's example graphs: FLUX.1 dev split files, a prompt and a negative, FluxGuidance 3.5, an
# empty latent (UI-format rows for comfyui_workflows.ui_format).
_XFLUX_HEAD = [
    (1, "UNETLoader", ["flux1-dev-tiny.safetensors", "default"], {}, ["MODEL"]),
    (2, "DualCLIPLoader", ["t5xxl_fp16.safetensors", "clip_l.safetensors", "flux", "default"], {}, ["CLIP"]),
    (3, "VAELoader", ["ae.safetensors"], {}, ["VAE"]),
    (4, "CLIPTextEncode", ["a cat"], {"clip": (2, 0, "CLIP")}, ["CONDITIONING"]),
    (5, "CLIPTextEncode", ["blurry"], {"clip": (2, 0, "CLIP")}, ["CONDITIONING"]),
    (6, "FluxGuidance", [3.5], {"conditioning": (4, 0, "CONDITIONING")}, ["CONDITIONING"]),
    (7, "EmptyLatentImage", [W, H, 1], {}, ["LATENT"]),
]


def _xlabs_ui(picture, start_cfg=2, true_gs=3.0, i2i=0.0, denoise=1.0, control=True):
    """A ComfyUI UI-format graph on x-flux-comfyui's nodes, as its canny workflow builds one: split loaders,
    FluxGuidance 3.5, LoadFluxControlNet, ApplyAdvancedFluxControlNet at 0.8 (without them: `control` False),
    XlabsSampler (2 steps, seed 7)."""
    from comfyui_workflows import ui_format
    nodes = _XFLUX_HEAD + [
        (8, "LoadFluxControlNet", ["flux-dev", "flux-canny-controlnet-v3.safetensors"], {}, ["FluxControlNet"]),
        (9, "LoadImage", [picture, "image"], {}, ["IMAGE", "MASK"]),
        (10, "ApplyAdvancedFluxControlNet", [0.8, 0.0, 1.0], {"controlnet": (8, 0, "FluxControlNet"),
                                                               "image": (9, 0, "IMAGE")}, ["ControlNetCondition"]),
        (11, "XlabsSampler", [7, "fixed", 2, start_cfg, true_gs, i2i, denoise],
         {"model": (1, 0, "MODEL"), "conditioning": (6, 0, "CONDITIONING"), "neg_conditioning": (5, 0, "CONDITIONING"),
          "latent_image": (7, 0, "LATENT"), "controlnet_condition": (10, 0, "ControlNetCondition")}, ["LATENT"]),
        (12, "VAEDecode", [], {"samples": (11, 0, "LATENT"), "vae": (3, 0, "VAE")}, ["IMAGE"]),
        (13, "SaveImage", ["xflux"], {"images": (12, 0, "IMAGE")}, []),
    ]
    if not control:
        nodes = [n for n in nodes if n[0] not in (8, 9, 10)]
        nodes[-3][3].pop("controlnet_condition")
    return ui_format(nodes)


def test_x_flux_comfyui_graph_imports_and_samples_as_xlabs_sampler(models, flux_nets, tmp_path, monkeypatch):
    """x-flux-comfyui's own nodes (LoadFluxControlNet, ApplyAdvancedFluxControlNet, XlabsSampler) in a UI-format graph
    map every node, and the run is XlabsSampler's: Euler on its shifted schedule (xlabs_sigmas), FluxGuidance's 3.5,
    XLabs' canny v3 at 0.8 on every step, true CFG not yet started (timestep_to_start_cfg = steps), against
    FluxControlNetPipeline on those levels. They were unmapped. Its settings that Kinograph does not carry (true CFG
    started early, denoise_strength, image_to_image_strength) are named in the report."""
    from PIL import Image
    from app.comfyui import import_data
    from comfy_layouts import imported_run
    from diffusers import FluxControlNetPipeline
    from tiny_flux import pixel_controlnet
    Image.fromarray(_cn_picture()).save(tmp_path / "edges.png")
    monkeypatch.chdir(tmp_path)
    res, run = imported_run(_xlabs_ui(str(tmp_path / "edges.png")), tmp_path, "xflux")
    got = run.outputs["xlabs_sampler_11"]["latent"].samples[:, :, 0]
    ref = FluxControlNetPipeline.from_pretrained(str(flux_nets / "diffusers"), local_files_only=True,
                                                 controlnet=pixel_controlnet(False, 5)[0])
    from diffusers import FlowMatchEulerDiscreteScheduler
    ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    packed = ref("a cat", width=W, height=H, sigmas=xlabs_sigmas(2, W, H), guidance_scale=3.5,
                 control_image=Image.fromarray(_cn_picture()), controlnet_conditioning_scale=0.8,
                 generator=torch.Generator().manual_seed(7), output_type="latent").images
    assert _err(ref._unpack_latents(packed, H, W, ref.vae_scale_factor), got) < 1e-4
    notes = " ".join(import_data(_xlabs_ui("edges.png", i2i=0.4, denoise=0.9)).report.entries["11"].notes)
    assert "denoise_strength 0.9 stops XLabs' schedule after 1 of its 2 steps" in notes, notes
    assert "image_to_image_strength 0.4" in notes, notes


def test_x_flux_comfyui_true_cfg_samples_as_fluxpipeline(models, tmp_path, monkeypatch):
    """XlabsSampler's true CFG (true_gs 2.5 with the negative prompt "blurry" from step timestep_to_start_cfg 0, on
    FluxGuidance's 3.5) becomes guide.true_cfg and samples as FluxPipeline's true_cfg_scale on XlabsSampler's
    levels (< 1e-4); started at step 1 it runs on step 1 only (the prompt alone first), which is neither that nor
    no true CFG. It was not carried: Kinograph sampled on the distilled guidance alone."""
    import yaml
    from comfy_layouts import imported_run
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    got = {}
    for start in (0, 1, 2):
        (tmp_path / str(start)).mkdir()
        monkeypatch.chdir(tmp_path / str(start))
        res, run = imported_run(_xlabs_ui("", start_cfg=start, true_gs=2.5, control=False), tmp_path / str(start),
                                "xflux")
        guides = [n["params"] for n in yaml.safe_load(res.yaml)["nodes"].values() if n["type"] == "guide.true_cfg"]
        assert guides == ([{"scale": 2.5, "start": start}] if start < 2 else []), guides
        got[start] = run.outputs["xlabs_sampler_11"]["latent"].samples[:, :, 0]
    ref = FluxPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    packed = ref("a cat", negative_prompt="blurry", true_cfg_scale=2.5, width=W, height=H,
                 sigmas=xlabs_sigmas(2, W, H), guidance_scale=3.5, generator=torch.Generator().manual_seed(7),
                 output_type="latent").images
    assert _err(ref._unpack_latents(packed, H, W, ref.vae_scale_factor), got[0]) < 1e-4
    assert _err(got[0], got[1]) > 1e-2 and _err(got[2], got[1]) > 1e-2


# -- FLUX.1 Redux ------------------------------------------------------------------------------------------------------
# flux1-redux-dev.safetensors (style_models/) and SigLIP's sigclip_vision_patch14_384 (clip_vision/), or black-forest-labs'
# FLUX.1-Redux-dev diffusers folder, beside this module's tiny FLUX.1 (tests/tiny_redux.py).
RW = RH = 32


@pytest.fixture(scope="module")
def redux(flux):
    from tiny_redux import build_redux
    return build_redux(flux)


def _pictures():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)


def test_redux_files_and_folder_are_named_and_listed(models, redux):
    """`kinograph info` lists both ComfyUI files and the diffusers folder as what they are and what loads them."""
    import shutil
    from nodes.generate.model_manager import describe_model, list_found_models
    (models / "diffusers").mkdir(exist_ok=True)
    shutil.copytree(models.parent / "redux", models / "diffusers" / "FLUX.1-Redux-dev", dirs_exist_ok=True)
    found = {Path(p).name: d for _, p, d in list_found_models()}
    redux, siglip = found["flux1-redux-dev.safetensors"], found["sigclip_vision_patch14_384.safetensors"]
    assert (redux["family"], redux["role"], redux["loads"]) == ("flux", "style_model", "yes"), redux
    assert "load.style_model" in redux["note"]
    assert (siglip["variant"], siglip["role"], siglip["loads"]) == ("siglip-w144", "clip_vision", "yes"), siglip
    assert "Redux" in siglip["note"]
    from nodes.generate.detect import detect_keys
    from nodes.generate.model_manager import will_load
    so400m = detect_keys({"vision_model.embeddings.patch_embedding.weight": (1152, 3, 14, 14),
                          "vision_model.embeddings.patch_embedding.bias": (1152,),
                          "vision_model.embeddings.position_embedding.weight": (729, 1152)})
    assert (so400m.variant, so400m.why) == ("siglip-so400m", "SigLIP vision tower (384 px, no class token)"), so400m
    naflex = detect_keys({"vision_model.embeddings.patch_embedding.weight": (1152, 588),
                          "vision_model.embeddings.patch_embedding.bias": (1152,),
                          "vision_model.embeddings.position_embedding.weight": (256, 1152)})
    assert will_load(naflex) == (False, "SigLIP 2 NaFlex, which Kinograph does not read; FLUX.1 Redux reads SigLIP "
                                        "(sigclip_vision_patch14_384.safetensors)")
    folder = describe_model(models / "diffusers" / "FLUX.1-Redux-dev")
    assert (folder["family"], folder["role"], folder["loads"]) == ("flux", "style_model", "yes"), folder
    assert "load.style_model" in folder["note"] and "load.clip_vision" in folder["note"]


def _reference(folder, prompt_embeds, pooled, mask=None, steps=2, seed=7):
    from diffusers import FluxPipeline
    ref = FluxPipeline.from_pretrained(str(folder), local_files_only=True)
    packed = ref(prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled, width=RW, height=RH, num_inference_steps=steps,
                 guidance_scale=3.5, generator=torch.Generator().manual_seed(seed), output_type="latent",
                 joint_attention_kwargs=None if mask is None else {"attention_mask": mask}).images
    return ref._unpack_latents(packed, RH, RW, ref.vae_scale_factor)


def test_redux_matches_flux_prior_redux_pipeline(models, redux):
    """Two pictures chained (the first squeezed whole into SigLIP's square, crop none, as SiglipImageProcessor does;
    the second at 0.6 multiply) on ComfyUI's files give FluxPipeline's latent for FluxPriorReduxPipeline's prompt
    tokens (the second's scaled by 0.6); without the pictures the latent moves far more than the error. attn_bias:
    strength 0 is the prompt alone, 1 is multiply at 1, 0.5 is FluxPipeline told log 0.5 on the attention the prompt's
    and the image's tokens pay the Redux tokens."""
    from diffusers import FluxPriorReduxPipeline
    from PIL import Image
    from nodes.generate.image_cond import encode_image
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.redux import apply_style, load_style_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_clip_vision, load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    model = load_diffusion_model(mm, "flux1-dev-tiny.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "clip_l.safetensors", "t5xxl_fp16.safetensors", "flux", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    siglip = load_clip_vision(mm, "sigclip_vision_patch14_384.safetensors", "auto", "cpu")
    style = load_style_model(mm, "flux1-redux-dev.safetensors", "cpu")
    one, two = _pictures()
    text = encode_prompt(te, "a cat")
    first, second = encode_image(siglip, one, "none"), encode_image(siglip, two, "center")

    def sample(cond):
        return run_sampling(model, cond, None, empty_latent(vae, 1, RW, RH, 8.0), steps=2, cfg=3.5, sampler="euler",
                            seed=7).samples[:, :, 0]
    chained = apply_style(apply_style(text, style, first), style, second, 0.6)
    got = sample(chained)

    folder = models.parent / "diffusers"
    from diffusers import FluxPipeline
    text_parts = {k: v for k, v in FluxPipeline.from_pretrained(str(folder), local_files_only=True).components.items()
                  if k.startswith(("text_encoder", "tokenizer"))}
    prior = FluxPriorReduxPipeline.from_pretrained(str(models.parent / "redux"), local_files_only=True, **text_parts)
    first_prompt = prior(image=Image.fromarray(one), prompt="a cat")
    embeds, pooled = first_prompt.prompt_embeds[:, :512], first_prompt.pooled_prompt_embeds
    tokens_two = prior.image_embedder(prior.encode_image(Image.fromarray(two), "cpu", 1)).image_embeds
    want = _reference(folder, torch.cat([first_prompt.prompt_embeds, 0.6 * tokens_two], 1), pooled)
    err = _close(want, got)
    plain = sample(text)
    moved = float((want - plain).abs().max() / want.abs().max())
    assert moved > 1000 * max(err, 1e-6), (moved, err)

    # attn_bias, one picture
    _close(plain, sample(apply_style(text, style, second, 0.0, "attn_bias")))
    alone = apply_style(text, style, second)
    _close(sample(alone), sample(apply_style(text, style, second, 1.0, "attn_bias")))
    half = apply_style(text, style, second, 0.5, "attn_bias")
    n_txt, n = text.embeds.shape[1], tokens_two.shape[1]
    size = n_txt + n + (RW // 16) * (RH // 16)
    mask = torch.zeros(1, 1, size, size)
    mask[..., :n_txt, n_txt:n_txt + n] = np.log(0.5)
    mask[..., n_txt + n:, n_txt:n_txt + n] = np.log(0.5)
    want_half = _reference(folder, torch.cat([embeds, tokens_two], 1), pooled, mask)
    _close(want_half, sample(half))
    assert float((want_half - sample(alone)).abs().max() / want_half.abs().max()) > 1e-3


def test_redux_bias_chains_as_comfyui():
    """A second Redux after an attn_bias one widens ComfyUI's mask: the first's tokens keep their bias from the
    text and the image, and attend to the second's with its bias, as the text does."""
    from nodes.generate.redux import widen_bias
    b = widen_bias(widen_bias(None, 2, 1, -1.0), 3, 2, -2.0)
    t = torch.tensor
    want = t([[0, 0, -1, -2, -2, 0], [0, 0, -1, -2, -2, 0], [0, 0, 0, -2, -2, 0], [0, 0, 0, 0, 0, 0],
              [0, 0, 0, 0, 0, 0], [0, 0, -1, -2, -2, 0]], dtype=torch.float32)
    assert torch.equal(b, want), b


def test_redux_bias_has_a_row_for_every_frame_of_every_prompt():
    """Two prompts sampled together over three frames: the prompts' embeddings are laid out prompt by prompt, frame
    by frame (6 rows), and the Redux bias had one row per prompt (2), which the attention cannot broadcast."""
    from types import SimpleNamespace
    from nodes.generate.adapters import get_adapter
    from nodes.generate.latent import Conditioning
    from nodes.generate.redux import widen_bias
    bias = widen_bias(None, 3, 2, -1.0)
    biased = Conditioning("flux", torch.zeros(1, 5, 8), pooled=torch.zeros(1, 4)).with_extra(attention_bias=bias)
    plain = Conditioning("flux", torch.ones(1, 5, 8), pooled=torch.zeros(1, 4))
    out = get_adapter("flux").conditioning_inputs(SimpleNamespace(option=lambda k: None), [biased, plain], [0, 1, 2],
                                                  1, "cpu", torch.float32)
    assert out["encoder_hidden_states"].shape[0] == 6
    assert torch.equal(out["attention_bias"], torch.stack([bias] * 3 + [torch.zeros(6, 6)] * 3))


def test_redux_bias_stays_with_its_own_prompt(models, redux):
    """Combined with another prompt (of another length), each gets the Redux tokens and a bias of its own size, and
    the sampler's entries do not hand one prompt's bias to the other."""
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.redux import apply_style, load_style_model
    style = load_style_model(ModelManager(), "flux1-redux-dev.safetensors", "cpu")
    picture = Conditioning("flux", torch.ones(1, 16, 144), meta={"kind": "image"})
    plain = Conditioning("flux", torch.zeros(1, 5, 32), pooled=torch.zeros(1, 64))
    other = Conditioning("flux", torch.zeros(1, 3, 32), pooled=torch.zeros(1, 64))
    biased = apply_style(plain, style, picture, 0.5, "attn_bias")
    head, part = replace(biased, parts=(other,)).entries()
    assert "attention_bias" not in part.extra and head.extra["attention_bias"].shape == (22, 22)
    both = apply_style(replace(plain, parts=(other,)), style, picture, 0.5, "attn_bias")
    assert [tuple(e.extra["attention_bias"].shape) for e in both.entries()] == [(22, 22), (20, 20)]
    assert [e.embeds.shape[1] for e in both.entries()] == [21, 19]


def test_redux_bias_kontext_reference_and_controlnet_in_one_forward(models, flux_nets, redux):
    """FLUX.1's forward takes a Kontext reference, a ControlNet and Redux's attn_bias at once (three branches merged
    into it): the bias is spread over the reference's tokens as well as the image's, and the net's residuals padded
    over them. attn_bias 0 (no token reads the Redux tokens) with a net at strength 0 is the reference alone, and
    the reference still moves the picture."""
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.redux import apply_style, load_style_model
    from nodes.generate.reference import add_reference
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent, encode_clip
    mm = ModelManager()
    model = mm.load("flux", str(flux_nets / "diffusers"))
    p = mm.components(model)
    style = load_style_model(mm, "flux1-redux-dev.safetensors", "cpu")
    picture = Conditioning("flux", torch.ones(1, 16, int(style.pipe.image_embedder.config.redux_dim)),
                           meta={"kind": "image"})
    text = encode_prompt(p["text_encoder"], "a cat")
    edit = add_reference(text, encode_clip(p["vae"], Clip.from_array(_cn_picture()[None, :32, :48])))
    steered = apply_control(mm, model, Clip.from_array(_cn_picture()[None], 8.0), "instantx_flux_canny.safetensors",
                            0.0, "none", 100, 200)

    def sample(m, cond):
        return run_sampling(m, cond, None, empty_latent(p["vae"], 1, RW, RH, 8.0), steps=2, cfg=3.5,
                            sampler="euler", seed=7).samples[:, :, 0]
    want = sample(model, edit)
    _close(want, sample(steered, apply_style(edit, style, picture, 0.0, "attn_bias")))
    assert _err(want, sample(model, text)) > 1e-3


def test_redux_mistakes_are_named(models, redux):
    """The wrong file, the wrong image embedding, a prompt of another family: each refused naming what to give."""
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.redux import apply_style, load_style_model
    mm = ModelManager()
    with pytest.raises(NodeError, match="not a style model.*flux1-redux-dev"):
        load_style_model(mm, str(models / "vae" / "ae.safetensors"), "cpu")
    style = load_style_model(mm, str(models.parent / "redux"), "cpu")
    text = Conditioning("flux", torch.zeros(1, 4, 32), pooled=torch.zeros(1, 64))
    clip_h = Conditioning("wan", torch.zeros(1, 5, 1280), meta={"kind": "image"})
    with pytest.raises(NodeError, match="144-wide.*1280 wide.*sigclip_vision_patch14_384"):
        apply_style(text, style, clip_h)
    siglip_tokens = Conditioning("flux", torch.zeros(1, 16, 144), meta={"kind": "image"})
    with pytest.raises(NodeError, match=r"prompt's are 7 wide .*different models\. Encode the prompt with FLUX\.1's"):
        apply_style(Conditioning("flux", torch.zeros(1, 4, 7), pooled=torch.zeros(1, 64)), style, siglip_tokens)
    with pytest.raises(NodeError, match="FLUX.1 prompt; this conditioning is sd's"):
        apply_style(Conditioning("sd", torch.zeros(1, 77, 768)), style, siglip_tokens)
    from nodes.generate.image_cond import encode_image
    with pytest.raises(NodeError, match="no image encoder.*load.clip_vision.*sigclip_vision_patch14_384"):
        encode_image(None, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(NodeError, match="log\\(strength\\)"):
        apply_style(text, style, siglip_tokens, -1.0, "attn_bias")


def test_comfyui_flux_redux_template_imports_and_runs(models, redux, tmp_path, monkeypatch):
    """ComfyUI's own "Flux Redux" template (tests/data/flux): two pictures through CLIPVisionEncode and chained
    StyleModelApply nodes on a custom sampler. Every node maps and it runs on the tiny files under its names."""
    from comfy_layouts import imported_run, link_as
    link_as(models / "diffusion_models" / "flux1-dev.safetensors",
            models / "diffusion_models" / "flux1-dev-tiny.safetensors")
    from PIL import Image
    for i, p in enumerate(_pictures(), 1):
        Image.fromarray(p).save(tmp_path / f"flux_redux_model_example_reference_image_{i}.png")
    data = json.loads((ROOT / "tests" / "data" / "flux" / "flux_redux_model_example.json").read_text("utf-8"))
    text = json.dumps(data).replace("1024", "32").replace('"simple", 20', '"simple", 2')
    monkeypatch.chdir(tmp_path)
    res, run = imported_run(json.loads(text), tmp_path, "ComfyUI")
    assert res.yaml.count("condition.style_model") == 2 and res.yaml.count("load.style_model") == 1, res.yaml


# -- XLabs' FLUX.1 IP-Adapter (x-flux-comfyui's LoadFluxIPAdapter / ApplyFluxIPAdapter) and LoRA (LoadFluxLora) ----------
def _xlabs_ipadapter(path, transformer, features=24, seed=5):
    """A FLUX.1 IP-Adapter in XLabs-AI/flux-ip-adapter's layout (ip_adapter_proj_model.proj / norm: 4 tokens;
    double_blocks.N.processor.ip_adapter_double_stream_k_proj / _v_proj with biases, one per double block)."""
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.3
    ctx, width = transformer.config.joint_attention_dim, transformer.inner_dim
    state = {"ip_adapter_proj_model.proj.weight": r(4 * ctx, features), "ip_adapter_proj_model.proj.bias": r(4 * ctx),
             "ip_adapter_proj_model.norm.weight": 1 + r(ctx), "ip_adapter_proj_model.norm.bias": r(ctx)}
    for i in range(len(transformer.transformer_blocks)):
        for kv in "kv":
            state[f"double_blocks.{i}.processor.ip_adapter_double_stream_{kv}_proj.weight"] = r(width, ctx)
            state[f"double_blocks.{i}.processor.ip_adapter_double_stream_{kv}_proj.bias"] = r(width)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def test_xlabs_flux_ipadapter_steers_for_its_run_only_and_bad_files_are_named(models):
    """XLabs' ip_adapter.safetensors (found in x-flux-comfyui's xlabs/ipadapters/) with a CLIP ViT-L vision file
    changes the picture, and the shared model samples as before after it (its double blocks' processors put back).
    A file cut short, a CLIP vision model of another width and a missing one are named. Kinograph had no FLUX.1
    IP-Adapter: the file was 'not an IP-Adapter file'. (Sampled as FluxPipeline.load_ip_adapter does: the x-flux
    graph test below.)"""
    from test_ipadapter import REF, _vision
    from nodes.generate.ipadapter import apply_ipadapter, load_ipadapter, read_ipadapter, reference
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision
    _vision(models / "clip_vision" / "clip_vision_l.safetensors")
    mm = ModelManager()
    h = mm.load("flux", str(models.parent / "diffusers"))
    p = mm.components(h)
    path = _xlabs_ipadapter(models / "xlabs" / "ipadapters" / "ip_adapter.safetensors", h.denoiser)
    encoder = load_clip_vision(mm, "clip_vision_l.safetensors", "auto", "cpu")
    adapter = load_ipadapter(mm, "ip_adapter.safetensors")

    def sample(model):
        return _sample(model, p["text_encoder"], p["vae"], 3.5, steps=1)
    plain = sample(h)
    got = sample(apply_ipadapter(h, reference(adapter, encoder, [REF], 0.7, 0.0, 1.0)))
    assert torch.equal(sample(h), plain)
    assert _err(got, plain) > 1e-2
    # a file cut short, and a CLIP vision model whose embedding is not the adapter's width
    from safetensors.torch import load_file, save_file
    cut = {k: v for k, v in load_file(str(path)).items() if not k.endswith("1.processor.ip_adapter_double_stream_v_proj.bias")}
    save_file(cut, str(path.parent / "cut.safetensors"))
    with pytest.raises(NodeError, match="cut.safetensors is not a whole XLabs FLUX.1 IP-Adapter: it lacks "
                                        "1.processor.ip_adapter_double_stream_v_proj.bias"):
        read_ipadapter(path.parent / "cut.safetensors")
    wide = _xlabs_ipadapter(path.parent / "wide.safetensors", h.denoiser, features=40)
    with pytest.raises(NodeError, match="reads CLIP ViT-L/14's projected image embedding \\(40 wide\\).*gives pooled "
                                        "features 24 wide: load clip_vision_l.safetensors"):
        reference(read_ipadapter(wide), encoder, [REF], 0.7, 0.0, 1.0)
    with pytest.raises(NodeError, match="needs a CLIP vision model: connect load.clip_vision"):
        reference(adapter, None, [REF], 0.7, 0.0, 1.0)


def test_x_flux_comfyui_ipadapter_and_lora_graph_imports_and_samples_as_fluxpipeline(models, tmp_path, monkeypatch):
    """x-flux-comfyui's ip_adapter_workflow.json's nodes with their widget values (LoadFluxIPAdapter 75000.safetensors
    with flux/clip_vision_l.safetensors on the CPU, ApplyFluxIPAdapter 0.92, its FluxLoraLoader anime_lora at 1 wired
    between the model and the adapter, XlabsSampler with true CFG 3.5 from step 0): every node maps, the workflow
    validates, and the latent is FluxPipeline's with the same LoRA (load_lora_weights) and IP-Adapter
    (load_ip_adapter, the picture for the negative pass too, as XLabs' IPProcessor gives it) on XlabsSampler's levels;
    ApplyAdvancedFluxIPAdapter in its place grades the weight over the double blocks as FluxPipeline with each
    block's processor scale set. LoadFluxIPAdapter, ApplyFluxIPAdapter, ApplyAdvancedFluxIPAdapter and FluxLoraLoader
    were unmapped."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from PIL import Image
    from safetensors.torch import save_file
    from app.comfyui import import_data
    from comfy_layouts import imported_run
    from comfyui_workflows import ui_format
    from graph_engine.api import load_workflow
    from test_ipadapter import REF, _vision
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision
    vision = _vision(models / "clip_vision" / "flux" / "clip_vision_l.safetensors")
    h = ModelManager().load("flux", str(models.parent / "diffusers"))
    _xlabs_ipadapter(models / "xlabs" / "ipadapters" / "75000.safetensors", h.denoiser)
    g = torch.Generator().manual_seed(2)
    lora = {f"double_blocks.{i}.processor.{n}_lora{s}.{d}.weight": torch.randn(
        *((4, 64) if d == "down" else (192 if n == "qkv" else 64, 4)), generator=g) * 0.2
        for i in range(2) for n in ("qkv", "proj") for s in "12" for d in ("down", "up")}
    (models / "xlabs" / "loras").mkdir(parents=True, exist_ok=True)
    save_file(lora, str(models / "xlabs" / "loras" / "anime_lora.safetensors"))
    Image.fromarray(REF).save(tmp_path / "statue.png")
    monkeypatch.chdir(tmp_path)
    graph = ui_format(_XFLUX_HEAD + [
        (8, "FluxLoraLoader", ["anime_lora.safetensors", 1], {"model": (1, 0, "MODEL")}, ["MODEL"]),
        (9, "LoadFluxIPAdapter", ["75000.safetensors", "flux/clip_vision_l.safetensors", "CPU"], {},
         ["IP_ADAPTER_FLUX"]),
        (10, "LoadImage", [str(tmp_path / "statue.png"), "image"], {}, ["IMAGE", "MASK"]),
        (11, "ApplyFluxIPAdapter", [0.92], {"model": (8, 0, "MODEL"), "ip_adapter_flux": (9, 0, "IP_ADAPTER_FLUX"),
                                            "image": (10, 0, "IMAGE")}, ["MODEL"]),
        (12, "XlabsSampler", [7, "fixed", 2, 0, 3.5, 0.0, 1.0],
         {"model": (11, 0, "MODEL"), "conditioning": (6, 0, "CONDITIONING"),
          "neg_conditioning": (5, 0, "CONDITIONING"), "latent_image": (7, 0, "LATENT")}, ["LATENT"]),
        (13, "VAEDecode", [], {"samples": (12, 0, "LATENT"), "vae": (3, 0, "VAE")}, ["IMAGE"]),
        (14, "SaveImage", ["xflux"], {"images": (13, 0, "IMAGE")}, [])])
    report = import_data(graph).report
    assert {n: e.status for n, e in report.entries.items() if e.status not in ("exact", "ui", "approx")} == {}, \
        report.text()
    res, run = imported_run(graph, tmp_path, "xflux")
    load_workflow(tmp_path / "imported.kino.yaml")         # validates: types, links, parameters
    got = run.outputs["xlabs_sampler_12"]["latent"].samples[:, :, 0]
    ref = FluxPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    ref.load_lora_weights(str(models / "xlabs" / "loras" / "anime_lora.safetensors"))
    ref.image_encoder = vision
    ref.feature_extractor = load_clip_vision(ModelManager(), "flux/clip_vision_l.safetensors", "auto",
                                             "cpu").pipe.image_processor
    ref.load_ip_adapter(str(models / "xlabs" / "ipadapters"), subfolder="", weight_name="75000.safetensors",
                        local_files_only=True)
    ref.set_ip_adapter_scale(0.92)
    picture = Image.fromarray(REF)
    packed = ref("a cat", negative_prompt="blurry", true_cfg_scale=3.5, ip_adapter_image=picture,
                 negative_ip_adapter_image=picture, width=W, height=H, sigmas=xlabs_sigmas(2, W, H),
                 guidance_scale=3.5, generator=torch.Generator().manual_seed(7), output_type="latent").images
    _close(ref._unpack_latents(packed, H, W, ref.vae_scale_factor), got)
    # ApplyAdvancedFluxIPAdapter 0.2 -> 0.9 Linear: each double block at its own scale (FluxPipeline's processors set
    # by hand to 0.2 and 0.9)
    node = next(n for n in graph["nodes"] if n["type"] == "ApplyFluxIPAdapter")
    node.update(type="ApplyAdvancedFluxIPAdapter", widgets_values=[0.2, 0.9, "Linear"])
    (tmp_path / "advanced").mkdir()
    monkeypatch.chdir(tmp_path / "advanced")
    _, run = imported_run(graph, tmp_path / "advanced", "xflux")
    for block, scale in zip(ref.transformer.transformer_blocks, (0.2, 0.9)):
        block.attn.processor.scale = [scale]
    packed = ref("a cat", negative_prompt="blurry", true_cfg_scale=3.5, ip_adapter_image=picture,
                 negative_ip_adapter_image=picture, width=W, height=H, sigmas=xlabs_sigmas(2, W, H),
                 guidance_scale=3.5, generator=torch.Generator().manual_seed(7), output_type="latent").images
    graded = run.outputs["xlabs_sampler_12"]["latent"].samples[:, :, 0]
    _close(ref._unpack_latents(packed, H, W, ref.vae_scale_factor), graded)
    assert _err(graded, got) > 1e-3


def test_flux_graded_ipadapter_weights_follow_x_flux_comfyuis_strength_models():
    """ipadapter.flux_graded's weights over FLUX.1's 19 double blocks, as x-flux-comfyui's strength models give them
    (utils.py: Linear, First half, Second half, Sigmoid, whose ends fall short of begin / end by XLabs' formula)."""
    import math
    from nodes.generate.ipadapter import graded
    assert graded(0.0, 1.0, "linear", 19) == pytest.approx([i / 18 for i in range(19)])
    assert graded(0.2, 1.0, "first half", 19) == pytest.approx([0.2 + 0.8 * i / 8 for i in range(9)] + [1.0] * 10)
    assert graded(0.2, 1.0, "second half", 19) == pytest.approx([0.2] * 10 + [0.2 + 0.8 * i / 8 for i in range(9)])
    assert graded(0.0, 1.0, "sigmoid", 19) == pytest.approx([1 / (1 + math.exp(-(i - 9.5) * 8 / 19)) - 0.5
                                                             for i in range(19)])
    with pytest.raises(NodeError, match="unknown grading 'smooth'; choose one of linear, first half"):
        graded(0.0, 1.0, "smooth", 19)
