"""Wan 2.1/2.2: UMT5 text, causal 3-D VAE (4x time, 8x space), flow-matching transformer.

Image-to-video / first-last-frame models (36 input channels) take a 4-channel frame mask and the
VAE-encoded conditioning frames concatenated to the noise, and CLIP image tokens."""
from __future__ import annotations

import torch

from nodes.generate.adapters.base import Adapter, stack_global


TEXT_ONLY = ("this Wan model is text-to-video; first/last frame conditioning needs a Wan image-to-video "
             "(or FLF2V) model")


NEEDS_IMAGE = ("this Wan 2.1 image-to-video model also takes the frame's CLIP image tokens: connect "
               "encode.image (of the first frame) to condition.frames' image_embeds")


class WanAdapter(Adapter):
    family = "wan"
    space = "flow"
    prediction = "flow"
    max_tokens = 512

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        e, _, _ = stack_global(conds, frames, device, dtype, batch, self.factors(handle.pipe)[0])
        inputs = {"encoder_hidden_states": e}
        if "image_embeds" in conds[-1].extra:
            inputs["encoder_hidden_states_image"] = torch.cat(
                [c.extra.get("image_embeds", conds[-1].extra["image_embeds"]) for c in conds
                 for _ in range(batch)]).to(device, dtype)
        if "concat" in conds[-1].extra:
            idx = torch.as_tensor(list(frames))
            inputs["concat"] = torch.cat([c.extra.get("concat", conds[-1].extra["concat"])[:, :, idx]
                                          for c in conds for _ in range(batch)]).to(device, dtype)
        return inputs

    def forward(self, handle, x_in, t, inputs):
        pipe = handle.pipe
        model = pipe.transformer
        boundary = pipe.config.get("boundary_ratio") if hasattr(pipe, "config") else None
        if getattr(pipe, "transformer_2", None) is not None and boundary is not None \
                and float(t) < boundary * pipe.scheduler.config.num_train_timesteps:
            model = pipe.transformer_2           # Wan 2.2 A14B: the low-noise expert
        x = x_in.to(model.dtype)
        if "concat" in inputs and model.config.in_channels == model.config.out_channels:
            from graph_engine import NodeError
            raise NodeError(TEXT_ONLY)
        if getattr(model.config, "image_dim", None) and "encoder_hidden_states_image" not in inputs:
            from graph_engine import NodeError
            raise NodeError(NEEDS_IMAGE)
        if "encoder_hidden_states_image" in inputs and not getattr(model.config, "image_dim", None):
            inputs = {k: v for k, v in inputs.items() if k != "encoder_hidden_states_image"}
        if "concat" in inputs:
            x = torch.cat([x, inputs["concat"]], dim=1)
        kw = {}
        if "encoder_hidden_states_image" in inputs:
            kw["encoder_hidden_states_image"] = inputs["encoder_hidden_states_image"]
        return model(hidden_states=x, timestep=t.to(x.device).expand(x.shape[0]),
                     encoder_hidden_states=inputs["encoder_hidden_states"], return_dict=False, **kw)[0]

    def encode_image(self, pipe, image, device):
        return pipe.encode_image(image, device)

    def frame_condition(self, pipe, latent, first, last, image_embeds, **_):
        """The i2v model's extra input: a 4-channel mask of pinned frames and the VAE latents of a clip
        holding the pinned frames (zeros elsewhere); plus CLIP image tokens where the model takes them."""
        from graph_engine import NodeError
        # A VAE loaded from its own file knows no transformer: the sampler checks the model instead.
        den = getattr(pipe, "transformer", None)
        if den is not None and den.config.in_channels == den.config.out_channels:
            raise NodeError(TEXT_ONLY)
        if first is None:
            raise NodeError("Wan image-to-video needs the first frame")
        h, w, n = latent.height, latent.width, latent.frames
        proc = pipe.video_processor
        frames = [proc.preprocess(first, height=h, width=w)]
        mid = n - 1 - (last is not None)
        frames.append(frames[0].new_zeros(mid, *frames[0].shape[1:]))
        if last is not None:
            frames.append(proc.preprocess(last, height=h, width=w))
        video = torch.cat(frames).permute(1, 0, 2, 3)[None]          # [1, 3, n, H, W]
        z = self.vae_encode(pipe, video)
        tf = int(pipe.vae_scale_factor_temporal)
        mask = torch.zeros(1, 1, n, z.shape[3], z.shape[4])
        mask[:, :, 0] = 1
        if last is not None:
            mask[:, :, -1] = 1
        mask = torch.cat([mask[:, :, :1].repeat_interleave(tf, dim=2), mask[:, :, 1:]], dim=2)
        mask = mask.view(1, -1, tf, z.shape[3], z.shape[4]).transpose(1, 2)
        extra = {"concat": torch.cat([mask, z], dim=1)}
        if den is None and image_embeds is not None:
            extra["image_embeds"] = image_embeds.embeds
        elif den is not None and getattr(den.config, "image_dim", None):
            if image_embeds is None:
                raise NodeError(NEEDS_IMAGE)
            extra["image_embeds"] = image_embeds.embeds
        return extra, {}

    def _stats(self, vae, like):
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(like.device, like.dtype)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(like.device, like.dtype)
        return mean, std

    def vae_encode(self, pipe, pixels, generator=None):
        vae = pipe.vae
        z = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        mean, std = self._stats(vae, z)
        return ((z - mean) / std).float()

    def vae_decode(self, pipe, latent):
        vae = pipe.vae
        z = latent.to(vae.device, vae.dtype)
        mean, std = self._stats(vae, z)
        return vae.decode(z * std + mean, return_dict=False)[0].float()


ADAPTERS = {"wan": WanAdapter()}
