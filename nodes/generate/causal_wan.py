"""Autoregressive Wan (Causal Forcing, Self-Forcing): a Wan 2.1 T2V transformer distilled to make a video a block of
latent frames at a time, each block seeing only the frames before it (through a cache of their attention keys and
values) and itself.

The released file (causal_forcing-framewise.safetensors) holds Wan 2.1 T2V 1.3B's tensors under their usual names;
only its metadata tells it apart (`config` = {"transformer": {"causal_ar": true}}, which ComfyUI reads, sampling it
with shift 5). The transformer is Kinograph's Wan one (diffusers' WanTransformer3DModel): `kv_cached` gives its
self-attention a cache and moves its rotary positions to the block's frames while a block-wise run is active.

The loop (ComfyUI's ar_video sampler, from the algorithm in comfy/k_diffusion/sampling.py): a start image's latent
is run once at noise 0 to fill the cache; then each block of `block` latent frames starts from its part of the
initial noise and takes every level of the schedule: the model's clean estimate, noised afresh to the next level
(noise seeded seed + 1000 * block + step), the last level's estimate the block's frames. The block is then run once
more at noise 0, and that run's keys and values join the cache for the blocks after it."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.handles import need_wan_vae

NOT_CAUSAL = ("the ar_video sampler makes a video block by block with an autoregressive Wan model (Causal Forcing, "
              "Self-Forcing: causal_forcing-framewise.safetensors, whose metadata says causal_ar); this {what} is not "
              "one: choose another sampler")


def is_causal(transformer) -> bool:
    return bool(getattr(transformer.config, "causal_ar", False))


class KVCache:
    """Each layer's self-attention keys and values of the blocks written so far, by their first frame (rotated at
    their own positions), the frame the next call's tokens start at, and whether that call's are written too."""

    def __init__(self, layers: int):
        self.keys: list = [{} for _ in range(layers)]
        self.values: list = [{} for _ in range(layers)]
        self.start = 0
        self.write = False

    def at(self, start: int, write: bool = False) -> "KVCache":
        self.start, self.write = int(start), bool(write)
        return self


def _rotate(x, cos, sin):
    """Wan's rotary embedding (pairs of channels turned by the angle of their position), as diffusers applies it."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    c, s = cos[..., 0::2], sin[..., 1::2]
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], -1).flatten(-2).type_as(x)


class _CachedSelfAttention:
    """attn1 over the cached frames' keys and values followed by the call's own (all of them: a block sees itself
    whole), adding the call's to the cache when it writes."""

    def __init__(self, cache: KVCache, layer: int):
        self.cache, self.layer = cache, layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        from diffusers.models.transformers.transformer_wan import _get_qkv_projections
        q, k, v = _get_qkv_projections(attn, hidden_states, None)
        q = _rotate(attn.norm_q(q).unflatten(2, (attn.heads, -1)), *rotary_emb)
        k = _rotate(attn.norm_k(k).unflatten(2, (attn.heads, -1)), *rotary_emb)
        v = v.unflatten(2, (attn.heads, -1))
        keys, values, start = self.cache.keys[self.layer], self.cache.values[self.layer], self.cache.start
        if self.cache.write:            # a block written again (several calls a step) replaces its own
            keys[start], values[start] = k, v
        before = sorted(f for f in keys if f < start)
        if any(keys[f].shape[0] != k.shape[0] for f in before):
            raise NodeError(f"the block-wise run's model calls changed batch (to {k.shape[0]}): the ar_video sampler "
                            "runs one prompt (or one prompt with its negative) throughout")
        k = torch.cat([keys[f] for f in before] + [k], 1)
        v = torch.cat([values[f] for f in before] + [v], 1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = out.transpose(1, 2).flatten(2, 3).type_as(q)
        return attn.to_out[1](attn.to_out[0](out))


@contextmanager
def kv_cached(transformer):
    """While active, the Wan transformer's calls see the cache's frames before their own, their tokens at frames
    cache.start on (rotary positions), and write to the cache when it says so. Yields the (empty) cache."""
    cache = KVCache(len(transformer.blocks))
    own = [block.attn1.processor for block in transformer.blocks]
    rows = {}

    def longer(_module, args):
        (x,) = args
        hw = x.shape[3] * x.shape[4] // (transformer.config.patch_size[1] * transformer.config.patch_size[2])
        if rows.setdefault("hw", hw) != hw:
            # the cache's keys are whole frames': a call on part of the picture would read and write them as its own
            raise NodeError("a prompt over an area (condition.area, condition.mask with bounds) runs the model on part "
                            "of the picture, and the ar_video sampler's attention cache holds whole frames: remove "
                            "the area, or choose another sampler")
        # the rotary table only reads the shape: the frames before the call's, then its own
        return (x[:, :, :1].expand(-1, -1, cache.start + x.shape[2], -1, -1),)

    def tail(_module, _args, out):
        return tuple(t[:, cache.start * rows["hw"]:] for t in out)
    hooks = [transformer.rope.register_forward_pre_hook(longer), transformer.rope.register_forward_hook(tail)]
    for i, block in enumerate(transformer.blocks):
        block.attn1.processor = _CachedSelfAttention(cache, i)
    try:
        yield cache
    finally:
        for h in hooks:
            h.remove()
        for block, proc in zip(transformer.blocks, own):
            block.attn1.processor = proc


@torch.no_grad()
def sample_ar_video(model_fn, x, sigmas, callback=None, *, cache: KVCache, block: int = 1, seed: int = 0,
                    start: Optional[torch.Tensor] = None, **_flow):
    """Block-by-block sampling of x (the initial noise, [B, C, T, h, w]) over `sigmas`; model_fn(x, sigma, frames)
    -> the clean estimate. `start`: latent frames the video begins with (a start image's), which fill the cache
    first and come out as they are. `callback(i, steps, x)` after every model step, i counting the schedule's steps
    over the whole clip (a fraction of one per block). Flow models only: the `flow` every sampler is told is
    taken and not read."""
    sigmas = sigmas.float()
    steps, frames = len(sigmas) - 1, x.shape[2]
    out = x.clone()
    first = 0
    zero = sigmas.new_zeros(())
    if start is not None:
        first = start.shape[2]
        if first >= frames:
            raise NodeError(f"the start image fills {first} latent frame(s) and the latent has {frames}: make the "
                            "video longer than its start")
        if start.shape[-2:] != x.shape[-2:]:
            # Wan 2.1's VAE: 8 pixels a latent pixel
            (sh, sw), (h, w) = start.shape[-2:], x.shape[-2:]
            raise NodeError(f"condition.ar_start encoded its start image at {sw * 8}x{sh * 8} and the latent sampled "
                            f"is {w * 8}x{h * 8}: sample the latent condition.ar_start gives, or set its width and "
                            "height to the video's")
        out[:, :, :first] = start.to(out)
        cache.at(0, write=True)
        model_fn(out[:, :, :first], zero, frames=list(range(first)))
    starts = list(range(first, frames, block))
    for b, fs in enumerate(starts):
        fe = min(fs + block, frames)
        idx = list(range(fs, fe))
        xb = x[:, :, fs:fe]
        cache.at(fs)
        for i in range(steps):
            den = model_fn(xb, sigmas[i], frames=idx)
            if float(sigmas[i + 1]) == 0:
                xb = den
            else:
                # ComfyUI's seed; drawn on the CPU, as all of Kinograph's noise, so a video is the same on any device
                # (ComfyUI's loop draws on the device it samples on: on a GPU its numbers differ)
                g = torch.Generator("cpu").manual_seed(int(seed) + b * 1000 + i)
                fresh = torch.randn(den.shape, generator=g, dtype=torch.float32).to(den)
                xb = (1 - sigmas[i + 1]).to(den) * den + sigmas[i + 1].to(den) * fresh
            out[:, :, fs:fe] = xb
            if callback is not None:
                # progress in steps of the schedule, as other samplers report it (the run's bar counts those)
                callback(round((b * steps + i + 1) / len(starts), 3) - 1, steps, out)
        cache.at(fs, write=True)
        model_fn(xb, zero, frames=idx)
    return out


def ar_options(handle, seed: int):
    """(the cache context, the sampler's options) of a block-wise run on this model."""
    transformer = getattr(handle.pipe, "transformer", None)
    if handle.family != "wan" or transformer is None or not is_causal(transformer):
        raise NodeError(NOT_CAUSAL.format(what=f"{handle.family} model"))
    if handle.run_wrappers:
        raise NodeError("FreeInit (noise.freeinit) reruns a whole schedule over the whole clip; the ar_video sampler "
                        "makes it a block at a time: remove noise.freeinit")
    from nodes.consistency.wrappers import ContextWrapper
    if any(isinstance(w, ContextWrapper) for w in handle.wrappers):
        raise NodeError("context.windows cuts a clip into windows sampled side by side; the ar_video sampler makes it "
                        "a block at a time, each block seeing those before through its cache, so there is nothing to "
                        "cut: remove context.windows")
    if handle.option("skip_layer_guidance") is not None:
        raise NodeError("skip-layer guidance runs the model again with blocks left out, and in the ar_video sampler "
                        "every run at noise 0 writes the attention cache the blocks after it read: remove "
                        "guide.skip_layer_guidance")
    if handle.option("skip_layers_negative") is not None:
        raise NodeError("guide.skip_layers_negative runs the negative prompt on its own with blocks left out, and the "
                        "ar_video sampler's attention cache holds the prompt and its negative together: remove "
                        "guide.skip_layers_negative")
    return kv_cached(transformer), {"block": int(handle.option("ar_block", 1)), "seed": int(seed),
                                    "start": handle.option("ar_start")}


def start_model(handle, vae, image, frames: int, width: int, height: int, fps: float) -> dict:
    """ComfyUI's ARVideoI2V: the model told to begin with the image (its latent frame, which fills the cache before
    the first block) and the empty latent of the video. The picture is resized to cover the size and centre-cropped
    (ComfyUI: bilinear; here the VAE's processor)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.vae_ops import empty_latent
    from nodes.generate.wan_s2v_cond import _pixels
    need_wan_vae(vae, "condition.ar_start")
    latent = empty_latent(vae, frames, width, height, fps)
    with torch.inference_mode():
        first = get_adapter("wan").vae_encode(vae.pipe, _pixels(vae.pipe, [image], width, height))[:, :, :1]
    return {"model": handle.with_option("ar_start", first.float().cpu()), "latent": latent}
