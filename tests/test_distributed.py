"""Data-parallel training under the real ``paddle.distributed.launch`` (CPU, gloo, 2 processes).

The launcher runs are module-scoped and tiny (U-Net width 4, depth 2, 40x40 crops, 4 steps).
On a CPU-only Paddle build the launcher itself selects the gloo backend.
"""
import json
import os
import pickle
import random
import shutil
import socket
import subprocess
import sys

import numpy as np
import paddle
import pytest

from paddle_fcn.config import ConfigError, apply_opts, load_config, save_config
from paddle_fcn.data import build_dataset
from paddle_fcn.engine.distributed import (convert_sync_batchnorm, micro_batch_weights,
                                           restore_rank_rng)
from paddle_fcn.engine.env import seed_everything
from paddle_fcn.engine.evaluate import evaluate
from paddle_fcn.engine.loss import SegmentationLoss
from paddle_fcn.engine.trainer import train
from paddle_fcn.models.loading import build_configured_model
from paddle_fcn.models import build_model
from paddle_fcn.runtime import default_threads
from test_train import write_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "tools", "train.py")
# No BatchNorm: per-rank batch statistics would (rightly) differ from the global batch's.
NO_BN = ["model.width=4", "model.depth=2", "model.batch_norm=false", "iters=4",
         "save_interval=2", "eval_interval=4", "use_vdl=true"]

# Runs a script under the launcher and records every write-like file operation under
# SAVE_DIR (Python audit events), plus OMP_NUM_THREADS, into LOG.format(rank=...).
WORKER = r'''
import json, os, runpy, sys
save_dir, log, script = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
rank = os.environ.get("PADDLE_TRAINER_ID", "?")
events = []
OPS = {"os.rename", "os.replace", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree",
       "os.chmod", "os.truncate", "os.link", "os.symlink"}
def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writes = (mode is not None and any(c in str(mode) for c in "wax+")) or (
            flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        paths = [path] if writes else []
    elif event in OPS:
        paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
    else:
        return
    for p in paths:
        if not isinstance(p, int) and os.path.abspath(os.fsdecode(p)).startswith(save_dir):
            events.append([event, os.fsdecode(p)])
sys.addaudithook(hook)
sys.argv = [script] + sys.argv[4:]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    with open(log.format(rank=rank), "w") as f:
        json.dump({"events": events, "omp": os.environ.get("OMP_NUM_THREADS")}, f)
'''

# Split evaluation of one random U-Net (with BatchNorm) whose running statistics are made to
# differ on rank 1 before sync_model_state; each rank saves its matrix and the images it saw.
EVAL = r'''
import json, os, sys
sys.path.insert(0, sys.argv[3])
import paddle_fcn
import numpy as np, paddle
import paddle.distributed as dist
from paddle_fcn.config import load_config
from paddle_fcn.data import build_dataset
from paddle_fcn.engine.distributed import sync_model_state
from paddle_fcn.engine.evaluate import evaluate
from paddle_fcn.models import build_model
cfg, out = load_config(sys.argv[1]), sys.argv[2]
dist.init_parallel_env()
rank, world = dist.get_rank(), dist.get_world_size()
paddle.seed(0)
model = build_model("unet", 6, width=4, depth=2)
with paddle.no_grad():  # the score layer starts at zero: make the predictions varied
    model.score.weight.set_value(paddle.randn(model.score.weight.shape))
    if rank == 1:
        for layer in model.sublayers():
            if isinstance(layer, paddle.nn.BatchNorm2D):
                layer._mean.set_value(layer._mean + 0.5)
                layer._variance.set_value(layer._variance * 3.0)
sync_model_state(model)
class Seen(paddle.io.Dataset):  # records the images this rank evaluates
    def __init__(self, ds): self.ds, self.seen = ds, []
    def __len__(self): return len(self.ds)
    def __getitem__(self, i): return self.seen.append(int(i)) or self.ds[i]
val = Seen(build_dataset(cfg.val_dataset, model.normalization, 6))
result = evaluate(model, val, 6, cfg.test_config, rank=rank, world_size=world, progress=False)
np.save(os.path.join(out, f"matrix{rank}.npy"), result.matrix)
with open(os.path.join(out, f"seen{rank}.json"), "w") as f:
    json.dump(val.seen, f)
if rank == 0:
    paddle.save(model.state_dict(), os.path.join(out, "model.pdparams"))
'''


def _start(tmp, name, script, args, save_dir, launcher=("--nproc_per_node", "2")):
    """Popen of ``python -m paddle.distributed.launch <launcher> WORKER script args``."""
    worker = tmp / "worker.py"
    worker.write_text(WORKER)
    audit = str(tmp / f"{name}.audit.{{rank}}.json")
    env = {k: v for k, v in os.environ.items()  # let the launcher and runtime pick threads
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    cmd = [sys.executable, "-m", "paddle.distributed.launch", *launcher,
           "--log_dir", str(tmp / f"{name}.log"), str(worker),
           str(save_dir or tmp / "nowhere"), audit, str(script), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=tmp)


def _finish(proc, tmp, name, ranks):
    """Wait for a launcher; its workers' logs and audit records (by global rank)."""
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    logs = sorted((tmp / f"{name}.log").glob("workerlog.*"))
    text = [p.read_text(errors="replace") for p in logs]
    assert proc.returncode == 0, out[-3000:] + "".join(t[-2000:] for t in text)
    audits = [json.loads((tmp / f"{name}.audit.{r}.json").read_text()) for r in ranks]
    return text, audits


def _launch(tmp, name, script, args, save_dir=None):
    """One launcher, two local processes (ranks 0 and 1)."""
    return _finish(_start(tmp, name, script, args, save_dir), tmp, name, ranks=(0, 1))


def _weights(run, it):
    return paddle.load(os.path.join(run, f"iter_{it:06d}", "model.pdparams"))


def _assert_same_weights(a, b, rtol, atol):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=rtol, atol=atol,
                                   err_msg=key)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One launcher run: 2 ranks x batch 2 x accumulate 2 (global batch 8), 4 steps."""
    tmp = tmp_path_factory.mktemp("dist")
    raw = write_config(tmp / "raw.yml", str(tmp / "data"), str(tmp / "run"), model="unet")
    cfg = load_config(raw, NO_BN + ["batch_size=2", "accumulate_steps=2"])
    save_config(cfg, str(tmp / "dist.yml"))
    logs, audits = _launch(tmp, "train", TRAIN, ["--config", str(tmp / "dist.yml")],
                           save_dir=tmp / "run")
    return dict(tmp=tmp, cfg=cfg, run=str(tmp / "run"), logs=logs, audits=audits)


def test_two_ranks_equal_one_process_with_the_global_batch(two_ranks):
    # The void (255) bands of the synthetic labels differ per image: only a global per-pixel
    # mean (micro_batch_weights) makes the split step equal the big-batch step. Differences
    # left are float32 summation order: measured max 3e-6 (a mean of per-rank means: 4e-4).
    cfg, tmp = two_ranks["cfg"], two_ranks["tmp"]
    dist4 = _weights(two_ranks["run"], 4)
    for name, batch, accumulate in (("b8", 8, 1), ("b4x2", 4, 2)):
        single = apply_opts(cfg, [f"batch_size={batch}", f"accumulate_steps={accumulate}",
                                  f"save_dir={tmp / name}", "use_vdl=false"])
        train(single, progress=False)
        _assert_same_weights(_weights(tmp / name, 4), dist4, rtol=1e-4, atol=2e-5)
    # The tolerance is far below what other data does to the weights (max 5e-3 here).
    half = apply_opts(cfg, ["batch_size=2", "accumulate_steps=2", f"save_dir={tmp / 'b2x2'}",
                            "use_vdl=false"])
    train(half, progress=False)
    other = _weights(tmp / "b2x2", 4)
    assert max(np.abs(other[k].numpy() - dist4[k].numpy()).max() for k in dist4) > 1e-3


def test_only_rank_zero_writes_and_logs(two_ranks):
    run = two_ranks["run"]
    rank0, rank1 = (a["events"] for a in two_ranks["audits"])
    assert not rank1, rank1[:5]
    written = {os.path.relpath(path, run).split(os.sep)[0] for _, path in rank0}
    assert {"config.yml", "metrics.json", "best_model", "vdl"} <= written  # the hook sees them
    assert sorted(os.listdir(run)) == ["best_model", "config.yml", "iter_000002",
                                       "iter_000004", "metrics.json", "vdl"]
    log0, log1 = two_ranks["logs"]
    assert "train:" in log0 and "[eval] iter 4" in log0
    assert "train:" not in log1 and "[eval]" not in log1
    # The launcher's workers share this machine's cores (runtime.default_threads).
    expected = str(default_threads({"PADDLE_LOCAL_SIZE": "2"}))
    assert [a["omp"] for a in two_ranks["audits"]] == [expected, expected]


def test_split_evaluation_during_training_equals_single_process(two_ranks):
    cfg = two_ranks["cfg"]
    saved = json.loads(open(os.path.join(two_ranks["run"], "metrics.json")).read())
    model = build_configured_model(cfg.model, 6)[0]
    model.set_state_dict(paddle.load(os.path.join(two_ranks["run"], "best_model",
                                                  "model.pdparams")))
    val = build_dataset(cfg.val_dataset, model.normalization, 6)
    single = evaluate(model, val, 6, cfg.test_config, progress=False).metrics.to_dict(
        val.class_names)
    for key in ("mIoU", "pixel_acc", "mean_acc", "fwIoU"):
        assert saved[key] == single[key], key
    np.testing.assert_array_equal(saved["class_IoU"], single["class_IoU"])


def test_checkpoint_keeps_every_ranks_rng_and_resume_is_exact(two_ranks):
    tmp, run = two_ranks["tmp"], two_ranks["run"]
    with open(os.path.join(run, "iter_000002", "state.pkl"), "rb") as f:
        state = pickle.load(f)
    assert state["world_size"] == 2 and len(state["rank_rng"]) == 2
    np_states = [s[1][1] for s in state["rank_rng"]]  # seeded seed + rank: different streams
    assert not np.array_equal(*np_states)
    # Resume both ranks from rank 0's checkpoint at iteration 2, in a fresh directory.
    resumed = tmp / "resumed"
    shutil.copytree(os.path.join(run, "iter_000002"), resumed / "iter_000002")
    logs, _ = _launch(tmp, "resume", TRAIN, [
        "--config", str(tmp / "dist.yml"), "--save_dir", str(resumed),
        "--resume_model", str(resumed / "iter_000002")], save_dir=resumed)
    assert all("resumed from" in log and "at iteration 2" in log for log in logs)
    _assert_same_weights(_weights(resumed, 4), _weights(run, 4), rtol=1e-5, atol=1e-6)


def test_multi_node_form_matches_the_single_machine_run(two_ranks):
    # Two "machines" on localhost: one launcher per node, --nnodes 2 and a shared --master.
    tmp = two_ranks["tmp"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [_start(tmp, f"node{n}", TRAIN, ["--config", str(tmp / "dist.yml"), "--save_dir",
                                              str(tmp / "nodes")], tmp / "nodes",
                    ("--master", f"127.0.0.1:{port}", "--nnodes", "2", "--rank", str(n),
                     "--nproc_per_node", "1")) for n in range(2)]
    (log0,), _ = _finish(procs[0], tmp, "node0", ranks=(0,))
    (log1,), (audit1,) = _finish(procs[1], tmp, "node1", ranks=(1,))
    assert "[eval] iter 4" in log0 and "[eval]" not in log1 and not audit1["events"]
    _assert_same_weights(_weights(tmp / "nodes", 4), _weights(two_ranks["run"], 4),
                         rtol=1e-5, atol=1e-6)


def test_split_evaluation_gives_exactly_the_single_process_matrix(tmp_path):
    # 5 validation images: rank 0 scores 0, 2, 4 and rank 1 scores 1, 3.
    raw = write_config(tmp_path / "raw.yml", str(tmp_path / "data"), str(tmp_path / "run"))
    text = open(raw).read().replace("num_val: 4", "num_val: 5")
    (tmp_path / "eval.yml").write_text(text)
    script = tmp_path / "eval_script.py"
    script.write_text(EVAL)
    _launch(tmp_path, "eval", script, [str(tmp_path / "eval.yml"), str(tmp_path), ROOT])
    seen = [json.loads((tmp_path / f"seen{r}.json").read_text()) for r in range(2)]
    assert seen == [[0, 2, 4], [1, 3]]
    cfg = load_config(str(tmp_path / "eval.yml"))
    model = build_model("unet", 6, width=4, depth=2)
    model.set_state_dict(paddle.load(str(tmp_path / "model.pdparams")))
    val = build_dataset(cfg.val_dataset, model.normalization, 6)
    single = evaluate(model, val, 6, cfg.test_config, progress=False).matrix
    valid = sum(int((np.asarray(val[i][1]) != 255).sum()) for i in range(len(val)))
    assert single.dtype == np.int64 and single.sum() == valid
    assert (single.sum(axis=0) > 0).sum() >= 2  # a model that predicts several classes
    for r in range(2):
        split = np.load(tmp_path / f"matrix{r}.npy")
        assert split.dtype == np.int64
        np.testing.assert_array_equal(split, single)


def test_micro_batch_weights_make_the_big_batch_loss():
    # Three micro-batches with different amounts of void: sum_m w_m * loss_m must be the
    # per-pixel mean over all of them (one process, so world size 1).
    rng = np.random.RandomState(0)
    labels = [rng.randint(0, 3, size=(2, 4, 5)).astype("int64") for _ in range(3)]
    labels[0][0, :2] = 255
    labels[2][:] = 255  # a pure-void micro-batch contributes nothing
    logits = [paddle.to_tensor(rng.randn(2, 3, 4, 5).astype("float32")) for _ in range(3)]
    for class_weights in (None, [0.5, 1.0, 2.0]):
        loss_fn = SegmentationLoss(3, class_weights=class_weights)
        weights = micro_batch_weights(loss_fn, [paddle.to_tensor(y) for y in labels])
        assert weights[2] == 0.0
        split = sum(w * float(loss_fn(x, paddle.to_tensor(y)))
                    for w, x, y in zip(weights, logits, labels))
        whole = float(loss_fn(paddle.concat(logits), paddle.to_tensor(np.concatenate(labels))))
        assert split == pytest.approx(whole, rel=1e-6)
    summed = SegmentationLoss(3, reduction="sum")
    assert micro_batch_weights(summed, labels) == [1 / 3] * 3  # Caffe: iter_size average


def test_restore_rank_rng_continues_this_ranks_stream():
    saved = []
    for seed in (10, 11):  # what ranks 0 and 1 held when rank 0 wrote the checkpoint
        seed_everything(seed)
        saved.append((random.getstate(), np.random.get_state(), paddle.get_rng_state()))
    ckpt = {"world_size": 2, "rank_rng": saved, "iteration": 6, "path": "run/iter_000006"}
    seed_everything(11)
    expected = (random.random(), np.random.rand(), paddle.rand([1]).item())
    seed_everything(0)
    restore_rank_rng(ckpt, rank=1, world=2, seed=0)
    assert (random.random(), np.random.rand(), paddle.rand([1]).item()) == expected
    # Resumed with more ranks than wrote it: a warning, and a new rank gets its own stream.
    with pytest.warns(RuntimeWarning, match="written by 2 process"):
        restore_rank_rng(ckpt, rank=2, world=3, seed=0)
    fresh = np.random.rand()
    with pytest.warns(RuntimeWarning):
        restore_rank_rng(ckpt, rank=2, world=3, seed=0)
    assert np.random.rand() == fresh != expected[1]


def test_sync_bn_is_a_config_key_and_fails_clearly_on_cpu(tmp_path):
    raw = write_config(tmp_path / "raw.yml", str(tmp_path / "data"), str(tmp_path / "run"))
    cfg = load_config(raw, ["model.width=4", "sync_bn=true"])
    assert cfg.sync_bn is True
    with pytest.raises(ConfigError, match="sync_bn"):
        load_config(raw, ["sync_bn=1"])
    model = build_configured_model(cfg.model, 6)[0]
    assert convert_sync_batchnorm(model, cfg, world=1) is model  # one process: plain BN
    with pytest.raises(ValueError, match="sync_bn: true needs GPUs"):
        convert_sync_batchnorm(model, cfg, world=2)
    no_bn = apply_opts(cfg, ["model.type=unet", "model.batch_norm=false"])
    with pytest.raises(ValueError, match="has no BatchNorm layer"):
        convert_sync_batchnorm(build_configured_model(no_bn.model, 6)[0], no_bn, world=2)
    # Paddle's conversion keeps the state_dict keys: checkpoints load into a plain model.
    synced = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(build_configured_model(cfg.model, 6)[0])
    assert list(synced.state_dict()) == list(model.state_dict())


def test_threads_are_shared_among_the_launchers_local_processes(tmp_path):
    assert default_threads({}, cores=8) == 8
    assert default_threads({"PADDLE_LOCAL_SIZE": "4"}, cores=8) == 2
    assert default_threads({"PADDLE_LOCAL_SIZE": "4"}, cores=2) == 1
    # runtime.py alone (no paddle import): the launcher's OMP_NUM_THREADS=1 is replaced,
    # a user's other value is kept.
    code = ("import importlib.util as u, os; s = u.spec_from_file_location('rt', {path!r}); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); m.configure(); "
            "print(os.environ['OMP_NUM_THREADS'])")
    code = code.format(path=os.path.join(ROOT, "paddle_fcn", "runtime.py"))
    for omp, local, expected in (("1", "1", None), ("3", "1", "3"), ("1", None, "1")):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "PADDLE_"))}
        env["OMP_NUM_THREADS"] = omp
        if local:
            env["PADDLE_LOCAL_SIZE"] = local
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60, check=True).stdout.split()
        assert out[0] == (expected or str(default_threads({"PADDLE_LOCAL_SIZE": local})))
