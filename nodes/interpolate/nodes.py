"""Frame interpolation nodes: optical-flow in-betweens and RIFE (own IFNet, user's weights)."""
from graph_engine import Param, node
from graph_engine.types import VIDEO
from nodes.common.models_dirs import locator

_FACTOR = dict(min=2, max=16, help="output frames per input pair: (N-1)*factor+1 frames in all")
_FPS = dict(min=0.0, max=480.0, help="target frame rate; 0 = use factor (then in-betweens sit at k/factor)")
_CUTS = dict(min=0.0, max=1.0, help="colour-histogram change (0-1) above which a pair is a scene cut and its "
                                    "in-betweens repeat the nearer frame instead of blending; 0 = never")
_MULT = dict(help="per-pair overrides of factor: 'PAIR:N' or 'FIRST-LAST:N', comma-separated, pairs counted "
                  "from 0, e.g. '0:4, 10-19:1' (1 or 0 = no in-betweens for those pairs)")


@node("interpolate.flow", title="Flow Interpolation", category="Interpolation", temporal_radius=1)
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
    the frame that has them. Where the flow is unsure (the edge of a fast object), each
    pixel takes the nearby motion under which the two frames match best. Source frames pass through untouched (bit-exact). Scene cuts
    are detected and never blended across. Runs on the CPU; any output frame range can be
    rendered on its own (sharded renders match a full pass)."""
    from nodes.interpolate.flow_interp import interpolate_clip
    return interpolate_clip(video, factor=factor, fps=fps, quality=quality, scene_threshold=scene_threshold,
                            multipliers=multipliers, ctx=ctx)


@node("interpolate.rife", title="RIFE Interpolation", category="Interpolation", device="gpu", temporal_radius=1)
def rife(ctx, video: VIDEO,
         model: str = Param("rife46.safetensors", locate=locator("rife"),
                            help="RIFE 4.x (4.6 layout) weights: a file name in a 'rife' model folder, or a path "
                                 "(.safetensors, .pth, .pkl)"),
         factor: int = Param(2, **_FACTOR),
         fps: float = Param(0.0, **_FPS),
         scale: float = Param(1.0, choices=(0.25, 0.5, 1.0, 2.0),
                              help="flow resolution: 0.5 for 4K footage, 2.0 for small or detailed frames"),
         scene_threshold: float = Param(0.3, **_CUTS),
         multipliers: str = Param("", **_MULT)) -> VIDEO:
    """Raise the frame rate with RIFE, a learned interpolator, from weights you already have.

    Kinograph's own implementation of the RIFE 4.x network (IFNet) loads the published
    weight files; nothing is downloaded. Timing, scene cuts and per-pair multipliers work
    exactly as in Flow Interpolation. Runs on the selected device (a GPU is much faster)."""
    from nodes.interpolate.rife import rife_clip
    return rife_clip(video, model, factor=factor, fps=fps, scale=scale, scene_threshold=scene_threshold,
                     multipliers=multipliers, device=ctx.device, ctx=ctx)
