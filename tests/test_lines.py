"""lines.* against comfyui_controlnet_aux's line preprocessors, with tiny random-weight networks saved under the
real files' key names (lllyasviel/Annotators' sk_model.pth and ControlNetHED.pth) in the folder comfyui_controlnet_aux
downloads them to. The expected pictures are computed here from the published steps (resize_image_with_pad, the
generator's and HED's layers in torch.nn.functional, safe_step, nms), not by Kinograph's functions."""
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from graph_engine.clip import Clip

H, W, RES = 40, 56, 48          # frames 40x56; short side 48: 48x67, padded to 64x128
LINE_W, HED_W = 2, (2, 3, 4, 4, 4)
HED_LAYERS = (2, 2, 3, 3, 3)


def lineart_state(g):
    """informative-drawings' Generator(3, 1, n_residual_blocks=1) with `LINE_W` stem channels, by key."""
    w, s = LINE_W, {}

    def conv(name, o, i, k, t=False):
        s[name + ".weight"] = torch.randn((i, o, k, k) if t else (o, i, k, k), generator=g) / math.sqrt(i * k * k)
        s[name + ".bias"] = torch.randn(o, generator=g) * 0.1
    conv("model0.1", w, 3, 7)
    conv("model1.0", 2 * w, w, 3)
    conv("model1.3", 4 * w, 2 * w, 3)
    conv("model2.0.conv_block.1", 4 * w, 4 * w, 3)
    conv("model2.0.conv_block.5", 4 * w, 4 * w, 3)
    conv("model3.0", 2 * w, 4 * w, 3, t=True)
    conv("model3.3", w, 2 * w, 3, t=True)
    conv("model4.1", 1, w, 7)
    return s


def hed_state(g):
    s = {"norm": torch.rand(1, 3, 1, 1, generator=g) * 128}
    cin = 3
    for b, (c, n) in enumerate(zip(HED_W, HED_LAYERS), 1):
        for i in range(n):
            s[f"block{b}.convs.{i}.weight"] = torch.randn(c, cin if i == 0 else c, 3, 3, generator=g) / math.sqrt(9 * c) / (30 if b == 1 and i == 0 else 1)
            s[f"block{b}.convs.{i}.bias"] = torch.randn(c, generator=g) * 0.1
        s[f"block{b}.projection.weight"] = torch.randn(1, c, 1, 1, generator=g) * 10
        s[f"block{b}.projection.bias"] = torch.randn(1, generator=g)
        cin = c
    return s


PIDI_W, PIDI_DIL = 2, 2


def pidinet_state(g):
    """table5_pidinet.pth's tensors (C = PIDI_W, dil = PIDI_DIL), as its file holds them: under `state_dict`, each
    key prefixed with DataParallel's `module.`."""
    s, c = {"init_block.weight": torch.randn(PIDI_W, 3, 3, 3, generator=g)}, PIDI_W
    widths = (c, 2 * c, 4 * c, 4 * c)
    prev = c
    for st, w in enumerate(widths, 1):
        for j in range(1, 5 if st > 1 else 4):
            if j == 1 and st > 1:
                s[f"block{st}_{j}.shortcut.weight"] = torch.randn(w, prev, 1, 1, generator=g) * 0.5
                s[f"block{st}_{j}.shortcut.bias"] = torch.randn(w, generator=g) * 0.1
            s[f"block{st}_{j}.conv1.weight"] = torch.randn(prev, 1, 3, 3, generator=g) * 0.5
            s[f"block{st}_{j}.conv2.weight"] = torch.randn(w, prev, 1, 1, generator=g) * 0.5
            prev = w
    for i, w in enumerate(widths):
        s[f"dilations.{i}.conv1.weight"] = torch.randn(PIDI_DIL, w, 1, 1, generator=g) * 0.5
        s[f"dilations.{i}.conv1.bias"] = torch.randn(PIDI_DIL, generator=g) * 0.1
        for k in range(1, 5):
            s[f"dilations.{i}.conv2_{k}.weight"] = torch.randn(PIDI_DIL, PIDI_DIL, 3, 3, generator=g) * 0.3
        s[f"attentions.{i}.conv1.weight"] = torch.randn(4, PIDI_DIL, 1, 1, generator=g)
        s[f"attentions.{i}.conv1.bias"] = torch.zeros(4)
        s[f"attentions.{i}.conv2.weight"] = torch.randn(1, 4, 3, 3, generator=g)
        s[f"conv_reduces.{i}.conv.weight"] = torch.randn(1, PIDI_DIL, 1, 1, generator=g)
        s[f"conv_reduces.{i}.conv.bias"] = torch.zeros(1)
    s["classifier.weight"] = torch.full((1, 4, 1, 1), 0.25)
    s["classifier.bias"] = torch.zeros(1)
    return s


ANIME_WIDTHS = (1, 2, 4, 8, 8, 8, 8, 8)        # netG.pth's 64 .. 512 over eight levels, at width 1


def anime_key(level, part):
    """Where pix2pix's unet_256 keeps level `level`'s down / up convolution (1 = outermost)."""
    seq = "model.model." if level == 1 else "model.model.1." + "model.3." * (level - 2) + "model."
    index = {"down": 0 if level == 1 else 1, "up": 3 if level in (1, 8) else 5}[part]
    return f"{seq}{index}"


def anime_state(g):
    s = {}
    for n, inner in enumerate(ANIME_WIDTHS, 1):
        outer, cin = (1, 3) if n == 1 else (ANIME_WIDTHS[n - 2],) * 2
        up_in = inner if n == 8 else 2 * inner
        s[anime_key(n, "down") + ".weight"] = torch.randn(inner, cin, 4, 4, generator=g) / math.sqrt(16 * cin)
        s[anime_key(n, "down") + ".bias"] = torch.randn(inner, generator=g) * 0.1
        s[anime_key(n, "up") + ".weight"] = torch.randn(up_in, outer, 4, 4, generator=g) / math.sqrt(4 * up_in)
        s[anime_key(n, "up") + ".bias"] = torch.randn(outer, generator=g) * 0.1
    return s


def reference_anime(s, frame):
    """lllyasviel's anime line art: the padded picture cubic-scaled to whole 256s, the U-Net, back by area."""
    img, th, tw = reference_pad(frame, cv2.INTER_CUBIC)
    hp, wp = img.shape[:2]
    big = cv2.resize(img, (256 * math.ceil(wp / 256), 256 * math.ceil(hp / 256)), interpolation=cv2.INTER_CUBIC)
    w = lambda n, part: (s[anime_key(n, part) + ".weight"], s[anime_key(n, part) + ".bias"])

    def level(x, n):
        if n == 1:
            h = level(F.conv2d(x, *w(1, "down"), stride=2, padding=1), 2)
            return torch.tanh(F.conv_transpose2d(F.relu(h), *w(1, "up"), stride=2, padding=1))
        h = F.conv2d(F.leaky_relu(x, 0.2), *w(n, "down"), stride=2, padding=1)
        if n < 8:
            h = level(F.instance_norm(h), n + 1)
        h = F.instance_norm(F.conv_transpose2d(F.relu(h), *w(n, "up"), stride=2, padding=1))
        return torch.cat([x, h], 1)
    x = torch.from_numpy(big).float().permute(2, 0, 1)[None] / 127.5 - 1
    line = (level(x, 1)[0, 0] * 127.5 + 127.5).numpy().clip(0, 255).astype(np.uint8)
    return 255 - cv2.resize(line, (wp, hp), interpolation=cv2.INTER_AREA)[:th, :tw]


MLSD_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))     # t, c, n, s


def mlsd_state(g):
    """mlsd_large_512_fp32.pth's tensors at their real shapes (the decoder's widths are fixed): MobileNetV2's
    features 0-13 and M-LSD's blocks 15-23, every batch norm with running statistics."""
    s = {}

    def conv(name, o, i, k, bias=False):
        s[name + ".weight"] = torch.randn(o, i, k, k, generator=g) * math.sqrt(2 / (i * k * k))
        if bias:
            s[name + ".bias"] = torch.randn(o, generator=g) * 0.1

    def bn(name, c):
        s[name + ".weight"] = 1 + 0.1 * torch.randn(c, generator=g)
        s[name + ".bias"] = 0.1 * torch.randn(c, generator=g)
        s[name + ".running_mean"] = 0.1 * torch.randn(c, generator=g)
        s[name + ".running_var"] = 1 + torch.rand(c, generator=g)
        s[name + ".num_batches_tracked"] = torch.tensor(1000)
    conv("backbone.features.0.0", 32, 4, 3)
    bn("backbone.features.0.1", 32)
    c, f = 32, 1
    for t, out, n, _ in MLSD_STAGES:
        for _ in range(n):
            p, hid, j = f"backbone.features.{f}.conv.", c * t, 0
            if t != 1:
                conv(p + "0.0", hid, c, 1)
                bn(p + "0.1", hid)
                j = 1
            conv(f"{p}{j}.0", hid, 1, 3)
            bn(f"{p}{j}.1", hid)
            conv(f"{p}{j + 1}", out, hid, 1)
            bn(f"{p}{j + 2}", out)
            c, f = out, f + 1
    for b, (fine, coarse) in zip((15, 17, 19, 21), ((64, 96), (32, 64), (24, 64), (16, 64))):
        conv(f"block{b}.conv1.0", 64, coarse, 1, bias=True)
        bn(f"block{b}.conv1.1", 64)
        conv(f"block{b}.conv2.0", 64, fine, 1, bias=True)
        bn(f"block{b}.conv2.1", 64)
        conv(f"block{b + 1}.conv1.0", 128, 128, 3, bias=True)
        bn(f"block{b + 1}.conv1.1", 128)
        conv(f"block{b + 1}.conv2.0", 64, 128, 3, bias=True)
        bn(f"block{b + 1}.conv2.1", 64)
    for name in ("conv1", "conv2"):
        conv(f"block23.{name}.0", 64, 64, 3, bias=True)
        bn(f"block23.{name}.1", 64)
    conv("block23.conv3", 16, 64, 1, bias=True)
    return s


def reference_mlsd_maps(s, x):
    """M-LSD large's forward in torch.nn.functional: the 9 maps it keeps."""
    def bn(h, name):
        return F.batch_norm(h, s[name + ".running_mean"], s[name + ".running_var"], s[name + ".weight"],
                            s[name + ".bias"], eps=1e-5)

    def tflite(h, name, stride, groups=1, k=3):        # conv, BN, ReLU6; stride 2 padded right and below only
        if stride == 2:
            h = F.pad(h, (0, 1, 0, 1))
        h = F.conv2d(h, s[name + ".0.weight"], stride=stride, padding=0 if stride == 2 else k // 2, groups=groups)
        return F.relu6(bn(h, name + ".1"))
    h, c, f, taps = tflite(x, "backbone.features.0", 2), 32, 1, []
    for t, out, n, st in MLSD_STAGES:
        for i in range(n):
            p, stride, y, j = f"backbone.features.{f}.conv.", st if i == 0 else 1, h, 0
            if t != 1:
                y, j = tflite(y, p + "0", 1, k=1), 1
            y = tflite(y, f"{p}{j}", stride, groups=c * t)
            y = bn(F.conv2d(y, s[f"{p}{j + 1}.weight"]), f"{p}{j + 2}")
            h = h + y if stride == 1 and c == out else y
            if f in (1, 3, 6, 10, 13):
                taps.append(h)
            c, f = out, f + 1
    cbr = lambda h, name, **kw: F.relu(bn(F.conv2d(h, s[name + ".0.weight"], s[name + ".0.bias"], **kw), name + ".1"))
    c1, c2, c3, c4, h = taps
    for b, fine in zip((15, 17, 19, 21), (c4, c3, c2, c1)):
        coarse = cbr(h, f"block{b}.conv1")
        if b > 15:
            coarse = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=True)
        h = torch.cat([cbr(fine, f"block{b}.conv2"), coarse], 1)
        h = cbr(cbr(h, f"block{b + 1}.conv1", padding=1) + h, f"block{b + 1}.conv2", padding=1)
    h = cbr(cbr(h, "block23.conv1", padding=5, dilation=5), "block23.conv2", padding=1)
    return F.conv2d(h, s["block23.conv3.weight"], s["block23.conv3.bias"])[0, 7:]


def reference_mlsd(maps, score, dist):
    """The lines M-LSD's maps of the padded frame give, drawn and cut to the detect size."""
    heat = 1 / (1 + np.exp(-maps[0]))
    padded_heat = np.pad(heat, 1, constant_values=-np.inf)
    local = np.max([padded_heat[dy:dy + heat.shape[0], dx:dx + heat.shape[1]] for dy in range(3) for dx in range(3)], 0)
    heat = np.where(heat == local, heat, 0)
    out = np.zeros((64, 128), np.uint8)
    for k in np.argsort(-heat, axis=None, kind="stable")[:200]:
        y, x = divmod(int(k), heat.shape[1])
        sx, sy, ex, ey = maps[1:5, y, x]
        if heat[y, x] > score and math.hypot(sx - ex, sy - ey) > dist:
            cv2.line(out, (int(2 * (x + sx)), int(2 * (y + sy))), (int(2 * (x + ex)), int(2 * (y + ey))), 255, 1)
    return out[:48, :67]


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """A ComfyUI folder holding the two files where comfyui_controlnet_aux downloads them, and a broken one."""
    root = tmp_path_factory.mktemp("ComfyUI")
    (root / "models" / "checkpoints").mkdir(parents=True)
    annotators = root / "custom_nodes" / "comfyui_controlnet_aux" / "ckpts" / "lllyasviel" / "Annotators"
    annotators.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    states = {"sk_model.pth": lineart_state(g), "ControlNetHED.pth": hed_state(g),
              "table5_pidinet.pth": pidinet_state(g), "netG.pth": anime_state(g),
              "mlsd_large_512_fp32.pth": mlsd_state(g)}
    for name, state in states.items():
        torch.save(state, annotators / name)
    torch.save({"module." + k: v for k, v in states["netG.pth"].items()}, annotators / "netG.pth")
    torch.save({"epoch": 14, "state_dict": {"module." + k: v for k, v in states["table5_pidinet.pth"].items()}},
               annotators / "table5_pidinet.pth")
    (annotators / "sk_model2.pth").write_bytes(b"PK\x03\x04 cut off")
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(root))
    yield root, states
    mp.undo()


def frames(n=3):
    rng = np.random.default_rng(1)
    f = rng.integers(0, 256, (n, H, W, 3)).astype(np.uint8)
    f[:, 10:30, 20:24] = 0          # a dark bar: strong lines for every preprocessor
    return cv2.GaussianBlur(f.reshape(n * H, W, 3), (0, 0), 1.0).reshape(n, H, W, 3)


def clip_of(f):
    return Clip(len(f), 24.0, W, H, lambda a, b: f[a:b], chunk=2)


def reference_pad(frame, upscale):
    """controlnet_aux's resize_image_with_pad: short side to RES (rounded), edge-padded to multiples of 64."""
    k = RES / min(H, W)
    th, tw = int(np.round(H * k)), int(np.round(W * k))
    img = cv2.resize(frame, (tw, th), interpolation=upscale)
    return np.pad(img, ((0, -th % 64), (0, -tw % 64), (0, 0)), mode="edge"), th, tw


def reference_lineart(s, frame):
    img, th, tw = reference_pad(frame, cv2.INTER_CUBIC)
    x = torch.from_numpy(img).float().permute(2, 0, 1)[None] / 255.0

    def conv(x, name, stride=1, pad=0, reflect=0):
        if reflect:
            x = F.pad(x, (reflect,) * 4, mode="reflect")
        return F.conv2d(x, s[name + ".weight"], s[name + ".bias"], stride=stride, padding=pad)

    def norm_relu(x, relu=True):
        x = F.instance_norm(x)
        return F.relu(x) if relu else x
    x = norm_relu(conv(x, "model0.1", reflect=3))
    x = norm_relu(conv(x, "model1.0", 2, 1))
    x = norm_relu(conv(x, "model1.3", 2, 1))
    x = x + norm_relu(conv(norm_relu(conv(x, "model2.0.conv_block.1", reflect=1)), "model2.0.conv_block.5", reflect=1),
                      relu=False)
    for name in ("model3.0", "model3.3"):
        x = norm_relu(F.conv_transpose2d(x, s[name + ".weight"], s[name + ".bias"], 2, 1, output_padding=1))
    line = torch.sigmoid(conv(x, "model4.1", reflect=3))[0, 0].numpy()
    line = (line * 255.0).clip(0, 255).astype(np.uint8)
    return 255 - line[:th, :tw]


def reference_nms(edge):
    """255 where the blurred map (sigma 3) is at least both neighbours along one of four directions and over 127."""
    x = cv2.GaussianBlur(edge.astype(np.float32), (0, 0), 3.0)
    p = np.pad(x, 1, constant_values=-np.inf)
    hgt, wid = x.shape
    at = lambda dy, dx: p[1 + dy:1 + dy + hgt, 1 + dx:1 + dx + wid]
    ridge = np.zeros(x.shape, bool)
    for (ay, ax), (by, bx) in (((0, -1), (0, 1)), ((-1, 0), (1, 0)), ((-1, -1), (1, 1)), ((-1, 1), (1, -1))):
        ridge |= (x >= at(ay, ax)) & (x >= at(by, bx))
    return np.where(ridge & (x > 127), 255, 0).astype(np.uint8)


def reference_hed(s, frame, safe, scribble):
    img, th, tw = reference_pad(frame, cv2.INTER_CUBIC)
    h = torch.from_numpy(img).float().permute(2, 0, 1)[None] - s["norm"]
    maps = []
    for b, n in enumerate(HED_LAYERS, 1):
        if b > 1:
            h = F.max_pool2d(h, 2)
        for i in range(n):
            h = F.relu(F.conv2d(h, s[f"block{b}.convs.{i}.weight"], s[f"block{b}.convs.{i}.bias"], padding=1))
        p = F.conv2d(h, s[f"block{b}.projection.weight"], s[f"block{b}.projection.bias"])[0, 0].numpy()
        maps.append(cv2.resize(p, img.shape[1::-1], interpolation=cv2.INTER_LINEAR))
    edge = 1 / (1 + np.exp(-np.stack(maps, 2).mean(2).astype(np.float64)))
    if safe:        # three levels: 0, 0.5, 1 (and 1.5 at exactly 1)
        edge = np.floor(edge.astype(np.float32) * 3) / 2
    edge = (edge * 255).clip(0, 255).astype(np.uint8)
    if scribble:
        blurred = cv2.GaussianBlur(reference_nms(edge), (0, 0), 3.0)
        edge = np.where(blurred > 4, 255, 0).astype(np.uint8)
    return edge[:th, :tw]


def difference_conv(x, w, kind, groups):
    """PiDiNet's pixel-difference convolutions as the paper writes them, on 3x3 (5x5 for radial) neighbourhoods:
    central sum_k w_k (x_k - x_centre); angular sum_k w_k (x_k - x_next) around the ring clockwise (the centre's
    weight on x_centre - x_centre); radial, weights 1..8 in raster order on (outer ring - inner ring) pixels."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    per = c // groups
    if kind == "rd":
        patches = F.unfold(x, 5, padding=2).reshape(n, c, 25, h * wd)
        outer, inner = [0, 2, 4, 10, 14, 20, 22, 24], [6, 7, 8, 11, 13, 16, 17, 18]
        diffs = patches[:, :, outer] - patches[:, :, inner]
        weights = w.reshape(o, per, 9)[:, :, 1:]
    else:
        patches = F.unfold(x, 3, padding=1).reshape(n, c, 9, h * wd)
        if kind == "cd":
            diffs = patches - patches[:, :, 4:5]
        elif kind == "ad":
            nxt = [1, 2, 5, 0, 4, 8, 3, 6, 7]       # 0->1->2->5->8->7->6->3->0 clockwise; the centre to itself
            diffs = patches - patches[:, :, nxt]
        else:
            diffs = patches
        weights = w.reshape(o, per, 9)
    taps = diffs.shape[2]
    y = torch.einsum("ngpkl,gopk->ngol", diffs.reshape(n, groups, per, taps, h * wd),
                     weights.reshape(groups, o // groups, per, taps))
    return y.reshape(n, o, h, wd)


def reference_pidinet(s, frame):
    """The fused edge probability of the padded frame."""
    img, _, _ = reference_pad(frame, cv2.INTER_CUBIC)
    x = torch.from_numpy(img[..., ::-1].copy()).float().permute(2, 0, 1)[None] / 255.0
    kinds = ["cd", "ad", "rd", "cv"] * 4
    x = difference_conv(x, s["init_block.weight"], "cd", 1)
    k, maps = 1, []
    for st in range(1, 5):
        for j in range(1, 5 if st > 1 else 4):
            b = f"block{st}_{j}."
            if j == 1 and st > 1:
                x = F.max_pool2d(x, 2)
            y = F.conv2d(F.relu(difference_conv(x, s[b + "conv1.weight"], kinds[k], x.shape[1])), s[b + "conv2.weight"])
            x = y + (F.conv2d(x, s[b + "shortcut.weight"], s[b + "shortcut.bias"]) if j == 1 and st > 1 else x)
            k += 1
        i = st - 1
        d = F.conv2d(F.relu(x), s[f"dilations.{i}.conv1.weight"], s[f"dilations.{i}.conv1.bias"])
        d = sum(F.conv2d(d, s[f"dilations.{i}.conv2_{q}.weight"], padding=r, dilation=r)
                for q, r in zip(range(1, 5), (5, 7, 9, 11)))
        a = F.conv2d(F.relu(d), s[f"attentions.{i}.conv1.weight"], s[f"attentions.{i}.conv1.bias"])
        d = d * torch.sigmoid(F.conv2d(a, s[f"attentions.{i}.conv2.weight"], padding=1))
        e = F.conv2d(d, s[f"conv_reduces.{i}.conv.weight"], s[f"conv_reduces.{i}.conv.bias"])
        maps.append(F.interpolate(e, img.shape[:2], mode="bilinear", align_corners=False))
    return torch.sigmoid(F.conv2d(torch.cat(maps, 1), s["classifier.weight"], s["classifier.bias"]))[0, 0].numpy()


def reference_pidinet_picture(edge, safe, scribble):
    th, tw = 48, 67
    if safe:
        edge = np.floor(edge * 3) / 2
    edge = (edge * 255).clip(0, 255).astype(np.uint8)
    if scribble:
        for cut in (False, True):
            blurred = cv2.GaussianBlur(reference_nms(edge), (0, 0), 3.0)
            edge = np.where(blurred > 4, 255, 0).astype(np.uint8)
            edge = edge[:th, :tw] if not cut else edge
        return edge
    return edge[:th, :tw]


def test_pidinet_matches_the_published_pixel_difference_network(comfy):
    """PiDiNet Soft-Edge Lines (safe and not) and Scribble PiDiNet Lines from a table5_pidinet.pth as published
    (wrapped in state_dict, DataParallel's module. keys): the picture the paper's difference convolutions give."""
    from nodes.lines.extract import load, pidinet_pictures
    _, states = comfy
    f = frames(1)
    net = load("table5_pidinet.pth", "pidinet")
    edge = reference_pidinet(states["table5_pidinet.pth"], f[0])
    for safe, scribble in ((True, False), (False, False), (False, True)):
        got = pidinet_pictures(net, f, RES, "cpu", safe, scribble)[0]
        want = reference_pidinet_picture(edge, safe, scribble)
        assert got.shape == (48, 67, 3) and (got == got[..., :1]).all()
        # the same sums in another order: a grey level one rounding apart on a pixel or two at most; with `safe`, a
        # pixel whose edge sits on a step's boundary (edge x 3 a whole number, to float precision) may land on
        # either side of it, a whole step (127 levels) apart, depending on the threads' summing order
        close = np.abs(got[..., 0].astype(int) - want) <= 1
        if safe:
            close |= (np.abs(edge * 3 - np.round(edge * 3)) < 1e-4)[:48, :67]
        assert close.all() and (got[..., 0] != want).mean() < 0.005
        assert len(np.unique(got)) > (1 if scribble else 2)


def test_lineart_and_hed_match_the_published_networks_and_steps(comfy):
    """Realistic Lineart, Anime Lineart (netG.pth with DataParallel's module. keys), HED (safe and not) and Fake Scribble of a 3-frame clip in chunks of 2, read from
    comfyui_controlnet_aux's ckpts folder: every pixel as the reference computes it, at the detect size 48x67."""
    from nodes.lines.extract import anime_pictures, hed_pictures, line_clip, lineart_pictures, load
    _, states = comfy
    f = frames()
    net = load("sk_model.pth", "lineart")
    out = line_clip(clip_of(f), RES, lambda b: lineart_pictures(net, b, RES, "cpu"), False).frames(0, 3)
    assert out.shape == (3, 48, 67, 3)
    want = np.stack([reference_lineart(states["sk_model.pth"], x) for x in f])
    assert (out[..., 0] == want).all()
    assert (out == out[..., :1]).all() and out.std() > 10
    anime = load("netG.pth", "anime")
    got = anime_pictures(anime, f[:1], RES, "cpu")[0]
    want = reference_anime(states["netG.pth"], f[0])
    assert got.shape == (48, 67, 3) and (got[..., 0] == want).all() and want.std() > 5
    hed = load("ControlNetHED.pth", "hed")
    for safe, scribble in ((True, False), (False, False), (True, True)):
        out = line_clip(clip_of(f), RES, lambda b: hed_pictures(hed, b, RES, "cpu", safe, scribble), False)
        got = out.frames(0, 3)[..., 0]
        want = np.stack([reference_hed(states["ControlNetHED.pth"], x, safe, scribble) for x in f])
        assert got.shape == want.shape == (3, 48, 67)
        assert (got == want).all(), (safe, scribble)
        assert len(np.unique(got)) > (1 if scribble else 2)
        if safe and not scribble:
            assert set(np.unique(got)) <= {0, 127, 255}


def test_mlsd_draws_the_lines_its_centres_and_offsets_give(comfy):
    """M-LSD Lines at two threshold pairs: the lines of the 200 strongest local maxima, filtered and drawn as the
    reference decodes them from the published network's maps."""
    from nodes.lines.extract import load, mlsd_pictures
    _, states = comfy
    f = frames(1)
    net = load("mlsd_large_512_fp32.pth", "mlsd")
    img, _, _ = reference_pad(f[0], cv2.INTER_AREA)
    x = np.concatenate([img, np.ones(img.shape[:2] + (1,))], -1).astype(np.float32) / 127.5 - 1
    maps = reference_mlsd_maps(states["mlsd_large_512_fp32.pth"], torch.from_numpy(x).permute(2, 0, 1)[None]).numpy()
    drawn = []
    for score, dist in ((0.1, 0.1), (0.6, 2.0)):
        got = mlsd_pictures(net, f, RES, "cpu", score, dist)[0]
        want = reference_mlsd(maps, score, dist)
        assert got.shape == (48, 67, 3) and (got[..., 0] == want).all(), (score, dist)
        drawn.append((want > 0).sum())
    assert drawn[0] > drawn[1] > 0


def test_model_free_scribbles_match_their_rules():
    """Scribble Lines: black where the darkest channel is under 127. XDoG: its 8-bit doubling wraps, as
    controlnet_aux's does, so some dark thin strokes come out blank."""
    from nodes.lines.extract import scribble_picture, xdog_picture
    f = frames(1)[0]
    out = scribble_picture(f, H)            # the short side already: no resize
    assert out.shape == (H, W, 3) and (out[..., 0] == np.where(f.min(axis=2) < 127, 0, 255)).all()
    strokes = np.full((H, W, 3), 255, np.uint8)
    for i, x in enumerate(range(2, W - 2, 3)):
        strokes[5:35, x] = 255 - 13 * i            # thin strokes of every darkness
    img, th, tw = reference_pad(strokes, cv2.INTER_CUBIC)
    f32 = img.astype(np.float32)
    dog = (255 - np.min(cv2.GaussianBlur(f32, (0, 0), 5.0) - cv2.GaussianBlur(f32, (0, 0), 0.5), axis=2))
    diff = 255 - dog.clip(0, 255).astype(np.uint8)
    for threshold in (32, 8):
        twice = (diff.astype(np.uint16) * 2).astype(np.uint8)      # uint8 arithmetic, wrapping
        want = np.where(twice > threshold, 255, 0)[:th, :tw]
        got = xdog_picture(strokes, RES, threshold)
        assert got.shape == (48, 67, 3) and (got[..., 0] == want).all()
        assert ((diff.astype(int) * 2 > threshold)[:th, :tw] != (want > 0)).any()      # the wrap shows


def test_standard_lineart_is_darkness_against_the_blur_scaled_by_its_median():
    """Standard Lineart of a grey bar on white: 127 x (blur - pixel) / the median of the darkness above the
    threshold, computed here per pixel on the padded picture; a flat frame (nothing above it) is scaled by 16."""
    from nodes.lines.extract import standard_picture
    f = np.full((H, W, 3), 230, np.uint8)
    f[12:28, 20:26] = (60, 90, 120)
    img, th, tw = reference_pad(f, cv2.INTER_CUBIC)
    x = img.astype(np.float32)
    dark = (cv2.GaussianBlur(x, (0, 0), 6.0) - x).min(axis=2).clip(0, 255)
    level = max(16.0, float(np.median(dark[dark > 8])))
    want = (dark / level * 127).clip(0, 255).astype(np.uint8)[:th, :tw]
    got = standard_picture(f, RES)
    assert level > 16 and got.shape == (48, 67, 3) and (got[..., 0] == want).all() and want.max() > 127
    flat = standard_picture(np.full((H, W, 3), 200, np.uint8), RES)
    assert (flat == 0).all()


def test_missing_wrong_and_broken_files_are_named(comfy, monkeypatch, tmp_path):
    from nodes.lines.extract import load
    root, states = comfy
    with pytest.raises(NodeError) as e:
        load("ControlNetHED.pth", "lineart")
    assert "ControlNetHED.pth is not the line-art generator's weights" in str(e.value)
    assert "sk_model.pth (realistic) or sk_model2.pth (coarse) from Hugging Face lllyasviel/Annotators" in str(e.value)
    with pytest.raises(NodeError, match=r"sk_model2.pth is not a readable checkpoint .*truncated or corrupt"):
        load("sk_model2.pth", "lineart")
    torch.save({k: v[:1] for k, v in states["sk_model.pth"].items()}, tmp_path / "cut.pth")
    with pytest.raises(NodeError, match=r"cut.pth does not fit the line-art generator \(.*size mismatch"):
        load(str(tmp_path / "cut.pth"), "lineart")
    with pytest.raises(NodeError) as e:
        load("sk_model3.pth", "lineart")
    text = str(e.value)
    assert "annotators model 'sk_model3.pth' not found" in text and "custom_nodes/comfyui_controlnet_aux/ckpts/" \
        "lllyasviel/Annotators/ in your ComfyUI folder" in text
    # the folder comfyui_controlnet_aux's AUX_ANNOTATOR_CKPTS_PATH names, outside any ComfyUI folder
    aux = tmp_path / "aux" / "lllyasviel" / "Annotators"
    aux.mkdir(parents=True)
    torch.save(states["sk_model.pth"], aux / "sk_model_copy.pth")
    monkeypatch.setenv("AUX_ANNOTATOR_CKPTS_PATH", str(tmp_path / "aux"))
    assert load("sk_model_copy.pth", "lineart") is not None


def test_kinograph_info_lists_the_annotators_as_line_models(comfy):
    """comfyui_controlnet_aux's ckpts/ is searched for pose models too: its Annotators files were listed as DWPose
    estimators that load. Each is listed as the line node that reads it, a damaged one as not loading."""
    from pathlib import Path
    from nodes.generate.model_manager import list_found_models
    rows = {Path(p).name: (kind, d["family"], d["variant"], d["loads"]) for kind, p, d in list_found_models()}
    assert rows["sk_model.pth"] == ("annotators", "annotator", "lineart", "yes")
    assert rows["ControlNetHED.pth"][2:] == ("hed", "yes") and rows["netG.pth"][2:] == ("anime", "yes")
    assert rows["table5_pidinet.pth"][2:] == ("pidinet", "yes")
    assert rows["mlsd_large_512_fp32.pth"][2:] == ("mlsd", "yes")
    assert rows["sk_model2.pth"] == ("annotators", "annotator", "", "no")


def preprocessor_graph(pre, picture="drawing.png"):
    """An editor-format graph: LoadImage feeding each (class_type, widgets_values) preprocessor, each previewed."""
    nodes = [{"id": 1, "type": "LoadImage", "inputs": [], "widgets_values": [picture, "image"],
              "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": list(range(1, len(pre) + 1))},
                          {"name": "MASK", "type": "MASK", "links": []}]}]
    links = []
    for i, (t, w) in enumerate(pre, 1):
        nodes.append({"id": 20 + i, "type": t, "widgets_values": w,
                      "inputs": [{"name": "image", "type": "IMAGE", "link": i}],
                      "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [20 + i]}]})
        nodes.append({"id": 40 + i, "type": "PreviewImage", "widgets_values": [],
                      "inputs": [{"name": "images", "type": "IMAGE", "link": 20 + i}], "outputs": []})
        links += [[i, 1, 0, 20 + i, 0, "IMAGE"], [20 + i, 20 + i, 0, 40 + i, 0, "IMAGE"]]
    return {"last_node_id": 60, "last_link_id": 40, "nodes": nodes, "links": links, "version": 0.4}


def test_ui_workflow_with_the_line_preprocessors_imports_and_validates():
    """A ControlNet graph's preprocessors, as ComfyUI's editor saves them (widgets by position): each becomes its
    lines.* node with its settings; none is a placeholder."""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    pre = [("M-LSDPreprocessor", [0.2, 5.0, 640]), ("AnimeLineArtPreprocessor", [1024]), ("LineArtPreprocessor", ["enable", 768]), ("LineArtPreprocessor", ["disable", 512]),
           ("HEDPreprocessor", ["disable", 640]), ("FakeScribblePreprocessor", ["enable", 512]),
           ("ScribblePreprocessor", [1024]), ("Scribble_XDoG_Preprocessor", [20, 512]),
           ("PiDiNetPreprocessor", ["enable", 512]), ("Scribble_PiDiNet_Preprocessor", ["disable", 768]),
           ("LineartStandardPreprocessor", [4.5, 10, 640])]
    res = import_data(preprocessor_graph(pre))
    assert not res.report.blocking
    got = sorted((n.type, tuple(sorted(n.params.items()))) for n in res.graph.nodes.values()
                 if n.type.startswith("lines."))
    assert got == sorted([
        ("lines.mlsd", (("distance", 5.0), ("resolution", 640), ("score", 0.2))),
        ("lines.anime", (("resolution", 1024),)),
        ("lines.lineart", (("model", "sk_model2.pth"), ("resolution", 768))),
        ("lines.lineart", (("model", "sk_model.pth"), ("resolution", 512))),
        ("lines.hed", (("resolution", 640), ("safe", False))),
        ("lines.hed", (("resolution", 512), ("safe", True), ("scribble", True))),
        ("lines.scribble", (("resolution", 1024),)),
        ("lines.xdog", (("resolution", 512), ("threshold", 20))),
        ("lines.pidinet", (("resolution", 512), ("safe", True))),
        ("lines.pidinet", (("resolution", 768), ("safe", False), ("scribble", True))),
        ("lines.standard", (("resolution", 640), ("sigma", 4.5), ("threshold", 10)))])
    load_workflow(text=res.yaml)


def test_a_resolution_past_the_largest_picture_is_refused_before_a_frame_is_read():
    """lines' clips took their size unchecked: a resolution that makes a side past 16384 declared a clip that size,
    refused only when a frame was made (mid-render, after the model had loaded). Now at the node, as control.*'s."""
    from graph_engine.context import Context
    from node_call import Nodes
    from nodes.lines import nodes as line_nodes

    def unread(a, b):
        raise AssertionError("a frame was read")
    with pytest.raises(NodeError, match="over 16384 a side: .* use 9830 or less"):
        Nodes(line_nodes).xdog_lines(Context("x"), Clip(2, 24.0, 80, 48, unread), resolution=9840)


# erika.pth's layout a few channels wide: (stage, input width, output width, blocks)
MANGA = (("block0", 1, 2, 1), ("block1", 2, 3, 2), ("block2", 3, 4, 1), ("block3", 4, 5, 1), ("block4", 5, 6, 1),
         ("block5", 6, 5, 2), ("block6", 5, 4, 1), ("block7", 4, 3, 1), ("block8", 3, 2, 1), ("block9", 2, 3, 1))


def manga_state(g):
    s = {}

    def unit(p, cin, cout, k=3):
        s[p + ".model.0.weight"] = torch.rand(cin, generator=g) + 0.5
        s[p + ".model.0.bias"] = torch.randn(cin, generator=g) * 0.1
        s[p + ".model.0.running_mean"] = torch.randn(cin, generator=g) * 0.1
        s[p + ".model.0.running_var"] = torch.rand(cin, generator=g) + 0.5
        s[p + ".model.2.weight"] = torch.randn(cout, cin, k, k, generator=g) / math.sqrt(cin * k * k)
        s[p + ".model.2.bias"] = torch.randn(cout, generator=g) * 0.1
    for name, cin, cout, n in MANGA:
        for i in range(n):
            a = cin if i == 0 else cout
            p = f"{name}.model.{i}."
            unit(p + "conv1", a, cout)
            unit(p + "residual", cout, cout)
            halves = name in ("block1", "block2", "block3", "block4") and i == n - 1
            if a != cout or halves:
                s[p + "shortcut.model.0.weight"] = torch.randn(cout, a, 1, 1, generator=g)
                s[p + "shortcut.model.0.bias"] = torch.randn(cout, generator=g) * 0.1
    unit("conv15", 3, 1, 1)
    # the grey picture comes in 0..255; the line darkness goes out clipped to 0..255: both ends in range
    s["block0.model.0.conv1.model.0.running_mean"].fill_(128.0)
    s["block0.model.0.conv1.model.0.running_var"].fill_(4096.0)
    s["conv15.model.2.weight"] *= 0.2
    s["conv15.model.2.bias"].fill_(-200.0)
    return s


def reference_manga(s, frame, resolution):
    """LineartMangaDetector: the short side to `resolution` rounded up to 256s, padded, grey, res_skip, cut."""
    size, (h, w) = 256 * math.ceil(resolution / 256), frame.shape[:2]
    k = size / min(h, w)
    th, tw = int(np.round(h * k)), int(np.round(w * k))
    img = cv2.resize(frame, (tw, th), interpolation=cv2.INTER_CUBIC)
    img = np.pad(img, ((0, -th % 64), (0, -tw % 64), (0, 0)), mode="edge")
    x = torch.from_numpy(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)).float()[None, None]

    def unit(x, p, stride=1, up=False):
        x = F.batch_norm(x, s[p + ".model.0.running_mean"], s[p + ".model.0.running_var"], s[p + ".model.0.weight"],
                         s[p + ".model.0.bias"], False, 0.0, 1e-3)
        w = s[p + ".model.2.weight"]
        x = F.conv2d(F.leaky_relu(x, 0.2), w, s[p + ".model.2.bias"], stride, w.shape[-1] // 2)
        return F.interpolate(x, scale_factor=2, mode="nearest") if up else x

    def stage(x, name, n):
        for i in range(n):
            p = f"{name}.model.{i}."
            stride = 2 if name in ("block1", "block2", "block3", "block4") and i == n - 1 else 1
            up = name in ("block5", "block6", "block7", "block8") and i == 0
            y = unit(unit(x, p + "conv1", stride, up), p + "residual")
            if p + "shortcut.model.0.weight" in s:
                x = F.conv2d(x, s[p + "shortcut.model.0.weight"], s[p + "shortcut.model.0.bias"], stride)
                x = F.interpolate(x, scale_factor=2, mode="nearest") if up else x
            x = x + y
        return x
    n = {name: reps for name, _, _, reps in MANGA}
    x0 = stage(x, "block0", n["block0"])
    x1 = stage(x0, "block1", n["block1"])
    x2 = stage(x1, "block2", n["block2"])
    x3 = stage(x2, "block3", n["block3"])
    x4 = stage(x3, "block4", n["block4"])
    r = x3 + stage(x4, "block5", n["block5"])
    r = x2 + stage(r, "block6", n["block6"])
    r = x1 + stage(r, "block7", n["block7"])
    r = x0 + stage(r, "block8", n["block8"])
    line = unit(stage(r, "block9", n["block9"]), "conv15")[0, 0].numpy()
    line[line > 255] = 255
    line[line < 0] = 0
    return (255 - line.astype(np.uint8))[:th, :tw]


def test_manga_lines_match_the_published_network(tmp_path, monkeypatch):
    """Manga Lineart (erika.pth with DataParallel's module. keys, in comfyui_controlnet_aux's ckpts folder) on a
    2-frame 40x32 clip: at resolution 48 the pack works at 256 (whole 256s), 256x320, every pixel as the
    reference gives it; the import maps Manga2Anime_LineArt_Preprocessor to it."""
    from app.comfyui import import_data
    from graph_engine.context import Context
    from node_call import Nodes
    from nodes.lines import nodes as line_nodes
    from nodes.lines.extract import describe
    annotators = tmp_path / "custom_nodes" / "comfyui_controlnet_aux" / "ckpts" / "lllyasviel" / "Annotators"
    annotators.mkdir(parents=True)
    (tmp_path / "models").mkdir()
    state = manga_state(torch.Generator().manual_seed(0))
    torch.save({"module." + k: v for k, v in state.items()}, annotators / "erika.pth")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    f = np.ascontiguousarray(frames(2)[:, :32, :40])
    got = Nodes(line_nodes).manga_lineart(Context("x"), Clip(2, 24.0, 40, 32, lambda a, b: f[a:b], chunk=2),
                                          resolution=RES).frames(0, 2)
    assert got.shape == (2, 256, 320, 3) and (got == got[..., :1]).all()
    for frame, mine in zip(f, got):
        want = reference_manga(state, frame, RES)
        assert (mine[..., 0] == want).all()
        assert 0 < (want == 0).mean() < 0.9 and len(np.unique(want)) > 20
    assert describe(annotators / "erika.pth")["note"] == "the manga line extractor, read by lines.manga"
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "page.png"}},
           "2": {"class_type": "Manga2Anime_LineArt_Preprocessor", "inputs": {"image": ["1", 0], "resolution": 768}},
           "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    assert [n.params for n in import_data(api).graph.nodes.values() if n.type == "lines.manga"] == [
        {"resolution": 768}]
