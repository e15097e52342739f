"""Exporting a trained model for deployment: ``paddle.jit.save`` + ``deploy.yml``.

An export directory holds::

    model.json         the static graph (Paddle 3 PIR; ``model.pdmodel`` with the legacy IR)
    model.pdiparams    the weights
    deploy.yml         what a predictor needs and cannot guess: input normalisation, class
                       names, num_classes, output_op, precision (written last: a directory
                       without it is an interrupted export)
    int8/              precision int8 on CPU: the oneDNN int8 graph (``inference/int8_cpu.py``)
    _opt_cache/        precision int8 on GPU: TensorRT's calibration table
    model.onnx         optional, ``export_onnx`` (needs ``pip install paddle2onnx``)

The input is ``N x 3 x H x W`` float32, N, H and W dynamic: the image normalised as the
``normalization`` of ``deploy.yml`` says (``paddle_fcn.normalization``). The output depends on
``output_op``: ``none`` = logits ``N x C x H x W`` float32, ``softmax`` = probabilities
``N x C x H x W``, ``argmax`` = class indices ``N x H x W`` int32 (the op folded into the graph).
Every export is checked: the saved graph, reloaded, must reproduce the eager model on an
odd-sized input (37 x 53) or ``ExportError`` says by how much it does not; an export at
precision bf16 or int8 (``inference/precision.py``) is also run at that precision and compared.
"""
import contextlib
import itertools
import os
import shutil
import tempfile

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_fcn.device import use_gpu
from paddle_fcn.errors import ExportError, PrecisionError
from paddle_fcn.fileio import atomic_write_text
from paddle_fcn.inference.bundle import (DEPLOY_FILE, OUTPUT_OPS, PREFIX, deploy_text,
                                         model_files, read_deploy_info)
from paddle_fcn.inference.int8_cpu import INT8_DIR, quantize_for_cpu, reachable_layers
from paddle_fcn.inference.precision import (NO_CALIBRATION, OPT_CACHE, check_precision,
                                            compare_outputs)
from paddle_fcn.inference.predictor import Predictor

__all__ = ["OUTPUT_OPS", "ExportError", "OutputOp", "export_model", "read_deploy_info",
           "model_files", "export_onnx", "ONNX_HINT"]

CHECK_SIZE = (37, 53)  # odd H x W: exercises the pad-to-32 and crop paths of the models
ONNX_HINT = "ONNX export needs paddle2onnx (>= 2.0 for Paddle 3 models): pip install paddle2onnx"


class OutputOp(nn.Layer):
    """``model`` followed by the exported output op (``none`` | ``argmax`` | ``softmax``)
    over the class axis; argmax gives int32 class indices ``N x H x W``."""

    def __init__(self, model, output_op="none"):
        super().__init__()
        if output_op not in OUTPUT_OPS:
            raise ValueError(f"output_op must be one of {', '.join(OUTPUT_OPS)}, "
                             f"got {output_op!r}")
        self.model, self.output_op = model, output_op

    def forward(self, x):
        logits = self.model(x)
        if self.output_op == "argmax":
            return paddle.argmax(logits, axis=1, dtype="int32")
        if self.output_op == "softmax":
            return F.softmax(logits, axis=1)
        return logits


def _check_input():
    return np.random.default_rng(0).standard_normal((1, 3) + CHECK_SIZE).astype("float32")


def _gist(error):
    """``Type: message`` of an exception from Paddle's C++ side, on one line, cut to 400
    characters (its messages run to pages of hints and stacks)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())[:400]}"


def _check_export(wrapper, path, output_op):
    """Compare the reloaded graph with the eager wrapper on a seeded odd-sized input."""
    x = paddle.to_tensor(_check_input())
    with paddle.no_grad():
        want = wrapper(x).numpy()
        try:
            got = paddle.jit.load(path)(x).numpy()
        except Exception as e:  # e.g. a static shape inferred wrongly, then used to crop
            raise ExportError(f"the graph saved at {path} fails on a {CHECK_SIZE} input although "
                              f"the eager model runs: {_gist(e)}") from e
    if got.shape != want.shape:
        raise ExportError(f"exported graph at {path} returns shape {got.shape} for a "
                          f"{CHECK_SIZE} input, the eager model {want.shape}")
    if output_op == "argmax":
        logits = wrapper.model(x).numpy()
        top2 = np.sort(logits, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 1e-4  # pixels whose argmax is not a near-tie
        if np.any(got[clear] != want[clear]):
            raise ExportError(f"exported argmax at {path} differs from eager on "
                              f"{int((got[clear] != want[clear]).sum())} pixels")
        return
    err = float(np.abs(got - want).max())
    if err > 1e-4 * max(1.0, float(np.abs(want).max())):
        raise ExportError(f"exported graph at {path} differs from the eager model by {err:.3g} "
                          f"on a {CHECK_SIZE} input; the model's forward does not survive "
                          f"paddle.jit.to_static")


@contextlib.contextmanager
def _dropout_as_identity(wrapper):
    """``wrapper`` with each ``nn.Dropout`` sublayer of the default mode (the identity in eval
    mode) replaced by ``nn.Identity`` inside the block, and put back after it, also when the
    block raises. Saved in eval mode, a dropout is still an op of the graph, and Paddle
    Inference's bf16 placement leaves a conv between two such fp32 ops in fp32: FCN-VGG16's
    fc7, 22 % of its bf16 run (docs/performance.md#bf16-on-cpu). Every registered slot is
    swapped (one Dropout may fill several); a Dropout held as a plain attribute stays."""
    swapped = []
    try:
        for layer in reachable_layers(wrapper):
            for name, child in list(layer._sub_layers.items()):
                if type(child) is nn.Dropout and child.mode == "upscale_in_train":
                    layer.add_sublayer(name, nn.Identity())
                    swapped.append((layer, name, child))
        yield wrapper
    finally:
        for layer, name, child in swapped:
            layer.add_sublayer(name, child)


def export_model(model, save_dir, output_op="none", class_names=None, model_type="",
                 precision="fp32", device="auto", calibration=()):
    """Save ``model`` (eval mode) with a dynamic ``[N, 3, H, W]`` input and write deploy.yml.

    ``model`` must have ``normalization`` and ``num_classes`` (every paddle_fcn model does;
    U-Net's count is read from its output). ``class_names`` defaults to ``class_i``.
    ``precision`` (``fp32`` | ``bf16`` | ``int8``) is recorded in deploy.yml; a bf16/int8
    export is run at that precision on ``device`` and checked, so this machine must be able
    to run it (``PrecisionError`` first if not); int8 calibrates on ``calibration``, an
    iterable of normalised ``1 x 3 x H x W`` float32 images (CPU: ``int8_cpu``'s static
    post-training quantization; GPU: TensorRT's calibration). Returns
    the path prefix (``save_dir/model``). Raises ``ExportError`` when conversion fails or the
    saved graph disagrees with the eager model; an earlier export in ``save_dir`` is then left
    as it was, since the new one is built and checked in ``save_dir/.tmp-export-*`` and only
    moved in (``os.replace``, deploy.yml last) once it passed. ``OSError`` when ``save_dir``
    cannot be created or written. While the graph is saved, ``model``'s dropouts are swapped
    for the identity they are in eval mode (``_dropout_as_identity``; put back after): do
    not run the model in another thread meanwhile.
    """
    model.eval()
    num_classes = _num_classes(model)
    names = list(class_names) if class_names else [f"class_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise ExportError(f"{len(names)} class names for a model with {num_classes} classes")

    check_precision(precision, use_gpu(device))  # before any work: fails fast on this device
    wrapper = OutputOp(model, output_op)
    wrapper.eval()
    os.makedirs(save_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-export-", dir=save_dir)  # same filesystem
    try:
        with _dropout_as_identity(wrapper):
            extra = _save_graphs(wrapper, staging, output_op, precision, device, calibration)
        atomic_write_text(deploy_text(model_type, num_classes, names, model.normalization,
                                       output_op, precision, extra),
                          os.path.join(staging, DEPLOY_FILE))
        if precision != "fp32":
            _check_precision(wrapper, staging, output_op, precision, device, calibration)
        _move_export(staging, save_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return os.path.join(save_dir, PREFIX)


def _save_graphs(wrapper, staging, output_op, precision, device, calibration):
    """Save and check the fp32 graph in ``staging`` and, for int8 on CPU, the int8 graph;
    returns deploy.yml's extra records."""
    path = os.path.join(staging, PREFIX)
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", name="x")]
    try:
        paddle.jit.save(wrapper, path, input_spec=spec)
    except Exception as e:  # dy2static raises many types; name the model, keep the cause
        raise ExportError(f"paddle.jit.save of {type(wrapper.model).__name__} failed: "
                          f"{type(e).__name__}: {e}") from e
    _check_export(wrapper, path, output_op)
    if precision == "int8" and not use_gpu(device):  # GPU: TensorRT calibrates at the check
        return {"int8_cpu": quantize_for_cpu(wrapper, staging, calibration, _check_input())}
    return {}


def _check_precision(wrapper, folder, output_op, precision, device, calibration):
    """Run the export in ``folder`` as deployed at ``precision`` (int8: calibrated first) and
    compare it with the eager fp32 model on the check input."""

    if precision == "int8" and use_gpu(device):
        calibrate(folder, calibration, device)
    x = _check_input()
    with paddle.no_grad():
        want = wrapper(paddle.to_tensor(x)).numpy()
    try:
        got = Predictor(folder, device, precision=precision, retain_memory=False).predict(x)
    except (PrecisionError, ExportError):
        raise
    except Exception as e:  # Paddle Inference's C++ errors arrive as many Python types
        raise ExportError(f"the {precision} export of {type(wrapper.model).__name__} does not "
                          f"run on {device} (a {CHECK_SIZE} input, although the fp32 graph "
                          f"does): {_gist(e)}") from e
    problem = compare_outputs(got, want, output_op, precision)
    if problem:
        raise ExportError(f"the {precision} export at {folder} disagrees with the fp32 model "
                          f"on a {CHECK_SIZE} input: {problem}")


def _move_export(staging, save_dir):
    """Replace the export in ``save_dir`` by the checked one in ``staging``. deploy.yml goes
    first out and last in, so an interruption leaves a directory that says it is incomplete;
    model files of the old export that the new one lacks (``model.onnx``, a legacy
    ``model.pdmodel``, a TensorRT ``_opt_cache/``, an ``int8/`` graph) are removed rather
    than left to pair with the new weights."""
    new = sorted(f for f in os.listdir(staging) if f != DEPLOY_FILE)
    old_deploy = os.path.join(save_dir, DEPLOY_FILE)
    if os.path.exists(old_deploy):
        os.remove(old_deploy)
    for name in os.listdir(save_dir):
        stale = os.path.join(save_dir, name)
        if name.startswith(PREFIX + ".") and name not in new and os.path.isfile(stale):
            os.remove(stale)
    for folder in (OPT_CACHE, INT8_DIR):  # an old calibration, an old int8 graph
        shutil.rmtree(os.path.join(save_dir, folder), ignore_errors=True)
    for name in new + [DEPLOY_FILE]:
        os.replace(os.path.join(staging, name), os.path.join(save_dir, name))


def _num_classes(model):
    n = getattr(model, "num_classes", None)
    if isinstance(n, int) and n > 0:
        return n
    with paddle.no_grad():
        return int(model(paddle.zeros([1, 3, 32, 32])).shape[1])


def export_onnx(model_dir, opset_version=11):
    """Convert an export directory's graph to ``model_dir/model.onnx`` with paddle2onnx.

    Raises ``ExportError`` with the install command when paddle2onnx is missing. Returns the
    path of the ONNX file. The input keeps its dynamic N, H, W.
    """
    try:
        import paddle2onnx
    except ImportError:
        raise ExportError(ONNX_HINT) from None
    graph, params = model_files(model_dir)
    save_file = os.path.join(model_dir, PREFIX + ".onnx")
    try:
        paddle2onnx.export(model_filename=graph, params_filename=params, save_file=save_file,
                           opset_version=opset_version)
    except Exception as e:
        raise ExportError(f"paddle2onnx could not convert {graph}: {type(e).__name__}: {e}") \
            from e
    return save_file


def calibrate(model_dir, batches, device="gpu"):
    """Run ``batches`` (``1 x 3 x H x W`` float32 arrays) through an int8 predictor of
    ``model_dir`` so that TensorRT writes its calibration table to ``model_dir/_opt_cache``.
    Returns the number of batches. ``PrecisionError`` when there are none."""
    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        raise PrecisionError(NO_CALIBRATION)
    predictor = Predictor(model_dir, device, precision="int8")
    count = 0
    for batch in itertools.chain([first], batches):
        predictor.predict(batch)
        count += 1
    del predictor  # TensorRT writes the table when the engine is released
    return count
