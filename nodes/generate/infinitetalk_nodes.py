"""InfiniteTalk's node: the conditioning that makes a Wan 2.1 I2V model talk with one or two voices, its patch file
from load.model_patch (nodes/generate/infinitetalk.py)."""
from __future__ import annotations

from pathlib import Path

from graph_engine import Input, NodeError, Param, node
from graph_engine.types import (AUDIO_EMBEDS, CONDITIONING, IMAGE, INT, LATENT, MASK, MODEL, MODEL_PATCH, VAE,
                                VIDEO)
from nodes.generate.audio_encoder import voice_preflight


@node("condition.infinitetalk", title="Wan InfiniteTalk", category="Conditioning", device="gpu",
      preflight=voice_preflight("wav2vec2", "InfiniteTalk", "wav2vec2-chinese-base_fp16.safetensors",
                                "audio_embeds", "audio_embeds_2"), outputs={"model": MODEL, "positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT, "trim": INT})
def condition_infinitetalk(ctx, model: MODEL, model_patch: MODEL_PATCH, vae: VAE, positive: CONDITIONING,
                           audio_embeds: AUDIO_EMBEDS = Input(help="encode.audio of the (first) speaker's voice"),
                           negative: CONDITIONING = Input(optional=True),
                           start: IMAGE = Input(optional=True, help="the picture the video starts from"),
                           image_embeds: CONDITIONING = Input(optional=True, help="encode.image of the start "
                                                                                  "picture (optional)"),
                           audio_embeds_2: AUDIO_EMBEDS = Input(optional=True, help="the second speaker's voice: "
                                                                                    "it speaks after the first"),
                           mask_1: MASK = Input(optional=True, help="where the first speaker is (two speakers)"),
                           mask_2: MASK = Input(optional=True, help="where the second speaker is (two speakers)"),
                           previous: VIDEO = Input(optional=True, help="the video so far, to continue it"),
                           frames: int = Param(81, min=1, max=100000, help="this clip's length in frames (4n+1)"),
                           width: int = Param(832, min=16, max=8192, help="video width, a multiple of 16"),
                           height: int = Param(480, min=16, max=8192, help="video height, a multiple of 16"),
                           motion_frames: int = Param(9, min=1, max=33, help="frames of `previous` this clip "
                                                                             "starts with"),
                           audio_scale: float = Param(1.0, min=-10.0, max=10.0, help="how strongly the voice "
                                                                                     "moves the video")):
    """ComfyUI's WanInfiniteTalkToVideo: the model with InfiniteTalk's audio attention on (the voices' features
    windowed per frame at 25 fps; two speakers take turns, each video token told whose region it looks like), the
    start picture's conditioning, and the latent. With `previous`, the clip continues it: its last motion_frames
    frames start this one (the sound from there on), and `trim` is how many frames to drop from the decoded
    result, which repeats them."""
    from nodes.generate.infinitetalk import condition
    if model_patch.family != "wan":
        raise NodeError(f"{Path(model_patch.path).name} is a ControlNet patch, not InfiniteTalk's: connect it to "
                        "control.model_patch; condition.infinitetalk reads wan2.1_infiniteTalk_single_fp16 or _multi")
    voices = [v for v in (audio_embeds, audio_embeds_2) if v is not None]
    masks = [m for m in (mask_1, mask_2) if m is not None]
    return condition(model, model_patch.pipe, vae, positive, negative, voices, masks, start, image_embeds, previous,
                     frames, width, height, motion_frames, audio_scale)
