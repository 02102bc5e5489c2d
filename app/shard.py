"""Sharded rendering: one long video rendered as frame ranges on several workers, then joined.

A graph qualifies when every node between its sources and the writer declares a bounded
temporal window (`NodeSpec.temporal_radius`: 0 for frame-local, r for r frames of context).
Each worker builds the lazy Clip that feeds the writer and pulls only frames [a, b) of it;
temporal nodes pull their own context from upstream (the overlap between neighbouring
shards), so the frames equal those of a full sequential pass. Shards go to lossless FFV1
files; the driver decodes them in order and encodes once with the writer's own settings,
so the result is the file an unsharded render writes."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from graph_engine.clip import Audio, Clip
from graph_engine.errors import KinographError, WorkflowError
from graph_engine.plan import plan_run
from graph_engine.registry import Registry
from graph_engine.types import VIDEO
from graph_engine.validate import validate
from graph_engine.workflow import Workflow

WRITER = "io.save_video"


@dataclass
class ShardPlan:
    writer: str
    source: Tuple[str, str]          # (node, output port) feeding the writer
    settings: Dict[str, Any]         # the writer's resolved params: path, fps, codec, crf, keep_audio
    context: int                     # frames of context a shard reads beyond its range, summed along the path


def plan_shards(wf: Workflow, registry: Registry) -> ShardPlan:
    """Check that the workflow can be rendered in shards; raise a message naming what stops it."""
    problems = validate(wf, registry)
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
        video_inputs = [s for p, (s, _) in g.inputs.get(nid, {}).items() if spec.inputs[p].type is VIDEO]
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
class NodesFailed(KinographError):
    def __init__(self, failed: Dict[str, str]):
        self.failed = dict(failed)
        super().__init__("; ".join(f"node {n}: {m}" for n, m in failed.items()) or "the run was cancelled")


def _source_clip(session, payload: Dict[str, Any], source: Tuple[str, str]) -> Clip:
    from graph_engine.api import load_workflow
    wf = load_workflow(payload["path"], text=payload["yaml"])
    res = session.run(wf, targets=[source[0]], use_cache=payload.get("use_cache", True))
    if not res.ok:
        raise NodesFailed(res.failed)
    return res.outputs[source[0]][source[1]]


def _guard(fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Failures come back as data so the driver reports them; a worker never dies of a user mistake."""
    t0 = time.perf_counter()
    try:
        out = fn()
        out.setdefault("ok", True)
    except NodesFailed as e:
        out = {"ok": False, "error": str(e), "failed": e.failed}
    except KinographError as e:
        out = {"ok": False, "error": str(e)}
    except Exception as e:
        out = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    out["seconds"] = round(time.perf_counter() - t0, 4)
    return out


def probe(session, payload: Dict[str, Any], source: Tuple[str, str]) -> Dict[str, Any]:
    """Length, geometry and audio of the clip feeding the writer (built lazily: no frames computed)."""
    def go():
        clip = _source_clip(session, payload, source)
        return {"length": clip.length, "fps": clip.fps, "width": clip.width, "height": clip.height,
                "chunk": clip.chunk, "audio": clip.audio.__dict__ if clip.audio else None}
    return _guard(go)


def render_range(session, payload: Dict[str, Any], source: Tuple[str, str], a: int, b: int,
                 out: str) -> Dict[str, Any]:
    """Frames [a, b) of the clip feeding the writer, to a lossless FFV1 file at `out`."""
    def go():
        from nodes.io.video_write import write_video
        clip = _source_clip(session, payload, source)
        part = clip.with_(length=b - a, reader=lambda s, e: clip.frames(a + s, a + e), audio=None)
        info = write_video(part, _writable(out), codec="ffv1", keep_audio=False)
        return {"path": info["path"], "frames": info["frames"], "bytes": info["bytes"]}
    return _guard(go)


def _writable(path: str) -> str:
    """`path` if this worker can write there (a shared cache folder); else a local temp file the
    driver fetches from this worker."""
    import tempfile
    from pathlib import Path
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return str(Path(tempfile.mkdtemp(prefix="kinograph-shard-")) / Path(path).name)


# -- driver side -------------------------------------------------------------------------------
def joined_clip(files: List[str], ranges: List[Tuple[int, int]], info: Dict[str, Any]) -> Clip:
    """The shard files played back to back, as the clip the writer would have received."""
    from nodes.io.video_read import load_video
    parts = [load_video(f) for f in files]
    for clip, (a, b), f in zip(parts, ranges, files):
        if clip.length != b - a:
            raise KinographError(f"shard {f} holds {clip.length} frames, expected {b - a} (frames {a}-{b})")
    starts = np.array([a for a, _ in ranges])

    def reader(s: int, e: int) -> np.ndarray:
        out = []
        k = int(np.searchsorted(starts, s, side="right")) - 1
        while s < e:
            a, b = ranges[k]
            stop = min(e, b)
            out.append(parts[k].frames(s - a, stop - a))
            s, k = stop, k + 1
        return out[0] if len(out) == 1 else np.concatenate(out)

    audio = Audio(**info["audio"]) if info.get("audio") else None
    return Clip(info["length"], info["fps"], info["width"], info["height"], reader, audio)


def encode_joined(plan: ShardPlan, files: List[str], ranges: List[Tuple[int, int]], info: Dict[str, Any],
                  workflow_yaml: str, progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """The writer's job, done once on the driver over the joined shards."""
    from nodes.io.video_write import write_video
    s = plan.settings
    return write_video(joined_clip(files, ranges, info), s["path"], fps=s["fps"], codec=s["codec"], crf=s["crf"],
                       workflow_yaml=workflow_yaml, keep_audio=s["keep_audio"], overwrite=s["overwrite"],
                       progress=progress)
