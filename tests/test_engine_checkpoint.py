"""engine/checkpoint.py: round trip and pruning, half-written saves ignored, files follow the
umask, the best-model pair swapped in as a unit and a kill mid-swap repaired at start-up."""
import os

import numpy as np
import paddle
import pytest
from fixtures import TinyNet, leftovers, list_config, read_json

from paddle_fcn.config import load_config
from paddle_fcn.engine.checkpoint import (CheckpointError, find_latest, load_checkpoint,
                                          save_best_model, save_checkpoint)
from paddle_fcn.engine.optim import IterLR
from paddle_fcn.fileio import atomic_save, atomic_write_text
from paddle_fcn.engine.trainer import train


def _opt(model):
    return paddle.optimizer.Momentum(learning_rate=IterLR(0.1, 10, kind="poly"), momentum=0.9,
                                     parameters=model.parameters())


def _step(model, opt):
    model.head(model.backbone(paddle.ones([1, 3, 2, 2]))).sum().backward()
    opt.step()
    opt.clear_grad()
    opt._learning_rate.step()


def test_checkpoint_round_trip_and_pruning(tmp_path):
    model = TinyNet()
    opt = _opt(model)
    for it in (1, 2, 3):
        _step(model, opt)
        save_checkpoint(str(tmp_path), it, model, opt, {"best_mIoU": 0.5}, keep_max=2)
    assert sorted(os.listdir(tmp_path)) == ["iter_000002", "iter_000003"]
    assert find_latest(str(tmp_path)).endswith("iter_000003")
    # A fresh model built after other layers (so Paddle's auto-names differ) still resumes.
    paddle.nn.Linear(1, 1)
    other = TinyNet()
    other_opt = _opt(other)
    state = load_checkpoint(str(tmp_path), other, other_opt)
    assert state["iteration"] == 3 and state["best_mIoU"] == 0.5
    assert other_opt.get_lr() == pytest.approx(opt.get_lr())
    _step(model, opt)
    _step(other, other_opt)  # same momentum buffers -> same update
    np.testing.assert_allclose(other.head.weight.numpy(), model.head.weight.numpy(), rtol=1e-6)


def test_half_written_checkpoint_is_ignored(tmp_path):
    model = TinyNet()
    opt = _opt(model)
    save_checkpoint(str(tmp_path), 1, model, opt, {}, keep_max=3)
    os.makedirs(tmp_path / ".tmp-iter-abc")  # a save killed midway
    os.makedirs(tmp_path / "iter_000009")  # no state.pkl: not a checkpoint
    assert find_latest(str(tmp_path)).endswith("iter_000001")
    with pytest.raises(CheckpointError, match="no such directory"):
        find_latest(str(tmp_path / "missing"))
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        find_latest(str(tmp_path / "iter_000009"))


# files and directories follow the umask, not mkstemp's 0600 / mkdtemp's 0700
def test_outputs_follow_the_umask(tmp_path):
    model = paddle.nn.Linear(2, 2)
    opt = paddle.optimizer.SGD(learning_rate=0.1, parameters=model.parameters())
    old = os.umask(0o027)
    try:
        ckpt = save_checkpoint(str(tmp_path), 1, model, opt, {}, keep_max=2)
        best = save_best_model(str(tmp_path), model.state_dict(), {"mIoU": 0.5})
        atomic_save(model.state_dict(), str(tmp_path / "w.pdparams"))
        atomic_write_text("{}", str(tmp_path / "m.json"))
    finally:
        os.umask(old)
    mode = lambda p: os.stat(p).st_mode & 0o777  # noqa: E731
    assert mode(ckpt) == mode(best) == 0o750
    files = [os.path.join(d, n) for d in (ckpt, best) for n in os.listdir(d)]
    files += [str(tmp_path / "w.pdparams"), str(tmp_path / "m.json")]
    assert len(files) == 7 and {mode(p) for p in files} == {0o640}


# the best-model pair is swapped in as one directory; a kill mid-swap is repaired
def test_best_model_pair_is_replaced_as_a_unit(tmp_path):
    model = paddle.nn.Linear(2, 2)
    save_best_model(str(tmp_path), model.state_dict(), {"mIoU": 0.5, "iteration": 2})
    before = paddle.load(str(tmp_path / "best_model" / "model.pdparams"))
    with paddle.no_grad():
        model.weight.set_value(model.weight + 1.0)
    with pytest.raises(TypeError):  # metrics that cannot be written: nothing changes
        save_best_model(str(tmp_path), model.state_dict(), {"mIoU": object()})
    after = paddle.load(str(tmp_path / "best_model" / "model.pdparams"))
    np.testing.assert_array_equal(after["weight"].numpy(), before["weight"].numpy())
    assert read_json(tmp_path / "best_model" / "metrics.json")["mIoU"] == 0.5
    save_best_model(str(tmp_path), model.state_dict(), {"mIoU": 0.7, "iteration": 4})
    assert read_json(tmp_path / "best_model" / "metrics.json")["mIoU"] == 0.7
    assert sorted(os.listdir(tmp_path)) == ["best_model"]


def test_kill_between_the_two_renames_is_repaired_at_start_up(tmp_path, list_root):
    run = tmp_path / "run"
    cfg = load_config(list_config(tmp_path, list_root, run, iters=2, save=2))
    train(cfg, progress=False)
    # the states a kill between "rename old away" and "rename new in" leaves behind
    os.rename(run / "best_model", run / ".old-best-0123abcd")
    os.rename(run / "iter_000002", run / ".old-iter_000002-89abcdef")
    os.makedirs(run / ".tmp-best-xyz")
    summary = train(cfg, resume_model=str(run), progress=False)  # found iter 2: nothing to do
    assert summary.best_iter == 2
    assert (run / "best_model" / "model.pdparams").is_file()
    assert (run / "iter_000002" / "state.pkl").is_file()
    assert leftovers(run) == []
