"""LTX-Video's latent upscalers (`ltxv-spatial-upscaler-0.9.7.safetensors` / `-0.9.8`, `ltxv-temporal-upscaler-0.9.7`
in ComfyUI's latent_upscale_models/ or upscale_models/): a small convolutional net that doubles a latent's width and
height (or its frames) in the VAE's own, un-normalised space, so a low-resolution first pass can be refined by a
second one at twice the size (ComfyUI's LTXVLatentUpsampler, diffusers' LTXLatentUpsamplePipeline).

The file carries Lightricks' module names, which are diffusers' LTXLatentUpsamplerModel's; its configuration is
read from the tensors' shapes: the first convolution's kernel rank gives 2-D or 3-D convolutions, the upsampling
convolution's output width against the middle width gives which axes it doubles."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from graph_engine import NodeError
from nodes.generate.converters import count
from nodes.generate.latent import Latent

# upsampler.0's output channels per middle channel, and its kernel rank -> (spatial, temporal). Pixel shuffle
# spreads the channels over the doubled axes: 4 over height x width, 2 over time, 8 over all three.
_AXES = {(4, 4): (True, False), (2, 5): (False, True), (8, 5): (True, True)}


def axes_of(first: tuple, up: tuple):
    """(spatial, temporal) an upscaler doubles, from its initial_conv's and upsampler.0's weight shapes; None for
    a layout no released one has."""
    return _AXES.get((up[0] // first[0], len(up))) if first and up and first[0] else None


def upsampler_config(state, name: str) -> dict:
    """LTXLatentUpsamplerModel's config from a file's tensors; a clear refusal for any other file."""
    first, up = state.get("initial_conv.weight"), state.get("upsampler.0.weight")
    if first is None or up is None or "final_conv.weight" not in state:
        raise NodeError(f"{name} is not an LTX-Video latent upscaler (it has no initial_conv / upsampler / final_conv "
                        "tensors); use ltxv-spatial-upscaler-0.9.7.safetensors or -0.9.8 (or the temporal one), and "
                        "an image upscaler such as RealESRGAN with upscale.model on decoded frames")
    mid, cin = int(first.shape[0]), int(first.shape[1])
    axes = axes_of(tuple(first.shape), tuple(up.shape))
    if axes is None:
        raise NodeError(f"{name}: its upsampler has {int(up.shape[0])} output channels for {mid} middle ones "
                        f"(kernel rank {up.dim()}), not a layout of the released LTX-Video upscalers")
    return {"in_channels": cin, "mid_channels": mid, "num_blocks_per_stage": count(state, "res_blocks.{}."),
            "dims": first.dim() - 2, "spatial_upsample": axes[0], "temporal_upsample": axes[1]}


def load_upsampler(path, dtype, device):
    """The upscaler of a weights file, built from its shapes, every tensor of the file used."""
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    from nodes.generate.config_bound import refuse_built_beyond
    from nodes.generate.weights import load_weights, misfit
    name = Path(path).name
    state = load_weights(path)
    config = upsampler_config(state, name)
    # The depth is the count of res_blocks indices: a 2 MB file naming 3,000 by empty tensors built 5 GB of
    # blocks (55 s) before load_state_dict found them missing.
    refuse_built_beyond(lambda: LTXLatentUpsamplerModel.from_config(config), state, name,
                        "its tensor names and shapes make an LTX-Video latent upscaler",
                        "Hugging Face Lightricks/LTX-Video (ltxv-spatial-upscaler-0.9.8.safetensors)")
    model = LTXLatentUpsamplerModel.from_config(config)
    why = misfit(model, state)
    if why:
        raise NodeError(f"{name}: its tensors do not fit the LTX-Video upscaler its shapes describe ({why})")
    return model.to(device=device, dtype=dtype).eval()


def upsample(latent: Latent, vae, model) -> Latent:
    """`latent` through the upscaler, in the space its weights were trained in: un-normalised with the VAE's
    per-channel statistics and normalised back after (as ComfyUI's node does). The sampler's keep-mask is dropped,
    as ComfyUI drops its noise_mask: the second pass samples the whole upscaled latent."""
    import torch
    # LTX-2's upscaler is LTX-Video 0.9.7's network trained on LTX-2's latents: the same steps with LTX-2's VAE
    # statistics (ComfyUI's LTXVLatentUpsampler runs both); the latent's sound stream passes through unchanged.
    if vae.family not in ("ltx", "ltx2") or latent.family != vae.family:
        which = "VAE" if vae.family not in ("ltx", "ltx2") else "latent"
        raise NodeError(f"the LTX latent upscaler needs an LTX-Video or LTX-2 latent and that model's VAE; this "
                        f"{which} is {vae.family if which == 'VAE' else latent.family}'s")
    cin = model.config.in_channels
    if latent.samples.shape[1] != cin:
        raise NodeError(f"this upscaler takes {cin}-channel latents and the latent has {latent.samples.shape[1]}: "
                        "use the upscaler released with the model (0.9.7 / 0.9.8 for the 13B and 2B 0.9.8)")
    pipe = vae.pipe
    v = pipe.vae
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    with torch.inference_mode():
        z = pipe._denormalize_latents(latent.samples.to(device, torch.float32), v.latents_mean.to(device),
                                      v.latents_std.to(device), v.config.scaling_factor)
        out = model(z.to(dtype)).float()
        out = pipe._normalize_latents(out, v.latents_mean.to(device), v.latents_std.to(device),
                                      v.config.scaling_factor)
    s = 2 if model.config.spatial_upsample else 1
    frames, fps = latent.frames, latent.fps
    if model.config.temporal_upsample:
        # Every latent frame after the first stands for `tf` pixel frames. The clip keeps its length in seconds,
        # so the frame rate doubles with the frame count.
        from nodes.generate.adapters import get_adapter
        frames = (out.shape[2] - 1) * get_adapter(vae.family).factors(pipe)[0] + 1
        fps = latent.fps * 2
    return replace(latent, samples=out.to(latent.samples.dtype).cpu(), frames=frames, fps=fps,
                   width=latent.width * s, height=latent.height * s, mask=None)
