"""FLUX.1 Kontext (editing a picture by prompt): condition.reference gives the transformer the picture's latent as
extra tokens on position plane 1, and the sample is what diffusers' own FluxKontextPipeline makes from the same
weights, picture and seed; further references sit where ComfyUI's Flux.forward puts them; ComfyUI's Kontext
template imports with every node mapped and runs. Kontext's weights are FLUX.1 dev's layout: the tiny dev model of
tests/tiny_flux.py stands in for it."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_flux  # noqa: E402

flux, models, comfy_flux_sigmas = test_flux.flux, test_flux.models, test_flux.comfy_flux_sigmas  # its tiny FLUX.1

W, H = 64, 48


@pytest.fixture(scope="module")
def dev(flux):
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager()
    h = mm.load("flux", str(flux / "diffusers"))
    return h, mm.components(h)


def _picture(w=W, h=H, seed=0):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
    return np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)


def _edited(dev, pictures, method="default", steps=3, seed=7, frames=1, out=(W, H)):
    from nodes.generate.reference import add_reference, with_method
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent, encode_clip
    h, parts = dev
    pos = encode_prompt(parts["text_encoder"], "make it red")
    for p in pictures:
        pos = add_reference(pos, encode_clip(parts["vae"], Clip.from_array(p if p.ndim == 4 else p[None])))
    if method != "default":
        pos = with_method(pos, method)
    latent = empty_latent(parts["vae"], frames, out[0], out[1], 8.0)
    return run_sampling(h, pos, None, latent, steps=steps, cfg=2.5, sampler="euler", seed=seed).samples


def _close(want, got):
    err = float((want - got).abs().max() / want.abs().max())
    assert err < 1e-4, err


def test_one_reference_is_diffusers_flux_kontext(flux, dev):
    """The picture's latent on plane 1 beside the noise, guidance 2.5 told to the transformer, the output cut to the
    generated tokens: FluxKontextPipeline's latent for the same picture (kept at its size) and seed."""
    from diffusers import FluxKontextPipeline
    from PIL import Image
    picture = _picture()
    ref = FluxKontextPipeline.from_pretrained(str(flux / "diffusers"), local_files_only=True)
    packed = ref(image=Image.fromarray(picture), prompt="make it red", width=W, height=H, max_area=W * H,
                 _auto_resize=False, num_inference_steps=3, guidance_scale=2.5,
                 generator=torch.Generator().manual_seed(7), output_type="latent").images
    want = ref._unpack_latents(packed, H, W, ref.vae_scale_factor)
    got = _edited(dev, [picture])[:, :, 0]
    _close(want, got)
    plain = _edited(dev, [])[:, :, 0]       # without the picture: ten times further off than the tolerance above
    assert float((plain - want).abs().max()) > 1e-3 * float(want.abs().max())


def _positions(refs, method, h=H // 8, w=W // 8):
    """ComfyUI's Flux.forward placement of references ([1, C, rh, rw] each), written out from its code: the
    (index, row offset, column offset) in patches of each reference's first token."""
    out, hh, ww, index = [], 0, 0, 0
    for r in refs:
        rh, rw = r.shape[-2:]
        if method == "index":
            index += 1
            ho = wo = 0
        elif method == "uxo":
            index, ho, wo = 0, ((h + 1) // 2) * 2 + hh, ((w + 1) // 2) * 2 + ww
            hh += rh
            ww += rw
        else:
            index, ho, wo = 1, 0, 0
            if rh + hh > rw + ww:
                wo = ww
            else:
                ho = hh
            hh, ww = max(hh, rh + ho), max(ww, rw + wo)
        out.append((index, (ho + 1) // 2, (wo + 1) // 2))
    return out


@pytest.mark.parametrize("method", ["offset", "index", "uxo"])
def test_further_references_sit_where_comfyui_puts_them(method):
    from nodes.generate.adapters.flux import reference_tokens
    refs = [torch.randn(1, 16, 6, 8), torch.randn(1, 16, 10, 4), torch.randn(1, 16, 4, 4)]
    tokens, ids = reference_tokens(refs, method, H // 8, W // 8)
    assert tokens.shape == (1, 12 + 10 + 4, 64)
    starts = [0, 12, 22]
    assert [tuple(int(v) for v in ids[s]) for s in starts] == _positions(refs, method)
    assert torch.equal(ids[12:22, 1] - ids[12, 1], torch.arange(5).repeat_interleave(2).float())


def test_two_references_change_the_edit_and_odd_sizes_are_padded(dev):
    """A second picture is read too (the sample changes), and a latent the 2x2 patches do not divide (an upscaled
    one, say) is padded by wrapping round, as ComfyUI pads, instead of failing."""
    from nodes.generate.adapters.flux import reference_tokens
    one = _edited(dev, [_picture()])
    two = _edited(dev, [_picture(), _picture(32, 32, seed=1)])
    assert float((one - two).abs().max()) > 1e-3 * float(one.abs().max())
    odd = torch.randn(1, 16, 5, 3)
    tokens, ids = reference_tokens([odd], "offset", H // 8, W // 8)
    padded = torch.cat([torch.cat([odd, odd[..., :1]], -1), torch.cat([odd, odd[..., :1]], -1)[..., :1, :]], -2)
    assert tokens.shape == (1, 6, 64) and torch.equal(tokens, _pack(padded))
    assert ids[:, 1].max() == 2 and ids[:, 2].max() == 1


def _pack(x):
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(n, (h // 2) * (w // 2), c * 4)


def test_a_clip_as_reference_edits_each_frame_from_its_own(dev):
    """Frame i of a three-frame edit is made from frame i of the reference clip: the same as editing that frame
    alone with the same noise."""
    clip = np.stack([_picture(seed=s) for s in range(3)])
    torch.manual_seed(0)
    whole = _edited(dev, [clip], frames=3)
    alone = _edited(dev, [clip[1]], frames=3)
    _close(alone[:, :, 1], whole[:, :, 1])
    assert float((alone[:, :, 0] - whole[:, :, 0]).abs().max()) > 1e-3
    with pytest.raises(NodeError, match="reference clip has 3 frames"):
        _edited(dev, [clip], frames=4)


def test_reference_on_a_model_that_does_not_read_it_is_refused(dev):
    """Any other family would silently ignore the picture: the sample is refused, naming the node to remove."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.reference import add_reference
    from nodes.generate.sampling import guided_model_fn
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import encode_clip
    h, parts = dev
    pos = add_reference(encode_prompt(parts["text_encoder"], "x"),
                        encode_clip(parts["vae"], Clip.from_array(_picture()[None])))
    blind = type("Blind", (type(get_adapter("flux")),), {"reads_references": False})()
    with pytest.raises(NodeError, match="only an edit model reads"):
        guided_model_fn(h, blind, pos, None, 1.0, 1, "cpu", torch.float32)


def test_kontext_scale_picks_the_trained_size_of_the_nearest_shape():
    from nodes.generate.reference import kontext_size
    assert kontext_size(1920, 1080) == (1392, 752)
    assert kontext_size(1000, 1000) == (1024, 1024)
    assert kontext_size(480, 640) == (880, 1184)
    from nodes.generate.nodes import kontext_scale
    out = kontext_scale(None, Clip.from_array(np.stack([_picture(192, 108)] * 2)))
    assert (out.width, out.height, out.length) == (1392, 752, 2)


def test_comfyui_flux_kontext_template_imports_and_runs(models, tmp_path, monkeypatch):
    """ComfyUI's own "Flux Kontext dev basic" template (tests/data/flux): LoadImageOutput, ImageStitch (its second
    picture bypassed), FluxKontextImageScale, VAEEncode, ReferenceLatent, FluxGuidance 2.5, ConditioningZeroOut,
    KSampler on the picture's latent. Every node maps; on the tiny model under the template's file names (Kontext's
    sizes shrunk to 64x48, so the picture keeps its size, and 2 steps) the latent is FluxKontextPipeline's for the
    same picture, prompt, guidance, seed and ComfyUI's simple levels."""
    from app.comfyui import import_data
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline
    from PIL import Image
    import nodes.generate.reference as reference
    from comfy_layouts import link_as
    for name, target in (("diffusion_models/flux1-dev-kontext_fp8_scaled.safetensors",
                          "diffusion_models/flux1-dev-tiny.safetensors"),
                         ("clip/t5xxl_fp8_e4m3fn_scaled.safetensors", "clip/t5xxl_fp16.safetensors"),
                         ("clip/t5xxl_fp8_e4m3fn_scaled", "clip/t5xxl_fp16")):
        link_as(models / name, models / target)
    monkeypatch.setattr(reference, "KONTEXT_SIZES", ((48, 64), (64, 48)))
    data = json.loads((ROOT / "tests" / "data" / "flux" / "flux_kontext_dev_basic.json").read_text("utf-8"))
    res = import_data(data)
    statuses = {e.class_type: e.status for e in res.report.entries.values()}
    assert "unmapped" not in statuses.values(), statuses
    assert res.yaml.count("steps: 20") == 1
    wf = tmp_path / "kontext.kino.yaml"
    wf.write_text(res.yaml.replace("steps: 20", "steps: 2"))
    picture = _picture()
    Image.fromarray(picture).save(tmp_path / "ComfyUI_00018_.png")
    monkeypatch.chdir(tmp_path)
    from graph_engine.api import Session, load_workflow
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    assert len(list((tmp_path / "out" / "ComfyUI").glob("*.png"))) == 1
    got = next(v["latent"] for k, v in run.outputs.items() if k.startswith("k_sampler")).samples[:, :, 0]
    ref = FluxKontextPipeline.from_pretrained(str(models.parent / "diffusers"), local_files_only=True)
    ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    prompt = next(n for n in data["nodes"] if n["type"] == "CLIPTextEncode")["widgets_values"][0]
    seed = next(n for n in data["nodes"] if n["type"] == "KSampler")["widgets_values"][0]
    packed = ref(image=Image.fromarray(picture), prompt=prompt, width=W, height=H, max_area=W * H, _auto_resize=False,
                 sigmas=comfy_flux_sigmas(2), guidance_scale=2.5, generator=torch.Generator().manual_seed(seed),
                 output_type="latent").images
    _close(ref._unpack_latents(packed, H, W, ref.vae_scale_factor), got)
