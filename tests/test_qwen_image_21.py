"""Qwen-Image 2.1 keyframes: the Qwen/Qwen-Image-2.1 diffusers folder a Qwen-Image 2.1 user holds loads without
torchvision, samples and decodes what diffusers' own QwenImage21Pipeline gives for the same weights, prompt and
seed."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

W, H = 64, 32
NEGATIVE = "blurry, low quality"


@pytest.fixture(scope="module")
def qwen21(tmp_path_factory):
    from comfy_layouts import built
    from tiny_qwen21 import build_qwen21
    yield from built(build_qwen21, tmp_path_factory)


def _reference(folder, negative=None, cfg=1.0, steps=2, seed=7):
    """QwenImage21Pipeline's latent ([1, 64, h, w]) and picture ([1, 3, H, W] in 0..1) for "a cat" (its processor
    given, as transformers cannot load it without torchvision)."""
    from diffusers import QwenImage21Pipeline
    from nodes.generate.adapters.qwenimage21 import processor
    ref = QwenImage21Pipeline.from_pretrained(str(folder), local_files_only=True,
                                              processor=processor(folder / "processor"))
    kw = dict(negative_prompt=negative, true_cfg_scale=cfg, width=W, height=H, num_inference_steps=steps)
    packed = ref("a cat", generator=torch.Generator().manual_seed(seed), output_type="latent", **kw).images
    picture = ref("a cat", generator=torch.Generator().manual_seed(seed), output_type="pt", **kw).images
    return ref._unpack_latents(packed, H, W, ref.vae_scale_factor)[:, :, 0], picture


def _close(want, got):
    err = float((want - got).abs().max() / want.abs().max())
    assert err < 1e-4, err
    return err


def test_qwen_image_21_folder_runs_as_the_pipeline(qwen21, tmp_path, monkeypatch):
    """The folder was refused ("Qwen-Image 2.1 ... a model Kinograph does not run"). It is detected as Qwen-Image
    2.1, load.model loads it (transformers alone fails on its processor without torchvision), and a workflow with a
    negative prompt at cfg 3 samples QwenImage21Pipeline's latent (64 channels at 1/16 of the size; the negative, a
    prompt of another length, run at its own) and decodes its picture; without one, at cfg 1, the same."""
    from graph_engine.api import Session, load_workflow
    from nodes.common.alpha import premultiplied
    from nodes.generate.model_manager import describe_model, dtype_of
    folder = qwen21 / "Qwen-Image-2.1"
    # on a GPU, auto is bf16 as QwenImage21Pipeline's example runs it (it was fp16, where Qwen-Image overflows)
    assert dtype_of("auto", "qwenimage21", "cuda")[0] == "bf16"
    got = describe_model(folder)
    assert (got["family"], got["loads"]) == ("qwenimage21", "yes"), got
    # ... and so is its VAE alone (it was a Wan 2.1 VAE): named, pointing at the folder; its Qwen3-VL encoder loads
    from nodes.generate.detect import detect_keys
    wan_names = detect_keys({"decoder.middle.0.residual.0.gamma": (384, 1, 1), "conv1.weight": (128, 128, 1, 1, 1)})
    assert (wan_names.role, wan_names.family) == (None, "qwenimage21") and "qwen_image_2.1_vae" in wan_names.why
    vae_file, te_file = [next((folder / part).glob("*.safetensors")) for part in ("vae", "text_encoder")]
    got = describe_model(vae_file)
    assert (got["family"], got["loads"]) == ("qwenimage21", "no") and "Qwen/Qwen-Image-2.1" in got["note"], got
    got = describe_model(te_file)
    assert (got["family"], got["role"], got["loads"]) == ("qwen3vl", "text_encoder", "yes"), got
    wf = tmp_path / "qwen21.kino.yaml"
    wf.write_text(f"""kinograph: 1
nodes:
  load: {{type: load.model, params: {{path: {folder}}}}}
  pos: {{type: encode.text, params: {{text: a cat}}, inputs: {{text_encoder: load.text_encoder}}}}
  neg: {{type: encode.text, params: {{text: "{NEGATIVE}"}}, inputs: {{text_encoder: load.text_encoder}}}}
  latent: {{type: latent.empty, params: {{width: {W}, height: {H}, frames: 1}}, inputs: {{vae: load.vae}}}}
  guided: {{type: generate.sample, params: {{steps: 2, seed: 7, cfg: 3.0, sampler: euler}},
            inputs: {{model: load.model, positive: pos.positive, negative: neg.positive, latent: latent.latent}}}}
  plain: {{type: generate.sample, params: {{steps: 2, seed: 7, cfg: 1.0, sampler: euler}},
           inputs: {{model: load.model, positive: pos.positive, latent: latent.latent}}}}
  decode: {{type: vae.decode, inputs: {{vae: load.vae, latent: guided.latent}}}}
""", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    latent = run.outputs["guided"]["latent"].samples
    assert latent.shape == (1, 64, 1, H // 16, W // 16)
    want, picture = _reference(folder, NEGATIVE, 3.0)
    _close(want, latent[:, :, 0])
    _close(_reference(folder)[0], run.outputs["plain"]["latent"].samples[:, :, 0])
    # the VAE decodes RGBA: the colour laid over black, the alpha as the clip's matte
    clip = run.outputs["decode"]["video"]
    straight = (picture[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    matte = clip.matte.to_array()[0]
    assert np.abs(matte.astype(int) - straight[..., 3:]).max() <= 1
    assert np.abs(clip.to_array()[0].astype(int) - premultiplied(straight[..., :3], matte)).max() <= 1
    assert len(np.unique(matte)) > 1          # random weights: alpha varies, so the matte is the decoded one


def _picture(seed, w, h):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_qwen_image_21_edits_as_the_pipeline(qwen21, monkeypatch):
    """Qwen-Image 2.1's picture edits (QwenImage21Pipeline's image=) were refused by encode.qwen_edit ("Kinograph
    does not run that yet"). Two pictures, the prompt and a negative (each with the pictures, true CFG 3), read at
    size 80 (the pipeline's output_resolution): the latent is the pipeline's, and apart from the same prompt's without
    the pictures by far more; ComfyUI's Qwen3-VL file reads them too. What 2.1 cannot read is named: a picture Qwen3-VL's processor would resize (too small for it), one
    too narrow for a 32-pixel slot, a negative without the pictures, condition.reference on a plain prompt."""
    from dataclasses import replace
    from diffusers import QwenImage21Pipeline
    from PIL import Image
    from graph_engine import NodeError
    from nodes.generate.adapters.qwenimage21 import processor
    from nodes.generate.latent import Latent
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.qwen_edit import encode_edit
    from nodes.generate.reference import add_reference
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    folder = qwen21 / "Qwen-Image-2.1"
    pictures = [_picture(1, 64, 64), _picture(2, 128, 60)]      # read at 64x64 and 128x64
    ref = QwenImage21Pipeline.from_pretrained(str(folder), local_files_only=True,
                                              processor=processor(folder / "processor"))
    packed = ref("make it red", image=[Image.fromarray(p) for p in pictures], negative_prompt=NEGATIVE,
                 true_cfg_scale=3.0, width=W, height=H, num_inference_steps=2, output_resolution=80,
                 generator=torch.Generator().manual_seed(7), output_type="latent").images
    want = ref._unpack_latents(packed, H, W, ref.vae_scale_factor)[:, :, 0]
    mm = ModelManager()
    model = mm.load("qwenimage21", str(folder))
    parts = mm.components(model)
    te, vae = parts["text_encoder"], parts["vae"]
    pos = encode_edit(te, vae, "make it red", pictures, size=80)
    neg = encode_edit(te, vae, NEGATIVE, pictures, size=80)

    def sample(p, n):
        return run_sampling(model, p, n, empty_latent(vae, 1, W, H, 8.0), steps=2, cfg=1.0 if n is None else 3.0,
                            sampler="euler", seed=7).samples[:, :, 0]
    got = sample(pos, neg)
    err = _close(want, got)
    apart = float((got - _reference(folder, NEGATIVE, 3.0)[0]).abs().max() / want.abs().max())
    assert apart > 100 * max(err, 1e-6), (apart, err)
    # ComfyUI's Qwen3-VL file reads them as the folder's encoder does with the file's image processor (its vision
    # tokens' ids were left at the released model's, not its tokenizer's: "Image features and image tokens do not
    # match")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(qwen21 / "models"))
    te_file = load_text_encoder(mm, "qwen3vl_tiny_bf16.safetensors", "", "qwen_image", "cpu")
    cond = encode_edit(te_file, vae, "make it red", pictures[:1], size=80)
    seen = [Image.fromarray(pictures[0]).resize((64, 64), Image.LANCZOS)]
    with torch.no_grad():
        embeds, _, slots = QwenImage21Pipeline(**dict(ref.components, processor=te_file.pipe.processor)).encode_prompt(
            ["make it red"], image=seen)
    assert torch.equal(cond.extra["image_slots"], slots) and int(slots.sum()) == 4
    _close(embeds, cond.embeds)
    with pytest.raises(NodeError, match=r"would be 32x32 at this size, but this Qwen3-VL reads pictures of 3136 to "
                                        r"1003520 pixels.*set size between 56 and"):
        encode_edit(te, vae, "make it red", pictures[:1], size=32)
    with pytest.raises(NodeError, match=r"picture to edit \(image2, 600x20\) would be .*too narrow"):
        encode_edit(te, vae, "make it red", [pictures[0], _picture(3, 600, 20)], size=80)
    plain = encode_prompt(te, NEGATIVE)
    # a prompt combined with an edit's (condition.combine) keeps its own text's slots: none, so it is refused below
    assert "image_slots" not in replace(pos, parts=(plain,)).entries()[1].extra
    with pytest.raises(NodeError, match="different reference pictures"):
        sample(pos, plain)
    with pytest.raises(NodeError, match="has 0 image slots for pictures of 4.*encode.qwen_edit"):
        sample(add_reference(plain, Latent(torch.zeros(1, 64, 1, 4, 4), "qwenimage21", 1, 1.0, 64, 64)), None)


def test_qwen_image_21_vae_encodes_a_picture_as_the_pipeline(qwen21):
    """A picture to start from (img2img) goes into the VAE as QwenImage21Pipeline's picture does: RGBA, opaque
    (it read 3 channels into a 4-channel VAE and failed)."""
    from diffusers import AutoencoderKLQwenImage21
    from nodes.generate.adapters import get_adapter
    from nodes.generate.model_manager import ModelManager
    folder = qwen21 / "Qwen-Image-2.1"
    vae = AutoencoderKLQwenImage21.from_pretrained(str(folder / "vae"))
    rgb = torch.rand(1, 3, 1, H, W, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        z = vae.encode(torch.cat([rgb, torch.ones_like(rgb[:, :1])], 1)).latent_dist.mode()
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
        mm = ModelManager()
        got = get_adapter("qwenimage21").vae_encode(mm.components(mm.load("qwenimage21", str(folder)))["vae"].pipe, rgb)
    _close((z - mean) / std, got)


def _lora_layouts(tmp_path):
    """One random LoRA on attention, both SwiGLU inputs, its output and the text input, saved in the layouts
    Qwen-Image 2.1 LoRAs are published in; with the diffusers (PEFT) state they all mean."""
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(3)
    shapes = {"transformer_blocks.0.attn.to_q": (64, 64), "transformer_blocks.1.img_mlp.gate_layer": (192, 64),
              "transformer_blocks.1.img_mlp.proj": (192, 64), "transformer_blocks.0.img_mlp.out": (64, 192),
              "txt_in.in_layer": (64, 64)}
    ab = {layer: (torch.randn(4, i, generator=g) * 0.3, torch.randn(o, 4, generator=g) * 0.3)
          for layer, (o, i) in shapes.items()}
    peft = {f"transformer.{k}.lora_{x}.weight": m for k, (a, b) in ab.items() for x, m in (("A", a), ("B", b))}
    # kohya: dotted path as underscores, lora_down/lora_up, alpha 2 at rank 4 (the up matrix counts half)
    kohya = {f"lora_unet_{k.replace('.', '_')}.{n}": m for k, (a, b) in ab.items()
             for n, m in (("lora_down.weight", a), ("lora_up.weight", b * 2), ("alpha", torch.tensor(2.0)))}
    # ComfyUI's model: gate and up projections fused (gate rows first), one rank-8 LoRA on both
    fused = {f"diffusion_model.{k}.lora_{x}.weight": m for k, (a, b) in ab.items() if "img_mlp.gate" not in k and
             "img_mlp.proj" not in k for x, m in (("A", a), ("B", b))}
    (ga, gb), (pa, pb) = ab["transformer_blocks.1.img_mlp.gate_layer"], ab["transformer_blocks.1.img_mlp.proj"]
    fused["diffusion_model.transformer_blocks.1.img_mlp.gate_up.lora_A.weight"] = torch.cat([ga, pa])
    fused["diffusion_model.transformer_blocks.1.img_mlp.gate_up.lora_B.weight"] = torch.block_diag(gb, pb)
    files = {}
    for name, state in (("peft", peft), ("kohya", kohya), ("comfyui_fused", fused)):
        files[name] = tmp_path / f"qwen21_{name}.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(files[name]))
    return peft, files


def _denoise(pipe):
    """The transformer's prediction for a fixed latent and text (2x2 latent pixels after 5 prompt tokens)."""
    g = torch.Generator().manual_seed(1)
    hs, text = torch.randn(1, 4, 64, generator=g), torch.randn(1, 5, 64, generator=g)
    mask = torch.cat([torch.zeros(1, 5, dtype=torch.bool), torch.ones(1, 1, dtype=torch.bool)], 1)
    with torch.no_grad():
        return pipe.transformer(hidden_states=hs, timestep=torch.tensor([0.5]), encoder_hidden_states=text,
                                img_mask=mask, img_shapes=[[(1, 2, 2)]], return_dict=False)[0]


def test_qwen_image_21_loras_as_diffusers_loads_them(qwen21, tmp_path):
    """A Qwen-Image 2.1 LoRA in diffusers' (PEFT) names, kohya's (lora_unet_, with alpha) and ComfyUI's (diffusion_model.,
    the SwiGLU's gate_up fused) changes the transformer as QwenImage21Pipeline.load_lora_weights does with the PEFT
    file, at the strength given. kohya's failed (diffusers' Qwen-Image converter mangled gate_layer and txt_in.in_layer)
    and ComfyUI's fused layer was dropped with a warning. A Qwen-Image 1.x LoRA is refused by name."""
    from diffusers import QwenImage21Pipeline
    from graph_engine import NodeError
    from safetensors.torch import save_file
    from nodes.generate.adapters.qwenimage21 import processor
    from nodes.generate.detect import detect_file
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager, activate_loras
    folder = qwen21 / "Qwen-Image-2.1"
    peft, files = _lora_layouts(tmp_path)
    ref = QwenImage21Pipeline.from_pretrained(str(folder), local_files_only=True,
                                              processor=processor(folder / "processor"))
    plain = _denoise(ref)
    ref.load_lora_weights(peft, adapter_name="ref")
    ref.set_adapters(["ref"], [0.7])
    want = _denoise(ref)
    assert float((want - plain).abs().max()) > 1e-2
    model = ModelManager().load("qwenimage21", str(folder))
    for name, path in files.items():
        assert detect_file(path).family == "qwenimage21", name
        activate_loras(model.pipe, add_lora(model, str(path), 0.7).loras)
        _close(want, _denoise(model.pipe))
    old = tmp_path / "qwen_image_lora.safetensors"
    save_file({"transformer_blocks.0.img_mod.1.lora_A.weight": torch.zeros(4, 64),
               "transformer_blocks.0.img_mod.1.lora_B.weight": torch.zeros(384, 4)}, str(old))
    with pytest.raises(NodeError, match=r"qwen_image_lora.safetensors is a Qwen-Image \(image\) LoRA.*this model is "
                                        r"Qwen-Image 2.1"):
        add_lora(model, str(old), 1.0)


def test_qwen_image_21_comfyui_files_sample_as_the_folder(qwen21, tmp_path, monkeypatch):
    """ComfyUI's transformer file (qwen_image_2.1_*_bf16 in diffusion_models/: the SwiGLU's gate and up fused) and
    Qwen3-VL file (qwen3vl_8b_* in text_encoders/: transformers 4's names, no head; ComfyUI's CLIPLoader type
    qwen_image) were named and refused. load.diffusion_model and load.text_encoder load them (the fused layer split as
    diffusers' single-file converter splits it; the encoder's tokenizer from a folder named after the file), and with
    the folder's VAE a workflow at cfg 3 samples QwenImage21Pipeline's latent."""
    from graph_engine.api import Session, load_workflow
    from nodes.generate.model_manager import describe_model
    folder = qwen21 / "Qwen-Image-2.1"
    got = describe_model(qwen21 / "models" / "diffusion_models" / "qwen_image_2.1_tiny_bf16.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("qwenimage21", "diffusion_model", "yes"), got
    got = describe_model(qwen21 / "models" / "text_encoders" / "qwen3vl_tiny_bf16.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("qwen3vl", "text_encoder", "yes"), got
    monkeypatch.setenv("KINOGRAPH_MODELS", str(qwen21 / "models"))
    wf = tmp_path / "qwen21_file.kino.yaml"
    wf.write_text(f"""kinograph: 1
nodes:
  folder: {{type: load.model, params: {{path: {folder}}}}}
  unet: {{type: load.diffusion_model, params: {{name: qwen_image_2.1_tiny_bf16.safetensors}}}}
  clip: {{type: load.text_encoder, params: {{name: qwen3vl_tiny_bf16.safetensors, type: qwen_image}}}}
  pos: {{type: encode.text, params: {{text: a cat}}, inputs: {{text_encoder: clip.text_encoder}}}}
  neg: {{type: encode.text, params: {{text: "{NEGATIVE}"}}, inputs: {{text_encoder: clip.text_encoder}}}}
  latent: {{type: latent.empty, params: {{width: {W}, height: {H}, frames: 1}}, inputs: {{vae: folder.vae}}}}
  guided: {{type: generate.sample, params: {{steps: 2, seed: 7, cfg: 3.0, sampler: euler}},
            inputs: {{model: unet.model, positive: pos.positive, negative: neg.positive, latent: latent.latent}}}}
""", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    _close(_reference(folder, NEGATIVE, 3.0)[0], run.outputs["guided"]["latent"].samples[:, :, 0])
    # the VAE file alone is named for what it is, with the way to use it ("is not a model Kinograph recognises
    # (ComfyUI's Qwen-Image 2.1 VAE file ...), not a VAE" before)
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.qwen_edit import encode_edit
    from nodes.generate.split import load_vae
    mm = ModelManager()
    with pytest.raises(NodeError, match=r"^diffusion_pytorch_model.safetensors: Qwen-Image 2.1's VAE\. .*load\.model"):
        load_vae(mm, str(folder / "vae" / "diffusion_pytorch_model.safetensors"), "cpu")
    # 2.1's picture edits are read as 2.1's, not as a Qwen-Image-Edit's ("is qwenimage21's: load
    # qwen_2.5_vl_7b_fp8_scaled" before); without the VAE they cannot be
    te = mm.components(mm.load("qwenimage21", str(folder)))["text_encoder"]
    with pytest.raises(NodeError, match="Qwen-Image 2.1 reads each picture to edit as its latent.*connect the VAE"):
        encode_edit(te, None, "make it red", [np.zeros((32, 32, 3), np.uint8)])


def test_convrot_files_sample_as_the_bf16_file(qwen21, tmp_path, monkeypatch):
    """ComfyUI's int8_convrot files (qwen_image_2.1_int8_convrot and qwen3vl_8b_int8_convrot, the files its
    templates download: int8 weights of a Hadamard-rotated matrix, one scale a row) were refused, pointing at bf16
    files the user does not have. The tiny transformer and text encoder saved as ComfyUI writes such files load with
    load.diffusion_model and load.text_encoder, and a workflow at cfg 3 samples the bf16 files' latent within int8
    error; `kinograph info` says it loads. A tag of a format Kinograph does not
    read, and NVFP4, are still named there."""
    from graph_engine.api import Session, load_workflow
    from safetensors.torch import load_file, save_file
    from nodes.generate.model_manager import describe_model
    import comfy_convrot as cr
    folder = qwen21 / "Qwen-Image-2.1"
    models = tmp_path / "models"
    (models / "diffusion_models").mkdir(parents=True)
    (models / "text_encoders").mkdir()
    for held in (qwen21 / "models" / "text_encoders").iterdir():
        (models / "text_encoders" / held.name).symlink_to(held)
    bf16_file = qwen21 / "models" / "diffusion_models" / "qwen_image_2.1_tiny_bf16.safetensors"
    (models / "diffusion_models" / bf16_file.name).symlink_to(bf16_file)
    bf16 = load_file(str(bf16_file))
    # the tiny widths (64, 128) take ComfyUI's rotation in groups of 16 rather than its 256; the tag says so
    quantised = cr.quantise_file_state(bf16, 16)
    assert sum(k.endswith(".comfy_quant") and b'"convrot"' in bytes(v.tolist()) for k, v in quantised.items()) > 10
    path = models / "diffusion_models" / "qwen_image_2.1_tiny_int8_convrot.safetensors"
    save_file(quantised, str(path))
    # ... and its Qwen3-VL as qwen3vl_8b_int8_convrot (its language model; the tokenizer in a folder named after it)
    te = qwen21 / "models" / "text_encoders" / "qwen3vl_tiny_bf16"
    te_quantised = cr.quantise_file_state(load_file(str(te.with_suffix(".safetensors"))), 16, prefix="model.")
    assert sum(k.endswith(".comfy_quant") and b'"convrot"' in bytes(v.tolist()) for k, v in te_quantised.items()) > 10
    save_file(te_quantised, str(models / "text_encoders" / "qwen3vl_tiny_int8_convrot.safetensors"))
    (models / "text_encoders" / "qwen3vl_tiny_int8_convrot").symlink_to(te)
    got = describe_model(path)
    assert (got["family"], got["role"], got["loads"]) == ("qwenimage21", "diffusion_model", "yes"), got
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    monkeypatch.chdir(tmp_path)
    latents = {}
    for name, encoder in ((bf16_file.name, "qwen3vl_tiny_bf16"), (path.name, "qwen3vl_tiny_int8_convrot")):
        wf = tmp_path / "qwen21_convrot.kino.yaml"
        wf.write_text(f"""kinograph: 1
nodes:
  folder: {{type: load.model, params: {{path: {folder}}}}}
  unet: {{type: load.diffusion_model, params: {{name: {name}}}}}
  clip: {{type: load.text_encoder, params: {{name: {encoder}.safetensors, type: qwen_image}}}}
  pos: {{type: encode.text, params: {{text: a cat}}, inputs: {{text_encoder: clip.text_encoder}}}}
  neg: {{type: encode.text, params: {{text: "{NEGATIVE}"}}, inputs: {{text_encoder: clip.text_encoder}}}}
  latent: {{type: latent.empty, params: {{width: {W}, height: {H}, frames: 1}}, inputs: {{vae: folder.vae}}}}
  guided: {{type: generate.sample, params: {{steps: 2, seed: 7, cfg: 3.0, sampler: euler}},
            inputs: {{model: unet.model, positive: pos.positive, negative: neg.positive, latent: latent.latent}}}}
""", encoding="utf-8")
        run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
        assert run.ok, run.failed
        latents[name] = run.outputs["guided"]["latent"].samples
    want, got = latents[bf16_file.name], latents[path.name]
    err = float((want - got).abs().max() / want.abs().max())
    assert 0 < err < 2e-2, err

    layer = next(k[: -len(".weight")] for k, v in bf16.items() if k.endswith(".weight") and v.ndim == 2)
    for kind, note in {"awq_w4a16": f"{layer} is stored in ComfyUI's awq_w4a16 format",
                       "nvfp4": f"{layer} is stored in a 4-bit format (NVFP4"}.items():
        damaged = dict(bf16, **{f"{layer}.weight_scale": torch.ones(bf16[f"{layer}.weight"].shape[0])})
        if kind == "nvfp4":
            damaged[f"{layer}.weight_scale_2"] = torch.ones(1)
        else:
            damaged[f"{layer}.comfy_quant"] = cr.tag({"format": kind})
        save_file(damaged, str(path))
        got = describe_model(path)
        assert (got["family"], got["loads"]) == ("qwenimage21", "no") and note in got["note"], (kind, got)

