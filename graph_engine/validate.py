"""Validation: every problem of a workflow, located and with a suggestion, before anything runs."""
from __future__ import annotations

import graphlib
import math
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from .errors import shown
from .node_api import NodeSpec, Param, typed_in
from .outputs import output_problems
from .registry import Registry, did_you_mean
from .workflow import Problem, Workflow


# Lazy clips pull frames through every node of a chain in one nested call (about three Python
# frames per node); past ~300 nodes Python's recursion limit stops it, so longer chains are
# refused here rather than failing mid-render.
MAX_CHAIN = 200
_HEX_COLOR = re.compile(r"#?[0-9a-fA-F]{6}")


def check_param(spec_param: Param, value: Any) -> Optional[str]:
    """Why `value` is not acceptable for the parameter, or None."""
    t = spec_param.type
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {shown(value)}"
    if t == "schedule":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _out_of_range(spec_param, value)
        if not isinstance(value, str):
            return f"expects a number or a schedule string like '0:(1.0), 24:(1.5)', got {shown(value)}"
        try:
            from .schedule import parse_schedule
        except ImportError:
            return None
        try:
            keys = parse_schedule(value).keyframes
        except ValueError as e:
            return f"bad schedule: {e}"
        # Keyframes written as numbers are checked here, before anything runs; an expression's values only the
        # node can check, frame by frame.
        return next((f"keyframe {k.frame}: {why}" for k in keys if k.number is not None
                     for why in [_out_of_range(spec_param, k.number)] if why), None)
    if t == "bool":
        if not isinstance(value, bool):
            return f"expects true or false, got {shown(value)}"
        return None
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return f"expects a whole number, got {shown(value)}{_yaml_text_number(value, whole=True)}"
    elif t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expects a number, got {shown(value)}{_yaml_text_number(value, whole=False)}"
    elif t == "str":
        if _yaml_number(value) or _yaml_word(spec_param, value):
            value = coerce_param(spec_param, value)
        elif isinstance(value, bool):
            return (f"expects text, got {shown(value)}: YAML reads yes, no, on, off, true and false as true or false; "
                    f"put the word in quotes")
        elif not isinstance(value, str):
            return f"expects text, got {shown(value)}"
    if spec_param.kind == "path" and isinstance(value, str):
        # A drive path from a workflow written on Windows: joined to the workflow's folder, it was 'not
        # found' there, or an output made a folder named `C:` beside the workflow. A model's name is looked
        # for in the model folders, but holds no control character either (a NUL stopped the checks).
        from .portable import control_characters, foreign_path
        why = (foreign_path(value, spec_param.reads) if spec_param.locate is None else "") or \
            control_characters(value)
        if why:
            return why
    if spec_param.kind == "color" and isinstance(value, str) and not _HEX_COLOR.match(value.strip()):
        # The editor's swatch drew 'red' red and the field took it; the node refused it only when the
        # run reached it, after everything upstream (a sampler) had run.
        return f"expects a colour written #rrggbb (e.g. #ffd8a8), got {shown(value)}"
    if spec_param.choices is not None and value not in spec_param.choices:
        opts = ", ".join(map(str, spec_param.choices))
        return f"{shown(value)} is not one of: {opts}{did_you_mean(str(value), map(str, spec_param.choices))}"
    if isinstance(value, (int, float)):
        return _out_of_range(spec_param, value)
    return None


def _out_of_range(spec_param: Param, value) -> Optional[str]:
    lo, hi = spec_param.min, spec_param.max
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"{'' if lo is None else lo}..{'' if hi is None else hi}"
        if spec_param.kind == "seed":
            return (f"{value!r} is out of range ({rng}): a seed is a whole number from 0 to 2**64 - 1, as in "
                    f"ComfyUI, and stays the same from run to run; for a new one each run set its mode to "
                    f"random in the editor, or sweep seeds with `kinograph batch --sweep`")
        return f"{value!r} is out of range ({rng})"
    return None


def _yaml_text_number(value: Any, whole: bool) -> str:
    """How to write a number that YAML read as text. YAML 1.1 (PyYAML, and so workflow files and
    --set) takes 1e9 and 1e-3 for strings: its floats need a dot and a signed exponent (1.0e+9)."""
    try:
        number = float(value) if isinstance(value, str) else None
    except ValueError:
        return ""
    if number is None or not math.isfinite(number):
        return ""
    plain = str(int(number)) if whole and number.is_integer() else repr(number)
    return f": YAML reads {value} as text; write {plain}"


def _yaml_number(value: Any) -> bool:
    """A number where text is wanted: YAML reads `boundaries: 16` or a prompt of `2024` as a number, and
    'expects text, got 16' made the user quote what is plainly text."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _yaml_word(spec_param: Param, value: Any) -> Optional[str]:
    """The choice YAML 1.1 read as a boolean: `deinterlace: off` (and `--set load.deinterlace=off`) is False to
    it, and the documented value was refused as 'expects text, got False'."""
    if not isinstance(value, bool) or not spec_param.choices:
        return None
    words = ("on", "yes", "true", "y") if value else ("off", "no", "false", "n")
    return next((w for w in words if w in spec_param.choices), None)


def coerce_param(spec_param: Param, value: Any) -> Any:
    if spec_param.type == "str" and _yaml_number(value):
        return str(value)
    if spec_param.type == "str" and _yaml_word(spec_param, value):
        return _yaml_word(spec_param, value)
    if spec_param.type == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if spec_param.type == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _node_check(wf: Workflow, problems: List[Problem], nid: str, p: Param, value: Any) -> None:
    try:
        why = p.check(value)
    except Exception as e:  # a broken check must not hide the rest of the report
        why = f"could not be checked ({type(e).__name__}: {e})"
    if why:
        problems.append(wf.problem(f"{p.name}: {why}", "nodes", nid, "params", p.name, node=nid))


def run_scope(wf: Workflow, registry: Registry) -> Tuple[List[str], List[str]]:
    """(the nodes a whole run runs, the nodes it leaves out). A node set aside with a required input
    unconnected, as artists park nodes while editing, would stop the whole run; unless an output node
    (a save, a metric) needs it, it is left out instead, with what it feeds. Every other node runs."""
    g = wf.graph
    spec = {n: registry.get(inst.type) for n, inst in g.nodes.items()}
    half = [n for n, inst in g.nodes.items() if spec[n] is not None and not inst.bypass
            and (any(not p.optional and port not in g.inputs.get(n, {}) for port, p in spec[n].inputs.items())
                 or _unnamed(spec[n], inst.params))]
    if not half:
        return list(g.nodes), []
    tainted = set(half) | set(g.descendants(*half))
    outs = [n for n in tainted if not g.nodes[n].bypass and getattr(spec[n], "output", False)]
    stays = tainted & set(g.ancestors(outs))        # an output needs it: its problem stops the run
    left = [n for n in g.nodes if n in tainted and n not in stays]
    return [n for n in g.nodes if n not in tainted or n in stays], left


def _unreadable_input(wf: Workflow, p: Param, value: Any) -> str:
    """Why a file a node reads cannot be read: a named pipe or a device (/dev/zero, /dev/stdin) waits or
    never ends, and a wildcard in a folder's name (/*/*/*/*/*.png) walks every folder it matches, the whole
    disk for minutes and gigabytes; '' for anything else (a file, a folder, a name not there)."""
    if p.kind != "path" or not p.reads or not isinstance(value, str) or not value.strip():
        return ""
    import glob
    import os
    from .atomic import special_file
    from .outputs import resolve_path
    path = resolve_path(value, wf.base_dir, True)
    folder = os.path.dirname(path)
    if p.locate is None and glob.has_magic(folder) and not os.path.isdir(folder):
        return (f"({value}) has a wildcard in a folder's name: a pattern goes in the file name only (shots/*.png); "
                f"over folders it walks every folder it matches")
    kind = special_file(path)
    return kind and f"({value}) is {kind}, not a file: reading it waits for ever or never ends; give a file"


def _unnamed(spec: NodeSpec, params: Dict[str, Any]) -> List[str]:
    """The required params (Param.required) left empty."""
    return [name for name, p in spec.params.items()
            if p.required and not str(params.get(name, p.default) or "").strip()]


def left_out_note(left_out: List[str]) -> str:
    return (f"not run: {', '.join(left_out)} (a required input is not connected or a required file is not named, "
            f"and no save or metrics node needs {'it' if len(left_out) == 1 else 'them'})")


def validate_run(wf: Workflow, registry: Registry) -> List[Problem]:
    """The problems that would stop a whole run: those of the nodes it runs (run_scope)."""
    return validate(wf, registry, only=run_scope(wf, registry)[0])


def validate(wf: Workflow, registry: Registry, only=None) -> List[Problem]:
    """All problems of the workflow; with `only` (node ids), of those nodes alone (a run up to a
    target need not care about a half-wired node elsewhere)."""
    g = wf.graph
    problems: List[Problem] = []
    specs: Dict[str, NodeSpec] = {}
    scope = set(only) if only is not None else None
    for nid, inst in g.nodes.items():
        if scope is not None and nid not in scope:
            continue
        spec = registry.get(inst.type)
        if spec is None:
            problems.append(wf.problem(f"unknown node type {inst.type!r}{registry.suggest(inst.type)}"
                                       f"{_failed_packs(registry)}{_imported_placeholder(g, nid, inst.type)}",
                                       "nodes", nid, "type", node=nid))
            continue
        specs[nid] = spec
        for name, value in inst.params.items():
            p = spec.params.get(name)
            if p is None:
                problems.append(wf.problem(unknown_param(spec, name),
                                           "nodes", nid, "params", name, node=nid))
                continue
            why = check_param(p, value)
            if why:
                problems.append(wf.problem(f"parameter {name!r} {why}", "nodes", nid, "params", name, node=nid))
            elif p.check is not None and not inst.bypass:
                _node_check(wf, problems, nid, p, value)
            special = "" if why or inst.bypass else _unreadable_input(wf, p, value)
            if special:
                problems.append(wf.problem(f"parameter {name!r} {special}", "nodes", nid, "params", name, node=nid))
        for name, p in spec.params.items():
            if p.check is not None and name not in inst.params and not inst.bypass:
                _node_check(wf, problems, nid, p, p.default)
        for name in [] if inst.bypass else _unnamed(spec, inst.params):
            problems.append(wf.problem(f"{name} is empty; it takes: {spec.params[name].help or 'a file name'}",
                                       "nodes", nid, "params", name, node=nid))
    for nid, spec in specs.items():
        ins = g.inputs.get(nid, {})
        for port, (src, sport) in ins.items():
            where = ("nodes", nid, "inputs", port)
            why = link_problem(g, spec, port, src, sport, specs.get(src))
            if why:
                problems.append(wf.problem(why, *where, node=nid))
        for port, p in spec.inputs.items():
            if not p.optional and port not in ins and not g.nodes[nid].bypass:
                problems.append(wf.problem(f"required input {port!r} ({p.type.name}) is not connected",
                                           "nodes", nid, node=nid))
        if g.nodes[nid].bypass:
            for out in sorted(read_outputs(g, nid)):
                if out in spec.outputs and _passed_through(spec, ins, out) is None:
                    problems.append(wf.problem(bypass_problem(spec, out), "nodes", nid, "bypass", node=nid))
    problems += _preflights(wf, specs, {p.node for p in problems})
    problems += output_problems(wf, registry, specs)
    ts = graphlib.TopologicalSorter({n: [s for s in g.upstream(n) if s in g.nodes] for n in g.nodes
                                     if scope is None or n in scope})
    try:
        ts.prepare()
    except graphlib.CycleError as e:
        cycle = e.args[1]
        problems.append(wf.problem("the graph has a cycle: " + " -> ".join(cycle), "nodes", cycle[0], node=cycle[0]))
        return problems
    deep = _deepest_chain(g, [n for n in g.nodes if scope is None or n in scope])
    if len(deep) > MAX_CHAIN:
        problems.append(wf.problem(f"a chain of {len(deep)} nodes ({deep[0]} -> ... -> {deep[-1]}) is deeper than the "
                                   f"{MAX_CHAIN} Kinograph runs: frames are pulled through a whole chain at once, so "
                                   f"split it (save the middle result, load it in a second workflow)",
                                   "nodes", deep[-1], node=deep[-1]))
    return problems


def _imported_placeholder(g, nid: str, type_name: str) -> str:
    """What to do with a ComfyUI node the importer kept as a placeholder (type comfyui.X, linked as in ComfyUI):
    its readers are linked to it, so they raise no "not connected" of their own to name the fix."""
    if not type_name.startswith("comfyui."):
        return ""
    fed = sorted(f"{n}.{port}" for n, ins in g.inputs.items() for port, (src, _) in ins.items() if src == nid)
    what = f"; it feeds {', '.join(fed)}" if fed else ""
    return (f": a ComfyUI node Kinograph has no equivalent for, kept from the import{what}. Replace it with a "
            f"Kinograph node that does the same (linked as it is), or delete it")


def read_outputs(g, nid: str) -> set:
    """The output ports of node `nid` some node reads."""
    return {sport for ins in g.inputs.values() for src, sport in ins.values() if src == nid}


def _passed_through(spec: NodeSpec, ins, out: str) -> Optional[str]:
    """The input a bypassed node passes on as output `out`: its first linked input of that type."""
    want = spec.outputs[out].type
    return next((name for name, p in spec.inputs.items() if p.type is want and name in ins), None)


def bypass_problem(spec: NodeSpec, out: str) -> str:
    kind = spec.outputs[out].type.name
    return (f"{spec.type} cannot be bypassed: its output {out!r} ({kind}) is read downstream and no {kind} input "
            f"is connected to pass through in its place. Connect one, turn the bypass off, or take the link "
            f"off {out!r}")


def link_problem(g, spec: NodeSpec, port: str, src: str, sport: str, sspec: Optional[NodeSpec]) -> Optional[str]:
    """Why `src.sport` cannot feed input `port` of a node of `spec`, or None. A source node of an unknown type
    (`sspec` None: its own problem is reported) is not judged further."""
    if port in spec.params and spec.port_type(port) is None:
        return f"{typed_in(spec.params[port])}. Remove the link and type its value"
    if port not in spec.inputs and port not in spec.params:
        return f"{spec.type} has no input {port!r}{did_you_mean(port, {**spec.inputs, **spec.params})}"
    if src not in g.nodes:
        return f"input {port!r} links to missing node {src!r}{did_you_mean(src, g.nodes)}"
    if sspec is None:
        return None
    if sport not in sspec.outputs:
        return f"input {port!r}: {src} ({sspec.type}) has no output {sport!r}{did_you_mean(sport, sspec.outputs)}"
    have, want = sspec.outputs[sport].type, spec.port_type(port)
    if not want.can_take(have):
        return f"input {port!r}: {have.name} ({src}.{sport}) cannot connect to {want.name}{want.refusal_hint(have)}"
    return None


def unknown_param(spec: NodeSpec, name: str) -> str:
    """A parameter the node lacks, with the close name, else the names it has: `--set latent.length=5` (ComfyUI's
    name for frames) said only that there was no such parameter, and no name was close enough to suggest."""
    close = did_you_mean(name, spec.params)
    return f"{spec.type} has no parameter {shown(name)}" + (close or f"; its parameters: {', '.join(spec.params) or 'none'}")


def node_params(spec: NodeSpec, params: Dict[str, Any], base_dir) -> Dict[str, Any]:
    """Every param as the node function gets it: defaults filled in, numbers coerced, paths resolved
    against the workflow's folder."""
    from .outputs import resolve_path
    out = {name: coerce_param(p, params.get(name, p.default)) for name, p in spec.params.items()}
    for name, p in spec.params.items():
        if p.kind == "path" and isinstance(out[name], str) and out[name]:
            out[name] = resolve_path(out[name], base_dir, p.reads)
    return out


def known_params(g, nid: str, spec: NodeSpec, base_dir) -> Dict[str, Any]:
    """node_params without the params a link sets: their values are only known as the workflow runs, so a
    preflight that needs one says nothing (a missing key is a preflight it skips)."""
    linked = g.inputs.get(nid, {})
    return {k: v for k, v in node_params(spec, g.nodes[nid].params, base_dir).items() if k not in linked}


def _preflights(wf: Workflow, specs: Dict[str, NodeSpec], troubled) -> List[Problem]:
    """The nodes' own checks across params and sources (NodeSpec.preflight), for nodes whose params
    passed the plain checks (a preflight sees only values of the declared types)."""
    g = wf.graph
    problems = []
    for nid, spec in specs.items():
        inst = g.nodes[nid]
        if spec.preflight is None or inst.bypass or nid in troubled:
            continue
        sources = {}
        for port, link in g.inputs.get(nid, {}).items():
            src = _origin(g, specs, link, troubled)
            if src is not None and port in spec.inputs:
                sources[port] = (specs[src].type, known_params(g, src, specs[src], wf.base_dir))
        # An optional output nothing reads is not made, nor is the param of its name read (encode.text's negative
        # when a second encode.text makes the negative): a check on it refused a run that never reads it.
        unmade = set(spec.optional_outputs) - read_outputs(g, nid)
        params = {k: v for k, v in known_params(g, nid, spec, wf.base_dir).items() if k not in unmade}
        try:
            found = list(spec.preflight(params, sources) or ())
        except Exception:  # a preflight only anticipates the run, which reports the problem itself
            continue
        for param, why in found:
            keys = ("nodes", nid, "params", param) if param in inst.params else ("nodes", nid)
            problems.append(wf.problem(f"{param}: {why}" if param else why, *keys, node=nid))
    return problems


def _origin(g, specs: Dict[str, NodeSpec], link, troubled) -> Optional[str]:
    """The node whose output reaches an input through `link` (src, port), looking through nodes that pass
    that output on (NodeSpec.passes) and bypassed ones (which pass their first linked input of the output's
    type, as the executor does); None where it cannot be told."""
    chain = origin_chain(g, specs, link, troubled)
    return chain[-1] if chain else None


def origin_chain(g, specs: Dict[str, NodeSpec], link, troubled=()) -> Optional[List[str]]:
    """The nodes a value passes through on its way to an input through `link` (src, port), nearest first,
    the node that made it last (see _origin); None where it cannot be told."""
    chain: List[str] = []
    src, port = link
    while src not in chain:
        chain.append(src)
        spec = specs.get(src)
        if spec is None or src in troubled or port not in spec.outputs:
            return None
        ins = g.inputs.get(src, {})
        if g.nodes[src].bypass:
            through = _passed_through(spec, ins, port)
            if through is None:
                return None
        else:
            through = spec.passes.get(port) or spec.made_from.get(port)
            if through not in ins:
                return chain
        src, port = ins[through]
    return None


class MissingModel(NamedTuple):
    """A model file a param names that is not there: `message` says where it was looked for and how to fix it,
    `into` is the folder to put it into (None where the param's lookup does not say)."""
    message: str
    into: Optional[Path]


def missing_model_files(wf: Workflow, registry: Registry, where: str = "") -> List[Problem]:
    """Model files the workflow names that are neither beside it nor in the model folders (params with a
    `locate`), for `kinograph validate`. Not part of `validate`: a shared or imported workflow is valid before
    its models are copied in, and a run names a missing file when its node loads it. `where`: the folders
    searched, for the message."""
    return [wf.problem(m.message, "nodes", nid, "params", name, node=nid)
            for nid, params in missing_models(wf, registry, where).items() for name, m in params.items()]


def missing_models(wf: Workflow, registry: Registry, where: str = "", only=None) -> Dict[str, Dict[str, MissingModel]]:
    """node -> param -> its missing model file, as missing_model_files finds them (of the nodes in `only`, or all):
    the editor marks the loader and its field with it once the import report is closed."""
    import os
    from .outputs import resolve_path
    from .portable import windows_root
    out: Dict[str, Dict[str, MissingModel]] = {}
    for nid, name, p, value in _named_files(wf, registry):
        if p.locate is None or (only is not None and nid not in only):
            continue
        if p.kind == "path" and os.path.exists(resolve_path(value, wf.base_dir, True)):
            continue
        try:
            found = p.locate(value)
        except Exception:  # a name that cannot be looked up is as missing as one that is not there
            found = None
        if not found:
            # "copy the file there" named the model folders themselves, where a file is not looked for: say the
            # folder the loader searches (a locate's `folder`), as the run's message does.
            folder = getattr(p.locate, "folder", None)
            sub, file = os.path.split(value.replace("\\", "/"))
            # A name with its sub-folder (ComfyUI's wan/wan_2.1_vae.safetensors) is looked for in that sub-folder:
            # the kind's folder alone was named, and the file put there was still not found.
            into = None
            if ".." in sub.split("/") and p.kind == "path" and not os.path.isabs(value):
                # '../../models/wan' (examples/tiny/) is a place beside the workflow: it was told to go into
                # models/diffusion_models/../../models, a folder that is none of the model folders.
                at = Path(resolve_path(value, wf.base_dir, True))
                into = at.parent
                put = f"put {file} at {at} (a path with '..' is taken from the workflow's folder), or set {name} to " \
                      f"its name in the model folders"
            elif folder:
                into = folder(value)
                if sub and not os.path.isabs(value) and not windows_root(value):
                    into = into / sub
                names_folder = getattr(p.locate, "names_folder", None)
                what = (f"the folder {file}/ (a Hugging Face model's folder: its config.json and weights)"
                        if names_folder and names_folder(value) else file)
                put = f"put {what} into {into}, or add the folder that holds it to KINOGRAPH_MODELS"
            else:
                put = "copy the file into the right folder of one of them"
            searched = getattr(p.locate, "searched", None)
            # A folder that is not there is said so: an extra_model_paths.yaml's drive not mounted, a base_path mistyped.
            looked = (f" (looked in {', '.join(str(d) + ('' if d.is_dir() else ' (missing)') for d in searched(value))})"
                      if searched else where)
            # The run's message names the close names a folder holds; validate said only 'not there' to someone
            # holding svd_xt.safetensors where a ComfyUI workflow named svd.safetensors.
            close = getattr(p.locate, "close", None)
            close = close(value) if close else []
            # The other model folder holding it (a VAE in diffusion_models/), as the run's message says
            elsewhere = getattr(p.locate, "elsewhere", None)
            elsewhere = elsewhere(value) if elsewhere else []
            dead = getattr(p.locate, "dead_links", None)
            dead = dead(value) if dead else []
            beside = f" ({resolve_path(value, wf.base_dir, True)})" if p.kind == "path" and \
                os.path.dirname(value.replace("\\", "/")) else ""
            out.setdefault(nid, {})[name] = MissingModel(
                f"{name}: {value!r} is not in the model folders{looked} nor beside the workflow{beside}; "
                + "".join(f"{d}; " for d in dead)
                + (f"close names there: {', '.join(close)} (set {name} to one); " if close else "")
                + "".join(f"{e}; " for e in elsewhere)
                + f"{put} (`kinograph info` lists the folders and the models in them)", into)
    return out


def missing_run_files(wf: Workflow, registry: Registry, targets=None, where: str = "", input_dirs=(),
                      written=()) -> List[Problem]:
    """The model files (missing_model_files) and footage or pictures (missing_input_files) a run of `targets`
    (node ids; default all) reads that are not there: the check before any node runs that `kinograph run`, the
    editor and Session.run share (app.precheck adds the model folders and ComfyUI's input/ folders to its
    messages)."""
    problems = missing_model_files(wf, registry, where) + missing_input_files(wf, registry, input_dirs, written)
    if targets is None:
        return problems
    needed = set(wf.graph.ancestors(targets))
    return [p for p in problems if p.node in needed]


def damaged_model_files(wf: Workflow, registry: Registry) -> List[Problem]:
    """Model files the workflow names that are there but damaged (a locate's `damaged` reads their headers against
    their sizes): `kinograph validate` said ok to a cut-off download, and the run stopped at its loader."""
    import os
    from .outputs import resolve_path
    problems = []
    for nid, name, p, value in _named_files(wf, registry):
        check = getattr(p.locate, "damaged", None)
        if check is None:
            continue
        beside = resolve_path(value, wf.base_dir, True) if p.kind == "path" else None
        try:
            found = beside if beside and os.path.exists(beside) else p.locate(value)
        except Exception:  # a name that cannot be looked up is said by missing_model_files
            continue
        said = check(found) if found else None
        if said:
            problems.append(wf.problem(f"{name}: {said}", "nodes", nid, "params", name, node=nid))
    return problems


def _named_files(wf: Workflow, registry: Registry):
    """(node, param name, Param, value) of every non-empty text value of a node that runs, for the file
    checks; a param with a `check` reports its own missing file (interpolate.rife)."""
    runs = set(run_scope(wf, registry)[0])
    for nid, inst in wf.graph.nodes.items():
        spec = registry.get(inst.type)
        if spec is None or inst.bypass or nid not in runs:
            continue
        for name, p in spec.params.items():
            value = inst.params.get(name, p.default)
            if p.check is None and isinstance(value, str) and value.strip():
                yield nid, name, p, value


def missing_input_files(wf: Workflow, registry: Registry, input_dirs=(), written=()) -> List[Problem]:
    """Footage, pictures and other files the workflow reads (path params without a model-folder lookup)
    that are not there, for `kinograph validate`: it said ok, and the run failed at the loader. Not part
    of `validate`, as with model files: a shared workflow is valid before its files are copied in.
    `input_dirs`: ComfyUI's input/ folders, where a ComfyUI workflow's LoadVideo / LoadImage names its files.
    `written`: paths written before this workflow runs (a plate an earlier job of a batch renders), as written."""
    return [wf.problem(m.message, "nodes", nid, "params", name, node=nid)
            for nid, params in missing_inputs(wf, registry, input_dirs, written).items() for name, m in params.items()]


def missing_inputs(wf: Workflow, registry: Registry, input_dirs=(), written=(), only=None) -> Dict[str, Dict[str, MissingModel]]:
    """node -> param -> its footage or picture file that is not there, as missing_input_files finds them (of the
    nodes in `only`, or all), `into` None: the editor marks the loader with it as it marks a model loader."""
    import glob
    import os
    from .outputs import resolve_path
    from .sequence import sequence_files
    out: Dict[str, Dict[str, MissingModel]] = {}
    for nid, name, p, value in _named_files(wf, registry):
        if p.kind != "path" or not p.reads or p.locate is not None or (only is not None and nid not in only):
            continue
        path = resolve_path(value, wf.base_dir, True)
        if resolve_path(value, wf.base_dir) in written:
            continue
        long = _past_limits(path)
        if long:
            out.setdefault(nid, {})[name] = MissingModel(f"{name}: {value[:60]!r}... {long}, so no file can be "
                                                         "there: the path is damaged or mistyped", None)
            continue
        # A pattern (io.load_frames' shots/*.png, plates/shot.####.exr) is there when it matches a file.
        if os.path.exists(path) or (glob.has_magic(path) and glob.glob(path)) or sequence_files(path):
            continue
        from .portable import missing_hint
        near = missing_hint(path)
        # An imported ComfyUI workflow names its footage as ComfyUI's input/ folder holds it: say where it is.
        held = [str(d / value) for d in input_dirs if not os.path.isabs(value) and os.path.isfile(d / value)]
        there = f"; ComfyUI's input folder holds it: set {name} to {held[0]}" if held else ""
        out.setdefault(nid, {})[name] = MissingModel(
            f"{name}: {value!r} is not there ({path}){near}; relative paths are taken from the workflow file's "
            f"folder{there}", None)
    return out


def _past_limits(path: str, platform: str = sys.platform) -> Optional[str]:
    """How `path` is longer than a file system holds (a name past 255, the whole past 4,096 bytes or, on Windows,
    32,767 characters), or None. Such a path was said to be 'not there' and echoed whole, twice: a megabyte's path
    made a 2 MB message. Windows and macOS count a name in UTF-16 units, not bytes (120 Japanese characters are 360
    bytes and a name they hold), and Windows' long paths run to 32,767."""
    import os
    from pathlib import PurePosixPath, PureWindowsPath
    windows = platform == "win32"
    if windows or platform == "darwin":
        size, unit = (lambda text: len(text.encode("utf-16-le", "surrogatepass")) // 2), "characters"
    else:
        size, unit = (lambda text: len(os.fsencode(text))), "bytes"
    name = max((size(part) for part in (PureWindowsPath if windows else PurePosixPath)(path).parts), default=0)
    if name > 255:
        return f"has a name of {name:,} {unit}, and file names hold at most 255"
    most = 32_767 if windows else 4096
    if size(path) > most:
        return f"is {size(path):,} {unit} long as a path, and paths hold at most {most:,}"
    return None


def _deepest_chain(g, nodes) -> List[str]:
    """The longest path through the graph, computed iteratively in topological order."""
    keep = set(nodes)
    depth: Dict[str, int] = {}
    prev: Dict[str, Optional[str]] = {}
    for n in graphlib.TopologicalSorter({n: [s for s in g.upstream(n) if s in keep] for n in nodes}).static_order():
        ups = [s for s in g.upstream(n) if s in depth]
        prev[n] = max(ups, key=depth.__getitem__) if ups else None
        depth[n] = depth[prev[n]] + 1 if ups else 1
    if not depth:
        return []
    path = [max(depth, key=depth.__getitem__)]
    while prev[path[-1]] is not None:
        path.append(prev[path[-1]])
    return path[::-1]


def parse_override(text: str):
    """`NODE.PARAM=VALUE` with VALUE read as a YAML scalar (so 3 is an int, 'a b' a string)."""
    import yaml
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ValueError(f"expects NODE.PARAM=VALUE (a node id, a dot, one of its parameters: sample.seed=7), "
                         f"got {shown(text)}")
    key, raw = text.split("=", 1)
    node_id, param = key.rsplit(".", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError, RecursionError):
        # a whole number past Python's 4,300 digits (ValueError), 1,000 brackets (PyYAML recurses a level each): the
        # text as given, which the parameter's check names
        value = raw
    if not isinstance(value, (int, float, str, bool)) or value is None:
        value = raw
    return node_id.strip(), param.strip(), value


def apply_overrides(wf: Workflow, overrides, registry: Registry, source: str = "--set") -> List[Problem]:
    """Set NODE.PARAM values: `NODE.PARAM=VALUE` strings (the command line's), (node, param, value) tuples or a
    mapping of "NODE.PARAM" to value. Problems name the override (`source`), with suggestions; a value of the
    wrong kind is one of them, named as given: checked only when the run validated the whole file, it pointed
    at the file's line of a value the file does not hold."""
    from collections.abc import Mapping
    g = wf.graph
    problems = []
    items = [(*split_target(k), v) for k, v in overrides.items()] if isinstance(overrides, Mapping) else overrides
    for item in items:
        if isinstance(item, str):
            try:
                node_id, param, value = parse_override(item)
            except ValueError as e:
                problems.append(Problem(source, 0, None, str(e)))
                continue
        else:
            node_id, param, value = item
        if not node_id or not param:
            problems.append(Problem(source, 0, None, f"{shown(f'{node_id}.{param}'.strip('.'))} is not NODE.PARAM (a node id, a "
                                                     f"dot and one of its parameters, such as sample.seed)"))
            continue
        if node_id not in g.nodes:
            problems.append(Problem(source, 0, None, f"no node {shown(node_id)} in {wf.label}"
                                                     f"{did_you_mean(node_id, g.nodes)}"))
            continue
        spec = registry.get(g.nodes[node_id].type)
        if spec is not None and param not in spec.params:
            problems.append(Problem(source, 0, node_id, unknown_param(spec, param)))
            continue
        link = g.inputs.get(node_id, {}).get(param)
        if link is not None:            # the link's value would be used: the override would change nothing
            problems.append(Problem(source, 0, node_id, f"{node_id}.{param} is set by a link from {'.'.join(link)}, "
                                                        f"so a value given here would change nothing; remove the link "
                                                        f"in the workflow to set {param} here"))
            continue
        if spec is not None and isinstance(value, str) and spec.params[param].type in ("int", "float") \
                and value.strip() == "":
            problems.append(Problem(source, 0, node_id, f"{param} needs a value"))
            continue
        if isinstance(item, str) and spec is not None and spec.params[param].type == "str" \
                and isinstance(value, bool):
            value = item.split("=", 1)[1].strip()      # --set prompt.text=yes: the word typed, not YAML's True
        why = check_param(spec.params[param], value) if spec is not None else None
        if why:
            problems.append(Problem(source, 0, node_id, f"parameter {param!r} {why}"))
            continue
        g.set_param(node_id, param, value)
        wf.user_set.add((node_id, param))
    return problems


def split_target(target: str) -> Tuple[str, str]:
    """"NODE.PARAM" as (node, param); either is empty when the text has no dot where it needs one."""
    node_id, _, param = str(target).rpartition(".")
    return node_id.strip(), param.strip()


def _failed_packs(registry) -> str:
    """The node files and packs that failed to load may be where an unknown type lives (a typo
    in the user's own node file): name them, with their error, where the type is missing."""
    failed = [e for e in getattr(registry, "load_errors", ()) if "failed to load" in e]
    if not failed:
        return ""
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return f"; it may be defined where loading failed: {failed[0]}{more}"
