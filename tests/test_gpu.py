"""What runs on a CUDA GPU, checked against the CPU on the same inputs.

Most of our users render on a GPU and CI has none, so these tests are skipped there; on a
machine with a CUDA GPU `pytest tests/test_gpu.py -s` runs them and prints the differences.
What only a GPU exercises: pipelines placed on cuda with their fp16/bf16 weights (the
families' `auto` precision), RIFE in half precision with every option, the upscaler's
half-precision tiles, and a whole workflow on `--device cuda`.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Clip
from graph_engine.api import Session, load_workflow
from graph_engine.context import Context
from node_call import Nodes
from nodes.interpolate import nodes as interp_nodes
from nodes.upscale import nodes as up_nodes
from rife_reference import RELEASES, RefIFNet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("animatediff", "svd", "wan", "ltx", "cogvideox", "hunyuan")


def _compare(what, gpu, cpu):
    """Mean and largest difference in grey levels, printed: the figures a GPU run reports."""
    assert gpu.shape == cpu.shape, f"{what}: {gpu.shape} on the GPU, {cpu.shape} on the CPU"
    d = np.abs(gpu.astype(np.float32) - cpu.astype(np.float32))
    print(f"{what}: GPU vs CPU mean {d.mean():.3f}, max {d.max():.0f} grey levels")
    return float(d.mean())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_models import build_all
    return build_all(tmp_path_factory.mktemp("tiny_models"))


def _decoded(tiny, fam, device, dtype):
    wf = load_workflow(ROOT / "examples" / "tiny" / f"{fam}.yaml", check=False)
    res = Session(device=device).run(wf, overrides=[f"load.path={tiny / fam}", f"load.dtype={dtype}"],
                                     targets=["decode"], keep=["decode"], use_cache=False)
    assert res.ok, res.failed
    return res.outputs["decode"]["video"].to_array()


@pytest.mark.parametrize("fam", FAMILIES)
def test_each_family_in_fp32_on_the_gpu_matches_the_cpu(tiny, fam):
    """Rounding differs (cuDNN's algorithms, TF32 convolutions), and random weights amplify it:
    on an H200 five families were within 0.05 grey levels, animatediff 2.0 (5.1 with TF32 matrix
    products too). Noise drawn on another device, a part left on the CPU or a broken cast gives
    tens of levels."""
    assert _compare(f"{fam} fp32", _decoded(tiny, fam, "cuda", "fp32"), _decoded(tiny, fam, "cpu", "fp32")) < 4.0


@pytest.mark.parametrize("fam", FAMILIES)
def test_each_family_in_its_gpu_precision_stays_near_fp32(tiny, fam):
    """`auto` is fp16 or bf16 on a GPU: an overflow there (a black or noise frame) is what users see."""
    gpu, cpu = _decoded(tiny, fam, "cuda", "auto"), _decoded(tiny, fam, "cpu", "fp32")
    assert _compare(f"{fam} auto", gpu, cpu) < 8.0


def test_the_showcase_workflow_on_the_gpu_matches_the_cpu():
    wf = ROOT / "examples" / "default.yaml"
    got = {}
    for device in ("cuda", "cpu"):
        res = Session(device=device).run(load_workflow(wf, check=False), targets=["steady"], keep=["decode", "steady"],
                                         use_cache=False)
        assert res.ok, res.failed
        got[device] = [res.outputs[n]["video"].to_array() for n in ("decode", "steady")]
    assert _compare("showcase decode", got["cuda"][0], got["cpu"][0]) < 1.0
    assert _compare("showcase whole", got["cuda"][1], got["cpu"][1]) < 2.0


@pytest.fixture(scope="module")
def clip():
    """A textured frame moving 2 px per frame: in-betweens that mean something."""
    rng = np.random.default_rng(3)
    base = np.kron(rng.integers(0, 256, (12, 16, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    return np.stack([np.roll(base, 2 * i, axis=1) for i in range(4)])


def _rife_models(tmp_path, monkeypatch):
    (tmp_path / "rife").mkdir()
    for release in RELEASES:
        torch.manual_seed(0)
        torch.save(RefIFNet(release, 4).eval().state_dict(), tmp_path / "rife" / f"rife{release.replace('.', '')}.pth")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))


@pytest.mark.parametrize("release", list(RELEASES))
def test_rife_every_release_and_precision_on_the_gpu(release, clip, tmp_path, monkeypatch):
    _rife_models(tmp_path, monkeypatch)
    interp = Nodes(interp_nodes)
    model = f"rife{release.replace('.', '')}.pth"
    run = lambda device, **kw: interp.rife(Context("r", device=device), Clip.from_array(clip), model=model,  # noqa: E731
                                           factor=2, scene_threshold=0, **kw).to_array()
    cpu = run("cpu")
    assert _compare(f"rife {release} fp32", run("cuda", precision="fp32"), cpu) < 0.5
    for precision in ("fp16", "bf16"):
        assert _compare(f"rife {release} {precision}", run("cuda", precision=precision), cpu) < 2.0
    options = dict(ensemble=True, scale=2.0, batch=3)
    assert _compare(f"rife {release} fp16 ensemble scale 2 batch 3", run("cuda", precision="fp16", **options),
                    run("cpu", **options)) < 2.0


def test_upscale_model_in_half_precision_tiles_on_the_gpu(tmp_path, clip, monkeypatch):
    from nodes.upscale.spandrel_loader import spandrel
    spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN
    torch.manual_seed(0)
    (tmp_path / "upscale_models").mkdir()
    torch.save(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2).state_dict(),
               tmp_path / "upscale_models" / "tiny_esrgan.pth")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    up = Nodes(up_nodes)
    run = lambda device, tile: up.model(Context("u", device=device), Clip.from_array(clip), model="tiny_esrgan",  # noqa: E731
                                        tile=tile, overlap=4).to_array()
    cpu = run("cpu", 0)
    assert _compare("upscale whole", run("cuda", 0), cpu) < 2.0
    assert _compare("upscale tiles of 16", run("cuda", 16), cpu) < 2.0


def test_freeinit_reruns_on_the_gpu_as_on_the_cpu(tmp_path):
    """Its second pass mixed the first pass's result (on the GPU) with noise drawn on the CPU:
    'Expected all tensors to be on the same device' on every GPU run with iterations > 1."""
    from graph_engine.api import Session
    from test_context_windows import build_tiny_mini, mini_graph
    wf = mini_graph(build_tiny_mini(tmp_path), frames=8, noise="noise.independent", noise_params="{seed: 2}",
                    wrapper="noise.freeinit", wrapper_params="{iterations: 2}", steps=4)
    got = {}
    for device in ("cuda", "cpu"):
        res = Session(device=device, use_disk=False).run(wf, use_cache=False)
        assert res.ok, res.failed
        got[device] = res.outputs["sample"]["latent"].samples.cpu()
    err = float((got["cuda"] - got["cpu"]).abs().max() / got["cpu"].abs().max())
    print(f"freeinit: GPU vs CPU latent max difference {err:.2%} of the largest value")
    assert err < 0.02      # an H200 gave 0.6% (TF32 convolutions)
