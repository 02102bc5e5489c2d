"""LTX-2: prompts read by Gemma 3 and turned by the checkpoint's text connectors into the video and audio streams'
prompt tokens; one transformer denoises a video latent (LTX-Video's VAE and packing) and the sound's latent (a mel
spectrogram's VAE) together, on one flow schedule, as diffusers' LTX2Pipeline does. The sampler sees both as one
flat tensor (pack); forward splits it again."""
from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import apart, joined, stack_global
from nodes.generate.adapters.ltx import LTXAdapter
from nodes.generate import ltx2_guide as guides
from nodes.generate.ltx2_sound import REFERENCE

STREAMS = "ltx2_streams"            # the handle option for_latent sets: (video [C, T, h, w], audio [C, L, M], fps)


class LTX2Adapter(LTXAdapter):
    family = "ltx2"
    max_tokens = 1024                   # LTX2Pipeline's: Gemma's features padded (left) to 1024 tokens

    def encode_text(self, pipe, prompts, device):
        """[K, 1024, video width + audio width]: the video and audio connectors' tokens side by side (as ComfyUI's
        LTXAVTEModel gives them), with the connectors' mask."""
        if getattr(pipe, "connectors", None) is None or getattr(pipe, "text_encoder", None) is None:
            raise NodeError("LTX-2 prompts need Gemma 3 and the checkpoint's text connectors: load them with "
                            "load.text_encoder (gemma_3_12B_it.safetensors, name2 the LTX-2 checkpoint)")
        embeds, mask, _, _ = pipe.encode_prompt(list(prompts), do_classifier_free_guidance=False,
                                                max_sequence_length=self.max_tokens, device=device)
        video, audio, keep = pipe.connectors(embeds, mask, padding_side=pipe.tokenizer.padding_side)
        return torch.cat([video, audio], -1), keep.bool(), None

    # -- the two streams -------------------------------------------------------------------
    def sound_latent(self, pipe, frames, fps):
        return empty_audio(pipe, frames, fps)

    def check_latent(self, handle, latent):
        if latent.audio is None:
            raise NodeError("this LTX-2 latent has no sound stream: LTX-2 makes video and sound together; make the "
                            "latent with latent.empty on the LTX-2 model's VAE (or ComfyUI's LTXVConcatAVLatent)")
        # These work on a video latent's frames; the sampler's state here is LTX-2's video and sound as one flat
        # tensor, which they would filter or window as if it were one frame (or refuse with a misleading size).
        from nodes.consistency.wrappers import ContextWrapper, FreeInitWrapper, PinWrapper
        named = {ContextWrapper: "context.windows", FreeInitWrapper: "noise.freeinit",
                 PinWrapper: "condition.pin_frames"}
        for wrap in (*handle.wrappers, *handle.run_wrappers):
            if type(wrap) in named:
                raise NodeError(f"{named[type(wrap)]} does not work on LTX-2 yet (it samples the video and its sound "
                                "together, and the node knows only a video's frames): bypass it for this model")

    def keeps_clean(self, handle):
        # As LTX2ImageToVideoPipeline and ComfyUI's LTX-2 give the start image: its tokens enter clean, at the step's
        # timestep times their mask (0 for a frame kept whole), and come out as they went in.
        return True

    def start_pixels(self, pipe, latent, image):
        """The start image covering the latent's size, centre-cropped (as ComfyUI's LTXVImgToVideoInplace fits
        it), as the first latent frame's one pixel frame in [-1, 1]."""
        from PIL import Image
        px = pipe.video_processor.preprocess(Image.fromarray(np.ascontiguousarray(image)), height=latent.height,
                                             width=latent.width, resize_mode="crop")
        return px[:, :, None]

    def with_keyframes(self, latent, conds):
        return guides.with_keyframes(latent, conds)

    def without_keyframes(self, given, out):
        # ComfyUI's LTXVCropGuides: the guides' frames cut off after the run
        return dataclasses.replace(out, samples=out.samples[:, :, :given.samples.shape[2]], mask=given.mask)

    def pack_mask(self, latent):
        if latent.mask is None and latent.audio_mask is None:
            return None
        video = torch.ones(1, 1, 1, 1, 1) if latent.mask is None else latent.mask.float()
        audio = torch.ones(1, 1, 1, 1) if latent.audio_mask is None else latent.audio_mask.float()
        return joined(video.expand(1, *latent.samples.shape[1:]), audio.expand(1, *latent.audio.shape[1:]))

    def pack(self, latent):
        return joined(latent.samples.float(), latent.audio.float())

    def unpack(self, latent, x):
        video, audio = apart(x, latent.samples.shape[1:], latent.audio.shape[1:])
        return dataclasses.replace(latent, samples=video, audio=audio)

    def latent_noise(self, latent, generator, video=None):
        # LTX2Pipeline draws the video's noise, then the sound's, from one generator.
        if video is None:
            video = torch.randn(tuple(latent.samples.shape), generator=generator, dtype=torch.float32)
        return joined(video.float(), torch.randn(tuple(latent.audio.shape), generator=generator, dtype=torch.float32))

    def for_latent(self, handle, latent):
        return handle.with_option(STREAMS, (tuple(latent.samples.shape[1:]), tuple(latent.audio.shape[1:]),
                                            float(latent.fps)))

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        e, m, _ = stack_global(conds, [0], device, dtype, batch, self.factors(handle.pipe)[0])
        # The sound's prompt tokens: Gemma's width for LTX-2.0's caption projection, the audio stream's own for
        # LTX-2.3 (its connectors project to each stream)
        cfg = handle.pipe.transformer.config
        audio = int(cfg.caption_channels if cfg.use_prompt_embeddings else cfg.audio_cross_attention_dim)
        inputs = {"video": e[..., :-audio], "audio": e[..., -audio:], "mask": m}
        guide = guides.guide_of(conds)
        if guide is not None:
            inputs["guide"] = guide[1].to(device)
            inputs["guide_weight"] = guide[2].to(device)
        refs = [c.extra.get(REFERENCE) for c in conds]
        if any(r is not None for r in refs):
            if any(r is None for r in refs):
                raise NodeError("the reference voice (condition.reference_voice) is on one prompt and not the other: "
                                "give both prompts through condition.reference_voice")
            inputs[REFERENCE] = torch.cat([r.to(device, dtype).expand(batch, -1, -1) for r in refs])
        return inputs

    def forward(self, handle, x_in, t, inputs):
        pipe = handle.pipe
        model = pipe.transformer
        video_shape, audio_shape, fps = handle.option(STREAMS)
        video, audio = apart(x_in, video_shape, audio_shape)
        _, _, f, h, w = video.shape
        length = audio.shape[2]
        n = x_in.shape[0]
        timestep = t.to(x_in.device).expand(n)
        video_timestep = audio_timestep = timestep
        if "noise_mask" in inputs:      # one timestep per token: the step's, times the token's mask
            kept, heard = apart(inputs["noise_mask"].expand(n, *inputs["noise_mask"].shape[1:]), video_shape,
                                audio_shape)
            video_timestep = timestep[:, None] * pipe._pack_latents(kept[:, :1].float(), 1, 1).squeeze(-1)
            audio_timestep = timestep[:, None] * heard[:, 0, :, 0].float()
        tokens, coords, bias = pipe._pack_latents(video, 1, 1), None, None
        if "guide" in inputs:           # condition.guide_video's frames end the latent, each at its own place in time
            at, weight = inputs["guide"], inputs["guide_weight"]
            k = at.shape[2] // (h * w)
            if at.shape[2] != k * h * w or k >= f:
                raise NodeError(f"the guide's {at.shape[2]} tokens do not fit this {w * 32}x{h * 32} latent: a pass "
                                "at another size takes the prompts from before condition.guide_video")
            kf = at.to(x_in.device, torch.float32).expand(n, -1, -1, -1).clone()
            kf[:, 0] = kf[:, 0] / fps
            place = model.rope.prepare_video_coords(n, f - k, h, w, x_in.device, fps=fps)
            coords = torch.cat([place, kf.to(place.dtype)], 2)
            if guides.needs_bias(weight):
                bias = guides.attention_blocks(weight.to(x_in.device), tokens.shape[1], model.dtype)
        sound, sound_coords, heard_from = pipe._pack_audio_latents(audio).to(model.dtype), None, 0
        if REFERENCE in inputs:
            sound, sound_coords, audio_timestep = _with_reference(model.audio_rope, inputs[REFERENCE], sound,
                                                                   audio_timestep)
            heard_from = inputs[REFERENCE].shape[1]
        with _video_self_attention_bias(model, bias):
            out_v, out_a = model(hidden_states=tokens.to(model.dtype),
                                 audio_hidden_states=sound, audio_coords=sound_coords,
                                 encoder_hidden_states=inputs["video"], audio_encoder_hidden_states=inputs["audio"],
                                 timestep=video_timestep, audio_timestep=audio_timestep, sigma=timestep,
                                 # The video reads the sound through a gate set by the sound's own level (0 for a given
                                 # song), as ComfyUI's LTXAV gates it by the sound tokens' highest timestep.
                                 audio_sigma=audio_timestep.reshape(n, -1).amax(1), encoder_attention_mask=inputs["mask"],
                                 audio_encoder_attention_mask=inputs["mask"], num_frames=f, height=h, width=w, fps=fps,
                                 audio_num_frames=length, video_coords=coords, use_cross_timestep=True,
                                 return_dict=False)
        return joined(pipe._unpack_latents(out_v.float(), f, h, w, 1, 1),
                      pipe._unpack_audio_latents(out_a[:, heard_from:].float(), length, audio.shape[3]))

    # -- decoding ------------------------------------------------------------------------------
    def decode_sound(self, pipe, audio):
        """The waveform as LTX2Pipeline makes it: the latent's statistics undone, the audio VAE's mel spectrogram,
        the vocoder's samples (24 kHz for the release)."""
        avae = pipe.audio_vae
        packed = pipe._denormalize_audio_latents(pipe._pack_audio_latents(audio.float()), avae.latents_mean,
                                                 avae.latents_std)
        z = pipe._unpack_audio_latents(packed, audio.shape[2], audio.shape[3]).to(avae.device, avae.dtype)
        mel = avae.decode(z, return_dict=False)[0]
        samples = pipe.vocoder(mel.to(pipe.vocoder.dtype))[0].float().cpu().numpy()
        return samples, int(pipe.vocoder.config.output_sampling_rate)

    def vae_decode(self, pipe, latent):
        """The video as LTX2Pipeline decodes it: its latent statistics undone, at timestep 0 without added noise
        (its decode_timestep and decode_noise_scale), where the VAE takes a timestep at all."""
        vae = pipe.vae
        z = pipe._denormalize_latents(latent.to(vae.device, vae.dtype), vae.latents_mean, vae.latents_std,
                                      vae.config.scaling_factor)
        temb = torch.zeros(z.shape[0], device=z.device, dtype=z.dtype) if vae.config.timestep_conditioning else None
        return vae.decode(z, temb, return_dict=False)[0].float()


class _Biased:
    """An attention processor whose self-attention (no encoder states, no mask of its own) adds the guides' biases
    `blocks` (ltx2_guide.attention_blocks), as ComfyUI applies its guide mask: the video's queries and the guides'
    are attended in two calls against all keys, each with its own block (one broadcast row for the video's), so no
    [T, T] bias is made; the keys' projections are computed for each call."""

    def __init__(self, inner, blocks):
        self.inner, (self.row, self.block) = inner, blocks

    # The arguments are named: diffusers' attention drops (with a warning, every block and step) whatever keyword
    # its processor's signature does not name, such as LTX-2.3's perturbation_mask and all_perturbed.
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, query_rotary_emb=None,
                 key_rotary_emb=None, perturbation_mask=None, all_perturbed=None):
        perturbed = {} if perturbation_mask is None and all_perturbed is None else {
            "perturbation_mask": perturbation_mask, "all_perturbed": all_perturbed}
        if encoder_hidden_states is not None or attention_mask is not None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, query_rotary_emb,
                              key_rotary_emb, **perturbed)
        g, rows = hidden_states.shape[1] - self.block.shape[1], hidden_states.shape[0] * attn.heads
        keys = key_rotary_emb if key_rotary_emb is not None else query_rotary_emb
        out = []
        for part, bias in ((slice(0, g), self.row), (slice(g, None), self.block)):
            # the rotary tables' token axis: 1 ([B, T, D], interleaved) or 2 ([B, heads, T, r], split)
            rope = None if query_rotary_emb is None else tuple(
                c[:, part] if c.ndim == 3 else c[:, :, part] for c in query_rotary_emb)
            # one mask per batch and head, as the processor's own preparation would repeat it, without copying
            out.append(self.inner(attn, hidden_states[:, part], hidden_states, bias.expand(rows, -1, -1), rope, keys,
                                  **perturbed))
        return torch.cat(out, 1)


@contextlib.contextmanager
def _video_self_attention_bias(model, blocks):
    """The video's self-attention in every block weighed by the guides' biases `blocks` (ComfyUI's guide attention
    mask), for one call; nothing changes where blocks is None."""
    layers = [b.attn1 for b in model.transformer_blocks] if blocks is not None else []
    before = [a.processor for a in layers]
    try:
        for a, p in zip(layers, before):
            a.processor = _Biased(p, blocks)
        yield
    finally:
        for a, p in zip(layers, before):
            a.processor = p


def _with_reference(rope, reference, tokens, timestep):
    """The reference voice's tokens before the clip's sound, as ComfyUI's LTXAV reads them for ID-LoRA: placed in
    time so that they end one latent step before the clip starts, at timestep 0. (tokens, RoPE coordinates
    [N, 1, R + L, 2], per-token timesteps)."""
    n, length = tokens.shape[:2]
    ref = reference.to(tokens)
    before = rope.prepare_audio_coords(n, ref.shape[1], tokens.device)
    step = rope.hop_length * rope.scale_factors[0] / rope.sampling_rate
    coords = torch.cat([before - (before[:, :, -1:, 1:] + step), rope.prepare_audio_coords(n, length, tokens.device)],
                       2)
    timestep = timestep.reshape(n, -1).expand(n, length)
    return torch.cat([ref, tokens], 1), coords, torch.cat([torch.zeros_like(timestep[:, :1]).expand(n, ref.shape[1]),
                                                           timestep], 1)


def audio_length(pipe, frames: int, fps: float) -> int:
    """Latent steps of the sound that goes with `frames` video frames at fps (LTX2Pipeline's: 25 a second for the
    release's 16 kHz, hop 160, 4x compressing audio VAE)."""
    per_second = pipe.audio_sampling_rate / pipe.audio_hop_length / float(pipe.audio_vae_temporal_compression_ratio)
    return round(frames / fps * per_second)


def empty_audio(pipe, frames: int, fps: float) -> torch.Tensor:
    """The silent (all-zero) sound latent [1, C, L, mel bins] for a clip of `frames` at fps."""
    cfg = pipe.audio_vae.config
    return torch.zeros(1, int(cfg.latent_channels), audio_length(pipe, frames, fps),
                       int(cfg.mel_bins) // int(pipe.audio_vae_mel_compression_ratio))


ADAPTERS = {"ltx2": LTX2Adapter()}
