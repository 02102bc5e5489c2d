"""FIBO 2: the files a FIBO 2 user holds (ComfyUI's split files: the transformer bf16 or int8_convrot, Qwen3-VL-4B
loaded with CLIPLoader type fibo2, FLUX.2's VAE) are recognised, load, and ComfyUI's image_fibo2_edit_turbo_pe and
image_fibo2_edit_dev_pe templates sample what diffusers' BriaFibo2Pipeline samples for the same weights, picture,
prompt, negative and noise. The references share no code with Kinograph's: diffusers' BriaFibo2Transformer2DModel,
AutoencoderKLFlux2 and BriaFibo2Pipeline, transformers' Qwen3-VL and its processor with Qwen3-VL's settings."""
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
SIZE = (320, 240)       # the result (width, height): Qwen3-VL sees its crop at its 65536-pixel minimum or more
SHIFT = 1.15            # mu of the 1024 x 1024 picture FIBO 2 was trained at: ComfyUI's simple schedule's shift e^mu


@pytest.fixture(scope="module")
def fibo(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_fibo2 import build_fibo2
    yield from models_dir(tmp_path_factory, build_fibo2, "fibo2")


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_fibo2_transformer_files_match_diffusers(fibo):
    """The bf16 and int8_convrot files are told FIBO 2's, load with load.diffusion_model (the injection blocks, the
    gist queries and the rotary split read from the tensors) and predict what diffusers' transformer predicts on the
    same weights, with and without pictures to edit of other sizes."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_fibo2 import BF16, INT8, reference
    for name in (BF16, INT8):
        det = detect_file(fibo / "models" / "diffusion_models" / name)
        assert (det.family, det.role) == ("fibo2", "diffusion_model")
    models = {n: load_diffusion_model(ModelManager(), n, "default", "cpu").pipe.transformer for n in (BF16, INT8)}
    torch.manual_seed(0)
    x, t = torch.randn(1, 32, 6, 8), torch.tensor([0.6])
    text = torch.randn(1, 6, 300, 192)          # 300 tokens: 320 gist tokens, between the schedule's ends
    refs = [torch.randn(1, 32, 8, 4), torch.randn(1, 32, 6, 8)]
    ref = reference(fibo)
    with torch.no_grad():
        for context in (None, refs):
            want = ref(x, t, text, context_latents=context, return_dict=False)[0]
            assert _err(want, models[BF16](x, t, text, context_latents=context, return_dict=False)[0]) < 1e-5
            got = models[INT8](x, t, text, context_latents=context, return_dict=False)[0]
            assert 0 < _err(want, got) < 3e-2


def _processor(folder):
    """Qwen3-VL's processor with its released picture settings (16-pixel patches merged 2x2, pixels to -1..1,
    65536 to 16777216 pixels)."""
    from transformers import AutoTokenizer, Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.processing_utils import ProcessorMixin
    images = Qwen2VLImageProcessor(patch_size=16, merge_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                   min_pixels=65536, max_pixels=16777216)
    check = ProcessorMixin.check_argument_for_proper_class
    ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: None
    try:
        return Qwen3VLProcessor(image_processor=images, tokenizer=AutoTokenizer.from_pretrained(str(folder)))
    finally:
        ProcessorMixin.check_argument_for_proper_class = check


def _pipeline(root):
    """diffusers' BriaFibo2Pipeline on what the files read back as; its scheduler shifts by mu = 1.15 whatever the
    size, as ComfyUI's simple schedule does (at FIBO 2's trained 1024 x 1024 the pipeline's own mu is 1.15 too)."""
    from diffusers import AutoencoderKLFlux2, BriaFibo2Pipeline, FlowMatchEulerDiscreteScheduler
    from transformers import Qwen3VLForConditionalGeneration
    from tiny_fibo2 import TE_NAME, reference
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=SHIFT, max_shift=SHIFT,
                                                time_shift_type="exponential")
    return BriaFibo2Pipeline(transformer=reference(root), scheduler=scheduler,
                             vae=AutoencoderKLFlux2.from_pretrained(str(root / "reference" / "vae")).eval(),
                             text_encoder=Qwen3VLForConditionalGeneration.from_pretrained(
                                 str(root / "reference" / "text_encoder")).eval(),
                             processor=_processor(root / "models" / "text_encoders" / TE_NAME))


def _patched(z):
    n, c, h, w = z.shape
    return z.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)


def _unpatched(z):
    n, c, h, w = z.shape
    return z.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, h * 2, w * 2)


@pytest.mark.parametrize("template, model, steps, cfg", [
    ("image_fibo2_edit_turbo_pe.json", "fibo2_edit_turbo_int8_convrot.safetensors", (4, 2), 1.0),
    ("image_fibo2_edit_dev_pe.json", "fibo2_dev_int8_convrot.safetensors", (50, 2), 5.0),
])
def test_comfyui_fibo2_edit_templates_import_and_run(fibo, tmp_path, monkeypatch, template, model, steps, cfg):
    """ComfyUI's FIBO 2 edit templates (UNETLoader fibo2_*_int8_convrot, CLIPLoader qwen3vl_4b_bf16 type fibo2,
    VAELoader flux2-vae, the prompt enhancer TextGenerate on qwen3vl_8b with the picture and the system prompt
    switched in by ComfySwitchNode, TextEncodeFibo2 with the picture, KSampler euler/simple). Every node maps and
    they run on the tiny files under the templates' names (the enhancer writing a few words after a line of its
    system prompt, the result 320 x 240, 2 steps) and save a picture; the bf16 file's latent is BriaFibo2Pipeline's for the enhancer's words, the picture,
    the template's negative (dev: its JSON caption at cfg 5; turbo: cfg 1) and the same noise, the int8_convrot
    file's within int8 error."""
    from PIL import Image
    from comfy_layouts import imported_template, written_and_sampled
    from tiny_fibo2 import BF16, INT8, PE_NAME
    models = fibo / "models"
    rng = torch.Generator().manual_seed(5)
    picture = (torch.rand(200, 280, 3, generator=rng) * 255).to(torch.uint8).numpy()
    Image.fromarray(picture).save(tmp_path / "picture.png")
    monkeypatch.chdir(tmp_path)
    links = ((f"diffusion_models/{model}", f"diffusion_models/{INT8}"),
             ("text_encoders/qwen3vl_8b_int8_convrot.safetensors", f"text_encoders/{PE_NAME}.safetensors"),
             ("text_encoders/qwen3vl_8b_int8_convrot", f"text_encoders/{PE_NAME}"))
    data, yaml = imported_template(models, links, TEMPLATES / template, SIZE, steps)
    assert "type: encode.fibo2" in yaml and "sampler: euler" in yaml and "scheduler: simple" in yaml, yaml
    yaml = re.sub(r"path: \S+\.png", f"path: {tmp_path / 'picture.png'}", yaml)
    # the enhancer's system prompt is some 10000 of the tiny tokenizer's byte tokens: a line of it is enough here
    yaml = re.sub(r"system_prompt: \|-\n(?:        .*\n|\n)+", "system_prompt: Describe the final image as JSON.\n",
                  yaml).replace("max_length: 3000", "max_length: 12")
    assert "system_prompt: Describe" in yaml
    yaml = yaml.replace("      width: 0\n      height: 0\n", f"      width: {SIZE[0]}\n      height: {SIZE[1]}\n")
    text, got = written_and_sampled(tmp_path / "fibo.kino.yaml", yaml)
    assert list((tmp_path / "out").rglob("*.png")) and got.shape[-2:] == (SIZE[1] // 16, SIZE[0] // 16)
    negative = next(n for n in data["nodes"] if n["type"] == "TextEncodeFibo2")["widgets_values"][1]
    noise = torch.randn((1, 128, SIZE[1] // 16, SIZE[0] // 16), generator=torch.Generator().manual_seed(1234))
    with torch.no_grad():
        want = _pipeline(fibo)(text, image=Image.fromarray(picture), render_text_images=False, width=SIZE[0],
                               height=SIZE[1], num_inference_steps=2, guidance_scale=cfg,
                               negative_prompt=negative or None, latents=_unpatched(noise), output_type="latent",
                               return_dict=False)[0]
    want = _patched(want)
    _, bf16 = written_and_sampled(tmp_path / "fibo.kino.yaml", yaml.replace(model, BF16))
    assert _err(want, bf16) < 1e-4
    assert 0 < _err(want, got) < 3e-2


def test_encode_fibo2_sizes_the_result_as_the_template_says(fibo):
    """width and height 0: FIBO 2's trained size about a megapixel for the picture's shape (the pipeline's
    get_image_size), 1024 x 1024 without a picture; other sides floored to multiples of 16; the latent is FLUX.2's
    empty one of that size and batch.

    The trained sizes are worked out by hand from get_image_size's rule (sides multiples of 16, area within 10% of
    1024 x 1024, least crop first, then closest area): a 3:2 size with sides multiples of 16 is 48m x 32m, area
    1536 m^2; m = 26 (1248 x 832, 10240 short) beats m = 27 (1296 x 864, 71168 over). A square is 1024 x 1024."""
    from nodes.generate.fibo2_edit import result_size
    picture = np.zeros((600, 900, 3), np.uint8)
    assert result_size(0, 0, [picture]) == (1248, 832)
    assert result_size(0, 0, [picture.transpose(1, 0, 2)]) == (832, 1248)
    assert result_size(0, 0, [np.zeros((500, 500, 3), np.uint8)]) == (1024, 1024)
    assert result_size(0, 0, []) == (1024, 1024)
    assert result_size(333, 250, [picture]) == (320, 240)


def test_encode_fibo2_without_pictures_reads_the_caption_as_the_pipeline_does(fibo):
    """With no picture, encode.fibo2 (and encode.text on a FIBO 2 model) read the JSON caption as BriaFibo2Pipeline
    does when it makes a picture: empty values and scores dropped, written compactly; the empty negative is the null
    caption; the latent is FLUX.2's empty one at 1024 x 1024."""
    from diffusers.pipelines.bria_fibo2.pipeline_bria_fibo2 import DEFAULT_NEGATIVE_PROMPT
    from nodes.generate.adapters.fibo2 import Fibo2Adapter
    from nodes.generate.fibo2_edit import encode_fibo2
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from tiny_fibo2 import TE_NAME
    te = load_text_encoder(ModelManager(), f"{TE_NAME}.safetensors", "", "fibo2", "cpu")
    caption = ('{"short_description": "a red bicycle", "objects": [], "lighting": {"conditions": "sun", '
               '"direction": ""}, "aesthetics": {"aesthetic_score": "high"}}')
    positive, negative, latent = encode_fibo2(te, None, caption, "", [], batch_size=2)
    pipe = _pipeline(fibo)
    with torch.no_grad():
        want = pipe.encode_prompt('{"short_description":"a red bicycle","lighting":{"conditions":"sun"}}',
                                  device="cpu")[0][0].permute(1, 0, 2).flatten(1)
        null = pipe.encode_prompt(DEFAULT_NEGATIVE_PROMPT, device="cpu")[0][0].permute(1, 0, 2).flatten(1)
        text = Fibo2Adapter().encode_text(te.pipe, [caption], "cpu")[0][0]
    assert _err(want, positive.embeds[0]) < 1e-5 and _err(want, text) < 1e-5
    assert _err(null, negative.embeds[0]) < 1e-5
    assert latent.samples.shape == (2, 128, 1, 64, 64) and not latent.samples.any()


def test_encode_fibo2_names_what_it_needs(fibo):
    """Qwen3-VL loaded for another model (type joyimage), another family's VAE, a JSON edit prompt without its
    edit_instruction and a side under 16 pixels are refused with what to give instead."""
    from graph_engine import NodeError
    from nodes.generate.fibo2_edit import encode_fibo2
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from tiny_fibo2 import TE_NAME
    mm = ModelManager()
    picture = np.zeros((64, 64, 3), np.uint8)
    other = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "joyimage", "cpu")
    with pytest.raises(NodeError, match="with type fibo2"):
        encode_fibo2(other, None, "make it blue", "", [picture])
    te = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "fibo2", "cpu")
    with pytest.raises(NodeError, match="flux2-vae"):
        encode_fibo2(te, SimpleNamespace(family="flux"), "make it blue", "", [picture])
    with pytest.raises(NodeError, match="edit_instruction"):
        encode_fibo2(te, None, '{"short_description": "a blue car"}', "", [picture], 64, 64)
    with pytest.raises(NodeError, match="at least 16"):
        encode_fibo2(te, None, "make it blue", "", [picture], 8, 64)
