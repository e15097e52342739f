"""Weight files as numpy state dicts: the bottom of the weights stack of ``paddle_fcn.models``.

``read_state_file`` reads a Paddle ``.pdparams`` or a PyTorch ``.pth``/``.pt``/``.bin`` file
into ``{key: np.ndarray}`` as the file has it (a checkpoint dict wrapping the weights is
unwrapped); ``from_torchvision`` translates torchvision's key names and layouts to Paddle's.
What the file's inputs are (its normalisation) is ``models/origin.py``; copying a state dict
into a model is ``models/state_dict.py``; which loader a file needs is ``models/weights.py``. Every
error is a ``paddle_fcn.errors.WeightsError`` naming the file.
"""
import os

import numpy as np
import paddle

from paddle_fcn.errors import WeightsError

__all__ = ["TORCH_SUFFIXES", "PADDLE_SUFFIXES", "read_state_file", "to_numpy",
           "from_torchvision"]

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
PADDLE_SUFFIXES = (".pdparams",)
_WRAPPERS = ("state_dict", "model", "model_state_dict")  # pytorch-fcn's trainer: "model_state_dict"


def read_state_file(path):
    """``{key: np.ndarray}`` of a ``.pdparams`` (``paddle.load``) or ``.pth``/``.pt``/``.bin``
    (torch, if it is installed) file, keys and layouts as stored. Raises ``WeightsError``
    naming ``path`` for a missing, unreadable or unsupported file, or one that holds no state
    dict."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in PADDLE_SUFFIXES:
        return _as_numpy_state(_read_paddle(path), path)
    if suffix in TORCH_SUFFIXES:
        return _as_numpy_state(_read_torch(path), path)
    caffe = (" (a Caffe .caffemodel loads as a trained model's --model_path or as VGG16's "
             "model.pretrained)" if suffix == ".caffemodel" else "")
    raise WeightsError(
        f"unsupported weights file {path}: expected a Paddle {PADDLE_SUFFIXES[0]} "
        f"or a PyTorch {'/'.join(TORCH_SUFFIXES)} file{caffe}"
    )


def _read_paddle(path):
    try:
        return paddle.load(path, return_numpy=True)
    except Exception as e:  # paddle raises ValueError/EOFError/pickle errors for bad files
        raise WeightsError(f"cannot read weights file {path} as Paddle .pdparams: {e}") from e


def _read_torch(path):
    try:
        import torch  # optional: only .pth files need it
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
    for wrapper in _WRAPPERS:
        if isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    state = {}
    for key, value in obj.items():
        array = to_numpy(value)
        if not isinstance(key, str) or array is None:
            raise WeightsError(
                f"{path} is not a state dict: entry {key!r} holds a {type(value).__name__}, "
                f"not an array"
            )
        state[key] = array
    if not state:
        raise WeightsError(f"{path} holds an empty state dict")
    return state


def to_numpy(value):
    """``value`` as a numpy array: an array, a torch or a Paddle tensor; None for anything else."""
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
