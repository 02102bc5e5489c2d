"""VOID's pieces against ComfyUI's code written out (tests/void_reference.py): the warped noise for a given flow, the
second pass's latent, the DDIM loop and the frame-count rule."""
import numpy as np
import torch

from nodes.generate.void import sample_void_ddim, void_length, void_warped_latent
from nodes.motion.noise_warp import warped_noise
from tests import void_reference as ref


def swirl(a, b):
    """A flow that depends on the frames (their mean brightness sets the turn) and moves pixels by several pixels."""
    _, h, w = a.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    k = 1.0 + 4.0 * float((b - a).abs().mean() + a.mean())
    return torch.stack([k * torch.sin(ys / 3.0) + 1.5, k * torch.cos(xs / 4.0) - 0.7])


def drift(a, b):
    """A flow of the frames' size alone (the latent test's frames pass through another resampler's rounding)."""
    return swirl(torch.zeros_like(a), torch.zeros_like(b))


def frames(t=4, h=32, w=48, seed=3):
    g = np.random.default_rng(seed)
    return g.random((t, h, w, 3)).astype(np.float32)


def test_warped_noise_is_comfyuis():
    u8 = (torch.from_numpy(frames()) * 255).to(torch.uint8)
    torch.manual_seed(11)
    want = ref.get_noise_from_video(u8, swirl, noise_channels=4, resize_frames=0.5, resize_flow=8,
                                    downscale_factor=32)
    got = warped_noise(u8, swirl, channels=4, seed=11, frame_scale=0.5, flow_scale=8, pool=32)
    assert got.shape == want.shape == (4, 4, 6, 4)
    # the same float32 operations in the same order (the numba loops add in index_add_'s order): the same bits
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    # the noise moved with the flow stays unit Gaussian
    assert abs(float(got[-1].std()) - 1.0) < 0.25


def test_second_pass_latent_is_comfyuis():
    clip = frames(t=5, h=40, w=72)
    width, height, length = 64, 32, 5
    torch.manual_seed(5)
    # ComfyUI: common_upscale "center" bilinear (the crop written out), uint8, then the noise and its latent fitting
    n = void_length(length)
    x = torch.from_numpy(clip[:n]).permute(0, 3, 1, 2)
    x = x[:, :, :, 4:68]                      # 72 x 40 cut to 2:1 at the middle: 80 / 2 -> 64 columns from 4
    x = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    u8 = (x.permute(0, 2, 3, 1).clamp(0, 1) * 255).to(torch.uint8)
    noise = ref.get_noise_from_video(u8, drift)
    t = (n - 1) // 4 + 1
    noise = noise[torch.linspace(0, noise.shape[0] - 1, t).long()]
    want = noise.permute(0, 3, 1, 2)
    want = torch.nn.functional.interpolate(want, size=(height // 8, width // 8), mode="bilinear", align_corners=False)
    want = want.permute(1, 0, 2, 3)[None].repeat(2, 1, 1, 1, 1)
    got = void_warped_latent(clip, drift, width, height, length, 2, seed=5)
    assert got.shape == (2, 16, 2, 4, 8)
    torch.testing.assert_close(got, want, atol=2e-3, rtol=1e-3)


def test_ddim_is_voids():
    sigmas = torch.tensor([4500.0, 12.0, 3.0, 0.7, 0.1, 0.0])
    target = torch.randn(1, 4, 2, 3, 3, generator=torch.Generator().manual_seed(1))

    def model(x, s):                          # a denoiser that reads its input, as a network does
        return 0.6 * target + 0.3 * torch.tanh(x) / (1.0 + s)

    noise = torch.randn(1, 4, 2, 3, 3, generator=torch.Generator().manual_seed(2))
    want = ref.void_ddim(model, sigmas, noise)
    got = sample_void_ddim(model, noise * (1 + sigmas[0] ** 2) ** 0.5, sigmas)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_length_rule_is_comfyuis():
    for n in range(1, 120):
        assert void_length(n) == ref.valid_void_length(n)
    assert void_length(49) == 45 and void_length(45) == 45


def test_comfyuis_own_cogvideox_layout_is_named():
    """Comfy-Org's void_pass*.safetensors (comfy/ldm/cogvideo's names, their published shapes) are read as CogVideoX
    inpainting transformers (test_cogvideox_comfy_layout loads and runs them)."""
    from nodes.generate.detect import detect_keys
    shapes = {"patch_embed.proj.weight": (3072, 384), "patch_embed.text_proj.weight": (3072, 4096),
              "time_embedding_linear_1.weight": (512, 3072), "blocks.0.norm1.linear.weight": (18432, 512),
              "blocks.0.q.weight": (3072, 3072), "proj_out.weight": (64, 3072)}
    found = detect_keys(shapes)
    assert (found.family, found.role, found.layout, found.variant) == ("cogvideox", "diffusion_model", "comfyui",
                                                                       "inpaint-5B")


def test_void_ddim_on_a_flow_model_is_refused_by_name():
    """void_ddim steps in alpha = 1 / (1 + sigma^2), VOID's (CogVideoX, v-prediction) frame: picked for Wan from the
    sampler list, it ran to the end and decoded noise, as flow_euler on an SD model is refused."""
    from types import SimpleNamespace

    import pytest

    from graph_engine import NodeError
    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import _check_inputs
    assert get_adapter("cogvideox").space != "flow"
    with pytest.raises(NodeError, match="void_ddim is VOID's sampler .* wan is a flow-matching model"):
        _check_inputs(SimpleNamespace(family="wan"), None, None, None, "void_ddim")
    # The sound models (ACE-Step's flow among them) take their sampler by name outside run_sampling.
    from nodes.generate.samplers import latent_sampler
    with pytest.raises(NodeError, match="sampler='void_ddim': choose one of"):
        latent_sampler("void_ddim")


def test_a_quadmask_of_another_frame_count_is_named():
    """The clip and its quadmask are cut to `length`; a mask clip of another count (SAM 3's mask of a trimmed
    clip) was numpy's 'operands could not be broadcast' traceback. One mask picture still stands for every frame."""
    from types import SimpleNamespace

    import pytest

    from graph_engine import NodeError
    from nodes.generate.void import void_inpaint
    vae = SimpleNamespace(family="cogvideox", pipe=None)
    with pytest.raises(NodeError, match="the quadmask has 3 frames and the video 5"):
        void_inpaint(vae, None, None, frames(9, 16, 16), np.zeros((3, 16, 16), np.float32), 16, 16, 9, 1)


def test_a_size_too_small_for_raft_names_the_nodes_own_size():
    """RAFT reads the frames at half the size set on noise.void_warped: width 200 was refused as 'these are 100 x 100:
    give a larger size', numbers the user never typed."""
    import pytest

    from graph_engine import NodeError
    from nodes.generate.void_nodes import void_warped
    with pytest.raises(NodeError, match="width and height of at least 256 .* 200 x 200"):
        void_warped(None, None, "raft.safetensors", 200, 200, 5, 1, 0)


class _LogCtx:
    """What a run's context does with ctx.log: a message event for the node."""
    def __init__(self):
        self.messages = []
        self.workflow_dir = None

    def log(self, message):
        self.messages.append(message)


def _clip(n):
    from types import SimpleNamespace
    clip = (frames(n, 16, 16) * 255).astype(np.uint8)
    return SimpleNamespace(length=n, frames=lambda a, b: clip[a:b])


def test_a_rounded_length_is_said_in_the_runs_log():
    """ComfyUI warns when VOID rounds the frame count down (49 -> 45: an odd latent frame count wraps round into
    jitter); it was done here without a word. Both VOID nodes say it in their log before any other work, and say
    nothing where the length stands."""
    from types import SimpleNamespace

    import pytest

    from graph_engine import NodeError
    from nodes.generate.void_nodes import void_inpaint, void_warped
    vae = SimpleNamespace(family="cogvideox", pipe=None)
    for length, said in ((49, True), (45, False)):
        want = ref.valid_void_length(length)
        ctx = _LogCtx()
        with pytest.raises(NodeError, match="the quadmask has 3 frames"):
            void_inpaint(ctx, None, None, vae, _clip(length), np.zeros((3, 16, 16), np.float32), 16, 16, length, 1)
        ctx2 = _LogCtx()
        with pytest.raises(NodeError, match="at least 256"):
            void_warped(ctx2, _clip(length), "raft.safetensors", 200, 200, length, 1, 0)
        for c in (ctx, ctx2):
            if said:
                assert len(c.messages) == 1 and f"{length}" in c.messages[0] and f"{want}" in c.messages[0]
            else:
                assert c.messages == []
