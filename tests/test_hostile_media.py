"""Small media files from strangers that ask for huge work: a WAV stating one sample a second (read at the nodes'
rate it fills gigabytes), a FLAC of hours of silence. Each is read in a child process under a memory limit and must
end in one message naming the file and what to do, never a traceback or the machine's memory."""
import os
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 2048 << 20
PRELUDE = "import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
READ = ("from graph_engine import NodeError\nfrom nodes.io.sound import read_sound, sound_span\n"
        "for how in (lambda p: sound_span(p, 0.0, 0.0), read_sound):\n"
        "    try:\n        how(sys.argv[1])\n    except NodeError as e:\n        print(e)\n")


def child(code: str, *args, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE.format(limit=LIMIT) + code, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wav(path: Path, rate: int, payload: bytes) -> Path:
    """A 16-bit mono PCM WAV written by hand, stating `rate`."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_a_sound_file_stating_one_sample_a_second_is_refused_by_its_rate(tmp_path):
    """200 KB of samples at 1 Hz play 28 hours: read at 11,025 Hz for io.load_audio and io.add_audio they made 4 GB
    (the run failed with 'out of memory: give it smaller frames', a picture's advice; unlimited, the machine's
    memory), and io.save_audio's mix of them with any other sound ran at the highest rate stated."""
    f = _wav(tmp_path / "slow.wav", 1, os.urandom(200_000))
    r = child(READ, f)
    assert "Traceback" not in r.stderr and r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["slow.wav states a sample rate of 1 Hz, where sound is recorded at 1,000 to "
                                     "768,000: the file is damaged or made to fill memory; export it again as WAV, "
                                     "FLAC or MP3"] * 2


def test_hours_of_compressed_silence_are_stopped_as_they_are_decoded(tmp_path):
    """A 1.6 MB FLAC of 8 kHz silence plays 4 h 10 min: io.load_audio decoded it all into 1.4 GB (a 100 MB one,
    90 GB). Samples are counted as they are decoded, and reading stops past 3 hours. The file here is 1 kHz:
    the same 4 h 10 min at an eighth of the decoding, and read whole it would still come back without the message."""
    from nodes.io.video_write import ffmpeg_exe
    f = tmp_path / "long.flac"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=1000:cl=mono", "-t", "15000",
                    "-c:a", "flac", str(f)], check=True, timeout=120)
    r = child(READ, f)
    assert "Traceback" not in r.stderr and r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["long.flac plays longer than 3 hours: Kinograph reads sounds up to that long; cut "
                                     "the part you need (ffmpeg -ss START -t SECONDS) and give it"] * 2


def test_a_sound_joined_to_itself_over_and_over_is_refused_before_it_doubles_away():
    """30 io.concat_audio nodes in a chain, each joining the one before to itself: a billion pieces. The run hung at
    the 20th (a million pieces, 37 s a node, memory growing). Refused at the join that passes 100,000."""
    code = ("from graph_engine import Audio, NodeError\nfrom nodes.io.sound import concat\n"
            "a = Audio('song.wav', 0.0, 1.0)\n"
            "for i in range(30):\n    try:\n        a = concat(a, a)\n    except NodeError as e:\n"
            "        print(i, e)\n        break\n")
    r = child(code, timeout=60)
    assert "Traceback" not in r.stderr and r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["16 this sound would be made of 131,072 pieces, and Kinograph joins up to 100,000 "
                                     "in one sound: a sound joined to itself doubles its pieces at each join; join "
                                     "fewer times, or write it out (io.save_audio) and read that file back"]
