"""Training throughput (images/s) per model, with PyTorch eager as the peer in the same run.

    python benchmarks/bench_train.py                         # default models at 320x320
    python benchmarks/bench_train.py --models fcn8s_vgg16 --size 320 --batch 2 --steps 5
    python benchmarks/bench_train.py --no-peer               # Paddle only

Each step is a forward, the segmentation loss (cross entropy, ignore 255, mean over valid
pixels), a backward and an SGD-momentum update (lr 1e-3, momentum 0.9) on random data, exactly
as ``paddle_fcn.engine.trainer`` does it. The first ``--warmup`` steps are not timed
(allocation, kernel selection). Figures, not assertions: nothing here is a test.

Peer: when ``torch`` imports and the model has a twin in ``benchmarks/torch_peers.py``
(fcn8s_vgg16, fcn8s_resnet18/34, unet), the same network in PyTorch eager gets the same
weights (copied from the Paddle model), the same images and labels (5 % of pixels 255), the
same loss and optimizer, and ``torch.set_num_threads`` = ``OMP_NUM_THREADS``. What differs is
listed in ``torch_peers``' docstring (the kernels, dropout's RNG, BN's momentum convention).
The two sides alternate step by step, so a load change on the shared machine hits both;
``ratio`` = Paddle images/s / PyTorch images/s (> 1: Paddle faster). On an oversubscribed
machine PyTorch's libgomp threads are slow to wake: ``--pause 0.3`` (every side's workers
asleep before its step) made its steps 3-4x slower there, Paddle's ~1.2x (docs/performance.md,
Training speed).
"""
import argparse
import os
import statistics
import time

import paddle_fcn  # noqa: E402  (first: CPU thread settings)
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from paddle_fcn.device import setup_device  # noqa: E402
from paddle_fcn.engine.loss import SegmentationLoss  # noqa: E402
from paddle_fcn.models import build_model  # noqa: E402

DEFAULT_MODELS = ["fcn32s_vgg16", "fcn8s_vgg16", "fcn8s_resnet18", "fcn8s_resnet34",
                  "fcn8s_resnet50", "unet"]
NUM_CLASSES, LR, MOMENTUM = 21, 1e-3, 0.9


def random_batch(batch, size, seed=0):
    """``(images N x 3 x H x W float32, labels N x H x W int64 with 5 % void = 255)``."""
    rng = np.random.default_rng(seed)
    h, w = size
    x = rng.standard_normal((batch, 3, h, w)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, (batch, h, w)).astype(np.int64)
    y[rng.random((batch, h, w)) < 0.05] = 255
    return x, y


class PaddleSide:
    """One Paddle model, optimizer and batch; ``step()`` returns the loss as a float."""

    def __init__(self, name, x, y):
        paddle.seed(0)
        self.model = build_model(name, NUM_CLASSES)
        self.model.train()
        params = [p for p in self.model.parameters() if not p.stop_gradient]
        self.params = sum(int(np.prod(p.shape)) for p in params)
        self.opt = paddle.optimizer.Momentum(learning_rate=LR, momentum=MOMENTUM,
                                             parameters=params)
        self.loss_fn = SegmentationLoss(NUM_CLASSES)
        self.x, self.y = paddle.to_tensor(x), paddle.to_tensor(y)

    def step(self):
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        self.opt.clear_grad()
        return float(loss)  # waits for the step to finish


class TorchSide:
    """The PyTorch twin of a ``PaddleSide``, holding the same weights and batch."""

    def __init__(self, name, paddle_side, x, y):
        import torch
        import torch_peers

        self.torch, self.F = torch, torch.nn.functional
        torch.manual_seed(0)
        self.model = torch_peers.PEERS[name](NUM_CLASSES)
        with torch.no_grad():
            torch_peers.copy_weights(paddle_side.model, self.model)
        self.model.train()
        self.params = torch_peers.count_parameters(self.model)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def step(self):
        loss = self.F.cross_entropy(self.model(self.x), self.y, ignore_index=255)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.item()


def load_torch():
    """``torch`` with ``OMP_NUM_THREADS`` threads, or None (a note says why)."""
    try:
        import torch
    except ImportError as e:
        print(f"note: no PyTorch peer ({e}); pip install torch to compare")
        return None
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    return torch


def timed_steps(sides, steps, warmup, pause=0.0):
    """Alternate one step of each side; ``{side: (times, last loss)}`` after ``warmup``."""
    times, last = {s: [] for s in sides}, {}
    for i in range(warmup + steps):
        for side in sides:
            # --pause > 0.2: the other side's idle OpenMP workers (spinning ~200 ms, Intel's
            # KMP_BLOCKTIME) are asleep when this step starts, but so are this side's own.
            time.sleep(pause)
            start = time.perf_counter()
            last[side] = side.step()
            if i >= warmup:
                times[side].append(time.perf_counter() - start)
    return {s: (times[s], last[s]) for s in sides}


def summary(times, batch):
    med = statistics.median(times)
    return med, min(times), max(times), batch / med


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--size", type=int, nargs=2, default=[320, 320], metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds of sleep before each timed step (default 0)")
    args = p.parse_args(argv)
    device = setup_device(args.device)
    torch = None if args.no_peer or device != "cpu" else load_torch()
    if torch is not None:
        from torch_peers import PEERS
        print(f"peer: PyTorch {torch.__version__} eager, {torch.get_num_threads()} threads")
    print(f"device {device}, paddle {paddle.__version__}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}, input {args.batch}x3x{args.size[0]}x"
          f"{args.size[1]}, {args.steps} timed steps, load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':<16}{'side':<8}{'params':>12}{'median s':>10}{'min':>8}{'max':>8}"
          f"{'img/s':>8}{'loss':>9}{'ratio':>7}")
    x, y = random_batch(args.batch, args.size)
    for name in args.models:
        sides = [PaddleSide(name, x, y)]
        if torch is not None and name in PEERS:
            sides.append(TorchSide(name, sides[0], x, y))
        results = timed_steps(sides, args.steps, args.warmup, args.pause)
        rates = []
        for label, side in zip(("paddle", "torch"), sides):
            med, lo, hi, rate = summary(results[side][0], args.batch)
            rates.append(rate)
            ratio = f"{rates[0] / rate:>7.2f}" if label == "torch" else ""
            print(f"{name:<16}{label:<8}{side.params:>12,}{med:>10.3f}{lo:>8.3f}{hi:>8.3f}"
                  f"{rate:>8.2f}{results[side][1]:>9.4f}{ratio}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
