"""Colour maths shared by colour, restoration, stylization, relighting and metrics nodes.

Conventions: RGB arrays are float32 in [0, 1] unless a function says uint8; "srgb" means
gamma-encoded display values (what uint8 frames hold), "linear" means scene light.
Lab is CIE L*a*b* under D65, L in [0, 100]."""
from __future__ import annotations

import functools

import numpy as np

from graph_engine import NodeError

# Rec. 709 / sRGB primaries: luminance weights for linear light, and the same weights used as
# luma on encoded values (what video metrics and ffmpeg's filters measure).
LUMA_709 = np.array([0.2126, 0.7152, 0.0722], np.float32)

_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]], np.float32)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ).astype(np.float32)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883], np.float32)


def to_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) * (1.0 / 255.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, np.float32), 0.0, None)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055
                    ).astype(np.float32)


def linear_to_srgb_unclamped(x: np.ndarray) -> np.ndarray:
    """The sRGB curve continued past 0..1 (a deep plate's light coded for a look made on sRGB values: a CDL, a
    LUT): above 1.0 on its power, below 0 on its straight foot; srgb_to_linear takes it back."""
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.0031308, x * np.float32(12.92),
                    np.float32(1.055) * np.maximum(x, np.float32(0.0031308)) ** np.float32(1 / 2.4) - np.float32(0.055))


# Kodak's Cineon printing-density encoding (film scans, log DPX): 10-bit code 95 is black, 685 is
# white (90% reflectance), 0.002 density per code value over a negative gamma of 0.6.
CINEON_BLACK, CINEON_WHITE, CINEON_STEP = 95.0, 685.0, 0.002 / 0.6


def cineon_to_linear(code10: np.ndarray) -> np.ndarray:
    """Linear light of 10-bit Cineon code values (Nuke's "Cineon" colourspace): black 0, white 1,
    brighter highlights above 1."""
    black = 10.0 ** ((CINEON_BLACK - CINEON_WHITE) * CINEON_STEP)
    return ((10.0 ** ((np.asarray(code10, np.float64) - CINEON_WHITE) * CINEON_STEP) - black)
            / (1.0 - black)).astype(np.float32)


def linear_to_cineon(lin: np.ndarray) -> np.ndarray:
    """10-bit Cineon code values (float, unrounded, 0..1023) of linear light: cineon_to_linear's inverse; light
    above 1.0 climbs to code 1023 at about 13.5, and below black stays at code 0."""
    black = 10.0 ** ((CINEON_BLACK - CINEON_WHITE) * CINEON_STEP)
    density = np.maximum(np.asarray(lin, np.float64) * (1.0 - black) + black, 1e-10)
    return np.clip(CINEON_WHITE + np.log10(density) / CINEON_STEP, 0.0, 1023.0).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _decode_table(kind: str, white: float) -> np.ndarray:
    code = np.arange(65536, dtype=np.float64) / white
    if kind == "cineon":
        return cineon_to_linear(code * 1023.0)
    return srgb_to_linear(code.astype(np.float32)) if kind == "srgb" else code.astype(np.float32)


def code16_to_linear(codes: np.ndarray, kind: str = "srgb", white: float = 65535.0) -> np.ndarray:
    """float32 linear light of 16-bit code values (uint16; `white` is the code of 1.0) encoded by `kind`: srgb,
    cineon (10-bit log widened to 16 bits) or linear, through a 65536-entry table: the curve on every pixel
    took 0.4 s a 1080p frame, longer than decoding it."""
    return _decode_table(kind, float(white))[codes]


_ENCODE_SHIFT = 9       # float32 bits kept: 14 of the mantissa, within a 16-bit code of the curve


@functools.lru_cache(maxsize=1)
def _encode_table() -> np.ndarray:
    top = int(np.float32(1.0).view(np.uint32)) >> _ENCODE_SHIFT
    idx = np.arange(top + 1, dtype=np.uint32)
    centre = ((idx << _ENCODE_SHIFT) | (1 << (_ENCODE_SHIFT - 1))).view(np.float32)     # each bucket's middle
    centre[-1] = 1.0
    return np.round(np.clip(linear_to_srgb(centre), 0.0, 1.0) * 65535.0).astype(np.uint16)


def linear_to_srgb16(lin: np.ndarray) -> np.ndarray:
    """uint16 sRGB code values of float linear light, clipped to 0..1 (NaN black), by a table on the float's
    leading bits (within one 16-bit code of the curve): the curve on every pixel took 0.5 s a 1080p frame."""
    table = _encode_table()
    flat = np.ascontiguousarray(lin, np.float32).reshape(-1)
    out = np.empty(flat.shape, np.uint16)
    # In blocks that stay in the cache: whole chunks of frames made four full-size temporaries, 4x slower.
    for i in range(0, flat.size, 1 << 18):
        x = np.fmax(flat[i:i + (1 << 18)], np.float32(0.0))      # fmax/fmin take the number over a NaN: 0
        np.fmin(x, np.float32(1.0), out=x)
        x += np.float32(0.0)        # -0.0 (bits 0x80000000) becomes 0.0
        bits = x.view(np.uint32)
        np.right_shift(bits, _ENCODE_SHIFT, out=bits)
        np.take(table, bits, out=out[i:i + (1 << 18)])
    return out.reshape(np.shape(lin))


def stack_rgba(pictures) -> np.ndarray:
    """float pictures HxWx3 or HxWx4 stacked into [n,H,W,C]; where some have alpha, those without are
    made opaque (a plate whose first frames have no alpha channel)."""
    if len({p.shape[-1] for p in pictures}) > 1:
        pictures = [p if p.shape[-1] == 4 else np.concatenate([p, np.ones_like(p[..., :1])], -1) for p in pictures]
    return np.stack(pictures)


def hex_rgb(text: str, what: str) -> tuple:
    """(r, g, b) 0..255 of a #rrggbb colour param (the editor's swatch writes it; validate refuses other forms before
    a run, this says so to a node called directly); `what` names the param in the message."""
    s = str(text).strip().lstrip("#")
    if len(s) != 6 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise NodeError(f"{what} {text!r} is not a #rrggbb colour (e.g. #ffd8a8)")
    return int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 weighted sum over the last axis (luminance on linear input, luma on encoded input)."""
    return np.asarray(rgb, np.float32) @ LUMA_709


def luma_u8(frames: np.ndarray) -> np.ndarray:
    """Luma of uint8 RGB frames, float32 in 0..255 (any leading shape)."""
    return frames.astype(np.float32) @ LUMA_709


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded float RGB in [0, 1] -> CIE Lab (D65)."""
    return _linear_to_lab(srgb_to_linear(rgb))


def mean_lab(frame: np.ndarray, rows: int = 64) -> np.ndarray:
    """The mean CIE Lab colour of a uint8 RGB frame (float64 [3]), a band of rows at a time: the float copies
    rgb_to_lab makes of a whole 1080p frame came to 140 MB. Linear light comes from a table of the 256 levels
    (srgb_to_linear of each, the numbers the per-pixel formula gives)."""
    table = srgb_to_linear(np.arange(256, dtype=np.float32) * np.float32(1 / 255))
    total = np.zeros(3, np.float64)
    for y in range(0, frame.shape[0], rows):
        total += _linear_to_lab(table[frame[y:y + rows]]).reshape(-1, 3).sum(axis=0, dtype=np.float64)
    return total / max(1, frame.shape[0] * frame.shape[1])


def _linear_to_lab(lin: np.ndarray) -> np.ndarray:
    xyz = lin @ _RGB_TO_XYZ.T / _WHITE_D65
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) -> sRGB-encoded float RGB, clipped to [0, 1]."""
    return np.clip(linear_to_srgb(lab_to_linear(lab)), 0.0, 1.0)


def linear_to_lab(lin: np.ndarray) -> np.ndarray:
    """Linear light RGB (any range: a deep plate's) -> CIE Lab (D65)."""
    return _linear_to_lab(np.asarray(lin, np.float32))


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) -> linear light RGB, unclipped (above 1.0 where L is above 100)."""
    lab = np.asarray(lab, np.float32)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    eps, kappa = 6 / 29, 24389 / 27
    xyz = np.where(f > eps, f ** 3, (116 * f - 16) / kappa) * _WHITE_D65
    return xyz @ _XYZ_TO_RGB.T


def kelvin_gains(kelvin: float, reference: float = 6500.0) -> np.ndarray:
    """Per-channel linear gains that move a scene lit at `reference` K to look lit at `kelvin` K.

    Uses the black-body chromaticity fit of Tanner Helland (good to a few percent between
    1000 K and 40000 K), normalised so the green gain is 1 and overall brightness is kept."""
    def rgb_of(k):
        t = np.clip(k, 1000.0, 40000.0) / 100.0
        r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
        g = 99.4708025861 * np.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
        b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
        return srgb_to_linear(np.clip(np.array([r, g, b], np.float32), 1.0, 255.0) / 255.0)

    gains = rgb_of(kelvin) / rgb_of(reference)
    return (gains / float(luma(gains))).astype(np.float32)


# -- HDR video to the SDR frames every node works on ------------------------------------------------
# Phones record HDR by default (HLG on iPhones, PQ for HDR10): 10-bit BT.2020 signals whose code values
# mean light levels up to 1000-10000 nits. Taken as SDR they look grey and washed out. Mapped as an SDR
# screen shows them: the reference white of HDR production (203 nits, BT.2408; HLG's 75% signal) becomes
# SDR white, colour goes from BT.2020 to BT.709 primaries, and what is brighter is rolled off into the
# top of the range (HDR_KNEE) instead of clipped. Written here, not with FFmpeg's zscale+tonemap, because
# PyAV's FFmpeg has no zscale, and one numba pass over 16-bit pixels costs less than a filter chain.
# (libavutil's AVColorTransferCharacteristic numbers, as PyAV reports a stream's color_trc.)
TRC_PQ, TRC_HLG = 16, 18
HDR_WHITE_NITS = 203.0
HLG_PEAK_NITS = 1000.0      # the nominal display HLG's OOTF assumes (system gamma 1.2 there)
HDR_KNEE = 0.9              # linear SDR level above which brighter light is rolled off towards 1
_BT2020_TO_709 = np.array([[1.6605, -0.5876, -0.0728],
                           [-0.1246, 1.1329, -0.0083],
                           [-0.0182, -0.1006, 1.1187]], np.float32)
_OUT_STEPS = 16384          # entries of the linear-to-sRGB table (a fifth of a grey level at the darkest)
_HDR_KERNEL = None


def _hdr_input_table(transfer: int, white: float = 65535.0) -> np.ndarray:
    """Per 16-bit code value: linear light, as a fraction of HDR_WHITE_NITS (PQ: display light;
    HLG: scene light in [0, 1], which the kernel's OOTF turns into display light). `white`: the code
    that is signal 1.0 (libswscale's 16-bit output of a TV-range 10-bit frame tops out at 65283)."""
    e = np.minimum(np.arange(65536, dtype=np.float64) / white, 1.0)
    if transfer == TRC_PQ:      # SMPTE ST 2084
        m1, m2 = 2610 / 16384, 2523 / 4096 * 128
        c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
        p = e ** (1 / m2)
        return (10000.0 / HDR_WHITE_NITS * (np.maximum(p - c1, 0) / (c2 - c3 * p)) ** (1 / m1)).astype(np.float32)
    a, b, c = 0.17883277, 0.28466892, 0.55991073       # ARIB STD-B67 (HLG) inverse OETF
    return np.where(e <= 0.5, e * e / 3.0, (np.exp((e - c) / a) + b) / 12.0).astype(np.float32)


def _hdr_kernel():
    # Compiled on first use so importing this module never pays numba's start-up cost.
    global _HDR_KERNEL
    if _HDR_KERNEL is None:
        import numba

        @numba.njit(cache=True, nogil=True)
        def kernel(src, table, hlg, gain, ootf_gain, matrix, convert, knee, out_table, out):
            h, w, _ = src.shape
            top = out_table.shape[0] - 1
            steps = gain.shape[0] - 1
            for y in range(h):
                for x in range(w):
                    r = table[src[y, x, 0]]
                    g = table[src[y, x, 1]]
                    b = table[src[y, x, 2]]
                    if hlg:     # OOTF: display light = peak * Ys^(gamma - 1) * scene light, gamma 1.2
                        ys = min(1.0, 0.2627 * r + 0.6780 * g + 0.0593 * b) * steps
                        i = min(int(ys), steps - 1)
                        k = ootf_gain * (gain[i] + (ys - i) * (gain[i + 1] - gain[i]))
                        r, g, b = r * k, g * k, b * k
                    if convert:
                        r, g, b = (matrix[0, 0] * r + matrix[0, 1] * g + matrix[0, 2] * b,
                                   matrix[1, 0] * r + matrix[1, 1] * g + matrix[1, 2] * b,
                                   matrix[2, 0] * r + matrix[2, 1] * g + matrix[2, 2] * b)
                    r, g, b = max(r, 0.0), max(g, 0.0), max(b, 0.0)
                    m = max(r, max(g, b))
                    if m > knee:    # roll off on the largest channel, so hues keep their ratios
                        s = (knee + (1.0 - knee) * (1.0 - np.exp(-(m - knee) / (1.0 - knee)))) / m
                        r, g, b = r * s, g * s, b * s
                    out[y, x, 0] = out_table[min(top, int(r * top + 0.5))]
                    out[y, x, 1] = out_table[min(top, int(g * top + 0.5))]
                    out[y, x, 2] = out_table[min(top, int(b * top + 0.5))]
        _HDR_KERNEL = kernel
    return _HDR_KERNEL


_TABLES: dict = {}


def hdr_to_sdr(rgb16: np.ndarray, transfer: int, bt2020: bool = True, white: float = 65535.0) -> np.ndarray:
    """uint16 HxWx3 non-linear HDR RGB (full range, as FFmpeg converts a PQ or HLG frame to rgb48, white
    at `white`) -> uint8 sRGB in BT.709 primaries, as an SDR screen shows it (see HDR_WHITE_NITS)."""
    if transfer not in (TRC_PQ, TRC_HLG):
        raise ValueError(f"not an HDR transfer: {transfer}")
    if (transfer, white) not in _TABLES:
        _TABLES[transfer, white] = _hdr_input_table(transfer, white)
    if "out" not in _TABLES:
        lin = np.arange(_OUT_STEPS, dtype=np.float32) / (_OUT_STEPS - 1)
        _TABLES["out"] = to_uint8(linear_to_srgb(lin))
        # Ys^0.2 of HLG's OOTF by table: a power per pixel cost 49 ms a 1080p frame, the table 11.
        _TABLES["ootf"] = (np.arange(_OUT_STEPS + 1, dtype=np.float64) / _OUT_STEPS) ** 0.2
    out = np.empty(rgb16.shape, np.uint8)
    _hdr_kernel()(np.ascontiguousarray(rgb16), _TABLES[transfer, white], transfer == TRC_HLG, _TABLES["ootf"],
                  np.float32(HLG_PEAK_NITS / HDR_WHITE_NITS), _BT2020_TO_709, bt2020, np.float32(HDR_KNEE),
                  _TABLES["out"], out)
    return out


# -- histogram matching (color.match's histogram method; generate.feedback's colour coherence) ---------------------
def channel_cdfs(img: np.ndarray) -> np.ndarray:
    """Per-channel cumulative histograms [3, 256] of a uint8 3-channel image."""
    hist = np.stack([np.bincount(img[..., c].ravel(), minlength=256) for c in range(3)]).astype(np.float64)
    return np.cumsum(hist, axis=1) / hist.sum(axis=1, keepdims=True)


def match_cdfs(frame: np.ndarray, ref_cdfs: np.ndarray, strength: float = 1.0, src: np.ndarray = None) -> np.ndarray:
    """Each channel of a uint8 frame mapped through the reference's cumulative histograms (channel_cdfs).
    src: the cumulative histograms standing for the frame (a whole shot's); None = the frame's own."""
    tables = np.clip(cdf_levels(ref_cdfs, channel_cdfs(frame) if src is None else src, strength) + 0.5, 0, 255
                     ).astype(np.uint8)
    out = np.empty_like(frame)
    for c in range(3):
        out[..., c] = tables[c][frame[..., c]]
    return out


def cdf_levels(ref_cdfs: np.ndarray, src: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """[3, 256] float64: the level each of the 256 of each channel goes to, matching cumulative histograms src to
    ref_cdfs (channel_cdfs), unrounded."""
    levels = np.arange(256, dtype=np.float64)
    out = np.empty((3, 256))
    for c in range(3):
        # Interpolate over the levels the reference has: its cumulative histogram is flat over the
        # others (always above its brightest pixel), and np.interp on a flat stretch took its far end,
        # which sent every frame's brightest level to 255 (matching a frame to itself made white specks).
        has = np.diff(ref_cdfs[c], prepend=0.0) > 0
        out[c] = levels + strength * (np.interp(src[c], ref_cdfs[c][has], levels[has]) - levels)
    return out


def match_cdfs_linear(lin: np.ndarray, ref_cdfs: np.ndarray, strength: float, src: np.ndarray) -> np.ndarray:
    """match_cdfs on a deep plate's float linear light [..., 3] (src: the histograms of its 8-bit frames), unrounded:
    each channel's sRGB-coded value through the 256 levels' mapping, interpolated; past white (or below black) on
    from the mapping's end, level for level, so light above 1.0 keeps its headroom."""
    tables = cdf_levels(ref_cdfs, src, strength) / 255.0
    grid = np.arange(256) / 255.0
    coded = linear_to_srgb_unclamped(lin)
    out = np.empty(coded.shape, np.float32)
    for c in range(3):
        x = coded[..., c]
        out[..., c] = np.interp(x, grid, tables[c]) + np.maximum(x - 1.0, 0.0) + np.minimum(x, 0.0)
    return srgb_to_linear(out)


HISTOGRAM_SPACES = ("rgb", "hsv", "lab")


def histogram_matcher(reference: np.ndarray, space: str = "rgb"):
    """A function matching uint8 RGB frames to `reference`'s per-channel histograms in `space`: rgb, hsv or lab
    (OpenCV's 8-bit HSV and Lab, as Deforum's colour coherence 'Match Frame 0 RGB / HSV / LAB' matches them).
    The reference's histograms are computed once."""
    import cv2
    to, back = {"rgb": (None, None), "hsv": (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB),
                "lab": (cv2.COLOR_RGB2LAB, cv2.COLOR_LAB2RGB)}[space]

    def conv(img, code):
        return img if code is None else cv2.cvtColor(np.ascontiguousarray(img), code)
    cdfs = channel_cdfs(conv(reference, to))
    return lambda frame: conv(match_cdfs(conv(frame, to), cdfs), back)


def turbo(x: np.ndarray) -> np.ndarray:
    """Mikhailov's polynomial Turbo colour map of values in 0..1: (..., 3) in 0..1. ComfyUI draws depth with it
    (DA3Render, MoGeRender); OpenCV's Turbo table is up to 32 levels off it."""
    x = np.clip(x.astype(np.float32), 0, 1)
    rows = ((0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943),
            (0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604),
            (0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973))
    return np.clip(np.stack([np.polynomial.polynomial.polyval(x, r) for r in rows], -1), 0, 1)
