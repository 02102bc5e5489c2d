"""comfyui_controlnet_aux's MiDaS normal map: the slope of MiDaS's depth, as ControlNet 1.0's normal model was
trained on. The DPT model runs on the padded detect-size picture itself (pixels to -1..1), not on the 384-pixel
picture transformers' processor makes: the slopes are per pixel of that picture, so another size is another map.
Background (depth below bg_threshold of its range) faces the camera; `a` is the depth step that tilts 45 degrees."""
from __future__ import annotations

import cv2
import numpy as np

from graph_engine import NodeError

from nodes.preprocess.pictures import detect_sized


def dpt_depth(model, x):
    """A DPT model's depth [n,h,w] for pixels x [n,3,h,w] of any size in whole patches. transformers' DPT reads
    only its training size (384x384) when its backbone is a hybrid one (dpt-hybrid-midas): the position embedding is
    interpolated here as MiDaS does, and the tokens are laid out h/16 by w/16 for the neck."""
    cfg = model.config
    patch = cfg.patch_size
    ph, pw = x.shape[2] // patch, x.shape[3] // patch
    if cfg.is_hybrid:
        embedded = model.dpt.embeddings(x, interpolate_pos_encoding=True)
        hidden, states = embedded.last_hidden_states, list(embedded.intermediate_activations)
        keep = cfg.backbone_out_indices[2:]
    else:
        hidden, states = model.dpt.embeddings(x), []
        keep = cfg.backbone_out_indices
    for i, layer in enumerate(model.dpt.encoder.layer):
        hidden = layer(hidden)
        if i in keep:
            states.append(hidden)
    return model.head(model.neck(states, ph, pw))


def normal_picture(depth: np.ndarray, a: float, bg_threshold: float) -> np.ndarray:
    """uint8 HxWx3 (B, G, R order of the normal's x, y, z, as the pack writes it) from float32 depth: Sobel slopes
    (OpenCV's 3x3, reflected edge) against `a`, zeroed where depth spread to 0..1 is below bg_threshold."""
    depth = depth.astype(np.float32)
    spread = depth - depth.min()
    with np.errstate(invalid="ignore"):     # flat depth: no background (NaN compares false), as in the pack
        spread /= spread.max()
    x = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
    y = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3)
    z = np.ones_like(x) * np.float32(a)
    x[spread < bg_threshold] = 0
    y[spread < bg_threshold] = 0
    normal = np.stack([x, y, z], axis=2)
    with np.errstate(invalid="ignore"):
        normal /= np.sum(normal ** 2.0, axis=2, keepdims=True) ** 0.5
    # a = 0 on a flat background has no direction: mid-grey there, not the pack's undefined NaN cast
    normal = np.nan_to_num(normal, nan=0.0)
    return (normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)[:, :, ::-1].copy()


def midas_normal(estimator, frame: np.ndarray, resolution: int, a: float, bg_threshold: float) -> np.ndarray:
    """MiDaS-NormalMapPreprocessor's picture of one uint8 RGB frame, at the detect size."""
    import torch
    img, (th, tw) = detect_sized(frame, resolution, cv2.INTER_CUBIC)
    model = estimator.model
    x = torch.from_numpy(img).to(estimator.device).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    with torch.inference_mode():
        depth = dpt_depth(model, x.to(model.dtype))[0].float().cpu().numpy()
    return normal_picture(depth, a, bg_threshold)[:th, :tw]


def load_dpt(name: str, device: str):
    """The depth folder `name` as depth.estimate loads it, in float32 (the slopes of half-precision depth come out
    in steps), refused unless it is a DPT / MiDaS model."""
    from nodes.depth.estimate import load_estimator
    estimator = load_estimator(name, device, full_precision=True)
    kind = getattr(estimator.model.config, "model_type", "")
    if kind != "dpt":
        raise NodeError(f"normals.midas derives the normals from MiDaS's depth: {name} is a {kind or 'non-DPT'} "
                        "model; give the Hugging Face folder Intel/dpt-hybrid-midas (the pack's "
                        "dpt_hybrid-midas-501f0c75.pt) in a 'depth' model folder, or use depth.estimate for "
                        "this one's depth")
    return estimator
