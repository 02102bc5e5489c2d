"""Pictures of a SPLAT from a camera, as ComfyUI's RenderSplat draws them (comfy_extras/nodes_gaussian_splat.py), on
the CPU with torch, and its cameras (CreateCameraInfo: an orbit about a target, or an eye looking at one).

Each Gaussian is weighted at a pixel by its 3-D peak along the pixel's ray (not the flattened 2-D footprint), within
a window sized from its footprint (a ladder of 16, 64, 256 pixels and the largest needed). Gaussians are cut into
depth slabs (one a thousand, at most 256); within a slab they add up (opacity as 1 - prod(1 - alpha), colour as the
alpha^sharpen-weighted mean), and slabs are composited front to back, in linear light for colour. Styles: colour,
clay (grey, lit from the upper left), depth (near bright) and normal (each Gaussian's thinnest axis, blurred).

A camera is ComfyUI's camera_info: the eye and target in the viewer's world (right-handed, Y up), the rotation as a
quaternion (three.js: it looks down its -Z), the vertical field of view, a zoom and the projection."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError

STYLES = ("color", "clay", "depth", "normal")


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-8)


def _quat_matrix(q: torch.Tensor) -> torch.Tensor:
    """[N, 3, 3] of unit-normalised w x y z quaternions [N, 4]."""
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)).unbind(-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(-1, 3, 3)


def _quat_of(m: torch.Tensor) -> torch.Tensor:
    """w x y z of rotation matrix m [3, 3], from its largest component (stable for any rotation)."""
    t = [1 + m[0, 0] + m[1, 1] + m[2, 2], 1 + m[0, 0] - m[1, 1] - m[2, 2],
         1 - m[0, 0] + m[1, 1] - m[2, 2], 1 - m[0, 0] - m[1, 1] + m[2, 2]]
    a, b, c = m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]
    d, e, f = m[1, 0] + m[0, 1], m[0, 2] + m[2, 0], m[1, 2] + m[2, 1]
    rows = [(t[0], a, b, c), (a, t[1], d, e), (b, d, t[2], f), (c, e, f, t[3])]
    q = torch.stack(rows[int(torch.stack(t).argmax())])
    return q / q.norm().clamp_min(1e-12)


def _hamilton(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (x) b, w x y z, in float32 as ComfyUI's cameras are computed (a render is sensitive to their last bits: a
    thin Gaussian's weight is a difference of two large numbers)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def _xyz(v) -> dict:
    return {"x": float(v[0]), "y": float(v[1]), "z": float(v[2])}


def look_at(eye, target, fov: float, zoom: float = 1.0, projection: str = "perspective", roll: float = 0.0) -> dict:
    """camera_info of an eye looking at a target, world +Y up (three.js lookAt), turned `roll` degrees about its
    view axis."""
    eye_t, target_t = torch.as_tensor(eye, dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32)
    back = _unit(eye_t - target_t)
    up = torch.tensor([0.0, 1.0, 0.0]) if float(back[1].abs()) <= 0.999 else torch.tensor([0.0, 0.0, 1.0])
    side = _unit(torch.linalg.cross(up, back))
    q = _quat_of(torch.stack([side, torch.linalg.cross(back, side), back], 1))
    if roll:
        a = math.radians(roll)
        q = _hamilton(q, torch.tensor([math.cos(a / 2), 0.0, 0.0, math.sin(a / 2)]))
    return {"position": _xyz(eye_t), "target": _xyz(target_t),
            "quaternion": {"x": float(q[1]), "y": float(q[2]), "z": float(q[3]), "w": float(q[0])},
            "fov": float(fov), "cameraType": projection, "zoom": float(zoom)}


def orbit(yaw: float, pitch: float, distance: float, target=(0.0, 0.0, 0.0), **kw) -> dict:
    """camera_info `distance` from the target at yaw (about +Y, from +Z) and pitch (up) degrees."""
    y, p = math.radians(yaw), math.radians(pitch)
    eye = [target[0] + distance * math.cos(p) * math.sin(y), target[1] + distance * math.sin(p),
           target[2] + distance * math.cos(p) * math.cos(y)]
    return look_at(eye, list(target), **kw)


def turned(camera: dict, degrees: float) -> dict:
    """The camera carried `degrees` about world +Y around its target (a turntable frame)."""
    a = math.radians(degrees)
    ca, sa = math.cos(a), math.sin(a)
    v = lambda d: torch.tensor([float(d.get(k, 0.0)) for k in "xyz"])  # noqa: E731
    position, target = v(camera.get("position", {})), v(camera.get("target", {}))
    turn = torch.tensor([[ca, 0.0, sa], [0.0, 1.0, 0.0], [-sa, 0.0, ca]])
    q = camera.get("quaternion") or {}
    q = _hamilton(torch.tensor([math.cos(a / 2), 0.0, math.sin(a / 2), 0.0]),
                  torch.tensor([float(q.get(k, d)) for k, d in (("w", 1.0), ("x", 0), ("y", 0), ("z", 0))]))
    return {**camera, "position": _xyz(target + turn @ (position - target)),
            "quaternion": {"x": float(q[1]), "y": float(q[2]), "z": float(q[3]), "w": float(q[0])}}


def _basis(camera: dict):
    """(eye, target, right, down, forward) in the splat's frame (world turned half about x: x, -y, -z)."""
    flip = torch.tensor([1.0, -1.0, -1.0])
    v = lambda d: torch.tensor([float(d.get(k, 0.0)) for k in "xyz"]) * flip  # noqa: E731
    eye, target = v(camera.get("position", {})), v(camera.get("target", {}))
    q = camera.get("quaternion")
    if q:
        r = _quat_matrix(torch.tensor([[float(q.get(k, d)) for k, d in (("w", 1.0), ("x", 0), ("y", 0), ("z", 0))]]))[0]
        return eye, target, _unit(r[:, 0] * flip), _unit(-r[:, 1] * flip), _unit(-r[:, 2] * flip)
    fwd = _unit(target - eye)
    y, p = math.atan2(-float(fwd[0]), float(fwd[2])), math.asin(max(-1.0, min(1.0, float(fwd[1]))))
    ry = torch.tensor([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = torch.tensor([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    w = rx @ ry
    return eye, target, w[0], w[1], w[2]


def srgb_to_linear(c):
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp_min(0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c):
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c.clamp_min(0) ** (1 / 2.4) - 0.055)


def quantile(x: torch.Tensor, q: float) -> torch.Tensor:
    """torch.quantile of x, on every (2^24 + 1)-th value past 2^24 (its limit), as ComfyUI's _quantile."""
    if x.numel() > 1 << 24:
        x = x[:: x.numel() // (1 << 24) + 1]
    return torch.quantile(x, q)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(round(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)


SMALLEST, LARGEST = 1e-6, 1e6     # the Gaussians' axes drawn, in the splat's units


def render(xyz, rgb, opacity, scale, rot, width: int, height: int, camera: dict, bg=(0.0, 0.0, 0.0),
           splat_scale: float = 1.0, sharpen: float = 1.0, headlight: float = 0.0,
           style: str = "color") -> Tuple[torch.Tensor, torch.Tensor]:
    """(picture [H, W, 3] in 0..1, coverage [H, W]) of Gaussians xyz [N, 3], rgb [N, 3] (0..1), opacity [N],
    scale [N, 3], rot [N, 4] (w x y z) seen by `camera` over the background colour."""
    rgb, opacity = rgb.float().clamp(0, 1), opacity.float().reshape(-1)
    # a point (all scales 0) made the covariance singular and a boundless one (1e30) overflowed float32's square
    # to NaN: sizes outside a micron to a thousand km draw as those bounds (nothing, a fog over everything)
    scale = (scale.float() * float(splat_scale)).clamp(SMALLEST, LARGEST)
    linear = style == "color"
    if linear:
        rgb = srgb_to_linear(rgb)
    bg_t = torch.tensor(bg, dtype=torch.float32)
    bg_lit = srgb_to_linear(bg_t) if linear else bg_t
    depth_wanted, normal_wanted = style == "depth", style in ("normal", "clay") or headlight > 0

    def empty():
        base = bg_t.expand(height, width, 3) if style == "color" else torch.zeros(height, width, 3)
        return base.clone(), torch.zeros(height, width)

    if len(xyz) == 0:
        return empty()
    eye, target, right, down, fwd = _basis(camera)
    w = torch.stack([right, down, fwd])
    xc, yc, zc = ((xyz.float() - eye) @ w.T).unbind(-1)
    front = zc > 1e-2
    xc, yc, zc, rgb, opacity, scale, rot = (a[front] for a in (xc, yc, zc, rgb, opacity, scale, rot))
    if len(zc) == 0:
        return empty()
    if style == "clay":
        rgb = torch.full_like(rgb, 0.75)
    fov = float(camera.get("fov", 0) or 0) or 35.0
    focal = (min(width, height) / 2) / math.tan(math.radians(fov) / 2) * float(camera.get("zoom", 1.0) or 1.0)
    ortho = str(camera.get("cameraType", "")).lower().startswith("ortho")
    cx0, cy0 = width / 2, height / 2

    mw = w[None] @ _quat_matrix(rot.float())                            # each Gaussian's axes in the camera frame
    cov = (mw * scale.square()[:, None, :]) @ mw.transpose(1, 2)
    cov = cov + (cov.diagonal(dim1=-2, dim2=-1).mean(-1) * 1e-3)[:, None, None] * torch.eye(3)   # a stable inverse
    mu = torch.stack([xc, yc, zc], -1)
    si = torch.linalg.inv(cov)
    simu = (si @ mu[:, :, None])[:, :, 0]
    musimu = (mu * simu).sum(-1)
    if normal_wanted:       # the thinnest axis, turned to face the camera
        nrm = mw[torch.arange(len(mw)), :, scale.argmin(-1)]
        nrm = nrm * torch.where(nrm[:, 2:3] > 0, -1.0, 1.0)

    jac = torch.zeros(len(zc), 2, 3)        # the footprint's 2-D covariance: only to size each window
    if ortho:
        px_per_unit = focal / float((target - eye).norm().clamp_min(1e-6))
        cx, cy = cx0 + px_per_unit * xc, cy0 + px_per_unit * yc
        jac[:, 0, 0] = jac[:, 1, 1] = px_per_unit
    else:
        inv = 1.0 / zc
        cx, cy = cx0 + focal * xc * inv, cy0 + focal * yc * inv
        jac[:, 0, 0], jac[:, 0, 2] = focal * inv, -focal * xc * inv.square()
        jac[:, 1, 1], jac[:, 1, 2] = focal * inv, -focal * yc * inv.square()
    cov2 = jac @ cov @ jac.transpose(1, 2)
    a, b, c = cov2[:, 0, 0], cov2[:, 0, 1], cov2[:, 1, 1]
    radius = 3.0 * ((a + c) * 0.5 + (((a - c) * 0.5).square() + b * b).clamp_min(0).sqrt()).clamp_min(1e-8).sqrt()
    reach = int(min(max(24, min(width, height) // 16), max(2, math.ceil(quantile(radius, 0.995).item()))))
    ladder = [r for r in (16, 64, 256) if r < reach] + [reach]
    offsets = []
    for r in ladder:
        span = torch.arange(-r, r + 1, dtype=torch.float32)
        gy, gx = torch.meshgrid(span, span, indexing="ij")
        offsets.append((gx.reshape(-1), gy.reshape(-1)))
    rung = torch.bucketize(radius * (4.0 / 3.0), torch.tensor(ladder, dtype=torch.float32)).clamp_(max=len(ladder) - 1)

    n = len(zc)
    slabs = int(min(256, max(1, n // 1000)))
    rank = torch.empty(n, dtype=torch.long)
    rank[torch.argsort(zc)] = torch.arange(n)
    bounds = torch.linspace(0, n, slabs + 1).round().long()
    slab = (torch.searchsorted(bounds, rank, right=True) - 1).clamp_(0, slabs - 1)
    key = slab * len(ladder) + rung
    order = torch.argsort(key)
    key = key[order]
    cxr, cyr = cx[order].round(), cy[order].round()
    s = {k: si[order][:, i, j] for k, (i, j) in
         {"00": (0, 0), "11": (1, 1), "22": (2, 2), "01": (0, 1), "02": (0, 2), "12": (1, 2)}.items()}
    su, mus, opacity, rgb = simu[order], musimu[order], opacity[order], rgb[order]
    zs = zc[order]
    ms = mu[order]
    nrm_s = nrm[order] if normal_wanted else None

    def alphas(lo, hi, ox, oy):
        px, py = cxr[lo:hi, None] + ox[None], cyr[lo:hi, None] + oy[None]
        inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
        a00, a11, a22 = (s[k][lo:hi, None] for k in ("00", "11", "22"))
        a01, a02, a12 = (2 * s[k][lo:hi, None] for k in ("01", "02", "12"))
        # q (the squared distance to the Gaussian's peak) is a difference of two large numbers for a thin
        # Gaussian: it is summed in ComfyUI's order, fused multiply-adds and all, to come out as its does
        if ortho:       # a ray along +z from (X, Y, 0): the Gaussian's least distance along it
            rx = (px - cx0) / px_per_unit - ms[lo:hi, 0:1]
            ry = (py - cy0) / px_per_unit - ms[lo:hi, 1:2]
            rz = -ms[lo:hi, 2:3]
            a22rz = a22 * rz
            inx = torch.addcmul(a02 * rz, a00, rx).addcmul_(a01, ry)
            rsr = torch.addcmul(a22rz * rz, rx, inx).addcmul_(ry, torch.addcmul(a12 * rz, a11, ry))
            dsr = torch.addcmul(a22rz, s["02"][lo:hi, None], rx).addcmul_(s["12"][lo:hi, None], ry)
            q = torch.addcdiv(rsr, dsr * dsr, a22.clamp_min(1e-12), value=-1).clamp_min_(0)
        else:           # a ray (dx, dy, 1) from the eye: the Gaussian's peak along it
            dx, dy = (px - cx0) / focal, (py - cy0) / focal
            dsd = torch.addcmul(a22, dx, torch.addcmul(a02, a00, dx))
            dsd = dsd.addcmul_(dy, torch.addcmul(a12, a11, dy)).addcmul_(a01 * dx, dy)
            dsm = torch.addcmul(su[lo:hi, 2:3], dx, su[lo:hi, 0:1]).addcmul_(dy, su[lo:hi, 1:2])
            q = torch.addcdiv(mus[lo:hi, None], dsm * dsm, dsd.clamp_min(1e-12), value=-1).clamp_min_(0)
        alpha = (opacity[lo:hi, None] * torch.exp(-0.5 * q) * inside).clamp(0, 0.999)
        return (py.long().clamp(0, height - 1) * width + px.long().clamp(0, width - 1)).reshape(-1), alpha

    flat = width * height
    colour, trans = torch.zeros(flat, 3), torch.ones(flat)
    depth = torch.zeros(flat) if depth_wanted else None
    normal = torch.zeros(flat, 3) if normal_wanted else None
    starts = torch.cat([torch.zeros(1, dtype=torch.long), (key[1:] != key[:-1]).nonzero().flatten() + 1]).tolist()
    runs = [[] for _ in range(slabs)]
    for lo, hi in zip(starts, starts[1:] + [n]):
        runs[int(key[lo]) // len(ladder)].append((lo, hi, int(key[lo]) % len(ladder)))
    sharp, stale = sharpen != 1.0, 0
    for i, slab_runs in enumerate(runs):
        if not slab_runs:
            continue
        a_sum, tau, col, wsum = torch.zeros(flat), torch.zeros(flat), torch.zeros(flat, 3), torch.zeros(flat)
        z_sum = torch.zeros(flat) if depth_wanted else None
        n_sum = torch.zeros(flat, 3) if normal_wanted else None
        for lo, hi, r in slab_runs:
            ox, oy = offsets[r]
            step = max(2048, 10_000_000 // len(ox))
            for a0 in range(lo, hi, step):
                b0 = min(a0 + step, hi)
                idx, alpha = alphas(a0, b0, ox, oy)
                a_sum.index_add_(0, idx, alpha.reshape(-1))
                tau.index_add_(0, idx, (-torch.log1p(-alpha)).reshape(-1))
                weight = alpha.pow(sharpen) if sharp else alpha
                col.index_add_(0, idx, (weight[:, :, None] * rgb[a0:b0, None]).reshape(-1, 3))
                if sharp:
                    wsum.index_add_(0, idx, weight.reshape(-1))
                if depth_wanted:
                    z_sum.index_add_(0, idx, (alpha * zs[a0:b0, None]).reshape(-1))
                if normal_wanted:
                    n_sum.index_add_(0, idx, (alpha[:, :, None] * nrm_s[a0:b0, None]).reshape(-1, 3))
        slab_alpha = 1 - torch.exp(-tau)
        seen = trans * slab_alpha
        colour.addcmul_(seen[:, None], col / (wsum if sharp else a_sum).clamp_min(1e-8)[:, None])
        if depth_wanted:
            depth.addcmul_(seen, z_sum / a_sum.clamp_min(1e-8))
        if normal_wanted:
            normal.addcmul_(seen[:, None], n_sum / a_sum.clamp_min(1e-8)[:, None])
        trans *= 1 - slab_alpha
        if i % 8 == 7:      # two checkpoints in a row hidden behind what is in front: the rest are too
            stale = stale + 1 if float(seen.max()) < 1e-3 else 0
            if stale >= 2:
                break

    cover = (1 - trans).reshape(height, width)
    solid = cover > 0.5
    if normal_wanted:
        nb = _blur(normal.reshape(height, width, 3).permute(2, 0, 1)[None], 1.2)
        cb = _blur(cover[None, None], 1.2)
        nmap = (nb / cb.clamp_min(1e-6))[0].permute(1, 2, 0)
        nmap = nmap / nmap.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    if style == "depth":
        dmap = (depth / (1 - trans).clamp_min(1e-6)).reshape(height, width)
        d = torch.zeros(height, width)
        if bool(solid.any()):
            lo, hi = dmap[solid].min(), dmap[solid].max()
            d = torch.where(solid, ((hi - dmap) / (hi - lo).clamp_min(1e-6)).clamp(0, 1), d)
        img = d[:, :, None].expand(height, width, 3)
    elif style == "normal":     # OpenGL's: +x right, +y up, +z to the viewer
        img = (nmap * torch.tensor([1.0, -1.0, -1.0]) * 0.5 + 0.5).clamp(0, 1) * solid[:, :, None]
    else:
        img = colour.reshape(height, width, 3)
        if style == "clay":
            key_light = _unit(torch.tensor([-0.4, -0.7, -0.6]))
            lit = (0.5 * (nmap * key_light).sum(-1) + 0.5).clamp(0, 1)
            img = img * (0.35 + 0.65 * lit * lit)[:, :, None]
        elif headlight > 0:
            img = img * (1 - 0.6 * headlight + 0.6 * headlight * (-nmap[:, :, 2]).clamp(0, 1))[:, :, None]
        img = img + trans.reshape(height, width, 1) * bg_lit
        if linear:
            img = linear_to_srgb(img)
    return img.clamp(0, 1), cover.clamp(0, 1)


def hex_colour(text: str) -> Tuple[float, float, float]:
    h = str(text).lstrip("#")
    if len(h) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in h):
        raise NodeError(f"background {text!r} is not a colour: write it as #RRGGBB (#848484: grey)")
    return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))


def render_frames(splat, width: int, height: int, camera: Optional[dict], frames: int = 1, splat_scale: float = 1.0,
                  sharpen: float = 1.0, headlight: float = 0.0, opacity_threshold: float = 0.0,
                  style: str = "color", background: str = "#000000") -> Tuple[np.ndarray, np.ndarray]:
    """RenderSplat.execute on one splat: (pictures float32 [T, H, W, 3], coverage [T, H, W]); |frames| > 1 turns
    the camera a full turn about its target over them (negative: the other way); no camera frames the splat from
    a three-quarter view."""
    if style not in STYLES:
        raise NodeError(f"render style {style!r} is not one of {', '.join(STYLES)}")
    bg = hex_colour(background)
    xyz, scale = torch.from_numpy(splat.positions), torch.from_numpy(splat.scales)
    rot, opacity = torch.from_numpy(splat.rotations), torch.from_numpy(splat.opacities)
    rgb = torch.from_numpy(splat.colors())
    if opacity_threshold > 0:
        keep = opacity >= opacity_threshold
        xyz, rgb, opacity, scale, rot = xyz[keep], rgb[keep], opacity[keep], scale[keep], rot[keep]
    if camera is None:
        centre = xyz.mean(0) if len(xyz) else torch.zeros(3)
        extent = quantile((xyz - centre).norm(dim=-1), 0.99).clamp_min(1e-4) if len(xyz) else torch.tensor(1.0)
        if len(xyz):    # Gaussians in one place (or one alone) put the camera inside the near limit: frame their size
            extent = torch.maximum(extent, 3.0 * scale.float().max(-1).values.median() * float(splat_scale))
        distance = float(extent / (math.tan(math.radians(35.0) / 2) * 0.9))
        flip = torch.tensor([1.0, -1.0, -1.0])      # the splat's frame to the world's (its own inverse)
        y, p = math.radians(35.0), math.radians(30.0)
        ahead = torch.tensor([-math.cos(p) * math.sin(y), math.sin(p), math.cos(p) * math.cos(y)])
        camera = look_at((centre - distance * ahead) * flip, centre * flip, 35.0)
    count = abs(int(frames)) or 1
    way = -1.0 if frames < 0 else 1.0
    pictures, covers = [], []
    for i in range(count):
        cam = camera if count == 1 else turned(camera, way * 360.0 * i / count)
        img, cover = render(xyz, rgb, opacity, scale, rot, width, height, cam, bg, splat_scale, sharpen, headlight,
                            style)
        pictures.append(img.numpy())
        covers.append(cover.numpy())
    return np.stack(pictures), np.stack(covers)
