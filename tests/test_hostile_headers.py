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


GGUF_LIAR = """
import struct, sys
from pathlib import Path
from graph_engine import NodeError
from nodes.generate.detect import gguf_header
key = b"general.liar"
# GGUF v3, no tensors, one key: an array of 10^12 uint32 (type 9 of type 4) over 16 bytes of file.
head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
Path(sys.argv[1]).write_bytes(head + struct.pack("<IIQ", 9, 4, 10 ** 12) + bytes(16))
try:
    gguf_header(Path(sys.argv[1]))
except NodeError as e:
    print(e)
"""


def test_a_gguf_header_declaring_more_than_its_bytes_is_refused(tmp_path):
    """The gguf package reads an array value by value, each past the end of the file reading as nothing: 88 bytes
    declaring 10^12 numbers kept it looping, its lists growing, for ever (killed after 60 s). In a child with a
    time limit, as the loop never ended."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    path = tmp_path / "liar.gguf"
    r = subprocess.run([sys.executable, "-c", GGUF_LIAR, str(path)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.strip() == (f"{path} is not a readable GGUF file (its header declares 1,000,000,000,000 array "
                                f"values, more than its 16 bytes left hold): it is truncated or corrupt. Copy the "
                                f"file again or re-download it.")


@pytest.mark.parametrize("big", [False, True])
def test_a_whole_gguf_with_arrays_and_strings_is_read_in_either_byte_order(tmp_path, big):
    import gguf
    from nodes.generate.detect import gguf_header
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "wan", endianess=gguf.GGUFEndian.BIG if big else gguf.GGUFEndian.LITTLE)
    writer.add_array("tokenizer.ggml.tokens", ["a", "", "ccc"])
    writer.add_array("tokenizer.ggml.scores", [0.5, 1.5])
    writer.add_string("general.name", "tiny")
    writer.add_tensor("blocks.0.weight", np.zeros((3, 5), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    header = gguf_header(path)
    assert header.shapes == {"blocks.0.weight": (3, 5)} and header.dtypes == {"blocks.0.weight": "F32"}
