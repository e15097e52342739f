"""The quickstart's figures: wall time and validation metrics of ``configs/quickstart.yml``.

    python benchmarks/bench_quickstart.py                    # the full quickstart, seed 0
    python benchmarks/bench_quickstart.py --seeds 0 1 2      # one run per training seed
    python benchmarks/bench_quickstart.py --opts iters=500   # any config override

Goal (issue "Training as fast as the peers"): >= 0.93 mIoU on the synthetic validation split
for each of the seeds 0, 1, 2, each in <= 300 s of a 2-core CPU, from scratch (no pretrained
weights). Prints the figures and whether each goal is met; it never fails on them: this is a
benchmark, not a test. Each run trains into a fresh temporary directory (the synthetic data
set is reused from ``data/synthetic_voc``, generated on first use and not counted in the
training time). The seed is the training seed (initial weights, augmentation, batch order);
the data set stays the config's.
"""
import argparse
import os
import platform
import tempfile
import time

import paddle_fcn  # noqa: F401  (first: CPU thread settings)

from paddle_fcn.cli import load_experiment
from paddle_fcn.data import build_dataset
from paddle_fcn.engine.trainer import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository

GOAL_MIOU, GOAL_SECONDS = 0.93, 300.0


def run_one(config, opts):
    """Train ``config`` with ``opts`` into a temporary directory -> (TrainSummary, prep s,
    the config's ``cpu_threads``)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = load_experiment(config, list(opts) + [f"save_dir={out}", "use_vdl=false"])
        start = time.time()
        build_dataset(cfg.train_dataset)  # generate the data set now, outside the timing
        prep = time.time() - start
        return train(cfg, progress=False), prep, cfg.cpu_threads


def report(seed, summary, prep):
    """Print one run's figures; -> (best mIoU, seconds)."""
    m = summary.last_metrics or {}
    best = summary.best_mIoU or float("nan")
    print(f"\nseed {seed}: data preparation {prep:.1f} s; training + evaluation "
          f"{summary.seconds:.1f} s for {summary.iterations} iterations; best val mIoU "
          f"{best:.4f} at iteration {summary.best_iter}")
    for key in ("pixel_acc", "mean_acc", "fwIoU"):
        if key in m:
            print(f"  final {key}: {m[key]:.4f}")
    for name, iou in (m.get("class_IoU") or {}).items():
        print(f"  IoU {name:<12} {iou if iou is None else round(iou, 4)}")
    return best, summary.seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "quickstart.yml"))
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="training seeds, one run each (default: the config's)")
    p.add_argument("--opts", nargs="*", default=[])
    args = p.parse_args(argv)
    os.chdir(ROOT)  # the config's data path is relative to the repository
    runs, threads = [], None
    for seed in args.seeds or [None]:
        opts = list(args.opts) + ([] if seed is None else [f"seed={seed}"])
        summary, prep, threads = run_one(args.config, opts)
        runs.append((seed, *report(seed, summary, prep)))
    threads = threads or os.environ.get("OMP_NUM_THREADS")
    print(f"\nmachine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical CPUs, kernel threads {threads}")
    print(f"config: {args.config} {' '.join(args.opts)}")
    print(f"{'seed':>6} {'best mIoU':>10} {'seconds':>8}")
    for seed, best, seconds in runs:
        print(f"{'config' if seed is None else seed:>6} {best:>10.4f} {seconds:>8.1f}")
    worst = min(best for _, best, _ in runs)
    slowest = max(seconds for _, _, seconds in runs)
    print(f"goal >= {GOAL_MIOU} mIoU for every seed: {'met' if worst >= GOAL_MIOU else 'MISSED'} "
          f"(worst {worst:.4f}); goal <= {GOAL_SECONDS:.0f} s each: "
          f"{'met' if slowest <= GOAL_SECONDS else 'MISSED'} (slowest {slowest:.1f} s)")


if __name__ == "__main__":
    main()
