"""Streaming video I/O: load -> resize -> save h264 through the engine, against a plain
numpy + OpenCV + ffmpeg-pipe loop doing the same work, in the same run.

Prints peak RSS of each process for 300 and 3,000 frames (streaming means they are close)
and the time ratio engine / anchor (target: at most 1.25)."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZE_IN, SIZE_OUT = 512, 256


def make_input(path: Path, frames: int) -> None:
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={SIZE_IN}x{SIZE_IN}:rate=24", "-frames:v", str(frames), "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)


def run_engine(src: str, dst: str) -> None:
    from graph_engine.api import Session, load_workflow
    wf = load_workflow(text=f"""
kinograph: 1
nodes:
  load: {{type: io.load_video, params: {{path: {src}}}}}
  resize: {{type: video.resize, inputs: {{video: load.video}}, params: {{width: {SIZE_OUT}, height: {SIZE_OUT}}}}}
  save: {{type: io.save_video, inputs: {{video: resize.video}}, params: {{path: {dst}, crf: 19}}}}
""")
    r = Session(use_disk=False).run(wf)
    assert r.ok, r.failed


def run_anchor(src: str, dst: str) -> None:
    """What a person writes by hand: ffmpeg decode pipe -> cv2.resize -> ffmpeg encode pipe."""
    import cv2
    import imageio_ffmpeg
    import numpy as np
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    dec = subprocess.Popen([ff, "-loglevel", "error", "-i", src, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                           stdout=subprocess.PIPE)
    enc = subprocess.Popen([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                            f"{SIZE_OUT}x{SIZE_OUT}", "-r", "24", "-i", "-", "-c:v", "libx264", "-preset", "medium",
                            "-crf", "19", "-pix_fmt", "yuv420p", dst], stdin=subprocess.PIPE)
    n = SIZE_IN * SIZE_IN * 3
    while True:
        buf = dec.stdout.read(n)
        if len(buf) < n:
            break
        frame = np.frombuffer(buf, np.uint8).reshape(SIZE_IN, SIZE_IN, 3)
        enc.stdin.write(cv2.resize(frame, (SIZE_OUT, SIZE_OUT), interpolation=cv2.INTER_AREA).tobytes())
    enc.stdin.close()
    enc.wait()
    dec.wait()


def child(mode: str, src: str, dst: str) -> None:
    t = time.perf_counter()
    (run_engine if mode == "engine" else run_anchor)(src, dst)
    secs = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": secs, "peak_mb": peak_mb}))


def measure(mode: str, src: Path, dst: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(src), str(dst)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    frame_counts = [int(a) for a in sys.argv[1:]] or [300, 3000]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for n in frame_counts:
            src = d / f"in{n}.mp4"
            make_input(src, n)
            eng = measure("engine", src, d / "eng.mp4")
            anc = measure("anchor", src, d / "anc.mp4")
            print(f"video_io frames={n} {SIZE_IN}->{SIZE_OUT} h264: engine {eng['seconds']:.2f}s peak RSS "
                  f"{eng['peak_mb']:.0f} MB | anchor numpy+OpenCV+ffmpeg-pipe {anc['seconds']:.2f}s peak RSS "
                  f"{anc['peak_mb']:.0f} MB | time ratio {eng['seconds'] / anc['seconds']:.2f} (target <= 1.25)",
                  flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()
