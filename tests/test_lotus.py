"""Lotus-D depth as ComfyUI's image_lotus_depth_v1_1 template runs it: the template imported and run on a tiny
random-weight Lotus UNet (SD 2's blocks, heads of 64, the 4-wide task embedding; written in the LDM key layout of
Comfy-Org's lotus-depth-d-v1-1.safetensors) and a tiny SD VAE, against Lotus' published single step written out here
on the same weights with diffusers' UNet2DConditionModel and AutoencoderKL."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

TEMPLATES = Path(__file__).parent / "data" / "comfyui" / "templates"
PROMPT_FILE = Path(__file__).parent.parent / "resources" / "model_configs" / "sd" / "lotus_prompt.json"
# ComfyUI's comfy_extras/nodes_lotus.py (LotusConditioning) inlines a [1, 2, 1024] tensor; some of its values, copied
# from there: (token, position) -> value
PUBLISHED = {(0, 0): -0.3134765625, (0, 1): -0.447509765625, (0, 2): -0.00823974609375, (0, 20): 0.0007929801940917969,
             (0, 198): -4.291534423828125e-05, (0, 1021): 0.254150390625, (0, 1022): -0.032440185546875,
             (0, 1023): -0.296142578125, (1, 0): 1.4111328125, (1, 1): 0.00757598876953125, (1, 2): -0.428955078125,
             (1, 1021): 1.0361328125, (1, 1022): -0.67333984375, (1, 1023): 1.5009765625}


def _prompt():
    """The shipped prompt read straight from its file (not through Kinograph's reader)."""
    import torch
    doc = json.loads(PROMPT_FILE.read_text())
    return torch.from_numpy(np.frombuffer(base64.b64decode(doc["data"]), dtype="<f2").astype(np.float32)
                            .reshape(doc["shape"]))


def _tiny_nets():
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(64, 128), layers_per_block=2, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=1024,
                                attention_head_dim=(1, 2), use_linear_projection=True, norm_num_groups=32,
                                class_embed_type="projection", projection_class_embeddings_input_dim=4)
    vae = AutoencoderKL(block_out_channels=(32, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        layers_per_block=2, norm_num_groups=32)
    for m in (unet, vae):
        m.half().float().eval()         # the files hold float16, as the published ones do
    return unet, vae


def _ldm_unet(unet) -> dict:
    """The LDM names of the Lotus UNet: its task embedding is label_emb.0.*, where SDXL keeps its size embedding."""
    from tiny_models import sd_ldm_unet
    state = {re.sub(r"^class_embedding\.", "add_embedding.", k): v for k, v in unet.state_dict().items()}
    return sd_ldm_unet(state, 2, [True, False])


@pytest.fixture(scope="module")
def lotus(tmp_path_factory):
    import torch
    from safetensors.torch import save_file
    from tiny_models import sd_ldm_vae
    root = tmp_path_factory.mktemp("lotus")
    unet, vae = _tiny_nets()
    models = root / "models"
    for sub in ("diffusion_models", "vae"):
        (models / sub).mkdir(parents=True)
    save_file({k: v.half().contiguous() for k, v in _ldm_unet(unet).items()},
              str(models / "diffusion_models" / "lotus-depth-d-v1-1.safetensors"))
    # the same UNet in diffusers' names (Lotus' own release is a diffusers folder)
    save_file({k: v.half().contiguous() for k, v in unet.state_dict().items()},
              str(models / "diffusion_models" / "lotus_diffusers_layout.safetensors"))
    save_file({k: v.half().contiguous() for k, v in sd_ldm_vae(vae.state_dict(), 2).items()},
              str(models / "vae" / "vae-ft-mse-840000-ema-pruned.safetensors"))
    # a plain SD 2 UNet (no task embedding) of the same size: the wrong file for the template
    torch.manual_seed(1)
    from diffusers import UNet2DConditionModel
    plain = UNet2DConditionModel(**{k: v for k, v in unet.config.items() if not k.startswith("_") and k not in (
        "class_embed_type", "projection_class_embeddings_input_dim")})
    save_file({k: v.half().contiguous() for k, v in _ldm_unet(plain).items()},
              str(models / "diffusion_models" / "sd2_unet.safetensors"))
    rng = np.random.default_rng(3)
    picture = np.clip(np.linspace(0, 1, 32)[None, :, None] * 0.8 + rng.uniform(0, 0.2, (24, 32, 3)), 0, 1)
    picture = (picture * 255).round().astype(np.uint8)
    import cv2
    cv2.imwrite(str(root / "picture.png"), picture[:, :, ::-1])
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(models))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {"root": root, "unet": unet, "vae": vae, "picture": picture}
    torch.set_num_threads(threads)
    mp.undo()


def _run_template(root: Path, unet_name: str = "lotus-depth-d-v1-1.safetensors"):
    from comfy_layouts import run_on_picture

    def unet(n):
        if n.type == "load.diffusion_model":
            n.params["name"] = unet_name
    return run_on_picture(TEMPLATES / "image_lotus_depth_v1_1.json", root / "picture.png", root / "out" / unet_name,
                          unet)


def _reference(unet, vae, picture: np.ndarray) -> np.ndarray:
    """Lotus-D's published pipeline (Lotus' pipeline.py, LotusDPipeline) at its one step, then ComfyUI's decode and
    ImageInvert: the picture's latent (no noise) at timestep 999 with the task switch [1, 0] as [sin, cos] and the
    empty prompt; the UNet's output is the map's latent (prediction_type sample, one step to the end)."""
    import torch
    x = torch.from_numpy(picture.astype(np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
        task = torch.tensor([1.0, 0.0]).unsqueeze(0)
        task = torch.cat([torch.sin(task), torch.cos(task)], dim=-1)
        x0 = unet(z, torch.tensor([999]), encoder_hidden_states=_prompt(), class_labels=task).sample
        img = vae.decode(x0 / vae.config.scaling_factor).sample
    rgb = ((img[0] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
    return 1.0 - rgb


def test_shipped_lotus_prompt_is_comfyuis():
    """The prompt Kinograph ships (4 KB of float16) holds the values ComfyUI's LotusConditioning inlines."""
    from nodes.generate.lotus import prompt_embeds
    got = prompt_embeds()
    assert tuple(got.shape) == (1, 2, 1024)
    for (token, i), v in PUBLISHED.items():
        assert float(got[0, token, i]) == v, (token, i)
    assert float(got[0, 0].max()) == 13.0234375     # the start token's outlier, as published


@pytest.mark.parametrize("unet_file", ["lotus-depth-d-v1-1.safetensors", "lotus_diffusers_layout.safetensors"])
def test_lotus_template_runs_as_lotus_depth(lotus, unet_file):
    """ComfyUI's image_lotus_depth_v1_1 template imported node for node (UNETLoader, LotusConditioning, VAEEncode,
    DisableNoise, BasicScheduler + SetFirstSigma 999, Euler, VAEDecode, ImageInvert) gives Lotus-D's depth map: the
    published single step on the same weights, to within 8-bit rounding; from the LDM-layout file and from the same
    UNet in diffusers' names."""
    from PIL import Image
    wf, run = _run_template(lotus["root"], unet_file)
    assert run.ok, run.failed
    sample = next(n for n in wf.graph.nodes.values() if n.type == "generate.sample")
    assert sample.params["first_sigma"] == pytest.approx(999.0) and sample.params["add_noise"] is False
    png = sorted((lotus["root"] / "out" / unet_file).rglob("*.png"))
    assert len(png) == 1
    got = np.asarray(Image.open(png[0]).convert("RGB")).astype(np.float32) / 255.0
    want = _reference(lotus["unet"], lotus["vae"], lotus["picture"])
    assert got.shape == want.shape
    assert want.std() > 0.02                        # a map with something in it, not a flat clamp
    assert np.abs(got - want).max() <= 1.5 / 255.0


def test_plain_sd2_unet_given_as_lotus_is_named(lotus):
    """A Stable Diffusion 2 UNet (no task embedding) in the template's UNETLoader: the run stops saying it is not
    Lotus' and which file to load, instead of drawing a picture from Lotus' prompt."""
    _, run = _run_template(lotus["root"], "sd2_unet.safetensors")
    assert not run.ok
    message = " ".join(str(v) for v in run.failed.values())
    assert "not Lotus'" in message and "lotus-depth-d-v1-1" in message


def test_lotus_file_is_told_apart():
    """Detection from the headers alone: Lotus-D (4-wide task embedding, 4 input channels), Lotus-G (8), SDXL's size
    embedding (2816-wide) and a plain SD 2 UNet (none)."""
    from nodes.generate.detect import Keys, _sd
    base = {"input_blocks.0.0.weight": (64, 4, 3, 3), "out.2.weight": (4, 64, 3, 3),
            "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (64, 1024)}
    assert _sd(Keys({**base, "label_emb.0.0.weight": (256, 4)})).variant == "lotus-d"
    assert _sd(Keys({**base, "label_emb.0.0.weight": (256, 4), "input_blocks.0.0.weight": (64, 8, 3, 3)})).variant \
        == "lotus-g"
    assert _sd(Keys({**base, "label_emb.0.0.weight": (256, 2816)})).variant == "sdxl"
    assert _sd(Keys(base)).variant == "sd2"


def test_lotus_g_is_refused_by_name():
    """Lotus-G (8 input channels: the picture's latent beside noise), which ComfyUI does not run either: the loader
    names it and the Lotus-D file to use."""
    from graph_engine import NodeError
    from nodes.generate.lotus import unet_config
    with pytest.raises(NodeError, match="Lotus-G.*lotus-depth-d-v1-1"):
        unet_config({"in_channels": 8, "cross_attention_dim": 1024, "block_out_channels": [320]}, "lotus-g")
    assert unet_config({"in_channels": 4, "cross_attention_dim": 1024, "block_out_channels": [320, 640, 1280, 1280]},
                       "lotus-d")["attention_head_dim"] == [5, 10, 20, 20]     # SD 2's heads of 64


def _split_template(first_sigma_after_split: bool) -> dict:
    """The Lotus template with a SplitSigmas (3 steps, split at 2) whose low half the sampler runs: between
    BasicScheduler and SetFirstSigma, or after SetFirstSigma."""
    data = json.loads((TEMPLATES / "image_lotus_depth_v1_1.json").read_text("utf-8"))
    sub = data["definitions"]["subgraphs"][0]
    nodes = {n["type"]: n for n in sub["nodes"]}
    nodes["BasicScheduler"]["widgets_values"][1] = 3
    cut = 66 if first_sigma_after_split else 194          # BasicScheduler -> SetFirstSigma, or it -> the sampler
    link = next(l for l in sub["links"] if l["id"] == cut)
    target, slot = link["target_id"], link["target_slot"]
    link.update(target_id=75, target_slot=0)
    sub["links"].append({"id": 247, "origin_id": 75, "origin_slot": 1, "target_id": target, "target_slot": slot,
                         "type": "SIGMAS"})
    next(n for n in sub["nodes"] if n["id"] == target)["inputs"][slot]["link"] = 247
    sub["nodes"].append({"id": 75, "type": "SplitSigmas", "pos": [0, 0], "size": [200, 80], "mode": 0, "order": 0,
                         "inputs": [{"name": "sigmas", "type": "SIGMAS", "link": cut}],
                         "outputs": [{"name": "high_sigmas", "type": "SIGMAS", "links": []},
                                     {"name": "low_sigmas", "type": "SIGMAS", "links": [247]}],
                         "widgets_values": [2]})
    return data


def test_first_sigma_set_after_a_split_is_where_the_run_starts(lotus):
    """SetFirstSigma on SplitSigmas' low half sets the first level of the steps the sampler runs: imported as
    start_step 2 with first_sigma 999, that run is Lotus' one step from 999 (the published step). It was set on the
    whole schedule's first level, a step the run skips, and the step ran from the schedule's level instead."""
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    res = import_data(_split_template(True))
    wf = load_workflow(text=res.yaml, check=False)
    for n in wf.graph.nodes.values():
        if n.type == "io.load_image":
            n.params["path"] = str(lotus["root"] / "picture.png")
        if n.type == "io.save_frames":
            n.params["path"] = str(lotus["root"] / "out" / "split")
    sample = next(n for n in wf.graph.nodes.values() if n.type == "generate.sample")
    assert (sample.params["start_step"], sample.params["first_sigma"]) == (2, pytest.approx(999.0))
    run = Session(device="cpu").run(wf, use_cache=False)
    assert run.ok, run.failed
    png = sorted((lotus["root"] / "out" / "split").rglob("*.png"))
    got = np.asarray(Image.open(png[0]).convert("RGB")).astype(np.float32) / 255.0
    want = _reference(lotus["unet"], lotus["vae"], lotus["picture"])
    assert np.abs(got - want).max() <= 1.5 / 255.0


def test_first_sigma_set_before_a_split_stays_with_the_high_half():
    """SetFirstSigma before SplitSigmas changes the whole schedule's first level, which the low half does not run:
    the sampler of the low half gets no first_sigma."""
    from app.comfyui import import_data
    res = import_data(_split_template(False))
    sample = next(n for n in res.graph.nodes.values() if n.type == "generate.sample")
    assert sample.params["start_step"] == 2 and not sample.params.get("first_sigma")
