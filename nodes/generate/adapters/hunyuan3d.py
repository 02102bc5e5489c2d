"""Hunyuan3D 2.0 / 2.1 (shapes): the transformers of nodes/generate/hunyuan3d_model.py over the ShapeVAE's latent of
64 channels by `resolution` tokens (held [B, 64, 1, 1, tokens]), reading DINOv2's tokens of the picture(s).

Sampled as ComfyUI samples it (ModelType.FLOW, shift 1 and multiplier 1: the plain flow line, which
ModelSamplingAuraFlow 1 in its templates keeps): the model is told sigma and gives the flow from the shape to the
noise. A 2.0 model also reads a guidance (FluxGuidance's value on the positive, ComfyUI's 5 otherwise) on top of the
sampler's true CFG; 2.1 reads none. No text: the negative is zeros of the picture tokens' shape."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter


class Hunyuan3DAdapter(Adapter):
    family = "hunyuan3d"
    space = "flow"
    prediction = "flow"
    has_text = False
    single_file = True

    def load(self, path, dtype, device, **opts):
        from nodes.generate.hunyuan3d import load_checkpoint
        if not path.is_file():
            raise NodeError(f"{path} is a folder; Hunyuan3D loads from ComfyUI's single checkpoint file "
                            "(hunyuan3d-dit-v2*.safetensors, hunyuan_3d_v2.1.safetensors)")
        return load_checkpoint(path, dtype)

    def title(self, pipe) -> str:
        return f"Hunyuan3D {getattr(pipe.transformer, 'variant', '')}".strip()

    def image_encoder_pipe(self, pipe):
        return pipe if getattr(pipe, "image_encoder", None) is not None else None

    def factors(self, pipe):
        return 1, 1, int(pipe.transformer.in_channels)

    crops_itself = True

    def encode_image(self, pipe, picture, device, crop: str = "center") -> torch.Tensor:
        from nodes.generate.hunyuan3d import dino_tokens
        return dino_tokens(pipe.image_encoder, picture, crop == "center")

    # -- sampling ------------------------------------------------------------------------
    def flow_shift(self, pipe) -> float:
        return 1.0

    def default_sigmas(self, pipe, steps, latent_shape):
        from nodes.generate.samplers import SigmaTable, normal_sigmas
        return normal_sigmas(SigmaTable.flow(1.0, self.flow_levels), steps)

    def uncond(self, pipe, positive):
        from dataclasses import replace
        from nodes.generate.hunyuan3d import GUIDANCE
        return replace(positive, embeds=torch.zeros_like(positive.embeds), prompts=("",),
                       meta={**positive.meta, "guidance": GUIDANCE}, parts=())

    def check_latent(self, handle, latent) -> None:
        from nodes.generate.hunyuan3d import check_tokens
        check_tokens(handle.pipe.transformer, latent)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        from nodes.generate.hunyuan3d import GUIDANCE
        model = handle.pipe.transformer
        rows = [c.embeds[:1] for c in conds]
        for c in rows:
            if c.shape[-1] != model.context_dim:
                raise NodeError(f"the picture was encoded {c.shape[-1]} wide and this Hunyuan3D {model.version} "
                                f"transformer reads {model.context_dim}: encode it with this checkpoint's own image "
                                "encoder")
        if len({c.shape[1] for c in rows}) > 1:
            raise NodeError("the positive and negative hold different numbers of picture tokens: make both with one "
                            "condition.hunyuan3d")
        context = torch.cat([c for c in rows for _ in range(batch)]).to(device, dtype)
        guidance = torch.tensor([float(c.meta.get("guidance", GUIDANCE)) for c in conds for _ in range(batch)])
        return {"context": context, "guidance": guidance.to(device)}

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        x = x_in[:, :, 0, 0].to(model.dtype)
        sigma = (t.float() / 1000).to(x.device).reshape(-1).expand(x.shape[0])
        # sigma and guidance stay float32, as ComfyUI hands them: their features are made before the cast to the
        # weights' precision (bf16 read 1000 (1 - sigma) up to 2 off, guidance 3.5 as 3.504)
        out = model(x, sigma, inputs["context"].to(model.dtype), inputs["guidance"].float())
        return out.float()[:, :, None, None]

    # -- VAE ------------------------------------------------------------------------------
    def vae_decode(self, pipe, latent):
        raise NodeError("a Hunyuan3D latent is a shape, not pictures: decode it with decode.hunyuan3d (a VOXEL grid), "
                        "then mesh.from_voxels")

    def vae_encode(self, pipe, pixels, generator=None):
        raise NodeError("Hunyuan3D's VAE encodes no pictures: start from latent.empty_hunyuan3d")


ADAPTERS = {"hunyuan3d": Hunyuan3DAdapter()}
