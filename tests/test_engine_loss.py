"""Engine building blocks with known answers: loss, LR schedule, groups, sampler, checkpoints."""
import math
import os
import time
from types import SimpleNamespace

import numpy as np
import paddle
import pytest

from paddle_fcn.engine.checkpoint import (CheckpointError, find_latest, load_checkpoint,
                                          save_checkpoint)
from paddle_fcn.engine.distributed import micro_batch_weights
from paddle_fcn.engine.loss import SegmentationLoss
from paddle_fcn.engine.optim import IterLR, param_groups
from paddle_fcn.engine.sampler import StreamBatchSampler


def test_loss_mean_ignores_void_and_sum_is_reference():
    # Two classes, logits 0 everywhere -> per-pixel CE = ln 2; 3 valid pixels, 1 void.
    logits = paddle.zeros([1, 2, 2, 2])
    label = paddle.to_tensor([[[0, 1], [255, 1]]], dtype="int64")
    mean = SegmentationLoss(2)(logits, label)
    total = SegmentationLoss(2, reduction="sum")(logits, label)
    assert float(mean) == pytest.approx(math.log(2), rel=1e-6)
    assert float(total) == pytest.approx(3 * math.log(2), rel=1e-6)


def test_sum_loss_divides_by_the_number_of_images():
    # Caffe's normalize: false (BATCH_SIZE): 3 + 3 valid pixels of ln 2 each, over 2 images.
    logits = paddle.zeros([2, 2, 2, 2])
    label = paddle.to_tensor([[[0, 1], [255, 1]], [[1, 1], [0, 255]]], dtype="int64")
    total = SegmentationLoss(2, reduction="sum")(logits, label)
    assert float(total) == pytest.approx(6 * math.log(2) / 2, rel=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_accumulated_micro_batches_equal_the_big_batch(reduction):
    # Micro-batches of 2, 1 and 3 images with different amounts of void (world size 1).
    rng = np.random.RandomState(0)
    labels = [rng.randint(0, 3, size=(n, 4, 5)).astype("int64") for n in (2, 1, 3)]
    labels[0][0, :2] = 255
    logits = [paddle.to_tensor(rng.randn(n, 3, 4, 5).astype("float32")) for n in (2, 1, 3)]
    loss_fn = SegmentationLoss(3, reduction=reduction)
    weights = micro_batch_weights(loss_fn, [paddle.to_tensor(y) for y in labels])
    split = sum(w * float(loss_fn(x, paddle.to_tensor(y)))
                for w, x, y in zip(weights, logits, labels))
    whole = float(loss_fn(paddle.concat(logits), paddle.to_tensor(np.concatenate(labels))))
    assert split == pytest.approx(whole, rel=1e-6)


def test_loss_class_weights_normalise_by_weight_sum():
    logits = paddle.zeros([1, 2, 1, 3])
    label = paddle.to_tensor([[[0, 1, 1]]], dtype="int64")
    loss = SegmentationLoss(2, class_weights=[1.0, 3.0])(logits, label)
    # (1 + 3 + 3) ln2 / (1 + 3 + 3) = ln 2
    assert float(loss) == pytest.approx(math.log(2), rel=1e-6)
    with pytest.raises(ValueError, match="class_weights has 3 entries"):
        SegmentationLoss(2, class_weights=[1.0, 1.0, 1.0])


def test_loss_normalizer_counts_valid_pixels_or_their_weights():
    label = paddle.to_tensor([[[0, 255], [1, 1]]], dtype="int64")
    assert float(SegmentationLoss(2).normalizer(label)) == 3.0
    assert float(SegmentationLoss(2, class_weights=[1.0, 3.0]).normalizer(label)) == 7.0


def test_loss_all_void_is_zero_not_nan():
    label = paddle.full([1, 2, 2], 255, dtype="int64")
    assert float(SegmentationLoss(3)(paddle.randn([1, 3, 2, 2]), label)) == 0.0


def _lrs(sched, n):
    out = []
    for _ in range(n):
        out.append(sched.get_lr())
        sched.step()
    return out


def test_poly_schedule_with_warmup():
    lrs = _lrs(IterLR(0.1, 12, kind="poly", power=1.0, warmup_iters=2, warmup_start_lr=0.0), 13)
    assert lrs[:3] == pytest.approx([0.0, 0.05, 0.1])
    assert lrs[7] == pytest.approx(0.1 * (1 - 5 / 10))  # halfway through the decay
    assert lrs[12] == pytest.approx(0.0)


def test_warmup_longer_than_the_run_is_clipped_to_it():
    # A 2-iteration smoke run of a recipe with a 500-iteration warm-up: ramps over the run.
    sched = IterLR(0.03, 2, kind="poly", warmup_iters=500, warmup_start_lr=0.001)
    assert sched.warmup_iters == 2
    assert _lrs(sched, 3) == pytest.approx([0.001, 0.0155, 0.03])
    assert IterLR(0.1, 20, kind="poly", warmup_iters=20).warmup_iters == 20


def test_step_and_constant_schedules():
    assert _lrs(IterLR(1.0, 10, kind="step", milestones=[2, 4], gamma=0.1), 5) == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01])
    assert _lrs(IterLR(0.5, 10, kind="constant"), 3) == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="cosine"):
        IterLR(0.1, 10, kind="cosine")


class _Tiny(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.backbone = paddle.nn.Conv2D(3, 4, 1)
        self.head = paddle.nn.Conv2D(4, 2, 1)
        self.frozen = paddle.nn.Conv2D(2, 2, 1, bias_attr=False)
        self.frozen.weight.stop_gradient = True


def test_param_groups_exclude_frozen_and_apply_multipliers():
    cfg = SimpleNamespace(weight_decay=5e-4, bias_lr_mult=2.0, bias_decay=False,
                          backbone_lr_mult=0.1)
    groups = param_groups(_Tiny(), cfg)
    by_key = {(g["learning_rate"], g["weight_decay"]): len(g["params"]) for g in groups}
    assert by_key == {(0.1, 5e-4): 1, (0.2, 0.0): 1, (1.0, 5e-4): 1, (2.0, 0.0): 1}
    assert sum(by_key.values()) == 4  # frozen weight not among them


def test_sampler_is_a_pure_function_of_position():
    full = list(StreamBatchSampler(10, 4, 6, seed=3))
    resumed = list(StreamBatchSampler(10, 4, 6, start=2, seed=3))
    assert resumed == full[2:]
    epoch0 = [i for b in full for i, _ in b][:10]
    assert sorted(epoch0) == list(range(10))  # every sample once per epoch
    seeds = [s for b in full for _, s in b]
    assert len(set(seeds)) == len(seeds)


def test_two_ranks_see_the_single_process_batches():
    one = list(StreamBatchSampler(7, 4, 3, seed=1))
    r0 = list(StreamBatchSampler(7, 2, 3, seed=1, rank=0, world_size=2))
    r1 = list(StreamBatchSampler(7, 2, 3, seed=1, rank=1, world_size=2))
    assert [a + b for a, b in zip(r0, r1)] == one


def _opt(model):
    return paddle.optimizer.Momentum(learning_rate=IterLR(0.1, 10, kind="poly"), momentum=0.9,
                                     parameters=model.parameters())


def _step(model, opt):
    model.head(model.backbone(paddle.ones([1, 3, 2, 2]))).sum().backward()
    opt.step()
    opt.clear_grad()
    opt._learning_rate.step()


def test_checkpoint_round_trip_and_pruning(tmp_path):
    model = _Tiny()
    opt = _opt(model)
    for it in (1, 2, 3):
        _step(model, opt)
        save_checkpoint(str(tmp_path), it, model, opt, {"best_mIoU": 0.5}, keep_max=2)
    assert sorted(os.listdir(tmp_path)) == ["iter_000002", "iter_000003"]
    assert find_latest(str(tmp_path)).endswith("iter_000003")
    # A fresh model built after other layers (so Paddle's auto-names differ) still resumes.
    paddle.nn.Linear(1, 1)
    other = _Tiny()
    other_opt = _opt(other)
    state = load_checkpoint(str(tmp_path), other, other_opt)
    assert state["iteration"] == 3 and state["best_mIoU"] == 0.5
    assert other_opt.get_lr() == pytest.approx(opt.get_lr())
    _step(model, opt)
    _step(other, other_opt)  # same momentum buffers -> same update
    np.testing.assert_allclose(other.head.weight.numpy(), model.head.weight.numpy(), rtol=1e-6)


def test_half_written_checkpoint_is_ignored(tmp_path):
    model = _Tiny()
    opt = _opt(model)
    save_checkpoint(str(tmp_path), 1, model, opt, {}, keep_max=3)
    os.makedirs(tmp_path / ".tmp-iter-abc")  # a save killed midway
    os.makedirs(tmp_path / "iter_000009")  # no state.pkl: not a checkpoint
    assert find_latest(str(tmp_path)).endswith("iter_000001")
    with pytest.raises(CheckpointError, match="no such directory"):
        find_latest(str(tmp_path / "missing"))
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        find_latest(str(tmp_path / "iter_000009"))


def test_stop_signal_waits_for_the_critical_section_and_a_second_one_changes_nothing():
    import os
    import signal

    from paddle_fcn.engine.interrupt import TrainingInterrupted, critical, stop_on_signals
    done = []
    with stop_on_signals():
        with pytest.raises(TrainingInterrupted) as stop:
            with critical():
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGINT)  # the same request: still SIGTERM's
                done.append("file written")
        assert done == ["file written"] and stop.value.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)  # during the clean-up after the stop: ignored
        done.append("cleaned up")
    assert done == ["file written", "cleaned up"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
