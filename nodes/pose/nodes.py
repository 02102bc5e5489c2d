"""Pose estimation nodes."""
from graph_engine import Input, Param, node
from graph_engine.types import BOXES, INT, MODEL, POSE_KEYPOINT, VAE, VIDEO
from nodes.common.models_dirs import as_given, locator

from .geometry import RESIZE_MODES


@node("pose.dwpose", title="DWPose Estimator", category="Conditioning", device="gpu", temporal_radius=0)
def dwpose(ctx, video: VIDEO,
           detector: str = Param("yolox_l.torchscript.pt", kind="path", locate=locator("pose"),
                                 help="the YOLOX person detector, yolox_l.torchscript.pt (Hugging Face "
                                      "hr16/yolox-onnx), in a 'pose' model folder or where comfyui_controlnet_aux "
                                      "keeps it (custom_nodes/comfyui_controlnet_aux/ckpts/); None: the whole frame "
                                      "is one person"),
           estimator: str = Param("dw-ll_ucoco_384_bs5.torchscript.pt", kind="path", locate=locator("pose"),
                                  help="the DWPose model, dw-ll_ucoco_384_bs5.torchscript.pt (Hugging Face "
                                       "hr16/DWPose-TorchScript-BatchSize5), found as the detector is"),
           resolution: int = Param(512, min=64, max=16384,
                                   help="the picture's short side in pixels (controlnet_aux's detect resolution; "
                                        "link pose.pixel_perfect to match the generation size)"),
           body: bool = Param(True, help="draw the body's 18 joints and limbs"),
           hands: bool = Param(True, help="draw both hands' 21 points"),
           face: bool = Param(True, help="draw the face's 70 points"),
           xinsr_sticks: bool = Param(False, help="thicker limbs on large pictures, for xinsir's SDXL openpose "
                                                  "ControlNet")) -> VIDEO:
    """OpenPose-style pose pictures of every person in every frame, as comfyui_controlnet_aux's DWPose Estimator
    draws them: for an openpose ControlNet (control.apply, preprocessor none) or Wan 2.2 Animate's pose and face
    videos. Detection and the pose model run on the frame as it is; the picture is scaled to `resolution` on its
    short side. The models are read from your own folders; nothing is downloaded."""
    from .dwpose import pose_clip
    det = detector if detector in ("", "None") else as_given(detector, ctx.workflow_dir)
    return pose_clip(video, det, as_given(estimator, ctx.workflow_dir), resolution, body, hands, face,
                     xinsr_sticks, device=ctx.device, ctx=ctx)


@node("pose.pixel_perfect", title="Pixel Perfect Resolution", category="Conditioning",
      outputs={"resolution": INT})
def pixel_perfect(ctx, video: VIDEO, width: int = Param(512, min=64, max=16384, help="the generation's width"),
                  height: int = Param(512, min=64, max=16384, help="the generation's height"),
                  resize_mode: str = Param("Just Resize", choices=RESIZE_MODES,
                                           help="how the control picture will meet the generation size: Just "
                                                "Resize and Crop and Resize fill it, Resize and Fill fits inside "
                                                "it")) -> dict:
    """The detect resolution at which a preprocessor's picture (pose.dwpose) comes out the generation's size
    pixel for pixel, from the clip's size (ComfyUI's PixelPerfectResolution). Reads no frames."""
    from .geometry import pixel_perfect as estimate
    return {"resolution": estimate(video.height, video.width, width, height, resize_mode)}


@node("pose.sdpose_keypoints", title="SDPose Keypoints", category="Conditioning", device="gpu")
def sdpose_keypoints(ctx, model: MODEL, vae: VAE, video: VIDEO,
                     boxes: BOXES = Input(optional=True, help="people's boxes (detect.rtdetr, class person): one "
                                                                "skeleton a box"),
                     batch_size: int = Param(16, min=1, max=10000, help="frames read in one pass of the model")
                     ) -> POSE_KEYPOINT:
    """Whole-body keypoints (body, feet, face, hands) of the people in each frame, read by SDPose-OOD as
    ComfyUI's SDPoseKeypointExtractor reads them: load sdpose_wholebody_fp16.safetensors (Comfy-Org/SDPose, in
    checkpoints/) with load.model and link its model and vae. Without boxes each frame is one person (the whole
    frame); with detect.rtdetr's boxes each box is one person, read from its crop (a frame with no box is read
    whole). Made as the keypoints are read, so a long clip streams. Draw them with pose.sdpose_draw."""
    from .sdpose import track
    return track(video, model, vae, batch_size, device=ctx.device, ctx=ctx, boxes=boxes)


@node("pose.sdpose_draw", title="Draw SDPose Keypoints", category="Conditioning", temporal_radius=0)
def sdpose_draw(ctx, keypoints: POSE_KEYPOINT,
                draw_body: bool = Param(True, help="the body's 18 joints and limbs"),
                draw_hands: bool = Param(True, help="both hands' 21 points and lines"),
                draw_face: bool = Param(True, help="the face's 68 points"),
                draw_feet: bool = Param(False, help="the feet's 6 points"),
                stick_width: int = Param(4, min=1, max=10, help="the limbs' half-width in pixels"),
                face_point_size: int = Param(3, min=1, max=10, help="the face points' radius in pixels"),
                score_threshold: float = Param(0.3, min=0.0, max=1.0, step=0.01,
                                               help="keypoints scoring under this are not drawn")) -> VIDEO:
    """OpenPose-style pose pictures of keypoints, at the keypoints' frame size on black, drawn as ComfyUI's
    SDPoseDrawKeypoints draws them (the picture Wan 2.2 Animate's pose video and openpose ControlNets read)."""
    from .draw import draw_wholebody
    from .sdpose import draw_track
    return draw_track(keypoints, lambda canvas, kp: draw_wholebody(
        canvas, kp, score_threshold, draw_body, draw_feet, draw_face, draw_hands, stick_width, face_point_size), ctx)
