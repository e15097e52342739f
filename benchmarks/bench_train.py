"""Training throughput (images/s) per model on the machine at hand; prints a table.

    python benchmarks/bench_train.py                         # default models at 320x320
    python benchmarks/bench_train.py --models fcn8s_vgg16 --size 320 --batch 2 --steps 5

Each step is a forward, the segmentation loss, a backward and an SGD-momentum update on random
data, exactly as ``paddle_fcn.engine.trainer`` does it. The first ``--warmup`` steps are not
timed (allocation, kernel selection). Figures, not assertions: nothing here is a test.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import paddle_fcn  # noqa: E402  (first: CPU thread settings)
import paddle  # noqa: E402

from paddle_fcn.engine.env import setup_device  # noqa: E402
from paddle_fcn.engine.loss import SegmentationLoss  # noqa: E402
from paddle_fcn.models import build_model  # noqa: E402

DEFAULT_MODELS = ["fcn32s_vgg16", "fcn8s_vgg16", "fcn8s_resnet18", "fcn8s_resnet34",
                  "fcn8s_resnet50", "unet"]


def time_model(name, size, batch, steps, warmup, num_classes=21):
    """Median seconds per training step of ``name`` on ``batch`` random ``size`` images."""
    paddle.seed(0)
    model = build_model(name, num_classes)
    model.train()
    params = [p for p in model.parameters() if not p.stop_gradient]
    opt = paddle.optimizer.Momentum(learning_rate=1e-3, momentum=0.9, parameters=params)
    loss_fn = SegmentationLoss(num_classes)
    h, w = size
    x = paddle.randn([batch, 3, h, w])
    y = paddle.randint(0, num_classes, [batch, h, w])
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        float(loss)  # wait for the step to finish
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--size", type=int, nargs=2, default=[320, 320], metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    args = p.parse_args(argv)
    device = setup_device(args.device)
    print(f"device {device}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"input {args.batch}x3x{args.size[0]}x{args.size[1]}, {args.steps} timed steps")
    print(f"{'model':<18}{'median s/step':>15}{'min':>9}{'max':>9}{'images/s':>10}")
    for name in args.models:
        med, lo, hi = time_model(name, args.size, args.batch, args.steps, args.warmup)
        print(f"{name:<18}{med:>15.3f}{lo:>9.3f}{hi:>9.3f}{args.batch / med:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
