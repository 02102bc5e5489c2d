"""Kandinsky 5 video (Lite): a transformer over 2x2 patches of HunyuanVideo's 16-channel latent, held channels-last
([B, T, h, w, C], as Kandinsky5T2VPipeline draws its noise), with a zero start latent and mask beside the noise in
text-to-video; image-to-video (kandinsky5_i2v.py) keeps the start frame's latent clean in the noise channels and
marks it in the mask channel, as Kandinsky5I2VPipeline does. The prompt is read by Qwen2.5-VL in the pipeline's chat
template (last hidden state, the template's 128 tokens cropped off) and by CLIP-L, whose pooled output joins the time
embedding; true CFG with a negative prompt, each prompt's own tokens only (no padding) in its own network call, as the
pipeline runs them.

Kandinsky 5 image (Lite): the same transformer without start-frame channels over one frame of FLUX.1's latent
(ae.safetensors), the prompt in Kandinsky5T2IPipeline's image chat template, no resolution-dependent rotary scaling."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, stack_global


class Kandinsky5Adapter(Adapter):
    family = "kandinsky5"
    clip_type = "kandinsky5"
    latent_hint = "latent.empty from HunyuanVideo's VAE, hunyuan_video_vae_bf16"
    single_file = True
    space = "flow"
    prediction = "flow"

    def factors(self, pipe):
        t, s = pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial
        if getattr(pipe, "vae", None) is None:
            return int(t), int(s), int(pipe.transformer.config.out_visual_dim)
        return int(t), int(s), int(pipe.vae.config.latent_channels)

    def encode_text(self, pipe, prompts, device):
        if getattr(pipe, "text_encoder", None) is None or getattr(pipe, "text_encoder_2", None) is None:
            raise NodeError("Kandinsky 5 reads a prompt with Qwen2.5-VL and CLIP-L together: give load.text_encoder "
                            f"qwen_2.5_vl_7b_fp8_scaled.safetensors and clip_l.safetensors as name2 (type {self.clip_type})")
        embeds, pooled, cu = pipe.encode_prompt(list(prompts), device=device, dtype=pipe.text_encoder.dtype)
        lengths = cu.diff().to(embeds.device)
        mask = torch.arange(embeds.shape[1], device=embeds.device)[None] < lengths[:, None]
        return embeds, mask, pooled

    def token_offsets(self, pipe, text):
        return None             # the template's tokens are cropped: no span of the prompt maps onto them

    def keeps_clean(self, handle):
        # Kandinsky5I2VPipeline hands the model its start frame clean (never noised), marked by the mask channel
        return bool(handle.pipe.transformer.config.visual_cond)

    def draw_noise(self, shape, generator):
        b, c, t, h, w = shape
        return torch.randn((b, t, h, w, c), generator=generator, dtype=torch.float32).permute(0, 4, 1, 2, 3)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        e, m, p = stack_global(conds, frames, device, dtype, batch, self.factors(handle.pipe)[0])
        if p is None:
            raise NodeError("this conditioning has no CLIP-L pooled output, which Kandinsky 5 reads: encode the prompt "
                            f"with load.text_encoder type {self.clip_type} (Qwen2.5-VL and clip_l)")
        return {"encoder_hidden_states": e, "mask": m, "pooled": p}

    def forward(self, handle, x_in, t, inputs):
        pipe = handle.pipe
        model = pipe.transformer
        cfg = model.config
        n, c, f, h, w = x_in.shape
        if c != cfg.out_visual_dim:
            raise NodeError(f"this latent has {c} channels; Kandinsky 5 samples {cfg.out_visual_dim} (make it with "
                            f"{self.latent_hint})")
        x = x_in.permute(0, 2, 3, 4, 1).to(model.dtype)
        if cfg.visual_cond:         # zeros where a start latent could go, and its mask: 1 on the frames kept clean
            kept = inputs.get("noise_mask")
            kept = x.new_zeros(n, f, h, w, 1) if kept is None else \
                (1 - kept.to(x)).permute(0, 2, 3, 4, 1).expand(n, -1, -1, -1, -1)
            x = torch.cat([x, x.new_zeros(n, f, h, w, c), kept], dim=-1)
        dev = x.device
        rope = [torch.arange(f, device=dev), torch.arange(h // 2, device=dev), torch.arange(w // 2, device=dev)]
        scale = self.rope_scale(pipe, h, w)
        outs = []
        for i in range(n):
            e = inputs["encoder_hidden_states"][i][inputs["mask"][i]][None].to(model.dtype)
            outs.append(model(hidden_states=x[i:i + 1], encoder_hidden_states=e,
                              pooled_projections=inputs["pooled"][i:i + 1].to(model.dtype),
                              timestep=t.to(dev).reshape(1).to(model.dtype), visual_rope_pos=rope,
                              text_rope_pos=torch.arange(e.shape[1], device=dev), scale_factor=scale,
                              sparse_params=None, return_dict=False))
        return torch.cat(outs).float().permute(0, 4, 1, 2, 3)

    def rope_scale(self, pipe, h: int, w: int):
        """The rotary positions' scale at this latent size (Kandinsky5T2VPipeline's _get_scale_factor)."""
        space = self.factors(pipe)[1]
        return pipe._get_scale_factor(h * space, w * space)


class Kandinsky5ImageAdapter(Kandinsky5Adapter):
    family = "kandinsky5image"
    clip_type = "kandinsky5_image"
    latent_hint = "latent.empty from FLUX.1's VAE, ae.safetensors"

    def factors(self, pipe):
        if getattr(pipe, "vae", None) is None:
            return 1, 8, int(pipe.transformer.config.out_visual_dim)
        return 1, int(pipe.vae_scale_factor_spatial), int(pipe.vae.config.latent_channels)

    def rope_scale(self, pipe, h: int, w: int):
        return [1.0, 1.0, 1.0]      # Kandinsky5T2IPipeline's at every size


ADAPTERS = {"kandinsky5": Kandinsky5Adapter(), "kandinsky5image": Kandinsky5ImageAdapter()}
