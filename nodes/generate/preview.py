"""A sampler's work in progress as a picture, cheaply: the current latent's channels projected
to RGB, for a live preview while sampling runs (a decode per step would cost more than the step).

No per-family colour factors are shipped: the projection is onto the frame's three main channel
directions (a 3-component PCA of a C x C covariance, microseconds), so shapes and motion read
while colours are only indicative. Signs are fixed so the picture does not flip between steps."""
from __future__ import annotations

import numpy as np


def latent_preview(x) -> np.ndarray:
    """uint8 [h, w, 3] of the middle frame of a latent [B, C, T, h, w] (or [B, C, h, w])."""
    import torch
    t = x.detach().float()
    frame = t[0, :, t.shape[2] // 2] if t.ndim == 5 else t[0]
    c, h, w = frame.shape
    flat = frame.reshape(c, h * w)
    flat = flat - flat.mean(dim=1, keepdim=True)
    if c >= 3:
        _, vecs = torch.linalg.eigh(flat @ flat.T / max(1, h * w - 1))
        basis = vecs[:, -3:].flip(1)                                  # largest variance first
        signs = torch.sign(basis.gather(0, basis.abs().argmax(0, keepdim=True)))
        rgb = (basis * signs).T @ flat
    else:
        rgb = flat[[0] * 3] if c == 1 else torch.cat([flat, flat[:1]])[:3]
    lo = torch.quantile(rgb, 0.01, dim=1, keepdim=True)
    hi = torch.quantile(rgb, 0.99, dim=1, keepdim=True)
    rgb = ((rgb - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
    return (rgb.reshape(3, h, w).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
