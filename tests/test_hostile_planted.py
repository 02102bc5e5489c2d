"""What a stranger plants in a frames folder (a project sent as a tar: the output folder comes with it) or hands
over as the workflow file itself: a named pipe or a link to /dev/zero named workflow.yaml, and a workflow.yaml
carrying Kinograph's mark over a YAML bomb. Each is refused or ignored with a message naming it, in a child with
a time and memory limit: before, the pipe hung the render for ever, /dev/zero was read until memory ran out and
the bomb stopped the render with a RecursionError."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Address space for the child: far above what writing two tiny frames takes, far below reading /dev/zero for ever.
LIMIT = 1536 << 20

CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
import numpy as np
from graph_engine import Clip, NodeError
from nodes.io.images import write_frames
clip = Clip.from_array(np.full((2, 16, 16, 3), 7, np.uint8), fps=8)
try:
    print(write_frames(clip, sys.argv[1], workflow_yaml="kinograph: 1\\nnodes: {{}}\\n"))
except NodeError as e:
    print("NodeError:", e)
"""


def child(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code.format(limit=LIMIT), *map(str, args)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_pipe_or_a_device_planted_as_a_frames_folders_workflow_is_refused(tmp_path):
    pipe, zero = tmp_path / "pipe", tmp_path / "zero"
    pipe.mkdir()
    zero.mkdir()
    os.mkfifo(pipe / "workflow.yaml")
    (zero / "workflow.yaml").symlink_to("/dev/zero")
    for folder in (pipe, zero):
        r = child(CHILD, folder)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert r.stdout.strip() == f"NodeError: {folder} already holds workflow.yaml and Kinograph did not fill this " \
                                   f"folder: choose another folder or set `overwrite: true`"
        assert sorted(p.name for p in folder.iterdir()) == ["workflow.yaml"]


def test_a_planted_workflow_bomb_under_kinographs_mark_is_not_gone_on_from(tmp_path):
    """The mark says 'a render of this clip stopped here'; what follows it is compared with this render's workflow
    to go on from its frames. A bomb there is no workflow: the folder is rendered whole, the earlier files kept."""
    folder = tmp_path / "frames"
    folder.mkdir()
    planted = "# Kinograph frames: 2 frames, 16x16 at 8 fps\n" + "[" * 200_000
    (folder / "workflow.yaml").write_text(planted)
    r = child(CHILD, folder)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.strip().startswith(f"{{'path': '{folder}', 'frames': 2"), r.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["frame_000000.png", "frame_000001.png", "workflow.yaml"]
    assert (tmp_path / "takes" / "frames.001" / "workflow.yaml").read_text() == planted


def test_a_workflow_file_that_is_a_pipe_or_a_device_is_refused_by_name(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    code = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
            "from pathlib import Path\nfrom graph_engine.errors import WorkflowError\n"
            "from graph_engine.workflow import read_text\n"
            "try:\n    read_text(Path(sys.argv[1]))\nexcept WorkflowError as e:\n    print(e)\n")
    for name, kind in (("pipe.yaml", "a named pipe (FIFO)"), ("zero.yaml", "a device")):
        r = child(code, tmp_path / name)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert r.stdout.strip() == f"{tmp_path / name}: cannot read: it is {kind}, not a file: give a plain file"


def test_a_comfyui_file_that_is_a_pipe_or_a_device_is_refused_by_name(tmp_path):
    """File > Open, `kinograph run` and a drop ask whether a file holds a ComfyUI workflow: a `.json` linked to
    /dev/zero was read until memory ran out (3.7 GB in 10 s under a 4 GB limit) and a named pipe, whether `.json`,
    `.png` or `.gif`, waited for ever; a drop froze the editor."""
    os.mkfifo(tmp_path / "pipe.json")
    os.mkfifo(tmp_path / "pipe.png")
    os.mkfifo(tmp_path / "pipe.gif")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    code = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
            "from app.comfyui import ComfyImportError, import_workflow, is_comfyui_file\n"
            "from app.editor.window import loader_for\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n        import_workflow(name)\n    except ComfyImportError as e:\n"
            "        print(is_comfyui_file(name), loader_for(name), e)\n")
    r = child(code, *(tmp_path / n for n in ("pipe.json", "pipe.png", "pipe.gif", "zero.json")))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    pipe = "is a named pipe (FIFO), not a workflow file: give the .json, PNG or video itself"
    assert r.stdout.splitlines() == [
        f"True None {tmp_path / 'pipe.json'}: {pipe}", f"False io.load_image {tmp_path / 'pipe.png'}: {pipe}",
        f"False io.load_video {tmp_path / 'pipe.gif'}: {pipe}",
        f"True None {tmp_path / 'zero.json'}: is a device, not a workflow file: give the .json, PNG or video itself"]


def test_an_alias_bomb_in_an_extra_model_paths_yaml_is_not_written_out(tmp_path):
    """A shared ComfyUI folder's extra_model_paths.yaml (read at every model lookup) whose base_path is a list of
    aliases nested 9 deep: 486 bytes, and writing it out as a folder name never ended (killed after 60 s). Only a
    text names a folder; the file's other sections still count."""
    lines = ['a0: &a0 ["x"]'] + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    lines += ["bomb:", "  base_path: *a9", "  checkpoints: models/checkpoints",
              "fine:", "  base_path: shared", "  loras: models/loras"]
    (tmp_path / "extra_model_paths.yaml").write_text("\n".join(lines) + "\n")
    code = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
            "from pathlib import Path\nfrom nodes.common.models_dirs import extra_model_paths\n"
            "print({{k: [str(p) for p in v] for k, v in extra_model_paths(Path(sys.argv[1])).items()}})\n")
    r = child(code, tmp_path / "extra_model_paths.yaml")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.strip() == str({"loras": [str(tmp_path / "shared" / "models" / "loras")]})


def test_a_section_named_again_by_an_alias_is_read_once(tmp_path):
    """Each alias to a section handed back the same mapping, read again in full: its folders listed once per alias
    (tens of thousands of aliases to a section of tens of thousands of keys fit in 1 MB: billions of keys read)."""
    lines = ["comfy: &comfy", "  base_path: shared", "  loras: models/loras", "  checkpoints: models/checkpoints"]
    lines += [f"again{i}: *comfy" for i in range(3)]
    (tmp_path / "extra_model_paths.yaml").write_text("\n".join(lines) + "\n")
    from nodes.common.models_dirs import extra_model_paths
    found = extra_model_paths(tmp_path / "extra_model_paths.yaml")
    assert found == {"loras": [tmp_path / "shared" / "models" / "loras"],
                     "checkpoints": [tmp_path / "shared" / "models" / "checkpoints"]}


def test_an_oversized_comfyui_file_is_told_the_limit(tmp_path):
    """A .json past the importer's limit (sparse: no bytes written) is refused naming its size, the limit and what
    to give instead; it said "64 MB is too large for a workflow file" of a 64.5 MB file."""
    from app.comfyui import import_workflow
    from app.comfyui.errors import ComfyImportError
    from app.comfyui.sources import MAX_JSON_BYTES
    big = tmp_path / "huge.json"
    with open(big, "wb") as f:
        f.truncate(MAX_JSON_BYTES + (MAX_JSON_BYTES >> 7))
    with pytest.raises(ComfyImportError) as e:
        import_workflow(str(big))
    assert str(e.value) == (f"{big}: 64.5 MB is more than a workflow file may be (at most 64 MB; ComfyUI's own are "
                            "under 1 MB): give the workflow's .json, or the PNG ComfyUI saved it in")


def test_a_merge_key_bomb_in_an_extra_model_paths_yaml_is_not_built(tmp_path):
    """Sections that each merge (`<<: *base`) one large section: every merge copies it, so 1 MB of them was billions
    of keys to build, at every model lookup (25 KB: 14 s). Sections are built while the entries built, merges
    written out, stay within 100,000 YAML nodes: the ones past that are left out, and a file of a few sections sharing one by a merge key, as people write them, still reads."""
    from nodes.common.models_dirs import extra_model_paths
    lines = ["base: &base", "  base_path: shared", "  loras: models/loras"] + [f"  pad{i}: x" for i in range(400)]
    lines += [f"s{i}: {{<<: *base, checkpoints: c{i}}}" for i in range(300)]
    (tmp_path / "extra_model_paths.yaml").write_text("\n".join(lines) + "\n")
    found = extra_model_paths(tmp_path / "extra_model_paths.yaml")
    base = 1 + 2 * (2 + 400)                # the mapping, then a key and a value node for each of its entries
    merged = 1 + 1 + base + 2               # the mapping, `<<`, the base written out, its own checkpoints entry
    assert found["checkpoints"] == [tmp_path / "shared" / f"c{i}" for i in range((100_000 - base) // merged)]
    (tmp_path / "fine.yaml").write_text("base: &base\n  base_path: shared\n  loras: models/loras\n"
                                        "more:\n  <<: *base\n  checkpoints: models/checkpoints\n")
    assert extra_model_paths(tmp_path / "fine.yaml") == {
        "loras": [tmp_path / "shared" / "models" / "loras"] * 2,
        "checkpoints": [tmp_path / "shared" / "models" / "checkpoints"]}
