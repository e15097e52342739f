"""Loading a trained model's weights file: the top of the weights stack of
``paddle_fcn.models``.

Two kinds of files are loaded:

* ImageNet classification weights for a backbone (``Backbone.load_imagenet``, through
  ``models/state_dict.py``): Paddle model-zoo ``.pdparams`` (``paddle.vision`` key layout) or
  torchvision ``.pth``/``.pt``/``.bin`` files, whose keys and layouts are translated to
  Paddle's (``files.from_torchvision``). The classifier (``fc.*``) has no counterpart in a
  segmentation backbone and is allowed to stay unused.
* Trained segmentation models (``load_model_weights``, here): the ``model.pdparams`` written by
  training, loaded strictly; a file trained for another number of classes is named as such.
  The reference nets' own files (Caffe ``.caffemodel``, pytorch-fcn ``.pth``) load through
  ``models/reference.py``.

Every file also says how its inputs are normalised (``models/origin.py``): a ``model.pdparams``
written here stores the model's normalisation under ``origin.NORMALIZATION_KEY`` (a file
without it was trained with ImageNet's, the only one earlier versions knew); Caffe and
pytorch-fcn files are Caffe's. Loading sets ``model.normalization`` from the file.

Nothing is half-loaded: every key, shape and dtype is checked before the first value is set.
Errors are ``paddle_fcn.errors.WeightsError`` (also importable from here). The modules,
bottom up: ``files`` (reading) -> ``origin`` (normalisation)
-> ``state_dict`` (copying into a model) -> ``vgg`` / ``resnet`` / ``reference`` -> ``weights``.
"""
import os

from paddle_fcn.errors import WeightsError
from paddle_fcn.models.files import TORCH_SUFFIXES, from_torchvision
from paddle_fcn.models.state_dict import check_file_classes, load_weights
from paddle_fcn.models.origin import read_weights, set_normalization
from paddle_fcn.models.reference import is_pytorch_fcn, load_reference_weights

__all__ = ["WeightsError", "load_model_weights"]


def load_model_weights(model, path):
    """Load trained full-model weights strictly and set ``model.normalization`` from the file;
    returns the ``LoadReport`` (``report.normalization``; ``str(report)`` is what a command
    prints).

    ``path`` is a ``model.pdparams`` file (training writes ``DIR/best_model/model.pdparams``)
    or a checkpoint directory that contains one, or a reference net's own file: a Caffe
    ``.caffemodel`` or a wkentaro/pytorch-fcn ``.pth`` (``models/reference.py``). A file
    trained for another number of classes raises ``WeightsError`` saying so; any other
    difference names the first differing keys.
    """
    path = _model_file(os.fspath(path))
    if path.lower().endswith(".caffemodel"):
        return load_reference_weights(model, path)
    state, normalization = read_weights(path, translate=False)
    if is_pytorch_fcn(state):
        return load_reference_weights(model, path, state)
    if path.lower().endswith(TORCH_SUFFIXES):
        state = from_torchvision(state)
    check_file_classes(model, state, path)
    report = load_weights(model, state, path)
    report.normalization = set_normalization(model, normalization)
    return report


def _model_file(path):
    if not os.path.isdir(path):
        return path
    candidate = os.path.join(path, "model.pdparams")
    if os.path.isfile(candidate):
        return candidate
    hint = os.path.join(path, "best_model", "model.pdparams")
    extra = f"; did you mean {hint}?" if os.path.isfile(hint) else ""
    raise WeightsError(f"directory {path} contains no model.pdparams{extra}")
