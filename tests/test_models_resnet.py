"""FCN on ResNet (``paddle_fcn.models.resnet``): shapes at odd sizes, strides, initial
outputs, structure, and where the upsampled scores land (pixel x of a 1/s map is image
pixel s x)."""
from fractions import Fraction

import numpy as np
import paddle
import pytest

from fcn_heads import impulse_response
from fixtures import overfit_losses
from paddle_fcn.models import build_model
from paddle_fcn.models.fcn import IMAGE, CoordMap, coord_map
from paddle_fcn.models.resnet import ResNetBackbone
from paddle_fcn.normalization import IMAGENET
from paddle_fcn.upsample import BilinearUpsample

ODD_SIZES = [(23, 37), (65, 47)]


@pytest.mark.parametrize("depth", [18, 34, 50])
@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_fcn_resnet_odd_sizes_give_zero_scores_of_input_size(depth, variant):
    model = build_model(f"fcn{variant}_resnet{depth}", 5, width=8)
    assert isinstance(model.backbone, ResNetBackbone)
    assert model.normalization == IMAGENET
    for height, width in ODD_SIZES:
        out = model(paddle.randn([2, 3, height, width]))
        assert list(out.shape) == [2, 5, height, width]
        # score layers start at zero, so a fresh FCN predicts uniform class probabilities
        assert np.all(out.numpy() == 0.0)


def test_fcn8s_resnet34_full_width_on_a_tiny_input():
    model = build_model("fcn8s_resnet34", 21)
    model.eval()
    out = model(paddle.randn([1, 3, 33, 30]))
    assert list(out.shape) == [1, 21, 33, 30] and np.all(out.numpy() == 0.0)


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_backbone_strides_are_exact_on_a_multiple_of_32(depth):
    backbone = ResNetBackbone(depth, width=8)
    features = backbone(paddle.randn([1, 3, 64, 96]))
    expansion = 4 if depth == 50 else 1
    expected = {"layer1": (16, 24), "layer2": (8, 12), "layer3": (4, 6), "layer4": (2, 3)}
    for name, (h, w) in expected.items():
        channels = backbone.out_channels[name]
        assert list(features[name].shape) == [1, channels, h, w], name
    assert backbone.skip_names == ("layer2", "layer3", "layer4")
    assert backbone.out_channels["layer4"] == 64 * expansion  # width 8 x 8 (x4 bottleneck)


def test_backbone_on_odd_sizes_rounds_up():
    features = ResNetBackbone(18, width=8)(paddle.randn([1, 3, 65, 33]))
    # every stride-2 layer maps n -> ceil(n / 2)
    assert list(features["layer2"].shape[2:]) == [9, 5]
    assert list(features["layer4"].shape[2:]) == [3, 2]


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_backbone_matches_paddle_vision_resnet(depth):
    reference = getattr(paddle.vision.models, f"resnet{depth}")()
    backbone = ResNetBackbone(depth)
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    assert {k: list(v.shape) for k, v in backbone.state_dict().items()} == \
        {k: list(v.shape) for k, v in expected.items()}
    backbone.set_state_dict(expected)
    reference.eval(), backbone.eval()
    x = paddle.randn([1, 3, 32, 64])
    trunk = paddle.nn.Sequential(reference.conv1, reference.bn1, reference.relu, reference.maxpool,
                                 reference.layer1, reference.layer2, reference.layer3,
                                 reference.layer4)
    np.testing.assert_allclose(backbone(x)["layer4"].numpy(), trunk(x).numpy(), rtol=0, atol=0)


def test_resnet_rejects_bad_depth_and_width():
    with pytest.raises(ValueError, match="depth must be one of \\[18, 34, 50\\], got 101"):
        ResNetBackbone(101)
    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        ResNetBackbone(18, width=0)


def test_fcn_resnet_trains_on_one_image():
    paddle.seed(1)
    model = build_model("fcn8s_resnet18", 2, width=8, learnable_upsample=True)
    x = paddle.randn([1, 3, 32, 32])
    label = paddle.zeros([1, 32, 32], dtype="int64")
    label[:, :, 16:] = 1  # right half is class 1
    losses = overfit_losses(model, x, label)
    assert abs(losses[0] - np.log(2)) < 1e-6  # zero scores: loss is ln C
    assert losses[-1] < 0.5 * losses[0]


# ----------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("depth", [18, 34, 50])
def test_path_to_puts_stage_pixels_on_stride_multiples(depth):
    backbone = ResNetBackbone(depth, width=8)
    for name, stride in (("layer1", 4), ("layer2", 8), ("layer3", 16), ("layer4", 32)):
        assert coord_map(backbone.path_to(name)) == CoordMap(Fraction(stride), Fraction(0))
    assert backbone.path_to("layer2")[:2] == [backbone.conv1, backbone.maxpool]
    with pytest.raises(KeyError, match="no feature 'pool3'; known: layer1, layer2"):
        backbone.path_to("pool3")


def test_shortcut_check_catches_a_misaligned_downsample():
    backbone = ResNetBackbone(18, width=8)
    backbone.layer3[0].downsample[0]._padding = [1, 1]  # 1x1/2 conv padded: centres at 2x - 1
    with pytest.raises(ValueError, match="layer3.0: residual branch .* cannot be summed"):
        backbone._check_shortcuts()


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_every_fusion_and_the_output_need_no_crop(variant):
    model = build_model(f"fcn{variant}_resnet18", 3, width=8)
    pairs = list(model.crop_paths().values())  # along model.stages: each fusion, the output
    assert len(pairs) == len(model.stages)
    for layers, reference in pairs:
        assert coord_map(layers) == coord_map(reference)
    assert coord_map(pairs[-1][0]) == IMAGE
    assert set(model.align.offsets.values()) == {0}
    ups = [m for m in model.sublayers() if isinstance(m, BilinearUpsample)]
    assert ups and all(m.sample_aligned for m in ups)  # ResNet grids are samples, not cells


@pytest.mark.parametrize("variant, level, row, col", [
    ("32s", 32, 1, 2), ("16s", 32, 1, 2), ("16s", 16, 3, 5), ("8s", 32, 2, 1),
    ("8s", 16, 3, 5), ("8s", 8, 6, 9)])
def test_impulse_peaks_where_coord_map_says(variant, level, row, col):
    model = build_model(f"fcn{variant}_resnet18", 2, width=8)
    feature = {32: "layer4", 16: "layer3", 8: "layer2"}[level]
    grid = coord_map(model.backbone.path_to(feature))
    assert grid == CoordMap(Fraction(level), Fraction(0))
    out = impulse_response(model, level, row, col)
    assert out.shape == (96, 128)
    peak = np.unravel_index(np.argmax(out), out.shape)
    assert peak == (level * row, level * col)  # a unique maximum exactly on the sample
    assert np.sum(np.isclose(out, out.max(), rtol=1e-6)) == 1


def test_blog_geometry_would_put_layer2_scores_3_5_pixels_off():
    """The reviewer's finding, kept as the reason for sample-aligned upsamplers: the blog's
    x8 (kernel 16, padding 4) puts layer2 pixel 2 (image 16) at columns 19-20."""
    model = build_model("fcn8s_resnet18", 1, width=8)
    blog = BilinearUpsample(1, 8)
    assert coord_map(model.backbone.path_to("layer2") + [blog]) == \
        CoordMap(Fraction(1), Fraction(-7, 2))  # output pixel y shows image y - 3.5
    impulse = np.zeros((1, 1, 4, 4), np.float32)
    impulse[0, 0, 2, 2] = 1.0
    for up, peak in ((blog, [19, 20]), (model.upscore8, [16])):
        profile = up(paddle.to_tensor(impulse)).numpy()[0, 0].max(axis=0)
        assert np.flatnonzero(np.isclose(profile, profile.max())).tolist() == peak


@pytest.mark.parametrize("skip", [True, False])
def test_learnable_skip_upsample(skip):
    model = build_model("fcn8s_resnet18", 3, width=8, learnable_skip_upsample=skip)
    for name in ("upscore2", "upscore_pool4"):
        layer = getattr(model, name)
        assert layer.learnable is skip and layer.kernel_size == 3
        assert [p.shape for p in layer.parameters()] == ([[3, 3, 3, 3]] if skip else [])
        assert all(not p.stop_gradient for p in layer.parameters())
    assert not model.upscore8.learnable  # the final one follows learnable_upsample
    assert model.upscore8.parameters() == []
    with pytest.raises(ValueError, match="learnable_skip_upsample must be True or False"):
        build_model("fcn8s_resnet18", 3, width=8, learnable_skip_upsample="no")
