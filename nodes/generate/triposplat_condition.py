"""TripoSplat's image conditioning as ComfyUI computes it (comfy_extras/nodes_triposplat.py: TripoSplatConditioning):
DINOv3 ViT-H/16+'s tokens (class token, 4 registers, the patches) of the framed picture at its own size, through the
model's own final norm and then layer-normed once more without weights; beside them the picture's FLUX.2 VAE latent
(ComfyUI's reference_latents). The negative is zeros of both. The latent to sample is zeros: 8192 shape tokens of 16
channels and, beside them (ComfyUI's nested latent's second stream), a camera token of 5 zeros, which the flow model
samples with them.

DINOv3 is load.clip_vision's (dino_v3_vit_h.safetensors: trellis2_dino builds it from the file's shapes, the gated
MLP included); the FLUX.2 VAE is load.vae's (flux2-vae.safetensors)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import Clip, NodeError
from nodes.generate.latent import Conditioning, Latent
from nodes.generate.trellis2_dino import MEAN, STD
from nodes.generate.triposplat_flow import CAMERA, CHANNELS, TOKENS     # the latent's fixed sizes


def dino_tokens(model, picture: np.ndarray) -> torch.Tensor:
    """[1, 1 + registers + patches, width]: DINOv3 on the picture as it is (ImageNet-normalised), its final norm,
    then a layer norm without weights (TripoSplatConditioning's feature1)."""
    param = next(model.parameters())
    x = torch.from_numpy(picture.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(param.device)
    x = ((x - torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)) /
         torch.tensor(STD, device=x.device).view(1, 3, 1, 1)).to(param.dtype)
    with torch.inference_mode():
        hidden = model.embeddings(x)
        hidden = model.model(hidden, position_embeddings=model.rope_embeddings(x)).last_hidden_state
        seq = model.norm(hidden)
        return F.layer_norm(seq.float(), seq.shape[-1:])


def conditioning(encoder, vae, picture: np.ndarray):
    """(positive, negative, latent) as ComfyUI's TripoSplatConditioning makes them from one framed picture
    (TripoSplatPreprocessImage's, mask.triposplat_frame here)."""
    model = getattr(getattr(encoder, "pipe", None), "model", None)
    if getattr(encoder, "family", None) != "trellis2" or model is None:
        raise NodeError("condition.triposplat needs DINOv3 (load.clip_vision on dino_v3_vit_h.safetensors, "
                        "VAST-AI/TripoSplat's clip_vision/)")
    if getattr(vae, "family", None) != "flux2":
        raise NodeError(f"condition.triposplat needs FLUX.2's VAE (load.vae on flux2-vae.safetensors); this is a "
                        f"{getattr(vae, 'family', type(vae).__name__)} one")
    if not isinstance(picture, np.ndarray) or picture.ndim != 3 or picture.shape[2] < 3:
        raise NodeError("condition.triposplat reads one RGB picture (H x W x 3): frame it first "
                        "(mask.triposplat_frame)")
    rgb = np.ascontiguousarray(picture[..., :3])
    patch = int(model.config.patch_size)
    if rgb.shape[0] % patch or rgb.shape[1] % patch:
        raise NodeError(f"condition.triposplat: the picture is {rgb.shape[1]} x {rgb.shape[0]}; DINOv3 reads sides "
                        f"of a multiple of {patch}: frame it with mask.triposplat_frame (its size is one)")
    from nodes.generate.vae_ops import encode_clip
    feature = dino_tokens(model, rgb).cpu()
    ref = encode_clip(vae, Clip.from_array(rgb[None])).samples[:, :, 0]     # [1, 128, h, w]
    positive = Conditioning("triposplat", feature, prompts=("<image>",), extra={"reference_latents": ref},
                            meta={"kind": "image"})
    negative = Conditioning("triposplat", torch.zeros_like(feature), prompts=("",),
                            extra={"reference_latents": torch.zeros_like(ref)}, meta={"kind": "image"})
    # the shape tokens along the width of a one-picture latent ([B, C, T, h, w]: [1, 16, 1, 1, 8192])
    latent = Latent(torch.zeros(1, CHANNELS, 1, 1, TOKENS), "triposplat", 1, 1.0, TOKENS, 1,
                    camera=torch.zeros(1, 1, CAMERA))
    return positive, negative, latent
