"""HunyuanVideo: Llama text (a prompt template, cropped) plus a CLIP pooled vector, a 3-D VAE,
a flow-matching transformer with guidance distilled in (cfg is an input, no negative pass)."""
from __future__ import annotations

import numpy as np
import torch

from nodes.generate.adapters.base import Adapter, stack_global


class HunyuanAdapter(Adapter):
    family = "hunyuan"
    single_file = True
    space = "flow"
    prediction = "flow"
    embedded_guidance = True
    max_tokens = 256

    def encode_text(self, pipe, prompts, device):
        embeds, pooled, mask = pipe.encode_prompt(list(prompts), list(prompts), device=device,
                                                  max_sequence_length=self.max_tokens)
        return embeds, mask.bool(), pooled

    def token_offsets(self, pipe, text):
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE
        template, crop = DEFAULT_PROMPT_TEMPLATE["template"], DEFAULT_PROMPT_TEMPLATE["crop_start"]
        prefix = template.index("{}")
        offsets = self._offsets(pipe.tokenizer, template.format(text), self.max_tokens + crop)[crop:]
        return [None if o is None else (o[0] - prefix, o[1] - prefix) for o in offsets]

    def default_sigmas(self, pipe, steps, latent_shape):
        sch = self.scheduler(pipe)
        sch.set_timesteps(sigmas=np.linspace(1.0, 0.0, steps + 1)[:-1])
        return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        e, m, p = stack_global(conds, frames, device, dtype, batch, self.factors(handle.pipe)[0])
        return {"encoder_hidden_states": e, "encoder_attention_mask": m, "pooled_projections": p}

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n = x_in.shape[0]
        guidance = torch.full((n,), float(inputs.pop("guidance", 6.0)) * 1000.0, dtype=model.dtype,
                              device=x_in.device)
        return model(hidden_states=x_in.to(model.dtype), timestep=t.to(x_in.device).expand(n).to(x_in.dtype),
                     guidance=guidance, return_dict=False, **inputs)[0]



ADAPTERS = {"hunyuan": HunyuanAdapter()}
