"""Rewrites of the legacy int8 program that the CPU int8 export's child process saves
(``int8_cpu.main``), each keeping what the program computes (docs/performance.md#int8-on-cpu).

Both run in static mode under the legacy IR, on a program folder holding ``PREFIX.pdmodel``
and ``PREFIX.pdiparams``, which they rewrite in place.
"""
import collections
import os

import numpy as np

from paddle_fcn.inference.bundle import PREFIX

__all__ = ["bias_adds_on_channels", "weights_in_fp32"]

DEQUANTIZE = "fake_channel_wise_dequantize_max_abs"
CONVS = ("conv2d", "depthwise_conv2d")


def _load(model_dir, executor):
    import paddle

    return paddle.static.load_inference_model(os.path.join(model_dir, PREFIX), executor)


def _save(model_dir, executor, program, feeds, fetches):
    import paddle

    block = program.global_block()
    paddle.static.save_inference_model(
        os.path.join(model_dir, PREFIX), [block.var(name) for name in feeds], fetches,
        executor, program=program)


def bias_adds_on_channels(model_dir, executor):
    """Rewrite the legacy program in ``model_dir`` (static mode) so oneDNN can fuse each conv
    with its bias: Paddle 3.3's legacy ``nn.Conv2D`` adds the bias as ``reshape2(bias)`` to
    ``1 x C x 1 x 1`` plus ``elementwise_add(axis=-1)``, and its own
    ``conv_bias_onednn_fuse_pass`` takes only the 1-D bias with ``axis=1`` ("Check the
    Attr(axis) of Op(elementwise_add) ... failed"). Each such add of an NCHW conv gets the
    1-D bias and ``axis=1`` (the same sum; a channels-last conv's ``1 x 1 x 1 x C`` bias is
    left as it is); reshapes nothing else reads are dropped."""
    program, feeds, fetches = _load(model_dir, executor)
    block = program.global_block()
    producer = {name: op for op in block.ops for name in op.output_arg_names}
    reads = collections.Counter(name for op in block.ops for name in op.input_arg_names)
    dropped = set()
    for op in block.ops:
        if op.type != "elementwise_add" or op.attr("axis") != -1:
            continue
        reshape, conv = producer.get(op.input("Y")[0]), producer.get(op.input("X")[0])
        if reshape is None or reshape.type != "reshape2" or conv is None \
                or conv.type not in CONVS:
            continue
        bias = block.var(reshape.input("X")[0])
        if bias.persistable and len(bias.shape) == 1 and \
                list(reshape.attr("shape")) == [1, bias.shape[0], 1, 1] and \
                conv.attr("data_format") in ("NCHW", "AnyLayout"):
            op._rename_input(op.input("Y")[0], bias.name)
            op._set_attr("axis", 1)
            if reads[reshape.output("Out")[0]] == 1:
                dropped.add(id(reshape))
    for index in reversed(range(len(block.ops))):
        if id(block.ops[index]) in dropped:
            block._remove_op(index)
    _save(model_dir, executor, program, feeds, fetches)


def weights_in_fp32(model_dir, executor):
    """Store each quantized conv's weights as the fp32 values they stand for. Paddle's PTQ
    saves them as integers, ``q``, and a ``fake_channel_wise_dequantize_max_abs`` op after
    the conv with the per-output-channel scales ``s``; Paddle Inference's
    ``quant_dequant_onednn_pass`` turns them into ``q * s / 127`` at every Predictor start,
    through two element-by-element transposes: 15 s for VGG16's 134 M weights. Done here
    once, in numpy: the pass then finds float weights, leaves them, and removes the
    dequantize ops as before; the Predictor's output is the same bit for bit."""
    import paddle

    program, feeds, fetches = _load(model_dir, executor)
    block, scope = program.global_block(), paddle.static.global_scope()
    producer = {name: op for op in block.ops for name in op.output_arg_names}
    for op in block.ops:
        conv = producer.get(op.input("X")[0]) if op.type == DEQUANTIZE else None
        if conv is None or conv.type not in CONVS or op.attr("quant_axis") != 0:
            continue  # scales per output channel (axis 0) only, as PTQ gives convs
        tensor = scope.find_var(conv.input("Filter")[0]).get_tensor()
        weight = np.array(tensor)
        if not np.array_equal(weight, np.round(weight)):  # already fp32
            continue
        scales = np.array(scope.find_var(op.input("Scales")[0]).get_tensor())
        levels = 2 ** (op.attr("quant_bits")[0] - 1) - 1  # 127 for 8 bits
        per_channel = (scales / levels).reshape([-1] + [1] * (weight.ndim - 1))
        tensor.set((weight * per_channel).astype(np.float32), paddle.CPUPlace())
    _save(model_dir, executor, program, feeds, fetches)
