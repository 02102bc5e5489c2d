"""Stable Diffusion 1.5 (images) and AnimateDiff (SD 1.5 + a motion adapter): CLIP text, 2-D VAE."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from graph_engine import NodeError
from nodes.generate.clip_windows import same_length
from nodes.generate.adapters.base import Adapter, frame_centres, frames_from_batch, frames_in_batch, with_concat


class SDAdapter(Adapter):
    family = "sd"
    per_frame_text = True

    def load(self, path: Path, dtype, device: str, config: Optional[str] = None, **opts):
        from diffusers import StableDiffusionPipeline
        kw = dict(dtype=dtype, local_files_only=True, safety_checker=None, requires_safety_checker=False)
        if path.is_file():
            if not config:
                from nodes.generate.converters.sd import sd15_pipeline
                return sd15_pipeline(path, dtype)
            return StableDiffusionPipeline.from_single_file(str(path), config=str(config), **kw)
        from nodes.generate.model_manager import read_index
        if read_index(path).get("_class_name") == "AnimateDiffPipeline":
            from diffusers import AnimateDiffPipeline
            pipe = AnimateDiffPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)
            return StableDiffusionPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                           unet=_unet2d(pipe.unet), scheduler=pipe.scheduler, safety_checker=None,
                                           feature_extractor=None, requires_safety_checker=False)
        return StableDiffusionPipeline.from_pretrained(str(path), **kw)

    clip_layers = True                  # encode_text takes clip_skip (1 = last CLIP layer)

    def encode_text(self, pipe, prompts, device, clip_skip: int = 1):
        if clip_skip <= 1:
            embeds, _ = pipe.encode_prompt(list(prompts), device, 1, False)
            return embeds, None, None
        tok = pipe.tokenizer(list(prompts), padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt")
        ((_, run),) = self.clip_encoders(pipe, device, clip_skip)
        return run(tok.input_ids)[0], None, None

    def clip_encoders(self, pipe, device, clip_skip: int = 1):
        """[(tokenizer, token ids [N, 77] -> (hidden states [N, 77, D], pooled or None))], one per CLIP encoder, for
        prompts read in windows (clip_windows)."""
        if _xl(pipe):                   # AnimateDiff-SDXL
            return _sdxl().clip_encoders(pipe, device, clip_skip)
        enc = pipe.text_encoder

        def run(ids):
            out = enc(ids.to(device), output_hidden_states=clip_skip > 1)
            if clip_skip <= 1:
                return out[0], None
            # The clip_skip-th layer from the end through the final layer norm, as ComfyUI and A1111 take it
            # (diffusers' own clip_skip path reaches for `text_model`, which transformers 5 no longer has).
            hidden = out.hidden_states
            norm = getattr(enc, "final_layer_norm", None) or enc.text_model.final_layer_norm
            return norm(hidden[-min(clip_skip, len(hidden) - 1)]).to(enc.dtype), None
        return [(pipe.tokenizer, run)]

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        from nodes.generate.lotus import check_model
        check_model(handle.pipe.unet, conds)
        pix = frame_centres(frames, 1)
        ehs = []
        for c in conds:
            e, _, _ = c.at_frames(pix)
            ehs += [e] * batch
        inputs = with_control({"encoder_hidden_states": same_length(ehs).to(device, dtype)}, handle, pix,
                              len(conds) * batch, device, dtype)
        return with_concat(inputs, conds, frames, batch, device, dtype)

    def model_input(self, pipe, x, sigma):
        from nodes.generate.lotus import is_lotus
        # Lotus reads the picture's latent as it is (ComfyUI's IMG_TO_IMG sampling), not scaled to the noise level
        return x if is_lotus(pipe.unet) else super().model_input(pipe, x, sigma)

    def forward(self, handle, x_in, t, inputs):
        from nodes.generate.lotus import is_lotus, task_embedding
        ehs = inputs["encoder_hidden_states"]
        extra = control_residuals(frames_in_batch(x_in), t, ehs, inputs.get("control"))
        if is_lotus(handle.pipe.unet):
            extra["class_labels"] = task_embedding(ehs.shape[0]).to(ehs.device, ehs.dtype)
        out = handle.pipe.unet(concat_flat(handle, x_in, inputs), t, encoder_hidden_states=ehs, return_dict=False,
                               **extra)[0]
        return frames_from_batch(out, x_in.shape[0])

    def vae_per_frame(self):
        return True

    def vae_encode(self, pipe, pixels, generator=None):
        vae = pipe.vae
        with _upcast(vae):          # SDXL's VAE overflows in fp16 encoding as in decoding (diffusers upcasts both)
            z = vae.encode(frames_in_batch(pixels).to(vae.device, vae.dtype)).latent_dist.mean
        return frames_from_batch(z * vae.config.scaling_factor, pixels.shape[0]).float()

    def vae_decode(self, pipe, latent):
        vae = pipe.vae
        z = frames_in_batch(latent) / vae.config.scaling_factor
        with _upcast(vae):
            img = vae.decode(z.to(vae.device, vae.dtype), return_dict=False)[0]
        return frames_from_batch(img, latent.shape[0]).float()


class AnimateDiffAdapter(SDAdapter):
    family = "animatediff"

    def load(self, path: Path, dtype, device: str, config: Optional[str] = None, motion_adapter=None, **opts):
        from diffusers import AnimateDiffPipeline
        from nodes.generate.model_manager import read_index
        if path.is_dir() and read_index(path).get("_class_name") == "AnimateDiffPipeline" and not motion_adapter:
            return AnimateDiffPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)
        from nodes.generate.model_manager import KINDS, detect_family, load_motion_adapter, resolve_model_path
        xl = path.is_file() and not config and detect_family(path)[0] == "sdxl"
        if xl:
            from nodes.generate.adapters.sdxl import SDXLAdapter
            base = SDXLAdapter().load(path, dtype, device)
        else:
            base = SDAdapter.load(self, path, dtype, device, config=config)
        if motion_adapter is None:
            raise NodeError(f"AnimateDiff needs a motion adapter: none was given and {path} has no "
                            "motion_adapter/ folder. Set `motion_adapter` to a motion module (a diffusers "
                            "MotionAdapter folder, or an mm_sd_v15*.safetensors/.ckpt file; mm_sdxl_v10_beta "
                            "with an SDXL checkpoint)")
        motion = resolve_model_path(str(motion_adapter), KINDS["motion"], "motion adapter")
        adapter = load_motion_adapter(motion, dtype)
        check_motion_fits(motion, adapter, base.unet, path, xl)
        if xl:
            from diffusers import AnimateDiffSDXLPipeline
            pipe = AnimateDiffSDXLPipeline(vae=base.vae, text_encoder=base.text_encoder,
                                           text_encoder_2=base.text_encoder_2, tokenizer=base.tokenizer,
                                           tokenizer_2=base.tokenizer_2, unet=base.unet, motion_adapter=adapter,
                                           scheduler=motion_scheduler(base.scheduler, motion))
            # diffusers' UNetMotionModel.from_unet2d leaves SDXL's pooled-text-and-size embedding at its random
            # init (huggingface/diffusers#6721, deferred in review): every frame was conditioned on noise.
            pipe.unet.add_embedding.load_state_dict(base.unet.add_embedding.state_dict())
        else:
            pipe = AnimateDiffPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                       unet=base.unet, motion_adapter=adapter, scheduler=base.scheduler)
        if pipe.unet.dtype != dtype:
            pipe.unet.to(dtype=dtype)
        return pipe

    # AnimateDiff-SDXL (mm_sdxl_v10_beta on an SDXL checkpoint): SDXL's VAE and latents, two text encoders, pooled
    # text and size conditioning, with the motion UNet in between.
    def title(self, pipe) -> str:
        return "AnimateDiff-SDXL" if _xl(pipe) else super().title(pipe)

    def latents(self, pipe) -> str:
        return "sdxl" if _xl(pipe) else super().latents(pipe)

    def encode_text(self, pipe, prompts, device, clip_skip: int = 1):
        if _xl(pipe):
            return _sdxl().encode_text(pipe, prompts, device, clip_skip)
        return super().encode_text(pipe, prompts, device, clip_skip)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        if _xl(handle.pipe):
            return _sdxl().conditioning_inputs(handle, conds, frames, batch, device, dtype)
        return super().conditioning_inputs(handle, conds, frames, batch, device, dtype)

    def frame_limit(self, pipe):
        # The motion module's position table ends at motion_max_seq_length (32 in v2/v3 modules, 24 in v1);
        # past it the unet failed with torch's "The size of tensor a (40) must match the size of tensor b
        # (32)". The modules were trained on 16 frames, AnimateDiff-Evolved's default context length.
        limit = pipe.unet.config.get("motion_max_seq_length")
        return (int(limit), min(16, int(limit))) if limit else None

    def forward(self, handle, x_in, t, inputs):
        limit = self.frame_limit(handle.pipe)
        if limit and x_in.shape[2] > limit[0]:
            # Sampling fits the clip to the limit before the first step (sampling.fit_frame_limit); a caller
            # that reaches the network another way still gets the reason, not torch's shape mismatch.
            raise NodeError(f"AnimateDiff's motion module takes at most {limit[0]} frames at once (its "
                            f"motion_max_seq_length); this call gives it {x_in.shape[2]}")
        ehs = inputs["encoder_hidden_states"]
        control = inputs.get("control")
        extra = {}
        if _xl(handle.pipe):
            extra = {"added_cond_kwargs": motion_added_cond(handle, x_in, inputs)}
            if control:
                # An SDXL ControlNet reads each frame as an SDXL image: its own pooled text and size conditioning
                # (the motion UNet's is one per video), as ComfyUI's ControlNetApplyAdvanced on every frame does.
                from nodes.generate.adapters.sdxl import frame_added_cond
                extra.update(control_residuals(frames_in_batch(x_in), t, ehs, control,
                                               added_cond_kwargs=frame_added_cond(handle, x_in, inputs)))
        elif control:
            extra = control_residuals(frames_in_batch(x_in), t, ehs, control)
        x_in = torch.cat([x_in, inputs["concat"].to(x_in.dtype)], 1) if "concat" in inputs else x_in
        return handle.pipe.unet(x_in, t, encoder_hidden_states=ehs, return_dict=False, **extra)[0]


def _xl(pipe) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


def _sdxl():
    from nodes.generate.adapters.sdxl import ADAPTERS
    return ADAPTERS["sdxl"]


def motion_added_cond(handle, x_in, inputs) -> dict:
    """SDXL's pooled text and size conditioning for the motion UNet, which takes one of each per video and gives it
    to all its frames: a prompt schedule's pooled embedding averaged over the frames of the pass (the per-frame
    text still reaches each frame through cross-attention)."""
    from nodes.generate.adapters.sdxl import add_time_ids
    n, _, f, h, w = x_in.shape
    scale = handle.pipe.vae_scale_factor
    pooled = inputs["text_embeds"]
    pooled = pooled.reshape(n, f, -1).float().mean(1).to(pooled.dtype)
    time_ids = add_time_ids(inputs["sizes"][::f], h * scale, w * scale)
    return {"text_embeds": pooled, "time_ids": time_ids.to(x_in.device, pooled.dtype)}


def motion_scheduler(base, motion: Path):
    """SDXL's noise levels as AnimateDiff-SDXL was trained on them: betas up to 0.020, not SDXL's 0.012, as
    AnimateDiff-Evolved's autoselect picks for it ("linear (AnimateDiff-SDXL)", ComfyUI's "linear" being diffusers'
    scaled_linear). Hotshot-XL keeps SDXL's own ("linear (HotshotXL/default)")."""
    from nodes.generate.detect import detect_file
    if motion.is_file() and detect_file(motion).layout == "hotshot":
        return base
    return type(base).from_config(base.config, beta_end=0.020)


def check_motion_fits(motion: Path, adapter, unet, checkpoint: Path, xl: bool) -> None:
    """A motion module made for another base model is named as such (diffusers failed with a tensor shape error
    deep inside UNetMotionModel.from_unet2d)."""
    mine, theirs = tuple(adapter.config.block_out_channels), tuple(unet.config.block_out_channels)
    if mine == theirs:
        return
    raise NodeError(f"{motion.name} does not fit {checkpoint.name}: its motion layers are made for a UNet whose "
                    f"levels are {list(mine)} channels wide, and this {'SDXL' if xl else 'SD 1.5'} checkpoint's are "
                    f"{list(theirs)}. Use an SDXL motion module (mm_sdxl_v10_beta) with an SDXL checkpoint and an "
                    "SD 1.5 one (mm_sd_v15_v2, v3_sd15_mm) with an SD 1.5 checkpoint")


def with_control(inputs: dict, handle, pixel_frames, copies: int, device, dtype) -> dict:
    """inputs with "control" [Control with images [copies * frames, 3, H, W] for frames] when control.apply steers
    the model: the same control frames for each conditioning and batch item."""
    controls = handle.option("controlnet")
    if controls is None:
        return inputs
    from nodes.generate.control import control_images
    return {**inputs, "control": [c._replace(frames=control_images(c.frames, pixel_frames, c.keep).to(device, dtype)
                                             .repeat(copies, 1, 1, 1)) for c in controls]}


def concat_flat(handle, x_in, inputs):
    """The UNet's input [N * f, C (+ C'), h, w]: the latent frames flattened into the batch, with an inpainting
    UNet's extra channels after the latent's, as diffusers' StableDiffusionInpaintPipeline lays them (latent,
    mask, masked picture). A 9-channel UNet without them is named, not fed torch's shape error."""
    if "concat" in inputs:
        x_in = torch.cat([x_in, inputs["concat"].to(x_in.dtype)], 1)
    c = x_in.shape[1]
    wants = int(handle.pipe.unet.config.in_channels)
    if c != wants:
        raise NodeError(f"this UNet reads {wants} channels (an inpainting model: latent, mask, masked picture) but "
                        f"is given {c}: sample it through generate.sample, which adds the mask")
    return frames_in_batch(x_in)


def control_residuals(flat, t, ehs, controls, **extra) -> dict:
    """The ControlNets' residuals, summed, for frames flattened into the batch; control images resized to the frame
    size. `extra` goes to each ControlNet as to its UNet (SDXL's added_cond_kwargs: pooled text and size)."""
    if not controls:
        return {}
    import torch.nn.functional as F
    down, mid = None, None
    for c in controls:
        images, k = c.frames, 2 ** (len(c.net.config.conditioning_embedding_out_channels) - 1)
        size = (flat.shape[2] * k, flat.shape[3] * k)
        if tuple(images.shape[2:]) != size:
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        union = {"mode": c.mode} if getattr(c.net, "union", False) else {}
        d, m = c.net(flat, t, encoder_hidden_states=ehs, controlnet_cond=images, conditioning_scale=c.strength,
                     return_dict=False, **union, **extra)
        down, mid = (d, m) if down is None else ([a + b for a, b in zip(down, d)], mid + m)
    return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}


def _unet2d(unet):
    from diffusers import UNet2DConditionModel
    if isinstance(unet, UNet2DConditionModel):
        return unet
    raise NodeError("this AnimateDiff folder holds a motion UNet; load it with load.animatediff, not load.sd")


class _upcast:
    """SD's VAE overflows in fp16 (config force_upcast): decode in fp32 then return to the model dtype."""

    def __init__(self, vae):
        self.vae = vae
        self.dtype = vae.dtype
        self.on = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)

    def __enter__(self):
        if self.on:
            self.vae.to(torch.float32)

    def __exit__(self, *exc):
        if self.on:
            self.vae.to(self.dtype)


ADAPTERS = {"sd": SDAdapter(), "animatediff": AnimateDiffAdapter()}
