"""A VGG classifier recast as a fully convolutional net (Long, Shelhamer, Darrell, CVPR 2015,
§3.1, Fig. 2; docs/design.md#fully-connected-layers-as-convolutions): ``convolutionalize``
turns a ``paddle.vision.models.vgg16()`` classifier's fc6 / fc7 / fc8 into convolutions with
its own weights (``vgg.fc_to_conv``), so that a larger image yields a dense map of class
scores.
"""
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_fcn.models.vgg import FC6_KERNEL, fc_to_conv

__all__ = ["ConvolutionalVGG", "convolutionalize"]


class ConvolutionalVGG(nn.Layer):
    """A VGG classifier recast as a fully convolutional net
    (docs/design.md#fully-connected-layers-as-convolutions); built by ``convolutionalize``.
    ``N x 3 x H x W`` -> ``N x K x (H//32 - 6) x (W//32 - 6)`` class scores
    (``H, W >= 224``)."""

    def __init__(self, features, fc6, fc7, fc8, dropout):
        super().__init__()
        self.features = features  # conv1_1 ... pool5, shared with the source classifier
        self.fc6 = fc6  # 7 x 7, unpadded
        self.fc7 = fc7  # 1 x 1
        self.fc8 = fc8  # 1 x 1, K classes
        self.drop6 = nn.Dropout(dropout)
        self.drop7 = nn.Dropout(dropout)

    def forward(self, x):
        return self.score(self.features(x))  # pool5 is 1/32

    def score(self, pool5):
        """fc6 ... fc8 on a pool5 map ``N x 512 x h x w`` -> ``N x K x (h-6) x (w-6)``."""
        if pool5.shape[2] < FC6_KERNEL or pool5.shape[3] < FC6_KERNEL:
            raise ValueError(
                f"pool5 is {pool5.shape[2]} x {pool5.shape[3]} but fc6 needs at least "
                f"{FC6_KERNEL} x {FC6_KERNEL}: the input must be at least 224 x 224"
            )
        x = self.drop6(F.relu(self.fc6(pool5)))  # 1/32
        x = self.drop7(F.relu(self.fc7(x)))  # 1/32
        return self.fc8(x)  # 1/32


def _conv_from_linear(linear, in_channels, kernel, what):
    weight = fc_to_conv(linear.weight.numpy(), in_channels, kernel, what)
    # Constant init, then set_value: Assign(...) of fc6's 102 M values is far slower
    # (docs/performance.md#building-vgg16).
    conv = nn.Conv2D(in_channels, weight.shape[0], kernel,
                     weight_attr=nn.initializer.Constant(0.0))
    conv.weight.set_value(weight)
    conv.bias.set_value(linear.bias.numpy())
    return conv


def convolutionalize(vgg):
    """Turn a ``paddle.vision.models.vgg16(num_classes=K)`` classifier into a fully
    convolutional net (``ConvolutionalVGG``): fc6 becomes an unpadded 7 x 7 conv, fc7 and fc8
    1 x 1 convs, with the classifier's weights; ``features`` is shared, not copied.

    The result maps ``N x 3 x H x W`` (H, W >= 224) to ``N x K x h x w`` score maps. At
    224 x 224 the 1 x 1 map is the classifier's logits. At 384 x 384 pool5 is 12 x 12 and the
    map is 6 x 6 ((12 - 7) / 1 + 1): cell (i, j) equals the FC layers applied to the 7 x 7
    pool5 window at (i, j), i.e. the classifier run on the 224 x 224 image window at
    (32 i, 32 j) (stride 32), all in one pass that shares the convolutions of overlapping
    windows. It is not bit-equal to cropping that window and classifying it: the crop's convs
    see zero padding at the crop border where the full image has real neighbours, so pool5
    cells near the window's edge differ. The adaptive 7 x 7 average pool of paddle.vision's
    VGG (the identity at 224 x 224) is dropped: it would squash the dense map to 7 x 7.
    """
    classifier = getattr(vgg, "classifier", None)
    if classifier is None or not hasattr(vgg, "features"):
        raise ValueError(
            f"convolutionalize needs a paddle.vision VGG with a classifier (num_classes > 0); "
            f"got {type(vgg).__name__} without `features`/`classifier`"
        )
    linears = [classifier[i] for i in (0, 3, 6)] if len(classifier) == 7 else []
    if not all(isinstance(layer, nn.Linear) for layer in linears):
        raise ValueError("convolutionalize expects paddle.vision's VGG classifier layout "
                         "(Linear at classifier.0, .3 and .6)")
    in_channels = linears[0].weight.shape[0] // (FC6_KERNEL * FC6_KERNEL)
    fc6 = _conv_from_linear(linears[0], in_channels, FC6_KERNEL, "classifier.0 (fc6)")
    fc7 = _conv_from_linear(linears[1], fc6.weight.shape[0], 1, "classifier.3 (fc7)")
    fc8 = _conv_from_linear(linears[2], fc7.weight.shape[0], 1, "classifier.6 (fc8)")
    return ConvolutionalVGG(vgg.features, fc6, fc7, fc8, dropout=classifier[2].p)
