"""An export directory: what ``tools/export.py`` writes and the ``Predictor`` reads.

    model.json (or model.pdmodel)   the graph (``paddle.jit.save``)
    model.pdiparams                 the weights
    int8/                           precision int8 on CPU: the oneDNN int8 graph
                                    (``inference/int8_cpu.py``)
    deploy.yml                      model type, classes and their names, input normalisation,
                                    output op, precision (written last: its presence marks a
                                    complete export)
"""
import os

import paddle
import yaml

from paddle_fcn.config.schema import CHOICES
from paddle_fcn.errors import ExportError
from paddle_fcn.inference.precision import PRECISIONS
from paddle_fcn.normalization import as_normalization

__all__ = ["DEPLOY_FILE", "PREFIX", "OUTPUT_OPS", "model_files", "read_deploy_info",
           "deploy_text"]

OUTPUT_OPS = CHOICES["export.output_op"]
DEPLOY_FILE = "deploy.yml"
PREFIX = "model"


def model_files(model_dir):
    """``(graph file, params file)`` of an export directory; ``ExportError`` names what is
    missing."""
    params = os.path.join(model_dir, PREFIX + ".pdiparams")
    for graph in (PREFIX + ".json", PREFIX + ".pdmodel"):
        graph = os.path.join(model_dir, graph)
        if os.path.isfile(graph) and os.path.isfile(params):
            return graph, params
    raise ExportError(f"{model_dir} is not an exported model: it needs {PREFIX}.json (or "
                      f"{PREFIX}.pdmodel) and {PREFIX}.pdiparams, written by tools/export.py")


def read_deploy_info(model_dir):
    """The ``deploy.yml`` of an export directory as a dict (keys: model_type, num_classes,
    class_names, normalization {mean, std, scale, channel_order}, output_op, input, output)."""
    path = os.path.join(model_dir, DEPLOY_FILE)
    if not os.path.isfile(path):
        raise ExportError(f"{model_dir} has no {DEPLOY_FILE}: not an export of tools/export.py, "
                          f"or the export was interrupted; export the model again")
    with open(path, encoding="utf-8") as f:
        info = yaml.safe_load(f)
    missing = [k for k in ("num_classes", "class_names", "normalization", "output_op")
               if not isinstance(info, dict) or k not in info]
    if missing:
        raise ExportError(f"{path}: missing key(s) {', '.join(missing)}; export the model again")
    try:
        info["normalization"] = as_normalization(info["normalization"], f"{path}: normalization")
    except ValueError as e:
        raise ExportError(f"{e}; export the model again") from None
    if info["output_op"] not in OUTPUT_OPS:
        raise ExportError(f"{path}: output_op {info['output_op']!r} is not one of "
                          f"{', '.join(OUTPUT_OPS)}")
    info.setdefault("precision", "fp32")  # exports written before precision existed
    if info["precision"] not in PRECISIONS:
        raise ExportError(f"{path}: precision {info['precision']!r} is not one of "
                          f"{', '.join(PRECISIONS)}")
    return info


def deploy_text(model_type, num_classes, class_names, normalization, output_op,
                 precision="fp32", extra=None):
    """deploy.yml's text; ``extra``: further records (``int8_cpu``, ``inference/int8_cpu.py``)."""
    out = {"none": "logits, float32 N x C x H x W",
           "softmax": "class probabilities, float32 N x C x H x W",
           "argmax": "class indices, int32 N x H x W"}[output_op]
    norm = _normalization_record(normalization)
    info = {
        "model_type": model_type,
        "num_classes": int(num_classes),
        "class_names": [str(n) for n in class_names],
        "normalization": norm,
        "output_op": output_op,
        "precision": precision,
        "input": f"float32 N x 3 x H x W: {norm['channel_order']} pixels / scale, then "
                 f"(x - mean) / std per channel",
        "output": out,
        **(extra or {}),
        "paddle_version": paddle.__version__,
    }
    return ("# paddle_fcn export: read by paddle_fcn.inference.Predictor and tools/predict.py\n"
            + yaml.safe_dump(info, sort_keys=False, default_flow_style=None))


def _normalization_record(normalization):
    norm = as_normalization(normalization)
    return {"mean": list(norm["mean"]), "std": list(norm["std"]), "scale": norm["scale"],
            "channel_order": norm["channel_order"]}
