"""`python tools/check_data.py --help`: the same as `paddle-fcn check_data` (`paddle_fcn.cli`)."""
import sys

from paddle_fcn.cli import main

if __name__ == "__main__":
    sys.exit(main(["check_data", *sys.argv[1:]], command=["python", sys.argv[0]]))
