"""Wan 2.2 Animate: a character image moved by a pose video and a face video, named after ComfyUI's
WanAnimateToVideo; Wan Animate 2: moved by the driving video itself, after ComfyUI's WanAnimate2ToVideo."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING, IMAGE, INT, LATENT, MASK, VAE, VIDEO
from nodes.generate.preflight import latent_preflight


@node("condition.wan_animate", title="Wan Animate", category="Conditioning", device="gpu",
      preflight=latent_preflight, outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT,
                                           "trim_image": INT, "offset": INT})
def condition_wan_animate(ctx, vae: VAE, positive: CONDITIONING, negative: CONDITIONING = Input(optional=True),
                          reference: IMAGE = Input(optional=True, help="the character to animate"),
                          image_embeds: CONDITIONING = Input(optional=True,
                                                             help="encode.image of the reference (CLIP vision)"),
                          pose: VIDEO = Input(optional=True, help="the pose video to follow (a DWPose skeleton of "
                                                                  "the driving video)"),
                          face: VIDEO = Input(optional=True, help="the driving video's face, cropped (its centre "
                                                                  "square is read)"),
                          background: VIDEO = Input(optional=True, help="replace mode: the footage the character "
                                                                        "is put into"),
                          character_mask: MASK = Input(optional=True, help="replace mode: where the character to "
                                                                           "replace is in the footage (white)"),
                          continue_motion: VIDEO = Input(optional=True, help="the clip this one continues (the "
                                                                             "previous clip's frames)"),
                          width: int = Param(832, min=16, max=8192, help="video width in pixels (multiple of 16)"),
                          height: int = Param(480, min=16, max=8192, help="video height in pixels (multiple of 16)"),
                          frames: int = Param(77, min=1, max=100000, help="4n+1"),
                          continue_frames: int = Param(5, min=0, max=100000, help="last frames of continue_motion "
                                                                                  "this clip starts with"),
                          offset: int = Param(0, min=0, max=100000, help="the frame of the pose, face and "
                                                                         "background videos this clip starts at")):
    """Animate a character (Wan 2.2 Animate, load.diffusion_model with wan2.2_animate_14B_*.safetensors): the
    reference image's character moves as the pose video and the face video move. With a background video and a
    character mask it replaces that character in the footage instead.

    The latent gets the reference as one extra frame in front: after sample, drop it with latent.trim (amount
    1). For a longer video, chain clips: the next node's continue_motion is this clip, its offset this node's
    offset, and the first trim_image frames of its clip repeat this one's end (video.trim them)."""
    from nodes.generate.wan_animate import animate_condition
    return animate_condition(vae, positive, negative, width, height, frames, pose, face, reference, image_embeds,
                             background, character_mask, continue_motion, continue_frames, offset)


@node("condition.wan_animate2", title="Wan Animate 2", category="Conditioning", device="gpu",
      preflight=latent_preflight, outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT,
                                           "trim_image": INT, "offset": INT})
def condition_wan_animate2(ctx, vae: VAE, positive: CONDITIONING, negative: CONDITIONING = Input(optional=True),
                           reference: IMAGE = Input(optional=True, help="the character to animate"),
                           pose: VIDEO = Input(optional=True, help="the driving video whose motion the character "
                                                                   "follows (the video itself, no skeleton needed)"),
                           image_embeds: CONDITIONING = Input(optional=True,
                                                              help="encode.image of the reference (CLIP vision)"),
                           pose_text: CONDITIONING = Input(optional=True, help="the driving video's prompt (its "
                                                                              "motion, not the character); default: "
                                                                              "positive"),
                           pose_image_embeds: CONDITIONING = Input(optional=True,
                                                                   help="encode.image of the driving video's first "
                                                                        "frame; default: image_embeds"),
                           continue_motion: VIDEO = Input(optional=True, help="the clip this one continues (its "
                                                                              "last frame is this clip's first)"),
                           width: int = Param(832, min=16, max=8192, help="video width in pixels (multiple of 16)"),
                           height: int = Param(480, min=16, max=8192, help="video height in pixels (multiple of 16)"),
                           frames: int = Param(81, min=1, max=100000, help="4n+1"),
                           offset: int = Param(0, min=0, max=100000, help="the frame of the driving video this clip "
                                                                          "starts at"),
                           pose_strength: float = Param(1.0, min=0.0, max=10.0, help="how strongly the motion is "
                                                                                     "followed (1: as trained)"),
                           reference_strength: float = Param(1.0, min=0.0, max=10.0,
                                                             help="how strongly the frames hold to the reference "
                                                                  "(1: as trained)"),
                           pose_start: float = Param(0.0, min=0.0, max=1.0, help="share of the way from noise where "
                                                                                 "the motion starts steering"),
                           pose_end: float = Param(1.0, min=0.0, max=1.0, help="share of the way from noise where it "
                                                                               "stops (e.g. 0.7: the choreography "
                                                                               "kept, fine detail loosened)")):
    """Animate a character (Wan Animate 2, load.diffusion_model with wan_animate_2_*.safetensors): the reference
    image's character moves as the driving video moves - face, body and hands.

    The latent gets the reference as one extra frame in front: after sample, drop it with latent.trim (amount 1).
    For a longer video, chain clips: the next node's continue_motion is this clip, its offset this node's offset,
    and the first trim_image frames of its clip repeat this one's end (video.trim them)."""
    from nodes.generate.wan_animate2 import animate2_condition
    return animate2_condition(vae, positive, negative, width, height, frames, reference, pose, image_embeds,
                              pose_text, pose_image_embeds, continue_motion, offset, pose_strength,
                              reference_strength, pose_start, pose_end)
