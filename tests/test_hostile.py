"""Workflows from strangers: every file in tests/data/hostile/ tries to destroy or leak
something. Each runs through `kinograph` in a fake home folder whose every file is hashed
before and after; the run must exit with the right code and a located message, touch
nothing outside the folders it may write, and stay under 300 MB."""
import hashlib
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError
from graph_engine.atomic import written_by_kinograph

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "data" / "hostile"
MAX_RSS_MB = 300
# The CLI, reporting its peak resident memory at exit. VmHWM belongs to the process image, so
# unlike rusage it does not count the (large) pytest process the child was forked from.
MEASURED_CLI = """
import atexit, os, runpy, sys
def report():
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM"))
    with open(os.environ["RSS_OUT"], "w") as f:
        f.write(kb)
atexit.register(report)
sys.argv = ["kinograph"] + sys.argv[1:]
runpy.run_module("app.cli", run_name="__main__", alter_sys=True)
"""


def tree_hash(root: Path, skip=()):
    """Every file, folder and link under root (but the skipped folders) with its content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if os.path.normpath(os.path.join(rel_dir, d)) not in skip]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(p):
                out[rel] = "link:" + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            elif not os.path.isfile(p):         # a named pipe: reading it would wait for a writer
                out[rel] = "special"
            else:
                with open(p, "rb") as f:
                    out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


class Sandbox:
    """A fake home: dotfiles, documents, Kinograph's config and user nodes folder, and a
    workflow folder `work/` holding the user's footage, a photo, a link and a git folder."""

    # Kinograph's own cache and data folders change on every run; they are not the user's.
    OWN = (".cache", os.path.join(".local", "share", "kinograph"))

    def __init__(self, tmp: Path):
        self.home = tmp / "home"
        self.work = self.home / "work"
        for d in ("Documents", ".config/kinograph/nodes", ".local/share/kinograph", "work/.git/hooks"):
            (self.home / d).mkdir(parents=True)
        (self.home / ".bashrc").write_text("export PATH=$HOME/bin:$PATH\n")
        (self.home / ".profile").write_text("# profile\n")
        (self.home / "Documents" / "thesis.txt").write_text("five years of work\n")
        (self.home / ".config/kinograph/nodes/README").write_text("my nodes\n")
        (self.work / ".git/hooks/README").write_text("hooks\n")
        from PIL import Image
        Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(self.work / "holiday.png")
        os.symlink(self.home / ".bashrc", self.work / "link.mkv")
        os.symlink(self.work / "holiday.png", self.work / "alias.mkv")
        (self.work / "notes.json").write_text('{"shots": 12}')
        (self.work / ".env").write_text("API_TOKEN=sk-live-123456789secret\nDB_PASSWORD=hunter2hunter2\n")
        from nodes.io.video_write import write_video
        write_video(Clip.from_array(np.zeros((3, 16, 16, 3), np.uint8), fps=8), str(self.work / "footage.mkv"),
                    codec="ffv1")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KINOGRAPH_")}
        self.env.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / ".config"),
                        XDG_DATA_HOME=str(self.home / ".local/share"), XDG_CACHE_HOME=str(self.home / ".cache"),
                        PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")

    def add(self, name: str) -> Path:
        """Copy a corpus file into the workflow folder, with @HOME@ filled in."""
        dst = self.work / name
        dst.write_text((CORPUS / name).read_text().replace("@HOME@", str(self.home)))
        return dst

    def snapshot(self, skip=()):
        return tree_hash(self.home, self.OWN + tuple(skip))

    def kinograph(self, *args, timeout=120, memory_mb=0):
        """Run the CLI; (exit code, stdout, stderr, peak RSS of that process in MB). memory_mb caps its address
        space, so that a file that would take all memory fails the test instead of the machine."""
        rss_file = self.home.parent / "rss.kb"

        def cap():
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        r = subprocess.run([sys.executable, "-c", MEASURED_CLI, *args], cwd=self.work, capture_output=True, text=True,
                           timeout=timeout, env={**self.env, "RSS_OUT": str(rss_file)},
                           preexec_fn=cap if memory_mb else None)
        return r.returncode, r.stdout, r.stderr, int(rss_file.read_text()) / 1024


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path)


def assert_refused(box, name, needle, code=2, *extra):
    wf = box.add(name)
    before = box.snapshot()
    rc, out, err, rss = box.kinograph("run", name, *extra)
    assert rc == code, err
    assert "Traceback" not in err
    assert needle in err, err
    assert f"{wf}:" in err and any(ch.isdigit() for ch in err.split(f"{wf}:")[1][:4]), f"no FILE:LINE in {err}"
    assert box.snapshot() == before
    assert 10 < rss < MAX_RSS_MB
    return err


# -- outputs that would destroy what the user did not name ------------------------------------------
@pytest.mark.parametrize("name, needle", [
    ("save_frames_home.yaml", "starts with ~"),
    ("save_frames_own_folder.yaml", "which this workflow reads (the workflow file)"),
    ("bashrc.yaml", "starts with ~"),
    ("dotdot_profile.yaml", "outside the workflow's folder"),
    ("absolute_elsewhere.yaml", "outside the workflow's folder"),
    ("own_input.yaml", "which this workflow reads (load.path)"),
    ("own_workflow_file.yaml", "which this workflow reads (the workflow file)"),
    ("user_nodes_py.yaml", "user nodes folder"),
    ("dot_folder.yaml", "hidden (dot) file or folder"),
    ("foreign_file.yaml", "Kinograph did not write it"),
    ("overwrite_in_file.yaml", "the workflow says overwrite: true"),
    # metrics.report's chart goes beside its .json: holiday.json would replace the user's holiday.png
    ("report_beside_photo.yaml", "output 'path' (holiday.png) replaces a file Kinograph did not write"),
    ("symlink_out.yaml", "outside the workflow's folder"),
    ("symlink_in.yaml", "symbolic link"),
])
def test_hostile_outputs_are_refused_before_anything_runs(box, name, needle):
    assert_refused(box, name, needle)


def test_allow_outside_and_overwrite_are_explicit_and_still_never_clobber(box):
    box.add("absolute_elsewhere.yaml")
    before = box.snapshot(skip=["Documents"])
    rc, out, err, _ = box.kinograph("run", "absolute_elsewhere.yaml", "--allow-outside")
    assert rc == 0, err
    assert (box.home / "Documents" / "thesis.txt").read_text() == "five years of work\n"
    assert written_by_kinograph(box.home / "Documents" / "taken.mkv")
    assert box.snapshot(skip=["Documents"]) == before
    # --allow-outside does not lift the overwrite rule; `overwrite: true` on the node does.
    box.add("foreign_file.yaml")
    rc, _, err, _ = box.kinograph("run", "foreign_file.yaml", "--allow-outside")
    assert rc == 2 and "Kinograph did not write it" in err
    rc, _, err, _ = box.kinograph("run", "foreign_file.yaml", "--set", "save.overwrite=true")
    assert rc == 0, err
    assert '"metrics"' in (box.work / "notes.json").read_text()


def test_a_workflow_inside_a_video_says_what_it_writes_and_cannot_wipe_documents(box):
    from nodes.io.video_write import write_video
    text = (CORPUS / "save_frames_home.yaml").read_text().replace('"~"', "~/Documents")
    write_video(Clip.from_array(np.zeros((2, 16, 16, 3), np.uint8)), str(box.work / "cute.mp4"),
                workflow_yaml=text, codec="h264")
    before = box.snapshot()
    rc, out, err, rss = box.kinograph("run", "cute.mp4")
    assert rc == 2 and "Traceback" not in err
    assert "carries a workflow; it will write:" in err and str(box.home / "Documents") in err
    assert "starts with ~" in err
    assert box.snapshot() == before and rss < MAX_RSS_MB


def test_a_legit_run_writes_only_its_outputs_and_runs_again(box):
    wf = box.work / "legit.yaml"
    wf.write_text("kinograph: 1\nnodes:\n"
                  "  pattern: {type: generate.test_pattern, params: {frames: 3, width: 16, height: 16}}\n"
                  "  save: {type: io.save_video, inputs: {video: pattern.video}, params: {path: out/v.mkv, codec: ffv1}}\n"
                  "  frames: {type: io.save_frames, inputs: {video: pattern.video}, params: {path: out/frames}}\n")
    before = box.snapshot(skip=["work/out"])
    for _ in range(2):      # the second run replaces what the first wrote
        rc, out, err, rss = box.kinograph("run", "legit.yaml", "--no-cache")
        assert rc == 0, err
    assert box.snapshot(skip=["work/out"]) == before and rss < MAX_RSS_MB
    assert sorted(p.name for p in (box.work / "out" / "frames").iterdir()) == \
        ["frame_000000.png", "frame_000001.png", "frame_000002.png", "workflow.yaml"]


# -- the writers themselves -------------------------------------------------------------------------
def clip(n=3, value=0):
    return Clip.from_array(np.full((n, 16, 16, 3), value, np.uint8), fps=8)


def test_save_frames_never_deletes_and_never_overwrites_foreign_frames(tmp_path):
    from nodes.io.images import write_frames
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "keep.mov").write_bytes(b"footage")
    info = write_frames(clip(2), str(shots))
    assert sorted(p.name for p in shots.iterdir()) == ["frame_000000.png", "frame_000001.png", "keep.mov",
                                                       "workflow.yaml"]
    write_frames(clip(1, 9), str(shots))          # ours now: frames are replaced, the earlier ones kept as a take
    assert (shots / "keep.mov").read_bytes() == b"footage" and (tmp_path / "takes/shots.001/frame_000001.png").exists()
    assert info["frames"] == 2
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "frame_000000.png").write_bytes(b"not ours")
    with pytest.raises(NodeError, match="Kinograph did not fill this folder"):
        write_frames(clip(2), str(theirs))
    assert sorted(p.name for p in theirs.iterdir()) == ["frame_000000.png"]
    write_frames(clip(2), str(theirs), overwrite=True)
    assert (theirs / "frame_000000.png").read_bytes() != b"not ours"
    assert (tmp_path / "takes/theirs.001/frame_000000.png").read_bytes() == b"not ours"


def test_temporary_names_are_unique_and_planted_links_redirect_nothing(tmp_path):
    from nodes.io.video_write import write_video
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "v.mkv"
    for name in (".v.partial.mkv", ".v.mkv.partial", ".v.partial"):     # the names older versions used
        os.symlink(victim, tmp_path / name)
    write_video(clip(), str(out), codec="ffv1")
    assert victim.read_text() == "precious" and written_by_kinograph(out)
    os.symlink(victim, tmp_path / "w.mkv")
    with pytest.raises(NodeError, match="symbolic link"):
        write_video(clip(), str(tmp_path / "w.mkv"), codec="ffv1")
    assert victim.read_text() == "precious"
    leftovers = [p.name for p in tmp_path.iterdir() if ".partial" in p.name and not p.is_symlink()]
    assert leftovers == []
    (tmp_path / "disk").mkdir()
    os.symlink(tmp_path / "disk", tmp_path / "renders")      # a linked folder on the way is fine
    write_video(clip(), str(tmp_path / "renders" / "x.mkv"), codec="ffv1")
    assert (tmp_path / "disk" / "x.mkv").is_file()


def test_two_concurrent_runs_to_one_output_are_honest_and_leave_a_valid_file(box):
    from nodes.io.video_read import load_video
    wf = box.work / "race.yaml"
    wf.write_text("kinograph: 1\nnodes:\n"
                  "  pattern: {type: generate.test_pattern, params: {frames: 24, width: 64, height: 48}}\n"
                  "  save: {type: io.save_video, inputs: {video: pattern.video}, params: {path: out/same.mkv, codec: ffv1}}\n")
    results = [None, None]

    def go(i):
        results[i] = box.kinograph("run", "race.yaml", "--no-cache")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rc, out, err, _ in results:
        # Either run may win; one that says it wrote the file did, one that did not says why.
        assert rc in (0, 1), err
        assert ("same.mkv" in out) == (rc == 0)
    assert any(rc == 0 for rc, *_ in results)
    assert load_video(str(box.work / "out" / "same.mkv")).length == 24
    assert [p.name for p in (box.work / "out").iterdir()] == ["same.mkv"]


# -- files that are expensive, recursive or not what they claim ------------------------------------
@pytest.mark.parametrize("name, code, needle, line", [
    ("alias_bomb.yaml", 2, "anchors and aliases", 2),
    ("self_alias.yaml", 2, "anchors and aliases", 2),
    ("deep_nesting.yaml", 2, "nested more than 64 levels", 5),
    ("not_a_mapping.yaml", 2, "must be a mapping", 2),
    ("nan_param.yaml", 2, "must be a finite number", 3),
    ("bypass_string.yaml", 2, "`bypass:` must be true or false", 4),
    ("deep_chain.yaml", 2, "a chain of 341 nodes", 343),
    ("lut_secrets.yaml", 1, ".env:1: not a .cube LUT line", None),
])
def test_hostile_files_fail_with_a_located_message_and_little_memory(box, name, code, needle, line):
    import re
    wf = box.add(name)
    before = box.snapshot()
    rc, out, err, rss = box.kinograph("run", name)
    assert rc == code and "Traceback" not in err, err
    assert needle in err, err
    if line is not None:
        assert re.search(rf"{re.escape(str(wf))}:{line}:", err), err
    assert "sk-live" not in err + out and "hunter2" not in err + out      # file contents never echoed
    assert box.snapshot() == before
    assert 10 < rss < MAX_RSS_MB


def test_an_oversized_workflow_is_refused_without_reading_it(box):
    big = box.work / "big.yaml"
    with open(big, "w") as f:
        f.write("kinograph: 1\nnodes: {}\n")
        f.write(("# " + "x" * 1000 + "\n") * 17_000)
    rc, _, err, rss = box.kinograph("validate", "big.yaml")
    assert rc == 2 and f"{big}:1:" in err and "at most 16 MB" in err
    assert 10 < rss < MAX_RSS_MB


def test_workflows_of_any_size_are_embedded_and_read_back(tmp_path):
    from graph_engine.embedded import read_embedded_workflow
    from nodes.io.images import write_png
    from nodes.io.video_write import write_video
    text = "kinograph: 1\nnodes: {}\ndescription: |\n" + "".join(f"  line {i} with = ; # \\ marks\n"
                                                                 for i in range(40_000))
    assert len(text) > 1 << 20       # far over one argv argument (128 KiB) and Pillow's text limit
    for name, codec in (("a.mp4", "h264"), ("a.mkv", "ffv1")):
        write_video(clip(2), str(tmp_path / name), codec=codec, workflow_yaml=text)
        assert read_embedded_workflow(tmp_path / name) == text
    write_png(np.zeros((4, 4, 3), np.uint8), str(tmp_path / "a.png"), text)
    assert read_embedded_workflow(tmp_path / "a.png") == text


def test_sixteen_bit_and_grayscale_images_keep_their_values(tmp_path):
    from PIL import Image
    from nodes.io.images import read_image
    ramp16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1040)       # 0 .. 65520
    Image.fromarray(ramp16).save(tmp_path / "g16.png")
    got = read_image(str(tmp_path / "g16.png"))
    assert got.shape == (8, 8, 3) and got.dtype == np.uint8
    want = np.round(ramp16 / 257.0).astype(np.uint8)
    assert np.abs(got[..., 0].astype(int) - want).max() <= 1 and np.array_equal(got[..., 0], got[..., 2])
    assert len(np.unique(got)) > 32                      # a ramp, not black and white
    gray8 = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(gray8).save(tmp_path / "g8.png")
    assert np.array_equal(read_image(str(tmp_path / "g8.png"))[..., 1], gray8)
    import cv2
    rgb16 = np.random.default_rng(0).integers(0, 65536, (8, 8, 3)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])
    assert np.abs(read_image(str(tmp_path / "c16.png")).astype(int) - np.round(rgb16 / 257.0)).max() <= 1


def test_local_ray_listens_on_loopback_only():
    pytest.importorskip("ray")
    code = (
        "import json, os, psutil\n"
        "from app.distributed import ray_session\n"
        "with ray_session('local', num_cpus=1) as ray:\n"
        "    procs = [psutil.Process()] + psutil.Process().children(recursive=True)\n"
        "    addrs = {c.laddr.ip for p in procs for c in p.net_connections('inet') if c.status == 'LISTEN'}\n"
        "print(json.dumps(sorted(addrs)))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Token authentication is enabled" not in r.stderr      # Ray's warning atop every batch's log
    addrs = __import__("json").loads(r.stdout.strip().splitlines()[-1])
    assert addrs and all(a in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for a in addrs), addrs


def test_validate_reports_what_run_would_refuse(box):
    for name in ("save_frames_home.yaml", "alias_bomb.yaml"):
        box.add(name)
        rc, out, err, _ = box.kinograph("validate", name)
        assert rc == 2 and "ok" not in out and f"{box.work / name}:" in err


def test_a_read_only_output_folder_is_refused_before_anything_runs(tmp_path, capsys):
    """An output folder that takes no files (a read-only mount, another user's folder) was found only when
    the writer ran, after everything upstream of it (a long generation) had done its work, and the run
    exited 1. Validation names it now: exit 2, no node run."""
    import json
    from app.cli import main
    ro = tmp_path / "renders"
    ro.mkdir()
    if os.geteuid() == 0:          # root writes into any folder whatever its mode: a read-only mount then
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
        why = "is on a read-only filesystem"
    else:
        ro.chmod(0o555)
        why = "is not writable for this user"
    try:
        wf = tmp_path / "wf.yaml"
        wf.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 4, width: 32, "
                      "height: 32}}\n  save: {type: io.save_video, inputs: {video: p.video}, params: {path: "
                      "renders/x.mkv, codec: ffv1}}\n")
        assert main(["run", str(wf), "--json"]) == 2
        out = capsys.readouterr()
        assert not [e for e in map(json.loads, out.out.splitlines()) if e["event"] == "node_started"]
        assert f"{wf}:4: node save: output 'path' cannot be written: the folder {ro} {why}: choose another " \
               f"folder" in out.err
        assert main(["validate", str(wf)]) == 2 and why in capsys.readouterr().err
        # Into folders still to be made there (a new version's): refused alike, not at the end of the render.
        wf.write_text(wf.read_text().replace("renders/x.mkv", "renders/v003/shot/x.mkv"))
        assert main(["run", str(wf)]) == 2
        assert f"node save: output 'path' cannot be written: the folder {ro} {why}" in capsys.readouterr().err
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], capture_output=True)
        ro.chmod(0o755)


def test_a_data_folder_that_cannot_be_written_is_said_when_writing_and_when_refusing(tmp_path, capsys, caplog,
                                                                                     monkeypatch):
    """A home that cannot be written (a locked-down studio account): the record of the files Kinograph wrote could
    not be kept, silently, and the next run of the same workflow refused its own report ('already exists and
    Kinograph did not write it') with nothing to say why."""
    from app.cli import main
    blocker = tmp_path / "home-is-read-only"
    blocker.write_text("")
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(blocker / "kinograph"))
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 4, width: 32, height: "
                  "32}}\n  rep: {type: metrics.report, inputs: {video: p.video}, params: {path: out/rep.json, "
                  "metrics: flicker}}\n")
    assert main(["run", str(wf)]) == 0
    ledger = blocker / "kinograph" / "written.jsonl"
    (said,) = [r.getMessage() for r in caplog.records if "record of the files" in r.getMessage()]
    assert said.startswith(f"Kinograph could not keep its record of the files it writes in {ledger} (") and \
        said.endswith("a later run will take rep.json, and other files it wrote that carry no workflow (reports, "
                      "tables, camera files), for someone else's and refuse to replace them. Set KINOGRAPH_DATA_DIR "
                      "to a folder you can write")
    capsys.readouterr()
    assert main(["run", str(wf)]) == 2
    assert (f"{tmp_path / 'out' / 'rep.json'} already exists and Kinograph did not write it: choose another name, "
            f"move it away, or set `overwrite: true` on the node (if a run of Kinograph wrote it, its record of that "
            f"could not be kept: {ledger} cannot be written. Set KINOGRAPH_DATA_DIR to a folder you can write)"
            ) in capsys.readouterr().err


# -- files handed over to import or to read: small files that claim to be enormous ------------------
@pytest.mark.parametrize("name, needle", [
    # every schedule is evaluated at every frame: 10^9 frames took hours and all memory
    ("deforum_billion_frames.txt", "max_frames: 1000000000 frames; Kinograph makes clips of at most 100000 "
                                   "frames: set max_frames to 100000 or fewer"),
    # a `...` weighted prompt was written out at every frame up to the next keyframe, at frame 10^12
    ("deforum_far_prompt.txt", None),
])
def test_deforum_settings_claiming_huge_clips_import_quickly(box, name, needle):
    src = box.work / name
    src.write_text((CORPUS / name).read_text())
    before = box.snapshot()
    rc, out, err, rss = box.kinograph("import", name, timeout=60, memory_mb=2048)
    assert "Traceback" not in err and "MemoryError" not in err, err[-2000:]
    if needle:
        assert rc == 2 and needle in err, err
    else:       # imported (exit 3: the SD checkpoint it names is not here), the prompt cut at the clip's end
        assert rc == 3, err
        import yaml
        text = yaml.safe_load(out)["nodes"]["prompt"]["params"]["text"]
        assert text.startswith("0: a (lighthouse:1) at dusk, 1: a (lighthouse:1) at dusk") and \
            "119: a (lighthouse:1) at dusk, 1000000000000: a harbour" in text and "120: " not in text
    assert box.snapshot() == before
    assert 10 < rss < MAX_RSS_MB


def test_an_exr_claiming_a_huge_picture_is_refused_from_its_header(tmp_path):
    """A 370-byte EXR whose display window says 60000x60000 became a 10 GB frame (np.zeros, filled by every
    node after); its data window is what reading allocates. Both are checked against Pillow's limit."""
    OpenEXR = pytest.importorskip("OpenEXR")
    from nodes.io.images import read_image
    px = np.zeros((4, 4, 3), np.float16)
    for window in ("displayWindow", "dataWindow"):
        path = tmp_path / f"{window}.exr"
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
                  "displayWindow": ((0, 0), (3, 3))}
        header[window] = ((0, 0), (59999, 59999))
        try:
            OpenEXR.File(header, {"RGB": px}).write(str(path))
        except Exception:       # the bindings refuse a data window the pixels do not fill: write it by hand
            OpenEXR.File({**header, window: ((0, 0), (3, 3))}, {"RGB": px}).write(str(path))
            raw = bytearray(path.read_bytes())
            at = raw.index(b"dataWindow\0box2i\0") + len(b"dataWindow\0box2i\0") + 4
            raw[at:at + 16] = np.array([0, 0, 59999, 59999], "<i4").tobytes()
            path.write_bytes(bytes(raw))
        assert path.stat().st_size < 1000
        with pytest.raises(NodeError, match=r"has 3,600,000,000 pixels \(60000x60000\), more than the "
                                            r"178,956,970 an image may have to be read safely: scale it down"):
            read_image(str(path))
    ok = tmp_path / "ok.exr"
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, {"RGB": px}).write(str(ok))
    assert read_image(str(ok)).shape == (4, 4, 3)


def test_a_video_whose_timestamps_claim_months_is_refused_when_opened(tmp_path):
    """Two frames, the second stamped 10^7 s after the first: the clip was 300 million frames long (the gap
    held by the first frame), 2.4 GB and 20 s just to open. A real gap of a few seconds still holds."""
    import av
    from fractions import Fraction
    from nodes.io.video_read import load_video

    def mkv(name, gap_ms):
        path = tmp_path / name
        with av.open(str(path), "w") as c:
            s = c.add_stream("ffv1", rate=30)
            s.width, s.height, s.pix_fmt, s.time_base = 16, 16, "yuv420p", Fraction(1, 1000)
            for pts in (0, gap_ms):
                f = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 9, np.uint8), format="rgb24")
                f.pts, f.time_base = pts, Fraction(1, 1000)
                for p in s.encode(f):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        return path

    bomb = mkv("long.mkv", 10 ** 10)
    assert bomb.stat().st_size < 2000
    with pytest.raises(NodeError, match=r"long.mkv: its timestamps spread its 2 frames over 2778 hours "
                                        r"\(300000001 frames at 30 fps\): the file is damaged or made to look long"):
        load_video(str(bomb))
    assert load_video(str(mkv("gap.mkv", 2000))).length == 61


def test_a_takes_folder_linked_into_documents_never_loses_the_users_folders(box):
    """A project someone sent with `out/takes` a link to ~/Documents: with keep_takes: 1 the run removed the
    'oldest takes' there, the user's own folders frames.2019 and frames.2020 (named like takes of out/frames).
    Only takes Kinograph kept are removed now; the others are named in the log and left."""
    docs = box.home / "Documents"
    for year in (2019, 2020):
        (docs / f"frames.{year}").mkdir()
        (docs / f"frames.{year}" / "tax return.pdf").write_text(f"{year}\n")
    (box.work / "out").mkdir()
    os.symlink(docs, box.work / "out" / "takes")
    wf = box.work / "frames.yaml"
    box.env["KINOGRAPH_KEEP_TAKES"] = "1"
    for n in (2, 3, 4):
        wf.write_text("kinograph: 1\nnodes:\n"
                      f"  p: {{type: generate.test_pattern, params: {{frames: {n}, width: 16, height: 16}}}}\n"
                      "  save: {type: io.save_frames, inputs: {video: p.video}, params: {path: out/frames}}\n")
        rc, out, err, _ = box.kinograph("run", "frames.yaml", "--no-cache")
        assert rc == 0, err
    assert (docs / "frames.2019" / "tax return.pdf").read_text() == "2019\n"
    assert (docs / "frames.2020" / "tax return.pdf").read_text() == "2020\n"
    assert "left frames.2019, frames.2020 in" in out + err and "Kinograph did not write them" in out + err
    # Kinograph's own takes are still bounded by keep_takes: of frames.2021 and frames.2022, the newer stays.
    assert sorted(p.name for p in docs.iterdir()) == ["frames.2019", "frames.2020", "frames.2022", "thesis.txt"]


def test_a_comfyui_formula_of_forty_thousand_digits_is_a_placeholder_not_a_traceback(tmp_path, capsys):
    """ComfyMathExpression's powers are bounded, but a product of forty of them (129841 bits) passed, and
    checking that it was finite (math.isfinite, then repr, past Python's 4300-digit limit) raised a traceback."""
    import json
    from app.cli import main
    api = {"5": {"class_type": "PrimitiveInt", "inputs": {"value": 4}},
           "9": {"class_type": "ComfyMathExpression", "inputs": {"expression": "(9**1024)*" * 40 + "1",
                                                                 "values.a": ["5", 0]}}}
    src = tmp_path / "formula.json"
    src.write_text(json.dumps(api))
    assert main(["import", str(src)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "gives a number of 129841 bits, beyond any value a node takes" in err



def test_a_workflow_number_of_five_thousand_digits_is_named_with_its_line(tmp_path, capsys):
    """PyYAML reads a plain number with Python's int(), which refuses more than 4300 digits: `validate`, `run` and
    a sweep file stopped in a ValueError traceback from inside the YAML reader."""
    from app.cli import main
    wf = tmp_path / "digits.yaml"
    # YAML 1.1's base 60 (1:30) too: PyYAML reads each part with int()
    for number, digits in (("9" * 5000, "5,000"), ("9" * 5000 + ":30", "5,002")):
        wf.write_text("kinograph: 1\nnodes:\n  pattern:\n    type: generate.test_pattern\n    params:\n"
                      f"      frames: {number}\n")
        assert main(["validate", str(wf)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"{wf}:6: a number of {digits} digits: Kinograph reads whole numbers of " \
            "at most 1,000 digits (a seed has 20); the file is damaged or made to fail" in err, err


def test_an_output_name_longer_than_the_file_system_holds_is_refused_before_anything_runs(tmp_path, capsys):
    """A save path of a 300-byte name passed validate, and the writer failed with 'File name too long' once every
    node before it had run (a generation's hours, lost); one of 5,000 bytes stopped validate and run in an OSError
    traceback from the output checks' stat."""
    from app.cli import main
    for name, why in (("a" * 300 + ".mp4", "has a name of 304 bytes"),
                      ("a" * 5000 + ".mp4", "has a name of 5,004 bytes"),
                      ("abcdefghi/" * 500 + "x.mp4", "bytes long as a path; paths here hold at most")):
        wf = tmp_path / "long.yaml"
        wf.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 1, width: 16, "
                      f"height: 16}}}}\n  s: {{type: io.save_video, inputs: {{video: p.video}}, params: {{path: out/{name}}}}}\n")
        assert main(["validate", str(wf)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"{wf}:4: node s: output 'path' (out/" in err and why in err, err
    assert main(["run", str(wf)]) == 2 and not (tmp_path / "out").exists()
    # The take's room is the output's own name's: a folder of 250 bytes (one that exists) holds a short name, and
    # one of 300 is named as the folder it is.
    (tmp_path / ("b" * 250)).mkdir()
    for folder, code in (("b" * 250, 0), ("c" * 300, 2)):
        wf.write_text(wf.read_text().rpartition("path: ")[0] + f"path: {folder}/clip.mp4}}}}\n")
        assert main(["validate", str(wf)]) == code
        assert (code == 0) == ("folder name of 300 bytes (cccc" not in capsys.readouterr().err)

def test_a_nul_character_in_a_path_is_named_not_a_traceback(tmp_path, capsys):
    """A path holding a NUL character ("\\0" in YAML, "\\u0000" in a ComfyUI file) was refused as a param, but the
    output checks went on to resolve it: validate, run and import stopped in os.path.realpath's 'embedded null
    byte' ValueError traceback, for a picture or a drawing read, a model file named and a save path alike."""
    import json
    from app.cli import main
    wf = tmp_path / "nul.yaml"
    for node in ('{type: io.load_image, params: {path: "a\\0b.png"}}', '{type: mask.painter, params: {path: "a\\0.png"}}',
                 '{type: detect.rtdetr, inputs: {video: p.video}, params: {model: "rt\\0.safetensors"}}',
                 '{type: io.save_video, inputs: {video: p.video}, params: {path: "out/a\\0.mp4"}}'):
        wf.write_text(f"kinograph: 1\nnodes:\n  p: {{type: generate.test_pattern, params: {{frames: 1}}}}\n  n: {node}\n")
        assert main(["validate", str(wf)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"{wf}:4: node n:" in err and "\\x00" in err, err
    api = tmp_path / "nul.json"
    api.write_text(json.dumps({"1": {"class_type": "LoadImage", "inputs": {"image": "a\0b.png"}},
                               "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}))
    assert main(["import", str(api), "-o", str(tmp_path / "imported.yaml")]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out and "control characters" in captured.err, captured.err


def test_terminal_escapes_in_a_workflow_print_as_text(tmp_path, capsys):
    """An output path holding ESC [2J (clear the screen) and a fake 'finished: ok' line reached the terminal
    raw inside the refusal that quoted it: the screen was cleared and the refusal hidden. Everything the
    command prints shows control characters as escapes."""
    from app.cli import main
    wf = tmp_path / "esc.yaml"
    wf.write_text('kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 2}}\n'
                  '  s: {type: io.save_video, inputs: {video: p.video}, '
                  'params: {path: "../\\e[2J\\e[H\\rfinished in 0.1s: ok.mkv"}}\n')
    assert main(["run", str(wf)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err
    assert f"{wf}:4: node s: output 'path' (../\\x1b[2J\\x1b[H\\rfinished in 0.1s: ok.mkv) resolves to" in err


class _WritesFiles(torch.nn.Module):
    """An 'I3D detector' that overwrites a file when it runs (TorchScript's torch.save takes any path)."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def forward(self, x):
        torch.save(x, self.target)
        return x.mean((2, 3, 4))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_torchscript_detector_that_writes_files_is_refused_before_it_loads(tmp_path):
    """metrics.fvd loads its detector with torch.jit.load: TorchScript is a program, and a detector shipped beside a
    stranger's workflow overwrote ~/Documents/thesis.txt with a pickled tensor when the metric ran."""
    from graph_engine.context import Context
    sys.path.insert(0, str(ROOT / "tests"))
    from node_call import Nodes
    from nodes.metrics import nodes as metric_nodes
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("five years of work\n")
    det = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(_WritesFiles(str(thesis))).save(str(det))
    video = Clip.from_array(np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3)).astype(np.uint8))
    with pytest.raises(NodeError, match=r"i3d_torchscript.pt is refused: its code \(.*\.py\) calls save\(\), which "
                                        r"reads or writes files"):
        Nodes(metric_nodes).fvd(Context("f"), video, video, detector=str(det), clip_frames=3, stride=1)
    assert thesis.read_text() == "five years of work\n"


class _WritesOnLoad(torch.nn.Module):
    """An 'upscaler' whose __setstate__, which torch.jit.load runs, writes a file."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return (self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        torch.save(torch.zeros(2), state[0])
        self.target, self.training = state

    def forward(self, x):
        return x


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("name", ["x4.pt", "x4.pth"])
def test_an_upscaler_that_writes_files_as_it_loads_is_refused(tmp_path, name):
    """spandrel loads a .pt upscaler with torch.jit.load (and torch.load hands a TorchScript .pth to it), which
    runs the archive's __setstate__: a model file shipped beside a workflow wrote wherever it liked."""
    from nodes.upscale.model_sr import load_model
    target = tmp_path / "bashrc"
    model = tmp_path / name
    torch.jit.script(_WritesOnLoad(str(target))).save(str(model))
    target.unlink(missing_ok=True)          # saving ran __getstate__ only; make sure nothing is there
    with pytest.raises(NodeError, match=rf"{name} is refused: its code \(.*\.py\) calls save\(\), which reads or "
                                        r"writes files. A TorchScript upscaler runs as a program"):
        load_model(str(model))
    assert not target.exists()


class _AddsOne(torch.nn.Module):
    def forward(self, x):
        return x + 1


class _Counts(torch.nn.Module):
    """A network attribute named like torch.classes: its own, and harmless."""

    def __init__(self):
        super().__init__()
        self.classes = 3

    def forward(self, x):
        return x * self.classes


def _rewritten(src: Path, dst: Path, code_of) -> Path:
    """src's records copied to dst, each code record (.py) replaced by the records code_of(text) gives."""
    import warnings
    import zipfile
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b, warnings.catch_warnings():
        warnings.simplefilter("ignore")         # zipfile warns of a second record of one name: that is the point
        for info in a.infolist():
            data = a.read(info)
            for text in code_of(data.decode()) if info.filename.endswith(".py") else [data]:
                b.writestr(info.filename, text)
    return dst


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_code_is_judged_as_torch_reads_it(tmp_path):
    """The TorchScript check read a regex over zipfile's idea of the archive (and pose.dwpose had a looser copy
    that let torch.save through): getattr(torch, "sa" "ve") is torch.save to TorchScript's parser, 'ops . x' is
    ops.x, and of two records with one name torch runs the first where zipfile reads the last. Each of these
    wrote a file or called another library's operators when the model ran; each is refused before loading now."""
    from nodes.generate.detect import load_torchscript
    from nodes.pose.dwpose import load_torchscript as load_pose_model
    plain = tmp_path / "plain.pt"
    torch.jit.script(_AddsOne()).save(str(plain))
    assert float(load_pose_model(plain, "cpu")(torch.zeros(1))) == 1.0         # plain arithmetic still loads
    counts = tmp_path / "counts.pt"
    torch.jit.script(_Counts()).save(str(counts))
    assert float(load_pose_model(counts, "cpu")(torch.ones(1))) == 3.0         # self.classes is no torch.classes
    target = tmp_path / "written"
    save = f'getattr(torch, "sa" "ve")(x, "{target}")\n    return torch.add(x, 1)'
    hostile = {
        "getattr_save": (lambda c: [c.replace("return torch.add(x, 1)", save)], r"calls save\(\), which reads or"),
        "spaced_ops": (lambda c: [c.replace("torch.add(x, 1)", "ops . prims . add(x, x)")],
                       r"calls ops.prims, operators of a library other than torch's and torchvision's"),
        "ops_whole": (lambda c: [c.replace("torch.add(x, 1)", 'getattr(ops, "prims").add(x, x)')], r"hands on ops"),
        "custom_class": (lambda c: [c.replace("torch.add(x, 1)", "__torch__.torch . classes.ns.C(x)")],
                         r"uses torch.classes"),
        "two_records": (lambda c: [c.replace("return torch.add(x, 1)", save), c],
                        r"holds two records named plain/code/.*\.py, which torch.jit.save never writes"),
    }
    for name, (code_of, refusal) in hostile.items():
        path = _rewritten(plain, tmp_path / f"{name}.pt", code_of)
        with pytest.raises(NodeError, match=rf"{name}.pt is refused: .*{refusal}"):
            load_torchscript(path, "cpu", "detector")
        with pytest.raises(NodeError, match=rf"{name}.pt is refused: .*TorchScript pose model runs as a program"):
            load_pose_model(path, "cpu")
    assert not target.exists()
    # code records deflated from 32 MB of spaces each (a file of KB): the check itself read each whole, so a 3 MB
    # archive of 3 GB of code took all memory before anything was judged
    import zipfile
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(plain) as a, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            data = a.read(info)
            b.writestr(info.filename, data + b" " * (32 << 20) if info.filename.endswith(".py") else data)
    for load in (lambda p: load_torchscript(p, "cpu", "detector"), lambda p: load_pose_model(p, "cpu")):
        with pytest.raises(NodeError, match=r"bomb.pt is refused: its records unpack to [\d,]+ bytes from a file of "
                                            r"[\d,]+ \(torch saves them uncompressed\)"):
            load(bomb)


def test_a_workflow_of_many_unconnected_nodes_is_scoped_in_one_walk(tmp_path, monkeypatch):
    """Validation sets aside half-connected nodes with what they feed: it walked the whole graph once for each of
    them, and kept the result in a list it searched once per node, so a 2.4 MB file of 40000 such nodes (a
    ComfyUI import, or a file from anyone) took minutes to validate and a 16 MB one hours. Now one walk."""
    from graph_engine.api import load_workflow
    from graph_engine.graph import Graph
    from graph_engine.registry import default_registry
    from graph_engine.validate import run_scope
    wf = tmp_path / "many.yaml"
    wf.write_text("kinograph: 1\nnodes:\n" + "".join(f"  s{i}: {{type: generate.sample}}\n" for i in range(300)) +
                  "  p: {type: generate.test_pattern, params: {frames: 2}}\n"
                  "  save: {type: io.save_video, inputs: {video: p.video}, params: {path: out/v.mkv}}\n")
    walks = []
    links = Graph.links
    monkeypatch.setattr(Graph, "links", lambda self: walks.append(1) or links(self))
    runs, left = run_scope(load_workflow(str(wf)), default_registry())
    assert runs == ["p", "save"] and left == [f"s{i}" for i in range(300)]
    assert len(walks) <= 2


def test_a_video_of_frames_larger_than_any_image_is_refused_when_opened(tmp_path, monkeypatch):
    """A 560 KB MOV of two 16000x16000 PNG frames took 2.8 GB and 48 s to open and read before anything said no;
    video frames now meet the pixel limit images meet (Pillow's, lowered here so the file stays small)."""
    from PIL import Image
    from nodes.io.video_read import load_video
    from nodes.io.video_write import write_video
    path = tmp_path / "big.mkv"
    write_video(Clip.from_array(np.zeros((2, 64, 64, 3), np.uint8)), str(path), codec="ffv1")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)        # refused beyond twice that, as Pillow does
    with pytest.raises(NodeError, match=r"big.mkv has 4,096 pixels \(64x64\), more than the 4,000 an image may have "
                                        r"to be read safely: scale it down first \(ffmpeg"):
        load_video(str(path))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2048)
    assert load_video(str(path)).length == 2


def test_a_video_cannot_fill_the_folder_it_was_sent_to_with_frames(box):
    """A video carrying a workflow whose save_frames path is '.' filled the folder it sat in (~/Documents,
    ~/Downloads) with frames and a workflow.yaml marking the folder as Kinograph's own: a workflow file may not
    name its own folder (it reads the file there), a render could. It is refused now, before anything runs."""
    from nodes.io.video_write import write_video
    video = box.home / "Documents" / "cute.mp4"
    write_video(clip(2), str(video), codec="h264", workflow_yaml=(
        "kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 2, width: 16, height: 16}}\n"
        "  f: {type: io.save_frames, inputs: {video: p.video}, params: {path: .}}\n"))
    before = box.snapshot()
    rc, out, err, _ = box.kinograph("run", str(video))
    assert rc == 2 and "Traceback" not in err, err
    assert f"{video}:4: node f: output 'path' (.) is a folder holding {video}, the render this workflow was read " \
           f"from: frames written there mix with your files; choose a folder of its own" in err
    assert box.snapshot() == before


def _png(path, width, height, text=b""):
    """A PNG of this size by its header, with one tEXt chunk: a few hundred bytes whatever it claims."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
                     (chunk(b"tEXt", text) if text else b"") + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) +
                     chunk(b"IEND", b""))
    return path


def test_a_png_claiming_ten_billion_pixels_is_refused_by_name_everywhere(tmp_path, capsys):
    """Pillow refuses a PNG whose header says 100000x100000 as it opens it, with an exception only the pixel
    readers caught: `run`, `validate` and `import` of such a file, or an output path naming it, ended in a
    traceback. The workflow reader takes it for a file carrying none; import names its size."""
    from app.cli import main
    bomb = _png(tmp_path / "bomb.png", 100000, 100000, b"kinograph_workflow\0kinograph: 1\nnodes: {}\n")
    assert bomb.stat().st_size < 200
    for command in ("run", "validate"):
        assert main([command, str(bomb)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"{bomb}: this file carries no Kinograph workflow" in err
    assert main(["import", str(bomb)]) == 2
    assert f"{bomb} has 10,000,000,000 pixels, more than the 178,956,970 an image may have to be read safely" in \
        capsys.readouterr().err
    assert not written_by_kinograph(bomb)


def test_a_webp_claiming_ten_billion_pixels_is_named_not_raised(tmp_path):
    """The same for an animated WebP, which io.load_video reads with Pillow, and which the editor's drop
    looks into to choose a loader: Pillow's exception escaped both (a failed node with a Python error name, a
    traceback from the drop)."""
    import struct
    from app.editor.window import loader_for
    from nodes.io.video_read import load_video
    bomb = tmp_path / "bomb.webp"
    vp8x = bytes([0x02, 0, 0, 0]) + (99999).to_bytes(3, "little") * 2            # animated, 100000x100000
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + vp8x + b"ANIM" + struct.pack("<IIH", 6, 0, 0)
    bomb.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(NodeError, match=r"bomb.webp has 10,000,000,000 pixels, more than the 178,956,970 an image "
                                        r"may have to be read safely"):
        load_video(str(bomb))
    assert loader_for(bomb) == "io.load_video"


def test_named_pipes_and_devices_are_refused_not_waited_on(box):
    """A project sent as a tar can hold a named pipe where an output goes (out/still.png), and a workflow can
    read /dev/zero as its LUT or picture: `validate` waited for ever on the pipe (looking for a workflow in the
    file it would replace), and `run` read /dev/zero for ever while fingerprinting it, past Ctrl-C. Both are
    refused now, with the file and line, before anything runs."""
    os.mkfifo(box.work / "still.png")
    os.mkfifo(box.work / "grade.cube")
    wf = box.work / "pipes.yaml"
    wf.write_text("kinograph: 1\nnodes:\n"
                  "  p: {type: generate.test_pattern, params: {frames: 1, width: 16, height: 16}}\n"
                  "  zero: {type: color.lut, inputs: {video: p.video}, params: {path: /dev/zero}}\n"
                  "  pipe: {type: color.lut, inputs: {video: zero.video}, params: {path: grade.cube}}\n"
                  "  save: {type: io.save_frames, inputs: {video: pipe.video}, params: {path: out}}\n"
                  "  still: {type: io.save_image, inputs: {image: p.video}, params: {path: still.png}}\n")
    before = box.snapshot()
    for command in ("validate", "run"):
        rc, out, err, _ = box.kinograph(command, "pipes.yaml", timeout=60)
        assert rc == 2 and "Traceback" not in err, err
        assert f"{wf}:4: node zero: parameter 'path' (/dev/zero) is a device, not a file: reading it waits for " \
               f"ever or never ends; give a file" in err
        assert f"{wf}:5: node pipe: parameter 'path' (grade.cube) is a named pipe (FIFO), not a file" in err
        assert f"{wf}:7: node still: output 'path' cannot be written: {box.work / 'still.png'} is a named pipe " \
               f"(FIFO), not a file; give a file name" in err
    assert box.snapshot() == before


def test_planning_never_opens_a_named_pipe_or_a_device(tmp_path):
    """Fingerprinting for the cache key read a small input's content: a named pipe (size 0) waited for a writer
    and /dev/zero never ended. Only plain files are read; the others are known by their stat."""
    os.mkfifo(tmp_path / "pipe.safetensors")
    code = ("import sys; from graph_engine.cache import fingerprint\n"
            "print([len(fingerprint(p)) for p in sys.argv[1:]])")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "pipe.safetensors"), "/dev/zero"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0 and r.stdout.split() == ["[4,", "4]"], r.stderr


def test_a_cube_lut_of_many_short_lines_is_read_in_little_memory(tmp_path):
    """A .cube of LUT_3D_SIZE 220 with `0 0 0` on each of its 10.6 million lines is 64 MB (the most a .cube may
    be) and a few KB zipped: each line was kept as a tuple of strings, then split into more, and reading it took
    5.3 GB. The lines' text is kept in one buffer now (300 MB for that file); here a 48^3 table, measured."""
    import tracemalloc
    from nodes.common.lut import parse_cube
    n = 48
    path = tmp_path / "look.cube"
    path.write_text(f"LUT_3D_SIZE {n}\n" + "0.5 0.25 1\n" * n ** 3)
    tracemalloc.start()
    try:
        lut = parse_cube(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lut.table.shape == (n, n, n, 3) and np.array_equal(lut.table[7, 3, 5], np.float32([0.5, 0.25, 1]))
    assert peak < 10 * lut.table.nbytes, f"{peak / 2 ** 20:.0f} MB to read a {lut.table.nbytes / 2 ** 20:.1f} MB table"


def _raw_safetensors(path: Path, header: bytes, data: bytes = b"") -> Path:
    import struct
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def test_safetensors_headers_that_lie_are_named_damaged(tmp_path):
    """A 'LoRA' of 200 KB whose header is 100000 nested brackets stopped `kinograph info` with a RecursionError
    traceback, listing no model at all; a header giving a Wan transformer of width 1000000 over 4 bytes of data
    was listed as a model that loads, and its load failed with SafetensorError. Both are damaged files now."""
    import json
    from nodes.generate.detect import read_header
    deep = _raw_safetensors(tmp_path / "deep.safetensors", b"[" * 100000 + b"]" * 100000)
    with pytest.raises(NodeError, match=r"deep.safetensors is not a valid safetensors file \(maximum recursion"):
        read_header(deep)
    wide = _raw_safetensors(tmp_path / "wide.safetensors", json.dumps({
        "head.modulation": {"dtype": "F16", "shape": [1, 6, 1000000], "data_offsets": [0, 2]},
        "patch_embedding.weight": {"dtype": "F16", "shape": [1000000, 16, 1, 2, 2], "data_offsets": [2, 4]}}).encode(),
        b"\0" * 4)
    with pytest.raises(NodeError, match=r"wide.safetensors is not a valid safetensors file \(head.modulation: its "
                                        r"shape \[1, 6, 1000000\] does not fill its 2 bytes\)"):
        read_header(wide)
    ok = _raw_safetensors(tmp_path / "ok.safetensors", json.dumps({
        "w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]}}).encode(), b"\0" * 12)
    assert read_header(ok).shapes == {"w": (2, 3)}
    # metadata that is not a mapping raised AttributeError out of `kinograph info`; a sub-byte type went unchecked,
    # so 10^15 values over 4 bytes counted as weights config_bound held a folder's config.json to
    for name, header, said in [
            ("list_meta", {"__metadata__": [1], "w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}},
             "its __metadata__ is not a mapping of texts"),
            ("fp4", {"w": {"dtype": "F4", "shape": [10 ** 15], "data_offsets": [0, 4]}},
             r"w: its shape \[1000000000000000\] does not fill its 4 bytes"),
            ("float_shape", {"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}},
             r"w: its shape \[1.0\] or offsets are not whole numbers"),
            # entries naming the same bytes made a folder's weights look as large as a config.json wished
            ("overlap", {f"w{i}": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for i in range(3)},
             r"w1: its bytes 0-4 overlap the tensor before \(which ends at 4\)")]:
        path = _raw_safetensors(tmp_path / f"{name}.safetensors", json.dumps(header).encode(), b"\0" * 4)
        with pytest.raises(NodeError, match=rf"{name}.safetensors is not a valid safetensors file \({said}\)"):
            read_header(path)
    fp4 = _raw_safetensors(tmp_path / "fp4_ok.safetensors", json.dumps({
        "w": {"dtype": "F4", "shape": [4, 2], "data_offsets": [0, 4]}}).encode(), b"\0" * 4)
    assert read_header(fp4).shapes == {"w": (4, 2)}


def test_a_frames_pattern_over_folders_is_refused_before_it_walks_them(tmp_path, capsys):
    """io.load_frames' path `/*/*/*/*/*/*/*/*/*.png` walked every folder of the disk, in validate (is it there?),
    in planning (each match's stat) and in the reader: 2.5 million paths and 30 s for six levels, minutes and
    gigabytes for nine. A wildcard goes in the file name."""
    from app.cli import main
    from PIL import Image
    (tmp_path / "shots").mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / "shots" / f"f{i}.png")
    wf = tmp_path / "walk.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  f: {type: io.load_frames, params: {path: '/usr/*/*/*/*.png'}}\n"
                  "  save: {type: io.save_video, inputs: {video: f.video}, params: {path: out/v.mkv, codec: ffv1}}\n")
    for command in ("validate", "run"):
        assert main([command, str(wf)]) == 2
        assert f"{wf}:3: node f: parameter 'path' (/usr/*/*/*/*.png) has a wildcard in a folder's name: a " \
               f"pattern goes in the file name only (shots/*.png)" in capsys.readouterr().err
    wf.write_text(wf.read_text().replace("/usr/*/*/*/*.png", "shots/f*.png"))
    assert main(["run", str(wf)]) == 0
    from nodes.io.video_read import load_video
    assert load_video(str(tmp_path / "out" / "v.mkv")).length == 2


def test_a_checkpoint_whose_records_unpack_far_beyond_its_size_is_refused_before_torch_reads_it(tmp_path):
    """torch.save stores a checkpoint's records uncompressed; torch reads a deflated one too, unpacking it whole
    into memory before anything checks it: a 66 KB embedding .pt holding 64 MB of zeros took 200 MB to inspect
    (`kinograph info` reads every file in the model folders), so a 10 MB one would take 10 GB or more."""
    import zipfile
    from nodes.generate.detect import read_header
    plain = tmp_path / "plain.pt"
    torch.save({"emb": torch.zeros(2 ** 23)}, plain)                    # 32 MB, stored as torch stores it
    bomb = tmp_path / "EasyNegative.pt"
    with zipfile.ZipFile(plain) as z, zipfile.ZipFile(bomb, "w") as out:
        for info in z.infolist():
            out.writestr(info.filename, z.read(info.filename), compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(NodeError, match=r"EasyNegative.pt is refused: its records unpack to 33,554,\d+ bytes from a "
                                        r"file of [\d,]+ \(torch saves them uncompressed\)"):
        read_header(bomb)
    assert read_header(plain).shapes == {"emb": (2 ** 23,)}


def _subgraph_bomb(levels: int, each: int) -> dict:
    """A ComfyUI UI workflow whose subgraph i places subgraph i+1 `each` times, down to one Note: a few KB that
    expand to each^levels nodes."""
    def placed(sub):
        return [{"id": j + 1, "type": sub, "mode": 0, "inputs": [], "outputs": [], "widgets_values": []}
                for j in range(each)]
    subs = [{"id": f"s{i}", "name": f"s{i}", "links": [], "inputs": [], "outputs": [],
             "nodes": placed(f"s{i + 1}") if i < levels else
             [{"id": 1, "type": "Note", "mode": 0, "inputs": [], "outputs": [], "widgets_values": ["x"]}]}
            for i in range(1, levels + 1)]
    return {"last_node_id": each, "last_link_id": 0, "version": 0.4, "nodes": placed("s1"), "links": [],
            "definitions": {"subgraphs": subs}}


def test_a_comfyui_file_whose_subgraphs_multiply_is_refused_before_they_are_expanded(tmp_path):
    """Subgraphs place other subgraphs: a 6 KB .json of fourteen levels, each placing the next four times, expanded
    to 268 million nodes, and `kinograph import` (File > Open, a dropped PNG) filled memory and never returned
    (killed at 60 s under 4 GB). The nodes are counted before anything is inlined."""
    import json
    from app.comfyui import ComfyImportError, import_workflow
    for levels, each, total in ((8, 3, "6,561"), (14, 4, "268,435,456")):
        f = tmp_path / f"bomb{levels}.json"
        f.write_text(json.dumps(_subgraph_bomb(levels, each)))
        with pytest.raises(ComfyImportError) as e:
            import_workflow(f)
        assert str(e.value) == (f"{f}: it has {total} nodes with its subgraphs expanded (each subgraph counts its "
                                f"nodes every time it is placed); a workflow may have at most 5,000: the file is "
                                f"damaged or made to hang the import")


def _chained_instances(count: int) -> dict:
    """A ComfyUI UI workflow placing one subgraph (a StringConcatenate adding 'x') `count` times in a chain, the
    last feeding a prompt: within the node limit, and each instance has links of its own."""
    concat = {"id": 1, "type": "StringConcatenate", "mode": 0, "widgets_values": ["", "x", ""],
              "inputs": [{"name": "string_a", "type": "STRING", "link": 1, "widget": {"name": "string_a"}}],
              "outputs": [{"name": "STRING", "type": "STRING", "links": [2]}]}
    sub = {"id": "add_x", "name": "add x", "nodes": [concat], "widgets": [],
           "inputs": [{"id": "i", "name": "string_a", "type": "STRING", "linkIds": [1]}],
           "outputs": [{"id": "o", "name": "STRING", "type": "STRING", "linkIds": [2]}],
           "links": [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "STRING"},
                     {"id": 2, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "STRING"}]}
    nodes = [{"id": i, "type": "add_x", "mode": 0, "widgets_values": [],
              "inputs": [{"name": "string_a", "type": "STRING", "link": i - 1 if i > 1 else None}],
              "outputs": [{"name": "STRING", "type": "STRING", "links": [i]}]} for i in range(1, count + 1)]
    nodes.append({"id": count + 1, "type": "CLIPTextEncode", "mode": 0, "widgets_values": [""], "outputs": [],
                  "inputs": [{"name": "clip", "type": "CLIP", "link": None},
                             {"name": "text", "type": "STRING", "link": count, "widget": {"name": "text"}}]})
    links = [[i, i, 0, i + 1, 0, "STRING"] for i in range(1, count + 1)]
    return {"nodes": nodes, "links": links, "definitions": {"subgraphs": [sub]}}


def test_a_comfyui_file_placing_a_subgraph_thousands_of_times_reads_its_links_once_a_pass(monkeypatch):
    """4,900 chained instances of a one-node subgraph (under the 5,000-node limit) hung the import: each inlined
    instance read every link of the file again, and built the set of its own links once per link, 400 of them took
    20 s. Now a pass reads the file's links once, and each instance its subgraph's two: the link rows read grow as
    the instances do, not as their square; the chain still builds the prompt ComfyUI builds."""
    from app.comfyui import flatten, import_data
    read = []
    real = flatten._links
    monkeypatch.setattr(flatten, "_links", lambda raw: read.append(len(raw or [])) or real(raw))
    rows = {}
    for count in (150, 300):
        read.clear()
        res = import_data(_chained_instances(count))
        prompt, = [n for n in res.graph.nodes.values() if n.type == "encode.text"]
        assert prompt.params["text"] == "x" * count
        rows[count] = sum(read)
    # read again per instance, 300 instances read 92,400 rows, about four times what 150 read
    assert rows[300] <= 2.2 * rows[150], rows


def test_a_gguf_whose_metadata_lies_about_a_tensors_shape_is_named_damaged(tmp_path):
    """ComfyUI-GGUF keeps a flattened tensor's true shape as metadata (comfy.gguf.orig_shape.NAME), which was taken as
    it stood: a file holding 16 values for patch_embedding.weight, stated as 1,000,000 x 16 x 1 x 2 x 2, was read as
    a tensor of 64 million. The shape must hold as many values as the file stores."""
    import gguf
    from nodes.generate.detect import read_header
    path = tmp_path / "wan2.1-Q8_0.gguf"
    w = gguf.GGUFWriter(str(path), "wan")
    w.add_array("comfy.gguf.orig_shape.patch_embedding.weight", [1000000, 16, 1, 2, 2])
    w.add_tensor("patch_embedding.weight", np.zeros((4, 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(NodeError) as e:
        read_header(path)
    assert str(e.value) == (f"{path} is not a valid GGUF file: its metadata gives tensor patch_embedding.weight the "
                            f"shape (1000000, 16, 1, 2, 2), but the file holds 16 values for it (4, 4). It is corrupt "
                            f"or made to mislead; copy the file again from where it was published.")
    # a key written twice: the gguf package's KeyError ('Duplicate ... already in list') was a traceback out of
    # `kinograph info` and every loader
    import struct
    twice = tmp_path / "twice-Q8_0.gguf"
    entry = struct.pack("<Q", 1) + b"a" + struct.pack("<II", 4, 7)      # key "a", a uint32 of 7
    twice.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + entry * 2)
    with pytest.raises(NodeError, match=r"twice-Q8_0.gguf is not a readable GGUF file \('Duplicate a already in list"):
        read_header(twice)


def test_a_comfyui_api_prompt_of_more_nodes_than_any_workflow_is_refused_before_it_is_read(tmp_path):
    """The API format has no subgraphs, but a 1.3 MB prompt of 20,000 nodes did not import in 120 s: finding each
    node's readers asked every other node (the square of their number; a chain dropped a link a pass, the cube). The
    readers are now indexed (20,000 nodes: 6 s), and a prompt over the same 5,000 nodes is refused before it is read."""
    import json
    from app.comfyui import ComfyImportError, import_workflow
    f = tmp_path / "prompt.json"
    f.write_text(json.dumps({str(i): {"class_type": "PrimitiveInt", "inputs": {"value": i}} for i in range(5001)}))
    with pytest.raises(ComfyImportError) as e:
        import_workflow(f)
    assert str(e.value) == f"{f}: it has 5,001 nodes; a workflow may have at most 5,000: the file is damaged or made " \
                           f"to hang the import"


def test_a_diffusers_folder_whose_weights_unpack_far_beyond_their_size_names_that_file(tmp_path):
    """A model folder from someone else holding diffusion_pytorch_model.bin re-zipped deflated (1 MB unpacking to
    1 GB): diffusers could not map it and the load said 'a file is missing from the folder ... copy the complete
    model', sending the user to fetch files that are there. The file is named with the check every torch file
    Kinograph reads itself goes through."""
    import shutil
    import zipfile
    from nodes.generate.offline import local_only
    from nodes.mini.model import load_mini
    folder = tmp_path / "mini"
    # The transformer's weights come as the bomb only.
    shutil.copytree(ROOT / "resources" / "models" / "kinograph-mini", folder,
                    ignore=lambda d, names: ["diffusion_pytorch_model.safetensors"] if Path(d).name == "transformer"
                    else [])
    plain, bomb = tmp_path / "plain.bin", folder / "transformer" / "diffusion_pytorch_model.bin"
    torch.save({"w": torch.zeros(2 ** 23)}, plain)
    with zipfile.ZipFile(plain) as z, zipfile.ZipFile(bomb, "w") as out:
        for info in z.infolist():
            out.writestr(info.filename, z.read(info.filename), compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(NodeError) as e:
        with local_only("kinograph-mini model", str(folder)):
            load_mini(folder)
    assert str(e.value).startswith(f"{bomb} is refused: its records unpack to 33,554,")


@pytest.mark.parametrize("part,claim,built", [("text_encoder", {"layers": 40}, "tensors"),
                                              ("transformer", {"cond_dim": 1 << 14}, "values")])
def test_a_model_folder_whose_config_claims_a_far_larger_model_is_refused_before_it_is_built(tmp_path, part, claim,
                                                                                              built):
    """diffusers and transformers build a model from its config.json before reading a weight: a received folder
    claiming a million layers hung the load, and a head size of a billion asked for 42.7 GB at once (a rotary
    table, real memory). Every from_pretrained first builds the config on the meta device against what the weight
    files' headers hold, and stops at four times that: here after a few hundred tensors, or at the first matrix."""
    import json
    import shutil
    from nodes.generate.offline import local_only
    from nodes.mini.model import load_mini
    folder = tmp_path / "mini"
    shutil.copytree(ROOT / "resources" / "models" / "kinograph-mini", folder)
    config = folder / part / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text(encoding="utf-8")), **claim}), encoding="utf-8")
    with pytest.raises(NodeError) as e:
        with local_only("kinograph-mini model", str(folder)):
            load_mini(folder)
    message = str(e.value)
    assert message.startswith(f"{config} describes a model far larger than diffusion_pytorch_model.safetensors (")
    assert "Kinograph builds at most 4 times what the weights hold" in message
    held, passed = (int(n.replace(",", "")) for n in __import__("re").findall(rf"([\d,]+) {built}", message)[:2])
    assert 4 * held < passed


def test_a_named_pipe_among_the_model_files_is_refused_not_waited_on(box):
    """A received models folder can hold a named pipe where a weights file goes: `run` waited for ever reading its
    header (validate had said ok; the file is found by name only when the node runs), past Ctrl-C and SIGTERM, and
    diffusers waited the same for one inside a model folder. Each is named, and the run ends."""
    import shutil
    models = box.home / ".local" / "share" / "kinograph" / "models"
    (models / "checkpoints").mkdir(parents=True)
    os.mkfifo(models / "checkpoints" / "received.safetensors")
    mini = models / "diffusion_models" / "mini"
    shutil.copytree(ROOT / "resources" / "models" / "kinograph-mini", mini,
                    ignore=lambda d, names: ["diffusion_pytorch_model.safetensors"] if Path(d).name == "text_encoder"
                    else [])
    os.mkfifo(mini / "text_encoder" / "diffusion_pytorch_model.safetensors")
    (box.work / "pipes.yaml").write_text("kinograph: 1\nnodes:\n"
                                         "  file: {type: load.model, params: {path: received.safetensors}}\n"
                                         "  folder: {type: load.mini, params: {path: mini}}\n")
    rc, out, err, _ = box.kinograph("run", "pipes.yaml", timeout=120)
    assert rc == 2 and "Traceback" not in err and "nothing ran" in err, err      # named before any node runs
    for name in (models / "checkpoints" / "received.safetensors",
                 mini / "text_encoder" / "diffusion_pytorch_model.safetensors"):
        assert f"{name} is a named pipe (FIFO), not a model file: reading it waits for ever" in err, err


def test_a_latent_larger_than_the_free_memory_is_refused_before_it_is_made(monkeypatch):
    """Each widget of a received workflow can be in range (latent.empty: 100,000 frames, 8192x8192) while the latent
    they make is not; one under RAM + swap was allocated lazily and thrashed the machine when sampled. It is measured
    against the memory free first (here a machine with 2 GB free, and kinograph-mini's 3-channel latent)."""
    from types import SimpleNamespace
    import nodes.common.stream
    from nodes.generate.vae_ops import empty_latent
    free = [2 * 10 ** 9]
    monkeypatch.setattr(nodes.common.stream, "free_memory", lambda: free[0])
    vae = SimpleNamespace(family="mini", pipe=None)
    assert tuple(empty_latent(vae, 16, 32, 32, 8.0).samples.shape) == (1, 3, 16, 32, 32)
    with pytest.raises(NodeError) as e:
        empty_latent(vae, 16, 4096, 4096, 8.0)                                       # 3 x 16 x 4096^2 floats
    assert str(e.value) == "a latent of 16 frames at 4096x4096 takes 3.2 GB, more than the 2.0 GB this machine has " \
                           "free: lower frames, width or height"
    free[0] = 5 * 10 ** 8
    # Wan Animate and VACE lay their videos out as pictures first (frames x height x width x 3), twelve times a latent.
    from nodes.generate.vace import vace_condition
    from nodes.generate.wan_animate import animate_condition
    wan = SimpleNamespace(family="wan", pipe=SimpleNamespace(vae_scale_factor_temporal=4, vae_scale_factor_spatial=8,
                                                             vae=SimpleNamespace(config=SimpleNamespace(z_dim=16))))
    for make, name in ((lambda: animate_condition(wan, None, None, 4096, 2048, 13, pose=object(), face=object()),
                        "Wan Animate's"), (lambda: vace_condition(wan, None, None, 4096, 2048, 13), "VACE's")):
        with pytest.raises(NodeError) as e:
            make()
        assert str(e.value) == f"{name} 13 frames at 4096x2048 as pictures takes 1.3 GB, more than the 500 MB this " \
                               "machine has free: lower frames, width or height"
    # Wan image-to-video and Fun Control lay the latent's frames out as pictures too (the latent itself fitted).
    from nodes.generate.image_cond import condition_fun_control, condition_frames
    from nodes.generate.latent import Latent
    latent = Latent(torch.zeros(1, 16, 4, 1, 1), "wan", 13, 16.0, 4096, 2048)
    control = SimpleNamespace(length=100, frames=lambda a, b: pytest.fail("control frames pulled before the check"))
    wan_i2v = SimpleNamespace(family="wan", pipe=SimpleNamespace(transformer=None))
    for make, name in ((lambda: condition_frames(wan_i2v, None, None, latent, np.zeros((8, 8, 3), np.uint8), None,
                                                 None), "Wan image-to-video's 13 frames"),
                       (lambda: condition_fun_control(wan_i2v, None, None, latent, control, None, None),
                        "Fun Control's 13 control frames")):
        with pytest.raises(NodeError) as e:
            make()
        assert str(e.value) == f"{name} at 4096x2048 as pictures takes 1.3 GB, more than the 500 MB this " \
                               "machine has free: lower frames, width or height"


def test_a_picture_size_no_model_takes_is_refused_before_a_picture_is_resized(tmp_path):
    """A model folder's preprocessor_config.json says what size every picture is resized to, and nothing ties it to
    the weights: size 60000 x 60000 on a tiny Depth Anything or SAM 2 folder resized each 64 px frame to 43 GB and
    reported "out of memory ... lower the frames, width or height". Each is refused by name when read, through
    transformers' image processors (depth.estimate, pipelines) and mask.segment's own reading alike."""
    import json
    from transformers import AutoImageProcessor
    from nodes.generate import processor_bound
    from nodes.generate.qwen_edit import IMAGE_PROCESSOR
    from nodes.mask.segment import _preprocessing
    processor_bound.install()
    dpt = {"image_processor_type": "DPTImageProcessor", "size": {"height": 60000, "width": 60000},
           "keep_aspect_ratio": True, "ensure_multiple_of": 14}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(dpt))
    with pytest.raises(NodeError, match=rf"{tmp_path}/preprocessor_config.json asks for pictures of 60,000 pixels a "
                                        r"side \(size.height\); models take at most 8,192\. The file is damaged"):
        AutoImageProcessor.from_pretrained(str(tmp_path), local_files_only=True)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(dict(dpt, size={"height": 518, "width": 518})))
    assert AutoImageProcessor.from_pretrained(str(tmp_path), local_files_only=True).size["height"] == 518
    # a size under another name: DPT pads each picture up to a multiple of size_divisor
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(dict(dpt, size={"height": 518, "width": 518},
                                                                       do_pad=True, size_divisor=60000)))
    with pytest.raises(NodeError, match=r"preprocessor_config.json asks for pictures of 60,000 pixels a side "
                                        r"\(size_divisor\)"):
        AutoImageProcessor.from_pretrained(str(tmp_path), local_files_only=True)
    processor_bound.check(IMAGE_PROCESSOR, "qwen")      # Qwen2-VL's sizes are pixel counts (12,845,056)
    for k, (processor, config, needle) in enumerate([
            ({"image_processor": {"size": {"height": 60000}}}, {}, "processor_config.json asks for pictures of 60,000"),
            ({"size": {"height": 64}, "image_mean": "red"}, {}, "gives image_mean as 'red', not one number or three"),
            ({"size": [1, 2, 3]}, {}, "gives size as '[1, 2, 3]', not a size in pixels"),
            (None, {"image_size": 60000}, "config.json asks for pictures of 60,000 pixels a side")]):
        sam = tmp_path / f"sam{k}"          # a folder of its own: nothing of the case before is left in it
        sam.mkdir()
        if processor is not None:
            (sam / "processor_config.json").write_text(json.dumps(processor))
        with pytest.raises(NodeError, match=re.escape(needle)):
            _preprocessing(sam, config, [0.5] * 3, [0.5] * 3)
    (sam / "processor_config.json").write_text(json.dumps({"size": {"height": 64}, "image_mean": 0.5}))
    assert _preprocessing(sam, {}, [0.1] * 3, [0.2] * 3) == (64, [0.5] * 3, [0.2] * 3)


def test_a_pickled_tensor_repeating_a_few_values_across_a_huge_shape_is_refused_when_read(tmp_path):
    """A tensor with stride 0 repeats one stored value across any shape: a 2 KB .pth held a 40,000 x 40,000 fp16
    tensor, which the first dtype conversion (the annotators', IP-Adapters', LoRAs' readers) made 6.4 GB."""
    from nodes.generate.detect import read_header, torch_load
    bomb = tmp_path / "sk_model.pth"
    torch.save({"model0.1.weight": torch.zeros(2, 3, 7, 7, dtype=torch.float16),
                "junk": torch.zeros(1, dtype=torch.float16).expand(4000, 4000)}, bomb)
    assert bomb.stat().st_size < 4000
    for read in (torch_load, read_header):
        with pytest.raises(NodeError, match=r"sk_model.pth is refused: its tensors claim 32,000,588 bytes from a "
                                            r"file of [\d,]+ \(junk repeats a few stored values across the shape "
                                            r"\[4000, 4000\]\)"):
            read(bomb)
    # a view as real checkpoints hold one (CLIP's position ids, expanded from one row) is read as it was
    fine = tmp_path / "ids.pth"
    torch.save({"position_ids": torch.arange(77).expand(1, -1)}, fine)
    assert torch_load(fine)["position_ids"].shape == (1, 77)


def test_a_network_sized_from_its_files_shapes_is_refused_before_it_is_built(tmp_path):
    """The annotators' networks and spandrel's upscalers take their widths from a weight's shape and their depth
    from key names: an ESRGAN file naming block 200,000 filled 5 GB in 100 s; an HED projection 30,000 wide asked
    for 32 GB; 20 empty model2.N keys in a lineart file made 20 residual blocks 64 wide."""
    from safetensors.torch import save_file
    from nodes.lines.extract import load
    from nodes.upscale.model_sr import load_model
    from nodes.upscale.spandrel_loader import spandrel
    hed = {"norm": torch.zeros(1, 3, 1, 1)}
    for b in range(1, 6):
        hed[f"block{b}.convs.0.weight"] = torch.zeros(1)
        hed[f"block{b}.projection.weight"] = torch.zeros(1, 3000, 1, 1)
    lineart = {"model0.1.weight": torch.zeros(64, 3, 7, 7), **{f"model2.{i}.x": torch.zeros(0) for i in range(20)}}
    for name, state, kind, made in (("ControlNetHED.safetensors", hed, "hed", "HED of 81,0"),
                                    ("sk_model.safetensors", lineart, "lineart", "the line-art generator of 1")):
        save_file(state, str(tmp_path / name))
        with pytest.raises(NodeError, match=rf"{name}: its tensor names and shapes make {made}[\d,]+ values or more, "
                                            r"far more than the file's [\d,]+: the file is damaged or made to fill "
                                            r"memory. Get it again from Hugging Face lllyasviel/Annotators"):
            load(str(tmp_path / name), kind)
    spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN
    esrgan = ESRGAN(in_nc=3, out_nc=3, num_filters=4, num_blocks=1, scale=2).state_dict()
    save_file({k.replace("model.1.sub.1.", "model.1.sub.1000."): v.contiguous() for k, v in esrgan.items()},
              str(tmp_path / "4x_bomb.safetensors"))
    with pytest.raises(NodeError, match=r"4x_bomb.safetensors: its tensor names and shapes make an upscaler of "
                                        r"[\d,]+ values or more, far more than the file's [\d,]+"):
        load_model(str(tmp_path / "4x_bomb.safetensors"))
    # SwinIR's constructor reads its drop-path rates back with .item(), which the meta device cannot give: it is
    # measured on the CPU under the same count, stopped at the budget (300 layers named by empty tensors: 36 s and
    # 840 MB for 2,000 before)
    from spandrel.architectures.SwinIR import SwinIR
    swin = {k: v.contiguous() for k, v in SwinIR(img_size=8, in_chans=3, embed_dim=60, depths=[1], num_heads=[1],
                                                  window_size=2, mlp_ratio=1.0, upscale=2,
                                                  upsampler="pixelshuffle").state_dict().items()}
    save_file({**swin, **{f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table": torch.zeros(0, 1)
                          for i in range(1, 300)}}, str(tmp_path / "swin_bomb.safetensors"))
    with pytest.raises(NodeError, match=r"swin_bomb.safetensors: its tensor names and shapes make an upscaler of "):
        load_model(str(tmp_path / "swin_bomb.safetensors"))




def test_a_model_naming_more_blocks_than_any_published_one_is_refused_before_it_is_built():
    """Converters take a network's depth from its numbered block names, and the network is built (on the meta
    device) before its weights are matched: a file naming 20,000 HunyuanVideo 1.5 blocks by empty tensors (a few
    hundred KB) built for minutes (22 s a thousand) before saying their weights were missing."""
    import torch
    from nodes.generate import converters
    from nodes.generate.detect import Detection
    state = {"patch_embedding.weight": torch.zeros(128, 16, 1, 2, 2), "proj_out.weight": torch.zeros(64, 128),
             "condition_embedder.text_embedder.linear_1.weight": torch.zeros(128, 32),
             "condition_embedder.time_embedder.linear_1.weight": torch.zeros(128, 256),
             "blocks.0.ffn.net.0.proj.weight": torch.zeros(256, 128)}
    state.update({f"blocks.{i}.pad": torch.zeros(0) for i in range(1, 600)})
    with pytest.raises(NodeError, match=r"^wan_bomb.safetensors: its tensor names number 600 blocks of blocks.N; "
                                        r"published models have at most a few hundred \(Kinograph reads at most 512\): "
                                        r"the file is damaged or made to hang the loader"):
        converters.build(Detection("diffusion_model", "wan"), state, None, "wan_bomb.safetensors")

def test_an_upscaler_naming_more_layers_than_any_published_one_is_refused_before_spandrel_scans_it(tmp_path):
    """spandrel's detection scans every key once per layer number it finds: a SwinIR file naming 20,000 layers by
    empty tensors spent minutes there (6,000 layers: 90 s with the build), and a HAT file naming one key at layer
    300,000 spent 5 s in the scan alone."""
    from safetensors.torch import save_file
    from nodes.upscale.model_sr import load_model
    from nodes.upscale.spandrel_loader import spandrel
    spandrel()
    from spandrel.architectures.SwinIR import SwinIR
    swin = {k: v.contiguous() for k, v in SwinIR(img_size=8, in_chans=3, embed_dim=6, depths=[1], num_heads=[1],
                                                  window_size=2, mlp_ratio=1.0, upscale=2,
                                                  upsampler="pixelshuffle").state_dict().items()}
    empty = torch.zeros(0, 1)
    save_file({**swin, **{f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table": empty
                          for i in range(1, 6000)}}, str(tmp_path / "swin_6k.safetensors"))
    with pytest.raises(NodeError, match=r"swin_6k.safetensors holds 6,0\d\d tensors; the largest published "
                                        r"upscalers \(DAT, HAT-L\) hold about 2,100, so Kinograph reads at most 5,000: "
                                        r"the file is damaged or made to stall the loader"):
        load_model(str(tmp_path / "swin_6k.safetensors"))
    torch.save({**swin, "layers.3000000.residual_group.blocks.0.attn.relative_position_bias_table": empty},
               str(tmp_path / "swin_deep.pth"))
    with pytest.raises(NodeError, match=r"swin_deep.pth names layer 3,000,000 \(layers.3000000.residual_group.blocks"
                                        r".0.attn.relative_position_bias_table\); published upscalers number their "
                                        r"layers below a hundred"):
        load_model(str(tmp_path / "swin_deep.pth"))
    # the real layout beside them still loads
    save_file(swin, str(tmp_path / "swin.safetensors"))
    assert load_model(str(tmp_path / "swin.safetensors")).scale == 2

def test_a_mov_whose_sample_table_claims_millions_of_frames_is_refused_before_ffmpeg_indexes_them(tmp_path):
    """A sample table can state one size for every frame, so a 3 KB MOV stated 80,000,000 frames: FFmpeg indexed
    them all as it opened the file (2.9 GB, 27 s), each time Kinograph opened it (reading it, or asking whether an
    output holds Kinograph's workflow)."""
    import struct
    import av
    from graph_engine.embedded import read_embedded_workflow
    from graph_engine.mp4_samples import stated_frames
    from nodes.io.video_read import load_video
    good = tmp_path / "raw.mov"
    with av.open(str(good), "w") as c:
        s = c.add_stream("rawvideo", rate=24)
        s.width, s.height, s.pix_fmt = 16, 16, "rgb24"
        for i in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((16, 16, 3), i, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = bytearray(good.read_bytes())
    for box, at in ((b"stsz", 12), (b"stts", 12), (b"stsc", 16)):      # the count, its one time entry and chunk
        struct.pack_into(">I", data, data.find(box) + at, 1_000_000)
    bomb = tmp_path / "render.mov"
    bomb.write_bytes(bytes(data))
    assert stated_frames(good) == {1: 3} and stated_frames(bomb) == {1: 1_000_000}
    with pytest.raises(NodeError, match=r"render.mov: its video track states 1,000,000 frames in a file of [\d,]+ "
                                        r"bytes, more than a file that size can hold: it is damaged or made to fill "
                                        r"memory as it is opened"):
        load_video(str(bomb))
    assert read_embedded_workflow(bomb) is None
    assert load_video(str(good)).length == 3
