"""The FCN head shared by every backbone (Long, Shelhamer, Darrell, CVPR 2015, §4.2 and Fig. 3;
layer names of the reference nets, fcn.berkeleyvision.org ``voc-fcn{32,16,8}s/net.py``).

FCN-32s scores the 1/32 feature (``score_fr``) and upsamples x32 (``upscore``). FCN-16s adds
``upscore2`` (x2 of those scores) to ``score_pool4`` (1x1 scores of the 1/16 feature) and
upsamples the sum x16 (``upscore16``). FCN-8s adds ``upscore_pool4`` (x2 of that sum) to
``score_pool3`` and upsamples x8 (``upscore8``). Fusion is an element-wise sum (SPEC §4).

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
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_fcn.models.coords import (IMAGE, CoordMap, coord_map, crop_offset,  # noqa: F401
                                      sample_aligned_for)
from paddle_fcn.upsample import BilinearUpsample

__all__ = ["VARIANTS", "GEOMETRIES", "OUTPUT_STRIDE", "IMAGE", "CoordMap", "coord_map",
           "crop_offset", "sample_aligned_for", "Alignment", "FCN", "check_head_options"]

VARIANTS = ("32s", "16s", "8s")
GEOMETRIES = ("aligned", "caffe")
OUTPUT_STRIDE = 32  # stride of the deepest skip feature (pool5/fc7, ResNet layer4)


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
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
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


class FCN(nn.Layer):
    """FCN-32s / 16s / 8s head on a backbone (docs/architecture.md, Backbones).

    ``N x 3 x H x W`` -> ``N x num_classes x H x W`` logits for any H, W >= 1. Score layers
    start at zero, upsamplers at bilinear. Raises ``ValueError`` at build time if, in the
    aligned geometry, a fusion or the output would need a crop offset other than 0.

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
        channels = backbone.out_channels
        pool3, pool4, top = backbone.skip_names
        pad = geometry == "aligned"  # caffe: unpadded transposed convs, then crop
        grid = {name: coord_map(backbone.path_to(name)) for name in backbone.skip_names}

        def up(factor, learnable, source, target, name):
            # aligned: the geometry putting the source grid on the target's; caffe: kernel 2f
            sample = pad and sample_aligned_for(
                factor, source, target, f"{type(backbone).__name__} FCN-{variant} {name}")
            return BilinearUpsample(num_classes, factor, learnable=learnable, padding=pad,
                                    sample_aligned=sample)

        skip_learn = learnable_skip_upsample
        self.score_fr = _score(channels[top], num_classes)  # 1/32
        if variant == "32s":
            self.upscore = up(32, learnable_upsample, grid[top], IMAGE, "upscore")  # 1/1
        else:
            self.upscore2 = up(2, skip_learn, grid[top], grid[pool4], "upscore2")  # 1/16
            self.score_pool4 = _score(channels[pool4], num_classes)  # 1/16
        if variant == "16s":
            self.upscore16 = up(16, learnable_upsample, grid[pool4], IMAGE, "upscore16")  # 1/1
        if variant == "8s":
            self.upscore_pool4 = up(2, skip_learn, grid[pool4], grid[pool3],
                                    "upscore_pool4")  # 1/8
            self.score_pool3 = _score(channels[pool3], num_classes)  # 1/8
            self.upscore8 = up(8, learnable_upsample, grid[pool3], IMAGE, "upscore8")  # 1/1
        self.align = Alignment(OUTPUT_STRIDE if pad else 1, self._crop_offsets())

    def _crop_offsets(self):
        """Crop offset of every cropped map, from the layers' geometry; in the aligned geometry
        each must be 0 (``ValueError`` naming the map otherwise: the fusion would be off)."""
        where = f"{type(self.backbone).__name__} FCN-{self.variant} ({self.geometry})"
        offsets = {}
        for name, (layers, reference) in self._fused_paths().items():
            try:
                offsets[name] = crop_offset(layers, reference)
            except ValueError as e:
                raise ValueError(f"{where}: {name}: {e}") from None
        wrong = {name: o for name, o in offsets.items() if o != 0}
        if self.geometry == "aligned" and wrong:
            raise ValueError(f"{where}: the aligned geometry needs crop offsets 0, got {wrong}")
        return offsets

    def _fused_paths(self):
        """name -> (layers producing the map cropped at ``name``, layers producing the map it
        must lie on; [] = the input image)."""
        path = self.backbone.path_to
        pool3, pool4, top = self.backbone.skip_names
        scores = path(top) + [self.score_fr]  # 1/32
        if self.variant == "32s":
            return {"upscore": (scores + [self.upscore], [])}
        fuse_pool4 = scores + [self.upscore2]  # 1/16, the map score_pool4 is added to
        pairs = {"score_pool4": (path(pool4) + [self.score_pool4], fuse_pool4)}
        if self.variant == "16s":
            pairs["upscore16"] = (fuse_pool4 + [self.upscore16], [])
            return pairs
        fuse_pool3 = fuse_pool4 + [self.upscore_pool4]  # 1/8
        pairs["score_pool3"] = (path(pool3) + [self.score_pool3], fuse_pool3)
        pairs["upscore8"] = (fuse_pool3 + [self.upscore8], [])
        return pairs

    def forward(self, x):
        if paddle.in_dynamic_mode() and (x.ndim != 4 or x.shape[1] != 3):
            raise ValueError(f"FCN expects N x 3 x H x W images, got shape {list(x.shape)}")
        return self.decode(self.backbone(self.align.pad(x)), x.shape[2], x.shape[3])

    def decode(self, features, height, width):
        """The head alone: ``N x num_classes x height x width`` logits from the backbone's
        features (``dict`` by name) of the padded ``height x width`` input. Heads of a
        multi-task net share one backbone pass this way (``models.multihead``)."""
        pool3, pool4, top = (features[name] for name in self.skip_names)
        crop = self.align.crop
        score = self.score_fr(top)  # 1/32
        if self.variant == "32s":
            return self.upscore(score, self.align.window("upscore", height, width))  # 1/1
        score = self.upscore2(score)  # 1/16
        h, w = score.shape[2], score.shape[3]
        pool4 = pool4 * self.skip_scales[0] if self.skip_scales[0] != 1.0 else pool4
        score = score + crop(self.score_pool4(pool4), "score_pool4", h, w)  # fuse_pool4, 1/16
        if self.variant == "16s":
            return self.upscore16(score, self.align.window("upscore16", height, width))  # 1/1
        score = self.upscore_pool4(score)  # 1/8
        h, w = score.shape[2], score.shape[3]
        pool3 = pool3 * self.skip_scales[1] if self.skip_scales[1] != 1.0 else pool3
        score = score + crop(self.score_pool3(pool3), "score_pool3", h, w)  # fuse_pool3, 1/8
        return self.upscore8(score, self.align.window("upscore8", height, width))  # 1/1
