"""Inpainting, outpainting and masked img2img on tiny random-weight SD 1.5 models (a plain one and an inpainting
one, 9 input channels) built here, through the same loaders, nodes and ComfyUI importer a user's files go through."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from comfyui_workflows import run_imported as _run_import, ui_format  # noqa: E402
INPAINT_CKPT = "sd15_inpainting_tiny.safetensors"


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    """{"plain": SD 1.5 diffusers folder, "inpaint": an inpainting one, "models": a model folder holding the
    inpainting checkpoint as one file}."""
    from tiny_models import build_sd15_single_file
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    plain = build_sd15_single_file(tmp_path_factory.mktemp("sd_plain"))
    inpaint = build_sd15_single_file(tmp_path_factory.mktemp("sd_inpaint"), inpainting=True)
    yield {"plain": plain / "diffusers", "inpaint": inpaint / "diffusers", "models": inpaint / "models"}
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mm():
    from nodes.generate.model_manager import ModelManager
    return ModelManager(max_loaded=4)


def _load(mm, path):
    from nodes.generate.text import encode_prompt
    h = mm.load("sd", str(path))
    parts = mm.components(h)
    return h, parts["vae"], encode_prompt(parts["text_encoder"], "a red door"), encode_prompt(parts["text_encoder"], "")


def _picture(n=1, size=32, seed=0):
    rng = np.random.default_rng(seed)
    # smooth colours (a VAE's round trip keeps them), not noise
    base = rng.integers(40, 215, (n, 4, 4, 3)).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(base, size // 4, 1), size // 4, 2))


def _square(size=32, lo=8, hi=24):
    m = np.zeros((size, size), np.float32)
    m[lo:hi, lo:hi] = 1
    return m


def _sample(h, pos, neg, latent, steps=3, seed=1, **kw):
    from nodes.generate.sampling import run_sampling
    return run_sampling(h, pos, neg, latent, steps=steps, cfg=kw.pop("cfg", 5.0), sampler="euler", seed=seed, **kw)


def _psnr(a, b):
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


# -- masked denoising (SetLatentNoiseMask) -------------------------------------------------------------------------
def test_a_masked_latent_is_redrawn_inside_and_kept_outside(sd, mm):
    """latent.set_mask: the latent outside the mask comes out bit for bit as it went in, inside it is drawn anew;
    decoded and pasted back over the original (mask.composite) the picture outside is the input's exactly."""
    from nodes.common.masks import paste
    from nodes.generate.inpaint import set_mask
    from nodes.generate.vae_ops import decode_latent, encode_clip
    h, vae, pos, neg = _load(mm, sd["plain"])
    img = _picture()
    clip = Clip.from_array(img, 8.0)
    lat = encode_clip(vae, clip)
    out = _sample(h, pos, neg, set_mask(lat, _square()))
    changed = (out.samples - lat.samples).abs().amax(1)[0, 0] > 0
    want = torch.zeros(16, 16, dtype=torch.bool)
    want[4:12, 4:12] = True                     # the mask on the latent grid (the tiny VAE halves the size)
    assert torch.equal(changed, want)
    px = decode_latent(vae, out).frames(0, 1)
    pasted = paste(img, px, _square()[None])
    inside = _square() > 0
    assert _psnr(pasted[0][~inside], img[0][~inside]) == float("inf")
    assert _psnr(pasted[0][inside], img[0][inside]) < 25


def test_the_kept_part_reaches_the_model_noised_to_each_steps_level(sd, mm, monkeypatch):
    """As ComfyUI's SetLatentNoiseMask: where the mask keeps the picture, the model is shown the input latent noised
    to the step's level with the run's own noise, so it sees one consistent picture (it was shown the clean latent
    beside noise before, which a model not trained for that reads as a flat, noiseless area)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.inpaint import set_mask
    from nodes.generate.sampling import make_sigmas
    from nodes.generate.vae_ops import encode_clip
    h, vae, pos, neg = _load(mm, sd["plain"])
    lat = encode_clip(vae, Clip.from_array(_picture(), 8.0))
    adapter = get_adapter("sd")
    seen = []
    real = type(adapter).forward
    monkeypatch.setattr(type(adapter), "forward", lambda self, hh, x_in, t, inputs: (
        seen.append(x_in.clone()), real(self, hh, x_in, t, inputs))[1])
    _sample(h, pos, None, set_mask(lat, _square()), steps=3, seed=5, cfg=1.0)
    sig = make_sigmas(adapter, h.pipe, 3, "default", 1.0, lat.samples.shape)
    noise = adapter.draw_noise(lat.samples.shape, torch.Generator("cpu").manual_seed(5))
    for k, x_in in enumerate(seen):
        s = float(sig[k])
        want = (lat.samples + noise * s) / (1 + s * s) ** 0.5
        got = x_in[..., :4, :4]                    # a corner the mask keeps
        assert torch.allclose(got, want[..., :4, :4], atol=1e-4), (k, (got - want[..., :4, :4]).abs().max())


def test_differential_diffusion_redraws_a_soft_mask_over_its_share_of_the_steps(sd, mm, monkeypatch):
    """model.differential_diffusion (ComfyUI's DifferentialDiffusion): where the mask is 0.4 the model is shown the
    kept picture (noised to the step's level) until 40% of the schedule (in timesteps) is left and draws it over the
    last 4 of 10 steps; where it is 1 it draws from the first step, where it is 0 never (it comes out as it went
    in)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.inpaint import set_mask
    from nodes.generate.sampling import make_sigmas
    from nodes.generate.vae_ops import encode_clip
    h, vae, pos, neg = _load(mm, sd["plain"])
    lat = encode_clip(vae, Clip.from_array(_picture(), 8.0))
    mask = np.zeros((32, 32), np.float32)
    mask[:, 8:16], mask[:, 16:24] = 0.4, 1.0            # latent columns 4-7 at 0.4, 8-11 at 1
    adapter = get_adapter("sd")
    seen = []
    real = type(adapter).forward
    monkeypatch.setattr(type(adapter), "forward", lambda self, hh, x_in, t, inputs: (
        seen.append(x_in.clone()), real(self, hh, x_in, t, inputs))[1])
    steps = 10
    out = _sample(h.with_option("differential", 1.0), pos, None, set_mask(lat, mask), steps=steps, seed=5, cfg=1.0)
    sig = make_sigmas(adapter, h.pipe, steps, "default", 1.0, lat.samples.shape)
    noise = adapter.draw_noise(lat.samples.shape, torch.Generator("cpu").manual_seed(5))

    def kept(k, cols):
        s = float(sig[k])
        want = ((lat.samples + noise * s) / (1 + s * s) ** 0.5)[..., cols]
        return torch.allclose(seen[k][..., cols], want, atol=1e-4)
    # the schedule's timesteps: 801, 801, 701, ..., 101, 1 down to 0: 40% of it is left from step 6 (301) on
    soft = [kept(k, slice(4, 8)) for k in range(steps)]
    assert soft == [True] * 6 + [False] * 4, soft
    assert not any(kept(k, slice(8, 12)) for k in range(steps)) and all(kept(k, slice(0, 4)) for k in range(steps))
    assert torch.equal(out.samples[..., :4], lat.samples[..., :4])


def test_masked_img2img_keeps_the_structure_inside_at_low_denoise(sd, mm):
    """denoise below 1 with a mask (masked img2img): the region changes less than at denoise 1."""
    from nodes.generate.inpaint import set_mask
    from nodes.generate.vae_ops import encode_clip
    h, vae, pos, neg = _load(mm, sd["plain"])
    lat = set_mask(encode_clip(vae, Clip.from_array(_picture(), 8.0)), _square())
    low = (_sample(h, pos, neg, lat, steps=6, denoise=0.3).samples - lat.samples).abs()[..., 4:12, 4:12].mean()
    full = (_sample(h, pos, neg, lat, steps=6).samples - lat.samples).abs()[..., 4:12, 4:12].mean()
    assert 0 < float(low) < 0.5 * float(full)


def test_a_mask_per_frame_follows_a_moving_region_through_a_clip(sd, mm):
    """A clip of masks (a mask video through mask.from_video): each frame is redrawn only inside its own frame's
    mask, and a still mask covers every frame."""
    from nodes.generate.inpaint import set_mask
    from nodes.generate.vae_ops import encode_clip
    h, vae, pos, neg = _load(mm, sd["plain"])
    lat = encode_clip(vae, Clip.from_array(_picture(3), 8.0))
    boxes = [(0, 8), (12, 20), (24, 32)]            # a square moving left to right
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    for k, (a, b) in enumerate(boxes):
        frames[k, 8:24, a:b] = 255
    mask = _call("from_video", Clip.from_array(frames, 8.0))
    out = _sample(h, pos, neg, set_mask(lat, mask))
    changed = (out.samples - lat.samples).abs().amax(1)[0] > 0
    for k, (a, b) in enumerate(boxes):
        want = torch.zeros(16, 16, dtype=torch.bool)
        want[4:12, a // 2:b // 2] = True
        assert torch.equal(changed[k], want), k
    still = (_sample(h, pos, neg, set_mask(lat, _square())).samples - lat.samples).abs().amax(1)[0] > 0
    assert all(torch.equal(still[k], still[0]) for k in range(3)) and still[0].sum() == 64


def test_a_mask_that_no_longer_fits_the_latent_is_named(sd, mm):
    from nodes.generate.inpaint import set_mask
    from nodes.generate.latent import upscale_latent
    from nodes.generate.vae_ops import encode_clip
    h, vae, pos, neg = _load(mm, sd["plain"])
    lat = set_mask(encode_clip(vae, Clip.from_array(_picture(), 8.0)), _square())
    bigger = upscale_latent(lat, 2.0)
    assert bigger.mask.shape[-2:] == bigger.samples.shape[-2:]      # upscaling carries the mask along
    from dataclasses import replace
    with pytest.raises(NodeError, match=r"set the mask \(latent.set_mask\) after resizing"):
        _sample(h, pos, neg, replace(bigger, mask=lat.mask))


# -- inpainting models (9 input channels) ----------------------------------------------------------------------------
def test_an_inpainting_checkpoint_file_loads_and_samples_as_its_diffusers_folder(sd, mm, monkeypatch):
    """An SD 1.5 inpainting checkpoint (checkpoints/, one file) was refused as 'not a Stable Diffusion 1.5
    checkpoint'; it loads, is listed as loading, and samples what its diffusers folder samples."""
    from nodes.generate.inpaint import inpaint_conditioning
    from nodes.generate.model_manager import describe_model
    monkeypatch.setenv("KINOGRAPH_MODELS", str(sd["models"]))
    info = describe_model(sd["models"] / "checkpoints" / INPAINT_CKPT)
    assert (info["variant"], info["loads"]) == ("sd15-inpainting", "yes") and "condition.inpaint" in info["note"]
    clip = Clip.from_array(_picture(), 8.0)
    got = []
    for path in (sd["inpaint"], sd["models"] / "checkpoints" / INPAINT_CKPT):
        h, vae, pos, neg = _load(mm, path)
        p, n, lat = inpaint_conditioning(vae, pos, neg, clip, _square())
        got.append(_sample(h, p, n, lat).samples)
    assert torch.allclose(got[0], got[1], atol=1e-4), (got[0] - got[1]).abs().max()


def test_the_inpainting_model_reads_the_mask_and_the_masked_picture(sd, mm):
    """condition.inpaint: the model's extra channels are the mask and the picture with the region grey, so the
    region's result depends on what surrounds it; the latent keeps the outside as it was (noise_mask on) or lets
    the model touch it up (off)."""
    from nodes.generate.inpaint import inpaint_conditioning
    h, vae, pos, neg = _load(mm, sd["inpaint"])
    a, b = _picture(seed=0), _picture(seed=0)
    b[:, :4] = 255 - b[:, :4]                        # differs only far outside the mask
    outs = []
    for img in (a, b):
        p, n, lat = inpaint_conditioning(vae, pos, neg, Clip.from_array(img, 8.0), _square())
        assert p.extra["concat"].shape == (1, 5, 1, 16, 16) and n.extra["concat"].shape == (1, 5, 1, 16, 16)
        out = _sample(h, p, n, lat)
        assert torch.equal(out.samples[..., :4, :], lat.samples[..., :4, :])       # kept outside
        outs.append(out.samples[..., 4:12, 4:12])
    assert not torch.allclose(outs[0], outs[1], atol=1e-3)     # the surroundings reach the model
    p, n, lat = inpaint_conditioning(vae, pos, neg, Clip.from_array(a, 8.0), _square(), noise_mask=False)
    assert lat.mask is None and (_sample(h, p, n, lat).samples - lat.samples)[..., :2, :].abs().max() > 0


@pytest.mark.parametrize("form", ["folder", "file"])
def test_an_inpainting_model_samples_under_a_controlnet(sd, mm, tmp_path, form):
    """control.apply on an inpainting checkpoint: the ControlNet reads the 4-channel latent (not the UNet's 9), and
    the mask and masked picture still reach the UNet. Both failed: the control frames took the place of the latent
    frames the mask is sliced at (a TypeError inside sampling), and a one-file ControlNet was given the inpainting
    UNet's 9 input channels, so its weights "did not fit"."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from tiny_models import _seed, random_controlnet
    from nodes.generate.control import apply_control
    from nodes.generate.inpaint import inpaint_conditioning
    _seed(4)
    net = random_controlnet(UNet2DConditionModel.from_pretrained(str(sd["plain"] / "unet")), (8, 16))
    source = tmp_path / "control_sd15_tiny"
    net.save_pretrained(str(source), safe_serialization=True)
    if form == "file":
        source = source.with_suffix(".safetensors")
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(source))
    h, vae, pos, neg = _load(mm, sd["inpaint"])
    img = _picture(seed=0)
    p, n, lat = inpaint_conditioning(vae, pos, neg, Clip.from_array(img, 8.0), _square())
    edges = np.zeros_like(img)
    edges[:, 10:22, 10:22] = 255
    ctl = apply_control(mm, h, Clip.from_array(edges, 8.0), str(source), 1.0, "none", 100, 200)
    steered, plain = _sample(ctl, p, n, lat), _sample(h, p, n, lat)
    assert torch.equal(steered.samples[..., :4, :], lat.samples[..., :4, :])       # kept outside
    assert not torch.allclose(steered.samples[..., 4:12, 4:12], plain.samples[..., 4:12, 4:12], atol=1e-3)


def test_vae_encode_for_inpaint_greys_the_region_and_grows_the_mask(sd, mm):
    """vae.encode_inpaint (VAEEncodeForInpaint): the latent is the picture with the masked pixels mid grey, its
    mask the region grown by `grow` pixels (rounded); an inpainting model then samples from it, a plain one too
    (ComfyUI lets it: it redraws the grey)."""
    from nodes.generate.inpaint import encode_for_inpaint
    from nodes.generate.vae_ops import encode_clip
    h, vae, pos, neg = _load(mm, sd["inpaint"])
    img = _picture()
    lat = encode_for_inpaint(vae, Clip.from_array(img, 8.0), _square(), grow=4)
    grey = img.copy()
    grey[:, 8:24, 8:24] = 128
    assert torch.allclose(lat.samples, encode_clip(vae, Clip.from_array(grey, 8.0)).samples, atol=1e-5)
    # pixels 8..23 grown by a 4x4 square (window offsets -2..+1: pixels 7..25), on the half-size latent grid
    line = torch.zeros(16)
    line[3], line[4:13] = 0.5, 1.0
    assert torch.equal(lat.mask[0, 0, 0], line[:, None] * line[None, :]), lat.mask[0, 0, 0]
    out = _sample(h, pos, neg, lat)
    assert torch.equal(out.samples[..., :3, :], lat.samples[..., :3, :])
    assert not torch.equal(out.samples[..., 4:12, 4:12], lat.samples[..., 4:12, 4:12])


def test_an_inpainting_model_without_a_mask_draws_a_whole_picture(sd, mm):
    """A plain latent (no mask, no inpaint conditioning) on an inpainting model: everything is to redraw over a
    grey picture, as ComfyUI fills the channels in; it used to fail inside the UNet on its 9 channels."""
    from nodes.generate.vae_ops import empty_latent
    h, vae, pos, neg = _load(mm, sd["inpaint"])
    out = _sample(h, pos, neg, empty_latent(vae, 1, 32, 32, 8.0))
    assert torch.isfinite(out.samples).all() and out.samples.abs().sum() > 0


def test_inpaint_conditioning_on_a_plain_model_is_named(sd, mm):
    from nodes.generate.inpaint import inpaint_conditioning
    h, vae, pos, neg = _load(mm, sd["plain"])
    p, n, lat = inpaint_conditioning(vae, pos, neg, Clip.from_array(_picture(), 8.0), _square())
    with pytest.raises(NodeError, match="not an inpainting model: connect the latent's mask with latent.set_mask"):
        _sample(h, p, n, lat)


# -- mask utilities ------------------------------------------------------------------------------------------------
def _call(name, *args, **kw):
    from node_call import Nodes
    from nodes.mask import nodes as mask_nodes

    class Ctx:
        def log(self, *_):
            pass
    return getattr(Nodes(mask_nodes), name)(Ctx(), *args, **kw)


def test_grow_shrink_invert_and_feather():
    dot = np.zeros((9, 9), np.float32)
    dot[4, 4] = 1
    diamond = _call("grow", dot, pixels=2)
    assert diamond.sum() == 13 and diamond[4, 2] == 1 and diamond[2, 2] == 0           # tapered: a diamond
    assert _call("grow", dot, pixels=2, tapered=False).sum() == 25                     # a 5x5 square
    assert np.array_equal(_call("grow", _call("grow", dot, pixels=2, tapered=False), pixels=-2, tapered=False), dot)
    assert np.array_equal(_call("invert", dot), 1 - dot)
    soft = _call("feather", _square(), radius=4.0)
    row = soft[16]
    assert soft[16, 16] > 0.99 and soft[16, 0] < 0.01 and 0.3 < row[8] < 0.7
    assert np.all(np.diff(row[:16]) >= -1e-6)                                           # a ramp up to the middle
    faded = _call("feather", np.ones((4, 8), np.float32), radius=0.0, left=4)
    assert np.allclose(faded[0], [0.25, 0.5, 0.75, 1, 1, 1, 1, 1])                     # ComfyUI's FeatherMask


def test_masks_from_channels_and_back_to_pictures_keep_still_or_clip():
    img = np.zeros((1, 4, 4, 3), np.uint8)
    img[..., 0] = 255
    img[..., 2] = 51
    red = _call("from_video", Clip.from_array(img, 8.0), channel="red")
    assert red.shape == (4, 4) and np.all(red == 1)
    assert np.allclose(_call("from_video", Clip.from_array(img, 8.0), channel="blue"), 0.2)
    clip = Clip.from_array(np.stack([np.full((4, 4, 3), v, np.uint8) for v in (0, 255, 0)]), 8.0)
    clip = clip.with_matte(lambda a, b: np.full((b - a, 4, 4, 1), 102, np.uint8))
    alpha = _call("from_video", clip, channel="alpha")
    assert alpha.length == 3 and np.all(alpha.frames(0, 3) == 102)
    luma = _call("from_video", clip)
    assert [int(luma.frame(k).max()) for k in range(3)] == [0, 255, 0]
    grown = _call("grow", luma, pixels=1)
    assert grown.length == 3 and grown.channels == 1
    pic = _call("to_video", luma)
    assert pic.frames(0, 3).shape == (3, 4, 4, 3) and pic.frame(1).min() == 255
    still = _call("to_video", np.full((4, 4), 0.5, np.float32))
    assert still.length == 1 and np.all(still.frame(0) == 128)


def test_load_image_gives_the_erased_part_as_the_mask(tmp_path):
    """ComfyUI's LoadImage MASK: 1 where the picture is transparent (erased in the mask editor)."""
    from PIL import Image
    from node_call import Nodes
    from nodes.io import nodes as io_nodes
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    rgba[1:3, 1:3, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "erased.png")
    out = Nodes(io_nodes).load_image(None, path=str(tmp_path / "erased.png"))
    want = np.zeros((6, 6), np.float32)
    want[1:3, 1:3] = 1
    assert np.array_equal(out["mask"], want) and np.array_equal(out["alpha"], 1 - want)


def test_outpaint_pad_grows_the_picture_grey_with_comfyuis_feathered_mask():
    img = np.full((1, 10, 12, 3), 200, np.uint8)
    out = _call("outpaint_pad", Clip.from_array(img, 8.0), left=2, top=0, right=0, bottom=3, feathering=4)
    pic, m = out["video"].frame(0), out["mask"]
    assert pic.shape == (13, 14, 3) and m.shape == (13, 14)
    assert np.all(pic[:, :2] == 128) and np.all(pic[10:] == 128) and np.all(pic[:10, 2:] == 200)
    assert np.all(m[:, :2] == 1) and np.all(m[10:] == 1)
    # inside: ((f - d) / f)^2 by the distance d to the left or bottom side (the ones that grew), 0 past f
    assert m[0, 2] == 1.0 and m[0, 3] == pytest.approx(0.5625) and m[0, 6] == 0 and m[9, 13] == pytest.approx(0.5625)
    assert m[0, 13] == 0 and m[5, 8] == 0


def test_composite_pastes_at_an_offset_and_stretches_the_mask_to_the_source():
    bg = Clip.from_array(np.zeros((2, 6, 6, 3), np.uint8), 8.0)
    fg = Clip.from_array(np.full((1, 2, 3, 3), 90, np.uint8), 8.0)
    out = _call("composite", fg, bg, mask=np.ones((8, 8), np.float32), x=4, y=1)
    f = out.frames(0, 2)
    assert out.length == 2 and f.shape == (2, 6, 6, 3)                  # the background's size, the longer length
    assert np.all(f[:, 1:3, 4:6] == 90) and f.sum() == 2 * 2 * 2 * 3 * 90    # clipped at the right edge


# -- ComfyUI workflows -----------------------------------------------------------------------------------------------


def test_comfyui_inpainting_workflow_ui_format_runs_end_to_end(sd, tmp_path, monkeypatch):
    """ComfyUI's own inpainting example as its UI saves it: LoadImage (the erased part is the mask), an inpainting
    checkpoint, VAEEncodeForInpaint, KSampler, VAEDecode, then ImageCompositeMasked pasting the result over the
    original and SaveImage. Every node maps, it runs, and the saved picture is the input outside the mask and new
    inside."""
    from PIL import Image
    monkeypatch.setenv("KINOGRAPH_MODELS", str(sd["models"]))
    img = _picture()[0]
    rgba = np.dstack([img, np.full((32, 32), 255, np.uint8)])
    rgba[8:24, 8:24, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "door.png")
    M, I, L, C, V = "MODEL", "IMAGE", "LATENT", "CONDITIONING", "VAE"
    data = ui_format([
        (1, "CheckpointLoaderSimple", [INPAINT_CKPT], {}, [M, "CLIP", V]),
        (2, "LoadImage", ["door.png", "image"], {}, [I, "MASK"]),
        (3, "CLIPTextEncode", ["a red door"], {"clip": (1, 1, "CLIP")}, [C]),
        (4, "CLIPTextEncode", ["blurry"], {"clip": (1, 1, "CLIP")}, [C]),
        (5, "VAEEncodeForInpaint", [6], {"pixels": (2, 0, I), "vae": (1, 2, V), "mask": (2, 1, "MASK")}, [L]),
        (6, "KSampler", [7, "fixed", 3, 6.0, "euler", "normal", 1.0],
         {"model": (1, 0, M), "positive": (3, 0, C), "negative": (4, 0, C), "latent_image": (5, 0, L)}, [L]),
        (7, "VAEDecode", [], {"samples": (6, 0, L), "vae": (1, 2, V)}, [I]),
        (8, "ImageCompositeMasked", [0, 0, False], {"destination": (2, 0, I), "source": (7, 0, I),
                                                    "mask": (2, 1, "MASK")}, [I]),
        (9, "SaveImage", ["inpainted"], {"images": (8, 0, I)}, []),
    ])
    res = _run_import(data, tmp_path)
    statuses = {e.class_type: e.status for e in res.report.entries.values()}
    assert statuses["LoadImage"] == statuses["ImageCompositeMasked"] == "exact", statuses
    assert all(s in ("exact", "approx") for s in statuses.values()), statuses
    files = [p for p in tmp_path.rglob("*.png") if p.name != "door.png"]
    assert len(files) == 1, files
    got = np.asarray(Image.open(files[0]).convert("RGB"))
    inside = np.zeros((32, 32), bool)
    inside[8:24, 8:24] = True
    assert _psnr(got[~inside], img[~inside]) == float("inf")
    assert _psnr(got[inside], img[inside]) < 25


def test_comfyui_masked_img2img_and_mask_utilities_api_format_run(sd, tmp_path, monkeypatch):
    """An API-format workflow with the mask utilities: ImageToMask (a painted mask picture), GrowMask, FeatherMask,
    InvertMask twice, SetLatentNoiseMask on a plain VAEEncode (masked img2img at denoise 0.6, the model through
    DifferentialDiffusion), MaskToImage saved
    beside, and InpaintModelConditioning on a second branch. All map and it runs to three pictures; the saved mask
    is the painted square grown by 2 pixels."""
    from PIL import Image
    monkeypatch.setenv("KINOGRAPH_MODELS", str(sd["models"]))
    Image.fromarray(_picture()[0]).save(tmp_path / "photo.png")
    paint = np.zeros((32, 32, 3), np.uint8)
    paint[8:24, 8:24] = 255
    Image.fromarray(paint).save(tmp_path / "paint.png")

    def n(cls, **inputs):
        return {"class_type": cls, "inputs": inputs}
    api = {"1": n("CheckpointLoaderSimple", ckpt_name=INPAINT_CKPT),
           "2": n("LoadImage", image="photo.png"), "3": n("LoadImage", image="paint.png"),
           "4": n("ImageToMask", channel="red", image=["3", 0]),
           "5": n("GrowMask", expand=2, tapered_corners=True, mask=["4", 0]),
           "6": n("FeatherMask", left=0, top=0, right=0, bottom=0, mask=["5", 0]),
           "7": n("InvertMask", mask=["6", 0]), "8": n("InvertMask", mask=["7", 0]),
           "9": n("CLIPTextEncode", text="a red door", clip=["1", 1]), "10": n("CLIPTextEncode", text="", clip=["1", 1]),
           "11": n("VAEEncode", pixels=["2", 0], vae=["1", 2]),
           "12": n("SetLatentNoiseMask", samples=["11", 0], mask=["8", 0]),
           "13": n("InpaintModelConditioning", noise_mask=True, positive=["9", 0], negative=["10", 0],
                   vae=["1", 2], pixels=["2", 0], mask=["8", 0]),
           "22": n("DifferentialDiffusion", strength=1.0, model=["1", 0]),
           "14": n("KSampler", seed=3, steps=4, cfg=5.0, sampler_name="euler", scheduler="normal", denoise=0.6,
                   model=["22", 0], positive=["13", 0], negative=["13", 1], latent_image=["12", 0]),
           "15": n("KSampler", seed=3, steps=3, cfg=5.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                   model=["1", 0], positive=["13", 0], negative=["13", 1], latent_image=["13", 2]),
           "16": n("VAEDecode", samples=["14", 0], vae=["1", 2]), "17": n("VAEDecode", samples=["15", 0], vae=["1", 2]),
           "18": n("SaveImage", filename_prefix="img2img", images=["16", 0]),
           "19": n("SaveImage", filename_prefix="model", images=["17", 0]),
           "20": n("MaskToImage", mask=["8", 0]), "21": n("SaveImage", filename_prefix="mask", images=["20", 0])}
    res = _run_import(api, tmp_path)
    assert not res.report.blocking and all(e.status in ("exact", "approx") for e in res.report.entries.values())
    saved = {p.parent.name: np.asarray(Image.open(p).convert("RGB")) for p in (tmp_path / "out").rglob("*.png")}
    assert set(saved) == {"img2img", "model", "mask"}, saved.keys()
    mask = saved["mask"][..., 0]
    assert mask[16, 16] == 255 and mask[0, 0] == 0 and mask[6, 16] == 255 and mask[5, 16] == 0    # grown by 2
    assert saved["img2img"].shape == saved["model"].shape == (32, 32, 3)
    sample = [n for n in res.graph.nodes.values() if n.type == "generate.sample"]
    assert sorted(res.graph.nodes[res.graph.inputs[n.id]["latent"][0]].type for n in sample) == \
        ["condition.inpaint", "latent.set_mask"]


def test_vace_takes_a_mask_clip_or_a_still_mask():
    """condition.vace's control_masks is a MASK now (ComfyUI's type): the mask utilities' outputs link into it; a mask
    clip pads with 1 past its end, a still mask covers every frame, a picture clip is read by its luma."""
    from nodes.common.masks import clip_of
    from nodes.generate.vace import control_masks
    like = Clip.from_array(np.zeros((2, 16, 16, 3), np.uint8), 16.0)
    clip = clip_of(lambda a, b: np.zeros((b - a, 16, 16), np.float32), like)
    m = control_masks(clip, 5, 16, 16)
    assert m.shape == (5, 16, 16, 1) and m[:2].max() == 0 and m[2:].min() == 1
    still = control_masks(np.zeros((16, 16), np.float32), 5, 16, 16)
    assert still.shape == (5, 16, 16, 1) and still.max() == 0
    assert control_masks(like, 5, 16, 16)[:2].max() == 0


def test_the_mapping_page_names_the_inpainting_nodes():
    """docs/comfyui-mapping.md lists the mask and inpainting nodes with their Kinograph nodes."""
    page = (ROOT / "docs" / "comfyui-mapping.md").read_text()
    for cls, kino in (("SetLatentNoiseMask", "latent.set_mask"), ("VAEEncodeForInpaint", "vae.encode_inpaint"),
                      ("InpaintModelConditioning", "condition.inpaint"), ("GrowMask", "mask.grow"),
                      ("FeatherMask", "mask.feather"), ("InvertMask", "mask.invert"), ("ImageToMask", "mask.from_video"),
                      ("MaskToImage", "mask.to_video"), ("ImagePadForOutpaint", "mask.outpaint_pad")):
        assert any(f"`{cls}`" in line and f"`{kino}`" in line for line in page.splitlines()), cls


def test_the_viewer_shows_a_frame_of_a_mask_clip_as_grey():
    """A clip of masks (one channel) is viewable: its frames were read as RGB rows, a skewed, wrapped picture."""
    from PySide6.QtGui import QColor
    from app.editor.viewer import to_qimage
    frame = np.zeros((4, 6, 1), np.uint8)
    frame[:, 3:] = 255
    img = to_qimage(frame)
    assert (img.width(), img.height()) == (6, 4)
    assert QColor(img.pixel(4, 3)).getRgb()[:3] == (255, 255, 255) and QColor(img.pixel(1, 3)).getRgb()[:3] == (0, 0, 0)


def test_combine_and_threshold_masks_as_comfyui_does():
    """mask.combine (MaskComposite) at an offset, clipped to the first mask's picture and to [0, 1]; and/or/xor on
    rounded masks; a clip of masks combines frame by frame. mask.threshold (ThresholdMask): 1 above the value."""
    a = np.zeros((4, 6), np.float32)
    a[:, :3] = 0.75
    b = np.full((2, 4), 0.625, np.float32)
    added = _call("combine", a, b, operation="add", x=2, y=1)
    assert added.shape == (4, 6) and added[1, 2] == 1.0 and added[1, 3] == 0.625 and added[0, 2] == 0.75
    assert _call("combine", a, b, operation="subtract", x=2, y=1)[2, 2] == 0.125
    assert _call("combine", a, b, operation="subtract", x=2, y=1)[2, 4] == 0.0           # clipped at 0
    assert _call("combine", a, b, operation="and", x=2, y=1)[1, 2] == 1 and \
        _call("combine", a, b, operation="xor", x=2, y=1)[1, 2] == 0
    assert _call("combine", a, b, operation="multiply", x=5, y=3)[3, 5] == 0.0           # a corner off the picture
    like = Clip.from_array(np.zeros((3, 4, 6, 3), np.uint8), 8.0)
    from nodes.common.masks import clip_of
    moving = clip_of(lambda s, e: np.stack([np.eye(4, 6, k, dtype=np.float32) for k in range(s, e)]), like)
    both = _call("combine", a, moving, operation="or")
    assert both.length == 3 and both.frame(2)[0, 2, 0] == 255 and both.frame(2)[0, 5, 0] == 0
    assert np.array_equal(_call("threshold", np.array([[0.2, 0.5, 0.7]], np.float32), value=0.5), [[0, 0, 1]])
