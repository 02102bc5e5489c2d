"""The level of additive white noise in a frame, for the nodes that scale to it (denoise, deblur)."""
from __future__ import annotations

import cv2
import numpy as np

_LAPLACE_DIFF = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def estimate_noise(frame: np.ndarray) -> float:
    """Standard deviation of additive white noise per colour channel, in 8-bit levels: the median
    absolute response of Immerkaer's noise filter (1996) over all channels, which texture and edges
    (a minority of pixels) barely move. restore.denoise compares neighbours channel by channel, so it
    needs the channels' noise: measured on grey, where averaging the channels cancels a third of independent
    sensor noise, sigma 10 read as 6.7 and the noise left after averaging was half what it could be."""
    h, w = frame.shape[:2]
    if h < 3 or w < 3:
        return 0.0      # no 3x3 neighbourhood to measure in (a 2x2 clip estimated NaN)
    resp = np.abs(cv2.filter2D(frame.astype(np.float32), -1, _LAPLACE_DIFF)[1:-1, 1:-1])
    # The filter's gain on white noise is 6 (the root of its squared taps); 0.6745 sigma is the median |N(0, 1)|.
    return float(np.median(resp)) / (0.6745 * 6.0)
