"""Stable Video Diffusion from ComfyUI's checkpoints/svd_xt.safetensors (Stability's single file: UNet
with time_stack layers, temporal-decoder VAE and OpenCLIP image encoder under their LDM prefixes)
animates a still exactly as the same model does from a diffusers folder, through the graph."""
import pytest
import torch

from tests.comfy_layouts import built, build_svd, image_to_video_svd, same_frames


@pytest.fixture(scope="module")
def svd(tmp_path_factory):
    yield from built(build_svd, tmp_path_factory)


def test_comfyui_checkpoint_runs_like_the_diffusers_folder(svd):
    ref = image_to_video_svd(f"  load: {{type: load.svd, params: {{path: '{svd['diffusers']}'}}}}")
    got = image_to_video_svd(f"  load: {{type: load.svd, params: {{path: '{svd['checkpoint']}'}}}}")
    assert ref[0].shape == (1, 4, 6, 8, 8) and ref[1].shape == (6, 64, 64, 3)
    assert torch.allclose(ref[0], got[0], atol=1e-5, rtol=0) and ref[0].abs().sum() > 0
    same_frames(ref[1], got[1])


def test_auto_loader_recognises_the_checkpoint(svd):
    got = image_to_video_svd(f"  load: {{type: load.model, params: {{path: '{svd['checkpoint']}'}}}}")
    ref = image_to_video_svd(f"  load: {{type: load.svd, params: {{path: '{svd['checkpoint']}'}}}}")
    assert torch.equal(ref[0], got[0])


def test_shipped_comfyui_example_runs_from_a_models_folder(svd, tmp_path):
    from tests.comfy_layouts import run_example
    out = tmp_path / "svd.mp4"
    got = run_example("svd", svd["models"], out, ["latent.frames=6", "latent.width=64", "latent.height=64",
                                                  "sample.steps=2"])
    ref = image_to_video_svd(f"  load: {{type: load.svd, params: {{path: '{svd['diffusers']}'}}}}")
    assert torch.allclose(ref[0], got[0], atol=1e-5, rtol=0)
    assert out.stat().st_size > 0


def test_checkpoint_is_recognised_and_reported_loadable(svd):
    from nodes.generate.model_manager import describe_model
    got = describe_model(svd["checkpoint"])
    assert (got["family"], got["role"], got["loads"]) == ("svd", "checkpoint", "yes")
