"""Data workers on VOC-size photos: loader throughput and training step time by num_workers.

    python benchmarks/bench_loader.py                          # ResNet34 recipe, workers 0 1 2
    python benchmarks/bench_loader.py --config configs/quickstart.yml --iters 10

On VOC-size data (``preset: voc``: 500 x 375 and 375 x 500 JPEGs, 21 classes) prints, for each
worker count:

1. samples per second the config's own transforms deliver through the training loader
   (``engine.batches.training_loader``: ``WorkerLoader``), and through ``paddle.io.DataLoader`` with
   the same dataset, sampler and collate as the peer, with nothing else running;
2. seconds per training iteration of the config (its batch, accumulation and transforms; no
   ImageNet weights, no evaluation), timed from the second iteration on (``(t(1 + n) -
   t(1)) / n``: start-up, data check and the first step's allocations excluded), the workers
   sharing the CPU with the model.

Figures, never assertions. On 2 cores the model's math threads and the workers compete, so
(2) shows what a real run gains; (1) what the loader alone can do.
"""
import argparse
import functools
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import paddle_fcn  # noqa: E402,F401  (first: CPU thread settings)
import paddle  # noqa: E402

from paddle_fcn.cli import load_experiment  # noqa: E402
from paddle_fcn.data import build_dataset, collate_fn, generate_synthetic_voc  # noqa: E402
from paddle_fcn.engine.sampler import SeededDataset, StreamBatchSampler  # noqa: E402
from paddle_fcn.engine.batches import training_loader  # noqa: E402
from paddle_fcn.engine.trainer import train  # noqa: E402


def _rate(batches, count, batch_size):
    start = time.time()
    for _, _ in zip(range(count), batches):
        pass
    return count * batch_size / (time.time() - start)


def loader_rates(cfg, workers, count):
    """Samples/s of the training loader and of ``paddle.io.DataLoader`` (same data)."""
    ds = build_dataset(cfg.train_dataset, None, cfg.model.num_classes)
    ours = _rate(training_loader(cfg, ds, 0, 0, 1), count, cfg.batch_size)
    sampler = StreamBatchSampler(len(ds), cfg.batch_size, count, seed=cfg.seed)
    peer = paddle.io.DataLoader(SeededDataset(ds), batch_sampler=sampler, num_workers=workers,
                                collate_fn=functools.partial(collate_fn,
                                                             ignore_index=ds.ignore_index))
    return ours, _rate(peer, count, cfg.batch_size)


def step_seconds(config, opts, workers, iters, out):
    """Seconds per training iteration after the first (see the module docstring)."""
    def run(n):
        cfg = load_experiment(config, opts + [f"num_workers={workers}", f"iters={n}",
                                          f"save_dir={out}/w{workers}_{n}", "do_eval=false",
                                          "use_vdl=false", f"save_interval={n}"])
        return train(cfg, progress=False, check_data=False).seconds, cfg
    first, _ = run(1)
    total, cfg = run(1 + iters)
    return (total - first) / iters, cfg


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "voc_fcn8s_resnet34.yml"))
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iters", type=int, default=3, help="timed training iterations per count")
    p.add_argument("--batches", type=int, default=20, help="loader-only batches per count")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_synthetic_voc(os.path.join(tmp, "VOC2012"), num_train=40, num_val=2,
                                      preset="voc")
        opts = [f"{k}.{v}" for k in ("train_dataset", "val_dataset")
                for v in (f"dataset_root={root}", "type=PascalVOC", "num_classes=21")]
        opts += ["model.pretrained=null", "model.init_from=null", "train_dataset.mode=trainaug",
                 "val_dataset.mode=val", "model.num_classes=21"]
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} "
              f"logical CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
        print(f"config: {args.config} on VOC-size photos (preset voc, 40 train images)")
        print(f"{'workers':>8} {'ours samples/s':>15} {'paddle.io samples/s':>20} "
              f"{'s / iteration':>14}")
        base = None
        for workers in args.workers:
            seconds, cfg = step_seconds(args.config, opts, workers, args.iters, tmp)
            ours, peer = loader_rates(cfg, workers, args.batches)
            base = base or seconds
            print(f"{workers:>8} {ours:>15.1f} {peer:>20.1f} {seconds:>14.2f}  "
                  f"({base / seconds:.2f}x of workers={args.workers[0]})")


if __name__ == "__main__":
    main()
