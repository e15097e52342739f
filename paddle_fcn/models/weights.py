"""Reading weight files and copying them into models, with a report of what matched.

Two kinds of files are loaded:

* ImageNet classification weights for a backbone (``Backbone.load_imagenet``): Paddle model-zoo
  ``.pdparams`` (``paddle.vision`` key layout) or torchvision ``.pth``/``.pt``/``.bin`` files,
  whose keys and layouts are translated to Paddle's (``from_torchvision``). The classifier
  (``fc.*``) has no counterpart in a segmentation backbone and is allowed to stay unused.
* Trained segmentation models (``load_model_weights``): the ``model.pdparams`` written by
  training, loaded strictly; a file trained for another number of classes is named as such.
  The reference nets' own files (Caffe ``.caffemodel``, pytorch-fcn ``.pth``) load through
  ``models/reference.py``.

Every file also says how its inputs are normalised (``paddle_fcn.normalization``): a
``model.pdparams`` written here stores the model's normalisation under ``NORMALIZATION_KEY``
(a file without it was trained with ImageNet's, the only one earlier versions knew); Caffe and
pytorch-fcn files are Caffe's. Loading sets ``model.normalization`` from the file.

Nothing is half-loaded: every key, shape and dtype is checked before the first value is set.
"""
import fnmatch
import os
from dataclasses import dataclass, field

import numpy as np

from paddle_fcn.normalization import IMAGENET

__all__ = [
    "IMAGENET_NORMALIZATION", "WeightsError", "LoadReport", "read_state_dict", "read_weights",
    "from_torchvision", "load_weights", "load_model_weights", "check_num_classes",
]

# Input statistics of torchvision / Paddle model-zoo ImageNet weights: RGB in [0, 1].
IMAGENET_NORMALIZATION = dict(IMAGENET)

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
PADDLE_SUFFIXES = (".pdparams",)
# The classifier weights whose first dimension is the number of classes: FCN's score_fr and
# U-Net's final 1x1 conv. Used only to word the error for a num_classes mismatch.
CLASSIFIER_KEYS = ("score_fr.weight", "score.weight")
_SHOW = 5  # how many keys an error message or report lists per kind


class WeightsError(ValueError):
    """A weights file cannot be read, or does not fit the model it is loaded into."""


@dataclass
class LoadReport:
    """What ``load_weights`` did: keys copied, model keys absent from the file, file keys
    absent from the model, and shape mismatches ``(key, file_shape, model_shape)``."""

    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)
    source: str = ""
    normalization: dict = None  # the file's input normalisation, set on the model

    def __str__(self):
        source = f" from {self.source}" if self.source else ""
        lines = [f"loaded {len(self.loaded)} tensors{source}"]
        for kind, keys in (("missing (kept model init)", self.missing),
                           ("unexpected (not used)", self.unexpected)):
            if keys:
                lines.append(f"  {len(keys)} {kind}: {_first(keys)}")
        if self.mismatched:
            shown = ", ".join(f"{k} file {list(f)} vs model {list(m)}"
                              for k, f, m in self.mismatched[:_SHOW])
            lines.append(f"  {len(self.mismatched)} shape mismatches: {shown}")
        return "\n".join(lines)


def _first(keys):
    more = f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


# ----------------------------------------------------------------------------- reading files
def read_state_dict(path):
    """Read a weights file into ``{key: np.ndarray}`` in Paddle layout.

    ``.pdparams`` is read with ``paddle.load``; ``.pth``/``.pt``/``.bin`` with torch (if it is
    installed) and translated by ``from_torchvision``. A checkpoint dict wrapping the weights
    under ``"state_dict"``, ``"model"`` or ``"model_state_dict"`` (pytorch-fcn's trainer) is
    unwrapped. Raises ``WeightsError`` naming ``path`` for a missing, unreadable or
    unsupported file, or one that holds no state dict.
    """
    return read_weights(path)[0]


def read_weights(path, translate=True):
    """``(state, normalization)``: ``read_state_dict``'s state (``translate=False``: torch
    files as they are, without ``from_torchvision``) and the normalisation the file was trained
    with (``origin.origin_normalization``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in PADDLE_SUFFIXES:
        state = _read_paddle(path)
    elif suffix in TORCH_SUFFIXES:
        state = _read_torch(path)
    else:
        caffe = (" (a Caffe .caffemodel loads as a trained model's --model_path or as VGG16's "
                 "model.pretrained)" if suffix == ".caffemodel" else "")
        raise WeightsError(
            f"unsupported weights file {path}: expected a Paddle {PADDLE_SUFFIXES[0]} "
            f"or a PyTorch {'/'.join(TORCH_SUFFIXES)} file{caffe}"
        )
    from paddle_fcn.models.origin import NORMALIZATION_KEY, origin_normalization  # imports this

    state = _as_numpy_state(state, path)
    normalization = origin_normalization(path, state.pop(NORMALIZATION_KEY, None))
    if translate and suffix in TORCH_SUFFIXES:
        state = from_torchvision(state)
    return state, normalization


def _read_paddle(path):
    import paddle

    try:
        return paddle.load(path, return_numpy=True)
    except Exception as e:  # paddle raises ValueError/EOFError/pickle errors for bad files
        raise WeightsError(f"cannot read weights file {path} as Paddle .pdparams: {e}") from e


def _read_torch(path):
    try:
        import torch
    except ImportError:
        raise WeightsError(
            f"{path} is a PyTorch file; reading it needs `pip install torch`, "
            f"or convert it to .pdparams on a machine that has torch"
        ) from None
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # torch < 1.13 has no weights_only
            return torch.load(path, map_location="cpu")
    except Exception as e:
        raise WeightsError(f"cannot read weights file {path} with torch.load: {e}") from e


def _as_numpy_state(obj, path):
    """Unwrap a checkpoint dict and convert every value to a numpy array."""
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict (key -> array)")
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    state = {}
    for key, value in obj.items():
        array = _to_numpy(value)
        if not isinstance(key, str) or array is None:
            raise WeightsError(
                f"{path} is not a state dict: entry {key!r} holds a {type(value).__name__}, "
                f"not an array"
            )
        state[key] = array
    if not state:
        raise WeightsError(f"{path} holds an empty state dict")
    return state


def _to_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch.Tensor
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy"):  # paddle.Tensor
        return np.asarray(value.numpy())
    return None


def from_torchvision(state):
    """Translate a torchvision-layout state dict to Paddle layout (returns a new dict).

    BatchNorm ``running_mean``/``running_var`` become ``_mean``/``_variance``,
    ``num_batches_tracked`` (a counter Paddle does not keep) is dropped, and 2-D ``.weight``
    arrays, which in a torchvision classifier are ``nn.Linear`` weights stored ``[out, in]``,
    are transposed to Paddle's ``[in, out]``. Convolution kernels (``[out, in, kh, kw]``) are
    the same in both frameworks.
    """
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith(".running_mean"):
            key = key[: -len("running_mean")] + "_mean"
        elif key.endswith(".running_var"):
            key = key[: -len("running_var")] + "_variance"
        elif key.endswith(".weight") and np.ndim(value) == 2:
            value = np.ascontiguousarray(np.transpose(value))
        out[key] = value
    return out


# ----------------------------------------------------------------------------- loading
def load_weights(layer, state, source, allow_missing=(), allow_unexpected=()):
    """Copy ``state`` ({key: array}) into ``layer``'s parameters and buffers.

    ``source`` (the file name) is used in messages. Model keys absent from ``state`` must match
    an ``allow_missing`` fnmatch pattern, file keys absent from the model an
    ``allow_unexpected`` pattern; every shape must agree and float values go only into float
    tensors (cast to the tensor's dtype), integer into integer. Otherwise ``WeightsError``
    names ``source`` and the first offending keys, and ``layer`` is left unchanged.
    Returns (and prints) the ``LoadReport``.
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
        dtype = _np_dtype(tensor)
        if dtype is not None and _kind(array.dtype) != _kind(dtype):
            bad_dtype.append(f"{key} file {array.dtype} vs model {dtype}")
            continue
        ready.append((key, tensor, array if dtype is None else array.astype(dtype, copy=False)))
    _raise_if_unfit(layer, report, bad_dtype, allow_missing, allow_unexpected, ready)
    for key, tensor, array in ready:
        tensor.set_value(array)
        report.loaded.append(key)
    print(report)
    return report


def _raise_if_unfit(layer, report, bad_dtype, allow_missing, allow_unexpected, ready):
    missing = [k for k in report.missing if not _matches(k, allow_missing)]
    unexpected = [k for k in report.unexpected if not _matches(k, allow_unexpected)]
    problems = []
    if report.mismatched:
        shown = "; ".join(f"{k}: file {list(f)} vs model {list(m)}"
                          for k, f, m in report.mismatched[:_SHOW])
        problems.append(f"{len(report.mismatched)} shape mismatches ({shown})")
    if bad_dtype:
        problems.append(f"{len(bad_dtype)} dtype mismatches ({'; '.join(bad_dtype[:_SHOW])})")
    if missing:
        problems.append(f"{len(missing)} model keys missing from the file ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} file keys unknown to the model ({_first(unexpected)})")
    if not problems and not ready and layer.state_dict():
        problems.append("no key of the file matches the model")
    if problems:
        raise WeightsError(
            f"cannot load {report.source} into {type(layer).__name__}: " + "; ".join(problems)
        )


def _matches(key, patterns):
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _np_dtype(tensor):
    try:
        return np.dtype(str(tensor.dtype).split(".")[-1])
    except TypeError:  # e.g. bfloat16, which numpy does not know: let set_value cast
        return None


def _kind(dtype):
    return "float" if np.issubdtype(dtype, np.floating) else "bool" if dtype == np.bool_ else "int"


def load_model_weights(model, path):
    """Load trained full-model weights strictly and set ``model.normalization`` from the file;
    returns the ``LoadReport`` (``report.normalization``).

    ``path`` is a ``model.pdparams`` file (training writes ``DIR/best_model/model.pdparams``)
    or a checkpoint directory that contains one, or a reference net's own file: a Caffe
    ``.caffemodel`` or a wkentaro/pytorch-fcn ``.pth`` (``models/reference.py``). A file
    trained for another number of classes raises ``WeightsError`` saying so; any other
    difference names the first differing keys. Kernels of frozen upsamplers saved by earlier
    versions are checked and skipped (``models/legacy.py``).
    """
    from paddle_fcn.models import reference
    from paddle_fcn.models.legacy import drop_frozen_upsampler_kernels  # they import this
    from paddle_fcn.models.origin import take_normalization

    path = _model_file(os.fspath(path))
    if path.lower().endswith(".caffemodel"):
        return reference.load_reference_weights(model, path)
    state, normalization = read_weights(path, translate=False)
    if reference.is_pytorch_fcn(state):
        return reference.load_reference_weights(model, path, state)
    if os.path.splitext(path)[1].lower() in TORCH_SUFFIXES:
        state = from_torchvision(state)
    state = drop_frozen_upsampler_kernels(model, state, path)
    check_num_classes(model, state, path)
    report = load_weights(model, state, path)
    take_normalization(model, normalization, path)
    report.normalization = model.normalization
    return report


def check_num_classes(model, state, path):
    """``WeightsError`` saying so when ``state`` scores another number of classes."""
    targets = model.state_dict()
    for key in targets:
        if key in state and any(key == k or key.endswith("." + k) for k in CLASSIFIER_KEYS):
            file_shape, model_shape = tuple(state[key].shape), tuple(targets[key].shape)
            if file_shape[1:] == model_shape[1:] and file_shape[0] != model_shape[0]:
                raise WeightsError(
                    f"weights file {path} was trained for {file_shape[0]} classes "
                    f"({key} {list(file_shape)}) but the model has {model_shape[0]}"
                )


def _model_file(path):
    if not os.path.isdir(path):
        return path
    candidate = os.path.join(path, "model.pdparams")
    if os.path.isfile(candidate):
        return candidate
    hint = os.path.join(path, "best_model", "model.pdparams")
    extra = f"; did you mean {hint}?" if os.path.isfile(hint) else ""
    raise WeightsError(f"directory {path} contains no model.pdparams{extra}")
