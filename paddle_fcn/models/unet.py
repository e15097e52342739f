"""U-Net (Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015), the other classic (docs/design.md#u-net).

Contracting path: per level two 3x3 convs, each followed by ReLU, then a 2x2 max pool
(stride 2); the channel count doubles at every level. Expanding path: a 2x2 transposed conv
(stride 2) that halves the channels, concatenation with the encoder features of the same
level, two 3x3 convs + ReLU. A 1x1 conv maps the ``width`` features to class scores.
``width=64, depth=4`` is the paper's net (64 ... 1024 channels, 23 convs).

Two deliberate departures, both for the package contract "any H x W in, H x W scores out":

* **Padded convs** (padding 1). The paper's unpadded convs lose 2 pixels per conv, so its
  572 x 572 input yields 388 x 388 scores, encoder maps must be cropped before concatenation,
  and a whole image needs the overlap-tile strategy with mirrored borders. With padding the
  feature maps of one level have the same size on both paths and no crop is needed; the input
  is zero-padded (bottom/right) to a multiple of ``2 ** depth`` so every pool halves exactly,
  and the scores are cropped back to H x W.
* **Batch norm** after each 3x3 conv (``batch_norm=True``), as in the U-Net implementation
  this project started from (``conv2d_bn`` / ``deconv2d_bn``; docs/design.md#u-net): U-Net
  has no pretrained part and trains from scratch, where BN tolerates the large learning
  rates of the FCN recipe. ``batch_norm=False`` gives the
  paper's plain conv + ReLU. The up-convs stay linear, as in the paper.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_fcn.errors import check_num_classes
from paddle_fcn.models.checks import positive_int
from paddle_fcn.normalization import IMAGENET

__all__ = ["DoubleConv", "UNetEncoder", "UNet", "unet"]


class DoubleConv(nn.Sequential):
    """(3x3 conv, padding 1 [, BN], ReLU) x 2: ``N x in_ch x H x W`` -> ``N x out_ch x H x W``.

    He initialisation, the paper's std sqrt(2 / N) with N the inputs of one unit (9 * in_ch).
    """

    def __init__(self, in_ch, out_ch, batch_norm=True):
        layers = []
        for c_in in (in_ch, out_ch):
            layers.append(nn.Conv2D(c_in, out_ch, 3, padding=1,
                                    weight_attr=nn.initializer.KaimingNormal(),
                                    bias_attr=False if batch_norm else None))  # BN has the bias
            if batch_norm:
                layers.append(nn.BatchNorm2D(out_ch))
            layers.append(nn.ReLU())
        super().__init__(*layers)


class UNetEncoder(nn.Layer):
    """The contracting path: ``depth + 1`` levels, a 2x2 max pool between consecutive ones.

    ``forward(x)`` with H, W multiples of ``2 ** depth`` returns ``{"level1": 1/1, "level2": 1/2,
    ..., f"level{depth + 1}": 1/2**depth}``; level i has ``width * 2 ** (i - 1)`` channels
    (``out_channels``). The last level is the bottom of the U (1024 channels in the paper).
    """

    def __init__(self, width=64, depth=4, batch_norm=True):
        super().__init__()
        self.depth, self.width = depth, width
        self.names = tuple(f"level{i + 1}" for i in range(depth + 1))
        self.out_channels = {name: width * 2 ** i for i, name in enumerate(self.names)}
        self.normalization = dict(IMAGENET)
        channels = [3] + [self.out_channels[n] for n in self.names]
        self.levels = nn.LayerList(
            [DoubleConv(channels[i], channels[i + 1], batch_norm) for i in range(depth + 1)]
        )
        self.pool = nn.MaxPool2D(kernel_size=2, stride=2)

    def forward(self, x):
        features = {}
        for i, (name, level) in enumerate(zip(self.names, self.levels)):
            if i > 0:
                x = self.pool(x)  # 1/2**i
            x = level(x)
            features[name] = x
        return features


class UNet(nn.Layer):
    """U-Net: ``N x 3 x H x W`` float32 (normalised RGB) -> ``N x num_classes x H x W`` logits
    for any H, W >= 1.

    ``backbone`` is the contracting path (``UNetEncoder``); the expanding path is ``up[k]``
    (2x2 transposed conv, stride 2, from level k+2 to level k+1) and ``decode[k]`` (two 3x3
    convs after concatenating encoder level k+1), indexed so that ``k = 0`` is the top;
    ``score`` is the final 1x1 conv. The score layer starts at zero, so a fresh model outputs
    zeros (uniform class probabilities), as FCN's score layers do.
    """

    def __init__(self, num_classes, width=64, depth=4, batch_norm=True):
        super().__init__()
        check_num_classes(num_classes)
        positive_int(width, "U-Net width")
        positive_int(depth, "U-Net depth")
        self.num_classes, self.depth = num_classes, depth
        self.backbone = UNetEncoder(width, depth, batch_norm)
        self.normalization = self.backbone.normalization
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.up = nn.LayerList([
            nn.Conv2DTranspose(chans[k + 1], chans[k], 2, stride=2,
                               weight_attr=nn.initializer.KaimingNormal(fan_in=chans[k + 1]))
            for k in range(depth)
        ])
        # input of decode[k]: up-conv output (chans[k]) concatenated with encoder (chans[k])
        self.decode = nn.LayerList(
            [DoubleConv(2 * chans[k], chans[k], batch_norm) for k in range(depth)]
        )
        self.score = nn.Conv2D(width, num_classes, 1,
                               weight_attr=nn.initializer.Constant(0.0),
                               bias_attr=nn.initializer.Constant(0.0))

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"U-Net expects N x 3 x H x W input, got shape {list(x.shape)}")
        height, width = x.shape[2], x.shape[3]
        multiple = 2 ** self.depth
        pad_h, pad_w = -height % multiple, -width % multiple
        if pad_h or pad_w:
            x = F.pad(x, [0, pad_w, 0, pad_h])  # [left, right, top, bottom]
        features = self.backbone(x)
        names = self.backbone.names
        y = features[names[-1]]  # 1/2**depth, the bottom of the U
        for k in reversed(range(self.depth)):
            y = self.up[k](y)  # 1/2**k
            y = paddle.concat([features[names[k]], y], axis=1)
            y = self.decode[k](y)
        scores = self.score(y)  # 1/1
        return scores[:, :, :height, :width]


def unet(num_classes, width=64, depth=4, batch_norm=True):
    """U-Net builder for ``build_model('unet', ...)``; trained from scratch (no pretrained)."""
    return UNet(num_classes, width=width, depth=depth, batch_norm=batch_norm)
