"""What the loader nodes do: load a family through the model manager and hand out its parts."""
from __future__ import annotations

from pathlib import Path

from graph_engine import NodeError

MINI_DEFAULT = Path(__file__).resolve().parents[2] / "resources" / "models" / "kinograph-mini"


def load_parts(ctx, family: str, path: str, *, dtype: str = "auto", offload: str = "auto",
               motion_lora: str = "", motion_lora_strength: float = 1.0, **opts) -> dict:
    """{"model", "vae", "text_encoder", "image_encoder"} handles (None for parts the family lacks)."""
    from nodes.generate.model_manager import detect_family, manager_for, resolve_model_path
    if family == "mini" and not path:
        path = str(MINI_DEFAULT)
    if family == "auto":
        found, why = detect_family(resolve_model_path(path, "checkpoints", "model"))
        if found in (None, "motion"):
            raise NodeError(f"cannot tell which model family {path} is ({why}); use the family's own loader "
                            "(load.animatediff, load.wan, ...)")
        family = found
    mm = manager_for(ctx)
    handle = mm.load(family, path, dtype=dtype, device=ctx.device, offload=offload,
                     **{k: v for k, v in opts.items() if v})
    if motion_lora:
        handle = handle.with_lora(str(resolve_model_path(motion_lora, "loras", "motion LoRA")), motion_lora_strength)
    parts = mm.components(handle)
    ctx.report(family=family, model=handle.path, dtype=handle.dtype)
    return {"model": handle, **parts}


def add_lora(model, path: str, strength: float):
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import resolve_model_path
    p = resolve_model_path(path, "loras", "LoRA")
    if not p.is_file():
        raise NodeError(f"{p} is a folder; a LoRA is one .safetensors file")
    if detect_file(p).role != "lora":
        raise NodeError(f"{p} holds no LoRA tensors (no lora_A/lora_B or lora_down/lora_up weights)")
    if not hasattr(model.pipe, "load_lora_weights"):
        raise NodeError(f"{model.family} models take no LoRAs in Kinograph")
    return model.with_lora(str(p), strength)
