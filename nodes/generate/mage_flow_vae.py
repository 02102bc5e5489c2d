"""The Mage VAE (Microsoft's Mage-VAE, Comfy-Org/Mage-Flow's vae/mage_flow_vae_bf16.safetensors), as ComfyUI runs it
(comfy/ldm/mage_flow/vae.py). Not a Gaussian autoencoder but a one-step diffusion codec, both ways one forward pass
at t = 0:

- encode: a DiCo network reads the picture in 16-pixel patches (beside a zero latent) and gives the latent's mean
  and log variance; the mean is the latent [B, 128, H/16, W/16], used raw (no scale, no shift);
- decode: the latent through a small convolutional decoder (the CoD decoder, attention in 32 x 32 windows) gives a
  condition per patch; DiCo blocks read it beside a zero picture, and a per-pixel MLP (each pixel's place in its
  patch as a cosine table) paints each patch's 16 x 16 pixels.

The file holds the encoder under student.dconv_encoder. and the decoder under pipeline.; pipeline.y_embedder.encoder.
(FLUX.2's encoder, which anchored the latent space in training) is not read. Sizes come from the tensors; group
norms have 32 groups and attention windows are 32 latent pixels wide, as released."""
from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError

GROUPS = 32
WINDOW = 32
ENCODER, DECODER, DROPPED = "student.dconv_encoder.", "pipeline.", "pipeline.y_embedder.encoder."


def modulate(x, shift, scale):
    return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each pixel."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TimestepEmbedder(nn.Module):
    def __init__(self, dim: int, frequencies: int = 256):
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t, dtype):
        half = self.frequencies // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
        args = t[:, None].float() * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], -1).to(dtype))


class DiCoBlock(nn.Module):
    """A depthwise-convolution block with channel attention; modulated by the time embedding (`modulated`) or not
    (the encoder's head blocks, whose norms are affine instead)."""

    def __init__(self, dim: int, ffn: int, modulated: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.conv3 = nn.Conv2d(dim, dim, 1)
        self.ca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, dim, 1), nn.Sigmoid())
        self.conv4 = nn.Conv2d(dim, ffn, 1)
        self.conv5 = nn.Conv2d(ffn, dim, 1)
        self.norm1 = LayerNorm2d(dim, eps=1e-6, elementwise_affine=not modulated)
        self.norm2 = LayerNorm2d(dim, eps=1e-6, elementwise_affine=not modulated)
        if modulated:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, inp, c=None):
        if c is None:
            mods = [None] * 6
        else:
            mods = self.adaLN_modulation(c).chunk(6, dim=1)
        shift1, scale1, gate1, shift2, scale2, gate2 = mods
        x = self.norm1(inp) if c is None else modulate(self.norm1(inp), shift1, scale1)
        x = F.gelu(self.conv2(self.conv1(x)))
        x = self.conv3(x * self.ca(x))
        x = inp + (x if c is None else gate1[..., None, None] * x)
        y = self.norm2(x) if c is None else modulate(self.norm2(x), shift2, scale2)
        y = self.conv5(F.gelu(self.conv4(y)))
        return x + (y if c is None else gate2[..., None, None] * y)


class Encoder(nn.Module):
    """Picture -> (mean, log variance) per 16-pixel patch."""

    def __init__(self, z: int, dim: int, head: int, blocks: int, head_blocks: int, patch: int, ffn: int,
                 head_ffn: int):
        super().__init__()
        self.z, self.patch = z, patch
        self.patch_cond_embed = nn.Conv2d(3, head, patch, stride=patch)
        self.head_blocks = nn.ModuleList(DiCoBlock(head, head_ffn, modulated=False) for _ in range(head_blocks))
        self.proj_down = nn.Conv2d(head, dim, 1)
        self.z_proj = nn.Conv2d(z, dim, 1)
        self.fuse_proj = nn.Conv2d(2 * dim, dim, 1)
        self.t_embedder = TimestepEmbedder(dim)
        self.blocks = nn.ModuleList(DiCoBlock(dim, ffn) for _ in range(blocks))
        self.norm_out = LayerNorm2d(dim, eps=1e-6)
        self.proj_out = nn.Conv2d(dim, 2 * z, 1)

    def forward(self, pictures):
        b, _, h, w = pictures.shape
        cond = self.patch_cond_embed(pictures)
        for block in self.head_blocks:
            cond = block(cond)
        z = pictures.new_zeros(b, self.z, h // self.patch, w // self.patch)
        s = self.fuse_proj(torch.cat([self.proj_down(cond), self.z_proj(z)], 1))
        c = self.t_embedder(pictures.new_zeros(b), pictures.dtype)
        for block in self.blocks:
            s = block(s, c)
        return self.proj_out(self.norm_out(s))[:, :self.z]


class ResnetBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, dim, eps=1e-6)
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm2 = nn.GroupNorm(GROUPS, dim, eps=1e-6)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


class WindowAttention(nn.Module):
    """Self-attention within 32 x 32 windows of the latent (the last ones padded by repeating the edge)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, dim, eps=1e-6)
        self.q, self.k, self.v = (nn.Conv2d(dim, dim, 1) for _ in range(3))
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        pad = (0, -w % WINDOW, 0, -h % WINDOW)
        q, k, v = (F.pad(f(n), pad, mode="replicate") if any(pad) else f(n) for f in (self.q, self.k, self.v))
        hp, wp = q.shape[-2:]
        nh, nw = hp // WINDOW, wp // WINDOW

        def windows(t):
            return t.reshape(b, c, nh, WINDOW, nw, WINDOW).permute(0, 2, 4, 3, 5, 1).reshape(-1, WINDOW * WINDOW, c)
        out = F.scaled_dot_product_attention(windows(q), windows(k), windows(v))
        out = out.reshape(b, nh, nw, WINDOW, WINDOW, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, hp, wp)
        return x + self.proj_out(out[:, :, :h, :w])


class CoDDecoder(nn.Module):
    def __init__(self, dim: int, z: int):
        super().__init__()
        self.conv_in = nn.Conv2d(z, dim, 3, padding=1)
        self.block = nn.Sequential(ResnetBlock(dim), WindowAttention(dim), ResnetBlock(dim), WindowAttention(dim),
                                   ResnetBlock(dim))
        self.norm_out = nn.GroupNorm(GROUPS, dim, eps=1e-6)
        self.conv_out = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, z):
        return self.conv_out(F.silu(self.norm_out(self.block(self.conv_in(z)))))


class YEmbedder(nn.Module):
    def __init__(self, dim: int, z: int):
        super().__init__()
        self.decoder = CoDDecoder(dim, z)


class NerfEmbedder(nn.Module):
    """Each pixel's features beside its place in its patch (a 2-D cosine table of max_freqs^2 terms)."""

    def __init__(self, channels: int, dim: int, max_freqs: int):
        super().__init__()
        self.max_freqs = max_freqs
        self.embedder = nn.Sequential(nn.Linear(channels + max_freqs ** 2, dim))

    def forward(self, x):
        n, p2, _ = x.shape
        ps = int(round(p2 ** 0.5))
        pos = torch.linspace(0, 1, ps, device=x.device, dtype=x.dtype)
        py, px = torch.meshgrid(pos, pos, indexing="ij")
        freqs = torch.linspace(0, self.max_freqs, self.max_freqs, device=x.device, dtype=x.dtype)
        fx, fy = freqs[None, :, None], freqs[None, None, :]
        table = torch.cos(px.reshape(-1, 1, 1) * fx * torch.pi) * torch.cos(py.reshape(-1, 1, 1) * fy * torch.pi) \
            * (1 + fx * fy) ** -1
        return self.embedder(torch.cat([x, table.view(1, p2, -1).expand(n, -1, -1)], -1))


class MLPResBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.in_ln = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))

    def forward(self, x, y):
        shift, scale, gate = self.adaLN_modulation(y).chunk(3, dim=-1)
        return x + gate * self.mlp(self.in_ln(x) * (1 + scale) + shift)


class PixelMLP(nn.Module):
    """The per-pixel MLP, modulated per pixel by its patch's condition (dec_net)."""

    def __init__(self, dim: int, cond: int, blocks: int, patch: int):
        super().__init__()
        self.patch = patch
        self.cond_embed = nn.Linear(cond, patch ** 2 * dim)
        self.input_proj = nn.Linear(dim, dim)
        self.res_blocks = nn.ModuleList(MLPResBlock(dim) for _ in range(blocks))

    def forward(self, x, c):
        x = self.input_proj(x)
        c = self.cond_embed(c).reshape(c.shape[0], self.patch ** 2, -1)
        for block in self.res_blocks:
            x = block(x, c)
        return x


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.norm = nn.RMSNorm(dim, eps=1e-6)
        self.linear = nn.Linear(dim, out)

    def forward(self, x):
        return self.linear(self.norm(x))


class Decoder(nn.Module):
    """Latent -> picture: the condition from the CoD decoder, DiCo blocks over a zero picture's patches, the pixel
    MLP."""

    def __init__(self, z: int, dim: int, dim_x: int, blocks: int, res_blocks: int, patch: int, ffn: int,
                 max_freqs: int):
        super().__init__()
        self.patch, self.dim = patch, dim
        self.t_embedder = TimestepEmbedder(dim)
        self.y_embedder_x = nn.Conv2d(dim, dim_x * patch ** 2, 1)
        self.x_embedder = NerfEmbedder(3 + dim_x, dim_x, max_freqs)
        self.s_embedder = nn.Module()        # BottleneckPatchEmbed's two convolutions
        self.s_embedder.proj1 = nn.Conv2d(3, z, patch, stride=patch, bias=False)
        self.s_embedder.proj2 = nn.Conv2d(z + dim, dim, 1)
        self.blocks = nn.ModuleList(DiCoBlock(dim, ffn) for _ in range(blocks))
        self.dec_net = PixelMLP(dim_x, dim, res_blocks, patch)
        self.final_layer = FinalLayer(dim_x, 3)
        self.y_embedder = YEmbedder(dim, z)

    def forward(self, latent):
        b, _, lh, lw = latent.shape
        p = self.patch
        h, w = lh * p, lw * p
        cond = self.y_embedder.decoder(latent)
        x = latent.new_zeros(b, 3, h, w)
        c = self.t_embedder(latent.new_zeros(b), latent.dtype)
        s = self.s_embedder.proj2(torch.cat([self.s_embedder.proj1(x), cond], 1))
        for block in self.blocks:
            s = block(s, c)
        n = lh * lw
        s = s.permute(0, 2, 3, 1).reshape(-1, self.dim)
        px = torch.cat([F.unfold(x, p, stride=p), self.y_embedder_x(cond).flatten(2)], 1)
        px = px.reshape(b, -1, p * p, n).permute(0, 3, 2, 1).flatten(0, 1)
        px = self.final_layer(self.dec_net(self.x_embedder(px), s))
        px = px.reshape(b, n, p * p, 3).permute(0, 3, 2, 1).reshape(b, 3 * p * p, n)
        return F.fold(px, (h, w), p, stride=p)


class MageVAE(nn.Module):
    def __init__(self, encoder: dict, decoder: dict):
        super().__init__()
        self.dconv_encoder = Encoder(**encoder)
        self.decoder_model = Decoder(**decoder)
        self.space = encoder["patch"]
        self.config = SimpleNamespace(latent_channels=encoder["z"], scaling_factor=1.0, out_channels=3)

    @property
    def dtype(self):
        return self.decoder_model.t_embedder.mlp[0].weight.dtype

    @property
    def device(self):
        return self.decoder_model.t_embedder.mlp[0].weight.device

    def _check(self, h: int, w: int, what: str):
        if h % self.space or w % self.space:
            raise NodeError(f"the Mage VAE {what} pictures whose sides are multiples of {self.space}; this one is "
                            f"{w}x{h}: resize or crop it (image.scale_to_pixels with a resolution step of 16)")

    def encode(self, pictures: torch.Tensor) -> torch.Tensor:
        """pictures [B, 3, H, W] in -1..1 -> latents [B, 128, H/16, W/16]."""
        self._check(*pictures.shape[-2:], "encodes")
        return self.dconv_encoder(pictures.to(self.device, self.dtype))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """latents [B, 128, h, w] -> pictures [B, 3, 16h, 16w] in about -1..1."""
        return self.decoder_model(latent.to(self.device, self.dtype))


def vae_config(state) -> tuple:
    """(encoder, decoder) sizes from the tensors (the module's own names)."""
    from nodes.generate.converters import count
    e, d = "dconv_encoder.", "decoder_model."
    head, _, patch, _ = (int(s) for s in state[e + "patch_cond_embed.weight"].shape)
    dim = int(state[e + "proj_down.weight"].shape[0])
    z = int(state[e + "proj_out.weight"].shape[0]) // 2
    encoder = dict(z=z, dim=dim, head=head, blocks=count(state, e + "blocks.{}."),
                   head_blocks=count(state, e + "head_blocks.{}."), patch=patch,
                   ffn=int(state[e + "blocks.0.conv4.weight"].shape[0]),
                   head_ffn=int(state[e + "head_blocks.0.conv4.weight"].shape[0]))
    ddim = int(state[d + "t_embedder.mlp.2.weight"].shape[0])
    dim_x = int(state[d + "final_layer.norm.weight"].shape[0])
    table = int(state[d + "x_embedder.embedder.0.weight"].shape[1]) - 3 - dim_x
    freqs = int(round(table ** 0.5))
    if freqs * freqs != table:
        raise NodeError("this Mage VAE's pixel embedder reads a position table that is not a square of frequencies: "
                        "the file is damaged or not Mage-Flow's mage_flow_vae")
    decoder = dict(z=int(state[d + "y_embedder.decoder.conv_in.weight"].shape[1]), dim=ddim, dim_x=dim_x,
                   blocks=count(state, d + "blocks.{}."), res_blocks=count(state, d + "dec_net.res_blocks.{}."),
                   patch=int(state[d + "s_embedder.proj1.weight"].shape[2]),
                   ffn=int(state[d + "blocks.0.conv4.weight"].shape[0]), max_freqs=freqs)
    return encoder, decoder


def module_names(state) -> dict:
    """The file's tensors in the module's names: the encoder's and the decoder's, FLUX.2's anchor encoder left."""
    out = {}
    for k, v in state.items():
        if k.startswith(DROPPED):
            continue
        if k.startswith(ENCODER):
            out["dconv_encoder." + k[len(ENCODER):]] = v
        elif k.startswith(DECODER):
            out["decoder_model." + k[len(DECODER):]] = v
    return out
