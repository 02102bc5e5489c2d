"""HunyuanVideo 1.5 from ComfyUI's split files (the transformer and VAE in Tencent's names, Qwen2.5-VL and the glyph
ByT5 as DualCLIPLoader type hunyuan_video_15 loads them): detected, converted at load, sampled through Kinograph's
sampler to the latent diffusers' own HunyuanVideo15Pipeline gives for the same weights, prompt, negative and seed."""
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))

W, H, FRAMES, STEPS, SEED, CFG = 64, 32, 5, 2, 3, 6.0
PROMPT = "a paper airplane over a city"


@pytest.fixture(scope="module")
def hy15(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_hunyuan15 import build_hunyuan15
    yield from models_dir(tmp_path_factory, build_hunyuan15, "hy15")


@pytest.fixture(scope="module")
def loaded(hy15):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    mm = ModelManager()
    return (load_diffusion_model(mm, "hunyuanvideo1.5_tiny_t2v_fp16.safetensors", "default", "cpu"),
            load_text_encoder(mm, "qwen_2.5_vl_tiny.safetensors", "byt5_small_glyphxl_tiny.safetensors",
                              "hunyuan_video_15", "cpu"),
            load_vae(mm, "hunyuanvideo15_vae_tiny.safetensors", "cpu"))


def _pipeline(hy15):
    from diffusers import ClassifierFreeGuidance, HunyuanVideo15Pipeline
    from transformers import AutoTokenizer, ByT5Tokenizer
    from tiny_hunyuan15 import reference_parts
    from nodes.generate.split import scheduler
    transformer, vae, te, byt5 = reference_parts()
    tok = AutoTokenizer.from_pretrained(str(hy15 / "comfy" / "text_encoders" / "qwen25_tokenizer"))
    return HunyuanVideo15Pipeline(text_encoder=te, tokenizer=tok, transformer=transformer, vae=vae,
                                  scheduler=scheduler("hunyuan15"), text_encoder_2=byt5, tokenizer_2=ByT5Tokenizer(),
                                  guider=ClassifierFreeGuidance(guidance_scale=CFG))


def test_hunyuan15_comfyui_files_sample_as_diffusers_pipeline(hy15, loaded):
    """Before: the transformer was taken for a HunyuanVideo 1 model of 65 input channels ("not this variant
    (SkyReels' image-to-video has 32)") and the VAE for HunyuanVideo 1's, whose converter could not read it."""
    from nodes.generate.model_manager import describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    models = hy15 / "models"
    got = [(d["family"], d["role"], d["loads"]) for d in (
        describe_model(models / "diffusion_models" / "hunyuanvideo1.5_tiny_t2v_fp16.safetensors"),
        describe_model(models / "vae" / "hunyuanvideo15_vae_tiny.safetensors"))]
    assert got == [("hunyuan15", "diffusion_model", "yes"), ("hunyuan15", "vae", "yes")]
    model, te, vae = loaded
    assert (model.family, te.family, vae.family) == ("hunyuan15",) * 3
    latent = run_sampling(model, encode_prompt(te, PROMPT), encode_prompt(te, ""),
                          empty_latent(vae, FRAMES, W, H, 24.0), steps=STEPS, cfg=CFG, sampler="euler",
                          seed=SEED).samples
    pipe = _pipeline(hy15)
    want = pipe(PROMPT, height=H, width=W, num_frames=FRAMES, num_inference_steps=STEPS, output_type="latent",
                generator=torch.Generator().manual_seed(SEED)).frames
    assert latent.shape == want.shape == (1, 8, 2, H // 16, W // 16)
    err = float((latent - want).abs().max() / want.abs().max())
    assert err < 1e-4, err
    # the VAE file decodes as the pipeline's VAE
    from nodes.generate.adapters import get_adapter
    pixels = get_adapter("hunyuan15").vae_decode(vae.pipe, want)
    ref = pipe.vae.decode(want / pipe.vae.config.scaling_factor, return_dict=False)[0]
    assert torch.allclose(pixels, ref, atol=1e-4)


def _i2v_pipeline(hy15):
    from diffusers import ClassifierFreeGuidance, HunyuanVideo15ImageToVideoPipeline
    from transformers import AutoTokenizer, ByT5Tokenizer, SiglipImageProcessor
    from tiny_hunyuan15 import SIGLIP_SIDE, reference_parts, siglip
    from nodes.generate.split import scheduler
    transformer, vae, te, byt5 = reference_parts()
    tok = AutoTokenizer.from_pretrained(str(hy15 / "comfy" / "text_encoders" / "qwen25_tokenizer"))
    pipe = HunyuanVideo15ImageToVideoPipeline(
        text_encoder=te, tokenizer=tok, transformer=transformer, vae=vae, scheduler=scheduler("hunyuan15"),
        text_encoder_2=byt5, tokenizer_2=ByT5Tokenizer(), guider=ClassifierFreeGuidance(guidance_scale=CFG),
        image_encoder=siglip(), feature_extractor=SiglipImageProcessor(size={"height": SIGLIP_SIDE,
                                                                             "width": SIGLIP_SIDE}))
    pipe.target_size = 45       # its size buckets (from the image's aspect) then hold W x H: 8 patches of 16
    return pipe


def test_hunyuan15_image_to_video_samples_as_diffusers_pipeline(hy15, loaded):
    """Image-to-video was not wired: ComfyUI's HunyuanVideo15ImageToVideo had no node and SigLIP (sigclip_vision)
    loaded for FLUX.1 Redux only ("which no hunyuan15 model reads"). Now the start image's latent and mask on the first
    frame and SigLIP's tokens of the image reach the model as HunyuanVideo15ImageToVideoPipeline gives them."""
    import numpy as np
    from PIL import Image
    from nodes.generate.hunyuan15_i2v import image_to_video
    from nodes.generate.image_cond import encode_image
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_clip_vision
    from nodes.generate.text import encode_prompt
    model, te, vae = loaded
    image = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)
    siglip = load_clip_vision(ModelManager(), "sigclip_vision_tiny.safetensors", "hunyuan15", "cpu")
    assert siglip.family == "hunyuan15"
    tokens = encode_image(siglip, image, "none")       # the pipeline's SiglipImageProcessor squeezes the picture
    pos, neg, latent = image_to_video(vae, encode_prompt(te, PROMPT), encode_prompt(te, ""), image, tokens, W, H,
                                      FRAMES)
    got = run_sampling(model, pos, neg, latent, steps=STEPS, cfg=CFG, sampler="euler", seed=SEED).samples
    want = _i2v_pipeline(hy15)(Image.fromarray(image), PROMPT, num_frames=FRAMES, num_inference_steps=STEPS,
                               output_type="latent", generator=torch.Generator().manual_seed(SEED)).frames
    assert got.shape == want.shape == (1, 8, 2, H // 16, W // 16)
    err = float((got - want).abs().max() / want.abs().max())
    assert err < 1e-5, err
    # the image is what steers it: text-to-video from the same noise lands elsewhere
    t2v = run_sampling(model, encode_prompt(te, PROMPT), encode_prompt(te, ""), latent, steps=STEPS, cfg=CFG,
                       sampler="euler", seed=SEED).samples
    assert float((t2v - want).abs().max() / want.abs().max()) > 1e-2
    with pytest.raises(NodeError, match="SigLIP's tokens of the start image"):
        image_to_video(vae, pos, neg, image, encode_prompt(te, PROMPT), W, H, FRAMES)


def test_hunyuan15_quoted_text_and_unrunnable_variants_are_named(hy15, loaded, tmp_path):
    from safetensors.torch import load_file, save_file
    from nodes.generate.text import encode_prompt
    from nodes.generate.detect import detect_file
    _, te, _ = loaded
    with pytest.raises(NodeError, match="glyph ByT5.*Leave out the quotation marks"):
        encode_prompt(te, 'a neon sign reading "OPEN"')
    base = load_file(str(hy15 / "models" / "diffusion_models" / "hunyuanvideo1.5_tiny_t2v_fp16.safetensors"))
    # q, k and v fused in HunyuanVideo 1's spelling (img_attn_qkv, txt_attn_qkv): the same model
    from nodes.generate.converters import build
    from nodes.generate.detect import detect_state_dict
    fused = dict(base)
    for side in ("img", "txt"):
        for kind in ("weight", "bias"):
            fused[f"double_blocks.0.{side}_attn_qkv.{kind}"] = torch.cat(
                [fused.pop(f"double_blocks.0.{side}_attn_{p}.{kind}") for p in "qkv"])
    det = detect_state_dict(fused)
    assert (det.family, det.role) == ("hunyuan15", "diffusion_model"), det
    want = build(detect_state_dict(base), dict(base), torch.float32, "split").state_dict()
    got = build(det, fused, torch.float32, "fused").state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    # the distilled and super-resolution files load (test_hunyuan15_distilled.py); another input width is named
    path = tmp_path / "wide.safetensors"
    save_file({**base, "img_in.proj.weight": torch.zeros(128, 40, 1, 1, 1)}, str(path))
    det = detect_file(path)
    assert (det.family, det.role) == ("hunyuan15", None) and "40 input channels" in det.why, det


def _template(hy15, task: str) -> dict:
    """ComfyUI's 720p `task` (t2v, i2v) template, its model files linked to the tiny ones under the names it asks for."""
    import json
    from comfy_layouts import link_as
    models = hy15 / "models"
    for name, tiny in ((f"diffusion_models/hunyuanvideo1.5_720p_{task}_fp16.safetensors",
                        "hunyuanvideo1.5_tiny_t2v_fp16.safetensors"),       # the same network either way
                       ("text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors", "qwen_2.5_vl_tiny.safetensors"),
                       ("text_encoders/byt5_small_glyphxl_fp16.safetensors", "byt5_small_glyphxl_tiny.safetensors"),
                       ("vae/hunyuanvideo15_vae_fp16.safetensors", "hunyuanvideo15_vae_tiny.safetensors"),
                       ("clip_vision/sigclip_vision_patch14_384.safetensors", "sigclip_vision_tiny.safetensors")):
        link_as(models / name, models / name.split("/")[0] / tiny)
    return json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" /
                       f"video_hunyuan_video_1.5_720p_{task}.json").read_text("utf-8"))


def test_comfyui_hunyuan15_t2v_template_imports_and_runs(hy15, tmp_path, monkeypatch):
    """ComfyUI's own HunyuanVideo 1.5 720p text-to-video template (its 1080p super-resolution branch bypassed, as
    published): EmptyHunyuanVideo15Latent was not mapped. Every active node maps now, and under the template's own
    file names (at 64x32, 5 frames, 2 steps) the latent is HunyuanVideo15Pipeline's for the template's prompts, seed and
    cfg on ComfyUI's simple schedule at ModelSamplingSD3's shift 7 (t = 1, 1/2, then shifted as the pipeline shifts)."""
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    data = _template(hy15, "t2v")
    res = import_data(data)
    active = {e.class_type: e.status for e in res.report.entries.values()}
    assert active["EmptyHunyuanVideo15Latent"] != "unmapped" and "unmapped" not in active.values(), active
    yaml = res.yaml.replace("frames: 121", f"frames: {FRAMES}").replace("width: 1280", f"width: {W}")
    yaml = yaml.replace("height: 720", f"height: {H}").replace("steps: 20", f"steps: {STEPS}")
    assert f"width: {W}" in yaml and f"steps: {STEPS}" in yaml and "shift: 7" in yaml, yaml
    wf = tmp_path / "hy15.kino.yaml"
    wf.write_text(yaml, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    got = next(v["latent"] for k, v in run.outputs.items() if k.startswith("sampler_custom_advanced")).samples
    texts = {n["title"]: n["widgets_values"][0] for n in data["nodes"] if n["type"] == "CLIPTextEncode"}
    seed = next(n["widgets_values"][0] for n in data["nodes"] if n["type"] == "RandomNoise" and n["mode"] == 0)
    want = _pipeline(hy15)(texts["CLIP Text Encode (Positive Prompt)"], texts["CLIP Text Encode (Negative Prompt)"],
                           height=H, width=W, num_frames=FRAMES, sigmas=[1.0, 0.5], output_type="latent",
                           generator=torch.Generator().manual_seed(seed)).frames
    err = float((got - want).abs().max() / want.abs().max())
    assert err < 1e-4, err


def test_comfyui_hunyuan15_i2v_template_imports_and_runs(hy15, tmp_path, monkeypatch):
    """ComfyUI's HunyuanVideo 1.5 720p image-to-video template (1080p super-resolution branch bypassed, as published):
    HunyuanVideo15ImageToVideo was not mapped. Now every active node maps, and under the template's own file names (at
    64x32, 5 frames, 2 steps) the latent is HunyuanVideo15ImageToVideoPipeline's for the template's negative prompt,
    seed and cfg at shift 7. CLIPVisionEncode's crop is set to none: the pipeline's SigLIP squeezes the whole picture;
    the positive prompt is a plain one (the template's has emphasis in parentheses, which the pipeline cannot read)."""
    import numpy as np
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    data = _template(hy15, "i2v")
    # its prompt's "(with ruffled ... head)" is ComfyUI emphasis (weight 1.1), which the pipeline does not read
    positive = next(n for n in data["nodes"] if n["type"] == "CLIPTextEncode" and n["widgets_values"][0])
    assert "(with ruffled" in positive["widgets_values"][0]
    positive["widgets_values"][0] = PROMPT
    res = import_data(data)
    active = {e.class_type: e.status for e in res.report.entries.values()}
    assert active["HunyuanVideo15ImageToVideo"] != "unmapped" and "unmapped" not in active.values(), active
    yaml = res.yaml.replace("frames: 121", f"frames: {FRAMES}").replace("width: 1280", f"width: {W}")
    yaml = yaml.replace("height: 720", f"height: {H}").replace("steps: 20", f"steps: {STEPS}")
    yaml = yaml.replace("crop: center", "crop: none")
    assert f"width: {W}" in yaml and f"steps: {STEPS}" in yaml and "crop: none" in yaml, yaml
    wf = tmp_path / "hy15_i2v.kino.yaml"
    wf.write_text(yaml, encoding="utf-8")
    image = Image.fromarray(np.random.default_rng(7).integers(0, 256, (H, W, 3), dtype=np.uint8))
    image.save(tmp_path / "video_hunyuan_video_1.5_720p_i2v_input_image.png")
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    got = next(v["latent"] for k, v in run.outputs.items() if k.startswith("sampler_custom_advanced")).samples
    seed = next(n["widgets_values"][0] for n in data["nodes"] if n["type"] == "RandomNoise" and n["mode"] == 0)
    want = _i2v_pipeline(hy15)(image, PROMPT, "", num_frames=FRAMES, sigmas=[1.0, 0.5], output_type="latent",
                               generator=torch.Generator().manual_seed(seed)).frames
    err = float((got - want).abs().max() / want.abs().max())
    assert err < 1e-5, err
