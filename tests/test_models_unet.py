"""U-Net (``paddle_fcn.models.unet``): shapes at odd sizes, the paper's configuration, the
encoder's levels, pad-then-crop at sizes that are no multiple of 2**depth, a short overfit."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from fixtures import overfit_losses
from paddle_fcn.models import build_model
from paddle_fcn.models.unet import UNet, UNetEncoder
from paddle_fcn.normalization import IMAGENET

ODD_SIZES = [(23, 37), (65, 47)]


@pytest.mark.parametrize("batch_norm", [True, False])
def test_unet_odd_sizes(batch_norm):
    model = build_model("unet", 4, width=4, batch_norm=batch_norm)
    assert isinstance(model.backbone, UNetEncoder)
    assert model.normalization == IMAGENET
    for height, width in ODD_SIZES + [(1, 1)]:
        out = model(paddle.randn([2, 3, height, width]))
        assert list(out.shape) == [2, 4, height, width]
        assert np.all(out.numpy() == 0.0)  # zero-initialised final 1x1 conv


def test_unet_paper_configuration():
    """width 64, depth 4: 64..1024 channels and the paper's 23 convolutional layers."""
    encoder = UNetEncoder(width=64, depth=4)
    assert list(encoder.out_channels.values()) == [64, 128, 256, 512, 1024]
    model = UNet(2, width=4, depth=4)  # layer count does not depend on width
    convs = [m for m in model.sublayers() if isinstance(m, (paddle.nn.Conv2D,
                                                           paddle.nn.Conv2DTranspose))]
    assert len(convs) == 23
    assert all(m._kernel_size == [2, 2] and m._stride == [2, 2] for m in model.up)


def test_unet_encoder_levels_halve():
    features = UNetEncoder(width=4, depth=3)(paddle.randn([1, 3, 32, 48]))
    shapes = [list(f.shape) for f in features.values()]
    assert shapes == [[1, 4, 32, 48], [1, 8, 16, 24], [1, 16, 8, 12], [1, 32, 4, 6]]


def test_unet_pads_then_crops_to_the_input():
    """Scores for an odd-sized image are the top-left crop of the scores for that image
    zero-padded to a multiple of 2**depth."""
    model = UNet(3, width=4, depth=4)
    model.score.weight.set_value(paddle.randn(model.score.weight.shape))
    model.eval()
    x = paddle.randn([2, 3, 23, 37])
    padded = F.pad(x, [0, 11, 0, 9])  # to 32 x 48
    out, out_padded = model(x).numpy(), model(padded).numpy()
    assert np.abs(out).max() > 0
    np.testing.assert_allclose(out, out_padded[:, :, :23, :37], rtol=1e-5, atol=1e-6)


def test_unet_trains_on_one_image():
    paddle.seed(1)
    model = UNet(2, width=4, depth=2)
    x = paddle.randn([1, 3, 16, 16])
    label = paddle.zeros([1, 16, 16], dtype="int64")
    label[:, 4:12, 4:12] = 1
    losses = overfit_losses(model, x, label)
    assert abs(losses[0] - np.log(2)) < 1e-6
    assert losses[-1] < 0.5 * losses[0]


def test_unet_rejects_bad_options_and_input():
    with pytest.raises(ValueError, match="depth must be a positive integer, got 0"):
        UNet(2, depth=0)
    with pytest.raises(ValueError, match="width must be a positive integer, got 2.5"):
        UNet(2, width=2.5)
    with pytest.raises(ValueError, match=r"N x 3 x H x W input, got shape \[1, 1, 8, 8\]"):
        UNet(2, width=4, depth=1)(paddle.randn([1, 1, 8, 8]))
