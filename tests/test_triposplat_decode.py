"""TripoSplat's Gaussian decoder (nodes/generate/triposplat_vae.py, decode.triposplat) against ComfyUI's
OctreeGaussianDecoder and VAEDecodeTripoSplat written out in triposplat_reference.py, on a tiny random file in the
layout of VAST-AI/TripoSplat's vae/triposplat_vae_decoder_fp16.safetensors (octree., gs.)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import triposplat_reference as ref  # noqa: E402

VAE = "triposplat_vae_decoder_fp16.safetensors"
TOKENS = 64         # the latent's 8192 shape tokens, fewer (the decoders cross-attend to as many as there are)


@pytest.fixture(scope="module")
def comfy_decoders():
    """ComfyUI's two decoders (1024 wide, 16 heads, 4 and 16 blocks in the real file), narrow and one block deep,
    random: norms and gains away from 1 / 0"""
    torch.manual_seed(5)
    octree = ref.OctreeProbabilityFixedlenDecoder(model_channels=48, num_blocks=1, num_heads=2, mlp_ratio=2.0)
    gs = ref.ElasticGaussianFixedlenDecoder(model_channels=48, num_blocks=1, num_heads=2, mlp_ratio=2.0)
    with torch.no_grad():
        for model in (octree, gs):
            for name, p in model.named_parameters():
                one = "gamma" in name or name.endswith("norm2.weight")
                p.copy_(torch.randn_like(p) * (0.3 if one else 0.2) + (1.0 if one else 0.0))
    return octree.eval(), gs.eval()


@pytest.fixture(scope="module")
def vae(tmp_path_factory, comfy_decoders):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    root = tmp_path_factory.mktemp("triposplat_vae")
    (root / "vae").mkdir()
    octree, gs = comfy_decoders
    state = {f"octree.{k}": v for k, v in octree.state_dict().items()}
    state.update({f"gs.{k}": v for k, v in gs.state_dict().items()})       # its fixed offsets ride along
    save_file({k: v.contiguous() for k, v in state.items()}, str(root / "vae" / VAE))
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(root))
    try:
        yield load_vae(ModelManager(), VAE, "cpu")
    finally:
        mp.undo()


def _latent(seed):
    from nodes.generate.latent import Latent
    tokens = torch.randn(1, TOKENS, 16, generator=torch.Generator().manual_seed(seed))
    return tokens, Latent(tokens.transpose(1, 2).reshape(1, 16, 1, 1, TOKENS), "triposplat", 1, 1.0, TOKENS, 1,
                          camera=torch.randn(1, 1, 5))


def test_decode_is_comfyuis(comfy_decoders, vae):
    """the same points for the seed (the octree's draws level by level, the jitter), the same Gaussians: positions,
    scales, rotations (Y up), opacities and colour as render_tensors gives them"""
    from nodes.generate.triposplat_vae import decode
    tokens, latent = _latent(1)
    seed = 790219963981395
    with torch.no_grad():
        want = ref.vae_decode_triposplat(*comfy_decoders, tokens, 32768, seed)
    got = decode(vae, latent, 32768, seed)
    assert len(got) == 32768
    for name, w in zip(("positions", "scales", "rotations", "opacities", "sh"), want):
        g = getattr(got, name)
        w = w.reshape(g.shape).numpy()
        assert np.allclose(g, w, atol=1e-4), (name, float(np.abs(g - w).max()))
    assert got.positions.std(0).min() > 0.05 and 0 < got.opacities.mean() < 1     # spread, not all alike


def test_wrong_inputs_are_named(vae):
    from graph_engine import NodeError
    from nodes.generate.detect import detect_file
    from nodes.generate.latent import Latent
    from nodes.generate.model_manager import will_load
    from nodes.generate.triposplat_vae import build_vae, decode
    det = detect_file(Path(vae.path))
    assert (det.role, det.family) == ("vae", "triposplat") and will_load(det)[0]
    with pytest.raises(NodeError, match="needs TripoSplat's decoder"):
        decode(None, _latent(2)[1], 32768, 0)
    with pytest.raises(NodeError, match="not a TripoSplat one"):
        decode(vae, Latent(torch.zeros(1, 32, 16, 16, 16), "trellis2", 16, 8.0, 16, 16), 32768, 0)
    with pytest.raises(NodeError, match="cut short or another model's"):
        build_vae({"octree.input_layer.weight": torch.zeros(8, 8)})
