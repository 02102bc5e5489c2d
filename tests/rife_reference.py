"""A plain reference of the published RIFE 4.x networks, for tests only.

Transcribed release by release from the IFNet_HDv3.py files Practical-RIFE published with
each model (MIT licence, (c) 2021 Zhewei Huang; per-version copies as kept by vs-rife and
ComfyUI-Frame-Interpolation, both MIT): the modules carry the published attribute names, so
`RefIFNet(release).state_dict()` has exactly the keys and shapes of that release's file, and
`forward` follows the published control flow (including 4.0's batch-wide large-motion
restart). It shares no code with nodes.interpolate.ifnet, so the product's one
parameterised network is checked against an independent transcription of each release."""
import torch
import torch.nn as nn
import torch.nn.functional as F

# release: activation, body, head, head channels, encoder, widths, scales, ensemble supported
# encoder: None | ("seq2", hidden, out) | ("seq4", hidden, out) | ("head", hidden, out)
RELEASES = {
    "4.0": ("prelu", "plain+skip", "deconv", 5, None, (192, 128, 96, 64), (8, 4, 2, 1), True),
    "4.2": ("lrelu", "plain", "deconv", 5, None, (192, 128, 96, 64), (8, 4, 2, 1), True),
    "4.5": ("lrelu", "res", "shuffle", 5, None, (192, 128, 96, 64), (8, 4, 2, 1), True),
    "4.6": ("lrelu", "res", "shuffle", 6, None, (192, 128, 96, 64), (8, 4, 2, 1), True),
    "4.8": ("lrelu", "res", "shuffle", 6, ("seq2", 16, 4), (192, 128, 96, 64), (8, 4, 2, 1), True),
    "4.10": ("lrelu", "res", "shuffle", 6, ("seq4", 32, 8), (192, 128, 96, 64), (8, 4, 2, 1), True),
    "4.12.lite": ("lrelu", "res", "shuffle", 6, ("seq4", 32, 4), (128, 96, 64, 48), (8, 4, 2, 1), True),
    "4.15": ("lrelu", "res", "shuffle", 6, ("head", 32, 8), (192, 128, 96, 64), (8, 4, 2, 1), True),
    "4.17.lite": ("lrelu", "res", "shuffle", 6, ("head", 16, 4), (128, 96, 64, 48), (8, 4, 2, 1), True),
    "4.20": ("lrelu", "res", "shuffle", 6, ("head", 32, 8), (384, 192, 96, 48), (8, 4, 2, 1), True),
    "4.22": ("lrelu", "res", "shuffle", 13, ("head", 32, 8), (256, 192, 96, 48), (8, 4, 2, 1), False),
    "4.22.lite": ("lrelu", "res", "shuffle", 13, ("head", 16, 4), (192, 128, 64, 32), (8, 4, 2, 1), False),
    "4.26": ("lrelu", "res", "shuffle", 13, ("head", 16, 4), (192, 128, 96, 64, 32), (16, 8, 4, 2, 1), False),
    "4.25.lite": ("lrelu", "res", "shuffle", 13, ("head", 16, 4), (192, 128, 96, 64, 24), (32, 16, 8, 4, 1), False),
    "4.25.heavy": ("lrelu", "res", "shuffle", 13, ("head", 16, 4), (384, 256, 192, 128, 64), (16, 8, 4, 2, 1),
                   False),
    "4.26.heavy": ("lrelu", "res", "shuffle", 13, ("head", 16, 16), (192, 128, 96, 64, 32), (16, 8, 4, 2, 1),
                   False),
}
# The release families nodes.interpolate.rife_layouts names for each of the above.
FAMILY = {"4.0": "4.0-4.1", "4.2": "4.2-4.4", "4.5": "4.5", "4.6": "4.6", "4.8": "4.7-4.9", "4.10": "4.10-4.13",
          "4.12.lite": "4.10-4.13", "4.15": "4.14-4.20 / 4.24", "4.17.lite": "4.14-4.20 / 4.24",
          "4.20": "4.14-4.20 / 4.24", "4.22": "4.21-4.23", "4.22.lite": "4.21-4.23", "4.26": "4.25-4.26",
          "4.25.lite": "4.25-4.26", "4.25.heavy": "4.25-4.26", "4.26.heavy": "4.25-4.26"}


def ref_warp(inp, flow):
    n, _, h, w = flow.shape
    hor = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(n, -1, h, -1)
    ver = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(n, -1, -1, w)
    grid = torch.cat([hor, ver], 1)
    flow = torch.cat([flow[:, 0:1] / ((inp.shape[3] - 1.0) / 2.0), flow[:, 1:2] / ((inp.shape[2] - 1.0) / 2.0)], 1)
    g = (grid + flow).permute(0, 2, 3, 1)
    return F.grid_sample(inp, g, mode="bilinear", padding_mode="border", align_corners=True)


def conv(cin, cout, stride=1, act="lrelu"):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True),
                         nn.PReLU(cout) if act == "prelu" else nn.LeakyReLU(0.2, True))


class ResConv(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        return self.relu(self.conv(x) * self.beta + x)


class Head(nn.Module):
    def __init__(self, hidden, out):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, hidden, 3, 2, 1)
        self.cnn1 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn2 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(hidden, out, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


class IFBlock(nn.Module):
    def __init__(self, in_planes, c, act, body, head, head_ch):
        super().__init__()
        self.body, self.head = body, head
        self.conv0 = nn.Sequential(conv(in_planes, c // 2, 2, act), conv(c // 2, c, 2, act))
        if body == "res":
            self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
        else:
            self.convblock = nn.Sequential(*[conv(c, c, 1, act) for _ in range(8)])
        if head == "deconv":
            self.lastconv = nn.ConvTranspose2d(c, head_ch, 4, 2, 1)
        else:
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * head_ch, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x, flow=None, scale=1):
        x = F.interpolate(x, scale_factor=1. / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1. / scale, mode="bilinear", align_corners=False) * 1. / scale
            x = torch.cat((x, flow), 1)
        feat = self.conv0(x)
        if self.body == "plain+skip":
            feat = self.convblock(feat) + feat
        else:
            feat = self.convblock(feat)
        tmp = self.lastconv(feat)
        if self.head == "deconv":
            tmp = F.interpolate(tmp, scale_factor=scale * 2, mode="bilinear", align_corners=False)
            flow = tmp[:, :4] * scale * 2
        else:
            tmp = F.interpolate(tmp, scale_factor=scale, mode="bilinear", align_corners=False)
            flow = tmp[:, :4] * scale
        return flow, tmp[:, 4:5], tmp[:, 5:]


class RefIFNet(nn.Module):
    def __init__(self, release, shrink=1):
        """shrink: divide every block width by it (tests: same names, smaller tensors)."""
        super().__init__()
        act, body, head, head_ch, enc, widths, self.scales, self.can_ensemble = RELEASES[release]
        widths = [c // shrink for c in widths]
        self.release, self.has_feat, self.enc_out = release, head_ch == 13, enc[2] if enc else 0
        for i, c in enumerate(widths):
            if i == 0:
                cin = 7 + 2 * self.enc_out
            else:
                cin = 8 + 4 + 2 * self.enc_out + (8 if self.has_feat else 0)
            setattr(self, f"block{i}", IFBlock(cin, c, act, body, head, head_ch))
        self.n = len(widths)
        if enc and enc[0] == "seq2":
            self.encode = nn.Sequential(nn.Conv2d(3, enc[1], 3, 2, 1), nn.ConvTranspose2d(enc[1], enc[2], 4, 2, 1))
        elif enc and enc[0] == "seq4":
            self.encode = nn.Sequential(nn.Conv2d(3, enc[1], 3, 2, 1), nn.LeakyReLU(0.2, True),
                                        nn.Conv2d(enc[1], enc[1], 3, 1, 1), nn.LeakyReLU(0.2, True),
                                        nn.Conv2d(enc[1], enc[1], 3, 1, 1), nn.LeakyReLU(0.2, True),
                                        nn.ConvTranspose2d(enc[1], enc[2], 4, 2, 1))
        elif enc:
            self.encode = Head(enc[1], enc[2])
        self.old = enc is None   # 4.0-4.6: masks accumulate; no features

    def forward(self, img0, img1, timestep=0.5, scale=1.0, ensemble=False):
        scale_list = [s / scale for s in self.scales]
        img0, img1 = img0.clamp(0, 1), img1.clamp(0, 1)
        if not torch.is_tensor(timestep):
            timestep = (img0[:, :1].clone() * 0 + 1) * timestep
        else:
            timestep = timestep.view(-1, 1, 1, 1).repeat(1, 1, img0.shape[2], img0.shape[3])
        ensemble = ensemble and self.can_ensemble
        if not self.old:
            f0, f1 = self.encode(img0[:, :3]), self.encode(img1[:, :3])
        warped_img0, warped_img1 = img0, img1
        flow = mask = feat = None
        block = [getattr(self, f"block{i}") for i in range(self.n)]
        for i in range(self.n):
            if flow is None:
                if self.old:
                    flow, mask, _ = block[i](torch.cat((img0[:, :3], img1[:, :3], timestep), 1), None,
                                             scale=scale_list[i])
                    if ensemble:
                        f_, m_, _ = block[i](torch.cat((img1[:, :3], img0[:, :3], 1 - timestep), 1), None,
                                             scale=scale_list[i])
                        flow = (flow + torch.cat((f_[:, 2:4], f_[:, :2]), 1)) / 2
                        mask = (mask + (-m_)) / 2
                else:
                    flow, mask, feat = block[i](torch.cat((img0[:, :3], img1[:, :3], f0, f1, timestep), 1), None,
                                                scale=scale_list[i])
                    if ensemble:
                        f_, m_, _ = block[i](torch.cat((img1[:, :3], img0[:, :3], f1, f0, 1 - timestep), 1), None,
                                             scale=scale_list[i])
                        flow = (flow + torch.cat((f_[:, 2:4], f_[:, :2]), 1)) / 2
                        mask = (mask + (-m_)) / 2
            elif self.old:
                f0_, m0, _ = block[i](torch.cat((warped_img0[:, :3], warped_img1[:, :3], timestep, mask), 1), flow,
                                      scale=scale_list[i])
                if self.release == "4.0" and i == 1 and f0_[:, :2].abs().max() > 32 and f0_[:, 2:4].abs().max() > 32:
                    for k in range(self.n):
                        scale_list[k] *= 2
                    flow, mask, _ = block[0](torch.cat((img0[:, :3], img1[:, :3], timestep), 1), None,
                                             scale=scale_list[0])
                    warped_img0 = ref_warp(img0, flow[:, :2])
                    warped_img1 = ref_warp(img1, flow[:, 2:4])
                    f0_, m0, _ = block[i](torch.cat((warped_img0[:, :3], warped_img1[:, :3], timestep, mask), 1),
                                          flow, scale=scale_list[i])
                if ensemble:
                    f_, m_, _ = block[i](torch.cat((warped_img1[:, :3], warped_img0[:, :3], 1 - timestep, -mask), 1),
                                         torch.cat((flow[:, 2:4], flow[:, :2]), 1), scale=scale_list[i])
                    f0_ = (f0_ + torch.cat((f_[:, 2:4], f_[:, :2]), 1)) / 2
                    m0 = (m0 + (-m_)) / 2
                flow = flow + f0_
                mask = mask + m0
            else:
                wf0, wf1 = ref_warp(f0, flow[:, :2]), ref_warp(f1, flow[:, 2:4])
                parts = [warped_img0[:, :3], warped_img1[:, :3], wf0, wf1, timestep, mask]
                if self.has_feat:
                    parts.append(feat)
                fd, m0, feat = block[i](torch.cat(parts, 1), flow, scale=scale_list[i])
                if ensemble:
                    f_, m_, _ = block[i](torch.cat((warped_img1[:, :3], warped_img0[:, :3], wf1, wf0, 1 - timestep,
                                                    -mask), 1), torch.cat((flow[:, 2:4], flow[:, :2]), 1),
                                         scale=scale_list[i])
                    fd = (fd + torch.cat((f_[:, 2:4], f_[:, :2]), 1)) / 2
                    mask = (m0 + (-m_)) / 2
                else:
                    mask = m0
                flow = flow + fd
            warped_img0 = ref_warp(img0, flow[:, :2])
            warped_img1 = ref_warp(img1, flow[:, 2:4])
        mask = torch.sigmoid(mask)
        return warped_img0 * mask + warped_img1 * (1 - mask)

