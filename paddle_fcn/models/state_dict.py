"""Copying a state dict into a model, all or nothing, with a report of what matched.

``load_weights`` checks every key, shape and dtype before it sets the first value;
``check_file_classes`` words the one mismatch users meet most (a file trained for another
number of classes). Reading files is ``models/files.py`` and ``models/origin.py``.
"""
import fnmatch
from dataclasses import dataclass, field

import numpy as np

from paddle_fcn.errors import WeightsError
from paddle_fcn.normalization import describe

__all__ = ["LoadReport", "load_weights", "check_file_classes", "classes_mismatch", "SHOW",
           "first_keys", "WeightsReport", "numpy_dtype", "CLASSIFIER_KEYS"]

# The classifier weights whose first dimension is the number of classes: FCN's score_fr and
# U-Net's final 1x1 conv. Used only to word the error for a num_classes mismatch.
CLASSIFIER_KEYS = ("score_fr.weight", "score.weight")
SHOW = 5  # how many keys an error message or report lists per kind


def first_keys(keys):
    """The first ``SHOW`` of ``keys``, comma-separated, and how many more there are."""
    more = f", ... (+{len(keys) - SHOW} more)" if len(keys) > SHOW else ""
    return ", ".join(keys[:SHOW]) + more


@dataclass
class WeightsReport:
    """What a load of weights from ``source`` did (subclasses list the keys); ``normalization``:
    the input normalisation those weights set on the model (None: not set)."""

    source: str = ""
    normalization: dict = None

    def normalization_lines(self):
        """``[]``, or the line saying which input normalisation the weights set."""
        if self.normalization is None:
            return []
        return [f"  input normalization of {self.source}: {describe(self.normalization)}"]


@dataclass
class LoadReport(WeightsReport):
    """What ``load_weights`` did: keys copied, model keys absent from the file, file keys
    absent from the model, and shape mismatches ``(key, file_shape, model_shape)``.
    ``str(report)`` (``format()``) is the text a command prints after loading."""

    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)

    def format(self):
        source = f" from {self.source}" if self.source else ""
        lines = [f"loaded {len(self.loaded)} tensors{source}"]
        for kind, keys in (("missing (kept model init)", self.missing),
                           ("unexpected (not used)", self.unexpected)):
            if keys:
                lines.append(f"  {len(keys)} {kind}: {first_keys(keys)}")
        if self.mismatched:
            shown = ", ".join(f"{k} file {list(f)} vs model {list(m)}"
                              for k, f, m in self.mismatched[:SHOW])
            lines.append(f"  {len(self.mismatched)} shape mismatches: {shown}")
        return "\n".join(lines + self.normalization_lines())

    __str__ = format


def load_weights(layer, state, source, allow_missing=(), allow_unexpected=()):
    """Copy ``state`` ({key: array}) into ``layer``'s parameters and buffers.

    ``source`` (the file name) is used in messages. Model keys absent from ``state`` must match
    an ``allow_missing`` fnmatch pattern, file keys absent from the model an
    ``allow_unexpected`` pattern; every shape must agree and float values go only into float
    tensors (cast to the tensor's dtype), integer into integer. Otherwise ``WeightsError``
    names ``source`` and the first offending keys, and ``layer`` is left unchanged.
    Returns the ``LoadReport``.
    """
    targets = layer.state_dict()
    report = LoadReport(source=str(source))
    report.missing = [k for k in targets if k not in state]
    report.unexpected = [k for k in state if k not in targets]
    bad_dtype, ready = [], []
    for key, tensor in targets.items():
        if key not in state:
            continue
        array = np.asarray(state[key])
        if tuple(array.shape) != tuple(tensor.shape):
            report.mismatched.append((key, tuple(array.shape), tuple(tensor.shape)))
            continue
        dtype = numpy_dtype(tensor)
        if dtype is not None and _kind(array.dtype) != _kind(dtype):
            bad_dtype.append(f"{key} file {array.dtype} vs model {dtype}")
            continue
        ready.append((key, tensor, array if dtype is None else array.astype(dtype, copy=False)))
    _raise_if_unfit(layer, report, bad_dtype, allow_missing, allow_unexpected, ready)
    for key, tensor, array in ready:
        tensor.set_value(array)
        report.loaded.append(key)
    return report


def _raise_if_unfit(layer, report, bad_dtype, allow_missing, allow_unexpected, ready):
    missing = [k for k in report.missing if not _matches(k, allow_missing)]
    unexpected = [k for k in report.unexpected if not _matches(k, allow_unexpected)]
    problems = []
    if report.mismatched:
        shown = "; ".join(f"{k}: file {list(f)} vs model {list(m)}"
                          for k, f, m in report.mismatched[:SHOW])
        problems.append(f"{len(report.mismatched)} shape mismatches ({shown})")
    if bad_dtype:
        problems.append(f"{len(bad_dtype)} dtype mismatches ({'; '.join(bad_dtype[:SHOW])})")
    if missing:
        problems.append(f"{len(missing)} model keys missing from the file ({first_keys(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} file keys unknown to the model "
                        f"({first_keys(unexpected)})")
    if not problems and not ready and layer.state_dict():
        problems.append("no key of the file matches the model")
    if problems:
        raise WeightsError(
            f"cannot load {report.source} into {type(layer).__name__}: " + "; ".join(problems)
        )


def _matches(key, patterns):
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def numpy_dtype(tensor):
    """The numpy dtype of a Paddle tensor (``paddle.float32`` -> ``float32``); None for one
    numpy does not know (bfloat16: ``set_value`` casts)."""
    try:
        return np.dtype(str(tensor.dtype).split(".")[-1])
    except TypeError:
        return None


def _kind(dtype):
    return "float" if np.issubdtype(dtype, np.floating) else "bool" if dtype == np.bool_ else "int"


def classes_mismatch(path, key, file_shape, model_classes):
    """The ``WeightsError`` for a file whose classifier ``key`` (shape ``file_shape``, classes
    first) scores another number of classes than the model's ``model_classes``."""
    return WeightsError(f"weights file {path} was trained for {file_shape[0]} classes "
                        f"({key} {list(file_shape)}) but the model has {model_classes}")


def check_file_classes(model, state, path):
    """``WeightsError`` saying so when ``state`` scores another number of classes than
    ``model`` (a classifier key of ``CLASSIFIER_KEYS`` equal but for its first dimension)."""
    targets = model.state_dict()
    for key in targets:
        if key in state and any(key == k or key.endswith("." + k) for k in CLASSIFIER_KEYS):
            file_shape, model_shape = tuple(state[key].shape), tuple(targets[key].shape)
            if file_shape[1:] == model_shape[1:] and file_shape[0] != model_shape[0]:
                raise classes_mismatch(path, key, file_shape, model_shape[0])
