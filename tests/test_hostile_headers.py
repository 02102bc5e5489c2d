"""Pictures whose header declares far more than the frames they sit among: each is refused from its header,
naming the file, before a byte of it is decoded. Before, a 420 KB PNG of 12000x12000 in a sequence of 16x16 frames
was decoded whole (2.5 GB, 16 s) only to be refused for its size, and a 470 KB 16-bit one of 9000x9000 in a 16-bit
sequence took 1.5 GB and 29 s. A header alone (no picture data) shows it: decoding it would fail as damaged."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from graph_engine import NodeError
from nodes.io.images import load_frames


def png_header(path, width: int, height: int, depth: int = 8) -> None:
    """A PNG that is its IHDR alone (RGB): the size it declares and nothing to decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize("depth", [8, 16])
def test_a_frame_declaring_more_pixels_than_the_sequence_is_refused_from_its_header(tmp_path, depth):
    first = np.zeros((16, 16, 3), np.uint8 if depth == 8 else np.uint16)
    cv2.imwrite(str(tmp_path / "f_0001.png"), first)
    png_header(tmp_path / "f_0002.png", 8000, 8000, depth)
    cv2.imwrite(str(tmp_path / "f_0003.png"), first)
    clip = load_frames(str(tmp_path), 24)
    assert (clip.length, clip.width, clip.height) == (3, 16, 16)
    said = f"{tmp_path / 'f_0002.png'} is 8000x8000 but the sequence is 16x16; all frames must have one size"
    with pytest.raises(NodeError) as e:
        clip.frames(0, 3)
    assert str(e.value) == said
    if depth == 16:         # read at its own depth too
        with pytest.raises(NodeError) as e:
            clip.linear(0, 3)
        assert str(e.value) == said
