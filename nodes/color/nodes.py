"""Colour nodes: match to a reference, apply a .cube LUT, an ASC CDL, grade."""
from typing import Optional

from graph_engine import Input, NodeError, Param, node
from graph_engine.types import IMAGE, VIDEO


SPREADS = ("clip", "frame")
SPREAD_HELP = ("clip: one correction for the whole clip, from frames spread over it; frame: each frame matched on "
               "its own (the correction shifts as things come into frame)")


@node("color.match", title="Colour Match", category="Colour", temporal_radius=0)
def match(ctx, video: VIDEO, reference: IMAGE = Input(optional=True, help="match to this image instead of a frame"),
          frame: int = Param(0, min=0, help="reference frame of the video (when no reference image)"),
          method: str = Param("reinhard", choices=("reinhard", "histogram"),
                              help="reinhard: Lab mean and spread; histogram: per-channel distribution"),
          strength: float = Param(1.0, min=0.0, max=1.0, help="0 = unchanged, 1 = fully matched"),
          spread: str = Param("clip", choices=SPREADS, help=SPREAD_HELP)) -> VIDEO:
    """Match the clip's colours to a reference frame of the clip or to an image: by default one correction
    for the whole clip, as a colourist matches a shot. A clip with
    transparency is corrected on its colour taken off black and keeps its alpha. A deep plate's float pixels (EXR,
    16-bit, DPX) get the same correction, unrounded: light above 1.0 keeps its headroom."""
    from nodes.color.match import matcher, shot_frames
    from nodes.common.stream import colour_float, colour_frames
    name = "color.match: the reference image"
    if reference is None:
        if not 0 <= frame < video.length:
            raise NodeError(f"color.match: reference frame {frame} is outside the clip (0..{video.length - 1})")
        reference = video.frame(frame)
        name = f"color.match: reference frame {frame} of the clip"
    fit = matcher(reference, method, strength, shot_frames(video) if spread == "clip" else None, name)
    return colour_float(colour_frames(ctx, video, fit), video, fit.linear)


@node("color.lut", title="Apply LUT", category="Colour", temporal_radius=0)
def lut(ctx, video: VIDEO, path: str = Param("", kind="path", help="a .cube file (3D, 1D, or a 1D shaper and 3D) or a .3dl"),
        strength: float = Param(1.0, min=0.0, max=1.0, help="blend with the ungraded frame"),
        interpolation: str = Param("tetrahedral", choices=("tetrahedral", "trilinear"),
                                   help="3D LUTs: tetrahedral as DaVinci Resolve and Nuke apply them; trilinear as "
                                        "some players and older tools do")) -> VIDEO:
    """Apply a `.cube` or `.3dl` colour look-up table as DaVinci Resolve does: 3D tables interpolated tetrahedrally,
    1D linearly, a 1D shaper before the 3D table where the file has both; DOMAIN_MIN/MAX,
    LUT_*_INPUT_RANGE and LUT_IN/OUT_VIDEO_RANGE honoured. A clip with
    transparency is corrected on its colour taken off black and keeps its alpha. A deep plate's float pixels (EXR,
    16-bit, DPX) go through it unrounded, as OpenColorIO applies a LUT: light past the domain is held at its edge,
    the table's values above 1.0 are kept."""
    from nodes.common.lut import apply_lut, apply_lut_float, lattice_positions, parse_lut
    from nodes.common.stream import colour_float, colour_frames
    table = parse_lut(path)
    pos = lattice_positions(table)
    return colour_float(colour_frames(ctx, video, lambda f: apply_lut(f, table, strength, interpolation, pos)), video,
                        lambda lin: apply_lut_float(lin, table, strength, interpolation, linear=True))


def _triple_problem(name: str, positive: bool = False):
    def check(text) -> Optional[str]:
        from nodes.color.cdl import triple
        try:
            vals = triple(text, name)
        except NodeError as e:
            return str(e)
        return f"{name}={text!r}: every power must be above 0" if positive and (vals <= 0).any() else None
    return check


@node("color.cdl", title="ASC CDL", category="Colour", temporal_radius=0)
def cdl(ctx, video: VIDEO,
        path: str = Param("", kind="path", help="a .cc, .ccc or .cdl file (from set, an editor or Resolve); "
                                               "empty = the numbers below alone"),
        correction: str = Param("", help="which ColorCorrection of a .ccc/.cdl (its id); empty = the first"),
        slope: str = Param("1 1 1", check=_triple_problem("slope"), help="red green blue (one number: all three)"),
        offset: str = Param("0 0 0", check=_triple_problem("offset"), help="red green blue (one number: all three)"),
        power: str = Param("1 1 1", check=_triple_problem("power", positive=True),
                           help="red green blue, above 0 (one number: all three)"),
        saturation: float = Param(1.0, min=0.0, max=4.0, help="around Rec. 709 luma; 1 = unchanged")) -> VIDEO:
    """An ASC CDL as Resolve and Nuke apply it: out = clamp(in x slope + offset) ^ power per channel, then
    saturation. A file's correction comes first, the numbers here after it (a trim on top of the look
    from set); with no file, the numbers alone. A clip with
    transparency is corrected on its colour taken off black and keeps its alpha. A deep plate's float pixels
    (EXR, 16-bit, DPX) are corrected unclamped, as OCIO 2's CDL (Nuke's OCIOCDLTransform): light above 1.0
    keeps its headroom."""
    from nodes.color.cdl import apply_cdl, cdl_linear, node_corrections
    from nodes.common.stream import colour_float, colour_frames
    first, knobs = node_corrections(path, correction, slope, offset, power, saturation)
    return colour_float(colour_frames(ctx, video, lambda f: apply_cdl(f, first, knobs)), video,
                        lambda lin: cdl_linear(lin, first, knobs))


@node("color.grade", title="Colour Grade", category="Colour", temporal_radius=0)
def grade(ctx, video: VIDEO,
          exposure: float = Param(0.0, min=-6.0, max=6.0, help="stops (+1 doubles the light)"),
          contrast: float = Param(1.0, min=0.0, max=3.0, help="around mid-grey; 1 = unchanged"),
          saturation: float = Param(1.0, min=0.0, max=3.0, help="0 = black and white"),
          temperature: float = Param(6500.0, min=1500.0, max=15000.0,
                                     help="kelvin the scene should look lit by: lower is warmer; 6500 = unchanged"),
          tint: float = Param(0.0, min=-1.0, max=1.0, help="+ magenta, - green"),
          gamma: float = Param(1.0, min=0.2, max=5.0, help=">1 lifts mid-tones")) -> VIDEO:
    """Exposure, white balance, saturation, contrast and gamma in one pass.

    Exposure and white balance act on linear light like a camera; contrast and gamma act on
    the encoded picture like a grading panel. A clip with
    transparency is corrected on its colour taken off black and keeps its alpha. An EXR plate's float
    pixels are graded too, unclipped, for an EXR written after it: light above 1.0 keeps its headroom."""
    from nodes.color.grade import grade_linear, grader
    from nodes.common.stream import colour_float, colour_frames
    settings = (exposure, contrast, saturation, temperature, tint, gamma)
    return colour_float(colour_frames(ctx, video, grader(*settings)), video, lambda lin: grade_linear(lin, *settings))
