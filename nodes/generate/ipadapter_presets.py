"""What the IP-Adapter nodes offer and where the unified loader looks, without torch: the node declarations read these
when the registry loads, and the engine (and `kinograph validate`) must not import torch for that."""

COMBINE = ("concat", "add", "subtract", "average", "norm average")
EMBEDS_COMBINE = COMBINE + ("max", "min")        # IPAdapterCombineEmbeds' methods
# ComfyUI_IPAdapter_plus's IPAdapterUnifiedLoader presets -> the file-name patterns it looks for (SD 1.5, SDXL; None:
# that preset has no file for the family), and the CLIP vision it pairs them with (ViT-H, or ViT-bigG for VIT-G).
PRESETS = {
    "LIGHT - SD1.5 only (low strength)": (r"sd15.light.v11\.(safetensors|bin)$|sd15.light\.(safetensors|bin)$", None),
    "STANDARD (medium strength)": (r"ip.adapter.sd15\.(safetensors|bin)$", r"ip.adapter.sdxl.vit.h\.(safetensors|bin)$"),
    "VIT-G (medium strength)": (r"sd15.vit.g\.(safetensors|bin)$", r"ip.adapter.sdxl\.(safetensors|bin)$"),
    "PLUS (high strength)": (r"ip.adapter.plus.sd15\.(safetensors|bin)$", r"plus.sdxl.vit.h\.(safetensors|bin)$"),
    "PLUS FACE (portraits)": (r"plus.face.sd15\.(safetensors|bin)$", r"plus.face.sdxl.vit.h\.(safetensors|bin)$"),
    "FULL FACE - SD1.5 only (portraits stronger)": (r"full.face.sd15\.(safetensors|bin)$", None),
}
CLIP_VIT_H = r"ViT.H.14.*s32B.b79K|ipadapter.*sd15|sd1.?5.*model\.(bin|safetensors)"
CLIP_VIT_G = r"ViT.bigG.14.*39B.b160k|ipadapter.*sdxl|sdxl.*model\.(bin|safetensors)"
# IPAdapterAdvanced's weight types (how the weight is spread over the UNet's transformers; the last is
# IPAdapterStyleComposition's expand_style) and embeds scalings.
WEIGHT_TYPES = ("linear", "ease in", "ease out", "ease in-out", "reverse in-out", "weak input", "weak output",
                "weak middle", "strong middle", "style transfer", "composition", "strong style transfer",
                "style and composition", "style transfer precise", "composition precise", "strong style and composition")
SCALINGS = ("V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty")
# How ipadapter.flux_graded grades the FLUX.1 weight over the double blocks (x-flux-comfyui's smothing_type).
GRADINGS = ("linear", "first half", "second half", "sigmoid")
