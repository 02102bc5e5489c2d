"""SeedVR2's NaDiT (nodes/generate/seedvr2_dit.py) against ComfyUI's published comfy/ldm/seedvr/model.py, written out
below in its own way (flattened sequences, window index permutations, text repeated into every window and averaged
back, AdaSingle's cache), on tiny random weights in the 3B's and 7B's key layouts; the timestep's sinusoid is
diffusers' get_timestep_embedding (flip_sin_to_cos=False, downscale_freq_shift=0, as ComfyUI calls it)."""
from __future__ import annotations

import math
from itertools import chain

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from graph_engine import NodeError

# ---------------------------------------------------------------- ComfyUI's NaDiT, written out -----------------------


def ref_rms(x, w=None, eps=1e-5):
    return F.rms_norm(x, (x.shape[-1],), w, eps)


def ref_windows(size, nwin, shifted):
    t, h, w = size
    rnt, rnh, rnw = nwin
    scale = math.sqrt(45 * 80 / (h * w))
    rh, rw = round(h * scale), round(w * scale)
    wh, ww = math.ceil(rh / rnh), math.ceil(rw / rnw)
    wt = math.ceil(min(t, 30) / rnt)
    if not shifted:
        nt, nh, nw = math.ceil(t / wt), math.ceil(h / wh), math.ceil(w / ww)
        return [(slice(it * wt, min((it + 1) * wt, t)), slice(ih * wh, min((ih + 1) * wh, h)),
                 slice(iw * ww, min((iw + 1) * ww, w)))
                for iw in range(nw) if min((iw + 1) * ww, w) > iw * ww
                for ih in range(nh) if min((ih + 1) * wh, h) > ih * wh
                for it in range(nt) if min((it + 1) * wt, t) > it * wt]
    st, sh, sw = (0.5 if wt < t else 0, 0.5 if wh < h else 0, 0.5 if ww < w else 0)
    nt, nh, nw = math.ceil((t - st) / wt), math.ceil((h - sh) / wh), math.ceil((w - sw) / ww)
    nt, nh, nw = (nt + 1 if st > 0 else 1, nh + 1 if sh > 0 else 1, nw + 1 if sw > 0 else 1)
    return [(slice(max(int((it - st) * wt), 0), min(int((it - st + 1) * wt), t)),
             slice(max(int((ih - sh) * wh), 0), min(int((ih - sh + 1) * wh), h)),
             slice(max(int((iw - sw) * ww), 0), min(int((iw - sw + 1) * ww), w)))
            for iw in range(nw) if min(int((iw - sw + 1) * ww), w) > max(int((iw - sw) * ww), 0)
            for ih in range(nh) if min(int((ih - sh + 1) * wh), h) > max(int((ih - sh) * wh), 0)
            for it in range(nt) if min(int((it - st + 1) * wt), t) > max(int((it - st) * wt), 0)]


def flatten(hid):
    shape = torch.as_tensor([x.shape[:-1] for x in hid])
    return torch.cat([x.flatten(0, -2) for x in hid]), shape


def unflatten(hid, shape):
    parts = hid.split(shape.prod(-1).tolist())
    return [x.unflatten(0, s.tolist()) for x, s in zip(parts, shape)]


def axial(freqs, dims, pixel):
    """RotaryEmbedding.get_axial_freqs: per axis pos x freqs, each repeated twice (interleaved), concatenated."""
    out = []
    for ind, n in enumerate(dims):
        pos = torch.linspace(-1, 1, steps=n) if pixel else torch.arange(n).float()
        f = torch.einsum("..., f -> ... f", pos, freqs)
        f = f.unsqueeze(-1).expand(*f.shape, 2).flatten(-2)
        idx = [None] * len(dims)
        idx[ind] = slice(None)
        out.append(f[(Ellipsis, *idx, slice(None))])
    return torch.cat(torch.broadcast_tensors(*out), dim=-1)


def rotate_half(x):
    x = x.reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    x1, x2 = x.unbind(-1)
    return torch.stack((-x2, x1), -1).flatten(-2)


def apply_interleaved(freqs, t):
    """_apply_seedvr2_rotary_emb (start 0, scale 1) on t [heads, L, d]."""
    n = freqs.shape[-1]
    mid = t[..., :n]
    mid = mid * freqs.cos() + rotate_half(mid) * freqs.sin()
    return torch.cat((mid, t[..., n:]), -1)


def apply_flux(t, angles_interleaved):
    """_to_flux_freqs_cis then flux's apply_rope1 on the first 2k features of t [heads, L, d]."""
    ang = angles_interleaved[..., ::2].float()
    fc = torch.stack([ang.cos(), -ang.sin(), ang.sin(), ang.cos()], -1).reshape(*ang.shape, 2, 2)
    rot = 2 * fc.shape[-3]
    x = t[..., :rot].float().reshape(*t.shape[:-1], -1, 1, 2)
    out = fc[..., 0] * x[..., 0] + fc[..., 1] * x[..., 1]
    return torch.cat((out.reshape(*t.shape[:-1], rot).type_as(t), t[..., rot:]), -1)


class Ref:
    """NaDiT.forward of ComfyUI on a state dict (ComfyUI's names), one conditioning branch."""

    def __init__(self, sd, heads, head_dim, layers, mm_layers, swiglu, seven_b):
        self.sd, self.heads, self.hd, self.layers = sd, heads, head_dim, layers
        self.mm_layers, self.swiglu, self.seven_b = mm_layers, swiglu, seven_b

    def lin(self, name, x):
        return F.linear(x, self.sd[name + ".weight"], self.sd.get(name + ".bias"))

    def mm(self, i, name, shared, vid, txt, fn, vid_only=False):
        if shared:
            return fn(f"blocks.{i}.{name}.all", vid), (txt if vid_only else fn(f"blocks.{i}.{name}.all", txt))
        return fn(f"blocks.{i}.{name}.vid", vid), (txt if vid_only else fn(f"blocks.{i}.{name}.txt", txt))

    def ada(self, prefix, hid, emb, hid_len, layer, mode, cache, tag, idx):
        key = f"emb_repeat_{idx}_{tag}"
        if key not in cache:
            e = emb.reshape(emb.shape[0], -1, 2, 3)[:, :, idx, :]
            cache[key] = torch.repeat_interleave(e, hid_len, dim=0)
        shift_a, scale_a, gate_a = cache[key].unbind(-1)
        if mode == "in":
            return hid * (scale_a + self.sd[f"{prefix}.{layer}_scale"]) + (shift_a + self.sd[f"{prefix}.{layer}_shift"])
        return hid * (gate_a + self.sd[f"{prefix}.{layer}_gate"])

    def attention(self, i, shared, vid, txt, vid_shape, txt_shape, shifted):
        heads, hd = self.heads, self.hd

        def make(x):
            t, h, w, _ = x.shape
            return [x[s] for s in ref_windows((t, h, w), (4, 3, 3), shifted)]
        hid_idx = torch.arange(int(vid_shape.prod(-1).sum())).unsqueeze(-1)
        parts = [make(x) for x in unflatten(hid_idx, vid_shape)]
        counts = [len(p) for p in parts]
        tgt_idx, win_shape = flatten(list(chain(*parts)))
        tgt_idx = tgt_idx.squeeze(-1)
        src_idx = torch.argsort(tgt_idx)
        vid_win = vid[tgt_idx]
        qv, qt = self.mm(i, "attn.proj_qkv", shared, vid_win, txt, self.lin)
        qv = qv.reshape(-1, 3, heads, hd)
        qt = qt.reshape(-1, 3, heads, hd)
        vq, vk, vv = qv.unbind(1)
        tq, tk, tv = qt.unbind(1)
        norm = lambda n, x: ref_rms(x, self.sd[n + ".weight"])  # noqa: E731
        vq, tq = self.mm(i, "attn.norm_q", shared, vq, tq, norm)
        vk, tk = self.mm(i, "attn.norm_k", shared, vk, tk, norm)
        freqs = self.sd[f"blocks.{i}.attn.rope.rope.freqs"].float()
        if self.seven_b:
            plain = torch.linspace(1.0, 256 / 2, freqs.numel()) * math.pi
            f = torch.cat([axial(plain, (a, b, c), True).view(-1, 2 * 3 * freqs.numel())
                           for a, b, c in win_shape.tolist()])
            vq = apply_interleaved(f, vq.transpose(0, 1).float()).transpose(0, 1)
            vk = apply_interleaved(f, vk.transpose(0, 1).float()).transpose(0, 1)
        else:
            l = int(txt_shape[0, 0])
            vf = axial(freqs, (l + int(win_shape[:, 0].max()) + 16, int(win_shape[:, 1].max()) + 4,
                               int(win_shape[:, 2].max()) + 4), False)
            tf = axial(freqs, (l + 16,), False)
            vfl = torch.cat([vf[l:l + a, :b, :c].reshape(-1, vf.size(-1)) for a, b, c in win_shape.tolist()])
            txt_rep = [tq_ for tq_, n in zip(unflatten(tq.flatten(1, 2), txt_shape), counts) for _ in range(n)]
            tq_r = torch.cat(txt_rep).reshape(-1, heads, hd)
            txt_rep = [tk_ for tk_, n in zip(unflatten(tk.flatten(1, 2), txt_shape), counts) for _ in range(n)]
            tk_r = torch.cat(txt_rep).reshape(-1, heads, hd)
            tfl = torch.cat([tf[:l].repeat(1, 3).reshape(-1, vf.size(-1)) for _ in range(len(win_shape))])
            vq = apply_flux(vq.transpose(0, 1), vfl).transpose(0, 1)
            vk = apply_flux(vk.transpose(0, 1), vfl).transpose(0, 1)
            tq_r = apply_flux(tq_r.transpose(0, 1), tfl).transpose(0, 1)
            tk_r = apply_flux(tk_r.transpose(0, 1), tfl).transpose(0, 1)
            # repeat_concat_idx's txt[t_tgt] reads the first sum(txt_len) rows of the repeated, rotated text
            tq, tk = tq_r[:tq.shape[0]], tk_r[:tk.shape[0]]
        # repeat_concat: each window's video tokens, then its sample's text
        vid_len = win_shape.prod(-1).tolist()
        txt_len = txt_shape.prod(-1).tolist()
        txt_of_win = [n for n, c in zip(txt_len, counts) for _ in range(c)]
        vsplit = [x.split(vid_len) for x in (vq, vk, vv)]
        tsplit = [x.split(txt_len) for x in (tq, tk, tv)]
        sample_of_win = [s for s, c in enumerate(counts) for _ in range(c)]
        outs_v, outs_t = [], [[] for _ in counts]
        for wi, s in enumerate(sample_of_win):
            seq = [torch.cat((vsplit[j][wi], tsplit[j][s]), 0).permute(1, 0, 2)[None] for j in range(3)]
            o = F.scaled_dot_product_attention(*seq)[0].permute(1, 0, 2)
            outs_v.append(o[:vid_len[wi]])
            outs_t[s].append(o[vid_len[wi]:vid_len[wi] + txt_of_win[wi]])
        vid_out = torch.cat(outs_v).flatten(1, 2)[src_idx]
        txt_out = torch.cat([torch.stack(p).mean(0) for p in outs_t]).flatten(1, 2)
        return self.mm(i, "attn.proj_out", shared, vid_out, txt_out, self.lin)

    def mlp(self, name, x):
        if self.swiglu:
            return self.lin(name + ".proj_out", F.silu(self.lin(name + ".proj_in_gate", x)) * self.lin(name + ".proj_in", x))
        return self.lin(name + ".proj_out", F.gelu(self.lin(name + ".proj_in", x), approximate="tanh"))

    def __call__(self, x, cond, timestep, context):
        from diffusers.models.embeddings import get_timestep_embedding
        x, cond = x.movedim(1, -1), cond.movedim(1, -1)
        txt, txt_shape = flatten(list(context))
        vid, vid_shape = flatten(list(x))
        c, _ = flatten(list(cond))
        vid = torch.cat([vid, c], -1)
        txt = self.lin("txt_in", txt)
        parts = []
        for v in unflatten(vid, vid_shape):
            T, H, W, ch = v.shape
            parts.append(v.view(T, 1, H // 2, 2, W // 2, 2, ch).permute(0, 2, 4, 1, 3, 5, 6)
                         .reshape(T, H // 2, W // 2, 4 * ch))
        vid, vid_shape = flatten(parts)
        vid = self.lin("vid_in.proj", vid)
        e = get_timestep_embedding(timestep, 256, flip_sin_to_cos=False, downscale_freq_shift=0)
        e = self.lin("emb_in.proj_out", F.silu(self.lin("emb_in.proj_hid", F.silu(self.lin("emb_in.proj_in", e)))))
        cache = {}
        vlen, tlen = vid_shape.prod(-1), txt_shape.prod(-1)
        for i in range(self.layers):
            shared = not i < self.mm_layers
            last = i == self.layers - 1 and not self.seven_b
            va, ta = ref_rms(vid), ref_rms(txt)
            va, ta = self._ada(i, shared, va, ta, e, vlen, tlen, "attn", "in", cache, last)
            va, ta = self.attention(i, shared, va, ta, vid_shape, txt_shape, i % 2 == 1)
            va, ta = self._ada(i, shared, va, ta, e, vlen, tlen, "attn", "out", cache, last)
            va, ta = va + vid, ta + txt
            vm, tm = ref_rms(va), (ta if last else ref_rms(ta))
            vm, tm = self._ada(i, shared, vm, tm, e, vlen, tlen, "mlp", "in", cache, last)
            vm, tm = self.mm(i, "mlp", shared, vm, tm, self.mlp, vid_only=last)
            vm, tm = self._ada(i, shared, vm, tm, e, vlen, tlen, "mlp", "out", cache, last)
            vid, txt = vm + va, tm + ta
        if "vid_out_norm.weight" in self.sd:
            vid = ref_rms(vid, self.sd["vid_out_norm.weight"])
            vid = self.ada("vid_out_ada", vid, e, vlen, "out", "in", cache, "vid", 0)
        vid = self.lin("vid_out.proj", vid)
        out = []
        for v in unflatten(vid, vid_shape):
            T, H, W, ch = v.shape
            c = ch // 4
            out.append(v.view(T, H, W, 1, 2, 2, c).permute(0, 3, 1, 4, 2, 5, 6).reshape(T, H * 2, W * 2, c))
        return torch.stack(out).movedim(-1, 1)

    def _ada(self, i, shared, vid, txt, e, vlen, tlen, layer, mode, cache, vid_only):
        idx = 0 if layer == "attn" else 1
        pv = f"blocks.{i}.ada.{'all' if shared else 'vid'}"
        pt = f"blocks.{i}.ada.{'all' if shared else 'txt'}"
        vid = self.ada(pv, vid, e, vlen, layer, mode, cache, "vid", idx)
        if vid_only:
            return vid, txt
        return vid, self.ada(pt, txt, e, tlen, layer, mode, cache, "txt", idx)


# ---------------------------------------------------------------- tiny files in ComfyUI's layout ---------------------


def load_nadit(path, dtype=torch.float32):
    """The transformer as load.diffusion_model builds it: the file detected, its converter, Kinograph's weights
    loader (fp8 / int8_convrot read into plain matrices)."""
    from nodes.generate.converters import build
    from nodes.generate.detect import detect_file
    from nodes.generate.weights import load_weights
    det = detect_file(path)
    assert (det.role, det.family) == ("diffusion_model", "seedvr2"), det
    return build(det, load_weights(path, dtype), dtype, str(path))

DIM, HEADS, HD, TXT = 64, 2, 32, 48


def tiny_state(seven_b: bool, layers: int = 4, mm_layers: int = 2, rope_freqs: int = 5, seed: int = 0,
               heads: int = HEADS, hd: int = HD):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=0.1: (torch.randn(*s, generator=g) * scale)  # noqa: E731
    sd = {"vid_in.proj.weight": r(DIM, 33 * 4), "vid_in.proj.bias": r(DIM), "txt_in.weight": r(DIM, TXT),
          "txt_in.bias": r(DIM), "emb_in.proj_in.weight": r(DIM, 256), "emb_in.proj_in.bias": r(DIM),
          "emb_in.proj_hid.weight": r(DIM, DIM), "emb_in.proj_hid.bias": r(DIM),
          "emb_in.proj_out.weight": r(6 * DIM, DIM), "emb_in.proj_out.bias": r(6 * DIM),
          "vid_out.proj.weight": r(16 * 4, DIM), "vid_out.proj.bias": r(16 * 4),
          "positive_conditioning": r(7, TXT, scale=1.0), "negative_conditioning": r(9, TXT, scale=1.0)}
    hidden = 256
    for i in range(layers):
        branches = ("vid", "txt") if seven_b or i < mm_layers else ("all",)
        p = f"blocks.{i}."
        sd[p + "attn.rope.rope.freqs"] = (torch.linspace(1.0, 128.0, rope_freqs) * math.pi if seven_b else
                                          1.0 / (10000 ** (torch.arange(0, 2 * rope_freqs, 2).float() / (2 * rope_freqs))))
        for b in branches:
            sd[p + f"attn.proj_qkv.{b}.weight"] = r(3 * heads * hd, DIM)
            sd[p + f"attn.proj_out.{b}.weight"] = r(DIM, heads * hd)
            sd[p + f"attn.proj_out.{b}.bias"] = r(DIM)
            sd[p + f"attn.norm_q.{b}.weight"] = 1 + r(hd)
            sd[p + f"attn.norm_k.{b}.weight"] = 1 + r(hd)
            if seven_b:
                sd[p + f"mlp.{b}.proj_in.weight"], sd[p + f"mlp.{b}.proj_in.bias"] = r(hidden, DIM), r(hidden)
                sd[p + f"mlp.{b}.proj_out.weight"], sd[p + f"mlp.{b}.proj_out.bias"] = r(DIM, hidden), r(DIM)
            else:
                sd[p + f"mlp.{b}.proj_in_gate.weight"] = r(hidden, DIM)
                sd[p + f"mlp.{b}.proj_in.weight"] = r(hidden, DIM)
                sd[p + f"mlp.{b}.proj_out.weight"] = r(DIM, hidden)
            for layer in ("attn", "mlp"):
                sd[p + f"ada.{b}.{layer}_shift"] = r(DIM)
                sd[p + f"ada.{b}.{layer}_scale"] = 1 + r(DIM)
                sd[p + f"ada.{b}.{layer}_gate"] = r(DIM)
    if not seven_b:
        sd["vid_out_norm.weight"] = 1 + r(DIM)
        sd["vid_out_ada.out_shift"], sd["vid_out_ada.out_scale"] = r(DIM), 1 + r(DIM)
    return sd


def run_both(tmp_path, seven_b, shape, timesteps, token_chunk=None, seen=None):
    sd = tiny_state(seven_b)
    path = tmp_path / ("seedvr2_7b_tiny.safetensors" if seven_b else "seedvr2_3b_tiny.safetensors")
    save_file(sd, str(path))
    net = load_nadit(path)
    if token_chunk is not None:
        net.token_chunk = token_chunk
    if seen is not None:        # the rows each feed-forward is handed at once
        for block in net.blocks:
            for mlp in block.mlp.parts():
                mlp.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    g = torch.Generator().manual_seed(1)
    b, t, h, w = shape
    x = torch.randn(b, 16, t, h, w, generator=g)
    cond = torch.cat((torch.randn(b, 16, t, h, w, generator=g), torch.ones(b, 1, t, h, w)), 1)
    ts = torch.tensor(timesteps, dtype=torch.float32)
    text = [sd["positive_conditioning"]] * b
    with torch.no_grad():
        mine = net(x, cond, ts, text)
        ref = Ref(sd, HEADS, HD, 4, 4 if seven_b else 2, not seven_b, seven_b)(x, cond, ts, text)
    return (mine - ref).abs().max().item(), ref.abs().max().item()


@pytest.mark.parametrize("seven_b", [False, True], ids=["3b", "7b"])
def test_nadit_matches_comfyui_time_windows(tmp_path, seven_b):
    """A clip of 5 latent frames (3 time windows, shifted by one frame in odd blocks) midway. One clip a run: in a
    batch, ComfyUI's 3B hands the second clip the first's text queries and keys after the first block (txt[t_tgt] reads the first rows of the
    repeated text), where Kinograph runs each clip on its own."""
    diff, scale = run_both(tmp_path, seven_b, (1, 5, 6, 10), [374.5])
    assert scale > 0.1 and diff < 1e-4, (diff, scale)


@pytest.mark.parametrize("seven_b", [False, True], ids=["3b", "7b"])
def test_nadit_matches_comfyui_space_windows(tmp_path, seven_b):
    """A picture whose patched grid (20 x 30) is cut 2 x 2 (the 720p grid's thirds scaled to it), elsewhere when
    shifted."""
    diff, scale = run_both(tmp_path, seven_b, (1, 1, 40, 60), [1000.0])
    assert scale > 0.1 and diff < 1e-4, (diff, scale)


@pytest.mark.parametrize("seven_b", [False, True], ids=["3b", "7b"])
def test_feed_forward_runs_a_bounded_number_of_tokens_at_once(tmp_path, seven_b):
    """The feed-forward's hidden layer is the widest activation (3B: 4 x 6912 values a token through SwiGLU, 7B:
    2 x 12288): over a whole clip (a 720p clip upscaled 2x, 121 frames: 446k tokens) that was ~25 GB at once, where
    ComfyUI runs its linears in chunks. It runs token_chunk tokens at a time, with the same result."""
    seen = []
    diff, scale = run_both(tmp_path, seven_b, (1, 1, 40, 60), [1000.0], token_chunk=37, seen=seen)
    assert scale > 0.1 and diff < 1e-4, (diff, scale)
    assert seen and max(seen) <= 37, max(seen)


def test_damaged_or_other_files_are_named(tmp_path):
    """A file cut short, one lacking a size-giving tensor, one of other channels: messages naming the file."""
    sd = tiny_state(False)
    del sd["blocks.3.mlp.all.proj_in.weight"]
    path = tmp_path / "seedvr2_3b_cut.safetensors"
    save_file(sd, str(path))
    with pytest.raises(NodeError, match="seedvr2_3b_cut.safetensors .*does not match the expected NaDiT: missing "
                                        r"\['blocks.3.mlp.all.proj_in.weight'\]"):
        load_nadit(path)
    save_file({"vid_in.proj.weight": torch.zeros(64, 132), "emb_in.proj_in.weight": torch.zeros(64, 256)}, str(path))
    with pytest.raises(NodeError, match="seedvr2_3b_cut.safetensors .*lacks the tensor blocks.0.attn"):
        load_nadit(path)
    sd = tiny_state(False)
    sd["vid_in.proj.weight"] = torch.zeros(DIM, 17 * 4)
    save_file(sd, str(path))
    with pytest.raises(NodeError, match="seedvr2_3b_cut.safetensors: it reads 17 latent channels .*another model's"):
        load_nadit(path)


def test_int8_convrot_file_runs_as_comfyui_dequantises_it(tmp_path):
    """seedvr2_3b_int8_convrot (the templates' file): the tiny 3B's matrices quantised as ComfyUI's int8_convrot
    files hold them (blocks only, as ComfyUI's quantiser leaves the outer layers), run against the reference on the
    published dequantisation of the same file."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import comfy_convrot as cr
    sd = tiny_state(False)
    state = cr.quantise_file_state(sd, 16, prefix="blocks.")
    path = tmp_path / "seedvr2_3b_int8_convrot.safetensors"
    save_file(state, str(path))
    published = {}
    for k, v in state.items():
        if k.endswith((".weight_scale", ".comfy_quant")):
            continue
        if f"{k}_scale" in state:
            s = state[f"{k}_scale"]
            published[k] = (cr.dequantize_int8_convrot_weight(v, s, 16) if v.shape[1] % 16 == 0 else v.float() * s)
        else:
            published[k] = v
    net = load_nadit(path)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 16, 2, 6, 10, generator=g)
    cond = torch.cat((torch.randn(1, 16, 2, 6, 10, generator=g), torch.ones(1, 1, 2, 6, 10)), 1)
    ts = torch.tensor([1000.0])
    with torch.no_grad():
        mine = net(x, cond, ts, [sd["positive_conditioning"]])
        ref = Ref(published, HEADS, HD, 4, 2, True, False)(x, cond, ts, [sd["positive_conditioning"]])
        plain = Ref(sd, HEADS, HD, 4, 2, True, False)(x, cond, ts, [sd["positive_conditioning"]])
    assert float((mine - ref).abs().max()) < 1e-4
    # and within int8's error of the unquantised model
    assert float((mine - plain).abs().max() / plain.abs().max()) < 5e-2


def test_seedvr2_conditioning_imports_as_condition_seedvr2():
    """ComfyUI's SeedVR2Conditioning (model, vae_conditioning -> positive, negative) was reported not mapped."""
    from app.comfyui import import_data
    api = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "seedvr2_3b_int8_convrot.safetensors",
                                                        "weight_dtype": "default"}},
           "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
           "3": {"class_type": "SeedVR2Conditioning", "inputs": {"model": ["1", 0], "vae_conditioning": ["2", 0]}}}
    result = import_data(api)
    entry = result.report.entries["3"]
    assert entry.status == "exact", entry.why()
    assert "condition.seedvr2" in result.yaml


def test_temporal_chunks_switched_on_say_what_to_do():
    """The video template with its chunking switch on: SeedVR2TemporalChunk / Merge were "no Kinograph equivalent";
    they now say Kinograph restores the clip in one pass and to trim a long clip instead."""
    import json
    from pathlib import Path
    from app.comfyui import import_data
    path = Path(__file__).parent / "data" / "comfyui" / "templates" / "utility_seedvr2_3b_int8_upscale_video.json"
    data = json.loads(path.read_text("utf-8"))
    for n in data["definitions"]["subgraphs"][0]["nodes"]:
        if n["type"] == "PrimitiveBoolean":
            n["widgets_values"] = [True]
    entries = import_data(data).report.entries.values()
    chunks = [e for e in entries if e.class_type.startswith("SeedVR2Temporal")]
    assert len(chunks) == 2
    for e in chunks:
        assert e.status == "unmapped" and "one pass" in e.why() and "trim" in e.why(), e.why()


@pytest.mark.parametrize("seven_b", [False, True], ids=["3b", "7b"])
def test_file_without_rope_buffers_runs_on_comfyuis_own(tmp_path, seven_b):
    """A file saved without the blocks' RoPE frequency buffers (they are computed, not learnt) runs on the ones
    ComfyUI's NaDiT makes: the reference reads those written into its weights."""
    sd = tiny_state(seven_b, rope_freqs=10 if seven_b else 21, heads=1, hd=128)     # 126 / 60 features turned
    kept = {k: v for k, v in sd.items() if not k.endswith("rope.rope.freqs")}
    path = tmp_path / "seedvr2_norope.safetensors"
    save_file(kept, str(path))
    net = load_nadit(path)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 16, 3, 6, 10, generator=g)
    cond = torch.cat((torch.randn(1, 16, 3, 6, 10, generator=g), torch.ones(1, 1, 3, 6, 10)), 1)
    with torch.no_grad():
        mine = net(x, cond, torch.tensor([500.0]), [sd["positive_conditioning"]])
        ref = Ref(sd, 1, 128, 4, 4 if seven_b else 2, not seven_b, seven_b)(
            x, cond, torch.tensor([500.0]), [sd["positive_conditioning"]])
    assert float((mine - ref).abs().max()) < 1e-4


def test_sampling_a_longer_latent_than_the_conditioned_clip_is_refused():
    """The clip's latent is read beside the noise frame for frame; sampling a latent of more frames than
    condition.seedvr2 read (another encode of the clip) repeated its last frame under the extra ones, with no word
    (the frame indices were clamped before the shapes were compared)."""
    from nodes.generate.adapters.seedvr2_denoise import SeedVR2Denoising
    from nodes.generate.latent import Conditioning
    cond = Conditioning("seedvr2", torch.zeros(1, 7, TXT), extra={"concat": torch.zeros(1, 17, 2, 4, 4)})
    with pytest.raises(NodeError, match="condition.seedvr2's clip latent has 2 latent frames"):
        SeedVR2Denoising().conditioning_inputs(None, [cond], [0, 1, 2], 1, "cpu", torch.float32)
    # a context window inside the clip reads its own frames
    got = SeedVR2Denoising().conditioning_inputs(None, [cond], [1], 1, "cpu", torch.float32)
    assert got["concat"].shape == (1, 17, 1, 4, 4)
