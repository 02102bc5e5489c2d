"""Autoregressive Wan (Causal Forcing) as a ComfyUI creator brings it: causal_forcing-framewise.safetensors in
diffusion_models/ (Wan 2.1 T2V 1.3B's tensor names, its `config` metadata saying causal_ar) and the template
video_causal_forcing_i2v.json. The model here is a tiny random one in that layout; the block-by-block run is compared
with ComfyUI's published loop (comfy/k_diffusion/sampling.py sample_ar_video, comfy/ldm/wan/ar_model.py
CausalWanModel) written out below over the file's own tensors, and with a full-attention run under the causal mask."""
import json
import math
from pathlib import Path

import numpy as np

import pytest
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from tiny_wan22 import comfy_rope, perturbed_wan, tiny_wan_folder

DIM, LAYERS, TEXT = 128, 2, 32
CAUSAL = {"config": json.dumps({"transformer": {"causal_ar": True}})}


def _state():
    return {k: v.half().float() for k, v in perturbed_wan(4, 16, LAYERS, TEXT).items()}


@pytest.fixture(scope="module")
def causal(tmp_path_factory):
    """(the file, its tensors, the loaded model handle) of the tiny causal Wan, fp16 with its causal_ar metadata, in a
    ComfyUI models/ folder with a tiny umt5 and Wan 2.1 VAE beside it (KINOGRAPH_MODELS points there)."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    sd = _state()
    with tiny_wan_folder(tmp_path_factory.mktemp("causal"), "causal_forcing_tiny.safetensors", sd) as path:
        save_file({k: v.half().contiguous() for k, v in sd.items()}, str(path), metadata=CAUSAL)
        yield path, sd, load_diffusion_model(ModelManager(max_loaded=2), str(path), "default", "cpu")


def test_the_causal_file_is_told_apart_by_its_metadata(causal, tmp_path):
    """The file's tensors are plain Wan 2.1 T2V's: only its config metadata makes it the autoregressive model, which
    loads marked causal and samples at ComfyUI's shift 5 (plain Wan: its own 3). The same tensors without the
    metadata stay plain Wan, and the ar_video sampler refuses them."""
    from safetensors.torch import save_file
    from nodes.generate.detect import detect_file
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    path, sd, handle = causal
    det = detect_file(path)
    assert (det.family, det.variant, det.extra.get("causal_ar")) == ("wan", "causal-t2v-dim128", True)
    assert describe_model(path)["loads"] == "yes" and "ar_video" in describe_model(path)["note"]
    assert handle.pipe.transformer.config.causal_ar is True and handle.pipe.scheduler.config.flow_shift == 5.0
    plain = tmp_path / "wan_tiny.safetensors"
    save_file({k: v.half().contiguous() for k, v in sd.items()}, str(plain))
    assert detect_file(plain).variant == "t2v-dim128" and "causal_ar" not in detect_file(plain).extra
    other = load_diffusion_model(ModelManager(max_loaded=1), str(plain), "default", "cpu")
    assert not getattr(other.pipe.transformer.config, "causal_ar", False)
    lat = Latent(torch.zeros(1, 16, 2, 4, 4), "wan", 5, 16, 32, 32)
    with pytest.raises(NodeError, match="causal_ar"):
        run_sampling(other, Conditioning("wan", torch.zeros(1, 3, TEXT)), None, lat, steps=2, cfg=1.0,
                     sampler="ar_video", scheduler="simple")


# --- ComfyUI's loop and CausalWanModel, written out ---------------------------------------------------------------
def _comfy_sigmas(steps, shift=5.0):
    """ComfyUI's `simple` schedule on ModelSamplingDiscreteFlow(shift): its 1000 levels, every len/steps-th from the
    top, then 0."""
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    table = shift * t / (1 + (shift - 1) * t)
    ss = len(table) / steps
    return torch.tensor([float(table[-(1 + int(x * ss))]) for x in range(steps)] + [0.0])


def _causal_block(sd, x, t, context, start, caches):
    """CausalWanModel.forward_block: the block's tokens at frames start.., its roped keys and plain values written
    into each layer's cache at `end`, attention over the cache up to there (one head, patch (1, 2, 2))."""
    def lin(v, k):
        return F.linear(v, sd[k + ".weight"], sd.get(k + ".bias"))

    def rms(v, k):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6) * sd[k + ".weight"]

    def ln(v, k=None):
        return F.layer_norm(v, v.shape[-1:], sd.get(f"{k}.weight"), sd.get(f"{k}.bias"), eps=1e-6)

    def attend(q, k, vv):
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ vv

    b, _, time, hh, ww = x.shape
    v = F.conv3d(x, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=(1, 2, 2))
    grid = v.shape[2:]
    v = v.flatten(2).transpose(1, 2)
    s = v.shape[1]
    g = torch.zeros(time, hh // 2, ww // 2, 3, dtype=torch.float64)
    g[..., 0] += torch.arange(start, start + time, dtype=torch.float64).view(-1, 1, 1)
    g[..., 1] += torch.arange(hh // 2, dtype=torch.float64).view(1, -1, 1)
    g[..., 2] += torch.arange(ww // 2, dtype=torch.float64).view(1, 1, -1)
    pos = g.reshape(-1, 3)
    half = 128
    sinus = torch.outer(t.double().reshape(1), torch.pow(10000, -torch.arange(half, dtype=torch.float64) / half))
    e = torch.cat([sinus.cos(), sinus.sin()], 1).float()
    e = lin(F.silu(lin(e, "time_embedding.0")), "time_embedding.2").reshape(1, -1, DIM)
    e0 = lin(F.silu(e), "time_projection.1").unflatten(2, (6, DIM))
    ctx = lin(F.gelu(lin(context, "text_embedding.0"), approximate="tanh"), "text_embedding.2")
    for i in range(LAYERS):
        p, cache = f"blocks.{i}.", caches[i]
        m = (sd[p + "modulation"].unsqueeze(0) + e0).unbind(2)
        h = ln(v) * (1 + m[1]) + m[0]
        q = comfy_rope(rms(lin(h, p + "self_attn.q"), p + "self_attn.norm_q"), pos)
        k = comfy_rope(rms(lin(h, p + "self_attn.k"), p + "self_attn.norm_k"), pos)
        end = cache["end"]
        cache["k"][:, end:end + s], cache["v"][:, end:end + s] = k, lin(h, p + "self_attn.v")
        cache["end"] = end + s
        v = v + lin(attend(q, cache["k"][:, :end + s], cache["v"][:, :end + s]), p + "self_attn.o") * m[2]
        h = ln(v, p + "norm3")
        v = v + lin(attend(rms(lin(h, p + "cross_attn.q"), p + "cross_attn.norm_q"),
                           rms(lin(ctx, p + "cross_attn.k"), p + "cross_attn.norm_k"), lin(ctx, p + "cross_attn.v")),
                    p + "cross_attn.o")
        h = ln(v) * (1 + m[4]) + m[3]
        v = v + lin(F.gelu(lin(h, p + "ffn.0"), approximate="tanh"), p + "ffn.2") * m[5]
    hm = (sd["head.modulation"].unsqueeze(0) + e.unsqueeze(2)).unbind(2)
    out = lin(ln(v) * (1 + hm[1]) + hm[0], "head.head")
    f, gh, gw = grid
    out = out.view(b, f, gh, gw, 1, 2, 2, 16)
    return torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(b, 16, f, gh * 2, gw * 2)


def _comfy_ar(sd, noise, sigmas, context, seed, block, initial=None):
    """ComfyUI's sample_ar_video: KV caches for the whole clip; a start latent run at sigma 0 first; per block every
    level's x0 (x - sigma * v at timestep 1000 sigma), renoised with torch.manual_seed(seed + 1000 block + step),
    the caches' end stepped back after each model call but the last, and the finished block run again at 0."""
    _, _, lat_t, hh, ww = noise.shape
    hw = (hh // 2) * (ww // 2)
    caches = [{"k": torch.zeros(1, lat_t * hw, DIM), "v": torch.zeros(1, lat_t * hw, DIM), "end": 0}
              for _ in range(LAYERS)]

    def model(x, sigma, start):
        return x - sigma * _causal_block(sd, x, torch.tensor(float(sigma) * 1000), context, start, caches)
    out = torch.zeros_like(noise)
    start = 0
    if initial is not None:
        out[:, :, :initial.shape[2]] = initial
        model(initial, 0.0, 0)
        start = initial.shape[2]
    for b in range(-(-(lat_t - start) // block)):
        bf = min(block, lat_t - start)
        xb = noise[:, :, start:start + bf]
        for i in range(len(sigmas) - 1):
            den = model(xb, sigmas[i], start)
            if sigmas[i + 1] == 0:
                xb = den
            else:
                torch.manual_seed(seed + b * 1000 + i)
                xb = (1 - sigmas[i + 1]) * den + sigmas[i + 1] * torch.randn_like(den)
                for c in caches:
                    c["end"] -= bf * hw
        out[:, :, start:start + bf] = xb
        for c in caches:
            c["end"] -= bf * hw
        model(xb, 0.0, start)
        start += bf
    return out


@pytest.mark.parametrize("block, start", [(1, False), (2, True)])
def test_ar_video_samples_as_comfyuis_published_loop(causal, block, start):
    """sample's ar_video on the causal model (cfg 1, 4 simple steps, as the template) gives ComfyUI's loop's latent
    from the same noise and seed: framewise text-to-video, and chunks of 2 latent frames after a start image's."""
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.sampling import run_sampling
    _, sd, handle = causal
    torch.manual_seed(7)
    noise, text, first = torch.randn(1, 16, 4, 4, 6), torch.randn(1, 5, TEXT), torch.randn(1, 16, 1, 4, 6)
    if block != 1:
        handle = handle.with_option("ar_block", block)
    if start:
        handle = handle.with_option("ar_start", first)
    lat = Latent(torch.zeros(1, 16, 4, 4, 6), "wan", 13, 16, 48, 32)
    progress = []
    got = run_sampling(handle, Conditioning("wan", text), None, lat, steps=4, cfg=1.0, sampler="ar_video",
                       scheduler="simple", seed=11, noise=noise, callback=lambda i, n: progress.append(i / n)).samples
    assert progress == sorted(progress) and progress[-1] == 1.0        # the bar counts every block's steps once
    with torch.no_grad():
        want = _comfy_ar(sd, noise, _comfy_sigmas(4), text, 11, block, first if start else None)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=2e-4), (got - want).abs().max()
    if start:
        assert torch.equal(got[:, :, :1], first)


def test_a_start_latent_of_another_size_is_refused_by_name(causal):
    """condition.ar_start's model sampled with a latent of another size: the start frame cannot be the video's first,
    and the run says which sizes differ instead of torch's broadcast error."""
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.sampling import run_sampling
    handle = causal[2].with_option("ar_start", torch.zeros(1, 16, 1, 8, 8))
    lat = Latent(torch.zeros(1, 16, 4, 4, 6), "wan", 13, 16, 48, 32)
    with pytest.raises(NodeError, match=r"condition.ar_start.* 64x64 .* 48x32"):
        run_sampling(handle, Conditioning("wan", torch.zeros(1, 5, TEXT)), None, lat, steps=2, cfg=1.0,
                     sampler="ar_video", scheduler="simple")


def test_a_cancelled_block_wise_run_leaves_the_shared_model_as_it_was(causal):
    """The cache and the cached attention are the run's: after an ar_video run stopped mid-clip, the loader's model
    has its own attention and rotary table back and an ordinary run on it gives what it gave before."""
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.sampling import run_sampling
    handle = causal[2]
    model = handle.pipe.transformer
    text, lat = torch.randn(1, 5, TEXT), Latent(torch.zeros(1, 16, 3, 4, 6), "wan", 9, 16, 48, 32)

    def plain():
        return run_sampling(handle, Conditioning("wan", text), None, lat, steps=2, cfg=1.0, sampler="euler",
                            scheduler="simple", seed=3).samples
    before, own = plain(), [b.attn1.processor for b in model.blocks]
    calls = []

    def stop(i, n):
        calls.append(i)
        if len(calls) == 3:
            raise NodeError("cancelled")
    with pytest.raises(NodeError, match="cancelled"):
        run_sampling(handle, Conditioning("wan", text), None, lat, steps=2, cfg=1.0, sampler="ar_video",
                     scheduler="simple", seed=3, callback=stop)
    assert [b.attn1.processor for b in model.blocks] == own
    assert not model.rope._forward_hooks and not model.rope._forward_pre_hooks
    assert torch.equal(plain(), before)


def test_out_of_memory_in_a_block_wise_run_names_its_attention_cache(causal):
    """The cache of an ar_video run holds every frame before the block: out of memory there is lowered by a shorter or
    smaller clip, not by context windows (which a block-wise run does not take), as other runs are told."""
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.sampling import run_sampling

    def full(i, n):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    lat = Latent(torch.zeros(1, 16, 2, 4, 6), "wan", 5, 16, 48, 32)
    with pytest.raises(NodeError, match="out of memory") as err:
        run_sampling(causal[2], Conditioning("wan", torch.zeros(1, 5, TEXT)), None, lat, steps=2, cfg=1.0,
                     sampler="ar_video", scheduler="simple", callback=full)
    assert "attention cache" in str(err.value) and "context.windows" not in str(err.value)


def test_context_windows_are_refused_by_a_block_wise_run(causal):
    """Context windows cut a clip into windows sampled side by side; ar_video makes it a block at a time, each block
    seeing the ones before through its cache, so the windows would cut nothing: said, not silently passed over."""
    from nodes.consistency.context_windows import ContextOptions
    from nodes.consistency.wrappers import ContextWrapper
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.sampling import run_sampling
    handle = causal[2].with_wrapper(ContextWrapper(ContextOptions("uniform_standard", 9, 4)))
    lat = Latent(torch.zeros(1, 16, 2, 4, 6), "wan", 5, 16, 48, 32)
    with pytest.raises(NodeError, match="remove context.windows"):
        run_sampling(handle, Conditioning("wan", torch.zeros(1, 5, TEXT)), None, lat, steps=2, cfg=1.0,
                     sampler="ar_video", scheduler="simple")


def test_skip_layer_guidance_is_refused_by_a_block_wise_run(causal):
    """Skip-layer guidance runs the model once more with blocks left out: in a block-wise run that run wrote its keys
    into the cache over the model's own (cfg 1) or failed on the cache's batch (cfg above 1). Refused by name."""
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.sampling import run_sampling
    from nodes.generate.skip_layers import SkipLayers
    handle = causal[2].with_option("skip_layer_guidance", SkipLayers.parse("1", 3.0, 0.0, 1.0, 0.0))
    lat = Latent(torch.zeros(1, 16, 2, 4, 6), "wan", 5, 16, 48, 32)
    with pytest.raises(NodeError, match="remove guide.skip_layer_guidance"):
        run_sampling(handle, Conditioning("wan", torch.zeros(1, 5, TEXT)), None, lat, steps=2, cfg=1.0,
                     sampler="ar_video", scheduler="simple")


def test_skip_layers_in_the_negative_pass_are_refused_by_a_block_wise_run(causal):
    """guide.skip_layers_negative runs the negative prompt apart from the prompt, at a batch of one, while the cache
    holds both prompts' keys: it failed at the first step, on the cache's batch, with a message naming neither the
    node nor the fix. Refused by name before any step."""
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.sampling import run_sampling
    from nodes.generate.skip_layers import SkipLayers
    handle = causal[2].with_option("skip_layers_negative", SkipLayers.parse("1", 0.0, 0.0, 1.0, 0.0, negative=True))
    lat = Latent(torch.zeros(1, 16, 2, 4, 6), "wan", 5, 16, 48, 32)
    with pytest.raises(NodeError, match="remove guide.skip_layers_negative"):
        run_sampling(handle, Conditioning("wan", torch.randn(1, 5, TEXT)), Conditioning("wan", torch.zeros(1, 5, TEXT)),
                     lat, steps=2, cfg=4.0, sampler="ar_video", scheduler="simple")


def test_a_prompt_over_an_area_is_refused_by_a_block_wise_run(causal):
    """A prompt over part of the picture (condition.area) runs the model on that part alone: its keys in the cache
    would stand for whole frames (or whole frames' for its part). Refused by name, not sampled so."""
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.regions import combine, with_region
    from nodes.generate.sampling import run_sampling
    part = with_region(Conditioning("wan", torch.randn(1, 5, TEXT)), area=["pixels", 32, 32, 0, 0], strength=1.0,
                       bounds=False)
    lat = Latent(torch.zeros(1, 16, 2, 8, 8), "wan", 5, 16, 64, 64)
    with pytest.raises(NodeError, match="condition.area"):
        run_sampling(causal[2], combine(part, Conditioning("wan", torch.randn(1, 5, TEXT))), None, lat, steps=2,
                     cfg=1.0, sampler="ar_video", scheduler="simple")


def test_blockwise_equals_full_attention_under_the_causal_mask(causal):
    """The cache is the causal mask: a noisy block predicted after two clean frames were written framewise equals the
    whole three frames run at once (diffusers' own attention, clean frames at timestep 0) with each token seeing only
    its own frame and those before; unmasked, the clean frames see the block and the prediction moves."""
    from nodes.generate.causal_wan import kv_cached
    _, _, handle = causal
    model = handle.pipe.transformer
    torch.manual_seed(8)
    clean, noisy, text = torch.randn(1, 16, 2, 4, 6), torch.randn(1, 16, 1, 4, 6), torch.randn(1, 5, TEXT)
    hw = 2 * 3

    def run(x, t):
        return model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
    with torch.no_grad():
        with kv_cached(model) as cache:
            for f in (0, 1, 1):         # a frame written twice (two calls a step) is in the cache once
                cache.at(f, write=True)
                run(clean[:, :, f:f + 1], torch.zeros(1))
            cache.at(2)
            got = run(noisy, torch.tensor([700.0]))
        frame = torch.arange(3).repeat_interleave(hw)
        per_token = torch.tensor([0.0] * (2 * hw) + [700.0] * hw)[None]
        whole = torch.cat([clean, noisy], 2)
        unmasked = run(whole, per_token)[:, :, 2:]
        own = [b.attn1.processor for b in model.blocks]
        mask = frame[None, :] <= frame[:, None]
        try:
            for b, proc in zip(model.blocks, own):
                b.attn1.processor = (lambda p: lambda attn, hs, ehs=None, am=None, rot=None: p(attn, hs, ehs, mask,
                                                                                               rot))(proc)
            want = run(whole, per_token)[:, :, 2:]
        finally:
            for b, proc in zip(model.blocks, own):
                b.attn1.processor = proc
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    assert (unmasked - want).abs().max() > 1e-2


# --- condition.ar_start and the template --------------------------------------------------------------------------
TEMPLATE = Path(__file__).resolve().parents[1] / "tests" / "data" / "comfyui" / "templates" / \
    "video_causal_forcing_i2v.json"


def test_condition_ar_start_puts_the_pictures_latent_on_the_model(causal):
    """condition.ar_start (ARVideoI2V): the model carries the VAE's latent of the picture (resized to cover the size,
    centre-cropped) as the video's start, and the latent is the empty one at the size and length."""
    from PIL import Image
    from nodes.generate.adapters import get_adapter
    from nodes.generate.causal_wan import start_model
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    _, _, handle = causal
    vae = load_vae(ModelManager(max_loaded=1), "wan_tiny_vae.safetensors", "cpu")
    picture = np.random.default_rng(0).integers(0, 255, (40, 64, 3), dtype=np.uint8)
    out = start_model(handle, vae, picture, 13, 48, 32, 16.0)
    assert out["latent"].samples.shape == (1, 16, 4, 4, 6) and not out["latent"].samples.any()
    px = vae.pipe.video_processor.preprocess(Image.fromarray(picture), height=32, width=48, resize_mode="crop")
    with torch.no_grad():
        want = get_adapter("wan").vae_encode(vae.pipe, px.permute(1, 0, 2, 3)[None])
    assert torch.allclose(out["model"].option("ar_start"), want, atol=1e-5)
    assert handle.option("ar_start") is None                # the loader's model is left as it was


def test_the_causal_forcing_template_imports_and_runs_on_tiny_weights(causal, tmp_path):
    """ComfyUI's video_causal_forcing_i2v template was blocked by SamplerARVideo and ARVideoI2V; they became sample's
    ar_video sampler and condition.ar_start, and the whole graph runs on the tiny causal model to a 16 fps video."""
    import imageio.v3 as iio
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from tiny_wan22 import on_tiny_files
    result = import_data(json.loads(TEMPLATE.read_text(encoding="utf-8")))
    assert not [e for e in result.report.entries.values() if e.status == "unmapped"]
    g = result.graph
    sample = next(n for n in g.nodes.values() if n.type == "generate.sample")
    assert (sample.params["sampler"], sample.params["scheduler"], sample.params["steps"], sample.params["cfg"]) == \
        ("ar_video", "simple", 4, 1)
    start = next(n for n in g.nodes.values() if n.type == "condition.ar_start")
    assert start.params == {"width": 832, "height": 480, "frames": 81}
    assert not [n for n in g.nodes.values() if n.type == "model.ar_block"]       # framewise: the default
    chunkwise = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    next(n for n in chunkwise["definitions"]["subgraphs"][0]["nodes"] if n["type"] == "SamplerARVideo")[
        "widgets_values"] = [3]
    blocks = import_data(chunkwise)
    assert [n.params for n in blocks.graph.nodes.values() if n.type == "model.ar_block"] == [{"frames": 3}]
    assert blocks.report.entries["29:12"].status == "exact"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "me.png")
    names = {"load.diffusion_model": causal[0].name, "load.text_encoder": "umt5_tiny_fp16.safetensors",
             "load.vae": "wan_tiny_vae.safetensors"}
    on_tiny_files(g, names, tmp_path / "none.wav", tmp_path / "me.png", tmp_path / "out.mp4")
    start.params.update(frames=9, width=32, height=32)
    sample.params["steps"] = 2
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    assert iio.imread(tmp_path / "out.mp4").shape == (9, 32, 32, 3)
    assert iio.immeta(tmp_path / "out.mp4")["fps"] == 16
