"""DPX plates (film scans, Resolve, Nuke and Flame exports) load, as a compositor's sRGB view
shows them. Before, a DPX sequence was 'no images found' and a DPX still 'cannot identify image file'."""
import struct
import subprocess

import numpy as np
import pytest

from graph_engine import NodeError
from nodes.io.images import load_frames, read_image
from nodes.io.video_write import ffmpeg_exe


def dpx(path, codes: np.ndarray, transfer: int = None) -> None:
    """A 10-bit RGB DPX of `codes` (HxWx3 ints in 0..1023) written by FFmpeg; `transfer` rewrites the
    header's transfer characteristic (1: printing density, as a log scan states it; 2: linear)."""
    h, w, _ = codes.shape
    planes = np.stack([codes[..., 1], codes[..., 2], codes[..., 0]]).astype("<u2")    # gbrp order
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "gbrp10le", "-s",
                    f"{w}x{h}", "-i", "-", "-frames:v", "1", "-c:v", "dpx", "-pix_fmt", "gbrp10le", str(path)],
                   input=planes.tobytes(), check=True)
    if transfer is not None:
        data = bytearray(path.read_bytes())
        data[801] = transfer
        path.write_bytes(bytes(data))


def test_a_10_bit_dpx_sequence_numbered_from_1001_loads_as_stored(tmp_path):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 1024, (3, 16, 24, 3))
    for i, codes in enumerate(src):
        dpx(tmp_path / f"plate.{1001 + i}.dpx", codes)
    clip = load_frames(str(tmp_path), 24.0)
    assert (clip.length, clip.width, clip.height) == (3, 24, 16)
    assert np.abs(clip.to_array().astype(float) - src * 255.0 / 1023.0).max() <= 1.0


def test_a_log_scan_is_shown_through_the_cineon_curve(tmp_path):
    """Printing-density code 95 is black and 685 white; 18% grey sits near code 470 (Kodak's LAD-ish
    mid-grey). Shown as stored, the scan was flat grey: black at 24, white at 171."""
    codes = np.zeros((4, 12, 3), np.int64)
    codes[:, 0:3], codes[:, 3:6], codes[:, 6:9], codes[:, 9:12] = 95, 685, 470, 1000
    dpx(tmp_path / "scan.dpx", codes, transfer=1)
    got = read_image(str(tmp_path / "scan.dpx"))[0].astype(int)
    black = 10 ** ((95 - 685) * 0.002 / 0.6)
    lin = (10 ** ((470 - 685) * 0.002 / 0.6) - black) / (1 - black)
    grey = 255 * (1.055 * lin ** (1 / 2.4) - 0.055)
    assert got[1].max() <= 1 and got[4].min() >= 254 and got[10].min() == 255
    assert np.abs(got[7] - grey).max() <= 1.5, (got[7], grey)


def test_a_linear_dpx_is_shown_through_the_srgb_curve(tmp_path):
    codes = np.full((2, 2, 3), round(0.18 * 1023))
    dpx(tmp_path / "lin.dpx", codes, transfer=2)
    got = read_image(str(tmp_path / "lin.dpx"))[0, 0].astype(int)
    want = 255 * (1.055 * (round(0.18 * 1023) / 1023) ** (1 / 2.4) - 0.055)
    assert np.abs(got - want).max() <= 1


def test_a_dpx_header_claiming_a_huge_picture_is_refused_by_name(tmp_path):
    path = tmp_path / "bomb.dpx"
    dpx(path, np.zeros((4, 4, 3), np.int64))
    data = bytearray(path.read_bytes())
    big = "<" if data[:4] == b"XPDS" else ">"
    data[772:780] = struct.pack(big + "II", 15000, 15000)      # pixels per line, lines per element
    path.write_bytes(bytes(data))
    with pytest.raises(NodeError, match=r"bomb\.dpx has 225,000,000 pixels \(15000x15000\), more than the"):
        read_image(str(path))


def test_a_damaged_dpx_says_so(tmp_path):
    path = tmp_path / "cut.dpx"
    path.write_bytes(b"SDPX" + b"\0" * 100)
    with pytest.raises(NodeError, match=r"cut\.dpx.*damaged or cut short"):
        read_image(str(path))


def test_a_dpx_dropped_on_the_editor_becomes_a_load_image_node(tmp_path):
    """The canvas refused a dropped .dpx (not a file type it knew)."""
    pytest.importorskip("PySide6")
    from app.editor.window import loader_for
    dpx(tmp_path / "plate.1001.dpx", np.zeros((2, 2, 3), np.int64))
    assert loader_for(tmp_path / "plate.1001.dpx") == "io.load_image"
