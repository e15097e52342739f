"""Sample-aligned upsampling (docs/design.md#upsampling-methods): the geometry, exact sizes in
the formula and in Paddle, where an impulse lands, np.interp between samples, constants and
no channel mixing, and a static graph with dynamic H, W."""
from fractions import Fraction

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from fixtures import assert_upsampler_parameters, grouped_bilinear_weight

from paddle_fcn.models.fcn import CoordMap, coord_map
from paddle_fcn.upsample import BilinearUpsample, conv_transpose_output_size, upsample_geometry


def test_upsample_geometry():
    assert upsample_geometry(8) == (16, 8, 4, 0)  # the blog's
    assert upsample_geometry(2, sample_aligned=True) == (3, 2, 1, 1)
    assert upsample_geometry(8, sample_aligned=True) == (15, 8, 7, 7)
    assert upsample_geometry(32, sample_aligned=True) == (63, 32, 31, 31)
    assert upsample_geometry(1, sample_aligned=True) == (1, 1, 0, 0)
    with pytest.raises(ValueError, match="factor"):
        upsample_geometry(0, sample_aligned=True)


@pytest.mark.parametrize("factor", [1, 2, 3, 8, 16, 32])
def test_sample_aligned_size_is_exact_in_formula_and_paddle(factor):
    kernel, stride, padding, extra = upsample_geometry(factor, sample_aligned=True)
    up = BilinearUpsample(1, factor, sample_aligned=True)
    for size in (1, 2, 5):
        assert conv_transpose_output_size(size, kernel, stride, padding, extra) == factor * size
        assert up(paddle.ones([1, 1, size, size + 1])).shape == [1, 1, factor * size,
                                                                 factor * (size + 1)]


@pytest.mark.parametrize("factor", [2, 8])
def test_sample_aligned_layer_is_the_output_padding_one_and_exports(factor):
    """The layer (padding f-1 top/left, 0 bottom/right) equals Paddle's transposed conv with
    padding f-1, output_padding f-1, and keeps dynamic H, W in a static graph (what
    paddle.jit.save traces; with output_padding Paddle 3.3 infers 0-sized H, W there, so a
    fusion that crops to the upsampled size fails)."""
    kernel, stride, padding, extra = upsample_geometry(factor, sample_aligned=True)
    up = BilinearUpsample(2, factor, sample_aligned=True)
    x = paddle.to_tensor(np.random.rand(1, 2, 3, 5).astype(np.float32))
    ref = F.conv2d_transpose(x, grouped_bilinear_weight(2, kernel), stride=stride, padding=padding,
                             output_padding=extra, groups=2)
    np.testing.assert_allclose(up(x).numpy(), ref.numpy(), atol=1e-6)
    spec = paddle.static.InputSpec([None, 2, None, None], "float32")
    static = paddle.jit.to_static(_Fuse(up), input_spec=[spec, spec], full_graph=True)
    for h, w in ((3, 5), (4, 2)):
        coarse = paddle.to_tensor(np.random.rand(1, 2, h, w).astype(np.float32))
        fine = paddle.to_tensor(np.random.rand(1, 2, h * factor, w * factor).astype(np.float32))
        np.testing.assert_allclose(static(coarse, fine).numpy(), (up(coarse) + fine).numpy(),
                                   atol=1e-6)


class _Fuse(paddle.nn.Layer):
    """An FCN fusion: upsampled coarse scores + the finer scores cropped to their size (the
    crop reads the upsampled map's shape, as ``Alignment.crop`` does)."""

    def __init__(self, up):
        super().__init__()
        self.up = up

    def forward(self, coarse, fine):
        up = self.up(coarse)
        return up + fine[:, :, :up.shape[2], :up.shape[3]]


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_where_an_impulse_lands(factor):
    """Input pixel x peaks at output f x (sample-aligned) or between f x + (f-1)/2 's two
    neighbours (half-pixel), as coord_map of the layer says."""
    f, x = factor, 2
    impulse = np.zeros((1, 1, 5, 5), np.float32)
    impulse[0, 0, x, x] = 1.0
    sample = BilinearUpsample(1, f, sample_aligned=True)
    half = BilinearUpsample(1, f)
    assert coord_map([sample]) == CoordMap(Fraction(1, f), Fraction(0))
    assert coord_map([half]) == CoordMap(Fraction(1, f), Fraction(-(f - 1), 2 * f))
    learned = BilinearUpsample(1, f, learnable=True, sample_aligned=True)
    assert coord_map([learned.up]) == coord_map([sample])  # its Conv2DTranspose maps alike
    row = sample(paddle.to_tensor(impulse)).numpy()[0, 0, f * x]
    assert np.argmax(row) == f * x and row[f * x] == 1.0
    np.testing.assert_allclose(row, np.maximum(0, 1 - np.abs(np.arange(5 * f) - f * x) / f),
                               atol=1e-6)  # the tent of linear interpolation
    row = half(paddle.to_tensor(impulse)).numpy()[0, 0, f * x + f // 2]
    left, right = f * x + f // 2 - 1, f * x + f // 2  # the two pixels around f x + (f-1)/2
    assert row[left] == row[right] == row.max() and np.sum(row == row.max()) == 2


@pytest.mark.parametrize("factor, hw", [(2, (7, 9)), (3, (6, 5)), (8, (5, 6)), (32, (3, 4))])
def test_sample_aligned_is_np_interp_between_samples(factor, hw):
    f = factor
    image = np.random.RandomState(f).rand(*hw).astype(np.float32)
    out = BilinearUpsample(1, f, sample_aligned=True)(paddle.to_tensor(image[None, None]))
    out = out.numpy()[0, 0]
    assert out.shape == (hw[0] * f, hw[1] * f)
    rows, cols = np.arange(f * (hw[0] - 1) + 1), np.arange(f * (hw[1] - 1) + 1)
    # separable: interpolate along each row at the sample points f * j, then along columns
    along = np.stack([np.interp(cols, f * np.arange(hw[1]), r) for r in image])
    ref = np.stack([np.interp(rows, f * np.arange(hw[0]), c) for c in along.T], axis=1)
    np.testing.assert_allclose(out[:len(rows), :len(cols)], ref, atol=1e-5)
    if f > 1:  # past the last sample the layer ramps towards the zeros beyond the map
        np.testing.assert_allclose(out[0, len(cols):],
                                   image[0, -1] * (1 - np.arange(1, f) / f), atol=1e-5)


@pytest.mark.parametrize("learnable", [False, True])
def test_sample_aligned_constant_and_no_channel_mixing(learnable):
    up = BilinearUpsample(3, 8, learnable=learnable, sample_aligned=True)
    x = np.zeros((1, 3, 4, 5), np.float32)
    x[0, 1] = 2.5
    out = up(paddle.to_tensor(x)).numpy()
    assert out.shape == (1, 3, 32, 40)
    np.testing.assert_allclose(out[0, 1, :25, :33], 2.5, rtol=1e-6)  # up to the last sample
    assert np.all(out[0, [0, 2]] == 0)
    assert_upsampler_parameters(up, learnable, 15)
    with pytest.raises(ValueError, match="sample_aligned=True needs padding=True"):
        BilinearUpsample(3, 8, sample_aligned=True, padding=False)
