"""Data workers on VOC-size photos: loader throughput and training step time by num_workers.

    python benchmarks/bench_loader.py                          # ResNet34 recipe, workers 0 1 2
    python benchmarks/bench_loader.py --config configs/quickstart.yml --iters 10

On VOC-size data (``preset: voc``: 500 x 375 and 375 x 500 JPEGs) prints, for each worker
count, (1) how many training samples per second the config's own transforms deliver with
nothing else running, and (2) the seconds per training iteration of the config (its batch,
accumulation and transforms; no ImageNet weights, no evaluation) when the workers share the
CPU with the model. Figures, never assertions: with 2 cores the model's math threads and the
workers compete, so (2) shows what a real run gains; (1) what the loader alone can do.
"""
import argparse
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import paddle_fcn  # noqa: E402,F401  (first: CPU thread settings)

from paddle_fcn.config import load_config  # noqa: E402
from paddle_fcn.data import build_dataset, collate_fn, generate_synthetic_voc  # noqa: E402
from paddle_fcn.data.loader import WorkerLoader  # noqa: E402
from paddle_fcn.engine.sampler import SeededDataset, StreamBatchSampler  # noqa: E402
from paddle_fcn.engine.trainer import train  # noqa: E402


def loader_rate(cfg, workers, batches):
    """Samples per second of the training transforms through ``WorkerLoader``."""
    ds = build_dataset(cfg.train_dataset, None, cfg.model.num_classes)
    sampler = StreamBatchSampler(len(ds), cfg.batch_size, batches, seed=0)
    start = time.time()
    for _ in WorkerLoader(SeededDataset(ds), sampler, collate_fn, workers, 300):
        pass
    return batches * cfg.batch_size / (time.time() - start)


def step_seconds(config, opts, workers, iters, out):
    cfg = load_config(config, opts + [f"num_workers={workers}", f"iters={iters}",
                                      f"save_dir={out}/w{workers}", "do_eval=false",
                                      "use_vdl=false", f"save_interval={iters}"])
    summary = train(cfg, progress=False, check_data=False)
    return summary.seconds / iters, cfg


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "voc_fcn8s_resnet34.yml"))
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iters", type=int, default=3, help="training iterations per worker count")
    p.add_argument("--batches", type=int, default=6, help="loader-only batches per count")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_synthetic_voc(os.path.join(tmp, "VOC2012"), num_train=40, num_val=2,
                                      preset="voc")
        opts = [f"{k}.dataset_root={root}" for k in ("train_dataset", "val_dataset")]
        opts += ["model.pretrained=null", "model.init_from=null"]
        opts += [f"{k}.type=PascalVOC" for k in ("train_dataset", "val_dataset")]
        opts += ["train_dataset.mode=trainaug", "model.num_classes=21",
                 "train_dataset.num_classes=21", "val_dataset.num_classes=21"]
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} "
              f"logical CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
        print(f"config: {args.config} on VOC-size photos (preset voc, 40 train images)")
        print(f"{'workers':>8} {'loader samples/s':>17} {'s / iteration':>14}")
        base = None
        for workers in args.workers:
            seconds, cfg = step_seconds(args.config, opts, workers, args.iters, tmp)
            rate = loader_rate(cfg, workers, args.batches)
            base = base or seconds
            print(f"{workers:>8} {rate:>17.1f} {seconds:>14.2f}  ({base / seconds:.2f}x of "
                  f"workers={args.workers[0]})")


if __name__ == "__main__":
    main()
