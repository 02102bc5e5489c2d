"""depth.estimate: depth maps from a local Hugging Face depth model (a tiny random-weight Depth Anything built by
tests/tiny_models.py), checked against transformers' own depth-estimation pipeline, and the messages for the
files users have that are not such a folder."""
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

WORKFLOW = """kinograph: 1
nodes:
  src: {type: generate.test_pattern, params: {frames: 3, width: 64, height: 48}}
  depth: {type: depth.estimate, inputs: {video: src.video}, params: {model: MODEL, spread: frame}}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tiny_models import build_depth_anything
    root = tmp_path_factory.mktemp("models")
    build_depth_anything(root / "depth" / "Depth-Anything-tiny-hf")
    return root


def test_depth_maps_are_the_models_own_as_its_pipeline_gives_them(models, tmp_path, monkeypatch):
    """Each frame's map is transformers' depth-estimation pipeline's prediction for it (its own preprocessing and
    resizing back), spread over 0..255 near-white, frame by frame."""
    from PIL import Image
    from transformers import pipeline
    from graph_engine.api import Session, load_workflow
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    wf = tmp_path / "depth.yaml"
    wf.write_text(WORKFLOW.replace("MODEL", "Depth-Anything-tiny-hf"))
    res = Session(device="cpu").run(load_workflow(wf), use_cache=False, keep=["src", "depth"])
    assert res.ok, res.failed
    got, frames = res.outputs["depth"]["video"].to_array(), res.outputs["src"]["video"].to_array()
    assert got.shape == (3, 48, 64, 3) and (got == got[..., :1]).all()
    pipe = pipeline("depth-estimation", model=str(models / "depth" / "Depth-Anything-tiny-hf"), local_files_only=True)
    for frame, mine in zip(frames, got):
        pred = pipe(Image.fromarray(frame))["predicted_depth"].numpy()
        want = (pred - pred.min()) / (pred.max() - pred.min()) * 255
        assert np.abs(mine[..., 0] - want).max() <= 2.0
        assert mine.min() == 0 and mine.max() == 255


def test_a_metric_models_distances_are_turned_so_near_is_white():
    """ZoeDepth, Depth Pro and metric Depth Anything give distances; the map is near-white like the others."""
    import torch
    from nodes.depth.estimate import Estimator, depth_picture

    class Model(torch.nn.Module):
        dtype = torch.float32

        def forward(self, pixel_values):
            rows = torch.linspace(1.0, 10.0, 8)[:, None].expand(8, 8)     # 1 m at the top, 10 m at the bottom
            return type("Out", (), {"predicted_depth": rows[None]})

    def processor(images, return_tensors, **kw):      # as transformers' processors, which take input_data_format
        return {"pixel_values": torch.zeros(1, 3, 8, 8)}
    frame = np.zeros((8, 8, 3), np.uint8)
    metric = depth_picture(Estimator(Model(), processor, True, "cpu").disparity(frame))[..., 0]
    relative = depth_picture(Estimator(Model(), processor, False, "cpu").disparity(frame))[..., 0]
    assert metric[0].min() == 255 and metric[-1].max() == 0          # near (1 m) white
    assert relative[0].max() == 0 and relative[-1].min() == 255      # a disparity is taken as it is
    assert (depth_picture(np.ones((4, 4), np.float32)) == 128).all()  # flat: mid-grey, not a division by 0


def test_files_that_are_not_a_depth_folder_say_what_is_needed(models, tmp_path, monkeypatch):
    import shutil
    from graph_engine import NodeError
    from nodes.depth.estimate import load_estimator
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    (tmp_path / "models" / "depthanything").mkdir(parents=True)
    (tmp_path / "models" / "depthanything" / "depth_anything_v2_vits.safetensors").write_bytes(b"x" * 64)
    with pytest.raises(NodeError, match="depth_anything_v2_vits.safetensors is a single weight file; depth.estimate "
                                        "reads a Hugging Face depth-estimation folder"):
        load_estimator("depth_anything_v2_vits.safetensors")
    bare = tmp_path / "models" / "depth" / "bare"
    shutil.copytree(models / "depth" / "Depth-Anything-tiny-hf", bare)
    (bare / "preprocessor_config.json").unlink()
    with pytest.raises(NodeError, match="has no preprocessor_config.json"):
        load_estimator("bare")
    (bare / "model.safetensors").unlink()
    with pytest.raises(NodeError, match="holds no weights"):
        load_estimator("bare")
    with pytest.raises(NodeError, match=r"depth model 'Depth-Anything-V2-Small-hf' not found. Kinograph never downloads"):
        load_estimator("Depth-Anything-V2-Small-hf")


def test_one_range_for_the_clip_holds_the_levels_when_something_comes_into_the_shot(monkeypatch):
    """A lamp (near) comes into the second frame: spread per frame, the wall behind it darkens from white to
    mid-grey; spread over the clip, the wall keeps its level and the lamp is the white."""
    import nodes.depth.estimate as depth
    from graph_engine import Clip

    class Red:                  # the model's disparity: the red channel, as given below
        def disparity(self, frame):
            return frame[..., 0].astype(np.float32) / 255
    monkeypatch.setattr(depth, "load_estimator", lambda name, device="cpu": Red())
    frames = np.zeros((2, 32, 32, 3), np.uint8)
    frames[:, :, :16, 0], frames[:, :, 16:, 0] = 26, 128          # far half 0.1, the wall 0.5
    frames[1, 8:16, 20:28, 0] = 230                               # the lamp at 0.9
    clip = Clip.from_array(frames, 24.0)
    per_frame = depth.depth_clip(clip, "any", spread="frame").to_array()[..., 0]
    per_clip = depth.depth_clip(clip, "any", spread="clip").to_array()[..., 0]
    wall = (slice(20, 32), slice(16, 20))
    assert per_frame[0][wall].min() == 255 and per_frame[1][wall].max() < 135     # pumped
    assert (per_clip[0][wall] == per_clip[1][wall]).all() and 120 < per_clip[0][20, 18] < 135
    assert per_clip[1, 10, 22] == 255 and per_clip[0, 0, 0] == 0


@pytest.mark.parametrize("size", [(1, 1), (33, 1), (1000, 4)])
def test_tiny_frames_and_thin_strips_get_a_depth_map_of_their_size(models, tmp_path, monkeypatch, size):
    """transformers' processors keep the aspect ratio and round sides to the patch size: a frame 1 px tall (or
    4 x 1000) became 0 px wide in there ("ValueError: Size must contain 'height' and 'width' keys") and a 1x1
    frame was read as a one-channel picture. The model now sees a stretched copy; the map is the frame's size."""
    from graph_engine.api import Session, load_workflow
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    w, h = size
    wf = tmp_path / "depth.yaml"
    wf.write_text(WORKFLOW.replace("MODEL", "Depth-Anything-tiny-hf").replace(
        "  depth:", f"  small: {{type: video.resize, inputs: {{video: src.video}}, params: {{width: {w}, height: {h}, "
                    f"fit: stretch}}}}\n  depth:").replace("video: src.video}, params: {model", "video: small.video}, "
                                                           "params: {model"))
    res = Session(device="cpu").run(load_workflow(wf), use_cache=False, keep=["depth"])
    assert res.ok, res.failed
    assert res.outputs["depth"]["video"].to_array().shape == (3, h, w, 3)


def test_comfyui_controlnet_aux_depth_files_are_named_with_the_folder_to_use(tmp_path, monkeypatch):
    """A ComfyUI user's MiDaS and Zoe files are comfyui_controlnet_aux's downloads in its ckpts/ folder, in their
    authors' timm layouts, which transformers does not read and nothing here can check a conversion against. The
    Zoe / MiDaS preprocessors import as depth.estimate naming the Hugging Face folder; without it the run said only
    "not found". It now names the file the user has and the folder to put beside it (Zoe's file is ZoeDepth-N:
    Intel/zoedepth-nyu, which the import now names instead of the two-headed -nyu-kitti)."""
    from app.comfyui import import_data
    from graph_engine import NodeError
    from nodes.depth.estimate import load_estimator
    ckpts = tmp_path / "custom_nodes" / "comfyui_controlnet_aux" / "ckpts" / "lllyasviel" / "Annotators"
    ckpts.mkdir(parents=True)
    (tmp_path / "models").mkdir()
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    (ckpts / "ZoeD_M12_N.pt").write_bytes(b"x" * 64)
    res = import_data({"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
                       "2": {"class_type": "Zoe-DepthMapPreprocessor", "inputs": {"image": ["1", 0],
                                                                                  "resolution": 512}}})
    (node,) = [n for n in res.graph.nodes.values() if n.type == "depth.estimate"]
    with pytest.raises(NodeError) as e:
        load_estimator(node.params["model"])
    assert str(e.value) == (
        f"depth model 'zoedepth-nyu' not found. {ckpts / 'ZoeD_M12_N.pt'} is the model's own file (its authors' layout, "
        "as comfyui_controlnet_aux keeps it), which transformers does not read and Kinograph does not convert: put "
        "the same model's Hugging Face folder, Intel/zoedepth-nyu (config.json, model.safetensors, "
        "preprocessor_config.json), in a 'depth' model folder as zoedepth-nyu")
    with pytest.raises(NodeError, match=r"dpt_hybrid-midas-501f0c75.pt is the model's own file .* Intel/dpt-hybrid-midas"):
        (ckpts / "dpt_hybrid-midas-501f0c75.pt").write_bytes(b"x" * 64)
        load_estimator(str(ckpts / "dpt_hybrid-midas-501f0c75.pt"))
