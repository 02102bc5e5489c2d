"""Qwen-Image 2.1's transformer as ComfyUI users hold it (diffusion_models/qwen_image_2.1_bf16.safetensors, a
fine-tune's file): diffusers' names under model.diffusion_model., each block's SwiGLU gate and up projections fused
into one img_mlp.gate_up (gate rows first). diffusers' own single-file converter splits them; the sizes come from the
tensors, the rest from the released config."""
from __future__ import annotations

from nodes.generate.converters import Built, count, model_config, register

FAMILY = "qwenimage21"


@register("qwenimage21", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import QwenImage21Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_qwen_image21_transformer_checkpoint_to_diffusers
    from nodes.generate.converters.flux import rope_axes
    state = convert_qwen_image21_transformer_checkpoint_to_diffusers(dict(state))
    cfg = model_config(FAMILY, "transformer")
    w = state["img_in.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    inner = int(w.shape[0])
    cfg.update(in_channels=int(w.shape[1]), num_attention_heads=inner // head, attention_head_dim=head,
               out_channels=int(state["proj_out.weight"].shape[0]), num_layers=count(state, "transformer_blocks.{}."),
               context_in_dim=int(state["txt_in.in_layer.weight"].shape[1]),
               mlp_ratio=int(state["transformer_blocks.0.img_mlp.gate_layer.weight"].shape[0]) // inner,
               axes_dims_rope=rope_axes(head, FAMILY))
    return Built(lambda: QwenImage21Transformer2DModel.from_config(cfg), state, cfg)


@register("qwen3vl", "text_encoder")
def qwen3vl(state, det) -> Built:
    """Qwen3-VL (ComfyUI's qwen3vl_8b_*: the language model as model.layers.*, the vision tower as visual.*; or
    transformers 5's model.language_model.* / model.visual.*) as the Qwen3VLForConditionalGeneration
    QwenImage21Pipeline reads the prompt with. A file without the head ties it to the embeddings (the prompt's
    hidden states never reach it)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from graph_engine import NodeError
    from nodes.generate.converters import decoder_sizes
    from nodes.generate.converters.qwenimage import language_model, qwen3_vision_heads, vision_tower
    head = state.get("lm_head.weight")
    vision = vision_tower(state)
    state = language_model(state)
    if not vision:
        raise NodeError("this Qwen3-VL file holds no vision tower (visual.*), which Qwen3VLForConditionalGeneration "
                        "needs; use ComfyUI's qwen3vl_8b_bf16.safetensors as it ships")
    cfg = model_config(FAMILY, "text_encoder")
    text, vis = cfg["text_config"], cfg["vision_config"]
    width = int(state["layers.0.self_attn.q_norm.weight"].shape[0])
    text.update(decoder_sizes(state, width), head_dim=width)
    if width != 128:    # the released [24, 20, 20] split of 128-wide heads, in proportion
        first = round(24 * width / 128)
        text["rope_scaling"] = dict(text["rope_scaling"], mrope_section=[first] + [(width // 2 - first) // 2] * 2)
    patch = vision["patch_embed.proj.weight"]
    depth, mergers = count(vision, "blocks.{}."), count(vision, "deepstack_merger_list.{}.")
    if depth != vis["depth"] or mergers != len(vis["deepstack_visual_indexes"]):
        vis["deepstack_visual_indexes"] = [i * depth // mergers for i in range(mergers)]
    vis.update(depth=depth, hidden_size=int(patch.shape[0]), num_heads=qwen3_vision_heads(int(patch.shape[0])),
               temporal_patch_size=int(patch.shape[2]), patch_size=int(patch.shape[3]),
               intermediate_size=int(vision["blocks.0.mlp.linear_fc1.weight"].shape[0]),
               out_hidden_size=int(vision["merger.linear_fc2.weight"].shape[0]),
               num_position_embeddings=int(vision["pos_embed.weight"].shape[0]))
    config = Qwen3VLConfig(text_config=text, vision_config=vis, tie_word_embeddings=head is None)
    tensors = {**{"model.language_model." + k: v for k, v in state.items()},
               **{"model.visual." + k: v for k, v in vision.items()}}
    if head is not None:
        tensors["lm_head.weight"] = head
    return Built(lambda: Qwen3VLForConditionalGeneration(config), tensors, config.to_dict())
