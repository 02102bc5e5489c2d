"""Frame interpolation nodes: optical-flow in-betweens and RIFE (own IFNet, user's weights)."""
from graph_engine import Param, node
from graph_engine.types import VIDEO

_FACTOR = dict(min=2, max=16, help="output frames per input pair: (N-1)*factor+1 frames in all")
_FPS = dict(zero="auto", min=0.0, max=480.0, help="target frame rate; 0 = use factor (then in-betweens sit at k/factor)")
_CUTS = dict(zero="off", min=0.0, max=1.0, help="colour-histogram change (0-1) above which a pair is a scene cut (above half "
                                    "of it, where no motion matches the two frames either) and its in-betweens "
                                    "repeat the nearer frame instead of blending; 0 = never")
_MULT = dict(help="per-pair overrides of factor: 'PAIR:N' or 'FIRST-LAST:N', comma-separated, pairs counted "
                  "from 0, e.g. '0:4, 10-19:1' (1 or 0 = no in-betweens for those pairs)")


# An in-between of frames i and i+1 also reads frames i-1 and i+2 (which of the pair to trust).
@node("interpolate.flow", title="Flow Interpolation", category="Interpolation", temporal_radius=2)
def flow(ctx, video: VIDEO,
         factor: int = Param(2, **_FACTOR),
         fps: float = Param(0.0, **_FPS),
         quality: str = Param("medium", choices=("fast", "medium"),
                              help="medium picks, per pixel, the motion under which both frames agree "
                                   "(much better on fast objects over a background); fast skips that "
                                   "and uses a cheaper flow, ~1.5x the speed"),
         scene_threshold: float = Param(0.3, **_CUTS),
         multipliers: str = Param("", **_MULT)) -> VIDEO:
    """Raise the frame rate with motion-compensated in-betweens from dense optical flow.

    Flow is estimated both ways between neighbouring frames and forward-splatted to each
    in-between time, so moving objects keep their shape and what they cover or uncover
    comes from the frame where it is visible; pixels entering at the frame border come from
    the frame that has them. Both frames are sampled between their pixels by cubic
    convolution, which keeps fine texture (foliage, windows) as sharp as the source. Where
    the flow fits the frames badly (something moving behind a fence), it may take a motion
    found a patch away, if both directions agree. Where the
    flow is unsure (the edge of a fast object), each pixel takes the nearby motion under
    which the two frames match best, down to the single full-size pixel at a motion boundary; where the motion stays unsure, the in-between
    leans on no single frame or motion (a blend errs less than a wrong bet). Where one frame
    of the pair shows what the other hides, the frames before and after the pair decide
    which of the two to trust, and show where a motion speeds up or slows down (a face, a
    held camera): the in-between follows that curve rather than the straight path.
    Source frames pass through untouched (bit-exact). Scene cuts
    are detected and never blended across. Runs on the CPU; any output frame range can be
    rendered on its own (sharded renders match a full pass)."""
    from nodes.interpolate.flow_interp import interpolate_clip
    return interpolate_clip(video, factor=factor, fps=fps, quality=quality, scene_threshold=scene_threshold,
                            multipliers=multipliers, ctx=ctx)


def _rife_file(name: str):
    from nodes.interpolate.rife import find_weights
    return find_weights(name, required=False)


def _rife_check(name: str):
    from nodes.interpolate.rife import check_model
    return check_model(name)


@node("interpolate.rife", title="RIFE Interpolation", category="Interpolation", device="gpu", temporal_radius=1)
def rife(ctx, video: VIDEO,
         model: str = Param("rife49.pth", locate=_rife_file, check=_rife_check,
                            help="RIFE 4.0-4.26 weights: a file name in a 'rife' model folder (ComfyUI-Frame-"
                                 "Interpolation's ckpts/rife is searched too; rife49 finds rife49.pth or "
                                 ".safetensors), or a path. The release is read from the file itself"),
         factor: int = Param(2, **_FACTOR),
         fps: float = Param(0.0, **_FPS),
         scale: float = Param(1.0, choices=(0.25, 0.5, 1.0, 2.0, 4.0),
                              help="flow resolution: 0.5 or 0.25 for 4K footage and large motion, 2.0 or 4.0 for "
                                   "small frames and fine detail (ComfyUI's scale_factor)"),
         ensemble: bool = Param(False, help="also run the frames in reverse order and average: a little better, "
                                            "twice the time; RIFE 4.21 and later were trained without it and ignore it"),
         precision: str = Param("auto", choices=("auto", "fp32", "fp16", "bf16"),
                                help="number format on a CUDA GPU (auto = fp16, half the memory and about twice "
                                     "as fast); the CPU and Apple GPUs always use fp32"),
         batch: int = Param(4, min=1, max=64, help="in-between frames computed together; more is faster on a GPU "
                                                   "and takes more memory"),
         scene_threshold: float = Param(0.3, **_CUTS),
         multipliers: str = Param("", **_MULT)) -> VIDEO:
    """Raise the frame rate with RIFE, a learned interpolator, from weights you already have.

    Kinograph's own implementation of the RIFE network (IFNet) runs every published release
    from 4.0 to 4.26, including the lite and heavy variants; which one a file holds is read
    from its contents, whatever its name. Nothing is downloaded. Timing, scene cuts and
    per-pair multipliers work exactly as in Flow Interpolation. Runs on the selected device
    (a GPU is much faster)."""
    from nodes.interpolate.rife import rife_clip
    return rife_clip(video, model, factor=factor, fps=fps, scale=scale, ensemble=ensemble, precision=precision,
                     batch=batch, scene_threshold=scene_threshold, multipliers=multipliers, device=ctx.device,
                     ctx=ctx)
