"""BiRefNet background removal as ComfyUI's RemoveBackground runs it: ComfyUI's network
(comfy/background_removal/birefnet.py) and its encode_image (comfy/bg_removal_model.py) written out below, with
comfy/clip_model.py's clip_preprocess from tests/hunyuan3d_reference.py, on tiny random weights saved in ComfyUI's key layout. ComfyUI fixes the Swin-L
backbone's sizes; here they are arguments, the only change, so a small one runs in a test. torchvision's
deform_conv2d, which ComfyUI calls, is written out as its CPU kernel computes it, point by point."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

CXT_LEN = 3


# --- torchvision.ops.deform_conv2d (csrc/ops/cpu/deform_conv2d_kernel.cpp), one offset group, dilation 1 ---------
def _bilinear(img, y, x):
    """the kernel's bilinear_interpolate: 0 past a pixel beyond the edge, corners off the picture count 0"""
    h, w = img.shape[1:]
    out = torch.zeros(img.shape[0], *y.shape, dtype=img.dtype)
    inside = (y > -1) & (y < h) & (x > -1) & (x < w)
    y0, x0 = torch.floor(y).long(), torch.floor(x).long()
    ly, lx = y - y0, x - x0
    for dy, dx, wt in ((0, 0, (1 - ly) * (1 - lx)), (0, 1, (1 - ly) * lx), (1, 0, ly * (1 - lx)), (1, 1, ly * lx)):
        yy, xx = y0 + dy, x0 + dx
        ok = inside & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        v = img[:, yy.clamp(0, h - 1), xx.clamp(0, w - 1)]
        out += torch.where(ok, wt, torch.zeros_like(wt)) * v
    return out


def deform_conv2d(input, offset, weight, bias=None, padding=0, mask=None, stride=(1, 1)):
    b, c, h, w = input.shape
    kh, kw = weight.shape[2:]
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    ho, wo = (h + 2 * ph - kh) // stride[0] + 1, (w + 2 * pw - kw) // stride[1] + 1
    cols = torch.zeros(b, c, kh * kw, ho, wo, dtype=input.dtype)
    oy = torch.arange(ho, dtype=input.dtype).view(ho, 1) * stride[0] - ph
    ox = torch.arange(wo, dtype=input.dtype).view(1, wo) * stride[1] - pw
    for n in range(b):
        for i in range(kh):
            for j in range(kw):
                k = i * kw + j
                y = oy + i + offset[n, 2 * k]
                x = ox + j + offset[n, 2 * k + 1]
                cols[n, :, k] = _bilinear(input[n], y, x) * mask[n, k]
    return torch.einsum("ock,bckhw->bohw", weight.reshape(weight.shape[0], c, -1), cols)


# --- comfy/background_removal/birefnet.py, its operations plain torch.nn ---------------------------------------
class WindowAttention(nn.Module):
    def __init__(self, dim, window_size, num_heads):
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size[0] - 1) * (2 * window_size[1] - 1), num_heads))
        coords = torch.stack(torch.meshgrid([torch.arange(window_size[0]), torch.arange(window_size[1])], indexing='ij'))
        coords_flatten = torch.flatten(coords, 1)
        relative_coords = (coords_flatten[:, :, None] - coords_flatten[:, None, :]).permute(1, 2, 0).contiguous()
        relative_coords[:, :, 0] += window_size[0] - 1
        relative_coords[:, :, 1] += window_size[1] - 1
        relative_coords[:, :, 0] *= 2 * window_size[1] - 1
        self.register_buffer("relative_position_index", relative_coords.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.long().view(-1)].view(N, N, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = attn.softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B_, N, C))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def window_partition(x, ws):
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C)


def window_reverse(windows, ws, H, W):
    B = int(windows.shape[0] / (H * W / ws / ws))
    x = windows.view(B, H // ws, W // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim, num_heads, window_size, shift_size):
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, (window_size, window_size), num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * 4)

    def forward(self, x, mask_matrix):
        B, L, C = x.shape
        H, W = self.H, self.W
        shortcut = x
        x = self.norm1(x).view(B, H, W, C)
        pad_r = (self.window_size - W % self.window_size) % self.window_size
        pad_b = (self.window_size - H % self.window_size) % self.window_size
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        _, Hp, Wp, _ = x.shape
        if self.shift_size > 0:
            shifted_x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            attn_mask = mask_matrix
        else:
            shifted_x, attn_mask = x, None
        x_windows = window_partition(shifted_x, self.window_size).view(-1, self.window_size ** 2, C)
        attn_windows = self.attn(x_windows, mask=attn_mask).view(-1, self.window_size, self.window_size, C)
        shifted_x = window_reverse(attn_windows, self.window_size, Hp, Wp)
        if self.shift_size > 0:
            x = torch.roll(shifted_x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        else:
            x = shifted_x
        if pad_r > 0 or pad_b > 0:
            x = x[:, :H, :W, :].contiguous()
        x = shortcut + x.view(B, H * W, C)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x, H, W):
        B, L, C = x.shape
        x = x.view(B, H, W, C)
        if (H % 2 == 1) or (W % 2 == 1):
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :], x[:, 0::2, 1::2, :], x[:, 1::2, 1::2, :]], -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class BasicLayer(nn.Module):
    def __init__(self, dim, depth, num_heads, window_size, downsample):
        super().__init__()
        self.window_size, self.shift_size = window_size, window_size // 2
        self.blocks = nn.ModuleList([SwinTransformerBlock(dim, num_heads, window_size,
                                                          0 if i % 2 == 0 else window_size // 2) for i in range(depth)])
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x, H, W):
        Hp = int(np.ceil(H / self.window_size)) * self.window_size
        Wp = int(np.ceil(W / self.window_size)) * self.window_size
        img_mask = torch.zeros((1, Hp, Wp, 1), dtype=x.dtype)
        slices = (slice(0, -self.window_size), slice(-self.window_size, -self.shift_size), slice(-self.shift_size, None))
        cnt = 0
        for h in slices:
            for w in slices:
                img_mask[:, h, w, :] = cnt
                cnt += 1
        mask_windows = window_partition(img_mask, self.window_size).view(-1, self.window_size * self.window_size)
        attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
        attn_mask = attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))
        for blk in self.blocks:
            blk.H, blk.W = H, W
            x = blk(x, attn_mask)
        if self.downsample is not None:
            return x, H, W, self.downsample(x, H, W), (H + 1) // 2, (W + 1) // 2
        return x, H, W, x, H, W


class PatchEmbed(nn.Module):
    def __init__(self, patch_size, embed_dim):
        super().__init__()
        self.patch_size, self.embed_dim = (patch_size, patch_size), embed_dim
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        _, _, H, W = x.size()
        if W % self.patch_size[1] != 0:
            x = F.pad(x, (0, self.patch_size[1] - W % self.patch_size[1]))
        if H % self.patch_size[0] != 0:
            x = F.pad(x, (0, 0, 0, self.patch_size[0] - H % self.patch_size[0]))
        x = self.proj(x)
        Wh, Ww = x.size(2), x.size(3)
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).view(-1, self.embed_dim, Wh, Ww)


class SwinTransformer(nn.Module):
    def __init__(self, embed_dim, depths, num_heads, window_size, patch_size=4):
        super().__init__()
        self.num_layers = len(depths)
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.layers = nn.ModuleList([BasicLayer(embed_dim * 2 ** i, depths[i], num_heads[i], window_size,
                                                i < self.num_layers - 1) for i in range(self.num_layers)])
        self.num_features = [embed_dim * 2 ** i for i in range(self.num_layers)]
        for i in range(self.num_layers):
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))

    def forward(self, x):
        x = self.patch_embed(x)
        Wh, Ww = x.size(2), x.size(3)
        outs = []
        x = x.flatten(2).transpose(1, 2)
        for i in range(self.num_layers):
            x_out, H, W, x, Wh, Ww = self.layers[i](x, Wh, Ww)
            x_out = getattr(self, f'norm{i}')(x_out)
            outs.append(x_out.view(-1, H, W, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


class DeformableConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, padding):
        super().__init__()
        self.padding = padding
        self.offset_conv = nn.Conv2d(in_channels, 2 * kernel_size ** 2, kernel_size, 1, padding, bias=True)
        self.modulator_conv = nn.Conv2d(in_channels, kernel_size ** 2, kernel_size, 1, padding, bias=True)
        self.regular_conv = nn.Conv2d(in_channels, out_channels, kernel_size, 1, padding, bias=False)

    def forward(self, x):
        offset = self.offset_conv(x)
        modulator = 2. * torch.sigmoid(self.modulator_conv(x))
        return deform_conv2d(input=x, offset=offset, weight=self.regular_conv.weight, bias=None, padding=self.padding,
                             mask=modulator, stride=(1, 1))


class _ASPPModuleDeformable(nn.Module):
    def __init__(self, in_channels, planes, kernel_size, padding):
        super().__init__()
        self.atrous_conv = DeformableConv2d(in_channels, planes, kernel_size, padding)
        self.bn = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.atrous_conv(x)))


class ASPPDeformable(nn.Module):
    def __init__(self, in_channels, parallel_block_sizes=(1, 3, 7)):
        super().__init__()
        inner = 256
        self.aspp1 = _ASPPModuleDeformable(in_channels, inner, 1, padding=0)
        self.aspp_deforms = nn.ModuleList([_ASPPModuleDeformable(in_channels, inner, s, padding=int(s // 2))
                                           for s in parallel_block_sizes])
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Conv2d(in_channels, inner, 1, bias=False),
                                             nn.BatchNorm2d(inner), nn.ReLU(inplace=True))
        self.conv1 = nn.Conv2d(inner * (2 + len(self.aspp_deforms)), in_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x1 = self.aspp1(x)
        x_aspp_deforms = [aspp_deform(x) for aspp_deform in self.aspp_deforms]
        x5 = F.interpolate(self.global_avg_pool(x), size=x1.size()[2:], mode='bilinear', align_corners=True)
        return self.relu(self.bn1(self.conv1(torch.cat((x1, *x_aspp_deforms, x5), dim=1))))


class BasicDecBlk(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        inter = 64
        self.conv_in = nn.Conv2d(in_channels, inter, 3, 1, padding=1)
        self.relu_in = nn.ReLU(inplace=True)
        self.dec_att = ASPPDeformable(inter)
        self.conv_out = nn.Conv2d(inter, out_channels, 3, 1, padding=1)
        self.bn_in, self.bn_out = nn.BatchNorm2d(inter), nn.BatchNorm2d(out_channels)

    def forward(self, x):
        x = self.dec_att(self.relu_in(self.bn_in(self.conv_in(x))))
        return self.bn_out(self.conv_out(x))


class BasicLatBlk(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x):
        return self.conv(x)


class SimpleConvs(nn.Module):
    def __init__(self, in_channels, out_channels, inter_channels=64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, inter_channels, 3, 1, 1)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, 1, 1)

    def forward(self, x):
        return self.conv_out(self.conv1(x))


class Decoder(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.ipt_blk5 = SimpleConvs(2 ** 10 * 3, channels[0] // 8)
        self.ipt_blk4 = SimpleConvs(2 ** 8 * 3, channels[0] // 8)
        self.ipt_blk3 = SimpleConvs(2 ** 6 * 3, channels[1] // 8)
        self.ipt_blk2 = SimpleConvs(2 ** 4 * 3, channels[2] // 8)
        self.ipt_blk1 = SimpleConvs(2 ** 0 * 3, channels[3] // 8)
        self.decoder_block4 = BasicDecBlk(channels[0] + channels[0] // 8, channels[1])
        self.decoder_block3 = BasicDecBlk(channels[1] + channels[0] // 8, channels[2])
        self.decoder_block2 = BasicDecBlk(channels[2] + channels[1] // 8, channels[3])
        self.decoder_block1 = BasicDecBlk(channels[3] + channels[2] // 8, channels[3] // 2)
        self.conv_out1 = nn.Sequential(nn.Conv2d(channels[3] // 2 + channels[3] // 8, 1, 1, 1, 0))
        self.lateral_block4 = BasicLatBlk(channels[1], channels[1])
        self.lateral_block3 = BasicLatBlk(channels[2], channels[2])
        self.lateral_block2 = BasicLatBlk(channels[3], channels[3])
        self.conv_ms_spvn_4 = nn.Conv2d(channels[1], 1, 1, 1, 0)
        self.conv_ms_spvn_3 = nn.Conv2d(channels[2], 1, 1, 1, 0)
        self.conv_ms_spvn_2 = nn.Conv2d(channels[3], 1, 1, 1, 0)
        _N = 16
        self.gdt_convs_4 = nn.Sequential(nn.Conv2d(channels[0] // 2, _N, 3, 1, 1), nn.BatchNorm2d(_N), nn.ReLU(inplace=True))
        self.gdt_convs_3 = nn.Sequential(nn.Conv2d(channels[1] // 2, _N, 3, 1, 1), nn.BatchNorm2d(_N), nn.ReLU(inplace=True))
        self.gdt_convs_2 = nn.Sequential(nn.Conv2d(channels[2] // 2, _N, 3, 1, 1), nn.BatchNorm2d(_N), nn.ReLU(inplace=True))
        for i in range(2, 5):
            setattr(self, f"gdt_convs_pred_{i}", nn.Sequential(nn.Conv2d(_N, 1, 1, 1, 0)))
            setattr(self, f"gdt_convs_attn_{i}", nn.Sequential(nn.Conv2d(_N, 1, 1, 1, 0)))

    def get_patches_batch(self, x, p):
        _size_h, _size_w = p.shape[2:]
        patches_batch = []
        for idx in range(x.shape[0]):
            columns_x = torch.split(x[idx], split_size_or_sections=_size_w, dim=-1)
            patches_x = []
            for column_x in columns_x:
                patches_x += [p.unsqueeze(0) for p in torch.split(column_x, split_size_or_sections=_size_h, dim=-2)]
            patches_batch.append(torch.cat(patches_x, dim=1))
        return torch.cat(patches_batch, dim=0)

    def forward(self, features):
        x, x1, x2, x3, x4 = features
        up = partial(F.interpolate, mode='bilinear', align_corners=True)
        x4 = torch.cat((x4, self.ipt_blk5(up(self.get_patches_batch(x, x4), size=x4.shape[2:]))), 1)
        p4 = self.decoder_block4(x4)
        p4 = p4 * self.gdt_convs_attn_4(self.gdt_convs_4(p4)).sigmoid()
        _p3 = up(p4, size=x3.shape[2:]) + self.lateral_block4(x3)
        _p3 = torch.cat((_p3, self.ipt_blk4(up(self.get_patches_batch(x, _p3), size=x3.shape[2:]))), 1)
        p3 = self.decoder_block3(_p3)
        p3 = p3 * self.gdt_convs_attn_3(self.gdt_convs_3(p3)).sigmoid()
        _p2 = up(p3, size=x2.shape[2:]) + self.lateral_block3(x2)
        _p2 = torch.cat((_p2, self.ipt_blk3(up(self.get_patches_batch(x, _p2), size=x2.shape[2:]))), 1)
        p2 = self.decoder_block2(_p2)
        p2 = p2 * self.gdt_convs_attn_2(self.gdt_convs_2(p2)).sigmoid()
        _p1 = up(p2, size=x1.shape[2:]) + self.lateral_block2(x1)
        _p1 = torch.cat((_p1, self.ipt_blk2(up(self.get_patches_batch(x, _p1), size=x1.shape[2:]))), 1)
        _p1 = up(self.decoder_block1(_p1), size=x.shape[2:])
        _p1 = torch.cat((_p1, self.ipt_blk1(up(self.get_patches_batch(x, _p1), size=x.shape[2:]))), 1)
        return self.conv_out1(_p1)


class BiRefNet(nn.Module):
    def __init__(self, embed_dim, depths, num_heads, window_size):
        super().__init__()
        self.bb = SwinTransformer(embed_dim, depths, num_heads, window_size)
        channels = [c * 2 for c in (embed_dim * 8, embed_dim * 4, embed_dim * 2, embed_dim)]
        self.cxt = channels[1:][::-1][-3:]
        self.squeeze_module = nn.Sequential(BasicDecBlk(channels[0] + sum(self.cxt), channels[0]))
        self.decoder = Decoder(channels)

    def forward(self, x):
        up = partial(F.interpolate, mode='bilinear', align_corners=True)
        x1, x2, x3, x4 = self.bb(x)
        B, C, H, W = x.shape
        x1_, x2_, x3_, x4_ = self.bb(up(x, size=(H // 2, W // 2)))
        x1 = torch.cat([x1, up(x1_, size=x1.shape[2:])], dim=1)
        x2 = torch.cat([x2, up(x2_, size=x2.shape[2:])], dim=1)
        x3 = torch.cat([x3, up(x3_, size=x3.shape[2:])], dim=1)
        x4 = torch.cat([x4, up(x4_, size=x4.shape[2:])], dim=1)
        x4 = torch.cat((*[up(x1, size=x4.shape[2:]), up(x2, size=x4.shape[2:]),
                          up(x3, size=x4.shape[2:])][-CXT_LEN:], x4), dim=1)
        x4 = self.squeeze_module(x4)
        return self.decoder([x, x1, x2, x3, x4])


def encode_image(model, image, size):
    """comfy/bg_removal_model.py's BackgroundRemovalModel.encode_image: image [B, H, W, 3] in 0..1"""
    H, W = image.shape[1], image.shape[2]
    from hunyuan3d_reference import clip_preprocess       # comfy/clip_model.py's, written out there
    out = model(clip_preprocess(image, size=size, mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0], crop=False))
    out = F.interpolate(out, size=(H, W), mode="bicubic", antialias=False)
    mask = out.sigmoid()
    if mask.ndim == 3:
        mask = mask.unsqueeze(0)
    if mask.shape[1] != 1:
        mask = mask.movedim(-1, 1)
    return mask


# --- the tests -------------------------------------------------------------------------------------------------
SIZE = 64       # the test's square (ComfyUI's is 1024): a multiple of the patch (4) x 2 ** 3 merges


@pytest.fixture(scope="module")
def birefnet(tmp_path_factory):
    from safetensors.torch import save_file
    torch.manual_seed(0)
    model = BiRefNet(embed_dim=8, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], window_size=3).eval()
    with torch.no_grad():       # every weight at its fan-in's scale, the norms' statistics spread
        for name, t in model.named_parameters():
            if t.dim() > 1:
                t.normal_(0, t[0].numel() ** -0.5)
            else:
                t.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
        for name, t in model.named_buffers():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                t.normal_(0, 0.1)
        for mod in model.modules():     # offsets of a few pixels, as a trained network's: the taps reach past cells
            if isinstance(mod, DeformableConv2d):
                mod.offset_conv.weight.mul_(3.0)
        model.decoder.conv_out1[0].weight.mul_(8.0)     # masks that span 0..1, not all near 0.5
    path = tmp_path_factory.mktemp("birefnet") / "birefnet.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if "num_batches_tracked" not in k}, str(path))
    return model, path


def _picture(h, w, seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    import cv2
    return np.clip(cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 8, (h, w, 3)),
                   0, 255).astype(np.uint8)


def test_deformable_convolution_is_torchvisions():
    """the product's sampled deformable convolution against torchvision's kernel written out, offsets reaching
    past the picture's edge"""
    from nodes.mask.birefnet import deform_conv
    torch.manual_seed(1)
    x = torch.randn(2, 3, 7, 9)
    for k in (1, 3, 7):
        offset = torch.randn(2, 2 * k * k, 7, 9) * 4
        modulator = torch.rand(2, k * k, 7, 9) * 2
        weight = torch.randn(5, 3, k, k)
        want = deform_conv2d(x, offset, weight, padding=k // 2, mask=modulator)
        assert torch.allclose(deform_conv(x, offset, modulator, weight), want, atol=1e-5)


def test_masks_are_comfyuis(birefnet):
    """a 50x70 picture, squeezed to the square and its mask stretched back: RemoveBackground's mask"""
    from nodes.mask.birefnet import load
    model, path = birefnet
    net = load(str(path))
    frame = _picture(50, 70, 2)
    with torch.no_grad():
        want = encode_image(model, torch.from_numpy(frame).float()[None] / 255.0, SIZE)[0, 0].numpy()
    got = net.masks(frame[None], SIZE)[0]
    assert got.shape == (50, 70) and 0.02 < want.std()
    assert np.abs(got - want).max() < 1e-4


def test_node_cuts_the_subject_out(birefnet, tmp_path):
    """mask.remove_background on a picture (a still mask) and on a two-frame clip (a mask a frame): RemoveBackground's
    masks (the network's, held to ComfyUI's above), and the frames with them as their alpha"""
    from graph_engine import Clip
    from graph_engine.context import Context
    from graph_engine.executor import call_node
    from graph_engine.registry import default_registry
    from nodes.mask.birefnet import load
    frames = np.stack([_picture(40, 56, 4), _picture(40, 56, 5)])
    path = birefnet[1]
    want = load(str(path)).masks(frames, 32)       # the smallest square the network takes: the node's plumbing
    spec = default_registry().get("mask.remove_background")
    for n in (1, 2):
        out = call_node(spec, Context("cut", workflow_dir=str(tmp_path)), {"video": Clip.from_array(frames[:n])},
                        {"model": str(path), "resolution": 32})
        mask = out["mask"] if n == 1 else out["mask"].frames(0, n)[..., 0] / 255.0
        assert np.abs(mask - (want[0] if n == 1 else want)).max() < (1e-4 if n == 1 else 0.5 / 255 + 1e-4)
        alpha = out["video"].matte.frames(0, n)[..., 0].astype(np.float32)
        assert np.abs(alpha - want[:n] * 255).max() <= 1.0


def test_a_wrong_or_damaged_file_is_named(tmp_path):
    from safetensors.torch import save_file
    from graph_engine import NodeError
    from nodes.mask.birefnet import load
    other = tmp_path / "flux.safetensors"
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(NodeError, match="not a BiRefNet background removal model.*birefnet.safetensors"):
        load(str(other))
    junk = tmp_path / "birefnet_junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(NodeError, match="birefnet_junk.safetensors"):
        load(str(junk))


def test_a_file_cut_short_is_named(birefnet, tmp_path):
    from safetensors.torch import load_file, save_file
    from graph_engine import NodeError
    from nodes.mask.birefnet import load
    sd = load_file(str(birefnet[1]))
    for n, gone in enumerate(("decoder.conv_out1.0.weight", "decoder.decoder_block2.dec_att.bn1.running_var")):
        path = tmp_path / f"birefnet_short_{n}.safetensors"
        save_file({k: v for k, v in sd.items() if k != gone}, str(path))
        with pytest.raises(NodeError, match=f"{path.name}.*{gone.split('.')[-1]}"):
            load(str(path)).masks(np.zeros((1, 32, 32, 3), np.uint8), SIZE)


def test_template_imports_and_runs(birefnet, tmp_path):
    """utility_birefnet_remove_background: the loader folds into mask.remove_background's model (ComfyUI's 1024
    square); run on the tiny weights (at 32: the test's size), the picture comes out with the subject's mask as its
    alpha through the template's InvertMask and JoinImageWithAlpha, as ComfyUI's subgraph gives it"""
    import cv2
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    from nodes.mask.birefnet import load
    res = import_workflow(str(Path(__file__).parent / "data" / "comfyui" / "templates" /
                              "utility_birefnet_remove_background.json"))
    wf = load_workflow(text=res.yaml, check=True)
    (node,) = [n for n in wf.graph.nodes.values() if n.type == "mask.remove_background"]
    assert node.params["model"] == "birefnet.safetensors" and node.params.get("resolution", 1024) == 1024
    frame = _picture(40, 56, 8)
    cv2.imwrite(str(tmp_path / "the_lily_veil.png"), frame[..., ::-1])
    (picture,) = [n.id for n in wf.graph.nodes.values() if n.type == "io.load_image"]
    (joined,) = [n.id for n in wf.graph.nodes.values() if n.type == "video.matte"]
    out = Session().run(wf, overrides={f"{node.id}.model": str(birefnet[1]), f"{node.id}.resolution": 32,
                                       f"{picture}.path": str(tmp_path / "the_lily_veil.png")})
    assert out.ok, out.failed
    want = load(str(birefnet[1])).masks(frame[None], 32)[0]
    alpha = out.outputs[joined]["video"].matte.frames(0, 1)[0, ..., 0].astype(np.float32)
    assert np.abs(alpha - want * 255).max() <= 1.0
