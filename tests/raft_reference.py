"""torchvision's RAFT-large (torchvision/models/optical_flow/raft.py, _utils.py), the model ComfyUI's
OpticalFlowLoader builds, written out with torch alone (torchvision is not installed) and sharing nothing with
nodes/motion/raft.py; and ComfyUI's RaftOpticalFlow call around it (comfy_extras/void_noise_warp.py)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def Conv2dNormActivation(cin, cout, norm_layer=None, kernel_size=3, stride=1, bias=None, activation_layer=nn.ReLU):
    padding = (kernel_size - 1) // 2
    if bias is None:
        bias = norm_layer is None
    layers = [nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=bias)]
    if norm_layer is not None:
        layers.append(norm_layer(cout))
    if activation_layer is not None:
        layers.append(activation_layer(inplace=True))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, *, norm_layer, stride=1):
        super().__init__()
        self.convnormrelu1 = Conv2dNormActivation(in_channels, out_channels, norm_layer=norm_layer, kernel_size=3,
                                                  stride=stride, bias=True)
        self.convnormrelu2 = Conv2dNormActivation(out_channels, out_channels, norm_layer=norm_layer, kernel_size=3,
                                                  bias=True)
        if stride == 1:
            self.downsample = nn.Identity()
        else:
            self.downsample = Conv2dNormActivation(in_channels, out_channels, norm_layer=norm_layer, kernel_size=1,
                                                   stride=stride, bias=True, activation_layer=None)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.convnormrelu2(self.convnormrelu1(x))
        return self.relu(self.downsample(x) + y)


class FeatureEncoder(nn.Module):
    def __init__(self, *, layers=(64, 64, 96, 128, 256), strides=(2, 1, 2, 2), norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.convnormrelu = Conv2dNormActivation(3, layers[0], norm_layer=norm_layer, kernel_size=7,
                                                 stride=strides[0], bias=True)
        self.layer1 = self._make_2_blocks(layers[0], layers[1], norm_layer, strides[1])
        self.layer2 = self._make_2_blocks(layers[1], layers[2], norm_layer, strides[2])
        self.layer3 = self._make_2_blocks(layers[2], layers[3], norm_layer, strides[3])
        self.conv = nn.Conv2d(layers[3], layers[4], kernel_size=1)

    def _make_2_blocks(self, cin, cout, norm_layer, first_stride):
        return nn.Sequential(ResidualBlock(cin, cout, norm_layer=norm_layer, stride=first_stride),
                             ResidualBlock(cout, cout, norm_layer=norm_layer, stride=1))

    def forward(self, x):
        return self.conv(self.layer3(self.layer2(self.layer1(self.convnormrelu(x)))))


class MotionEncoder(nn.Module):
    def __init__(self, *, in_channels_corr, corr_layers=(256, 192), flow_layers=(128, 64), out_channels=128):
        super().__init__()
        self.convcorr1 = Conv2dNormActivation(in_channels_corr, corr_layers[0], norm_layer=None, kernel_size=1)
        self.convcorr2 = Conv2dNormActivation(corr_layers[0], corr_layers[1], norm_layer=None, kernel_size=3)
        self.convflow1 = Conv2dNormActivation(2, flow_layers[0], norm_layer=None, kernel_size=7)
        self.convflow2 = Conv2dNormActivation(flow_layers[0], flow_layers[1], norm_layer=None, kernel_size=3)
        self.conv = Conv2dNormActivation(corr_layers[-1] + flow_layers[-1], out_channels - 2, norm_layer=None,
                                         kernel_size=3)

    def forward(self, flow, corr_features):
        corr = self.convcorr2(self.convcorr1(corr_features))
        flow_orig = flow
        flow = self.convflow2(self.convflow1(flow))
        return torch.cat([self.conv(torch.cat([corr, flow], dim=1)), flow_orig], dim=1)


class ConvGRU(nn.Module):
    def __init__(self, *, input_size, hidden_size, kernel_size, padding):
        super().__init__()
        self.convz = nn.Conv2d(hidden_size + input_size, hidden_size, kernel_size=kernel_size, padding=padding)
        self.convr = nn.Conv2d(hidden_size + input_size, hidden_size, kernel_size=kernel_size, padding=padding)
        self.convq = nn.Conv2d(hidden_size + input_size, hidden_size, kernel_size=kernel_size, padding=padding)

    def forward(self, h, x):
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class RecurrentBlock(nn.Module):
    def __init__(self, *, input_size, hidden_size, kernel_size=((1, 5), (5, 1)), padding=((0, 2), (2, 0))):
        super().__init__()
        self.convgru1 = ConvGRU(input_size=input_size, hidden_size=hidden_size, kernel_size=kernel_size[0],
                                padding=padding[0])
        self.convgru2 = ConvGRU(input_size=input_size, hidden_size=hidden_size, kernel_size=kernel_size[1],
                                padding=padding[1])
        self.hidden_size = hidden_size

    def forward(self, h, x):
        return self.convgru2(self.convgru1(h, x), x)


class FlowHead(nn.Module):
    def __init__(self, *, in_channels, hidden_size):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden_size, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_size, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x)))


class UpdateBlock(nn.Module):
    def __init__(self, *, motion_encoder, recurrent_block, flow_head):
        super().__init__()
        self.motion_encoder = motion_encoder
        self.recurrent_block = recurrent_block
        self.flow_head = flow_head
        self.hidden_state_size = recurrent_block.hidden_size

    def forward(self, hidden_state, context, corr_features, flow):
        motion_features = self.motion_encoder(flow, corr_features)
        x = torch.cat([context, motion_features], dim=1)
        hidden_state = self.recurrent_block(hidden_state, x)
        return hidden_state, self.flow_head(hidden_state)


class MaskPredictor(nn.Module):
    def __init__(self, *, in_channels, hidden_size, multiplier=0.25):
        super().__init__()
        self.convrelu = Conv2dNormActivation(in_channels, hidden_size, norm_layer=None, kernel_size=3)
        self.conv = nn.Conv2d(hidden_size, 8 * 8 * 9, 1, padding=0)
        self.multiplier = multiplier

    def forward(self, x):
        return self.multiplier * self.conv(self.convrelu(x))


def grid_sample(img, absolute_grid, mode="bilinear", align_corners=None):
    h, w = img.shape[-2:]
    xgrid, ygrid = absolute_grid.split([1, 1], dim=-1)
    xgrid = 2 * xgrid / (w - 1) - 1
    ygrid = 2 * ygrid / (h - 1) - 1
    return F.grid_sample(img, torch.cat([xgrid, ygrid], dim=-1), mode=mode, align_corners=align_corners)


def make_coords_grid(batch_size, h, w):
    coords = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    coords = torch.stack(coords[::-1], dim=0).float()
    return coords[None].repeat(batch_size, 1, 1, 1)


def upsample_flow(flow, up_mask):
    batch_size, _, h, w = flow.shape
    up_mask = torch.softmax(up_mask.view(batch_size, 1, 9, 8, 8, h, w), dim=2)
    upsampled_flow = F.unfold(8 * flow, kernel_size=3, padding=1).view(batch_size, 2, 9, 1, 1, h, w)
    upsampled_flow = torch.sum(up_mask * upsampled_flow, dim=2)
    return upsampled_flow.permute(0, 1, 4, 2, 5, 3).reshape(batch_size, 2, h * 8, w * 8)


class CorrBlock(nn.Module):
    def __init__(self, *, num_levels=4, radius=4):
        super().__init__()
        self.num_levels = num_levels
        self.radius = radius
        self.out_channels = num_levels * (2 * radius + 1) ** 2

    def build_pyramid(self, fmap1, fmap2):
        batch_size, num_channels, h, w = fmap1.shape
        corr = torch.matmul(fmap1.view(batch_size, num_channels, h * w).transpose(1, 2),
                            fmap2.view(batch_size, num_channels, h * w))
        corr_volume = (corr.view(batch_size, h, w, 1, h, w) / torch.sqrt(torch.tensor(num_channels)))
        corr_volume = corr_volume.reshape(batch_size * h * w, 1, h, w)
        self.corr_pyramid = [corr_volume]
        for _ in range(self.num_levels - 1):
            corr_volume = F.avg_pool2d(corr_volume, kernel_size=2, stride=2)
            self.corr_pyramid.append(corr_volume)

    def index_pyramid(self, centroids_coords):
        side = 2 * self.radius + 1
        di = torch.linspace(-self.radius, self.radius, side)
        dj = torch.linspace(-self.radius, self.radius, side)
        delta = torch.stack(torch.meshgrid(di, dj, indexing="ij"), dim=-1).view(1, side, side, 2)
        batch_size, _, h, w = centroids_coords.shape
        centroids_coords = centroids_coords.permute(0, 2, 3, 1).reshape(batch_size * h * w, 1, 1, 2)
        indexed_pyramid = []
        for corr_volume in self.corr_pyramid:
            sampling_coords = centroids_coords + delta
            indexed_pyramid.append(grid_sample(corr_volume, sampling_coords, align_corners=True,
                                               mode="bilinear").view(batch_size, h, w, -1))
            centroids_coords = centroids_coords / 2
        return torch.cat(indexed_pyramid, dim=-1).permute(0, 3, 1, 2).contiguous()


class RAFT(nn.Module):
    def __init__(self):
        super().__init__()
        self.feature_encoder = FeatureEncoder(norm_layer=nn.InstanceNorm2d)
        self.context_encoder = FeatureEncoder(norm_layer=nn.BatchNorm2d)
        self.corr_block = CorrBlock(num_levels=4, radius=4)
        motion_encoder = MotionEncoder(in_channels_corr=self.corr_block.out_channels)
        self.update_block = UpdateBlock(motion_encoder=motion_encoder,
                                        recurrent_block=RecurrentBlock(input_size=128 + 128, hidden_size=128),
                                        flow_head=FlowHead(in_channels=128, hidden_size=256))
        self.mask_predictor = MaskPredictor(in_channels=128, hidden_size=256, multiplier=0.25)

    def forward(self, image1, image2, num_flow_updates=12):
        batch_size, _, h, w = image1.shape
        fmaps = self.feature_encoder(torch.cat([image1, image2], dim=0))
        fmap1, fmap2 = torch.chunk(fmaps, chunks=2, dim=0)
        self.corr_block.build_pyramid(fmap1, fmap2)
        context_out = self.context_encoder(image1)
        hidden_state, context = torch.split(context_out, [128, context_out.shape[1] - 128], dim=1)
        hidden_state = torch.tanh(hidden_state)
        context = F.relu(context)
        coords0 = make_coords_grid(batch_size, h // 8, w // 8)
        coords1 = make_coords_grid(batch_size, h // 8, w // 8)
        flow_predictions = []
        for _ in range(num_flow_updates):
            corr_features = self.corr_block.index_pyramid(centroids_coords=coords1)
            flow = coords1 - coords0
            hidden_state, delta_flow = self.update_block(hidden_state, context, corr_features, flow)
            coords1 = coords1 + delta_flow
            up_mask = self.mask_predictor(hidden_state)
            flow_predictions.append(upsample_flow(flow=(coords1 - coords0), up_mask=up_mask))
        return flow_predictions


def raft_optical_flow(model, from_image, to_image, updates=12):
    """ComfyUI's RaftOpticalFlow.__call__ (CHW frames in 0..1 -> flow [2, H, W])."""
    _, h, w = from_image.shape

    def prep(image):
        new_h, new_w = (h // 8) * 8, (w // 8) * 8
        if (new_h, new_w) != (h, w):
            image = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
        return (image * 2 - 1)[None]
    with torch.no_grad():
        flow = model(prep(from_image), prep(to_image), updates)[-1][0]
        if flow.shape[-2:] != (h, w):
            flow = F.interpolate(flow[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    return flow
