"""ComfyUI's Mage-Flow written out as plain torch over the files' own tensors, for the tests to judge Kinograph's
modules by: comfy/ldm/mage_flow/model.py (MageFlowTransformer2DModel over comfy/ldm/qwen_image/model.py's
QwenImageTransformerBlock and LastLayer, comfy/ldm/flux's EmbedND rotations, model_base.MageFlow's bf16 timestep),
comfy/ldm/mage_flow/vae.py (MageVAE's encode and decode at t = 0) and comfy/text_encoders/mage_flow.py's templates and
dropped prefix. Nothing here imports Kinograph."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

T2I = ("<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, spatial "
       "relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n"
       "<|im_start|>assistant\n")
EDIT = ("<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
        "background), then explain how the user's text instruction should alter or modify the image. Generate a new "
        "image that meets the user's requirements while maintaining consistency with the original input where "
        "appropriate.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n")
VISION = "<|vision_start|><|image_pad|><|vision_end|>"


def _lin(sd, name, x):
    return F.linear(x, sd[name + ".weight"], sd.get(name + ".bias"))


def _rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _ln(x, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], eps=eps)


# --- the transformer --------------------------------------------------------------------------------------------
def _rope(ids, axes):
    """EmbedND: ids [N, 3] -> rotation matrices [N, head / 2, 2, 2]."""
    out = []
    for i, d in enumerate(axes):
        omega = 1.0 / 10000 ** torch.linspace(0, (d - 2) / d, d // 2, dtype=torch.float64)
        a = ids[:, i:i + 1].double() * omega[None]
        out.append(torch.stack([a.cos(), -a.sin(), a.sin(), a.cos()], -1).reshape(-1, d // 2, 2, 2))
    return torch.cat(out, 1).float()


def _rotate(x, f):
    """apply_rotary_emb: x [B, S, H, D] by f [S, D / 2, 2, 2]."""
    t = x.reshape(*x.shape[:-1], -1, 1, 2)
    f = f[None, :, None]
    return (f[..., 0] * t[..., 0] + f[..., 1] * t[..., 1]).reshape(x.shape)


def _ids(h, w, index):
    """process_img's positions: plane `index`, rows and columns offset by (n - n // 2)."""
    ids = torch.zeros(h, w, 3)
    ids[..., 0] = index
    ids[..., 1] += torch.arange(h)[:, None] - (h - h // 2)
    ids[..., 2] += torch.arange(w)[None, :] - (w - w // 2)
    return ids.reshape(-1, 3)


def _block(sd, p, img, txt, temb, rope, heads):
    def mod(name):
        return [m.chunk(3, -1) for m in _lin(sd, p + name, F.silu(temb)).chunk(2, -1)]
    (ish1, isc1, ig1), (ish2, isc2, ig2) = mod("img_mod.1")
    (tsh1, tsc1, tg1), (tsh2, tsc2, tg2) = mod("txt_mod.1")
    im = _ln(img) * (1 + isc1[:, None]) + ish1[:, None]
    tm = _ln(txt) * (1 + tsc1[:, None]) + tsh1[:, None]
    a = p + "attn."

    def heads_of(name, x, norm=None):
        y = _lin(sd, a + name, x).unflatten(-1, (heads, -1))
        return y if norm is None else _rms(y, sd[a + norm + ".weight"])
    q = torch.cat([heads_of("add_q_proj", tm, "norm_added_q"), heads_of("to_q", im, "norm_q")], 1)
    k = torch.cat([heads_of("add_k_proj", tm, "norm_added_k"), heads_of("to_k", im, "norm_k")], 1)
    v = torch.cat([heads_of("add_v_proj", tm), heads_of("to_v", im)], 1)
    q, k = _rotate(q, rope), _rotate(k, rope)
    w = torch.softmax(torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1]), -1)
    o = torch.einsum("bhqk,bkhd->bqhd", w, v).flatten(2)
    n = txt.shape[1]
    img = img + ig1[:, None] * _lin(sd, a + "to_out.0", o[:, n:])
    txt = txt + tg1[:, None] * _lin(sd, a + "to_add_out", o[:, :n])

    def mlp(name, x):
        return _lin(sd, p + name + ".net.2", F.gelu(_lin(sd, p + name + ".net.0.proj", x), approximate="tanh"))
    img = img + ig2[:, None] * mlp("img_mlp", _ln(img) * (1 + isc2[:, None]) + ish2[:, None])
    txt = txt + tg2[:, None] * mlp("txt_mlp", _ln(txt) * (1 + tsc2[:, None]) + tsh2[:, None])
    return img, txt


def transformer(sd, x, sigma, context, refs=()):
    """MageFlowTransformer2DModel._forward on x [B, C, h, w] at levels sigma [B] with the prompt context [B, L, D]
    and the reference latents; sd holds the file's tensors (float, prefix removed)."""
    head = sd["transformer_blocks.0.attn.norm_q.weight"].shape[0]
    heads = sd["img_in.weight"].shape[0] // head
    t_axis = head // 8
    axes = [t_axis, (head - t_axis) // 2, (head - t_axis) // 2]
    b, c, h, w = x.shape
    parts = [x, *refs]
    img = torch.cat([p.movedim(1, -1).reshape(b, -1, c) for p in parts], 1)
    ids = torch.cat([_ids(p.shape[2], p.shape[3], i) for i, p in enumerate(parts)])
    ids = torch.cat([torch.zeros(context.shape[1], 3), ids])          # text unrotated
    rope = _rope(ids, axes)
    img = _lin(sd, "img_in", img)
    txt = _lin(sd, "txt_in", _rms(context, sd["txt_norm.weight"]))
    t = sigma.to(torch.bfloat16).float()                               # model_base.MageFlow.process_timestep
    table = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32) / 128)
    emb = 1000.0 * (t[:, None] * table[None])
    emb = torch.cat([emb.sin(), emb.cos()], -1)
    emb = torch.cat([emb[:, 128:], emb[:, :128]], -1)                  # flip_sin_to_cos
    temb = _lin(sd, "time_text_embed.timestep_embedder.linear_2",
                F.silu(_lin(sd, "time_text_embed.timestep_embedder.linear_1", emb)))
    layers = len({k.split(".")[1] for k in sd if k.startswith("transformer_blocks.")})
    for i in range(layers):
        img, txt = _block(sd, f"transformer_blocks.{i}.", img, txt, temb, rope, heads)
    scale, shift = _lin(sd, "norm_out.linear", F.silu(temb)).chunk(2, 1)
    out = _lin(sd, "proj_out", _ln(img) * (1 + scale[:, None]) + shift[:, None])[:, :h * w]
    return out.reshape(b, h, w, -1).movedim(-1, 1)


# --- the VAE -----------------------------------------------------------------------------------------------------
def _conv(sd, name, x, **kw):
    return F.conv2d(x, sd[name + ".weight"], sd.get(name + ".bias"), **kw)


def _ln2d(x, sd=None, name=None):
    w = None if sd is None else sd[name + ".weight"]
    b = None if sd is None else sd[name + ".bias"]
    return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], w, b, 1e-6).permute(0, 3, 1, 2)


def _t_embed(sd, p, t):
    freqs = torch.exp(-math.log(10000) * torch.arange(0, 128, dtype=torch.float32) / 128)
    args = t[:, None].float() * freqs[None]
    return _lin(sd, p + "mlp.2", F.silu(_lin(sd, p + "mlp.0", torch.cat([args.cos(), args.sin()], -1))))


def _dico(sd, p, inp, c=None):
    """DiCoBlock (c given) or EncoderDiCoBlock."""
    def ca(x):
        return x * torch.sigmoid(_conv(sd, p + "ca.1", x.mean((2, 3), keepdim=True)))
    if c is None:
        x = _ln2d(inp, sd, p + "norm1")
    else:
        m = _lin(sd, p + "adaLN_modulation.1", F.silu(c)).chunk(6, 1)
        x = _ln2d(inp) * (1 + m[1][..., None, None]) + m[0][..., None, None]
    d = inp.shape[1]
    x = F.gelu(_conv(sd, p + "conv2", _conv(sd, p + "conv1", x), padding=1, groups=d))
    x = _conv(sd, p + "conv3", ca(x))
    x = inp + (x if c is None else m[2][..., None, None] * x)
    y = _ln2d(x, sd, p + "norm2") if c is None else _ln2d(x) * (1 + m[4][..., None, None]) + m[3][..., None, None]
    y = _conv(sd, p + "conv5", F.gelu(_conv(sd, p + "conv4", y)))
    return x + (y if c is None else m[5][..., None, None] * y)


def _count(sd, p):
    return len({k[len(p):].split(".")[0] for k in sd if k.startswith(p)})


def vae_encode(sd, pictures):
    """MageVAE.encode: pictures [B, 3, H, W] in -1..1 -> the posterior mean [B, 128, H/16, W/16]."""
    p = "student.dconv_encoder."
    b, _, h, w = pictures.shape
    z_ch = sd[p + "proj_out.weight"].shape[0] // 2
    cond = _conv(sd, p + "patch_cond_embed", pictures, stride=16)
    for i in range(_count(sd, p + "head_blocks.")):
        cond = _dico(sd, f"{p}head_blocks.{i}.", cond)
    z_t = torch.zeros(b, z_ch, h // 16, w // 16)
    s = _conv(sd, p + "fuse_proj", torch.cat([_conv(sd, p + "proj_down", cond), _conv(sd, p + "z_proj", z_t)], 1))
    c = _t_embed(sd, p + "t_embedder.", torch.zeros(b))
    for i in range(_count(sd, p + "blocks.")):
        s = _dico(sd, f"{p}blocks.{i}.", s, c)
    return _conv(sd, p + "proj_out", _ln2d(s, sd, p + "norm_out"))[:, :z_ch]


def _gn(sd, name, x):
    return F.group_norm(x, 32, sd[name + ".weight"], sd[name + ".bias"], 1e-6)


def _attn_block(sd, p, x):
    h_ = _gn(sd, p + "norm", x)
    q, k, v = (_conv(sd, p + n, h_) for n in "qkv")
    d = 32
    b, c, H, W = q.shape
    ph, pw = (d - H % d) % d, (d - W % d) % d
    if ph or pw:
        q, k, v = (F.pad(t, (0, pw, 0, ph), mode="replicate") for t in (q, k, v))
    Hp, Wp = q.shape[2:]
    nh, nw = Hp // d, Wp // d

    def to_patches(t):
        return t.reshape(b, c, nh, d, nw, d).permute(0, 2, 4, 1, 3, 5).reshape(b * nh * nw, c, d * d)
    q, k, v = to_patches(q), to_patches(k), to_patches(v)
    w_ = F.softmax(torch.bmm(q.permute(0, 2, 1), k) * c ** -0.5, dim=2).permute(0, 2, 1)
    h_ = torch.bmm(v, w_).reshape(b, nh, nw, c, d, d).permute(0, 3, 1, 4, 2, 5).reshape(b, c, Hp, Wp)[:, :, :H, :W]
    return x + _conv(sd, p + "proj_out", h_)


def _resnet(sd, p, x):
    h = _conv(sd, p + "conv1", F.silu(_gn(sd, p + "norm1", x)), padding=1)
    return x + _conv(sd, p + "conv2", F.silu(_gn(sd, p + "norm2", h)), padding=1)


def vae_decode(sd, z):
    """MageVAE.decode: latents [B, 128, h, w] -> pictures [B, 3, 16h, 16w]."""
    p = "pipeline."
    y = p + "y_embedder.decoder."
    x = _conv(sd, y + "conv_in", z, padding=1)
    for i in range(5):
        x = _resnet(sd, f"{y}block.{i}.", x) if i % 2 == 0 else _attn_block(sd, f"{y}block.{i}.", x)
    cond = _conv(sd, y + "conv_out", F.silu(_gn(sd, y + "norm_out", x)), padding=1)
    b, _, lh, lw = z.shape
    ps, H, W = 16, lh * 16, lw * 16
    hidden = sd[p + "t_embedder.mlp.2.weight"].shape[0]
    noise = torch.zeros(b, 3, H, W)
    c = _t_embed(sd, p + "t_embedder.", torch.zeros(b))
    s = _conv(sd, p + "s_embedder.proj2", torch.cat([_conv(sd, p + "s_embedder.proj1", noise, stride=ps), cond], 1))
    for i in range(_count(sd, p + "blocks.")):
        s = _dico(sd, f"{p}blocks.{i}.", s, c)
    length = lh * lw
    s = s.permute(0, 2, 3, 1).reshape(-1, hidden)
    x = F.unfold(noise, kernel_size=ps, stride=ps)
    x = torch.cat([x, _conv(sd, p + "y_embedder_x", cond).flatten(2)], 1)
    x = x.reshape(b, -1, ps ** 2, length).permute(0, 3, 2, 1).flatten(0, 1)
    freqs_n = 8
    pos = torch.linspace(0, 1, ps)
    pos_y, pos_x = torch.meshgrid(pos, pos, indexing="ij")
    freqs = torch.linspace(0, freqs_n, freqs_n)
    fx, fy = freqs[None, :, None], freqs[None, None, :]
    dct = (torch.cos(pos_x.reshape(-1, 1, 1) * fx * torch.pi) * torch.cos(pos_y.reshape(-1, 1, 1) * fy * torch.pi)
           * (1 + fx * fy) ** -1).view(1, -1, freqs_n ** 2)
    x = _lin(sd, p + "x_embedder.embedder.0", torch.cat([x, dct.expand(x.shape[0], -1, -1)], -1))
    d = p + "dec_net."
    x = _lin(sd, d + "input_proj", x)
    cc = _lin(sd, d + "cond_embed", s).reshape(s.shape[0], ps ** 2, -1)
    for i in range(_count(sd, d + "res_blocks.")):
        r = f"{d}res_blocks.{i}."
        shift, scale, gate = _lin(sd, r + "adaLN_modulation.1", F.silu(cc)).chunk(3, -1)
        hh = F.layer_norm(x, x.shape[-1:], sd[r + "in_ln.weight"], sd[r + "in_ln.bias"], 1e-6) * (1 + scale) + shift
        x = x + gate * _lin(sd, r + "mlp.2", F.silu(_lin(sd, r + "mlp.0", hh)))
    x = _lin(sd, p + "final_layer.linear", _rms(x, sd[p + "final_layer.norm.weight"]))
    x = x.transpose(1, 2).reshape(b, length, -1)
    return F.fold(x.transpose(1, 2).contiguous(), (H, W), kernel_size=ps, stride=ps)


# --- sampling ----------------------------------------------------------------------------------------------------
def simple_sigmas(steps: int, shift: float = 6.0) -> list:
    """KSampler's simple schedule on ModelSamplingDiscreteFlow(shift, multiplier 1): 1000 shifted levels, every
    1000 / steps-th from the top, then 0."""
    levels = [shift * t / (1 + (shift - 1) * t) for t in (i / 1000 for i in range(1, 1001))]
    return [levels[-(1 + int(x * 1000 / steps))] for x in range(steps)] + [0.0]


def sample(velocity, shape, seed: int, steps: int, cfg: float):
    """KSampler euler from seeded noise (ComfyUI's prepare_noise), velocity(x, sigma, positive: bool) the model's
    output; cfg 1 reads the positive alone."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    sig = simple_sigmas(steps)
    for s, nxt in zip(sig, sig[1:]):
        v = velocity(x, s, True)
        if cfg != 1:
            u = velocity(x, s, False)
            v = u + cfg * (v - u)
        x = x + v * (nxt - s)
    return x
