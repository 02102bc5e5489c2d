"""TRELLIS.2's image conditioning (nodes/generate/trellis2_dino.py) and its structure flow model sampled
(trellis2_flow.py, adapters/trellis2.py) against ComfyUI's published code written out in trellis2_reference.py (its
DINOv3, lanczos resize and Trellis2Conditioning; SparseStructureFlowModel, the structure mode of Trellis2.forward,
KSampler's euler on the normal schedule), on tiny random-weight files in the layouts of ComfyUI's
clip_vision/dino_v3_L_naf_fp32.safetensors (DINOv3's tensors, the NAF upsampler under naf.) and
diffusion_models/trellis_2_int8_convrot.safetensors (structure_model. beside the shape models)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import trellis2_reference as ref  # noqa: E402

# the real file's ViT-L/16 (1024 wide, 16 heads of 64, 24 layers, 4 registers), narrower and one layer deep
CONFIG = {"hidden_size": 128, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 256,
          "num_register_tokens": 4, "num_channels": 3, "patch_size": 16, "rope_theta": 100.0, "layer_norm_eps": 1e-5}
NAME = "dino_v3_L_naf_fp32.safetensors"


@pytest.fixture(scope="module")
def comfy():
    """ComfyUI's DINOv3 with random weights: layer scales and norms away from 1 / 0 so a swapped one would show."""
    torch.manual_seed(0)
    return ref.randomised(ref.DINOv3ViTModel(CONFIG))


@pytest.fixture(scope="module")
def picture():
    """A squared picture as mask.crop_to_mask gives it: smooth shading and a sharp edge, 8-bit."""
    y, x = np.mgrid[0:96, 0:96] / 95.0
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], -1)
    rgb[30:60, 20:70] = (0.9, 0.2, 0.1)
    return (rgb * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, comfy):
    root = tmp_path_factory.mktemp("models")
    (root / "clip_vision").mkdir()
    state = {k: v.contiguous() for k, v in comfy.state_dict().items()}
    state["naf.upsampler.weight"] = torch.zeros(4, 4)          # Pixal3D's NAF rides in the same file
    save_file(state, str(root / "clip_vision" / NAME))
    return root


@pytest.fixture(scope="module")
def encoder(models_dir):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(models_dir))
    try:
        yield load_clip_vision(ModelManager(), NAME, "auto", "cpu")
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def comfy_conditioning(comfy, picture):
    """ComfyUI's Trellis2Conditioning of the picture: ((positive, extras),), ((negative, extras),)."""
    with torch.no_grad():
        return ref.trellis2_conditioning(comfy, torch.from_numpy(picture.astype(np.float32) / 255.0)[None])


def test_conditioning_is_comfyuis(comfy_conditioning, picture, encoder):
    """The positive is Trellis2Conditioning's: DINOv3's tokens of the picture resized (Lanczos) to 512 and to 1024,
    normed without the model's norm weights; the negative zeros of both."""
    from nodes.generate.trellis2_dino import conditioning
    ((want_pos, want_pos_x),), ((want_neg, want_neg_x),) = comfy_conditioning
    want_1024 = want_pos_x["embeds"]
    positive, negative = conditioning(encoder, picture)
    assert positive.embeds.shape == want_pos.shape == (1, 1 + 4 + 32 * 32, 128)
    assert positive.extra["embeds_1024"].shape == want_1024.shape == (1, 1 + 4 + 64 * 64, 128)
    assert torch.allclose(positive.embeds, want_pos, atol=2e-4), float((positive.embeds - want_pos).abs().max())
    assert torch.allclose(positive.extra["embeds_1024"], want_1024, atol=2e-4)
    assert torch.equal(negative.embeds, want_neg) and torch.equal(negative.extra["embeds_1024"], want_neg_x["embeds"])
    assert positive.family == negative.family == "trellis2"


def test_file_detected_and_template_node_imported(models_dir):
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import will_load
    det = detect_file(models_dir / "clip_vision" / NAME)
    assert (det.role, det.family, det.variant) == ("clip_vision", "trellis2", "dinov3-naf")
    assert will_load(det) == (True, "load.clip_vision: DINOv3, the image encoder of TRELLIS.2 (condition.trellis2) "
                                    "and TripoSplat (condition.triposplat)")
    # the templates' chain: the picture cropped to its mask (ImageCropToMask), then Trellis2Conditioning
    api = {"15": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": NAME}},
           "122": {"class_type": "LoadImage", "inputs": {"image": "axe.png"}},
           "248": {"class_type": "ImageToMask", "inputs": {"image": ["122", 0], "channel": "red"}},
           "312": {"class_type": "ImageCropToMask", "inputs": {"images": ["122", 0], "masks": ["248", 0],
                                                               "width": 1024, "height": 1024, "pad_factor": 1.0,
                                                               "grow_mask": 0, "background": "#000000"}},
           "299": {"class_type": "Trellis2Conditioning", "inputs": {"clip_vision_model": ["15", 0],
                                                                      "image": ["312", 0]}}}
    res = import_data(api)
    assert res.report.entries["299"].status == "exact"
    (node,) = [n for n in res.graph.nodes.values() if n.type == "condition.trellis2"]
    assert set(res.graph.inputs[node.id]) == {"image_encoder", "image"}
    load_workflow(text=res.yaml)        # validates: the cropped clip's first frame is the IMAGE it reads


def test_wrong_inputs_are_named(models_dir, encoder, picture):
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision
    from nodes.generate.trellis2_dino import conditioning
    with pytest.raises(NodeError, match="needs DINOv3"):
        conditioning(None, picture)
    with pytest.raises(NodeError, match="one RGB picture"):
        conditioning(encoder, picture[..., 0])
    cut = models_dir / "clip_vision" / "dino_v3_cut.safetensors"       # a copy missing its layer's MLP
    state = {k: v.contiguous() for k, v in ref.DINOv3ViTModel(CONFIG).state_dict().items()
             if not k.startswith("layer.0.mlp.down_proj")}
    save_file(state, str(cut))
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(models_dir))
    try:
        with pytest.raises(NodeError, match="incomplete or damaged"):
            load_clip_vision(ModelManager(), cut.name, "auto", "cpu")
        with pytest.raises(NodeError, match="set family to auto"):
            load_clip_vision(ModelManager(), NAME, "wan", "cpu")
    finally:
        mp.undo()


# the real structure model: 1536 wide, 12 heads of 128, 30 blocks, MLP 5.3334x, DINOv3's 1024-wide tokens (one
# block here: each reads 4096 tokens)
FLOW = dict(model_channels=64, cond_channels=CONFIG["hidden_size"], num_blocks=1, num_heads=2, mlp_ratio=2.0)
MODEL = "trellis_2_int8_convrot.safetensors"


@pytest.fixture(scope="module")
def comfy_flow():
    """ComfyUI's structure model with random weights, its per-block offsets and RMS gains away from 0 and 1."""
    torch.manual_seed(1)
    model = ref.SparseStructureFlowModel(**FLOW)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if ("gamma" in name or "norm" in name) else 0.1)
                    + (1.0 if "gamma" in name or name.endswith("norm2.weight") else 0.0))
    return model.eval()


def test_structure_model_matches_comfyui(comfy_flow):
    """Trellis2.forward in structure mode: the latent's first 8 channels through the structure model, 24 zero
    channels after its flow (two samples, each at its own level with its own picture: the sampling test below)."""
    from nodes.generate.trellis2_flow import build_structure_flow
    ours = build_structure_flow(comfy_flow.state_dict())
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 32, 16, 16, 16, generator=g)
    t, ctx = torch.tensor([870.0]), torch.randn(1, 7, CONFIG["hidden_size"], generator=g)
    with torch.no_grad():
        want, got = ref.trellis2_structure_forward(comfy_flow, x, t, ctx, 0.87), ours(x, t, ctx)
    assert got.shape == want.shape == (1, 32, 16, 16, 16)
    assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())
    assert not got[:, 8:].any() and got[:, :8].abs().mean() > 0.05



def test_cfg_steers_the_structure_only_over_its_guidance_interval(comfy_flow):
    """ComfyUI's Trellis2 (TRELLIS.2's guidance_interval 0.6..1): below 0.6 the cfg batch's two halves are both the
    picture's prediction, so cfg 7.5 changes nothing there (within it, the sampling test below: 2 steps at 1.0 and
    0.83, each half its own)."""
    from types import SimpleNamespace
    from nodes.generate.adapters.trellis2 import Trellis2Adapter
    from nodes.generate.latent import Conditioning
    from nodes.generate.trellis2_flow import Trellis2Parts, build_structure_flow
    handle = SimpleNamespace(pipe=Trellis2Parts(build_structure_flow(comfy_flow.state_dict())))
    g = torch.Generator().manual_seed(3)
    picture_tokens = torch.randn(1, 7, CONFIG["hidden_size"], generator=g)
    conds = [Conditioning("trellis2", torch.zeros_like(picture_tokens)), Conditioning("trellis2", picture_tokens)]
    x = torch.randn(1, 32, 16, 16, 16, generator=g).repeat(2, 1, 1, 1, 1)
    adapter = Trellis2Adapter()
    inputs = adapter.conditioning_inputs(handle, conds, [0], 1, "cpu", torch.float32)
    sigma = 0.3
    with torch.no_grad():
        got = adapter.forward(handle, x, torch.tensor(sigma * 1000.0), inputs)
        want = ref.trellis2_structure_forward(comfy_flow, x, torch.tensor([sigma * 1000.0] * 2),
                                              torch.cat([torch.zeros_like(picture_tokens), picture_tokens]), sigma)
    assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())
    assert torch.equal(got[0], got[1])


def _prompt(seed: int, steps: int) -> dict:
    """The templates' TRELLIS.2 structure sampling as an API prompt: Trellis2Conditioning of the loaded picture,
    UNETLoader -> ModelSamplingSD3 5 -> KSampler (euler, normal, cfg 7.5) on EmptyTrellis2LatentStructure."""
    return {
        "15": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": NAME}},
        "122": {"class_type": "LoadImage", "inputs": {"image": "axe.png"}},
        "299": {"class_type": "Trellis2Conditioning", "inputs": {"clip_vision_model": ["15", 0], "image": ["122", 0]}},
        "40": {"class_type": "UNETLoader", "inputs": {"unet_name": MODEL, "weight_dtype": "default"}},
        "108": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["40", 0], "shift": 5.0}},
        "87": {"class_type": "EmptyTrellis2LatentStructure", "inputs": {"batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["108", 0], "positive": ["299", 0], "negative": ["299", 1],
                                                   "latent_image": ["87", 0], "seed": seed, "steps": steps, "cfg": 7.5,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
    }


def test_comfyui_structure_sampling_runs_as_comfyui(comfy_conditioning, comfy_flow, picture, models_dir, tmp_path,
                                                   monkeypatch):
    """The structure stage's sampling imported with every node mapped and run on the tiny files: the sampled latent
    is ComfyUI's (its noise for the seed, the shifted normal schedule, true CFG against zero picture tokens)."""
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    state = {f"model.structure_model.{k}": v.contiguous() for k, v in comfy_flow.state_dict().items()}
    state["model.img2shape.t_embedder.mlp.0.weight"] = torch.zeros(4, 4)       # the shape models ride beside it
    (models_dir / "diffusion_models").mkdir(exist_ok=True)
    save_file(state, str(models_dir / "diffusion_models" / MODEL))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models_dir))
    Image.fromarray(picture).save(tmp_path / "axe.png")
    seed, steps = 42, 2
    res = import_data(_prompt(seed, steps))
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"], res.report
    wf = load_workflow(text=res.yaml, check=False)
    for n in wf.graph.nodes.values():
        if n.type == "io.load_image":
            n.params["path"] = str(tmp_path / "axe.png")
    sampler = next(nid for nid, n in wf.graph.nodes.items() if n.type == "generate.sample")
    out = Session(device="cpu").run(wf, use_cache=False, keep=[sampler])
    assert out.ok, out.failed
    got = out.outputs[sampler]["latent"].samples
    with torch.no_grad():
        ((positive, _),), _ = comfy_conditioning
        context = torch.cat([torch.zeros_like(positive), positive])          # negative first, as ComfyUI batches
        x = torch.randn([1, 32, 16, 16, 16], generator=torch.Generator().manual_seed(seed))
        sigmas = ref.flow_normal_sigmas(5.0, steps)
        x = x * sigmas[0]
        for s, nxt in zip(sigmas, sigmas[1:]):
            out2 = ref.trellis2_structure_forward(comfy_flow, x.repeat(2, 1, 1, 1, 1), torch.tensor([s * 1000] * 2),
                                                  context, s)
            uncond, cond = x - s * out2[:1], x - s * out2[1:]
            den = uncond + (cond - uncond) * 7.5
            x = x + (x - den) / s * (nxt - s)
    assert got.shape == x.shape
    assert torch.allclose(got, x, atol=1e-3), float((got - x).abs().max())
    assert (got[:, :8] - torch.randn([1, 32, 16, 16, 16], generator=torch.Generator().manual_seed(seed))[:, :8]
            ).abs().mean() > 0.1        # the model moved the 8 channels it reads


def test_wrong_models_latents_and_pictures_are_named(comfy_flow, models_dir, tmp_path, monkeypatch):
    """Pixal3D's model (its projected features not computed yet), a structure model cut short, another family's
    latent or conditioning: each named, with what to use."""
    from types import SimpleNamespace
    from graph_engine import NodeError
    from nodes.generate.adapters.trellis2 import Trellis2Adapter
    from nodes.generate.detect import detect_file
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.model_manager import ModelManager, will_load
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.trellis2_flow import build_structure_flow
    folder = models_dir / "diffusion_models"
    folder.mkdir(exist_ok=True)
    state = {f"model.structure_model.{k}": v.contiguous() for k, v in comfy_flow.state_dict().items()}
    pixal = dict(state, **{"model.structure_model.blocks.0.cross_attn.proj_linear.weight": torch.zeros(64, 8)})
    save_file(pixal, str(folder / "pixal3d_int8_convrot.safetensors"))
    cut = {k: v for k, v in state.items() if "blocks.0.mlp" not in k}
    save_file(cut, str(folder / "trellis_2_cut.safetensors"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models_dir))
    assert will_load(detect_file(folder / "pixal3d_int8_convrot.safetensors"))[0] is False
    with pytest.raises(NodeError, match="Pixal3D's model"):
        load_diffusion_model(ModelManager(), "pixal3d_int8_convrot.safetensors", "default", "cpu")
    with pytest.raises(NodeError, match="incomplete or damaged"):
        load_diffusion_model(ModelManager(), "trellis_2_cut.safetensors", "default", "cpu")
    adapter = Trellis2Adapter()
    with pytest.raises(NodeError, match="latent.empty_trellis2_structure"):
        adapter.check_latent(None, Latent(torch.zeros(1, 64, 1, 1, 16), "hunyuan3d", 1, 8.0, 16, 1))
    handle = SimpleNamespace(pipe=SimpleNamespace(transformer=build_structure_flow(comfy_flow.state_dict())))
    other = Conditioning("hunyuan3d", torch.zeros(1, 5, CONFIG["hidden_size"]), meta={"kind": "image"})
    with pytest.raises(NodeError, match="make it with condition.trellis2"):
        adapter.conditioning_inputs(handle, [other, other], [0], 1, "cpu", torch.float32)
