"""The command line: ``paddle-fcn <command> ...`` and the ``tools/*.py`` wrappers.

Commands: ``train``, ``eval``, ``predict``, ``export``, ``check_data``, ``labelme2voc``,
``convert_context``; ``paddle-fcn <command> --help`` lists each one's flags. Each command is a
``*_main(argv) -> exit code`` function; ``tools/<command>.py`` calls the same function.
"""
import importlib
import sys

from paddle_fcn.cli.common import CHECKS, load_experiment

__all__ = ["main", "COMMANDS", "load_experiment", "CHECKS"]


# command -> (module, function); imported when run, so `--help` of one does not load all
COMMANDS = {
    "train": ("train", "train_main"),
    "eval": ("evaluate", "eval_main"),
    "predict": ("deploy", "predict_main"),
    "export": ("deploy", "export_main"),
    "check_data": ("data", "check_data_main"),
    "labelme2voc": ("data", "labelme2voc_main"),
    "convert_context": ("data", "convert_context_main"),
}


def main(argv=None, command=None):
    """``paddle-fcn <command> [flags]``; returns the command's exit code (2: no such command).
    ``command``: how the user typed the command, for messages that repeat it (the resume line
    of a stopped training run); default ``paddle-fcn <command>``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        usage = f"usage: paddle-fcn {{{','.join(COMMANDS)}}} [--help | flags]"
        if argv and argv[0] not in ("-h", "--help"):
            print(f"paddle-fcn: unknown command {argv[0]!r}\n{usage}", file=sys.stderr)
            return 2
        print(__doc__.strip() + "\n\n" + usage)
        return 0 if argv else 2
    module, name = COMMANDS[argv[0]]
    function = getattr(importlib.import_module(f"paddle_fcn.cli.{module}"), name)
    if argv[0] == "train":
        return function(argv[1:], command=command or ["paddle-fcn", "train"])
    return function(argv[1:])
