"""Boogu-Image 0.1's transformer as ComfyUI users hold it (Comfy-Org/Boogu-Image's diffusion_models/
boogu_image_{turbo,edit}_fp8_scaled.safetensors and the bf16 / int8 releases, dequantised by the shared loader): the
released names under model.diffusion_model. or bare, which nodes/generate/boogu_model.py keeps, so the tensors load as
they are. Every size comes from the tensors; the rotary split is the released one's (thirds of each head). OmniGen2's
transformer (Boogu's without the dual-stream stage) converts here too."""
from __future__ import annotations

from graph_engine import NodeError
from nodes.generate.converters import Built, count, register


def transformer_config(state, single: str = "single_stream_layers", name: str = "Boogu") -> dict:
    """The sizes of a Boogu (or, its single-stream blocks named `single`, OmniGen2) transformer."""
    x = state["x_embedder.weight"]
    head = int(state[f"{single}.0.attn.norm_q.weight"].shape[0])
    dim = int(x.shape[0])
    if head % 6:
        raise NodeError(f"this {name} transformer's heads are {head} wide; {name} splits each into three rotary axes "
                        f"of an even width (the release's 120 = 3 x 40): the file is damaged or not {name}'s")
    return dict(in_channels=int(x.shape[1]) // 4, hidden_size=dim, num_layers=count(state, single + ".{}."),
                num_double_stream_layers=count(state, "double_stream_layers.{}."),
                num_refiner_layers=count(state, "noise_refiner.{}."), num_attention_heads=dim // head,
                num_kv_heads=int(state[f"{single}.0.attn.to_k.weight"].shape[0]) // head,
                ffn_inner_dim=int(state[f"{single}.0.feed_forward.linear_1.weight"].shape[0]),
                axes_dim_rope=[head // 3] * 3,
                instruction_feat_dim=int(state["time_caption_embed.caption_embedder.0.weight"].shape[0]))


@register("boogu", "diffusion_model")
def transformer(state, det) -> Built:
    from nodes.generate.boogu_model import BooguTransformer
    cfg = transformer_config(state)
    return Built(lambda: BooguTransformer.from_config(cfg), dict(state), cfg)


@register("omnigen2", "diffusion_model")
def omnigen2_transformer(state, det) -> Built:
    """OmniGen2's transformer (Comfy-Org/Omnigen2_ComfyUI_repackaged's omnigen2_fp16.safetensors): Boogu's names
    without the dual-stream blocks, the single-stream ones under layers.N."""
    from nodes.generate.boogu_model import OmniGen2Transformer
    cfg = transformer_config(state, "layers", "OmniGen2")
    return Built(lambda: OmniGen2Transformer.from_config(cfg), dict(state), cfg)
