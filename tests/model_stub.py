"""The smallest file of each weights format that `kinograph validate` takes as whole (nodes.generate.detect's
check_file): a stand-in for a model file in tests that look a name up and never load it. An empty or one-byte
file is what a failed download leaves, and validate names it as damaged."""
import struct
from pathlib import Path

from nodes.generate.detect import LEGACY_MAGIC

_STUBS = {".safetensors": struct.pack("<Q", 2) + b"{}", ".sft": struct.pack("<Q", 2) + b"{}",
          ".gguf": b"GGUF" + struct.pack("<IQQ", 3, 0, 0)}


def stub(path) -> Path:
    """Write the stand-in for `path`'s format (a legacy torch file's opening for .pt/.pth/.ckpt/.bin); `path`."""
    path = Path(path)
    path.write_bytes(_STUBS.get(path.suffix.lower(), LEGACY_MAGIC))
    return path
