"""What a workflow needs before it can run, checked before any node runs: its structure (validate_run) and then
every model, footage and picture file it names. `kinograph validate`, `kinograph run` and a Ray worker's check of
its job (app.jobs.refused_here) share it, so each says the same thing about the same workflow."""
from typing import List

from graph_engine.validate import damaged_model_files, missing_run_files, validate_run


def problems_before_run(wf, registry, written=()) -> List:
    """The workflow's problems, or else the files it names that are not there (node, file, where it was looked
    for, how to fix it). A run that lacked its second loader's model spent minutes on the nodes before it.
    `written`: paths that something run before it writes (an earlier job of the same batch), counted as there."""
    return validate_run(wf, registry) or missing_files(wf, registry, written)


def missing_files(wf, registry, written=(), targets=None) -> List:
    """Model files not in the model folders or damaged, and footage or pictures not on disk (nor in `written`) that a
    run of `targets` (node ids; default all) reads, each a located Problem."""
    from nodes.common.models_dirs import model_dirs
    dirs = model_dirs()
    problems = missing_run_files(wf, registry, targets, f" ({', '.join(str(d) for d in dirs)})", comfyui_inputs(dirs),
                                 written)
    # The model files that are there, checked against their sizes: a cut-off download was said ok, and the run
    # stopped at its loader after the nodes before it.
    needed = None if targets is None else set(wf.graph.ancestors(targets))
    return problems + [p for p in damaged_model_files(wf, registry) if needed is None or p.node in needed]


def comfyui_inputs(dirs) -> List:
    """ComfyUI's input/ beside its models/ (of the model folders `dirs`): where an imported workflow's LoadImage /
    LoadVideo names its files."""
    return [d.parent / "input" for d in dirs if d.name == "models"]
