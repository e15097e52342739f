"""ResNet-18/34/50 backbones (He et al., "Deep Residual Learning for Image Recognition",
CVPR 2016) and the FCN-32s/16s/8s builders on top of them.

The blog this project follows (docs/design.md#resnet-backbone) replaces VGG16 by ResNet34:
the FCN head scores the last stage (``layer4``, 1/32, the counterpart of VGG's fc7) and fuses
``layer3`` (1/16, pool4's place) and ``layer2`` (1/8, pool3's place). The global pool and
``fc`` classifier are dropped.

Parameter names equal ``paddle.vision.models.resnet18/34/50`` (``conv1``, ``bn1``,
``layer1.0.conv1``, ..., ``layerN.0.downsample.0/1``) so Paddle model-zoo ``.pdparams`` load
key for key; torchvision files load after ``weights.from_torchvision``. ResNet-50 strides in
the 3x3 conv of its bottleneck (the "v1.5" layout both zoos use).

Grid: conv1 (7x7/2, pad 3), the max pool (3x3/2, pad 1) and the strided 3x3 (pad 1) / 1x1
(pad 0) convs all centre output pixel x on input 2x, so layerN pixel x is image pixel
``stride * x`` (no half-pixel shift, unlike VGG's 2x2 pools); ``path_to`` exposes the layers so
the FCN head can pick its upsamplers from ``coord_map``.
"""
import paddle.nn as nn

from paddle_fcn.errors import WeightsError
from paddle_fcn.models.checks import positive_int
from paddle_fcn.models.coords import coord_map
from paddle_fcn.models.fcn import FCN
from paddle_fcn.models.state_dict import load_weights
from paddle_fcn.models.origin import read_weights
from paddle_fcn.normalization import IMAGENET

__all__ = [
    "BasicBlock", "BottleneckBlock", "ResNetBackbone", "RESNET_DEPTHS",
    "fcn32s_resnet18", "fcn16s_resnet18", "fcn8s_resnet18",
    "fcn32s_resnet34", "fcn16s_resnet34", "fcn8s_resnet34",
    "fcn32s_resnet50", "fcn16s_resnet50", "fcn8s_resnet50",
]


def _conv(in_ch, out_ch, kernel, stride=1, padding=0):
    # He init (fan_out, as torchvision) matters only when training from scratch (width != 64).
    init = nn.initializer.KaimingNormal(nonlinearity="relu", mode="fan_out")
    return nn.Conv2D(in_ch, out_ch, kernel, stride=stride, padding=padding,
                     weight_attr=init, bias_attr=False)  # the following BN has the bias


class BasicBlock(nn.Layer):
    """Two 3x3 convs with an identity shortcut (ResNet-18/34). ``N x inplanes x H x W`` ->
    ``N x planes x ceil(H/stride) x ceil(W/stride)``."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3, stride, 1)
        self.bn1 = nn.BatchNorm2D(planes)
        self.relu = nn.ReLU()
        self.conv2 = _conv(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2D(planes)
        self.downsample = downsample

    def main_path(self):
        """The convs of the residual branch, in order (for ``coord_map``)."""
        return [self.conv1, self.conv2]

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class BottleneckBlock(nn.Layer):
    """1x1 reduce, 3x3 (strided), 1x1 expand x4 with a shortcut (ResNet-50).
    ``N x inplanes x H x W`` -> ``N x 4*planes x ceil(H/stride) x ceil(W/stride)``."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 1)
        self.bn1 = nn.BatchNorm2D(planes)
        self.conv2 = _conv(planes, planes, 3, stride, 1)
        self.bn2 = nn.BatchNorm2D(planes)
        self.conv3 = _conv(planes, planes * self.expansion, 1)
        self.bn3 = nn.BatchNorm2D(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def main_path(self):
        """The convs of the residual branch, in order (for ``coord_map``)."""
        return [self.conv1, self.conv2, self.conv3]

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# depth -> (block, blocks per stage), as in Table 1 of the ResNet paper
RESNET_DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (BottleneckBlock, (3, 4, 6, 3)),
}


class ResNetBackbone(nn.Layer):
    """ResNet trunk returning its four stages by name (the FCN Backbone contract).

    ``forward(x)``: ``N x 3 x H x W`` -> ``{"layer1": 1/4, "layer2": 1/8, "layer3": 1/16,
    "layer4": 1/32}``; each map is ``ceil(H / stride) x ceil(W / stride)``, so exactly
    ``H / stride`` when H and W are multiples of 32 (what the FCN head's aligned geometry feeds).

    ``width`` is the channel count of ``conv1`` and ``layer1`` (stages have width x 1, 2, 4, 8,
    times 4 for ResNet-50). ImageNet weights exist only for the standard ``width=64``; smaller
    widths let an FCN train from scratch on a CPU in minutes.
    """

    skip_names = ("layer2", "layer3", "layer4")  # 1/8, 1/16, 1/32

    def __init__(self, depth=34, width=64):
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, got {depth!r}")
        positive_int(width, "ResNet width")
        block, blocks = RESNET_DEPTHS[depth]
        self.depth, self.width = depth, width
        self.normalization = dict(IMAGENET)
        self._inplanes = width

        self.conv1 = _conv(3, width, 7, stride=2, padding=3)  # 1/2
        self.bn1 = nn.BatchNorm2D(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)  # 1/4
        self.layer1 = self._make_layer(block, width, blocks[0], stride=1)  # 1/4
        self.layer2 = self._make_layer(block, width * 2, blocks[1], stride=2)  # 1/8
        self.layer3 = self._make_layer(block, width * 4, blocks[2], stride=2)  # 1/16
        self.layer4 = self._make_layer(block, width * 8, blocks[3], stride=2)  # 1/32
        self.out_channels = {
            f"layer{i + 1}": width * 2 ** i * block.expansion for i in range(4)
        }
        self._check_shortcuts()

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            # 1x1 projection shortcut where the shape changes (option B of the paper)
            downsample = nn.Sequential(
                _conv(self._inplanes, planes * block.expansion, 1, stride),
                nn.BatchNorm2D(planes * block.expansion),
            )
        layers = [block(self._inplanes, planes, stride, downsample)]
        self._inplanes = planes * block.expansion
        layers += [block(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _check_shortcuts(self):
        """Both branches of every block must put their output pixels at the same input
        positions, else the residual sum (and ``path_to``) would mix misaligned grids."""
        for stage in self.out_channels:
            for index, block in enumerate(getattr(self, stage)):
                shortcut = [] if block.downsample is None else [block.downsample[0]]
                main, short = coord_map(block.main_path()), coord_map(shortcut)
                if main != short:
                    raise ValueError(f"ResNet {stage}.{index}: residual branch maps to {main}, "
                                     f"shortcut to {short}; they cannot be summed")

    def path_to(self, name):
        """The layers (Conv2D / MaxPool2D objects) from the input to stage ``name`` along the
        residual branches, in order; ``coord_map`` of it is ``stride * x`` (layer2: 8x)."""
        if name not in self.out_channels:
            raise KeyError(f"ResNetBackbone has no feature {name!r}; known: "
                           f"{', '.join(self.out_channels)}")
        path = [self.conv1, self.maxpool]
        for stage in list(self.out_channels)[: list(self.out_channels).index(name) + 1]:
            for block in getattr(self, stage):
                path += block.main_path()
        return path

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # 1/4
        layer1 = self.layer1(x)  # 1/4
        layer2 = self.layer2(layer1)  # 1/8
        layer3 = self.layer3(layer2)  # 1/16
        layer4 = self.layer4(layer3)  # 1/32
        return {"layer1": layer1, "layer2": layer2, "layer3": layer3, "layer4": layer4}

    def load_imagenet(self, path):
        """Load ImageNet weights of ``paddle.vision``'s / torchvision's ResNet-{depth} from a
        local file and set ``normalization`` to the one the file was trained with
        (``origin.origin_normalization``: the one it stores, else ImageNet's); the ``fc.*``
        classifier is left unused (listed as unexpected in the report). Returns the
        ``LoadReport`` (also kept as ``imagenet_report``). Raises ``WeightsError`` for
        width != 64 or a file that does not fit (e.g. another depth).
        """
        if self.width != 64:
            raise WeightsError(
                f"ImageNet weights {path} need the standard ResNet width 64, "
                f"but this backbone was built with width={self.width}"
            )
        state, normalization = read_weights(path)
        report = load_weights(self, state, path, allow_unexpected=("fc.*",))
        self.normalization = report.normalization = normalization
        self.imagenet_report = report
        return report


def _fcn_resnet(variant, depth, num_classes, pretrained, learnable_upsample, width,
                learnable_skip_upsample):
    if pretrained is not None and width != 64:
        raise WeightsError(
            f"pretrained={pretrained!r} holds ImageNet weights for width 64; "
            f"width={width} can only be trained from scratch (pretrained=None)"
        )
    backbone = ResNetBackbone(depth, width)
    if pretrained is not None:
        backbone.load_imagenet(pretrained)
    return FCN(backbone, num_classes, variant, learnable_upsample=learnable_upsample,
               learnable_skip_upsample=learnable_skip_upsample)


_FUSION = {
    "32s": "layer4 scored and upsampled x32",
    "16s": "layer4 scores x2 + layer3 scores, upsampled x16",
    "8s": "the 16s sum x2 + layer2 scores, upsampled x8",
}


def _builder(variant, depth):
    """The ``fcn{variant}_resnet{depth}`` builder: same signature for all nine (the options
    ``build_model`` and the config validate against come from it)."""
    def build(num_classes, pretrained=None, learnable_upsample=False, width=64,
              learnable_skip_upsample=True):
        return _fcn_resnet(variant, depth, num_classes, pretrained, learnable_upsample, width,
                           learnable_skip_upsample)

    build.__name__ = build.__qualname__ = f"fcn{variant}_resnet{depth}"
    build.__doc__ = (f"FCN-{variant} on ResNet-{depth}: {_FUSION[variant]}. Options: see "
                     f"``FCN`` and ``ResNetBackbone``; ``pretrained`` needs width 64.")
    return build


fcn32s_resnet18, fcn16s_resnet18, fcn8s_resnet18 = (_builder(v, 18) for v in ("32s", "16s", "8s"))
fcn32s_resnet34, fcn16s_resnet34, fcn8s_resnet34 = (_builder(v, 34) for v in ("32s", "16s", "8s"))
fcn32s_resnet50, fcn16s_resnet50, fcn8s_resnet50 = (_builder(v, 50) for v in ("32s", "16s", "8s"))
