"""What every family adapter provides, with the defaults most diffusers pipelines share."""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from graph_engine import NodeError
from nodes.generate.families import Family, family as family_spec


class Adapter:
    """space: "vp" (noise-prediction models sampled in the variance-exploding frame: x = x0 + sigma * n,
    the network sees x / sqrt(1 + sigma^2)) or "flow" (x = (1 - sigma) x0 + sigma * n, v = n - x0)."""
    family = ""
    space = "vp"
    prediction = "epsilon"            # or "v_prediction" / "flow"
    per_frame_text = False            # the denoiser takes one text embedding per frame (AnimateDiff, SD)
    reads_references = False          # reference latents (condition.reference) join its tokens (FLUX.1 Kontext)
    has_text = True
    # The prompt is read as written, brackets and all (ComfyUI tokenizes it with disable_weights: MiniMax H3): no
    # (word:1.2) emphasis is parsed out of it
    literal_prompts = False
    frames_first = False              # the pipeline's latents are [B, F, C, h, w] (CogVideoX, SVD)
    single_file = False               # load() also takes one weights file (ComfyUI's layouts)
    flow_levels = 1000                # a flow model's table of levels for the tabulated schedules (simple, beta)

    @property
    def spec(self) -> Family:
        return family_spec(self.family)

    def title(self, pipe) -> str:
        """The loaded model's name as its users know it, for messages."""
        return self.spec.title

    def latents(self, pipe) -> str:
        """The family whose VAE and latents the loaded model's are."""
        return self.family

    # -- loading --------------------------------------------------------------------------
    def load(self, path: Path, dtype, device: str, **opts):
        if self.single_file and Path(path).is_file():
            from nodes.generate.converters.pipelines import load_single_file
            return load_single_file(self.family, Path(path), dtype)
        from diffusers import DiffusionPipeline
        return DiffusionPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)

    def image_encoder_pipe(self, pipe):
        """What the IMAGE_ENCODER handle of a loaded folder holds (None: this folder has no image encoder)."""
        return pipe if getattr(pipe, "image_encoder", None) is not None else None

    # -- geometry ------------------------------------------------------------------------
    def factors(self, pipe) -> Tuple[int, int, int]:
        """(pixel frames per latent frame, pixels per latent pixel, latent channels) of this model's VAE,
        as the pipeline computed them from the VAE's config."""
        t = getattr(pipe, "vae_scale_factor_temporal", None) or getattr(pipe, "vae_temporal_compression_ratio", 1)
        s = getattr(pipe, "vae_scale_factor_spatial", None) or getattr(pipe, "vae_spatial_compression_ratio", None) \
            or pipe.vae_scale_factor
        if getattr(pipe, "vae", None) is None:     # a diffusion model loaded from its own file
            den = getattr(pipe, "transformer", None) or pipe.unet
            return int(t), int(s), int(den.config.out_channels)
        c = getattr(pipe.vae.config, "latent_channels", None) or pipe.vae.config.z_dim
        return int(t), int(s), int(c)

    # -- text ----------------------------------------------------------------------------
    max_tokens = 0                    # T5-style encoders: the pipeline's max_sequence_length

    def encode_text(self, pipe, prompts: List[str], device) -> Tuple[torch.Tensor, Optional[torch.Tensor],
                                                                      Optional[torch.Tensor]]:
        """(embeds [K, L, D], mask [K, L] or None, pooled [K, P] or None) for the prompts, no guidance batch."""
        if not self.has_text:
            raise NodeError(f"{self.spec.title} takes no text prompt")
        embeds, _ = pipe.encode_prompt(list(prompts), do_classifier_free_guidance=False,
                                       max_sequence_length=self.max_tokens, device=device)
        return embeds, None, None

    # encode_text and text_extra are given each prompt as written, weight markup and all, and weigh it themselves
    # instead of encode_prompt's weighting (Anima: ComfyUI's parts, prompts.comfy_parts)
    reads_weights = False

    def text_extra(self, pipe, prompts: List[str]) -> dict:
        """Tensors beside the embeddings that a family's denoiser reads of each prompt (Conditioning.extra, one row
        per prompt): Anima's T5 token ids and weights."""
        return {}

    def token_offsets(self, pipe, text: str) -> Optional[List[Optional[Tuple[int, int]]]]:
        """Character span of the prompt text behind each embedding position (None: special/padding)."""
        return self._offsets(pipe.tokenizer, text, self.max_tokens or pipe.tokenizer.model_max_length)

    @staticmethod
    def _offsets(tokenizer, text: str, max_length: int, **kw):
        enc = tokenizer(text, padding="max_length", max_length=max_length, truncation=True,
                        return_offsets_mapping=True, **kw)
        special = set(tokenizer.all_special_ids)
        return [None if i in special else tuple(o) for i, o in zip(enc["input_ids"], enc["offset_mapping"])]

    # -- sampling ------------------------------------------------------------------------
    def scheduler(self, pipe):
        return type(pipe.scheduler).from_config(pipe.scheduler.config)

    def usual_cfg(self, handle) -> float:
        """sample's cfg when it is left at 0 (auto): the family's, or its variant's where the model tells which."""
        return self.spec.cfg

    def distilled_guidance(self, handle) -> bool:
        """Whether this model is told sample's cfg as its guidance (no negative pass): the family's, or the
        model's own where a family has both kinds (FLUX.2 dev and [klein])."""
        return self.spec.distilled_guidance

    def alphas_cumprod(self, pipe) -> torch.Tensor:
        ac = self.scheduler(pipe).alphas_cumprod.double()
        return ac.clamp(min=1e-10)        # zero-terminal-SNR schedules (CogVideoX) end at exactly 0

    def timestep_fn(self, pipe):
        """sigma -> the network's time input (built once per run: VP models interpolate their table)."""
        if self.space == "flow":
            return lambda sigma: torch.as_tensor(sigma, dtype=torch.float32) * 1000.0
        ac = self.alphas_cumprod(pipe)
        log_sigmas = (((1 - ac) / ac) ** 0.5).log()

        def fn(sigma):
            ls = torch.as_tensor(sigma, dtype=torch.float64).reshape(1).clamp(min=float(log_sigmas[0].exp())).log()
            t = torch.searchsorted(log_sigmas, ls).clamp(1, len(ac) - 1)
            lo, hi = log_sigmas[t - 1], log_sigmas[t]
            return (t - 1 + ((ls - lo) / (hi - lo)).clamp(0, 1)).float()[0]
        return fn

    def scheduler_kwargs(self, pipe, latent_shape) -> dict:
        return {}

    def default_sigmas(self, pipe, steps: int, latent_shape) -> torch.Tensor:
        """The noise levels this model's own diffusers scheduler would visit, ending at its last level."""
        sch = self.scheduler(pipe)
        sch.set_timesteps(steps, **self.scheduler_kwargs(pipe, latent_shape))
        if self.space == "flow" or (hasattr(sch, "sigmas") and not hasattr(sch, "final_alpha_cumprod")):
            return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()
        ac = sch.alphas_cumprod.double().clamp(min=1e-10)
        ts = torch.as_tensor(sch.timesteps).long()
        final = float(sch.final_alpha_cumprod)
        s = ((1 - ac[ts]) / ac[ts]) ** 0.5
        return torch.cat([s, torch.tensor([((1 - final) / final) ** 0.5 if final < 1 else 0.0],
                                          dtype=torch.float64)])

    def sigma_range(self, pipe) -> Tuple[float, float]:
        if self.space == "flow":
            return 1.0 / 1000, 1.0
        ac = self.alphas_cumprod(pipe)
        s = ((1 - ac) / ac) ** 0.5
        return float(s[0]), float(s[-1])

    def percent_sigma(self, pipe, percent: float, shift: Optional[float] = None) -> float:
        """The noise level `percent` of the way from pure noise to the picture, as ComfyUI's
        model_sampling.percent_to_sigma gives it (condition.timestep_range's start and end): 0 is above every
        level, 1 is 0; between, flow models' shifted line at 1 - percent (shift: model.flow_shift's, else the
        model's own) and VP models' table of levels at timestep (1 - percent) x 999, interpolated in log."""
        if percent <= 0.0:
            return math.inf
        if percent >= 1.0:
            return 0.0
        t = 1.0 - percent
        if self.space == "flow":
            s = self.flow_shift(pipe) if shift is None else float(shift)
            return s * t / (1 + (s - 1) * t)
        from nodes.generate.samplers import SigmaTable
        table = SigmaTable.vp(self.alphas_cumprod(pipe))
        return table.sigma(t * (len(table) - 1))

    def flow_shift(self, pipe) -> float:
        cfg = pipe.scheduler.config
        return float(cfg.get("flow_shift") or cfg.get("shift") or 1.0)

    def model_input(self, pipe, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.space == "flow":
            return x
        return x / (1 + sigma ** 2) ** 0.5

    def prediction_type(self, pipe) -> str:
        """What the network outputs. A family trained on noise (SD, SDXL) has v-prediction and x0 fine-tunes
        (NoobAI-XL v-pred, SD 2.x 768-v): their scheduler says so (from the checkpoint's v_pred marker, a diffusers
        folder's scheduler config, or model.sampling)."""
        if self.space == "flow" or self.prediction != "epsilon":
            return self.prediction
        return getattr(pipe.scheduler, "config", {}).get("prediction_type") or self.prediction

    def denoised(self, pipe, x: torch.Tensor, sigma: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """x0 from the network output, in the sampler's frame."""
        out = out.to(x.dtype)
        if self.space == "flow":
            return x - sigma * out
        prediction = self.prediction_type(pipe)
        if prediction == "sample":
            return out
        if prediction == "v_prediction":
            a = 1 / (1 + sigma ** 2) ** 0.5
            return (x * a) * a - (sigma * a) * out
        return x - sigma * out

    def noise_scaling(self, sigma: float, noise: torch.Tensor, latent: torch.Tensor, full: bool) -> torch.Tensor:
        """The first x: the latent noised to sigma (pure noise when full denoise)."""
        if self.space == "flow":
            return (1 - sigma) * latent + sigma * noise
        if full:
            return latent + noise * (1 + sigma ** 2) ** 0.5
        return latent + noise * sigma

    def finish(self, x: torch.Tensor, sigma_last: float) -> torch.Tensor:
        """Latent from the sampler's last x (DDIM-style schedules stop just above zero noise)."""
        if self.space == "flow" or sigma_last == 0:
            return x
        return x / (1 + sigma_last ** 2) ** 0.5

    def for_run(self, handle, positive, negative, seed: int, sigmas: torch.Tensor):
        """(positive, negative) as one sampling run gives them to the model: what depends on the run's seed or
        schedule (a conditioning's noise augmentation, a model told the next step's level) goes in here."""
        return positive, negative

    def conditioning_inputs(self, handle, conds, frames: Sequence[int], batch: int, device, dtype) -> dict:
        """Keyword inputs of one network call for a batch of conditionings (negative first); frames are
        the latent frame indices x covers (a context window or all)."""
        raise NotImplementedError

    def forward(self, handle, x_in: torch.Tensor, t: torch.Tensor, inputs: dict) -> torch.Tensor:
        """One network call on a batch: x_in [N, C, T, h, w] -> raw prediction of the same shape."""
        raise NotImplementedError

    def frame_limit(self, pipe) -> Optional[Tuple[int, int]]:
        """(most latent frames one network call takes, the length it was trained on), or None where a model
        takes any length (it may drift past its native length, but it runs)."""
        return None

    def start_pixels(self, pipe, latent, image) -> torch.Tensor:
        """A start image as the pixels [1, 3, k, H, W] of the latent frames the sampler keeps as they are
        (latent.empty's start_image); only models trained to continue clean latent frames take one."""
        raise NodeError(f"a start image on latent.empty is for Wan 2.2 TI2V-5B; {self.spec.title} models do "
                        "not take one there. Pin the first frame with condition.frames instead")

    # -- a latent of more than one stream (LTX-2's video and sound) --------------------------
    def pack(self, latent) -> torch.Tensor:
        """The sampler's state for a latent: its samples, or, for a latent of several streams, one tensor of them
        all (the samplers' updates are elementwise)."""
        return latent.samples.float()

    def unpack(self, latent, x: torch.Tensor):
        """The latent holding the sampler's state x (pack's inverse)."""
        return latent.with_samples(x)

    def pack_mask(self, latent) -> torch.Tensor:
        """The latent's mask in pack's layout (1 where the sampler draws)."""
        return latent.mask

    def latent_noise(self, latent, generator: torch.Generator, video: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Seeded unit noise in pack's layout; `video`, when given, is the noise of the latent's samples (a noise.*
        node's), the other streams' drawn."""
        return self.draw_noise(latent.samples.shape, generator) if video is None else video

    def run_noise(self, handle, noise: torch.Tensor) -> torch.Tensor:
        """The noise in the sampler's state for one run (for_latent's handle): `noise` as drawn, unless a stream is
        held at another scale (MiniMax H3's sound)."""
        return noise

    def sound_latent(self, pipe, frames: int, fps: float):
        """The silent sound latent an empty latent of `frames` at fps carries (None: the model makes no sound)."""
        return None

    def decode_sound(self, pipe, audio: torch.Tensor):
        """(samples [channels, n] in [-1, 1], sample rate) of a latent's sound stream; None where this VAE decodes
        frames alone (the sound has a VAE of its own)."""
        raise NodeError(f"{self.spec.title} makes no sound: this latent's sound stream is not its")

    def for_latent(self, handle, latent):
        """The handle one run on this latent calls the network with (what forward needs to read pack's layout)."""
        return handle

    def check_latent(self, handle, latent) -> None:
        """Raise, naming what to do, for a latent this model cannot sample that the network would only meet with a
        shape error."""

    def keeps_clean(self, handle) -> bool:
        """True for a model trained to read the parts a latent's mask keeps clean, with a timestep of their own
        (Wan 2.2 TI2V-5B's start frame); the others are shown them noised to each step's level, as ComfyUI's
        SetLatentNoiseMask shows them."""
        return False

    def with_keyframes(self, latent, conds):
        """The latent a run samples: `latent`, or (LTX-2's guides) it with the frames the prompts add after its own;
        without_keyframes(latent, result) gives the result back at the given latent's length."""
        return latent

    def without_keyframes(self, given, out):
        return out

    def draw_noise(self, shape, generator: torch.Generator) -> torch.Tensor:
        """Seeded unit noise for a latent [B, C, T, h, w], drawn in the element order the family's diffusers
        pipeline uses, so a seed gives the same video here and there."""
        if self.frames_first:
            b, c, t, h, w = shape
            return torch.randn((b, t, c, h, w), generator=generator, dtype=torch.float32).permute(0, 2, 1, 3, 4)
        return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)

    def guidance_scale(self, cfg: float, num_frames: int, device) -> object:
        return cfg

    def uncond(self, pipe, positive):
        """The negative conditioning when none is connected (None: guidance needs one)."""
        return None

    # -- VAE ------------------------------------------------------------------------------
    def vae_encode(self, pipe, pixels: torch.Tensor, generator=None) -> torch.Tensor:
        """pixels [B, 3, T, H, W] in [-1, 1] -> latent [B, C, t, h, w] in the denoiser's space
        (here: a video VAE whose latents are scaled by its scaling_factor)."""
        vae = pipe.vae
        z = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        return (z * vae.config.scaling_factor).float()

    def vae_decode(self, pipe, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, C, t, h, w] -> pixels [B, 3, T, H, W] in [-1, 1]."""
        vae = pipe.vae
        z = latent.to(vae.device, vae.dtype) / vae.config.scaling_factor
        return vae.decode(z, return_dict=False)[0].float()

    def vae_per_frame(self) -> bool:
        """True when frames decode independently (a 2-D VAE), so a clip can be decoded chunk by chunk."""
        return False

    def clip_decoder(self, latent):
        """vae_decode's like for a latent whose frames decode together where this model's pictures decode one by one
        (MiniMax H3's videos), or None: vae_decode as vae_per_frame says."""
        return None

    def set_vae_tiling(self, pipe, on: bool) -> None:
        vae = pipe.vae
        for name in ("enable_tiling", "enable_slicing") if on else ("disable_tiling", "disable_slicing"):
            fn = getattr(vae, name, None)
            if fn is not None:
                try:
                    fn()
                except (NotImplementedError, AttributeError):
                    pass


def frames_in_batch(x: torch.Tensor) -> torch.Tensor:
    """[N, C, f, h, w] -> [N * f, C, h, w]: a 2-D network (a UNet, FLUX.1, their VAEs) takes each frame as a batch
    item."""
    n, c, f, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(n * f, c, h, w)


def frames_from_batch(y: torch.Tensor, n: int) -> torch.Tensor:
    """frames_in_batch's inverse: [N * f, C', h', w'] -> [N, C', f, h', w']."""
    return y.reshape(n, -1, *y.shape[1:]).permute(0, 2, 1, 3, 4)


def frame_centres(idx: Sequence[int], time_factor: int) -> List[int]:
    """Pixel frame at the centre of each latent frame (causal VAEs: latent 0 is pixel frame 0 alone)."""
    if time_factor == 1:
        return [int(i) for i in idx]
    return [0 if i == 0 else int(i * time_factor - (time_factor - 1) // 2) for i in idx]


def stack_global(conds, frames, device, dtype, batch: int, time_factor: int = 1):
    """Per-conditioning global text inputs (schedules averaged over the frames), repeated per batch item.

    `frames` are latent frame indices; prompt schedules are keyed by pixel frame, so each latent
    frame reads the schedule at the centre of the pixel frames it holds."""
    embeds, masks, pooled = [], [], []
    length = max(c.embeds.shape[1] for c in conds)
    pixel_frames = frame_centres(frames, time_factor)
    for c in conds:
        e, m, p = c.averaged(pixel_frames)
        if e.shape[1] < length:
            e = torch.cat([e, e.new_zeros(1, length - e.shape[1], e.shape[2])], 1)
            if m is not None:
                m = torch.cat([m, m.new_zeros(1, length - m.shape[1])], 1)
        embeds += [e] * batch
        masks += [m] * batch
        pooled += [p] * batch
    out_e = torch.cat(embeds).to(device, dtype)
    out_m = None if masks[0] is None else torch.cat(masks).to(device)
    out_p = None if pooled[0] is None else torch.cat(pooled).to(device, dtype)
    return out_e, out_m, out_p


def masked_text(conds, frames, batch: int, device, dtype) -> dict:
    """Each conditioning's text states per latent frame (2-D models: frame centres are the frames), padded to the
    longest with their mask (a conditioning without one reads every token) zero there, repeated per batch item:
    {"encoder_hidden_states", "mask"} for transformers told which text tokens to read (Qwen-Image, Chroma)."""
    rows = [c.at_frames(frame_centres(frames, 1))[:2] for c in conds]
    length = max(e.shape[1] for e, _ in rows)
    ehs, masks = [], []
    for e, m in rows:
        m = torch.ones(e.shape[:2], dtype=torch.bool) if m is None else m.bool()
        pad = length - e.shape[1]
        ehs += [torch.cat([e, e.new_zeros(e.shape[0], pad, e.shape[2])], 1)] * batch
        masks += [torch.cat([m, m.new_zeros(m.shape[0], pad)], 1)] * batch
    return {"encoder_hidden_states": torch.cat(ehs).to(device, dtype), "mask": torch.cat(masks).to(device)}


def layer_outputs(lm, ids: torch.Tensor, layers) -> list:
    """The raw outputs of the given decoder layers of a transformers language model `lm` (its .layers) over the
    tokens `ids` [1, S], each [1, S, width]: the last layer's before the final norm, which transformers' own
    hidden_states[-1] has applied (Ideogram 4's and Lens's encoders read them so)."""
    got = {}
    hooks = [lm.layers[i].register_forward_hook(
        lambda mod, args, out, i=i: got.__setitem__(i, out[0] if isinstance(out, tuple) else out)) for i in layers]
    try:
        lm(input_ids=ids)
    finally:
        for hook in hooks:
            hook.remove()
    return [got[i] for i in layers]


def padded_rows(rows) -> tuple:
    """Prompts of their own lengths ([L_i, D] each) as one batch [K, L, D] padded to the longest, and the mask [K, L]
    of each one's own tokens (Z-Image's and Krea 2's prompts, which read no padding)."""
    length = max(r.shape[0] for r in rows)
    embeds = torch.stack([torch.cat([r, r.new_zeros(length - r.shape[0], r.shape[1])]) for r in rows])
    return embeds, torch.stack([torch.arange(length, device=r.device) < r.shape[0] for r in rows])


def text_of_width(conds, frames, batch: int, device, dtype, reads: int, what: str) -> dict:
    """masked_text, checked to be as wide as the transformer `reads`: a prompt another family's encoder read is named
    (`what`: the transformer's width and the encoder to use) rather than failing inside the model."""
    out = masked_text(conds, frames, batch, device, dtype)
    if out["encoder_hidden_states"].shape[-1] != reads:
        raise NodeError(f"this prompt was encoded {out['encoder_hidden_states'].shape[-1]} wide, and {what}")
    return out


def with_concat(inputs: dict, conds, frames, batch: int, device, dtype) -> dict:
    """inputs with "concat" [N, C', f, h, w]: an inpainting model's mask and masked-picture channels
    (Conditioning.extra["concat"], nodes/generate/inpaint.py) at these latent frames, per conditioning."""
    if conds[-1].extra.get("concat") is None:
        return inputs
    idx = torch.as_tensor([int(i) for i in frames])
    parts = []
    for c in conds:
        cat = c.extra.get("concat", conds[-1].extra["concat"])
        parts += [cat[:, :, idx.clamp(max=cat.shape[2] - 1)]] * batch
    return {**inputs, "concat": torch.cat(parts).to(device, dtype)}


def joined(video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """[N, 1, 1, 1, video + audio elements]: the two streams as one sampler state."""
    n = video.shape[0]
    return torch.cat([video.reshape(n, -1), audio.reshape(n, -1).to(video.dtype)], 1).view(n, 1, 1, 1, -1)


def apart(x: torch.Tensor, video_shape, audio_shape):
    """joined's inverse: (video [N, *video_shape], audio [N, *audio_shape])."""
    n = x.shape[0]
    flat = x.reshape(n, -1)
    cut = math.prod(video_shape)
    return flat[:, :cut].reshape(n, *video_shape), flat[:, cut:].reshape(n, *audio_shape)
