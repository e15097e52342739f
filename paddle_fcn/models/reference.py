"""The reference nets' own weights: FCN authors' Caffe files and wkentaro/pytorch-fcn's ``.pth``.

Files (addresses in README, "Reference weights"):

* ``fcn{32,16,8}s-heavy-pascal.caffemodel``, ``fcn8s-atonce-pascal.caffemodel``
  (fcn.berkeleyvision.org) and pytorch-fcn's ``fcn{32,16,8}s_from_caffe.pth``,
  ``fcn8s-atonce_from_caffe.pth`` (the same nets, keys ``<layer>.weight`` / ``.bias``) load
  into ``fcn{32,16,8}s_vgg16`` / ``fcn8s_atonce_vgg16`` built with ``geometry="caffe"``, layer
  by layer under the reference names: conv1_1 ... conv5_3, fc6, fc7 (trunk), score_fr,
  score_pool4, score_pool3, upscore2, upscore_pool4, upscore / upscore16 / upscore8.
* Caffe's ImageNet ``VGG_ILSVRC_16_layers.caffemodel`` loads as ``model.pretrained``
  (``vgg.caffe_vgg16_to_trunk``: fc6 / fc7 InnerProduct weights reshaped to convolutions, as
  ``convolutionalize`` does; fc8 dropped). pytorch-fcn's ``vgg16_from_caffe.pth`` is in
  torchvision layout and goes the torchvision way (``VGG16Backbone.load_imagenet``).

Layouts (Caffe's ``base_conv_layer.cpp``, ``deconv_layer.hpp``: deconvolution reverses the
dimensions): convolution ``[out, in, kh, kw]`` and deconvolution ``[in, out, kh, kw]`` are
Paddle's ``Conv2D`` and ``Conv2DTranspose`` layouts; both are copied as they are (no
transpose, no kernel flip); InnerProduct ``[out, in]`` reshapes to the equivalent conv.
A fixed upsampler of this package has no parameter, so its file kernel must be the bilinear
one (``bilinear_kernel(k)`` on the class diagonal, zeros elsewhere) or the load is refused; a
learnable one takes the file's kernel. Every one of these nets was trained on BGR 0-255 images
minus the Caffe mean: loading sets ``model.normalization`` to ``normalization.CAFFE``.
"""
import os

import numpy as np

from paddle_fcn.errors import WeightsError
from paddle_fcn.models.caffe import read_caffemodel
from paddle_fcn.models.fcn import FCN
from paddle_fcn.models.state_dict import classes_mismatch, load_weights
from paddle_fcn.models.origin import read_weights, set_normalization
from paddle_fcn.models.vgg import VGG16Backbone, trunk_layer_names
from paddle_fcn.normalization import CAFFE
from paddle_fcn.upsample import bilinear_kernel

__all__ = ["is_pytorch_fcn", "read_reference_layers", "reference_to_state",
           "load_reference_weights", "reference_state"]

_SCALE_LAYERS = ("scale_pool4", "scale_pool3")  # voc-fcn8s-atonce: fixed Scale on pool4, pool3


def is_pytorch_fcn(state):
    """Whether a state dict has pytorch-fcn's FCN keys (``conv1_1.weight``, ``score_fr.weight``
    at the top level, where this package's models have ``backbone.`` and its own keys)."""
    return "conv1_1.weight" in state and "score_fr.weight" in state


def read_reference_layers(path, state=None):
    """``{layer name: [blob arrays]}`` of a ``.caffemodel`` or a pytorch-fcn ``.pth``
    (``<layer>.weight`` then ``<layer>.bias``; ``state``: the ``.pth`` already read)."""
    path = os.fspath(path)
    if path.lower().endswith(".caffemodel"):
        return {name: layer.blobs for name, layer in read_caffemodel(path).items()}
    if state is None:
        state = read_weights(path, translate=False)[0]
    layers = {}
    for key, value in state.items():
        name, _, kind = key.rpartition(".")
        if kind not in ("weight", "bias") or not name:
            raise WeightsError(f"{path}: key {key!r} is not <layer>.weight or <layer>.bias of "
                               f"a pytorch-fcn FCN")
        layers.setdefault(name, [None, None])[0 if kind == "weight" else 1] = value
    return {name: [b for b in blobs if b is not None] for name, blobs in layers.items()}


def _fit(blob, shape, where):
    """``blob`` as ``shape``: as it is, or an InnerProduct ``[out, in]`` as the equivalent conv
    ``[out, C, k, k]`` (Caffe flattens C x k x k channel-major, like ``fc_to_conv``)."""
    blob = np.asarray(blob, dtype=np.float32)
    if tuple(blob.shape) == tuple(shape):
        return blob
    if _strip_ones(blob.shape) == _strip_ones(shape):  # a V1 [1, 1, 1, N] bias, a 1-class conv
        return blob.reshape(shape)
    if blob.ndim == 2 and len(shape) == 4 and blob.shape[0] == shape[0] \
            and blob.size == int(np.prod(shape)):
        return np.ascontiguousarray(blob.reshape(shape))
    raise WeightsError(f"{where} has shape {list(blob.shape)}, the model needs {list(shape)}")


def _strip_ones(shape):
    shape = list(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape.pop(0)
    return tuple(shape)


def _check_model(model, path):
    if not isinstance(model, FCN) or not isinstance(model.backbone, VGG16Backbone):
        raise WeightsError(f"{path} holds a reference FCN (VGG16); it loads into fcn32s_vgg16, "
                           f"fcn16s_vgg16, fcn8s_vgg16 or fcn8s_atonce_vgg16, not "
                           f"{type(model).__name__}")
    if model.geometry != "caffe":
        raise WeightsError(
            f"{path} holds reference weights, trained with the 100-pixel input padding and the "
            f"crops of the Caffe nets; the model was built with geometry {model.geometry!r}, "
            f"which would shift every fused map: build it with geometry: caffe")


def _upsampler(layer, blobs, where):
    """``{key: array}`` for one upsampler from its file blobs ([C, C, k, k], no bias)."""
    if len(blobs) != 1:
        raise WeightsError(f"{where} has {len(blobs)} blobs; an FCN upsampler has one kernel "
                           f"and no bias")
    c, k = layer.channels, layer.kernel_size
    kernel = _fit(blobs[0], (c, c, k, k), where)
    if layer.learnable:
        return {"up.weight": kernel}
    fixed = np.zeros_like(kernel)
    fixed[np.arange(c), np.arange(c)] = bilinear_kernel(k)
    if not np.allclose(kernel, fixed, rtol=0, atol=1e-6):
        raise WeightsError(
            f"{where} is not the fixed bilinear kernel (largest difference "
            f"{float(np.abs(kernel - fixed).max()):.3g}), but this model's upsampler is fixed; "
            f"build it with that upsampler learnable (learnable_upsample / "
            f"learnable_skip_upsample: true) to load a trained one")
    return {}


def _check_scales(model, layers, path):
    scales = {"scale_pool4": model.skip_scales[0], "scale_pool3": model.skip_scales[1]}
    atonce = scales != {"scale_pool4": 1.0, "scale_pool3": 1.0}
    name = os.path.basename(path).lower()
    if not atonce and (set(_SCALE_LAYERS) & set(layers) or "atonce" in name):
        raise WeightsError(f"{path} is the FCN-8s at-once net (pool4 x 0.01, pool3 x 1e-4 "
                           f"before scoring): load it into fcn8s_atonce_vgg16")
    for layer, value in scales.items() if atonce else ():
        blobs = layers.pop(layer, None)
        if blobs is None:  # pytorch-fcn keeps the factors in code, not in the file
            continue
        if len(blobs) != 1 or not np.allclose(blobs[0], value, rtol=1e-6, atol=0):
            raise WeightsError(f"{path}: layer {layer!r} is not the fixed scale {value} of the "
                               f"at-once net")


def reference_to_state(model, layers, path):
    """This package's state dict for ``model`` from reference ``layers`` ({name: [blobs]}).

    Raises ``WeightsError`` naming the file and layer for a layer the model needs and the file
    lacks, a blob of the wrong shape or number, a file layer the model has no place for (e.g.
    an FCN-8s file into an FCN-32s), a trained kernel for a fixed upsampler, or the wrong
    geometry / model."""
    _check_model(model, path)
    layers = dict(layers)
    _check_scales(model, layers, path)
    targets = model.state_dict()
    names = [(n, "backbone." + n) for n in trunk_layer_names()]
    names += [(stage.score, stage.score) for stage in model.stages]
    upsamplers = [(stage.upsample, getattr(model, stage.upsample)) for stage in model.stages]
    _check_layer_names(layers, [n for n, _ in names] + [n for n, _ in upsamplers], model, path)
    state = {}
    for name, prefix in names:
        blobs = layers[name]
        if len(blobs) != 2:
            raise WeightsError(f"{path}: layer {name!r} has {len(blobs)} blobs, expected "
                               f"weight and bias")
        for blob, kind in zip(blobs, ("weight", "bias")):
            key = f"{prefix}.{kind}"
            state[key] = _fit(blob, targets[key].shape, f"{path}: layer {name!r} {kind}")
    for name, layer in upsamplers:
        part = _upsampler(layer, layers[name], f"{path}: layer {name!r}")
        state.update({f"{name}.{k}": v for k, v in part.items()})
    return state


def _check_layer_names(layers, expected, model, path):
    extra = sorted(set(layers) - set(expected))
    missing = [n for n in expected if n not in layers]
    if extra:
        lacks = f" and lacks {', '.join(missing)}" if missing else ""
        raise WeightsError(f"{path} has layer(s) {', '.join(extra)} that {_variant(model)} "
                           f"does not have{lacks}: is it another FCN variant?")
    if missing:
        raise WeightsError(f"{path} has no layer {missing[0]!r}, which {_variant(model)} needs"
                           + (f" (nor {', '.join(missing[1:])})" if missing[1:] else ""))


def _variant(model):
    return f"FCN-{model.variant}" + (" at-once" if model.skip_scales != (1.0, 1.0) else "")


def _check_classes(model, layers, path):
    blobs = layers.get("score_fr")
    if blobs and np.ndim(blobs[0]) >= 1 and blobs[0].shape[0] != model.num_classes:
        raise classes_mismatch(path, "score_fr", blobs[0].shape, model.num_classes)


def load_reference_weights(model, path, state=None):
    """Load a reference ``.caffemodel`` / pytorch-fcn ``.pth`` (``state``: its state dict,
    already read) into ``model`` (nothing is set unless everything fits) and set its
    normalisation to Caffe's. Returns the ``LoadReport``."""
    path = os.fspath(path)
    _check_model(model, path)
    layers = read_reference_layers(path, state)
    _check_classes(model, layers, path)
    report = load_weights(model, reference_to_state(model, layers, path), path)
    report.normalization = set_normalization(model, CAFFE)
    return report


def reference_state(path, state=None):
    """A reference file's layers under this package's keys, for staged training
    (``staged.transfer_weights``, which copies what the target has): trunk ``backbone.<name>``,
    score layers ``<name>``, upsampler kernels ``<name>.up.weight`` (a learnable upsampler's
    key; a fixed one in the target has none and leaves it unused); at-once scales dropped."""
    out = {}
    for name, blobs in read_reference_layers(path, state).items():
        if name in _SCALE_LAYERS:
            continue
        if name.startswith("upscore"):
            out[f"{name}.up.weight"] = np.asarray(blobs[0], np.float32)
            continue
        prefix = "backbone." + name if name in trunk_layer_names() else name
        for blob, kind in zip(blobs, ("weight", "bias")):
            out[f"{prefix}.{kind}"] = np.asarray(blob, np.float32).reshape(
                blob.shape if kind == "weight" else (-1,))
    return out
