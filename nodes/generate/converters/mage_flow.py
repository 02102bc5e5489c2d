"""Mage-Flow's files as ComfyUI's image_mage_flow_* templates load them (Comfy-Org/Mage-Flow): the transformer
(diffusion_models/mage_flow_*, bf16 or int8_convrot, dequantised by the shared loader) in ComfyUI's names, which are
the module's (nodes/generate/mage_flow_model.py); the VAE (vae/mage_flow_vae_bf16) renamed into its module
(nodes/generate/mage_flow_vae.py). Sizes come from the tensors."""
from __future__ import annotations

from nodes.generate.converters import Built, register


@register("mage_flow", "diffusion_model")
def transformer(state, det) -> Built:
    from nodes.generate.mage_flow_model import MageFlowTransformer, transformer_config
    cfg = transformer_config(state)
    return Built(lambda: MageFlowTransformer(**cfg), dict(state), cfg)


@register("mage_flow", "vae")
def vae(state, det) -> Built:
    from nodes.generate.mage_flow_vae import MageVAE, module_names, vae_config
    named = module_names(state) if any(k.startswith("student.") for k in state) else dict(state)
    encoder, decoder = vae_config(named)
    return Built(lambda: MageVAE(encoder, decoder), named, dict(encoder=encoder, decoder=decoder))
