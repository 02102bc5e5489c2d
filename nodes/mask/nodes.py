"""Mask utilities. A MASK is a still (float H x W, 1 = the region) or a clip of masks, one per frame; every node
here keeps that shape, so a mask painted once and a mask tracked through a shot go through the same nodes."""
from __future__ import annotations

import numpy as np

from graph_engine import Input, Param, node
from graph_engine.types import IMAGE, MASK, VIDEO, add_hint
from nodes.common import masks
from nodes.common.models_dirs import locator
from nodes.mask.objects import OBJECTS
from nodes.mask.segment import box_problem, points_problem, prompt_problem, warm_imports

_CAT = "Mask"
# SAM 3's model parameter, the same for the text nodes (mask.segment, mask.segment_objects)
_SAM3 = dict(kind="path", locate=locator("sam2", "checkpoints"),
             help="SAM 3's Hugging Face folder (facebook/sam3) in a 'sam2' or 'sam3' model folder, or its path")
# A clip is not taken as a mask by itself (every mask input would then be offered for any video output): say how.
add_hint(MASK, VIDEO, "make a mask of it with mask.from_video (its luma, white = 1, or one channel), frame by frame")


@node("mask.grow", title="Grow Mask", category=_CAT)
def grow(ctx, mask: MASK, pixels: int = Param(4, min=-4096, max=4096, help="how far the region grows outwards; "
                                                                             "negative shrinks it"),
         tapered: bool = Param(True, help="rounded corners (a cross a pixel at a time); off: square corners")) -> MASK:
    """Grow (or shrink) the region, e.g. to redraw a seam around what is being replaced (ComfyUI's GrowMask)."""
    return masks.per_frame(mask, lambda m: masks.grow(m, pixels, tapered))


@node("mask.feather", title="Feather Mask", category=_CAT)
def feather(ctx, mask: MASK,
            radius: float = Param(8.0, min=0.0, max=1024.0, help="soft edge width in pixels (a Gaussian blur of "
                                                                  "the mask's edges); 0 keeps them hard"),
            left: int = Param(0, min=0, max=16384, help="fade the mask to 0 over this many pixels at the picture's "
                                                        "left border (ComfyUI's FeatherMask)"),
            top: int = Param(0, min=0, max=16384, help="as left, at the top border"),
            right: int = Param(0, min=0, max=16384, help="as left, at the right border"),
            bottom: int = Param(0, min=0, max=16384, help="as left, at the bottom border")) -> MASK:
    """Soften the region's edges so an inpainted or composited region blends in; optionally fade it out towards
    the picture's borders, as ComfyUI's FeatherMask does (radius 0)."""
    return masks.per_frame(mask, lambda m: masks.feather(m, radius, (left, top, right, bottom)))


@node("mask.invert", title="Invert Mask", category=_CAT)
def invert(ctx, mask: MASK) -> MASK:
    """1 - mask: the region becomes everything else (keep a subject, redraw the background)."""
    return masks.per_frame(mask, lambda m: 1.0 - m)


@node("mask.from_video", title="Mask from Channel", category=_CAT, temporal_radius=0)
def from_video(ctx, video: VIDEO = Input(help="a clip (one mask per frame) or an image (one mask)"),
               channel: str = Param("luma", choices=masks.CHANNELS,
                                    help="which channel is the mask: red, green, blue, alpha (the clip's "
                                         "transparency; all 1 without one) or luma (white = 1)")) -> MASK:
    """A mask from one channel of a picture or of every frame of a clip (ComfyUI's ImageToMask). One frame gives
    a still mask; a clip gives a mask per frame, read as the clip is."""
    if video.length == 1:
        alpha = None if video.matte is None else video.matte.frames(0, 1)
        return masks.channel(video.frames(0, 1), channel, alpha)[0]

    def reader(a, b):
        return masks.channel(video.frames(a, b), channel, None if video.matte is None else video.matte.frames(a, b))
    return masks.clip_of(reader, video, local=True)


@node("mask.to_video", title="Mask to Picture", category=_CAT)
def to_video(ctx, mask: MASK, fps: float = Param(24.0, min=0.01, max=1000.0,
                                                 help="frame rate of a still mask's one-frame clip")) -> VIDEO:
    """The mask as a grey picture, white = 1 (ComfyUI's MaskToImage): a clip of masks gives a clip, a still mask a
    one-frame clip (an IMAGE where one is wanted), to view, save or process as pictures."""
    from graph_engine import Clip
    if not masks.is_clip(mask):
        grey = masks.to_u8(masks.still(mask))
        return Clip.from_array(np.repeat(grey[None, ..., None], 3, axis=-1), fps=fps)
    return Clip(mask.length, mask.fps, mask.width, mask.height,
                lambda a, b: np.repeat(masks.to_u8(masks.frames_of(mask, a, b))[..., None], 3, axis=-1),
                chunk=mask.chunk, local=True)


@node("mask.composite", title="Composite Masked", category=_CAT, temporal_radius=0)
def composite(ctx, video: VIDEO = Input(help="what is pasted (the inpainted result)"),
              background: VIDEO = Input(help="what it is pasted on (the original); a still holds throughout"),
              mask: MASK = Input(optional=True, help="where `video` shows (stretched to its size); none: all of it"),
              x: int = Param(0, min=-16384, max=16384, help="where video's left edge lands on the background"),
              y: int = Param(0, min=-16384, max=16384, help="where video's top edge lands on the background"),
              resize: bool = Param(False, help="stretch video to the background's size first")) -> VIDEO:
    """Paste `video` over `background` where the mask is 1: out = video x mask + background x (1 - mask), as
    ComfyUI's ImageCompositeMasked. After inpainting this puts the untouched pixels back exactly as they were (the
    VAE's round trip changes them a little). The result has the background's size, and the longer input's
    length: a shorter one (a still) holds its last frame."""
    from nodes.common.stream import held_frames
    if not resize and (video.size != background.size or x or y):
        ctx.log(f"video {video.width}x{video.height} pasted at ({x}, {y}) on a background of "
                f"{background.width}x{background.height}")
    longer = background if background.length >= video.length else video

    def reader(a, b):
        return masks.paste(held_frames(background, a, b), held_frames(video, a, b),
                           None if mask is None else masks.frames_of(mask, a, b, video.size), x, y, resize)
    return longer.with_(width=background.width, height=background.height, reader=reader, matte=None, linear=None,
                        local=True)


@node("mask.solid", title="Solid Mask", category=_CAT)
def solid(ctx, value: float = Param(1.0, min=0.0, max=1.0, help="the mask's value everywhere"),
          width: int = Param(512, min=1, max=16384, help="mask width in pixels (the picture's it is for)"),
          height: int = Param(512, min=1, max=16384, help="mask height in pixels")) -> MASK:
    """A mask of one value (ComfyUI's SolidMask): 1 redraws or pastes everything, 0 nothing."""
    return np.full((height, width), value, np.float32)


@node("mask.painter", title="Painter (drawn mask)", category=_CAT, outputs={"image": IMAGE, "mask": MASK})
def painter(ctx, image: IMAGE = Input(optional=True, help="the picture drawn over (none: a plain bg_color one)"),
            path: str = Param("", kind="path", help="the drawing: a PNG whose alpha is where the brush went (ComfyUI "
                                                    "keeps it in its input folder, painter/...); empty: nothing drawn"),
            width: int = Param(512, min=64, max=4096, help="picture width without an image"),
            height: int = Param(512, min=64, max=4096, help="picture height without an image"),
            bg_color: str = Param("#000000", kind="color", help="picture colour without an image")):
    """A drawing over a picture (ComfyUI's Painter): its image is the drawing laid over the picture by the drawing's
    alpha, its mask that alpha, both at the picture's size (the drawing resized to it, Lanczos). Nothing drawn: the
    picture and a mask of 0 (InfiniteTalk refuses such a speaker's mask by name: draw the speaker's region).
    Kinograph's editor has no brush: paint the region on a transparent layer over the picture in any paint program
    (Krita, GIMP, Photoshop) and save that layer as a PNG with transparency; ComfyUI's drawings are in its
    input/painter/ folder."""
    from nodes.mask.painter import painted
    picture, mask = painted(image, path, width, height, bg_color)
    return {"image": picture, "mask": mask}


@node("mask.outpaint_pad", title="Pad for Outpainting", category=_CAT, temporal_radius=0,
      outputs={"video": VIDEO, "mask": MASK})
def outpaint_pad(ctx, video: VIDEO, left: int = Param(0, min=0, max=16384, help="pixels added on the left"),
                 top: int = Param(0, min=0, max=16384, help="pixels added at the top"),
                 right: int = Param(0, min=0, max=16384, help="pixels added on the right"),
                 bottom: int = Param(0, min=0, max=16384, help="pixels added at the bottom"),
                 feathering: int = Param(40, min=0, max=16384, help="pixels of the picture's edge that blend into "
                                                                    "the new area (the mask fades in over them)")):
    """Make room to outpaint (ComfyUI's ImagePadForOutpaint): the picture or clip grows by grey borders, and the
    mask is 1 there, fading into the picture over `feathering` pixels along the sides that grew. Feed both to
    vae.encode_inpaint or condition.inpaint (inpainting models), or vae.encode and latent.set_mask."""
    w, h = video.width + left + right, video.height + top + bottom
    m = masks.outpaint_mask(video.width, video.height, (left, top, right, bottom), feathering)

    def reader(a, b):
        out = np.full((b - a, h, w, 3), 128, np.uint8)
        out[:, top:top + video.height, left:left + video.width] = video.frames(a, b)
        return out
    # One mask: a still covers every frame of a clip.
    return {"video": video.with_(width=w, height=h, reader=reader, matte=None, linear=None, local=True), "mask": m}


@node("mask.combine", title="Combine Masks", category=_CAT)
def combine(ctx, mask: MASK, other: MASK = Input(help="the mask combined into `mask`, its top-left at (x, y)"),
            operation: str = Param("add", choices=masks.OPERATIONS,
                                   help="add (union of soft masks), subtract (cut out), multiply (overlap), or and/or/xor "
                                        "of the masks rounded to 0/1"),
            x: int = Param(0, min=-16384, max=16384, help="where other's left edge lands"),
            y: int = Param(0, min=-16384, max=16384, help="where other's top edge lands")) -> MASK:
    """Combine two masks (ComfyUI's MaskComposite), e.g. a person's mask minus their face, or two regions in one.
    The result has `mask`'s size; a clip of masks combines frame by frame."""
    return masks.joined(mask, other, lambda a, b: masks.combined(a, b, x, y, operation))


@node("mask.threshold", title="Threshold Mask", category=_CAT)
def threshold(ctx, mask: MASK, value: float = Param(0.5, min=0.0, max=1.0,
                                                    help="above this becomes 1, the rest 0")) -> MASK:
    """A hard mask from a soft one (ComfyUI's ThresholdMask): 1 where the mask is above `value`."""
    return masks.per_frame(mask, lambda m: (m > value).astype(np.float32))


@node("mask.crop", title="Crop Mask", category=_CAT)
def crop(ctx, mask: MASK, x: int = Param(0, min=0, max=16384, help="the rectangle's left edge in pixels"),
         y: int = Param(0, min=0, max=16384, help="the rectangle's top edge in pixels"),
         width: int = Param(512, min=1, max=16384, help="the rectangle's width (cut at the mask's edge)"),
         height: int = Param(512, min=1, max=16384, help="the rectangle's height (cut at the mask's edge)")) -> MASK:
    """A rectangle of the mask as a mask of that size (ComfyUI's CropMask), e.g. to match a cropped picture."""
    return masks.cropped(mask, x, y, width, height)


@node("mask.segment", title="Segment (SAM 3)", category=_CAT, device="gpu")
def segment(ctx, video: VIDEO = Input(help="the clip (or picture) to find the object in"),
            prompt: str = Param("", check=prompt_problem,
                                help="what to mask, in a few words: 'cat', 'the man in the red jacket'. Every "
                                     "object it names is masked"),
            model: str = Param("sam3", **_SAM3),
            threshold: float = Param(0.7, min=0.0, max=1.0,
                                     help="how sure the model must be of an object before it is tracked (SAM 3's "
                                          "own is 0.7); lower finds more, and more that is wrong"),
            objects: int = Param(0, zero="all", min=0, max=64,
                                 help="how many objects the mask holds on each frame, the most confident first "
                                      "(ComfyUI's SAM3_Detect keeps 1: the prompt's best); 0: every object the "
                                      "prompt names")) -> MASK:
    """A mask of what the text names, found and tracked through the clip by Segment Anything 3 (ComfyUI's
    SAM3_Detect): the object is carried from frame to frame by the model's memory, not found anew on each, so the
    matte holds still where the object does and follows it through turns and partial cover. Feed it to mask.grow
    and an inpainting or VACE node to replace the object, or mask.invert to keep it. The model is read from your own
    folder; nothing is downloaded."""
    from nodes.common.models_dirs import as_given
    from nodes.mask.segment import text_masks
    return text_masks(video, as_given(model, ctx.workflow_dir), prompt, threshold, ctx.device, ctx, objects)


@node("mask.segment_objects", title="Segment Objects (SAM 3)", category=_CAT, device="gpu")
def segment_objects(ctx, video: VIDEO = Input(help="the clip (or picture) to find the objects in"),
                    prompt: str = Param("", check=prompt_problem,
                                        help="what to find, in a few words: 'person', 'dancer'. Every object it "
                                             "names is tracked, each on its own"),
                    model: str = Param("sam3", **_SAM3),
                    threshold: float = Param(0.5, min=0.0, max=1.0,
                                             help="how sure the model must be of an object before it is tracked "
                                                  "(ComfyUI's SAM3_VideoTrack's 0.5); lower finds more, and more "
                                                  "that is wrong"),
                    objects: int = Param(4, zero="64", min=0, max=64,
                                         help="how many objects are tracked at once (the first found; of those "
                                              "found on one frame, the most confident); 0: 64, as ComfyUI's "
                                              "SAM3_VideoTrack")) -> OBJECTS:
    """The objects the text names, each tracked through the clip on its own by Segment Anything 3 (ComfyUI's
    SAM3_VideoTrack): each keeps its place from frame to frame, in the order they were first found, for a node
    that tells them apart (mask.scail_colors paints each person its own colour). mask.segment gives them all as
    one mask. The model is read from your own folder; nothing is downloaded."""
    from nodes.common.models_dirs import as_given
    from nodes.mask.segment import text_objects
    return text_objects(video, as_given(model, ctx.workflow_dir), prompt, threshold, ctx.device, ctx, objects)


@node("mask.track_points", title="Track Points (SAM 2)", category=_CAT, device="gpu", warm=warm_imports)
def track_points(ctx, video: VIDEO = Input(help="the clip (or picture) the object is in"),
                 points: str = Param("", kind="points", check=points_problem("points", False),
                                     help="points on the object in the first frame, in its pixels: "
                                          "[{\"x\": 120, \"y\": 80}, ...] (ComfyUI's PointsEditor) or 120,80; 200,90 "
                                          "(points, a box or both). 120,80@12: a point on frame 12 (from 0), to "
                                          "correct the matte there or to pick up an object that enters later. "
                                          "Several objects: '|' between them (120,80 | 300,200), or JSON's list of "
                                          "such lists"),
                 negative: str = Param("", kind="negative_points", check=points_problem("negative", False),
                                       help="points off the object (background it should leave out), the same "
                                            "way; none: only the object's points. With several objects: one '|' "
                                            "group each, or one group for all of them"),
                 box: str = Param("", kind="box", check=box_problem,
                                  help="a box around the object in the first frame: x0,y0,x1,y1 (left, top, right, "
                                       "bottom) in its pixels; none: the points alone. x0,y0,x1,y1@12: on frame 12; "
                                       "'|' between objects (the k-th box goes with the k-th group of points), ';' "
                                       "between one object's boxes on other frames; a JSON list of boxes (KJNodes' "
                                       "BBOX) is a box per object"),
                 model: str = Param("sam2.1-hiera-tiny", kind="path", locate=locator("sam2", "checkpoints"),
                                    help="SAM 2's Hugging Face video folder (facebook/sam2.1-hiera-tiny, -small, "
                                         "-base-plus, -large) or kijai's sam2[.1]_hiera_*.safetensors in a 'sam2' "
                                         "model folder, or its path; SAM 3's folder (facebook/sam3) tracks with "
                                         "SAM 3's own tracker"),
                 object: int = Param(0, zero="all", min=0, max=1000,
                                     help="which object's mask (1 = the first '|' group); 0: all of them in one "
                                          "mask")) -> MASK:
    """A mask of the object you click on, carried through the clip by Segment Anything 2's memory (kijai's
    Sam2Segmentation in video mode): for what a text prompt cannot single out (the second dancer from the left).
    Negative points keep the mask off what lies next to it; a box picks the object it holds. Clicks on a later frame
    correct the matte where it slipped (the model keeps them in memory both ways), and several objects are tracked
    each with its own memory (kijai's individual_objects): all in one mask, or the one `object` names. Read from your
    own folder; nothing is downloaded."""
    from nodes.common.models_dirs import as_given
    from nodes.mask.segment import point_masks
    return point_masks(video, as_given(model, ctx.workflow_dir), points, negative, box, ctx.device, ctx, object)


@node("mask.blockify", title="Blockify Mask", category=_CAT)
def blockify(ctx, mask: MASK, block: int = Param(32, min=1, max=4096, help="the cells' side in pixels (about: "
                                                                          "the box is cut into whole cells)")) -> MASK:
    """The region as square-ish blocks over its bounding box, each block that holds any of it filled (KJNodes'
    BlockifyMask), frame by frame: a blocky matte that hides the subject's outline, as Wan Animate's character
    replacement is given."""
    return masks.per_frame(mask, lambda m: masks.blockify(m, block))


@node("mask.fill", title="Fill Mask", category=_CAT, temporal_radius=0)
def fill(ctx, video: VIDEO, mask: MASK = Input(help="where to paint (stretched to the picture's size); a still mask "
                                                    "holds for every frame"),
         colour: str = Param("0, 0, 0", help="the colour painted, as r, g, b (0-255) or #rrggbb")) -> VIDEO:
    """Paint the masked region in one colour, blended by the mask's softness (KJNodes' DrawMaskOnImage): black out a
    subject before a model redraws it, or show a matte over the picture."""
    from graph_engine import NodeError
    from nodes.video.matte import key_colour
    try:
        rgb = key_colour(colour)
    except NodeError:
        raise NodeError(f"mask.fill: colour {colour!r}: give three numbers 0-255 (0, 0, 0 for black) or #rrggbb") from None

    def reader(a, b):
        return masks.filled(video.frames(a, b), masks.frames_of(mask, a, b, video.size), rgb)
    return video.with_(reader=reader, matte=None, linear=None, local=True)


@node("mask.remove_background", title="Remove Background (BiRefNet)", category=_CAT, device="gpu",
      temporal_radius=0, outputs={"mask": MASK, "video": VIDEO})
def remove_background(ctx, video: VIDEO = Input(help="the picture (or each frame of the clip) to cut out"),
                      model: str = Param("birefnet.safetensors", kind="path", locate=locator("background_removal"),
                                         help="ComfyUI's BiRefNet, birefnet.safetensors (Comfy-Org/BiRefNet), in "
                                              "models/background_removal/, or its path"),
                      resolution: int = Param(1024, min=32, max=4096, step=32,
                                              help="the square each frame is squeezed to for the network (ComfyUI's "
                                                   "1024, what BiRefNet was trained at)")) -> dict:
    """The subject cut out of its background by BiRefNet, as ComfyUI's RemoveBackground finds it: `mask` is 1 on
    the subject, 0 on the background, soft at its edges (a still mask for a picture, one a frame for a clip);
    `video` is the picture with that mask as its transparency, to save as a PNG cut-out or lay with video.over.
    Each frame is found alone. The model is read from your own folder; nothing is downloaded."""
    from nodes.common.models_dirs import as_given, find_model
    from nodes.video.matte import with_alpha
    from .birefnet import load
    net = load(str(find_model(as_given(model, ctx.workflow_dir), "background_removal")), ctx.device)
    if video.length == 1:
        mask = net.masks(video.frames(0, 1), resolution)[0]
    else:
        mask = masks.clip_of(lambda a, b: net.masks(video.frames(a, b), resolution), video, local=True)
    from graph_engine import Clip
    grey = Clip(video.length, video.fps, video.width, video.height, chunk=video.chunk, local=True,
                reader=lambda a, b: np.repeat(masks.to_u8(masks.frames_of(mask, a, b))[..., None], 3, axis=-1))
    return {"mask": mask, "video": with_alpha(video, "luma", grey)}


@node("mask.crop_to_mask", title="Crop Image to Mask", category=_CAT, temporal_radius=0)
def crop_to_mask(ctx, video: VIDEO = Input(help="the picture (or clip) the subject is in"),
                 mask: MASK = Input(help="the subject's mask (mask.remove_background's); a still one serves every "
                                         "frame"),
                 width: int = Param(1024, min=64, max=4096, step=8, help="the output's width in pixels"),
                 height: int = Param(1024, min=64, max=4096, step=8, help="the output's height in pixels"),
                 pad_factor: float = Param(1.0, min=1.0, max=2.0, step=0.01,
                                           help="the margin around the subject's box, as a multiple of it"),
                 grow_mask: int = Param(0, min=-32, max=32, help="grow (shrink, negative) the mask by this many "
                                                                 "pixels first"),
                 background: str = Param("#000000", kind="color", help="the colour behind the subject")) -> VIDEO:
    """The subject centred in a frame of width x height, a margin around it, the rest of the picture replaced by
    one colour, as ComfyUI's Crop Image to Mask frames it (for the 3-D models' input, or a product on white). The
    box is the mask's pixels over 0.8; a mask that is 1 around the border and 0 in the middle is taken as the
    background's and inverted; an empty mask keeps the whole picture."""
    from .crop_to_mask import colour, crop_to_mask as framed
    bg = colour(background)

    def reader(a, b):
        return np.stack([framed(f, m, width, height, pad_factor, grow_mask, bg)
                         for f, m in zip(video.frames(a, b), masks.frames_of(mask, a, b))])
    return video.with_(width=width, height=height, reader=reader, matte=None, linear=None, local=True)


@node("mask.triposplat_frame", title="TripoSplat Frame", category=_CAT, temporal_radius=0)
def triposplat_frame(ctx, video: VIDEO = Input(help="the picture (or each frame of a clip) the subject is in"),
                     mask: MASK = Input(help="the subject's mask (mask.remove_background's); a still one serves "
                                             "every frame"),
                     erode_radius: int = Param(1, min=0, max=16, help="shrink the mask by this many pixels first "
                                                                      "(keeps the background's fringe out)"),
                     size: int = Param(1024, min=256, max=4096, step=16,
                                       help="the square's side; TripoSplat was trained at 1024")) -> VIDEO:
    """The subject on black in a size x size square, 1.2 times its box, as ComfyUI's TripoSplat Preprocess Image
    frames a picture for TripoSplat's conditioning (an empty mask is refused)."""
    from .triposplat_frame import side, triposplat_frame as framed
    n = side(size)

    def reader(a, b):
        return np.stack([framed(f, m, erode_radius, n)
                         for f, m in zip(video.frames(a, b), masks.frames_of(mask, a, b))])
    return video.with_(width=n, height=n, reader=reader, matte=None, linear=None, local=True)
