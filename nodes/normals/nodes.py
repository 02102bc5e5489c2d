"""Normal-map nodes: comfyui_controlnet_aux's normal preprocessors for a video."""
import math

from graph_engine import Param, node
from graph_engine.types import VIDEO
from nodes.common.models_dirs import as_given, locator
from nodes.lines.nodes import _resolution, annotator_file


@node("normals.midas", title="MiDaS Normal Map", category="Conditioning", device="gpu", temporal_radius=0)
def midas(ctx, video: VIDEO,
          model: str = Param("dpt-hybrid-midas", kind="path", locate=locator("depth"),
                             help="MiDaS DPT-Hybrid as its Hugging Face folder, Intel/dpt-hybrid-midas (the same "
                                  "weights as the pack's dpt_hybrid-midas-501f0c75.pt), in a 'depth' model folder"),
          a: float = Param(2.0 * math.pi, min=0.0, max=5.0 * math.pi,
                           help="the depth step that tilts a surface 45 degrees: larger flattens the map"),
          bg_threshold: float = Param(0.1, min=0.0, max=1.0,
                                      help="depth below this share of the frame's range is background, drawn "
                                           "facing the camera"),
          resolution: int = _resolution()) -> VIDEO:
    """A normal map of every frame from MiDaS's depth, as comfyui_controlnet_aux's MiDaS Normal Map draws it (the
    picture ControlNet 1.0's control_sd15_normal was trained on; control_v11p_sd15_normalbae wants normals.bae's).
    The model is read from your own folder; nothing is downloaded."""
    from nodes.lines.extract import line_clip
    from .midas import load_dpt, midas_normal
    estimator = load_dpt(as_given(model, ctx.workflow_dir), ctx.device)
    return line_clip(video, resolution, lambda f: midas_normal(estimator, f, resolution, a, bg_threshold), True, ctx)


@node("normals.bae", title="BAE Normal Map", category="Conditioning", device="gpu", temporal_radius=0)
def bae(ctx, video: VIDEO, model: str = annotator_file("scannet.pt"), resolution: int = _resolution()) -> VIDEO:
    """A normal map of every frame from Bae et al.'s network, as comfyui_controlnet_aux's BAE Normal Map draws it:
    the picture ControlNet 1.1's control_v11p_sd15_normalbae was trained on. The model is read from your own
    folders; nothing is downloaded."""
    from nodes.lines.extract import line_clip, load
    from .bae import bae_pictures
    net = load(as_given(model, ctx.workflow_dir), "bae", ctx.device)
    # one frame at a time, as the pack runs it: the full-size refinement holds 132 values a pixel (3.3 GB for four
    # 1024x1536 pictures)
    return line_clip(video, resolution, lambda f: bae_pictures(net, f[None], resolution, ctx.device)[0], True, ctx)
