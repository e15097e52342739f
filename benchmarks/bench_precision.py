"""Inference precision side by side: fp32 / bf16 / int8 latency, speed-up and mIoU, one run.

    python benchmarks/bench_precision.py                          # trains the quickstart first
    python benchmarks/bench_precision.py --model_path output/quickstart/best_model
    python benchmarks/bench_precision.py --opts iters=1000        # a shorter quickstart

Speed: FCN-8s VGG16 at ``--size`` (512 x 512), batch 1, random weights, exported at each
precision and run by the ``Predictor`` on CPU (median of ``--repeat`` runs after warm-up);
speed-up over the fp32 Predictor. Peer in the same run when torch is installed (never a
requirement): PyTorch eager fp32 and ``torch.autocast("cpu", torch.bfloat16)`` (NCHW, and
channels-last, its fastest bf16 layout) of the same layer stack (VGG16, fc6 7 x 7 / fc7
1 x 1 convs, score layers, transposed-conv upsamplers).
Accuracy: the quickstart model (``configs/quickstart.yml``: trained here unless
``--model_path``) exported at each precision and evaluated on the synthetic val split through
``tools/eval.py --precision``'s path (``segmenter.load_scorer`` + ``cli.evaluate.run_eval``),
next to the eager fp32 model; int8 calibrates on ``--calib_images`` training images (the
speed rows' random-weight net on ``--speed_calib`` random images). A precision this machine
cannot run prints the reason.
Goals (issue 14), printed, never asserted: bf16 >= 2x fp32, faster than PyTorch bf16
autocast, mIoU within 0.3 points of fp32; int8 >= 3x fp32, mIoU within 1 point.
"""
import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time

import paddle_fcn  # first: CPU thread settings before paddle
import numpy as np
import paddle

from paddle_fcn.cli import load_experiment
from paddle_fcn.cli.evaluate import run_eval
from paddle_fcn.inference.export import ExportError, export_model
from paddle_fcn.inference.precision import (BF16_FLAGS, PRECISIONS, PrecisionError,
                                            cpu_flags)
from paddle_fcn.inference.predictor import Predictor
from paddle_fcn.inference.segmenter import load_scorer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository

GOALS = {"bf16": (2.0, 0.3), "int8": (3.0, 1.0)}  # speed-up over fp32, mIoU points
PEER_NHWC = "torch bf16 channels_last"


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("W", "H"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "quickstart.yml"))
    p.add_argument("--model_path", help="a trained quickstart checkpoint (default: train one)")
    p.add_argument("--opts", nargs="*", default=[], help="quickstart config overrides")
    p.add_argument("--calib_images", type=int, default=200,
                   help="training images the int8 accuracy row calibrates on")
    p.add_argument("--speed_calib", type=int, default=4,
                   help="random images the int8 speed row calibrates on")
    p.add_argument("--skip_speed", action="store_true")
    p.add_argument("--skip_accuracy", action="store_true")
    return p.parse_args(argv)


def _median(run, repeat, warmup):
    for _ in range(warmup):
        run()
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def _reason(err):
    """The error's first sentence: the table's note (the whole message is in the error)."""
    text = " ".join(str(err).split())
    return text.split(". ")[0].split("; ")[0]


def speed(args):
    """``{row name: seconds or reason}``: Predictor per precision, then the PyTorch peer."""
    w, h = args.size
    paddle.seed(0)
    model = paddle_fcn.build_model("fcn8s_vgg16", 21)
    model.eval()
    rng = np.random.default_rng(1)
    for _, param in model.named_parameters():  # zero score layers: give them values
        if param.ndim == 4 and not np.any(param.numpy()):
            param.set_value(0.01 * rng.standard_normal(param.shape).astype("float32"))
    x = rng.standard_normal((1, 3, h, w)).astype("float32")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        for precision in PRECISIONS:
            folder = os.path.join(tmp, precision)
            calibration = [rng.standard_normal((1, 3, h, w)).astype("float32")
                           for _ in range(args.speed_calib)] if precision == "int8" else ()
            try:
                export_model(model, folder, "none", model_type="fcn8s_vgg16",
                             precision=precision, device="cpu", calibration=calibration)
                predictor = Predictor(folder, "cpu")
            except (PrecisionError, ExportError) as e:
                rows[f"predictor {precision}"] = _reason(e)
                continue
            rows[f"predictor {precision}"] = _median(lambda: predictor.predict(x), args.repeat,
                                                     args.warmup)
            del predictor
    rows.update(_torch_peer(x, args.repeat, args.warmup))
    return rows


def _torch_net(torch, num_classes=21):
    """FCN-8s VGG16 (aligned geometry) as a torch module: the same convs as paddle_fcn's."""
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], 3
            self.stages = nn.ModuleList()
            for width, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
                for _ in range(convs):
                    layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
                    c = width
                self.stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
                layers = []
            self.fc = nn.Sequential(nn.Conv2d(512, 4096, 7, padding=3), nn.ReLU(inplace=True),
                                    nn.Conv2d(4096, 4096, 1), nn.ReLU(inplace=True))
            self.score_fr = nn.Conv2d(4096, num_classes, 1)
            self.score_pool4 = nn.Conv2d(512, num_classes, 1)
            self.score_pool3 = nn.Conv2d(256, num_classes, 1)
            self.up2 = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
            self.up_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
            self.up8 = nn.ConvTranspose2d(num_classes, num_classes, 16, 8, 4, bias=False)

        def forward(self, x):
            feats = []
            for stage in self.stages:
                x = stage(x)
                feats.append(x)
            score = self.up2(self.score_fr(self.fc(x)))  # 1/16
            score = self.up_pool4(score + self.score_pool4(feats[3]))  # 1/8
            return self.up8(score + self.score_pool3(feats[2]))  # 1/1

    return Net().eval()


def _torch_peer(x, repeat, warmup):
    try:
        import torch
    except ImportError:
        return {"torch fp32": "torch not installed (optional peer: pip install torch)"}
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    net, xt = _torch_net(torch), torch.from_numpy(x)

    def fp32():
        with torch.inference_mode():
            net(xt)

    def bf16(model=net, image=xt):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(image)
    rows = {"torch fp32": _median(fp32, repeat, warmup)}
    if any(f in cpu_flags() for f in BF16_FLAGS):
        rows["torch bf16 autocast"] = _median(bf16, repeat, warmup)
        # NHWC is where PyTorch's oneDNN bf16 convs are fastest: its best eager bf16
        net_nhwc = net.to(memory_format=torch.channels_last)  # in place: after the NCHW rows
        x_nhwc = xt.to(memory_format=torch.channels_last)
        rows[PEER_NHWC] = _median(lambda: bf16(net_nhwc, x_nhwc), repeat, warmup)
    else:  # fallback kernels: on an AVX2 EPYC one 64 x 64 image took 3.4 s (fp32 0.09-0.5 s)
        rows["torch bf16 autocast"] = ("not timed: no native bf16 on this CPU, where torch's "
                                       "bf16 kernels are many times slower than fp32")
    return rows


def accuracy(args):
    """``{row name: mIoU or reason}`` of the quickstart model, eager and per precision."""
    os.chdir(ROOT)  # the config's data path is relative to the repository
    with tempfile.TemporaryDirectory(prefix="bench-precision-run-") as out:
        cfg = load_experiment(args.config, list(args.opts) + [
            f"save_dir={out}", "use_vdl=false", "device=cpu",
            f"export.calib_images={args.calib_images}"])
        ckpt = args.model_path
        if ckpt is None:
            from paddle_fcn.engine.trainer import train

            start = time.time()
            summary = train(cfg, progress=False)
            print(f"trained {args.config} {' '.join(args.opts)}: {summary.iterations} "
                  f"iterations in {time.time() - start:.0f} s")
            ckpt = os.path.join(out, "best_model")
        rows = {"eager fp32": _miou(cfg, ckpt, None)}
        for precision in PRECISIONS:
            try:
                scorer = load_scorer(ckpt, cfg, "cpu", precision)
            except (PrecisionError, ExportError) as e:
                rows[f"predictor {precision}"] = _reason(e)
                continue
            rows[f"predictor {precision}"] = _miou(cfg, ckpt, scorer)
    return rows


def _miou(cfg, ckpt, model):
    # run_eval prints the per-class table, and its progress bar to stderr
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return run_eval(cfg, ckpt, check_data=False, model=model)["mIoU"]


def _machine():
    flags = cpu_flags()
    name = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        name = next((line.split(":", 1)[1].strip() for line in f
                     if line.startswith("model name")), name)
    have = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", *BF16_FLAGS) if f in flags]
    lacks = [f for f in ("avx512f", "avx512_vnni", *BF16_FLAGS) if f not in flags]
    return (f"{name}; {os.cpu_count()} logical CPUs, OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS')}; has {' '.join(have) or '-'}; lacks "
            f"{' '.join(lacks) or '-'}; load average {os.getloadavg()[0]:.2f}")


def _print(speeds, mious, size):
    fp32_s, fp32_miou = speeds.get("predictor fp32"), mious.get("predictor fp32")
    print(f"\n{'row':<25} {'latency s':>9} {'speed-up':>8} {'mIoU %':>7} {'d mIoU':>7}  notes")
    for name in list(dict.fromkeys(list(mious)[:1] + list(speeds) + list(mious))):
        s, m, notes = speeds.get(name), mious.get(name), []
        lat = f"{s:9.3f}" if isinstance(s, float) else f"{'-':>9}"
        up = f"{fp32_s / s:7.2f}x" if isinstance(s, float) and isinstance(fp32_s, float) \
            else f"{'-':>8}"
        miou = f"{100 * m:7.2f}" if isinstance(m, float) else f"{'-':>7}"
        dm = f"{100 * (m - fp32_miou):+7.2f}" if isinstance(m, float) and isinstance(
            fp32_miou, float) else f"{'-':>7}"
        notes += [v for v in (s, m) if isinstance(v, str)][:1]
        precision = name.split()[-1]
        peers = [v for k, v in speeds.items() if k in ("torch bf16 autocast", PEER_NHWC)
                 and isinstance(v, float)]
        if name == "predictor bf16" and isinstance(s, float) and peers:
            met = s < min(peers)
            notes.append(f"faster than torch bf16 autocast (NCHW and NHWC): "
                         f"{'met' if met else 'MISSED'}")
        if name.startswith("predictor") and precision in GOALS and isinstance(s, float):
            speed_goal, miou_goal = GOALS[precision]
            met = fp32_s / s >= speed_goal
            notes.append(f"goal >= {speed_goal}x: {'met' if met else 'MISSED'}")
            if isinstance(m, float):
                ok = abs(100 * (m - fp32_miou)) <= miou_goal
                notes.append(f"goal |d mIoU| <= {miou_goal}: {'met' if ok else 'MISSED'}")
        print(f"{name:<25} {lat} {up} {miou} {dm}  {'; '.join(notes)}")
    print(f"(latency: FCN-8s VGG16 {size[0]} x {size[1]}, batch 1, random weights; mIoU: the "
          f"quickstart model on the synthetic val split)")


def main(argv=None):
    args = _parse(argv)
    print(f"machine: {_machine()}")
    speeds = {} if args.skip_speed else speed(args)
    mious = {} if args.skip_accuracy else accuracy(args)
    _print(speeds, mious, args.size)
    print(f"load average after: {os.getloadavg()[0]:.2f} (above ~0.5 other processes share the "
          f"cores: latencies are upper bounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
