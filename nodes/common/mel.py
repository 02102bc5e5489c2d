"""Triangular mel filter banks, for every sound feature Kinograph computes (LTX-2's audio VAE, ACE-Step v1's VAE,
Gemma 4's audio tower, WanDancer's music features): each release picks a scale and a normalisation, and four
copies of the same triangles had grown, two on HTK's scale and two on Slaney's."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

_LOG_STEP = math.log(6.4) / 27.0        # Slaney's mel scale above 1 kHz


def hz_to_mel(hz, scale: str) -> np.ndarray:
    """HTK's 2595 log10(1 + f / 700), or Slaney's: linear to 1 kHz (15 mel), logarithmic above."""
    hz = np.asarray(hz, np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    return np.where(hz < 1000.0, hz * 3.0 / 200.0, 15.0 + np.log(np.maximum(hz, 1e-30) / 1000.0) / _LOG_STEP)


def mel_to_hz(mel, scale: str) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp(_LOG_STEP * (mel - 15.0)))


def mel_filters(rate: float, n_fft: int, bands: int, scale: str = "htk", f_min: float = 0.0,
                f_max: Optional[float] = None, unit_area: bool = False) -> np.ndarray:
    """[n_fft // 2 + 1, bands] float64: triangles evenly spaced in mel from f_min to f_max (rate / 2) over the FFT's
    bins, peak 1 (torchaudio's melscale_fbanks with norm None) or, `unit_area`, each of area 1 (norm "slaney")."""
    top = rate / 2.0 if f_max is None else f_max
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min, scale), hz_to_mel(top, scale), bands + 2), scale)
    bins = np.linspace(0.0, rate // 2, n_fft // 2 + 1)
    width = np.diff(edges)
    rise = (bins[:, None] - edges[None, :-2]) / width[:-1]
    fall = (edges[None, 2:] - bins[:, None]) / width[1:]
    tri = np.maximum(0.0, np.minimum(rise, fall))
    return tri * (2.0 / (edges[2:] - edges[:-2]))[None] if unit_area else tri
