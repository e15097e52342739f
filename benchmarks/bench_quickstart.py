"""The quickstart's figures: wall time and validation metrics of ``configs/quickstart.yml``.

    python benchmarks/bench_quickstart.py                    # the full quickstart
    python benchmarks/bench_quickstart.py --opts iters=500   # any config override

Goal (issue "Data, training, evaluation"): >= 0.90 mIoU on the synthetic validation split in
<= 10 minutes on a 2-core CPU, from scratch (no pretrained weights). Prints the figures and
whether each goal is met; it never fails on them: this is a benchmark, not a test. The run
trains into a fresh temporary directory (the synthetic data set is reused from
``data/synthetic_voc``, generated on first use and not counted in the training time).
"""
import argparse
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import paddle_fcn  # noqa: E402  (first: CPU thread settings)

from paddle_fcn.cli import load_experiment  # noqa: E402
from paddle_fcn.data import build_dataset  # noqa: E402
from paddle_fcn.engine.trainer import train  # noqa: E402

GOAL_MIOU, GOAL_SECONDS = 0.90, 600.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "quickstart.yml"))
    p.add_argument("--opts", nargs="*", default=[])
    args = p.parse_args(argv)
    os.chdir(ROOT)  # the config's data path is relative to the repository
    with tempfile.TemporaryDirectory() as out:
        cfg = load_experiment(args.config, list(args.opts) + [f"save_dir={out}", "use_vdl=false"])
        start = time.time()
        build_dataset(cfg.train_dataset)  # generate the data set now, outside the timing
        prep = time.time() - start
        summary = train(cfg, progress=False)
    m = summary.last_metrics or {}
    print(f"\nmachine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"config: {args.config} {' '.join(args.opts)}")
    print(f"data preparation: {prep:.1f} s")
    print(f"training + evaluation: {summary.seconds:.1f} s for {summary.iterations} iterations "
          f"(goal <= {GOAL_SECONDS:.0f} s: {'met' if summary.seconds <= GOAL_SECONDS else 'MISSED'})")
    best = summary.best_mIoU or float("nan")
    print(f"best val mIoU {best:.4f} at iteration {summary.best_iter} "
          f"(goal >= {GOAL_MIOU}: {'met' if best >= GOAL_MIOU else 'MISSED'})")
    for key in ("pixel_acc", "mean_acc", "fwIoU"):
        if key in m:
            print(f"final {key}: {m[key]:.4f}")
    for name, iou in (m.get("class_IoU") or {}).items():
        print(f"  IoU {name:<12} {iou if iou is None else round(iou, 4)}")


if __name__ == "__main__":
    main()
