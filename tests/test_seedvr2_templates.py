"""ComfyUI's utility_seedvr2_* templates run end to end on tiny models under the templates' file names (SeedVR2's VAE
from tests/tiny_seedvr2_vae.py; the 3B and 7B transformers from tests/test_seedvr2_dit.py, int8_convrot as the
templates name them): picture loaded, upscaled, padded (upscale.seedvr2_pad), encoded by SeedVR2's VAE, conditioned
(condition.seedvr2), sampled in one euler step at cfg 1, decoded and finished (upscale.seedvr2_finish). The sampled
latent is checked against ComfyUI's one step written out: ComfyUI's seeded noise minus the velocity its NaDiT
(test_seedvr2_dit.Ref) predicts at timestep 1000 beside the encoded clip and the file's positive prompt."""
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
PICTURE = (14, 10)          # width, height of the picture restored (x4: 56 x 40, padded to 64 x 48)


def _build(root: Path) -> Path:
    import comfy_convrot as cr
    from safetensors.torch import save_file
    from test_seedvr2_dit import tiny_state
    from tiny_seedvr2_vae import build_seedvr2_vae
    build_seedvr2_vae(root)
    folder = root / "models" / "diffusion_models"
    folder.mkdir(parents=True, exist_ok=True)
    for name, seven_b in (("seedvr2_3b_int8_convrot.safetensors", False), ("seedvr2_7b_int8_convrot.safetensors", True)):
        save_file(cr.quantise_file_state(tiny_state(seven_b), 16, prefix="blocks."), str(folder / name))
    return root


@pytest.fixture(scope="module")
def seedvr2(tmp_path_factory):
    from comfy_layouts import models_dir
    yield from models_dir(tmp_path_factory, _build, "seedvr2")


def _published(path: Path) -> dict:
    """A tiny int8_convrot file's tensors as ComfyUI's published dequantisation gives them."""
    import comfy_convrot as cr
    from safetensors.torch import load_file
    state = load_file(str(path))
    out = {}
    for k, v in state.items():
        if k.endswith((".weight_scale", ".comfy_quant")):
            continue
        s = state.get(f"{k}_scale")
        out[k] = v if s is None else (cr.dequantize_int8_convrot_weight(v, s, 16) if v.shape[1] % 16 == 0
                                      else v.float() * s)
    return out


@pytest.mark.parametrize("template", ["utility_seedvr2_3b_int8_upscale_image", "utility_seedvr2_7b_int8_upscale_image"])
def test_seedvr2_picture_templates_run(seedvr2, tmp_path, monkeypatch, template):
    from PIL import Image
    from app.comfyui import import_workflow
    from comfy_layouts import link_as
    from graph_engine.api import Session, load_workflow
    from test_seedvr2_dit import DIM, HD, HEADS, Ref
    from tiny_seedvr2_vae import FILE
    models = seedvr2 / "models"
    link_as(models / "vae" / "seedvr2_ema_vae_fp16.safetensors", models / "vae" / FILE)
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (PICTURE[1], PICTURE[0], 3), np.uint8)).save(tmp_path / "in.png")
    res = import_workflow(str(TEMPLATES / f"{template}.json"))
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"], res.report
    yaml = re.sub(r"path: \S+\.png", f"path: {tmp_path / 'in.png'}", res.yaml)
    yaml = re.sub(r"path: out/\S+", f"path: {tmp_path / 'out' / 'frame'}", yaml)
    wf = load_workflow(text=yaml, check=False)
    out = Session(device="cpu").run(wf, use_cache=False)
    assert out.ok, out.failed
    outputs = out.outputs
    encoded = next(v["latent"] for k, v in outputs.items() if k.startswith("vae_encode"))
    sampled = next(v["latent"] for k, v in outputs.items() if k.startswith("k_sampler"))
    finished = next(v["video"] for k, v in outputs.items() if k.startswith("seed_vr2_post"))
    assert (finished.width, finished.height, finished.length) == (PICTURE[0] * 4, PICTURE[1] * 4, 1)
    seed = int(re.search(r"k_sampler.*?seed: (\d+)", yaml, re.S).group(1))
    z = encoded.samples.float()
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
    seven_b = "7b" in template
    sd = _published(models / "diffusion_models" / f"seedvr2_{'7b' if seven_b else '3b'}_int8_convrot.safetensors")
    assert DIM == sd["vid_in.proj.weight"].shape[0]
    with torch.no_grad():
        v = Ref(sd, HEADS, HD, 4, 4 if seven_b else 2, not seven_b, seven_b)(
            noise, torch.cat((z, torch.ones_like(z[:, :1])), 1), torch.tensor([1000.0]), [sd["positive_conditioning"]])
    want = noise - v
    err = float((sampled.samples.float() - want).abs().max())
    assert err < 1e-3, err


def test_seedvr2_video_template_runs(seedvr2, tmp_path, monkeypatch):
    """The video template (3B, x2, trimming and temporal chunks switched off as published) on a clip of 6 frames:
    padded to 9 (4n+1), 3 latent frames sampled in one step, the clip's 6 frames back at twice its size."""
    import cv2
    from app.comfyui import import_workflow
    from comfy_layouts import link_as
    from graph_engine.api import Session, load_workflow
    from tiny_seedvr2_vae import FILE
    models = seedvr2 / "models"
    link_as(models / "vae" / "seedvr2_ema_vae_fp16.safetensors", models / "vae" / FILE)
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    clip = tmp_path / "in.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 8, (16, 12))
    for _ in range(6):
        writer.write(rng.integers(0, 256, (12, 16, 3), np.uint8))
    writer.release()
    res = import_workflow(str(TEMPLATES / "utility_seedvr2_3b_int8_upscale_video.json"))
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"], res.report
    yaml = re.sub(r"path: \S+\.mp4\n", f"path: {clip}\n", res.yaml, count=1)
    yaml = re.sub(r"path: out/\S+", f"path: {tmp_path / 'out.mp4'}", yaml)
    out = Session(device="cpu").run(load_workflow(text=yaml, check=False), use_cache=False)
    assert out.ok, out.failed
    sampled = next(v["latent"] for k, v in out.outputs.items() if k.startswith("k_sampler"))
    finished = next(v["video"] for k, v in out.outputs.items() if k.startswith("seed_vr2_post"))
    assert sampled.samples.shape[2] == 3 and torch.isfinite(sampled.samples).all()
    assert (finished.width, finished.height, finished.length) == (32, 24, 6)


def test_tiled_decode_is_reported_as_approximate():
    """ComfyUI's VAEDecodeTiled decodes the templates' restored pictures (4x: over 512 pixels a side) in 512-pixel
    tiles blended over 128 (comfy/ldm/seedvr/vae.py decode_tiled -> tiled_vae), where vae.decode decodes whole
    frames: the import said "mapped exactly" for it, while its VAEEncodeTiled twin was reported as approximate."""
    from app.comfyui import import_workflow
    for name in ("utility_seedvr2_3b_int8_upscale_image", "utility_seedvr2_3b_int8_upscale_video"):
        res = import_workflow(str(TEMPLATES / f"{name}.json"))
        entry = next(e for e in res.report.entries.values() if e.class_type == "VAEDecodeTiled")
        assert entry.status == "approx" and "tile" in " ".join(entry.notes), (name, entry)
