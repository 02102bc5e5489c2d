"""Per-family adapters: the few lines that differ between model families (loading, text encoding,
one denoiser call, VAE scaling). Everything else (sampling, guidance, nodes) is shared."""
from __future__ import annotations

import importlib

_MODULES = {"sd": "sd", "sdxl": "sdxl", "flux": "flux", "sd3": "sd3", "animatediff": "sd", "svd": "svd", "wan": "wan", "ltx": "ltx", "cogvideox": "cogvideox",
            "hunyuan": "hunyuan", "hunyuan15": "hunyuan15", "kandinsky5": "kandinsky5", "kandinsky5image": "kandinsky5", "ltx2": "ltx2", "qwenimage": "qwenimage", "qwenimage21": "qwenimage21", "chroma": "chroma", "mini": "mini",
            "flux2": "flux2", "zimage": "zimage", "hidream": "hidream", "hidream_o1": "hidream_o1", "longcat": "longcat", "ovis": "ovis", "krea2": "krea2", "ideogram4": "ideogram4", "minimax_h3": "minimax_h3", "flux3": "flux3", "boogu": "boogu", "joyimage": "joyimage", "fibo2": "fibo2", "mage_flow": "mage_flow", "omnigen2": "omnigen2", "anima": "anima", "seedvr2": "seedvr2", "lens": "lens", "pixeldit": "pixeldit", "newbie": "newbie", "hunyuan3d": "hunyuan3d", "trellis2": "trellis2", "triposplat": "triposplat",
            "pixel_space": "pixel_space"}


def get_adapter(family: str):
    from nodes.generate.families import family as family_spec
    family_spec(family)
    mod = importlib.import_module(f"nodes.generate.adapters.{_MODULES[family]}")
    return mod.ADAPTERS[family]
