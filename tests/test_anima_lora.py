"""Anima LoRAs (anima-turbo-lora-v0.2 that ComfyUI's LLLite inpainting template switches on, style LoRAs from kohya's
sd-scripts or diffusion-pipe) change the model as ComfyUI's LoraLoaderModelOnly changes it. The reference is
comfy/lora.py written out here: model_lora_keys_unet's keys for a model whose weights are diffusion_model.<name>
(the generic "diffusion_model.<name>" and kohya's "lora_unet_<name with dots as underscores>"), load_lora's
lora_up/lora_down, lora_B/lora_A and alpha, and weight_adapter/lora.py's patch W + strength * alpha / rank * up @ down,
merged into the DiT as built (diffusers' CosmosTransformer3DModel, never loaded through Kinograph) and the LLM adapter's
tensors; the velocity is test_anima's ComfyUI Anima on them."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

RANK, ALPHA = 4, 2.0
# layers a LoRA changes, in diffusers' names of the DiT as built (the adapter's: llm_adapter.<its own names>)
DIT_LAYERS = ("transformer_blocks.0.attn1.to_q", "transformer_blocks.1.attn2.to_k", "transformer_blocks.0.attn1.to_out.0",
              "transformer_blocks.1.ff.net.0.proj", "transformer_blocks.0.norm1.linear_1", "proj_out",
              "patch_embed.proj", "time_embed.t_embedder.linear_1")
ADAPTER_LAYERS = ("llm_adapter.blocks.0.cross_attn.q_proj", "llm_adapter.blocks.2.mlp.0")


@pytest.fixture(scope="module")
def anima(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_anima import build_anima
    yield from models_dir(tmp_path_factory, build_anima, "anima_lora")


def comfy_name(layer: str) -> str:
    """The released MiniTrainDIT name of a diffusers layer (tiny_anima's renames), the adapter's as they are."""
    from tiny_anima import RENAMES
    if layer.startswith("llm_adapter."):
        return layer
    name = layer + "."
    for a, b in RENAMES:
        name = name.replace(a, b)
    return name[:-1]


def diffusers_names() -> dict:
    return {comfy_name(d): d for d in DIT_LAYERS + ADAPTER_LAYERS}


def lora_tensors(shapes: dict, seed: int) -> dict:
    """{ComfyUI layer name: (up, down)} of rank RANK for layers of these weight shapes."""
    g = torch.Generator().manual_seed(seed)
    return {name: (torch.randn(s[0], RANK, generator=g) * 0.3, torch.randn(RANK, s[1], generator=g) * 0.3)
            for name, s in shapes.items()}


def write(path: Path, tensors: dict, layout: str) -> Path:
    """The LoRA saved in one of the layouts ComfyUI reads for Anima."""
    from safetensors.torch import save_file
    sd = {}
    for name, (up, down) in tensors.items():
        if layout == "comfy":           # diffusion-pipe / ComfyUI's own saves: diffusion_model.<name>, PEFT's A/B
            key, a, b = f"diffusion_model.{name}", "lora_A.weight", "lora_B.weight"
        elif layout == "diffusers":     # diffusers' own (its Anima loader's transformer.<its layer name>)
            key, a, b = f"transformer.{diffusers_names()[name]}", "lora_A.weight", "lora_B.weight"
        else:                           # kohya sd-scripts (anima_train_network.py): lora_unet_<flat name>
            key, a, b = "lora_unet_" + name.replace(".", "_"), "lora_down.weight", "lora_up.weight"
        sd.update({f"{key}.{a}": down.contiguous(), f"{key}.{b}": up.contiguous(), f"{key}.alpha": torch.tensor(ALPHA)})
    save_file(sd, str(path))
    return path


def comfy_key_map(model_keys) -> dict:
    """comfy/lora.py model_lora_keys_unet for keys diffusion_model.<name>.weight."""
    key_map = {}
    for k in model_keys:
        if k.startswith("diffusion_model.") and k.endswith(".weight"):
            key_lora = k[len("diffusion_model."):-len(".weight")].replace(".", "_")
            key_map[f"lora_unet_{key_lora}"] = k
            key_map[k[:-len(".weight")]] = k
    return key_map


def comfy_merge(weights: dict, lora: dict, strength: float) -> dict:
    """comfy/lora.py load_lora then weight_adapter LoRAAdapter.calculate_weight on each mapped weight."""
    key_map = comfy_key_map(weights)
    out = dict(weights)
    for x, to in key_map.items():
        for up_name, down_name in ((f"{x}.lora_up.weight", f"{x}.lora_down.weight"),
                                   (f"{x}.lora_B.weight", f"{x}.lora_A.weight")):
            if up_name in lora:
                up, down = lora[up_name].float(), lora[down_name].float()
                alpha = lora[f"{x}.alpha"].item() / down.shape[0] if f"{x}.alpha" in lora else 1.0
                diff = torch.mm(up.flatten(1), down.flatten(1)).reshape(out[to].shape)
                out[to] = out[to] + (strength * alpha) * diff
    return out


def reference(anima, lora_file: Path, strength: float):
    """(merged diffusers DiT as built, merged adapter tensors, {diffusers layer: merged weight})."""
    from safetensors.torch import load_file
    from tiny_anima import reference_parts
    dit, adapter, _ = reference_parts(anima)
    names = {comfy_name(k[:-len(".weight")]): k[:-len(".weight")] for k in dit.state_dict() if k.endswith(".weight")}
    weights = {f"diffusion_model.{c}.weight": dit.state_dict()[f"{d}.weight"] for c, d in names.items()}
    weights.update({f"diffusion_model.llm_adapter.{k}": v for k, v in adapter.items()})
    merged = comfy_merge(weights, load_file(str(lora_file)), strength)
    sd = dit.state_dict()
    sd.update({f"{d}.weight": merged[f"diffusion_model.{c}.weight"] for c, d in names.items()})
    dit.load_state_dict(sd)
    adapter = {k: merged[f"diffusion_model.llm_adapter.{k}"] for k in adapter}
    layers = {d: merged[f"diffusion_model.{comfy_name(d)}.weight"] for d in DIT_LAYERS + ADAPTER_LAYERS}
    return dit, adapter, layers


def shapes_of(model) -> dict:
    mods = dict(model.named_modules())
    return {comfy_name(d): tuple(mods[d].weight.shape) for d in DIT_LAYERS + ADAPTER_LAYERS}


@pytest.mark.parametrize("layout", ["comfy", "kohya", "diffusers"])
def test_anima_lora_changes_the_model_as_comfyui(anima, tmp_path, layout):
    """A LoRA on the DiT's and the LLM adapter's layers, in ComfyUI's diffusion_model. keys, kohya's lora_unet_ ones or
    diffusers' transformer. ones (the reference maps those by the test's own renames),
    is told Anima's, passes lora.image's check, and gives ComfyUI's merged weights and velocity at strength 0.7."""
    from nodes.generate.anima_model import context
    from nodes.generate.detect import detect_file
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager, activate_loras
    from nodes.generate.split import load_diffusion_model
    from test_anima import comfy_prompt, comfy_velocity
    from tiny_anima import DIT_NAME, reference_parts
    handle = load_diffusion_model(ModelManager(), DIT_NAME, "default", "cpu")
    model = handle.pipe.transformer
    loras = anima / "models" / "loras"
    loras.mkdir(exist_ok=True)
    tensors = lora_tensors(shapes_of(model), 5)
    path = write(loras / f"style-{layout}.safetensors", tensors, layout)
    # comfy/lora.py maps no diffusers names onto Anima (custom nodes patch them in): the same LoRA in ComfyUI's keys
    # is the reference for that layout
    ref_file = path if layout != "diffusers" else write(tmp_path / "as-comfy.safetensors", tensors, "comfy")
    det = detect_file(path)
    assert (det.role, det.family) == ("lora", "anima"), det.why        # the diffusers one by its llm_adapter layers
    strength = 0.7
    handle = add_lora(handle, path.name, strength)
    activate_loras(handle.pipe, handle.loras)
    dit, adapter, layers = reference(anima, ref_file, strength)
    mods = dict(model.named_modules())
    worst = 0.0
    for layer, want in layers.items():
        m = mods[layer]
        assert hasattr(m, "base_layer"), f"{layer} got no LoRA"
        name = next(iter(m.lora_A))
        got = (m.base_layer.weight.float() + m.get_delta_weight(name).float()).detach()
        worst = max(worst, float((got - want).abs().max()))
        assert float((want - m.base_layer.weight).abs().max()) > 1e-3     # the LoRA changes it
    _, _, qwen3 = reference_parts(anima)
    states, ids, weights = comfy_prompt(anima, qwen3, "a girl, blue hair")
    torch.manual_seed(0)
    x = torch.randn(1, 16, 1, 4, 6)
    with torch.no_grad():
        want = comfy_velocity(dit, adapter, x, 0.6, states, ids, weights)
        got = model(torch.cat([x, torch.zeros_like(x[:, :1])], 1), torch.full((1,), 0.6),
                    context(model, states, ids, weights), return_dict=False)[0]
        activate_loras(handle.pipe, ())
        plain = model(torch.cat([x, torch.zeros_like(x[:, :1])], 1), torch.full((1,), 0.6),
                      context(model, states, ids, weights), return_dict=False)[0]
    err = float((want - got).abs().max())
    print(f"{layout}: merged weight max abs diff {worst:.2e}; velocity {err:.2e} (scale {float(want.abs().max()):.2f},"
          f" LoRA's change {float((want - plain).abs().max()):.2f})")
    assert worst < 1e-5
    assert err < 1e-4 and float((want - plain).abs().max()) > 100 * max(err, 1e-6)


def test_anima_lora_of_unknown_or_misfit_layers_is_named(anima, tmp_path):
    """A LoRA with a layer Anima lacks, or one of another width, is refused naming the file and how many matched."""
    from graph_engine import NodeError
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager, activate_loras
    from nodes.generate.split import load_diffusion_model
    from tiny_anima import DIT_NAME
    handle = load_diffusion_model(ModelManager(), DIT_NAME, "default", "cpu")
    shapes = shapes_of(handle.pipe.transformer)
    loras = anima / "models" / "loras"
    loras.mkdir(exist_ok=True)
    unknown = dict(shapes, **{"blocks.7.self_attn.q_proj": (48, 48)})
    wide = dict(shapes, **{"blocks.0.self_attn.q_proj": (96, 96)})
    for name, tensors, why in (("unknown", unknown, r"10 of its 11 layers match this Anima model; 1 name no layer of "
                                                    r"this Anima has \(diffusion_model.blocks.7.self_attn.q_proj\)"),
                               ("wide", wide, r"9 of its 10 layers match this Anima model; 1 of another shape "
                                              r"\(transformer_blocks.0.attn1.to_q")):
        path = write(loras / f"{name}.safetensors", lora_tensors(tensors, 3), "comfy")
        h = add_lora(handle, path.name, 1.0)
        with pytest.raises(NodeError, match=f"{name}.safetensors: {why}"):
            activate_loras(h.pipe, h.loras)


def test_comfyui_anima_lllite_inpainting_template_with_turbo_lora_runs_as_comfyui(anima, tmp_path):
    """ComfyUI's Anima LLLite inpainting template (LoadImage, Painter's mask, ModelPatchLoader
    anima-lllite-inpainting-v2, AnimaLLLiteApply, LoraLoaderModelOnly anima-turbo-lora-v0.2 switched on: 8 steps cfg 1
    euler / simple) runs on the tiny files, a 128x96 picture and a drawn mask (2 steps) and saves a picture; the latent
    is ComfyUI's Anima with the LoRA merged as comfy/lora.py merges it and ComfyUI's LLLite patch (test_anima_lllite's
    reference) on the picture and mask Kinograph read, and differs by far more from the latent without the LoRA."""
    import numpy as np
    from PIL import Image
    from comfy_layouts import run_on_picture
    from test_anima import comfy_euler
    from test_anima_lllite import RefLLLite, lllite_state, ref_cond_emb, ref_patched, save
    from tiny_anima import released_names
    pw, ph = 128, 96
    template = ROOT / "tests" / "data" / "comfyui" / "templates" / "image_anima_lllite_image_inpainting.json"
    models = released_names(anima)
    meta = {"lllite.inpaint_masked_input": "true"}
    state = lllite_state(cond_in=4, aspp=False, blocks=(0, 1), seed=2, width=48)
    save(models / "model_patches", "anima-lllite-inpainting-v2.safetensors", state, meta)
    (models / "loras").mkdir(exist_ok=True)
    from tiny_anima import reference_parts
    dit, _, _ = reference_parts(anima)
    turbo = write(models / "loras" / "anima-turbo-lora-v0.2.safetensors",
                  lora_tensors({comfy_name(d): tuple(dict(dit.named_modules())[d].weight.shape) for d in DIT_LAYERS}, 8),
                  "comfy")
    rgb = np.random.default_rng(4).integers(0, 256, (ph, pw, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "picture.png")
    alpha = np.zeros((ph, pw), np.uint8)
    alpha[20:70, 30:100] = 255
    Image.fromarray(np.dstack([np.zeros((ph, pw, 3), np.uint8), alpha]), "RGBA").save(tmp_path / "drawn.png")

    def small(node):
        node.params.update({"steps": 2} if node.type == "generate.sample" else
                           {"path": str(tmp_path / "drawn.png"), "width": pw, "height": ph}
                           if node.type == "mask.painter" else
                           {"width": pw, "height": ph} if node.type == "latent.empty" else {})
    wf, out = run_on_picture(template, tmp_path / "picture.png", tmp_path / "out", small)
    assert out.ok, out.failed
    assert list((tmp_path / "out").glob("*.png"))
    sample = next(n for n in wf.graph.nodes.values() if n.type == "generate.sample")
    assert (sample.params["cfg"], next(n for n in wf.graph.nodes.values() if n.type == "lora.image").params["strength"]) \
        == (1, 1)
    got = next(v["latent"] for k, v in out.outputs.items() if k.startswith("k_sampler")).samples[:, :, 0]
    painted = next(v for k, v in out.outputs.items() if k.startswith("painter"))
    image = torch.from_numpy(np.asarray(painted["image"])[None, ..., :3].copy()).float()
    image = image / 255.0 if painted["image"].dtype == np.uint8 else image
    mask = torch.as_tensor(np.asarray(painted["mask"]), dtype=torch.float32).reshape(1, ph, pw)
    ref = RefLLLite(state, meta).eval()
    with torch.no_grad():
        cond = ref_cond_emb(ref, image, mask, ph // 8, pw // 8)
    prompts = [n.params["text"] for n in wf.graph.nodes.values() if n.type == "encode.text"]
    positive = next(p for p in prompts if "worst quality" not in p)
    negative = next(p for p in prompts if "worst quality" in p)
    seed = sample.params["seed"]

    def merged(dit):
        from safetensors.torch import load_file
        lora = load_file(str(turbo))
        sd = dit.state_dict()
        weights = {f"diffusion_model.{comfy_name(k[:-len('.weight')])}.weight": v for k, v in sd.items()
                   if k.endswith(".weight")}
        new = comfy_merge(weights, lora, 1.0)
        sd.update({f"{k[:-len('.weight')]}.weight": new[f"diffusion_model.{comfy_name(k[:-len('.weight')])}.weight"]
                   for k in sd if k.endswith(".weight")})
        dit.load_state_dict(sd)
    steer = {"cond": cond, "strength": 1.0}
    want = comfy_euler(anima, positive, negative, seed, 1.0, size=(pw, ph),
                       patch=lambda dit: (merged(dit), ref_patched(dit, ref, steer)))
    plain = comfy_euler(anima, positive, negative, seed, 1.0, size=(pw, ph),
                        patch=lambda dit: ref_patched(dit, ref, steer))
    err = float((want - got).abs().max())
    print(f"inpainting template with the turbo LoRA: latent max abs diff {err:.2e} (scale "
          f"{float(want.abs().max()):.2f}, the LoRA's change {float((want - plain).abs().max()):.2f})")
    assert err < 1e-3 * float(want.abs().max())
    assert float((want - plain).abs().max()) > 100 * max(err, 1e-6)
