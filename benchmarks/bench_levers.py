"""Paddle training-step time under each speed lever, against the baseline in the same run.

    python benchmarks/bench_levers.py --model fcn8s_resnet34 --rounds 3 --steps 4
    python benchmarks/bench_levers.py --levers base mkldnn threads1 --model fcn8s_vgg16

Each lever runs in a process of its own (environment variables are read when paddle loads),
one step = ``bench_train.PaddleSide.step`` (forward, loss, backward, SGD momentum) on the same
random batch. Rounds interleave the levers (base, A, B, ..., base, A, B, ...) so that a load
change on a shared machine hits all of them; the table gives, per lever, the median over
rounds of each process's median step time and, paired per round, the ratio to that round's
baseline: median and range over rounds (< 1: faster). The load average is printed per round.
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
}


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


def child(model, lever, steps, warmup, size, batch):
    """Run in the lever's process: prints ``{"median": s, "times": [...], "loss": l}``."""
    sys.path.insert(0, HERE)
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
    if switch == "to_static_model":
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
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    print(json.dumps({"median": statistics.median(times), "times": times, "loss": loss}))


def run_lever(args, lever):
    env = dict(os.environ)
    env.update(LEVERS[lever][0])
    cmd = [sys.executable, os.path.abspath(__file__), "--child", lever, "--model", args.model,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
           "--size", *map(str, args.size)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:90]}
    return json.loads(lines[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fcn8s_resnet34")
    p.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--size", type=int, nargs=2, default=[320, 320])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.model, args.child, args.steps, args.warmup, args.size, args.batch)
    levers = ["base"] + [lv for lv in args.levers if lv != "base"]
    results = {lv: [] for lv in levers}
    for r in range(args.rounds):
        print(f"round {r + 1}: load average {os.getloadavg()[0]:.2f}", flush=True)
        for lever in levers:
            out = run_lever(args, lever)
            results[lever].append(out)
            print(f"  {lever:<16}{json.dumps(out)[:110]}", flush=True)
    print(f"{args.model} {args.batch}x3x{args.size[0]}x{args.size[1]}, {args.rounds} rounds x "
          f"{args.steps} steps; load average now {os.getloadavg()[0]:.2f}")
    print(f"{'lever':<16}{'median s':>10}{'vs base':>9}{'range':>14}  loss")
    for lever, outs in results.items():
        # paired: each round's figure over that round's baseline, which ran just before it
        pairs = [(o["median"], b["median"]) for o, b in zip(outs, results["base"])
                 if "median" in o and "median" in b]
        if not pairs:
            print(f"{lever:<16} failed: {outs[0]['error']}")
            continue
        ratios = [t / b for t, b in pairs]
        print(f"{lever:<16}{statistics.median(t for t, _ in pairs):>10.3f}"
              f"{statistics.median(ratios):>9.2f}{min(ratios):>7.2f}-{max(ratios):<6.2f}"
              f"  {outs[-1]['loss']:.6f}")

if __name__ == "__main__":
    main()
