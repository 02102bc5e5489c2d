"""Relighting nodes."""
from graph_engine import Input, NodeError, Param, node
from graph_engine.types import VIDEO


def _hex_color(text: str):
    # The swatch is sRGB, as every colour picker shows it; the light multiplies linear light. Taken as linear
    # gains, #ffd8a8 lit a white wall (255, 236, 213): paler than the colour picked.
    from nodes.common.color import hex_rgb, srgb_to_linear
    return tuple(float(srgb_to_linear(v / 255.0)) for v in hex_rgb(text, "relight.directional: colour"))


@node("relight.directional", title="Directional Relight", category="Relight", temporal_radius=0)
def directional(ctx, video: VIDEO,
                depth: VIDEO = Input(optional=True, help="depth maps (bright = near), one per frame or one still"),
                normals: VIDEO = Input(optional=True, help="RGB normal maps (x right, y up, z out)"),
                azimuth: float = Param(45.0, min=-180.0, max=180.0, kind="schedule",
                                       help="degrees, light direction in the picture plane: 0 = from the right, 90 = from above, "
                                            "180 = from the left"),
                elevation: float = Param(35.0, min=0.0, max=90.0, kind="schedule", help="degrees above the picture plane: 0 = grazing, 90 = from the camera"),
                color: str = Param("#ffffff", kind="color", help="light colour"),
                intensity: float = Param(1.0, min=0.0, max=4.0,
                                         help="how strongly the light shades surfaces against the ambient light "
                                              "(those facing the camera keep their brightness)"),
                ambient: float = Param(0.35, min=0.0, max=2.0, help="light that reaches everything"),
                relief: float = Param(8.0, min=0.0, max=64.0, help="how strongly surface detail catches the light"),
                strength: float = Param(1.0, min=0.0, max=1.0, help="blend with the original lighting: 0 keeps it, 1 is fully relit")) -> VIDEO:
    """Re-shade footage with a movable coloured light (a classical Lambertian approximation).

    Normals come from a normal map or depth map when connected, else from the frame's own
    blurred brightness read as relief, which is a rough guess: expect embossed-looking
    texture rather than true geometry. No cast shadows or highlights. Azimuth and elevation
    are schedules, so the light can move over the clip."""
    from nodes.relight.shading import relight
    from nodes.common.stream import map_indexed
    rgb = _hex_color(color)
    for name, clip in (("depth", depth), ("normals", normals)):
        if clip is not None and clip.length not in (1, video.length):
            raise NodeError(f"relight.directional: {name} has {clip.length} frames; give one per frame of the "
                            f"video ({video.length}) or a single still")

    def shade(i, frame):
        pick = (lambda c: None if c is None else c.frame(min(i, c.length - 1)))
        return relight(frame, azimuth(i), elevation(i), rgb, intensity, ambient, strength, relief,
                       depth=pick(depth), normal_map=pick(normals))

    return map_indexed(ctx, video, shade)
