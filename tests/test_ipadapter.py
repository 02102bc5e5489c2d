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
    """An IP-Adapter in h94's published layout for `unet` (_ipadapter_state), saved as .safetensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(_ipadapter_state(kind, features, _cross_widths(unet), unet.config.cross_attention_dim, seed), str(path))
    return path


def _ipadapter_state(kind, features, widths, ctx, seed=5):
    """h94's published layout: image_proj.* (plain: proj + norm; plus: the Resampler's latents, proj_in/out, norm_out,
    layers.N.0 attention, layers.N.1 feed-forward; full face: the MLP proj.0 / proj.2 and LayerNorm proj.3) and
    ip_adapter.{1,3,5...}.to_k_ip/to_v_ip, one pair per cross-attention layer `widths` wide; `features`: the CLIP
    vision width the projection reads."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.3
    if kind == "plain":
        proj = {"proj.weight": r(4 * ctx, features), "proj.bias": r(4 * ctx), "norm.weight": 1 + r(ctx),
                "norm.bias": r(ctx)}
    elif kind == "full":
        proj = {"proj.0.weight": r(features, features), "proj.0.bias": r(features), "proj.2.weight": r(ctx, features),
                "proj.2.bias": r(ctx), "proj.3.weight": 1 + r(ctx), "proj.3.bias": r(ctx)}
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
    for i, width in enumerate(widths):
        state[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] = r(width, ctx)
        state[f"ip_adapter.{2 * i + 1}.to_v_ip.weight"] = r(width, ctx)
    return state


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


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny models' operations are too small to share between threads: on a busy machine torch's thread pool
    made each network call several times slower (0.6 s against 0.09 s for the weight-type test's UNet)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """build(family): the tiny SD 1.5 or SDXL folders (tiny_models), built once for the tests that read them, with
    Euler as their scheduler: Kinograph's euler sampler on the folder's own (default) noise levels is diffusers'
    Euler."""
    from tiny_models import build_sd15_single_file, build_sdxl_single_file
    roots = {}

    def build(family):
        if family not in roots:
            root = (build_sd15_single_file if family == "sd" else build_sdxl_single_file)(
                tmp_path_factory.mktemp(family))
            sched = root / "diffusers" / "scheduler" / "scheduler_config.json"
            sched.write_text(json.dumps({**json.loads(sched.read_text()), "_class_name": "EulerDiscreteScheduler"}))
            index = root / "diffusers" / "model_index.json"
            index.write_text(json.dumps({**json.loads(index.read_text()),
                                         "scheduler": ["diffusers", "EulerDiscreteScheduler"]}))
            roots[family] = root
        return roots[family]
    return build


@pytest.mark.parametrize("family,kind", [("sd", "plain"), ("sdxl", "plus")])
def test_ipadapter_samples_as_diffusers_does(tiny, monkeypatch, family, kind):
    """SD 1.5 with a plain adapter and SDXL with a plus (Resampler) one, weight 0.7: the latent Kinograph samples is
    diffusers' own IP-Adapter pipeline's (load_ip_adapter on the same file, set_ip_adapter_scale), and a run without
    it is the plain model's, before and after."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from nodes.generate.ipadapter import apply_ipadapter, load_ipadapter, reference
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_clip_vision
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    root = tiny(family)
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


def test_a_projection_far_larger_than_its_file_is_refused_before_it_is_built(tmp_path):
    """diffusers sizes an IP-Adapter Plus projection from its tensors' shapes (the Resampler's width from latents'
    last one) and builds it before reading the file into it: a latents tensor 20,000 wide (a 320 KB file) asked for
    6.4 GB a layer. The projection is built on the meta device first and held to what the file holds."""
    from nodes.generate.ipadapter import read_ipadapter
    path = tmp_path / "ip-adapter-plus_sd15.safetensors"
    save_file({"image_proj.latents": torch.zeros(1, 4, 1000), "image_proj.proj_in.weight": torch.zeros(1, 8),
               "image_proj.proj_in.bias": torch.zeros(1), "image_proj.proj_out.weight": torch.zeros(8, 1),
               "image_proj.proj_out.bias": torch.zeros(8), "image_proj.norm_out.weight": torch.zeros(8),
               "image_proj.norm_out.bias": torch.zeros(8), "image_proj.layers.0.0.to_q.weight": torch.zeros(64, 1),
               "ip_adapter.1.to_k_ip.weight": torch.zeros(8, 8), "ip_adapter.1.to_v_ip.weight": torch.zeros(8, 8)},
              str(path))
    with pytest.raises(NodeError, match=r"ip-adapter-plus_sd15.safetensors: its image projection's tensor shapes make "
                                        r"a projection of [\d,]+ values or more, far more than the file's 4,105: the "
                                        r"file is damaged or made to fill memory"):
        read_ipadapter(path)


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


def _real_layout_unet(sdxl):
    """A tiny UNet with the real model's blocks (what the block-picking weight types count): SDXL's 11 transformers
    (two cross-attention levels, 2 + 2 down, 1 middle, 3 + 3 up; the deepest with 2 transformer blocks, as SDXL's
    deeper ones have several) or SD 1.5's 16 (three levels: 6 down, 1 middle, 9 up)."""
    from diffusers import UNet2DConditionModel
    torch.manual_seed(7)
    levels = 3 if sdxl else 4
    down = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D") if sdxl else \
        ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    up = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D") if sdxl else \
        ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
    return UNet2DConditionModel(block_out_channels=(8,) * levels, layers_per_block=2, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=down, up_block_types=up, cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4,
                                transformer_layers_per_block=(1, 1, 2) if sdxl else 1).eval()


def test_weight_types_and_scaling_are_diffusers_per_block_scales(tmp_path):
    """On UNets laid out as SDXL's and SD 1.5's, one network call with each weight type equals diffusers' IP-Adapter
    with set_ip_adapter_scale's per-block dict (InstantStyle's style {"up": {"block_0": [0, w, 0]}} and layout
    {"down": {"block_2": [0, w]}}, ComfyUI's curves and block weakening written over diffusers' block names); K+V with C
    penalty equals diffusers on a file whose to_k_ip / to_v_ip are scaled by weight x width / 1280; a composition
    picture apart from the style one (IPAdapterStyleComposition) equals InstantStyle's two adapters, one per picture
    and block; "style transfer precise" leaves the prompt's half as "style transfer" and changes the negative's."""
    from types import SimpleNamespace
    from diffusers.loaders.ip_adapter import IPAdapterMixin
    from safetensors.torch import load_file
    from nodes.generate.ipadapter import Reference, _Feed, feed_step, installed, read_ipadapter, tokens
    w, comp = 0.7, 1.3
    for sdxl in (True, False):
        unet = _real_layout_unet(sdxl)
        path = _ipadapter_file(tmp_path / f"ip{sdxl}.safetensors", unet, "plain", 24)
        adapter = read_ipadapter(path)
        feats, feats2 = torch.randn(2, 1, 24, generator=torch.Generator().manual_seed(2))
        x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
        text = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(4))
        neg, pos = object(), object()

        def ours(weight_type, scaling="V only", layout=None):
            ref = Reference(adapter, tokens(adapter, feats), tokens(adapter, torch.zeros_like(feats)), w,
                            weight_type=weight_type, scaling=scaling, composition=comp,
                            layout=None if layout is None else tokens(adapter, layout))
            handle = SimpleNamespace(option=lambda k: (ref,) if k == "ipadapter" else None, denoiser=unet, pipe=None,
                                     family="sdxl" if sdxl else "sd")
            feed = _Feed(1)
            feed_step(feed, handle, [neg, pos], neg, 0.5, lambda p: 1 - p, (0,), (8, 8))
            with installed(handle, feed), torch.no_grad():
                return unet(x, 500, encoder_hidden_states=text).sample

        def curve(f):
            """ComfyUI's factor f(transformer number, count, block) over SDXL's blocks as diffusers names them."""
            names = {"down": {"block_1": [0, 1], "block_2": [2, 3]}, "mid": 4,
                     "up": {"block_0": [5, 6, 7], "block_1": [8, 9, 10]}}
            return {k: (w * f(v, 11, "middle") if k == "mid" else
                        {b: [w * f(i, 11, "input" if k == "down" else "output") for i in idx] for b, idx in v.items()})
                    for k, v in names.items()}
        if sdxl:
            cases = {"style transfer": {"up": {"block_0": [0.0, w, 0.0]}},
                     "composition": {"down": {"block_2": [0.0, w]}},
                     "style and composition": {"down": {"block_2": [0.0, comp]}, "up": {"block_0": [0.0, w, 0.0]}},
                     "ease in": curve(lambda i, n, _: 0.05 + 0.95 * (1 - i / n)),
                     "strong middle": curve(lambda i, n, b: 1.0 if b == "middle" else 0.2)}
        else:
            cases = {"style transfer": {"down": {"block_0": w, "block_1": w},
                                        "up": {"block_1": [0.0, 0.0, w], "block_2": w, "block_3": w}}}
        got = {t: ours(t) for t in cases}
        if sdxl:
            got["penalty"] = ours("linear", "K+V w/ C penalty")
            got["two pictures"] = ours("style and composition", layout=feats2)
            precise, style = ours("style transfer precise"), got["style transfer"]
            assert torch.equal(precise[1], style[1]) and not torch.allclose(precise[0], style[0])
            with torch.no_grad():
                plain = unet(x, 500, encoder_hidden_states=text).sample

        state = load_file(str(path))
        nested = {part: {k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")}
                  for part in ("image_proj", "ip_adapter")}

        def loaded(count):
            unet2 = _real_layout_unet(sdxl)
            unet2._load_ip_adapter_weights([nested] * count)
            return unet2
        theirs = loaded(1)

        def run(scale, unet2=theirs, pictures=(feats,)):
            IPAdapterMixin.set_ip_adapter_scale(SimpleNamespace(unet=unet2), scale)
            with torch.no_grad():
                return unet2(x, 500, encoder_hidden_states=text, added_cond_kwargs={
                    "image_embeds": [torch.stack([torch.zeros_like(f), f]) for f in pictures]}).sample
        for t, scale in cases.items():
            want = run(scale)
            assert float((got[t] - want).abs().max() / want.abs().max()) < 1e-5, t
            assert not sdxl or float((want - plain).abs().max()) > 1e-3, t
        if not sdxl:
            continue
        # InstantStyle's style and layout from two pictures: two adapters, one per picture and block.
        want = run([{"down": {"block_2": [0.0, comp]}}, {"up": {"block_0": [0.0, w, 0.0]}}], loaded(2), (feats2, feats))
        assert float((got["two pictures"] - want).abs().max() / want.abs().max()) < 1e-5
        assert float((got["two pictures"] - got["style and composition"]).abs().max()) > 1e-3
        with torch.no_grad():
            for proc in theirs.attn_processors.values():
                if hasattr(proc, "to_k_ip"):
                    for lin in (proc.to_k_ip[0], proc.to_v_ip[0]):
                        lin.weight.mul_(w * proc.hidden_size / 1280)
        want = run(1.0)
        assert float((got["penalty"] - want).abs().max() / want.abs().max()) < 1e-5


def test_per_frame_references_and_masks(tiny, monkeypatch):
    """IPAdapterBatch's one picture per frame with attn_mask's one mask per frame, on a tiny SD 1.5: frame 1 of a
    two-frame call (and frame 1 alone, as a context window reads it) is frame 1 sampled alone with picture 1 and mask
    1 as a plain reference; the mask is diffusers' ip_adapter_masks at the layer's own grid (one cross-attention
    layer run by diffusers' IPAdapterAttnProcessor2_0); image_negative replaces the negative's black picture."""
    from types import SimpleNamespace
    from diffusers.models.attention_processor import Attention, IPAdapterAttnProcessor2_0
    from node_call import Nodes
    from graph_engine import Clip
    from nodes.common.masks import clip_of as masks_of
    from nodes.generate import ipadapter_nodes
    from nodes.generate.adapters import get_adapter
    from nodes.generate.ipadapter import (IPAttention, Place, Reference, _Feed, apply_ipadapter, feed_step, installed,
                                          load_ipadapter, new_feed, reference)
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import guided_model_fn
    from nodes.generate.split import load_clip_vision
    from nodes.generate.text import encode_prompt
    root = tiny("sd")
    models = root / "models"
    _vision(models / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    mm = ModelManager()
    h = mm.load("sd", str(root / "diffusers"))
    parts = mm.components(h)
    _ipadapter_file(models / "ipadapter" / "ip-adapter-plus_sd15.safetensors", h.denoiser, "plus", 32)
    encoder = load_clip_vision(mm, "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "auto", "cpu")
    adapter = load_ipadapter(mm, "ip-adapter-plus_sd15.safetensors")
    pics = [REF, REF[::-1, ::-1].copy()]
    masks = torch.zeros(2, 32, 32)
    masks[0, :, :16], masks[1, 8:, :] = 1.0, 1.0
    pos, neg = encode_prompt(parts["text_encoder"], "a cat"), encode_prompt(parts["text_encoder"], "blurry")
    x = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(1))

    def x0(ref, latent, frames=None):
        model = ref if hasattr(ref, "denoiser") else apply_ipadapter(h, ref)
        feed = new_feed(model)
        fn = guided_model_fn(model, get_adapter("sd"), pos, neg, 5.0, 1, "cpu", torch.float32, latent.shape[2],
                             ip_feed=feed)
        with installed(model, feed), torch.inference_mode():
            return fn(latent, 5.0) if frames is None else fn(latent, 5.0, frames=frames)
    # Through the node, as an imported IPAdapterBatch runs: the pictures and masks as clips.
    mask_clip = masks_of(lambda a, b: masks[a:b].numpy(), Clip.from_array(np.zeros((2, 32, 32, 3), np.uint8)))
    both = x0(Nodes(ipadapter_nodes).ipadapter_apply(None, h, adapter, Clip.from_array(np.stack(pics)),
                                                     image_encoder=encoder, weight=0.8, per_frame=True,
                                                     mask=mask_clip), x)
    window = x0(reference(adapter, encoder, pics, 0.8, 0.0, 1.0, mask=masks, per_frame=True), x[:, :, 1:], [1])
    alone = x0(reference(adapter, encoder, pics[1:], 0.8, 0.0, 1.0, mask=masks[1:]), x[:, :, 1:])
    unmasked = x0(reference(adapter, encoder, pics[1:], 0.8, 0.0, 1.0), x[:, :, 1:])
    scale = float(alone.abs().max())
    assert float((both[:, :, 1:] - alone).abs().max()) / scale < 1e-5
    assert float((window - alone).abs().max()) / scale < 1e-5
    assert float((alone - unmasked).abs().max()) > 1e-3
    plain, black = (reference(adapter, encoder, pics[:1], 0.8, 0.0, 1.0, negative=n) for n in ((), pics[1:]))
    assert torch.equal(plain.cond, black.cond) and not torch.allclose(plain.uncond, black.uncond)

    # One layer, 6 x 8 tokens, against diffusers' masked IP-Adapter processor.
    torch.manual_seed(5)
    attn = Attention(16, cross_attention_dim=16, heads=2, dim_head=8).eval()
    theirs = IPAdapterAttnProcessor2_0(16, 16, num_tokens=(4,), scale=0.6).eval()
    toks = torch.randn(2, 4, 16)
    mask = (torch.rand(1, 6, 8) > 0.5).float()
    hidden, text = torch.randn(2, 48, 16), torch.randn(2, 5, 16)
    adapter1 = SimpleNamespace(layers=((theirs.to_k_ip[0].weight, theirs.to_v_ip[0].weight),))
    ref = Reference(adapter1, toks[1:], toks[:1], 0.6, mask=mask)
    feed, n, p = _Feed(1), object(), object()
    feed_step(feed, SimpleNamespace(option=lambda k: (ref,)), [n, p], n, 0.5, lambda s: 1 - s, (0,), (6, 8))
    ours = IPAttention(attn.processor, adapter1.layers, (ref,), Place(0, 16, "input"), False, feed)
    with torch.no_grad():
        got = ours(attn, hidden, text)
        want = theirs(attn, hidden, (text, [toks[:, None]]), ip_adapter_masks=[mask[:, None]])
    assert float((got - want).abs().max()) < 1e-5


def test_batch_and_weight_type_nodes_import_exactly():
    """IPAdapterBatch as AnimateDiff transition workflows write it (API format: one picture, a fade mask per frame,
    weight type ease in-out), the simple IPAdapter's "prompt is more important" / "style transfer" and
    IPAdapterStyleComposition (expand_style) become ipadapter.apply with their weight types, per_frame, the mask and
    the composition picture connected; nothing is reported as dropped. PrepImageForClipVision is a 224 x 224 resize
    (cut or padded), its crop side and sharpening named where they are not carried."""
    from app.comfyui import import_data
    api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
           "2": {"class_type": "IPAdapterUnifiedLoader", "inputs": {"model": ["1", 0], "preset": "PLUS (high strength)"}},
           "3": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "4": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 512, "height": 512}},
           "5": {"class_type": "IPAdapterBatch", "inputs": {
               "weight": 1, "weight_type": "ease in-out", "start_at": 0, "end_at": 1, "embeds_scaling": "K+V",
               "encode_batch_size": 0, "model": ["2", 0], "ipadapter": ["2", 1], "image": ["3", 0],
               "attn_mask": ["4", 0]}},
           "6": {"class_type": "IPAdapter", "inputs": {"model": ["5", 0], "ipadapter": ["2", 1], "image": ["3", 0],
                                                       "weight": 0.5, "start_at": 0, "end_at": 1,
                                                       "weight_type": "prompt is more important"}},
           "7": {"class_type": "IPAdapter", "inputs": {"model": ["6", 0], "ipadapter": ["2", 1], "image": ["3", 0],
                                                       "weight": 0.6, "start_at": 0, "end_at": 1,
                                                       "weight_type": "style transfer"}},
           "8": {"class_type": "IPAdapterStyleComposition", "inputs": {
               "model": ["7", 0], "ipadapter": ["2", 1], "image_style": ["3", 0], "image_composition": ["3", 0],
               "weight_style": 0.9, "weight_composition": 0.4, "expand_style": True, "combine_embeds": "average",
               "start_at": 0, "end_at": 1, "embeds_scaling": "V only"}},
           "9": {"class_type": "PrepImageForClipVision", "inputs": {"image": ["3", 0], "interpolation": "BICUBIC",
                                                                    "crop_position": "pad", "sharpening": 0.0}},
           "10": {"class_type": "PrepImageForClipVision", "inputs": {"image": ["3", 0], "interpolation": "LANCZOS",
                                                                     "crop_position": "top", "sharpening": 0.3}}}
    res = import_data(api)
    notes = res.report.entries["10"].line()
    assert res.report.entries["10"].status == "approx" and "not at the top" in notes and "sharpening=0.3" in notes
    prep = sorted((n.params for n in res.graph.nodes.values() if n.type == "video.resize"), key=lambda p: p["method"])
    assert prep == [{"width": 224, "height": 224, "method": "bicubic", "fit": "pad"},
                    {"width": 224, "height": 224, "method": "lanczos", "fit": "crop"}]
    for nid in "56789":
        assert res.report.entries[nid].status == "exact", res.report.text()
    apply = {n.params["weight"]: n for n in res.graph.nodes.values() if n.type == "ipadapter.apply"}
    assert apply[1].params["per_frame"] is True and apply[1].params["weight_type"] == "ease in-out"
    assert apply[1].params["scaling"] == "K+V" and "mask" in res.graph.inputs[apply[1].id]
    assert (apply[0.5].params["weight_type"], apply[0.6].params["weight_type"]) == ("ease out", "style transfer")
    assert apply[0.9].params["weight_type"] == "strong style and composition"
    assert apply[0.9].params["composition_weight"] == 0.4 and "composition_image" in res.graph.inputs[apply[0.9].id]


def test_ipadapter_weights_become_frame_weights():
    """IPAdapterWeights into IPAdapterBatch (AnimateDiff fades: a reference's weight per frame) was "not mapped". Its
    list, drawn from its settings as ComfyUI_IPAdapter_plus draws it, becomes ipadapter.apply's frame_weights: an
    ease_in_out from 0 to 1 over frames 1-4 of 6 (held before and after), its reverse (weights_invert), and a custom
    list written over lines. With an image input it repeats per picture, known only when the workflow runs: named."""
    import math
    from app.comfyui import import_data

    def weights(wid, text, timing, **kw):
        return {"class_type": "IPAdapterWeights", "inputs": {
            "weights": text, "timing": timing, "frames": kw.get("frames", 0), "start_frame": kw.get("start", 0),
            "end_frame": kw.get("end", 9999), "add_starting_frames": 0, "add_ending_frames": 0,
            "method": "full batch", **({"image": ["3", 0]} if kw.get("image") else {})}}

    def batch(model, weight):
        return {"class_type": "IPAdapterBatch", "inputs": {
            "weight": weight, "weight_type": "linear", "start_at": 0, "end_at": 1, "embeds_scaling": "V only",
            "encode_batch_size": 0, "model": model, "ipadapter": ["2", 1], "image": ["3", 0]}}
    api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
           "2": {"class_type": "IPAdapterUnifiedLoader", "inputs": {"model": ["1", 0], "preset": "PLUS (high strength)"}},
           "3": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "4": weights("4", "0.0, 1.0", "ease_in_out", frames=6, start=1, end=5),
           "5": batch(["2", 0], ["4", 0]), "6": batch(["5", 0], ["4", 1]),
           "7": weights("7", "1.0\n0.5, 0.0", "custom"), "8": batch(["6", 0], ["7", 0]),
           "9": weights("9", "1.0, 0.0", "linear", frames=4, image=True), "10": batch(["8", 0], 0.8)}
    res = import_data(api)
    curve = [0.0, 0.0, (1 - math.cos(math.pi / 3)) / 2, (1 - math.cos(2 * math.pi / 3)) / 2, 1.0, 1.0]
    got = {}
    for nid in ("5", "6", "8"):
        assert res.report.entries[nid].status == "exact", res.report.text()
        (made,) = res.report.entries[nid].kinograph
        got[nid] = [float(w) for w in res.graph.nodes[made].params["frame_weights"].split(",")]
        assert "weight" not in res.graph.nodes[made].params
    assert got == {"5": pytest.approx(curve), "6": pytest.approx(curve[::-1]), "8": [1.0, 0.5, 0.0]}
    assert res.report.entries["9"].status == "unmapped" and "repeated once per picture" in res.report.entries["9"].line()


def test_embeds_encode_combine_and_apply(tmp_path, monkeypatch):
    """IPAdapterEncoder -> IPAdapterCombineEmbeds -> IPAdapterEmbeds: two pictures encoded, averaged and applied give
    the tokens ipadapter.apply gives them with combine_embeds average (and, with no neg_embed, the plus adapter's black
    picture as the negative); the encoder's weight scales the features; its mask is CLIP run on the processed pixels
    times the mask's centre square (as ComfyUI crops it); the ComfyUI chain imports exactly."""
    from PIL import Image
    from app.comfyui import import_data
    from node_call import Nodes
    from graph_engine import Clip
    from nodes.generate import ipadapter_nodes
    from nodes.generate.ipadapter import encode, from_embeds, read_ipadapter, reference
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision
    models = tmp_path / "models"
    vision = _vision(models / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    encoder = load_clip_vision(ModelManager(), "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "auto", "cpu")
    adapter = read_ipadapter(_ipadapter_file(tmp_path / "ip.safetensors", _real_layout_unet(False), "plus", 32))
    pics = [REF, REF[::-1].copy()]
    nodes = Nodes(ipadapter_nodes)
    a, b = (nodes.ipadapter_encode(None, adapter, Clip.from_array(p[None]), image_encoder=encoder)["pos_embed"]
            for p in pics)
    got = from_embeds(adapter, encoder, nodes.ipadapter_combine_embeds(None, a, embed2=b, method="average"), None, 0.8, 0.0,
                      1.0)
    want = reference(adapter, encoder, pics, 0.8, 0.0, 1.0, how="average")
    assert torch.allclose(got.cond, want.cond, atol=1e-6) and torch.allclose(got.uncond, want.uncond, atol=1e-6)
    assert torch.allclose(encode(adapter, encoder, pics[:1], 0.5)[0], a * 0.5)
    mask = torch.zeros(1, 32, 48)           # CLIP's side high: its centre square is columns 8-39, not resized
    mask[:, :, :24] = 1.0
    masked, _ = encode(adapter, encoder, pics[:1], 1.0, mask)
    px = encoder.pipe.image_processor(images=[Image.fromarray(REF)], return_tensors="pt").pixel_values
    with torch.no_grad():
        want = vision(pixel_values=px * mask[:, None, :, 8:40], output_hidden_states=True).hidden_states[-2]
    assert torch.allclose(masked, want, atol=1e-5) and not torch.allclose(masked, a, atol=1e-3)

    def enc(i):
        return {"class_type": "IPAdapterEncoder", "inputs": {"ipadapter": ["2", 1], "image": ["3", 0], "weight": i}}
    api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
           "2": {"class_type": "IPAdapterUnifiedLoader", "inputs": {"model": ["1", 0], "preset": "PLUS (high strength)"}},
           "3": {"class_type": "LoadImage", "inputs": {"image": "a.png"}}, "4": enc(1.0), "5": enc(0.5),
           "6": {"class_type": "IPAdapterCombineEmbeds", "inputs": {"embed1": ["4", 0], "embed2": ["5", 0],
                                                                    "method": "average"}},
           "7": {"class_type": "IPAdapterEmbeds", "inputs": {
               "model": ["2", 0], "ipadapter": ["2", 1], "pos_embed": ["6", 0], "neg_embed": ["4", 1], "weight": 0.8,
               "weight_type": "style transfer", "start_at": 0, "end_at": 1, "embeds_scaling": "V only"}}}
    res = import_data(api)
    assert all(res.report.entries[n].status == "exact" for n in "4567"), res.report.text()
    assert {n.type for n in res.graph.nodes.values()} >= {"ipadapter.encode", "ipadapter.combine_embeds",
                                                         "ipadapter.apply_embeds"}


def test_noise_pictures_for_the_negative():
    """IPAdapterNoise's pictures: without a picture, fade is ComfyUI's torch.manual_seed(0) uniform noise times
    strength ([1, 224, 224, 3] order); blur is OpenCV's gaussian of the same size and sigma (reflected edges);
    dissolve replaces about `strength` of the values of the picture's 224 square; the same pictures give the same
    noise; the node imports (shuffle as gaussian, named)."""
    import cv2
    from app.comfyui import import_data
    from nodes.generate.ipadapter import noise_picture
    torch.manual_seed(0)
    want = torch.rand(1, 224, 224, 3) * 0.4
    assert np.abs(noise_picture("fade", 0.4, 0).astype(int) - (want * 255).round().int().numpy()).max() <= 1
    blurred = noise_picture("fade", 0.4, 4)[0].astype(np.float32)
    sigma = 0.3 * ((5 - 1) * 0.5 - 1) + 0.8
    ref = cv2.GaussianBlur(want[0].numpy(), (5, 5), sigma, borderType=cv2.BORDER_REFLECT_101) * 255
    assert np.abs(blurred - ref).max() <= 1.0
    pic = np.repeat(REF[None], 2, 0)
    plain, noisy = noise_picture("fade", 0.0, 0, pic), noise_picture("dissolve", 0.5, 0, pic)
    assert np.array_equal(noisy, noise_picture("dissolve", 0.5, 0, pic))
    assert 0.45 < float((noisy == plain).mean()) < 0.55
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "2": {"class_type": "IPAdapterNoise", "inputs": {"type": "dissolve", "strength": 0.5, "blur": 3,
                                                            "image_optional": ["1", 0]}},
           "3": {"class_type": "IPAdapterNoise", "inputs": {"type": "shuffle", "strength": 0.5, "blur": 0}}}
    res = import_data(api)
    assert res.report.entries["2"].status == "exact" and "gaussian noise is used" in res.report.entries["3"].line()


def test_info_lists_each_ipadapter_file_with_its_kind_and_loader(tmp_path, capsys):
    """An artist's ComfyUI ipadapter/ and xlabs/ipadapters/ files, in each published key layout (h94's flat
    .safetensors and nested .bin, XLabs' FLUX.1 one): `kinograph info FOLDER` listed none of them as an IP-Adapter
    ('no known key pattern'; FaceID's LoRA keys made it 'LoRA for an unknown base model'). Each is now named from its
    header (plus or full face, SD 1.5 or SDXL by its count of cross-attention layers, the CLIP vision by the width its
    projection reads) with the node that loads it, or why load.ipadapter refuses it."""
    from test_flux import _xlabs_ipadapter
    from types import SimpleNamespace
    from app.cli import main
    models = tmp_path / "ComfyUI" / "models"
    ipa = models / "ipadapter"
    ipa.mkdir(parents=True)
    sd15, sdxl = [8] * 16, [8] * 70              # SD 1.5's 16 cross-attention layers, SDXL's 70, 8 wide here
    for name, kind, features, widths in (("ip-adapter-plus_sd15.safetensors", "plus", 1280, sd15),
                                         ("ip-adapter-full-face_sd15.safetensors", "full", 1280, sd15),
                                         ("ip-adapter_sdxl_vit-h.safetensors", "plain", 1024, sdxl)):
        save_file(_ipadapter_state(kind, features, widths, 8), str(ipa / name))
    # h94's .bin files nest the two parts.
    state = _ipadapter_state("plain", 1280, sdxl, 8)
    torch.save({part: {k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")}
                for part in ("image_proj", "ip_adapter")}, str(ipa / "ip-adapter_sdxl.bin"))
    faceid = {f"{n}.to_{kv}_ip.weight": torch.zeros(8, 8) for n in range(1, 32, 2) for kv in "kv"}
    torch.save({"image_proj": {"proj.0.weight": torch.zeros(16, 8), "proj.2.weight": torch.zeros(32, 16),
                               "norm.weight": torch.zeros(8)},
                "ip_adapter": {**faceid, "0.to_q_lora.down.weight": torch.zeros(4, 8)}},
               str(ipa / "ip-adapter-faceid_sd15.bin"))
    kolors = _ipadapter_state("plus", 1024, sdxl, 8)
    kolors["image_proj.layers.0.0.to_out.weight"] = torch.zeros(2048, 1)
    save_file(kolors, str(ipa / "Kolors-IP-Adapter-Plus.safetensors"))
    flux = SimpleNamespace(config=SimpleNamespace(joint_attention_dim=8), inner_dim=8, transformer_blocks=[0] * 19)
    _xlabs_ipadapter(models / "xlabs" / "ipadapters" / "ip_adapter.safetensors", flux, features=768)
    assert main(["info", str(models)]) == 0
    lines = capsys.readouterr().out.split("models found:")[1].splitlines()

    def row(name):
        at = next(i for i, line in enumerate(lines) if line.endswith(name))
        return lines[at].split()[:5], lines[at + 1].strip()
    use = "load.ipadapter (or load.ipadapter_preset), ipadapter.apply on an"
    vit_h, vit_g = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors"
    assert row("ip-adapter-plus_sd15.safetensors") == (
        ["sd", "plus-vit-h", "ipadapter", "fp32", "yes"],
        f"(IP-Adapter plus (or plus face), SD 1.5 (ViT-H): {use} SD 1.5 or AnimateDiff model; its clip_vision: {vit_h})")
    assert row("ip-adapter-full-face_sd15.safetensors") == (
        ["sd", "full-vit-h", "ipadapter", "fp32", "yes"],
        f"(IP-Adapter full face, SD 1.5 (ViT-H): {use} SD 1.5 or AnimateDiff model; its clip_vision: {vit_h})")
    assert row("ip-adapter_sdxl_vit-h.safetensors") == (
        ["sdxl", "plain-vit-h", "ipadapter", "fp32", "yes"],
        f"(IP-Adapter, SDXL (ViT-H): {use} SDXL model; its clip_vision: {vit_h})")
    assert row("ip-adapter_sdxl.bin") == (["sdxl", "plain-vit-bigg", "ipadapter", "fp32", "yes"],
                                          f"(IP-Adapter, SDXL (ViT-bigG): {use} SDXL model; its clip_vision: {vit_g})")
    assert row("ip_adapter.safetensors") == (
        ["flux", "xlabs", "ipadapter", "fp32", "yes"],
        "(XLabs FLUX.1 IP-Adapter: load.ipadapter (its clip_vision: clip_vision_l.safetensors, CLIP ViT-L/14), "
        "ipadapter.apply or ipadapter.flux_graded on FLUX.1 dev or schnell)")
    assert row("ip-adapter-faceid_sd15.bin") == (
        ["sd", "faceid", "ipadapter", "fp32", "no"],
        "(this file is an IP-Adapter FaceID model: it reads a face identity from InsightFace (a separate "
        "face-recognition model, with a LoRA of its own), which Kinograph does not run. Use ip-adapter-plus-face "
        "(PLUS FACE) with a crop of the face instead)")
    assert row("Kolors-IP-Adapter-Plus.safetensors") == (
        ["unknown", "kolors", "ipadapter", "fp32", "no"],
        "(this file is the Kolors IP-Adapter, for Kwai's Kolors model, which Kinograph does not run)")
