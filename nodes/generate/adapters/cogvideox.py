"""CogVideoX: T5 text (226 tokens), a 3-D VAE (4x time, 8x space), a v-prediction transformer on
[B, F, C, h, w] latents with a zero-terminal-SNR DDIM schedule."""
from __future__ import annotations

from pathlib import Path

import torch

from nodes.generate.adapters.base import Adapter, stack_global, with_concat


class CogVideoXAdapter(Adapter):
    family = "cogvideox"
    prediction = "v_prediction"
    frames_first = True
    max_tokens = 226

    def load(self, path: Path, dtype, device: str, **opts):
        """A diffusers folder, or one as ComfyUI's CogVideoX pack keeps it: CogVideo/<name>/ with only
        transformer/, vae/ and scheduler/ (no model_index.json; the T5 encoder comes from load.text_encoder)."""
        if Path(path).is_dir() and not (Path(path) / "model_index.json").is_file():
            from nodes.generate.converters.pipelines import load_folder_parts
            pipe = load_folder_parts(self.family, Path(path), dtype)
            if pipe is not None:
                return pipe
        return super().load(path, dtype, device, **opts)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        e, _, _ = stack_global(conds, frames, device, dtype, batch, self.factors(handle.pipe)[0])
        # an inpainting model's (VOID's) mask and kept-picture channels, after the noise's
        return with_concat({"encoder_hidden_states": e}, conds, frames, batch, device, dtype)

    def forward(self, handle, x_in, t, inputs):
        pipe = handle.pipe
        model = pipe.transformer
        _, _, f, h, w = x_in.shape
        rotary = None
        if model.config.use_rotary_positional_embeddings:
            sf = pipe.vae_scale_factor_spatial
            rotary = pipe._prepare_rotary_positional_embeddings(h * sf, w * sf, f, x_in.device)
        if "concat" in inputs:
            x_in = torch.cat([x_in, inputs["concat"].to(x_in)], 1)
        x = x_in.permute(0, 2, 1, 3, 4).to(model.dtype)
        out = model(hidden_states=x, encoder_hidden_states=inputs["encoder_hidden_states"],
                    timestep=t.to(x.device).expand(x.shape[0]), image_rotary_emb=rotary, return_dict=False)[0]
        return out.float().permute(0, 2, 1, 3, 4)



ADAPTERS = {"cogvideox": CogVideoXAdapter()}
