"""Reference-net files written by the tests: a small caffe-geometry VGG FCN's random weights
as the authors' Caffe layers (V1 / V2 .caffemodel) or pytorch-fcn keys. Used by
test_models_reference.py and test_models_origin.py."""
import importlib.util

import numpy as np
import paddle

from paddle_fcn.models import build_model
from paddle_fcn.models.caffe import caffe_messages
from paddle_fcn.models.vgg import trunk_layer_names
from paddle_fcn.normalization import CAFFE, normalize_image
from paddle_fcn.upsample import BilinearUpsample, bilinear_kernel

HAS_TORCH = importlib.util.find_spec("torch") is not None
WIDTH, CLASSES, SIZE = 4, 3, (37, 53)  # VGG16 with 4 conv1 channels: 0.5 M parameters
V1_CONV, V1_DECONV = 4, 39  # V1LayerParameter.LayerType


def make_model(name="fcn8s_vgg16", seed=0, **options):
    paddle.seed(seed)
    options = {"geometry": "caffe", "learnable_skip_upsample": False, "width": WIDTH, **options}
    model = build_model(name, CLASSES, **options)
    rng = np.random.default_rng(seed)
    for key, value in model.state_dict().items():  # score layers start at 0: make them random,
        if key.startswith("score"):  # zero-mean over the (ReLU, positive) inputs of each class
            random = rng.normal(0, 1.0, value.shape)
            if random.ndim == 4:
                random -= random.mean(axis=1, keepdims=True)
            value.set_value(random.astype("float32"))
    return model.eval()


def reference_layers(model):
    """{reference layer name: [weight, bias?]} of ``model``, frozen upsamplers as the
    [C, C, k, k] bilinear diagonal the reference files store."""
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    layers = {}
    for name in trunk_layer_names():
        layers[name] = [state[f"backbone.{name}.weight"], state[f"backbone.{name}.bias"]]
    for name in ("score_fr", "score_pool4", "score_pool3"):
        if f"{name}.weight" in state:
            layers[name] = [state[f"{name}.weight"], state[f"{name}.bias"]]
    for name, layer in model.named_children():
        if isinstance(layer, BilinearUpsample):
            kernel = np.zeros((CLASSES, CLASSES, layer.kernel_size, layer.kernel_size), "float32")
            kernel[np.arange(CLASSES), np.arange(CLASSES)] = bilinear_kernel(layer.kernel_size)
            layers[name] = [state.get(f"{name}.up.weight", kernel)]
    return layers


def write_caffemodel(layers, path, v1=False, legacy_shape=False, double=()):
    """A .caffemodel of ``layers``: V2 ``layer`` or V1 ``layers``; blob shapes as ``shape`` or
    the legacy num/channels/height/width; the layers named in ``double`` in ``double_data``."""
    net = caffe_messages()["NetParameter"](name="test-net")
    for name, blobs in layers.items():
        if v1:
            layer = net.layers.add(name=name, type=V1_DECONV if "upscore" in name else V1_CONV)
        else:
            layer = net.layer.add(name=name,
                                  type="Deconvolution" if "upscore" in name else "Convolution")
        for blob in blobs:
            proto = layer.blobs.add()
            if legacy_shape:  # num / channels / height / width, a bias as 1 x 1 x 1 x N
                dims = (1,) * (4 - blob.ndim) + blob.shape
                proto.num, proto.channels, proto.height, proto.width = dims
            else:
                proto.shape.dim.extend(blob.shape)
            (proto.double_data if name in double else proto.data).extend(blob.ravel())
        if not v1:
            net.layer.add(name=name + "_relu", type="ReLU")  # no blobs: skipped
    with open(path, "wb") as f:
        f.write(net.SerializeToString())
    return path


def logits(model, seed=1):
    x = paddle.to_tensor(np.random.default_rng(seed).normal(0, 50, (1, 3) + SIZE)
                         .astype("float32"))
    with paddle.no_grad():
        return model(x).numpy()


def balance(model, images):
    """Shift FCN-8s's class scores (score_pool3's bias) so that their means over the RGB
    ``images`` (Caffe preprocessing) are equal and every class occurs; returns the argmax maps."""
    xs = [paddle.to_tensor(normalize_image(image, CAFFE)[None]) for image in images]
    with paddle.no_grad():
        mean = np.mean([model(x).numpy()[0].mean(axis=(1, 2)) for x in xs], axis=0)
        model.score_pool3.bias.set_value(model.score_pool3.bias.numpy() - mean)
        return [model(x).numpy()[0].argmax(0) for x in xs]
