"""Stylization nodes: classical looks, colour transfer, neural AdaIN, and temporal stabilization."""
from graph_engine import NodeError, Param, node
from graph_engine.types import IMAGE, VIDEO
from nodes.color.nodes import SPREAD_HELP, SPREADS


@node("stylize.painterly", title="Painterly", category="Stylize", temporal_radius=0)
def painterly(ctx, video: VIDEO,
              method: str = Param("stylization", choices=("stylization", "edge_preserving", "detail"),
                                  help="stylization: watercolour-like; edge_preserving: flat areas, crisp edges; "
                                       "detail: enhanced texture"),
              sigma_s: float = Param(60.0, min=1.0, max=200.0, help="spatial extent of the smoothing, pixels"),
              sigma_r: float = Param(0.45, min=0.01, max=1.0, help="how strong an edge must be to be kept")) -> VIDEO:
    """Edge-preserving painterly looks (OpenCV's domain-transform filters).

    Per-frame filters shimmer a little on moving footage: follow with stylize.temporal. OpenCV's filters take 8-bit
    frames only: a deep plate (EXR, 16-bit, DPX) is filtered as its 8-bit picture, and what 8 bits could not hold
    (light above 1.0, finer shadow steps) is added back to the result unfiltered, so highlights are not clipped."""
    from nodes.common.stream import levels_frames, map_frames
    from nodes.stylize.filters import painterly
    if video.linear is not None:
        ctx.log("stylize.painterly filters the plate's 8-bit picture (OpenCV's photo filters take no deeper): its "
                "light above 1.0 and its steps finer than 8 bits are added back to the result as they came, "
                "unfiltered")
    fn = lambda f: painterly(f, method, sigma_s, sigma_r)     # noqa: E731
    return levels_frames(map_frames(ctx, video, fn), video, fn)


@node("stylize.kuwahara", title="Kuwahara", category="Stylize", temporal_radius=0)
def kuwahara(ctx, video: VIDEO, radius: int = Param(5, min=2, max=20, help="brush size, pixels"),
             sharpness: float = Param(8.0, min=1.0, max=16.0, help="higher keeps edges crisper"),
             sectors: int = Param(8, min=4, max=16, help="directions each pixel is smoothed from: more follows "
                                                          "curved edges closer, slower")) -> VIDEO:
    """Oil-paint look: generalized Kuwahara filter with smooth sectors (Papari et al.). A deep plate's float pixels
    (EXR, 16-bit, DPX) are painted too, unrounded and past 1.0."""
    from nodes.common.stream import levels_frames, map_frames
    from nodes.stylize.kuwahara import kuwahara
    fn = lambda f: kuwahara(f, radius, sharpness, sectors)     # noqa: E731
    return levels_frames(map_frames(ctx, video, fn), video, fn)


@node("stylize.sketch", title="Pencil / Ink", category="Stylize", temporal_radius=0)
def sketch(ctx, video: VIDEO, style: str = Param("pencil", choices=("pencil", "color_pencil", "ink"),
                                                help="pencil: grey shading; color_pencil: coloured shading; ink: "
                                                     "black lines on white"),
           detail: float = Param(1.0, min=0.2, max=4.0, help="more strokes when higher: pencil from outlines "
                                                                "only (0.2) to shading everywhere (4), ink finer lines")) -> VIDEO:
    """Pencil drawing (OpenCV pencil sketch) or ink lines (soft-thresholded difference of Gaussians).

    A drawing on white paper, made from the 8-bit sRGB picture: a deep plate's light above 1.0 is paper white, and an
    EXR written after it is 8-bit (the log says so)."""
    from nodes.common.stream import map_frames
    from nodes.stylize.filters import sketch as fn
    return map_frames(ctx, video, lambda f: fn(f, style, detail))


@node("stylize.cartoon", title="Cartoon", category="Stylize", temporal_radius=0)
def cartoon(ctx, video: VIDEO, levels: int = Param(8, min=2, max=64, help="lightness bands, black to white; "
                                                                          "hues are kept, so greys stay grey"),
            edges: float = Param(1.0, zero="off", min=0.0, max=1.0, help="outline darkness; 0 = none"),
            smoothing: int = Param(2, min=0, max=8, help="bilateral passes that flatten colour regions")) -> VIDEO:
    """Flat colour regions with dark outlines (bilateral smoothing, lightness bands, adaptive edges).

    Its bands span black to white of the 8-bit sRGB picture: a deep plate's light above 1.0 falls in the top band,
    and an EXR written after it is 8-bit (the log says so)."""
    from nodes.common.stream import map_frames
    from nodes.stylize.filters import cartoon as fn
    return map_frames(ctx, video, lambda f: fn(f, levels, edges, smoothing))


@node("stylize.posterize", title="Posterize", category="Stylize", temporal_radius=0)
def posterize(ctx, video: VIDEO, levels: int = Param(6, min=2, max=64, help="levels per channel")) -> VIDEO:
    """Reduce each channel to a few fixed levels (the same bins every frame, so it does not flicker). A deep plate's
    float pixels get the same bins on their sRGB-coded values, and light above 1.0 bins of the same step above white."""
    from nodes.common.stream import levels_frames, map_frames
    from nodes.stylize.filters import posterize
    fn = lambda f: posterize(f, levels)     # noqa: E731
    return levels_frames(map_frames(ctx, video, fn), video, fn)


@node("stylize.color_transfer", title="Colour Transfer", category="Stylize", temporal_radius=0)
def color_transfer(ctx, video: VIDEO, style: IMAGE,
                   method: str = Param("reinhard", choices=("reinhard", "histogram"),
                                       help="reinhard: Lab mean and spread; histogram: per-channel distribution"),
                   strength: float = Param(1.0, min=0.0, max=1.0, help="0 = unchanged, 1 = the style's palette"),
                   spread: str = Param("clip", choices=SPREADS, help=SPREAD_HELP)) -> VIDEO:
    """Give the clip the palette of a style image (Reinhard Lab statistics or histograms), by default with one
    correction for the whole clip. A clip with transparency is corrected on its colour taken off black and keeps its
    alpha; a deep plate's float pixels get the same correction, unrounded (as color.match's)."""
    from nodes.color.match import matcher, shot_frames
    from nodes.common.stream import colour_float, colour_frames
    fit = matcher(style, method, strength, shot_frames(video) if spread == "clip" else None,
                  name="stylize.color_transfer: the style image")
    return colour_float(colour_frames(ctx, video, fit), video, fit.linear)


@node("stylize.temporal", title="Temporal Consistency", category="Stylize", temporal_radius=60)
def temporal(ctx, video: VIDEO, source: VIDEO,
             blend: float = Param(0.8, min=0.0, max=0.98,
                                  help="weight of the previous (warped) output where it can be trusted"),
             warmup: int = Param(24, min=0, max=60,
                                 help="frames the blending has run for at least at any frame: it restarts every "
                                      "max(warmup, 8) frames, from each frame's index alone, so a part renders "
                                      "the full render's pixels"),
             quality: str = Param("medium", choices=("fast", "medium", "best"), help="optical flow quality")) -> VIDEO:
    """Stop a per-frame stylization from shimmering: blend each frame with the last, warped by flow.

    `video` is the stylized clip, `source` the original it was made from; flow and occlusions
    are measured on the source. Where the previous output is occluded or the source changed,
    the fresh stylized frame is used as is, so new content appears at once without ghosts. A deep stylized plate's
    float pixels (a kuwahara of an EXR) are blended alike, unrounded and past 1.0."""
    from nodes.stylize.temporal import temporal_clip
    if video.length != source.length or video.size != source.size:
        raise NodeError(f"stylize.temporal: video {video!r} and source {source!r} must have the same length and "
                        f"size (connect the clip the stylization was made from)")
    return temporal_clip(ctx, video, source, blend=blend, warmup=warmup, quality=quality)


@node("stylize.adain", title="Neural Style (AdaIN)", category="Stylize", device="gpu", temporal_radius=0)
def adain(ctx, video: VIDEO, style: IMAGE,
          encoder_path: str = Param("", kind="path", help="vgg_normalised.pth of the AdaIN release"),
          decoder_path: str = Param("", kind="path", help="decoder.pth of the AdaIN release"),
          alpha: float = Param(1.0, min=0.0, max=1.0, help="style strength")) -> VIDEO:
    """Arbitrary style transfer (AdaIN, Huang & Belongie 2017) with weights from local files.

    Kinograph ships no weights: point the paths at the reference release's encoder and
    decoder state dicts. A style image larger than 512 px on its shorter side is brought down to
    that, as the release does (the scale its styles were learned at). Follow with stylize.temporal
    for steady video. The networks were trained on 8-bit sRGB pictures (0..1) and paint within them: a deep plate
    (EXR, 16-bit) is stylized as its 8-bit picture, its light above 1.0 white, and the log says so."""
    from nodes.common.stream import map_frames
    from nodes.stylize.adain import StyleTransfer
    net = StyleTransfer(encoder_path, decoder_path, style, ctx.device, alpha)
    return map_frames(ctx, video, net)
