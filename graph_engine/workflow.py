"""Workflow files: YAML, format version 1, safe loading only, canonical order on save.

    kinograph: 1
    name: ...
    nodes:
      load: {type: io.load_video, version: 1, params: {path: in.mp4}}
      save: {type: io.save_video, inputs: {video: load.video}, params: {path: out.mp4}}
    ui:
      load: {pos: [0, 0]}

Loading records the line of every key so problems point at `FILE:LINE`. A rendered
video or PNG that carries a workflow in its metadata loads like the YAML itself."""
from __future__ import annotations

import re

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from .atomic import read_only, read_plain
from .atomic import save_text as atomic_write_text
from .errors import NodeError, WorkflowError
from .graph import Graph, ID_RE

FORMAT_VERSION = 1
MEDIA_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".png", ".gif", ".webp", ".avi", ".exr"}
TOP_KEYS = ("kinograph", "name", "description", "nodes", "ui")
NODE_KEYS = ("type", "version", "title", "bypass", "inputs", "params")
# Far beyond any real workflow (a 2,000-node ComfyUI graph is about 1 MB), small enough to load at once.
MAX_YAML_BYTES = 16 << 20
MAX_DEPTH = 64
# Digits in a whole number: a seed, the longest a parameter takes, has 20; Python reads at most 4300.
MAX_DIGITS = 1000
# base 10, or YAML 1.1's base 60 (1:30), whose parts PyYAML reads with int() too
_DECIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])*")


UNSAVED = "<workflow>"       # the file of a workflow made in memory (an import, a paste): no line to open
STDIN = "<stdin>"            # of one piped in (`make_shot.py | kinograph run -`): its lines are the script's
NO_NODES_YET = "the workflow has no nodes yet"      # said of a file the editor saved blank (or with notes only)


@dataclass
class Problem:
    file: str
    line: int
    node: Optional[str]
    message: str
    # Part of the file that the graph does not hold (a node with a bad id, an unknown key): a file
    # written from the graph would not have it, so an editor saving over the file asks first.
    dropped: bool = False

    def __str__(self):
        # A workflow not read from a file (a ComfyUI import, a paste) has no file or line the reader can open: an
        # imported template's Log said '<workflow>:116: node …', a line of YAML made in memory.
        if self.file == UNSAVED:
            return f"node {self.node}: {self.message}" if self.node else self.message
        where = f"{self.file}:{self.line}:" if self.line else f"{self.file}:"
        return f"{where} node {self.node}: {self.message}" if self.node else f"{where} {self.message}"


def rendered_from(path: Optional[Path]) -> Optional[Path]:
    """The render a workflow is read from: the video or picture carrying it, or the frames folder whose
    workflow.yaml it is (run from there, out/frames/out/frames was written); None for a workflow file."""
    if path is None:
        return None
    if path.suffix.lower() in MEDIA_SUFFIXES:
        return path
    from .atomic import FRAMES_WORKFLOW, frames_marked
    return path.parent if path.name == FRAMES_WORKFLOW and frames_marked(path) else None


@dataclass
class Workflow:
    """A graph plus where it came from (for relative paths and located messages)."""
    graph: Graph
    path: Optional[Path] = None
    lines: Dict[Tuple, int] = field(default_factory=dict)
    # Outputs outside the workflow's folder and the output folder: None = as configured
    # (`--allow-outside`), True/False = decided by the caller (graph_engine.outputs).
    allow_outside: Optional[bool] = None
    # (node, param) values the user gave themselves (--set, `wf.set`): their output paths are
    # the user's own words, not the file's, so they are not confined.
    user_set: Set[Tuple[str, str]] = field(default_factory=set)
    # Where relative paths resolve when there is no file (the editor's untitled workflow gives the
    # output folder); None: the current folder, as for YAML text a script hands over.
    folder: Optional[Path] = None
    # A workflow read from a render: the folder its relative paths were written from, so a re-run writes
    # beside the render and not into out/out/, and finds the footage it read. Given, or found from the
    # graph the first time it is asked for (render_base); later edits do not move it.
    render_dir: Optional[Path] = None
    # What its problems name when there is no file (UNSAVED or STDIN).
    source: str = UNSAVED
    _looked: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def render_base(self) -> Optional[Path]:
        """`render_dir` for a workflow read from a render (graph_engine.outputs.render_folder), else None."""
        if self.render_dir is None and not self._looked and self.graph.nodes:
            self._looked = True
            render = rendered_from(self.path)
            if render is not None:
                from .outputs import render_folder
                self.render_dir = render_folder(self.graph, render)
        return self.render_dir

    @property
    def base_dir(self) -> Path:
        if self.render_base is not None:
            return self.render_dir
        return self.path.parent if self.path else (self.folder or Path.cwd())

    @property
    def label(self) -> str:
        return str(self.path) if self.path else self.source

    def line(self, *keys) -> int:
        for n in range(len(keys), 0, -1):
            if keys[:n] in self.lines:
                return self.lines[keys[:n]]
        return 0

    def problem(self, message: str, *keys, node: Optional[str] = None, dropped: bool = False) -> Problem:
        return Problem(self.label, self.line(*keys), node, message, dropped)


# -- loading -----------------------------------------------------------------------------------
def _loader_class():
    import yaml
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _walk_lines(root) -> Tuple[Dict[Tuple, int], List[Tuple[int, str]]]:
    import yaml
    lines: Dict[Tuple, int] = {}
    dups: List[Tuple[int, str]] = []

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
                if key in seen:
                    dups.append((k.start_mark.line + 1, ".".join(map(str, path + (key,)))))
                seen.add(key)
                lines[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    if root is not None:
        walk(root, ())
    return lines, dups


def _refuse(message: str, line: int = 0):
    import yaml
    err = yaml.constructor.ConstructorError(None, None, message, yaml.Mark("", 0, line, 0, None, None))
    err.refused = True      # valid YAML that Kinograph will not load (see screen_yaml)
    return err


def screen_yaml(text: str, aliases: bool = False) -> None:
    """Refuse, before building anything, what makes a small YAML file expensive or recursive:
    anchors and aliases (a 600-byte alias bomb expands to gigabytes; an alias can refer to
    itself) unless `aliases` (the caller counts what they write out), nesting deeper than MAX_DEPTH
    and text over MAX_YAML_BYTES. Raises a YAMLError with the line."""
    import yaml
    if len(text) > MAX_YAML_BYTES:
        raise _refuse(f"the file is {len(text) / 1e6:.1f} MB; a Kinograph YAML file is at most "
                      f"{MAX_YAML_BYTES >> 20} MB")
    loader = _loader_class()(text)
    depth = 0
    try:
        while loader.check_event():
            ev = loader.get_event()
            line = ev.start_mark.line if ev.start_mark else 0
            if not aliases and (isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None)):
                raise _refuse("anchors and aliases (&name, *name) are not allowed in Kinograph files: "
                              "write the value out where it is used", line)
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _refuse(f"nested more than {MAX_DEPTH} levels deep", line)
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(ev, yaml.ScalarEvent) and not ev.style and len(ev.value) > MAX_DIGITS and \
                    _DECIMAL.fullmatch(ev.value):
                # Python refuses to read a whole number this long (sys.get_int_max_str_digits), a traceback
                # from the YAML reader; no parameter takes one.
                raise _refuse(f"a number of {sum(c.isdigit() for c in ev.value):,} digits: Kinograph reads whole numbers of at most "
                              f"{MAX_DIGITS:,} digits (a seed has 20); the file is damaged or made to fail", line)
    finally:
        loader.dispose()


def load_yaml_with_lines(text: str):
    """Safe-load YAML once (LibYAML when present): (data, line of every key path, duplicate keys).
    Anchors, aliases, deep nesting and oversized text are refused first (screen_yaml)."""
    screen_yaml(text)
    loader = _loader_class()(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    lines, dups = _walk_lines(root)
    return data, lines, dups


# A value holding braces written bare in a {...} mapping: `params: {path: out/shot_{case}.mp4}`.
_BARE_BRACES = re.compile(r"([\w.\-]+):\s*([^\s,{}\"']*\{[^{}\s]+\}[^\s,{}\"']*)")


def bare_braces_hint(what: str, text: str, line: int) -> str:
    """What to add to YAML's "did not find expected ',' or '}'" when that line holds a value with braces (an output
    path's {case} or {NODE.PARAM}, written in the {...} style the examples use): the braces end the mapping, and
    the message named neither them nor the quotes that fix it. '' otherwise."""
    lines = text.splitlines()
    if "expected ',' or '}'" not in what or not 0 < line <= len(lines):
        return ""
    m = _BARE_BRACES.search(lines[line - 1])
    return (f"; {m.group(2)} holds braces, which end a {{...}} mapping: put it in quotes, "
            f"{m.group(1)}: \"{m.group(2)}\"") if m else ""


def parse_workflow(text: str, path: Optional[Path] = None, registry=None,
                   source: str = UNSAVED) -> Tuple[Workflow, List[Problem]]:
    """Build a graph from YAML text; structural problems are collected, not raised.

    Type-level checks (unknown node types, params, links) are `validate`'s job; this only
    needs the registry to run per-node-type migrations."""
    import yaml
    label = str(path) if path else source
    try:
        data, lines, dups = load_yaml_with_lines(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        prefix = "" if getattr(e, "refused", False) else "not valid YAML: "
        from .yaml_escapes import unicode_escape_hint
        refused_line = text.splitlines()[line - 1:line] if "Unicode" in what and line else []
        no_character = unicode_escape_hint(refused_line[0]) if refused_line else ""
        if no_character:
            what += f"; {no_character}"
        elif "escape" in what or "hexdecimal" in what:
            # "C:\Users\me" and "footage\shot01.mp4" in double quotes: a path written on Windows.
            from .portable import QUOTED_BACKSLASH
            what += f"; {QUOTED_BACKSLASH}"
        what += bare_braces_hint(what, text, line)
        return Workflow(Graph(), path, source=source), [Problem(label, line, None, prefix + what)]
    wf = Workflow(Graph(), path, lines, source=source)
    problems: List[Problem] = [Problem(label, l, None, f"duplicate key {k!r} (the later one would win)", True)
                               for l, k in dups]
    if not isinstance(data, dict):
        first = next((i for i, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")), 1)
        what = "empty" if data is None else f"a {type(data).__name__}"
        problems.append(Problem(label, first, None, f"the file is {what}; a workflow file must be a mapping with "
                                                    f"`kinograph: 1` and `nodes:`"))
        return wf, problems
    if not {"kinograph", "nodes"} & data.keys() and {"grid", "cases"} & data.keys():
        # examples/seeds.yaml given to run or validate was told it lacked `kinograph: 1`, that 'grid' was an unknown
        # key and that it had no nodes: three things to fix in a file that is right as it is.
        name = wf.path.name if wf.path is not None else "SWEEP.yaml"
        problems.append(wf.problem(f"this is a sweep file (its grid:/cases: are values for a workflow's parameters), "
                                   f"not a workflow: run it with `kinograph batch WORKFLOW.yaml --sweep {name}`"))
        return wf, problems
    fmt = data.get("kinograph")
    if fmt is None:
        problems.append(wf.problem("missing `kinograph: 1` (the format version) at the top"))
    elif not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        problems.append(wf.problem(f"`kinograph:` must be a format version number, got {fmt!r}", "kinograph"))
    elif fmt > FORMAT_VERSION:
        problems.append(wf.problem(f"this file uses workflow format {fmt}, newer than this Kinograph reads "
                                   f"({FORMAT_VERSION}); update Kinograph to open it", "kinograph"))
        return wf, problems
    for k in data:
        if k not in TOP_KEYS:
            problems.append(wf.problem(f"unknown top-level key {k!r}; allowed: {', '.join(TOP_KEYS)}", k,
                                       dropped=True))
    g = wf.graph
    g.name = str(data.get("name") or "")
    g.description = str(data.get("description") or "")
    nodes = data.get("nodes")
    if not nodes and (nodes is None or isinstance(nodes, dict)):
        # What the editor saves for a blank canvas: it is a mapping, only an empty one.
        name = wf.path.name if wf.path is not None else "FILE"
        problems.append(wf.problem(f"{NO_NODES_YET}: add some in the editor (`kinograph gui {name}`); "
                                   "`kinograph nodes` lists them", "nodes"))
        # Its layout still holds what was drawn on the canvas (sticky notes, groups): left unread,
        # a file of notes opened blank in the editor, and saving it again wrote them away.
        _read_ui(g, data)
        return wf, problems
    if not isinstance(nodes, dict):
        problems.append(wf.problem("`nodes:` must be a mapping of node ids to nodes", "nodes"))
        return wf, problems
    pending_links = []
    for nid, body in nodes.items():
        nid_s = str(nid)
        if not ID_RE.match(nid_s):
            problems.append(wf.problem(f"node id {nid_s!r} must start with a letter and use letters, digits, _ or -",
                                       "nodes", nid, node=nid_s, dropped=True))
            continue
        if not isinstance(body, dict) or "type" not in body:
            problems.append(wf.problem("a node needs a mapping with at least `type:`", "nodes", nid, node=nid_s,
                                       dropped=True))
            continue
        for k in body:
            if k not in NODE_KEYS:
                problems.append(wf.problem(f"unknown key {k!r}; a node has {', '.join(NODE_KEYS)}",
                                           "nodes", nid, k, node=nid_s, dropped=True))
        params = body.get("params") or {}
        if not isinstance(params, dict):
            problems.append(wf.problem("`params:` must be a mapping", "nodes", nid, "params", node=nid_s, dropped=True))
            params = {}
        version = body.get("version", None)
        spec = registry.get(str(body["type"])) if registry is not None else None
        if spec is not None:
            v = spec.version if version is None else version
            if not isinstance(v, int) or v < 1:
                problems.append(wf.problem(f"`version:` must be a positive integer, got {v!r}", "nodes", nid,
                                           "version", node=nid_s, dropped=True))
                v = spec.version
            if v > spec.version:
                problems.append(wf.problem(f"{spec.type} version {v} is newer than this Kinograph knows "
                                           f"({spec.version}); update Kinograph", "nodes", nid, "version", node=nid_s))
            while v < spec.version:
                mig = spec.migrations.get(v)
                if mig is None:
                    problems.append(wf.problem(f"no migration for {spec.type} from version {v}", "nodes", nid,
                                               "version", node=nid_s))
                    break
                params = mig(dict(params))
                v += 1
            version = v
        bypass = body.get("bypass", False)
        if not isinstance(bypass, bool):
            problems.append(wf.problem(f"`bypass:` must be true or false, got {bypass!r}", "nodes", nid, "bypass",
                                       node=nid_s, dropped=True))
            bypass = False
        g.add_node(str(body["type"]), nid_s, params, version if isinstance(version, int) else 1,
                   bypass=bypass, title=str(body.get("title") or ""))
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict):
            problems.append(wf.problem("`inputs:` must map input ports to `node.output`", "nodes", nid, "inputs",
                                       node=nid_s, dropped=True))
            continue
        for port, ref in inputs.items():
            pending_links.append((nid_s, str(port), ref))
    for nid, port, ref in pending_links:
        if not isinstance(ref, str) or "." not in ref:
            problems.append(wf.problem(f"input {port!r} must be written `node.output`, got {ref!r}",
                                       "nodes", nid, "inputs", port, node=nid, dropped=True))
            continue
        src, sport = ref.rsplit(".", 1)
        # Links to unknown nodes are kept in `dangling` so validate can name them with a suggestion.
        if src not in g.nodes:
            g.inputs.setdefault(nid, {})[port] = (src, sport)
            continue
        g.connect(src, sport, nid, port)
    _read_ui(g, data)
    return wf, problems


def _read_ui(g: Graph, data: dict) -> None:
    ui = data.get("ui") or {}
    if isinstance(ui, dict):
        g.ui = {str(k): v for k, v in ui.items()}


def _shipped_example_hint(path: Path) -> str:
    """Where examples/NAME is when it is not in the working folder: the README's first command names
    examples/default.yaml, which a pip-installed Kinograph carries inside the package."""
    parts = Path(path).parts
    if "examples" not in parts:
        return ""
    from .shipped import shipped
    found = shipped("examples").joinpath(*parts[len(parts) - parts[::-1].index("examples"):])
    return f"; Kinograph's own example is {found}" if found.is_file() else ""


def read_text(path: Path) -> str:
    """The workflow text of a YAML file, or the one embedded in a rendered video or image."""
    if path.suffix.lower() in MEDIA_SUFFIXES:
        from .embedded import read_embedded_workflow
        text = read_embedded_workflow(path)
        if text is None:
            raise WorkflowError([Problem(str(path), 0, None,
                                         "this file carries no Kinograph workflow in its metadata")])
        return text
    return decode_text(workflow_bytes(path), str(path))


def workflow_bytes(path: Path) -> bytes:
    """The bytes of a workflow YAML file, read as far as MAX_YAML_BYTES only (read_plain: a link to /dev/zero has a
    size of 0 and no end, a named pipe no writer); WorkflowError saying why it cannot be read."""
    try:
        size = path.stat().st_size
        data = b"" if size > MAX_YAML_BYTES else read_plain(path, MAX_YAML_BYTES)
        if size > MAX_YAML_BYTES or len(data) > MAX_YAML_BYTES:
            raise WorkflowError([Problem(str(path), 1, None, f"the file is {max(size, len(data)) / 1e6:.1f} MB; a "
                                                             f"workflow file is at most {MAX_YAML_BYTES >> 20} MB")])
        return data
    except FileNotFoundError:
        raise WorkflowError([Problem(str(path), 0, None, "no such file" + _shipped_example_hint(path))])
    except OSError as e:
        raise WorkflowError([Problem(str(path), 0, None, f"cannot read: {e.strerror}")])


def decode_text(data: bytes, label: str) -> str:
    """Workflow text from a file's bytes (graph_engine.portable.text_of: UTF-8, or UTF-16 with its BOM as Windows
    PowerShell's `>` and Out-File write it). Text in a Windows code page (cp1252: Notepad's 'ANSI')
    is refused with the line and how to save it as UTF-8: read as UTF-8 it was 'not a text file', and read as
    cp1252 a prompt in any other code page would be changed without a word."""
    from .portable import text_of
    try:
        return text_of(data)
    except UnicodeDecodeError as e:
        if b"\0" in data:
            raise WorkflowError([Problem(label, 0, None, "not a text file (a workflow is UTF-8 YAML)")]) from None
        line = data.count(b"\n", 0, e.start) + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        end = data.find(b"\n", e.start)
        shown = data[start:end if end >= 0 else len(data)].decode("cp1252", "replace").strip()
        raise WorkflowError([Problem(label, line, None, f"not UTF-8 text (byte 0x{data[e.start]:02X} in {shown!r}): the "
                                                        "file was saved in a Windows or Latin-1 encoding; save it "
                                                        "again as UTF-8 (Notepad: Save As, Encoding UTF-8)")]) from None


# -- saving ------------------------------------------------------------------------------------
def to_data(graph: Graph, registry=None) -> Dict[str, Any]:
    """Canonical mapping: fixed key order, params in declaration order, so saves diff cleanly."""
    out: Dict[str, Any] = {"kinograph": FORMAT_VERSION}
    if graph.name:
        out["name"] = graph.name
    if graph.description:
        out["description"] = graph.description
    nodes: Dict[str, Any] = {}
    for nid, inst in graph.nodes.items():
        body: Dict[str, Any] = {"type": inst.type, "version": inst.version}
        if inst.title:
            body["title"] = inst.title
        if inst.bypass:
            body["bypass"] = True
        ins = graph.inputs.get(nid) or {}
        spec = registry.get(inst.type) if registry is not None else None
        if ins:
            order = [*spec.inputs, *spec.params] if spec else []      # linked params after the inputs
            keys = [k for k in order if k in ins] + sorted(k for k in ins if k not in order)
            body["inputs"] = {k: f"{ins[k][0]}.{ins[k][1]}" for k in keys}
        if inst.params:
            order = list(spec.params) if spec else []
            keys = [k for k in order if k in inst.params] + sorted(k for k in inst.params if k not in order)
            body["params"] = {k: inst.params[k] for k in keys}
        nodes[nid] = body
    out["nodes"] = nodes
    if graph.ui:
        out["ui"] = {k: graph.ui[k] for k in graph.ui}
    return out


def dump_yaml(data: Dict[str, Any]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def short_list(dumper, value):
        flow = len(value) <= 8 and all(isinstance(v, (int, float, str, bool)) and len(str(v)) < 40 for v in value)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)

    def text(dumper, value):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(list, short_list)
    Dumper.add_representer(tuple, short_list)
    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def to_yaml(graph: Graph, registry=None) -> str:
    return dump_yaml(to_data(graph, registry))


def save_workflow(graph: Graph, path: Path, registry=None) -> None:
    """Write `graph` as YAML to `path`; what the file held before is kept (graph_engine.versions)."""
    from .config import log
    from .versions import keep_previous
    text = to_yaml(graph, registry)
    why = read_only(path)    # refused before a copy of it is kept as an earlier version it never stopped being
    if why:
        raise NodeError(why)
    why = keep_previous(Path(path), text.encode("utf-8"))
    if why:
        log.warning("%s", why)
    atomic_write_text(Path(path), text)
