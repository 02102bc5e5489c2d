"""How SeedVR2's transformer (nodes/generate/seedvr2_dit.py) samples, as ComfyUI's model_base.SeedVR2 runs it: a flow
model told sigma x 1000, predicting the velocity (noise - x0), reading condition.seedvr2's channels (the clip's latent
and a plane of ones) beside the noise and the prompt embedding its own file carries. It reads no text encoder."""
from __future__ import annotations

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter


class SeedVR2Denoising(Adapter):
    space = "flow"
    prediction = "flow"
    has_text = False

    def encode_text(self, pipe, prompts, device):
        raise NodeError("SeedVR2 reads no prompt: its transformer file carries the prompt embeddings it was trained "
                        "on, which condition.seedvr2 hands the sampler")

    def default_sigmas(self, pipe, steps, latent_shape):
        """1 down to 0 in `steps` even steps (ComfyUI's simple schedule at shift 1): one step restores."""
        return torch.as_tensor(np.linspace(1.0, 0.0, steps + 1), dtype=torch.float64)

    def flow_shift(self, pipe) -> float:
        return float(self.scheduler(pipe).config.shift)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        idx = torch.as_tensor([int(i) for i in frames])
        texts, concat = [], []
        for c in conds:
            if "concat" not in c.extra or c.embeds.ndim != 3:
                raise NodeError("SeedVR2 samples with condition.seedvr2's conditionings (ComfyUI's "
                                "SeedVR2Conditioning), which carry the clip to restore: connect them to positive and "
                                "negative")
            cat = c.extra["concat"]
            if int(idx.max()) >= cat.shape[2]:
                raise NodeError(f"condition.seedvr2's clip latent has {cat.shape[2]} latent frames and the latent "
                                f"sampled has {int(idx.max()) + 1} or more: sample the latent condition.seedvr2 read "
                                "(SeedVR2's VAE encoding of the padded clip)")
            texts += [c.embeds[0]] * batch
            concat += [cat[:, :, idx].expand(batch, -1, -1, -1, -1)] if cat.shape[0] == 1 else [cat[:, :, idx]]
        return {"text": texts, "concat": torch.cat(concat).to(device, dtype)}

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        concat = inputs["concat"]
        if concat.shape[0] != x_in.shape[0] or concat.shape[2:] != x_in.shape[2:]:
            raise NodeError(f"condition.seedvr2's clip latent is {list(concat.shape[1:])} a sample and the latent "
                            f"sampled is {list(x_in.shape[1:])}: sample the latent condition.seedvr2 read (SeedVR2's "
                            "VAE encoding of the padded clip), at denoise 1")
        timestep = t.to(x_in.device).float().reshape(-1).expand(x_in.shape[0])
        return model(x_in, concat, timestep, inputs["text"]).float()
