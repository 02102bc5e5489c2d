"""Anima's ControlNet-LLLite (Comfy-Org/Anima-LLLite) from model_patches/, as ComfyUI's ModelPatchLoader loads it and
AnimaLLLiteApply lays it on Anima's DiT. The reference is ComfyUI's comfy/ldm/anima/lllite.py (AnimaLLLite, its
conditioning encoder and modules, AnimaLLLitePatch's picture / mask preparation and sigma window) and comfy.utils'
common_upscale centre crop, written out below with torch.nn as ComfyUI's `operations`; it hooks the host transformer
its own way (the projections wrapped, as predict2.py's Attention / Block call the patches on their inputs). The host
is diffusers' CosmosTransformer3DModel (Anima's DiT is Cosmos-Predict2's), tiny and random; the LLLite files are
random tensors under the published key names, saved as .safetensors."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError
# comfy.utils.common_upscale(..., crop="center"), written out once for the ImageBlend tests
from test_comfy_image_utils import _comfy_upscale_center as ref_common_upscale

# ---- ComfyUI's comfy/ldm/anima/lllite.py, written out (operations = torch.nn) ----------------------------------------


def ref_group_norm(channels):
    groups = 8
    while groups > 1 and channels % groups != 0:
        groups //= 2
    return nn.GroupNorm(groups, channels)


class RefResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm1 = ref_group_norm(channels)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.norm2 = ref_group_norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class RefASPP(nn.Module):
    def __init__(self, channels, dilations):
        super().__init__()
        branches = []
        for dilation in dilations:
            if dilation == 1:
                conv = nn.Conv2d(channels, channels, kernel_size=1)
            else:
                conv = nn.Conv2d(channels, channels, kernel_size=3, padding=dilation, dilation=dilation)
            branches.append(nn.Sequential(conv, ref_group_norm(channels), nn.SiLU()))
        self.branches = nn.ModuleList(branches)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.global_conv = nn.Sequential(nn.Conv2d(channels, channels, kernel_size=1), ref_group_norm(channels),
                                         nn.SiLU())
        self.proj = nn.Sequential(nn.Conv2d(channels * (len(dilations) + 1), channels, kernel_size=1),
                                  ref_group_norm(channels), nn.SiLU())

    def forward(self, x):
        height, width = x.shape[-2:]
        outputs = [branch(x) for branch in self.branches]
        pooled = self.global_conv(self.global_pool(x))
        outputs.append(F.interpolate(pooled, size=(height, width), mode="bilinear", align_corners=False))
        return self.proj(torch.cat(outputs, dim=1))


class RefConditioning(nn.Module):
    def __init__(self, cond_in_channels, cond_dim, cond_emb_dim, cond_resblocks, aspp_dilations):
        super().__init__()
        half_dim = cond_dim // 2
        self.conv1 = nn.Conv2d(cond_in_channels, half_dim, kernel_size=4, stride=4)
        self.norm1 = ref_group_norm(half_dim)
        self.conv2 = nn.Conv2d(half_dim, half_dim, kernel_size=3, padding=1)
        self.norm2 = ref_group_norm(half_dim)
        self.conv3 = nn.Conv2d(half_dim, cond_dim, kernel_size=4, stride=4)
        self.norm3 = ref_group_norm(cond_dim)
        self.resblocks = nn.ModuleList([RefResBlock(cond_dim) for _ in range(cond_resblocks)])
        self.aspp = RefASPP(cond_dim, aspp_dilations) if aspp_dilations else None
        self.proj = nn.Conv2d(cond_dim, cond_emb_dim, kernel_size=1)
        self.out_norm = nn.LayerNorm(cond_emb_dim)

    def forward(self, x):
        x = F.silu(self.norm1(self.conv1(x)))
        x = F.silu(self.norm2(self.conv2(x)))
        x = F.silu(self.norm3(self.conv3(x)))
        for block in self.resblocks:
            x = block(x)
        if self.aspp is not None:
            x = self.aspp(x)
        x = self.proj(x).flatten(2).transpose(1, 2).contiguous()
        return self.out_norm(x)


class RefModule(nn.Module):
    def __init__(self, in_dim, cond_emb_dim, mlp_dim):
        super().__init__()
        self.down = nn.Linear(in_dim, mlp_dim)
        self.mid = nn.Linear(mlp_dim + cond_emb_dim, mlp_dim)
        self.cond_to_film = nn.Linear(cond_emb_dim, 2 * mlp_dim)
        self.up = nn.Linear(mlp_dim, in_dim)
        self.depth_embed = nn.Parameter(torch.empty(cond_emb_dim), requires_grad=False)

    def forward(self, x, cond_emb, strength):
        original_shape = x.shape
        if x.ndim == 5:
            x = x.flatten(1, 3)
        if x.shape[0] != cond_emb.shape[0]:
            cond_emb = cond_emb.repeat(x.shape[0] // cond_emb.shape[0], 1, 1)
        cond_local = cond_emb + self.depth_embed.to(cond_emb)
        hidden = F.silu(self.down(x))
        gamma, beta = self.cond_to_film(cond_local).chunk(2, dim=-1)
        hidden = self.mid(torch.cat((cond_local, hidden), dim=-1))
        hidden = F.silu(hidden * (1 + gamma) + beta)
        x = x + self.up(hidden) * strength
        if len(original_shape) == 5:
            x = x.reshape(original_shape)
        return x


REF_PATTERN = re.compile(r"lllite_dit_blocks_(\d+)_(self_attn_[qkv]_proj|cross_attn_q_proj|mlp_layer1)$")


class RefLLLite(nn.Module):
    def __init__(self, state_dict, metadata):
        super().__init__()
        module_names = sorted({key.split(".", 1)[0] for key in state_dict if key.startswith("lllite_dit_blocks_")})
        cond_in_channels = state_dict["lllite_conditioning1.conv1.weight"].shape[1]
        cond_dim = state_dict["lllite_conditioning1.conv3.weight"].shape[0]
        cond_emb_dim = state_dict["lllite_conditioning1.proj.weight"].shape[0]
        resblock_ids = {int(key.split(".")[2]) for key in state_dict if key.startswith("lllite_conditioning1.resblocks.")}
        cond_resblocks = max(resblock_ids) + 1 if resblock_ids else 0
        use_aspp = any(key.startswith("lllite_conditioning1.aspp.") for key in state_dict)
        dilation_string = metadata.get("lllite.aspp_dilations", "1,2,4,8")
        aspp_dilations = tuple(int(v) for v in dilation_string.split(",") if v.strip()) if use_aspp else ()
        self.cond_in_channels = cond_in_channels
        self.inpaint_masked_input = metadata.get("lllite.inpaint_masked_input", "false").lower() == "true"
        self.lllite_conditioning1 = RefConditioning(cond_in_channels, cond_dim, cond_emb_dim, cond_resblocks,
                                                    aspp_dilations)
        self.module_names = set()
        for name in module_names:
            assert REF_PATTERN.fullmatch(name)
            mlp_dim, in_dim = state_dict[f"{name}.down.weight"].shape
            self.add_module(name, RefModule(in_dim, cond_emb_dim, mlp_dim))
            self.module_names.add(name)
        self.load_state_dict(state_dict)

    def apply(self, x, cond_emb, block_index, target, strength):
        name = f"lllite_dit_blocks_{block_index}_{target}"
        if name not in self.module_names:
            return x
        return self.get_submodule(name)(x, cond_emb, strength)


def ref_cond_emb(model, image, mask, latent_h, latent_w):
    """AnimaLLLitePatch.__call__'s preparation and encoding (x: [B, C, 1, latent_h, latent_w])."""
    target_height, target_width = latent_h * 8, latent_w * 8
    image = ref_common_upscale(image.movedim(-1, 1), target_width, target_height, "bicubic").clamp(0.0, 1.0)
    image = image * 2.0 - 1.0
    if model.cond_in_channels == 4:
        if mask.ndim == 3:
            mask = mask.unsqueeze(1)
        mask = ref_common_upscale(mask.float(), target_width, target_height, "nearest-exact")
        if mask.shape[0] != image.shape[0]:
            mask = mask.repeat(image.shape[0] // mask.shape[0], 1, 1, 1)
        mask = (mask >= 0.5).to(image.dtype)
        if model.inpaint_masked_input:
            image = image * (mask < 0.5).to(image.dtype)
        image = torch.cat((image, mask * 2.0 - 1.0), dim=1)
    return model.lllite_conditioning1(image)


class RefWrapped(nn.Module):
    """A projection (or the MLP) given its input as predict2.py gives it after the attn1 / attn2 / mlp patches."""
    def __init__(self, inner, patch):
        super().__init__()
        self.inner, self.patch = inner, patch

    def forward(self, x, *args, **kwargs):
        return self.inner(self.patch(x), *args, **kwargs)


REF_PLACES = {"self_attn_q_proj": ("attn1", "to_q"), "self_attn_k_proj": ("attn1", "to_k"),
              "self_attn_v_proj": ("attn1", "to_v"), "cross_attn_q_proj": ("attn2", "to_q"), "mlp_layer1": ("ff", None)}


def ref_patched(transformer, ref, state):
    """The transformer with each block's projections wrapped so that they read ref.apply(...) of their input while
    state["cond"] is set (AnimaLLLiteAttentionPatch / AnimaLLLiteMLPPatch); returns a function undoing it."""
    undo = []
    for i, block in enumerate(transformer.transformer_blocks):
        for target, (part, proj) in REF_PLACES.items():
            owner, attr = (block, part) if proj is None else (getattr(block, part), proj)
            inner = getattr(owner, attr)

            def patch(x, i=i, target=target):
                if state.get("cond") is None:
                    return x
                return ref.apply(x, state["cond"], i, target, state["strength"])
            setattr(owner, attr, RefWrapped(inner, patch))
            undo.append((owner, attr, inner))
    return lambda: [setattr(o, a, m) for o, a, m in undo]


# ---- tiny weights --------------------------------------------------------------------------------------------------

WIDTH = 32


def tiny_transformer(seed=0):
    from diffusers import CosmosTransformer3DModel
    torch.manual_seed(seed)
    t = CosmosTransformer3DModel(in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16,
                                 num_layers=3, mlp_ratio=2.0, text_embed_dim=24, adaln_lora_dim=8,
                                 max_size=(4, 32, 32), patch_size=(1, 2, 2), rope_scale=(1.0, 1.0, 1.0),
                                 concat_padding_mask=False, extra_pos_embed_type=None).eval()
    with torch.no_grad():
        for p in t.parameters():       # diffusers zero-initialises some layers; random everywhere steers visibly
            p.normal_(0, 0.2)
    return t


def lllite_state(cond_in=3, aspp=True, blocks=(0, 2), seed=1, dilations=(1, 2), width=WIDTH):
    """Random tensors under the published names (built by the reference, so its layout is the one written out), for
    a DiT `width` wide."""
    torch.manual_seed(seed)
    state = {}
    cond = RefConditioning(cond_in, 16, 24, 1, dilations if aspp else ())
    state.update({f"lllite_conditioning1.{k}": v for k, v in cond.state_dict().items()})
    for b in blocks:
        for target in REF_PLACES:
            m = RefModule(width, 24, 8)
            nn.init.normal_(m.depth_embed, 0, 0.5)
            state.update({f"lllite_dit_blocks_{b}_{target}.{k}": v for k, v in m.state_dict().items()})
    with torch.no_grad():
        for v in state.values():
            v.add_(torch.randn_like(v) * 0.1)
    return {k: v.contiguous() for k, v in state.items()}


def save(tmp_path, name, state, metadata=None):
    from safetensors.torch import save_file
    path = tmp_path / name
    save_file(state, str(path), metadata=metadata)
    return path


def load(path):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.model_patch import load as load_patch
    return load_patch(ModelManager(), str(path))


def still(rgb):
    from graph_engine import Clip
    return Clip.from_array(rgb[None])


def model_handle(transformer):
    from nodes.generate.handles import ModelHandle
    return ModelHandle("sdxl", "anima.safetensors", type("Pipe", (), {"transformer": transformer})(), "float32", "cpu")


def run(transformer, latents, text, sigma):
    out = transformer(latents, torch.full((latents.shape[0],), sigma), text, return_dict=False)[0]
    return out


@pytest.fixture(scope="module")
def picture():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (80, 112, 3), dtype=np.uint8)      # wider than the 64 x 64 generation: cropped


def test_lllite_steers_the_dit_as_comfyui_anima_lllite_apply(tmp_path, picture):
    """The patched transformer's output equals ComfyUI's on the same weights (a 64 x 64 generation from an 80 x 112
    picture, centre-cropped), at strength 0.7; without the net it differs by far more."""
    from nodes.generate.anima_lllite import laid
    from nodes.generate.model_patch import apply_lllite
    state = lllite_state()
    patch = load(save(tmp_path, "anima-lllite-depth-1.safetensors", state, {"lllite.aspp_dilations": "1,2"}))
    assert patch.family == "anima_lllite"
    transformer = tiny_transformer()
    model = apply_lllite(model_handle(transformer), patch, still(picture), 0.7, 0.0, 1.0)
    torch.manual_seed(5)
    latents, text = torch.randn(1, 16, 1, 8, 8), torch.randn(1, 6, 24)
    with torch.no_grad():
        plain = run(transformer, latents, text, 0.6)
        with laid(transformer, model.option("lllite"), 64, 64, 0.6, lambda p: 1.0 - p):
            got = run(transformer, latents, text, 0.6)
        assert torch.equal(run(transformer, latents, text, 0.6), plain)      # the hooks come off
        ref = RefLLLite(state, {"lllite.aspp_dilations": "1,2"}).eval()
        image = torch.from_numpy(picture).float()[None] / 255.0
        undo = ref_patched(transformer, ref, {"cond": ref_cond_emb(ref, image, None, 8, 8), "strength": 0.7})
        want = run(transformer, latents, text, 0.6)
        undo()
    err = (got - want).abs().max().item()
    print("max abs diff of the patched output", err, "of the steer", (want - plain).abs().max().item())
    assert err < 1e-5, err
    assert (got - plain).abs().max().item() > 100 * max(err, 1e-6)


def test_inpainting_lllite_reads_the_masked_picture_and_mask_as_comfyui(tmp_path, picture):
    """The inpainting file (4 input channels, lllite.inpaint_masked_input true) reads the picture blacked out under
    the mask and the mask as a fourth channel, as ComfyUI's AnimaLLLitePatch gives them; the sampled latent of a
    4-step Euler run with the net steering from 25 % to 75 % of the way equals ComfyUI's sigma window."""
    from nodes.generate.anima_lllite import laid
    from nodes.generate.model_patch import apply_lllite
    meta = {"lllite.inpaint_masked_input": "true"}
    state = lllite_state(cond_in=4, aspp=False, blocks=(1,), seed=2)
    patch = load(save(tmp_path, "anima-lllite-inpainting-v2.safetensors", state, meta))
    mask = np.zeros((80, 112), np.float32)
    mask[20:60, 30:90] = 1.0
    transformer = tiny_transformer(1)
    with pytest.raises(NodeError, match="inpainting net.*connect a mask"):
        apply_lllite(model_handle(transformer), patch, still(picture), 1.0, 0.25, 0.75)
    model = apply_lllite(model_handle(transformer), patch, still(picture), 1.0, 0.25, 0.75, mask)
    ref = RefLLLite(state, meta).eval()
    sigmas = [1.0, 0.75, 0.5, 0.25, 0.0]
    sigma_start, sigma_end = 1.0 - 0.25, 1.0 - 0.75    # percent_to_sigma of flow matching at shift 1
    torch.manual_seed(7)
    noise, text = torch.randn(1, 16, 1, 8, 8), torch.randn(1, 6, 24)
    image = torch.from_numpy(picture).float()[None] / 255.0
    with torch.no_grad():
        x = noise.clone()
        for s, t in zip(sigmas, sigmas[1:]):
            with laid(transformer, model.option("lllite"), 64, 64, s, lambda p: 1.0 - p):
                x = x + (t - s) * run(transformer, x, text, s)
        state_ref = {"strength": 1.0}
        undo = ref_patched(transformer, ref, state_ref)
        y = noise.clone()
        for s, t in zip(sigmas, sigmas[1:]):
            active = sigma_end <= s <= sigma_start
            state_ref["cond"] = ref_cond_emb(ref, image, torch.from_numpy(mask)[None], 8, 8) if active else None
            y = y + (t - s) * run(transformer, y, text, s)
        w = noise.clone()      # steering at every step instead: the window matters
        state_ref["cond"] = ref_cond_emb(ref, image, torch.from_numpy(mask)[None], 8, 8)
        for s, t in zip(sigmas, sigmas[1:]):
            w = w + (t - s) * run(transformer, w, text, s)
        state_ref["cond"] = None
        z = noise.clone()
        for s, t in zip(sigmas, sigmas[1:]):
            z = z + (t - s) * run(transformer, z, text, s)
        undo()
    err = (x - y).abs().max().item()
    assert err < 1e-4, err
    print("max abs diff of the sampled latent", err)
    assert (x - z).abs().max().item() > 100 * max(err, 1e-6)
    assert (x - w).abs().max().item() > 100 * max(err, 1e-6)


def test_bad_lllite_files_are_named_with_the_fix(tmp_path):
    state = lllite_state(aspp=False, blocks=(0,))
    cut = tmp_path / "anima-lllite-cut.safetensors"
    cut.write_bytes(save(tmp_path, "whole.safetensors", state).read_bytes()[:-200])
    with pytest.raises(NodeError, match="anima-lllite-cut.safetensors"):
        load(cut)
    no_encoder = {k: v for k, v in state.items() if not k.startswith("lllite_conditioning1.conv3")}
    with pytest.raises(NodeError, match="no_encoder.safetensors is cut short.*conv3.*Comfy-Org/Anima-LLLite"):
        load(save(tmp_path, "no_encoder.safetensors", no_encoder))
    odd = dict(state, **{"lllite_dit_blocks_0_self_attn_o_proj.down.weight": torch.zeros(8, WIDTH)})
    with pytest.raises(NodeError, match="odd.safetensors holds lllite_dit_blocks_0_self_attn_o_proj"):
        load(save(tmp_path, "odd.safetensors", odd))
    wrong = dict(state, **{"lllite_dit_blocks_0_mlp_layer1.up.weight": torch.zeros(WIDTH, 9)})
    with pytest.raises(NodeError, match="tensors of wrong.safetensors do not fit.*up.weight"):
        load(save(tmp_path, "wrong.safetensors", wrong))
    with pytest.raises(NodeError, match="old.safetensors is an Anima LLLite file of version 1"):
        load(save(tmp_path, "old.safetensors", state, {"lllite.version": "1"}))
    sdxl = {"lllite_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.conditioning1.0.weight": torch.zeros(4, 3, 4, 4)}
    with pytest.raises(NodeError, match="sdxl-lllite.safetensors is a ControlNet-LLLite for SDXL.*control.apply"):
        load(save(tmp_path, "sdxl-lllite.safetensors", sdxl))


def test_lllite_on_the_wrong_model_or_node_is_named(tmp_path, picture):
    from nodes.generate.handles import ModelHandle
    from nodes.generate.model_patch import apply, apply_lllite
    patch = load(save(tmp_path, "anima-lllite-depth-1.safetensors", lllite_state(aspp=False, blocks=(0, 5))))
    sdxl = ModelHandle("sdxl", "sdxl.safetensors", type("Pipe", (), {"unet": None})(), "float32", "cpu")
    with pytest.raises(NodeError, match="steers Anima's DiT; this model is Stable Diffusion XL"):
        apply_lllite(sdxl, patch, still(picture), 1.0, 0.0, 1.0)
    with pytest.raises(NodeError, match="steers 6 DiT blocks; this model has 3"):
        apply_lllite(model_handle(tiny_transformer()), patch, still(picture), 1.0, 0.0, 1.0)
    with pytest.raises(NodeError, match="start \\(0.8\\) must come before its end \\(0.2\\)"):
        apply_lllite(model_handle(tiny_transformer()), patch, still(picture), 1.0, 0.8, 0.2)
    with pytest.raises(NodeError, match="ControlNet-LLLite for Anima: connect it to control.anima_lllite"):
        apply(sdxl, patch, None, still(picture), 1.0)


def test_comfyui_anima_lllite_templates_import_to_control_anima_lllite():
    """The three Anima LLLite templates import and validate; AnimaLLLiteApply's strength / start / end carry over and
    its picture comes through the PreviewImage that hands it on."""
    from pathlib import Path

    import yaml

    from app.comfyui import import_workflow
    from graph_engine.api import load_workflow
    root = Path(__file__).parent / "data" / "comfyui" / "templates"
    for name in ("image_anima_lllite_any_control_to_image", "image_anima_lllite_depth_control_to_image",
                 "image_anima_lllite_image_inpainting"):
        result = import_workflow(root / f"{name}.json")
        load_workflow(text=result.yaml)
        nodes = yaml.safe_load(result.yaml)["nodes"]
        lllite = next(n for n in nodes.values() if n["type"] == "control.anima_lllite")
        assert lllite["params"] == {"strength": 1, "start": 0, "end": 1}
        assert {"model", "model_patch", "video"} <= set(lllite["inputs"])
        assert ("mask" in lllite["inputs"]) == name.endswith("inpainting")


def test_an_anima_dit_file_is_named_anima(tmp_path):
    """anima-base-v1.0 was told as a plain Cosmos-Predict2 transformer; its LLM adapter names it Anima's, which
    load.diffusion_model loads (tests/test_anima.py runs it)."""
    from nodes.generate.model_manager import describe_model
    keys = ["net.x_embedder.proj.1.weight", "net.blocks.0.self_attn.q_proj.weight", "net.llm_adapter.embed.weight",
            "net.llm_adapter.blocks.0.cross_attn.q_proj.weight"]
    d = describe_model(save(tmp_path, "anima-base-v1.0.safetensors", {k: torch.zeros(2, 2) for k in keys}))
    assert (d["family"], d["loads"], d["note"]) == ("anima", "yes", "load.diffusion_model"), d
