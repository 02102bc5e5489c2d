"""The kinograph command: fast help, node listing, info, cache management."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from graph_engine.cache import DiskCache
from tests.cli_run import cli
from tests.model_stub import stub

ROOT = Path(__file__).resolve().parents[1]
# What a newcomer reads and copies from: the README and the docs/ pages its detail moved to.
GUIDE = ["README.md", "docs/workflows.md", "docs/footage.md", "docs/masks.md", "docs/outputs.md", "docs/editor.md",
         "docs/headless.md", "docs/comfyui.md", "docs/deforum.md", "docs/models.md"]


def _guide() -> str:
    return "\n".join((ROOT / page).read_text() for page in GUIDE)


def test_help_imports_nothing_heavy():
    code = ("import sys; sys.argv=['kinograph','--help'];\nimport app.cli\ntry:\n app.cli.main()\nexcept SystemExit: pass\n"
            "heavy=[m for m in ('numpy','torch','PySide6','cv2','graph_engine','yaml') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr
    assert "run" in r.stdout and "validate" in r.stdout


def test_nodes_listing_formats():
    r = cli("nodes", "--json")
    specs = {s["type"]: s for s in json.loads(r.stdout)}
    load = specs["io.load_video"]
    assert [p["name"] for p in load["params"]] == ["path", "start", "count", "every_nth", "width", "height", "fps",
                                                 "deinterlace", "lut"]
    assert load["outputs"] == [{"name": "video", "type": "VIDEO"}]
    assert "h264" in {c for p in specs["io.save_video"]["params"] if p["name"] == "codec" for c in p["choices"]}
    md = cli("nodes", "--markdown").stdout
    assert "## `io.save_video`" in md and "| `crf` | int | `19` | 0..51 |" in md
    assert "io.save_video" in cli("nodes").stdout
    # The editor's tooltips and this listing are the reference a newcomer has: 26 parameters
    # (latent.empty's frames, width and height, generate.sample's steps and seed...) said nothing.
    bare = [f"{t}.{p['name']}" for t, s in specs.items() for p in s["params"] if not p["help"].strip()]
    assert bare == []


def test_a_run_that_keeps_nothing_says_so_before_it_runs(tmp_path, capsys):
    """An imported ComfyUI depth template (its PreviewImage only shows in the editor) ran, said ok and wrote
    nothing, with nothing said; a graph with a save node hears nothing of it."""
    from app.cli import main
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 2, width: 32, height: 32}}\n")
    assert main(["run", str(wf)]) == 0
    assert "nothing in this workflow saves a file or measures anything" in capsys.readouterr().err
    wf.write_text(wf.read_text() + "  save: {type: io.save_video, inputs: {video: p.video}, params: {path: o.mkv}}\n")
    assert main(["run", str(wf)]) == 0
    assert "nothing in this workflow saves" not in capsys.readouterr().err


def test_info_keeps_a_long_variant_apart_from_its_role(tmp_path, monkeypatch, capsys):
    """A real DA3 file's variant ("DA3 Mono/Metric Large", 21 letters) ran into the role column."""
    import nodes.generate.model_manager as mm
    from app.cli import main
    row = {"family": "depth", "variant": "DA3 Mono/Metric Large", "role": "depth_estimator", "precision": "fp16",
           "loads": "yes", "note": ""}
    monkeypatch.setattr(mm, "list_found_models", lambda: [("file", tmp_path / "d.safetensors", row)])
    assert main(["info"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "d.safetensors" in ln)
    assert [c.strip() for c in line.split("  ") if c.strip()] == ["depth", "DA3 Mono/Metric Large", "depth_estimator",
                                                            "fp16", "yes", str(tmp_path / "d.safetensors")]


def test_nodes_answers_a_comfyui_node_kinograph_does_not_map_with_what_to_use_instead(capsys):
    """`kinograph nodes LeapfusionHunyuanI2VPatcher` (a ComfyUI artist looking for the node of a workflow) said only
    that no node matches; it now gives the import's line on it, which names what to use instead. (It was
    SeedVR2Conditioning, now mapped: condition.seedvr2.)"""
    from app.cli import main
    assert main(["nodes", "LeapfusionHunyuanI2VPatcher"]) == 0
    err = capsys.readouterr().err
    assert "no node type matches 'LeapfusionHunyuanI2VPatcher', a ComfyUI node: not mapped" in err
    assert "condition.hunyuan_i2v" in err
    assert main(["nodes", "NoSuchNodeAnywhere"]) == 0
    assert "a ComfyUI node" not in capsys.readouterr().err


def test_a_nodes_search_that_matches_nothing_says_so_and_is_no_failure(capsys):
    """`kinograph nodes NOMATCH` exited 1, which the command's exit codes give a node that failed, and --json printed
    nothing a program could read: a search that finds nothing is an answer (exit 0), said on stderr with how to
    list every node, and --json's list is empty."""
    from app.cli import main
    assert main(["nodes", "NoSuchNodeAnywhere"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == "kinograph: no node type matches 'NoSuchNodeAnywhere'; `kinograph nodes` lists them all\n"
    assert main(["nodes", "--json", "NoSuchNodeAnywhere"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and "no node type matches 'NoSuchNodeAnywhere'" in err


def test_info_lists_versions_and_folders():
    r = cli("info")
    assert r.returncode == 0, r.stderr
    assert "torch" in r.stdout and "cache" in r.stdout and "devices" in r.stdout


def test_cache_info_clear_and_lru_cap(tmp_path):
    disk = DiskCache(tmp_path / "results", cap_bytes=250_000)
    for i in range(4):
        disk.put(f"{i:02d}" + "k" * 30, {"a": np.zeros(100_000, np.uint8)}, {}, "test.node")
        time.sleep(0.02)
    keys = {e["key"][:2] for e in disk.entries()}
    assert keys == {"02", "03"}            # the two least recently used went first
    env = dict(os.environ, KINOGRAPH_CACHE_DIR=str(tmp_path))
    r = cli("cache", "info", env=env)
    assert "2 results" in r.stdout and "test.node" in r.stdout
    r = cli("cache", "clear", env=env)
    assert "removed 2" in r.stdout and disk.entries() == []


def test_cache_clear_on_a_read_only_cache_says_what_it_could_not_remove(tmp_path):
    """A cache folder on a read-only mount (or another user's): `cache clear` said 'removed 1 cached results',
    exit 0, and the next run was served that same entry."""
    cache = tmp_path / "cache"
    cache.mkdir()
    root = cache / "results"
    if os.geteuid() == 0:          # root removes from any folder whatever its mode: a read-only mount then
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(cache)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
    try:
        disk = DiskCache(root, cap_bytes=1 << 30)
        disk.put("ab" + "0" * 30, {"a": np.zeros(10, np.uint8)}, {}, "test.node")
        size = disk.size()
        if os.geteuid() == 0:
            subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
            why = "Read-only file system"
        else:
            (root / "ab").chmod(0o555)
            why = "Permission denied"
        r = cli("cache", "clear", env=dict(os.environ, KINOGRAPH_CACHE_DIR=str(cache)))
        assert r.returncode == 1 and "removed 0 cached results" in r.stdout
        assert (f"kinograph cache clear: 1 cached result(s) ({size} B) could not be removed from {root} ({why}): a "
                f"read-only or another user's cache folder; clear it as its owner, or point --cache-dir "
                f"(KINOGRAPH_CACHE_DIR) at a folder of your own") in r.stderr
        assert len(disk.entries()) == 1
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(cache)], capture_output=True)
        elif (root / "ab").exists():
            (root / "ab").chmod(0o755)


def test_cache_clear_removes_only_cache_entries(tmp_path):
    """`--cache-dir` may name a project folder whose `results/` holds someone's files: clearing the
    cache removes its entries and unfinished writes, never what Kinograph did not put there."""
    root = tmp_path / "results"
    disk = DiskCache(root, cap_bytes=1 << 30)
    key = "ab" + "0" * 30
    disk.put(key, {"a": np.zeros(10, np.uint8)}, {}, "test.node")
    (root / "tmp" / f"{'cd' + '1' * 30}.x7q").mkdir(parents=True)          # a write cut short by a kill
    (root / "final_grade.mov").write_bytes(b"precious")
    (root / "ab" / "notes").mkdir()
    (root / "ab" / "notes" / "todo.txt").write_text("keep")
    env = dict(os.environ, KINOGRAPH_CACHE_DIR=str(tmp_path))
    r = cli("cache", "clear", env=env)
    assert r.returncode == 0, r.stderr
    assert "removed 1 cached results" in r.stdout
    assert (root / "final_grade.mov").read_bytes() == b"precious"
    assert (root / "ab" / "notes" / "todo.txt").read_text() == "keep"
    assert not (root / "ab" / key).exists() and not (root / "tmp").exists()
    assert "final_grade.mov" in r.stdout and "not Kinograph's" in r.stdout


def test_a_node_parked_half_wired_does_not_stop_run_or_validate(tmp_path):
    """`kinograph run` refused a workflow with a node left unconnected beside the render (exit 2);
    it renders what the save needs and names the node it left out."""
    wf = tmp_path / "parked.yaml"
    wf.write_text("kinograph: 1\nnodes:\n"
                  "  pattern: {type: generate.test_pattern, params: {frames: 3, width: 32, height: 24}}\n"
                  "  save: {type: io.save_video, inputs: {video: pattern.video}, params: {path: out.mp4}}\n"
                  "  parked: {type: video.resize}\n")
    note = ("not run: parked (a required input is not connected or a required file is not named, and no save or "
            "metrics node needs it)")
    r = cli("validate", str(wf))
    assert r.returncode == 0 and note in r.stdout, r.stdout + r.stderr
    r = cli("run", str(wf), "--no-cache")
    assert r.returncode == 0 and note in r.stdout + r.stderr, r.stdout + r.stderr
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_a_reader_that_stops_reading_does_not_stop_the_render(tmp_path):
    """`kinograph run --json | head -1` (or a log reader that dies) broke stdout: the render stopped at its
    next event, wrote nothing, and the command exited 0 as if it had. The render now finishes; only the
    printing stops, and the exit code is the render's."""
    from nodes.io.video_read import load_video
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 40, width: 32, height: 32}}\n"
                  "  save: {type: io.save_video, inputs: {video: p.video}, params: {path: out.mkv, codec: ffv1}}\n")
    sweep = tmp_path / "s.yaml"
    sweep.write_text("cases: [{p.frames: 40}, {p.frames: 30}]\n")
    outs = {"run": ["out.mkv"], "batch": ["out_1.mkv", "out_2.mkv"]}
    # The last two send stderr into the same pipe, as `2>&1 | head -1` does: progress notes broke it the same way.
    for command, err_to in ((["run", str(wf), "--json"], subprocess.PIPE), (["run", str(wf)], subprocess.PIPE),
                            (["batch", str(wf), "--sweep", str(sweep), "--json"], subprocess.PIPE),
                            (["run", str(wf)], subprocess.STDOUT), (["batch", str(wf), "--sweep", str(sweep)],
                                                                    subprocess.STDOUT)):
        for name in outs[command[0]]:     # what the loop's previous command wrote into this test's tmp_path
            (tmp_path / name).unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", *command], stdout=subprocess.PIPE,
                                stderr=err_to, text=True, cwd=ROOT)
        if "--json" in command or err_to == subprocess.STDOUT:
            assert proc.stdout.readline()
        proc.stdout.close()                # as `head -1` does
        err = proc.stderr.read() if proc.stderr else ""
        assert proc.wait(timeout=120) == 0, err
        assert [load_video(str(tmp_path / name)).length for name in outs[command[0]]] == [40, 30][:len(outs[command[0]])]


def test_a_relative_set_path_run_from_elsewhere_says_where_it_points(tmp_path, monkeypatch, capsys):
    """--set paths are taken from the workflow's folder, like the paths in it; run from a shot folder with
    a template workflow elsewhere, a relative output silently landed beside the template. The command
    now says where such a path points; from the workflow's own folder it says nothing."""
    from app.cli import main
    (tmp_path / "templates").mkdir()
    wf = tmp_path / "templates" / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 2, width: 32, height: 32}}\n"
                  "  save: {type: io.save_video, inputs: {video: p.video}, params: {path: out.mkv, codec: ffv1}}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(wf), "--set", "save.path=shot.mkv", "--set", "p.frames=3"]) == 0
    err = capsys.readouterr().err
    assert (f"--set save.path=shot.mkv is taken from the workflow's folder, not from here: "
            f"{tmp_path / 'templates' / 'shot.mkv'}") in err and "p.frames" not in err
    assert (tmp_path / "templates" / "shot.mkv").is_file()
    monkeypatch.chdir(tmp_path / "templates")
    assert main(["run", "wf.yaml", "--set", "save.path=again.mkv"]) == 0
    assert "taken from the workflow's folder" not in capsys.readouterr().err


def test_validate_names_missing_footage_before_a_run(tmp_path):
    """`kinograph validate` said ok about a workflow whose footage was not there (only model files were
    checked), and the run then failed at the loader; it now names the file, where it looked and a
    close name beside it. A pattern that matches files, and footage that is there, pass."""
    folder = tmp_path / "my films" / "café"
    (folder / "shots").mkdir(parents=True)
    (folder / "clip ñ.png").write_bytes(b"")
    (folder / "shots" / "a.png").write_bytes(b"")
    wf = folder / "flow.yaml"
    body = ("kinograph: 1\nnodes:\n"
            "  load: {type: io.load_image, params: {path: %s}}\n"
            "  frames: {type: io.load_frames, params: {path: shots/*.png}}\n"
            "  save: {type: io.save_image, inputs: {image: load.image}, params: {path: out.png}}\n")
    wf.write_text(body % '"clip n.png"', encoding="utf-8")
    r = cli("validate", str(wf))
    assert r.returncode == 2, r.stdout + r.stderr
    assert (f"flow.yaml:3: node load: path: 'clip n.png' is not there ({folder / 'clip n.png'}) "
            "(did you mean 'clip ñ.png'?)") in r.stderr, r.stderr
    assert "frames" not in r.stderr
    wf.write_text(body % '"clip ñ.png"', encoding="utf-8")
    r = cli("validate", str(wf))
    assert r.returncode == 0, r.stdout + r.stderr


def test_nodes_finds_one_node_with_its_whole_help():
    """`kinograph nodes generate.sample` was refused ('unrecognized arguments'): the only way to read
    one node's reference was to search 700 lines, which gave its first line of help only."""
    r = cli("nodes", "generate.sample")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("generate.sample  [Sampling]")
    assert "Two samplers can share one schedule" in r.stdout and "param seed (int" in r.stdout
    assert "io.save_video" not in r.stdout
    assert [s["type"] for s in json.loads(cli("nodes", "--json", "save", "video").stdout)] == ["io.save_video"]
    # What an input is for was in the editor's tooltip only.
    assert "in  start_image: IMAGE (optional): Wan 2.2 TI2V-5B: the video's first frame" in \
        cli("nodes", "latent.empty").stdout
    assert "`start_image` (IMAGE, optional: Wan 2.2 TI2V-5B:" in cli("nodes", "--markdown").stdout
    # A summary is the help's first paragraph: its first line cut 14 nodes mid-sentence.
    assert cli("nodes", "load.mini").stdout.splitlines()[0].endswith("sizes divisible by 16); runs on any CPU.")
    r = cli("nodes", "smaple")
    assert r.returncode == 0 and "no node type matches 'smaple' (did you mean 'sample'?)" in r.stderr


def test_nodes_finds_what_someone_from_comfyui_types(capsys):
    """`kinograph nodes KSampler` (or CLIPTextEncode, or 'slow motion') said 'no node type matches', though the
    editor's search finds all three; two node types named were searched as one name and matched nothing."""
    from app.cli import main

    def found(*words):
        assert main(["nodes", *words]) == 0
        return [line.split()[0] for line in capsys.readouterr().out.splitlines() if line and line[0] != " "]
    assert found("KSampler") == ["generate.sample"] and found("CLIPTextEncode") == ["encode.text"]
    slow = found("slow", "motion")
    assert "interpolate.rife" in slow and {t.split(".")[0] for t in slow} == {"interpolate"}
    assert found("load.vae", "load.text_encoder") == ["load.vae", "load.text_encoder"]


def test_the_readme_sets_parameters_its_example_workflows_have():
    """The README's headless example and its Python one set `pattern.frames` on examples/default.yaml,
    which has no node `pattern`: a newcomer's second command failed. Every --set and wf.set the README
    (and the docs/ pages its detail moved to: the Python one is in docs/headless.md) shows on an example
    workflow is applied here to that workflow."""
    import re
    import shlex
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    from graph_engine.validate import apply_overrides
    readme = _guide()
    # The examples' own descriptions say how to run them too ("Try: kinograph run ...").
    texts = [readme] + [f.read_text() for f in sorted((ROOT / "examples").rglob("*.yaml"))]
    checked = 0
    for m in re.finditer(r"kinograph (?:run|validate|batch) (examples/\S+\.ya?ml)([^\n#]*)", "\n".join(texts)):
        args = shlex.split(m.group(2))
        sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
        wf = load_workflow(ROOT / m.group(1))
        assert apply_overrides(wf, sets, default_registry()) == [], m.group(0)
        checked += len(sets)
    for m in re.finditer(r'load_workflow\("(examples/[^"]+)"\)\n((?:wf\.set\(.*\)\n)+)', readme):
        wf = load_workflow(ROOT / m.group(1))
        for target, value in re.findall(r'wf\.set\("([^"]+)", ([^)]+)\)', m.group(2)):
            wf.set(target, json.loads(value))
            checked += 1
    assert checked >= 5


def test_every_file_a_readme_command_names_in_examples_is_there_and_its_sweep_plans():
    """README's Ray section ran `kinograph batch shot.yaml --sweep seeds.yaml`, files a newcomer does not have:
    the command they copied failed. Every examples/ file a README command names exists, and each --sweep file
    plans its jobs on its workflow, one output per case (the README and the docs/ pages its detail moved to)."""
    import re
    import shlex
    from app.sweep import load_sweep, plan_jobs
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    readme = _guide()
    commands = [shlex.split(m.group(1)) for m in re.finditer(r"^kinograph ([^#\n]+)", readme, re.M)]
    named = {a for args in commands for a in args if a.startswith("examples/") and "/out/" not in a}
    assert sorted(a for a in named if not (ROOT / a).is_file()) == []
    sweeps = {(args[1], args[args.index("--sweep") + 1]) for args in commands if "--sweep" in args}
    assert sweeps == {("examples/mini_text_to_video.yaml", "examples/seeds.yaml")}
    for workflow, sweep_file in sweeps:
        wf = load_workflow(ROOT / workflow)
        sweep = load_sweep(ROOT / sweep_file, wf, default_registry())
        jobs, _ = plan_jobs(wf, sweep, sweep.cases, default_registry())
        assert len({o for j in jobs for o in j.outputs}) == len(jobs) == 6


def test_the_readme_commands_parse_and_the_node_types_it_names_exist():
    """Seven people change nodes and the README at once: a renamed node or option left the README naming one
    that is gone, and only a newcomer copying it found out. Every `kinograph` command line in its code blocks
    is read by the command's own parser, and every node type it names (`load.mini`) is registered; so are the
    docs/ pages the README's detail moved to."""
    import re
    import shlex
    from app.cli import _parser
    from graph_engine.registry import default_registry
    readme = _guide()
    lines = [m.group(1) for m in re.finditer(r"^kinograph ([^#\n]+)", readme, re.M)]
    assert len(lines) >= 15
    for line in lines:
        args = _parser().parse_args(shlex.split(line.replace("cache info | clear", "cache info")))
        assert args.command, line
    registry = default_registry()
    categories = {t.split(".")[0] for t in registry}
    named = {t for t in re.findall(r"`([a-z0-9_]+\.[a-z0-9_]+)`", readme) if t.split(".")[0] in categories}
    assert len(named) > 50
    assert sorted(t for t in named if t not in registry) == []


def test_the_readme_names_the_model_folders_searched_and_where_the_tiny_examples_look():
    """README's 'Where models go' left out rife/ (and ComfyUI's frame_interpolation/) and depthanything/, which
    Kinograph searches; and examples/tiny/ pointed at ../../models/FAMILY with nothing saying how to fill it. Every
    folder the code searches is named there, and the command the README gives for the tiny models writes
    the folders the tiny examples read."""
    import re
    import yaml
    from nodes.common.models_dirs import ALIASES, KINDS
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import FAMILIES
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Where models go"):readme.index("```", readme.index("## Where models go"))]
    named = set(re.findall(r"`([A-Za-z0-9_/]+)/`", section))
    searched = set(KINDS) | {alias for aliases in ALIASES.values() for alias in aliases}
    assert searched - named == set()
    built = re.search(r"tests/tiny_models\.py (\S+)`", readme).group(1)
    for example in sorted((ROOT / "examples" / "tiny").glob("*.yaml")):
        load = yaml.safe_load(example.read_text())["nodes"]["load"]["params"]["path"]
        if load:            # empty: the bundled kinograph-mini
            where = (example.parent / load).resolve()
            assert where.parent == (ROOT / built).resolve() and where.name in FAMILIES, example


def test_ray_options_without_ray_say_how_to_add_it_and_run_nothing(tmp_path, monkeypatch, capsys):
    """Ray is an optional extra, and nothing tested a Kinograph without it. `--ray` there stops before anything
    runs, saying how to add it; its `pip install kinograph[ray]` was unquoted, which zsh (macOS's shell) reads as
    a file pattern: 'no matches found'. Without --ray the same workflow and sweep run here."""
    from app.cli import main
    monkeypatch.setitem(sys.modules, "ray", None)       # `import ray` fails, as where it is not installed
    wf = tmp_path / "shot.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  pattern: {type: generate.test_pattern, params: {frames: 3, width: 32, "
                  "height: 24}}\n  save: {type: io.save_video, inputs: {video: pattern.video}, "
                  "params: {path: 'out/{case}.mp4'}}\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("grid:\n  pattern.frames: [2, 3]\n")
    for argv in (["run", str(wf), "--ray", "local"], ["run", str(wf), "--ray", "local", "--shards", "2"],
                 ["batch", str(wf), "--sweep", str(sweep), "--ray", "local"]):
        code = main(argv)
        err = capsys.readouterr().err
        # exit 2 as for an address that leads to no cluster: nothing ran (1 says some jobs failed, others wrote)
        assert code == 2 and 'Ray is not installed: `pip install "kinograph[ray]"` adds it' in err, (argv, err)
        assert "Traceback" not in err and not (tmp_path / "out").exists()
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.mp4", "2.mp4"]


def test_a_refusal_answered_in_json_to_a_reader_that_stopped_is_no_traceback(tmp_path, monkeypatch, capsys):
    """`kinograph validate wf.yaml --json | head -c 600` on a workflow whose models are missing ended in a Python
    traceback (BrokenPipeError from the JSON answer, written while the refusal was being handled). The refusal
    keeps its exit code, and its lines still reach stderr."""
    import io
    from app.cli import main

    class Stopped(io.StringIO):             # a pipe whose reader has gone
        def __init__(self, fd):
            super().__init__()
            self.fd = fd

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return self.fd

    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    fd = os.open(tmp_path / "stdout", os.O_WRONLY | os.O_CREAT)
    try:
        monkeypatch.setattr(sys, "stdout", Stopped(fd))
        assert main(["validate", str(ROOT / "examples" / "wan_comfyui_files.yaml"), "--json"]) == 2
    finally:
        os.close(fd)
    assert "'wan_2.1_vae.safetensors' is not in the model folders" in capsys.readouterr().err


def test_every_command_line_argument_has_help():
    """`kinograph batch --help` listed workflow, --sweep, --json and --cache-dir with no word on what they
    take; every argument of every command now says."""
    import argparse
    from app.cli import _parser
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    bare = [f"{name} {a.dest}" for name, p in sub.choices.items() for a in p._actions
            if not isinstance(a, argparse._HelpAction) and not a.help]
    assert bare == []


def test_sampling_work_in_progress_is_listed_pruned_and_cleared(tmp_path):
    """What stopped sampling runs leave (graph_engine.partial) is bounded: the few most recent stay, one a live
    run holds is never taken, `kinograph cache` shows them and `cache clear` removes them."""
    from graph_engine.atomic import hold
    from graph_engine.partial import Partials
    root = tmp_path / "partial"
    keys = [f"{i:02d}" + "k" * 30 for i in range(5)]
    for i, key in enumerate(keys):
        (root / key).mkdir(parents=True)
        (root / key / "00000.pt").write_bytes(b"x" * 1000)
        os.utime(root / key, (1000 + i, 1000 + i))
    (root / "my notes").mkdir()
    other = hold(root / keys[0])                  # another live run works on the oldest
    try:
        live = Partials(root)
        assert live.folder("new" + "k" * 30) == root / ("new" + "k" * 30)
        # The newest three stay (the new one, 04 and 03), and 00 which a live run holds; 01 and 02 go.
        assert sorted(p.name[:3] for p in root.iterdir()) == ["00k", "03k", "04k", "my ", "new"]
        assert Partials(root).clear() == 2000         # neither held one, nor the user's folder
        assert sorted(p.name[:3] for p in root.iterdir()) == ["00k", "my ", "new"]
        live.release_all()          # the new one holds nothing: it goes
        assert sorted(p.name[:3] for p in root.iterdir()) == ["00k", "my "]
    finally:
        os.close(other)
    env = dict(os.environ, KINOGRAPH_CACHE_DIR=str(tmp_path))
    r = cli("cache", "info", env=env)
    assert f"{root}: 1 sampling run(s) that stopped, 1000 B" in r.stdout, r.stdout
    r = cli("cache", "clear", env=env)
    assert f"removed 1000 B of sampling work in progress that stopped runs left in {root}" in r.stdout, r.stdout
    assert [p.name for p in root.iterdir()] == ["my notes"]


def test_a_loader_with_no_file_named_is_refused_by_validate_or_left_out(tmp_path):
    """io.load_video with an empty path passed validate; the run then said ' is a folder, not a video file'
    (the empty path was the workflow's folder). A load.sd with none failed only when it ran."""
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  load: {type: io.load_video}\n  sd: {type: load.sd}\n"
                  "  save: {type: io.save_video, inputs: {video: load.video}, params: {path: out.mp4}}\n")
    r = cli("validate", str(wf))
    assert r.returncode == 2
    assert "wf.yaml:3: node load: path is empty; it takes: video file (mp4, mov, mkv, webm, ...)" in r.stdout + r.stderr
    assert "node sd" not in r.stdout + r.stderr         # nothing needs it: parked, left out like a half-wired node
    wf.write_text("kinograph: 1\nnodes:\n  pattern: {type: generate.test_pattern, params: {frames: 2}}\n"
                  "  sd: {type: load.sd}\n"
                  "  save: {type: io.save_video, inputs: {video: pattern.video}, params: {path: out.mp4}}\n")
    r = cli("run", str(wf))
    assert r.returncode == 0 and "not run: sd (" in r.stderr


def test_a_parameter_no_name_is_close_to_is_answered_with_the_nodes_parameters(tmp_path, capsys):
    """`--set latent.length=5` on an imported ComfyUI graph (EmptyHunyuanLatentVideo's `length` is latent.empty's
    `frames`) said only "latent.empty has no parameter 'length'": no name was close enough to suggest, and the
    newcomer was left guessing. The node's parameters are listed; a close name is still suggested alone."""
    from app.cli import main
    wf = tmp_path / "w.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  latent: {type: latent.empty}\n")
    assert main(["validate", str(wf), "--set", "latent.length=5"]) == 2
    assert ("--set: node latent: latent.empty has no parameter 'length'; its parameters: frames, width, height, fps, "
            "size_fit\n") in capsys.readouterr().err
    assert main(["validate", str(wf), "--set", "latent.frame=5"]) == 2
    assert "latent.empty has no parameter 'frame' (did you mean 'frames'?)\n" in capsys.readouterr().err


def test_validate_says_where_comfyuis_input_folder_holds_footage_an_imported_workflow_names(tmp_path, monkeypatch,
                                                                                           capsys):
    """A ComfyUI workflow's LoadVideo names its clip as ComfyUI's input/ folder holds it; imported elsewhere, validate
    said only that the file was not beside the workflow, though the ComfyUI folder named in KINOGRAPH_MODELS has it
    in input/. The message now gives that path to set."""
    from app.cli import main
    comfy = tmp_path / "ComfyUI"
    (comfy / "models" / "vae").mkdir(parents=True)
    (comfy / "input").mkdir()
    clip = comfy / "input" / "phone.mp4"
    clip.write_bytes(b"x")          # validate looks for the file; reading it is the run's
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy))
    wf = tmp_path / "shot" / "w.yaml"
    wf.parent.mkdir()
    wf.write_text("kinograph: 1\nnodes:\n  clip: {type: io.load_video, params: {path: phone.mp4}}\n"
                  "  save: {type: io.save_video, inputs: {video: clip.video}}\n")
    assert main(["validate", str(wf)]) == 2
    assert (f"{wf}:3: node clip: path: 'phone.mp4' is not there ({wf.parent / 'phone.mp4'}); relative paths are taken "
            f"from the workflow file's folder; ComfyUI's input folder holds it: set path to {clip}\n"
            ) in capsys.readouterr().err
    assert main(["validate", str(wf), "--set", f"clip.path={clip}"]) == 0, capsys.readouterr().err


def test_nodes_word_search_reads_the_help_and_the_nodes_words_for_a_task(capsys):
    """`kinograph nodes marigold` found depth.marigold_pass only, not the stored prompt, VAE and LoRA loaders the
    Marigold v2 templates use; `kinograph nodes sound` none of the audio nodes, which say 'audio' in their names.
    Nodes whose help only mentions the word are named on one line, not shown whole."""
    from app.cli import main

    def found(*words):
        assert main(["nodes", *words]) == 0
        out = capsys.readouterr().out
        shown = [line.split()[0] for line in out.splitlines() if line and line[0] != " "]
        also = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("  also named in the help of")]
        return shown, (also[0].split(" and ")[0].split(", ") if also else [])
    shown, also = found("marigold")
    assert shown == ["depth.marigold_pass"]
    assert {"condition.load", "load.vae", "lora.image", "model.flow_shift"} <= set(also)
    for word in ("sound", "audio"):
        shown, also = found(word)
        assert {"io.save_audio", "io.set_audio", "generate.stable_audio"} <= set(shown)
        assert "generate.ace_step" in shown + also
        assert len(also) <= 15
    assert found("KSampler")[0] == ["generate.sample"]


# A first part that works (a loader, or a pattern and its save), then a second loader whose file is not there.
_SECOND_LOADER_MISSING = """kinograph: 1
nodes:
  %s
  vae2: {type: load.vae, params: {name: my_wan_vae.safetensors}}
  enc: {type: vae.encode, inputs: {vae: vae2.vae, video: %s}}
  dec: {type: vae.decode, inputs: {vae: vae2.vae, latent: enc.latent}}
  save2: {type: io.save_video, inputs: {video: dec.video}, params: {path: out/second.mp4}}
"""


def test_run_refuses_a_missing_model_file_before_any_node_runs(tmp_path, monkeypatch, capsys):
    """`kinograph run` loaded kinograph-mini and sampled its clip, then stopped at a second loader whose file was
    not in the model folders: `validate` knew at once. The run now checks every file first, as validate does:
    exit 2, no node started, nothing written, and the message names the node, the file, the folder searched and
    where to put it."""
    from app.cli import main
    models = tmp_path / "models"
    (models / "vae").mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    wf = tmp_path / "wf.yaml"
    wf.write_text(_SECOND_LOADER_MISSING % (
        "load: {type: load.mini}\n"
        "  prompt: {type: encode.text, inputs: {text_encoder: load.text_encoder}, params: {text: a red circle}}\n"
        "  latent: {type: latent.empty, inputs: {vae: load.vae}, params: {frames: 16, width: 48, height: 48}}\n"
        "  sample: {type: generate.sample, inputs: {model: load.model, positive: prompt.positive, "
        "negative: prompt.negative, latent: latent.latent}, params: {steps: 20}}\n"
        "  decode: {type: vae.decode, inputs: {vae: load.vae, latent: sample.latent}}\n"
        "  save: {type: io.save_video, inputs: {video: decode.video}, params: {path: out/first.mp4}}",
        "decode.video"))
    assert main(["run", str(wf), "--json"]) == 2
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["run_finished"]         # no node started
    [problem] = events[0]["problems"]
    assert problem["node"] == "vae2" and problem["line"] == 9
    assert f"'my_wan_vae.safetensors' is not in the model folders (looked in {models / 'vae'}" in problem["message"]
    assert f"put my_wan_vae.safetensors into {models / 'vae'}" in problem["message"]
    assert "`kinograph info`" in problem["message"]
    assert "nothing ran" in err and "--no-precheck" in err
    assert not (tmp_path / "out").exists()
    # The file put where the message said: the check passes it (the run itself then reads the file).
    stub(models / "vae" / "my_wan_vae.safetensors")
    from app.precheck import problems_before_run
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    assert problems_before_run(load_workflow(wf), default_registry()) == []


def test_run_no_precheck_runs_what_does_not_need_the_missing_file(tmp_path, monkeypatch, capsys):
    """The escape hatch keeps the older contract the README states: the nodes that do not depend on the missing
    file run and write, the loader fails, exit 1."""
    from app.cli import main
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    wf = tmp_path / "wf.yaml"
    wf.write_text(_SECOND_LOADER_MISSING % (
        "p: {type: generate.test_pattern, params: {frames: 2, width: 32, height: 32}}\n"
        "  save: {type: io.save_video, inputs: {video: p.video}, params: {path: out/first.mp4}}", "p.video"))
    assert main(["run", str(wf)]) == 2
    assert not (tmp_path / "out").exists()
    assert main(["run", str(wf), "--no-precheck"]) == 1
    assert "VAE not found: 'my_wan_vae.safetensors'" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["first.mp4"]


def test_a_model_file_of_another_kind_is_refused_before_the_estimate_with_the_folder_it_belongs_in(tmp_path,
                                                                                                 monkeypatch, capsys):
    """A VAE named where a diffusion model goes: the run printed its time estimate, then refused, saying "ComfyUI
    keeps a diffusion models in diffusion_models/". It refuses first, in plain words."""
    from app.cli import main
    from diffusers import AutoencoderKLWan
    from tests.tiny_models import wan_original_vae
    from safetensors.torch import save_file
    models = tmp_path / "models"
    (models / "diffusion_models").mkdir(parents=True)
    vae = AutoencoderKLWan(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                           temperal_downsample=[False, True, True])     # as tiny_models.build_wan_comfy writes it
    save_file({k: v.contiguous() for k, v in wan_original_vae(vae.state_dict()).items()},
              str(models / "diffusion_models" / "oops_vae.safetensors"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  m: {type: load.diffusion_model, params: {name: oops_vae.safetensors}}\n")
    assert main(["run", str(wf)]) == 2
    err = capsys.readouterr().err
    assert "node m: name: oops_vae.safetensors is" in err, err
    assert "ComfyUI keeps diffusion models in diffusion_models/" in err and "estimate" not in err


def test_a_batch_here_fails_the_job_whose_model_is_missing_before_any_job_runs(tmp_path, monkeypatch, capsys):
    """A local batch ran each job up to its missing loader, the night's fifth case failing when reached. The job
    whose file is missing now fails, not run, with run's message; the others run."""
    from app.cli import main
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 2, width: 32, height: 32}}\n"
                    "  save: {type: io.save_video, inputs: {video: p.video}, params: {path: out/good.mp4}}\n")
    bad.write_text(_SECOND_LOADER_MISSING % (
        "p: {type: generate.test_pattern, params: {frames: 2, width: 32, height: 32}}\n"
        "  save: {type: io.save_video, inputs: {video: p.video}, params: {path: out/first.mp4}}", "p.video"))
    assert main(["batch", str(bad), str(good), "--json"]) == 1
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finished = {e["case"]: e for e in events if e["event"] == "job_finished"}
    assert finished[2]["ok"] and not finished[1]["ok"], finished
    assert "node vae2: name: 'my_wan_vae.safetensors' is not in the model folders" in finished[1]["error"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4"]


def test_a_batch_job_may_read_what_an_earlier_job_of_it_writes(tmp_path, monkeypatch, capsys):
    """Jobs here run in the order given, so a plate rendered by job 1 and comped by job 2 is there when job 2
    reads it: the pre-check refused job 2 before job 1 had run (batch has no --no-precheck)."""
    from app.cli import main
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    make, use = tmp_path / "make.yaml", tmp_path / "use.yaml"
    make.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 2, width: 32, height: 32}}\n"
                    "  save: {type: io.save_video, inputs: {video: p.video}, params: {path: out/plate.mp4}}\n")
    use.write_text("kinograph: 1\nnodes:\n  v: {type: io.load_video, params: {path: out/plate.mp4}}\n"
                   "  save: {type: io.save_video, inputs: {video: v.video}, params: {path: out/comp.mp4}}\n")
    assert main(["batch", str(make), str(use), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finished = {e["case"]: e for e in events if e["event"] == "job_finished"}
    assert finished[1]["ok"] and finished[2]["ok"], finished
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["comp.mp4", "plate.mp4"]
