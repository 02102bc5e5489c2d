"""The OBJECTS value (mask.segment_objects' tracks) where a user meets it outside mask.scail_colors: the viewer, a
link to a MASK input, the memory cache, and a clip in which nothing was found. No model: the tracker's pass is
stood in for by a reader of known masks."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest


class Pass:
    """Stands in for the tracker's pass over the clip (which holds SAM 3): counts its runs."""

    def __init__(self, masks):
        self.out, self.runs = masks, 0

    def __call__(self):
        self.runs += 1
        return self.out


def test_the_viewer_says_what_the_objects_are_without_running_the_tracker():
    """Viewing mask.segment_objects showed '<nodes.mask.objects.Objects object at 0x...>'. It says what it holds in
    words, and does not run the whole SAM 3 pass on the editor's thread to say so."""
    from app.editor.viewer import Source
    from nodes.mask.objects import Objects
    reader = Pass(np.zeros((3, 2, 4, 6), bool))
    objects = Objects(3, 8.0, 6, 4, reader)
    text = Source(objects, "objects").text
    assert "object at 0x" not in text and "3 frames" in text and "6×4" in text
    assert reader.runs == 0
    objects.masks()
    assert "2 objects" in Source(objects, "objects").text


def test_objects_linked_to_a_mask_input_say_what_to_use_instead():
    """OBJECTS to a MASK input was refused with no word of what gives one mask of all the objects."""
    from graph_engine.types import MASK
    from nodes.mask.objects import OBJECTS
    assert not MASK.can_take(OBJECTS)
    assert "mask.segment" in MASK.refusal_hint(OBJECTS)


def test_the_memory_cache_counts_the_masks_and_lets_the_model_go():
    """An OBJECTS value was counted as 256 bytes by the memory cache (81 frames of 720p, 4 objects: 299 MB of bool),
    and kept the tracker, and through it SAM 3, alive for as long as the value was cached."""
    from graph_engine.cache import value_nbytes
    from nodes.mask.objects import Objects
    assert value_nbytes(Objects(81, 24.0, 1280, 720, Pass(None), most=4)) == 81 * 720 * 1280 * 4
    reader = Pass(np.zeros((3, 2, 4, 6), bool))
    gone = weakref.ref(reader)
    objects = Objects(3, 8.0, 6, 4, reader, most=4)
    del reader
    objects.masks()
    gc.collect()
    assert gone() is None
    assert value_nbytes(objects) == 3 * 2 * 4 * 6 and objects.masks().shape == (3, 2, 4, 6)


@pytest.mark.parametrize("count", [0, 1])
def test_nothing_found_is_said_not_painted_as_background(count):
    """A driving clip in which the prompt found nobody (no object, or mask.segment's empty mask) made a SCAIL-2 pose
    video of background alone, and the render went ahead on it."""
    pytest.importorskip("torch")
    from graph_engine import NodeError
    from nodes.generate.wan_scail_nodes import scail_colors
    from nodes.mask.objects import Objects
    empty = Objects(3, 8.0, 6, 4, Pass(np.zeros((3, count, 4, 6), bool)))
    with pytest.raises(NodeError, match="no one in the driving video"):
        scail_colors(None, empty, None, "", "none", False, 24.0)


PEAK = r"""
import resource, sys
import numpy as np
from nodes.generate.wan_scail_nodes import scail_colors
from nodes.mask.objects import Objects
t, n, h, w = 81, 4, 360, 640
masks = np.zeros((t, n, h, w), bool)
masks[:] = False  # every page touched: np.zeros pages count only once written
for k in range(n):
    masks[:, k, 40:320, 150 * k:150 * k + 120] = True
objects = Objects(t, 24.0, w, h, lambda: masks, most=n)
objects.masks()
small = np.ones((2, 1, 8, 8), bool)
scail_colors(None, Objects(2, 24.0, 8, 8, lambda: small), None, "", "left_to_right", True, 24.0)  # torch imported
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
video = scail_colors(None, objects, objects, "", "left_to_right", True, 24.0)["pose_mask"]
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown * 1024 // masks.nbytes)
"""


def test_painting_a_clip_takes_a_few_times_its_masks_not_a_dozen():
    """mask.scail_colors painted the whole clip in float32 at once: 81 frames of 720p with 4 people (299 MB of bool
    masks, a 224 MB result) took about 3.3 GB (11 times the masks; now about 1). Here a quarter of that clip (75 MB
    of masks): the memory the call adds at its peak, in masks' sizes, in a process of its own."""
    pytest.importorskip("torch")
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", PEAK], capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.split()[-1]) <= 4


def test_the_disk_cache_passes_over_objects_without_a_misleading_word(tmp_path):
    """OBJECTS cannot live on disk. Sized at its bound (0 objects: SAM3_VideoTrack's 64, 4.8 GB for 81 frames of
    720p), the disk cache said the result was too large for it ('raise disk_cache_gb') or the disk too full,
    when no size would have kept it: it is passed over, as any value that cannot be written is."""
    from graph_engine.cache import DiskCache
    from nodes.mask.objects import Objects
    big = Objects(81, 24.0, 1280, 720, Pass(None), most=64)
    assert DiskCache(tmp_path, 1 << 30).put("ab" * 16, {"objects": big}, {}, "mask.segment_objects") is False
    assert not (tmp_path / "tmp").exists() or not any((tmp_path / "tmp").iterdir())
