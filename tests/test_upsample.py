"""Upsampling (docs/design.md#upsampling-methods): bilinear kernel, size formula, the
half-pixel transposed-conv upsampler against OpenCV, its frozen forms, bad input. Sample-aligned
upsampling: test_upsample_sample_aligned.py; resize and unpooling: test_upsample_resize_unpool.py."""
import itertools

import cv2
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from fixtures import assert_upsampler_parameters, grouped_bilinear_weight

from paddle_fcn.upsample import (
    BilinearUpsample, bilinear_kernel, conv_transpose_output_size, upsample_geometry,
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
    assert_upsampler_parameters(up, learnable, 16)


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
        ref = F.conv2d_transpose(x_ref, grouped_bilinear_weight(3, kernel), stride=stride,
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


@pytest.mark.parametrize("factor, sample_aligned, padding", GEOMETRIES)
def test_frozen_upsampler_as_transposed_conv_computes_the_same(factor, sample_aligned,
                                                                padding):
    """``as_transposed_conv`` (an int8 export's form) is a learnable layer of the same geometry
    whose output and windows equal the frozen layer's; a learnable one is itself."""
    up = BilinearUpsample(3, factor, padding=padding, sample_aligned=sample_aligned)
    conv = up.as_transposed_conv()
    assert conv.up.weight.shape == [3, 3] + [up.kernel_size] * 2
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
