"""MiniMax H3 (MiniMax's audio-video model) making pictures: one single-stream transformer over a packed sequence of
the prompt's rows, then the picture's 2x2 patches of its 24-channel latent (one latent frame, no sound rows, as
ComfyUI's image_minimax_h3_t2i samples it). The prompt is Qwen3-VL's hidden state after decoder layer 50, the
prompt's tokens alone (no chat template). Rows carry (time, height, width) rotary coordinates: the prompt's i-th token
at (i, 0, 0), the picture's patches at the prompt's length in time and on a grid normalised by the picture's area.

Sampled as diffusers' MiniMaxH3 pipeline samples it: the transformer is told t = 1 - sigma and predicts x0 - noise
(the flow velocity's negative); the schedule is linspace(1, 0) shifted by 12 (MiniMaxH3Scheduler; ComfyUI's
MiniMaxH3 sampling settings have the same shift). Guidance is distilled: cfg 1, no negative pass.

A video (17n+5 frames, 5n+2 latent frames) is sampled with its stereo soundtrack in one sequence, as diffusers' t2va
lays it out: [prompt | sound rows (channel-major, 40 latents a second) | the frames' patches]. The sound steps down its
own schedule, shifted by 3 where the video's is by 12; both come from one base grid, so the sound's noise-to-signal
ratio is the video's divided by k = 12 / 3 at every step. The sampler steps both streams on the video's levels: it
holds the sound as y = (1 - sigma) * x0 + sigma * noise / k, which is the sound's own flow state rescaled, so every
step of a first-order sampler is the step diffusers' audio scheduler takes (ComfyUI's ModelSamplingAV also carries the
sound under the video's levels by a scale on its noise).

Image-to-video (condition.frames, diffusers' fl2va): each keyframe is one latent frame of its own, encoded as the
released model encodes it (ImageNet pixels, the posterior sampled under seed 42, rounded to float16, normalised), laid
in the sequence between the prompt and the sound at the rotary time of the frame it pins ("first": the first frame,
"last": the last pixel frame, a number: that pixel frame), mixed with 0.1% noise drawn from the run's seed
(t = 0.999) and told t = max(the step's, 0.999) at every step; its rows are read, never written.

Reference-to-video (condition.references, diffusers' / ComfyUI's ref2va): each reference picture is one latent frame
at its own size, encoded as a keyframe is, laid after the keyframes at rotary time prompt length + i (one unit a
picture), noised and held as a keyframe is; the video and its sound start after the pictures' time, and the prompt is
read after a "<Picture i>: " label and vision block of each."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from diffusers import DiffusionPipeline
from PIL import Image
from diffusers.loaders import MiniMaxH3LoraLoaderMixin

from graph_engine import NodeError
from nodes.generate.adapters.base import (Adapter, apart, frames_from_batch, frames_in_batch, joined, padded_rows,
                                          text_of_width)
from nodes.generate.minimax_fun_control import control_latent as fun_control_latent, control_rows, steering
from nodes.generate.reference import references

TEXT_LAYER = 50          # the hidden state MiniMax H3 reads: after decoder layer 50 (not the last, not normed)
TEXT_TAG, VIDEO_TAG, AUDIO_TAG = 1, 0, 2
SPATIAL_SCALE = 32.0
FRAME_TIME = (1.0, 4.0, 4.0, 4.0, 4.0)      # pixel frames per latent frame, repeating (the VAE's chunks)
FRAME_RESCALE = 5.0 / 3.0                   # rotary time per pixel frame: 40 sound latents a second over 24 frames
SOUND_RATE, STEREO, SOUND_CHANNELS = 40, 2, 32
STREAMS = "minimax_h3_streams"              # the handle option for_latent sets: (video [C, T, h, w], sound [C, 2, L])
SOUND_SHIFT, DEFAULT_SOUND_SHIFT = "minimax_h3_sound_shift", 3.0     # MiniMaxH3SigmaShift's shift_audio
OTHER_WIDTH = "this MiniMax H3 transformer reads {}: encode it with MiniMax H3's Qwen3-VL (type minimax)"
PIXEL_MEAN, PIXEL_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)     # ImageNet's
KEYFRAMES, ANCHORS, HELD = "minimax_h3_keyframes", "minimax_h3_anchors", "minimax_h3_held"
SEEN = "minimax_h3_seen"                    # the prompt's rows that are a keyframe's vision tokens (bool [1, L])
KEYFRAME_T, KEYFRAME_SEED = 0.999, 42       # diffusers' keyframe_noise_aug and keyframe_encode_seed
HELD_REF = "minimax_h3_held_ref"            # + i: reference picture i mixed with its noise (for_run)
REF_SHORT_SIDE, REF_MULTIPLE = 2048, 32     # ComfyUI's REF_IMAGE_SHORT_EDGE and CANVAS_MULTIPLE
NO_QWEN3VL = ("MiniMax H3 reads its prompt with Qwen3-VL 32B (text_encoders/qwen3vl_32b_minimax_h3_*.safetensors); "
              "this text encoder is not one. Give load.text_encoder that file with type minimax, as ComfyUI's "
              "CLIPLoader does")


def spatial_grid(dim: int, patch: int, sqrt_area: float) -> torch.Tensor:
    """One rotary axis of the picture: dim // patch points over [(1 - r) / 2, (1 + r) / 2), r = dim / sqrt(area),
    times 32 (numpy's linspace without its endpoint, in float64, as the released coordinates are)."""
    ratio = dim / sqrt_area
    left = (1.0 - ratio) / 2.0
    return torch.from_numpy(np.linspace(left, left + ratio, dim // patch, endpoint=False) * SPATIAL_SCALE)


def image_layout(text_len: int, h: int, w: int):
    """(position_ids [S, 3] float64, token_tags [S]) of the prompt's rows then one latent frame's patch rows."""
    grid, _ = frame_grid(h, w)
    n = grid.shape[0]
    pos = torch.zeros(text_len + n, 3, dtype=torch.float64)
    pos[:text_len, 0] = torch.arange(text_len, dtype=torch.float64)
    pos[text_len:, 0] = float(text_len)
    pos[text_len:, 1:] = grid
    tags = torch.cat([torch.full((text_len,), TEXT_TAG), torch.full((n,), VIDEO_TAG)])
    return pos, tags


def anchor_time(origin: float, frames: int, anchor) -> float:
    """The rotary time of a keyframe pinning the first frame, the last pixel frame of `frames` latent frames (their
    spans summed pairwise in float64, as numpy sums them in the released code: the ulp matters), or pixel frame
    `anchor` (5/3 a frame, ComfyUI's MiniMaxH3AddGuide), counted from the video's start `origin`."""
    if anchor == "first":
        return float(origin)
    if not isinstance(anchor, str):
        return float(origin) + FRAME_RESCALE * int(anchor)
    spans = np.ones(frames, dtype=np.float64) * FRAME_RESCALE
    for offset, n in enumerate(FRAME_TIME):
        spans[offset::len(FRAME_TIME)] *= n
    return float(origin) + float(spans.sum()) - FRAME_RESCALE


def frame_grid(h: int, w: int):
    """(h, w) rotary coordinates [h/2 * w/2, 2] of one latent frame's patches, and its width axis."""
    area = float(np.sqrt(h * w))
    width = spatial_grid(w, 2, area)
    hh, ww = torch.meshgrid(spatial_grid(h, 2, area), width, indexing="ij")
    return torch.stack([hh.reshape(-1), ww.reshape(-1)], -1), width


def video_layout(text_len: int, frames: int, h: int, w: int, sound: int, anchors=(), refs=()):
    """(position_ids [S, 3] float64, token_tags [S]) of [prompt | keyframes' patch rows | reference pictures' patch
    rows | sound rows | frames' patch rows]: the video starts after the prompt and one rotary time unit a reference
    picture (reference i at the prompt's length + i, on its own size's grid; `refs` their latent (h, w)); each keyframe
    at its anchor_time from the video's start; the sound's latents one unit apart from there, both stereo channels at
    the same times, pinned to the width grid's two ends; the frames 5/3 per pixel frame before them apart."""
    grid, width = frame_grid(h, w)
    per_frame = grid.shape[0]
    origin = text_len + len(refs)
    spans = torch.tensor([FRAME_RESCALE * FRAME_TIME[i % len(FRAME_TIME)] for i in range(frames)], dtype=torch.float64)
    times = origin + torch.cat([torch.zeros(1, dtype=torch.float64), spans[:-1].cumsum(0)])
    held = len(anchors) * per_frame
    seen = held + sum((rh // 2) * (rw // 2) for rh, rw in refs)
    pos = torch.zeros(text_len + seen + STEREO * sound + frames * per_frame, 3, dtype=torch.float64)
    pos[:text_len, 0] = torch.arange(text_len, dtype=torch.float64)
    keys = pos[text_len:text_len + held].view(len(anchors), per_frame, 3)
    for i, anchor in enumerate(anchors):
        keys[i, :, 0] = anchor_time(origin, frames, anchor)
    keys[:, :, 1:] = grid
    at = text_len + held
    for i, (rh, rw) in enumerate(refs):
        ref_grid, _ = frame_grid(rh, rw)
        pos[at:at + ref_grid.shape[0], 0] = float(text_len + i)
        pos[at:at + ref_grid.shape[0], 1:] = ref_grid
        at += ref_grid.shape[0]
    at = slice(text_len + seen, text_len + seen + STEREO * sound)
    pos[at, 0] = (origin + torch.arange(sound, dtype=torch.float64)).repeat(STEREO)
    pos[at, 2] = torch.cat([torch.full((sound,), float(width[0])), torch.full((sound,), float(width[-1]))])
    video = pos[at.stop:].view(frames, per_frame, 3)
    video[:, :, 0] = times[:, None]
    video[:, :, 1:] = grid
    tags = torch.cat([torch.full((text_len,), TEXT_TAG), torch.full((seen,), VIDEO_TAG),
                      torch.full((STEREO * sound,), AUDIO_TAG), torch.full((frames * per_frame,), VIDEO_TAG)])
    return pos, tags


def sound_latents(frames: int) -> int:
    """Sound latents (per stereo channel) of a video of `frames` at MiniMax H3's 24 frames a second."""
    return int(round(frames / 24 * SOUND_RATE))


def sound_sigma(sigma: torch.Tensor, k: float) -> torch.Tensor:
    """The sound's level at the video's: the same base step through a shift k times smaller, i.e. its
    noise-to-signal ratio sigma / (1 - sigma) divided by k."""
    return sigma / (sigma + k * (1 - sigma))


def patchify(x: torch.Tensor) -> torch.Tensor:
    """[C, T, h, w] -> [T * h/2 * w/2, C * 4] rows, frame-major then row-major, each patch's channels outermost."""
    c, t, h, w = x.shape
    return x.reshape(c, t, h // 2, 2, w // 2, 2).permute(1, 2, 4, 0, 3, 5).reshape(-1, c * 4)


def unpatchify(rows: torch.Tensor, c: int, t: int, h: int, w: int) -> torch.Tensor:
    return rows.reshape(t, h // 2, w // 2, c, 2, 2).permute(3, 0, 1, 4, 2, 5).reshape(c, t, h, w)


def sound_rows(audio: torch.Tensor) -> torch.Tensor:
    """[C, 2, L] -> [2 * L, C]: the left channel's latents, then the right's (diffusers' channel-major rows)."""
    return audio.permute(1, 2, 0).reshape(-1, audio.shape[0])


def sound_of_rows(rows: torch.Tensor, c: int, length: int) -> torch.Tensor:
    return rows.reshape(STEREO, length, c).permute(2, 0, 1)


class MiniMaxH3Adapter(Adapter):
    family = "minimax_h3"
    space = "flow"
    prediction = "flow"
    single_file = True
    literal_prompts = True
    reads_references = True           # reference pictures (ref2va), laid before the video (condition.references)

    def factors(self, pipe):
        if getattr(pipe, "vae", None) is None:
            return 1, 16, int(pipe.transformer.config.in_channels)
        vae = video_vae(pipe)
        return 1, int(vae.spatial_compression_ratio), int(vae.config.latent_channels)

    # -- VAE ------------------------------------------------------------------------------
    # The VAE reads and writes pixels normalised by ImageNet's statistics (diffusers' MiniMaxH3ModularPipeline's
    # pixel_mean / pixel_std) and latents normalised by the file's latents_mean / latents_std. One picture is one
    # latent frame: the decoder makes the 4 pixel frames a latent frame covers from it, of which the last is the picture
    # (ComfyUI's MiniMaxH3VideoVAE.decode for one frame); the encoder reads one frame alone (diffusers' _encode).
    @staticmethod
    def _stats(mean, std, like):
        return tuple(torch.tensor(s, device=like.device, dtype=torch.float32).view(1, -1, 1, 1, 1) for s in (mean, std))

    def vae_per_frame(self):
        return True

    def vae_encode(self, pipe, pixels, generator=None):
        vae = video_vae(pipe)
        pmean, pstd = self._stats(PIXEL_MEAN, PIXEL_STD, pixels)
        frames = frames_in_batch(pixels).float()[:, :, None]
        x = (((frames + 1) / 2 - pmean) / pstd).to(vae.device, vae.dtype)
        z = vae.encode(x).latent_dist.mode().float()
        mean, std = self._stats(vae.config.latents_mean, vae.config.latents_std, z)
        return frames_from_batch(((z - mean) / std)[:, :, 0], pixels.shape[0])

    def vae_decode(self, pipe, latent):
        vae = video_vae(pipe)
        z = frames_in_batch(latent).float()[:, :, None]
        mean, std = self._stats(vae.config.latents_mean, vae.config.latents_std, z)
        z = (z * std + mean).to(vae.device, vae.dtype)
        out = vae.decoder(vae.post_quant_conv(z))[:, :, -1:].float()
        pmean, pstd = self._stats(PIXEL_MEAN, PIXEL_STD, out)
        pictures = (out * pstd + pmean).clamp(0, 1) * 2 - 1
        return frames_from_batch(pictures[:, :, 0], latent.shape[0])

    def clip_decoder(self, latent):
        return None if latent.audio is None else self.decode_video

    def decode_video(self, pipe, latent):
        """A video's 5n+2 latent frames -> its 17n+5 frames, the VAE decoding them together (diffusers'
        MiniMaxH3VideoDecodeStep)."""
        vae = video_vae(pipe)
        mean, std = self._stats(vae.config.latents_mean, vae.config.latents_std, latent)
        video = vae.decode((latent.float() * std + mean).to(vae.device, vae.dtype), return_dict=False)[0].float()
        pmean, pstd = self._stats(PIXEL_MEAN, PIXEL_STD, video)
        return (video * pstd + pmean).clamp(0, 1) * 2 - 1

    def frame_condition(self, pipe, latent, first, last, image_embeds, **_):
        """condition.frames: the keyframes at the latent's size (the first stretched onto it, the last cover-cropped,
        both Lanczos, as diffusers' MiniMaxH3ResizeStep), each encoded alone (MiniMaxH3KeyframeVaeEncoderStep)."""
        if latent.audio is None:
            raise NodeError("MiniMax H3 pins keyframes of a video made with its sound: make the latent with "
                            "latent.empty on the MiniMax H3 video VAE with 17n+5 frames")
        keys = keyframe_pictures(latent, first, last)
        return {KEYFRAMES: torch.stack([self.encode_held(pipe, pic) for _, pic in keys])}, {ANCHORS: [a for a, _ in keys]}

    def guide_condition(self, pipe, latent, positive, extra, meta, picture, frame: int):
        """condition.frames' guide: `picture` cover-cropped to the latent's size and pinned at pixel frame `frame`
        (negative: from the end), after the keyframes `positive` holds and those of `extra` / `meta` (ComfyUI's
        MiniMaxH3AddGuide, chained)."""
        if latent.audio is None:
            raise NodeError("MiniMax H3 pins guides in a video made with its sound: make the latent with latent.empty "
                            "on the MiniMax H3 video VAE with 17n+5 frames")
        at = frame if frame >= 0 else latent.frames + frame
        if not 0 <= at < latent.frames:
            raise NodeError(f"guide_frame {frame} is outside the video's {latent.frames} frames (0 to "
                            f"{latent.frames - 1}, or -1 for the last): change guide_frame")
        keys = [k for k in (positive.extra.get(KEYFRAMES), extra.get(KEYFRAMES)) if k is not None]
        anchors = list(positive.meta.get(ANCHORS, ())) + list(meta.get(ANCHORS, ()))
        keys.append(self.encode_held(pipe, cover(picture, latent.width, latent.height))[None])
        return {**extra, KEYFRAMES: torch.cat(keys)}, {**meta, ANCHORS: anchors + [at]}

    def encode_held(self, pipe, picture) -> torch.Tensor:
        """A keyframe or reference picture's latent frame [C, h, w] as the released model encodes it (diffusers'
        encode_vae_condition: ImageNet pixels, the posterior sampled under seed 42, rounded to float16, normalised)."""
        vae = video_vae(pipe)
        pmean, pstd = self._stats(PIXEL_MEAN, PIXEL_STD, torch.zeros(1))
        px = torch.from_numpy(np.array(picture.convert("RGB"))).permute(2, 0, 1)[None, :, None].float() / 255.0
        posterior = vae.encode(((px - pmean) / pstd).to(vae.device, vae.dtype)).latent_dist
        drawn = posterior.sample(generator=torch.Generator().manual_seed(KEYFRAME_SEED)).to(torch.float16).float()
        mean, std = self._stats(vae.config.latents_mean, vae.config.latents_std, drawn)
        return ((drawn.cpu() - mean.cpu()) / std.cpu())[0, :, 0]

    def reference_latents(self, pipe, latent, pictures, area=None):
        """condition.references: [(picture as read, latent [1, C, 1, h, w])] of each reference picture, scaled down
        (never up, keeping its shape) to `area` pixels, or to a 2048-pixel short side where None, each side rounded
        to 32, Lanczos (ComfyUI's MiniMaxH3ReferenceToVideo, ref_image_size match / max), encoded as a keyframe."""
        if latent.audio is None:
            raise NodeError("MiniMax H3 reads reference pictures for a video made with its sound: give "
                            "condition.references the latent of latent.empty on the MiniMax H3 video VAE (17n+5 "
                            "frames)")
        out = []
        for pic in pictures:
            w, h = pic.size
            scale = min(1.0, math.sqrt(area / (w * h)) if area else REF_SHORT_SIDE / min(w, h))
            size = tuple(max(REF_MULTIPLE, round(d * scale / REF_MULTIPLE) * REF_MULTIPLE) for d in (w, h))
            pic = pic.convert("RGB").resize(size, Image.LANCZOS)
            out.append((pic, self.encode_held(pipe, pic)[None, :, None]))
        return out

    def for_run(self, handle, positive, negative, seed, sigmas):
        """The keyframes, then the reference pictures, mixed with their 0.1% noise, drawn from the run's seed one
        after another in the order the sequence holds them (diffusers' MiniMaxH3PrepareConditionLatentsStep)."""
        out = []
        for c in (positive, negative):
            refs = [] if c is None else [r[0, :, 0].float() for r in references(c)]
            if c is None or KEYFRAMES not in c.extra and not refs:
                out.append(c)
                continue
            gen = torch.Generator().manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
            t = torch.tensor(KEYFRAME_T, dtype=torch.float32)

            def held(k):
                return t * k + (1.0 - t) * torch.randn((1, *k.shape[:1], 1, *k.shape[1:]), generator=gen)[0, :, 0]
            keys = c.extra.get(KEYFRAMES)
            extra = {} if keys is None else {HELD: torch.stack([held(k) for k in keys.float()])}
            extra.update({f"{HELD_REF}{i}": held(r) for i, r in enumerate(refs)})
            out.append(c.with_extra(**extra))
        return tuple(out)

    @staticmethod
    def control_latent(control, video_shape) -> torch.Tensor:
        """A Fun ControlNet's control video encoded for this video (minimax_fun_control.control_latent), kept."""
        key = tuple(video_shape)
        if key not in control.cache:
            with torch.inference_mode():
                control.cache[key] = fun_control_latent(control.vae, control.frames, video_shape)
        return control.cache[key]

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        """Qwen3-VL's hidden state after layer 50 on each prompt's own tokens (diffusers' MiniMaxH3TextEncoderStep),
        padded to the longest with the mask of each prompt's own tokens."""
        te = qwen3vl(pipe)
        rows = []
        for prompt in prompts:
            ids = pipe.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if not ids:     # read after keyframes (condition.frames), it has their pictures' rows
                rows.append(torch.zeros(0, te.config.text_config.hidden_size, device=device))
                continue
            ids = torch.tensor([ids], device=device)
            out = te.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False,
                           output_hidden_states=True)
            rows.append(out.hidden_states[TEXT_LAYER][0])
        return *padded_rows(rows), None

    def read_with_pictures(self, text_encoder, positive, latent, first, last):
        """condition.frames' text_encoder: `positive`'s prompt read again after the keyframes (diffusers'
        MiniMaxH3FL2VATextEncoderStep)."""
        return self.read_after(text_encoder, positive, [pic for _, pic in keyframe_pictures(latent, first, last)])

    def read_after(self, text_encoder, positive, pictures):
        """`positive`'s prompt read again after the pictures (keyframes or references), each a "<Picture i>: " label
        and its vision block (diffusers' MiniMaxH3FL2VATextEncoderStep / Ref2VATextEncoderStep for pictures), the
        blocks' rows marked SEEN."""
        from nodes.generate.text import _device
        pipe = text_encoder.pipe
        te = qwen3vl(pipe)
        if getattr(pipe, "processor", None) is None or not hasattr(te.model, "visual"):
            raise NodeError("this Qwen3-VL file holds no vision tower to see the pictures with: give "
                            "load.text_encoder MiniMax H3's qwen3vl_32b_minimax_h3 file, or leave text_encoder off")
        if len(positive.prompts) != 1:
            raise NodeError("MiniMax H3 reads its pictures with one prompt: a prompt schedule cannot be read "
                            "with them")
        device = _device(pipe)
        tok, proc = pipe.tokenizer, pipe.processor
        pictures = [pic.convert("RGB") for pic in pictures]
        vision = proc.image_processor(images=pictures, return_tensors="pt")
        grid = vision["image_grid_thw"]
        ids, seen = [], []
        for i in range(len(pictures)):
            label = tok(f"<Picture {i + 1}>: ", add_special_tokens=False)["input_ids"]
            block = tok.convert_tokens_to_ids(["<|vision_start|>"] + ["<|image_pad|>"] * (
                int(grid[i].prod()) // proc.image_processor.merge_size ** 2) + ["<|vision_end|>"])
            ids += label + block
            seen += [False] * len(label) + [True] * len(block)
        words = tok(positive.prompts[0], add_special_tokens=False)["input_ids"]
        ids, seen = ids + words, seen + [False] * len(words)
        types = torch.tensor(proc.create_mm_token_type_ids([ids]), device=device)
        ids = torch.tensor([ids], device=device)
        out = te.model(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=types,
                       pixel_values=vision["pixel_values"].to(device, te.dtype),
                       image_grid_thw=grid.to(device), use_cache=False, output_hidden_states=True)
        rows = out.hidden_states[TEXT_LAYER].float().cpu()
        return dataclasses.replace(positive, embeds=rows, mask=torch.ones(rows.shape[:2], dtype=torch.bool),
                                   extra={**positive.extra, SEEN: torch.tensor([seen])})

    def clip_pooled(self, pipe, prompts, device):
        raise NodeError("MiniMax H3 reads no CLIP: encode its prompt with encode.text (Qwen3-VL alone)")

    def token_offsets(self, pipe, text):
        return self._offsets(pipe.tokenizer, text, len(pipe.tokenizer(text, add_special_tokens=False)["input_ids"]),
                             add_special_tokens=False)

    # -- sampling ------------------------------------------------------------------------
    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        reads = int(handle.pipe.transformer.config.text_dim)
        out = text_of_width(conds, frames, batch, device, dtype, reads, OTHER_WIDTH.format(reads))
        if not out["mask"].any(-1).all():
            raise NodeError("MiniMax H3 needs a prompt: this one has no words (an empty prompt is read with "
                            "keyframes' pictures alone: condition.frames with its text_encoder connected)")
        if any(SEEN in c.extra for c in conds):
            out["seen"] = [c.extra.get(SEEN) for c in conds for _ in range(batch)]
        if any(HELD in c.extra for c in conds):
            out["keyframes"] = [(c.extra.get(HELD), c.meta.get(ANCHORS, ())) for c in conds for _ in range(batch)]
        if any(f"{HELD_REF}0" in c.extra for c in conds):
            out["refs"] = [held_refs(c) for c in conds for _ in range(batch)]
        controls = handle.option("controlnet")
        if controls:                        # control.model_patch's Fun ControlNet: encoded in forward
            out["control"] = list(controls)
        return out

    def default_sigmas(self, pipe, steps, latent_shape):
        """MiniMaxH3Scheduler's steps + 1 levels (its grid counts the final 0)."""
        sch = self.scheduler(pipe)
        sch.set_timesteps(steps + 1)
        return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()

    # -- a video and its soundtrack -----------------------------------------------------------
    def sound_latent(self, pipe, frames, fps):
        """A video's silent stereo soundtrack [1, 32, 2, L] (L: 40 a second of its frames at 24 fps); a picture
        has none."""
        if frames <= 1:
            return None
        if float(fps) != 24.0:
            raise NodeError(f"MiniMax H3 makes its videos and their sound at 24 fps; this latent asks for {fps:g}: "
                            "set latent.empty's fps to 0 (24), and change the rate after decoding if needed")
        model = getattr(pipe, "transformer", None)
        channels = int(model.config.audio_in_channels) if model is not None else SOUND_CHANNELS
        return torch.zeros(1, channels, STEREO, sound_latents(frames))

    def check_latent(self, handle, latent):
        if latent.samples.shape[2] > 1 and latent.audio is None:
            raise NodeError("MiniMax H3 makes a video with its soundtrack: this latent has none. Make it with "
                            "latent.empty on the MiniMax H3 VAE (or ComfyUI's MiniMaxH3ImageToVideo)")

    def pack(self, latent):
        return latent.samples.float() if latent.audio is None else joined(latent.samples.float(), latent.audio.float())

    def unpack(self, latent, x):
        if latent.audio is None:
            return latent.with_samples(x)
        video, audio = apart(x, latent.samples.shape[1:], latent.audio.shape[1:])
        return dataclasses.replace(latent, samples=video, audio=audio)

    def pack_mask(self, latent):
        if latent.audio is None or latent.mask is None:
            return latent.mask
        video = latent.mask.float().expand(1, *latent.samples.shape[1:])
        return joined(video, torch.ones(1, *latent.audio.shape[1:]))

    def latent_noise(self, latent, generator, video=None):
        # diffusers' t2va draws the video's noise, then the sound's in its rows (left channel's latents first).
        if video is None:
            video = torch.randn(tuple(latent.samples.shape), generator=generator, dtype=torch.float32)
        if latent.audio is None:
            return video
        c, _, length = latent.audio.shape[1:]
        rows = torch.randn((STEREO * length, c), generator=generator, dtype=torch.float32)
        return joined(video.float(), sound_of_rows(rows, c, length)[None])

    def run_noise(self, handle, noise):
        """The sound's share of the noise divided by k: the sampler holds the sound as (1 - s) x0 + s noise / k."""
        streams = handle.option(STREAMS)
        if streams is None:
            return noise
        video, sound = apart(noise, *streams)
        return joined(video, sound / self.sound_ratio(handle))

    def sound_ratio(self, handle) -> float:
        """k: the video's shift over the sound's (12 / 3 as released; MiniMaxH3SigmaShift sets both)."""
        video = handle.option("flow_shift") or self.flow_shift(handle.pipe)
        return float(video) / float(handle.option(SOUND_SHIFT) or DEFAULT_SOUND_SHIFT)

    def decode_sound(self, pipe, audio):
        """The stereo waveform [2, n] at 32 kHz of a sound latent [1, C, 2, L]: the two channels decoded apart by the
        audio VAE after its latent statistics are undone (diffusers' MiniMaxH3AudioDecodeStep); None where `pipe` is
        not the audio VAE (vae.decode of the video VAE gives the frames alone)."""
        avae = pipe.vae
        if not is_audio_vae(avae):
            return None
        mean, std = (torch.tensor(s, dtype=torch.float32).view(1, -1, 1) for s in (avae.config.latents_mean,
                                                                                    avae.config.latents_std))
        z = audio[0].float().permute(1, 0, 2) * std + mean
        wave = avae.decode(z.to(avae.device, avae.dtype), return_dict=False)[0]
        return wave.float()[:, 0].cpu().numpy(), int(avae.config.sampling_rate)

    def for_latent(self, handle, latent):
        if latent.audio is None:
            return handle.with_option(STREAMS, None)
        return handle.with_option(STREAMS, (tuple(latent.samples.shape[1:]), tuple(latent.audio.shape[1:])))

    def forward(self, handle, x_in, t, inputs):
        """Each frame as its own packed sequence with its prompt's own tokens (a sequence is one request); a
        video with its soundtrack as one."""
        if handle.option(STREAMS) is not None:
            return self._video(handle, x_in, t, inputs)
        if "keyframes" in inputs or "refs" in inputs or "control" in inputs:
            raise NodeError("MiniMax H3 pins keyframes (condition.frames), reads reference pictures "
                            "(condition.references) and follows a Fun ControlNet (control.model_patch) for a video, "
                            "not a picture: make the latent with latent.empty on the MiniMax H3 video VAE with 17n+5 "
                            "frames")
        model = handle.pipe.transformer
        n = x_in.shape[0]
        frames = frames_in_batch(x_in)
        c, h, w = frames.shape[1:]
        if h % 2 or w % 2:
            raise NodeError(f"MiniMax H3 reads the latent in 2x2 patches; {w}x{h} latent pixels do not divide into "
                            "them: make width and height multiples of 32")
        ehs, mask = inputs["encoder_hidden_states"], inputs["mask"]
        timestep = (1 - t.float().reshape(-1)[:1] / 1000).to(frames.device)
        outs = []
        for x, e, m in zip(frames, ehs, mask):
            text = e[m][None]
            pos, tags = image_layout(text.shape[1], h, w)
            rows = patchify(x[:, None])
            seq = pos.shape[0]
            dev = x.device
            vel = model(hidden_states=rows[None].to(model.dtype), audio_hidden_states=rows.new_zeros(1, 0, model.config.audio_in_channels),
                        encoder_hidden_states=text, timestep=timestep,
                        timestep_indices=torch.zeros(seq, dtype=torch.long, device=dev), token_tags=tags.to(dev),
                        position_ids=pos.to(dev), video_indices=torch.arange(text.shape[1], seq, device=dev),
                        audio_indices=torch.zeros(0, dtype=torch.long, device=dev),
                        text_indices=torch.arange(text.shape[1], device=dev), return_dict=False)[0]
            outs.append(-unpatchify(vel[0].float(), c, 1, h, w)[:, 0])
        return frames_from_batch(torch.stack(outs), n)

    def _video(self, handle, x_in, t, inputs):
        """The video's rows and its sound's in one sequence per prompt: the sound told its own level (sound_sigma),
        read back from the sampler's state and its prediction put in it (the module docstring's y)."""
        model = handle.pipe.transformer
        video_shape, sound_shape = handle.option(STREAMS)
        c, f, h, w = video_shape
        if h % 2 or w % 2:
            raise NodeError(f"MiniMax H3 reads the latent in 2x2 patches; {w}x{h} latent pixels do not divide into "
                            "them: make width and height multiples of 32")
        k = self.sound_ratio(handle)
        sigma = t.double().reshape(-1)[:1].cpu() / 1000
        heard = sound_sigma(sigma, k)
        timestep = (1 - torch.cat([sigma, heard])).float().to(x_in.device)
        video, held = apart(x_in.float(), video_shape, sound_shape)
        sound = held * (k / (sigma + k * (1 - sigma))).to(held)
        heard = heard.to(held)
        # the keyframes' rows are told the step's time or KEYFRAME_T, whichever is cleaner (timestep 2)
        timestep = torch.cat([timestep, timestep[:1].clamp(min=KEYFRAME_T)])
        length, dev = sound_shape[2], x_in.device
        keyframes = inputs.get("keyframes") or [(None, ())] * video.shape[0]
        seen = inputs.get("seen") or [None] * video.shape[0]
        refs = inputs.get("refs") or [[]] * video.shape[0]
        # each net runs where the transformer runs now (it may have been moved since control.model_patch)
        controls = [(c.net.to(x_in.device), c.strength,
                     control_rows(c.net, self.control_latent(c, video_shape).to(x_in.device)))
                    for c in inputs.get("control") or ()]
        outs = []
        for x, a, e, m, (keys, anchors), s, r in zip(video, sound, inputs["encoder_hidden_states"], inputs["mask"],
                                                     keyframes, seen, refs):
            text = e[m][None]
            n = text.shape[1]
            pos, tags = video_layout(n, f, h, w, length, anchors, [tuple(p.shape[1:]) for p in r])
            if s is not None:       # a keyframe's or reference's vision rows are tagged as video
                tags[:n][s[0]] = VIDEO_TAG
            held_rows = ([] if keys is None else [patchify(keys.to(x).transpose(0, 1))]) + [
                patchify(p.to(x)[:, None]) for p in r]
            held = sum(p.shape[0] for p in held_rows)
            rows = torch.cat([*held_rows, patchify(x)])
            audio = torch.arange(n + held, n + held + STEREO * length, device=dev)
            which = torch.zeros(pos.shape[0], dtype=torch.long, device=dev)
            which[n:n + held] = 2
            which[audio] = 1
            target = torch.arange(audio[-1] + 1, pos.shape[0], device=dev)
            seen_rows = torch.cat([torch.arange(n, n + held, device=dev), target])
            with steering(model.transformer_blocks, controls, seen_rows, target, audio):
                vel, vel_sound = model(hidden_states=rows[None].to(model.dtype),
                                       audio_hidden_states=sound_rows(a)[None].to(model.dtype),
                                       encoder_hidden_states=text, timestep=timestep, timestep_indices=which,
                                       token_tags=tags.to(dev), position_ids=pos.to(dev), video_indices=seen_rows,
                                       audio_indices=audio, text_indices=torch.arange(n, device=dev),
                                       return_dict=False)
            vel = vel[:, held:]
            v = -sound_of_rows(vel_sound[0].float(), sound_shape[0], length)
            clean, noise = a - heard * v, a + (1 - heard) * v
            outs.append(joined(-unpatchify(vel[0].float(), c, f, h, w)[None], (noise / k - clean)[None]))
        return torch.cat(outs)


def cover(picture, width: int, height: int):
    """The picture scaled to cover width x height and centre-cropped, in the released model's arithmetic (rounded
    size, (excess) // 2 offsets)."""
    scale = max(width / picture.size[0], height / picture.size[1])
    size = (max(width, round(picture.size[0] * scale)), max(height, round(picture.size[1] * scale)))
    left, top = max(0, (size[0] - width) // 2), max(0, (size[1] - height) // 2)
    return picture.resize(size, Image.LANCZOS).crop((left, top, left + width, top + height))


def keyframe_pictures(latent, first, last):
    """[(anchor, picture)] of the keyframes at the latent's size: the first stretched onto it, the last
    cover-cropped, both Lanczos (diffusers' MiniMaxH3ResizeStep)."""
    size = (latent.width, latent.height)
    return [(a, k.resize(size, Image.LANCZOS) if a == "first" else cover(k, *size))
            for a, k in (("first", first), ("last", last)) if k is not None]


def held_refs(cond):
    """The reference pictures for_run mixed with their noise, [C, h, w] each, in order."""
    out = []
    while f"{HELD_REF}{len(out)}" in cond.extra:
        out.append(cond.extra[f"{HELD_REF}{len(out)}"])
    return out


def qwen3vl(pipe):
    """The text encoder, checked to be Qwen3-VL deep enough for the state MiniMax H3 reads."""
    te = getattr(pipe, "text_encoder", None)
    if te is None or not type(te).__name__.startswith("Qwen3VL"):
        raise NodeError(NO_QWEN3VL)
    layers = te.config.text_config.num_hidden_layers
    if layers <= TEXT_LAYER:
        raise NodeError(f"MiniMax H3 reads Qwen3-VL's state after layer {TEXT_LAYER}; this text encoder has "
                        f"{layers} layers: give it qwen3vl_32b_minimax_h3 (64 layers)")
    return te


def is_audio_vae(vae) -> bool:
    return type(vae).__name__ == "AutoencoderKLMiniMaxH3Audio"


def video_vae(pipe):
    if is_audio_vae(pipe.vae):
        raise NodeError("this is MiniMax H3's audio VAE (minimax_h3_audio_vae_*): it decodes a video's sound "
                        "(vae.decode_sound); load the video VAE (minimax_h3_video_vae_*) for the frames")
    return pipe.vae


class MiniMaxH3Parts(DiffusionPipeline, MiniMaxH3LoraLoaderMixin):
    """The loaded parts of a MiniMax H3 (diffusers has only a modular pipeline for it, which loads whole repositories):
    the transformer, its scheduler, the VAE, Qwen3-VL, its tokenizer and processor, any of them None. LoRAs load into the
    transformer through diffusers' MiniMax H3 LoRA loader (MiniMax's / ComfyUI's names, kohya's, musubi-tuner's)."""
    def __init__(self, transformer=None, scheduler=None, vae=None, text_encoder=None, tokenizer=None, processor=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, processor=processor)


ADAPTERS = {"minimax_h3": MiniMaxH3Adapter()}
