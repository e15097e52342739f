"""Upsampling (docs/design.md#upsampling-methods): bilinear kernel, size formula,
transposed-conv upsampler vs OpenCV (half-pixel) and vs np.interp (sample-aligned),
parameter-free bilinear resize, max unpooling."""
import itertools
from fractions import Fraction

import cv2
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddle_fcn.models.fcn import CoordMap, coord_map
from paddle_fcn.upsample import (
    BilinearUpsample, bilinear_kernel, bilinear_resize, conv_transpose_output_size,
    max_pool_with_indices, max_unpool, upsample_geometry,
)


def test_bilinear_kernel_values():
    ramp4 = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(bilinear_kernel(4), np.outer(ramp4, ramp4))
    ramp3 = np.array([0.5, 1.0, 0.5])
    np.testing.assert_allclose(bilinear_kernel(3), np.outer(ramp3, ramp3))
    assert bilinear_kernel(1).tolist() == [[1.0]]
    assert bilinear_kernel(64).dtype == np.float32
    with pytest.raises(ValueError, match="kernel size"):
        bilinear_kernel(0)


def test_upsample_geometry_of_pixel_centres():
    assert upsample_geometry(2) == (4, 2, 1, 0)
    assert upsample_geometry(8) == (16, 8, 4, 0)
    assert upsample_geometry(32) == (64, 32, 16, 0)
    assert upsample_geometry(3) == (5, 3, 1, 0)  # odd: kernel 2f - 1, padding (f - 1) / 2
    assert upsample_geometry(1) == (1, 1, 0, 0)  # identity
    for bad in (0, -2, 2.5, True, "2"):
        with pytest.raises(ValueError, match="factor"):
            upsample_geometry(bad)


def test_size_formula_matches_paddle():
    weight = paddle.ones([1, 1, 1, 1])
    for size, kernel, stride, padding, extra in itertools.product(
            (1, 2, 5), (1, 2, 3, 4), (1, 2, 3), (0, 1), (0, 1)):
        output_padding = extra if extra < stride else 0  # Paddle needs output_padding < stride
        try:
            expected = conv_transpose_output_size(size, kernel, stride, padding, output_padding)
        except ValueError:
            assert (size - 1) * stride - 2 * padding + kernel + output_padding < 1
            continue
        x = paddle.ones([1, 1, size, size])
        out = F.conv2d_transpose(x, weight.expand([1, 1, kernel, kernel]), stride=stride,
                                 padding=padding, output_padding=output_padding)
        assert out.shape[2] == expected, (size, kernel, stride, padding, output_padding)
    assert conv_transpose_output_size(3, 3, 1, 0, dilation=2) == 7


@pytest.mark.parametrize("factor", [1, 2, 3, 8, 32])
def test_upsample_geometry_gives_exact_factor(factor):
    kernel, stride, padding, extra = upsample_geometry(factor)
    for size in (1, 2, 7):
        assert conv_transpose_output_size(size, kernel, stride, padding, extra) == factor * size


@pytest.mark.parametrize("factor, hw", [(2, (7, 9)), (3, (6, 5)), (8, (5, 6)), (32, (4, 3))])
def test_upsampler_equals_opencv_away_from_border(factor, hw):
    image = np.random.rand(*hw).astype(np.float32)
    up = BilinearUpsample(1, factor)
    out = up(paddle.to_tensor(image[None, None])).numpy()[0, 0]
    ref = cv2.resize(image, (hw[1] * factor, hw[0] * factor), interpolation=cv2.INTER_LINEAR)
    assert out.shape == ref.shape
    f = factor
    np.testing.assert_allclose(out[f:-f, f:-f], ref[f:-f, f:-f], atol=1e-5)
    if factor > 1:  # at the border the transposed conv sees zeros, OpenCV the replicated edge
        assert np.abs(out - ref).max() > 0.01


@pytest.mark.parametrize("learnable", [False, True])
def test_upsampler_constant_interior_and_no_channel_mixing(learnable):
    up = BilinearUpsample(3, 8, learnable=learnable)
    x = np.zeros((1, 3, 4, 5), np.float32)
    x[0, 1] = 2.5  # constant map in channel 1 only
    out = up(paddle.to_tensor(x)).numpy()
    assert out.shape == (1, 3, 32, 40)
    np.testing.assert_allclose(out[0, 1, 8:-8, 8:-8], 2.5, rtol=1e-6)
    assert np.all(out[0, [0, 2]] == 0)  # the one-hot channel stayed in its channel
    _assert_parameters(up, learnable, 16)


def _grouped_weight(channels, kernel):
    """The frozen upsampler as the transposed conv it is: ``bilinear_kernel`` per channel,
    groups = channels (what Paddle's ``depthwise_conv2d_transpose`` computes)."""
    return paddle.to_tensor(np.repeat(bilinear_kernel(kernel)[None, None], channels, axis=0))


def _assert_parameters(up, learnable, kernel):
    """Learnable: one ``[C, C, k, k]`` trainable weight. Frozen: no parameter and nothing in
    the state dict (the bilinear kernel is the layer's definition, not a value to load)."""
    if learnable:
        assert [p.shape for p in up.parameters()] == [[3, 3, kernel, kernel]]
        assert not up.up.weight.stop_gradient
    else:
        assert up.parameters() == [] and up.state_dict() == {}


GEOMETRIES = [(f, sample, pad) for f in (1, 2, 3, 8, 32) for sample, pad in
              ((False, True), (True, True), (False, False))]


@pytest.mark.parametrize("factor, sample_aligned, padding", GEOMETRIES)
def test_frozen_upsampler_is_the_grouped_transposed_conv(factor, sample_aligned, padding):
    """The frozen layer runs as two matrix products (separable kernel); it must equal the
    grouped transposed conv with the bilinear kernel in value, output window and gradient,
    for every geometry (half-pixel, sample-aligned, unpadded caffe) and odd sizes."""
    kernel, stride, pad, extra = upsample_geometry(factor, sample_aligned)
    pad = pad if padding else 0
    up = BilinearUpsample(3, factor, padding=padding, sample_aligned=sample_aligned)
    assert (up.kernel_size, up.stride, up.padding) == (kernel, stride, (pad, pad - extra))
    rng = np.random.default_rng(factor)
    for h, w in ((1, 1), (5, 7), (23, 37)):
        data = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        x, x_ref = paddle.to_tensor(data, stop_gradient=False), paddle.to_tensor(
            data, stop_gradient=False)
        ref = F.conv2d_transpose(x_ref, _grouped_weight(3, kernel), stride=stride,
                                 padding=[pad, pad - extra, pad, pad - extra], groups=3)
        out = up(x)
        assert out.shape == ref.shape == [2, 3, up.output_length(h), up.output_length(w)]
        np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-6)
        seed = paddle.to_tensor(rng.standard_normal(ref.shape).astype(np.float32))
        (out * seed).sum().backward()
        (ref * seed).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), x_ref.grad.numpy(), rtol=1e-4, atol=1e-4)
        o, wh, ww = 1, ref.shape[2] - 2, ref.shape[3] - 1  # a window = the crop of the output
        if wh > 0 and ww > 0:
            np.testing.assert_allclose(up(x, (o, wh, ww)).numpy(),
                                       ref.numpy()[:, :, o:o + wh, o:o + ww], atol=1e-6)


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("factor, sample_aligned, padding", GEOMETRIES)
def test_frozen_upsampler_as_transposed_conv_computes_the_same(factor, sample_aligned,
                                                                padding, depthwise):
    """``as_transposed_conv`` (the int8 export's form, full or depthwise) is a learnable layer
    of the same geometry whose output and windows equal the frozen layer's; a learnable one
    is itself."""
    up = BilinearUpsample(3, factor, padding=padding, sample_aligned=sample_aligned)
    conv = up.as_transposed_conv(depthwise)
    assert conv.up.weight.shape == ([3, 1] if depthwise else [3, 3]) + [up.kernel_size] * 2
    assert conv.learnable and (conv.kernel_size, conv.stride, conv.padding) == (
        up.kernel_size, up.stride, up.padding)
    data = np.random.default_rng(factor).standard_normal((2, 3, 5, 7)).astype(np.float32)
    x = paddle.to_tensor(data)
    np.testing.assert_allclose(conv(x).numpy(), up(x).numpy(), atol=1e-5)
    window = (1, up.output_length(5) - 2, up.output_length(7) - 1)
    if window[1] > 0 and window[2] > 0:
        np.testing.assert_allclose(conv(x, window).numpy(), up(x, window).numpy(), atol=1e-5)
    assert conv.as_transposed_conv() is conv


@pytest.mark.parametrize("learnable", [False, True])
def test_bad_input_or_window_is_refused(learnable):
    up = BilinearUpsample(2, 8, learnable=learnable)
    x = paddle.zeros([1, 2, 3, 4])  # output 24 x 32
    assert up(x, (0, 24, 32)).shape == [1, 2, 24, 32]
    for window in ((1, 24, 32), (0, 25, 8), (8, 8, 25), (-1, 2, 2), (0, 0, 4)):
        with pytest.raises(ValueError, match="does not fit its 24 x 32 output"):
            up(x, window)
    for bad in (paddle.zeros([1, 3, 3, 4]), paddle.zeros([2, 3, 4])):  # 3 channels; no batch
        with pytest.raises(ValueError, match=r"x8 expects N x 2 x H x W input, got shape"):
            up(bad)


class _Window(paddle.nn.Layer):
    def __init__(self, up):
        super().__init__()
        self.up = up

    def forward(self, x):
        return self.up(x, (1, x.shape[2] * 2, x.shape[3] * 3))


def test_frozen_upsampler_window_in_a_static_graph():
    """Under paddle.jit.to_static the sizes are tensors: the matrices follow them."""
    up = BilinearUpsample(2, 8, padding=False)
    spec = paddle.static.InputSpec([None, 2, None, None], "float32")
    static = paddle.jit.to_static(_Window(up), input_spec=[spec], full_graph=True)
    for h, w in ((3, 5), (4, 2)):
        x = paddle.to_tensor(np.random.rand(1, 2, h, w).astype(np.float32))
        np.testing.assert_allclose(static(x).numpy(), _Window(up)(x).numpy(), atol=1e-6)


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
    ref = F.conv2d_transpose(x, _grouped_weight(2, kernel), stride=stride, padding=padding,
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
    _assert_parameters(up, learnable, 15)
    with pytest.raises(ValueError, match="sample_aligned=True needs padding=True"):
        BilinearUpsample(3, 8, sample_aligned=True, padding=False)


def test_unpadded_upsampler_is_the_padded_one_uncropped():
    # caffe geometry: kernel 2f, stride f, padding 0 -> (h - 1) f + 2f, the aligned map
    # plus f/2 extra pixels on each side
    x = paddle.to_tensor(np.random.rand(1, 2, 3, 4).astype(np.float32))
    aligned = BilinearUpsample(2, 8)(x).numpy()
    caffe = BilinearUpsample(2, 8, padding=False)(x).numpy()
    assert caffe.shape == (1, 2, 2 * 8 + 16, 3 * 8 + 16)
    np.testing.assert_allclose(caffe[:, :, 4:-4, 4:-4], aligned, atol=1e-6)


def test_upsampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        BilinearUpsample(0, 2)
    with pytest.raises(ValueError, match="factor"):
        BilinearUpsample(2, 0)


@pytest.mark.parametrize("size", [(13, 11), (10, 14), (3, 4), (2, 3), (1, 1), (1, 7), (5, 1),
                                  (5, 7), (40, 3)])
def test_bilinear_resize_equals_opencv(size):
    image = np.random.rand(2, 3, 5, 7).astype(np.float32)
    out = bilinear_resize(paddle.to_tensor(image), size).numpy()
    assert out.shape == (2, 3) + size
    for n, c in itertools.product(range(2), range(3)):
        ref = cv2.resize(image[n, c], (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(out[n, c], ref.reshape(size), atol=1e-6)


def test_bilinear_resize_rejects_bad_size():
    x = paddle.zeros([1, 1, 4, 4])
    with pytest.raises(ValueError, match="size"):
        bilinear_resize(x, (0, 3))
    with pytest.raises(ValueError, match="size"):
        bilinear_resize(x, (2, 3, 4))


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_unpool_restores_values_at_argmax(ceil_mode):
    # a permutation, so every window has a unique maximum
    x = np.random.permutation(2 * 5 * 7).reshape(1, 2, 5, 7).astype(np.float32)
    pooled, indices = max_pool_with_indices(paddle.to_tensor(x), 2, ceil_mode=ceil_mode)
    out = max_unpool(pooled, indices, (5, 7)).numpy()
    expected = np.zeros_like(x)
    rows, cols = pooled.shape[2], pooled.shape[3]
    for c, i, j in itertools.product(range(2), range(rows), range(cols)):
        window = x[0, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        di, dj = np.unravel_index(np.argmax(window), window.shape)
        expected[0, c, 2 * i + di, 2 * j + dj] = window.max()
    assert (rows, cols) == ((3, 4) if ceil_mode else (2, 3))
    np.testing.assert_array_equal(out, expected)
    assert np.count_nonzero(out) == 2 * rows * cols


def test_max_unpool_rejects_mismatched_indices():
    pooled, indices = max_pool_with_indices(paddle.rand([1, 1, 4, 4]), 2)
    with pytest.raises(ValueError, match="differ in shape"):
        max_unpool(pooled, indices[:, :, :1], (4, 4))
