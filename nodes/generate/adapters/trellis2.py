"""TRELLIS.2 (picture to 3-D shape), its sparse-structure stage: the structure flow transformer of
nodes/generate/trellis2_flow.py over the 32-channel 16^3 structure latent (held [B, 32, 16, 16, 16]: the grid's
depth as frames), reading DINOv3's 512 tokens of the picture (condition.trellis2).

Sampled as ComfyUI samples it (ModelType.FLOW: the model is told 1000 sigma and gives the flow from the shape to the
noise; the shift is ModelSamplingSD3's, 5 in the templates). No text: the negative is zeros of the picture tokens'
shape, and cfg counts only at levels 0.6 to 1 (GUIDED). The shape and texture stages of the same file do not run yet."""
from __future__ import annotations

from graph_engine import NodeError
from nodes.generate.adapters.picture_flow import PictureFlowAdapter
from nodes.generate.trellis2_flow import CHANNELS, SIDE

# ComfyUI's Trellis2.guidance_interval (TRELLIS.2's sparse-structure sampler's): cfg steers the structure only while
# sigma is within it
GUIDED = (0.6, 1.0)


class Trellis2Adapter(PictureFlowAdapter):
    family = "trellis2"
    name = "TRELLIS.2"
    model_file = "trellis_2_int8_convrot.safetensors"
    condition_node = "condition.trellis2"
    reads = "TRELLIS.2's structure model reads DINOv3's tokens"
    channels = CHANNELS

    def title(self, pipe) -> str:
        return "TRELLIS.2 structure"

    def flow_shift(self, pipe) -> float:
        return 1.0          # ComfyUI's flow default; its templates set 5 with ModelSamplingSD3 (model.flow_shift)

    def default_sigmas(self, pipe, steps, latent_shape):
        from nodes.generate.samplers import SigmaTable, normal_sigmas
        return normal_sigmas(SigmaTable.flow(self.flow_shift(pipe), self.flow_levels), steps)

    def check_latent(self, handle, latent) -> None:
        if latent.family != "trellis2" or tuple(latent.samples.shape[1:]) != (CHANNELS, SIDE, SIDE, SIDE):
            raise NodeError(f"this is a {latent.family} latent of shape {list(latent.samples.shape)}; TRELLIS.2's "
                            "structure model samples the structure latent: make it with "
                            "latent.empty_trellis2_structure")

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        return {"context": self.picture_tokens(handle, conds, batch).to(device, dtype), "groups": len(conds)}

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
