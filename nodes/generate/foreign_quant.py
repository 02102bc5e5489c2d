"""Quantised layouts only their own CUDA kernels run: bitsandbytes' 4-bit (NF4 / FP4: Forge's and lllyasviel's
flux1-dev-bnb-nf4, stored as packed bytes with weight.absmax / weight.quant_map / weight.quant_state.
bitsandbytes__nf4) and LLM.int8 (int8 rows with weight.SCB), and nunchaku's SVDQuant (int4 or fp4 qweight with
wscales, smooth_factor and a low-rank proj_down / proj_up branch). Kinograph reads none of them: their bytes are
not a matrix, and taken as one they fail later on shapes, or worse run. Named here, with the file to get instead,
for the loaders (weights.load_weights) and kinograph info (detect)."""
from __future__ import annotations

from typing import Iterable, Optional

# Files that exist: city96's GGUF repositories hold Q8_0, Q6_K and Q4_K_S (his FLUX.1 ones no Q4_K_M); Comfy-Org's
# fp8 files are named fp8 (flux1-dev-fp8) or fp8_scaled (the later models, text encoders).
_INSTEAD = ("Kinograph does not run it; get the same model as a GGUF (city96's Q8_0, Q6_K, or Q4_K_S at about a "
            "4-bit file's size: flux1-dev-Q4_K_S.gguf for FLUX.1 [dev]) or as an fp8 / fp8_scaled or bf16 "
            "safetensors (ComfyUI's flux1-dev-fp8)")


def foreign_quant(names: Iterable[str]) -> Optional[str]:
    """What the file is and what to get instead, if its tensor names are one of those layouts; else None."""
    for name in names:
        if ".quant_state.bitsandbytes__" in name:
            kind = name.rsplit("bitsandbytes__", 1)[1].upper()
            return f"a bitsandbytes {kind} quantised model (packed 4-bit weights, {name}); {_INSTEAD}"
        if name.endswith(".SCB"):
            return f"a bitsandbytes LLM.int8 quantised model (int8 rows with their scales, {name}); {_INSTEAD}"
        if name.endswith(".wscales"):
            return (f"a nunchaku SVDQuant model (4-bit qweight with wscales and a low-rank branch, {name}), which "
                    f"needs nunchaku's CUDA kernels (ComfyUI-nunchaku); {_INSTEAD}")
    return None
