"""`python tools/eval.py --help`: thin wrapper around `paddle_fcn.cli.eval_main`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from paddle_fcn.cli import eval_main  # noqa: E402  (paddle_fcn first: CPU thread settings)

if __name__ == "__main__":
    sys.exit(eval_main())
