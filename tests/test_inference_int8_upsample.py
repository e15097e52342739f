"""The int8 graph's forms of the frozen bilinear upsampler (``inference/int8_upsample.py``):
each computes the frozen ``BilinearUpsample`` exactly, in every geometry, whole and windowed,
on odd sizes; eager here, and under the legacy IR in the int8 export tests
(``test_inference_int8_cpu.py``, ``test_inference_precision.py``)."""
import numpy as np
import paddle
import pytest

from paddle_fcn.inference.int8_upsample import FULL_MAX_CLASSES, InterpolatedUpsample, int8_form
from paddle_fcn.upsample import BilinearUpsample

# (factor, sample_aligned, padding): the padded half-pixel layer (even and odd factors), the
# sample-aligned one, and the reference nets' unpadded one that the head crops.
GEOMETRIES = [(f, sample, pad) for f in (1, 2, 3, 8, 16, 32) for sample, pad in
              ((False, True), (True, True), (False, False))]


@pytest.mark.parametrize("factor, sample_aligned, padding", GEOMETRIES)
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (23, 23), (37, 53)])
def test_interpolated_upsampler_computes_the_frozen_one(factor, sample_aligned, padding, size):
    up = BilinearUpsample(4, factor, padding=padding, sample_aligned=sample_aligned)
    interp = InterpolatedUpsample(up)
    h, w = size
    x = paddle.to_tensor(np.random.default_rng(factor * h).standard_normal(
        (2, 4, h, w)).astype(np.float32))
    want = up(x).numpy()
    assert interp.output_length(h) == want.shape[2] == up.output_length(h)
    # the tolerance is float rounding of the interpolation ratio 1/f (f = 3: ~1e-5)
    np.testing.assert_allclose(interp(x).numpy(), want, rtol=0, atol=3e-5)
    height, width = want.shape[2:]
    for o in sorted({0, factor // 2, min(height, width) // 3}):
        window = (o, height - o - (height - o) // 3, width - o)
        np.testing.assert_allclose(interp(x, window).numpy(), up(x, window).numpy(),
                                   rtol=0, atol=3e-5)


def test_interpolated_upsampler_keeps_a_constant_map_constant_inside():
    """Bilinear interpolation of a constant is that constant away from the border ramp, and
    the ramp is the transposed conv's: the padded x8 layer's first output pixel sits 7/16 of
    an input pixel before the first one, so it weighs 1 - 7/16 = 0.5625 (squared at a corner)."""
    up = BilinearUpsample(2, 8)
    out = InterpolatedUpsample(up)(paddle.ones([1, 2, 6, 7])).numpy()
    np.testing.assert_allclose(out[:, :, 4:-4, 4:-4], 1.0, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 0, 8], 0.5625, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 0, 0], 0.5625 ** 2, atol=1e-6)


def test_int8_form_picks_by_the_number_of_classes():
    few, many = BilinearUpsample(FULL_MAX_CLASSES, 8), BilinearUpsample(FULL_MAX_CLASSES + 1, 8)
    full = int8_form(few)
    assert full.learnable and full.up.weight.shape == [FULL_MAX_CLASSES] * 2 + [16, 16]
    assert isinstance(int8_form(many), InterpolatedUpsample)
    learned = BilinearUpsample(FULL_MAX_CLASSES + 1, 2, learnable=True)
    assert int8_form(learned) is learned
    with pytest.raises(ValueError, match="takes a frozen BilinearUpsample"):
        InterpolatedUpsample(learned)
