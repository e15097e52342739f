"""What every command shares: loading the experiment, the test-time flags, printing errors.

The flags are PaddleSeg's (``--config``, ``--iters``, ``--batch_size``, ``--learning_rate``,
``--save_dir``, ``--opts key=value``...). A flag given on the command line overrides the YAML
through the same type-checked path as ``--opts``. Bad input (``paddle_fcn.errors.USER_ERRORS``)
is printed as one ``error: ...`` line and exit code 2; anything else is a bug and keeps its
traceback.
"""
import json
import os
import sys

from paddle_fcn.config import Checks, TestConfig, load_config
from paddle_fcn.data import config_problems as dataset_problems
from paddle_fcn.errors import USER_ERRORS, ConfigError
from paddle_fcn.models.loading import config_problems as model_problems

__all__ = ["CHECKS", "load_experiment", "load_from_args", "add_test_config_args",
           "test_config_opts", "test_config_from_flags", "fail", "os_failure", "USER_ERRORS"]

# The section owners' checks: model type and options (models), dataset types, modes,
# options and transforms (data).
CHECKS = Checks(model=model_problems, dataset=dataset_problems)
TEST_FLAGS = ("is_slide", "crop_size", "stride", "flip_horizontal", "scales")


def load_experiment(path, opts=()):
    """``config.load_config`` with every check: the config as the commands run it."""
    return load_config(path, opts, CHECKS)


def load_from_args(args, flags):
    """The experiment of ``args.config`` with ``args.opts`` and the given flags applied
    (``flags``: flag name -> config key); a bad or missing config prints its message and
    exits with 2, as all bad input does."""
    opts = list(args.opts or [])
    for flag, key in flags.items():
        value = getattr(args, flag, None)
        if value is not None:
            opts.append(f"{key}={value}")
    try:
        return load_experiment(args.config, opts)
    except (ConfigError, FileNotFoundError) as e:
        raise SystemExit(fail(e)) from None


def add_test_config_args(p):
    """Test-time inference flags (config section ``test_config``) of eval and predict."""
    p.add_argument("--is_slide", action="store_true", default=None,
                   help="sliding-window inference (for large images)")
    p.add_argument("--crop_size", type=int, nargs=2, metavar=("W", "H"), help="window size")
    p.add_argument("--stride", type=int, nargs=2, metavar=("W", "H"), help="window step")
    p.add_argument("--flip_horizontal", action="store_true", default=None,
                   help="average with the prediction of the mirrored image")
    p.add_argument("--scales", type=float, nargs="+",
                   help="multi-scale inference, e.g. 0.75 1 1.25")


def test_config_opts(args):
    """The given test-time flags as ``test_config.*=value`` overrides (JSON is valid YAML)."""
    return [f"test_config.{name}={json.dumps(getattr(args, name))}" for name in TEST_FLAGS
            if getattr(args, name) is not None]


def test_config_from_flags(args):
    """A validated ``TestConfig`` from the flags alone (an exported model without --config)."""
    test = TestConfig(is_slide=bool(args.is_slide), crop_size=args.crop_size,
                      stride=args.stride or args.crop_size,
                      flip_horizontal=bool(args.flip_horizontal), scales=args.scales or [1.0])
    if test.is_slide and not test.crop_size:
        raise ConfigError("--is_slide needs --crop_size W H (and optionally --stride W H)")
    for name in ("crop_size", "stride"):
        value = getattr(test, name)
        if value is not None and (len(value) != 2 or min(value) < 1):
            raise ConfigError(f"--{name} must be two positive ints W H, got {value}")
    if test.is_slide and any(s > c for s, c in zip(test.stride, test.crop_size)):
        raise ConfigError(f"--stride {test.stride} exceeds --crop_size {test.crop_size}: "
                          f"pixels would be left unscored")
    if any(s <= 0 for s in test.scales):
        raise ConfigError(f"--scales must be positive, got {test.scales}")
    return test


def fail(message):
    """Print ``error: message`` to stderr; returns the exit code of bad input, 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def os_failure(save_dir, err):
    """Exit code 2 for an ``OSError``: usually ``--save_dir`` is unusable (an existing file,
    no permission, disk full); a file elsewhere (e.g. a list file) is named as unreadable."""
    reason = err.strerror or str(err)
    name = os.fspath(err.filename) if err.filename is not None else None
    root = os.path.abspath(save_dir)
    if name is None or os.path.commonpath([root, os.path.abspath(name)]) == root:
        detail = f" ({name})" if name and os.path.abspath(name) != root else ""
        return fail(f"cannot write to {save_dir}: {reason}{detail}")
    return fail(f"cannot read {name}: {reason}")
