"""Pictures of a SPLAT (nodes/mesh/splat_render.py, splat.render) against ComfyUI's RenderSplat and
CreateCameraInfo written out in splat_render_reference.py, on a small random splat (2,000 Gaussians: two depth
slabs) at a small size."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import splat_render_reference as ref  # noqa: E402

W, H = 40, 32


@pytest.fixture(scope="module")
def splat():
    """a lumpy shell of 2,000 flattened Gaussians about the origin (two depth slabs)"""
    from nodes.common.splat import Splat
    g = torch.Generator().manual_seed(3)
    n = 2000
    d = torch.randn(n, 3, generator=g)
    pos = d / d.norm(dim=1, keepdim=True) * (0.5 + 0.1 * torch.rand(n, 1, generator=g))
    scales = torch.rand(n, 3, generator=g) * 0.04 + 0.005
    scales[:, 2] *= 0.1
    rot = torch.randn(n, 4, generator=g)
    return Splat(pos.numpy(), scales.numpy(), (rot / rot.norm(dim=1, keepdim=True)).numpy(),
                 torch.rand(n, generator=g).numpy() * 0.9 + 0.1, torch.randn(n, 1, 3, generator=g).numpy())


def _tensors(s):
    return (torch.from_numpy(s.positions), torch.from_numpy(s.scales), torch.from_numpy(s.rotations),
            torch.from_numpy(s.opacities), torch.from_numpy(s.sh))


def _first(s, n):
    from nodes.common.splat import Splat
    return Splat(s.positions[:n], s.scales[:n], s.rotations[:n], s.opacities[:n], s.sh[:n])


@pytest.mark.parametrize("camera, frames, style, sharpen, headlight, count", [
    ({"mode": "orbit", "yaw": 35.0, "pitch": 30.0, "distance": 2.5}, 1, "color", 2.0, 0.0, 2000),   # the template's
    ({"mode": "look_at", "position_x": 1.0, "position_y": -0.5, "position_z": 2.0}, 2, "clay", 1.0, 0.0, 600),
    (None, -2, "depth", 1.0, 0.0, 600),
    ({"mode": "orbit", "yaw": -60.0, "pitch": 10.0, "distance": 3.0}, 1, "normal", 1.0, 1.0, 600),
])
def test_render_is_comfyuis(splat, camera, frames, style, sharpen, headlight, count):
    from nodes.mesh.splat_render import look_at, orbit, render_frames
    splat = _first(splat, count)
    kw = dict(fov=35.0, zoom=1.0, projection="perspective", roll=0.0)
    want_cam = ours = None
    if camera is not None:
        want_cam = ref.create_camera_info(camera, 0.0, 0.0, 0.0, 0.0, 35.0, 1.0, "perspective")
        ours = orbit(camera["yaw"], camera["pitch"], camera["distance"], **kw) if camera["mode"] == "orbit" else \
            look_at((camera["position_x"], camera["position_y"], camera["position_z"]), (0.0, 0.0, 0.0), **kw)
        flat = lambda c: [c[k][a] for k in ("position", "target") for a in "xyz"] + [  # noqa: E731
            c["quaternion"][a] for a in "xyzw"] + [c["fov"], c["zoom"]]
        assert flat(ours) == pytest.approx(flat(want_cam), abs=1e-6) and ours["cameraType"] == want_cam["cameraType"]
    with torch.no_grad():
        want, want_mask = ref.render_splat(*_tensors(splat), W, H, frames, 1.0, sharpen, headlight, 0.0, "#848484",
                                           style, want_cam)
    got, mask = render_frames(splat, W, H, ours, frames, 1.0, sharpen, headlight, 0.0, style, "#848484")
    assert got.shape == tuple(want.shape) == (abs(frames), H, W, 3)
    assert np.abs(got - want.numpy()).max() < 1e-4, float(np.abs(got - want.numpy()).max())
    assert np.abs(mask - want_mask.numpy()).max() < 1e-4
    assert 0.05 < mask.mean() < 0.95                   # the splat covers part of the picture


def test_orthographic_rolled_and_faint_culled(splat):
    from nodes.mesh.splat_render import look_at, render_frames
    splat = _first(splat, 600)
    want_cam = ref.create_camera_info({"mode": "orbit", "yaw": 120.0, "pitch": -20.0, "distance": 2.0}, 0.1, 0.0,
                                      0.0, 15.0, 50.0, 1.5, "orthographic")
    p = want_cam["position"]
    ours = look_at((p["x"], p["y"], p["z"]), (0.1, 0.0, 0.0), 50.0, 1.5, "orthographic", 15.0)
    with torch.no_grad():
        want, _ = ref.render_splat(*_tensors(splat), W, H, 1, 1.5, 2.0, 0.0, 0.5, "#102030", "color", want_cam)
    got, _ = render_frames(splat, W, H, ours, 1, 1.5, 2.0, 0.0, 0.5, "color", "#102030")
    assert np.abs(got - want.numpy()).max() < 1e-4


def test_bad_settings_are_named(splat):
    from graph_engine import NodeError
    from nodes.mesh.splat_render import render_frames
    with pytest.raises(NodeError, match="#RRGGBB"):
        render_frames(splat, W, H, None, background="grey")
    with pytest.raises(NodeError, match="render style"):
        render_frames(splat, W, H, None, style="wire")
