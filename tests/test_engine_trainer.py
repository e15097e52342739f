"""Review fixes: eval output name, ignore_index, best model, file modes, logged lr, NaN.

The label-file fixes are in test_data_io.py, the "sum" loss in test_engine_parts.py.
"""
import json
import math
import os
import pickle

import numpy as np
import paddle
import pytest

from paddle_fcn.cli import eval_main
from paddle_fcn.config import load_config
from paddle_fcn.data import DataError, build_dataset, write_image, write_label
from paddle_fcn.engine.checkpoint import (atomic_save, atomic_write_text, save_best_model,
                                          save_checkpoint)
from paddle_fcn.engine.evaluate import evaluate
from paddle_fcn.engine.optim import IterLR
from paddle_fcn.engine.trainer import build_model_from_config, train
from paddle_fcn.models import build_model

SEVEN = 7  # an ignore_index other than 255: the whole pipeline must honour it
TRAIN_SIZES = [(24, 32), (32, 28), (28, 24), (32, 32)]  # (H, W): every batch gets padded

CONFIG = """
model: {{type: unet, num_classes: 3, width: 4, depth: 2, batch_norm: false}}
train_dataset: {{type: Dataset, dataset_root: {root}, file_list: {train}, num_classes: 3,
                ignore_index: {ignore}}}
val_dataset: {{type: Dataset, dataset_root: {root}, file_list: {val}, num_classes: 3,
              ignore_index: {ignore}}}
loss: {{ignore_index: {ignore}}}
lr_scheduler: {{type: poly, learning_rate: 0.01, warmup_iters: 1, warmup_start_lr: 0.001}}
batch_size: 2
iters: {iters}
save_dir: {out}
save_interval: {save}
eval_interval: {eval}
log_iters: 1
keep_checkpoint_max: 5
num_workers: 0
use_vdl: false
device: cpu
"""


def _write_split(root, name, sizes, label_fn):
    """Random images, ``label_fn(h, w)`` labels and ``root/<name>.txt`` listing the pairs."""
    rng = np.random.RandomState(len(name))
    lines = []
    for k, (h, w) in enumerate(sizes):
        image, label = f"img/{name}{k}.png", f"lbl/{name}{k}.png"
        write_image(os.path.join(root, image), rng.randint(0, 256, (h, w, 3), dtype=np.uint8))
        write_label(os.path.join(root, label), label_fn(h, w))
        lines.append(f"{image} {label}")
    with open(os.path.join(root, f"{name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _classes(h, w, void=255):
    """Classes 0..2 in 8 px bands, a 2 px border of the ``void`` (ignore) value."""
    label = (np.arange(w)[None, :] // 8 + np.arange(h)[:, None] // 8) % 3
    label[:2], label[:, :2] = void, void
    return label.astype(np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("listdata"))
    _write_split(root, "train", TRAIN_SIZES, _classes)
    _write_split(root, "val", [(24, 28), (28, 24)], _classes)
    _write_split(root, "train7", TRAIN_SIZES, lambda h, w: _classes(h, w, SEVEN))
    _write_split(root, "val7", [(24, 28), (28, 24)], lambda h, w: _classes(h, w, SEVEN))
    _write_split(root, "void", [(24, 28)], lambda h, w: np.full((h, w), 255, np.uint8))
    bad = lambda h, w: np.where(_classes(h, w) == 2, 5, _classes(h, w)).astype(np.uint8)
    _write_split(root, "bad", [(24, 28)], bad)  # class 5 does not exist
    return root


def _config(tmp_path, root, out, iters=4, save=4, eval_every=None, val="val.txt",
            train="train.txt", ignore=255):
    path = tmp_path / f"{os.path.basename(str(out))}-{iters}-{val}.yml"
    path.write_text(CONFIG.format(root=root, train=train, val=val, ignore=ignore, iters=iters,
                                  out=out, save=save, eval=eval_every or iters))
    return str(path)


def _json(path):
    with open(path) as f:
        return json.load(f)


def _leftovers(run):
    return [n for n in os.listdir(run) if n.startswith((".old-", ".tmp-"))]


# 1. tools/eval.py never overwrites training's metrics.json
def test_eval_cli_keeps_the_training_record(tmp_path, root):
    run = tmp_path / "run"
    config = _config(tmp_path, root, run)
    train(load_config(config), progress=False)
    record = _json(run / "best_model" / "metrics.json")
    assert record["iteration"] == 4
    assert eval_main(["--config", config, "--model_path",
                      str(run / "best_model" / "model.pdparams")]) == 0
    assert _json(run / "best_model" / "metrics.json") == record  # untouched
    evaluated = _json(run / "best_model" / "eval_metrics.json")
    assert "iteration" not in evaluated
    assert evaluated["mIoU"] == pytest.approx(record["mIoU"])  # the same weights and data
    # --save_dir pointing at a run directory: its metrics.json is training's too
    latest = _json(run / "metrics.json")
    assert eval_main(["--config", config, "--model_path", str(run / "best_model"),
                      "--save_dir", str(run)]) == 0
    assert _json(run / "metrics.json") == latest and (run / "eval_metrics.json").is_file()
    assert eval_main(["--config", config, "--model_path", str(run / "best_model"),
                      "--save_dir", str(tmp_path / "out")]) == 0
    assert _json(tmp_path / "out" / "metrics.json")["mIoU"] == pytest.approx(record["mIoU"])


# 3. ignore_index other than 255: training pads with it, evaluation ignores it
def test_ignore_index_other_than_255_is_honoured(tmp_path, root):
    cfg = load_config(_config(tmp_path, root, tmp_path / "run", iters=2, save=2,
                              train="train7.txt", val="val7.txt", ignore=SEVEN))
    summary = train(cfg, progress=False)  # padding with 255 made Paddle's kernel raise
    model = build_model_from_config(cfg, 3)
    model.set_state_dict(paddle.load(str(tmp_path / "run" / "best_model" / "model.pdparams")))
    val = build_dataset(cfg.val_dataset, model.normalization, 3)
    result = evaluate(model, val, 3, ignore_index=SEVEN, progress=False)
    valid = sum(int((np.asarray(val[i][1]) != SEVEN).sum()) for i in range(len(val)))
    assert result.matrix.sum() == valid
    assert summary.best_mIoU == pytest.approx(result.metrics.mIoU)


# 4. resume keeps a best model written after the checkpoint
def test_resume_keeps_a_better_best_model_written_after_the_checkpoint(tmp_path, root):
    run = tmp_path / "run"
    cfg = load_config(_config(tmp_path, root, run, iters=4, save=2, eval_every=2))
    train(cfg, progress=False)
    best = _json(run / "best_model" / "metrics.json")
    best.update(mIoU=0.99, iteration=3)  # as if iteration 3 was evaluated after iter_000002
    (run / "best_model" / "metrics.json").write_text(json.dumps(best))
    weights = paddle.load(str(run / "best_model" / "model.pdparams"))
    summary = train(cfg, resume_model=str(run / "iter_000002"), progress=False)
    assert (summary.best_mIoU, summary.best_iter) == (0.99, 3)
    assert _json(run / "best_model" / "metrics.json")["mIoU"] == 0.99
    kept = paddle.load(str(run / "best_model" / "model.pdparams"))
    for key in weights:
        np.testing.assert_array_equal(kept[key].numpy(), weights[key].numpy())
    with open(run / "iter_000004" / "state.pkl", "rb") as f:  # re-saved by swapping
        assert pickle.load(f)["best_mIoU"] == 0.99
    assert _leftovers(run) == []


# 5. out-of-range labels name the file, in evaluate and in tools/eval.py
def test_out_of_range_label_names_the_file(tmp_path, root, capsys):
    cfg = load_config(_config(tmp_path, root, tmp_path / "run", val="bad.txt"))
    model = build_model("unet", 3, width=4, depth=2, batch_norm=False)
    bad = build_dataset(cfg.val_dataset, model.normalization, 3)
    named = r"sample 0 \(.*img/bad0\.png, .*lbl/bad0\.png\): label values \[5\]"
    with pytest.raises(DataError, match=named):
        evaluate(model, bad, 3, progress=False)
    weights = tmp_path / "model.pdparams"
    paddle.save(model.state_dict(), str(weights))
    config = _config(tmp_path, root, tmp_path / "run", val="bad.txt")
    assert eval_main(["--config", config, "--model_path", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "Data check" in err and "bad0.png: values [5]" in err  # check_dataset first
    assert eval_main(["--config", config, "--model_path", str(weights),
                      "--skip_data_check"]) == 2
    err = capsys.readouterr().err
    assert "Data check" not in err and "bad0.png): " in err and "sample 0 (" in err


# 6. files and directories follow the umask, not mkstemp's 0600 / mkdtemp's 0700
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


# 7. the best-model pair is swapped in as one directory; a kill mid-swap is repaired
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
    assert _json(tmp_path / "best_model" / "metrics.json")["mIoU"] == 0.5
    save_best_model(str(tmp_path), model.state_dict(), {"mIoU": 0.7, "iteration": 4})
    assert _json(tmp_path / "best_model" / "metrics.json")["mIoU"] == 0.7
    assert sorted(os.listdir(tmp_path)) == ["best_model"]


def test_kill_between_the_two_renames_is_repaired_at_start_up(tmp_path, root):
    run = tmp_path / "run"
    cfg = load_config(_config(tmp_path, root, run, iters=2, save=2))
    train(cfg, progress=False)
    # the states a kill between "rename old away" and "rename new in" leaves behind
    os.rename(run / "best_model", run / ".old-best-0123abcd")
    os.rename(run / "iter_000002", run / ".old-iter_000002-89abcdef")
    os.makedirs(run / ".tmp-best-xyz")
    summary = train(cfg, resume_model=str(run), progress=False)  # found iter 2: nothing to do
    assert summary.best_iter == 2
    assert (run / "best_model" / "model.pdparams").is_file()
    assert (run / "iter_000002" / "state.pkl").is_file()
    assert _leftovers(run) == []


# 8. Train/lr is the rate of the logged step
def test_logged_lr_is_the_rate_the_step_used(tmp_path, root):
    cfg = load_config(_config(tmp_path, root, tmp_path / "run", iters=4))
    summary = train(cfg, progress=False)
    sched = IterLR(0.01, 4, kind="poly", power=0.9, warmup_iters=1, warmup_start_lr=0.001)
    expected = []
    for it in range(1, 5):
        expected.append((it, sched.get_lr()))
        sched.step()
    assert [it for it, _ in summary.lrs] == [1, 2, 3, 4]
    assert [lr for _, lr in summary.lrs] == pytest.approx([lr for _, lr in expected])
    assert summary.lrs[0][1] == pytest.approx(0.001)  # the warm-up start, not its second step


# 9. a NaN mIoU is never a best model and never blocks one
def test_nan_miou_is_not_a_best_model(tmp_path, root):
    run = tmp_path / "run"
    void = load_config(_config(tmp_path, root, run, iters=2, save=2, val="void.txt"))
    summary = train(void, progress=False, check_data=False)  # every val pixel is void
    assert summary.best_mIoU is None and summary.best_iter is None
    assert not (run / "best_model").exists()
    assert _json(run / "metrics.json")["mIoU"] is None
    real = load_config(_config(tmp_path, root, run, iters=4, save=2))
    summary = train(real, resume_model=str(run), progress=False)
    assert summary.best_iter == 4 and not math.isnan(summary.best_mIoU)
    assert _json(run / "best_model" / "metrics.json")["mIoU"] == pytest.approx(
        summary.best_mIoU)
