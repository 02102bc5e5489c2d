"""Where a workflow may write, checked before anything runs.

A workflow file can come from anyone (a download, a video someone sent), so its output paths
are confined: by default they must resolve inside the workflow's own folder or the configured
output folder (`config.output_dir()`), not start with `~`, not go through hidden (dot) folders
and not land in Kinograph's own folders. `--allow-outside` (config.allow_outside) lifts that.
Two rules always hold: an output never names one of the workflow's own inputs (or the
workflow file), and an existing file is replaced only if Kinograph wrote it or the node says
`overwrite: true` (graph_engine.atomic applies the same rule again when writing)."""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from .default_outputs import own_default
from .takes import TAKES
from .workflow import Problem, Workflow


def resolve_path(value: str, base: Path, reads: bool = False) -> str:
    """A path param as the node sees it: `~` expanded, relative to the workflow's folder, Windows' backslashes
    as separators, and a name stored in another Unicode form (macOS) found as it is on disk; a file the node
    `reads` also in other letter case, as Windows finds it (graph_engine.portable)."""
    if not value:
        return value
    from .portable import native, on_disk, windows_root
    if windows_root(value):
        # Not a place here (validate says so); a model name is looked up from it as written (models_dirs).
        return value
    value = native(os.path.expanduser(value), base)
    return on_disk(value if os.path.isabs(value) else os.path.normpath(str(base / value)), fold_case=reads)


def is_output_param(p) -> bool:
    return p.kind == "path" and not p.reads


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _real(path: str) -> str:
    return os.path.realpath(path)


def folds_case(path: str) -> bool:
    """Whether the disk holding `path` takes names in other letter case for the same file (Windows, macOS, an SMB
    share) or tells them apart (Linux's own file systems): asked of the nearest existing part of the path with a
    letter in its name, found again with its case swapped. Without one, the platform's custom."""
    import sys
    cur = os.path.realpath(path)
    while True:
        name = os.path.basename(cur)
        if os.path.exists(cur) and name.swapcase() != name:
            swapped = os.path.join(os.path.dirname(cur), name.swapcase())
            try:
                return os.path.samefile(cur, swapped)
            except OSError:                 # no such file in the other case: case is told apart
                return False
        parent = os.path.dirname(cur)
        if parent == cur:
            return sys.platform in ("win32", "darwin")
        cur = parent


def same_file_key(path: str) -> str:
    """What two output paths naming one file have in common: the resolved path, in folded letter case where its
    disk does not tell case apart (out/Shot.mp4 and out/shot.mp4 are one file there, two on Linux)."""
    real = _real(path)
    return real.casefold() if folds_case(real) else real


def render_folder(graph, render: Path) -> Path:
    """The folder the workflow a render carries took its relative paths from, found from where the render
    is: out/default.mp4, written by examples/default.yaml as 'out/default.mp4', gives examples/ (an earlier
    take, out/takes/default.002.mp4, too). Taken from its own folder, the re-run wrote out/out/default.mp4,
    one folder deeper each time, and footage it read as '../footage/a.mp4' was not found. A render renamed
    or moved on its own gives its own folder."""
    from .takes import stable_name
    parts = stable_name(Path(render)).parts
    for inst in graph.nodes.values():
        for v in inst.params.values():
            if not isinstance(v, str) or not v.strip() or v.strip().startswith("~") or os.path.isabs(v):
                continue
            # Written on Windows (out\\shot.mp4), it names the same place as out/shot.mp4.
            rel = Path(os.path.normpath(v.replace("\\", "/") if os.sep == "/" else v)).parts
            if ".." not in rel and len(rel) < len(parts) and parts[-len(rel):] == rel:
                return Path(*parts[:-len(rel)])
    return Path(render).parent


def render_home(wf: Workflow) -> Optional[Path]:
    """For a workflow read from a render: the render's folder (of its stable name, for an earlier take),
    where its outputs may go without --allow-outside. Its relative paths resolve from render_folder, which
    may be further up; outputs are not let out of the folder the render was found in on that account."""
    from .workflow import rendered_from
    render = rendered_from(wf.path) if wf.render_base is not None else None
    if render is None:
        return None
    from .takes import stable_name
    return stable_name(render).parent


def _nameable(value) -> bool:
    """Whether a path param's value can name a file to check: text, not blank, without a NUL (refused as the
    param's problem; every os call raises ValueError on one, which stopped validate, run and import in a
    traceback)."""
    return isinstance(value, str) and bool(value.strip()) and "\0" not in value


def planned_outputs(wf: Workflow, specs: Dict) -> List[Tuple[str, str, str, str]]:
    """(node, param, value as written, resolved path) of every output path the nodes will write."""
    out = []
    for nid, spec in specs.items():
        inst = wf.graph.nodes[nid]
        if inst.bypass:
            continue
        for name, p in spec.params.items():
            if not is_output_param(p):
                continue
            # What the run writes: the workflow file's own default where the node leaves its path out (a
            # workflow checked before its run, or in the editor, named out/video.mp4, which it never writes)
            value = inst.params[name] if name in inst.params else own_default(wf, p)
            if _nameable(value):
                path = resolve_path(value, wf.base_dir)
                out.append((nid, name, value, path))
                out += [(nid, name, str(Path(value).with_suffix(x)), str(Path(path).with_suffix(x))) for x in p.beside
                        if Path(path).suffix.lower() != x]
    return out


def _inputs(wf: Workflow, registry) -> List[Tuple[str, str]]:
    """(real path, what reads it) for the workflow file and every file or folder a node reads."""
    # A render's workflow was read before the run: re-running it writes its new take at the render's own
    # name, and the render it came from is kept as an earlier take (graph_engine.takes).
    found = [(_real(str(wf.path)), "the workflow file")] if wf.path and wf.render_base is None else []
    for nid, inst in wf.graph.nodes.items():
        spec = registry.get(inst.type)
        if spec is None:
            continue
        for name, p in spec.params.items():
            value = inst.params.get(name, p.default)
            if p.kind == "path" and p.reads and _nameable(value):
                path = resolve_path(value, wf.base_dir, True)   # as the node will read it
                # a pattern stands for its folder; a file whose own name has brackets ("shot [1].png") is that file
                if glob.has_magic(path) and not os.path.exists(path):
                    path = os.path.dirname(path.split("*")[0].split("?")[0].split("[")[0]) or "."
                found.append((_real(path), f"{nid}.{name}"))
    return found


def allowed_roots(wf: Workflow) -> List[str]:
    from .config import output_dir
    return [_real(str(render_home(wf) or wf.base_dir)), _real(str(output_dir()))]


def _confinement(value: str, real: str, roots: Iterable[str]) -> Optional[str]:
    from .config import config_dir
    from .registry import user_nodes_dir
    if value.strip().startswith("~"):
        return "starts with ~ (your home folder)"
    for special, what in ((_real(str(user_nodes_dir())), "Kinograph's user nodes folder"),
                          (_real(str(config_dir())), "Kinograph's configuration folder")):
        if _within(real, special):
            return f"is inside {what} ({special})"
    root = next((r for r in roots if _within(real, r)), None)
    if root is None:
        return f"resolves to {real}, outside the workflow's folder and the output folder ({', '.join(roots)})"
    if any(part.startswith(".") for part in Path(os.path.relpath(real, root)).parts if part != "."):
        return f"resolves to {real}, a hidden (dot) file or folder"
    return None


def _replaces_foreign(wf: Workflow, nid: str, path: str) -> bool:
    """The file's own `overwrite: true` would replace something Kinograph did not write."""
    from .atomic import refusal, written_by_kinograph
    if wf.graph.nodes[nid].params.get("overwrite", False) is not True or (nid, "overwrite") in wf.user_set:
        return False
    if os.path.isdir(path):
        return not written_by_kinograph(path) and any(True for _ in os.scandir(path))
    return os.path.exists(path) and refusal(path) is not None


# Bytes kept free in an output's name for an earlier take's number (shot.mp4 -> takes/shot.002.mp4), and in its
# path for the takes folder or a frame's name inside a frames folder.
TAKE_ROOM = 8
FRAME_ROOM = 64
FOREIGN = "replaces a file Kinograph did not write (the workflow says overwrite: true)"


def outside_paths(wf: Workflow, registry, specs: Optional[Dict] = None) -> List[Tuple[str, str, str, str]]:
    """The planned outputs that need the user's word, with the reason: (node, param, path, why):
    outside the confinement, or replacing foreign files because the file says `overwrite: true`.
    The editor lists these in its confirmation dialog."""
    if specs is None:
        specs = {nid: registry.get(i.type) for nid, i in wf.graph.nodes.items() if registry.get(i.type)}
    roots = allowed_roots(wf)
    out = []
    for nid, name, value, path in planned_outputs(wf, specs):
        if too_long(path):          # validate names it; asking the file system about it raises
            continue
        why = _confinement(value, _real(path), roots) if (nid, name) not in wf.user_set else None
        if why or _replaces_foreign(wf, nid, path):
            out.append((nid, name, path, why or FOREIGN))
    return out


def output_problems(wf: Workflow, registry, specs: Dict) -> List[Problem]:
    """Located problems of the output paths of the nodes in `specs` (already type-checked)."""
    from .atomic import refusal
    from .config import allow_outside
    problems = []
    allow = wf.allow_outside if wf.allow_outside is not None else allow_outside()
    inputs = _inputs(wf, registry)
    roots = allowed_roots(wf)
    from .workflow import rendered_from
    render = rendered_from(wf.path) if wf.render_base is not None else None
    render = _real(str(render)) if render is not None else None
    named: Dict[str, Tuple[str, str]] = {}      # the file (letter case folded) -> the node and param writing it
    for nid, name, value, path in planned_outputs(wf, specs):
        def refuse(msg):
            problems.append(wf.problem(f"output {name!r} {msg}", "nodes", nid, "params", name, node=nid))

        long = too_long(path)
        if long:
            refuse(f"({value[:60]}{'...' * (len(value) > 60)}) {long}")
            continue
        real = _real(path)
        # A save node copied with its path: both wrote the file, the run said so twice and the first render was
        # only an earlier take of the second. Letter case folded where the disk folds it (same_file_key).
        first = named.setdefault(same_file_key(real), (nid, name))
        if first != (nid, name):
            refuse(f"({value}): {first[0]}.{first[1]} writes it too, and one would replace the other: give each "
                   f"its own path")
            continue

        if not allow and (nid, name) not in wf.user_set:
            why = _confinement(value, real, roots)
            if why:
                refuse(f"({value}) {why}. Outputs of a workflow stay in its folder or the output folder "
                       f"unless you run it with --allow-outside (or confirm in the editor)")
                continue
        if os.path.basename(os.path.normpath(path)) == TAKES:
            # Every output's earlier takes go into the folder named so beside it (graph_engine.takes).
            refuse(f"({value}) is named '{TAKES}', the folder that keeps the earlier takes of the outputs beside "
                   f"it: choose another name")
            continue
        clash = next(((ip, who) for ip, who in inputs
                      if real == ip or _within(ip, real) or (os.path.isdir(ip) and _within(real, ip))), None)
        if clash:
            refuse(f"({value}) would write over {clash[0]}, which this workflow reads ({clash[1]}): "
                   f"choose another path")
            continue
        if render is not None and real != render and _within(render, real):
            # A workflow file's own folder is refused as an input above; a render's is not (its re-run writes
            # at its own name), so a video someone sent filled ~/Downloads with frames and marked it as ours.
            refuse(f"({value}) is a folder holding {render}, the render this workflow was read from: frames "
                   f"written there mix with your files; choose a folder of its own, such as out/frames")
            continue
        if not allow and _replaces_foreign(wf, nid, path):
            # `overwrite: true` counts when the user says it, not when a received file does.
            refuse(f"({value}) {FOREIGN}: confirm with --set {nid}.overwrite=true (or --allow-outside, "
                   f"or in the editor)")
            continue
        overwrite = wf.graph.nodes[nid].params.get("overwrite", False) is True
        # A frames folder's own files are judged as it fills them; a folder at a file's name stops the writer.
        why = None if os.path.isdir(path) and specs[nid].params[name].folder else refusal(path, overwrite)
        why = why or _unwritable(path)
        if why:
            refuse(f"cannot be written: {why}")
    return problems


def too_long(path: str) -> Optional[str]:
    """Why the file system cannot hold `path`: a name past its NAME_MAX bytes, or the whole past PATH_MAX, less
    the room a take's number (shot.002.mp4) or a frame's name takes. Such a path passed validate, and the writer
    failed with 'File name too long' once every node before it had run (a generation's hours); past PATH_MAX
    validate and run stopped in a traceback."""
    folder = os.path.dirname(path)
    while folder and not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        name_max, path_max = os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):      # Windows has no pathconf; its limits are these or larger
        name_max, path_max = 255, 4096
    *folders, name = Path(path).parts
    # Only the output's own name gets a take's number: a folder above it (one that exists, even) may use them all.
    folder = next((part for part in folders if len(os.fsencode(part)) > name_max), None)
    if folder is not None:
        return (f"has a folder name of {len(os.fsencode(folder)):,} bytes ({folder[:40]}...); names here hold at "
                f"most {name_max}: choose a shorter name")
    if len(os.fsencode(name)) > name_max - TAKE_ROOM:
        return (f"has a name of {len(os.fsencode(name)):,} bytes ({name[:40]}...); names here hold at most "
                f"{name_max} and Kinograph keeps {TAKE_ROOM} for a take's number: choose a shorter name")
    if len(os.fsencode(path)) > path_max - FRAME_ROOM:
        return (f"is {len(os.fsencode(path)):,} bytes long as a path; paths here hold at most {path_max} and "
                f"Kinograph keeps {FRAME_ROOM} for the takes folder and frame names: choose a shorter path")
    return None


def _unwritable(path: str) -> Optional[str]:
    """Why the folder an output goes into (a frames folder itself) takes no files: found only when the
    writer ran, after every node upstream of it (a long generation) had done its work. A folder still to
    be made is judged by the nearest one that exists, where it would be made: renders/v003/ on a read-only
    share passed, and the render failed at its end with 'cannot write into ...: Read-only file system'."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    while folder and not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder) or os.access(folder, os.W_OK | os.X_OK):
        return None
    try:
        readonly = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        readonly = False
    what = "is on a read-only filesystem" if readonly else "is not writable for this user"
    return f"the folder {folder} {what}: choose another folder"
