"""Ray: connecting to a cluster, and long-lived workers that run app.jobs / app.shard calls.

Each worker is a Ray actor holding one engine Session for its whole life, so models a node
loads and results it caches serve every job that worker gets, not just the first. Workers
that see the same cache folder (`--cache-dir` on a shared filesystem, passed on through
KINOGRAPH_CACHE_DIR) share on-disk results. Ray is an optional extra: nothing here imports
it until a command asks for it."""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import socket
import sys
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from graph_engine.errors import WorkflowError
from .shard import ShardLost

# The extra quoted: zsh (macOS's shell) reads a bare kinograph[ray] as a file pattern ("no matches found").
RAY_MISSING = ("Ray is not installed: `pip install \"kinograph[ray]\"` adds it (or `pip install \"ray>=2.30\"`; "
               "in a clone of Kinograph, `make` installs it into .venv); without --ray everything runs in this process")
# Environment a worker needs to see what the driver sees: cache/config/node folders, offline hubs.
ENV_PREFIXES = ("KINOGRAPH_", "HF_", "TRANSFORMERS_")
FETCH_BYTES = 64 << 20
WAIT_NOTE_S = 30.0
# A call whose worker process dies (OOM killer, a preempted node, a crash in native code) runs again on
# another worker this many times: jobs and shards are idempotent, so a lost worker costs its call's time,
# not the whole batch or sharded render.
RETRIES_ON_DEATH = 1

Note = Callable[[str], None]


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnreachable(RAY_MISSING) from None
    return ray


def require_ray() -> None:
    """Raise RAY_MISSING when Ray is not installed, without importing it (ray_session sets what Ray
    reads at import time first)."""
    import importlib.util
    if importlib.util.find_spec("ray") is None:
        raise RayUnreachable(RAY_MISSING)


@contextmanager
def ray_session(address: str, num_cpus: Optional[int] = None):
    """Connect to `address` ('local' starts a private instance); shut down only what we started.

    An already initialised Ray (an embedding application, a test session) is used as it is."""
    if address == "local" and "ray" not in sys.modules:
        # A private instance serves this machine only. Ray binds its servers to the node's IP,
        # which is the loopback address with this switch off (Ray reads it when imported).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # What Ray 2.59+ does for a new local cluster anyway (token authentication), said, so that Ray does not
        # warn of it at the top of every batch's log.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    ray = import_ray()
    # Ray's driver prints what it hears from the cluster (a dead worker's report, "(raylet) ...")
    # to stdout, which belongs to the command: with --json a program reads one JSON event per
    # line there. Those messages are diagnostics, so they go to stderr while Ray is in use; the
    # command's printers hold the real stdout from before.
    with contextlib.redirect_stdout(sys.stderr):
        started = False
        if not ray.is_initialized():
            try:
                if address == "local":
                    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                             logging_level=logging.WARNING)
                else:
                    _check_answers(address)
                    _check_token(ray, address)
                    ray.init(address=address, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise RayUnreachable(cannot_connect(address, str(e), ray.__version__)) from None
            started = True
        try:
            yield ray
        finally:
            if started:
                ray.shutdown()


class RayUnreachable(WorkflowError):
    """The --ray address leads to no cluster this command can use, or Ray is not installed: nothing ran, as for any
    other mistake on the command line (exit 2); it had exited 1, which says some jobs failed and others may have
    written."""

    def __init__(self, message: str):
        super().__init__([message])


def _host_port(address: str) -> bool:
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    return bool(sep and host and port.isdecimal())


def cannot_connect(address: str, why: str, ray_version: str) -> str:
    """What to check when `ray.init(address)` fails. Ray's own reason ('Failed to connect to Ray cluster at
    HEAD:6379') named none of the usual causes, and the advice that followed, to start a cluster with
    `ray start --head`, was wrong where one was running."""
    why = why.strip().rstrip(".")
    if address == "local":      # no cluster to connect to: the private instance did not start
        return (f"cannot start Ray on this machine (--ray local): {why}. Leave out --ray to render here without "
                f"Ray (see docs/ray.md)")
    head = f"cannot connect to the Ray cluster at {address!r}"
    mismatch = re.search(r"cluster was started with:\s*Ray: (\S+)\s*Python: (\S+)", why)
    if mismatch:
        ray_there, py_there = mismatch.groups()
        return (f"{head}: it runs Ray {ray_there} on Python {py_there}, this command Ray {ray_version} on Python "
                f"{platform.python_version()}, and Ray connects only the same versions: install the cluster's "
                f"here (`pip install \"ray=={ray_there}\"` in a Python {py_there.rsplit('.', 1)[0]} environment), "
                f"or run kinograph on a cluster node with --ray auto")
    if not _host_port(address):
        return f"{head}: {why}. Start one with `ray start --head` (see docs/ray.md), or use --ray local"
    return f"{head}: {why}. {_CHECK} (Ray {ray_version}, Python {platform.python_version()}). Or use --ray local"


# The usual causes, in the order to check them, for an address that answers no Ray head.
_CHECK = ("Check: the address is the head's and the port its GCS port (`ray status` on the head prints it; 6379 "
          "unless its `ray start --head --port` said otherwise; not the dashboard's 8265, and Ray Client's 10001 "
          "only as ray://HEAD:10001); the head is running (`ray start --head` there); no firewall between this "
          "machine and the head drops that port, or the ports the head and its nodes talk on (docs/ray.md); "
          "and the cluster runs the Ray and Python this command does")


def _check_answers(address: str) -> None:
    """Raise when nothing accepts a connection at a HOST:PORT address: ray.init would retry it for
    ever, printing 'Failed to connect to GCS' lines, and not even SIGTERM stops it. 'auto' and
    addresses that are not HOST:PORT are left to Ray."""
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdecimal() or not host:
        return
    host = host.strip("[]")
    # Ray itself swaps a loopback address for this machine's own IP, which a head may listen on alone.
    hosts = [host] + (_own_ip() if host in ("127.0.0.1", "localhost") else [])
    why = ""
    for h in hosts:
        try:
            socket.create_connection((h, int(port)), timeout=10).close()
            return
        except TimeoutError:
            why = "no answer in 10 s: a host that is down, or a firewall dropping the connection"
        except OSError as e:
            why = e.strerror or type(e).__name__
    raise RayUnreachable(f"cannot connect to the Ray cluster at {address!r}: nothing answers there ({why}). "
                         f"{_CHECK}. Or use --ray local")


def _own_ip() -> List[str]:
    """This machine's IP as its name resolves, or none where it does not (a container's hostname missing from its
    /etc/hosts; a Mac's NAME.local): that raised socket.gaierror, a traceback for `--ray 127.0.0.1:6379`."""
    try:
        return [socket.gethostbyname(socket.gethostname())]
    except OSError:
        return []


def _check_token(ray, address: str) -> None:
    """Raise when the cluster at a HOST:PORT address refuses this command's token. Ray 2.59 and later start
    clusters with token authentication on, and a driver that sends none (RAY_AUTH_MODE unset) or another
    cluster's was refused: ray.init printed 'InvalidAuthToken' twenty times over twenty seconds, and the
    message said to start a cluster with `ray start --head`, which was running. One call to the head's GCS,
    as Ray's own `ray status` makes, tells. The same call failing (Ray's RpcError) means what answers at that
    port is no Ray head (a proxy, the dashboard's port, a firewall's reply): ray.init went on retrying it
    for a minute, a warning a second, before saying it could not connect. Anything else is left to ray.init."""
    hostport = address.split("://", 1)[-1]
    if "://" in address or not hostport.rpartition(":")[2].isdecimal():
        return
    try:
        from ray._raylet import GcsClient
        GcsClient(address=hostport)
    except ray.exceptions.AuthenticationError:
        sends = "none (RAY_AUTH_MODE is not `token`)" if os.environ.get("RAY_AUTH_MODE", "").lower() != "token" \
            else "another (from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
        raise RayUnreachable(f"the Ray cluster at {address!r} asks for its authentication token and this command "
                             f"sends {sends}: run it with RAY_AUTH_MODE=token and the head's token in "
                             f"~/.ray/auth_token or RAY_AUTH_TOKEN (`ray get-auth-token` on the head prints it; "
                             f"see docs/ray.md)") from None
    except ray.exceptions.RpcError as e:
        raise RayUnreachable(f"cannot connect to the Ray cluster at {address!r}: something answers there, but not as "
                             f"a Ray head does ({str(e).strip().rstrip('.')}). {_CHECK} (Ray {ray.__version__}, "
                             f"Python {platform.python_version()}). Or use --ray local") from None
    except Exception:       # not Ray's client as this version has it, or another fault: ray.init says
        return


def needs_gpu(wf, registry) -> List[str]:
    """The nodes that want an accelerator (NodeSpec.device == "gpu"); workers then ask Ray for one."""
    out = []
    for nid, inst in wf.graph.nodes.items():
        spec = registry.get(inst.type)
        if spec is not None and spec.device == "gpu" and not inst.bypass:
            out.append(nid)
    return out


# Folders named by the environment: one each, and KINOGRAPH_MODELS a list of them.
FOLDER_VARIABLES = ("KINOGRAPH_CACHE_DIR", "KINOGRAPH_CONFIG_DIR", "KINOGRAPH_DATA_DIR", "KINOGRAPH_NODES_DIR",
                    "KINOGRAPH_OUTPUT_DIR")


def _from_here(folder: str) -> str:
    """A relative folder as the driver reads it; one the worker expands itself (~, $VAR) as written."""
    if not folder.strip() or folder.startswith(("~", "$")) or os.path.isabs(folder):
        return folder
    return os.path.abspath(folder)


def worker_env() -> Dict[str, str]:
    """What a worker is given of the driver's environment. Relative folders are made absolute: a worker resolved
    them from its own working folder (where `ray start` ran on its node), so KINOGRAPH_CACHE_DIR=cache, which a
    farm's wrapper sets in the job's folder, was a cache no one shared and relative model folders were not found
    (--cache-dir was made absolute; the variables were not)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    for k in FOLDER_VARIABLES:
        if k in env:
            env[k] = _from_here(env[k])
    if "KINOGRAPH_MODELS" in env:
        env["KINOGRAPH_MODELS"] = os.pathsep.join(_from_here(f) for f in env["KINOGRAPH_MODELS"].split(os.pathsep))
    return env


class Worker:
    """A Ray actor: one engine Session for the worker's life (models loaded once, caches kept)."""

    def __init__(self, env: Dict[str, str], device: str):
        os.environ.update(env)
        from graph_engine.api import Session
        self.session = Session(device=device)
        self.written: set = set()       # shard files this worker wrote: the only ones remove() deletes

    def where(self) -> Dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def run(self, payload: Dict[str, Any], sink=None, tag: Any = None) -> Dict[str, Any]:
        """The job; its node events go to the EventSink `sink` as (tag, event) while it runs."""
        from .jobs import run_job
        here = self.where()
        refused = self._refused(payload, here)
        if refused:
            return {**refused, **here}
        if sink is None:
            return {**run_job(self.session, payload), **here}
        from .progress import Relay
        sent: List[Any] = []
        out = run_job(self.session, payload, on_event=Relay(lambda ev: sent.append(sink.put.remote(tag, ev))))
        if sent:
            # Calls from one caller run in order, so once the last has, the driver finds every event of
            # the job in the sink before it sees the job's result.
            self._ray().wait(sent[-1:], timeout=30)
        return {**out, **here}

    @staticmethod
    def _ray():
        import ray
        return ray

    @staticmethod
    def _refused(payload: Dict[str, Any], here: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        from .jobs import refused_here
        return refused_here(payload, f"{here['host']} (Ray worker pid {here['pid']})")

    def probe(self, payload, source) -> Dict[str, Any]:
        from .shard import probe
        here = self.where()
        return {**(self._refused(payload, here) or probe(self.session, payload, source)), **here}

    def render(self, payload, source, a: int, b: int, out: str) -> Dict[str, Any]:
        # Each shard may land on another node than the probe did, so each checks its own machine.
        from .shard import render_range
        here = self.where()
        done = self._refused(payload, here) or render_range(self.session, payload, source, a, b, out)
        if done.get("path"):
            self.written.add(done["path"])
        return {**done, **here}

    def read(self, path: str, offset: int, size: int) -> bytes:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def remove(self, path: str) -> None:
        """Delete a shard file this worker wrote (fetched by the driver); any other path is left alone."""
        if path in self.written:
            self.written.discard(path)
            Path(path).unlink(missing_ok=True)
            from .shard import LOCAL_SHARDS
            folder = Path(path).parent
            if folder.name.startswith(LOCAL_SHARDS):      # the temp folder shard._writable made for it
                try:
                    folder.rmdir()
                except OSError:
                    pass


class EventSink:
    """A Ray actor holding the node events workers send while they run jobs, until the driver takes them."""

    def __init__(self):
        self.events: List[Tuple[Any, Dict[str, Any]]] = []

    def put(self, tag: Any, ev: Dict[str, Any]) -> None:
        self.events.append((tag, ev))

    def take(self) -> List[Tuple[Any, Dict[str, Any]]]:
        out, self.events = self.events, []
        return out


Call = Tuple[Any, str, tuple]          # (key, Worker method, args)
Watcher = Callable[[Any, Dict[str, Any]], None]     # (tag, event) from a job in progress
# How often the driver looks for events from running jobs (it otherwise waits up to 5 s for a result).
POLL_S = 0.25


class WorkerPool:
    """Up to `size` Worker actors; `imap` hands each call to the next idle worker and yields
    (key, result) as calls finish. A worker that dies fails its call and is replaced."""

    def __init__(self, ray, size: Optional[int], *, gpu_nodes: List[str], device: str = "auto",
                 note: Note = lambda s: None, limit: Optional[int] = None, watch: Optional[Watcher] = None):
        """watch: called with (tag, event) for the node events of jobs run with `self.sink` (Worker.run)."""
        self.ray, self.note, self.device = ray, note, device
        self.watch = watch
        # It takes no CPU: a worker's slot is for rendering.
        self.sink = ray.remote(EventSink).options(num_cpus=0).remote() if watch else None
        total = ray.cluster_resources()
        self.options: Dict[str, Any] = {"num_cpus": 1}
        unit = "CPU"
        if gpu_nodes:
            if total.get("GPU", 0) >= 1:
                self.options["num_gpus"] = 1
                unit = "GPU"
            else:
                note(f"the workflow has GPU nodes ({', '.join(gpu_nodes)}) but the Ray cluster has no GPUs; "
                     f"workers run them on the CPU")
        have = max(1, int(total.get(unit, 1)))
        if size and size > have:
            note(f"{size} workers asked for, but the Ray cluster has {have} {unit}s: using {have}")
        n = min(size or have, have)
        self.size = max(1, min(n, limit or n))
        self.unit = unit
        self._cls = ray.remote(Worker)
        self._env = worker_env()
        self.starting: Dict[Any, Any] = {}        # where() ref -> actor not yet known to be up
        self.start_error = ""
        self.idle: List[Any] = []
        self.actors: List[Any] = []
        for _ in range(self.size):
            self._spawn()

    def _spawn(self) -> None:
        actor = self._cls.options(**self.options).remote(self._env, self.device)
        self.actors.append(actor)
        self.starting[actor.where.remote()] = actor

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for actor in self.actors + ([self.sink] if self.sink is not None else []):
            try:
                self.ray.kill(actor)
            except Exception:      # already gone: nothing to release
                pass
        self.actors.clear()
        self.idle.clear()

    def fit(self, calls: int) -> None:
        """Stop the workers beyond `calls`: a sharded render learns how many shards the clip makes only
        once the pool is up (--shards 32 on a clip of 4 chunks makes 4), and each surplus worker held a
        CPU, or a GPU other work could use, to the end of the render."""
        while self.size > max(1, calls):
            ref = next(iter(self.starting), None)
            actor = self.starting.pop(ref) if ref is not None else self.idle.pop() if self.idle else None
            if actor is None:
                return
            self._drop(actor)
            try:
                self.ray.kill(actor)
            except Exception:      # already gone: nothing to release
                pass
            self.size -= 1

    def call(self, method: str, *args) -> Any:
        """One call on any worker, waiting for the result."""
        for _, out in self.imap([(None, method, args)]):
            return out

    def imap(self, calls: Iterable[Call]) -> Iterator[Tuple[Any, Any]]:
        ray = self.ray
        queue = deque((key, method, args, 0) for key, method, args in calls)    # + times its worker died
        idle = self.idle
        running: Dict[Any, Tuple[Any, tuple]] = {}    # result ref -> (actor, queued call)
        replacements = self.size * (1 + RETRIES_ON_DEATH)
        waited_since, noted = time.monotonic(), False
        while queue or running:
            while idle and queue:
                actor = idle.pop()
                call = queue.popleft()
                running[getattr(actor, call[1]).remote(*call[2])] = (actor, call)
            if not running and not self.starting:
                for key, _, _, _ in queue:
                    yield key, {"ok": False, "error": f"no Ray worker could be started: {self.start_error} "
                                                      f"(is kinograph installed on every Ray node?)"}
                return
            done, _ = ray.wait(list(self.starting) + list(running), num_returns=1,
                               timeout=POLL_S if self.sink is not None and running else 5.0)
            self._pass_events()
            if not done:
                if not running and not noted and time.monotonic() - waited_since > WAIT_NOTE_S:
                    self.note(f"waiting for Ray to place workers (each needs 1 {self.unit}; "
                              f"cluster resources: {ray.cluster_resources()})")
                    noted = True
                continue
            ref = done[0]
            if ref in self.starting:
                actor = self.starting.pop(ref)
                try:
                    ray.get(ref)
                    idle.append(actor)
                except ray.exceptions.RayError as e:
                    self._drop(actor)
                    self.start_error = _short(e)
                    self.note(f"a Ray worker failed to start: {self.start_error}")
                continue
            actor, call = running.pop(ref)
            key, method, args, deaths = call
            try:
                out = ray.get(ref)
                idle.append(actor)
            except ray.exceptions.RayActorError as e:
                self._drop(actor)
                if replacements > 0:
                    replacements -= 1
                    self._spawn()
                if deaths < RETRIES_ON_DEATH:
                    self.note(f"a Ray worker died running {_what(key, method, args)} ({_short(e)}); running it "
                              f"again on another worker")
                    queue.append((key, method, args, deaths + 1))
                    continue
                again = f" on {deaths + 1} workers in turn" if deaths else ""
                out = {"ok": False, "error": f"the worker process died{again} (out of memory, killed, or a crash "
                                             f"in native code: `dmesg` on its node shows the OOM killer): {_short(e)}"}
            except ray.exceptions.RayError as e:
                out = {"ok": False, "error": _short(e)}
                idle.append(actor)
            yield key, out

    def _pass_events(self) -> None:
        if self.sink is None:
            return
        try:
            events = self.ray.get(self.sink.take.remote())
        except self.ray.exceptions.RayError:     # progress is a report: losing it must not stop the jobs
            return
        for tag, ev in events:
            self.watch(tag, ev)

    def _drop(self, actor) -> None:
        if actor in self.actors:
            self.actors.remove(actor)

    def local_copy(self, shard: Dict[str, Any], folder: Path) -> str:
        """The path of a file a worker wrote ({"path", "bytes", "pid"}) when this machine sees it
        (shared filesystem); else the file fetched from that worker into `folder`. ShardLost where that worker
        has died since (app.shard renders the shard again)."""
        path = shard["path"]
        if _visible(path, shard["bytes"]):
            return path
        ray = self.ray
        actor = self._alive(shard["pid"])
        if actor is None:
            raise ShardLost(f"{path} is on a worker that is gone and this machine cannot see it; "
                            f"put --cache-dir on a filesystem all nodes share")
        folder.mkdir(parents=True, exist_ok=True)
        local = folder / f"fetched_{Path(path).name}"
        try:
            with open(local, "wb") as f:
                for off in range(0, shard["bytes"], FETCH_BYTES):
                    f.write(ray.get(actor.read.remote(path, off, FETCH_BYTES)))
            ray.get(actor.remove.remote(path))
        except ray.exceptions.RayError as e:        # the worker died while its shard came over
            local.unlink(missing_ok=True)
            self._drop(actor)
            raise ShardLost(f"the worker holding {path} died while it was fetched ({_short(e)})") from None
        return str(local)

    def _alive(self, pid: int) -> Any:
        """The live worker whose process is `pid`, or None. One that died since its last call (the OOM killer, a
        preempted node) is dropped: asking it where it ran raised Ray's RayActorError out of the command, a traceback
        and no run_finished, where another worker held the shard being fetched."""
        for actor in list(self.actors):
            try:
                if self.ray.get(actor.where.remote())["pid"] == pid:
                    return actor
            except self.ray.exceptions.RayError:
                self._drop(actor)
        return None


def _what(key: Any, method: str, args: tuple) -> str:
    """A call in words for a note: a shard names its frames, a batch job its case."""
    if method == "render" and len(args) >= 4:
        return f"shard {key} (frames {args[2]}-{args[3]})"
    if method == "run":
        return "the job" if key is None else f"case {key}"
    return "the probe of the clip to shard" if method == "probe" else method


def _visible(path: str, size: int) -> bool:
    return os.path.isfile(path) and os.path.getsize(path) == size


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    # A dead actor's report runs on with Ray's list of common causes: the first sentences say what happened.
    return text[-1].split(" Some common causes include")[0] if text else type(e).__name__
