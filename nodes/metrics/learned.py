"""Learned metrics (LPIPS, CLIP score, FVD) on networks the user keeps in local files.

Nothing is downloaded: each loader checks its file or folder first and says which file is
missing and where such a file comes from. Networks are built here in the layouts of their
public releases so those files load unchanged:
- LPIPS (Zhang et al. 2018), AlexNet variant: torchvision AlexNet `features.*` weights plus the
  release's linear heads `lin0..lin4.model.1.weight`.
- CLIP score (Hessel et al. 2021): any transformers CLIP folder with its tokenizer.
- FVD (Unterthiner et al. 2018): the I3D TorchScript detector used by StyleGAN-V / DIGAN,
  called as detector(x, rescale=False, resize=False, return_features=True) with x in [-1, 1],
  [batch, 3, frames, 224, 224]."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
from torch import nn

from graph_engine import NodeError
from nodes.metrics.series import reference_series

_ALEX = [(3, 64, 11, 4, 2), "M", (64, 192, 5, 1, 2), "M", (192, 384, 3, 1, 1), (384, 256, 3, 1, 1),
         (256, 256, 3, 1, 1)]
_LPIPS_SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
_LPIPS_SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
_CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
_CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def _need_file(path: str, what: str, where: str) -> Path:
    if not path or not Path(path).exists():
        raise NodeError(f"{what} not found at {path!r}: it is not bundled and never downloaded; {where}")
    return Path(path)


def _state(path: Path, what: str) -> dict:
    from nodes.generate.detect import torch_load
    # The model files' reader: a damaged or non-torch file is named as such (torch's own message
    # suggested loading it with weights_only=False, which would run any code the file holds).
    try:
        return torch_load(path)
    except NodeError as e:
        raise NodeError(f"{what}: {e}") from None


def _load_into(net: nn.Module, state: dict, path: Path, what: str, prefix: str = "") -> None:
    wanted = net.state_dict()
    picked = {k: state.get(prefix + k) for k in wanted}
    bad = [k for k, v in picked.items() if v is None or tuple(v.shape) != tuple(wanted[k].shape)]
    if bad:
        raise NodeError(f"{path} does not hold {what} (missing or mis-shaped: {', '.join(prefix + k for k in bad[:4])})")
    net.load_state_dict(picked)


class LPIPS(nn.Module):
    def __init__(self):
        super().__init__()
        layers: List[nn.Module] = []
        self.taps = []
        for item in _ALEX:
            if item == "M":
                layers.append(nn.MaxPool2d(3, 2))
            else:
                cin, cout, k, s, p = item
                layers += [nn.Conv2d(cin, cout, k, s, p), nn.ReLU(inplace=False)]
                self.taps.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        self.lins = nn.ModuleList(nn.Conv2d(item[1], 1, 1, bias=False) for item in _ALEX if item != "M")

    def load(self, weights: str, backbone: str) -> "LPIPS":
        bpath = _need_file(backbone, "AlexNet backbone weights", "use torchvision's alexnet ImageNet weights file")
        wpath = _need_file(weights, "LPIPS linear weights", "use alex.pth from the LPIPS release (v0.1)")
        _load_into(self.features, _state(bpath, "AlexNet weights"), bpath, "AlexNet features", "features.")
        lin_state = _state(wpath, "LPIPS weights")
        for k, lin in enumerate(self.lins):
            _load_into(lin, {"weight": lin_state.get(f"lin{k}.model.1.weight")}, wpath, f"LPIPS head lin{k}")
        return self.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: [B, 3, H, W] in [-1, 1] -> distance per item [B]."""
        feats = []
        for img in ((x - _LPIPS_SHIFT) / _LPIPS_SCALE, (y - _LPIPS_SHIFT) / _LPIPS_SCALE):
            taps, h = [], img
            for i, layer in enumerate(self.features):
                h = layer(h)
                if i in self.taps:
                    taps.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
            feats.append(taps)
        return sum(lin((a - b) ** 2).mean((2, 3)) for lin, a, b in zip(self.lins, *feats))[:, 0]


def _signed(frame: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(frame).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def lpips_series(ctx, video, reference, weights: str, backbone: str) -> List[float]:
    device = torch.device(ctx.device if ctx is not None else "cpu")
    net = LPIPS().load(weights, backbone).to(device)

    def one(a, b):
        with torch.no_grad():
            return float(net(_signed(a, device), _signed(b, device))[0])

    return reference_series(ctx, video, reference, one, "LPIPS")


def _embedding(out) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output holds the projected embedding.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def clip_series(ctx, video, prompt: str, model: str) -> List[float]:
    folder = _need_file(model, "CLIP model folder", "save a transformers CLIP model and its tokenizer there "
                                                    "(e.g. openai/clip-vit-base-patch32)")
    import cv2
    from transformers import AutoTokenizer, CLIPModel
    from nodes.generate.offline import quiet_libraries
    quiet_libraries(("transformers",))       # and its config.json held to its weights (config_bound)
    device = torch.device(ctx.device if ctx is not None else "cpu")
    try:
        net = CLIPModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise NodeError(f"{folder} is not a usable CLIP model folder: {e}") from None
    size = net.config.vision_config.image_size
    with torch.no_grad():
        ids = tok([prompt], padding=True, truncation=True, return_tensors="pt").to(device)
        text = _embedding(net.get_text_features(**ids))
        text = text / text.norm(dim=-1, keepdim=True)

    def one(frame):
        h, w = frame.shape[:2]
        s = size / min(h, w)
        img = cv2.resize(frame, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_CUBIC)
        y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        img = (img[y0:y0 + size, x0:x0 + size].astype(np.float32) / 255.0 - _CLIP_MEAN) / _CLIP_STD
        pix = torch.from_numpy(img).permute(2, 0, 1)[None].to(device)
        with torch.no_grad():
            emb = _embedding(net.get_image_features(pixel_values=pix))
            emb = emb / emb.norm(dim=-1, keepdim=True)
        # Hessel et al.'s CLIPScore without the 2.5 rescale: 100 x max(cos, 0).
        return 100.0 * max(float((emb * text).sum()), 0.0)

    from nodes.metrics.series import frame_series
    return frame_series(ctx, video, one, "CLIP score")


def _i3d_clips(video, clip_frames: int, stride: int):
    import cv2
    if video.length < clip_frames:
        raise NodeError(f"FVD needs at least clip_frames = {clip_frames} frames; the clip has {video.length}")
    for s in range(0, video.length - clip_frames + 1, stride):
        frames = [cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA) for f in video.frames(s, s + clip_frames)]
        yield torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0


def _features(ctx, det, video, clip_frames: int, stride: int, device) -> np.ndarray:
    feats = []
    total = max(0, (video.length - clip_frames) // stride + 1)
    for x in _i3d_clips(video, clip_frames, stride):
        if ctx is not None:
            ctx.progress(len(feats), total, "FVD features")
        with torch.no_grad():
            try:
                f = det(x.to(device), rescale=False, resize=False, return_features=True)
            except (TypeError, RuntimeError):
                f = det(x.to(device))
        feats.append(f.reshape(1, -1).double().cpu().numpy())
    return np.concatenate(feats)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False)) if len(a) > 1 else np.zeros((a.shape[1],) * 2)
    cov_b = np.atleast_2d(np.cov(b, rowvar=False)) if len(b) > 1 else np.zeros((b.shape[1],) * 2)
    root = linalg.sqrtm(cov_a @ cov_b)
    return float(max(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * np.real(root)), 0.0))


def fvd_value(ctx, video, reference, detector: str, clip_frames: int, stride: int) -> Tuple[float, int]:
    path = _need_file(detector, "I3D detector", "use i3d_torchscript.pt, the TorchScript I3D of the StyleGAN-V "
                                                "FVD code")
    device = torch.device(ctx.device if ctx is not None else "cpu")
    from nodes.generate.detect import load_torchscript
    det = load_torchscript(path, device, "I3D detector")
    fa = _features(ctx, det, video, clip_frames, stride, device)
    fb = _features(ctx, det, reference, clip_frames, stride, device)
    return frechet_distance(fa, fb), len(fa)
