"""latent.cut_to_batch on a video VAE's latent (ComfyUI's LatentCutToBatch along t, WanDancer's global pass): the
runs are marked on the latent and vae.decode decodes each alone. The decoded pictures are checked against the Wan
VAE itself (diffusers' AutoencoderKLWan given each run, un-normalised as ComfyUI's Wan21 latent format does), and
latent nodes that would put the mark out of step with the frames refuse."""
import numpy as np
import pytest
import torch

from graph_engine import NodeError


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    from tiny_wan22 import save_wan_vae
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    models = tmp_path_factory.mktemp("runs") / "models"
    (models / "vae").mkdir(parents=True)
    save_wan_vae(models)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KINOGRAPH_MODELS", str(models))
        yield load_vae(ModelManager(max_loaded=2), "wan_tiny_vae.safetensors", "cpu")


def _each_alone(auto, z, size):
    """uint8 [frames, H, W, 3]: each run of `size` latent frames given to the Wan VAE alone (the 2.1 VAE's
    published latents_mean / latents_std undone first), the clips one after another."""
    cfg = auto.config
    mean = torch.tensor(cfg.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(cfg.latents_std).view(1, -1, 1, 1, 1)
    out = []
    for r in range(z.shape[2] // size):
        with torch.no_grad():
            px = auto.decode((z[:, :, r * size:(r + 1) * size] * std + mean).to(auto.dtype), return_dict=False)[0]
        out.append(((px[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("t,size", [(3, 1), (5, 2)])
def test_runs_decode_each_alone_as_the_wan_vae_does(vae, t, size):
    """t latent frames cut in runs of `size` (5 in runs of 2: the last frame dropped, as ComfyUI drops it): the
    decoded clip is each run's own decode, one after another (1 picture a run of 1, 5 frames a run of 2)."""
    from nodes.generate.latent import Latent, cut_to_batch
    from nodes.generate.vae_ops import decode_latent
    z = torch.randn(1, 16, t, 4, 4, generator=torch.Generator().manual_seed(t))
    runs = cut_to_batch(Latent(z, "wan", (t - 1) * 4 + 1, 16.0, 32, 32), size)
    want = _each_alone(vae.pipe.vae, z, size)
    clip = decode_latent(vae, runs)
    assert clip.length == len(want) == t // size * ((size - 1) * 4 + 1)
    assert np.abs(clip.frames(0, clip.length).astype(int) - want.astype(int)).max() <= 1


def test_cutting_or_joining_marked_runs_is_refused():
    """A latent whose frames are runs decoded alone, cut or joined in time, would keep the mark with a frame count
    made for a whole clip (5 latent frames said to be 17 pixel frames, read as 17 runs of one): refused, naming
    the order that works. Cut in space, the runs stay as they are."""
    from nodes.generate.latent import Latent, concat_latents, cut_latent, cut_to_batch
    wan = Latent(torch.zeros(1, 16, 10, 4, 4), "wan", 37, 16.0, 32, 32)
    runs = cut_to_batch(wan, 1)
    with pytest.raises(NodeError, match="before latent.cut_to_batch"):
        cut_latent(runs, "t", 0, 5)
    for a, b in ((runs, wan), (wan, runs), (runs, runs)):
        with pytest.raises(NodeError, match="before latent.cut_to_batch"):
            concat_latents(a, b, "t")
    with pytest.raises(NodeError, match="before latent.cut_to_batch"):
        concat_latents(wan, runs, "x")      # the joined latent would lose (or take on) the mark
    side = cut_latent(runs, "x", 0, 2)
    assert (side.runs, side.frames, side.samples.shape[2]) == (1, 10, 10)


def test_runs_of_a_latent_with_its_sound_are_refused():
    """An LTX-2 latent carries its soundtrack beside the frames; runs of its frames each decoded alone would
    leave the sound cut to the runs' few frames: refused, naming what to do instead."""
    from nodes.generate.latent import Latent, cut_to_batch
    av = Latent(torch.zeros(1, 128, 4, 2, 2), "ltx2", 25, 24.0, 64, 64, audio=torch.zeros(1, 8, 26, 16))
    with pytest.raises(NodeError, match="sound"):
        cut_to_batch(av, 1)
