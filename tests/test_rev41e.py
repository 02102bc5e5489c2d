"""rev41e's review of TripoSplat (tripo40, tripo41): a TripoSplat latent's shape tokens and camera token are one
sample, which latent.cut / latent.concat / latent.upscale refuse by name instead of making a latent the sampler
refuses later (or, joined, one whose second camera token is silently dropped)."""
from __future__ import annotations

import pytest
import torch


def _tripo(camera=True):
    from nodes.generate.latent import Latent
    return Latent(torch.randn(1, 16, 1, 1, 8192), "triposplat", 1, 1.0, 8192, 1,
                  camera=torch.randn(1, 1, 5) if camera else None)


@pytest.mark.parametrize("op", ["cut", "concat", "concat_second", "upscale"])
def test_latent_ops_refuse_a_triposplat_latent(op):
    from graph_engine import NodeError
    from nodes.generate.latent import concat_latents, cut_latent, upscale_latent
    run = {"cut": lambda: cut_latent(_tripo(), "x", 0, 64),
           "concat": lambda: concat_latents(_tripo(), _tripo(), "x"),
           "concat_second": lambda: concat_latents(_tripo(camera=False), _tripo(), "t"),
           "upscale": lambda: upscale_latent(_tripo(), 1.5)}[op]
    with pytest.raises(NodeError, match="camera token.*condition.triposplat"):
        run()


def test_a_splat_render_opened_from_the_history_says_what_it_is():
    """io.save_splat's .spz opened from the history went to io.load_video ('the file is damaged, cut short or not
    a video', in red); its .ply was called a 3-D mesh. The viewer says it is a splat it does not draw and how to
    see one (splat.render); a .glb is still a mesh."""
    from pathlib import Path
    from app.editor.window import not_drawn
    spz = not_drawn(Path("out/chair.spz"))
    assert spz and "chair.spz" in spz and "Gaussian splat" in spz and "splat.render" in spz, spz
    ply = not_drawn(Path("out/chair.ply"))
    assert ply and "Gaussian splat" in ply and "3-D mesh" in ply, ply
    assert "3-D mesh" in not_drawn(Path("out/a.glb")) and not_drawn(Path("out/a.mp4")) is None


def _splat(scales, opacities=None):
    import numpy as np
    from nodes.common.splat import Splat
    n = len(scales)
    g = np.random.default_rng(0)
    q = g.normal(size=(n, 4))
    return Splat(g.normal(size=(n, 3)) * 0.3, np.asarray(scales, np.float32), q / np.linalg.norm(q, axis=1)[:, None],
                 np.full(n, 0.8) if opacities is None else opacities, g.normal(size=(n, 1, 3)))


def test_render_draws_point_and_boundless_gaussians():
    """A Gaussian of zero size (all three scales 0) stopped splat.render with torch's 'linalg.inv: ... the input
    matrix is singular'; one of scale 1e30 with 'cannot convert float NaN to integer' (its covariance overflowed
    float32). A point draws as nothing; a boundless one as the fog over the whole picture a 1e6 one is."""
    import numpy as np
    from nodes.mesh.splat_render import render_frames
    scales = np.full((40, 3), 0.02)
    scales[0] = 0.0
    pictures, cover = render_frames(_splat(scales), 32, 24, None)
    assert np.isfinite(pictures).all() and 0.0 < cover.mean() < 1.0
    scales[0] = 1e30
    pictures, cover = render_frames(_splat(scales), 32, 24, None)
    scales[0] = 1e6
    want, want_cover = render_frames(_splat(scales), 32, 24, None)
    assert np.isfinite(pictures).all() and cover.min() > 0.5
    assert np.abs(pictures - want).max() < 1e-4 and np.abs(cover - want_cover).max() < 1e-4


def test_negative_scales_are_named():
    """A negative scale (the axes' standard deviations) was taken: splat.render drew it as its size (it squares
    the scales) while the .spz and .ply writers wrote it as the least size there is. It is refused by name."""
    import numpy as np
    from graph_engine import NodeError
    scales = np.full((4, 3), 0.02)
    scales[1, 2] = -0.02
    with pytest.raises(NodeError, match="scales hold 1 negative"):
        _splat(scales)


def test_a_splat_is_counted_at_its_size_in_the_memory_cache():
    """value_nbytes gave every SPLAT 256 bytes (its fallback): a million-Gaussian splat (56 MB) counted as nothing
    against the memory cache's budget and the disk cache's cap. It counts its arrays."""
    import numpy as np
    from graph_engine.cache import MemoryCache, value_nbytes
    splat = _splat(np.full((1000, 3), 0.02))
    size = sum(getattr(splat, k).nbytes for k in ("positions", "scales", "rotations", "opacities", "sh"))
    assert value_nbytes(splat) == size == 1000 * 14 * 4
    cache = MemoryCache(budget_bytes=size * 2)
    for i in range(3):
        cache.put(str(i), _splat(np.full((1000, 3), 0.02)))
    assert len(cache) == 2 and cache.bytes == 2 * size


def test_auto_camera_frames_a_splat_of_one_place():
    """splat.render's own camera (camera auto) framed a splat by how far its Gaussians' centres lie apart: one
    Gaussian (or many in one place) put the camera 0.35 thousandths away, inside the near limit, and the picture
    came out empty. It frames their size too."""
    import numpy as np
    from nodes.common.splat import Splat
    from nodes.mesh.splat_render import render_frames
    for n in (1, 5):
        splat = Splat(np.tile([[1.0, 2.0, 3.0]], (n, 1)), np.full((n, 3), 0.05), np.tile([[1.0, 0, 0, 0]], (n, 1)),
                      np.full(n, 0.9), np.zeros((n, 1, 3)))
        _, cover = render_frames(splat, 32, 24, None)
        assert 0.05 < cover.mean() < 0.95, (n, float(cover.mean()))
