"""SeedVR2's padding and finishing (upscale.seedvr2_pad / seedvr2_finish) against ComfyUI's published code
(comfy_extras/nodes_seedvr.py, comfy/ldm/seedvr/color_fix.py) written out below in torch, on small random clips."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from graph_engine.clip import Clip
from nodes.upscale.seedvr2 import finish_clip, pad_clip

# ---- ComfyUI's code, as published (constants inlined) -------------------------------------------------------------


def div_pad(image, factor):
    ph = (factor[0] - image.shape[-2] % factor[0]) % factor[0]
    pw = (factor[1] - image.shape[-1] % factor[1]) % factor[1]
    return F.pad(image, (0, pw, 0, ph), mode="constant", value=0.0) if ph or pw else image


def cut_videos(videos):
    t = videos.size(1)
    if t == 1:
        return videos
    if t <= 4:
        return torch.cat([videos, torch.cat([videos[:, -1].unsqueeze(1)] * (4 - t + 1), dim=1)], dim=1)
    if (t - 1) % 4 == 0:
        return videos
    return torch.cat([videos, torch.cat([videos[:, -1].unsqueeze(1)] * (4 - ((t - 1) % 4)), dim=1)], dim=1)


def comfy_preprocess(images):     # (T, H, W, C) in 0..1 -> (1, T', H', W', 3)
    images = images[..., :3].unsqueeze(0).permute(0, 1, 4, 2, 3)
    b, t, c, h, w = images.shape
    images = div_pad(images.reshape(b * t, c, h, w).clamp(0, 1), (16, 16))
    images = cut_videos(images.reshape(b, t, c, images.shape[-2], images.shape[-1]))
    return images.permute(0, 1, 3, 4, 2)


def wavelet_blur(image, radius):
    radius = min(radius, max(1, min(image.shape[-2:]) // 8))
    c = image.shape[1]
    kernel = torch.tensor([[0.0625, 0.125, 0.0625], [0.125, 0.25, 0.125], [0.0625, 0.125, 0.0625]],
                          dtype=image.dtype)[None, None].repeat(c, 1, 1, 1)
    image = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(image, kernel, groups=c, dilation=radius)


def wavelet_decomposition(image, levels=5):
    high = torch.zeros_like(image)
    for i in range(levels):
        low = wavelet_blur(image, 2 ** i)
        high.add_(image).sub_(low)
        image = low
    return high, low


def wavelet_reconstruction(content, style):
    return (wavelet_decomposition(content)[0] + wavelet_decomposition(style)[1]).clamp_(-1.0, 1.0)


def adain_color_transfer(content, style, eps=1e-5):
    b, c = content.shape[:2]
    cf, sf = content.reshape(b, c, -1), style.reshape(b, c, -1)
    cm, cs = cf.mean(2).reshape(b, c, 1, 1), (cf.var(2, correction=0) + eps).sqrt().reshape(b, c, 1, 1)
    sm, ss = sf.mean(2).reshape(b, c, 1, 1), (sf.var(2, correction=0) + eps).sqrt().reshape(b, c, 1, 1)
    return ((content - cm) / cs * ss + sm).clamp_(-1.0, 1.0)


M = torch.tensor([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
M_INV = torch.tensor([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                      [0.0556434, -0.2040259, 1.0572252]])
EPS, KAPPA, WX, WZ = 6.0 / 29.0, (29.0 / 3.0) ** 3, 0.95047, 1.08883


def rgb_to_lab(rgb):
    lin = torch.where(rgb > 0.04045, torch.pow((rgb + 0.055) / 1.055, 2.4), rgb / 12.92)
    b, _, h, w = lin.shape
    xyz = (lin.permute(0, 2, 3, 1).reshape(-1, 3) @ M.T).reshape(b, h, w, 3).permute(0, 3, 1, 2).clone()
    xyz[:, 0] /= WX
    xyz[:, 2] /= WZ
    f = torch.where(xyz > EPS ** 3, torch.pow(xyz, 1.0 / 3.0), (xyz * KAPPA + 16.0) / 116.0)
    return torch.stack([f[:, 1] * 116 - 16, (f[:, 0] - f[:, 1]) * 500, (f[:, 1] - f[:, 2]) * 200], dim=1)


def lab_to_rgb(lab):
    fy = (lab[:, 0] + 16.0) / 116.0
    fx, fz = lab[:, 1] / 500.0 + fy, fy - lab[:, 2] / 200.0
    x, y, z = (torch.where(f > EPS, f ** 3, (f * 116 - 16) / KAPPA) for f in (fx, fy, fz))
    xyz = torch.stack([x * WX, y, z * WZ], dim=1)
    b, _, h, w = xyz.shape
    lin = (xyz.permute(0, 2, 3, 1).reshape(-1, 3) @ M_INV.T).reshape(b, h, w, 3).permute(0, 3, 1, 2)
    rgb = torch.where(lin > 0.0031308, torch.pow(lin.clamp(min=0), 1 / 2.4) * 1.055 - 0.055, lin * 12.92)
    return rgb.clamp(0, 1)


def histogram_match(source, reference):
    s_sorted, s_idx = torch.sort(source.flatten(), stable=True)
    matched = torch.sort(reference.flatten())[0]
    return matched[torch.argsort(s_idx)].reshape(source.shape)


def lab_color_transfer(content, style, luminance_weight=0.8):
    content = wavelet_reconstruction(content, style)
    c = rgb_to_lab(content.add(1).mul(0.5).clamp(0, 1))
    s = rgb_to_lab(style.add(1).mul(0.5).clamp(0, 1))
    a, b = histogram_match(c[:, 1], s[:, 1]), histogram_match(c[:, 2], s[:, 2])
    L = c[:, 0] * luminance_weight + histogram_match(c[:, 0], s[:, 0]) * (1 - luminance_weight)
    return lab_to_rgb(torch.stack([L, a, b], dim=1)) * 2 - 1


def comfy_postprocess(images, reference, method):     # (T, H, W, 3) in 0..1 each
    t, h, w = min(images.shape[0], reference.shape[0]), min(images.shape[1], reference.shape[1]), \
        min(images.shape[2], reference.shape[2])
    out = images[:t, :h, :w]
    if method != "none":
        fn = {"lab": lab_color_transfer, "wavelet": wavelet_reconstruction, "adain": adain_color_transfer}[method]
        dec = out.mul(2).sub(1).permute(0, 3, 1, 2)
        ref = reference[:t, :h, :w].mul(2).sub(1).permute(0, 3, 1, 2)
        out = torch.cat([fn(dec[i:i + 1], ref[i:i + 1]) for i in range(t)]).permute(0, 2, 3, 1).add(1).div(2)
        out = out.clamp(0, 1)
    return out[:, :h - h % 2, :w - w % 2]

# ---- tests ----------------------------------------------------------------------------------------------------------


def _clip(frames):
    return Clip.from_array(frames)


def _smooth_frames(rng, n, h, w):
    """Random pictures with some structure (upscaled noise), as a restorer's input and output look."""
    small = rng.integers(0, 256, (n, max(2, h // 4), max(2, w // 4), 3)).astype(np.uint8)
    import cv2
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in small])


@pytest.mark.parametrize("n,h,w", [(1, 20, 33), (3, 16, 16), (6, 17, 40)])
def test_pad_matches_comfyui(n, h, w):
    frames = np.random.default_rng(n).integers(0, 256, (n, h, w, 3)).astype(np.uint8)
    out = pad_clip(None, _clip(frames)).to_array()
    want = (comfy_preprocess(torch.from_numpy(frames).float() / 255)[0] * 255).round().byte().numpy()
    assert out.shape == want.shape
    assert np.array_equal(out, want)


@pytest.mark.parametrize("method", ["lab", "wavelet", "adain", "none"])
def test_finish_matches_comfyui(method):
    rng = np.random.default_rng(7)
    reference = _smooth_frames(rng, 3, 27, 41)
    # the decoded clip: padded past the reference (frames and pixels), its colours drifted
    decoded = _smooth_frames(rng, 5, 32, 48)
    decoded[:3, :27, :41] = np.clip(reference.astype(np.int16) * 0.8 + 30 + rng.integers(-20, 20, reference.shape),
                                   0, 255).astype(np.uint8)
    out = finish_clip(None, _clip(decoded), _clip(reference), method).to_array()
    want = comfy_postprocess(torch.from_numpy(decoded).float() / 255, torch.from_numpy(reference).float() / 255,
                             method)
    want = (want * 255).round().numpy()
    assert out.shape == want.shape == (3, 26, 40, 3)
    diff = np.abs(out.astype(np.float64) - want)
    assert diff.max() <= 1.0, diff.max()
    if method != "none":    # the correction moved the colours toward the reference's
        ref = reference[:, :26, :40].astype(np.float64)
        assert np.abs(out.mean((0, 1, 2)) - ref.mean((0, 1, 2))).max() < \
            np.abs(decoded[:3, :26, :40].mean((0, 1, 2)) - ref.mean((0, 1, 2))).max()


def test_finish_gives_the_reference_alpha_back():
    rng = np.random.default_rng(3)
    reference = _clip(_smooth_frames(rng, 2, 18, 22))
    alpha = rng.integers(0, 256, (2, 18, 22, 1)).astype(np.uint8)
    reference = reference.with_matte(lambda a, b: alpha[a:b])
    padded = pad_clip(None, reference)
    assert padded.matte is None and (padded.length, padded.width, padded.height) == (5, 32, 32)
    out = finish_clip(None, padded, reference, "wavelet")
    assert (out.length, out.width, out.height) == (2, 22, 18)
    assert np.array_equal(out.matte.to_array(), alpha)


def test_finish_gives_the_reference_sound_back():
    """The decoded frames come from a latent (vae.decode gives no sound); the video template's CreateVideo lays the
    loaded clip's sound under the finished frames, and its import counts on the sound riding with them. Before, the
    restored clip was saved silent."""
    from graph_engine.clip import Audio
    rng = np.random.default_rng(4)
    reference = _clip(_smooth_frames(rng, 3, 16, 16)).with_(audio=Audio("take.wav", 0.0, 0.125))
    decoded = _clip(pad_clip(None, reference).to_array())
    assert decoded.audio is None
    out = finish_clip(None, decoded, reference, "none")
    assert out.audio == reference.audio


def test_finish_refuses_clearly():
    frames = _clip(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(NodeError, match="unknown colour correction"):
        finish_clip(None, frames, frames, "hsv")
    with pytest.raises(NodeError, match="too small"):
        finish_clip(None, frames, _clip(np.zeros((1, 1, 8, 3), np.uint8)), "lab")


def test_seedvr2_files_are_named_not_taken_for_others(tmp_path):
    """Before: the transformer was "unknown (no known key pattern)", and the VAE was taken for FLUX.1's (the same
    names, 16 latent channels) and failed loading its 3-D convolutions. The VAE loads now (tests/test_seedvr2_vae.py):
    this stub of three tensors is named by load.vae as a SeedVR2 VAE lacking the rest."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import describe_model
    files = {"seedvr2_3b_int8_convrot.safetensors": {"vid_in.proj.weight": (2560, 132), "emb_in.proj_in.weight": (4, 4),
                                                     "positive_conditioning": (58, 4)},
             "seedvr2_7b_fp16.safetensors": {"vid_in.proj.weight": (3072, 132), "emb_in.proj_in.weight": (4, 4)},
             "seedvr2_ema_vae_fp16.safetensors": {"decoder.conv_in.weight": (512, 16, 3, 3, 3),
                                                  "decoder.up_blocks.0.resnets.0.conv1.weight": (4, 4),
                                                  "encoder.down_blocks.0.resnets.0.conv1.weight": (4, 4)}}
    for name, shapes in files.items():
        save_file({k: torch.zeros(v, dtype=torch.float16) for k, v in shapes.items()}, str(tmp_path / name))
    # the transformers load (tests/test_seedvr2_dit.py), the VAE too (tests/test_seedvr2_vae.py)
    for name, size in (("seedvr2_3b_int8_convrot.safetensors", "3b"), ("seedvr2_7b_fp16.safetensors", "7b")):
        d = describe_model(tmp_path / name)
        assert (d["family"], d["variant"], d["role"], d["loads"]) == ("seedvr2", size, "diffusion_model", "yes"), d
    d = describe_model(tmp_path / "seedvr2_ema_vae_fp16.safetensors")
    assert (d["family"], d["role"], d["loads"]) == ("seedvr2", "vae", "yes"), d
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    with pytest.raises(NodeError, match="seedvr2_ema_vae_fp16.safetensors: SeedVR2 VAE: level widths \\[4\\] do not divide"):
        load_vae(ModelManager(), str(tmp_path / "seedvr2_ema_vae_fp16.safetensors"), "cpu")


@pytest.mark.parametrize("cls", ["AutoencoderKLWan", "AutoencoderKLQwenImage"])
def test_diffusers_wan_vae_is_not_taken_for_seedvr2s(tmp_path, cls):
    """diffusers' Wan 2.1 and Qwen-Image VAEs (vae/diffusion_pytorch_model.safetensors of their Diffusers repos) have
    a 5-D decoder.conv_in and up_blocks' conv1 too: they were named SeedVR2's VAE and refused by load.vae."""
    import diffusers
    from safetensors.torch import save_file
    from nodes.generate.model_manager import describe_model
    vae = getattr(diffusers, cls)(base_dim=8, z_dim=4, dim_mult=[1, 1], num_res_blocks=1, temperal_downsample=[False])
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(path))
    d = describe_model(path)
    assert (d["family"], d["loads"]) == ("wan", "yes"), d
