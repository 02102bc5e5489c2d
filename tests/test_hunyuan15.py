"""HunyuanVideo 1.5 from ComfyUI's split files (the transformer and VAE in Tencent's names, Qwen2.5-VL and the glyph
ByT5 as DualCLIPLoader type hunyuan_video_15 loads them): detected, converted at load, sampled through Kinograph's
sampler to the latent diffusers' own HunyuanVideo15Pipeline gives for the same weights, prompt, negative and seed."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))

W, H, FRAMES, STEPS, SEED, CFG = 64, 32, 5, 2, 3, 6.0
PROMPT = "a paper airplane over a city"


@pytest.fixture(scope="module")
def hy15(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_hunyuan15 import build_hunyuan15_distilled
    yield from models_dir(tmp_path_factory, build_hunyuan15_distilled, "hy15")


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
    # the distilled and super-resolution files load (the tests below); another input width is named
    path = tmp_path / "wide.safetensors"
    save_file({**base, "img_in.proj.weight": torch.zeros(128, 40, 1, 1, 1)}, str(path))
    det = detect_file(path)
    assert (det.family, det.role) == ("hunyuan15", None) and "40 input channels" in det.why, det


def _template(hy15, task: str) -> dict:
    """ComfyUI's 720p `task` (t2v, i2v) template, its model files linked to the tiny ones under the names it asks for."""
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


# -- the distilled transformers and the 1080p super-resolution stage -------------------------------------------------
# Comfy-Org's hunyuanvideo1.5_*_cfg_distilled (guidance_in), *_step_distilled (time_r_in), hunyuanvideo1.5_1080p_sr_
# distilled (98 input channels) and latent_upscale_models/hunyuanvideo15_latent_upsampler_1080p were detected and
# refused ("Kinograph runs the 480p and 720p ... models"). Now they load and sample: against diffusers' pipelines where
# diffusers has the piece (mean-flow time_r), against forwards written here from Tencent's / ComfyUI's code where it
# has not (the guidance embedding, the latent upsampler, the SR conditioning).

def _load(kind):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    return load_diffusion_model(ModelManager(), f"hunyuanvideo1.5_tiny_{kind}_distilled.safetensors", "default", "cpu")


def _sinusoid(t: float) -> torch.Tensor:
    """Tencent's timestep_embedding(t, 256): cos then sin of t at periods up to 10000."""
    freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32) / 128)
    return torch.cat([torch.cos(t * freqs), torch.sin(t * freqs)])[None]


def _reference(hy15, cls, transformer, **parts):
    from diffusers import ClassifierFreeGuidance
    from transformers import AutoTokenizer, ByT5Tokenizer
    from tiny_hunyuan15 import reference_parts
    from nodes.generate.split import scheduler
    _, vae, te, byt5 = reference_parts()
    tok = AutoTokenizer.from_pretrained(str(hy15 / "comfy" / "text_encoders" / "qwen25_tokenizer"))
    return cls(text_encoder=te, tokenizer=tok, transformer=transformer, vae=vae, scheduler=scheduler("hunyuan15"),
               text_encoder_2=byt5, tokenizer_2=ByT5Tokenizer(), guider=ClassifierFreeGuidance(guidance_scale=1.0),
               **parts)


def _err(got, want) -> float:
    return float((got - want).abs().max() / want.abs().max())


def test_hunyuan15_cfg_distilled_transformer_samples_with_its_guidance_embedding(hy15, loaded):
    """The cfg-distilled model at cfg 1 (one pass, as the templates' table gives it) is told guidance 6 through
    guidance_in, as ComfyUI tells it: Tencent's vec = time_in(t) + guidance_in(6 x 1000), written here as diffusers'
    pipeline with that constant added to its time embedding's output."""
    from diffusers import HunyuanVideo15Pipeline
    from tiny_hunyuan15 import distilled_transformer
    from nodes.generate.model_manager import describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    _, te, vae = loaded
    path = hy15 / "models" / "diffusion_models" / "hunyuanvideo1.5_tiny_cfg_distilled.safetensors"
    d = describe_model(path)
    assert (d["family"], d["variant"], d["role"], d["loads"]) == ("hunyuan15", "cfg-distilled", "diffusion_model",
                                                                  "yes"), d
    got = run_sampling(_load("cfg"), encode_prompt(te, PROMPT), None, empty_latent(vae, FRAMES, W, H, 24.0),
                       steps=STEPS, cfg=1.0, sampler="euler", seed=SEED).samples
    plain, sd = distilled_transformer("cfg")
    g = F.linear(F.silu(F.linear(_sinusoid(6000.0), sd["guidance_in.mlp.0.weight"], sd["guidance_in.mlp.0.bias"])),
                 sd["guidance_in.mlp.2.weight"], sd["guidance_in.mlp.2.bias"])[0]
    kw = dict(height=H, width=W, num_frames=FRAMES, num_inference_steps=STEPS, output_type="latent")
    unguided = _reference(hy15, HunyuanVideo15Pipeline, plain)(
        PROMPT, generator=torch.Generator().manual_seed(SEED), **kw).frames
    plain.time_embed.timestep_embedder.linear_2.bias.data += g
    want = _reference(hy15, HunyuanVideo15Pipeline, plain)(
        PROMPT, generator=torch.Generator().manual_seed(SEED), **kw).frames
    assert got.shape == want.shape == (1, 8, 2, H // 16, W // 16)
    assert _err(got, want) < 1e-4, _err(got, want)
    assert _err(unguided, want) > 1e-2          # the embedding is what moves it


def test_hunyuan15_step_distilled_i2v_samples_as_diffusers_meanflow_pipeline(hy15, loaded):
    """The step-distilled model is told each step's next level (time_r, 0 after the last) beside its own, as
    HunyuanVideo15ImageToVideoPipeline tells a use_meanflow transformer: the same latent for the same image, prompt
    and seed."""
    import numpy as np
    from PIL import Image
    from diffusers import HunyuanVideo15ImageToVideoPipeline
    from transformers import SiglipImageProcessor
    from tiny_hunyuan15 import SIGLIP_SIDE, distilled_transformer, siglip
    from nodes.generate.hunyuan15_i2v import image_to_video
    from nodes.generate.image_cond import encode_image
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_clip_vision
    from nodes.generate.text import encode_prompt
    _, te, vae = loaded
    model = _load("step")
    assert model.pipe.transformer.config.use_meanflow
    image = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)
    tokens = encode_image(load_clip_vision(ModelManager(), "sigclip_vision_tiny.safetensors", "hunyuan15", "cpu"),
                          image, "none")
    pos, _, latent = image_to_video(vae, encode_prompt(te, PROMPT), None, image, tokens, W, H, FRAMES)
    got = run_sampling(model, pos, None, latent, steps=STEPS, cfg=1.0, sampler="euler", seed=SEED).samples
    pipe = _reference(hy15, HunyuanVideo15ImageToVideoPipeline, distilled_transformer("step")[0],
                      image_encoder=siglip(),
                      feature_extractor=SiglipImageProcessor(size={"height": SIGLIP_SIDE, "width": SIGLIP_SIDE}))
    pipe.target_size = 45       # its size buckets (from the image's aspect) then hold W x H
    want = pipe(Image.fromarray(image), PROMPT, num_frames=FRAMES, num_inference_steps=STEPS, output_type="latent",
                generator=torch.Generator().manual_seed(SEED)).frames
    assert got.shape == want.shape == (1, 8, 2, H // 16, W // 16)
    assert _err(got, want) < 1e-5, _err(got, want)


def _causal_conv(x, sd, name):
    """ComfyUI's VideoConv3d: replicate padding, one pixel each side, two frames before."""
    return F.conv3d(F.pad(x, (1, 1, 1, 1, 2, 0), mode="replicate"), sd[name + ".conv.weight"], sd[name + ".conv.bias"])


def _rms(x, gamma):
    return F.normalize(x, dim=1) * x.shape[1] ** 0.5 * gamma


def _upsampler(sd, z):
    """ComfyUI's hunyuan_video Upsampler.forward over the file's tensors."""
    x = _causal_conv(z, sd, "conv_in") + z.repeat_interleave(16 // z.shape[1], dim=1)
    for i in range(2):
        for j in range(3):
            b = f"up.{i}.block.{j}."
            h = _causal_conv(F.silu(_rms(x, sd[b + "norm1.gamma"])), sd, b + "conv1")
            h = _causal_conv(F.silu(_rms(h, sd[b + "norm2.gamma"])), sd, b + "conv2")
            if b + "nin_shortcut.weight" in sd:
                x = F.conv3d(x, sd[b + "nin_shortcut.weight"], sd[b + "nin_shortcut.bias"])
            x = x + h
    return _causal_conv(F.silu(_rms(x, sd["norm_out.gamma"])), sd, "conv_out")


def test_comfyui_hunyuan15_t2v_template_with_its_1080p_super_resolution_stage_runs(hy15, tmp_path, monkeypatch):
    """ComfyUI's HunyuanVideo 1.5 720p text-to-video template with its super-resolution group switched on (published
    bypassed): UNETLoader of hunyuanvideo1.5_1080p_sr_distilled, LatentUpscaleModelLoader ->
    HunyuanVideo15LatentUpscaleWithModel, HunyuanVideo15SuperResolution, and two SamplerCustomAdvanced halves of one
    schedule split by SplitSigmas. Every node maps; under the template's own file names (64x32 -> 128x64, 2 + 2
    steps) the SR latent is, from the first stage's latent: bilinear to 1/16 of 128x64, the upsampler (ComfyUI's
    forward, in the VAE's unscaled space), the SR channels [0, 0, 0.7 noise(seed 889 - 10) + 0.3 latent, 1], and
    Euler on [1, 2/3, 0] (BasicScheduler's model is the plain SR model, whose shift in ComfyUI is 2) from noise of seed 889 with diffusers'
    transformer told time_r, its second half without the SR channels (that guider has the bare prompts). The
    image-to-video template's SR group maps as well."""
    from safetensors.torch import load_file
    from app.comfyui import import_data
    from comfy_layouts import link_as
    from diffusers import HunyuanVideo15Pipeline
    from tiny_hunyuan15 import distilled_transformer
    from graph_engine.api import Session, load_workflow
    from nodes.generate.hunyuan15_sr import SCALE
    models = hy15 / "models"
    for name, tiny in (("diffusion_models/hunyuanvideo1.5_720p_t2v_fp16.safetensors",
                        "hunyuanvideo1.5_tiny_t2v_fp16.safetensors"),
                       ("diffusion_models/hunyuanvideo1.5_1080p_sr_distilled_fp16.safetensors",
                        "hunyuanvideo1.5_tiny_sr_distilled.safetensors"),
                       ("latent_upscale_models/hunyuanvideo15_latent_upsampler_1080p.safetensors",
                        "hunyuanvideo15_latent_upsampler_tiny.safetensors"),
                       ("text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors", "qwen_2.5_vl_tiny.safetensors"),
                       ("text_encoders/byt5_small_glyphxl_fp16.safetensors", "byt5_small_glyphxl_tiny.safetensors"),
                       ("vae/hunyuanvideo15_vae_fp16.safetensors", "hunyuanvideo15_vae_tiny.safetensors")):
        link_as(models / name, models / name.split("/")[0] / tiny)
    data = json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" /
                       "video_hunyuan_video_1.5_720p_t2v.json").read_text("utf-8"))
    sr_group = {"UNETLoader", "LatentUpscaleModelLoader", "HunyuanVideo15LatentUpscaleWithModel",
                "HunyuanVideo15SuperResolution", "RandomNoise", "KSamplerSelect", "ModelSamplingSD3", "BasicScheduler",
                "SplitSigmas", "DisableNoise", "SamplerCustomAdvanced", "CFGGuider", "VAEDecode", "CreateVideo",
                "SaveVideo"}
    for n in data["nodes"]:
        if n["mode"] == 4 and n["type"] in sr_group:
            n["mode"] = 0
        if n["type"] == "HunyuanVideo15LatentUpscaleWithModel":
            n["widgets_values"][1:3] = [2 * W, 2 * H]
        if n["type"] == "BasicScheduler" and n["widgets_values"][1] == 8:
            n["widgets_values"][1] = STEPS
        if n["type"] == "SplitSigmas":
            n["widgets_values"][0] = 1
    res = import_data(data)
    active = {e.class_type: e.status for e in res.report.entries.values()}
    assert "unmapped" not in active.values(), active
    # the image-to-video template's SR group (start image and SigLIP tokens into the SR conditioning) maps too
    i2v = json.loads((Path(__file__).parent / "data" / "comfyui" / "templates" /
                      "video_hunyuan_video_1.5_720p_i2v.json").read_text("utf-8"))
    for n in i2v["nodes"]:
        if n["mode"] == 4 and n["type"] in sr_group:
            n["mode"] = 0
    sr = import_data(i2v)
    assert "unmapped" not in {e.status for e in sr.report.entries.values()}
    node = next(n for n in sr.graph.nodes.values() if n.type == "condition.hunyuan15_sr")
    assert {"start_image", "image_embeds", "vae", "latent"} <= set(sr.graph.inputs[node.id])
    yaml = res.yaml.replace("frames: 121", f"frames: {FRAMES}").replace("width: 1280", f"width: {W}")
    yaml = yaml.replace("height: 720", f"height: {H}").replace("steps: 20", f"steps: {STEPS}")
    wf = tmp_path / "hy15_sr.kino.yaml"
    wf.write_text(yaml, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    lat = {k: v["latent"].samples for k, v in run.outputs.items() if "latent" in v}
    base = lat[next(k for k in lat if k.startswith("sampler_custom_advanced_127"))]
    up = next(v for k, v in lat.items() if k.startswith("hunyuan_video15_latent_upscale_with_model"))
    # the upsampler: bilinear to the final size / 16, ComfyUI's forward on the unscaled latent
    sd = {k: v.float() for k, v in load_file(str(models / "latent_upscale_models" /
                                                  "hunyuanvideo15_latent_upsampler_tiny.safetensors")).items()}
    t = base.shape[2]
    sized = F.interpolate(base.permute(0, 2, 1, 3, 4).reshape(t, 8, H // 16, W // 16), size=(H // 8, W // 8),
                          mode="bilinear").reshape(1, t, 8, H // 8, W // 8).permute(0, 2, 1, 3, 4)
    want_up = _upsampler(sd, sized / SCALE) * SCALE
    assert _err(up, want_up) < 1e-5, _err(up, want_up)
    # the SR pass: Euler over the whole split schedule, the low-resolution latent noised as ComfyUI noises it
    prompt = next(n["widgets_values"][0] for n in data["nodes"] if n["type"] == "CLIPTextEncode" and
                  n["widgets_values"][0])
    pipe = _reference(hy15, HunyuanVideo15Pipeline, distilled_transformer("sr")[0])
    embeds, mask, embeds_2, mask_2 = pipe.encode_prompt(prompt, device="cpu")[:4]
    lq = want_up / SCALE
    cond = torch.cat([torch.zeros(1, 9, *lq.shape[2:]),
                      0.7 * torch.randn(lq.shape, generator=torch.Generator().manual_seed(889 - 10)) + 0.3 * lq,
                      torch.ones(1, 1, *lq.shape[2:])], dim=1)
    x = torch.randn(lq.shape, generator=torch.Generator().manual_seed(889))
    # ComfyUI's simple schedule of 2 steps on BasicScheduler's model, the plain SR model, whose sampling_settings
    # shift is 2 (comfy/supported_models.py HunyuanVideo15_SR_Distilled; the 480p / 720p models' is 7): 1,
    # 2 x 0.5 / (1 + 0.5), 0; the second half's guider has the bare prompts, so its SR channels are zeros
    levels = [1.0, 2.0 / 3.0, 0.0]
    with torch.no_grad():
        for s, nxt, c in zip(levels, levels[1:], (cond, torch.zeros_like(cond))):
            v = pipe.transformer(torch.cat([x, c], 1), torch.tensor([s * 1000]), embeds, mask,
                                 timestep_r=torch.tensor([nxt * 1000]), encoder_hidden_states_2=embeds_2,
                                 encoder_attention_mask_2=mask_2, image_embeds=torch.zeros(1, 729, 16),
                                 return_dict=False)[0]
            x = x + (nxt - s) * v
    final = lat[next(k for k in lat if k.startswith("sampler_custom_advanced_141"))]
    assert final.shape == x.shape == (1, 8, 2, H // 8, W // 8)
    assert _err(final, x) < 1e-4, _err(final, x)
