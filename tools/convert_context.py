"""Make the PASCAL-Context 59-class PNG layout (``type: PascalContext``) from the original
459-class release: ``trainval/<id>.mat`` and ``labels.txt`` -> ``VOC2010/
SegmentationClassContext/<id>.png`` and ``ImageSets/SegmentationContext/{train,val}.txt``.

    python tools/convert_context.py CONTEXT_DIR VOC2010_DIR

Needs scipy (``pip install scipy``; optional, not in requirements.txt). Exit code 0 on
success, 2 when an input is missing or bad (the message names it).
"""
import argparse
import os
import sys

from paddle_fcn.data.context import convert_context_mat
from paddle_fcn.data.io import DataError


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("context_dir", help="folder of the release: trainval/*.mat and labels.txt")
    p.add_argument("voc_root", help="the VOC2010 folder (JPEGImages/, ImageSets/Main/)")
    args = p.parse_args(argv)
    try:
        count = convert_context_mat(args.context_dir, args.voc_root)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {count} labels to {os.path.join(args.voc_root, 'SegmentationClassContext')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
