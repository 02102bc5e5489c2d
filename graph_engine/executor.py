"""The executor runs a plan (graph_engine.plan): content-addressed caching, per-node failures,
progress and cancellation.

A node whose key is in the cache is not run: changing one parameter re-runs that node and its
descendants only; the memory tier serves everything else, and nodes declared `expensive` also
land on disk so a second process (or a crash at the last step) never pays for them again."""
from __future__ import annotations

import errno
import functools
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

from .cache import DiskCache, MemoryCache, OverCap
from .clip import Clip, WorkMeter
from .context import CancelToken, Context, cancelled_by
from .devices import running_on
from .errors import Cancelled, KinographError, NodeError
from .keep import FrameStore
from .partial import Partials
from .plan import explain, plan_run
from .registry import Registry, default_registry
from .spill import Spill
from .types import value_converter
from .validate import bypass_problem, read_outputs, left_out_note
from .workflow import Workflow

EventFn = Callable[[Dict[str, Any]], None]


@dataclass
class RunResult:
    """What a run did: `ok` (no node failed, not cancelled); `results` (node -> what it reports: a writer's
    `path`, `frames`, `bytes`, a metric's value); `failed` (node -> message); `skipped` (nodes not run because
    a node they need failed); `unread` (nodes not run because only inputs a switch did not pick read them:
    NodeSpec.reads); `outputs` (node -> port -> value, for the nodes asked for with `keep`); `executed` (nodes
    computed rather than served from a cache); `seconds`."""
    ok: bool
    results: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    failed: Dict[str, str] = field(default_factory=dict)      # node -> message
    skipped: List[str] = field(default_factory=list)
    unread: List[str] = field(default_factory=list)
    cancelled: bool = False
    outputs: Dict[str, Dict[str, Any]] = field(default_factory=dict)   # node -> port -> value
    executed: List[str] = field(default_factory=list)
    seconds: float = 0.0


def call_node(spec, ctx: Context, inputs: Dict[str, Any], params: Dict[str, Any]) -> Dict[str, Any]:
    """Call one node's function as a run does: inputs by port (absent optional ones as None), params by
    name (absent ones take the declared default, schedules parsed); returns its outputs by name."""
    kwargs = {}
    for port, p in spec.inputs.items():
        v = inputs.get(port)
        if v is not None:
            kwargs[port] = v
        elif p.optional:
            kwargs[port] = None
    for name, ps in spec.params.items():
        v = params.get(name, ps.default)
        if name in inputs:
            v = linked_param(ps, inputs[name])
        if ps.type == "schedule":
            from .schedule import parse_schedule
            v = parse_schedule(v)
        kwargs[name] = v
    out = spec.func(ctx, **kwargs)
    if spec.single_output:
        if not spec.outputs:
            return {}
        (name,) = spec.outputs
        return {name: out}
    if not isinstance(out, dict) or set(out) != set(spec.outputs):
        raise RuntimeError(f"{spec.type} returned {sorted(out) if isinstance(out, dict) else type(out).__name__}, "
                           f"expected outputs {sorted(spec.outputs)}")
    return out


def linked_param(ps, value: Any) -> Any:
    """A param's value as a link brought it, checked as a typed-in one is at validation (the range, the
    choices): a size another node measured can be one the node cannot take."""
    from .validate import check_param, coerce_param
    v = coerce_param(ps, value)
    why = check_param(ps, v)
    if why:
        raise NodeError(f"parameter {ps.name!r} got {value!r} through its link: {why}")
    return v


class Reads:
    """Which nodes of a run are read, where some node reads only some of its inputs as its params say (a switch:
    NodeSpec.reads). A node is wanted when the run asks for it, nothing in the run reads it (it is an end: a
    writer), or a wanted node reads it; an input of a switch whose params are not known yet counts as read."""

    def __init__(self, g, registry, order, targets):
        self.g, self.registry, self.targets = g, registry, set(targets or ())
        self.consumers: Dict[str, List[tuple]] = {}
        for n in order:
            for port, (src, _) in g.inputs.get(n, {}).items():
                self.consumers.setdefault(src, []).append((n, port))
        self.active = any(registry.get(g.nodes[n].type).reads is not None for n in order)
        self.skipped: set = set()

    def ports(self, nid, params, values, dead) -> Optional[set]:
        """The inputs and linked params `nid` reads; None: all of them (not a switch, bypassed, or its params are
        not known yet). One that will not run (a param's source failed) reads only its params."""
        inst = self.g.nodes[nid]
        spec = self.registry.get(inst.type)
        if spec.reads is None or inst.bypass:
            return None
        p = dict(params[nid])
        links = self.g.inputs.get(nid, {})
        linked = {port for port in links if port in spec.params}
        for port, (src, sport) in links.items():
            if port in spec.params:
                if src in dead:
                    return linked           # it is skipped for that, and says so
                if src not in values:
                    return None
                try:
                    p[port] = linked_param(spec.params[port], values[src][sport])
                except NodeError:          # the switch itself says so when it runs
                    return None
        return set(spec.reads(p)) | linked

    def wanted(self, nid, params, values, dead) -> bool:
        if not self.active:
            return True
        memo: Dict[str, bool] = {}

        def want(n):
            if n not in memo:
                memo[n] = False             # a cycle is no reader (a plan has none)
                memo[n] = n in self.targets or n not in self.consumers or any(
                    c not in self.skipped and (read is None or port in read) and want(c)
                    for c, port in self.consumers[n] for read in [self.ports(c, params, values, dead)])
            return memo[n]
        return want(nid)


def _in_upstream(g, nid: str, error: BaseException, message: str) -> str:
    """The message, naming the node whose frames were being computed when it failed. Clips are lazy: an
    upstream node's work runs when a later node (a writer) pulls its frames, so the error surfaces in the
    puller, and "save failed: out of memory" sent the user to the wrong node."""
    culprit = getattr(error, "kinograph_node", nid)
    if culprit == nid:
        return message
    inst = g.nodes.get(culprit)
    name = f"{culprit} ({inst.type})" if inst is not None else culprit
    return f"{name}, computing the frames {nid} pulled: {message}"


def _ends_alpha(spec, ins: dict, outputs: dict) -> bool:
    """Whether a node dropped the transparency its input clips had (Clip.matte): nodes that only move, pick or
    recolour pixels carry it; any other makes new pixels the alpha no longer fits, and a silent drop left a
    comp element opaque with nothing said. Writers say themselves what they keep."""
    if spec.output or not any(isinstance(v, Clip) and v.matte is not None for v in ins.values()):
        return False
    # Pictures: clips, a frame (video.frame), latents a VAE encoded from them (a video-to-video pass); not
    # measures, flow or tracks made from the frames, which no alpha belongs to.
    made = [v for k, v in outputs.items() if k in spec.outputs and spec.outputs[k].type.name in PICTURES]
    return bool(made) and not any(isinstance(v, Clip) and v.matte is not None for v in made)


PICTURES = ("VIDEO", "IMAGE", "LATENT")


def _ends_float(spec, ins: dict, outputs: dict) -> bool:
    """Whether a node turned a plate's deeper pixels (Clip.linear: an EXR's light above 1.0, a 10- or 16-bit
    source's fine steps) into 8-bit ones: a grade or resize of an EXR plate came out clipped at 1.0 and banded in the
    shadows, and nothing said which node did it. Writers say themselves what they write."""
    if spec.output or not any(isinstance(v, Clip) and v.linear is not None for v in ins.values()):
        return False
    made = [v for k, v in outputs.items() if k in spec.outputs and spec.outputs[k].type.name in ("VIDEO", "IMAGE")]
    return bool(made) and not any(isinstance(v, Clip) and v.linear is not None for v in made)


def _too_big(text: str) -> Optional[str]:
    """An allocation the machine cannot make at all (PyTorch's CPU allocator: "[enforce fail at
    alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 805306368000
    bytes. Error code 12"), said as what it is."""
    import re
    asked = re.search(r"(?:can't|cannot) allocate memory: you tried to allocate (\d+) bytes", text)
    if not asked:
        return None
    n, unit = float(asked[1]), "bytes"
    for step in ("kB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000:
            break
        n, unit = n / 1000, step
    return (f"out of memory: this node asked for {n:.3g} {unit} at once, more than this machine has; lower the "
            f"frames, width or height it works on")


def _stamp(path: str):
    """What changes when a file (or a folder's list of files) is replaced: None when it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class Executor:
    def __init__(self, registry: Optional[Registry] = None, *, memory_budget: Optional[int] = None,
                 disk: Optional[DiskCache] = None, use_disk: bool = True, device: str = "auto", models: Any = None,
                 keep_frames: bool = False):
        """`keep_frames`: keep the costly chunks of lazy clips on disk for later runs of this executor
        (graph_engine.keep), for a session that re-runs one graph many times (the editor); a one-off run
        (`kinograph run`) would only write them."""
        from . import config
        self.registry = registry or default_registry()
        self.meter = WorkMeter()
        self.previews = False               # hosts that draw node_preview events turn this on
        self.memory = MemoryCache(memory_budget if memory_budget is not None else config.memory_budget())
        self.disk = disk if disk is not None else (DiskCache(config.cache_dir() / "results", config.disk_cache_cap())
                                                   if use_disk else None)
        # Beside the disk cache: an expensive node's work in progress, for the next run after one that stopped.
        home = self.disk.root.parent if self.disk is not None else config.cache_dir()
        self.partials = Partials(home / "partial")
        self.frames = FrameStore(home / "frames", config.disk_cache_cap()) if keep_frames else None
        self.device = device
        self.models = models
        self.key_parts: Dict[str, Dict[str, Any]] = {}
        self.previous_parts: Dict[str, Dict[str, Any]] = {}
        # Set when the disk cache's folder cannot be written at all (read-only, no permission, a file in its
        # place): a batch on a farm with a read-only cache then said so for every expensive node of every case.
        self.disk_refused = False

    def why(self, node_id: str) -> str:
        """Why the node's key differs from the previous run's (the editor's "why did this re-run")."""
        return explain(self.previous_parts.get(node_id), self.key_parts.get(node_id))

    # -- running ------------------------------------------------------------------------------
    def run(self, wf: Workflow, *, targets=None, on_event: Optional[EventFn] = None,
            cancel: Optional[CancelToken] = None, use_cache: bool = True,
            keep: Optional[Iterable[str]] = None) -> RunResult:
        """Run `targets` and what they need (everything when None). `keep` names the nodes whose
        values come back in RunResult.outputs (all when None, as the editor's viewer wants); the
        values of other nodes are let go after their last consumer ran, so a long chain holds
        only what is still needed (the memory cache keeps what fits its budget)."""
        t_run = time.perf_counter()
        emit = on_event or (lambda e: None)
        cancel = cancel or CancelToken()
        p = plan_run(wf, self.registry, targets)
        self.previous_parts = dict(self.key_parts)
        self.key_parts.update(p.parts)
        order, keys, params = p.order, p.keys, p.params
        kept = None if keep is None else set(keep)
        g = wf.graph
        res = RunResult(ok=True)
        self.meter.take()                    # frames the viewer pulled between runs are not this run's
        values: Dict[str, Dict[str, Any]] = {}
        dead: Dict[str, str] = {}
        workflow_yaml = None
        shared = self._read_twice(g, order, keys, use_cache)
        reads = Reads(g, self.registry, order, targets)
        from . import config
        spill = Spill(config.cache_dir() / "spill")
        emit({"event": "run_started", "nodes": order})
        if p.left_out:
            emit({"event": "log", "node": None, "message": left_out_note(p.left_out)})
        try:
            for step, nid in enumerate(order):
                if step:
                    self._release(values, p.releasable(step - 1), kept)
                cancel.check()
                inst = g.nodes[nid]
                spec = self.registry.get(inst.type)
                if not reads.wanted(nid, params, values, dead):
                    reads.skipped.add(nid)
                    res.unread.append(nid)
                    # `unread`: a front end's badge says so (a bare log line left the editor's 'queued')
                    emit({"event": "log", "node": nid, "unread": True,
                          "message": "not run: only a switch's input it does not pick reads it"})
                    continue
                read = reads.ports(nid, params, values, dead)
                bad = [s for port, (s, _) in g.inputs.get(nid, {}).items()
                       if s in dead and (read is None or port in read)]
                if bad:
                    dead[nid] = bad[0]
                    res.skipped.append(nid)
                    emit({"event": "node_skipped", "node": nid, "because": bad[0]})
                    continue
                key = keys[nid]
                ins = self._gather(g, spec, nid, values, shared, spill, read)
                empty = self._bad_input(g, spec, nid, ins)
                if empty and not inst.bypass:
                    self._fail(res, dead, nid, empty, None, emit)
                    continue
                if inst.bypass:
                    values[nid] = self._bypass(spec, ins, read_outputs(g, nid))
                    emit({"event": "node_finished", "node": nid, "cached": True, "seconds": 0.0, "bypassed": True})
                    continue
                hit = self._lookup(key, spec) if use_cache else None
                if hit is None and use_cache and nid in p.full:     # made with every output: it serves as well
                    hit = self._lookup(p.full[nid], spec)
                if hit is not None:
                    outputs, results = hit
                    values[nid] = outputs
                    if results:
                        res.results[nid] = results
                    emit({"event": "node_finished", "node": nid, "cached": True, "seconds": 0.0})
                    continue
                if workflow_yaml is None:
                    from .workflow import to_yaml
                    workflow_yaml = to_yaml(g, self.registry)
                emit({"event": "node_started", "node": nid, "type": inst.type})
                t0 = time.perf_counter()
                partial = None
                if spec.expensive and self.disk is not None and self.disk.cap > 0 and use_cache:
                    partial = functools.partial(self.partials.folder, key)
                ctx = Context(nid, device=self.device, cancel=cancel, emit=emit, workflow_yaml=workflow_yaml,
                              models=self.models, workflow_dir=wf.base_dir, previews=self.previews,
                              partial=partial)
                ctx.unread = frozenset(p.parts[nid].get("unmade", ()))
                try:
                    with running_on(self.device), cancelled_by(cancel):
                        outputs = self.meter.measure(nid, call_node, spec, ctx, ins, params[nid])
                    lazy = any(isinstance(v, Clip) for v in outputs.values())
                    if not ctx.alpha_handled and _ends_alpha(spec, ins, outputs):
                        ctx.log(f"{spec.type} does not carry the alpha (transparency) of its input: the frames "
                                f"after it are opaque, laid over black. Lay it over its background before this node "
                                f"(video.over), or give the result an alpha again (video.matte: `source` a clip "
                                f"that still has it, or a key)")
                    if _ends_float(spec, ins, outputs):
                        ctx.log(f"{spec.type} works on 8-bit sRGB frames: the plate's deeper pixels (an EXR's light "
                                f"above 1.0, a 10- or 16-bit source's finer steps) end here, and an EXR, DPX, 16-bit "
                                f"TIFF or ProRes written after it holds the 8-bit picture, clipped at 1.0. "
                                f"color.grade, color.cdl, color.lut, color.match, restore.deflicker, restore.denoise, "
                                f"restore.dust, restore.deblur, restore.stabilize, restore.deinterlace, restore.ivtc, "
                                f"stylize.kuwahara, stylize.posterize, stylize.color_transfer, stylize.temporal, "
                                f"video.resize, upscale.resize, video.flip, video.over (blend linear) and the editing "
                                f"nodes (trim, fps, concat) keep them")
                    outputs = {k: self._wrap(nid, spec, v) if isinstance(v, Clip) else v for k, v in outputs.items()}
                    if spec.expensive and self.disk is not None:
                        outputs = self._keep(key, spec, outputs, ctx, emit)
                except Cancelled:
                    raise
                except KinographError as e:
                    self.partials.release(key)
                    self._fail(res, dead, nid, _in_upstream(g, nid, e, str(e)), None, emit, e)
                    continue
                except MemoryError as e:
                    self.partials.release(key)
                    msg = "out of memory: give it smaller frames (io.load_video's width and height, or video.resize " \
                          "before it) or a smaller radius, tile or batch"
                    self._fail(res, dead, nid, _in_upstream(g, nid, e, msg), traceback.format_exc(), emit, e)
                    continue
                except Exception as e:
                    self.partials.release(key)
                    msg = f"{type(e).__name__}: {e}"
                    if "out of memory" in str(e).lower():
                        # the device it ran on: 'auto' (the usual preference) says nothing about which
                        msg = f"out of memory on {ctx.device}: {e}"
                    elif _too_big(str(e)):
                        msg = _too_big(str(e))
                    elif "(-4:Insufficient memory)" in str(e):      # OpenCV's words for it
                        msg = f"out of memory on cpu: OpenCV {str(e).split('(-4:Insufficient memory)')[-1].strip()}"
                    self._fail(res, dead, nid, _in_upstream(g, nid, e, msg), traceback.format_exc(), emit, e)
                    continue
                seconds = time.perf_counter() - t0
                values[nid] = outputs
                res.executed.append(nid)
                if ctx.results:
                    res.results[nid] = dict(ctx.results)
                self.memory.put(key, (outputs, dict(ctx.results), [(w, _stamp(w)) for w in ctx.written]))
                self.partials.finish(key)
                emit({"event": "node_finished", "node": nid, "cached": False, "seconds": round(seconds, 4),
                      "lazy": lazy})
            self._release(values, p.releasable(len(order) - 1), kept)
        except Cancelled:
            res.ok, res.cancelled = False, True
        finally:
            spill.close()
            # A node stopped with work in progress (cancelled, failed): it stays for the next run, which says so.
            for n in [n for n in order if keys.get(n) in self.partials.held and self.partials.kept(keys[n])]:
                emit({"event": "log", "node": n, "message": f"its finished work is kept in "
                      f"{self.partials.root / keys[n]}: run it again with the same inputs to go on from there"})
            self.partials.release_all()
            for outs in values.values():
                for v in outs.values():
                    if isinstance(v, Clip):
                        v.drop_cache()
            read = set(self.meter.read)
            for n, secs in self.meter.take().items():     # each node's own work, lazy frames included
                # frames: whether a later node read any of its lazy frames (a run stopped before its writer did
                # had them 'computed in 0 ms')
                emit({"event": "node_time", "node": n, "seconds": round(secs, 4), "frames": n in read})
        res.outputs = values
        res.seconds = time.perf_counter() - t_run
        emit({"event": "run_finished", "ok": res.ok, "cancelled": res.cancelled, "results": res.results,
              "failed": res.failed, "seconds": round(res.seconds, 4)})
        return res

    def close(self) -> None:
        """Let go of what the session kept on disk (the frames of graph_engine.keep)."""
        if self.frames is not None:
            self.frames.close()

    def _wrap(self, nid: str, spec, clip: Clip) -> Clip:
        """A node's output clip, its computing time counted for the node and, in a session that keeps frames,
        its costly chunks kept for the runs after this one (an expensive node's clip goes to the disk tier)."""
        clip = self.meter.wrap(nid, clip)
        if self.frames is not None and not spec.expensive:
            clip = self.frames.keep(clip, self.meter)
        return clip

    @staticmethod
    def _release(values, nodes, kept) -> None:
        if kept is None:
            return
        for n in nodes:
            if n not in kept:
                # Only the reference: a lazy Clip downstream may still read through it.
                values.pop(n, None)

    def _keep(self, key: str, spec, outputs, ctx, emit):
        """Store an expensive node's outputs in the disk tier; the outputs its readers get. A clip (a feedback
        loop's frames) is computed while it is stored, so its readers get it back from the disk entry: its work in
        progress goes once it is cached, and reading the lazy clip again would have made every frame again."""
        if self.disk.cap <= 0 or self.disk_refused:     # turned off (disk_cache_gb: 0), or it cannot be written
            return outputs
        try:
            self.disk.put(key, outputs, dict(ctx.results), spec.type)
        except OverCap as e:
            emit({"event": "log", "node": ctx.node_id, "message": f"not kept in the disk cache: {e.strerror}; "
                  f"raise disk_cache_gb in config.yaml (or KINOGRAPH_DISK_CACHE_GB) to keep results this large"})
            return outputs
        except OSError as e:
            why = e.strerror or str(e)
            # A full disk may take the next, smaller entry (or free up): only a folder that refuses every write
            # is given up on, for the rest of this session.
            self.disk_refused = e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR)
            later = "; nothing more is tried there this session" if self.disk_refused else ""
            emit({"event": "log", "node": ctx.node_id, "message": f"could not write the disk cache in "
                  f"{self.disk.root} ({why}){later}; the render goes on without it: point --cache-dir "
                  f"(KINOGRAPH_CACHE_DIR) at another folder"})
            return outputs
        if any(isinstance(v, Clip) for v in outputs.values()):
            got = self.disk.get(key)
            if got is not None:
                return got[0]
        return outputs

    def _lookup(self, key: str, spec):
        hit = self.memory.get(key)
        if hit is not None:
            outputs, results, written = hit
            # What this node wrote is still there as it wrote it: deleted, or replaced since by another run
            # (another value, then this one again: the file held the other run's render while the node said
            # 'cached'), it writes again.
            if all(_stamp(p) == stamp for p, stamp in written):
                if spec.expensive and self.disk is not None:
                    # A sweep's shared sampler result, served from memory job after job, was otherwise the disk
                    # tier's least recently used entry and the first evicted.
                    self.disk.touch(key)
                return outputs, results
            return None
        if spec.expensive and self.disk is not None:
            got = self.disk.get(key)
            if got is not None:
                self.memory.put(key, (got[0], got[1], []))
                return got
        return None

    def _read_twice(self, g, order, keys, use_cache) -> set:
        """The (node, output) pairs that more than one node of this run reads. A node the memory cache
        serves reads nothing (the editor re-running one changed output)."""
        readers: Dict[tuple, int] = {}
        for nid in order:
            if use_cache and self.memory.get(keys[nid]) is not None:
                continue
            for src in g.inputs.get(nid, {}).values():
                readers[src] = readers.get(src, 0) + 1
        return {src for src, n in readers.items() if n > 1}

    def _gather(self, g, spec, nid, values, shared, spill, read=None) -> Dict[str, Any]:
        """Input values by port, through a converter where the socket types differ (IMAGE into VIDEO). A clip
        that more than one node reads comes through the run's spill, so it is computed once. `read`: the only
        ports read (a switch's picked side; None: all)."""
        ins = {}
        for port, (src, sport) in g.inputs.get(nid, {}).items():
            if read is not None and port not in read:
                continue
            v = values[src][sport]
            if isinstance(v, Clip) and (src, sport) in shared:
                v = spill.share((src, sport), v)
            want = spec.port_type(port)
            have = self.registry.get(g.nodes[src].type).outputs[sport].type
            conv = want.converter(have) if have is not want else None
            if have.name == "ANY":
                # a switch passes on what it picked (a picture: ComfyUI's small-image branch), converted as a direct
                # link of its type would be
                conv = value_converter(want, v)
            ins[port] = conv(v) if conv else v
        return ins

    def _bad_input(self, g, spec, nid, ins) -> Optional[str]:
        """Why a required input that is linked got no value, or None. A loader leaves a part its model lacks
        empty (SVD has no text encoder, a text-to-video model no image encoder); the node was then called
        without it and failed with Python's "missing 1 required positional argument". Also why a clip input got
        what is no clip from an ANY output (a mask through a switch): the node failed on the array."""
        for port, v in ins.items():
            src, sport = g.inputs[nid][port]
            if spec.port_type(port).name == "VIDEO" and v is not None and not isinstance(v, Clip) \
                    and self.registry.get(g.nodes[src].type).outputs[sport].type.name == "ANY":
                what = f"{v.dtype} array {v.shape}" if hasattr(v, "dtype") and hasattr(v, "shape") \
                    else type(v).__name__
                return (f"input {port!r} takes a clip, and {src}.{sport} passed on a {what}: link a clip or a "
                        f"picture (IMAGE) there")
        for port, p in spec.inputs.items():
            if not p.optional and port in ins and ins[port] is None:
                src, sport = g.inputs[nid][port]
                return (f"input {port!r} is empty: {src}.{sport} gave nothing there (a loader leaves a part its "
                        f"model does not have empty); connect the {p.type.name} of a model that has one, or "
                        f"remove this node")
        return None

    def _bypass(self, spec, ins: Dict[str, Any], read: set) -> Dict[str, Any]:
        """A bypassed node passes through, per output, the first input of the same type. An output nothing
        reads needs none (ComfyUI's LoraLoaderModelOnly bypassed with its text-encoder output unused)."""
        out = {}
        for name, port in spec.outputs.items():
            for iname, ip in spec.inputs.items():
                if ip.type is port.type and ins.get(iname) is not None:
                    out[name] = ins[iname]
                    break
            else:
                if name in read:
                    raise KinographError(bypass_problem(spec, name))
        return out

    def _fail(self, res, dead, nid, message, tb, emit, error: Optional[BaseException] = None):
        res.ok = False
        res.failed[nid] = message
        dead[nid] = nid
        ev = {"event": "node_failed", "node": nid, "message": message, "traceback": tb}
        culprit = getattr(error, "kinograph_node", nid)
        if culprit != nid:          # an upstream lazy node's frames failed as this one read them: which (the editor)
            ev["frames_of"] = culprit
        emit(ev)

