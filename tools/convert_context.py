"""`python tools/convert_context.py --help`: the same as `paddle-fcn convert_context`
(`paddle_fcn.cli`)."""
import sys

from paddle_fcn.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert_context", *sys.argv[1:]], command=["python", sys.argv[0]]))
