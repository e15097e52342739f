"""One YAML file = one complete experiment, loaded into typed dataclasses (PaddleSeg key names).

``load_config(path, opts)`` reads the YAML, applies ``--opts key.sub=value`` overrides, checks
every value against the dataclass annotations and the enumerations in ``schema``, runs the
``Checks`` of the code that will receive the sections (model options, dataset types and
transforms: ``paddle_fcn.cli.load_experiment`` passes them), and fills
derived values (``eval_interval``, ``model.num_classes``). Every error is a ``ConfigError``
naming the file (or ``--opts``), the full key path, and what was expected; unknown keys suggest
the closest valid one. There is no inheritance (``_base_``): a saved config is the whole story.

YAML note: PyYAML (YAML 1.1) reads ``1e-4`` as a string; the loader here reads it as a float.

Parts, each importing only those above it:

* ``errors``   ConfigError; message helpers (source file or ``--opts``, did-you-mean hints).
* ``schema``   the dataclasses; CHOICES, MODEL_FIELDS, RULES (plain dicts).
* ``yaml_io``  strict YAML loader, reading a config file, config_to_dict, save_config.
* ``validate`` value and combination checks, the owners' ``Checks``; resolve_num_classes.
* ``load``     type conversion, building the dataclasses, ``--opts``; load_config, apply_opts.
"""
from paddle_fcn.config.errors import ConfigError
from paddle_fcn.config.load import apply_opts, load_config
from paddle_fcn.config.schema import (CHOICES, MODEL_FIELDS, RULES, Config,
                                      DatasetConfig, ExportConfig, LossConfig,
                                      LRSchedulerConfig, ModelConfig, OptimizerConfig,
                                      SyntheticConfig, TestConfig)
from paddle_fcn.config.validate import Checks, resolve_num_classes
from paddle_fcn.config.yaml_io import config_to_dict, save_config

__all__ = [
    "ConfigError", "Config", "ModelConfig", "DatasetConfig", "SyntheticConfig",
    "OptimizerConfig", "LRSchedulerConfig", "LossConfig", "TestConfig", "ExportConfig",
    "load_config", "apply_opts", "config_to_dict", "save_config", "resolve_num_classes",
    "CHOICES", "RULES", "MODEL_FIELDS", "Checks",
]
