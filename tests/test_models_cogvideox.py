"""CogVideoX as ComfyUI's CogVideoX pack keeps it (models/CogVideo/<name>/ with transformer/, vae/ and
scheduler/ but no model_index.json) gives exactly what the full diffusers folder gives, through the graph."""
import pytest
import torch

from tests.comfy_layouts import build_cogvideox, same_frames, text_to_video


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_cogvideox(tmp_path_factory.mktemp("cogvideox"))
    torch.set_num_threads(threads)


def test_pack_folder_runs_like_the_diffusers_folder(cog):
    folder = f"  ref: {{type: load.cogvideox, params: {{path: '{cog['diffusers']}'}}}}"
    ref = text_to_video(folder, "ref.model", "ref.text_encoder", "ref.vae", frames=5, sampler="ddim")
    got = text_to_video(folder + f"\n  load: {{type: load.cogvideox, params: {{path: '{cog['pack']}'}}}}",
                        "load.model", "ref.text_encoder", "load.vae", frames=5, sampler="ddim")
    assert ref[0].shape == (1, 4, 2, 8, 8) and ref[1].shape == (5, 64, 64, 3)
    assert torch.equal(ref[0], got[0]) and ref[0].abs().sum() > 0
    same_frames(ref[1], got[1])


def test_auto_loader_recognises_the_pack_folder(cog):
    folder = f"  ref: {{type: load.cogvideox, params: {{path: '{cog['diffusers']}'}}}}"
    got = text_to_video(folder + f"\n  load: {{type: load.model, params: {{path: '{cog['pack']}'}}}}",
                        "load.model", "ref.text_encoder", "load.vae", frames=5, sampler="ddim")
    assert got[0].shape == (1, 4, 2, 8, 8)
