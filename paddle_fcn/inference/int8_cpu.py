"""int8 on CPU: Paddle's static post-training quantization, run by oneDNN int8 kernels.

Paddle 3.3's PIR pipeline has no oneDNN int8 passes; its legacy-IR pipeline has them
(``quant_dequant_onednn_pass``, ``cpu_quantize_pass``, ...), for a legacy ``.pdmodel``
quantized by ``paddle.static.quantization.PostTrainingQuantization`` (PaddleSlim's
``quant_post_static`` wraps the same class, so it is not needed). Getting there takes five
things, each measured (docs/performance.md#int8-on-cpu), and one more for the start-up:

* ``FLAGS_enable_pir_api=0`` before ``paddle`` is imported (it cannot be switched in a running
  process), so ``quantize_for_cpu`` runs the export in a child process (``main`` below);
* no ``paddle.matmul`` / ``paddle.abs`` / ``paddle.argmax``: under the legacy IR those ops
  reject the graph's variables, so the frozen bilinear upsamplers become equal transposed
  convs or interpolations (``int8_upsample.int8_form``) and an ``argmax`` output op is
  applied by the ``Predictor`` to the graph's logits;
* no ``F.pad`` with sizes read from the input: the graph takes its input already padded to
  the FCN's multiple of 32 (``pad_multiple``), which the ``Predictor`` does, with the zeros
  the model pads with, then crops the output back: the same computation;
* BatchNorm folded into the convs (``int8_source``): left in, oneDNN fuses conv + BatchNorm
  after the calibrated scales were attached, and leaves those convs in fp32;
* each conv's bias added on the channel axis (``int8_program.bias_adds_on_channels``, in the
  child), the form oneDNN fuses: then a conv reads and writes int8, with its bias, ReLU and
  requantization inside, instead of writing fp32 for three more passes over its output;
* the saved weights dequantized in the child (``int8_program.weights_in_fp32``): Paddle's
  own pass does it at every Predictor start, 15 s for VGG16.

The export folder gets ``int8/model.pdmodel`` and ``int8/model.pdiparams`` beside the fp32
graph (``Predictor(..., precision="fp32")`` still runs that), and deploy.yml an ``int8_cpu``
record. Convolutions are quantized (weights per output channel, activations from the
calibration images with ``ALGO``) and run in int8 with the max pools
(``precision.INT8_CPU_OPS``); additions and the upsamplers stay fp32.
The child unpickles the model, so its classes must be importable (not defined in
``__main__``).
"""
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from paddle_fcn.errors import ExportError, PrecisionError
from paddle_fcn.inference.bundle import PREFIX
from paddle_fcn.inference.precision import CHECK_TOLERANCE, INT8_CPU_OPS, NO_CALIBRATION

__all__ = ["INT8_DIR", "ALGO", "QUANTIZED_OPS", "int8_files", "int8_source", "pad_batch",
           "quantize_for_cpu", "reachable_layers"]

INT8_DIR = "int8"
# Activation ranges from the calibration images: "hist", the 99.999th percentile of |x|
# (algorithms compared in docs/performance.md#int8-on-cpu).
ALGO = "hist"
QUANTIZED_OPS = ["conv2d"]


def int8_files(model_dir):
    """``(graph, params)`` of the oneDNN int8 graph of an export; ``ExportError`` if absent."""
    graph, params = (os.path.join(model_dir, INT8_DIR, PREFIX + ext)
                     for ext in (".pdmodel", ".pdiparams"))
    if not (os.path.isfile(graph) and os.path.isfile(params)):
        raise ExportError(f"{model_dir} has no {INT8_DIR}/{PREFIX}.pdmodel and "
                          f"{PREFIX}.pdiparams: export it again with --precision int8 on a CPU")
    return graph, params


def pad_batch(batch, multiple):
    """``N x C x H x W`` zero-padded at the bottom/right to multiples of ``multiple``, as the
    FCN pads its input (``models.fcn.Alignment.pad``)."""
    pad_h, pad_w = -batch.shape[2] % multiple, -batch.shape[3] % multiple
    if pad_h == 0 and pad_w == 0:
        return batch
    return np.pad(batch, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))


def reachable_layers(root):
    """Every layer reachable from ``root``: its sublayers, and layers kept as plain
    attributes (``MultiHeadFCN`` holds its first head that way)."""
    import paddle.nn as nn

    seen, stack = {}, [root]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen[id(layer)] = layer
        stack += list(layer.children())
        stack += [v for v in vars(layer).values() if isinstance(v, nn.Layer)]
    return list(seen.values())


def int8_source(wrapper):
    """A copy of the export wrapper (``export.OutputOp``) that the legacy IR can save and
    oneDNN can quantize: frozen upsamplers in their ``int8_form``, BatchNorms folded into
    their convs, input padding and an ``argmax`` output op left to the Predictor. Returns
    ``(copy, pad_multiple, graph_output_op)``; ``ExportError`` if the model cannot be copied."""
    from paddle_fcn.inference.int8_upsample import int8_form
    from paddle_fcn.upsample import BilinearUpsample

    try:
        source = pickle.loads(pickle.dumps(wrapper))
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise ExportError(f"int8 for CPU copies the model, and {type(wrapper.model).__name__} "
                          f"cannot be copied: {type(e).__name__}: {e}") from e
    layers, converted = reachable_layers(source), {}
    for layer in layers:  # one replacement per upsampler, in every layer that holds it
        for name, child in list(layer.named_children()):
            if isinstance(child, BilinearUpsample) and not child.learnable:
                layer.add_sublayer(name, converted.setdefault(id(child), int8_form(child)))
    for layer in layers:
        _fold_batch_norms(layer)
    multiple = 1
    for layer in layers:
        align = getattr(layer, "align", None)
        if align is not None and hasattr(align, "pad_multiple"):
            multiple = math.lcm(multiple, align.pad_multiple)
            align.pad_multiple = 1  # the Predictor pads (pad_batch)
    if source.output_op == "argmax":
        source.output_op = "none"  # the Predictor takes the argmax of the logits
    source.eval()
    return source, multiple, source.output_op


def _fold_batch_norms(layer):
    """Fold each ``BatchNorm2D`` child of ``layer`` that follows a ``Conv2D`` child (siblings
    ``convK`` / ``bnK``, as in ResNet, or neighbours in an ``nn.Sequential``) and has its
    channels into the conv, which gets a bias, and replace it by ``nn.Identity``: the same
    function in eval mode (``_check_source`` verifies). Without it oneDNN leaves every
    conv + BatchNorm in fp32 (its fused conv has no calibrated output scale)."""
    import paddle.nn as nn

    children = dict(layer.named_children())
    names = list(children)
    pairs = zip(names, names[1:]) if isinstance(layer, nn.Sequential) else \
        ((n, "bn" + n[len("conv"):]) for n in names if n.startswith("conv"))
    for conv_name, bn_name in pairs:
        conv, bn = children.get(conv_name), children.get(bn_name)
        if isinstance(conv, nn.Conv2D) and isinstance(bn, nn.BatchNorm2D) \
                and bn.weight is not None and bn._mean.shape[0] == conv.weight.shape[0]:
            _fold(conv, bn)
            layer.add_sublayer(bn_name, nn.Identity())


def _fold(conv, bn):
    """``bn(conv(x))`` as one conv: weights scaled per output channel, a bias added."""
    import paddle

    scale = bn.weight.numpy() / np.sqrt(bn._variance.numpy() + bn._epsilon)
    bias = conv.bias.numpy() if conv.bias is not None else np.zeros(scale.shape, np.float32)
    conv.weight.set_value(conv.weight.numpy() * scale.reshape(-1, 1, 1, 1))
    folded = (bias - bn._mean.numpy()) * scale + bn.bias.numpy()
    if conv.bias is None:
        conv.bias = conv.create_parameter([scale.size], is_bias=True)
    conv.bias.set_value(paddle.to_tensor(folded.astype(np.float32)))


def quantize_for_cpu(wrapper, folder, calibration, check_input, algo=None):
    """Write ``folder/int8/`` from the eager export ``wrapper`` (``export.OutputOp``),
    calibrated on ``calibration`` with PTQ's activation ``algo`` (default ``ALGO``).

    ``calibration``: normalised ``1 x 3 x H x W`` float32 images of any sizes, iterated more
    than once: ``precision.CalibrationImages`` (read from disk each time) or a list (any
    other iterable is made one, in memory). ``check_input``: a ``1 x 3 x h x w`` array on
    which the converted copy must reproduce the model. Returns deploy.yml's ``int8_cpu``
    record (``precision.check_precision`` has checked that this CPU runs int8).
    ``PrecisionError`` without images; ``ExportError`` naming the cause when the copy does
    not compute the model or the child process fails."""
    algo = algo or ALGO
    source, multiple, graph_output_op = int8_source(wrapper)
    _check_source(wrapper, source, multiple, check_input)
    if not hasattr(calibration, "__len__"):
        calibration = list(calibration)
    count = len(calibration)
    if count == 0:
        raise PrecisionError(NO_CALIBRATION)
    work = tempfile.mkdtemp(prefix=".int8-work-", dir=folder)
    try:
        with open(os.path.join(work, "job.pkl"), "wb") as f:
            pickle.dump((source, calibration, multiple), f)
        failure = _run_child(work, os.path.join(folder, INT8_DIR), algo)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failure:
        raise ExportError(f"int8 for CPU could not convert {type(wrapper.model).__name__}: "
                          f"saving it as a legacy-IR program and quantizing it (a child "
                          f"process) failed, {failure} (the FCN models convert; "
                          f"docs/performance.md#int8-on-cpu)")
    return {"pad_multiple": multiple, "graph_output_op": graph_output_op,
            "calib_images": count, "algo": algo, "quantized_ops": list(QUANTIZED_OPS),
            "int8_ops": list(INT8_CPU_OPS)}


def _check_source(wrapper, source, multiple, x):
    """The copy's logits on the padded input, cropped, must be the model's (float rounding
    aside, as ``export``'s own check; logits, not an argmax that a near-tie would flip)."""
    import paddle

    height, width = x.shape[2:]
    with paddle.no_grad():
        want = wrapper.model(paddle.to_tensor(x)).numpy()
        got = source.model(paddle.to_tensor(pad_batch(x, multiple))).numpy()
    got = got[..., :height, :width]
    err = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    if err > CHECK_TOLERANCE["fp32"] * max(1.0, float(np.abs(want).max())):
        raise ExportError(f"int8 for CPU: {type(wrapper.model).__name__} with its upsamplers "
                          f"converted and BatchNorms folded differs from the model by "
                          f"{err:.3g} on a {height} x {width} input; it cannot be quantized "
                          f"this way")


def _run_child(work, out, algo):
    """Run ``main`` in a child process with the legacy IR; ``None``, or what went wrong."""
    # Started in the folder that holds this paddle_fcn, so the child imports this one and not
    # a paddle_fcn/ of the current directory (python -m looks there first); the parent's
    # import path follows, for model classes of the user's own modules.
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = [os.path.abspath(p or os.curdir) for p in sys.path]
    env = dict(os.environ, FLAGS_enable_pir_api="0", PYTHONPATH=os.pathsep.join(path))
    log = os.path.join(work, "log.txt")
    argv = [sys.executable, "-m", "paddle_fcn.inference.int8_cpu", os.path.abspath(work),
            os.path.abspath(out), algo]
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                               cwd=package_root)
    if code == 0:
        return None
    with open(log, encoding="utf-8", errors="replace") as f:
        tail = [line.rstrip() for line in f if line.strip()][-6:]
    return f"exit {code}; the end of its log:\n  " + "\n  ".join(tail)


def main(work, out, algo):
    """The child: save the model of ``work/job.pkl`` as a legacy ``.pdmodel`` (dynamic N, H,
    W), quantize it on the job's calibration images with ``algo``, write
    ``out/model.pdmodel`` and ``out/model.pdiparams``."""
    import paddle_fcn.runtime  # noqa: F401  (CPU settings before paddle loads)
    import paddle
    from paddle.static.quantization import PostTrainingQuantization

    from paddle_fcn.inference.int8_program import bias_adds_on_channels, weights_in_fp32

    with open(os.path.join(work, "job.pkl"), "rb") as f:
        source, calibration, multiple = pickle.load(f)
    fp32 = os.path.join(work, "fp32")
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", name="x")]
    paddle.jit.save(source, os.path.join(fp32, PREFIX), input_spec=spec)
    paddle.enable_static()
    executor = paddle.static.Executor(paddle.CPUPlace())
    bias_adds_on_channels(fp32, executor)
    ptq = PostTrainingQuantization(
        executor=executor, model_dir=fp32,
        model_filename=PREFIX + ".pdmodel", params_filename=PREFIX + ".pdiparams",
        data_loader=lambda: ({"x": pad_batch(image, multiple)} for image in calibration),
        batch_nums=len(calibration), algo=algo, quantizable_op_type=QUANTIZED_OPS,
        weight_quantize_type="channel_wise_abs_max", onnx_format=False)
    ptq.quantize()
    ptq.save_quantized_model(out, model_filename=PREFIX + ".pdmodel",
                             params_filename=PREFIX + ".pdiparams")
    weights_in_fp32(out, executor)


if __name__ == "__main__":
    main(*sys.argv[1:4])
