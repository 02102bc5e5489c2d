"""Stable Audio Open 1.0 (Stability AI's text to sound: 44.1 kHz stereo, up to 47 s) from the files ComfyUI users
have: its checkpoint (stable-audio-open-1.0.safetensors in checkpoints/: the DiT under model.model., the Oobleck VAE
under pretransform.model., the seconds conditioners under conditioner.conditioners.) and T5-base
(t5-base.safetensors in text_encoders/, ComfyUI's CLIPLoader type stable_audio). The weights run in diffusers'
StableAudioDiTModel, AutoencoderOobleck and StableAudioProjectionModel.

Made as ComfyUI makes it: EmptyLatentAudio's length (an even count of 44100/2048 latent frames a second), the
prompt's T5 states zeroed past its tokens and padded to 128, then the seconds_start and seconds_total embeddings
(0 and the latent's whole seconds, unless ConditioningStableAudio's are given); a v-prediction model sampled in the variance-exploding frame between its
sigma_min 0.03 and sigma_max 500; VAEDecodeAudio's rule that quietens a decode louder than 0.2 standard deviation."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from graph_engine import NodeError
from nodes.generate.audio_nodes import STABLE_AUDIO_SCHEDULERS as SCHEDULERS

RATE = 44100                # the VAE's sample rate and ComfyUI's EmptyLatentAudio's
HOP = 2048                  # samples per latent frame
SIGMA_MIN, SIGMA_MAX = 0.03, 500.0      # ComfyUI's sampling_settings for Stable Audio
MIN_TOKENS = 128            # ComfyUI's T5-base tokenizer pads every prompt to at least this
SECONDS_MAX = 512           # the seconds conditioners' range (0 to 512)
DIT, VAE, COND = "model.model.", "pretransform.model.", "conditioner.conditioners."
NOT_STABLE_AUDIO = ("{name} is not a Stable Audio Open checkpoint (it has no {what} under {prefix}): give "
                    "stable-audio-open-1.0.safetensors from checkpoints/ (Comfy-Org/stable-audio-open-1.0_repackaged)")


def latent_frames(seconds: float) -> int:
    """ComfyUI's EmptyLatentAudio: round(seconds * 44100 / 2048 / 2) * 2 frames."""
    return int(round(seconds * RATE / HOP / 2)) * 2


def _part(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def dit_weights(state: dict, name: str):
    """(StableAudioDiTModel's config, its state dict) from the checkpoint's model.model. tensors. Sizes are read
    from the tensors; the head size from the rotary table (ComfyUI's max(head // 2, 32) rotary dimensions: 64, the
    release's, where it says 32). The layer norms' betas are zero in the release and ComfyUI drops them: so here."""
    sd = _part(state, DIT)
    if "transformer.project_in.weight" not in sd:
        raise NodeError(NOT_STABLE_AUDIO.format(name=name, what="diffusion transformer", prefix=DIT))
    if "transformer.global_cond_embedder.0.weight" in sd:
        raise NodeError(f"{name} is Stable Audio 3's checkpoint: generate.stable_audio3 reads it (with "
                        "t5gemma_b_b_ul2.safetensors); generate.stable_audio reads Stable Audio Open 1.0's")
    out = {}
    for k, v in sd.items():
        if k.endswith(".beta") or k.endswith("rotary_pos_emb.inv_freq"):
            continue
        k = re.sub(r"^transformer\.layers\.", "transformer_blocks.", k)
        k = re.sub(r"^transformer\.project_(in|out)", r"proj_\1", k)
        for a, b in (("self_attn.", "attn1."), ("cross_attn.", "attn2."), ("pre_norm.gamma", "norm1.weight"),
                     ("cross_attend_norm.gamma", "norm2.weight"), ("ff_norm.gamma", "norm3.weight"),
                     ("ff.ff.", "ff.net."), ("to_out.", "to_out.0."), ("to_timestep_embed.", "timestep_proj."),
                     ("to_global_embed.", "global_proj."), ("to_cond_embed.", "cross_attention_proj."),
                     ("timestep_features.weight", "time_proj.weight")):
            k = k.replace(a, b)
        if k == "time_proj.weight":
            v = v.reshape(-1)
        if k.endswith("to_qkv.weight"):
            for n, part in zip("qkv", v.chunk(3)):
                out[k.replace("to_qkv", f"to_{n}")] = part
        elif k.endswith("to_kv.weight"):
            for n, part in zip("kv", v.chunk(2)):
                out[k.replace("to_kv", f"to_{n}")] = part
        else:
            out[k] = v
    blocks = sorted({int(k.split(".")[1]) for k in out if k.startswith("transformer_blocks.")})
    for i in blocks:
        for n in (1, 2, 3):
            w = out[f"transformer_blocks.{i}.norm{n}.weight"]
            out[f"transformer_blocks.{i}.norm{n}.bias"] = torch.zeros_like(w)
    rot = sd.get("transformer.rotary_pos_emb.inv_freq")
    head = 64 if rot is None or rot.numel() * 2 <= 32 else rot.numel() * 4
    dim = int(out["proj_in.weight"].shape[0])
    kv = out["transformer_blocks.0.attn2.to_k.weight"].shape
    cfg = dict(sample_size=1024, in_channels=int(out["preprocess_conv.weight"].shape[0]), num_layers=len(blocks),
               attention_head_dim=head, num_attention_heads=dim // head, num_key_value_attention_heads=int(kv[0]) // head,
               out_channels=int(out["postprocess_conv.weight"].shape[0]), cross_attention_dim=int(kv[1]),
               time_proj_dim=int(out["time_proj.weight"].numel()) * 2,
               global_states_input_dim=int(out["global_proj.0.weight"].shape[1]),
               cross_attention_input_dim=int(out["cross_attention_proj.0.weight"].shape[1]))
    return cfg, out


def vae_weights(state: dict, name: str, prefix: str = VAE, rate: int = RATE):
    """(AutoencoderOobleck's config, its state dict) from the `prefix` tensors (the checkpoint's pretransform.model.;
    ACE-Step 1.5's VAE file has them at the top level, at 48 kHz): the encoder's and decoder's layer lists become
    diffusers' named blocks; strides from the decoder's transposed convolutions (kernel 2 x stride), widths from
    the convolutions."""
    sd = _part(state, prefix)
    if not {"decoder.layers.0.weight_v", "decoder.layers.0.parametrizations.weight.original1"} & set(sd):
        raise NodeError(NOT_STABLE_AUDIO.format(name=name, what="Oobleck VAE", prefix=prefix))
    blocks = max(int(k.split(".")[2]) for k in sd if k.startswith("decoder.layers.")) - 2
    out = {}
    for k, v in sd.items():
        side, _, idx, rest = k.split(".", 3)
        idx = int(idx)
        if idx == 0:
            k = f"{side}.conv1.{rest}"
        elif idx == blocks + 1:
            k = f"{side}.snake1.{rest}"
        elif idx == blocks + 2:
            k = f"{side}.conv2.{rest}"
        else:
            k = f"{side}.block.{idx - 1}.{_vae_layer(side, rest)}"
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                "weight_v")
        out[k] = v.reshape(1, -1, 1) if ".snake" in k else v
    strides = [int(out[f"decoder.block.{i}.conv_t1.weight_v"].shape[2]) // 2 for i in range(blocks)][::-1]
    dec_in = int(out["decoder.conv1.weight_v"].shape[1])
    enc = [int(out[f"encoder.block.{i}.conv1.weight_v"].shape[0]) for i in range(blocks)]
    hidden = int(out["encoder.conv1.weight_v"].shape[0])
    dec = [int(out[f"decoder.block.{i}.conv_t1.weight_v"].shape[1]) for i in range(blocks)][::-1]
    cfg = dict(encoder_hidden_size=hidden, downsampling_ratios=strides,
               channel_multiples=[c // hidden for c in enc], decoder_channels=dec[0],
               decoder_input_channels=dec_in, audio_channels=int(out["encoder.conv1.weight_v"].shape[1]),
               sampling_rate=rate)
    return cfg, out


def _vae_layer(side: str, rest: str) -> str:
    """One encoder or decoder block's layer (stable-audio-tools' Sequential index) by its diffusers name."""
    i, tail = rest.split(".", 2)[1:]
    names = ("res_unit1", "res_unit2", "res_unit3", "snake1", "conv1") if side == "encoder" else \
        ("snake1", "conv_t1", "res_unit1", "res_unit2", "res_unit3")
    name = names[int(i)]
    if name.startswith("res_unit"):
        j, tail = tail.split(".", 2)[1:]
        tail = f"{('snake1', 'conv1', 'snake2', 'conv2')[int(j)]}.{tail}"
    return f"{name}.{tail}"


def projection_weights(state: dict, name: str):
    """(StableAudioProjectionModel's config, its state dict): the seconds_start and seconds_total number
    conditioners (T5-base is as wide as the DiT's conditioning, so no text projection)."""
    sd = _part(state, COND)
    if "seconds_total.embedder.embedding.1.weight" not in sd:
        raise NodeError(NOT_STABLE_AUDIO.format(name=name, what="seconds conditioners", prefix=COND))
    out = {k.replace("seconds_start.embedder.embedding", "start_number_conditioner.time_positional_embedding")
           .replace("seconds_total.embedder.embedding", "end_number_conditioner.time_positional_embedding"): v
           for k, v in sd.items() if k.startswith(("seconds_start.", "seconds_total."))}
    dim = int(out["end_number_conditioner.time_positional_embedding.1.weight"].shape[0])
    return dict(text_encoder_dim=dim, conditioning_dim=dim, min_value=0, max_value=SECONDS_MAX), out


def checkpoint_parts(state: dict, name: str, model: str, parts, device: str) -> list:
    """The modules `parts` ((class, reader, buffers the file need not hold)) of one checkpoint: each reader turns
    the file's tensors into (config, state dict); a mismatch is named as a damaged file or another model's."""
    from nodes.generate.converters import check_claim
    from nodes.generate.weights import misfit, sizes_of
    out = []
    for cls, read, computed in parts:
        with sizes_of(name, f"{model}'s {cls.__name__}"):
            cfg, sd = read(state, name)
        # widths read from tensors of no values (a (2e9, 0) feed-forward) asked the allocator for a terabyte
        check_claim(lambda: cls(**cfg), sd, name)
        module = cls(**cfg)
        why = misfit(module, sd, computed)
        if why:
            raise NodeError(f"{name}: its {cls.__name__} tensors do not match the model's ({why}): the file is "
                            "damaged or another model's")
        out.append(module.to(device).eval())
    return out


@dataclass(frozen=True, eq=False)
class StableAudio:
    transformer: object
    vae: object
    projection: object
    text_encoder: object
    tokenizer: object
    device: str


def load(mm, checkpoint: str, text_encoder: str, device: str) -> StableAudio:
    """The model from ComfyUI's two files (cached by the model manager), in float32."""
    from nodes.common.models_dirs import tokenizer_beside
    from nodes.generate.model_manager import resolve_model_path
    from nodes.generate.split import _detect, _module, tokenizer
    ckpt = resolve_model_path(checkpoint, "checkpoints", "Stable Audio checkpoint")
    t5 = resolve_model_path(text_encoder, "text_encoders", "text encoder")
    det = _detect(t5, ("text_encoder",), "a text encoder")
    if det.family != "t5":
        raise NodeError(f"{t5.name} is {det.describe()}; Stable Audio Open reads T5-base: give t5-base.safetensors "
                        "from text_encoders/")

    def build():
        from diffusers import AutoencoderOobleck, StableAudioDiTModel, StableAudioProjectionModel
        from nodes.generate.weights import load_weights
        parts = checkpoint_parts(load_weights(ckpt, torch.float32), ckpt.name, "Stable Audio Open", (
            (StableAudioDiTModel, dit_weights, ()), (AutoencoderOobleck, vae_weights, ()),
            (StableAudioProjectionModel, projection_weights, ())), device)
        return StableAudio(*parts, _module(t5, det, torch.float32, device).eval(), tokenizer(t5, det), device)
    model = mm.cached(("stable_audio", str(ckpt), str(t5), device), build, files=[ckpt, t5, *tokenizer_beside(t5)])
    # T5-XXL is T5 as well (FLUX.1's and SD3's, often beside T5-base): its wider states fit no layer of the DiT
    width, reads = model.text_encoder.config.d_model, model.transformer.config.cross_attention_input_dim
    if width != reads:
        raise NodeError(f"{t5.name} gives {width}-wide states, but this Stable Audio model reads {reads}-wide ones "
                        "(T5-base's): give t5-base.safetensors from text_encoders/")
    return model


@torch.no_grad()
def text_states(model: StableAudio, text: str) -> torch.Tensor:
    """T5's last hidden states of `text` [1, max(128, tokens), D], zero past its tokens (ComfyUI's T5-base for
    Stable Audio: </s> appended, padded to 128, the padding masked and zeroed, nothing cut)."""
    ids = model.tokenizer(text, add_special_tokens=True)["input_ids"]
    n = max(MIN_TOKENS, len(ids))
    pad = model.tokenizer.pad_token_id or 0
    tokens = torch.tensor([ids + [pad] * (n - len(ids))], device=model.device)
    mask = torch.zeros_like(tokens)
    mask[:, :len(ids)] = 1
    states = model.text_encoder(tokens, attention_mask=mask)[0].float()
    return states * mask[..., None]


@torch.no_grad()
def conditioning(model: StableAudio, text: str, seconds_start: float, seconds_total: float):
    """(cross-attention tokens: the prompt's then the two seconds embeddings, global: the two side by side)."""
    out = model.projection(text_hidden_states=text_states(model, text),
                           start_seconds=torch.tensor([float(seconds_start)], device=model.device),
                           end_seconds=torch.tensor([float(seconds_total)], device=model.device))
    start, end = out.seconds_start_hidden_states, out.seconds_end_hidden_states
    return torch.cat([out.text_hidden_states, start, end], 1), torch.cat([start, end], 2)


def sigmas(steps: int, scheduler: str) -> torch.Tensor:
    """`steps` noise levels from 500 down to 0.03, then 0: ComfyUI's exponential, karras or simple (every
    (1000 / steps)-th of its continuous model's 1000 log-spaced levels)."""
    from nodes.generate.samplers import SigmaTable, karras_sigmas, simple_sigmas
    if scheduler == "exponential":
        levels = torch.linspace(math.log(SIGMA_MAX), math.log(SIGMA_MIN), steps, dtype=torch.float64).exp()
        return torch.cat([levels, levels.new_zeros(1)])
    if scheduler == "karras":
        return karras_sigmas(steps, SIGMA_MIN, SIGMA_MAX).double()
    if scheduler == "simple":
        table = torch.linspace(math.log(SIGMA_MIN), math.log(SIGMA_MAX), 1000, dtype=torch.float64).exp()
        return simple_sigmas(SigmaTable(table), steps)
    raise NodeError(f"scheduler={scheduler!r}: Stable Audio takes {', '.join(SCHEDULERS)}")


@torch.no_grad()
def generate(model: StableAudio, prompt: str, negative: str, seconds: float, steps: int, cfg: float,
             sampler: str, scheduler: str, seed: int, progress=None, seconds_start: float = 0.0,
             seconds_total: float = 0.0) -> torch.Tensor:
    """The sound's waveform [channels, samples] at 44.1 kHz, loudness as VAEDecodeAudio leaves it. The model is
    told the piece starts at `seconds_start` and lasts `seconds_total` (0: the sound's whole seconds)."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed
    from nodes.generate.samplers import comfy_step_noise, ksampler_schedule, latent_sampler
    sample = latent_sampler(sampler)
    frames = latent_frames(seconds)
    if frames < 2:
        raise NodeError(f"seconds={seconds:g} gives no sound: give at least 0.1 s (ComfyUI's minimum is 1)")
    # ComfyUI's seconds_total when no ConditioningStableAudio sets it
    total = seconds_total or int(frames / 21.53)
    if max(total, seconds_start) > SECONDS_MAX:
        raise NodeError(f"seconds={seconds:g}, seconds_start={seconds_start:g}: Stable Audio's conditioning reaches "
                        f"{SECONDS_MAX} s; give less (it was trained on up to 47 s)")
    conds = [conditioning(model, text, seconds_start, total) for text in (negative, prompt)]
    guided = cfg != 1.0
    cross = torch.cat([c[0] for c in conds]) if guided else conds[1][0]
    glob = torch.cat([c[1] for c in conds]) if guided else conds[1][1]
    dit = model.transformer
    rope = get_1d_rotary_pos_embed(max(dit.config.attention_head_dim // 2, 32), frames + 1, use_real=True,
                                   repeat_interleave_real=False)
    rope = tuple(r.to(model.device) for r in rope)

    def denoised(x, sigma):
        s = float(sigma)
        x_in = torch.cat([x] * len(cross)) / math.sqrt(s * s + 1)
        t = torch.tensor([math.atan(s) / math.pi * 2], device=x.device)
        v = dit(x_in, t, encoder_hidden_states=cross, global_hidden_states=glob, rotary_embedding=rope,
                return_dict=False)[0].float()
        if guided:
            uncond, cond = v.chunk(2)
            v = uncond + cfg * (cond - uncond)
        return x / (s * s + 1) - v * s / math.sqrt(s * s + 1)

    gen = torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    noise = torch.randn((1, dit.config.in_channels, frames), generator=gen)
    levels = ksampler_schedule(lambda n: sigmas(n, scheduler), steps, sampler)
    x = noise.to(model.device) * math.sqrt(float(levels[0]) ** 2 + 1)     # ComfyUI's full-denoise noise scaling
    kw = {"noise_sampler": comfy_step_noise(sampler, noise.shape, seed, x.device, levels)}    # KSampler's step noise
    callback = (lambda i, n, _: progress(i + 1, n)) if progress else None
    latent = sample(denoised, x, levels, callback, flow=False, **kw)
    return loudness(model.vae.decode(latent).sample.float()[0].cpu())


def loudness(wave: torch.Tensor) -> torch.Tensor:
    """ComfyUI's VAEDecodeAudio: a decode whose standard deviation is over 0.2 is divided by 5 x it."""
    std = float(wave.std()) * 5.0
    return wave / std if std > 1.0 else wave


def as_audio(wave: torch.Tensor, rate: int = RATE):
    """The waveform as the AUDIO Kinograph nodes pass on: a WAV file (written once, named by its content)."""
    from graph_engine.clip import Audio
    from nodes.generate.sound import write_wav
    path = write_wav(wave.numpy(), rate)
    return Audio(str(path), 0.0, wave.shape[-1] / rate)
