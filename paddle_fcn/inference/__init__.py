"""Deployment: export (``paddle.jit.save`` + deploy.yml), the Paddle Inference ``Predictor``
(oneDNN on all physical cores), prediction to palette PNG masks, and FLOP/peak counting.

Import ``paddle_fcn`` (or this package) before ``paddle``: the CPU thread settings of
``paddle_fcn.runtime`` must be in place when Paddle loads.
"""
from paddle_fcn import runtime as _runtime

_runtime.configure()

from paddle_fcn.inference.export import (  # noqa: E402
    OUTPUT_OPS, ExportError, export_model, export_onnx, read_deploy_info)
from paddle_fcn.inference.predict import PredictError, collect_images, predict_images  # noqa: E402
from paddle_fcn.inference.predictor import Predictor  # noqa: E402
from paddle_fcn.inference.segmenter import (  # noqa: E402
    EagerSegmenter, PredictorSegmenter, load_segmenter)

__all__ = ["OUTPUT_OPS", "ExportError", "export_model", "export_onnx", "read_deploy_info",
           "Predictor", "PredictError", "collect_images", "predict_images", "EagerSegmenter",
           "PredictorSegmenter", "load_segmenter"]
