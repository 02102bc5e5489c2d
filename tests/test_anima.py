"""Anima pictures: the files an Anima user holds (ComfyUI's split files: anima-base-v1.0 in its released names,
qwen_3_06b_base loaded with CLIPLoader type stable_diffusion, Qwen-Image's VAE) are recognised, load, and sample what
ComfyUI's own code gives for the same weights, prompt and seed. The reference is ComfyUI's Anima written out here
(comfy/ldm/anima/model.py's LLMAdapter and preprocess_text_embeds, comfy/text_encoders/anima.py's prompt reading,
comfy/model_sampling.py's flow levels at shift 3) over diffusers' CosmosTransformer3DModel as built (never loaded
through Kinograph) and transformers' Qwen3; it shares no code with Kinograph's."""
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 48, 32
PW, PH = 128, 96             # the LLLite template's picture: its resize keeps at least 0.01 (of 1024x1024) megapixels
SHIFT = 3.0                 # comfy/supported_models.py Anima: shift 3.0, multiplier 1.0


@pytest.fixture(scope="module")
def anima(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_anima import build_anima
    yield from models_dir(tmp_path_factory, build_anima, "anima")


# -- ComfyUI's Anima, written out ------------------------------------------------------------------------------------
def _rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _rope(n, head):
    inv = 1.0 / (10000 ** (torch.arange(0, head, 2, dtype=torch.int64).float() / head))
    f = torch.arange(n).float()[:, None] @ inv[None]
    e = torch.cat((f, f), -1)
    return e.cos(), e.sin()


def _apply(x, cos, sin):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return x * cos + torch.cat((-x2, x1), -1) * sin


def _attention(sd, p, x, context, pe, pe_c, heads):
    b, n, _ = x.shape
    m = context.shape[1]
    q = _rms((x @ sd[p + "q_proj.weight"].T).view(b, n, heads, -1), sd[p + "q_norm.weight"]).transpose(1, 2)
    k = _rms((context @ sd[p + "k_proj.weight"].T).view(b, m, heads, -1), sd[p + "k_norm.weight"]).transpose(1, 2)
    v = (context @ sd[p + "v_proj.weight"].T).view(b, m, heads, -1).transpose(1, 2)
    q, k = _apply(q, *pe), _apply(k, *pe_c)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1)
    return out @ sd[p + "o_proj.weight"].T


def comfy_llm_adapter(sd, source, ids, weights=None, heads=2):
    """preprocess_text_embeds: LLMAdapter.forward(source_hidden_states, target_input_ids) without masks, times the
    t5xxl_weights, padded to 512."""
    x = sd["embed.weight"][ids]
    head = x.shape[-1] // heads
    pe, pe_c = _rope(x.shape[1], head), _rope(source.shape[1], head)
    blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith("blocks.")})
    for i in blocks:
        p = f"blocks.{i}."
        normed = _rms(x, sd[p + "norm_self_attn.weight"])
        x = x + _attention(sd, p + "self_attn.", normed, normed, pe, pe, heads)
        x = x + _attention(sd, p + "cross_attn.", _rms(x, sd[p + "norm_cross_attn.weight"]), source, pe, pe_c, heads)
        h = _rms(x, sd[p + "norm_mlp.weight"]) @ sd[p + "mlp.0.weight"].T + sd[p + "mlp.0.bias"]
        x = x + F.gelu(h) @ sd[p + "mlp.2.weight"].T + sd[p + "mlp.2.bias"]
    out = _rms(x @ sd["out_proj.weight"].T + sd["out_proj.bias"], sd["norm.weight"])
    if weights is not None:
        out = out * weights.unsqueeze(-1)
    return F.pad(out, (0, 0, 0, 512 - out.shape[1])) if out.shape[1] < 512 else out


def comfy_parentheses(string):
    """sd1_clip.parse_parentheses."""
    result, current, nesting = [], "", 0
    for char in string:
        if char == "(":
            if nesting == 0:
                if current:
                    result.append(current)
                current = "("
            else:
                current += char
            nesting += 1
        elif char == ")":
            nesting -= 1
            if nesting == 0:
                result.append(current + ")")
                current = ""
            else:
                current += char
        else:
            current += char
    if current:
        result.append(current)
    return result


def comfy_token_weights(string, current):
    """sd1_clip.token_weights: (text, weight) parts, brackets 1.1 each, (text:w) w."""
    out = []
    for x in comfy_parentheses(string):
        weight = current
        if len(x) >= 2 and x[-1] == ")" and x[0] == "(":
            x = x[1:-1]
            xx = x.rfind(":")
            weight *= 1.1
            if xx > 0:
                try:
                    weight = float(x[xx + 1:])
                    x = x[:xx]
                except ValueError:
                    pass
            out += comfy_token_weights(x, weight)
        else:
            out += [(x, current)]
    return out


def comfy_prompt(root, qwen3, text):
    """comfy/text_encoders/anima.py on sd1_clip: the prompt's escaped brackets kept, each weighted part tokenized on
    its own; Qwen3-0.6B's last (normed) states over the Qwen tokens (no start or end token, at least one: the pad
    151643, here the tiny vocabulary's <|endoftext|>), their weights set to 1.0 (AnimaTokenizer: the states are not
    weighted); the T5 ids with </s> at the end, and their weights."""
    from transformers import AutoTokenizer
    from tiny_anima import TE_NAME
    folder = root / "models" / "text_encoders"
    qtok = AutoTokenizer.from_pretrained(str(folder / TE_NAME))
    ttok = AutoTokenizer.from_pretrained(str(folder / "t5_tokenizer"))
    pad = qtok.convert_tokens_to_ids("<|endoftext|>")
    q, t = [], []
    escaped = text.replace("\\)", "\0\1").replace("\\(", "\0\2")
    for part, w in comfy_token_weights(escaped, 1.0):
        part = part.replace("\0\1", ")").replace("\0\2", "(")
        q += qtok(part).input_ids
        t += [(i, w) for i in ttok(part).input_ids[:-1]]
    q = q or [pad]
    t += [(1, 1.0)]
    with torch.no_grad():
        z = qwen3(input_ids=torch.tensor([q])).last_hidden_state
    return z, torch.tensor([[i for i, _ in t]]), torch.tensor([[w for _, w in t]])


def comfy_velocity(dit, adapter, x, sigma, states, ids, weights):
    """Anima.forward: the adapter's context (scaled by the T5 tokens' weights), then MiniTrainDIT on x
    [B, 16, 1, h, w] told sigma (multiplier 1)."""
    context = comfy_llm_adapter(adapter, states, ids, weights)
    x = torch.cat([x, torch.zeros_like(x[:, :1])], 1)      # prepare_embedded_sequence: no padding mask, zeros
    return dit(x, torch.full((x.shape[0],), float(sigma)), context.expand(x.shape[0], -1, -1), return_dict=False)[0]


def _levels(steps):
    """ComfyUI's simple schedule on ModelSamplingDiscreteFlow's 1000 levels shifted by 3, then 0."""
    t = [1 - int(i * 1000 / steps) / 1000 for i in range(steps)]
    return [SHIFT * s / (1 + (SHIFT - 1) * s) for s in t] + [0.0]


def comfy_euler(root, positive, negative, seed, cfg, steps=2, size=(W, H), patch=None):
    """ComfyUI's euler on simple levels at cfg with a negative prompt, from its noise for the seed; patch(dit): the
    reference's model patches laid on its DiT."""
    from tiny_anima import reference_parts
    dit, adapter, qwen3 = reference_parts(root)
    if patch is not None:
        patch(dit)
    pos, neg = comfy_prompt(root, qwen3, positive), comfy_prompt(root, qwen3, negative)
    w, h = size
    x = torch.randn((1, 16, 1, h // 8, w // 8), generator=torch.Generator().manual_seed(seed))
    levels = _levels(steps)
    with torch.no_grad():
        for s, nxt in zip(levels, levels[1:]):
            c, u = comfy_velocity(dit, adapter, x, s, *pos), comfy_velocity(dit, adapter, x, s, *neg)
            x = x + (u + (c - u) * cfg) * (nxt - s)
    return x[:, :, 0]


# -- the tests --------------------------------------------------------------------------------------------------------
def test_anima_dit_file_matches_comfyuis(anima):
    """anima-base-v1.0 in its released names (net. prefix, the rotary embedder's buffers) is told Anima's, loads with
    load.diffusion_model, and gives ComfyUI's adapter context and velocity on the same weights; Qwen3-0.6B loaded with
    type stable_diffusion reads the prompt as ComfyUI does (its states and T5 ids)."""
    from nodes.generate.anima_model import context
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder
    from nodes.generate.text import encode_prompt
    from tiny_anima import DIT_NAME, TE_NAME, reference_parts
    assert detect_file(anima / "models" / "diffusion_models" / DIT_NAME).family == "anima"
    mm = ModelManager()
    model = load_diffusion_model(mm, DIT_NAME, "default", "cpu").pipe.transformer
    te = load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "sd", "cpu")
    assert te.family == "anima" and load_text_encoder(mm, f"{TE_NAME}.safetensors", "", "auto", "cpu").family == "anima"
    dit, adapter, qwen3 = reference_parts(anima)
    for text in ("a girl, blue hair", ""):
        states, ids, weights = comfy_prompt(anima, qwen3, text)
        cond = encode_prompt(te, text)
        assert torch.equal(cond.extra["t5_ids"], ids) and torch.equal(cond.extra["t5_weights"], weights)
        assert (cond.embeds - states).abs().max() < 1e-5
    # weights as ComfyUI reads them, whatever the node's weighting: each part tokenized alone, Qwen3's states as they
    # are, the adapter's output scaled per T5 token; ComfyUI's parser: an inner (x:w) sets w (1.5, not 1.65), square
    # brackets are text, a (x:1.0) part and two equal neighbours are tokenized apart, \( is a bracket
    for text in ("a (girl:1.3), ((blue)) hair,(smile)", "1girl, ((red hair:1.5)), [masterpiece]",
                 "(red:1.2)(hat:1.2), x(y:1.0)z, saber \\(fate\\)"):
        states, ids, weights = comfy_prompt(anima, qwen3, text)
        for weighting in ("comfy", "kinograph"):
            cond = encode_prompt(te, text, weighting=weighting)
            assert torch.equal(cond.extra["t5_ids"], ids), text
            assert torch.allclose(cond.extra["t5_weights"], weights), text
            assert (cond.embeds - states).abs().max() < 1e-5, text
    assert {round(w, 4) for w in weights[0].tolist()} == {1.0, 1.2}
    torch.manual_seed(0)
    x = torch.randn(2, 16, 1, 4, 6)
    with torch.no_grad():
        want_ctx = comfy_llm_adapter(adapter, states, ids, weights)
        got_ctx = context(model, states, ids, weights)
        assert got_ctx.shape == (1, 512, 32) and (want_ctx - got_ctx).abs().max() < 1e-5
        want = comfy_velocity(dit, adapter, x, 0.7, states, ids, weights)
        got = model(torch.cat([x, torch.zeros_like(x[:, :1])], 1), torch.full((2,), 0.7), got_ctx.expand(2, -1, -1),
                    return_dict=False)[0]
    assert want.abs().max() > 0.1 and (want - got).abs().max() < 1e-4


@pytest.mark.parametrize("template", ["image_anima_base_v1", "image_anima_preview"])
def test_comfyui_anima_templates_import_and_run(anima, tmp_path, monkeypatch, template):
    """ComfyUI's Anima text-to-image templates (subgraphs: UNETLoader, CLIPLoader qwen_3_06b_base type
    stable_diffusion, VAELoader qwen_image_vae, a negative prompt, KSampler 30 steps cfg 4 euler (base; er_sde for
    the preview) / simple; base's turbo LoRA switched off). Every node maps and each runs on the tiny files under the
    template's names (48x32, 2 steps) and saves a picture; on euler the latent is ComfyUI's Anima's for its prompts and
    seed at cfg 4 (levels 1, 0.75 at shift 3)."""
    import re
    from comfy_layouts import imported_template, sampled_latent
    from tiny_anima import DIT_NAME, TE_NAME
    monkeypatch.chdir(tmp_path)
    links = [(f"diffusion_models/{n}", f"diffusion_models/{DIT_NAME}")
             for n in ("anima-base-v1.0.safetensors", "anima-preview3-base.safetensors")]
    links += [("text_encoders/qwen_3_06b_base.safetensors", f"text_encoders/{TE_NAME}.safetensors"),
              ("text_encoders/qwen_3_06b_base", f"text_encoders/{TE_NAME}")]
    data, yaml = imported_template(anima / "models", links, TEMPLATES / f"{template}.json", (W, H), (30, 2))
    assert "type: sd" in yaml and "steps: 2" in yaml and "cfg: 4" in yaml, yaml
    yaml = re.sub(r"sampler: \w+", "sampler: euler", yaml)
    got = sampled_latent(tmp_path / "anima.kino.yaml", yaml)
    assert (tmp_path / "out" / "Anima" / "frame_000000.png").is_file()
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    prompts = [n["widgets_values"][0] for n in sub if n["type"] == "CLIPTextEncode"]
    positive = next(p for p in prompts if "worst quality" not in p)
    negative = next(p for p in prompts if "worst quality" in p)
    seed = next(n for n in sub if n["type"] == "KSampler")["widgets_values"][0]
    want = comfy_euler(anima, positive, negative, seed, 4.0)
    assert math.isfinite(float(got.abs().max()))
    assert (want - got).abs().max() < 1e-3 * want.abs().max()


def test_comfyui_anima_lllite_any_control_template_runs_as_comfyui(anima, tmp_path):
    """ComfyUI's Anima LLLite any-control template (LoadImage, Canny, ImageInvert, a 1-megapixel resize, PreviewImage,
    ModelPatchLoader anima-lllite-any-test-like-v2, AnimaLLLiteApply strength 1 over every step, KSampler cfg 4 euler /
    simple) runs on the tiny files and a 128x96 picture (resized to its own size, 2 steps) and saves a picture; the
    latent is ComfyUI's Anima with ComfyUI's LLLite patch (tests/test_anima_lllite.py's reference) on the control
    picture Kinograph made, and differs from the latent without the net by far more."""
    import numpy as np
    from PIL import Image
    from comfy_layouts import run_on_picture
    from test_anima_lllite import RefLLLite, lllite_state, ref_cond_emb, ref_patched, save
    from tiny_anima import released_names
    models = released_names(anima)
    state = lllite_state(blocks=(0, 1), width=48)
    save(models / "model_patches", "anima-lllite-any-test-like-v2.safetensors", state, {"lllite.aspp_dilations": "1,2"})
    rgb = np.random.default_rng(4).integers(0, 256, (PH, PW, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "picture.png")

    def small(node):
        node.params.update({"steps": 2} if node.type == "generate.sample" else
                           {"megapixels": PW * PH / 1024 ** 2} if node.type == "video.resize_pixels" else {})
    wf, out = run_on_picture(TEMPLATES / "image_anima_lllite_any_control_to_image.json", tmp_path / "picture.png",
                             tmp_path / "out", small)
    assert out.ok, out.failed
    assert list((tmp_path / "out").glob("*.png"))
    got = next(v["latent"] for k, v in out.outputs.items() if k.startswith("k_sampler")).samples[:, :, 0]
    control = next(v["video"] for k, v in out.outputs.items() if k.startswith("resize_image_mask_node"))
    image = torch.from_numpy(np.asarray(control.frame(0))[None, ..., :3].copy()).float() / 255.0
    assert got.shape[-2:] == (PH // 8, PW // 8) and image.shape[1:3] == (PH, PW)
    ref = RefLLLite(state, {"lllite.aspp_dilations": "1,2"}).eval()
    with torch.no_grad():
        cond = ref_cond_emb(ref, image, None, PH // 8, PW // 8)
    nodes = {n["type"]: n for n in __import__("json").loads(
        (TEMPLATES / "image_anima_lllite_any_control_to_image.json").read_text())["definitions"]["subgraphs"][0]["nodes"]}
    prompts = [n for n in wf.graph.nodes.values() if n.type == "encode.text"]
    positive = next(n.params["text"] for n in prompts if "worst quality" not in n.params["text"])
    negative = next(n.params["text"] for n in prompts if "worst quality" in n.params["text"])
    seed = nodes["KSampler"]["widgets_values"][0]
    want = comfy_euler(anima, positive, negative, seed, 4.0, size=(PW, PH),
                       patch=lambda dit: ref_patched(dit, ref, {"cond": cond, "strength": 1.0}))
    plain = comfy_euler(anima, positive, negative, seed, 4.0, size=(PW, PH))
    err = float((want - got).abs().max())
    print("max abs diff of the LLLite template's latent", err, "its steer", float((want - plain).abs().max()))
    assert err < 1e-3 * float(want.abs().max())
    assert float((want - plain).abs().max()) > 100 * max(err, 1e-6)


def test_a_prompt_anima_cannot_read_is_named(anima):
    """A prompt another family's encoder read (no T5 ids, another width) is named with the encoder to use, not met
    with a tensor error inside the adapter."""
    from graph_engine import NodeError
    from nodes.generate.adapters import get_adapter
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_anima import DIT_NAME
    handle = load_diffusion_model(ModelManager(), DIT_NAME, "default", "cpu")
    for cond in (Conditioning("zimage", torch.zeros(1, 3, 48)),
                 Conditioning("anima", torch.zeros(1, 3, 1024), extra={"t5_ids": torch.ones(1, 2, dtype=torch.long)},
                              keyframes=(0, 8), prompts=("a", "b"))):
        with pytest.raises(NodeError, match="qwen_3_06b_base" if cond.family == "zimage" else "one prompt"):
            get_adapter("anima").conditioning_inputs(handle, [cond], [0], 1, "cpu", torch.float32)


def test_no_t5_tokenizer_is_named_as_anima_needs_it(anima, tmp_path, monkeypatch):
    """On a machine without T5-XXL's tokenizer anywhere, Qwen3-0.6B loads for Anima with a message that says T5-XXL's
    tokenizer is missing (not that the Qwen3 file is a T5 encoder) and where to put it, never a download."""
    import shutil
    from graph_engine import NodeError
    from nodes.generate import split
    from nodes.generate.model_manager import ModelManager
    from tiny_anima import TE_NAME
    folder = tmp_path / "models" / "text_encoders"
    folder.mkdir(parents=True)
    shutil.copy(anima / "models" / "text_encoders" / f"{TE_NAME}.safetensors", folder)
    shutil.copytree(anima / "models" / "text_encoders" / TE_NAME, folder / TE_NAME)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    monkeypatch.setitem(split.HF_TOKENIZERS, "t5", "kinograph-tests/no-such-tokenizer")   # whatever this cache holds
    with pytest.raises(NodeError) as err:
        split.load_text_encoder(ModelManager(), f"{TE_NAME}.safetensors", "", "sd", "cpu")
    msg = str(err.value)
    assert "T5-XXL" in msg and "Anima" in msg and "t5_tokenizer/" in msg, msg
    assert "t5 text_encoder" not in msg and "spiece_model tensor inside" not in msg, msg


def test_qwen3_06b_under_another_type_is_named_as_animas(anima):
    """Qwen3-0.6B is Anima's encoder alone: under Z-Image's (lumina2), FLUX.2's or Qwen-Image's type it is refused by
    name with the type that reads it, not taken for Z-Image's Qwen3-4B and failed on a chat template or a width later."""
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from tiny_anima import TE_NAME
    for type_ in ("lumina2", "flux2", "qwen_image"):
        with pytest.raises(NodeError, match="Anima.*type stable_diffusion"):
            load_text_encoder(ModelManager(), f"{TE_NAME}.safetensors", "", type_, "cpu")


def test_qwen3_tokenizer_from_comfyuis_own_folder(anima, tmp_path, monkeypatch):
    """A ComfyUI user keeps no tokenizer beside qwen_3_06b_base.safetensors: ComfyUI reads Qwen3-0.6B with its bundled
    comfy/text_encoders/qwen25_tokenizer, so Kinograph finds that one (beside the models/ folder) for Anima."""
    import shutil
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from tiny_anima import TE_NAME
    here = anima / "models" / "text_encoders"
    folder = tmp_path / "models" / "text_encoders"
    folder.mkdir(parents=True)
    shutil.copy(here / f"{TE_NAME}.safetensors", folder)
    shutil.copytree(here / "t5_tokenizer", folder / "t5_tokenizer")
    shutil.copytree(here / TE_NAME, tmp_path / "comfy" / "text_encoders" / "qwen25_tokenizer")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    te = load_text_encoder(ModelManager(), f"{TE_NAME}.safetensors", "", "sd", "cpu")
    assert te.family == "anima" and te.pipe.tokenizer("a girl").input_ids
