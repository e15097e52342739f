"""State-dict keys written by earlier versions of paddle_fcn, accepted only when they hold
exactly what this version computes without storing it.

Up to commit a61b99e a frozen ``BilinearUpsample`` (``learnable=False``: the final
upsampler, and ``upscore2``/``upscore_pool4`` unless ``learnable_skip_upsample``) kept its
fixed kernel as a parameter ``<layer>.up.weight`` of shape ``[C, 1, k, k]`` (a grouped
transposed conv, every channel ``bilinear_kernel(k)``). The layer now has no parameter: it
computes the same transposed conv as two matrix products. Such a key is dropped after checking
that it is that kernel; any other value (a file whose upsampler was trained) is refused, since
dropping it would silently change the network.
"""
import numpy as np

from paddle_fcn.models.weights import WeightsError, _to_numpy
from paddle_fcn.upsample import BilinearUpsample, bilinear_kernel

__all__ = ["drop_frozen_upsampler_kernels"]


def drop_frozen_upsampler_kernels(model, state, source, error=WeightsError):
    """``state`` ({key: array or Tensor}) without the legacy kernels of ``model``'s frozen
    upsamplers (a new dict; ``state`` is not modified). ``source`` names the file in errors.

    A key ``<layer>.up.weight`` of a frozen ``BilinearUpsample`` is dropped if it is
    ``[C, 1, k, k]`` with ``bilinear_kernel(k)`` in every channel (tolerance 1e-6), whatever C
    and k: a file for another number of classes or backbone is then refused by the caller's
    own checks, which say so. Any other value raises ``error`` (default ``WeightsError``)
    naming the file and key.
    """
    out = dict(state)
    for name, layer in model.named_sublayers():
        key = f"{name}.up.weight"
        if not isinstance(layer, BilinearUpsample) or layer.learnable or key not in out:
            continue
        value = _to_numpy(out.pop(key))
        if not _is_bilinear_stack(value):
            raise error(
                f"{source}: {key} {list(value.shape)} is not a stack of fixed bilinear kernels "
                f"[C, 1, k, k], but {name} is frozen in this model and has no parameter; "
                f"weights with a trained {name} need the model built with that upsampler "
                f"learnable (learnable_upsample / learnable_skip_upsample: true)")
    return out


def _is_bilinear_stack(value):
    if value.ndim != 4 or value.shape[1] != 1 or not value.shape[2] == value.shape[3] > 0:
        return False
    kernel = bilinear_kernel(value.shape[3])
    return bool(np.allclose(value, kernel[None, None], rtol=0, atol=1e-6))
