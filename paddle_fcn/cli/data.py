"""The data commands: ``check_data`` (read every file of a config's data sets),
``labelme2voc`` (labelme JSON -> VOC layout), ``convert_context`` (PASCAL-Context .mat ->
PNG layout). Exit codes: check_data 0 clean, 1 problems found (the report says what to fix),
2 bad config; the converters 0 done, 2 a bad input (the message names it; nothing written)."""
import argparse
import os

from paddle_fcn.cli.common import fail, load_from_args
from paddle_fcn.data import build_dataset, check_dataset
from paddle_fcn.data.context import convert_context_mat
from paddle_fcn.data.labelme import convert_labelme
from paddle_fcn.errors import DataError

__all__ = ["check_data_main", "labelme2voc_main", "convert_context_main"]


def check_data_main(argv=None):
    """Check a config's data sets before training: missing/unreadable files, colour or 0/255
    masks, out-of-range labels, size mismatches, num_classes disagreements."""
    p = argparse.ArgumentParser(description=check_data_main.__doc__.split(":")[0])
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--split", choices=("train", "val", "both"), default="both")
    p.add_argument("--max-report", type=int, default=10, help="messages shown per problem kind")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides key=value")
    args = p.parse_args(argv)
    cfg = load_from_args(args, {})
    num_classes = cfg.model.num_classes
    ok = True
    for split in ("train", "val") if args.split == "both" else (args.split,):
        ds_cfg = getattr(cfg, f"{split}_dataset", None)
        if ds_cfg is None:
            print(f"[{split}] no {split}_dataset in {args.config}; skipped")
            continue
        try:
            dataset = build_dataset(ds_cfg, None, num_classes)
            report = check_dataset(dataset, num_classes, args.max_report, progress=True)
        except DataError as e:
            print(f"[{split}] FAILED: {e}")
            ok = False
            continue
        print(f"[{split}] {report}")
        ok = ok and report.ok
    return 0 if ok else 1


def labelme2voc_main(argv=None):
    """Convert a folder of labelme JSON files into the VOC layout (palette PNG labels,
    labels.txt, train/val split) that ``type: PascalVOC`` reads."""
    p = argparse.ArgumentParser(description=labelme2voc_main.__doc__.split(" (")[0])
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
        return fail(e)
    print(f"wrote {len(split['train'])} train + {len(split['val'])} val images to "
          f"{args.output_dir} (read it with type: PascalVOC, dataset_root: {args.output_dir})")
    return 0


def convert_context_main(argv=None):
    """Make the PASCAL-Context 59-class PNG layout (``type: PascalContext``) from the original
    459-class release (needs scipy, an optional dependency)."""
    p = argparse.ArgumentParser(description=convert_context_main.__doc__.split(" (``")[0])
    p.add_argument("context_dir", help="folder of the release: trainval/*.mat and labels.txt")
    p.add_argument("voc_root", help="the VOC2010 folder (JPEGImages/, ImageSets/Main/)")
    args = p.parse_args(argv)
    try:
        result = convert_context_mat(args.context_dir, args.voc_root)
    except DataError as e:
        return fail(e)
    print(f"wrote {result.written} labels to "
          f"{os.path.join(args.voc_root, 'SegmentationClassContext')}")
    for line in result.lines():
        print(line)
    return 0
