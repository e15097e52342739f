"""The three upsampling methods of FCN (docs/design.md#upsampling-methods): transposed
convolution with a bilinear kernel, parameter-free bilinear interpolation, and max unpooling.

Size of a transposed convolution (docs/design.md#transposed-convolution-size, Paddle's
``Conv2DTranspose`` formula)::

    out = (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1

The blog's working choice for an upsampling factor f is kernel 2f, stride f, padding f/2
(x2: 4/2/1, x8: 16/8/4, x32: 64/32/16), which gives ``out = f * in`` exactly; filled with
``bilinear_kernel(2f)`` it equals OpenCV's ``INTER_LINEAR`` resize away from a border of f
pixels (where the transposed conv sees zeros beyond the map instead of OpenCV's replicated
edge). The reference nets (caffe geometry) use kernel 2f, stride f, padding 0 and crop.

Where the upsampled pixels land: that layer maps input pixel x to output position
``f * x + (f - 1) / 2`` (half-pixel cell centres), which is right when the coarse map's pixel x
covers fine pixels ``f x ... f x + f - 1`` (VGG's 2 x 2 pools). For a map sampled *at* fine
pixel ``f x`` (ResNet's stride-2 convs padded ``(k - 1) / 2``) the ``sample_aligned`` geometry,
kernel 2f - 1, stride f, padding f - 1, output_padding f - 1, maps x to ``f * x`` and still
gives ``out = f * in``; with ``bilinear_kernel(2f - 1)`` it is linear interpolation between
the samples (``np.interp``) up to the last one, then a ramp to zero over f - 1 pixels.
``BilinearUpsample`` builds it as the equivalent padding [f - 1 top/left, 0 bottom/right].
"""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = [
    "bilinear_kernel", "conv_transpose_output_size", "upsample_geometry",
    "BilinearUpsample", "bilinear_resize", "max_pool_with_indices", "max_unpool",
]


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _hat(size):
    """``(factor, centre)`` of FCN's ``upsample_filt`` for a kernel of ``size`` taps: tap i
    weighs ``1 - |i - centre| / factor``."""
    size = _positive_int(size, "bilinear kernel size")
    factor = (size + 1) // 2
    return factor, (factor - 1 if size % 2 == 1 else factor - 0.5)


def bilinear_kernel(size):
    """``size x size`` float32 bilinear interpolation kernel: FCN's ``upsample_filt``
    (fcn.berkeleyvision.org, surgery.py).

    factor = (size + 1) // 2; centre = factor - 1 for odd size, factor - 0.5 for even; the
    kernel is the outer product of ``1 - |i - centre| / factor``. Size 4 gives
    ``[0.25, 0.75, 0.75, 0.25]`` in each direction, size 3 ``[0.5, 1, 0.5]``.
    """
    factor, centre = _hat(size)
    ramp = 1 - np.abs(np.arange(size) - centre) / factor
    return np.outer(ramp, ramp).astype(np.float32)


def conv_transpose_output_size(size, kernel, stride, padding, output_padding=0, dilation=1):
    """Output length of a transposed convolution along one axis
    (docs/design.md#transposed-convolution-size); raises
    ``ValueError`` naming the arguments when the result would be < 1."""
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise ValueError(
            f"transposed conv with size={size}, kernel={kernel}, stride={stride}, "
            f"padding={padding}, output_padding={output_padding}, dilation={dilation} "
            f"gives output size {out} < 1"
        )
    return out


def upsample_geometry(factor, sample_aligned=False):
    """``(kernel, stride, padding, output_padding)`` of a transposed conv that upsamples exactly
    ``factor``-fold (``out = factor * in``).

    ``sample_aligned=False``: pixel centres aligned, input pixel x at output
    ``f x + (f - 1) / 2``. Even f: the blog's (2f, f, f/2, 0): x2 -> (4, 2, 1, 0),
    x8 -> (16, 8, 4, 0), x32 -> (64, 32, 16, 0). Odd f: f/2 is not an integer, so the kernel
    is shortened to 2f - 1 with padding (f - 1)/2 (the odd-size case of ``bilinear_kernel``,
    centred on a pixel); f = 1 is the identity (1, 1, 0, 0).
    ``sample_aligned=True``: ``(2f - 1, f, f - 1, f - 1)``, input pixel x at output ``f x``
    (x2 -> (3, 2, 1, 1), x8 -> (15, 8, 7, 7), x32 -> (63, 32, 31, 31)).
    """
    factor = _positive_int(factor, "upsampling factor")
    if sample_aligned:
        return 2 * factor - 1, factor, factor - 1, factor - 1
    kernel = 2 * factor - factor % 2
    return kernel, factor, (kernel - factor) // 2, 0


class BilinearUpsample(nn.Layer):
    """Transposed convolution with a bilinear kernel, one channel at a time
    (docs/design.md#initialisation, #transposed-convolution-size).

    ``N x channels x h x w`` -> ``N x channels x (factor*h) x (factor*w)`` with
    ``padding=True`` (geometry from ``upsample_geometry(factor, sample_aligned)``: input pixel x
    lands at output ``f x + (f - 1) / 2``, or at ``f x`` when ``sample_aligned``); with
    ``padding=False`` (the reference caffe nets: same kernel, padding 0; kernel 2f, stride f for
    even f) ``(h - 1) * f + kernel`` per axis, to be cropped. ``forward(x, window=(o, H, W))``
    returns only output rows ``o .. o+H-1`` and columns ``o .. o+W-1`` (the FCN head's crop).
    Attributes ``kernel_size``, ``stride``, ``padding = (leading, trailing)`` (same on both
    axes) describe the transposed conv; ``output_length(n)`` is its output size for input n.

    ``learnable=True`` (the reference ``upscore2``): a ``Conv2DTranspose`` (``self.up``) with
    a full ``[channels, channels, k, k]`` weight holding ``bilinear_kernel(k)`` on the channel
    diagonal and zeros elsewhere, free to learn cross-class terms. Paddle's
    ``initializer.Bilinear`` is not used: it is lopsided and mixes channels.

    ``learnable=False`` (the paper fixes the final upsampling to bilinear; the reference nets
    freeze every deconv with ``lr_mult=0``): no parameter. The layer is the same transposed
    conv with the same kernel on the diagonal, computed in its separable form: the kernel is
    ``outer(ramp, ramp)``, so per channel ``out = R @ x @ C.T`` with ``R[o, i]`` =
    ``ramp[o + leading - f i]`` (0 outside the kernel), and only the window's rows of R and C
    are built. Two matrix products replace Paddle's depthwise transposed conv, which has no
    oneDNN kernel on CPU, several times faster in inference and training
    (docs/performance.md#frozen-bilinear-upsampler). Equal to the grouped
    transposed conv up to float rounding (tests/test_upsample.py).
    """

    def __init__(self, channels, factor, learnable=False, padding=True, sample_aligned=False):
        super().__init__()
        channels = _positive_int(channels, "BilinearUpsample channels")
        if sample_aligned and not padding:
            raise ValueError("BilinearUpsample: sample_aligned=True needs padding=True (the "
                             "unpadded caffe geometry uses kernel 2f and crops instead)")
        kernel, stride, pad, extra = upsample_geometry(factor, sample_aligned)
        if not padding:
            pad = 0
        # output_padding o appends o pixels, i.e. trims o fewer at the end: the same layer as
        # padding (p, p - o). Paddle 3.3's static shape inference gives 0-sized H, W for
        # output_padding with dynamic input sizes (so paddle.jit export fails); the asymmetric
        # padding keeps them dynamic.
        self.kernel_size, self.stride, self.padding = kernel, stride, (pad, pad - extra)
        self.channels, self.factor, self.learnable = channels, stride, bool(learnable)
        self.padded, self.sample_aligned = bool(padding), bool(sample_aligned)
        if self.learnable:
            weight = np.zeros((channels, channels, kernel, kernel), dtype=np.float32)
            weight[np.arange(channels), np.arange(channels)] = bilinear_kernel(kernel)
            lead, trail = self.padding
            self.up = nn.Conv2DTranspose(
                channels, channels, kernel, stride=stride, padding=[lead, trail, lead, trail],
                weight_attr=paddle.ParamAttr(initializer=nn.initializer.Assign(weight)),
                bias_attr=False,
            )

    def as_transposed_conv(self):
        """A frozen layer as a ``learnable=True`` one of the same geometry, whose
        ``Conv2DTranspose`` holds this bilinear kernel on the channel diagonal: the same values,
        computed by a conv op instead of matrix products (one of the int8 export's forms,
        ``inference/int8_upsample.py``). A learnable layer is returned as it is."""
        if self.learnable:
            return self
        return BilinearUpsample(self.channels, self.factor, learnable=True,
                                padding=self.padded, sample_aligned=self.sample_aligned)

    def output_length(self, length):
        """Output size along an axis of input size ``length``
        (docs/design.md#transposed-convolution-size)."""
        return (length - 1) * self.stride - sum(self.padding) + self.kernel_size

    def forward(self, x, window=None):
        if paddle.in_dynamic_mode():  # sizes are ints here; the reshapes below would not fail
            self._check_input(x, window)
        if self.learnable:
            if window is None:
                return self.up(x)
            o, height, width = window
            return self.up(x)[:, :, o:o + height, o:o + width]
        if window is None:
            window = (0, self.output_length(x.shape[2]), self.output_length(x.shape[3]))
        o, height, width = window
        rows, cols = self._matrix(x.shape[2], o, height), self._matrix(x.shape[3], o, width)
        if x.dtype != rows.dtype:  # e.g. float16 under AMP
            rows, cols = rows.astype(x.dtype), cols.astype(x.dtype)
        # The products run on an (N*C) x h x w view: Paddle Inference 3.3's oneDNN matmul
        # misreads a 4-D input still in the blocked layout of the conv that produced it
        # (wrong values, no error); reshape reorders it to plain (tests/test_inference_export.py).
        n, c = x.shape[0], x.shape[1]
        planes = x.reshape([-1, x.shape[2], x.shape[3]])
        y = paddle.matmul(paddle.matmul(rows, planes), cols, transpose_y=True)
        return y.reshape([n, c, y.shape[1], y.shape[2]])

    def _check_input(self, x, window):
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"BilinearUpsample x{self.factor} expects N x {self.channels} x "
                             f"H x W input, got shape {list(x.shape)}")
        if window is None:
            return
        o, height, width = window
        full = self.output_length(x.shape[2]), self.output_length(x.shape[3])
        if o < 0 or height < 1 or width < 1 or o + height > full[0] or o + width > full[1]:
            raise ValueError(f"BilinearUpsample x{self.factor}: a {height} x {width} window at "
                             f"offset {o} does not fit its {full[0]} x {full[1]} output "
                             f"(input {x.shape[2]} x {x.shape[3]})")

    def _matrix(self, length, start, count):
        """``count x length`` float32: output pixels ``start .. start+count-1`` of one axis
        from its ``length`` input pixels. ``length``/``count`` are ints, or tensors under
        ``paddle.jit.to_static``. Output o takes input i with the kernel tap
        ``t = o + leading - stride * i``, weight ``1 - |t - centre| / factor`` (``upsample_filt``),
        which is <= 0 exactly for taps outside the kernel, hence the ReLU."""
        factor, centre = _hat(self.kernel_size)
        out = paddle.arange(count, dtype="float32") + float(start + self.padding[0] - centre)
        taps = out.unsqueeze(1) - self.stride * paddle.arange(length, dtype="float32")
        return F.relu(1 - paddle.abs(taps) / factor)

    def extra_repr(self):
        return (f"channels={self.channels}, factor={self.factor}, learnable={self.learnable}, "
                f"sample_aligned={self.sample_aligned}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}")


def _size_pair(size):
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    return tuple(_positive_int(s, "resize size") for s in size)


def bilinear_resize(x, size):
    """Parameter-free bilinear resize of ``N x C x H x W`` to ``N x C x size[0] x size[1]``
    with OpenCV's ``INTER_LINEAR`` convention (half-pixel centres,
    ``src = (dst + 0.5) * H / size - 0.5``, clamped at the edges), up or down.

    This is ``F.interpolate(..., align_corners=False, align_mode=0)``, except that Paddle samples
    source index 0 when an output axis has length 1; OpenCV samples the centre ``(H - 1) / 2``,
    which is what ``align_corners=True`` gives at the middle of a length-3 output.
    """
    height, width = _size_pair(size)
    if x.ndim != 4:
        raise ValueError(f"bilinear_resize expects an N x C x H x W tensor, got shape {x.shape}")
    if height > 1 and width > 1:
        return F.interpolate(x, size=[height, width], mode="bilinear",
                             align_corners=False, align_mode=0)
    # Bilinear is separable: resize each axis on its own so the length-1 axis can use the
    # centre-sampling rule.
    x = _resize_axis(x, 2, height)
    return _resize_axis(x, 3, width)


def _resize_axis(x, axis, length):
    size = list(x.shape[2:])
    if length == 1:
        size[axis - 2] = 3
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return x[:, :, 1:2, :] if axis == 2 else x[:, :, :, 1:2]
    size[axis - 2] = length
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, align_mode=0)


def max_pool_with_indices(x, kernel_size=2, stride=None, ceil_mode=False):
    """Max pooling that also returns where each maximum came from.

    Returns ``(pooled, indices)``; ``indices`` (int32, same shape as ``pooled``) holds the flat
    position ``row * W + col`` of each maximum within its ``H x W`` input channel.
    """
    return F.max_pool2d(x, kernel_size, stride=stride, ceil_mode=ceil_mode, return_mask=True)


def max_unpool(x, indices, output_size, kernel_size=2, stride=None):
    """Max unpooling (docs/design.md#upsampling-methods): ``N x C x h x w`` ->
    ``N x C x H x W`` (``output_size`` = the pooled input's ``(H, W)``), with each value put
    back at the position ``indices`` recorded and zeros everywhere else.
    """
    height, width = _size_pair(output_size)
    if list(x.shape) != list(indices.shape):
        raise ValueError(
            f"max_unpool: values {list(x.shape)} and indices {list(indices.shape)} differ in shape"
        )
    return F.max_unpool2d(x, indices, kernel_size, stride=stride,
                          output_size=[height, width])
