"""BiRefNet background removal as ComfyUI's RemoveBackground runs it (comfy/background_removal/birefnet.py,
comfy/bg_removal_model.py), from the same file (birefnet.safetensors, Comfy-Org/BiRefNet, in background_removal/).

The network: a Swin transformer (the detection variant: windows padded, not shrunk, on small maps) run on the
picture and on the picture at half size, the two concatenated at each of its four levels; a squeeze block over the
coarsest, then a decoder that climbs back to full size through blocks of deformable-convolution ASPP, each level
given the picture itself cut into patches of that level's size. Written as plain functions of the file's tensors:
every width, depth, head count and window is read from them, so one code runs the published Swin-L file and a
test's tiny one. ComfyUI fixes the rest: a 1024x1024 square input, no normalisation beyond 8-bit levels, the output
stretched back bicubic and passed through a sigmoid (1 = foreground)."""
from __future__ import annotations

import math
import threading
from typing import Dict, List

import numpy as np

from graph_engine import NodeError

# ComfyUI's loader takes a file for BiRefNet when it holds this tensor (comfy/bg_removal_model.py)
MARK = "bb.layers.1.blocks.0.attn.relative_position_index"
HINT = ("use ComfyUI's BiRefNet, birefnet.safetensors (Comfy-Org/BiRefNet on Hugging Face), in "
        "models/background_removal/")
RESOLUTION = 1024           # comfy/background_removal/birefnet.json's image_size
MAX_LAYERS, MAX_BLOCKS = 8, 64
EPS = 1e-5                  # torch's LayerNorm and BatchNorm default, which ComfyUI's modules keep


def read_state(path: str) -> Dict[str, "object"]:
    """The network's tensors (float32) from a safetensors file; a NodeError naming the file for any other."""
    from nodes.generate.weights import load_weights
    import torch
    sd = load_weights(path)
    if MARK not in sd:
        raise NodeError(f"{path} is not a BiRefNet background removal model (it has no {MARK}): {HINT}")
    return {k: v.float() for k, v in sd.items() if isinstance(v, torch.Tensor)}


class Tensors(dict):
    """A file's tensors by name: one the network reads and the file lacks (a file cut short, another model's) is
    named with the file, not a KeyError, whether it is read as the network loads or as it runs."""

    def __init__(self, name: str, tensors: dict):
        super().__init__(tensors)
        self.name = name

    def __missing__(self, key):
        raise NodeError(f"{self.name} lacks {key}: it is cut short or not ComfyUI's BiRefNet; {HINT}")


class BiRefNet:
    """The network over a state dict in ComfyUI's layout."""

    def __init__(self, sd: Dict[str, "object"], name: str, device: str = "cpu"):
        from nodes.generate.weights import sizes_of
        self.sd = Tensors(name, {k: v.to(device) for k, v in sd.items()})
        self.name, self.device = name, device
        with sizes_of(name, "a BiRefNet background removal model"):
            self.patch = int(sd["bb.patch_embed.proj.weight"].shape[-1])
            self.layers = _count(sd, "bb.layers.", MAX_LAYERS, name)
            self.depths = [_count(sd, f"bb.layers.{i}.blocks.", MAX_BLOCKS, name) for i in range(self.layers)]
            table = sd["bb.layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]
            self.window = (math.isqrt(table) + 1) // 2
            if (2 * self.window - 1) ** 2 != table:
                raise ValueError(f"a relative position table of {table} rows, not (2 x window - 1) squared")
            self.heads = [int(sd[f"bb.layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1])
                          for i in range(self.layers)]
        for k in ("squeeze_module.0.conv_in.weight", "decoder.conv_out1.0.weight", "decoder.ipt_blk5.conv1.weight",
                  f"bb.norm{self.layers - 1}.weight"):       # the ends of the network, read before any frame
            self.sd[k]
        self.index = _relative_index(self.window, device)

    @property
    def multiple(self) -> int:
        """What the input's sides must be a multiple of: the decoder cuts the picture into whole patches of the
        coarsest level's size."""
        return self.patch * 2 ** (self.layers - 1)

    # --- the layers, as functions of the named tensors -------------------------------------------------------
    def linear(self, x, name):
        import torch.nn.functional as F
        return F.linear(x, self.sd[name + ".weight"], self.sd.get(name + ".bias"))

    def conv(self, x, name, stride=1):
        import torch.nn.functional as F
        w = self.sd[name + ".weight"]
        return F.conv2d(x, w, self.sd.get(name + ".bias"), stride, w.shape[-1] // 2 if stride == 1 else 0)

    def layer_norm(self, x, name):
        import torch.nn.functional as F
        return F.layer_norm(x, x.shape[-1:], self.sd[name + ".weight"], self.sd[name + ".bias"], EPS)

    def batch_norm(self, x, name):
        import torch.nn.functional as F
        sd = self.sd
        return F.batch_norm(x, sd[name + ".running_mean"], sd[name + ".running_var"], sd[name + ".weight"],
                            sd[name + ".bias"], False, 0.0, EPS)

    # --- the Swin backbone ------------------------------------------------------------------------------------
    def backbone(self, x) -> List["object"]:
        """The four levels' features [B, C, H, W], each after its own norm."""
        import torch.nn.functional as F
        p = self.patch
        x = F.pad(x, (0, -x.shape[3] % p, 0, -x.shape[2] % p))
        x = self.conv(x, "bb.patch_embed.proj", stride=p)
        h, w = x.shape[2:]
        x = self.layer_norm(x.flatten(2).transpose(1, 2), "bb.patch_embed.norm")
        outs = []
        for i in range(self.layers):
            mask = _shift_mask(h, w, self.window, x)
            for j in range(self.depths[i]):
                x = self.swin_block(x, f"bb.layers.{i}.blocks.{j}", h, w, self.heads[i], mask if j % 2 else None)
            out = self.layer_norm(x, f"bb.norm{i}")
            outs.append(out.view(x.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous())
            if i < self.layers - 1:
                x, h, w = self.merge(x, f"bb.layers.{i}.downsample", h, w)
        return outs

    def swin_block(self, x, name, h, w, heads, mask):
        """One block: window attention (shifted by half a window where `mask` is given) and an MLP, each with
        its residual. The map is padded at the right and bottom to whole windows, as ComfyUI's Swin does."""
        import torch
        import torch.nn.functional as F
        b, n, c = x.shape
        ws = self.window
        y = self.layer_norm(x, name + ".norm1").view(b, h, w, c)
        y = F.pad(y, (0, 0, 0, -w % ws, 0, -h % ws))
        hp, wp = y.shape[1:3]
        shift = ws // 2 if mask is not None else 0
        if shift:
            y = torch.roll(y, (-shift, -shift), (1, 2))
        windows = y.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        y = self.window_attention(windows, name + ".attn", heads, mask)
        y = y.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        if shift:
            y = torch.roll(y, (shift, shift), (1, 2))
        x = x + y[:, :h, :w].reshape(b, n, c)
        y = self.layer_norm(x, name + ".norm2")
        return x + self.linear(F.gelu(self.linear(y, name + ".mlp.fc1")), name + ".mlp.fc2")

    def window_attention(self, x, name, heads, mask):
        import torch.nn.functional as F
        bw, n, c = x.shape
        q, k, v = self.linear(x, name + ".qkv").view(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        table = self.sd[name + ".relative_position_bias_table"]
        bias = table[self.index].view(n, n, heads).permute(2, 0, 1)[None]
        if mask is not None:        # each picture's windows in turn share the shift's mask
            windows = mask.shape[0]
            bias = (bias + mask[:, None]).repeat(bw // windows, 1, 1, 1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.linear(y.transpose(1, 2).reshape(bw, n, c), name + ".proj")

    def merge(self, x, name, h, w):
        """Patch merging: each 2x2 of tokens becomes one of twice the width (an odd side padded)."""
        import torch
        import torch.nn.functional as F
        b, _, c = x.shape
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        h2, w2 = x.shape[1:3]
        x = self.linear(self.layer_norm(x.view(b, -1, 4 * c), name + ".norm"), name + ".reduction")
        return x, h2, w2

    # --- the decoder ------------------------------------------------------------------------------------------
    def deformable(self, x, name):
        """A modulated deformable convolution (torchvision's deform_conv2d, DCNv2): each kernel tap reads the
        input at its own learnt offset, weighted by 2 x sigmoid of its modulator."""
        import torch
        weight = self.sd[name + ".regular_conv.weight"]
        offset = self.conv(x, name + ".offset_conv")
        modulator = 2.0 * torch.sigmoid(self.conv(x, name + ".modulator_conv"))
        return deform_conv(x, offset, modulator, weight)

    def aspp(self, x, name):
        import torch
        import torch.nn.functional as F

        def branch(part):
            return F.relu(self.batch_norm(self.deformable(x, f"{name}.{part}.atrous_conv"), f"{name}.{part}.bn"))
        kernels = _count(self.sd, name + ".aspp_deforms.", 8, self.name)
        parts = [branch("aspp1")] + [branch(f"aspp_deforms.{i}") for i in range(kernels)]
        pooled = x.mean((2, 3), keepdim=True)
        pooled = F.relu(self.batch_norm(self.conv(pooled, name + ".global_avg_pool.1"), name + ".global_avg_pool.2"))
        parts.append(pooled.expand(-1, -1, *x.shape[2:]))
        y = self.conv(torch.cat(parts, 1), name + ".conv1")
        return F.relu(self.batch_norm(y, name + ".bn1"))

    def dec_block(self, x, name):
        import torch.nn.functional as F
        x = F.relu(self.batch_norm(self.conv(x, name + ".conv_in"), name + ".bn_in"))
        x = self.aspp(x, name + ".dec_att")
        return self.batch_norm(self.conv(x, name + ".conv_out"), name + ".bn_out")

    def picture_in(self, picture, like, name):
        """The picture cut into patches of `like`'s size, stacked as channels, through a small conv pair, and set
        beside `like`."""
        import torch
        patches = _resized(_patches(picture, like), like.shape[2:])
        return torch.cat((like, self.conv(self.conv(patches, name + ".conv1"), name + ".conv_out")), 1)

    def gated(self, p, level):
        """A decoder level's output times the sigmoid attention of its gradient branch."""
        import torch.nn.functional as F
        d = f"decoder.gdt_convs_{level}"
        g = F.relu(self.batch_norm(self.conv(p, d + ".0"), d + ".1"))
        return p * self.conv(g, f"decoder.gdt_convs_attn_{level}.0").sigmoid()

    def __call__(self, x):
        """The foreground's logits [B, 1, H, W] of a [B, 3, H, W] picture in 0..1."""
        import torch
        full = self.backbone(x)
        half = self.backbone(_resized(x, (x.shape[2] // 2, x.shape[3] // 2)))
        x1, x2, x3, x4 = [torch.cat([f, _resized(g, f.shape[2:])], 1) for f, g in zip(full, half)]
        x4 = torch.cat([_resized(f, x4.shape[2:]) for f in (x1, x2, x3)] + [x4], 1)
        x4 = self.dec_block(x4, "squeeze_module.0")
        p = self.gated(self.dec_block(self.picture_in(x, x4, "decoder.ipt_blk5"), "decoder.decoder_block4"), 4)
        for level, lateral, block, ipt in ((x3, 4, 3, 4), (x2, 3, 2, 3), (x1, 2, 1, 2)):
            p = _resized(p, level.shape[2:]) + self.conv(level, f"decoder.lateral_block{lateral}.conv")
            p = self.dec_block(self.picture_in(x, p, f"decoder.ipt_blk{ipt}"), f"decoder.decoder_block{block}")
            if block > 1:
                p = self.gated(p, block)
        p = _resized(p, x.shape[2:])
        return self.conv(self.picture_in(x, p, "decoder.ipt_blk1"), "decoder.conv_out1.0")

    def masks(self, frames: np.ndarray, resolution: int = RESOLUTION) -> np.ndarray:
        """float32 [n, H, W] foreground masks of uint8 [n, H, W, 3] frames, as ComfyUI's encode_image makes them:
        each frame squeezed to a resolution x resolution square (bicubic, antialiased, 8-bit levels), its logits
        stretched back (bicubic) and passed through a sigmoid."""
        import torch
        import torch.nn.functional as F
        if resolution % self.multiple:
            raise NodeError(f"resolution {resolution} is not a multiple of {self.multiple}, as BiRefNet's decoder "
                            f"needs: use {max(self.multiple, resolution // self.multiple * self.multiple)}")
        out = []
        with torch.no_grad():
            for frame in frames:
                x = torch.from_numpy(np.ascontiguousarray(frame[..., :3])).to(self.device).float().div(255.0)
                x = x.permute(2, 0, 1)[None]
                h, w = x.shape[2:]
                if (h, w) != (resolution, resolution):
                    x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", antialias=True)
                x = torch.clamp(x * 255.0, 0, 255).round() / 255.0
                logits = F.interpolate(self(x), size=(h, w), mode="bicubic", antialias=False)
                out.append(logits.sigmoid()[0, 0].float().cpu().numpy())
        return np.stack(out).astype(np.float32)


def deform_conv(x, offset, modulator, weight):
    """torchvision.ops.deform_conv2d (stride 1, padding kernel // 2, one offset group) as sampling: for each
    kernel tap the input is read bilinearly at the tap's place plus its offset (0 off the picture), times its
    modulator, and that tap's weights applied. Offsets hold (dy, dx) per tap, taps row by row."""
    import torch
    import torch.nn.functional as F
    b, c, h, w = x.shape
    kh, kw = weight.shape[2:]
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    out = None
    for i in range(kh):
        for j in range(kw):
            k = i * kw + j
            py = ys + (i - kh // 2) + offset[:, 2 * k]
            px = xs + (j - kw // 2) + offset[:, 2 * k + 1]
            grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), -1)     # pixel centres, -1..1
            sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            tap = F.conv2d(sampled * modulator[:, k:k + 1], weight[:, :, i:i + 1, j:j + 1])
            out = tap if out is None else out + tap
    return out


def _resized(x, size):
    import torch.nn.functional as F
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def _patches(x, like):
    """[B, C, H, W] cut into patches of like's size, column by column and down each column (as ComfyUI's
    get_patches_batch splits), stacked as channels: [B, patches x C, h, w]."""
    h, w = like.shape[2:]
    b, c, hh, ww = x.shape
    t = x.reshape(b, c, hh // h, h, ww // w, w).permute(0, 4, 2, 1, 3, 5)
    return t.reshape(b, -1, h, w)


def _relative_index(ws: int, device):
    """Swin's index into the relative position table for each pair of a window's cells."""
    import torch
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return (rel[..., 0] * (2 * ws - 1) + rel[..., 1]).reshape(-1).to(device)


def _shift_mask(h: int, w: int, ws: int, like):
    """-100 between cells of a shifted window that came from different regions of the padded map, else 0."""
    import torch
    hp, wp, shift = -(-h // ws) * ws, -(-w // ws) * ws, ws // 2
    regions = torch.zeros(hp, wp, device=like.device, dtype=like.dtype)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for n, (a, b) in enumerate((a, b) for a in cuts for b in cuts):
        regions[a, b] = n
    windows = regions.view(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))


def _count(sd, prefix: str, most: int, name: str) -> int:
    """How many numbered children prefix0, prefix1, ... the file has; a refusal past what a BiRefNet has."""
    found = {k[len(prefix):].split(".", 1)[0] for k in sd if k.startswith(prefix)}
    n = 0
    while str(n) in found:
        n += 1
    if n > most:
        raise NodeError(f"{name} has {n} of {prefix}*, more than any BiRefNet: {HINT}")
    if n == 0:
        raise NodeError(f"{name} has no {prefix}0: it is cut short or not ComfyUI's BiRefNet; {HINT}")
    return n


def load(path: str, device: str = "cpu") -> BiRefNet:
    """The network of `path`, kept while the file is unchanged."""
    import os
    key = (os.path.abspath(path), os.path.getmtime(path), device)
    with _lock:
        if key not in _loaded:
            _loaded.clear()
            _loaded[key] = BiRefNet(read_state(path), os.path.basename(path), device)
        return _loaded[key]


_loaded: dict = {}
_lock = threading.Lock()
