"""ComfyUI's RenderSplat and CreateCameraInfo written out as the tests' independent reference
(comfy_extras/nodes_gaussian_splat.py: _render_gaussian and the camera helpers it reads), on the CPU:
get_torch_device / intermediate_device = cpu, float32."""
from __future__ import annotations

import math


import torch

_C0 = 0.28209479177387814


def _srgb_to_linear(c):
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp_min(0) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c):
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c.clamp_min(0) ** (1 / 2.4) - 0.055)


def _hex_to_rgb(h):
    h = h.lstrip("#")
    if len(h) != 6:
        return (0.0, 0.0, 0.0)
    return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))


def _quantile(x, q):
    lim = 1 << 24
    if x.numel() > lim:
        x = x[:: x.numel() // lim + 1]
    return torch.quantile(x, q)


def _quat_to_mat(q):
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)


def _quat_mul(a, b):
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


def _mat_to_quat(m):
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    m21, m12 = m[..., 2, 1], m[..., 1, 2]
    m02, m20 = m[..., 0, 2], m[..., 2, 0]
    m10, m01 = m[..., 1, 0], m[..., 0, 1]
    q2 = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    cand = torch.stack([
        torch.stack([q2[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, q2[..., 1], m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, q2[..., 2], m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, q2[..., 3]], -1),
    ], -2)
    sel = q2.argmax(-1)
    q = torch.gather(cand, -2, sel[..., None, None].expand(sel.shape + (1, 4)))[..., 0, :]
    return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _view_matrix_t(yaw_deg, pitch_deg, device):
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    cy, sy, cp, sp = math.cos(y), math.sin(y), math.cos(p), math.sin(p)
    Ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], device=device)
    Rx = torch.tensor([[1, 0, 0], [0, cp, -sp], [0, sp, cp]], device=device)
    return Rx @ Ry


def _camera_basis(camera_info, dev):
    pos, tgt = camera_info.get("position", {}), camera_info.get("target", {})
    m = lambda d: torch.tensor([float(d.get("x", 0.0)), -float(d.get("y", 0.0)), -float(d.get("z", 0.0))],  # noqa: E731
                               device=dev)
    eye, target = m(pos), m(tgt)
    mv = lambda v: torch.stack([v[0], -v[1], -v[2]])  # noqa: E731
    n = lambda v: v / v.norm().clamp_min(1e-8)  # noqa: E731
    q = camera_info.get("quaternion")
    if q:
        qwxyz = torch.tensor([float(q.get("w", 1.0)), float(q.get("x", 0.0)),
                              float(q.get("y", 0.0)), float(q.get("z", 0.0))], device=dev)
        R = _quat_to_mat(qwxyz[None])[0]
        return eye, target, n(mv(R[:, 0])), n(mv(-R[:, 1])), n(mv(-R[:, 2]))
    fwd = n(target - eye)
    yaw = math.degrees(math.atan2(-float(fwd[0]), float(fwd[2])))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, float(fwd[1])))))
    W = _view_matrix_t(yaw, pitch, dev)
    return eye, target, W[0], W[1], W[2]


def _lookat_quat_wxyz(position, target, dev):
    z = position - target
    z = z / z.norm().clamp_min(1e-8)
    up0 = torch.tensor([0.0, 1.0, 0.0], device=dev)
    if z.dot(up0).abs() > 0.999:
        up0 = torch.tensor([0.0, 0.0, 1.0], device=dev)
    x = torch.linalg.cross(up0, z)
    x = x / x.norm().clamp_min(1e-8)
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z], dim=1)
    return _mat_to_quat(R[None])[0]


def _lookat_camera_info(position, target, fov, dev, zoom=1.0, camera_type="perspective", roll=0.0):
    pos = torch.as_tensor(position, dtype=torch.float32, device=dev)
    tgt = torch.as_tensor(target, dtype=torch.float32, device=dev)
    q = _lookat_quat_wxyz(pos, tgt, dev)
    if roll:
        a = math.radians(roll)
        qz = torch.tensor([math.cos(a / 2), 0.0, 0.0, math.sin(a / 2)], device=dev)
        q = _quat_mul(q[None], qz[None])[0]
    xyz = lambda v: {"x": float(v[0]), "y": float(v[1]), "z": float(v[2])}  # noqa: E731
    return {"position": xyz(pos), "target": xyz(tgt),
            "quaternion": {"x": float(q[1]), "y": float(q[2]), "z": float(q[3]), "w": float(q[0])},
            "fov": float(fov), "cameraType": str(camera_type), "zoom": float(zoom)}


def _orbit_camera_info(yaw, pitch, distance, fov, pivot_splat, dev):
    y, p = math.radians(yaw), math.radians(pitch)
    cy, sy, cp, sp = math.cos(y), math.sin(y), math.cos(p), math.sin(p)
    fwd_splat = torch.tensor([-cp * sy, sp, cp * cy], device=dev)
    m = lambda v: torch.stack([v[0], -v[1], -v[2]])  # noqa: E731
    return _lookat_camera_info(m(pivot_splat - distance * fwd_splat), m(pivot_splat), fov, dev)


def _orbit_camera_info_yaw(camera_info, angle_deg, dev):
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    v = lambda d: torch.tensor([float(d.get("x", 0.0)), float(d.get("y", 0.0)), float(d.get("z", 0.0))],  # noqa: E731
                               device=dev)
    pos, tgt = v(camera_info.get("position", {})), v(camera_info.get("target", {}))
    Ry = torch.tensor([[ca, 0.0, sa], [0.0, 1.0, 0.0], [-sa, 0.0, ca]], device=dev)
    new_pos = tgt + Ry @ (pos - tgt)
    q = camera_info.get("quaternion") or {}
    qcur = torch.tensor([float(q.get("w", 1.0)), float(q.get("x", 0.0)),
                         float(q.get("y", 0.0)), float(q.get("z", 0.0))], device=dev)
    qy = torch.tensor([math.cos(a / 2), 0.0, math.sin(a / 2), 0.0], device=dev)
    qn = _quat_mul(qy[None], qcur[None])[0]
    xyz = lambda t: {"x": float(t[0]), "y": float(t[1]), "z": float(t[2])}  # noqa: E731
    return {**camera_info, "position": xyz(new_pos),
            "quaternion": {"x": float(qn[1]), "y": float(qn[2]), "z": float(qn[3]), "w": float(qn[0])}}


def _gauss_blur(x, sigma, dev):
    r = max(1, int(round(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, device=dev, dtype=torch.float32) / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)
    x = torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)
    return x


def _render_gaussian(xyz, rgb, opacity, scale, rot, width, height, splat_scale, bg, camera_info,
                     sharpen=1.0, headlight_shading=0.0, render_style="color"):
    dev = torch.device("cpu")
    t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=dev)  # noqa: E731
    xyz, rgb, opacity = t(xyz), t(rgb).clamp(0, 1), t(opacity).reshape(-1)
    scale, rot = t(scale) * float(splat_scale), t(rot)
    do_linear = render_style == "color"
    if do_linear:
        rgb = _srgb_to_linear(rgb)
    flat = width * height
    bg_t = t(bg)
    bg_comp = _srgb_to_linear(bg_t) if do_linear else bg_t
    need_depth = render_style == "depth"
    need_normal = render_style in ("normal", "clay") or headlight_shading > 0

    def background_only():
        img = bg_t.expand(height, width, 3) if render_style == "color" else torch.zeros(height, width, 3, device=dev)
        return img, torch.zeros(height, width, device=dev)

    if xyz.shape[0] == 0:
        return background_only()
    eye, target, right, up, fwd = _camera_basis(camera_info, dev)
    W = torch.stack([right, up, fwd], 0)
    cam = (xyz - eye) @ W.T
    fov = float(camera_info.get("fov", 0) or 0) or 35.0
    zoom = float(camera_info.get("zoom", 1.0) or 1.0)
    is_ortho = str(camera_info.get("cameraType", "")).lower().startswith("ortho")
    xc, yc, zc = cam.unbind(-1)
    keep = zc > 1e-2
    xc, yc, zc, rgb, opacity, scale, rot = (a[keep] for a in (xc, yc, zc, rgb, opacity, scale, rot))
    if xc.shape[0] == 0:
        return background_only()
    if render_style == "clay":
        rgb = torch.full_like(rgb, 0.75)
    f = (min(width, height) / 2) / math.tan(math.radians(fov) / 2) * zoom
    cx0, cy0 = width / 2, height / 2
    Mw = W[None] @ _quat_to_mat(rot)
    cam_cov = (Mw * scale.square()[:, None, :]) @ Mw.transpose(1, 2)
    cam_cov = cam_cov + (cam_cov.diagonal(dim1=-2, dim2=-1).mean(-1) * 1e-3)[:, None, None] * torch.eye(3, device=dev)
    mu = torch.stack([xc, yc, zc], -1)
    si = torch.linalg.inv(cam_cov)
    simu = (si @ mu[:, :, None])[:, :, 0]
    musimu = (mu * simu).sum(-1)
    s00, s01, s02 = si[:, 0, 0], si[:, 0, 1], si[:, 0, 2]
    s11, s12, s22 = si[:, 1, 1], si[:, 1, 2], si[:, 2, 2]
    simu0, simu1, simu2 = simu.unbind(-1)
    if need_normal:
        nrm = Mw[torch.arange(Mw.shape[0], device=dev), :, scale.argmin(-1)]
        nrm = nrm * torch.where(nrm[:, 2:3] > 0, -1.0, 1.0)
    jm = torch.zeros(xc.shape[0], 2, 3, device=dev)
    if is_ortho:
        s = f / float((target - eye).norm().clamp_min(1e-6))
        cx, cy = cx0 + s * xc, cy0 + s * yc
        jm[:, 0, 0] = s
        jm[:, 1, 1] = s
    else:
        invz = 1.0 / zc
        cx, cy = cx0 + f * xc * invz, cy0 + f * yc * invz
        jm[:, 0, 0], jm[:, 0, 2] = f * invz, -f * xc * invz.square()
        jm[:, 1, 1], jm[:, 1, 2] = f * invz, -f * yc * invz.square()
    cov2 = jm @ cam_cov @ jm.transpose(1, 2)
    a, b, c = cov2[:, 0, 0], cov2[:, 0, 1], cov2[:, 1, 1]
    max_eig = (a + c) * 0.5 + (((a - c) * 0.5).square() + b * b).clamp_min(0).sqrt()
    radius = 3.0 * max_eig.clamp_min(1e-8).sqrt()
    K = int(min(max(24, min(width, height) // 16), max(2, math.ceil(_quantile(radius, 0.995).item()))))
    levels = [L for L in (16, 64, 256) if L < K] + [K]
    levels_t = torch.tensor(levels, device=dev, dtype=torch.float32)
    grids = []
    for L in levels:
        rng = torch.arange(-L, L + 1, device=dev, dtype=torch.float32)
        gy, gx = torch.meshgrid(rng, rng, indexing="ij")
        grids.append((gx.reshape(-1), gy.reshape(-1)))
    blevel = torch.bucketize(radius * (4.0 / 3.0), levels_t).clamp_(max=len(levels) - 1)
    n = zc.shape[0]
    ns = int(min(256, max(1, n // 1000)))
    nl = len(levels)
    order = torch.argsort(zc)
    bounds = torch.linspace(0, n, ns + 1, device=dev).round().long()
    rank = torch.empty(n, dtype=torch.long, device=dev)
    rank[order] = torch.arange(n, device=dev)
    slab_id = (torch.searchsorted(bounds, rank, right=True) - 1).clamp_(0, ns - 1)
    key = slab_id * nl + blevel
    order = torch.argsort(key)
    key = key[order]
    cxr, cyr = cx[order].round(), cy[order].round()
    s00, s01, s02 = s00[order], s01[order], s02[order]
    s11, s12, s22 = s11[order], s12[order], s22[order]
    s01b, s02b, s12b = s01 * 2, s02 * 2, s12 * 2
    simu0, simu1, simu2, musimu = simu0[order], simu1[order], simu2[order], musimu[order]
    opacity, rgb = opacity[order], rgb[order]
    zc_o = zc[order] if need_depth else None
    nrm_o = nrm[order] if need_normal else None
    mux_o, muy_o, muz_o = (xc[order], yc[order], zc[order]) if is_ortho else (None, None, None)
    common = [cxr, cyr, s00, s11, s22, s01b, s02b, s12b, opacity]
    pstack = torch.stack(common + ([s02, s12, mux_o, muy_o, muz_o] if is_ortho else [simu0, simu1, simu2, musimu]))
    starts = torch.cat([torch.zeros(1, dtype=torch.long, device=dev), (key[1:] != key[:-1]).nonzero().flatten() + 1])
    ks = key[starts]
    run_lo = starts.tolist() + [n]
    run_lev = (ks % nl).tolist()
    run_slab = torch.div(ks, nl, rounding_mode="floor").tolist()
    slab_runs = [[] for _ in range(ns)]
    for r in range(len(run_lev)):
        slab_runs[run_slab[r]].append((run_lo[r], run_lo[r + 1], run_lev[r]))

    def splat(lo, hi, ox, oy):
        cols = pstack[:, lo:hi, None].unbind(0)
        cxr_, cyr_, a00, a11, a22, b01, b02, b12, opa = cols[:9]
        px = cxr_ + ox[None, :]
        py = cyr_ + oy[None, :]
        valid = (px >= 0) & (px < width) & (py >= 0) & (py < height)
        if is_ortho:
            c02, c12, mx, my, mz = cols[9:]
            rx = (px - cx0) / s - mx
            ry = (py - cy0) / s - my
            rz = -mz
            a22rz = a22 * rz
            inx = torch.addcmul(b02 * rz, a00, rx).addcmul_(b01, ry)
            rSr = torch.addcmul(a22rz * rz, rx, inx).addcmul_(ry, torch.addcmul(b12 * rz, a11, ry))
            dsr = torch.addcmul(a22rz, c02, rx).addcmul_(c12, ry)
            q = torch.addcdiv(rSr, dsr * dsr, a22.clamp_min(1e-12), value=-1).clamp_min_(0)
        else:
            su0, su1, su2, mus = cols[9:]
            dx, dy = (px - cx0) / f, (py - cy0) / f
            dsid = torch.addcmul(a22, dx, torch.addcmul(b02, a00, dx))
            dsid = dsid.addcmul_(dy, torch.addcmul(b12, a11, dy))
            dsid = dsid.addcmul_(b01 * dx, dy)
            dsimu = torch.addcmul(su2, dx, su0).addcmul_(dy, su1)
            q = torch.addcdiv(mus, dsimu * dsimu, dsid.clamp_min(1e-12), value=-1).clamp_min_(0)
        alpha = (opa * torch.exp(-0.5 * q) * valid).clamp_(0, 0.999)
        idx = py.long().clamp(0, height - 1) * width + px.long().clamp(0, width - 1)
        return idx, alpha

    sharp = sharpen != 1.0
    cacc = torch.zeros((flat, 3), device=dev)
    trans = torch.ones((flat,), device=dev)
    a_buf = torch.zeros((flat,), device=dev)
    tau_buf = torch.zeros((flat,), device=dev)
    crgb = torch.zeros((flat, 3), device=dev)
    wbuf = torch.zeros((flat,), device=dev) if sharp else None
    dacc = torch.zeros((flat,), device=dev) if need_depth else None
    nacc = torch.zeros((flat, 3), device=dev) if need_normal else None
    zslab = torch.zeros((flat,), device=dev) if need_depth else None
    nslab = torch.zeros((flat, 3), device=dev) if need_normal else None
    stale = 0
    for si in range(ns):
        runs = slab_runs[si]
        if not runs:
            continue
        a_buf.zero_()
        tau_buf.zero_()
        crgb.zero_()
        if sharp:
            wbuf.zero_()
        if need_depth:
            zslab.zero_()
        if need_normal:
            nslab.zero_()
        for r_lo, r_hi, li in runs:
            ox, oy = grids[li]
            ch = max(2048, 10_000_000 // ox.shape[0])
            for lo in range(r_lo, r_hi, ch):
                hi = min(lo + ch, r_hi)
                idx, alpha = splat(lo, hi, ox, oy)
                idx, af = idx.reshape(-1), alpha.reshape(-1)
                a_buf.index_add_(0, idx, af)
                tau_buf.index_add_(0, idx, (-torch.log1p(-alpha)).reshape(-1))
                apw = alpha.pow(sharpen) if sharp else alpha
                crgb.index_add_(0, idx, (apw[:, :, None] * rgb[lo:hi, None, :]).reshape(-1, 3))
                if sharp:
                    wbuf.index_add_(0, idx, apw.reshape(-1))
                if need_depth:
                    zslab.index_add_(0, idx, (alpha * zc_o[lo:hi, None]).reshape(-1))
                if need_normal:
                    nslab.index_add_(0, idx, (alpha[:, :, None] * nrm_o[lo:hi, None, :]).reshape(-1, 3))
        slab_a = 1 - torch.exp(-tau_buf)
        front = trans * slab_a
        denom = wbuf if sharp else a_buf
        cacc.addcmul_(front[:, None], crgb / denom.clamp_min(1e-8)[:, None])
        if need_depth or need_normal:
            ainv = a_buf.clamp_min(1e-8)
            if need_depth:
                dacc.addcmul_(front, zslab / ainv)
            if need_normal:
                nacc.addcmul_(front[:, None], nslab / ainv[:, None])
        trans.mul_(1 - slab_a)
        if si % 8 == 7:
            if float(front.max()) < 1e-3:
                stale += 1
                if stale >= 2:
                    break
            else:
                stale = 0
    cov = 1 - trans
    covg = cov.reshape(height, width)
    covm = covg > 0.5 if render_style in ("depth", "normal") else None
    depth_map = (dacc / cov.clamp_min(1e-6)).reshape(height, width) if need_depth else None
    nrm_map = None
    if need_normal:
        nb = nacc.reshape(height, width, 3).permute(2, 0, 1)[None]
        cb = cov.reshape(1, 1, height, width)
        nb, cb = _gauss_blur(nb, 1.2, dev), _gauss_blur(cb, 1.2, dev)
        normal = (nb / cb.clamp_min(1e-6))[0].permute(1, 2, 0)
        nrm_map = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    if render_style == "depth":
        d = torch.zeros(height, width, device=dev)
        if bool(covm.any()):
            lo, hi = depth_map[covm].min(), depth_map[covm].max()
            d = torch.where(covm, ((hi - depth_map) / (hi - lo).clamp_min(1e-6)).clamp(0, 1), d)
        img = d[:, :, None].expand(height, width, 3)
    elif render_style == "normal":
        enc = (nrm_map * t([1.0, -1.0, -1.0]) * 0.5 + 0.5).clamp(0, 1)
        img = enc * covm[:, :, None]
    else:
        img = cacc.reshape(height, width, 3)
        if render_style == "clay":
            kl = t([-0.4, -0.7, -0.6])
            kl = kl / kl.norm()
            hl = (0.5 * (nrm_map * kl).sum(-1) + 0.5).clamp(0, 1)
            img = img * (0.35 + 0.65 * hl * hl)[:, :, None]
        elif headlight_shading > 0:
            k = float(headlight_shading)
            ndotl = (-nrm_map[:, :, 2]).clamp(0, 1)
            img = img * (1 - 0.6 * k + 0.6 * k * ndotl)[:, :, None]
        img = img.addcmul_(trans.reshape(height, width, 1), bg_comp)
        if do_linear:
            img = _linear_to_srgb(img)
    return img.clamp(0, 1), covg.clamp(0, 1)


def render_splat(positions, scales, rotations, opacities, sh, width, height, frames, splat_scale, sharpen,
                 headlight_shading, opacity_threshold, background, render_style, camera_info=None):
    """RenderSplat.execute on one item, no background picture: (images [T, H, W, 3], masks [T, H, W])"""
    device = torch.device("cpu")
    bg = _hex_to_rgb(background)
    n_frames = abs(int(frames)) or 1
    orbit_dir = -1.0 if frames < 0 else 1.0
    xyz, rgb = positions.float(), (sh[:, 0, :].float() * _C0 + 0.5).clamp(0, 1)
    opacity, scale, rot = opacities.float().reshape(-1), scales.float(), rotations.float()
    if opacity_threshold > 0:
        keep = opacity >= opacity_threshold
        xyz, rgb, opacity, scale, rot = xyz[keep], rgb[keep], opacity[keep], scale[keep], rot[keep]
    base_cam = camera_info
    if base_cam is None:
        center = xyz.mean(0) if xyz.shape[0] else torch.zeros(3, device=device)
        extent = (_quantile((xyz - center).norm(dim=-1), 0.99).clamp_min(1e-4) if xyz.shape[0]
                  else torch.tensor(1.0, device=device))
        dist = float(extent / (math.tan(math.radians(35.0) / 2) * 0.9))
        base_cam = _orbit_camera_info(35.0, 30.0, dist, 35.0, center, device)
    imgs, masks = [], []
    for fr in range(n_frames):
        cam_fr = (base_cam if n_frames == 1
                  else _orbit_camera_info_yaw(base_cam, orbit_dir * 360.0 * fr / n_frames, device))
        img, mask = _render_gaussian(xyz, rgb, opacity, scale, rot, width, height, splat_scale, bg, cam_fr,
                                     sharpen=sharpen, headlight_shading=headlight_shading, render_style=render_style)
        imgs.append(img)
        masks.append(mask)
    return torch.stack(imgs), torch.stack(masks)


def create_camera_info(mode, target_x, target_y, target_z, roll, fov, zoom=1.0, camera_type="perspective"):
    """CreateCameraInfo.execute (orbit and look_at)"""
    dev = torch.device("cpu")
    kind = mode["mode"]
    target = [target_x, target_y, target_z]
    if kind == "orbit":
        y, p = math.radians(mode["yaw"]), math.radians(mode["pitch"])
        cy, sy, cp, sp = math.cos(y), math.sin(y), math.cos(p), math.sin(p)
        d = mode["distance"]
        position = [target_x + d * cp * sy, target_y + d * sp, target_z + d * cp * cy]
    else:
        position = [mode["position_x"], mode["position_y"], mode["position_z"]]
    return _lookat_camera_info(position, target, fov, dev, zoom=zoom, camera_type=camera_type, roll=roll)



