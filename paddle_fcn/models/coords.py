"""Where a tensor's pixels sit in the input image: the coordinate-map algebra of caffe's
``coord_map.py`` (fcn.berkeleyvision.org), used by the FCN head to align fused score maps.

Each conv, pool or transposed conv maps its output coordinates affinely to its input
coordinates; ``coord_map`` composes those maps along a path of layers into ``x_image =
scale * x + shift`` (exact ``Fraction`` arithmetic), ``crop_offset`` turns two such maps into
the crop that puts one tensor on the other, and ``sample_aligned_for`` says which bilinear
upsampler puts a coarse map exactly on a finer one.
"""
from fractions import Fraction
from typing import NamedTuple

import paddle.nn as nn

from paddle_fcn.upsample import BilinearUpsample, upsample_geometry

__all__ = ["IMAGE", "CoordMap", "coord_map", "crop_offset", "sample_aligned_for"]


class CoordMap(NamedTuple):
    """``x_image = scale * x + shift``: where pixel ``x`` of a tensor sits in the input image
    (the same map on both axes; pixel centres at integer coordinates)."""

    scale: Fraction
    shift: Fraction


def _square(value, what, layer):
    values = [value] if isinstance(value, int) else list(value)
    if len(set(values)) != 1 or not isinstance(values[0], int):
        raise ValueError(f"coord_map: {type(layer).__name__} has {what} {value!r}; "
                         f"only equal integer values on both axes are supported")
    return values[0]


def _conv_map(kernel, stride, padding, dilation=1, transposed=False):
    """The map from a conv's output coordinates to its input coordinates: output pixel x is
    centred at input ``stride * x + dilation * (kernel - 1) / 2 - padding``; a transposed conv
    is the inverse of that map (``output_padding`` only appends pixels at the end)."""
    shift = Fraction(dilation * (kernel - 1), 2) - padding
    if transposed:
        return CoordMap(Fraction(1, stride), -shift / stride)
    return CoordMap(Fraction(stride), shift)


def _then(total, step):
    """``total`` (tensor -> image) preceded by ``step`` (next tensor -> tensor)."""
    return CoordMap(total.scale * step.scale, total.scale * step.shift + total.shift)


def _layer_map(layer):
    if isinstance(layer, BilinearUpsample):  # a transposed conv, leading padding moves pixels
        return _conv_map(layer.kernel_size, layer.stride, layer.padding[0], transposed=True)
    if isinstance(layer, nn.MaxPool2D):
        k, s, p, d = layer.ksize, layer.stride, layer.padding, 1
    elif isinstance(layer, (nn.Conv2D, nn.Conv2DTranspose)):
        k, s, p, d = layer._kernel_size, layer._stride, layer._padding, layer._dilation
    else:
        raise TypeError(f"coord_map: no coordinate map for layer type {type(layer).__name__}")
    if not isinstance(p, (int, str)) and len(p) == 4:
        # [top, bottom, left, right]: only the leading pad moves pixel centres; the trailing
        # one (like output_padding) only trims or adds pixels at the end
        p = list(p)[0::2]
    k, s, p, d = (_square(v, n, layer) for v, n in ((k, "kernel"), (s or k, "stride"),
                                                      (p, "padding"), (d, "dilation")))
    return _conv_map(k, s, p, d, transposed=isinstance(layer, nn.Conv2DTranspose))


IMAGE = CoordMap(Fraction(1), Fraction(0))  # the input's own coordinates


def coord_map(layers):
    """Compose the maps of ``layers`` (from the input to the tensor, in order; ReLU, dropout,
    batch norm and other pointwise layers are left out) into the tensor's ``CoordMap``."""
    total = IMAGE
    for layer in layers:
        total = _then(total, _layer_map(layer))
    return total


def sample_aligned_for(factor, source, target, what="upsampler"):
    """Which padded x``factor`` bilinear upsampler puts a map at ``source`` (``CoordMap``)
    exactly on ``target``: ``False`` for the blog's kernel 2f (input x -> output
    ``f x + (f - 1) / 2``), ``True`` for the sample-aligned kernel 2f - 1 (x -> ``f x``).
    Raises ``ValueError`` naming ``what`` and both maps if neither does."""
    for sample_aligned in (False, True):
        kernel, stride, padding, _ = upsample_geometry(factor, sample_aligned)
        if _then(source, _conv_map(kernel, stride, padding, transposed=True)) == target:
            return sample_aligned
    source, target = (f"{float(m.scale):g} x + {float(m.shift):g}" for m in (source, target))
    raise ValueError(f"{what}: no x{factor} bilinear upsampler maps pixel x at image {source} "
                     f"onto the target at image {target}: the feature grids are misaligned")


def crop_offset(layers, reference_layers):
    """Offset o such that ``tensor[o + i]`` lies on ``reference[i]`` (both axes), where the
    tensor is produced by ``layers`` and the reference by ``reference_layers`` ([] = input).

    Reference values for VGG16 in caffe geometry: 19 (FCN-32s upscore), 5 and 27 (FCN-16s
    score_pool4, upscore16), 5, 9 and 31 (FCN-8s score_pool4, score_pool3, upscore8).
    Raises ``ValueError`` if the scales differ or the offset is not a non-negative integer.
    """
    mine, ref = coord_map(layers), coord_map(reference_layers)
    if mine.scale != ref.scale:
        raise ValueError(f"cannot align maps of scale {mine.scale} and {ref.scale}")
    offset = (ref.shift - mine.shift) / mine.scale
    if offset.denominator != 1 or offset < 0:
        raise ValueError(f"crop offset {offset} is not a non-negative integer: the maps are "
                         f"misaligned by a fraction of a pixel or the tensor is too small")
    return int(offset)
