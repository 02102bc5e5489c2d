"""TRELLIS.2 (picture to 3-D shape), its sparse-structure stage: the structure flow transformer of
nodes/generate/trellis2_flow.py over the 32-channel 16^3 structure latent (held [B, 32, 16, 16, 16]: the grid's
depth as frames), reading DINOv3's 512 tokens of the picture (condition.trellis2).

Sampled as ComfyUI samples it (ModelType.FLOW: the model is told 1000 sigma and gives the flow from the shape to the
noise; the shift is ModelSamplingSD3's, 5 in the templates). No text: the negative is zeros of the picture tokens'
shape, and cfg counts only at levels 0.6 to 1 (GUIDED). The shape and texture stages of the same file do not run yet."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter

# ComfyUI's Trellis2.guidance_interval (TRELLIS.2's sparse-structure sampler's): cfg steers the structure only while
# sigma is within it
GUIDED = (0.6, 1.0)


class Trellis2Adapter(Adapter):
    family = "trellis2"
    space = "flow"
    prediction = "flow"
    has_text = False
    single_file = True

    def load(self, path, dtype, device, **opts):
        raise NodeError(f"{path.name}: TRELLIS.2's model loads with load.diffusion_model (ComfyUI's UNETLoader), "
                        "from diffusion_models/trellis_2_int8_convrot.safetensors")

    def title(self, pipe) -> str:
        return "TRELLIS.2 structure"

    def image_encoder_pipe(self, pipe):
        return None

    def factors(self, pipe):
        from nodes.generate.trellis2_flow import CHANNELS
        return 1, 1, CHANNELS

    def flow_shift(self, pipe) -> float:
        return 1.0          # ComfyUI's flow default; its templates set 5 with ModelSamplingSD3 (model.flow_shift)

    def default_sigmas(self, pipe, steps, latent_shape):
        from nodes.generate.samplers import SigmaTable, normal_sigmas
        return normal_sigmas(SigmaTable.flow(self.flow_shift(pipe), self.flow_levels), steps)

    def uncond(self, pipe, positive):
        from dataclasses import replace
        return replace(positive, embeds=torch.zeros_like(positive.embeds), prompts=("",),
                       extra={k: torch.zeros_like(v) for k, v in positive.extra.items()}, parts=())

    def check_latent(self, handle, latent) -> None:
        from nodes.generate.trellis2_flow import CHANNELS, SIDE
        if latent.family != "trellis2" or tuple(latent.samples.shape[1:]) != (CHANNELS, SIDE, SIDE, SIDE):
            raise NodeError(f"this is a {latent.family} latent of shape {list(latent.samples.shape)}; TRELLIS.2's "
                            "structure model samples the structure latent: make it with "
                            "latent.empty_trellis2_structure")

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        model = handle.pipe.transformer
        for c in conds:
            if c.family != "trellis2" or c.embeds.shape[-1] != model.context_dim:
                raise NodeError(f"the conditioning is a {c.family} one {c.embeds.shape[-1]} wide; TRELLIS.2's "
                                f"structure model reads DINOv3's tokens ({model.context_dim} wide): make it with "
                                "condition.trellis2")
        if len({c.embeds.shape[1] for c in conds}) > 1:
            raise NodeError("the positive and negative hold different numbers of picture tokens: make both with one "
                            "condition.trellis2")
        context = torch.cat([c.embeds[:1] for c in conds for _ in range(batch)])
        return {"context": context.to(device, dtype), "groups": len(conds)}

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        context, groups = inputs["context"], inputs["groups"]
        sigma = float(t.flatten()[0]) / 1000.0
        if groups > 1 and not GUIDED[0] <= sigma <= GUIDED[1]:
            # ComfyUI's shape_rule: outside the interval the picture's prediction (the last group, the positive)
            # stands for every group of the cfg batch, so cfg leaves those steps alone
            one = x_in.shape[0] // groups
            return self._run(model, x_in[-one:], t, context[-one:]).repeat(groups, 1, 1, 1, 1)
        return self._run(model, x_in, t, context)

    @staticmethod
    def _run(model, x_in, t, context):
        timestep = t.float().reshape(-1).expand(x_in.shape[0]).to(x_in.device)
        out = model(x_in.to(model.dtype), timestep.to(model.dtype), context.to(model.dtype))
        return out.float()

    # -- VAE ------------------------------------------------------------------------------
    def vae_decode(self, pipe, latent):
        raise NodeError("a TRELLIS.2 structure latent is a shape, not pictures: decode it with "
                        "decode.trellis2_structure (a VOXEL grid), then mesh.from_voxels")

    def vae_encode(self, pipe, pixels, generator=None):
        raise NodeError("TRELLIS.2 encodes no pictures: start from latent.empty_trellis2_structure")


ADAPTERS = {"trellis2": Trellis2Adapter()}
