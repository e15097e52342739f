"""Running an exported model with Paddle Inference (``paddle.inference``): the fast CPU path.

On CPU the predictor enables oneDNN (MKLDNN) and uses every physical core; with the fixed
bilinear upsamplers run as matrix products (``BilinearUpsample``) and glibc keeping freed
memory for reuse (``retain_memory``) it runs near the CPU's FP32 peak, several times faster
than the eager model (docs/performance.md#paddle-inference-predictor; ``benchmarks/
bench_infer.py`` prints the current figures). Nobody has to ask for this:
``Predictor(model_dir)`` is the fast path.

oneDNN caches its primitives, and with them a copy of the weights reordered for the shape,
per input shape, with no limit of its own: ``cache_capacity`` bounds the number of shapes
kept (the memory this saves: docs/performance.md#paddle-inference-predictor); the FCN models
pad their input to a multiple of 32, so sizes that pad alike share most primitives. The first
run at a new shape pays for creating them.
"""
import contextlib
import os
import sys
import tempfile

import numpy as np

from paddle_fcn.device import use_gpu
from paddle_fcn.errors import ExportError, PrecisionError
from paddle_fcn.inference.bundle import model_files, read_deploy_info
from paddle_fcn.inference.int8_cpu import int8_files, pad_batch
from paddle_fcn.inference.precision import configure_precision
from paddle_fcn.runtime import physical_cores, retain_freed_memory

__all__ = ["Predictor"]


class Predictor:
    """Paddle Inference predictor of an export directory (see ``inference/export.py``).

    ``device``: ``auto`` (GPU when Paddle has one, else CPU), ``cpu`` or ``gpu``.
    ``threads``: CPU math threads, default ``physical_cores()``. ``cache_capacity``: oneDNN
    shape cache size. ``retain_memory`` (CPU): apply ``runtime.retain_freed_memory`` to this
    process (faster, no page faults per pass; resident memory stays at its high-water
    mark; also off with ``PADDLE_FCN_RETAIN_MEMORY=0``). ``precision``: ``fp32`` | ``bf16`` |
    ``int8``, default the export's own (``deploy.yml``); see ``inference/precision.py`` for
    what each runs as on CPU and GPU (``PrecisionError`` when this device cannot; int8 on
    CPU runs the export's ``int8/`` graph, ``inference/int8_cpu.py``). Attributes:
    ``info`` (deploy.yml), ``num_classes``, ``class_names``, ``normalization``, ``output_op``,
    ``device``, ``threads``, ``precision``.
    """

    def __init__(self, model_dir, device="auto", threads=None, cache_capacity=4,
                 retain_memory=True, precision=None):
        import paddle.inference as pi

        if not os.path.isdir(model_dir):
            raise ExportError(f"exported model directory not found: {model_dir}")
        self.info = read_deploy_info(model_dir)
        self.num_classes = int(self.info["num_classes"])
        self.class_names = list(self.info["class_names"])
        self.normalization = self.info["normalization"]
        self.output_op = self.info["output_op"]
        self.precision = precision or self.info["precision"]
        gpu = use_gpu(device)
        graph, params, self._int8 = self._graph(model_dir, gpu)
        config = pi.Config(graph, params)
        config.disable_glog_info()
        if gpu:
            config.enable_use_gpu(256, 0)
            self.device, self.threads = "gpu", None
        else:
            self.threads = int(threads or physical_cores())
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(self.threads)
            config.enable_onednn()
            config.set_onednn_cache_capacity(int(cache_capacity))
            self.device = "cpu"
            if retain_memory:
                retain_freed_memory()
        configure_precision(config, self.precision, gpu, model_dir)
        # oneDNN's int8 passes log their counts to stderr, dozens of lines
        quiet = _stderr_kept_unless_failing() if self._int8 else contextlib.nullcontext()
        with quiet:
            self._predictor = pi.create_predictor(config)
        self._input = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        self._output_name = self._predictor.get_output_names()[0]

    def _graph(self, model_dir, gpu):
        """``(graph, params, int8_cpu record or None)``: the export's int8/ graph for int8 on
        CPU (``inference/int8_cpu.py``: ``predict`` pads the input to its pad multiple, crops
        the output and applies an argmax the graph leaves out), else the export's own."""
        record = self.info.get("int8_cpu")
        if self.precision != "int8":
            return (*model_files(model_dir), None)
        if gpu:
            if record is not None:  # TensorRT would calibrate on the inputs it is given
                raise PrecisionError(f"{model_dir} was exported for int8 on CPU (oneDNN); for "
                                     f"int8 on a GPU export it there with --precision int8 "
                                     f"(TensorRT), or run it with --precision fp32")
            return (*model_files(model_dir), None)
        if not isinstance(record, dict) or "pad_multiple" not in record:
            raise PrecisionError(f"{model_dir} was not exported for int8 on CPU (its deploy.yml "
                                 f"has no int8_cpu record: a GPU/TensorRT or fp32 export); "
                                 f"export it with --precision int8 on a CPU, or run it with "
                                 f"--precision fp32")
        return (*int8_files(model_dir), record)

    def predict(self, batch):
        """``N x 3 x H x W`` float32 normalised batch -> numpy output (see ``output_op``):
        ``N x C x H x W`` float32 logits/probabilities or ``N x H x W`` int32 classes."""
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1] != 3 or min(batch.shape) < 1:
            raise ValueError(f"Predictor.predict expects an N x 3 x H x W batch, got shape "
                             f"{batch.shape}")
        height, width = batch.shape[2:]
        if self._int8:
            batch = pad_batch(batch, int(self._int8["pad_multiple"]))
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self._input.reshape(list(batch.shape))
        self._input.copy_from_cpu(batch)
        self._predictor.run()
        out = self._predictor.get_output_handle(self._output_name).copy_to_cpu()
        if not self._int8:
            return out
        out = out[..., :height, :width]  # the padding's pixels dropped
        if self._int8["graph_output_op"] != self.output_op:  # argmax
            return np.ascontiguousarray(out.argmax(axis=1).astype(np.int32))
        return np.ascontiguousarray(out)

    __call__ = predict


@contextlib.contextmanager
def _stderr_kept_unless_failing():
    """Hold what C++ code writes to file descriptor 2 inside the block; show it only if the
    block raises (so a failure keeps its log)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
