"""Inference speed of a model: eager (dygraph) vs the exported Paddle Inference predictor.

    python benchmarks/bench_infer.py --model fcn8s_vgg16 --size 512 512 --batch 1 --repeat 5

Random weights (nothing is downloaded; speed does not depend on the values). For each backend:
median / min / max latency of one batch, images/s, achieved GFLOP/s and the percentage of this
machine's FP32 peak. The network's FLOP are counted from its layers (conv and transposed-conv
multiply-accumulates x 2, see ``flops.py`` here); the peak is derived from
/proc/cpuinfo and /sys and checked against a measured FMA loop, and the derivation is printed.
The predictor's output is compared with the eager model's (max abs difference); a mismatch
beyond float rounding makes the script exit 1.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import paddle_fcn  # first: CPU thread settings before paddle
import numpy as np
import paddle

from paddle_fcn.inference.export import export_model
from paddle_fcn.inference.predictor import Predictor

from flops import COUNTED, count_flops, cpu_peak  # benchmarks/flops.py (the script's folder)


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="fcn8s_vgg16", choices=sorted(paddle_fcn.MODELS))
    p.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("W", "H"))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5, help="timed runs per backend")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (oneDNN setup)")
    p.add_argument("--num_classes", type=int, default=21)
    p.add_argument("--threads", type=int, help="predictor threads (default: physical cores)")
    p.add_argument("--skip_eager", action="store_true",
                   help="time the predictor only (one untimed eager run still checks parity)")
    p.add_argument("--no_fma_check", action="store_true",
                   help="do not measure the FMA ceiling (derived peak only)")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                   help="model options, e.g. width=8 (values are Python literals)")
    return p.parse_args(argv)


def _options(opts):
    import ast
    out = {}
    for opt in opts:
        key, _, text = opt.partition("=")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def _randomise_zero_weights(model):
    """Score layers start at zero (docs/design.md#initialisation); random values make the
    parity check meaningful."""
    rng = np.random.default_rng(1)
    for _, param in model.named_parameters():
        if param.ndim == 4 and not np.any(param.numpy()):
            param.set_value(0.01 * rng.standard_normal(param.shape).astype("float32"))


def _time(run, repeat, warmup):
    """Wall-clock and process CPU seconds of ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        run()
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


HEADER = (f"{'backend':<10} {'median s':>8} {'min s':>8} {'max s':>8} {'img/s':>7} "
          f"{'GFLOP/s':>8} {'%peak':>6} {'best':>6} {'cpu s':>6} {'%/cpu-s':>7}")


def _row(name, timing, batch, gflop, peak):
    """Latencies, throughput and % of ``peak`` (a CpuPeak); the last column is the FLOP rate
    per CPU-second over the per-core peak, which other processes on the cores do not dilute
    (OpenMP threads spinning while a sibling is descheduled still inflate it a little)."""
    walls, cpus = timing
    med, best, cpu = statistics.median(walls), min(walls), statistics.median(cpus)
    if peak.gflops > 0:
        pct = f"{100 * gflop / med / peak.gflops:5.1f}%"
        pct_best = f"{100 * gflop / best / peak.gflops:5.1f}%"
        pct_cpu = f"{100 * gflop / cpu / (peak.gflops / peak.cores):6.1f}%"
    else:  # no known peak (non-x86 CPU without the FMA probe): figures without percentages
        pct, pct_best, pct_cpu = f"{'n/a':>6}", f"{'n/a':>6}", f"{'n/a':>7}"
    return (f"{name:<10} {med:8.3f} {best:8.3f} {max(walls):8.3f} {batch / med:7.2f} "
            f"{gflop / med:8.1f} {pct} {pct_best} {cpu:6.2f} {pct_cpu}")


def main(argv=None):
    args = _parse(argv)
    w, h = args.size
    paddle.seed(0)
    model = paddle_fcn.build_model(args.model, args.num_classes, **_options(args.opts))
    model.eval()
    _randomise_zero_weights(model)
    shape = [args.batch, 3, h, w]
    flops = count_flops(model, shape)
    gflop = flops.total / 1e9
    peak = cpu_peak(measure=not args.no_fma_check)
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    load_before = os.getloadavg()[0]
    print(f"{args.model}, input {args.batch} x 3 x {h} x {w}, {args.num_classes} classes, "
          f"random weights; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"network: {gflop:.1f} GFLOP per batch ({len(flops.layers)} layers; {COUNTED})")
    print("FP32 peak:\n  " + "\n  ".join(peak.derivation))
    rows, outputs = [], {}
    xt = paddle.to_tensor(x)

    def eager():
        with paddle.no_grad():
            outputs["eager"] = model(xt).numpy()
    if args.skip_eager:
        eager()
    else:
        rows.append(_row("eager", _time(eager, args.repeat, min(args.warmup, 1)), args.batch,
                         gflop, peak))
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        export_model(model, folder, "none", model_type=args.model)
        predictor = Predictor(folder, device="cpu", threads=args.threads)

    def infer():
        outputs["predictor"] = predictor.predict(x)
    rows.append(_row("predictor", _time(infer, args.repeat, args.warmup), args.batch, gflop,
                     peak))
    print(f"\npredictor: Paddle Inference, oneDNN, {predictor.threads} threads; "
          f"peak {peak.gflops:.1f} GFLOP/s; load average {os.getloadavg()[0]:.2f} "
          f"(before: {load_before:.2f}; above ~0.5 other processes share the cores and the "
          f"wall-clock columns are upper bounds)")
    print("\n".join([HEADER] + rows))
    return _parity(outputs["eager"], outputs["predictor"])


def _parity(eager, predicted):
    """0 if the predictor reproduces the eager logits (float rounding only), else 1: a fast
    wrong answer is not a result."""
    diff = float(np.abs(eager - predicted).max())
    scale = max(1.0, float(np.abs(eager).max()))
    ok = diff <= 1e-3 * scale
    print(f"max |eager - predictor| = {diff:.3g} (logits up to {scale:.3g}): "
          f"{'ok' if ok else 'MISMATCH, the timings above are of a wrong network'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
