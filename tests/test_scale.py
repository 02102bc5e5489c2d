"""Long clips: what the streaming nodes hold in memory and how they pull frames, measured, not timed.

Sources here are generator clips that record every read, so a test sees how many frames a node asked for
at once; memory is numpy's allocations as tracemalloc counts them, in frames of the clip's size."""
import tracemalloc

import numpy as np
import pytest

import graph_engine.clip as clip_module
from graph_engine import Clip
from graph_engine.context import Context

W, H = 64, 48


def source(n, reads=None, w=W, h=H, seed=0):
    """A clip of n frames made on request (a moving ramp with noise); each read's (start, stop) goes to reads."""
    def reader(a, b):
        if reads is not None:
            reads.append((a, b))
        rng = np.random.default_rng(seed + a)
        base = np.arange(w)[None, :, None] * 3 + np.arange(h)[:, None, None] * 2
        return np.stack([((base + 5 * i + rng.integers(0, 20, (h, w, 3))) % 256).astype(np.uint8)
                         for i in range(a, b)])
    return Clip(n, 24, w, h, reader)


def peak_frames(fn, frame_bytes):
    """The most numpy memory fn() held at once, in frames."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / frame_bytes
    finally:
        tracemalloc.stop()


def pull(clip):
    for _ in clip.chunks():
        pass


@pytest.fixture
def chunk_of_4(monkeypatch):
    """Clips in chunks of 4 frames, as a 1080p clip is (24 MB a chunk), at a test's small size."""
    monkeypatch.setattr(clip_module, "MAX_CHUNK", 4)


def test_denoise_holds_no_flow_cache(chunk_of_4):
    from nodes.restore.denoise import denoise_clip
    w, h = 160, 120
    peak = peak_frames(lambda: pull(denoise_clip(Context("d"), source(60, w=w, h=h))), w * h * 3)
    # Its window (chunk + 2 radius frames), a few grey copies and one frame's float work. It kept the last 112
    # flows (2.7 frames each, never read again in a pass): 410 frames, 2.8 GB for a 1080p render.
    assert peak < 150


@pytest.mark.parametrize("measure", ["seam", "color_drift"])
def test_seam_and_drift_read_chunk_by_chunk_with_progress(measure, chunk_of_4):
    from nodes.metrics.seam import color_drift_node, seam_node
    reads, events = [], []
    clip = source(100, reads)
    ctx = Context("m", emit=events.append)
    if measure == "seam":
        seam_node(ctx, clip, every=16, boundaries="")
    else:
        color_drift_node(ctx, clip, space="lab")
    # Reads of 32 frames joined 8 chunks into one array and made the clip keep 10 (750 MB at 1080p).
    assert max(b - a for a, b in reads) == clip.chunk == 4
    assert sorted(reads) == [(a, a + 4) for a in range(0, 100, 4)]
    # It said nothing while it read: a long clip's measure showed 0% until it was done.
    done = [e["done"] for e in events if e["event"] == "node_progress"]
    assert done[0] == 4 and done[-1] == 100 and done == sorted(done)


def test_temporal_slides_its_warmup_and_keeps_only_the_links_it_reads_again(chunk_of_4):
    from nodes.stylize.temporal import temporal_clip
    w, h = 160, 120
    styled, original = source(120, w=w, h=h), source(120, w=w, h=h, seed=5)
    peak = peak_frames(lambda: pull(temporal_clip(Context("t"), styled, original)), w * h * 3)
    # The clips' chunks, the live recursions (two float frames, 4 frames each) and a few links (1.7 frames each).
    # Joining each span of both clips from their chunks, which then kept 9 each, and 72 links took 280 frames;
    # sliding windows over both, 170; the warm-up span of 24 frames before each chunk of 4 and its 30 links, 163.
    assert peak < 125


def test_psnr_and_ssim_measure_a_frame_without_float_copies_of_it():
    import cv2
    from nodes.metrics.measures import psnr, ssim
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    frame = a.nbytes
    # Over all three channels at once in float64 (8 bytes a value): PSNR held 16 frames, SSIM 80.
    assert peak_frames(lambda: psnr(a, b), frame) < 1
    assert peak_frames(lambda: ssim(a, b), frame) < 40
    # The same numbers as the textbook float64 formulas.
    x, y = a.astype(np.float64), b.astype(np.float64)
    assert psnr(a, b) == 10 * np.log10(255.0 ** 2 / np.mean((x - y) ** 2))

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    s = ((2 * mx * my + c1) * (2 * (blur(x * y) - mx * my) + c2)) / \
        ((mx * mx + my * my + c1) * (blur(x * x) - mx * mx + blur(y * y) - my * my + c2))
    # SSIM runs in float32 (2.4x faster at 1080p): within 1e-7 of the float64 formula, far below any digit read.
    assert ssim(a, b) == pytest.approx(s[5:-5, 5:-5].mean(), abs=1e-7)


def test_grade_without_saturation_is_three_tables_of_the_same_numbers():
    from nodes.color import nodes as color_nodes
    from nodes.color.grade import grade_frame
    from node_call import Nodes
    settings = dict(exposure=0.7, contrast=1.3, temperature=3400.0, tint=0.2, gamma=1.4)
    clip = Clip.from_array(np.random.default_rng(2).integers(0, 256, (4, 120, 160, 3), dtype=np.uint8))
    graded = Nodes(color_nodes).grade(Context("g"), clip, **settings)
    np.testing.assert_array_equal(graded.frame(1), grade_frame(clip.frame(1), **settings))
    # Graded per pixel in float32, a frame passed through a dozen float copies of itself (4 bytes a value).
    peak = peak_frames(lambda: Nodes(color_nodes).grade(Context("g"), clip, **settings).frames(0, 4),
                       clip.frame(0).nbytes)
    assert peak < 6


def test_reverse_decodes_a_long_gop_file_a_few_times_not_once_per_chunk(chunk_of_4, tmp_path, monkeypatch):
    import subprocess
    from nodes.io import video_read
    from nodes.io.video_write import ffmpeg_exe
    from nodes.video import nodes as video_nodes
    from node_call import Nodes
    path = tmp_path / "gop.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24",
                    "-frames:v", "200", "-c:v", "libx264", "-g", "100", "-pix_fmt", "yuv420p", str(path)], check=True)
    decoded = []
    plain = video_read.VideoSource._decoded

    def counted(self):
        for frame in plain(self):
            decoded.append(1)
            yield frame
    monkeypatch.setattr(video_read.VideoSource, "_decoded", counted)
    forward = video_read.load_video(str(path)).to_array()
    decoded.clear()
    backward = Nodes(video_nodes).reverse(Context("r"), video_read.load_video(str(path)))
    frames = np.concatenate([block for _, block in backward.chunks()])
    np.testing.assert_array_equal(frames, forward[::-1])
    # Each 4-frame chunk read backwards went back to its keyframe and decoded up to it: 2,600 frames decoded for
    # 200 (at 1080p with a keyframe every 250, 32 times the clip).
    assert len(decoded) < 4 * 200


def test_color_drift_takes_mean_lab_in_bands_of_rows():
    from nodes.common.color import rgb_to_lab
    from nodes.metrics.seam import color_drift
    frames = np.random.default_rng(4).integers(0, 256, (3, 480, 640, 3), dtype=np.uint8)
    clip = Clip.from_array(frames)
    got = color_drift(clip, "lab")["drift"]
    means = [rgb_to_lab(f.astype(np.float32) * (1 / 255)).reshape(-1, 3).mean(axis=0, dtype=np.float64) for f in frames]
    np.testing.assert_allclose(got, [np.linalg.norm(m - means[0]) for m in means], rtol=1e-9, atol=1e-12)
    # The whole frame in float32 and its Lab copies: 20 frames' worth for one frame's mean.
    assert peak_frames(lambda: color_drift(clip, "lab"), frames[0].nbytes) < 5


def test_grade_with_saturation_works_a_band_of_rows_at_a_time():
    from nodes.color.grade import grade_frame, grader
    frame = np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    settings = dict(saturation=1.4, exposure=0.3, gamma=1.2)
    np.testing.assert_array_equal(grader(**settings)(frame), grade_frame(frame, **settings))
    # The whole frame through a dozen float32 copies: over 20 frames' worth.
    assert peak_frames(lambda: grader(**settings)(frame), frame.nbytes) < 5


def test_frames_are_written_while_the_next_block_is_computed(tmp_path, monkeypatch):
    import threading
    import cv2
    from nodes.io.images import write_frames
    next_block = threading.Event()
    overlapped = []

    def reader(a, b):
        if a > 0:
            next_block.set()
        return np.full((b - a, 16, 16, 3), a, np.uint8)
    clip = Clip(8, 24, 16, 16, reader, chunk=4)
    plain = cv2.imwrite

    def imwrite(path, img):
        if img[0, 0, 0] == 0 and not overlapped:
            # The first block's first file waits for the second block to be asked for: written in turn (the
            # second block computed only after the first block's files), it never is.
            overlapped.append(next_block.wait(10))
        return plain(path, img)
    monkeypatch.setattr(cv2, "imwrite", imwrite)
    write_frames(clip, str(tmp_path / "f"))
    assert overlapped == [True]
    assert sorted(p.name for p in (tmp_path / "f").glob("*.png")) == [f"frame_{i:06d}.png" for i in range(8)]
    assert cv2.imread(str(tmp_path / "f" / "frame_000005.png"))[0, 0, 0] == 4


@pytest.fixture
def frame_a_chunk(monkeypatch):
    """A source frame is a chunk of its own, as a 4K frame is (24 MB), and a smaller picture's chunks are longer."""
    monkeypatch.setattr(clip_module, "CHUNK_BYTES", 160 * 120 * 3)


@pytest.mark.parametrize("node", ["video.resize", "upscale.resize"])
def test_a_downscale_holds_a_few_source_frames_not_the_span_of_its_chunk(node, frame_a_chunk):
    # A thumbnail of a long 1080p clip (resize to 320 wide, every 8th frame) peaked at 0.55 GB for 96 frames, and
    # more for more: a chunk of the small clip (32 frames) read 32 source frames joined into one copy, and the
    # source kept all of them cached again for a next read that shares none of them.
    from nodes.upscale.resize import resize_clip
    from nodes.video.edit import every_nth, resize
    reads = []

    def decode(a, b):           # no work of its own to count: frames of one level each
        reads.append((a, b))
        return np.stack([np.full((120, 160, 3), i % 256, np.uint8) for i in range(a, b)])
    src = Clip(96, 24, 160, 120, decode)
    small = resize(src, 40, 30) if node == "video.resize" else resize_clip(src, width=40, height=30, ctx=None)
    assert small.chunk >= 8 and src.chunk == 1
    thumb = every_nth(small, 2, 0)
    peak = peak_frames(lambda: pull(thumb), 160 * 120 * 3)
    # Each source frame decoded once at most, every one the thumbnail shows; not those past the last it shows of a
    # span (the resize is made only as far as it is read).
    assert len(set(reads)) == len(reads) and all(b == a + 1 for a, b in reads)
    assert {a for a, _ in reads} >= set(range(0, 96, 2))
    # The source's few cached chunks and a decode's copy, and the small clips' own chunks (16 small frames come to
    # a source frame): about 11. It was the span again (39).
    assert peak < 16, f"held {peak:.1f} source frames at once"
    assert len(src._chunks.cache) <= clip_module.CACHED_CHUNKS


@pytest.mark.parametrize("name", ["stabilize", "deflicker"])
def test_stabilize_and_deflicker_hold_the_frames_ahead_not_those_behind(name, chunk_of_4):
    # Their frames before a chunk serve only the motion (gains) of pairs the chunk before already measured, and
    # were held all the same: radius 20 at 4K, 41 frames (1 GB) where 21 do.
    from nodes.restore import stabilize, deflicker
    w, h = 640, 480         # big enough that the frames, not deflicker's statistics, make the peak
    base = np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
    src = Clip(64, 24, w, h, lambda a, b: np.stack([np.roll(base, 2 * i, axis=1) for i in range(a, b)]))
    make = stabilize.stabilize_clip if name == "stabilize" else deflicker.deflicker_clip
    peak = {r: peak_frames(lambda: pull(make(Context("n"), src, radius=r)), w * h * 3) for r in (4, 20)}
    # What a radius 16 frames longer adds (the rest is the chunks cached and a chunk's work): 16 frames ahead,
    # and 16 behind as well before.
    assert peak[20] - peak[4] < 24, f"held {peak[4]:.1f} frames at radius 4, {peak[20]:.1f} at 20"


def test_a_chain_read_in_pairs_computes_each_chunk_once_holding_two(monkeypatch):
    # Interpolation and stylize.temporal read frames i and i + 1, across a chunk boundary now and then: the chunk
    # and the one before are what they read again. Each clip of a chain kept a third as well, never read again.
    reads = []
    monkeypatch.setattr(clip_module, "MAX_CHUNK", 4)
    src = source(40, reads)
    graded = src.map(lambda f: f // 2 + 10)
    for i in range(39):
        assert len(graded.frames(i, i + 2)) == 2
    assert sorted(reads) == [(a, a + 4) for a in range(0, 40, 4)]      # each chunk computed once
    assert len(src._chunks.cache) <= 2 and len(graded._chunks.cache) <= 2
