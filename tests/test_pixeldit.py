"""PixelDiT pictures: the files a PixelDiT user holds (Comfy-Org/PixelDiT: the transformer in its released names, bf16;
Gemma-2-2B loaded with CLIPLoader type pixeldit; VAELoader's pixel_space) are recognised, load, and give what
ComfyUI's own code gives for the same weights, prompt and seed. The reference is ComfyUI's PixelDiT, its Gemma 2 and
its PixelDiT tokenizer written out in tests/tiny_pixeldit.py (comfy/ldm/pixeldit/model.py and modules.py,
comfy/text_encoders/llama.py's Gemma2_2B, comfy/text_encoders/pixeldit.py); it shares no code with Kinograph's."""
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48
PID_STEPS = 2


@pytest.fixture(scope="module")
def pixeldit(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_pixeldit import build_pixeldit
    yield from models_dir(tmp_path_factory, build_pixeldit, "pixeldit")


def _max_diff(want, got):
    return float((want - got).abs().max())


def test_pixeldit_transformer_file_matches_comfyuis(pixeldit):
    """The bf16 file is told PixelDiT's, loads with load.diffusion_model and predicts ComfyUI's model's output on the
    same weights, with a full 300-token prompt and a shorter one."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_pixeldit import MODEL, reference
    assert detect_file(pixeldit / "models" / "diffusion_models" / MODEL).family == "pixeldit"
    model = load_diffusion_model(ModelManager(), MODEL, "default", "cpu").pipe.transformer
    ref = reference(pixeldit)
    torch.manual_seed(0)
    x, context = torch.randn(2, 3, H, W), torch.randn(2, 300, 32)
    with torch.no_grad():
        for c in (context, context[:, :7]):
            want = ref(x, torch.tensor([700.0, 250.0]), c)
            assert float(want.abs().max()) > 0.1
            # float32 in another order of operations: within 2e-5 of the output's size
            assert _max_diff(want, model(x, torch.tensor([700.0, 250.0]), c)) < 2e-5 * float(want.abs().max())


def test_pixel_mlp_runs_in_pieces_as_comfyuis(pixeldit, monkeypatch):
    """The pixel blocks' MLP (64 values per pixel: 2 GB per block at PiD's 4096 px in bf16) runs over a bounded number
    of patches at a time, as ComfyUI's PiTBlock chunks it, and the output is still ComfyUI's."""
    from nodes.generate import pixeldit_model
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_pixeldit import MODEL, reference
    model = load_diffusion_model(ModelManager(), MODEL, "default", "cpu").pipe.transformer
    monkeypatch.setattr(pixeldit_model, "PIXEL_MLP_PATCHES", 5)      # 12 patches per picture here: 5, 5 and 2
    rows = []
    hooks = [blk.mlp.fc1.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
             for blk in model.pixel_blocks]
    torch.manual_seed(0)
    x, context = torch.randn(1, 3, H, W), torch.randn(1, 300, 32)
    with torch.no_grad():
        got = model(x, torch.tensor([400.0]), context)
        want = reference(pixeldit)(x, torch.tensor([400.0]), context)
    for h in hooks:
        h.remove()
    assert rows and max(rows) <= 5
    assert _max_diff(want, got) < 2e-5 * float(want.abs().max())


def test_pixeldit_text_encoder_reads_the_prompt_as_comfyui(pixeldit):
    """CLIPLoader type pixeldit (or auto): Gemma 2 from ComfyUI's file (its sentencepiece inside), the prompt after
    PixelDiT's instruction, padded and masked, its first and last 299 states; an empty prompt is <bos> and padding."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from tiny_pixeldit import TE, reference_states
    for kind in ("pixeldit", "auto"):
        te = load_text_encoder(ModelManager(), TE, "", kind, "cpu")
        assert te.family == "pixeldit"
    for prompt in ("A red fox runs through snowy pines at dawn", ""):
        got, want = encode_prompt(te, prompt).embeds.float(), reference_states(pixeldit, prompt)
        assert got.shape == want.shape == (1, 300, 32)
        assert _max_diff(want, got) < 1e-5 * float(want.abs().max())


def test_pixeldit_refuses_another_encoder_and_a_bad_size(pixeldit, tmp_path):
    """A prompt of another width and a picture off the 16-pixel patch are named, with what to do."""
    from graph_engine import NodeError
    from nodes.generate.adapters import get_adapter
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_pixeldit import MODEL
    handle = load_diffusion_model(ModelManager(), MODEL, "default", "cpu")
    adapter = get_adapter("pixeldit")
    latent = type("L", (), {"samples": torch.zeros(1, 3, 1, 40, 64)})()
    with pytest.raises(NodeError, match="16x16 pixel squares"):
        adapter.check_latent(handle, latent)
    latent.samples = torch.zeros(1, 16, 1, 48, 64)
    with pytest.raises(NodeError, match="pixel_space"):
        adapter.check_latent(handle, latent)


def _levels(shift, steps):
    """ComfyUI's simple schedule on ModelSamplingDiscreteFlow's 1000 levels at `shift`, then 0."""
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    sigmas = shift * t / (1 + (shift - 1) * t)
    return [float(sigmas[-(1 + int(i * 1000 / steps))]) for i in range(steps)] + [0.0]


def _sample(model, cond, uncond, cfg, seed, shape, steps):
    """ComfyUI's KSampler (euler) on a flow model told sigma x 1000: x0 = x - sigma * model(x, 1000 sigma); CFG."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    levels = _levels(4.0, steps)
    x = x * levels[0]
    with torch.no_grad():
        for s, nxt in zip(levels, levels[1:]):
            t = torch.tensor([s * 1000], dtype=torch.float32)
            c = x - s * model(x, t, cond)
            u = x - s * model(x, t, uncond)
            den = u + cfg * (c - u)
            x = x + (x - den) / s * (nxt - s)
    return x


def test_comfyui_pixeldit_template_imports_and_runs(pixeldit, tmp_path, monkeypatch):
    """ComfyUI's image_pixeldit_t2i (a subgraph: UNETLoader, CLIPLoader type pixeldit, VAELoader pixel_space,
    EmptyChromaRadianceLatentImage, KSampler cfg 4 on simple) imports with every node mapped and runs on the tiny
    files linked under the template's names (64x48, 2 steps, euler for the template's er_sde, whose noise ComfyUI
    draws apart), saving a picture; the latent is ComfyUI's model's for the template's prompts and seed."""
    from comfy_layouts import imported_template, sampled_latent
    from tiny_pixeldit import MODEL, TE, reference, reference_states
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(pixeldit / "models", (
        ("diffusion_models/pixeldit_1300m_1024px_bf16.safetensors", f"diffusion_models/{MODEL}"),
        ("text_encoders/gemma_2_2b_it_elm_bf16.safetensors", f"text_encoders/{TE}")),
        TEMPLATES / "image_pixeldit_t2i.json", (W, H), (30, 2))
    assert "type: pixeldit" in yaml and "name: pixel_space" in yaml and "sampler: er_sde" in yaml, yaml
    got = sampled_latent(tmp_path / "pixeldit.kino.yaml", yaml.replace("sampler: er_sde", "sampler: euler"))
    assert (tmp_path / "out" / "PixelDiT" / "frame_000000.png").is_file()
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    seed, _, _, cfg = next(n for n in sub if n["type"] == "KSampler")["widgets_values"][:4]
    texts = {n["id"]: n["widgets_values"][0] for n in sub if n["type"] == "CLIPTextEncode"}
    want = _sample(reference(pixeldit), reference_states(pixeldit, texts[6]), reference_states(pixeldit, texts[30]),
                   cfg, seed, got.shape, 2)
    print("latent max abs diff", _max_diff(want, got))
    assert float(want.abs().max()) > 0.1 and _max_diff(want, got) < 1e-4
    assert re.search(r"steps: 2\b", yaml)


def test_pid_transformer_file_matches_comfyuis(pixeldit):
    """A PiD file (lq_proj: the branch reading FLUX.1's latent) is told PiD, loads as PixelDiT's variant and predicts
    ComfyUI's PidNet's output: the latent brought to the patch grid, gated into every second patch block by its
    degrade_sigma (one for the batch, or one per row), NTK-stretched angles on both levels."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_pixeldit import PID, reference
    det = detect_file(pixeldit / "models" / "diffusion_models" / PID)
    assert (det.family, det.variant) == ("pixeldit", "pid-16ch")
    model = load_diffusion_model(ModelManager(), PID, "default", "cpu").pipe.transformer
    ref = reference(pixeldit, PID)
    torch.manual_seed(0)
    x, context, lq = torch.randn(2, 3, 4 * H, 4 * W), torch.randn(2, 300, 32), torch.randn(2, 16, H // 8, W // 8)
    with torch.no_grad():
        for sigma in (torch.tensor([0.0]), torch.tensor([0.3, 0.9])):
            kw = dict(lq_latent=lq, degrade_sigma=sigma)
            want = ref(x, torch.tensor([700.0, 250.0]), context, **kw)
            got = model(x, torch.tensor([700.0, 250.0]), context, **kw)
            assert _max_diff(want, got) < 2e-5 * float(want.abs().max())


@pytest.fixture(scope="module")
def pid(tmp_path_factory):
    """Z-Image's tiny files (tests/tiny_zimage.py) and PixelDiT's, PiD's among them, in one models folder."""
    from comfy_layouts import models_dir
    from tiny_pixeldit import build_pixeldit
    from tiny_zimage import build_zimage
    yield from models_dir(tmp_path_factory, lambda root: build_pixeldit(build_zimage(root)), "pid")


def _lcm(model, cond, lq, seed, shape, steps):
    """ComfyUI's SamplerCustom (lcm, cfg 1) on PiD (shift 1.5, BasicScheduler simple): x0 = x - sigma * model(x);
    the next x is x0 noised to the next level with noise from the sampler's own generator (default_noise_sampler:
    seeded with the seed + 1 on the CPU)."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    steps_noise = torch.Generator().manual_seed(seed + 1)
    levels = _levels(1.5, steps)
    x = x * levels[0]
    with torch.no_grad():
        for s, nxt in zip(levels, levels[1:]):
            x = x - s * model(x, torch.tensor([s * 1000], dtype=torch.float32), cond, lq_latent=lq,
                              degrade_sigma=torch.tensor([0.0]))
            if nxt > 0:
                x = nxt * torch.randn(shape, generator=steps_noise) + (1 - nxt) * x
    return x


def test_comfyui_pid_template_imports_and_runs(pid, tmp_path, monkeypatch):
    """ComfyUI's utility_pid_latent_upscale_dit (Z-Image Turbo's picture, its latent handed to PiD through
    PiDConditioning with latent_format flux; PiD at 4x on a pixel_space latent, SamplerCustom lcm 4 steps at cfg 1)
    imports with every node mapped and runs on the tiny files linked under its names (a 64x48 Z-Image picture to a
    256x192 PiD one, 2 steps each), saving the picture; PiD's latent is ComfyUI's PidNet's sampling from the same
    Z-Image latent, prompt and seed."""
    from comfy_layouts import imported_template
    from graph_engine.api import Session, load_workflow
    from tiny_pixeldit import PID, TE, reference, reference_states
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(pid / "models", (
        ("diffusion_models/z_image_turbo_bf16.safetensors", "diffusion_models/z_image_turbo_tiny.safetensors"),
        ("text_encoders/qwen_3_4b.safetensors", "text_encoders/qwen_3_4b_tiny.safetensors"),
        ("text_encoders/qwen_3_4b", "text_encoders/qwen_3_4b_tiny"),
        ("diffusion_models/pid_flux1_1024_to_4096_4step_bf16.safetensors", f"diffusion_models/{PID}"),
        ("text_encoders/gemma_2_2b_it_elm_fp8_scaled.safetensors", f"text_encoders/{TE}")),
        TEMPLATES / "utility_pid_latent_upscale_dit.json", (W, H), (8, 2))
    assert "type: condition.pid" in yaml and "latent_format: flux" in yaml, yaml
    yaml = yaml.replace("width: 4096", f"width: {4 * W}").replace("height: 4096", f"height: {4 * H}")
    yaml = yaml.replace("steps: 4", f"steps: {PID_STEPS}")
    (tmp_path / "pid.kino.yaml").write_text(yaml)
    out = Session(device="cpu").run(load_workflow(tmp_path / "pid.kino.yaml", check=False), use_cache=False)
    assert out.ok, out.failed
    assert (tmp_path / "out" / "PiD" / "frame_000000.png").is_file()
    zimage = next(v["latent"] for k, v in out.outputs.items() if k.startswith("k_sampler")).samples[:, :, 0]
    got = next(v["latent"] for k, v in out.outputs.items() if k.startswith("sampler_custom")).samples[:, :, 0]
    assert got.shape == (1, 3, 4 * H, 4 * W) and zimage.shape == (1, 16, H // 8, W // 8)
    sub = next(s for s in data["definitions"]["subgraphs"] if "PiD" in s["name"])["nodes"]
    _, seed, _, _ = next(n for n in sub if n["type"] == "SamplerCustom")["widgets_values"]
    text = next(n for n in data["nodes"] if n["type"] == "PrimitiveStringMultiline")["widgets_values"][0]
    want = _lcm(reference(pid, PID), reference_states(pid, text), zimage, seed, got.shape, PID_STEPS)
    print("latent max abs diff", _max_diff(want, got))
    assert float(want.abs().max()) > 0.1 and _max_diff(want, got) < 1e-4


def test_pid_conditioning_names_a_latent_of_another_format(pid):
    """condition.pid refuses a latent the chosen format does not read, and PiD a prompt without a latent."""
    from graph_engine import NodeError
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.pid_nodes import condition_pid
    cond = Conditioning("pixeldit", torch.zeros(1, 300, 32))
    latent = Latent(torch.zeros(1, 16, 1, 6, 8), "flux", 1, 8.0, 64, 48)
    with pytest.raises(NodeError, match="latent_format sd3"):
        condition_pid(None, cond, latent, "sd3", 0.0)
    out = condition_pid(None, cond, latent, "flux", 0.25)
    assert out.extra["lq_latent"].shape == (1, 16, 6, 8) and float(out.extra["degrade_sigma"]) == 0.25


def test_pid_reads_a_batch_of_latents_row_by_row(pid):
    """Two pictures upscaled at once (a batch-2 latent through condition.pid, a batch-2 pixel latent): each row reads
    its own latent, as ComfyUI's conds repeat a cond to the batch (comfy.utils.repeat_to_batch_size), with the uncond
    after the cond; a batch-1 latent is shared by every row."""
    from nodes.generate.adapters.pixeldit import low_quality
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.pid_nodes import condition_pid
    from nodes.generate.split import load_diffusion_model
    from tiny_pixeldit import PID
    model = load_diffusion_model(ModelManager(), PID, "default", "cpu").pipe.transformer
    z = torch.randn(2, 16, 1, 6, 8)
    conds = [condition_pid(None, Conditioning("pixeldit", torch.zeros(1, 300, 32)),
                           Latent(z[:n], "flux", 1, 8.0, 64, 48), "flux", sigma) for n, sigma in ((2, 0.25), (1, 0.5))]
    got = low_quality(model, conds, 2)
    want = torch.stack([z[0, :, 0], z[1, :, 0], z[0, :, 0], z[0, :, 0]])
    assert got["lq_latent"].shape == want.shape and torch.equal(got["lq_latent"], want)
    assert got["degrade_sigma"].tolist() == [0.25, 0.25, 0.5, 0.5]


def test_gemma_without_its_tokenizer_is_named(pixeldit):
    """A Gemma 2 file without the sentencepiece model ComfyUI keeps inside says where the tokenizer was looked for."""
    from safetensors.torch import load_file, save_file
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    from tiny_pixeldit import TE
    folder = pixeldit / "models" / "text_encoders"
    state = load_file(str(folder / TE))
    del state["spiece_model"]
    save_file(state, str(folder / "gemma2_tiny_no_tokenizer.safetensors"))
    with pytest.raises(NodeError, match="no tokenizer found for gemma2_tiny_no_tokenizer"):
        encode_prompt(load_text_encoder(ModelManager(), str(folder / "gemma2_tiny_no_tokenizer.safetensors"), "",
                                        "pixeldit", "cpu"), "a fox")
