"""Depth estimation node."""
from graph_engine import Param, node
from graph_engine.types import CAMERA, CONDITIONING, FLOAT, GEOMETRY, VIDEO
from nodes.common.models_dirs import as_given, locator
from nodes.depth.da3 import MODES, NORMALISATIONS, OUTPUTS, REF_VIEWS, RESIZES, SPREADS


@node("depth.estimate", title="Estimate Depth", category="Conditioning", device="gpu", temporal_radius=0)
def estimate(ctx, video: VIDEO,
             model: str = Param("Depth-Anything-V2-Small-hf", kind="path", locate=locator("depth"),
                                help="a depth-estimation model: a Hugging Face folder (config.json, "
                                     "model.safetensors, preprocessor_config.json) in a 'depth' model folder, or "
                                     "its path; Depth Anything V1/V2, DPT/MiDaS, ZoeDepth, Depth Pro"),
             spread: str = Param("clip", choices=("clip", "frame"),
                                 help="clip: one range for the whole clip, so levels hold when something comes into "
                                      "the shot (the model runs over the clip twice); frame: each frame by its own "
                                      "range, as ControlNet's preprocessors do for a picture")) -> VIDEO:
    """A depth map of every frame: near is white, far black, as ControlNet's depth preprocessors make them.
    Feed it to control.apply (preprocessor none) for a depth ControlNet, or to motion.apply_camera's depth
    (depth_type disparity) for parallax. The model is read from your own folder; nothing is downloaded."""
    from nodes.depth.estimate import depth_clip
    return depth_clip(video, as_given(model, ctx.workflow_dir), device=ctx.device, ctx=ctx, spread=spread)


@node("condition.lotus", title="Lotus Prompt", category="Conditioning")
def lotus_prompt(ctx) -> CONDITIONING:
    """Lotus' fixed prompt (ComfyUI's LotusConditioning): the empty prompt as SD 2's text encoder reads it, which
    Lotus-D was trained with, shipped with Kinograph so no text encoder is loaded. For a depth map of a picture: load
    lotus-depth-d-v1-1 with load.diffusion_model, encode the picture with an SD VAE (vae.encode), and sample it with
    this prompt, add_noise off, 1 step, cfg 1 and first_sigma 999; vae.decode gives the map far white, near black
    (video.invert turns it round, as ComfyUI's Lotus templates do)."""
    from nodes.generate.lotus import conditioning
    return conditioning()


@node("depth.marigold_pass", title="Marigold Pass", category="Conditioning", temporal_radius=0)
def marigold_pass(ctx, video: VIDEO,
                  prediction: str = Param("depth", choices=("depth", "normals", "albedo"),
                                          help="what the decoded Marigold v2 picture holds: the task its LoRA, VAE "
                                               "and conditioning were made for"),
                  spread: str = Param("clip", choices=("clip", "frame"),
                                      help="depth: one range for the whole clip, so levels hold over a shot; frame: "
                                           "each frame by its own range, as ComfyUI's node does")) -> VIDEO:
    """The pass a compositor reads from a decoded Marigold v2 picture (ComfyUI's MarigoldV2PostProcess; vae.decode's
    output of the task's VAE). depth: relative depth, near 1 (white), far 0, the same in R, G and B; it is
    affine-invariant (a relative log depth, not metres). normals: camera-space unit normals, x, y, z each stored as
    (n + 1) / 2 in R, G, B (0.5 is 0). albedo: the surface colour without lighting, sRGB-coded. Depth and normals
    are data, not colour: io.save_frames' PNG holds them as they are, so read those files in Nuke with colorspace
    raw (an EXR from here holds them decoded as sRGB light). Marigold v2 sees each frame alone: depth from frame to
    frame keeps its levels (spread clip), not its scale."""
    import numpy as np
    from nodes.common.stream import map_frames
    from nodes.generate.marigold import post
    span = None
    if prediction == "depth" and spread == "clip":
        ends = [(float(m.min()), float(m.max())) for m in (b.astype(np.float32).mean(-1) / 255
                                                           for _, b in video.chunks())]
        span = (min(lo for lo, _ in ends), max(hi for _, hi in ends))
    return map_frames(ctx, video, lambda f: (np.clip(post(f[None] / 255.0, prediction, span)[0], 0, 1) * 255 + 0.5)
                      .astype(np.uint8))


@node("depth.da3", title="Depth Anything 3", category="Conditioning", device="gpu")
def da3(ctx, video: VIDEO,
        model: str = Param("depth_anything_3_mono_large.safetensors", kind="path", locate=locator("depth"),
                           help="a Depth Anything 3 file as ComfyUI keeps it (Comfy-Org/Depth-Anything-3, in "
                                "models/geometry_estimation/ or a depth folder): _mono_large (depth and sky), "
                                "_metric_large (depth in metres, sky), _small / _base (depth and confidence)"),
        precision: str = Param("default", choices=("default", "fp16", "bf16", "fp32"),
                               help="the weights' type on the device: default is fp16 on a GPU, fp32 on the CPU"),
        resolution: int = Param(504, min=140, max=2520, step=14,
                                help="the side the model sees, a multiple of 14 (the maps are sized back)"),
        resize_method: str = Param("upper_bound_resize", choices=RESIZES,
                                   help="upper_bound_resize: the longer side to resolution; lower_bound_resize: the "
                                        "shorter (more detail, more memory)"),
        mode: str = Param("mono", choices=MODES,
                          help="mono: each frame alone; multiview (Small / Base): each group of `views` frames "
                               "seen together as one scene, so their depth agrees"),
        views: int = Param(8, min=2, max=256, help="multiview: frames seen together (a clip goes by in groups)"),
        ref_view: str = Param("saddle_balanced", choices=REF_VIEWS,
                              help="multiview: the view the scene is anchored to (3 views or more)")) -> GEOMETRY:
    """Depth of every frame by Depth Anything 3, as ComfyUI's DA3Inference finds it, with the sky (Mono / Metric
    Large) or the depth's confidence (Small / Base). Draw it with depth.da3_render. Frames are computed as they are
    read, so a long clip streams; the model is read from your own folder, nothing is downloaded."""
    from nodes.depth import da3 as d
    net = d.load(as_given(model, ctx.workflow_dir), ctx.device, precision)
    return d.infer(video, net, resolution, resize_method, mode, views, ref_view, ctx=ctx)


@node("depth.da3_render", title="Render Depth Anything 3", category="Conditioning", temporal_radius=0)
def da3_render(ctx, geometry: GEOMETRY,
               output: str = Param("depth", choices=OUTPUTS,
                                   help="depth: grey, near white; depth_colored: through the Turbo colour map; "
                                        "sky_mask: the sky's probability (Mono / Metric); confidence: the depth's, "
                                        "spread over each frame (Small / Base)"),
               normalization: str = Param("v2_style", choices=NORMALISATIONS,
                                          help="depth: v2_style spreads each frame's 1st..99th percentile (sky "
                                               "black); min_max its whole range; raw the depth as it is (0..1 shown, "
                                               "more is white)"),
               sky_clip: bool = Param(False, help="depth: the sky set to the ground's 99th percentile first "
                                                  "(Mono / Metric)"),
               colored: bool = Param(False, help="sky_mask / confidence: through the Turbo colour map"),
               spread: str = Param("frame", choices=SPREADS,
                                   help="depth: frame spreads each frame by its own range, as ComfyUI does (levels "
                                        "pump when something comes into the shot); clip one range for the whole "
                                        "clip, so levels hold (the model runs over the clip twice)")) -> VIDEO:
    """Pictures of Depth Anything 3's maps, drawn as ComfyUI's DA3Render draws them. Feed depth to control.apply
    for a depth ControlNet, or to motion.apply_camera (depth_type disparity) for parallax: spread clip keeps its
    levels steady over a shot."""
    from nodes.depth.da3 import render
    return render(geometry, output, normalization, sky_clip, colored, ctx=ctx, spread=spread)


@node("depth.da3_camera", title="Depth Anything 3 Camera", category="Motion", device="gpu")
def da3_camera(ctx, geometry: GEOMETRY) -> CAMERA:
    """The camera path of the footage depth.da3 reads, found by DA3 Small or Base's camera decoder with every frame
    one view of one scene (the model's resolution, resize and ref_view): each frame's rotation, position and field
    of view, frame 0 at the origin. The whole clip is seen at once, so keep it short (tens of frames) or the
    resolution low. Positions are in DA3's own scale, not metres; motion.camera_save writes the path out, the
    camera nodes move or combine it."""
    from nodes.depth.da3 import camera
    return camera(geometry)


@node("depth.moge", title="MoGe Geometry", category="Conditioning", device="gpu")
def moge(ctx, video: VIDEO,
         model: str = Param("moge_2_vitl_normal_fp16.safetensors", kind="path", locate=locator("depth"),
                            help="a MoGe-2 file: ComfyUI's models/geometry_estimation/moge_2_*.safetensors (or the "
                                 "authors' model.pt), in a geometry_estimation or depth model folder"),
         resolution_level: int = Param(9, min=0, max=9, help="detail: 0 is fastest, 9 reads the most patches"),
         fov_x: float = Param(0.0, min=0.0, max=170.0,
                              help="the camera's horizontal field of view in degrees; 0 recovers it from each frame"),
         force_projection: bool = Param(True, help="rebuild the points from depth and the recovered camera"),
         apply_mask: bool = Param(True, help="masked-out pixels (sky) have no depth: black in depth pictures, "
                                             "mid-grey in normal maps"),
         batch: int = Param(4, min=1, max=64, help="frames through the model at once (lower if memory runs out)")
         ) -> GEOMETRY:
    """Monocular geometry of every frame with MoGe-2 (ComfyUI's LoadMoGeModel and MoGeInference): depth in metres,
    the camera, the validity mask (sky, voids) and normals. Draw it with depth.moge_render. Frames are computed as
    they are read, a batch of frames a pass, so a long plate streams; only the last pass is held, so each render of
    a clip read after another runs the model again. The model is read from your own folder, nothing is downloaded."""
    from nodes.depth.moge import infer
    return infer(video, as_given(model, ctx.workflow_dir), resolution_level, fov_x, force_projection, apply_mask,
                 batch, device=ctx.device, ctx=ctx)


@node("depth.moge_panorama", title="MoGe Panorama Geometry", category="Conditioning", device="gpu")
def moge_panorama(ctx, video: VIDEO,
                  model: str = Param("moge_2_vitl_normal_fp16.safetensors", kind="path", locate=locator("depth"),
                                     help="a MoGe-2 file, as depth.moge reads"),
                  resolution_level: int = Param(9, min=0, max=9, help="each view's detail: 0 is fastest"),
                  split_resolution: int = Param(512, min=256, max=1024, help="the side of each of the 12 views"),
                  merge_resolution: int = Param(1920, min=256, max=8192,
                                                help="the long side of the stitched distance map (never above the "
                                                     "picture's): larger is slower, its seams finer"),
                  batch: int = Param(4, min=1, max=12, help="views through the model at once")) -> GEOMETRY:
    """Geometry of an equirectangular (360 x 180 degree) panorama with MoGe-2, as ComfyUI's MoGePanoramaInference
    makes it: 12 views of 90 degrees, MoGe on each, their distances stitched into one map of the sphere. Mesh it with
    mesh.from_points (a sphere seen from inside), or draw its depth with depth.moge_render. Normals and metric scale
    are left out (the views' would not agree at their seams). Each frame of a clip is one panorama."""
    from nodes.depth.moge import load_moge
    from nodes.depth.moge_panorama import PanoramaGeometry
    net = load_moge(as_given(model, ctx.workflow_dir), ctx.device)
    return PanoramaGeometry(video, net, resolution_level, split_resolution, merge_resolution, batch, ctx)


@node("depth.moge_fov", title="MoGe Field of View", category="Conditioning", outputs={"fov": FLOAT, "focal_pixels": FLOAT})
def moge_fov(ctx, geometry: GEOMETRY,
             axis: str = Param("vertical", choices=("vertical", "horizontal", "diagonal"),
                               help="the angle measured: top to bottom, side to side, or corner to corner"),
             unit: str = Param("degrees", choices=("degrees", "radians"), help="the angle's unit")):
    """The field of view of the camera MoGe recovered for the first frame, and its focal length in pixels (ComfyUI's
    MoGeGeometryToFOV): a photo's horizontal angle is what Pixal3D's conditioning reads."""
    from nodes.depth.moge import fov
    angle, focal = fov(geometry, axis, unit)
    return {"fov": angle, "focal_pixels": focal}


@node("depth.moge_render", title="Render MoGe Geometry", category="Conditioning", temporal_radius=0)
def moge_render(ctx, geometry: GEOMETRY,
                output: str = Param("depth", choices=("depth", "depth_colored", "normal_opengl", "normal_directx",
                                                      "mask"),
                                    help="depth: near white, far black, each frame by its own range; depth_colored: "
                                         "the same in the Turbo colour map; normal_opengl / normal_directx: a normal "
                                         "map with green up (Blender, Substance, glTF) or down (Unreal); mask: white "
                                         "where there is geometry (black: sky, voids)")) -> VIDEO:
    """Pictures of depth.moge's geometry, drawn as ComfyUI's MoGeRender draws them. Feed depth to a depth
    ControlNet or to LTX-2.3's IC-LoRA as its control clip. Renders of one still share its model pass; on a clip
    each render read after another runs the model again (three renders of a plate: three times the model)."""
    from nodes.depth.moge import render
    return render(geometry, output, ctx=ctx)
