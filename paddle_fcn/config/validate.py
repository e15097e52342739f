"""Checks on a built Config, and the num_classes reconciliation.

In the order ``load`` runs them: single values against ``RULES`` / ``CHOICES``; rules that tie
several values together; the checks of the layers that own a section (``Checks``: model
type and options, dataset types, modes, options and transforms); then ``model.num_classes``
filled from the datasets. Each failure is a ConfigError naming the source and key.
"""
from dataclasses import dataclass
from typing import Callable, Optional

from paddle_fcn.config.errors import ConfigError, Source, check, fail, hint
from paddle_fcn.config.schema import CHOICES, DATASET_OPTION_KEYS, RULES
from paddle_fcn.normalization import as_normalization

__all__ = ["validate_values", "validate_combinations", "validate_normalization", "Checks",
           "run_checks", "resolve_config_classes", "resolve_num_classes"]


def _value_at(obj, key):
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
            value = _value_at(cfg, key)
            check(value is None or test(value), src, key, f"must be {requirement}, got {value!r}")
    for key, choices in CHOICES.items():
        value = _value_at(cfg, key)
        if value is not None:  # None: below an unset section (no val_dataset)
            _choice(value, choices, src, key)


def validate_combinations(cfg, src):
    """Rules that tie several values together."""
    for key in ("train_dataset", "val_dataset"):
        ds = getattr(cfg, key)
        if ds is None:
            continue
        check(ds.type != "ListDataset" or ds.file_list, src, f"{key}.file_list",
              "type ListDataset needs a list file of 'image label' lines")
        check(ds.class_names is None or ds.num_classes is None or len(ds.class_names) ==
              ds.num_classes, src, f"{key}.class_names",
              f"has {len(ds.class_names or ())} names for num_classes = {ds.num_classes}")
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


def validate_normalization(model, src):
    """``model.normalization``, when set, is a normalization (kept as written: a name stays a
    name)."""
    if model.normalization is not None:
        try:
            as_normalization(model.normalization, "")
        except ValueError as err:
            fail(src, "model.normalization", str(err).lstrip(": "))


@dataclass
class Checks:
    """The checks of the layers that own a section's rules, run by ``load_config``: each takes
    the section (``ModelConfig``; a ``DatasetConfig`` and the option keys it has) and returns
    ``Problem``s (``paddle_fcn.errors``), reported as ConfigErrors naming source and key.
    ``paddle_fcn.cli.load_experiment`` passes the models' and the data sets' own."""
    model: Optional[Callable] = None
    dataset: Optional[Callable] = None


def run_checks(cfg, checks, src):
    """Fail on the first Problem that ``checks`` find in ``cfg``."""
    sections = []
    if checks.model is not None:
        sections.append(("model", checks.model(cfg.model)))
    if checks.dataset is not None:
        for key in ("train_dataset", "val_dataset"):
            ds = getattr(cfg, key)
            if ds is not None:
                sections.append((key, checks.dataset(ds, DATASET_OPTION_KEYS)))
    for section, problems in sections:
        for problem in problems:
            key = f"{section}.{problem.key}" if problem.key else section
            suggestion = hint(problem.word, problem.valid) if problem.word is not None else ""
            fail(src, key, f"{problem.message}{'; ' + suggestion if suggestion else ''}"
                 .rstrip("; "))


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
