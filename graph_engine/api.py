"""The Python API: load a workflow, override parameters, run it, read the results.

    from graph_engine.api import load_workflow, Session
    wf = load_workflow("examples/default.yaml")
    wf.set("sample.seed", 7)
    result = Session().run(wf, on_event=print)
    print(result.ok, result.results)

A `Session` keeps its caches between runs (what the editor does all day)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Union

from .context import CancelToken
from .errors import WorkflowError
from .executor import Executor, RunResult
from .registry import Registry, default_registry
from .validate import apply_overrides, validate_run
from .workflow import Workflow, parse_workflow, read_text


class LoadedWorkflow(Workflow):
    def set(self, target: str, value: Any) -> None:
        """Set `NODE.PARAM` to value; raises WorkflowError naming what is wrong."""
        node_id, _, param = target.rpartition(".")
        problems = apply_overrides(self, [(node_id, param, value)], default_registry())
        if problems:
            raise WorkflowError(problems)


def load_workflow(path: Union[str, Path, None] = None, *, text: Optional[str] = None,
                  registry: Optional[Registry] = None, check: bool = True,
                  allow_outside: Optional[bool] = None,
                  render_dir: Union[str, Path, None] = None) -> LoadedWorkflow:
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
        text = read_text(p)
    wf, problems = parse_workflow(text, p, reg)
    if allow_outside is None and path is None:
        allow_outside = True
    lw = LoadedWorkflow(wf.graph, wf.path, wf.lines, allow_outside,
                        render_dir=Path(render_dir) if render_dir else None)
    lw.render_base          # found now, from the graph as the render holds it: a --set does not move it
    if check and not problems:
        problems = validate_run(lw, reg)
    if problems:
        raise WorkflowError(problems)
    return lw


class Session:
    def __init__(self, **executor_options):
        self.executor = Executor(**executor_options)

    def run(self, wf: Workflow, *, overrides: Iterable = (), targets=None,
            on_event: Optional[Callable[[Dict[str, Any]], None]] = None, cancel: Optional[CancelToken] = None,
            use_cache: bool = True, keep=None) -> RunResult:
        """Apply `overrides`, then run (see Executor.run for `targets` and `keep`)."""
        problems = apply_overrides(wf, list(overrides), self.executor.registry)
        if problems:
            raise WorkflowError(problems)
        return self.executor.run(wf, targets=targets, on_event=on_event, cancel=cancel, use_cache=use_cache,
                                 keep=keep)


def run_workflow(path, overrides: Iterable = (), **kw) -> RunResult:
    """One-shot: load, override and run a workflow file."""
    return Session().run(load_workflow(path), overrides=overrides, **kw)
