"""`python tools/export.py --help`: the same as `paddle-fcn export` (`paddle_fcn.cli`)."""
import sys

from paddle_fcn.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]], command=["python", sys.argv[0]]))
