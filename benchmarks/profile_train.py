"""Where a training step's time goes: per-op CPU time of Paddle (``paddle.profiler``) and of
the PyTorch twin (``torch.profiler``), and the forward / backward / update split.

    python benchmarks/profile_train.py --model fcn8s_vgg16 [--side paddle|torch|both]

Same models, data, loss and optimizer as ``bench_train.py``; ``--steps`` steps are profiled
after ``--warmup``. Prints the ``--top`` ops by total time per step (forward ops and their
``*_grad`` backward ops separately), then the phase split measured without the profiler.
"""
import argparse
import collections
import os
import statistics
import time

import bench_train as bt  # noqa: E402  (a sibling script; imports paddle_fcn first)
import paddle  # noqa: E402


def paddle_ops(side, steps, warmup):
    """``{op name: ms per step}`` from paddle.profiler's host-side operator events."""
    import paddle.profiler as profiler

    for _ in range(warmup):
        side.step()
    totals = collections.Counter()
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU],
                             on_trace_ready=lambda p: None)
    prof.start()
    for _ in range(steps):
        side.step()
        prof.step()
    prof.stop()
    data = prof.profiler_result.get_data()
    for tid, root in data.items():
        stack = list(root.children_node)
        while stack:
            node = stack.pop()
            if str(node.type).endswith("Operator"):
                totals[node.name] += (node.end_ns - node.start_ns) / 1e6
            else:
                stack.extend(node.children_node)
    return {k: v / steps for k, v in totals.items()}


def torch_ops(side, steps, warmup):
    """``{op name: ms per step}`` (self CPU time) from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        side.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            side.step()
    out = {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}
    return out


def phases(side, steps, is_torch):
    """Median (forward + loss, backward, update) seconds without a profiler."""
    split = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        if is_torch:
            loss = side.F.cross_entropy(side.model(side.x), side.y, ignore_index=255)
        else:
            loss = side.loss_fn(side.model(side.x), side.y)
        float(loss.detach() if is_torch else loss)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        side.opt.step()
        (side.opt.zero_grad if is_torch else side.opt.clear_grad)()
        split.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
    return [statistics.median(s[i] for s in split[1:]) for i in range(3)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fcn8s_vgg16")
    p.add_argument("--side", default="both", choices=["paddle", "torch", "both"])
    p.add_argument("--size", type=int, nargs=2, default=[320, 320])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--top", type=int, default=14)
    args = p.parse_args(argv)
    paddle.set_device("cpu")
    x, y = bt.random_batch(args.batch, args.size)
    pside = bt.PaddleSide(args.model, x, y)
    sides = []
    if args.side in ("paddle", "both"):
        sides.append(("paddle", pside, paddle_ops))
    if args.side in ("torch", "both") and bt.load_torch() is not None:
        sides.append(("torch", bt.TorchSide(args.model, pside, x, y), torch_ops))
    print(f"{args.model} {args.batch}x3x{args.size[0]}x{args.size[1]}, "
          f"load average {os.getloadavg()[0]:.2f}")
    for label, side, profile in sides:
        ops = profile(side, args.steps, args.warmup)
        total = sum(ops.values())
        print(f"-- {label}: top ops, ms per step (sum of all ops {total:.0f} ms)")
        for name, ms in sorted(ops.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"   {name:<44}{ms:>9.1f}{100 * ms / total:>6.1f} %")
        fwd, bwd, upd = phases(side, args.steps, label == "torch")
        print(f"   phases (s): forward+loss {fwd:.3f}  backward {bwd:.3f}  update {upd:.3f}")


if __name__ == "__main__":
    main()
