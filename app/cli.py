"""The `kinograph` command. Heavy modules are imported inside each command so `--help`
answers at once; every user mistake ends in a message and an exit code, never a traceback."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


class UsageError(Exception):
    """A command line argparse cannot read (an unknown option, a missing argument)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse would print and exit 2 on its own; raised, a --json run can still end with its JSON event.
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")


EPILOG = """exit codes: 0 everything was written; 1 a node failed (outputs not depending on it are still written);
2 the workflow or the command line is wrong, or a file it names is missing (nothing ran); 3 (import) the workflow
was written with nodes mapped approximately (its report says how); 130 cancelled
(Ctrl-C, SIGTERM, SIGHUP), nothing left half-written. With --json, stdout holds one JSON object per line and the last is run_finished
(batch_finished), also when the command is refused: its "ok", "results" (node -> path, frames, bytes ...),
"failed" (node -> message) and, when nothing ran, "error" and "problems" ([{file, line, node, message}]).

environment (a farm's clean environment; each overrides config.yaml, a flag overrides it):
  KINOGRAPH_CACHE_DIR       the on-disk cache (--cache-dir; default $XDG_CACHE_HOME/kinograph, ~/.cache/kinograph)
  KINOGRAPH_OUTPUT_DIR      where outputs may go besides the workflow's folder (--output-dir)
  KINOGRAPH_CONFIG_DIR      the folder of config.yaml and nodes/ (default ~/.config/kinograph)
  KINOGRAPH_DATA_DIR        default models/ and output/ folders (default ~/.local/share/kinograph)
  KINOGRAPH_MODELS          model folders, separated by ':' (searched before model_dirs in config.yaml)
  KINOGRAPH_NODES_DIR       a folder of your own node files (default CONFIG_DIR/nodes)
  KINOGRAPH_KEEP_TAKES      earlier takes kept per output: a number or 'all' (--replace sets 0)
  KINOGRAPH_DISK_CACHE_GB, KINOGRAPH_MEMORY_CACHE_MB    cache sizes
  KINOGRAPH_MODELS_LOADED   models kept loaded at once (3)
  KINOGRAPH_ALLOW_OUTSIDE=1 as --allow-outside
A home that cannot be written is fine: a cache that cannot be written is a warning and the render goes on."""


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kinograph", description="Node-based video generation: run, check and edit "
                "workflow files. See README.md for a first workflow.", epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="render a workflow headless")
    r.add_argument("workflow", help="a workflow .yaml ('-': its YAML from standard input, paths taken from the "
                                    "current folder), or a video/PNG that Kinograph rendered: its workflow runs "
                                    "again and writes where it wrote before (out/shot.mp4 again, beside the "
                                    "render, the render itself kept as an earlier take in out/takes/)")
    r.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a parameter; VALUE is read as YAML (7 a number, true a flag, text as it is); "
                        "repeat for several")
    r.add_argument("--json", action="store_true", help="one JSON event per line on stdout instead of progress "
                                                       "(node_started, node_progress, node_finished, node_failed, log), "
                                                       "ending with run_finished: ok, results, failed, cancelled")
    r.add_argument("--no-cache", action="store_true", help="ignore cached results (still writes new ones)")
    r.add_argument("--cache-dir", metavar="DIR", help="folder for the on-disk cache")
    r.add_argument("--device", default="auto", type=_device, help="auto, cuda, cuda:N, mps or cpu")
    r.add_argument("--no-precheck", action="store_true",
                   help="run without first checking that every model and footage file is there: the nodes that "
                        "do not need a missing file still run and write (a missing one fails its node, exit 1)")
    r.add_argument("--ray", metavar="ADDRESS", help="render on Ray: 'local' or a cluster address")
    r.add_argument("--shards", type=_count, default=0, help="with --ray: split the frame range into N shards")
    _output_flags(r)
    _replace_flag(r)

    # The exit codes were said only in app/comfyui/cli.py: `kinograph import x.json -o x.yaml && kinograph run x.yaml`
    # stopped after a workflow was written, with no word on why.
    im = sub.add_parser("import", help="convert a ComfyUI workflow (.json, or a PNG/WebP/MP4/WebM carrying one) or "
                                       "Deforum settings (.txt or .json)",
                        epilog="exit status: 0 every node mapped exactly; 3 written, with nodes mapped approximately "
                               "(the report says how); 2 not written (a node with no equivalent: see --partial, "
                               "--bypass-unmapped) or not a workflow; with --partial, 2 is written with placeholders, "
                               "which do not run")
    im.add_argument("file", help="UI or API format JSON, an image/video ComfyUI or VideoHelperSuite wrote, or the "
                                 "settings file Deforum saves (its 2D/3D/Video Input animation becomes generate.feedback, "
                                 "Deforum's frame-by-frame loop)")
    im.add_argument("-o", "--output", metavar="OUT.yaml", help="where to write the workflow (default: stdout)")
    im.add_argument("--partial", action="store_true",
                    help="write it even when nodes have no equivalent (red placeholders mark them)")
    im.add_argument("--bypass-unmapped", action="store_true",
                    help="bypass nodes with no equivalent that pass a value on (a model patch, a conditioning or image "
                         "filter), as ComfyUI's bypass does: the rest runs without what they do")
    im.add_argument("--force", action="store_true", help="replace OUT.yaml if it exists")

    v = sub.add_parser("validate", help="check a workflow without running it")
    v.add_argument("workflow", help="a workflow .yaml ('-' for standard input, or a video/PNG carrying one): its "
                                    "links, values, output "
                                    "paths and model files are checked; exit 2 lists every problem as FILE:LINE")
    v.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a parameter, as for run")
    v.add_argument("--json", action="store_true", help='one JSON object on stdout: {"ok", "workflow", "nodes", "left_out", '
                                                       '"estimate" (where it samples)} or '
                                                       '{"ok": false, "problems": [{file, line, node, message}]}')
    _output_flags(v)

    n = sub.add_parser("nodes", help="list node types")
    n.add_argument("find", nargs="*", metavar="NAME",
                   help="only the nodes whose type, title or category contains each word (generate.sample, "
                        "interpolat), or that a ComfyUI node becomes (KSampler) or a task names (slow motion), "
                        "with their whole help; several node types: each of them. A search that matches nothing "
                        "says so on stderr and exits 0 (--json: [])")
    g = n.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="machine-readable: one object per node")
    g.add_argument("--markdown", action="store_true", help="a reference page: each node's help and a table of its "
                                                           "parameters")

    i = sub.add_parser("info", help="versions, devices, cache and model folders, and every model file in them",
                       epilog="Your own models folder (a ComfyUI one: ComfyUI/, ComfyUI/models/ or one of its "
                              "sub-folders): `kinograph info ~/ComfyUI/models` lists what Kinograph finds there and "
                              "whether each file will load. To use it in every run, name it in KINOGRAPH_MODELS "
                              "(export KINOGRAPH_MODELS=~/ComfyUI/models) or under model_dirs: in config.yaml.")
    i.add_argument("folders", nargs="*", metavar="MODELS_FOLDER",
                   help="model folders to look in first, as KINOGRAPH_MODELS would (this command only); or model "
                        "files, each said what it is, whether it loads and which sub-folder it goes in")

    c = sub.add_parser("cache", help="show or clear the on-disk cache")
    c.add_argument("action", nargs="?", default="info", choices=("info", "clear"),
                   help="info (the default): size and what is in it; clear: remove the cached results")
    c.add_argument("--cache-dir", metavar="DIR", help="the cache folder (default: KINOGRAPH_CACHE_DIR, else "
                   "$XDG_CACHE_HOME/kinograph, else ~/.cache/kinograph; `kinograph info` shows the one in use)")

    gu = sub.add_parser("gui", help="open the node editor")
    gu.add_argument("workflow", nargs="?", help="a workflow .yaml, a ComfyUI .json, Deforum settings, or a "
                                                "video/PNG carrying a workflow (default: an empty canvas)")
    gu.add_argument("--screenshot", metavar="PNG", help="render the window to PNG and exit")

    b = sub.add_parser("batch", help="run several workflows, or one once per case of a sweep file")
    b.add_argument("workflow", nargs="+", help="the workflows to run, one job each (.yaml, or a video/PNG carrying "
                                               "one); with --sweep, the one workflow each case starts from. A "
                                               "quoted pattern ('shots/*.yaml', as a Windows shell or a farm "
                                               "wrapper passes it) is expanded here, in name order: *, ? and "
                                               "[abc] as in a shell, ** for any depth of folders")
    b.add_argument("--sweep", metavar="SWEEP.yaml",
                   help="the cases: 'grid:' (every combination) and/or 'cases:' lists of NODE.PARAM: value; "
                        "output paths may hold {case} and {NODE.PARAM} (see docs/ray.md)")
    b.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a parameter in every job, as for run (a sweep case's own value wins); repeat "
                        "for several")
    b.add_argument("--ray", metavar="ADDRESS", help="'local' or a cluster address; without it jobs run here")
    b.add_argument("--jobs", type=_count, default=0, help="concurrent jobs (Ray)")
    b.add_argument("--json", action="store_true", help="JSON lines on stdout: batch_started, job_finished per case, batch_finished")
    b.add_argument("--only", default="", metavar="CASES", help="comma-separated case numbers to (re)run")
    b.add_argument("--skip-done", action="store_true",
                   help="skip the cases whose outputs are all there, each carrying that case's workflow (what "
                        "a finished job leaves): a batch that was stopped or crashed picks up where it was. "
                        "Input files changed since are not noticed")
    b.add_argument("--cache-dir", metavar="DIR", help="folder for the on-disk cache")
    b.add_argument("--log-dir", metavar="DIR",
                   help="where each case's log and the batch's batch.log go (appended to, a section per run); "
                        "default logs/WORKFLOW.SWEEP/ beside the workflow (logs/batch/ for a batch of files)")
    b.add_argument("--device", default="auto", type=_device, help="auto, cuda, cuda:N, mps or cpu")
    _output_flags(b)
    _replace_flag(b)
    return p


def _replace_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replace", action="store_true",
                   help="replace the earlier render of each output instead of keeping it as takes/NAME.001.mp4 "
                        "beside it (keep_takes in config.yaml bounds how many are kept)")


def _count(text: str) -> int:
    """A number of jobs or shards: 0 means the default; a negative one was taken as 1 without a word."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return n


def _device(text: str) -> str:
    """A device name checked as the command line is read, so a typo stops before anything runs."""
    from graph_engine.devices import check_device
    from graph_engine.errors import KinographError
    try:
        return check_device(text)
    except KinographError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-outside", action="store_true",
                   help="let the workflow write outside its own folder and the output folder "
                        "(existing files are still replaced only if Kinograph wrote them)")
    p.add_argument("--output-dir", metavar="DIR", help="a folder outputs may go to besides the workflow's own "
                   "(default: output_dir in config.yaml, else ~/.local/share/kinograph/output)")


def main(argv: Optional[List[str]] = None) -> int:
    from .progress import Printable, nowhere
    saved = sys.stdout, sys.stderr
    # Started with stdout or stderr closed (`>&-`, a daemon's job runner), Python has no stream for it: the first
    # line printed raised AttributeError, and the render was lost or exited 1. Such lines go nowhere.
    opened = nowhere([fd for fd, s in ((1, sys.stdout), (2, sys.stderr)) if s is None])
    sys.stdout, sys.stderr = (Printable(opened.get(fd, s)) for fd, s in ((1, saved[0]), (2, saved[1])))
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = saved
        for o in opened.values():
            o.close()


# When the command began: a refused command's finished event says how long it took, as a finished one does.
_began = time.perf_counter()


def _main(argv: Optional[List[str]] = None) -> int:
    global _began
    _began = time.perf_counter()
    try:
        args = _parser().parse_args(argv)
    except UsageError as e:
        print(e, file=sys.stderr)
        _json_finish(_guess_args(sys.argv[1:] if argv is None else argv), str(e).splitlines()[-1])
        return EXIT_USAGE
    if args.version:
        from importlib.metadata import version, PackageNotFoundError
        try:
            print(f"kinograph {version('kinograph')}")
        except PackageNotFoundError:
            print("kinograph (not installed)")
        return EXIT_OK
    if not args.command:
        _parser().print_help()
        return EXIT_USAGE
    if getattr(args, "cache_dir", None):
        os.environ["KINOGRAPH_CACHE_DIR"] = os.path.abspath(args.cache_dir)
    # Through the environment, so Ray workers and batch jobs apply the same output policy.
    if getattr(args, "output_dir", None):
        os.environ["KINOGRAPH_OUTPUT_DIR"] = os.path.abspath(os.path.expanduser(args.output_dir))
    if getattr(args, "allow_outside", False):
        os.environ["KINOGRAPH_ALLOW_OUTSIDE"] = "1"
    if getattr(args, "replace", False):
        os.environ["KINOGRAPH_KEEP_TAKES"] = "0"
    from graph_engine.errors import KinographError, WorkflowError
    from .progress import print_out
    try:
        _check_cwd(args)
        # A batch names each workflow it cannot run in its summary and runs the others (app.batch).
        if args.command in ("run", "validate") and args.workflow != "-":
            _refuse_comfyui(args.workflow)
        # A scheduler's SIGTERM while torch loads, the files are checked or the time estimated (before a run sets
        # its own handler) killed the process: exit 143 and no --json finished event. It stops as Ctrl-C does
        # (below). Not in the editor, whose Qt loop runs no Python to raise it in.
        from .jobs import sigterm_interrupts
        with contextlib.nullcontext() if args.command == "gui" else sigterm_interrupts():
            return COMMANDS[args.command](args)
    except WorkflowError as e:
        for p in e.problems:
            print_out(sys.stderr, str(p))
        _json_finish(args, "\n".join(str(p) for p in e.problems), problems=e.problems)
        return EXIT_USAGE
    except KinographError as e:
        print_out(sys.stderr, f"kinograph: {e}")
        _json_finish(args, str(e))
        return EXIT_FAIL
    except KeyboardInterrupt:
        print_out(sys.stderr, "kinograph: cancelled")
        _json_finish(args, "cancelled", cancelled=True)
        return EXIT_CANCELLED
    except BrokenPipeError:       # output piped into `head` and the like
        from .progress import discard
        discard(sys.stdout)
        return EXIT_OK


def _check_cwd(args) -> None:
    """A farm may start a job in a folder since removed (a cleaned temporary folder): the first relative path
    then raised FileNotFoundError with a traceback. Absolute paths still work (from /); relative ones cannot."""
    try:
        os.getcwd()
        return
    except FileNotFoundError:
        pass
    from graph_engine.errors import WorkflowError
    given = []
    for k in ("workflow", "sweep", "cache_dir", "output_dir", "file", "output", "screenshot"):
        v = getattr(args, k, None)
        given += v if isinstance(v, list) else [v]      # a batch's several workflows
    relative = [v for v in given if isinstance(v, str) and not os.path.isabs(os.path.expanduser(v))]
    if relative:
        raise WorkflowError([f"the current folder no longer exists (it was removed), so {relative[0]!r} cannot be "
                             "found from it: cd to a folder that exists, or give absolute paths"])
    os.chdir("/")


def _json_finish(args, error: str, cancelled: bool = False, problems=None) -> None:
    """With --json a program reads stdout: a run or batch refused before it started (its command line
    included), or stopped by Ctrl-C or SIGTERM where no finished event was printed (a run on Ray), still
    ends with its finished event, carrying the message (stderr has it for people) and, for a workflow
    refused, each problem as {file, line, node, message}, so a farm can show the line without parsing text.
    `validate --json` answers the same way."""
    if not getattr(args, "json", False) or args.command not in ("run", "batch", "validate"):
        return
    # Every field a finished run or batch gives (app.batch's batch_finished), so a wrapper reads one shape.
    seconds = round(time.perf_counter() - _began, 4)
    event = {"run": {"event": "run_finished", "ok": False, "cancelled": cancelled, "results": {}, "failed": {},
                     "seconds": seconds},
             "batch": {"event": "batch_finished", "ok": False, "jobs": 0, "succeeded": 0, "failed_cases": [],
                       "not_run": [], "cancelled": cancelled, "seconds": seconds, "retry": None, "change_first": [],
                       "retry_after_change": None},
             "validate": {"ok": False}}[args.command]
    # print_out: a reader that stopped reading (`validate --json | head -c 100`) is no traceback here either.
    from .progress import print_out
    print_out(sys.stdout, json.dumps({**event, "error": error,
                                      "problems": [] if cancelled else [_problem_data(p) for p in problems or [error]]}))


def _problem_data(p) -> dict:
    from graph_engine.workflow import Problem
    if isinstance(p, Problem):
        return {"file": p.file, "line": p.line or None, "node": p.node, "message": p.message}
    return {"file": None, "line": None, "node": None, "message": str(p)}


def _guess_args(argv: List[str]) -> argparse.Namespace:
    """Which command a command line argparse refused was for, and whether it asked for --json: enough for
    _json_finish to answer in JSON."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return argparse.Namespace(command=command, json="--json" in argv)


def _refuse_comfyui(path: str) -> None:
    """A ComfyUI workflow given where a Kinograph one belongs gets one line on how to convert it, rather
    than the schema's complaints about keys ComfyUI's format was never meant to share with ours."""
    from graph_engine.errors import WorkflowError
    from .comfyui import comfyui_source
    from .deforum import is_deforum_file
    src = comfyui_source(path)
    deforum = src is None and is_deforum_file(path)
    if src is None and not deforum:  # Kinograph's, or neither kind: the loader says what is wrong with it
        return
    out = Path(path).with_suffix(".yaml").name
    if deforum:
        what, unit = "holds Deforum settings, not a Kinograph workflow", "setting"
    else:
        what = "is a ComfyUI workflow" if src.origin == "file" else f"carries a ComfyUI workflow ({src.origin})"
        what, unit = what + ", not a Kinograph one", "node"
    raise WorkflowError([f"{path} {what}. Convert it first: `kinograph import {path} -o {out}` lists every {unit} "
                         f"it maps and any it cannot, then `kinograph run {out}` (`kinograph gui {path}` opens it "
                         "in the editor)."])


def cmd_import(args) -> int:
    from .comfyui.cli import cmd_import as run
    return run(args)


def _load(args):
    """The workflow named on the command line, unchecked (--set may fix it); `-` reads its YAML from standard
    input (`make_shot.py | kinograph run -`), its relative paths taken from the current folder. `-` was looked
    for as a file: "/tmp/-: no such file"."""
    from graph_engine.api import load_workflow
    if args.workflow != "-":
        return load_workflow(args.workflow, check=False)
    from graph_engine.errors import WorkflowError
    from graph_engine.workflow import STDIN, Problem
    if getattr(args, "ray", None) or getattr(args, "shards", 0):
        raise WorkflowError([Problem(STDIN, 0, None, "--ray needs the workflow as a file its workers can read: "
                                                         "save it (shot.yaml) and give that")])
    wf = load_workflow(text=sys.stdin.read(), check=False, source=STDIN)
    wf.folder = Path.cwd()
    return wf


def cmd_validate(args) -> int:
    from graph_engine.errors import WorkflowError
    from graph_engine.registry import default_registry
    from graph_engine.validate import left_out_note, run_scope
    from graph_engine.workflow import STDIN
    from nodes.generate.estimate import estimate
    from .precheck import problems_before_run
    # The same overrides as the run it precedes: they may fix a problem or make one.
    wf = _load(args)
    _apply_sets(args.set, wf)       # and the output paths' placeholders, which the run would refuse too
    # As ComfyUI checks a prompt's model names: the run would stop at the loader.
    problems = problems_before_run(wf, default_registry())
    if problems:
        raise WorkflowError(problems)
    left_out = run_scope(wf, default_registry())[1]
    est = estimate(wf, default_registry())
    if args.json:
        print(json.dumps({"ok": True, "workflow": str(wf.path or args.workflow), "nodes": len(wf.graph.nodes),
                          "left_out": left_out, **({"estimate": est.data()} if est.samplers else {})}))
        return EXIT_OK
    named = STDIN if args.workflow == "-" else args.workflow       # as its problems name it
    print(f"{named}: ok ({len(wf.graph.nodes)} nodes)" + (f"; {left_out_note(left_out)}" if left_out else ""))
    for line in est.lines:
        print(f"  {line}")
    if est.warning:
        print(f"warning: {est.warning}")
    return EXIT_OK


def cmd_run(args) -> int:
    from graph_engine.api import Session
    from graph_engine.context import CancelToken
    from graph_engine.workflow import MEDIA_SUFFIXES
    from .jobs import cancel_on_interrupt
    from .old_temporaries import sweep_old_metadata
    from .progress import ProgressPrinter
    sweep_old_metadata()        # older versions' workflow copies left in /tmp by killed writers
    wf = _load(args)
    _note_relative_sets(args.set, wf)
    _apply_sets(args.set, wf)
    if Path(args.workflow).suffix.lower() in MEDIA_SUFFIXES:
        _announce_outputs(args, wf)
    if args.ray or args.shards:     # each worker checks the files on its own machine (app.jobs.refused_here)
        from .batch import run_distributed
        return run_distributed(args, wf)
    if not args.no_precheck:
        _precheck(wf)
    _refuse_full_disk(wf)
    _check_device(wf, args.device)
    printer = ProgressPrinter(json_lines=args.json, graph=wf.graph)
    _say_estimate(wf, args.device, printer.note)
    _say_nothing_kept(wf, printer.note)
    with cancel_on_interrupt(CancelToken(), printer.note) as cancel:
        # Checked above, or --no-precheck asked to run what does not need the missing files.
        result = Session(device=args.device).run(wf, on_event=printer, cancel=cancel, use_cache=not args.no_cache,
                                                 keep=(), precheck=False)
    if result.cancelled:
        return EXIT_CANCELLED
    return EXIT_OK if result.ok else EXIT_FAIL


def _precheck(wf) -> None:
    """Every file the workflow reads, before any node runs: a graph whose second loader named a missing model
    rendered its first part for minutes, then stopped at that loader (exit 2, nothing ran, nothing written)."""
    from graph_engine.errors import WorkflowError
    from graph_engine.registry import default_registry
    from graph_engine.validate import validate_run
    from .precheck import missing_files
    reg = default_registry()
    invalid = validate_run(wf, reg)     # said before the time estimate, as the files are
    if invalid:
        raise WorkflowError(invalid)
    problems = missing_files(wf, reg)
    if problems:
        print("kinograph: nothing ran: the workflow needs the files below (--no-precheck runs the nodes that do "
              "not need them)", file=sys.stderr)
        raise WorkflowError(problems)


def _refuse_full_disk(wf) -> None:
    """Refuse a run whose outputs' disk is full before any node runs. A farm's task is one run: on a disk that had
    filled, each sampled for its hour and failed at its writer (a batch checks each of its jobs so). Exit 1, not 2:
    nothing is wrong with the workflow, and the scheduler's retry runs it once space is freed."""
    from graph_engine.errors import KinographError
    from .batch import full_disk
    why = full_disk(_output_paths(wf))
    if why:
        raise KinographError(f"nothing ran: {why}")


def _check_device(wf, device: str) -> None:
    """A GPU asked for (--device cuda, mps) that this machine cannot give, refused before any node runs where the
    workflow has GPU nodes: the nodes before the first model load ran (a plate's decode, its preprocessing), then that
    load failed. A workflow without them runs as before (the device is not used)."""
    if device in ("auto", "cpu"):
        return
    from graph_engine.devices import resolve_device
    from graph_engine.registry import default_registry
    from .distributed import needs_gpu
    if needs_gpu(wf, default_registry()):
        resolve_device(device)


def _output_paths(wf) -> List[str]:
    """Every file or folder the workflow's nodes will write, resolved."""
    from graph_engine.outputs import planned_outputs
    from graph_engine.registry import default_registry
    reg = default_registry()
    specs = {n: reg.get(i.type) for n, i in wf.graph.nodes.items() if reg.get(i.type)}
    return [p for _, _, _, p in planned_outputs(wf, specs)]


def _say_estimate(wf, device: str, note) -> None:
    """The samplers' work and, on the CPU, about how long they take, before the run: a ComfyUI Wan graph ran for
    hours on a laptop with nothing said. A warning only: a farm's or a batch's run goes on as asked."""
    from graph_engine.errors import WorkflowError
    from graph_engine.registry import default_registry
    from nodes.generate.estimate import estimate
    try:
        est = estimate(wf, default_registry(), device)
    except WorkflowError:       # the run names what is wrong with the workflow
        return
    for line in est.lines:
        note(f"estimate: {line}")
    if est.warning:
        note(f"warning: {est.warning}")


def _say_nothing_kept(wf, note) -> None:
    """A warning before a run of a graph with no save or metric node: an imported depth template (its
    PreviewImage shows in the editor only) ran for seconds, said "ok" and wrote nothing, with nothing said."""
    from graph_engine.registry import default_registry
    reg = default_registry()
    # text.generate's text is kept in the run's log (ComfyUI's PreviewAny of it)
    if not any(getattr(reg.get(n.type), "output", False) or n.type == "text.generate" for n in wf.graph.nodes.values()):
        note("warning: nothing in this workflow saves a file or measures anything: the run computes it and keeps "
             "nothing; add io.save_video (or io.save_frames) after the node whose result you want")


def _apply_sets(sets: List[str], wf) -> None:
    """The --set overrides, then the output paths' {NODE.PARAM} placeholders filled from the result, as a
    batch fills them (graph_engine.placeholders)."""
    from graph_engine.errors import WorkflowError
    from graph_engine.registry import default_registry
    from graph_engine.validate import apply_overrides
    from graph_engine.placeholders import fill_placeholders
    reg = default_registry()
    problems = apply_overrides(wf, sets, reg)
    if problems:
        raise WorkflowError(problems)
    for note in fill_placeholders(wf, reg):
        print(f"kinograph: {note}", file=sys.stderr)


def _note_relative_sets(sets: List[str], wf) -> None:
    """A relative path given with --set is taken from the workflow's folder, like every path in it; run
    from elsewhere (a shot folder, with a template workflow) that silently read or wrote beside the
    template, so the command says where it points."""
    from graph_engine.registry import default_registry
    from graph_engine.validate import parse_override
    base = wf.base_dir
    if os.path.realpath(os.getcwd()) == os.path.realpath(base):
        return
    for item in sets:
        try:
            nid, param, value = parse_override(item)
        except ValueError:
            continue                # apply_overrides names the mistake
        spec = default_registry().get(wf.graph.nodes[nid].type) if nid in wf.graph.nodes else None
        p = spec.params.get(param) if spec else None
        if p is None or p.kind != "path" or not isinstance(value, str) or not value.strip() \
                or os.path.isabs(os.path.expanduser(value)):
            continue
        print(f"kinograph: --set {nid}.{param}={value} is taken from the workflow's folder, not from here: "
              f"{os.path.normpath(os.path.join(base, value))} (give an absolute path for another place)",
              file=sys.stderr)


def _announce_outputs(args, wf) -> None:
    """A workflow that arrived inside a video or picture says what it will write before it runs."""
    paths = _output_paths(wf)
    print(f"{args.workflow} carries a workflow; it will write:" if paths else
          f"{args.workflow} carries a workflow; it writes no files", file=sys.stderr)
    for p in paths:
        print(f"  {p}", file=sys.stderr)


def cmd_nodes(args) -> int:
    from graph_engine.registry import default_registry
    reg = default_registry()
    specs = [reg.get(t) for t in reg]
    if args.find:
        specs = _find_nodes(reg, specs, args.find)
        if not specs:
            # A search that finds nothing is an answer, not a failure: exit 0 as for one that finds some (1 is a
            # node that failed, 2 a command line that is wrong), --json's list empty, the word on it on stderr.
            from .progress import print_out
            print_out(sys.stderr, f"kinograph: {_no_match(reg, args.find)}")
            if args.json:
                print("[]")
            return EXIT_OK
    if args.json:
        print(json.dumps([s.to_dict() for s in specs], indent=1, default=str))
    elif args.markdown:
        from .docs import nodes_markdown
        print(nodes_markdown(specs))
    else:
        from .docs import nodes_text
        print(nodes_text(specs, full=bool(args.find)))
        also = _mentioned(reg, args.find, specs) if args.find else []
        if also:
            # Names only: a common word ('sound' in every clip node's help) would bury what was found under
            # whole helps. The Marigold templates' condition.load, the audio nodes for 'sound' were not found.
            more = f" and {len(also) - MENTIONS_SHOWN} more" if len(also) > MENTIONS_SHOWN else ""
            print(f"\n  also named in the help of: {', '.join(s.type for s in also[:MENTIONS_SHOWN])}{more}")
    return EXIT_OK


MENTIONS_SHOWN = 15


def _no_match(reg, words: List[str]) -> str:
    """What `kinograph nodes WORD ...` says when no node matches: the name it may have meant, or for a ComfyUI node
    Kinograph does not map (LeapfusionHunyuanI2VPatcher) the import's word on what to use instead."""
    from graph_engine.registry import did_you_mean
    from app.comfyui.api_nodes import API_NODE, is_api_node
    from app.comfyui.mapping import INSTEAD
    said = INSTEAD.get(words[0]) or (API_NODE if is_api_node(words[0]) else None)
    if len(words) == 1 and isinstance(said, str):
        return f"no node type matches {words[0]!r}, a ComfyUI node: {said}"
    return (f"no node type matches {' '.join(words)!r}"
            f"{did_you_mean(words[0], [*reg, *(t.split('.', 1)[-1] for t in reg)])}; `kinograph nodes` lists them all")


def _search_forms(words: List[str]) -> List[List[str]]:
    """The words as typed, and as the nodes say them ('sound' is 'audio' in their names)."""
    from .editor.fuzzy import expand
    typed = [w.lower() for w in words]
    return list({tuple(f): f for f in (typed, expand(" ".join(typed)).split())}.values())


def _mentioned(reg, words: List[str], shown) -> list:
    """The nodes whose help names every word (as a word's start: 'marigold' in Marigold v2, not inside another
    word), left out of `shown`."""
    import re
    if len(words) > 1 and all(w in reg for w in words):
        return []
    seen = {s.type for s in shown}
    found = []
    for t in reg:
        s = reg.get(t)
        if t not in seen and any(all(re.search(rf"\b{re.escape(w)}", s.help, re.I) for w in form)
                                 for form in _search_forms(words)):
            found.append(s)
    return found


def _find_nodes(reg, specs, words: List[str]) -> list:
    """The nodes `kinograph nodes WORD ...` shows: several node types named, those; else the nodes whose type,
    title or category holds every word; else, as the editor's search finds them, the nodes a ComfyUI node
    becomes ('KSampler') or a task's words name ('slow motion'), which the command said matched nothing."""
    if len(words) > 1 and all(w in reg for w in words):
        return [reg.get(w) for w in words]

    def holding(ws):
        return [s for s in specs if all(w in f"{s.type} {s.title} {s.category}".lower() for w in ws)]
    typed, *named = _search_forms(words)
    found = holding(typed)
    if not found:
        # A ComfyUI name as a whole, typed with its spaces or without; else one whose words hold every word typed
        # ('FILM' of 'FILM VFI'). Any one word matching ('image' of WAS's 'Image Resize') took 'image blur' and
        # 'image sequence' to video.resize; the whole name alone left 'FILM' and 'VFI' finding nothing.
        from .editor.fuzzy import comfyui_classes
        phrase = "".join(typed)
        names = {s.type: [c.lower() for c in comfyui_classes(s.type)] for s in specs}
        found = ([s for s in specs if any("".join(c.split()) == phrase for c in names[s.type])]
                 or [s for s in specs if any(set(typed) <= set(c.split()) for c in names[s.type])])
        if found:
            return found
    for form in named:      # 'sound' found three nodes, none of the audio ones
        found += [s for s in holding(form) if s not in found]
    return found or _mentioned(reg, words, [])


def _home_of(path: Path) -> str:
    """The sub-folder a file put in a model folder itself belongs in, told from its header as the list below tells
    it; the kinds' folders in general where the header does not say."""
    from nodes.generate.detect import detect_file
    from nodes.generate.split import folder_of
    try:
        det = detect_file(path)
    except Exception:       # a damaged or unknown file: its line in the list says what it is
        det = None
    folder = folder_of(det) if det is not None else None
    if folder:
        return f"{path.parent / folder}/ (it reads as {det.describe()})"
    return ("the sub-folder of its kind (diffusion_models/, checkpoints/, text_encoders/, vae/, loras/ ...: README, "
            "'Where models go')")


def cmd_info(args) -> int:
    # `info FOLDER` searches the folders named through KINOGRAPH_MODELS for this listing only: main() called from a
    # script or a test (one process, many commands) went on finding models there in every later command.
    before = os.environ.get("KINOGRAPH_MODELS")
    try:
        return _info(args)
    finally:
        if before is None:
            os.environ.pop("KINOGRAPH_MODELS", None)
        else:
            os.environ["KINOGRAPH_MODELS"] = before


def _wsl_hint(folder: str) -> str:
    """Where WSL shows a Windows drive's folder (D:\\AI\\models is /mnt/d/AI/models), as an example; '' for a share."""
    if len(folder) < 2 or folder[1] != ":" or not folder[0].isalpha():
        return ""
    rest = "/".join(p for p in folder[2:].replace("\\", "/").split("/") if p)
    return f", such as /mnt/{folder[0].lower()}/{rest} under WSL"


def _info_files(files: List[Path]) -> int:
    """`kinograph info FILE ...`: what a downloaded file is, whether it loads and which sub-folder it goes in, read
    from its header as a folder's files are; it was refused as 'not a folder'."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import describe_model
    from nodes.generate.split import folder_of
    for f in files:
        d = describe_model(f)
        what = " ".join(x for x in (d["family"], d["variant"], d["role"]) if x)
        line = f"{f}: {what}{', ' + d['precision'] if d['precision'] else ''}, loads {d['loads']}"
        try:
            folder = folder_of(detect_file(f))
        except Exception:       # damaged or unknown: the note says what it is
            folder = None
        print(line + (f"; it goes in the {folder}/ sub-folder of a model folder (ComfyUI's models/{folder}/)"
                      if folder else ""))
        if d["note"]:
            print(f"  ({d['note']})")
    return EXIT_OK


def _info(args) -> int:
    named = [Path(f).expanduser().absolute() for f in args.folders]
    from nodes.common.models_dirs import WEIGHT_SUFFIXES
    # Each name for what it is: a model file is described, a folder searched (FILE FOLDER together was refused).
    files = [f for f in named if f.is_file() and f.suffix.lower() in WEIGHT_SUFFIXES]
    named = [f for f in named if f not in files]
    for f in named:
        if not f.is_dir():
            print(f"kinograph info: {f} is not a folder: name the folder that holds your models (a ComfyUI "
                  "models/ folder, or the ComfyUI folder holding it)", file=sys.stderr)
            return EXIT_USAGE
    if files:
        _info_files(files)
        if not named:
            return EXIT_OK
    import platform
    from importlib.metadata import version, PackageNotFoundError
    from graph_engine import config
    from graph_engine.cache import DiskCache
    from graph_engine.devices import available_devices
    from graph_engine.shipped import resource
    print(f"{'python':<24}{platform.python_version()} ({platform.platform()})")
    for pkg in ("kinograph", "torch", "diffusers", "transformers", "PySide6-Essentials", "opencv-python-headless",
                "av", "imageio-ffmpeg", "numba", "spandrel", "ray"):
        try:
            print(f"{pkg:<24}{version(pkg)}")
        except PackageNotFoundError:
            print(f"{pkg:<24}not installed")
    print(f"{'devices':<24}{', '.join(available_devices())}")
    disk = DiskCache(config.cache_dir() / "results", config.disk_cache_cap())
    print(f"{'cache':<24}{disk.root} ({_size(disk.size())} of {_size(disk.cap)})")
    print(f"{'config':<24}{config.config_dir() / 'config.yaml'}")
    print(f"{'output folder':<24}{config.output_dir()} (besides each workflow's own folder)")
    from nodes.common.models_dirs import extra_model_folders, loose_models, model_dir, model_dirs, unfoldered_pipelines
    from nodes.common.models_dirs import every_dead_link, extra_windows_folders, unsearched_folders
    from nodes.common.models_dirs import UNSEARCHED_WALK
    from nodes.common.models_dirs import LOADED_BY, locator
    from nodes.generate.model_manager import READ_BY_NODE, list_found_models
    # Folders already searched need no export line: it was printed for the folder KINOGRAPH_MODELS already named.
    searched_before = set(model_dirs())
    if named:
        os.environ["KINOGRAPH_MODELS"] = os.pathsep.join([str(f) for f in named]
                                                          + [os.environ.get("KINOGRAPH_MODELS", "")]).rstrip(os.pathsep)
    print("model folders (" + ("the folders named, then " if named else "")
          + "KINOGRAPH_MODELS, model_dirs in config.yaml, then the default):")
    for d in model_dirs():
        print(f"  {d}{'' if d.exists() else '  (missing)'}")
    # A second drive named in an extra_model_paths.yaml is searched too, and was not shown: say which file adds what.
    windows = extra_windows_folders()
    for file, folders in extra_model_folders().items():
        print(f"  and, from {file}:")
        for w in windows.get(file, ()):
            print(f"    {w}  (a Windows folder, which names nothing on this computer: write it as this computer names "
                  f"it{_wsl_hint(w)})")
        for d in folders:
            # ComfyUI's own example has "models/clip/  # legacy location still supported" in a | block, where a #
            # is text: ComfyUI and Kinograph both look for a folder of that name, which the bare (missing) left
            # unexplained.
            hint = ": a # inside a | block is part of the folder name, for ComfyUI too; take the comment out of the " \
                "block" if " #" in d.name else ""
            print(f"    {d}{'' if d.exists() else f'  (missing{hint})'}")
    for line in every_dead_link():
        print(f"  {line}")
    for d, n, stopped in unsearched_folders():
        held = f"{n} model file{'s' if n != 1 else ''}"
        if stopped:
            held += f" in its first {UNSEARCHED_WALK:,} files and folders (counting stopped there)"
        print(f"  {d}/ holds {held} and is not searched: no Kinograph node reads that kind of model")
    for p in loose_models():
        print(f"  {p} is in the model folder itself, where no model is looked for: move it into {_home_of(p)}")
    for d in unfoldered_pipelines():
        loader = LOADED_BY.get(d.name, "its loader")
        print(f"  {d} holds one model's parts directly, where {loader} looks for a folder by its name and finds none: "
              f"move them into a folder of their own, {d / 'NAME'}/, and give {loader} NAME")
    found = list_found_models()
    if not found and named:
        # The advice was to put files into the default folder, or to name a folder: the one just named.
        print("models found: none. Model files go in the sub-folder of their kind (checkpoints/, diffusion_models/, "
              "text_encoders/, vae/, loras/ ...) of a folder above (README, 'Where models go').")
    elif not found:
        print(f"models found: none. Put model files into the sub-folder of their kind (checkpoints/, "
              f"diffusion_models/, text_encoders/, vae/, loras/ ...) of {model_dirs()[-1]}, or name the folder "
              f"that holds yours: `kinograph info ~/ComfyUI/models` shows what is found there (README, 'Where "
              f"models go'). Until then, the bundled kinograph-mini runs examples/default.yaml and "
              f"examples/mini_text_to_video.yaml.")
    else:
        print("models found:")
    # Each column as wide as its longest entry (DA3 Mono/Metric Large, gguf-Q4_K_M ...) and two spaces more, so a
    # long variant never runs into the role beside it.
    rows = [(d["family"], d["variant"] or "-", d["role"] or "-", d["precision"] or "-", d["loads"], str(path), kind, d)
            for kind, path, d in found]
    widths = [max([w] + [len(r[i]) + 2 for r in rows]) for i, w in enumerate((12, 16, 17, 14, 7))]
    if found:
        print("  " + "".join(f"{h:<{w}}" for h, w in zip(("family", "variant", "role", "precision", "loads"), widths))
              + "path")
    for *cells, path, kind, d in rows:
        print("  " + "".join(f"{c:<{w}}" for c, w in zip(cells, widths)) + path)
        # An IP-Adapter's columns cannot say plus from full face, nor which CLIP vision it reads; sound models, model
        # patches, an embedding and a stored prompt are read by no loader: their notes say by what; Gemma 4's says
        # whether it reads a picture and hears a sound.
        if d["note"] and (d["loads"] != "yes" or d["role"] in ("ipadapter", "embedding", "conditioning", "model_patch")
                          or (d["family"], d["variant"]) in READ_BY_NODE or d["family"] == "gemma4"):
            print(f"  {'':<{sum(widths[:4])}}({d['note']})")
        # A VAE or a model patch in another kind's folder loads by its content, but its loader never looks there
        home = {"vae": "vae", "model_patch": "model_patches"}.get(d["role"])
        if home and kind != home:
            print(f"  {'':<{sum(widths[:4])}}({LOADED_BY[home]} looks in {home}/, not {kind}/: move it into "
                  f"{locator(home).folder()})")
    bundled = resource("models", "kinograph-mini")
    if (bundled / "model_index.json").is_file():
        print(f"bundled model: kinograph-mini (load.mini, no download) in {bundled}")
    new = [f for f in named if model_dir(str(f)) not in searched_before]
    if new:
        print(f"to search {'these folders' if len(new) > 1 else 'this folder'} in every run: export "
              f"KINOGRAPH_MODELS={os.pathsep.join(str(f) for f in new)} (or list "
              f"{'them' if len(new) > 1 else 'it'} under model_dirs: in {config.config_dir() / 'config.yaml'})")
    return EXIT_OK


def cmd_cache(args) -> int:
    from graph_engine import config
    from graph_engine.cache import DiskCache
    from graph_engine.partial import Partials
    disk = DiskCache(config.cache_dir() / "results", config.disk_cache_cap())
    partials = Partials(config.cache_dir() / "partial")
    if args.action == "clear":
        n, why = disk.clear()
        print(f"removed {n} cached results from {disk.root}")
        left = disk.entries()
        if left and why:
            print(f"kinograph cache clear: {len(left)} cached result(s) ({_size(sum(e['bytes'] for e in left))}) could "
                  f"not be removed from {disk.root} ({why}): a read-only or another user's cache folder; "
                  f"clear it as its owner, or point --cache-dir (KINOGRAPH_CACHE_DIR) at a folder of your own",
                  file=sys.stderr)
        freed = partials.clear()
        if freed:
            print(f"removed {_size(freed)} of sampling work in progress that stopped runs left in {partials.root}")
        # Frames an editor session kept, or a run spilled, that a crash or a kill left behind (a live one holds its own).
        from graph_engine.atomic import remove_abandoned
        from graph_engine.keep import KEEP_FOLDER
        from graph_engine.spill import RUN_FOLDER
        freed = (remove_abandoned(config.cache_dir() / "frames", KEEP_FOLDER)
                 + remove_abandoned(config.cache_dir() / "spill", RUN_FOLDER))
        if freed:
            print(f"removed {_size(freed)} of frames that killed runs and editor sessions left in {config.cache_dir()}")
        from .shard import remove_abandoned_shards, shards_root
        freed = remove_abandoned_shards()
        if freed:
            print(f"removed {_size(freed)} of shards that killed sharded renders left in {shards_root()}")
        others = disk.others()
        if others:
            print(f"left {len(others)} other item(s) there, not Kinograph's: {', '.join(others[:5])}"
                  f"{' ...' if len(others) > 5 else ''}")
        return EXIT_FAIL if left and why else EXIT_OK
    entries = disk.entries()
    print(f"{disk.root}: {len(entries)} results, {_size(sum(e['bytes'] for e in entries))} "
          f"(cap {_size(disk.cap)}; least recently used go first)")
    by_type = {}
    for e in entries:
        n, b = by_type.get(e["type"], (0, 0))
        by_type[e["type"]] = (n + 1, b + e["bytes"])
    for t, (n, b) in sorted(by_type.items(), key=lambda kv: -kv[1][1]):
        print(f"  {t:<28}{n:>5} results {_size(b):>10}")
    n, b = partials.usage()
    if n:
        print(f"{partials.root}: {n} sampling run(s) that stopped, {_size(b)} (the next run with the same inputs "
              f"takes up from there; the {partials.keep} most recent are kept)")
    return EXIT_OK


def cmd_gui(args) -> int:
    try:
        from .editor.main import run_editor
    except ImportError as e:
        from graph_engine.errors import KinographError
        raise KinographError(f"the editor cannot start: {e} (is PySide6 installed? `make gui` sets it up)")
    return run_editor(args.workflow, screenshot=args.screenshot)


def cmd_batch(args) -> int:
    from .batch import run_batch
    from .old_temporaries import sweep_old_metadata
    sweep_old_metadata()
    return run_batch(args)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "nodes": cmd_nodes, "info": cmd_info, "cache": cmd_cache,
            "gui": cmd_gui, "batch": cmd_batch, "import": cmd_import}

if __name__ == "__main__":
    raise SystemExit(main())
