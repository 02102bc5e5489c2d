"""The node declaration API: a decorated function whose signature is its schema.

    @node("video.reverse", category="Video")
    def reverse(ctx, video: VIDEO) -> VIDEO:
        '''Play the clip backwards.'''

Arguments annotated with a socket type are input ports; arguments whose default is a
`Param` are parameters; the return annotation (or `outputs=`) names the outputs. The
docstring is the help. Everything is checked when the module is imported, so a bad
declaration fails loudly at registration, not in the middle of a render."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

from .types import BOOL, FLOAT, INT, STRING, SocketType, PY_PARAM_TYPES

PARAM_KINDS = ("", "path", "schedule", "seed", "text", "color", "json", "points", "negative_points", "box")
# "points", "negative_points" and "box" are positions in the pixels of the first frame of the node's picture input:
# points as x,y; x,y (or ComfyUI PointsEditor's JSON [{"x": 120, "y": 80}, ...]), a box as x0,y0,x1,y1. The editor
# lets them be clicked (negative points: right-click) and dragged on that frame.
# The seeds a torch generator takes, and ComfyUI's range: a seed outside it would wrap silently
# (2**64 + 5 drawing the noise of 5; -1, "random" in A1111, a fixed 2**64 - 1).
SEED_MAX = 2 ** 64 - 1


@dataclass
class Param:
    default: Any = None
    min: Optional[float] = None
    max: Optional[float] = None
    choices: Optional[Sequence[Any]] = None
    kind: str = ""
    help: str = ""
    step: Optional[float] = None
    # Path params: True when the node reads the file, so its fingerprint enters the cache key.
    reads: bool = True
    # Output path params: the suffixes of files the node writes beside the path (metrics.report's .csv table and .png
    # chart beside its .json). Each is planned and checked as the path itself is, so a received workflow cannot
    # replace a file beside its named output that no check looked at.
    beside: Sequence[str] = ()
    # Output path params: True when the node fills a folder at the path (io.save_frames), not a file. A folder at
    # a file writer's name is refused before anything runs; the writer found it only after everything upstream.
    folder: bool = False
    # Params that name a file found elsewhere (a model folder): name -> path it reads, or None.
    # That file's fingerprint enters the cache key, so replacing the weights under the same name
    # re-runs the node.
    locate: Optional[Callable[[str], Any]] = None
    # Files a value names inside it (the embeddings a prompt uses: `embedding:EasyNegative`): value -> the paths
    # found. Their fingerprints enter the cache key, so a file replaced under the same name re-runs the node; a
    # name not found is the node's to report when it runs (a prompt is no file name to check at validation).
    # Such a param still takes a link (a prompt a language model wrote): its text, known only as the run goes, is
    # keyed by the link, and the node reads (and names a missing one of) the files it names when it runs; so there a
    # file replaced under the same name re-runs nothing by itself.
    names_files: Optional[Callable[[str], Any]] = None
    # Validation the node adds for this value (a model file's presence and format...): value ->
    # None when fine, else the problem in words. Runs for defaults too, before anything renders.
    check: Optional[Callable[[Any], Optional[str]]] = None
    # Text the node cannot run without (the file a loader reads, the file a writer writes): empty, it is named at
    # validation, and a node parked with it empty is left out of a run like one with a required input unconnected.
    required: bool = False
    # What a 0 stands for where it is no amount but a choice the node makes ("all" frames, "auto" size, "off"): the
    # editor shows this word for 0. Left empty, 0 is a value like any other (a timestep range's start, a radius).
    zero: str = ""
    # Set by the decorator from the annotation.
    name: str = ""
    type: str = ""

    def __post_init__(self):
        if self.kind == "path" and not self.reads and self.default:
            # An output with a file named by default is what the node writes: emptied (`--set save.path=`, a
            # wrapper's variable left blank) it passed validate and the writer failed once every node before it
            # had run ('. is a folder'). An output a node pack leaves empty by default stays optional.
            self.required = True
        if self.kind == "seed":
            self.min = 0 if self.min is None else self.min
            self.max = SEED_MAX if self.max is None else self.max

    def to_dict(self) -> Dict[str, Any]:
        d = {"name": self.name, "type": self.type, "default": self.default, "help": self.help}
        for k in ("min", "max", "step"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.choices is not None:
            d["choices"] = list(self.choices)
        if self.kind:
            d["kind"] = self.kind
        if self.zero:
            d["zero"] = self.zero
        return d


# The params a link may set instead of a typed-in value (ComfyUI's widgets turned into inputs: a latent's width from
# GetImageSize): numbers, switches and words, prompts among them. A path, a schedule, JSON or a file name stays typed
# in: validation and the cache key read those files (and check the names) before anything runs, and a value known
# only as the workflow runs cannot be checked then.
_LINKABLE = {"int": INT, "float": FLOAT, "bool": BOOL, "str": STRING}


def param_socket(p: Param) -> Optional[SocketType]:
    """The socket type that can feed param `p` through a link, or None where it must be typed in."""
    if p.kind in ("path", "schedule", "json") or p.locate or p.check or p.required:
        return None
    return _LINKABLE.get(p.type)


def typed_in(p: Param) -> str:
    """Why param `p` refuses a link."""
    return (f"parameter {p.name!r} ({p.kind or p.type}) is typed in, not linked: only numbers, switches and plain "
            f"words take a link")


@dataclass
class Input:
    optional: bool = False
    help: str = ""


@dataclass
class Port:
    name: str
    type: SocketType
    optional: bool = False
    help: str = ""

    def to_dict(self):
        d = {"name": self.name, "type": self.type.name}
        if self.optional:
            d["optional"] = True
        if self.help:
            d["help"] = self.help
        return d


@dataclass
class NodeSpec:
    type: str
    func: Callable
    title: str
    category: str
    version: int
    help: str
    inputs: Dict[str, Port]
    outputs: Dict[str, Port]
    params: Dict[str, Param]
    output: bool = False
    expensive: bool = False
    single_output: bool = True
    migrations: Dict[int, Callable[[Dict[str, Any]], Dict[str, Any]]] = field(default_factory=dict)
    # Where the node may run: "cpu" nodes never need an accelerator; "gpu" ones prefer one (Ray asks for it).
    device: str = "cpu"
    # Frame-local / bounded-window nodes can be rendered in shards (see app.shard). None = not shardable.
    temporal_radius: Optional[int] = None
    module: str = ""
    # A check across the node's params and what feeds it, run by validation before anything renders (a
    # frame count the model cannot take should not wait for minutes of model loading): (params, sources)
    # -> [(param, problem)], where params holds every param as the node gets it and sources maps each
    # linked input to (the feeding node's type, its params). It says nothing where it cannot tell.
    preflight: Optional[Callable[[Dict[str, Any], Dict[str, Any]], Sequence[Any]]] = None
    # Outputs that carry an input on, changed but of the same origin (a LoRA on a model: the same family and
    # frame rules): output -> input. A preflight's sources look through such a node, when that input is
    # linked, to the node behind it, so a VAE or model that reaches a check through a LoRA or a context-window
    # node is checked as if linked directly.
    passes: Dict[str, str] = field(default_factory=dict)
    # Outputs made from an input whose origin decides what may take them (a speech encoder's features: which encoder
    # made them): output -> input. A preflight's sources look through them too, so a check on the features is made
    # on the loader behind them (InfiniteTalk refusing whisper features before anything loads).
    made_from: Dict[str, str] = field(default_factory=dict)
    # Imports what the node's first run needs (a model library: seconds of CPU), called by a front end on a thread
    # of its own while the user is still preparing the node (picking its points), so that run does not wait.
    warm: Optional[Callable[[], None]] = None
    # A node that reads only some of its inputs, as its params say (a switch reads the side it picks): params (a
    # linked one as its link brought it) -> the inputs it reads. A node feeding only inputs it will not read is
    # not run (see executor's wanted), so a model or a generation on a switch's unpicked side costs nothing.
    reads: Optional[Callable[[Dict[str, Any]], Iterable[str]]] = None
    # Outputs the node need not make when nothing in the run reads them (Context.unread lists those; the node
    # returns None for them): an imported ComfyUI CLIPTextEncode is encode.text with only `positive` linked, and
    # its empty negative went through the text encoder for nothing (UMT5-XXL: the slowest encode of a Wan run).
    # Making one or not must leave the other outputs as they are: what reads them is keyed by the full result.
    optional_outputs: Tuple[str, ...] = ()

    def port_type(self, port: str) -> Optional[SocketType]:
        """The socket type a link into `port` must bring: an input's, or a linkable param's (param_socket)."""
        if port in self.inputs:
            return self.inputs[port].type
        p = self.params.get(port)
        return None if p is None else param_socket(p)

    @property
    def summary(self) -> str:
        """The help's first paragraph on one line. Its first line alone cut 14 nodes mid-sentence in the
        node search, tooltips and `kinograph nodes` ('kinograph-mini ... runs on')."""
        return " ".join(self.help.strip().split("\n\n")[0].split())

    def to_dict(self) -> Dict[str, Any]:
        return {
            "type": self.type, "title": self.title, "category": self.category, "version": self.version,
            "help": self.help, "output": self.output, "expensive": self.expensive,
            "inputs": [p.to_dict() for p in self.inputs.values()],
            "outputs": [p.to_dict() for p in self.outputs.values()],
            "params": [p.to_dict() for p in self.params.values()],
        }


class DeclarationError(TypeError):
    pass


_NoneType = type(None)


def node(type: str, *, title: str = "", category: str = "", version: int = 1,
         outputs: Optional[Dict[str, SocketType]] = None, output: bool = False, expensive: bool = False,
         migrations: Optional[Dict[int, Callable]] = None, device: str = "cpu",
         temporal_radius: Optional[int] = None, preflight: Optional[Callable] = None,
         passes: Optional[Dict[str, str]] = None, made_from: Optional[Dict[str, str]] = None,
         warm: Optional[Callable[[], None]] = None, reads: Optional[Callable[[Dict[str, Any]], Iterable[str]]] = None,
         optional_outputs: Iterable[str] = ()):
    """Declare a node type; see the module docstring."""

    def deco(func: Callable) -> Callable:
        spec = build_spec(func, type, title=title, category=category, version=version, outputs=outputs,
                          output=output, expensive=expensive, migrations=migrations or {}, device=device,
                          temporal_radius=temporal_radius)
        spec.preflight = preflight
        spec.passes = _passes(spec, passes or {})
        spec.made_from = _passes(spec, made_from or {}, same_type=False)
        spec.warm = warm
        spec.reads = reads
        spec.optional_outputs = tuple(optional_outputs)
        for out in spec.optional_outputs:
            if out not in spec.outputs:
                raise DeclarationError(f"node {spec.type!r}: optional_outputs names no such output {out!r}")
        func.__kinograph_spec__ = spec
        return func

    return deco


def _passes(spec: NodeSpec, passes: Dict[str, str], same_type: bool = True) -> Dict[str, str]:
    for out, inp in passes.items():
        if out not in spec.outputs or inp not in spec.inputs:
            raise DeclarationError(f"node {spec.type!r}: {'passes' if same_type else 'made_from'}={{{out!r}: "
                                   f"{inp!r}}} names no such {'output' if out not in spec.outputs else 'input'}")
        if same_type and spec.outputs[out].type is not spec.inputs[inp].type:
            raise DeclarationError(f"node {spec.type!r}: output {out!r} ({spec.outputs[out].type.name}) cannot pass "
                                   f"input {inp!r} ({spec.inputs[inp].type.name}) through")
    return dict(passes)


def build_spec(func, type, *, title, category, version, outputs, output, expensive, migrations, device,
               temporal_radius) -> NodeSpec:
    where = f"node {type!r} ({func.__module__}.{func.__qualname__})"
    if "." not in type:
        raise DeclarationError(f"{where}: node ids are 'category.name'")
    sig = inspect.signature(func, eval_str=True)
    names = list(sig.parameters)
    if not names or names[0] != "ctx":
        raise DeclarationError(f"{where}: the first argument must be ctx")
    inputs: Dict[str, Port] = {}
    params: Dict[str, Param] = {}
    for name in names[1:]:
        p = sig.parameters[name]
        ann, default = p.annotation, p.default
        if isinstance(ann, SocketType):
            opt = isinstance(default, Input) and default.optional or default is None
            hlp = default.help if isinstance(default, Input) else ""
            inputs[name] = Port(name, ann, opt, hlp)
        elif isinstance(default, Param):
            if ann not in PY_PARAM_TYPES:
                raise DeclarationError(f"{where}: parameter {name!r} needs an int/float/str/bool annotation")
            if default.kind not in PARAM_KINDS:
                raise DeclarationError(f"{where}: parameter {name!r} has unknown kind {default.kind!r}")
            default.name, default.type = name, PY_PARAM_TYPES[ann]
            if default.zero and default.type not in ("int", "float"):
                raise DeclarationError(f"{where}: parameter {name!r} says what 0 means (zero=) but is no number")
            if default.kind == "schedule":
                default.type = "schedule"
            params[name] = default
        else:
            raise DeclarationError(f"{where}: argument {name!r} is neither a socket input nor a Param")
    if outputs:
        outs = {k: Port(k, t) for k, t in outputs.items()}
        single = False
    else:
        ret = sig.return_annotation
        if isinstance(ret, SocketType):
            outs, single = {ret.port: Port(ret.port, ret)}, True
        elif ret in (None, inspect.Signature.empty, _NoneType):
            outs, single = {}, True
        else:
            raise DeclarationError(f"{where}: return annotation must be a socket type, or pass outputs=")
    doc = inspect.cleandoc(func.__doc__ or "")
    if not doc:
        raise DeclarationError(f"{where}: a node needs a docstring; it is the node's help")
    return NodeSpec(type=type, func=func, title=title or type.split(".", 1)[1].replace("_", " ").title(),
                    category=category or type.split(".", 1)[0].title(), version=version, help=doc,
                    inputs=inputs, outputs=outs, params=params, output=output, expensive=expensive,
                    single_output=single, migrations=dict(migrations), device=device,
                    temporal_radius=temporal_radius, module=func.__module__)

