"""Inference precision of an export: what ``fp32`` / ``bf16`` / ``int8`` run as, and where.

=========  ==============================================  ==================================
precision  CPU (Paddle Inference + oneDNN)                 GPU (Paddle Inference)
=========  ==============================================  ==================================
fp32       fp32 oneDNN kernels                             fp32 CUDA kernels
bf16       oneDNN bf16 (``enable_onednn_bfloat16``):       fp16 (``enable_use_gpu(...,
           needs ``avx512_bf16`` or ``amx_bf16``           PrecisionType.Half)``)
int8       oneDNN int8 (``enable_onednn_int8``) on the     TensorRT int8, calibrated on
           export's ``int8/`` graph: static post-training  training images at export
           quantization at export (``int8_cpu.py``);
           needs AVX2 (fastest with AMX / ``avx512_vnni``)
=========  ==============================================  ==================================

The export's ``deploy.yml`` records its precision and the predictor runs it that way, so a
deployed model runs as it was validated; ``Predictor(..., precision="fp32")`` (``--precision
fp32``) runs any export in fp32.

A CPU without bf16 instructions gets ``PrecisionError`` naming them, not a fallback: Paddle
itself silently runs fp32 there (it logs "CPU does not support BFLOAT16 calculations"), and
on AVX-512 CPUs without ``avx512_bf16`` oneDNN emulates bf16, slower than fp32. Either way
a model shipped as "bf16" would not run as measured.

GPU int8 (written for Paddle builds with TensorRT, not run on the CPU-only machines this is
developed on): TensorRT's calibration runs at export over ``calib_images`` training images
and leaves its table in ``_opt_cache/`` of the export, which the predictor reads.
"""
import dataclasses
import os

import numpy as np
import paddle

from paddle_fcn.config.schema import CHOICES
from paddle_fcn.errors import PrecisionError

__all__ = ["PRECISIONS", "PrecisionError", "bf16_missing", "cpu_flags", "check_precision",
           "configure_precision", "calibration_images", "CalibrationImages", "compare_outputs",
           "INT8_CPU_OPS", "INT8_CPU_SKIPPED_PASSES", "NO_CALIBRATION"]

PRECISIONS = CHOICES["export.precision"]
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
OPT_CACHE = "_opt_cache"  # TensorRT engine and calibration table, inside the export
# TensorRT dynamic shapes of the input x (N x 3 x H x W): min, max, opt.
TRT_SHAPES = ([1, 3, 32, 32], [1, 3, 2048, 2048], [1, 3, 512, 512])
# Largest |precision output - eager fp32 logits| an export check accepts, as a fraction of
# max |logit|: catches a broken conversion (wrong layout, missing op: errors of O(1)), not
# the rounding that the benchmark and tools/eval.py --precision measure.
CHECK_TOLERANCE = {"fp32": 1e-4, "bf16": 0.05, "int8": 0.25}
# The ops oneDNN runs in int8 on CPU: convs (``fused_conv2d`` once their bias and ReLU are
# fused in) and max pools; not the additions, which it would by default and which cost
# accuracy without a speed-up. Nor may it fuse a residual or skip addition into the conv
# before it (the skipped pass): faster, but less accurate (docs/performance.md#int8-on-cpu).
INT8_CPU_OPS = ("conv2d", "fused_conv2d", "pool2d")
INT8_CPU_SKIPPED_PASSES = ("conv_elementwise_add_onednn_fuse_pass",)
NO_CALIBRATION = ("int8 calibration got no images: it needs at least one (--calib_images N, "
                  "a few hundred training images)")


def cpu_flags(path="/proc/cpuinfo"):
    """The instruction-set flags of this CPU (``set`` of names; empty when unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def bf16_missing(flags):
    """``None`` when ``flags`` include native bf16 (``avx512_bf16`` or ``amx_bf16``), else the
    error message naming what is missing."""
    if any(f in flags for f in BF16_FLAGS):
        return None
    return (f"precision bf16 on CPU needs the {' or '.join(BF16_FLAGS)} instruction set, "
            f"which this CPU lacks (AMD Zen 4+, Intel Cooper Lake / Sapphire Rapids+ have "
            f"it); run this export with --precision fp32 (Predictor(..., precision='fp32')) "
            f"or on a CPU with bf16")


def _has_tensorrt():
    import paddle.inference as pi

    return any(pi.get_trt_compile_version())


def check_precision(precision, gpu):
    """Raise ``PrecisionError`` unless ``precision`` can run on this device (``gpu`` or CPU)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, "
                             f"got {precision!r}")
    if gpu:
        if precision == "int8" and not _has_tensorrt():
            raise PrecisionError("precision int8 on GPU runs through TensorRT, and this Paddle "
                                 "build has none; install a paddlepaddle-gpu build with "
                                 "TensorRT, or use bf16 (fp16 on GPU) / fp32")
        return
    if precision == "bf16":
        flags = cpu_flags()
        missing = bf16_missing(flags) if flags else (
            None if paddle.base.core.supports_bfloat16_fast_performance()
            else bf16_missing(()))
        if missing:
            raise PrecisionError(missing)
    if precision == "int8" and not paddle.base.core.supports_int8():
        raise PrecisionError("precision int8 on CPU needs oneDNN int8 kernels (AVX2 or "
                             "AVX-512), which this CPU lacks; run with --precision fp32")


def configure_precision(config, precision, gpu, model_dir):
    """Set ``config`` (a ``paddle.inference.Config`` with its device already chosen) up for
    ``precision``; ``check_precision`` first."""
    import paddle.inference as pi

    check_precision(precision, gpu)
    if not gpu:
        if precision == "bf16":
            config.enable_onednn_bfloat16()
        elif precision == "int8":  # the export's int8/ graph, a legacy-IR program
            config.enable_new_ir(False)
            config.enable_onednn_int8(set(INT8_CPU_OPS))
            for name in INT8_CPU_SKIPPED_PASSES:
                config.delete_pass(name)
        return
    if precision == "bf16":  # GPUs: fp16 (tensor cores); set before the predictor is made
        config.enable_use_gpu(256, 0, pi.PrecisionType.Half)
    elif precision == "int8":
        config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=1,
                                      min_subgraph_size=3, precision_mode=pi.PrecisionType.Int8,
                                      use_static=False, use_calib_mode=True)
        config.set_optim_cache_dir(os.path.join(model_dir, OPT_CACHE))
        low, high, opt = TRT_SHAPES
        config.set_trt_dynamic_shape_info({"x": low}, {"x": high}, {"x": opt})


def calibration_images(cfg, normalization, count):
    """The first ``count`` training images of ``cfg`` (whole images, no augmentation,
    normalised ``1 x 3 x H x W`` float32): what int8 calibration sees, as a
    ``CalibrationImages``. ``PrecisionError`` for ``count < 1``."""
    if count < 1:
        raise PrecisionError(f"int8 calibration needs at least one image, got calib_images "
                             f"{count} (a few hundred training images is usual)")
    return CalibrationImages(cfg.train_dataset, cfg.model.num_classes, normalization, count)


@dataclasses.dataclass
class CalibrationImages:
    """Up to ``count`` images of the data set ``dataset_cfg`` without its transforms. Read
    from disk at each iteration (calibration passes over them more than once), and small to
    pickle: the CPU int8 export hands it to a child process (``int8_cpu.py``)."""
    dataset_cfg: object
    num_classes: int
    normalization: dict
    count: int

    def _dataset(self):
        from paddle_fcn.data import build_dataset

        return build_dataset(dataclasses.replace(self.dataset_cfg, transforms=[]),
                             self.normalization, self.num_classes)

    def __len__(self):
        return min(self.count, len(self._dataset()))

    def __iter__(self):
        dataset = self._dataset()
        for i in range(min(self.count, len(dataset))):
            yield np.ascontiguousarray(dataset[i][0], dtype=np.float32)[None]


def compare_outputs(got, want, output_op, precision):
    """``None`` when a ``precision`` predictor's output ``got`` matches the eager fp32
    ``want`` within ``CHECK_TOLERANCE``, else what differs."""
    if got.shape != want.shape:
        return f"shape {got.shape}, the eager model {want.shape}"
    if output_op == "argmax":
        agree = float((got == want).mean())
        return None if agree >= 0.9 else f"class indices agree on {100 * agree:.1f} % of pixels"
    err = float(abs(got - want).max())
    scale = max(1.0, float(abs(want).max()))
    if err <= CHECK_TOLERANCE[precision] * scale:
        return None
    return f"max difference {err:.3g} (outputs up to {scale:.3g})"
