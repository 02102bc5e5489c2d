"""ComfyUI's VOID pieces written out from its published code (comfy_extras/void_noise_warp.py, nodes_void.py),
sharing nothing with the modules tested: the noise warper (NoiseWarper / warp_state / regaussianize /
get_noise_from_video) with the flow handed in, and VOID_DDIM's loop. The draws use torch's global generator, as
ComfyUI's do."""
import torch
import torch.nn.functional as F
from einops import rearrange


def _torch_resize_chw(image, size, interp, copy=True):
    _, in_h, in_w = image.shape
    if isinstance(size, (int, float)) and not isinstance(size, bool):
        new_h = max(1, int(in_h * size))
        new_w = max(1, int(in_w * size))
    else:
        new_h, new_w = size
    if (new_h, new_w) == (in_h, in_w):
        return image.clone() if copy else image
    kwargs = {}
    if interp in ("bilinear", "bicubic"):
        kwargs["align_corners"] = False
    return F.interpolate(image[None], size=(new_h, new_w), mode=interp, **kwargs)[0]


def _torch_remap_relative(image, dx, dy, interp="bilinear"):
    _, h, w = image.shape
    x_abs = dx + torch.arange(w, device=dx.device, dtype=dx.dtype)
    y_abs = dy + torch.arange(h, device=dy.device, dtype=dy.dtype)[:, None]
    x_norm = (x_abs / (w - 1)) * 2 - 1
    y_norm = (y_abs / (h - 1)) * 2 - 1
    grid = torch.stack([x_norm, y_norm], dim=-1)[None].to(image.dtype)
    return F.grid_sample(image[None], grid, mode=interp, align_corners=True, padding_mode="zeros")[0]


def _torch_scatter_add_relative(image, dx, dy):
    in_c, in_h, in_w = image.shape
    x = dx.long() + torch.arange(in_w, device=dx.device, dtype=torch.long)
    y = dy.long() + torch.arange(in_h, device=dy.device, dtype=torch.long)[:, None]
    valid = ((y >= 0) & (y < in_h) & (x >= 0) & (x < in_w)).reshape(-1)
    indices = (y * in_w + x).reshape(-1)[valid]
    flat_image = rearrange(image, "c h w -> (h w) c")[valid]
    out = torch.zeros((in_h * in_w, in_c), dtype=image.dtype, device=image.device)
    out.index_add_(0, indices, flat_image)
    return rearrange(out, "(h w) c -> c h w", h=in_h, w=in_w)


def unique_pixels(image):
    _, h, w = image.shape
    flat = rearrange(image, "c h w -> (h w) c")
    unique_colors, inverse_indices, counts = torch.unique(flat, dim=0, return_inverse=True, return_counts=True,
                                                          sorted=False)
    return unique_colors, counts, rearrange(inverse_indices, "(h w) -> h w", h=h, w=w)


def sum_indexed_values(image, index_matrix):
    u = int(index_matrix.max().item()) + 1
    flat = rearrange(image, "c h w -> (h w) c")
    out = torch.zeros((u, flat.shape[1]), dtype=flat.dtype, device=flat.device)
    out.index_add_(0, index_matrix.view(-1), flat)
    return out


def indexed_to_image(index_matrix, unique_colors):
    h, w = index_matrix.shape
    return rearrange(unique_colors[index_matrix.view(-1)], "(h w) c -> c h w", h=h, w=w)


def regaussianize(noise):
    _, counts, index_matrix = unique_pixels(noise[:1])
    foreign_noise = torch.randn_like(noise)
    summed = sum_indexed_values(foreign_noise, index_matrix)
    meaned = indexed_to_image(index_matrix, summed / rearrange(counts, "u -> u 1"))
    zeroed_foreign = foreign_noise - meaned
    counts_image = indexed_to_image(index_matrix, rearrange(counts, "u -> u 1"))
    return noise / counts_image ** 0.5 + zeroed_foreign, counts_image


def xy_meshgrid_like_image(image):
    _, h, w = image.shape
    y, x = torch.meshgrid(torch.arange(h, dtype=image.dtype), torch.arange(w, dtype=image.dtype), indexing="ij")
    return torch.stack([x, y])


def warp_state(state, flow):
    xyoc, h, w = state.shape
    x_ch, y_ch, xy, xyw, w_ch = 0, 1, 2, 3, 2
    c = xyoc - xyw
    oc = xyoc - xy
    grid = xy_meshgrid_like_image(state)
    init = torch.empty_like(state)
    init[:xy] = 0
    init[w_ch] = 1
    init[-c:] = 0
    pre_expand = torch.empty_like(state)
    pre_expand[:xy] = _torch_remap_relative(state[:xy], -flow[0], -flow[1], "nearest")
    pre_expand[-oc:] = _torch_remap_relative(state[-oc:], -flow[0], -flow[1], "nearest")
    pre_expand[w_ch][pre_expand[w_ch] == 0] = 1
    pre_shrink = state.clone()
    pre_shrink[:xy] += flow
    pos = (grid + pre_shrink[:xy]).round()
    in_bounds = (pos[x_ch] >= 0) & (pos[x_ch] < w) & (pos[y_ch] >= 0) & (pos[y_ch] < h)
    pre_shrink = torch.where(~in_bounds[None], init, pre_shrink)
    scat_xy = pre_shrink[:xy].round()
    pre_shrink[:xy] -= scat_xy
    pre_shrink[:xy] = 0

    def scat(tensor):
        return _torch_scatter_add_relative(tensor, scat_xy[0], scat_xy[1])

    shrink_mask = scat(torch.ones(1, h, w, dtype=state.dtype)) > 0
    pre_expand = torch.where(shrink_mask, init, pre_expand)
    concat = torch.cat([pre_shrink, pre_expand], dim=2)
    concat[-c:], counts_image = regaussianize(concat[-c:])
    concat[w_ch] = concat[w_ch] / counts_image[0]
    concat[w_ch] = concat[w_ch].nan_to_num()
    pre_shrink, expand = torch.chunk(concat, chunks=2, dim=2)
    shrink = torch.empty_like(pre_shrink)
    shrink[w_ch] = scat(pre_shrink[w_ch][None])[0]
    shrink[:xy] = scat(pre_shrink[:xy] * pre_shrink[w_ch][None]) / shrink[w_ch][None]
    shrink[-c:] = scat(pre_shrink[-c:] * pre_shrink[w_ch][None]) / scat(pre_shrink[w_ch][None] ** 2).sqrt()
    output = torch.where(shrink_mask, shrink, expand)
    output[w_ch] = output[w_ch] / output[w_ch].mean()
    output[w_ch] += 1e-5
    output[w_ch] **= 0.9999
    return output


class NoiseWarper:
    def __init__(self, c, h, w):
        self.c, self.h, self.w = c, h, w
        noise = torch.randn(c, h, w)
        self._state = torch.cat([torch.zeros_like(noise[:1]), torch.zeros_like(noise[:1]), torch.ones_like(noise[:1]),
                                 noise])

    @property
    def noise(self):
        n = self._state[3:]
        weights = self._state[2:3]
        return n * weights / (weights ** 2).sqrt()

    def __call__(self, dx, dy):
        flow = torch.stack([dx, dy]).float()
        _, oflowh, ofloww = flow.shape
        flow = _torch_resize_chw(flow, (self.h, self.w), "bilinear", copy=True)
        flowh, floww = flow.shape[-2:]
        flow[0] *= flowh / oflowh
        flow[1] *= floww / ofloww
        self._state = warp_state(self._state, flow)
        return self


def get_noise_from_video(video_frames, raft, noise_channels=16, resize_frames=0.5, resize_flow=8,
                         downscale_factor=32):
    T = video_frames.shape[0]
    frames = video_frames.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    if resize_frames != 1.0:
        new_h = max(1, int(frames.shape[2] * resize_frames))
        new_w = max(1, int(frames.shape[3] * resize_frames))
        frames = F.interpolate(frames, size=(new_h, new_w), mode="area")
    _, _, H, W = frames.shape
    with torch.no_grad():
        warper = NoiseWarper(c=noise_channels, h=resize_flow * H, w=resize_flow * W)
        output = torch.empty((T, warper.h // downscale_factor, warper.w // downscale_factor, noise_channels))

        def downscale(noise_chw):
            return _torch_resize_chw(noise_chw, 1.0 / downscale_factor, "area", copy=False) * downscale_factor

        output[0] = downscale(warper.noise).permute(1, 2, 0)
        prev = frames[0]
        for i in range(1, T):
            curr = frames[i]
            flow = raft(prev, curr)
            warper(flow[0], flow[1])
            output[i] = downscale(warper.noise).permute(1, 2, 0)
            prev = curr
    return output


def void_ddim(model_wrap, sigmas, noise):
    """VOID_DDIM.sample: starts from the raw noise, DDIM in alpha = 1 / (1 + sigma^2)."""
    x = noise.to(torch.float32)
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        sigma_next = sigmas[i + 1]
        denoised = model_wrap(x, sigma)
        if sigma_next == 0:
            x = denoised
        else:
            alpha_t = 1.0 / (1.0 + sigma ** 2)
            alpha_prev = 1.0 / (1.0 + sigma_next ** 2)
            pred_eps = (x - (alpha_t ** 0.5) * denoised) / (1.0 - alpha_t) ** 0.5
            x = (alpha_prev ** 0.5) * denoised + (1.0 - alpha_prev) ** 0.5 * pred_eps
    return x


def valid_void_length(length):
    latent_t = ((length - 1) // 4) + 1
    if latent_t % 2 == 0:
        return length
    return (max(2, (latent_t // 2) * 2) - 1) * 4 + 1
