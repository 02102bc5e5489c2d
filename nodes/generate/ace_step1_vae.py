"""ACE-Step v1's sound VAE (ComfyUI's MusicDCAE, comfy/ldm/ace/vae/): a stereo log-mel spectrogram at 44.1 kHz
(hop 512, 128 slaney mel bands from 40 Hz to 16 kHz) squeezed 8x8 by a deep-compression autoencoder (the two
channels as an image's, into 8 latent channels of 16 bands a column: one column per 4096 samples), and the
ADaMoS HiFi-GAN vocoder (a ConvNeXt encoder, then HiFi-GAN upsampling 512x) that turns each channel's mel back into
sound. The autoencoder runs in diffusers' AutoencoderDC (ComfyUI's is a copy, under the same names); the vocoder and
the spectrogram are written here under ComfyUI's names. Sizes come from the tensors."""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from nodes.common.mel import mel_filters as mel

RATE = 44100
HOP = 512
N_FFT = 2048
MEL_MIN, MEL_MAX = -11.0, 3.0         # the mel range MusicDCAE maps to [-1, 1]
SCALE, SHIFT = 0.1786, -1.9091        # MusicDCAE's latent scale and shift
SAMPLES_PER_COLUMN = 8 * HOP          # one latent column: 8 mel frames


# -- the mel spectrogram (music_log_mel.py: LinearSpectrogram + torchaudio's MelScale, slaney) -------------------------
def mel_filters(bands: int = 128, f_min: float = 40.0, f_max: float = 16000.0) -> torch.Tensor:
    """[N_FFT // 2 + 1, bands]: torchaudio's melscale_fbanks, norm and mel_scale "slaney"."""
    return torch.from_numpy(mel(RATE, N_FFT, bands, "slaney", f_min, f_max, unit_area=True)).float()


def log_mel(wave: torch.Tensor) -> torch.Tensor:
    """[C, 128, samples / 512] from wave [C, samples] (a multiple of 512): reflect-padded frames of a periodic Hann
    window, magnitudes (with ComfyUI's 1e-6 under the root), mel bands, log floored at 1e-5."""
    pad = (N_FFT - HOP) // 2
    y = F.pad(wave.float()[:, None], (pad, N_FFT - HOP - pad), mode="reflect")[:, 0]
    spec = torch.stft(y, N_FFT, hop_length=HOP, win_length=N_FFT, window=torch.hann_window(N_FFT, device=y.device),
                      center=False, normalized=False, onesided=True, return_complex=True)
    mag = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + 1e-6)
    mel = torch.matmul(mag.transpose(-1, -2), mel_filters().to(mag.device)).transpose(-1, -2)
    return torch.log(torch.clamp(mel, min=1e-5))


# -- the vocoder (music_vocoder.py: ADaMoSHiFiGANV1) -----------------------------------------------------------------
class _ChannelNorm(nn.Module):
    """LayerNorm over channels of [B, C, T] (ConvNeXt's channels_first), eps 1e-6."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        return self.weight[:, None] * ((x - u) / torch.sqrt(s + 1e-6)) + self.bias[:, None]


class _ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, kernel: int, mult: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.pwconv2 = nn.Linear(dim, mult * dim), nn.Linear(mult * dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(self.dwconv(x).permute(0, 2, 1)))))
        return x + (self.gamma * y).permute(0, 2, 1)


class _ResBlock(nn.Module):
    """HiFi-GAN's ResBlock1: three (SiLU, dilated conv, SiLU, conv) residual steps, dilations 1, 3, 5."""

    def __init__(self, ch: int, kernel: int):
        super().__init__()
        self.convs1 = nn.ModuleList([nn.Conv1d(ch, ch, kernel, dilation=d, padding=(kernel * d - d) // 2)
                                     for d in (1, 3, 5)])
        self.convs2 = nn.ModuleList([nn.Conv1d(ch, ch, kernel, padding=(kernel - 1) // 2) for _ in range(3)])

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.silu(c1(F.silu(x))))
        return x


class _Backbone(nn.Module):
    def __init__(self, cin: int, dims: list, depths: list, kernel: int, mult: int):
        super().__init__()
        stem = nn.Sequential(nn.Conv1d(cin, dims[0], 7, padding=3, padding_mode="replicate"), _ChannelNorm(dims[0]))
        self.channel_layers = nn.ModuleList([stem] + [nn.Sequential(_ChannelNorm(dims[i]), nn.Conv1d(
            dims[i], dims[i + 1], 1)) for i in range(len(dims) - 1)])
        self.stages = nn.ModuleList([nn.Sequential(*[_ConvNeXtBlock(d, kernel, mult) for _ in range(n)])
                                     for d, n in zip(dims, depths)])
        self.norm = _ChannelNorm(dims[-1])

    def forward(self, x):
        for layer, stage in zip(self.channel_layers, self.stages):
            x = stage(layer(x))
        return self.norm(x)


class _Head(nn.Module):
    def __init__(self, cin: int, ch: int, ups: list, res_kernels: list, pre: int, post: int):
        super().__init__()
        self.conv_pre = nn.Conv1d(cin, ch, pre, padding=(pre - 1) // 2)
        # ComfyUI's strides are half the kernels (4, 4, 2, ... for 8, 8, 4, ...): the stride is not in the file
        self.ups = nn.ModuleList([nn.ConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, k // 2, padding=k // 4)
                                  for i, k in enumerate(ups)])
        self.resblocks = nn.ModuleList([_ResBlock(ch // 2 ** (i + 1), k) for i in range(len(ups))
                                        for k in res_kernels])
        self.conv_post = nn.Conv1d(ch // 2 ** len(ups), 1, post, padding=(post - 1) // 2)
        self.kernels = len(res_kernels)

    def forward(self, x):
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.silu(x))
            x = sum(self.resblocks[i * self.kernels + j](x) for j in range(self.kernels)) / self.kernels
        return torch.tanh(self.conv_post(F.silu(x)))


class Vocoder(nn.Module):
    def __init__(self, backbone: _Backbone, head: _Head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """[C, samples] from mel [C, 128, frames]: each channel a mono sound."""
        return self.head(self.backbone(mel))[:, 0]


def fold_weight_norm(state: dict) -> dict:
    """weight = g * v / |v| (norm over all but the first axis) for torch's weight_norm pairs, under either naming
    (weight_g / weight_v, or parametrizations.weight.original0 / original1)."""
    out = {}
    for k, v in state.items():
        for g_name, v_name in ((".weight_g", ".weight_v"), (".parametrizations.weight.original0",
                                                            ".parametrizations.weight.original1")):
            if k.endswith(g_name):
                base = k[:-len(g_name)]
                vv = state[base + v_name].float()
                dims = tuple(range(1, vv.dim()))
                out[base + ".weight"] = v.float() * vv / vv.norm(dim=dims, keepdim=True)
                break
            if k.endswith(v_name):
                break
        else:
            out[k] = v
    return out


def _count(state: dict, prefix: str) -> int:
    """The blocks numbered under `prefix`, at most converters.MAX_BLOCKS: 1,000 names of one value each made the
    meta-device size check build 1,000 blocks (18 s; 20,000 would take minutes) before it refused the file."""
    from nodes.generate.converters import count
    return count(state, prefix + "{}.")


def build_vocoder(state: dict) -> Vocoder:
    """The vocoder its (folded) tensors describe, under ComfyUI's names without vocoder., on the meta device."""
    stages = _count(state, "backbone.stages.")
    dims = [int(state[f"backbone.stages.{i}.0.dwconv.weight"].shape[0]) for i in range(stages)]
    depths = [_count(state, f"backbone.stages.{i}.") for i in range(stages)]
    ups = _count(state, "head.ups.")
    res = _count(state, "head.resblocks.") // max(ups, 1)
    pre = state["head.conv_pre.weight"]
    with torch.device("meta"):
        return Vocoder(
            _Backbone(int(state["backbone.channel_layers.0.0.weight"].shape[1]), dims, depths,
                      int(state["backbone.stages.0.0.dwconv.weight"].shape[-1]),
                      int(state["backbone.stages.0.0.pwconv1.weight"].shape[0]) // dims[0]),
            _Head(int(pre.shape[1]), int(pre.shape[0]),
                  [int(state[f"head.ups.{i}.weight"].shape[-1]) for i in range(ups)],
                  [int(state[f"head.resblocks.{j}.convs1.0.weight"].shape[-1]) for j in range(res)],
                  int(pre.shape[-1]), int(state["head.conv_post.weight"].shape[-1])))


# -- the autoencoder (autoencoder_dc.py, as diffusers' AutoencoderDC) -----------------------------------------------
def dcae_config(state: dict) -> dict:
    """AutoencoderDC's config from its tensors (dcae. taken off): per stage, its width, its blocks (ResBlock, or
    EfficientViTBlock where the stage attends) and their multiscale kernels; ComfyUI's ACE-Step choices for the rest
    (stride-2 convolutions down, nearest interpolation up, 32-wide attention heads)."""
    def stages(side: str, base: str):
        out = []
        for i in range(_count(state, f"{side}.{base}.")):
            pre = f"{side}.{base}.{i}."
            blocks = sorted({int(k[len(pre):].split(".")[0]) for k in state if k.startswith(pre) and (
                ".conv1." in k or ".attn." in k)})
            first = f"{pre}{blocks[0]}."
            vit = first + "attn.to_q.weight" in state
            width = int(state[first + ("attn.to_q.weight" if vit else "conv1.weight")].shape[1])
            scale = first + "attn.to_qkv_multiscale.0.proj_in.weight"
            out.append(("EfficientViTBlock" if vit else "ResBlock", width, len(blocks),
                        (int(state[scale].shape[-1]),) if scale in state else ()))
        return out
    enc, dec = stages("encoder", "down_blocks"), stages("decoder", "up_blocks")
    return dict(in_channels=int(state["encoder.conv_in.weight"].shape[1]),
                latent_channels=int(state["encoder.conv_out.weight"].shape[0]), attention_head_dim=32,
                encoder_block_types=tuple(s[0] for s in enc), decoder_block_types=tuple(s[0] for s in dec),
                encoder_block_out_channels=tuple(s[1] for s in enc),
                decoder_block_out_channels=tuple(s[1] for s in dec),
                encoder_layers_per_block=tuple(s[2] for s in enc), decoder_layers_per_block=tuple(s[2] for s in dec),
                encoder_qkv_multiscales=tuple(s[3] for s in enc), decoder_qkv_multiscales=tuple(s[3] for s in dec),
                upsample_block_type="interpolate", downsample_block_type="Conv")


class MusicVAE(nn.Module):
    """MusicDCAE's encode (stereo 44.1 kHz sound -> latent [1, 8, 16, T]) and decode (latent -> [2, samples])."""

    def __init__(self, dcae, vocoder: Vocoder):
        super().__init__()
        self.dcae, self.vocoder = dcae, vocoder

    @torch.no_grad()
    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [2, samples] at 44.1 kHz, padded with silence to a whole column (4096 samples)."""
        wave = F.pad(wave, (0, -wave.shape[-1] % SAMPLES_PER_COLUMN))
        mel = (log_mel(wave) - MEL_MIN) / (MEL_MAX - MEL_MIN)
        p = next(self.dcae.parameters())
        latent = self.dcae.encoder(((mel - 0.5) / 0.5)[None].to(p.device, p.dtype)).float()
        return (latent - SHIFT) * SCALE

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        p = next(self.dcae.parameters())
        mel = self.dcae.decoder((latent / SCALE + SHIFT).to(p.device, p.dtype)).float()
        mel = (mel * 0.5 + 0.5) * (MEL_MAX - MEL_MIN) + MEL_MIN
        return self.vocoder(mel[0].to(p.dtype)).float()
