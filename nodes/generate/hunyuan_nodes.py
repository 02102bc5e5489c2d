"""HunyuanVideo image-to-video nodes (ComfyUI's TextEncodeHunyuanVideo_ImageToVideo and HunyuanImageToVideo; HunyuanVideo
1.5's HunyuanVideo15ImageToVideo, and its 1080p super-resolution stage: HunyuanVideo15LatentUpscaleWithModel and
HunyuanVideo15SuperResolution)."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING, IMAGE, LATENT, TEXT_ENCODER, VAE
from nodes.common.models_dirs import as_given, locator


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


@node("latent.hunyuan15_upsample", title="HunyuanVideo 1.5 Latent Upsampler", category="Latent", device="gpu")
def latent_hunyuan15_upsample(ctx, latent: LATENT,
                              model: str = Param("hunyuanvideo15_latent_upsampler_1080p.safetensors", kind="path",
                                                 locate=locator("latent_upscale_models"),
                                                 help="HunyuanVideo 1.5's 1080p latent upsampler in "
                                                      "latent_upscale_models/"),
                              method: str = Param("bilinear", choices=("nearest-exact", "bilinear", "area",
                                                                       "bicubic"),
                                                  help="how the latent is resized before the upsampler refines it"),
                              width: int = Param(1920, zero="auto", min=0, max=16384, help="the final video's width in pixels "
                                                                             "(0: from height, at the latent's aspect)"),
                              height: int = Param(1080, zero="auto", min=0, max=16384, help="the final video's height in pixels "
                                                                              "(0: from width)")) -> LATENT:
    """Enlarge a HunyuanVideo 1.5 latent for the 1080p super-resolution pass: resized to width x height / 16 and
    refined by Tencent's latent upsampler (ComfyUI's HunyuanVideo15LatentUpscaleWithModel)."""
    import torch
    from nodes.common.models_dirs import find_model
    from nodes.generate.hunyuan15_sr import load_upsampler, upsample
    name = as_given(model, ctx.workflow_dir)
    path = locator("latent_upscale_models")(name) or find_model(name, "latent_upscale_models")     # not found: where
    return upsample(latent, load_upsampler(path, torch.float32, ctx.device), width, height, method)


@node("condition.hunyuan15_sr", title="HunyuanVideo 1.5 Super Resolution", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_hunyuan15_sr(ctx, positive: CONDITIONING, latent: LATENT,
                           negative: CONDITIONING = Input(optional=True, help="the negative prompt"),
                           vae: VAE = Input(optional=True, help="HunyuanVideo 1.5's VAE, for the start image"),
                           start_image: IMAGE = Input(optional=True, help="the video's first frame"),
                           image_embeds: CONDITIONING = Input(optional=True, help="SigLIP's tokens of the start "
                                                              "image (encode.image of sigclip_vision_patch14_384)"),
                           noise_augmentation: float = Param(0.7, min=0.0, max=1.0,
                                                             help="how much noise the low-resolution latent gets "
                                                                  "(its share is 1 minus this, at most 0.75)")):
    """Both prompts for HunyuanVideo 1.5's 1080p super-resolution model (hunyuanvideo1.5_1080p_sr_distilled), carrying
    the upsampled latent (latent.hunyuan15_upsample) it refines, and the start image for image-to-video (ComfyUI's
    HunyuanVideo15SuperResolution). Sample from noise at that latent's size."""
    from nodes.generate.hunyuan15_sr import sr_conditioning
    pos, neg, out = sr_conditioning(positive, negative, latent, noise_augmentation, vae, start_image, image_embeds)
    return {"positive": pos, "negative": neg, "latent": out}
