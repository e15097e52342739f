"""`python tools/eval.py --help`: the same as `paddle-fcn eval` (`paddle_fcn.cli`)."""
import sys

from paddle_fcn.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]], command=["python", sys.argv[0]]))
