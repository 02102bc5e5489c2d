"""DPX stills: film scans and the plates Resolve, Nuke and Flame exchange. Pillow cannot read them;
FFmpeg's decoder (through PyAV, already a dependency) reads every DPX bit depth and packing.

Pictures come as a compositor's sRGB view shows them: a log (printing density) scan through the
Cineon curve, a linear one through the sRGB curve, video-coded ones as stored."""
from __future__ import annotations

import functools
import struct

import numpy as np

from graph_engine import NodeError
from nodes.common.color import cineon_to_linear, code16_to_linear, linear_to_cineon, linear_to_srgb, to_uint8

# SMPTE 268M: the transfer characteristic of image element 1, one byte at offset 801 of the header.
_TRANSFER_AT = 801
_LOG, _LINEAR = (1, 3), 2          # printing density, logarithmic; linear


def read_film(path: str) -> tuple:
    """(uint8 RGB, float32 alpha or None) of a DPX file."""
    transfer = _header(path)[0]
    frame = _picture(path)
    alpha_fmt = any(comp.is_alpha for comp in frame.format.components)
    wide = frame.to_ndarray(format="rgba64le" if alpha_fmt else "rgb48le")
    alpha = wide[..., 3].astype(np.float32) / 65535.0 if alpha_fmt else None
    rgb = _view_table(transfer)[wide[..., :3]]
    if alpha is not None:
        from .images import over_black
        rgb = over_black(rgb, alpha)
    return rgb, alpha


def read_film_linear(path: str) -> np.ndarray:
    """float32 linear light HxWx3 (x4, premultiplied, with alpha) of a DPX file, at its own depth (Clip.linear):
    a log scan through the Cineon curve unclipped (highlights above 1.0, as Nuke's Cineon colourspace reads
    them), a linear one as stored, a video-coded one through the sRGB curve (read_film shows it as stored)."""
    transfer = _header(path)[0]
    frame = _picture(path)
    alpha_fmt = any(comp.is_alpha for comp in frame.format.components)
    wide = frame.to_ndarray(format="rgba64le" if alpha_fmt else "rgb48le")
    rgb = code16_to_linear(wide[..., :3], "cineon" if transfer in _LOG else "linear" if transfer == _LINEAR else "srgb")
    if not alpha_fmt:
        return rgb
    alpha = wide[..., 3:].astype(np.float32) / 65535.0
    return np.concatenate([rgb * alpha, alpha], -1)


def _picture(path: str):
    """The DPX file's picture as FFmpeg decodes it; NodeError for one larger than any image may be (from the header,
    before FFmpeg allocates what it says) or damaged. The reading at depth (Clip.linear: a 10-bit sequence graded
    into an EXR or 16-bit TIFF) let FFmpeg's InvalidDataError out as a traceback for a frame cut short."""
    import av
    from .images import check_pixels
    check_pixels(path, *_header(path)[1:3])
    try:
        with av.open(str(path)) as c:
            return next(c.decode(c.streams.video[0]))
    except (av.error.FFmpegError, StopIteration, IndexError) as e:
        raise NodeError(f"cannot read {path} as a DPX picture ({e}): the file is damaged or cut short. "
                        f"Export it again") from None


def deep_film(path: str) -> bool:
    """Whether a DPX file holds more than 8 bits a channel."""
    return _header(path)[3] > 8


def _header(path: str) -> tuple:
    """(transfer characteristic, width, height, bits a channel) from the DPX header (0s where it cannot say):
    SMPTE 268M keeps them at 801, 772, 776 and 803, in the byte order its magic number is written in."""
    try:
        with open(path, "rb") as f:
            head = f.read(804)
    except OSError:
        return 0, 0, 0, 0
    order = {b"SDPX": ">", b"XPDS": "<"}.get(head[:4])
    if order is None or len(head) < 804:
        return 0, 0, 0, 0
    w, h = struct.unpack(order + "II", head[772:780])
    return head[_TRANSFER_AT], w, h, head[803]


@functools.lru_cache(maxsize=None)
def _view_table(transfer: int) -> np.ndarray:
    """uint8 sRGB view of each 16-bit code value (FFmpeg widens every depth to 16 bits); made once per
    transfer, not per frame of a sequence."""
    code = np.arange(65536, dtype=np.float64) / 65535.0
    if transfer in _LOG:
        return to_uint8(linear_to_srgb(np.minimum(cineon_to_linear(code * 1023.0), 1.0)))
    if transfer == _LINEAR:
        return to_uint8(linear_to_srgb(code))
    return to_uint8(code.astype(np.float32))


# SMPTE 268M v2.0 offsets written by write_film (header 2048 bytes: file 768, image 640, orientation 256,
# film 256, television 128).
_DATA_AT = 2048


def write_film(lin: np.ndarray, path, number=None, fps=None, timecode=None) -> None:
    """float linear light HxWx3 as a 10-bit log DPX (Cineon printing density, filled method A, big-endian),
    as film scans are exchanged and Nuke reads a DPX by default: highlights up to about 13.5 kept, shadows
    in 10-bit log steps. number: the frame's number (the film header's frame position); fps and timecode
    (graph_engine.Timecode) go into the film and television headers, where Nuke and Resolve read them."""
    h, w = lin.shape[:2]
    code = np.round(linear_to_cineon(np.nan_to_num(lin[..., :3], nan=0.0, posinf=13.5))).astype(np.uint32)
    words = (code[..., 0] << 22) | (code[..., 1] << 12) | (code[..., 2] << 2)
    head = bytearray(_DATA_AT)
    head[660:664] = b"\xff" * 4                       # no encryption
    head[1724:1732] = b"\xff" * 8                     # film frame rate, shutter angle: undefined
    head[1932:1976] = b"\xff" * 44                    # television: sample rates, frame rate ... undefined
    struct.pack_into(">4sI8sIIIII", head, 0, b"SDPX", _DATA_AT, b"V2.0", _DATA_AT + 4 * w * h, 1, 1664, 384, 0)
    head[160:160 + 9] = b"Kinograph"
    struct.pack_into(">HHII", head, 768, 0, 1, w, h)
    # Element 1: unsigned, reference codes 0..1023 for densities 0..2.047, RGB, printing density, 10 bits.
    struct.pack_into(">IIfIfBBBBHHIII", head, 780, 0, 0, 0.0, 1023, 2.047, 50, _LOG[0], _LOG[0], 10, 1, 0,
                     _DATA_AT, 0, 0)
    struct.pack_into(">II", head, 1628, 1, 1)          # square pixels
    if number is not None:
        struct.pack_into(">I", head, 1712, int(number))
    if fps:
        struct.pack_into(">f", head, 1724, float(fps))
        struct.pack_into(">f", head, 1940, float(fps))
    struct.pack_into(">I", head, 1920, _bcd(timecode.parts()) if timecode is not None else 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(bytes(head))
        f.write(words.astype(">u4").tobytes())


def _bcd(parts) -> int:
    """hh:mm:ss:ff as SMPTE 12M's binary-coded decimal in one 32-bit word (0x01020304 for 01:02:03:04)."""
    out = 0
    for v in parts:
        out = (out << 8) | ((int(v) // 10) << 4) | (int(v) % 10)
    return out
