"""VGG16 (Simonyan & Zisserman, ICLR 2015) as the FCN trunk, and FC -> conv conversion.

FCN (Long, Shelhamer, Darrell, CVPR 2015, §3.1) keeps VGG16's convolutions and recasts its
fully connected layers as convolutions whose kernels cover their whole input
(docs/design.md#fully-connected-layers-as-convolutions):
fc6 (25088 -> 4096 on a 7 x 7 x 512 pool5) is a 7 x 7 conv with 4096 outputs, fc7 a 1 x 1
conv. ``VGG16Backbone`` is the trunk of the FCN models with the paper's layer names;
``convolutionalize`` turns a ``paddle.vision.models.vgg16()`` classifier into a fully
convolutional net (``models/convolutional.py``). Both use ``fc_to_conv`` for the
weight conversion.
"""
import os

import numpy as np
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_fcn.errors import WeightsError
from paddle_fcn.models.caffe import read_caffemodel
from paddle_fcn.models.checks import positive_int
from paddle_fcn.models.layers import BiasConv2D
from paddle_fcn.models.state_dict import load_weights
from paddle_fcn.models.origin import read_weights
from paddle_fcn.normalization import CAFFE, IMAGENET

__all__ = ["VGG16_SPEC", "GEOMETRIES", "FC6_KERNEL", "VGG16Backbone", "fc_to_conv",
           "imagenet_to_trunk", "caffe_vgg16_to_trunk", "trunk_layer_names"]

# torchvision/paddle.vision "D" configuration: channels of each 3x3 conv, "M" = 2x2 max pool.
VGG16_SPEC = [
    64, 64, "M",  # conv1_1, conv1_2, pool1: 1/2
    128, 128, "M",  # conv2_x, pool2: 1/4
    256, 256, 256, "M",  # conv3_x, pool3: 1/8
    512, 512, 512, "M",  # conv4_x, pool4: 1/16
    512, 512, 512, "M",  # conv5_x, pool5: 1/32
]
GEOMETRIES = ("aligned", "caffe")
FC6_KERNEL = 7  # pool5 of a 224 x 224 ImageNet crop is 7 x 7
CAFFE_INPUT_PAD = 100  # conv1_1 padding of the reference nets (fcn.berkeleyvision.org)


def _he_init():
    # He et al. variance for ReLU nets; uniform rather than normal because drawing fc6's 102 M
    # normal samples is slow (docs/performance.md#building-vgg16). Irrelevant once ImageNet
    # weights load.
    return nn.initializer.KaimingUniform(nonlinearity="relu")


class VGG16Backbone(nn.Layer):
    """VGG16 conv1_1 ... pool5, then fc6 (7 x 7 conv, 4096) and fc7 (1 x 1 conv, 4096), each
    followed by ReLU and dropout. Follows the Backbone contract of docs/architecture.md.

    ``forward(x)``: ``N x 3 x H x W`` -> ``{"pool1": 1/2, ..., "pool5": 1/32, "fc7": 1/32}``
    (``fc7`` has 4096 channels). Two geometries:

    * ``"aligned"`` (the blog's): 3 x 3 convs padded 1, floor-mode pools, fc6 padded 3, so for
      H, W multiples of 32 (the FCN head pads its input to that) poolk is exactly H / 2**k and
      fc7 is H / 32.
    * ``"caffe"`` (the reference nets): conv1_1 padded 100 so that any input, even 1 x 1, still
      leaves a 7 x 7 pool5 for the unpadded fc6; ceil-mode pools as in caffe. The FCN head
      crops the result back with offsets computed from ``path_to``.
    """

    skip_names = ("pool3", "pool4", "fc7")  # 1/8, 1/16, 1/32

    def __init__(self, geometry="aligned", dropout=0.5, width=64):
        super().__init__()
        positive_int(width, "VGG16 width (64: VGG16)")
        if geometry not in GEOMETRIES:
            raise ValueError(f"VGG16 geometry must be one of {GEOMETRIES}, got {geometry!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0 <= dropout < 1:
            raise ValueError(f"VGG16 dropout must be a probability in [0, 1), got {dropout!r}")
        caffe = geometry == "caffe"
        self.geometry = geometry
        self.normalization = dict(IMAGENET)
        self.out_channels = {}
        self._trunk = []  # conv1_1 ... pool5 in order
        channels, block, index = 3, 1, 1
        fc_channels = 64 * width  # 4096; width < 64 only for tests and small experiments
        for spec in VGG16_SPEC:
            if spec == "M":
                name = f"pool{block}"
                layer = nn.MaxPool2D(2, stride=2, ceil_mode=caffe)  # 1/2**block
                self.out_channels[name] = channels
                block, index = block + 1, 1
            else:
                name = f"conv{block}_{index}"
                pad = CAFFE_INPUT_PAD if caffe and name == "conv1_1" else 1
                out = spec * width // 64
                layer = BiasConv2D(channels, out, 3, padding=pad, weight_attr=_he_init())
                channels, index = out, index + 1
            self.add_sublayer(name, layer)
            self._trunk.append(name)
        self.fc6 = BiasConv2D(channels, fc_channels, FC6_KERNEL,
                              padding=0 if caffe else FC6_KERNEL // 2,
                              weight_attr=_he_init())  # 1/32
        self.drop6 = nn.Dropout(dropout)
        self.fc7 = BiasConv2D(fc_channels, fc_channels, 1, weight_attr=_he_init())  # 1/32
        self.drop7 = nn.Dropout(dropout)
        self.out_channels.update(fc6=fc_channels, fc7=fc_channels)

    def forward(self, x):
        features = {}
        for name in self._trunk:  # conv1_1 ... pool5; pool k is 1/2**k
            layer = getattr(self, name)
            if name.startswith("pool"):
                x = features[name] = layer(x)
            else:
                x = F.relu(layer(x))
        x = self.drop6(F.relu(self.fc6(x)))  # 1/32
        features["fc7"] = self.drop7(F.relu(self.fc7(x)))  # 1/32
        return features

    def path_to(self, name):
        """The layers (Conv2D / MaxPool2D objects) from the input to feature ``name``, in order;
        the FCN head reads their kernel/stride/padding to compute its crop offsets."""
        names = self._trunk + ["fc6", "fc7"]
        if name not in names:
            raise KeyError(f"VGG16Backbone has no feature {name!r}; known: {', '.join(names)}")
        return [getattr(self, n) for n in names[: names.index(name) + 1]]

    def load_imagenet(self, path):
        """Load ImageNet VGG16 weights into conv1_1 ... fc7 and set ``normalization`` to
        theirs: ``paddle.vision.models.vgg16`` ``.pdparams`` or a torchvision ``.pth`` (ImageNet
        normalisation; pytorch-fcn's ``vgg16_from_caffe.pth``, same keys, Caffe's), or Caffe's
        ``VGG_ILSVRC_16_layers.caffemodel`` (``caffe_vgg16_to_trunk``). The 1000-way classifier
        is not used. Returns the ``LoadReport`` (also kept as ``imagenet_report``); raises
        ``WeightsError`` naming the file and key for anything that does not fit."""
        if os.fspath(path).lower().endswith(".caffemodel"):
            state, normalization = caffe_vgg16_to_trunk(path), dict(CAFFE)
        else:
            state, normalization = read_weights(path)
            state = imagenet_to_trunk(state, path)
        report = load_weights(self, state, path)
        self.normalization = report.normalization = normalization
        self.imagenet_report = report
        return report


def _spec_conv_names():
    """(our name, paddle.vision ``features`` index) for every conv of ``VGG16_SPEC``: each conv
    is followed by a ReLU (two entries of ``features``), each "M" is one MaxPool2D."""
    pairs, index, block, conv = [], 0, 1, 1
    for width in VGG16_SPEC:
        if width == "M":
            index, block, conv = index + 1, block + 1, 1
        else:
            pairs.append((f"conv{block}_{conv}", index))
            index, conv = index + 2, conv + 1
    return pairs


def fc_to_conv(weight, in_channels, kernel, what="fully connected layer"):
    """A Paddle ``Linear`` weight ``[in_channels * kernel * kernel, out]`` as the equivalent conv
    weight ``[out, in_channels, kernel, kernel]``.

    ``Linear`` acts on the flattened ``C x k x k`` input (channel-major, as ``paddle.flatten``
    of NCHW), so row ``c * k * k + i * k + j`` of the weight multiplies input ``(c, i, j)``.
    """
    weight = np.asarray(weight)
    expected = in_channels * kernel * kernel
    if weight.ndim != 2 or weight.shape[0] != expected:
        raise ValueError(
            f"{what}: weight of shape {list(weight.shape)} cannot act on a {in_channels} x "
            f"{kernel} x {kernel} input (expected [{expected}, out], Paddle Linear layout)"
        )
    return np.ascontiguousarray(weight.T.reshape(weight.shape[1], in_channels, kernel, kernel))


def imagenet_to_trunk(state, source):
    """Translate a paddle.vision VGG16 state dict (``features.N.*``, ``classifier.{0,3,6}.*``)
    to ``VGG16Backbone`` keys: features.N -> conv1_1 ... conv5_3, classifier.0 -> fc6 (as a
    7 x 7 conv), classifier.3 -> fc7 (1 x 1); classifier.6 (the 1000-way layer) is dropped.
    Raises ``WeightsError`` naming ``source`` for a missing key or a key it does not know."""
    state = dict(state)
    out = {}

    def take(key):
        if key not in state:
            raise WeightsError(
                f"{source} is not a paddle.vision/torchvision VGG16 state dict: no {key!r} "
                f"(a vgg16_bn file has different indices)"
            )
        return state.pop(key)

    for name, index in _spec_conv_names():
        out[f"{name}.weight"] = take(f"features.{index}.weight")
        out[f"{name}.bias"] = take(f"features.{index}.bias")
    for name, index, in_channels, kernel in (("fc6", 0, 512, FC6_KERNEL), ("fc7", 3, 4096, 1)):
        key = f"classifier.{index}.weight"
        try:
            out[f"{name}.weight"] = fc_to_conv(take(key), in_channels, kernel, f"{source}: {key}")
        except ValueError as e:
            raise WeightsError(str(e)) from None
        out[f"{name}.bias"] = take(f"classifier.{index}.bias")
    unknown = sorted(k for k in state if not k.startswith("classifier.6."))
    if unknown:
        raise WeightsError(f"{source}: keys not in a VGG16 classifier: {', '.join(unknown[:5])}")
    return out


def trunk_layer_names():
    """conv1_1 ... conv5_3, fc6, fc7: the trunk layers of VGG16 as ``VGG16Backbone`` and the
    reference nets' files (Caffe, pytorch-fcn) name them."""
    return [name for name, _ in _spec_conv_names()] + ["fc6", "fc7"]


def caffe_vgg16_to_trunk(path):
    """``VGG16Backbone`` state dict from Caffe's ImageNet VGG16 (``VGG_ILSVRC_16_layers``,
    V1 layout): conv1_1 ... conv5_3 as they are, fc6 ``[4096, 25088]`` and fc7 ``[4096, 4096]``
    as ``[4096, 512, 7, 7]`` / ``[4096, 4096, 1, 1]`` convolutions; fc8 (1000 classes) is
    dropped. ``WeightsError`` names the file and layer for anything missing or unknown."""
    layers = {name: layer.blobs for name, layer in read_caffemodel(path).items()}
    layers.pop("fc8", None)
    state = {}
    for name in trunk_layer_names():
        blobs = layers.pop(name, None)
        if blobs is None or len(blobs) != 2:
            raise WeightsError(f"{path} is not Caffe's VGG16: layer {name!r} is "
                               f"{'missing' if blobs is None else f'{len(blobs)} blobs'}")
        weight, bias = (np.asarray(b, np.float32) for b in blobs)
        if name.startswith("fc"):
            kernel = FC6_KERNEL if name == "fc6" else 1
            weight = weight.reshape(weight.shape[0], -1, kernel, kernel)
        state[f"{name}.weight"], state[f"{name}.bias"] = weight, bias.reshape(-1)
    if layers:
        raise WeightsError(f"{path} is not Caffe's VGG16: it also has layer(s) "
                           f"{', '.join(sorted(layers))}")
    return state
