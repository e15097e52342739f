"""YAML in and out: the strict loader, reading a config file, and saving a resolved config.

The loader is PyYAML's SafeLoader with two changes: ``1e-4`` reads as a float (YAML 1.1 reads
it as a string) and a duplicate key is an error instead of silently keeping the last value.
A saved config has the file layout (model options back under ``model:``) and loads again.
"""
import dataclasses
import re
import typing

import yaml

from paddle_fcn.config.errors import ConfigError, describe
from paddle_fcn.config.schema import ModelConfig
from paddle_fcn.fileio import atomic_write_text

__all__ = ["YamlLoader", "read_yaml", "config_to_dict", "save_config"]


class YamlLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float and rejects duplicate keys."""


YamlLoader.add_implicit_resolver(
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


YamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                           _mapping_without_duplicates)


class _Dumper(yaml.SafeDumper):
    """Block mappings, with lists of scalars inline (``crop_size: [64, 64]``)."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=not any(isinstance(v, (dict, list)) for v in data)))


def read_yaml(path):
    """The top-level mapping of the YAML file ``path``; ConfigError naming the file otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=YamlLoader)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at top level, got "
                          f"{describe(data)}; one YAML describes one complete experiment")
    return data


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
    """Write the resolved config to ``path`` atomically (``paddle_fcn.fileio``)."""
    text = ("# paddle_fcn resolved config: one complete experiment; load with load_config()\n"
            + yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False,
                        default_flow_style=False, allow_unicode=True))
    atomic_write_text(text, path)
