"""Object detection nodes: RT-DETR's boxes and their picture."""
from graph_engine import Param, node
from graph_engine.types import BOXES, VIDEO
from nodes.common.models_dirs import as_given, find_model, locator

from .rtdetr import COCO_CLASSES


@node("detect.rtdetr", title="RT-DETR Detect", category="Conditioning", device="gpu", temporal_radius=0)
def rtdetr(ctx, video: VIDEO,
           model: str = Param("rt_detr_v4-x-hgnet_fp16.safetensors", kind="path",
                              locate=locator("diffusion_models"),
                              help="ComfyUI's RT-DETR v4 detector, rt_detr_v4-x-hgnet_fp16.safetensors or _fp32 "
                                   "(Comfy-Org/SDPose), in diffusion_models/"),
           threshold: float = Param(0.5, min=0.0, max=1.0, step=0.01, help="boxes scoring at or under this are "
                                                                          "dropped"),
           class_name: str = Param("all", choices=("all",) + COCO_CLASSES, help="the COCO class kept; all: every "
                                                                                  "class"),
           max_detections: int = Param(100, min=0, max=300, help="at most this many boxes a frame, best first (0: "
                                                                  "none, as in ComfyUI)"),
           ) -> BOXES:
    """Boxes of the objects in each frame (people, with class_name person), found by RT-DETR v4 as ComfyUI's
    RTDETR_detect finds them: each frame stretched to 640x640, boxes in the frame's pixels, each marked with its
    frame and its class. Link them to pose.sdpose_keypoints for one skeleton a person, or to detect.draw_boxes to
    see them. The whole clip is read once, 8 frames a pass."""
    from .rtdetr import find, load
    path = str(find_model(as_given(model, ctx.workflow_dir), "diffusion_models"))
    return find(load(path, ctx.device), video, threshold, class_name, max_detections, ctx=ctx)


@node("detect.draw_boxes", title="Draw Boxes", category="Conditioning", temporal_radius=0)
def draw_boxes(ctx, video: VIDEO, boxes: BOXES) -> VIDEO:
    """The clip with each frame's boxes outlined in their class's colour and labelled with class and score, as
    ComfyUI's DrawBBoxes draws them (a box marked with a frame past the clip's end is not drawn)."""
    from nodes.common.stream import Progress
    from .rtdetr import draw_boxes as draw
    progress = Progress(ctx, video.length)
    # Grouped once: each frame scanning every box of the clip was frames x boxes.
    by_frame: dict = {}
    for box in boxes.boxes:
        by_frame.setdefault(box.frame, []).append(box)

    def reader(a, b):
        import numpy as np
        out = np.stack([draw(f, by_frame.get(i, ())) for i, f in enumerate(video.frames(a, b), a)])
        progress.add(b - a)
        return out

    return video.with_(reader=reader, local=True)
