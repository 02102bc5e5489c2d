"""Marigold v2 depth, normals and albedo as ComfyUI's three image_marigold_v2_* templates run them: each template
imported and run on a tiny random-weight Qwen-Image transformer (the template's qwen_image_edit_2509 file) with a
task LoRA, a Qwen-Image VAE and a stored conditioning, against Marigold v2's published single step
(huawei-bayerlab/marigold-v2, QwenImageEdit2509Step: the picture's normalised latent minus the transformer's output at
timestep 0.5) written out here with diffusers' QwenImageTransformer2DModel and AutoencoderKLQwenImage on the same
weights, and ComfyUI's MarigoldV2PostProcess maths written out here. diffusers has no Marigold v2 pipeline (its
Marigold pipelines are v1's Stable Diffusion 2 UNets), so its maths is not the reference."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 48, 32
TASKS = {"depth": ("image_marigold_v2_depth_estimation.json", "marigold_v2_depth_log_stage2"),
         "normals": ("image_marigold_v2_surface_normal_estimation.json", "marigold_v2_normals"),
         "albedo": ("image_marigold_v2_albedo_estimation.json", "marigold_v2_albedo")}
LORA_LAYERS = ("transformer_blocks.0.attn.to_q", "transformer_blocks.1.img_mlp.net.0.proj", "proj_out")
RANK, ALPHA = 4, 2.0


def _lora(transformer, seed: int) -> dict:
    """A LoRA in the lora_down / lora_up / alpha layout on diffusers' layer names."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in LORA_LAYERS:
        w = transformer.get_submodule(name).weight
        out[f"{name}.lora_down.weight"] = torch.randn(RANK, w.shape[1], generator=g) * 0.3
        out[f"{name}.lora_up.weight"] = torch.randn(w.shape[0], RANK, generator=g) * 0.3
        out[f"{name}.alpha"] = torch.tensor(ALPHA)
    return out


@pytest.fixture(scope="module")
def marigold(tmp_path_factory):
    import copy
    import cv2
    from safetensors.torch import save_file
    from tiny_models import wan_original_vae
    from tiny_qwen import parts
    root = tmp_path_factory.mktemp("marigold")
    models = root / "models"
    for sub in ("diffusion_models", "loras", "vae", "embeddings"):
        (models / sub).mkdir(parents=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    transformer, vae, _ = parts()
    bf16 = lambda sd: {k: v.bfloat16().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(bf16(transformer.state_dict()),
              str(models / "diffusion_models" / "qwen_image_edit_2509_int8_convrot.safetensors"))
    refs = {}
    for i, (task, (_, stem)) in enumerate(TASKS.items()):
        lora = _lora(transformer, 10 + i)
        save_file(lora, str(models / "loras" / f"{stem}.safetensors"))
        merged = copy.deepcopy(transformer)
        with torch.no_grad():       # W + strength (alpha / rank) up @ down, strength 1 as the templates load it
            for name in LORA_LAYERS:
                merged.get_submodule(name).weight += ALPHA / RANK * (
                    lora[f"{name}.lora_up.weight"] @ lora[f"{name}.lora_down.weight"])
        save_file(bf16(wan_original_vae(vae.state_dict())), str(models / "vae" / f"{stem}_vae.safetensors"))
        cond = (torch.randn(1, 5 + i, 128, generator=torch.Generator().manual_seed(20 + i))).bfloat16()
        name = stem.replace("_log_stage2", "") + "_conditioning.safetensors"
        save_file({"conditioning": cond}, str(models / "embeddings" / name))
        refs[task] = (merged, cond.float())
    rng = np.random.default_rng(3)
    picture = np.clip(np.linspace(0, 1, W)[None, :, None] * 0.8 + rng.uniform(0, 0.2, (H, W, 3)), 0, 1)
    picture = (picture * 255).round().astype(np.uint8)
    cv2.imwrite(str(root / "picture.png"), picture[:, :, ::-1])
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(models))
    yield {"root": root, "vae": vae, "refs": refs, "picture": picture, "base": transformer}
    torch.set_num_threads(threads)
    mp.undo()


def _published_step(transformer, vae, cond, picture: np.ndarray) -> np.ndarray:
    """Marigold v2's QwenImageEncode -> QwenImageEdit2509Step -> QwenImageDecode (the VAE's mode for the sample it
    draws), then ComfyUI's VAEDecode ((x + 1) / 2 in 0..1): [H, W, 3]."""
    from diffusers import QwenImageEditPipeline
    x = torch.from_numpy(picture.astype(np.float32) / 255).permute(2, 0, 1)[None, :, None] * 2 - 1
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape)
    std = torch.tensor(vae.config.latents_std).view(shape)
    with torch.no_grad():
        z = (vae.encode(x).latent_dist.mode() - mean) / std
        b, c, _, h, w = z.shape
        packed = QwenImageEditPipeline._pack_latents(z[:, :, 0], b, c, h, w)
        v = transformer(hidden_states=packed, timestep=torch.tensor([0.5]), encoder_hidden_states=cond,
                        encoder_hidden_states_mask=None, img_shapes=[[(1, h // 2, w // 2)]], return_dict=False)[0]
        v = QwenImageEditPipeline._unpack_latents(v, H, W, 8)
        img = vae.decode((z - v) * std + mean).sample[:, :, 0]
    return ((img[0] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()


def _comfy_post(image: torch.Tensor, prediction: str) -> torch.Tensor:
    """ComfyUI's MarigoldV2PostProcess.execute on an IMAGE batch [N, H, W, 3] (comfy_extras/nodes_marigold.py)."""
    import torch.nn.functional as F
    if prediction == "normals":
        return (F.normalize(image * 2.0 - 1.0, dim=-1) + 1.0) * 0.5
    if prediction == "albedo":
        return torch.where(image <= 0.0031308, image * 12.92,
                           1.055 * image.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055)
    d = image.mean(dim=-1, keepdim=True)
    lo = d.amin(dim=(1, 2, 3), keepdim=True)
    hi = d.amax(dim=(1, 2, 3), keepdim=True)
    return ((hi - d) / (hi - lo).clamp(min=1e-6)).repeat(1, 1, 1, 3)


def _run(root: Path, template: str, out: str, edit=None):
    from comfy_layouts import run_on_picture
    return run_on_picture(TEMPLATES / template, root / "picture.png", root / "out" / out, edit)


@pytest.mark.parametrize("task", list(TASKS))
def test_marigold_template_runs_as_the_published_step(marigold, task):
    """ComfyUI's Marigold v2 template for the task imported node for node (UNETLoader, LoraLoaderModelOnly,
    ModelSamplingAuraFlow img_to_img_velocity, ConditioningLoader, VAEEncode, DisableNoise, ManualSigmas "0.5, 0",
    euler, VAEDecode, MarigoldV2PostProcess with the template's prediction) gives the published step on the same
    weights, post-processed by ComfyUI's maths, to within 8-bit rounding (Kinograph's pictures between nodes are
    8-bit: the reference's decoded picture is rounded the same way)."""
    from PIL import Image
    template, _ = TASKS[task]
    wf, run = _run(marigold["root"], template, task)
    assert run.ok, run.failed
    types = {n.type: n.params for n in wf.graph.nodes.values()}
    assert types["depth.marigold_pass"]["prediction"] == task
    assert types["model.flow_shift"]["sampling"] == "img_to_img_velocity"
    assert types["generate.sample"]["add_noise"] is False and types["generate.sample"]["sigmas"] == "0.5, 0"
    png = sorted((marigold["root"] / "out" / task).rglob("*.png"))
    assert len(png) == 1
    got = np.asarray(Image.open(png[0]).convert("RGB")).astype(np.float32) / 255
    transformer, cond = marigold["refs"][task]
    decoded = _published_step(transformer, marigold["vae"], cond, marigold["picture"])
    assert decoded.std() > 0.02                 # a picture with something in it, not a flat clamp
    eight_bit = torch.from_numpy(np.round(decoded * 255) / 255)[None]
    want = _comfy_post(eight_bit, task)[0].numpy()
    assert got.shape == want.shape == (H, W, 3)
    err = np.abs(got - want)
    assert err.max() <= 1.5 / 255, (task, float(err.max()) * 255)
    # the LoRA and the stored prompt each count: the step without either is another picture
    for other in ((marigold["base"], cond), (transformer, cond * 0)):
        assert np.abs(_published_step(*other[:1], marigold["vae"], other[1], marigold["picture"]) - decoded).max() \
            > 0.01


def test_clip_spread_holds_the_depth_levels_over_a_shot():
    """depth.marigold_pass spread clip stretches every frame by the clip's lowest and highest mean (a shot's levels
    hold when something comes into it); spread frame is ComfyUI's per-frame stretch."""
    from nodes.generate.marigold import post
    rng = np.random.default_rng(0)
    frames = rng.uniform(0.2, 0.6, (2, 4, 5, 3)).astype(np.float32)
    frames[1] += 0.3
    per_frame = post(frames, "depth")
    want = _comfy_post(torch.from_numpy(frames), "depth").numpy()
    assert np.abs(per_frame - want).max() < 1e-6
    d = frames.mean(-1, keepdims=True)
    clip = post(frames, "depth", (float(d.min()), float(d.max())))
    assert np.abs(clip - np.repeat((d.max() - d) / (d.max() - d.min()), 3, -1)).max() < 1e-6
    assert clip[1].max() < 0.8 and clip[0].min() > 0.2     # the nearer frame stays brighter, the farther darker


def test_normals_and_albedo_are_comfyuis():
    from nodes.generate.marigold import post
    frames = np.random.default_rng(1).uniform(0, 1, (1, 6, 7, 3)).astype(np.float32)
    frames[0, 0, 0] = 0.5                           # a zero normal stays zero (0.5), as F.normalize leaves it
    for task in ("normals", "albedo"):
        want = _comfy_post(torch.from_numpy(frames), task).numpy()
        assert np.abs(post(frames, task) - want).max() < 1e-5, task


def _hostile_pickle(path: Path) -> None:
    import os
    import pickle

    class Run:
        def __reduce__(self):
            return (os.system, ("echo hostile",))
    path.write_bytes(pickle.dumps({"conditioning": Run()}))


def test_conditioning_loader_refuses_wrong_and_hostile_files(tmp_path):
    """Load Conditioning reads tensors only: a pickle that would run code, a file without a 'conditioning' tensor, one
    with tensors it would not pass on, a broken safetensors and a file of another kind are each refused by name;
    a torch file of plain tensors and a safetensors with its attention_mask are read."""
    from safetensors.torch import save_file
    from graph_engine import NodeError
    from nodes.generate.marigold import load_conditioning
    _hostile_pickle(tmp_path / "hostile.pt")
    with pytest.raises(NodeError, match="refused"):
        load_conditioning(tmp_path / "hostile.pt", "qwenimage")
    save_file({"clip_l": torch.zeros(2, 768)}, str(tmp_path / "ti.safetensors"))
    with pytest.raises(NodeError, match="holds no conditioning.*clip_l"):
        load_conditioning(tmp_path / "ti.safetensors", "qwenimage")
    save_file({"conditioning": torch.zeros(1, 3, 8), "pooled_output": torch.zeros(1, 8)},
              str(tmp_path / "extra.safetensors"))
    with pytest.raises(NodeError, match="pooled_output"):
        load_conditioning(tmp_path / "extra.safetensors", "qwenimage")
    (tmp_path / "cut.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{\"conditioning\"")
    with pytest.raises(NodeError):
        load_conditioning(tmp_path / "cut.safetensors", "qwenimage")
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(NodeError, match="safetensors"):
        load_conditioning(tmp_path / "notes.json", "qwenimage")
    torch.save({"conditioning": torch.ones(1, 3, 8)}, str(tmp_path / "plain.pt"))
    assert tuple(load_conditioning(tmp_path / "plain.pt", "qwenimage").embeds.shape) == (1, 3, 8)
    save_file({"conditioning": torch.ones(1, 3, 8), "attention_mask": torch.tensor([[1, 1, 0]])},
              str(tmp_path / "masked.safetensors"))
    c = load_conditioning(tmp_path / "masked.safetensors", "qwenimage")
    assert c.family == "qwenimage" and c.mask.tolist() == [[True, True, False]]


def test_a_conditioning_of_another_width_is_named(marigold):
    """A stored prompt of another model's width (here 64 for the tiny transformer's 128): the run stops naming both
    widths, not with a matrix-shape traceback."""
    from safetensors.torch import save_file
    emb = Path(marigold["root"]) / "models" / "embeddings" / "narrow_conditioning.safetensors"
    save_file({"conditioning": torch.zeros(1, 4, 64)}, str(emb))

    def narrow(n):
        if n.type == "condition.load":
            n.params["name"] = emb.name
    _, run = _run(marigold["root"], TASKS["depth"][0], "narrow", narrow)
    assert not run.ok
    message = " ".join(str(v) for v in run.failed.values())
    assert "64 wide" in message and "128-wide" in message


def test_img_to_img_velocity_with_noise_is_refused(marigold):
    """img_to_img_velocity starts from the picture's latent itself: sample with add_noise on says to turn it off."""
    def noisy(n):
        if n.type == "generate.sample":
            n.params["add_noise"] = True
    _, run = _run(marigold["root"], TASKS["depth"][0], "noisy", noisy)
    assert not run.ok
    assert "add_noise off" in " ".join(str(v) for v in run.failed.values())


def test_a_whole_clip_gets_one_depth_range(marigold, tmp_path):
    """The depth template on a plate sequence (its LoadImage swapped for io.load_frames, the pass's spread clip):
    every frame is the published step, and all are stretched by the clip's lowest and highest depth together, so a
    frame's levels do not jump with what is in it."""
    import cv2
    from PIL import Image
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    plate = tmp_path / "plate"
    plate.mkdir()
    frames = [np.roll(marigold["picture"], 8 * i, axis=1) // (1 + i) for i in range(3)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(plate / f"shot.{1001 + i}.png"), f[:, :, ::-1])
    yaml = import_workflow(str(TEMPLATES / TASKS["depth"][0])).yaml
    yaml = yaml.replace("type: io.load_image", "type: io.load_frames").replace(
        "path: ev_suv_gold_desert_pavilion.png", f"path: {plate}/shot.####.png").replace(
        "spread: frame", "spread: clip").replace("load_image_12.image", "load_image_12.video")
    wf = load_workflow(text=yaml, check=False)
    next(n for n in wf.graph.nodes.values() if n.type == "io.save_frames").params["path"] = str(tmp_path / "out")
    run = Session(device="cpu").run(wf, use_cache=False)
    assert run.ok, run.failed
    got = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted((tmp_path / "out").rglob("*.png"))])
    transformer, cond = marigold["refs"]["depth"]
    decoded = np.stack([np.round(_published_step(transformer, marigold["vae"], cond, f) * 255) / 255 for f in frames])
    d = decoded.mean(-1, keepdims=True)
    want = np.repeat((d.max() - d) / (d.max() - d.min()), 3, -1)
    assert got.shape == want.shape == (3, H, W, 3)
    # Both sides pass the decode through 8 bits before the stretch; float rounding order (the CPU's vector width)
    # may put one channel of a decoded pixel one level to the other side, which the stretch by 1 / range multiplies
    # (a third of a level in the grey mean): 1.5 levels held on one machine and 2.1 on another for 3 pixels of 4608.
    flip = 1 / 3 / (d.max() - d.min())
    assert np.abs(got / 255 - want).max() <= (1.5 + flip) / 255


@pytest.mark.parametrize("spread", ["clip", "frame"])
def test_depth_pass_on_a_sequence(tmp_path, spread):
    """depth.marigold_pass over a plate sequence whose frames' depths span different ranges: spread clip stretches
    all by the clip's lowest and highest mean, spread frame each by its own (ComfyUI's maths)."""
    import cv2
    from PIL import Image
    from graph_engine.api import Session, load_workflow
    rng = np.random.default_rng(5)
    frames = [(rng.uniform(lo, hi, (12, 16, 3)) * 255).round().astype(np.uint8) for lo, hi in ((0.1, 0.4), (0.5, 0.9))]
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"d.{i:04d}.png"), f[:, :, ::-1])
    wf = load_workflow(text=f"""kinograph: 1
nodes:
  plate: {{type: io.load_frames, params: {{path: "{tmp_path}/d.####.png"}}}}
  pass: {{type: depth.marigold_pass, params: {{prediction: depth, spread: {spread}}}, inputs: {{video: plate.video}}}}
  save: {{type: io.save_frames, params: {{path: "{tmp_path}/out"}}, inputs: {{video: pass.video}}}}
""", check=False)
    run = Session(device="cpu").run(wf, use_cache=False)
    assert run.ok, run.failed
    got = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted((tmp_path / "out").rglob("*.png"))])
    x = torch.from_numpy(np.stack(frames).astype(np.float32) / 255)
    if spread == "frame":
        want = _comfy_post(x, "depth").numpy()
    else:
        d = x.mean(-1, keepdim=True)
        want = ((d.max() - d) / (d.max() - d.min())).repeat(1, 1, 1, 3).numpy()
        assert want[0].min() > 0.3 and want[1].max() < 0.7     # the far frame stays dark, the near one light
    assert np.abs(got / 255 - want).max() <= 0.6 / 255
