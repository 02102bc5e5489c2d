"""The beat of a song, for cutting pictures to it: onsets, tempo and phase from the level alone (numpy)."""
import numpy as np

HOP = 1 / 200          # seconds per envelope step (5 ms): finer than a frame at 120 fps
CLEAR = 0.2            # the tempo's autocorrelation against the onsets' own power: noise gives 0.05, a beat 0.8
JUMP = 0.1             # the least rise in log level (about 10%) the median beat makes: a kick or snare makes 2


def beat_times(mono: np.ndarray, rate: int) -> tuple:
    """(BPM, beat times in seconds) of a steady beat in `mono` (float samples), or (0, []) without one.
    Onsets are where the sound's level jumps; the tempo is the period at which those jumps repeat most
    (autocorrelation, leaning to 120 BPM against halves and doubles), and the beats the phase of that
    period that lands on the most onsets, refitted to the onsets themselves (_fitted)."""
    step = max(1, int(round(rate * HOP)))
    n = len(mono) // step
    if n < 4:
        return 0.0, []
    level = np.log1p(1000 * np.sqrt((mono[: n * step].reshape(n, step) ** 2).mean(1)))
    rise = np.maximum(0.0, np.diff(level, prepend=level[0]))
    onset = rise - rise.mean()
    lags = np.arange(int(60 / 200 / HOP), int(60 / 50 / HOP) + 1)       # 200 down to 50 BPM
    lags = lags[lags < n // 2]
    if not len(lags) or not onset.any():
        return 0.0, []
    ac = np.array([np.dot(onset[:-lag], onset[lag:]) / (n - lag) for lag in lags])
    prefer = np.exp(-0.5 * (np.log2(lags * HOP / 0.5) / 1.0) ** 2)     # a log-Gaussian around 0.5 s (120 BPM)
    k = int(np.argmax(ac * prefer))
    if ac[k] < CLEAR * np.dot(onset, onset) / n:        # no period stands out: noise, speech, a held note
        return 0.0, []
    # The period to a fraction of a step: a parabola through the peak and its neighbours.
    period = float(lags[k])
    if 0 < k < len(lags) - 1:
        a, b, c = ac[k - 1], ac[k], ac[k + 1]
        if a - 2 * b + c < 0:
            period += 0.5 * (a - c) / (a - 2 * b + c)
    grid = np.arange(0, n - 1e-9, period)
    phases = np.arange(int(np.ceil(period)))
    score = [onset[np.minimum(np.round(grid + p).astype(int), n - 1)].sum() for p in phases if p < n]
    beats, period = _fitted(rise, float(np.argmax(score)), period)
    if np.median(rise[beats]) < JUMP:
        return 0.0, []          # the "beats" are ripples of a steady sound, not hits
    return 60.0 / (period * step / rate), [float(b * step / rate) for b in beats if b * step < len(mono)]


def _fitted(rise: np.ndarray, phase: float, period: float) -> tuple:
    """The steps of the beats, and the period fitted to them: the grid phase + k x period refitted to the onsets near it over ever more of the
    song (a period off by 0.1 ms, what the autocorrelation gives, drifts 60 ms off the beat in four minutes),
    then each beat on the onset within a sixth of a period of it, so a drummer's push and pull is followed."""
    n, reach = len(rise), max(1, int(period / 6))
    for count in (8, 32, 128, 512, None):
        k = np.arange(np.ceil(-phase / period), np.floor((n - 1 - phase) / period) + 1)[:count]
        near = np.clip(np.round(phase + k * period).astype(int), 0, n - 1)
        snapped = np.array([max(0, g - reach) + int(np.argmax(rise[max(0, g - reach):g + reach + 1])) for g in near])
        hit = rise[snapped] >= JUMP
        if hit.sum() >= 2:
            period, phase = (float(v) for v in np.polyfit(k[hit], snapped[hit], 1))
    return np.where(hit, snapped, near), period
