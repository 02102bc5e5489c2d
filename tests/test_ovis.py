"""Ovis-Image keyframes: the files a ComfyUI user holds (the transformer in diffusion_models/ in ComfyUI's Flux names
with Ovis' gated feed-forwards and text norm, ovis_2.5 loaded with CLIPLoader type ovis, FLUX.1's ae.safetensors) load,
sample and give what diffusers' own OvisImagePipeline gives for the same weights, prompt, negative and seed
(tests/tiny_ovis.py: the reference is built from the modules, not through Kinograph's loading). ComfyUI's Ovis-Image
template imports and runs on them."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48
STEPS, SEED = 2, 11
MODEL, TEXT = "ovis_image_tiny_bf16.safetensors", "ovis_2.5_tiny.safetensors"


@pytest.fixture(scope="module")
def ovis(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_ovis import build_ovis
    yield from models_dir(tmp_path_factory, build_ovis, "ovis")


def _reference(root, prompt, negative, cfg, seed, scheduler=None, **kw):
    """OvisImagePipeline's latent."""
    from comfy_layouts import packed_latent
    from tiny_ovis import reference
    return packed_latent(reference(root, scheduler), prompt, negative, cfg, seed, (W, H), **kw)


def test_ovis_files_are_detected_and_another_familys_encoder_is_named(ovis):
    """The transformer file is told from FLUX.1's (no vector_in) and LongCat-Image's (gated feed-forwards); ovis_2.5
    loaded with type auto is a Qwen3 FLUX.2 [klein] would read: sampling Ovis-Image with it names the mismatch."""
    from comfy_layouts import auto_encoder_mismatch
    from nodes.generate.model_manager import describe_model
    got = describe_model(ovis / "models" / "diffusion_models" / MODEL)
    assert (got["family"], got["role"], got["loads"]) == ("ovis", "diffusion_model", "yes"), got
    message = auto_encoder_mismatch(MODEL, TEXT)
    assert ("encoded for flux2, but the model is ovis: encode it with this model's text encoder "
            "(load.text_encoder with type ovis)") in message, message


@pytest.mark.parametrize("cfg", [5.0, 1.0])
def test_ovis_split_files_match_ovisimagepipeline(ovis, cfg):
    """True CFG with a negative (cfg 5) and the prompt alone (cfg 1): the transformer file, Ovis 2.5's Qwen3 (type ovis)
    and FLUX.1's VAE sample what OvisImagePipeline samples (its schedule shifted for the size)."""
    from comfy_layouts import close_to
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    model = load_diffusion_model(mm, MODEL, "default", "cpu")
    te = load_text_encoder(mm, TEXT, "", "ovis", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    assert (model.family, te.family, vae.family) == ("ovis", "ovis", "flux")
    got = run_sampling(model, encode_prompt(te, "a poster that says OPEN"), encode_prompt(te, "blurry"),
                       empty_latent(vae, 1, W, H, 8.0), steps=STEPS, cfg=cfg, sampler="euler", seed=SEED).samples[:, :, 0]
    close_to(_reference(ovis, "a poster that says OPEN", "blurry", cfg, SEED, num_inference_steps=STEPS), got)


def test_comfyui_ovis_template_imports_and_runs(ovis, tmp_path, monkeypatch):
    """ComfyUI's own Ovis-Image template (a subgraph: UNETLoader, CLIPLoader ovis_2.5 type ovis, VAELoader ae,
    ModelSamplingAuraFlow 3, EmptySD3LatentImage, KSampler 20 steps cfg 5 euler / simple, an empty negative) imports
    with every node mapped and runs on the tiny model under its file names (64x48, 2 steps); its latent is
    OvisImagePipeline's with the template's prompts and seed on ComfyUI's levels (simple at shift 3: 1, 0.75)."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from comfy_layouts import close_to, imported_template, sampled_latent
    data, yaml = imported_template(ovis / "models", (("diffusion_models/ovis_image_bf16.safetensors", f"diffusion_models/{MODEL}"),
                                            ("text_encoders/ovis_2.5.safetensors", f"text_encoders/{TEXT}"),
                                            ("text_encoders/ovis_2.5", "text_encoders/ovis_2.5_tiny")),
                                   TEMPLATES / "image_ovis_text_to_image.json", (W, H), (20, STEPS))
    monkeypatch.chdir(tmp_path)
    assert "type: model.flow_shift" in yaml and "cfg: 5" in yaml and "sampler: euler" in yaml, yaml
    got = sampled_latent(tmp_path / "ovis.kino.yaml", yaml)
    inner = data["definitions"]["subgraphs"][0]["nodes"]
    text = {n["id"]: n["widgets_values"][0] for n in inner if n["type"] == "CLIPTextEncode"}
    seed = next(n for n in inner if n["type"] == "KSampler")["widgets_values"][0]
    want = _reference(ovis, text[45], text[49], 5.0, seed, FlowMatchEulerDiscreteScheduler(shift=1.0),
                      sigmas=[1.0, 0.75])
    close_to(want, got)
