"""Earlier takes: a render never silently destroys the render it replaces, and a re-run from a render
writes where the workflow first wrote (graph_engine.takes, graph_engine.outputs.render_folder)."""
import os
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from graph_engine.embedded import read_embedded_workflow

WORKFLOW = """kinograph: 1
nodes:
  pat: {type: generate.test_pattern, params: {frames: 4, width: 32, height: 32}}
  save: {type: io.save_video, inputs: {video: pat.video}, params: {path: out/shot.mp4}}
"""


@pytest.fixture(autouse=True)
def _takes_as_configured():
    # --replace sets KINOGRAPH_KEEP_TAKES for the process (Ray workers inherit it): none before or after a test.
    os.environ.pop("KINOGRAPH_KEEP_TAKES", None)
    yield
    os.environ.pop("KINOGRAPH_KEEP_TAKES", None)


def _project(tmp_path, text=WORKFLOW):
    wf = tmp_path / "project" / "shot.yaml"
    wf.parent.mkdir()
    wf.write_text(text)
    return wf


def _frames(path) -> int:
    import av
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_a_rerun_keeps_the_earlier_take_and_an_unchanged_one_keeps_none(tmp_path, capsys):
    wf = _project(tmp_path)
    out = wf.parent / "out"
    assert main(["run", str(wf)]) == 0
    first = (out / "shot.mp4").read_bytes()
    assert main(["run", str(wf), "--set", "pat.frames=6"]) == 0
    # The latest at the stable name (scripts and --skip-done read it), the earlier one whole in takes/.
    assert _frames(out / "shot.mp4") == 6
    assert (out / "takes" / "shot.001.mp4").read_bytes() == first
    assert "frames: 4" in read_embedded_workflow(out / "takes" / "shot.001.mp4")
    assert "frames: 6" in read_embedded_workflow(out / "shot.mp4")
    assert "the earlier take of shot.mp4 is kept as takes/shot.001.mp4 (1 earlier take" in capsys.readouterr().err
    # The same render again is no new take: re-running an unchanged workflow does not grow the disk.
    assert main(["run", str(wf), "--set", "pat.frames=6"]) == 0
    assert sorted(os.listdir(out / "takes")) == ["shot.001.mp4"]
    assert "earlier take" not in capsys.readouterr().err


def test_replace_and_keep_takes_bound_what_is_kept(tmp_path, monkeypatch, capsys):
    wf = _project(tmp_path)
    takes = wf.parent / "out" / "takes"
    for n in (2, 3):
        assert main(["run", str(wf), "--set", f"pat.frames={n}", "--replace"]) == 0
    assert not takes.exists()
    monkeypatch.setenv("KINOGRAPH_KEEP_TAKES", "2")
    for n in (4, 5, 6, 7):
        assert main(["run", str(wf), "--set", f"pat.frames={n}"]) == 0
    # Four replaced renders (3, 4, 5, 6 frames), two kept: the oldest went, and the log said so.
    assert sorted(os.listdir(takes)) == ["shot.003.mp4", "shot.004.mp4"]
    assert [_frames(takes / n) for n in ("shot.003.mp4", "shot.004.mp4")] == [5, 6]
    assert "removed shot.002.mp4, keep_takes is 2" in capsys.readouterr().err


def test_keep_takes_in_config_yaml(tmp_path, monkeypatch):
    from graph_engine import config
    from graph_engine.takes import keep_takes
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path))
    (tmp_path / "config.yaml").write_text("keep_takes: 0\n")
    config.settings.cache_clear()
    try:
        assert keep_takes() == 0
        (tmp_path / "config.yaml").write_text("keep_takes: all\n")
        config.settings.cache_clear()
        assert keep_takes() is None
    finally:
        config.settings.cache_clear()


def test_a_take_that_cannot_be_kept_leaves_the_earlier_render_in_place(tmp_path):
    from graph_engine import Clip, NodeError
    from nodes.io.video_write import write_video
    clip = Clip.from_array(np.zeros((3, 16, 16, 3), np.uint8), fps=8)
    target = tmp_path / "a.mp4"
    write_video(clip, str(target), workflow_yaml="kinograph: 1\nnodes: {}\n")
    before = target.read_bytes()
    (tmp_path / "takes").write_bytes(b"someone's file")       # the takes folder cannot be made
    with pytest.raises(NodeError, match="cannot keep the earlier take of a.mp4 .* so it was not replaced: .*"
                                        f"This render is {tmp_path / 'a.new.mp4'}"):
        write_video(Clip.from_array(np.full((3, 16, 16, 3), 200, np.uint8), fps=8), str(target),
                    workflow_yaml="kinograph: 1\nnodes: {}\nname: second\n")
    assert target.read_bytes() == before
    # The new render is not thrown away either, and no temporary is left behind.
    assert sorted(os.listdir(tmp_path)) == ["a.mp4", "a.new.mp4", "takes"]
    assert "name: second" in read_embedded_workflow(tmp_path / "a.new.mp4")


def test_a_frames_folder_keeps_its_earlier_take_and_a_cancelled_render_puts_it_back(tmp_path):
    from graph_engine import Clip
    from graph_engine.errors import Cancelled
    from nodes.io.images import write_frames
    folder = tmp_path / "frames"
    write_frames(Clip.from_array(np.full((3, 8, 8, 3), 10, np.uint8), fps=8), str(folder))
    old = {n: (folder / n).read_bytes() for n in os.listdir(folder)}
    info = write_frames(Clip.from_array(np.full((2, 8, 8, 3), 90, np.uint8), fps=8), str(folder))
    take = tmp_path / "takes" / "frames.001"
    assert info["earlier_take"] == str(take)
    assert {n: (take / n).read_bytes() for n in os.listdir(take)} == old
    # The folder holds the latest render alone: no third frame left from the longer one.
    assert sorted(os.listdir(folder)) == ["frame_000000.png", "frame_000001.png", "workflow.yaml"]
    now = {n: (folder / n).read_bytes() for n in os.listdir(folder)}

    def cancelled(a, b):
        if a >= 1:
            raise Cancelled()
        return np.full((b - a, 8, 8, 3), 200, np.uint8)
    with pytest.raises(Cancelled):
        write_frames(Clip(4, 8, 8, 8, cancelled, chunk=1), str(folder))
    assert {n: (folder / n).read_bytes() for n in os.listdir(folder)} == now
    assert sorted(os.listdir(tmp_path / "takes")) == ["frames.001"]


def test_a_rerun_from_a_render_writes_where_it_wrote_before(tmp_path, capsys):
    wf = _project(tmp_path, WORKFLOW.replace("out/shot.mp4", "renders/v1/shot.mp4"))
    out = wf.parent / "renders" / "v1"
    assert main(["run", str(wf)]) == 0
    for source in (out / "shot.mp4", out / "shot.mp4", out / "takes" / "shot.001.mp4"):
        n = len(os.listdir(out / "takes")) if (out / "takes").exists() else 0
        assert main(["run", str(source), "--set", f"pat.frames={5 + n}"]) == 0
        assert f"it will write:\n  {out / 'shot.mp4'}\n" in capsys.readouterr().err
    # Not renders/v1/renders/v1/shot.mp4, one folder deeper each time; the render it ran from is a take.
    assert sorted(p.relative_to(wf.parent).as_posix() for p in wf.parent.rglob("*.mp4")) == [
        "renders/v1/shot.mp4", "renders/v1/takes/shot.001.mp4", "renders/v1/takes/shot.002.mp4",
        "renders/v1/takes/shot.003.mp4"]
    assert _frames(out / "shot.mp4") == 7


def test_a_render_moved_on_its_own_writes_beside_itself(tmp_path):
    from graph_engine.api import load_workflow
    wf = _project(tmp_path)
    assert main(["run", str(wf)]) == 0
    moved = tmp_path / "elsewhere" / "mine.mp4"
    moved.parent.mkdir()
    os.replace(wf.parent / "out" / "shot.mp4", moved)
    loaded = load_workflow(moved)
    assert loaded.base_dir == moved.parent
    # Edited after it was read, its paths still resolve from where it was found.
    src = load_workflow(Path(wf.parent / "out" / "x.mp4"), text=WORKFLOW.replace("out/shot.mp4", "out/x.mp4"))
    src.set("save.path", "out/y.mp4")
    assert src.base_dir == wf.parent


@pytest.mark.parametrize("name, codec", [("a.mkv", "ffv1"), ("a.webm", "vp9"), ("a.mp4", "h264")])
def test_the_same_render_twice_is_the_same_file(tmp_path, name, codec):
    """Matroska stamped a random segment id and the date into each file, so an unchanged re-run was never
    recognised as one and kept a new take every time."""
    from graph_engine import Clip
    from nodes.io.video_write import write_video
    clip = Clip.from_array(np.arange(3 * 16 * 16 * 3, dtype=np.uint8).reshape(3, 16, 16, 3), fps=8)
    first = write_video(clip, str(tmp_path / name), codec=codec, workflow_yaml="kinograph: 1\nnodes: {}\n")
    data = (tmp_path / name).read_bytes()
    again = write_video(clip, str(tmp_path / name), codec=codec, workflow_yaml="kinograph: 1\nnodes: {}\n")
    assert "earlier_take" not in first and "earlier_take" not in again
    assert (tmp_path / name).read_bytes() == data and not (tmp_path / "takes").exists()


def test_a_png_whose_workflow_is_beyond_latin1_runs_again(tmp_path):
    """A workflow with a ☃ or an em dash goes into an iTXt chunk, which Pillow hands back as a str subclass
    the YAML parser refused: `kinograph run still.png` ended in a TypeError traceback."""
    wf = _project(tmp_path, WORKFLOW.replace("out/shot.mp4", "out/shot ☃.mp4") + """\
  still: {type: video.frame, inputs: {video: pat.video}, params: {index: 1}}
  png: {type: io.save_image, inputs: {image: still.image}, params: {path: "out/still — ☃.png"}}
""")
    assert main(["run", str(wf)]) == 0
    assert main(["run", str(wf.parent / "out" / "still — ☃.png"), "--set", "still.index=2"]) == 0
    assert sorted(os.listdir(wf.parent / "out" / "takes")) == ["shot ☃.001.mp4", "still — ☃.001.png"]


def test_a_writer_whose_file_another_run_replaced_writes_again(tmp_path):
    """The editor's session, 4 frames, then 6, then 4 again (an undo): the writer of the third run was
    'cached' (its file was there) and the file held the 6-frame render under the 4-frame workflow."""
    from graph_engine.api import Session, load_workflow
    wf = _project(tmp_path)
    session = Session()
    runs = []
    for frames in (4, 6, 4):
        w = load_workflow(wf)
        w.set("pat.frames", frames)
        runs.append(session.run(w))
    out = wf.parent / "out"
    assert "save" in runs[2].executed and _frames(out / "shot.mp4") == 4
    assert "frames: 4" in read_embedded_workflow(out / "shot.mp4")
    # Unchanged since, it is served from the cache again.
    w = load_workflow(wf)
    assert "save" not in session.run(w).executed


def test_a_full_disk_names_what_the_earlier_takes_use(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    import cv2
    from graph_engine import Clip, NodeError
    from nodes.io.images import write_frames
    from nodes.io.video_write import _failure
    (tmp_path / "takes").mkdir()
    (tmp_path / "takes" / "a.001.mp4").write_bytes(b"x" * 300_000)
    says = _failure("a.mp4", tmp_path, "h264", "Error: No space left on device", 1)
    assert says.endswith(f". Earlier takes in {tmp_path / 'takes'} use 0.3 MB: delete those you do not need, or "
                         f"keep fewer (keep_takes in config.yaml, --replace)")
    folder = tmp_path / "frames"
    write_frames(Clip.from_array(np.full((3, 8, 8, 3), 10, np.uint8), fps=8), str(folder))
    before = {n: (folder / n).read_bytes() for n in os.listdir(folder)}
    monkeypatch.setattr(cv2, "imwrite", lambda path, img: False)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(10, 10, 0))
    with pytest.raises(NodeError) as e:
        write_frames(Clip.from_array(np.full((3, 8, 8, 3), 90, np.uint8), fps=8), str(folder))
    # The earlier frames are back in their folder, and the takes left (not theirs) are what the message counts.
    assert {n: (folder / n).read_bytes() for n in os.listdir(folder)} == before
    assert os.listdir(tmp_path / "takes") == ["a.001.mp4"]
    msg = str(e.value)
    assert "(0 frames were written before it)" in msg
    assert ". frames holds the earlier render again, as it was. Earlier takes in" in msg
    assert msg.endswith("use 0.3 MB: delete those you do not need, or keep fewer (keep_takes in config.yaml, --replace)")


def test_a_frames_render_killed_outright_is_undone_by_the_next(tmp_path):
    """kill -9 half way through filling a frames folder left a mix of two renders in it, and the next render
    kept that mix as a take of its own (frames.002), beside the real earlier take."""
    from graph_engine import Clip, takes
    from nodes.io.images import write_frames
    folder = tmp_path / "frames"
    write_frames(Clip.from_array(np.full((3, 8, 8, 3), 10, np.uint8), fps=8), str(folder))
    first = {n: (folder / n).read_bytes() for n in os.listdir(folder)}
    # What a render killed after its first frame leaves: the take marked as being filled, one frame replaced,
    # and no process holding it any more.
    take = takes.keep_folder(folder, sorted(first))
    (folder / "frame_000000.png").unlink()
    (folder / "frame_000000.png").write_bytes(b"half of another render")
    os.close(takes._held.pop(take))
    write_frames(Clip.from_array(np.full((2, 8, 8, 3), 90, np.uint8), fps=8), str(folder))
    assert os.listdir(tmp_path / "takes") == ["frames.001"]
    assert {n: (take / n).read_bytes() for n in os.listdir(take)} == first


def test_a_second_render_into_a_frames_folder_being_filled_is_refused(tmp_path):
    """Two renders into one frames folder at once (a farm job queued again while the first still ran) wrote over
    each other's frames: the folder ended as a mix of both sizes under one render's marker, and both said ok."""
    from graph_engine import Clip
    from graph_engine.errors import NodeError
    from nodes.io.images import write_frames
    folder = tmp_path / "frames"
    refused = []

    def first(a, b):
        if a == 1:      # the other render starts while this one is at its second frame (its own lock, as a process's)
            with pytest.raises(NodeError) as e:
                write_frames(Clip.from_array(np.full((3, 16, 16, 3), 200, np.uint8), fps=8), str(folder))
            refused.append(str(e.value))
        return np.full((b - a, 8, 8, 3), 10, np.uint8)
    write_frames(Clip(3, 8, 8, 8, first, chunk=1), str(folder))
    assert refused == [f"{folder} is being filled by another render that is still running (another `kinograph "
                       f"run`, a farm job or an editor window): nothing was written. Wait for it to end, or write "
                       f"these frames to another folder"]
    import cv2
    assert [cv2.imread(str(folder / f"frame_00000{i}.png")).shape for i in range(3)] == [(8, 8, 3)] * 3
    assert open(folder / "workflow.yaml").readline().startswith("# Kinograph frames: 3 frames, 8x8")
    assert not (tmp_path / "takes").exists()
    # Once it ended, the folder is free: the next render replaces it (keeping it as a take).
    write_frames(Clip.from_array(np.full((3, 16, 16, 3), 200, np.uint8), fps=8), str(folder))
    assert cv2.imread(str(folder / "frame_000002.png")).shape == (16, 16, 3)
    assert sorted(os.listdir(tmp_path / "takes")) == ["frames.001"]


def test_takes_on_another_disk_are_copies(tmp_path, monkeypatch):
    """A takes folder linked to an archive disk: no hard link across disks, so the take is a copy."""
    from graph_engine import Clip, takes
    from nodes.io.video_write import write_video

    def no_hard_links(src, dst):
        raise OSError(18, "Invalid cross-device link")
    clip = Clip.from_array(np.zeros((3, 16, 16, 3), np.uint8), fps=8)
    write_video(clip, str(tmp_path / "a.mp4"), workflow_yaml="kinograph: 1\nnodes: {}\n")
    first = (tmp_path / "a.mp4").read_bytes()
    (tmp_path / "archive").mkdir()
    os.symlink(tmp_path / "archive", tmp_path / "takes")
    monkeypatch.setattr(takes.os, "link", no_hard_links)
    info = write_video(Clip.from_array(np.full((3, 16, 16, 3), 99, np.uint8), fps=8), str(tmp_path / "a.mp4"),
                       workflow_yaml="kinograph: 1\nnodes: {}\n")
    assert info["earlier_take"] == str(tmp_path / "takes" / "a.001.mp4")
    assert (tmp_path / "archive" / "a.001.mp4").read_bytes() == first
    # Never through a link someone planted at the take's name (a copy followed it and wrote over its target).
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "archive" / "a.002.mp4")
    with pytest.raises(OSError):
        takes._link(tmp_path / "a.mp4", tmp_path / "archive" / "a.002.mp4")
    assert victim.read_text() == "precious"


def test_a_render_parsed_for_the_editor_resolves_where_it_was_made(tmp_path):
    """The workflow a parse builds starts with no nodes: where its paths resolve was found then, from
    nothing, and the editor's first check of a render's outputs looked in out/out/."""
    from graph_engine.workflow import parse_workflow
    wf = _project(tmp_path)
    assert main(["run", str(wf)]) == 0
    render = wf.parent / "out" / "shot.mp4"
    parsed, problems = parse_workflow(read_embedded_workflow(render), render)
    assert problems == [] and parsed.base_dir == wf.parent


def test_a_video_name_without_a_file_type_is_refused_before_the_run(tmp_path, capsys):
    """save.path 'out/shot' wrote an H.264 file named 'shot' that `kinograph run out/shot` read as YAML
    ('not a text file') and players did not recognise."""
    wf = _project(tmp_path, WORKFLOW.replace("out/shot.mp4", "out/shot"))
    assert main(["run", str(wf)]) == 2
    assert (f"{wf}:4: node save: path: 'out/shot' has no file type: name the video .mp4 (h264, h265, av1), "
            f".webm (vp9), .mov (prores, dnxhr), .mkv (ffv1), .gif or .webp") in capsys.readouterr().err
    assert not (wf.parent / "out").exists()


def test_a_frames_take_of_another_workflow_is_told_apart_without_reading_its_frames(tmp_path, monkeypatch):
    from graph_engine import Clip, takes
    from nodes.io.images import write_frames
    clip = Clip.from_array(np.full((5, 8, 8, 3), 10, np.uint8), fps=8)
    write_frames(clip, str(tmp_path / "frames"), "kinograph: 1\nnodes: {}\n")
    compared = []
    real = takes._same
    monkeypatch.setattr(takes, "_same", lambda a, b: compared.append(a.name) or real(a, b))
    info = write_frames(clip, str(tmp_path / "frames"), "kinograph: 1\nname: other\nnodes: {}\n")
    assert info["earlier_take"] and compared == ["workflow.yaml"]


def test_a_frames_folders_workflow_runs_again_into_that_folder(tmp_path):
    """Run from the workflow.yaml a frames folder carries, out/frames wrote out/frames/out/frames."""
    wf = _project(tmp_path, WORKFLOW.replace("io.save_video", "io.save_frames").replace("out/shot.mp4", "out/frames"))
    assert main(["run", str(wf)]) == 0
    frames = wf.parent / "out" / "frames"
    assert main(["run", str(frames / "workflow.yaml"), "--set", "pat.frames=2"]) == 0
    assert not (frames / "out").exists()
    assert sorted(os.listdir(frames)) == ["frame_000000.png", "frame_000001.png", "workflow.yaml"]
    assert len(os.listdir(wf.parent / "out" / "takes" / "frames.001")) == 5


def test_two_renders_keeping_a_take_at_once_take_two_numbers(tmp_path, monkeypatch):
    """The number was claimed with an empty file, given up, then linked: another run taking it in between
    made this one fail with 'cannot keep the earlier take'."""
    from graph_engine import Clip, takes
    from nodes.io.video_write import write_video
    write_video(Clip.from_array(np.zeros((3, 16, 16, 3), np.uint8), fps=8), str(tmp_path / "a.mp4"))
    real, raced = takes._link, []

    def other_run_first(src, dst):
        if not raced:
            raced.append(dst)
            Path(dst).write_bytes(b"the other run's take")
        return real(src, dst)
    monkeypatch.setattr(takes, "_link", other_run_first)
    info = write_video(Clip.from_array(np.full((3, 16, 16, 3), 50, np.uint8), fps=8), str(tmp_path / "a.mp4"))
    assert info["earlier_take"] == str(tmp_path / "takes" / "a.002.mp4")
    assert (tmp_path / "takes" / "a.001.mp4").read_bytes() == b"the other run's take"


def test_a_copy_cut_short_in_takes_is_swept(tmp_path):
    """A take copied (no hard links there) by a run killed half way stays a hidden temporary, removed by the
    next run that keeps a take there, as atomic_output's are beside outputs."""
    from graph_engine import Clip
    from nodes.io.video_write import write_video
    write_video(Clip.from_array(np.zeros((3, 16, 16, 3), np.uint8), fps=8), str(tmp_path / "a.mp4"))
    (tmp_path / "takes").mkdir()
    left = tmp_path / "takes" / ".a.001.k3j9x0ab.partial.mp4"
    left.write_bytes(b"half a copy")
    os.utime(left, (1e9, 1e9))
    write_video(Clip.from_array(np.full((3, 16, 16, 3), 50, np.uint8), fps=8), str(tmp_path / "a.mp4"))
    assert os.listdir(tmp_path / "takes") == ["a.001.mp4"]


def test_a_frames_takes_workflow_runs_again_into_the_frames_folder(tmp_path):
    """Run from takes/frames.001/workflow.yaml, the frames went to out/takes/out/frames: the take's name
    was read as a file's (stem 'frames', suffix '.001')."""
    wf = _project(tmp_path, WORKFLOW.replace("io.save_video", "io.save_frames").replace("out/shot.mp4", "out/frames"))
    assert main(["run", str(wf)]) == 0
    assert main(["run", str(wf), "--set", "pat.frames=2"]) == 0
    take = wf.parent / "out" / "takes" / "frames.001"
    assert main(["run", str(take / "workflow.yaml")]) == 0
    assert sorted(os.listdir(wf.parent / "out")) == ["frames", "takes"]
    assert len(os.listdir(wf.parent / "out" / "frames")) == 5


def test_a_killed_exr_render_over_png_frames_is_undone_whole(tmp_path):
    """The undo took back PNG frames only: an EXR plate killed half way over a PNG render left its .exr
    frames beside the restored PNGs."""
    from graph_engine import Clip, takes
    from nodes.io.images import write_frames
    folder = tmp_path / "frames"
    write_frames(Clip.from_array(np.full((2, 8, 8, 3), 10, np.uint8), fps=8), str(folder))
    take = takes.keep_folder(folder, sorted(os.listdir(folder)))
    (folder / "frame_000000.exr").write_bytes(b"half an exr plate")
    os.close(takes._held.pop(take))
    assert takes.undo_killed(folder) == 1
    assert sorted(os.listdir(folder)) == ["frame_000000.png", "frame_000001.png", "workflow.yaml"]


def test_an_output_named_takes_is_refused_before_anything_runs(tmp_path):
    """An output named 'takes' (a frames folder out/takes) would be the folder the outputs beside it keep
    their earlier takes in: each re-run's take of out/shot.mp4 went into the frames folder."""
    from graph_engine.api import load_workflow
    from graph_engine.errors import WorkflowError
    (tmp_path / "wf.yaml").write_text(
        "kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 2, width: 16, height: 16}}\n"
        "  f: {type: io.save_frames, inputs: {video: p.video}, params: {path: out/takes}}\n")
    with pytest.raises(WorkflowError) as e:
        load_workflow(tmp_path / "wf.yaml")
    assert "output 'path' (out/takes) is named 'takes', the folder that keeps the earlier takes" in str(e.value)


def test_a_frames_render_that_stopped_goes_on_from_where_it_stopped(tmp_path):
    """Ctrl+C (or kill -9) at frame 3 of 6: the next run of the same workflow kept frames 0-2 as an earlier
    take and computed every frame again. Now it goes on from frame 3; a node moved in the editor between
    the runs changes nothing, another workflow renders all of them (the stopped one kept as a take)."""
    from graph_engine import Clip
    from graph_engine.errors import Cancelled
    from nodes.io.images import write_frames
    folder = tmp_path / "frames"
    asked = []

    def frames(stop_at, value):
        def read(a, b):
            asked.append(a)
            if a >= stop_at:
                raise Cancelled()
            return np.full((b - a, 8, 8, 3), value + a, np.uint8)
        return Clip(6, 8, 8, 8, read, chunk=1)
    with pytest.raises(Cancelled):
        write_frames(frames(3, 10), str(folder), WORKFLOW)
    done = {n: (folder / n).read_bytes() for n in os.listdir(folder) if n.startswith("frame_")}
    assert sorted(done) == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    asked.clear()
    info = write_frames(frames(99, 10), str(folder), WORKFLOW + "ui:\n  pat: {pos: [40, 0]}\n")
    assert asked == [3, 4, 5] and info["resumed_at"] == "frame_000003.png"
    assert all((folder / n).read_bytes() == b for n, b in done.items())
    assert len([n for n in os.listdir(folder) if n.startswith("frame_")]) == 6
    assert not (tmp_path / "takes").exists()
    asked.clear()
    info = write_frames(frames(99, 50), str(folder), WORKFLOW.replace("frames: 4", "frames: 6"))
    assert asked == [0, 1, 2, 3, 4, 5] and "resumed_at" not in info and info["earlier_take"]
