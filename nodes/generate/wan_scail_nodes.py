"""SCAIL / SCAIL-2: a character from a reference image moved as a pose video moves, or put in its person's place,
named after ComfyUI's WanSCAILToVideo; SCAIL-2's colour masks of who is where, after its SCAIL2ColoredMask."""
from __future__ import annotations

import numpy as np

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING, IMAGE, INT, LATENT, VAE, VIDEO
from nodes.generate.preflight import latent_preflight
from nodes.mask.objects import OBJECTS
# The palette orders ComfyUI offers; kept here, not beside the maths, so listing nodes never imports torch.
SORTS = ("none", "left_to_right", "area")


@node("condition.wan_scail", title="Wan SCAIL", category="Conditioning", device="gpu", preflight=latent_preflight,
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT, "offset": INT})
def condition_wan_scail(ctx, vae: VAE, positive: CONDITIONING, negative: CONDITIONING = Input(optional=True),
                        reference: IMAGE = Input(optional=True, help="the character"),
                        pose: VIDEO = Input(optional=True, help="the pose video (rendered skeletons) the character "
                                                                "follows; read at half the size"),
                        pose_mask: VIDEO = Input(optional=True, help="SCAIL-2: the driving video's colour masks "
                                                                     "(mask.scail_colors)"),
                        reference_mask: IMAGE = Input(optional=True, help="SCAIL-2: the reference's colour mask "
                                                                          "(mask.scail_colors)"),
                        image_embeds: CONDITIONING = Input(optional=True,
                                                           help="encode.image of the reference (CLIP vision)"),
                        previous: VIDEO = Input(optional=True, help="SCAIL-2: the clip this one continues (its last "
                                                                    "previous_count frames are held)"),
                        width: int = Param(512, min=32, max=8192, help="video width in pixels (multiple of 32)"),
                        height: int = Param(896, min=32, max=8192, help="video height in pixels (multiple of 32)"),
                        frames: int = Param(81, min=1, max=100000, help="4n+1"),
                        replacement: bool = Param(False, help="SCAIL-2: put the character in the driving video's "
                                                              "person's place (the masks made in the same mode)"),
                        pose_strength: float = Param(1.0, min=0.0, max=10.0, help="scale of the pose's latent"),
                        pose_start: float = Param(0.0, min=0.0, max=1.0, help="share of the way from noise where "
                                                                              "the pose starts steering"),
                        pose_end: float = Param(1.0, min=0.0, max=1.0, help="share of the way where it stops"),
                        offset: int = Param(0, min=0, max=100000, help="the pose video's frame this clip starts at "
                                                                       "(the previous node's offset)"),
                        previous_count: int = Param(5, min=1, max=100000, help="frames of previous held at the "
                                                                               "start (SCAIL-2 was trained on 5)")):
    """Animate a character (SCAIL / SCAIL-2, load.diffusion_model with wan2.1_14B_SCAIL*.safetensors): the reference
    image's character moves as the pose video moves. SCAIL-2 also reads colour masks telling each person apart and,
    in replacement mode, puts the character in place of the driving video's person.

    For a longer video chain nodes: the next one's previous is this clip's decoded frames, its offset this node's
    offset; its first previous_count frames repeat this clip's end."""
    from nodes.generate.wan_scail_cond import scail_condition
    return scail_condition(vae, positive, negative, width, height, frames, pose, pose_mask, replacement,
                           pose_strength, pose_start, pose_end, reference, reference_mask, image_embeds, offset,
                           previous_count, previous)


def _objects(value):
    """The objects of an OBJECTS value (or of a MASK, one object) as bool masks [T, N, H, W] (a still: one frame)."""
    import torch
    from nodes.mask.objects import Objects, of_mask
    return torch.from_numpy((value if isinstance(value, Objects) else of_mask(value)).masks())


PAINTED_FRAMES = 8       # frames painted at once: the whole clip's float colours took 16 times the uint8 result


def _painted_bytes(masks, keep: list, white: bool) -> np.ndarray:
    """wan_scail_cond.painted of objects `keep` (in that order) as uint8 frames [T, H, W, 3], a few frames at a
    time: painting the whole clip at once (float32 colours, argmax indices, their temporaries) took 3.3 GB for 81
    frames of 720p with 4 people."""
    from nodes.generate.wan_scail_cond import painted
    t, _, h, w = masks.shape
    out = np.empty((t, h, w, 3), np.uint8)
    for a in range(0, t, PAINTED_FRAMES):
        colours = painted(masks[a:a + PAINTED_FRAMES][:, keep], white).numpy()
        out[a:a + PAINTED_FRAMES] = np.clip(colours * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


@node("mask.scail_colors", title="SCAIL-2 Colour Masks", category="Mask",
      outputs={"pose_mask": VIDEO, "reference_mask": IMAGE})
def scail_colors(ctx, driving: OBJECTS = Input(help="the people in the driving video (mask.segment_objects; a mask "
                                                    "is one person)"),
                 reference: OBJECTS = Input(optional=True, help="the characters in the reference image (the same)"),
                 indices: str = Param("", help="which objects to keep after sorting ('0,2'); empty: all"),
                 sort_by: str = Param("left_to_right", choices=SORTS, help="the order the palette's colours are "
                                                                          "given in"),
                 replacement: bool = Param(False, help="as condition.wan_scail's replacement: the driving masks "
                                                       "on white, the reference's on black (else the reverse)"),
                 fps: float = Param(24.0, min=0.01, max=1000.0, help="frame rate of a still driving mask's clip")):
    """SCAIL-2's colour masks (ComfyUI's SCAIL2ColoredMask): each tracked person painted a colour of the palette the
    model was trained on (blue first), in the order sort_by gives, for condition.wan_scail. Each side is sorted
    alike, so the k-th person of the reference and the k-th of the driving video share a colour."""
    from graph_engine import Clip, NodeError
    from nodes.generate.wan_scail_cond import picked
    objects = _objects(driving)
    count = objects.shape[1]
    if not objects.any():
        # ComfyUI paints a clip of background alone, and the render goes ahead on it
        raise NodeError("there is no one in the driving video to paint: mask.segment_objects found nothing its "
                        "prompt names on any frame (or the mask linked is empty). Lower its threshold, or name them "
                        "otherwise ('person', 'dancer')")
    if indices.strip() and count and not any(int(i) < count for i in indices.split(",") if i.strip().isdecimal()):
        # ComfyUI paints none of them, silently: a whole clip of background
        held = ("one person (a MASK, such as mask.segment's one mask of all it tracks, is object 0)" if count == 1
                else f"{count} people (objects 0 to {count - 1}; mask.segment_objects' objects sets how many)")
        raise NodeError(f"indices '{indices}' keep none of the driving video's {held}: leave indices empty for "
                        "all, or name some of them")
    video = _painted_bytes(objects, picked(objects, sort_by, indices), replacement)
    rate = getattr(driving, "fps", None) or fps
    if reference is None:
        ref = np.full((video.shape[1], video.shape[2], 3), 0 if replacement else 255, np.uint8)
    else:
        characters = _objects(reference)
        ref = _painted_bytes(characters[:1], picked(characters, sort_by, indices), not replacement)[0]
    return {"pose_mask": Clip.from_array(video, fps=rate), "reference_mask": ref}
