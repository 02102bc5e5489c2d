"""When the caller does not say, a quantised file's layers stay packed (nodes/generate/packed_weight.py) on a
machine with a GPU or where the expanded weights would take more than half the memory free, and are expanded once at
load otherwise (nodes/generate/pack_policy.py): on the CPU a packed step measured several times the expanded one's.
"GPU" is the device the loading run computes on (a run put on the CPU of a machine with a GPU expands), "free" the RAM
available without swap.
The expanded weights are the published dequantisation's (tests/comfy_blockquant.py, an fp8 value cast)."""
from __future__ import annotations

import pytest
import torch

import comfy_blockquant as ref
from graph_engine import node
from graph_engine.types import FLOAT

GB = 1 << 30


@pytest.mark.parametrize("expanded, gpu, free, packed", [
    (10 * GB, True, 100 * GB, True),        # a GPU: its memory is what a run is short of
    (10 * GB, False, 100 * GB, False),      # the CPU with room: the faster step
    (10 * GB, False, 20 * GB, False),       # exactly half of what is free
    (10 * GB, False, 19 * GB, True),        # past half: packed is what lets it fit
    (10 * GB, False, None, True),           # free memory unknown: the lean way
])
def test_the_decision(expanded, gpu, free, packed):
    from nodes.generate.pack_policy import keep_packed
    assert keep_packed(expanded, gpu, free) is packed


def _state():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 128, generator=g) * 0.05
    state = ref.quantise_layer("a", w, "nvfp4")
    state["b.weight"] = w.to(torch.float8_e4m3fn)
    want = {"a.weight": ref.dequantise_layer(state, "a", "nvfp4"), "b.weight": state["b.weight"].float()}
    return state, want


@pytest.fixture
def machine(monkeypatch):
    """set(gpu, free): this machine has a CUDA GPU or not, and `free` bytes of RAM available."""
    import nodes.common.stream as stream
    from graph_engine.devices import resolve_device

    def set_(gpu, free):
        monkeypatch.setattr(stream, "available_ram", lambda: free)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
        if getattr(torch.backends, "mps", None) is not None:
            monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
        resolve_device.cache_clear()        # 'auto' and 'cuda' resolve against the machine set here
    yield set_
    resolve_device.cache_clear()


@pytest.mark.parametrize("gpu, free, packed", [(False, 64 * GB, False), (False, 60_000, True), (True, 64 * GB, True)])
def test_dequantise_follows_the_machine(machine, gpu, free, packed):
    from nodes.generate.packed_weight import PackedWeight
    from nodes.generate.weights import dequantise
    machine(gpu, free)
    state, want = _state()
    # the expanded weights: 64 x 128 in bfloat16 twice, 32 KB (60 KB free is less than twice that)
    got = dequantise(state, torch.bfloat16)
    for k, w in want.items():
        assert isinstance(got[k], PackedWeight) is packed
        assert torch.equal(got[k].float(), w.to(torch.bfloat16).float())
    assert all(type(v) is torch.Tensor for v in dequantise(state, torch.bfloat16, packed=False).values())
    assert all(isinstance(dequantise(state, torch.bfloat16, packed=True)[k], PackedWeight) for k in want)


LOADED = []     # whether test.load_quantised's weights came packed, per run


@node("test.load_quantised", category="Test")
def load_quantised(ctx) -> FLOAT:
    """Stands for a model loader: reads a quantised state as load_weights does, the caller not saying."""
    from nodes.generate.packed_weight import PackedWeight
    from nodes.generate.weights import dequantise
    LOADED.append(isinstance(dequantise(_state()[0], torch.bfloat16)["a.weight"], PackedWeight))
    return 0.0


@pytest.mark.parametrize("device, packed", [("cpu", False), ("auto", True), ("cuda", True)])
def test_the_run_device_decides_not_the_machine(machine, monkeypatch, tmp_path, device, packed):
    """A machine with a GPU: a run put on its CPU expands (its steps are the CPU's); one on the GPU keeps packed."""
    from graph_engine.executor import Executor
    from graph_engine.registry import Registry
    from graph_engine.workflow import parse_workflow
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))
    machine(True, 64 * GB)
    reg = Registry()
    reg.register(load_quantised)
    LOADED.clear()
    wf, problems = parse_workflow("kinograph: 1\nnodes:\n  m: {type: test.load_quantised}\n", None, reg)
    assert not problems
    assert Executor(reg, device=device).run(wf, use_cache=False).ok
    assert LOADED == [packed]


def test_swap_is_not_memory_free_for_weights(machine, monkeypatch, tmp_path):
    """4 GB of RAM available and 32 GB of swap free: 10 GB of expanded weights would be swapped out and read back
    from disk at every step, so they stay packed (counted with the swap they were expanded)."""
    import nodes.common.stream as stream
    from nodes.generate.pack_policy import keep_packed_here
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       16777216 kB\nMemFree:         1048576 kB\nMemAvailable:    4194304 kB\n"
                    "SwapTotal:      33554432 kB\nSwapFree:       33554432 kB\n")
    assert stream.available_ram(str(info)) == 4 * GB
    assert stream.free_memory(str(info)) == 36 * GB
    machine(False, stream.available_ram(str(info)))
    assert keep_packed_here(10 * GB) is True
    assert keep_packed_here(GB) is False


def test_a_patch_loaded_for_a_cpu_run_is_not_reused_by_a_gpu_run(machine, tmp_path):
    """model_patches/ files (and IP-Adapters) are cached by the model manager: one loaded by a run on the CPU
    (expanded) was handed to the next run on the GPU of the same process, expanded there too (its memory on the card
    the packed form saves), and the reverse kept a GPU run's packed file for CPU runs (their slow step)."""
    from safetensors.torch import save_file
    from graph_engine.devices import running_on
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.model_patch import load
    from nodes.generate.packed_weight import PackedWeight
    from nodes.generate.zimage_control import PROBE
    path = tmp_path / "patch.safetensors"
    save_file({PROBE: torch.randn(64, 128).to(torch.float8_e4m3fn)}, str(path))
    machine(True, 64 * GB)
    mm = ModelManager(3)
    with running_on("cpu"):
        assert not isinstance(load(mm, str(path)).pipe[PROBE], PackedWeight)
    with running_on("cuda"):
        assert isinstance(load(mm, str(path)).pipe[PROBE], PackedWeight)


@pytest.mark.parametrize("files, available", [
    ({"memory.max": "17179869184\n", "memory.current": "4294967296\n"}, 12 * GB),        # cgroup v2: 16 GB limit
    ({"memory/memory.limit_in_bytes": "17179869184\n", "memory/memory.usage_in_bytes": "4294967296\n"}, 12 * GB),
    ({"memory.max": "max\n", "memory.current": "4294967296\n"}, 64 * GB),                # no limit: the machine's
    ({"memory/memory.limit_in_bytes": "9223372036854771712\n", "memory/memory.usage_in_bytes": "1\n"}, 64 * GB),
    ({}, 64 * GB),                                                                      # no cgroup files
])
def test_a_container_limit_is_the_ram_available(tmp_path, files, available):
    """A run in a container (Docker, a Ray worker's pod) limited to 16 GB on a 256 GB host: /proc/meminfo tells the
    host's 64 GB available, and 20 GB of expanded weights were kept expanded, past the limit: the kernel killed the
    run, no word said. What the container's memory cgroup leaves (its limit less its use) bounds it."""
    import nodes.common.stream as stream
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       268435456 kB\nMemAvailable:   67108864 kB\n")
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert stream.available_ram(str(info), str(root)) == available
