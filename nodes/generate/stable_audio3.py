"""Stable Audio 3 (Stability AI's text to music and sound: 44.1 kHz stereo, up to 6 minutes) from the files ComfyUI
users have: its checkpoint (stable_audio_3_medium.safetensors or _medium_base in checkpoints/: the DiT under
model.model., the SAME-L VAE under pretransform.model., the seconds_total conditioner and the prompt's padding
embedding under conditioner.conditioners.) and T5Gemma (t5gemma_b_b_ul2.safetensors in text_encoders/, ComfyUI's
CLIPLoader type stable_audio). The weights run in diffusers' StableAudio3DiTModel, AutoencoderSAME and
StableAudio3DurationEmbedder and transformers' T5GemmaEncoderModel.

Made as the authors' pipeline and ComfyUI's templates make it: ceil(seconds x 44100 / 4096) latent frames; the
prompt's T5Gemma states (no start or end token) followed by the padding embedding up to 256 tokens, then the
seconds_total embedding, which is also the global conditioning; an all-zero inpainting input (ComfyUI's and the
authors' text to audio pass one, whose learnt bias reaches every frame); a rectified-flow model sampled on ComfyUI's
shift-2 schedule, lcm (ping-pong) for the distilled medium model; VAEDecodeAudio's loudness rule."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from graph_engine import NodeError
from nodes.generate.audio_nodes import STABLE_AUDIO3_SCHEDULERS as SCHEDULERS
from nodes.generate.converters import check_claim, count
from nodes.generate.stable_audio import COND, DIT, RATE, VAE, _part, checkpoint_parts, loudness

HOP = 4096                  # samples per latent frame (SAME's 256-sample patches, then stride 16)
TEXT_TOKENS = 256           # the prompt is padded to this many tokens with the learnt padding embedding
SHIFT = 2.0                 # ComfyUI's sampling_settings for Stable Audio 3: flow, shift 2, multiplier 1
SECONDS_MAX = 384           # the seconds_total conditioner's range (0 to 384)
SAME_STRIDE = 16            # SAME-S's and SAME-L's one resampling block (the tensors do not tell it)
SAME_SINUSOIDAL = 8         # SAME-L's decoder gates its trailing layers with sin (neither do they tell this)
T5GEMMA_HEAD = 64           # T5Gemma b-b's head size (ComfyUI's T5GemmaEncoderConfig): not in the tensors either
NOT_SA3 = ("{name} is not a Stable Audio 3 checkpoint (it has no {what} under {prefix}): give "
           "stable_audio_3_medium.safetensors from checkpoints/ (Comfy-Org/stable-audio-3)")


def latent_frames(seconds: float) -> int:
    """The authors' pipeline: ceil(seconds x 44100 / 4096) latent frames (10.77 a second)."""
    return int(math.ceil(seconds * RATE / HOP))


def dit_weights(state: dict, name: str):
    """(StableAudio3DiTModel's config, its state dict) from the checkpoint's model.model. tensors (stable-audio-tools'
    names); sizes read from the tensors."""
    sd = _part(state, DIT)
    if "transformer.project_in.weight" in sd and "transformer.global_cond_embedder.0.weight" not in sd:
        raise NodeError(f"{name} is Stable Audio Open's checkpoint: generate.stable_audio reads it (with "
                        "t5-base.safetensors); generate.stable_audio3 reads Stable Audio 3's")
    if "transformer.global_cond_embedder.0.weight" not in sd or "transformer.layers.0.to_scale_shift_gate" not in sd:
        raise NodeError(NOT_SA3.format(name=name, what="adaLN diffusion transformer", prefix=DIT))
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^transformer\.layers\.", "transformer_blocks.", k)
        k = re.sub(r"^transformer\.project_(in|out)\.", r"proj_\1.", k)
        k = re.sub(r"^transformer\.(memory_tokens|rotary_pos_emb|global_cond_embedder)", r"\1", k)
        out[k.replace(".ff.ff.0.proj.", ".ff.proj_in.").replace(".ff.ff.2.", ".ff.proj_out.")] = v
    dim = int(out["proj_in.weight"].shape[0])
    io = int(out["preprocess_conv.weight"].shape[0])
    heads = dim // int(out["transformer_blocks.0.self_attn.q_norm.gamma"].shape[0])
    cfg = dict(io_channels=io, patch_size=int(out["proj_in.weight"].shape[1]) // io, embed_dim=dim,
               depth=count(out, "transformer_blocks.{}."), num_heads=heads,
               cond_token_dim=int(out["to_cond_embed.0.weight"].shape[1]),
               global_cond_dim=int(out["to_global_embed.0.weight"].shape[1]),
               local_add_cond_dim=int(out["transformer_blocks.0.to_local_embed.0.weight"].shape[1]),
               timestep_features_dim=int(out["to_timestep_embed.0.weight"].shape[1]),
               ff_mult=int(out["transformer_blocks.0.ff.proj_in.weight"].shape[0]) / 2 / dim,
               num_memory_tokens=int(out["memory_tokens"].shape[0]) if "memory_tokens" in out else 0,
               use_differential_attention=int(out["transformer_blocks.0.self_attn.to_qkv.weight"].shape[0]) == 5 * dim)
    pad = state.get(COND + "prompt.padding_embedding")
    if pad is None:
        raise NodeError(NOT_SA3.format(name=name, what="prompt padding embedding", prefix=COND + "prompt."))
    out["prompt_padding_embedding"] = pad.reshape(-1)
    return cfg, out


def vae_weights(state: dict, name: str):
    """(AutoencoderSAME's config, its state dict) from the checkpoint's pretransform.model. tensors (ComfyUI's and the
    authors' layer lists: the encoder's resampling blocks then its projection, the decoder's projection then its
    blocks); widths, depths and head size from the tensors, stride and the decoder's sin layers SAME-L's."""
    sd = _part(state, VAE)
    if "bottleneck.scaling_factor" not in sd or "encoder.layers.0.new_tokens" not in sd:
        raise NodeError(NOT_SA3.format(name=name, what="SAME VAE", prefix=VAE))
    blocks = len({k.split(".")[2] for k in sd if re.match(r"encoder\.layers\.\d+\.new_tokens$", k)})
    if blocks != 1:
        raise NodeError(f"{name}: its SAME VAE has {blocks} resampling blocks; Kinograph reads SAME-S's and SAME-L's "
                        "one (stable_audio_3_medium, _medium_base, _small)")
    out = {}
    for k, v in sd.items():
        if k.endswith(".rope.inv_freq") or k == "bottleneck.noise_scaling_factor":
            continue        # recomputed by diffusers; SAME-L adds no noise channels
        k = re.sub(rf"^encoder\.layers\.{blocks + 1}\.", "encoder.proj.", k)
        k = re.sub(r"^encoder\.layers\.", "encoder.blocks.", k)
        k = re.sub(r"^decoder\.layers\.1\.", "decoder.proj.", k)
        k = re.sub(r"^decoder\.layers\.(\d+)\.", lambda m: f"decoder.blocks.{int(m.group(1)) - 3}.", k)
        for a, b in ((".pre_norm.", ".norm_attn."), (".self_attn.", ".attn."), (".ff_norm.", ".norm_ff."),
                     (".ff.ff.0.proj.", ".ff.proj_in."), (".ff.ff.2.", ".ff.proj_out."),
                     ("parametrizations.weight.original0", "weight_g"),
                     ("parametrizations.weight.original1", "weight_v"), ("bottleneck.scaling_factor", "bottleneck.scale")):
            k = k.replace(a, b)
        out[k] = v
    hidden = int(out["encoder.proj.weight"].shape[1])
    depth = count(out, "encoder.blocks.0.transformers.{}.")
    cfg = dict(audio_channels=2, patch_size=int(out["encoder.blocks.0.mapping.weight_v"].shape[1]) // 2,
               encoder_channels=hidden, encoder_c_mults=(1,) * blocks, encoder_strides=(SAME_STRIDE,) * blocks,
               encoder_transformer_depths=(depth,) * blocks, latent_dim=int(out["encoder.proj.weight"].shape[0]),
               use_differential_attention=int(out["encoder.blocks.0.transformers.0.attn.to_qkv.weight"].shape[0])
               == 5 * hidden,
               dim_heads=int(out["encoder.blocks.0.transformers.0.attn.q_norm.gamma"].shape[0]),
               ff_mult=int(out["encoder.blocks.0.transformers.0.ff.proj_in.weight"].shape[0]) // 2 // hidden,
               decoder_sinusoidal_blocks=(SAME_SINUSOIDAL,), sampling_rate=RATE)
    return cfg, out


def seconds_weights(state: dict, name: str):
    """(StableAudio3DurationEmbedder's config, its state dict): the seconds_total number conditioner (expo Fourier
    features, then a linear layer), over 0 to 384 s."""
    sd = _part(state, COND + "seconds_total.embedder.embedding.1.")
    if "weight" not in sd:
        raise NodeError(NOT_SA3.format(name=name, what="seconds_total conditioner", prefix=COND))
    out_dim, fourier = sd["weight"].shape
    return dict(output_dim=int(out_dim), fourier_dim=int(fourier), max_val=float(SECONDS_MAX)), \
        {"linear." + k: v for k, v in sd.items()}


def t5gemma(state: dict, name: str):
    """transformers' T5GemmaEncoderModel from ComfyUI's t5gemma_b_b_ul2 (model.encoder.* tensors): sizes from the
    tensors, the rest T5Gemma b-b's (64-wide heads, soft-capped attention, a 4096 window every other layer)."""
    from transformers import T5GemmaConfig, T5GemmaEncoderModel, T5GemmaModuleConfig
    sd = _part(state, "model.")
    if "encoder.layers.0.pre_self_attn_layernorm.weight" not in sd:
        raise NodeError(f"{name} is not T5Gemma (it has no model.encoder.layers.*.pre_self_attn_layernorm): give "
                        "t5gemma_b_b_ul2.safetensors from text_encoders/")
    vocab, hidden = sd["encoder.embed_tokens.weight"].shape
    layers = count(sd, "encoder.layers.{}.")
    enc = T5GemmaModuleConfig(vocab_size=int(vocab), hidden_size=int(hidden), num_hidden_layers=layers,
                              intermediate_size=int(sd["encoder.layers.0.mlp.gate_proj.weight"].shape[0]),
                              num_attention_heads=int(sd["encoder.layers.0.self_attn.q_proj.weight"].shape[0])
                              // T5GEMMA_HEAD,
                              num_key_value_heads=int(sd["encoder.layers.0.self_attn.k_proj.weight"].shape[0])
                              // T5GEMMA_HEAD,
                              head_dim=T5GEMMA_HEAD, query_pre_attn_scalar=T5GEMMA_HEAD,
                              layer_types=["sliding_attention", "full_attention"] * (layers // 2) +
                              ["sliding_attention"] * (layers % 2))
    config = T5GemmaConfig(encoder=enc, decoder=enc, is_encoder_decoder=False)
    check_claim(lambda: T5GemmaEncoderModel(config), sd, name)
    module = T5GemmaEncoderModel(config)
    from nodes.generate.weights import misfit
    why = misfit(module, {k: v for k, v in sd.items() if k.startswith("encoder.")})
    if why:
        raise NodeError(f"{name}: its tensors do not match T5Gemma's ({why})")
    return module.eval()


@dataclass(frozen=True, eq=False)
class StableAudio3:
    transformer: object
    vae: object
    seconds: object
    text_encoder: object
    tokenizer: object
    device: str


def load(mm, checkpoint: str, text_encoder: str, device: str) -> StableAudio3:
    """The model from ComfyUI's two files (cached by the model manager), in float32."""
    from nodes.common.models_dirs import tokenizer_beside
    from nodes.generate.detect import Detection
    from nodes.generate.model_manager import resolve_model_path
    from nodes.generate.split import tokenizer
    ckpt = resolve_model_path(checkpoint, "checkpoints", "Stable Audio 3 checkpoint")
    te = resolve_model_path(text_encoder, "text_encoders", "T5Gemma text encoder")

    def build():
        from diffusers import AutoencoderSAME, StableAudio3DiTModel
        from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder
        from nodes.generate.weights import load_weights, sizes_of
        # the seconds conditioner's Fourier frequencies are computed, not stored
        parts = checkpoint_parts(load_weights(ckpt, torch.float32), ckpt.name, "Stable Audio 3", (
            (StableAudio3DiTModel, dit_weights, ()), (AutoencoderSAME, vae_weights, ()),
            (StableAudio3DurationEmbedder, seconds_weights, ("freqs",))), device)
        with sizes_of(te.name, "T5Gemma"):
            encoder = t5gemma(load_weights(te, torch.float32), te.name)
        # ComfyUI's file carries Gemma's sentencepiece model (spiece_model); else a tokenizer folder beside it
        return StableAudio3(*parts, encoder.to(device), tokenizer(te, Detection("text_encoder", "gemma3")), device)
    model = mm.cached(("stable_audio3", str(ckpt), str(te), device), build, files=[ckpt, te, *tokenizer_beside(te)])
    width, reads = model.text_encoder.config.encoder.hidden_size, model.transformer.config.cond_token_dim
    if width != reads:
        raise NodeError(f"{te.name} gives {width}-wide states, but this Stable Audio 3 model reads {reads}-wide ones "
                        "(T5Gemma b-b's): give t5gemma_b_b_ul2.safetensors from text_encoders/")
    return model


@torch.no_grad()
def text_states(model: StableAudio3, text: str) -> torch.Tensor:
    """The prompt's context [1, max(256, tokens), D] before the seconds token: T5Gemma's states of its tokens (no
    start or end token, nothing cut), then the learnt padding embedding. An empty prompt is one zeroed token, as
    ComfyUI's tokenizer pads it to one masked token."""
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    context = model.text_encoder.config.encoder.max_position_embeddings
    if len(ids) > context:
        raise NodeError(f"generate.stable_audio3: the prompt makes {len(ids):,} tokens, and T5Gemma reads at most "
                        f"{context:,}: shorten it")
    dim = model.text_encoder.config.encoder.hidden_size
    states = model.text_encoder(torch.tensor([ids], device=model.device)).last_hidden_state.float() if ids else \
        torch.zeros(1, 1, dim, device=model.device)
    pad = model.transformer.prompt_padding_embedding.float().view(1, 1, -1)
    return torch.cat([states, pad.expand(1, max(0, TEXT_TOKENS - states.shape[1]), -1)], 1)


@torch.no_grad()
def generate(model: StableAudio3, prompt: str, negative: str, seconds: float, steps: int, cfg: float,
             sampler: str, scheduler: str, seed: int, progress=None) -> torch.Tensor:
    """The sound's waveform [channels, samples] at 44.1 kHz, `seconds` long, loudness as VAEDecodeAudio leaves it."""
    from nodes.generate.samplers import (SNR_FRAME, TABLE_SCHEDULES, SigmaTable, comfy_step_noise, flow_top_level,
                                         ksampler_schedule, latent_sampler, sample_lcm)
    if scheduler not in SCHEDULERS:
        raise NodeError(f"scheduler={scheduler!r}: Stable Audio 3 takes {', '.join(SCHEDULERS)}")
    sample = sample_lcm if sampler == "lcm" else latent_sampler(sampler)
    frames = latent_frames(seconds)
    total = int(frames / (RATE / HOP))          # ComfyUI's seconds_total: the latent's whole seconds
    if total > SECONDS_MAX:
        raise NodeError(f"seconds={seconds:g}: Stable Audio 3's conditioning reaches {SECONDS_MAX} s; give less")
    dit = model.transformer
    told = model.seconds(torch.tensor([float(total)], device=model.device)).float()
    guided = cfg != 1.0
    texts = (negative, prompt) if guided else (prompt,)
    cross = torch.cat([torch.cat([text_states(model, t), told[:, None]], 1) for t in texts])
    glob = told.expand(len(texts), -1)
    local = torch.zeros(len(texts), dit.config.local_add_cond_dim, frames, device=model.device)

    def denoised(x, sigma):
        s = float(sigma)
        x_in = torch.cat([x] * len(texts))
        t = torch.full((len(texts),), s, device=x.device)
        v = dit(x_in, t, encoder_hidden_states=cross, global_hidden_states=glob, local_add_cond=local,
                return_dict=False)[0].float()
        if guided:
            uncond, cond = v.chunk(2)
            v = uncond + cfg * (cond - uncond)
        return x - s * v

    # ComfyUI's noise: the seed's first draw; its lcm re-noises from default_noise_sampler's generator on the
    # sampling device (seeded seed + 1 on the CPU)
    noise = torch.randn((1, dit.config.io_channels, frames), generator=torch.Generator("cpu").manual_seed(
        int(seed) & 0xFFFF_FFFF_FFFF_FFFF))
    levels = ksampler_schedule(lambda n: TABLE_SCHEDULES[scheduler](SigmaTable.flow(SHIFT), n), steps, sampler)
    x = noise.to(model.device) * float(levels[0])           # flow noise scaling of an empty latent
    callback = (lambda i, n, _: progress(i + 1, n)) if progress else None
    kw = {"top_level": flow_top_level(SHIFT)} if sampler in SNR_FRAME else {}
    latent = sample(denoised, x, levels, callback, flow=True,
                    noise_sampler=comfy_step_noise(sampler, noise.shape, seed, x.device, levels), **kw)
    wave = model.vae.decode(latent).sample.float()[0].cpu()
    return loudness(wave[:, :int(seconds * RATE)])
