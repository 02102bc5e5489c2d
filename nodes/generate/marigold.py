"""Marigold v2 (Huawei Bayer Lab / ETH, 2026): depth, surface normals and albedo of a picture in one step of a
frozen Qwen-Image-Edit-2509 transformer with a LoRA, a VAE and a prompt embedding per task, as ComfyUI runs it.

The picture's latent (no noise) is read at timestep 0.5 with the task's stored prompt, and the result is that latent
minus the model's output (ComfyUI: ModelSamplingAuraFlow's img_to_img_velocity, DisableNoise, ManualSigmas "0.5, 0",
euler; here model.flow_shift's sampling img_to_img_velocity and sample with add_noise off). The task's VAE decodes it
to a picture in 0..1 that post() turns into the pass a compositor reads (ComfyUI's MarigoldV2PostProcess).

The prompt is a file ComfyUI keeps in models/embeddings/ (marigold_v2_*_conditioning.safetensors: its
`conditioning` tensor, [1, tokens, 3584]); load_conditioning() reads it (ComfyUI's ConditioningLoader)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from graph_engine import NodeError

PREDICTIONS = ("depth", "normals", "albedo")
# ConditioningLoader hands the file's other tensors to the model as options; Qwen-Image reads a prompt mask there
_OPTIONS = {"attention_mask"}


def load_conditioning(path: Path, family: str):
    """The conditioning stored in `path` (its `conditioning` tensor, [1, L, D] or [L, D]; an `attention_mask` [1, L]
    beside it marks the tokens to read) for a `family` model. Read by the shared weights reader: safetensors as
    stored, a torch pickle only with weights_only (no code in it runs, one that would is refused)."""
    import torch
    from nodes.generate.latent import Conditioning
    from nodes.generate.weights import read_raw
    path = Path(path)
    if path.suffix.lower() not in (".safetensors", ".sft", ".pt", ".pth", ".bin", ".ckpt"):
        raise NodeError(f"{path.name}: a conditioning is read from a .safetensors file (or a torch .pt of plain "
                        f"tensors), as ComfyUI's Save Conditioning writes it; {path.suffix or 'no extension'} is "
                        "neither")
    state = read_raw(path)
    cond = state.get("conditioning")
    if not isinstance(cond, torch.Tensor) or not cond.is_floating_point() or cond.dim() not in (2, 3) or \
            (cond.dim() == 3 and cond.shape[0] != 1):
        found = ", ".join(f"{k} {list(v.shape)}" for k, v in list(state.items())[:6] if isinstance(v, torch.Tensor))
        raise NodeError(f"{path.name} holds no conditioning: ComfyUI's Load Conditioning reads a float tensor named "
                        f"'conditioning', [1, tokens, width]; the file has {found or 'no tensors'}. Use the "
                        "task's *_conditioning.safetensors (Marigold v2's are in Comfy-Org/marigold-v2-0, embeddings/)")
    other = sorted(set(state) - {"conditioning"} - _OPTIONS)
    if other:
        raise NodeError(f"{path.name} holds {', '.join(other[:5])} beside its conditioning, which Kinograph does not "
                        "give the model: only a prompt's embedding (and its attention_mask) is read")
    embeds = cond.detach().float().reshape(1, cond.shape[-2], cond.shape[-1])
    mask = state.get("attention_mask")
    if mask is not None:
        if tuple(mask.shape[-1:]) != (embeds.shape[1],) or mask.numel() != embeds.shape[1]:
            raise NodeError(f"{path.name}: its attention_mask {list(mask.shape)} does not cover the conditioning's "
                            f"{embeds.shape[1]} tokens")
        mask = mask.reshape(1, -1).bool()
    return Conditioning(family, embeds, mask)


def post(frames: np.ndarray, prediction: str, span=None) -> np.ndarray:
    """The pass from decoded Marigold v2 pictures (float [N, H, W, 3] in 0..1), as ComfyUI's MarigoldV2PostProcess
    makes it: depth, the channels' mean (affine-invariant log depth, far bright) stretched to 0..1 and turned round
    so near is 1, repeated in three channels, each frame by its own range (ComfyUI's) or by `span` (the lowest and
    highest mean of a whole clip: levels hold over a shot); normals, unit vectors (x, y, z in -1..1) stored as
    (n + 1) / 2; albedo, the linear reflectance put through the sRGB curve."""
    if prediction not in PREDICTIONS:
        raise NodeError(f"unknown Marigold prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
    x = frames.astype(np.float32)
    if prediction == "normals":
        n = x * 2 - 1
        return (n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12) + 1) * 0.5
    if prediction == "albedo":
        from nodes.common.color import linear_to_srgb_unclamped
        return linear_to_srgb_unclamped(x)
    d = x.mean(-1, keepdims=True)
    lo, hi = (d.min(axis=(1, 2, 3), keepdims=True), d.max(axis=(1, 2, 3), keepdims=True)) if span is None else span
    return np.repeat((hi - d) / np.maximum(hi - lo, 1e-6), 3, -1)
