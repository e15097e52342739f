"""The errors that describe bad input, not a bug: each message names the file, key or value.

The command-line tools print such an error's message without a traceback and exit with 2
(``USER_ERRORS``); anything else is a bug and keeps its traceback. Defined here, below every
layer, so that a module raising one needs nothing from the module that owns the concept.
"""

import numbers
from typing import NamedTuple

__all__ = ["check_num_classes", "Problem", "ConfigError", "DataError", "WeightsError",
           "CheckpointError", "ExportError",
           "PredictError", "PrecisionError", "USER_ERRORS"]


class ConfigError(ValueError):
    """A config value, key or combination is invalid; the message names file/--opts and key."""


class DataError(ValueError):
    """A data set file or list is missing, unreadable or holds values that cannot be used."""


class WeightsError(ValueError):
    """A weights file cannot be read, or does not fit the model it is loaded into."""


class CheckpointError(ValueError):
    """A checkpoint path that cannot be resumed from; the message names the path."""


class ExportError(RuntimeError):
    """Export failed or produced a graph that disagrees with the eager model."""


class PredictError(ValueError):
    """An input path, list file or option that predict cannot use; the message names it."""


class PrecisionError(ValueError):
    """A precision this device cannot run, or an unusable calibration request."""


USER_ERRORS = (ConfigError, DataError, WeightsError, CheckpointError, ExportError,
               PredictError, PrecisionError)


class Problem(NamedTuple):
    """One thing wrong with a config section, found by the layer that knows the rule (models:
    builder options; data: dataset types, modes, options, transforms): ``key`` below the
    section (``""``: the section itself), the ``message``, and for an unknown name the
    ``word`` and the ``valid`` ones (the config's did-you-mean hint). The config package turns
    it into a ``ConfigError`` naming the file or ``--opts`` and the full key."""
    key: str
    message: str
    word: object = None
    valid: tuple = ()


def check_num_classes(num_classes, error=ValueError):
    """``int(num_classes)``, or ``error`` unless it is a positive integer (not a bool): the
    one check of a class count, for models, data sets and metrics alike."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:  # numpy's integers are Integral too
        raise error(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)
