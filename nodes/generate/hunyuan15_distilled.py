"""HunyuanVideo 1.5's cfg-distilled transformers (hunyuanvideo1.5_*_cfg_distilled): one pass, no negative prompt, told
the guidance scale through an embedding of its own (Tencent's guidance_in), which diffusers'
HunyuanVideo15Transformer3DModel lacks. Tencent's model adds guidance_in(guidance x 1000) to the time embedding that
modulates every block and the final layer (not the token refiner's); with_guidance gives diffusers' model that
embedding, under the name the converter maps guidance_in to (time_embed.guidance_embedder).

ComfyUI tells every HunyuanVideo 1.5 model a guidance of 6 (its HunyuanVideo15 model's default, which the templates
keep); GUIDANCE is that."""
from __future__ import annotations

import torch

GUIDANCE = 6.0


def with_guidance(model):
    """`model` (a HunyuanVideo15Transformer3DModel) with a guidance embedding beside its time embedding."""
    from diffusers.models.embeddings import TimestepEmbedding
    from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15TimeEmbedding

    class GuidedTimeEmbedding(HunyuanVideo15TimeEmbedding):
        def forward(self, timestep, timestep_r=None):
            emb = super().forward(timestep, timestep_r)
            g = self.time_proj(torch.full(timestep.shape, GUIDANCE * 1000.0, device=timestep.device))
            return emb + self.guidance_embedder(g.to(timestep.dtype))

    width = model.time_embed.timestep_embedder.linear_1.out_features
    embed = GuidedTimeEmbedding(width, use_meanflow=model.time_embed.use_meanflow)
    embed.guidance_embedder = TimestepEmbedding(in_channels=256, time_embed_dim=width)
    model.time_embed = embed
    return model
