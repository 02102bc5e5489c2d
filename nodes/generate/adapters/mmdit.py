"""What FLUX.1 and Stable Diffusion 3 / 3.5 share: a flow-matching transformer over a 16-channel 2-D VAE's latent
(scaled and shifted), told a pooled CLIP embedding beside the text's hidden states. Frames of a latent are separate
images, each its own batch item, as SD's."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, frame_centres, frames_from_batch, frames_in_batch


def patch_frames(x_in: torch.Tensor, title: str) -> torch.Tensor:
    """The latent's frames as a batch, checked to tile into a transformer's 2x2 patches (FLUX.1, SD3, Qwen-Image): a
    size that does not divide is named, not met with a reshape error."""
    h, w = x_in.shape[-2:]
    if h % 2 or w % 2:
        raise NodeError(f"{title} reads the latent in 2x2 patches; {w}x{h} latent pixels do not divide into them: "
                        "make width and height multiples of 16")
    return frames_in_batch(x_in)


def flux_ae_factors(pipe):
    """(frames, space, channels) of a latent for a transformer that draws with FLUX.1's VAE (Z-Image, HiDream): read
    from the VAE, or for a transformer from its own file (no VAE yet) FLUX.1's geometry and the file's channels."""
    if getattr(pipe, "vae", None) is None:
        return 1, 8, int(pipe.transformer.config.in_channels)
    return 1, int(pipe.vae_scale_factor), int(pipe.vae.config.latent_channels)


class MMDiTAdapter(Adapter):
    space = "flow"
    prediction = "flow"
    per_frame_text = True
    single_file = True
    name = ""                           # for messages
    encoders = ""                       # the text encoders that give the pooled embedding, for messages

    def in_patches(self, x_in: torch.Tensor) -> torch.Tensor:
        return patch_frames(x_in, self.name)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        pix = frame_centres(frames, 1)
        ehs, pooled = [], []
        for c in conds:
            e, _, p = c.at_frames(pix)
            if p is None:
                raise NodeError(f"this conditioning has no pooled CLIP embedding, which {self.name} needs: "
                                f"encode the prompt with its text encoders ({self.encoders})")
            ehs += [e] * batch
            pooled += [p] * batch
        return {"encoder_hidden_states": torch.cat(ehs).to(device, dtype),
                "pooled_projections": torch.cat(pooled).to(device, dtype)}

    def vae_per_frame(self):
        return True

    def vae_encode(self, pipe, pixels, generator=None):
        vae = pipe.vae
        z = vae.encode(frames_in_batch(pixels).to(vae.device, vae.dtype)).latent_dist.mode()
        return frames_from_batch((z - _shift(vae)) * vae.config.scaling_factor, pixels.shape[0]).float()

    def vae_decode(self, pipe, latent):
        vae = pipe.vae
        z = frames_in_batch(latent) / vae.config.scaling_factor + _shift(vae)
        img = vae.decode(z.to(vae.device, vae.dtype), return_dict=False)[0]
        return frames_from_batch(img, latent.shape[0]).float()


def _shift(vae) -> float:
    return float(getattr(vae.config, "shift_factor", None) or 0.0)
