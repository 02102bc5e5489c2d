"""What loading a single-file checkpoint costs in memory, and when that memory is given back: a 16 GB laptop holds
one or two real models, not every model a session has named."""
import gc
import shutil
import sys
import weakref
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two SD 1.5 checkpoints (the tiny one and a copy under another name), each with its tokenizer folder."""
    from tiny_models import build_sd15_single_file
    ck = build_sd15_single_file(tmp_path_factory.mktemp("sd15")) / "models" / "checkpoints"
    shutil.copy(ck / "sd15_tiny.safetensors", ck / "other.safetensors")
    shutil.copytree(ck / "sd15_tiny", ck / "other")
    return ck


def _workflow(path: Path):
    from graph_engine.api import load_workflow
    return load_workflow(text=f"""kinograph: 1
nodes:
  load: {{type: load.sd, params: {{path: "{path.as_posix()}"}}}}
  prompt: {{type: encode.text, inputs: {{text_encoder: load.text_encoder}}, params: {{text: a cat}}}}
""")


def test_a_model_the_manager_lets_go_is_freed_though_a_session_ran_it(checkpoints):
    # The editor's session keeps node results in the engine's memory cache; a load node's result (the model's
    # handle) counted as 256 bytes there, so every checkpoint a session ever ran stayed in memory after the model
    # manager had evicted it. Now a handle counts the weights it holds, and a model larger than the cache's budget
    # is not kept by it.
    from graph_engine.api import Session
    from nodes.generate.handles import pipeline_bytes
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager(max_loaded=1)
    session = Session(device="cpu", use_disk=False, models=mm, memory_budget=1 << 20)
    assert session.run(_workflow(checkpoints / "sd15_tiny.safetensors"), keep=()).ok
    first = next(iter(mm._cache.values()))
    assert pipeline_bytes(first) > 1 << 20
    gone = weakref.ref(first)
    del first
    assert session.run(_workflow(checkpoints / "other.safetensors"), keep=()).ok
    gc.collect()
    assert gone() is None
    assert len(mm._cache) == 1


def test_a_handle_counts_the_weights_of_its_pipeline(checkpoints):
    from graph_engine.cache import value_nbytes
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager()
    h = mm.load("sd", str(checkpoints / "sd15_tiny.safetensors"), dtype="fp16")
    p = h.pipe
    weights = sum(t.numel() * 2 for m in (p.unet, p.vae, p.text_encoder) for t in m.state_dict().values()
                  if t.is_floating_point())
    assert value_nbytes(h) >= weights
    assert value_nbytes(mm.components(h)["text_encoder"]) == value_nbytes(h)


def _mapped(path: Path):
    """The address ranges of this process's memory maps of `path`."""
    target = str(path.resolve())
    with open("/proc/self/maps") as f:
        return [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in f if line.rstrip().endswith(target)]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_an_fp16_checkpoint_loaded_in_fp16_is_the_file_mapped_not_a_copy(checkpoints):
    # A 2 GB SD 1.5 file loads into no new memory of its own: the model's tensors are the file's pages, which the
    # kernel shares with its file cache (bench/model_load.py: anon memory stays at the process's base).
    from nodes.generate.model_manager import ModelManager
    path = checkpoints / "sd15_tiny.safetensors"
    h = ModelManager().load("sd", str(path), dtype="fp16")
    ranges = _mapped(path)
    weights = [p for m in (h.pipe.unet, h.pipe.vae, h.pipe.text_encoder) for p in m.parameters()]
    assert ranges and all(p.dtype.itemsize == 2 for p in weights)
    inside = [any(a <= p.data_ptr() < b for a, b in ranges) for p in weights]
    assert all(inside), f"{inside.count(False)} of {len(weights)} tensors copied out of the file"


def test_a_model_evicted_for_another_is_freed_before_the_other_loads():
    # With one model allowed, a switch of checkpoint loaded the new model first and evicted the old one after:
    # both were in memory at once (two SD 1.5 models in fp32: 8.6 GB, where 4.3 GB was promised).
    from nodes.generate.model_manager import ModelManager

    class Weights:
        pass
    mm = ModelManager(max_loaded=1)
    gone = weakref.ref(mm.cached(("model", "a.safetensors"), Weights))
    seen = []

    def build_b():
        seen.append(gone() is None)
        return Weights()
    mm.cached(("model", "b.safetensors"), build_b)
    assert seen == [True]
    assert [k[:2] for k in mm._cache] == [("model", "b.safetensors")]


def test_a_model_held_in_a_reference_cycle_is_freed_when_evicted():
    # An evicted value its reference count frees skips the full collection; one a cycle holds (a pipeline and its
    # components pointing at each other) must still be collected before the next model loads.
    from nodes.generate.model_manager import ModelManager

    class Weights:
        pass

    def cyclic():
        w = Weights()
        w.me = w
        return w
    mm = ModelManager(max_loaded=1)
    gone = weakref.ref(mm.cached(("model", "a.safetensors"), cyclic))
    seen = []
    mm.cached(("model", "b.safetensors"), lambda: seen.append(gone() is None) or Weights())
    assert seen == [True]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_sdxls_openclip_g_is_the_file_mapped_not_q_k_v_copies(tmp_path_factory):
    # diffusers' converter clones q, k and v out of OpenCLIP-G's fused in_proj: 315 MB of a real SDXL checkpoint
    # (bench/model_load.py --models sdxl --scale 1: anon 0.31 GB over the base) held as long as the model.
    from tiny_models import build_sdxl_single_file
    from nodes.generate.model_manager import ModelManager
    path = build_sdxl_single_file(tmp_path_factory.mktemp("sdxl")) / "models" / "checkpoints" / "sdxl_tiny.safetensors"
    h = ModelManager().load("sdxl", str(path), dtype="fp16")
    ranges = _mapped(path)
    outside = [n for n, p in h.pipe.text_encoder_2.named_parameters()
               if not any(a <= p.data_ptr() < b for a, b in ranges)]
    assert ranges and outside == []
