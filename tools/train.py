"""`python tools/train.py --help`: the same as `paddle-fcn train` (`paddle_fcn.cli`)."""
import sys

from paddle_fcn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]], command=["python", sys.argv[0]]))
