"""SAM 2 in Meta's own layout, read into transformers' Sam2VideoModel: kijai's ComfyUI-segment-anything-2 files
(models/sam2/sam2_hiera_tiny.safetensors, sam2.1_hiera_base_plus.safetensors, their fp16 / bf16 copies: the "model"
of Meta's sam2*_hiera_*.pt, saved as safetensors). The tensors are renamed as transformers'
convert_sam2_video_to_hf.py renames them, and the model gets the config of the Hiera size they show."""
from __future__ import annotations

import re
from pathlib import Path

from graph_engine import NodeError

# The first tensor of Meta's image encoder: its width and the number of Hiera blocks tell the size apart.
PATCH = "image_encoder.trunk.patch_embed.proj.weight"

# convert_sam2_video_to_hf.py's KEYS_TO_MODIFY_MAPPING, applied in this order to every key.
RENAMES = (
    ("iou_prediction_head.layers.0", "iou_prediction_head.proj_in"),
    ("iou_prediction_head.layers.1", "iou_prediction_head.layers.0"),
    ("iou_prediction_head.layers.2", "iou_prediction_head.proj_out"),
    ("mask_decoder.output_upscaling.0", "mask_decoder.upscale_conv1"),
    ("mask_decoder.output_upscaling.1", "mask_decoder.upscale_layer_norm"),
    ("mask_decoder.output_upscaling.3", "mask_decoder.upscale_conv2"),
    ("mask_downscaling.0", "mask_embed.conv1"),
    ("mask_downscaling.1", "mask_embed.layer_norm1"),
    ("mask_downscaling.3", "mask_embed.conv2"),
    ("mask_downscaling.4", "mask_embed.layer_norm2"),
    ("mask_downscaling.6", "mask_embed.conv3"),
    ("dwconv", "depthwise_conv"),
    ("pwconv", "pointwise_conv"),
    ("fuser", "memory_fuser"),
    ("point_embeddings", "point_embed"),
    ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    ("obj_ptr_tpos_proj", "temporal_positional_encoding_projection_layer"),
    ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"),
    ("sam_prompt_encoder", "prompt_encoder"),
    ("sam_mask_decoder", "mask_decoder"),
    ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
    ("gamma", "scale"),
    ("image_encoder.neck", "vision_encoder.neck"),
    ("image_encoder", "vision_encoder.backbone"),
    ("neck.0", "neck.conv1"),
    ("neck.1", "neck.layer_norm1"),
    ("neck.2", "neck.conv2"),
    ("neck.3", "neck.layer_norm2"),
    ("pix_feat_proj", "feature_projection"),
    ("patch_embed.proj", "patch_embed.projection"),
    ("no_mem_embed", "no_memory_embedding"),
    ("no_mem_pos_enc", "no_memory_positional_encoding"),
    ("obj_ptr", "object_pointer"),
    (".norm", ".layer_norm"),
    ("trunk.", ""),
    ("out_proj", "o_proj"),
)
# Three-layer heads whose layers transformers names proj_in, layers.0, proj_out (the regexes after the table).
THREE = (r".*.output_hypernetworks_mlps.(\d+).layers.(\d+).*", r"mask_decoder.pred_obj_score_head.layers.(\d+).*",
         r"object_pointer_proj.layers.(\d+).*")
THREE_NAMES = {0: "proj_in", 1: "layers.0", 2: "proj_out"}

VISION, HIERA = "sam2_vision_model", "sam2_hiera_det_model"   # transformers builds nested configs by type
# convert_sam2_video_to_hf.py's get_config: (patch width, Hiera blocks) -> size, Sam2VideoConfig's arguments.
SIZES = {
    (96, 12): ("hiera_tiny", {}),
    (96, 16): ("hiera_small", dict(vision_config=dict(model_type=VISION, backbone_config=dict(
        model_type=HIERA, blocks_per_stage=[1, 2, 11, 2], global_attention_blocks=[7, 10, 13])))),
    (112, 24): ("hiera_base_plus", dict(vision_config=dict(
        model_type=VISION, backbone_channel_list=[896, 448, 224, 112], backbone_config=dict(model_type=HIERA,
        hidden_size=112, embed_dim_per_stage=[112, 224, 448, 896], num_attention_heads_per_stage=[2, 4, 8, 16],
        blocks_per_stage=[2, 3, 16, 3], global_attention_blocks=[12, 16, 20],
        window_positional_embedding_background_size=[14, 14])))),
    (144, 48): ("hiera_large", dict(vision_config=dict(
        model_type=VISION, backbone_channel_list=[1152, 576, 288, 144], backbone_config=dict(model_type=HIERA,
        hidden_size=144, embed_dim_per_stage=[144, 288, 576, 1152], num_attention_heads_per_stage=[2, 4, 8, 16],
        blocks_per_stage=[2, 6, 36, 4], global_attention_blocks=[23, 33, 43],
        window_positional_embedding_background_size=[7, 7], window_size_per_stage=[8, 4, 16, 8])))),
}
KNOWN = "sam2 / sam2.1 hiera tiny, small, base_plus, large (Meta's sam2*_hiera_*.pt or kijai's safetensors of them)"


def is_original(keys) -> bool:
    """Whether a file's tensor names are Meta's SAM 2 layout."""
    return PATCH in keys


def rename(key: str) -> str:
    """Meta's name of a tensor -> transformers' (convert_sam2_video_to_hf.replace_keys, one key)."""
    for old, new in RENAMES:
        key = key.replace(old, new)
    m = re.match(r"vision_encoder.backbone.blocks.(\d+).mlp.layers.(\d+).*", key)
    if m:
        key = key.replace(f"layers.{m.group(2)}", ("proj_in", "proj_out")[int(m.group(2))])
    m = re.match(r"mask_decoder.transformer.layers.(\d+).mlp.layers.(\d+).*", key)
    if m:
        key = key.replace(f"mlp.layers.{m.group(2)}", "mlp." + ("proj_in", "proj_out")[int(m.group(2))])
    for pattern in THREE:
        m = re.match(pattern, key)
        if m:
            n = int(m.groups()[-1])
            key = key.replace(f"layers.{n}", THREE_NAMES[n])
    if re.match(r"vision_encoder.neck.convs.(\d+).conv", key):
        key = key.replace(".conv.", ".")
    if re.match(r"memory_encoder.o_proj.*", key):
        key = key.replace(".o_proj.", ".projection.")
    m = re.match(r"memory_encoder.mask_downsampler.encoder.(\d+).*", key)
    if m:
        n = int(m.group(1))
        if n == 12 or n % 3 < 2:
            key = key.replace(f"encoder.{n}", "final_conv" if n == 12 else f"layers.{n // 3}." + ("conv", "layer_norm")[n % 3])
    return key


def convert(tensors: dict) -> dict:
    """transformers' state dict of Meta's (convert_sam2_video_to_hf.replace_keys): every key renamed, the prompt
    encoder's four point embeddings stacked into one table, its positional matrix shared with the image's."""
    import torch
    out = {rename(k): v for k, v in tensors.items()}
    out["shared_image_embedding.positional_embedding"] = out["prompt_encoder.shared_embedding.positional_embedding"]
    out["prompt_encoder.point_embed.weight"] = torch.cat(
        [out.pop(f"prompt_encoder.point_embed.{i}.weight") for i in range(4)], dim=0)
    return out


def size_of(path: Path, tensors: dict):
    """(name, Sam2VideoConfig) of the Hiera size a file's tensors show; SAM 2.1 where its occlusion embedding is."""
    from transformers import Sam2VideoConfig
    width = tensors[PATCH].shape[0]
    blocks = len({k.split(".")[3] for k in tensors if k.startswith("image_encoder.trunk.blocks.")})
    if (width, blocks) not in SIZES:
        raise NodeError(f"{path} is a SAM 2 file of a size Kinograph does not know (Hiera {width} wide, {blocks} "
                        f"blocks); it reads {KNOWN}, or SAM 2's Hugging Face folder")
    name, kwargs = SIZES[(width, blocks)]
    v21 = "no_obj_embed_spatial" in tensors
    config = Sam2VideoConfig(**kwargs, enable_temporal_pos_encoding_for_object_pointers=v21,
                             enable_occlusion_spatial_embedding=v21)
    return ("sam2.1_" if v21 else "sam2_") + name, config


def load(path: Path, tensors: dict):
    """A float32 Sam2VideoModel of Meta's tensors (any precision), and its config as a dict."""
    import torch
    from transformers import Sam2VideoModel
    name, config = size_of(path, tensors)
    model = Sam2VideoModel(config)
    try:
        state = convert({k: v.to(torch.float32) for k, v in tensors.items()})
        missing, unexpected = model.load_state_dict(state, strict=False)
    except KeyError as e:       # a prompt-encoder table convert() reads by name
        missing, unexpected = [str(e.args[0])], []
    except RuntimeError as e:   # torch's "size mismatch for ...", a tensor of another shape (or cat of such)
        raise NodeError(f"{path} looks like {name} but its tensors do not fit: "
                        f"{next((ln.strip() for ln in str(e).splitlines() if 'size mismatch' in ln), str(e)[:200])}. "
                        f"The copy is damaged or of another model; it should be {KNOWN}") from None
    if missing or unexpected:
        said = [f"{len(these)} {what} (e.g. {', '.join(sorted(these)[:3])})"
                for what, these in (("missing", missing), ("not of this model", unexpected)) if these]
        raise NodeError(f"{path} looks like {name} but its tensors do not fit: {'; '.join(said)}. The copy may be "
                        f"incomplete or of another model; it should be {KNOWN}")
    return model, config.to_dict()
