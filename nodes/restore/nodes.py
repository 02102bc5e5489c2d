"""Restoration nodes: deflicker, dust, stabilize, deblur, denoise, deinterlace, inverse telecine (all stream chunk by
chunk)."""
from graph_engine import NodeError, Param, node
from graph_engine.types import VIDEO
from nodes.restore.stabilize import CROP_MAX


@node("restore.deflicker", title="Deflicker", category="Restoration", temporal_radius=48)
def deflicker(ctx, video: VIDEO,
              radius: int = Param(12, min=1, max=48, help="frames either side averaged (sigma = radius / 2)"),
              strength: float = Param(1.0, min=0.0, max=1.0, help="1 = full correction, 0 = unchanged"),
              mode: str = Param("luma", choices=("luma", "rgb"),
                                help="luma: one gain per frame; rgb: one per channel (colour flicker)"),
              step_threshold: float = Param(0.5, min=0.05, max=5.0,
                                            help="frame-to-frame log-brightness jumps above this are real "
                                                 "lighting changes and are kept"),
              tone: str = Param("gain+offset", choices=("gain+offset", "gain"),
                                help="gain+offset: exposure flicker and flare / lifted blacks; gain: exposure "
                                     "flicker only"),
              local: bool = Param(True, help="also even out flicker in parts of the frame (a flickering lamp, "
                                             "uneven gate light, mains bands), region by region")) -> VIDEO:
    """Remove fast brightness (and colour) flicker while keeping real lighting changes.

    Consecutive frames are aligned by optical flow and their tone change (a gain and an offset:
    exposure flicker, flare or a lifted black) is measured on matching pixels, so camera and object
    motion are not mistaken for flicker. With local on, each region of a coarse grid also gets its
    own gain, for flicker in part of the frame (a lamp, uneven gate light, mains bands from a rolling
    shutter). Each frame's tone, and each region's gain, is pulled to a temporal average of its
    neighbours: slow fades and exposure ramps pass, scene cuts and sudden steps larger than
    `step_threshold` are never smoothed across. A clip without flicker comes back all but unchanged."""
    from nodes.restore.deflicker import deflicker_clip
    return deflicker_clip(ctx, video, radius=radius, strength=strength, mode=mode, step_threshold=step_threshold,
                          tone=tone, local=local)


@node("restore.dust", title="Dust Removal", category="Restoration", temporal_radius=2)
def dust(ctx, video: VIDEO,
         threshold: float = Param(24.0, min=4.0, max=128.0,
                                  help="how much darker or lighter than both neighbours a speck is, in 8-bit "
                                       "levels; lower it for faint dirt, raise it for heavy grain"),
         size: int = Param(24, min=2, max=200, help="largest speck, pixels across: anything larger on one "
                                                    "frame only is taken for real motion")) -> VIDEO:
    """Remove dust, dirt and hairs from scanned film: specks that are on one frame and not the next.

    Each frame is compared with its two neighbours, aligned by optical flow: pixels that differ from
    both the same way while the neighbours agree are a speck, and are filled from the neighbours.
    The rest of the frame is left exactly as it is. The first and last frames are compared with the
    two frames after (before) them."""
    from nodes.restore.dust import dust_clip
    return dust_clip(ctx, video, threshold=threshold, size=size)


@node("restore.stabilize", title="Stabilize", category="Restoration", temporal_radius=60)
def stabilize(ctx, video: VIDEO,
              strength: float = Param(1.0, min=0.0, max=1.0, help="share of the shake removed"),
              radius: int = Param(20, min=1, max=60, help="smoothing window, frames either side"),
              border: str = Param("crop", choices=("crop", "reflect", "replicate", "black"),
                                  help="crop: zoom in so no border shows; otherwise fill the uncovered edge"),
              crop: float = Param(0.05, min=0.0, max=CROP_MAX,
                                  help="crop mode: share of each side given up (the zoom); too little for the "
                                       "shake leaves some in, and the log says the crop it needed"),
              rotation: bool = Param(True, help="also smooth camera roll and zoom, not only shifts")) -> VIDEO:
    """Steady shaky footage: track features, smooth the camera path, warp frames onto it.

    Corners are tracked between frames and a shift/rotation/scale fitted robustly, so moving
    objects do not pull the estimate. The camera path is smoothed with a local quadratic fit
    (intended pans stay, jitter goes). Tracking failures such as scene cuts split the path. A deep plate's float
    pixels (EXR, 16-bit, DPX) are moved by the same warps, unrounded and past 1.0."""
    from nodes.restore.stabilize import stabilize_clip
    if border == "crop" and crop <= 0:
        # Crop mode keeps every correction inside the zoom's margin; with none, each was shortened to nothing and
        # the clip came back unchanged, no word said.
        raise NodeError("restore.stabilize: border crop with crop 0 leaves no margin to move the frames in, so "
                        "nothing would be steadied: set crop (0.03-0.08 suits hand-held shake), or set border to "
                        "reflect, replicate or black to keep the frame size and fill the uncovered edge")
    return stabilize_clip(ctx, video, radius=radius, strength=strength, border=border, crop=crop,
                          rotation=rotation)


@node("restore.deblur", title="Deblur", category="Restoration", temporal_radius=0)
def deblur(ctx, video: VIDEO,
           method: str = Param("wiener", choices=("unsharp", "wiener", "richardson_lucy"),
                               help="unsharp: boost edges (fast, mild); wiener: one-step deconvolution; "
                                    "richardson_lucy: iterative, sharper, slower"),
           kernel: str = Param("auto", choices=("auto", "gaussian", "motion", "file"),
                               help="auto: estimate a Gaussian blur from the clip; file: a PSF image or .npy"),
           sigma: float = Param(1.5, min=0.3, max=20.0, help="Gaussian kernel / unsharp radius, pixels"),
           length: float = Param(9.0, min=2.0, max=100.0, help="motion kernel length, pixels"),
           angle: float = Param(0.0, min=-180.0, max=180.0, help="motion kernel direction, degrees"),
           kernel_path: str = Param("", kind="path", help="PSF image (grayscale) or .npy when kernel = file"),
           amount: float = Param(1.0, min=0.0, max=5.0, help="unsharp: how much detail to add"),
           balance: float = Param(0.0, zero="auto", min=0.0, max=1.0,
                                  help="wiener: noise-to-signal ratio; 0 = from the noise in each frame; raise "
                                       "it if the result rings or is noisy"),
           iterations: int = Param(20, min=1, max=200, help="richardson_lucy: iterations")) -> VIDEO:
    """Sharpen blurry footage: unsharp mask, or Wiener / Richardson-Lucy deconvolution.

    The kernel is a Gaussian (given, or estimated from a few frames by how much strong edges
    soften when re-blurred), a straight motion streak, or your own PSF file. Estimation
    assumes roughly uniform defocus-like blur; give the kernel for motion blur. A deep plate's float pixels (EXR,
    16-bit, DPX) are sharpened too, unrounded and past 1.0."""
    from nodes.restore import deblur as d
    from nodes.common.stream import levels_frames, map_frames
    if method == "unsharp":
        fn = lambda f: d.unsharp(f, sigma, amount)     # noqa: E731
        return levels_frames(map_frames(ctx, video, fn), video, fn)
    if kernel == "file" and not kernel_path:
        raise NodeError("restore.deblur: kernel = file needs kernel_path (a grayscale PSF image or .npy)")
    samples = [video.frame(i) for i in sorted({0, video.length // 3, 2 * video.length // 3})] \
        if kernel == "auto" and video.length else []
    try:
        most = (video.height, video.width)
        k = d.choose_kernel(kernel, sigma, length, angle, kernel_path, samples, most)
        d.check_size(k.shape, most, "give a smaller sigma or length")     # a Gaussian or streak on tiny frames
    except (OSError, ValueError) as e:
        raise NodeError(f"restore.deblur: {e}") from None
    ctx.report(kernel_size=list(k.shape))
    # Each works on 8-bit frames or on a deep plate's float levels alike (levels_frames).
    fn = (lambda f: d.wiener(f, k, balance)) if method == "wiener" else (lambda f: d.richardson_lucy(f, k, iterations))
    return levels_frames(map_frames(ctx, video, fn), video, fn)


@node("restore.denoise", title="Temporal Denoise", category="Restoration", temporal_radius=4)
def denoise(ctx, video: VIDEO,
            radius: int = Param(2, min=1, max=4, help="frames either side aligned and averaged"),
            strength: float = Param(1.0, min=0.1, max=4.0,
                                    help="how different an aligned neighbour may be and still count"),
            sigma: float = Param(0.0, zero="auto", min=0.0, max=100.0, help="noise level in 8-bit levels; 0 = estimate"),
            spatial: float = Param(1.5, min=0.0, max=4.0,
                                   help="edge-preserving smoothing of the noise left after the average, scaled "
                                        "to it; 0 = average in time only (keeps the finest grain)")) -> VIDEO:
    """Remove noise by averaging each frame with motion-aligned neighbours.

    Neighbours are warped onto the frame by optical flow; where one disagrees by more than
    the noise explains (occlusion, flow error) it is left out, so moving things do not ghost. The
    noise averaging leaves (more where neighbours drop out) is then smoothed within the frame."""
    from nodes.restore.denoise import denoise_clip
    return denoise_clip(ctx, video, radius=radius, strength=strength, sigma=sigma, spatial=spatial)


@node("restore.deinterlace", title="Deinterlace", category="Restoration", temporal_radius=1)
def deinterlace(ctx, video: VIDEO,
                field_order: str = Param("auto", choices=("auto", "top field first", "bottom field first"),
                                         help="auto: read it from the motion in the pictures (DV is usually "
                                              "bottom first, HD broadcast top first)"),
                rate: str = Param("frame", choices=("frame", "field"),
                                  help="frame: one picture per frame, same rate; field: one per field, twice the "
                                       "frames and frame rate (50i -> 50p), all the motion kept")) -> VIDEO:
    """Make interlaced footage (DV, broadcast, VHS and DVD captures, their image sequences) progressive.

    Each field's missing lines are filled by bwdif (motion-adaptive: still areas keep both fields'
    full detail, moving ones are interpolated). With field_order auto the order is read from the
    motion; a clip that shows no combing is passed through unchanged. io.load_video already
    deinterlaces files that say they are interlaced, one picture per frame: use this node for the
    ones that do not, for frame sequences, or for one picture per field (load with deinterlace off).
    Film transferred to video (telecine) is whole again with restore.ivtc instead. A deep plate's float pixels (EXR,
    16-bit, DPX) are deinterlaced alike, at their own depth and past 1.0."""
    from nodes.common.stream import Progress
    from nodes.restore import deinterlace as di
    if field_order == "auto":
        found = di.field_evidence(di.sample_pairs(video)).verdict()
        if found == "progressive":
            ctx.log("restore.deinterlace: the fields of each frame show one moment (no combing): the clip looks "
                    "progressive and is passed through; set field_order to deinterlace it anyway")
            ctx.report(field_order="progressive")
            return video
        if found == "unknown":
            ctx.log("restore.deinterlace: too little motion to read the field order: top field first assumed "
                    "(set field_order if the motion steps back and forth)")
        tff = found != "bff"
    else:
        tff = field_order == "top field first"
    ctx.report(field_order="tff" if tff else "bff")
    per_field = rate == "field"
    return di.deinterlace_clip(ctx, video, tff, per_field, Progress(ctx, video.length * (2 if per_field else 1)))


@node("restore.ivtc", title="Inverse Telecine", category="Restoration", temporal_radius=7)
def ivtc(ctx, video: VIDEO,
         pulldown: str = Param("3:2", choices=("3:2", "2:2"),
                               help="3:2: film shown as NTSC video (29.97 -> 23.976 fps, one frame in five "
                                    "dropped); 2:2: film on PAL with its fields a frame out of step (fields "
                                    "re-paired, no frames dropped)")) -> VIDEO:
    """Undo telecine pulldown: film frames back line for line, without deinterlacing them.

    Each frame's top field is paired with the bottom field (of the frame before, the same or the
    next) that combs least; with 3:2 the repeated frame of every five is then dropped. Frames no
    pairing makes whole (video shots or titles cut into the film) are deinterlaced. Use this on
    film transferred to video; deinterlace video shot on video cameras (restore.deinterlace). A deep plate's float
    pixels (EXR, 16-bit, DPX) are woven as its 8-bit frames are, line for line at their own depth."""
    from nodes.common.stream import Progress
    from nodes.restore.ivtc import CYCLE, KEEP, ivtc_clip, output_length
    decimate = pulldown == "3:2"
    return ivtc_clip(ctx, video, Progress(ctx, output_length(video.length, KEEP if decimate else CYCLE)), decimate)
