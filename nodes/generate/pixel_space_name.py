"""The name pixel_space: load.vae's entry for a model that samples pictures themselves (Chroma Radiance, PixelDiT,
HiDream-O1), as ComfyUI's VAELoader lists it. Kept apart from the adapter, without torch, because load.vae's file
locator asks it when the node registry loads, and the engine and CLI start without torch."""
from __future__ import annotations

from pathlib import Path

NAME = "pixel_space"


def is_pixel_space(name: str) -> bool:
    """Whether load.vae's name is pixel_space (the engine hands a path param resolved against the workflow's
    folder: /its/folder/pixel_space, which is no file)."""
    return Path(name).name == NAME and not Path(name).exists()
