"""`python tools/labelme2voc.py --help`: the same as `paddle-fcn labelme2voc` (`paddle_fcn.cli`)."""
import sys

from paddle_fcn.cli import main

if __name__ == "__main__":
    sys.exit(main(["labelme2voc", *sys.argv[1:]], command=["python", sys.argv[0]]))
