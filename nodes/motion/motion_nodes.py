"""Motion nodes: point tracks, motion brushes and optical flow as FLOW values."""
from graph_engine import Input, NodeError, Param, node
from graph_engine.schedule import EASINGS
from graph_engine.types import FLOW, MASK, TRACKS, VIDEO

from .camera_nodes import user_errors


@node("motion.tracks", title="Point Tracks", category="Motion", temporal_radius=0,
      outputs={"tracks": TRACKS, "flow": FLOW, "preview": VIDEO})
def tracks(ctx,
           background: VIDEO = Input(optional=True, help="drawn under the preview; also gives the size"),
           points: str = Param("", kind="json", help='JSON: {"tracks": [{"points": [[x, y], ...], '
                                                     '"frames": [0, 24]}, ...]}'),
           path: str = Param("", kind="path", help="a JSON file in the same form (instead of points)"),
           frames: int = Param(25, min=2, max=100000, help="length, unless the JSON sets it"),
           width: int = Param(0, zero="auto", min=0, max=16384, help="picture width; 0 = the background's"),
           height: int = Param(0, zero="auto", min=0, max=16384, help="picture height; 0 = the background's"),
           interpolation: str = Param("cubic", choices=EASINGS, help="between control points"),
           flow_mode: str = Param("sparse", choices=("sparse", "dense"),
                                  help="sparse: motion only around the points; dense: everything follows"),
           sigma: float = Param(0.0, zero="auto", min=0.0, max=10000.0, help="flow spread in pixels; 0 = automatic"),
           trail: int = Param(0, zero="all", min=0, max=100000, help="preview trail length in frames; 0 = whole path"),
           ):
    """Point trajectories drawn as splines through control points, as tracks, flow and a preview.

    Each track passes through its points at the given frames (default: spread evenly),
    linear, cubic (Catmull-Rom) or eased in between, and holds still outside them.
    Coordinates are pixels (x right, y down, top-left pixel centre at 0, 0); add
    `"normalized": true` for fractions of the size, `"visible": [first, last]` on a track to
    limit where it exists. The flow output (frame i to i+1) is sparse Gaussian blobs around
    the points (what drag-style models take) or dense (the whole picture follows)."""
    from .tracks import draw_tracks, parse_tracks, tracks_to_flow
    if bool(points.strip()) == bool(path):
        raise NodeError("give the tracks either as JSON text in 'points' or as a JSON file in 'path'")
    w = width or (background.width if background is not None else 0)
    h = height or (background.height if background is not None else 0)
    fps = background.fps if background is not None else 24.0
    with user_errors():
        spec = points
        if path:
            # utf-8-sig: Windows editors start the file with a byte-order mark, which json refuses
            with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
                spec = f.read()
        tr = parse_tracks(spec, frames, w, h, interpolation)
        flow = tracks_to_flow(tr, flow_mode, sigma, fps)
    ctx.report(tracks=tr.count, frames=tr.length)
    return {"tracks": tr, "flow": flow, "preview": draw_tracks(tr, background, trail, fps)}


@node("motion.brush", title="Motion Brush", category="Motion")
def brush(ctx,
          mask: MASK = Input(help="the region that moves (a painted IMAGE works too: white moves)"),
          flow: FLOW = Input(optional=True, help="motion outside the region (default: none)"),
          frames: int = Param(25, min=2, max=100000, help="length of the clip the motion is for"),
          direction: float = Param(0.0, kind="schedule",
                                   help="degrees on screen: 0 = right, 90 = up, 180 = left, 270 = down"),
          speed: float = Param(2.0, kind="schedule", help="pixels per frame"),
          feather: float = Param(4.0, min=0.0, max=1000.0, help="soft edge of the region, pixels"),
          follow: bool = Param(True, help="the region travels with its motion"),
          ) -> FLOW:
    """Paint motion onto a region: it moves in a direction at a speed, both schedules.

    Gives flow fields (frame i to i+1) for motion-guided generation or noise warping; with
    an input flow the region's motion replaces it inside the (feathered) region."""
    from .flowfield import brush_flow
    with user_errors():
        return brush_flow(mask, frames, direction, speed, feather, follow, flow)


@node("motion.flow", title="Optical Flow", category="Motion")
def flow(ctx, video: VIDEO,
         quality: str = Param("medium", choices=("fast", "medium", "best"), help="OpenCV DIS preset")) -> FLOW:
    """Estimate the motion of a clip (frame i to i+1), so a real clip's motion can drive a generation.

    Computed lazily, a pair at a time, when something reads the fields."""
    from .flowfield import flow_from_video
    with user_errors():
        return flow_from_video(video, quality)


@node("motion.flow_preview", title="Flow Preview", category="Motion")
def flow_preview(ctx, flow: FLOW,
                 max_motion: float = Param(0.0, zero="auto", min=0.0, max=10000.0,
                                           help="pixels shown at full colour; 0 = each field's largest")) -> VIDEO:
    """Show flow fields as colour (hue = direction, saturation = speed, white = still) with arrows."""
    from .flowfield import flow_preview as show
    return show(flow, max_motion)
