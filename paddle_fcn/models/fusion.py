"""Late fusion of two FCNs (Long, Shelhamer, Darrell, CVPR 2015, section 5 and Table 4,
NYUDv2: RGB-HHA is the jointly trained late-fusion model summing the RGB and HHA nets'
predictions; the reference net ``nyud-fcn32s-color-hha``): an RGB trunk and an HHA trunk,
each a whole FCN with its own score layers, and the sum of their class scores.

``late_fusion(builder)`` makes, from any FCN builder, a builder with the same options whose
model maps ``N x 6 x H x W`` (RGB channels, then HHA) to ``N x C x H x W``. Both trunks take
the options (``pretrained`` loads ImageNet weights into both, as the reference initialises the
HHA net from the same classifier). ``normalization`` has six values (RGB's, then HHA's: the
backbone's ImageNet values for both, the input HHA being an 8-bit 3-channel image).
"""
import functools

import paddle
import paddle.nn as nn

from paddle_fcn.normalization import as_normalization

__all__ = ["LateFusionFCN", "late_fusion", "stacked_normalization"]


def stacked_normalization(rgb, hha):
    """One 6-channel normalisation from the two trunks' 3-channel ones (same scale and channel
    order: one image file format feeds both)."""
    rgb, hha = as_normalization(rgb), as_normalization(hha)
    if (rgb["scale"], rgb["channel_order"]) != (hha["scale"], hha["channel_order"]):
        raise ValueError(f"late fusion: the RGB and HHA trunks' normalisations differ in scale "
                         f"or channel order ({rgb} vs {hha})")
    return dict(rgb, mean=rgb["mean"] + hha["mean"], std=rgb["std"] + hha["std"])


class LateFusionFCN(nn.Layer):
    """``rgb(x[:, :3]) + hha(x[:, 3:])``; ``backbone`` lists both trunks (for the optimizer's
    backbone learning rate)."""

    def __init__(self, rgb, hha):
        super().__init__()
        self.rgb, self.hha = rgb, hha
        self.num_classes = rgb.num_classes
        self.normalization = stacked_normalization(rgb.normalization, hha.normalization)

    @property
    def backbone(self):
        return nn.LayerList([self.rgb.backbone, self.hha.backbone])

    def forward(self, x):
        if paddle.in_dynamic_mode() and (x.ndim != 4 or x.shape[1] != 6):
            raise ValueError(f"a late-fusion RGB-HHA FCN expects N x 6 x H x W images (RGB, "
                             f"then HHA; NYUDv2 modality: rgb_hha), got shape {list(x.shape)}")
        return self.rgb(x[:, :3]) + self.hha(x[:, 3:])


def late_fusion(builder):
    """The ``<name>_rgbhha`` builder of FCN builder ``builder`` (same signature)."""
    @functools.wraps(builder)
    def build(num_classes, **options):
        return LateFusionFCN(builder(num_classes, **options), builder(num_classes, **options))

    build.__name__ = build.__qualname__ = f"{builder.__name__}_rgbhha"
    return build
