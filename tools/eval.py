"""`python tools/eval.py --help`: thin wrapper around `paddle_fcn.cli.eval_main`."""
import sys

from paddle_fcn.cli import eval_main

if __name__ == "__main__":
    sys.exit(eval_main())
