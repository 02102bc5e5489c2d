"""TRELLIS.2's structure stage (nodes/generate/trellis2.py) against ComfyUI's published code written out in
trellis2_reference.py, on a tiny random-weight shape VAE in the published key layout (struct_dec., shape_dec.)."""
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
from nodes.generate.trellis2 import build_structure_decoder, decode_structure, empty_structure_latent  # noqa: E402

WIDTHS = [8, 4, 2]          # the real decoder's [512, 128, 32] (2 residual blocks each, 2 in the middle), narrower


def _comfy_decoder(seed: int = 0, probe=None, share: float = 0.03) -> ref.SparseStructureDecoder:
    """ComfyUI's decoder with random weights; its output bias set so that `share` of the 64^3 cells decoded from
    `probe` (a latent) are set: a shape, not a full or empty grid."""
    torch.manual_seed(seed)
    dec = ref.SparseStructureDecoder(out_channels=1, latent_channels=8, num_res_blocks=2, channels=WIDTHS,
                                     num_res_blocks_middle=2)
    with torch.no_grad():       # norms away from 1 / 0 so a swapped weight and bias would show
        for name, p in dec.named_parameters():
            if "norm" in name or "out_layer.0" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
        if probe is not None:
            logits = dec(probe[:, :8])
            dec.out_layer[2].bias -= torch.quantile(logits.flatten(), 1 - share)
    return dec.eval()


class _Handle:              # what load.vae hands decode.trellis2_structure: a pipe holding struct_dec
    def __init__(self, decoder):
        self.pipe = type("Pipe", (), {"struct_dec": decoder})()


def test_structure_decoder_matches_comfyui():
    comfy = _comfy_decoder()
    ours = build_structure_decoder(comfy.state_dict())
    x = torch.randn(1, 8, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = comfy(x), ours(x)
    assert got.shape == want.shape == (1, 1, 64, 64, 64)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


@pytest.mark.parametrize("resolution", [32, 64])
def test_decode_gives_comfyuis_voxel(resolution):
    """The VOXEL is VaeDecodeStructureTrellis2's: the first 8 of the latent's 32 channels decoded, logits above 0
    set, max-pooled to 32 a side when asked."""
    latent = empty_structure_latent(1)
    assert torch.equal(latent.samples, ref.empty_latent_structure(1))
    latent.samples.normal_(generator=torch.Generator().manual_seed(3))
    comfy = _comfy_decoder(2, latent.samples)
    with torch.no_grad():
        want = ref.vae_decode_structure(comfy, latent.samples, resolution)[0].numpy()
    got = decode_structure(_Handle(build_structure_decoder(comfy.state_dict())), latent, resolution)
    assert got.grid.shape == (resolution,) * 3
    assert np.array_equal(got.grid, want)
    assert 0 < got.grid.mean() < 1        # a shape: cells in and out


def _vae_decoder():
    """The tiny file's decoder: a shape (some 20% of its 32^3 cells) from the empty latent."""
    return _comfy_decoder(4, ref.empty_latent_structure(1), 0.5)


def _tiny_vae(folder: Path) -> Path:
    path = folder / "vae" / "trellis_2_shape_vae_bf16.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {f"struct_dec.{k}": v.to(torch.bfloat16).contiguous() for k, v in _vae_decoder().state_dict().items()}
    state["shape_dec.from_latent.weight"] = torch.zeros(8, 32, dtype=torch.bfloat16)
    save_file(state, str(path))
    texture = folder / "vae" / "trellis_2_texture_vae_bf16.safetensors"
    save_file({"txt_dec.from_latent.weight": torch.zeros(8, 32, dtype=torch.bfloat16)}, str(texture))
    return path


def _prompt(vae: str) -> dict:
    """ComfyUI's structure stage of the Pixal3D / TRELLIS.2 templates as an API prompt, its coarse preview mesh
    saved: EmptyTrellis2LatentStructure -> VaeDecodeStructureTrellis2 -> VoxelToMesh -> GetMeshInfo ->
    MeshToFile3D -> Save3DAdvanced."""
    return {
        "117": {"class_type": "VAELoader", "inputs": {"vae_name": vae}},
        "87": {"class_type": "EmptyTrellis2LatentStructure", "inputs": {"batch_size": 1}},
        "119": {"class_type": "VaeDecodeStructureTrellis2",
                "inputs": {"samples": ["87", 0], "vae": ["117", 0], "resolution": "32"}},
        "4": {"class_type": "VoxelToMesh", "inputs": {"voxel": ["119", 0], "algorithm": "basic", "threshold": 0.6}},
        "202": {"class_type": "GetMeshInfo", "inputs": {"mesh": ["4", 0]}},
        "247": {"class_type": "MeshToFile3D", "inputs": {"mesh": ["202", 0]}},
        "322": {"class_type": "Save3DAdvanced", "inputs": {"model_3d": ["247", 0], "filename_prefix": "3d/ComfyUI",
                                                           "viewport_state": "", "width": 1024, "height": 1024}},
    }


def test_comfyui_structure_stage_imports_and_runs(tmp_path, monkeypatch):
    """The structure stage imports with every node mapped and runs on the tiny VAE file: the VOXEL is ComfyUI's for
    the empty latent, and a .glb of its mesh is written where Save3DAdvanced's prefix says."""
    import trimesh
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    _tiny_vae(tmp_path / "models")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)
    res = import_data(_prompt("trellis_2_shape_vae_bf16.safetensors"))
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"], res.report
    wf = load_workflow(text=res.yaml, check=False)
    decoder = next(n for n, i in wf.graph.nodes.items() if i.type == "decode.trellis2_structure")
    out = Session(device="cpu").run(wf, use_cache=False, keep=[decoder])
    assert out.ok, out.failed
    comfy = _vae_decoder().to(torch.bfloat16).float()        # the file's weights, as stored
    with torch.no_grad():
        want = ref.vae_decode_structure(comfy, ref.empty_latent_structure(1), 32)[0].numpy()
    assert np.array_equal(out.outputs[decoder]["voxel"].grid, want)
    written = sorted(tmp_path.rglob("*.glb"))
    assert [p.relative_to(tmp_path).parts[-2:] for p in written] == [("3d", "ComfyUI.glb")]
    mesh = trimesh.load(written[0], force="mesh")
    assert 0 < want.mean() < 1 and len(mesh.faces) > 0 and (np.abs(mesh.vertices) <= 1.0 + 1e-6).all()


def test_wrong_inputs_are_named(tmp_path, monkeypatch):
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.latent import Latent
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import will_load
    shape = _tiny_vae(tmp_path / "models")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    texture = shape.with_name("trellis_2_texture_vae_bf16.safetensors")
    assert will_load(detect_file(shape))[0] and not will_load(detect_file(texture))[0]      # as `kinograph info` says
    with pytest.raises(NodeError, match="texture VAE, which Kinograph does not read yet"):
        load_vae(ModelManager(), "trellis_2_texture_vae_bf16.safetensors", "cpu")
    damaged = shape.with_name("trellis_2_shape_vae_cut.safetensors")      # a copy cut short
    save_file({"struct_dec.input_layer.weight": torch.zeros(8, 8, 3, 3, 3)}, str(damaged))
    with pytest.raises(NodeError, match="incomplete or damaged"):
        load_vae(ModelManager(), damaged.name, "cpu")
    vae = load_vae(ModelManager(), "trellis_2_shape_vae_bf16.safetensors", "cpu")
    with pytest.raises(NodeError, match="not a TRELLIS.2 structure latent"):
        decode_structure(vae, Latent(torch.zeros(1, 64, 1, 1, 16), "hunyuan3d", 1, 8.0, 16, 1), 32)   # a shape latent
    with pytest.raises(NodeError, match="one VOXEL"):
        decode_structure(vae, empty_structure_latent(2), 32)
    with pytest.raises(NodeError, match="needs TRELLIS.2's shape VAE"):
        decode_structure(None, empty_structure_latent(1), 32)
