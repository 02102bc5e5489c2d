"""`kinograph import FILE [-o OUT.yaml]` (arguments declared in app/cli.py): the report on stderr,
the workflow to OUT (or stdout).

Exit 0: every node mapped exactly; 3: imported with approximations; 2: a node that runs has no
Kinograph equivalent (nothing written unless --partial), or the file is not a readable workflow."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Optional

from .api_nodes import API_NODE
from .errors import ComfyImportError
from .report import EXIT_UNMAPPED


def cmd_import(args) -> int:
    from graph_engine.api import load_workflow
    from graph_engine.errors import WorkflowError
    from graph_engine.workflow import atomic_write_text
    from . import import_workflow
    try:
        result = import_workflow(args.file, bypass_unmapped=getattr(args, "bypass_unmapped", False))
    except ComfyImportError as e:
        print(f"kinograph import: {e}", file=sys.stderr)
        return EXIT_UNMAPPED
    report = result.report
    print(f"{args.file}: {result.what}: {report.summary()}", file=sys.stderr)
    print(report.text(), file=sys.stderr)
    code = report.exit_code
    if code == EXIT_UNMAPPED and not args.partial:
        names = ", ".join(f"{e.class_type} #{e.comfy_id}" for e in report.blocking)
        # as the report tells them (a custom pack's node named like one is that pack's): its note says API_NODE
        if all(e.notes and e.notes[0].startswith(API_NODE) for e in report.blocking):
            # placeholders where every node that makes something stood: --partial would write a workflow of nothing
            many = len(report.blocking) > 1
            print(f"not written: {names} {'are' if many else 'is one of'} ComfyUI's API nodes: the workflow is built "
                  "on paid online services that Kinograph does not call (it runs models on this machine only)",
                  file=sys.stderr)
            return code
        bypass = ("; --bypass-unmapped bypasses them (they pass a value on) and writes a workflow that runs without "
                  "what they do" if all(e.bypassable for e in report.blocking) else "")
        print(f"not written: {names} cannot be converted (why is above); --partial writes the workflow with "
              f"placeholders in their place{bypass}", file=sys.stderr)
        return code
    folder = Path(args.output).absolute().parent if args.output else Path.cwd()
    for line in read_from_comfyui_input(result.graph, folder):
        print(line, file=sys.stderr)
    text = result.yaml
    if not report.blocking:
        try:
            wf = load_workflow(text=text)
        except WorkflowError as e:
            print("the imported workflow does not validate yet:", file=sys.stderr)
            for p in e.problems:
                print(f"  {p.message}" + (f" (node {p.node})" if p.node else ""), file=sys.stderr)
        else:
            _missing_models(wf, folder, result.model_links)
    if not args.output:
        sys.stdout.write(text)
        return code
    out = Path(args.output)
    if out.exists() and not args.force:
        print(f"kinograph import: {out} exists; choose another name or pass --force", file=sys.stderr)
        return EXIT_UNMAPPED
    try:
        atomic_write_text(out, text)
    except OSError as e:
        print(f"kinograph import: cannot write {out}: {e.strerror}", file=sys.stderr)
        return EXIT_UNMAPPED
    print(out)
    return code


def read_from_comfyui_input(graph, folder: Path) -> List[str]:
    """ComfyUI's LoadImage and LoadVideo name a file of its input/ folder. One not beside the workflow but in the
    input/ folder beside a models/ folder searched is written as the path it is at, one line each said: the run
    read it beside the workflow, stopped, and the user set each path by hand."""
    from graph_engine.registry import default_registry
    from nodes.common.models_dirs import model_dirs
    inputs = [d.parent / "input" for d in model_dirs() if d.name == "models"]
    reg, said = default_registry(), []
    for nid, inst in graph.nodes.items():
        spec = reg.get(inst.type)
        for name, p in (spec.params.items() if spec else ()):
            value = inst.params.get(name)
            if p.kind != "path" or not p.reads or p.locate is not None or not isinstance(value, str) or \
                    not value or Path(value).is_absolute() or (folder / value).exists():
                continue
            held = next((d / value for d in inputs if (d / value).is_file()), None)
            if held is not None:
                inst.params[name] = str(held)
                said.append(f"{nid}: {name}: {value} is in ComfyUI's input folder: the workflow reads {held}")
    return said


def _missing_models(wf, folder: Path, links: Dict[str, str]) -> None:
    missing = missing_models(wf, folder, links)
    if missing:
        print("model files it names that your model folders do not hold (`kinograph info` lists what they hold):",
              file=sys.stderr)
        for line in missing:
            print(f"  {line}", file=sys.stderr)


def missing_models(wf, folder: Path, links: Optional[Dict[str, str]] = None) -> List[str]:
    """Said at import (here and in the editor's report): the model files an imported workflow names that the model
    folders lack, with the close names they hold and the address the ComfyUI workflow gives for each (`links`,
    model_links). An import said 'mapped exactly' and exit 0, and the artist learnt of a name differing from their
    own file (svd.safetensors, holding svd_xt.safetensors) only when the run stopped at the loader."""
    from graph_engine.registry import default_registry
    from graph_engine.validate import missing_models as missing_files
    from .model_links import file_key
    wf.folder = folder
    # One line per file: InfiniteTalk's template loads each of its six files twice (its two passes), and the same
    # long line came twice for each, eleven lines in all.
    nodes: Dict[str, List[str]] = {}
    for nid, params in missing_files(wf, default_registry()).items():
        for param, m in params.items():
            url = (links or {}).get(file_key(str(wf.graph.nodes[nid].params.get(param, ""))))
            nodes.setdefault(m.message + (f"; the ComfyUI workflow gives its download: {url}" if url else ""),
                             []).append(nid)
    missing = [f"node{'s' if len(ids) > 1 else ''} {', '.join(ids)}: {message}" for message, ids in nodes.items()]
    # LTX-2.5's templates map node for node (their nodes are LTX-2.3's) but its model does not load yet: say so before
    # its files are downloaded. They are told by name, as detect.ltx2_release tells LTX-2's releases.
    names = (Path(str(v).replace("\\", "/")).name for n in wf.graph.nodes.values() for v in n.params.values())
    if missing and any(re.match(r"ltx-?2\.5", name, re.I) for name in names):
        from nodes.generate.converters.ltx2 import LTX25
        missing.append(LTX25)
    return missing
