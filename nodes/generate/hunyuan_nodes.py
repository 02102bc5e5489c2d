"""HunyuanVideo image-to-video nodes (ComfyUI's TextEncodeHunyuanVideo_ImageToVideo and HunyuanImageToVideo; HunyuanVideo
1.5's HunyuanVideo15ImageToVideo)."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING, IMAGE, LATENT, TEXT_ENCODER, VAE


@node("encode.text_image", title="Encode Prompt with Image (HunyuanVideo)", category="Conditioning",
      outputs={"positive": CONDITIONING})
def encode_text_image(ctx, text_encoder: TEXT_ENCODER, image_embeds: CONDITIONING,
                      text: str = Param("", kind="text", help="the prompt; a schedule '0: ..., 24: ...' changes it "
                                                             "over time"),
                      image_interleave: int = Param(2, min=1, max=512, help="keep every n-th image token: higher "
                                                                           "= the prompt weighs more than the image "
                                                                           "(2 for the v1 model, 4 for v2)")):
    """Encode a prompt together with the start image for HunyuanVideo image-to-video: llava-llama-3 reads
    the image's tokens (encode.image of llava_llama3_vision) inside its prompt template."""
    from nodes.generate.hunyuan_i2v import encode_text_image as run
    return {"positive": run(text_encoder, image_embeds, text, image_interleave, ctx.log)}


@node("condition.hunyuan_i2v", title="HunyuanVideo Image to Video", category="Conditioning",
      outputs={"positive": CONDITIONING, "latent": LATENT})
def condition_hunyuan_i2v(ctx, vae: VAE, positive: CONDITIONING,
                          start_image: IMAGE = Input(optional=True, help="the video's first frame"),
                          width: int = Param(848, min=16, max=8192, help="video width in pixels (multiple of 16)"),
                          height: int = Param(480, min=16, max=8192, help="video height in pixels (multiple of 16)"),
                          frames: int = Param(53, min=1, max=100000, help="4n+1"),
                          guidance: str = Param("concat", choices=("concat", "replace"),
                                                help="concat: the v1 image-to-video model (33 channels); "
                                                     "replace: the v2 model, whose first frame is the image")):
    """The empty latent of an image-to-video clip and the positive conditioning carrying its start image,
    for HunyuanVideo's image-to-video models (ComfyUI's HunyuanImageToVideo)."""
    from nodes.generate.hunyuan_i2v import image_to_video
    pos, latent = image_to_video(vae, positive, start_image, width, height, frames, guidance)
    return {"positive": pos, "latent": latent}


@node("condition.hunyuan15_i2v", title="HunyuanVideo 1.5 Image to Video", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_hunyuan15_i2v(ctx, vae: VAE, positive: CONDITIONING,
                            negative: CONDITIONING = Input(optional=True, help="the negative prompt"),
                            start_image: IMAGE = Input(optional=True, help="the video's first frame"),
                            image_embeds: CONDITIONING = Input(optional=True, help="SigLIP's tokens of the start "
                                                               "image (encode.image of sigclip_vision_patch14_384)"),
                            width: int = Param(848, min=16, max=8192, help="video width in pixels (multiple of 16)"),
                            height: int = Param(480, min=16, max=8192, help="video height in pixels (multiple of 16)"),
                            frames: int = Param(33, min=1, max=100000, help="4n+1")):
    """The empty latent of a HunyuanVideo 1.5 image-to-video clip and both prompts carrying its start image: the
    image's latent on the first frame and SigLIP's tokens of it (ComfyUI's HunyuanVideo15ImageToVideo)."""
    from nodes.generate.hunyuan15_i2v import image_to_video
    pos, neg, latent = image_to_video(vae, positive, negative, start_image, image_embeds, width, height, frames)
    return {"positive": pos, "negative": neg, "latent": latent}
