"""The sound a model makes with its video (LTX-2): decoded from the latent's sound stream, written once as a WAV file
named by its content, and carried by the decoded clip as its Audio, so the clip plays and saves with it."""
from __future__ import annotations

import hashlib
import os
import tempfile
import wave
from pathlib import Path
from typing import Optional

import numpy as np

from graph_engine.clip import Audio


def sound_folder() -> Path:
    from graph_engine.config import cache_dir
    return cache_dir() / "sound"


def write_wav(samples: np.ndarray, rate: int) -> Path:
    """samples [channels, n] in [-1, 1] as 16-bit PCM; the same sound is the same file (written once). A cache
    folder that cannot be written (read-only on a render farm, where the engine runs without its disk cache) gives
    way to the system's temporary folder, so the clip keeps its sound."""
    from graph_engine import NodeError
    pcm = (np.clip(np.nan_to_num(samples, nan=0.0), -1.0, 1.0) * 32767.0).round().astype("<i2")
    data = np.ascontiguousarray(pcm.T).tobytes()
    name = hashlib.sha256(data + f"{rate}/{pcm.shape[0]}".encode()).hexdigest()[:24] + ".wav"
    folders = (sound_folder(), Path(tempfile.gettempdir()) / "kinograph-sound")
    for folder in folders:
        try:
            return _write_once(folder / name, pcm.shape[0], rate, data)
        except OSError as e:
            why = e.strerror or str(e)
    raise NodeError(f"the decoded sound could not be written to {folders[0]} nor {folders[1]} ({why}): free space "
                    f"there, or point KINOGRAPH_CACHE_DIR at a folder you can write")


def _write_once(path: Path, channels: int, rate: int, data: bytes) -> Path:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(int(channels))
            w.setsampwidth(2)
            w.setframerate(int(rate))
            w.writeframes(data)
        os.replace(tmp, path)
    return path


def clip_sound(adapter, pipe, latent) -> Optional[Audio]:
    """The latent's sound as the Audio of its clip, cut to the video's length; None for a latent without one."""
    got = None if latent.audio is None else adapter.decode_sound(pipe, latent.audio[:1])
    if got is None:     # no sound, or a VAE that decodes frames alone (MiniMax H3's video VAE)
        return None
    samples, rate = got
    return Audio(str(write_wav(samples, rate)), 0.0, latent.frames / float(latent.fps))
