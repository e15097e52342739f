"""Where weights come from, as far as their input is concerned: the normalisation a weights
file was trained with, and how a ``model.pdparams`` written here stores it.

``read_weights`` reads a file (``models/files.py``) with the normalisation it was trained with
(``origin_normalization``); ``model_state_dict`` writes a model's into the state dict training
saves; ``set_normalization`` puts one on a model. The policy itself (what a normalisation is
and does) lives in ``paddle_fcn.normalization``.
"""
import os

import numpy as np
import paddle

from paddle_fcn.errors import WeightsError
from paddle_fcn.models.files import TORCH_SUFFIXES, from_torchvision, read_state_file, to_numpy
from paddle_fcn.normalization import (CAFFE, IMAGENET, as_normalization, describe,
                                      same_normalization)

__all__ = ["NORMALIZATION_KEY", "read_weights", "read_state_dict", "origin_normalization",
           "model_state_dict", "decode_normalization", "set_normalization",
           "check_stored_normalization"]

# The entry of a saved model.pdparams that holds the model's normalisation: float64
# [mean (k), std (k), scale, 0 = RGB / 1 = BGR], k = 3 (6 for RGB-HHA); an array like every
# other entry, so that
# tools treating the file as a plain state dict keep working. "@" is in no parameter name.
NORMALIZATION_KEY = "@normalization"
_ORDERS = ("RGB", "BGR")


def read_weights(path, translate=True):
    """``(state, normalization)`` of a weights file: ``{key: np.ndarray}`` in Paddle layout
    (``translate=False``: torch files as they are, without ``from_torchvision``), without the
    ``NORMALIZATION_KEY`` entry, and the normalisation the file was trained with
    (``origin_normalization``). ``WeightsError`` naming ``path`` for a file that cannot be
    read (``files.read_state_file``)."""
    path = os.fspath(path)
    state = read_state_file(path)
    normalization = origin_normalization(path, state.pop(NORMALIZATION_KEY, None))
    if translate and path.lower().endswith(TORCH_SUFFIXES):
        state = from_torchvision(state)
    return state, normalization


def read_state_dict(path):
    """A weights file as ``{key: np.ndarray}`` in Paddle layout (``read_weights``' state):
    ``.pdparams`` read with ``paddle.load``, ``.pth``/``.pt``/``.bin`` with torch (if it is
    installed) and translated by ``from_torchvision``; a checkpoint dict wrapping the weights
    under ``"state_dict"``, ``"model"`` or ``"model_state_dict"`` is unwrapped."""
    return read_weights(path)[0]


def origin_normalization(path, stored=None):
    """The normalisation a weights file was trained with: the one it stores
    (``NORMALIZATION_KEY``), else Caffe's for the reference nets' files (``.caffemodel``, and
    wkentaro/pytorch-fcn's ``*_from_caffe.pth``, which are in torchvision layout and cannot be
    told apart by their keys), else ImageNet's (model-zoo and torchvision files, and every
    ``model.pdparams`` of earlier versions)."""
    name = os.path.basename(os.fspath(path)).lower()
    if stored is not None:
        return decode_normalization(stored, path)
    if name.endswith(".caffemodel") or "from_caffe" in name:
        return dict(CAFFE)
    return dict(IMAGENET)


def model_state_dict(model):
    """``model.state_dict()`` plus its normalisation under ``NORMALIZATION_KEY``: what
    training saves as ``model.pdparams``, so that the file says how to feed it."""
    state = dict(model.state_dict())
    if hasattr(model, "normalization"):
        norm = as_normalization(model.normalization)
        state[NORMALIZATION_KEY] = paddle.to_tensor(np.array(  # a Tensor, as the others
            [*norm["mean"], *norm["std"], norm["scale"], _ORDERS.index(norm["channel_order"])],
            dtype=np.float64))
    return state


def decode_normalization(stored, path):
    """The normalisation dict of a ``NORMALIZATION_KEY`` entry; ``WeightsError`` naming
    ``path`` for anything else."""
    values = np.asarray(to_numpy(stored), dtype=np.float64).reshape(-1)
    k = (values.size - 2) // 2
    try:
        if values.size < 8 or values.size % 2 or values[-1] not in (0, 1):
            raise ValueError(f"expected 2k + 2 values [mean (k), std (k), scale, 0|1], got "
                             f"{values.tolist()}")
        return as_normalization({"mean": values[:k], "std": values[k:2 * k],
                                 "scale": values[-2], "channel_order": _ORDERS[int(values[-1])]},
                                "")
    except ValueError as e:
        raise WeightsError(f"{path}: {NORMALIZATION_KEY} is not a normalization: "
                           f"{str(e).lstrip(': ')}") from None


def set_normalization(model, normalization):
    """Set ``model.normalization`` (and its backbone's, which the FCN head copied); returns
    the canonical dict set."""
    norm = as_normalization(normalization)
    model.normalization = norm
    backbone = getattr(model, "backbone", None)
    if backbone is not None and hasattr(backbone, "normalization"):
        backbone.normalization = dict(norm)
    return norm


def check_stored_normalization(stored, model, where, error):
    """Raise ``error`` unless the ``NORMALIZATION_KEY`` entry ``stored`` of a checkpoint
    (None: written before it was stored, so ImageNet's) is ``model.normalization``, the one the
    model built from the config feeds its data with (models without one are not checked)."""
    if not hasattr(model, "normalization"):
        return
    stored = decode_normalization(stored, where) if stored is not None else "imagenet"
    if not same_normalization(stored, model.normalization):
        raise error(
            f"checkpoint {where!r} was trained with {describe(stored)} input normalization, but "
            f"the model built from the config uses {describe(model.normalization)}; resume with "
            f"the config (model.pretrained / init_from / normalization) it was trained with")
