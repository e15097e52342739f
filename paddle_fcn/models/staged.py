"""Staged training (paper §4.2, docs/design.md#staged-training): FCN-16s starts from a
trained FCN-32s, FCN-8s from a trained FCN-16s.

``transfer_weights`` copies every parameter (and buffer, e.g. BatchNorm statistics) whose name
and shape match: the trunk, ``score_fr``, and for 16s -> 8s also ``upscore2`` and
``score_pool4``. The target's new skip layers (``score_pool4``/``score_pool3``) keep their zero
initialisation, so at the moment of transfer the new skip adds nothing ("unmodified
predictions", paper §4.2) and the fused coarse scores are exactly the source's. The final
outputs are still not bit-identical: the target upsamples through a different chain
(e.g. bilinear x2 then x16 instead of x32), which agrees with the source only where the
coarse scores vary linearly.
"""
import os
from dataclasses import dataclass, field

import numpy as np
import paddle.nn as nn

from paddle_fcn.models.files import TORCH_SUFFIXES, from_torchvision
from paddle_fcn.models.state_dict import SHOW, WeightsReport, first_keys, numpy_dtype
from paddle_fcn.models.origin import read_weights, set_normalization
from paddle_fcn.models.reference import is_pytorch_fcn, reference_state
from paddle_fcn.normalization import CAFFE

__all__ = ["TransferReport", "transfer_weights"]


@dataclass
class TransferReport(WeightsReport):
    """``copied``: target keys set from the source; ``left``: target keys absent from the
    source (kept as initialised); ``unused``: source keys the target lacks (e.g. the weight of
    a learnable FCN-32s ``upscore``; frozen upsamplers have none); ``skipped``: same name,
    different shape ``(key, source, target)``; ``normalization``: the source's input
    normalisation, which the target took. ``str(report)`` (``format()``) is the text the
    trainer prints."""

    copied: list = field(default_factory=list)
    left: list = field(default_factory=list)
    unused: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def format(self):
        lines = [f"transferred {len(self.copied)} tensors from {self.source}"]
        for kind, keys in (("left at target init", self.left), ("unused", self.unused)):
            if keys:
                lines.append(f"  {len(keys)} {kind}: {first_keys(keys)}")
        if self.skipped:
            shown = ", ".join(f"{k} {list(s)} vs {list(t)}" for k, s, t in self.skipped[:SHOW])
            lines.append(f"  {len(self.skipped)} skipped (shape differs): {shown}")
        return "\n".join(lines + self.normalization_lines())

    __str__ = format


def _source_state(source):
    if isinstance(source, nn.Layer):
        state = {k: np.asarray(v.numpy()) for k, v in source.state_dict().items()}
        return state, f"{type(source).__name__} ({getattr(source, 'variant', '?')})", \
            source.normalization
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.lower().endswith(".caffemodel"):
            return reference_state(path), path, dict(CAFFE)
        state, normalization = read_weights(path, translate=False)
        if is_pytorch_fcn(state):
            return reference_state(path, state), path, dict(CAFFE)
        if path.lower().endswith(TORCH_SUFFIXES):
            state = from_torchvision(state)
        return state, path, normalization
    raise TypeError(f"transfer_weights source must be a model or a .pdparams path, "
                    f"got {type(source).__name__}")


def _check_compatible(state, targets, where, target):
    """Raise ``ValueError`` if the models differ in number of classes or backbone."""
    key = "score_fr.weight"
    if key not in targets:
        raise TypeError(f"target {type(target).__name__} is not an FCN: it has no {key}")
    if key not in state:
        raise ValueError(f"source {where} is not an FCN state dict: it has no {key}")
    source_classes, target_classes = state[key].shape[0], targets[key].shape[0]
    if source_classes != target_classes:
        raise ValueError(f"source {where} scores {source_classes} classes but the target "
                         f"{target_classes}: staged training needs the same classes")
    source_keys = {k for k in state if k.startswith("backbone.")}
    target_keys = {k for k in targets if k.startswith("backbone.")}
    differ = sorted(source_keys ^ target_keys)
    differ += sorted(k for k in source_keys & target_keys
                     if tuple(state[k].shape) != tuple(targets[k].shape))
    if differ:
        raise ValueError(f"source {where} and target have different backbones; first "
                         f"differing keys: {', '.join(differ[:SHOW])}")


def transfer_weights(source, target):
    """Initialise ``target`` (a freshly built FCN) from ``source`` (a trained FCN model, the
    path of its ``.pdparams`` state dict, or a reference net's ``.caffemodel`` / pytorch-fcn
    ``.pth``, ``reference.reference_state``): copy every tensor whose name and shape match;
    the target takes the source's input normalisation.

    Returns a ``TransferReport``. Raises ``ValueError`` naming the source if the
    two differ in number of classes or in backbone (key names or shapes under ``backbone.``).
    """
    state, where, normalization = _source_state(source)
    targets = target.state_dict()
    _check_compatible(state, targets, where, target)
    report = TransferReport(source=where)
    for key, tensor in targets.items():
        if key not in state:
            report.left.append(key)
        elif tuple(state[key].shape) != tuple(tensor.shape):
            report.skipped.append((key, tuple(state[key].shape), tuple(tensor.shape)))
        else:
            dtype = numpy_dtype(tensor)  # None (bfloat16): set_value casts
            tensor.set_value(state[key] if dtype is None else state[key].astype(dtype, copy=False))
            report.copied.append(key)
    report.unused = [k for k in state if k not in targets]
    # the target takes the input the source's weights were trained on
    report.normalization = set_normalization(target, normalization)
    return report
