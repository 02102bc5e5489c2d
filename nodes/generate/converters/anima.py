"""Anima's DiT as ComfyUI users hold it (circlestone-labs/Anima's split_files/diffusion_models/anima-base-v1.0 and
anima-preview*.safetensors): Cosmos-Predict2's MiniTrainDIT names (x_embedder.proj.1, blocks.N.self_attn.q_proj,
t_embedder.1, final_layer ...) under model.diffusion_model., net. or bare, through diffusers' own Cosmos single-file
converter, and the LLM adapter's (llm_adapter.*) kept as they are (nodes/generate/anima_model.py). Every size comes
from the tensors; the rest is Cosmos-Predict2 2B's (ComfyUI's detection of Anima: rotary extrapolation 4 in height and
width, no learnable positions). Its padding-mask channel is an input channel like the others here, which the sampler
fills with zeros as ComfyUI does for a whole picture: diffusers would resize a mask with torchvision, which Kinograph
does without."""
from __future__ import annotations

from nodes.generate.converters import Built, count, model_config, register

ADAPTER = "llm_adapter."


def transformer_config(state) -> dict:
    """CosmosTransformer3DModel's settings from its (diffusers-named) tensors."""
    cfg = model_config("anima", "transformer")
    x = state["patch_embed.proj.weight"]
    hidden = int(x.shape[0])
    head = int(state["transformer_blocks.0.attn1.norm_q.weight"].shape[0])
    patch = cfg["patch_size"][1] * cfg["patch_size"][2]
    cfg.update(in_channels=int(x.shape[1]) // patch, out_channels=int(state["proj_out.weight"].shape[0]) // patch,
               num_attention_heads=hidden // head, attention_head_dim=head,
               num_layers=count(state, "transformer_blocks.{}."),
               mlp_ratio=int(state["transformer_blocks.0.ff.net.0.proj.weight"].shape[0]) / hidden,
               text_embed_dim=int(state["transformer_blocks.0.attn2.to_k.weight"].shape[1]),
               adaln_lora_dim=int(state["transformer_blocks.0.norm1.linear_1.weight"].shape[0]))
    return cfg


@register("anima", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers.loaders.single_file_utils import convert_cosmos_transformer_checkpoint_to_diffusers
    from nodes.generate.anima_model import adapter_config, anima_transformer
    # the converter renames by substrings (blocks, self_attn, q_proj ...) the adapter's names hold too: kept apart
    adapter = {k: v for k, v in state.items() if k.startswith(ADAPTER)}
    dit = convert_cosmos_transformer_checkpoint_to_diffusers({k: v for k, v in state.items() if k not in adapter})
    cfg, acfg = transformer_config(dit), adapter_config(adapter)
    return Built(lambda: anima_transformer(cfg, acfg), {**dit, **adapter}, cfg)
