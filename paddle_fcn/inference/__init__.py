"""Deployment: export (``paddle.jit.save`` + deploy.yml), the Paddle Inference ``Predictor``
(oneDNN on all physical cores; fp32, bf16 or int8, see ``precision.py``), prediction to
palette PNG masks (``predict``), the test-time augmentation both evaluation and prediction
use (``tta``).

Importing this package imports ``paddle_fcn`` first, whose CPU thread settings must be in
place before Paddle loads.
"""
from paddle_fcn.errors import ExportError, PrecisionError, PredictError
from paddle_fcn.inference.bundle import OUTPUT_OPS, read_deploy_info
from paddle_fcn.inference.export import export_model, export_onnx
from paddle_fcn.inference.predict import collect_images, predict_images
from paddle_fcn.inference.precision import PRECISIONS
from paddle_fcn.inference.predictor import Predictor
from paddle_fcn.inference.segmenter import EagerSegmenter, PredictorSegmenter, load_segmenter

__all__ = ["OUTPUT_OPS", "ExportError", "export_model", "export_onnx", "read_deploy_info",
           "Predictor", "PredictError", "collect_images", "predict_images", "EagerSegmenter",
           "PredictorSegmenter", "load_segmenter", "PRECISIONS", "PrecisionError"]
