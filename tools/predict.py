"""`python tools/predict.py --help`: the same as `paddle-fcn predict` (`paddle_fcn.cli`)."""
import sys

from paddle_fcn.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]], command=["python", sys.argv[0]]))
