"""The worker loader: no OpenCV fork deadlock, a watchdog that names the sample, no orphans."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from paddle_fcn.data import build_dataset, collate_fn, generate_synthetic_voc
from paddle_fcn.data.io import DataError
from paddle_fcn.data.loader import DataLoaderError, WorkerLoader
from processes import alive, children

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle this exception")


class Blocking:
    """A dataset whose sample ``stuck`` never loads (``__getitem__`` sleeps), ``exit_on``
    exits the worker, ``error_on`` raises ``error``, ``slow`` takes 0.3 s; every other sample
    is its index as a 2x2 image."""
    files = [(f"img_{i}.jpg", f"lab_{i}.png") for i in range(8)]

    def __init__(self, stuck=None, exit_on=None, error_on=None, error=None, slow=None):
        self.stuck, self.exit_on, self.error_on, self.slow = stuck, exit_on, error_on, slow
        self.error = error or DataError(f"label {self.files[error_on or 0][1]}: values [9] "
                                        f"are not classes")

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        if i == self.stuck:
            time.sleep(3600)
        if i == self.slow:
            time.sleep(0.3)
        if i == self.exit_on:
            os._exit(3)
        if i == self.error_on:
            raise self.error
        return np.full((3, 2, 2), i, np.float32), np.zeros((2, 2), np.int64)


def _batches(n=8, size=2):
    return [list(range(s, min(s + size, n))) for s in range(0, n, size)]


def test_batches_in_order_equal_to_loading_in_process():
    ds = Blocking(slow=0)  # batch 1 (worker 1) is ready before batch 0: delivered in order
    with_workers = [imgs[:, 0, 0, 0].tolist()
                    for imgs, _ in WorkerLoader(ds, _batches(), collate_fn, 2, timeout=30)]
    in_process = [imgs[:, 0, 0, 0].tolist()
                  for imgs, _ in WorkerLoader(ds, _batches(), collate_fn, 0)]
    assert with_workers == in_process == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert children(os.getpid()) == []


def test_stuck_sample_is_a_clear_error_in_bounded_time_and_leaves_no_process():
    loader = iter(WorkerLoader(Blocking(stuck=5), _batches(), collate_fn, 2, timeout=2))
    start = time.time()
    with pytest.raises(DataLoaderError) as err:
        list(loader)
    took = time.time() - start
    message = str(err.value)
    assert "data loader worker 0" in message and "sample 5 (img_5.jpg, lab_5.png)" in message
    assert "data_timeout = 2 s" in message
    assert 2 <= took < 20  # bounded: the timeout, a poll, and closing the workers
    assert children(os.getpid()) == []


def test_dead_worker_and_worker_errors_are_reported_with_the_sample():
    with pytest.raises(DataLoaderError, match=r"worker 1 .*sample 3 .*died \(exit code 3\)"):
        list(WorkerLoader(Blocking(exit_on=3), _batches(), collate_fn, 2, timeout=30))
    with pytest.raises(DataError, match=r"lab_6.png: values \[9\]"):
        list(WorkerLoader(Blocking(error_on=6), _batches(), collate_fn, 2, timeout=30))
    for error in (ValueError("bad crop"), Unpicklable("odd")):  # a bug, or a foreign error
        with pytest.raises(DataLoaderError) as err:
            list(WorkerLoader(Blocking(error_on=5, error=error), _batches(), collate_fn, 2,
                              timeout=30))
        message = str(err.value)
        assert "worker 0 on sample 5 (img_5.jpg, lab_5.png) of batch 2" in message
        assert f"{type(error).__name__}: {error}" in message
        assert "worker traceback" in message and "__getitem__" in message
    assert children(os.getpid()) == []


REPRO = """
import sys
sys.path.insert(0, {root!r})
import paddle_fcn, cv2, numpy as np
from paddle_fcn.config import load_config
from paddle_fcn.data import build_dataset
from paddle_fcn.engine.batches import training_loader
# The parent runs a multi-threaded OpenCV call on a large image first (the data check does).
cv2.resize(np.random.rand(1000, 1000).astype(np.float32), (2000, 2000))
assert cv2.getNumThreads() > 1
cfg = load_config({config!r}, ["train_dataset.dataset_root={data}", "num_workers=2",
                               "val_dataset.dataset_root={data}", "model.pretrained=null"])
ds = build_dataset(cfg.train_dataset, None, 21)
batches = iter(training_loader(cfg, ds, 0, 0, 1))  # the trainer's loader, as the recipe has it
images, labels = next(batches)
assert images.shape == (cfg.batch_size, 3, 320, 320), images.shape
batches.close()
print("done", cfg.batch_size, cv2.getNumThreads())
"""


def test_opencv_threads_in_the_parent_do_not_hang_workers_on_real_size_images(tmp_path):
    data = generate_synthetic_voc(str(tmp_path / "voc"), num_train=4, num_val=1, preset="voc")
    script = tmp_path / "repro.py"
    config = os.path.join(ROOT, "configs", "voc_fcn8s_resnet34.yml")  # 320 crops, batch 10
    script.write_text(REPRO.format(root=ROOT, data=data, config=config))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    done, count, threads = proc.stdout.split()[-3:]
    assert count == "10" and int(threads) > 1  # the parent keeps its OpenCV threads


def test_workers_die_with_the_parent_even_after_sigkill(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {ROOT!r}); sys.path.insert(0, {os.path.dirname(__file__)!r})
        from paddle_fcn.data import collate_fn
        from paddle_fcn.data.loader import WorkerLoader
        from test_data_loader import Blocking
        loader = iter(WorkerLoader(Blocking(stuck=0), [[0], [1], [2]], collate_fn, 2,
                                   timeout=3600))
        next(loader)
    """))
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.time() + 60
    while len(children(proc.pid)) < 2:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    workers = children(proc.pid)
    time.sleep(0.5)  # the workers are past their start-up (one blocked in __getitem__)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 5
    while any(alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(alive(w) for w in workers)


def test_training_loader_reads_voc_size_photos_of_both_orientations(tmp_path):
    data = generate_synthetic_voc(str(tmp_path / "voc"), num_train=2, num_val=1, preset="voc")
    ds = build_dataset({"type": "PascalVOC", "dataset_root": data, "mode": "trainaug"})
    assert ds.num_classes == 21 and ds.class_names[15] == "person"
    sizes = [ds.raw(i)[1].shape for i in range(2)]
    assert sizes == [(375, 500), (500, 375)]
    (images, labels), = WorkerLoader(ds, [[0, 1]], collate_fn, 2, timeout=60)
    assert images.shape == (2, 3, 500, 500) and labels.dtype == np.int64
    assert labels[0, 375:].min() == 255  # padding of the landscape photo is void
    assert set(np.unique(labels)) <= set(range(21)) | {255}
