"""Small things rev41's helpers noticed and left alone: meshes and voxel grids sized in the caches, the other
latent ops refusing a TripoSplat latent, ..."""
from __future__ import annotations

import numpy as np
import pytest
import torch


def test_a_mesh_and_a_voxel_grid_are_counted_at_their_size_in_the_caches():
    """value_nbytes gave every MESH and VOXEL 256 bytes (its fallback), so a big mesh or grid was unseen by the
    memory cache's budget and the disk cache's cap. They count their arrays."""
    from graph_engine.cache import MemoryCache, value_nbytes
    from nodes.common.mesh import Mesh, Voxel
    v = np.random.rand(500, 3)
    f = np.random.randint(0, 500, (800, 3))
    uv = np.random.rand(500, 2)
    tex = np.zeros((16, 16, 3), np.uint8)
    mesh = Mesh(v, f, uvs=uv, texture=tex)
    assert value_nbytes(mesh) == 500 * 3 * 4 + 800 * 3 * 4 + 500 * 2 * 4 + 16 * 16 * 3
    vox = Voxel(np.zeros((20, 20, 20)))
    assert value_nbytes(vox) == 20 ** 3 * 4
    cache = MemoryCache(budget_bytes=2 * value_nbytes(vox))
    for i in range(4):
        cache.put(str(i), Voxel(np.zeros((20, 20, 20))))
    assert len(cache) == 2


def _tripo(camera=True):
    from nodes.generate.latent import Latent
    return Latent(torch.randn(1, 16, 1, 1, 8192), "triposplat", 1, 1.0, 8192, 1,
                  camera=torch.randn(1, 1, 5) if camera else None)


@pytest.mark.parametrize("op", ["adain", "adain_reference", "composite", "composite_source", "set_mask"])
def test_more_latent_ops_refuse_a_triposplat_latent(op):
    """latent.adain, latent.composite and latent.set_mask took a TripoSplat latent and made one generate.sample
    refused later (or mixed its camera token into statistics); they refuse it by name as latent.cut does."""
    from graph_engine import NodeError
    from nodes.generate.inpaint import set_mask
    from nodes.generate.latent import adain_latent
    from nodes.generate.regions import composite
    plain = _tripo(camera=False)
    run = {"adain": lambda: adain_latent(_tripo(), plain, 1.0),
           "adain_reference": lambda: adain_latent(plain, _tripo(), 1.0),
           "composite": lambda: composite(_tripo(), plain, None, 0, 0, False),
           "composite_source": lambda: composite(plain, _tripo(), None, 0, 0, False),
           "set_mask": lambda: set_mask(_tripo(), torch.ones(1, 1, 1))}[op]
    with pytest.raises(NodeError, match="camera token.*condition.triposplat"):
        run()
