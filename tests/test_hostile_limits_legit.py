"""The hostile-input limits of pass 14 seen from a power user: each must refuse the attack without refusing real
work. Figures (counted with numpy on signed-distance shapes over decode.hunyuan3d's [-1.01, 1.01]^3 grid): a sphere
crosses 0.29 / 0.65 / 1.16 million cells at octree resolution 256 / 384 / 512, a heat sink of 20 fins 6.6 million at
512 (3.8 at 384): a fixed 4 million refused it, a noise grid crosses nearly every cell."""
import numpy as np
import torch
import pytest

from graph_engine import NodeError


def _sphere(n: int) -> np.ndarray:
    """A smooth occupancy (0..1, as ComfyUI's VOXEL) of a sphere on an n^3 grid."""
    a = np.linspace(-1.01, 1.01, n, dtype=np.float32)
    z, y, x = np.meshgrid(a, a, a, indexing="ij", sparse=True)
    return (1 / (1 + np.exp(-20 * (0.9 - np.sqrt(x * x + y * y + z * z))))).astype(np.float32)


def _crossed(grid: np.ndarray, threshold: float) -> int:
    """Cells whose eight corners straddle the threshold, the zero-padded grid's, as ComfyUI's surface net walks it."""
    above = np.pad(grid, 1) > threshold
    d, h, w = grid.shape
    views = [above[z:z + d, y:y + h, x:x + w] for z in (0, 1) for y in (0, 1) for x in (0, 1)]
    return int(np.count_nonzero(np.logical_or.reduce(views) & ~np.logical_and.reduce(views)))


@pytest.mark.parametrize("algorithm", ["surface net", "basic"])
def test_a_detailed_shape_past_the_old_fixed_count_is_meshed(monkeypatch, algorithm):
    """A real shape is a thin shell of the grid (a sphere crosses 0.9% of the cells at 512, a 20-fin heat sink 5%),
    so the count alone is no sign of noise: the heat sink's 6.6 million cells at resolution 512 were refused with 'the
    grid is noise'. Scaled down here: with the count lowered under a sphere's, the sphere still meshes."""
    from graph_engine.context import Context
    from nodes.common.mesh import Voxel
    from nodes.mesh import nodes, voxels
    grid = _sphere(97)
    crossed = _crossed(grid, 0.6)
    assert crossed < grid.size / 20
    monkeypatch.setattr(voxels, "MAX_CELLS", crossed // 4)
    mesh = nodes.from_voxels(Context("m"), Voxel(grid), algorithm=algorithm, threshold=0.6)
    assert len(mesh.vertices) == (crossed if algorithm == "surface net" else 4 * len(mesh.faces) // 2)
    assert len(mesh.faces) > crossed


@pytest.mark.parametrize("algorithm", ["surface net", "basic"])
def test_a_shape_larger_than_the_free_memory_is_named_with_what_it_takes(monkeypatch, algorithm):
    """A real shape whose mesh does not fit the memory free is refused before it is made, naming what it takes and
    how to fix it (a noisy grid is still named as noise, test_hostile_pass14)."""
    from graph_engine.context import Context
    from nodes.common import stream
    from nodes.common.mesh import Voxel
    from nodes.mesh import nodes
    monkeypatch.setattr(stream, "free_memory", lambda: 1 << 20)
    with pytest.raises(NodeError, match="more than the 1 MB this machine has free") as e:
        nodes.from_voxels(Context("m"), Voxel(_sphere(97)), algorithm=algorithm, threshold=0.6)
    assert "lower decode.hunyuan3d's resolution" in str(e.value)


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from diffusers import StableDiffusionPipeline
    from test_comfy_long_prompts import _handle
    from tiny_models import build_sd15_single_file
    return _handle(build_sd15_single_file, tmp_path_factory.mktemp("sd15"), "sd", StableDiffusionPipeline)


def _windows(k: int) -> str:
    """A prompt of k 77-token windows for the tiny encoders (a token a letter)."""
    return "x" * (75 * (k - 1) + 10)


def test_a_schedule_of_long_keyframes_within_a_long_prompts_length_is_encoded(sd15):
    """A Deforum-style schedule whose keyframes read 3, 4 and 5 windows (225 to 375 tokens: long style strings) is
    repeated to 60 windows, 12 times the longest: refused past 8 times, though one prompt of 64 windows reads. The
    common length is now refused only past both 8 times the longest and MAX_WINDOWS; 2, 3, 5, 7 (210 windows) and
    2, 3, 5, ..., 19 are still named (test_hostile_pass14). Each keyframe repeats whole, as ComfyUI's
    CONDCrossAttn.concat does: c.repeat(1, crossattn_max_len // c.shape[1], 1)."""
    from nodes.generate.clip_windows import MAX_WINDOWS
    from nodes.generate.text import encode_prompt
    assert 60 <= MAX_WINDOWS
    schedule = encode_prompt(sd15, ", ".join(f"{i * 10}: ({_windows(k)})" for i, k in enumerate((3, 4, 5))))
    assert schedule.embeds.shape[1] == 60 * 77
    for row, k in enumerate((3, 4, 5)):
        alone = encode_prompt(sd15, _windows(k)).embeds
        torch.testing.assert_close(schedule.embeds[row:row + 1], alone.repeat(1, 60 // k, 1))
    with pytest.raises(NodeError, match="210 windows"):
        encode_prompt(sd15, ", ".join(f"{i * 10}: ({_windows(k)})" for i, k in enumerate((5, 6, 7))))


def test_long_paths_windows_holds_are_not_called_damaged():
    """Windows (NTFS) counts a name's 255 and a long path's 32,767 in UTF-16 units, not UTF-8 bytes: a film's name
    of 120 Japanese characters (360 bytes, 120 units) and a deep project tree of 5,000 characters (long paths
    enabled) were called 'no file can be there'. A megabyte's name is still named on every system."""
    from graph_engine.validate import _past_limits
    film = "C:\\Projects\\" + "映画" * 60 + ".mp4"
    deep = "C:\\Projects\\" + "\\".join(["shot_%03d_" % i + "x" * 90 for i in range(50)]) + "\\plate.exr"
    assert len(film.encode()) > 255 + 20 and len(deep) > 4096
    assert _past_limits(film, "win32") is None
    assert _past_limits(deep, "win32") is None
    assert "paths hold at most 4,096" in _past_limits(deep.replace("\\", "/"), "linux")
    assert "file names hold at most 255" in _past_limits("/f/" + "映画" * 60 + ".mp4", "linux")
    for system in ("win32", "linux", "darwin"):
        assert "file names hold at most 255" in _past_limits("C:\\" + "a" * 1_000_000, system)


class _Reached(Exception):
    pass


def _point_map(width, height):
    """A MoGe geometry of a picture this size whose maps are never made: reaching them means it was not refused."""
    from types import SimpleNamespace

    from nodes.depth.moge import Geometry

    class Unmade(Geometry):
        def __init__(self):
            self.video, self.length, self.panorama = SimpleNamespace(width=width, height=height), 1, False

        def frames(self, a, b):
            raise _Reached
    return Unmade()


@pytest.mark.parametrize("size", [(8192, 4096), (7680, 4320), (8192, 5464)])
def test_an_8k_picture_or_panorama_is_meshed_at_full_detail(monkeypatch, size):
    """An 8K equirectangular panorama (depth.moge_panorama), an 8K UHD frame and a 45-megapixel photo make 33 to 45
    million vertices at decimation 1: about 7 to 9 GB to triangulate (200 bytes a pixel) and 2 to 2.6 GB of .glb,
    which holds 4 GB. A fixed 4096 x 4096 refused them; now what fits the .glb (8192 x 8192 vertices) and the memory
    free is meshed."""
    from graph_engine.context import Context
    from nodes.common import stream
    from nodes.mesh import nodes
    monkeypatch.setattr(stream, "free_memory", lambda: 32 << 30)
    with pytest.raises(_Reached):
        nodes.from_points(Context("m"), _point_map(*size), frame=0, decimation=1, discontinuity_threshold=0.04,
                          texture=True)


def test_a_point_map_larger_than_the_free_memory_is_named_with_the_decimation_that_fits(monkeypatch):
    """33.5 million vertices take about 6.7 GB to triangulate: with 1 GB free, decimation 3 (0.75 GB) fits."""
    from graph_engine.context import Context
    from nodes.common import stream
    from nodes.mesh import nodes
    monkeypatch.setattr(stream, "free_memory", lambda: 1 << 30)
    with pytest.raises(NodeError, match=r"takes about 6.7 GB, more than the 1.1 GB this machine has free.*"
                                        r"set decimation to 3 or more"):
        nodes.from_points(Context("m"), _point_map(8192, 4096), frame=0, decimation=1, discontinuity_threshold=0.04,
                          texture=True)
