"""SeedVR2's video VAE (nodes/generate/seedvr2_vae.py) against ComfyUI's, written out in tests/tiny_seedvr2_vae.py, on
the same tiny weights in the published file's layout: encode and decode of a picture and of a clip, in chunks of
frames (ComfyUI slices too, with its MemoryState caches) and in spatial tiles (ComfyUI's tiled_vae), and through
load.vae with vae.encode / vae.decode's functions. Bad files get messages naming the file."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_seedvr2_vae import FILE, SCALE, build_seedvr2_vae, reference  # noqa: E402

# key names of vae/seedvr2_ema_vae_fp16.safetensors that ComfyUI's sd.py and its module read
PUBLISHED = ("decoder.up_blocks.2.upsamplers.0.upscale_conv.weight", "encoder.down_blocks.1.downsamplers.0.conv.weight",
             "encoder.mid_block.attentions.0.to_q.weight", "decoder.mid_block.attentions.0.to_out.0.bias",
             "encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "decoder.conv_norm_out.weight")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from comfy_layouts import models_dir
    yield from models_dir(tmp_path_factory, build_seedvr2_vae, "seedvr2_vae")


@pytest.fixture(scope="module")
def pair():
    """(ComfyUI's network, Kinograph's) on the same weights, on one thread (the tests share the machine)."""
    from nodes.generate.seedvr2_vae import SeedVR2VAE, config_from_state
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ref = reference()
    state = ref.state_dict()
    assert all(k in state for k in PUBLISHED)
    mine = SeedVR2VAE(**config_from_state(state))
    mine.load_state_dict(state, strict=True)
    yield ref, mine.eval()
    torch.set_num_threads(threads)


def _diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def test_encode_and_decode_match_comfyui_in_any_chunks(pair):
    """13 frames (4 latent frames) of 32x16: ComfyUI encodes in 4-frame slices and decodes a latent frame at a time;
    Kinograph's passes of 4 and of the whole clip give the same latent and frames (max abs diff ~4e-7 / ~6e-6 on
    values up to 1 / 2). A picture (1 frame) too."""
    ref, mine = pair
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 13, 16, 32, generator=g) * 2 - 1
    z = torch.randn(1, 16, 4, 2, 4, generator=g)
    with torch.no_grad():
        want_z, want_x = ref.encode(x), ref.decode(z)
        for chunk in (4, 64):
            mine.chunk = chunk
            assert _diff(mine.encode(x), want_z) < 1e-5
            assert _diff(mine.decode(z), want_x) < 1e-4
        assert float(want_z.abs().max()) > 0.5 and float(want_x.abs().max()) > 0.5
        assert _diff(mine.encode(x[:, :, :1]), ref.encode(x[:, :, :1])) < 1e-5
        assert _diff(mine.decode(z[:, :, :1]), ref.decode(z[:, :, :1])) < 1e-4
        # causal: the first 5 frames' latent is the 13 frames' first 2 latent frames
        assert _diff(mine.encode(x[:, :, :5]), want_z[:, :, :2]) < 1e-5
    mine.chunk = 4


def test_a_clip_goes_through_a_few_frames_at_a_time(pair):
    """At the default 4 frames a pass the encoder is handed 5 frames, then 4 at a time, and the decoder 2 latent
    frames then 1 (as ComfyUI's slices); the result comes back in float32 on the CPU."""
    _, mine = pair
    seen = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append((mod is mine.encoder, args[0].shape[2])))
             for m in (mine.encoder, mine.decoder)]
    try:
        with torch.no_grad():
            z = mine.encode(torch.zeros(1, 3, 13, 16, 16))
            x = mine.decode(z.double())
    finally:
        for h in hooks:
            h.remove()
    assert seen == [(True, 5), (True, 4), (True, 4), (False, 2), (False, 1), (False, 1)]
    assert (z.dtype, z.device.type, x.dtype, x.device.type) == (torch.float32, "cpu", torch.float32, "cpu")


def test_tiles_blend_as_comfyuis_tiled_vae(pair):
    """48x32 frames in 24-pixel tiles overlapping by 8 (6 tiles), encode and decode: ComfyUI's tiled_vae's plan and
    raised-cosine blend (max abs diff ~4e-7 / ~5e-6), and not the untiled result (the tiles' seams differ)."""
    ref, mine = pair
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 5, 32, 48, generator=g) * 2 - 1
    z = torch.randn(1, 16, 2, 4, 6, generator=g)
    mine.enable_tiling(24, 8)
    try:
        with torch.no_grad():
            assert _diff(mine.encode(x), ref.encode_tiled(x, 24, 8)) < 1e-5
            tiled = mine.decode(z)
            assert _diff(tiled, ref.decode(z, tiling=dict(tile_size=(24, 24), tile_overlap=(8, 8)))) < 1e-4
    finally:
        mine.disable_tiling()
    with torch.no_grad():
        assert _diff(mine.decode(z), tiled) > 0.05


def test_load_vae_encodes_and_decodes_a_clip_as_comfyui(models):
    """load.vae on the tiny file in ComfyUI's layout; vae.encode / vae.decode's functions on a 9-frame clip give
    ComfyUI's latent (its VAEEncode: mean x 0.9152) and its frames in uint8."""
    from graph_engine import Clip
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import decode_latent, encode_clip
    d = describe_model(models / "models" / "vae" / FILE)
    assert (d["family"], d["role"], d["loads"]) == ("seedvr2", "vae", "yes"), d
    vae = load_vae(ModelManager(), FILE, "cpu")
    assert vae.family == "seedvr2"
    frames = (np.random.default_rng(0).random((9, 16, 32, 3)) * 255).astype(np.uint8)
    latent = encode_clip(vae, Clip(9, 24.0, 32, 16, lambda a, b: frames[a:b]))
    assert tuple(latent.samples.shape) == (1, 16, 3, 2, 4) and latent.family == "seedvr2"
    ref = reference()
    with torch.no_grad():
        want = ref.encode(torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1)
        pixels = ref.decode(want)
    assert _diff(latent.samples, want) < 1e-5
    out = decode_latent(vae, latent)
    assert (out.length, out.width, out.height) == (9, 32, 16)
    want8 = ((pixels.clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 3, 0).numpy()
    assert np.abs(out.frames(0, 9).astype(np.float32) - want8).max() <= 1
    with pytest.raises(NodeError, match=r"4n\+1 frames"):
        encode_clip(vae, Clip(6, 24.0, 32, 16, lambda a, b: frames[a:b]))
    assert SCALE == vae.pipe.vae.config.scaling_factor
    # the decode's retry on out-of-memory tiles as the utility_seedvr2_* templates' VAEDecodeTiled (512, overlap 128)
    from nodes.generate.adapters import get_adapter
    get_adapter("seedvr2").set_vae_tiling(vae.pipe, True)
    assert (vae.pipe.vae.tile, vae.pipe.vae.overlap) == (512, 128)
    get_adapter("seedvr2").set_vae_tiling(vae.pipe, False)
    assert vae.pipe.vae.tile is None


def test_bad_files_are_named_with_what_is_wrong(models, tmp_path):
    """A file lacking a tensor, one with a tensor of another shape and a cut one: messages naming the file, no
    traceback."""
    from safetensors.torch import load_file, save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    state = load_file(str(models / "models" / "vae" / FILE))
    lacking = dict(state)
    del lacking["decoder.up_blocks.1.resnets.2.conv2.weight"]
    resized = dict(state)
    resized["encoder.mid_block.attentions.0.to_k.weight"] = torch.zeros(8, 64, dtype=torch.float16)
    no_level = {k: v for k, v in state.items() if not k.startswith("encoder.down_blocks.0.resnets.")}
    for name, st, words in (("lacking.safetensors", lacking, "missing .*conv2.weight"),
                            ("resized.safetensors", resized, r"to_k.weight has shape \(8, 64\)"),
                            ("no_level.safetensors", no_level, "lacks the tensor")):
        save_file(st, str(tmp_path / name))
        with pytest.raises(NodeError, match=words) as err:
            load_vae(ModelManager(), str(tmp_path / name), "cpu")
        assert name in str(err.value)
    whole = (models / "models" / "vae" / FILE).read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(NodeError, match="cut.safetensors"):
        load_vae(ModelManager(), str(tmp_path / "cut.safetensors"), "cpu")


def test_wrong_shapes_are_refused_before_the_network(pair):
    from nodes.generate.seedvr2_vae import SeedVR2VAE
    _, mine = pair
    with pytest.raises(NodeError, match=r"4n\+1 frames of sides divisible by 8; got 6 frames of 48x32"):
        mine.encode(torch.zeros(1, 3, 6, 32, 48))
    with pytest.raises(NodeError, match=r"latents \[B, 16, t, h, w\]"):
        mine.decode(torch.zeros(1, 4, 2, 4, 6))
    with pytest.raises(NodeError, match="do not divide into 32 norm groups"):
        from nodes.generate.seedvr2_vae import config_from_state
        state = {k: v for k, v in reference().state_dict().items()}
        state["encoder.down_blocks.0.resnets.0.conv1.weight"] = torch.zeros(40, 32, 3, 3, 3)
        SeedVR2VAE(**config_from_state(state))
