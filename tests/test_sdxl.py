"""Stable Diffusion XL: the checkpoints ComfyUI users keep (one .safetensors in checkpoints/, Stability's SGM key
layout) load from the file alone, sample to an image, and give what diffusers' own StableDiffusionXLPipeline
gives for the same weights and seed. The tiny model is written in the published layout by inverting diffusers'
converters (tests/tiny_models.py), so the reference is independent of Kinograph's loading code."""
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
CKPT = "sdxl_tiny.safetensors"


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    from tiny_models import build_sdxl_single_file
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_sdxl_single_file(tmp_path_factory.mktemp("sdxl"))
    torch.set_num_threads(threads)


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
    assert (got["family"], got["variant"], got["role"], got["loads"]) == ("sd", "sdxl", "checkpoint", "yes")
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
    px = torch.tensor(list(img.getdata()), dtype=torch.float32)
    assert float(px.std()) > 1.0          # an image, not a blank frame


def test_sd15_loader_given_an_sdxl_checkpoint_names_load_sdxl(models):
    from nodes.generate.model_manager import ModelManager
    with pytest.raises(NodeError) as e:
        ModelManager().load("sd", CKPT)
    assert CKPT in str(e.value) and "Stable Diffusion XL" in str(e.value) and "load.sdxl" in str(e.value)


def test_sdxl_refiner_checkpoint_is_refused_by_name(models, sdxl):
    """The refiner (OpenCLIP-G alone as conditioner.embedders.0) is not run: the message names the file and says
    to load the base model, not a tensor error from a converter."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.weights import load_weights
    state = load_weights(models / "checkpoints" / CKPT)
    refiner = {k.replace("conditioner.embedders.1.", "conditioner.embedders.0."): v for k, v in state.items()
               if not k.startswith("conditioner.embedders.0.")}
    path = models / "checkpoints" / "sd_xl_refiner_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in refiner.items()}, str(path))
    try:
        assert describe_model(path)["loads"] == "no"
        with pytest.raises(NodeError) as e:
            ModelManager().load("sdxl", path.name)
        msg = str(e.value)
        assert "sd_xl_refiner_tiny.safetensors is an SDXL refiner" in msg and "SDXL base checkpoint" in msg
    finally:
        path.unlink()


def test_animatediff_sdxl_motion_module_is_refused_by_name(tmp_path):
    """An AnimateDiff-SDXL motion module (three levels, no mid block) is named, with what animates SDXL keyframes."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import load_motion_adapter
    state = {}
    for i in range(3):
        p = f"down_blocks.{i}.motion_modules.0.temporal_transformer."
        state[p + "proj_in.weight"] = torch.zeros(8, 8)
        state[p + "norm.weight"] = torch.zeros(8)
    path = tmp_path / "mm_sdxl_v10_beta.safetensors"
    save_file(state, str(path))
    with pytest.raises(NodeError) as e:
        load_motion_adapter(path, torch.float32)
    msg = str(e.value)
    assert "mm_sdxl_v10_beta.safetensors is an AnimateDiff-SDXL motion module" in msg and "image-to-video" in msg
