"""IP-Adapter: the files users have (h94's keys, ComfyUI_IPAdapter_plus's names), the same sampling as diffusers' own
IP-Adapter path on tiny random weights, runs without it unchanged, and the ComfyUI nodes imported and run."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from graph_engine import NodeError


def _vision(path):
    """A tiny CLIP vision tower with its projection, heads as ViT-H's config counts them (16), saved as ComfyUI keeps
    CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors (transformers' keys)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    torch.manual_seed(3)
    m = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, projection_dim=24, num_hidden_layers=2,
                                                       num_attention_heads=16, image_size=32, patch_size=4,
                                                       intermediate_size=37, hidden_act="gelu", layer_norm_eps=1e-5))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    return m.eval()


def _cross_widths(unet):
    """Each cross-attention layer's width, in the order IP-Adapter files number them."""
    mods = dict(unet.named_modules())
    return [mods[n[:-len(".processor")]].to_k.out_features for n in unet.attn_processors
            if not n.endswith("attn1.processor")]


def _ipadapter_file(path, unet, kind, features, seed=5):
    """An IP-Adapter in h94's published layout: image_proj.* (plain: proj + norm; plus: the Resampler's latents,
    proj_in/out, norm_out, layers.N.0 attention, layers.N.1 feed-forward) and ip_adapter.{1,3,5...}.to_k_ip/to_v_ip."""
    g = torch.Generator().manual_seed(seed)
    ctx = unet.config.cross_attention_dim

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.3
    if kind == "plain":
        proj = {"proj.weight": r(4 * ctx, features), "proj.bias": r(4 * ctx), "norm.weight": 1 + r(ctx),
                "norm.bias": r(ctx)}
    else:
        dim = 64
        proj = {"latents": r(1, 16, dim), "proj_in.weight": r(dim, features), "proj_in.bias": r(dim),
                "proj_out.weight": r(ctx, dim), "proj_out.bias": r(ctx), "norm_out.weight": 1 + r(ctx),
                "norm_out.bias": r(ctx)}
        for i in range(4):
            proj.update({f"layers.{i}.0.norm1.weight": 1 + r(dim), f"layers.{i}.0.norm1.bias": r(dim),
                         f"layers.{i}.0.norm2.weight": 1 + r(dim), f"layers.{i}.0.norm2.bias": r(dim),
                         f"layers.{i}.0.to_q.weight": r(64, dim), f"layers.{i}.0.to_kv.weight": r(128, dim),
                         f"layers.{i}.0.to_out.weight": r(dim, 64), f"layers.{i}.1.0.weight": 1 + r(dim),
                         f"layers.{i}.1.0.bias": r(dim), f"layers.{i}.1.1.weight": r(4 * dim, dim),
                         f"layers.{i}.1.3.weight": r(dim, 4 * dim)})
    state = {f"image_proj.{k}": v for k, v in proj.items()}
    for i, width in enumerate(_cross_widths(unet)):
        state[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] = r(width, ctx)
        state[f"ip_adapter.{2 * i + 1}.to_v_ip.weight"] = r(width, ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


REF = (np.arange(40 * 48 * 3).reshape(40, 48, 3) * 7 % 251).astype(np.uint8)


def _diffusers_embeds(pipe, vision, proc, kind):
    """The reference image's features as diffusers' pipeline encodes them (its encode_image), with the negative
    ComfyUI_IPAdapter_plus uses (zeros for the plain adapter, a black picture's hidden states for plus), shaped
    [negative + positive, 1 image, ...] for ip_adapter_image_embeds."""
    from PIL import Image
    pipe.image_encoder, pipe.feature_extractor = vision, proc
    pos, neg = pipe.encode_image(Image.fromarray(REF), "cpu", 1, output_hidden_states=kind != "plain")
    if kind != "plain":
        black = proc(images=[Image.new("RGB", (32, 32))], return_tensors="pt").pixel_values
        neg = vision(pixel_values=black, output_hidden_states=True).hidden_states[-2]
    return [torch.cat([neg, pos])[:, None]]


@pytest.mark.parametrize("family,kind", [("sd", "plain"), ("sdxl", "plus")])
def test_ipadapter_samples_as_diffusers_does(tmp_path, monkeypatch, family, kind):
    """SD 1.5 with a plain adapter and SDXL with a plus (Resampler) one, weight 0.7: the latent Kinograph samples is
    diffusers' own IP-Adapter pipeline's (load_ip_adapter on the same file, set_ip_adapter_scale), and a run without
    it is the plain model's, before and after."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from tiny_models import build_sd15_single_file, build_sdxl_single_file
    from nodes.generate.ipadapter import apply_ipadapter, load_ipadapter, reference
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_clip_vision
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    root = (build_sd15_single_file if family == "sd" else build_sdxl_single_file)(tmp_path)
    # Euler in both: Kinograph's euler sampler on the folder's own (default) noise levels is diffusers' Euler.
    sched = root / "diffusers" / "scheduler" / "scheduler_config.json"
    sched.write_text(json.dumps({**json.loads(sched.read_text()), "_class_name": "EulerDiscreteScheduler"}))
    index = root / "diffusers" / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "scheduler": ["diffusers", "EulerDiscreteScheduler"]}))
    models = root / "models"
    vision = _vision(models / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    mm = ModelManager()
    h = mm.load(family, str(root / "diffusers"))
    parts = mm.components(h)
    features = 24 if kind == "plain" else 32
    name = f"ip-adapter{'-plus' if kind == 'plus' else ''}_{'sd15' if family == 'sd' else 'sdxl_vit-h'}.safetensors"
    _ipadapter_file(models / "ipadapter" / name, h.denoiser, kind, features)
    encoder = load_clip_vision(mm, "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "auto", "cpu")
    model = apply_ipadapter(h, reference(load_ipadapter(mm, name), encoder, [REF], 0.7, 0.0, 1.0))
    pos, neg = encode_prompt(parts["text_encoder"], "a cat"), encode_prompt(parts["text_encoder"], "blurry")

    def sample(m):
        return run_sampling(m, pos, neg, empty_latent(parts["vae"], 1, 32, 32, 8.0), steps=3, cfg=5.0,
                            sampler="euler", seed=1).samples[:, :, 0]
    plain = sample(h)
    got = sample(model)
    assert torch.equal(sample(h), plain)            # the run with the adapter left the shared UNet as it was
    cls = StableDiffusionPipeline if family == "sd" else StableDiffusionXLPipeline
    kw = {"safety_checker": None} if family == "sd" else {}
    ref = cls.from_pretrained(str(root / "diffusers"), local_files_only=True, **kw)
    args = dict(negative_prompt="blurry", width=32, height=32, num_inference_steps=3, guidance_scale=5.0,
                output_type="latent")
    without = ref("a cat", generator=torch.Generator().manual_seed(1), **args).images
    ref.load_ip_adapter(str(models / "ipadapter"), subfolder="", weight_name=name, image_encoder_folder=None)
    ref.set_ip_adapter_scale(0.7)
    embeds = _diffusers_embeds(ref, vision, encoder.pipe.image_processor, kind)
    want = ref("a cat", ip_adapter_image_embeds=embeds, generator=torch.Generator().manual_seed(1), **args).images
    assert float((plain - without).abs().max() / without.abs().max()) < 1e-4
    assert float((want - without).abs().max() / without.abs().max()) > 1e-2    # the adapter changes the picture
    assert float((got - want).abs().max() / want.abs().max()) < 1e-4


def _simple_workflow():
    """ComfyUI_IPAdapter_plus's examples/IPAdapter_simple.json as published (its nodes, widget values and links; the
    layout left out): checkpoint -> IPAdapterUnifiedLoader PLUS -> IPAdapter (0.8, 0, 1) with a LoadImage -> KSampler."""
    def n(i, t, w, ins=(), outs=()):
        return {"id": i, "type": t, "pos": [0, 0], "mode": 0, "widgets_values": w,
                "inputs": [{"name": a, "type": b, "link": c} for a, b, c in ins],
                "outputs": [{"name": a, "type": b, "links": c} for a, b, c in outs]}
    nodes = [
        n(11, "IPAdapterUnifiedLoader", ["PLUS (high strength)"], [("model", "MODEL", 10), ("ipadapter", "IPADAPTER",
                                                                                             None)],
          [("model", "MODEL", [11]), ("ipadapter", "IPADAPTER", [12])]),
        n(4, "CheckpointLoaderSimple", ["sd15/realisticVisionV51_v51VAE.safetensors"], (),
          [("MODEL", "MODEL", [10]), ("CLIP", "CLIP", [3, 5]), ("VAE", "VAE", [8])]),
        n(12, "LoadImage", ["warrior_woman.png", "image"], (), [("IMAGE", "IMAGE", [17]), ("MASK", "MASK", None)]),
        n(3, "KSampler", [0, "fixed", 30, 6.5, "dpmpp_2m", "karras", 1],
          [("model", "MODEL", 13), ("positive", "CONDITIONING", 4), ("negative", "CONDITIONING", 6),
           ("latent_image", "LATENT", 2)], [("LATENT", "LATENT", [7])]),
        n(6, "CLIPTextEncode", ["closeup of a fierce warrior woman wearing a full armor at the end of a battle\n\n"
                                "high quality, detailed"], [("clip", "CLIP", 3)], [("CONDITIONING", "CONDITIONING", [4])]),
        n(10, "IPAdapter", [0.8, 0, 1], [("model", "MODEL", 11), ("ipadapter", "IPADAPTER", 12), ("image", "IMAGE", 17),
                                         ("attn_mask", "MASK", None)], [("MODEL", "MODEL", [13])]),
        n(9, "SaveImage", ["IPAdapter"], [("images", "IMAGE", 9)]),
        n(7, "CLIPTextEncode", ["blurry, noisy, messy, lowres, jpeg, artifacts, ill, distorted, malformed"],
          [("clip", "CLIP", 5)], [("CONDITIONING", "CONDITIONING", [6])]),
        n(8, "VAEDecode", [], [("samples", "LATENT", 7), ("vae", "VAE", 8)], [("IMAGE", "IMAGE", [9])]),
        n(5, "EmptyLatentImage", [512, 512, 1], (), [("LATENT", "LATENT", [2])])]
    links = [[2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"],
             [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
             [9, 8, 0, 9, 0, "IMAGE"], [10, 4, 0, 11, 0, "MODEL"], [11, 11, 0, 10, 0, "MODEL"],
             [12, 11, 1, 10, 1, "IPADAPTER"], [13, 10, 0, 3, 0, "MODEL"], [17, 12, 0, 10, 2, "IMAGE"]]
    return {"last_node_id": 13, "last_link_id": 17, "nodes": nodes, "links": links, "groups": [], "version": 0.4}


def test_the_ipadapter_simple_workflow_imports_exactly_and_runs(tmp_path, monkeypatch):
    """cubiq's own simple example: every node mapped exactly, and the imported graph runs on a tiny SD 1.5 checkpoint
    with the PLUS preset's files found by ComfyUI's names (ip-adapter-plus_sd15, CLIP-ViT-H-14-laion2B-s32B-b79K)."""
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from tiny_models import build_sd15_single_file
    res = import_data(_simple_workflow())
    assert {e.status for e in res.report.entries.values()} <= {"exact", "ui"}, res.report.text()
    root = build_sd15_single_file(tmp_path)
    models = root / "models"
    (models / "checkpoints" / "sd15").mkdir()
    (models / "checkpoints" / "sd15_tiny.safetensors").rename(models / "checkpoints" / "sd15" /
                                                             "realisticVisionV51_v51VAE.safetensors")
    (models / "checkpoints" / "sd15_tiny").rename(models / "checkpoints" / "sd15" / "realisticVisionV51_v51VAE")
    _vision(models / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel.from_pretrained(str(root / "diffusers" / "unet"))
    _ipadapter_file(models / "ipadapter" / "ip-adapter-plus_sd15.safetensors", unet, "plus", 32)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    monkeypatch.chdir(tmp_path)
    Image.fromarray(REF).save(tmp_path / "warrior_woman.png")
    wf = load_workflow(text=res.yaml)
    for node_id, node in wf.graph.nodes.items():
        if node.type == "generate.sample":
            wf.set(f"{node_id}.steps", 2)
        elif node.type == "latent.empty":
            wf.set(f"{node_id}.width", 32)
            wf.set(f"{node_id}.height", 32)
    got = Session(device="cpu").run(wf, use_cache=False)
    assert got.ok, got.failed
    saved = [r["path"] for r in got.results.values() if r and r.get("path")]
    assert saved and all(Path(p).stat().st_size > 0 for p in saved)


def test_faceid_is_refused_by_name(tmp_path):
    """An IP-Adapter FaceID file (its LoRA'd attention, ip_adapter.0.to_q_lora.*) and ComfyUI's FaceID nodes are
    named, with what to use instead, not loaded into wrong results."""
    from app.comfyui import import_data
    from nodes.generate.ipadapter import read_ipadapter
    path = tmp_path / "ip-adapter-faceid_sd15.bin"
    torch.save({"image_proj": {"proj.0.weight": torch.zeros(1024, 512), "proj.2.weight": torch.zeros(3072, 1024),
                               "norm.weight": torch.zeros(768)},
                "ip_adapter": {"0.to_q_lora.down.weight": torch.zeros(128, 320),
                               "1.to_k_ip.weight": torch.zeros(320, 768)}}, str(path))
    with pytest.raises(NodeError, match="ip-adapter-faceid_sd15.bin is an IP-Adapter FaceID model: it reads a face "
                                        "identity from InsightFace"):
        read_ipadapter(path)
    wf = _simple_workflow()
    wf["nodes"][0]["type"] = "IPAdapterUnifiedLoaderFaceID"
    entry = import_data(wf).report.entries["11"]
    assert entry.status == "unmapped" and "InsightFace" in entry.line() and "PLUS FACE" in entry.line()


def test_animatediff_takes_the_sd15_adapter(tmp_path, monkeypatch):
    """An SD 1.5 IP-Adapter on AnimateDiff: its layers are numbered over the image UNet's cross-attention (the motion
    modules' attention skipped, as diffusers counts them), so the file fits the motion UNet; the clip changes with the
    reference, and the model sampled without it afterwards is as before."""
    from diffusers import UNet2DConditionModel
    from tiny_models import build_animatediff
    from nodes.generate.ipadapter import apply_ipadapter, load_ipadapter, reference
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_clip_vision
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    folder = tmp_path / "ad"
    build_animatediff(folder)
    models = tmp_path / "models"
    _vision(models / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    mm = ModelManager()
    h = mm.load("animatediff", str(folder), motion_adapter=str(folder / "motion_adapter"))
    parts = mm.components(h)
    _ipadapter_file(models / "ipadapter" / "ip-adapter_sd15.safetensors",
                    UNet2DConditionModel.from_pretrained(str(folder / "unet")), "plain", 24)
    encoder = load_clip_vision(mm, "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "auto", "cpu")
    model = apply_ipadapter(h, reference(load_ipadapter(mm, "ip-adapter_sd15.safetensors"), encoder, [REF], 0.7,
                                         0.0, 1.0))
    pos, neg = encode_prompt(parts["text_encoder"], "a cat"), encode_prompt(parts["text_encoder"], "blurry")

    def sample(m):
        return run_sampling(m, pos, neg, empty_latent(parts["vae"], 4, 32, 32, 8.0), steps=2, cfg=5.0,
                            sampler="euler", seed=1).samples
    plain = sample(h)
    got = sample(model)
    assert torch.equal(sample(h), plain)
    assert float((got - plain).abs().max() / plain.abs().max()) > 1e-2
