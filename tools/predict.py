"""`python tools/predict.py --help`: thin wrapper around `paddle_fcn.inference.cli.predict_main`."""
import sys

from paddle_fcn.inference.cli import predict_main

if __name__ == "__main__":
    sys.exit(predict_main())
