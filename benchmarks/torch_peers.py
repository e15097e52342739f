"""PyTorch twins of paddle_fcn's FCN-8s VGG16, FCN-8s ResNet18/34 and U-Net, for
``bench_train.py`` only (torch is an optional benchmark peer, never a requirement).

Each twin has the same layers, shapes and parameter names as the Paddle model built by
``paddle_fcn.models.build_model(name, 21)`` in its default (aligned) geometry, and
``copy_weights`` loads the Paddle model's values into it, so both sides start from the same
numbers (parameter counts are equal by construction; ``copy_weights`` raises if not):

* VGG16: conv1_1 ... conv5_3 (3x3, pad 1) + ReLU, 2x2 max pools, fc6 (7x7 conv, pad 3, 4096),
  fc7 (1x1, 4096), ReLU + dropout 0.5 after each.
* ResNet-18/34: conv1 7x7/2, BN, ReLU, 3x3/2 max pool, BasicBlocks with 1x1 projection
  shortcuts, no bias in convs (BN has it).
* FCN-8s head: input zero-padded to a multiple of 32; score_fr / score_pool4 / score_pool3
  1x1 convs; upscore2 and upscore_pool4 learnable transposed convs (4/2/1 for VGG's
  cell-centre grid, 3/2/(1, 0) i.e. padding 1 + output_padding 1 for ResNet's sample grid);
  upscore8 the frozen bilinear upsampler in separable form ``R @ x @ C.T`` with R, C built
  each forward exactly as ``paddle_fcn.upsample.BilinearUpsample._matrix`` does.
* U-Net (width 64, depth 4, batch norm): DoubleConv levels, 2x2 max pools, 2x2/2 transposed
  up-convs with bias, concat [encoder, up], 1x1 score.

What differs: the frameworks' kernels (PyTorch: its own oneDNN/mkldnn build and OpenMP;
Paddle: its CPU kernels and bundled MKL), the RNG streams of dropout, and PyTorch's BN
momentum convention (0.1 here = Paddle's 0.9). Nothing else.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

VGG16_SPEC = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"]


class VGG16Backbone(nn.Module):
    def __init__(self, dropout=0.5):
        super().__init__()
        self._trunk, channels, block, index = [], 3, 1, 1
        for spec in VGG16_SPEC:
            if spec == "M":
                name, layer = f"pool{block}", nn.MaxPool2d(2, 2)
                block, index = block + 1, 1
            else:
                name, layer = f"conv{block}_{index}", nn.Conv2d(channels, spec, 3, padding=1)
                channels, index = spec, index + 1
            self.add_module(name, layer)
            self._trunk.append(name)
        self.fc6 = nn.Conv2d(channels, 4096, 7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop6, self.drop7 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.skip_names, self.out_channels = ("pool3", "pool4", "fc7"), (256, 512, 4096)
        self.sample_aligned = False

    def forward(self, x):
        features = {}
        for name in self._trunk:
            layer = getattr(self, name)
            if name.startswith("pool"):
                x = features[name] = layer(x)
            else:
                x = F.relu(layer(x))
        x = self.drop6(F.relu(self.fc6(x)))
        features["fc7"] = self.drop7(F.relu(self.fc7(x)))
        return features


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class ResNetBackbone(nn.Module):
    def __init__(self, blocks, width=64):
        super().__init__()
        self._inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i, n in enumerate(blocks):
            self.add_module(f"layer{i + 1}", self._make_layer(width * 2 ** i, n, 1 if i == 0 else 2))
        self.skip_names = ("layer2", "layer3", "layer4")
        self.out_channels = (width * 2, width * 4, width * 8)
        self.sample_aligned = True

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self._inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self._inplanes, planes, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self._inplanes, planes, stride, downsample)]
        self._inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        out = {}
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = out[name] = getattr(self, name)(x)
        return out


class LearnedUp2(nn.Module):
    """Paddle's ``BilinearUpsample(learnable=True)`` x2: the transposed conv is ``self.up``."""

    def __init__(self, channels, sample_aligned):
        super().__init__()
        kernel, pad, extra = (3, 1, 1) if sample_aligned else (4, 1, 0)
        self.up = nn.ConvTranspose2d(channels, channels, kernel, 2, pad, output_padding=extra,
                                     bias=False)

    def forward(self, x):
        return self.up(x)


class FrozenBilinear(nn.Module):
    """The frozen x``factor`` bilinear upsampler as two matrix products (no parameter)."""

    def __init__(self, factor, sample_aligned):
        super().__init__()
        self.kernel = 2 * factor - 1 if sample_aligned else 2 * factor
        self.stride, self.lead = factor, (factor - 1 if sample_aligned else factor // 2)
        self.hat = (self.kernel + 1) // 2
        self.centre = self.hat - 1 if self.kernel % 2 else self.hat - 0.5

    def _matrix(self, length, count):
        out = torch.arange(count, dtype=torch.float32) + float(self.lead - self.centre)
        taps = out.unsqueeze(1) - self.stride * torch.arange(length, dtype=torch.float32)
        return F.relu(1 - taps.abs() / self.hat)

    def forward(self, x, height, width):
        n, c, h, w = x.shape
        rows, cols = self._matrix(h, height), self._matrix(w, width)
        y = torch.matmul(torch.matmul(rows, x.reshape(-1, h, w)), cols.t())
        return y.reshape(n, c, height, width)


class FCN8s(nn.Module):
    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        c3, c4, c5 = backbone.out_channels
        sa = backbone.sample_aligned
        self.score_fr = nn.Conv2d(c5, num_classes, 1)
        self.upscore2 = LearnedUp2(num_classes, sa)
        self.score_pool4 = nn.Conv2d(c4, num_classes, 1)
        self.upscore_pool4 = LearnedUp2(num_classes, sa)
        self.score_pool3 = nn.Conv2d(c3, num_classes, 1)
        self.upscore8 = FrozenBilinear(8, sa)

    def forward(self, x):
        height, width = x.shape[2], x.shape[3]
        x = F.pad(x, [0, -width % 32, 0, -height % 32])
        pool3, pool4, top = (self.backbone(x)[n] for n in self.backbone.skip_names)
        score = self.upscore2(self.score_fr(top))
        h, w = score.shape[2], score.shape[3]
        score = score + self.score_pool4(pool4)[:, :, :h, :w]
        score = self.upscore_pool4(score)
        h, w = score.shape[2], score.shape[3]
        score = score + self.score_pool3(pool3)[:, :, :h, :w]
        return self.upscore8(score, height, width)


def _double_conv(in_ch, out_ch):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(),
                         nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU())


class UNetEncoder(nn.Module):
    def __init__(self, chans):
        super().__init__()
        ins = [3] + chans[:-1]
        self.levels = nn.ModuleList([_double_conv(i, o) for i, o in zip(ins, chans)])
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x):
        features = []
        for i, level in enumerate(self.levels):
            x = level(self.pool(x) if i else x)
            features.append(x)
        return features


class UNet(nn.Module):
    def __init__(self, num_classes, width=64, depth=4):
        super().__init__()
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.depth = depth
        self.backbone = UNetEncoder(chans)
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[k + 1], chans[k], 2, 2)
                                 for k in range(depth)])
        self.decode = nn.ModuleList([_double_conv(2 * chans[k], chans[k]) for k in range(depth)])
        self.score = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        height, width = x.shape[2], x.shape[3]
        m = 2 ** self.depth
        x = F.pad(x, [0, -width % m, 0, -height % m])
        features = self.backbone(x)
        y = features[-1]
        for k in reversed(range(self.depth)):
            y = self.decode[k](torch.cat([features[k], self.up[k](y)], 1))
        return self.score(y)[:, :, :height, :width]


PEERS = {
    "fcn8s_vgg16": lambda n: FCN8s(VGG16Backbone(), n),
    "fcn8s_resnet18": lambda n: FCN8s(ResNetBackbone((2, 2, 2, 2)), n),
    "fcn8s_resnet34": lambda n: FCN8s(ResNetBackbone((3, 4, 6, 3)), n),
    "unet": lambda n: UNet(n),
}

# Paddle state-dict suffix -> torch's; torch's num_batches_tracked has no Paddle counterpart
_RENAME = {"_mean": "running_mean", "_variance": "running_var"}


def copy_weights(paddle_model, torch_model):
    """Load every parameter and BN statistic of ``paddle_model`` into ``torch_model`` (same
    names, same layouts); raises ``ValueError`` naming the first key that does not match."""
    src = {}
    for key, value in paddle_model.state_dict().items():
        head, _, last = key.rpartition(".")
        src[f"{head}.{_RENAME.get(last, last)}"] = value.numpy()
    dst = {k: v for k, v in torch_model.state_dict().items()
           if not k.endswith("num_batches_tracked")}
    if set(src) != set(dst):
        diff = sorted(set(src) ^ set(dst))
        raise ValueError(f"paddle and torch models differ in keys, e.g. {diff[:4]}")
    for key, tensor in dst.items():
        if tuple(tensor.shape) != src[key].shape:
            raise ValueError(f"{key}: paddle {src[key].shape}, torch {tuple(tensor.shape)}")
        tensor.copy_(torch.from_numpy(np.ascontiguousarray(src[key])))


def count_parameters(torch_model):
    """Number of trainable values."""
    return sum(p.numel() for p in torch_model.parameters() if p.requires_grad)
