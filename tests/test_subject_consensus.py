"""guide.subject_consensus: the motion-compensated template of a clip's denoised estimate.

Sizes are measured by the disc's colour (bench/mini_lab/colour_area.py), not by the consensus's own
idea of a subject (pixels far from the border colour), so a pass is not the algorithm grading itself."""
import cv2
import numpy as np
import torch

from nodes.mini.subject_consensus import _warp, subject_consensus
from bench.mini_lab.colour_area import area_variation, colour_areas
from bench.mini_lab.detector import detect
from nodes.mini.model import from_uint8, to_uint8


def disc_clip(radii, path, size=48, colour=(220, 40, 40)) -> np.ndarray:
    """uint8 [T,H,W,3]: an anti-aliased disc of radius radii[f] at path[f] (x, y) on a dark background."""
    frames = np.full((len(radii), size, size, 3), 12, np.uint8)
    shift = 4  # cv2 draws at 1/16 pixel with shift=4
    for f, (r, (x, y)) in enumerate(zip(radii, path)):
        cv2.circle(frames[f], (round(x * 16), round(y * 16)), round(r * 16), colour, -1, cv2.LINE_AA, shift)
    return frames


def consensus_of(clip: np.ndarray, strength: float) -> np.ndarray:
    return to_uint8(subject_consensus(from_uint8(clip)[None], strength))[0]


PATH = [(10 + 1.5 * f, 20 + 0.5 * f) for f in range(16)]


def test_warp_moves_content_by_the_offset():
    frame = torch.zeros(1, 1, 16, 16)
    frame[0, 0, 5:8, 3:6] = 1.0
    moved = _warp(frame, torch.ones(1), torch.tensor([[4.0, 6.0]]), torch.tensor([[9.0, 8.0]]))
    torch.testing.assert_close(moved, torch.roll(frame, shifts=(2, 5), dims=(2, 3)), atol=1e-5, rtol=0)


def test_wandering_size_is_pulled_to_one_size_along_the_measured_path():
    radii = 7 + 0.8 * np.sin(np.arange(16) * 1.3)   # +-23% in area, frame to frame
    clip = disc_clip(radii, PATH)
    out = consensus_of(clip, 1.0)
    assert area_variation(colour_areas(clip, "red")) > 0.15
    assert area_variation(colour_areas(out, "red")) < 0.04
    before, after = detect(clip), detect(out)
    # The subject stays where each frame had it.
    assert np.abs(after.centroids - before.centroids).max() < 0.3
    assert after.colour_stable() and after.colour == "red"


def test_a_steady_growth_is_kept():
    radii = np.linspace(5, 11, 16)
    clip = disc_clip(radii, [(24, 24)] * 16)
    before, after = colour_areas(clip, "red"), colour_areas(consensus_of(clip, 1.0), "red")
    assert after[-1] / after[0] > 3.5
    np.testing.assert_allclose(after, before, rtol=0.08)


def test_half_strength_is_half_way_and_zero_is_identity():
    x = from_uint8(disc_clip(7 + 0.8 * np.sin(np.arange(16) * 1.3), PATH))[None]
    assert subject_consensus(x, 0.0) is x
    full = subject_consensus(x, 1.0)
    torch.testing.assert_close(subject_consensus(x, 0.5), 0.5 * x + 0.5 * full)


def test_node_applies_the_consensus_at_every_step(tmp_path):
    from test_context_windows import build_tiny_mini, mini_graph, run_latent
    folder = build_tiny_mini(tmp_path)
    wf = mini_graph(folder, frames=8, noise="noise.independent", noise_params="{seed: 2}",
                    wrapper="guide.subject_consensus", wrapper_params="{strength: 0.0}", steps=3)
    off = run_latent(wf)
    plain = mini_graph(folder, frames=8, noise="noise.independent", noise_params="{seed: 2}",
                       wrapper="context.windows", wrapper_params="{length: 100}", steps=3)
    assert torch.equal(off, run_latent(plain))
    wf.set("wrap.strength", 0.7)
    on = run_latent(wf)
    assert float((on - off).abs().max()) > 0.05
    assert torch.equal(on, run_latent(wf))


def test_background_away_from_the_subject_is_untouched():
    # A gradient background and a disc that starts against the left edge: warping must bring in
    # background, not a smear of the edge, and pixels away from the disc must not change at all.
    radii = 6 + 0.6 * np.sin(np.arange(16) * 1.3)
    path = [(6 + 2 * f, 24) for f in range(16)]
    clip = disc_clip(radii, path)
    clip[..., 2] = np.linspace(20, 90, 48, dtype=np.uint8)[None, :, None]
    for f, (r, (x, y)) in enumerate(zip(radii, path)):
        cv2.circle(clip[f], (round(x * 16), round(y * 16)), round(r * 16), (220, 40, 40), -1, cv2.LINE_AA, 4)
    out = consensus_of(clip, 1.0)
    ys, xs = np.mgrid[0:48, 0:48]
    for f, (r, (x, y)) in enumerate(zip(radii, path)):
        far = np.hypot(xs - x, ys - y) > r + 8
        np.testing.assert_array_equal(out[f][far], clip[f][far])
    assert area_variation(colour_areas(out, "red")) < area_variation(colour_areas(clip, "red")) / 2


def test_other_model_families_are_refused():
    import pytest

    from graph_engine import NodeError
    from nodes.generate.handles import ModelHandle
    from nodes.mini.nodes import subject_consensus as node
    with pytest.raises(NodeError, match="kinograph-mini's pixels only.*'wan'.*latent space"):
        node(None, ModelHandle("wan", "", None), strength=0.5)
    wrapped = node(None, ModelHandle("mini", "", None), strength=0.5)
    assert wrapped.wrappers[0].strength == 0.5
