"""upsample.py's parameter-free helpers: bilinear resize against OpenCV, max unpooling at
the pooling's argmax."""
import itertools

import cv2
import numpy as np
import paddle
import pytest

from paddle_fcn.upsample import bilinear_resize, max_pool_with_indices, max_unpool


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
