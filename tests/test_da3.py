"""Depth Anything 3 (depth.da3, depth.da3_render) on a tiny random-weight Mono-style file in ComfyUI's layout (24
encoder layers 64 wide, a small DPT head with the sky head). The reference is independent of nodes/depth/da3.py:
transformers' Dinov2Model on the same encoder weights, and the DA3 DPT head, the preprocessing and DA3Render's
normalisation written out from ComfyUI's published code (comfy/ldm/depth_anything_3/dpt.py, preprocess.py,
comfy_extras/nodes_da3.py)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

FEATURES, CHANNELS, DIM = 16, (8, 16, 32, 32), 64
OUT_LAYERS = (4, 11, 17, 23)        # DA3 Mono / Metric Large's


class Unit(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(f, f, 3, 1, 1), nn.Conv2d(f, f, 3, 1, 1)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class Fusion(nn.Module):
    def __init__(self, f, has_residual=True):
        super().__init__()
        if has_residual:
            self.resConfUnit1 = Unit(f)
        self.has_residual = has_residual
        self.resConfUnit2, self.out_conv = Unit(f), nn.Conv2d(f, f, 1)

    def forward(self, *xs, size=None):
        y = xs[0]
        if self.has_residual and len(xs) > 1:
            y = y + self.resConfUnit1(xs[1])
        y = self.resConfUnit2(y)
        kw = {"scale_factor": 2.0} if size is None else {"size": size}
        return self.out_conv(F.interpolate(y, **kw, mode="bilinear", align_corners=True))


class DPT(nn.Module):
    """ComfyUI's DPT head (DA3 Mono / Metric: depth through exp, sky through relu), written out."""

    def __init__(self):
        super().__init__()
        oc = CHANNELS
        self.projects = nn.ModuleList(nn.Conv2d(DIM, c, 1) for c in oc)
        self.resize_layers = nn.ModuleList([nn.ConvTranspose2d(oc[0], oc[0], 4, 4), nn.ConvTranspose2d(oc[1], oc[1], 2, 2),
                                            nn.Identity(), nn.Conv2d(oc[3], oc[3], 3, 2, 1)])
        self.scratch = nn.Module()
        for i in range(4):
            setattr(self.scratch, f"layer{i + 1}_rn", nn.Conv2d(oc[i], FEATURES, 3, 1, 1, bias=False))
            setattr(self.scratch, f"refinenet{i + 1}", Fusion(FEATURES, has_residual=i < 3))
        self.scratch.output_conv1 = nn.Conv2d(FEATURES, FEATURES // 2, 3, 1, 1)
        self.scratch.output_conv2 = nn.Sequential(nn.Conv2d(FEATURES // 2, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 1, 1))
        self.scratch.sky_output_conv2 = nn.Sequential(nn.Conv2d(FEATURES // 2, 32, 3, 1, 1), nn.ReLU(),
                                                      nn.Conv2d(32, 1, 1))

    def forward(self, feats, H, W):
        ph, pw = H // 14, W // 14
        r = [self.resize_layers[i](self.projects[i](x.permute(0, 2, 1).reshape(x.shape[0], DIM, ph, pw)))
             for i, x in enumerate(feats)]
        s = self.scratch
        l1, l2, l3, l4 = (getattr(s, f"layer{i + 1}_rn")(r[i]) for i in range(4))
        out = s.refinenet4(l4, size=l3.shape[2:])
        out = s.refinenet3(out, l3, size=l2.shape[2:])
        out = s.refinenet2(out, l2, size=l1.shape[2:])
        out = s.refinenet1(out, l1)
        fused = F.interpolate(s.output_conv1(out), (ph * 14, pw * 14), mode="bilinear", align_corners=True)
        return torch.exp(s.output_conv2(fused))[:, 0], F.relu(s.sky_output_conv2(fused))[:, 0]


def _round_to_patch(x):
    down = (x // 14) * 14
    up = down + 14
    return up if abs(up - x) <= abs(x - down) else down


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(file, the transformers encoder, the written-out head) with the same random weights."""
    from safetensors.torch import save_file
    from transformers import Dinov2Config, Dinov2Model
    torch.manual_seed(0)
    enc = Dinov2Model(Dinov2Config(hidden_size=DIM, num_hidden_layers=24, num_attention_heads=1, image_size=518,
                                   patch_size=14, layer_norm_eps=1e-6, layerscale_value=0.5)).eval()
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    head = DPT().eval()
    names = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
             "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense"}
    state = {}
    for k, v in enc.state_dict().items():
        for a, b in names.items():
            k = k.replace(a, b)
        state["backbone." + k] = v.contiguous()
    state.update({"head." + k: v.contiguous() for k, v in head.state_dict().items()})
    path = tmp_path_factory.mktemp("da3") / "depth_anything_3_tiny_mono.safetensors"
    save_file(state, str(path))
    return path, enc, head


def _reference(enc, head, frames, resolution=504):
    """ComfyUI's mono path: Lanczos (through PIL, as comfy.utils.common_upscale does), ImageNet, the encoder's
    out layers normed without the class token, the head, bilinear back to the frame."""
    from PIL import Image
    out = []
    for f in frames:
        h, w = f.shape[:2]
        s = resolution / max(h, w)
        th, tw = _round_to_patch(int(round(h * s))), _round_to_patch(int(round(w * s)))
        x = np.asarray(Image.fromarray(f).resize((tw, th), Image.LANCZOS)).astype(np.float32) / 255.0
        x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
        x = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
        with torch.no_grad():
            # DINOv2's own position resampling (ComfyUI's): a scale factor of (grid + 0.1) / 37, which transformers
            # replaced by a target size; the layers are transformers' as they are
            e = enc.embeddings
            t = e.patch_embeddings.projection(x).flatten(2).transpose(1, 2)
            t = torch.cat([e.cls_token, t], dim=1)
            grid = e.position_embeddings[:, 1:]
            if (th, tw) != (518, 518):
                grid = F.interpolate(grid.reshape(1, 37, 37, DIM).permute(0, 3, 1, 2), mode="bicubic", antialias=False,
                                     scale_factor=((th // 14 + 0.1) / 37, (tw // 14 + 0.1) / 37))
                grid = grid.permute(0, 2, 3, 1).flatten(1, 2)
            t = t + torch.cat([e.position_embeddings[:, :1], grid], dim=1)
            feats = []
            for i, layer in enumerate(enc.encoder.layer[:max(OUT_LAYERS) + 1]):
                t = layer(t)
                if i in OUT_LAYERS:
                    feats.append(enc.layernorm(t)[:, 1:])
            depth, sky = head(feats, th, tw)
        size = dict(size=(h, w), mode="bilinear", align_corners=False)
        out.append((F.interpolate(depth[:, None], **size)[0, 0].numpy(), F.interpolate(sky[:, None], **size)[0, 0].numpy()))
    return out


def _v2_style(depth, sky):
    """DA3Render's v2_style (every pixel: frames under 100,000 pixels are not sampled), near white, sky black."""
    d, s = torch.from_numpy(depth), torch.from_numpy(sky)
    valid = d[s < 0.3] if (s < 0.3).any() else d.flatten()
    lo, hi = torch.quantile(valid, 0.01), torch.quantile(valid, 0.99)
    norm = 1.0 - ((d - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1)
    return torch.where(s >= 0.3, torch.zeros_like(norm), norm).numpy()


def _turbo(x):
    x = np.clip(x, 0, 1)
    r = 0.13572138 + 4.61539260 * x - 42.66032258 * x ** 2 + 132.13108234 * x ** 3 - 152.94239396 * x ** 4 + 59.28637943 * x ** 5
    g = 0.09140261 + 2.19418839 * x + 4.84296658 * x ** 2 - 14.18503333 * x ** 3 + 4.27729857 * x ** 4 + 2.82956604 * x ** 5
    b = 0.10667330 + 12.64194608 * x - 60.58204836 * x ** 2 + 110.36276771 * x ** 3 - 89.90310912 * x ** 4 + 27.34824973 * x ** 5
    return np.clip(np.stack([r, g, b], -1), 0, 1)


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (9, 12, 3)).astype(np.uint8)
    from PIL import Image
    big = np.asarray(Image.fromarray(base).resize((74, 74), Image.BILINEAR))
    return np.stack([np.roll(big, 3 * k, axis=1) for k in range(3)])


def _video(frames):
    from graph_engine.clip import Clip
    return Clip.from_array(frames)


def test_depth_and_sky_match_comfyui_code_on_transformers_encoder(tiny, clip):
    """Depth and sky per frame within float error of the reference at 518 px (the encoder's own 37 x 37 grid), the
    grey v2_style picture and the Turbo-coloured min_max one within one level."""
    from nodes.depth import da3
    path, enc, head = tiny
    model = da3.load(str(path))
    assert model.cfg.out_layers == OUT_LAYERS and model.cfg.sky and not model.cfg.dual
    geo = da3.infer(_video(clip), model, 518, "upper_bound_resize", "mono", 8, "saddle_balanced")
    maps = geo.maps(0, 3)
    ref = _reference(enc, head, clip, 518)
    for k, (depth, sky) in enumerate(ref):
        np.testing.assert_allclose(maps["depth"][k], depth, rtol=2e-4, atol=1e-5)
        np.testing.assert_allclose(maps["sky"][k], sky, rtol=2e-4, atol=1e-5)
    pictures = da3.render(geo, "depth", "v2_style", False, False).frames(0, 3)
    for k, (depth, sky) in enumerate(ref):
        want = np.clip(_v2_style(depth, sky) * 255 + 0.5, 0, 255).astype(np.uint8)
        assert np.abs(pictures[k, ..., 0].astype(int) - want).max() <= 1
        assert (pictures[k, ..., 0] == pictures[k, ..., 2]).all()
    coloured = da3.render(geo, "depth_colored", "min_max", False, False).frames(0, 1)[0]
    depth = ref[0][0]
    want = (_turbo(1 - (depth - depth.min()) / (depth.max() - depth.min())) * 255 + 0.5).astype(np.uint8)
    assert np.abs(coloured.astype(int) - want).max() <= 1


def test_templates_import_to_the_reference_settings(tiny, clip):
    """ComfyUI's image and video templates import node for node (LoadDA3Model folded into depth.da3), and the image
    one's settings (504 px, upper_bound_resize, depth v2_style) on the tiny file give the reference's picture."""
    from app.comfyui import import_workflow
    from graph_engine.api import load_workflow
    from nodes.depth import da3
    from tests.comfyui_corpus import CORPUS
    for name, resize in (("image", "upper_bound_resize"), ("video", "lower_bound_resize")):
        res = import_workflow(str(CORPUS / "templates" / f"utility_depth_anything3_{name}_depth_estimation.json"))
        nodes = load_workflow(text=res.yaml, check=False).graph.nodes.values()
        inf = next(n for n in nodes if n.type == "depth.da3").params
        draw = next(n for n in nodes if n.type == "depth.da3_render").params
        assert inf == {"model": "depth_anything_3_mono_large.safetensors", "precision": "default", "resolution": 504,
                       "resize_method": resize, "mode": "mono"}
        assert draw == {"output": "depth", "normalization": "v2_style", "sky_clip": False}
    model = da3.load(str(tiny[0]))
    geo = da3.infer(_video(clip[:1]), model, inf["resolution"], "upper_bound_resize", inf["mode"], 8, "first")
    out = da3.render(geo, draw["output"], draw["normalization"], draw["sky_clip"], False).frames(0, 1)
    ref = _reference(tiny[1], tiny[2], clip[:1], 504)[0]
    want = np.clip(_v2_style(*ref) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert out.shape == (1, 74, 74, 3) and np.abs(out[0, ..., 0].astype(int) - want).max() <= 1


def test_wrong_files_say_what_they_are(tmp_path):
    from safetensors.torch import save_file
    from graph_engine import NodeError
    from nodes.depth import da3
    save_file({"pretrained.blocks.0.attn.qkv.weight": torch.zeros(3, 1), "depth_head.x": torch.zeros(1)},
              str(tmp_path / "depth_anything_v2_vits.safetensors"))
    save_file({"model.backbone.pretrained.cls_token": torch.zeros(1)}, str(tmp_path / "authors.safetensors"))
    with pytest.raises(NodeError, match="Depth Anything V1/V2 file: depth.estimate reads those"):
        da3.load(str(tmp_path / "depth_anything_v2_vits.safetensors"))
    with pytest.raises(NodeError, match="authors' layout"):
        da3.load(str(tmp_path / "authors.safetensors"))


def test_bad_choices_and_missing_maps_are_named(tiny, clip):
    from graph_engine import NodeError
    from nodes.depth import da3
    model = da3.load(str(tiny[0]))
    with pytest.raises(NodeError, match="multiview needs DA3 Small or Base"):
        da3.infer(_video(clip), model, 504, "upper_bound_resize", "multiview", 8, "first")
    geo = da3.infer(_video(clip), model, 504, "upper_bound_resize", "mono", 8, "first")
    with pytest.raises(NodeError, match="has no confidence map"):
        da3.render(geo, "confidence", "v2_style", False, False)
