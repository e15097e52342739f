"""A model as an experiment describes it: built, initialised, its input normalisation settled.

The config section ``model`` (``type``, ``options``, ``pretrained``, ``init_from``,
``normalization``) is read by attribute here, so this module needs nothing from the config
package. Two entry points:

- ``build_configured_model``: for training: ImageNet weights (``pretrained``) or the previous
  stage (``init_from``, FCN-32s -> 16s -> 8s, ``staged.transfer_weights``);
- ``load_trained_model``: for evaluation, export and prediction: every weight from one trained
  file, in eval mode.

Both return ``(model, reports)``: the load / transfer reports, for the caller to show.
``config_problems`` checks the section against the builders before anything is built.
"""
import inspect

from paddle_fcn.errors import ConfigError, Problem
from paddle_fcn.models import MODELS, build_model, model_options, pretrained_reports
from paddle_fcn.models.origin import set_normalization
from paddle_fcn.models.staged import transfer_weights
from paddle_fcn.models.weights import load_model_weights
from paddle_fcn.normalization import describe, same_normalization

__all__ = ["build_configured_model", "load_trained_model", "apply_configured_normalization",
           "config_problems"]


def build_configured_model(model_cfg, num_classes):
    """``build_model`` from ``model_cfg``, then ImageNet or staged (``init_from``) weights,
    which set the model's normalisation (``model_cfg.normalization`` checked against it)."""
    options = dict(model_cfg.options)
    if model_cfg.pretrained:
        options["pretrained"] = model_cfg.pretrained
    model = build_model(model_cfg.type, num_classes, **options)
    reports = pretrained_reports(model)  # two for a late-fusion net
    if model_cfg.init_from:
        reports.append(transfer_weights(model_cfg.init_from, model))
    apply_configured_normalization(model, model_cfg, model_cfg.init_from or model_cfg.pretrained)
    return model, reports


def load_trained_model(model_cfg, num_classes, model_path):
    """The configured model with trained weights from ``model_path`` (a ``model.pdparams``, a
    ``best_model/`` or ``iter_N/`` directory, a reference net's file), in eval mode. No
    ImageNet or staged initialisation: the file holds every weight, and a mismatch is a
    WeightsError naming it."""
    model = build_model(model_cfg.type, num_classes, **model_cfg.options)
    report = load_model_weights(model, model_path)
    apply_configured_normalization(model, model_cfg, model_path)
    model.eval()
    return model, [report]


def apply_configured_normalization(model, model_cfg, weights):
    """Reconcile ``model_cfg.normalization`` with the model's, which its weights file
    ``weights`` set (None: random weights). Unset in the config: the weights' stays. Set and
    no weights: it is applied. Set and contradicting the weights': ``ConfigError``, since the
    weights only work with the input they were trained on."""
    configured = model_cfg.normalization
    if configured is None:
        return
    if not weights:
        set_normalization(model, configured)
    elif not same_normalization(configured, model.normalization):
        raise ConfigError(
            f"model.normalization: the config says {describe(configured)} but the weights "
            f"{weights} were trained with {describe(model.normalization)} input "
            f"normalization; remove model.normalization (it comes with the weights) or load "
            f"other weights")


def config_problems(model_cfg):
    """``Problem``s of the config section ``model``: an unknown ``type``, an option its
    builder does not take or of another kind than its default, ``pretrained`` for a model
    without a pretrained backbone. Float options given as ints become floats (in place)."""
    if model_cfg.type not in MODELS:
        return [Problem("type", f"unknown model '{model_cfg.type}'; valid names: "
                                f"{', '.join(sorted(MODELS))}", model_cfg.type, tuple(MODELS))]
    options = model_options(model_cfg.type)
    if model_cfg.pretrained is not None and "pretrained" not in options:
        return [Problem("pretrained", f"model '{model_cfg.type}' takes no pretrained backbone "
                                      f"weights")]
    valid = {k: v for k, v in options.items() if k != "pretrained"}
    for key, value in model_cfg.options.items():
        if key not in valid:
            return [Problem(key, f"unknown option for model '{model_cfg.type}'; valid options: "
                                 f"{', '.join(sorted(valid)) or '(none)'}", key, tuple(valid))]
        default = valid[key]
        if default is None or default is inspect.Parameter.empty:
            continue
        if not _same_kind(value, default):
            return [Problem(key, f"expected {type(default).__name__} like the default "
                                 f"{default!r}, got {type(value).__name__} {value!r}")]
        if isinstance(default, float):
            model_cfg.options[key] = float(value)
    return []


def _same_kind(value, default):
    """Whether a YAML value fits an option whose default is ``default`` (int fits float)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))
