"""LoRA layouts diffusers does not read itself: AnimateDiff's original motion LoRAs
(`animatediff_motion_lora/v2_lora_PanLeft.ckpt`: `...temporal_transformer...attention_blocks.0.processor.
to_q_lora.down.weight`), renamed to the PEFT names of diffusers' UNetMotionModel. ComfyUI and kohya
layouts of SD and Wan LoRAs are read by diffusers' own `load_lora_weights` converters."""
from __future__ import annotations

import logging
import math
import re
from typing import Callable, Dict, Optional, Tuple

from graph_engine import NodeError

log = logging.getLogger("kinograph.models")       # the editor's Log shows it (app.editor.model_notes)

_ORIGINAL_MOTION = re.compile(r"\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")


def is_original_motion_lora(state: Dict[str, object]) -> bool:
    return any("motion_modules" in k and _ORIGINAL_MOTION.search(k) for k in state)


def motion_lora_to_diffusers(state: Dict[str, object]) -> Dict[str, object]:
    """Original AnimateDiff motion LoRA -> `unet.<module>.lora_A/B.weight` as diffusers loads it."""
    out = {}
    for k, v in state.items():
        m = _ORIGINAL_MOTION.search(k)
        if not m:
            continue
        base = (k[: m.start()].replace(".temporal_transformer", "").replace(".attention_blocks.0", ".attn1")
                .replace(".attention_blocks.1", ".attn2"))
        proj = "to_out.0" if m.group(1) == "to_out" else m.group(1)
        out[f"unet.{base}.{proj}.lora_{'A' if m.group(2) == 'down' else 'B'}.weight"] = v
    return out


def lora_state(path, base_weight: Optional[Callable[[str], object]] = None, flux: bool = False,
               unet_layers: Optional[Tuple[int, bool]] = None, strength: float = 1.0) -> Dict[str, object]:
    """A LoRA file's tensors in a layout `load_lora_weights` reads. `base_weight`: see expand_lycoris. `flux`: for a
    FLUX.1 pipeline (Black Forest Labs' layer names are HunyuanVideo's too where they say linear1, so the pipeline
    decides). `unet_layers`: for an SD / SDXL UNet, (its resnets a level, whether it has SDXL's two text encoders),
    to read ComfyUI's own LDM names (comfy_ldm_lora_to_kohya). `strength`: the one the LoRA is applied at, for the
    layers whose change ComfyUI does not scale linearly (OFT, BOFT: see weight_relative_delta)."""
    from nodes.generate.weights import load_weights
    state = load_weights(path)
    check_finite(state, getattr(path, "name", str(path)))
    check_ranks(state, getattr(path, "name", str(path)))
    if is_original_motion_lora(state):
        return motion_lora_to_diffusers(state)
    if flux and is_bfl_flux_lora(state):
        state = bfl_flux_lora_to_kohya(state)
    if unet_layers and is_comfy_ldm_lora(state):
        state = comfy_ldm_lora_to_kohya(state, *unet_layers, getattr(path, "name", str(path)))
    return expand_lycoris(state, base_weight, getattr(path, "name", str(path)), strength) \
        if needs_expanding(state) else state


_BFL_FLUX = re.compile(r"^(?:diffusion_model\.|model\.diffusion_model\.|transformer\.)?((?:double|single)_blocks\..+|"
                       r"(?:img_in|txt_in|time_in|vector_in|guidance_in|final_layer)\..*)\.lora_(A|B|down|up)\.weight$")


_PAIRS = (("lora_down.weight", "lora_up.weight"), ("lora_A.weight", "lora_B.weight"),
          ("lora.down.weight", "lora.up.weight"))


def check_finite(state: Dict[str, object], name: str) -> None:
    """Refuse a file with NaN or inf in a tensor (a damaged download): added to the model as it is (ComfyUI does
    too), it makes every weight of its layer NaN, and the picture black or noise without a word."""
    import torch
    for key, v in state.items():
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            continue
        # fp8 has no isfinite kernel
        finite = torch.isfinite(v if v.element_size() > 1 else v.float())
        if not bool(finite.all()):
            what = "NaN" if bool(torch.isnan(v.float()).any()) else "inf"
            raise NodeError(f"{name}: its tensor {key} holds {int((~finite).sum()):,} {what} value(s), which would "
                            "make the layer's weights NaN. The file is damaged: get it again from where it was "
                            "published")


def check_ranks(state: Dict[str, object], name: str) -> None:
    """Refuse a layer whose rank is larger than the layer is wide. diffusers makes each layer's two matrices at
    the model's width times the rank the file gives, before comparing them with the file's: a text-encoder layer
    of rank 20,000,000 (down 20,000,000 x 1, an 80 MB file with its up matrix) asked for 4 GB on a tiny SD, and a
    4 MB file of rank 1,000,000 would ask 15 GB of CLIP-L's fc1. A change of a layer w wide has rank at most w, so
    no trainer writes more."""
    for key, down in state.items():
        pair = next(((d, u) for d, u in _PAIRS if key.endswith(d)), None)
        up = state.get(key[: -len(pair[0])] + pair[1]) if pair else None
        if up is None or getattr(down, "dim", lambda: 0)() < 2 or up.dim() < 2:
            continue
        # diffusers takes the rank from the up matrix, the matrix it makes from the down one
        rank, width = max(int(down.shape[0]), int(up.shape[1])), max(math.prod(down.shape[1:]), int(up.shape[0]))
        if rank > width or min(int(down.shape[0]), int(up.shape[1])) == 0:
            raise NodeError(f"{name}: layer {key[: -len(pair[0])].rstrip('.')} has rank {rank:,} (a down matrix of "
                            f"shape {list(down.shape)}, an up matrix of {list(up.shape)}) but is {width:,} wide, and "
                            "a LoRA's rank is at least 1 and at most its layer's width. The file is damaged or made "
                            "to fill memory: get it again from where it was published")


def is_bfl_flux_lora(state: Dict[str, object]) -> bool:
    """A FLUX.1 LoRA in Black Forest Labs' layer names with PEFT's lora_A/B (ComfyUI's own LoRA saves: diffusion_model.
    double_blocks.0.img_attn.qkv.lora_A.weight), which diffusers' Flux loader does not read."""
    return any(_BFL_FLUX.match(k) for k in state)


def bfl_flux_lora_to_kohya(state: Dict[str, object]) -> Dict[str, object]:
    """The same LoRA under kohya's names (lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight), which diffusers'
    kohya Flux converter maps onto its transformer (splitting the fused qkv and linear1 layers)."""
    out = {}
    for k, v in state.items():
        m = _BFL_FLUX.match(k)
        if m is None:
            bare = re.sub(r"^(?:diffusion_model\.|model\.diffusion_model\.|transformer\.)", "", k)
            if bare.endswith(".alpha"):
                out["lora_unet_" + bare[:-len(".alpha")].replace(".", "_") + ".alpha"] = v
            else:
                out[k] = v
            continue
        kind = "lora_down" if m.group(2) in ("A", "down") else "lora_up"
        out[f"lora_unet_{m.group(1).replace('.', '_')}.{kind}.weight"] = v
    return out


_LDM_UNET = ("diffusion_model.input_blocks.", "diffusion_model.middle_block.", "diffusion_model.output_blocks.")


def is_comfy_ldm_lora(state: Dict[str, object]) -> bool:
    """A LoRA ComfyUI saved for SD / SDXL (LoraSave, SaveLora): the UNet's layers under their LDM names
    (diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.lora_up.weight), which ComfyUI reads as the
    model's own keys and diffusers not at all."""
    return any(k.startswith(_LDM_UNET) for k in state)


def comfy_ldm_lora_to_kohya(state: Dict[str, object], layers: int, sdxl: bool,
                            name: str = "this LoRA") -> Dict[str, object]:
    """The same LoRA under kohya's names (lora_unet_down_blocks_0_attentions_0_..., lora_te_ / lora_te1_ / lora_te2_
    for ComfyUI's text_encoders.clip_l / clip_h / clip_g.transformer.), which diffusers' kohya converter reads with their
    alphas and LyCORIS parts. `layers`: the UNet's resnets a level (the LDM block numbers count them). Two keys
    renamed to one (input_blocks.1.9 and 1.1: ComfyUI reads the model's own keys, leaves out the one that is no layer
    of the model and applies the other) are refused, naming both: the last one read replaced the other silently."""
    from nodes.generate.converters.ldm import resnet_names, unet_name
    # SD 2.x's OpenCLIP ViT-H is ComfyUI's clip_h (sd2_clip.SD2ClipModel): the pipeline's one text encoder
    encoders = {"clip_l": "lora_te1_" if sdxl else "lora_te_", "clip_g": "lora_te2_", "clip_h": "lora_te_"}
    out: Dict[str, object] = {}
    source: Dict[str, str] = {}
    embeddings = set()
    for k, v in state.items():
        base, part = _split(k)
        if base is None:
            out[k] = v
            continue
        ldm = base
        if base.startswith("text_encoders.") and base.endswith(("token_embedding", "position_embedding")):
            embeddings.add(base)
            continue
        if base.startswith("diffusion_model.label_emb."):
            # SDXL's added-conditioning MLP under its LDM name, which diffusers' kohya reader maps itself; its
            # diffusers name (add_embedding.linear_1 / 2) it reads as one add.embedding.linear for both
            base = "lora_unet_" + base[len("diffusion_model."):].replace(".", "_")
        elif base.startswith("diffusion_model."):
            base = "lora_unet_" + unet_name(base[len("diffusion_model."):] + ".", layers, resnet_names,
                                            lambda rest: rest).rstrip(".").replace(".", "_")
        elif base.startswith("text_encoders."):
            encoder, _, rest = base[len("text_encoders."):].partition(".")
            if encoder in encoders:
                base = encoders[encoder] + rest.removeprefix("transformer.").replace(".", "_")
        if source.setdefault(base, ldm) != ldm:
            raise NodeError(f"{name}: its layers {source[base]} and {ldm} both name the model's layer {base}; one "
                            "of them is no layer of this model (ComfyUI leaves such a layer out, \"lora key not "
                            "loaded\"), so the file was saved from another model or is damaged. Use a LoRA trained "
                            "for this model")
        out[f"{base}.{part}"] = v
    if embeddings:
        # ComfyUI applies them (model_lora_keys_clip maps every text_encoders.<key>); diffusers' kohya reader has
        # no LoRA of an embedding, and transformers dropped them unnamed.
        log.warning("%s: its text encoder's embedding layers %s are left out (Kinograph applies no LoRA to an "
                    "embedding; ComfyUI does), so the prompt is encoded as without them", name,
                    ", ".join(sorted(embeddings)))
    return out


# -- LyCORIS layouts (LoHa, LoKr, full diff) and DoRA ------------------------------------------------
# diffusers reads kohya LoRA and LoCon (lora_down/lora_up) but stops at LyCORIS's other layouts with "The following
# keys have not been correctly renamed" and drops a DoRA's dora_scale (a plain LoRA's result, silently). Each such
# layer's weight change is computed here as ComfyUI computes it (comfy/weight_adapter: loha, lokr, lora with
# dora_scale, "diff") and written back as an exact LoRA of that change (up @ down == delta, alpha == rank), which
# diffusers loads under the file's own names; strength then scales the change as ComfyUI's does.
_PARTS = (".hada_w1_a", ".hada_w1_b", ".hada_w2_a", ".hada_w2_b", ".hada_t1", ".hada_t2", ".lokr_w1_a", ".lokr_w1_b",
          ".lokr_w2_a", ".lokr_w2_b", ".lokr_w1", ".lokr_w2", ".lokr_t2", ".diff_b", ".diff", ".dora_scale", ".alpha",
          ".lora_down.weight", ".lora_up.weight", ".lora_mid.weight", ".lora_A.weight", ".lora_B.weight",
          ".oft_blocks", ".rescale", ".a1.weight", ".a2.weight", ".b1.weight", ".b2.weight")
_LYCORIS = (".hada_w1_a", ".lokr_w1", ".lokr_w1_a", ".diff", ".dora_scale", ".oft_blocks", ".a1.weight")
# OFT / BOFT rotate the layer's weight and GLoRA multiplies it: their change is computed from the model's weight.
_OF_WEIGHT = ("oft_blocks", "a1.weight")


def _split(key: str):
    for part in _PARTS:
        if key.endswith(part):
            return key[: -len(part)], part[1:]
    return None, None


def turns(names) -> bool:
    """True for a file with OFT / BOFT layers, whose change ComfyUI does not scale linearly with the strength: its
    LoRA is made for one strength."""
    return any(k.endswith(".oft_blocks") for k in names)


def acts_on_weight(names) -> bool:
    """True for a file with OFT / BOFT / GLoRA / DoRA layers, whose change is made from the model's weight: after
    other LoRAs in a chain, from the weight they left (ComfyUI's calculate_weight runs a layer's patches in order)."""
    return any(k.endswith((".oft_blocks", ".a1.weight", ".dora_scale")) for k in names)


def needs_expanding(state: Dict[str, object]) -> bool:
    """True for a file with LoHa, LoKr, full-diff, OFT, BOFT, GLoRA or DoRA layers (which diffusers cannot apply as they are)."""
    return any(k.endswith(_LYCORIS) for k in state)


def _tucker(t, wb, wa):
    import torch
    # contiguous: torch.kron of the permuted view einsum gives raised "view size is not compatible" (Tucker LoKr)
    return torch.einsum("i j k l, j r, i p -> p r k l", t.float(), wb.float(), wa.float()).contiguous()


def delta_shape(layer: Dict[str, object]) -> Tuple[int, ...]:
    """The shape layer_delta's change has, from its tensors' shapes alone: a LoKr's Kronecker product or a LoHa's
    outer products hold the product of their factors' sizes, so a file of a few hundred KB can ask for tens of GB."""
    import torch

    def s(name):
        return tuple(int(d) for d in layer[name].shape)

    def product(a, b):
        return (a[0], b[1]) if len(a) == 2 and len(b) == 2 else None

    def tucker(t, wb, wa):
        return (s(wa)[1], s(wb)[1], *s(t)[2:])
    if "diff" in layer:
        return s("diff")
    if "oft_blocks" in layer:
        blocks = s("oft_blocks")      # OFT: [blocks, size, size]; BOFT: [stages, blocks, size, size]
        return (blocks[-3] * blocks[-1],)
    if "a1.weight" in layer:        # b1 b2 (lycoris' older layout: b2 b1), a convolution's kernel in b2 (b1)
        return (s("b1.weight")[0], *s("b2.weight")[1:]) if s("a1.weight")[1] == s("a2.weight")[0] \
            else (s("b2.weight")[0], *s("b1.weight")[1:])
    if "hada_w1_a" in layer:
        if "hada_t1" in layer:
            m1, m2 = tucker("hada_t1", "hada_w1_b", "hada_w1_a"), tucker("hada_t2", "hada_w2_b", "hada_w2_a")
        else:
            m1, m2 = product(s("hada_w1_a"), s("hada_w1_b")), product(s("hada_w2_a"), s("hada_w2_b"))
        return tuple(torch.broadcast_shapes(m1, m2))
    if "lokr_w1" in layer or "lokr_w1_a" in layer:
        w1 = s("lokr_w1") if "lokr_w1" in layer else product(s("lokr_w1_a"), s("lokr_w1_b"))
        w2 = s("lokr_w2") if "lokr_w2" in layer else tucker("lokr_t2", "lokr_w2_b", "lokr_w2_a") \
            if "lokr_t2" in layer else product(s("lokr_w2_a"), s("lokr_w2_b"))
        if len(w2) == 4:
            w1 = (*w1, 1, 1)
        n = max(len(w1), len(w2))
        w1, w2 = (1,) * (n - len(w1)) + w1, (1,) * (n - len(w2)) + w2
        return tuple(a * b for a, b in zip(w1, w2))
    down = layer.get("lora_down.weight", layer.get("lora_A.weight"))
    up = layer.get("lora_up.weight", layer.get("lora_B.weight"))
    if down is None or up is None:
        raise KeyError(f"no weight change beside its dora_scale ({', '.join(sorted(layer))})")
    if "lora_mid.weight" in layer:
        return (int(up.shape[0]), math.prod(down.shape[1:]), *s("lora_mid.weight")[2:])
    return (int(up.shape[0]), *(int(d) for d in down.shape[1:]))


def layer_delta(layer: Dict[str, object], shape=None):
    """(weight change at strength 1, bias change or None) of one layer's LyCORIS tensors (names without the
    layer's prefix: hada_w1_a, lokr_w1, diff, lora_up.weight...), the maths of ComfyUI's weight adapters. `shape`:
    the model weight's shape, needed to fold a 2-D change back into a convolution kernel. DoRA is not applied here
    (dora_delta does it, with the model's weight)."""
    import torch
    g = {k: v.float() for k, v in layer.items() if hasattr(v, "float")}
    alpha = g.get("alpha")
    if "diff" in g:
        delta = g["diff"]
    elif "hada_w1_a" in g:
        rank = g["hada_w1_b"].shape[0]
        if "hada_t1" in g:
            m1, m2 = _tucker(g["hada_t1"], g["hada_w1_b"], g["hada_w1_a"]), _tucker(g["hada_t2"], g["hada_w2_b"],
                                                                                  g["hada_w2_a"])
        else:
            m1, m2 = g["hada_w1_a"] @ g["hada_w1_b"], g["hada_w2_a"] @ g["hada_w2_b"]
        delta = m1 * m2 * (float(alpha) / rank if alpha is not None else 1.0)
    elif "lokr_w1" in g or "lokr_w1_a" in g:
        rank = None
        w1 = g.get("lokr_w1")
        if w1 is None:
            rank = g["lokr_w1_b"].shape[0]
            w1 = g["lokr_w1_a"] @ g["lokr_w1_b"]
        w2 = g.get("lokr_w2")
        if w2 is None:
            rank = g["lokr_w2_b"].shape[0]
            w2 = (_tucker(g["lokr_t2"], g["lokr_w2_b"], g["lokr_w2_a"]) if "lokr_t2" in g
                  else g["lokr_w2_a"] @ g["lokr_w2_b"])
        if w2.dim() == 4:
            w1 = w1[:, :, None, None]
        delta = torch.kron(w1, w2) * (float(alpha) / rank if alpha is not None and rank else 1.0)
    else:
        down, up = g.get("lora_down.weight", g.get("lora_A.weight")), g.get("lora_up.weight", g.get("lora_B.weight"))
        if down is None or up is None:
            raise KeyError(f"no weight change beside its dora_scale ({', '.join(sorted(g))})")
        rank = down.shape[0]
        if "lora_mid.weight" in g:
            delta = torch.einsum("m n ..., i m, n j -> i j ...", g["lora_mid.weight"], up.flatten(1), down.flatten(1))
        else:
            # LoCon: a k x k down convolution and a 1 x 1 up one compose into one k x k kernel.
            delta = (up.flatten(1) @ down.flatten(1)).reshape(up.shape[0], *down.shape[1:])
        delta = delta * (float(alpha) / rank if alpha is not None else 1.0)
    if shape is not None and tuple(delta.shape) != tuple(shape):
        if delta.numel() != math.prod(int(s) for s in shape):
            raise ValueError(f"its change has shape {list(delta.shape)}, the model's weight {list(shape)}")
        delta = delta.reshape(shape)
    return delta, g.get("diff_b")


def _cayley(blocks, alpha: float):
    """OFT's orthogonal blocks from the stored ones: (I + Q)(I - Q)^-1 of their skew-symmetric part Q, Q scaled down
    to norm alpha where alpha > 0 bounds it (OFT's constraint, not a scale)."""
    import torch
    q = blocks - blocks.transpose(-1, -2)
    if alpha > 0:
        norm = torch.norm(q) + 1e-8
        if norm > alpha:
            q = q * alpha / norm
    eye = torch.eye(blocks.shape[-1])
    return (eye + q) @ (eye - q).inverse()


def weight_relative_delta(layer: Dict[str, object], weight, strength: float = 1.0):
    """The change of a layer whose LyCORIS form acts on the model's weight W, as ComfyUI's comfy/weight_adapter
    computes it, per unit of `strength` (the adapter's weight, set to `strength`, scales it back): OFT (oft_blocks
    [n, b, b]) turns each block of b output channels by an orthogonal matrix R, and ComfyUI scales R - I by the
    strength and the change again (strength squared), leaving `rescale` out; BOFT (oft_blocks [m, n, b, b]) turns
    them by m butterfly stages, each stage's R blended with I by the strength, the turned rows scaled by `rescale`,
    the change by the strength; GLoRA adds W a1 a2 + b1 b2 times alpha / rank (lycoris' older layout: W a2 a1 + b2 b1),
    linear in the strength."""
    import torch
    g = {k: v.float() for k, v in layer.items() if hasattr(v, "float")}
    w = weight.float()
    alpha = g.get("alpha")
    if "oft_blocks" in g:
        # At strength 0 the adapter's weight 0 removes any change: the strength-1 one stands in (no division by 0).
        s = strength or 1.0
        blocks = g["oft_blocks"]
        r = _cayley(blocks, float(alpha) if alpha is not None else 0.0)
        eye = torch.eye(blocks.shape[-1])
        if blocks.dim() == 3:
            n, b = blocks.shape[:2]
            return s * torch.einsum("k n m, k n ... -> k m ...", r - eye,
                                    w.reshape(n, b, *w.shape[1:])).reshape(w.shape)
        b = blocks.shape[-1]
        turned = w
        for i in range(blocks.shape[0]):
            k = 2 ** i * (b // 2)
            turned = turned.unflatten(0, (-1, 2, k)).transpose(1, 2).flatten(0, 2).unflatten(0, (-1, b))
            turned = torch.einsum("b i j, b j ... -> b i ...", r[i] * s + (1 - s) * eye, turned)
            turned = turned.flatten(0, 1).unflatten(0, (-1, k, 2)).transpose(1, 2).flatten(0, 2)
        if "rescale" in g:
            turned = turned * g["rescale"].reshape(-1, *[1] * (w.dim() - 1))
        return turned - w
    names = ("a1.weight", "a2.weight", "b1.weight", "b2.weight")
    # ComfyUI's test of which layout it is (on the stored shapes), where the shapes fit both
    sa1, sa2, sb1, sb2 = (g[n].shape for n in names)
    old = sb2[1] == sb1[0] == sa1[0] == sa2[1]
    if sb2[0] == sb1[1] == sa1[1] == sa2[0] and not (old and sa2[0] == w.shape[0] == w.shape[1]):
        old = False
    a1, a2, b1, b2 = (g[n].flatten(1) for n in names)
    flat = w.flatten(1)
    if old:
        rank, delta = a1.shape[0], (b2 @ b1 + flat @ a2 @ a1).reshape(w.shape)
    else:
        # a convolution's kernel [o, i, k, k] is multiplied on its input channels, as ComfyUI's einsum does
        turned = torch.einsum("o i ..., i j -> o j ...", torch.einsum("o i ..., i j -> o j ...", w, a1), a2)
        rank, delta = a2.shape[0], turned + (b1 @ b2).reshape(w.shape)
    return delta * (float(alpha) / rank if alpha is not None else 1.0)


def dora_delta(weight, delta, dora_scale):
    """DoRA's change of `weight` at strength 1: the LoRA-changed weight renormed to the stored magnitudes,
    m (W + dW) / ||W + dW||, minus W; the norm is taken along the axis dora_scale runs on (per output channel for
    a [out, 1, ...] scale, per input channel for a [1, in, ...] one), of the changed weight on both axes as the
    DoRA paper and LyCORIS (which trains these files) define it. (ComfyUI takes the output-axis norm of the
    unchanged W instead.)"""
    w = weight.float()
    calc = w + delta
    m = dora_scale.float()
    if m.shape[0] == w.shape[0] and m.shape[0] != 1:
        norm = calc.reshape(calc.shape[0], -1).norm(dim=1).reshape(calc.shape[0], *[1] * (calc.dim() - 1))
    else:
        norm = calc.transpose(0, 1).reshape(calc.shape[1], -1).norm(dim=1)
        norm = norm.reshape(calc.shape[1], *[1] * (calc.dim() - 1)).transpose(0, 1)
    return calc * (m.reshape(norm.shape) / norm) - w


def _as_lora(base: str, delta, kohya: bool) -> Dict[str, object]:
    """An exact LoRA of `delta` (up @ down == delta) named like the file's other layers, alpha = rank."""
    import torch
    if delta.dim() > 2:
        out = delta.shape[0]
        down, up = delta, torch.eye(out)[:, :, None, None]
    elif delta.shape[0] <= delta.shape[1]:
        down, up = delta, torch.eye(delta.shape[0])
    else:
        down, up = torch.eye(delta.shape[1]), delta
    rank = down.shape[0]
    if kohya:
        return {f"{base}.lora_down.weight": down.contiguous(), f"{base}.lora_up.weight": up.contiguous(),
                f"{base}.alpha": torch.tensor(float(rank))}
    # No alpha here: diffusers' HunyuanVideo reader stops at one ("chunk expects at least a 1-dimensional
    # tensor"), and without it each layer's scale is 1 (alpha = its rank).
    return {f"{base}.lora_A.weight": down.contiguous(), f"{base}.lora_B.weight": up.contiguous()}


def _check_expansion(layers: Dict[str, Dict[str, object]], base_weight, name: str) -> None:
    """Refuse, before any is computed, a layer change of another size than the model's layer, and changes that
    together take more memory than is free (each is held whole until diffusers has read the file; a layer the
    model lacks, or that base_weight cannot find, has no weight to be compared with)."""
    from nodes.common.stream import _size, free_memory
    total = 0
    for base, layer in layers.items():
        if not any("." + p in _LYCORIS for p in layer):
            continue
        try:
            shape = delta_shape(layer)
        except (KeyError, ValueError, RuntimeError, IndexError, TypeError) as exc:
            raise NodeError(f"{name}: layer {base} is not a LoRA layer Kinograph can read ({exc}); the file is "
                            "damaged or of another kind") from None
        weight = base_weight(base) if base_weight is not None else None
        if weight is not None and len(shape) > 1 and math.prod(shape) != weight.numel():
            raise NodeError(f"{name}: layer {base} does not fit the model (its change has shape {list(shape)}, the "
                            f"model's weight {list(weight.shape)}); the LoRA is for another model (family, version "
                            "or size)")
        total += math.prod(shape)
    free = free_memory()
    if free is not None and 4 * total > free:
        raise NodeError(f"{name}'s LoHa/LoKr layers multiply out to {total:,} values ({_size(4 * total)}), more than "
                        f"the {_size(free)} this machine has free; a LoRA changes a model's layers, which hold far "
                        "fewer. The file is damaged or made to fill memory: get it again from where it was published")


def expand_lycoris(state: Dict[str, object], base_weight: Optional[Callable[[str], object]] = None,
                   name: str = "this LoRA", strength: float = 1.0) -> Dict[str, object]:
    """The file's LoHa/LoKr/diff/DoRA layers as exact LoRAs (others kept as they are). `base_weight(layer name)`:
    the model weight that layer changes, or None; needed for DoRA and for convolution layers stored flat.
    `strength`: see lora_state."""
    layers: Dict[str, Dict[str, object]] = {}
    out = {}
    for k, v in state.items():
        base, part = _split(k)
        if base is None:
            out[k] = v
        else:
            layers.setdefault(base, {})[part] = v
    # One naming for the whole file: diffusers' converters pick lora_A or lora_down for all of a file's layers.
    kohya = any(k.startswith(("lora_unet_", "lora_te")) or ".lora_down." in k for k in state)
    comfy = any(k.startswith("diffusion_model.") for k in state)
    _check_expansion(layers, base_weight, name)
    for base, layer in layers.items():
        if not any("." + p in _LYCORIS for p in layer):
            out.update({f"{base}.{p}": v for p, v in layer.items()})
            continue
        weight = base_weight(base) if base_weight is not None else None
        if layer.get("diff") is not None and layer["diff"].dim() == 1:
            # A norm layer's weight change (Wan distillation LoRAs carry them, zero): no LoRA can hold one.
            if layer["diff"].abs().max() > 0 or (layer.get("diff_b") is not None and layer["diff_b"].abs().max() > 0):
                raise NodeError(f"{name} changes the norm layer {base} ({base}.diff), which Kinograph cannot apply "
                                "as a LoRA; ComfyUI can")
            continue
        if any(p in layer for p in _OF_WEIGHT):
            kind = "an OFT / BOFT" if "oft_blocks" in layer else "a GLoRA"
            if weight is None and comfy:
                raise NodeError(f"{name} is {kind} LoRA (LyCORIS), whose change is made from the model's own "
                                f"weight; Kinograph finds that weight under kohya's or diffusers' layer names, not "
                                f"ComfyUI's diffusion_model. names ({base}) yet. Use a version of the file saved "
                                "in kohya's names, or a LoRA / LoCon / LoHa / LoKr version")
            if weight is None:
                raise NodeError(f"{name} is {kind} LoRA (LyCORIS), whose change is made from the model's own "
                                f"weight, and its layer {base} has no matching layer in this model; it is for another "
                                "model (family, version or size)")
            try:
                out.update(_as_lora(base, weight_relative_delta(layer, weight, strength), kohya))
            except (KeyError, ValueError, RuntimeError, IndexError) as exc:
                raise NodeError(f"{name}: {kind} layer {base} does not fit the model ({exc}); the LoRA is for "
                                "another model (family, version or size)") from None
            continue
        try:
            delta, bias = layer_delta(layer, None if weight is None else weight.shape)
        except (KeyError, ValueError, RuntimeError, IndexError, ZeroDivisionError) as exc:
            raise NodeError(f"{name}: layer {base} does not fit the model ({exc}); the LoRA is for another "
                            "model (family, version or size)") from None
        if bias is not None and bias.abs().max() > 0:
            if not comfy:
                raise NodeError(f"{name} changes layer biases ({base}.diff_b), which Kinograph applies only to "
                                "LoRAs in ComfyUI's diffusion_model. naming (Wan); use a version of the file without "
                                "bias changes")
            out[f"{base}.diff_b"] = bias            # diffusers' Wan reader makes it the LoRA's lora_B bias
        if "dora_scale" in layer:
            if weight is None:
                raise NodeError(f"{name} is a DoRA (dora_scale) whose layer {base} has no matching layer in the "
                                "model; it is for another model (family, version or size)")
            delta = dora_delta(weight, delta, layer["dora_scale"])
        out.update(_as_lora(base, delta, kohya))
    return out


def kohya_modules(pipe) -> Dict[str, object]:
    """kohya's layer names (lora_unet_down_blocks_0_..., lora_te_text_model_...) -> the pipeline's modules, as
    kohya sd-scripts names them: the diffusers module path with dots as underscores; and diffusers' own names
    (unet.down_blocks.0...., transformer.blocks.0.attn1.to_q), so that a LoHa/LoKr layer under those is compared
    with its layer too (it was held only to the memory free: a change of a few GB was computed before diffusers
    refused it)."""
    out = {}
    for prefix, part in (("lora_unet_", "unet"), ("lora_transformer_", "transformer"), ("lora_te_", "text_encoder"),
                         ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2")):
        model = getattr(pipe, part, None)
        if model is None:
            continue
        for n, m in model.named_modules():
            w = getattr(m, "weight", None)
            if w is not None and n:
                out[prefix + n.replace(".", "_")] = m
                out[f"{part}.{n}"] = m
                if part.startswith("text_encoder") and not n.startswith("text_model."):
                    # transformers 5's CLIPTextModel has no text_model level; kohya's names keep it.
                    out[prefix + "text_model_" + n.replace(".", "_")] = m
    return out


# -- ComfyUI's fused layers (Qwen-Image 2.1, Z-Image) ---------------------------------------------------
_LORA_PREFIX = re.compile(r"^(?:diffusion_model\.|model\.diffusion_model\.|transformer\.|lora_unet_|"
                            r"lora_transformer_)")
_LORA_PART = re.compile(r"\.(lora_A\.weight|lora_B\.weight|lora_down\.weight|lora_up\.weight|alpha)$")


# ComfyUI's layers that diffusers splits or names otherwise: {ComfyUI's layer name (its end): the diffusers layers its
# output rows go to, in order}. Qwen-Image 2.1's SwiGLU gate and up projections are one img_mlp.gate_up (gate rows
# first); Z-Image's attention q, k, v one attention.qkv, and its one patch size's embedder and final layer are not
# wrapped in all_*.2-1.
FUSED_LAYERS = {
    "QwenImage21Pipeline": {"img_mlp.gate_up": ("img_mlp.gate_layer", "img_mlp.proj")},
    "ZImagePipeline": {"attention.qkv": ("attention.to_q", "attention.to_k", "attention.to_v"),
                       "attention.out": ("attention.to_out.0",), "x_embedder": ("all_x_embedder.2-1",),
                       "final_layer.linear": ("all_final_layer.2-1.linear",),
                       "final_layer.adaLN_modulation.1": ("all_final_layer.2-1.adaLN_modulation.1",)}}


def fused_lora(state: Dict[str, object], layers, fused: Dict[str, Tuple[str, ...]],
               renamed: Optional[Dict[str, str]] = None) -> Dict[str, object]:
    """A LoRA of a Qwen-Image 2.1 or Z-Image transformer under the names their pipelines' load_lora_weights reads
    unconverted (transformer.<layer>.lora_A/B.weight). `layers`: the transformer's module names; `fused`: the
    pipeline's FUSED_LAYERS.

    A LoRA made on ComfyUI's model changes ComfyUI's fused layers (Qwen-Image 2.1's img_mlp.gate_up, Z-Image's
    attention.qkv), which diffusers ignored with a warning. Its down matrix is shared and its up matrix's rows split
    between the diffusers layers, which is the same change. kohya's names (lora_unet_
    transformer_blocks_0_img_mlp_gate_layer) are module paths with dots as underscores; diffusers' Qwen-Image
    converter reads them as Qwen-Image 1.x's and mangled 2.1's gate_layer and txt_in.in_layer. A kohya alpha is
    folded into the up matrix (scale alpha / rank), as diffusers applies it. `renamed`: the model's layers under the
    names LoRAs are made on, where those are another model's (Anima's MiniTrainDIT names): {that name: the layer}."""
    renamed = renamed or {}
    layers = set(layers) | set(renamed)
    layers |= {n[: len(n) - len(parts[0])] + name for name, parts in fused.items() for n in layers
               if n == parts[0] or n.endswith("." + parts[0])}
    flat = {n.replace(".", "_"): n for n in layers}
    groups: Dict[str, Dict[str, object]] = {}
    out = {}
    for k, v in state.items():
        part = _LORA_PART.search(k)
        bare = _LORA_PREFIX.sub("", k[: part.start()]) if part else None
        layer = bare if bare in layers else flat.get(bare or "")
        if layer is None:
            out[k] = v
            continue
        kind = {"lora_A.weight": "down", "lora_down.weight": "down", "lora_B.weight": "up",
                "lora_up.weight": "up"}.get(part.group(1), "alpha")
        groups.setdefault(layer, {})[kind] = v
    for layer, g in groups.items():
        if "down" not in g or "up" not in g:
            raise NodeError(f"the LoRA's layer {layer} has no {'up' if 'down' in g else 'down'} matrix: the file is "
                            "incomplete; download it again")
        up = g["up"] * (float(g["alpha"]) / g["down"].shape[0]) if "alpha" in g else g["up"]
        name = next((f for f in fused if layer == f or layer.endswith("." + f)), None)
        pieces = [(layer, up)] if name is None else \
            [(layer[: len(layer) - len(name)] + p, b) for p, b in zip(fused[name], up.chunk(len(fused[name])))]
        for name, b in pieces:
            name = renamed.get(name, name)
            out[f"transformer.{name}.lora_A.weight"] = g["down"]
            out[f"transformer.{name}.lora_B.weight"] = b.contiguous()
    return out


# -- Anima (Cosmos-Predict2's MiniTrainDIT) ------------------------------------------------------------------------
# ComfyUI's model (comfy/ldm/cosmos/predict2.py) names -> diffusers' CosmosTransformer3DModel's, as diffusers'
# Cosmos single-file converter renames them. LoRAs are made on ComfyUI's names (diffusion_model.blocks.0.self_attn.
# q_proj, kohya's lora_unet_blocks_0_self_attn_q_proj), which comfy/lora.py's model_lora_keys_unet maps onto the
# model's weights; the LLM adapter's (llm_adapter.blocks.0.cross_attn.q_proj) are the same in both.
_MINITRAIN_NAMES = (("x_embedder.proj.1", "patch_embed.proj"), ("t_embedder.1", "time_embed.t_embedder"),
                    ("t_embedding_norm", "time_embed.norm"), ("blocks.", "transformer_blocks."),
                    ("adaln_modulation_self_attn.", "norm1.linear_"), ("adaln_modulation_cross_attn.", "norm2.linear_"),
                    ("adaln_modulation_mlp.", "norm3.linear_"), ("self_attn.", "attn1."), ("cross_attn.", "attn2."),
                    ("q_proj", "to_q"), ("k_proj", "to_k"), ("v_proj", "to_v"), ("output_proj", "to_out.0"),
                    ("mlp.layer1", "ff.net.0.proj"), ("mlp.layer2", "ff.net.2"),
                    ("final_layer.adaln_modulation.", "norm_out.linear_"), ("final_layer.linear", "proj_out"))


def minitrain_names(transformer) -> Dict[str, str]:
    """{ComfyUI's MiniTrainDIT name: the diffusers layer} of every weighted layer of an Anima transformer."""
    out = {}
    for name, module in transformer.named_modules():
        if getattr(module, "weight", None) is None or not name:
            continue
        comfy = name
        if not name.startswith("llm_adapter."):
            for a, b in reversed(_MINITRAIN_NAMES):
                comfy = comfy.replace(b, a)
        out[comfy] = name
    return out


def anima_lora(state: Dict[str, object], transformer, name: str) -> Dict[str, object]:
    """An Anima LoRA in the keys ComfyUI reads for it (diffusion_model.<layer>, kohya's lora_unet_<layer with dots as
    underscores>, diffusers' transformer.<layer>; the LLM adapter's layers too) as diffusers loads it onto Kinograph's
    CosmosTransformer3DModel. Keys of no layer of this model, or of a layer of another shape, are refused with the
    count that matched: ComfyUI only warns "lora key not loaded" and gives a picture without them."""
    renamed = minitrain_names(transformer)
    modules = dict(transformer.named_modules())
    # Text-encoder layers (lora_te_): the templates apply Anima LoRAs with LoraLoaderModelOnly, which leaves Qwen3 as
    # it is, and ComfyUI maps no kohya names onto Qwen3.
    state = {k: v for k, v in state.items() if not k.startswith(("lora_te_", "lora_te1_", "text_encoders."))}
    out = fused_lora(state, renamed.values(), {}, renamed)
    layers = {k[len("transformer."):].rsplit(".lora_", 1)[0] for k in out if k.startswith("transformer.")
              and k.endswith((".lora_A.weight", ".lora_B.weight"))}
    unknown = {_LORA_PART.sub("", k) for k in out if not k.startswith("transformer.")}
    unknown |= {f"transformer.{layer}" for layer in layers if getattr(modules.get(layer), "weight", None) is None}
    misfit = []
    for layer in sorted(layers - {u[len("transformer."):] for u in unknown}):
        w, down, up = modules[layer].weight, out[f"transformer.{layer}.lora_A.weight"], \
            out[f"transformer.{layer}.lora_B.weight"]
        if w.dim() != 2 or down.dim() != 2 or tuple(up.shape) != (w.shape[0], down.shape[0]) \
                or down.shape[1] != w.shape[1]:
            misfit.append(f"{layer} (the LoRA's {list(up.shape)} x {list(down.shape)}, the model's {list(w.shape)})")
    unknown = sorted(unknown)
    total = len(layers | {u for u in unknown if not u.startswith("transformer.")})
    if unknown or misfit:
        what = (f"{len(unknown)} name no layer of this Anima has ({', '.join(unknown[:3])}"
                f"{' ...' if len(unknown) > 3 else ''})" if unknown else "")
        shapes = f"{len(misfit)} of another shape ({'; '.join(misfit[:2])})" if misfit else ""
        raise NodeError(f"{name}: {total - len(unknown) - len(misfit)} of its {total} layers match this Anima model; "
                        f"{' and '.join(x for x in (what, shapes) if x)}. It is a LoRA for another model (family, "
                        "version or size); use one trained for Anima (anima-base / anima-preview)")
    return out
