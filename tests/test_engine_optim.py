"""engine/optim.py: the iteration LR schedules and the parameter groups, known values."""
from types import SimpleNamespace

import pytest
from fixtures import TinyNet

from paddle_fcn.engine.optim import IterLR, param_groups


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


def test_param_groups_exclude_frozen_and_apply_multipliers():
    cfg = SimpleNamespace(weight_decay=5e-4, bias_lr_mult=2.0, bias_decay=False,
                          backbone_lr_mult=0.1)
    groups = param_groups(TinyNet(), cfg)
    by_key = {(g["learning_rate"], g["weight_decay"]): len(g["params"]) for g in groups}
    assert by_key == {(0.1, 5e-4): 1, (0.2, 0.0): 1, (1.0, 5e-4): 1, (2.0, 0.0): 1}
    assert sum(by_key.values()) == 4  # frozen weight not among them

