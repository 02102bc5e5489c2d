"""Line pictures of every frame, as comfyui_controlnet_aux's preprocessors make them: each frame sized to the detect
resolution and padded to whole 64s as they do, the network (or the model-free rule) run on the padded picture, the
result cut back to the detect size. A lazy Clip: each chunk's frames go through the network a few at a time.

Model files are lllyasviel/Annotators' on Hugging Face, where comfyui_controlnet_aux keeps them
(custom_nodes/comfyui_controlnet_aux/ckpts/lllyasviel/Annotators/, or the folder AUX_ANNOTATOR_CKPTS_PATH names),
or an 'annotators' model folder."""
from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from graph_engine import NodeError

from nodes.preprocess.pictures import detect_sized as padded

from .picture import rgb, safe_step, scribble

REPOSITORY = "lllyasviel/Annotators"
WHERE = ("custom_nodes/comfyui_controlnet_aux/ckpts/lllyasviel/Annotators/ in your ComfyUI folder (or the folder "
         "AUX_ANNOTATOR_CKPTS_PATH names), or an 'annotators' model folder")
# what each network is, the file it comes in, and a key only that network's files hold
NETS = {"lineart": ("the line-art generator", "sk_model.pth (realistic) or sk_model2.pth (coarse)", "model0.1.weight"),
        "hed": ("HED", "ControlNetHED.pth", "block1.projection.weight"),
        "pidinet": ("PiDiNet", "table5_pidinet.pth", "init_block.weight"),
        "anime": ("the anime line-art U-Net", "netG.pth", "model.model.0.weight"),
        "mlsd": ("M-LSD", "mlsd_large_512_fp32.pth", "block23.conv3.weight"),
        "bae": ("Bae's normal network", "scannet.pt", "decoder.out_conv_res1.0.weight"),
        "manga": ("the manga line extractor", "erika.pth", "conv15.model.2.weight")}
# the node that reads each network's file, where it is not lines.<kind>
NODES = {"bae": "normals.bae"}
BATCH = 4           # frames through a network at once: a 512x896 HED stage is 0.1 GB a frame


def _net_class(kind: str):
    if kind == "bae":
        from nodes.normals.bae import BaeNormals
        return BaeNormals
    if kind == "manga":
        from .manga import MangaLine
        return MangaLine
    from .nets import HED, MLSD, AnimeUNet, LineGenerator, PiDiNet
    return {"lineart": LineGenerator, "hed": HED, "pidinet": PiDiNet, "anime": AnimeUNet, "mlsd": MLSD}[kind]


def find(name: str, kind: str) -> Path:
    from nodes.common.models_dirs import find_model
    try:
        return find_model(name, "annotators")
    except NodeError as e:
        raise NodeError(f"{e}\n{NETS[kind][1]} is {NETS[kind][0]} from Hugging Face {REPOSITORY}: put it in {WHERE}") \
            from None


@functools.lru_cache(maxsize=4)
def _load(path: str, stamp: tuple, kind: str, device: str):
    from nodes.generate.config_bound import refuse_built_beyond
    from nodes.generate.weights import load_weights
    what, file, key = NETS[kind]
    reader = NODES.get(kind, "lines." + kind)
    # table5_pidinet.pth, netG.pth, scannet.pt and erika.pth were saved from a DataParallel wrapper: their keys start with
    # module.
    state = {k[7:] if k.startswith("module.") else k: v for k, v in load_weights(path).items()}
    if key not in state:
        raise NodeError(f"{path} is not {what}'s weights (it has no {key}): {reader} reads {file} from "
                        f"Hugging Face {REPOSITORY}; put it in {WHERE}")
    # the network's widths and depth are read from the file's shapes and key names
    refuse_built_beyond(lambda: _net_class(kind).shaped_for(state), state, path,
                        f"its tensor names and shapes make {what}", f"Hugging Face {REPOSITORY} ({file})")
    try:
        net = _net_class(kind).shaped_for(state)
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except (RuntimeError, KeyError, ValueError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        why = (lines[1:] or lines or [type(e).__name__])[0][:200]      # torch's first line only says "Error(s)"
        raise NodeError(f"{path} does not fit {what} ({why}): the file is damaged or another network's; "
                        f"{reader} reads {file} from Hugging Face {REPOSITORY}") from None
    return net.eval().to(device)


def describe(path: Path) -> dict:
    """`kinograph info`'s row for a file in an annotators folder (or comfyui_controlnet_aux's ckpts/): which line
    node reads it, by the keys its header lists, or that none does (the pack's other preprocessors' files)."""
    from nodes.generate.detect import read_header
    row = {"family": "annotator", "variant": "", "role": "", "precision": "", "loads": "no", "note": ""}
    try:
        keys = {k[7:] if k.startswith("module.") else k for k in read_header(path).shapes}
    except (NodeError, OSError, RuntimeError, ValueError) as e:
        row["note"] = str(e).splitlines()[0][:200]
        return row
    kind = next((k for k, (_, _, key) in NETS.items() if key in keys), None)
    if kind is None:
        row["note"] = "no line node reads it (another comfyui_controlnet_aux preprocessor's file)"
    else:
        row.update(variant=kind, loads="yes", note=f"{NETS[kind][0]}, read by {NODES.get(kind, 'lines.' + kind)}")
    return row


def load(name: str, kind: str, device: str = "cpu"):
    path = find(name, kind)
    st = path.stat()
    return _load(str(path), (st.st_mtime_ns, st.st_size), kind, device)


def lineart_pictures(net, frames: np.ndarray, resolution: int, device: str) -> np.ndarray:
    """Black lines on white, uint8 [n,h,w,3] at the detect size."""
    import torch
    batch, (th, tw) = _padded(frames, resolution, cv2.INTER_CUBIC)
    with torch.inference_mode():
        x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float() / 255.0
        line = net(x)[:, 0].float().cpu().numpy()
    line = (line * 255.0).clip(0, 255).astype(np.uint8)
    return rgb(255 - line[:, :th, :tw])


def anime_pictures(net, frames: np.ndarray, resolution: int, device: str) -> np.ndarray:
    """Black anime line art on white, uint8 [n,h,w,3] at the detect size: the padded picture scaled (cubic) up to
    whole 256s for the U-Net, its lines scaled back by area."""
    import torch
    batch, (th, tw) = _padded(frames, resolution, cv2.INTER_CUBIC)
    hp, wp = batch.shape[1:3]
    hn, wn = -(-hp // 256) * 256, -(-wp // 256) * 256
    big = np.stack([cv2.resize(f, (wn, hn), interpolation=cv2.INTER_CUBIC) for f in batch])
    with torch.inference_mode():
        x = torch.from_numpy(big).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        line = (net(x)[:, 0] * 127.5 + 127.5).float().cpu().numpy()
    line = line.clip(0, 255).astype(np.uint8)
    back = np.stack([cv2.resize(f, (wp, hp), interpolation=cv2.INTER_AREA) for f in line])
    return rgb(255 - back[:, :th, :tw])


MLSD_CANDIDATES = 200      # line centres M-LSD considers, the strongest first


def mlsd_pictures(net, frames: np.ndarray, resolution: int, device: str, score: float = 0.1,
                  distance: float = 0.1) -> np.ndarray:
    """White straight lines on black (M-LSD Lines), uint8 [n,h,w,3] at the detect size: the 200 strongest line
    centres (each the largest of its 3x3 neighbours), those scoring above `score` with ends more than `distance`
    apart drawn one pixel wide, their ends at twice the half-size map's position plus offset, truncated."""
    import torch
    batch, (th, tw) = _padded(frames, resolution, cv2.INTER_AREA)
    x = np.concatenate([batch.astype(np.float32), np.ones(batch.shape[:3] + (1,), np.float32)], axis=-1)
    with torch.inference_mode():
        maps = net(torch.from_numpy(x / 127.5 - 1.0).to(device).permute(0, 3, 1, 2).float())
        heat = torch.sigmoid(maps[:, 0:1])
        heat = heat * (nn_max3(heat) == heat)
        scores, where = torch.topk(heat.flatten(1), MLSD_CANDIDATES, dim=1)     # the map is 32x32 at least
        offsets = maps[:, 1:5].float().cpu().numpy()
    scores, where = scores.float().cpu().numpy(), where.cpu().numpy()
    out = np.zeros(batch.shape[:3], np.uint8)
    w = maps.shape[3]
    for i in range(len(batch)):
        ys, xs = where[i] // w, where[i] % w
        d = offsets[i][:, ys, xs]                           # [4, top]: start x, y, end x, y offsets
        keep = (scores[i] > score) & (np.hypot(d[0] - d[2], d[1] - d[3]) > distance)
        for y, x, (x0, y0, x1, y1) in zip(ys[keep], xs[keep], d[:, keep].T):
            ends = [int(2 * (x + x0)), int(2 * (y + y0)), int(2 * (x + x1)), int(2 * (y + y1))]
            cv2.line(out[i], tuple(ends[:2]), tuple(ends[2:]), 255, 1)
    return rgb(out[:, :th, :tw])


def manga_pictures(net, frames: np.ndarray, resolution: int, device: str) -> np.ndarray:
    """White manga lines on black (Manga Lineart), uint8 [n,h,w,3] at the detect size of `resolution` rounded up to
    whole 256s, as the pack sizes it: the network reads the padded picture's grey in 0..255, its output clipped to
    0..255 and truncated to bytes."""
    import torch
    batch, (th, tw) = _padded(frames, manga_resolution(resolution), cv2.INTER_CUBIC)
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in batch])
    with torch.inference_mode():
        line = net(torch.from_numpy(grey).to(device)[:, None].float())[:, 0].float().cpu().numpy()
    return rgb(255 - line.clip(0, 255).astype(np.uint8)[:, :th, :tw])


def manga_resolution(resolution: int) -> int:
    return 256 * -(-resolution // 256)


def nn_max3(x):
    import torch.nn.functional as F
    return F.max_pool2d(x, 3, stride=1, padding=1)


def hed_pictures(net, frames: np.ndarray, resolution: int, device: str, safe: bool = True,
                 fake_scribble: bool = False) -> np.ndarray:
    """White soft edges on black (or, fake_scribble, thick white scribbles), uint8 [n,h,w,3] at the detect size:
    the mean of the five stages' edge logits, each scaled bilinearly to the padded size, through a sigmoid."""
    import torch
    batch, (th, tw) = _padded(frames, resolution, cv2.INTER_CUBIC)
    hp, wp = batch.shape[1:3]
    with torch.inference_mode():
        stages = [p[:, 0].float().cpu().numpy() for p in net(torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float())]
    out = []
    for i in range(len(batch)):
        logits = np.stack([cv2.resize(s[i], (wp, hp), interpolation=cv2.INTER_LINEAR) for s in stages], axis=2)
        edge = 1 / (1 + np.exp(-np.mean(logits, axis=2).astype(np.float64)))
        if safe:
            edge = safe_step(edge)
        edge = (edge * 255.0).clip(0, 255).astype(np.uint8)
        if fake_scribble:
            edge = scribble(edge)
        out.append(edge[:th, :tw])
    return rgb(np.stack(out))


def pidinet_pictures(net, frames: np.ndarray, resolution: int, device: str, safe: bool = True,
                     scribble_lines: bool = False) -> np.ndarray:
    """White soft edges on black (PiDiNet Soft-Edge Lines), uint8 [n,h,w,3] at the detect size; scribble_lines:
    as Scribble PiDiNet Lines makes them, the fake-scribble pass run on the padded picture and again on the cut
    one."""
    import torch
    batch, (th, tw) = _padded(frames, resolution, cv2.INTER_CUBIC)
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(batch[..., ::-1])).to(device).permute(0, 3, 1, 2).float() / 255.0
        edges = net(x)[:, 0].float().cpu().numpy()
    out = []
    for edge in edges:
        if safe:
            edge = safe_step(edge)
        edge = (edge * 255.0).clip(0, 255).astype(np.uint8)
        out.append(scribble(scribble(edge)[:th, :tw]) if scribble_lines else edge[:th, :tw])
    return rgb(np.stack(out))


def standard_picture(frame: np.ndarray, resolution: int, sigma: float = 6.0, threshold: int = 8) -> np.ndarray:
    """controlnet_aux's Standard Lineart: how much darker each pixel is than its blurred surroundings (the least of
    the three channels), scaled so the median of the pixels above `threshold` is 127 (at least 16 is the median),
    white lines on black."""
    img, (th, tw) = padded(frame, resolution, cv2.INTER_CUBIC)
    x = img.astype(np.float32)
    dark = np.min(cv2.GaussianBlur(x, (0, 0), sigma) - x, axis=2).clip(0, 255)
    above = dark[dark > threshold]
    dark /= max(16.0, float(np.median(above))) if above.size else 16.0
    return rgb((dark * 127).clip(0, 255).astype(np.uint8)[:th, :tw])


def scribble_picture(frame: np.ndarray, resolution: int) -> np.ndarray:
    """controlnet_aux's Scribble Lines: black where the darkest channel is under 127 (a drawing's strokes), white
    elsewhere."""
    img, (th, tw) = padded(frame, resolution, cv2.INTER_AREA)
    return rgb(np.where(img[:th, :tw].min(axis=2) < 127, 0, 255).astype(np.uint8))


def xdog_picture(frame: np.ndarray, resolution: int, threshold: int = 32) -> np.ndarray:
    """controlnet_aux's Scribble XDoG Lines: white where twice the difference of a fine (sigma 0.5) and a wide
    (sigma 5) blur, its most negative channel, passes `threshold`; the blurs see the padded picture, as there."""
    img, (th, tw) = padded(frame, resolution, cv2.INTER_CUBIC)
    f = img.astype(np.float32)
    dog = (255 - np.min(cv2.GaussianBlur(f, (0, 0), 5.0) - cv2.GaussianBlur(f, (0, 0), 0.5), axis=2))
    dog = dog.clip(0, 255).astype(np.uint8)
    # controlnet_aux doubles in 8 bits, so a difference of 128 or more wraps round: the darkest thin strokes
    # (128 + threshold / 2 and a little under) come out blank there, and do here, as the ControlNet was fed
    lines = (2 * (255 - dog.astype(np.int64))) % 256 > threshold
    return rgb(np.where(lines[:th, :tw], 255, 0).astype(np.uint8))


def _padded(frames: np.ndarray, resolution: int, upscale):
    pics = [padded(f, resolution, upscale) for f in frames]
    return np.stack([p for p, _ in pics]), pics[0][1]


def line_clip(video, resolution: int, pictures: Callable[[np.ndarray], np.ndarray], per_frame: bool, ctx=None):
    """A lazy Clip of `pictures` over video's frames (a batch of frames at once, or one, `per_frame`), at the
    detect size: one too large is refused here, before a frame is read, as control.*'s are. It is made as far as
    read (the editor's viewer showing frame k made only frame k, or its batch, not the chunk around it)."""
    from nodes.common.stream import Progress
    from nodes.preprocess.pictures import picture_size
    th, tw = picture_size(video.height, video.width, resolution)
    progress = Progress(ctx, video.length)
    # A network's batch is always frames BATCH * j on, whichever of them is read: a frame's picture is then the
    # same however it is asked for (a batch of another size may add up in another order), and the batch last made
    # is kept for the frames after it that the viewer steps to.
    last: list = [None, None]
    lock = threading.Lock()

    def batch(s: int) -> np.ndarray:
        with lock:
            if last[0] == s:
                return last[1]
            if ctx is not None:
                ctx.check()
            e = min(video.length, s + BATCH)
            last[:] = s, pictures(video.frames(s, e))
            progress.add(e - s)
            return last[1]

    def reader(a: int, b: int) -> np.ndarray:
        out = np.empty((b - a, th, tw, 3), np.uint8)
        if not per_frame:
            for s in range(a - a % BATCH, b, BATCH):
                x, y = max(a, s), min(b, s + BATCH)
                out[x - a:y - a] = batch(s)[x - s:y - s]
            return out
        for lo, block in video.pieces(a, b):
            for k, frame in enumerate(block, lo - a):
                if ctx is not None:
                    ctx.check()
                out[k] = pictures(frame)
            progress.add(len(block))
        return out

    return video.with_(width=tw, height=th, reader=reader, local=True)
