"""``python -m paddle_fcn <command> ...``: the ``paddle-fcn`` command (``paddle_fcn.cli``)."""
import sys

from paddle_fcn.cli import main

sys.exit(main(command=["python", "-m", "paddle_fcn", *sys.argv[1:2]]))
