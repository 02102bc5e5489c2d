"""Depth Anything 3 (depth.da3, depth.da3_render) on a tiny random-weight Mono-style file in ComfyUI's layout (24
encoder layers 64 wide, a small DPT head with the sky head). The reference is independent of nodes/depth/da3.py:
transformers' Dinov2Model on the same encoder weights, and the DA3 DPT head, the preprocessing and DA3Render's
normalisation written out from ComfyUI's published code (comfy/ldm/depth_anything_3/dpt.py, preprocess.py,
comfy_extras/nodes_depth_anything_3.py)."""
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


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny ops on a shared 2-core machine thrash with two torch threads (ten times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    """Depth and sky per frame within float error of the reference at 518 px (the encoder's own 37 x 37 grid, where
    the position code is the file's as it is) and at 140 (resampled), the grey v2_style picture and the
    Turbo-coloured min_max one within one level."""
    from nodes.depth import da3
    path, enc, head = tiny
    model = da3.load(str(path))
    assert model.cfg.out_layers == OUT_LAYERS and model.cfg.sky and not model.cfg.dual
    maps = da3.infer(_video(clip[:1]), model, 518, "upper_bound_resize", "mono", 8, "first").maps(0, 1)
    depth, sky = _reference(enc, head, clip[:1], 518)[0]
    np.testing.assert_allclose(maps["depth"][0], depth, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(maps["sky"][0], sky, rtol=2e-4, atol=1e-5)
    geo = da3.infer(_video(clip), model, 140, "upper_bound_resize", "mono", 8, "saddle_balanced")
    maps = geo.maps(0, 3)
    ref = _reference(enc, head, clip, 140)
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


def test_clip_spread_holds_one_range_over_the_clip(tiny, clip):
    """spread clip: every frame's depth over one range, the nearest of the frames' 1st percentiles of ground to the
    farthest of their 99th (v2_style's ends), the sky black: within one level of that computed on the reference."""
    from nodes.depth import da3
    model = da3.load(str(tiny[0]))
    geo = da3.infer(_video(clip), model, 140, "upper_bound_resize", "mono", 8, "first")
    got = da3.render(geo, "depth", "v2_style", False, False, spread="clip").frames(0, 3)[..., 0].astype(int)
    ref = _reference(tiny[1], tiny[2], clip, 140)
    ground = [torch.from_numpy(d[s < 0.3] if (s < 0.3).any() else d.ravel()) for d, s in ref]
    lo = min(float(torch.quantile(g, 0.01)) for g in ground)
    hi = max(float(torch.quantile(g, 0.99)) for g in ground)
    for k, (depth, sky) in enumerate(ref):
        want = np.where(sky >= 0.3, 0.0, 1.0 - np.clip((depth - lo) / (hi - lo), 0, 1))
        assert np.abs(got[k] - (want * 255 + 0.5).astype(int)).max() <= 1
    per_frame = da3.render(geo, "depth", "v2_style", False, False).frames(0, 3)[..., 0].astype(int)
    assert np.abs(per_frame - got).max() > 2          # the frames' own ranges differ from the clip's


def test_templates_import_and_run_to_the_reference_picture(tiny, clip, tmp_path):
    """ComfyUI's image and video templates import node for node (LoadDA3Model folded into depth.da3); the image one,
    run by the engine on the tiny file (upper_bound_resize, depth v2_style; 140 px, not 504, to keep it quick),
    gives the reference's picture."""
    from PIL import Image
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    from tests.comfyui_corpus import CORPUS
    for name, resize in (("video", "lower_bound_resize"), ("image", "upper_bound_resize")):
        res = import_workflow(str(CORPUS / "templates" / f"utility_depth_anything3_{name}_depth_estimation.json"))
        wf = load_workflow(text=res.yaml, check=False)
        nodes = wf.graph.nodes
        inf = next(i for i, n in nodes.items() if n.type == "depth.da3")
        draw = next(i for i, n in nodes.items() if n.type == "depth.da3_render")
        assert nodes[inf].params == {"model": "depth_anything_3_mono_large.safetensors", "precision": "default",
                                     "resolution": 504, "resize_method": resize, "mode": "mono"}
        assert nodes[draw].params == {"output": "depth", "normalization": "v2_style", "sky_clip": False}
    Image.fromarray(clip[0]).save(tmp_path / "in.png")
    for n in nodes.values():
        if n.type == "io.load_image":
            n.params["path"] = str(tmp_path / "in.png")
    nodes[inf].params.update(model=str(tiny[0]), resolution=140)
    wf.graph.add_node("io.save_frames", "save", {"path": str(tmp_path / "out")})
    wf.graph.connect(draw, "video", "save", "video")
    run = Session(device="cpu").run(wf, use_cache=False)
    assert run.ok, run.failed
    out = np.asarray(Image.open(sorted((tmp_path / "out").rglob("*.png"))[0]).convert("RGB"))
    ref = _reference(tiny[1], tiny[2], clip[:1], 140)[0]
    want = np.clip(_v2_style(*ref) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert out.shape == (74, 74, 3) and np.abs(out[..., 0].astype(int) - want).max() <= 1


def test_multiview_and_mask_widgets_import_as_comfyui_stores_them(tmp_path):
    """DA3Inference's multiview widgets (ref_view_strategy, pose_method after mode) and DA3Render's sky_mask /
    confidence one (colored, where depth's normalization is) land on depth.da3's ref_view and da3_render's colored."""
    import json
    from app.comfyui import import_workflow
    from graph_engine.api import load_workflow
    from tests.comfyui_corpus import CORPUS
    doc = json.loads((CORPUS / "templates" / "utility_depth_anything3_image_depth_estimation.json").read_text())
    for sub in doc["definitions"]["subgraphs"]:
        for n in sub["nodes"]:
            if n["type"] == "DA3Inference":
                n["widgets_values"] = [504, "upper_bound_resize", "multiview", "middle", "cam_dec"]
            if n["type"] == "DA3Render":
                n["widgets_values"] = ["confidence", True]
    (tmp_path / "mv.json").write_text(json.dumps(doc))
    res = import_workflow(str(tmp_path / "mv.json"))
    nodes = load_workflow(text=res.yaml, check=False).graph.nodes.values()
    inf = next(n for n in nodes if n.type == "depth.da3").params
    draw = next(n for n in nodes if n.type == "depth.da3_render").params
    assert (inf["mode"], inf["ref_view"]) == ("multiview", "middle")
    assert draw == {"output": "confidence", "colored": True}
    assert any("groups of `views`" in note for e in res.report.entries.values() if e.class_type == "DA3Inference"
               for note in e.notes)


def test_camera_path_matches_comfyui_code(tiny_small):
    """depth.da3_camera: the five frames as one scene through ComfyUI's camera decoder and pose decoding written out
    (c2w from the translation and xyzw quaternion, focal lengths from the fields of view at the model's 42 x 70),
    re-expressed from frame 0 and scaled to the 40 x 60 frames, as Kinograph's CAMERA holds a path."""
    from PIL import Image
    from nodes.depth import da3
    path, enc, _ = tiny_small
    model = da3.load(str(path))
    rng = np.random.default_rng(8)
    frames = rng.integers(0, 255, (5, 40, 60, 3)).astype(np.uint8)
    x = np.stack([np.asarray(Image.fromarray(f).resize((70, 42), Image.LANCZOS)) for f in frames]) / np.float32(255)
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    with torch.no_grad():
        enc(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))[None])
        c2w, fx, fy = _pose_encoding_to_c2w_k(enc.cam_dec(enc.last_token[0]), 42, 70)
    rel = torch.linalg.inv(c2w[:1]) @ c2w
    geo = da3.infer(_video(frames), model, 70, "upper_bound_resize", "multiview", 8, "saddle_balanced")
    cam = da3.camera(geo)
    assert (cam.length, cam.width, cam.height) == (5, 60, 40)
    np.testing.assert_allclose(cam.c2w, rel.double().numpy(), atol=2e-5)
    np.testing.assert_allclose(cam.intrinsics[:, 0], fx.numpy() * 60 / 70, rtol=1e-5)
    np.testing.assert_allclose(cam.intrinsics[:, 1], fy.numpy() * 40 / 42, rtol=1e-5)
    assert np.abs(cam.c2w[1:, :3, 3]).max() > 1e-3        # the views are not all at frame 0's place


def test_info_lists_the_file_as_read_by_depth_da3(tiny, tiny_small):
    from nodes.depth.estimate import describe
    mono, small = describe(tiny[0]), describe(tiny_small[0])
    assert (mono["loads"], mono["variant"]) == ("yes", "DA3 Mono/Metric 64-wide") and "depth.da3" in mono["note"]
    assert (small["loads"], small["variant"]) == ("yes", "DA3 64-wide")
    assert describe(tiny_small[0].parent / "da3_small_authors.safetensors")["variant"] == "DA3 64-wide"


def test_wrong_files_say_what_they_are(tmp_path):
    from safetensors.torch import save_file
    from graph_engine import NodeError
    from nodes.depth import da3
    save_file({"pretrained.blocks.0.attn.qkv.weight": torch.zeros(3, 1), "depth_head.x": torch.zeros(1)},
              str(tmp_path / "depth_anything_v2_vits.safetensors"))
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, str(tmp_path / "unet.safetensors"))
    with pytest.raises(NodeError, match="Depth Anything V1/V2 file: depth.estimate reads those"):
        da3.load(str(tmp_path / "depth_anything_v2_vits.safetensors"))
    with pytest.raises(NodeError, match="unet.safetensors is not a Depth Anything 3 file"):
        da3.load(str(tmp_path / "unet.safetensors"))


def test_damaged_headers_are_named_not_tracebacks(tmp_path):
    """A file with DA3's two telling tensors but a 0-dimensional patch embedding, an encoder layer numbered 'x' or
    an authors' block named without its part,
    stopped `kinograph info` on the whole models folder (IndexError / ValueError traceback from depth's describe)
    and was the same traceback in depth.da3; info now leaves it to the weights' row, the loader names it."""
    from safetensors.torch import save_file
    from graph_engine import NodeError
    from nodes.depth import da3
    from nodes.depth.estimate import describe
    base = {"backbone.embeddings.patch_embeddings.projection.weight": torch.zeros(4, 3, 14, 14),
            "head.projects.0.weight": torch.zeros(2, 4)}
    for n, damage in enumerate(({"backbone.embeddings.patch_embeddings.projection.weight": torch.zeros(())},
                                {"backbone.encoder.layer.x.norm1.weight": torch.zeros(1)},
                                {"backbone.encoder.layer.": torch.zeros(1)},
                                {"backbone.pretrained.blocks.5": torch.zeros(1)})):
        path = tmp_path / f"da3_damaged_{n}.safetensors"
        save_file({**base, **damage}, str(path))
        assert describe(path)["variant"] != "DA3 4-wide"
        with pytest.raises(NodeError, match=f"da3_damaged_{n}.safetensors holds tensors of shapes a Depth Anything 3 "
                                            "file does not have"):
            da3.load(str(path))


def test_bad_choices_and_missing_maps_are_named(tiny, clip):
    from graph_engine import NodeError
    from nodes.depth import da3
    model = da3.load(str(tiny[0]))
    with pytest.raises(NodeError, match="multiview needs DA3 Small or Base"):
        da3.infer(_video(clip), model, 504, "upper_bound_resize", "multiview", 8, "first")
    geo = da3.infer(_video(clip), model, 504, "upper_bound_resize", "mono", 8, "first")
    with pytest.raises(NodeError, match="has no confidence map"):
        da3.render(geo, "confidence", "v2_style", False, False)
    with pytest.raises(NodeError, match="has no camera decoder"):
        da3.camera(geo)
    with pytest.raises(NodeError, match="spread 'shot': use one of frame, clip"):
        da3.render(geo, "depth", "v2_style", False, False, spread="shot")


# -- DA3 Small / Base: QK-norm, 2D RoPE, alternating attention, the camera token, a DualDPT head ------------------
ALT, SMALL_OUT = 4, (5, 7, 9, 11)       # da3-small / da3-base's alt_start (= qknorm_start = rope_start), out layers


class AnyViewEncoder(nn.Module):
    """ComfyUI's Dinov2Model with DA3's extensions (comfy/image_encoders/dino2.py), written out."""

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIM) * 0.02)
        self.position_embeddings = nn.Parameter(torch.randn(1, 37 * 37 + 1, DIM) * 0.02)
        self.camera_token = nn.Parameter(torch.randn(1, 2, DIM) * 0.5)
        self.patch = nn.Conv2d(3, DIM, 14, 14)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "norm1": nn.LayerNorm(DIM, eps=1e-6), "norm2": nn.LayerNorm(DIM, eps=1e-6),
            "query": nn.Linear(DIM, DIM), "key": nn.Linear(DIM, DIM), "value": nn.Linear(DIM, DIM),
            "dense": nn.Linear(DIM, DIM), "fc1": nn.Linear(DIM, 4 * DIM), "fc2": nn.Linear(4 * DIM, DIM),
            **({"q_norm": nn.LayerNorm(DIM), "k_norm": nn.LayerNorm(DIM)} if i >= ALT else {})}) for i in range(12))
        self.ls = nn.ParameterList(nn.Parameter(torch.rand(DIM) + 0.5) for _ in range(24))
        self.layernorm = nn.LayerNorm(DIM, eps=1e-6)

    def state(self):
        out = {"embeddings.cls_token": self.cls_token, "embeddings.position_embeddings": self.position_embeddings,
               "embeddings.camera_token": self.camera_token,
               "embeddings.patch_embeddings.projection.weight": self.patch.weight,
               "embeddings.patch_embeddings.projection.bias": self.patch.bias,
               "layernorm.weight": self.layernorm.weight, "layernorm.bias": self.layernorm.bias}
        where = {"norm1": "norm1", "norm2": "norm2", "query": "attention.attention.query",
                 "key": "attention.attention.key", "value": "attention.attention.value",
                 "dense": "attention.output.dense", "fc1": "mlp.fc1", "fc2": "mlp.fc2",
                 "q_norm": "attention.q_norm", "k_norm": "attention.k_norm"}
        for i, b in enumerate(self.blocks):
            for n, m in b.items():
                out.update({f"encoder.layer.{i}.{where[n]}.{p}": t for p, t in m.named_parameters()})
            out[f"encoder.layer.{i}.layer_scale1.lambda1"] = self.ls[2 * i]
            out[f"encoder.layer.{i}.layer_scale2.lambda1"] = self.ls[2 * i + 1]
        return {"backbone." + k: v.detach().contiguous() for k, v in out.items()}

    def authors_state(self):
        """The same tensors in the authors' layout (depth-anything/DA3-SMALL's model.safetensors: DINOv2's timm
        names under model.backbone.pretrained., one fused qkv a block)."""
        out = {"cls_token": self.cls_token, "pos_embed": self.position_embeddings, "camera_token": self.camera_token,
               "patch_embed.proj.weight": self.patch.weight, "patch_embed.proj.bias": self.patch.bias,
               "norm.weight": self.layernorm.weight, "norm.bias": self.layernorm.bias}
        for i, b in enumerate(self.blocks):
            for p in ("weight", "bias"):
                out[f"blocks.{i}.attn.qkv.{p}"] = torch.cat([getattr(b[n], p) for n in ("query", "key", "value")])
                for n, name in (("norm1", "norm1"), ("norm2", "norm2"), ("dense", "attn.proj"), ("fc1", "mlp.fc1"),
                                ("fc2", "mlp.fc2"), ("q_norm", "attn.q_norm"), ("k_norm", "attn.k_norm")):
                    if n in b:
                        out[f"blocks.{i}.{name}.{p}"] = getattr(b[n], p)
            out[f"blocks.{i}.ls1.gamma"], out[f"blocks.{i}.ls2.gamma"] = self.ls[2 * i], self.ls[2 * i + 1]
        return {"model.backbone.pretrained." + k: v.detach().contiguous() for k, v in out.items()}

    @staticmethod
    def rope(tokens, positions):
        d = tokens.size(-1) // 2
        inv = 1.0 / (100.0 ** (torch.arange(0, d, 2).float() / d))
        ang = torch.einsum("i,j->ij", torch.arange(int(positions.max()) + 1).float(), inv)
        ang = torch.cat((ang, ang), dim=-1)
        cos_c, sin_c = ang.cos(), ang.sin()

        def one(x, p):
            cos, sin = F.embedding(p, cos_c)[:, None], F.embedding(p, sin_c)[:, None]
            x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
            return x * cos + torch.cat((-x2, x1), dim=-1) * sin
        v, h = tokens.chunk(2, dim=-1)
        return torch.cat((one(v, positions[..., 0]), one(h, positions[..., 1])), dim=-1)

    def block(self, i, x, pos):
        b, ls = self.blocks[i], self.ls
        y = b["norm1"](x)
        B, N, C = y.shape
        q, k, v = (b[n](y).view(B, N, 1, C).transpose(1, 2) for n in ("query", "key", "value"))
        if "q_norm" in b:
            q, k = b["q_norm"](q), b["k_norm"](k)
        if pos is not None:
            q, k = self.rope(q, pos), self.rope(k, pos)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        x = x + ls[2 * i] * b["dense"](a)
        return x + ls[2 * i + 1] * b["fc2"](F.gelu(b["fc1"](b["norm2"](x))))

    @staticmethod
    def select(x):      # saddle_balanced
        S = x.shape[1]
        f = x[:, :, 0] / x[:, :, 0].norm(dim=-1, keepdim=True)
        sim = torch.matmul(f, f.transpose(1, 2)) - torch.eye(S)[None]
        score = sim.sum(dim=-1) / (S - 1)

        def norm(m):
            return (m - m.min(1, keepdim=True).values) / (m.max(1, keepdim=True).values - m.min(1, keepdim=True).values + 1e-8)
        bal = (norm(score) - 0.5).abs() + (norm(x[:, :, 0].norm(dim=-1)) - 0.5).abs() + (norm(f.var(dim=-1)) - 0.5).abs()
        return bal.argmin(dim=1)

    @staticmethod
    def reorder(x, b_idx):
        S = x.shape[1]
        pos = torch.arange(S)[None]
        r = torch.where((pos > 0) & (pos <= b_idx[:, None]), pos - 1, pos)
        r[:, 0] = b_idx
        return x[torch.arange(x.shape[0])[:, None], r]

    @staticmethod
    def restore(x, b_idx):
        S = x.shape[1]
        t = torch.arange(S)[None]
        r = torch.where(t < b_idx[:, None], t + 1, t)
        r = torch.scatter(r, 1, b_idx[:, None], torch.zeros_like(b_idx[:, None]))
        return x[torch.arange(x.shape[0])[:, None], r]

    def forward(self, px):
        B, S, _, H, W = px.shape
        x = self.patch(px.reshape(B * S, 3, H, W)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(B * S, -1, -1), x], dim=1)
        ph, pw = H // 14, W // 14
        grid = F.interpolate(self.position_embeddings[:, 1:].reshape(1, 37, 37, DIM).permute(0, 3, 1, 2),
                             scale_factor=((ph + 0.1) / 37, (pw + 0.1) / 37), mode="bicubic", antialias=False)
        x = x + torch.cat([self.position_embeddings[:, :1], grid.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)
        x = x.reshape(B, S, -1, DIM)
        pos = torch.cartesian_prod(torch.arange(ph), torch.arange(pw)).view(1, -1, 2).expand(B * S, -1, -1) + 1
        cls = torch.zeros(B * S, 1, 2, dtype=pos.dtype)
        pos_local, pos_global = torch.cat([cls, pos], 1), torch.cat([cls, torch.zeros_like(pos) + 1], 1)
        local_x, b_idx, outs = x, None, []
        for i in range(12):
            rope = i >= ALT
            if i == ALT - 1 and S >= 3:
                b_idx = self.last_ref = self.select(x)
                x, local_x = self.reorder(x, b_idx), self.reorder(local_x, b_idx)
            if i == ALT:
                x = x.clone()
                x[:, :, 0] = torch.cat([self.camera_token[:, :1].expand(B, -1, -1),
                                        self.camera_token[:, 1:].expand(B, S - 1, -1)], dim=1)
            if i >= ALT and i % 2 == 1:
                p = pos_global.reshape(B, -1, 2) if rope else None
                x = self.block(i, x.reshape(B, -1, DIM), p).reshape(x.shape)
            else:
                p = pos_local if rope else None
                x = self.block(i, x.reshape(B * S, -1, DIM), p).reshape(x.shape)
                local_x = x
            if i in SMALL_OUT:
                o = torch.cat([local_x, x], dim=-1)
                outs.append(self.restore(o, b_idx) if b_idx is not None else o)
        self.last_token = outs[-1][:, :, 0]         # model.py: cam_feat = feats[-1][1], the cls tokens, not normed
        return [torch.cat([o[..., :DIM], self.layernorm(o[..., DIM:])], -1)[..., 1:, :] for o in outs]


def _uv_embed(x, W, H):
    """DualDPT's _add_pos_embed (_create_uv_grid, _position_grid_to_embed), written out."""
    pw, ph, C = x.shape[-1], x.shape[-2], x.shape[1]
    ar = W / H
    diag = (ar ** 2 + 1.0) ** 0.5
    sx, sy = ar / diag, 1.0 / diag
    xs = torch.linspace(-sx * (pw - 1) / pw, sx * (pw - 1) / pw, steps=pw)
    ys = torch.linspace(-sy * (ph - 1) / ph, sy * (ph - 1) / ph, steps=ph)
    uu, vv = torch.meshgrid(xs, ys, indexing="xy")
    grid = torch.stack((uu, vv), dim=-1).reshape(-1, 2)

    def sincos(d, p):
        omega = 1.0 / 100.0 ** (torch.arange(d // 2).float() / (d / 2.0))
        o = torch.einsum("m,d->md", p, omega)
        return torch.cat([o.sin(), o.cos()], dim=1)
    pe = torch.cat([sincos(C // 2, grid[:, 0]), sincos(C // 2, grid[:, 1])], -1).view(ph, pw, C)
    return x + 0.1 * pe.permute(2, 0, 1)[None]


class DualDPT(DPT):
    """ComfyUI's DualDPT main branch (depth through exp, confidence through exp + 1), written out; the auxiliary
    ray branch's tensors are in the file but not run (mono and multiview depth do not use it)."""

    def __init__(self):
        super().__init__()
        oc = CHANNELS
        self.norm = nn.LayerNorm(2 * DIM)
        self.projects = nn.ModuleList(nn.Conv2d(2 * DIM, c, 1) for c in oc)
        del self.scratch.sky_output_conv2
        self.scratch.output_conv2 = nn.Sequential(nn.Conv2d(FEATURES // 2, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 2, 1))
        self.scratch.refinenet1_aux = Fusion(FEATURES)

    def forward(self, feats, H, W):
        ph, pw = H // 14, W // 14
        r = []
        for i, x in enumerate(feats):
            x = self.norm(x).permute(0, 2, 1).reshape(x.shape[0], 2 * DIM, ph, pw)
            r.append(self.resize_layers[i](_uv_embed(self.projects[i](x), W, H)))
        s = self.scratch
        l1, l2, l3, l4 = (getattr(s, f"layer{i + 1}_rn")(r[i]) for i in range(4))
        m = s.refinenet4(l4, size=l3.shape[2:])
        m = s.refinenet3(m, l3, size=l2.shape[2:])
        m = s.refinenet2(m, l2, size=l1.shape[2:])
        m = s.output_conv1(s.refinenet1(m, l1))
        m = _uv_embed(F.interpolate(m, (ph * 14, pw * 14), mode="bilinear", align_corners=True), W, H)
        fmap = s.output_conv2(m).permute(0, 2, 3, 1)
        return torch.exp(fmap[..., 0]), torch.exp(fmap[..., -1]) + 1


class CameraDec(nn.Module):
    """ComfyUI's CameraDec (camera.py), written out."""

    def __init__(self, d=2 * DIM):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU())
        self.fc_t, self.fc_qvec = nn.Linear(d, 3), nn.Linear(d, 4)
        self.fc_fov = nn.Sequential(nn.Linear(d, 2), nn.ReLU())
        with torch.no_grad():
            self.fc_fov[0].bias.fill_(1.0)        # fields of view about a radian, as a trained decoder gives

    def forward(self, feat):
        f = self.backbone(feat)
        return torch.cat([self.fc_t(f), self.fc_qvec(f), self.fc_fov(f)], dim=-1)


def _pose_encoding_to_c2w_k(enc, H, W):
    """transform.py's pose_encoding_to_extri_intri (quat_to_mat, xyzw), written out."""
    T, quat, fov_h, fov_w = enc[..., :3], enc[..., 3:7], enc[..., 7], enc[..., 8]
    quat = quat / quat.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    i, j, k, r = torch.unbind(quat, -1)
    two_s = 2.0 / (quat * quat).sum(-1)
    R = torch.stack((1 - two_s * (j * j + k * k), two_s * (i * j - k * r), two_s * (i * k + j * r),
                     two_s * (i * j + k * r), 1 - two_s * (i * i + k * k), two_s * (j * k - i * r),
                     two_s * (i * k - j * r), two_s * (j * k + i * r), 1 - two_s * (i * i + j * j)), -1)
    c2w = torch.eye(4).repeat(enc.shape[0], 1, 1)
    c2w[:, :3, :3], c2w[:, :3, 3] = R.reshape(-1, 3, 3), T
    fy = (H / 2.0) / torch.clamp(torch.tan(fov_h / 2.0), 1e-6)
    fx = (W / 2.0) / torch.clamp(torch.tan(fov_w / 2.0), 1e-6)
    return c2w, fx, fy


@pytest.fixture(scope="module")
def tiny_small(tmp_path_factory):
    from safetensors.torch import save_file
    torch.manual_seed(1)
    enc, head, cam_dec = AnyViewEncoder().eval(), DualDPT().eval(), CameraDec().eval()
    enc.cam_dec = cam_dec
    with torch.no_grad():
        for p in head.parameters():
            p.mul_(2.0)
    state = enc.state()
    state.update({"head." + k: v.contiguous() for k, v in head.state_dict().items()})
    state.update({"cam_dec." + k: v.contiguous() for k, v in cam_dec.state_dict().items()})
    folder = tmp_path_factory.mktemp("da3s")
    path = folder / "depth_anything_3_tiny_small.safetensors"
    save_file(state, str(path))
    authors = enc.authors_state()
    authors.update({"model.head." + k: v.contiguous() for k, v in head.state_dict().items()})
    authors.update({"model.cam_dec." + k: v.contiguous() for k, v in cam_dec.state_dict().items()})
    save_file(authors, str(folder / "da3_small_authors.safetensors"))
    return path, enc, head


def test_any_view_model_matches_comfyui_code_mono_and_multiview(tiny_small):
    """A Small-style file (QK-norm, RoPE and all-view attention from layer 4, the camera token, a DualDPT head):
    depth and confidence equal ComfyUI's code written out, each frame alone (mono, 40 x 60 frames at 70 px: the
    position code resampled to 3 x 5) and the five frames as one scene (multiview, the reference view chosen
    saddle_balanced among them)."""
    from PIL import Image
    from nodes.depth import da3
    path, enc, head = tiny_small
    model = da3.load(str(path))
    assert (model.cfg.alt_start, model.cfg.cat_token, model.cfg.dual, model.cfg.out_layers) == (4, True, True, SMALL_OUT)
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 255, (5, 40, 60, 3)).astype(np.uint8)
    x = np.stack([np.asarray(Image.fromarray(f).resize((70, 42), Image.LANCZOS)) for f in frames]) / np.float32(255)
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    px = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))
    size = dict(size=(40, 60), mode="bilinear", align_corners=False)
    seen = {}
    for mode, scenes in (("mono", px[:, None]), ("multiview", px[None])):
        with torch.no_grad():
            feats = [f.flatten(0, 1) for f in enc(scenes)]
            depth, conf = head(feats, 42, 70)
        geo = da3.infer(_video(frames), model, 70, "upper_bound_resize", mode, 5, "saddle_balanced")
        got = seen[mode] = geo.maps(0, 5)
        np.testing.assert_allclose(got["depth"], F.interpolate(depth[:, None], **size)[:, 0].numpy(), rtol=1e-4)
        np.testing.assert_allclose(got["confidence"], F.interpolate(conf[:, None], **size)[:, 0].numpy(), rtol=1e-4)
    authors = da3.load(str(path.parent / "da3_small_authors.safetensors"))     # the same net, the authors' names
    assert authors.cfg == model.cfg
    again = da3.infer(_video(frames), authors, 70, "upper_bound_resize", "multiview", 5, "saddle_balanced").maps(0, 5)
    np.testing.assert_allclose(again["depth"], seen["multiview"]["depth"], rtol=1e-5)
    assert int(enc.last_ref[0]) != 0         # the scene was reordered round its reference view and back
    assert np.abs(seen["mono"]["depth"] - seen["multiview"]["depth"]).max() > 1e-3    # the views saw each other


def test_a_file_claiming_a_far_larger_network_is_named_before_it_is_built(tiny, tmp_path):
    """DA3's width is the patch embedding's: a file whose embedding says 512 by a tensor of no values (512, 0, 14,
    14) built 300 MB of layers the file does not hold before its shapes were compared (a larger claim fills the
    machine's memory); refused from a build on the meta device."""
    import torch
    from safetensors.torch import load_file, save_file
    from graph_engine import NodeError
    from nodes.depth import da3
    state = load_file(str(tiny[0]))
    state["backbone.embeddings.patch_embeddings.projection.weight"] = torch.zeros(512, 0, 14, 14)
    state["head.projects.0.weight"] = torch.zeros(0, 512, 1, 1)
    path = tmp_path / "depth_anything_3_wide.safetensors"
    save_file(state, str(path))
    with pytest.raises(NodeError, match="depth_anything_3_wide.safetensors: its tensor shapes make a network of .* "
                                        "far more than the file's"):
        da3.load(str(path))


def test_a_camera_decoder_giving_no_rotation_is_named(tiny_small, tmp_path):
    """A Small-style file whose camera decoder's rotation layer holds zeros or NaN (damaged) gave quaternions of no
    length, which scipy refused with 'Found zero norm quaternions in `quat`', a ValueError traceback."""
    from safetensors.torch import load_file, save_file
    from graph_engine import NodeError
    from nodes.depth import da3
    frames = np.random.default_rng(9).integers(0, 255, (2, 28, 28, 3)).astype(np.uint8)
    for n, value in enumerate((0.0, float("nan"))):
        state = load_file(str(tiny_small[0]))
        for k in ("cam_dec.fc_qvec.weight", "cam_dec.fc_qvec.bias"):
            state[k] = torch.full_like(state[k], value)
        path = tmp_path / f"depth_anything_3_small_damaged_{n}.safetensors"
        save_file(state, str(path))
        geometry = da3.infer(_video(frames), da3.load(str(path)), 28, "upper_bound_resize", "multiview", 8, "first")
        with pytest.raises(NodeError, match="depth.da3_camera: the camera decoder gave no rotation .*damaged"):
            da3.camera(geometry)
