"""Hunyuan3D 2.0 / 2.1 shape generation against ComfyUI's code written out (tests/hunyuan3d_reference.py): the two
transformers and the ShapeVAE decoder built from tiny random tensors in ComfyUI's key names, the multi-view
conditioning, and ComfyUI's four Hunyuan3D templates imported and run on tiny checkpoints (tests/tiny_hunyuan3d.py)
up to the VOXEL grid, against ComfyUI's sampling of the same weights, pictures and seed."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import hunyuan3d_reference as ref  # noqa: E402
from nodes.generate.hunyuan3d_model import build_dit  # noqa: E402
from nodes.generate.hunyuan3d_vae import build_vae  # noqa: E402
from tiny_hunyuan3d import randomised as _randomised  # noqa: E402

TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
# ComfyUI's latent formats (comfy/latent_formats.py): the sampled latent is divided by these before the VAE
SCALE = {"2.0": 0.9990943042622529, "2.1": 1.0039506158752403}


def test_dit_20_matches_comfyui():
    comfy = _randomised(ref.Hunyuan3Dv2(in_channels=8, context_in_dim=12, hidden_size=32, num_heads=4, depth=2,
                                        depth_single_blocks=2, guidance_embed=True), 1)
    ours = build_dit(comfy.state_dict())
    x, ctx = torch.randn(2, 8, 10), torch.randn(2, 5, 12)
    sigma, guidance = torch.tensor([0.7, 0.7]), torch.tensor([3.5, 3.5])
    with torch.no_grad():
        want = comfy(x, sigma, ctx, guidance)
        got = ours(x, sigma, ctx, guidance)
    assert got.shape == (2, 8, 10)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_a_half_precision_dit_reads_time_and_guidance_as_comfyui_in_float32():
    """ComfyUI hands the model its timestep in float32 (model_base's apply_model) and makes the time and guidance
    features in float32 before casting them. Sampling a bf16 transformer (a GPU's default) cast sigma and guidance to
    bf16 first: 1000 (1 - sigma) was off by up to 2, the finest time feature by 2 radians, guidance 3.5 x 1000 read
    as 3504. Through the adapter, as generate.sample calls it, the features are ComfyUI's to the bit."""
    from types import SimpleNamespace
    from nodes.generate.adapters.hunyuan3d import Hunyuan3DAdapter
    comfy = _randomised(ref.Hunyuan3Dv2(in_channels=64, context_in_dim=12, hidden_size=32, num_heads=4, depth=1,
                                        depth_single_blocks=1, guidance_embed=True), 5)
    dit = build_dit(comfy.state_dict()).to(torch.bfloat16)
    seen = {}
    for name in ("time_in", "guidance_in"):
        getattr(dit, name).register_forward_pre_hook(lambda m, args, name=name: seen.__setitem__(name, args[0]))
    t = torch.tensor([617.3])           # the sampler's timestep: sigma 0.6173
    inputs = {"context": torch.randn(1, 5, 12), "guidance": torch.tensor([3.5])}
    with torch.no_grad():
        Hunyuan3DAdapter().forward(SimpleNamespace(pipe=SimpleNamespace(transformer=dit)), torch.randn(1, 64, 1, 1, 6),
                                   t, inputs)
    want_time = ref.timestep_embedding(1.0 - t / 1000, 256, 1000).to(torch.bfloat16)
    want_guidance = ref.timestep_embedding(torch.tensor([3.5]), 256, 1000).to(torch.bfloat16)
    assert torch.equal(seen["time_in"], want_time)
    assert torch.equal(seen["guidance_in"], want_guidance)


def test_dit_21_matches_comfyui_with_experts_and_skips():
    comfy = _randomised(ref.HunYuanDiTPlain(in_channels=8, hidden_size=32, context_dim=12, depth=5, num_heads=4,
                                            num_moe_layers=2, num_experts=3), 2)
    state = comfy.state_dict()
    ours = build_dit(state)
    assert ours.version == "2.1" and sum(hasattr(b, "moe") for b in ours.blocks) == 2
    # ComfyUI batches the negative first: its context swap is undone on the way out, each row its own prompt
    x = torch.randn(1, 8, 10).expand(2, -1, -1)
    ctx, sigma = torch.randn(2, 5, 12), torch.tensor([0.4, 0.4])
    with torch.no_grad():
        want = comfy(x, sigma, ctx)
        got = ours(x, sigma, ctx)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_shape_vae_decodes_the_grid_comfyui_hands_voxeltomesh():
    comfy = _randomised(ref.ShapeVAE(embed_dim=8, width=32, heads=4, num_decoder_layers=2), 3)
    vae = build_vae(comfy.state_dict())
    latents = torch.randn(1, 8, 6)
    with torch.no_grad():
        want = ref.vae_decode(comfy, latents, num_chunks=100, octree_resolution=6)
        got = vae.decode(latents, resolution=6, num_chunks=37)
    assert got.shape == (1, 7, 7, 7)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert 0 < (got > 0.6).float().mean() < 1        # inside and outside at VoxelToMesh's threshold: a shape


def test_a_half_precision_vae_is_asked_at_the_grids_own_points():
    """On a GPU the ShapeVAE runs in bf16, whose 8-bit mantissa rounds the grid's coordinates by up to 0.004 near the
    box's sides: a 512 grid's neighbouring points (0.004 apart) fell together, and sin(2^7 x), the finest Fourier
    feature, was off by up to half a radian. The field is asked at the float32 grid in every chunk, whatever the
    weights' precision (ComfyUI's fp16 VAE rounds them 8 times less than bf16 did)."""
    vae = build_vae(_randomised(ref.ShapeVAE(embed_dim=8, width=32, heads=4, num_decoder_layers=1), 4).state_dict())
    vae = vae.to(torch.bfloat16)
    asked = []

    def field(points, latents):
        asked.append(points)
        return torch.zeros(*points.shape[:2], 1, dtype=latents.dtype)
    vae.geo_decoder.forward = field
    vae.decode(torch.randn(1, 8, 6), resolution=16, num_chunks=1000)
    side = torch.linspace(-1.01, 1.01, 17, dtype=torch.float32)
    want = torch.stack(torch.meshgrid(side, side, side, indexing="ij"), -1).reshape(1, -1, 3)
    got = torch.cat(asked, 1)
    assert got.dtype == torch.float32 and torch.equal(got, want)


def test_multiview_embeds_match_comfyui():
    from nodes.generate.hunyuan3d import view_embeds
    front, back = torch.randn(1, 3, 16), torch.randn(1, 3, 16)
    want, zeros = ref.multiview(front=front, back=back)
    got = view_embeds({"front": front, "back": back})
    assert torch.allclose(got, want, atol=1e-6)
    assert not zeros.any()


# -- the templates on tiny checkpoints ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hy3d(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_hunyuan3d import build
    yield from models_dir(tmp_path_factory, build, "hunyuan3d")


def _dino(enc, picture: np.ndarray) -> torch.Tensor:
    """ComfyUI's CLIPVisionEncode on a picture already the encoder's size: clip_preprocess (8-bit levels, ImageNet's
    mean and deviation), last_hidden_state."""
    x = torch.from_numpy(picture).float().div(255).permute(2, 0, 1)[None]
    x = torch.clip(255.0 * x, 0, 255).round() / 255.0
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    with torch.no_grad():
        return enc(pixel_values=x).last_hidden_state


def _comfy_shape(version, positive, negative, guidance, cfg, seed, steps, tokens, octree):
    """ComfyUI's KSampler (euler, normal: ModelSamplingDiscreteFlow at shift 1, multiplier 1) then VAEDecodeHunyuan3D
    on the tiny checkpoint's modules: the VOXEL's grid."""
    from tiny_hunyuan3d import parts
    dit, vae, _ = parts(version)
    x = torch.randn([1, 64, tokens], generator=torch.Generator().manual_seed(seed))
    sigmas = torch.linspace(1.0, 0.001, steps).tolist() + [0.0]
    with torch.no_grad():
        for s, nxt in zip(sigmas, sigmas[1:]):
            sig = torch.tensor([s, s])
            if version == "2.0":        # model_base's guidance: FluxGuidance's on the positive, 5 on the negative
                out = torch.cat([dit(x, sig[:1], negative, torch.tensor([5.0])),
                                 dit(x, sig[:1], positive, torch.tensor([guidance]))])
            else:                       # batched negative first, as ComfyUI's calc_cond_batch runs it
                out = dit(x.repeat(2, 1, 1), sig, torch.cat([negative, positive]))
            uncond, cond = x - s * out[:1], x - s * out[1:]
            den = uncond + (cond - uncond) * cfg
            x = x + (x - den) / s * (nxt - s)
        return ref.vae_decode(vae, x / SCALE[version], num_chunks=8000, octree_resolution=octree)[0]


CASES = [("3d_hunyuan3d_image_to_model", "hunyuan3d-dit-v2_fp16.safetensors", "2.0"),
         ("3d_hunyuan3d_multiview_to_model", "hunyuan3d-dit-v2-mv_fp16.safetensors", "2.0"),
         ("3d_hunyuan3d_multiview_to_model_turbo", "hunyuan3d-dit-v2-mv-turbo_fp16.safetensors", "2.0"),
         ("3d_hunyuan3d-v2.1", "hunyuan_3d_v2.1.safetensors", "2.1")]


@pytest.mark.parametrize("template,ckpt,version", CASES)
def test_comfyui_hunyuan3d_templates_import_and_run(hy3d, tmp_path, monkeypatch, template, ckpt, version):
    """ComfyUI's Hunyuan3D templates (ImageOnlyCheckpointLoader, CLIPVisionEncode, Hunyuan3Dv2Conditioning or
    MultiView with its views, FluxGuidance in the turbo one, ModelSamplingAuraFlow 1, KSampler euler normal,
    VAEDecodeHunyuan3D, VoxelToMesh, SaveGLB) import with every node mapped and run end to end on the tiny checkpoint
    linked under the name they ask for (16 tokens, 2 steps, a 16-cell grid): the VOXEL is ComfyUI's for the
    template's seed, cfg and guidance, the pictures its views, and a .glb of its mesh is written."""
    from PIL import Image
    from app.comfyui import import_workflow
    from comfy_layouts import link_as
    from graph_engine.api import Session, load_workflow
    from tiny_hunyuan3d import V20, V21, parts
    link_as(hy3d / "models" / "checkpoints" / ckpt, hy3d / "models" / "checkpoints" / (V20 if version == "2.0" else V21))
    monkeypatch.chdir(tmp_path)
    res = import_workflow(str(TEMPLATES / f"{template}.json"))
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"], res.report
    wf = load_workflow(text=res.yaml, check=False)
    graph = wf.graph
    rng = np.random.default_rng(0)
    pictures = {}
    for nid, inst in graph.nodes.items():
        if inst.type == "io.load_image":
            pictures[nid] = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
            inst.params["path"] = str(tmp_path / f"{nid}.png")
            Image.fromarray(pictures[nid]).save(inst.params["path"])
        elif inst.type == "latent.empty_hunyuan3d":
            inst.params["resolution"] = 16
        elif inst.type == "generate.sample":
            inst.params["steps"], sample = 2, inst
        elif inst.type == "decode.hunyuan3d":
            inst.params["resolution"], decoder = 16, nid
        elif inst.type == "condition.hunyuan3d":
            cond = nid
    out = Session(device="cpu").run(wf, use_cache=False, keep=[decoder])
    assert out.ok, out.failed
    got = out.outputs[decoder]["voxel"].grid

    def picture_of(port):       # condition input <- encode.image <- io.load_image
        enc = next(lnk.src for lnk in graph.links_to(cond) if lnk.dst_port == port)
        return pictures[next(lnk.src for lnk in graph.links_to(enc) if lnk.dst_port == "image")]
    encoder = parts(version)[2]
    ports = {lnk.dst_port for lnk in graph.links_to(cond)}
    if ports == {"image"}:
        positive = _dino(encoder, picture_of("image"))
        negative = torch.zeros_like(positive)
    else:
        positive, negative = ref.multiview(**{p: _dino(encoder, picture_of(p)) for p in ports})
    guidance = graph.nodes[cond].params.get("guidance", 5.0)
    assert guidance == (3.5 if template.endswith("turbo") else 5.0)
    want = _comfy_shape(version, positive, negative, guidance, sample.params["cfg"], sample.params["seed"], 2, 16, 16)
    assert got.shape == (17, 17, 17)
    print(template, "voxel max abs diff", float((torch.from_numpy(got) - want).abs().max()))
    assert torch.allclose(torch.from_numpy(got), want, atol=1e-4)
    assert 0 < (got > 0.6).mean() < 1         # a shape at VoxelToMesh's threshold: inside and outside
    import trimesh
    written = sorted(tmp_path.rglob("*.glb"))
    assert len(written) == 1, written
    assert len(trimesh.load(written[0], force="mesh").faces) > 0


def test_checkpoints_are_told_apart_from_flux_and_by_version(hy3d):
    """2.0's blocks carry FLUX.1's names: the checkpoint is Hunyuan3D's all the same (its latent_in, cond_in), 2.0 or
    2.1 by its transformer; load.model finds it in checkpoints/."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import detect_family
    from tiny_hunyuan3d import V20, V21
    folder = hy3d / "models" / "checkpoints"
    for name, variant in ((V20, "2.0"), (V21, "2.1")):
        det = detect_file(folder / name)
        assert (det.family, det.variant, det.role) == ("hunyuan3d", variant, "checkpoint")
        assert detect_family(folder / name)[0] == "hunyuan3d"


def test_wrong_inputs_are_named(hy3d):
    """No picture, a picture and views at once, another family's encoding, a picture latent: each refused by name."""
    from graph_engine import NodeError
    from nodes.generate.hunyuan3d import conditioning, decode, empty_latent
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.model_manager import ModelManager
    from tiny_hunyuan3d import V21
    picture = Conditioning("hunyuan3d", torch.randn(1, 5, 64), meta={"kind": "image"})
    with pytest.raises(NodeError, match="needs a picture"):
        conditioning(None, {}, 5.0)
    with pytest.raises(NodeError, match="not both"):
        conditioning(picture, {"front": picture}, 5.0)
    with pytest.raises(NodeError, match="wan encoding"):
        conditioning(Conditioning("wan", torch.randn(1, 5, 64), meta={"kind": "image"}), {}, 5.0)
    positive, negative = conditioning(picture, {}, 3.5)
    assert positive.meta["guidance"] == 3.5 and negative.meta["guidance"] == 5.0 and not negative.embeds.any()
    mm = ModelManager()
    vae = mm.components(mm.load("hunyuan3d", V21))["vae"]
    with pytest.raises(NodeError, match="not a Hunyuan3D shape latent"):
        decode(vae, Latent(torch.zeros(1, 64, 1, 8, 8), "hunyuan3d", 1, 8.0, 64, 64), 8000, 16)
    with pytest.raises(NodeError, match="one VOXEL"):
        decode(vae, empty_latent(4, batch=2), 8000, 16)


def test_a_transformer_on_its_own_is_refused_saying_what_is_missing(hy3d, tmp_path):
    """A file of the DiT alone (its tensors unprefixed) is told Hunyuan3D's; load.model says it holds only the
    transformer, lacks the ShapeVAE and image encoder, and where ComfyUI's single checkpoint goes."""
    from safetensors.torch import save_file
    from graph_engine import NodeError
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from tiny_hunyuan3d import parts
    file = tmp_path / "hunyuan3d_dit_only.safetensors"
    save_file({k: v.contiguous() for k, v in parts("2.1")[0].state_dict().items()}, str(file))
    assert (detect_file(file).family, detect_file(file).role) == ("hunyuan3d", "diffusion_model")
    with pytest.raises(NodeError, match=r"holds only a Hunyuan3D transformer.*lacks the ShapeVAE \(vae\.\*\) and "
                                        r"the DINOv2 image encoder.*single checkpoint.*models/checkpoints/"):
        ModelManager().load("hunyuan3d", str(file))


def test_a_batch_of_shapes_is_refused_before_sampling(hy3d, tmp_path):
    """decode.hunyuan3d makes one VOXEL: a latent.empty_hunyuan3d batch above 1 is refused at validation, naming
    batch, not after sampling every shape."""
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    from graph_engine.validate import validate
    from tiny_hunyuan3d import V21
    ckpt = hy3d / "models" / "checkpoints" / V21
    text = f"""
kinograph: 1
nodes:
  model: {{type: load.model, params: {{path: "{ckpt}"}}}}
  empty: {{type: latent.empty_hunyuan3d, params: {{resolution: 16, batch: BATCH}}}}
  decode: {{type: decode.hunyuan3d, inputs: {{vae: model.vae, latent: empty.latent}}}}
"""
    wf = load_workflow(text=text.replace("BATCH", "2"), check=False)
    found = [p for p in validate(wf, default_registry()) if p.node == "empty"]
    assert len(found) == 1 and "batch" in found[0].message and "one VOXEL" in found[0].message
    one = load_workflow(text=text.replace("BATCH", "1"), check=False)
    assert not [p for p in validate(one, default_registry()) if p.node == "empty"]


@pytest.mark.parametrize("crop", ["center", "none"])
def test_encode_image_prepares_the_picture_as_comfyui(hy3d, crop):
    """encode.image on a Hunyuan3D checkpoint's DINOv2, a picture not the encoder's size: ComfyUI's CLIPVisionEncode
    (clip_preprocess at the encoder's size with ImageNet's mean and std, crop center or none; last_hidden_state)."""
    from nodes.generate.image_cond import encode_image
    from nodes.generate.model_manager import ModelManager
    from tiny_hunyuan3d import DINO_SIDE, V20, parts
    mm = ModelManager()
    encoder = mm.components(mm.load("hunyuan3d", V20))["image_encoder"]
    picture = np.random.default_rng(1).integers(0, 256, (45, 31, 3), dtype=np.uint8)
    got = encode_image(encoder, picture, crop).embeds
    pixels = ref.clip_preprocess(torch.from_numpy(picture)[None].float() / 255, DINO_SIDE, (0.485, 0.456, 0.406),
                                 (0.229, 0.224, 0.225), crop == "center")
    with torch.no_grad():
        want = parts("2.0")[2](pixel_values=pixels).last_hidden_state
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
