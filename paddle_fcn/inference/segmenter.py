"""Segmenters: a model behind one call, ``labels(batch) -> N x H x W`` class indices.

``EagerSegmenter`` runs a dygraph model, ``PredictorSegmenter`` an exported model through
Paddle Inference. Both honour a ``TestConfig`` (sliding window, flip, scales) through
``tta.predict_probs``; the exported model then has to output scores
(``output_op`` none or softmax), since class indices cannot be averaged.
``load_segmenter`` picks and builds one from a ``--model_path``.
"""
import contextlib
import os
import shutil
import tempfile
import warnings

import numpy as np
import paddle

from paddle_fcn.config import resolve_num_classes
from paddle_fcn.data import dataset_class_names
from paddle_fcn.device import setup_device
from paddle_fcn.errors import ConfigError, ExportError, PredictError
from paddle_fcn.inference.bundle import DEPLOY_FILE, model_files
from paddle_fcn.inference.export import export_model
from paddle_fcn.inference.predict import aggregates
from paddle_fcn.inference.tta import predict_probs
from paddle_fcn.models.loading import load_trained_model

__all__ = ["EagerSegmenter", "PredictorSegmenter", "load_segmenter", "load_scorer",
           "exported_scorer", "can_export", "class_names_of", "is_export_dir"]


class EagerSegmenter:
    """A dygraph ``model`` (eval mode, no grad) with ``class_names`` and a ``test_cfg``."""

    def __init__(self, model, class_names, test_cfg=None):
        model.eval()
        self.model, self.test_cfg = model, test_cfg
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.normalization = model.normalization

    def labels(self, batch):
        with paddle.no_grad():
            x = paddle.to_tensor(batch)
            if aggregates(self.test_cfg):
                return predict_probs(self.model, x, self.test_cfg).argmax(axis=1).numpy()
            return self.model(x).argmax(axis=1).numpy()


class _ScoresOf:
    """The predictor as a ``model(x) -> logits`` callable for ``predict_probs`` and
    ``engine.evaluate``: a softmax output is returned as log-probabilities, whose softmax is
    the same probabilities; an argmax output as one-hot scores (whole images only)."""

    training = False

    def __init__(self, predictor):
        self.predictor = predictor
        self.normalization = predictor.normalization

    def __call__(self, x):
        out = self.predictor.predict(x.numpy())
        if self.predictor.output_op == "softmax":
            out = np.log(np.maximum(out, np.finfo(np.float32).tiny))
        elif self.predictor.output_op == "argmax":
            out = np.eye(self.predictor.num_classes, dtype=np.float32)[out].transpose(0, 3, 1, 2)
        return paddle.to_tensor(out)

    def eval(self):  # evaluate() switches modes; an export is always in eval mode
        return self

    train = eval


class PredictorSegmenter:
    """A ``Predictor`` (exported model) with a ``test_cfg``."""

    def __init__(self, predictor, test_cfg=None):
        if aggregates(test_cfg) and predictor.output_op == "argmax":
            raise PredictError("this model was exported with output_op argmax (class indices); "
                               "sliding-window, flip and multi-scale inference average scores: "
                               "export it again with --output_op none (or softmax)")
        self.predictor, self.test_cfg = predictor, test_cfg
        self.class_names = predictor.class_names
        self.num_classes = predictor.num_classes
        self.normalization = predictor.normalization

    def labels(self, batch):
        if aggregates(self.test_cfg):
            with paddle.no_grad():
                probs = predict_probs(_ScoresOf(self.predictor), paddle.to_tensor(batch),
                                      self.test_cfg)
            return probs.argmax(axis=1).numpy()
        out = self.predictor.predict(batch)
        return out if self.predictor.output_op == "argmax" else out.argmax(axis=1)


def class_names_of(cfg, num_classes):
    """The class names training used (``data.dataset_class_names`` of the training set:
    the config's, its ``labels.txt``, the type's own), for ``deploy.yml`` and the legend."""
    return dataset_class_names(cfg.train_dataset, num_classes)


def is_export_dir(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, DEPLOY_FILE))


def _interrupted_export(path):
    """Whether ``path`` is a directory with an exported graph and weights but no deploy.yml
    (an export that was interrupted or failed its check) and no training checkpoint."""
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, "model.pdparams")):
        return False
    try:
        model_files(path)
    except ExportError:
        return False
    return True


def _temporary_export(model, class_names, model_type, precision="fp32", device="auto",
                      calibration=()):
    """Export ``model`` to a fresh temporary directory; returns its path (caller deletes)."""
    folder = tempfile.mkdtemp(prefix="paddle_fcn-export-")
    try:
        export_model(model, folder, "none", class_names, model_type, precision, device,
                     calibration)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def load_segmenter(model_path, cfg=None, device="auto", test_cfg=None, eager=False,
                   threads=None, precision=None):
    """A segmenter for ``model_path``: an export directory (``deploy.yml``) -> Predictor; a
    training checkpoint (``model.pdparams``, ``best_model/``, ``iter_N/``, needs ``cfg``) ->
    exported on the fly to a temporary directory and run by a Predictor, or eager when
    ``eager`` is set or the fp32 export fails (a warning says why). ``precision``: see
    ``Predictor``; default the export's own, fp32 for a checkpoint."""
    from paddle_fcn.inference.predictor import Predictor

    if is_export_dir(model_path):
        return PredictorSegmenter(Predictor(model_path, device, threads, precision=precision),
                                  test_cfg)
    model, names = _checkpoint_model(model_path, cfg, device)
    channels = len(model.normalization["mean"])
    if channels != 3:  # refused before any export: predict reads RGB image files
        raise PredictError(f"{cfg.model.type} takes {channels}-channel input (RGB, then HHA); "
                           f"tools/predict.py reads RGB images only: score it with "
                           f"tools/eval.py on its data set")
    reduced = precision not in (None, "fp32")
    if eager:
        if reduced:
            raise PredictError(f"--precision {precision} runs the exported predictor; --eager "
                               f"runs the fp32 dygraph model: drop one of them")
        return EagerSegmenter(model, names, test_cfg)
    try:
        predictor = _checkpoint_predictor(model, names, cfg, device, threads, precision)
    except ExportError as e:
        if reduced:  # a bf16/int8 result must not quietly become an fp32 one
            raise
        warnings.warn(f"{cfg.model.type}: export for the fast predictor failed, running the "
                      f"slower eager model instead: {e}", RuntimeWarning, stacklevel=2)
        return EagerSegmenter(model, names, test_cfg)
    return PredictorSegmenter(predictor, test_cfg)


def load_scorer(model_path, cfg, device="auto", precision=None):
    """The deployed form of ``model_path`` (an export directory, or a checkpoint exported at
    ``precision``) as a model for ``engine.evaluate``: ``tools/eval.py --precision``."""
    from paddle_fcn.inference.predictor import Predictor

    threads = cfg.cpu_threads if cfg is not None else None  # the run's CPU threads
    if is_export_dir(model_path):
        return _ScoresOf(Predictor(model_path, device, threads, precision=precision))
    model, names = _checkpoint_model(model_path, cfg, device)
    return _ScoresOf(_checkpoint_predictor(model, names, cfg, device, threads, precision))


def _checkpoint_model(model_path, cfg, device):
    """``(model, class names)`` of a training checkpoint; PredictError names what is wrong."""
    if not os.path.exists(model_path):
        raise PredictError(f"--model_path {model_path}: no such file or directory")
    if _interrupted_export(model_path):
        raise PredictError(f"--model_path {model_path} holds an exported graph and weights but "
                           f"no {DEPLOY_FILE}: the export looks interrupted or failed its "
                           f"check; export the model again into {model_path} (tools/export.py)")
    if cfg is None:
        raise PredictError(f"--model_path {model_path} is a training checkpoint, not an export "
                           f"directory (no {DEPLOY_FILE}): pass the training --config too")
    try:
        setup_device(device)
    except ConfigError as e:  # --device gpu without a GPU
        raise PredictError(str(e)) from None
    model, _ = load_trained_model(cfg.model, resolve_num_classes(cfg, None), model_path)
    return model, class_names_of(cfg, model.num_classes)


def _checkpoint_predictor(model, names, cfg, device, threads, precision):
    """A Predictor of ``model`` exported at ``precision`` to a temporary directory."""
    from paddle_fcn.inference.precision import calibration_images
    from paddle_fcn.inference.predictor import Predictor

    precision = precision or "fp32"
    calibration = calibration_images(cfg, model.normalization, cfg.export.calib_images) \
        if precision == "int8" else ()
    folder = _temporary_export(model, names, cfg.model.type, precision, device, calibration)
    try:  # the predictor holds graph and weights in memory once created
        return Predictor(folder, device, threads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def can_export(model):
    """Whether ``exported_scorer`` can run ``model``: one output (not a multi-head model) of
    a 3-channel input (not an RGB-HHA late-fusion model)."""
    return not getattr(model, "heads", None) and len(model.normalization["mean"]) == 3


@contextlib.contextmanager
def exported_scorer(model, device="auto", threads=None):
    """``model`` as it would be deployed: exported (fp32 scores, checked against the eager
    model) to a temporary directory and run by a ``Predictor`` on ``threads`` CPU threads
    (None: the physical cores), as a scorer for ``engine.evaluate``; the directory is
    removed afterwards. Leaves ``model`` in eval mode."""
    from paddle_fcn.inference.predictor import Predictor

    folder = _temporary_export(model, None, type(model).__name__, device=device)
    try:
        yield _ScoresOf(Predictor(folder, device, threads, retain_memory=False))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
