"""Which IP-Adapter a file holds, from its tensor names and shapes alone: load.ipadapter (reading the tensors) and
`kinograph info` (reading only the header) ask the same questions here, so both name a file alike.

h94's files hold `image_proj.*` (the projection: plain `proj` + `norm`; plus: a Resampler with `latents`; full face:
an MLP `proj.0` / `proj.2` / `proj.3`) and `ip_adapter.{1,3,5...}.to_k_ip / to_v_ip` (one pair per cross-attention
layer: 16 for SD 1.5 and AnimateDiff, 70 for SDXL). XLabs' FLUX.1 one holds `ip_adapter_proj_model.*` and
`double_blocks.N.processor.ip_adapter_double_stream_k_proj / _v_proj`."""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

Shape = Tuple[int, ...]

FACEID = ("it reads a face identity from InsightFace (a separate face-recognition model, with a LoRA of its own), "
          "which Kinograph does not run. Use ip-adapter-plus-face (PLUS FACE) with a crop of the face instead")
KOLORS = "the Kolors IP-Adapter, for Kwai's Kolors model, which Kinograph does not run"
# The base model an adapter's count of cross-attention layers fits.
BASES = {16: "SD 1.5", 70: "SDXL"}
# The CLIP vision model by the width of the features a kind reads: plain, CLIP's projected (pooled) image embedding;
# plus and full face, its penultimate hidden states.
ENCODERS = {("plain", 1024): "ViT-H", ("plain", 1280): "ViT-bigG", ("plus", 1280): "ViT-H",
            ("plus", 1664): "ViT-bigG", ("full", 1280): "ViT-H", ("full", 1664): "ViT-bigG"}
TITLES = {"plain": "IP-Adapter", "plus": "IP-Adapter plus (or plus face)", "full": "IP-Adapter full face"}


def parts(names: Dict[str, object]) -> Tuple[Dict[str, object], Dict[str, object]]:
    """(image_proj.*, ip_adapter.*) of a file's tensors (or shapes), without the prefixes."""
    return ({k[len("image_proj."):]: v for k, v in names.items() if k.startswith("image_proj.")},
            {k[len("ip_adapter."):]: v for k, v in names.items() if k.startswith("ip_adapter.")})


def is_flux(names) -> bool:
    """XLabs' FLUX.1 IP-Adapter (x-flux-comfyui's LoadFluxIPAdapter)."""
    return any(k.startswith("ip_adapter_proj_model.") or k.startswith("double_blocks.") and
               "ip_adapter_double_stream" in k for k in names)


def refusal(proj: Dict[str, Shape], ip: Dict[str, Shape], name: str) -> Optional[str]:
    """Why this IP-Adapter variant cannot run here, by name (None: it can); `proj` / `ip`: shapes of parts()."""
    if "0.to_q_lora.down.weight" in ip or "perceiver_resampler.proj_in.weight" in proj or \
            ("proj.2.weight" in proj and "proj.3.weight" not in proj):
        return f"{name} is an IP-Adapter FaceID model: {FACEID}"
    out = proj.get("layers.0.0.to_out.weight")
    if out is not None and int(out[0]) == 2048:
        return f"{name} is {KOLORS}"
    return None


def kind(proj: Dict[str, object]) -> Optional[str]:
    """plain, plus or full (face) by the projection's keys; None for a projection no h94 file has."""
    return "full" if "proj.3.weight" in proj else "plus" if "latents" in proj else "plain" if "proj.weight" in proj \
        else None


def layer_numbers(ip: Dict[str, object]) -> Optional[List[int]]:
    """The cross-attention layers' numbers (1, 3, 5 ...), None unless each has its to_k_ip and to_v_ip."""
    numbers = sorted(int(m.group(1)) for k in ip for m in [re.match(r"^(\d+)\.to_k_ip\.weight$", k)] if m)
    if not numbers or numbers != list(range(1, 2 * len(numbers), 2)) or \
            any(f"{n}.to_v_ip.weight" not in ip for n in numbers):
        return None
    return numbers


def features(projection: str, proj: Dict[str, Shape]) -> Optional[int]:
    """The width of CLIP vision features the projection reads."""
    key = {"plain": "proj.weight", "plus": "proj_in.weight", "full": "proj.0.weight"}[projection]
    shape = proj.get(key)
    return int(shape[-1]) if shape else None


def describe(shapes: Dict[str, Shape], name: str = "this file") -> Optional[Dict[str, object]]:
    """What an IP-Adapter file is, from its header: {kind, base (SD 1.5 / SDXL / FLUX.1 / None), encoder, title,
    refusal}; None when it is no IP-Adapter."""
    if is_flux(shapes):
        return {"kind": "flux", "base": "FLUX.1", "encoder": "ViT-L", "title": "XLabs FLUX.1 IP-Adapter",
                "refusal": None}
    proj, ip = parts(shapes)
    if not proj or not ip:
        return None
    why = refusal(proj, ip, name)
    if KOLORS in (why or ""):
        return {"kind": "kolors", "base": None, "encoder": None, "title": "Kolors IP-Adapter", "refusal": why}
    if why:
        # FaceID's own LoRA keys sit beside its to_k_ip / to_v_ip pairs, which still count the base's layers.
        base = BASES.get(sum(bool(re.match(r"^\d+\.to_k_ip\.weight$", k)) for k in ip))
        return {"kind": "faceid", "base": base, "encoder": None, "title": "IP-Adapter FaceID", "refusal": why}
    k, numbers = kind(proj), layer_numbers(ip)
    if k is None or numbers is None:
        return {"kind": "", "base": None, "encoder": None, "title": "IP-Adapter",
                "refusal": f"{name} holds an IP-Adapter layout Kinograph does not know (image_proj keys "
                           f"{sorted(proj)[:4]}, {len(ip)} ip_adapter tensors)"}
    base, encoder = BASES.get(len(numbers)), ENCODERS.get((k, features(k, proj)))
    title = f"{TITLES[k]}, {base or f'{len(numbers)} cross-attention layers'}" + (f" ({encoder})" if encoder else "")
    return {"kind": k, "base": base, "encoder": encoder, "title": title, "refusal": None}
