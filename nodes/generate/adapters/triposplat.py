"""TripoSplat (picture to 3-D Gaussian splat): the flow transformer of nodes/generate/triposplat_flow.py over 8192
shape tokens of 16 channels (held [B, 16, 1, 1, 8192]) and a camera token of 5 (the latent's `camera`), reading the
picture's DINOv3 tokens and FLUX.2 latent (condition.triposplat).

Sampled as ComfyUI samples its nested latent (ModelType.FLOW, shift 3, the model told 1000 sigma; both streams
stepped alike): the shape tokens' noise is drawn first, in ComfyUI's [B, 8192, 16] order, then the camera's, from
one generator (comfy.sample.prepare_noise on a NestedTensor)."""
from __future__ import annotations

import dataclasses

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import apart, joined
from nodes.generate.adapters.picture_flow import PictureFlowAdapter
from nodes.generate.triposplat_flow import CAMERA, CHANNELS, TOKENS

SHIFT = 3.0         # ComfyUI's supported_models TripoSplat: sampling_settings shift 3.0


def _camera(latent) -> torch.Tensor:
    """The latent's camera token (zeros where a latent carries none, as TripoSplatConditioning makes it)."""
    if latent.camera is not None:
        return latent.camera.float()
    return torch.zeros(latent.samples.shape[0], 1, CAMERA)


class TripoSplatAdapter(PictureFlowAdapter):
    family = "triposplat"
    name = "TripoSplat"
    model_file = "triposplat_fp16.safetensors"
    condition_node = "condition.triposplat"
    reads = "TripoSplat's model reads DINOv3 ViT-H's tokens"
    channels = CHANNELS

    def title(self, pipe) -> str:
        return "TripoSplat"

    def flow_shift(self, pipe) -> float:
        return SHIFT

    def default_sigmas(self, pipe, steps, latent_shape):
        from nodes.generate.samplers import SigmaTable, simple_sigmas
        return simple_sigmas(SigmaTable.flow(self.flow_shift(pipe), self.flow_levels), steps)

    def check_latent(self, handle, latent) -> None:
        s = latent.samples
        if latent.family != "triposplat" or s.ndim != 5 or s.shape[1:4] != (CHANNELS, 1, 1) or s.shape[4] > TOKENS:
            raise NodeError(f"this is a {latent.family} latent of shape {list(s.shape)}; TripoSplat's model samples "
                            "its shape tokens: take the latent condition.triposplat makes")
        if latent.camera is not None and tuple(latent.camera.shape) != (s.shape[0], 1, CAMERA):
            raise NodeError(f"the latent's camera token is of shape {list(latent.camera.shape)}, not "
                            f"[{s.shape[0]}, 1, {CAMERA}]: take the latent condition.triposplat makes")

    # the two streams as one sampler state
    def pack(self, latent):
        return joined(latent.samples.float(), _camera(latent))

    def unpack(self, latent, x):
        shape, camera = apart(x, latent.samples.shape[1:], (1, _camera(latent).shape[-1]))
        return dataclasses.replace(latent, samples=shape, camera=camera)

    def latent_noise(self, latent, generator, video=None):
        b, c, _, _, n = latent.samples.shape
        if video is None:
            video = torch.randn((b, n, c), generator=generator, dtype=torch.float32).transpose(1, 2).reshape(
                latent.samples.shape)
        camera = torch.randn(tuple(_camera(latent).shape), generator=generator, dtype=torch.float32)
        return joined(video.float(), camera)

    def for_latent(self, handle, latent):
        return handle.with_option("triposplat_streams", (tuple(latent.samples.shape[1:]),
                                                         tuple(_camera(latent).shape[1:])))

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        model = handle.pipe.transformer
        context = self.picture_tokens(handle, conds, batch)
        refs = [c.extra.get("reference_latents") for c in conds]
        if any(r is None for r in refs):
            return {"context": context.to(device, dtype), "reference": None}
        if len({tuple(r.shape) for r in refs}) > 1 or refs[0].shape[1] != model.reference_dim:
            raise NodeError(f"the picture's FLUX.2 latents are of shapes {[list(r.shape) for r in refs]}; TripoSplat "
                            f"reads one of {model.reference_dim} channels for both prompts: make both with one "
                            "condition.triposplat")
        reference = torch.cat([r[:1] for r in refs for _ in range(batch)])
        return {"context": context.to(device, dtype), "reference": reference.to(device, dtype)}

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        streams = handle.option("triposplat_streams")
        shape, camera = apart(x_in, *streams)
        n = x_in.shape[0]
        z = shape.reshape(n, shape.shape[1], -1).transpose(1, 2)         # ComfyUI's [B, tokens, 16]
        timestep = t.float().reshape(-1).expand(n).to(x_in.device)
        out, cam = model(z.to(model.dtype), camera.to(model.dtype), timestep.to(model.dtype),
                         inputs["context"], inputs["reference"])
        return joined(out.float().transpose(1, 2).reshape(shape.shape), cam.float())

    # -- VAE ------------------------------------------------------------------------------
    def vae_decode(self, pipe, latent):
        raise NodeError("a TripoSplat latent is a splat, not pictures: decode it with decode.triposplat (ComfyUI's "
                        "VAEDecodeTripoSplat)")

    def vae_encode(self, pipe, pixels, generator=None):
        raise NodeError("TripoSplat encodes no pictures: take the latent condition.triposplat makes")


ADAPTERS = {"triposplat": TripoSplatAdapter()}
