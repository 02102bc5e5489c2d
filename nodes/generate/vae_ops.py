"""VAE encode/decode between Clips and Latents: chunked in time, tiled in space when memory is short.

A 2-D VAE (Stable Diffusion, AnimateDiff, kinograph-mini) decodes frame-independently, so the
decoded Clip is lazy: each chunk of frames is decoded when a consumer asks for it. Video VAEs
(Wan, LTX, CogVideoX, HunyuanVideo, SVD) mix frames, so the whole clip decodes once (their own
temporal/spatial tiling bounds the memory) and is served from the uint8 result. On out-of-memory
the decode retries tiled, then in smaller chunks, and the error says what was tried."""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch

from graph_engine import Clip, NodeError
from nodes.generate.adapters import get_adapter
from nodes.generate.families import FAMILIES, family as family_spec, latent_families
from nodes.generate.latent import Latent

DECODE_CHUNK = 8


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "not enough memory" in text)


def free_memory():
    import gc
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def with_oom_retries(what: str, attempts: List[tuple]):
    """Run (description, fn) attempts in order until one does not run out of memory."""
    tried = []
    for desc, fn in attempts:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
            if not is_oom(exc):
                raise
            tried.append(desc)
            free_memory()
    raise NodeError(f"out of memory while {what}; tried: {', '.join(tried)}. The latent is kept in the cache, "
                    "so nothing before this is lost: free memory (close other programs), decode on the CPU "
                    "(--device cpu), or lower the resolution")


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """[3, T, H, W] in [-1, 1] -> uint8 [T, H, W, 3]."""
    x = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).contiguous().cpu().numpy()


def decode_latent(vae, latent: Latent) -> Clip:
    """A Clip of the latent's frames (batch item 0), with its sound where the latent has a sound stream (LTX-2)."""
    clip = _frames(vae, latent)
    if latent.audio is None:
        return clip
    from nodes.generate.sound import clip_sound
    with torch.inference_mode():
        return clip.with_(audio=clip_sound(get_adapter(vae.family), vae.pipe, latent))


def decode_sound(vae, latent: Latent):
    """The latent's soundtrack (an Audio) decoded by `vae`, a model's audio VAE."""
    from nodes.generate.sound import clip_sound
    if latent.audio is None:
        raise NodeError("this latent has no sound: a video made with its soundtrack (MiniMax H3) has one")
    if latent.family != vae.family:
        raise NodeError(f"this latent was made for {family_spec(latent.family).title}; decode its sound with that "
                        f"model's audio VAE, not {family_spec(vae.family).title}'s")
    with torch.inference_mode():
        audio = clip_sound(get_adapter(vae.family), vae.pipe, latent)
    if audio is None:
        raise NodeError(f"{Path(vae.path).name} decodes frames: give vae.decode_sound the model's audio VAE "
                        "(MiniMax H3: minimax_h3_audio_vae_*)")
    return audio


def _frames(vae, latent: Latent) -> Clip:
    adapter = get_adapter(vae.family)
    if latent.family not in latent_families(vae.family):
        made = family_spec(latent.family).title if latent.family in FAMILIES else latent.family
        raise NodeError(f"this latent was made for {made}; decode it with that family's VAE, not "
                        f"{family_spec(vae.family).title}'s{sd_vae_hint(vae.family, latent.family)}")
    pipe = vae.pipe
    z = latent.samples[:1]
    n, w, h = latent.frames, latent.width, latent.height

    # a model whose VAE decodes pictures one by one and videos in time (MiniMax H3) names the video's decoder
    video = adapter.clip_decoder(latent)
    vae_decode = video or adapter.vae_decode

    def decode(zz: torch.Tensor, chunked: bool) -> torch.Tensor:
        attempts = [("a plain decode", lambda: vae_decode(pipe, zz)),
                    ("tiled and sliced", lambda: _tiled(adapter, pipe, lambda: vae_decode(pipe, zz)))]
        if chunked and zz.shape[2] > 1:
            attempts.append(("tiled, one frame at a time", lambda: torch.cat(
                [_tiled(adapter, pipe, lambda k=k: adapter.vae_decode(pipe, zz[:, :, k:k + 1]))
                 for k in range(zz.shape[2])], dim=2)))
        with torch.inference_mode():
            pixels = with_oom_retries(f"decoding {vae.family} latents {list(zz.shape)}", attempts)
        if not bool(torch.isfinite(pixels).all()):
            # uint8 conversion would turn these into black (or garbage) frames without a word.
            raise NodeError(_not_finite(vae, zz))
        return pixels

    if latent.runs and not adapter.vae_per_frame():
        # runs decoded each alone, one run a chunk (latent.cut_to_batch)
        size = latent.runs
        per = family_spec(latent.family).pixel_frames(size)

        def run(a: int, b: int) -> np.ndarray:
            first = a // per
            block = np.concatenate([to_uint8(decode(z[:, :, r * size:(r + 1) * size], False)[0])[:per, :h, :w]
                                    for r in range(first, (b - 1) // per + 1)])
            return block[a - first * per:b - first * per]
        return _clip(n, latent.fps, w, h, run, per, decodes_alpha(pipe))

    if adapter.vae_per_frame() and video is None:
        def reader(a: int, b: int) -> np.ndarray:
            return to_uint8(decode(z[:, :, a:b], True)[0])[:, :h, :w]
        return _clip(n, latent.fps, w, h, reader, DECODE_CHUNK, decodes_alpha(pipe))

    lock, result = threading.Lock(), []

    def whole(a: int, b: int) -> np.ndarray:
        with lock:
            if not result:
                result.append(to_uint8(decode(z, False)[0])[:n, :h, :w])
        return result[0][a:b]
    return _clip(n, latent.fps, w, h, whole, max(1, n), decodes_alpha(pipe))


def decodes_alpha(pipe) -> bool:
    """Whether the VAE decodes RGBA (Qwen-Image 2.1's, Qwen-Image-Layered's: pictures with their own
    transparency)."""
    from nodes.generate.adapters.qwenimage import vae_channels
    vae = getattr(pipe, "vae", None)
    return vae is not None and vae_channels(vae, "out_channels") == 4


def _clip(n: int, fps: float, w: int, h: int, reader, chunk: int, alpha: bool) -> Clip:
    """The decoded frames as a Clip; an RGBA decode's straight colour laid over black with its alpha as the matte,
    as Clip keeps transparency."""
    if not alpha:
        return Clip(n, fps, w, h, reader, chunk=chunk)
    from graph_engine.clip import split_reader
    from nodes.common.alpha import premultiplied

    def rgba(a: int, b: int) -> np.ndarray:
        block = reader(a, b)
        return np.concatenate([premultiplied(block[..., :3], block[..., 3:]), block[..., 3:]], axis=-1)
    colour, matte = split_reader(rgba)
    return Clip(n, fps, w, h, colour, chunk=chunk).with_matte(matte)

def _not_finite(vae, z: torch.Tensor) -> str:
    if not bool(torch.isfinite(z).all()):
        return ("the latent to decode holds NaN/inf values: the sampler (or node) that made it broke down; "
                "run it again with the model loaded in fp32 or bf16")
    dtype = getattr(getattr(vae.pipe, "vae", None), "dtype", None)
    precision = "" if dtype is None else f" in {str(dtype).replace('torch.', '')}"
    return (f"the {vae.family} VAE decoded NaN/inf pixels{precision}: its activations overflow in half "
            "precision; set the loader's dtype to fp32 (or bf16), or decode on the CPU (--device cpu)")


def _tiled(adapter, pipe, fn: Callable):
    adapter.set_vae_tiling(pipe, True)
    try:
        return fn()
    finally:
        adapter.set_vae_tiling(pipe, False)


def sd_vae_hint(vae_family: str, wanted: str) -> str:
    """SD 1.5's and SDXL's VAE files look alike: a vae/ file taken as the other family's is set on load.vae."""
    if {vae_family, wanted} <= {"sd", "sdxl", "animatediff"}:
        return f" (a VAE file in vae/ holds either: set load.vae's family to {'sdxl' if wanted == 'sdxl' else 'sd'})"
    return ""


def pixels_of(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, C] -> [1, C, T, H, W] in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1


def encodes_alpha(pipe) -> bool:
    """Whether the VAE reads RGBA (Qwen-Image 2.1's, Qwen-Image-Layered's)."""
    from nodes.generate.adapters.qwenimage import vae_channels
    vae = getattr(pipe, "vae", None)
    return vae is not None and vae_channels(vae) == 4


def clip_pixels(clip: Clip, a: int, block: np.ndarray, alpha: bool) -> torch.Tensor:
    """pixels_of frames a.. of `clip` (`block`); for a VAE reading RGBA (`alpha`), the straight colour and the
    clip's matte, as QwenImageLayeredPipeline gives a picture with transparency to its VAE (a clip without a matte
    is opaque: the adapter adds the alpha)."""
    if not alpha or clip.matte is None:
        return pixels_of(block)
    from nodes.common.alpha import unpremultiplied
    matte = clip.matte.frames(a, a + len(block))
    return pixels_of(np.concatenate([unpremultiplied(block, matte), matte], -1))


def encode_clip(vae, clip: Clip, check: Callable[[], None] = lambda: None,
                progress: Optional[Callable[[int, int], None]] = None) -> Latent:
    """Latent of a whole clip, checked against the family's frame and size rules."""
    adapter = get_adapter(vae.family)
    spec = family_spec(vae.family)
    tf, sf, _ = adapter.factors(vae.pipe)
    spec.check_frames(clip.length, tf)
    spec.check_size(clip.width, clip.height, sf)
    pipe = vae.pipe
    alpha = encodes_alpha(pipe)
    with torch.inference_mode():
        if adapter.vae_per_frame():
            parts = []
            for a, block in clip.chunks(DECODE_CHUNK):
                check()
                px = clip_pixels(clip, a, block, alpha)
                parts.append(with_oom_retries("encoding frames", [
                    ("a plain encode", lambda p=px: adapter.vae_encode(pipe, p)),
                    ("tiled and sliced", lambda p=px: _tiled(adapter, pipe, lambda: adapter.vae_encode(pipe, p)))]))
                if progress:
                    progress(a + len(block), clip.length)
            z = torch.cat(parts, dim=2)
        else:
            z = encode_pixels(adapter, pipe, clip_pixels(clip, 0, clip.frames(0, clip.length), alpha))
    return Latent(z.float().cpu(), vae.family, clip.length, clip.fps, clip.width, clip.height)


def fit_to_grid(vae, clip: Clip) -> tuple:
    """(clip, note): the clip centre-cropped to the largest size the model's grid divides, and what was cut (""
    where nothing was). ComfyUI's VAEEncode crops a picture the same way (to its VAE's 8 pixels; its patch models
    then pad the latent to the patch), so its templates feed pictures of any size, such as
    ImageScaleToTotalPixels' 1254x836; refusing them stopped those templates. Kinograph crops to the whole grid
    (VAE times patch, 16 for most families), so where a side's eighths are odd it keeps 8 pixels fewer than
    ComfyUI."""
    _, sf, _ = get_adapter(vae.family).factors(vae.pipe)
    f = sf * family_spec(vae.family).patch
    w, h = clip.width // f * f, clip.height // f * f
    if (w, h) == (clip.width, clip.height) or not (w and h):
        return clip, ""                 # a side under one grid cell: check_size refuses it with sizes to try
    x, y = (clip.width - w) // 2, (clip.height - h) // 2
    note = (f"cropped {clip.width}x{clip.height} to {w}x{h} (centred): {family_spec(vae.family).title} needs sizes "
            f"divisible by {f}")
    cut = lambda a: a[:, y:y + h, x:x + w]      # noqa: E731
    # the matte cut with the colour: an RGBA VAE reads it (encodes_alpha)
    return clip.map(cut, w, h).with_matte(None if clip.matte is None else clip.matte.map(cut, w, h).frames), note


def encode_pixels(adapter, pipe, px: torch.Tensor, what: str = "encoding the clip") -> torch.Tensor:
    """A whole clip's latent ([1, 3, T, H, W] in [-1, 1] in), retried tiled on out-of-memory."""
    return with_oom_retries(what, [
        ("a plain encode", lambda: adapter.vae_encode(pipe, px)),
        ("tiled and sliced", lambda: _tiled(adapter, pipe, lambda: adapter.vae_encode(pipe, px)))])


def check_fits(what: str, shape) -> None:
    """Refuse float32 tensors of `shape` larger than the memory free, before they are made: every parameter of a
    received workflow can be in range (100,000 frames at 8192x8192) while their product is not, and a latent below
    RAM + swap was allocated lazily and thrashed the machine once sampled."""
    import math
    from nodes.common.stream import _size, free_memory as available
    need, free = 4 * math.prod(shape), available()
    if free is not None and need > free:
        raise NodeError(f"{what} takes {_size(need)}, more than the {_size(free)} this machine has free: lower "
                        "frames, width or height")


def empty_latent(vae, frames: int, width: int, height: int, fps: float, start_image: Optional[np.ndarray] = None,
                 size_fit: str = "exact", log=None) -> Latent:
    """An all-zero latent; with a start image (Wan 2.2 TI2V-5B) its first latent frame holds the image's
    encoding, and the latent's mask keeps that frame as it is while the sampler makes the rest. size_fit "floor"
    takes a size off the family's step down to the step below (ComfyUI's empty latents), said through `log`."""
    adapter = get_adapter(vae.family)
    spec = family_spec(vae.family)
    tf, sf, ch = adapter.factors(vae.pipe)
    if size_fit == "floor":
        fitted = spec.floor_size(width, height, sf)
        if fitted != (width, height) and log is not None:
            log(f"{spec.title} sizes step by {spec.size_step(sf)}: {width}x{height} is made as "
                f"{fitted[0]}x{fitted[1]} (size_fit floor, as ComfyUI's empty latent does)")
        width, height = fitted
        fitted = spec.floor_frames(frames, tf)
        if fitted != frames and log is not None:
            log(f"{spec.title} takes {spec.frame_rule(tf)}: {frames} is made as {fitted} (size_fit floor, as ComfyUI's "
                "empty latent does)")
        frames = fitted
    spec.check_frames(frames, tf)
    spec.check_size(width, height, sf)
    t = spec.latent_frames(frames, tf)
    check_fits(f"a latent of {frames} frames at {width}x{height}", (1, ch, t, height // sf, width // sf))
    latent = Latent(torch.zeros(1, ch, t, height // sf, width // sf), vae.family, frames, fps, width, height,
                    audio=adapter.sound_latent(vae.pipe, frames, fps))
    return latent if start_image is None else with_start_image(vae, latent, start_image)


def with_start_image(vae, latent: Latent, image: np.ndarray, strength: float = 1.0) -> Latent:
    """latent with its first latent frame the image's encoding and its mask there 1 - strength (kept whole at 1),
    the rest of its mask as it was (ComfyUI's Wan22ImageToVideoLatent, LTXVImgToVideoInplace): the sampler keeps
    that frame clean and gives the model its timestep times the mask."""
    if vae.family != latent.family:
        raise NodeError(f"this latent was made for {latent.family} and the VAE is {vae.family}'s: make the latent "
                        "with the same model's VAE")
    if not 0.0 <= strength <= 1.0:
        raise NodeError(f"strength {strength} is outside 0 to 1 (1: the frame is kept as it is)")
    adapter = get_adapter(vae.family)
    with torch.inference_mode():
        first = encode_pixels(adapter, vae.pipe, adapter.start_pixels(vae.pipe, latent, image),
                              "encoding the start image")
    samples = latent.samples.clone()
    samples[:, :, :first.shape[2]] = first.to(samples.dtype)
    mask = torch.ones(1, 1, *samples.shape[2:]) if latent.mask is None else \
        latent.mask.float().expand(1, 1, *samples.shape[2:]).clone()
    mask[:, :, :first.shape[2]] = 1.0 - strength
    return dataclasses.replace(latent, samples=samples, mask=mask)


def layered_latent(vae, layers: int, width: int, height: int, log=None) -> Latent:
    """Qwen-Image-Layered's empty latent: the whole picture and `layers` layers as frames, sized down to the 16
    pixels Qwen-Image steps by (as ComfyUI's EmptyQwenImageLayeredLatentImage makes it)."""
    if vae.family != "qwenimage":
        raise NodeError(f"a layered latent is Qwen-Image-Layered's; this VAE is {family_spec(vae.family).title}'s: "
                        "give it qwen_image_layered_vae (or use latent.empty for other models)")
    if layers < 0:
        raise NodeError(f"layers must be 0 or more, got {layers}")
    if layers and not encodes_alpha(vae.pipe):
        raise NodeError("this is Qwen-Image's RGB VAE: its latents are not the layered model's, and its layers would "
                        "decode without alpha; give latent.layers and vae.decode qwen_image_layered_vae (or set "
                        "layers 0 for a plain Qwen-Image latent)")
    return empty_latent(vae, layers + 1, width, height, family_spec(vae.family).fps, size_fit="floor", log=log)
