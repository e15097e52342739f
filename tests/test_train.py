"""End-to-end training on a tiny synthetic set: the loss falls, mIoU rises, resume is exact."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from paddle_fcn.config import load_config
from paddle_fcn.data import build_dataset
from paddle_fcn.engine.evaluate import evaluate
from paddle_fcn.engine.trainer import train
from paddle_fcn.models.loading import build_configured_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = """
model: {{type: {model}, num_classes: 6, width: 8}}
train_dataset:
  type: SyntheticVOC
  dataset_root: {data}
  mode: train
  num_classes: 6
  synthetic: {{seed: 0, num_train: 12, num_val: 4, min_size: 40, max_size: 56}}
  transforms:
    - {{type: RandomCrop, crop_size: [40, 40]}}
    - {{type: RandomHorizontalFlip}}
val_dataset:
  type: SyntheticVOC
  dataset_root: {data}
  mode: {val_mode}
  num_classes: 6
  synthetic: {{seed: 0, num_train: 12, num_val: 4, min_size: 40, max_size: 56}}
lr_scheduler: {{type: poly, learning_rate: {lr}, warmup_iters: 2}}
optimizer: {{momentum: 0.9, weight_decay: 1.0e-4}}
batch_size: 4
iters: {iters}
save_dir: {out}
save_interval: {save}
eval_interval: {iters}
log_iters: 1
keep_checkpoint_max: 5
num_workers: 0
use_vdl: {vdl}
num_vis_samples: 1
device: cpu
"""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("synthetic"))


def write_config(path, data, out, iters=30, save=10, model="fcn8s_resnet18", lr=0.05,
                 vdl="false", val_mode="val"):
    """A tiny experiment: width-8 model, 12 training images of 40-56 px, 40x40 crops."""
    path.write_text(TINY.format(data=data, out=out, iters=iters, save=save, model=model,
                                lr=lr, vdl=vdl, val_mode=val_mode))
    return str(path)


def test_short_run_loss_falls_and_miou_rises(tmp_path, data_root):
    # Overfit: evaluated on the (un-augmented) training images themselves.
    cfg = load_config(write_config(tmp_path / "c.yml", data_root, str(tmp_path / "run"),
                                   iters=150, save=150, lr=0.1, vdl="true", val_mode="train"))
    model = build_configured_model(cfg.model, 6)[0]
    val = build_dataset(cfg.val_dataset, model.normalization, 6)
    before = evaluate(model, val, 6, progress=False).metrics.mIoU
    summary = train(cfg, progress=False)
    losses = [loss for _, loss in summary.losses]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert summary.best_mIoU > before + 0.1
    run = tmp_path / "run"
    assert (run / "best_model" / "model.pdparams").is_file()
    assert (run / "config.yml").is_file() and (run / "iter_000150" / "state.pkl").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"mIoU", "pixel_acc", "mean_acc", "fwIoU", "class_IoU"}
    assert 0.0 <= metrics["mIoU"] <= 1.0 and metrics["mIoU"] == pytest.approx(summary.best_mIoU)
    assert any(name.startswith("vdlrecords") for name in os.listdir(run / "vdl"))


def _weights(path):
    return paddle.load(os.path.join(path, "model.pdparams"))


def test_resume_matches_an_uninterrupted_run(tmp_path, data_root):
    straight = load_config(write_config(tmp_path / "a.yml", data_root, str(tmp_path / "a"),
                                        iters=8, save=4))
    train(straight, progress=False)
    cfg = load_config(write_config(tmp_path / "b.yml", data_root, str(tmp_path / "b"),
                                   iters=8, save=4))
    _train_partial(cfg, stop_at=4)
    assert sorted(os.listdir(tmp_path / "b")).count("iter_000004") == 1
    assert not (tmp_path / "b" / "iter_000008").exists()
    summary = train(cfg, resume_model=str(tmp_path / "b"), progress=False)
    assert summary.iterations == 8
    a, b = _weights(tmp_path / "a" / "iter_000008"), _weights(tmp_path / "b" / "iter_000008")
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    sa = _state(tmp_path / "a" / "iter_000008")
    sb = _state(tmp_path / "b" / "iter_000008")
    assert sa["iteration"] == sb["iteration"] == 8
    opt_a = paddle.load(str(tmp_path / "a" / "iter_000008" / "model.pdopt"))
    opt_b = paddle.load(str(tmp_path / "b" / "iter_000008" / "model.pdopt"))
    assert opt_a["LR_Scheduler"] == opt_b["LR_Scheduler"]  # same iteration count and lr


def _state(path):
    import pickle
    with open(os.path.join(path, "state.pkl"), "rb") as f:
        return pickle.load(f)


def _train_partial(cfg, stop_at):
    """Run the real training loop but stop after ``stop_at`` iterations (a clean interrupt)."""
    import paddle_fcn.engine.trainer as trainer
    original = trainer.train_one_iter

    def interrupting(state, loss_fn, batches, c):
        if state.iteration + 1 > stop_at:
            raise KeyboardInterrupt
        return original(state, loss_fn, batches, c)

    trainer.train_one_iter = interrupting
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False)
    finally:
        trainer.train_one_iter = original


def test_eval_cli_writes_metrics_json(tmp_path, data_root):
    config = write_config(tmp_path / "c.yml", data_root, str(tmp_path / "run"), iters=4, save=4)
    train(load_config(config), progress=False)
    out = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "eval.py"), "--config", config,
         "--model_path", str(tmp_path / "run" / "best_model" / "model.pdparams"),
         "--save_dir", str(out), "--flip_horizontal"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"mIoU", "pixel_acc", "mean_acc", "fwIoU", "class_IoU"}
    assert "mIoU" in proc.stdout


@pytest.mark.parametrize("model", ["fcn8s_resnet18", "unet"])
def test_evaluation_through_the_predictor_scores_as_the_eager_model(tmp_path, data_root, model):
    """eval_backend predictor (the export, run by Paddle Inference, as deployed) gives the
    eager model's metrics to float tolerance, after the same training steps."""
    results = {}
    for backend in ("eager", "predictor"):
        cfg_path = write_config(tmp_path / f"{backend}.yml", data_root, str(tmp_path / backend),
                                iters=3, save=3, model=model)
        cfg = load_config(str(cfg_path), [f"eval_backend={backend}"])
        results[backend] = train(cfg, progress=False).last_metrics
    eager, fast = results["eager"], results["predictor"]
    for key in ("mIoU", "pixel_acc", "mean_acc", "fwIoU"):
        assert fast[key] == pytest.approx(eager[key], abs=1e-4), key
    best = tmp_path / "predictor" / "best_model"
    assert sorted(os.listdir(best)) == ["metrics.json", "model.pdparams"]


def test_eval_backend_choice(tmp_path, data_root):
    """auto: the Predictor on a CPU from AUTO_PREDICTOR_IMAGES images on, for a model it can
    export; predictor for a model it cannot export (two heads) is a ConfigError."""
    from paddle_fcn.engine import trainer
    from paddle_fcn.errors import ConfigError
    from paddle_fcn.models import build_model

    cfg = load_config(write_config(tmp_path / "c.yml", data_root, str(tmp_path / "out")))
    model = build_model("fcn8s_resnet18", 6, width=8)
    paddle.set_device("cpu")
    with trainer._scorer(model, cfg, trainer.AUTO_PREDICTOR_IMAGES - 1) as few:
        assert few is model
    with trainer._scorer(model, cfg, trainer.AUTO_PREDICTOR_IMAGES) as many:
        assert many is not model and many.predictor.num_classes == 6
    cfg.cpu_threads = 1  # the run's CPU threads reach its Predictor too
    with trainer._scorer(model, cfg, trainer.AUTO_PREDICTOR_IMAGES) as many:
        assert many.predictor.threads == 1
    two_heads = build_model("fcn8s_resnet18", 6, width=8, heads={"a": 6, "b": 3})
    with trainer._scorer(two_heads, cfg, 10 ** 6) as scorer:  # auto: eager
        assert scorer is two_heads
    cfg.eval_backend = "predictor"
    with pytest.raises(ConfigError, match="eval_backend: predictor cannot run"):
        trainer._check_eval_backend(two_heads, cfg)  # run before the first step
