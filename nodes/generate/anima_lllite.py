"""ControlNet-LLLite for Anima (Comfy-Org/Anima-LLLite: anima-lllite-depth-1, anima-lllite-any-test-like-v2,
anima-lllite-inpainting-v2 in model_patches/), as ComfyUI's ModelPatchLoader loads it and AnimaLLLiteApply applies it.

A small convolutional encoder turns the control picture (RGB in [-1, 1] at the generation's pixel size; the inpainting
files add the mask as a fourth channel, and may black out the masked picture first) into one embedding per 16 x 16
pixels - one per Anima token. In each DiT block, before the self-attention's q / k / v projections, the
cross-attention's q projection and the MLP's first layer, a tiny FiLM MLP reads the token and its embedding and adds
its output, scaled by the strength, to what the projection reads. The file names its modules
lllite_dit_blocks_<block>_<target>; blocks and targets it has no module for are left as they are.

`steer` lays the net on a diffusers CosmosTransformer3DModel (Anima's DiT is Cosmos-Predict2's with an LLM adapter in
front, and the places patched are the same) by forward pre-hooks on those projections."""
from __future__ import annotations

import re
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError

PROBE = "lllite_conditioning1.conv1.weight"
SDXL_PREFIX = "lllite_unet_"
MODULE = re.compile(r"lllite_dit_blocks_(\d+)_(self_attn_[qkv]_proj|cross_attn_q_proj|mlp_layer1)$")
# target -> (the block's submodule, the projection whose input is steered; None: the submodule's own input)
PLACES = {"self_attn_q_proj": ("attn1", "to_q"), "self_attn_k_proj": ("attn1", "to_k"),
          "self_attn_v_proj": ("attn1", "to_v"), "cross_attn_q_proj": ("attn2", "to_q"), "mlp_layer1": ("ff", None)}
FIX = "get it again from Comfy-Org/Anima-LLLite (model_patches/anima-lllite-*.safetensors)"
MAX_BLOCKS = 512        # converters' bound on numbered blocks
MAX_DILATION = 1024     # the encoder's grid is the picture's 1/16: no published net dilates past 8


def _norm(channels: int) -> nn.GroupNorm:
    # the most groups of 8, 4, 2, 1 that divide the channels, as the trainer chose them
    return nn.GroupNorm(next(g for g in (8, 4, 2, 1) if channels % g == 0), channels)


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm1, self.conv1, self.norm2, self.conv2 = _norm(c), nn.Conv2d(c, c, 3, padding=1), _norm(c), \
            nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


def _conv_norm_silu(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(conv, _norm(conv.out_channels), nn.SiLU())


class _Pyramid(nn.Module):
    """Atrous spatial pyramid pooling: parallel dilated convolutions and a global average, joined by a 1x1 conv."""
    def __init__(self, c: int, dilations: tuple):
        super().__init__()
        self.branches = nn.ModuleList(_conv_norm_silu(nn.Conv2d(c, c, 1) if d == 1 else
                                                      nn.Conv2d(c, c, 3, padding=d, dilation=d)) for d in dilations)
        self.global_conv = _conv_norm_silu(nn.Conv2d(c, c, 1))
        self.proj = _conv_norm_silu(nn.Conv2d(c * (len(dilations) + 1), c, 1))

    def forward(self, x):
        pooled = self.global_conv(x.mean((2, 3), keepdim=True)).expand(-1, -1, *x.shape[2:])
        return self.proj(torch.cat([b(x) for b in self.branches] + [pooled], 1))


class _Encoder(nn.Module):
    """The control picture [B, C, H, W] -> one embedding per 16 x 16 pixels [B, H/16 * W/16, E]."""
    def __init__(self, cin: int, dim: int, emb: int, resblocks: int, dilations: tuple):
        super().__init__()
        half = dim // 2
        self.conv1, self.norm1 = nn.Conv2d(cin, half, 4, stride=4), _norm(half)
        self.conv2, self.norm2 = nn.Conv2d(half, half, 3, padding=1), _norm(half)
        self.conv3, self.norm3 = nn.Conv2d(half, dim, 4, stride=4), _norm(dim)
        self.resblocks = nn.ModuleList(_Residual(dim) for _ in range(resblocks))
        self.aspp = _Pyramid(dim, dilations) if dilations else None
        self.proj, self.out_norm = nn.Conv2d(dim, emb, 1), nn.LayerNorm(emb)

    def forward(self, x):
        for conv, norm in ((self.conv1, self.norm1), (self.conv2, self.norm2), (self.conv3, self.norm3)):
            x = F.silu(norm(conv(x)))
        for block in self.resblocks:
            x = block(x)
        if self.aspp is not None:
            x = self.aspp(x)
        return self.out_norm(self.proj(x).flatten(2).transpose(1, 2))


class _Film(nn.Module):
    """One projection's steer: x + up(silu(FiLM(mid([cond, silu(down(x))])))) * strength."""
    def __init__(self, dim: int, emb: int, hidden: int):
        super().__init__()
        self.down, self.mid = nn.Linear(dim, hidden), nn.Linear(hidden + emb, hidden)
        self.cond_to_film, self.up = nn.Linear(emb, 2 * hidden), nn.Linear(hidden, dim)
        self.depth_embed = nn.Parameter(torch.zeros(emb), requires_grad=False)

    def forward(self, x, cond, strength: float):
        cond = cond + self.depth_embed.to(cond.dtype)
        if cond.shape[0] != x.shape[0]:         # one control for the batch's rows (both guidance halves)
            cond = cond.repeat(x.shape[0] // cond.shape[0], 1, 1)
        gamma, beta = self.cond_to_film(cond).chunk(2, -1)
        h = self.mid(torch.cat((cond, F.silu(self.down(x))), -1))
        return x + self.up(F.silu(h * (1 + gamma) + beta)) * strength


class AnimaLllite(nn.Module):
    """The net in a file: its encoder (lllite_conditioning1) and its per-block modules, named as in the file."""
    def __init__(self, state: dict, metadata: dict, name: str):
        super().__init__()
        version = (metadata or {}).get("lllite.version", "2")
        if version != "2":
            raise NodeError(f"{name} is an Anima LLLite file of version {version}; ComfyUI and Kinograph read version "
                            f"2 (named keys) only: {FIX}")
        names = sorted({k.split(".", 1)[0] for k in state if k.startswith("lllite_dit_blocks_")})
        need = [PROBE, "lllite_conditioning1.conv3.weight", "lllite_conditioning1.proj.weight"]
        lost = [k for k in need if k not in state]
        if not names or lost:
            raise NodeError(f"{name} is cut short: it has {'no lllite_dit_blocks_* modules' if not names else lost[0]}"
                            f"; {FIX}")
        emb = int(state["lllite_conditioning1.proj.weight"].shape[0])
        res = {int(k.split(".")[2]) for k in state if k.startswith("lllite_conditioning1.resblocks.")}
        # the highest number makes the list: one tensor named resblocks.200000 built 200,001 residual blocks
        if max(res, default=0) >= MAX_BLOCKS:
            raise NodeError(f"{name} numbers its encoder's residual blocks up to {max(res):,}; Kinograph reads at most "
                            f"{MAX_BLOCKS} (the published nets have a few): the file is damaged or made to hang the "
                            f"loader; {FIX}")
        dilations = ()
        if any(k.startswith("lllite_conditioning1.aspp.") for k in state):
            said = metadata.get("lllite.aspp_dilations", "1,2,4,8")
            dilations = tuple(int(d) if d.strip().isdecimal() else 0 for d in said.split(",") if d.strip())
            if not all(1 <= d <= MAX_DILATION for d in dilations):
                raise NodeError(f"{name}'s lllite.aspp_dilations ({said[:80]!r}) are not all whole numbers from 1 to "
                                f"{MAX_DILATION} (the published nets say 1,2,4,8): {FIX}")
        self.cond_in_channels = int(state[PROBE].shape[1])
        self.masked_input = str(metadata.get("lllite.inpaint_masked_input", "false")).lower() == "true"
        self.lllite_conditioning1 = _Encoder(self.cond_in_channels, int(state["lllite_conditioning1.conv3.weight"]
                                                                        .shape[0]), emb, max(res, default=-1) + 1,
                                             dilations)
        self.places = {}
        for n in names:
            m = MODULE.fullmatch(n)
            if m is None or f"{n}.down.weight" not in state or f"{n}.cond_to_film.weight" not in state:
                raise NodeError(f"{name} holds {n}, which is not an Anima LLLite module (lllite_dit_blocks_<block>_"
                                f"self_attn_q/k/v_proj, cross_attn_q_proj or mlp_layer1 with down / mid / up / "
                                f"cond_to_film): {FIX}")
            hidden, dim = state[f"{n}.down.weight"].shape
            self.add_module(n, _Film(int(dim), emb, int(hidden)))
            self.places[n] = (int(m.group(1)), m.group(2))
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise NodeError(f"the tensors of {name} do not fit an Anima LLLite net ("
                            f"{str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}): {FIX}") from None
        self.dims = {int(state[f"{n}.down.weight"].shape[1]) for n in names}
        self.requires_grad_(False).eval()


def build(state: dict, metadata: dict, name: str) -> AnimaLllite:
    """The net of a model_patches/ file. Its sizes are read from the tensors: one lacking, of too few dimensions or a
    number that is none (lllite_conditioning1.resblocks.x, aspp dilations 'a,b') was a traceback; widths said by
    tensors of no values (a (2e9, 0) FiLM layer) asked the allocator for gigabytes before the shapes were compared,
    so the net is counted on the meta device first."""
    from nodes.generate.converters import check_claim
    from nodes.generate.weights import sizes_of
    with sizes_of(name, "an Anima LLLite net"):
        check_claim(lambda: AnimaLllite(state, metadata or {}, name), state, name)
        return AnimaLllite(state, metadata or {}, name)


def _centre_crop(x, height: int, width: int):
    """x [B, C, h, w] cut to the aspect of height x width about its centre, as ComfyUI's common_upscale crops."""
    h, w = x.shape[-2:]
    old, new = w / h, width / height
    # the same margins ComfyUI rounds, so the same pixels are kept
    side = round((w - w * (new / old)) / 2) if old > new else 0
    top = round((h - h * (old / new)) / 2) if old < new else 0
    x = x[..., top:h - top, side:w - side]
    return x


def picture(net: AnimaLllite, image, mask, height: int, width: int):
    """What the encoder reads for a height x width generation: the picture [B, H, W, 3] in [0, 1], centre-cropped to
    the generation's aspect and resized bicubically, in [-1, 1]; for an inpainting file the mask [B, H, W] (1 =
    repaint), cropped alike, resized to the nearest pixel and cut at 0.5, as a fourth channel in [-1, 1] (the
    picture blacked out under it where the file asks)."""
    x = _centre_crop(image[..., :3].movedim(-1, 1).float(), height, width)
    x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1
    if net.cond_in_channels != 4:
        return x
    m = _centre_crop(mask.float().reshape(-1, 1, *mask.shape[-2:]), height, width)
    m = (F.interpolate(m, size=(height, width), mode="nearest-exact") >= 0.5).float()
    if x.shape[0] % m.shape[0]:
        raise NodeError(f"the inpainting mask has {m.shape[0]} frames and the picture {x.shape[0]}: give one mask, "
                        "or one per picture")
    m = m.repeat(x.shape[0] // m.shape[0], 1, 1, 1)
    if net.masked_input:
        x = x * (m < 0.5)
    return torch.cat((x, m * 2 - 1), 1)


def check(net: AnimaLllite, transformer, name: str):
    """Refuse a net another width than this transformer, or with modules for blocks it does not have."""
    width = int(transformer.config.num_attention_heads * transformer.config.attention_head_dim)
    if net.dims != {width}:
        raise NodeError(f"{name} is an Anima LLLite net for a DiT {sorted(net.dims)[0]} wide; this model is {width} "
                        "wide: apply it to Anima (anima-base) or pick a net made for this model")
    blocks = max(b for b, _ in net.places.values()) + 1
    if blocks > len(transformer.transformer_blocks):
        raise NodeError(f"{name} steers {blocks} DiT blocks; this model has {len(transformer.transformer_blocks)}: "
                        "apply it to Anima (anima-base)")


def steer(transformer, net: AnimaLllite, cond, strength: float) -> list:
    """Lay the net on the transformer: forward pre-hooks adding each module's steer to what its projection reads,
    with cond [B, tokens, E] (encoder(picture)). Returns the hook handles (remove them to take the net off)."""
    handles = []
    for n, (block, target) in net.places.items():
        part, proj = PLACES[target]
        where = getattr(transformer.transformer_blocks[block], part)
        if proj is not None:
            where = getattr(where, proj)
        film = getattr(net, n)

        def hook(module, args, film=film):
            if strength == 0:
                return None
            x = args[0]
            if x.shape[1] != cond.shape[1]:
                raise NodeError(f"the Anima LLLite control gives {cond.shape[1]} tokens and the model reads "
                                f"{x.shape[1]}: the picture was prepared for another size")
            return (film(x, cond.to(x.dtype), strength),) + tuple(args[1:])
        handles.append(where.register_forward_pre_hook(hook))
    return handles


def encoded(control, height: int, width: int, device, dtype):
    """A control's embeddings for a height x width generation (the encoder run once per size, kept in its cache)."""
    key = (height, width, str(device), str(dtype))
    if key not in control.cache:
        net = control.net
        image = torch.from_numpy(control.frames).float() / 255.0
        mask = None if control.keep is None else 1.0 - torch.from_numpy(control.keep).float()
        net.to(device, dtype)       # run in the transformer's dtype, as ComfyUI casts the net's weights to its input
        control.cache.clear()       # one size at a time: a new size replaces the last
        control.cache[key] = net.lllite_conditioning1(picture(net, image, mask, height, width).to(device, dtype))
    return control.cache[key]


def laid(transformer, controls, height: int, width: int, sigma: float, level_at):
    """Within: the model's LLLite controls that steer at noise level `sigma` (control.active's window test, ComfyUI's
    sigma_end <= sigma <= sigma_start) laid on the transformer for a height x width generation."""
    from nodes.generate.control import active
    return steering(transformer, active(controls, sigma, level_at), height, width)


@contextmanager
def steering(transformer, controls, height: int, width: int):
    """Within: these LLLite controls (the sampler's active ones) laid on the transformer for a height x width
    generation."""
    p = next(transformer.parameters())
    handles = []
    try:
        for c in controls:
            handles += steer(transformer, c.net, encoded(c, height, width, p.device, p.dtype), c.strength)
        yield
    finally:
        for h in handles:
            h.remove()
