"""HiDream-O1-Image: a pixel-space transformer that is Qwen3-VL-8B itself. The prompt's tokens, the noised picture's
32 x 32 RGB patches (through a small bottleneck) and any reference pictures (as Qwen3-VL's vision tower sees them,
and as patches beside the picture's) are one sequence through Qwen3-VL's decoder with its interleaved 3-D rotary
positions; the prompt's tokens attend causally, the rest (from the timestep token on) attend to everything. The
timestep rides on one token (<|tms_token|>), and the picture's hidden states come back out as patches: the model
predicts the clean picture, returned as the velocity (x - x_pred) / sigma of flow matching.

Written from ComfyUI's comfy/ldm/hidream_o1 (model.py, conditioning.py, utils.py) and its tokenizer-only text encoder
(comfy/text_encoders/hidream_o1.py): the decoder and the vision tower are transformers' Qwen3-VL modules, which hold
the same weights under the same names. Pictures here are float [B, 3, H, W] in [-1, 1]."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
from torch import nn

PATCH = 32                  # the picture's patches (32 x 32 RGB)
VIT_PATCH, VIT_MERGE = 16, 2
COND_SIZE = 384             # the vision tower's picture side for up to four references
FIX_POINT = 4096            # the target picture's first position: references' patches share its plane
PAD = 151643
IM_START, IM_END, USER, ASSISTANT, NEWLINE = 151644, 151645, 872, 77091, 198
VISION_START, VISION_END, IMAGE_PAD = 151652, 151653, 151655
BOI, TMS = 151669, 151673


# -- the prompt -------------------------------------------------------------------------------------------------
def prompt_ids(tokenizer, text: str) -> List[int]:
    """The prompt in HiDream-O1's chat turn, ending in the begin-image and timestep tokens:
    <|im_start|>user\\n{text}<|im_end|>\\n<|im_start|>assistant\\n<|boi|><|tms|> (the pad token dropped)."""
    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"] if int(i) != PAD]
    return [IM_START, USER, NEWLINE] + ids + [IM_END, NEWLINE, IM_START, ASSISTANT, NEWLINE, BOI, TMS]


# -- reference pictures -----------------------------------------------------------------------------------------
def ref_side(target_side: int, k: int) -> int:
    """The side (of the fitted area) each of k references is patched at, from the result's longer side."""
    if k == 1:
        return target_side
    if k == 2:
        return target_side * 48 // 64
    if k <= 4:
        return target_side // 2
    if k <= 8:
        return target_side * 24 // 64
    return target_side // 4


def vit_side(k: int) -> int:
    """The side (of the fitted area) the vision tower sees each of k references at."""
    return COND_SIZE if k <= 4 else COND_SIZE * 48 // 64 if k <= 8 else COND_SIZE // 2


def fit_area(picture, side: int, multiple: int):
    """A PIL picture scaled to fill at most side^2 pixels on a `multiple` grid (the largest such size), centre-cropped
    to it; halved with a box filter first while it is over twice that size (HiDream-O1's resize_pilimage)."""
    from PIL import Image
    while min(picture.size) >= 2 * side:
        picture = picture.resize(tuple(s // 2 for s in picture.size), resample=Image.BOX)
    w, h = picture.size
    scale = math.sqrt(side * side / (w * h))
    options = sorted({(round(w * scale) // multiple * multiple, round(h * scale) // multiple * multiple),
                      (round(w * scale) // multiple * multiple, math.floor(h * scale) // multiple * multiple),
                      (math.floor(w * scale) // multiple * multiple, round(h * scale) // multiple * multiple),
                      (math.floor(w * scale) // multiple * multiple, math.floor(h * scale) // multiple * multiple)},
                     key=lambda s: s[0] * s[1], reverse=True)
    size = next((s for s in options if s[0] * s[1] <= side * side), options[-1])
    size = (max(size[0], multiple), max(size[1], multiple))
    if w / size[0] < h / size[1]:
        tall = round(h * size[0] / w)
        picture = picture.resize((size[0], tall), resample=Image.BICUBIC)
        top = (tall - size[1]) // 2
        return picture.crop((0, top, size[0], top + size[1]))
    wide = round(w * size[1] / h)
    picture = picture.resize((wide, size[1]), resample=Image.BICUBIC)
    left = (wide - size[0]) // 2
    return picture.crop((left, 0, left + size[0], size[1]))


def vit_size(side: int, ratio: float):
    """(width, height) of a picture of aspect `ratio` filling side^2 pixels on a 32 grid, at least one merged patch."""
    width = math.sqrt(side * side * ratio)
    height = width / ratio
    least = VIT_PATCH * VIT_MERGE
    return max(int(width / 32) * 32, least), max(int(height / 32) * 32, least)


def vit_patches(pixels: torch.Tensor):
    """A picture [3, h, w] in [0, 1] as the vision tower's flattened patches [n, 3 x 2 x 16 x 16] (the frame twice
    for its temporal patch, merged 2 x 2 blocks kept together) and its grid (1, h / 16, w / 16)."""
    x = (pixels - 0.5) / 0.5
    c, h, w = x.shape
    gh, gw = h // VIT_PATCH, w // VIT_PATCH
    x = x[None].expand(2, c, h, w)                    # the one frame as both of a temporal patch's frames
    x = x.reshape(1, 2, c, gh // VIT_MERGE, VIT_MERGE, VIT_PATCH, gw // VIT_MERGE, VIT_MERGE, VIT_PATCH)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gh * gw, c * 2 * VIT_PATCH * VIT_PATCH), (1, gh, gw)


def to_patches(pixels: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] -> [B, (H / 32)(W / 32), 3 x 32 x 32], row by row, each patch channel-major."""
    b, c, h, w = pixels.shape
    x = pixels.reshape(b, c, h // PATCH, PATCH, w // PATCH, PATCH).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // PATCH) * (w // PATCH), c * PATCH * PATCH)


def from_patches(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b = tokens.shape[0]
    x = tokens.reshape(b, h // PATCH, w // PATCH, 3, PATCH, PATCH).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, 3, h, w)


def references(pictures: Sequence, height: int, width: int) -> Optional[dict]:
    """The reference pictures (uint8 [H, W, 3] arrays) as the model reads them for a result of height x width: each
    fitted and patched beside the picture ("patches" [1, n, 3072], "grids" of patches) and as the vision tower sees
    it ("vit" [m, 1536], "vit_grids", "vit_tokens": the image-pad tokens each becomes)."""
    import numpy as np
    from PIL import Image
    k = len(pictures)
    if not k:
        return None
    side = ref_side(max(height, width), k)
    patches, grids, vit, vit_grids, tokens = [], [], [], [], []
    for p in pictures:
        fitted = fit_area(Image.fromarray(p), side, PATCH)
        px = torch.from_numpy(np.asarray(fitted, dtype=np.float32) / 255.0).permute(2, 0, 1)
        patches.append(to_patches(px[None] * 2 - 1)[0])
        grids.append((px.shape[1] // PATCH, px.shape[2] // PATCH))
        cw, ch = vit_size(vit_side(k), px.shape[2] / px.shape[1])
        seen = fitted.resize((cw, ch), resample=Image.LANCZOS)
        flat, grid = vit_patches(torch.from_numpy(np.asarray(seen, dtype=np.float32) / 255.0).permute(2, 0, 1))
        vit.append(flat)
        vit_grids.append(grid)
        tokens.append((grid[1] // VIT_MERGE) * (grid[2] // VIT_MERGE))
    return {"patches": torch.cat(patches)[None], "grids": grids, "vit": torch.cat(vit),
            "vit_grids": torch.tensor(vit_grids), "vit_tokens": tokens}


# -- the sequence -----------------------------------------------------------------------------------------------
def rope_positions(ids: Sequence[int], grids: Sequence, skips: Sequence[bool]) -> torch.Tensor:
    """[3, T] (time, row, column) positions of a token sequence holding one block of image tokens per grid (t, h,
    w) in order. A block whose skip is false is image-pad tokens after their vision-start token, placed after the text
    before it; one whose skip is true starts at its vision-start token: the first such block is placed at FIX_POINT,
    later ones right after the positions before them (so the target and the references' patches share one plane,
    apart from the text)."""
    parts: List[torch.Tensor] = []
    start, fix = 0, FIX_POINT
    ids = list(ids)
    for (t, h, w), skip in zip(grids, skips):
        first = ids.index(IMAGE_PAD, start)
        text = max(0, first - start - int(skip))
        base = int(parts[-1].max()) + 1 if parts else 0
        parts.append(torch.arange(text).view(1, -1).expand(3, -1) + base)
        grid = torch.stack([torch.arange(t).view(-1, 1).expand(-1, h * w).flatten(),
                            torch.arange(h).view(1, -1, 1).expand(t, -1, w).flatten(),
                            torch.arange(w).view(1, 1, -1).expand(t, h, -1).flatten()])
        if skip:
            parts.append(grid + (fix if fix > 0 else base))
            fix = 0
        else:
            parts.append(grid + text + base)
        start = first + t * h * w
    if start < len(ids):
        base = int(parts[-1].max()) + 1 if parts else 0
        parts.append(torch.arange(len(ids) - start).view(1, -1).expand(3, -1) + base)
    return torch.cat(parts, 1)


def image_block(n: int) -> List[int]:
    return [VISION_START] + [IMAGE_PAD] * (n - 1)


def sequence(text_ids: Sequence[int], height: int, width: int, refs: Optional[dict] = None) -> dict:
    """What one prompt's forward pass reads for a result of height x width: "ids" (the prompt's tokens, with a
    [vision-start, image-pad x n, vision-end] block per reference after <|im_start|>user\\n), "positions" [3, T] over
    those, the picture's patches and each reference's, and "ar" (the tokens before the timestep token, which attend
    causally)."""
    hp, wp = height // PATCH, width // PATCH
    ids = list(text_ids)
    grids, skips, blocks = [], [], image_block(hp * wp)
    if refs is not None:
        inserted = []
        for n in refs["vit_tokens"]:
            inserted += [VISION_START] + [IMAGE_PAD] * n + [VISION_END]
        ids = ids[:3] + inserted + ids[3:]
        grids += [(int(g[0]), int(g[1]) // VIT_MERGE, int(g[2]) // VIT_MERGE) for g in refs["vit_grids"]]
        skips += [False] * len(refs["vit_tokens"])
    grids.append((1, hp, wp))
    skips.append(True)
    if refs is not None:
        for gh, gw in refs["grids"]:
            blocks += image_block(gh * gw)
            grids.append((1, gh, gw))
            skips.append(True)
    return {"ids": torch.tensor(ids), "positions": rope_positions(ids + blocks, grids, skips), "ar": len(ids) - 1}


def two_pass_mask(ar: int, length: int, dtype, device) -> torch.Tensor:
    """[1, 1, T, T] additive mask: the first `ar` tokens see the tokens up to themselves, the rest see all."""
    rows = torch.arange(length, device=device)
    seen = (rows[None, :] <= rows[:, None]) | (rows[:, None] >= ar)
    return torch.zeros(length, length, dtype=dtype, device=device).masked_fill(~seen, float("-inf"))[None, None]


# -- the network ------------------------------------------------------------------------------------------------
def timestep_features(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of t, cosines first (the embedder MMDiT and HiDream-O1 share)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


class BottleneckPatchEmbed(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.proj1 = nn.Linear(3 * PATCH * PATCH, width // 4, bias=False)
        self.proj2 = nn.Linear(width // 4, width)

    def forward(self, x):
        return self.proj2(self.proj1(x))


class FinalLayer(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, 3 * PATCH * PATCH)

    def forward(self, x):
        return self.linear(x)


class HiDreamO1(nn.Module):
    """The transformer in ComfyUI's names: visual (Qwen3-VL's vision tower, its deepstack mergers unused),
    language_model (Qwen3-VL-8B's decoder), t_embedder1, x_embedder, final_layer2."""

    def __init__(self, text_config, vision_config=None):
        super().__init__()
        from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextModel, Qwen3VLVisionModel
        text_config._attn_implementation = "sdpa"
        self.language_model = Qwen3VLTextModel(text_config)
        self.visual = None
        if vision_config is not None:
            vision_config._attn_implementation = "sdpa"
            self.visual = Qwen3VLVisionModel(vision_config)
        width = text_config.hidden_size
        self.t_embedder1 = nn.Module()
        self.t_embedder1.mlp = nn.Sequential(nn.Linear(256, width), nn.SiLU(), nn.Linear(width, width))
        self.x_embedder = BottleneckPatchEmbed(width)
        self.final_layer2 = FinalLayer(width)

    @property
    def dtype(self):
        return self.final_layer2.linear.weight.dtype

    @property
    def device(self):
        return self.final_layer2.linear.weight.device

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, seq: dict, refs: Optional[dict] = None) -> torch.Tensor:
        """The velocity (x - x_pred) / sigma for pictures x [B, 3, H, W] at noise levels sigma [B], all read with the
        one prompt `seq` (sequence()'s, with the same references `refs`)."""
        lm = self.language_model
        b, _, h, w = x.shape
        dtype, device = self.dtype, x.device
        ids = seq["ids"].to(device)
        tokens = to_patches(x.to(dtype))
        if refs is not None:
            tokens = torch.cat([tokens, refs["patches"].to(device, dtype).expand(b, -1, -1)], 1)
        embeds = lm.embed_tokens(ids)[None].expand(b, -1, -1).to(dtype).clone()
        if refs is not None:
            if self.visual is None:
                raise ValueError("this HiDream-O1 file holds no vision tower, which its reference pictures need")
            if "seen" not in refs:      # the same every step: kept with the references (as ComfyUI keeps it)
                refs["seen"] = self.visual(refs["vit"].to(device, dtype),
                                           grid_thw=refs["vit_grids"].to(device)).pooler_output
            embeds[:, ids == IMAGE_PAD] = refs["seen"].to(device, dtype)[None].expand(b, -1, -1)
        mlp = self.t_embedder1.mlp
        t_emb = mlp(timestep_features((1.0 - sigma.float()) * 1000).to(device, mlp[0].weight.dtype)).to(dtype)
        embeds = torch.where((ids == TMS)[None, :, None], t_emb[:, None], embeds)
        hidden = torch.cat([embeds, self.x_embedder(tokens)], 1)
        positions = seq["positions"].to(device)[:, None].expand(3, b, -1)
        rotary = lm.rotary_emb(hidden, positions)
        mask = two_pass_mask(seq["ar"], hidden.shape[1], dtype, device)
        for layer in lm.layers:
            hidden = layer(hidden, position_embeddings=rotary, attention_mask=mask)
        hidden = lm.norm(hidden)
        start = ids.shape[0]
        picture = self.final_layer2(hidden[:, start:start + (h // PATCH) * (w // PATCH)])
        x_pred = from_patches(picture.float(), h, w)
        # fp32 on purpose: ComfyUI notes that this subtraction in bf16 visibly degrades the samples
        return (x.float() - x_pred) / sigma.float().view(b, 1, 1, 1).clamp_min(1e-3)


# -- loading ----------------------------------------------------------------------------------------------------
UNUSED = ("lm_head.", "visual.deepstack_merger_list.")      # the language model's head and the deepstack mergers


def mrope_sections(head: int) -> List[int]:
    """Qwen3-VL's split of a head's rotary frequencies between time, rows and columns ([24, 20, 20] of 64), kept in
    proportion for other head widths."""
    half = head // 2
    side = half * 20 // 64
    return [half - 2 * side, side, side]


def configs(state: dict):
    """(Qwen3VLTextConfig, Qwen3VLVisionConfig or None) from the tensors' shapes; what no shape states is
    Qwen3-VL-8B's (rotary base 5e6, eps 1e-6, 72-wide vision heads, 16 x 16 vision patches merged 2 x 2)."""
    from transformers import Qwen3VLTextConfig, Qwen3VLVisionConfig
    lm = "language_model."
    vocab, width = state[f"{lm}embed_tokens.weight"].shape
    head = int(state[f"{lm}layers.0.self_attn.q_norm.weight"].shape[0])
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith(f"{lm}layers."))
    text = Qwen3VLTextConfig(
        vocab_size=int(vocab), hidden_size=int(width), head_dim=head, num_hidden_layers=layers,
        num_attention_heads=int(state[f"{lm}layers.0.self_attn.q_proj.weight"].shape[0]) // head,
        num_key_value_heads=int(state[f"{lm}layers.0.self_attn.k_proj.weight"].shape[0]) // head,
        intermediate_size=int(state[f"{lm}layers.0.mlp.gate_proj.weight"].shape[0]), rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": mrope_sections(head),
                         "mrope_interleaved": True})
    if "visual.patch_embed.proj.weight" not in state:
        return text, None
    v_width = int(state["visual.patch_embed.proj.weight"].shape[0])
    vision = Qwen3VLVisionConfig(
        depth=1 + max(int(k.split(".")[2]) for k in state if k.startswith("visual.blocks.")), hidden_size=v_width,
        num_heads=max(1, v_width // 72), intermediate_size=int(state["visual.blocks.0.mlp.linear_fc1.weight"].shape[0]),
        out_hidden_size=int(state["visual.merger.linear_fc2.weight"].shape[0]),
        num_position_embeddings=int(state["visual.pos_embed.weight"].shape[0]), deepstack_visual_indexes=[])
    return text, vision


def from_state(state: dict, dtype) -> HiDreamO1:
    """The transformer holding a file's tensors (its prefix already removed), in `dtype`."""
    state = {k: v for k, v in state.items() if not k.startswith(UNUSED)}
    text, vision = configs(state)
    with torch.device("meta"):
        model = HiDreamO1(text, vision)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if "rotary" not in k]
    if missing or unexpected:
        raise ValueError(f"missing {missing[:4]}, unexpected {unexpected[:4]}")
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:         # the rotary tables, which no file holds: computed again off the meta device
            owner = model.get_submodule(name.rsplit(".", 1)[0])
            owner.__init__(owner.config)
    return model.to(dtype).eval()
