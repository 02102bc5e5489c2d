"""Handles to loaded models: what MODEL, VAE, TEXT_ENCODER and IMAGE_ENCODER edges carry.

A handle names a family and holds the loaded diffusers pipeline (shared through the model
manager's cache, never copied or serialised). LoRAs, ControlNets and model wrappers are recorded
on the handle and applied for the duration of a sampling run, so one loaded model serves every
branch of a graph."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Tuple


def pipeline_bytes(pipe) -> int:
    """The bytes of the weights a pipeline holds (every component's parameters and buffers): a quantised layer's
    stored bytes, not its expanded matrix's (counted expanded, an NVFP4 text encoder of 12 GB read as 42 GB sent a
    16 GB card's run to CPU offload); a weight kept expanded after its first use at its expanded bytes."""
    from nodes.generate.packed_weight import PackedWeight      # torch is loaded: the pipeline holds tensors
    total = 0
    for part in getattr(pipe, "components", {}).values():
        for get in ("parameters", "buffers"):
            total += sum(t.held() if isinstance(t, PackedWeight) else t.numel() * t.element_size()
                         for t in getattr(part, get, lambda: ())())
    return total


@dataclass(frozen=True, eq=False)
class ModelHandle:
    family: str
    path: str
    pipe: Any
    dtype: str = "fp32"
    device: str = "cpu"
    loras: Tuple[Tuple[str, float], ...] = ()
    # wrap(model_fn, info) -> model_fn, applied innermost first (context windows, guidance tweaks...).
    wrappers: Tuple[Callable, ...] = ()
    # run_wrap(run, noise, info) -> latent tensor around a whole sampling run (FreeInit).
    run_wrappers: Tuple[Callable, ...] = ()
    options: Tuple[Tuple[str, Any], ...] = field(default=())

    @property
    def denoiser(self):
        return getattr(self.pipe, "transformer", None) or getattr(self.pipe, "unet", None)

    def nbytes_estimate(self) -> int:
        # What a cached handle keeps alive: the whole pipeline. Counted as 256 bytes, a run's load nodes held
        # every model they ever loaded in the engine's memory cache after the model manager had let them go.
        return pipeline_bytes(self.pipe)

    def with_lora(self, path: str, strength: float) -> "ModelHandle":
        return replace(self, loras=self.loras + ((path, float(strength)),))

    def with_wrapper(self, wrap: Callable) -> "ModelHandle":
        return replace(self, wrappers=self.wrappers + (wrap,))

    def with_run_wrapper(self, wrap: Callable) -> "ModelHandle":
        return replace(self, run_wrappers=self.run_wrappers + (wrap,))

    def with_option(self, name: str, value: Any) -> "ModelHandle":
        return replace(self, options=tuple((k, v) for k, v in self.options if k != name) + ((name, value),))

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    def __repr__(self):
        extra = f", {len(self.loras)} LoRA" if self.loras else ""
        return f"Model({self.family}, {self.path}, {self.dtype} on {self.device}{extra})"


@dataclass(frozen=True, eq=False)
class ComponentHandle:
    """VAE, text encoder or image encoder of a loaded family: the pipeline plus which part is meant."""
    family: str
    path: str
    pipe: Any
    part: str
    device: str = "cpu"
    # (path, strength) of LoRAs whose text-encoder layers act while this encoder encodes (ComfyUI's strength_clip).
    loras: Tuple[Tuple[str, float], ...] = ()

    def nbytes_estimate(self) -> int:
        return pipeline_bytes(self.pipe)

    def with_lora(self, path: str, strength: float) -> "ComponentHandle":
        return replace(self, loras=self.loras + ((path, float(strength)),))

    def __repr__(self):
        extra = f", {len(self.loras)} LoRA" if self.loras else ""
        return f"{self.part}({self.family}, {self.path}{extra})"


# Wan 2.1's VAE, by the names ComfyUI's repackage and Kijai's give its file
WAN_VAE_FILES = "wan_2.1_vae.safetensors or Wan2_1_VAE_bf16.safetensors"


def need_wan_vae(vae: ComponentHandle, what: str) -> None:
    """Refuse another family's VAE connected to `what` (the node, as the message begins), which encodes its pictures
    as the Wan 2.1 VAE's latents: the Wan models and their conditioning nodes read no other."""
    if vae.family != "wan":
        from graph_engine import NodeError
        raise NodeError(f"{what} encodes its pictures with the Wan 2.1 VAE; this VAE is {vae.family}'s. Connect the "
                        f"Wan 2.1 VAE ({WAN_VAE_FILES})")
