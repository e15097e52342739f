"""FCN-32s / FCN-16s / FCN-8s on VGG16 (Long, Shelhamer, Darrell, CVPR 2015; the paper's
65.5 mIoU FCN-8s), built from ``VGG16Backbone`` and the shared ``FCN`` head.

``geometry="aligned"`` is the blog's layout (input padded to a multiple of 32, fc6 padded,
transposed convs of ``upsample_geometry``); ``geometry="caffe"`` reproduces the reference nets
(100-pixel input padding, unpadded fc6 and transposed convs, crops at offsets 19 / 5, 27 /
5, 9, 31). Both accept any H x W >= 1 and return H x W scores.

``learnable_upsample`` frees the final upsampler (frozen by default, as in the paper);
``learnable_skip_upsample=False`` freezes the x2 ones as the reference nets do (see ``FCN``).
"""
from paddle_fcn.models.fcn import FCN, check_head_options
from paddle_fcn.models.vgg import VGG16Backbone

__all__ = ["fcn32s_vgg16", "fcn16s_vgg16", "fcn8s_vgg16", "fcn8s_atonce_vgg16",
           "ATONCE_SKIP_SCALES"]

# fcn.berkeleyvision.org voc-fcn8s-atonce/net.py: Scale layers (fixed, lr_mult 0) on pool4 and
# pool3 before their score layers, so that all skips can be learned at once (PAMI §4.2).
ATONCE_SKIP_SCALES = (0.01, 0.0001)


def _fcn_vgg16(variant, num_classes, pretrained, geometry, learnable_upsample, dropout,
               learnable_skip_upsample, width, skip_scales=(1.0, 1.0)):
    check_head_options(num_classes, variant, geometry,  # before building 134 M parameters
                       learnable_upsample=learnable_upsample,
                       learnable_skip_upsample=learnable_skip_upsample)
    backbone = VGG16Backbone(geometry=geometry, dropout=dropout, width=width)
    if pretrained is not None:
        backbone.load_imagenet(pretrained)
    return FCN(backbone, num_classes, variant, geometry=geometry,
               learnable_upsample=learnable_upsample,
               learnable_skip_upsample=learnable_skip_upsample, skip_scales=skip_scales)


def fcn32s_vgg16(num_classes, pretrained=None, geometry="aligned", learnable_upsample=False,
                 dropout=0.5, learnable_skip_upsample=True, width=64):
    """FCN-32s: fc7 scored (``score_fr``) and upsampled x32 (``upscore``).

    ``pretrained``: path to ImageNet VGG16 weights (paddle.vision ``.pdparams``, torchvision
    or pytorch-fcn ``.pth``, Caffe ``.caffemodel``), loaded by ``VGG16Backbone.load_imagenet``
    (which also sets the model's normalisation); ``None`` = random trunk. ``width``: channels
    of conv1 (64; the others scale with it, fc6/fc7 have 64 x width), for tests.
    """
    return _fcn_vgg16("32s", num_classes, pretrained, geometry, learnable_upsample, dropout,
                      learnable_skip_upsample, width)


def fcn16s_vgg16(num_classes, pretrained=None, geometry="aligned", learnable_upsample=False,
                 dropout=0.5, learnable_skip_upsample=True, width=64):
    """FCN-16s: ``upscore2`` (x2 of fc7's scores) + ``score_pool4``, upsampled x16
    (``upscore16``). Staged training initialises it from an FCN-32s (``staged.py``)."""
    return _fcn_vgg16("16s", num_classes, pretrained, geometry, learnable_upsample, dropout,
                      learnable_skip_upsample, width)


def fcn8s_vgg16(num_classes, pretrained=None, geometry="aligned", learnable_upsample=False,
                dropout=0.5, learnable_skip_upsample=True, width=64):
    """FCN-8s: ``upscore_pool4`` (x2 of the 16s sum) + ``score_pool3``, upsampled x8
    (``upscore8``). Staged training initialises it from an FCN-16s (``staged.py``)."""
    return _fcn_vgg16("8s", num_classes, pretrained, geometry, learnable_upsample, dropout,
                      learnable_skip_upsample, width)


def fcn8s_atonce_vgg16(num_classes, pretrained=None, geometry="caffe", learnable_upsample=False,
                       dropout=0.5, learnable_skip_upsample=False, width=64):
    """FCN-8s "at once" (PAMI 2017 §4.2, 65.4 mIoU on seg11valid): FCN-8s trained in one stage,
    with pool4 scaled by 0.01 and pool3 by 1e-4 before ``score_pool4`` / ``score_pool3``
    (``ATONCE_SKIP_SCALES``; the reference's fixed Scale layers). Defaults follow the
    reference net (``voc-fcn8s-atonce``): caffe geometry, every upsampler fixed."""
    return _fcn_vgg16("8s", num_classes, pretrained, geometry, learnable_upsample, dropout,
                      learnable_skip_upsample, width, ATONCE_SKIP_SCALES)
