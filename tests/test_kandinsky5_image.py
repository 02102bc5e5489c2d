"""Kandinsky 5 image (Lite) keyframes from ComfyUI's split files (the image_kandinsky5_t2i template's: kandinskylab's
transformer without start-frame channels, FLUX.1's ae.safetensors, Qwen2.5-VL + CLIP-L as DualCLIPLoader type
kandinsky5_image; and a diffusers Kandinsky5T2IPipeline folder): recognised, loaded and sampled through Kinograph's
sampler to the latent diffusers' own Kandinsky5T2IPipeline gives for the same weights, prompts and seed; the
template imports and runs on them."""
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H, STEPS, SEED, CFG = 48, 32, 2, 5, 3.5
PROMPT, NEGATIVE = "a lighthouse on a cliff at dawn", "blurry"


@pytest.fixture(scope="module")
def k5i(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_kandinsky5 import build_kandinsky5_image
    yield from models_dir(tmp_path_factory, build_kandinsky5_image, "k5i")


def _pipeline(root):
    """Kandinsky5T2IPipeline on the same modules; told the tiny size is one of its own (it snaps any other to the
    nearest of its trained 1024-pixel sizes), and, where `sigmas` are given, to sample on those levels unshifted."""
    from diffusers import Kandinsky5T2IPipeline
    from transformers import AutoTokenizer, CLIPTokenizer
    from tiny_kandinsky5 import image_parts
    from nodes.generate.split import scheduler
    transformer, vae, te, clip = image_parts()
    pipe = Kandinsky5T2IPipeline(
        transformer=transformer, vae=vae, text_encoder=te, text_encoder_2=clip, scheduler=scheduler("kandinsky5image"),
        tokenizer=AutoTokenizer.from_pretrained(str(root / "comfy" / "text_encoders" / "qwen25_tokenizer")),
        tokenizer_2=CLIPTokenizer.from_pretrained(str(root / "models" / "text_encoders" / "clip_l"),
                                                  model_max_length=77))
    pipe.resolutions = [(W, H)]
    return pipe


def _reference(root, prompt, negative, cfg, seed, sigmas=None):
    """The pipeline's latent as Kinograph holds it ([1, 16, 1, h, w]; the pipeline's is channels-last)."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    pipe = _pipeline(root)
    if sigmas is not None:
        pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
        plain = pipe.scheduler.set_timesteps
        pipe.scheduler.set_timesteps = lambda n, device=None: plain(sigmas=sigmas, device=device)
    out = pipe(prompt, negative_prompt=negative, height=H, width=W, num_inference_steps=STEPS, guidance_scale=cfg,
               output_type="latent", generator=torch.Generator().manual_seed(seed)).image
    return out.permute(0, 4, 1, 2, 3)


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_kandinsky5_image_files_are_recognised_and_mismatches_named(k5i):
    """Before: the image transformer was named and refused ("does not run yet")."""
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_text_encoder
    got = describe_model(k5i / "models" / "diffusion_models" / "kandinsky5lite_t2i_tiny.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("kandinsky5image", "diffusion_model", "yes"), got
    # CLIP-L alone as Kandinsky 5 image's encoder: it reads Qwen2.5-VL too
    mm = ModelManager()
    te = load_text_encoder(mm, "clip_l.safetensors", "", "kandinsky5_image", "cpu")
    from nodes.generate.text import encode_prompt
    with pytest.raises(NodeError, match=r"Qwen2\.5-VL and CLIP-L together.*type kandinsky5_image"):
        encode_prompt(te, PROMPT)


def test_kandinsky5_image_split_files_sample_as_diffusers_pipeline(k5i):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    model = load_diffusion_model(mm, "kandinsky5lite_t2i_tiny.safetensors", "default", "cpu")
    # the encoders in either order, as DualCLIPLoader takes them
    te = load_text_encoder(mm, "clip_l.safetensors", "qwen_2.5_vl_tiny.safetensors", "kandinsky5_image", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    assert (model.family, te.family, vae.family) == ("kandinsky5image", "kandinsky5image", "flux")
    got = run_sampling(model, encode_prompt(te, PROMPT), encode_prompt(te, NEGATIVE), empty_latent(vae, 1, W, H, 8.0),
                       steps=STEPS, cfg=CFG, sampler="euler", seed=SEED).samples
    want = _reference(k5i, PROMPT, NEGATIVE, CFG, SEED)
    assert got.shape == want.shape == (1, 16, 1, H // 8, W // 8)
    assert _err(want, got) < 1e-4
    # a diffusers Kandinsky5T2IPipeline folder of the same modules loads through load.model and samples the same
    folder = k5i / "diffusers"
    if not folder.is_dir():
        _pipeline(k5i).save_pretrained(str(folder), safe_serialization=True)
    h = mm.load("kandinsky5image", str(folder))
    p = mm.components(h)
    assert h.family == "kandinsky5image"
    from_folder = run_sampling(h, encode_prompt(p["text_encoder"], PROMPT), encode_prompt(p["text_encoder"], NEGATIVE),
                               empty_latent(p["vae"], 1, W, H, 8.0), steps=STEPS, cfg=CFG, sampler="euler",
                               seed=SEED).samples
    assert _err(want, from_folder) < 1e-4
    # ae.safetensors decodes it as the FLUX.1 VAE it is (its scale and shift undone, as for every FLUX.1 latent;
    # Kandinsky5T2IPipeline's own decode leaves the shift out)
    from nodes.generate.adapters import get_adapter
    pixels = get_adapter("flux").vae_decode(vae.pipe, want)
    ref_vae = _pipeline(k5i).vae
    z = want[:, :, 0] / ref_vae.config.scaling_factor + ref_vae.config.shift_factor
    ref = ref_vae.decode(z, return_dict=False)[0]
    assert pixels.shape[-2:] == (H, W) and torch.allclose(pixels.reshape(ref.shape), ref, atol=1e-3)

def test_comfyui_kandinsky5_t2i_template_imports_and_runs(k5i, tmp_path, monkeypatch):
    """ComfyUI's own Kandinsky 5 text-to-image template (a subgraph: UNETLoader, DualCLIPLoader qwen_2.5_vl_7b +
    clip_l type kandinsky5_image, VAELoader ae, ModelSamplingSD3 3, EmptyLatentImage, KSampler euler / simple cfg 3.5).
    Before: refused at DualCLIPLoader's type. Every node maps now and it runs on the tiny model under the template's
    file names (48x32, 2 steps); the latent is Kandinsky5T2IPipeline's with its prompts, seed and cfg on ComfyUI's
    simple levels at shift 3 (1, 0.75)."""
    from comfy_layouts import imported_template
    from graph_engine.api import Session, load_workflow
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(
        k5i / "models", (("diffusion_models/kandinsky5lite_t2i.safetensors",
                          "diffusion_models/kandinsky5lite_t2i_tiny.safetensors"),
                         ("text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors",
                          "text_encoders/qwen_2.5_vl_tiny.safetensors")),
        TEMPLATES / "image_kandinsky5_t2i.json", (W, H), (50, STEPS))
    assert yaml.count(f"width: {W}") == 1 and "type: kandinsky5_image" in yaml and "shift: 3" in yaml, yaml
    wf = tmp_path / "k5i.kino.yaml"
    wf.write_text(yaml, encoding="utf-8")
    out = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert out.ok, out.failed
    got = next(v["latent"] for k, v in out.outputs.items() if k.startswith("k_sampler")).samples
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    texts = [n["widgets_values"][0] for n in sub if n["type"] == "CLIPTextEncode"]
    positive = max(texts, key=len)
    negative = min(texts, key=len)
    seed, _, _, cfg = next(n["widgets_values"][:4] for n in sub if n["type"] == "KSampler")
    assert _err(_reference(k5i, positive, negative, cfg, seed, sigmas=[1.0, 0.75]), got) < 1e-4
