"""WanDancer's music features (encode.wan_dancer_audio, ComfyUI's WanDancerEncodeAudio) against ComfyUI's
comfy_extras/nodes_wandancer.py written out below (its librosa-derived mel, onset, tempo, peak, beat, tuning, CQT and
chroma CENS code, and torchaudio.functional.resample's windowed-sinc kernel, which it calls) on a synthetic song."""
import math

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage
import scipy.signal
import scipy.sparse
import torch

from graph_engine import NodeError


# --- ComfyUI's code ----------------------------------------------------------------------------------------------------

def mel_to_hz(mels):
    mels = np.asanyarray(mels)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = 1000.0 * np.exp(logstep * (mels[log_t] - min_log_mel))
    return freqs


def hz_to_mel(frequencies):
    frequencies = np.asanyarray(frequencies)
    f_sp = 200.0 / 3
    mels = frequencies / f_sp
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    if frequencies.ndim:
        log_t = frequencies >= 1000.0
        mels[log_t] = min_log_mel + np.log(frequencies[log_t] / 1000.0) / logstep
    elif frequencies >= 1000.0:
        mels = min_log_mel + np.log(frequencies / 1000.0) / logstep
    return mels


def compute_cqt(y, sr, hop_length, fmin, n_bins, bins_per_octave, tuning):
    def _relative_bandwidth(freqs):
        bpo = np.empty_like(freqs)
        logf = np.log2(freqs)
        bpo[0] = 1.0 / (logf[1] - logf[0])
        bpo[-1] = 1.0 / (logf[-1] - logf[-2])
        bpo[1:-1] = 2.0 / (logf[2:] - logf[:-2])
        return (2.0 ** (2.0 / bpo) - 1.0) / (2.0 ** (2.0 / bpo) + 1.0)

    def _wavelet_lengths(freqs, sr, filter_scale, alpha):
        Q = float(filter_scale) / alpha
        return Q * sr / freqs

    def _build_wavelet(freqs_oct, sr, filter_scale, alpha_oct):
        lengths = _wavelet_lengths(freqs_oct, sr, filter_scale, alpha_oct)
        filters = []
        for ilen, freq in zip(lengths, freqs_oct):
            t = np.arange(int(-ilen // 2), int(ilen // 2), dtype=float)
            sig = (np.cos(t * 2 * np.pi * freq / sr) + 1j * np.sin(t * 2 * np.pi * freq / sr)).astype(np.complex64)
            sig *= scipy.signal.get_window('hann', len(sig), fftbins=True)
            sig /= max(np.sum(np.abs(sig)), np.finfo(np.float32).tiny)
            filters.append(sig)
        n_fft = int(2.0 ** np.ceil(np.log2(max(lengths))))
        out = np.zeros((len(filters), n_fft), dtype=np.complex64)
        for k, f in enumerate(filters):
            lpad = int((n_fft - len(f)) // 2)
            out[k, lpad: lpad + len(f)] = f
        return out, lengths

    def _resample_half(y):
        n_samples = int(np.ceil(len(y) * 0.5))
        h = scipy.signal.firwin(160 * 2 + 1, 0.96 / 2, window=('kaiser', 6.5))
        y_hat = scipy.signal.resample_poly(y.astype(np.float32), 1, 2, window=h)
        if len(y_hat) > n_samples:
            y_hat = y_hat[:n_samples]
        elif len(y_hat) < n_samples:
            y_hat = np.pad(y_hat, (0, n_samples - len(y_hat)))
        y_hat /= np.sqrt(0.5)
        return y_hat.astype(np.float32)

    def _sparsify_rows(x, quantile=0.01):
        mags = np.abs(x)
        norms = np.sum(mags, axis=1, keepdims=True)
        norms = np.where(norms == 0, 1.0, norms)
        mag_sort = np.sort(mags, axis=1)
        cumulative_mag = np.cumsum(mag_sort / norms, axis=1)
        threshold_idx = np.argmin(cumulative_mag < quantile, axis=1)
        x_sparse = scipy.sparse.lil_matrix(x.shape, dtype=x.dtype)
        for i, j in enumerate(threshold_idx):
            idx = np.where(mags[i] >= mag_sort[i, j])
            x_sparse[i, idx] = x[i, idx]
        return x_sparse.tocsr()

    fmin = fmin * (2.0 ** (tuning / bins_per_octave))
    freqs = fmin * (2.0 ** (np.arange(n_bins) / bins_per_octave))
    alpha = _relative_bandwidth(freqs)
    lengths = _wavelet_lengths(freqs, float(sr), 1, alpha)
    n_octaves = int(np.ceil(float(n_bins) / bins_per_octave))
    n_filters = min(bins_per_octave, n_bins)
    cqt_resp = []
    my_y, my_sr, my_hop = y.astype(np.float32), float(sr), int(hop_length)
    for i in range(n_octaves):
        sl = slice(-n_filters, None) if i == 0 else slice(-n_filters * (i + 1), -n_filters * i)
        basis, basis_lengths = _build_wavelet(freqs[sl], my_sr, 1, alpha[sl])
        n_fft_oct = basis.shape[1]
        basis = basis.astype(np.complex64)
        basis *= basis_lengths[:, np.newaxis] / float(n_fft_oct)
        fft_basis = scipy.fft.fft(basis, n=n_fft_oct, axis=1)[:, :(n_fft_oct // 2) + 1]
        fft_basis = _sparsify_rows(fft_basis, quantile=0.01)
        fft_basis = fft_basis * np.sqrt(sr / my_sr)
        y_pad = np.pad(my_y, int(n_fft_oct // 2), mode='constant')
        n_frames = 1 + (len(y_pad) - n_fft_oct) // my_hop
        frames = np.lib.stride_tricks.as_strided(y_pad, shape=(n_fft_oct, n_frames),
                                                 strides=(y_pad.strides[0], y_pad.strides[0] * my_hop))
        cqt_resp.append(fft_basis.dot(scipy.fft.rfft(frames, axis=0)))
        if my_hop % 2 == 0:
            my_hop //= 2
            my_sr /= 2.0
            my_y = _resample_half(my_y)
    max_col = min(c.shape[-1] for c in cqt_resp)
    cqt_out = np.empty((n_bins, max_col), dtype=np.complex64)
    end = n_bins
    for c_i in cqt_resp:
        n_oct = c_i.shape[0]
        if end < n_oct:
            cqt_out[:end, :] = c_i[-end:, :max_col]
        else:
            cqt_out[end - n_oct:end, :] = c_i[:, :max_col]
        end -= n_oct
    cqt_out /= np.sqrt(lengths)[:, np.newaxis]
    return np.abs(cqt_out).astype(np.float32)


def cq_to_chroma_mapping(n_input, bins_per_octave=12, n_chroma=12, fmin=32.70319566257483):
    n_merge = bins_per_octave / n_chroma
    cq_to_ch = np.repeat(np.eye(n_chroma), int(n_merge), axis=1)
    cq_to_ch = np.roll(cq_to_ch, -int(n_merge // 2), axis=1)
    n_octaves = int(np.ceil(n_input / bins_per_octave))
    cq_to_ch = np.tile(cq_to_ch, n_octaves)[:, :n_input]
    midi_0 = np.mod(12 * np.log2(fmin / 440.0) + 69, 12)
    cq_to_ch = np.roll(cq_to_ch, int(np.round(midi_0 * (n_chroma / 12.0))), axis=0)
    return cq_to_ch.astype(np.float32)


def _parabolic_interpolation(S):
    S_next, S_prev = np.roll(S, -1, axis=0), np.roll(S, 1, axis=0)
    a = S_next + S_prev - 2 * S
    b = (S_next - S_prev) / 2.0
    shifts = np.zeros_like(S)
    valid = np.abs(b) < np.abs(a)
    shifts[valid] = -b[valid] / a[valid]
    shifts[0, ...] = 0
    shifts[-1, ...] = 0
    return shifts


def _localmax(S):
    S_prev, S_next = np.roll(S, 1, axis=0), np.roll(S, -1, axis=0)
    local_max = (S > S_prev) & (S >= S_next)
    local_max[-1, ...] = S[-1, ...] > S[-2, ...]
    local_max[0, ...] = False
    return local_max


def piptrack(y, sr, n_fft=2048, hop_length=512, fmin=150.0, fmax=4000.0, threshold=0.1):
    fft_window = scipy.signal.get_window('hann', n_fft, fftbins=True).reshape((-1, 1))
    y_pad = np.pad(y, int(n_fft // 2), mode='constant')
    n_frames = 1 + (len(y_pad) - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(y_pad, shape=(n_fft, n_frames),
                                             strides=(y_pad.strides[0], y_pad.strides[0] * hop_length))
    S = np.abs(scipy.fft.rfft((fft_window * frames).astype(np.float32), axis=0))
    fmax = min(fmax, float(sr) / 2)
    fft_freqs = np.fft.rfftfreq(S.shape[0] * 2 - 2, 1.0 / sr)
    shift = _parabolic_interpolation(S)
    dskew = 0.5 * np.gradient(S, axis=0) * shift
    pitches, mags = np.zeros_like(S), np.zeros_like(S)
    freq_mask = ((fmin <= fft_freqs) & (fft_freqs < fmax)).reshape(-1, 1)
    ref_value = threshold * np.max(S, axis=0, keepdims=True)
    idx = np.nonzero(freq_mask & _localmax(S * (S > ref_value)))
    pitches[idx] = (idx[0] + shift[idx]) * float(sr) / (S.shape[0] * 2 - 2)
    mags[idx] = S[idx] + dskew[idx]
    return pitches, mags


def pitch_tuning(frequencies, resolution=0.01, bins_per_octave=12):
    frequencies = np.atleast_1d(frequencies)
    frequencies = frequencies[frequencies > 0]
    if not np.any(frequencies):
        return 0.0
    residual = np.mod(bins_per_octave * np.log2(np.asanyarray(frequencies) / (440.0 / 16)), 1.0)
    residual[residual >= 0.5] -= 1.0
    bins = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    counts, tuning = np.histogram(residual, bins)
    return tuning[np.argmax(counts)]


def estimate_tuning(y, sr, bins_per_octave):
    if len(y) < 2048:
        return 0.0
    pitch, mag = piptrack(y, sr)
    pitch_mask = pitch > 0
    if not pitch_mask.any():
        return 0.0
    threshold = np.median(mag[pitch_mask])
    valid_pitches = pitch[(mag >= threshold) & pitch_mask]
    if len(valid_pitches) == 0:
        return 0.0
    return float(pitch_tuning(valid_pitches, resolution=0.01, bins_per_octave=bins_per_octave))


def compute_chroma_cens(y, sr=22050, hop_length=512, n_chroma=12, n_octaves=7, bins_per_octave=36,
                        win_len_smooth=41):
    tuning = estimate_tuning(y, sr, bins_per_octave=bins_per_octave)
    fmin = 32.70319566257483
    n_bins = n_octaves * bins_per_octave
    cqt_mag = compute_cqt(y, sr, hop_length, fmin, n_bins, bins_per_octave, tuning)
    chroma = np.dot(cq_to_chroma_mapping(n_bins, bins_per_octave, n_chroma, fmin), cqt_mag)
    chroma_sum = np.maximum(np.sum(np.abs(chroma), axis=0, keepdims=True), np.finfo(chroma.dtype).tiny)
    chroma = chroma / chroma_sum
    chroma_quant = np.zeros_like(chroma)
    for step, weight in zip([0.4, 0.2, 0.1, 0.05], [0.25, 0.25, 0.25, 0.25]):
        chroma_quant += (chroma > step) * weight
    win = scipy.signal.get_window('hann', win_len_smooth + 2, fftbins=False)
    win /= np.sum(win)
    chroma_smooth = scipy.ndimage.convolve(chroma_quant, win.reshape(1, -1), mode='constant')
    chroma_norm = np.sqrt(np.sum(chroma_smooth ** 2, axis=0, keepdims=True))
    return chroma_smooth / np.maximum(chroma_norm, np.finfo(chroma_smooth.dtype).tiny)


def _create_mel_filterbank(sr, n_fft, n_mels=128):
    fmax = sr / 2.0
    mel_basis = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        mel_basis[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    mel_basis *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return mel_basis


def _compute_mel_spectrogram(data, sr, n_fft=2048, hop_length=512, n_mels=128):
    fft_window = scipy.signal.get_window('hann', n_fft, fftbins=True).reshape((-1, 1))
    data_padded = np.pad(data, int(n_fft // 2), mode='constant')
    n_frames = 1 + (len(data_padded) - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(data_padded, shape=(n_fft, n_frames),
                                             strides=(data_padded.strides[0], data_padded.strides[0] * hop_length))
    power_spec = np.abs(scipy.fft.rfft(fft_window * frames, axis=0).astype(np.complex64)) ** 2
    return np.dot(_create_mel_filterbank(sr, n_fft, n_mels=n_mels), power_spec).astype(np.float32)


def estimate_tempo_from_onset(onset_env, sr, hop_length, start_bpm=120.0, std_bpm=1.0, max_tempo=320.0):
    if len(onset_env) < 20:
        return 120.0
    win_length = min(int(np.round(8.0 * sr / hop_length)), len(onset_env))
    onset_padded = np.pad(onset_env, (win_length // 2, win_length // 2), mode='linear_ramp', end_values=(0, 0))
    n_frames = len(onset_env)
    frames = np.lib.stride_tricks.as_strided(onset_padded, shape=(win_length, n_frames),
                                             strides=(onset_padded.strides[0], onset_padded.strides[0]))
    windowed_frames = frames * scipy.signal.get_window('hann', win_length, fftbins=True)[:, np.newaxis]
    tempogram = np.zeros((win_length, n_frames))
    for i in range(n_frames):
        frame = windowed_frames[:, i]
        n_pad = scipy.fft.next_fast_len(2 * len(frame) - 1)
        powspec = np.abs(scipy.fft.rfft(frame, n=n_pad)) ** 2
        tempogram[:, i] = scipy.fft.irfft(powspec, n=n_pad)[:win_length]
    ac_max = np.max(np.abs(tempogram), axis=0)
    mask = ac_max > 0
    tempogram[:, mask] /= ac_max[mask]
    tempogram_mean = np.maximum(np.mean(tempogram, axis=1), 0)
    bpms = np.zeros(win_length, dtype=np.float64)
    bpms[0] = np.inf
    bpms[1:] = 60.0 * sr / (hop_length * np.arange(1.0, win_length))
    with np.errstate(divide="ignore"):
        logprior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2
    max_idx = int(np.argmax(bpms < max_tempo))
    if max_idx > 0:
        logprior[:max_idx] = -np.inf
    weighted = np.log1p(1e6 * tempogram_mean) + logprior
    return bpms[int(np.argmax(weighted[1:])) + 1]


def quick_tempo_estimate(audio_np, sr, hop_length=512):
    if len(audio_np) < hop_length * 10:
        return 120.0
    mel_S = _compute_mel_spectrogram(audio_np, sr, n_fft=2048, hop_length=hop_length, n_mels=128)
    log_mel_S = 10.0 * np.log10(np.maximum(1e-10, mel_S))
    S_onset = np.maximum(0.0, log_mel_S[:, 1:] - log_mel_S[:, :-1])
    onset_env = np.pad(np.mean(S_onset, axis=0), (1 + 2048 // (2 * hop_length), 0), mode='constant')
    return estimate_tempo_from_onset(onset_env[:mel_S.shape[1]], sr, hop_length, 120.0, 1.0, max_tempo=320.0)


def detect_onset_peaks(onset_env, sr=22050, hop_length=512, pre_max=0.03, post_max=0.0, pre_avg=0.10, post_avg=0.10,
                       wait=0.03, delta=0.07):
    x = onset_env - np.min(onset_env)
    if np.max(x) > 0:
        x = x / np.max(x)
    pre_max_frames, post_max_frames = int(pre_max * sr / hop_length), int(post_max * sr / hop_length) + 1
    pre_avg_frames, post_avg_frames = int(pre_avg * sr / hop_length), int(post_avg * sr / hop_length) + 1
    wait_frames = int(wait * sr / hop_length)
    peaks = np.zeros(len(x), dtype=bool)
    peaks[0] = (x[0] >= np.max(x[:min(post_max_frames, len(x))]))
    peaks[0] &= (x[0] >= np.mean(x[:min(post_avg_frames, len(x))]) + delta)
    n = wait_frames + 1 if peaks[0] else 1
    while n < len(x):
        peaks[n] = (x[n] == np.max(x[max(0, n - pre_max_frames):min(n + post_max_frames, len(x))]))
        if not peaks[n]:
            n += 1
            continue
        peaks[n] &= (x[n] >= np.mean(x[max(0, n - pre_avg_frames):min(n + post_avg_frames, len(x))]) + delta)
        if not peaks[n]:
            n += 1
            continue
        n += wait_frames + 1
    return np.flatnonzero(peaks).astype(np.int32)


def track_beats(onset_env, tempo, sr, hop_length, tightness=100):
    frames_per_beat = np.round(sr / hop_length * 60.0 / tempo)
    if frames_per_beat <= 0 or len(onset_env) < 2:
        return np.array([], dtype=np.int32)
    onset_std = np.std(onset_env, ddof=1)
    onset_normalized = onset_env / onset_std if onset_std > 0 else onset_env
    window_range = np.arange(-frames_per_beat, frames_per_beat + 1)
    window = np.exp(-0.5 * (window_range * 32.0 / frames_per_beat) ** 2)
    localscore = scipy.signal.convolve(onset_normalized, window, mode='same')
    backlink = np.full(len(localscore), -1, dtype=np.int32)
    cumscore = np.zeros(len(localscore), dtype=np.float64)
    score_thresh = 0.01 * localscore.max()
    first_beat = True
    cumscore[0] = localscore[0]
    fpb = int(frames_per_beat)
    for i in range(1, len(localscore)):
        score_i = localscore[i]
        best_score, beat_location = -np.inf, -1
        for loc in range(int(i - np.round(fpb / 2.0)), int(i - 2 * fpb - 1), -1):
            if loc < 0:
                break
            score = cumscore[loc] - tightness * (np.log(i - loc) - np.log(fpb)) ** 2
            if score > best_score:
                best_score, beat_location = score, loc
        cumscore[i] = score_i + best_score if beat_location >= 0 else score_i
        if first_beat and score_i < score_thresh:
            backlink[i] = -1
        else:
            backlink[i] = beat_location
            first_beat = False
    local_max_mask = np.zeros(len(cumscore), dtype=bool)
    for i in range(1, len(cumscore) - 1):
        local_max_mask[i] = (cumscore[i] > cumscore[i - 1]) and (cumscore[i] >= cumscore[i + 1])
    local_max_mask[-1] = cumscore[-1] > cumscore[-2]
    if np.any(local_max_mask):
        threshold = 0.5 * np.median(cumscore[local_max_mask])
        tail = -1
        for i in range(len(cumscore) - 1, -1, -1):
            if local_max_mask[i] and cumscore[i] >= threshold:
                tail = i
                break
    else:
        tail = len(cumscore) - 1
    beats = np.zeros(len(localscore), dtype=bool)
    n, visited = tail, set()
    while n >= 0 and n not in visited:
        beats[n] = True
        visited.add(n)
        n = backlink[n]
    if np.any(beats):
        w = np.hanning(5)
        smooth_boe = np.convolve(localscore[np.flatnonzero(beats)], w)[len(w) // 2: len(localscore) + len(w) // 2]
        threshold = 0.5 * np.sqrt(np.mean(smooth_boe ** 2))
        start_frame = 0
        while start_frame < len(localscore) and localscore[start_frame] <= threshold:
            beats[start_frame] = False
            start_frame += 1
        end_frame = len(localscore) - 1
        while end_frame >= 0 and localscore[end_frame] <= threshold:
            beats[end_frame] = False
            end_frame -= 1
    return np.flatnonzero(beats).astype(np.int32)


def torchaudio_resample(waveform, orig_freq, new_freq, lowpass_filter_width=6, rolloff=0.99):
    """torchaudio.functional.resample (sinc_interp_hann) for a float32 waveform [..., time]."""
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    base_freq = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base_freq)
    idx = torch.arange(-width, width + orig, dtype=waveform.dtype)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=waveform.dtype)[:, None, None] / new + idx
    t *= base_freq
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * (base_freq / orig)
    shape = waveform.size()
    waveform = waveform.view(-1, shape[-1])
    num_wavs, length = waveform.shape
    waveform = torch.nn.functional.pad(waveform, (width, width + orig))
    resampled = torch.nn.functional.conv1d(waveform[:, None], kernels, stride=orig)
    resampled = resampled.transpose(1, 2).reshape(num_wavs, -1)
    resampled = resampled[..., :torch.ceil(torch.as_tensor(new * length / orig)).long()]
    return resampled.view(shape[:-1] + resampled.shape[-1:])


def comfy_encode_audio(waveform, sample_rate, video_frames):
    """WanDancerEncodeAudio.execute: (audio_feature [1, T, 35], fps, fps_string) of a waveform [channels, samples]."""
    base_fps, hop_length, model_sr, n_fft = 30, 512, 22050, 2048
    if waveform.shape[0] > 1:
        waveform = waveform.mean(dim=0, keepdim=False)
    start_bpm = quick_tempo_estimate(waveform.squeeze().cpu().numpy(), sample_rate, hop_length=hop_length)
    waveform = torchaudio_resample(waveform, sample_rate, base_fps * hop_length)
    waveform_np = waveform.cpu().numpy().squeeze()
    mel_spec = _compute_mel_spectrogram(waveform_np, model_sr, n_fft, hop_length, n_mels=128)
    log_spec = 10.0 * np.log10(np.maximum(1e-10, mel_spec))
    mel_spec_db = np.maximum(log_spec, log_spec.max() - 80.0)
    onset_diff = np.maximum(0.0, mel_spec_db[:, 1:] - mel_spec_db[:, :-1])
    envelope = np.pad(np.mean(onset_diff, axis=0), (1 + n_fft // (2 * hop_length), 0),
                      mode='constant')[:mel_spec_db.shape[1]]
    mfcc = scipy.fft.dct(mel_spec_db, axis=0, type=2, norm='ortho')[:20].T.astype(np.float32)
    chroma = compute_chroma_cens(y=waveform_np, sr=model_sr, hop_length=hop_length).T
    peak_onehot = np.zeros_like(envelope, dtype=np.float32)
    peak_onehot[detect_onset_peaks(envelope, sr=model_sr, hop_length=hop_length)] = 1.0
    beat_tracking_tempo = estimate_tempo_from_onset(envelope, sr=model_sr, hop_length=hop_length, start_bpm=start_bpm)
    beat_onehot = np.zeros_like(envelope, dtype=np.float32)
    beat_onehot[track_beats(envelope, beat_tracking_tempo, model_sr, hop_length, tightness=100)] = 1.0
    audio_feature = np.concatenate([envelope[:, None], mfcc, chroma, peak_onehot[:, None], beat_onehot[:, None]],
                                   axis=-1)
    audio_feature = torch.from_numpy(audio_feature).unsqueeze(0)
    fps = float(base_fps / int(audio_feature.shape[1] / video_frames + 0.5))
    fps_string = " 帧率是{:.4f}".format(fps) if int(fps + 0.5) != 30 else ", 帧率是30fps。"
    return audio_feature, fps, fps_string


# --- the test song -------------------------------------------------------------------------------------------------------

def song(seconds, rate, channels=2, bpm=124.0, seed=0):
    """A short synthetic song: a kick on every beat and a hat off it, a slightly detuned chord (A minor, 3 cents
    sharp) changing every two bars, a little noise; stereo with the channels apart."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    beat = 60.0 / bpm
    phase = np.mod(t, beat)
    kick = np.sin(2 * np.pi * 55 * phase) * np.exp(-phase * 18)
    off = np.mod(t + beat / 2, beat)
    hat = rng.standard_normal(len(t)) * np.exp(-off * 60) * 0.2
    sharp = 2 ** (3 / 1200)
    chords = [(220.0, 261.63, 329.63), (174.61, 220.0, 261.63)]
    which = (t // (8 * beat)).astype(int) % 2
    pad = sum(np.where(which == k, np.sin(2 * np.pi * f * sharp * t), 0) for k, c in enumerate(chords) for f in c)
    mono = 0.5 * kick + hat + 0.08 * pad + 0.01 * rng.standard_normal(len(t))
    left, right = mono * 0.9, mono * 0.7 + 0.02 * np.sin(2 * np.pi * 440 * t)
    return np.stack([left, right][:channels]).astype(np.float32)


@pytest.mark.parametrize("rate,seconds,frames,fps", [(44100, 6.0, 37, 6.0), (48000, 3.2, 45, 15.0),
                                                     (22050, 2.0, 61, 30.0)])
def test_the_music_features_equal_comfyuis(rate, seconds, frames, fps):
    """Each of the 35 features per frame, the onset peaks and beats (exactly) and the frame rate and its prompt
    words equal ComfyUI's on a 6 s stereo song at 44.1 kHz (the global pass's kind: 6 fps for 37 frames), a 3.2 s
    one at 48 kHz (15 fps) and a 2 s mono one at 22.05 kHz (30 fps, the local passes' rate)."""
    from nodes.generate.wan_dancer_audio import encode
    wave = song(seconds, rate, channels=1 if rate == 22050 else 2)
    want, comfy_fps, words = comfy_encode_audio(torch.from_numpy(wave), rate, frames)
    got, got_words = encode(wave.mean(0) if wave.shape[0] > 1 else wave[0], rate, frames, 0.7)
    assert got["dancer"].shape == want.shape and want.shape[-1] == 35
    assert got["fps"] == comfy_fps == fps and got_words == words and got["scale"] == 0.7
    g, w = got["dancer"][0].numpy(), want[0].numpy()
    assert np.array_equal(g[:, 33:], w[:, 33:]), "onset peaks and beats differ"
    assert w[:, 33].sum() > 2 and w[:, 34].sum() > 2            # the song has peaks and beats to find
    assert np.allclose(g[:, :33], w[:, :33], atol=1e-3, rtol=1e-4), np.abs(g[:, :33] - w[:, :33]).max(0)


def test_music_too_short_for_the_frames_is_named():
    from nodes.generate.wan_dancer_audio import encode
    with pytest.raises(NodeError, match="under half"):
        encode(song(0.5, 22050, 1)[0], 22050, 149, 1.0)


def test_music_features_given_to_a_voice_model_are_named():
    """encode.wan_dancer_audio's output shares the socket type of encode.audio's; S2V, HuMo and InfiniteTalk given
    the music's features say which node they read instead of failing on a missing key."""
    from nodes.generate.audio_encoder import speech
    from nodes.generate.infinitetalk import features_per_frame
    from nodes.generate.wan_dancer_audio import encode
    music, _ = encode(song(1.0, 22050, 1)[0], 22050, 13, 1.0)
    for reader in ("Wan 2.2 S2V", "HuMo"):
        with pytest.raises(NodeError, match=f"{reader} reads a speech encoder's: connect encode.audio"):
            speech(music, reader)
    with pytest.raises(NodeError, match="InfiniteTalk reads"):
        features_per_frame(music)
    layers = torch.zeros(3, 5, 4)
    assert speech({"layers": layers, "fps": 50}, "HuMo") == (layers, 50)
