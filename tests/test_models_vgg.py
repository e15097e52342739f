"""VGG16 trunk, FC -> conv conversion (SPEC §1), the FCN head in both geometries (SPEC §2-5)
and the ImageNet import. VGG16 is heavy (134 M parameters): one trunk per geometry is built
once and shared by the three heads; inputs are tiny."""
import numpy as np
import paddle
import pytest
from paddle.vision.models import vgg16
from paddle.vision.models.vgg import VGG, make_layers

from paddle_fcn.models.fcn import FCN, crop_offset
from paddle_fcn.models.fcn_vgg import fcn8s_vgg16, fcn32s_vgg16
from paddle_fcn.models.resnet import ResNetBackbone
from paddle_fcn.models.vgg import VGG16Backbone, convolutionalize, fc_to_conv
from paddle_fcn.models.weights import WeightsError

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
    assert model.upscore8.up.weight.stop_gradient  # final bilinear upsampler fixed
    assert not model.upscore2.up.weight.stop_gradient  # x2 upsamplers learned
    assert not model.upscore_pool4.up.weight.stop_gradient
    learnable = FCN(aligned, CLASSES, "32s", learnable_upsample=True)
    assert not learnable.upscore.up.weight.stop_gradient
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
