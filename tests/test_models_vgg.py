"""VGG16 trunk, FC -> conv conversion (docs/design.md#fully-connected-layers-as-convolutions),
the FCN head in both geometries (docs/design.md#the-fcn-heads) and the ImageNet import.
VGG16 is heavy (134 M parameters): one trunk per geometry is built once and shared by the
three heads; inputs are tiny."""
import math
from fractions import Fraction

import numpy as np
import paddle
import pytest
from paddle.vision.models import vgg16
from paddle.vision.models.vgg import VGG, make_layers

from fcn_heads import impulse_response
from paddle_fcn.errors import WeightsError
from paddle_fcn.models.convolutional import convolutionalize
from paddle_fcn.models.fcn import FCN, IMAGE, CoordMap, coord_map, crop_offset
from paddle_fcn.models.fcn_vgg import fcn8s_vgg16, fcn32s_vgg16
from paddle_fcn.models.resnet import ResNetBackbone
from paddle_fcn.models.vgg import VGG16Backbone, fc_to_conv
from paddle_fcn.upsample import BilinearUpsample

VARIANTS = ("32s", "16s", "8s")
CLASSES = 3


@pytest.fixture(scope="module")
def trunks():
    paddle.seed(0)
    return {geometry: VGG16Backbone(geometry) for geometry in ("aligned", "caffe")}


@pytest.fixture(scope="module")
def heads(trunks):
    """Fresh (never modified) FCN heads sharing one trunk per geometry, in eval mode."""
    models = {}
    for geometry, trunk in trunks.items():
        for variant in VARIANTS:
            model = FCN(trunk, CLASSES, variant, geometry=geometry)
            model.eval()
            models[geometry, variant] = model
    return models


@pytest.fixture(scope="module")
def classifier():
    paddle.seed(0)
    model = vgg16(num_classes=10)
    model.eval()
    return model


@pytest.fixture(scope="module")
def converted(classifier):
    net = convolutionalize(classifier)
    net.eval()
    return net


@pytest.mark.parametrize("geometry", ["aligned", "caffe"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_any_size_gives_full_resolution_zero_scores(heads, geometry, variant):
    model = heads[geometry, variant]
    sizes = [(23, 37), (65, 47)] + ([(1, 1)] if variant == "8s" else [])
    for height, width in sizes:
        with paddle.no_grad():
            out = model(paddle.randn([2, 3, height, width]))
        assert out.shape == [2, CLASSES, height, width]
        # score layers start at zero: the paper's "unmodified predictions" of a fresh net
        assert float(out.abs().max()) == 0.0


def test_features_strides(trunks):
    with paddle.no_grad():
        features = trunks["aligned"](paddle.randn([1, 3, 64, 96]))
    for name, stride in (("pool1", 2), ("pool3", 8), ("pool4", 16), ("pool5", 32), ("fc7", 32)):
        assert features[name].shape[2:] == [64 // stride, 96 // stride], name
    assert features["fc7"].shape[1] == trunks["aligned"].out_channels["fc7"] == 4096


def test_caffe_offsets_reproduce_reference(heads):
    # fcn.berkeleyvision.org voc-fcn{32,16,8}s: crop offsets 19 / 5, 27 / 5, 9, 31
    assert heads["caffe", "32s"].align.offsets == {"upscore": 19}
    assert heads["caffe", "16s"].align.offsets == {"score_pool4": 5, "upscore16": 27}
    assert heads["caffe", "8s"].align.offsets == {"score_pool4": 5, "score_pool3": 9,
                                                   "upscore8": 31}
    for variant in VARIANTS:  # the same algebra finds the aligned geometry needs no crop
        assert set(heads["aligned", variant].align.offsets.values()) == {0}


@pytest.mark.parametrize("variant", VARIANTS)
def test_aligned_fusions_and_output_need_no_crop(heads, trunks, variant):
    model = heads["aligned", variant]
    pairs = list(model.crop_paths().values())  # along model.stages: each fusion, the output
    assert len(pairs) == len(model.stages)
    for layers, reference in pairs:
        assert coord_map(layers) == coord_map(reference)
    assert coord_map(pairs[-1][0]) == IMAGE
    # VGG's 2 x 2 pools put pixels on cell centres: the blog's kernel-2f upsamplers fit
    assert coord_map(trunks["aligned"].path_to("pool3")) == CoordMap(Fraction(8), Fraction(7, 2))
    assert not any(m.sample_aligned for m in model.sublayers() if isinstance(m, BilinearUpsample))


@pytest.mark.parametrize("variant, level, row, col", [
    ("32s", 32, 1, 1), ("16s", 32, 1, 1), ("16s", 16, 1, 3), ("8s", 32, 1, 1), ("8s", 16, 2, 3),
    ("8s", 8, 3, 6)])
def test_impulse_peaks_between_the_two_pixels_coord_map_says(heads, trunks, variant, level, row,
                                                             col):
    """The response is symmetric about coord_map's half-integer position: its maximum is the
    two pixels either side (a wider plateau after a x2 of the impulse, still centred there)."""
    feature = {32: "fc7", 16: "pool4", 8: "pool3"}[level]
    grid = coord_map(trunks["aligned"].path_to(feature))  # level x + (level - 1) / 2
    model = heads["aligned", variant]
    out = impulse_response(model, level, row, col)
    direct = level == {"32s": 32, "16s": 16, "8s": 8}[variant]  # one upsampler, no x2
    for axis, x in ((0, row), (1, col)):
        position = grid.scale * x + grid.shift
        low, high = math.floor(position), math.ceil(position)
        assert (low, high) == (level * x + level // 2 - 1, level * x + level // 2)
        profile = out.max(axis=1 - axis)
        ties = np.flatnonzero(np.isclose(profile, profile.max(), rtol=1e-6)).tolist()
        assert ties[0] + ties[-1] == low + high and len(ties) == ties[-1] - ties[0] + 1
        assert ties == [low, high] or not direct
        k = np.arange(1, min(low, len(profile) - 1 - high) + 1)
        np.testing.assert_allclose(profile[low - k], profile[high + k], atol=1e-6)


def test_aligned_head_refuses_misaligned_upsamplers(trunks):
    model = FCN(trunks["aligned"], CLASSES, "8s")
    model.upscore8 = BilinearUpsample(CLASSES, 8, padding=False)  # output 4 pixels off
    with pytest.raises(ValueError, match=r"needs crop offsets 0, got \{'upscore8': 4\}"):
        model._crop_offsets()
    model.upscore8 = BilinearUpsample(CLASSES, 8, sample_aligned=True)  # 3.5 pixels off
    with pytest.raises(ValueError, match=r"VGG16Backbone FCN-8s \(aligned\): upscore8: crop "
                                         r"offset -7/2 is not a non-negative integer"):
        model._crop_offsets()


class _GridBackbone(paddle.nn.Layer):
    """A trunk reduced to its grids: one strided conv per feature. The head's build-time
    alignment reads only ``path_to``; ``forward`` is never called."""

    skip_names = ("a", "b", "c")
    out_channels = {"a": 1, "b": 1, "c": 1}
    normalization = {}

    def __init__(self, top_padding):
        super().__init__()
        conv = paddle.nn.Conv2D
        self.paths = {"a": [conv(1, 1, 8, stride=8)], "b": [conv(1, 1, 16, stride=16)],
                      "c": [conv(1, 1, 32, stride=32, padding=top_padding)]}

    def path_to(self, name):
        return self.paths[name]

    def load_imagenet(self, path):
        raise NotImplementedError


def test_head_picks_upsamplers_from_the_grid_or_refuses():
    model = FCN(_GridBackbone(top_padding=0), 2, "8s")  # VGG-like cell centres
    assert model.align.offsets == {"score_pool4": 0, "score_pool3": 0, "upscore8": 0}
    # padding 1 moves c's pixels to 32 x + 14.5: no bilinear x2 lands on b's 16 x + 7.5
    with pytest.raises(ValueError, match=r"_GridBackbone FCN-16s upscore2: no x2 bilinear "
                                         r"upsampler maps pixel x at image 32 x \+ 14\.5 onto "
                                         r"the target at image 16 x \+ 7\.5"):
        FCN(_GridBackbone(top_padding=1), 2, "16s")
    with pytest.raises(ValueError, match="upscore: no x32 bilinear upsampler"):
        FCN(_GridBackbone(top_padding=1), 2, "32s")
    no_path = type("NoPath", (paddle.nn.Layer,), {
        "skip_names": ("a", "b", "c"), "out_channels": {"a": 1, "b": 1, "c": 1},
        "normalization": {}, "load_imagenet": lambda self, path: None})()
    with pytest.raises(TypeError, match="NoPath is not an FCN backbone: it has no `path_to`"):
        FCN(no_path, 2, "8s")


def test_crop_offset_rejects_subpixel_misalignment():
    # ResNet's stem (7x7, stride 2, pad 3) centres output pixel x on input 2x; a padded x2
    # transposed conv then lands half a pixel off the input grid
    stem = paddle.nn.Conv2D(1, 1, 7, stride=2, padding=3)
    up = paddle.nn.Conv2DTranspose(1, 1, 4, stride=2, padding=1)
    with pytest.raises(ValueError, match="not a non-negative integer"):
        crop_offset([stem, up], [])


def test_head_options_and_frozen_upsampler(trunks):
    aligned = trunks["aligned"]
    model = FCN(aligned, CLASSES, "8s")
    assert not model.upscore8.learnable and model.upscore8.parameters() == []  # fixed
    assert not model.upscore2.up.weight.stop_gradient  # x2 upsamplers learned
    assert not model.upscore_pool4.up.weight.stop_gradient
    assert model.upscore2.up.weight.shape == [CLASSES, CLASSES, 4, 4]
    learnable = FCN(aligned, CLASSES, "32s", learnable_upsample=True)
    assert not learnable.upscore.up.weight.stop_gradient
    # the reference nets' lr_mult=0 on every transposed conv: no trainable upsampler left
    frozen = FCN(aligned, CLASSES, "8s", learnable_skip_upsample=False)
    for layer in (frozen.upscore2, frozen.upscore_pool4, frozen.upscore8):
        assert not layer.learnable and layer.parameters() == []
        assert layer.kernel_size == 2 * layer.factor
    assert not any("upscore" in key for key in frozen.state_dict())
    with pytest.raises(ValueError, match="learnable_skip_upsample must be True or False"):
        fcn8s_vgg16(CLASSES, learnable_skip_upsample=None)  # rejected before the trunk
    assert model.backbone is aligned and model.normalization == aligned.normalization
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        model(paddle.zeros([3, 32, 32]))
    with pytest.raises(ValueError, match="variant"):
        FCN(aligned, CLASSES, "4s")
    with pytest.raises(ValueError, match="num_classes"):
        fcn32s_vgg16(0)  # rejected before the trunk is built
    with pytest.raises(ValueError, match="geometry"):
        fcn32s_vgg16(CLASSES, geometry="same")
    with pytest.raises(ValueError, match="does not match"):
        FCN(aligned, CLASSES, "32s", geometry="caffe")
    with pytest.raises(ValueError, match="only geometry='aligned'"):
        FCN(ResNetBackbone(18, width=8), CLASSES, "32s", geometry="caffe")


def test_fc_to_conv_matches_linear():
    weight = np.random.randn(2 * 3 * 3, 4).astype(np.float32)  # Paddle Linear [in, out]
    x = np.random.randn(1, 2, 3, 3).astype(np.float32)
    kernel = paddle.to_tensor(fc_to_conv(weight, 2, 3))
    conv = paddle.nn.functional.conv2d(paddle.to_tensor(x), kernel)
    np.testing.assert_allclose(conv.numpy().reshape(4), x.reshape(-1) @ weight, rtol=1e-5)
    with pytest.raises(ValueError, match="cannot act on"):
        fc_to_conv(weight, 2, 2)


def test_convolutionalize_224_equals_classifier(classifier, converted):
    net = converted
    x = paddle.randn([1, 3, 224, 224])
    with paddle.no_grad():
        logits = classifier(x).numpy()
        scores = net(x).numpy()
    assert scores.shape == (1, 10, 1, 1)
    assert np.abs(logits).max() > 0
    np.testing.assert_allclose(scores[:, :, 0, 0], logits, atol=1e-4 * np.abs(logits).max())


def test_convolutionalize_384_cells_are_windows(classifier, converted):
    net = converted
    captured = {}
    hook = net.features.register_forward_post_hook(
        lambda layer, inputs, output: captured.setdefault("pool5", output))
    with paddle.no_grad():
        scores = net(paddle.randn([1, 3, 384, 384])).numpy()
        hook.remove()
        pool5 = captured["pool5"]
        assert pool5.shape == [1, 512, 12, 12]
        # the classifier's FC layers on every 7 x 7 pool5 window (stride 1 = 32 image pixels)
        windows = paddle.concat([pool5[:, :, i:i + 7, j:j + 7].flatten(1)
                                 for i in range(6) for j in range(6)])
        expected = classifier.classifier(windows).numpy().reshape(6, 6, 10)
    assert scores.shape == (1, 10, 6, 6)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(scores[0].transpose(1, 2, 0), expected,
                               atol=1e-4 * np.abs(expected).max())


def test_convolutionalize_needs_a_classifier():
    with pytest.raises(ValueError, match="classifier"):
        convolutionalize(VGG(make_layers([8, "M"]), num_classes=0))


def test_imagenet_import_round_trip(classifier, tmp_path):
    path = str(tmp_path / "vgg16.pdparams")
    paddle.save(classifier.state_dict(), path)
    model = fcn8s_vgg16(CLASSES, pretrained=path)
    trunk, source = model.backbone, classifier
    np.testing.assert_array_equal(trunk.conv1_1.weight.numpy(), source.features[0].weight.numpy())
    np.testing.assert_array_equal(trunk.conv5_3.bias.numpy(), source.features[28].bias.numpy())
    # fc6[o, c, i, j] multiplies pool5[c, i, j], which Linear sees at row c * 49 + i * 7 + j
    fc6, linear6 = trunk.fc6.weight.numpy(), source.classifier[0].weight.numpy()
    for c, i, j in ((0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0), (511, 6, 6), (300, 2, 5)):
        np.testing.assert_array_equal(fc6[:, c, i, j], linear6[c * 49 + i * 7 + j])
    np.testing.assert_array_equal(trunk.fc6.bias.numpy(), source.classifier[0].bias.numpy())
    fc7 = trunk.fc7.weight.numpy()
    assert fc7.shape == (4096, 4096, 1, 1)
    np.testing.assert_array_equal(fc7[:, :, 0, 0].T, source.classifier[3].weight.numpy())
    assert float(model.score_fr.weight.abs().max()) == 0.0  # the head stays zero


def test_imagenet_import_names_file_and_key(trunks, tmp_path):
    path = str(tmp_path / "partial.pdparams")
    paddle.save({"features.0.weight": paddle.zeros([64, 3, 3, 3])}, path)
    with pytest.raises(WeightsError, match=r"partial\.pdparams.*features\.0\.bias"):
        trunks["aligned"].load_imagenet(path)
