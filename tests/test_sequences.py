"""Image sequences named as Nuke, Blender, FFmpeg and Houdini name them (plates/shot.####.exr, %04d, $F4)
load, validate, key the cache and guard their folder like a glob does. Before, io.load_frames said 'no
images found' and `kinograph validate` 'is not there' for plates/shot.####.png."""
import os

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from graph_engine.api import load_workflow
from graph_engine.executor import Executor
from nodes.io.images import load_frames


def frame(value: int) -> np.ndarray:
    return np.full((8, 12, 3), value, np.uint8)


@pytest.fixture
def plates(tmp_path):
    """plates/shot.1001-1003.png, with a slap comp and another shot beside them that must not be read."""
    d = tmp_path / "plates"
    d.mkdir()
    for i, v in enumerate((10, 20, 30)):
        Image.fromarray(frame(v)).save(d / f"shot.{1001 + i}.png")
    Image.fromarray(frame(200)).save(d / "shot.slapcomp.png")
    Image.fromarray(frame(250)).save(d / "other.1001.png")
    return d


@pytest.mark.parametrize("name", ["shot.####.png", "shot.%04d.png", "shot.$F4.png", "shot.#.png"])
def test_a_sequence_named_as_other_tools_name_it_loads_its_frames_alone(plates, name):
    clip = load_frames(str(plates / name), 24.0)
    assert [int(f[0, 0, 0]) for f in clip.to_array()] == [10, 20, 30]


def workflow(tmp_path, path, extra=""):
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n"
                  f"  load: {{type: io.load_frames, params: {{path: '{path}', fps: 24}}}}\n"
                  "  save: {type: io.save_video, inputs: {video: load.video}, params: {path: out.mkv, codec: ffv1}}\n"
                  + extra)
    return wf


def test_validate_finds_the_sequence_and_names_one_that_matches_nothing(plates, tmp_path, capsys):
    assert main(["validate", str(workflow(tmp_path, "plates/shot.####.png"))]) == 0
    assert main(["validate", str(workflow(tmp_path, "plates/shot.####.exr"))]) != 0
    assert "'plates/shot.####.exr' is not there" in capsys.readouterr().err


def test_a_frame_replaced_in_a_sequence_is_read_again(plates, tmp_path):
    """The cache key fingerprinted 'plates/shot.####.png' as a missing file: a re-run after a frame was
    re-rendered gave the frames of the run before."""
    ex = Executor()
    wf = load_workflow(str(workflow(tmp_path, "plates/shot.####.png", "  pick: {type: video.frame, inputs: "
                                                                      "{video: load.video}, params: {index: 1}}\n")))
    assert ex.run(wf).outputs["pick"]["image"][0, 0, 0] == 20
    Image.fromarray(frame(99)).save(plates / "shot.1002.png")
    os.utime(plates / "shot.1002.png", ns=(1, 1))
    assert ex.run(wf).outputs["pick"]["image"][0, 0, 0] == 99



@pytest.mark.parametrize("path", ["out/shot.####.exr", "out/shot.%04d.png", "out/shot.png"])
def test_save_frames_given_a_file_name_asks_for_its_folder(plates, tmp_path, capsys, path):
    """Nuke's Write node takes out/shot.####.exr; io.save_frames made a folder of that name and filled it with
    frame_000000.png."""
    wf = workflow(tmp_path, "plates/shot.####.png",
                  f"  frames: {{type: io.save_frames, inputs: {{video: load.video}}, params: {{path: '{path}'}}}}\n")
    assert main(["run", str(wf)]) != 0
    assert f"'{path}' names files; io.save_frames fills a folder: give the folder ('out'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_words_that_look_like_tokens_are_not_frame_numbers(tmp_path):
    """ComfyUI's %date:yyyy-MM-dd% in an imported prefix is a folder name, not %d."""
    from graph_engine.sequence import names_frames
    assert not names_frames("out/%date:yyyy-MM-dd%") and not names_frames("$FOOTAGE")
    assert names_frames("shot.%d.png") and names_frames("shot.$F.png")
