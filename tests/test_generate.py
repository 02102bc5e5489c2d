"""Generative core end to end on tiny random-weight models in their real on-disk layouts.

The models are built once per session (tests/tiny_models.py) and loaded through the same model
manager and loaders a user's real checkpoint goes through, with the hubs switched off."""
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Cancelled, NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

FAMILY_FRAMES = {"animatediff": 8, "svd": 6, "wan": 9, "ltx": 9, "cogvideox": 9, "hunyuan": 9}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny models, and one torch thread: on a shared 2-core machine tiny ops thrash with two."""
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    from tiny_models import build_all
    root = build_all(tmp_path_factory.mktemp("tiny_models"))
    yield root
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mm():
    from nodes.generate.model_manager import ModelManager
    return ModelManager(max_loaded=8)


def _parts(mm, tiny, fam, folder=None):
    h = mm.load(fam, str(tiny / (folder or fam)))
    return h, mm.components(h)


def _t2v(mm, tiny, fam, prompt="a cat", steps=3, sampler="euler", seed=7, frames=None, model=None, **kw):
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    h, parts = _parts(mm, tiny, fam)
    pos = encode_prompt(parts["text_encoder"], prompt)
    neg = encode_prompt(parts["text_encoder"], "")
    lat = empty_latent(parts["vae"], frames or FAMILY_FRAMES[fam], 64, 64, 8.0)
    out = run_sampling(model or h, pos, neg, lat, steps=steps, cfg=kw.pop("cfg", 5.0), sampler=sampler, seed=seed,
                       **kw)
    return h, parts, out


def _run(workflow, overrides, **kw):
    from graph_engine.api import Session, load_workflow
    return Session(device="cpu").run(load_workflow(workflow, check=False), overrides=overrides, use_cache=False, **kw)


def _frames(path):
    import av
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


# -- every family through its example workflow -----------------------------------------------
@pytest.mark.parametrize("fam", sorted(FAMILY_FRAMES))
def test_tiny_example_runs_end_to_end(tiny, tmp_path, fam):
    out = tmp_path / f"{fam}.mp4"
    res = _run(ROOT / "examples" / "tiny" / f"{fam}.yaml", [f"load.path={tiny / fam}", f"save.path={out}"])
    assert res.ok, res.failed
    assert out.stat().st_size > 0 and _frames(out) == FAMILY_FRAMES[fam]


def test_tiny_video_outpainting_example_redraws_only_the_padding(tiny, tmp_path):
    """examples/tiny/animatediff_outpaint.yaml: a clip padded on both sides, the padding redrawn on every frame
    (latent.set_mask) and the original pasted back (mask.composite): the picture's own pixels come out as they went
    in, the grey padding is drawn over."""
    out = tmp_path / "outpaint.mp4"
    res = _run(ROOT / "examples" / "tiny" / "animatediff_outpaint.yaml",
               [f"load.path={tiny / 'animatediff'}", f"save.path={out}"], keep=["paste", "pad"])
    assert res.ok, res.failed
    assert _frames(out) == 8
    got, padded = res.outputs["paste"]["video"].to_array(), res.outputs["pad"]["video"].to_array()
    mask = res.outputs["pad"]["mask"]
    assert got.shape == (8, 64, 64, 3) and mask.shape == (64, 64)
    assert np.array_equal(got[:, mask == 0], padded[:, mask == 0])
    sides = np.r_[0:8, 56:64]                   # the 8 grey columns added on each side
    assert np.all(padded[:, :, sides] == 128) and np.all(mask[:, sides] == 1)
    assert np.abs(got[:, :, sides].astype(int) - 128).mean() > 5


def test_loading_a_model_draws_no_library_progress_bars(tiny, capsys):
    """diffusers' "Loading pipeline components..." and transformers' "Loading weights" bars went to stderr on every
    load, where the command shows control characters as escapes: a first run of examples/tiny/wan.yaml printed
    lines of literal \\r and \\x1b[A. Kinograph reports the load node's own progress; the libraries' bars stay off,
    even where something turned them on again (a fresh process has diffusers' on)."""
    import diffusers.utils.logging as diffusers_log
    import transformers.utils.logging as transformers_log
    from app.cli import main
    from nodes.generate.model_manager import ModelManager, default_manager
    was = diffusers_log.is_progress_bar_enabled(), transformers_log.is_progress_bar_enabled()
    diffusers_log.enable_progress_bar()
    transformers_log.enable_progress_bar()
    try:
        default_manager().clear()       # a model already loaded by another test would not load again
        ModelManager().load("ltx", str(tiny / "ltx"))
        assert "Loading" not in capsys.readouterr().err
        default_manager().clear()
        diffusers_log.enable_progress_bar()
        out = tiny / "out" / "bars.mp4"
        assert main(["run", str(ROOT / "examples" / "tiny" / "wan.yaml"), "--set", f"load.path={tiny / 'wan'}",
                     "--set", f"save.path={out}", "--no-cache", "--device", "cpu"]) == 0
        got = capsys.readouterr()
        assert f"wrote {out}" in got.out
        assert "Loading" not in got.err and "\\r" not in got.err and "\\x1b" not in got.err, got.err
    finally:
        for module, on in zip((diffusers_log, transformers_log), was):
            (module.enable_progress_bar if on else module.disable_progress_bar)()


def test_a_model_load_does_not_pass_on_library_warnings_that_mislead():
    """A first AnimateDiff load printed transformers' "`CLIPImageProcessor` requires torchvision (not installed) ...
    Install torchvision to use the default backend" (pip would bring the torch torchvision pairs with, replacing
    the one installed) and diffusers' "There are modules in UNetMotionModel that should be kept in float32: []"
    (there are none). The libraries' handlers drop those two, and pass their other warnings on."""
    import logging
    from nodes.generate.offline import quiet_libraries
    quiet_libraries()
    said = {
        "transformers.utils.import_utils": [
            ("`CLIPImageProcessor` requires torchvision (not installed); falling back to `CLIPImageProcessorPil` for "
             "backward compatibility. Install torchvision to use the default backend, or import "
             "`CLIPImageProcessorPil` directly to silence this warning.", False),
            ("Some weights of CLIPTextModel were not initialized from the model checkpoint", True)],
        "diffusers.models.modeling_utils": [
            ("There are modules in UNetMotionModel that should be kept in float32: []. Casting directly with `to()` "
             "can lead to inconsistent results; set `torch_dtype` in `from_pretrained()` instead to keep these "
             "modules in float32.", False),
            ("There are modules in AutoencoderKLWan that should be kept in float32: ['norm']. Casting directly with "
             "`to()` can lead to inconsistent results", True)]}
    for name, messages in said.items():
        handlers = logging.getLogger(name.split(".")[0]).handlers
        assert handlers, name
        for text, shown in messages:
            record = logging.getLogger(name).makeRecord(name, logging.WARNING, __file__, 0, text, (), None)
            assert all(bool(h.filter(record)) == shown for h in handlers), text


# -- same frames as the diffusers pipeline with the same components, seed and steps ----------
@pytest.mark.parametrize("fam,sampler,scheduler", [
    ("animatediff", "ddim", None), ("wan", "flow_euler", "flow_match"), ("ltx", "flow_euler", None),
    ("cogvideox", "ddim", None), ("hunyuan", "flow_euler", None)])
def test_matches_diffusers_pipeline(tiny, mm, fam, sampler, scheduler):
    from nodes.generate.model_manager import ModelManager
    fresh = ModelManager()          # its own pipeline: the scheduler swap below must not leak
    h, _ = _parts(fresh, tiny, fam)
    if scheduler == "flow_match":
        from diffusers import FlowMatchEulerDiscreteScheduler
        h.pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    cfg = 3.0
    _, _, ours = _t2v(fresh, tiny, fam, sampler=sampler, steps=4, cfg=cfg, model=h)
    kw = dict(num_frames=FAMILY_FRAMES[fam], height=64, width=64, num_inference_steps=4, guidance_scale=cfg,
              generator=torch.Generator().manual_seed(7), output_type="latent")
    if fam != "hunyuan":
        kw["negative_prompt"] = ""
    ref = h.pipe("a cat", **kw).frames
    if fam == "ltx":
        ref = h.pipe._unpack_latents(ref, *ours.samples.shape[2:], 1, 1)
    if fam == "cogvideox":
        ref = ref.permute(0, 2, 1, 3, 4)
    err = float((ref.float() - ours.samples).abs().max()) / float(ref.abs().max())
    assert err < 1e-4, f"{fam}: relative difference {err}"


def test_kinograph_mini_through_the_same_loader(mm, tiny):
    from nodes.generate.vae_ops import decode_latent
    h, parts, out = _t2v(mm, tiny, "mini", prompt="a red circle moving left", frames=16, steps=3,
                         sampler="flow_euler")
    assert h.family == "mini" and out.samples.shape == (1, 3, 16, 64, 64)
    assert decode_latent(parts["vae"], out).frames(0, 16).shape == (16, 64, 64, 3)
    with pytest.raises(NodeError, match="does not know the word"):
        _t2v(mm, tiny, "mini", prompt="a purple elephant", frames=16)


# -- loading: folders, files, errors ----------------------------------------------------------
def test_missing_folder_says_where_to_put_it(mm, tmp_path):
    with pytest.raises(NodeError, match=r"not found: .*nowhere.*never downloads"):
        mm.load("wan", str(tmp_path / "nowhere"))



def test_a_diffusers_folder_missing_a_part_names_the_part(mm, tiny, tmp_path):
    """A Wan folder copied without its vae/ said 'a file is missing from X (Error no file named config.json found in
    directory X.)', pointing at the folder itself; now it names the part model_index.json lists and is not there."""
    copy = tmp_path / "Wan-partial"
    shutil.copytree(tiny / "wan", copy, ignore=shutil.ignore_patterns("vae"))
    with pytest.raises(NodeError) as e:
        mm.load("wan", str(copy))
    assert f"vae/ is missing from {copy} (its model_index.json lists it)" in str(e.value)
    assert "Copy the whole model folder again" in str(e.value)

def test_wrong_family_is_named(mm, tiny):
    with pytest.raises(NodeError, match=r"is an AnimateDiff model .*not Wan.*load\.animatediff"):
        mm.load("wan", str(tiny / "animatediff"))
    with pytest.raises(NodeError, match=r"is a Wan 2.1/2.2 model.*not LTX"):
        mm.load("ltx", str(tiny / "wan"))


def test_corrupt_weights_are_named(mm, tiny, tmp_path):
    bad = tmp_path / "wan"
    shutil.copytree(tiny / "wan", bad)
    weights = bad / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(NodeError, match=r"diffusion_pytorch_model\.safetensors is not a valid safetensors.*truncated"):
        mm.load("wan", str(bad))


def test_missing_component_names_the_folder(mm, tiny, tmp_path):
    bad = tmp_path / "ltx"
    shutil.copytree(tiny / "ltx", bad, ignore=lambda folder, names: ["vae"] if Path(folder) == tiny / "ltx" else [])
    with pytest.raises(NodeError, match=r"missing from .*ltx.*never downloads"):
        mm.load("ltx", str(bad))


def test_legacy_pickle_with_code_is_refused(tmp_path):
    import pickle
    from nodes.generate.weights import load_weights as load_state_dict

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    p = tmp_path / "evil.ckpt"
    p.write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(NodeError, match=r"evil.ckpt .*would run builtins.print, so it is refused"):
        load_state_dict(p)
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(b"\x80\x02" + bytes(range(161, 256)))
    with pytest.raises(NodeError, match=r"noise.ckpt is not a readable checkpoint.*Copy the file again"):
        load_state_dict(noise)
    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, good)
    assert torch.equal(load_state_dict(good)["w"], torch.ones(2))


def test_handles_are_cached_by_path_dtype_device(mm, tiny):
    a, _ = _parts(mm, tiny, "wan")
    b, _ = _parts(mm, tiny, "wan")
    assert a.pipe is b.pipe
    c = mm.load("wan", str(tiny / "wan"), dtype="bf16")
    assert c.pipe is not a.pipe and c.denoiser.dtype == torch.bfloat16


def _refused(workflow, overrides):
    """The problems that stop a run before its first node (validation), as messages."""
    from graph_engine.errors import WorkflowError
    with pytest.raises(WorkflowError) as e:
        _run(workflow, overrides)
    return [p.message for p in e.value.problems]


def test_impossible_frame_count_in_the_graph(tiny, tmp_path):
    said = _refused(ROOT / "examples" / "tiny" / "wan.yaml", [f"load.path={tiny / 'wan'}",
                                                              f"save.path={tmp_path / 'x.mp4'}", "latent.frames=16"])
    assert len(said) == 1 and re.search(r"^frames: .*4n\+1.*13 or 17", said[0])


def test_a_size_the_denoiser_cannot_tile_is_refused_by_latent_empty(mm, tiny, tmp_path):
    """latent.empty passed sizes the denoiser's grid does not divide: kinograph-mini (16-pixel grid) at
    52x52 failed in sample with torch's 'Sizes of tensors must match', Wan (8x VAE, 2x2 patches) at 40x40
    failed only in sample after latent.empty had accepted it. Both are refused before anything runs."""
    mini = _refused(ROOT / "examples" / "mini_text_to_video.yaml", ["latent.width=52", "latent.height=52",
                                                                    f"save.path={tmp_path / 'm.mp4'}"])
    assert mini == ["width: kinograph-mini needs width and height divisible by 16; 52x52 is not. Try 48x48."]
    wan = _refused(ROOT / "examples" / "tiny" / "wan.yaml", [f"load.path={tiny / 'wan'}", "latent.width=40",
                                                             "latent.height=40", f"save.path={tmp_path / 'w.mp4'}"])
    assert len(wan) == 1 and "divisible by 16; 40x40 is not" in wan[0]
    # A VAE whose family validation cannot tell (one that comes through another node) is still checked by
    # latent.empty when it runs.
    from nodes.generate.vae_ops import empty_latent
    _, parts = _parts(mm, tiny, "wan")
    with pytest.raises(NodeError, match="divisible by 16; 40x40 is not"):
        empty_latent(parts["vae"], 9, 40, 40, 16.0)


def test_vae_encode_crops_a_picture_the_grid_does_not_divide_as_comfyui_does(mm, tiny):
    """ComfyUI's edit templates scale a picture to a pixel count (ImageScaleToTotalPixels: 1254x836 at 1 MP) and
    feed it to VAEEncode, which crops it; Kinograph's vae.encode refused every such size ('divisible by 16'). It
    now crops, centred, to the grid's multiple and logs what it cut; the latent is the crop's."""
    from graph_engine import Clip
    from graph_engine.context import Context
    from nodes.generate.nodes import vae_encode
    from nodes.generate.vae_ops import encode_clip
    _, parts = _parts(mm, tiny, "wan")
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (5, 41, 70, 3), dtype=np.uint8)
    events = []
    got = vae_encode(Context("enc", emit=events.append), parts["vae"], Clip.from_array(frames, 16.0))
    assert [e["message"] for e in events if e["event"] == "log"] == [
        "enc: cropped 70x41 to 64x32 (centred): Wan 2.1/2.2 needs sizes divisible by 16"]
    crop = encode_clip(parts["vae"], Clip.from_array(np.ascontiguousarray(frames[:, 4:36, 3:67]), 16.0))
    assert (got.width, got.height) == (64, 32) and torch.equal(got.samples, crop.samples)
    events.clear()
    whole = vae_encode(Context("enc", emit=events.append), parts["vae"], Clip.from_array(frames[:, :32, :64], 16.0))
    assert not events and (whole.width, whole.height) == (64, 32)
    with pytest.raises(NodeError, match="divisible by 16; 70x12 is not"):     # no whole grid cell to keep
        vae_encode(Context("enc"), parts["vae"], Clip.from_array(frames[:, :12], 16.0))


@pytest.mark.parametrize("window, says", [
    (["sample.start_step=4"], "start_step 4 leaves nothing to sample: the schedule stops at step 4 (steps 4)"),
    (["sample.start_step=3", "sample.end_step=1"], "the schedule stops at step 1 (steps 4, end_step 1)")])
def test_a_sample_window_without_steps_is_refused_not_passed_through(tmp_path, window, says):
    """A start_step at or past the end of the schedule returned the empty latent as it was: a black video
    and 'ok'. It is an error naming the parameter and what to set."""
    out = tmp_path / "m.mp4"
    res = _run(ROOT / "examples" / "mini_text_to_video.yaml", ["sample.steps=4", f"save.path={out}", *window])
    assert not res.ok and set(res.failed) == {"sample"} and not out.exists()
    assert says in res.failed["sample"] and "Set start_step below" in res.failed["sample"]


def test_a_flow_shift_of_zero_is_refused_before_running():
    """Shift 0 made every noise level 0: nothing was sampled and the video came out black, 'ok'."""
    from graph_engine.errors import WorkflowError
    text = ("kinograph: 1\nnodes:\n  load: {type: load.mini}\n"
            "  shift: {type: model.flow_shift, inputs: {model: load.model}, params: {shift: 0}}\n")
    with pytest.raises(WorkflowError, match=r"node shift: parameter 'shift' 0 is out of range \(0\.01\.\.100"):
        from graph_engine.api import load_workflow
        load_workflow(text=text)


def test_motion_adapter_from_original_single_file(mm, tiny, tmp_path):
    """An original-format AnimateDiff motion module file (mm_sd_v15 style) loads through the conversion."""
    import json
    from safetensors.torch import load_file, save_file
    from nodes.generate.model_manager import load_motion_adapter
    src = tiny / "animatediff" / "motion_adapter"
    state = load_file(str(src / "diffusion_pytorch_model.safetensors"))
    original = {}
    for k, v in state.items():
        k = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", k)
        for a, b in ((".norm1", ".norms.0"), (".norm2", ".norms.1"), (".norm3", ".ff_norm"),
                     (".attn1", ".attention_blocks.0"), (".attn2", ".attention_blocks.1")):
            k = k.replace(a, b)
        original[k] = v
    f = tmp_path / "mm_tiny.safetensors"
    save_file(original, str(f))
    cfg = json.loads((src / "config.json").read_text())
    f.with_suffix(".json").write_text(json.dumps({k: v for k, v in cfg.items() if not k.startswith("_")}))
    adapter = load_motion_adapter(f, torch.float32)
    ref = load_motion_adapter(src, torch.float32)
    for (k, a), (_, b) in zip(sorted(adapter.state_dict().items()), sorted(ref.state_dict().items())):
        assert torch.equal(a, b), k
    with pytest.raises(NodeError, match="not an AnimateDiff motion module"):
        load_motion_adapter(tiny / "loras" / "tiny_image_lora.safetensors", torch.float32)


# -- conditioning ------------------------------------------------------------------------------
def test_emphasis_scales_only_the_weighted_tokens(mm, tiny):
    from nodes.generate.text import encode_prompt
    _, parts = _parts(mm, tiny, "animatediff")
    plain = encode_prompt(parts["text_encoder"], "a red cat").embeds[0]
    heavy = encode_prompt(parts["text_encoder"], "a (red:1.5) cat").embeds[0]
    ratio = (heavy / plain).mean(-1)
    # Tokens: <start>, a, ' ', r, e, d, ... (byte-level): "red" is tokens 2..4 after "a ".
    others = torch.cat([ratio[:2], ratio[5:]])
    assert torch.allclose(ratio[2:5], others.mean() * 1.5, rtol=1e-3)
    assert torch.allclose(others, others.mean().expand_as(others), rtol=1e-3)
    assert abs(float(heavy.mean() - plain.mean())) < 1e-5


def test_prompt_schedule_reaches_each_frame(mm, tiny):
    from nodes.generate.adapters import get_adapter
    from nodes.generate.text import encode_prompt
    h, parts = _parts(mm, tiny, "animatediff")
    cond = encode_prompt(parts["text_encoder"], "0: a cat, 4: a dog")
    one, two = encode_prompt(parts["text_encoder"], "a cat"), encode_prompt(parts["text_encoder"], "a dog")
    assert cond.keyframes == (0, 4) and cond.embeds.shape[0] == 2
    ehs = get_adapter("animatediff").conditioning_inputs(h, [cond], [0, 2, 4, 7], 1, "cpu",
                                                         torch.float32)["encoder_hidden_states"]
    assert torch.allclose(ehs[0], one.embeds[0], atol=1e-6) and torch.allclose(ehs[2], two.embeds[0], atol=1e-6)
    assert torch.allclose(ehs[1], (one.embeds[0] + two.embeds[0]) / 2, atol=1e-6)
    assert torch.allclose(ehs[3], two.embeds[0], atol=1e-6)


def test_latent_and_conditioning_survive_the_disk_cache(mm, tiny):
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.text import encode_prompt
    _, parts = _parts(mm, tiny, "hunyuan")
    c = encode_prompt(parts["text_encoder"], "0: a cat, 8: a dog").with_meta(fps=8.0)
    c2 = Conditioning.from_state(*c.to_state())
    assert c2.keyframes == c.keyframes and c2.prompts == c.prompts and c2.meta == c.meta
    for a, b in ((c.embeds, c2.embeds), (c.mask, c2.mask), (c.pooled, c2.pooled)):
        assert torch.equal(a, b)
    lat = Latent(torch.randn(1, 4, 3, 8, 8), "wan", 9, 16.0, 64, 64)
    lat2 = Latent.from_state(*lat.to_state())
    assert torch.equal(lat.samples, lat2.samples) and (lat2.family, lat2.frames, lat2.fps) == ("wan", 9, 16.0)


def test_wan_first_last_frame_conditioning(mm, tiny):
    from nodes.generate.image_cond import condition_frames, encode_image
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    h, parts = _parts(mm, tiny, "wan", "wan_i2v")
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    pos, neg = (encode_prompt(parts["text_encoder"], t) for t in ("a cat", ""))
    lat = empty_latent(parts["vae"], 9, 64, 64, 16.0)
    with pytest.raises(NodeError, match="encode.image"):
        condition_frames(parts["vae"], pos, neg, lat, img, None, None)
    c = condition_frames(parts["vae"], pos, neg, lat, img, img[::-1].copy(),
                         encode_image(parts["image_encoder"], img))
    # 4 mask channels = the 4 pixel frames inside each latent frame: the first latent frame is the
    # first pixel frame alone (all 4 set), the last pixel frame is the last channel of the last one.
    mask = c["positive"].extra["concat"][0, :4]
    assert mask[:, 0].min() == 1 and mask[3, -1].min() == 1
    assert mask[:, 1:-1].max() == 0 and mask[:3, -1].max() == 0
    out = run_sampling(h, c["positive"], c["negative"], lat, steps=2, cfg=4.0, sampler="unipc", seed=1)
    assert out.samples.shape == lat.samples.shape and torch.isfinite(out.samples).all()
    _, t2v = _parts(mm, tiny, "wan")
    with pytest.raises(NodeError, match="text-to-video"):
        condition_frames(t2v["vae"], pos, neg, lat, img, None, None)


# -- sampling behaviour -------------------------------------------------------------------------
def test_seed_determinism_and_denoise(mm, tiny):
    _, _, a = _t2v(mm, tiny, "wan", seed=3)
    _, _, b = _t2v(mm, tiny, "wan", seed=3)
    _, _, c = _t2v(mm, tiny, "wan", seed=4)
    assert torch.equal(a.samples, b.samples) and not torch.equal(a.samples, c.samples)
    from nodes.generate.sampling import make_sigmas
    from nodes.generate.adapters import get_adapter
    h, _ = _parts(mm, tiny, "wan")
    full = make_sigmas(get_adapter("wan"), h.pipe, 10, "default", 1.0, a.samples.shape)
    part = make_sigmas(get_adapter("wan"), h.pipe, 10, "default", 0.3, a.samples.shape)
    assert len(full) == 11 and len(part) == 4 and torch.equal(part, full[-4:])


@pytest.mark.parametrize("sampler,scheduler", [("euler_ancestral", "karras"), ("dpmpp_2m", "karras"),
                                               ("unipc", "normal"), ("lcm", "normal"), ("er_sde", "simple"),
                                               ("uni_pc", "sgm_uniform"), ("gradient_estimation", "beta"),
                                               ("dpmpp_2m_sde", "karras"), ("dpmpp_sde_gpu", "normal"),
                                               ("heun", "beta57"), ("lms", "karras"), ("ipndm", "simple"),
                                               ("ddpm", "normal"), ("dpm_2_ancestral", "karras"),
                                               ("euler_ancestral_cfg_pp", "normal"), ("res_multistep_ancestral", "simple"),
                                               ("res_multistep_cfg_pp", "karras"), ("deis", "exponential"),
                                               ("dpmpp_2s_ancestral", "karras"), ("dpmpp_2s_ancestral_cfg_pp", "normal"),
                                               ("dpmpp_2m_cfg_pp", "simple"), ("res_multistep_ancestral_cfg_pp", "beta"),
                                               ("seeds_2", "karras"), ("seeds_3", "normal"), ("exp_heun_2_x0", "simple"),
                                               ("dpm_fast", "karras"), ("dpm_adaptive", "normal"), ("heunpp2", "karras"),
                                               ("ipndm_v", "exponential"), ("gradient_estimation_cfg_pp", "normal"),
                                               ("sa_solver", "normal"), ("sa_solver_pece", "karras")])
def test_every_sampler_runs_on_a_real_denoiser(mm, tiny, sampler, scheduler):
    _, _, out = _t2v(mm, tiny, "animatediff", sampler=sampler, scheduler=scheduler)
    assert torch.isfinite(out.samples).all() and out.samples.abs().max() > 0


@pytest.mark.parametrize("sampler,frame", [("er_sde", "model"), ("lcm", "model"), ("res_multistep", "sigma"),
                                           ("uni_pc_bh2", "model"), ("dpmpp_3m_sde", "model"), ("seeds_3", "model"),
                                           ("sa_solver", "model")])
def test_comfyuis_samplers_run_on_a_flow_model_with_comfyuis_step_noise(mm, tiny, monkeypatch, sampler, frame):
    """The stochastic ones draw their step noise from comfy_step_noise with the run's seed (ComfyUI's way); frame
    sigma runs res_multistep in log sigma, which gives another latent than the model's frame."""
    from nodes.generate import sampling
    calls = []

    def spy(name, shape, seed, device, sigmas):
        calls.append((name, tuple(shape), seed, str(device), len(sigmas)))
        return comfy_step_noise(name, shape, seed, device, sigmas)
    comfy_step_noise = sampling.comfy_step_noise
    monkeypatch.setattr(sampling, "comfy_step_noise", spy)
    _, _, out = _t2v(mm, tiny, "wan", sampler=sampler, seed=11, frame=frame, scheduler="normal")
    assert torch.isfinite(out.samples).all() and out.samples.abs().max() > 0
    stochastic = sampler in ("er_sde", "lcm", "dpmpp_3m_sde", "seeds_3", "sa_solver")
    assert [c[:4] for c in calls] == ([(sampler, tuple(out.samples.shape), 11, "cpu")] if stochastic else [])
    if frame == "sigma":
        _, _, own = _t2v(mm, tiny, "wan", sampler=sampler, seed=11, frame="model", scheduler="normal")
        assert not torch.allclose(own.samples, out.samples)


@pytest.mark.parametrize("fam", ["animatediff", "wan"])
def test_cfg_pp_steps_along_the_negative_prompts_own_prediction(mm, tiny, fam):
    """euler_cfg_pp lands on the guided prediction and leaves it along the negative prompt's: with the prompt as its
    own negative the two are one, and it is Euler; with another negative it is not."""
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    h, parts = _parts(mm, tiny, fam)
    pos, neg = (encode_prompt(parts["text_encoder"], t) for t in ("a cat", "blurry"))
    lat = empty_latent(parts["vae"], FAMILY_FRAMES[fam], 64, 64, 8.0)

    def run(sampler, negative):
        return run_sampling(h, pos, negative, lat, steps=3, cfg=5.0, sampler=sampler, seed=5).samples
    same = run("euler_cfg_pp", pos)
    assert torch.allclose(same, run("euler", pos), atol=1e-4), float((same - run("euler", pos)).abs().max())
    assert not torch.allclose(run("euler_cfg_pp", neg), run("euler", neg), atol=1e-3)
    assert torch.isfinite(run("euler_ancestral_cfg_pp", neg)).all()     # from pure noise (a flow model's alpha 0)


def test_a_long_prompt_samples_beside_a_short_negative(mm, tiny):
    """A prompt of two CLIP windows (154 tokens) and a negative of one sample together (the negative repeated to the
    prompt's length, which attention does not see), and the second window reaches the picture."""
    from dataclasses import replace
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    h, parts = _parts(mm, tiny, "animatediff")
    pos = encode_prompt(parts["text_encoder"], "a cat on a mat, " * 8 + "a dog in the fog, " * 4)
    neg = encode_prompt(parts["text_encoder"], "blurry")
    assert pos.embeds.shape[1] == 154 and neg.embeds.shape[1] == 77
    lat = empty_latent(parts["vae"], FAMILY_FRAMES["animatediff"], 64, 64, 8.0)

    def run(p, n):
        return run_sampling(h, p, n, lat, steps=2, cfg=5.0, sampler="euler", seed=5).samples
    both = run(pos, neg)
    assert torch.isfinite(both).all()
    first = replace(pos, embeds=pos.embeds[:, :77])
    assert not torch.allclose(both, run(first, neg), atol=1e-4)
    repeated = replace(neg, embeds=neg.embeds.repeat(1, 2, 1))
    torch.testing.assert_close(both, run(pos, repeated), rtol=1e-4, atol=1e-4)


def test_cancel_stops_within_one_step_and_writes_nothing(tiny, tmp_path):
    from graph_engine.context import CancelToken
    cancel, steps = CancelToken(), []

    def on_event(ev):
        if ev.get("event") == "node_progress" and ev.get("node") == "sample":
            steps.append(ev["done"])
            cancel.cancel()
    out = tmp_path / "never.mp4"
    res = _run(ROOT / "examples" / "tiny" / "animatediff.yaml",
               [f"load.path={tiny / 'animatediff'}", f"save.path={out}", "sample.steps=30"],
               on_event=on_event, cancel=cancel)
    assert res.cancelled and steps == [1]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_run_sampling_raises_cancelled_from_the_step_callback(mm, tiny):
    calls = []

    def check():
        calls.append(1)
        if len(calls) > 2:
            raise Cancelled()
    with pytest.raises(Cancelled):
        _t2v(mm, tiny, "wan", steps=20, check=check)
    assert len(calls) == 3


def test_loras_apply_per_branch_with_strength(mm, tiny):
    from nodes.generate.loaders import add_lora
    h, _ = _parts(mm, tiny, "animatediff")
    lora = str(tiny / "loras" / "tiny_image_lora.safetensors")
    _, _, base = _t2v(mm, tiny, "animatediff")
    _, _, full = _t2v(mm, tiny, "animatediff", model=add_lora(h, lora, 1.0))
    _, _, zero = _t2v(mm, tiny, "animatediff", model=add_lora(h, lora, 0.0))
    _, _, motion = _t2v(mm, tiny, "animatediff",
                        model=h.with_lora(str(tiny / "loras" / "tiny_motion_lora.safetensors"), 0.8))
    _, _, again = _t2v(mm, tiny, "animatediff")
    assert not torch.allclose(base.samples, full.samples, atol=1e-3)
    assert not torch.allclose(base.samples, motion.samples, atol=1e-3)
    assert torch.allclose(base.samples, zero.samples, atol=1e-5)
    assert torch.equal(base.samples, again.samples)          # the shared pipeline is left as it was
    with pytest.raises(NodeError, match="no LoRA tensors"):
        add_lora(h, str(tiny / "controlnet" / "diffusion_pytorch_model.safetensors"), 1.0)



def test_a_lora_of_another_family_or_naming_no_layer_is_refused_by_name(mm, tiny, tmp_path):
    """An SD LoRA or an LTX-style one given to Wan stopped sampling with diffusers' ValueError 'Adapter name(s)
    {...} not in the list of present adapters' (a traceback): diffusers found none of its keys in Wan's
    transformer, loaded nothing and only logged a warning."""
    from safetensors.torch import save_file
    from nodes.generate.loaders import add_lora
    h, _ = _parts(mm, tiny, "wan")
    with pytest.raises(NodeError) as e:
        add_lora(h, str(tiny / "loras" / "tiny_image_lora.safetensors"), 1.0)
    assert "tiny_image_lora.safetensors" in str(e.value) and "Stable Diffusion" in str(e.value)
    assert "Wan" in str(e.value)
    # Names of another transformer (its family cannot be told from them): refused when it is applied.
    odd = tmp_path / "ltx_style_lora.safetensors"
    save_file({"transformer_blocks.0.attn1.to_q.lora_A.weight": torch.randn(2, 128),
               "transformer_blocks.0.attn1.to_q.lora_B.weight": torch.randn(128, 2)}, str(odd))
    with pytest.raises(NodeError) as e:
        _t2v(mm, tiny, "wan", steps=1, model=add_lora(h, str(odd), 1.0))
    assert "ltx_style_lora.safetensors" in str(e.value) and "none of its" in str(e.value)
    _t2v(mm, tiny, "wan", steps=1)                     # the shared model still samples without it

def test_controlnet_with_weight_free_preprocessors(mm, tiny):
    from graph_engine import Clip
    from nodes.generate.control import apply_control, preprocess
    frames = np.zeros((8, 64, 64, 3), np.uint8)
    frames[:, 16:48, 16:48] = 255
    clip = Clip.from_array(frames, 8.0)
    edges = preprocess(clip, "canny")
    assert edges.shape == frames.shape and edges[0, 14:18, 20, 0].max() == 255 and edges[0, 32, 32, 0] == 0
    depth = preprocess(clip, "depth")
    assert depth[0, 32, 32, 0] > depth[0, 2, 2, 0]
    h, _ = _parts(mm, tiny, "animatediff")
    _, _, base = _t2v(mm, tiny, "animatediff")
    for method in ("canny", "depth", "none"):
        ctl = apply_control(mm, h, clip, str(tiny / "controlnet"), 1.0, method, 100, 200)
        _, _, out = _t2v(mm, tiny, "animatediff", model=ctl)
        assert not torch.allclose(base.samples, out.samples, atol=1e-4)
    with pytest.raises(NodeError, match=r"AnimateDiff, Stable Diffusion \(1.5, XL and 3.5 Large\), FLUX.1 and Qwen-Image models, not Wan 2.1/2.2"):
        apply_control(mm, _parts(mm, tiny, "wan")[0], clip, str(tiny / "controlnet"), 1.0, "canny", 1, 2)


def test_an_sd_controlnet_takes_an_inpainting_mask(mm, tiny):
    """control.apply with a mask on an SD ControlNet (control_v11p_sd15_inpaint, given InpaintPreprocessor's mask on
    import) was refused as "not an inpainting ControlNet". The control now keeps 0 where the mask is, and its net is
    given -1 there (adapters.sd.with_control)."""
    from graph_engine import Clip
    from nodes.generate.adapters.sd import with_control
    from nodes.generate.control import apply_control
    frames = np.full((8, 64, 64, 3), 128, np.uint8)
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1.0
    h, _ = _parts(mm, tiny, "animatediff")
    clip = Clip.from_array(frames, 8.0)
    masked = apply_control(mm, h, clip, str(tiny / "controlnet"), 1.0, "none", 100, 200, mask=mask)
    c = masked.option("controlnet")[-1]
    assert c.keep.shape == (8, 64, 64) and c.keep[0, 32, 32] == 0 and c.keep[0, 2, 2] == 1
    given = with_control({}, masked, [0], 1, "cpu", torch.float32)["control"][-1].frames
    assert given[0, :, 32, 32].tolist() == [-1.0] * 3 and given[0, 0, 2, 2] == pytest.approx(128 / 255)


def test_a_controlnet_samples_with_prompts_for_part_of_the_steps(mm, tiny):
    """Prompts limited to part of the steps (condition.timestep_range) run over the whole picture, so the ControlNet's
    full-size frames fit them: a prompt split into two halves samples under a ControlNet as the prompt does. A prompt
    in an area is still refused with one, by name."""
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.regions import combine, with_region, with_steps
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    frames = np.zeros((8, 64, 64, 3), np.uint8)
    frames[:, 16:48, 16:48] = 255
    h, parts = _parts(mm, tiny, "animatediff")
    ctl = apply_control(mm, h, Clip.from_array(frames, 8.0), str(tiny / "controlnet"), 1.0, "canny", 100, 200)
    pos, neg = (encode_prompt(parts["text_encoder"], t) for t in ("a cat", ""))
    lat = empty_latent(parts["vae"], FAMILY_FRAMES["animatediff"], 64, 64, 8.0)

    def s(p):
        return run_sampling(ctl, p, neg, lat, steps=2, cfg=5.0, sampler="euler", seed=7).samples
    assert torch.allclose(s(combine(with_steps(pos, 0.0, 0.5), with_steps(pos, 0.5, 1.0))), s(pos), atol=1e-4)
    with pytest.raises(NodeError, match="ControlNet"):
        s(combine(pos, with_region(pos, area=["pixels", 32, 32, 0, 0], strength=1.0)))


def test_prompt_step_ranges_on_a_flow_model_follow_its_shift(mm, tiny):
    """On a flow model a share of the steps becomes a noise level through the shift in use (model.flow_shift's, as
    ComfyUI's ModelSamplingSD3 sets it): 0.3 is sigma 0.949 at shift 8 and 0.7 at shift 1, so at sigma 0.85 the
    detail prompt (0.3-1) runs under shift 8 and the composition prompt (0-0.3) under shift 1."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.regions import combine, with_steps
    from nodes.generate.sampling import guided_model_fn
    from nodes.generate.text import encode_prompt
    h, parts = _parts(mm, tiny, "wan")
    a, b, n = (encode_prompt(parts["text_encoder"], t) for t in ("a castle", "moss on stone", ""))
    x = torch.randn(1, 16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    both = combine(with_steps(a, 0.0, 0.3), with_steps(b, 0.3, 1.0))

    def fn(shift, pos):
        return guided_model_fn(h.with_option("flow_shift", shift), get_adapter("wan"), pos, n, 5.0, 1, "cpu",
                               torch.float32, 1)(x, 0.85)
    assert torch.allclose(fn(8.0, both), fn(8.0, b), atol=1e-4)
    assert torch.allclose(fn(1.0, both), fn(1.0, a), atol=1e-4)
    assert not torch.allclose(fn(1.0, a), fn(1.0, b), atol=1e-3)


def test_true_cfg_on_a_model_without_distilled_guidance_is_refused_by_name(mm, tiny):
    """guide.true_cfg (XlabsSampler's true_gs) is for a model told cfg as its guidance; Wan takes cfg as true CFG."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import guided_model_fn
    from nodes.generate.text import encode_prompt
    h, parts = _parts(mm, tiny, "wan")
    pos = encode_prompt(parts["text_encoder"], "a castle")
    with pytest.raises(NodeError, match="guide.true_cfg adds true CFG to a model told cfg as its guidance .* this "
                                        "wan model takes sample's cfg as true CFG already: remove guide.true_cfg"):
        guided_model_fn(h.with_option("true_cfg", (2.0, 0)), get_adapter("wan"), pos, pos, 5.0, 1, "cpu",
                        torch.float32, 1)


def test_context_windows_wrap_the_model_function(mm, tiny):
    """The consistency area's window wrapper runs the denoiser on slices with frame indices."""
    from nodes.consistency.context_windows import ContextOptions
    from nodes.consistency.wrappers import ContextWrapper
    h, _ = _parts(mm, tiny, "animatediff")
    seen = []

    def spy(model_fn, info):
        def fn(x, sigma, frames=None):
            seen.append(None if frames is None else list(frames))
            return model_fn(x, sigma, frames=frames)
        return fn
    wrapped = h.with_wrapper(spy).with_wrapper(ContextWrapper(ContextOptions("static", 8, 4)))
    _, _, out = _t2v(mm, tiny, "animatediff", prompt="0: a cat, 11: a dog", frames=12, steps=2, model=wrapped)
    assert out.samples.shape[2] == 12 and torch.isfinite(out.samples).all()
    assert seen[:2] == [list(range(0, 8)), list(range(4, 12))]


# -- VAE --------------------------------------------------------------------------------------------
def test_chunked_decode_equals_whole_decode_and_encode_roundtrips_shape(mm, tiny):
    from graph_engine import Clip
    from nodes.generate.adapters import get_adapter
    from nodes.generate.vae_ops import decode_latent, encode_clip, to_uint8
    _, parts, out = _t2v(mm, tiny, "animatediff", frames=10)
    clip = decode_latent(parts["vae"], out)
    whole = to_uint8(get_adapter("animatediff").vae_decode(parts["vae"].pipe, out.samples)[0])
    assert np.array_equal(clip.frames(0, 10), whole)
    assert np.array_equal(clip.frames(6, 9), whole[6:9])
    lat = encode_clip(parts["vae"], Clip.from_array(whole, 8.0))
    assert lat.samples.shape == out.samples.shape and lat.family == "animatediff"


def test_decode_retries_tiled_on_out_of_memory_and_says_what_was_tried(mm, tiny, monkeypatch):
    from nodes.generate.adapters import get_adapter
    from nodes.generate.vae_ops import decode_latent
    _, parts, out = _t2v(mm, tiny, "wan")
    adapter = get_adapter("wan")
    real = adapter.vae_decode
    vae = parts["vae"].pipe.vae

    def short_of_memory(pipe, latent):
        if not vae.use_tiling:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(pipe, latent)
    monkeypatch.setattr(adapter, "vae_decode", short_of_memory)
    frames = decode_latent(parts["vae"], out).frames(0, 9)
    assert frames.shape == (9, 64, 64, 3) and not vae.use_tiling

    def never(pipe, latent):
        raise RuntimeError("CUDA out of memory.")
    monkeypatch.setattr(adapter, "vae_decode", never)
    with pytest.raises(NodeError, match="out of memory.*tried: a plain decode, tiled and sliced"):
        decode_latent(parts["vae"], out).frames(0, 9)


def test_list_found_models_detects_families(tiny, monkeypatch, tmp_path):
    from nodes.generate.model_manager import list_found_models
    models = tmp_path / "models"
    (models / "diffusion_models").mkdir(parents=True)
    (models / "checkpoints").mkdir()
    os.symlink(tiny / "wan", models / "diffusion_models" / "wan-tiny")
    os.symlink(tiny / "animatediff", models / "checkpoints" / "sd15-tiny")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    found = {Path(p).name: d["family"] for _, p, d in list_found_models()}
    assert found["wan-tiny"] == "wan" and found["sd15-tiny"] == "animatediff"
    from tests.cli_run import cli
    out = cli("info", env=dict(os.environ, KINOGRAPH_MODELS=str(models))).stdout
    assert any(l.split()[:1] == ["wan"] and l.endswith("wan-tiny") for l in out.splitlines()), out


def test_prompt_schedule_is_read_at_pixel_frames_by_temporally_compressed_models(mm, tiny):
    """Wan packs 4 pixel frames into a latent frame: latent frame 4 holds pixel frames 13-16, so a
    schedule "0: a cat, 16: a dog" is almost all dog there (15/16), not a quarter."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.text import encode_prompt
    h, parts = _parts(mm, tiny, "wan")
    cond = encode_prompt(parts["text_encoder"], "0: a cat, 16: a dog")
    one, two = cond.embeds[0], cond.embeds[1]
    e = get_adapter("wan").conditioning_inputs(h, [cond], [4], 1, "cpu", torch.float32)["encoder_hidden_states"]
    assert torch.allclose(e[0], one / 16 + two * 15 / 16, atol=1e-5)
    first = get_adapter("wan").conditioning_inputs(h, [cond], [0], 1, "cpu", torch.float32)["encoder_hidden_states"]
    assert torch.allclose(first[0], one, atol=1e-6)


# -- NaN/inf: half-precision overflow or damaged weights decode as black frames ---------------
def test_a_sampler_that_breaks_down_stops_at_that_step_and_says_why(mm, tiny):
    import dataclasses
    h, parts = _parts(mm, tiny, "mini")
    calls = []

    def overflow(fn, info):
        def g(x, sigma, frames=None):
            calls.append(float(sigma))
            return fn(x, sigma, frames=frames) * float("inf")
        return g
    for dtype, fix in (("fp16", "set the loader's dtype to bf16 or fp32"), ("fp32", "the model file or a LoRA")):
        calls.clear()
        bad = dataclasses.replace(h, dtype=dtype, wrappers=h.wrappers + (overflow,))
        with pytest.raises(NodeError) as e:
            _t2v(mm, tiny, "mini", prompt="a red circle", frames=4, steps=5, sampler="flow_euler", model=bad)
        assert f"sampling broke down at step 1 of 5: the mini model ({dtype} on cpu) produced NaN/inf" in str(e.value)
        assert fix in str(e.value) and len(calls) == 1


def test_decoding_nan_says_whether_the_latent_or_the_vae_made_it(mm, tiny, monkeypatch):
    from nodes.generate.adapters import get_adapter
    from nodes.generate.vae_ops import decode_latent
    _, parts, out = _t2v(mm, tiny, "mini", prompt="a red circle", frames=4, steps=2, sampler="flow_euler")
    assert decode_latent(parts["vae"], out).frames(0, 4).shape == (4, 64, 64, 3)
    broken = out.with_samples(out.samples.clone())
    broken.samples[0, 0, 2, 5, 5] = float("nan")
    with pytest.raises(NodeError, match="the latent to decode holds NaN/inf values: the sampler"):
        decode_latent(parts["vae"], broken).frames(0, 4)
    monkeypatch.setattr(get_adapter("mini"), "vae_decode", lambda pipe, z: z.float() * float("inf"))
    with pytest.raises(NodeError, match="the mini VAE decoded NaN/inf pixels.*set the loader's dtype to fp32"):
        decode_latent(parts["vae"], out).frames(0, 4)


def test_out_of_memory_while_sampling_names_the_run_and_what_lowers_memory(mm, tiny):
    import dataclasses
    from nodes.generate.sampling import _named_oom
    h, _ = _parts(mm, tiny, "mini")
    torch_says = "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 23.65 GiB total capacity)"

    def oom(fn, info):
        def g(x, sigma, frames=None):
            raise RuntimeError(torch_says)
        return g
    with pytest.raises(NodeError) as e:
        _t2v(mm, tiny, "mini", prompt="a red circle", frames=4, steps=2, sampler="flow_euler",
             model=dataclasses.replace(h, wrappers=(oom,)))
    assert str(e.value) == ("out of memory while sampling 4 frames of 64x64 with the mini model (fp32 on cpu): lower "
                            "width/height or frames, or sample a long clip in context windows (context.windows); what "
                            f"ran before is kept in the cache. ({torch_says})")
    _, _, out = _t2v(mm, tiny, "mini", prompt="a red circle", frames=4, steps=1, sampler="flow_euler")
    with pytest.raises(NodeError, match=r"^out of memory while sampling 4 frames of 64x64 with the mini model \(fp16 "
                       r"on cuda\): set the loader's offload to model \(or sequential: least memory, slowest\), "):
        with _named_oom(dataclasses.replace(h, device="cuda", dtype="fp16"), out):
            raise RuntimeError(torch_says)


def test_a_part_the_model_does_not_have_is_named_when_wired(tiny, tmp_path):
    """SVD has no text encoder and a text-to-video Wan no image encoder: their loaders leave those outputs
    empty, and a node wired to one failed with Python's 'TypeError: encode_text() missing 1 required
    positional argument: 'text_encoder''."""
    (tmp_path / "wf.yaml").write_text(f"""kinograph: 1
nodes:
  svd: {{type: load.svd, params: {{path: {tiny / 'svd'}}}}}
  prompt: {{type: encode.text, inputs: {{text_encoder: svd.text_encoder}}, params: {{text: a cat}}}}
  wan: {{type: load.wan, params: {{path: {tiny / 'wan'}}}}}
  photo: {{type: io.load_image, params: {{path: {ROOT / 'resources' / 'samples' / 'coffee.png'}}}}}
  look: {{type: encode.image, inputs: {{image_encoder: wan.image_encoder, image: photo.image}}}}
""")
    res = _run(tmp_path / "wf.yaml", [])
    assert set(res.failed) == {"prompt", "look"}
    assert res.failed["prompt"].startswith("input 'text_encoder' is empty: svd.text_encoder gave nothing there")
    assert res.failed["look"].startswith("input 'image_encoder' is empty: wan.image_encoder gave nothing there")
    assert "TypeError" not in res.failed["prompt"] + res.failed["look"]


def test_animatediff_past_its_motion_window_samples_in_context_windows(tiny, tmp_path):
    """40 frames of AnimateDiff (its motion module holds 32 positions) failed at the first step, first with
    torch's 'The size of tensor a (40) must match the size of tensor b (32)', then with 'Put context.windows
    between the loader and sample'. A long clip now just works: uniform windows of 16 overlapping by 4, with
    FreeNoise, and the run says so."""
    out = tmp_path / "x.mp4"
    events = []
    res = _run(ROOT / "examples" / "tiny" / "animatediff.yaml", [f"load.path={tiny / 'animatediff'}", "latent.frames=40",
                                                                 "sample.steps=2", f"save.path={out}"],
               on_event=events.append)
    assert res.ok, res.failed
    assert _frames(out) == 40
    assert [e["message"] for e in events if e["event"] == "log" and e["node"] == "sample"] == [
        "40 frames are more than the 32 the AnimateDiff model takes at once: sampled in uniform context windows "
        "of 16 frames overlapping by 4 with FreeNoise; put context.windows before sample to choose them yourself"]


def _calls(monkeypatch):
    """The frame counts of every network call the AnimateDiff adapter makes while sampling."""
    from nodes.generate.adapters.sd import AnimateDiffAdapter
    seen, forward = [], AnimateDiffAdapter.forward

    def spy(self, h, x_in, t, inputs):
        seen.append(int(x_in.shape[2]))
        return forward(self, h, x_in, t, inputs)
    monkeypatch.setattr(AnimateDiffAdapter, "forward", spy)
    return seen


def test_long_animatediff_runs_windows_of_its_trained_length_with_freenoise(mm, tiny, monkeypatch):
    from nodes.consistency.context_windows import ContextOptions
    from nodes.consistency.noise_priors import freenoise, generator
    from nodes.consistency.wrappers import ContextWrapper
    h, _ = _parts(mm, tiny, "animatediff")
    seen = _calls(monkeypatch)
    progress = []
    _, _, out = _t2v(mm, tiny, "animatediff", frames=64, steps=2, sampler="ddim",
                     callback=lambda done, total: progress.append((done, total)))
    assert out.samples.shape[2] == 64 and torch.isfinite(out.samples).all()
    # Every call is one 16-frame window; 64 frames need 5 or more of them per step (overlapping by 4).
    assert set(seen) == {16} and len(seen) >= 2 * 5
    # Progress moves with each window (a step of a long clip on a real model takes minutes), never backwards.
    done = [d for d, total in progress if total == 2]
    assert len(done) == len(seen) and done == sorted(done) and done[-1] == 2
    assert done[:5] == [0.2, 0.4, 0.6, 0.8, 1]          # the first step's 5 windows
    # The same as a context.windows node (uniform, 16, 4) and noise.freenoise (16, 4) of the run's seed.
    shape = tuple(out.samples.shape)
    _, _, own = _t2v(mm, tiny, "animatediff", frames=64, steps=2, sampler="ddim",
                     model=h.with_wrapper(ContextWrapper(ContextOptions("uniform_standard", 16, 4))),
                     noise=freenoise(shape, generator(7), 16, 4))
    assert torch.equal(out.samples, own.samples)
    # Up to its limit the model takes the clip whole.
    seen.clear()
    _t2v(mm, tiny, "animatediff", frames=32, steps=1, sampler="ddim")
    assert seen == [32]


def test_long_animatediff_windows_leave_no_jump_where_they_meet(mm, tiny, monkeypatch):
    """Seams measured on the decoded frames: with one noise frame for every frame (noise.constant) frames differ
    only by what the windows make of them. Windows that do not overlap (batched) jump 2.7-3.4 times the usual
    frame step where one ends; the automatic windows' largest step stays within 1.5 of it."""
    from nodes.consistency.context_windows import ContextOptions
    from nodes.consistency.noise_priors import constant, generator
    from nodes.consistency.wrappers import ContextWrapper
    from nodes.generate.vae_ops import decode_latent
    from nodes.metrics.seam import frame_differences
    h, parts = _parts(mm, tiny, "animatediff")

    def worst_step(model):
        from nodes.generate.vae_ops import empty_latent
        lat = empty_latent(parts["vae"], 64, 64, 64, 8.0)
        noise = constant(tuple(lat.samples.shape), generator(2))
        _, _, out = _t2v(mm, tiny, "animatediff", frames=64, steps=4, sampler="ddim", model=model, noise=noise)
        d = frame_differences(decode_latent(parts["vae"], out))
        return float(d.max() / np.median(d)), int(d.argmax()) + 1
    batched, at = worst_step(h.with_wrapper(ContextWrapper(ContextOptions("batched", 16, 0))))
    assert batched > 2.5 and at % 16 == 0
    auto, _ = worst_step(h)
    assert auto < 1.6


def test_a_context_window_longer_than_the_motion_module_is_named(mm, tiny, monkeypatch):
    """Windows of the user's own are kept; windows longer than the module takes are refused before the first
    step, naming the node and the length to set (the run used to reach the network and fail there)."""
    from nodes.consistency.context_windows import ContextOptions
    from nodes.consistency.wrappers import ContextWrapper
    h, _ = _parts(mm, tiny, "animatediff")
    with pytest.raises(NodeError) as e:
        _t2v(mm, tiny, "animatediff", frames=40, steps=1, model=h.with_wrapper(ContextWrapper(ContextOptions(
            "static", 36, 4))))
    assert str(e.value) == ("context.windows length 36 is longer than the 32 frames the AnimateDiff model takes at "
                            "once: set its length to 16 (overlap 4)")
    seen = _calls(monkeypatch)
    _t2v(mm, tiny, "animatediff", frames=40, steps=1, model=h.with_wrapper(ContextWrapper(ContextOptions(
        "static", 24, 8))))
    assert set(seen) == {24}


@pytest.mark.parametrize("seed", [-1, 2 ** 64, 2 ** 70])
def test_a_seed_outside_what_a_generator_takes_is_refused_not_wrapped(seed):
    """Seeds were masked to 64 bits: 2**70 drew the noise of 0, and -1 (A1111's "random") a fixed
    2**64 - 1, each without a word. They are refused with the range and how to get new seeds."""
    from graph_engine.api import load_workflow
    from graph_engine.errors import WorkflowError
    text = ("kinograph: 1\nnodes:\n  load: {type: load.mini}\n  empty: {type: latent.empty, inputs: {vae: load.vae}}\n"
            f"  noise: {{type: noise.independent, inputs: {{latent: empty.latent}}, params: {{seed: {seed}}}}}\n")
    with pytest.raises(WorkflowError, match=rf"parameter 'seed' {seed} is out of range \(0\.\.18446744073709551615\): "
                                            r"a seed is a whole number from 0 to 2\*\*64 - 1.*mode to random"):
        load_workflow(text=text)


def test_the_largest_seed_is_taken_and_every_seed_parameter_declares_the_range():
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    text = ("kinograph: 1\nnodes:\n  load: {type: load.mini}\n  empty: {type: latent.empty, inputs: {vae: load.vae}}\n"
            f"  noise: {{type: noise.independent, inputs: {{latent: empty.latent}}, params: {{seed: {2 ** 64 - 1}}}}}\n")
    assert load_workflow(text=text).graph.nodes["noise"].params["seed"] == 2 ** 64 - 1
    reg = default_registry()
    seeds = [(t, p) for t in reg for p in reg.get(t).params.values() if p.kind == "seed"]
    assert len(seeds) >= 2 and all((p.min, p.max) == (0, 2 ** 64 - 1) for _, p in seeds)


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1)])
def test_svd_encodes_a_picture_one_pixel_thin_as_that_pixel_repeated(mm, tiny, shape):
    """SVD's image encoder raised 'Padding size should be less than the corresponding input dimension'
    on a picture one pixel high or wide (its antialiasing blur pads by reflection)."""
    from nodes.generate.image_cond import encode_image
    _, parts = _parts(mm, tiny, "svd")
    img = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    doubled = np.repeat(np.repeat(img, 2 if shape[0] == 1 else 1, 0), 2 if shape[1] == 1 else 1, 1)
    got, want = (encode_image(parts["image_encoder"], x).embeds for x in (img, doubled))
    assert got.shape == want.shape and torch.equal(got, want)


def test_a_sampling_run_that_stops_is_taken_up_where_it_stopped(tiny, tmp_path, monkeypatch):
    """A long sampling run cancelled at step 2 of 4 began again at step 0 (only finished nodes are cached).
    Each step's model output is now kept while the node runs; the next run with the same inputs replays them
    and makes only the calls that were left, and its latent is the one an uninterrupted run makes."""
    from graph_engine.api import Session, load_workflow
    from graph_engine.cache import DiskCache
    from graph_engine.context import CancelToken
    seen = _calls(monkeypatch)
    wf = ROOT / "examples" / "tiny" / "animatediff.yaml"
    sets = [f"load.path={tiny / 'animatediff'}", "latent.frames=40", "sample.steps=4"]
    whole = Session(device="cpu", use_disk=False).run(load_workflow(wf), overrides=sets, targets=["sample"])
    calls = len(seen)
    cache = tmp_path / "cache"

    def run(cancel_at=None):
        seen.clear()
        events, cancel = [], CancelToken()

        def on_event(e):
            events.append(e)
            if e["event"] == "node_progress" and e["node"] == "sample" and e["done"] == cancel_at:
                cancel.cancel()
        session = Session(device="cpu", disk=DiskCache(cache / "results", 10 ** 9))
        res = session.run(load_workflow(wf), overrides=sets, targets=["sample"], on_event=on_event, cancel=cancel)
        return res, [e["message"] for e in events if e["event"] == "log" and e["node"] == "sample"], len(seen)
    stopped, said, first = run(cancel_at=2)
    assert stopped.cancelled and 0 < first < calls
    folder = next((cache / "partial").iterdir())
    assert said[-1] == (f"its finished work is kept in {folder}: run it again with the same inputs to go on from "
                        "there")
    assert len(list((cache / "partial").glob("*/*.pt"))) == 2
    taken_up, notes, second = run()
    assert taken_up.ok and first + second == calls
    assert any(n.startswith("taking up a run that stopped: its first 2 model steps are replayed") for n in notes)
    assert torch.equal(taken_up.outputs["sample"]["latent"].samples, whole.outputs["sample"]["latent"].samples)
    # The result is cached now; the work in progress is gone.
    assert not any((cache / "partial").iterdir())


def test_sampling_keeps_no_steps_on_a_nearly_full_disk(mm, tiny, tmp_path, monkeypatch):
    """The kept steps never take the last 64 MB (the render's own output needs them), as the disk cache."""
    import collections
    from graph_engine import partial
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(partial.shutil, "disk_usage", lambda p: usage(1 << 40, 1 << 40, partial.RESERVE + 1000))
    _, _, full = _t2v(mm, tiny, "animatediff", steps=2, resume_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    _, _, kept = _t2v(mm, tiny, "animatediff", steps=2, resume_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.pt", "00001.pt"]
    assert torch.equal(full.samples, kept.samples)


def test_unet_attention_multiply_scales_the_attention_projections_as_comfyui_does(mm, tiny):
    """model.attention_multiply (ComfyUI's UNetTemporalAttentionMultiply) against ComfyUI's own way: the self- and
    cross-attention output weights scaled in place for one run (here by the test, then put back). The shared weights
    stay as loaded."""
    from nodes.generate.nodes import attention_multiply
    h, _ = _parts(mm, tiny, "animatediff")
    _, _, plain = _t2v(mm, tiny, "animatediff", steps=2)
    _, _, got = _t2v(mm, tiny, "animatediff", steps=2, model=attention_multiply(None, h, 0.5, 1.0, 1.7, 1.0))
    scaled = [(m, f) for name, m in h.pipe.unet.named_modules()
              for suffix, f in (("attn1.to_out.0", 0.5), ("attn2.to_out.0", 1.7)) if name.endswith(suffix)]
    assert len(scaled) > 4
    with torch.no_grad():
        for m, f in scaled:
            m.weight.mul_(f)
            m.bias.mul_(f)
        try:
            _, _, want = _t2v(mm, tiny, "animatediff", steps=2)
        finally:
            for m, f in scaled:
                m.weight.div_(f)
                m.bias.div_(f)
    assert torch.allclose(got.samples, want.samples, atol=1e-4)
    assert (got.samples - plain.samples).abs().max() > 1e-3
    _, _, again = _t2v(mm, tiny, "animatediff", steps=2)
    assert torch.allclose(again.samples, plain.samples, atol=1e-5)


def test_cfg_pp_negative_pass_of_a_guidance_distilled_model_reads_the_runs_guidance(mm, tiny, monkeypatch):
    """A model told sample's cfg as its guidance (FLUX.1 dev: FluxGuidance folds into cfg) runs CFG++'s negative pass
    at that guidance too, as ComfyUI's uncond pass reads the guidance its conditioning carries; it ran at 1.0."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    h, parts = _parts(mm, tiny, "wan")
    adapter = type(get_adapter("wan"))
    seen, forward = [], adapter.forward

    def spy(self, handle, x_in, t, inputs):
        seen.append(inputs.get("guidance"))
        return forward(self, handle, x_in, t, {k: v for k, v in inputs.items() if k != "guidance"})
    monkeypatch.setattr(adapter, "distilled_guidance", lambda self, handle: True)
    monkeypatch.setattr(adapter, "forward", spy)
    pos, neg = (encode_prompt(parts["text_encoder"], t) for t in ("a cat", "blurry"))
    lat = empty_latent(parts["vae"], FAMILY_FRAMES["wan"], 64, 64, 8.0)
    run_sampling(h, pos, neg, lat, steps=2, cfg=3.5, sampler="euler_cfg_pp", seed=5)
    # two steps: the guided pass each, the negative pass on the first (the last lands on the guided prediction)
    assert len(seen) == 3 and set(seen) == {3.5}, seen
