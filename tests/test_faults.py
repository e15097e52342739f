"""Faults: a diverging loss stops cleanly, a SIGKILL'ed run resumes to the same weights."""
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from paddle_fcn.config import ConfigError, load_config
from paddle_fcn.engine.checkpoint import CheckpointError
from paddle_fcn.engine.trainer import TrainingDiverged, train
from processes import children, processes_with
from test_train import ROOT, write_config


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("synthetic"))


def _finite(path):
    weights = paddle.load(path)
    return all(np.isfinite(v.numpy()).all() for v in weights.values())


def test_nan_loss_stops_with_iteration_and_keeps_good_files(tmp_path, data_root):
    config = write_config(tmp_path / "c.yml", data_root, str(tmp_path / "run"), iters=30, save=1,
                          lr=1.0e30)
    cfg = load_config(config, ["eval_interval=1", "loss.reduction=sum"])
    with pytest.raises(TrainingDiverged) as err:
        train(cfg, progress=False)
    message = str(err.value)
    assert "at iteration" in message and "learning rate" in message and "reduction='sum'" in message
    failed_at = int(message.split("at iteration ")[1].split(".")[0])
    run = tmp_path / "run"
    kept = sorted(n for n in os.listdir(run) if n.startswith("iter_"))
    assert kept and kept[-1] == f"iter_{failed_at - 1:06d}"  # nothing written for the bad step
    assert _finite(str(run / kept[-1] / "model.pdparams"))
    assert _finite(str(run / "best_model" / "model.pdparams"))


def test_train_cli_reports_divergence_with_exit_code(tmp_path, data_root):
    config = write_config(tmp_path / "c.yml", data_root, str(tmp_path / "run"), iters=30, save=30,
                          lr=1.0e30)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config",
                           config, "--no_progress", "--opts", "loss.reduction=sum"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3
    assert "error: loss is" in proc.stderr and "at iteration" in proc.stderr


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, data_root):
    # Every run is a fresh tools/train.py process: an in-process reference would inherit what
    # earlier tests changed (e.g. a Paddle Inference predictor alters the math library's
    # threading, a float-level change that 40 steps of training amplify).
    iters = 40
    straight = write_config(tmp_path / "a.yml", data_root, str(tmp_path / "a"), iters=iters,
                            save=2)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config",
                           straight, "--no_progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    config = write_config(tmp_path / "b.yml", data_root, str(tmp_path / "b"), iters=iters, save=2)
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config", config,
           "--no_progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (tmp_path / "b" / "iter_000006").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (tmp_path / "b" / f"iter_{iters:06d}").exists()

    resumed = subprocess.run(cmd + ["--resume_model", str(tmp_path / "b")],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    final = f"iter_{iters:06d}"
    a = paddle.load(str(tmp_path / "a" / final / "model.pdparams"))
    b = paddle.load(str(tmp_path / "b" / final / "model.pdparams"))
    for key in a:  # CPU kernels here are deterministic: bit-exact
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)


def test_resume_from_a_path_without_checkpoints_is_a_clear_error(tmp_path, data_root):
    cfg = load_config(write_config(tmp_path / "c.yml", data_root, str(tmp_path / "run"), iters=4))
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        train(cfg, resume_model=str(tmp_path), progress=False)


def test_opts_type_error_names_the_key(tmp_path, data_root):
    config = write_config(tmp_path / "c.yml", data_root, str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="lr_scheduler.learning_rate"):
        load_config(config, ["lr_scheduler.learning_rate=fast"])
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config",
                           config, "--opts", "optimizer.momentun=0.9"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "did you mean 'optimizer.momentum'" in proc.stderr


def test_train_refuses_bad_labels_before_training(tmp_path):
    from paddle_fcn.data.io import write_image, write_label
    rng = np.random.RandomState(0)
    for name, top in (("good", 5), ("bad", 9)):  # 9 is outside [0, 6)
        write_image(str(tmp_path / f"{name}.jpg"), rng.randint(0, 255, (24, 30, 3), np.uint8))
        label = np.zeros((24, 30), np.uint8)
        label[5:15, 5:15] = top
        write_label(str(tmp_path / f"{name}.png"), label)
    (tmp_path / "list.txt").write_text("good.jpg good.png\nbad.jpg bad.png\n")
    (tmp_path / "c.yml").write_text(f"""
model: {{type: fcn8s_resnet18, num_classes: 6, width: 8}}
train_dataset: {{type: ListDataset, dataset_root: {tmp_path}, file_list: list.txt, num_classes: 6}}
iters: 4
save_dir: {tmp_path / "run"}
do_eval: false
use_vdl: false
num_workers: 0
""")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config",
                           str(tmp_path / "c.yml"), "--no_progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(tmp_path / "bad.png") in proc.stderr and "values [9]" in proc.stderr
    assert not (tmp_path / "run").exists() or not any(
        n.startswith("iter_") for n in os.listdir(tmp_path / "run"))


def _start_and_wait_for(cmd, checkpoint, timeout=240):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not checkpoint.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_ends_training_cleanly_and_the_run_resumes(tmp_path, data_root, signum):
    config = write_config(tmp_path / "c.yml", data_root, str(tmp_path / "run"), iters=400,
                          save=2)
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config", config,
           "--no_progress", "--opts", "num_workers=2"]
    proc = _start_and_wait_for(cmd, tmp_path / "run" / "iter_000004")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum], err
    assert "Traceback" not in err and "FatalError" not in err
    line = [ln for ln in err.splitlines() if ln.startswith("stopped by")]
    assert len(line) == 1 and signal.Signals(signum).name in line[0], err
    command = shlex.split(line[0].split("resume with: ")[1])
    assert command[:2] == ["python", cmd[1]] and command[-2:] == ["--resume_model",
                                                                 str(tmp_path / "run")]
    assert processes_with(config) == []  # no data worker outlives the trainer
    kept = sorted(n for n in os.listdir(tmp_path / "run") if n.startswith("iter_"))
    stopped_at = int(line[0].split("after iteration ")[1].split()[0])
    assert kept[-1] == f"iter_{stopped_at - stopped_at % 2:06d}"  # the last save is complete
    assert not [n for n in os.listdir(tmp_path / "run") if n.startswith(".")]  # no temp dirs
    resumed = subprocess.run([sys.executable, *command[1:], "--iters", str(stopped_at + 2)],
                             capture_output=True, text=True, timeout=300)  # as printed
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {tmp_path / 'run' / kept[-1]}" in resumed.stdout


def test_sigkill_of_the_trainer_leaves_no_data_worker(tmp_path, data_root):
    config = write_config(tmp_path / "c.yml", data_root, str(tmp_path / "run"), iters=400,
                          save=2)
    proc = _start_and_wait_for([sys.executable, os.path.join(ROOT, "tools", "train.py"),
                                "--config", config, "--no_progress", "--opts", "num_workers=2"],
                               tmp_path / "run" / "iter_000002")
    assert len(processes_with(config)) == 3  # the trainer and its two workers
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    deadline = time.time() + 5
    while processes_with(config) and time.time() < deadline:
        time.sleep(0.05)
    assert processes_with(config) == []


def test_a_file_that_never_reads_is_the_watchdogs_error_naming_it(tmp_path):
    """An image on a stalled mount: a FIFO nobody writes to blocks its reader for ever."""
    from paddle_fcn.data.io import write_image, write_label
    from paddle_fcn.data.loader import DataLoaderError
    rng = np.random.RandomState(0)
    for i in range(3):
        write_image(str(tmp_path / f"{i}.jpg"), rng.randint(0, 255, (24, 30, 3), np.uint8))
        write_label(str(tmp_path / f"{i}.png"), np.zeros((24, 30), np.uint8))
    os.mkfifo(tmp_path / "stalled.jpg")
    (tmp_path / "list.txt").write_text("0.jpg 0.png\nstalled.jpg 1.png\n1.jpg 1.png\n2.jpg 2.png\n")
    (tmp_path / "c.yml").write_text(f"""
model: {{type: fcn8s_resnet18, num_classes: 2, width: 8}}
train_dataset: {{type: ListDataset, dataset_root: {tmp_path}, file_list: list.txt, num_classes: 2}}
iters: 20
batch_size: 1
save_dir: {tmp_path / "run"}
do_eval: false
use_vdl: false
num_workers: 2
data_timeout: 3
""")
    cfg = load_config(str(tmp_path / "c.yml"))
    start = time.time()
    with pytest.raises(DataLoaderError) as err:
        train(cfg, progress=False, check_data=False)  # the data check would read it first
    assert time.time() - start < 60
    message = str(err.value)
    assert f"{tmp_path / 'stalled.jpg'}, {tmp_path / '1.png'})" in message
    assert "data_timeout = 3 s" in message and "data loader worker" in message
    assert processes_with(str(tmp_path)) == [] and children(os.getpid()) == []
