"""Stable Video Diffusion: image-to-video. CLIP-vision image embedding instead of text, the
VAE-encoded start image concatenated to every frame's latent, EDM noise levels, v-prediction,
and guidance that rises linearly over the frames."""
from __future__ import annotations

import math

import torch

from nodes.generate.adapters.base import Adapter, frames_from_batch, frames_in_batch
from nodes.generate.latent import Conditioning


class SVDAdapter(Adapter):
    family = "svd"
    single_file = True
    prediction = "v_prediction"
    frames_first = True
    has_text = False
    decode_chunk = 8

    def timestep_fn(self, pipe):
        return lambda sigma: 0.25 * torch.as_tensor(sigma, dtype=torch.float32).clamp(min=1e-10).log()

    def sigma_range(self, pipe):
        cfg = pipe.scheduler.config
        return float(cfg.get("sigma_min") or 0.002), float(cfg.get("sigma_max") or 700.0)

    def percent_sigma(self, pipe, percent, shift=None):
        """ComfyUI's ModelSamplingContinuousEDM.percent_to_sigma: log-linear from sigma_max (0) to sigma_min."""
        if percent <= 0.0:
            return math.inf
        if percent >= 1.0:
            return 0.0
        lo, hi = self.sigma_range(pipe)
        return math.exp((math.log(hi) - math.log(lo)) * (1.0 - percent) + math.log(lo))

    def encode_image(self, pipe, image, device):
        if min(image.size) < 2:
            # diffusers' antialiasing blur pads by reflection, which needs two pixels a side; repeating
            # a one-pixel row or column adds nothing the resize to the encoder's square would not.
            from PIL import Image
            image = image.resize((max(2, image.width), max(2, image.height)), Image.Resampling.NEAREST)
        return pipe._encode_image(image, device, 1, False)

    def frame_condition(self, pipe, latent, first, last, image_embeds, motion=127, noise_aug=0.02):
        from graph_engine import NodeError
        if first is None:
            raise NodeError("Stable Video Diffusion needs the first frame")
        if last is not None:
            raise NodeError("Stable Video Diffusion cannot pin a last frame; use a Wan FLF2V model for that")
        device = pipe.vae.device
        image = pipe.video_processor.preprocess(first, height=latent.height, width=latent.width).to(device)
        gen = torch.Generator("cpu").manual_seed(0)
        image = image + noise_aug * torch.randn(image.shape, generator=gen).to(image)
        z = pipe._encode_vae_image(image, device=device, num_videos_per_prompt=1, do_classifier_free_guidance=False)
        t = latent.samples.shape[2]
        return ({"concat": z[:, :, None].repeat(1, 1, t, 1, 1).float().cpu()},
                {"added_time_ids": [float(latent.fps) - 1, float(motion), float(noise_aug)]})

    def uncond(self, pipe, positive):
        """SVD's unconditional branch: zero image embedding and zero image latents."""
        return Conditioning("svd", torch.zeros_like(positive.embeds),
                            extra={k: torch.zeros_like(v) for k, v in positive.extra.items()},
                            meta=dict(positive.meta))

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        from graph_engine import NodeError
        pos = conds[-1]
        if "concat" not in pos.extra:
            raise NodeError("SVD needs its start frame: pass the positive conditioning through condition.frames "
                            "with the first frame")
        idx = torch.as_tensor(list(frames))
        return {"encoder_hidden_states": torch.cat([c.embeds for c in conds for _ in range(batch)]).to(device, dtype),
                "concat": torch.cat([c.extra["concat"][:, :, idx] for c in conds for _ in range(batch)]).to(
                    device, dtype),
                "added_time_ids": torch.tensor([pos.meta["added_time_ids"]] * (len(conds) * batch),
                                               dtype=dtype, device=device)}

    def forward(self, handle, x_in, t, inputs):
        x = torch.cat([x_in, inputs["concat"]], dim=1).permute(0, 2, 1, 3, 4)
        out = handle.pipe.unet(x, t, encoder_hidden_states=inputs["encoder_hidden_states"],
                               added_time_ids=inputs["added_time_ids"], return_dict=False)[0]
        return out.permute(0, 2, 1, 3, 4)

    def guidance_scale(self, cfg, num_frames, device):
        """From 1 at the first frame (the given image) to cfg at the last, as SVD was tuned."""
        return torch.linspace(1.0, cfg, num_frames, device=device).view(1, 1, num_frames, 1, 1)

    def vae_encode(self, pipe, pixels, generator=None):
        vae = pipe.vae
        z = vae.encode(frames_in_batch(pixels).to(vae.device, vae.dtype)).latent_dist.mode()
        return frames_from_batch(z * vae.config.scaling_factor, pixels.shape[0]).float()

    def vae_decode(self, pipe, latent):
        z = latent.permute(0, 2, 1, 3, 4).to(pipe.vae.device, pipe.vae.dtype)
        return pipe.decode_latents(z, z.shape[1], self.decode_chunk).float()

    def set_vae_tiling(self, pipe, on):
        self.decode_chunk = 1 if on else 8


ADAPTERS = {"svd": SVDAdapter()}
