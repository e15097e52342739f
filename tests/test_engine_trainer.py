"""engine/trainer.py on a `type: ListDataset` list of padded-size images: a non-255
ignore_index, resume keeping a later best model, the logged LR, a NaN mIoU."""
import json
import math
import pickle

import numpy as np
import paddle
import pytest
from fixtures import SEVEN, leftovers, list_config, read_json

from paddle_fcn.config import load_config
from paddle_fcn.data import build_dataset
from paddle_fcn.engine.evaluate import evaluate
from paddle_fcn.engine.optim import IterLR
from paddle_fcn.engine.trainer import train
from paddle_fcn.models.loading import build_configured_model


# ignore_index other than 255: training pads with it, evaluation ignores it
def test_ignore_index_other_than_255_is_honoured(tmp_path, list_root):
    cfg = load_config(list_config(tmp_path, list_root, tmp_path / "run", iters=2, save=2,
                                  train="train7.txt", val="val7.txt", ignore=SEVEN))
    summary = train(cfg, progress=False)  # padding with 255 made Paddle's kernel raise
    model = build_configured_model(cfg.model, 3)[0]
    model.set_state_dict(paddle.load(str(tmp_path / "run" / "best_model" / "model.pdparams")))
    val = build_dataset(cfg.val_dataset, model.normalization, 3)
    result = evaluate(model, val, 3, ignore_index=SEVEN, progress=False)
    valid = sum(int((np.asarray(val[i][1]) != SEVEN).sum()) for i in range(len(val)))
    assert result.matrix.sum() == valid
    assert summary.best_mIoU == pytest.approx(result.metrics.mIoU)


# resume keeps a best model written after the checkpoint
def test_resume_keeps_a_better_best_model_written_after_the_checkpoint(tmp_path, list_root):
    run = tmp_path / "run"
    cfg = load_config(list_config(tmp_path, list_root, run, iters=4, save=2, eval_every=2))
    train(cfg, progress=False)
    best = read_json(run / "best_model" / "metrics.json")
    best.update(mIoU=0.99, iteration=3)  # as if iteration 3 was evaluated after iter_000002
    (run / "best_model" / "metrics.json").write_text(json.dumps(best))
    weights = paddle.load(str(run / "best_model" / "model.pdparams"))
    summary = train(cfg, resume_model=str(run / "iter_000002"), progress=False)
    assert (summary.best_mIoU, summary.best_iter) == (0.99, 3)
    assert read_json(run / "best_model" / "metrics.json")["mIoU"] == 0.99
    kept = paddle.load(str(run / "best_model" / "model.pdparams"))
    for key in weights:
        np.testing.assert_array_equal(kept[key].numpy(), weights[key].numpy())
    with open(run / "iter_000004" / "state.pkl", "rb") as f:  # re-saved by swapping
        assert pickle.load(f)["best_mIoU"] == 0.99
    assert leftovers(run) == []


# Train/lr is the rate of the logged step
def test_logged_lr_is_the_rate_the_step_used(tmp_path, list_root):
    cfg = load_config(list_config(tmp_path, list_root, tmp_path / "run", iters=4))
    summary = train(cfg, progress=False)
    sched = IterLR(0.01, 4, kind="poly", power=0.9, warmup_iters=1, warmup_start_lr=0.001)
    expected = []
    for it in range(1, 5):
        expected.append((it, sched.get_lr()))
        sched.step()
    assert [it for it, _ in summary.lrs] == [1, 2, 3, 4]
    assert [lr for _, lr in summary.lrs] == pytest.approx([lr for _, lr in expected])
    assert summary.lrs[0][1] == pytest.approx(0.001)  # the warm-up start, not its second step


# a NaN mIoU is never a best model and never blocks one
def test_nan_miou_is_not_a_best_model(tmp_path, list_root):
    run = tmp_path / "run"
    void = load_config(list_config(tmp_path, list_root, run, iters=2, save=2, val="void.txt"))
    summary = train(void, progress=False, check_data=False)  # every val pixel is void
    assert summary.best_mIoU is None and summary.best_iter is None
    assert not (run / "best_model").exists()
    assert read_json(run / "metrics.json")["mIoU"] is None
    real = load_config(list_config(tmp_path, list_root, run, iters=4, save=2))
    summary = train(real, resume_model=str(run), progress=False)
    assert summary.best_iter == 4 and not math.isnan(summary.best_mIoU)
    assert read_json(run / "best_model" / "metrics.json")["mIoU"] == pytest.approx(
        summary.best_mIoU)
