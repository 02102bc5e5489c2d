"""LTX-2's in-context guide (IC-LoRA control: canny, depth or pose clips; ComfyUI's LTXVAddGuide on a video at
frame 0, diffusers' LTX2InContextPipeline reference condition): the guide clip's latent rides on the conditioning,
and the sampler lays its tokens beside the video's, at the same places in space and time and at timestep 0, so the
model reads them clean while it makes the video; their own predictions are dropped. Guide tokens never enter the
sampled latent, so ComfyUI's LTXVCropGuides has nothing to cut."""
from __future__ import annotations

import dataclasses

import torch

from graph_engine import NodeError

GUIDE = "ltx2_guide"                # Conditioning.extra key: the guide's normalised latent [1, C, F, h, w]


def with_guide(vae, positive, negative, latent, clip):
    """positive and negative carrying `clip`'s latent as the guide of `latent`'s video: the clip cut to 8n + 1
    frames (LTX-2's VAE step), each fitted to the latent's size by a centre crop, encoded by the model's VAE."""
    from PIL import Image
    from nodes.generate.adapters import get_adapter
    from nodes.generate.vae_ops import encode_pixels
    if vae.family != "ltx2" or latent.family != "ltx2":
        raise NodeError(f"condition.guide_video is LTX-2's (its IC-LoRAs); this VAE is {vae.family}'s and the latent "
                        f"{latent.family}'s")
    frames = clip.to_array()
    frames = frames[:(len(frames) - 1) // 8 * 8 + 1]
    px = vae.pipe.video_processor.preprocess_video([Image.fromarray(f[..., :3]) for f in frames],
                                                   height=latent.height, width=latent.width, resize_mode="crop")
    with torch.inference_mode():
        z = encode_pixels(get_adapter("ltx2"), vae.pipe, px, "encoding the guide video").float().cpu()
    if z.shape[2] > latent.samples.shape[2]:
        raise NodeError(f"the guide video has {len(frames)} frames and the latent {latent.frames}: a guide as long "
                        "as the video or shorter (video.trim it)")

    def add(c):
        return None if c is None else dataclasses.replace(c, extra={**c.extra, GUIDE: z})
    return add(positive), add(negative)


def guide_of(conds):
    """The guide latent the conditionings carry (the first that has one), or None."""
    return next((c.extra[GUIDE] for c in conds if c is not None and GUIDE in c.extra), None)
