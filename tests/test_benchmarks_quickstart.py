"""The quickstart benchmark (``benchmarks/bench_quickstart.py``): one run per ``--seeds`` entry,
each seed applied, a goal line over all of them. Tiny data and iterations; the figures
themselves are the benchmark's to print, never asserted."""
import os
import re

import pytest
from fixtures import load_benchmark

from paddle_fcn.device import setup_device

bench = load_benchmark("bench_quickstart")


def _tiny_opts(root):
    opts = ["iters=2", "save_interval=2", "log_iters=1", "model.width=4"]
    for split in ("train_dataset", "val_dataset"):
        opts += [f"{split}.dataset_root={root}", f"{split}.synthetic.num_train=4",
                 f"{split}.synthetic.num_val=2"]
    return opts


@pytest.fixture
def restore_threads():
    """The quickstart's ``cpu_threads: 1`` holds for the whole process: undo it afterwards."""
    yield
    setup_device("cpu", cpu_threads=int(os.environ["OMP_NUM_THREADS"]))  # runtime's default


def test_one_run_per_seed_with_that_seed(tmp_path, monkeypatch, capsys, restore_threads):
    monkeypatch.chdir(tmp_path)  # main() changes to the repository; this restores the cwd
    seen = []
    real_run = bench.run_one
    monkeypatch.setattr(bench, "run_one", lambda config, opts: seen.append(opts) or
                        real_run(config, opts))
    bench.main(["--seeds", "3", "5", "--opts", *_tiny_opts(tmp_path / "syn")])
    out = capsys.readouterr().out
    assert [o[-1] for o in seen] == ["seed=3", "seed=5"]
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert [r[0] for r in rows] == ["3", "5"]
    assert all(0.0 <= float(miou) <= 1.0 for _, miou, _ in rows)
    assert re.search(r"goal >= 0\.93 mIoU for every seed: (met|MISSED)", out)
    assert "kernel threads 1" in out  # the quickstart's cpu_threads, not the environment's
