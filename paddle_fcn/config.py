"""One YAML file = one complete experiment, loaded into typed dataclasses (PaddleSeg key names).

``load_config(path, opts)`` reads the YAML, applies ``--opts key.sub=value`` overrides, checks
every value against the dataclass annotations and the enumerations below, validates model
options and transform arguments against the code that will receive them, and fills derived
values (``eval_interval``, ``model.num_classes``). Every error is a ``ConfigError`` naming the
file (or ``--opts``), the full key path, and what was expected; unknown keys suggest the
closest valid one. There is no inheritance (``_base_``): a saved config is the whole story.

YAML note: PyYAML (YAML 1.1) reads ``1e-4`` as a string; the loader here reads it as a float.
"""
import copy
import dataclasses
import difflib
import inspect
import os
import re
import tempfile
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml

__all__ = [
    "ConfigError", "Config", "ModelConfig", "DatasetConfig", "SyntheticConfig",
    "OptimizerConfig", "LRSchedulerConfig", "LossConfig", "TestConfig", "ExportConfig",
    "load_config", "apply_opts", "config_to_dict", "save_config", "resolve_num_classes",
]


class ConfigError(ValueError):
    """A config value, key or combination is invalid; the message names file/--opts and key."""


@dataclass
class SyntheticConfig:
    """Procedural VOC-like data (type SyntheticVOC): image counts and side range in pixels."""
    seed: int = 0
    num_train: int = 300
    num_val: int = 60
    min_size: int = 80
    max_size: int = 120


@dataclass
class DatasetConfig:
    type: str                           # SyntheticVOC | PascalVOC | Dataset
    dataset_root: str
    mode: str = "train"                 # PascalVOC: train|val|trainval|trainaug
    file_list: Optional[str] = None     # type Dataset: lines "image label"
    num_classes: Optional[int] = None
    class_names: Optional[List[str]] = None
    ignore_index: int = 255             # VOC void/boundary label
    transforms: List[Dict[str, Any]] = field(default_factory=list)  # [{type: RandomCrop, ...}]
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class ModelConfig:
    """``type`` names a builder in ``paddle_fcn.models.MODELS``; every other YAML key under
    ``model:`` is a builder option and lands in ``options`` (e.g. ``geometry: caffe``)."""
    type: str
    num_classes: Optional[int] = None   # None -> train_dataset.num_classes (or the dataset)
    pretrained: Optional[str] = None    # ImageNet backbone weights file
    init_from: Optional[str] = None     # staged training: trained FCN-32s/16s model.pdparams
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    type: str = "sgd"                   # SGD with momentum (paper section 4.3)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    bias_lr_mult: float = 1.0           # reference FCN: 2.0
    bias_decay: bool = True             # reference FCN: false
    backbone_lr_mult: float = 1.0
    grad_clip_norm: Optional[float] = None


@dataclass
class LRSchedulerConfig:
    type: str = "poly"                  # constant | poly | step (per iteration)
    learning_rate: float = 0.01
    power: float = 0.9                  # poly
    end_lr: float = 0.0                 # poly
    milestones: List[int] = field(default_factory=list)  # step: iterations
    gamma: float = 0.1                  # step
    warmup_iters: int = 0               # linear warmup from warmup_start_lr
    warmup_start_lr: float = 0.0


@dataclass
class LossConfig:
    type: str = "cross_entropy"         # per-pixel softmax cross-entropy
    ignore_index: int = 255
    reduction: str = "mean"             # mean | sum (over non-ignored pixels)
    class_weights: Optional[List[float]] = None


@dataclass
class TestConfig:
    __test__ = False  # not a pytest test class despite the name
    is_slide: bool = False              # sliding-window inference
    crop_size: Optional[List[int]] = None   # [w, h] window
    stride: Optional[List[int]] = None      # [w, h] step
    flip_horizontal: bool = False
    scales: List[float] = field(default_factory=lambda: [1.0])


@dataclass
class ExportConfig:
    output_op: str = "none"             # none | argmax | softmax appended to the exported net


@dataclass
class Config:
    model: ModelConfig
    train_dataset: DatasetConfig
    val_dataset: Optional[DatasetConfig] = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    lr_scheduler: LRSchedulerConfig = field(default_factory=LRSchedulerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    test_config: TestConfig = field(default_factory=TestConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    batch_size: int = 8                 # images per forward pass per device
    iters: int = 1000
    accumulate_steps: int = 1           # optimizer step every N forwards: batch x N effective
    save_dir: str = "output"
    save_interval: int = 500            # checkpoint every N iterations
    eval_interval: Optional[int] = None  # None -> save_interval
    keep_checkpoint_max: int = 5
    log_iters: int = 10
    do_eval: bool = True
    use_vdl: bool = True
    seed: int = 0
    device: str = "auto"                # auto | cpu | gpu
    num_workers: int = 2
    num_vis_samples: int = 3            # sample images logged to VisualDL per evaluation


# Enumerated values (plain dicts; extend here when the engine learns a new kind).
CHOICES = {
    "optimizer.type": ("sgd",),
    "lr_scheduler.type": ("constant", "poly", "step"),
    "loss.type": ("cross_entropy",),
    "loss.reduction": ("mean", "sum"),
    "export.output_op": ("none", "argmax", "softmax"),
    "device": ("auto", "cpu", "gpu"),
}
DATASET_MODES = {
    "SyntheticVOC": ("train", "val"),
    "PascalVOC": ("train", "val", "trainval", "trainaug"),
    "Dataset": ("train", "val"),
}
MODEL_FIELDS = ("type", "num_classes", "pretrained", "init_from")


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float and rejects duplicate keys."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _mapping_without_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, typing.Hashable):
            continue  # construct_mapping reports unhashable keys itself
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


class _Dumper(yaml.SafeDumper):
    """Block mappings, with lists of scalars inline (``crop_size: [64, 64]``)."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=not any(isinstance(v, (dict, list)) for v in data)))


class _Source:
    """Error prefix for a key: ``--opts`` if an override set it (or a parent), else the file."""

    def __init__(self, path, opt_keys=()):
        self.path, self.opt_keys = str(path), tuple(opt_keys)

    def __call__(self, key):
        def under(a, b):
            return a == b or a.startswith(b + ".") or a.startswith(b + "[")

        return "--opts" if any(under(key, k) or under(k, key) for k in self.opt_keys) else self.path


def _fail(src, key, message):
    raise ConfigError(f"{src(key)}: {key}: {message}" if key else f"{src(key)}: {message}")


def _hint(word, valid, prefix=""):
    """"did you mean 'x'? " for the closest valid word, or an empty string."""
    close = difflib.get_close_matches(str(word), list(valid), n=1)
    return f"did you mean '{prefix}{close[0]}'? " if close else ""


def _unknown_key(src, prefix, key, valid):
    hint = _hint(key, valid, prefix).rstrip() or f"valid keys: {', '.join(valid)}"
    where = f"'{prefix}{key}'" if prefix else f"'{key}' at top level"
    raise ConfigError(f"{src(prefix + str(key))}: unknown key {where}; {hint}")


def _no_base(src):
    raise ConfigError(f"{src('_base_')}: _base_ is not supported: one YAML = one complete "
                      "experiment (no inheritance chains); copy the keys you need into this file")


# ----------------------------------------------------------------------------- type checking
def _type_name(tp):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + " or null"
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _describe(value):
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return "null" if value is None else f"{type(value).__name__} {text}"


def _convert(value, tp, key, src, expected=None):
    """``value`` checked against annotation ``tp``; ints become floats where a float is due."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union:
        if value is None:
            return None
        inner = next(a for a in args if a is not type(None))
        return _convert(value, inner, key, src, expected=_type_name(tp))
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return _build(tp, value, key + ".", src)
    if origin is list and isinstance(value, list):
        return [_convert(v, args[0], f"{key}[{i}]", src) for i, v in enumerate(value)]
    if origin is dict and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _convert(v, args[1], f"{key}.{k}", src) for k, v in value.items()}
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) \
            and not (tp is int and isinstance(value, bool)):  # YAML true is not an int
        return value
    _fail(src, key, f"expected {expected or _type_name(tp)}, got {_describe(value)}")


def _build(cls, data, prefix, src):
    """Instance of dataclass ``cls`` from mapping ``data`` (keys checked, values converted)."""
    names = [f.name for f in dataclasses.fields(cls)]
    if cls is ModelConfig:  # every key besides the fixed four is a builder option
        data = dict({k: v for k, v in data.items() if k in MODEL_FIELDS},
                    options={k: v for k, v in data.items() if k not in MODEL_FIELDS})
    if cls is Config and "_base_" in data:
        _no_base(src)
    for key in data:
        if key not in names:
            _unknown_key(src, prefix, key, names)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in data:
            where = prefix.rstrip(".") or "top level"
            _fail(src, prefix + f.name, f"missing required key (in {where})")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _convert(v, hints[k], prefix + k, src) for k, v in data.items()})


# ----------------------------------------------------------------------------- value rules
def _positive(v):
    return v > 0


def _non_negative(v):
    return v >= 0


def _size_wh(v):
    return len(v) == 2 and all(x > 0 for x in v)


# key -> (test, requirement) on the typed value; unset (None) values are skipped.
# "*_dataset." keys apply to train_dataset and val_dataset.
RULES = {
    **{k: (_positive, "a positive int") for k in (
        "iters", "batch_size", "accumulate_steps", "save_interval", "eval_interval",
        "keep_checkpoint_max", "log_iters", "model.num_classes", "*_dataset.num_classes",
        "*_dataset.synthetic.num_train", "*_dataset.synthetic.num_val",
        "*_dataset.synthetic.min_size", "*_dataset.synthetic.max_size")},
    **{k: (_non_negative, ">= 0") for k in (
        "num_workers", "num_vis_samples", "seed", "optimizer.weight_decay",
        "optimizer.bias_lr_mult", "optimizer.backbone_lr_mult", "lr_scheduler.end_lr",
        "lr_scheduler.warmup_iters", "lr_scheduler.warmup_start_lr")},
    **{k: (_positive, "> 0") for k in (
        "optimizer.grad_clip_norm", "lr_scheduler.learning_rate", "lr_scheduler.power",
        "lr_scheduler.gamma")},
    "optimizer.momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "loss.class_weights": (lambda v: all(w >= 0 for w in v), "a list of weights >= 0"),
    "test_config.crop_size": (_size_wh, "[w, h] with two positive ints"),
    "test_config.stride": (_size_wh, "[w, h] with two positive ints"),
    "test_config.scales": (lambda v: v and all(s > 0 for s in v), "a non-empty list of scales > 0"),
    "*_dataset.dataset_root": (bool, "a non-empty path"),
}


def _get(obj, key):
    for part in key.split("."):
        obj = getattr(obj, part) if obj is not None else None
    return obj


def _check(ok, src, key, message):
    if not ok:
        _fail(src, key, message)


def _choice(value, choices, src, key):
    if value not in choices:
        _fail(src, key, f"expected one of {', '.join(choices)}; got {value!r}; "
              f"{_hint(value, choices)}".rstrip("; "))


def _validate_values(cfg, src):
    """RULES and CHOICES on single values."""
    for pattern, (test, requirement) in RULES.items():
        for key in (pattern.replace("*", "train"), pattern.replace("*", "val")) \
                if pattern.startswith("*") else (pattern,):
            value = _get(cfg, key)
            _check(value is None or test(value), src, key, f"must be {requirement}, got {value!r}")
    for key, choices in CHOICES.items():
        _choice(_get(cfg, key), choices, src, key)
    for key in ("train_dataset", "val_dataset"):
        ds = getattr(cfg, key)
        if ds is not None:
            _choice(ds.type, tuple(DATASET_MODES), src, f"{key}.type")
            _choice(ds.mode, DATASET_MODES[ds.type], src, f"{key}.mode")


def _validate_combinations(cfg, src):
    """Rules that tie several values together."""
    for key in ("train_dataset", "val_dataset"):
        ds = getattr(cfg, key)
        if ds is None:
            continue
        _check(ds.type != "Dataset" or ds.file_list, src, f"{key}.file_list",
               "type Dataset needs a list file of 'image label' lines")
        _check(ds.class_names is None or ds.num_classes is None or len(ds.class_names) ==
               ds.num_classes, src, f"{key}.class_names",
               f"has {len(ds.class_names or ())} names for num_classes = {ds.num_classes}")
        syn = ds.synthetic
        _check(syn.min_size <= syn.max_size, src, f"{key}.synthetic.min_size",
               f"{syn.min_size} exceeds synthetic.max_size {syn.max_size}")
    lr, test = cfg.lr_scheduler, cfg.test_config
    _check(lr.type != "step" or lr.milestones, src, "lr_scheduler.milestones",
           "type step needs a non-empty list of iterations")
    _check(all(0 < a < b for a, b in zip(lr.milestones, lr.milestones[1:] + [cfg.iters + 1])),
           src, "lr_scheduler.milestones",
           f"must be increasing within (0, iters], got {lr.milestones}")
    _check(lr.warmup_iters < cfg.iters or lr.warmup_iters == 0, src, "lr_scheduler.warmup_iters",
           f"{lr.warmup_iters} must be below iters = {cfg.iters}")
    _check(cfg.loss.ignore_index == cfg.train_dataset.ignore_index, src, "loss.ignore_index",
           f"{cfg.loss.ignore_index} differs from train_dataset.ignore_index "
           f"{cfg.train_dataset.ignore_index}: the loss would train on void pixels")
    if test.is_slide:
        _check(test.crop_size and test.stride, src, "test_config.is_slide",
               "sliding-window inference needs test_config.crop_size and test_config.stride")
        _check(all(s <= c for s, c in zip(test.stride, test.crop_size)), src, "test_config.stride",
               f"{test.stride} exceeds crop_size {test.crop_size}: pixels would be left unscored")


def _same_kind(value, default):
    """Whether a YAML value fits an option whose default is ``default`` (int fits float)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _validate_model(model, src):
    from paddle_fcn.models import model_options  # lazy: models import paddle

    try:
        options = model_options(model.type)
    except KeyError as err:
        _fail(src, "model.type", err.args[0])
    valid = {k: v for k, v in options.items() if k not in MODEL_FIELDS}
    _check(model.pretrained is None or "pretrained" in options, src, "model.pretrained",
           f"model '{model.type}' takes no pretrained backbone weights")
    for key, value in model.options.items():
        if key not in valid:
            _fail(src, f"model.{key}", f"unknown option for model '{model.type}'; "
                  f"{_hint(key, valid)}"
                  f"valid options: {', '.join(sorted(valid)) or '(none)'}")
        default = valid[key]
        if default is None or default is inspect.Parameter.empty:
            continue
        if not _same_kind(value, default):
            _fail(src, f"model.{key}", f"expected {type(default).__name__} like the default "
                  f"{default!r}, got {_describe(value)}")
        if isinstance(default, float):
            model.options[key] = float(value)


def _validate_transforms(ds, key, src):
    if not ds.transforms:
        return
    from paddle_fcn.data.transforms import TRANSFORMS  # lazy: data imports paddle

    for i, spec in enumerate(ds.transforms):
        where = f"{key}.transforms[{i}]"
        name = spec.get("type")
        _check(name is not None, src, where, "each transform needs a 'type' key")
        if name not in TRANSFORMS:
            _fail(src, f"{where}.type", f"unknown transform {name!r}; {_hint(name, TRANSFORMS)}"
                  f"valid: {', '.join(sorted(TRANSFORMS))}")
        _check(name != "Normalize" or i == len(ds.transforms) - 1, src, f"{where}.type",
               "Normalize must be the last transform (it makes the CHW float image)")
        params = inspect.signature(TRANSFORMS[name]).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        for arg in spec:
            if arg != "type" and arg not in params:
                _fail(src, f"{where}.{arg}", f"unknown argument for {name}; {_hint(arg, params)}"
                      f"valid: {', '.join(params) or '(none)'}")
        missing = [p for p in params.values() if p.default is p.empty and p.name not in spec
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        _check(not missing, src, where, f"{name} needs {', '.join(p.name for p in missing)}")


# ----------------------------------------------------------------------------- num_classes
def _resolve_config_classes(cfg, src):
    """Fill ``model.num_classes`` from train_dataset; datasets given must agree with it."""
    model = cfg.model
    origin = "model.num_classes"
    if model.num_classes is None and cfg.train_dataset.num_classes is not None:
        model.num_classes, origin = cfg.train_dataset.num_classes, "train_dataset.num_classes"
    for key, ds in (("train_dataset", cfg.train_dataset), ("val_dataset", cfg.val_dataset)):
        if ds is not None and ds.num_classes is not None and ds.num_classes != model.num_classes:
            _fail(src, f"{key}.num_classes", f"{ds.num_classes} disagrees with {origin} = "
                  f"{model.num_classes}; set them equal (or leave model.num_classes out)")
    _check_class_weights(cfg, src)


def _check_class_weights(cfg, src):
    weights, n = cfg.loss.class_weights, cfg.model.num_classes
    _check(weights is None or n is None or len(weights) == n, src, "loss.class_weights",
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
        _check_class_weights(cfg, _Source("config"))
    return cfg.model.num_classes


# ----------------------------------------------------------------------------- --opts
def _set_key(data, key, value):
    """Set dotted ``key`` in the raw config mapping, checking each level against the dataclasses."""
    src, node, tp, prefix = _Source("--opts", [key]), data, Config, ""
    parts = key.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if dataclasses.is_dataclass(tp) and tp is not ModelConfig:
            if tp is Config and part == "_base_":
                _no_base(src)
            names = [f.name for f in dataclasses.fields(tp)]
            if part not in names:
                _unknown_key(src, prefix, part, names)
            tp = typing.get_type_hints(tp)[part]
            if typing.get_origin(tp) is typing.Union:
                tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is list or isinstance(node, list):
            _check(part.isdigit() and int(part) < len(node), src, prefix.rstrip("."),
                   f"'{part}' is not an index of this {len(node)}-element list")
            part, tp = int(part), (typing.get_args(tp) or (Any,))[0]
        else:  # model options, transform kwargs: free-form below this point
            tp = Any
        if last:
            node[part] = value
            return
        if not isinstance(node[part] if _has(node, part) else None, (dict, list)):
            node[part] = {}
        node, prefix = node[part], f"{prefix}{parts[i]}."


def _has(node, part):
    return part in node if isinstance(node, dict) else part < len(node)


def _override(data, opts):
    """Deep copy of ``data`` with ``key=value`` strings applied; returns (data, keys)."""
    data, keys = copy.deepcopy(data), []
    for opt in opts:
        key, sep, text = str(opt).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--opts: '{opt}' is not key=value (e.g. lr_scheduler.learning_rate=0.01)")
        try:
            value = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as err:
            raise ConfigError(f"--opts: {key}: cannot parse value {text!r}: {err}") from None
        _set_key(data, key, value)
        keys.append(re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", key))  # transforms.2 -> transforms[2]
    return data, keys


# ----------------------------------------------------------------------------- load / save
def _from_dict(data, src):
    cfg = _build(Config, data, "", src)
    _validate_values(cfg, src)
    _validate_combinations(cfg, src)
    _validate_model(cfg.model, src)
    for key in ("train_dataset", "val_dataset"):
        if getattr(cfg, key) is not None:
            _validate_transforms(getattr(cfg, key), key, src)
    _resolve_config_classes(cfg, src)
    if cfg.eval_interval is None:
        cfg.eval_interval = cfg.save_interval
    return cfg


def _read_yaml(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_Loader)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at top level, got "
                          f"{_describe(data)}; one YAML describes one complete experiment")
    return data


def load_config(path, opts=()):
    """Read ``path`` (YAML), apply ``opts`` ("key.sub=value" strings), validate, resolve."""
    data, keys = _override(_read_yaml(path), opts)
    return _from_dict(data, _Source(path, keys))


def apply_opts(cfg, opts):
    """A new Config: ``cfg`` with ``opts`` applied and everything re-validated.

    Derived values already filled in ``cfg`` (eval_interval, model.num_classes) stay as they
    are; pass opts to ``load_config`` to have them derived after the overrides.
    """
    data, keys = _override(config_to_dict(cfg), opts)
    return _from_dict(data, _Source("config", keys))


def config_to_dict(cfg):
    """Plain YAML-ready data in the file layout (model options back under ``model:``)."""
    if dataclasses.is_dataclass(cfg):
        out = {}
        for f in dataclasses.fields(cfg):
            value = config_to_dict(getattr(cfg, f.name))
            if isinstance(cfg, ModelConfig) and f.name == "options":
                out.update(value)
            else:
                out[f.name] = value
        return out
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: config_to_dict(v) for k, v in cfg.items()}
    return cfg


def save_config(cfg, path):
    """Write the resolved config to ``path`` atomically (temp file + os.replace)."""
    text = ("# paddle_fcn resolved config: one complete experiment; load with load_config()\n"
            + yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False,
                        default_flow_style=False, allow_unicode=True))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".config-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a saved config is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
