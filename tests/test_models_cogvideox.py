"""CogVideoX as ComfyUI's CogVideoX pack keeps it (models/CogVideo/<name>/ with transformer/, vae/ and
scheduler/ but no model_index.json) gives exactly what the full diffusers folder gives, through the graph."""
import pytest
import torch

from tests.comfy_layouts import built, build_cogvideox, same_frames, text_to_video


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    yield from built(build_cogvideox, tmp_path_factory)


def test_pack_folder_runs_like_the_diffusers_folder(cog):
    folder = f"  ref: {{type: load.cogvideox, params: {{path: '{cog['diffusers']}'}}}}"
    ref = text_to_video(folder, "ref.model", "ref.text_encoder", "ref.vae", frames=5, sampler="ddim")
    got = text_to_video(f"  load: {{type: load.cogvideox, params: {{path: '{cog['pack']}'}}}}\n"
                        f"  text: {{type: load.text_encoder, params: {{name: '{cog['text_encoder']}', type: cogvideox}}}}",
                        "load.model", "text.text_encoder", "load.vae", frames=5, sampler="ddim")
    assert ref[0].shape == (1, 4, 2, 8, 8) and ref[1].shape == (5, 64, 64, 3)
    assert torch.equal(ref[0], got[0]) and ref[0].abs().sum() > 0
    same_frames(ref[1], got[1])


def test_auto_loader_recognises_the_pack_folder(cog):
    folder = f"  ref: {{type: load.cogvideox, params: {{path: '{cog['diffusers']}'}}}}"
    got = text_to_video(folder + f"\n  load: {{type: load.model, params: {{path: '{cog['pack']}'}}}}",
                        "load.model", "ref.text_encoder", "load.vae", frames=5, sampler="ddim")
    assert got[0].shape == (1, 4, 2, 8, 8)


def test_shipped_comfyui_example_runs_from_a_models_folder(cog, tmp_path):
    from tests.comfy_layouts import run_example
    out = tmp_path / "cogvideox.mp4"
    got = run_example("cogvideox", cog["models"], out, ["latent.frames=5", "latent.width=64", "latent.height=64",
                                                        "sample.steps=2"])
    assert got[0].shape == (1, 4, 2, 8, 8) and out.stat().st_size > 0
