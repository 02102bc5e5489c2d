"""DPX stills: film scans and the plates Resolve, Nuke and Flame exchange. Pillow cannot read them;
FFmpeg's decoder (through PyAV, already a dependency) reads every DPX bit depth and packing.

Pictures come as a compositor's sRGB view shows them: a log (printing density) scan through the
Cineon curve, a linear one through the sRGB curve, video-coded ones as stored."""
from __future__ import annotations

import functools
import struct

import numpy as np

from graph_engine import NodeError
from nodes.common.color import cineon_to_linear, linear_to_srgb, to_uint8

# SMPTE 268M: the transfer characteristic of image element 1, one byte at offset 801 of the header.
_TRANSFER_AT = 801
_LOG, _LINEAR = (1, 3), 2          # printing density, logarithmic; linear


def read_film(path: str) -> tuple:
    """(uint8 RGB, float32 alpha or None) of a DPX file."""
    import av
    from .images import check_pixels
    transfer, w, h = _header(path)
    check_pixels(path, w, h)        # from the header, before FFmpeg allocates what it says
    try:
        with av.open(str(path)) as c:
            frame = next(c.decode(c.streams.video[0]))
    except (av.error.FFmpegError, StopIteration, IndexError) as e:
        raise NodeError(f"cannot read {path} as a DPX picture ({e}): the file is damaged or cut short. "
                        f"Export it again") from None
    alpha_fmt = any(comp.is_alpha for comp in frame.format.components)
    wide = frame.to_ndarray(format="rgba64le" if alpha_fmt else "rgb48le")
    alpha = wide[..., 3].astype(np.float32) / 65535.0 if alpha_fmt else None
    rgb = _view_table(transfer)[wide[..., :3]]
    if alpha is not None:
        from .images import over_black
        rgb = over_black(rgb, alpha)
    return rgb, alpha


def _header(path: str) -> tuple:
    """(transfer characteristic, width, height) from the DPX header (0s where it cannot say): SMPTE 268M
    keeps them at 801, 772 and 776, in the byte order its magic number is written in."""
    try:
        with open(path, "rb") as f:
            head = f.read(804)
    except OSError:
        return 0, 0, 0
    order = {b"SDPX": ">", b"XPDS": "<"}.get(head[:4])
    if order is None or len(head) < 804:
        return 0, 0, 0
    w, h = struct.unpack(order + "II", head[772:780])
    return head[_TRANSFER_AT], w, h


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
