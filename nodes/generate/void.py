"""Netflix's VOID (object removal on CogVideoX-Fun-V1.5 inpainting, two passes) as ComfyUI runs it: its frame-count
rule, the second pass's flow-warped starting noise, and the DDIM loop it was trained with."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nodes.motion.noise_warp import warped_noise

TIME_FACTOR = 4       # CogVideoX's VAE: 4 frames a latent frame after the first
PATCH_T = 2           # V1.5's transformer takes latent frames two at a time


def void_length(length: int) -> int:
    """length, or the next shorter frame count whose latent has an even number of frames: an odd one would be padded
    by wrapping its first latent frame round, which shows as jitter at the clip's end (ComfyUI rounds as here)."""
    t = (length - 1) // TIME_FACTOR + 1
    if t % PATCH_T == 0:
        return length
    return (max(PATCH_T, t // PATCH_T * PATCH_T) - 1) * TIME_FACTOR + 1



def void_length_note(length: int) -> str:
    """What to tell the user when void_length cuts `length` ("" when it stands): ComfyUI warns of it too, and a clip
    that comes out four frames short without a word looks like a lost frame."""
    kept = void_length(length)
    if kept == length:
        return ""
    return (f"length {length} rounded down to {kept} frames: VOID's latent needs an even frame count (an odd one "
            f"wraps its first frame round onto the end, jitter at the clip's end); set length to {kept} to silence "
            f"this")

def void_warped_latent(frames: np.ndarray, flow_of, width: int, height: int, length: int, batch: int,
                       seed: int) -> torch.Tensor:
    """The second pass's starting noise [batch, 16, t, height/8, width/8] from the first pass's frames [T, H, W, 3]
    (floats 0..1): the frames cut to the size's shape at the middle and scaled (bilinear), warped noise at half their
    size (x8 inside, pooled by 32: one value a latent pixel), latent frames picked evenly from the pixel frames."""
    from nodes.video.edit import comfy_scaled
    length = void_length(length)
    t, h, w = (length - 1) // TIME_FACTOR + 1, height // 8, width // 8
    px = comfy_scaled(np.ascontiguousarray(frames[:length], dtype=np.float32), width, height, "bilinear", crop=True)
    u8 = (torch.from_numpy(px).clamp(0, 1) * 255).to(torch.uint8)
    noise = warped_noise(u8, flow_of, channels=16, seed=seed, frame_scale=0.5, flow_scale=8, pool=32)
    if noise.shape[0] != t:
        noise = noise[torch.linspace(0, noise.shape[0] - 1, t).long()]
    if noise.shape[1:3] != (h, w):
        noise = F.interpolate(noise.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                              align_corners=False).permute(0, 2, 3, 1)
    return noise.permute(3, 0, 1, 2)[None].repeat(batch, 1, 1, 1, 1).contiguous()


@torch.no_grad()
def sample_void_ddim(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None):
    """VOID's DDIM: the run starts from the plain noise (unit variance; x comes scaled to the top level, as every
    sampler's does, and is scaled back) and steps in alpha = 1 / (1 + sigma^2) with the model reading that state as
    its input, which is how VOID was trained (diffusers' CogVideoXDDIMScheduler); the last step returns the
    prediction. Used on a model's own levels only (flow is ignored: VOID is a v-prediction model)."""
    x = x / (1.0 + sigmas[0] ** 2) ** 0.5
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = sigmas[i], sigmas[i + 1]
        denoised = model_fn(x, s)
        if s_next == 0:
            x = denoised
        else:
            a, a_next = 1.0 / (1.0 + s ** 2), 1.0 / (1.0 + s_next ** 2)
            eps = (x - a ** 0.5 * denoised) / (1.0 - a) ** 0.5
            x = a_next ** 0.5 * denoised + (1.0 - a_next) ** 0.5 * eps
        if callback is not None:
            callback(i, total, x)
    return x


def _fit_time(z: torch.Tensor, t: int) -> torch.Tensor:
    """z [B, C, t', h, w] cut or held on its last frame to t latent frames."""
    if z.shape[2] >= t:
        return z[:, :, :t]
    return torch.cat([z, z[:, :, -1:].repeat(1, 1, t - z.shape[2], 1, 1)], 2)


def void_inpaint(vae, positive, negative, frames: np.ndarray, quadmask: np.ndarray, width: int, height: int,
                 length: int, batch: int):
    """(positive, negative, latent) for VOID (ComfyUI's VOIDInpaintConditioning): the clip and its quadmask
    (1 = remove, its grey levels the region the object affects) cut to the size's shape at the middle and scaled
    (bilinear); the kept picture (the clip times 1 - mask) and 1 - mask itself, each encoded by the CogVideoX VAE,
    are the model's 32 extra input channels (mask first), and the latent is empty."""
    from graph_engine import NodeError
    from nodes.generate.adapters import get_adapter
    from nodes.generate.families import family as family_spec
    from nodes.generate.latent import Latent
    from nodes.video.edit import comfy_scaled
    if vae.family != "cogvideox":
        raise NodeError(f"VOID inpainting needs the CogVideoX VAE (cogvideox_vae.safetensors), got a {vae.family} one")
    adapter = get_adapter("cogvideox")
    length = void_length(length)
    n, m = min(len(frames), length), min(len(quadmask), length)
    if m not in (1, n):
        # one mask picture stands for every frame; another count was numpy's broadcast traceback
        raise NodeError(f"the quadmask has {m} frames and the video {n} (of length {length}): give a mask of each "
                        f"frame of the video, or a single mask picture")
    # any length goes (ComfyUI takes the source clip's frame count): its latent frames, decoded as 4n+1 frames
    _, sf, ch = adapter.factors(vae.pipe)
    if width % (2 * sf) or height % (2 * sf):
        raise NodeError(f"VOID's size must be a multiple of {2 * sf} (its 2x2 patches of latent pixels); "
                        f"{width}x{height} is not: set width and height to one")
    t = (length - 1) // TIME_FACTOR + 1
    latent = Latent(torch.zeros(batch, ch, t, height // sf, width // sf), "cogvideox", (t - 1) * TIME_FACTOR + 1,
                    family_spec("cogvideox").fps, width, height)
    vid = comfy_scaled(np.ascontiguousarray(frames[:length, ..., :3], dtype=np.float32), width, height, "bilinear",
                       crop=True)
    qm = comfy_scaled(np.ascontiguousarray(quadmask[:length, ..., None], dtype=np.float32), width, height,
                      "bilinear", crop=True)

    def encoded(px):
        x = torch.from_numpy(np.ascontiguousarray(px)).permute(3, 0, 1, 2)[None] * 2 - 1
        with torch.inference_mode():
            return _fit_time(adapter.vae_encode(vae.pipe, x).cpu(), t)
    concat = torch.cat([encoded(np.repeat(1.0 - qm, 3, -1)), encoded(vid * (1.0 - qm))], 1)
    return positive.with_extra(concat=concat), negative.with_extra(concat=concat), latent
