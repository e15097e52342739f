"""Convert a folder of labelme JSON files into the VOC layout (palette PNG labels, labels.txt,
train/val split) that ``type: PascalVOC`` (``dataset_root`` = the output folder) reads.

    python tools/labelme2voc.py INPUT_DIR OUTPUT_DIR --labels labels.txt [--val_ratio 0.2]

Exit code 0 on success, 2 when a file is bad (the message names it); nothing is written then.
"""
import argparse
import sys

from paddle_fcn.data.io import DataError
from paddle_fcn.data.labelme import convert_labelme


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input_dir", help="folder of labelme <name>.json files (and their images)")
    p.add_argument("output_dir", help="new or empty folder for the VOC layout")
    p.add_argument("--labels", required=True,
                   help="labels.txt: one class per line, first = background; __ignore__ -> 255")
    p.add_argument("--val_ratio", type=float, default=0.2, help="fraction of images for val")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val shuffle")
    args = p.parse_args(argv)
    try:
        split = convert_labelme(args.input_dir, args.output_dir, args.labels, args.val_ratio,
                                args.seed)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(split['train'])} train + {len(split['val'])} val images to "
          f"{args.output_dir} (read it with type: PascalVOC, dataset_root: {args.output_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
