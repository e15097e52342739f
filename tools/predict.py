"""`python tools/predict.py --help`: thin wrapper around `paddle_fcn.inference.cli.predict_main`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from paddle_fcn.inference.cli import predict_main  # noqa: E402  (CPU thread settings first)

if __name__ == "__main__":
    sys.exit(predict_main())
