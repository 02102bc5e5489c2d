"""Qwen-Image keyframes: the files a Qwen-Image user holds (the Qwen/Qwen-Image diffusers folder; ComfyUI's split
files: the transformer in diffusion_models/, Qwen2.5-VL as qwen_2.5_vl_7b_fp8_scaled in text_encoders/ with
ComfyUI's bundled tokenizer, qwen_image_vae in vae/) load, sample and give what diffusers' own QwenImagePipeline
gives for the same weights and seed; ComfyUI's Qwen-Image text-to-image template imports with every node mapped and
runs to ComfyUI's sampling (true CFG on the simple schedule at ModelSamplingAuraFlow's shift)."""
import json
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

W, H = 64, 48


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from comfy_layouts import built
    from tiny_qwen import build_qwen
    yield from built(build_qwen, tmp_path_factory)


@pytest.fixture
def models(qwen, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_MODELS", str(qwen / "models"))
    return qwen / "models"


def _reference(folder, steps=3, seed=7):
    """QwenImagePipeline's own latent ([1, 16, h, w]) for "a cat", no negative (true_cfg_scale 1)."""
    from diffusers import QwenImagePipeline
    ref = QwenImagePipeline.from_pretrained(str(folder), local_files_only=True)
    packed = ref("a cat", width=W, height=H, num_inference_steps=steps, true_cfg_scale=1.0,
                 generator=torch.Generator().manual_seed(seed), output_type="latent").images
    return ref._unpack_latents(packed, H, W, ref.vae_scale_factor)[:, :, 0]


def _sample(model, text_encoder, vae, steps=3, seed=7):
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    pos = encode_prompt(text_encoder, "a cat")
    return run_sampling(model, pos, None, empty_latent(vae, 1, W, H, 8.0), steps=steps, cfg=1.0,
                        sampler="euler", seed=seed).samples[:, :, 0]


def _close(want, got):
    err = float((want - got).abs().max() / want.abs().max())
    assert err < 1e-4, err


def test_qwen_image_files_are_detected_and_listed_as_loading(models):
    """The transformer had no known key pattern, the folder was 'unknown', and Qwen2.5-VL was taken for
    HunyuanVideo's llava-llama-3 (and listed as loading)."""
    from nodes.generate.model_manager import describe_model
    got = {f: describe_model(models / f) for f in ("diffusion_models/qwen_image_tiny_bf16.safetensors",
                                                   "text_encoders/qwen_2.5_vl_tiny_fp8_scaled.safetensors")}
    assert [(g["family"], g["role"], g["precision"], g["loads"]) for g in got.values()] == [
        ("qwenimage", "diffusion_model", "bf16", "yes"), ("qwen25vl", "text_encoder", "fp8_scaled", "yes")], got
    assert describe_model(models.parent / "Qwen-Image")["family"] == "qwenimage"


def test_qwen_image_diffusers_folder_matches_pipeline(models):
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager()
    h = mm.load("qwenimage", str(models.parent / "Qwen-Image"))
    p = mm.components(h)
    _close(_reference(models.parent / "Qwen-Image"), _sample(h, p["text_encoder"], p["vae"]))


def test_qwen_image_comfyui_split_files_match_pipeline(models):
    """The bf16 transformer, the fp8_scaled Qwen2.5-VL (weights x scale_weight, transformers 4's names, the vision
    tower and head left out) with the tokenizer ComfyUI bundles, and qwen_image_vae (a Wan 2.1 VAE file, taken as
    Qwen-Image's by its name): the same latent as the diffusers folder."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    mm = ModelManager()
    model = load_diffusion_model(mm, "qwen_image_tiny_bf16.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "qwen_2.5_vl_tiny_fp8_scaled.safetensors", "", "auto", "cpu")
    vae = load_vae(mm, "qwen_image_vae.safetensors", "cpu")
    assert (model.family, te.family, vae.family) == ("qwenimage", "qwenimage", "qwenimage")
    _close(_reference(models.parent / "Qwen-Image"), _sample(model, te, vae))


def test_qwen_image_vae_decodes_as_the_pipeline(models):
    """latent -> picture through qwen_image_vae.safetensors: QwenImagePipeline's decode (latent x std + mean through
    AutoencoderKLQwenImage, one frame)."""
    from diffusers import AutoencoderKLQwenImage
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.adapters import get_adapter
    from nodes.generate.split import load_vae
    ref = AutoencoderKLQwenImage.from_pretrained(str(models.parent / "Qwen-Image" / "vae"))
    z = torch.randn(1, 16, 1, 6, 8, generator=torch.Generator().manual_seed(1))
    mean = torch.tensor(ref.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(ref.config.latents_std).view(1, 16, 1, 1, 1)
    with torch.no_grad():
        want = ref.decode(z * std + mean, return_dict=False)[0][:, :, 0]
    vae = load_vae(ModelManager(), "qwen_image_vae.safetensors", "cpu")
    with torch.no_grad():
        _close(want, get_adapter("qwenimage").vae_decode(vae.pipe, z)[:, :, 0])


def comfy_simple_sigmas(steps: int, shift: float):
    """ComfyUI's simple schedule on a discrete flow model (Qwen-Image's ModelSamplingDiscreteFlow, 1000 levels
    shift t / (1 + (shift - 1) t)): every (1000 / steps)-th level, noisiest first, then 0 (written out from ComfyUI's
    formulas, not Kinograph's code)."""
    table = [shift * (i / 1000) / (1 + (shift - 1) * (i / 1000)) for i in range(1, 1001)]
    return [table[-(1 + int(i * 1000 / steps))] for i in range(steps)] + [0.0]


def _comfy_reference(folder, positive, negative, cfg, sigmas, seed):
    """ComfyUI's KSampler (euler) on Qwen-Image, with diffusers' own parts: the prompts through QwenImagePipeline's
    encoder, its seeded noise, and at each level the plain CFG mix u + cfg (c - u) of the transformer's two
    predictions (ComfyUI does not rescale the mix to the positive's norm, as QwenImagePipeline does)."""
    from diffusers import QwenImagePipeline
    ref = QwenImagePipeline.from_pretrained(str(folder), local_files_only=True)
    with torch.no_grad():
        pe, pm = ref.encode_prompt(positive, device="cpu")
        ne, nm = ref.encode_prompt(negative, device="cpu")
        x = ref.prepare_latents(1, 16, H, W, torch.float32, "cpu", torch.Generator().manual_seed(seed))
        shapes = [[(1, H // 16, W // 16)]]
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            t = torch.tensor([s], dtype=torch.float32)
            c = ref.transformer(hidden_states=x, timestep=t, encoder_hidden_states=pe, encoder_hidden_states_mask=pm,
                                img_shapes=shapes, return_dict=False)[0]
            u = ref.transformer(hidden_states=x, timestep=t, encoder_hidden_states=ne, encoder_hidden_states_mask=nm,
                                img_shapes=shapes, return_dict=False)[0]
            x = x + (s_next - s) * (u + cfg * (c - u))
    return ref._unpack_latents(x, H, W, ref.vae_scale_factor)[:, :, 0]


def test_comfyui_qwen_image_template_imports_and_runs(models, tmp_path, monkeypatch):
    """ComfyUI's own Qwen-Image template (tests/data/qwen): UNETLoader, CLIPLoader (type qwen_image), VAELoader,
    ModelSamplingAuraFlow (3.5; it was unmapped), EmptySD3LatentImage, positive and negative CLIPTextEncode, KSampler
    (euler, simple, cfg 4). Every node maps, and under the template's own file names (at 64x48, 3 steps) the latent
    is ComfyUI's sampling of diffusers' parts: the template's seed, true CFG with its negative prompt (a prompt of
    another length: the padding masked), on the simple schedule at shift 3.5."""
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from comfy_layouts import link_as
    for name, tiny in (("diffusion_models/qwen_image_fp8_e4m3fn.safetensors", "qwen_image_tiny_bf16.safetensors"),
                       ("text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors",
                        "qwen_2.5_vl_tiny_fp8_scaled.safetensors")):
        link_as(models / name, models / name.split("/")[0] / tiny)
    data = json.loads((ROOT / "tests" / "data" / "qwen" / "image_qwen_image.json").read_text("utf-8"))
    res = import_data(data)
    statuses = {e.class_type: e.status for e in res.report.entries.values()}
    assert "unmapped" not in statuses.values(), statuses
    yaml = res.yaml.replace("width: 1328", f"width: {W}").replace("height: 1328", f"height: {H}")
    yaml = yaml.replace("steps: 20", "steps: 3")
    assert f"width: {W}" in yaml and "steps: 3" in yaml and "shift: 3.5" in yaml, yaml
    wf = tmp_path / "qwen_image.kino.yaml"
    wf.write_text(yaml, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    got = next(v["latent"] for k, v in run.outputs.items() if k.startswith("k_sampler")).samples[:, :, 0]
    texts = {n["title"]: n["widgets_values"][0] for n in data["nodes"] if n["type"] == "CLIPTextEncode"}
    seed, _, _, cfg = next(n for n in data["nodes"] if n["type"] == "KSampler")["widgets_values"][:4]
    want = _comfy_reference(models.parent / "Qwen-Image", texts["CLIP Text Encode (Positive Prompt)"],
                            texts["CLIP Text Encode (Negative Prompt)"], cfg, comfy_simple_sigmas(3, 3.5), seed)
    _close(want, got)
    assert (tmp_path / "out").is_dir() and any((tmp_path / "out").rglob("*.png"))


def test_qwen_image_2_1_is_told_apart(models, tmp_path):
    """Qwen-Image 2.1 (a norm inside txt_in) is detected as its own model, not as Qwen-Image (it loads: see
    test_qwen_image_21.py; Qwen-Image-Edit's files: test_qwen_image_edit.py)."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import describe_model
    v21 = tmp_path / "qwen_image_2.1_bf16.safetensors"
    save_file({"img_in.weight": torch.zeros(8, 64), "txt_in.text_norm.weight": torch.zeros(8)}, str(v21))
    got = describe_model(v21)
    assert (got["family"], got["role"]) == ("qwenimage21", "diffusion_model"), got


def test_qwen_text_encoder_given_another_family_is_named(models):
    """Qwen2.5-VL loaded with type wan (a CLIPLoader left on another type): the message names what it is and the
    type to set, before anything is built."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    with pytest.raises(NodeError) as e:
        load_text_encoder(ModelManager(), "qwen_2.5_vl_tiny_fp8_scaled.safetensors", "", "wan", "cpu")
    msg = str(e.value)
    assert "qwen25vl" in msg and "set type qwen_image" in msg, msg


def test_qwen_image_lightning_lora_changes_what_merging_it_does(models, tmp_path):
    """A LoRA in the Qwen-Image-Lightning files' layout (lora_down / lora_up / alpha on diffusers' layer names) was
    taken for LTX's or CogVideoX's ('transformer_blocks'); it is detected as Qwen-Image's, and lora.image on the
    split-file model samples what QwenImagePipeline samples with W + strength (alpha / rank) up @ down merged by
    hand."""
    from diffusers import QwenImagePipeline
    from safetensors.torch import save_file
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model
    layers = ("transformer_blocks.0.attn.to_q", "transformer_blocks.1.img_mlp.net.0.proj",
              "transformer_blocks.0.img_mod.1", "transformer_blocks.1.txt_mlp.net.2")
    ref = QwenImagePipeline.from_pretrained(str(models.parent / "Qwen-Image"), local_files_only=True)
    g = torch.Generator().manual_seed(3)
    lora, rank, alpha, strength = {}, 4, 2.0, 0.8
    for name in layers:
        w = ref.transformer.get_submodule(name).weight
        lora[f"{name}.lora_down.weight"] = torch.randn(rank, w.shape[1], generator=g) * 0.3
        lora[f"{name}.lora_up.weight"] = torch.randn(w.shape[0], rank, generator=g) * 0.3
        lora[f"{name}.alpha"] = torch.tensor(alpha)
    path = models / "loras" / "Qwen-Image-Lightning-8steps-V1.0-tiny.safetensors"
    path.parent.mkdir(exist_ok=True)
    save_file(lora, str(path))
    got_det = describe_model(path)
    assert (got_det["family"], got_det["loads"]) == ("qwenimage", "yes"), got_det
    with torch.no_grad():
        for name in layers:
            ref.transformer.get_submodule(name).weight += strength * alpha / rank * (
                lora[f"{name}.lora_up.weight"] @ lora[f"{name}.lora_down.weight"])
        packed = ref("a cat", width=W, height=H, num_inference_steps=3, true_cfg_scale=1.0,
                     generator=torch.Generator().manual_seed(7), output_type="latent").images
    want = ref._unpack_latents(packed, H, W, ref.vae_scale_factor)[:, :, 0]
    mm = ModelManager()
    model = add_lora(load_diffusion_model(mm, "qwen_image_tiny_bf16.safetensors", "default", "cpu"), path.name, strength)
    h = mm.load("qwenimage", str(models.parent / "Qwen-Image"))
    p = mm.components(h)
    _close(want, _sample(model, p["text_encoder"], p["vae"]))


def test_qwen_image_transformer_alone_tells_what_is_missing(models, tmp_path):
    """load.qwenimage given only the transformer file: its text_encoder and vae are empty, and the log names the
    ComfyUI files to load for them (the run then stops at the node that needs one, naming the empty input)."""
    from graph_engine.api import Session, load_workflow
    wf = tmp_path / "qwen.yaml"
    wf.write_text("""kinograph: 1
nodes:
  load: {type: load.qwenimage, params: {path: qwen_image_tiny_bf16.safetensors}}
  prompt: {type: encode.text, params: {text: a cat}, inputs: {text_encoder: load.text_encoder}}
""")
    logs = []
    res = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False,
                                    on_event=lambda e: logs.append(str(e.get("message", ""))))
    assert not res.ok and "input 'text_encoder' is empty" in res.failed["prompt"], res.failed
    note = next((m for m in logs if "holds the denoiser alone" in m), "")
    assert "qwen_2.5_vl_7b_fp8_scaled.safetensors, type qwen_image" in note and "qwen_image_vae" in note, logs


# -- InstantX's Qwen-Image ControlNets ---------------------------------------------------------------------------------
def _cn_picture():
    """A control picture with edges and a gradient, so it encodes to a latent unlike the noise."""
    import numpy as np
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([xx * 4, yy * 5, ((xx // 8 + yy // 8) % 2) * 255], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_qwen_image_controlnet_steers_as_the_diffusers_pipeline(models, monkeypatch):
    """An InstantX union net applied twice on the ComfyUI split files: as the file (diffusers' names, in controlnet/) at
    0.7 to a picture, as the diffusers folder at 0.4 to its negative: QwenImageControlNetPipeline's latent with the union given both pictures
    (QwenImageMultiControlNetModel) within 1e-4, while the nets move the picture by orders more; one layer steers
    both of the transformer's blocks. Its inpainting sibling (more input channels) and a mode are refused by name. It
    was refused: "qwenimage ControlNets (instantx) are not supported"."""
    from PIL import Image
    from safetensors.torch import save_file
    from diffusers import QwenImageControlNetPipeline, QwenImageMultiControlNetModel
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from tiny_qwen import controlnet
    cn = models / "controlnet"
    cn.mkdir(exist_ok=True)
    net = controlnet(5)
    save_file({k: v.bfloat16().contiguous() for k, v in net.state_dict().items()}, str(cn / "qwen_union_tiny.safetensors"))
    net.save_pretrained(str(cn / "qwen_union_tiny"))
    inpaint = dict(net.state_dict(), **{"controlnet_x_embedder.weight": torch.zeros(64, 68)})
    save_file(inpaint, str(cn / "qwen_inpaint_tiny.safetensors"))
    damaged = dict(net.state_dict(), **{"transformer_blocks.0.attn.to_k.weight": torch.zeros(8, 8)})
    save_file(damaged, str(cn / "qwen_damaged_tiny.safetensors"))
    save_file({k: v for k, v in net.state_dict().items() if k != "txt_in.weight"},
              str(cn / "qwen_cut_tiny.safetensors"))
    assert describe_model(cn / "qwen_union_tiny.safetensors")["loads"] == "yes"
    mm = ModelManager()
    model = load_diffusion_model(mm, "qwen_image_tiny_bf16.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "qwen_2.5_vl_tiny_fp8_scaled.safetensors", "", "auto", "cpu")
    vae = load_vae(mm, "qwen_image_vae.safetensors", "cpu")
    picture, negative = _cn_picture(), 255 - _cn_picture()
    for frame, strength, path in ((picture, 0.7, "qwen_union_tiny.safetensors"), (negative, 0.4, "qwen_union_tiny")):
        model = apply_control(mm, model, Clip.from_array(frame[None], 8.0), path, strength, "none", 100, 200, vae=vae)
    got = _sample(model, te, vae)
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mean)
    ref = QwenImageControlNetPipeline.from_pretrained(str(models.parent / "Qwen-Image"), local_files_only=True,
                                                      controlnet=QwenImageMultiControlNetModel([net]))
    packed = ref("a cat", width=W, height=H, num_inference_steps=3, true_cfg_scale=1.0,
                 control_image=[Image.fromarray(picture), Image.fromarray(negative)],
                 controlnet_conditioning_scale=[0.7, 0.4], generator=torch.Generator().manual_seed(7),
                 output_type="latent").images
    want = ref._unpack_latents(packed, H, W, ref.vae_scale_factor)[:, :, 0]
    plain = _reference(models.parent / "Qwen-Image")
    err = lambda a, b: float((a - b).abs().max() / a.abs().max())  # noqa: E731
    assert err(want, got) < 1e-4 and err(want, plain) > 1e-2, (err(want, got), err(want, plain))
    clip = Clip.from_array(picture[None], 8.0)
    with pytest.raises(NodeError, match="qwen_inpaint_tiny.safetensors: an InstantX Qwen-Image inpainting ControlNet "
                                        r"\(68 input channels"):
        apply_control(mm, model, clip, "qwen_inpaint_tiny.safetensors", 1.0, "none", 100, 200, vae=vae)
    # a tensor of another size is named (it was torch's size-mismatch RuntimeError)
    with pytest.raises(NodeError, match=r"qwen_damaged_tiny.safetensors, a Qwen-Image ControlNet, do not fit .*"
                                        r"another size of transformer_blocks.0.attn.to_k.weight.* damaged"):
        apply_control(mm, model, clip, "qwen_damaged_tiny.safetensors", 1.0, "none", 100, 200, vae=vae)
    with pytest.raises(NodeError, match="qwen_cut_tiny.safetensors lacks txt_in.weight, which a Qwen-Image ControlNet "
                                        "has: the file is damaged"):
        apply_control(mm, model, clip, "qwen_cut_tiny.safetensors", 1.0, "none", 100, 200, vae=vae)
    with pytest.raises(NodeError, match="is told no mode .* set mode to auto"):
        apply_control(mm, model, clip, "qwen_union_tiny.safetensors", 1.0, "none", 100, 200, mode="depth", vae=vae)
