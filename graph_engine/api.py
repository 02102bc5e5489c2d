"""The Python API: build or load a workflow, override parameters, run it, read the results.
Everything a script needs imports from here:

    from graph_engine.api import Session, load_workflow, new_workflow, WorkflowError

    wf = load_workflow("examples/default.yaml")          # or a render carrying its workflow
    wf.set("sample.seed", 7)                              # checked now: WorkflowError if wrong
    result = Session().run(wf, on_event=print)            # events as `kinograph run --json` prints them
    print(result.ok, result.results["save"]["path"], result.failed)

    wf = new_workflow("shot")                             # from scratch, as the YAML reads
    wf.add("load", "io.load_video", params={"path": "plate.mov"})
    wf.add("save", "io.save_video", inputs={"video": "load.video"}, params={"path": "out/shot.mp4"})
    wf.save("shot.yaml")                                  # `kinograph run shot.yaml` runs the same graph

A `Session` keeps its caches between runs (what the editor does all day), so a sweep of runs in one
`Session` recomputes only what each change touches. Errors: `WorkflowError` (the workflow or an
override is wrong; `.problems` lists each with its file and line) and `KinographError` (its base:
any message meant for a person). A node that fails does not raise: the run goes on with what does not
depend on it and `RunResult.failed` names it, as the exit code 1 of `kinograph run` does."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Union

from .context import CancelToken
from .errors import Cancelled, KinographError, NodeError, WorkflowError
from .executor import Executor, RunResult
from .graph import Graph, GraphError
from .placeholders import filled
from .registry import Registry, default_registry, did_you_mean
from .validate import (apply_overrides, check_param, link_problem, missing_run_files, run_scope, split_target,
                       validate, validate_run)
from .workflow import UNSAVED, Problem, Workflow, parse_workflow, read_text, save_workflow

__all__ = ["load_workflow", "new_workflow", "run_workflow", "Session", "LoadedWorkflow", "RunResult", "CancelToken",
           "KinographError", "WorkflowError", "NodeError", "Cancelled"]

Overrides = Union[Iterable, Mapping[str, Any]]


class LoadedWorkflow(Workflow):
    """A workflow a script holds: `set` overrides a parameter, `add` a node, `save` writes it as YAML.
    Each checks what it is given at once and raises WorkflowError naming the node and what is wrong,
    so a mistake is found on the line that made it, not when the run starts."""

    registry: Optional[Registry] = None

    def _registry(self) -> Registry:
        return self.registry or default_registry()

    def set(self, target: str, value: Any) -> None:
        """Set `NODE.PARAM` to value, as `--set NODE.PARAM=VALUE` does; raises WorkflowError naming what is
        wrong (no such node or parameter, a value of the wrong kind)."""
        problems = apply_overrides(self, [(*split_target(target), value)], self._registry(), source="set")
        if problems:
            raise WorkflowError(problems)

    def add(self, node_id: str, type: str, *, inputs: Optional[Mapping[str, str]] = None,
            params: Optional[Mapping[str, Any]] = None, title: str = "") -> str:
        """Add node `node_id` of `type` (`kinograph nodes` lists them), as a workflow file writes it:
        `inputs` maps its input ports to `"node.output"`, `params` its parameters to values (others keep
        their defaults). Raises WorkflowError, adding nothing, for an unknown type, parameter, port or node,
        a value of the wrong kind or a link of the wrong type. Returns the id."""
        reg = self._registry()
        spec = reg.get(type)
        problems = []
        if spec is None:
            raise WorkflowError([Problem("add", 0, node_id, f"unknown node type {type!r}{reg.suggest(type)}; "
                                                            "`kinograph nodes` lists them")])
        if node_id in self.graph.nodes:
            problems.append(Problem("add", 0, node_id, f"the workflow already has a node {node_id!r}"))
        for name, value in (params or {}).items():
            why = (f"{type} has no parameter {name!r}{did_you_mean(name, spec.params)}" if name not in spec.params
                   else check_param(spec.params[name], value))
            if why:
                problems.append(Problem("add", 0, node_id, why if name not in spec.params else
                                        f"parameter {name!r} {why}"))
        links = []
        for port, ref in (inputs or {}).items():
            src, sport = split_target(ref)
            why = (f"input {port!r} must be written 'node.output', got {ref!r}" if not src or not sport else
                   link_problem(self.graph, spec, port, src, sport,
                                reg.get(self.graph.nodes[src].type) if src in self.graph.nodes else None))
            if why:
                problems.append(Problem("add", 0, node_id, why))
            links.append((src, sport, port))
        if not problems:
            try:
                self.graph.add_node(type, node_id, dict(params or {}), spec.version, title=title)
            except GraphError as e:     # an id the file format cannot hold
                problems.append(Problem("add", 0, None, str(e)))
        if problems:
            raise WorkflowError(problems)
        for src, sport, port in links:
            self.graph.connect(src, sport, node_id, port)
        return node_id

    def check(self) -> None:
        """Raise WorkflowError listing every problem that would stop a run (what `kinograph validate` says
        of the links, values and output paths), or return."""
        problems = validate_run(self, self._registry())
        if problems:
            raise WorkflowError(problems)

    def save(self, path: Union[str, Path]) -> Path:
        """Write the workflow as YAML (atomically: a file at `path` is whole), for `kinograph run`, the editor
        or `load_workflow`. Relative paths in it are taken from that file's folder when it is run; this
        object goes on taking them from where it did (`base_dir`). Returns the absolute path."""
        path = Path(path).resolve()
        try:
            save_workflow(self.graph, path, self._registry())
        except OSError as e:
            raise KinographError(f"cannot save the workflow as {path}: {e.strerror or e}") from None
        return path


def load_workflow(path: Union[str, Path, None] = None, *, text: Optional[str] = None,
                  registry: Optional[Registry] = None, check: bool = True,
                  allow_outside: Optional[bool] = None,
                  render_dir: Union[str, Path, None] = None, source: str = UNSAVED) -> LoadedWorkflow:
    """Load from a YAML file, a rendered video/PNG carrying a workflow, or YAML text.

    Problems of the file itself (YAML, structure) always raise one WorkflowError; with
    check=True so do type and link problems (check=False defers those until after --set
    overrides, which may fix them). Outputs are confined to the workflow's folder and the
    output folder (graph_engine.outputs) unless `allow_outside`; YAML text given without a
    path is the caller's own, so its outputs are not confined unless allow_outside=False.
    A render's workflow resolves relative paths where it was made (Workflow.render_dir), or
    from `render_dir` when given."""
    reg = registry or default_registry()
    p = Path(path).resolve() if path is not None else None
    if text is None:
        if p is None:
            raise TypeError("load_workflow needs a path or text=")
        text = read_text(p)
    wf, problems = parse_workflow(text, p, reg, source)
    if allow_outside is None and path is None:
        allow_outside = True
    lw = LoadedWorkflow(wf.graph, wf.path, wf.lines, allow_outside,
                        render_dir=Path(render_dir) if render_dir else None, source=source)
    lw.registry = registry
    lw.render_base          # found now, from the graph as the render holds it: a --set does not move it
    if check and not problems:
        problems = validate_run(lw, reg)
    if problems:
        raise WorkflowError(problems)
    return lw


def new_workflow(name: str = "", *, folder: Union[str, Path, None] = None,
                 registry: Optional[Registry] = None) -> LoadedWorkflow:
    """An empty workflow to build with `add`. Relative paths in it are taken from `folder` (default: the
    current folder when it runs). It is the script's own, so its outputs may go anywhere."""
    wf = LoadedWorkflow(Graph(name), allow_outside=True, folder=Path(folder).resolve() if folder else None)
    wf.registry = registry
    return wf


class Session:
    """Runs workflows with caches kept between runs: the second run of a sweep recomputes only the nodes a
    change touches (and what they feed). `Session(device="cpu")`; other options go to Executor: `disk`, a
    DiskCache or `use_disk=False`, `memory_budget` in bytes."""

    def __init__(self, **executor_options):
        if "device" in executor_options:
            from .devices import check_device
            executor_options["device"] = check_device(executor_options["device"])    # a typo raises now
        self.executor = Executor(**executor_options)

    def run(self, wf: Workflow, *, overrides: Overrides = (), targets=None,
            on_event: Optional[Callable[[Dict[str, Any]], None]] = None, cancel: Optional[CancelToken] = None,
            use_cache: bool = True, keep=None, precheck: bool = True) -> RunResult:
        """Apply `overrides` to `wf` (`["sample.seed=7"]` as on the command line, or `{"sample.seed": 7}`; they stay
        set on it, as `wf.set` would), then run
        `targets` (node ids; default all) and return a RunResult: `ok`, `results` (node -> what it reports; a
        writer's `path`, `frames`, `bytes`), `failed` (node -> message), `cancelled`. Raises WorkflowError
        before anything runs when the workflow or an override is wrong. `on_event` gets each event as a dict
        (run_started, node_started, node_progress, node_finished, node_failed, log, run_finished); `cancel`,
        a CancelToken another thread may cancel, stops the run cleanly (RunResult.cancelled, no output left
        half-written). `keep` (node ids) names the nodes whose values come back in RunResult.outputs; by default
        all do, held through the run, so a long render holds every node's value: `keep=()`, as `kinograph run`
        passes, lets each go once nothing after it needs it. A model, footage or picture file the run reads that
        is not there raises WorkflowError naming each before any node runs, as `kinograph run` says it;
        `precheck=False` (`--no-precheck`) runs the nodes that do not need them. An output path's
        `{NODE.PARAM}` (`out/fox_{sample.seed}.mp4`) is filled from this run's values; `wf` keeps the template."""
        registry = self.executor.registry
        problems = apply_overrides(wf, overrides, registry, source="overrides")
        if not problems:
            # An output's {NODE.PARAM} from this run's values, as `kinograph run` fills it: the file was named
            # 'fox_{sample.seed}.mp4' and each run of a sweep replaced the one before.
            try:
                wf = filled(wf, registry)
            except WorkflowError as e:
                problems = e.problems
        if not problems and precheck:
            # What is wrong with the graph first, as the run would say it; then the files it lacks.
            scope = run_scope(wf, registry)[0]
            if targets is not None:
                needed = set(wf.graph.ancestors(targets))
                scope = [n for n in scope if n in needed]
            problems = validate(wf, registry, only=scope) or missing_run_files(wf, registry, targets)
        if problems:
            raise WorkflowError(problems)
        return self.executor.run(wf, targets=targets, on_event=on_event, cancel=cancel, use_cache=use_cache,
                                 keep=keep)


def run_workflow(path, overrides: Overrides = (), **kw) -> RunResult:
    """One-shot: load, override and run a workflow file (keyword arguments as Session.run's)."""
    return Session().run(load_workflow(path, check=False), overrides=overrides, **kw)
