"""Upscaling nodes: plain resampling, multi-frame super-resolution, and learned single-image models."""
from typing import Optional

from graph_engine import Input, Param, node
from graph_engine.types import VIDEO
from nodes.common.models_dirs import as_given, locator

# The smallest tile worth running a network on; running out of memory halves the tile down to this.
MIN_TILE = 32


def _tile_size(tile) -> Optional[str]:
    """Tiles of a few pixels ran the network thousands of times a frame (tile 1: minutes for a 64x48 frame)."""
    if tile == 0 or not isinstance(tile, int) or tile >= MIN_TILE:
        return None
    return f"{tile} is too small a tile: use 0 (the whole frame at once) or {MIN_TILE} or more"


@node("upscale.resize", title="Resize (Upscale)", category="Upscale", temporal_radius=0)
def resize(ctx, video: VIDEO,
           scale: float = Param(2.0, min=0.05, max=16.0, help="size factor, used when width and height are 0"),
           width: int = Param(0, zero="auto", min=0, max=16384, help="output width; 0 = from scale (or from height, keeping "
                                                        "the aspect ratio)"),
           height: int = Param(0, zero="auto", min=0, max=16384, help="output height; 0 = from scale (or from width)"),
           method: str = Param("lanczos", choices=("lanczos", "bicubic", "area", "nearest"),
                               help="lanczos/bicubic to enlarge, area to shrink, nearest for pixel art"),
           sharpen: float = Param(0.0, zero="off", min=0.0, max=3.0, help="unsharp-mask amount after resizing (0 = off)")
           ) -> VIDEO:
    """Resize every frame by a factor or to a size, with an optional sharpening pass."""
    from nodes.upscale.resize import resize_clip
    return resize_clip(video, scale=scale, width=width, height=height, method=method, sharpen=sharpen, ctx=ctx)


@node("upscale.multiframe", title="Multi-frame Super-resolution", category="Upscale", temporal_radius=4)
def multiframe(ctx, video: VIDEO,
               scale: int = Param(2, min=2, max=4, help="size factor"),
               radius: int = Param(2, min=0, max=4, help="neighbours used on each side of a frame (0 = the frame "
                                                         "alone: back-projection sharpening only)")) -> VIDEO:
    """Upscale using the detail that motion spreads across neighbouring frames.

    Each output frame is reconstructed from its neighbours, aligned by optical flow and
    fused by iterative back-projection: the result, seen through each frame's motion and
    reduced to the input size, reproduces every input frame. Sub-pixel camera or object
    motion turns into real detail (+0.5 to +3 dB over Lanczos on real clips in
    bench/superres.py). Regions where the neighbours do not help (occlusions, cuts, motion
    blur, flow failures: each half of them fails to predict the other) fall back to the frame
    itself, so it does not do worse than the frame alone. No weights. A clip's alpha is resampled
    to the new size (Lanczos)."""
    from nodes.upscale.multiframe import multiframe_clip
    return _with_alpha(video, multiframe_clip(video, scale=scale, radius=radius, ctx=ctx))


@node("upscale.model", title="Upscale with Model", category="Upscale", device="gpu", temporal_radius=0)
def model(ctx, video: VIDEO,
          model: str = Param("RealESRGAN_x4plus.pth", kind="path", locate=locator("upscale_models"),
                             help="weights: a file name in an 'upscale_models' folder, or a path (.pth, "
                                  ".safetensors, ...); ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT and more"),
          tile: int = Param(512, zero="off", min=0, max=4096, check=_tile_size,
                            help=f"tile size in input pixels (0 = whole frame, else {MIN_TILE} or more); halved "
                                 "automatically when memory runs out"),
          overlap: int = Param(32, min=0, max=256, help="tile overlap in input pixels, cross-faded; at most a "
                                                        "quarter of the tile")) -> VIDEO:
    """Upscale every frame with a learned single-image super-resolution network.

    Any architecture spandrel recognises is loaded from your local file (nothing is
    downloaded); the scale comes from the model. Frames are processed in overlapping tiles
    so large frames fit in GPU memory. Runs on the selected device. A clip's alpha is resampled
    to the new size (Lanczos): the networks make colour only."""
    from nodes.upscale.model_sr import model_clip
    if tile and overlap > tile // 4:
        ctx.log(f"overlap {overlap} is more than a quarter of the {tile}-pixel tile: {tile // 4} is used")
    return _with_alpha(video, model_clip(video, as_given(model, ctx.workflow_dir), tile=tile, overlap=overlap,
                                         device=ctx.device, ctx=ctx))


def _with_alpha(video, out):
    """The upscaled clip with the source's alpha resampled to its size (lanczos), where it had one."""
    from nodes.upscale.resize import resized_matte
    return out.with_(matte=resized_matte(video.matte, out.size))


@node("upscale.seedvr2_pad", title="Pad for SeedVR2", category="Upscale", temporal_radius=0)
def seedvr2_pad(ctx, video: VIDEO) -> VIDEO:
    """Pad a clip, already resized to the size wanted, for SeedVR2's VAE and transformer (ComfyUI's
    SeedVR2Preprocess): black on the right and bottom to a multiple of 16 a side, the last frame repeated to 4n+1
    frames (a still stays one). Alpha is dropped; upscale.seedvr2_finish gives it back from the unpadded clip."""
    from nodes.upscale.seedvr2 import pad_clip
    return pad_clip(ctx, video)


@node("upscale.seedvr2_finish", title="Finish SeedVR2 Output", category="Upscale", temporal_radius=0)
def seedvr2_finish(ctx, video: VIDEO, reference: VIDEO = Input(help="the clip before upscale.seedvr2_pad"),
                   color_correction: str = Param("lab", choices=("lab", "wavelet", "adain", "none"),
                                                 help="lab: a*/b* histograms matched in CIE Lab over the wavelet "
                                                      "result (most faithful); wavelet: the reference's coarse colour "
                                                      "under the result's detail; adain: each channel's mean and "
                                                      "spread (a global tint); none: crop only")) -> VIDEO:
    """Crop SeedVR2's decoded frames back to the reference's frames and size (evened to whole pairs of pixels), bring
    their colours back to the reference's and give them its alpha and sound (ComfyUI's SeedVR2PostProcessing)."""
    from nodes.upscale.seedvr2 import finish_clip
    return finish_clip(ctx, video, reference, color_correction)
