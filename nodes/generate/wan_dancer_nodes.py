"""WanDancer's nodes (ComfyUI's comfy_extras/nodes_wandancer.py): the music's features, the local passes' key
frames, and the conditioning. A song is drawn twice: a global pass makes key frames over the whole song at a low
frame rate, then local passes at 30 fps fill each segment between them."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import AUDIO, AUDIO_EMBEDS, CONDITIONING, LATENT, MASK, STRING, VAE, VIDEO


@node("video.wan_dancer_keyframes", title="WanDancer Key Frames", category="Video",
      outputs={"keyframes": VIDEO, "mask": MASK, "audio": AUDIO})
def wan_dancer_keyframes(ctx, images: VIDEO, audio: AUDIO,
                         length: int = Param(149, min=1, max=10000, help="frames of a segment (149 as released)"),
                         segment: int = Param(0, min=0, max=100, help="which segment: 0 the first")):
    """One local pass's key frames (ComfyUI's WanDancerPadKeyframes): the global pass's pictures spread evenly over
    the whole song at 30 fps, those in this segment at their frames of a clip `length` long (black elsewhere), a
    mask of those frames (white) and the segment's part of the music."""
    from nodes.generate.wan_dancer_keys import keyframes
    keys, mask, music = keyframes(images, audio, length, segment)
    return {"keyframes": keys, "mask": mask, "audio": music}


@node("encode.wan_dancer_audio", title="WanDancer Music Features", category="Conditioning",
      outputs={"music": AUDIO_EMBEDS, "fps_string": STRING})
def encode_wan_dancer_audio(ctx, audio: AUDIO,
                            frames: int = Param(149, min=1, max=100000, help="the clip's frames the music is drawn "
                                                                             "over (149: the global pass's key frames "
                                                                             "or a local segment)"),
                            scale: float = Param(1.0, min=0.0, max=10.0, help="how strongly the music moves the "
                                                                              "model (its injection's scale)")):
    """WanDancer's music features (ComfyUI's WanDancerEncodeAudio): per 1/30 s the onset strength, 20 MFCCs, 12
    chroma, onset peaks and beats, and the clip's frame rate: 30 / (feature frames per video frame, rounded), so
    149 frames over 25 s of music are drawn at 6 fps (the global pass) and over 149 / 30 s at 30 fps (a local
    segment). fps_string is the rate in the words the model's prompts end with."""
    from nodes.generate.audio_encoder import samples
    from nodes.generate.wan_dancer_audio import encode, native_rate
    rate = native_rate(audio)
    music, words = encode(samples(audio, rate), rate, frames, scale)
    ctx.log(f"{music['dancer'].shape[1]} feature frames; {frames} frames at {music['fps']:g} fps")
    return {"music": music, "fps_string": words}


@node("condition.wan_dancer", title="WanDancer Video", category="Conditioning", device="gpu",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_wan_dancer(ctx, vae: VAE, positive: CONDITIONING,
                         negative: CONDITIONING = Input(optional=True),
                         start: VIDEO = Input(optional=True, help="the start picture, or a segment's key frames "
                                                                  "(video.wan_dancer_keyframes)"),
                         mask: MASK = Input(optional=True, help="which of start's frames to keep (white): the key "
                                                                "frames' mask; none = all of start's frames"),
                         image_embeds: CONDITIONING = Input(optional=True, help="encode.image of the first frame"),
                         reference_embeds: CONDITIONING = Input(optional=True,
                                                                help="encode.image of the dancer's reference picture"),
                         music: AUDIO_EMBEDS = Input(optional=True, help="encode.wan_dancer_audio of the music"),
                         frames: int = Param(149, min=1, max=100000, help="the clip's frames (4n+1; WanDancer: 149)"),
                         width: int = Param(480, min=16, max=8192, help="video width, a multiple of 16"),
                         height: int = Param(832, min=16, max=8192, help="video height, a multiple of 16")):
    """WanDancer's conditioning (ComfyUI's WanDancerVideo): the start frames' latent and which of them the model
    keeps, the first frame's and the reference picture's CLIP tokens, the music's features and frame rate (the
    global pass: a whole song's key frames at a low rate; the local passes: 30 fps between key frames), and the
    empty latent to sample. Both prompts get the same."""
    from nodes.generate.wan_dancer_cond import condition
    return condition(vae, positive, negative, frames, width, height, start, mask, image_embeds, reference_embeds,
                     music)
