"""What a ComfyUI output slot became, shared by the converter and every pack's handlers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

LOADERS = ("load.model", "load.sd", "load.animatediff", "load.diffusion_model")


@dataclass
class Out:
    """What a ComfyUI output slot became: a Kinograph output port, and settings that travel with it to
    whoever consumes it (clip skip, distilled guidance, a folded node's whole settings)."""
    port: Optional[Tuple[str, str]] = None
    attrs: Dict[str, Any] = field(default_factory=dict)
