"""Check a config's data sets before training: missing/unreadable files, colour or 0/255
masks, out-of-range labels, size mismatches, num_classes disagreements.

    python tools/check_data.py --config configs/X.yml [--split train|val|both] [--opts k=v ...]

Exit code 0 when every checked split is clean, 1 otherwise (the report says what to fix).
"""
import argparse
import sys

import paddle_fcn  # noqa: F401  (CPU runtime settings before paddle loads)
from paddle_fcn.config import load_config
from paddle_fcn.data import DataError, build_dataset, check_dataset


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--split", choices=("train", "val", "both"), default="both")
    p.add_argument("--max-report", type=int, default=10, help="messages shown per problem kind")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides key=value")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.opts)
    num_classes = getattr(getattr(cfg, "model", None), "num_classes", None)
    splits = ("train", "val") if args.split == "both" else (args.split,)
    ok = True
    for split in splits:
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


if __name__ == "__main__":
    sys.exit(main())
