"""SPLAT files (nodes/mesh/splat_files.py, io.save_splat) against ComfyUI's SplatToFile3D writers written out below
(comfy_extras/nodes_gaussian_splat.py: _gaussian_spz_bytes, _gaussian_ply_bytes), the .spz read back as Niantic's
spz reader unpacks version 2 (load-spz.cc: 24-bit fixed-point positions, alpha / 255, (colour / 255 - 0.5) / 0.15,
exp(scale / 16 - 10), x y z = byte / 127.5 - 1 and w rebuilt)."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

_C0 = 0.28209479177387814
_SPZ_MAGIC, _SPZ_VERSION, _SPZ_FRACTIONAL_BITS = 0x5053474E, 2, 12
_SPZ_COLOR_SCALE = _C0 / 0.15


def comfy_spz_bytes(positions, scales, rotations, opacities, sh) -> bytes:
    xyz = positions.cpu().numpy().astype(np.float32)
    n = xyz.shape[0]
    fixed = 1 << _SPZ_FRACTIONAL_BITS
    qi = np.clip(np.round(xyz * fixed), -(1 << 23), (1 << 23) - 1).astype(np.int32)
    qu = (qi & 0xFFFFFF).astype(np.uint32)
    pos = np.stack([qu & 0xFF, (qu >> 8) & 0xFF, (qu >> 16) & 0xFF], axis=-1).reshape(n, 9).astype(np.uint8)
    alpha = np.round(opacities.cpu().numpy().astype(np.float32).reshape(n) * 255.0).clip(0, 255).astype(np.uint8)
    rgb = sh[:, 0, :].cpu().numpy().astype(np.float32) * _C0 + 0.5
    col = np.round(((rgb - 0.5) / _SPZ_COLOR_SCALE + 0.5) * 255.0).clip(0, 255).astype(np.uint8)
    sln = np.log(scales.cpu().numpy().astype(np.float32).clip(min=1e-9))
    scb = np.round((sln + 10.0) * 16.0).clip(0, 255).astype(np.uint8)
    rot = rotations.cpu().numpy().astype(np.float32)
    rot = rot / np.linalg.norm(rot, axis=1, keepdims=True).clip(1e-12)
    rot[rot[:, 0] < 0] *= -1.0
    rotb = np.round((rot[:, 1:4] + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    header = bytearray(16)
    struct.pack_into('<I', header, 0, _SPZ_MAGIC)
    struct.pack_into('<I', header, 4, _SPZ_VERSION)
    struct.pack_into('<I', header, 8, n)
    header[12] = 0
    header[13] = _SPZ_FRACTIONAL_BITS
    raw = bytes(header) + pos.tobytes() + alpha.tobytes() + col.tobytes() + scb.tobytes() + rotb.tobytes()
    return gzip.compress(raw)


def comfy_ply_bytes(positions, scales, rotations, opacities, sh) -> bytes:
    xyz = positions.cpu().numpy().astype(np.float32)
    n = xyz.shape[0]
    normals = np.zeros_like(xyz)
    f = sh.cpu().numpy().astype(np.float32)
    f_dc = f[:, 0, :]
    f_rest = f[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)
    op = opacities.cpu().numpy().astype(np.float32).reshape(n, 1).clip(1e-6, 1 - 1e-6)
    op = np.log(op / (1.0 - op))
    scale = np.log(scales.cpu().numpy().astype(np.float32).clip(min=1e-8))
    rot = rotations.cpu().numpy().astype(np.float32)
    attrs = (['x', 'y', 'z', 'nx', 'ny', 'nz'] + [f'f_dc_{i}' for i in range(3)]
             + [f'f_rest_{i}' for i in range(f_rest.shape[1])]
             + ['opacity'] + [f'scale_{i}' for i in range(3)] + [f'rot_{i}' for i in range(4)])
    elements = np.empty(n, dtype=[(a, 'f4') for a in attrs])
    elements[:] = list(map(tuple, np.concatenate([xyz, normals, f_dc, f_rest, op, scale, rot], axis=1)))
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n"
    header += "".join(f"property float {a}\n" for a in attrs) + "end_header\n"
    return header.encode('ascii') + elements.tobytes()


def niantic_unpack_v2(data: bytes):
    """load-spz.cc's unpacking of a version-2, degree-0 file: (positions, alphas, colours (SH DC), scales, xyzw)"""
    raw = gzip.decompress(data)
    magic, version, n, degree, bits, _, _ = struct.unpack_from("<IIIBBBB", raw)
    assert (magic, version, degree) == (0x5053474E, 2, 0)
    o = 16
    p = np.frombuffer(raw, np.uint8, n * 9, o).reshape(n, 3, 3).astype(np.int32)
    fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed | ~0xFFFFFF, fixed)
    positions = fixed / float(1 << bits)
    o += n * 9
    alphas = np.frombuffer(raw, np.uint8, n, o) / 255.0
    o += n
    colors = (np.frombuffer(raw, np.uint8, n * 3, o).reshape(n, 3) / 255.0 - 0.5) / 0.15
    o += n * 3
    scales = np.exp(np.frombuffer(raw, np.uint8, n * 3, o).reshape(n, 3) / 16.0 - 10.0)
    o += n * 3
    xyz = np.frombuffer(raw, np.uint8, n * 3, o).reshape(n, 3) / 127.5 - 1.0
    w = np.sqrt(np.maximum(0.0, 1.0 - (xyz ** 2).sum(1)))
    assert o + n * 3 == len(raw)
    return positions, alphas, colors, scales, np.concatenate([w[:, None], xyz], 1)


@pytest.fixture(scope="module")
def splat():
    from nodes.common.splat import Splat
    g = torch.Generator().manual_seed(0)
    n = 500
    rot = torch.randn(n, 4, generator=g)
    return Splat(torch.randn(n, 3, generator=g).numpy() * 0.4, (torch.rand(n, 3, generator=g) * 0.05 + 1e-3).numpy(),
                 (rot / rot.norm(dim=1, keepdim=True)).numpy(), torch.rand(n, generator=g).numpy(),
                 torch.randn(n, 1, 3, generator=g).numpy())


def _tensors(s):
    return (torch.from_numpy(s.positions), torch.from_numpy(s.scales), torch.from_numpy(s.rotations),
            torch.from_numpy(s.opacities)[:, None], torch.from_numpy(s.sh))


def test_spz_is_comfyuis_and_reads_back(splat):
    from nodes.mesh.splat_files import spz_bytes
    ours = spz_bytes(splat)
    assert gzip.decompress(ours) == gzip.decompress(comfy_spz_bytes(*_tensors(splat)))
    pos, alpha, color, scale, rot = niantic_unpack_v2(ours)
    assert np.abs(pos - splat.positions).max() <= 0.5 / 4096 + 1e-7
    assert np.abs(alpha - splat.opacities).max() <= 0.5 / 255 + 1e-6
    held = np.abs(splat.sh[:, 0]) < 0.5 / 0.15       # a byte holds DC -3.33..3.33
    assert np.abs(color - splat.sh[:, 0])[held].max() <= 0.5 / 255 / 0.15 + 1e-5
    assert np.abs(np.log(scale) - np.log(splat.scales)).max() <= 0.5 / 16 + 1e-5
    signed = np.where(splat.rotations[:, :1] < 0, -splat.rotations, splat.rotations)
    assert np.abs(rot - signed).max() < 0.1         # 8 bits a component, w rebuilt


def test_ply_is_comfyuis(splat):
    from nodes.mesh.splat_files import ply_bytes
    assert ply_bytes(splat) == comfy_ply_bytes(*_tensors(splat))


def test_save_splat_writes_and_names_bad_paths(splat, tmp_path):
    from graph_engine import NodeError
    from nodes.common.splat import Splat
    from nodes.mesh.splat_files import write_splat
    info = write_splat(splat, str(tmp_path / "a.spz"))
    assert info["gaussians"] == 500 and (tmp_path / "a.spz").stat().st_size == info["bytes"]
    with pytest.raises(NodeError, match="not a splat file name"):
        write_splat(splat, str(tmp_path / "a.glb"))
    with pytest.raises(NodeError, match="must be of shape"):
        Splat(splat.positions, splat.scales[:, :2], splat.rotations, splat.opacities, splat.sh)
    state = splat.to_state()
    again = Splat.from_state(*state)
    assert np.array_equal(again.sh, splat.sh) and np.array_equal(again.opacities, splat.opacities)
