"""From raw YAML data to a validated Config: ``--opts`` overrides, typed building, load_config.

``load_config(path, opts)`` reads the file, applies the ``key.sub=value`` overrides to the raw
mapping (each key checked level by level against the dataclasses), builds the dataclasses
(every value checked against its annotation; ints become floats where a float is due), runs
the ``validate`` checks and fills the derived values (``eval_interval``, ``model.num_classes``).
"""
import copy
import dataclasses
import re
import typing
from typing import Any

import yaml

from paddle_fcn.config.errors import (ConfigError, Source, check, describe, fail, no_base,
                                     unknown_key)
from paddle_fcn.config.schema import MODEL_FIELDS, Config, ModelConfig
from paddle_fcn.config.validate import (Checks, resolve_config_classes, run_checks,
                                       validate_combinations, validate_normalization,
                                       validate_values)
from paddle_fcn.config.yaml_io import YamlLoader, config_to_dict, read_yaml

__all__ = ["load_config", "apply_opts"]


def _type_name(tp):
    """Annotation ``tp`` in YAML words for messages: ``list of int or null``, ``mapping``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + " or null"
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


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
    fail(src, key, f"expected {expected or _type_name(tp)}, got {describe(value)}")


def _build(cls, data, prefix, src):
    """Instance of dataclass ``cls`` from mapping ``data`` (keys checked, values converted)."""
    names = [f.name for f in dataclasses.fields(cls)]
    if cls is ModelConfig:  # every key besides the fixed four is a builder option
        data = dict({k: v for k, v in data.items() if k in MODEL_FIELDS},
                    options={k: v for k, v in data.items() if k not in MODEL_FIELDS})
    if cls is Config and "_base_" in data:
        no_base(src)
    for key in data:
        if key not in names:
            unknown_key(src, prefix, key, names)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in data:
            where = prefix.rstrip(".") or "top level"
            fail(src, prefix + f.name, f"missing required key (in {where})")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _convert(v, hints[k], prefix + k, src) for k, v in data.items()})


def _set_key(data, key, value):
    """Set dotted ``key`` in the raw config mapping, checking each level against the dataclasses."""
    src, node, tp, prefix = Source("--opts", [key]), data, Config, ""
    parts = key.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if dataclasses.is_dataclass(tp) and tp is not ModelConfig:
            if tp is Config and part == "_base_":
                no_base(src)
            names = [f.name for f in dataclasses.fields(tp)]
            if part not in names:
                unknown_key(src, prefix, part, names)
            tp = typing.get_type_hints(tp)[part]
            if typing.get_origin(tp) is typing.Union:
                tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is list or isinstance(node, list):
            check(part.isdigit() and int(part) < len(node), src, prefix.rstrip("."),
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
    """Whether mapping key or list index ``part`` exists in ``node``."""
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
            value = yaml.load(text, Loader=YamlLoader)
        except yaml.YAMLError as err:
            raise ConfigError(f"--opts: {key}: cannot parse value {text!r}: {err}") from None
        _set_key(data, key, value)
        keys.append(re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", key))  # transforms.2 -> transforms[2]
    return data, keys


def _from_dict(data, src, checks):
    """Config from raw mapping ``data``: built, validated, derived values filled."""
    cfg = _build(Config, data, "", src)
    validate_values(cfg, src)
    validate_combinations(cfg, src)
    validate_normalization(cfg.model, src)
    run_checks(cfg, checks or Checks(), src)
    resolve_config_classes(cfg, src)
    if cfg.eval_interval is None:
        cfg.eval_interval = cfg.save_interval
    return cfg


def load_config(path, opts=(), checks=None):
    """Read ``path`` (YAML), apply ``opts`` ("key.sub=value" strings), validate, resolve.
    ``checks``: the section owners' ``Checks`` (``paddle_fcn.cli.load_experiment`` passes the
    models' and data sets'); without them model options and dataset types are not checked
    here but when the model and data sets are built."""
    data, keys = _override(read_yaml(path), opts)
    return _from_dict(data, Source(path, keys), checks)


def apply_opts(cfg, opts, checks=None):
    """A new Config: ``cfg`` with ``opts`` applied and everything re-validated.

    Derived values already filled in ``cfg`` (eval_interval, model.num_classes) stay as they
    are; pass opts to ``load_config`` to have them derived after the overrides.
    """
    data, keys = _override(config_to_dict(cfg), opts)
    return _from_dict(data, Source("config", keys), checks)
