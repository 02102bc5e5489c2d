"""normals.* against comfyui_controlnet_aux's normal-map preprocessors, with tiny random-weight models saved as the
real ones are (MiDaS DPT-Hybrid as its Hugging Face folder, Intel/dpt-hybrid-midas). The expected pictures are
computed here from the pack's published steps (resize_image_with_pad, MidasDetector's depth_and_normal), not by
Kinograph's functions."""
import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from graph_engine.clip import Clip

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def build_dpt_hybrid(folder: Path, image_size: int = 64) -> Path:
    """DPT-Hybrid (a BiT backbone of 3 stages, 4 ViT layers) a few channels wide, saved with its processor."""
    from transformers import BitConfig, DPTConfig, DPTForDepthEstimation, DPTImageProcessor
    torch.manual_seed(0)
    bit = BitConfig(global_padding="same", layer_type="bottleneck", depths=[1, 1, 1], hidden_sizes=[8, 16, 32],
                    embedding_size=8, num_groups=4, embedding_dynamic_padding=True,
                    out_features=["stage1", "stage2", "stage3"])
    config = DPTConfig(is_hybrid=True, backbone_config=bit, backbone_featmap_shape=[1, 32, 4, 4], hidden_size=16,
                       num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=image_size,
                       patch_size=16, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 16, 16],
                       fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5], readout_type="project",
                       initializer_range=0.3)
    model = DPTForDepthEstimation(config)
    model.head.head[-2].bias.data.fill_(1.0)        # random weights' last ReLU would flatten most of the map
    model.save_pretrained(str(folder))
    DPTImageProcessor(size={"height": 384, "width": 384}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(
        str(folder))
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_dpt_hybrid(root / "depth" / "dpt-hybrid-midas")
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(root))
    yield root
    mp.undo()


def frames(n, h, w):
    rng = np.random.default_rng(3)
    f = rng.integers(0, 256, (n, h, w, 3)).astype(np.uint8)
    f[:, h // 4: h // 2, w // 3: w // 2] = 250
    return cv2.GaussianBlur(f.reshape(n * h, w, 3), (0, 0), 1.5).reshape(n, h, w, 3)


def pack_sized(frame, resolution):
    """resize_image_with_pad: short side to `resolution` (cubic up, area down), edges repeated to whole 64s."""
    h, w = frame.shape[:2]
    k = resolution / min(h, w)
    th, tw = int(np.round(h * k)), int(np.round(w * k))
    img = cv2.resize(frame, (tw, th), interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
    hp, wp = int(np.ceil(th / 64) * 64), int(np.ceil(tw / 64) * 64)
    return np.pad(img, [[0, hp - th], [0, wp - tw], [0, 0]], mode="edge"), (th, tw)


def pack_normal(depth, a, bg_th):
    """MidasDetector's depth_and_normal, step by step."""
    depth_pt = torch.from_numpy(depth).clone()
    depth_pt -= torch.min(depth_pt)
    depth_pt /= torch.max(depth_pt)
    depth_pt = depth_pt.numpy()
    x = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
    y = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3)
    z = np.ones_like(x) * a
    x[depth_pt < bg_th] = 0
    y[depth_pt < bg_th] = 0
    normal = np.stack([x, y, z], axis=2)
    normal /= np.sum(normal ** 2.0, axis=2, keepdims=True) ** 0.5
    return (normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)[:, :, ::-1]


def test_midas_normals_are_the_slopes_of_the_depth_of_the_padded_picture(models, tmp_path):
    """A 3-frame clip in chunks of 2 through normals.midas: every pixel is the pack's normal of the DPT's depth of
    the picture sized and padded as the pack does (48x64 frames at resolution 64: 64x85, padded to 64x128: a picture
    transformers' DPT-Hybrid refused, "Input image size (64*128) doesn't match model (64*64)"). The depth of a
    square picture is transformers' own forward's."""
    from transformers import DPTForDepthEstimation
    from graph_engine.context import Context
    from node_call import Nodes
    from nodes.normals import nodes as normal_nodes
    from nodes.normals.midas import dpt_depth
    f = frames(3, 48, 64)
    clip = Clip(3, 24.0, 64, 48, lambda a, b: f[a:b], chunk=2)
    got = Nodes(normal_nodes).midas(Context("x"), clip, a=3.0, bg_threshold=0.3, resolution=64).frames(0, 3)
    assert got.shape == (3, 64, 85, 3)
    model = DPTForDepthEstimation.from_pretrained(str(models / "depth" / "dpt-hybrid-midas")).eval()
    backgrounds = 0
    for frame, mine in zip(f, got):
        img, (th, tw) = pack_sized(frame, 64)
        assert img.shape == (64, 128, 3)
        x = torch.from_numpy(img).float().permute(2, 0, 1)[None] / 127.5 - 1.0
        with torch.inference_mode():
            depth = dpt_depth(model, x)[0].numpy()
        want = pack_normal(depth, 3.0, 0.3)[:th, :tw]
        assert (mine == want).all()
        backgrounds += int((mine == [255, 127, 127]).all(axis=2).sum())     # faces the camera: z only, B G R
    assert backgrounds > 0 and got.std() > 5
    square = torch.from_numpy(pack_sized(f[0][:, :48], 64)[0]).float().permute(2, 0, 1)[None] / 127.5 - 1.0
    with torch.inference_mode():
        assert torch.equal(dpt_depth(model, square), model(pixel_values=square).predicted_depth)


def test_midas_normals_need_a_dpt_model_and_kinograph_info_says_which_depth_folders_load(models, tmp_path,
                                                                                         monkeypatch):
    """normals.midas refuses another depth model by name. kinograph info listed each depth folder's
    model.safetensors as "unknown ... (no known key pattern)", loads no: now the folder, its type and its readers,
    and the pack's own depth files with the folder to use instead."""
    from tiny_models import build_depth_anything
    from nodes.generate.model_manager import list_found_models
    from nodes.normals.midas import load_dpt
    build_depth_anything(tmp_path / "depth" / "Depth-Anything-tiny-hf")
    (models / "depth" / "dpt_hybrid-midas-501f0c75.pt").write_bytes(b"not read")
    monkeypatch.setenv("KINOGRAPH_MODELS", f"{tmp_path}{os.pathsep}{models}")
    with pytest.raises(NodeError, match="depth_anything model; give the Hugging Face folder Intel/dpt-hybrid-midas"):
        load_dpt("Depth-Anything-tiny-hf", "cpu")
    rows = {Path(p).name: (kind, r["family"], r["variant"], r["loads"], r["note"]) for kind, p, r in list_found_models()}
    assert rows["Depth-Anything-tiny-hf"] == ("depth", "depth", "depth_anything", "yes", "depth.estimate")
    assert rows["dpt-hybrid-midas"] == ("depth", "depth", "dpt", "yes", "depth.estimate, normals.midas")
    assert rows["dpt_hybrid-midas-501f0c75.pt"][3] == "no" and "Intel/dpt-hybrid-midas" in rows[
        "dpt_hybrid-midas-501f0c75.pt"][4]
    assert not any(name.endswith(".safetensors") for name in rows)


def test_normal_preprocessors_import_from_a_comfyui_graph():
    """MiDaS-NormalMapPreprocessor (widgets a, bg_threshold, resolution), BAE-NormalMapPreprocessor (resolution) and
    AIO_Preprocessor naming them become normals.midas and normals.bae with their settings (AIO: the node's defaults
    and the AIO's resolution); the pack's normal and line
    preprocessors Kinograph does not run keep a placeholder whose line says what to use instead."""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    from test_lines import preprocessor_graph as ui_graph
    refused = ("DSINE-NormalMapPreprocessor", "Metric3D-NormalMapPreprocessor", "TEEDPreprocessor",
               "AnyLineArtPreprocessor_aux", "DiffusionEdge_Preprocessor")
    pre = [("MiDaS-NormalMapPreprocessor", [4.0, 0.2, 768]), ("AIO_Preprocessor", ["MiDaS-NormalMapPreprocessor", 640]),
           ("BAE-NormalMapPreprocessor", [1024]), ("AIO_Preprocessor", ["BAE-NormalMapPreprocessor", 512])]
    res = import_data(ui_graph(pre + [(name, [512]) for name in refused]))
    got = sorted(tuple(sorted(n.params.items())) for n in res.graph.nodes.values() if n.type == "normals.midas")
    assert got == sorted([(("a", 4.0), ("bg_threshold", 0.2), ("model", "dpt-hybrid-midas"), ("resolution", 768)),
                          (("a", 2.0 * math.pi), ("bg_threshold", 0.1), ("model", "dpt-hybrid-midas"),
                           ("resolution", 640))])
    bae = sorted(n.params["resolution"] for n in res.graph.nodes.values() if n.type == "normals.bae")
    assert bae == [512, 1024]
    lines = {e.class_type: " ".join(e.notes) for e in res.report.entries.values()}
    for name in refused:
        assert "is not in Kinograph; " in lines[name] and "placeholder" in lines[name], lines[name]
    assert "lines.pidinet" in lines["TEEDPreprocessor"]
    assert "normals.bae" in lines["DSINE-NormalMapPreprocessor"]
    mapped = import_data(ui_graph(pre))
    assert not mapped.report.blocking
    load_workflow(text=mapped.yaml)


# Bae's network a few channels wide: EfficientNet stages of one block each (stage 0 depthwise, kernels 3 and 5 as
# B5's), the decoder's widths cut to match
STAGES = ((4, 3, 1), (4, 3, 6), (6, 5, 6), (6, 3, 6), (8, 5, 6), (8, 5, 6), (8, 3, 6))     # out, kernel, expansion
STEM, HEAD, UP, MLP = 4, 12, (10, 8, 6, 6), 5


def bae_state(g):
    s = {}

    def t(name, *shape, scale=1.0):
        s[name] = torch.randn(*shape, generator=g) * scale

    def bn(name, c):
        t(name + ".weight", c, scale=0.2)
        s[name + ".weight"] += 1
        t(name + ".bias", c, scale=0.1)
        t(name + ".running_mean", c, scale=0.1)
        s[name + ".running_var"] = torch.rand(c, generator=g) + 0.5
    e = "encoder.original_model."
    t(e + "conv_stem.weight", STEM, 3, 3, 3, scale=0.3)
    bn(e + "bn1", STEM)
    cin = STEM
    for i, (cout, k, x) in enumerate(STAGES):
        p = f"{e}blocks.{i}.0."
        mid, rd = cin * x, max(1, cin // 4)
        if x == 1:
            t(p + "conv_dw.weight", cin, 1, k, k, scale=0.3)
            bn(p + "bn1", cin)
            t(p + "conv_pw.weight", cout, cin, 1, 1, scale=0.5)
            bn(p + "bn2", cout)
        else:
            t(p + "conv_pw.weight", mid, cin, 1, 1, scale=0.5)
            bn(p + "bn1", mid)
            t(p + "conv_dw.weight", mid, 1, k, k, scale=0.3)
            bn(p + "bn2", mid)
            t(p + "conv_pwl.weight", cout, mid, 1, 1, scale=0.3)
            bn(p + "bn3", cout)
        t(p + "se.conv_reduce.weight", rd, mid, 1, 1, scale=0.5)
        t(p + "se.conv_reduce.bias", rd, scale=0.1)
        t(p + "se.conv_expand.weight", mid, rd, 1, 1, scale=0.5)
        t(p + "se.conv_expand.bias", mid, scale=0.1)
        cin = cout
    t(e + "conv_head.weight", HEAD, cin, 1, 1, scale=0.3)
    bn(e + "bn2", HEAD)
    d = "decoder."
    t(d + "conv2.weight", HEAD, HEAD, 1, 1, scale=0.3)
    t(d + "conv2.bias", HEAD, scale=0.1)
    prev = HEAD
    for i, (out, skip) in enumerate(zip(UP, (STAGES[4][0], STAGES[2][0], STAGES[1][0], STAGES[0][0])), 1):
        t(f"{d}up{i}._net.0.weight", out, prev + skip, 3, 3, scale=0.2)
        t(f"{d}up{i}._net.0.bias", out, scale=0.1)
        bn(f"{d}up{i}._net.1", out)
        t(f"{d}up{i}._net.3.weight", out, out, 3, 3, scale=0.2)
        t(f"{d}up{i}._net.3.bias", out, scale=0.1)
        bn(f"{d}up{i}._net.4", out)
        prev = out
    t(d + "out_conv_res8.weight", 4, UP[1], 3, 3, scale=0.3)
    t(d + "out_conv_res8.bias", 4, scale=0.1)
    for r, cin in ((4, UP[1]), (2, UP[2]), (1, UP[3])):
        for j, (o, i) in enumerate(((MLP, cin + 4), (MLP, MLP), (MLP, MLP), (4, MLP))):
            t(f"{d}out_conv_res{r}.{2 * j}.weight", o, i, 1, scale=0.5)
            t(f"{d}out_conv_res{r}.{2 * j}.bias", o, scale=0.1)
    return s


def reference_bae(s, frame, resolution):
    """NormalBaeDetector's picture, the network written out in torch.nn.functional from the published layers."""
    img, (th, tw) = pack_sized(frame, resolution)
    x = torch.from_numpy(img).float() / 255.0
    x = ((x - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])).permute(2, 0, 1)[None]

    def bn(v, n, eps=1e-3):
        return F.batch_norm(v, s[n + ".running_mean"], s[n + ".running_var"], s[n + ".weight"], s[n + ".bias"],
                            False, 0.0, eps)

    def same(v, w, stride=1, groups=1):       # TensorFlow SAME: the odd padding pixel after
        k = w.shape[-1]
        ph = max((-(-v.shape[2] // stride) - 1) * stride + k - v.shape[2], 0)
        pw = max((-(-v.shape[3] // stride) - 1) * stride + k - v.shape[3], 0)
        v = F.pad(v, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(v, w, None, stride, 0, 1, groups)

    def se(v, p):
        z = F.conv2d(F.silu(F.conv2d(v.mean((2, 3), keepdim=True), s[p + "se.conv_reduce.weight"],
                                     s[p + "se.conv_reduce.bias"])), s[p + "se.conv_expand.weight"],
                     s[p + "se.conv_expand.bias"])
        return v * torch.sigmoid(z)
    e = "encoder.original_model."
    v = F.silu(bn(same(x, s[e + "conv_stem.weight"], 2), e + "bn1"))
    feats = []
    cin = STEM
    for i, (cout, k, ex) in enumerate(STAGES):
        p, stride = f"{e}blocks.{i}.0.", (1, 2, 2, 2, 1, 2, 1)[i]
        if ex == 1:
            y = F.silu(bn(same(v, s[p + "conv_dw.weight"], stride, cin), p + "bn1"))
            y = bn(F.conv2d(se(y, p), s[p + "conv_pw.weight"]), p + "bn2")
        else:
            y = F.silu(bn(F.conv2d(v, s[p + "conv_pw.weight"]), p + "bn1"))
            y = F.silu(bn(same(y, s[p + "conv_dw.weight"], stride, cin * ex), p + "bn2"))
            y = bn(F.conv2d(se(y, p), s[p + "conv_pwl.weight"]), p + "bn3")
        v = v + y if stride == 1 and cin == cout else y
        feats.append(v)
        cin = cout
    head = F.conv2d(v, s[e + "conv_head.weight"])
    d = "decoder."

    def up(v, skip, n):
        v = torch.cat([F.interpolate(v, size=skip.shape[2:], mode="bilinear", align_corners=True), skip], 1)
        for c in (0, 3):
            v = F.leaky_relu(bn(F.conv2d(v, s[f"{n}._net.{c}.weight"], s[f"{n}._net.{c}.bias"], padding=1),
                                f"{n}._net.{c + 1}", 1e-5), 0.01)
        return v

    def norm(o):
        n = torch.sqrt(o[:, 0:1] ** 2.0 + o[:, 1:2] ** 2.0 + o[:, 2:3] ** 2.0) + 1e-10
        return torch.cat([o[:, :3] / n, F.elu(o[:, 3:]) + 1.0 + 0.01], 1)

    d1 = up(F.conv2d(head, s[d + "conv2.weight"], s[d + "conv2.bias"]), feats[4], d + "up1")
    d2 = up(d1, feats[2], d + "up2")
    d3 = up(d2, feats[1], d + "up3")
    d4 = up(d3, feats[0], d + "up4")
    out = norm(F.conv2d(d2, s[d + "out_conv_res8.weight"], s[d + "out_conv_res8.bias"], padding=1))
    for r, f in ((4, d2), (2, d3), (1, d4)):
        m = torch.cat([F.interpolate(f, scale_factor=2, mode="bilinear", align_corners=True),
                       F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)], 1)
        b, c, h, w = m.shape
        m = m.view(b, c, -1)
        for j in range(4):
            m = F.conv1d(m, s[f"{d}out_conv_res{r}.{2 * j}.weight"], s[f"{d}out_conv_res{r}.{2 * j}.bias"])
            m = F.relu(m) if j < 3 else m
        out = norm(m).view(b, 4, h, w)
    normal = ((out[0, :3] + 1) * 0.5).clip(0, 1).permute(1, 2, 0).numpy()
    return (normal * 255.0).clip(0, 255).astype(np.uint8)[:th, :tw]


def test_bae_normals_match_the_published_network_from_the_packs_folder(tmp_path, monkeypatch):
    """scannet.pt as the file holds it ({"model": {"module." keys}}), in comfyui_controlnet_aux's ckpts folder: a
    3-frame clip through normals.bae in chunks of 2, every pixel as the reference network gives it at the detect
    size (40x56 frames at resolution 48: 48x67, padded to 64x128); kinograph info names the node that reads it."""
    from graph_engine.context import Context
    from node_call import Nodes
    from nodes.lines.extract import describe
    from nodes.normals import nodes as normal_nodes
    annotators = tmp_path / "custom_nodes" / "comfyui_controlnet_aux" / "ckpts" / "lllyasviel" / "Annotators"
    annotators.mkdir(parents=True)
    (tmp_path / "models").mkdir()
    state = bae_state(torch.Generator().manual_seed(0))
    torch.save({"model": {"module." + k: v for k, v in state.items()}}, annotators / "scannet.pt")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    f = frames(3, 40, 56)
    clip = Clip(3, 24.0, 56, 40, lambda a, b: f[a:b], chunk=2)
    got = Nodes(normal_nodes).bae(Context("x"), clip, resolution=48).frames(0, 3)
    assert got.shape == (3, 48, 67, 3)
    for frame, mine in zip(f, got):
        want = reference_bae(state, frame, 48)
        assert (mine == want).all()
    assert got.std() > 5 and len(np.unique(got.reshape(-1, 3), axis=0)) > 100
    assert describe(annotators / "scannet.pt")["note"] == "Bae's normal network, read by normals.bae"
    cut = {k: v for k, v in state.items() if k != "decoder.up2._net.0.weight"}
    torch.save(cut, tmp_path / "cut.pt")
    with pytest.raises(NodeError, match=r"cut.pt does not fit Bae's normal network \(.*up2._net.0.weight.*\): the "
                                        r"file is damaged or another network's; normals.bae reads scannet.pt"):
        Nodes(normal_nodes).bae(Context("x"), clip, model=str(tmp_path / "cut.pt"))


def test_flat_depth_faces_the_camera_without_warnings():
    """A flat depth map (a wall, or a model's clipped output) has no range to spread: no background then, as in the
    pack, every pixel facing the camera; with a = 0 there is no direction at all: mid-grey, not NaN cast to bytes."""
    import warnings
    from nodes.normals.midas import normal_picture
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (normal_picture(np.full((8, 8), 2.0, np.float32), 3.0, 0.1) == [255, 127, 127]).all()
        assert (normal_picture(np.full((8, 8), 2.0, np.float32), 0.0, 0.1) == 127).all()
