"""Bernini-R (ComfyUI's BerniniConditioning, condition.bernini): the streams read in context by Wan's transformer,
against ComfyUI's WanModel with context_latents written out here on diffusers' blocks (the streams' tokens after the
video's; their rotary positions from 0 on their own grid, each pair turned further by the stream's number as
ComfyUI's rope_encode(source_id) does it, a product of 2x2 rotations); the pictures' sizing against ComfyUI's
common_upscale; the two Bernini-R templates imported and one run on tiny weights."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"


def comfy_rotations(ids, d, theta=10000.0):
    """ComfyUI's flux math rope: [N] positions -> [N, d / 2, 2, 2] rotation matrices."""
    omega = 1.0 / theta ** torch.linspace(0, (d - 2) / d, d // 2, dtype=torch.float64)
    a = ids.double()[:, None] * omega
    return torch.stack([torch.cos(a), -torch.sin(a), torch.sin(a), torch.cos(a)], -1).view(-1, d // 2, 2, 2)


def comfy_freqs(f, h, w, d, source_id=0):
    """ComfyUI's WanModel.rope_encode on an f x h x w patch grid (EmbedND's axes d - 4 (d // 6), 2 (d // 6), 2 (d // 6)),
    times the source's rotation: as (cos, sin) [1, N, 1, d], each pair's angle on its two channels (diffusers')."""
    axes = (d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6))
    ids = torch.cartesian_prod(torch.arange(f), torch.arange(h), torch.arange(w))
    rot = torch.cat([comfy_rotations(ids[:, k], axes[k]) for k in range(3)], 1)
    if source_id:
        rot = torch.einsum("nij,njk->nik", rot.reshape(-1, 2, 2),
                           comfy_rotations(torch.tensor([source_id]), d)[0].repeat(ids.shape[0], 1, 1)
                           ).view(rot.shape)
    cos, sin = rot[..., 0, 0], rot[..., 1, 0]
    return cos.repeat_interleave(2, -1)[None, :, None].float(), sin.repeat_interleave(2, -1)[None, :, None].float()


def comfy_forward(tr, x, t, text, contexts):
    """ComfyUI's WanModel.forward_orig with context_latents on a diffusers WanTransformer3DModel's parts."""
    d = tr.config.attention_head_dim
    pt, ph, pw = tr.config.patch_size
    b, _, f, h, w = x.shape
    grids = [(f // pt, h // ph, w // pw)] + [(c.shape[2] // pt, c.shape[3] // ph, c.shape[4] // pw) for c in contexts]
    tokens = torch.cat([tr.patch_embedding(z).flatten(2).transpose(1, 2) for z in [x, *contexts]], 1)
    parts = [comfy_freqs(*g, d, i) for i, g in enumerate(grids)]
    rotary = (torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1))
    temb, proj, ehs, _ = tr.condition_embedder(t, text, None)
    proj = proj.unflatten(1, (6, -1))
    for block in tr.blocks:
        tokens = block(tokens, ehs, proj, rotary)
    shift, scale = (tr.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)
    out = tr.proj_out((tr.norm_out(tokens.float()) * (1 + scale) + shift).type_as(tokens))
    out = out[:, :grids[0][0] * grids[0][1] * grids[0][2]]
    out = out.reshape(b, *grids[0], pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return out.flatten(6, 7).flatten(4, 5).flatten(2, 3)


def test_streams_are_read_as_comfyuis_wan_reads_context_latents():
    from diffusers import WanTransformer3DModel
    from nodes.generate.wan_bernini import context_input
    torch.manual_seed(0)
    tr = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=24, in_channels=16,
                               out_channels=16, text_dim=32, freq_dim=32, ffn_dim=32, num_layers=2,
                               cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=64).eval()
    g = torch.Generator().manual_seed(1)
    x, text = torch.randn(2, 16, 3, 4, 6, generator=g), torch.randn(2, 5, 32, generator=g)
    # a source clip at the video's size, a picture of another shape: streams 1 and 2
    contexts = [torch.randn(1, 16, 3, 4, 6, generator=g), torch.randn(1, 16, 1, 6, 4, generator=g)]
    t = torch.tensor([700.0, 700.0])
    with torch.no_grad():
        want = comfy_forward(tr, x, t, text, [c.expand(2, -1, -1, -1, -1) for c in contexts])
        with context_input(tr, contexts):
            got = tr(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
        plain = tr(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
    assert got.shape == x.shape
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert (plain - want).abs().max() > 1e-3          # the streams steer the prediction; the hooks are gone after
    with torch.no_grad():
        assert torch.allclose(tr(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0], plain)


@pytest.mark.parametrize("size, target, crop", [((37, 90), (48, 32), "center"), ((90, 37), (48, 32), "center"),
                                                ((50, 60), (40, 40), "disabled")])
def test_pictures_are_fitted_as_comfyuis_common_upscale(size, target, crop):
    # ComfyUI's comfy.utils.common_upscale(samples, width, height, "area", crop), as test_comfy_image_utils writes it
    from test_comfy_image_utils import _comfy_upscale_center
    from nodes.generate.wan_bernini import area
    px = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(2))
    want = _comfy_upscale_center(px, *target, "area") if crop == "center" else \
        F.interpolate(px, size=target[::-1], mode="area")
    assert torch.allclose(area(px, *target, crop == "center"), want, atol=1e-6)


@pytest.mark.parametrize("hw, max_size, want", [
    # nodes_bernini._resize_long_edge: scale min(max / long side, 1), each side round(side * scale / 16) * 16, >= 16
    ((1080, 1920), 848, (480, 848)),      # 0.4417: 477 -> 480, 848
    ((300, 200), 848, (304, 192)),        # never enlarged: 18.75 -> 19 * 16, 12.5 -> 12 * 16 (round half to even)
    ((20, 900), 848, (16, 848))])         # a side under 16 is 16
def test_references_keep_their_shape_under_the_long_side(hw, max_size, want):
    from nodes.generate.wan_bernini import long_edge
    assert long_edge(*hw, max_size) == want


@pytest.fixture(scope="module")
def wan_t2v(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_models import build_wan_comfy
    yield from models_dir(tmp_path_factory, build_wan_comfy, "wan_bernini")


@pytest.mark.parametrize("name", ["video_bernini_r_image_editing.json", "video_bernini_r_video_editing.json"])
def test_bernini_templates_import_with_every_node_mapped(name):
    from app.comfyui import import_data
    res = import_data(json.loads((TEMPLATES / name).read_text(encoding="utf-8")))
    assert not res.report.blocking
    node, = [n for n in res.graph.nodes.values() if n.type == "condition.bernini"]
    assert node.params["ref_max_size"] == 848


def test_image_editing_template_runs_on_tiny_weights(wan_t2v, tmp_path):
    from PIL import Image
    from app.comfyui import import_data
    from comfy_layouts import on_tiny_wan
    from graph_engine.api import Session, load_workflow
    from graph_engine.workflow import to_yaml
    res = import_data(json.loads((TEMPLATES / "video_bernini_r_image_editing.json").read_text(encoding="utf-8")))
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    on_tiny_wan(res.graph, "wan_tiny_t2v_fp16.safetensors", {
        # the picture's longer side 56 (the template's 1280): 56 x 40, taken down to Wan's grid, 48 x 32
        "io.load_image": {"path": str(tmp_path / "in.png")}, "video.resize_side": {"size": 56},
        "generate.sample": {"steps": 1},
        "io.save_frames": {"path": str(tmp_path / "out" / "edit")}, "load.diffusion_model": {"weight_dtype": "default"}})
    for n in res.graph.nodes.values():
        if n.type == "lora.image":          # no lightx2v LoRA here: bypassed, the model passes on
            res.graph.set_bypass(n.id, True)
    run = Session(device="cpu").run(load_workflow(text=to_yaml(res.graph)), use_cache=False)
    assert run.ok, run.failed
    saved, = (tmp_path / "out").rglob("*.png")
    assert Image.open(saved).size == (48, 32)


def test_a_model_of_other_channels_is_named_not_the_vae():
    """An image-to-video Wan transformer (36 channels a token) given Wan 2.1 VAE streams was told to encode them with
    the Wan 2.1 VAE, which they already were; a Wan 2.2 VAE's 48-channel streams on Bernini-R's 16 are the VAE's fault."""
    from diffusers import WanTransformer3DModel
    from graph_engine import NodeError
    from nodes.generate.wan_bernini import context_input

    def tiny(ch):
        return WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=24,
                                     in_channels=ch, out_channels=16, text_dim=32, freq_dim=32, ffn_dim=32,
                                     num_layers=1, rope_max_seq_len=64)
    with pytest.raises(NodeError, match="reads 36 channels .* load a Bernini-R model"):
        with context_input(tiny(36), [torch.zeros(1, 16, 1, 4, 4)]):
            pass
    with pytest.raises(NodeError, match="48 channels .* encode them with the Wan 2.1 VAE"):
        with context_input(tiny(16), [torch.zeros(1, 48, 1, 4, 4)]):
            pass
