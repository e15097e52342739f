"""Staged training (docs/design.md#staged-training): FCN-16s from a trained FCN-32s, FCN-8s
from an FCN-16s.

What holds exactly at the moment of transfer: the trunk and the coarse scores are the
source's, and the new skip adds zero, so the target's output is its own upsampling chain
applied to the source's coarse scores. What does not hold: bit-identical outputs, because
bilinear x2 followed by x16 (or x8) is not bilinear x32 (or x16): at a coarse pixel centre the
chain gives 3/4 f_j + 1/8 (f_j-1 + f_j+1) instead of f_j. Per axis the difference is at most
1/8 of the largest second difference of the coarse map, so in the interior
|target - source| <= (max|d2x f| + max|d2y f|) / 8, with equality of the two only where the
coarse scores are affine.
"""
import numpy as np
import paddle
import pytest

from paddle_fcn.models.fcn_vgg import fcn8s_vgg16, fcn16s_vgg16, fcn32s_vgg16
from paddle_fcn.models.resnet import fcn16s_resnet18, fcn16s_resnet34, fcn32s_resnet18
from paddle_fcn.models.staged import transfer_weights

CLASSES = 3
HEIGHT, WIDTH = 96, 128  # fc7 3 x 4: enough coarse cells for an interior away from borders


def _randomise(layer, scale):
    """Stand-in for training: give a zero-initialised score layer non-zero weights."""
    layer.weight.set_value(scale * np.random.randn(*layer.weight.shape).astype(np.float32))
    layer.bias.set_value(np.random.randn(*layer.bias.shape).astype(np.float32))


def _second_difference_bound(coarse):
    """(max |d2 along rows| + max |d2 along columns|) / 8 of an N x C x h x w map."""
    rows = np.abs(coarse[:, :, 2:] - 2 * coarse[:, :, 1:-1] + coarse[:, :, :-2]).max()
    cols = np.abs(coarse[..., 2:] - 2 * coarse[..., 1:-1] + coarse[..., :-2]).max()
    return (rows + cols) / 8


@pytest.fixture(scope="module")
def chain():
    """FCN-32s ("trained") -> FCN-16s -> FCN-8s, each transferred from the previous, eval mode."""
    np.random.seed(0)
    paddle.seed(0)
    x = paddle.randn([1, 3, HEIGHT, WIDTH])
    fcn32 = fcn32s_vgg16(CLASSES)
    fcn32.eval()
    scale = 1.0 / float(fcn32.backbone(x)["fc7"].abs().max())  # scores of order 1
    _randomise(fcn32.score_fr, scale)
    fcn16 = fcn16s_vgg16(CLASSES)
    fcn16.eval()
    report16 = transfer_weights(fcn32, fcn16)
    with paddle.no_grad():
        out32, out16_at_transfer = fcn32(x).numpy(), fcn16(x).numpy()
    _randomise(fcn16.score_pool4, scale)  # "train" the new skip
    fcn8 = fcn8s_vgg16(CLASSES)
    fcn8.eval()
    report8 = transfer_weights(fcn16, fcn8)
    return dict(x=x, fcn32=fcn32, fcn16=fcn16, fcn8=fcn8, out32=out32,
                out16_at_transfer=out16_at_transfer, report16=report16, report8=report8)


def test_reports_list_copied_and_new_layers(chain):
    report16, report8 = chain["report16"], chain["report8"]
    assert "backbone.fc6.weight" in report16.copied and "score_fr.weight" in report16.copied
    # frozen upsamplers (upscore, upscore16, upscore8) have no parameter to transfer
    assert sorted(report16.left) == ["score_pool4.bias", "score_pool4.weight",
                                     "upscore2.up.weight"]
    assert report16.unused == [] and report16.skipped == []
    for key in ("upscore2.up.weight", "score_pool4.weight", "score_fr.bias"):
        assert key in report8.copied
    assert sorted(report8.left) == ["score_pool3.bias", "score_pool3.weight",
                                    "upscore_pool4.up.weight"]
    assert float(chain["fcn8"].score_pool3.weight.abs().max()) == 0.0  # new skip stays zero


def test_16s_from_32s_keeps_coarse_scores(chain):
    fcn32, fcn16, x = chain["fcn32"], chain["fcn16"], chain["x"]
    with paddle.no_grad():
        features32, features16 = fcn32.backbone(x), fcn16.backbone(x)
        coarse32 = fcn32.score_fr(features32["fc7"])
        coarse16 = fcn16.score_fr(features16["fc7"])
    np.testing.assert_array_equal(coarse16.numpy(), coarse32.numpy())
    # the new skip was zero at transfer: the output was upscore16(upscore2(source scores))
    with paddle.no_grad():
        chained = fcn16.upscore16(fcn16.upscore2(coarse32))[:, :, :HEIGHT, :WIDTH].numpy()
    np.testing.assert_allclose(chain["out16_at_transfer"], chained, atol=1e-5)
    # ... which is close to, but not the same as, the source's direct x32 upsampling
    out32, out16 = chain["out32"], chain["out16_at_transfer"]
    diff = np.abs(out16 - out32)[:, :, 32:-32, 32:-32]
    bound = _second_difference_bound(coarse32.numpy())
    assert 0 < diff.max() <= bound + 1e-5


def test_8s_from_16s_keeps_fused_scores(chain):
    fcn16, fcn8, x = chain["fcn16"], chain["fcn8"], chain["x"]
    with paddle.no_grad():
        features = fcn16.backbone(x)
        fused = fcn16.upscore2(fcn16.score_fr(features["fc7"])) \
            + fcn16.score_pool4(features["pool4"])  # fuse_pool4, 1/16
        out16, out8 = fcn16(x).numpy(), fcn8(x).numpy()
        chained = fcn8.upscore8(fcn8.upscore_pool4(fused))[:, :, :HEIGHT, :WIDTH].numpy()
    assert float(fcn16.score_pool4.weight.abs().max()) > 0  # the copied skip is live
    np.testing.assert_allclose(out8, chained, atol=1e-5)
    diff = np.abs(out8 - out16)[:, :, 16:-16, 16:-16]
    assert 0 < diff.max() <= _second_difference_bound(fused.numpy()) + 1e-5


def test_transfer_from_pdparams_path(tmp_path):
    source = fcn32s_resnet18(CLASSES, width=8)
    _randomise(source.score_fr, 0.1)
    path = str(tmp_path / "fcn32s.pdparams")
    paddle.save(source.state_dict(), path)
    target = fcn16s_resnet18(CLASSES, width=8)
    report = transfer_weights(path, target)
    assert report.source == path and "backbone.bn1._mean" in report.copied
    np.testing.assert_array_equal(target.score_fr.weight.numpy(), source.score_fr.weight.numpy())
    assert float(target.score_pool4.weight.abs().max()) == 0.0


def test_transfer_rejects_other_classes_or_backbone():
    source = fcn32s_resnet18(CLASSES, width=8)
    with pytest.raises(ValueError, match="scores 3 classes but the target 4"):
        transfer_weights(source, fcn16s_resnet18(4, width=8))
    with pytest.raises(ValueError, match="different backbones"):
        transfer_weights(source, fcn16s_resnet34(CLASSES, width=8))
    with pytest.raises(TypeError, match="model or a .pdparams path"):
        transfer_weights(42, source)
