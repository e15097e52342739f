"""Rewrites of the legacy int8 program that the CPU int8 export's child process saves
(``int8_cpu.main``), each keeping what the oneDNN int8 Predictor computes from it
(docs/performance.md#int8-on-cpu).

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
    """Store each quantized conv's weights as the fp32 values Paddle Inference would make of
    them. Paddle's PTQ saves them as integers ``q`` with a
    ``fake_channel_wise_dequantize_max_abs`` op after the conv holding the per-output-channel
    scales ``s``, and Paddle Inference's ``quant_dequant_onednn_pass`` turns integer-valued
    weights into ``fl32(q / 127.0) * s`` (float32 product) at every Predictor start, through
    two element-by-element transposes: 15 s for VGG16's 134 M weights. Done here once, in
    the same arithmetic, the pass finds float weights, leaves them, and removes the
    dequantize ops as before: the oneDNN int8 Predictor's output is the same bit for bit
    (tests/test_inference_int8_cpu.py). A weight whose fp32 values are still all whole
    numbers stays ``q`` (the pass would scale it again), as does any other quantization
    layout. The program is then meant for the oneDNN int8 pipeline only: a plain executor
    would apply the dequantize ops to the already dequantized weights."""
    import paddle

    program, feeds, fetches = _load(model_dir, executor)
    block, scope = program.global_block(), paddle.static.global_scope()
    producer = {name: op for op in block.ops for name in op.output_arg_names}
    done = set()  # a weight shared by several convs is converted once
    for op in block.ops:
        conv = producer.get(op.input("X")[0]) if op.type == DEQUANTIZE else None
        if conv is None or conv.type not in CONVS or op.attr("quant_axis") != 0 \
                or op.attr("quant_bits")[0] != 8 or conv.input("Filter")[0] in done:
            continue  # per output channel, 8 bits: what PTQ gives convs, and the pass assumes
        name = conv.input("Filter")[0]
        done.add(name)
        tensor = scope.find_var(name).get_tensor()
        weight = np.array(tensor)
        if not np.array_equal(weight, np.round(weight)):
            continue  # not PTQ's integers: the pass leaves these too
        scales = np.array(scope.find_var(op.input("Scales")[0]).get_tensor(), np.float32)
        fp32 = (weight.astype(np.float64) / 127.0).astype(np.float32)
        fp32 *= scales.reshape([-1] + [1] * (weight.ndim - 1))
        if not np.array_equal(fp32, np.round(fp32)):
            tensor.set(fp32, paddle.CPUPlace())
    _save(model_dir, executor, program, feeds, fetches)
