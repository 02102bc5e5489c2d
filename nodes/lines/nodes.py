"""Line, soft-edge and scribble nodes: comfyui_controlnet_aux's line preprocessors for a video."""
from graph_engine import Param, node
from graph_engine.types import VIDEO
from nodes.common.models_dirs import as_given, locator

RESOLUTION_HELP = ("the picture's short side in pixels (controlnet_aux's resolution; link pose.pixel_perfect to "
                   "match the generation size)")


def _resolution():
    return Param(512, min=64, max=16384, help=RESOLUTION_HELP)


def annotator_file(file: str):
    """The `model` param of a node reading one of lllyasviel/Annotators' files."""
    return Param(file, kind="path", locate=locator("annotators"),
                 help=f"{file} from Hugging Face lllyasviel/Annotators, found as lines.lineart's model is "
                      "(comfyui_controlnet_aux's ckpts/ folder, or an 'annotators' model folder)")


@node("lines.lineart", title="Line Art", category="Conditioning", device="gpu", temporal_radius=0)
def lineart(ctx, video: VIDEO,
            model: str = Param("sk_model.pth", kind="path", locate=locator("annotators"),
                               help="sk_model.pth (realistic) or sk_model2.pth (coarse), from Hugging Face "
                                    "lllyasviel/Annotators: where comfyui_controlnet_aux keeps it "
                                    "(custom_nodes/comfyui_controlnet_aux/ckpts/lllyasviel/Annotators/) or in an "
                                    "'annotators' model folder"),
            resolution: int = _resolution()) -> VIDEO:
    """Black line art on white of every frame, as comfyui_controlnet_aux's Realistic Lineart draws it (coarse: its
    sk_model2.pth): for a lineart ControlNet (control.apply, preprocessor none). The model is read from your own
    folders; nothing is downloaded."""
    from .extract import line_clip, lineart_pictures, load
    net = load(as_given(model, ctx.workflow_dir), "lineart", ctx.device)
    return line_clip(video, resolution, lambda f: lineart_pictures(net, f, resolution, ctx.device), False, ctx)


@node("lines.hed", title="HED Soft Edges", category="Conditioning", device="gpu", temporal_radius=0)
def hed(ctx, video: VIDEO,
        model: str = Param("ControlNetHED.pth", kind="path", locate=locator("annotators"),
                           help="ControlNetHED.pth from Hugging Face lllyasviel/Annotators, found as lines.lineart's "
                                "model is"),
        safe: bool = Param(True, help="quantise the edges to a few grey levels (controlnet_aux's safe)"),
        scribble: bool = Param(False, help="thin the edges to ridges and draw them thick, as a scribble "
                                           "(controlnet_aux's Fake Scribble)"),
        resolution: int = _resolution()) -> VIDEO:
    """White soft edges on black of every frame, as comfyui_controlnet_aux's HED Soft-Edge Lines draws them, or
    with `scribble` its Fake Scribble Lines: for a softedge or scribble ControlNet (control.apply, preprocessor
    none). The model is read from your own folders; nothing is downloaded."""
    from .extract import hed_pictures, line_clip, load
    net = load(as_given(model, ctx.workflow_dir), "hed", ctx.device)
    return line_clip(video, resolution, lambda f: hed_pictures(net, f, resolution, ctx.device, safe, scribble),
                     False, ctx)


@node("lines.scribble", title="Scribble Lines", category="Conditioning", temporal_radius=0)
def scribble_lines(ctx, video: VIDEO, resolution: int = _resolution()) -> VIDEO:
    """A drawing's strokes as a scribble picture, as comfyui_controlnet_aux's Scribble Lines makes it: black where
    a pixel's darkest channel is under 127, white elsewhere. No model."""
    from .extract import line_clip, scribble_picture
    return line_clip(video, resolution, lambda f: scribble_picture(f, resolution), True, ctx)


@node("lines.xdog", title="Scribble XDoG Lines", category="Conditioning", temporal_radius=0)
def xdog_lines(ctx, video: VIDEO,
               threshold: int = Param(32, min=1, max=64, help="lower draws fainter lines too"),
               resolution: int = _resolution()) -> VIDEO:
    """White scribble lines on black from a difference of Gaussians, as comfyui_controlnet_aux's Scribble XDoG
    Lines draws them: for a scribble ControlNet. No model."""
    from .extract import line_clip, xdog_picture
    return line_clip(video, resolution, lambda f: xdog_picture(f, resolution, threshold), True, ctx)


@node("lines.pidinet", title="PiDiNet Soft Edges", category="Conditioning", device="gpu", temporal_radius=0)
def pidinet(ctx, video: VIDEO,
            model: str = Param("table5_pidinet.pth", kind="path", locate=locator("annotators"),
                               help="table5_pidinet.pth from Hugging Face lllyasviel/Annotators, found as "
                                    "lines.lineart's model is"),
            safe: bool = Param(True, help="quantise the edges to a few grey levels (controlnet_aux's safe)"),
            scribble: bool = Param(False, help="thin the edges to thick scribble strokes, as controlnet_aux's "
                                               "Scribble PiDiNet Lines does"),
            resolution: int = _resolution()) -> VIDEO:
    """White soft edges on black of every frame, as comfyui_controlnet_aux's PiDiNet Soft-Edge Lines draws them, or
    with `scribble` its Scribble PiDiNet Lines: for a softedge or scribble ControlNet (control.apply, preprocessor
    none). The model is read from your own folders; nothing is downloaded."""
    from .extract import line_clip, load, pidinet_pictures
    net = load(as_given(model, ctx.workflow_dir), "pidinet", ctx.device)
    return line_clip(video, resolution, lambda f: pidinet_pictures(net, f, resolution, ctx.device, safe, scribble),
                     False, ctx)


@node("lines.standard", title="Standard Line Art", category="Conditioning", temporal_radius=0)
def standard_lines(ctx, video: VIDEO,
                   sigma: float = Param(6.0, min=0.01, max=100.0, help="the blur each pixel is compared with"),
                   threshold: int = Param(8, min=0, max=16, help="darkness below this is left out of the level "
                                                                 "the lines are scaled by"),
                   resolution: int = _resolution()) -> VIDEO:
    """White line art on black from how much darker each pixel is than its surroundings, as comfyui_controlnet_aux's
    Standard Lineart draws it: for a lineart ControlNet. No model."""
    from .extract import line_clip, standard_picture
    return line_clip(video, resolution, lambda f: standard_picture(f, resolution, sigma, threshold), True, ctx)


@node("lines.anime", title="Anime Line Art", category="Conditioning", device="gpu", temporal_radius=0)
def anime_lineart(ctx, video: VIDEO, model: str = annotator_file("netG.pth"),
                  resolution: int = _resolution()) -> VIDEO:
    """Black anime-style line art on white of every frame, as comfyui_controlnet_aux's Anime Lineart draws it: for
    the anime lineart ControlNet (control_v11p_sd15s2_lineart_anime). The model is read from your own folders;
    nothing is downloaded."""
    from .extract import anime_pictures, line_clip, load
    net = load(as_given(model, ctx.workflow_dir), "anime", ctx.device)
    return line_clip(video, resolution, lambda f: anime_pictures(net, f, resolution, ctx.device), False, ctx)


@node("lines.manga", title="Manga Line Art", category="Conditioning", device="gpu", temporal_radius=0)
def manga_lineart(ctx, video: VIDEO, model: str = annotator_file("erika.pth"),
                  resolution: int = _resolution()) -> VIDEO:
    """White manga-style lines on black of every frame, as comfyui_controlnet_aux's Manga Lineart draws them (Li et
    al.'s manga line extractor; the picture's short side is `resolution` rounded up to a whole 256, as there): for
    the anime lineart ControlNet. The model is read from your own folders; nothing is downloaded."""
    from .extract import line_clip, load, manga_pictures, manga_resolution
    net = load(as_given(model, ctx.workflow_dir), "manga", ctx.device)
    # one frame at a time, as the pack runs it: its full-size stages are 24 channels at a resolution rounded up
    return line_clip(video, manga_resolution(resolution),
                     lambda f: manga_pictures(net, f[None], resolution, ctx.device)[0], True, ctx)


@node("lines.mlsd", title="M-LSD Straight Lines", category="Conditioning", device="gpu", temporal_radius=0)
def mlsd(ctx, video: VIDEO,
         model: str = Param("mlsd_large_512_fp32.pth", kind="path", locate=locator("annotators"),
                            help="mlsd_large_512_fp32.pth from Hugging Face lllyasviel/Annotators, found as "
                                 "lines.lineart's model is"),
         score: float = Param(0.1, min=0.01, max=2.0, help="how sure M-LSD must be of a line to draw it"),
         distance: float = Param(0.1, min=0.01, max=20.0, help="lines shorter than this (in half-size pixels) are "
                                                               "left out"),
         resolution: int = _resolution()) -> VIDEO:
    """White straight lines on black of every frame (walls, furniture, buildings), as comfyui_controlnet_aux's M-LSD
    Lines draws them: for an mlsd ControlNet (control.apply, preprocessor none). The model is read from your own
    folders; nothing is downloaded."""
    from .extract import line_clip, load, mlsd_pictures
    net = load(as_given(model, ctx.workflow_dir), "mlsd", ctx.device)
    return line_clip(video, resolution, lambda f: mlsd_pictures(net, f, resolution, ctx.device, score, distance),
                     False, ctx)
