"""HunyuanVideo 1.5: a dual-stream transformer over the 32-channel latent of its own 16x VAE (patch 1), true CFG with
a negative prompt on a flow schedule shifted by 7 (ComfyUI's; model.flow_shift sets 5 for the 480p files or 9 for
the 720p text-to-video one, as diffusers' converter does).

The prompt is read by Qwen2.5-VL in HunyuanVideo15Pipeline's chat template (third hidden state from the end, the
template's 108 tokens cropped off); text in quotation marks is drawn through a glyph ByT5 encoder, which Kinograph
cannot read yet, so a quoted prompt is refused rather than its text silently left out. Text-to-video gives the
transformer what HunyuanVideo15Pipeline gives it: the noise with zero image-latent and mask channels beside it, no
ByT5 tokens and zero (unread) vision tokens. Image-to-video (hunyuan15_i2v.py) fills the image-latent and mask channels
and the vision tokens (SigLIP's) as HunyuanVideo15ImageToVideoPipeline does."""
from __future__ import annotations

import inspect

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, stack_global
from nodes.generate.adapters.flux import FluxAdapter
from nodes.generate.adapters.hunyuan import HunyuanAdapter

VISION_TOKENS = 729                 # SigLIP's 27 x 27 patches, HunyuanVideo15Pipeline's vision_num_semantic_tokens
GLYPH_TOKENS = 256                  # the ByT5 encoder's tokenizer_2_max_length


class HunyuanVideo15Adapter(Adapter):
    family = "hunyuan15"
    single_file = True
    space = "flow"
    prediction = "flow"

    def encode_text(self, pipe, prompts, device):
        from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5 import extract_glyph_texts
        if getattr(pipe, "text_encoder", None) is None:
            raise NodeError("this text encoder has no Qwen2.5-VL: give load.text_encoder qwen_2.5_vl_7b_fp8_scaled"
                            ".safetensors (type hunyuan_video_15)")
        quoted = [p for p in prompts if extract_glyph_texts(p)]
        if quoted:
            raise NodeError(f"the prompt {quoted[0][:60]!r} quotes text, which HunyuanVideo 1.5 draws with its glyph "
                            "ByT5 encoder (byt5_small_glyphxl); Kinograph cannot read that encoder yet. Leave out "
                            "the quotation marks to have Qwen2.5-VL read the words as part of the prompt")
        embeds, mask = pipe._get_mllm_prompt_embeds(
            pipe.text_encoder, pipe.tokenizer, list(prompts), device, tokenizer_max_length=pipe.tokenizer_max_length,
            system_message=pipe.system_message, crop_start=pipe.prompt_template_encode_start_idx)
        return embeds, mask.bool(), None

    def token_offsets(self, pipe, text):
        return None             # the template's tokens are cropped: no span of the prompt maps onto them

    default_sigmas = HunyuanAdapter.default_sigmas      # HunyuanVideo15Pipeline's too: 1 .. 1/steps, shifted

    encode_image = FluxAdapter.encode_image        # SigLIP's last hidden state, as FLUX.1 Redux reads it

    def for_run(self, handle, positive, negative, seed, sigmas):
        """A step-distilled (mean-flow) model is told each step's next level, so its conditionings carry the
        run's schedule; the super-resolution conditioning's low-resolution latent is noised with the run's seed
        (hunyuan15_sr.augmented)."""
        from nodes.generate.hunyuan15_sr import augmented
        meanflow = handle.pipe.transformer.config.use_meanflow
        out = []
        for c in (positive, negative):
            extra = {"schedule": sigmas.float().cpu()} if meanflow and c is not None else {}
            if c is not None and "noise_augmentation" in c.extra:
                extra["concat"] = augmented(c.extra["concat"], float(c.extra["noise_augmentation"]), seed)
            out.append(c.with_extra(**extra) if extra else c)
        return tuple(out)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        e, m, _ = stack_global(conds, frames, device, dtype, batch, self.factors(handle.pipe)[0])
        inputs = {"encoder_hidden_states": e, "mask": torch.ones(e.shape[:2], dtype=torch.bool, device=device)
                  if m is None else m.bool()}
        extra = conds[-1].extra
        if "image_embeds" in extra:
            inputs["image_embeds"] = torch.cat([c.extra.get("image_embeds", extra["image_embeds"]) for c in conds
                                                for _ in range(batch)]).to(device, dtype)
        if "concat" in extra:       # per latent frame: a context window takes its frames
            idx = torch.as_tensor(list(frames))
            inputs["concat"] = torch.cat([c.extra.get("concat", extra["concat"])[:, :, idx] for c in conds
                                          for _ in range(batch)]).to(device, dtype)
        if "schedule" in extra:
            inputs["schedule"] = extra["schedule"]
        return inputs

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n, _, f, h, w = x_in.shape
        cfg = model.config
        beside = cfg.in_channels - x_in.shape[1]          # the image latent and mask (the SR model: and more)
        if beside not in (cfg.out_channels + 1, 2 * cfg.out_channels + 2):
            raise NodeError(f"this latent has {x_in.shape[1]} channels; HunyuanVideo 1.5 samples {cfg.out_channels} "
                            "(make it with latent.empty from its VAE, hunyuanvideo15_vae)")
        concat = inputs.get("concat")
        if concat is None:      # as ComfyUI: zeros (its SR template's second half samples the SR model so)
            concat = x_in.new_zeros(n, beside, f, h, w)
        elif concat.shape[1] != beside and beside == cfg.out_channels + 1:
            raise NodeError("this conditioning is condition.hunyuan15_sr's, for the 1080p super-resolution model "
                            "(hunyuanvideo1.5_1080p_sr_distilled); this model is a 480p / 720p one")
        elif concat.shape[1] != beside:
            raise NodeError("this is HunyuanVideo 1.5's 1080p super-resolution model, which refines an upscaled "
                            "latent: give it condition.hunyuan15_sr's conditioning (ComfyUI's "
                            "HunyuanVideo15SuperResolution) after latent.hunyuan15_upsample, not an image-to-video "
                            "one")
        x = torch.cat([x_in, concat.to(x_in)], dim=1).to(model.dtype)
        zeros = dict(dtype=model.dtype, device=x.device)
        image = inputs.get("image_embeds")
        if image is not None and image.shape[-1] != cfg.image_embed_dim:
            raise NodeError(f"these image tokens are {image.shape[-1]} wide; this HunyuanVideo 1.5 model reads "
                            f"SigLIP's {cfg.image_embed_dim}-wide ones (sigclip_vision_patch14_384.safetensors)")
        extra = {}
        if cfg.use_meanflow:
            extra["timestep_r"] = next_level(inputs["schedule"], t).to(x.device).expand(n).to(model.dtype)
        return model(hidden_states=x, timestep=t.to(x.device).expand(n).to(model.dtype),
                     encoder_hidden_states=inputs["encoder_hidden_states"].to(model.dtype),
                     encoder_attention_mask=inputs["mask"],
                     encoder_hidden_states_2=torch.zeros(n, GLYPH_TOKENS, cfg.text_embed_2_dim, **zeros),
                     encoder_attention_mask_2=torch.zeros(n, GLYPH_TOKENS, dtype=torch.bool, device=x.device),
                     image_embeds=torch.zeros(n, VISION_TOKENS, cfg.image_embed_dim, **zeros) if image is None
                     else image.to(model.dtype),
                     return_dict=False, **extra)[0]


def next_level(schedule: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The time (x 1000) of the level after the one at time `t` in the run's schedule (0 after the last): what a
    step-distilled model is told as timestep_r, as HunyuanVideo15ImageToVideoPipeline tells it."""
    times = schedule.float() * 1000.0
    i = int((times - float(t.flatten()[0])).abs().argmin())
    return times[i + 1] if i + 1 < len(times) else torch.zeros(())


ADAPTERS = {"hunyuan15": HunyuanVideo15Adapter()}


class _NoVAE:
    """Stands in for the VAE while HunyuanVideo15Pipeline's constructor reads its factors (it tests hasattr, which a
    None VAE passes): the released VAE's, which a loaded VAE's own config overrides."""
    temporal_compression_ratio, spatial_compression_ratio = 4, 16

    class config:           # noqa: N801 - the attribute diffusers reads
        latent_channels = 32


def without_vae(cls):
    """HunyuanVideo15Pipeline (`cls`, or its image-to-video one) to hold parts without a VAE (ComfyUI's transformer and
    text encoder files, each alone)."""
    class Pipeline(cls):
        def __init__(self, **parts):
            super().__init__(**{**parts, "vae": _NoVAE()})
            self.register_modules(vae=None)
    Pipeline.__init__.__signature__ = inspect.signature(cls.__init__)     # the parts split.pipeline fills
    Pipeline.__name__ = Pipeline.__qualname__ = cls.__name__
    return Pipeline
