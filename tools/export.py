"""`python tools/export.py --help`: thin wrapper around `paddle_fcn.inference.cli.export_main`."""
import sys

from paddle_fcn.inference.cli import export_main

if __name__ == "__main__":
    sys.exit(export_main())
