"""Checks on a built Config, and the num_classes reconciliation.

In the order ``load`` runs them: single values against ``RULES`` / ``CHOICES`` /
``DATASET_MODES``; rules that tie several values together; model options against the
builder's signature (``paddle_fcn.models.model_options``); transform arguments against the
transform classes (``paddle_fcn.data.transforms.TRANSFORMS``); then ``model.num_classes``
filled from the datasets. Each failure is a ConfigError naming the source and key.
"""
import inspect

from paddle_fcn.config.errors import ConfigError, Source, check, describe, fail, hint
from paddle_fcn.config.schema import (CHOICES, DATASET_MODES, DATASET_OPTIONS, MODEL_FIELDS,
                                     RULES)

__all__ = ["validate_values", "validate_combinations", "validate_model", "validate_transforms",
           "resolve_config_classes", "resolve_num_classes"]


def _get(obj, key):
    """The value at dotted ``key`` of ``obj`` (None below an unset section)."""
    for part in key.split("."):
        obj = getattr(obj, part) if obj is not None else None
    return obj


def _choice(value, choices, src, key):
    if value not in choices:
        fail(src, key, f"expected one of {', '.join(choices)}; got {value!r}; "
             f"{hint(value, choices)}".rstrip("; "))


def validate_values(cfg, src):
    """RULES and CHOICES on single values."""
    for pattern, (test, requirement) in RULES.items():
        for key in (pattern.replace("*", "train"), pattern.replace("*", "val")) \
                if pattern.startswith("*") else (pattern,):
            value = _get(cfg, key)
            check(value is None or test(value), src, key, f"must be {requirement}, got {value!r}")
    for key, choices in CHOICES.items():
        value = _get(cfg, key)
        if value is not None:  # None: below an unset section (no val_dataset)
            _choice(value, choices, src, key)
    for key in ("train_dataset", "val_dataset"):
        ds = getattr(cfg, key)
        if ds is not None:
            _choice(ds.type, tuple(DATASET_MODES), src, f"{key}.type")
            _choice(ds.mode, DATASET_MODES[ds.type], src, f"{key}.mode")


def validate_combinations(cfg, src):
    """Rules that tie several values together."""
    for key in ("train_dataset", "val_dataset"):
        ds = getattr(cfg, key)
        if ds is None:
            continue
        check(ds.type != "Dataset" or ds.file_list, src, f"{key}.file_list",
              "type Dataset needs a list file of 'image label' lines")
        check(ds.class_names is None or ds.num_classes is None or len(ds.class_names) ==
              ds.num_classes, src, f"{key}.class_names",
              f"has {len(ds.class_names or ())} names for num_classes = {ds.num_classes}")
        _check_dataset_options(ds, key, src)
        syn = ds.synthetic
        check(ds.type != "SyntheticVOC" or ds.mode != "trainaug" or syn.preset == "voc", src,
              f"{key}.mode", "trainaug needs synthetic.preset: voc (the shapes preset has no "
              "SegmentationClassAug)")
        check(syn.min_size <= syn.max_size, src, f"{key}.synthetic.min_size",
              f"{syn.min_size} exceeds synthetic.max_size {syn.max_size}")
    lr, test = cfg.lr_scheduler, cfg.test_config
    check(lr.type != "step" or lr.milestones, src, "lr_scheduler.milestones",
          "type step needs a non-empty list of iterations")
    check(all(0 < a < b for a, b in zip(lr.milestones, lr.milestones[1:] + [cfg.iters + 1])),
          src, "lr_scheduler.milestones",
          f"must be increasing within (0, iters], got {lr.milestones}")
    check(cfg.loss.ignore_index == cfg.train_dataset.ignore_index, src, "loss.ignore_index",
          f"{cfg.loss.ignore_index} differs from train_dataset.ignore_index "
          f"{cfg.train_dataset.ignore_index}: the loss would train on void pixels")
    if test.is_slide:
        check(test.crop_size and test.stride, src, "test_config.is_slide",
              "sliding-window inference needs test_config.crop_size and test_config.stride")
        check(all(s <= c for s, c in zip(test.stride, test.crop_size)), src, "test_config.stride",
              f"{test.stride} exceeds crop_size {test.crop_size}: pixels would be left unscored")


def _check_dataset_options(ds, key, src):
    """Keys of DATASET_OPTIONS are set only for their types, to allowed values."""
    for option, (types, allowed) in DATASET_OPTIONS.items():
        value = getattr(ds, option)
        if value in (None, False):
            continue
        check(ds.type in types, src, f"{key}.{option}",
              f"applies to type {', '.join(types)} only, not {ds.type}")
        if allowed is not None:
            _choice(value, allowed, src, f"{key}.{option}")


def _same_kind(value, default):
    """Whether a YAML value fits an option whose default is ``default`` (int fits float)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def validate_model(model, src):
    """``model.type`` is a known builder and every option fits the builder's keyword defaults;
    float options given as YAML ints become floats (in place)."""
    from paddle_fcn.models import model_options  # lazy: models import paddle

    try:
        options = model_options(model.type)
    except KeyError as err:
        fail(src, "model.type", err.args[0])
    valid = {k: v for k, v in options.items() if k not in MODEL_FIELDS}
    check(model.pretrained is None or "pretrained" in options, src, "model.pretrained",
          f"model '{model.type}' takes no pretrained backbone weights")
    if model.normalization is not None:
        from paddle_fcn.normalization import as_normalization

        try:
            as_normalization(model.normalization, "")  # kept as written (a name stays a name)
        except ValueError as err:
            fail(src, "model.normalization", str(err).lstrip(": "))
    for key, value in model.options.items():
        if key not in valid:
            fail(src, f"model.{key}", f"unknown option for model '{model.type}'; "
                 f"{hint(key, valid)}"
                 f"valid options: {', '.join(sorted(valid)) or '(none)'}")
        default = valid[key]
        if default is None or default is inspect.Parameter.empty:
            continue
        if not _same_kind(value, default):
            fail(src, f"model.{key}", f"expected {type(default).__name__} like the default "
                 f"{default!r}, got {describe(value)}")
        if isinstance(default, float):
            model.options[key] = float(value)


def validate_transforms(ds, key, src):
    """Each transform of dataset ``ds`` (config key ``key``) exists and gets the arguments its
    class takes. ``Normalize`` is refused: the datasets append it from the model's
    ``normalization``, which export and predict use too, so a second source could only
    disagree with them."""
    if not ds.transforms:
        return
    from paddle_fcn.data.transforms import TRANSFORMS  # lazy: data imports paddle

    for i, spec in enumerate(ds.transforms):
        where = f"{key}.transforms[{i}]"
        name = spec.get("type")
        check(name is not None, src, where, "each transform needs a 'type' key")
        if name not in TRANSFORMS:
            fail(src, f"{where}.type", f"unknown transform {name!r}; {hint(name, TRANSFORMS)}"
                 f"valid: {', '.join(sorted(TRANSFORMS))}")
        check(name != "Normalize", src, where,
              "remove this Normalize: it is appended automatically from the model's "
              "normalization (it comes with the weights, or model.normalization), which "
              "export and predict use as well")
        params = inspect.signature(TRANSFORMS[name]).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        for arg in spec:
            if arg != "type" and arg not in params:
                fail(src, f"{where}.{arg}", f"unknown argument for {name}; {hint(arg, params)}"
                     f"valid: {', '.join(params) or '(none)'}")
        missing = [p for p in params.values() if p.default is p.empty and p.name not in spec
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        check(not missing, src, where, f"{name} needs {', '.join(p.name for p in missing)}")


def resolve_config_classes(cfg, src):
    """Fill ``model.num_classes`` from train_dataset; datasets given must agree with it."""
    model = cfg.model
    origin = "model.num_classes"
    if model.num_classes is None and cfg.train_dataset.num_classes is not None:
        model.num_classes, origin = cfg.train_dataset.num_classes, "train_dataset.num_classes"
    for key, ds in (("train_dataset", cfg.train_dataset), ("val_dataset", cfg.val_dataset)):
        if ds is not None and ds.num_classes is not None and ds.num_classes != model.num_classes:
            fail(src, f"{key}.num_classes", f"{ds.num_classes} disagrees with {origin} = "
                 f"{model.num_classes}; set them equal (or leave model.num_classes out)")
    _check_class_weights(cfg, src)


def _check_class_weights(cfg, src):
    weights, n = cfg.loss.class_weights, cfg.model.num_classes
    check(weights is None or n is None or len(weights) == n, src, "loss.class_weights",
          f"has {len(weights or ())} weights for num_classes = {n}")


def resolve_num_classes(cfg, dataset_num_classes):
    """The number of classes, reconciling the config with the training dataset's own count.

    Fills ``cfg.model.num_classes`` from ``dataset_num_classes`` when the config left it out;
    raises ConfigError when the two disagree (naming both) or when neither knows it.
    """
    configured = cfg.model.num_classes
    if configured is None and dataset_num_classes is None:
        raise ConfigError("model.num_classes: not set and the dataset does not know it; set "
                          "model.num_classes (or train_dataset.num_classes) in the YAML or "
                          "--opts model.num_classes=N")
    if configured is not None and dataset_num_classes is not None \
            and configured != dataset_num_classes:
        raise ConfigError(
            f"model.num_classes: the config says {configured} (model.num_classes or "
            f"train_dataset.num_classes) but the training dataset ({cfg.train_dataset.type} at "
            f"{cfg.train_dataset.dataset_root}) has {dataset_num_classes} classes")
    if configured is None:
        cfg.model.num_classes = int(dataset_num_classes)
        _check_class_weights(cfg, Source("config"))
    return cfg.model.num_classes
