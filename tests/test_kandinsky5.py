"""Kandinsky 5 video from ComfyUI's split files (the video_kandinsky5_t2v template's: kandinskylab's transformer,
HunyuanVideo's VAE, Qwen2.5-VL + CLIP-L as DualCLIPLoader type kandinsky5): detected, loaded and sampled through
Kinograph's sampler to the latent diffusers' own Kandinsky5T2VPipeline gives for the same weights, prompts and seed.
Mochi 1's and Cosmos' files are named, with what runs instead."""
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

W, H, FRAMES, STEPS, SEED, CFG = 32, 32, 5, 2, 3, 5.0
PROMPT, NEGATIVE = "a paper airplane over a city", "blurry"


@pytest.fixture(scope="module")
def k5(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_kandinsky5 import build_kandinsky5
    yield from models_dir(tmp_path_factory, build_kandinsky5, "k5")


@pytest.fixture(scope="module")
def loaded(k5):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    mm = ModelManager()
    return (load_diffusion_model(mm, "kandinsky5lite_t2v_sft_5s.safetensors", "default", "cpu"),
            load_text_encoder(mm, "qwen_2.5_vl_tiny.safetensors", "clip_l.safetensors", "kandinsky5", "cpu"),
            load_vae(mm, "hunyuan_video_vae_bf16.safetensors", "cpu"))


def _pipeline(k5, cls="Kandinsky5T2VPipeline"):
    import diffusers
    from transformers import AutoTokenizer, CLIPTokenizer
    from tiny_kandinsky5 import reference_parts
    from nodes.generate.split import scheduler
    transformer, vae, te, clip = reference_parts()
    return getattr(diffusers, cls)(
        transformer=transformer, vae=vae, text_encoder=te,
        tokenizer=AutoTokenizer.from_pretrained(str(k5 / "comfy" / "text_encoders" / "qwen25_tokenizer")),
        text_encoder_2=clip, scheduler=scheduler("kandinsky5"),
        tokenizer_2=CLIPTokenizer.from_pretrained(str(k5 / "models" / "text_encoders" / "clip_l"), model_max_length=77))


def test_new_video_families_are_named_by_kinograph_info(k5):
    """Before: every one of these files was "unknown ... (no known key pattern)"."""
    from nodes.generate.model_manager import describe_model
    found = {p.name: describe_model(p) for p in (k5 / "models").glob("*/*.safetensors")}
    k = found["kandinsky5lite_t2v_sft_5s.safetensors"]
    assert (k["family"], k["role"], k["loads"]) == ("kandinsky5", "diffusion_model", "yes")
    for name, family, words in (("mochi_preview_bf16.safetensors", "mochi", "Mochi 1 transformer"),
                                ("mochi_vae.safetensors", "mochi", "Mochi 1 VAE"),
                                ("cosmos_predict2_2B_video2world_480p_16fps.safetensors", "cosmos", "Cosmos-Predict2"),
                                ("Cosmos-1_0-Diffusion-7B-Text2World.safetensors", "cosmos", "Cosmos 1.0")):
        d = found[name]
        assert (d["family"], d["loads"]) == (family, "no"), (name, d)
        assert words in d["note"] and "does not" in d["note"], d["note"]


def test_kandinsky5_image_model_is_its_own_family_not_the_video_one(tmp_path):
    # ComfyUI's Kandinsky5Image (model_dim 2560, visual_embed_dim 64: no start-frame channels) samples FLUX.1's latents
    # at shift 3; it was once taken for the video family, to be sampled on HunyuanVideo's latents (tests/
    # test_kandinsky5_image.py samples it)
    from safetensors.torch import save_file
    from nodes.generate.model_manager import describe_model
    shapes = {"visual_embeddings.in_layer.weight": (2560, 64), "out_layer.out_layer.weight": (64, 2560),
              "visual_transformer_blocks.0.visual_modulation.out_layer.weight": (4, 4),
              "pooled_text_embeddings.in_layer.weight": (4, 4)}
    save_file({k: torch.zeros(v, dtype=torch.bfloat16) for k, v in shapes.items()},
              str(tmp_path / "kandinsky5lite_t2i.safetensors"))
    d = describe_model(tmp_path / "kandinsky5lite_t2i.safetensors")
    assert (d["family"], d["role"], d["loads"]) == ("kandinsky5image", "diffusion_model", "yes"), d


def test_kandinsky5_comfyui_files_sample_as_diffusers_pipeline(k5, loaded):
    """Before: the transformer was "unknown (no known key pattern)" and load.diffusion_model refused it."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    model, te, vae = loaded
    assert (model.family, te.family, vae.family) == ("kandinsky5", "kandinsky5", "hunyuan")
    latent = run_sampling(model, encode_prompt(te, PROMPT), encode_prompt(te, NEGATIVE),
                          empty_latent(vae, FRAMES, W, H, 24.0), steps=STEPS, cfg=CFG, sampler="euler",
                          seed=SEED).samples
    pipe = _pipeline(k5)
    want = pipe(PROMPT, negative_prompt=NEGATIVE, height=H, width=W, num_frames=FRAMES, num_inference_steps=STEPS,
                guidance_scale=CFG, output_type="latent", generator=torch.Generator().manual_seed(SEED)).frames
    want = want.permute(0, 4, 1, 2, 3)          # the pipeline's latents are channels-last
    assert latent.shape == want.shape == (1, 4, 2, H // 8, W // 8)
    err = float((latent - want).abs().max() / want.abs().max())
    assert err < 1e-4, err
    # HunyuanVideo's VAE file decodes it as the pipeline's VAE
    pixels = get_adapter("hunyuan").vae_decode(vae.pipe, want)
    ref = pipe.vae.decode(want / pipe.vae.config.scaling_factor, return_dict=False)[0]
    assert torch.allclose(pixels, ref, atol=1e-4)


def _template(k5, task: str) -> dict:
    """ComfyUI's video_kandinsky5_`task` template, its model files linked to the tiny ones under the names it asks for."""
    import json
    from comfy_layouts import link_as
    models = k5 / "models"
    for name, tiny in ((f"diffusion_models/kandinsky5lite_{'t2v_sft' if task == 't2v' else 'i2v'}_5s.safetensors",
                        "kandinsky5lite_t2v_sft_5s.safetensors"),
                       ("text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors", "qwen_2.5_vl_tiny.safetensors")):
        if not (models / name).is_file() or (models / name).is_symlink():
            link_as(models / name, models / name.split("/")[0] / tiny)
    return json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" /
                       f"video_kandinsky5_{task}.json").read_text("utf-8"))


def _beta_sigmas(steps: int, shift: float) -> list:
    """ComfyUI's beta schedule (alpha = beta = 0.6) over a flow model's 1000 levels at `shift`, without the final 0."""
    import numpy as np
    from scipy.stats import beta
    idx = np.rint(beta.ppf(1 - np.linspace(0, 1, steps, endpoint=False), 0.6, 0.6) * 999).astype(int)
    t = (idx + 1) / 1000
    return [float(s) for s in shift * t / (1 + (shift - 1) * t)]


def test_comfyui_kandinsky5_t2v_template_imports_and_runs(k5, tmp_path, monkeypatch):
    """ComfyUI's own Kandinsky 5 text-to-video template (Comfy-Org/workflow_templates): Kandinsky5ImageToVideo was not
    mapped and its files not known. Every node maps now, and under the template's own file names (at 32x32, 5 frames,
    2 steps, euler for its euler_ancestral, whose fresh noise no pipeline draws alike) the latent is
    Kandinsky5T2VPipeline's for the template's prompts, seed and cfg on ComfyUI's beta schedule at shift 5."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    data = _template(k5, "t2v")
    res = import_data(data)
    active = {e.class_type: e.status for e in res.report.entries.values()}
    assert active["Kandinsky5ImageToVideo"] == "exact" and "unmapped" not in active.values(), active
    yaml = res.yaml.replace("frames: 121", f"frames: {FRAMES}").replace("width: 768", f"width: {W}")
    yaml = yaml.replace("height: 512", f"height: {H}").replace("steps: 50", f"steps: {STEPS}")
    yaml = yaml.replace("sampler: euler_ancestral", "sampler: euler")
    assert f"width: {W}" in yaml and "shift: 5" in yaml and "scheduler: beta" in yaml and "type: kandinsky5" in yaml
    wf = tmp_path / "k5.kino.yaml"
    wf.write_text(yaml, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    got = next(v["latent"] for k, v in run.outputs.items() if k.startswith("k_sampler")).samples
    nodes = data["definitions"]["subgraphs"][0]["nodes"]
    texts = {n["title"]: n["widgets_values"][0] for n in nodes if n["type"] == "CLIPTextEncode"}
    seed, _, _, cfg = next(n["widgets_values"][:4] for n in nodes if n["type"] == "KSampler")
    pipe = _pipeline(k5)
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
    sigmas = _beta_sigmas(STEPS, 5.0)
    plain = pipe.scheduler.set_timesteps
    pipe.scheduler.set_timesteps = lambda n, device=None: plain(sigmas=sigmas, device=device)
    want = pipe(texts["CLIP Text Encode (Positive Prompt)"], negative_prompt=texts["CLIP Text Encode (Negative Prompt)"],
                height=H, width=W, num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=cfg,
                output_type="latent", generator=torch.Generator().manual_seed(seed)).frames.permute(0, 4, 1, 2, 3)
    err = float((got - want).abs().max() / want.abs().max())
    assert err < 1e-4, err


def test_kandinsky5_image_to_video_samples_as_diffusers_pipeline(k5, loaded):
    """Image-to-video was not wired (ComfyUI's Kandinsky5ImageToVideo had no node). condition.kandinsky5_i2v puts the
    start image's latent on the first frame, kept clean, and the sampler gives Kandinsky5I2VPipeline's latent (before
    its first-frame normalisation) for the same image, prompts, noise and seed."""
    import numpy as np
    from PIL import Image
    from nodes.generate.kandinsky5_i2v import image_to_video
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    model, te, vae = loaded
    image = np.random.default_rng(7).integers(0, 256, (H, W, 3), dtype=np.uint8)
    latent, cond = image_to_video(vae, empty_latent(vae, FRAMES, W, H, 24.0), image)
    got = run_sampling(model, encode_prompt(te, PROMPT), encode_prompt(te, NEGATIVE), latent, steps=STEPS, cfg=CFG,
                       sampler="euler", seed=SEED).samples
    pipe = _pipeline(k5, "Kandinsky5I2VPipeline")
    pixels = pipe.video_processor.preprocess(Image.fromarray(image), height=H, width=W)[:, :, None]
    with torch.inference_mode():
        z = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor     # [1, C, 1, h, w]
    assert torch.allclose(cond.samples, z, atol=1e-5) and torch.equal(got[:, :, :1], cond.samples)
    noise = torch.randn((1, 2, H // 8, W // 8, 4), generator=torch.Generator().manual_seed(SEED))
    noise[:, :1] = z.permute(0, 2, 3, 4, 1)
    mask = torch.zeros(*noise.shape[:-1], 1)
    mask[:, 0] = 1
    pipe.normalize_first_frame = lambda x: x
    want = pipe(Image.fromarray(image), PROMPT, negative_prompt=NEGATIVE, height=H, width=W, num_frames=FRAMES,
                num_inference_steps=STEPS, guidance_scale=CFG, output_type="latent",
                latents=torch.cat([noise, torch.zeros_like(noise), mask], dim=-1)).frames.permute(0, 4, 1, 2, 3)
    err = float((got - want).abs().max() / want.abs().max())
    assert err < 1e-4, err


def test_latent_frame_nodes_replace_and_even_out_the_start():
    """ComfyUI's ReplaceVideoLatentFrames and NormalizeVideoLatentStart, which its Kandinsky 5 image-to-video template
    runs after sampling: a run of frames put in at an index (negative from the end); the first frames given the
    reference frames' mean and spread, each within its limits of the frame's own."""
    from graph_engine import NodeError
    from nodes.generate.latent import Latent
    from nodes.generate.latent_frames import normalize_start, replace_frames
    g = torch.Generator().manual_seed(0)
    x = Latent(torch.randn(1, 4, 9, 16, 16, generator=g), "hunyuan", 33, 24.0, 128, 128)
    src = Latent(torch.full((1, 4, 2, 16, 16), 7.0), "hunyuan", 5, 24.0, 128, 128)
    out = replace_frames(x, src, -3).samples
    assert torch.equal(out[:, :, 6:8], src.samples) and torch.equal(out[:, :, :6], x.samples[:, :, :6])
    assert torch.equal(out[:, :, 8], x.samples[:, :, 8]) and replace_frames(x, None, 0) is x
    with pytest.raises(NodeError, match="outside this latent's 9 frames"):
        replace_frames(x, src, 9)
    with pytest.raises(NodeError, match="the source latent is a batch of 2 and the destination of 1"):
        replace_frames(x, src.with_samples(src.samples.repeat(2, 1, 1, 1, 1)), 0)
    assert torch.equal(replace_frames(x.with_samples(x.samples.repeat(2, 1, 1, 1, 1)), src, 0).samples[1, :, :2],
                       src.samples[0])                  # one source goes into every video of a batch, as torch's
    # ComfyUI leaves the destination as it is where the source does not fit: overflow "keep", which its import sets,
    # does the same and says so (cutting the source short changed the frames of a graph ComfyUI ran unchanged)
    logs = []
    assert replace_frames(x, src, 8, "keep", logs.append) is x and replace_frames(x, src, -10, "keep", logs.append) is x
    assert logs[0] == ("the source's 2 latent frames do not fit in the destination's 9 from index 8: the destination is "
                       "passed on unchanged (overflow 'keep', as ComfyUI does); set overflow to 'cut' to put in the "
                       "frames that fit") and len(logs) == 2
    assert torch.equal(replace_frames(x, src, 7, "keep", logs.append).samples[:, :, 7:], src.samples) and len(logs) == 2
    from app.comfyui import import_data
    template = json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" /
                           "video_kandinsky5_i2v.json").read_text("utf-8"))
    graph = import_data(template).graph
    assert graph.nodes["replace_video_latent_frames_69_64"].params == {"index": 0, "overflow": "keep"}
    # the first 4 frames scaled by 1.2 and shifted by 0.1: within the limits, each takes the reference's statistics
    s = x.samples.clone()
    s[:, :, :4] = s[:, :, :4] * 1.2 + 0.1
    ref = s[:, :, 4:9]
    even = normalize_start(x.with_samples(s), 4, 5).samples
    for f in range(4):
        assert abs(float(even[:, :, f].mean() - ref.mean())) < 1e-5
        assert abs(float(even[:, :, f].std() - ref.std())) < 1e-5
    assert torch.equal(even[:, :, 4:], s[:, :, 4:])
    # a first frame far off: its mean moves by at most 0.35 towards the reference's, its spread by at most 0.5
    s[:, :, :4] = s[:, :, :4] * 0.1 - 5.0
    far = normalize_start(x.with_samples(s), 4, 5).samples
    for f in range(4):
        assert abs(float(far[:, :, f].mean() - (s[:, :, f].mean() + 0.35))) < 1e-4
        assert abs(float(far[:, :, f].std() - (s[:, :, f].std() + 0.5))) < 1e-4


def test_comfyui_kandinsky5_i2v_template_imports_and_runs(k5, tmp_path, monkeypatch):
    """ComfyUI's Kandinsky 5 image-to-video template: Kandinsky5ImageToVideo, ReplaceVideoLatentFrames and
    NormalizeVideoLatentStart were not mapped. Every node maps now, and under the template's own file names (32x32,
    21 frames: 6 latent ones, 2 left after the 4 evened out; 2 steps, euler) the sampled latent is Kandinsky5I2VPipeline's for its image, prompts, seed and cfg on the
    beta schedule at shift 5; the start frame is put back and the first frames evened out before decoding."""
    import numpy as np
    from diffusers import FlowMatchEulerDiscreteScheduler
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from nodes.generate.latent_frames import normalize_start
    data = _template(k5, "i2v")
    res = import_data(data)
    active = {e.class_type: e.status for e in res.report.entries.values()}
    assert "unmapped" not in active.values(), active
    yaml = res.yaml.replace("frames: 121", "frames: 21").replace("width: 768", f"width: {W}")
    yaml = yaml.replace("height: 512", f"height: {H}").replace("steps: 50", f"steps: {STEPS}")
    yaml = yaml.replace("sampler: euler_ancestral", "sampler: euler")
    assert yaml.count(f"width: {W}") == 2 and "latent: kandinsky5_image_to_video_69_62.latent" in yaml, yaml
    wf = tmp_path / "k5_i2v.kino.yaml"
    wf.write_text(yaml, encoding="utf-8")
    image = np.random.default_rng(7).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "crystal_flower.png")
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    out = {k.rsplit("_", 2)[0]: v for k, v in run.outputs.items()}
    got = out["k_sampler"]["latent"]
    nodes = data["definitions"]["subgraphs"][0]["nodes"]
    texts = {n["title"]: n["widgets_values"][0] for n in nodes if n["type"] == "CLIPTextEncode"}
    seed, _, _, cfg = next(n["widgets_values"][:4] for n in nodes if n["type"] == "KSampler")
    pipe = _pipeline(k5, "Kandinsky5I2VPipeline")
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
    plain = pipe.scheduler.set_timesteps
    pipe.scheduler.set_timesteps = lambda n, device=None: plain(sigmas=_beta_sigmas(STEPS, 5.0), device=device)
    pixels = pipe.video_processor.preprocess(Image.fromarray(image), height=H, width=W)[:, :, None]
    with torch.inference_mode():
        z = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor
    noise = torch.randn((1, 6, H // 8, W // 8, 4), generator=torch.Generator().manual_seed(seed))
    noise[:, :1] = z.permute(0, 2, 3, 4, 1)
    mask = torch.zeros(*noise.shape[:-1], 1)
    mask[:, 0] = 1
    pipe.normalize_first_frame = lambda x: x        # ComfyUI's NormalizeVideoLatentStart evens them out instead
    want = pipe(Image.fromarray(image), texts["CLIP Text Encode (Positive Prompt)"],
                negative_prompt=texts["CLIP Text Encode (Negative Prompt)"], height=H, width=W, num_frames=21,
                num_inference_steps=STEPS, guidance_scale=cfg, output_type="latent",
                latents=torch.cat([noise, torch.zeros_like(noise), mask], dim=-1)).frames.permute(0, 4, 1, 2, 3)
    err = float((got.samples - want).abs().max() / want.abs().max())
    assert err < 1e-4, err
    assert torch.equal(out["replace_video_latent_frames"]["latent"].samples, got.samples)
    assert torch.equal(out["normalize_video_latent_start"]["latent"].samples, normalize_start(got, 4, 5).samples)
