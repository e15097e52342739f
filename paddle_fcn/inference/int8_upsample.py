"""The frozen bilinear upsampler in the forms the CPU int8 graph can save and runs fast.

The int8 graph is a legacy-IR program (``int8_cpu.py``), where the frozen ``BilinearUpsample``'s
matrix products do not save (``paddle.matmul`` rejects the graph's variables), so
``int8_form`` gives each one a form that computes the same values with other ops:

* up to ``FULL_MAX_CLASSES`` classes, the full ``C x C`` transposed conv holding the bilinear
  kernel on its channel diagonal (``BilinearUpsample.as_transposed_conv``): oneDNN's
  deconvolution, the fastest form for few classes, but it does C multiply-adds per output
  value, so its cost grows with C^2;
* above, ``InterpolatedUpsample``: bilinear interpolation of each channel on its own
  (``bilinear_interp_v2``), whose cost grows with C.

Both stay fp32 inside the int8 graph (``precision.INT8_CPU_OPS`` quantizes convs and pools).
Timings and the crossover: docs/performance.md#int8-on-cpu.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_fcn.upsample import BilinearUpsample

__all__ = ["FULL_MAX_CLASSES", "InterpolatedUpsample", "int8_form"]

# Upsamplers of up to this many classes stay a full C x C transposed conv; wider ones are
# interpolated. Measured on an AMX Xeon (docs/performance.md#many-classes-and-the-upsamplers):
# the full form is faster up to 32 classes, the x8 forms are even from 40 to 60, and the x32
# interpolation is 26-28 % faster at 40 and 60; not measured on other CPUs.
FULL_MAX_CLASSES = 40


def int8_form(up):
    """``up`` (a ``BilinearUpsample``) as the int8 graph runs it: a learnable one is returned
    as it is, a frozen one as its full transposed conv (``<= FULL_MAX_CLASSES`` channels) or
    as an ``InterpolatedUpsample``. Each computes ``up``'s values, float rounding aside."""
    if up.learnable:
        return up
    if up.channels <= FULL_MAX_CLASSES:
        return up.as_transposed_conv()
    return InterpolatedUpsample(up)


class InterpolatedUpsample(nn.Layer):
    """A frozen ``BilinearUpsample`` computed by bilinear interpolation: the same
    ``N x C x h x w`` -> ``N x C x H x W`` map and ``forward(x, window)`` contract, in any of
    its geometries (padded or caffe, half-pixel or sample-aligned, even or odd factor).

    Why it is equal: the transposed conv's output pixel o (along an axis) weighs input pixel
    i by ``1 - |c(o) - i|`` (0 from one pixel away), ``c(o) = (o + leading - centre) / f``
    with ``upsample_filt``'s centre (``upsample.bilinear_kernel``), and sees zeros beyond the
    map: it is the linear interpolation at ``c(o)`` of the map extended by zeros. Padded with one
    zero pixel on each side, the map holds every ``c(o) + 1`` in its range ``[0, h + 1]``,
    so interpolating it clamps nothing. Paddle's ``bilinear_interp_v2`` to ``(h + 2) f``
    samples its output o' at ``(o' + 0.5) / f - 0.5`` (``align_mode=0``) or ``o' / f``
    (``align_mode=1``): an even kernel (centre ``f - 1/2``) is the first at
    ``o' = o + leading + f / 2``, an odd one (centre ``f - 1``) the second at
    ``o' = o + leading + 1``. The int8 graph runs Paddle's native interpolation kernel: its
    oneDNN one ignores ``align_mode`` (tests/test_inference_int8_upsample.py runs the saved
    graph as the int8 Predictor does). The interpolated map is up to ``(1 + 2 / h)^2`` times the
    output's area: for FCN-32s at 512 x 512 (h = 16) 27 % more, still cheaper than C x C.
    """

    def __init__(self, up):
        super().__init__()
        if not isinstance(up, BilinearUpsample) or up.learnable:
            raise ValueError(f"InterpolatedUpsample takes a frozen BilinearUpsample, got "
                             f"{up!r}")
        self.channels, self.factor, self.learnable = up.channels, up.factor, False
        self.kernel_size, self.stride, self.padding = up.kernel_size, up.stride, up.padding
        # upsample_geometry's kernels: 2f taps (even, f even) or 2f - 1 (odd)
        leading, even = up.padding[0], up.kernel_size % 2 == 0
        self.align_mode = 0 if even else 1
        self.shift = leading + (self.factor // 2 if even else 1)

    def output_length(self, length):
        """Output size along an axis of input size ``length``, as the upsampler it replaces."""
        return BilinearUpsample.output_length(self, length)  # reads the same three attributes

    def forward(self, x, window=None):
        if paddle.in_dynamic_mode():  # sizes are ints here; a slice would clamp silently
            BilinearUpsample._check_input(self, x, window)  # reads the same attributes
        if window is None:
            window = (0, self.output_length(x.shape[2]), self.output_length(x.shape[3]))
        o, height, width = window
        f, start = self.factor, self.shift + o
        extended = F.pad(x, [1, 1, 1, 1])  # the zeros the transposed conv sees beyond the map
        y = F.interpolate(extended, size=[(x.shape[2] + 2) * f, (x.shape[3] + 2) * f],
                          mode="bilinear", align_corners=False, align_mode=self.align_mode)
        return y[:, :, start:start + height, start:start + width]

    def extra_repr(self):
        return (f"channels={self.channels}, factor={self.factor}, "
                f"align_mode={self.align_mode}, shift={self.shift}")
