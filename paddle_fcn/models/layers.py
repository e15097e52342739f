"""Layers with a faster training path on Paddle 3.3.1's CPU kernels; same parameters, same
values, same state-dict keys as the plain ones."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.autograd import PyLayer

__all__ = ["BiasConv2D"]


class _BiasAdd(PyLayer):
    """``x + bias`` over the channels of ``N x C x H x W``; the bias gradient is one matmul."""

    @staticmethod
    def forward(ctx, x, bias):
        ctx.x_needs_grad = not x.stop_gradient  # Paddle refuses a gradient it did not ask for
        return x + bias.reshape([1, -1, 1, 1])

    @staticmethod
    def backward(ctx, grad):
        n, c = grad.shape[0], grad.shape[1]
        ones = paddle.ones([grad.shape[2] * grad.shape[3], 1], grad.dtype)
        bias_grad = paddle.matmul(grad.reshape([n, c, -1]), ones).sum(axis=0).reshape([c])
        return (grad if ctx.x_needs_grad else None), bias_grad


class BiasConv2D(nn.Conv2D):
    """``nn.Conv2D`` (same arguments, parameters and state-dict keys) whose bias gradient is
    one matrix product. Paddle's conv adds its bias as a broadcast ``add`` whose backward, a
    sum over N, H and W, is slow on the CPU; the matmul gives the same gradient
    (docs/performance.md#training-speed: the bias lever). Static graphs (export,
    ``to_static``), frozen biases and other layouts take the plain path."""

    def forward(self, x):
        if (self.bias is None or self.bias.stop_gradient or not paddle.in_dynamic_mode()
                or self._data_format != "NCHW" or self._padding_mode != "zeros"):
            return super().forward(x)
        y = F.conv2d(x, self.weight, None, self._stride, self._padding, self._dilation,
                     self._groups)
        return _BiasAdd.apply(y, self.bias)
