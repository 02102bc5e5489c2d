"""WanDancer's music features (ComfyUI's WanDancerEncodeAudio): 35 numbers per 1/30 s that the model's music
encoder reads, and the frame rate the clip is drawn at.

As the published pipeline computes them (librosa's features, rewritten in numpy / scipy by ComfyUI and followed here):
the sound mixed to mono, a first tempo guessed from the sound at its own rate, then the sound resampled to 15360 Hz
(30 frames of 512 samples a second; torchaudio's windowed-sinc resampler) and read as though it were at 22050 Hz
(the rate the features' filters are made for, so a frame is 1/30 s): per frame the onset strength, 20 MFCCs and 12
chroma (CENS, from a constant-Q transform at the estimated tuning), whether an onset peak and whether a beat (dynamic
programming around the tempo) falls there."""
from __future__ import annotations

import math

import numpy as np
import scipy.fft

from graph_engine import NodeError
from nodes.common.mel import mel_filters

FRAME_RATE = 30                 # feature frames a second
HOP = 512
RATE = FRAME_RATE * HOP         # the rate the sound is resampled to
NOMINAL = 22050                 # the rate the feature filters are made for
N_FFT = 2048
MELS, MFCCS = 128, 20
C1 = 32.70319566257483          # the constant-Q transform's lowest note
CHROMA_BINS_PER_OCTAVE, CHROMA_OCTAVES = 36, 7
BLOCK = 1024                    # frames whose spectra are taken at once (bounds a long song's memory)


# --- spectra ---------------------------------------------------------------------------------------------------------

def _hann(n: int, periodic: bool = True) -> np.ndarray:
    m = n if periodic else n - 1
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / m) if m > 0 else np.ones(n)


def _frames(y: np.ndarray, size: int, hop: int) -> np.ndarray:
    """[size, n] windows of y zero-padded by size // 2 at both ends, one every hop samples."""
    y = np.pad(y, size // 2)
    return np.lib.stride_tricks.sliding_window_view(y, size)[::hop].T


def mel_power(y: np.ndarray, sr: float) -> np.ndarray:
    """[MELS, frames] mel power spectrogram (Hann window of N_FFT, hop HOP), the frames' spectra BLOCK at a time
    (each frame's is its own, so the numbers are the same; whole, a 5-minute song's float64 spectra took GBs)."""
    frames, window = _frames(y, N_FFT, HOP), _hann(N_FFT)[:, None]
    power = np.empty((N_FFT // 2 + 1, frames.shape[1]), np.float32)
    for a in range(0, frames.shape[1], BLOCK):
        power[:, a:a + BLOCK] = np.abs(scipy.fft.rfft(window * frames[:, a:a + BLOCK], axis=0).astype(np.complex64)) ** 2
    return mel_filters(sr, N_FFT, MELS, "slaney", unit_area=True).T.astype(np.float32) @ power


def onset_strength(db: np.ndarray) -> np.ndarray:
    """Per frame: the mean rise of each mel band's level from the frame before, placed 3 frames later."""
    rise = np.maximum(0.0, np.diff(db, axis=1)).mean(0)
    return np.concatenate([np.zeros(1 + N_FFT // (2 * HOP), rise.dtype), rise])[:db.shape[1]]


# --- tempo and beats -------------------------------------------------------------------------------------------------

def tempo(onset: np.ndarray, sr: float, start_bpm: float = 120.0) -> float:
    """The tempo (beats a minute) whose lag the onsets' mean windowed autocorrelation favours most, weighed by a
    log-normal prior around start_bpm (one octave wide), below 320."""
    if len(onset) < 20:
        return 120.0
    win = min(int(round(8.0 * sr / HOP)), len(onset))
    padded = np.pad(onset, win // 2, mode="linear_ramp", end_values=(0, 0))
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[:len(onset)]
    size = scipy.fft.next_fast_len(2 * win - 1)
    ac = np.empty((len(onset), win))
    for a in range(0, len(onset), BLOCK):          # BLOCK frames at a time, as mel_power
        part = scipy.fft.irfft(np.abs(scipy.fft.rfft(frames[a:a + BLOCK] * _hann(win), n=size, axis=1)) ** 2,
                               n=size, axis=1)[:, :win]
        peak = np.abs(part).max(1, keepdims=True)
        ac[a:a + BLOCK] = np.where(peak > 0, part / np.where(peak > 0, peak, 1.0), part)
    strength = np.maximum(ac.mean(0), 0.0)
    with np.errstate(divide="ignore"):
        bpm = np.concatenate([[np.inf], 60.0 * sr / (HOP * np.arange(1.0, win))])
        prior = -0.5 * (np.log2(bpm) - np.log2(start_bpm)) ** 2
    fast = int(np.argmax(bpm < 320.0))
    if fast > 0:
        prior[:fast] = -np.inf
    return float(bpm[int(np.argmax((np.log1p(1e6 * strength) + prior)[1:])) + 1])


def first_tempo(y: np.ndarray, sr: float) -> float:
    """The tempo guessed from the sound at its own rate (120 for under ten hops of sound)."""
    if len(y) < HOP * 10:
        return 120.0
    db = 10.0 * np.log10(np.maximum(1e-10, mel_power(y, sr)))
    return tempo(onset_strength(db), sr)


def onset_peaks(onset: np.ndarray, sr: float = NOMINAL) -> np.ndarray:
    """Frames where the normalised onset strength is the largest of its frame and the one before, at least 0.07
    above its mean over 4 frames before to 4 after; a frame after each peak skipped."""
    x = onset - onset.min()
    if x.max() > 0:
        x = x / x.max()
    before_max, after_max = int(0.03 * sr / HOP), int(0.0 * sr / HOP) + 1
    before_avg, after_avg = int(0.10 * sr / HOP), int(0.10 * sr / HOP) + 1
    skip = int(0.03 * sr / HOP)
    n = len(x)
    peaks = np.zeros(n, bool)
    peaks[0] = x[0] >= x[:min(after_max, n)].max() and x[0] >= x[:min(after_avg, n)].mean() + 0.07
    i = skip + 1 if peaks[0] else 1
    while i < n:
        if x[i] == x[max(0, i - before_max):min(i + after_max, n)].max() and \
                x[i] >= x[max(0, i - before_avg):min(i + after_avg, n)].mean() + 0.07:
            peaks[i] = True
            i += skip + 1
        else:
            i += 1
    return np.flatnonzero(peaks)


def beats(onset: np.ndarray, bpm: float, sr: float = NOMINAL, tightness: float = 100.0) -> np.ndarray:
    """Beat frames: the chain of frames one beat period apart (give or take) that best follows the smoothed onsets,
    found by dynamic programming, from the last strong enough frame back; weak beats at either end dropped."""
    period = np.round(sr / HOP * 60.0 / bpm)
    n = len(onset)
    if period <= 0 or n < 2:
        return np.zeros(0, np.int64)
    sd = np.std(onset, ddof=1)
    norm = onset / sd if sd > 0 else onset
    span = np.arange(-period, period + 1)
    import scipy.signal
    local = scipy.signal.convolve(norm, np.exp(-0.5 * (span * 32.0 / period) ** 2), mode="same")
    back = np.full(n, -1, np.int64)
    score = np.zeros(n)
    score[0] = local[0]
    p = int(period)
    started = False
    floor = 0.01 * local.max()
    for i in range(1, n):
        hi = int(i - np.round(p / 2.0))
        lo = max(int(i - 2 * p - 1) + 1, 0)
        best = -1
        if hi >= lo and hi >= 0:
            cand = np.arange(hi, lo - 1, -1)
            gain = score[cand] - tightness * (np.log(i - cand) - np.log(p)) ** 2
            k = int(np.argmax(gain))
            best = int(cand[k])
            score[i] = local[i] + gain[k]
        else:
            score[i] = local[i]
        if started or local[i] >= floor:
            back[i] = best
            started = True
    peak = np.zeros(n, bool)
    peak[1:-1] = (score[1:-1] > score[:-2]) & (score[1:-1] >= score[2:])
    peak[-1] = score[-1] > score[-2]
    if peak.any():
        strong = np.flatnonzero(peak & (score >= 0.5 * np.median(score[peak])))
        tail = int(strong[-1]) if len(strong) else -1
    else:
        tail = n - 1
    on = np.zeros(n, bool)
    seen = set()
    while tail >= 0 and tail not in seen:
        on[tail] = True
        seen.add(tail)
        tail = int(back[tail])
    if on.any():
        smooth = np.convolve(local[on], np.hanning(5))[2:n + 2]
        weak = 0.5 * np.sqrt(np.mean(smooth ** 2))
        lead = np.flatnonzero(local > weak)
        if len(lead):
            on[:lead[0]] = False
            on[lead[-1] + 1:] = False
        else:
            on[:] = False
    return np.flatnonzero(on)


# --- chroma ----------------------------------------------------------------------------------------------------------

def tuning(y: np.ndarray, sr: float, bins_per_octave: int = CHROMA_BINS_PER_OCTAVE) -> float:
    """The offset from A440 tuning (in bins) most of the sound's strong spectral peaks between 150 Hz and 4 kHz
    sit at, to 0.01."""
    if len(y) < N_FFT:
        return 0.0
    mag = np.abs(scipy.fft.rfft((_hann(N_FFT)[:, None] * _frames(y, N_FFT, HOP)).astype(np.float32), axis=0))
    up, down = np.roll(mag, -1, 0), np.roll(mag, 1, 0)
    curve, slope = up + down - 2 * mag, (up - down) / 2.0
    shift = np.zeros_like(mag)
    ok = np.abs(slope) < np.abs(curve)
    shift[ok] = -slope[ok] / curve[ok]
    shift[[0, -1]] = 0
    skew = 0.5 * np.gradient(mag, axis=0) * shift
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    band = ((150.0 <= freqs) & (freqs < min(4000.0, sr / 2.0)))[:, None]
    kept = mag * (mag > 0.1 * mag.max(0, keepdims=True))
    top = np.zeros(kept.shape, bool)
    top[1:-1] = (kept[1:-1] > kept[:-2]) & (kept[1:-1] >= kept[2:])
    top[-1] = kept[-1] > kept[-2]
    rows, cols = np.nonzero(band & top)
    # float32, as the published code keeps its pitch table
    pitch = ((rows + shift[rows, cols]) * float(sr) / N_FFT).astype(np.float32)
    level = mag[rows, cols] + skew[rows, cols]
    sounding = pitch > 0
    if not sounding.any():
        return 0.0
    pitch = pitch[sounding & (level >= np.median(level[sounding]))]
    if not len(pitch):
        return 0.0
    off = np.mod(bins_per_octave * np.log2(pitch / (440.0 / 16)), 1.0)
    off[off >= 0.5] -= 1.0
    counts, edges = np.histogram(off, np.linspace(-0.5, 0.5, 101))
    return float(edges[np.argmax(counts)])


def _half_rate(y: np.ndarray) -> np.ndarray:
    """y at half its rate (a Kaiser-windowed low-pass, as soxr's resampler), scaled by sqrt(2)."""
    import scipy.signal
    taps = scipy.signal.firwin(321, 0.48, window=("kaiser", 6.5))
    out = scipy.signal.resample_poly(y.astype(np.float32), 1, 2, window=taps)
    size = int(np.ceil(len(y) * 0.5))
    out = np.pad(out[:size], (0, max(0, size - len(out))))
    return (out / np.sqrt(0.5)).astype(np.float32)


def _wavelets(freqs, alpha, sr):
    """The octave's complex Hann-windowed wavelets, each of unit L1 norm, centred in one power-of-two frame; their
    lengths."""
    lengths = (1.0 / alpha) * sr / freqs
    size = int(2.0 ** np.ceil(np.log2(lengths.max())))
    out = np.zeros((len(freqs), size), np.complex64)
    for k, (n, f) in enumerate(zip(lengths, freqs)):
        t = np.arange(math.floor(-n / 2), math.floor(n / 2), dtype=np.float64)
        turn = t * 2 * np.pi * f / sr
        w = (np.cos(turn) + 1j * np.sin(turn)).astype(np.complex64)
        w *= _hann(len(t))
        w /= max(np.abs(w).sum(), np.finfo(np.float32).tiny)
        out[k, (size - len(w)) // 2:(size - len(w)) // 2 + len(w)] = w
    return out, lengths


def _sparse_rows(x: np.ndarray, share: float = 0.01) -> np.ndarray:
    """Each row with its smallest magnitudes (together under `share` of the row's sum) set to zero."""
    mags = np.abs(x)
    total = mags.sum(1, keepdims=True)
    order = np.sort(mags, axis=1)
    cut = np.argmin(np.cumsum(order / np.where(total == 0, 1.0, total), axis=1) < share, axis=1)
    floor = order[np.arange(len(x)), cut][:, None]
    return np.where(mags >= floor, x, 0)


def constant_q(y, sr, fmin, n_bins, bins_per_octave, tune) -> np.ndarray:
    """[n_bins, frames] magnitude of the constant-Q transform, an octave at a time from the top, the sound halved
    in rate (and the hop) after each."""
    fmin = fmin * 2.0 ** (tune / bins_per_octave)
    freqs = fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)
    logf = np.log2(freqs)
    per = np.empty_like(freqs)
    per[0], per[-1] = 1.0 / (logf[1] - logf[0]), 1.0 / (logf[-1] - logf[-2])
    per[1:-1] = 2.0 / (logf[2:] - logf[:-2])
    alpha = (2.0 ** (2.0 / per) - 1.0) / (2.0 ** (2.0 / per) + 1.0)
    lengths = (1.0 / alpha) * float(sr) / freqs
    octaves = int(np.ceil(n_bins / bins_per_octave))
    per_octave = min(bins_per_octave, n_bins)
    cur, rate, hop = y.astype(np.float32), float(sr), HOP
    parts = []
    for i in range(octaves):
        sl = slice(n_bins - per_octave * (i + 1), n_bins - per_octave * i)
        basis, blen = _wavelets(freqs[sl], alpha[sl], rate)
        size = basis.shape[1]
        basis *= blen[:, None] / float(size)
        spectra = _sparse_rows(scipy.fft.fft(basis, n=size, axis=1)[:, :size // 2 + 1])
        spectra = spectra * np.sqrt(sr / rate)
        parts.append(spectra @ scipy.fft.rfft(_frames(cur, size, hop), axis=0))
        if hop % 2 == 0:
            hop, rate, cur = hop // 2, rate / 2.0, _half_rate(cur)
    cols = min(p.shape[1] for p in parts)
    out = np.concatenate([p[:, :cols] for p in reversed(parts)])[-n_bins:].astype(np.complex64)
    out /= np.sqrt(lengths)[:, None]
    return np.abs(out).astype(np.float32)


def chroma_cens(y: np.ndarray, sr: float = NOMINAL) -> np.ndarray:
    """[12, frames] chroma energy normalised statistics: the constant-Q energy (7 octaves of 36 bins from C1) folded
    into pitch classes, shares quantised at 0.4 / 0.2 / 0.1 / 0.05, smoothed over 41 frames, unit length."""
    import scipy.ndimage
    bpo, n_bins = CHROMA_BINS_PER_OCTAVE, CHROMA_BINS_PER_OCTAVE * CHROMA_OCTAVES
    cq = constant_q(y, sr, C1, n_bins, bpo, tuning(y, sr, bpo))
    merge = bpo // 12
    fold = np.roll(np.repeat(np.eye(12), merge, axis=1), -(merge // 2), axis=1)
    fold = np.tile(fold, int(np.ceil(n_bins / bpo)))[:, :n_bins]
    fold = np.roll(fold, int(np.round(np.mod(12 * np.log2(C1 / 440.0) + 69, 12))), axis=0).astype(np.float32)
    chroma = fold @ cq
    chroma = chroma / np.maximum(np.abs(chroma).sum(0, keepdims=True), np.finfo(chroma.dtype).tiny)
    quant = sum((chroma > step).astype(np.float32) * 0.25 for step in (0.4, 0.2, 0.1, 0.05))
    win = _hann(43, periodic=False)
    quant = scipy.ndimage.convolve(quant, (win / win.sum())[None], mode="constant")
    return quant / np.maximum(np.sqrt((quant ** 2).sum(0, keepdims=True)), np.finfo(quant.dtype).tiny)


# --- the whole ---------------------------------------------------------------------------------------------------------

def resample(y: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """y at rate_out, as torchaudio.functional.resample makes it (windowed sinc, 6 zero crossings, roll-off 0.99),
    all in float32 as it computes for a float32 sound."""
    import torch
    import torch.nn.functional as F
    if rate_in == rate_out:
        return y
    g = math.gcd(int(rate_in), int(rate_out))
    a, b = int(rate_in) // g, int(rate_out) // g
    cutoff = min(a, b) * 0.99
    width = math.ceil(6 * a / cutoff)
    f32 = {"dtype": torch.float32}
    t = (torch.arange(0, -b, -1, **f32)[:, None] / b + torch.arange(-width, width + a, **f32)[None] / a) * cutoff
    t = t.clamp(-6, 6)
    window = torch.cos(t * math.pi / 6 / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0), torch.sin(t) / t) * (window * (cutoff / a))
    x = F.pad(torch.from_numpy(np.ascontiguousarray(y, np.float32))[None, None], (width, width + a))
    out = F.conv1d(x, kernel[:, None], stride=a)[0].T.reshape(-1)
    return out[:math.ceil(b * len(y) / a)].numpy()


def features(mono: np.ndarray, rate: int) -> np.ndarray:
    """[frames, 35] of a mono sound at `rate` Hz: onset strength, 20 MFCCs, 12 chroma, onset peak, beat."""
    start = first_tempo(mono, rate)
    y = resample(mono, rate, RATE)
    db = 10.0 * np.log10(np.maximum(1e-10, mel_power(y, NOMINAL)))
    db = np.maximum(db, db.max() - 80.0)
    onset = onset_strength(db)
    mfcc = scipy.fft.dct(db, axis=0, type=2, norm="ortho")[:MFCCS].T.astype(np.float32)
    chroma = chroma_cens(y).T
    peak, beat = np.zeros(len(onset), np.float32), np.zeros(len(onset), np.float32)
    peak[onset_peaks(onset)] = 1.0
    beat[beats(onset, tempo(onset, NOMINAL, start))] = 1.0
    return np.concatenate([onset[:, None], mfcc, chroma, peak[:, None], beat[:, None]], axis=1).astype(np.float32)


def native_rate(audio) -> int:
    """The sample rate of the first file `audio` plays (its sound is read at that rate, as ComfyUI loads it)."""
    import av
    path = next((p.path for p in audio.pieces() if p.path), None)
    if path is None:
        return RATE
    with av.open(str(path)) as c:
        return int(c.streams.audio[0].rate)


def encode(mono: np.ndarray, rate: int, frames: int, scale: float) -> tuple:
    """(music features {"dancer": [1, T, 35], "fps", "scale"}, the prompt's frame-rate words) of a mono sound for a
    clip of `frames` frames: the rate is 30 / (feature frames per video frame, rounded)."""
    import torch
    feats = features(mono, rate)
    step = int(feats.shape[0] / frames + 0.5)
    if step < 1:
        raise NodeError(f"the music lasts {len(mono) / rate:.2f} s, under half of the {frames} frames' {frames / 30:.2f} "
                        "s at 30 fps: WanDancer draws a clip no faster than that; give more music or fewer frames")
    fps = float(FRAME_RATE / step)
    # the prompt's words for the rate, as the published pipeline writes them ("frame rate is")
    words = " 帧率是{:.4f}".format(fps) if int(fps + 0.5) != FRAME_RATE else ", 帧率是30fps。"
    return {"dancer": torch.from_numpy(feats)[None], "fps": fps, "scale": float(scale)}, words
