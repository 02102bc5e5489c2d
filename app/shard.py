"""Sharded rendering: one long video rendered as frame ranges on several workers, then joined.

A graph qualifies when every node between its sources and the writer declares a bounded
temporal window (`NodeSpec.temporal_radius`: 0 for frame-local, r for r frames of context).
Each worker builds the lazy Clip that feeds the writer and pulls only frames [a, b) of it;
temporal nodes pull their own context from upstream (the overlap between neighbouring
shards), so the frames equal those of a full sequential pass. Each worker runs the registered
writer node on its range with a lossless codec; the driver reads the shards back with the
registered reader node and runs the writer once, with its own resolved parameters, over the
joined clip, so the result is the file an unsharded render writes.

Driving the workers (WorkerPool) is app.distributed's; the command is app.batch.run_distributed."""
from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from graph_engine.clip import Audio, Clip, Timecode
from graph_engine.context import Context
from graph_engine.errors import KinographError, WorkflowError
from graph_engine.executor import call_node
from graph_engine.plan import plan_run
from graph_engine.registry import Registry
from graph_engine.types import VIDEO
from graph_engine.validate import validate_run
from graph_engine.workflow import Workflow

from .jobs import NodesFailed, guard, payload_of, workflow_of

WRITER = "io.save_video"
READER = "io.load_video"
# What a worker writes its range as: lossless, no audio (the driver's writer adds the source's).
SHARD_PARAMS = {"codec": "ffv1", "keep_audio": False}


@dataclass
class ShardPlan:
    writer: str
    source: Tuple[str, str]          # (node, output port) feeding the writer
    settings: Dict[str, Any]         # the writer's resolved params: path, fps, codec, crf, keep_audio
    context: int                     # frames of context a shard reads beyond its range, summed along the path


def plan_shards(wf: Workflow, registry: Registry) -> ShardPlan:
    """Check that the workflow can be rendered in shards; raise a message naming what stops it."""
    problems = validate_run(wf, registry)
    if problems:
        raise WorkflowError(problems)
    g = wf.graph
    outputs = [n for n, inst in g.nodes.items() if registry.get(inst.type).output and not inst.bypass]
    writers = [n for n in outputs if g.nodes[n].type == WRITER]
    if len(writers) != 1 or len(outputs) != 1:
        found = ", ".join(f"{n} ({g.nodes[n].type})" for n in outputs) or "none"
        raise KinographError(f"--shards renders one video: the workflow needs exactly one output node, an "
                             f"{WRITER}; it has {found}. Render the others without --shards")
    writer = writers[0]
    src, port = g.inputs[writer]["video"]
    if registry.get(g.nodes[src].type).outputs[port].type is not VIDEO:
        raise KinographError(f"--shards splits a video's frames, but {writer} is fed a single image by {src}")
    blocking, context = [], {}
    for nid in _topological(g, g.ancestors([src])):
        inst, spec = g.nodes[nid], registry.get(g.nodes[nid].type)
        video_inputs = [s for p, (s, _) in g.inputs.get(nid, {}).items() if spec.port_type(p) is VIDEO]
        if not video_inputs:
            context[nid] = 0             # a source: Clips are random access by contract
            continue
        if spec.temporal_radius is None and not inst.bypass:
            blocking.append(f"{nid} ({inst.type})")
            continue
        radius = 0 if inst.bypass else spec.temporal_radius
        context[nid] = radius + max(context.get(s, 0) for s in video_inputs)
    if blocking:
        raise KinographError(f"cannot render in shards: {', '.join(blocking)} "
                             f"{'does' if len(blocking) == 1 else 'do'} not declare a bounded temporal window "
                             f"(temporal_radius), so a frame may depend on the whole clip. Render without "
                             f"--shards (with --ray alone it runs as one job on a worker)")
    return ShardPlan(writer, (src, port), plan_run(wf, registry, [writer]).params[writer], context.get(src, 0))


def _topological(g, nodes: List[str]) -> List[str]:
    import graphlib
    keep = set(nodes)
    return list(graphlib.TopologicalSorter({n: [s for s in g.upstream(n) if s in keep] for n in nodes})
                .static_order())


def split_range(length: int, shards: int, align: int = 1) -> List[Tuple[int, int]]:
    """[a, b) ranges covering 0..length, cut only at multiples of `align`.

    `align` is the chunk of the clip feeding the writer: Clips are always computed in whole
    aligned chunks, so a cut inside a chunk would have two workers compute all of it. A
    clip shorter than `shards` chunks gets one shard per chunk."""
    align = max(1, align)
    chunks = -(-length // align)
    shards = max(1, min(shards, chunks))
    # Whole chunks dealt out evenly; the spare ones go to the last shards, which hold the short final chunk.
    cuts = [chunks * i // shards * align for i in range(shards)] + [length]
    return list(zip(cuts[:-1], cuts[1:]))


# -- worker side -------------------------------------------------------------------------------
def _source_clip(session, payload: Dict[str, Any], source: Tuple[str, str]) -> Clip:
    res = session.run(workflow_of(payload), targets=[source[0]], use_cache=payload.get("use_cache", True),
                      keep=[source[0]])
    if not res.ok:
        raise NodesFailed(res.failed)
    return res.outputs[source[0]][source[1]]


def probe(session, payload: Dict[str, Any], source: Tuple[str, str]) -> Dict[str, Any]:
    """Length, geometry and audio of the clip feeding the writer (built lazily: no frames computed)."""
    def go():
        clip = _source_clip(session, payload, source)
        return {"length": clip.length, "fps": clip.fps, "width": clip.width, "height": clip.height,
                "chunk": clip.chunk, "audio": clip.audio.__dict__ if clip.audio else None,
                "timecode": clip.timecode.__dict__ if clip.timecode else None, "alpha": clip.matte is not None}
    return guard(go)


def render_range(session, payload: Dict[str, Any], source: Tuple[str, str], a: int, b: int,
                 out: str) -> Dict[str, Any]:
    """Frames [a, b) of the clip feeding the writer, written by the writer node losslessly at `out`."""
    def go():
        clip = _source_clip(session, payload, source)
        part = shard_part(clip, a, b)
        ctx = Context(f"shard {a}-{b}")
        call_node(session.executor.registry.get(WRITER), ctx, {"video": part},
                  {"path": _writable(out), **SHARD_PARAMS})
        return {k: ctx.results[k] for k in ("path", "frames", "bytes")}
    return guard(go)


def shard_part(clip: Clip, a: int, b: int) -> Clip:
    """Frames [a, b) of `clip`, without sound, and with its alpha (Clip.matte): FFV1 keeps it in the shard,
    and joined_clip reads it back (a sharded render of an element came out opaque)."""
    def span(c: Clip) -> Clip:
        return c.with_(length=b - a, reader=lambda s, e: c.frames(a + s, a + e), audio=None, matte=None)
    return span(clip).with_(matte=None if clip.matte is None else span(clip.matte))


LOCAL_SHARDS = "kinograph-shard-"    # a worker's own temp folder for a shard, when it cannot write the cache's


def _writable(path: str) -> str:
    """`path` if this worker can write there (a shared cache folder); else a local temp file the
    driver fetches from this worker."""
    import tempfile
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return str(Path(tempfile.mkdtemp(prefix=LOCAL_SHARDS)) / Path(path).name)


# -- driver side -------------------------------------------------------------------------------
SHARD_FOLDER = re.compile(r"\d{8}-\d{6}-[0-9a-f]{8}")


def shards_root() -> Path:
    """Under the cache folder, so workers on a shared filesystem write where the driver reads."""
    from graph_engine import config
    return config.cache_dir() / "shards"


def remove_abandoned_shards() -> int:
    """Remove the shard folders of sharded renders whose driver was killed outright: their lossless
    shards (often gigabytes) stayed in the cache folder for ever, outside its cap. Returns the bytes freed."""
    from graph_engine.atomic import remove_abandoned
    return remove_abandoned(shards_root(), SHARD_FOLDER)


def shard_folder() -> Path:
    """A new folder for one sharded render's shards (abandoned ones removed first)."""
    remove_abandoned_shards()
    root = shards_root()
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True)
    except OSError as e:
        raise KinographError(f"cannot create the shard folder {folder}: {e.strerror}; "
                             f"give a writable --cache-dir") from None
    return folder


def joined_clip(registry: Registry, files: List[str], ranges: List[Tuple[int, int]], info: Dict[str, Any]) -> Clip:
    """The shard files played back to back, as the clip the writer would have received."""
    reader_spec = registry.get(READER)
    parts = [call_node(reader_spec, Context("shards"), {}, {"path": f})["video"] for f in files]
    for clip, (a, b), f in zip(parts, ranges, files):
        if clip.length != b - a:
            raise KinographError(f"shard {f} holds {clip.length} frames, expected {b - a} (frames {a}-{b})")
    starts = np.array([a for a, _ in ranges])

    def joined(clips: List[Clip]):
        def reader(s: int, e: int) -> np.ndarray:
            out = []
            k = int(np.searchsorted(starts, s, side="right")) - 1
            while s < e:
                a, b = ranges[k]
                stop = min(e, b)
                out.append(clips[k].frames(s - a, stop - a))
                s, k = stop, k + 1
            return out[0] if len(out) == 1 else np.concatenate(out)
        return reader

    audio = Audio(**info["audio"]) if info.get("audio") else None
    timecode = Timecode(**info["timecode"]) if info.get("timecode") else None
    clip = Clip(info["length"], info["fps"], info["width"], info["height"], joined(parts), audio, timecode=timecode)
    return clip.with_matte(joined([p.opaque_matte() for p in parts]) if info.get("alpha") else None)


def write_joined(registry: Registry, plan: ShardPlan, clip: Clip, workflow_yaml: str,
                 emit: Callable[[Dict[str, Any]], None]) -> Dict[str, Any]:
    """The writer node's job, done once on the driver over the joined shards; returns its report."""
    ctx = Context(plan.writer, emit=emit, workflow_yaml=workflow_yaml)
    call_node(registry.get(WRITER), ctx, {"video": clip}, plan.settings)
    return dict(ctx.results)


def render_sharded(wf, registry, pool, shards: int, *, emit: Callable[[Dict[str, Any]], None],
                   use_cache: bool = True, plan: Optional[ShardPlan] = None) -> Dict[str, Any]:
    """Render the workflow's video in `shards` frame ranges on the pool (app.distributed.WorkerPool)
    and join them. Returns {"ok", "results", "failed", "shards"} like a run's summary."""
    from graph_engine.workflow import to_yaml
    plan = plan or plan_shards(wf, registry)
    payload = payload_of(wf, registry, use_cache)
    info = pool.call("probe", payload, plan.source)
    if not info.get("ok"):
        # refused: the worker lacks what the job reads, nothing ran: `run --ray --shards` exits 2 as `run --ray` does
        return {"ok": False, "results": {}, "failed": info.get("failed") or {"workflow": info["error"]}, "shards": [],
                "refused": info.get("refused", False), "error": info.get("error")}
    from graph_engine.atomic import hold
    ranges = split_range(info["length"], shards, info["chunk"])
    pool.fit(len(ranges))
    folder = shard_folder()
    lock = hold(folder)         # while held, no other render takes this folder for abandoned
    emit({"event": "shards_planned", "frames": info["length"], "ranges": ranges, "asked": shards,
          "chunk": info["chunk"], "context": plan.context, "workers": pool.size})
    calls = [(i, "render", (payload, plan.source, a, b, str(folder / f"shard_{i:04d}.mkv")))
             for i, (a, b) in enumerate(ranges)]
    done: Dict[int, Dict[str, Any]] = {}
    try:
        for i, out in pool.imap(calls):
            done[i] = out
            a, b = ranges[i]
            emit({"event": "shard_finished", "shard": i, "frames": [a, b], "ok": out["ok"],
                  "seconds": out.get("seconds"), "host": out.get("host"), "error": out.get("error")})
        bad = {f"shard {i} (frames {ranges[i][0]}-{ranges[i][1]})": o["error"] for i, o in sorted(done.items())
               if not o["ok"]}
        if bad:
            return {"ok": False, "results": {}, "failed": bad, "shards": [done[i] for i in sorted(done)]}
        files = _fetched(pool, calls, done, folder)
        emit({"event": "node_started", "node": plan.writer, "type": wf.graph.nodes[plan.writer].type})
        t0 = time.perf_counter()
        result = write_joined(registry, plan, joined_clip(registry, files, ranges, info),
                              to_yaml(wf.graph, registry), emit)
        emit({"event": "node_finished", "node": plan.writer, "cached": False,
              "seconds": round(time.perf_counter() - t0, 4)})
        return {"ok": True, "results": {plan.writer: result}, "failed": {}, "shards": [done[i] for i in sorted(done)]}
    finally:
        _clean(done, folder)
        if lock >= 0:
            os.close(lock)


class ShardLost(KinographError):
    """A shard's file is only on a worker that has died: it has to be rendered again (raised by
    app.distributed's local_copy; defined here because shard never imports distributed)."""


def _fetched(pool, calls: List[tuple], done: Dict[int, Dict[str, Any]], folder: Path) -> List[str]:
    """Each shard's file, on this machine. On a cluster without a shared filesystem a shard comes from the worker
    that rendered it; one whose worker died after it (the OOM killer, a preempted node) failed the whole render at
    its end, every other shard's work thrown away. It is rendered again on a live worker, once."""
    files: Dict[int, str] = {}
    for attempt in (0, 1):
        lost = []
        for i in range(len(calls)):
            if i in files:
                continue
            try:
                files[i] = pool.local_copy(done[i], folder)
            except ShardLost as e:
                if attempt:
                    raise
                lost.append(i)
                pool.note(f"shard {i} (frames {calls[i][2][2]}-{calls[i][2][3] - 1}): {e}; rendering it again")
        if not lost:
            break
        for i, out in pool.imap([calls[i] for i in lost]):
            if not out["ok"]:
                raise KinographError(f"shard {i}, rendered again after its worker died, failed: {out['error']}")
            done[i] = out
    return [files[i] for i in range(len(calls))]


def _clean(done: Dict[int, Dict[str, Any]], folder: Path) -> None:
    import shutil
    for out in done.values():
        if out.get("path"):
            Path(out["path"]).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
