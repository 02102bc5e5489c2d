"""Text to video with kinograph-mini: classifier-free-guided flow-matching Euler sampling.

The graph's `sample` node does the same with its own sampler choice; this is the plain-function path
used by evaluation, tests and benchmarks.
"""
from __future__ import annotations

import numpy as np
import torch

from nodes.mini.subject_consensus import subject_consensus
from nodes.generate.families import FAMILIES
from nodes.generate.samplers import flow_sigmas, sample_flow_euler
from nodes.mini.model import CHANNELS, FAMILY, HEIGHT, NATIVE_FRAMES, T_MIN, WIDTH, to_uint8

# The graph's sample node falls back to the family's steps and cfg; one source keeps the plain path
# (evaluation, tests, benchmarks) measuring what the graph draws.
DEFAULT_STEPS = FAMILIES[FAMILY].steps
DEFAULT_GUIDANCE = FAMILIES[FAMILY].cfg
# The guide.subject_consensus strength of the example graphs (examples/mini_text_to_video.yaml,
# examples/default.yaml), so that evaluation measures what they draw.
DEFAULT_CONSENSUS = 0.5


def initial_noise(count: int, seed: int, frames: int = NATIVE_FRAMES) -> torch.Tensor:
    """[count,3,T,H,W] standard normal noise; clip i depends only on seed + i, so batching does not
    change a clip."""
    return torch.stack([torch.randn(CHANNELS, frames, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(seed + i))
                        for i in range(count)])


def guided_velocity(model, text_encoder, prompts: list[str], guidance: float, negative: str = "",
                    consensus: float = 0.0):
    """model_fn(x, sigma) -> velocity with classifier-free guidance against `negative`, its clean-clip
    estimate moved `consensus` of the way to the subject's template (nodes.mini.subject_consensus)."""
    emb, mask = text_encoder.encode(list(prompts) + [negative] * len(prompts))

    def model_fn(x, sigma):
        t = sigma.to(x.device, x.dtype).expand(2 * x.shape[0])
        cond, uncond = model(torch.cat([x, x]), t, emb.to(x.dtype), mask).chunk(2)
        v = uncond + guidance * (cond - uncond)
        if consensus > 0:
            # The model's own velocity <-> clean-clip relation (model.py), so strength 0 is exactly the
            # plain path.
            s = t[0].clamp(min=T_MIN)
            v = (x - subject_consensus(x - s * v, consensus)) / s
        return v

    return model_fn


@torch.no_grad()
def generate(model, text_encoder, prompts: list[str], seed: int = 0, steps: int = DEFAULT_STEPS,
             guidance: float = DEFAULT_GUIDANCE, shift: float = 1.0, frames: int = NATIVE_FRAMES,
             callback=None, consensus: float = 0.0) -> np.ndarray:
    """uint8 clips [B,T,H,W,3], one per prompt."""
    x = initial_noise(len(prompts), seed, frames).to(model.device, model.dtype)
    x = sample_flow_euler(guided_velocity(model, text_encoder, prompts, guidance, consensus=consensus), x,
                          flow_sigmas(steps, shift), callback)
    return to_uint8(x)
