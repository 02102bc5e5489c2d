"""A document: one workflow graph, where it lives on disk, and its undo history.

Saving writes the same YAML as the CLI (layout under `ui:`) through QSaveFile, so the file
on disk is always either the old one or the complete new one."""
from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from PySide6.QtCore import QObject, QSaveFile, Signal
from PySide6.QtGui import QUndoStack

from graph_engine.atomic import read_only, read_plain
from graph_engine.config import output_dir
from graph_engine.errors import WorkflowError
from graph_engine.free_space import short_of
from graph_engine.graph import Event, Graph
from graph_engine.registry import default_registry
from graph_engine.validate import missing_inputs, missing_models, validate
from graph_engine.versions import keep_previous
from nodes.common.models_dirs import model_dirs, one_look
from graph_engine.workflow import (MAX_YAML_BYTES, Problem, Workflow, decode_text, load_yaml_with_lines,
                                   parse_workflow, read_text, to_yaml, workflow_bytes)

from .commands import GraphCommand
from .geometry import node_size
from .layout import auto_layout
from . import ops
from .ops import Op, SetParam


def write_atomic(path: Path, data: bytes) -> None:
    """All of `data` under `path`, or the previous file untouched (QSaveFile renames on commit)."""
    f = QSaveFile(str(path))
    if not f.open(QSaveFile.WriteOnly):
        raise OSError(f"cannot write {path}: {_why(f, path, data)}")
    if f.write(data) != len(data):
        f.cancelWriting()
        f.commit()
        raise OSError(f"cannot write {path}: {_why(f, path, data)}")
    if not f.commit():
        raise OSError(f"cannot save {path}: {_why(f, path, data)}")


def _why(f: QSaveFile, path: Path, data: bytes) -> str:
    """What stopped the write, in words: QSaveFile says 'Unknown error' for a full disk, and 'No such file
    or directory' for a folder that is gone (a drive unplugged)."""
    folder = Path(path).parent
    if not folder.is_dir():
        return f"the folder {folder} is not there any more (a drive unplugged, or the folder moved or deleted)"
    if short_of(folder, len(data) + (64 << 10)):
        return f"the disk holding {folder} is full"
    if not os.access(folder, os.W_OK):      # QSaveFile says 'Permission denied', naming neither what nor where
        return (f"the folder {folder} cannot be written by this user (a read-only drive or network share, or "
                f"another user's folder)")
    return f.errorString()


class Document(QObject):
    changed = Signal(object)            # the graph Event, after the model changed
    modifiedChanged = Signal(bool)
    pathChanged = Signal(object)

    def __init__(self, graph: Optional[Graph] = None, path: Optional[Path] = None, registry=None,
                 problems: Sequence[Problem] = (), checked: Sequence[Problem] = ()):
        super().__init__()
        self.registry = registry or default_registry()
        self.graph = graph if graph is not None else Graph()
        self.path = Path(path).resolve() if path else None
        self.origin: Optional[Path] = None          # the rendered file a workflow was read from
        self.saved_view: Optional[tuple] = None     # (x, y, zoom) of the top left it was left at (and a ComfyUI file's canvas size)
        # Where that render's workflow takes relative paths from, found when it was read (Workflow.render_dir):
        # editing its output path must not move its outputs into the render's folder.
        self.render_dir: Optional[Path] = None
        # ComfyUI draws a 'randomize' seed after a run, so an imported file's seeds made its picture: the editor, which
        # draws before a run, keeps them for the first one (comfyui_open.to_document sets this)
        self.seeds_as_read = False
        self._found_in_file(problems, checked)
        self.on_disk: Optional[str] = None          # digest of the file as read or last written here
        # What the file at `path` holds that the graph does not (parse problems marked dropped):
        # saving over it would remove them, so the window asks first. Empty once a save wrote it.
        self.unread: List[Problem] = [p for p in problems if p.dropped]
        self.version_problem: Optional[str] = None  # why the last save kept no copy of what it replaced
        self.revision = 0
        self.undo = QUndoStack(self)
        # A bound slot, not a lambda: Qt drops it with the document, so the undo stack's last
        # cleanChanged while both are torn down at quit reaches no half-deleted signal.
        self.undo.cleanChanged.connect(self._clean_changed)
        self._unsubscribe = self.graph.subscribe(self._on_event)

    def _found_in_file(self, problems, checked) -> None:
        """What reading the file found: `problems`, those of them `checked` by validating the graph as read (true of
        the graph then, not necessarily now: Document.still_found)."""
        self.problems: List[Problem] = list(problems)
        self.checked: List[Problem] = list(checked)
        self._read_as = {n: self._state(n) for n in {p.node for p in self.checked} if n in self.graph.nodes}

    # -- model ------------------------------------------------------------------------------
    def _clean_changed(self, clean: bool) -> None:
        self.modifiedChanged.emit(not clean)

    def _on_event(self, ev: Event) -> None:
        self.revision += 1
        self.changed.emit(ev)

    def push(self, text: str, operations: Sequence[Op], gesture: Optional[object] = None) -> GraphCommand:
        """The only way the editor changes the graph: one undo step that runs `operations` now."""
        cmd = GraphCommand(self.graph, text, operations, gesture)
        self.undo.push(cmd)
        return cmd

    def still_found(self, node_id: str) -> List[Problem]:
        """The problems of `node_id` found when the workflow was read, less those that validating it now does
        not find: the field set right still had the red 'out of range' under it until the file was reopened."""
        mine = [p for p in self.problems if p.node == node_id]
        if not any(p in self.checked for p in mine) or self._state(node_id) == self._read_as.get(node_id):
            return mine                     # untouched since: no validating (it looks for model files)
        now = {p.message for p in validate(self.workflow, self.registry, only=[node_id]) if p.node == node_id}
        return [p for p in mine if p not in self.checked or p.message in now]

    def _state(self, node_id: str):
        inst = self.graph.nodes.get(node_id)
        return inst and (inst.type, repr(sorted(inst.params.items())), inst.bypass,
                         sorted(self.graph.inputs.get(node_id, {}).items()))

    def spec(self, node_id: str):
        inst = self.graph.nodes.get(node_id)
        return self.registry.get(inst.type) if inst else None

    @property
    def workflow(self) -> Workflow:
        # A document never read from a file holds only paths the user typed (app/editor/outside.py).
        return self.workflow_of(self.graph, True if (self.path or self.origin) is None else None)

    def workflow_of(self, graph: Graph, allow_outside: Optional[bool] = None) -> Workflow:
        """`graph` as this document's workflow: relative paths resolve beside its file, or the render
        it was read from; an untitled one's in the output folder. They resolved in the folder the
        editor was started from: out/video.mp4 of a first graph landed in the home folder of a
        desktop launcher, or wherever the terminal was, and the log did not say where."""
        base = self.path or self.origin
        return Workflow(graph, base, allow_outside=allow_outside, folder=None if base else output_dir(),
                        render_dir=None if self.path else self.render_dir)

    @property
    def modified(self) -> bool:
        return not self.undo.isClean()

    @property
    def title(self) -> str:
        # An imported ComfyUI file (or a render's workflow) read 'untitled' in the window's title, in 'Save changes
        # to untitled?' and in the queue: the artist had opened a file by name.
        if self.path is None and self.origin is not None:
            return f"{self.origin.stem} (unsaved)"
        return self.path.name if self.path else "untitled"

    def validate(self) -> List[Problem]:
        with one_look():
            return validate(self.workflow, self.registry)

    def missing_models(self, only=None):
        """node -> param -> its model file that is not there, and where it goes (validate.missing_models, the check
        `kinograph validate` makes), or its footage or picture that is not there (validate.missing_inputs, as the
        run's check finds it), of the nodes in `only` or all: the import report said it, and once it was closed
        nothing did; a Load Video whose plate was not there was marked nowhere, the run refused for it."""
        from app.precheck import comfyui_inputs
        wf = self.workflow
        with one_look():
            found = missing_models(wf, self.registry, only=only)
            for nid, params in missing_inputs(wf, self.registry, comfyui_inputs(model_dirs()), only=only).items():
                found.setdefault(nid, {}).update(params)
        return found

    def run_graph(self, targets=None) -> Graph:
        """What a run of `targets` (node ids; default all) takes: only what they need, so a half-wired node
        elsewhere in the graph does not stop it."""
        g = self.graph
        return g.subgraph(g.ancestors(targets)) if targets else g.copy()

    def missing_files(self, targets=None, allow_outside: Optional[bool] = None) -> List[Problem]:
        """The model, footage and picture files a run of `targets` would read that are not there: the check
        `kinograph run` makes before any node runs (app.precheck). The editor's run went on without it, rendered
        the first loader's part for minutes and stopped at the second loader."""
        from app.precheck import missing_files
        with one_look():
            return missing_files(self.workflow_of(self.run_graph(targets), allow_outside), self.registry)

    def text(self, path: Optional[Path] = None, graph: Optional[Graph] = None) -> str:
        """The YAML of the workflow file at `path` (default: its own); file paths near it are
        written relative to it, so a project folder can be moved or shared and still finds its
        clips and renders."""
        path = path or self.path
        graph = graph or self.graph
        g = relative_paths(graph, self.registry, path.parent) if path is not None else graph
        return to_yaml(g, self.registry)

    def reads_from(self) -> Optional[Path]:
        """The folder the workflow's relative input paths are read from (None: untitled)."""
        base = self.path or self.origin
        if base is None:
            return None
        return self.render_dir if self.path is None and self.render_dir else base.parent

    def _follow_inputs(self, target: Path) -> List[Op]:
        """Saved into another folder, a relative path to a file the workflow reads would name a file
        beside the new one: these make each existing one absolute again (the file writes it
        relative to its new place). Outputs stay relative: they go beside the workflow, as before."""
        folder = self.reads_from()
        if folder is None or folder == target.parent:
            return []
        return absolute_inputs(self.graph, self.registry, folder)

    def close(self) -> None:
        self._unsubscribe()
        # The stack's commands go now, while all of it is alive. Left to Python's cycle collector (the
        # document, its stack and the commands' graph hold each other), shiboken may clear a command's
        # wrapper first and give it the C++ command its stack still lists (PYSIDE-2221): ~QUndoStack then
        # deleted it again, a segfault at a later gc pass or at quit. Blocked: the window now showing
        # another document is still connected to this stack's canUndoChanged and the like.
        self.undo.blockSignals(True)
        self.undo.clear()

    # -- files ------------------------------------------------------------------------------
    def save(self, path: Optional[Path] = None) -> Path:
        target = Path(path).resolve() if path else self.path
        if target is None:
            raise ValueError("the document has no file yet; choose one with Save As")
        follow = self._follow_inputs(target)
        moved_graph = None
        if follow:
            moved_graph = self.graph.copy()
            for op in self._follow_inputs(target):
                op.do(moved_graph)
        data = self.text(target, moved_graph).encode("utf-8")
        why = read_only(target)      # refused by QSaveFile too, but not for root (and said as 'not writable')
        if why:
            raise OSError(why)
        self.version_problem = keep_previous(target, data)
        write_atomic(target, data)
        if follow:           # one undo step, so the open workflow reads the same files as the one saved
            self.push("Keep input paths after Save As", follow)
        self.on_disk = _digest(data)
        self.unread = []
        moved = target != self.path
        self.path = target
        self.undo.setClean()
        if moved:
            self.pathChanged.emit(target)
        return target

    def restore(self, text: str, label: str) -> List[Problem]:
        """Replace the graph with the workflow in `text` (an earlier version of this file) as one undo
        step: Undo brings back what was open, and nothing is written until Save. Returns what could
        not be read from it; a text that yields no graph at all raises WorkflowError."""
        return self._replace(Document.from_text(text, self.path, self.registry), label).problems

    def _replace(self, other: "Document", label: str) -> "Document":
        """The graph of `other` (a document read from a text, closed here) in place of this one's, as one undo step."""
        new = other.graph
        other.close()
        todo: List[Op] = [ops.RemoveNode(n) for n in list(self.graph.nodes)]
        # Groups, notes, reroutes and the view: those only the current graph has are cleared too.
        todo += [ops.SetUi(k, new.ui.get(k)) for k in sorted(set(self.graph.ui) | set(new.ui)) if k.startswith("_")]
        for nid, inst in new.nodes.items():
            todo.append(ops.AddNode(inst.type, nid, inst.params, inst.version, new.ui.get(nid), inst.bypass,
                                    inst.title))
        todo += [ops.Connect(l.src, l.src_port, l.dst, l.dst_port) for l in new.links()]
        todo.append(ops.SetMeta(new.name, new.description))
        self.push(label, todo)
        return other

    def changed_on_disk(self) -> bool:
        """True when the file this document came from now holds something else than what was
        read or last saved here (another editor, another window, a git pull): saving would
        overwrite that silently. A file gone or unreadable is not 'changed': saving loses nothing."""
        now = self.digest_on_disk()
        return now is not None and now != self.on_disk

    def digest_on_disk(self) -> Optional[str]:
        """The digest of what the file holds now; None for no file, or one gone or unreadable."""
        if self.path is None or self.on_disk is None:
            return None
        try:
            # As far as a workflow is read (a longer one is told of by read_again): a file swapped for a named pipe
            # waited here for ever, a link to /dev/zero filled the memory
            return _digest(read_plain(self.path, MAX_YAML_BYTES))
        except OSError:
            return None

    def read_again(self) -> List[Problem]:
        """The file as another program saved it, in place of the graph: one undo step (Undo brings back what was
        open), and the document is then what is on disk (unmodified; Save replaces it without asking). Returns what
        could not be read; raises WorkflowError or OSError where nothing could."""
        data = workflow_bytes(self.path)
        read = self._replace(Document.from_text(decode_text(data, str(self.path)), self.path, self.registry),
                             f"Read {self.path.name} again as saved elsewhere")
        problems = read.problems
        # Its problems are the file's now: the panel showed those of the first read under the nodes (a typo the other
        # program made nowhere, one it fixed until the file was reopened).
        self._found_in_file(problems, read.checked)
        self.on_disk = _digest(data)
        self.unread = [p for p in problems if p.dropped]
        self.undo.setClean()
        return problems

    @classmethod
    def from_text(cls, text: str, path: Optional[Path] = None, registry=None) -> "Document":
        """A document from workflow YAML; located problems are kept in `.problems` for the log,
        and only a text that yields no graph at all is refused."""
        reg = registry or default_registry()
        wf, problems, checked = read_workflow(text, path, reg)
        return cls(wf.graph, wf.path, reg, problems, checked)

    @classmethod
    def load(cls, path: Path, registry=None) -> "Document":
        """From a .yaml, or from a rendered video/PNG carrying its workflow (which then has no
        file of its own: saving asks where)."""
        path = Path(path).resolve()
        text = read_text(path)
        doc = cls.from_text(text, path, registry)
        if path.suffix.lower() not in (".yaml", ".yml"):
            doc.path = None
            doc.origin = path
            doc.render_dir = doc.workflow.render_base
            # Its seeds made this render: its first run keeps them, as an imported ComfyUI file's does (a random
            # seed was drawn anew, and the render opened to be made again came out another picture)
            doc.seeds_as_read = True
        else:
            # The bytes, not the text: reading turns CRLF into LF, and a CRLF file would then
            # always look changed on disk.
            try:
                doc.on_disk = _digest(path.read_bytes())
            except OSError:
                doc.on_disk = None
        return doc


def absolute_inputs(graph: Graph, registry, folder: Path, node_ids: Optional[Sequence[str]] = None) -> List[Op]:
    """Edits that make each relative path to an existing file the nodes read (of `node_ids`, default
    all) absolute, read from `folder`: the workflow they go to (Save As, a paste into another
    window) reads them from elsewhere. Outputs stay relative: they go beside that workflow."""
    todo: List[Op] = []
    for nid in (graph.nodes if node_ids is None else node_ids):
        inst = graph.nodes.get(nid)
        spec = registry.get(inst.type) if inst else None
        for name, p in (spec.params.items() if spec else ()):
            v = inst.params.get(name)
            if p.kind != "path" or not p.reads or not isinstance(v, str) or not v or os.path.isabs(v) \
                    or v.startswith("~"):
                continue
            old = os.path.normpath(folder / v)
            if os.path.exists(old) or (glob.has_magic(v) and glob.glob(old)):
                todo.append(SetParam(nid, name, old))     # model names found elsewhere stay
    return todo


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def relative_paths(graph: Graph, registry, base: Path) -> Graph:
    """A copy of `graph` with absolute `path` parameters under `base` (or its parent folder, the
    usual project layout: workflows/ beside footage/ and out/) made relative to `base`."""
    out = graph.copy()
    for nid, inst in out.nodes.items():
        spec = registry.get(inst.type)
        for name, p in (spec.params.items() if spec else ()):
            v = inst.params.get(name)
            if p.kind != "path" or not isinstance(v, str) or not os.path.isabs(v):
                continue
            try:
                rel = os.path.relpath(v, base)
            except ValueError:          # another drive on Windows
                continue
            if not rel.startswith(os.path.join("..", "..")):
                inst.params[name] = Path(rel).as_posix()
    return out


def read_workflow(text: str, path: Optional[Path], registry) -> Tuple[Workflow, List[Problem], List[Problem]]:
    """What Document.from_text makes a document of, with no Qt object (a ComfyUI import reads it on a
    worker thread: validating a big template looks for every model file it names): the workflow, all
    its problems, and those of them that validation found (an edit may end them)."""
    wf, problems = parse_workflow(text, Path(path).resolve() if path else None, registry)
    if problems and not wf.graph.nodes and not _empty_but_valid(text):
        raise WorkflowError(problems)
    problems += usable_layout(wf)
    place_unplaced(wf.graph, registry)
    checked = [p for p in validate(wf, registry) if p not in problems]
    return wf, problems + checked, checked


def _empty_but_valid(text: str) -> bool:
    import yaml
    try:
        data = load_yaml_with_lines(text)[0]      # screened: an alias bomb is refused, not expanded
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and data.get("kinograph") == 1 and data.get("nodes") in ({}, None)


# The farthest coordinate or size the canvas draws, ten thousand screens across. NaN or infinity (YAML's .nan, .inf)
# as a node's position froze the editor as it opened the file, and a whole number of 400 digits stopped it with an
# OverflowError traceback where Qt took it as a float.
FARTHEST = 1e7


def _numbers(v, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                        and abs(x) <= FARTHEST for x in v)


def _text(v) -> bool:
    return isinstance(v, str)


# The layout the canvas draws: field -> (check, what it must be), per kind of entry.
_POS = (lambda v: _numbers(v, 2), "[x, y]")
_NODE_UI = {"pos": _POS, "collapsed": (lambda v: isinstance(v, bool), "true or false"),
            "seed": (lambda v: isinstance(v, dict) and all(map(_text, v.values())), "a mapping of parameter to mode")}
_ITEM_UI = {"_groups": {"rect": (lambda v: _numbers(v, 4), "[x, y, width, height]"), "title": (_text, "text"),
                        "color": (_text, "a colour such as '#3d5a80'")},
            "_notes": {"pos": _POS, "size": (lambda v: _numbers(v, 2), "[width, height]"), "text": (_text, "text")}}
_REQUIRED = {"_groups": "rect", "_notes": "pos"}


def _shape_problem(body: dict, fields: dict, required: Optional[str] = None) -> Optional[str]:
    if required and required not in body:
        return f"has no {required} {fields[required][1]}"
    return next((f"{f} {body[f]!r} is not {what}" for f, (ok, what) in fields.items() if f in body and not ok(body[f])),
                None)


def usable_layout(wf: Workflow) -> List[Problem]:
    """Drop from `wf.graph.ui` what the canvas cannot draw (a position written as text, a group
    without its rectangle: a hand-edited file, or a newer Kinograph's layout), so the workflow
    still opens; layout never changes what runs. Each entry left out is a problem marked dropped,
    so Save asks before writing the file without it."""
    g, out = wf.graph, []

    def drop(key: str, what: str, outcome: str, *where) -> None:
        out.append(wf.problem(f"layout of {key}: {what}; {outcome}", "ui", *where, dropped=True))

    for key in list(g.ui):
        body = g.ui[key]
        if key in g.nodes:
            if not isinstance(body, dict):
                drop(key, f"expected a mapping such as {{pos: [x, y]}}, got {body!r}", "the node is placed anew", key)
                del g.ui[key]
                continue
            for field, (ok, what) in _NODE_UI.items():
                if field in body and not ok(body[field]):
                    drop(key, f"{field} {body[field]!r} is not {what}", "left out", key, field)
                    del body[field]
        elif key in _ITEM_UI or key == "_reroutes":
            if not isinstance(body, dict):
                drop(key, f"expected a mapping, got {body!r}", "left out", key)
                del g.ui[key]
                continue
            for item in list(body):
                v = body[item]
                if key == "_reroutes":
                    bad = None if isinstance(v, list) and all(_numbers(p, 2) for p in v) else \
                        f"expected a list of [x, y] points, got {v!r}"
                else:
                    bad = f"expected a mapping, got {v!r}" if not isinstance(v, dict) else \
                        _shape_problem(v, _ITEM_UI[key], _REQUIRED[key])
                if bad:
                    drop(str(item), bad, "left out", key, item)
                    del body[item]
    return out


def place_unplaced(graph: Graph, registry) -> None:
    """Give nodes that a hand-written or generated file left without `pos` a layered layout,
    beside the ones that have one."""
    missing = [n for n in graph.nodes if not isinstance((graph.ui.get(n) or {}).get("pos"), list)]
    if not missing:
        return
    sizes = {n: node_size(registry.get(graph.nodes[n].type)) for n in missing}
    placed = [graph.ui[n]["pos"] for n in graph.nodes if n not in missing]
    origin = (max((p[0] for p in placed), default=-280.0) + 280.0, 0.0)
    links = [(l.src, l.dst) for l in graph.links()]
    for n, (x, y) in auto_layout(missing, links, sizes, origin).items():
        graph.set_ui(n, dict(graph.ui.get(n) or {}, pos=[round(x), round(y)]))
