"""Paddle training-step time under each speed lever, against the baseline in the same run.

    python benchmarks/bench_levers.py --model fcn8s_resnet34 --steps 5
    python benchmarks/bench_levers.py --levers base mkldnn threads1 --model fcn8s_vgg16

Each lever runs in a process of its own (environment variables are read when paddle loads),
one step = ``bench_train.PaddleSide.step`` (forward, loss, backward, SGD momentum) on the same
random batch. All processes live at once and step in lockstep (base, A, B, ..., base, A, B,
...), one at a time, so that a load change on a shared machine hits all of them alike; the
table gives per lever the median step time and, paired step by step, the ratio to the
baseline's step just before (median and range; < 1: faster). Memory: one model per lever.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (environment overrides, code switch handled in child())
LEVERS = {
    "base": ({}, None),
    "mkldnn": ({"FLAGS_use_mkldnn": "1"}, None),
    "onednn": ({"FLAGS_use_onednn": "1"}, None),
    "threads1": ({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, None),
    "no_mkl_cpu_type": ({"MKL_DEBUG_CPU_TYPE": ""}, None),  # empty: configure() keeps it
    "blocktime0": ({"KMP_BLOCKTIME": "0"}, None),
    "affinity": ({"KMP_AFFINITY": "granularity=fine,compact,1,0"}, None),
    "proc_bind": ({"OMP_PROC_BIND": "true", "OMP_PLACES": "cores"}, None),
    "naive_alloc": ({"FLAGS_allocator_strategy": "naive_best_fit"}, None),
    "retain_memory": ({}, "retain_memory"),
    "to_static_model": ({}, "to_static_model"),
    "to_static_step": ({}, "to_static_step"),
    "static_program": ({}, "static_program"),
    "static_mkldnn": ({"FLAGS_use_mkldnn": "1"}, "static_program"),
    "bias_pylayer": ({}, "bias_pylayer"),
}


def bias_add():
    """``apply(x, bias)`` = ``x + bias`` over NCHW channels, with the bias gradient taken as
    one matmul (``N x C x HW`` times ones) instead of Paddle's broadcast-add backward: measured
    at 2 x 64 x 320 x 320, 627 -> 180 ms, the same gradient bit for bit."""
    import paddle
    from paddle.autograd import PyLayer

    class BiasAdd(PyLayer):
        @staticmethod
        def forward(ctx, x, bias):
            return x + bias.reshape([1, -1, 1, 1])

        @staticmethod
        def backward(ctx, grad):
            n, c = grad.shape[0], grad.shape[1]
            ones = paddle.ones([grad.shape[2] * grad.shape[3], 1], grad.dtype)
            return grad, paddle.matmul(grad.reshape([n, c, -1]), ones).sum(axis=0).reshape([c])

    return BiasAdd.apply


def split_bias(model):
    """Every ``Conv2D`` with a bias of ``model`` computes it through ``bias_add``."""
    import paddle.nn as nn
    import paddle.nn.functional as F

    apply = bias_add()
    for layer in model.sublayers():
        if type(layer) is nn.Conv2D and layer.bias is not None:
            def forward(x, conv=layer):
                y = F.conv2d(x, conv.weight, None, conv._stride, conv._padding,
                             conv._dilation, conv._groups)
                return apply(y, conv.bias)
            layer.forward = forward


def static_step(model_name, x, y):
    """The whole step as one ``paddle.static`` program (forward, loss, ``minimize``)."""
    import bench_train as bt
    import paddle
    from paddle_fcn.engine.loss import SegmentationLoss
    from paddle_fcn.models import build_model

    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        xs = paddle.static.data("x", list(x.shape), "float32")
        ys = paddle.static.data("y", list(y.shape), "int64")
        model = build_model(model_name, bt.NUM_CLASSES)
        loss = SegmentationLoss(bt.NUM_CLASSES)(model(xs), ys)
        paddle.optimizer.Momentum(learning_rate=bt.LR, momentum=bt.MOMENTUM).minimize(loss)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    feed = {"x": x, "y": y}
    return lambda: float(exe.run(main, feed=feed, fetch_list=[loss])[0])


def child(model, lever, size, batch):
    """Run in the lever's process: builds the step, prints ``{"ready": true}``, then for each
    line on stdin runs one step and prints ``{"time": s, "loss": l}``."""
    import bench_train as bt  # imports paddle_fcn, then paddle
    import paddle
    from paddle_fcn import runtime

    switch = LEVERS[lever][1]
    if switch == "retain_memory":
        runtime.retain_freed_memory()
    paddle.set_device("cpu")
    if switch == "static_program":
        step = static_step(model, *bt.random_batch(batch, size))
    else:
        side = bt.PaddleSide(model, *bt.random_batch(batch, size))
        step = side.step
    if switch == "bias_pylayer":
        split_bias(side.model)
    elif switch == "to_static_model":
        side.model = paddle.jit.to_static(side.model, full_graph=True)
    elif switch == "to_static_step":
        def train_step(x, y):
            loss = side.loss_fn(side.model(x), y)
            loss.backward()
            side.opt.step()
            side.opt.clear_grad()
            return loss
        compiled = paddle.jit.to_static(train_step, full_graph=True)
        step = lambda: float(compiled(side.x, side.y))  # noqa: E731
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:  # one line from the driver = one step
        start = time.perf_counter()
        loss = step()
        print(json.dumps({"time": time.perf_counter() - start, "loss": loss}), flush=True)

def start_lever(args, lever):
    """The lever's process, its model built, waiting for step requests on stdin."""
    env = dict(os.environ)
    env.update(LEVERS[lever][0])
    cmd = [sys.executable, os.path.abspath(__file__), "--child", lever, "--model", args.model,
           "--batch", str(args.batch), "--size", *map(str, args.size)]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def reply(proc):
    """The next JSON line of ``proc``, or ``{"error": last stderr line}`` if it died."""
    for line in proc.stdout:
        if line.startswith("{"):
            return json.loads(line)
    return {"error": (proc.stderr.read().strip().splitlines() or ["no output"])[-1][:90]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fcn8s_resnet34")
    p.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--size", type=int, nargs=2, default=[320, 320])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.model, args.child, args.size, args.batch)
    levers = ["base"] + [lv for lv in args.levers if lv != "base"]
    procs, errors = {}, {}
    for lever in levers:  # one at a time: building a model is itself heavy
        procs[lever] = start_lever(args, lever)
        ready = reply(procs[lever])
        if "error" in ready:
            errors[lever] = ready["error"]
            del procs[lever]
    times, loss, loads = {lv: [] for lv in procs}, {}, []
    for i in range(args.warmup + args.steps):
        loads.append(os.getloadavg()[0])
        for lever, proc in list(procs.items()):
            time.sleep(0.3)  # let the last process's OpenMP workers stop spinning
            proc.stdin.write("step\n")
            proc.stdin.flush()
            out = reply(proc)
            if "error" in out:
                errors[lever] = out["error"]
                del procs[lever]
            elif i >= args.warmup:
                times[lever].append(out["time"])
                loss[lever] = out["loss"]
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    report(args, times, loss, errors, loads)


def report(args, times, loss, errors, loads):
    print(f"{args.model} {args.batch}x3x{args.size[0]}x{args.size[1]}, {args.steps} steps per "
          f"lever in lockstep; load average {min(loads):.2f}-{max(loads):.2f}")
    print(f"{'lever':<16}{'median s':>10}{'vs base':>9}{'range':>14}  loss")
    base = times.get("base")
    for lever, ts in times.items():
        if lever in errors or not ts:
            continue
        # paired: step i of the lever over step i of the baseline, run a second earlier
        ratios = [t / b for t, b in zip(ts, base)]
        print(f"{lever:<16}{statistics.median(ts):>10.3f}{statistics.median(ratios):>9.2f}"
              f"{min(ratios):>7.2f}-{max(ratios):<6.2f}  {loss[lever]:.6f}")
    for lever, error in errors.items():
        print(f"{lever:<16} failed: {error}")

if __name__ == "__main__":
    main()
