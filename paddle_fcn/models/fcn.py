"""The FCN head shared by every backbone (Long, Shelhamer, Darrell, CVPR 2015, §4.2 and Fig. 3;
layer names of the reference nets, fcn.berkeleyvision.org ``voc-fcn{32,16,8}s/net.py``).

FCN-32s scores the 1/32 feature (``score_fr``) and upsamples x32 (``upscore``). FCN-16s adds
``upscore2`` (x2 of those scores) to ``score_pool4`` (1x1 scores of the 1/16 feature) and
upsamples the sum x16 (``upscore16``). FCN-8s adds ``upscore_pool4`` (x2 of that sum) to
``score_pool3`` and upsamples x8 (``upscore8``). Fusion is an element-wise sum
(docs/design.md#the-fcn-heads).

Alignment of fused maps (``paddle_fcn.models.coords``): ``coord_map`` composes, layer by
layer, the affine map from a tensor's pixel coordinates to input-image coordinates (caffe's
``coord_map.py``); ``crop_offset`` turns two such maps into the crop offset that puts one
tensor on the other, and ``Alignment`` holds every pad and crop of the head (the final crop is
handed to the last upsampler as its output window: cropped-away pixels are never computed).

The grid depends on the backbone: VGG puts pool3 / pool4 / fc7 pixel x at image ``8x + 3.5``,
``16x + 7.5``, ``32x + 15.5`` (cell centres of 2 x 2 pools), ResNet puts layer2 / 3 / 4 pixel x
at ``8x``, ``16x``, ``32x`` (samples of padded stride-2 convs). The aligned geometry picks
each upsampler from those maps (``upsample_geometry``: the blog's kernel 2f for cell centres,
the ``sample_aligned`` kernel 2f - 1 for samples) and checks at build time that every fusion
and the output need crop offset 0.
"""
from typing import NamedTuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_fcn.errors import check_num_classes
from paddle_fcn.models.coords import (IMAGE, CoordMap, coord_map, crop_offset,  # noqa: F401
                                      sample_aligned_for)
from paddle_fcn.upsample import BilinearUpsample

__all__ = ["VARIANTS", "GEOMETRIES", "OUTPUT_STRIDE", "IMAGE", "CoordMap", "coord_map",
           "crop_offset", "sample_aligned_for", "Alignment", "Stage", "STAGES", "FCN",
           "check_head_options"]

VARIANTS = ("32s", "16s", "8s")
GEOMETRIES = ("aligned", "caffe")
OUTPUT_STRIDE = 32  # stride of the deepest skip feature (pool5/fc7, ResNet layer4)


class Stage(NamedTuple):
    """One step of the FCN head, coarse to fine (paper Fig. 3): the backbone feature ``skip``
    (``backbone.skip_names[2 - level]``) is scored by the layer ``score``, added to the
    upsampled sum of the coarser stages (the first stage has none), and the sum is upsampled
    ``factor``-fold by the layer ``upsample``. ``stride``: of ``skip``, its scores and the sum
    (32, 16, 8); the last stage's upsampler gives the 1/1 output."""

    skip: str
    score: str
    upsample: str
    factor: int
    stride: int


# variant -> (score layer, upsampler, factor) per stage, from the 1/32 feature down: the
# reference nets' layer names (voc-fcn{32,16,8}s/net.py), which are the state-dict keys
STAGES = {
    "32s": (("score_fr", "upscore", 32),),  # 1/32 -> 1/1
    "16s": (("score_fr", "upscore2", 2),  # 1/32 -> 1/16
            ("score_pool4", "upscore16", 16)),  # 1/16 -> 1/1
    "8s": (("score_fr", "upscore2", 2),  # 1/32 -> 1/16
           ("score_pool4", "upscore_pool4", 2),  # 1/16 -> 1/8
           ("score_pool3", "upscore8", 8)),  # 1/8 -> 1/1
}


class Alignment:
    """Every pad and crop of the FCN head (``pad``, ``crop``; ``window`` for the final one).

    ``aligned`` geometry (the blog's): the input is zero-padded (0 = the mean colour after
    normalisation) at the bottom/right to a multiple of ``pad_multiple`` (32), so every
    feature is exactly 1/s of it and every padded upsampler exactly f-fold: fused maps have
    equal sizes, their offsets are 0 (checked by ``FCN`` from ``coord_map``), and the output is
    cropped to the input's top-left H x W.
    ``caffe`` geometry (the reference nets): no input padding (conv1_1 pads 100); each fused
    or final map is cropped at ``offsets[name]`` computed by ``crop_offset``.
    """

    def __init__(self, pad_multiple, offsets):
        self.pad_multiple = pad_multiple
        self.offsets = dict(offsets)

    def pad(self, x):
        m = self.pad_multiple
        if m == 1:
            return x
        # python ints when eager, tensors under paddle.jit.to_static (dynamic H, W)
        pad_h, pad_w = -x.shape[2] % m, -x.shape[3] % m
        return F.pad(x, [0, pad_w, 0, pad_h])  # [left, right, top, bottom]

    def crop(self, x, name, height, width):
        """``x[..., o:o + height, o:o + width]`` with ``o = offsets[name]``."""
        o = self.offsets[name]
        if paddle.in_dynamic_mode():  # shapes are ints: check, since a slice clamps silently
            if x.shape[2] < o + height or x.shape[3] < o + width:
                raise ValueError(f"{name}: map {x.shape[2]} x {x.shape[3]} too small for a "
                                 f"{height} x {width} crop at offset {o}")
        return x[:, :, o:o + height, o:o + width]

    def window(self, name, height, width):
        """The crop at ``name`` as a ``BilinearUpsample`` window ``(offset, height, width)``:
        the final upsampler computes only the pixels this crop keeps."""
        return self.offsets[name], height, width


def check_head_options(num_classes, variant, geometry, **flags):
    """Raise ``ValueError`` naming the bad value of an FCN head option (``flags``: booleans
    such as ``learnable_upsample``)."""
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise ValueError(f"FCN {flag} must be True or False, got {value!r}")
    check_num_classes(num_classes)
    if variant not in VARIANTS:
        raise ValueError(f"FCN variant must be one of {VARIANTS}, got {variant!r}")
    if geometry not in GEOMETRIES:
        raise ValueError(f"FCN geometry must be one of {GEOMETRIES}, got {geometry!r}")


def _check_backbone(backbone, geometry):
    name = type(backbone).__name__
    # path_to(name) -> layers from the input to a feature: where its pixels sit (coord_map),
    # from which the head picks its upsamplers and proves every fusion aligned
    for attr in ("skip_names", "out_channels", "normalization", "load_imagenet", "path_to"):
        if not hasattr(backbone, attr):
            raise TypeError(f"{name} is not an FCN backbone: it has no `{attr}` "
                            f"(see docs/architecture.md, Backbones)")
    missing = [n for n in backbone.skip_names if n not in backbone.out_channels]
    if len(backbone.skip_names) != 3 or missing:
        raise TypeError(f"{name}.skip_names must name the 1/8, 1/16, 1/32 features listed in "
                        f"out_channels; got {backbone.skip_names!r} (missing {missing})")
    own = getattr(backbone, "geometry", None)  # backbones without one are aligned-only
    if own is None and geometry != "aligned":
        raise ValueError(f"{name} supports only geometry='aligned', got {geometry!r}")
    if own is not None and own != geometry:
        raise ValueError(f"FCN geometry {geometry!r} does not match {name} built with "
                         f"geometry {own!r}")


def _score(in_channels, num_classes):
    # Class scoring layers start at zero (paper §4.1: "zero-initializing the class scoring
    # layer, as random initialization yielded neither better performance nor faster
    # convergence"; §4.2 the same for the skip scores), so a fresh net predicts all zeros and
    # a new skip leaves the coarser net's predictions unmodified.
    zero = nn.initializer.Constant(0.0)
    return nn.Conv2D(in_channels, num_classes, 1, weight_attr=zero, bias_attr=zero)


def _stages(variant, skip_names):
    """``STAGES[variant]`` as ``Stage`` tuples on the backbone's features (1/32 first)."""
    features = skip_names[::-1]  # (1/32, 1/16, 1/8)
    return tuple(Stage(skip, score, upsample, factor, OUTPUT_STRIDE >> level)
                 for level, (skip, (score, upsample, factor))
                 in enumerate(zip(features, STAGES[variant])))


class FCN(nn.Layer):
    """FCN-32s / 16s / 8s head on a backbone (docs/architecture.md, Backbones).

    ``N x 3 x H x W`` -> ``N x num_classes x H x W`` logits for any H, W >= 1. Score layers
    start at zero, upsamplers at bilinear. Raises ``ValueError`` at build time if, in the
    aligned geometry, a fusion or the output would need a crop offset other than 0.
    ``stages`` (``Stage`` tuples, ``STAGES[variant]``) is the head's wiring: building,
    ``forward``, the crop offsets and the reference nets' weight mapping all follow it.

    Which upsamplers learn: the final one (``upscore``/``upscore16``/``upscore8``) only if
    ``learnable_upsample``; the x2 ones (``upscore2``, ``upscore_pool4``) unless
    ``learnable_skip_upsample=False``. The default follows the paper's text (§4.2: the x2 layer
    is "initialized to bilinear interpolation, but allowed to be learned"). The reference code
    freezes all of them: fcn.berkeleyvision.org ``voc-fcn16s/net.py`` and ``voc-fcn8s/net.py``
    give ``upscore2``, ``upscore_pool4`` and ``upscore8`` ``param=[dict(lr_mult=0)]``, and
    wkentaro/pytorch-fcn (``examples/voc/train_fcn*.py``, ``get_parameters``) leaves every
    ``ConvTranspose2d`` out of the optimizer; ``learnable_skip_upsample=False`` reproduces that.
    Learned upsamplers hold ``[C, C, k, k]`` weights, frozen ones no parameter.
    """

    def __init__(self, backbone, num_classes, variant, geometry="aligned",
                 learnable_upsample=False, learnable_skip_upsample=True, skip_scales=(1.0, 1.0)):
        super().__init__()
        check_head_options(num_classes, variant, geometry, learnable_upsample=learnable_upsample,
                           learnable_skip_upsample=learnable_skip_upsample)
        _check_backbone(backbone, geometry)
        self.backbone = backbone
        self.normalization = backbone.normalization
        self.num_classes, self.variant, self.geometry = num_classes, variant, geometry
        # fixed factors on the 1/16 and 1/8 features before scoring (FCN-8s at-once: 0.01, 1e-4)
        self.skip_scales = tuple(float(s) for s in skip_scales)
        self.skip_names = backbone.skip_names
        self.learnable_upsample = learnable_upsample
        self.learnable_skip_upsample = learnable_skip_upsample
        self.stages = _stages(variant, backbone.skip_names)
        pad = geometry == "aligned"  # caffe: unpadded transposed convs, then crop
        # where each stage's sum lies (its skip's grid), then the output's (the image)
        grids = [coord_map(backbone.path_to(stage.skip)) for stage in self.stages] + [IMAGE]
        for level, stage in enumerate(self.stages):
            last = level == len(self.stages) - 1
            self.add_sublayer(stage.score, _score(backbone.out_channels[stage.skip], num_classes))
            # aligned: the geometry putting this grid on the next one's; caffe: kernel 2f
            sample = pad and sample_aligned_for(
                stage.factor, grids[level], grids[level + 1],
                f"{type(backbone).__name__} FCN-{variant} {stage.upsample}")
            self.add_sublayer(stage.upsample, BilinearUpsample(
                num_classes, stage.factor, padding=pad, sample_aligned=sample,
                learnable=learnable_upsample if last else learnable_skip_upsample))
        self.align = Alignment(OUTPUT_STRIDE if pad else 1, self._crop_offsets())

    def _crop_offsets(self):
        """Crop offset of every cropped map, from the layers' geometry; in the aligned geometry
        each must be 0 (``ValueError`` naming the map otherwise: the fusion would be off)."""
        where = f"{type(self.backbone).__name__} FCN-{self.variant} ({self.geometry})"
        offsets = {}
        for name, (layers, reference) in self.crop_paths().items():
            try:
                offsets[name] = crop_offset(layers, reference)
            except ValueError as e:
                raise ValueError(f"{where}: {name}: {e}") from None
        wrong = {name: o for name, o in offsets.items() if o != 0}
        if self.geometry == "aligned" and wrong:
            raise ValueError(f"{where}: the aligned geometry needs crop offsets 0, got {wrong}")
        return offsets

    def crop_paths(self):
        """name -> (layers producing the map cropped at ``name``, layers producing the map it
        must lie on; [] = the input image), along ``stages``: each skip's scores (cropped at
        their score layer's name) lie on the upsampled sum of the coarser stages, and the
        output (cropped at the last upsampler's name) on the image."""
        pairs, fused = {}, None
        for stage in self.stages:
            scores = self.backbone.path_to(stage.skip) + [getattr(self, stage.score)]
            if fused is not None:
                pairs[stage.score] = (scores, fused)
            fused = (scores if fused is None else fused) + [getattr(self, stage.upsample)]
        pairs[self.stages[-1].upsample] = (fused, [])
        return pairs

    def forward(self, x):
        if paddle.in_dynamic_mode() and (x.ndim != 4 or x.shape[1] != 3):
            raise ValueError(f"FCN expects N x 3 x H x W images, got shape {list(x.shape)}")
        return self.decode(self.backbone(self.align.pad(x)), x.shape[2], x.shape[3])

    def decode(self, features, height, width):
        """The head alone: ``N x num_classes x height x width`` logits from the backbone's
        features (``dict`` by name) of the padded ``height x width`` input. Heads of a
        multi-task net share one backbone pass this way (``models.multihead``)."""
        scores = []
        for stage, scale in zip(self.stages, (1.0,) + self.skip_scales):
            feature = features[stage.skip]  # 1/32 (fc7), 1/16 (pool4), 1/8 (pool3)
            feature = feature * scale if scale != 1.0 else feature
            scores.append(getattr(self, stage.score)(feature))  # 1/32, 1/16, 1/8
        return self.fuse(scores, height, width)

    def fuse(self, scores, height, width):
        """The fusions and upsamplings: ``N x num_classes x height x width`` logits from the
        class scores of the stages (``scores``, one map per stage, 1/32 first), each added,
        cropped, to the upsampled sum of the coarser ones."""
        fused, last = None, len(self.stages) - 1
        for level, stage in enumerate(self.stages):
            score = scores[level]  # 1/32, 1/16, 1/8
            if level:  # fuse_pool4 (1/16), fuse_pool3 (1/8)
                score = fused + self.align.crop(score, stage.score, fused.shape[2],
                                                fused.shape[3])
            window = self.align.window(stage.upsample, height, width) if level == last else None
            fused = getattr(self, stage.upsample)(score, window)  # 1/16, 1/8; 1/1 at the last
        return fused
