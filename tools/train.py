"""`python tools/train.py --help`: thin wrapper around `paddle_fcn.cli.train_main`."""
import sys

from paddle_fcn.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
