"""Metric nodes: each returns its mean as FLOAT and reports it with the per-frame series."""
from graph_engine import Input, NodeError, Param, node
from graph_engine.types import FLOAT, VIDEO


CHANNELS = Param("rgb", choices=("rgb", "y"), help="rgb: the R, G, B values; y: BT.601 luma (16-235), as "
                                                    "super-resolution papers measure")


def _report(ctx, values, metric: str, channels: str = "rgb", **extra) -> float:
    """Report a series and return its mean, with the metric's unit and definition. Frames the metric could not
    measure (NaN; see series.NOT_MEASURED) are left out of the mean, named in the log and the report, and null in
    the series; none measured at all is an error, not a score. PSNR also leaves out frames equal to the
    reference (series.identical) and says so."""
    from nodes.metrics.series import NOT_MEASURED, PAIRWISE, as_json, conventions, summary, unmeasured
    value = summary(values, metric)
    missing = unmeasured(values, 1 if metric in PAIRWISE else 0)
    if value is None and missing:
        raise NodeError(f"{ctx.node_id}: no frame could be measured: {NOT_MEASURED[metric]} in every pair, so "
                        f"there is no {metric} to report")
    if value is None and metric in PAIRWISE:
        raise NodeError(f"{ctx.node_id}: {metric} compares each frame with the one before, so it needs at least two "
                        f"frames; the clip has {len(values) + 1}")
    if value is None:
        raise NodeError(f"{ctx.node_id}: the clip has no frames to measure")
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        ctx.log(f"{ctx.node_id}: {len(missing)} of {len(values)} frames not measured ({shown}): "
                f"{NOT_MEASURED[metric]}; the value is the mean of the others")
        extra["unmeasured"] = missing
    extra = {**conventions(metric, values, channels), **extra}
    if "identical_note" in extra:
        ctx.log(f"{ctx.node_id}: {extra['identical_note']}; PSNR of the mean MSE over all frames (ffmpeg's "
                f"average): {extra['psnr_of_mean_mse']:.2f} dB")
    ctx.report(value=value, per_frame=as_json(values), **extra)
    return value


@node("metrics.psnr", title="PSNR", category="Metrics", output=True)
def psnr(ctx, video: VIDEO, reference: VIDEO, channels: str = CHANNELS) -> FLOAT:
    """Peak signal-to-noise ratio against a reference clip, in dB (higher is closer).

    Per frame: 10 log10(255^2 / MSE), the MSE over the R, G, B values of the frames as decoded (8-bit, full
    range; a 10-bit file is measured after its conversion to 8 bits), as ffmpeg's psnr filter on rgb24 input.
    The value is the mean of the per-frame values. A frame equal to its reference has infinite PSNR: it shows
    as 100 dB in the series and is left out of the mean (named in the log). Also reported: `psnr_of_mean_mse`,
    the PSNR of the MSE over all frames, which is the `average` ffmpeg prints. ffmpeg run on two video files
    compares their Y, U, V planes instead (`-lavfi "[0]format=gbrp[a];[1]format=gbrp[b];[a][b]psnr"` makes it
    compare RGB), which differs by several dB. channels=y compares BT.601 luma instead (Y = 16 +
    (65.481 R + 128.553 G + 24.966 B) / 255, not rounded; peak 255), as super-resolution papers do."""
    from nodes.metrics import series
    return _report(ctx, series.psnr(ctx, video, reference, channels), "psnr", channels)


@node("metrics.ssim", title="SSIM", category="Metrics", output=True)
def ssim(ctx, video: VIDEO, reference: VIDEO, channels: str = CHANNELS) -> FLOAT:
    """Structural similarity against a reference clip (1 = identical).

    Wang et al. 2004 per frame: Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, on each of R, G, B
    (8-bit, full range) and averaged, leaving out a 5-pixel border, as scikit-image's
    structural_similarity(gaussian_weights=True, use_sample_covariance=False, data_range=255). The value
    is the mean over frames. ffmpeg's ssim filter is x264's SSIM, not this one: 8x8 windows on a
    4-pixel grid, and a luminance constant 1/64 of C1. It reads a thousandth or so apart on
    well-exposed footage (a 1080p minute of bikes: 0.918 against 0.919), a few hundredths on small
    noisy frames, and far lower where the picture is near black (0.75 against 0.94 on a test pattern).
    channels=y measures BT.601 luma alone, as for PSNR."""
    from nodes.metrics import series
    return _report(ctx, series.ssim(ctx, video, reference, channels), "ssim", channels)


@node("metrics.warp_error", title="Warping Error", category="Metrics", output=True)
def warp_error(ctx, video: VIDEO, source: VIDEO = Input(optional=True, help="clip to measure flow on "
                                                                           "(e.g. the unstylized original)"),
               flow: str = Param("dis", choices=("dis", "farneback"),
                                 help="dis: OpenCV's DIS (finest preset), the most exact here; farneback: a flow "
                                      "independent of the DIS flow Kinograph's temporal nodes use")) -> FLOAT:
    """Temporal consistency: each frame vs the previous one warped onto it by optical flow (lower is steadier).

    Lai et al. 2018's E_warp: mean squared RGB difference (values in [0, 1]) over pixels the
    forward-backward flow check finds visible in both frames. Flow is measured on `source`
    when given (so a stylization is judged against the motion of the original), else on
    the video itself. A pair with (almost) no pixel visible in both frames (noise, a cut) is not
    measured: it is left out of the mean and named in the log. Lai et al. used FlowNet2, so the
    numbers compare with each other, not with published ones. To judge a method built on DIS flow
    (stylize.temporal), also read flow=farneback: DIS judges it along its own kind of flow (on bikes,
    a fast pan: 87% steadier by DIS, 75% by Farneback, which is less exact there; on slow footage
    both read 97%)."""
    from nodes.metrics import series
    return _report(ctx, series.warp_error(ctx, video, source, flow), "warp_error", flow=flow)


@node("metrics.flicker", title="Flicker", category="Metrics", output=True)
def flicker(ctx, video: VIDEO) -> FLOAT:
    """Frame-to-frame brightness instability, in 8-bit levels (lower is steadier).

    Per pair of frames: in each region of a 4x4 grid, the mean change of luma from the previous frame
    carried onto this one by optical flow (so motion is not read as flicker), as a magnitude; the mean
    over the regions. A whole-frame change of d levels reads d; a flicker of one region reads its share.
    A pair with (almost) no pixel visible in both frames (a cut) is not measured and named in the log."""
    from nodes.metrics import series
    return _report(ctx, series.flicker(ctx, video), "flicker")


@node("metrics.sharpness", title="Sharpness", category="Metrics", output=True)
def sharpness(ctx, video: VIDEO) -> FLOAT:
    """Variance of the Laplacian of luma per frame (higher is sharper; compare like with like)."""
    from nodes.metrics import series
    return _report(ctx, series.sharpness(ctx, video), "sharpness")


@node("metrics.motion", title="Motion", category="Metrics", output=True)
def motion(ctx, video: VIDEO) -> FLOAT:
    """Mean optical-flow magnitude between frames in pixels: how dynamic the clip is.

    Also reports `dynamic_degree`: the share of frame pairs moving more than 1% of the frame
    diagonal (a static, barely moving generation scores near 0)."""
    from nodes.metrics import series
    values = series.motion(ctx, video)
    diag = (video.width ** 2 + video.height ** 2) ** 0.5
    dynamic = sum(v > 0.01 * diag for v in values) / max(1, len(values))
    return _report(ctx, values, "motion", dynamic_degree=dynamic)


@node("metrics.report", title="Metrics Report", category="Metrics", output=True)
def report(ctx, video: VIDEO, reference: VIDEO = Input(optional=True, help="for psnr and ssim"),
           source: VIDEO = Input(optional=True, help="for warp_error's flow"),
           path: str = Param("out/metrics.json", kind="path", reads=False, beside=(".csv", ".png"), help="JSON file; the per-frame table "
                                                                                 "goes beside it as .csv, the "
                                                                                 "chart as .png"),
           metrics: str = Param("psnr, ssim, warp_error, flicker, sharpness, motion",
                                help="comma-separated; psnr/ssim are skipped without a reference"),
           channels: str = CHANNELS,
           overwrite: bool = Param(False, help="replace existing files Kinograph did not write")) -> FLOAT:
    """Measure several metrics at once; write them as JSON, a CSV table and a PNG chart of the per-frame series.

    The JSON gives each metric's value, unit, definition and per-frame series; the CSV has a row a frame
    and a column a metric (headed with its unit), for a spreadsheet.

    Returns the number of metrics written."""
    from nodes.metrics.report import write_report
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    info = write_report(ctx, video, names, path, reference=reference, source=source, overwrite=overwrite,
                        channels=channels)
    for p in (info["json"], info["csv"], info["chart"]):
        ctx.wrote(p)
    ctx.report(**info)
    return float(len(info["metrics"]))


@node("metrics.lpips", title="LPIPS", category="Metrics", output=True, device="gpu")
def lpips(ctx, video: VIDEO, reference: VIDEO,
          weights: str = Param("", kind="path", help="LPIPS linear-layer weights (alex.pth of the LPIPS release)"),
          backbone: str = Param("", kind="path", help="AlexNet ImageNet weights in torchvision's layout")) -> FLOAT:
    """Learned perceptual distance to a reference clip (LPIPS, AlexNet variant; lower is closer).

    Needs two local files: the LPIPS linear weights and the AlexNet backbone. Kinograph
    ships neither and never downloads them; a missing file is reported by name."""
    from nodes.metrics.learned import lpips_series
    return _report(ctx, lpips_series(ctx, video, reference, weights, backbone), "lpips")


@node("metrics.clip_score", title="CLIP Score", category="Metrics", output=True, device="gpu")
def clip_score(ctx, video: VIDEO, prompt: str = Param("", kind="text", help="the text the video should show"),
               model: str = Param("", kind="path", help="a local CLIP model folder (transformers format)")) -> FLOAT:
    """Text-video agreement: 100 x cosine similarity of CLIP image and text embeddings, per frame.

    Needs a CLIP model saved locally (e.g. openai/clip-vit-base-patch32 with its tokenizer);
    nothing is downloaded."""
    from nodes.metrics.learned import clip_series
    if not prompt.strip():
        raise NodeError("metrics.clip_score: give the prompt the video is meant to show")
    return _report(ctx, clip_series(ctx, video, prompt, model), "clip_score")


@node("metrics.fvd", title="FVD", category="Metrics", output=True, device="gpu")
def fvd(ctx, video: VIDEO, reference: VIDEO,
        detector: str = Param("", kind="path", help="I3D feature extractor as TorchScript (i3d_torchscript.pt)"),
        clip_frames: int = Param(16, min=2, max=64, help="frames per I3D clip"),
        stride: int = Param(4, min=1, max=64, help="frames between clip starts")) -> FLOAT:
    """Frechet Video Distance between a clip and a reference clip (lower is closer).

    Features of overlapping sub-clips from a local I3D TorchScript detector (the one used by
    StyleGAN-V and DIGAN); their Gaussian statistics are compared. FVD is a distribution
    metric: with one short clip per side it is noisy, so compare like with like."""
    from nodes.metrics.learned import fvd_value
    value, n = fvd_value(ctx, video, reference, detector, clip_frames, stride)
    ctx.report(value=value, clips=n)
    return value
