"""Wan as ComfyUI users hold it: split files (diffusion_models/, text_encoders/, vae/, clip_vision/) in
fp16, fp8_scaled and GGUF, loaded through the graph's split loaders and compared with the same tiny
model loaded from its diffusers folder."""
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

GRAPH = """
kinograph: 1
nodes:
%(loaders)s
  prompt: {type: encode.text, inputs: {text_encoder: %(te)s}, params: {text: a red fox, negative: blurry}}
  latent: {type: latent.empty, inputs: {vae: %(vae)s}, params: {frames: 5, width: 32, height: 32}}
  sample:
    type: generate.sample
    inputs: {model: %(model)s, positive: prompt.positive, negative: prompt.negative, latent: latent.latent}
    params: {steps: 2, sampler: flow_euler, seed: 3, cfg: 4.0}
  decode: {type: vae.decode, inputs: {vae: %(vae)s, latent: sample.latent}}
"""
SPLIT = GRAPH % {"loaders": """  unet: {type: load.diffusion_model, params: {name: %(unet)s}}
  clip: {type: load.text_encoder, params: {name: umt5_tiny_fp16.safetensors, type: wan}}
  vae: {type: load.vae, params: {name: wan_tiny_vae.safetensors}}""", "te": "clip.text_encoder",
                 "vae": "vae.vae", "model": "unet.model"}
FOLDER = GRAPH % {"loaders": "  load: {type: load.wan, params: {path: %(path)s}}", "te": "load.text_encoder",
                  "vae": "load.vae", "model": "load.model"}


@pytest.fixture(scope="module")
def wan(tmp_path_factory, monkeypatch_module):
    from tiny_models import build_wan_comfy
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = build_wan_comfy(tmp_path_factory.mktemp("wan_comfy"))
    monkeypatch_module.setenv("KINOGRAPH_MODELS", str(root / "models"))
    yield root
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _run(text):
    from graph_engine.api import Session, load_workflow
    res = Session(device="cpu").run(load_workflow(text=text, check=False), use_cache=False)
    assert res.ok, res.failed
    return res.outputs


@pytest.fixture(scope="module")
def reference(wan):
    return _run(FOLDER % {"path": wan / "diffusers"})


@pytest.mark.parametrize("unet,tol", [("wan_tiny_t2v_fp16.safetensors", 1e-5),
                                      ("wan_tiny_t2v_fp8_scaled.safetensors", None),
                                      ("wan_tiny_t2v-Q8_0.gguf", None)])
def test_split_files_match_the_diffusers_folder(wan, reference, unet, tol):
    out = _run(SPLIT % {"unet": unet})
    ref = reference["sample"]["latent"].samples
    got = out["sample"]["latent"].samples
    assert got.shape == ref.shape
    if tol is not None:
        # fp16 weights stored in both layouts: the same numbers, so the same latent.
        assert torch.allclose(got, ref, atol=tol), (got - ref).abs().max()
        assert torch.equal(out["prompt"]["positive"].embeds, reference["prompt"]["positive"].embeds)
        frames = out["decode"]["video"].frames(0, 5)
        assert (abs(frames.astype(int) - reference["decode"]["video"].frames(0, 5).astype(int)) <= 1).all()
    else:
        # Quantised weights: close to the fp16 result, and nowhere near the raw-fp8 hazard.
        rel = (got - ref).norm() / ref.norm()
        assert rel < 0.05, rel


def test_fp8_scaled_weights_load_dequantised(wan):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    mm = ModelManager()
    scaled = load_diffusion_model(mm, "wan_tiny_t2v_fp8_scaled.safetensors", "default", "cpu").denoiser
    fp16 = load_diffusion_model(mm, "wan_tiny_t2v_fp16.safetensors", "default", "cpu").denoiser
    a = scaled.blocks[0].attn1.to_q.weight
    b = fp16.blocks[0].attn1.to_q.weight
    assert torch.allclose(a, b, rtol=0.07, atol=b.abs().max().item() * 0.02)


def test_wrong_file_in_a_split_loader_says_what_it_is(wan):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    with pytest.raises(NodeError, match="umt5.*not a VAE"):
        load_vae(ModelManager(), str(wan / "models" / "text_encoders" / "umt5_tiny_fp16.safetensors"), "cpu")


def test_info_lists_each_file_with_family_variant_precision(wan):
    import os
    from tests.cli_run import cli
    out = cli("info", env=dict(os.environ, KINOGRAPH_MODELS=str(wan / "models"))).stdout
    rows = {line.split()[-1].rsplit("/", 1)[-1]: line.split() for line in out.splitlines() if "/models/" in line}
    assert rows["wan_tiny_t2v_fp16.safetensors"][:5] == ["wan", "t2v-dim128", "diffusion_model", "fp16", "yes"]
    assert rows["wan_tiny_t2v_fp8_scaled.safetensors"][3] == "fp8_scaled"
    assert rows["wan_tiny_t2v-Q8_0.gguf"][3] == "gguf-Q8_0"
    assert rows["umt5_tiny_fp16.safetensors"][:3] == ["umt5", "d32", "text_encoder"]
    assert rows["wan_tiny_vae.safetensors"][:3] == ["wan", "2.1", "vae"]


def test_wan_i2v_from_split_files_matches_the_diffusers_folder(tmp_path_factory, monkeypatch):
    """Wan 2.1 image-to-video from diffusion_models/ + text_encoders/ + vae/ + clip_vision/, against the folder."""
    import numpy as np
    from tiny_models import build_wan_comfy
    from nodes.generate.image_cond import condition_frames, encode_image
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_clip_vision, load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    root = build_wan_comfy(tmp_path_factory.mktemp("wan_i2v"), i2v=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(root / "models"))
    mm = ModelManager(max_loaded=8)
    folder = mm.load("wan", str(root / "diffusers"))
    ref_parts = {"model": folder, **mm.components(folder)}
    split = {"model": load_diffusion_model(mm, "wan_tiny_i2v_fp16.safetensors", "default", "cpu"),
             "text_encoder": load_text_encoder(mm, "umt5_tiny_fp16.safetensors", "", "wan", "cpu"),
             "vae": load_vae(mm, "wan_tiny_vae.safetensors", "cpu"),
             "image_encoder": load_clip_vision(mm, "clip_vision_tiny.safetensors", "wan", "cpu")}
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)

    def run(p):
        pos, neg = (encode_prompt(p["text_encoder"], t) for t in ("a cat", ""))
        lat = empty_latent(p["vae"], 5, 32, 32, 16.0)
        c = condition_frames(p["vae"], pos, neg, lat, img, None, encode_image(p["image_encoder"], img))
        return run_sampling(p["model"], c["positive"], c["negative"], lat, steps=2, cfg=4.0, sampler="flow_euler",
                            seed=1).samples
    ref, got = run(ref_parts), run(split)
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    assert split["model"].denoiser.config.image_dim == 32


def test_shipped_comfyui_files_example_runs(wan, tmp_path):
    from graph_engine.api import Session, load_workflow
    out = tmp_path / "wan.mp4"
    res = Session(device="cpu").run(load_workflow(ROOT / "examples" / "wan_comfyui_files.yaml", check=False), overrides=[
        "unet.name=wan_tiny_t2v-Q8_0.gguf", "clip.name=umt5_tiny_fp16.safetensors", "vae.name=wan_tiny_vae.safetensors",
        "latent.frames=5", "latent.width=32", "latent.height=32", "sample.steps=2", f"save.path={out}"], use_cache=False)
    assert res.ok, res.failed
    assert out.stat().st_size > 0


def test_load_wan_takes_split_parts_as_inputs(wan, reference):
    """load.wan with no folder: the diffusion model file as its path, text encoder and VAE from the split loaders."""
    text = GRAPH % {"loaders": """  clip: {type: load.text_encoder, params: {name: umt5_tiny_fp16.safetensors}}
  vae: {type: load.vae, params: {name: wan_tiny_vae.safetensors}}
  load:
    type: load.wan
    inputs: {text_encoder: clip.text_encoder, vae: vae.vae}
    params: {path: wan_tiny_t2v_fp16.safetensors}""", "te": "load.text_encoder", "vae": "load.vae",
                    "model": "load.model"}
    out = _run(text)
    assert torch.allclose(out["sample"]["latent"].samples, reference["sample"]["latent"].samples, atol=1e-5)
    from graph_engine.api import Session, load_workflow
    # the loaders' own refusals are judged here, past the up-front file check (which already refuses load.ltx's path)
    bad = GRAPH % {"loaders": """  clip: {type: load.text_encoder, params: {name: umt5_tiny_fp16.safetensors, type: wan}}
  load: {type: load.ltx, inputs: {text_encoder: clip.text_encoder}, params: {path: wan_tiny_t2v_fp16.safetensors}}""",
                   "te": "load.text_encoder", "vae": "load.vae", "model": "load.model"}
    res = Session(device="cpu").run(load_workflow(text=bad, check=False), use_cache=False, precheck=False)
    assert not res.ok and "wan part" in " ".join(res.failed.values())
    # Wan's encoder typed for LTX-Video is refused by its own loader, which names the type that reads it.
    bad = GRAPH % {"loaders": """  clip: {type: load.text_encoder, params: {name: umt5_tiny_fp16.safetensors, type: ltxv}}
  load: {type: load.wan, inputs: {text_encoder: clip.text_encoder}, params: {path: wan_tiny_t2v_fp16.safetensors}}""",
                   "te": "load.text_encoder", "vae": "load.vae", "model": "load.model"}
    res = Session(device="cpu").run(load_workflow(text=bad, check=False), use_cache=False, precheck=False)
    assert not res.ok and "type wan" in res.failed["clip"]


def test_wan_lora_in_comfyui_and_kohya_layouts_equals_the_diffusers_form(wan, tmp_path):
    """A Wan LoRA as ComfyUI (diffusion_model.blocks.0.self_attn.q.lora_A) and kohya (lora_unet_blocks_0_self_attn_q)
    save it gives the same video as its diffusers/PEFT form (transformer.blocks.0.attn1.to_q.lora_A)."""
    from safetensors.torch import save_file
    from nodes.generate.detect import detect_file
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    torch.manual_seed(5)
    peft, comfy, kohya = {}, {}, {}
    for blk in range(2):
        # Every projection, as trainers write them (diffusers' kohya reader expects the full set).
        pairs = [(f"attn{i}.{o}", f"{t}.{x}") for i, t in ((1, "self_attn"), (2, "cross_attn"))
                 for o, x in (("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "o"))]
        for ours, theirs in pairs + [("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2")]:
            width_in, width_out = {"ffn.0": (128, 32), "ffn.2": (32, 128)}.get(theirs, (128, 128))
            a, b = torch.randn(4, width_in) * 0.3, torch.randn(width_out, 4) * 0.3
            peft[f"transformer.blocks.{blk}.{ours}.lora_A.weight"] = a
            peft[f"transformer.blocks.{blk}.{ours}.lora_B.weight"] = b
            comfy[f"diffusion_model.blocks.{blk}.{theirs}.lora_A.weight"] = a
            comfy[f"diffusion_model.blocks.{blk}.{theirs}.lora_B.weight"] = b
            name = f"lora_unet_blocks_{blk}_{theirs.replace('.', '_')}"
            kohya[f"{name}.lora_down.weight"], kohya[f"{name}.lora_up.weight"] = a, b
            kohya[f"{name}.alpha"] = torch.tensor(4.0)
    paths = {}
    for name, state in (("peft", peft), ("comfy", comfy), ("kohya", kohya)):
        paths[name] = tmp_path / f"wan_{name}.safetensors"
        save_file(state, str(paths[name]))
    assert detect_file(paths["comfy"]).family == "wan" and detect_file(paths["kohya"]).family == "wan"
    mm = ModelManager(max_loaded=8)
    model = load_diffusion_model(mm, "wan_tiny_t2v_fp16.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "umt5_tiny_fp16.safetensors", "", "wan", "cpu")
    vae = load_vae(mm, "wan_tiny_vae.safetensors", "cpu")
    pos, neg = encode_prompt(te, "a fox"), encode_prompt(te, "")

    def sample(m):
        return run_sampling(m, pos, neg, empty_latent(vae, 5, 32, 32, 16.0), steps=2, cfg=4.0, sampler="flow_euler",
                            seed=2).samples
    base = sample(model)
    out = {name: sample(add_lora(model, str(p), 0.7)) for name, p in paths.items()}
    assert not torch.allclose(base, out["peft"], atol=1e-3)
    assert torch.allclose(out["comfy"], out["peft"], atol=1e-5)
    assert torch.allclose(out["kohya"], out["peft"], atol=1e-5)


def test_load_model_finds_a_diffusion_model_file_by_its_name(wan, reference):
    """load.model (family auto) given the name of a file in diffusion_models/ looked in checkpoints/ alone and said
    'model not found' for a file the models folder holds."""
    text = SPLIT.replace("unet: {type: load.diffusion_model, params: {name: %(unet)s}}",
                         "unet: {type: load.model, params: {path: wan_tiny_t2v_fp16.safetensors}}")
    out = _run(text)
    assert torch.allclose(out["sample"]["latent"].samples, reference["sample"]["latent"].samples, atol=1e-5)


def test_load_model_loads_a_diffusion_model_file_kept_in_checkpoints(wan, reference):
    """load.model (family auto) found a denoiser-only file in checkpoints/ (ComfyUI's CheckpointLoaderSimple's folder),
    then looked it up again by name in diffusion_models/ and said 'model not found ... files there are loaded by
    load.model', of the very node that failed."""
    import shutil
    (wan / "models" / "checkpoints").mkdir(exist_ok=True)
    shutil.copy(wan / "models" / "diffusion_models" / "wan_tiny_t2v_fp16.safetensors",
                wan / "models" / "checkpoints" / "kept_as_checkpoint.safetensors")
    text = SPLIT.replace("unet: {type: load.diffusion_model, params: {name: %(unet)s}}",
                         "unet: {type: load.model, params: {path: kept_as_checkpoint.safetensors}}")
    out = _run(text)
    assert torch.allclose(out["sample"]["latent"].samples, reference["sample"]["latent"].samples, atol=1e-5)
