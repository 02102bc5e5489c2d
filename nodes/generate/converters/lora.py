"""LoRA layouts diffusers does not read itself: AnimateDiff's original motion LoRAs
(`animatediff_motion_lora/v2_lora_PanLeft.ckpt`: `...temporal_transformer...attention_blocks.0.processor.
to_q_lora.down.weight`), renamed to the PEFT names of diffusers' UNetMotionModel. ComfyUI and kohya
layouts of SD and Wan LoRAs are read by diffusers' own `load_lora_weights` converters."""
from __future__ import annotations

import re
from typing import Dict

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


def lora_state(path) -> Dict[str, object]:
    """A LoRA file's tensors in a layout `load_lora_weights` reads."""
    from nodes.generate.weights import load_weights
    state = load_weights(path)
    return motion_lora_to_diffusers(state) if is_original_motion_lora(state) else state
