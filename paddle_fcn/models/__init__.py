"""Model zoo: a plain name -> builder dict, and ``build_model``; ``<fcn>_rgbhha`` are the
late-fusion RGB-HHA versions of the FCNs (input ``N x 6 x H x W``).

Every builder has the signature ``builder(num_classes, **options) -> paddle.nn.Layer``; every
model maps ``N x 3 x H x W`` float32 (normalised RGB, see ``model.normalization``) to
``N x num_classes x H x W`` logits for any H, W >= 1.
"""
import inspect

from paddle_fcn.errors import check_num_classes
from paddle_fcn.models.convolutional import convolutionalize
from paddle_fcn.models.fcn_vgg import fcn8s_atonce_vgg16, fcn8s_vgg16, fcn16s_vgg16, fcn32s_vgg16
from paddle_fcn.models.resnet import (
    fcn8s_resnet18, fcn8s_resnet34, fcn8s_resnet50,
    fcn16s_resnet18, fcn16s_resnet34, fcn16s_resnet50,
    fcn32s_resnet18, fcn32s_resnet34, fcn32s_resnet50,
)
from paddle_fcn.models.fusion import late_fusion
from paddle_fcn.models.multihead import with_heads
from paddle_fcn.models.unet import unet

MODELS = {
    "fcn32s_vgg16": fcn32s_vgg16,
    "fcn16s_vgg16": fcn16s_vgg16,
    "fcn8s_vgg16": fcn8s_vgg16,
    "fcn8s_atonce_vgg16": fcn8s_atonce_vgg16,
    "fcn32s_resnet18": fcn32s_resnet18,
    "fcn16s_resnet18": fcn16s_resnet18,
    "fcn8s_resnet18": fcn8s_resnet18,
    "fcn32s_resnet34": fcn32s_resnet34,
    "fcn16s_resnet34": fcn16s_resnet34,
    "fcn8s_resnet34": fcn8s_resnet34,
    "fcn32s_resnet50": fcn32s_resnet50,
    "fcn16s_resnet50": fcn16s_resnet50,
    "fcn8s_resnet50": fcn8s_resnet50,
    "unet": unet,
}

__all__ = ["MODELS", "build_model", "model_options", "pretrained_reports", "convolutionalize"]

# Options build_model adds to these builders: ``heads`` ({name: classes}, first = num_classes)
# wraps the FCN into a multi-head net (models.multihead; SIFT Flow's semantic + geometric).
FCN_BUILDERS = tuple(name for name in MODELS if name.startswith("fcn"))
# RGB-HHA late fusion (NYUDv2, models.fusion): two whole FCNs of the same builder, scores summed
MODELS.update({f"{name}_rgbhha": late_fusion(MODELS[name]) for name in FCN_BUILDERS})


def model_options(name):
    """The keyword options (name -> default) that ``MODELS[name]`` accepts besides num_classes."""
    _check_name(name)
    params = inspect.signature(MODELS[name]).parameters
    options = {k: p.default for k, p in params.items() if k != "num_classes"}
    if name in FCN_BUILDERS:
        options["heads"] = None
    return options


def build_model(name, num_classes, **options):
    """Build ``MODELS[name](num_classes, **options)``.

    Raises ``KeyError`` listing the valid names for an unknown ``name`` and ``TypeError`` naming
    the option and listing the valid ones for an unknown option.
    """
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for model '{name}'; valid options: {sorted(valid)}"
        )
    check_num_classes(num_classes)
    heads = options.pop("heads", None)
    model = MODELS[name](num_classes, **options)
    return model if heads is None else with_heads(model, heads)


def pretrained_reports(model):
    """The ``LoadReport`` of every ImageNet weights file ``model.pretrained`` loaded into the
    backbones of ``model`` while it was built (two for a late-fusion net), in layer order:
    what the caller prints, since building prints nothing."""
    layers = [model] + model.sublayers()
    return [layer.imagenet_report for layer in layers if hasattr(layer, "imagenet_report")]


def _check_name(name):
    if name not in MODELS:
        raise KeyError(f"unknown model '{name}'; valid names: {', '.join(sorted(MODELS))}")
