"""Deployment: export (``paddle.jit.save`` + deploy.yml), the Paddle Inference ``Predictor``
(oneDNN on all physical cores; fp32, bf16 or int8, see ``precision.py``), prediction to
palette PNG masks, and FLOP/peak counting.

Importing this package imports ``paddle_fcn`` first, whose CPU thread settings must be in
place before Paddle loads.
"""
from paddle_fcn.inference.export import (
    OUTPUT_OPS, ExportError, export_model, export_onnx, read_deploy_info)
from paddle_fcn.inference.predict import PredictError, collect_images, predict_images
from paddle_fcn.inference.precision import PRECISIONS, PrecisionError
from paddle_fcn.inference.predictor import Predictor
from paddle_fcn.inference.segmenter import EagerSegmenter, PredictorSegmenter, load_segmenter

__all__ = ["OUTPUT_OPS", "ExportError", "export_model", "export_onnx", "read_deploy_info",
           "Predictor", "PredictError", "collect_images", "predict_images", "EagerSegmenter",
           "PredictorSegmenter", "load_segmenter", "PRECISIONS", "PrecisionError"]
