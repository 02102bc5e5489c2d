"""Regional prompting (ComfyUI's ConditioningSetArea, ConditioningSetAreaPercentage, ConditioningSetMask,
ConditioningCombine, ConditioningAverage, ConditioningConcat) and the mask plumbing around it (LoadImageMask,
CropMask, LatentCompositeMasked, JoinImageWithAlpha, SplitImageWithAlpha): the weights and areas as ComfyUI's
samplers.py computes them, the sampler on a tiny random-weight SD 1.5, and ComfyUI workflows in both file formats
imported and run."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from comfyui_workflows import run_imported as _run_import, ui_format  # noqa: E402
CKPT = "sd15_tiny.safetensors"


def _cond(rows=1, length=4, dim=3, value=1.0, pooled=None):
    from nodes.generate.latent import Conditioning
    return Conditioning("sd", torch.full((rows, length, dim), float(value)), pooled=pooled)


def _area(c, h, w, y, x, strength=1.0, kind="pixels"):
    from nodes.generate.regions import with_region
    return with_region(c, area=[kind, h, w, y, x], strength=strength, bounds=False)


# -- the maths, as ComfyUI's get_area_and_mult and resolve_areas_and_cond_masks ------------------------------------
def test_an_areas_weight_fades_along_its_inner_edges_in_latent_pixels():
    """ConditioningSetArea 128 x 256 at y 64 on a 512 x 512 picture (an 8x VAE): latent area 16 wide, 32 high at row 8;
    the weight fades over 8 rows at its top and bottom (inside the picture), over 4 columns (a quarter of 16) at its
    right, not at its left (the picture's edge)."""
    from nodes.generate.regions import resolve
    part = resolve(_area(_cond(), 256, 128, 64, 0, strength=2.0), (1, 4, 1, 64, 64), 8, 1)
    assert part.area == (32, 16, 8, 0)
    m = part.mult[0, 0, 0]
    assert m.shape == (32, 16)
    assert m[16, 0] == 2.0 and m[16, 8] == 2.0                  # inside, left edge on the picture's edge: full
    assert m[0, 5] == pytest.approx(2.0 / 8) and m[7, 5] == pytest.approx(2.0)        # top rows fade in 8
    assert m[31, 5] == pytest.approx(2.0 / 8) and m[16, 15] == pytest.approx(2.0 / 4)  # bottom; right in 4
    assert m[31, 15] == pytest.approx(2.0 / 32) and m[16, 12] == pytest.approx(2.0)


def test_fraction_areas_resolve_on_the_latent_grid_and_areas_past_the_edge_are_cut():
    from nodes.generate.regions import resolve
    part = resolve(_area(_cond(), 0.5, 0.25, 0.5, 0.75, kind="fraction"), (1, 4, 1, 64, 64), 8, 1)
    assert part.area == (32, 16, 32, 48)
    m = part.mult[0, 0, 0]
    assert m[31, 15] == 1.0 and m[0, 0] == pytest.approx(1 / 8 * 1 / 4)   # ends on the edges: no fade there
    wide = resolve(_area(_cond(), 512, 512, 256, 384), (1, 4, 1, 64, 64), 8, 1)
    assert wide.area == (32, 16, 32, 48)                        # cut where the picture ends, as ComfyUI's min()
    from graph_engine import NodeError
    with pytest.raises(NodeError, match="starts outside"):
        resolve(_area(_cond(), 64, 64, 0, 512), (1, 4, 1, 64, 64), 8, 1)


def test_a_mask_is_stretched_bilinearly_and_mask_bounds_crop_to_it():
    """ConditioningSetMask: the mask meets the latent grid bilinearly; with set_cond_area 'mask bounds' the model
    runs on its bounding box (at least 8 latent pixels across), the mask's values weighting the result there."""
    from nodes.generate.regions import mask_tensor, resolve, with_region
    px = np.zeros((256, 256), np.float32)
    px[64:192, 32:96] = 1
    c = with_region(_cond(), mask_tensor(px), mask_strength=0.5, bounds=True)
    part = resolve(c, (1, 4, 1, 32, 32), 8, 1)
    assert part.area == (16, 8, 8, 4)
    assert torch.all(part.mult == 0.5)
    plain = resolve(with_region(_cond(), mask_tensor(px), mask_strength=1.0, bounds=False), (1, 4, 1, 32, 32), 8, 1)
    assert plain.area is None and plain.mult.shape == (1, 1, 1, 32, 32)
    assert plain.mult[0, 0, 0, 8, 4] == 1 and plain.mult[0, 0, 0, 7, 4] == 0 and plain.mult.sum() == 16 * 8
    empty = resolve(with_region(_cond(), mask_tensor(np.zeros((256, 256), np.float32)), bounds=True),
                    (1, 4, 1, 32, 32), 8, 1)
    assert empty.area == (8, 8, 0, 0) and empty.mult.max() == 0


def test_predictions_are_averaged_by_weight_and_the_negative_gets_each_area():
    """calc_cond_batch: each conditioning's prediction times its weight, summed, over the summed weights; where no
    weight reaches the prediction is 0. Each area of the positive gets the negative run over the same area
    (create_cond_with_same_area_if_none)."""
    from nodes.generate.regions import combine, denoised, mask_tensor, plan, with_region
    a, b, n = _cond(value=1), _cond(value=3), _cond(value=0)
    pos = combine(a, _area(b, 64, 64, 64, 64, strength=2.0))     # 8 x 8 latent pixels at (8, 8)
    sides = plan([n, pos], (1, 1, 1, 32, 32), 8, 1)
    assert [p.area for p in sides[0]] == [None, (8, 8, 8, 8)]
    assert torch.equal(sides[0][1].mult, sides[1][1].mult) and float(sides[0][1].cond.embeds[0, 0, 0]) == 0
    x = torch.zeros(1, 1, 1, 32, 32)
    calls = []

    def run(c, xs, sl):
        calls.append(tuple(xs.shape[-2:]))
        return torch.full_like(xs, float(c.embeds[0, 0, 0]))
    neg, out = denoised(sides, x, [0], run)
    assert calls == [(32, 32), (8, 8), (32, 32), (8, 8)]
    assert out[0, 0, 0, 11, 11] == pytest.approx((1 + 3 * 2) / 3) and out[0, 0, 0, 0, 0] == pytest.approx(1)
    w = 2 * 0.5 * 0.5                                            # a corner: faded over 2 (a quarter of 8) both ways
    assert out[0, 0, 0, 8, 8] == pytest.approx((1 + 3 * w) / (1 + w))
    assert torch.all(neg == 0)
    half = np.zeros((256, 256), np.float32)
    half[:, :128] = 1
    alone = plan([with_region(a, mask_tensor(half), mask_strength=1.0, bounds=False)], (1, 1, 1, 32, 32), 8, 1)
    only = denoised(alone, x, [0], run)[0]
    assert torch.all(only[..., :16] == 1) and torch.all(only[..., 16:] == 0)      # nothing weighs the right half


def test_average_and_concat_as_comfyui():
    from nodes.generate.regions import average, combine, concat
    to = _cond(length=4, value=2.0, pooled=torch.full((1, 2), 4.0))
    frm = _cond(length=2, value=1.0, pooled=torch.full((1, 2), 0.0))
    avg = average(to, frm, 0.25)
    assert avg.embeds.shape == (1, 4, 3)
    assert torch.allclose(avg.embeds[0, :2], torch.full((2, 3), 0.25 * 2 + 0.75 * 1))
    assert torch.allclose(avg.embeds[0, 2:], torch.full((2, 3), 0.25 * 2))        # padded with zeros
    assert torch.allclose(avg.pooled, torch.full((1, 2), 1.0))
    cat = concat(combine(to, to), frm)
    assert [e.embeds.shape[1] for e in cat.entries()] == [6, 6] and float(cat.embeds[0, 5, 0]) == 1.0


def test_a_combined_region_survives_the_disk_cache():
    from nodes.generate.latent import Conditioning
    from nodes.generate.regions import combine, mask_tensor, with_region
    c = combine(_cond(value=1), with_region(_cond(value=2), mask_tensor(np.ones((8, 8), np.float32)), bounds=True))
    back = Conditioning.from_state(*c.to_state())
    assert len(back.entries()) == 2 and back.parts[0].meta["region"]["bounds"] is True
    assert torch.equal(back.parts[0].extra["region_mask"], c.parts[0].extra["region_mask"])


def test_latent_composite_pastes_at_whole_latent_pixels_under_the_mask():
    """LatentCompositeMasked: x, y in pixels // 8, the source cut at the destination's edge, the mask bilinear on the
    source's grid."""
    from nodes.generate.latent import Latent
    from nodes.generate.regions import composite
    dest = Latent(torch.zeros(1, 4, 1, 8, 8), "sd", 1, 8.0, 64, 64)
    src = Latent(torch.ones(1, 4, 1, 4, 4), "sd", 1, 8.0, 32, 32)
    out = composite(dest, src, None, 19, 8, False).samples[0, 0, 0]
    assert out[1:5, 2:6].min() == 1 and out.sum() == 16
    edge = composite(dest, src, None, 48, 0, False).samples[0, 0, 0]
    assert edge[:4, 6:].min() == 1 and edge.sum() == 8
    m = np.zeros((32, 32), np.float32)
    m[:, 16:] = 1
    half = composite(dest, src, m, 0, 0, False).samples[0, 0, 0]
    assert half[:4, :2].max() == 0 and half[:4, 2:4].min() == 1


def test_latent_composite_feathers_the_pasted_edges_inside_the_destination():
    """LatentComposite, hand-worked: x 16, feather 16 pixels are 2 latent pixels on an 8x VAE; rows (columns) k from
    an edge inside the destination weigh (k + 1) / 2, the top edge (on the destination's) none; the blend is
    source x weight + destination x (1 - weight). A fade wider than half the source multiplies where the two
    sides meet (feather 24 on a 2-pixel source: 1/3 x 2/3 on both rows)."""
    from nodes.generate.latent import Latent
    from nodes.generate.regions import composite
    dest = Latent(torch.full((1, 4, 1, 8, 8), 2.0), "sd", 1, 8.0, 64, 64)
    src = Latent(torch.ones(1, 4, 1, 4, 4), "sd", 1, 8.0, 32, 32)
    out = composite(dest, src, None, 16, 0, False, feather=16).samples[0, 0, 0]
    w = torch.tensor([[.5, 1, 1, .5]] * 3 + [[.25, .5, .5, .25]])
    assert torch.allclose(out[:4, 2:6], 1 * w + 2 * (1 - w))
    assert torch.all(out[4:] == 2) and torch.all(out[:, :2] == 2) and torch.all(out[:, 6:] == 2)
    assert torch.equal(composite(dest, src, None, 16, 0, False, feather=7).samples,
                       composite(dest, src, None, 16, 0, False).samples)         # under one latent pixel: none
    small = Latent(torch.ones(1, 4, 1, 2, 2), "sd", 1, 8.0, 16, 16)
    tight = composite(dest, small, None, 16, 16, False, feather=24).samples[0, 0, 0]
    w = (1 / 3) * (2 / 3)
    assert torch.allclose(tight[2:4, 2:4], torch.full((2, 2), 1 * w * w + 2 * (1 - w * w)))


def test_crop_mask_cuts_a_still_or_a_clip():
    from graph_engine import Clip, NodeError
    from nodes.common import masks
    m = np.arange(48, dtype=np.float32).reshape(6, 8) / 48
    assert np.array_equal(masks.cropped(m, 2, 1, 3, 10), m[1:6, 2:5])
    like = Clip.from_array(np.zeros((2, 6, 8, 3), np.uint8), 8.0)
    clip = masks.clip_of(lambda a, b: np.stack([m] * (b - a)), like)
    cut = masks.cropped(clip, 2, 1, 3, 2)
    assert (cut.width, cut.height, cut.length) == (3, 2, 2) and cut.frames(1, 2).shape == (1, 2, 3, 1)
    with pytest.raises(NodeError, match="outside"):
        masks.cropped(m, 8, 0, 2, 2)


# -- on a real pipeline ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    from tiny_models import build_sd15_single_file
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = build_sd15_single_file(tmp_path_factory.mktemp("sd_regional"))
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager(max_loaded=2)
    h = mm.load("sd", str(root / "diffusers"))
    yield {"root": root, "handle": h, "parts": mm.components(h)}
    torch.set_num_threads(threads)


def _enc(sd, text):
    from nodes.generate.text import encode_prompt
    return encode_prompt(sd["parts"]["text_encoder"], text)


def test_the_sampler_averages_a_full_prompt_and_an_area_prompt_as_comfyui(sd):
    """One guided step of the sampler with a prompt over the picture combined with another in an area equals the
    model run on the whole latent under the first, on the area's part of the latent alone under the second,
    averaged by weight; the negative likewise over the same area; then guidance."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.regions import combine
    from nodes.generate.sampling import guided_model_fn
    h = sd["handle"]
    adapter = get_adapter("sd")
    a, b, n = _enc(sd, "a red door"), _enc(sd, "a cat"), _enc(sd, "")
    x = torch.randn(1, 4, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 3
    sigma = 3.0
    fn = guided_model_fn(h, adapter, combine(a, _area(b, 32, 32, 16, 8, strength=1.5)), n, 5.0, 1, "cpu",
                         torch.float32, 1)
    got = fn(x, sigma)

    def plain(c, xs):
        return guided_model_fn(h, adapter, c, None, 1.0, 1, "cpu", torch.float32, 1)(xs, sigma)
    sl = (..., slice(8, 24), slice(4, 20))       # the tiny VAE is 2x: 32 px at (8, 16) is 16 latent px at (4, 8)
    ramp = torch.ones(16)
    ramp[:4], ramp[-4:] = torch.arange(1, 5) / 4, torch.arange(4, 0, -1) / 4      # faded over a quarter of 16
    w = 1.5 * ramp.view(-1, 1) * ramp.view(1, -1)

    def side(c):
        full = plain(c, x)
        total, count = full.clone(), torch.ones_like(full)
        total[sl] += plain(b if c is a else n, x[sl]) * w
        count[sl] += w
        return total / count
    want_cond, want_uncond = side(a), side(n)
    want = want_uncond + (want_cond - want_uncond) * 5.0
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert not torch.allclose(got, guided_model_fn(h, adapter, a, n, 5.0, 1, "cpu", torch.float32, 1)(x, sigma))


def test_regions_that_add_nothing_sample_as_the_plain_prompt(sd):
    """A prompt combined with itself, and a prompt in a mask of all ones, sample the same latent as the prompt."""
    from nodes.generate.regions import combine, mask_tensor, with_region
    from nodes.generate.sampling import run_sampling
    from nodes.generate.vae_ops import empty_latent
    lat = empty_latent(sd["parts"]["vae"], 1, 64, 64, 8.0)
    a, n = _enc(sd, "a red door"), _enc(sd, "")

    def s(pos):
        return run_sampling(sd["handle"], pos, n, lat, steps=3, cfg=5.0, sampler="euler", seed=1).samples
    base = s(a)
    assert torch.allclose(s(combine(a, a)), base, atol=1e-4)
    assert torch.allclose(s(with_region(a, mask_tensor(np.ones((64, 64), np.float32)), mask_strength=1.0)), base,
                          atol=1e-4)
    right = np.zeros((64, 64), np.float32)
    right[:, 32:] = 1
    other = s(combine(a, with_region(_enc(sd, "a cat"), mask_tensor(right), mask_strength=1.0, bounds=True)))
    left = (other - base).abs()[..., :12].max()
    assert left < 1e-3 and (other - base).abs()[..., 20:].mean() > 100 * max(float(left), 1e-6)


# -- ComfyUI workflows -----------------------------------------------------------------------------------------------


def test_comfyui_regional_prompting_workflow_ui_format_runs(sd, tmp_path, monkeypatch):
    """A regional-prompting graph as ComfyUI's UI saves it: a prompt for the picture, one in an area (pixels), one
    in an area (fractions), one in a painted mask (LoadImageMask, CropMask, mask bounds), combined, averaged and
    concatenated, sampled and saved. Every node maps exactly (LoadImageMask's colour channel says what differs) and
    it runs to a picture."""
    from PIL import Image
    monkeypatch.setenv("KINOGRAPH_MODELS", str(sd["root"] / "models"))
    paint = np.zeros((80, 80, 3), np.uint8)
    paint[16:48, 40:72] = 255
    Image.fromarray(paint).save(tmp_path / "paint.png")
    M, C, L, K = "MODEL", "CONDITIONING", "LATENT", "MASK"
    data = ui_format([
        (1, "CheckpointLoaderSimple", [CKPT], {}, [M, "CLIP", "VAE"]),
        (2, "CLIPTextEncode", ["a field"], {"clip": (1, 1, "CLIP")}, [C]),
        (3, "CLIPTextEncode", ["a red barn"], {"clip": (1, 1, "CLIP")}, [C]),
        (4, "CLIPTextEncode", ["blue sky"], {"clip": (1, 1, "CLIP")}, [C]),
        (5, "CLIPTextEncode", ["a cow"], {"clip": (1, 1, "CLIP")}, [C]),
        (6, "CLIPTextEncode", ["blurry"], {"clip": (1, 1, "CLIP")}, [C]),
        (7, "ConditioningSetArea", [32, 32, 0, 32, 1.2], {"conditioning": (3, 0, C)}, [C]),
        (8, "ConditioningSetAreaPercentage", [1.0, 0.25, 0.0, 0.0, 1.0], {"conditioning": (4, 0, C)}, [C]),
        (9, "LoadImageMask", ["paint.png", "red", "image"], {}, [K]),
        (10, "CropMask", [8, 8, 64, 64], {"mask": (9, 0, K)}, [K]),
        (11, "ConditioningSetMask", [1.0, "mask bounds"], {"conditioning": (5, 0, C), "mask": (10, 0, K)}, [C]),
        (12, "ConditioningCombine", [], {"conditioning_1": (2, 0, C), "conditioning_2": (7, 0, C)}, [C]),
        (13, "ConditioningCombine", [], {"conditioning_1": (12, 0, C), "conditioning_2": (8, 0, C)}, [C]),
        (14, "ConditioningConcat", [], {"conditioning_to": (13, 0, C), "conditioning_from": (11, 0, C)}, [C]),
        (15, "ConditioningAverage", [0.8], {"conditioning_to": (14, 0, C), "conditioning_from": (5, 0, C)}, [C]),
        (16, "ConditioningCombine", [], {"conditioning_1": (15, 0, C), "conditioning_2": (11, 0, C)}, [C]),
        (17, "EmptyLatentImage", [64, 64, 1], {}, [L]),
        (18, "KSampler", [5, "fixed", 2, 6.0, "euler", "normal", 1.0],
         {"model": (1, 0, M), "positive": (16, 0, C), "negative": (6, 0, C), "latent_image": (17, 0, L)}, [L]),
        (19, "VAEDecode", [], {"samples": (18, 0, L), "vae": (1, 2, "VAE")}, ["IMAGE"]),
        (20, "SaveImage", ["regional"], {"images": (19, 0, "IMAGE")}, []),
    ])
    res = _run_import(data, tmp_path)
    status = {e.class_type: e for e in res.report.entries.values()}
    for cls in ("ConditioningSetArea", "ConditioningSetAreaPercentage", "ConditioningSetMask", "ConditioningCombine",
                "ConditioningAverage", "ConditioningConcat", "CropMask"):
        assert status[cls].status == "exact", (cls, status[cls].notes)
    assert status["LoadImageMask"].status == "approx" and "laid over black" in " ".join(status["LoadImageMask"].notes)
    types = sorted(n.type for n in res.graph.nodes.values() if n.type.startswith(("condition.", "mask.")))
    assert types == ["condition.area", "condition.area_fraction", "condition.average", "condition.combine",
                     "condition.combine", "condition.combine", "condition.concat", "condition.mask", "mask.crop",
                     "mask.from_video"], types
    mask_node = next(n for n in res.graph.nodes.values() if n.type == "condition.mask")
    assert mask_node.params["bounds"] is True
    saved = list((tmp_path / "out").rglob("*.png"))
    assert len(saved) == 1 and Image.open(saved[0]).size == (64, 64)


def test_comfyui_masks_alpha_and_latent_composite_api_format_run(sd, tmp_path, monkeypatch):
    """API format: two samplings pasted together with LatentCompositeMasked under a SolidMask, a picture given an
    alpha (JoinImageWithAlpha) and split again (SplitImageWithAlpha): the mask comes back as it went in. A
    GetImageSize's width reaches the latent's through a link (it was not mapped: Kinograph passed no numbers)."""
    from PIL import Image
    monkeypatch.setenv("KINOGRAPH_MODELS", str(sd["root"] / "models"))
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "photo.png")

    def n(cls, **inputs):
        return {"class_type": cls, "inputs": inputs}
    api = {"1": n("CheckpointLoaderSimple", ckpt_name=CKPT),
           "2": n("CLIPTextEncode", text="a field", clip=["1", 1]), "3": n("CLIPTextEncode", text="", clip=["1", 1]),
           "4": n("EmptyLatentImage", width=64, height=64, batch_size=1),
           "5": n("KSampler", seed=1, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                  model=["1", 0], positive=["2", 0], negative=["3", 0], latent_image=["4", 0]),
           "6": n("KSampler", seed=2, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                  model=["1", 0], positive=["3", 0], negative=["2", 0], latent_image=["4", 0]),
           "7": n("SolidMask", value=1.0, width=32, height=32),
           "8": n("LatentCompositeMasked", x=16, y=16, resize_source=False, destination=["5", 0], source=["6", 0],
                  mask=["7", 0]),
           "9": n("VAEDecode", samples=["8", 0], vae=["1", 2]),
           "10": n("SaveImage", filename_prefix="pasted", images=["9", 0]),
           "11": n("LoadImage", image="photo.png"),
           "12": n("SolidMask", value=1.0, width=32, height=32),
           "13": n("FeatherMask", left=16, top=0, right=0, bottom=0, mask=["12", 0]),
           "14": n("InvertMask", mask=["13", 0]),
           "15": n("JoinImageWithAlpha", image=["11", 0], alpha=["14", 0]),
           "16": n("SplitImageWithAlpha", image=["15", 0]),
           "17": n("MaskToImage", mask=["16", 1]),
           "18": n("SaveImage", filename_prefix="alpha", images=["17", 0])}
    res = _run_import(api, tmp_path)
    status = {e.class_type: e for e in res.report.entries.values()}
    assert status["LatentCompositeMasked"].status == "exact"
    assert {status[c].status for c in ("JoinImageWithAlpha", "SplitImageWithAlpha")} == {"approx"}
    saved = {p.parent.name: np.asarray(Image.open(p).convert("L")) for p in (tmp_path / "out").rglob("*.png")}
    assert set(saved) == {"pasted", "alpha"}
    # the InvertMask of a mask fading in over 16 columns: 1 - (x + 1) / 16 there, 0 past it
    want = np.clip(1 - (np.arange(32) + 1) / 16, 0, 1)
    assert np.abs(saved["alpha"][5].astype(float) / 255 - want).max() < 2 / 255
    api["19"] = n("GetImageSize", image=["11", 0])
    api["4"]["inputs"]["width"] = ["19", 0]
    from app.comfyui import import_data
    got = import_data(api)
    assert {e.class_type: e.status for e in got.report.entries.values()}["GetImageSize"] == "exact"
    latent = next(nid for nid, inst in got.graph.nodes.items() if inst.type == "latent.empty")
    src, port = got.graph.inputs[latent]["width"]
    assert (got.graph.nodes[src].type, port) == ("video.size", "width") and "width" not in got.graph.nodes[latent].params


def test_an_area_the_models_patches_do_not_divide_is_padded_round_and_cut_back():
    """A video transformer (Wan: 2 x 2 latent pixels a patch) given a 3 x 5 area: x and its latent-sized inputs
    reach the model padded to 4 x 6 by wrapping round (ComfyUI's pad_to_patch_size); the result is cut back."""
    from nodes.generate.regions import padded_run
    x = torch.arange(15.0).view(1, 1, 1, 3, 5)
    seen = {}

    def fn(xx, inputs):
        seen.update(shape=tuple(xx.shape), concat=tuple(inputs["concat"].shape), ts=inputs["t"])
        return xx * 2
    out = padded_run(fn, x, {"concat": torch.zeros(1, 2, 1, 3, 5), "t": 7}, 2)
    assert seen == {"shape": (1, 1, 1, 4, 6), "concat": (1, 2, 1, 4, 6), "ts": 7}
    assert torch.equal(out, x * 2)


def test_an_area_smaller_than_a_latent_pixel_keeps_one():
    """On a 32x VAE (LTX) ComfyUI's smallest area, 8 px, is under one latent pixel: it keeps one, not none."""
    from nodes.generate.regions import resolve
    assert resolve(_area(_cond(), 8, 8, 32, 64), (1, 4, 1, 16, 16), 32, 1).area == (1, 1, 1, 2)


def test_area_strength_and_zero_out_as_comfyui():
    """ConditioningSetAreaStrength sets every entry's strength and keeps its area; ConditioningZeroOut zeros the
    embeddings and pooled embedding of every entry, keeping its region."""
    from app.comfyui.mapping import RULES
    from nodes.generate.regions import combine, resolve, with_region, zeroed
    both = combine(_cond(value=1), _area(_cond(value=2), 64, 64, 0, 0))
    strong = with_region(both, strength=3.0)
    assert [resolve(e, (1, 4, 1, 16, 16), 8, 1).area for e in strong.entries()] == [None, (8, 8, 0, 0)]
    assert all(float(resolve(e, (1, 4, 1, 16, 16), 8, 1).mult.max()) == 3.0 for e in strong.entries())
    z = zeroed(combine(_cond(value=1, pooled=torch.ones(1, 2)), _area(_cond(value=2), 64, 64, 0, 0)))
    assert all(float(e.embeds.abs().max()) == 0 for e in z.entries()) and float(z.pooled.abs().max()) == 0
    assert z.parts[0].meta["region"]["area"] == ["pixels", 64, 64, 0, 0]
    assert RULES["ConditioningZeroOut"].node == "condition.zero" and RULES["ConditioningSetAreaStrength"].widgets == (
        "strength",)


# -- prompts for part of the steps (ConditioningSetTimestepRange) -----------------------------------------------------
def test_step_shares_become_noise_levels_as_comfyuis_percent_to_sigma():
    """ModelSamplingDiscrete: sigma at timestep (1 - p) x 999 of the table, interpolated in log (SD's scaled-linear
    betas: 0.3 -> timestep 699.3 -> 3.325, the 3.33 quoted for SDXL's end_percent 0.3); ModelSamplingDiscreteFlow:
    the shifted line at 1 - p; ModelSamplingContinuousEDM (SVD): log-linear from sigma_max; 0 above everything, 1 = 0."""
    import math
    from types import SimpleNamespace
    from diffusers import EulerDiscreteScheduler
    from nodes.generate.adapters import get_adapter
    pipe = SimpleNamespace(scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                                            beta_schedule="scaled_linear"))
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    ac = torch.cumprod(1 - betas, 0)
    s = ((1 - ac) / ac) ** 0.5
    sd = get_adapter("sd")
    want = math.exp(0.7 * math.log(s[699]) + 0.3 * math.log(s[700]))
    assert sd.percent_sigma(pipe, 0.3) == pytest.approx(want, rel=1e-6) and want == pytest.approx(3.325, abs=1e-3)
    assert sd.percent_sigma(pipe, 0.0) == math.inf and sd.percent_sigma(pipe, 1.0) == 0.0
    wan = get_adapter("wan")
    assert wan.percent_sigma(None, 0.3, 8.0) == pytest.approx(8 * 0.7 / (1 + 7 * 0.7))      # Wan's shift 8: 0.9492
    assert wan.percent_sigma(None, 0.5, 3.0) == pytest.approx(0.75)
    svd = get_adapter("svd")
    edm = SimpleNamespace(scheduler=SimpleNamespace(config={"sigma_min": 0.002, "sigma_max": 700.0}))
    assert svd.percent_sigma(edm, 0.5) == pytest.approx((700 * 0.002) ** 0.5)


def test_a_prompt_outside_its_step_range_is_left_out_and_its_area_partner_too():
    """get_area_and_mult returns None where sigma > timestep_start or sigma < timestep_end: the prompt is not run
    and does not count in the average; a level on a bound counts as inside (both prompts of 0-0.5 and 0.5-1 run
    there); a side with nothing left predicts 0. The negative's partner for an area keeps the area's range (ComfyUI
    copies the whole cond)."""
    from nodes.generate.regions import combine, denoised, plan, with_steps
    a, b, n = _cond(value=1), _cond(value=3), _cond(value=0)
    levels = {0.0: 100.0, 0.5: 2.0, 1.0: 0.0}.__getitem__         # a made-up model: 0.5 of the way is sigma 2
    pos = combine(with_steps(a, 0.0, 0.5), with_steps(_area(b, 64, 64, 0, 0), 0.5, 1.0))
    sides = plan([n, pos], (1, 1, 1, 16, 16), 8, 1, levels)
    assert [p.levels for p in sides[1]] == [(100.0, 2.0), (2.0, 0.0)]
    assert [p.levels for p in sides[0]] == [(float("inf"), 0.0), (2.0, 0.0)]     # the negative, and b's partner
    x = torch.zeros(1, 1, 1, 16, 16)
    calls = []

    def run(c, xs, sl):
        calls.append((float(c.embeds[0, 0, 0]), tuple(xs.shape[-2:])))
        return torch.full_like(xs, float(c.embeds[0, 0, 0]))
    neg, out = denoised(sides, x, [0], run, sigma=5.0)
    assert calls == [(0.0, (16, 16)), (1.0, (16, 16))] and torch.all(out == 1)
    calls.clear()
    _, out = denoised(sides, x, [0], run, sigma=1.0)
    assert calls == [(0.0, (16, 16)), (0.0, (8, 8)), (3.0, (8, 8))]
    assert torch.all(out[..., :8, :8] == 3) and torch.all(out[..., 8:, :] == 0)   # b's area only; 0 elsewhere
    _, out = denoised(sides, x, [0], run, sigma=2.0 * (1 + 1e-8))                 # on the bound: both
    assert out[0, 0, 0, 0, 0] == pytest.approx((1 + 3) / 2) and out[0, 0, 0, 15, 15] == pytest.approx(1)


def test_a_step_range_that_is_empty_is_refused_by_name_and_survives_the_disk_cache():
    from graph_engine import NodeError
    from nodes.generate.latent import Conditioning
    from nodes.generate.regions import step_span, with_steps
    with pytest.raises(NodeError, match="start 0.6 is not before end 0.4"):
        with_steps(_cond(), 0.6, 0.4)
    c = with_steps(_area(_cond(), 64, 64, 0, 0), 0.2, 0.7)
    back = Conditioning.from_state(*c.to_state())
    assert step_span(back) == (0.2, 0.7) and back.meta["region"]["area"] == ["pixels", 64, 64, 0, 0]


def test_the_sampler_runs_each_prompt_only_in_its_step_range(sd):
    """On the tiny SD 1.5: a composition prompt for 0-0.3 combined with a detail prompt for 0.3-1 is, at a step
    above the 0.3 level (3.33 on SD's betas), the guided prediction of the first alone, and below it of the second
    alone. A prompt split into 0-0.5 and 0.5-1 halves samples as the prompt; a prompt for the first half and another
    for the second sample near the first alone."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.regions import combine, with_steps
    from nodes.generate.sampling import guided_model_fn, run_sampling
    from nodes.generate.vae_ops import empty_latent
    h, adapter = sd["handle"], get_adapter("sd")
    a, b, n = _enc(sd, "a red door"), _enc(sd, "a cat"), _enc(sd, "")
    level = adapter.percent_sigma(h.pipe, 0.3)
    x = torch.randn(1, 4, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 3
    both = combine(with_steps(a, 0.0, 0.3), with_steps(b, 0.3, 1.0))

    def fn(pos, sigma):
        return guided_model_fn(h, adapter, pos, n, 5.0, 1, "cpu", torch.float32, 1)(x, sigma)
    for sigma, alone in ((level * 1.5, a), (level / 1.5, b)):
        # batched (the plain prompt) and one call a prompt (the ranges) differ by float rounding, 5e-5 here
        assert torch.allclose(fn(both, sigma), fn(alone, sigma), atol=2e-4)
    assert not torch.allclose(fn(a, level / 1.5), fn(b, level / 1.5), atol=1e-3)
    # 32 px (16 latent px): the margins below were the same at 64 px (b then a from b alone 0.0037 vs 0.0036, bound
    # 0.113 vs 0.109), at a fifth of the CPU (its self-attention runs on every latent pixel)
    lat = empty_latent(sd["parts"]["vae"], 1, 32, 32, 8.0)

    def s(pos):
        return run_sampling(h, pos, n, lat, steps=4, cfg=5.0, sampler="euler", scheduler="karras", seed=1).samples
    base = s(a)
    assert torch.allclose(s(combine(with_steps(a, 0.0, 0.5), with_steps(a, 0.5, 1.0))), base, atol=1e-4)
    # the early, noisy half decides the picture: b then a ends near b alone, a's last half still changing it
    mixed, alone_b = s(combine(with_steps(b, 0.0, 0.5), with_steps(a, 0.5, 1.0))), s(b)
    apart = (alone_b - base).abs().mean()
    assert 1e-3 < (mixed - alone_b).abs().mean() < 0.1 * apart


def test_steps_that_no_prompts_range_covers_are_named(sd):
    """Ranges that leave a gap (0-0.3 and 0.6-1) give the steps between a zero prediction in ComfyUI, silently; the
    run says which steps and how to close the gap. Ranges that meet say nothing."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.regions import combine, with_steps
    from nodes.generate.sampling import make_sigmas, run_sampling
    from nodes.generate.vae_ops import empty_latent
    h, adapter = sd["handle"], get_adapter("sd")
    a, b, n = _enc(sd, "a red door"), _enc(sd, "a cat"), _enc(sd, "")
    lat = empty_latent(sd["parts"]["vae"], 1, 16, 16, 8.0)    # which steps, not the picture
    sig = make_sigmas(adapter, h.pipe, 6, "karras", 1.0, lat.samples.shape)
    hi, lo = adapter.percent_sigma(h.pipe, 0.3), adapter.percent_sigma(h.pipe, 0.6)
    want = [i + 1 for i, s in enumerate(sig[:-1]) if hi > s > lo]
    assert want                                                  # the 6 karras steps put at least one in the gap

    def said(pos):
        lines = []
        run_sampling(h, pos, n, lat, steps=6, cfg=5.0, sampler="euler", scheduler="karras", seed=1, log=lines.append)
        return [m for m in lines if "step range" in m]
    lines = said(combine(with_steps(a, 0.0, 0.3), with_steps(b, 0.6, 1.0)))
    assert len(lines) == 1 and lines[0].startswith(f"steps {', '.join(map(str, want))} of 6 fall outside")
    assert "make the ranges meet" in lines[0]
    assert said(combine(with_steps(a, 0.0, 0.3), with_steps(b, 0.3, 1.0))) == [] and said(a) == []


def test_comfyui_composition_then_detail_prompt_workflow_runs(sd, tmp_path, monkeypatch):
    """ComfyUI's two-stage prompt as its UI saves it: a composition prompt for 0-0.3 and a detail prompt for 0.3-1
    (ConditioningSetTimestepRange), combined, sampled and saved: mapped exactly to condition.timestep_range with
    the shares carried, and it runs to a picture."""
    from PIL import Image
    monkeypatch.setenv("KINOGRAPH_MODELS", str(sd["root"] / "models"))
    M, C, L = "MODEL", "CONDITIONING", "LATENT"
    data = ui_format([
        (1, "CheckpointLoaderSimple", [CKPT], {}, [M, "CLIP", "VAE"]),
        (2, "CLIPTextEncode", ["a castle on a hill, wide shot"], {"clip": (1, 1, "CLIP")}, [C]),
        (3, "CLIPTextEncode", ["weathered stone, moss, fine detail"], {"clip": (1, 1, "CLIP")}, [C]),
        (4, "CLIPTextEncode", ["blurry"], {"clip": (1, 1, "CLIP")}, [C]),
        (5, "ConditioningSetTimestepRange", [0.0, 0.3], {"conditioning": (2, 0, C)}, [C]),
        (6, "ConditioningSetTimestepRange", [0.3, 1.0], {"conditioning": (3, 0, C)}, [C]),
        (7, "ConditioningCombine", [], {"conditioning_1": (5, 0, C), "conditioning_2": (6, 0, C)}, [C]),
        (8, "EmptyLatentImage", [64, 64, 1], {}, [L]),
        (9, "KSampler", [5, "fixed", 3, 6.0, "euler", "normal", 1.0],
         {"model": (1, 0, M), "positive": (7, 0, C), "negative": (4, 0, C), "latent_image": (8, 0, L)}, [L]),
        (10, "VAEDecode", [], {"samples": (9, 0, L), "vae": (1, 2, "VAE")}, ["IMAGE"]),
        (11, "SaveImage", ["staged"], {"images": (10, 0, "IMAGE")}, []),
    ])
    res = _run_import(data, tmp_path)
    status = {e.class_type: e for e in res.report.entries.values()}
    assert status["ConditioningSetTimestepRange"].status == "exact", status["ConditioningSetTimestepRange"].notes
    ranges = sorted((n.params["start"], n.params["end"]) for n in res.graph.nodes.values()
                    if n.type == "condition.timestep_range")
    assert ranges == [(0.0, 0.3), (0.3, 1.0)]
    saved = list((tmp_path / "out").rglob("*.png"))
    assert len(saved) == 1 and Image.open(saved[0]).size == (64, 64)


def test_comfyui_latent_composite_second_pass_workflow_runs(sd, tmp_path, monkeypatch):
    """ComfyUI's composition by latents as its UI saves it: a background and a smaller subject sampled apart, the
    subject pasted with LatentComposite (x, y, feather in pixels) and the whole sampled again at denoise 0.5: mapped
    exactly to latent.composite with its feather, and it runs to a picture."""
    from PIL import Image
    monkeypatch.setenv("KINOGRAPH_MODELS", str(sd["root"] / "models"))
    M, C, L = "MODEL", "CONDITIONING", "LATENT"

    def sampler(i, latent, steps, denoise):
        return (i, "KSampler", [3, "fixed", steps, 6.0, "euler", "normal", denoise],
                {"model": (1, 0, M), "positive": (2, 0, C), "negative": (3, 0, C), "latent_image": latent}, [L])
    data = ui_format([
        (1, "CheckpointLoaderSimple", [CKPT], {}, [M, "CLIP", "VAE"]),
        (2, "CLIPTextEncode", ["a meadow with a fox"], {"clip": (1, 1, "CLIP")}, [C]),
        (3, "CLIPTextEncode", ["blurry"], {"clip": (1, 1, "CLIP")}, [C]),
        (4, "EmptyLatentImage", [64, 64, 1], {}, [L]),
        (5, "EmptyLatentImage", [32, 32, 1], {}, [L]),
        sampler(6, (4, 0, L), 2, 1.0),
        sampler(7, (5, 0, L), 2, 1.0),
        (8, "LatentComposite", [16, 16, 8], {"samples_to": (6, 0, L), "samples_from": (7, 0, L)}, [L]),
        sampler(9, (8, 0, L), 2, 0.5),
        (10, "VAEDecode", [], {"samples": (9, 0, L), "vae": (1, 2, "VAE")}, ["IMAGE"]),
        (11, "SaveImage", ["composed"], {"images": (10, 0, "IMAGE")}, []),
    ])
    res = _run_import(data, tmp_path)
    status = {e.class_type: e for e in res.report.entries.values()}
    assert status["LatentComposite"].status == "exact", status["LatentComposite"].notes
    node = next(n for n in res.graph.nodes.values() if n.type == "latent.composite")
    assert (node.params["x"], node.params["y"], node.params["feather"]) == (16, 16, 8)
    saved = list((tmp_path / "out").rglob("*.png"))
    assert len(saved) == 1 and Image.open(saved[0]).size == (64, 64)
